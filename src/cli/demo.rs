//! `chanvault demo`: the whole job on an embedded default, no external
//! services. It starts the LND simulator, writes a real config and identity,
//! runs `watch` while channels open and close, waits until every target holds
//! the final state, and proves the delivered backup opens with the identity
//! and contains exactly the node's channels.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::Config;
use crate::lnd::{LndClient, LndSettings};
use crate::pipeline::short;
use crate::scb::{self, ChanPoint};
use crate::seal::{self, Identities};
use crate::sim::{SimOptions, Simulator};
use crate::sink::dir::CURRENT_FILE;
use crate::sink::{self, Target};
use crate::spool::Spool;
use crate::status::Status;
use crate::watch::Agent;

/// How long the demo waits for the targets to hold the final state.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
const PAUSE: Duration = Duration::from_millis(150);

fn step(msg: &str) {
    println!("==> {msg}");
}

pub async fn run(dir: &Path, channels: usize) -> Result<(), String> {
    prepare_dir(dir)?;
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;

    step("starting the LND simulator (real gRPC + TLS on 127.0.0.1)");
    let sim = Simulator::start(SimOptions::new(dir.join("lnd")))
        .await
        .map_err(|e| format!("cannot start the LND simulator: {e}"))?;
    let result = run_with_sim(&dir, &sim, channels).await;
    sim.stop().await;
    result
}

fn prepare_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        if entries.next().is_some() {
            return Err(format!(
                "{} is not empty; the demo never overwrites files, so give it a new directory",
                dir.display()
            ));
        }
    }
    crate::fsutil::ensure_dir(dir, 0o700)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// The files the demo writes next to its config.
struct Files {
    identity: PathBuf,
    password: PathBuf,
    config: PathBuf,
    /// The simulated node's wallet seed and its passphrase (0600, its dir).
    aezeed: PathBuf,
    aezeed_passphrase: PathBuf,
}

async fn run_with_sim(dir: &Path, sim: &Simulator, channels: usize) -> Result<(), String> {
    let files = write_files(dir, sim)?;

    step("starting chanvault watch");
    let cfg = Config::load(&files.config).map_err(|e| e.to_string())?;
    let sinks: Vec<Arc<dyn Target>> = cfg.targets.iter().map(sink::build).collect();
    for t in &sinks {
        if t.create().await.map_err(|e| e.to_string())?.is_some() {
            println!(
                "    initialised {} repository {} (as `chanvault target init {}` does)",
                t.kind(),
                t.location(),
                t.name()
            );
        }
    }
    let agent = Agent::new(cfg.clone()).map_err(|e| e.to_string())?;
    let spool = agent.spool().clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut watcher = tokio::spawn(agent.watch(stop_rx));

    // The baseline export of the still empty node shows that watch is connected.
    wait_for("the baseline backup", &mut watcher, || {
        spool
            .journal()
            .map(|j| !j.backups.is_empty())
            .unwrap_or(false)
    })
    .await?;

    let expected = churn(sim, channels).await;
    let fingerprint = scb::fingerprint(&expected);
    step(&format!(
        "waiting until every target holds the final state ({} channels, fingerprint {})",
        expected.len(),
        short(&fingerprint)
    ));
    // A target's current backup is what the journal recorded as delivered.
    wait_for("all targets", &mut watcher, || {
        spool.journal().is_ok_and(|j| {
            sinks.iter().all(|t| {
                j.targets
                    .get(t.name())
                    .and_then(|s| s.current.as_deref())
                    .and_then(|id| j.get(id))
                    .is_some_and(|b| b.fingerprint == fingerprint)
            })
        })
    })
    .await?;

    step("stopping watch (as SIGTERM would)");
    let _ = stop_tx.send(true);
    match watcher.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(format!("watch task failed: {e}")),
    }

    step(
        "reading every target back: the newest backup opens with the identity and covers every channel",
    );
    let ids = Identities::from_file(&files.identity).map_err(|e| e.to_string())?;
    let lnd = LndClient::connect(&LndSettings::from(&cfg.lnd))
        .await
        .map_err(|e| e.to_string())?;
    for t in &sinks {
        prove(t.as_ref(), sim, &lnd, &ids, &expected).await?;
    }
    summary(&cfg, &spool, dir, &files)
}

/// The identity, the restic password and the config, as a user would have them.
fn write_files(dir: &Path, sim: &Simulator) -> Result<Files, String> {
    let identity = dir.join("identity.txt");
    let recipient = seal::write_new_identity(&identity).map_err(|e| e.to_string())?;
    println!(
        "    age identity {} (0600), recipient {recipient}",
        identity.display()
    );

    let password_file = dir.join("restic-password");
    let mut pw = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut pw);
    let password = zeroize::Zeroizing::new(format!("{}\n", hex::encode(pw)));
    zeroize::Zeroize::zeroize(&mut pw);
    crate::fsutil::create_secret_file(&password_file, password.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", password_file.display()))?;
    println!(
        "    restic repository password {} (0600)",
        password_file.display()
    );

    let targets = dir.join("targets");
    std::fs::create_dir(&targets)
        .map_err(|e| format!("cannot create {}: {e}", targets.display()))?;
    let config_path = dir.join("chanvault.toml");
    let text = demo_config(sim, &recipient);
    crate::fsutil::write_atomic(&config_path, text.as_bytes(), 0o600)
        .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
    println!("    config {}", config_path.display());
    Ok(Files {
        identity,
        password: password_file,
        config: config_path,
        aezeed: sim.aezeed_path(),
        aezeed_passphrase: sim.aezeed_passphrase_path(),
    })
}

