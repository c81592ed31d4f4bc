//! The durable local store of sealed backups and the journal of what is
//! pending where.
//!
//! Layout under `state_dir`:
//! - `backups/<sha256>.age`: sealed backups, named by the SHA-256 of their bytes;
//! - `journal.json`: every backup's facts, the last good one, per-target delivery;
//! - `lock`: held (flock) for every read-modify-write of the journal, so that
//!   `watch` and a `backup --once` from a timer can share one state dir.
//!
//! A backup is durable once the journal that names it has been renamed into
//! place. Every file is written temp + fsync + rename + fsync(dir), so a crash
//! leaves the old journal or the new one; files that no journal names (a crash
//! between the two renames) and temp files are swept on the next open.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fsutil;

pub use crate::state_dir::{BACKUPS_DIR, JOURNAL_FILE, LOCK_FILE};
/// Version of the journal format this build writes and reads.
pub const JOURNAL_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("state dir {path} is not usable: {source}")]
    StateDir { path: PathBuf, source: io::Error },
    #[error(
        "state dir {path} does not exist: nothing was stored here yet, or it was lost (a read-only command never creates it)"
    )]
    NoStateDir { path: PathBuf },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "journal {path} is damaged ({reason}); it was left untouched: move it aside to start a new journal"
    )]
    Journal { path: PathBuf, reason: String },
    #[error("manifest keys: {reason}")]
    Keys { reason: String },
    #[error("spool file {path} for backup {id} is missing")]
    Missing { id: String, path: PathBuf },
    #[error("spool file {path} does not match its recorded SHA-256 {id}: the file is damaged")]
    Integrity { id: String, path: PathBuf },
    /// Only in unit tests: `store` stopped at a crash point on purpose.
    #[cfg(test)]
    #[error("simulated crash at {0:?}")]
    Crash(CrashPoint),
}

/// The journal in `state_dir`, read only (no lock, nothing created or
/// swept): `None` when there is none yet. For `status` and `verify`.
pub fn read_journal(state_dir: &Path) -> Result<Option<Journal>, SpoolError> {
    let path = state_dir.join(JOURNAL_FILE);
    match fs::read(&path) {
        Ok(bytes) => parse_journal_at(&bytes, path).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SpoolError::Io {
            op: "read",
            path,
            source,
        }),
    }
}

/// Parse and validate journal bytes (untrusted: whatever is on disk). Errors
/// name [`JOURNAL_FILE`]; [`Spool`] reports the real path.
pub fn parse_journal(bytes: &[u8]) -> Result<Journal, SpoolError> {
    parse_journal_at(bytes, PathBuf::from(JOURNAL_FILE))
}

fn parse_journal_at(bytes: &[u8], path: PathBuf) -> Result<Journal, SpoolError> {
    let j: Journal = serde_json::from_slice(bytes).map_err(|e| SpoolError::Journal {
        path: path.clone(),
        // serde_json quotes unknown keys decoded: a "\n" in one is a newline.
        reason: crate::text::one_line(&e.to_string()),
    })?;
    j.validate().map_err(|reason| SpoolError::Journal {
        path,
        reason: crate::text::one_line(&reason),
    })?;
    Ok(j)
}

/// A new journal written under its temp name (fsynced), and its bytes.
type JournalTemp = (PathBuf, Vec<u8>);

/// Points where a test can make `store` stop as if the process had died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The sealed file is written under its temp name, not yet renamed.
    BlobTempWritten,
    /// The sealed file is in place, the journal does not name it yet.
    BlobRenamed,
    /// The new journal is written under its temp name, not yet renamed.
    JournalTempWritten,
    /// The new journal is in place; pruned files not yet removed.
    JournalRenamed,
}

