//! `chanvault restore`: disaster recovery from the targets alone.
//!
//! Works on a fresh machine with nothing but the config, an identity source
//! and a reachable target: the spool is never opened (the disk that held it
//! is usually the one that died). Every backup is checked against what the
//! target published next to it (the dir target's manifest, the restic
//! snapshot's `backup:` tag) before it is decrypted.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cli::ConfigArg;
use crate::config::{Config, TargetConfig};
use crate::lnd::{LndClient, LndError, LndSettings};
use crate::pipeline::short;
use crate::scb::{ChanPoint, sha256_hex};
use crate::seal::{Identities, SealError};
use crate::secret::SecretBytes;
use crate::sink::TargetError;

/// Exit codes of `restore` (documented in the README).
pub mod exit {
    /// No identity given can open the backup.
    pub const WRONG_IDENTITY: u8 = 10;
    /// The ciphertext does not match its manifest / tag, or does not authenticate.
    pub const TAMPERED: u8 = 11;
    /// A target (or every target) could not be read.
    pub const TARGET_UNREACHABLE: u8 = 12;
    /// No backups (or not the one asked for) on the targets.
    pub const NO_BACKUPS: u8 = 13;
    /// LND refused the backup (VerifyChanBackup or RestoreChannelBackups).
    pub const LND_REFUSED: u8 = 14;
    /// `restore apply` was not confirmed (no terminal and no --yes, or the answer was not "yes").
    pub const NOT_CONFIRMED: u8 = 15;
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0}")]
    Other(String),
    #[error("{0}")]
    WrongIdentity(String),
    #[error("{0}")]
    Tampered(String),
    /// Targets that could not be read: the one a copy is on, or every one listed.
    #[error("{}", joined(.0))]
    Unreachable(Vec<TargetError>),
    #[error("{0}")]
    NoBackups(String),
    #[error("{0}")]
    LndRefused(String),
    #[error("{0}")]
    NotConfirmed(String),
}

fn joined(errors: &[TargetError]) -> String {
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    all.join("; ")
}

impl RestoreError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RestoreError::Other(_) => crate::cli::exit::ERROR,
            RestoreError::WrongIdentity(_) => exit::WRONG_IDENTITY,
            RestoreError::Tampered(_) => exit::TAMPERED,
            RestoreError::Unreachable(_) => exit::TARGET_UNREACHABLE,
            RestoreError::NoBackups(_) => exit::NO_BACKUPS,
            RestoreError::LndRefused(_) => exit::LND_REFUSED,
            RestoreError::NotConfirmed(_) => exit::NOT_CONFIRMED,
        }
    }
}

// ------------------------------------------------------------------ CLI args

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

// ------------------------------------------------------------------ listing

/// Where one copy of a backup is.
#[derive(Debug, Clone, Serialize)]
pub struct Location {
    pub target: String,
    pub kind: &'static str,
    /// A file path (dir) or a snapshot id (restic).
    pub locator: String,
    /// What the copy must hash to: the full SHA-256 (dir manifest) or a prefix (restic tag).
    #[serde(skip)]
    pub expect_sha256: String,
    /// What published `expect_sha256` ("manifest", "snapshot tag"), for messages.
    #[serde(skip)]
    pub published_in: &'static str,
}

/// One backup as the targets describe it. Nothing secret, no channel points.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// SHA-256 of the sealed file (a 12-character prefix when only restic holds it).
    pub id: String,
    pub created: DateTime<Utc>,
    pub channels: usize,
    pub fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspect: Option<String>,
    pub held_by: Vec<Location>,
}

/// What a listing found, and which targets could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub backups: Vec<Listed>,
    pub failed_targets: Vec<(String, String)>,
}

fn named<'a>(cfg: &'a Config, name: &str) -> Result<&'a TargetConfig, RestoreError> {
    cfg.targets
        .iter()
        .find(|t| t.name() == name)
        .ok_or_else(|| {
            RestoreError::Other(format!(
                "config {}: no target named {name:?}",
                cfg.source.display()
            ))
        })
}

fn selected<'a>(
    cfg: &'a Config,
    target: Option<&str>,
) -> Result<Vec<&'a TargetConfig>, RestoreError> {
    match target {
        Some(name) => named(cfg, name).map(|t| vec![t]),
        None if cfg.targets.is_empty() => Err(RestoreError::Other(format!(
            "config {}: no targets configured; add the [[target]] that holds the backups",
            cfg.source.display()
        ))),
        None => Ok(cfg.targets.iter().collect()),
    }
}

