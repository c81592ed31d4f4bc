//! Everything a user can get wrong with key material, and how user-given
//! text is shown in messages.

use super::MAX_INPUT_LEN;
use super::kind::{Kind, Network};

/// Everything a user can get wrong with key material.
///
/// No message ever contains secret text: mnemonic words are named by
/// position, keys and identities by kind. Public values (fingerprints, paths,
/// xpubs, recipients) may appear.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error(
        "unknown key kind {given:?}; use one of: bip39, aezeed, xprv, xpub, descriptor, age-identity, lnd-backup-key"
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

    #[error(
        "aezeed: the passphrase does not open this aezeed: give the passphrase set when the \
         wallet was created (none for lnd's default)"
    )]
    AezeedPassphrase,

    #[error("a passphrase was given, but a {kind} has none; leave it out")]
    PassphraseNotApplicable { kind: Kind },

    #[error(
        "this seed was escrowed with a passphrase; supply the passphrase to re-derive \
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

    #[error("lnd-backup-key: {reason}")]
    BackupKey { reason: String },

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

/// User-given names (kinds, networks) shown in errors: short and printable.
pub(super) fn truncate_for_message(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(40).collect()
}
