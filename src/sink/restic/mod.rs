//! The `restic` target: every delivered backup becomes one snapshot in a real
//! restic repository (local path, REST server, or an rclone remote that
//! `rclone` serves as one: see `rclone`), so that stock `restic
//! snapshots`, `check` and `restore` work on it and nothing is locked into
//! chanvault.
//!
//! ```text
//! snapshot  host "chanvault" (configurable), time = when the backup was taken
//!   tags    chanvault, channels:N, fp:<keyed fingerprint[..12]>, backup:<sha256[..12]>,
//!           seq:N, extra tags
//!   /chanvault/                      (dir, 0700)
//!   /chanvault/channel.backup.age    the age ciphertext from the spool, byte for byte
//!   /chanvault/channel.backup.json   its signed manifest (`sink::Manifest`, as the dir target's)
//!   /chanvault/padding               `privacy = "padded"` only: random bytes up to the size bucket
//! ```
//! The tags are for people and for ordering; what restore believes is the
//! signed manifest (the `seq:` tag only says which snapshot to check first).
//!
//! Snapshots are written by `writer` (restic's pack, index, tree and
//! snapshot formats; a snapshot here is always two packs, one index file
//! and the snapshot file); `rustic_core` opens the repository, lists and
//! forgets snapshots and reads them back. All of it is blocking and runs
//! under `spawn_blocking`. What we learned:
//! - the password is checked (scrypt) once per process; before each backup
//!   the config is read and decrypted, so a repository made again under us
//!   (a new master key) is opened afresh, never written with the old key;
//! - no index is read to write: chanvault's blobs never repeat, so there is
//!   nothing to deduplicate, and a `restic prune` between two backups
//!   changes nothing for the next one;
//! - the cache is off (no `~/.cache/rustic`);
//! - rustic writes no restic lock files: we write restic's (encrypted JSON in
//!   `locks/`) ourselves around each backup and wait while another host holds
//!   an exclusive lock (`restic prune`).
//!
//! Suspect backups (shrink guard) are never uploaded: `restic restore latest`
//! must always give the last good state, and restic's `latest` ignores tags.
//! They stay in the spool and in the dir targets' history.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustic_core::repofile::SnapshotFile;
use rustic_core::{
    ConfigOptions, Credentials, KeyOptions, OpenStatus, Repository, RusticError, SnapshotOptions,
};

use crate::config::ResticTargetConfig;
use crate::pipeline::short;
use crate::secret::SecretString;
use crate::sink::{BlockingTarget, Delivery, ErrorKind, Held, Receipt, TargetError};
use crate::spool::BackupRecord;

mod crypt;
mod keyfile;
mod lock;
mod proxy;
mod rclone;
mod rest;
mod rest_backend;
mod session;
#[cfg(test)]
mod tests;
mod writer;

pub use lock::parse_lock_plaintext;
use rclone::RcloneLog;
use session::{RepoKey, Session, wipe};

/// The directory every snapshot holds.
pub const SNAPSHOT_DIR: &str = "/chanvault";
/// The backup every snapshot holds.
pub const SNAPSHOT_FILE: &str = "/chanvault/channel.backup.age";
/// Its signed manifest, next to it.
pub const SNAPSHOT_MANIFEST: &str = "/chanvault/channel.backup.json";
/// On a padded target: random bytes that bring the snapshot to its size bucket.
pub const SNAPSHOT_PADDING: &str = "/chanvault/padding";
/// The tag on every chanvault snapshot.
pub const TAG: &str = "chanvault";

/// What a restic repository holds, as far as chanvault cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Full snapshot id (`restic snapshots` shows its first 8 characters).
    pub id: String,
    pub time: DateTime<Utc>,
    pub hostname: String,
    pub tags: Vec<String>,
}

impl SnapshotInfo {
    fn of(s: &SnapshotFile) -> Self {
        let secs = s.time.timestamp().as_second();
        let nanos = s.time.timestamp().subsec_nanosecond();
        Self {
            id: s.id.to_hex().to_string(),
            time: DateTime::from_timestamp(secs, nanos.max(0) as u32).unwrap_or_default(),
            hostname: s.hostname.clone(),
            tags: s.tags.iter().cloned().collect(),
        }
    }

