//! Typed, validated key material for the escrow, and the cross-checks between
//! escrowed items.
//!
//! This module is pure: no network, no files. The escrow store (`kv`) keeps
//! what [`Material::secret`] returns as the secret value and what
//! [`PublicFacts::to_metadata`] returns as OpenBao `custom_metadata`; on the
//! way back [`Material::from_stored`] re-validates both and refuses if they
//! disagree.
//!
//! Secret habits: the secret part of an item lives only in a
//! [`SecretString`] holding its canonical text; intermediate buffers (seed
//! bytes, decoded extended keys, lower-cased mnemonics) are zeroizing;
//! [`Material`]'s `Debug` shows the kind and public facts only; and no error
//! message ever contains a word, a key or an identity: errors say "word 7",
//! never the word. Derived private keys (`bitcoin::bip32::Xpriv` is `Copy`)
//! are erased with `non_secure_erase` after use, which is best effort: the
//! `bitcoin` crate may leave copies on the stack.
//!
//! Kinds and what is checked:
//! - `bip39`: English list, 12–24 words, checksum; derives the master
//!   fingerprint and the account xpub at the derivation path.
//! - `aezeed`: LND's 24-word cipher seed; word list, length, external
//!   version and CRC-32C checksum (the AEZ-encrypted body, which holds the
//!   birthday and the entropy, cannot be opened without an AEZ
//!   implementation, so the passphrase is not verified).
//! - `xprv` / `xpub`: base58check, SLIP-132 prefixes normalised to
//!   `xpub`/`tpub`, network, key origin `[fingerprint/path]` consistent with
//!   the key's depth.
//! - `descriptor`: checksum required, parsed with miniscript, no private keys,
//!   every key with an origin, network of every xpub.
//! - `age-identity`: exactly one `AGE-SECRET-KEY-1…` (comments allowed, as
//!   written by age-keygen); the recipient is the public fact.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use bitcoin::NetworkKind;
use bitcoin::base58;
use bitcoin::bip32::{ChildNumber, DerivationPath, Fingerprint, Xpriv, Xpub};
use bitcoin::secp256k1::{self, Secp256k1};
use miniscript::descriptor::{DescriptorPublicKey, SinglePubKey};
use miniscript::{Descriptor, ForEachKey};
use zeroize::{Zeroize, Zeroizing};

use crate::secret::SecretString;

/// Longest input accepted for any kind. A 2-of-3 descriptor is ~450
/// characters and an age-keygen file ~190; anything this large is the wrong
/// file, and refusing it early keeps secrets out of big reallocations.
pub const MAX_INPUT_LEN: usize = 16 * 1024;

/// OpenBao (and Vault) KV v2 refuses `custom_metadata` values longer than
/// this, so longer facts (a descriptor with many keys) are split over
/// numbered keys (`descriptor.0`, `descriptor.1`, …).
pub const METADATA_VALUE_LIMIT: usize = 512;

/// LND's aezeed default passphrase, used when the user set none.
const AEZEED_DEFAULT_PASSPHRASE: &str = "aezeed";

/// The characters of a BIP-380 descriptor checksum.
const DESCRIPTOR_CHECKSUM_CHARSET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// What an item is. Parsed from and shown as the names used on the command
/// line and in the store (`bip39`, `aezeed`, `xprv`, `xpub`, `descriptor`,
/// `age-identity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Bip39,
    Aezeed,
    Xprv,
    Xpub,
    Descriptor,
    AgeIdentity,
}

impl Kind {
    /// Every kind, in the order they are documented.
    pub const ALL: [Kind; 6] = [
        Kind::Bip39,
        Kind::Aezeed,
        Kind::Xprv,
        Kind::Xpub,
        Kind::Descriptor,
        Kind::AgeIdentity,
    ];

    /// Whether items of this kind carry a secret. `xpub` and `descriptor`
    /// are public (a descriptor with a private key is refused).
    pub fn is_secret(self) -> bool {
        !matches!(self, Kind::Xpub | Kind::Descriptor)
    }

    /// The name used on the command line and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bip39 => "bip39",
            Kind::Aezeed => "aezeed",
            Kind::Xprv => "xprv",
            Kind::Xpub => "xpub",
            Kind::Descriptor => "descriptor",
            Kind::AgeIdentity => "age-identity",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = MaterialError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| MaterialError::UnknownKind {
                given: truncate_for_message(s),
            })
    }
}

/// The Bitcoin network an item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Bitcoin,
    Testnet,
    Signet,
    Regtest,
}

impl Network {
    /// The key-serialisation network: `xpub`/`xprv` on mainnet, `tpub`/`tprv`
    /// on every test network (they cannot be told apart from the key).
    pub fn kind(self) -> NetworkKind {
        match self {
            Network::Bitcoin => NetworkKind::Main,
            _ => NetworkKind::Test,
        }
    }

    /// The `bitcoin` crate's network (for addresses and the like).
    pub fn bitcoin(self) -> bitcoin::Network {
        match self {
            Network::Bitcoin => bitcoin::Network::Bitcoin,
            Network::Testnet => bitcoin::Network::Testnet,
            Network::Signet => bitcoin::Network::Signet,
            Network::Regtest => bitcoin::Network::Regtest,
        }
    }

    /// BIP-44 coin type: 0 on mainnet, 1 on test networks.
    pub fn coin_type(self) -> u32 {
        match self {
            Network::Bitcoin => 0,
            _ => 1,
        }
    }

    /// The name used in config and metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Bitcoin => "mainnet",
            Network::Testnet => "testnet",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Network {
    type Err = MaterialError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mainnet" | "bitcoin" => Ok(Network::Bitcoin),
            "testnet" => Ok(Network::Testnet),
            "signet" => Ok(Network::Signet),
            "regtest" => Ok(Network::Regtest),
            _ => Err(MaterialError::UnknownNetwork {
                given: truncate_for_message(s),
            }),
        }
    }
}

/// How to read an item.
#[derive(Debug)]
pub struct ParseOptions {
    /// The network the item must belong to.
    pub network: Network,
    /// BIP-39 passphrase ("25th word"), or the aezeed cipher-seed passphrase
    /// (LND's default is `aezeed`). `None` or empty means none. Refused for
    /// kinds that have no passphrase.
    pub passphrase: Option<SecretString>,
    /// Derivation path of the account key for seeds and xprvs (absolute, from
    /// the master: `m/48'/0'/0'/2'`; `h` and `'` both accepted). Default:
    /// `m/48'/0'/0'/2'` (BIP-48 P2WSH multisig account 0), coin type `1'` on
    /// test networks. For xpubs it must agree with the key origin if given;
    /// descriptors and age identities ignore it.
    pub path: Option<String>,
}

