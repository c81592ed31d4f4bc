//! The key lnd encrypts static channel backups with (proto/NOTES.md §8).
//!
//! lnd derives the public key at key locator {family 7
//! (`KeyFamilyBaseEncryption`), index 0}, that is BIP-32 path
//! `m/1017'/coin'/7'/0/0` (coin 0 on mainnet, 1 on every test network), and
//! uses SHA-256 of its 33-byte compressed form as the XChaCha20-Poly1305 key.
//!
//! So the *public* account key at `m/1017'/coin'/7'` opens every backup the
//! node ever made: treat it as a secret. Errors here never echo the input.

use std::fmt;

use bitcoin::NetworkKind;
use bitcoin::base58;
use bitcoin::bip32::{ChildNumber, Xpriv, Xpub};
use bitcoin::secp256k1::Secp256k1;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// lnd's BIP-43 purpose (`keychain.BIP0043Purpose`).
pub const PURPOSE: u32 = 1017;
/// `keychain.KeyFamilyBaseEncryption` (formerly `KeyFamilyStaticBackup`).
pub const FAMILY_BASE_ENCRYPTION: u32 = 7;
/// The account key `m/1017'/coin'/7'` sits at this depth.
const ACCOUNT_DEPTH: u8 = 3;
/// A serialized extended key: version, depth, parent, child, chain code, key.
const XKEY_LEN: usize = 78;

/// What is wrong with a key offered for SCB decryption.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the account key is not base58check (a typo, or a truncated copy): {0}")]
    NotBase58(String),
    #[error("the account key decodes to {0} bytes; an extended public key is 78")]
    WrongLength(usize),
    #[error(
        "this is an extended private key; give the account's extended public key instead \
         (`lncli wallet accounts list`, derivation path m/1017'/COIN'/7')"
    )]
    PrivateKey,
    #[error(
        "{0} is a SLIP-132 key; lnd prints the m/1017'/COIN'/7' account as xpub (mainnet) or \
         tpub (testnet, signet, regtest): copy that one"
    )]
    Slip132(&'static str),
    #[error(
        "unknown extended key version bytes {0}; expected xpub (mainnet) or tpub (test networks)"
    )]
    UnknownVersion(String),
    #[error("the account key does not decode: {0}")]
    Invalid(String),
    #[error("the account key is for {found}, but {expected} was asked for")]
    WrongNetwork {
        found: &'static str,
        expected: &'static str,
    },
    #[error(
        "the key is at depth {0}; the backup account key m/1017'/COIN'/7' is at depth 3 \
         (is this the account key of another family, or a master key?)"
    )]
    WrongDepth(u8),
    #[error(
        "the key is child {0} of its parent; the backup account is 7' \
         (KeyFamilyBaseEncryption, `lncli wallet accounts list` names it act:7 or m/1017'/COIN'/7')"
    )]
    WrongAccount(String),
    #[error("expected a master key (depth 0), got a key at depth {0}")]
    NotMaster(u8),
    #[error("deriving the backup key failed: {0}")]
    Derive(String),
}

fn network_name(n: NetworkKind) -> &'static str {
    match n {
        NetworkKind::Main => "mainnet (xpub)",
        NetworkKind::Test => "a test network (tpub)",
    }
}

/// lnd's coin type: 0 on mainnet, 1 on testnet, signet and regtest.
fn coin_type(n: NetworkKind) -> u32 {
    match n {
        NetworkKind::Main => 0,
        NetworkKind::Test => 1,
    }
}

/// Classify the version bytes of a decoded extended key.
fn check_version(version: [u8; 4]) -> Result<NetworkKind, KeyError> {
    Ok(match u32::from_be_bytes(version) {
        0x0488_B21E => NetworkKind::Main,
        0x0435_87CF => NetworkKind::Test,
        0x0488_ADE4 | 0x0435_8394 | 0x049D_7878 | 0x0295_B005 | 0x04B2_430C | 0x02AA_7A99
        | 0x044A_4E28 | 0x0242_85B5 | 0x045F_18BC | 0x0257_5048 => {
            return Err(KeyError::PrivateKey);
        }
        0x049D_7CB2 => return Err(KeyError::Slip132("ypub")),
        0x0295_B43F => return Err(KeyError::Slip132("Ypub")),
        0x04B2_4746 => return Err(KeyError::Slip132("zpub")),
        0x02AA_7ED3 => return Err(KeyError::Slip132("Zpub")),
        0x044A_5262 => return Err(KeyError::Slip132("upub")),
        0x0242_89EF => return Err(KeyError::Slip132("Upub")),
        0x045F_1CF6 => return Err(KeyError::Slip132("vpub")),
        0x0257_5483 => return Err(KeyError::Slip132("Vpub")),
        _ => return Err(KeyError::UnknownVersion(hex::encode(version))),
    })
}

