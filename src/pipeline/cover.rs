//! Cover uploads for `privacy = "padded"` targets: the last good channel
//! state, re-sealed (a fresh age file key, so new bytes of the same size)
//! and stored like any backup, with a sequence number and a signed
//! manifest, so that restore and verify treat it as the newest backup.
//!
//! The plaintext is the newest multi LND gave for that state, kept in
//! memory (zeroized when replaced): the agent holds no age identity and
//! cannot open what it sealed. Until LND has given one in this process
//! there is nothing to cover with, and the cover is skipped.

use std::sync::{Arc, Mutex};

use chrono::Utc;

use super::{Pipeline, PipelineError, blocking, short};
use crate::secret::SecretBytes;
use crate::spool::{BackupRecord, Journal, Prepared, Pruned, Spool, SpoolError, Stored};

/// `BackupRecord::source` of a cover upload.
pub const COVER_SOURCE: &str = "cover";

/// A multi and the fingerprint of the channel set it holds.
type State = (String, Arc<SecretBytes>);

/// The newest multi of the last good state; `None` (nothing kept, nothing
/// copied) unless a target makes cover uploads.
#[derive(Clone, Default)]
pub(super) struct Remembered(Option<Arc<Mutex<Option<State>>>>);

impl Remembered {
    /// One that keeps the multi, for a pipeline whose targets get covers.
    pub(super) fn enabled() -> Self {
        Self(Some(Arc::default()))
    }

    fn set(&self, fingerprint: &str, multi: &[u8]) {
        let Some(kept) = &self.0 else {
            return;
        };
        let mut g = kept.lock().unwrap_or_else(|e| e.into_inner());
        *g = Some((
            fingerprint.to_owned(),
            Arc::new(SecretBytes::new(multi.to_vec())),
        ));
    }

    /// After a snapshot was skipped as unchanged: remember it if it is the last good state.
    pub(super) fn unchanged(&self, j: &Journal, fingerprint: &str, multi: &[u8]) {
        if j.last_good().is_some_and(|g| g.fingerprint == fingerprint) {
            self.set(fingerprint, multi);
        }
    }

    /// Store a backup, and remember its multi if it is the new last good
    /// state. The files it pruned go when the [`Pruned`] is dropped.
    pub(super) fn store(
        &self,
        spool: &Spool,
        record: BackupRecord,
        sealed: Prepared,
        multi: &[u8],
    ) -> Result<(Stored, Pruned), SpoolError> {
        let (stored, pruned) = spool.store_prepared_prune_later(record, sealed)?;
        if let Stored::New(r) = &stored
            && !r.is_suspect()
        {
            self.set(&r.fingerprint, multi);
        }
        Ok((stored, pruned))
    }

    /// Whether nothing more is needed to cover `fingerprint`'s state: no
    /// covers are made, or its multi is already kept.
    pub(super) fn holds(&self, fingerprint: &str) -> bool {
        let Some(kept) = &self.0 else {
            return true;
        };
        let g = kept.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref().is_some_and(|(f, _)| f == fingerprint)
    }

    fn get(&self) -> Option<State> {
        let kept = self.0.as_ref()?;
        kept.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Pipeline {
    /// Seal `multi`, store it, and remember it if it is the new last good state.
    /// `sealed`: `multi` already sealed and written ahead, if it was. The
    /// files the store pruned go when the [`Pruned`] is dropped.
    pub(super) async fn seal_and_store(
        &self,
        record: BackupRecord,
        multi: bytes::Bytes,
        sealed: Option<Prepared>,
    ) -> Result<(Stored, Pruned), PipelineError> {
        let (spool, recipients) = (self.spool.clone(), self.recipients.clone());
        let remembered = self.remembered.clone();
        blocking(move || -> Result<_, PipelineError> {
            let sealed = match sealed {
                Some(s) => s,
                None => spool.prepare_shared(Arc::new(crate::seal::seal(&recipients, &multi)?))?,
            };
            Ok(remembered.store(&spool, record, sealed, &multi)?)
        })
        .await?
    }

    /// Store a cover upload of the last good state for `targets` and wake
    /// the workers. `Ok(None)`: nothing to cover (no last good backup, a
    /// suspect newer than it, or no multi of its state from LND yet).
    pub async fn cover(&self, targets: &[String]) -> Result<Option<BackupRecord>, PipelineError> {
        let Some((fingerprint, multi)) = self.remembered.get() else {
            return Ok(None);
        };
        let (spool, recipients) = (self.spool.clone(), self.recipients.clone());
        let targets = targets.to_vec();
        let stored = blocking(move || -> Result<_, PipelineError> {
            let j = spool.journal()?;
            let Some(good) = j.last_good() else {
                return Ok(None);
            };
            // A suspect newer than the last good puts the state in question:
            // no cover until it is settled.
            if j.newest().map(|n| &n.id) != Some(&good.id) || good.fingerprint != fingerprint {
                return Ok(None);
            }
            let sealed = crate::seal::seal(&recipients, multi.expose())?;
            let record = BackupRecord {
                id: String::new(),
                created: Utc::now(),
                source: COVER_SOURCE.into(),
                blob_sha256: crate::scb::sha256_hex(multi.expose()),
                recipients: recipients.public_keys().to_vec(),
                sealed_len: 0,
                seq: 0,
                signed: None,
                cover_for: targets,
                ..good.clone()
            };
            Ok(Some(spool.store_reseal(record, &sealed)?))
        })
        .await??;
        if let Some(r) = &stored {
            tracing::info!(
                backup = short(&r.id),
                channels = r.channels,
                "stored a cover upload of the last good state for the padded targets"
            );
            self.wake();
        }
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::Remembered;

    #[test]
    fn only_a_cover_target_without_the_states_multi_needs_one() {
        assert!(
            Remembered::default().holds("f1"),
            "no covers: nothing needed"
        );
        let r = Remembered::enabled();
        assert!(!r.holds("f1"));
        r.set("f1", b"multi");
        assert!(r.holds("f1"));
        assert!(!r.holds("f2"));
    }
}
