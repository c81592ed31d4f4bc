//! Where sealed backups go, and where restore and verify read them back.
//! Each target kind implements [`Target`]: `deliver` puts one backup in
//! place (idempotently; the delivery workers in `crate::deliver` own retries
//! and coalescing), `list` says which backups it holds, `fetch` reads one.
//! `restore`, `verify` and `status` know targets only through this trait.
//!
//! Adding a kind touches three places:
//! 1. its own file here, `src/sink/<kind>.rs` (or a folder), with a type
//!    that implements [`BlockingTarget`] (blocking I/O: `put`,
//!    `list_blocking`, `fetch_blocking`) or [`Target`] directly (async);
//! 2. a variant of `config::TargetConfig` with its settings (and their
//!    validation and documentation);
//! 3. one arm in [`build`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::TargetConfig;
use crate::spool::BackupRecord;

pub mod dir;
pub mod restic;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One backup to put in place.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub record: BackupRecord,
    pub sealed: Arc<Vec<u8>>,
    /// Make it the target's current backup (the last good one); otherwise history only.
    pub current: bool,
    /// The highest sequence number the spool's journal knows (see
    /// [`crate::spool::Pending::known_seq`]).
    pub known_seq: u64,
}

/// What a target says it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Human-readable location (a path, a snapshot id).
    pub location: String,
}

/// What went wrong with a target, in the classes an operator acts on
/// differently; the failure counter's `reason` label (`metrics::failure_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No answer in time: a hung server, or the delivery as a whole ran out of time.
    Timeout,
    /// Nothing to talk to: connection refused, no route, a share that is not mounted.
    Unreachable,
    /// The target said no: credentials, permissions, an HTTP 4xx, a TLS certificate that does not match.
    Refused,
    /// Reading or writing files failed (the target's disk, a local repository).
    Io,
    /// The local spool could not give the backup or record the result.
    Spool,
    /// Anything else: a damaged repository, a bad answer, a failed task.
    Other,
}

impl ErrorKind {
    /// The class of a file-system error.
    pub fn of_io(e: &std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                Self::Refused
            }
            std::io::ErrorKind::TimedOut => Self::Timeout,
            _ => Self::Io,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("target {target}: {message}")]
pub struct TargetError {
    pub target: String,
    pub kind: ErrorKind,
    pub message: String,
}

impl TargetError {
    /// An error of kind [`ErrorKind::Other`]; see [`Self::with_kind`].
    pub fn new(target: &str, message: impl Into<String>) -> Self {
        Self {
            target: target.to_string(),
            kind: ErrorKind::Other,
            message: message.into(),
        }
    }

    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }
}

/// The facts about a backup that a target may publish next to it. Nothing
/// secret, and no channel points (they link the node to its UTXOs): the
/// suspect reason is the count-only [`BackupRecord::public_suspect`], the
/// fingerprint is keyed. Format 2 adds the sequence number and the
/// signature over [`crate::signing::Claims`]; format 1 (unsigned) is still
/// read, and ranks below every signed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub created: DateTime<Utc>,
    pub channels: usize,
    pub fingerprint: String,
    pub blob_sha256: String,
    pub sealed_sha256: String,
    pub sealed_len: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspect: Option<String>,
    pub recipients: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

pub const MANIFEST_FORMAT: &str = "chanvault-manifest/2";
/// What manifests written before signatures say.
pub const MANIFEST_FORMAT_UNSIGNED: &str = "chanvault-manifest/1";

impl Manifest {
    pub fn of(record: &BackupRecord) -> Self {
        let signed = record.signed.as_ref();
        Self {
            format: if signed.is_some() {
                MANIFEST_FORMAT
            } else {
                MANIFEST_FORMAT_UNSIGNED
            }
            .to_string(),
            id: record.id.clone(),
            seq: signed.map(|_| record.seq),
            created: record.created,
            channels: record.channels,
            fingerprint: record.published_fingerprint().to_owned(),
            blob_sha256: record.blob_sha256.clone(),
            sealed_sha256: record.id.clone(),
            sealed_len: record.sealed_len,
            suspect: record.public_suspect(),
            recipients: record.recipients.clone(),
            node: signed.and(record.node.clone()),
            signer: signed.map(|s| s.signer.clone()),
            signature: signed.map(|s| s.signature.clone()),
        }
    }

