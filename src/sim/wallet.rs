//! The simulated node's wallet: a real lnd aezeed, and the keys lnd derives
//! from it.
//!
//! On the first start in a directory the simulator makes a cipher seed
//! (birthday today), writes its 24 words to `aezeed.txt` and the passphrase
//! to `aezeed-passphrase.txt` (both 0600), and from then on reuses them. The
//! keys are derived here with the bitcoin crate, independently of
//! `crate::chanbackup::BackupKey` and `CipherSeed::node_pubkey`, so that the
//! tests cross-check one derivation against the other:
//!
//! - identity key: m/1017'/1'/6'/0/0 (`KeyFamilyNodeKey`, regtest coin 1);
//! - SCB key: SHA-256 of the compressed pubkey at m/1017'/1'/7'/0/0;
//! - the backup account m/1017'/1'/7' as `lncli wallet accounts list` prints
//!   it (a tpub).
//!
//! The only scrypt (N = 32768) is paid once per start: enciphering a new seed
//! or deciphering the stored one.

use std::io;
use std::path::Path;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::Network;
use bitcoin::bip32::{ChildNumber, Xpriv, Xpub};
use bitcoin::secp256k1::{PublicKey, Secp256k1};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::SimError;
use crate::fsutil;
use crate::wallet::aezeed::{CipherSeed, ENTROPY_SIZE, Mnemonic, birthday_from_unix};

/// The 24 words, space separated, one line.
pub(crate) const AEZEED: &str = "aezeed.txt";
/// The passphrase the words were enciphered with, one line.
pub(crate) const AEZEED_PASSPHRASE: &str = "aezeed-passphrase.txt";
/// The simulator runs on regtest (coin type 1, tpub keys).
pub(crate) const NETWORK: Network = Network::Regtest;

const PURPOSE: u32 = 1017;
const COIN_TYPE: u32 = 1;
/// `keychain.KeyFamilyNodeKey`.
const FAMILY_NODE_KEY: u32 = 6;
/// `keychain.KeyFamilyBaseEncryption` (formerly `KeyFamilyStaticBackup`).
const FAMILY_BASE_ENCRYPTION: u32 = 7;

/// Keys derived from the wallet seed. No `Debug`: it holds secrets.
pub(crate) struct NodeKeys {
    /// XChaCha20-Poly1305 key for static channel backups.
    pub backup_key: Zeroizing<[u8; 32]>,
    /// The node's identity pubkey (what GetInfo reports).
    pub identity_pubkey: PublicKey,
    /// m/1017'/1'/7' as a tpub: opens every backup, so a secret too.
    pub backup_account_xpub: Zeroizing<String>,
    /// Root key macaroon signatures are made with (a simulator stand-in:
    /// lnd keeps a random one in macaroons.db).
    pub macaroon_root_key: Zeroizing<[u8; 32]>,
}

fn account_path(family: u32) -> [ChildNumber; 3] {
    [
        ChildNumber::Hardened { index: PURPOSE },
        ChildNumber::Hardened { index: COIN_TYPE },
        ChildNumber::Hardened { index: family },
    ]
}

const LEAF: [ChildNumber; 2] = [
    ChildNumber::Normal { index: 0 },
    ChildNumber::Normal { index: 0 },
];

