//! restic's lock files, which rustic does not write: encrypted JSON in
//! `locks/`, written around each backup so that `restic prune` on another
//! host waits for us and we wait for it.

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::crypt::{cipher, encrypt};
use super::rest::{Http, REST_V2};
use super::session::RepoKey;
use crate::sink::ErrorKind;

/// restic treats a lock older than this as stale.
const LOCK_STALE: Duration = Duration::from_secs(30 * 60);
/// How long one delivery waits for another host's exclusive lock.
const LOCK_WAIT: Duration = Duration::from_secs(30);
const LOCK_POLL: Duration = Duration::from_secs(2);
/// Largest lock file read, before and after decompression (restic's are ~300 bytes).
const MAX_LOCK_BYTES: u64 = 64 * 1024;

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

/// Where lock files live (a local repository's `locks/` or the REST
/// server's), and the record of the ones we wrote.
pub(super) struct LockStore {
    pub(super) place: LockPlace,
    pub(super) own: OwnLocks,
}

pub(super) enum LockPlace {
    Local(PathBuf),
    Rest,
}

/// The lock files this chanvault wrote to one target and has not removed
/// yet: `state_dir/restic-locks/<lock id>`, holding the target's name. A
/// lock is recorded before it is written and forgotten after it is removed,
/// so a chanvault killed in between leaves a record next to its lock, and
/// the next start removes that lock (and only such locks).
pub(super) struct OwnLocks {
    pub(super) dir: Option<PathBuf>,
    pub(super) target: String,
}

impl OwnLocks {
    fn record(&self, name: &str) -> Result<(), LockError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let p = dir.join(name);
        // Not fsynced: a process killed later still leaves the record (it is
        // in the page cache), and a record lost to a power cut only leaves a
        // lock that restic's own rule already calls stale (this host, a PID
        // gone since the reboot). Two fsyncs per delivery saved.
        let write = || {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&p)?;
            f.write_all(self.target.as_bytes())
        };
        crate::fsutil::ensure_dir(dir, 0o700)
            .and_then(|()| write())
            .map_err(|e| {
                LockError::io(
                    format!("cannot record our lock in {}: {e}", p.display()),
                    &e,
                )
            })
    }

    fn forget(&self, name: &str) {
        if let Some(dir) = &self.dir
            && let Err(e) = std::fs::remove_file(dir.join(name))
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::debug!(lock = %name, error = %e, "cannot remove the record of our restic lock");
        }
    }

    /// The recorded locks of this target, with how long ago each was recorded.
    fn recorded(&self) -> Vec<(String, Duration)> {
        let Some(Ok(rd)) = self.dir.as_ref().map(std::fs::read_dir) else {
            return vec![];
        };
        rd.filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let ours = name.len() == 64
                    && name.bytes().all(|c| c.is_ascii_hexdigit())
                    && crate::fsutil::read_regular(&e.path(), 1024)
                        .is_ok_and(|b| b == self.target.as_bytes());
                let age = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()?
                    .elapsed()
                    .ok()?;
                ours.then_some((name, age))
            })
            .collect()
    }
}

/// A lock-file failure: its message, and the class the delivery error gets.
#[derive(Debug)]
pub(super) struct LockError {
    pub(super) kind: ErrorKind,
    pub(super) message: String,
}

impl LockError {
    fn io(message: String, e: &std::io::Error) -> Self {
        Self {
            kind: ErrorKind::of_io(e),
            message,
        }
    }

    fn http(message: String, e: &reqwest::Error) -> Self {
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else if e.is_connect() {
            ErrorKind::Unreachable
        } else {
            ErrorKind::Other
        };
        Self { kind, message }
    }

    /// A request that got no answer.
    fn sent(what: &str, e: reqwest::Error) -> Self {
        let e = e.without_url();
        Self::http(format!("{what}: {}", crate::text::error_chain(&e)), &e)
    }

    /// An answer that is not a success.
    fn status(what: &str, status: StatusCode) -> Self {
        Self {
            kind: if status.is_client_error() {
                ErrorKind::Refused
            } else {
                ErrorKind::Other
            },
            message: format!("{what}: HTTP {status}"),
        }
    }
}

