//! `chanvault inspect`: open a backup with the wallet's own key and say what
//! is inside, with no node. The age layer (chanvault's seal) comes off first
//! when there is one; lnd's layer opens with the backup key derived from the
//! aezeed or from the account xpub at m/1017'/coin'/7'.

use bitcoin::{Network, NetworkKind};
use serde::Serialize;

use crate::chanbackup::{self, BackupKey, DecryptError, KeyError, OpenError};
use crate::seal::{Identities, SealError};
use crate::secret::SecretString;
use crate::wallet::aezeed::{CipherSeed, Mnemonic, SeedError};

/// Where lnd's backup key comes from.
pub enum WalletKey<'a> {
    /// The 24 aezeed words and their passphrase (empty: lnd's default).
    Aezeed {
        words: &'a SecretString,
        passphrase: &'a [u8],
    },
    /// `lncli wallet accounts list`'s key for the m/1017'/coin'/7' account.
    AccountXpub(&'a SecretString),
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{what}: {source}")]
    Seed {
        what: String,
        #[source]
        source: SeedError,
    },
    #[error("{what}: {source}")]
    Key {
        what: String,
        #[source]
        source: KeyError,
    },
    #[error(
        "the backup is age-encrypted (chanvault's seal): pass --identity FILE to open it first"
    )]
    NeedIdentity,
    #[error("cannot open the age layer: {0}")]
    Age(#[source] SealError),
    /// `what` names the key and where it came from; the text is the same
    /// for every source (never the AEAD library's).
    #[error(
        "{what} does not open this backup: it was made by another node (another seed or \
         network), or the file was altered"
    )]
    WrongKey {
        what: String,
        #[source]
        source: DecryptError,
    },
    #[error("{0}")]
    NotABackup(#[source] OpenError),
}

impl InspectError {
    /// The key or identity given does not open this backup (as opposed to a
    /// backup that is damaged or not a backup at all).
    pub fn is_wrong_key(&self) -> bool {
        matches!(
            self,
            InspectError::WrongKey { .. } | InspectError::NeedIdentity | InspectError::Age(_)
        )
    }

    /// The bytes are not (or no longer) a readable lnd backup.
    pub fn is_damaged(&self) -> bool {
        matches!(self, InspectError::NotABackup(_))
    }
}

/// lnd's backup key from `key`; `what` names its source in errors.
pub fn backup_key(
    key: WalletKey<'_>,
    network: Network,
    what: &str,
) -> Result<BackupKey, InspectError> {
    match key {
        WalletKey::Aezeed { words, passphrase } => {
            let seed_err = |source| InspectError::Seed {
                what: what.to_string(),
                source,
            };
            let mnemonic: Mnemonic = words.expose().parse().map_err(seed_err)?;
            let seed = CipherSeed::decipher(&mnemonic, passphrase).map_err(seed_err)?;
            let master = seed.master_key(network).map_err(seed_err)?;
            BackupKey::from_master(&master).map_err(|source| InspectError::Key {
                what: what.to_string(),
                source,
            })
        }
        WalletKey::AccountXpub(text) => {
            BackupKey::from_account_xpub(text.expose().trim(), NetworkKind::from(network)).map_err(
                |source| InspectError::Key {
                    what: what.to_string(),
                    source,
                },
            )
        }
    }
}

/// One channel of a backup, as `inspect` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelFacts {
    pub chan_point: String,
    /// lncli's `chan_id`.
    pub chan_id: u64,
    /// `BLOCKxTXxOUTPUT`.
    pub short_channel_id: String,
    pub peer: String,
    pub addresses: Vec<String>,
    pub channel_type: &'static str,
    pub capacity_sat: u64,
    pub initiator: bool,
    pub close_tx_inputs: bool,
}