impl NodeKeys {
    /// Derive every key from the seed's 16 bytes of entropy, as lnd's
    /// btcwallet does (BIP-32 master straight from the entropy).
    pub(crate) fn from_entropy(entropy: &[u8; ENTROPY_SIZE]) -> Result<Self, String> {
        let secp = Secp256k1::new();
        let err = |e: bitcoin::bip32::Error| format!("BIP-32 derivation failed: {e}");
        let mut master = Xpriv::new_master(NETWORK, entropy).map_err(err)?;
        let node_account = master.derive_priv(&secp, &account_path(FAMILY_NODE_KEY));
        let backup_account = master.derive_priv(&secp, &account_path(FAMILY_BASE_ENCRYPTION));
        master.private_key.non_secure_erase();
        let mut node_account = node_account.map_err(err)?;
        let mut backup_account = backup_account.map_err(err)?;
        let node = node_account.derive_priv(&secp, &LEAF);
        node_account.private_key.non_secure_erase();
        let mut node = node.map_err(err)?;
        let identity_pubkey = PublicKey::from_secret_key(&secp, &node.private_key);
        node.private_key.non_secure_erase();
        let account_xpub = Xpub::from_priv(&secp, &backup_account);
        backup_account.private_key.non_secure_erase();
        let leaf = account_xpub.derive_pub(&secp, &LEAF).map_err(err)?;
        let backup_key = Zeroizing::new(Sha256::digest(leaf.public_key.serialize()).into());
        let mut h = Sha256::new();
        h.update(b"chanvault-sim/macaroon-root-key/0");
        h.update(entropy);
        Ok(Self {
            backup_key,
            identity_pubkey,
            backup_account_xpub: Zeroizing::new(account_xpub.to_string()),
            macaroon_root_key: Zeroizing::new(h.finalize().into()),
        })
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_secret(path: &Path) -> Result<Option<Zeroizing<String>>, SimError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            let text = std::str::from_utf8(&bytes).map_err(|_| SimError::Corrupt {
                path: path.to_path_buf(),
                reason: "not UTF-8 text".to_string(),
            })?;
            Ok(Some(Zeroizing::new(
                text.trim_end_matches(['\n', '\r']).to_string(),
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn write_secret(path: &Path, line: &str) -> Result<(), SimError> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(line.len() + 1));
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    fsutil::create_secret_file(path, &bytes).map_err(io_err(path))
}

/// The passphrase: the stored one, else `wanted`, else 32 random hex digits.
/// A stored passphrase that differs from `wanted` is refused.
fn load_or_create_passphrase(
    path: &Path,
    wanted: Option<&str>,
) -> Result<Zeroizing<String>, SimError> {
    if let Some(stored) = read_secret(path)? {
        if wanted.is_some_and(|w| w != stored.as_str()) {
            return Err(SimError::Corrupt {
                path: path.to_path_buf(),
                reason: "it differs from the passphrase the simulator was started with".into(),
            });
        }
        return Ok(stored);
    }
    let pass = match wanted {
        Some(w) => Zeroizing::new(w.to_string()),
        None => {
            let mut raw = Zeroizing::new([0u8; 16]);
            rand::thread_rng().fill_bytes(&mut raw[..]);
            Zeroizing::new(hex::encode(&raw[..]))
        }
    };
    write_secret(path, &pass)?;
    Ok(pass)
}

/// Open the wallet in `dir`, or create it. Returns the keys and whether the
/// wallet is new (macaroons signed by an earlier node must then be remade).
pub(crate) fn load_or_create(
    dir: &Path,
    passphrase: Option<&str>,
) -> Result<(NodeKeys, bool), SimError> {
    let pass_path = dir.join(AEZEED_PASSPHRASE);
    let seed_path = dir.join(AEZEED);
    let pass = load_or_create_passphrase(&pass_path, passphrase)?;
    let corrupt = |reason: String| SimError::Corrupt {
        path: seed_path.clone(),
        reason,
    };
    let (seed, fresh) = match read_secret(&seed_path)? {
        Some(words) => {
            let mnemonic = Mnemonic::from_str(&words).map_err(|e| corrupt(e.to_string()))?;
            let seed = CipherSeed::decipher(&mnemonic, pass.as_bytes())
                .map_err(|e| corrupt(format!("{e} (the one in {AEZEED_PASSPHRASE})")))?;
            (seed, false)
        }
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let seed = CipherSeed::generate(birthday_from_unix(now))
                .map_err(|e| corrupt(e.to_string()))?;
            let mnemonic = seed
                .to_mnemonic(pass.as_bytes())
                .map_err(|e| corrupt(e.to_string()))?;
            write_secret(&seed_path, &mnemonic.phrase())?;
            (seed, true)
        }
    };
    let keys = NodeKeys::from_entropy(seed.entropy()).map_err(corrupt)?;
    Ok((keys, fresh))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_stable_and_real() {
        let a = NodeKeys::from_entropy(&[1u8; 16]).unwrap();
        let b = NodeKeys::from_entropy(&[1u8; 16]).unwrap();
        let c = NodeKeys::from_entropy(&[2u8; 16]).unwrap();
        assert_eq!(*a.backup_key, *b.backup_key);
        assert_ne!(*a.backup_key, *c.backup_key);
        assert_eq!(a.identity_pubkey, b.identity_pubkey);
        assert!(a.backup_account_xpub.starts_with("tpub"));
    }

    #[test]
    fn wallet_files_are_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (first, fresh) = load_or_create(dir.path(), Some("known")).unwrap();
        assert!(fresh);
        let (again, fresh) = load_or_create(dir.path(), None).unwrap();
        assert!(!fresh);
        assert_eq!(first.identity_pubkey, again.identity_pubkey);
        assert_eq!(*first.backup_key, *again.backup_key);
        let stored = std::fs::read_to_string(dir.path().join(AEZEED_PASSPHRASE)).unwrap();
        assert_eq!(stored, "known\n");
        assert!(matches!(
            load_or_create(dir.path(), Some("other")),
            Err(SimError::Corrupt { .. })
        ));
    }
}
