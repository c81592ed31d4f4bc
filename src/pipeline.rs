//! One snapshot through the pipeline, in this order: verify with LND,
//! fingerprint and dedupe, shrink guard, seal, spool. Delivery workers are
//! woken afterwards; they never block this path.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::watch;

use crate::chanbackup::BackupKey;
use crate::lnd::{LndClient, LndError};
use crate::metrics::{Metrics, SnapshotOutcome};
use crate::scb::{self, ChanPoint, Snapshot};
use crate::seal::{Recipients, SealError};
use crate::spool::{BackupRecord, Prepared, Spool, SpoolError, Stored};

mod cover;
pub use cover::COVER_SOURCE;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Lnd(#[from] LndError),
    #[error("LND's VerifyChanBackup rejected the snapshot, so it was not stored: {0}")]
    Rejected(String),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("internal task failed: {0}")]
    Task(String),
}

impl PipelineError {
    /// True when reconnecting to LND is the remedy.
    pub fn is_connection(&self) -> bool {
        matches!(self, PipelineError::Lnd(e) if e.is_connection())
    }

    /// True when LND answered too slowly for this snapshot but is connected.
    pub fn is_slow(&self) -> bool {
        matches!(self, PipelineError::Lnd(LndError::Slow { .. }))
    }
}

/// How long a stored backup's sealed bytes stay in memory for its
/// deliveries: past the deliveries' pacing in a burst (at most 4 s by
/// default), short enough that an idle agent holds no backup.
const FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// The journal as read beside the verify, and unless the snapshot looked
/// unchanged, its blob's SHA-256 and the sealed file written ahead.
type EarlyDone = (crate::spool::Journal, Option<(Prepared, String)>);
type EarlyWork = tokio::task::JoinHandle<Result<EarlyDone, PipelineError>>;

/// The early work: still running beside the verify, or already waited for
/// (a snapshot that looked unchanged and was not).
enum Early {
    Running(EarlyWork),
    Done(EarlyDone),
}

impl Early {
    async fn finish(self) -> Result<EarlyDone, PipelineError> {
        match self {
            Early::Running(work) => work.await?,
            Early::Done(done) => Ok(done),
        }
    }
}

/// What happened to a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Stored(Box<BackupRecord>),
    /// Same channel set as the newest stored backup.
    Duplicate {
        fingerprint: String,
    },
}

/// The shared, stateless-per-snapshot part of watch and backup --once.
#[derive(Clone)]
pub struct Pipeline {
    spool: Arc<Spool>,
    recipients: Arc<Recipients>,
    wake: Arc<watch::Sender<u64>>,
    metrics: Arc<Metrics>,
    /// The last `ClosedChannels` error, so a lasting one is logged once.
    closed_channels_error: Arc<std::sync::Mutex<Option<String>>>,
    /// `[lnd] backup_key_file`: read each snapshot ourselves too.
    backup_key: Option<Arc<BackupKey>>,
    /// The last failure to read a snapshot with it, logged once.
    offline_error: Arc<std::sync::Mutex<Option<String>>>,
    /// The node's identity key, signed into every manifest once known.
    node_id: Arc<std::sync::Mutex<NodeId>>,
    /// The newest multi of the last good state, for cover uploads.
    remembered: cover::Remembered,
    /// The channel points of the last good backup this pipeline stored, by
    /// its id: the shrink guard compares every snapshot with them, and
    /// parsing them from the journal each time costs milliseconds at
    /// thousands of channels. Another id (a backup stored by another
    /// process) is parsed from the journal as before.
    good_points: Arc<std::sync::Mutex<Option<GoodPoints>>>,
    /// The fingerprint of the newest backup in the journal when this
    /// pipeline last looked: a hint, checked against the journal before
    /// anything is skipped on its word.
    newest_seen: Arc<std::sync::Mutex<Option<String>>>,
}

type GoodPoints = (String, Arc<BTreeSet<ChanPoint>>);

/// What the pipeline knows of the node's identity key.
#[derive(Debug, Clone, Default)]
enum NodeId {
    /// Not asked yet, or LND could not be asked (asked again next time).
    #[default]
    Unknown,
    Known(String),
    /// LND refused (a macaroon without `info:read`): not asked again.
    Refused,
}

/// Run a blocking closure (file I/O, sealing) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PipelineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PipelineError::Task(e.to_string()))
}

