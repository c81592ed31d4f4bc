//! Mnemonic seeds: BIP-39 and LND's aezeed.

use std::str::FromStr;

use bitcoin::bip32::Xpriv;
use bitcoin::secp256k1::Secp256k1;
use zeroize::{Zeroize, Zeroizing};

use super::error::MaterialError;
use super::facts::PublicFacts;
use super::kind::{Kind, Network};
use super::path::{account_path, derive_xpub, fmt_path};
use super::{AccountKey, Material, ParseOptions};
use crate::chanbackup::BackupKey;
use crate::secret::SecretString;
use crate::wallet::aezeed::{CIPHER_SEED_VERSION, CipherSeed, Mnemonic, SeedError};

/// LND's aezeed default passphrase, used when the user set none.
const AEZEED_DEFAULT_PASSPHRASE: &str = "aezeed";

pub(super) fn parse_bip39(
    text: &str,
    passphrase: Option<&SecretString>,
    opts: &ParseOptions,
) -> Result<Material, MaterialError> {
    let kind = Kind::Bip39;
    let (normalized, indices) =
        normalize_mnemonic(text, kind, &[12, 15, 18, 21, 24], "12, 15, 18, 21 or 24")?;
    if let Err(e) = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &normalized) {
        return Err(match e {
            bip39::Error::InvalidChecksum
                if indices.len() == 24
                    && Mnemonic::from_str(&normalized).is_ok_and(|m| m.checksum_ok()) =>
            {
                MaterialError::LooksLikeAezeed
            }
            bip39::Error::UnknownWord(i) => MaterialError::UnknownWord {
                kind,
                position: i + 1,
            },
            bip39::Error::BadWordCount(count) => MaterialError::WordCount {
                kind,
                count,
                expected: "12, 15, 18, 21 or 24",
            },
            _ => MaterialError::Bip39Checksum,
        });
    }
    let network = opts.network;
    let path = account_path(opts)?;
    let secp = Secp256k1::new();
    let mut master = bip39_master(&normalized, passphrase, network)?;
    let fingerprint = master.fingerprint(&secp);
    let xpub = derive_xpub(&secp, &master, path.as_ref(), kind);
    master.private_key.non_secure_erase();
    let xpub = xpub?;
    let words = u8::try_from(indices.len()).unwrap_or(u8::MAX);
    Ok(Material {
        kind,
        network: Some(network),
        public: PublicFacts {
            kind: kind.to_string(),
            network: Some(network.to_string()),
            master_fingerprint: Some(fingerprint.to_string()),
            derivation: Some(fmt_path(&path)),
            xpub: Some(xpub.to_string()),
            words: Some(words),
            has_passphrase: Some(passphrase.is_some()),
            ..PublicFacts::default()
        },
        secret: Some(SecretString::new(normalized.to_string())),
        passphrase: passphrase.map(|p| SecretString::new(p.expose().to_owned())),
        account: Some(AccountKey {
            fingerprint,
            path,
            xpub,
        }),
        descriptor_keys: Vec::new(),
    })
}

/// Master xprv of a (normalised, already validated) BIP-39 mnemonic.
pub(super) fn bip39_master(
    normalized: &str,
    passphrase: Option<&SecretString>,
    network: Network,
) -> Result<Xpriv, MaterialError> {
    let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, normalized)
        .map_err(|_| MaterialError::Bip39Checksum)?;
    // Passphrases in NFKD form are used as they are; others are normalised
    // by the crate into a temporary String we cannot wipe (rare: non-ASCII).
    let mut seed = Zeroizing::new(mnemonic.to_seed(passphrase.map_or("", |p| p.expose())));
    let master =
        Xpriv::new_master(network.kind(), &seed[..]).map_err(|e| MaterialError::Derivation {
            kind: Kind::Bip39,
            reason: e.to_string(),
        });
    seed.zeroize();
    master
}

/// Lowercase, single-spaced words and their BIP-39 English indices. Checks
/// the count and that every word is in the list; errors give positions only.
fn normalize_mnemonic(
    text: &str,
    kind: Kind,
    counts: &[usize],
    expected: &'static str,
) -> Result<(Zeroizing<String>, Zeroizing<Vec<u16>>), MaterialError> {
    let lower = Zeroizing::new(text.to_lowercase());
    let count = lower.split_whitespace().count();
    if !counts.contains(&count) {
        return Err(MaterialError::WordCount {
            kind,
            count,
            expected,
        });
    }
    let mut normalized = Zeroizing::new(String::with_capacity(lower.len()));
    let mut indices = Zeroizing::new(Vec::with_capacity(count));
    for (i, word) in lower.split_whitespace().enumerate() {
        let idx = bip39::Language::English
            .find_word(word)
            .ok_or(MaterialError::UnknownWord {
                kind,
                position: i + 1,
            })?;
        if i > 0 {
            normalized.push(' ');
        }
        normalized.push_str(word);
        indices.push(idx);
    }
    Ok((normalized, indices))
}

