//! Extended keys: xprv and xpub, SLIP-132 version bytes, key origins.

use std::str::FromStr;

use bitcoin::NetworkKind;
use bitcoin::base58;
use bitcoin::bip32::{ChildNumber, DerivationPath, Fingerprint, Xpriv, Xpub};
use bitcoin::secp256k1::Secp256k1;
use zeroize::{Zeroize, Zeroizing};

use super::error::MaterialError;
use super::facts::PublicFacts;
use super::kind::{Kind, Network};
use super::path::{account_path, derive_xpub, fmt_origin, fmt_path, parse_path};
use super::{AccountKey, Material, ParseOptions};
use crate::secret::SecretString;

/// Version bytes of extended keys: standard and SLIP-132.
pub(super) struct KeyVersion {
    pub(super) bytes: [u8; 4],
    pub(super) private: bool,
    pub(super) network: NetworkKind,
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
pub(super) const KEY_VERSIONS: [KeyVersion; 20] = [
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

pub(super) fn standard_version(private: bool, network: NetworkKind) -> [u8; 4] {
    match (private, network) {
        (false, NetworkKind::Main) => 0x0488_B21Eu32,
        (false, NetworkKind::Test) => 0x0435_87CF,
        (true, NetworkKind::Main) => 0x0488_ADE4,
        (true, NetworkKind::Test) => 0x0435_8394,
    }
    .to_be_bytes()
}

pub(super) fn network_kind_name(n: NetworkKind) -> &'static str {
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

pub(super) fn decode_xprv(text: &str) -> Result<Xpriv, MaterialError> {
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

pub(super) type Origin = (Fingerprint, DerivationPath);

/// Split `[fp/path]key` into its origin and the key text.
pub(super) fn split_origin(
    text: &str,
    kind: Kind,
) -> Result<(Option<Origin>, &str), MaterialError> {
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
pub(super) fn parse_xprv(text: &str, opts: &ParseOptions) -> Result<Material, MaterialError> {
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

pub(super) fn parse_xpub(text: &str, opts: &ParseOptions) -> Result<Material, MaterialError> {
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
