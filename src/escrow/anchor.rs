//! The audit log's anchor in OpenBao: the KV v2 item `PREFIX/_audit/anchor`
//! (`MOUNT/data/PREFIX/_audit/anchor`), whose version N holds the `hash` of
//! record N of `state_dir/escrow-audit.jsonl`.
//!
//! Why: the local log and its head file both live in `state_dir`, so anyone
//! with the daemon's uid can drop the last lines, recompute the head (or
//! every hash) and the local check passes. The anchor is outside the host,
//! and its version numbers are OpenBao's: they only go up, and the shipped
//! policies grant no delete, destroy or metadata write on it. Hence:
//!
//! - records dropped from the end: the log is shorter than the anchor's
//!   current version;
//! - records rewritten, however consistently: record N's hash is not the one
//!   version N holds;
//! - the anchor rolled back by a token holder writing an old checkpoint as a
//!   new version: version M then holds a `seq` other than M.
//!
//! What it cannot stop: a token holder who replaces the tail with forged
//! records and writes a version for each, until KV v2 has pruned every
//! version that held an original hash (`max_versions`, 10 by default; `audit
//! verify` compares the newest 100).
//! Each of those writes is in OpenBao's own audit device.
//!
//! The anchor holds no secret: a record number, a hash and the record's time.

use crate::escrow::audit::{AuditError, AuditLog, Entry};
use crate::escrow::kv::{KvClient, KvError, Read};

/// The anchor's name under `escrow.prefix`: a sub-folder, so `keys list`
/// (which skips folders) never shows it and no item name can clash with it.
pub const ANCHOR_NAME: &str = "_audit/anchor";
/// Most versions one operation writes (the first run after an upgrade anchors
/// an old log; the rest follows with the next operations).
const MAX_CATCH_UP: u64 = 256;
/// How many of the newest retained versions `audit verify` compares.
const MAX_HISTORY: usize = 100;
/// Another chanvault process writing the anchor at the same time: re-read
/// and carry on, this many times.
const CAS_RETRIES: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// OpenBao could not be asked (down, sealed, refused, timed out).
    #[error("the audit log's anchor in OpenBao could not be checked: {0}")]
    Unavailable(#[from] KvError),
    /// The local log and its anchor disagree: records were removed or
    /// rewritten, or the anchor itself was tampered with.
    #[error("{0}")]
    Mismatch(String),
    /// The local log's own hash chain is broken.
    #[error(transparent)]
    Local(#[from] AuditError),
}

/// What `audit verify` found when the anchor exists and agrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// The anchor's current version: records 1..=anchored are anchored.
    pub anchored: u64,
    /// Records in the local log.
    pub local: u64,
    /// How many anchor versions were compared with the log.
    pub versions_checked: usize,
}

impl Checked {
    /// Records written after the newest anchor (OpenBao was down, or the
    /// operation failed before the anchor was written).
    pub fn unanchored(&self) -> u64 {
        self.local.saturating_sub(self.anchored)
    }
}

/// The anchor's KV item (relative to the mount).
pub fn item(prefix: &str) -> String {
    format!("{}/{ANCHOR_NAME}", prefix.trim_matches('/'))
}

/// Its API path, for messages.
pub fn api_path(kv: &KvClient, prefix: &str) -> String {
    format!("{}/data/{}", kv.mount(), item(prefix))
}

/// Compare the log's verified `entries` with every retained version of the
/// anchor (the newest [`MAX_HISTORY`]). `Ok(None)`: there is no anchor yet.
pub async fn check(
    kv: &mut KvClient,
    prefix: &str,
    entries: &[Entry],
) -> Result<Option<Checked>, AnchorError> {
    let item = item(prefix);
    let Some(meta) = kv.metadata(&item).await? else {
        return Ok(None);
    };
    let current = meta.current_version;
    if current == 0 {
        return Ok(None);
    }
    let path = api_path(kv, prefix);
    covers(current, entries)?;
    let mut versions: Vec<u64> = meta.versions().into_iter().map(|(v, _)| v).collect();
    if !versions.contains(&current) {
        versions.push(current);
    }
    versions.sort_unstable_by(|a, b| b.cmp(a));
    versions.truncate(MAX_HISTORY);
    for &v in &versions {
        let read = kv.read(&item, Some(v)).await?;
        let (seq, hash) = checkpoint(read, v, &path)?;
        compare(v, seq, &hash, entries)?;
    }
    Ok(Some(Checked {
        anchored: current,
        local: entries.len() as u64,
        versions_checked: versions.len(),
    }))
}

