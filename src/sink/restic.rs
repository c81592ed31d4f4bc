//! The `restic` target: every delivered backup becomes one snapshot in a real
//! restic repository (local path or REST server), so that stock `restic
//! snapshots`, `check` and `restore` work on it and nothing is locked into
//! chanvault.
//!
//! ```text
//! snapshot  host "chanvault" (configurable), time = when the backup was taken
//!   tags    chanvault, channels:N, fp:<fingerprint[..12]>, backup:<sha256[..12]>, extra tags
//!   /chanvault/                      (dir, 0700)
//!   /chanvault/channel.backup.age    the age ciphertext from the spool, byte for byte
//! ```
//!
//! The restic format is written by `rustic_core`, which is blocking; every
//! repository operation runs under `spawn_blocking`. What we learned using it:
//! - the password is checked (scrypt) once per process; afterwards the
//!   repository is re-opened with the master key before each backup, so a
//!   `restic prune` on another host between two backups is always seen;
//! - `archive()` only warns when a read fails, so the summary is checked;
//! - parent lookup is off and the cache is off (no `~/.cache/rustic`);
//! - rustic writes no restic lock files: we write restic's (encrypted JSON in
//!   `locks/`) ourselves around each backup and wait while another host holds
//!   an exclusive lock (`restic prune`).
//!
//! Suspect backups (shrink guard) are never uploaded: `restic restore latest`
//! must always give the last good state, and restic's `latest` ignores tags.
//! They stay in the spool and in the dir targets' history.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use rustic_core::repofile::{IndexId, MasterKey, Metadata, Node, NodeType, SnapshotFile};
use rustic_core::{
    BackupOptions, ConfigOptions, Credentials, IndexedIdsStatus, KeyOptions, OpenStatus,
    ParentOptions, ReadSource, ReadSourceEntry, Repository, RepositoryBackends, RepositoryOptions,
    RusticError, RusticResult, SnapshotOptions, WriteBackend,
};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::config::ResticTargetConfig;
use crate::pipeline::short;
use crate::secret::SecretString;
use crate::sink::{BlockingTarget, Delivery, Receipt, TargetError};
use crate::spool::BackupRecord;

/// The directory every snapshot holds.
pub const SNAPSHOT_DIR: &str = "/chanvault";
/// The one file every snapshot holds.
pub const SNAPSHOT_FILE: &str = "/chanvault/channel.backup.age";
/// The tag on every chanvault snapshot.
pub const TAG: &str = "chanvault";
/// Go's `os.ModeDir`, which restic stores in a node's mode.
const GO_MODE_DIR: u32 = 1 << 31;
/// restic treats a lock older than this as stale.
const LOCK_STALE: Duration = Duration::from_secs(30 * 60);
/// How long one delivery waits for another host's exclusive lock.
const LOCK_WAIT: Duration = Duration::from_secs(30);
const LOCK_POLL: Duration = Duration::from_secs(2);
/// Largest lock file read, before and after decompression (restic's are ~300 bytes).
const MAX_LOCK_BYTES: u64 = 64 * 1024;
/// restic's REST protocol v2 listing.
const REST_V2: &str = "application/vnd.x.restic.rest.v2";

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
}

/// The repository as opened once per process.
struct Session {
    key: RepoKey,
    backends: RepositoryBackends,
    locks: LockStore,
    http: Option<Http>,
    /// Snapshots seen so far (updated from the repository before each backup).
    snapshots: Vec<SnapshotFile>,
    /// The repository with its index, kept between backups; see [`Indexed`].
    indexed: Option<Indexed>,
}

/// Reading the whole index costs one GET and a decrypt per index file, and
/// every backup adds one: kept fresh, a year of channel events would make
/// each backup slower than the last. chanvault's blobs never repeat (a fresh
/// age file key each time), so an index missing newer entries only forgoes
/// deduplication that cannot happen. What must not happen is relying on a
/// blob that is gone: `prune` (and `repair index`) rewrite the index and
/// delete the old index files, so the kept index is used only while every
/// index file it was read from still exists, checked under our lock.
struct Indexed {
    repo: Repository<IndexedIdsStatus>,
    read_from: BTreeSet<IndexId>,
}

/// The repository master key. No `Debug`; wiped on drop.
struct RepoKey(MasterKey);

impl RepoKey {
    fn credentials(&self) -> Credentials {
        Credentials::Masterkey(self.0.clone())
    }

    /// The 64-byte AES-256-CTR + Poly1305-AES key in restic's layout.
    fn aead_key(&self) -> Zeroizing<Vec<u8>> {
        let mut k = Zeroizing::new(Vec::with_capacity(64));
        k.extend_from_slice(&self.0.encrypt);
        k.extend_from_slice(&self.0.mac.k);
        k.extend_from_slice(&self.0.mac.r);
        k
    }
}

fn wipe_key(k: &mut MasterKey) {
    k.encrypt.zeroize();
    k.mac.k.zeroize();
    k.mac.r.zeroize();
}

fn wipe(creds: Credentials) {
    match creds {
        Credentials::Masterkey(mut k) => wipe_key(&mut k),
        Credentials::Password(mut p) => p.zeroize(),
    }
}

