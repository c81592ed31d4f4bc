//! Durable file writes: temp file, `sync_all`, rename, fsync the directory.
//!
//! A crash at any point leaves either the old file or the new one, never a
//! partial one: readers only ever see complete files under their final name.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
    fn stale_temp_file_does_not_block_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(temp_path(&p), b"partial garbage").unwrap();
        write_atomic(&p, b"whole", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"whole");
    }
}