impl ParseOptions {
    /// No passphrase, default path.
    pub fn new(network: Network) -> Self {
        ParseOptions {
            network,
            passphrase: None,
            path: None,
        }
    }
}

/// Non-secret facts about an item. They are stored as OpenBao
/// `custom_metadata` (see [`PublicFacts::to_metadata`]) and compared on
/// read-back.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PublicFacts {
    /// The item's [`Kind`] name.
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
        })
    }

    /// Names and values of the fields where `self` and `other` differ (all
    /// public), for error messages.
    fn differences(&self, other: &PublicFacts) -> Vec<String> {
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

/// Everything a user can get wrong with key material.
///
/// No message ever contains secret text: mnemonic words are named by
/// position, keys and identities by kind. Public values (fingerprints, paths,
/// xpubs, recipients) may appear.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error(
        "unknown key kind {given:?}; use one of: bip39, aezeed, xprv, xpub, descriptor, age-identity"
    )]
    UnknownKind { given: String },

    #[error(
        "unknown network {given:?}; use one of: mainnet (or bitcoin), testnet, signet, regtest"
    )]
    UnknownNetwork { given: String },

    #[error("the {kind} input is empty; paste or point to the {kind} to escrow")]
    Empty { kind: Kind },

    #[error(
        "the {kind} input is longer than {MAX_INPUT_LEN} bytes; this is not a {kind} (wrong file?)"
    )]
    TooLong { kind: Kind },

    #[error(
        "a {kind} mnemonic has {expected} words, this one has {count}; check for missing or merged words"
    )]
    WordCount {
        kind: Kind,
        count: usize,
        expected: &'static str,
    },

    #[error(
        "{kind} mnemonic: word {position} is not in the BIP-39 English word list; check its \
         spelling (write the full word, not an abbreviation)"
    )]
    UnknownWord { kind: Kind, position: usize },

    #[error(
        "bip39 mnemonic: every word is in the list but the checksum does not match; a word is \
         wrong or two words are swapped, compare it with the written backup word by word"
    )]
    Bip39Checksum,

    #[error(
        "bip39 mnemonic: the BIP-39 checksum fails but the words form a valid LND aezeed; \
         escrow it with kind aezeed instead"
    )]
    LooksLikeAezeed,

    #[error(
        "aezeed: every word is in the list but the checksum (CRC-32C) does not match; a word \
         is wrong or two words are swapped, compare it with the written backup word by word"
    )]
    AezeedChecksum,

    #[error(
        "aezeed: the checksum fails but the words form a valid BIP-39 mnemonic; escrow it \
         with kind bip39 instead"
    )]
    LooksLikeBip39,

    #[error(
        "aezeed: cipher-seed version {version} is not supported (LND only uses version 0); \
         this is not an LND seed"
    )]
    AezeedVersion { version: u8 },

    #[error("a passphrase was given, but a {kind} has none; leave it out")]
    PassphraseNotApplicable { kind: Kind },

    #[error(
        "this bip39 item was escrowed with a passphrase; supply the passphrase to re-derive \
         and verify it"
    )]
    PassphraseRequired,

    #[error(
        "derivation path {path:?} ({what}) is not valid: {reason}; expected the form m/48'/0'/0'/2' (h or ' for hardened)"
    )]
    BadPath {
        what: &'static str,
        path: String,
        reason: String,
    },

    #[error("{kind}: {reason}")]
    BadExtendedKey { kind: Kind, reason: &'static str },

    #[error(
        "{kind}: unknown version bytes {version} (key prefix); expected {expected} or a SLIP-132 \
         variant"
    )]
    UnknownKeyVersion {
        kind: Kind,
        version: String,
        expected: &'static str,
    },

    #[error(
        "this is an extended PRIVATE key, but kind {kind} holds a public key only; escrow it \
         as kind xprv, or export the account xpub instead"
    )]
    PrivateKeyGiven { kind: Kind },

    #[error(
        "this is an extended public key, but kind xprv needs the private key; escrow it as kind xpub"
    )]
    PublicKeyGiven,

    #[error(
        "{kind} is a {key_network} key, but the network is {network}; use the key made for \
         {network}, or set the network the key belongs to"
    )]
    WrongNetwork {
        kind: Kind,
        key_network: &'static str,
        network: Network,
    },

    #[error(
        "{kind} has no key origin; write it as [fingerprint/derivation]key, e.g. \
         [d34db33f/48h/0h/0h/2h]xpub6…, with the master fingerprint and path your wallet shows \
         for this account{hint}"
    )]
    MissingOrigin { kind: Kind, hint: &'static str },

    #[error(
        "{kind}: key origin is malformed: {reason}; expected [fingerprint/derivation] such as \
         [d34db33f/48h/0h/0h/2h] directly before the key"
    )]
    BadOrigin { kind: Kind, reason: String },

    #[error(
        "{kind}: key origin {origin} does not fit the key: {reason}; check that origin and key belong together"
    )]
    OriginMismatch {
        kind: Kind,
        origin: String,
        reason: String,
    },

    #[error(
        "{kind}: unexpected text after the key ({what}); give the account key alone, \
         as [fingerprint/derivation]key"
    )]
    TrailingText { kind: Kind, what: &'static str },

    #[error(
        "derivation path {path} is not below this xprv's origin {origin}; an xprv can only \
         derive keys under its own path"
    )]
    PathNotBelowOrigin { path: String, origin: String },

    #[error(
        "the path option {path} disagrees with the xpub's key origin path {origin}; drop the option or fix the origin"
    )]
    PathDisagreesWithOrigin { path: String, origin: String },

    #[error(
        "descriptor has no checksum; append the #checksum your wallet exported (e.g. from \
         `bitcoin-cli getdescriptorinfo` or `listdescriptors`), escrowing without it could \
         hide a typo"
    )]
    DescriptorMissingChecksum,

    #[error(
        "descriptor checksum is malformed: expected 8 characters from the BIP-380 set after '#'"
    )]
    DescriptorMalformedChecksum,

    #[error(
        "descriptor checksum does not match the descriptor: the descriptor or its checksum was \
         altered or mistyped; copy it again from the wallet"
    )]
    DescriptorBadChecksum,

    #[error(
        "descriptor contains {count} private key(s); escrow the public descriptor \
         (`listdescriptors` without `true`), and escrow private keys separately as xprv or seed"
    )]
    DescriptorPrivateKey { count: usize },

    #[error("descriptor does not parse: {reason}")]
    DescriptorParse { reason: String },

    #[error("descriptor is not safe to use: {reason}")]
    DescriptorUnsafe { reason: String },

    #[error(
        "descriptor key {position} ({key}) has no origin; every key needs [fingerprint/path] \
         so it can be matched with its seed at recovery"
    )]
    DescriptorKeyWithoutOrigin { position: usize, key: String },

    #[error(
        "descriptor key {position} ({origin}) is a {key_network} key, but the network is \
         {network}"
    )]
    DescriptorWrongNetwork {
        position: usize,
        origin: String,
        key_network: &'static str,
        network: Network,
    },

    #[error("age identity: {reason}")]
    BadAgeIdentity { reason: String },

    #[error(
        "{kind} is a secret kind but the store returned no secret value; the item is \
         incomplete or was written by something else"
    )]
    MissingSecret { kind: Kind },

    #[error(
        "{kind} is a public kind but a secret value was given; public items are rebuilt from \
         their metadata"
    )]
    UnexpectedSecret { kind: Kind },

    #[error("stored item is of kind {stored}, not {expected}")]
    StoredKindMismatch { stored: String, expected: Kind },

    #[error("stored {kind} item lacks the metadata fact {fact}; it cannot be rebuilt")]
    StoredFactMissing { kind: Kind, fact: &'static str },

    #[error(
        "stored {kind} item disagrees with its own metadata ({details}); the secret or the \
         metadata was changed, or different options (network, path, passphrase) were used"
    )]
    StoredMismatch { kind: Kind, details: String },

    #[error("metadata key {key} {reason}")]
    BadMetadata { key: String, reason: String },

    #[error("{kind}: key derivation failed: {reason}")]
    Derivation { kind: Kind, reason: String },
}

