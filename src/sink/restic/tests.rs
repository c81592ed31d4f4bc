use std::path::PathBuf;

use rustic_core::ReadSource;
use rustic_core::repofile::MasterKey;

use super::lock::{decrypt, encrypt};
use super::session::RepoKey;
use super::source::{GO_MODE_DIR, SealedSource};
use super::{SNAPSHOT_DIR, SNAPSHOT_FILE, rustic_kind};
use crate::sink::ErrorKind;

#[test]
fn lock_files_round_trip_and_read_restic_compressed_ones() {
    let key = RepoKey(MasterKey::new());
    let json = br#"{"time":"2024-01-01T00:00:00Z","exclusive":true,"hostname":"h","username":"u","pid":1}"#;
    let sealed = encrypt(&key, json).unwrap();
    assert_eq!(decrypt(&key, &sealed).unwrap(), json);
    let mut compressed = vec![2u8];
    compressed.extend(zstd::encode_all(&json[..], 3).unwrap());
    let sealed = encrypt(&key, &compressed).unwrap();
    assert_eq!(decrypt(&key, &sealed).unwrap(), json);
    let other = RepoKey(MasterKey::new());
    assert!(decrypt(&other, &sealed).is_err());

    // A compression bomb (64 MiB of zeros in a few KiB) is refused, not inflated.
    let mut bomb = vec![2u8];
    bomb.extend(zstd::encode_all(&vec![0u8; 64 << 20][..], 19).unwrap());
    assert!(bomb.len() < 64 * 1024);
    let e = decrypt(&key, &encrypt(&key, &bomb).unwrap()).unwrap_err();
    assert!(e.contains("decompresses to more than 65536 bytes"), "{e}");
}

#[test]
fn source_yields_the_directory_before_the_file() {
    let src = SealedSource {
        bytes: b"age".to_vec().into(),
        manifest: b"{}".to_vec().into(),
        padding: Vec::new().into(),
        mtime: rustic_core::jiff::Timestamp::now(),
    };
    let e: Vec<_> = src.entries().map(|e| e.unwrap()).collect();
    assert_eq!(e[0].path, PathBuf::from(SNAPSHOT_DIR));
    assert!(e[0].node.is_dir());
    assert_eq!(e[0].node.meta.mode, Some(GO_MODE_DIR | 0o700));
    assert_eq!(e[1].path, PathBuf::from(SNAPSHOT_FILE));
    assert_eq!(e[1].node.meta.size, 3);
    assert_eq!(e[2].path, PathBuf::from(super::SNAPSHOT_MANIFEST));
    assert_eq!(e[2].node.meta.size, 2);
}

#[test]
fn rustic_errors_are_classed_by_the_error_under_them() {
    use rustic_core::{ErrorKind as Rk, RusticError};
    let io = |k: std::io::ErrorKind| {
        RusticError::with_source(Rk::Backend, "x", std::io::Error::new(k, "y"))
    };
    assert_eq!(
        rustic_kind(&io(std::io::ErrorKind::TimedOut)),
        ErrorKind::Timeout
    );
    assert_eq!(
        rustic_kind(&io(std::io::ErrorKind::PermissionDenied)),
        ErrorKind::Refused
    );
    assert_eq!(
        rustic_kind(&io(std::io::ErrorKind::NotFound)),
        ErrorKind::Io
    );
    assert_eq!(
        rustic_kind(&RusticError::new(Rk::Backend, "x")),
        ErrorKind::Other
    );
}