impl Drop for RepoKey {
    fn drop(&mut self) {
        wipe_key(&mut self.0);
    }
}

/// The REST server as we talk to it directly (probe and lock files).
struct Http {
    client: reqwest::blocking::Client,
    /// Base URL with a trailing slash and without credentials.
    base: reqwest::Url,
    auth: Option<(String, SecretString)>,
}

impl Http {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let url = self.base.join(path).unwrap_or_else(|_| self.base.clone());
        let rb = self.client.request(method, url);
        match &self.auth {
            Some((user, pass)) => rb.basic_auth(user, Some(pass.expose())),
            None => rb,
        }
    }
}

impl ResticTarget {
    pub fn new(cfg: &ResticTargetConfig) -> Self {
        Self {
            name: cfg.name.clone(),
            cfg: cfg.clone(),
            session: Arc::new(Mutex::new(None)),
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
        let mut m = e.display_log();
        if let Some(rest) = m.strip_prefix("Error: ") {
            m = rest.to_string();
        }
        self.err(format!("{what} {}: {m}", self.cfg.repository))
    }

    fn lock_session(&self) -> MutexGuard<'_, Option<Session>> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ----- opening -------------------------------------------------------

    /// Per HTTP request (packs here are tiny); `timeout_seconds` in the config.
    fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.timeout_seconds)
    }

    fn http(&self) -> Result<Option<Http>, TargetError> {
        let Some(url) = self.cfg.repository.strip_prefix("rest:") else {
            return Ok(None);
        };
        let url = if url.ends_with('/') {
            url.to_string()
        } else {
            format!("{url}/")
        };
        let base = reqwest::Url::parse(&url)
            .map_err(|e| self.err(format!("repository {url} is not a valid URL: {e}")))?;
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(self.request_timeout())
            .user_agent(concat!("chanvault/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &self.cfg.cacert {
            let pem = std::fs::read(ca)
                .map_err(|e| self.err(format!("cannot read cacert {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                self.err(format!(
                    "cacert {} is not a PEM certificate: {e}",
                    ca.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(self.err(format!("cacert {} holds no PEM certificate", ca.display())));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder
            .build()
            .map_err(|e| self.err(format!("cannot set up the HTTP client: {e}")))?;
        let auth = match &self.cfg.http_credentials_file {
            None => None,
            Some(p) => {
                let line = read_secret(p, "http_credentials_file").map_err(|m| self.err(m))?;
                let Some((user, pass)) = line.expose().split_once(':') else {
                    return Err(self.err(format!(
                        "http_credentials_file {} must hold `user:password` on one line",
                        p.display()
                    )));
                };
                Some((user.to_string(), SecretString::new(pass.to_string())))
            }
        };
        Ok(Some(Http { client, base, auth }))
    }

    /// A clear error for a REST failure (the URL never carries credentials).
    fn http_err(&self, what: &str, e: reqwest::Error) -> TargetError {
        let (is_connect, is_timeout) = (e.is_connect(), e.is_timeout());
        let chain = crate::lnd::error_chain(&e.without_url());
        let lower = chain.to_lowercase();
        let repo = &self.cfg.repository;
        if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
            let hint = if self.cfg.cacert.is_some() {
                "the server's certificate does not match cacert"
            } else {
                "set cacert to the server's certificate if it is self-signed"
            };
            return self.err(format!(
                "TLS with the REST server {repo} failed ({chain}): {hint}"
            ));
        }
        if is_connect {
            return self.err(format!(
                "cannot reach the REST server {repo} ({chain}); is it running?"
            ));
        }
        if is_timeout {
            return self.err(format!(
                "the REST server {repo} did not answer within {}s",
                self.cfg.timeout_seconds
            ));
        }
        self.err(format!("{what} on the REST server {repo} failed: {chain}"))
    }

    fn status_err(&self, what: &str, status: StatusCode) -> TargetError {
        let repo = &self.cfg.repository;
        match status {
            StatusCode::UNAUTHORIZED => self.err(match &self.cfg.http_credentials_file {
                Some(p) => format!(
                    "the REST server {repo} refused the credentials in {} (HTTP 401)",
                    p.display()
                ),
                None => format!(
                    "the REST server {repo} wants credentials (HTTP 401): set http_credentials_file"
                ),
            }),
            StatusCode::FORBIDDEN => self.err(format!(
                "the REST server {repo} forbids {what} (HTTP 403): check its --private-repos/--append-only setup"
            )),
            s => self.err(format!("{what} on the REST server {repo}: HTTP {s}")),
        }
    }

    fn missing(&self) -> TargetError {
        self.err(format!(
            "no restic repository at {}: create it with `chanvault target init {}` (or `restic init`)",
            self.cfg.repository, self.name
        ))
    }

    /// Is there a repository? Errors are the clear ones (unreachable, TLS, 401).
    fn exists(&self, http: Option<&Http>) -> Result<bool, TargetError> {
        match http {
            Some(h) => {
                let r = h
                    .request(reqwest::Method::HEAD, "config")
                    .send()
                    .map_err(|e| self.http_err("reading the config", e))?;
                match r.status() {
                    s if s.is_success() => Ok(true),
                    StatusCode::NOT_FOUND => Ok(false),
                    s => Err(self.status_err("reading the config", s)),
                }
            }
            None => {
                let p = Path::new(&self.cfg.repository).join("config");
                match std::fs::metadata(&p) {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(self.err(format!("cannot read {}: {e}", p.display()))),
                }
            }
        }
    }

    fn backends(&self, http: Option<&Http>) -> Result<RepositoryBackends, TargetError> {
        let be: Arc<dyn WriteBackend> = match http {
            Some(h) => {
                let mut url = h.base.clone();
                if let Some((user, pass)) = &h.auth {
                    // reqwest moves URL credentials into a basic-auth header and
                    // out of the URL before any error could show them.
                    url.set_username(user)
                        .and_then(|()| url.set_password(Some(pass.expose())))
                        .map_err(|()| self.err("the REST URL cannot carry credentials"))?;
                }
                let url = Zeroizing::new(url.to_string());
                let mut opts = vec![
                    ("retry".to_string(), "1".to_string()),
                    (
                        "timeout".to_string(),
                        format!("{}s", self.cfg.timeout_seconds),
                    ),
                ];
                if let Some(ca) = &self.cfg.cacert {
                    opts.push(("cacert".to_string(), ca.display().to_string()));
                }
                Arc::new(
                    rustic_backend::RestBackend::new(url.as_str(), opts)
                        .map_err(|e| self.rustic_err("cannot use", &e))?,
                )
            }
            None => Arc::new(
                rustic_backend::LocalBackend::new(&self.cfg.repository, BTreeMap::new())
                    .map_err(|e| self.rustic_err("cannot use", &e))?,
            ),
        };
        Ok(RepositoryBackends::new(be, None))
    }

    fn repo_options() -> RepositoryOptions {
        RepositoryOptions::default().no_cache(true)
    }

    fn lock_store(&self, http: Option<&Http>) -> LockStore {
        match http {
            Some(_) => LockStore::Rest,
            None => LockStore::Local(Path::new(&self.cfg.repository).join("locks")),
        }
    }

    /// Check the password (scrypt: once per process) and keep the master key.
    fn open_session(&self) -> Result<Session, TargetError> {
        let http = self.http()?;
        if !self.exists(http.as_ref())? {
            return Err(self.missing());
        }
        let password =
            read_secret(&self.cfg.password_file, "password_file").map_err(|m| self.err(m))?;
        let backends = self.backends(http.as_ref())?;
        let repo = Repository::new(&Self::repo_options(), &backends)
            .map_err(|e| self.rustic_err("cannot use", &e))?;
        let creds = Credentials::password(password.expose());
        let opened = repo.open(&creds);
        wipe(creds);
        let repo = opened.map_err(|e| {
            if e.is_incorrect_password() {
                self.err(format!(
                    "wrong repository password: {} opens no key of {}",
                    self.cfg.password_file.display(),
                    self.cfg.repository
                ))
            } else {
                self.rustic_err("cannot open", &e)
            }
        })?;
        let key = RepoKey(repo.key());
        let snapshots = repo
            .get_all_snapshots()
            .map_err(|e| self.rustic_err("cannot list the snapshots of", &e))?;
        tracing::info!(
            target = %self.name,
            repository = %self.cfg.repository,
            snapshots = snapshots.len(),
            "restic repository opened"
        );
        let locks = self.lock_store(http.as_ref());
        match locks.remove_dead(http.as_ref(), &key) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                target = %self.name,
                removed = n,
                "removed restic locks left by processes of ours that died on this host (as `restic unlock` would)"
            ),
            Err(e) => {
                tracing::warn!(target = %self.name, error = %e, "could not look for stale restic locks")
            }
        }
        Ok(Session {
            key,
            backends,
            locks,
            http,
            snapshots,
            indexed: None,
        })
    }

    /// Open the repository once; afterwards re-open it with the master key
    /// (milliseconds) and refresh the snapshot list.
    fn reopen<'s>(
        &self,
        guard: &'s mut Option<Session>,
    ) -> Result<(&'s mut Session, Repository<OpenStatus>), TargetError> {
        if guard.is_none() {
            *guard = Some(self.open_session()?);
        }
        let Some(s) = guard.as_mut() else {
            return Err(self.err("internal: no session"));
        };
        if !self.exists(s.http.as_ref())? {
            return Err(self.missing());
        }
        let repo = self.open_repo(s)?;
        let known = std::mem::take(&mut s.snapshots);
        s.snapshots = repo
            .update_all_snapshots(known)
            .map_err(|e| self.rustic_err("cannot list the snapshots of", &e))?;
        Ok((s, repo))
    }

    /// Open the repository with the session's master key (no scrypt).
    fn open_repo(&self, s: &Session) -> Result<Repository<OpenStatus>, TargetError> {
        let creds = s.key.credentials();
        let opened =
            Repository::new(&Self::repo_options(), &s.backends).and_then(|r| r.open(&creds));
        wipe(creds);
        opened.map_err(|e| self.rustic_err("cannot open", &e))
    }

    /// For a backup: the session with a fresh snapshot list. With a kept
    /// index the repository is not opened again (config, key listing): the
    /// kept one serves, and a repository replaced under us fails on its key,
    /// which drops the kept index.
    fn refresh<'s>(
        &self,
        guard: &'s mut Option<Session>,
    ) -> Result<(&'s mut Session, Option<Repository<OpenStatus>>), TargetError> {
        if guard.as_ref().is_none_or(|s| s.indexed.is_none()) {
            let (s, repo) = self.reopen(guard)?;
            return Ok((s, Some(repo)));
        }
        let Some(s) = guard.as_mut() else {
            return Err(self.err("internal: no session"));
        };
        if !self.exists(s.http.as_ref())? {
            s.indexed = None;
            return Err(self.missing());
        }
        let known = std::mem::take(&mut s.snapshots);
        let refreshed = match &s.indexed {
            Some(k) => k.repo.update_all_snapshots(known),
            None => return Err(self.err("internal: no kept index")),
        };
        match refreshed {
            Ok(list) => s.snapshots = list,
            Err(e) => {
                s.indexed = None;
                return Err(self.rustic_err("cannot list the snapshots of", &e));
            }
        }
        Ok((s, None))
    }

    fn ours<'a>(&'a self, snaps: &'a [SnapshotFile]) -> impl Iterator<Item = &'a SnapshotFile> {
        snaps
            .iter()
            .filter(|s| s.hostname == self.cfg.host && s.tags.contains(TAG))
    }

    /// The snapshot that already holds this backup, if any: the same backup
    /// (a retry), or the same channel set as the newest snapshot (unless it
    /// is a re-seal to new recipients after an identity rotation: the newest
    /// snapshot must then be the one the new identity opens).
    fn already_there<'a>(
        &'a self,
        snaps: &'a [SnapshotFile],
        r: &BackupRecord,
    ) -> Option<&'a SnapshotFile> {
        let backup_tag = format!("backup:{}", short(&r.id));
        let fp_tag = format!("fp:{}", short(&r.fingerprint));
        if let Some(s) = self.ours(snaps).find(|s| s.tags.contains(&backup_tag)) {
            return Some(s);
        }
        if r.source == "reseal" {
            return None;
        }
        self.ours(snaps)
            .max_by_key(|s| s.time.timestamp())
            .filter(|s| s.tags.contains(&fp_tag))
    }

    fn tags(&self, r: &BackupRecord) -> String {
        let mut tags = vec![
            TAG.to_string(),
            format!("channels:{}", r.channels),
            format!("fp:{}", short(&r.fingerprint)),
            format!("backup:{}", short(&r.id)),
        ];
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
        let (s, repo) = self.refresh(&mut guard)?;
        let t_open = t0.elapsed();
        if let Some(existing) = self.already_there(&s.snapshots, &d.record) {
            return Ok(Receipt {
                location: existing.id.to_hex().to_string(),
            });
        }
        let lock = s
            .locks
            .acquire(s.http.as_ref(), &s.key, &self.cfg.host)
            .map_err(|m| self.err(m))?;
        let t_lock = t0.elapsed();
        let result = self.backup(repo, s, d);
        if result.is_err() {
            // Whatever went wrong, read the index afresh next time.
            s.indexed = None;
        }
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
            let indexed = s.indexed.take();
            if let Some(ix) = &indexed {
                self.forget(&ix.repo, s, n as usize);
            }
            s.indexed = indexed;
        }
        Ok(Receipt {
            location: snap.id.to_hex().to_string(),
        })
    }

    /// Call with our lock held: no prune can run between the index check and the snapshot.
    fn backup(
        &self,
        repo: Option<Repository<OpenStatus>>,
        s: &mut Session,
        d: &Delivery,
    ) -> Result<SnapshotFile, TargetError> {
        let t0 = std::time::Instant::now();
        let listed = match (&repo, &s.indexed) {
            (Some(r), _) => r.list::<IndexId>().map(|i| i.collect::<BTreeSet<_>>()),
            (None, Some(k)) => k.repo.list::<IndexId>().map(|i| i.collect()),
            (None, None) => return Err(self.err("internal: no repository")),
        };
        let present = listed.map_err(|e| self.rustic_err("cannot list the index of", &e))?;
        let kept = &mut s.indexed;
        let fresh = match kept.as_ref() {
            Some(k) if k.read_from.is_subset(&present) => false,
            Some(_) => {
                tracing::info!(target = %self.name, "the repository's index was rewritten (prune?); reading it afresh");
                true
            }
            None => true,
        };
        if fresh {
            let repo = match repo {
                Some(r) => r,
                None => self.open_repo(s)?,
            };
            let repo = repo
                .to_indexed_ids()
                .map_err(|e| self.rustic_err("cannot read the index of", &e))?;
            s.indexed = Some(Indexed {
                repo,
                read_from: present,
            });
        }
        let Some(Indexed { repo, .. }) = s.indexed.as_ref() else {
            return Err(self.err("internal: no index"));
        };
        tracing::trace!(target = %self.name, fresh, index_ms = t0.elapsed().as_secs_f64() * 1e3, "restic index ready");
        let time = jiff_time(d.record.created);
        let snap = SnapshotOptions::default()
            .host(self.cfg.host.clone())
            .time(time.to_zoned(rustic_core::jiff::tz::TimeZone::UTC))
            .add_tags(&self.tags(&d.record))
            .and_then(|o| o.to_snapshot())
            .map_err(|e| self.rustic_err("cannot prepare a snapshot for", &e))?;
        let opts = BackupOptions::default()
            .no_scan(true)
            .parent_opts(ParentOptions::default().force(true));
        let src = SealedSource {
            bytes: d.sealed.to_vec(),
            mtime: time,
        };
        let snap = repo
            .archive(&opts, &src, snap, &[PathBuf::from(SNAPSHOT_DIR)])
            .map_err(|e| self.rustic_err("backup to", &e))?;
        let files = snap.summary.as_ref().map_or(0, |s| s.total_files_processed);
        if files != 1 {
            // Never leave a snapshot without the backup as `latest`.
            let removed = repo.delete_snapshots(&[snap.id]).is_ok();
            return Err(self.err(format!(
                "snapshot {} holds {files} files instead of {SNAPSHOT_FILE}; {}",
                short(&snap.id.to_hex()),
                if removed {
                    "it was removed and the backup will be retried"
                } else {
                    "it could not be removed (append-only?): forget it from a trusted host"
                }
            )));
        }
        Ok(snap)
    }

    /// Opt-in retention: forget all but the newest `keep` chanvault snapshots
    /// of this host. A failure (append-only server) is a warning only.
    fn forget<S: rustic_core::Open>(&self, repo: &Repository<S>, s: &mut Session, keep: usize) {
        let mut ours: Vec<&SnapshotFile> = self.ours(&s.snapshots).collect();
        ours.sort_by_key(|x| std::cmp::Reverse(x.time.timestamp()));
        let old: Vec<_> = ours.iter().skip(keep).map(|x| x.id).collect();
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

    /// `chanvault target init`: create the repository; an error if one exists.
    pub fn init_blocking(&self) -> Result<String, TargetError> {
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
        Ok(repo.config().id.to_hex().to_string())
    }

    /// Create the repository (see [`Self::init_blocking`]).
    pub async fn init(&self) -> Result<String, TargetError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.init_blocking())
            .await
            .map_err(|e| self.err(format!("init task failed: {e}")))?
    }

    /// Every chanvault snapshot of this host, oldest first.
    pub fn snapshots_blocking(&self) -> Result<Vec<SnapshotInfo>, TargetError> {
        let mut guard = self.lock_session();
        let (s, _repo) = self.reopen(&mut guard)?;
        let mut out: Vec<SnapshotInfo> = self.ours(&s.snapshots).map(SnapshotInfo::of).collect();
        out.sort_by_key(|x| x.time);
        Ok(out)
    }

    /// See [`Self::snapshots_blocking`].
    pub async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, TargetError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.snapshots_blocking())
            .await
            .map_err(|e| self.err(format!("listing task failed: {e}")))?
    }

    /// The newest chanvault snapshot and the sealed backup it holds.
    pub fn latest_blocking(&self) -> Result<Option<(SnapshotInfo, Vec<u8>)>, TargetError> {
        let mut guard = self.lock_session();
        let (s, repo) = self.reopen(&mut guard)?;
        let Some(snap) = self
            .ours(&s.snapshots)
            .max_by_key(|x| x.time.timestamp())
            .cloned()
        else {
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

    /// See [`Self::snapshot_blocking`].
    pub async fn snapshot(&self, id: &str) -> Result<(SnapshotInfo, Vec<u8>), TargetError> {
        let (this, id) = (self.clone(), id.to_owned());
        tokio::task::spawn_blocking(move || this.snapshot_blocking(&id))
            .await
            .map_err(|e| self.err(format!("read task failed: {e}")))?
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

    /// See [`Self::latest_blocking`].
    pub async fn latest(&self) -> Result<Option<(SnapshotInfo, Vec<u8>)>, TargetError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.latest_blocking())
            .await
            .map_err(|e| self.err(format!("read task failed: {e}")))?
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
}

/// A secret from the first line of a file, trimmed like restic's `--password-file`.
fn read_secret(path: &Path, key: &str) -> Result<SecretString, String> {
    let bytes = Zeroizing::new(
        std::fs::read(path).map_err(|e| format!("cannot read {key} {}: {e}", path.display()))?,
    );
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| format!("{key} {} is not UTF-8 text", path.display()))?;
    let line = text.trim();
    if line.is_empty() {
        return Err(format!("{key} {} is empty", path.display()));
    }
    Ok(SecretString::new(line.to_string()))
}