impl Pipeline {
    pub fn new(spool: Arc<Spool>, recipients: Arc<Recipients>) -> Self {
        let (wake, _) = watch::channel(0);
        Self {
            spool,
            recipients,
            wake: Arc::new(wake),
            metrics: Arc::new(Metrics::new()),
            closed_channels_error: Arc::default(),
            backup_key: None,
            offline_error: Arc::default(),
            node_id: Arc::default(),
            remembered: cover::Remembered::default(),
            good_points: Arc::default(),
            newest_seen: Arc::default(),
        }
    }

    /// The node's identity key (`GetInfo`), asked once per process; `None`
    /// when the macaroon lacks `info:read` (said once in the log) or LND
    /// did not answer this time.
    async fn node_id(&self, lnd: &LndClient) -> Option<String> {
        let known = self.node_id.lock().map(|n| n.clone()).unwrap_or_default();
        match known {
            NodeId::Known(k) => return Some(k),
            NodeId::Refused => return None,
            NodeId::Unknown => {}
        }
        let (next, out) = match lnd.identity_pubkey().await {
            Ok(k) => (NodeId::Known(k.clone()), Some(k)),
            Err(e @ LndError::PermissionDenied { .. }) => {
                tracing::info!(error = %e, "manifests are signed without the node's identity key");
                (NodeId::Refused, None)
            }
            Err(e) => {
                tracing::debug!(error = %e, "GetInfo failed; the node's identity key is asked again next time");
                (NodeId::Unknown, None)
            }
        };
        if let Ok(mut n) = self.node_id.lock() {
            *n = next;
        }
        out
    }

    /// Also read every snapshot with the node's backup key: the channel set
    /// is then known without trusting `VerifyChanBackup` alone (and for lnd
    /// versions that answer it empty).
    pub fn with_backup_key(mut self, key: BackupKey) -> Self {
        self.backup_key = Some(Arc::new(key));
        self
    }