    /// Check this manifest against the trusted keys: `Ok(Some(seq))` when it
    /// is signed and holds, `Ok(None)` when it is unsigned (format 1), `Err`
    /// with the reason when it must not be believed.
    pub fn authenticate(
        &self,
        trusted: &crate::signing::Trusted,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, String> {
        let (Some(claims), Some(signature)) = (self.claims(), &self.signature) else {
            if self.format == MANIFEST_FORMAT {
                return Err("it says it is signed but has no sequence number or signature".into());
            }
            return Ok(None);
        };
        trusted.check(&claims, signature, now)?;
        Ok(Some(claims.seq))
    }

    /// What its signature covers, as this manifest states it; `None` for an
    /// unsigned one (no sequence number or signer).
    pub fn claims(&self) -> Option<crate::signing::Claims> {
        Some(crate::signing::Claims {
            seq: self.seq?,
            created: self.created,
            channels: self.channels,
            fingerprint: self.fingerprint.clone(),
            sealed_sha256: self.sealed_sha256.clone(),
            sealed_len: self.sealed_len,
            suspect: self.suspect.clone(),
            node: self.node.clone(),
            signer: self.signer.clone()?,
        })
    }
}

/// One backup a target holds, as the target describes it: nothing secret,
/// no channel points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// SHA-256 of the sealed file, or the prefix of it that the target publishes.
    pub id: String,
    pub created: DateTime<Utc>,
    pub channels: usize,
    pub fingerprint: String,
    /// What the sealed bytes must hash to: the full SHA-256 or a prefix of it.
    pub sealed_sha256: String,
    pub suspect: Option<String>,
    /// Where this copy is (a path, a snapshot id): shown to the user, and
    /// what [`Target::fetch`] takes.
    pub locator: String,
    /// What published `sealed_sha256` ("manifest", "snapshot tag"), for messages.
    pub published_in: &'static str,
    /// How a listing names this copy next to the target's name, where the
    /// target holds it under a name of its own (restic: the snapshot id).
    pub label: Option<String>,
    /// The sequence number the target claims (a manifest, a `seq:` tag):
    /// only an order to try copies in until [`Target::fetch_manifest`]'s
    /// signed manifest confirms it.
    pub seq: Option<u64>,
}

/// A place backups are delivered to and read back from.
pub trait Target: Send + Sync {
    fn name(&self) -> &str;
    fn kind(&self) -> &'static str;
    /// Put one backup in place. Must be idempotent: a retry after a crash
    /// may deliver the same backup again.
    fn deliver<'a>(&'a self, delivery: &'a Delivery)
    -> BoxFuture<'a, Result<Receipt, TargetError>>;
    /// The backups this target holds, newest first. A backup held twice
    /// (a current file and its history copy) is listed twice, the copy a
    /// restore by hand would use first.
    fn list(&self) -> BoxFuture<'_, Result<Vec<Held>, TargetError>>;
    /// The sealed bytes at a [`Held::locator`] this target listed. Not
    /// checked here: the caller compares them with [`Held::sealed_sha256`].
    fn fetch<'a>(&'a self, locator: &'a str) -> BoxFuture<'a, Result<Vec<u8>, TargetError>>;
    /// The manifest published with the copy at a [`Held::locator`] (the
    /// dir target's `.json`, the restic snapshot's manifest file); `None`
    /// when the copy has none (written before manifests were signed).
    fn fetch_manifest<'a>(
        &'a self,
        locator: &'a str,
    ) -> BoxFuture<'a, Result<Option<Manifest>, TargetError>>;
    /// Where it is, for messages: a path, a repository URL.
    fn location(&self) -> String;
    /// Create what must exist before the first delivery (a restic
    /// repository), once and on request only (`chanvault target init`):
    /// delivery never creates it, so a typo or an unmounted share is an
    /// error, not a new empty place. `Ok(None)`: this kind needs nothing.
    fn create(&self) -> BoxFuture<'_, Result<Option<String>, TargetError>>;
}

