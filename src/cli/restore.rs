//! `chanvault restore`: arguments, confirmation, the passphrase prompt and
//! what is printed. Listing, fetching and checking are `crate::restore`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::restore_show::{print_against_newest, print_inside, print_listing, print_lnd};
use super::{ConfigArg, Stderr, exit};
use crate::config::Config;
use crate::lnd::{LndClient, LndSettings};
use crate::pipeline::short;
use crate::progress::{Progress, Quiet};
use crate::restore::contents::{self, Changes, Inside};
use crate::restore::{self, Fetched, Listed, LndView, Location, NodeKey, RestoreError};
use crate::seal::Identities;

/// Steps go to stderr, unless the output is JSON.
pub(super) fn progress(quiet: bool) -> &'static dyn Progress {
    if quiet { &Quiet } else { &Stderr }
}

#[derive(Subcommand, Debug)]
pub enum RestoreCommand {
    /// List every backup the targets hold, newest first; with a backup key and an identity, what is inside each.
    List(ListArgs),
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
#[command(group(clap::ArgGroup::new("identity_source").args(["identity", "identity_from_escrow"])))]
#[command(group(clap::ArgGroup::new("escrowed").multiple(true).args(["identity_from_escrow", "key_from_escrow"])))]
pub struct ListArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this target.
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// age identity file; with a backup key (lnd.backup_key_file or --key-from-escrow), every backup is opened to show what is inside.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Read the age identity escrowed in OpenBao under NAME (audited).
    #[arg(long, value_name = "NAME")]
    pub identity_from_escrow: Option<String>,
    /// lnd's backup key from the aezeed or lnd-backup-key escrowed under NAME (instead of lnd.backup_key_file).
    #[arg(long, value_name = "NAME", requires = "identity_source")]
    pub key_from_escrow: Option<String>,
    /// Offline identity that opens envelope-sealed escrowed items.
    #[arg(long, value_name = "FILE", requires = "escrowed")]
    pub envelope_identity: Option<PathBuf>,
    /// With a backup key: list the channels added and removed, not only their counts.
    #[arg(long)]
    pub verbose: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("identity_source").required(true).args(["identity", "identity_from_escrow"])))]
#[command(group(clap::ArgGroup::new("escrowed").multiple(true).args(["identity_from_escrow", "key_from_escrow"])))]
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
    /// lnd's backup key from the aezeed or lnd-backup-key escrowed under NAME (instead of lnd.backup_key_file).
    #[arg(long, value_name = "NAME")]
    pub key_from_escrow: Option<String>,
    /// Offline identity that opens envelope-sealed escrowed items.
    #[arg(long, value_name = "FILE", requires = "escrowed")]
    pub envelope_identity: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

fn load(path: &Path) -> Result<Config, RestoreError> {
    Config::load(path).map_err(|e| RestoreError::Other(e.to_string()))
}

/// The offline identity `--envelope-identity` names, if given.
pub(super) fn envelope(path: Option<&Path>) -> Result<Option<Identities>, RestoreError> {
    path.map(Identities::from_file)
        .transpose()
        .map_err(|e| RestoreError::Other(e.to_string()))
}

/// The age identities from a file (a passphrase-protected one is asked for
/// on the terminal) or from the escrow; `None` when neither is named.
pub(super) async fn identities(
    cfg: Option<&Config>,
    file: Option<&Path>,
    escrowed: Option<&str>,
    envelope: Option<&Identities>,
    quiet: bool,
) -> Result<Option<Identities>, RestoreError> {
    if let Some(p) = file {
        if let Some(ids) = passphrase_identity(p)? {
            return Ok(Some(ids));
        }
        return Identities::from_file(p)
            .map(Some)
            .map_err(|e| RestoreError::Other(e.to_string()));
    }
    let (Some(name), Some(cfg)) = (escrowed, cfg) else {
        return Ok(None);
    };
    progress(quiet).step(&format!(
        "reading the escrowed identity {name} from OpenBao…"
    ));
    restore::escrowed_identity(cfg, name, envelope)
        .await
        .map(Some)
}