    /// Keep the newest multi of the last good state in memory, for cover
    /// uploads (`privacy = "padded"`); without a padded target nothing is kept.
    pub fn with_covers(mut self) -> Self {
        self.remembered = cover::Remembered::enabled();
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// A receiver that changes whenever a new backup is stored.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// Wake the delivery workers (e.g. at start-up, for pending work).
    pub fn wake(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub async fn process(
        &self,
        lnd: &LndClient,
        snap: Snapshot,
        source: &str,
    ) -> Result<Outcome, PipelineError> {
        let result = self.run(lnd, snap, source).await;
        self.metrics.snapshot(match &result {
            Ok(Outcome::Stored(r)) if r.is_suspect() => SnapshotOutcome::Suspect,
            Ok(Outcome::Stored(_)) => SnapshotOutcome::Stored,
            Ok(Outcome::Duplicate { .. }) => SnapshotOutcome::Duplicate,
            Err(PipelineError::Rejected(_)) => SnapshotOutcome::Rejected,
            Err(_) => SnapshotOutcome::Error,
        });
        result
    }

    async fn run(
        &self,
        lnd: &LndClient,
        snap: Snapshot,
        source: &str,
    ) -> Result<Outcome, PipelineError> {
        let t0 = std::time::Instant::now();
        let multi = snap.multi;
        let listed = scb::fingerprint(&snap.chan_points);
        let early = self.seal_early(&multi, &listed);
        let early = match self.unchanged_as_listed(source, &listed, early).await? {
            None => {
                tracing::debug!(fingerprint = %listed, source, "snapshot unchanged as LND listed it; skipped unverified");
                return Ok(Outcome::Duplicate {
                    fingerprint: listed,
                });
            }
            Some(early) => early,
        };
        // 1. Verify: LND must be able to read what we are about to keep.
        let (verified, early) = Self::verify(lnd, &multi, early).await?;
        let points = self.channels(verified, &multi, &snap.chan_points).await;

        let t_verify = t0.elapsed();
        // 2. Fingerprint and dedupe against the newest stored backup.
        let fingerprint = scb::fingerprint(&points);
        let (journal, sealed) = early.finish().await?;
        self.saw_newest(journal.newest().map(|n| n.fingerprint.clone()));
        if journal
            .newest()
            .is_some_and(|n| n.fingerprint == fingerprint)
        {
            self.remembered.unchanged(&journal, &fingerprint, &multi);
            tracing::debug!(%fingerprint, source, "snapshot unchanged; skipped");
            return Ok(Outcome::Duplicate { fingerprint });
        }

        let t_journal = t0.elapsed();
        // 3. Shrink guard.
        let (suspect, suspect_channels) = match journal.last_good() {
            Some(good) => match self.shrink_guard(lnd, good, &points).await {
                Some(s) => (Some(s.reason), s.channels),
                None => (None, Vec::new()),
            },
            None => (None, Vec::new()),
        };

        let t_guard = t0.elapsed();
        // 4 + 5. Seal to every recipient and spool durably.
        let record = BackupRecord {
            id: String::new(),
            created: Utc::now(),
            source: source.to_string(),
            channels: points.len(),
            chan_points: points.iter().map(ChanPoint::text).collect(),
            fingerprint: fingerprint.clone(),
            blob_sha256: match &sealed {
                Some((_, digest)) => digest.clone(),
                None => scb::sha256_hex(&multi),
            },
            sealed_len: 0,
            recipients: self.recipients.public_keys().to_vec(),
            suspect,
            suspect_channels,
            seq: 0,
            node: self.node_id(lnd).await,
            signed: None,
            cover_for: Vec::new(),
        };
        let sealed = sealed.map(|(bytes, _)| bytes);
        let (stored, pruned) = self.seal_and_store(record, multi, sealed).await?;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        tracing::debug!(
            verify_ms = ms(t_verify),
            journal_ms = ms(t_journal - t_verify),
            guard_ms = ms(t_guard - t_journal),
            spool_ms = ms(t0.elapsed() - t_guard),
            "pipeline stage times"
        );
        match stored {
            Stored::Duplicate { fingerprint } => Ok(Outcome::Duplicate { fingerprint }),
            Stored::New(rec) => {
                self.metrics.stored_in(t0.elapsed().as_secs_f64());
                match &rec.suspect {
                    Some(reason) => tracing::warn!(
                        backup = short(&rec.id),
                        channels = rec.channels,
                        source,
                        "stored a SUSPECT backup; it does not replace the last good one: {reason}"
                    ),
                    None => tracing::info!(
                        backup = short(&rec.id),
                        channels = rec.channels,
                        fingerprint = short(&rec.fingerprint),
                        source,
                        "stored new backup"
                    ),
                }
                self.saw_newest(Some(rec.fingerprint.clone()));
                if !rec.is_suspect() {
                    self.stored_good(&rec, points);
                }
                // 6. Deliver: wake the workers, who take the sealed bytes
                // from memory for a while. Old files the store pruned are
                // removed after, off the delivery's path.
                self.wake();
                self.forget_fresh_later(&rec.id);
                blocking(move || drop(pruned)).await?;
                Ok(Outcome::Stored(rec))
            }
        }
    }

    /// `VerifyChanBackup`. A refused snapshot leaves nothing: the file
    /// written ahead is removed when the early work ends, which is waited for.
    async fn verify(
        lnd: &LndClient,
        multi: &bytes::Bytes,
        early: Early,
    ) -> Result<(Option<BTreeSet<ChanPoint>>, Early), PipelineError> {
        match lnd.verify_multi(multi).await {
            Ok(v) => Ok((v, early)),
            Err(e) => {
                let _ = early.finish().await;
                Err(match e {
                    LndError::Rpc {
                        rpc: "VerifyChanBackup",
                        message,
                    } => PipelineError::Rejected(message),
                    e => PipelineError::Lnd(e),
                })
            }
        }
    }

    /// While LND verifies: read the journal, seal, and write the sealed file
    /// under a temp name (fsynced; renamed and journaled only once LND has
    /// accepted the snapshot, removed otherwise), hashing both the multi and
    /// the sealed bytes while the disk writes. All but the journal
    /// read are skipped when LND lists the channel set of the newest stored
    /// backup, as for the second snapshot of most events: a duplicate.
    fn seal_early(&self, multi: &bytes::Bytes, listed: &str) -> EarlyWork {
        let (spool, recipients, multi) =
            (self.spool.clone(), self.recipients.clone(), multi.clone());
        let listed = listed.to_owned();
        tokio::task::spawn_blocking(move || -> Result<_, PipelineError> {
            let t0 = std::time::Instant::now();
            let journal = spool.journal()?;
            let unchanged = journal.newest().is_some_and(|n| n.fingerprint == listed);
            let t_journal = t0.elapsed();
            let sealed = match unchanged {
                true => None,
                false => {
                    let sealed = Arc::new(crate::seal::seal(&recipients, &multi)?);
                    let t_seal = t0.elapsed();
                    // The multi's hash runs while the disk writes the file.
                    let mut t_hash = std::time::Duration::ZERO;
                    let (prepared, blob_sha256) = spool.prepare_shared_while(sealed, || {
                        let t = std::time::Instant::now();
                        let digest = scb::sha256_hex(&multi);
                        t_hash = t.elapsed();
                        digest
                    })?;
                    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
                    tracing::debug!(
                        early_journal_ms = ms(t_journal),
                        early_seal_ms = ms(t_seal - t_journal),
                        early_write_ms = ms(t0.elapsed() - t_seal),
                        early_hash_ms = ms(t_hash),
                        "early work times"
                    );
                    Some((prepared, blob_sha256))
                }
            };
            Ok((journal, sealed))
        })
    }

    /// `None` when a stream snapshot is a duplicate on LND's own listing:
    /// its channel set is the newest stored backup's, as the journal (read
    /// in the early work) confirms. lnd sends two or more snapshots per
    /// channel event, each re-encrypted; verifying the ones that would not
    /// be kept cost LND a full decrypt and parse (50 ms of its CPU at
    /// 10,000 channels), beside the delivery of the one that is. Only when
    /// the last look at the journal makes a duplicate likely is the early
    /// work waited for first, so a new snapshot's verify never waits for it.
    /// Snapshots from a connect, the schedule or `backup --once` are always
    /// verified: they are the proof that LND's backup still reads. A cover
    /// target that does not yet hold this state's multi needs one verified.
    async fn unchanged_as_listed(
        &self,
        source: &str,
        listed: &str,
        early: EarlyWork,
    ) -> Result<Option<Early>, PipelineError> {
        let hint = self
            .newest_seen
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default();
        if source != "stream" || hint.as_deref() != Some(listed) || !self.remembered.holds(listed) {
            return Ok(Some(Early::Running(early)));
        }
        let (journal, sealed) = early.await??;
        if journal.newest().is_some_and(|n| n.fingerprint == listed) {
            return Ok(None);
        }
        // `run` notes the journal's newest once it has the early work.
        Ok(Some(Early::Done((journal, sealed))))
    }

    /// The spool keeps a stored backup's sealed bytes for its first
    /// deliveries; [`FRESH_FOR`] later they go, and any delivery after reads
    /// the file.
    fn forget_fresh_later(&self, id: &str) {
        let (spool, id) = (self.spool.clone(), id.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(FRESH_FOR).await;
            spool.forget_fresh(&id);
        });
    }

    fn saw_newest(&self, fingerprint: Option<String>) {
        if let Ok(mut n) = self.newest_seen.lock() {
            *n = fingerprint;
        }
    }

    /// The channels of a verified snapshot: what LND's `VerifyChanBackup`
    /// reports, or for an lnd that answers it empty (< 0.19) what the backup
    /// key reads, else what LND listed with the snapshot.
    async fn channels(
        &self,
        verified: Option<BTreeSet<ChanPoint>>,
        multi: &bytes::Bytes,
        listed: &BTreeSet<ChanPoint>,
    ) -> BTreeSet<ChanPoint> {
        let offline = self.read_offline(multi).await;
        let Some(v) = verified else {
            return offline.unwrap_or_else(|| listed.clone());
        };
        if v != *listed {
            tracing::warn!(
                listed = listed.len(),
                verified = v.len(),
                "LND listed other channel points than the backup contains; using the verified ones"
            );
        }
        if offline.as_ref().is_some_and(|o| *o != v) {
            tracing::warn!(
                verified = v.len(),
                read = offline.as_ref().map_or(0, BTreeSet::len),
                "the backup key reads other channels in the backup than LND's VerifyChanBackup reports; using LND's"
            );
        }
        v
    }

    /// lnd#4377: after a lost channel.db lnd writes an empty backup. A snapshot
    /// missing channels of the last good backup is suspect unless LND reports
    /// each missing channel as closed.
    async fn shrink_guard(
        &self,
        lnd: &LndClient,
        good: &BackupRecord,
        points: &BTreeSet<ChanPoint>,
    ) -> Option<Suspect> {
        let good_points = self.good_points_of(good);
        let missing: BTreeSet<ChanPoint> = good_points.difference(points).copied().collect();
        if missing.is_empty() {
            return None;
        }
        let closed = self.closed_channels(lnd).await;
        let unconfirmed: Vec<&ChanPoint> = missing.difference(&closed).collect();
        if unconfirmed.is_empty() {
            tracing::info!(
                closed = missing.len(),
                "channels missing from the new backup are closed according to LND"
            );
            return None;
        }
        Some(Suspect {
            reason: suspect_reason(unconfirmed.len(), points.is_empty()),
            channels: unconfirmed.iter().map(ToString::to_string).collect(),
        })
    }
}

impl Pipeline {
    /// The channel points of `good`, from memory when this pipeline stored it.
    fn good_points_of(&self, good: &BackupRecord) -> Arc<BTreeSet<ChanPoint>> {
        let mut cached = self.good_points.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((id, points)) = cached.as_ref()
            && *id == good.id
        {
            return points.clone();
        }
        let points = Arc::new(good.chan_point_set());
        *cached = Some((good.id.clone(), points.clone()));
        points
    }

