//! The public facts of an item, and how they are kept as OpenBao
//! `custom_metadata`.

use std::collections::BTreeMap;

use super::METADATA_VALUE_LIMIT;
use super::error::MaterialError;

/// Non-secret facts about an item. They are stored as OpenBao
/// `custom_metadata` (see [`PublicFacts::to_metadata`]) and compared on
/// read-back.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PublicFacts {
    /// The item's [`Kind`](super::Kind) name.
    pub kind: String,
    /// Network name (`mainnet`, `testnet`, `signet`, `regtest`); none for age
    /// identities.
    pub network: Option<String>,
    /// 8 lowercase hex digits: the master key fingerprint of a seed or xprv,
    /// or the fingerprint in an xpub's key origin.
    pub master_fingerprint: Option<String>,
    /// Path of the account key from the master, `m/48'/0'/0'/2'` form.
    pub derivation: Option<String>,
    /// Account xpub (derived, or given), always `xpub…`/`tpub…`, never a
    /// SLIP-132 prefix.
    pub xpub: Option<String>,
    /// Descriptor items: the descriptor as given (validated), with checksum.
    pub descriptor: Option<String>,
    /// Descriptor items: `[fingerprint/path]key` of every distinct key.
    pub descriptor_keys: Vec<String>,
    /// Age identities: the `age1…` recipient.
    pub recipient: Option<String>,
    /// Mnemonic length (bip39, aezeed).
    pub words: Option<u8>,
    /// Whether a passphrase was given (bip39, aezeed).
    pub has_passphrase: Option<bool>,
    /// aezeed external cipher-seed version (only 0 exists).
    pub seed_version: Option<u8>,
    /// aezeed: the wallet's birthday, `YYYY-MM-DD` (UTC).
    #[serde(default)]
    pub birthday: Option<String>,
    /// aezeed: the node identity public key (m/1017'/coin'/6'/0/0), hex.
    #[serde(default)]
    pub node_pubkey: Option<String>,
    /// aezeed: fingerprint of the key that encrypts channel backups
    /// (`BackupKey::fingerprint`, 8 hex digits).
    #[serde(default)]
    pub backup_key_fingerprint: Option<String>,
}

/// Metadata keys written by [`PublicFacts::to_metadata`].
mod meta_key {
    pub const KIND: &str = "kind";
    pub const NETWORK: &str = "network";
    pub const MASTER_FINGERPRINT: &str = "master_fingerprint";
    pub const DERIVATION: &str = "derivation";
    pub const XPUB: &str = "xpub";
    pub const DESCRIPTOR: &str = "descriptor";
    /// Chunks of a descriptor longer than the value limit: `descriptor.0`, …
    pub const DESCRIPTOR_CHUNK: &str = "descriptor.";
    /// One per key: `descriptor_key.0`, …
    pub const DESCRIPTOR_KEY: &str = "descriptor_key.";
    pub const RECIPIENT: &str = "recipient";
    pub const WORDS: &str = "words";
    pub const HAS_PASSPHRASE: &str = "has_passphrase";
    pub const SEED_VERSION: &str = "seed_version";
    pub const BIRTHDAY: &str = "birthday";
    pub const NODE_PUBKEY: &str = "node_pubkey";
    pub const BACKUP_KEY_FINGERPRINT: &str = "backup_key_fingerprint";
}

