//! The repository as opened once per process: the master key, the backends,
//! the snapshot list and the kept index.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use reqwest::StatusCode;
use rustic_core::repofile::{MasterKey, SnapshotFile};
use rustic_core::{
    Credentials, FileType, Id, OpenStatus, ReadBackend, Repository, RepositoryBackends,
    RepositoryOptions, WriteBackend,
};
use zeroize::{Zeroize, Zeroizing};

use super::lock::{LockPlace, LockStore, OwnLocks};
use super::rest::Http;
use super::{ResticTarget, read_secret};
use crate::sink::{ErrorKind, TargetError};

/// The repository as opened once per process.
pub(super) struct Session {
    pub(super) key: RepoKey,
    pub(super) backends: RepositoryBackends,
    pub(super) locks: LockStore,
    pub(super) http: Option<Http>,
    /// Snapshots seen so far (updated from the repository before each backup).
    pub(super) snapshots: Vec<SnapshotFile>,
    /// The repository as last opened with the master key, kept between
    /// backups so that each one costs a config read and a snapshot listing,
    /// not a re-open (config, key listing). Backups need no index: see
    /// `writer`.
    pub(super) kept: Option<Repository<OpenStatus>>,
    /// The id in the repository's config when it was opened: a repository
    /// deleted and initialised again under us (a new master key) has
    /// another, and nothing may be written to it with the old key.
    config_id: String,
}

/// The repository master key. No `Debug`; wiped on drop.
pub(super) struct RepoKey(pub(super) MasterKey);

impl RepoKey {
    fn credentials(&self) -> Credentials {
        Credentials::Masterkey(self.0.clone())
    }

    /// The 64-byte AES-256-CTR + Poly1305-AES key in restic's layout.
    pub(super) fn aead_key(&self) -> Zeroizing<Vec<u8>> {
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

pub(super) fn wipe(creds: Credentials) {
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

impl ResticTarget {
    // ----- opening -------------------------------------------------------

    pub(super) fn missing(&self) -> TargetError {
        self.err(format!(
            "no restic repository at {}: create it with `chanvault target init {}` (or `restic init`)",
            self.cfg.repository, self.name
        ))
    }

    /// Is there a repository? Errors are the clear ones (unreachable, TLS, 401).
    pub(super) fn exists(&self, http: Option<&Http>) -> Result<bool, TargetError> {
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
                    Err(e) => Err(self
                        .err(format!("cannot read {}: {e}", p.display()))
                        .with_kind(ErrorKind::of_io(&e))),
                }
            }
        }
    }

    pub(super) fn backends(&self, http: Option<&Http>) -> Result<RepositoryBackends, TargetError> {
        let be: Arc<dyn WriteBackend> = match http {
            Some(h) => Arc::new(h.backend(&self.cfg.repository)),
            None => Arc::new(
                rustic_backend::LocalBackend::new(&self.cfg.repository, BTreeMap::new())
                    .map_err(|e| self.rustic_err("cannot use", &e))?,
            ),
        };
        Ok(RepositoryBackends::new(be, None))
    }

    pub(super) fn repo_options() -> RepositoryOptions {
        RepositoryOptions::default().no_cache(true)
    }