    /// Remember the points of a backup just stored as the last good one.
    fn stored_good(&self, rec: &BackupRecord, points: BTreeSet<ChanPoint>) {
        let mut cached = self.good_points.lock().unwrap_or_else(|e| e.into_inner());
        *cached = Some((rec.id.clone(), Arc::new(points)));
    }
}

/// What the shrink guard found: the reason, which goes with the backup to
/// targets and logs, and the channels, which stay in the local journal.
struct Suspect {
    reason: String,
    channels: Vec<String>,
}

/// The suspect reason: counts only. Channel points tie the node to its
/// UTXOs and peers, and this text is copied into target manifests, the
/// share's history and the log.
fn suspect_reason(missing: usize, empty: bool) -> String {
    let what = format!(
        "{missing} channel(s) of the last good backup are missing and LND does not report them closed"
    );
    if empty {
        format!("empty snapshot: {what} (lost channel.db? see lnd#4377)")
    } else {
        what
    }
}

/// Log when a lasting condition starts, changes or ends; not on every repeat.
fn log_change(
    slot: &std::sync::Mutex<Option<String>>,
    now: Option<String>,
    failing: &str,
    recovered: &str,
) {
    let before = std::mem::replace(
        &mut *slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        now.clone(),
    );
    match (&before, &now) {
        (_, Some(e)) if before.as_ref() != Some(e) => tracing::warn!(error = %e, "{failing}"),
        (_, Some(e)) => tracing::debug!(error = %e, "still: {failing}"),
        (Some(_), None) => tracing::info!("{recovered}"),
        (None, None) => {}
    }
}

impl Pipeline {
    /// The channel set the backup key reads in `multi`; `None` without a
    /// key or when it cannot (logged once per change of the reason).
    async fn read_offline(&self, multi: &bytes::Bytes) -> Option<BTreeSet<ChanPoint>> {
        let key = self.backup_key.clone()?;
        let multi = multi.clone();
        let read = blocking(move || crate::chanbackup::open_multi(&key, &multi)).await;
        let result = match read {
            Ok(Ok(m)) => Ok(m.singles.iter().map(|s| s.chan_point()).collect()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        log_change(
            &self.offline_error,
            result.as_ref().err().cloned(),
            "cannot read LND's backup with lnd.backup_key_file; relying on VerifyChanBackup alone",
            "the backup key reads LND's backups again",
        );
        result.ok()
    }

    /// LND's closed channels, or none when it cannot say. A node that does not
    /// implement `ClosedChannels` fails the same way for every snapshot: that
    /// is logged when it starts and when it stops, not each time.
    async fn closed_channels(&self, lnd: &LndClient) -> BTreeSet<ChanPoint> {
        let result = lnd.closed_channels().await;
        log_change(
            &self.closed_channels_error,
            result.as_ref().err().map(ToString::to_string),
            "cannot ask LND which channels closed; missing channels count as unconfirmed until it answers",
            "LND answers ClosedChannels again",
        );
        result.unwrap_or_default()
    }
}

/// First 12 hex characters of an id or fingerprint, for humans.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

impl From<tokio::task::JoinError> for PipelineError {
    fn from(e: tokio::task::JoinError) -> Self {
        PipelineError::Task(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_suspect_reason_says_counts_only() {
        assert_eq!(
            super::suspect_reason(3, false),
            "3 channel(s) of the last good backup are missing and LND does not report them closed"
        );
        let empty = super::suspect_reason(2, true);
        assert!(empty.starts_with("empty snapshot: 2 channel(s)"), "{empty}");
        assert!(empty.contains("lnd#4377"), "{empty}");
    }
}
