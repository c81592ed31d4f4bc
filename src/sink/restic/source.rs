//! The in-memory source rustic archives: the sealed backup and its signed
//! manifest, two files in one directory, and on a padded target a third,
//! random bytes that bring the snapshot up to its size bucket.

use std::ffi::OsStr;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{ReadSource, ReadSourceEntry, RusticResult};

use super::{SNAPSHOT_DIR, SNAPSHOT_FILE, SNAPSHOT_MANIFEST, SNAPSHOT_PADDING};

/// Go's `os.ModeDir`, which restic stores in a node's mode.
pub(super) const GO_MODE_DIR: u32 = 1 << 31;

/// One directory and one file, in the order restic needs: the parent
/// directory entry first, or restic restores it with a 1901 mtime.
pub(super) struct SealedSource {
    /// The sealed backup, shared with the delivery: at thousands of channels
    /// it is megabytes, and rustic reads it through a cursor, not a copy.
    pub(super) bytes: Shared,
    /// The manifest's JSON; written after the backup (names sort so).
    pub(super) manifest: Shared,
    /// Random bytes (`crate::privacy::padding`); empty: no padding file.
    pub(super) padding: Shared,
    pub(super) mtime: rustic_core::jiff::Timestamp,
}

/// Bytes several readers share: each file rustic opens is a cursor over the
/// one buffer.
#[derive(Clone, Default)]
pub(super) struct Shared(pub(super) Arc<Vec<u8>>);

impl From<Vec<u8>> for Shared {
    fn from(v: Vec<u8>) -> Self {
        Self(Arc::new(v))
    }
}

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Shared {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

type Entry = RusticResult<ReadSourceEntry<Cursor<Shared>>>;

impl SealedSource {
    fn meta(&self, mode: u32, size: u64) -> Metadata {
        Metadata {
            mode: Some(mode),
            mtime: Some(self.mtime),
            atime: Some(self.mtime),
            ctime: Some(self.mtime),
            size,
            ..Metadata::default()
        }
    }
}

impl ReadSource for SealedSource {
    type Open = Cursor<Shared>;
    type Iter = std::vec::IntoIter<Entry>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(Some(
            (self.bytes.len() + self.manifest.len() + self.padding.len()) as u64,
        ))
    }

    fn entries(&self) -> Self::Iter {
        let dir_name = Path::new(SNAPSHOT_DIR)
            .file_name()
            .unwrap_or(OsStr::new("chanvault"));
        let file_name = Path::new(SNAPSHOT_FILE)
            .file_name()
            .unwrap_or(OsStr::new("channel.backup.age"));
        let mut entries = vec![
            Ok(ReadSourceEntry {
                path: PathBuf::from(SNAPSHOT_DIR),
                node: Node::new_node(dir_name, NodeType::Dir, self.meta(GO_MODE_DIR | 0o700, 0)),
                open: None,
            }),
            Ok(ReadSourceEntry {
                path: PathBuf::from(SNAPSHOT_FILE),
                node: Node::new_node(
                    file_name,
                    NodeType::File,
                    self.meta(0o600, self.bytes.len() as u64),
                ),
                open: Some(Cursor::new(self.bytes.clone())),
            }),
            Ok(ReadSourceEntry {
                path: PathBuf::from(SNAPSHOT_MANIFEST),
                node: Node::new_node(
                    Path::new(SNAPSHOT_MANIFEST)
                        .file_name()
                        .unwrap_or(OsStr::new("channel.backup.json")),
                    NodeType::File,
                    self.meta(0o600, self.manifest.len() as u64),
                ),
                open: Some(Cursor::new(self.manifest.clone())),
            }),
        ];
        if !self.padding.is_empty() {
            entries.push(Ok(ReadSourceEntry {
                path: PathBuf::from(SNAPSHOT_PADDING),
                node: Node::new_node(
                    OsStr::new("padding"),
                    NodeType::File,
                    self.meta(0o600, self.padding.len() as u64),
                ),
                open: Some(Cursor::new(self.padding.clone())),
            }));
        }
        entries.into_iter()
    }
}