/// The 32-byte XChaCha20-Poly1305 key of a node's static channel backups.
/// Zeroized on drop; no `Clone`, no `Display`; `Debug` prints `<redacted>`.
pub struct BackupKey {
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl BackupKey {
    /// From the account extended public key at `m/1017'/coin'/7'`, as
    /// `lncli wallet accounts list` prints it (xpub on mainnet, tpub on the
    /// test networks). `network` is the network the node runs on.
    pub fn from_account_xpub(text: &str, network: NetworkKind) -> Result<Self, KeyError> {
        let raw = Zeroizing::new(
            base58::decode_check(text.trim()).map_err(|e| KeyError::NotBase58(e.to_string()))?,
        );
        if raw.len() != XKEY_LEN {
            return Err(KeyError::WrongLength(raw.len()));
        }
        let mut version = [0u8; 4];
        version.copy_from_slice(&raw[..4]);
        let found = check_version(version)?;
        let xpub = Xpub::decode(&raw).map_err(|e| KeyError::Invalid(e.to_string()))?;
        if found != network {
            return Err(KeyError::WrongNetwork {
                found: network_name(found),
                expected: network_name(network),
            });
        }
        if xpub.depth != ACCOUNT_DEPTH {
            return Err(KeyError::WrongDepth(xpub.depth));
        }
        if xpub.child_number
            != (ChildNumber::Hardened {
                index: FAMILY_BASE_ENCRYPTION,
            })
        {
            return Err(KeyError::WrongAccount(xpub.child_number.to_string()));
        }
        Self::from_account(&xpub)
    }

    /// [`BackupKey::from_account_xpub`] for the network its prefix names:
    /// `tpub` for the test networks, anything else checked as mainnet.
    pub fn from_account_xpub_text(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let network = if text.starts_with("tpub") {
            NetworkKind::Test
        } else {
            NetworkKind::Main
        };
        Self::from_account_xpub(text, network)
    }

    /// The account key kept in a file of its own (`[lnd] backup_key_file`):
    /// one line, readable by its owner only (it opens every backup of the
    /// node). The error names what is wrong, never the key.
    pub fn from_file(file: &std::path::Path) -> Result<Self, String> {
        let cannot = |e: std::io::Error| format!("cannot read it: {e}");
        let open = std::fs::File::open(file).map_err(cannot)?;
        if let Some(mode) = crate::fsutil::too_open(&open).map_err(cannot)? {
            return Err(format!(
                "is readable by group or others (mode {mode:o}); it opens every backup of the node: chmod 600 it"
            ));
        }
        let text = crate::secret::read_secret_line_from(open).map_err(|e| e.to_string())?;
        Self::from_account_xpub_text(text.expose()).map_err(|e| e.to_string())
    }

    /// From a BIP-32 master key (depth 0), e.g. the one `aezeed` entropy
    /// gives. The coin type follows the key's network: 0 for an xprv, 1 for
    /// a tprv.
    pub fn from_master(master: &Xpriv) -> Result<Self, KeyError> {
        if master.depth != 0 {
            return Err(KeyError::NotMaster(master.depth));
        }
        let secp = Secp256k1::new();
        let path = [
            ChildNumber::Hardened { index: PURPOSE },
            ChildNumber::Hardened {
                index: coin_type(master.network),
            },
            ChildNumber::Hardened {
                index: FAMILY_BASE_ENCRYPTION,
            },
        ];
        let account = master
            .derive_priv(&secp, &path)
            .map_err(|e| KeyError::Derive(e.to_string()))?;
        Self::from_account(&Xpub::from_priv(&secp, &account))
    }

    /// The last two, unhardened steps: external branch 0, index 0.
    fn from_account(account: &Xpub) -> Result<Self, KeyError> {
        let secp = Secp256k1::verification_only();
        let path = [
            ChildNumber::Normal { index: 0 },
            ChildNumber::Normal { index: 0 },
        ];
        let leaf = account
            .derive_pub(&secp, &path)
            .map_err(|e| KeyError::Derive(e.to_string()))?;
        let compressed = Zeroizing::new(leaf.public_key.serialize());
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&Sha256::digest(&compressed[..]));
        Ok(Self { key })
    }

