//! lnd's layer, read with the node's own key and no LND: the checks that
//! make the drill pass with the node gone. The keys come from
//! `[lnd] backup_key_file` and from the escrow (an `aezeed` or an
//! `lnd-backup-key` item); each must open every target's newest backup.

use std::collections::BTreeSet;

use super::report::{ChannelWarning, Class, Rows};
use crate::chanbackup::{LndVersion, Multi, OpenError};
use crate::config::Config;
use crate::escrow::material::{self, Kind, Material};
use crate::lnd::LndClient;
use crate::restore::NodeKey;
use crate::scb::ChanPoint;
use crate::secret::SecretBytes;
use crate::spool::BackupRecord;

/// `[lnd] backup_key_file`, loaded once; a key that cannot be loaded is a
/// failed row (the config names it, so recovery with it was planned).
pub(super) fn file_key(cfg: &Config, rows: &mut Rows) -> Option<NodeKey> {
    match NodeKey::from_config(cfg)? {
        Ok(k) => Some(k),
        Err(e) => {
            rows.fail("-", "backup-key", Class::ScbKey, e.to_string());
            None
        }
    }
}

/// The backup key of every escrowed `aezeed` and `lnd-backup-key` item
/// (already read and validated by `keys verify`). One that gives no key
/// (it cannot be deciphered again) is a failed row.
pub(super) fn escrowed_keys(items: &[(String, Material)], rows: &mut Rows) -> Vec<NodeKey> {
    let mut keys = Vec::new();
    for (name, m) in items {
        let label = format!("escrowed {} '{name}'", m.kind());
        match m.backup_key() {
            Some(Ok(key)) => keys.push(NodeKey { key, source: label }),
            Some(Err(e)) => rows.fail(
                "escrow",
                "backup-key",
                Class::ScbKey,
                format!("{label}: {e}"),
            ),
            None => {}
        }
    }
    keys
}

/// Every escrowed aezeed is the running node's wallet (`GetInfo`). Only with
/// LND up; a macaroon without `info:read` skips the row and says so.
pub(super) async fn node_identity(
    items: &[(String, Material)],
    lnd: Option<&LndClient>,
    rows: &mut Rows,
) {
    if !items.iter().any(|(_, m)| m.kind() == Kind::Aezeed) {
        return;
    }
    let Some(client) = lnd else {
        let why = "LND unreachable: the escrowed aezeed is not compared with the running node";
        rows.skip("escrow", "node-identity", Class::Escrow, why.into());
        return;
    };
    match client.identity_pubkey().await {
        Ok(pk) => {
            let refs: Vec<(&str, &Material)> = items.iter().map(|(n, m)| (n.as_str(), m)).collect();
            for c in material::node_identity(&refs, &pk) {
                let detail = format!("{}: {}", c.name, c.detail);
                rows.push("escrow", "node-identity", Some(c.ok), Class::Escrow, detail);
            }
        }
        Err(e) => rows.skip("escrow", "node-identity", Class::Escrow, e.to_string()),
    }
}

/// What the offline checks of one target found.
pub(super) struct Offline {
    /// The channel set the keys read, when one opened and it parsed.
    pub channels: Option<BTreeSet<ChanPoint>>,
}

/// `scb-opens` (one row per key: each must open it), `scb-parses` (every
/// Single parses; an unknown version is named), `covers-spool` (the
/// channels are the ones the spool recorded: another node's backup or a
/// truncated set is caught with LND down), and the per-channel warnings.
pub(super) fn check(
    keys: &[NodeKey],
    lnd_release: Option<LndVersion>,
    name: &str,
    plain: Option<&SecretBytes>,
    record: Option<&BackupRecord>,
    rows: &mut Rows,
    warnings: &mut Vec<ChannelWarning>,
) -> Offline {
    let none = Offline { channels: None };
    if keys.is_empty() {
        return none;
    }
    let Some(plain) = plain else {
        let why = "the age layer did not open (see the decrypt rows)".to_string();
        rows.skip(name, "scb-opens", Class::ScbKey, why);
        return none;
    };
    let mut parsed: Option<Result<Multi, String>> = None;
    for NodeKey { key, source: label } in keys {
        let fp = key.fingerprint();
        match crate::chanbackup::open_multi(key, plain.expose()) {
            Err(OpenError::Decrypt(e)) => {
                let detail = format!("{label}: {e}");
                rows.fail(name, "scb-opens", Class::ScbKey, detail);
            }
            r => {
                let detail = format!("opens with {label} (backup key {fp})");
                rows.pass(name, "scb-opens", Class::ScbKey, detail);
                if parsed.is_none() {
                    parsed = Some(r.map_err(|e| e.to_string()));
                }
            }
        }
    }
    let multi = match parsed {
        None => return none,
        Some(Err(e)) => {
            rows.fail(name, "scb-parses", Class::ScbKey, e);
            return none;
        }
        Some(Ok(m)) => m,
    };
    let n = multi.singles.len();
    let detail = format!("{n} channel(s) parse");
    rows.pass(name, "scb-parses", Class::ScbKey, detail);
    for s in &multi.singles {
        for (concern, detail) in crate::chanbackup::concerns(s, lnd_release) {
            warnings.push(ChannelWarning {
                target: name.to_string(),
                chan_point: s.chan_point().to_string(),
                concern,
                detail,
            });
        }
    }
    let read: BTreeSet<ChanPoint> = multi.singles.iter().map(|s| s.chan_point()).collect();
    covers_spool(name, &read, record, rows);
    Offline {
        channels: Some(read),
    }
}

fn covers_spool(
    name: &str,
    read: &BTreeSet<ChanPoint>,
    record: Option<&BackupRecord>,
    rows: &mut Rows,
) {
    let Some(record) = record else {
        let why = "the spool has no record of this backup".to_string();
        rows.skip(name, "covers-spool", Class::Integrity, why);
        return;
    };
    let recorded = record.chan_point_set();
    let n = read.len();
    if *read == recorded {
        let detail = format!("the {n} channel(s) the spool recorded");
        rows.pass(name, "covers-spool", Class::Integrity, detail);
    } else {
        let missing = recorded.difference(read).count();
        let extra = read.difference(&recorded).count();
        let detail = format!(
            "holds other channels than the spool recorded for it: {missing} missing, {extra} not recorded"
        );
        rows.fail(name, "covers-spool", Class::Integrity, detail);
    }
}

/// With LND up too: what the node's key reads is what LND's
/// `VerifyChanBackup` reads (a difference means one of them is not looking
/// at the backup a restore would use).
pub(super) fn matches_lnd(
    name: &str,
    offline: Option<&BTreeSet<ChanPoint>>,
    lnd: Option<&BTreeSet<ChanPoint>>,
    rows: &mut Rows,
) {
    let (Some(read), Some(lnd)) = (offline, lnd) else {
        return;
    };
    if read == lnd {
        let detail = format!("the key and LND read the same {} channel(s)", read.len());
        rows.pass(name, "scb-matches-lnd", Class::Integrity, detail);
    } else {
        let only_key = read.difference(lnd).count();
        let only_lnd = lnd.difference(read).count();
        let detail = format!(
            "the node's key and LND read different channels: {only_key} only by the key, {only_lnd} only by LND"
        );
        rows.fail(name, "scb-matches-lnd", Class::Integrity, detail);
    }
}