fn jiff_time(t: DateTime<Utc>) -> rustic_core::jiff::Timestamp {
    rustic_core::jiff::Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32)
        .unwrap_or_else(|_| rustic_core::jiff::Timestamp::now())
}

// ----- the in-memory source ---------------------------------------------

/// One directory and one file, in the order restic needs: the parent
/// directory entry first, or restic restores it with a 1901 mtime.
struct SealedSource {
    bytes: Vec<u8>,
    mtime: rustic_core::jiff::Timestamp,
}

type Entry = RusticResult<ReadSourceEntry<Cursor<Vec<u8>>>>;

impl SealedSource {
    fn meta(&self, mode: u32, size: u64) -> Metadata {
        Metadata {
            mode: Some(mode),
            mtime: Some(self.mtime),
            atime: Some(self.mtime),
            ctime: Some(self.mtime),
            size,
            ..Metadata::default()
        }
    }
}

impl ReadSource for SealedSource {
    type Open = Cursor<Vec<u8>>;
    type Iter = std::vec::IntoIter<Entry>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(Some(self.bytes.len() as u64))
    }

    fn entries(&self) -> Self::Iter {
        let dir_name = Path::new(SNAPSHOT_DIR)
            .file_name()
            .unwrap_or(OsStr::new("chanvault"));
        let file_name = Path::new(SNAPSHOT_FILE)
            .file_name()
            .unwrap_or(OsStr::new("channel.backup.age"));
        vec![
            Ok(ReadSourceEntry {
                path: PathBuf::from(SNAPSHOT_DIR),
                node: Node::new_node(dir_name, NodeType::Dir, self.meta(GO_MODE_DIR | 0o700, 0)),
                open: None,
            }),
            Ok(ReadSourceEntry {
                path: PathBuf::from(SNAPSHOT_FILE),
                node: Node::new_node(
                    file_name,
                    NodeType::File,
                    self.meta(0o600, self.bytes.len() as u64),
                ),
                open: Some(Cursor::new(self.bytes.clone())),
            }),
        ]
        .into_iter()
    }
}