/// The node opens `channels` channels and closes one; returns its channels.
async fn churn(sim: &Simulator, channels: usize) -> BTreeSet<ChanPoint> {
    step(&format!("the simulated node opens {channels} channel(s)"));
    let mut opened = vec![];
    for _ in 0..channels {
        let cp = sim.open_channel();
        println!("    opened {cp}");
        opened.push(cp);
        tokio::time::sleep(PAUSE).await;
    }
    if let Some(first) = opened.first().filter(|_| channels >= 2) {
        step("the node closes one channel cooperatively");
        sim.close_channel(first);
        println!("    closed {first}");
    }
    sim.channels()
}

/// Read the target's newest backup back, as restore would: it hashes to what
/// the target published, opens with the identity, holds exactly the node's
/// channels, and LND verifies it.
async fn prove(
    t: &dyn Target,
    sim: &Simulator,
    lnd: &LndClient,
    ids: &Identities,
    expected: &BTreeSet<ChanPoint>,
) -> Result<(), String> {
    let held = t.list().await.map_err(|e| e.to_string())?;
    let newest = held
        .iter()
        .find(|h| h.suspect.is_none())
        .ok_or_else(|| format!("target {} holds no backup", t.name()))?;
    let what = format!("target {} ({})", t.name(), newest.locator);
    let sealed = t.fetch(&newest.locator).await.map_err(|e| e.to_string())?;
    if !scb::sha256_hex(&sealed).starts_with(&newest.sealed_sha256) {
        return Err(format!(
            "{what}: the bytes differ from its {}",
            newest.published_in
        ));
    }
    let plain = seal::open(ids, &sealed).map_err(|e| format!("{what}: {e}"))?;
    let decoded = sim
        .decode_multi(plain.expose())
        .map_err(|e| format!("{what}: not a valid channel backup: {e}"))?;
    if decoded != *expected {
        return Err(format!(
            "{what} covers {} channels, the node has {}",
            decoded.len(),
            expected.len()
        ));
    }
    let verified = lnd
        .verify_multi(plain.expose())
        .await
        .map_err(|e| e.to_string())?;
    if verified.is_some_and(|v| v != *expected) {
        return Err(format!("LND's VerifyChanBackup disagrees about {what}"));
    }
    println!(
        "    ✓ {} {}: decrypts and LND verifies it: {} channels",
        t.name(),
        newest.label.as_deref().unwrap_or(&newest.locator),
        decoded.len()
    );
    Ok(())
}

/// What happened, and what to try next.
fn summary(cfg: &Config, spool: &Spool, dir: &Path, files: &Files) -> Result<(), String> {
    step("what happened");
    let journal = spool.journal().map_err(|e| e.to_string())?;
    println!(
        "    {:<24} {:<9} {:>8}  {:<12}  NOTE",
        "TIME", "SOURCE", "CHANNELS", "FINGERPRINT"
    );
    for b in &journal.backups {
        println!(
            "    {:<24} {:<9} {:>8}  {:<12}  {}",
            b.created.format("%Y-%m-%d %H:%M:%S%.3fZ"),
            b.source,
            b.channels,
            short(&b.fingerprint),
            b.suspect.as_deref().map_or("", |_| "SUSPECT")
        );
    }
    println!();
    let st = Status::read(cfg).map_err(|e| e.to_string())?;
    for l in st.human().lines() {
        println!("    {l}");
    }
    println!();
    println!("demo finished: every target holds the final state. Try:");
    println!("    chanvault status --config {}", files.config.display());
    println!(
        "    age -d -i {} -o channel.backup {}",
        files.identity.display(),
        dir.join("targets/pbs").join(CURRENT_FILE).display()
    );
    println!(
        "    chanvault inspect {} --identity {} --aezeed-file {} --passphrase-file {} --network regtest   # with the seed alone, no node",
        dir.join("targets/pbs").join(CURRENT_FILE).display(),
        files.identity.display(),
        files.aezeed.display(),
        files.aezeed_passphrase.display()
    );
    println!(
        "    restic -r {} --password-file {} snapshots",
        dir.join("targets/restic").display(),
        files.password.display()
    );
    println!(
        "    chanvault dev lnd-sim --dir {}   # drive the simulator by hand",
        dir.join("lnd").display()
    );
    Ok(())
}

/// Poll `ready` until true; fail early if watch died, or after the timeout.
async fn wait_for(
    what: &str,
    watcher: &mut tokio::task::JoinHandle<Result<(), crate::watch::AgentError>>,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if ready() {
            println!("    ✓ {what} ({} ms)", start.elapsed().as_millis());
            return Ok(());
        }
        if watcher.is_finished() {
            return Err(format!("watch stopped before {what} was reached"));
        }
        if start.elapsed() > SETTLE_TIMEOUT {
            return Err(format!(
                "{what} not reached within {}s",
                SETTLE_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn demo_config(sim: &Simulator, recipient: &str) -> String {
    format!(
        r#"# Written by `chanvault demo`. Relative paths are relative to this file.
state_dir = "state"

[lnd]
address = "{addr}"
tls_cert = "{cert}"
macaroon = "{mac}"

[backup]
schedule = "0 * * * * *"
keep = 20

[seal]
recipients = ["{recipient}"]

[delivery]
retry_initial_seconds = 1
retry_max_seconds = 30

[metrics]
# Any free loopback port, so the demo never collides with a running watch.
listen = "127.0.0.1:0"

[[target]]
name = "pbs"
kind = "dir"
path = "targets/pbs"

[[target]]
name = "nas"
kind = "dir"
path = "targets/nas"

[[target]]
name = "offsite"
kind = "restic"
repository = "targets/restic"
password_file = "restic-password"
"#,
        addr = sim.addr(),
        cert = sim.tls_cert_path().display(),
        mac = sim.offchain_read_macaroon_path().display(),
    )
}