    /// The value of a `key:value` tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
    }
}

/// A restic repository target. Cheap to clone; clones share the open session.
#[derive(Clone)]
pub struct ResticTarget {
    name: String,
    cfg: ResticTargetConfig,
    session: Arc<Mutex<Option<Session>>>,
    /// What the rclone serving an `rclone:` repository said went wrong.
    rclone_log: RcloneLog,
}

impl ResticTarget {
    pub fn new(cfg: &ResticTargetConfig) -> Self {
        Self {
            name: cfg.name.clone(),
            cfg: cfg.clone(),
            session: Arc::new(Mutex::new(None)),
            rclone_log: RcloneLog::default(),
        }
    }

    pub fn config(&self) -> &ResticTargetConfig {
        &self.cfg
    }

    /// Where the repository is, safe to print (never credentials).
    pub fn location(&self) -> &str {
        &self.cfg.repository
    }

    fn err(&self, message: impl Into<String>) -> TargetError {
        let m: String = message.into();
        TargetError::new(&self.name, m.replace(['\n', '\r'], " "))
    }

    fn rustic_err(&self, what: &str, e: &RusticError) -> TargetError {
        if has_http_cause(e)
            && let Some(e) = self.rclone_reason(what)
        {
            return e;
        }
        let mut m = e.display_log();
        if let Some(rest) = m.strip_prefix("Error: ") {
            m = rest.to_string();
        }
        self.err(format!("{what} {}: {m}", self.cfg.repository))
            .with_kind(rustic_kind(e))
    }

