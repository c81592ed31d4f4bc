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
//! - `aezeed`: LND's 24-word cipher seed, deciphered with its passphrase
//!   (lnd's default when none) by [`crate::wallet::aezeed`]: word list,
//!   length, CRC-32C checksum, version, and the passphrase itself (AEZ
//!   authenticates it). Public facts: birthday, node identity key and the
//!   channel-backup key's fingerprint.
//! - `xprv` / `xpub`: base58check, SLIP-132 prefixes normalised to
//!   `xpub`/`tpub`, network, key origin `[fingerprint/path]` consistent with
//!   the key's depth.
//! - `descriptor`: checksum required, parsed with miniscript, no private keys,
//!   every key with an origin, network of every xpub.
//! - `lnd-backup-key`: the account xpub at m/1017'/coin'/7' that opens
//!   lnd's channel backups: base58check, network prefix, depth 3, child 7';
//!   kept as a secret. Public fact: the backup key's fingerprint.
//! - `age-identity`: exactly one `AGE-SECRET-KEY-1…` (comments allowed, as
//!   written by age-keygen); the recipient is the public fact.

use std::fmt;

use bitcoin::bip32::{DerivationPath, Fingerprint, Xpub};
use bitcoin::secp256k1::Secp256k1;

use crate::secret::SecretString;

mod age_identity;
mod cross_check;
mod descriptor;
mod error;
mod facts;
mod kind;
mod lnd_key;
mod path;
mod seed;
#[cfg(test)]
mod tests;
mod xkey;

pub use cross_check::{CheckResult, cross_check};
pub use error::MaterialError;
pub use facts::PublicFacts;
pub use kind::{Kind, Network};
pub use lnd_key::node_identity;

use age_identity::parse_age_identity;
use descriptor::{DescKey, parse_descriptor};
use error::truncate_for_message;
use lnd_key::parse_lnd_backup_key;
use path::derive_xpub;
use seed::{bip39_master, parse_aezeed, parse_bip39};
use xkey::{decode_xprv, parse_xprv, parse_xpub, split_origin};

/// Longest input accepted for any kind. A 2-of-3 descriptor is ~450
/// characters and an age-keygen file ~190; anything this large is the wrong
/// file, and refusing it early keeps secrets out of big reallocations.
pub const MAX_INPUT_LEN: usize = 16 * 1024;

/// OpenBao (and Vault) KV v2 refuses `custom_metadata` values longer than
/// this, so longer facts (a descriptor with many keys) are split over
/// numbered keys (`descriptor.0`, `descriptor.1`, …).
pub const METADATA_VALUE_LIMIT: usize = 512;

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

/// An account key with its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AccountKey {
    fingerprint: Fingerprint,
    path: DerivationPath,
    xpub: Xpub,
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
            Kind::LndBackupKey => parse_lnd_backup_key(text, opts.network),
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

    /// The key that opens the node's static channel backups, for the kinds
    /// that hold it: an `aezeed` (deciphered again with its passphrase, then
    /// m/1017'/coin'/7'/0/0) and an `lnd-backup-key`. `None` for the rest.
    pub fn backup_key(&self) -> Option<Result<crate::chanbackup::BackupKey, MaterialError>> {
        let secret = self.secret.as_ref()?;
        let network = self.network?;
        match self.kind {
            Kind::Aezeed => Some(seed::aezeed_backup_key(
                secret.expose(),
                self.passphrase.as_ref(),
                network,
            )),
            Kind::LndBackupKey => Some(lnd_key::backup_key(secret.expose(), network)),
            _ => None,
        }
    }

    /// Rebuild an item from what the store returned: the canonical secret
    /// (for secret kinds) and the stored public facts. The item is validated
    /// again and every fact recomputed; any disagreement is refused.
    ///
    /// The derivation path comes from `opts.path` or else the stored
    /// `derivation`; public kinds are rebuilt from the facts themselves (the
    /// xpub with its origin, the descriptor). A bip39 item stored with a
    /// passphrase needs `opts.passphrase`, and so does an aezeed with one
    /// (it cannot be opened without). An aezeed stored before its birthday,
    /// node key and backup-key fingerprint were recorded is compared on the
    /// facts it has.
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
        let material = if kind.is_secret() {
            let secret = secret.ok_or(MaterialError::MissingSecret { kind })?;
            if matches!(kind, Kind::Bip39 | Kind::Aezeed)
                && public.has_passphrase == Some(true)
                && !passphrase_given
            {
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
        let mut stored = public.clone();
        if kind == Kind::Aezeed {
            let new = &material.public;
            stored.birthday = stored.birthday.or_else(|| new.birthday.clone());
            stored.node_pubkey = stored.node_pubkey.or_else(|| new.node_pubkey.clone());
            stored.backup_key_fingerprint = stored
                .backup_key_fingerprint
                .or_else(|| new.backup_key_fingerprint.clone());
        }
        let differences = stored.differences(&material.public);
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
