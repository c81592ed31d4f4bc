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

/// Suffix of in-flight temp files; anything carrying it is garbage after a crash.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Write `bytes` to `path` atomically with the given mode (e.g. 0o600).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_temp(path, bytes, mode)?;
    commit_temp(&tmp, path)
}

/// First half of an atomic write: the complete, fsynced content under a temp
/// name next to `path`. Nothing reads temp files; a crash leaves only garbage
/// that [`remove_temp_files`] sweeps.
pub fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> io::Result<PathBuf> {
    let tmp = temp_path(path);
    // A stale temp file from an earlier crash would make create_new fail.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have stripped bits we asked for; set exactly what we want.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Second half: rename the temp file over `path` and make the rename durable.
pub fn commit_temp(tmp: &Path, path: &Path) -> io::Result<()> {
    if let Err(e) = fs::rename(tmp, path) {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    sync_dir(&parent_of(path))
}

/// Remove leftover temp files in `dir` (after a crash). Returns how many.
pub fn remove_temp_files(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(TEMP_SUFFIX) {
            fs::remove_file(entry.path())?;
            n += 1;
        }
    }
    if n > 0 {
        sync_dir(dir)?;
    }
    Ok(n)
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

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(TEMP_SUFFIX);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!temp_path(&p).exists());
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
    fn stale_temp_file_does_not_block_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(temp_path(&p), b"partial garbage").unwrap();
        write_atomic(&p, b"whole", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"whole");
    }
}