    /// From the raw 32-byte symmetric key (for keys kept elsewhere, and tests).
    pub fn from_raw(key: [u8; 32]) -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&key);
        let mut key = key;
        zeroize::Zeroize::zeroize(&mut key);
        Self { key: k }
    }

    /// A public name for this key: the first 4 bytes of SHA-256 of the
    /// 32-byte key, as 8 hex digits. It tells two keys apart in messages and
    /// logs; it reveals nothing useful about the key (a 32-bit prefix of a
    /// hash of a 256-bit secret), and anyone holding the key can recompute
    /// it with `sha256sum`.
    pub fn fingerprint(&self) -> String {
        hex::encode(&Sha256::digest(&self.key[..])[..4])
    }

    pub(super) fn expose(&self) -> &[u8; 32] {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::bip32::DerivationPath;

    use super::*;

    const SEED: [u8; 32] = [42u8; 32];

    fn master(n: NetworkKind) -> Xpriv {
        Xpriv::new_master(n, &SEED).expect("master")
    }

    fn xpub_at(n: NetworkKind, path: &str) -> Xpub {
        let secp = Secp256k1::new();
        let path: DerivationPath = path.parse().expect("path");
        Xpub::from_priv(&secp, &master(n).derive_priv(&secp, &path).expect("derive"))
    }

    /// Re-encode a key's 78 bytes with other version bytes.
    fn with_version(x: &Xpub, version: u32) -> String {
        let mut raw = x.encode();
        raw[..4].copy_from_slice(&version.to_be_bytes());
        base58::encode_check(&raw)
    }

    #[test]
    fn account_xpub_and_master_agree_on_both_networks() {
        for (n, coin) in [(NetworkKind::Main, 0), (NetworkKind::Test, 1)] {
            let x = xpub_at(n, &format!("m/1017'/{coin}'/7'"));
            let s = x.to_string();
            assert!(s.starts_with(if coin == 0 { "xpub" } else { "tpub" }));
            let a = BackupKey::from_account_xpub(&format!(" {s}\n"), n).expect("account");
            let b = BackupKey::from_master(&master(n)).expect("master");
            assert_eq!(a.expose(), b.expose());
            // key = SHA-256(compressed pubkey at m/1017'/coin'/7'/0/0)
            let secp = Secp256k1::verification_only();
            let leaf = x
                .derive_pub(&secp, &[ChildNumber::from(0), ChildNumber::from(0)])
                .expect("leaf");
            assert_eq!(
                a.expose()[..],
                Sha256::digest(leaf.public_key.serialize())[..]
            );
        }
        let main = BackupKey::from_master(&master(NetworkKind::Main)).expect("main");
        let test = BackupKey::from_master(&master(NetworkKind::Test)).expect("test");
        assert_ne!(main.fingerprint(), test.fingerprint(), "coin type differs");
    }

    #[test]
    fn account_key_errors_are_precise() {
        let n = NetworkKind::Test;
        let err = |s: &str| BackupKey::from_account_xpub(s, n).unwrap_err();
        let good = xpub_at(n, "m/1017'/1'/7'");
        assert!(matches!(err("tpubnotbase58!"), KeyError::NotBase58(_)));
        assert_eq!(
            err(&base58::encode_check(&[0u8; 40])),
            KeyError::WrongLength(40)
        );
        assert_eq!(
            err(&xpub_at(n, "m/1017'/1'").to_string()),
            KeyError::WrongDepth(2)
        );
        assert_eq!(err(&xpub_at(n, "m").to_string()), KeyError::WrongDepth(0));
        assert_eq!(
            err(&xpub_at(n, "m/1017'/1'/6'").to_string()),
            KeyError::WrongAccount("6'".into())
        );
        assert_eq!(
            err(&xpub_at(n, "m/1017'/1'/7").to_string()),
            KeyError::WrongAccount("7".into())
        );
        assert_eq!(
            BackupKey::from_account_xpub(&good.to_string(), NetworkKind::Main).unwrap_err(),
            KeyError::WrongNetwork {
                found: "a test network (tpub)",
                expected: "mainnet (xpub)"
            }
        );
        assert_eq!(
            err(&with_version(&good, 0x045F_1CF6)),
            KeyError::Slip132("vpub")
        );
        assert_eq!(
            err(&with_version(&good, 0x044A_5262)),
            KeyError::Slip132("upub")
        );
        assert_eq!(
            err(&with_version(&good, 0x0102_0304)),
            KeyError::UnknownVersion("01020304".into())
        );
        let m = master(n);
        let secp = Secp256k1::new();
        let path: DerivationPath = "m/1017'/1'/7'".parse().expect("path");
        let xprv = m.derive_priv(&secp, &path).expect("derive").to_string();
        let e = err(&xprv);
        assert_eq!(e, KeyError::PrivateKey);
        // No error ever echoes the key it was given.
        for s in [xprv.as_str(), &good.to_string()[..100]] {
            let text = err(s).to_string();
            assert!(!text.contains(&s[4..20]), "{text}");
            assert!(!text.contains('\n'));
        }
        let child = m.derive_priv(&secp, &path).expect("derive");
        assert_eq!(
            BackupKey::from_master(&child).unwrap_err(),
            KeyError::NotMaster(3)
        );
    }

    #[test]
    fn backup_key_is_redacted_and_fingerprinted() {
        let k = BackupKey::from_raw([7u8; 32]);
        assert_eq!(format!("{k:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&k)), "Some(<redacted>)");
        let fp = k.fingerprint();
        assert_eq!(fp.len(), 8);
        assert_eq!(fp, hex::encode(&Sha256::digest([7u8; 32])[..4]));
        assert!(!fp.contains("0707"));
        assert_ne!(fp, BackupKey::from_raw([8u8; 32]).fingerprint());
    }
}