impl From<String> for LockError {
    fn from(message: String) -> Self {
        Self {
            kind: ErrorKind::Other,
            message,
        }
    }
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn rest(http: Option<&Http>) -> Result<&Http, String> {
    http.ok_or_else(|| "internal: REST lock store without a client".to_string())
}

impl LockStore {
    fn put(&self, http: Option<&Http>, name: &str, bytes: &[u8]) -> Result<(), LockError> {
        match &self.place {
            LockPlace::Local(dir) => {
                crate::fsutil::ensure_dir(dir, 0o700).map_err(|e| {
                    LockError::io(format!("cannot create {}: {e}", dir.display()), &e)
                })?;
                let p = dir.join(name);
                crate::fsutil::write_atomic(&p, bytes, 0o600).map_err(|e| {
                    LockError::io(format!("cannot write the lock {}: {e}", p.display()), &e)
                })
            }
            LockPlace::Rest => {
                let h = rest(http)?;
                let r = h
                    .request(reqwest::Method::POST, &format!("locks/{name}"))
                    .body(bytes.to_vec())
                    .send()
                    .map_err(|e| LockError::sent("cannot write a lock", e))?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(LockError::status("cannot write a lock", r.status()))
                }
            }
        }
    }

    fn delete(&self, http: Option<&Http>, name: &str) -> Result<(), LockError> {
        match &self.place {
            LockPlace::Local(dir) => match std::fs::remove_file(dir.join(name)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(LockError::io(
                    format!("cannot remove the lock {name}: {e}"),
                    &e,
                )),
            },
            LockPlace::Rest => {
                let what = format!("cannot remove the lock {name}");
                let h = rest(http)?;
                let r = h
                    .request(reqwest::Method::DELETE, &format!("locks/{name}"))
                    .send()
                    .map_err(|e| LockError::sent(&what, e))?;
                if r.status().is_success() || r.status() == StatusCode::NOT_FOUND {
                    Ok(())
                } else {
                    Err(LockError::status(&what, r.status()))
                }
            }
        }
    }

