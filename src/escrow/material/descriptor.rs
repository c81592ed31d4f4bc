//! Output descriptors: checksum, no private keys, keys with origins.

use std::fmt;

use bitcoin::base58;
use bitcoin::bip32::{DerivationPath, Fingerprint, Xpub};
use bitcoin::secp256k1::Secp256k1;
use miniscript::descriptor::{DescriptorPublicKey, SinglePubKey};
use miniscript::{Descriptor, ForEachKey};
use zeroize::Zeroizing;

use super::error::MaterialError;
use super::facts::PublicFacts;
use super::kind::Kind;
use super::path::fmt_origin;
use super::xkey::{KEY_VERSIONS, network_kind_name};
use super::{Material, ParseOptions};

/// The characters of a BIP-380 descriptor checksum.
const DESCRIPTOR_CHECKSUM_CHARSET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// A key of a descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DescKey {
    pub(super) fingerprint: Fingerprint,
    pub(super) path: DerivationPath,
    pub(super) key: DescKeyValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DescKeyValue {
    Xpub(Xpub),
    Single(SinglePubKey),
}

impl DescKey {
    pub(super) fn origin(&self) -> String {
        fmt_origin(self.fingerprint, &self.path)
    }
}

impl fmt::Display for DescKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            DescKeyValue::Xpub(x) => write!(f, "{}{x}", self.origin()),
            DescKeyValue::Single(SinglePubKey::FullKey(k)) => write!(f, "{}{k}", self.origin()),
            DescKeyValue::Single(SinglePubKey::XOnly(k)) => write!(f, "{}{k}", self.origin()),
        }
    }
}

/// Private-key material that must never be escrowed inside a descriptor:
/// an extended private key (any SLIP-132 prefix) or a WIF key. Checked on
/// the raw text before miniscript sees it, so no parser error can echo it.
pub(super) fn count_private_tokens(body: &str) -> usize {
    body.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|token| {
            if token.len() < 50 {
                return false;
            }
            let Ok(data) = base58::decode_check(token) else {
                return false;
            };
            let data = Zeroizing::new(data);
            let xprv = data.len() == 78
                && KEY_VERSIONS
                    .iter()
                    .any(|v| v.private && data.starts_with(&v.bytes));
            let wif = matches!(data.len(), 33 | 34) && matches!(data[0], 0x80 | 0xef);
            xprv || wif
        })
        .count()
}

pub(super) fn parse_descriptor(text: &str, opts: &ParseOptions) -> Result<Material, MaterialError> {
    let kind = Kind::Descriptor;
    let Some((body, checksum)) = text.rsplit_once('#') else {
        return Err(MaterialError::DescriptorMissingChecksum);
    };
    if checksum.len() != 8
        || !checksum
            .chars()
            .all(|c| DESCRIPTOR_CHECKSUM_CHARSET.contains(c))
    {
        return Err(MaterialError::DescriptorMalformedChecksum);
    }
    let private = count_private_tokens(body);
    if private > 0 {
        return Err(MaterialError::DescriptorPrivateKey { count: private });
    }
    let expected = miniscript::descriptor::checksum::desc_checksum(body).map_err(|_| {
        MaterialError::DescriptorParse {
            reason: "it contains characters that are not allowed in descriptors".to_owned(),
        }
    })?;
    if expected != checksum {
        return Err(MaterialError::DescriptorBadChecksum);
    }
    let secp = Secp256k1::signing_only();
    let (descriptor, keymap) = Descriptor::<DescriptorPublicKey>::parse_descriptor(&secp, text)
        .map_err(|e| MaterialError::DescriptorParse {
            reason: e.to_string(),
        })?;
    if !keymap.is_empty() {
        return Err(MaterialError::DescriptorPrivateKey {
            count: keymap.len(),
        });
    }
    descriptor
        .sanity_check()
        .map_err(|e| MaterialError::DescriptorUnsafe {
            reason: e.to_string(),
        })?;
    let mut raw_keys = Vec::new();
    descriptor.for_each_key(|k| {
        raw_keys.push(k.clone());
        true
    });
    let mut keys: Vec<DescKey> = Vec::new();
    for (i, k) in raw_keys.into_iter().enumerate() {
        let position = i + 1;
        let (origin, value) = match k {
            DescriptorPublicKey::Single(s) => (s.origin, DescKeyValue::Single(s.key)),
            DescriptorPublicKey::XPub(x) => (x.origin, DescKeyValue::Xpub(x.xkey)),
            DescriptorPublicKey::MultiXPub(x) => (x.origin, DescKeyValue::Xpub(x.xkey)),
        };
        let Some((fingerprint, path)) = origin else {
            let key = match &value {
                DescKeyValue::Xpub(x) => x.to_string(),
                DescKeyValue::Single(SinglePubKey::FullKey(p)) => p.to_string(),
                DescKeyValue::Single(SinglePubKey::XOnly(p)) => p.to_string(),
            };
            return Err(MaterialError::DescriptorKeyWithoutOrigin { position, key });
        };
        let key = DescKey {
            fingerprint,
            path,
            key: value,
        };
        if let DescKeyValue::Xpub(x) = &key.key
            && x.network != opts.network.kind()
        {
            return Err(MaterialError::DescriptorWrongNetwork {
                position,
                origin: key.origin(),
                key_network: network_kind_name(x.network),
                network: opts.network,
            });
        }
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(Material {
        kind,
        network: Some(opts.network),
        public: PublicFacts {
            kind: kind.to_string(),
            network: Some(opts.network.to_string()),
            descriptor: Some(text.to_owned()),
            descriptor_keys: keys.iter().map(ToString::to_string).collect(),
            ..PublicFacts::default()
        },
        secret: None,
        passphrase: None,
        account: None,
        descriptor_keys: keys,
    })
}