/// Everything known about one sealed backup. Channel points stay in the
/// local state dir only; they never go to a target's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRecord {
    /// SHA-256 of the sealed bytes; also the spool file name.
    pub id: String,
    pub created: DateTime<Utc>,
    /// What produced it: `stream`, `connect`, `schedule`, `once`, `retry`.
    pub source: String,
    pub channels: usize,
    /// Kept for the last good backup and any newer one (the shrink guard and
    /// `verify` read them); cleared on older ones, so that the journal, which
    /// is rewritten on every event, grows with `keep` plus channels rather
    /// than `keep` times channels.
    pub chan_points: Vec<String>,
    /// SHA-256 over the sorted channel points (see `scb::fingerprint`).
    pub fingerprint: String,
    /// SHA-256 of lnd's multi blob (the plaintext `channel.backup`).
    pub blob_sha256: String,
    pub sealed_len: u64,
    pub recipients: Vec<String>,
    /// Why the shrink guard flagged it; a suspect never becomes the last good backup.
    /// Counts only, no channel point: this text goes to targets and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspect: Option<String>,
    /// The channels of the last good backup that made it suspect (missing,
    /// and not reported closed by LND). Local only, like `chan_points`:
    /// never in a manifest, a snapshot or a log.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspect_channels: Vec<String>,
    /// Its place in the order of backups, from the journal (never the
    /// clock); 0 for backups stored before sequence numbers.
    #[serde(default)]
    pub seq: u64,
    /// The node's identity key, when known; signed into the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The signature targets publish (see `signing`), set when stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<Signed>,
    /// A cover upload (`privacy = "padded"`): the last good state re-sealed
    /// for these targets only. The others keep the backup it re-seals as
    /// their current one ([`Journal::due_for`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cover_for: Vec<String>,
}

/// What the spool's manifest key added to a record when it was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    /// The fingerprint as targets publish it (keyed: `signing`).
    pub fingerprint: String,
    /// `ed25519:<hex>`.
    pub signer: String,
    pub signature: String,
}

impl BackupRecord {
    pub fn is_suspect(&self) -> bool {
        self.suspect.is_some()
    }

    /// The suspect reason as it may leave the host. Journals written before
    /// the reason held counts only ended it with up to three channel points
    /// after the last ": "; those are cut off here.
    pub fn public_suspect(&self) -> Option<String> {
        let reason = self.suspect.as_deref()?;
        let names_points = |tail: &str| {
            tail.split(", ").any(|p| {
                p.trim_end_matches('…')
                    .parse::<crate::scb::ChanPoint>()
                    .is_ok()
            })
        };
        Some(match reason.rsplit_once(": ") {
            Some((head, tail)) if names_points(tail) => head.to_owned(),
            _ => reason.to_owned(),
        })
    }

    /// The fingerprint targets may publish: the keyed one once signed.
    pub fn published_fingerprint(&self) -> &str {
        self.signed
            .as_ref()
            .map_or(&self.fingerprint, |s| &s.fingerprint)
    }

    /// What the manifest's signature covers, with the published fingerprint
    /// and suspect reason.
    pub fn claims(&self, signer: &str) -> crate::signing::Claims {
        crate::signing::Claims {
            seq: self.seq,
            created: self.created,
            channels: self.channels,
            fingerprint: self.published_fingerprint().to_owned(),
            sealed_sha256: self.id.clone(),
            sealed_len: self.sealed_len,
            suspect: self.public_suspect(),
            node: self.node.clone(),
            signer: signer.to_owned(),
        }
    }

    /// A copy for a delivery: without the channel points, which never go
    /// to a target and are the bulk of a record (1,000 strings at 1,000
    /// channels, once per look at what is pending).
    pub fn for_delivery(&self) -> BackupRecord {
        BackupRecord {
            id: self.id.clone(),
            created: self.created,
            source: self.source.clone(),
            channels: self.channels,
            chan_points: Vec::new(),
            fingerprint: self.fingerprint.clone(),
            blob_sha256: self.blob_sha256.clone(),
            sealed_len: self.sealed_len,
            recipients: self.recipients.clone(),
            suspect: self.suspect.clone(),
            suspect_channels: Vec::new(),
            seq: self.seq,
            node: self.node.clone(),
            signed: self.signed.clone(),
            cover_for: self.cover_for.clone(),
        }
    }