    fn list(&self, http: Option<&Http>) -> Result<Vec<String>, LockError> {
        match &self.place {
            LockPlace::Local(dir) => match std::fs::read_dir(dir) {
                Ok(rd) => Ok(rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.len() == 64 && n.bytes().all(|c| c.is_ascii_hexdigit()))
                    .collect()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
                Err(e) => Err(LockError::io(
                    format!("cannot list {}: {e}", dir.display()),
                    &e,
                )),
            },
            LockPlace::Rest => {
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
                    .map_err(|e| LockError::sent("cannot list the locks", e))?;
                if r.status() == StatusCode::NOT_FOUND {
                    return Ok(vec![]);
                }
                if !r.status().is_success() {
                    return Err(LockError::status("cannot list the locks", r.status()));
                }
                let body = r
                    .bytes()
                    .map_err(|e| LockError::http(format!("cannot list the locks: {e}"), &e))?;
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

    fn get(&self, http: Option<&Http>, name: &str) -> Result<Option<Vec<u8>>, LockError> {
        let what = format!("cannot read the lock {name}");
        match &self.place {
            LockPlace::Local(dir) => match std::fs::read(dir.join(name)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(LockError::io(format!("{what}: {e}"), &e)),
            },
            LockPlace::Rest => {
                let h = rest(http)?;
                let r = h
                    .request(reqwest::Method::GET, &format!("locks/{name}"))
                    .send()
                    .map_err(|e| LockError::sent(&what, e))?;
                if r.status() == StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                if !r.status().is_success() {
                    return Err(LockError::status(&what, r.status()));
                }
                // A lock file is a few hundred bytes; a server sending more is not read to the end.
                let mut body = Vec::new();
                std::io::Read::take(r, MAX_LOCK_BYTES + 1)
                    .read_to_end(&mut body)
                    .map_err(|e| LockError::io(format!("{what}: {e}"), &e))?;
                if body.len() as u64 > MAX_LOCK_BYTES {
                    return Err(LockError::from(format!(
                        "the lock {name} is larger than {MAX_LOCK_BYTES} bytes; not a restic lock"
                    )));
                }
                Ok(Some(body))
            }
        }
    }

    /// Take a non-exclusive lock as restic does: write ours, then look for an
    /// exclusive one; if there is one, withdraw and wait.
    pub(super) fn acquire(
        &self,
        http: Option<&Http>,
        key: &RepoKey,
        host: &str,
    ) -> Result<String, LockError> {
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
            self.own.record(&name)?;
            if let Err(e) = self.put(http, &name, &sealed) {
                self.own.forget(&name);
                return Err(e);
            }
            match self.exclusive_holder(http, key, &name) {
                Ok(None) => return Ok(name),
                Ok(Some(holder)) => {
                    let _ = self.release(http, &name);
                    if start.elapsed() >= LOCK_WAIT {
                        return Err(LockError::from(format!(
                            "the repository is locked exclusively by {holder} (restic prune/check?); the backup is retried later"
                        )));
                    }
                    tracing::info!(holder = %holder, "restic repository is locked exclusively; waiting");
                    std::thread::sleep(LOCK_POLL);
                }
                Err(e) => {
                    let _ = self.release(http, &name);
                    return Err(e);
                }
            }
        }
    }

    pub(super) fn release(&self, http: Option<&Http>, name: &str) -> Result<(), LockError> {
        self.delete(http, name)?;
        self.own.forget(name);
        Ok(())
    }

    /// Remove the stale locks this chanvault wrote and could not remove (it
    /// was killed, or the repository was unreachable at the time): recorded
    /// in `state_dir` ([`OwnLocks`]), non-exclusive (we never take another
    /// kind), and stale by restic's rule: written on this host by a PID that
    /// no longer exists, or older than 30 minutes. Nothing else is ever
    /// deleted, whatever its host, user and PID say: a lock of another
    /// program (a killed `restic backup`, a prune's exclusive lock) is only
    /// ignored when stale, and removing it is `restic unlock`'s job. A
    /// record whose lock is gone is dropped once it is as old as a stale lock.
    pub(super) fn remove_dead(
        &self,
        http: Option<&Http>,
        key: &RepoKey,
    ) -> Result<usize, LockError> {
        let recorded = self.own.recorded();
        if recorded.is_empty() {
            return Ok(0);
        }
        let host = system_hostname();
        let listed = self.list(http)?;
        let mut removed = 0;
        for (name, age) in recorded {
            if !listed.contains(&name) {
                if age >= LOCK_STALE {
                    self.own.forget(&name);
                }
                continue;
            }
            let Some(bytes) = self.get(http, &name)? else {
                continue;
            };
            let Ok(lock) = read_lock(key, &bytes) else {
                continue;
            };
            let dead = host.as_deref() == Some(lock.hostname.as_str()) && !pid_alive(lock.pid);
            if !lock.exclusive && (dead || is_old(&lock)) {
                self.release(http, &name)?;
                tracing::debug!(lock = %name, pid = lock.pid, "removed a stale restic lock of ours");
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// A description of a live exclusive lock other than `ours`, if any.
    /// Stale locks do not count, by restic's own rule: older than 30 minutes,
    /// or written on this host by a process that no longer exists (a killed
    /// `restic prune`). They are only ignored here, never deleted: that is
    /// `restic unlock`'s job. (Two hosts with the same hostname and separate
    /// PID namespaces would defeat the PID test, as they defeat restic's.)
    fn exclusive_holder(
        &self,
        http: Option<&Http>,
        key: &RepoKey,
        ours: &str,
    ) -> Result<Option<String>, LockError> {
        let host = system_hostname();
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
            let fresh = !is_old(&lock);
            let holder_gone =
                host.as_deref() == Some(lock.hostname.as_str()) && !pid_alive(lock.pid);
            if holder_gone {
                tracing::debug!(lock = %name, pid = lock.pid, "ignoring the exclusive lock of a process that no longer exists");
            }
            if fresh && !holder_gone {
                return Ok(Some(format!(
                    "{}@{} pid {} since {}",
                    lock.username, lock.hostname, lock.pid, lock.time
                )));
            }
        }
        Ok(None)
    }
}

/// Older than restic's 30 minutes; a time that does not parse is not old.
fn is_old(lock: &LockFile) -> bool {
    DateTime::parse_from_rfc3339(&lock.time).is_ok_and(|t| {
        Utc::now().signed_duration_since(t.with_timezone(&Utc))
            >= chrono::Duration::from_std(LOCK_STALE).unwrap_or_default()
    })
}

/// The node name from uname(2), as restic's `os.Hostname()` gives it. Not
/// `/proc/sys/kernel/hostname`: the systemd unit's `ProcSubset=pid` hides
/// `/proc/sys`, and without a hostname no lock could be judged dead.
fn system_hostname() -> Option<String> {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .trim()
        .to_string();
    (!name.is_empty()).then_some(name)
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
    (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    )
}

/// A lock file as stored: encrypted, maybe compressed, JSON.
fn read_lock(key: &RepoKey, data: &[u8]) -> Result<LockFile, String> {
    parse_lock(&decrypt(key, data)?)
}

/// The part of reading a lock after decryption: restic 0.14's compression
/// (a leading version byte 2, then zstd, bounded), then the JSON. Public
/// because it parses untrusted bytes (anyone holding the repository password
/// can write a lock), so the `restic_lock` fuzz target drives it directly.
pub fn parse_lock_plaintext(plain: &[u8]) -> Result<(), String> {
    parse_lock(plain).map(|_| ())
}

fn parse_lock(plain: &[u8]) -> Result<LockFile, String> {
    let json = unpack(plain)?;
    serde_json::from_slice::<LockFile>(&json).map_err(|e| format!("not a restic lock: {e}"))
}

/// The inverse of [`encrypt`], plus [`unpack`].
pub(super) fn decrypt(key: &RepoKey, data: &[u8]) -> Result<Vec<u8>, String> {
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