    /// The session, for one operation (rclone's earlier complaints are forgotten).
    fn lock_session(&self) -> MutexGuard<'_, Option<Session>> {
        let guard = self.session.lock().unwrap_or_else(|e| e.into_inner());
        self.rclone_log.clear();
        guard
    }

    /// A lock-file failure; for an `rclone:` repository in rclone's words.
    fn lock_err(&self, e: lock::LockError) -> TargetError {
        self.rclone_reason("cannot write a restic lock")
            .unwrap_or_else(|| self.err(e.message).with_kind(e.kind))
    }

    fn ours<'a>(&'a self, snaps: &'a [SnapshotFile]) -> impl Iterator<Item = &'a SnapshotFile> {
        snaps
            .iter()
            .filter(|s| s.hostname == self.cfg.host && s.tags.contains(TAG))
    }

    /// The snapshot that already holds this backup, if any: the same backup
    /// (a retry), or the same channel set as the newest snapshot (unless it
    /// is a re-seal to new recipients after an identity rotation: the newest
    /// snapshot must then be the one the new identity opens; or a cover
    /// upload, which exists to be uploaded).
    fn already_there<'a>(
        &'a self,
        snaps: &'a [SnapshotFile],
        r: &BackupRecord,
    ) -> Option<&'a SnapshotFile> {
        let backup_tag = format!("backup:{}", short(&r.id));
        let fp_tag = format!("fp:{}", short(r.published_fingerprint()));
        if let Some(s) = self.ours(snaps).find(|s| s.tags.contains(&backup_tag)) {
            return Some(s);
        }
        if r.source == "reseal" || r.source == crate::pipeline::COVER_SOURCE {
            return None;
        }
        self.ours(snaps)
            .max_by_key(|s| order(s))
            .filter(|s| s.tags.contains(&fp_tag))
    }

    fn tags(&self, r: &BackupRecord) -> String {
        let mut tags = vec![
            TAG.to_string(),
            format!("channels:{}", r.channels),
            format!("fp:{}", short(r.published_fingerprint())),
            format!("backup:{}", short(&r.id)),
        ];
        if r.signed.is_some() {
            tags.push(format!("seq:{}", r.seq));
        }
        tags.extend(self.cfg.tags.iter().cloned());
        tags.join(",")
    }

    fn put_blocking(&self, d: &Delivery) -> Result<Receipt, TargetError> {
        if !d.current || d.record.is_suspect() {
            return Ok(Receipt {
                location: "not uploaded: suspect backups stay in the spool, so that `restic restore latest` is always the last good state".into(),
            });
        }
        let t0 = std::time::Instant::now();
        let mut guard = self.lock_session();
        let s = self.refresh(&mut guard)?;
        let t_open = t0.elapsed();
        if let Some(existing) = self.already_there(&s.snapshots, &d.record) {
            return Ok(Receipt {
                location: existing.id.to_hex().to_string(),
            });
        }
        // Our lock is taken (written, then the others' looked at) while the
        // snapshot's packs are encrypted beside it: they need no repository.
        let (prepared, lock) = crate::beside::both(
            "restic-seal",
            || self.prepare(s, d),
            || s.locks.acquire(s.http.as_ref(), &s.key, &self.cfg.host),
        );
        let lock = lock.map_err(|e| self.lock_err(e))?;
        let t_lock = t0.elapsed();
        let result = prepared.and_then(|p| self.upload(s, p));
        let t_backup = t0.elapsed();
        if let Err(m) = s.locks.release(s.http.as_ref(), &lock) {
            tracing::warn!(target = %self.name, error = %m, "could not remove our restic lock (restic treats it as stale after 30 minutes)");
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        tracing::debug!(
            target = %self.name,
            open_ms = ms(t_open),
            lock_ms = ms(t_lock - t_open),
            backup_ms = ms(t_backup - t_lock),
            unlock_ms = ms(t0.elapsed() - t_backup),
            "restic stage times"
        );
        let snap = result?;
        s.snapshots.push(snap.clone());
        if let Some(n) = self.cfg.forget_keep_last {
            let kept = s.kept.take();
            if let Some(repo) = &kept {
                self.forget(repo, s, n as usize, snap.id);
            }
            s.kept = kept;
        }
        Ok(Receipt {
            location: snap.id.to_hex().to_string(),
        })
    }

    /// The snapshot of `d`, encrypted and ready to upload: no repository
    /// access, so it needs no lock.
    fn prepare(&self, s: &Session, d: &Delivery) -> Result<writer::Prepared, TargetError> {
        let time = jiff_time(d.record.created);
        let snap = SnapshotOptions::default()
            .host(self.cfg.host.clone())
            .time(time.to_zoned(rustic_core::jiff::tz::TimeZone::UTC))
            .add_tags(&self.tags(&d.record))
            .and_then(|o| o.to_snapshot())
            .map_err(|e| self.rustic_err("cannot prepare a snapshot for", &e))?;
        let manifest = serde_json::to_vec_pretty(&crate::sink::Manifest::of(&d.record))
            .map_err(|e| self.err(format!("cannot encode the manifest: {e}")))?;
        let content = (d.sealed.len() + manifest.len()) as u64;
        let padding = if self.cfg.privacy == crate::config::Privacy::Padded {
            crate::privacy::padding(crate::privacy::padding_len(content))
        } else {
            Vec::new()
        };
        // The delivery checked the sealed bytes against their id, their SHA-256.
        let mut sealed_sha256 = [0u8; 32];
        let known = hex::decode_to_slice(&d.record.id, &mut sealed_sha256).is_ok();
        let mut files = vec![
            (
                base_name(SNAPSHOT_FILE),
                d.sealed.as_slice(),
                known.then_some(sealed_sha256),
            ),
            (base_name(SNAPSHOT_MANIFEST), manifest.as_slice(), None),
        ];
        if !padding.is_empty() {
            files.push((base_name(SNAPSHOT_PADDING), padding.as_slice(), None));
        }
        let files = writer::Files {
            files,
            mtime: time,
            max_blob: writer::MAX_BLOB,
        };
        writer::prepare(&s.key, &files, snap).map_err(|e| self.write_err(e))
    }

    /// Call with our lock held: no prune can run between the packs and the
    /// snapshot that uses them.
    fn upload(&self, s: &Session, p: writer::Prepared) -> Result<SnapshotFile, TargetError> {
        let be = s.backends.repository();
        p.upload(be.as_ref()).map_err(|e| self.write_err(e))
    }

    fn write_err(&self, e: writer::WriteError) -> TargetError {
        match e {
            writer::WriteError::Repo(e) => self.rustic_err("backup to", &e),
            writer::WriteError::Local(m) => {
                self.err(format!("backup to {}: {m}", self.cfg.repository))
            }
        }
    }

    /// Opt-in retention: forget all but the newest `keep` chanvault snapshots
    /// of this host, by sequence number (then time), and never `just`, the
    /// snapshot just written: a clock that jumped ahead on an older one must
    /// not make the newest state the one forgotten. A failure (append-only
    /// server) is a warning only.
    fn forget<S: rustic_core::Open>(
        &self,
        repo: &Repository<S>,
        s: &mut Session,
        keep: usize,
        just: rustic_core::repofile::SnapshotId,
    ) {
        let mut ours: Vec<&SnapshotFile> = self.ours(&s.snapshots).collect();
        ours.sort_by_key(|x| std::cmp::Reverse(order(x)));
        let old: Vec<_> = ours
            .iter()
            .filter(|x| x.id != just)
            .skip(keep.saturating_sub(1))
            .map(|x| x.id)
            .collect();
        if old.is_empty() {
            return;
        }
        match repo.delete_snapshots(&old) {
            Ok(()) => {
                s.snapshots.retain(|x| !old.contains(&x.id));
                tracing::info!(target = %self.name, forgotten = old.len(), "forgot old snapshots (prune from a trusted host)");
            }
            Err(e) => {
                tracing::warn!(target = %self.name, error = %self.rustic_err("forget on", &e), "forget_keep_last failed; snapshots kept");
            }
        }
    }

    /// Swap the key rustic wrote at init (128 MiB to open) for one at
    /// restic's cost (32 MiB); see `keyfile`. The new key is written first.
    fn replace_key(
        &self,
        backends: &rustic_core::RepositoryBackends,
        password: &SecretString,
        key: &RepoKey,
    ) -> Result<(), TargetError> {
        use rustic_core::{FileType, Id, WriteBackend};
        let be = backends.repository();
        let old = be
            .list(FileType::Key)
            .map_err(|e| self.rustic_err("cannot list the keys of", &e))?;
        let (name, bytes) = keyfile::make(
            password.expose().as_bytes(),
            &key.0,
            Some(self.cfg.host.clone()),
        )
        .map_err(|m| self.err(format!("cannot write a key: {m}")))?;
        let id: Id = name
            .parse()
            .map_err(|e: Box<RusticError>| self.rustic_err("cannot name a key of", &e))?;
        be.write_bytes(FileType::Key, &id, false, bytes.into())
            .map_err(|e| self.rustic_err("cannot write a key to", &e))?;
        for old in old.iter().filter(|o| **o != id) {
            // An append-only server refuses; the cheaper key is tried first anyway.
            if let Err(e) = be.remove(FileType::Key, old, false) {
                tracing::info!(target = %self.name, error = %self.rustic_err("cannot remove rustic's initial key from", &e), "kept the initial key next to the cheaper one");
            }
        }
        Ok(())
    }

    /// `chanvault target init`: create the repository; an error if one exists.
    pub fn init_blocking(&self) -> Result<String, TargetError> {
        self.rclone_log.clear();
        let http = self.http()?;
        if self.exists(http.as_ref())? {
            return Err(self.err(format!(
                "{} already holds a restic repository; nothing was changed",
                self.cfg.repository
            )));
        }
        let password =
            read_secret(&self.cfg.password_file, "password_file").map_err(|m| self.err(m))?;
        let backends = self.backends(http.as_ref())?;
        let creds = Credentials::password(password.expose());
        let key_opts = KeyOptions::default().hostname(self.cfg.host.clone());
        // Ciphertext does not compress: store the backups uncompressed.
        let config_opts = ConfigOptions::default().set_compression(0);
        let made = Repository::new(&Self::repo_options(), &backends)
            .and_then(|r| r.init(&creds, &key_opts, &config_opts));
        wipe(creds);
        let repo = made.map_err(|e| self.rustic_err("cannot initialise", &e))?;
        self.replace_key(&backends, &password, &RepoKey(repo.key()))?;
        Ok(repo.config().id.to_hex().to_string())
    }

    /// Every chanvault snapshot of this host, oldest first.
    pub fn snapshots_blocking(&self) -> Result<Vec<SnapshotInfo>, TargetError> {
        let mut guard = self.lock_session();
        let (s, _repo) = self.reopen(&mut guard)?;
        let mut out: Vec<SnapshotInfo> = self.ours(&s.snapshots).map(SnapshotInfo::of).collect();
        out.sort_by_key(|x| x.time);
        Ok(out)
    }

    /// The newest chanvault snapshot and the sealed backup it holds.
    pub fn latest_blocking(&self) -> Result<Option<(SnapshotInfo, Vec<u8>)>, TargetError> {
        let mut guard = self.lock_session();
        let (s, repo) = self.reopen(&mut guard)?;
        let Some(snap) = self.ours(&s.snapshots).max_by_key(|x| order(x)).cloned() else {
            return Ok(None);
        };
        self.read_file(repo, &snap).map(Some)
    }

    /// The sealed backup in one chanvault snapshot of this host, by full id
    /// or a unique prefix (as `restic snapshots` shows it).
    pub fn snapshot_blocking(&self, id: &str) -> Result<(SnapshotInfo, Vec<u8>), TargetError> {
        let mut guard = self.lock_session();
        let (s, repo) = self.reopen(&mut guard)?;
        let found: Vec<SnapshotFile> = self
            .ours(&s.snapshots)
            .filter(|x| x.id.to_hex().starts_with(id))
            .cloned()
            .collect();
        match found.as_slice() {
            [snap] => self.read_file(repo, snap),
            [] => Err(self.err(format!(
                "no chanvault snapshot {id} in {}",
                self.cfg.repository
            ))),
            _ => Err(self.err(format!(
                "snapshot id {id} is ambiguous in {}",
                self.cfg.repository
            ))),
        }
    }

    /// The manifest file of one chanvault snapshot, if it has one
    /// (snapshots written before manifests were signed do not).
    pub fn snapshot_manifest_blocking(&self, id: &str) -> Result<Option<Vec<u8>>, TargetError> {
        let mut guard = self.lock_session();
        let (s, repo) = self.reopen(&mut guard)?;
        let Some(snap) = self
            .ours(&s.snapshots)
            .find(|x| x.id.to_hex().starts_with(id))
            .cloned()
        else {
            return Err(self.err(format!(
                "no chanvault snapshot {id} in {}",
                self.cfg.repository
            )));
        };
        let repo = repo
            .to_indexed()
            .map_err(|e| self.rustic_err("cannot read the index of", &e))?;
        let Ok(node) = repo.node_from_snapshot_and_path(&snap, SNAPSHOT_MANIFEST) else {
            return Ok(None);
        };
        if node.meta.size > crate::sink::dir::MAX_MANIFEST_BYTES {
            return Err(self.err(format!(
                "snapshot {}: {SNAPSHOT_MANIFEST} is {} bytes, more than a manifest can be",
                short(id),
                node.meta.size
            )));
        }
        let mut bytes = vec![];
        repo.dump(&node, &mut bytes)
            .map_err(|e| self.rustic_err("cannot read the manifest from", &e))?;
        Ok(Some(bytes))
    }

    fn read_file(
        &self,
        repo: Repository<OpenStatus>,
        snap: &SnapshotFile,
    ) -> Result<(SnapshotInfo, Vec<u8>), TargetError> {
        let repo = repo
            .to_indexed()
            .map_err(|e| self.rustic_err("cannot read the index of", &e))?;
        let node = repo
            .node_from_snapshot_and_path(snap, SNAPSHOT_FILE)
            .map_err(|e| self.rustic_err("cannot find the backup in", &e))?;
        let mut bytes = vec![];
        repo.dump(&node, &mut bytes)
            .map_err(|e| self.rustic_err("cannot read the backup from", &e))?;
        Ok((SnapshotInfo::of(snap), bytes))
    }
}

