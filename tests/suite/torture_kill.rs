//! kill -9 torture: the real `chanvault watch` against the in-process LND
//! simulator (a dir target and a local restic repository), SIGKILLed at
//! random moments while channels open and close, restarted each time.
//!
//! Kill moments come from a seeded RNG (the seed is printed; set
//! `CHANVAULT_TORTURE_SEED` to replay). Some rounds delay `VerifyChanBackup`
//! so that kills land during verify, seal, spool write and upload rather than
//! only at start-up. After the last kill the agent runs until the final state
//! is everywhere, then the harness checks:
//!
//! - every target holds the final channel set (dir: manifest fingerprint and
//!   the current file opened with the identity; restic: the latest snapshot
//!   opened with the identity);
//! - the spool holds no partial or unreadable file: no `*.tmp`, every file under
//!   `state/backups` is named by its SHA-256 and journaled, every journaled
//!   backup has its file;
//! - every backup ever seen journaled after a kill is still journaled, unless
//!   `keep` pruned it;
//! - no target holds a corrupt file (every dir history `.age` opens; stock
//!   `restic check --read-data` is clean).
//!
//! It prints `kills=N lost=0 corrupt=0`. CI runs 50 kills
//! (`CHANVAULT_TORTURE_KILLS`); the documented long run is 1000:
//! `CHANVAULT_TORTURE_KILLS=1000 cargo test --release --test torture_kill -- --nocapture`.

use crate::common::bin;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Fixture;
use chanvault::scb::{ChanPoint, fingerprint, sha256_hex};
use chanvault::seal::Identities;
use chanvault::sink::dir::{CURRENT_FILE, DirTarget, HISTORY_DIR};
use chanvault::sink::restic::ResticTarget;
use chanvault::spool::{BACKUPS_DIR, JOURNAL_FILE, Journal, parse_journal};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DEFAULT_KILLS: usize = 50;
const KEEP: usize = 20;
const RESTIC_PASSWORD: &str = "torture-repo-password";
/// Longest a run may live before its SIGKILL.
const MAX_RUN_MS: u64 = 700;
const MAX_CHANNELS: usize = 12;
const SETTLE_SECS: u64 = 60;

