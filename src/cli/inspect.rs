//! `chanvault inspect`: what a backup holds, read with the wallet's own
//! key. A file needs no LND and no config; `--target` reads the backup from
//! a configured target the way `restore fetch` does, and the `--*-from-escrow`
//! options read the identity and the key from the escrow.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::restore::{envelope, identities, progress};
use super::{ConfigArg, exit};
use crate::config::Config;
use crate::inspect::{self, InspectError, Inspection, WalletKey};
use crate::pipeline::short;
use crate::restore::{self, Listed, Location, NodeKey, RestoreError};
use crate::seal::Identities;
use crate::secret::{SecretString, read_secret_line};

/// Largest aezeed file read: 24 words with any spacing and a comment fit easily.
const SEED_FILE_LIMIT: u64 = 4096;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["file", "target"])))]
#[command(group(clap::ArgGroup::new("lnd_key").args(["aezeed_file", "backup_key_file", "key_from_escrow"])))]
#[command(group(clap::ArgGroup::new("age_identity").args(["identity", "identity_from_escrow"])))]
#[command(group(clap::ArgGroup::new("escrowed").multiple(true).args(["identity_from_escrow", "key_from_escrow"])))]
pub struct InspectArgs {
    /// The backup: lnd's `channel.backup`, or a chanvault `.age` file holding one.
    #[arg(value_name = "FILE", requires = "lnd_key")]
    pub file: Option<PathBuf>,
    /// Read the backup from this configured target instead (like `restore fetch`); the key defaults to lnd.backup_key_file.
    #[arg(long, value_name = "NAME", requires = "age_identity")]
    pub target: Option<String>,
    /// With --target: the backup id (a prefix of its SHA-256, as `restore list` shows it); default: the latest good one.
    #[arg(long, value_name = "ID", requires = "target")]
    pub backup: Option<String>,
    #[command(flatten)]
    pub config: ConfigArg,
    /// age identity file for a chanvault `.age` backup (--target needs it or --identity-from-escrow).
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// The age identity escrowed in OpenBao under NAME (audited; needs the config).
    #[arg(long, value_name = "NAME")]
    pub identity_from_escrow: Option<String>,
    /// The node's 24 aezeed words (a 0600 file; any spacing).
    #[arg(long, value_name = "FILE")]
    pub aezeed_file: Option<PathBuf>,
    /// The aezeed's passphrase, one line (without it: lnd's default, no passphrase).
    #[arg(long, value_name = "FILE", requires = "aezeed_file")]
    pub passphrase_file: Option<PathBuf>,
    /// The backup account key (`lncli wallet accounts list`: the m/1017'/COIN'/7' xpub or tpub), one line.
    #[arg(long, value_name = "FILE")]
    pub backup_key_file: Option<PathBuf>,
    /// The key from the aezeed (with its passphrase) or lnd-backup-key escrowed under NAME (audited; needs the config).
    #[arg(long, value_name = "NAME")]
    pub key_from_escrow: Option<String>,
    /// Offline identity that opens envelope-sealed escrowed items.
    #[arg(long, value_name = "FILE", requires = "escrowed")]
    pub envelope_identity: Option<PathBuf>,
    /// The node's network for --aezeed-file and --backup-key-file (selects the coin type of the key path).
    #[arg(long, value_enum, default_value_t = NetworkArg::Mainnet)]
    pub network: NetworkArg,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum NetworkArg {
    Mainnet,
    Testnet,
    Testnet4,
    Signet,
    Regtest,
}

impl From<NetworkArg> for bitcoin::Network {
    fn from(n: NetworkArg) -> Self {
        match n {
            NetworkArg::Mainnet => bitcoin::Network::Bitcoin,
            NetworkArg::Testnet => bitcoin::Network::Testnet,
            NetworkArg::Testnet4 => bitcoin::Network::Testnet4,
            NetworkArg::Signet => bitcoin::Network::Signet,
            NetworkArg::Regtest => bitcoin::Network::Regtest,
        }
    }
}

fn read_seed_file(path: &Path) -> Result<SecretString, String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut text = String::new();
    let read = file
        .take(SEED_FILE_LIMIT + 1)
        .read_to_string(&mut text)
        .map_err(|_| format!("{} is not a text file of aezeed words", path.display()));
    let text = SecretString::new(text);
    read?;
    if text.expose().len() as u64 > SEED_FILE_LIMIT {
        return Err(format!(
            "{} is larger than an aezeed file can be",
            path.display()
        ));
    }
    Ok(text)
}

/// A failure: its exit code and its one line.
type Failed = (u8, String);

fn other(m: impl std::fmt::Display) -> Failed {
    (exit::ERROR, m.to_string())
}

fn of_restore(e: RestoreError) -> Failed {
    (exit::of_restore(&e), e.to_string())
}

