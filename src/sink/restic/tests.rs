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
    use super::writer::{Files, prepare};

    let (_dir, backends, repo, key) = local_repository();

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

/// A new, empty restic repository in a temp dir (kept while the first
/// value lives), opened, with its master key.
fn local_repository() -> (
    tempfile::TempDir,
    rustic_core::RepositoryBackends,
    rustic_core::Repository<rustic_core::OpenStatus>,
    RepoKey,
) {
    use rustic_core::{ConfigOptions, Credentials, KeyOptions, Repository, RepositoryBackends};
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
    (dir, backends, repo, key)
}

/// Before each backup the snapshot list is brought up to date from one
/// listing: snapshots seen before are not read again, forgotten ones go,
/// and one another program wrote since is read.
#[test]
fn the_kept_snapshot_list_reads_only_snapshots_it_has_not_seen() {
    use rustic_core::{FileType, ReadBackend, WriteBackend};

    use super::session::snapshots_named;
    use super::writer::{Files, prepare};

    let (_dir, backends, repo, key) = local_repository();
    let be = backends.repository();
    let write = |host: &str| {
        let files = Files {
            files: vec![("channel.backup.age", &b"sealed"[..], None)],
            mtime: rustic_core::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
            max_blob: 4096,
        };
        let snap = rustic_core::SnapshotOptions::default()
            .host(host.to_string())
            .to_snapshot()
            .unwrap();
        prepare(&key, &files, snap)
            .unwrap()
            .upload(be.as_ref())
            .unwrap()
    };
    let (mut a, b) = (write("ours"), write("ours"));
    // Marked here only: a snapshot read again from the repository loses it.
    a.label = "as we knew it".into();
    let ids = || be.list(FileType::Snapshot).unwrap();

    let mut known = vec![a.clone(), b.clone()];
    let listed = snapshots_named(&repo, &mut known, &ids()).unwrap();
    assert!(known.is_empty());
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .any(|s| s.id == a.id && s.label == "as we knew it")
    );

    // b forgotten, c written by another program: c is read, a is kept as known.
    be.remove(FileType::Snapshot, &b.id, false).unwrap();
    let c = write("elsewhere");
    let mut known = listed;
    let listed = snapshots_named(&repo, &mut known, &ids()).unwrap();
    let mut got: Vec<_> = listed
        .iter()
        .map(|s| (s.id, s.label.as_str(), s.hostname.as_str()))
        .collect();
    got.sort();
    let mut want = vec![(a.id, "as we knew it", "ours"), (c.id, "", "elsewhere")];
    want.sort();
    assert_eq!(got, want);
}
