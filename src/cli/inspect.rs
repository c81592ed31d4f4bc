//! `chanvault inspect FILE`: what a backup holds, read with the wallet's own
//! key; no LND, no config.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::exit;
use crate::inspect::{self, InspectError, Inspection, WalletKey};
use crate::seal::Identities;
use crate::secret::{SecretString, read_secret_line};

/// Largest aezeed file read: 24 words with any spacing and a comment fit easily.
const SEED_FILE_LIMIT: u64 = 4096;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("lnd_key").required(true).args(["aezeed_file", "backup_key_file"])))]
pub struct InspectArgs {
    /// The backup: lnd's `channel.backup`, or a chanvault `.age` file holding one.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// age identity file for a chanvault `.age` backup.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// The node's 24 aezeed words (a 0600 file; any spacing).
    #[arg(long, value_name = "FILE")]
    pub aezeed_file: Option<PathBuf>,
    /// The aezeed's passphrase, one line (without it: lnd's default, no passphrase).
    #[arg(long, value_name = "FILE", requires = "aezeed_file")]
    pub passphrase_file: Option<PathBuf>,
    /// The backup account key (`lncli wallet accounts list`: the m/1017'/COIN'/7' xpub or tpub), one line.
    #[arg(long, value_name = "FILE")]
    pub backup_key_file: Option<PathBuf>,
    /// The node's network (selects the coin type of the key path).
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

fn open(a: &InspectArgs) -> Result<Inspection, (u8, String)> {
    let err = |m: String| (exit::ERROR, m);
    let network = bitcoin::Network::from(a.network);
    let (key, what) = if let Some(seed) = &a.aezeed_file {
        let words = read_seed_file(seed).map_err(err)?;
        let passphrase = match &a.passphrase_file {
            Some(p) => read_secret_line(p).map_err(|e| err(e.to_string()))?,
            None => SecretString::new(String::new()),
        };
        let what = format!("the aezeed in {}", seed.display());
        let wallet = WalletKey::Aezeed {
            words: &words,
            passphrase: passphrase.expose().as_bytes(),
        };
        (inspect::backup_key(wallet, network, &what), what)
    } else if let Some(xpub) = &a.backup_key_file {
        let text = read_secret_line(xpub).map_err(|e| err(e.to_string()))?;
        let what = format!("the backup account key in {}", xpub.display());
        (
            inspect::backup_key(WalletKey::AccountXpub(&text), network, &what),
            what,
        )
    } else {
        return Err(err(
            "pass --aezeed-file FILE or --backup-key-file FILE".into()
        ));
    };
    let key = key.map_err(|e| (code(&e), e.to_string()))?;
    let identities = match &a.identity {
        Some(p) => Some(Identities::from_file(p).map_err(|e| err(e.to_string()))?),
        None => None,
    };
    let blob = std::fs::read(&a.file)
        .map_err(|e| err(format!("cannot read {}: {e}", a.file.display())))?;
    let what = format!("backup key {} (from {what})", key.fingerprint());
    inspect::inspect(&blob, identities.as_ref(), &key, &what)
        .map_err(|e| (code(&e), format!("{}: {e}", a.file.display())))
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

pub fn run(a: &InspectArgs) -> u8 {
    match open(a) {
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

fn print(found: &Inspection) {
    println!(
        "backup key {} opens it{}: {} channel(s)",
        found.backup_key,
        if found.age_layer {
            " (after the age layer)"
        } else {
            ""
        },
        found.channels.len()
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