impl ChannelFacts {
    /// The peer's addresses for one line of text: comma-separated, or
    /// "no address" (lnd cannot reach such a peer during a restore).
    pub fn addresses_text(&self) -> String {
        if self.addresses.is_empty() {
            "no address".to_string()
        } else {
            self.addresses.join(",")
        }
    }
}

/// What a backup holds, and the key that opened it.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub backup_key: String,
    pub age_layer: bool,
    pub channels: Vec<ChannelFacts>,
}

impl Inspection {
    /// How many different peers the channels are with.
    pub fn peer_count(&self) -> usize {
        let peers: std::collections::BTreeSet<&str> =
            self.channels.iter().map(|c| c.peer.as_str()).collect();
        peers.len()
    }
}

/// Open `blob` (lnd's packed multi, or a chanvault .age file holding one).
pub fn inspect(
    blob: &[u8],
    identities: Option<&Identities>,
    key: &BackupKey,
    what: &str,
) -> Result<Inspection, InspectError> {
    let age_layer = crate::seal::is_age_file(blob);
    let opened;
    let packed: &[u8] = if age_layer {
        let ids = identities.ok_or(InspectError::NeedIdentity)?;
        opened = crate::seal::open(ids, blob).map_err(InspectError::Age)?;
        opened.expose()
    } else {
        blob
    };
    let multi = chanbackup::open_multi(key, packed).map_err(|e| match e {
        OpenError::Decrypt(source @ DecryptError::WrongKey { .. }) => InspectError::WrongKey {
            what: what.to_string(),
            source,
        },
        e => InspectError::NotABackup(e),
    })?;
    let channels = multi
        .singles
        .iter()
        .map(|s| ChannelFacts {
            chan_point: s.chan_point().to_string(),
            chan_id: s.short_channel_id.to_u64(),
            short_channel_id: format!(
                "{}x{}x{}",
                s.short_channel_id.block_height,
                s.short_channel_id.tx_index,
                s.short_channel_id.output_index
            ),
            peer: s.remote_node_pub.to_string(),
            addresses: s.addresses.iter().map(ToString::to_string).collect(),
            channel_type: s.channel_type.name(),
            capacity_sat: s.capacity_sat,
            initiator: s.is_initiator,
            close_tx_inputs: s.has_close_tx_inputs(),
        })
        .collect();
    Ok(Inspection {
        backup_key: key.fingerprint(),
        age_layer,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> BackupKey {
        BackupKey::from_raw([7; 32])
    }

    #[test]
    fn each_failure_says_what_it_is() {
        let e = inspect(b"age-encryption.org/v1\n-> X25519 abc\n", None, &key(), "k").unwrap_err();
        assert!(
            matches!(e, InspectError::NeedIdentity) && e.is_wrong_key(),
            "{e}"
        );

        let e = inspect(&[0u8; 10], None, &key(), "k").unwrap_err();
        assert!(e.is_damaged() && !e.is_wrong_key(), "{e}");
        assert!(
            e.to_string().contains("not an lnd static channel backup"),
            "{e}"
        );

        let e = inspect(&[1u8; 200], None, &key(), "backup key X (from F)").unwrap_err();
        assert!(e.is_wrong_key(), "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with("backup key X (from F) does not open this backup: "),
            "{text}"
        );
        assert!(
            !text.contains("aead"),
            "never the AEAD library's text: {text}"
        );
    }

    #[test]
    fn a_wrong_passphrase_names_the_seed_and_not_the_words() {
        let seed = CipherSeed::generate(1).unwrap();
        let words = seed.to_mnemonic(b"right").unwrap().phrase();
        let words = SecretString::new(words.to_string());
        let wallet = WalletKey::Aezeed {
            words: &words,
            passphrase: b"wrong",
        };
        let e = backup_key(wallet, Network::Regtest, "the aezeed in seed.txt").unwrap_err();
        // The exact text: nothing of the words or the passphrase can be in it.
        assert_eq!(
            e.to_string(),
            "the aezeed in seed.txt: the passphrase does not open this seed"
        );
    }
}