/// lnd's backup key from the option given: a file, the escrow, or (with
/// `--target`, when none is given) `[lnd] backup_key_file`.
async fn node_key(
    a: &InspectArgs,
    cfg: Option<&Config>,
    envelope: Option<&Identities>,
) -> Result<NodeKey, Failed> {
    let network = bitcoin::Network::from(a.network);
    let (key, source) = if let Some(seed) = &a.aezeed_file {
        let words = read_seed_file(seed).map_err(other)?;
        let passphrase = match &a.passphrase_file {
            Some(p) => read_secret_line(p).map_err(other)?,
            None => SecretString::new(String::new()),
        };
        let source = format!("the aezeed in {}", seed.display());
        let wallet = WalletKey::Aezeed {
            words: &words,
            passphrase: passphrase.expose().as_bytes(),
        };
        (inspect::backup_key(wallet, network, &source), source)
    } else if let Some(xpub) = &a.backup_key_file {
        let text = read_secret_line(xpub).map_err(other)?;
        let source = format!("the backup account key in {}", xpub.display());
        let wallet = WalletKey::AccountXpub(&text);
        (inspect::backup_key(wallet, network, &source), source)
    } else if let (Some(name), Some(cfg)) = (&a.key_from_escrow, cfg) {
        progress(a.json).step(&format!(
            "reading the escrowed backup key {name} from OpenBao…"
        ));
        return restore::escrowed_node_key(cfg, name, envelope)
            .await
            .map_err(of_restore);
    } else if let Some(from_config) = cfg.and_then(NodeKey::from_config) {
        return from_config.map_err(of_restore);
    } else {
        return Err(other(format!(
            "pass --aezeed-file FILE, --backup-key-file FILE or --key-from-escrow NAME{}",
            cfg.map_or(String::new(), |c| format!(
                ", or set lnd.backup_key_file in {}",
                c.source.display()
            ))
        )));
    };
    let key = key.map_err(|e| (code(&e), e.to_string()))?;
    Ok(NodeKey { key, source })
}

/// What was opened, with the backup it came from when read from a target.
#[derive(Serialize)]
struct Opened {
    #[serde(flatten)]
    found: Inspection,
    /// Where the key came from (a path or an escrowed item's name; never the key).
    key_source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<Listed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<Location>,
}

async fn open(a: &InspectArgs) -> Result<Opened, Failed> {
    let needs_config =
        a.target.is_some() || a.identity_from_escrow.is_some() || a.key_from_escrow.is_some();
    let cfg = match needs_config {
        true => Some(Config::load(&a.config.config).map_err(other)?),
        false => None,
    };
    let envelope = envelope(a.envelope_identity.as_deref()).map_err(of_restore)?;
    let key = node_key(a, cfg.as_ref(), envelope.as_ref()).await?;
    let ids = identities(
        cfg.as_ref(),
        a.identity.as_deref(),
        a.identity_from_escrow.as_deref(),
        envelope.as_ref(),
        a.json,
    )
    .await
    .map_err(of_restore)?;
    let (found, backup, from) = match (&a.file, &a.target, &cfg) {
        (Some(file), _, _) => {
            let blob = std::fs::read(file)
                .map_err(|e| other(format!("cannot read {}: {e}", file.display())))?;
            let found = inspect::inspect(&blob, ids.as_ref(), &key.key, &key.describe())
                .map_err(|e| (code(&e), format!("{}: {e}", file.display())))?;
            (found, None, None)
        }
        (None, Some(target), Some(cfg)) => {
            let ids =
                ids.ok_or_else(|| other("pass --identity FILE or --identity-from-escrow NAME"))?;
            let sel = a.backup.as_deref().unwrap_or("latest");
            let f = restore::fetch(cfg, Some(target), sel, &ids, progress(a.json))
                .await
                .map_err(of_restore)?;
            let what = format!("backup {} from target {target}", short(&f.backup.id));
            let mut found = inspect::inspect(f.plain.expose(), None, &key.key, &key.describe())
                .map_err(|e| (code(&e), format!("{what}: {e}")))?;
            found.age_layer = true;
            (found, Some(f.backup), Some(f.from))
        }
        _ => return Err(other("pass a backup FILE or --target NAME")),
    };
    Ok(Opened {
        found,
        key_source: key.source,
        backup,
        from,
    })
}

fn code(e: &InspectError) -> u8 {
    if e.is_wrong_key() {
        exit::WRONG_IDENTITY
    } else if e.is_damaged() {
        exit::TAMPERED
    } else {
        exit::ERROR
    }
}

pub async fn run(a: &InspectArgs) -> u8 {
    match open(a).await {
        Err((code, msg)) => {
            eprintln!("chanvault: error: {}", crate::text::one_line(&msg));
            code
        }
        Ok(found) if a.json => match serde_json::to_string_pretty(&found) {
            Ok(j) => {
                println!("{j}");
                exit::OK
            }
            Err(e) => {
                eprintln!("chanvault: error: {e}");
                exit::ERROR
            }
        },
        Ok(found) => {
            print(&found);
            exit::OK
        }
    }
}

fn print(opened: &Opened) {
    let found = &opened.found;
    if let (Some(b), Some(from)) = (&opened.backup, &opened.from) {
        println!(
            "backup {} taken {} from target {} ({})",
            short(&b.id),
            b.created.format("%Y-%m-%d %H:%M:%S UTC"),
            from.target,
            from.locator
        );
    }
    println!(
        "backup key {} (from {}) opens it{}: {} channel(s) with {} peer(s)",
        found.backup_key,
        opened.key_source,
        if found.age_layer {
            " (after the age layer)"
        } else {
            ""
        },
        found.channels.len(),
        found.peer_count()
    );
    for c in &found.channels {
        println!(
            "{}  scid {}  peer {}  {}  {} sat  {}{}",
            c.chan_point,
            c.short_channel_id,
            c.peer,
            c.channel_type,
            c.capacity_sat,
            c.addresses_text(),
            if c.close_tx_inputs {
                "  close-tx-inputs"
            } else {
                ""
            }
        );
    }
}
