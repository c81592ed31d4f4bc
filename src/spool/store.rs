//! Storing a sealed backup: its file, then the journal entry that makes it
//! durable, and reading it back checked against its id.
//!
//! The file can be written ahead ([`Spool::prepare`]): complete and fsynced
//! under a temp name while the pipeline still waits for LND's
//! `VerifyChanBackup`, and only renamed into place and journaled
//! ([`Spool::store_prepared`]) once LND has accepted the snapshot. A temp
//! file is nothing anyone reads; dropped unstored it is removed, and after
//! a crash the next open sweeps it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{
    BACKUPS_DIR, BackupRecord, CrashPoint, Journal, JournalTemp, Signed, Spool, SpoolError, Stored,
    prune,
};
use crate::fsutil;
use crate::scb::sha256_hex;

/// What a new backup's temp file is named after: its id, the SHA-256 of
/// its bytes, is computed while the file is written out.
const NEW_BACKUP: &str = "new.age";

/// A sealed backup written and fsynced under a temp name in the spool, not
/// yet stored: removed when dropped unless [`Spool::store_prepared`] took it.
#[derive(Debug)]
pub struct Prepared {
    id: String,
    len: u64,
    tmp: Option<PathBuf>,
    /// The sealed bytes, when the caller shares them (see [`Fresh`]).
    sealed: Option<Fresh>,
}

/// The files of backups a store let go of, removed when this is dropped.
/// The journal no longer names them, so nothing reads them; only the
/// moment of their removal is the holder's (after a crash before it, the
/// next open sweeps them).
#[derive(Debug, Default)]
#[must_use = "dropping it removes the pruned files at once"]
pub struct Pruned(Vec<PathBuf>);

impl Drop for Pruned {
    fn drop(&mut self) {
        for p in &self.0 {
            if let Err(e) = fs::remove_file(p) {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove pruned backup; it is swept on next start");
            }
        }
    }
}

/// The sealed bytes of the backup this spool stored last, kept in memory
/// for its first deliveries so that they need not read the file back and
/// hash it again (about a third of a delivery's CPU at 10,000 channels in
/// a profile). They are the bytes whose SHA-256 became the id, so nothing
/// is taken on trust; the pipeline lets them go soon after
/// (`forget_fresh`), and every later read is from the file, checked.
pub(super) struct Fresh {
    id: String,
    sealed: Arc<Vec<u8>>,
}

impl std::fmt::Debug for Fresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fresh")
            .field("id", &self.id)
            .field("len", &self.sealed.len())
            .finish()
    }
}

impl Prepared {
    /// The SHA-256 of the sealed bytes: the id it will be stored under.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its temp file, now the caller's to rename or remove.
    fn take(mut self) -> PathBuf {
        self.tmp.take().unwrap_or_default()
    }