/// After an audited operation: write one anchor version per record not yet
/// anchored (at most [`MAX_CATCH_UP`]), each with check-and-set on the
/// version before it. Refuses to extend an anchor the log no longer matches.
/// Returns how many versions were written.
pub async fn catch_up(kv: &mut KvClient, prefix: &str, log: &AuditLog) -> Result<u64, AnchorError> {
    let entries = log.verify()?;
    let total = entries.len() as u64;
    let item = item(prefix);
    let path = api_path(kv, prefix);
    let mut written = 0;
    for _ in 0..CAS_RETRIES {
        let current = kv.metadata(&item).await?.map_or(0, |m| m.current_version);
        covers(current, &entries)?;
        if current > 0 {
            let (seq, hash) = checkpoint(kv.read(&item, Some(current)).await?, current, &path)?;
            compare(current, seq, &hash, &entries)?;
        }
        let mut raced = false;
        for (k, e) in (1..=total).zip(&entries).skip(current as usize) {
            if k > current + MAX_CATCH_UP {
                break;
            }
            let seq = k.to_string();
            let fields = [
                ("seq", seq.as_str()),
                ("hash", e.hash.as_str()),
                ("time", e.record.time.as_str()),
            ];
            match kv.put(&item, &fields, k - 1).await {
                Ok(_) => written += 1,
                Err(KvError::CasConflict { .. }) => {
                    raced = true;
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !raced {
            break;
        }
    }
    Ok(written)
}

/// The log holds at least as many records as the anchor says were written.
fn covers(current: u64, entries: &[Entry]) -> Result<(), AnchorError> {
    let n = entries.len() as u64;
    if n < current {
        return Err(AnchorError::Mismatch(format!(
            "the local log has {n} record(s), but its anchor in OpenBao says {current} were written: records were removed (the log was truncated or replaced)"
        )));
    }
    Ok(())
}

/// `(seq, hash)` of anchor version `v`.
fn checkpoint(read: Read, v: u64, path: &str) -> Result<(u64, String), AnchorError> {
    let tampered = |what: String| {
        AnchorError::Mismatch(format!(
            "version {v} of the audit anchor {path} {what}; chanvault's policies allow no one but an administrator to do that, so find out who did"
        ))
    };
    match read {
        Read::Found { data, .. } => {
            let seq = data
                .get("seq")
                .and_then(|s| s.expose().parse::<u64>().ok())
                .ok_or_else(|| tampered("has no record number (written by hand)".into()))?;
            let hash = data
                .get("hash")
                .map(|h| h.expose().to_owned())
                .ok_or_else(|| tampered("has no hash (written by hand)".into()))?;
            Ok((seq, hash))
        }
        Read::Deleted { deleted, .. } => Err(tampered(format!("was deleted at {deleted}"))),
        Read::Destroyed { .. } => Err(tampered("was destroyed".into())),
        Read::Missing => Err(tampered("is missing".into())),
    }
}

/// Anchor version `v` says record `seq` hashed to `hash`.
fn compare(v: u64, seq: u64, hash: &str, entries: &[Entry]) -> Result<(), AnchorError> {
    if seq != v {
        return Err(AnchorError::Mismatch(format!(
            "version {v} of the audit anchor holds record {seq}, where record {v} belongs: the anchor was rolled back or written by hand"
        )));
    }
    let Some(local) = usize::try_from(v - 1).ok().and_then(|i| entries.get(i)) else {
        return covers(v, entries);
    };
    if local.hash != hash {
        return Err(AnchorError::Mismatch(format!(
            "record {v} does not match its anchor in OpenBao (anchored hash {}…, local {}…): the log was rewritten",
            short(hash),
            short(&local.hash)
        )));
    }
    Ok(())
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escrow::audit::Event;

    fn entries(n: usize) -> (tempfile::TempDir, Vec<Entry>) {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::new(d.path());
        for i in 0..n {
            log.append(&Event {
                accessor: "acc",
                op: &format!("op{i}"),
                path: "secret/data/chanvault/x",
                version: None,
                outcome: "ok",
            })
            .unwrap();
        }
        let e = log.verify().unwrap();
        (d, e)
    }

    #[test]
    fn a_checkpoint_must_sit_at_its_own_version_and_match_the_record() {
        let (_d, e) = entries(3);
        assert!(compare(2, 2, &e[1].hash, &e).is_ok());
        assert!(compare(3, 3, &e[2].hash, &e).is_ok());
        // Rolled back: version 3 holding record 2's checkpoint.
        let err = compare(3, 2, &e[1].hash, &e).unwrap_err().to_string();
        assert!(err.contains("rolled back"), "{err}");
        // Rewritten: the hash differs.
        let err = compare(2, 2, &e[2].hash, &e).unwrap_err().to_string();
        assert!(err.contains("record 2 does not match"), "{err}");
        // Truncated: the anchor is ahead of the log.
        let err = compare(4, 4, &e[2].hash, &e).unwrap_err().to_string();
        assert!(
            err.contains("has 3 record(s)") && err.contains("4 were written"),
            "{err}"
        );
    }

    #[test]
    fn the_anchor_sits_in_a_folder_under_the_prefix() {
        assert_eq!(item("chanvault"), "chanvault/_audit/anchor");
        assert_eq!(item("/team/chanvault/"), "team/chanvault/_audit/anchor");
        let (_d, e) = entries(2);
        let c = Checked {
            anchored: 1,
            local: e.len() as u64,
            versions_checked: 1,
        };
        assert_eq!(c.unanchored(), 1);
    }
}