    /// The channel points recorded for this backup, parsed; an entry that
    /// does not parse (a journal edited by hand) is left out.
    pub fn chan_point_set(&self) -> std::collections::BTreeSet<crate::scb::ChanPoint> {
        self.chan_points
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    }
}

/// Delivery state of one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetState {
    /// Backup id -> when it was delivered.
    #[serde(default)]
    pub delivered: BTreeMap<String, DateTime<Utc>>,
    /// The last good backup this target holds as its current one.
    #[serde(default)]
    pub current: Option<String>,
    #[serde(default)]
    pub last_success: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_attempt: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub next_retry: Option<DateTime<Utc>>,
    /// Failures since the last success.
    #[serde(default)]
    pub failures: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub format: u32,
    /// Oldest first.
    #[serde(default)]
    pub backups: Vec<BackupRecord>,
    #[serde(default)]
    pub last_good: Option<String>,
    #[serde(default)]
    pub targets: BTreeMap<String, TargetState>,
    /// The sequence number the next stored backup gets; never goes back,
    /// not even when backups are pruned.
    #[serde(default)]
    pub next_seq: u64,
}

/// One thing a target still has to receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub record: BackupRecord,
    /// Deliver as the target's current backup (only ever the last good one).
    pub current: bool,
    /// The highest sequence number the journal had given out: a target's
    /// current file that claims more was not written from this journal.
    pub known_seq: u64,
}

impl Journal {
    fn empty() -> Self {
        Self {
            format: JOURNAL_FORMAT,
            ..Self::default()
        }
    }

    pub fn newest(&self) -> Option<&BackupRecord> {
        self.backups.last()
    }

    pub fn get(&self, id: &str) -> Option<&BackupRecord> {
        self.backups.iter().find(|b| b.id == id)
    }

    pub fn last_good(&self) -> Option<&BackupRecord> {
        self.last_good.as_deref().and_then(|id| self.get(id))
    }

    /// The backup `target` should hold as its current one: the last good,
    /// unless that is a cover upload for other targets; then the good backup
    /// of the same channel state it covers, if the spool still keeps it.
    pub fn due_for(&self, target: &str) -> Option<&BackupRecord> {
        let good = self.last_good()?;
        let mut i = self.backups.iter().position(|b| b.id == good.id)?;
        loop {
            let b = &self.backups[i];
            if b.cover_for.is_empty() || b.cover_for.iter().any(|t| t == target) {
                return Some(b);
            }
            match self.backups[..i].iter().rposition(|p| !p.is_suspect()) {
                Some(j) if self.backups[j].fingerprint == good.fingerprint => i = j,
                _ => return Some(b),
            }
        }
    }

    /// The highest sequence number this journal has given out.
    pub fn max_seq(&self) -> u64 {
        let listed = self.backups.iter().map(|b| b.seq).max().unwrap_or(0);
        listed.max(self.next_seq.saturating_sub(1))
    }

    pub fn suspects(&self) -> impl Iterator<Item = &BackupRecord> {
        self.backups.iter().filter(|b| b.is_suspect())
    }

    /// What `target` still needs, most important first. Newest wins: only the
    /// last good backup is delivered as current (older good ones it missed
    /// are superseded), then any suspect backup newer than it, as history only.
    pub fn pending_for(&self, target: &str) -> Vec<Pending> {
        let state = self.targets.get(target);
        let done = |id: &str| state.is_some_and(|s| s.delivered.contains_key(id));
        let mut out = vec![];
        let mut after = 0;
        if let Some(good) = self.last_good() {
            let due = self.due_for(target).unwrap_or(good);
            if !done(&due.id) {
                out.push(Pending {
                    record: due.for_delivery(),
                    current: true,
                    known_seq: self.max_seq(),
                });
            }
            after = self
                .backups
                .iter()
                .position(|b| b.id == good.id)
                .map_or(0, |i| i + 1);
        }
        for b in &self.backups[after..] {
            if b.is_suspect() && !done(&b.id) {
                out.push(Pending {
                    record: b.for_delivery(),
                    current: false,
                    known_seq: self.max_seq(),
                });
            }
        }
        out
    }

