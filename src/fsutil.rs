//! Durable file writes: temp file, `sync_all`, rename, fsync the directory.
//!
//! A crash at any point leaves either the old file or the new one, never a
//! partial one: readers only ever see complete files under their final name.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The CA certificates a PEM bundle holds (`cacert` settings): at least one,
/// or an error that says which was wrong.
pub fn read_ca_bundle(path: &Path) -> Result<Vec<reqwest::Certificate>, CaBundleError> {
    let pem = fs::read(path).map_err(CaBundleError::Read)?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| CaBundleError::NotPem(e.to_string()))?;
    if certs.is_empty() {
        return Err(CaBundleError::Empty);
    }
    Ok(certs)
}

/// Why a CA bundle could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CaBundleError {
    #[error("cannot read it: {0}")]
    Read(io::Error),
    #[error("not a PEM certificate: {0}")]
    NotPem(String),
    #[error("no PEM certificate in it")]
    Empty,
}

/// Read a file that someone else may control (a dir target on a share) and
/// that must be a regular file of at most `limit` bytes. It is opened with
/// `O_NOFOLLOW` (a symlink to `/dev/zero` is refused, not followed) and
/// `O_NONBLOCK` (opening a FIFO does not wait for a writer), its type is
/// checked on the open file, and the read stops after `limit` bytes even if
/// the file grows meanwhile: a hostile share can make the read fail, never
/// hang or fill the memory.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, ReadRegularError> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path);
    let file = match opened {
        Ok(f) => f,
        // O_NOFOLLOW on a symlink: ELOOP.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(ReadRegularError::NotRegular("a symbolic link"));
        }
        Err(e) => return Err(ReadRegularError::Io(e)),
    };
    let meta = file.metadata().map_err(ReadRegularError::Io)?;
    let kind = meta.file_type();
    let what = if kind.is_file() {
        None
    } else if kind.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_dir() {
        Some("a directory")
    } else {
        Some("not a file")
    };
    if let Some(what) = what {
        return Err(ReadRegularError::NotRegular(what));
    }
    if meta.len() > limit {
        return Err(ReadRegularError::TooLarge {
            size: meta.len(),
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadRegularError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadRegularError::TooLarge {
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Why [`read_regular`] gave no bytes. The texts follow the file's path:
/// "PATH is a FIFO (named pipe), not a regular file".
#[derive(Debug, thiserror::Error)]
pub enum ReadRegularError {
    #[error("cannot be read: {0}")]
    Io(io::Error),
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is larger than {} (at least {size} bytes)", human_bytes(*limit))]
    TooLarge { size: u64, limit: u64 },
}

/// `65536` -> "64 KiB", `67108864` -> "64 MiB", else bytes.
pub fn human_bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// Suffix of in-flight temp files.
pub const TEMP_SUFFIX: &str = ".tmp";
/// A temp file left this long is garbage whoever wrote it: a write takes
/// milliseconds. Files of other programs, or of ours whose PID cannot be
/// read from the name, are swept only after this.
pub const TEMP_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// Write `bytes` to `path` atomically with the given mode (e.g. 0o600).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_temp(path, bytes, mode)?;
    commit_temp(&tmp, path)
}

/// First half of an atomic write: the complete, fsynced content under a temp
/// name next to `path` ([`temp_path`]: ours alone, so two processes writing
/// the same file never write into or rename each other's). Nothing reads
/// temp files; a crash leaves only garbage that [`remove_temp_files`] sweeps.
pub fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> io::Result<PathBuf> {
    write_temp_inner(path, bytes, mode, false, || ()).map(|(tmp, ())| tmp)
}

/// [`write_temp`] of a large file, with `meanwhile` run between the write and
/// the fsync: the kernel is first told to start writing the bytes out
/// (`posix_fadvise(DONTNEED)` starts writeback on Linux; PostgreSQL uses it
/// so), so CPU work that needs no file, such as hashing, runs while the
/// disk writes instead of after the fsync. Its result comes back with the
/// temp path; the file is still fsynced before this returns.
pub fn write_temp_while<T>(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    meanwhile: impl FnOnce() -> T,
) -> io::Result<(PathBuf, T)> {
    write_temp_inner(path, bytes, mode, true, meanwhile)
}

fn write_temp_inner<T>(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    start_writeback: bool,
    meanwhile: impl FnOnce() -> T,
) -> io::Result<(PathBuf, T)> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have stripped bits we asked for; set exactly what we want.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        if start_writeback {
            // Advice only: where it is refused, the fsync below writes all.
            let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
        }
        let out = meanwhile();
        f.sync_all()?;
        Ok(out)
    })();
    match result {
        Ok(out) => Ok((tmp, out)),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Second half: rename the temp file over `path` and make the rename durable.
pub fn commit_temp(tmp: &Path, path: &Path) -> io::Result<()> {
    replace_with_temp(tmp, path)?;
    sync_dir(&parent_of(path))
}

/// Rename the (fsynced) temp file over `path` without waiting for the
/// rename to reach the disk: after a power loss `path` holds either the old
/// or the new content, each complete. Only for a change that may be lost,
/// such as a record that a delivery happened (it is made again).
pub fn replace_with_temp(tmp: &Path, path: &Path) -> io::Result<()> {
    if let Err(e) = fs::rename(tmp, path) {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    Ok(())
}

/// Remove leftover temp files in `dir` (after a crash). Returns how many.
///
/// Another process may be writing in the same dir right now (`keys put`
/// replacing the audit head while `watch` starts, `backup --once` beside
/// `watch`), so a `*.tmp` is only garbage when it is certainly nobody's:
/// one of ours ([`temp_path`]) whose writer's PID no longer runs, or any
/// that has not been touched for [`TEMP_MAX_AGE`]. A live writer's file is
/// never swept from under it; a PID reused since the crash only delays the
/// sweep to the age rule.
pub fn remove_temp_files(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(TEMP_SUFFIX) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= TEMP_MAX_AGE);
        let orphan = temp_writer(&name).is_some_and(|pid| !pid_alive(pid));
        if !(old || orphan) {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => n += 1,
            // Its writer renamed it meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if n > 0 {
        sync_dir(dir)?;
    }
    Ok(n)
}

/// Whether a process with this PID exists (in our PID namespace). Unknown
/// (EPERM: another user's) counts as alive.
pub fn pid_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(e) if e == rustix::io::Errno::SRCH
    )
}