// ----- restic lock files --------------------------------------------------

/// restic's lock file (`internal/restic/lock.go`), stored encrypted in `locks/`.
#[derive(Debug, Serialize, Deserialize)]
struct LockFile {
    time: String,
    exclusive: bool,
    hostname: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    pid: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    uid: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    gid: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// Where lock files live: a local repository's `locks/` or the REST server's.
enum LockStore {
    Local(PathBuf),
    Rest,
}

fn rest(http: Option<&Http>) -> Result<&Http, String> {
    http.ok_or_else(|| "internal: REST lock store without a client".to_string())
}

impl LockStore {
    fn put(&self, http: Option<&Http>, name: &str, bytes: &[u8]) -> Result<(), String> {
        match self {
            LockStore::Local(dir) => {
                crate::fsutil::ensure_dir(dir, 0o700)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let p = dir.join(name);
                crate::fsutil::write_atomic(&p, bytes, 0o600)
                    .map_err(|e| format!("cannot write the lock {}: {e}", p.display()))
            }
            LockStore::Rest => {
                let h = rest(http)?;
                let r = h
                    .request(reqwest::Method::POST, &format!("locks/{name}"))
                    .body(bytes.to_vec())
                    .send()
                    .map_err(|e| {
                        format!(
                            "cannot write a lock: {}",
                            crate::lnd::error_chain(&e.without_url())
                        )
                    })?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("cannot write a lock: HTTP {}", r.status()))
                }
            }
        }
    }

    fn delete(&self, http: Option<&Http>, name: &str) -> Result<(), String> {
        match self {
            LockStore::Local(dir) => match std::fs::remove_file(dir.join(name)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(format!("cannot remove the lock {name}: {e}")),
            },
            LockStore::Rest => {
                let h = rest(http)?;
                let r = h
                    .request(reqwest::Method::DELETE, &format!("locks/{name}"))
                    .send()
                    .map_err(|e| {
                        format!(
                            "cannot remove the lock {name}: {}",
                            crate::lnd::error_chain(&e.without_url())
                        )
                    })?;
                if r.status().is_success() || r.status() == StatusCode::NOT_FOUND {
                    Ok(())
                } else {
                    Err(format!(
                        "cannot remove the lock {name}: HTTP {}",
                        r.status()
                    ))
                }
            }
        }
    }

    fn list(&self, http: Option<&Http>) -> Result<Vec<String>, String> {
        match self {
            LockStore::Local(dir) => match std::fs::read_dir(dir) {
                Ok(rd) => Ok(rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.len() == 64 && n.bytes().all(|c| c.is_ascii_hexdigit()))
                    .collect()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
                Err(e) => Err(format!("cannot list {}: {e}", dir.display())),
            },
            LockStore::Rest => {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Item {
                    V2 { name: String },
                    V1(String),
                }
                let h = rest(http)?;
                let r = h
                    .request(reqwest::Method::GET, "locks/")
                    .header("Accept", REST_V2)
                    .send()
                    .map_err(|e| {
                        format!(
                            "cannot list the locks: {}",
                            crate::lnd::error_chain(&e.without_url())
                        )
                    })?;
                if r.status() == StatusCode::NOT_FOUND {
                    return Ok(vec![]);
                }
                if !r.status().is_success() {
                    return Err(format!("cannot list the locks: HTTP {}", r.status()));
                }
                let body = r
                    .bytes()
                    .map_err(|e| format!("cannot list the locks: {e}"))?;
                let items: Vec<Item> = serde_json::from_slice(&body)
                    .map_err(|e| format!("cannot list the locks: {e}"))?;
                Ok(items
                    .into_iter()
                    .map(|i| match i {
                        Item::V2 { name } | Item::V1(name) => name,
                    })
                    .collect())
            }
        }
    }

    fn get(&self, http: Option<&Http>, name: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            LockStore::Local(dir) => match std::fs::read(dir.join(name)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("cannot read the lock {name}: {e}")),
            },
            LockStore::Rest => {
                let h = rest(http)?;
                let r = h
                    .request(reqwest::Method::GET, &format!("locks/{name}"))
                    .send()
                    .map_err(|e| {
                        format!(
                            "cannot read the lock {name}: {}",
                            crate::lnd::error_chain(&e.without_url())
                        )
                    })?;
                if r.status() == StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                if !r.status().is_success() {
                    return Err(format!("cannot read the lock {name}: HTTP {}", r.status()));
                }
                // A lock file is a few hundred bytes; a server sending more is not read to the end.
                let mut body = Vec::new();
                std::io::Read::take(r, MAX_LOCK_BYTES + 1)
                    .read_to_end(&mut body)
                    .map_err(|e| format!("cannot read the lock {name}: {e}"))?;
                if body.len() as u64 > MAX_LOCK_BYTES {
                    return Err(format!(
                        "the lock {name} is larger than {MAX_LOCK_BYTES} bytes; not a restic lock"
                    ));
                }
                Ok(Some(body))
            }
        }
    }

    /// Take a non-exclusive lock as restic does: write ours, then look for an
    /// exclusive one; if there is one, withdraw and wait.
    fn acquire(&self, http: Option<&Http>, key: &RepoKey, host: &str) -> Result<String, String> {
        let start = Instant::now();
        loop {
            let lock = LockFile {
                time: Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true),
                exclusive: false,
                hostname: system_hostname().unwrap_or_else(|| host.to_string()),
                username: std::env::var("USER").unwrap_or_else(|_| "chanvault".into()),
                pid: i64::from(std::process::id()),
                uid: proc_owner().0,
                gid: proc_owner().1,
            };
            let json =
                serde_json::to_vec(&lock).map_err(|e| format!("cannot encode a lock: {e}"))?;
            let sealed = encrypt(key, &json)?;
            let name = crate::scb::sha256_hex(&sealed);
            self.put(http, &name, &sealed)?;
            match self.exclusive_holder(http, key, &name) {
                Ok(None) => return Ok(name),
                Ok(Some(holder)) => {
                    let _ = self.delete(http, &name);
                    if start.elapsed() >= LOCK_WAIT {
                        return Err(format!(
                            "the repository is locked exclusively by {holder} (restic prune/check?); the backup is retried later"
                        ));
                    }
                    tracing::info!(holder = %holder, "restic repository is locked exclusively; waiting");
                    std::thread::sleep(LOCK_POLL);
                }
                Err(e) => {
                    let _ = self.delete(http, &name);
                    return Err(e);
                }
            }
        }
    }

    fn release(&self, http: Option<&Http>, name: &str) -> Result<(), String> {
        self.delete(http, name)
    }

    /// Remove the locks of dead processes: written on this host by our uid, by
    /// a PID that no longer exists (a SIGKILLed chanvault leaves its lock
    /// behind, and stock `restic check`/`prune` then refuse to run). Locks of
    /// other hosts or users are never touched.
    fn remove_dead(&self, http: Option<&Http>, key: &RepoKey) -> Result<usize, String> {
        let Some(host) = system_hostname() else {
            return Ok(0);
        };
        let (uid, _) = proc_owner();
        let mut removed = 0;
        for name in self.list(http)? {
            let Some(bytes) = self.get(http, &name)? else {
                continue;
            };
            let Ok(lock) = read_lock(key, &bytes) else {
                continue;
            };
            if lock.hostname == host && lock.uid == uid && !pid_alive(lock.pid) {
                self.delete(http, &name)?;
                tracing::debug!(lock = %name, pid = lock.pid, "removed a dead process's restic lock");
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// A description of a live exclusive lock other than `ours`, if any.
    fn exclusive_holder(
        &self,
        http: Option<&Http>,
        key: &RepoKey,
        ours: &str,
    ) -> Result<Option<String>, String> {
        for name in self.list(http)? {
            if name == ours {
                continue;
            }
            let Some(bytes) = self.get(http, &name)? else {
                continue;
            };
            let lock = match read_lock(key, &bytes) {
                Ok(l) => l,
                Err(e) => {
                    tracing::debug!(lock = %name, error = %e, "ignoring an unreadable restic lock");
                    continue;
                }
            };
            if !lock.exclusive {
                continue;
            }
            let fresh = DateTime::parse_from_rfc3339(&lock.time)
                .map(|t| {
                    Utc::now().signed_duration_since(t.with_timezone(&Utc))
                        < chrono::Duration::from_std(LOCK_STALE).unwrap_or_default()
                })
                .unwrap_or(true);
            if fresh {
                return Ok(Some(format!(
                    "{}@{} pid {} since {}",
                    lock.username, lock.hostname, lock.pid, lock.time
                )));
            }
        }
        Ok(None)
    }
}

fn system_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Whether a process with this PID exists (in our PID namespace); unknown counts as alive.
fn pid_alive(pid: i64) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return true;
    };
    if pid == rustix::process::getpid() {
        return true;
    }
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(e) if e == rustix::io::Errno::SRCH
    )
}