/// An account key with its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AccountKey {
    fingerprint: Fingerprint,
    path: DerivationPath,
    xpub: Xpub,
}

/// A key of a descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DescKey {
    fingerprint: Fingerprint,
    path: DerivationPath,
    key: DescKeyValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DescKeyValue {
    Xpub(Xpub),
    Single(SinglePubKey),
}

impl DescKey {
    fn origin(&self) -> String {
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

/// Validated key material.
///
/// The secret part, if any, is kept only as canonical text in a zeroizing
/// [`SecretString`]; everything else is public. There is no `Clone` and the
/// `Debug` output shows the kind and public facts only.
pub struct Material {
    kind: Kind,
    network: Option<Network>,
    secret: Option<SecretString>,
    passphrase: Option<SecretString>,
    public: PublicFacts,
    account: Option<AccountKey>,
    descriptor_keys: Vec<DescKey>,
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material")
            .field("kind", &self.kind)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Material {
    /// Validate `input` as an item of `kind` and compute its public facts.
    ///
    /// Whitespace around the input is ignored; mnemonics are normalised to
    /// lowercase single-spaced words.
    pub fn parse(
        kind: Kind,
        input: &SecretString,
        opts: &ParseOptions,
    ) -> Result<Material, MaterialError> {
        let text = input.expose().trim();
        if text.is_empty() {
            return Err(MaterialError::Empty { kind });
        }
        if text.len() > MAX_INPUT_LEN {
            return Err(MaterialError::TooLong { kind });
        }
        let passphrase = opts.passphrase.as_ref().filter(|p| !p.expose().is_empty());
        if passphrase.is_some() && !matches!(kind, Kind::Bip39 | Kind::Aezeed) {
            return Err(MaterialError::PassphraseNotApplicable { kind });
        }
        match kind {
            Kind::Bip39 => parse_bip39(text, passphrase, opts),
            Kind::Aezeed => parse_aezeed(text, passphrase, opts),
            Kind::Xprv => parse_xprv(text, opts),
            Kind::Xpub => parse_xpub(text, opts),
            Kind::Descriptor => parse_descriptor(text, opts),
            Kind::AgeIdentity => parse_age_identity(text),
        }
    }

    /// What this item is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The canonical secret text to store: the mnemonic as lowercase
    /// single-spaced words, the xprv in base58 (with its key origin prefix
    /// `[fp/path]` when one was given, since the origin is needed to use it),
    /// the `AGE-SECRET-KEY-1…` line. `None` for public kinds.
    pub fn secret(&self) -> Option<&SecretString> {
        self.secret.as_ref()
    }

    /// The passphrase given for a bip39 or aezeed seed, if any (not empty).
    /// It is a secret of its own: the store keeps it as a separate secret
    /// field, since a bip39 seed cannot be verified without it.
    pub fn passphrase(&self) -> Option<&SecretString> {
        self.passphrase.as_ref()
    }

    /// The non-secret facts.
    pub fn public(&self) -> &PublicFacts {
        &self.public
    }

    /// The network this item was validated for (none for age identities).
    pub fn network(&self) -> Option<Network> {
        self.network
    }

    /// Rebuild an item from what the store returned: the canonical secret
    /// (for secret kinds) and the stored public facts. The item is validated
    /// again and every fact recomputed; any disagreement is refused.
    ///
    /// The derivation path comes from `opts.path` or else the stored
    /// `derivation`; public kinds are rebuilt from the facts themselves (the
    /// xpub with its origin, the descriptor). A bip39 item stored with a
    /// passphrase needs `opts.passphrase`. For an aezeed the passphrase
    /// cannot be verified; if none is given the stored `has_passphrase` is
    /// kept.
    pub fn from_stored(
        kind: Kind,
        secret: Option<&SecretString>,
        public: &PublicFacts,
        opts: &ParseOptions,
    ) -> Result<Material, MaterialError> {
        if public.kind != kind.as_str() {
            return Err(MaterialError::StoredKindMismatch {
                stored: truncate_for_message(&public.kind),
                expected: kind,
            });
        }
        let missing = |fact| MaterialError::StoredFactMissing { kind, fact };
        let passphrase_given = opts
            .passphrase
            .as_ref()
            .is_some_and(|p| !p.expose().is_empty());
        let rebuilt_opts = ParseOptions {
            network: opts.network,
            passphrase: opts
                .passphrase
                .as_ref()
                .map(|p| SecretString::new(p.expose().to_owned())),
            path: opts.path.clone().or_else(|| public.derivation.clone()),
        };
        let mut material = if kind.is_secret() {
            let secret = secret.ok_or(MaterialError::MissingSecret { kind })?;
            if kind == Kind::Bip39 && public.has_passphrase == Some(true) && !passphrase_given {
                return Err(MaterialError::PassphraseRequired);
            }
            Material::parse(kind, secret, &rebuilt_opts)?
        } else {
            if secret.is_some() {
                return Err(MaterialError::UnexpectedSecret { kind });
            }
            let input = match kind {
                Kind::Xpub => {
                    let fp = public
                        .master_fingerprint
                        .as_deref()
                        .ok_or_else(|| missing("master_fingerprint"))?;
                    let path = public
                        .derivation
                        .as_deref()
                        .ok_or_else(|| missing("derivation"))?;
                    let xpub = public.xpub.as_deref().ok_or_else(|| missing("xpub"))?;
                    let path = path.strip_prefix('m').unwrap_or(path);
                    format!("[{fp}{path}]{xpub}")
                }
                _ => public
                    .descriptor
                    .clone()
                    .ok_or_else(|| missing("descriptor"))?,
            };
            Material::parse(kind, &SecretString::new(input), &rebuilt_opts)?
        };
        if kind == Kind::Aezeed && !passphrase_given {
            material.public.has_passphrase = public.has_passphrase;
        }
        let differences = public.differences(&material.public);
        if !differences.is_empty() {
            return Err(MaterialError::StoredMismatch {
                kind,
                details: differences.join("; "),
            });
        }
        Ok(material)
    }

    /// For seeds and xprvs: the xpub at `path` below master `fingerprint`,
    /// if this item can derive it (same master, and for an xprv below the
    /// master, a path under its origin). `None` when it cannot.
    fn derive_xpub_at(
        &self,
        fingerprint: Fingerprint,
        path: &DerivationPath,
    ) -> Option<Result<Xpub, MaterialError>> {
        let account = self.account.as_ref()?;
        if account.fingerprint != fingerprint {
            return None;
        }
        let secret = self.secret.as_ref()?;
        let secp = Secp256k1::new();
        let root = match self.kind {
            Kind::Bip39 => {
                let network = self.network?;
                bip39_master(secret.expose(), self.passphrase.as_ref(), network)
                    .map(|x| (x, DerivationPath::master()))
            }
            Kind::Xprv => split_origin(secret.expose(), Kind::Xprv).and_then(|(origin, key)| {
                let x = decode_xprv(key)?;
                Ok((x, origin.map(|(_, p)| p).unwrap_or_default()))
            }),
            _ => return None,
        };
        let (mut root, root_path) = match root {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let out = if path.as_ref().starts_with(root_path.as_ref()) {
            let rest = &path.as_ref()[root_path.len()..];
            Some(derive_xpub(&secp, &root, rest, self.kind))
        } else {
            None
        };
        root.private_key.non_secure_erase();
        out
    }
}

// ---------------------------------------------------------------------------
// bip39

fn parse_bip39(
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
fn bip39_master(
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

fn account_path(opts: &ParseOptions) -> Result<DerivationPath, MaterialError> {
    match &opts.path {
        Some(p) => parse_path(p, "path option"),
        None => Ok(default_path(opts.network)),
    }
}

/// `m/48'/coin'/0'/2'`: BIP-48 P2WSH multisig, account 0.
fn default_path(network: Network) -> DerivationPath {
    DerivationPath::from(vec![
        ChildNumber::Hardened { index: 48 },
        ChildNumber::Hardened {
            index: network.coin_type(),
        },
        ChildNumber::Hardened { index: 0 },
        ChildNumber::Hardened { index: 2 },
    ])
}

fn parse_path(p: &str, what: &'static str) -> Result<DerivationPath, MaterialError> {
    let p = p.trim();
    let with_m = p == "m" || p.starts_with("m/");
    let body = if with_m { p } else { &format!("m/{p}") as &str };
    DerivationPath::from_str(body).map_err(|e| MaterialError::BadPath {
        what,
        path: truncate_for_message(p),
        reason: e.to_string(),
    })
}

fn derive_xpub(
    secp: &Secp256k1<secp256k1::All>,
    root: &Xpriv,
    steps: &[ChildNumber],
    kind: Kind,
) -> Result<Xpub, MaterialError> {
    let mut child = root
        .derive_priv(secp, &steps)
        .map_err(|e| MaterialError::Derivation {
            kind,
            reason: e.to_string(),
        })?;
    let xpub = Xpub::from_priv(secp, &child);
    child.private_key.non_secure_erase();
    Ok(xpub)
}

// ---------------------------------------------------------------------------
// aezeed

/// Layout of LND's enciphered cipher seed (lnd `aezeed/cipherseed.go`):
/// `version(1) || aez ciphertext(23) || salt(5) || checksum(4)`; the
/// checksum is CRC-32C (Castagnoli), big-endian, over the first 29 bytes.
const AEZEED_LEN: usize = 33;
const AEZEED_CHECKSUM_OFFSET: usize = AEZEED_LEN - 4;

/// The 33 bytes that 24 word indices (11 bits each) encode.
fn aezeed_bytes(indices: &[u16]) -> Zeroizing<[u8; AEZEED_LEN]> {
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

fn aezeed_checksum_ok(indices: &[u16]) -> bool {
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
fn crc32c(data: &[u8]) -> u32 {
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

fn parse_aezeed(
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

// ---------------------------------------------------------------------------
// xprv / xpub

/// Version bytes of extended keys: standard and SLIP-132.
struct KeyVersion {
    bytes: [u8; 4],
    private: bool,
    network: NetworkKind,
}

const fn kv(bytes: u32, private: bool, main: bool) -> KeyVersion {
    KeyVersion {
        bytes: bytes.to_be_bytes(),
        private,
        network: if main {
            NetworkKind::Main
        } else {
            NetworkKind::Test
        },
    }
}

/// SLIP-0132 registered version bytes (BIP-32 standard first).
const KEY_VERSIONS: [KeyVersion; 20] = [
    kv(0x0488_B21E, false, true),  // xpub
    kv(0x049D_7CB2, false, true),  // ypub
    kv(0x0295_B43F, false, true),  // Ypub
    kv(0x04B2_4746, false, true),  // zpub
    kv(0x02AA_7ED3, false, true),  // Zpub
    kv(0x0435_87CF, false, false), // tpub
    kv(0x044A_5262, false, false), // upub
    kv(0x0242_89EF, false, false), // Upub
    kv(0x045F_1CF6, false, false), // vpub
    kv(0x0257_5483, false, false), // Vpub
    kv(0x0488_ADE4, true, true),   // xprv
    kv(0x049D_7878, true, true),   // yprv
    kv(0x0295_B005, true, true),   // Yprv
    kv(0x04B2_430C, true, true),   // zprv
    kv(0x02AA_7A99, true, true),   // Zprv
    kv(0x0435_8394, true, false),  // tprv
    kv(0x044A_4E28, true, false),  // uprv
    kv(0x0242_85B5, true, false),  // Uprv
    kv(0x045F_18BC, true, false),  // vprv
    kv(0x0257_5048, true, false),  // Vprv
];

fn standard_version(private: bool, network: NetworkKind) -> [u8; 4] {
    match (private, network) {
        (false, NetworkKind::Main) => 0x0488_B21Eu32,
        (false, NetworkKind::Test) => 0x0435_87CF,
        (true, NetworkKind::Main) => 0x0488_ADE4,
        (true, NetworkKind::Test) => 0x0435_8394,
    }
    .to_be_bytes()
}

fn network_kind_name(n: NetworkKind) -> &'static str {
    match n {
        NetworkKind::Main => "mainnet (xpub/xprv)",
        NetworkKind::Test => "test-network (tpub/tprv)",
    }
}

/// Decode base58check into the 78-byte serialisation with standard version
/// bytes (SLIP-132 rewritten). `want_private` says which kind the caller
/// expects; the other is refused with its own error.
fn decode_xkey(text: &str, kind: Kind) -> Result<Zeroizing<Vec<u8>>, MaterialError> {
    let want_private = kind == Kind::Xprv;
    let mut data =
        Zeroizing::new(
            base58::decode_check(text).map_err(|_| MaterialError::BadExtendedKey {
                kind,
                reason: "not a valid base58check extended key (mistyped, truncated, or not a key)",
            })?,
        );
    if data.len() != 78 {
        return Err(MaterialError::BadExtendedKey {
            kind,
            reason: "decodes to the wrong length for an extended key (78 bytes)",
        });
    }
    let version = KEY_VERSIONS
        .iter()
        .find(|v| data.starts_with(&v.bytes))
        .ok_or_else(|| MaterialError::UnknownKeyVersion {
            kind,
            version: hex::encode(&data[..4]),
            expected: if want_private {
                "xprv/tprv"
            } else {
                "xpub/tpub"
            },
        })?;
    match (version.private, want_private) {
        (true, false) => return Err(MaterialError::PrivateKeyGiven { kind }),
        (false, true) => return Err(MaterialError::PublicKeyGiven),
        _ => {}
    }
    data[..4].copy_from_slice(&standard_version(version.private, version.network));
    Ok(data)
}

fn decode_xprv(text: &str) -> Result<Xpriv, MaterialError> {
    let data = decode_xkey(text, Kind::Xprv)?;
    Xpriv::decode(&data).map_err(|_| MaterialError::BadExtendedKey {
        kind: Kind::Xprv,
        reason: "the private key inside is out of range (not a valid key)",
    })
}

fn decode_xpub(text: &str) -> Result<Xpub, MaterialError> {
    let data = decode_xkey(text, Kind::Xpub)?;
    Xpub::decode(&data).map_err(|_| MaterialError::BadExtendedKey {
        kind: Kind::Xpub,
        reason: "the public key inside is not a valid curve point",
    })
}

type Origin = (Fingerprint, DerivationPath);

/// Split `[fp/path]key` into its origin and the key text.
fn split_origin(text: &str, kind: Kind) -> Result<(Option<Origin>, &str), MaterialError> {
    let Some(rest) = text.strip_prefix('[') else {
        return Ok((None, text));
    };
    let bad = |reason: &str| MaterialError::BadOrigin {
        kind,
        reason: reason.to_owned(),
    };
    let (inner, key) = rest
        .split_once(']')
        .ok_or_else(|| bad("there is no closing ']'"))?;
    let (fp, path) = match inner.split_once('/') {
        Some((fp, path)) => (fp, path),
        None => (inner, ""),
    };
    if fp.len() != 8 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("the fingerprint must be 8 hex digits"));
    }
    let fingerprint =
        Fingerprint::from_str(fp).map_err(|_| bad("the fingerprint must be 8 hex digits"))?;
    let path = if path.is_empty() {
        DerivationPath::master()
    } else {
        DerivationPath::from_str(&format!("m/{path}")).map_err(|e| MaterialError::BadOrigin {
            kind,
            reason: format!("the derivation path is not valid ({e})"),
        })?
    };
    Ok((Some((fingerprint, path)), key.trim()))
}

/// Refuse anything after the base58 key (`/0/*`, spaces, a second key).
fn check_no_trailing(key: &str, kind: Kind) -> Result<(), MaterialError> {
    if key.contains('/') {
        return Err(MaterialError::TrailingText {
            kind,
            what: "a derivation suffix such as /0/* belongs in a descriptor",
        });
    }
    if key.chars().any(char::is_whitespace) {
        return Err(MaterialError::TrailingText {
            kind,
            what: "more than one word",
        });
    }
    Ok(())
}

/// The origin must describe this key: its length is the key's depth, its
/// last step the key's child number, and at depth 1 the fingerprint is the
/// key's parent (at depth 0, the key's own).
fn check_origin_fits(
    kind: Kind,
    origin: &Origin,
    depth: u8,
    child: ChildNumber,
    parent: Fingerprint,
    own: Fingerprint,
) -> Result<(), MaterialError> {
    let (fp, path) = origin;
    let mismatch = |reason: String| MaterialError::OriginMismatch {
        kind,
        origin: fmt_origin(*fp, path),
        reason,
    };
    if path.len() != usize::from(depth) {
        return Err(mismatch(format!(
            "the origin path has {} steps but the key is at depth {depth}",
            path.len()
        )));
    }
    match path.as_ref().last() {
        None if own != *fp => Err(mismatch(format!(
            "a master key's fingerprint is {own}, not {fp}"
        ))),
        Some(last) if *last != child => Err(mismatch(format!(
            "the key is child {child} of its parent, the origin path ends in {last}"
        ))),
        Some(_) if depth == 1 && parent != *fp => Err(mismatch(format!(
            "the key's parent fingerprint is {parent}, not {fp}"
        ))),
        _ => Ok(()),
    }
}

fn check_network(kind: Kind, key: NetworkKind, network: Network) -> Result<(), MaterialError> {
    if key == network.kind() {
        Ok(())
    } else {
        Err(MaterialError::WrongNetwork {
            kind,
            key_network: network_kind_name(key),
            network,
        })
    }
}

/// Rules for an xprv and the account xpub recorded for it:
/// - no origin: the key must be a master key (depth 0); its fingerprint is
///   the master fingerprint and the account key is derived at the path
///   option (default `m/48'/coin'/0'/2'`);
/// - origin at depth 0 (`[fp]xprv…`): the same, and `fp` must match;
/// - origin below the master: without a path option the key *is* the account
///   key and the recorded xpub is its neuter; with a path option, the path
///   must lie under the origin and the remaining steps are derived.
fn parse_xprv(text: &str, opts: &ParseOptions) -> Result<Material, MaterialError> {
    let kind = Kind::Xprv;
    let (origin, key_text) = split_origin(text, kind)?;
    check_no_trailing(key_text, kind)?;
    let mut key = decode_xprv(key_text)?;
    let secp = Secp256k1::new();
    let result = (|| {
        check_network(kind, key.network, opts.network)?;
        let own = key.fingerprint(&secp);
        if let Some(o) = &origin {
            check_origin_fits(
                kind,
                o,
                key.depth,
                key.child_number,
                key.parent_fingerprint,
                own,
            )?;
        } else if key.depth != 0 {
            return Err(MaterialError::MissingOrigin {
                kind,
                hint: "; an xprv below the master (depth > 0) needs it to be matched with its wallet",
            });
        }
        let (fingerprint, root_path) = origin
            .clone()
            .unwrap_or_else(|| (own, DerivationPath::master()));
        let path = match (&opts.path, root_path.is_empty()) {
            (None, false) => root_path.clone(),
            _ => account_path(opts)?,
        };
        if !path.as_ref().starts_with(root_path.as_ref()) {
            return Err(MaterialError::PathNotBelowOrigin {
                path: fmt_path(&path),
                origin: fmt_origin(fingerprint, &root_path),
            });
        }
        let xpub = derive_xpub(&secp, &key, &path.as_ref()[root_path.len()..], kind)?;
        let mut canonical = Zeroizing::new(String::new());
        if let Some((fp, p)) = &origin {
            canonical.push_str(&fmt_origin(*fp, p));
        }
        let mut encoded = Zeroizing::new(key.encode());
        canonical.push_str(&Zeroizing::new(base58::encode_check(&encoded[..])));
        encoded.zeroize();
        Ok(Material {
            kind,
            network: Some(opts.network),
            public: PublicFacts {
                kind: kind.to_string(),
                network: Some(opts.network.to_string()),
                master_fingerprint: Some(fingerprint.to_string()),
                derivation: Some(fmt_path(&path)),
                xpub: Some(xpub.to_string()),
                ..PublicFacts::default()
            },
            secret: Some(SecretString::new(canonical.to_string())),
            passphrase: None,
            account: Some(AccountKey {
                fingerprint,
                path,
                xpub,
            }),
            descriptor_keys: Vec::new(),
        })
    })();
    key.private_key.non_secure_erase();
    result
}

fn parse_xpub(text: &str, opts: &ParseOptions) -> Result<Material, MaterialError> {
    let kind = Kind::Xpub;
    let (origin, key_text) = split_origin(text, kind)?;
    check_no_trailing(key_text, kind)?;
    let xpub = decode_xpub(key_text)?;
    let Some((fingerprint, path)) = origin else {
        return Err(MaterialError::MissingOrigin { kind, hint: "" });
    };
    check_network(kind, xpub.network, opts.network)?;
    check_origin_fits(
        kind,
        &(fingerprint, path.clone()),
        xpub.depth,
        xpub.child_number,
        xpub.parent_fingerprint,
        xpub.fingerprint(),
    )?;
    if let Some(p) = &opts.path {
        let given = parse_path(p, "path option")?;
        if given != path {
            return Err(MaterialError::PathDisagreesWithOrigin {
                path: fmt_path(&given),
                origin: fmt_path(&path),
            });
        }
    }
    Ok(Material {
        kind,
        network: Some(opts.network),
        public: PublicFacts {
            kind: kind.to_string(),
            network: Some(opts.network.to_string()),
            master_fingerprint: Some(fingerprint.to_string()),
            derivation: Some(fmt_path(&path)),
            xpub: Some(xpub.to_string()),
            ..PublicFacts::default()
        },
        secret: None,
        passphrase: None,
        account: Some(AccountKey {
            fingerprint,
            path,
            xpub,
        }),
        descriptor_keys: Vec::new(),
    })
}

// ---------------------------------------------------------------------------
// descriptor

/// Private-key material that must never be escrowed inside a descriptor:
/// an extended private key (any SLIP-132 prefix) or a WIF key. Checked on
/// the raw text before miniscript sees it, so no parser error can echo it.
fn count_private_tokens(body: &str) -> usize {
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

fn parse_descriptor(text: &str, opts: &ParseOptions) -> Result<Material, MaterialError> {
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

// ---------------------------------------------------------------------------
// age identity

fn parse_age_identity(text: &str) -> Result<Material, MaterialError> {
    let kind = Kind::AgeIdentity;
    let bad = |reason: String| MaterialError::BadAgeIdentity { reason };
    let mut found: Option<(usize, age::x25519::Identity)> = None;
    let mut declared_public: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let n = n + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            // age-keygen writes "# public key: age1…"; check it if present.
            if let Some(p) = comment.trim().strip_prefix("public key:") {
                declared_public = Some(p.trim().to_owned());
            }
            continue;
        }
        if line.starts_with("-----BEGIN") {
            return Err(bad(format!(
                "line {n} starts a PEM/SSH private key; escrow only age X25519 identities \
                 (AGE-SECRET-KEY-1…, from age-keygen)"
            )));
        }
        if line.starts_with("age1") {
            return Err(bad(format!(
                "line {n} is a public recipient (age1…), not an identity; escrow the file \
                 age-keygen wrote, which holds the secret key"
            )));
        }
        let identity = line.parse::<age::x25519::Identity>().map_err(|_| {
            bad(format!(
                "line {n} is not a valid age identity (expected AGE-SECRET-KEY-1…, as written by \
                 age-keygen; mistyped or truncated?)"
            ))
        })?;
        if let Some((first, _)) = found {
            return Err(bad(format!(
                "line {n} holds a second identity (the first is on line {first}); escrow one \
                 identity per item"
            )));
        }
        found = Some((n, identity));
    }
    let Some((_, identity)) = found else {
        return Err(bad(
            "contains no AGE-SECRET-KEY-1… line; expected an age identity or the file \
             age-keygen wrote"
                .to_owned(),
        ));
    };
    let recipient = identity.to_public().to_string();
    if let Some(declared) = declared_public
        && declared != recipient
    {
        return Err(bad(format!(
            "the file's \"# public key:\" comment says {} but the secret key belongs to \
             {recipient}; the file was edited or mixed up",
            truncate_for_message(&declared)
        )));
    }
    let canonical = {
        use age::secrecy::ExposeSecret;
        SecretString::new(identity.to_string().expose_secret().to_owned())
    };
    Ok(Material {
        kind,
        network: None,
        public: PublicFacts {
            kind: kind.to_string(),
            recipient: Some(recipient),
            ..PublicFacts::default()
        },
        secret: Some(canonical),
        passphrase: None,
        account: None,
        descriptor_keys: Vec::new(),
    })
}

// ---------------------------------------------------------------------------
// cross-checks

/// One cross-check between escrowed items. `name` says what was checked,
/// `detail` what was found (names, fingerprints, paths, xpubs; never
/// secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

fn result(name: String, ok: bool, detail: String) -> CheckResult {
    CheckResult { name, ok, detail }
}

/// Check escrowed items against each other and the configured seal
/// recipients. Used by `keys put` (with the new item among `items`) and by
/// `keys verify`.
///
/// Checks, each reported as one or more [`CheckResult`]s:
/// 1. each seed/xprv derives every xpub item whose origin it covers (same
///    master fingerprint, path under its own); if xpub items exist but none
///    has its fingerprint, that is reported as a failure too;
/// 2. each xpub item is the key at its origin in every descriptor that has
///    a key at that origin, and at least one descriptor has it (when
///    descriptors are escrowed);
/// 3. all items with a network agree on it;
/// 4. each age identity's recipient is among `config_recipients`;
/// 5. each seed/xprv derives every descriptor key with its master
///    fingerprint, and is a key of at least one descriptor (when
///    descriptors are escrowed).
///
/// Nothing to compare gives no result (a lone seed yields an empty list).
pub fn cross_check(items: &[(&str, &Material)], config_recipients: &[String]) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let signers: Vec<_> = items
        .iter()
        .filter(|(_, m)| matches!(m.kind, Kind::Bip39 | Kind::Xprv) && m.account.is_some())
        .collect();
    let xpubs: Vec<(&str, &AccountKey)> = items
        .iter()
        .filter(|(_, m)| m.kind == Kind::Xpub)
        .filter_map(|(n, m)| m.account.as_ref().map(|a| (*n, a)))
        .collect();
    let descriptors: Vec<(&str, &Material)> = items
        .iter()
        .filter(|(_, m)| m.kind == Kind::Descriptor)
        .map(|(n, m)| (*n, *m))
        .collect();

    // 1. seed/xprv -> xpub items
    for (sname, s) in &signers {
        let Some(acct) = &s.account else { continue };
        let what = signer_word(s.kind);
        let mut claimed = false;
        for (xname, x) in &xpubs {
            let Some(derived) = s.derive_xpub_at(x.fingerprint, &x.path) else {
                continue;
            };
            claimed = true;
            let name = format!("{what} '{sname}' derives xpub '{xname}'");
            let origin = fmt_origin(x.fingerprint, &x.path);
            out.push(match derived {
                Ok(d) if d == x.xpub => result(name, true, format!("both are {origin}{d}")),
                Ok(d) => result(
                    name,
                    false,
                    format!(
                        "{what} '{sname}'{pp} derives {origin}{d}, but xpub item '{xname}' holds \
                         {origin}{}; the {what}{pp_or} or the xpub is not the one escrowed with \
                         the other",
                        x.xpub,
                        pp = passphrase_note(s),
                        pp_or = if s.kind == Kind::Bip39 {
                            ", its passphrase"
                        } else {
                            ""
                        },
                    ),
                ),
                Err(e) => result(name, false, format!("cannot derive: {e}")),
            });
        }
        if !claimed && !xpubs.is_empty() {
            let others: Vec<String> = xpubs
                .iter()
                .map(|(n, x)| format!("'{n}' {}", fmt_origin(x.fingerprint, &x.path)))
                .collect();
            out.push(result(
                format!("{what} '{sname}' has an escrowed xpub"),
                false,
                format!(
                    "no xpub item claims {what} '{sname}' (master fingerprint {}, account key \
                     {}{}){}; escrowed xpubs: {}",
                    acct.fingerprint,
                    fmt_origin(acct.fingerprint, &acct.path),
                    acct.xpub,
                    passphrase_note(s),
                    others.join(", ")
                ),
            ));
        }
    }

    // 2. xpub items -> descriptors
    for (xname, x) in &xpubs {
        if descriptors.is_empty() {
            break;
        }
        let origin = fmt_origin(x.fingerprint, &x.path);
        let mut found = false;
        for (dname, d) in &descriptors {
            for k in d
                .descriptor_keys
                .iter()
                .filter(|k| k.fingerprint == x.fingerprint && k.path == x.path)
            {
                found = true;
                let name = format!("xpub '{xname}' is a key of descriptor '{dname}'");
                out.push(match &k.key {
                    DescKeyValue::Xpub(dx) if *dx == x.xpub => {
                        result(name, true, format!("{origin}{dx}"))
                    }
                    _ => result(
                        name,
                        false,
                        format!(
                            "descriptor '{dname}' has {k} at origin {origin}, but xpub item \
                             '{xname}' holds {}; one of them is from another wallet",
                            x.xpub
                        ),
                    ),
                });
            }
        }
        if !found {
            let lacking: Vec<String> = descriptors
                .iter()
                .map(|(dname, d)| {
                    let origins: Vec<String> =
                        d.descriptor_keys.iter().map(DescKey::origin).collect();
                    format!("'{dname}' (keys {})", origins.join(", "))
                })
                .collect();
            out.push(result(
                format!("xpub '{xname}' is a key of an escrowed descriptor"),
                false,
                format!(
                    "xpub '{xname}' {origin}{} is not a key of descriptor {}",
                    x.xpub,
                    lacking.join(", descriptor ")
                ),
            ));
        }
    }

    // 3. networks
    let networks: Vec<(&str, Network)> = items
        .iter()
        .filter_map(|(n, m)| m.network.map(|net| (*n, net)))
        .collect();
    if networks.len() >= 2 {
        let distinct: BTreeSet<&str> = networks.iter().map(|(_, n)| n.as_str()).collect();
        let listing: Vec<String> = networks
            .iter()
            .map(|(name, net)| format!("'{name}': {net}"))
            .collect();
        out.push(if distinct.len() == 1 {
            result(
                "networks agree".to_owned(),
                true,
                format!("all {} items are {}", networks.len(), networks[0].1),
            )
        } else {
            result(
                "networks agree".to_owned(),
                false,
                format!(
                    "items are on different networks: {}; every item must be escrowed for the \
                     same network",
                    listing.join(", ")
                ),
            )
        });
    }

    // 4. age identities -> configured recipients
    for (name, m) in items.iter().filter(|(_, m)| m.kind == Kind::AgeIdentity) {
        let Some(recipient) = &m.public.recipient else {
            continue;
        };
        let check = format!("age identity '{name}' opens the configured recipients");
        out.push(if config_recipients.iter().any(|r| r.trim() == recipient) {
            result(
                check,
                true,
                format!("{recipient} is a configured recipient"),
            )
        } else if config_recipients.is_empty() {
            result(
                check,
                false,
                format!(
                    "identity '{name}' belongs to {recipient}, but no recipients are configured \
                     (seal.recipients)"
                ),
            )
        } else {
            result(
                check,
                false,
                format!(
                    "identity '{name}' belongs to {recipient}, which is not among the {} \
                     configured recipients ({}); backups sealed with this config cannot be \
                     opened with it",
                    config_recipients.len(),
                    config_recipients.join(", ")
                ),
            )
        });
    }

    // 5. seed/xprv -> descriptor keys with its fingerprint
    for (sname, s) in &signers {
        if descriptors.is_empty() {
            break;
        }
        let Some(acct) = &s.account else { continue };
        let what = signer_word(s.kind);
        let mut member = false;
        for (dname, d) in &descriptors {
            for k in &d.descriptor_keys {
                let Some(derived) = s.derive_xpub_at(k.fingerprint, &k.path) else {
                    continue;
                };
                member = true;
                let name = format!("{what} '{sname}' is a cosigner of descriptor '{dname}'");
                let matches = |d: &Xpub| match &k.key {
                    DescKeyValue::Xpub(x) => x == d,
                    DescKeyValue::Single(SinglePubKey::FullKey(p)) => p.inner == d.public_key,
                    DescKeyValue::Single(SinglePubKey::XOnly(p)) => {
                        *p == d.public_key.x_only_public_key().0
                    }
                };
                out.push(match derived {
                    Ok(dx) if matches(&dx) => result(name, true, format!("derives {k}")),
                    Ok(dx) => result(
                        name,
                        false,
                        format!(
                            "descriptor '{dname}' has {k}, but {what} '{sname}'{} derives \
                             {}{dx} there; the {what} is not the one this descriptor was made \
                             with",
                            passphrase_note(s),
                            k.origin()
                        ),
                    ),
                    Err(e) => result(name, false, format!("cannot derive: {e}")),
                });
            }
        }
        if !member {
            let fps: Vec<String> = descriptors
                .iter()
                .map(|(dname, d)| {
                    let fps: BTreeSet<String> = d
                        .descriptor_keys
                        .iter()
                        .map(|k| k.fingerprint.to_string())
                        .collect();
                    format!(
                        "'{dname}' has fingerprints {}",
                        fps.into_iter().collect::<Vec<_>>().join(", ")
                    )
                })
                .collect();
            out.push(result(
                format!("{what} '{sname}' is a cosigner of an escrowed descriptor"),
                false,
                format!(
                    "master fingerprint {} of {what} '{sname}'{} is in no escrowed descriptor \
                     ({})",
                    acct.fingerprint,
                    passphrase_note(s),
                    fps.join("; ")
                ),
            ));
        }
    }
    out
}

fn signer_word(kind: Kind) -> &'static str {
    if kind == Kind::Xprv { "xprv" } else { "seed" }
}

fn passphrase_note(m: &Material) -> &'static str {
    match m.public.has_passphrase {
        Some(true) => " (with its passphrase)",
        Some(false) => " (without passphrase)",
        None => "",
    }
}

// ---------------------------------------------------------------------------
// helpers

/// `m/48'/0'/0'/2'`, or `m` for the master.
fn fmt_path(p: &DerivationPath) -> String {
    if p.is_empty() {
        "m".to_owned()
    } else {
        format!("m/{p}")
    }
}

/// `[d34db33f/48'/0'/0'/2']`, or `[d34db33f]` for the master.
fn fmt_origin(fp: Fingerprint, p: &DerivationPath) -> String {
    if p.is_empty() {
        format!("[{fp}]")
    } else {
        format!("[{fp}/{p}]")
    }
}

/// User-given names (kinds, networks) shown in errors: short and printable.
fn truncate_for_message(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// lnd `aezeed/cipherseed_test.go`, `version0TestVectors[0]`: entropy
    /// 81b637d86359e6960de795e41e0b4cfd, salt "salt1", empty password
    /// (default "aezeed"), birthday 0.
    const LND_VECTOR: &str = "ability liquid travel stem barely drastic pact cupboard apple \
        thrive morning oak feature tissue couch old math inform success suggest drink motion \
        know royal";

    fn indices(m: &str) -> Vec<u16> {
        m.split_whitespace()
            .map(|w| bip39::Language::English.find_word(w).unwrap())
            .collect()
    }

    #[test]
    fn crc32c_check_value() {
        // The standard CRC-32C check value (RFC 3720 / iSCSI).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn lnd_aezeed_vector_decodes_to_its_layout() {
        let bytes = aezeed_bytes(&indices(LND_VECTOR));
        assert_eq!(bytes[0], 0, "external version");
        assert_eq!(&bytes[24..29], b"salt1", "salt from lnd's test vector");
        assert!(aezeed_checksum_ok(&indices(LND_VECTOR)));
        // The second vector (password "!very_safe_55345_password*") shares
        // the salt.
        let second = "able tree stool crush transfer cloud cross three profit outside hen \
            citizen plate ride require leg siren drum success suggest drink require fiscal upgrade";
        let bytes = aezeed_bytes(&indices(second));
        assert_eq!(&bytes[24..29], b"salt1");
        assert!(aezeed_checksum_ok(&indices(second)));
    }

    #[test]
    fn slip132_table_round_trips_standard_prefixes() {
        for v in &KEY_VERSIONS {
            let std = standard_version(v.private, v.network);
            assert!(KEY_VERSIONS.iter().any(|w| w.bytes == std));
        }
    }

    #[test]
    fn metadata_splits_long_descriptor_and_reads_it_back() {
        let facts = PublicFacts {
            kind: "descriptor".into(),
            network: Some("mainnet".into()),
            descriptor: Some("x".repeat(1200)),
            descriptor_keys: vec!["[00000000/1']a".into(), "[00000001/1']b".into()],
            ..PublicFacts::default()
        };
        let m = facts.to_metadata();
        assert!(m.values().all(|v| v.len() <= METADATA_VALUE_LIMIT));
        assert!(m.contains_key("descriptor.2") && !m.contains_key("descriptor"));
        let mut with_extra = m.clone();
        with_extra.insert("created".into(), "2026-01-01".into());
        assert_eq!(PublicFacts::from_metadata(&with_extra).unwrap(), facts);
        let mut gap = m;
        gap.remove("descriptor.1");
        assert!(matches!(
            PublicFacts::from_metadata(&gap),
            Err(MaterialError::BadMetadata { .. })
        ));
    }

    #[test]
    fn private_tokens_are_found_before_parsing() {
        let xprv = "xprv9s21ZrQH143K3h3fDYiay8mocZ3afhfULfb5GX8kCBdno77K4HiA15Tg23wpbeF1pLfs1c5SPmYHrEpTuuRhxMwvKDwqdKiGJS9XFKzUsAF";
        assert_eq!(count_private_tokens(&format!("wpkh({xprv}/0/*)")), 1);
        let xpub = "xpub661MyMwAqRbcGB88KaFbLGiYAat55APKhtWg4uYMkXAmfuSTbq2QYsn9sKJCj1YqZPafsboef4h4YbXXhNhPwMbkHTpkf3zLhx7HvFw1NDy";
        assert_eq!(count_private_tokens(&format!("wpkh({xpub}/0/*)")), 0);
    }
}