impl PublicFacts {
    /// Flatten into a string map for OpenBao `custom_metadata`. Values are
    /// kept under [`METADATA_VALUE_LIMIT`] by splitting a long descriptor into
    /// `descriptor.0`, `descriptor.1`, … and writing each descriptor key as
    /// `descriptor_key.N`. Absent facts are left out. Other keys in the same
    /// map (the store's own, such as `created`) are ignored by
    /// [`PublicFacts::from_metadata`].
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(meta_key::KIND.to_owned(), self.kind.clone());
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), v.clone());
            }
        };
        put(meta_key::NETWORK, &self.network);
        put(meta_key::MASTER_FINGERPRINT, &self.master_fingerprint);
        put(meta_key::DERIVATION, &self.derivation);
        put(meta_key::XPUB, &self.xpub);
        put(meta_key::RECIPIENT, &self.recipient);
        put(meta_key::BIRTHDAY, &self.birthday);
        put(meta_key::NODE_PUBKEY, &self.node_pubkey);
        put(
            meta_key::BACKUP_KEY_FINGERPRINT,
            &self.backup_key_fingerprint,
        );
        if let Some(d) = &self.descriptor {
            if d.len() <= METADATA_VALUE_LIMIT {
                m.insert(meta_key::DESCRIPTOR.to_owned(), d.clone());
            } else {
                // Descriptors are ASCII (miniscript refuses anything else),
                // so byte chunks are character chunks.
                for (i, chunk) in d.as_bytes().chunks(METADATA_VALUE_LIMIT).enumerate() {
                    m.insert(
                        format!("{}{i}", meta_key::DESCRIPTOR_CHUNK),
                        String::from_utf8_lossy(chunk).into_owned(),
                    );
                }
            }
        }
        for (i, k) in self.descriptor_keys.iter().enumerate() {
            m.insert(format!("{}{i}", meta_key::DESCRIPTOR_KEY), k.clone());
        }
        if let Some(w) = self.words {
            m.insert(meta_key::WORDS.to_owned(), w.to_string());
        }
        if let Some(p) = self.has_passphrase {
            m.insert(meta_key::HAS_PASSPHRASE.to_owned(), p.to_string());
        }
        if let Some(v) = self.seed_version {
            m.insert(meta_key::SEED_VERSION.to_owned(), v.to_string());
        }
        m
    }

    /// Read back what [`PublicFacts::to_metadata`] wrote; unknown keys are
    /// ignored. Errors name the metadata key.
    pub fn from_metadata(m: &BTreeMap<String, String>) -> Result<Self, MaterialError> {
        let bad = |key: &str, reason: &str| MaterialError::BadMetadata {
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        let kind = m.get(meta_key::KIND).cloned().ok_or_else(|| {
            bad(
                meta_key::KIND,
                "is missing; this is not a chanvault escrow item",
            )
        })?;
        let get = |k: &str| m.get(k).cloned();
        let descriptor = match get(meta_key::DESCRIPTOR) {
            Some(d) => Some(d),
            None => {
                let chunks = numbered(m, meta_key::DESCRIPTOR_CHUNK)
                    .map_err(|reason| bad(meta_key::DESCRIPTOR_CHUNK, &reason))?;
                (!chunks.is_empty()).then(|| chunks.concat())
            }
        };
        let descriptor_keys = numbered(m, meta_key::DESCRIPTOR_KEY)
            .map_err(|reason| bad(meta_key::DESCRIPTOR_KEY, &reason))?;
        let words = get(meta_key::WORDS)
            .map(|w| {
                w.parse::<u8>()
                    .map_err(|_| bad(meta_key::WORDS, "is not a word count (0-255)"))
            })
            .transpose()?;
        let has_passphrase = get(meta_key::HAS_PASSPHRASE)
            .map(|p| match p.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(bad(
                    meta_key::HAS_PASSPHRASE,
                    "must be \"true\" or \"false\"",
                )),
            })
            .transpose()?;
        let seed_version = get(meta_key::SEED_VERSION)
            .map(|v| {
                v.parse::<u8>()
                    .map_err(|_| bad(meta_key::SEED_VERSION, "is not a version number (0-255)"))
            })
            .transpose()?;
        Ok(PublicFacts {
            kind,
            network: get(meta_key::NETWORK),
            master_fingerprint: get(meta_key::MASTER_FINGERPRINT),
            derivation: get(meta_key::DERIVATION),
            xpub: get(meta_key::XPUB),
            descriptor,
            descriptor_keys,
            recipient: get(meta_key::RECIPIENT),
            words,
            has_passphrase,
            seed_version,
            birthday: get(meta_key::BIRTHDAY),
            node_pubkey: get(meta_key::NODE_PUBKEY),
            backup_key_fingerprint: get(meta_key::BACKUP_KEY_FINGERPRINT),
        })
    }

    /// Names and values of the fields where `self` and `other` differ (all
    /// public), for error messages.
    pub(super) fn differences(&self, other: &PublicFacts) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{name}: stored {a}, recomputed {b}"));
            }
        };
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_owned());
        cmp("kind", self.kind.clone(), other.kind.clone());
        cmp("network", opt(&self.network), opt(&other.network));
        cmp(
            "master_fingerprint",
            opt(&self.master_fingerprint),
            opt(&other.master_fingerprint),
        );
        cmp("derivation", opt(&self.derivation), opt(&other.derivation));
        cmp("xpub", opt(&self.xpub), opt(&other.xpub));
        cmp("descriptor", opt(&self.descriptor), opt(&other.descriptor));
        cmp(
            "descriptor_keys",
            self.descriptor_keys.join(","),
            other.descriptor_keys.join(","),
        );
        cmp("recipient", opt(&self.recipient), opt(&other.recipient));
        cmp(
            "words",
            format!("{:?}", self.words),
            format!("{:?}", other.words),
        );
        cmp(
            "has_passphrase",
            format!("{:?}", self.has_passphrase),
            format!("{:?}", other.has_passphrase),
        );
        cmp(
            "seed_version",
            format!("{:?}", self.seed_version),
            format!("{:?}", other.seed_version),
        );
        cmp("birthday", opt(&self.birthday), opt(&other.birthday));
        cmp(
            "node_pubkey",
            opt(&self.node_pubkey),
            opt(&other.node_pubkey),
        );
        cmp(
            "backup_key_fingerprint",
            opt(&self.backup_key_fingerprint),
            opt(&other.backup_key_fingerprint),
        );
        out
    }
}

/// Values of `prefix0`, `prefix1`, … in order; a gap is an error.
fn numbered(m: &BTreeMap<String, String>, prefix: &str) -> Result<Vec<String>, String> {
    let mut found: BTreeMap<usize, String> = BTreeMap::new();
    for (k, v) in m {
        if let Some(n) = k.strip_prefix(prefix) {
            let n: usize = n
                .parse()
                .map_err(|_| format!("key {k} does not end in a number"))?;
            found.insert(n, v.clone());
        }
    }
    for (expected, n) in found.keys().enumerate() {
        if *n != expected {
            return Err(format!(
                "{prefix}{expected} is missing (the entries are incomplete)"
            ));
        }
    }
    Ok(found.into_values().collect())
}
