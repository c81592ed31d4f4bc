//! The `dir` target: a directory on local disk or NFS that PBS (or any file
//! backup) picks up with the host's backups.
//!
//! ```text
//! PATH/channel.backup.age     newest good backup, replaced atomically
//! PATH/channel.backup.json    its manifest
//! PATH/channel.backup.pad     `privacy = "padded"` only: random bytes, the three up to a size bucket
//! PATH/history/<UTC time>-<fingerprint[..12]>[-suspect].age (+ .json)
//! ```
//! Suspect backups only ever go to `history/`. Every write holds an
//! exclusive `flock` on `PATH/.chanvault.lock` ([`LOCK_FILE`]), so `watch`
//! and a `backup --once` timer writing the same target one after the other
//! never interleave a backup file with another's manifest.
//!
//! Whoever runs the share can put anything under these names. Reads go
//! through [`fsutil::read_regular`]: no symlink is followed, a FIFO or device
//! is refused without blocking, and every read has a bound, so a hostile or
//! broken share makes a listing fail with one line naming the file, never
//! hang or exhaust memory.

use std::fs;
use std::path::{Path, PathBuf};

use crate::fsutil::{self, ReadRegularError};
use crate::sink::{BlockingTarget, Delivery, ErrorKind, Held, Manifest, Receipt, TargetError};

pub const CURRENT_FILE: &str = "channel.backup.age";
pub const CURRENT_MANIFEST: &str = "channel.backup.json";
/// On a padded target: random bytes that bring the current files to their size bucket.
pub const CURRENT_PADDING: &str = "channel.backup.pad";
pub const HISTORY_DIR: &str = "history";
/// Held (flock) by whichever process writes this target; never a backup.
pub const LOCK_FILE: &str = ".chanvault.lock";
const FILE_MODE: u32 = 0o600;
/// The largest manifest read from a target: chanvault writes a few hundred bytes.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
/// The largest sealed backup read from a target: twice the largest snapshot
/// chanvault takes from LND (`lnd::MAX_MESSAGE_BYTES`, 64 MiB), which leaves
/// room for age's overhead and for any backup this build could have written.
pub const MAX_BACKUP_BYTES: u64 = 128 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct DirTarget {
    name: String,
    path: PathBuf,
    padded: bool,
}

impl DirTarget {
    pub fn new(name: &str, path: &Path) -> Self {
        Self {
            name: name.to_string(),
            path: path.to_path_buf(),
            padded: false,
        }
    }

