//! Mnemonic seeds: BIP-39 and LND's aezeed.

use bitcoin::bip32::Xpriv;
use bitcoin::secp256k1::Secp256k1;
use zeroize::{Zeroize, Zeroizing};

use super::error::MaterialError;
use super::facts::PublicFacts;
use super::kind::{Kind, Network};
use super::path::{account_path, derive_xpub, fmt_path};
use super::{AccountKey, Material, ParseOptions};
use crate::secret::SecretString;

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
                if indices.len() == 24 && aezeed_checksum_ok(&indices) =>
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

/// Layout of LND's enciphered cipher seed (lnd `aezeed/cipherseed.go`):
/// `version(1) || aez ciphertext(23) || salt(5) || checksum(4)`; the
/// checksum is CRC-32C (Castagnoli), big-endian, over the first 29 bytes.
const AEZEED_LEN: usize = 33;
const AEZEED_CHECKSUM_OFFSET: usize = AEZEED_LEN - 4;

/// The 33 bytes that 24 word indices (11 bits each) encode.
pub(super) fn aezeed_bytes(indices: &[u16]) -> Zeroizing<[u8; AEZEED_LEN]> {
    let mut out = Zeroizing::new([0u8; AEZEED_LEN]);
    for (i, idx) in indices.iter().enumerate().take(24) {
        for j in 0..11 {
            let bit = ((idx >> (10 - j)) & 1) as u8;
            let pos = i * 11 + j;
            out[pos / 8] |= bit << (7 - pos % 8);
        }
    }
    out
}

pub(super) fn aezeed_checksum_ok(indices: &[u16]) -> bool {
    let bytes = aezeed_bytes(indices);
    let stored = u32::from_be_bytes([
        bytes[AEZEED_CHECKSUM_OFFSET],
        bytes[AEZEED_CHECKSUM_OFFSET + 1],
        bytes[AEZEED_CHECKSUM_OFFSET + 2],
        bytes[AEZEED_CHECKSUM_OFFSET + 3],
    ]);
    crc32c(&bytes[..AEZEED_CHECKSUM_OFFSET]) == stored
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bitwise.
pub(super) fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

pub(super) fn parse_aezeed(
    text: &str,
    passphrase: Option<&SecretString>,
    opts: &ParseOptions,
) -> Result<Material, MaterialError> {
    let kind = Kind::Aezeed;
    let (normalized, indices) = normalize_mnemonic(text, kind, &[24], "exactly 24")?;
    if !aezeed_checksum_ok(&indices) {
        let bip39_ok =
            bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &normalized).is_ok();
        return Err(if bip39_ok {
            MaterialError::LooksLikeBip39
        } else {
            MaterialError::AezeedChecksum
        });
    }
    let version = aezeed_bytes(&indices)[0];
    if version != 0 {
        return Err(MaterialError::AezeedVersion { version });
    }
    let has_passphrase = passphrase.is_some_and(|p| p.expose() != AEZEED_DEFAULT_PASSPHRASE);
    Ok(Material {
        kind,
        network: Some(opts.network),
        public: PublicFacts {
            kind: kind.to_string(),
            network: Some(opts.network.to_string()),
            words: Some(24),
            has_passphrase: Some(has_passphrase),
            seed_version: Some(version),
            ..PublicFacts::default()
        },
        secret: Some(SecretString::new(normalized.to_string())),
        passphrase: passphrase.map(|p| SecretString::new(p.expose().to_owned())),
        account: None,
        descriptor_keys: Vec::new(),
    })
}