/// A target whose work is blocking I/O (files, the restic libraries): it
/// implements the blocking methods, and gets [`Target`] with each of them
/// run off the async threads.
pub trait BlockingTarget: Clone + Send + Sync + 'static {
    fn name(&self) -> &str;
    fn kind(&self) -> &'static str;
    /// Put one backup in place; same contract as [`Target::deliver`].
    fn put(&self, delivery: &Delivery) -> Result<Receipt, TargetError>;
    /// Same contract as [`Target::list`].
    fn list_blocking(&self) -> Result<Vec<Held>, TargetError>;
    /// Same contract as [`Target::fetch`].
    fn fetch_blocking(&self, locator: &str) -> Result<Vec<u8>, TargetError>;
    /// Same contract as [`Target::fetch_manifest`].
    fn fetch_manifest_blocking(&self, locator: &str) -> Result<Option<Manifest>, TargetError>;
    /// Same contract as [`Target::location`].
    fn location(&self) -> String;
    /// Same contract as [`Target::create`]; most kinds need nothing.
    fn create_blocking(&self) -> Result<Option<String>, TargetError> {
        Ok(None)
    }
}

impl<T: BlockingTarget> Target for T {
    fn name(&self) -> &str {
        BlockingTarget::name(self)
    }

    fn kind(&self) -> &'static str {
        BlockingTarget::kind(self)
    }

    fn deliver<'a>(&'a self, d: &'a Delivery) -> BoxFuture<'a, Result<Receipt, TargetError>> {
        let d = d.clone();
        Box::pin(unblock(self, move |t| t.put(&d)))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Held>, TargetError>> {
        Box::pin(unblock(self, |t| t.list_blocking()))
    }

    fn fetch<'a>(&'a self, locator: &'a str) -> BoxFuture<'a, Result<Vec<u8>, TargetError>> {
        let locator = locator.to_owned();
        Box::pin(unblock(self, move |t| t.fetch_blocking(&locator)))
    }

    fn fetch_manifest<'a>(
        &'a self,
        locator: &'a str,
    ) -> BoxFuture<'a, Result<Option<Manifest>, TargetError>> {
        let locator = locator.to_owned();
        Box::pin(unblock(self, move |t| t.fetch_manifest_blocking(&locator)))
    }

    fn location(&self) -> String {
        BlockingTarget::location(self)
    }

    fn create(&self) -> BoxFuture<'_, Result<Option<String>, TargetError>> {
        Box::pin(unblock(self, |t| t.create_blocking()))
    }
}

/// Run blocking work of a target (on a clone of it) off the async threads:
/// what the [`Target`] adapter does for `put`, for any other blocking call a
/// caller needs, such as `sink::unblock(&t, ResticTarget::init_blocking)`.
///
/// The work gets a thread of its own, not one of tokio's shared blocking
/// pool: a target that hangs (an NFS share gone hard, a lock never released)
/// cannot be interrupted, and a caller that gives up on it (a delivery
/// timeout) leaves that thread behind. On the shared pool, enough of those
/// would take every slot and stall the spool; on its own thread it holds
/// nothing but itself, and the delivery worker starts no second attempt
/// while one is still running (`deliver::InFlight`).
pub async fn unblock<T, R, F>(target: &T, work: F) -> Result<R, TargetError>
where
    T: BlockingTarget,
    R: Send + 'static,
    F: FnOnce(&T) -> Result<R, TargetError> + Send + 'static,
{
    let this = target.clone();
    let name = BlockingTarget::name(target);
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(thread_name(name))
        .spawn(move || {
            // The receiver is gone when the caller gave up: nothing to tell.
            let _ = tx.send(work(&this));
        })
        .map_err(|e| TargetError::new(name, format!("cannot start a thread: {e}")))?;
    rx.await
        .map_err(|_| TargetError::new(name, "task failed: it panicked"))?
}

/// `cv-<target>`, cut to the 15 bytes Linux keeps of a thread name, so that
/// `ps -L` / `top -H` show which target a (hung) thread works for.
fn thread_name(target: &str) -> String {
    let mut name = String::from("cv-");
    for c in target.chars() {
        if name.len() + c.len_utf8() > 15 {
            break;
        }
        name.push(c);
    }
    name
}

/// Build the target a config entry describes.
pub fn build(cfg: &TargetConfig) -> Arc<dyn Target> {
    match cfg {
        TargetConfig::Dir(d) => {
            Arc::new(dir::DirTarget::new(&d.name, &d.path).padded(cfg.privacy().padded))
        }
        TargetConfig::Restic(r) => Arc::new(restic::ResticTarget::new(r)),
    }
}