    /// Leave the temp file where it is, as a killed process would (the
    /// unit tests' crash points; the next open sweeps it).
    fn abandon(mut self) {
        self.tmp = None;
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

impl Spool {
    /// Write `sealed` into the spool under a temp name, fsynced, and hash it:
    /// the slow half of a store, which needs neither the lock nor the journal.
    pub fn prepare(&self, sealed: &[u8]) -> Result<Prepared, SpoolError> {
        self.prepare_while(sealed, || ()).map(|(blob, ())| blob)
    }

    /// [`Spool::prepare`], with `meanwhile` (and the id's hash) run while
    /// the disk writes the file ([`fsutil::write_temp_while`]): the temp
    /// name is therefore not the id's, which is known only after.
    pub fn prepare_while<T>(
        &self,
        sealed: &[u8],
        meanwhile: impl FnOnce() -> T,
    ) -> Result<(Prepared, T), SpoolError> {
        let dir = self.dir.join(BACKUPS_DIR);
        let (tmp, (id, out)) =
            fsutil::write_temp_while(&dir.join(NEW_BACKUP), sealed, 0o600, || {
                (sha256_hex(sealed), meanwhile())
            })
            .map_err(|source| SpoolError::Io {
                op: "write a new backup file in",
                path: dir,
                source,
            })?;
        let blob = Prepared {
            id,
            len: sealed.len() as u64,
            tmp: Some(tmp),
            sealed: None,
        };
        Ok((blob, out))
    }

    /// [`Spool::prepare_while`], keeping the bytes: once stored, its
    /// deliveries take them from memory ([`Spool::read_shared`]) until
    /// [`Spool::forget_fresh`].
    pub fn prepare_shared_while<T>(
        &self,
        sealed: Arc<Vec<u8>>,
        meanwhile: impl FnOnce() -> T,
    ) -> Result<(Prepared, T), SpoolError> {
        let (mut blob, out) = self.prepare_while(&sealed, meanwhile)?;
        blob.sealed = Some(Fresh {
            id: blob.id.clone(),
            sealed,
        });
        Ok((blob, out))
    }

    /// [`Spool::prepare_shared_while`] with nothing else to do meanwhile.
    pub fn prepare_shared(&self, sealed: Arc<Vec<u8>>) -> Result<Prepared, SpoolError> {
        self.prepare_shared_while(sealed, || ())
            .map(|(blob, ())| blob)
    }

    /// Store a sealed backup. `record.id` is set here from the bytes.
    pub fn store(&self, record: BackupRecord, sealed: &[u8]) -> Result<Stored, SpoolError> {
        self.store_prepared(record, self.prepare(sealed)?)
    }

    /// [`Spool::store`] of a backup whose file [`Spool::prepare`] wrote.
    pub fn store_prepared(
        &self,
        record: BackupRecord,
        blob: Prepared,
    ) -> Result<Stored, SpoolError> {
        self.store_with(record, blob, true)
            .map(|(stored, _pruned)| stored)
    }

    /// [`Spool::store_prepared`] that leaves the removal of the files it
    /// pruned to the caller: they go when the returned [`Pruned`] is
    /// dropped, so that a caller can first wake what delivers the new one.
    pub fn store_prepared_prune_later(
        &self,
        record: BackupRecord,
        blob: Prepared,
    ) -> Result<(Stored, Pruned), SpoolError> {
        self.store_with(record, blob, true)
    }

    /// Store the same channel state re-sealed to a new recipient set (age
    /// identity rotation): like [`Spool::store`], but without the fingerprint
    /// dedupe (the fingerprint is the one of the backup it re-seals), so it
    /// always becomes the newest backup and, unless suspect, the last good one.
    pub fn store_reseal(
        &self,
        record: BackupRecord,
        sealed: &[u8],
    ) -> Result<BackupRecord, SpoolError> {
        match self.store_with(record, self.prepare(sealed)?, false)?.0 {
            Stored::New(r) => Ok(*r),
            // Unreachable without dedupe; report it rather than panic.
            Stored::Duplicate { fingerprint } => Err(SpoolError::Journal {
                path: self.journal_path(),
                reason: format!("re-seal of {fingerprint} was taken for a duplicate"),
            }),
        }
    }

    fn store_with(
        &self,
        mut record: BackupRecord,
        mut blob: Prepared,
        dedupe: bool,
    ) -> Result<(Stored, Pruned), SpoolError> {
        record.id = blob.id.clone();
        record.sealed_len = blob.len;
        let fresh = blob.sealed.take();
        let t0 = std::time::Instant::now();
        let _lock = self.lock()?;
        let t_lock = t0.elapsed();
        let mut j = self.load()?;
        let t_load = t0.elapsed();
        if dedupe
            && j.newest()
                .is_some_and(|n| n.fingerprint == record.fingerprint)
        {
            let fingerprint = record.fingerprint;
            return Ok((Stored::Duplicate { fingerprint }, Pruned::default()));
        }
        if let Err(e) = self.crash_at(CrashPoint::BlobTempWritten) {
            blob.abandon();
            return Err(e);
        }
        record.seq = j.max_seq() + 1;
        j.next_seq = record.seq + 1;
        let signer = self.keys.public();
        let fingerprint = self.keys.keyed_fingerprint(&record.fingerprint);
        record.signed = Some(Signed {
            fingerprint,
            signature: String::new(),
            signer: signer.clone(),
        });
        let signature = self.keys.sign(&record.claims(&signer));
        if let Some(s) = record.signed.as_mut() {
            s.signature = signature;
        }
        // The same sealed bytes cannot come twice (fresh age file key each time),
        // but keep the journal's ids unique even so.
        j.backups.retain(|b| b.id != record.id);
        j.backups.push(record.clone());
        if !record.is_suspect() {
            j.last_good = Some(record.id.clone());
            let newest = j.backups.len() - 1;
            for b in &mut j.backups[..newest] {
                b.chan_points = Vec::new();
                b.suspect_channels = Vec::new();
            }
        }
        let pruned = prune(&mut j, self.keep);
        let t_sign = t0.elapsed();
        let path = self.backup_path(&record.id);
        let (renamed, written) = self.rename_beside_journal(blob.take(), &path, &j);
        let t_rename = t0.elapsed();
        // Neither the file nor the journal naming it is in place: take back
        // what is (a full disk would otherwise fill up with every retry).
        let undo = |tmp: Option<&PathBuf>| {
            if let Some(tmp) = tmp {
                let _ = fs::remove_file(tmp);
            }
            let _ = fs::remove_file(&path);
        };
        let (tmp, bytes) = match (renamed, written) {
            (Ok(()), Ok(w)) => w,
            (Err(source), w) => {
                undo(w.as_ref().ok().map(|(tmp, _)| tmp));
                return Err(SpoolError::Io {
                    op: "rename into",
                    path,
                    source,
                });
            }
            (Ok(()), Err(e)) => {
                undo(None);
                return Err(e);
            }
        };
        self.crash_at(CrashPoint::BlobRenamed)?;
        self.crash_at(CrashPoint::JournalTempWritten)?;
        let saved = self.commit_journal(&tmp, bytes, j, true);
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        tracing::debug!(
            store_lock_ms = ms(t_lock),
            store_load_ms = ms(t_load - t_lock),
            store_sign_ms = ms(t_sign - t_load),
            store_rename_ms = ms(t_rename - t_sign),
            store_journal_ms = ms(t0.elapsed() - t_rename),
            "spool store stage times"
        );
        if let Err(e) = saved {
            #[cfg(test)]
            let simulated = matches!(e, SpoolError::Crash(_));
            #[cfg(not(test))]
            let simulated = false;
            if !simulated {
                undo(None);
            }
            return Err(e);
        }
        self.crash_at(CrashPoint::JournalRenamed)?;
        *self.fresh() = fresh;
        let pruned = Pruned(pruned.iter().map(|id| self.backup_path(id)).collect());
        Ok((Stored::New(Box::new(record)), pruned))
    }

    /// A store's two durable steps that do not depend on each other, side
    /// by side: the sealed file renamed into place with the rename on disk
    /// (an fsync of `backups/`), and the journal that will name it written
    /// and fsynced under its temp name (in the spool's own directory). The
    /// journal is renamed over the old one only after both, so it never
    /// names a file whose rename a power loss could still undo; the store
    /// waits for one fsync fewer in a row.
    fn rename_beside_journal(
        &self,
        tmp: PathBuf,
        path: &Path,
        j: &Journal,
    ) -> (io::Result<()>, Result<JournalTemp, SpoolError>) {
        crate::beside::both(
            "spool-rename",
            || fsutil::commit_temp(&tmp, path),
            || self.write_journal_temp(j),
        )
    }

    fn fresh(&self) -> std::sync::MutexGuard<'_, Option<Fresh>> {
        super::unpoisoned(&self.fresh)
    }

    /// [`Spool::read`], from memory while the backup is the one stored last
    /// with [`Spool::prepare_shared`] and not yet forgotten.
    pub fn read_shared(&self, id: &str) -> Result<Arc<Vec<u8>>, SpoolError> {
        match self.fresh_bytes(id) {
            Some(sealed) => Ok(sealed),
            None => self.read(id).map(Arc::new),
        }
    }

    /// The kept bytes of backup `id`, if it is the one stored last with
    /// [`Spool::prepare_shared`] and not yet forgotten: no I/O, so an async
    /// caller needs no blocking thread for it.
    pub fn fresh_bytes(&self, id: &str) -> Option<Arc<Vec<u8>>> {
        self.fresh()
            .as_ref()
            .filter(|f| f.id == id)
            .map(|f| f.sealed.clone())
    }

    /// Let the bytes of backup `id` go, if they are still kept; its
    /// deliveries from now on read the file.
    pub fn forget_fresh(&self, id: &str) {
        let mut fresh = self.fresh();
        if fresh.as_ref().is_some_and(|f| f.id == id) {
            *fresh = None;
        }
    }

    /// The sealed bytes of a backup, checked against their id.
    pub fn read(&self, id: &str) -> Result<Vec<u8>, SpoolError> {
        let path = self.backup_path(id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SpoolError::Missing {
                    id: id.to_string(),
                    path,
                });
            }
            Err(source) => {
                return Err(SpoolError::Io {
                    op: "read",
                    path,
                    source,
                });
            }
        };
        if sha256_hex(&bytes) != id {
            return Err(SpoolError::Integrity {
                id: id.to_string(),
                path,
            });
        }
        Ok(bytes)
    }
}