impl BlockingTarget for ResticTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "restic"
    }

    fn put(&self, d: &Delivery) -> Result<Receipt, TargetError> {
        self.put_blocking(d)
    }

    fn location(&self) -> String {
        ResticTarget::location(self).to_owned()
    }

    fn create_blocking(&self) -> Result<Option<String>, TargetError> {
        self.init_blocking().map(Some)
    }

    /// The snapshots that carry a `backup:` tag, described by their tags
    /// (suspect backups are never uploaded).
    fn list_blocking(&self) -> Result<Vec<Held>, TargetError> {
        let mut held: Vec<Held> = self
            .snapshots_blocking()?
            .into_iter()
            .filter_map(|s| {
                let id = s.tag("backup")?.to_owned();
                Some(Held {
                    id: id.clone(),
                    created: s.time,
                    channels: s.tag("channels").and_then(|c| c.parse().ok()).unwrap_or(0),
                    fingerprint: s.tag("fp").unwrap_or_default().to_owned(),
                    sealed_sha256: id,
                    suspect: None,
                    label: Some(s.id.chars().take(8).collect()),
                    seq: s.tag("seq").and_then(|n| n.parse().ok()),
                    locator: s.id,
                    published_in: "snapshot tag",
                })
            })
            .collect();
        held.sort_by_key(|h| std::cmp::Reverse((h.seq, h.created)));
        Ok(held)
    }

    fn fetch_blocking(&self, locator: &str) -> Result<Vec<u8>, TargetError> {
        self.snapshot_blocking(locator).map(|(_, bytes)| bytes)
    }

    fn fetch_manifest_blocking(
        &self,
        locator: &str,
    ) -> Result<Option<crate::sink::Manifest>, TargetError> {
        let Some(bytes) = self.snapshot_manifest_blocking(locator)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            self.err(format!(
                "snapshot {}: {SNAPSHOT_MANIFEST} is damaged: {e}",
                short(locator)
            ))
        })
    }
}

