//! `chanvault restore`: arguments, confirmation, the passphrase prompt and
//! what is printed. Listing, fetching and checking are `crate::restore`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{ConfigArg, Stderr, exit};
use crate::config::Config;
use crate::lnd::{LndClient, LndSettings};
use crate::pipeline::short;
use crate::progress::{Progress, Quiet};
use crate::restore::{self, Fetched, Listed, LndView, Location, RestoreError};
use crate::seal::Identities;

/// Steps go to stderr, unless the output is JSON.
fn progress(quiet: bool) -> &'static dyn Progress {
    if quiet { &Quiet } else { &Stderr }
}

#[derive(Subcommand, Debug)]
pub enum RestoreCommand {
    /// List every backup the targets hold, newest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this target.
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Fetch a backup, check it, decrypt it and write the plain channel.backup (0600, never overwritten).
    Fetch(FetchArgs),
    /// Fetch, then VerifyChanBackup and RestoreChannelBackups on LND (lnd.restore_macaroon) after confirmation.
    Apply {
        #[command(flatten)]
        fetch: FetchArgs,
        /// Do not ask; restore (for scripts).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("identity_source").required(true).args(["identity", "identity_from_escrow"])))]
pub struct FetchArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this target.
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Backup id (a prefix of its SHA-256, as `restore list` shows it) or `latest`.
    #[arg(long, value_name = "ID", default_value = "latest")]
    pub backup: String,
    /// Write the plain channel.backup here (a new file, mode 0600); required by fetch.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// age identity file that opens the backup (a passphrase-protected one is asked for on the terminal).
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Read the age identity escrowed in OpenBao under NAME (audited).
    #[arg(long, value_name = "NAME")]
    pub identity_from_escrow: Option<String>,
    /// Offline identity that opens an envelope-sealed escrowed item.
    #[arg(long, value_name = "FILE", requires = "identity_from_escrow")]
    pub envelope_identity: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

fn load(path: &Path) -> Result<Config, RestoreError> {
    Config::load(path).map_err(|e| RestoreError::Other(e.to_string()))
}

/// The identities `--identity` / `--identity-from-escrow` name.
pub async fn identities(
    cfg: &Config,
    a: &FetchArgs,
    quiet: bool,
) -> Result<Identities, RestoreError> {
    if let Some(p) = &a.identity {
        if let Some(ids) = passphrase_identity(p)? {
            return Ok(ids);
        }
        return Identities::from_file(p).map_err(|e| RestoreError::Other(e.to_string()));
    }
    let Some(name) = &a.identity_from_escrow else {
        return Err(RestoreError::Other(
            "pass --identity FILE or --identity-from-escrow NAME".into(),
        ));
    };
    let envelope = a
        .envelope_identity
        .as_deref()
        .map(Identities::from_file)
        .transpose()
        .map_err(|e| RestoreError::Other(e.to_string()))?;
    progress(quiet).step(&format!(
        "reading the escrowed identity {name} from OpenBao…"
    ));
    restore::escrowed_identity(cfg, name, envelope.as_ref()).await
}

/// An identity file encrypted with a passphrase (`age -p`, as age-keygen's
/// output is often stored): ask for the passphrase on the terminal and parse
/// what it opens. `None` when the file is not passphrase-encrypted.
fn passphrase_identity(path: &Path) -> Result<Option<Identities>, RestoreError> {
    use std::io::Read;
    let read_err = |e: std::io::Error| {
        RestoreError::Other(format!("cannot read identity file {}: {e}", path.display()))
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    file.take(crate::seal::IDENTITY_FILE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let reader = age::armor::ArmoredReader::new(&bytes[..]);
    let Ok(decryptor) = age::Decryptor::new(reader) else {
        return Ok(None);
    };
    if !decryptor.is_scrypt() {
        return Ok(None);
    }
    if !std::io::stdin().is_terminal() {
        return Err(RestoreError::Other(format!(
            "identity file {} is passphrase-protected and there is no terminal to ask for the passphrase on",
            path.display()
        )));
    }
    let pass =
        rpassword::prompt_password(format!("passphrase for {} (not echoed): ", path.display()))
            .map_err(|e| RestoreError::Other(format!("cannot read the passphrase: {e}")))?;
    let id = age::scrypt::Identity::new(age::secrecy::SecretString::from(pass));
    let mut reader = decryptor
        .decrypt(std::iter::once(&id as &dyn age::Identity))
        .map_err(|e| {
            RestoreError::WrongIdentity(format!(
                "identity file {}: the passphrase does not open it ({e})",
                path.display()
            ))
        })?;
    let mut text = zeroize::Zeroizing::new(String::new());
    reader
        .read_to_string(&mut text)
        .map_err(|e| RestoreError::Other(format!("identity file {}: {e}", path.display())))?;
    let secret = crate::secret::SecretString::new(text.to_string());
    Identities::from_secret_str(&secret, &path.display().to_string())
        .map(Some)
        .map_err(|e| RestoreError::Other(e.to_string()))
}

/// `restore list`.
pub async fn run_list(config: &Path, target: Option<&str>, json: bool) -> Result<(), RestoreError> {
    let cfg = load(config)?;
    let listing = restore::list(&cfg, target, progress(json)).await?;
    if listing.backups.is_empty() {
        let where_ = target.map_or("any target".to_owned(), |t| format!("target {t}"));
        return Err(RestoreError::NoBackups(format!("no backups on {where_}")));
    }
    if json {
        let text = serde_json::to_string_pretty(&listing)
            .map_err(|e| RestoreError::Other(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "{:<14} {:<24} {:>8}  {:<14} {:<8} held by",
        "backup", "time (UTC)", "channels", "fingerprint", "suspect"
    );
    for b in &listing.backups {
        let mut held: Vec<String> = b
            .held_by
            .iter()
            .map(|l| match &l.label {
                Some(label) => format!("{} ({label})", l.target),
                None => l.target.clone(),
            })
            .collect();
        held.dedup();
        println!(
            "{:<14} {:<24} {:>8}  {:<14} {:<8} {}",
            short(&b.id),
            b.created.format("%Y-%m-%d %H:%M:%S"),
            b.channels,
            short(&b.fingerprint),
            if b.suspect.is_some() { "SUSPECT" } else { "" },
            held.join(", ")
        );
    }
    for (t, e) in &listing.failed_targets {
        println!("! target {t} could not be read: {e}");
    }
    Ok(())
}

#[derive(Serialize)]
struct FetchReport<'a> {
    backup: &'a Listed,
    from: &'a Location,
    #[serde(skip_serializing_if = "Option::is_none")]
    out: Option<&'a Path>,
    lnd: &'a LndView,
    /// What the node's backup key reads in it (`lnd.backup_key_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    inside: Option<&'a Inside>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_restored: Option<u32>,
}

/// lnd's layer read with `lnd.backup_key_file`: no LND needed.
#[derive(Serialize)]
#[serde(untagged)]
enum Inside {
    Read(crate::inspect::Inspection),
    Error { backup_key_error: String },
}

fn read_inside(cfg: &Config, plain: &[u8]) -> Option<Inside> {
    let file = cfg.lnd.backup_key_file.as_ref()?;
    let what = format!("lnd.backup_key_file {}", file.display());
    let key = match crate::chanbackup::BackupKey::from_file(file) {
        Ok(k) => k,
        Err(e) => {
            return Some(Inside::Error {
                backup_key_error: format!("{what}: {e}"),
            });
        }
    };
    let what = format!("backup key {} ({what})", key.fingerprint());
    Some(match crate::inspect::inspect(plain, None, &key, &what) {
        Ok(found) => Inside::Read(found),
        Err(e) => Inside::Error {
            backup_key_error: e.to_string(),
        },
    })
}

fn print_inside(inside: Option<&Inside>) {
    match inside {
        None => {}
        Some(Inside::Error { backup_key_error }) => {
            println!("cannot read it with the backup key: {backup_key_error}")
        }
        Some(Inside::Read(found)) => {
            println!(
                "the backup key {} reads {} channel(s) in it (no LND needed):",
                found.backup_key,
                found.channels.len()
            );
            for c in &found.channels {
                println!(
                    "  {}  peer {}  {}",
                    c.chan_point,
                    c.peer,
                    c.addresses_text()
                );
            }
        }
    }
}

fn print_lnd(v: &LndView) {
    if let Some(e) = &v.refused {
        println!("LND REFUSED this backup: {e}");
        return;
    }
    if !v.reachable {
        println!(
            "LND is unreachable ({}); channel points and missing channels cannot be shown",
            v.error.as_deref().unwrap_or("unknown error")
        );
        return;
    }
    match &v.covered {
        Some(c) => {
            println!(
                "covers {} channel(s) (decoded by LND's VerifyChanBackup):",
                c.len()
            );
            for p in c {
                println!("  {p}");
            }
        }
        None => println!("LND accepted the backup (lnd < 0.19 does not list its channel points)"),
    }
    match (&v.missing, &v.current) {
        (Some(m), _) if m.is_empty() => println!("every channel LND has now is in this backup"),
        (Some(m), _) => {
            println!(
                "{} of LND's current channel(s) are NOT in this backup:",
                m.len()
            );
            for p in m {
                println!("  {p}");
            }
        }
        (None, Some(c)) => println!("LND has {} channel(s) now", c.len()),
        _ => {}
    }
    if let Some(e) = &v.error {
        println!("LND: {e}");
    }
}

/// `restore fetch` and `restore apply`.
pub async fn run_fetch(a: FetchArgs, apply: bool, yes: bool) -> Result<(), RestoreError> {
    let cfg = load(&a.config.config)?;
    if !apply && a.out.is_none() {
        return Err(RestoreError::Other(
            "restore fetch needs --out FILE (the plain channel.backup is written there, mode 0600)"
                .into(),
        ));
    }
    if let Some(out) = &a.out
        && out.exists()
    {
        return Err(RestoreError::Other(format!(
            "{} already exists; restore never overwrites a file (choose a new path)",
            out.display()
        )));
    }
    let restore_mac = if apply {
        Some(cfg.lnd.restore_macaroon.clone().ok_or_else(|| {
            RestoreError::Other(format!(
                "config {}: lnd.restore_macaroon is not set; restore apply needs a macaroon with offchain:write \
                 (lncli bakemacaroon offchain:read offchain:write), or write the file with restore fetch and use \
                 lncli restorechanbackup --multi_file",
                cfg.source.display()
            ))
        })?)
    } else {
        None
    };
    let quiet = a.json;
    let ids = identities(&cfg, &a, quiet).await?;
    let f = restore::fetch(&cfg, a.target.as_deref(), &a.backup, &ids, progress(quiet)).await?;
    if let Some(out) = &a.out {
        crate::fsutil::create_secret_file(out, f.plain.expose()).map_err(|e| {
            RestoreError::Other(format!(
                "cannot create {}: {e} (it must not exist yet)",
                out.display()
            ))
        })?;
    }
    let lnd = restore::ask_lnd(&cfg, f.plain.expose(), progress(quiet)).await;
    let inside = read_inside(&cfg, f.plain.expose());
    let inside = inside.as_ref();
    if !quiet {
        println!(
            "backup {} taken {} ({} channel(s), fingerprint {}) from target {} ({})",
            short(&f.backup.id),
            f.backup.created.format("%Y-%m-%d %H:%M:%S UTC"),
            f.backup.channels,
            short(&f.backup.fingerprint),
            f.from.target,
            f.from.locator
        );
        if let Some(out) = &a.out {
            println!(
                "wrote {} (mode 0600): lncli restorechanbackup --multi_file {0} (or lncli create --multi_file {0} on a new node)",
                out.display()
            );
        }
        print_inside(inside);
        print_lnd(&lnd);
    }
    if let Some(e) = &lnd.refused {
        if quiet {
            print_json(&f, a.out.as_deref(), &lnd, inside, None)?;
        }
        return Err(RestoreError::LndRefused(format!(
            "LND at {} refused backup {}: {e}",
            cfg.lnd.address,
            short(&f.backup.id)
        )));
    }
    let Some(mac) = restore_mac else {
        if quiet {
            print_json(&f, a.out.as_deref(), &lnd, inside, None)?;
        }
        return Ok(());
    };
    if !lnd.reachable {
        return Err(RestoreError::Other(format!(
            "LND at {} is unreachable: {}",
            cfg.lnd.address,
            lnd.error.as_deref().unwrap_or("unknown error")
        )));
    }
    confirm(yes, &cfg, &f)?;
    let mut settings = LndSettings::from(&cfg.lnd);
    settings.macaroon = mac;
    progress(quiet).step("calling RestoreChannelBackups…");
    let client = LndClient::connect(&settings)
        .await
        .map_err(|e| RestoreError::Other(e.to_string()))?;
    let n = client.restore_multi(f.plain.expose()).await.map_err(|e| {
        if restore::lnd_class(&e) {
            RestoreError::LndRefused(format!(
                "LND at {} refused to restore backup {}: {e}",
                cfg.lnd.address,
                short(&f.backup.id)
            ))
        } else {
            RestoreError::Other(e.to_string())
        }
    })?;
    if quiet {
        print_json(&f, a.out.as_deref(), &lnd, inside, Some(n))?;
    } else {
        println!("LND restored {n} channel(s) (num_restored; lnd < 0.19 always answers 0)");
        println!(
            "next: LND connects to each peer and asks it to force-close the channel (data loss protection); \
             your funds are swept to the on-chain wallet once the peer's commitment confirms and, for \
             outputs that are yours to sweep, after the CSV delay (often 144-2016 blocks). Keep LND running \
             and online until `lncli pendingchannels` is empty; do not run the old node again."
        );
    }
    Ok(())
}

fn print_json(
    f: &Fetched,
    out: Option<&Path>,
    lnd: &LndView,
    inside: Option<&Inside>,
    n: Option<u32>,
) -> Result<(), RestoreError> {
    let r = FetchReport {
        backup: &f.backup,
        from: &f.from,
        out,
        lnd,
        inside,
        num_restored: n,
    };
    let text = serde_json::to_string_pretty(&r).map_err(|e| RestoreError::Other(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn confirm(yes: bool, cfg: &Config, f: &Fetched) -> Result<(), RestoreError> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(RestoreError::NotConfirmed(
            "refusing to restore without confirmation: no terminal to ask on; pass --yes".into(),
        ));
    }
    eprint!(
        "Restore backup {} ({} channel(s)) into LND at {}? Every peer will force-close. Type yes: ",
        short(&f.backup.id),
        f.backup.channels,
        cfg.lnd.address
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| RestoreError::Other(format!("cannot read the answer: {e}")))?;
    if answer.trim() != "yes" {
        return Err(RestoreError::NotConfirmed(
            "not confirmed; nothing was restored".into(),
        ));
    }
    Ok(())
}

/// Dispatch from the command line; returns the exit code.
pub async fn run(cmd: RestoreCommand) -> u8 {
    let r = match cmd {
        RestoreCommand::List {
            config,
            target,
            json,
        } => run_list(&config.config, target.as_deref(), json).await,
        RestoreCommand::Fetch(a) => run_fetch(a, false, false).await,
        RestoreCommand::Apply { fetch, yes } => run_fetch(fetch, true, yes).await,
    };
    match r {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("chanvault: error: {e}");
            exit::of_restore(&e)
        }
    }
}