/// What the wallet module's aezeed errors mean here. No variant carries a
/// word or the passphrase.
fn aezeed_error(e: SeedError, normalized: &str) -> MaterialError {
    let kind = Kind::Aezeed;
    match e {
        SeedError::WordCount(count) => MaterialError::WordCount {
            kind,
            count,
            expected: "exactly 24",
        },
        SeedError::UnknownWord { position } => MaterialError::UnknownWord { kind, position },
        SeedError::BadChecksum => {
            if bip39::Mnemonic::parse_in_normalized(bip39::Language::English, normalized).is_ok() {
                MaterialError::LooksLikeBip39
            } else {
                MaterialError::AezeedChecksum
            }
        }
        SeedError::UnknownExternalVersion(version) | SeedError::UnknownInternalVersion(version) => {
            MaterialError::AezeedVersion { version }
        }
        SeedError::WrongPassphrase => MaterialError::AezeedPassphrase,
        e @ (SeedError::Random | SeedError::Kdf(_) | SeedError::Derivation(_)) => {
            MaterialError::Derivation {
                kind,
                reason: e.to_string(),
            }
        }
    }
}

/// The public facts only an opened aezeed gives: birthday (`YYYY-MM-DD`,
/// UTC), node identity key (hex) and the backup key's fingerprint. The
/// master key is wiped before returning.
fn aezeed_facts(
    seed: &CipherSeed,
    network: Network,
) -> Result<(String, String, String), MaterialError> {
    let derivation = |reason: String| MaterialError::Derivation {
        kind: Kind::Aezeed,
        reason,
    };
    let birthday = chrono::DateTime::from_timestamp(seed.birthday_unix(), 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .ok_or_else(|| derivation("the birthday is out of range".to_owned()))?;
    let node = seed
        .node_pubkey(network.bitcoin())
        .map_err(|e| aezeed_error(e, ""))?;
    let mut master = seed
        .master_key(network.bitcoin())
        .map_err(|e| aezeed_error(e, ""))?;
    let backup = BackupKey::from_master(&master).map(|k| k.fingerprint());
    master.private_key.non_secure_erase();
    let backup = backup.map_err(|e| derivation(e.to_string()))?;
    Ok((birthday, node.to_string(), backup))
}

/// The channel-backup key of an aezeed (normalised words, as stored).
pub(super) fn aezeed_backup_key(
    words: &str,
    passphrase: Option<&SecretString>,
    network: Network,
) -> Result<BackupKey, MaterialError> {
    let mnemonic = Mnemonic::from_str(words).map_err(|e| aezeed_error(e, words))?;
    let pass = passphrase.map_or("", |p| p.expose());
    let seed =
        CipherSeed::decipher(&mnemonic, pass.as_bytes()).map_err(|e| aezeed_error(e, words))?;
    let mut master = seed
        .master_key(network.bitcoin())
        .map_err(|e| aezeed_error(e, ""))?;
    let key = BackupKey::from_master(&master);
    master.private_key.non_secure_erase();
    key.map_err(|e| MaterialError::Derivation {
        kind: Kind::Aezeed,
        reason: e.to_string(),
    })
}

pub(super) fn parse_aezeed(
    text: &str,
    passphrase: Option<&SecretString>,
    opts: &ParseOptions,
) -> Result<Material, MaterialError> {
    let kind = Kind::Aezeed;
    let (normalized, _) = normalize_mnemonic(text, kind, &[24], "exactly 24")?;
    let mnemonic = Mnemonic::from_str(&normalized).map_err(|e| aezeed_error(e, &normalized))?;
    let pass = passphrase.map_or("", |p| p.expose());
    let seed = CipherSeed::decipher(&mnemonic, pass.as_bytes())
        .map_err(|e| aezeed_error(e, &normalized))?;
    let (birthday, node_pubkey, backup_fingerprint) = aezeed_facts(&seed, opts.network)?;
    let has_passphrase = passphrase.is_some_and(|p| p.expose() != AEZEED_DEFAULT_PASSPHRASE);
    Ok(Material {
        kind,
        network: Some(opts.network),
        public: PublicFacts {
            kind: kind.to_string(),
            network: Some(opts.network.to_string()),
            words: Some(24),
            has_passphrase: Some(has_passphrase),
            seed_version: Some(CIPHER_SEED_VERSION),
            birthday: Some(birthday),
            node_pubkey: Some(node_pubkey),
            backup_key_fingerprint: Some(backup_fingerprint),
            ..PublicFacts::default()
        },
        secret: Some(SecretString::new(normalized.to_string())),
        passphrase: passphrase.map(|p| SecretString::new(p.expose().to_owned())),
        account: None,
        descriptor_keys: Vec::new(),
    })
}