fn progress(quiet: bool, msg: &str) {
    if !quiet {
        eprintln!("chanvault: {msg}");
    }
}

/// The backups one target holds, as the target describes them.
async fn list_target(t: &TargetConfig) -> Result<Vec<Listed>, TargetError> {
    let sink = crate::sink::build(t);
    let held = sink.list().await?;
    Ok(held
        .into_iter()
        .map(|h| Listed {
            id: h.id,
            created: h.created,
            channels: h.channels,
            fingerprint: h.fingerprint,
            suspect: h.suspect,
            held_by: vec![Location {
                target: sink.name().to_owned(),
                kind: sink.kind(),
                locator: h.locator,
                expect_sha256: h.sealed_sha256,
                published_in: h.published_in,
            }],
        })
        .collect())
}

/// Every backup the selected targets hold, merged by id, newest first.
pub async fn list(
    cfg: &Config,
    target: Option<&str>,
    quiet: bool,
) -> Result<Listing, RestoreError> {
    let targets = selected(cfg, target)?;
    let mut backups: Vec<Listed> = Vec::new();
    let mut failed = Vec::new();
    for t in &targets {
        progress(quiet, &format!("listing target {}…", t.name()));
        match list_target(t).await {
            Ok(found) => {
                for b in found {
                    match backups.iter_mut().find(|x| short(&x.id) == short(&b.id)) {
                        Some(x) => {
                            if b.id.len() > x.id.len() {
                                x.id = b.id.clone();
                                x.fingerprint = b.fingerprint.clone();
                            }
                            x.suspect = x.suspect.take().or(b.suspect);
                            x.held_by.extend(b.held_by);
                        }
                        None => backups.push(b),
                    }
                }
            }
            Err(e) => {
                progress(quiet, &format!("warning: {e}"));
                failed.push((t.name().to_owned(), e));
            }
        }
    }
    if failed.len() == targets.len() {
        return Err(RestoreError::Unreachable(
            failed.into_iter().map(|(_, e)| e).collect(),
        ));
    }
    backups.sort_by_key(|b| std::cmp::Reverse(b.created));
    Ok(Listing {
        backups,
        failed_targets: failed
            .into_iter()
            .map(|(name, e)| (name, e.to_string()))
            .collect(),
    })
}

// ------------------------------------------------------------------ fetch

/// A fetched, checked and decrypted backup.
pub struct Fetched {
    pub backup: Listed,
    pub from: Location,
    pub sealed: Vec<u8>,
    pub plain: SecretBytes,
}

/// The backup `sel` names: `latest` (the newest good one) or an id prefix.
pub fn choose(listing: &Listing, sel: &str, where_: &str) -> Result<Listed, RestoreError> {
    if listing.backups.is_empty() {
        return Err(RestoreError::NoBackups(format!(
            "no backups on {where_}: nothing has been delivered there yet, or it is the wrong place"
        )));
    }
    if sel == "latest" {
        return listing
            .backups
            .iter()
            .find(|b| b.suspect.is_none())
            .cloned()
            .ok_or_else(|| {
                RestoreError::NoBackups(format!(
                    "only suspect backups on {where_}; pick one explicitly with --backup ID after checking `restore list`"
                ))
            });
    }
    let sel_l = sel.to_ascii_lowercase();
    let found: Vec<&Listed> = listing
        .backups
        .iter()
        .filter(|b| b.id.starts_with(&sel_l) || sel_l.starts_with(&b.id))
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(RestoreError::NoBackups(format!(
            "no backup {sel} on {where_} (`chanvault restore list` shows what is there)"
        ))),
        _ => Err(RestoreError::Other(format!(
            "backup id {sel} is ambiguous on {where_}; give more characters"
        ))),
    }
}

/// Read one copy and check it against what the target published.
pub async fn read_copy(cfg: &Config, loc: &Location) -> Result<Vec<u8>, RestoreError> {
    let sink = crate::sink::build(named(cfg, &loc.target)?);
    let bytes = sink
        .fetch(&loc.locator)
        .await
        .map_err(|e| RestoreError::Unreachable(vec![e]))?;
    let got = sha256_hex(&bytes);
    if !got.starts_with(&loc.expect_sha256) || loc.expect_sha256.is_empty() {
        return Err(RestoreError::Tampered(format!(
            "target {}: {} has SHA-256 {} but its {} says {}: the ciphertext was changed or damaged",
            loc.target,
            loc.locator,
            short(&got),
            loc.published_in,
            short(&loc.expect_sha256)
        )));
    }
    Ok(bytes)
}

