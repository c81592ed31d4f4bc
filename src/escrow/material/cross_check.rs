//! Cross-checks between escrowed items.

use std::collections::BTreeSet;

use bitcoin::bip32::Xpub;
use miniscript::descriptor::SinglePubKey;

use super::descriptor::{DescKey, DescKeyValue};
use super::kind::{Kind, Network};
use super::path::fmt_origin;
use super::{AccountKey, Material};

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

/// Named items of one kind: seeds and xprvs that can derive keys
/// ("signers"), or descriptors.
type Named<'a> = (&'a str, &'a Material);

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
///    descriptors are escrowed);
/// 6. each `lnd-backup-key` is the backup key of the escrowed aezeed (when
///    one is escrowed).
///
/// The check against the running node (aezeed ↔ `GetInfo`) needs LND and
/// is [`node_identity`](super::node_identity).
///
/// Nothing to compare gives no result (a lone seed yields an empty list).
pub fn cross_check(items: &[(&str, &Material)], config_recipients: &[String]) -> Vec<CheckResult> {
    let signers: Vec<Named> = items
        .iter()
        .filter(|(_, m)| matches!(m.kind, Kind::Bip39 | Kind::Xprv) && m.account.is_some())
        .map(|(n, m)| (*n, *m))
        .collect();
    let xpubs: Vec<(&str, &AccountKey)> = items
        .iter()
        .filter(|(_, m)| m.kind == Kind::Xpub)
        .filter_map(|(n, m)| m.account.as_ref().map(|a| (*n, a)))
        .collect();
    let descriptors: Vec<Named> = items
        .iter()
        .filter(|(_, m)| m.kind == Kind::Descriptor)
        .map(|(n, m)| (*n, *m))
        .collect();

    let mut out = Vec::new();
    for &(sname, s) in &signers {
        out.extend(signer_derives_xpubs(sname, s, &xpubs));
    }
    for &(xname, x) in &xpubs {
        out.extend(xpub_in_descriptors(xname, x, &descriptors));
    }
    out.extend(networks_agree(items));
    out.extend(identities_in_recipients(items, config_recipients));
    for &(sname, s) in &signers {
        out.extend(signer_in_descriptors(sname, s, &descriptors));
    }
    out.extend(super::lnd_key::backup_keys_agree(items));
    out
}

/// Check 1: the seed/xprv `s` derives every xpub item whose origin it
/// covers, and at least one xpub item is its own (when xpubs are escrowed).
fn signer_derives_xpubs(
    sname: &str,
    s: &Material,
    xpubs: &[(&str, &AccountKey)],
) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let Some(acct) = &s.account else {
        return out;
    };
    let what = signer_word(s.kind);
    let mut claimed = false;
    for (xname, x) in xpubs {
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
    out
}

/// Check 2: the xpub item `x` is the key at its origin in every descriptor
/// with a key there, and at least one descriptor has it (when descriptors
/// are escrowed).
fn xpub_in_descriptors(xname: &str, x: &AccountKey, descriptors: &[Named]) -> Vec<CheckResult> {
    let mut out = Vec::new();
    if descriptors.is_empty() {
        return out;
    }
    let origin = fmt_origin(x.fingerprint, &x.path);
    let mut found = false;
    for (dname, d) in descriptors {
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
                let origins: Vec<String> = d.descriptor_keys.iter().map(DescKey::origin).collect();
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
    out
}

/// Check 3: all items with a network agree on it (one result, when at
/// least two items have a network).
fn networks_agree(items: &[(&str, &Material)]) -> Option<CheckResult> {
    let networks: Vec<(&str, Network)> = items
        .iter()
        .filter_map(|(n, m)| m.network.map(|net| (*n, net)))
        .collect();
    if networks.len() < 2 {
        return None;
    }
    let distinct: BTreeSet<&str> = networks.iter().map(|(_, n)| n.as_str()).collect();
    let listing: Vec<String> = networks
        .iter()
        .map(|(name, net)| format!("'{name}': {net}"))
        .collect();
    Some(if distinct.len() == 1 {
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
    })
}

/// Check 4: each age identity's recipient is among the configured seal
/// recipients.
fn identities_in_recipients(
    items: &[(&str, &Material)],
    config_recipients: &[String],
) -> Vec<CheckResult> {
    let mut out = Vec::new();
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
    out
}

/// Check 5: the seed/xprv `s` derives every descriptor key with its master
/// fingerprint, and is a key of at least one descriptor (when descriptors
/// are escrowed).
fn signer_in_descriptors(sname: &str, s: &Material, descriptors: &[Named]) -> Vec<CheckResult> {
    let mut out = Vec::new();
    if descriptors.is_empty() {
        return out;
    }
    let Some(acct) = &s.account else {
        return out;
    };
    let what = signer_word(s.kind);
    let mut member = false;
    for (dname, d) in descriptors {
        for k in &d.descriptor_keys {
            let Some(derived) = s.derive_xpub_at(k.fingerprint, &k.path) else {
                continue;
            };
            member = true;
            let name = format!("{what} '{sname}' is a cosigner of descriptor '{dname}'");
            out.push(match derived {
                Ok(dx) if derives_key(k, &dx) => result(name, true, format!("derives {k}")),
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
    out
}

/// Whether the derived xpub `d` is the descriptor key `k` (an xpub, or a
/// single key given in full or x-only).
fn derives_key(k: &DescKey, d: &Xpub) -> bool {
    match &k.key {
        DescKeyValue::Xpub(x) => x == d,
        DescKeyValue::Single(SinglePubKey::FullKey(p)) => p.inner == d.public_key,
        DescKeyValue::Single(SinglePubKey::XOnly(p)) => *p == d.public_key.x_only_public_key().0,
    }
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