    /// Write [`CURRENT_PADDING`] next to the current files (`privacy = "padded"`).
    pub fn padded(mut self, padded: bool) -> Self {
        self.padded = padded;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// History file stem of a backup.
    pub fn history_stem(m: &Manifest) -> String {
        let fp: String = m.fingerprint.chars().take(12).collect();
        let suffix = if m.suspect.is_some() { "-suspect" } else { "" };
        format!("{}-{fp}{suffix}", m.created.format("%Y%m%dT%H%M%S%.3fZ"))
    }

    /// The manifest of the current backup, if any.
    pub fn current_manifest(&self) -> Result<Option<Manifest>, TargetError> {
        let p = self.path.join(CURRENT_MANIFEST);
        match fsutil::read_regular(&p, MAX_MANIFEST_BYTES) {
            Err(ReadRegularError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            r => self.parse_manifest(&p, r).map(Some),
        }
    }

    fn err(&self, message: String) -> TargetError {
        TargetError::new(&self.name, message)
    }

    /// A file this target holds, read with [`fsutil::read_regular`]; the
    /// error names the file and what is wrong with it.
    fn read_file(&self, p: &Path, limit: u64) -> Result<Vec<u8>, TargetError> {
        fsutil::read_regular(p, limit).map_err(|e| self.read_err(p, e))
    }

    fn read_err(&self, p: &Path, e: ReadRegularError) -> TargetError {
        match e {
            ReadRegularError::Io(e) => self
                .err(format!("cannot read {}: {e}", p.display()))
                .with_kind(ErrorKind::of_io(&e)),
            e => self.err(format!("{} {e}", p.display())),
        }
    }

    fn parse_manifest(
        &self,
        p: &Path,
        read: Result<Vec<u8>, ReadRegularError>,
    ) -> Result<Manifest, TargetError> {
        let bytes = read.map_err(|e| self.read_err(p, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| self.err(format!("{} is damaged: {e}", p.display())))
    }

    /// The backups here (current and history) with the files they are in,
    /// from their manifests: the current one first, then history by name.
    fn manifests(&self) -> Result<Vec<(Manifest, PathBuf)>, TargetError> {
        let path = &self.path;
        if !path.is_dir() {
            return Err(self
                .err(format!(
                    "{} does not exist or is not a directory (is the share mounted?)",
                    path.display()
                ))
                .with_kind(ErrorKind::Unreachable));
        }
        let dir_err = |p: &Path, e: std::io::Error| {
            self.err(format!("cannot read {}: {e}", p.display()))
                .with_kind(ErrorKind::of_io(&e))
        };
        let mut out = Vec::new();
        // The current file first: it is what a restore by hand uses.
        if let Some(m) = self.current_manifest()? {
            out.push((m, path.join(CURRENT_FILE)));
        }
        let hist = path.join(HISTORY_DIR);
        if hist.is_dir() {
            let entries = fs::read_dir(&hist).map_err(|e| dir_err(&hist, e))?;
            let mut found = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| dir_err(&hist, e))?;
                let p = entry.path();
                if p.extension().and_then(|e| e.to_str()) != Some("json") {
                    continue;
                }
                let m = self.parse_manifest(&p, fsutil::read_regular(&p, MAX_MANIFEST_BYTES))?;
                found.push((m, p.with_extension("age")));
            }
            found.sort_by(|a, b| a.1.cmp(&b.1));
            out.extend(found);
        }
        Ok(out)
    }

    fn put_blocking(&self, d: &Delivery) -> Result<Receipt, TargetError> {
        let io = |what: &str, p: &Path, e: std::io::Error| {
            self.err(format!("cannot {what} {}: {e}", p.display()))
                .with_kind(ErrorKind::of_io(&e))
        };
        if !self.path.is_dir() {
            // Create the target dir itself but never its parents: a missing
            // parent is usually an unmounted share, and writing under the
            // mount point would hide the backup on the local disk.
            let parent = self.path.parent().unwrap_or(Path::new("/"));
            if !parent.is_dir() {
                return Err(self
                    .err(format!(
                        "{} does not exist (is the share mounted?)",
                        parent.display()
                    ))
                    .with_kind(ErrorKind::Unreachable));
            }
            match fs::create_dir(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("create", &self.path, e)),
            }
        }
        // Waits for another chanvault writing here; a holder that hangs is
        // bounded by delivery.timeout_seconds like any hung share.
        let _held = fsutil::lock_dir(&self.path, LOCK_FILE)
            .map_err(|e| io("lock", &self.path.join(LOCK_FILE), e))?;
        let history = self.path.join(HISTORY_DIR);
        fsutil::ensure_dir(&history, 0o700).map_err(|e| io("create", &history, e))?;
        let manifest = Manifest::of(&d.record);
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| self.err(format!("cannot encode manifest: {e}")))?;
        let stem = Self::history_stem(&manifest);
        let hist_file = history.join(format!("{stem}.age"));
        let hist_json = history.join(format!("{stem}.json"));
        fsutil::write_atomic(&hist_file, &d.sealed, FILE_MODE)
            .map_err(|e| io("write", &hist_file, e))?;
        fsutil::write_atomic(&hist_json, &json, FILE_MODE)
            .map_err(|e| io("write", &hist_json, e))?;
        if !d.current {
            return Ok(Receipt {
                location: hist_file.display().to_string(),
            });
        }
        if let Some(kept) = self.keep_current(&manifest, d.known_seq)? {
            return Ok(Receipt {
                location: format!("{} ({kept})", hist_file.display()),
            });
        }
        let cur = self.path.join(CURRENT_FILE);
        let cur_json = self.path.join(CURRENT_MANIFEST);
        fsutil::write_atomic(&cur, &d.sealed, FILE_MODE).map_err(|e| io("write", &cur, e))?;
        fsutil::write_atomic(&cur_json, &json, FILE_MODE).map_err(|e| io("write", &cur_json, e))?;
        if self.padded {
            let pad = self.path.join(CURRENT_PADDING);
            let n = crate::privacy::padding_len((d.sealed.len() + json.len()) as u64);
            fsutil::write_atomic(&pad, &crate::privacy::padding(n), FILE_MODE)
                .map_err(|e| io("write", &pad, e))?;
        }
        Ok(Receipt {
            location: cur.display().to_string(),
        })
    }
}