    fn validate(&self) -> Result<(), String> {
        if self.format != JOURNAL_FORMAT {
            return Err(format!(
                "format {} is not {JOURNAL_FORMAT}, written by another chanvault version",
                self.format
            ));
        }
        let mut ids = BTreeSet::new();
        for b in &self.backups {
            if b.id.len() != 64 || !b.id.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!("backup id {:?} is not a SHA-256", b.id));
            }
            if !ids.insert(b.id.as_str()) {
                return Err(format!("backup {} is listed twice", b.id));
            }
        }
        if let Some(g) = &self.last_good {
            match self.get(g) {
                None => return Err(format!("last_good {g} is not in the list of backups")),
                Some(b) if b.is_suspect() => {
                    return Err(format!("last_good {g} is flagged suspect"));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// What `store` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Written and journaled.
    New(Box<BackupRecord>),
    /// The newest backup already has this fingerprint; nothing was written.
    Duplicate { fingerprint: String },
}

/// The spool of one state dir.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    keep: usize,
    keys: crate::signing::ManifestKeys,
    parsed: std::sync::Mutex<Option<Parsed>>,
    fresh: std::sync::Mutex<Option<store::Fresh>>,
    /// How many times the journal's bytes were parsed (see [`Parsed`]).
    #[cfg(test)]
    parses: std::sync::atomic::AtomicUsize,
    #[cfg(test)]
    crash: Option<CrashPoint>,
}

/// The journal as this spool last read or wrote it, beside its bytes. It is
/// read about four times per channel event (the pipeline, the store, each
/// delivery's pending list and its record), ~2 ms of parsing each at 10,000
/// channels; a read that finds these same bytes on disk takes a copy
/// instead. Any other bytes are parsed: a journal another process wrote, or
/// one damaged on disk, is never missed.
struct Parsed {
    bytes: Vec<u8>,
    journal: Journal,
}

impl std::fmt::Debug for Parsed {
    // The journal holds channel points: not for a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parsed")
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl Spool {
    /// Open (creating if needed, mode 0700) and sweep what a crash left behind.
    pub fn open(dir: &Path, keep: usize) -> Result<Self, SpoolError> {
        let state_err = |source| SpoolError::StateDir {
            path: dir.to_path_buf(),
            source,
        };
        fsutil::ensure_dir(dir, 0o700).map_err(state_err)?;
        fsutil::ensure_dir(&dir.join(BACKUPS_DIR), 0o700).map_err(state_err)?;
        let keys =
            crate::signing::ManifestKeys::load_or_create(dir).map_err(|e| SpoolError::Keys {
                reason: crate::text::one_line(&e.to_string()),
            })?;
        let spool = Self {
            dir: dir.to_path_buf(),
            keep: keep.max(1),
            keys,
            parsed: std::sync::Mutex::new(None),
            fresh: std::sync::Mutex::new(None),
            #[cfg(test)]
            parses: std::sync::atomic::AtomicUsize::new(0),
            #[cfg(test)]
            crash: None,
        };
        // Prove we can write here now, not at the first channel event.
        let probe = dir.join(crate::state_dir::WRITE_PROBE);
        fsutil::write_atomic(&probe, b"ok", 0o600).map_err(state_err)?;
        fs::remove_file(&probe).map_err(state_err)?;
        spool.recover()?;
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The keys that sign this spool's manifests.
    pub fn keys(&self) -> &crate::signing::ManifestKeys {
        &self.keys
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    pub fn backup_path(&self, id: &str) -> PathBuf {
        self.dir.join(BACKUPS_DIR).join(format!("{id}.age"))
    }

    /// Make the next `store` stop at `point` as if killed there.
    #[cfg(test)]
    fn inject_crash(&mut self, point: Option<CrashPoint>) {
        self.crash = point;
    }

    #[cfg(test)]
    fn crash_at(&self, point: CrashPoint) -> Result<(), SpoolError> {
        if self.crash == Some(point) {
            return Err(SpoolError::Crash(point));
        }
        Ok(())
    }

    /// Crash points exist only in unit tests; a real crash is `kill -9`.
    #[cfg(not(test))]
    fn crash_at(&self, _point: CrashPoint) -> Result<(), SpoolError> {
        Ok(())
    }

    fn lock(&self) -> Result<File, SpoolError> {
        let path = self.dir.join(LOCK_FILE);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| SpoolError::Io {
                op: "open lock file",
                path: path.clone(),
                source,
            })?;
        f.lock().map_err(|source| SpoolError::Io {
            op: "lock",
            path,
            source,
        })?;
        Ok(f)
    }

    fn load(&self) -> Result<Journal, SpoolError> {
        let path = self.journal_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Journal::empty()),
            Err(source) => {
                return Err(SpoolError::Io {
                    op: "read",
                    path,
                    source,
                });
            }
        };
        let mut parsed = self.parsed();
        if let Some(p) = parsed.as_ref().filter(|p| p.bytes == bytes) {
            return Ok(p.journal.clone());
        }
        #[cfg(test)]
        self.parses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let journal = parse_journal_at(&bytes, path)?;
        *parsed = Some(Parsed {
            bytes,
            journal: journal.clone(),
        });
        Ok(journal)
    }

    fn parsed(&self) -> std::sync::MutexGuard<'_, Option<Parsed>> {
        unpoisoned(&self.parsed)
    }

    /// `durable`: wait until the rename is on disk. Without it a power loss
    /// may bring back the journal as it was, complete (see
    /// [`fsutil::replace_with_temp`]): only for changes that may be lost.
    fn save_with(&self, j: Journal, durable: bool) -> Result<(), SpoolError> {
        let (tmp, bytes) = self.write_journal_temp(&j)?;
        self.crash_at(CrashPoint::JournalTempWritten)?;
        self.commit_journal(&tmp, bytes, j, durable)
    }

    /// The first half of a save: `j`, complete and fsynced under a temp
    /// name beside the journal, and its bytes.
    fn write_journal_temp(&self, j: &Journal) -> Result<JournalTemp, SpoolError> {
        let path = self.journal_path();
        let io_err = |op, source| SpoolError::Io {
            op,
            path: path.clone(),
            source,
        };
        let bytes =
            serde_json::to_vec_pretty(j).map_err(|e| io_err("encode", io::Error::other(e)))?;
        let tmp = fsutil::write_temp(&path, &bytes, 0o600).map_err(|e| io_err("write", e))?;
        Ok((tmp, bytes))
    }

    /// The second half: the temp file renamed over the journal (`durable`:
    /// and the rename on disk), and `j` kept as the journal last written.
    fn commit_journal(
        &self,
        tmp: &Path,
        bytes: Vec<u8>,
        j: Journal,
        durable: bool,
    ) -> Result<(), SpoolError> {
        let path = self.journal_path();
        match durable {
            true => fsutil::commit_temp(tmp, &path),
            false => fsutil::replace_with_temp(tmp, &path),
        }
        .map_err(|source| SpoolError::Io {
            op: "rename into",
            path,
            source,
        })?;
        *self.parsed() = Some(Parsed { bytes, journal: j });
        Ok(())
    }

    /// Read-modify-write the journal under the lock.
    fn update<T>(&self, f: impl FnOnce(&mut Journal) -> T) -> Result<T, SpoolError> {
        self.update_with(true, f)
    }

    fn update_with<T>(
        &self,
        durable: bool,
        f: impl FnOnce(&mut Journal) -> T,
    ) -> Result<T, SpoolError> {
        let _lock = self.lock()?;
        let mut j = self.load()?;
        let out = f(&mut j);
        self.save_with(j, durable)?;
        Ok(out)
    }

    /// A consistent copy of the journal.
    pub fn journal(&self) -> Result<Journal, SpoolError> {
        let _lock = self.lock()?;
        self.load()
    }

    /// Sweep temp files and sealed files no journal names (a crash between
    /// writing a file and journaling it: that state is re-exported from LND).
    fn recover(&self) -> Result<(), SpoolError> {
        let _lock = self.lock()?;
        let j = self.load()?;
        let backups = self.dir.join(BACKUPS_DIR);
        let io_err = |path: &Path, source| SpoolError::Io {
            op: "clean up",
            path: path.to_path_buf(),
            source,
        };
        let mut swept = fsutil::remove_temp_files(&self.dir).map_err(|e| io_err(&self.dir, e))?;
        swept += fsutil::remove_temp_files(&backups).map_err(|e| io_err(&backups, e))?;
        // A record of a restic lock being written when the process died.
        let locks = self.dir.join(crate::state_dir::RESTIC_LOCKS_DIR);
        if locks.is_dir() {
            swept += fsutil::remove_temp_files(&locks).map_err(|e| io_err(&locks, e))?;
        }
        let known: BTreeSet<String> = j.backups.iter().map(|b| format!("{}.age", b.id)).collect();
        for entry in fs::read_dir(&backups).map_err(|e| io_err(&backups, e))? {
            let entry = entry.map_err(|e| io_err(&backups, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".age") && !known.contains(&name) {
                fs::remove_file(entry.path()).map_err(|e| io_err(&entry.path(), e))?;
                swept += 1;
            }
        }
        if swept > 0 {
            fsutil::sync_dir(&backups).map_err(|e| io_err(&backups, e))?;
            tracing::info!(files = swept, "removed files left by an interrupted write");
        }
        for b in &j.backups {
            let p = self.backup_path(&b.id);
            if !p.exists() {
                tracing::error!(backup = %b.id, path = %p.display(), "journaled backup is missing from the spool");
            }
        }
        Ok(())
    }

    /// What a target still needs (see [`Journal::pending_for`]).
    pub fn pending_for(&self, target: &str) -> Result<Vec<Pending>, SpoolError> {
        Ok(self.journal()?.pending_for(target))
    }

    /// Record a delivery. The record may be lost to a power cut (the
    /// journal comes back as it was, and the backup is delivered again:
    /// targets take a repeat), so this does not wait for the directory.
    pub fn mark_delivered(&self, target: &str, id: &str, current: bool) -> Result<(), SpoolError> {
        let now = Utc::now();
        self.update_with(false, |j| {
            if j.get(id).is_none() {
                // Pruned meanwhile; nothing to record.
                return;
            }
            let t = j.targets.entry(target.to_string()).or_default();
            t.delivered.insert(id.to_string(), now);
            if current {
                t.current = Some(id.to_string());
            }
            t.last_success = Some(now);
            t.last_attempt = Some(now);
            t.last_error = None;
            t.next_retry = None;
            t.failures = 0;
        })
    }

    pub fn mark_failed(
        &self,
        target: &str,
        error: &str,
        next_retry: DateTime<Utc>,
    ) -> Result<(), SpoolError> {
        let now = Utc::now();
        self.update(|j| {
            let t = j.targets.entry(target.to_string()).or_default();
            t.last_attempt = Some(now);
            t.last_error = Some(error.to_string());
            t.next_retry = Some(next_retry);
            t.failures += 1;
        })
    }
}

/// The spool's in-memory copies (the parsed journal, a new backup's bytes)
/// stay usable after a panic elsewhere: each is replaced whole, never left
/// half-written.
fn unpoisoned<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

mod prune;
use prune::prune;
mod store;
pub use store::{Prepared, Pruned};

#[cfg(test)]
mod tests;