fn proc_owner() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| (m.uid(), m.gid()))
        .unwrap_or((0, 0))
}

fn cipher(key: &RepoKey) -> Result<aes256ctr_poly1305aes::Aes256CtrPoly1305Aes, String> {
    let k = key.aead_key();
    if k.len() != 64 {
        return Err("the repository key has the wrong length".into());
    }
    Ok(aes256ctr_poly1305aes::Aes256CtrPoly1305Aes::new(
        aes256ctr_poly1305aes::Key::from_slice(&k),
    ))
}

/// restic's unpacked-file encryption: IV(16) || AES-256-CTR ciphertext || Poly1305-AES tag(16).
fn encrypt(key: &RepoKey, plain: &[u8]) -> Result<Vec<u8>, String> {
    use aes256ctr_poly1305aes::aead::AeadInPlace;
    use rand::RngCore;
    let cipher = cipher(key)?;
    let mut nonce = aes256ctr_poly1305aes::Nonce::default();
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(plain.len() + 32);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    let tag = cipher
        .encrypt_in_place_detached(&nonce, &[], &mut out[16..])
        .map_err(|_| "cannot encrypt a lock".to_string())?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// A lock file as stored: encrypted, maybe compressed, JSON.
fn read_lock(key: &RepoKey, data: &[u8]) -> Result<LockFile, String> {
    parse_lock(&decrypt(key, data)?)
}

/// The part of reading a lock after decryption: restic 0.14's compression
/// (a leading version byte 2, then zstd, bounded), then the JSON. Public for
/// the `restic_lock` fuzz target; authenticated bytes from anyone holding the
/// repository password reach it.
#[doc(hidden)]
pub fn parse_lock_plaintext(plain: &[u8]) -> Result<(), String> {
    parse_lock(plain).map(|_| ())
}

fn parse_lock(plain: &[u8]) -> Result<LockFile, String> {
    let json = unpack(plain)?;
    serde_json::from_slice::<LockFile>(&json).map_err(|e| format!("not a restic lock: {e}"))
}

/// The inverse of [`encrypt`], plus [`unpack`].
fn decrypt(key: &RepoKey, data: &[u8]) -> Result<Vec<u8>, String> {
    use aes256ctr_poly1305aes::aead::Aead;
    if data.len() < 32 {
        return Err("too short".into());
    }
    let cipher = cipher(key)?;
    let nonce = aes256ctr_poly1305aes::Nonce::from_slice(&data[..16]);
    let plain = cipher
        .decrypt(nonce, &data[16..])
        .map_err(|_| "not encrypted with this repository's key".to_string())?;
    unpack(&plain)
}

/// restic 0.14's compression of unpacked files in v2 repositories: JSON as
/// is, or a version byte 2 and zstd (inflated to at most `MAX_LOCK_BYTES`).
fn unpack(plain: &[u8]) -> Result<Vec<u8>, String> {
    match plain.first() {
        Some(b'{') | Some(b'[') => Ok(plain.to_vec()),
        Some(2) => {
            let mut out = Vec::new();
            zstd::stream::read::Decoder::new(&plain[1..])
                .and_then(|d| std::io::Read::take(d, MAX_LOCK_BYTES + 1).read_to_end(&mut out))
                .map_err(|e| format!("bad compression: {e}"))?;
            if out.len() as u64 > MAX_LOCK_BYTES {
                return Err(format!("decompresses to more than {MAX_LOCK_BYTES} bytes"));
            }
            Ok(out)
        }
        _ => Err("unknown format".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_round_trip_and_read_restic_compressed_ones() {
        let key = RepoKey(MasterKey::new());
        let json = br#"{"time":"2024-01-01T00:00:00Z","exclusive":true,"hostname":"h","username":"u","pid":1}"#;
        let sealed = encrypt(&key, json).unwrap();
        assert_eq!(decrypt(&key, &sealed).unwrap(), json);
        let mut compressed = vec![2u8];
        compressed.extend(zstd::encode_all(&json[..], 3).unwrap());
        let sealed = encrypt(&key, &compressed).unwrap();
        assert_eq!(decrypt(&key, &sealed).unwrap(), json);
        let other = RepoKey(MasterKey::new());
        assert!(decrypt(&other, &sealed).is_err());

        // A compression bomb (64 MiB of zeros in a few KiB) is refused, not inflated.
        let mut bomb = vec![2u8];
        bomb.extend(zstd::encode_all(&vec![0u8; 64 << 20][..], 19).unwrap());
        assert!(bomb.len() < 64 * 1024);
        let e = decrypt(&key, &encrypt(&key, &bomb).unwrap()).unwrap_err();
        assert!(e.contains("decompresses to more than 65536 bytes"), "{e}");
    }

    #[test]
    fn source_yields_the_directory_before_the_file() {
        let src = SealedSource {
            bytes: b"age".to_vec(),
            mtime: rustic_core::jiff::Timestamp::now(),
        };
        let e: Vec<_> = src.entries().map(|e| e.unwrap()).collect();
        assert_eq!(e[0].path, PathBuf::from(SNAPSHOT_DIR));
        assert!(e[0].node.is_dir());
        assert_eq!(e[0].node.meta.mode, Some(GO_MODE_DIR | 0o700));
        assert_eq!(e[1].path, PathBuf::from(SNAPSHOT_FILE));
        assert_eq!(e[1].node.meta.size, 3);
    }
}