impl DirTarget {
    /// Whether the current file must stay (a newer backup of the same
    /// journal: another process, or a late retry), and why. Ordered by
    /// sequence number, never by `created`: a clock that jumped ahead must
    /// not pin an old current file. A current file that claims a sequence
    /// number this journal never gave out was not written from it (a
    /// replay, a forgery, a lost state dir): it is replaced, and said so.
    fn keep_current(&self, new: &Manifest, known_seq: u64) -> Result<Option<String>, TargetError> {
        let existing = match self.current_manifest() {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::warn!(target = %self.name, error = %e, "the current manifest is unreadable; replacing it");
                return Ok(None);
            }
        };
        if existing.id == new.id {
            return Ok(None);
        }
        let Some(ours) = new.seq else {
            // An unsigned backup (stored before sequence numbers): by time.
            return Ok((existing.seq.is_none() && existing.created > new.created)
                .then(|| "kept newer current".to_owned()));
        };
        let Some(theirs) = existing.seq.filter(|t| *t > ours) else {
            return Ok(None);
        };
        // Ours only if our own key signed it: nobody else can make a
        // manifest that keeps our newest backup off the current file.
        let own = new
            .signer
            .as_ref()
            .and_then(|k| crate::signing::Trusted::new(None, std::slice::from_ref(k)).ok());
        let authentic =
            own.is_some_and(|t| existing.authenticate(&t, chrono::Utc::now()) == Ok(Some(theirs)));
        if authentic && theirs <= known_seq {
            return Ok(Some(format!("kept newer current, sequence {theirs}")));
        }
        tracing::warn!(
            target = %self.name,
            file = %self.path.join(CURRENT_MANIFEST).display(),
            claimed_seq = theirs,
            known_seq,
            authentic,
            "the current file claims a sequence number this state dir did not give out (another writer, a replay, a forgery or a lost journal); replacing it with backup {ours}"
        );
        Ok(None)
    }
}

