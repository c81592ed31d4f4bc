use rustic_core::repofile::MasterKey;

use super::crypt::encrypt;
use super::lock::decrypt;
use super::rustic_kind;
use super::session::RepoKey;
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

/// What the writer wrote, read back by rustic's reader (its own parsers of
/// packs, index, trees and snapshots): every file byte for byte, split into
/// blobs of at most `max_blob`, with the snapshot's paths and summary.
#[test]
fn a_written_snapshot_reads_back_through_rustics_reader() {
    use rustic_core::{ConfigOptions, Credentials, KeyOptions, Repository, RepositoryBackends};

    use super::writer::{Files, prepare};

    let dir = tempfile::tempdir().unwrap();
    let be = rustic_backend::LocalBackend::new(dir.path().to_str().unwrap(), Vec::new()).unwrap();
    let backends = RepositoryBackends::new(std::sync::Arc::new(be), None);
    let repo = Repository::new(&super::ResticTarget::repo_options(), &backends)
        .and_then(|r| {
            r.init(
                &Credentials::password("pw"),
                &KeyOptions::default(),
                &ConfigOptions::default().set_compression(0),
            )
        })
        .unwrap();
    let key = RepoKey(repo.key());

    let backup: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let manifest = br#"{"seq":7}"#.to_vec();
    let time = rustic_core::jiff::Timestamp::from_second(1_700_000_000).unwrap();
    let files = Files {
        files: vec![
            ("channel.backup.age", &backup[..], None),
            ("channel.backup.json", &manifest[..], None),
        ],
        mtime: time,
        max_blob: 4096,
    };
    let snap = rustic_core::SnapshotOptions::default()
        .host("h".to_string())
        .add_tags("chanvault,seq:7")
        .and_then(|o| o.to_snapshot())
        .unwrap();
    let written = prepare(&key, &files, snap)
        .unwrap()
        .upload(backends.repository().as_ref())
        .unwrap();

    let repo = repo.to_indexed().unwrap();
    let snaps = repo.get_all_snapshots().unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].id, written.id, "the id is the stored file's hash");
    assert_eq!(
        snaps[0].paths.iter().collect::<Vec<_>>(),
        [super::SNAPSHOT_DIR]
    );
    assert!(snaps[0].tags.contains("seq:7"));
    let summary = snaps[0].summary.as_ref().unwrap();
    assert_eq!(summary.total_files_processed, 2);
    assert_eq!(
        summary.data_blobs,
        10 + 1,
        "40,000 bytes in 4 KiB blobs, and the manifest"
    );

    let read = |path: &str| {
        let node = repo.node_from_snapshot_and_path(&snaps[0], path).unwrap();
        let mut out = vec![];
        repo.dump(&node, &mut out).unwrap();
        (node, out)
    };
    let (node, bytes) = read(super::SNAPSHOT_FILE);
    assert_eq!(bytes, backup);
    assert_eq!(node.content.as_ref().unwrap().len(), 10);
    assert_eq!(node.meta.mode, Some(0o600));
    assert_eq!(node.meta.mtime, Some(time));
    assert_eq!(read(super::SNAPSHOT_MANIFEST).1, manifest);
    let dir_node = repo
        .node_from_snapshot_and_path(&snaps[0], super::SNAPSHOT_DIR)
        .unwrap();
    assert!(dir_node.is_dir());
    assert_eq!(dir_node.meta.mode, Some(super::writer::GO_MODE_DIR | 0o700));
}