/// The class of a rustic error, from the HTTP or file error under it: the
/// REST backend fails with reqwest's errors, the local one with io errors.
fn rustic_kind(e: &RusticError) -> ErrorKind {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<reqwest::Error>() {
            if h.is_timeout() {
                return ErrorKind::Timeout;
            }
            if h.is_connect() {
                return ErrorKind::Unreachable;
            }
            if h.status().is_some_and(|s| s.is_client_error()) {
                return ErrorKind::Refused;
            }
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return ErrorKind::of_io(io);
        }
        cause = c.source();
    }
    ErrorKind::Other
}

/// Did the REST backend fail talking to the server (and not, say, on a
/// damaged file)? Only then is rclone's own complaint the reason.
fn has_http_cause(e: &RusticError) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<reqwest::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// A secret from a file of its own, trimmed like restic's `--password-file`.
fn read_secret(path: &Path, key: &str) -> Result<SecretString, String> {
    crate::secret::read_secret_line(path).map_err(|e| match e {
        crate::secret::SecretFileError::Io(e) => {
            format!("cannot read {key} {}: {e}", path.display())
        }
        other => format!("{key} {} {other}", path.display()),
    })
}

/// The order of a chanvault snapshot: its `seq:` tag, then its time.
fn order(s: &SnapshotFile) -> (u64, i128) {
    let seq = s
        .tags
        .iter()
        .find_map(|t| t.strip_prefix("seq:")?.parse().ok())
        .unwrap_or(0);
    (seq, s.time.timestamp().as_nanosecond())
}

/// The last part of a path in the snapshot (`/chanvault/padding`: `padding`).
fn base_name(path: &'static str) -> &'static str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

fn jiff_time(t: DateTime<Utc>) -> rustic_core::jiff::Timestamp {
    rustic_core::jiff::Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32)
        .unwrap_or_else(|_| rustic_core::jiff::Timestamp::now())
}