    fn lock_store(&self, http: Option<&Http>) -> LockStore {
        let place = match http {
            Some(_) => LockPlace::Rest,
            None => LockPlace::Local(Path::new(&self.cfg.repository).join("locks")),
        };
        let own = OwnLocks {
            dir: self.cfg.lock_records.as_deref().map(Path::to_path_buf),
            target: self.name.clone(),
        };
        LockStore { place, own }
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
        let unlocked = super::keyfile::unlock(&backends.repository(), password.expose().as_bytes())
            .map_err(|e| self.rustic_err("cannot read the keys of", &e))?;
        let Some(master) = unlocked else {
            return Err(self
                .err(format!(
                    "wrong repository password: {} opens no key of {}",
                    self.cfg.password_file.display(),
                    self.cfg.repository
                ))
                .with_kind(ErrorKind::Refused));
        };
        let creds = Credentials::Masterkey(master);
        let opened = repo.open(&creds);
        wipe(creds);
        let repo = opened.map_err(|e| self.rustic_err("cannot open", &e))?;
        let key = RepoKey(repo.key());
        let config_id = repo.config().id.to_hex().to_string();
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
                "removed stale restic locks this chanvault wrote and could not remove (killed, or the repository was unreachable)"
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
            kept: Some(repo),
            config_id,
        })
    }

    /// Open the repository once; afterwards re-open it with the master key
    /// (milliseconds) and refresh the snapshot list.
    pub(super) fn reopen<'s>(
        &self,
        guard: &'s mut Option<Session>,
    ) -> Result<(&'s mut Session, Repository<OpenStatus>), TargetError> {
        self.drop_if_rclone_gone(guard);
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

    /// A session whose rclone has exited (killed, crashed) is dropped, so
    /// that the next open starts a fresh one.
    fn drop_if_rclone_gone(&self, guard: &mut Option<Session>) {
        let gone = guard
            .as_ref()
            .and_then(|s| s.http.as_ref())
            .and_then(|h| h.rclone.as_ref())
            .is_some_and(|r| r.gone());
        if gone {
            tracing::warn!(target = %self.name, "the rclone serving this target exited; starting it again");
            *guard = None;
        }
    }

    /// Open the repository with the session's master key (no scrypt).
    pub(super) fn open_repo(&self, s: &Session) -> Result<Repository<OpenStatus>, TargetError> {
        let creds = s.key.credentials();
        let opened =
            Repository::new(&Self::repo_options(), &s.backends).and_then(|r| r.open(&creds));
        wipe(creds);
        opened.map_err(|e| self.rustic_err("cannot open", &e))
    }

    /// For a backup: the session with a fresh snapshot list and a kept
    /// repository. The config is read and decrypted each time (one request,
    /// as the existence check it replaces, beside the listing): a repository
    /// replaced under us drops the session, which opens the new one with the
    /// password.
    pub(super) fn refresh<'s>(
        &self,
        guard: &'s mut Option<Session>,
    ) -> Result<&'s mut Session, TargetError> {
        self.drop_if_rclone_gone(guard);
        let listed = match guard.as_ref().filter(|s| s.kept.is_some()) {
            Some(s) => {
                let (same, listed) = self.check_and_list(s);
                if same? {
                    Some(listed)
                } else {
                    tracing::warn!(target = %self.name, repository = %self.cfg.repository, "the repository was replaced (its config changed); opening it afresh");
                    *guard = None;
                    None
                }
            }
            None => None,
        };
        let Some(listed) = listed else {
            let (s, repo) = self.reopen(guard)?;
            s.kept = Some(repo);
            return Ok(s);
        };
        let Some(s) = guard.as_mut() else {
            return Err(self.err("internal: no session"));
        };
        let refreshed = match &s.kept {
            Some(repo) => listed.and_then(|ids| snapshots_named(repo, &mut s.snapshots, &ids)),
            None => return Err(self.err("internal: no kept repository")),
        };
        match refreshed {
            Ok(list) => s.snapshots = list,
            Err(e) => {
                s.kept = None;
                return Err(self.rustic_err("cannot list the snapshots of", &e));
            }
        }
        Ok(s)
    }

    /// Whether the repository is still ours, and the ids of its snapshots
    /// now. Both are reads, so they go side by side; the ids count only if
    /// the check finds our repository.
    fn check_and_list(
        &self,
        s: &Session,
    ) -> (
        Result<bool, TargetError>,
        rustic_core::RusticResult<Vec<Id>>,
    ) {
        let be = s.backends.repository();
        let (listed, same) = crate::beside::both(
            "restic-list",
            || be.list(FileType::Snapshot),
            || self.same_repository(s),
        );
        (same, listed)
    }

    /// Is the repository still the one the session opened? Its config must
    /// decrypt under our key and carry the same id.
    fn same_repository(&self, s: &Session) -> Result<bool, TargetError> {
        let be = s.backends.repository();
        let stored = match be.read_full(FileType::Config, &Id::default()) {
            Ok(b) => b,
            Err(e) => {
                if !self.exists(s.http.as_ref())? {
                    return Err(self.missing());
                }
                return Err(self.rustic_err("cannot read the config of", &e));
            }
        };
        #[derive(serde::Deserialize)]
        struct Config {
            id: String,
        }
        let same = super::lock::decrypt(&s.key, &stored)
            .ok()
            .and_then(|plain| serde_json::from_slice::<Config>(&plain).ok())
            .is_some_and(|c| c.id == s.config_id);
        Ok(same)
    }
}

/// The snapshots `ids` names (the repository's listing, in its order): those
/// in `known` are kept as they are, those no longer listed (forgotten) are
/// dropped; any other one (written by another host or program since) is
/// read, through rustic, which lists once more. `known` is left empty.
pub(super) fn snapshots_named(
    repo: &Repository<OpenStatus>,
    known: &mut Vec<SnapshotFile>,
    ids: &[Id],
) -> rustic_core::RusticResult<Vec<SnapshotFile>> {
    let mut by_id: BTreeMap<Id, SnapshotFile> = std::mem::take(known)
        .into_iter()
        .map(|snap| (*snap.id, snap))
        .collect();
    if ids.iter().all(|id| by_id.contains_key(id)) {
        return Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect());
    }
    repo.update_all_snapshots(by_id.into_values().collect())
}