impl BlockingTarget for DirTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "dir"
    }

    fn put(&self, d: &Delivery) -> Result<Receipt, TargetError> {
        self.put_blocking(d)
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn list_blocking(&self) -> Result<Vec<Held>, TargetError> {
        let mut held: Vec<Held> = self
            .manifests()?
            .into_iter()
            .map(|(m, file)| Held {
                id: m.sealed_sha256.clone(),
                created: m.created,
                channels: m.channels,
                fingerprint: m.fingerprint,
                sealed_sha256: m.sealed_sha256,
                suspect: m.suspect,
                locator: file.display().to_string(),
                published_in: "manifest",
                label: None,
                seq: m.seq,
            })
            .collect();
        // Stable: the current file stays ahead of its history copy.
        held.sort_by_key(|h| std::cmp::Reverse((h.seq, h.created)));
        Ok(held)
    }

    fn fetch_blocking(&self, locator: &str) -> Result<Vec<u8>, TargetError> {
        self.read_file(Path::new(locator), MAX_BACKUP_BYTES)
    }

    fn fetch_manifest_blocking(&self, locator: &str) -> Result<Option<Manifest>, TargetError> {
        let p = Path::new(locator).with_extension("json");
        self.parse_manifest(&p, fsutil::read_regular(&p, MAX_MANIFEST_BYTES))
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Target;
    use crate::spool::BackupRecord;
    use chrono::{Duration, Utc};
    use std::sync::Arc;

    fn delivery(fp: &str, bytes: &[u8], current: bool, age_secs: i64) -> Delivery {
        Delivery {
            record: BackupRecord {
                id: crate::scb::sha256_hex(bytes),
                created: Utc::now() - Duration::seconds(age_secs),
                source: "test".into(),
                channels: 2,
                chan_points: vec!["secret-ish".into()],
                fingerprint: fp.into(),
                blob_sha256: "b".into(),
                sealed_len: bytes.len() as u64,
                recipients: vec!["age1pub".into()],
                suspect: (!current).then(|| "shrunk".into()),
                suspect_channels: vec![],
                seq: 0,
                node: None,
                signed: None,
                cover_for: Vec::new(),
            },
            sealed: Arc::new(bytes.to_vec()),
            current,
            known_seq: 0,
        }
    }

    #[tokio::test]
    async fn current_is_replaced_and_history_kept() {
        let d = tempfile::tempdir().unwrap();
        let t = DirTarget::new("pbs", &d.path().join("pbs"));
        t.deliver(&delivery("aaaa", b"one", true, 10))
            .await
            .unwrap();
        t.deliver(&delivery("bbbb", b"two", true, 5)).await.unwrap();
        assert_eq!(
            fs::read(d.path().join("pbs").join(CURRENT_FILE)).unwrap(),
            b"two"
        );
        let m = t.current_manifest().unwrap().unwrap();
        assert_eq!(m.fingerprint, "bbbb");
        let json = fs::read_to_string(d.path().join("pbs").join(CURRENT_MANIFEST)).unwrap();
        assert!(
            !json.contains("secret-ish"),
            "channel points must not leave the host"
        );
        assert_eq!(
            fs::read_dir(d.path().join("pbs/history")).unwrap().count(),
            4
        );
        // Idempotent.
        t.deliver(&delivery("bbbb", b"two", true, 5)).await.unwrap();
    }

    #[tokio::test]
    async fn suspect_goes_to_history_only_and_older_never_replaces_newer() {
        let d = tempfile::tempdir().unwrap();
        let t = DirTarget::new("pbs", &d.path().join("pbs"));
        t.deliver(&delivery("good", b"good", true, 5))
            .await
            .unwrap();
        t.deliver(&delivery("empty", b"empty", false, 1))
            .await
            .unwrap();
        t.deliver(&delivery("old", b"old", true, 60)).await.unwrap();
        assert_eq!(
            fs::read(d.path().join("pbs").join(CURRENT_FILE)).unwrap(),
            b"good"
        );
        let names: Vec<String> = fs::read_dir(d.path().join("pbs/history"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.ends_with("-suspect.age")),
            "{names:?}"
        );
    }

    #[tokio::test]
    async fn lists_newest_first_and_fetches_what_it_lists() {
        let d = tempfile::tempdir().unwrap();
        let t = DirTarget::new("pbs", &d.path().join("pbs"));
        let e = t.list().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unreachable);
        assert!(e.to_string().contains("is the share mounted"), "{e}");
        t.deliver(&delivery("old", b"old", true, 60)).await.unwrap();
        t.deliver(&delivery("new", b"new", true, 5)).await.unwrap();
        t.deliver(&delivery("bad", b"bad", false, 1)).await.unwrap();
        let held = t.list().await.unwrap();
        let fps: Vec<&str> = held.iter().map(|h| h.fingerprint.as_str()).collect();
        // The current file ahead of its history copy.
        assert_eq!(fps, ["bad", "new", "new", "old"]);
        assert!(held[0].suspect.is_some());
        assert!(held[1].locator.ends_with(CURRENT_FILE), "{:?}", held[1]);
        assert_eq!(held[1].published_in, "manifest");
        for h in &held {
            let bytes = t.fetch(&h.locator).await.unwrap();
            assert_eq!(crate::scb::sha256_hex(&bytes), h.sealed_sha256);
            assert_eq!(h.id, h.sealed_sha256);
        }
        let gone = d.path().join("pbs").join(CURRENT_FILE);
        fs::remove_file(&gone).unwrap();
        let e = t.fetch(&gone.display().to_string()).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Io);
        assert!(e.to_string().starts_with("target pbs: cannot read "), "{e}");
    }

    /// `list` on a target, which must fail within a second; its message.
    async fn list_fails_fast(t: &DirTarget) -> String {
        let r = tokio::time::timeout(std::time::Duration::from_secs(1), t.list()).await;
        r.expect("list must not hang").unwrap_err().to_string()
    }

    #[tokio::test]
    async fn a_manifest_that_is_a_symlink_to_dev_zero_is_refused_not_read() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("pbs");
        fs::create_dir(&root).unwrap();
        let manifest = root.join(CURRENT_MANIFEST);
        std::os::unix::fs::symlink("/dev/zero", &manifest).unwrap();
        let t = DirTarget::new("pbs", &root);
        let e = list_fails_fast(&t).await;
        assert_eq!(
            e,
            format!(
                "target pbs: {} is a symbolic link, not a regular file",
                manifest.display()
            )
        );
        // A backup file behind a symlink is not fetched either.
        let file = root.join(CURRENT_FILE);
        std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            t.fetch(&file.display().to_string()),
        )
        .await;
        let e = r.expect("fetch must not hang").unwrap_err().to_string();
        assert!(e.ends_with("is a symbolic link, not a regular file"), "{e}");
    }

    #[tokio::test]
    async fn a_history_manifest_that_is_a_fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let t = DirTarget::new("pbs", &d.path().join("pbs"));
        t.deliver(&delivery("aaaa", b"one", true, 10))
            .await
            .unwrap();
        let fifo = d.path().join("pbs/history/00000000T000000.000Z-fifo.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        let e = list_fails_fast(&t).await;
        assert_eq!(
            e,
            format!(
                "target pbs: {} is a FIFO (named pipe), not a regular file",
                fifo.display()
            )
        );
    }

    #[tokio::test]
    async fn an_oversized_manifest_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("pbs");
        fs::create_dir(&root).unwrap();
        let manifest = root.join(CURRENT_MANIFEST);
        let f = fs::File::create(&manifest).unwrap();
        f.set_len(MAX_MANIFEST_BYTES + 1).unwrap();
        let t = DirTarget::new("pbs", &root);
        let e = list_fails_fast(&t).await;
        assert_eq!(
            e,
            format!(
                "target pbs: {} is larger than 64 KiB (at least 65537 bytes)",
                manifest.display()
            )
        );
        // A delivery replaces it (with a warning): the newest backup must
        // not be kept off the current file by a damaged manifest.
        t.deliver(&delivery("a", b"a", true, 0)).await.unwrap();
        assert_eq!(t.current_manifest().unwrap().unwrap().fingerprint, "a");
    }

    #[tokio::test]
    async fn missing_parent_is_refused_not_created() {
        let d = tempfile::tempdir().unwrap();
        let t = DirTarget::new("nfs", &d.path().join("mnt/share/chanvault"));
        let e = t.deliver(&delivery("a", b"a", true, 0)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unreachable);
        let e = e.to_string();
        assert!(e.starts_with("target nfs: "), "{e}");
        assert!(e.contains("is the share mounted"), "{e}");
        assert!(!d.path().join("mnt").exists());
    }
}