/// Held while a process writes into a directory that several processes
/// write (a dir target): an exclusive `flock` on `dir/name`, created 0600 if
/// missing, released when the returned file is dropped (or the process
/// dies). Waits for the holder: callers bound the wait with their own
/// timeout. The lock file is opened without following a symlink or
/// blocking on a FIFO, and must be a regular file.
pub fn lock_dir(dir: &Path, name: &str) -> io::Result<File> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(flags.bits() as i32)
        .open(dir.join(name))?;
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::other("the lock file is not a regular file"));
    }
    file.lock()?;
    Ok(file)
}

/// fsync a directory so that a rename or unlink inside it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Create a directory (and parents) with the given mode if it does not exist.
pub fn ensure_dir(dir: &Path, mode: u32) -> io::Result<()> {
    if !dir.is_dir() {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// The permission bits of an open secret file when group or others may
/// read or write it (`None`: owner only). Checked on the open file, so a
/// swap between the check and the read cannot dodge it.
pub fn too_open(file: &File) -> io::Result<Option<u32>> {
    let mode = file.metadata()?.permissions().mode() & 0o777;
    Ok((mode & 0o077 != 0).then_some(mode))
}

/// Create a new file that must not exist yet, mode 0600, and write `bytes`.
pub fn create_secret_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = written {
        // Do not leave a partial secret file that would block a retry.
        drop(f);
        let _ = fs::remove_file(path);
        return Err(e);
    }
    sync_dir(&parent_of(path))
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A temp name next to `path` that no other write uses:
/// `.<name>.<pid>.<random>.tmp`. The PID lets [`remove_temp_files`] tell an
/// orphan from a file a live process is still writing; the random part keeps
/// two writes of one process apart.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let nonce: u64 = rand::random();
    path.with_file_name(format!(
        ".{name}.{}.{nonce:016x}{TEMP_SUFFIX}",
        std::process::id()
    ))
}

/// The PID in a temp name [`temp_path`] made, if it is one.
fn temp_writer(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix('.')?.strip_suffix(TEMP_SUFFIX)?;
    let mut parts = rest.rsplitn(3, '.');
    let nonce = parts.next()?;
    let pid = parts.next()?;
    parts.next()?;
    (nonce.len() == 16 && nonce.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| pid.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_meanwhile_runs_on_the_whole_file_and_its_result_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = vec![7u8; 300_000];
        let (tmp, seen) = write_temp_while(&dir.path().join("big"), &bytes, 0o600, || {
            // Between the write and the fsync: every byte is in the temp file.
            let names: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert_eq!(names.len(), 1, "{names:?}");
            fs::read(&names[0]).unwrap().len()
        })
        .unwrap();
        assert_eq!(seen, bytes.len());
        assert_eq!(fs::read(&tmp).unwrap(), bytes);
        let mode = fs::metadata(&tmp).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(".big.") && name.ends_with(TEMP_SUFFIX),
            "{name}"
        );
    }

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left: {names:?}");
    }

    #[test]
    fn read_regular_refuses_what_is_not_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"12345").unwrap();
        assert_eq!(read_regular(&p, 5).unwrap(), b"12345");
        let e = read_regular(&p, 4).unwrap_err();
        assert!(
            matches!(e, ReadRegularError::TooLarge { size: 5, limit: 4 }),
            "{e}"
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let e = read_regular(&link, 100).unwrap_err();
        assert_eq!(e.to_string(), "is a symbolic link, not a regular file");
        let e = read_regular(dir.path(), 100).unwrap_err();
        assert_eq!(e.to_string(), "is a directory, not a regular file");
        let e = read_regular(&dir.path().join("missing"), 100).unwrap_err();
        assert!(matches!(&e, ReadRegularError::Io(io) if io.kind() == io::ErrorKind::NotFound));
        assert_eq!(human_bytes(64 * 1024), "64 KiB");
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }

    #[test]
    fn temp_names_are_unique_and_carry_the_writer() {
        let p = Path::new("/x/escrow-audit.head");
        let (a, b) = (temp_path(p), temp_path(p));
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".escrow-audit.head."), "{name}");
        assert_eq!(temp_writer(name), Some(std::process::id()));
        assert_eq!(temp_writer("escrow-audit.head.tmp"), None);
        assert_eq!(temp_writer(".x.12.nothex.tmp"), None);
    }

    #[test]
    fn only_orphaned_or_old_temp_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Someone else's write in progress: a name we did not make, fresh.
        fs::write(d.join("escrow-audit.head.tmp"), b"theirs").unwrap();
        // A live writer of ours (this process).
        let live = temp_path(&d.join("journal.json"));
        fs::write(&live, b"live").unwrap();
        // A writer that died: a PID above any pid_max.
        let dead = d.join(format!(".journal.json.{}.{:016x}.tmp", i32::MAX, 7));
        fs::write(&dead, b"dead").unwrap();
        // Anything untouched for longer than TEMP_MAX_AGE.
        let old = d.join("left-by-an-old-version.tmp");
        let f = fs::File::create(&old).unwrap();
        let then = std::time::SystemTime::now() - TEMP_MAX_AGE - TEMP_MAX_AGE;
        f.set_modified(then).unwrap();
        drop(f);
        assert_eq!(remove_temp_files(d).unwrap(), 2);
        assert!(d.join("escrow-audit.head.tmp").exists());
        assert!(live.exists());
        assert!(!dead.exists() && !old.exists());
    }

    #[test]
    fn a_dir_lock_is_exclusive_and_refuses_what_is_not_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir(dir.path(), ".lock").unwrap();
        let other = File::open(dir.path().join(".lock")).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        other.try_lock().unwrap();
        std::os::unix::fs::symlink("/dev/null", dir.path().join("link")).unwrap();
        assert!(lock_dir(dir.path(), "link").is_err());
    }
}