/// lnd's backup key: `--key-from-escrow NAME`, else `[lnd] backup_key_file`;
/// `None` when neither. An escrowed key that cannot be had fails the
/// command; a key file that cannot be read is the inner error, shown where
/// the contents would be.
pub(super) async fn node_key(
    cfg: &Config,
    from_escrow: Option<&str>,
    envelope: Option<&Identities>,
    quiet: bool,
) -> Result<Option<Result<NodeKey, String>>, RestoreError> {
    if let Some(name) = from_escrow {
        progress(quiet).step(&format!(
            "reading the escrowed backup key {name} from OpenBao…"
        ));
        return restore::escrowed_node_key(cfg, name, envelope)
            .await
            .map(|k| Some(Ok(k)));
    }
    Ok(NodeKey::from_config(cfg).map(|r| r.map_err(|e| e.to_string())))
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
pub async fn run_list(a: &ListArgs) -> Result<(), RestoreError> {
    let cfg = load(&a.config.config)?;
    let quiet = a.json;
    let envelope = envelope(a.envelope_identity.as_deref())?;
    let key = node_key(&cfg, a.key_from_escrow.as_deref(), envelope.as_ref(), quiet).await?;
    let target = a.target.as_deref();
    let listing = restore::list(&cfg, target, progress(quiet)).await?;
    if listing.backups.is_empty() {
        let where_ = target.map_or("any target".to_owned(), |t| format!("target {t}"));
        return Err(RestoreError::NoBackups(format!("no backups on {where_}")));
    }
    let given = a.identity.is_some() || a.identity_from_escrow.is_some();
    let (rows, key_error, read_with) = match key {
        Some(Ok(key)) if given => {
            let ids = identities(
                Some(&cfg),
                a.identity.as_deref(),
                a.identity_from_escrow.as_deref(),
                envelope.as_ref(),
                quiet,
            )
            .await?
            .ok_or_else(|| RestoreError::Other("no identity".into()))?;
            let rows = contents::read_listing(&cfg, &listing, &ids, &key, progress(quiet)).await;
            (Some(rows), None, Some(key.describe()))
        }
        Some(Ok(key)) => {
            progress(quiet).step(&format!(
                "{} is there, but no age identity: pass --identity FILE or --identity-from-escrow NAME \
                 to see what is inside each backup",
                key.describe()
            ));
            (None, None, None)
        }
        Some(Err(e)) => (None, Some(e), None),
        None => (None, None, None),
    };
    if a.json {
        let mut v =
            serde_json::to_value(&listing).map_err(|e| RestoreError::Other(e.to_string()))?;
        if let Some(rows) = &rows {
            v["backups"] =
                serde_json::to_value(rows).map_err(|e| RestoreError::Other(e.to_string()))?;
        }
        if let Some(with) = read_with {
            v["read_with"] = with.into();
        }
        if let Some(e) = key_error {
            v["backup_key_error"] = e.into();
        }
        let text =
            serde_json::to_string_pretty(&v).map_err(|e| RestoreError::Other(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    if let Some(with) = &read_with {
        println!("what is inside: read with {with}, no LND needed");
    }
    print_listing(&listing, rows.as_deref(), a.verbose);
    if let Some(e) = key_error {
        println!("! cannot read what is inside: {e}");
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
    /// What the node's backup key reads in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    inside: Option<&'a Inside>,
    /// From this backup to the newest one on the same target.
    #[serde(skip_serializing_if = "Option::is_none")]
    changes_to_newest: Option<&'a Changes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    compare_error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_restored: Option<u32>,
}

/// What the node's key says about a fetched backup: what is inside it and
/// how it differs from the newest backup on its target.
struct KeyReading {
    inside: Option<Inside>,
    compared: Option<Result<Changes, String>>,
    newest_suspect: bool,
}

impl KeyReading {
    async fn of(
        cfg: &Config,
        listing: &restore::Listing,
        f: &Fetched,
        ids: &Identities,
        key: Option<Result<NodeKey, String>>,
        quiet: bool,
    ) -> KeyReading {
        let key = match key {
            None => {
                return KeyReading {
                    inside: None,
                    compared: None,
                    newest_suspect: false,
                };
            }
            Some(Err(backup_key_error)) => {
                return KeyReading {
                    inside: Some(Inside::KeyError { backup_key_error }),
                    compared: None,
                    newest_suspect: false,
                };
            }
            Some(Ok(key)) => key,
        };
        let inside = contents::read_plain(&key, f.plain.expose());
        let target = &f.from.target;
        let compared = contents::against_newest(
            cfg,
            listing,
            target,
            (&f.backup, &inside),
            ids,
            &key,
            progress(quiet),
        )
        .await;
        KeyReading {
            newest_suspect: contents::newest_on(listing, target)
                .is_some_and(|b| b.suspect.is_some()),
            inside: Some(inside),
            compared: Some(compared),
        }
    }
}

/// Refuse early what would fail after the fetch: an `--out` that exists,
/// `apply` without `lnd.restore_macaroon`.
fn precheck(cfg: &Config, a: &FetchArgs, apply: bool) -> Result<Option<PathBuf>, RestoreError> {
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
    if !apply {
        return Ok(None);
    }
    cfg.lnd.restore_macaroon.clone().map(Some).ok_or_else(|| {
        RestoreError::Other(format!(
            "config {}: lnd.restore_macaroon is not set; restore apply needs a macaroon with offchain:write \
             (lncli bakemacaroon offchain:read offchain:write), or write the file with restore fetch and use \
             lncli restorechanbackup --multi_file",
            cfg.source.display()
        ))
    })
}

fn print_fetched(f: &Fetched, out: Option<&Path>, read: &KeyReading, lnd: &LndView) {
    println!(
        "backup {} taken {} ({} channel(s), fingerprint {}) from target {} ({})",
        short(&f.backup.id),
        f.backup.created.format("%Y-%m-%d %H:%M:%S UTC"),
        f.backup.channels,
        short(&f.backup.fingerprint),
        f.from.target,
        f.from.locator
    );
    if let Some(out) = out {
        println!(
            "wrote {} (mode 0600): lncli restorechanbackup --multi_file {0} (or lncli create --multi_file {0} on a new node)",
            out.display()
        );
    }
    print_inside(read.inside.as_ref());
    if let Some(c) = &read.compared {
        print_against_newest(c, read.newest_suspect);
    }
    print_lnd(lnd);
}

/// `restore fetch` and `restore apply`.
pub async fn run_fetch(a: FetchArgs, apply: bool, yes: bool) -> Result<(), RestoreError> {
    let cfg = load(&a.config.config)?;
    let restore_mac = precheck(&cfg, &a, apply)?;
    let quiet = a.json;
    let envelope = envelope(a.envelope_identity.as_deref())?;
    let ids = identities(
        Some(&cfg),
        a.identity.as_deref(),
        a.identity_from_escrow.as_deref(),
        envelope.as_ref(),
        quiet,
    )
    .await?
    .ok_or_else(|| {
        RestoreError::Other("pass --identity FILE or --identity-from-escrow NAME".into())
    })?;
    let key = node_key(&cfg, a.key_from_escrow.as_deref(), envelope.as_ref(), quiet).await?;
    let target = a.target.as_deref();
    let listing = restore::list(&cfg, target, progress(quiet)).await?;
    let f = restore::fetch_from(&cfg, &listing, target, &a.backup, &ids, progress(quiet)).await?;
    if let Some(out) = &a.out {
        crate::fsutil::create_secret_file(out, f.plain.expose()).map_err(|e| {
            RestoreError::Other(format!(
                "cannot create {}: {e} (it must not exist yet)",
                out.display()
            ))
        })?;
    }
    let lnd = restore::ask_lnd(&cfg, f.plain.expose(), progress(quiet)).await;
    let read = KeyReading::of(&cfg, &listing, &f, &ids, key, quiet).await;
    if !quiet {
        print_fetched(&f, a.out.as_deref(), &read, &lnd);
    }
    let report = |n| print_json(&f, a.out.as_deref(), &lnd, &read, n);
    if let Some(e) = &lnd.refused {
        if quiet {
            report(None)?;
        }
        return Err(RestoreError::LndRefused(format!(
            "LND at {} refused backup {}: {e}",
            cfg.lnd.address,
            short(&f.backup.id)
        )));
    }
    let Some(mac) = restore_mac else {
        if quiet {
            report(None)?;
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
    let n = restore_into_lnd(&cfg, mac, &f, quiet).await?;
    if quiet {
        report(Some(n))?;
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

/// `RestoreChannelBackups` with the restore macaroon; LND's `num_restored`.
async fn restore_into_lnd(
    cfg: &Config,
    mac: PathBuf,
    f: &Fetched,
    quiet: bool,
) -> Result<u32, RestoreError> {
    let mut settings = LndSettings::from(&cfg.lnd);
    settings.macaroon = mac;
    progress(quiet).step("calling RestoreChannelBackups…");
    let client = LndClient::connect(&settings)
        .await
        .map_err(|e| RestoreError::Other(e.to_string()))?;
    client.restore_multi(f.plain.expose()).await.map_err(|e| {
        if restore::lnd_class(&e) {
            RestoreError::LndRefused(format!(
                "LND at {} refused to restore backup {}: {e}",
                cfg.lnd.address,
                short(&f.backup.id)
            ))
        } else {
            RestoreError::Other(e.to_string())
        }
    })
}

fn print_json(
    f: &Fetched,
    out: Option<&Path>,
    lnd: &LndView,
    read: &KeyReading,
    n: Option<u32>,
) -> Result<(), RestoreError> {
    let r = FetchReport {
        backup: &f.backup,
        from: &f.from,
        out,
        lnd,
        inside: read.inside.as_ref(),
        changes_to_newest: read.compared.as_ref().and_then(|c| c.as_ref().ok()),
        compare_error: read
            .compared
            .as_ref()
            .and_then(|c| c.as_ref().err())
            .map(String::as_str),
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
        RestoreCommand::List(a) => run_list(&a).await,
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
