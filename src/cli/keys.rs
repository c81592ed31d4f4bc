//! The `keys` commands: argument types and what they print.
//! `cli/mod.rs` only dispatches here.
//!
//! Secrets never come from argv: `--file` or a no-echo prompt (refused
//! without a TTY). A secret is printed only with `--reveal`, and then only to
//! a terminal or to a new `--out` file (0600, never overwritten).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use super::ConfigArg;
use crate::config::Config;
use crate::escrow::material::{self, Kind, PublicFacts};
use crate::escrow::store::{Escrow, PutOptions};
use crate::seal::Identities;
use crate::secret::SecretString;

/// Largest secret input file we read (same bound as the material parser).
const INPUT_LIMIT: u64 = crate::escrow::material::MAX_INPUT_LEN as u64;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Escrow key material as a new item (create-only unless --replace). Reads it from --file or a prompt, never from argv.
    Put(PutArgs),
    /// Show an item's public facts; with --reveal, its secret (to a terminal or --out FILE only).
    #[command(disable_version_flag = true)]
    Get(GetArgs),
    /// List escrowed items.
    List(ConfigArg),
    /// Show every version of an item (created, deleted, destroyed).
    History {
        /// Item name.
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Check every escrowed item and the cross-checks between them; exit 1 if any fails.
    Verify {
        /// Identity file to open envelope-sealed items.
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Write the wallet's public config (descriptors, xpubs, origins; no secrets) as JSON.
    ExportPublic {
        /// Output file (replaced atomically).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Rotate an escrowed age identity, or the AppRole secret-id.
    #[command(subcommand)]
    Rotate(RotateCommand),
    /// Re-encrypt the latest version of every envelope-sealed item to the current escrow.seal_recipients (older versions stay as they are).
    Reseal {
        /// An identity that opens the items as they are sealed now (the old offline identity).
        #[arg(long, value_name = "FILE")]
        identity: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum RotateCommand {
    /// Generate a new age identity, store it as a new version, re-seal the newest good backup to the new recipients and deliver it to every target; print what to change in the config.
    AgeIdentity {
        /// Item name.
        name: String,
        /// Instead of rotating: destroy every older version, once the config's seal.recipients has the new recipient and every target holds the re-sealed backup.
        #[arg(long)]
        destroy_old: bool,
        /// The old identity, to open the newest backup (default: the escrowed current version).
        #[arg(long, value_name = "FILE", conflicts_with = "destroy_old")]
        identity: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Generate a new AppRole secret-id, prove it by logging in, write it to escrow.approle_secret_id_file, destroy the old one.
    Approle(ConfigArg),
}

#[derive(Args, Debug)]
pub struct PutArgs {
    /// bip39, aezeed, xprv, xpub, descriptor, age-identity or lnd-backup-key.
    pub kind: String,
    /// Item name (letters, digits, '-', '_', '.').
    pub name: String,
    /// Read the material from this file (else: prompt without echo).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Write a new version of an existing item (check-and-set on its current version).
    #[arg(long)]
    pub replace: bool,
    /// BIP-39 or aezeed passphrase from this file.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Derivation path of the account key (seeds, xprv), e.g. "m/48'/0'/0'/2'".
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// Item name.
    pub name: String,
    /// Read this version instead of the latest.
    #[arg(long, value_name = "N")]
    pub version: Option<u64>,
    /// Print the secret (only to a terminal, or to --out).
    #[arg(long)]
    pub reveal: bool,
    /// Write the secret to this new file (mode 0600; must not exist).
    #[arg(long, value_name = "FILE", requires = "reveal")]
    pub out: Option<PathBuf>,
    /// Identity file to open an envelope-sealed item.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArg,
}

fn load(path: &Path) -> Result<Config, String> {
    Config::load(path).map_err(|e| e.to_string())
}

fn open(path: &Path) -> Result<Escrow, String> {
    let cfg = load(path)?;
    Escrow::open(&cfg).map_err(|e| e.to_string())
}

fn identities(path: &Option<PathBuf>) -> Result<Option<Identities>, String> {
    path.as_deref()
        .map(Identities::from_file)
        .transpose()
        .map_err(|e| e.to_string())
}

/// Read a secret from a file (bounded, zeroized) or a no-echo prompt.
fn read_secret(file: Option<&Path>, what: &str) -> Result<SecretString, String> {
    use std::io::Read;
    if let Some(p) = file {
        let f = std::fs::File::open(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        // Sized up front: growing would free unwiped copies of the secret.
        let len = f.metadata().map_or(0, |m| m.len()).min(INPUT_LIMIT + 1);
        let mut buf = Zeroizing::new(Vec::with_capacity(len as usize + 1));
        f.take(INPUT_LIMIT + 1)
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        if buf.len() as u64 > INPUT_LIMIT {
            return Err(format!(
                "{} is larger than {INPUT_LIMIT} bytes; this is not {what}",
                p.display()
            ));
        }
        let text =
            std::str::from_utf8(&buf).map_err(|_| format!("{} is not UTF-8 text", p.display()))?;
        return Ok(SecretString::new(text.to_owned()));
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "no terminal to prompt for {what} on; pass it with --file FILE (never on the command line)"
        ));
    }
    rpassword::prompt_password(format!("{what} (not echoed): "))
        .map(SecretString::new)
        .map_err(|e| format!("cannot read {what} from the terminal: {e}"))
}

/// Exit code 0 or an error line (the caller prints it).
pub async fn keys(cmd: KeysCommand) -> Result<(), String> {
    match cmd {
        KeysCommand::Put(a) => put(a).await,
        KeysCommand::Get(a) => get(a).await,
        KeysCommand::List(c) => list(&c.config).await,
        KeysCommand::History { name, config } => history(&config.config, &name).await,
        KeysCommand::Verify { identity, config } => verify(&config.config, &identity).await,
        KeysCommand::ExportPublic { out, config } => export_public(&config.config, &out).await,
        KeysCommand::Rotate(RotateCommand::AgeIdentity {
            name,
            destroy_old,
            identity,
            config,
        }) => rotate_age_identity(&config.config, &name, destroy_old, identity.as_deref()).await,
        KeysCommand::Rotate(RotateCommand::Approle(c)) => rotate_approle(&c.config).await,
        KeysCommand::Reseal { identity, config } => reseal(&config.config, &identity).await,
    }
}

/// `keys list`: one line per item.
async fn list(config: &Path) -> Result<(), String> {
    let mut e = open(config)?;
    let items = e.list().await.map_err(|e| e.to_string())?;
    if items.is_empty() {
        println!("(no items)");
    }
    for (name, m) in items {
        let f = PublicFacts::from_metadata(&m.custom_metadata).ok();
        let kind = f.as_ref().map(|f| f.kind.clone()).unwrap_or("?".into());
        let envelope = m
            .custom_metadata
            .get("envelope")
            .map(String::as_str)
            .unwrap_or("none");
        let summary = f.as_ref().map(summary).unwrap_or_default();
        println!(
            "{name:<24} {kind:<13} v{:<4} {:<9} {summary}",
            m.current_version,
            if envelope == "age" { "sealed" } else { "" }
        );
    }
    Ok(())
}

/// `keys history NAME`: every version and its state.
async fn history(config: &Path, name: &str) -> Result<(), String> {
    let mut e = open(config)?;
    let m = e.history(name).await.map_err(|e| e.to_string())?;
    println!(
        "{name}: current version {}, created {}",
        m.current_version,
        m.custom_metadata
            .get("created")
            .cloned()
            .unwrap_or_else(|| m.created_time.clone())
    );
    if let Some(r) = m.custom_metadata.get("rotated_from") {
        println!("  latest rotated from version {r}");
    }
    for (v, vm) in m.versions() {
        let state = if vm.destroyed {
            "destroyed".to_owned()
        } else if !vm.deletion_time.is_empty() {
            format!("deleted {}", vm.deletion_time)
        } else {
            "readable".to_owned()
        };
        println!("  v{v:<4} created {}  {state}", vm.created_time);
    }
    Ok(())
}

/// `keys verify`: every check as a ✓/✗ line; an error if any fails.
async fn verify(config: &Path, identity: &Option<PathBuf>) -> Result<(), String> {
    let ids = identities(identity)?;
    let cfg = load(config)?;
    let mut e = Escrow::open(&cfg).map_err(|e| e.to_string())?;
    let verified = e.verify(ids.as_ref()).await.map_err(|e| e.to_string())?;
    let mut results = verified.checks.clone();
    let mut not_asked = None;
    if verified.items.iter().any(|(_, m)| m.kind() == Kind::Aezeed) {
        match running_node_identity(&cfg).await {
            Ok(pk) => results.extend(material::node_identity(&verified.refs(), &pk)),
            Err(why) => not_asked = Some(why),
        }
    }
    let failed = results.iter().filter(|c| !c.ok).count();
    for c in &results {
        println!("{} {}: {}", if c.ok { "✓" } else { "✗" }, c.name, c.detail);
    }
    if let Some(why) = not_asked {
        println!("- the escrowed aezeed is the running node's wallet: not checked: {why}");
    }
    if results.is_empty() {
        println!("(nothing escrowed and nothing required)");
    }
    if failed > 0 {
        return Err(format!(
            "escrow verification failed: {failed} of {} check(s)",
            results.len()
        ));
    }
    Ok(())
}

/// LND's identity key, or why it could not be asked (down, or a macaroon
/// without `info:read`): the aezeed check is then skipped, not failed.
async fn running_node_identity(cfg: &Config) -> Result<String, String> {
    let settings = crate::lnd::LndSettings::from(&cfg.lnd);
    let client = crate::lnd::LndClient::connect(&settings)
        .await
        .map_err(|e| e.to_string())?;
    client.identity_pubkey().await.map_err(|e| e.to_string())
}

/// `keys export-public`: the wallet's public config as JSON.
async fn export_public(config: &Path, out: &Path) -> Result<(), String> {
    let mut e = open(config)?;
    let v = e.export_public().await.map_err(|e| e.to_string())?;
    let mut text = serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?;
    text.push('\n');
    crate::fsutil::write_atomic(out, text.as_bytes(), 0o644)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let n = v["items"].as_array().map_or(0, Vec::len);
    println!("wrote {} ({n} item(s), no secrets)", out.display());
    Ok(())
}

/// `keys rotate approle`: a new secret-id, proved by a login.
async fn rotate_approle(config: &Path) -> Result<(), String> {
    let cfg = load(config)?;
    let mut e = Escrow::open(&cfg).map_err(|e| e.to_string())?;
    let Some(esc) = cfg.escrow.as_ref() else {
        return Err("the [escrow] section is missing".into());
    };
    let r = e.rotate_approle(esc).await.map_err(|e| e.to_string())?;
    let file = esc
        .approle_secret_id_file
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    println!(
        "new secret-id for AppRole role {} (accessor {}): login works; written to {file} (mode 0600)",
        r.role, r.new_accessor
    );
    match r.old_accessor {
        Some(a) => println!("destroyed the old secret-id (accessor {a})"),
        None => println!(
            "the old secret-id was not found on the server (already destroyed or expired); nothing to destroy"
        ),
    }
    Ok(())
}

/// `keys reseal`: the latest version of every envelope-sealed item, to the
/// current recipients.
async fn reseal(config: &Path, identity: &Path) -> Result<(), String> {
    let ids = Identities::from_file(identity).map_err(|e| e.to_string())?;
    let mut e = open(config)?;
    let results = e
        .reseal(&ids, &identity.display().to_string())
        .await
        .map_err(|e| e.to_string())?;
    if results.is_empty() {
        println!("(no envelope-sealed item; nothing to re-seal)");
    }
    let mut failed = 0;
    for r in &results {
        match &r.result {
            Ok(v) => println!("✓ {} version {} re-sealed as version {v}", r.name, r.from),
            Err(m) => {
                failed += 1;
                println!("✗ {} version {}: {m}", r.name, r.from);
            }
        }
    }
    if !results.is_empty() {
        println!(
            "only the latest version of each item was re-sealed; older versions stay sealed to their old recipients"
        );
    }
    if failed > 0 {
        return Err(format!(
            "{failed} of {} item(s) not re-sealed; they stay sealed to their old recipients",
            results.len()
        ));
    }
    Ok(())
}

/// `keys rotate age-identity`: open the newest good backup with the old
/// identity (before anything is written), store the new identity, re-seal
/// and deliver the backup; or, with `--destroy-old`, destroy the old versions
/// once nothing needs them.
async fn rotate_age_identity(
    config: &Path,
    name: &str,
    destroy_old: bool,
    identity: Option<&Path>,
) -> Result<(), String> {
    use crate::rotate;
    let cfg = load(config)?;
    let mut e = Escrow::open(&cfg).map_err(|e| e.to_string())?;
    if destroy_old {
        let gone = e
            .destroy_old_identities(name, |recipient| {
                rotate::destroy_blocker(&cfg, recipient).unwrap_or_else(|err| Some(err.to_string()))
            })
            .await
            .map_err(|e| e.to_string())?;
        println!("destroyed versions {gone:?} of {name}");
        return Ok(());
    }
    // 1. The old identity, and the newest good backup opened with it.
    let old_ids = match identity {
        Some(p) => Some((
            Identities::from_file(p).map_err(|e| e.to_string())?,
            p.display().to_string(),
        )),
        None => match e.get(name, None, None, true).await {
            Ok(item) => {
                if item.kind != Kind::AgeIdentity {
                    return Err(format!("{name} is a {}, not an age-identity", item.kind));
                }
                let what = format!("{name} version {}", item.version);
                let Some(text) = item.material.as_ref().and_then(|m| m.secret()) else {
                    return Err(format!(
                        "{what} is envelope-sealed to the offline recipients; pass --identity FILE with the age identity the backups are sealed to"
                    ));
                };
                let ids = Identities::from_secret_str(text, &what).map_err(|e| e.to_string())?;
                Some((ids, what))
            }
            Err(crate::escrow::store::EscrowError::NotFound { .. }) => None,
            Err(e) => return Err(e.to_string()),
        },
    };
    let opened = match &old_ids {
        Some((ids, what)) => {
            rotate::open_newest_good(&cfg, ids, what).map_err(|e| e.to_string())?
        }
        None => {
            if let Some(id) = rotate::newest_good_id(&cfg).map_err(|e| e.to_string())? {
                return Err(format!(
                    "{name} is not escrowed yet, so nothing opens the newest good backup {id}; pass --identity FILE with the identity it is sealed to"
                ));
            }
            None
        }
    };
    // 2. The new identity in OpenBao.
    let (version, new, old) = e
        .rotate_age_identity(name)
        .await
        .map_err(|e| e.to_string())?;
    println!("stored a new age identity as {name} version {version}");
    println!("new recipient: {new}");
    // 3. Re-seal and deliver.
    let mut undelivered = Vec::new();
    match opened {
        None => println!("no good backup in the spool yet; nothing to re-seal"),
        Some(o) => {
            let recipients =
                rotate::new_recipients(&cfg, old.as_deref(), &new).map_err(|e| e.to_string())?;
            let r = rotate::reseal_and_deliver(&cfg, o, &recipients)
                .await
                .map_err(|err| {
                    format!(
                        "{name} version {version} is stored, but re-sealing the newest backup failed: {err}; keep the old version and retry with --identity FILE"
                    )
                })?;
            println!(
                "re-sealed backup {} as {} to {} recipient(s)",
                r.from,
                r.record.id,
                r.record.recipients.len()
            );
            for (t, err) in &r.targets {
                match err {
                    None => println!("  ✓ {t}: delivered"),
                    Some(m) => {
                        println!("  ✗ {t}: {m}");
                        undelivered.push(t.clone());
                    }
                }
            }
        }
    }
    println!("now change {}:", cfg.source.display());
    match &old {
        Some(o) if cfg.seal.recipients.contains(o) => {
            println!("  [seal] recipients: replace {o}\n                    with    {new}")
        }
        _ => println!("  [seal] recipients: add {new}"),
    }
    if !undelivered.is_empty() {
        return Err(format!(
            "the re-sealed backup did not reach {}; watch retries it, and --destroy-old waits until every target holds it",
            undelivered.join(", ")
        ));
    }
    println!(
        "then destroy the old version: chanvault keys rotate age-identity {name} --destroy-old"
    );
    Ok(())
}

fn summary(f: &PublicFacts) -> String {
    let mut parts = Vec::new();
    if let Some(n) = &f.network {
        parts.push(n.clone());
    }
    if let (Some(fp), Some(d)) = (&f.master_fingerprint, &f.derivation) {
        parts.push(format!("[{fp}/{}]", d.trim_start_matches("m/")));
    } else if let Some(fp) = &f.master_fingerprint {
        parts.push(format!("fingerprint {fp}"));
    }
    if let Some(r) = &f.recipient {
        parts.push(r.clone());
    }
    if !f.descriptor_keys.is_empty() {
        parts.push(format!("{} key(s)", f.descriptor_keys.len()));
    }
    if let Some(node) = &f.node_pubkey {
        parts.push(format!("node {node}"));
    }
    if let Some(b) = &f.birthday {
        parts.push(format!("born {b}"));
    }
    parts.join(" ")
}

async fn put(a: PutArgs) -> Result<(), String> {
    let kind = Kind::from_str(&a.kind).map_err(|e| e.to_string())?;
    let cfg = load(&a.config.config)?;
    let mut e = Escrow::open(&cfg).map_err(|e| e.to_string())?;
    let input = read_secret(a.file.as_deref(), &format!("the {kind}"))?;
    let passphrase = match &a.passphrase_file {
        Some(p) => {
            let s = read_secret(Some(p), "the passphrase")?;
            // A trailing newline from `echo pw > file` is not part of the passphrase.
            let trimmed = s.expose().trim_end_matches(['\n', '\r']).to_owned();
            Some(SecretString::new(trimmed))
        }
        None => None,
    };
    let report = e
        .put(
            kind,
            &a.name,
            &input,
            PutOptions {
                replace: a.replace,
                passphrase,
                path: a.path,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "escrowed {} as {kind} version {}{}",
        a.name,
        report.version,
        if report.sealed {
            " (secret sealed to the offline recipients)"
        } else {
            ""
        }
    );
    let s = summary(&report.facts);
    if !s.is_empty() {
        println!("  {s}");
    }
    for c in &report.checks {
        println!("  ✓ {}: {}", c.name, c.detail);
    }
    Ok(())
}

async fn get(a: GetArgs) -> Result<(), String> {
    if a.reveal && a.out.is_none() && !std::io::stdout().is_terminal() {
        return Err(
            "refusing to print a secret to a pipe or file: use --reveal on a terminal, or --reveal --out FILE"
                .into(),
        );
    }
    let ids = identities(&a.identity)?;
    let mut e = open(&a.config.config)?;
    let item = e
        .get(&a.name, a.version, ids.as_ref(), a.reveal)
        .await
        .map_err(|e| e.to_string())?;
    if !a.reveal {
        println!(
            "{} {} version {} (created {}){}",
            item.name,
            item.kind,
            item.version,
            item.created,
            if item.envelope == "age" {
                ", sealed"
            } else {
                ""
            }
        );
        for (k, v) in item.facts.to_metadata() {
            if k != "kind" {
                println!("  {k}: {v}");
            }
        }
        if item.kind.is_secret() {
            println!("  (secret not shown; --reveal prints it)");
        }
        return Ok(());
    }
    let Some(m) = item.material else {
        return Err(format!(
            "{} is envelope-sealed to the offline recipients; pass --identity FILE with one of their identities",
            a.name
        ));
    };
    let public = item
        .facts
        .descriptor
        .as_deref()
        .or(item.facts.xpub.as_deref());
    let text = revealed(m.secret(), public);
    match &a.out {
        Some(p) => {
            crate::fsutil::create_secret_file(p, text.as_bytes()).map_err(|e| {
                format!("cannot create {}: {e} (it must not exist yet)", p.display())
            })?;
            println!(
                "wrote {} version {} to {} (mode 0600)",
                a.name,
                item.version,
                p.display()
            );
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| format!("cannot write to the terminal: {e}"))?;
        }
    }
    Ok(())
}

/// What `--reveal` prints or writes: the secret (for a public kind, its
/// descriptor or xpub) and a newline, built in one zeroizing buffer of
/// exactly its size. No plain `String` copy of the secret is ever made, and
/// the buffer never grows (growing would free an unwiped copy).
fn revealed(secret: Option<&SecretString>, public: Option<&str>) -> Zeroizing<String> {
    let body = secret
        .map(SecretString::expose)
        .or(public)
        .unwrap_or_default();
    let mut text = Zeroizing::new(String::with_capacity(body.len() + 1));
    text.push_str(body);
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revealed_secret_is_one_exact_zeroizing_buffer() {
        let seed = SecretString::new("abandon ability able about".into());
        let text: Zeroizing<String> = revealed(Some(&seed), Some("xpub-not-this"));
        assert_eq!(text.as_str(), "abandon ability able about\n");
        // Exactly its size: it never grew, so no freed copy was left behind.
        assert_eq!(text.capacity(), text.len());
        let public: Zeroizing<String> = revealed(None, Some("wpkh([d34db33f/84h/0h/0h]xpub…)"));
        assert_eq!(public.as_str(), "wpkh([d34db33f/84h/0h/0h]xpub…)\n");
        assert_eq!(revealed(None, None).as_str(), "\n");
    }
}