fn restic_available() -> bool {
    Command::new("restic")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn spawn_watch(f: &Fixture, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open log");
    bin()
        .args(["--log-level", "info", "watch", "--config"])
        .arg(&f.config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("watch starts")
}

fn read_journal(state: &Path) -> Journal {
    match std::fs::read(state.join(JOURNAL_FILE)) {
        Ok(bytes) => parse_journal(&bytes).unwrap_or_else(|e| panic!("journal unreadable: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Journal::default(),
        Err(e) => panic!("read journal: {e}"),
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Opens with the identity and decodes as the simulator's multi backup.
fn opens(ids: &Identities, f: &Fixture, sealed: &[u8]) -> Option<Vec<ChanPoint>> {
    let plain = chanvault::seal::open(ids, sealed).ok()?;
    f.sim
        .decode_multi(plain.expose())
        .ok()
        .map(|s| s.into_iter().collect())
}

fn mutate_channels(f: &Fixture, rng: &mut StdRng) {
    let open = f.sim.channels();
    if open.len() < 2 || (open.len() < MAX_CHANNELS && rng.gen_bool(0.6)) {
        f.sim.open_channels(rng.gen_range(1..=2));
    } else {
        let victim = open.iter().nth(rng.gen_range(0..open.len())).cloned();
        if let Some(cp) = victim {
            f.sim.close_channel(&cp);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_dash_nine_loses_and_corrupts_nothing() {
    if !restic_available() {
        panic!("restic is not installed: apt-get install restic (.ci/run does this)");
    }
    let kills: usize = std::env::var("CHANVAULT_TORTURE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_KILLS);
    let seed: u64 = std::env::var("CHANVAULT_TORTURE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        });
    println!("torture seed={seed} (CHANVAULT_TORTURE_SEED={seed} replays the kill schedule)");
    let mut rng = StdRng::seed_from_u64(seed);

    let f = Fixture::new().await;
    let repo = f.path().join("restic-repo");
    let pw = f.path().join("restic-password");
    chanvault::fsutil::create_secret_file(&pw, format!("{RESTIC_PASSWORD}\n").as_bytes())
        .expect("password file");
    f.write_config(&format!(
        "[[target]]\nname = \"offsite\"\nkind = \"restic\"\nrepository = \"{}\"\npassword_file = \"restic-password\"\n",
        repo.display()
    ));
    f.edit_config("keep = 10", &format!("keep = {KEEP}"));
    let init = bin()
        .args(["target", "init", "offsite", "--config"])
        .arg(&f.config)
        .output()
        .expect("target init runs");
    assert!(
        init.status.success(),
        "target init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    f.sim.open_channels(3);

    let state = f.path().join("state");
    let log = f.path().join("watch.log");
    let started = Instant::now();
    // Every backup id seen journaled, with its creation time.
    let mut seen: BTreeMap<String, chrono::DateTime<chrono::Utc>> = BTreeMap::new();
    for _ in 0..kills {
        if rng.gen_bool(0.3) {
            f.sim.set_delay(
                "VerifyChanBackup",
                Duration::from_millis(rng.gen_range(10..150)),
            );
        } else {
            f.sim.set_delay("VerifyChanBackup", Duration::ZERO);
        }
        if rng.gen_bool(0.3) {
            mutate_channels(&f, &mut rng);
        }
        let mut child = spawn_watch(&f, &log);
        let run = rng.gen_range(0..MAX_RUN_MS);
        // Channel events while it runs, so kills land mid-pipeline.
        let event_at = rng.gen_range(0..=run);
        tokio::time::sleep(Duration::from_millis(event_at)).await;
        if rng.gen_bool(0.7) {
            mutate_channels(&f, &mut rng);
        }
        tokio::time::sleep(Duration::from_millis(run - event_at)).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        // The journal must parse after every kill.
        for b in read_journal(&state).backups {
            seen.entry(b.id).or_insert(b.created);
        }
    }
    let torture_time = started.elapsed();

    // Let it settle: the final state must reach every target.
    f.sim.set_delay("VerifyChanBackup", Duration::ZERO);
    let want: Vec<ChanPoint> = f.sim.channels().into_iter().collect();
    let want_fp = fingerprint(&want);
    let log_mark = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
    let mut child = spawn_watch(&f, &log);
    let dir_target = DirTarget::new("pbs", &f.target_dir("pbs"));
    let settle = Instant::now();
    loop {
        let j = read_journal(&state);
        let done = j.last_good.as_ref().is_some_and(|g| {
            j.get(g).is_some_and(|r| r.fingerprint == want_fp)
                && j.targets
                    .values()
                    .filter(|t| t.current.as_ref() == Some(g))
                    .count()
                    == 2
        }) && matches!(dir_target.current_manifest(), Ok(Some(m)) if m.fingerprint == crate::common::published(&state, &want_fp))
            // This run is up (its signal handler too), not only an earlier one's work.
            && std::fs::read(&log)
                .is_ok_and(|l| String::from_utf8_lossy(&l[log_mark.min(l.len())..]).contains("connected to LND"));
        if done {
            break;
        }
        if settle.elapsed() > Duration::from_secs(SETTLE_SECS) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "final state not delivered within {SETTLE_SECS}s; log:\n{}",
                tail(&log)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settle_time = settle.elapsed();
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    let status = child.wait().expect("reap");
    assert_eq!(status.code(), Some(0), "watch exits 0 on SIGTERM");
    for b in read_journal(&state).backups {
        seen.entry(b.id).or_insert(b.created);
    }

    let ids = Identities::from_file(&f.identity).expect("identity");
    let mut corrupt = Vec::new();
    let mut lost = Vec::new();

    // Spool: no partial file, every file named by its hash and journaled.
    let j = read_journal(&state);
    let mut spool_files = Vec::new();
    files_under(&state, &mut spool_files);
    for p in &spool_files {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(chanvault::fsutil::TEMP_SUFFIX) {
            corrupt.push(format!("spool temp file left: {}", p.display()));
        }
    }
    let backups = state.join(BACKUPS_DIR);
    let mut on_disk = Vec::new();
    files_under(&backups, &mut on_disk);
    for p in &on_disk {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let bytes = std::fs::read(p).expect("read spool file");
        let id = name.strip_suffix(".age").unwrap_or("");
        if sha256_hex(&bytes) != id {
            corrupt.push(format!("spool file {name} is not named by its SHA-256"));
        } else if j.get(id).is_none() {
            corrupt.push(format!("spool file {name} is not journaled"));
        } else if opens(&ids, &f, &bytes).is_none() {
            corrupt.push(format!("spool file {name} does not open"));
        }
    }
    for b in &j.backups {
        if !backups.join(format!("{}.age", b.id)).exists() {
            lost.push(format!("journaled backup {} has no spool file", b.id));
        }
    }
    // Nothing ever journaled went missing, except what `keep` pruned: the
    // journal is full and the missing one is older than every kept backup
    // (the last good one may be older and is kept regardless).
    let oldest_kept = j
        .backups
        .iter()
        .filter(|b| Some(&b.id) != j.last_good.as_ref())
        .map(|b| b.created)
        .min();
    for (id, created) in &seen {
        if j.get(id).is_some() {
            continue;
        }
        let pruned = j.backups.len() >= KEEP && oldest_kept.is_some_and(|o| *created <= o);
        if !pruned {
            lost.push(format!("backup {id} was journaled and is gone"));
        }
    }

    // Dir target: the final state, and every file opens.
    let cur = std::fs::read(f.target_dir("pbs").join(CURRENT_FILE)).expect("current file");
    match opens(&ids, &f, &cur) {
        Some(set) if set == want => {}
        Some(_) => lost.push("dir target current holds a different channel set".into()),
        None => corrupt.push("dir target current does not open".into()),
    }
    let mut hist = Vec::new();
    files_under(&f.target_dir("pbs").join(HISTORY_DIR), &mut hist);
    let mut stray_tmp = 0;
    for p in &hist {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".age") {
            let bytes = std::fs::read(p).expect("read history");
            if opens(&ids, &f, &bytes).is_none() {
                corrupt.push(format!("dir history {name} does not open"));
            }
        } else if name.ends_with(chanvault::fsutil::TEMP_SUFFIX) {
            stray_tmp += 1;
        }
    }

    // Restic target: the latest snapshot is the final state; stock restic checks all data.
    let cfg = f.load();
    let rcfg = cfg
        .targets
        .iter()
        .find_map(|t| match t {
            chanvault::config::TargetConfig::Restic(r) => Some(r.clone()),
            _ => None,
        })
        .expect("restic target in config");
    let rt = ResticTarget::new(&rcfg);
    let latest = tokio::task::spawn_blocking(move || rt.latest_blocking())
        .await
        .expect("join")
        .expect("restic latest");
    match latest {
        Some((info, bytes)) => {
            let fp_tag = format!("fp:{}", &crate::common::published(&state, &want_fp)[..12]);
            if !info.tags.contains(&fp_tag) {
                lost.push(format!("restic latest snapshot tags {:?}", info.tags));
            }
            match opens(&ids, &f, &bytes) {
                Some(set) if set == want => {}
                Some(_) => lost.push("restic latest holds a different channel set".into()),
                None => corrupt.push("restic latest does not open".into()),
            }
        }
        None => lost.push("restic repository has no snapshot".into()),
    }
    // A SIGKILLed agent cannot release its restic lock; like any killed
    // restic, it leaves a stale lock that stock `restic unlock` removes
    // (only locks of dead processes on this host).
    let stale_locks = std::fs::read_dir(repo.join("locks")).map_or(0, |d| d.count());
    let stock = |args: &[&str]| {
        Command::new("restic")
            .arg("-r")
            .arg(&repo)
            .arg("--password-file")
            .arg(&pw)
            .arg("--no-cache")
            .args(args)
            .env_remove("RESTIC_PASSWORD")
            .env_remove("RESTIC_REPOSITORY")
            .output()
            .expect("restic runs")
    };
    let unlock = stock(&["unlock"]);
    assert!(unlock.status.success(), "restic unlock");
    let check = stock(&["check", "--read-data"]);
    let check_out = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    if !check.status.success() || !check_out.contains("no errors were found") {
        corrupt.push(format!("restic check --read-data: {check_out}"));
    }

    println!(
        "kills={kills} lost={} corrupt={} (seed={seed}, backups seen={}, journaled={}, \
         dir history files={}, stray target temp files={stray_tmp}, stale restic locks={stale_locks}, torture {:.1}s, settle {:.1}s)",
        lost.len(),
        corrupt.len(),
        seen.len(),
        j.backups.len(),
        hist.len(),
        torture_time.as_secs_f64(),
        settle_time.as_secs_f64(),
    );
    assert!(
        lost.is_empty() && corrupt.is_empty(),
        "seed={seed}\nlost: {lost:#?}\ncorrupt: {corrupt:#?}\nlog tail:\n{}",
        tail(&log)
    );
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