/// Decrypt, mapping age's errors to the restore error classes.
pub fn decrypt(ids: &Identities, sealed: &[u8], what: &str) -> Result<SecretBytes, RestoreError> {
    crate::seal::open(ids, sealed).map_err(|e| match e {
        SealError::WrongIdentity { .. } => RestoreError::WrongIdentity(format!("{what}: {e}")),
        SealError::Corrupt(_) | SealError::Decrypt(_) => {
            RestoreError::Tampered(format!("{what}: {e}"))
        }
        other => RestoreError::Other(format!("{what}: {other}")),
    })
}

/// Fetch the chosen backup from the first target that holds an intact copy.
pub async fn fetch(
    cfg: &Config,
    target: Option<&str>,
    sel: &str,
    ids: &Identities,
    quiet: bool,
) -> Result<Fetched, RestoreError> {
    let listing = list(cfg, target, quiet).await?;
    let where_ = target.map_or("any target".to_owned(), |t| format!("target {t}"));
    let backup = choose(&listing, sel, &where_)?;
    let mut first_err: Option<RestoreError> = None;
    for loc in &backup.held_by {
        progress(
            quiet,
            &format!(
                "fetching backup {} from target {} ({})…",
                short(&backup.id),
                loc.target,
                loc.locator
            ),
        );
        let sealed = match read_copy(cfg, loc).await {
            Ok(b) => b,
            Err(e) => {
                progress(quiet, &format!("warning: {e}"));
                first_err.get_or_insert(e);
                continue;
            }
        };
        progress(quiet, "decrypting…");
        let what = format!("backup {} from target {}", short(&backup.id), loc.target);
        match decrypt(ids, &sealed, &what) {
            Ok(plain) => {
                return Ok(Fetched {
                    from: loc.clone(),
                    backup: backup.clone(),
                    sealed,
                    plain,
                });
            }
            // The identity is wrong for every copy: stop here.
            Err(e @ RestoreError::WrongIdentity(_)) => return Err(e),
            Err(e) => {
                progress(quiet, &format!("warning: {e}"));
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| {
        RestoreError::NoBackups(format!("backup {} has no readable copy", short(&backup.id)))
    }))
}

// ------------------------------------------------------------------ LND

/// What LND says about a backup, when it can be asked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LndView {
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// LND refused the backup (VerifyChanBackup failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Channel points the backup covers (VerifyChanBackup, lnd ≥ 0.19).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_points")]
    pub covered: Option<BTreeSet<ChanPoint>>,
    /// LND's channels now (ListChannels + PendingChannels).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_points")]
    pub current: Option<BTreeSet<ChanPoint>>,
    /// LND's channels the backup does not cover.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_points")]
    pub missing: Option<BTreeSet<ChanPoint>>,
}

/// Channel points as `txid:index` strings.
pub fn ser_points<S: serde::Serializer>(
    v: &Option<BTreeSet<ChanPoint>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    v.as_ref()
        .map(|x| x.iter().map(ToString::to_string).collect::<Vec<_>>())
        .serialize(s)
}

fn lnd_class(e: &LndError) -> bool {
    // Refusals of the backup itself (as opposed to connection/credential trouble).
    matches!(e, LndError::Rpc { .. } | LndError::BadReply { .. })
}

/// Ask LND (read macaroon) to decode the backup and list its channels now.
pub async fn ask_lnd(cfg: &Config, multi: &[u8], quiet: bool) -> LndView {
    let settings = LndSettings::from(&cfg.lnd);
    progress(
        quiet,
        &format!("asking LND at {} to verify the backup…", cfg.lnd.address),
    );
    let client = match LndClient::connect(&settings).await {
        Ok(c) => c,
        Err(e) => {
            return LndView {
                error: Some(e.to_string()),
                ..Default::default()
            };
        }
    };
    let mut v = LndView {
        reachable: true,
        ..Default::default()
    };
    match client.verify_multi(multi).await {
        Ok(points) => v.covered = points,
        Err(e) if lnd_class(&e) => v.refused = Some(e.to_string()),
        Err(e) => {
            v.reachable = !e.is_connection();
            v.error = Some(e.to_string());
            return v;
        }
    }
    match client.current_channels().await {
        Ok(cur) => {
            if let Some(cov) = &v.covered {
                v.missing = Some(cur.difference(cov).cloned().collect());
            }
            v.current = Some(cur);
        }
        Err(e) => v.error = Some(e.to_string()),
    }
    v
}

