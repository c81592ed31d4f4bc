//! `lnd-backup-key`: the account extended public key at m/1017'/coin'/7'
//! (`lncli wallet accounts list`), the key every static channel backup of
//! an lnd node is encrypted under (`chanbackup::BackupKey`).

use super::Material;
use super::cross_check::CheckResult;
use super::error::MaterialError;
use super::facts::PublicFacts;
use super::kind::{Kind, Network};
use crate::chanbackup::BackupKey;
use crate::secret::SecretString;

/// The backup key `text` gives on `network`, or why it is not one.
pub(super) fn backup_key(text: &str, network: Network) -> Result<BackupKey, MaterialError> {
    BackupKey::from_account_xpub(text, network.kind()).map_err(|e| MaterialError::BackupKey {
        reason: e.to_string(),
    })
}

/// Validated like `inspect --backup-key-file`: base58check, the network's
/// prefix (xpub or tpub), depth 3, child 7', and a derivable key at /0/0.
/// The public fact is the backup key's fingerprint, which an aezeed item
/// records too, so the two can be matched without opening either.
pub(super) fn parse_lnd_backup_key(
    text: &str,
    network: Network,
) -> Result<Material, MaterialError> {
    let kind = Kind::LndBackupKey;
    let key = backup_key(text, network)?;
    Ok(Material {
        kind,
        network: Some(network),
        public: PublicFacts {
            kind: kind.to_string(),
            network: Some(network.to_string()),
            backup_key_fingerprint: Some(key.fingerprint()),
            ..PublicFacts::default()
        },
        secret: Some(SecretString::new(text.to_owned())),
        passphrase: None,
        account: None,
        descriptor_keys: Vec::new(),
    })
}

/// Check 6: every `lnd-backup-key` item is the backup key of an escrowed
/// aezeed (when one is escrowed): the fingerprints both record agree. A
/// mismatch means the escrow holds keys of two different nodes, and one of
/// them does not open this node's backups.
pub(super) fn backup_keys_agree(items: &[(&str, &Material)]) -> Vec<CheckResult> {
    let seeds: Vec<(&str, &str)> = items
        .iter()
        .filter(|(_, m)| m.kind == Kind::Aezeed)
        .filter_map(|(n, m)| Some((*n, m.public.backup_key_fingerprint.as_deref()?)))
        .collect();
    if seeds.is_empty() {
        return Vec::new();
    }
    let keys = items.iter().filter(|(_, m)| m.kind == Kind::LndBackupKey);
    keys.filter_map(|(name, m)| {
        let fp = m.public.backup_key_fingerprint.as_deref()?;
        let check = format!("lnd-backup-key '{name}' is the aezeed's backup key");
        let matching: Vec<&str> = seeds
            .iter()
            .filter(|(_, s)| *s == fp)
            .map(|(n, _)| *n)
            .collect();
        Some(if matching.is_empty() {
            let listing: Vec<String> = seeds.iter().map(|(n, s)| format!("'{n}': {s}")).collect();
            CheckResult {
                name: check,
                ok: false,
                detail: format!(
                    "'{name}' is backup key {fp}, but the escrowed aezeed gives {}; the two \
                     belong to different nodes (or networks) and one of them does not open \
                     this node's backups",
                    listing.join(", ")
                ),
            }
        } else {
            CheckResult {
                name: check,
                ok: true,
                detail: format!(
                    "backup key {fp}, derived from aezeed '{}'",
                    matching.join("', '")
                ),
            }
        })
    })
    .collect()
}

/// Every escrowed aezeed is the wallet of the running node: its identity
/// key (m/1017'/coin'/6'/0/0) is the `identity_pubkey` LND's `GetInfo`
/// reports. One result per aezeed; none when no aezeed is escrowed.
pub fn node_identity(items: &[(&str, &Material)], identity_pubkey: &str) -> Vec<CheckResult> {
    items
        .iter()
        .filter(|(_, m)| m.kind == Kind::Aezeed)
        .filter_map(|(name, m)| {
            let node = m.public.node_pubkey.as_deref()?;
            let check = format!("aezeed '{name}' is the running node's wallet");
            Some(if node.eq_ignore_ascii_case(identity_pubkey.trim()) {
                CheckResult {
                    name: check,
                    ok: true,
                    detail: format!("node identity {node} (LND GetInfo)"),
                }
            } else {
                CheckResult {
                    name: check,
                    ok: false,
                    detail: format!(
                        "'{name}' is the wallet of node {node}, but LND runs as {}; this seed \
                         does not restore this node's funds or open its backups",
                        identity_pubkey.trim()
                    ),
                }
            })
        })
        .collect()
}
