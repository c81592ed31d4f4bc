//! The `SubscribeChannelBackups` stream, and the reader that keeps only the
//! newest snapshot of it.

use std::sync::Arc;

use super::{LndClient, LndError, MultiOnlySnapshot, snapshot_from_multi};
use crate::scb::Snapshot;

/// The `SubscribeChannelBackups` stream.
pub struct BackupStream {
    pub(super) inner: tonic::Streaming<MultiOnlySnapshot>,
    pub(super) client: LndClient,
}

impl BackupStream {
    /// The next snapshot; `Err(StreamEnded)` when LND closes the stream.
    pub async fn next(&mut self) -> Result<Snapshot, LndError> {
        match self.inner.message().await {
            Ok(Some(s)) => snapshot_from_multi("SubscribeChannelBackups", s.multi_chan_backup),
            Ok(None) => Err(LndError::StreamEnded),
            Err(status) => {
                Err(self
                    .client
                    .status_error("SubscribeChannelBackups", "offchain:read", &status))
            }
        }
    }
}

impl BackupStream {
    /// Read the stream on a task of its own and keep only the newest snapshot.
    /// Every snapshot carries LND's whole multi backup, so one that is still
    /// waiting when a newer one arrives is worth nothing: during a burst of
    /// channel events the pipeline processes the newest state each time it is
    /// free, instead of working through a backlog. At most one decoded
    /// snapshot waits, whatever the peer sends.
    pub fn newest_only(mut self) -> NewestSnapshot {
        let slot = Arc::new(std::sync::Mutex::new(Slot::default()));
        let ready = Arc::new(tokio::sync::Notify::new());
        let (s, r) = (slot.clone(), ready.clone());
        let reader = tokio::spawn(async move {
            // The newest multi, held until the next message is decoded: its
            // buffer (see `SharedMultiBackup`) is then never tonic's alone, so
            // tonic receives each message into a new buffer of its size
            // instead of growing one it keeps for the stream's life.
            let mut _received: Option<bytes::Bytes> = None;
            loop {
                let next = self.next().await;
                let ended = next.is_err();
                {
                    let mut slot = lock(&s);
                    match next {
                        Ok(snap) => {
                            _received = Some(snap.multi.clone());
                            if slot.newest.replace(snap).is_some() {
                                slot.superseded += 1;
                            }
                        }
                        Err(e) => slot.end = Some(e),
                    }
                }
                r.notify_one();
                if ended {
                    return;
                }
            }
        });
        NewestSnapshot {
            slot,
            ready,
            reader,
        }
    }
}

#[derive(Default)]
struct Slot {
    newest: Option<Snapshot>,
    /// Snapshots replaced by a newer one before anyone took them.
    superseded: u64,
    end: Option<LndError>,
}

fn lock(slot: &std::sync::Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    // The reader never panics while holding the lock; a poisoned slot is still consistent.
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The newest snapshot of a [`BackupStream`]; see [`BackupStream::newest_only`].
/// Dropping it stops the reader and closes the stream.
pub struct NewestSnapshot {
    slot: Arc<std::sync::Mutex<Slot>>,
    ready: Arc<tokio::sync::Notify>,
    reader: tokio::task::JoinHandle<()>,
}

impl NewestSnapshot {
    /// The newest snapshot not yet taken, with how many older ones it
    /// replaced; the stream's error once every snapshot before it was taken.
    pub async fn next(&mut self) -> Result<(Snapshot, u64), LndError> {
        loop {
            {
                let mut slot = lock(&self.slot);
                if let Some(snap) = slot.newest.take() {
                    return Ok((snap, std::mem::take(&mut slot.superseded)));
                }
                if let Some(e) = slot.end.take() {
                    return Err(e);
                }
                if self.reader.is_finished() {
                    return Err(LndError::StreamEnded);
                }
            }
            self.ready.notified().await;
        }
    }
}

impl Drop for NewestSnapshot {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