// ------------------------------------------------------------------ commands

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
    progress(
        quiet,
        &format!("reading the escrowed identity {name} from OpenBao…"),
    );
    escrowed_identity(cfg, name, envelope.as_ref()).await
}

/// Largest identity file read here (same bound as the seal module's).
const IDENTITY_FILE_LIMIT: u64 = 1024 * 1024;

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
    file.take(IDENTITY_FILE_LIMIT + 1)
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

/// Read an escrowed age identity through the audited escrow API.
pub async fn escrowed_identity(
    cfg: &Config,
    name: &str,
    envelope: Option<&Identities>,
) -> Result<Identities, RestoreError> {
    let mut e =
        crate::escrow::store::Escrow::open(cfg).map_err(|e| RestoreError::Other(e.to_string()))?;
    let item = e
        .get(name, None, envelope, true)
        .await
        .map_err(|e| RestoreError::Other(e.to_string()))?;
    if item.kind != crate::escrow::material::Kind::AgeIdentity {
        return Err(RestoreError::Other(format!(
            "escrowed item {name} is a {}, not an age-identity",
            item.kind
        )));
    }
    let Some(m) = item.material else {
        return Err(RestoreError::Other(format!(
            "{name} is envelope-sealed to the offline recipients; pass --envelope-identity FILE"
        )));
    };
    let Some(secret) = m.secret() else {
        return Err(RestoreError::Other(format!(
            "escrowed item {name} holds no secret"
        )));
    };
    Identities::from_secret_str(
        secret,
        &format!("escrowed identity {name} v{}", item.version),
    )
    .map_err(|e| RestoreError::Other(e.to_string()))
}

/// `restore list`.
pub async fn run_list(config: &Path, target: Option<&str>, json: bool) -> Result<(), RestoreError> {
    let cfg = load(config)?;
    let listing = list(&cfg, target, json).await?;
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
            .map(|l| {
                if l.kind == "restic" {
                    format!("{} ({})", l.target, &l.locator[..l.locator.len().min(8)])
                } else {
                    l.target.clone()
                }
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
    #[serde(skip_serializing_if = "Option::is_none")]
    num_restored: Option<u32>,
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
    let f = fetch(&cfg, a.target.as_deref(), &a.backup, &ids, quiet).await?;
    if let Some(out) = &a.out {
        crate::fsutil::create_secret_file(out, f.plain.expose()).map_err(|e| {
            RestoreError::Other(format!(
                "cannot create {}: {e} (it must not exist yet)",
                out.display()
            ))
        })?;
    }
    let lnd = ask_lnd(&cfg, f.plain.expose(), quiet).await;
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
        print_lnd(&lnd);
    }
    if let Some(e) = &lnd.refused {
        if quiet {
            print_json(&f, a.out.as_deref(), &lnd, None)?;
        }
        return Err(RestoreError::LndRefused(format!(
            "LND at {} refused backup {}: {e}",
            cfg.lnd.address,
            short(&f.backup.id)
        )));
    }
    let Some(mac) = restore_mac else {
        if quiet {
            print_json(&f, a.out.as_deref(), &lnd, None)?;
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
    progress(quiet, "calling RestoreChannelBackups…");
    let client = LndClient::connect(&settings)
        .await
        .map_err(|e| RestoreError::Other(e.to_string()))?;
    let n = client.restore_multi(f.plain.expose()).await.map_err(|e| {
        if lnd_class(&e) {
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
        print_json(&f, a.out.as_deref(), &lnd, Some(n))?;
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
    n: Option<u32>,
) -> Result<(), RestoreError> {
    let r = FetchReport {
        backup: &f.backup,
        from: &f.from,
        out,
        lnd,
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

/// Dispatch from `cli.rs`; returns the exit code.
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
        Ok(()) => crate::cli::exit::OK,
        Err(e) => {
            eprintln!("chanvault: error: {e}");
            e.exit_code()
        }
    }
}
