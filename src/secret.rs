//! Wrappers for secret material: zeroized on drop, never printed.
//!
//! Everything that could open a backup or talk to LND as us (age identities,
//! macaroon bytes, passwords) lives in one of these. `Debug` prints
//! `<sensitive>` so a stray `{:?}` in a log line cannot leak it, and there is
//! deliberately no `Display`, `Serialize` or `Clone`.

use std::fmt;

use zeroize::Zeroizing;

/// Make this process non-dumpable (`PR_SET_DUMPABLE 0`): no core file with
/// identities or macaroons in it, and other processes of the same user can
/// neither ptrace it nor read its `/proc/<pid>/mem`. Called first thing by
/// the binary; Linux only, a no-op elsewhere.
pub fn set_non_dumpable() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    Ok(())
}

/// Largest one-line secret file read ([`read_secret_line`]).
pub const SECRET_FILE_LIMIT: u64 = 64 << 10;

/// Why a one-line secret file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("is not UTF-8 text")]
    NotUtf8,
    #[error("is larger than {SECRET_FILE_LIMIT} bytes")]
    TooLarge,
    #[error("is empty")]
    Empty,
}

/// A secret kept in a file of its own (a token, a password, `user:pass`),
/// as systemd credentials hand them over: read with a bound, trimmed of
/// surrounding white space, zeroized. The caller names the file in its
/// error.
pub fn read_secret_line(path: &std::path::Path) -> Result<SecretString, SecretFileError> {
    read_secret_line_from(std::fs::File::open(path)?)
}

/// [`read_secret_line`] from a file already open (and checked).
pub fn read_secret_line_from(f: std::fs::File) -> Result<SecretString, SecretFileError> {
    use std::io::Read;
    let mut buf = Zeroizing::new(Vec::new());
    f.take(SECRET_FILE_LIMIT + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > SECRET_FILE_LIMIT {
        return Err(SecretFileError::TooLarge);
    }
    let text = std::str::from_utf8(&buf).map_err(|_| SecretFileError::NotUtf8)?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(SecretFileError::Empty);
    }
    Ok(SecretString::new(trimmed.to_owned()))
}

/// Secret bytes (macaroons, plaintext channel backups, identity files).
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Zeroizing<Vec<u8>>> for SecretBytes {
    fn from(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<sensitive>")
    }
}

/// A secret string (an age identity line, a password).
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<sensitive>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let b = SecretBytes::new(b"macaroon-bytes-0123".to_vec());
        let s = SecretString::new("AGE-SECRET-KEY-1XYZ".into());
        let shown = format!("{b:?} {s:?} {:#?}", (&b, &s));
        assert!(!shown.contains("macaroon-bytes"), "{shown}");
        assert!(!shown.contains("AGE-SECRET"), "{shown}");
        assert_eq!(format!("{b:?}"), "<sensitive>");
    }
}
