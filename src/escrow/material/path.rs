//! Derivation paths and key origins: the default account path, parsing,
//! deriving an account xpub, and how paths and origins are written.

use std::str::FromStr;

use bitcoin::bip32::{ChildNumber, DerivationPath, Fingerprint, Xpriv, Xpub};
use bitcoin::secp256k1::{self, Secp256k1};

use super::ParseOptions;
use super::error::{MaterialError, truncate_for_message};
use super::kind::{Kind, Network};

pub(super) fn account_path(opts: &ParseOptions) -> Result<DerivationPath, MaterialError> {
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

pub(super) fn parse_path(p: &str, what: &'static str) -> Result<DerivationPath, MaterialError> {
    let p = p.trim();
    let with_m = p == "m" || p.starts_with("m/");
    let body = if with_m { p } else { &format!("m/{p}") as &str };
    DerivationPath::from_str(body).map_err(|e| MaterialError::BadPath {
        what,
        path: truncate_for_message(p),
        reason: e.to_string(),
    })
}

pub(super) fn derive_xpub(
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

/// `m/48'/0'/0'/2'`, or `m` for the master.
pub(super) fn fmt_path(p: &DerivationPath) -> String {
    if p.is_empty() {
        "m".to_owned()
    } else {
        format!("m/{p}")
    }
}

/// `[d34db33f/48'/0'/0'/2']`, or `[d34db33f]` for the master.
pub(super) fn fmt_origin(fp: Fingerprint, p: &DerivationPath) -> String {
    if p.is_empty() {
        format!("[{fp}]")
    } else {
        format!("[{fp}/{p}]")
    }
}
