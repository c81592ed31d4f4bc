//! The in-memory source rustic archives: the sealed backup and its signed
//! manifest, two files in one directory, and on a padded target a third,
//! random bytes that bring the snapshot up to its size bucket.

use std::ffi::OsStr;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{ReadSource, ReadSourceEntry, RusticResult};

use super::{SNAPSHOT_DIR, SNAPSHOT_FILE, SNAPSHOT_MANIFEST, SNAPSHOT_PADDING};

/// Go's `os.ModeDir`, which restic stores in a node's mode.
pub(super) const GO_MODE_DIR: u32 = 1 << 31;

/// One directory and one file, in the order restic needs: the parent
/// directory entry first, or restic restores it with a 1901 mtime.
pub(super) struct SealedSource {
    pub(super) bytes: Vec<u8>,
    /// The manifest's JSON; written after the backup (names sort so).
    pub(super) manifest: Vec<u8>,
    /// Random bytes (`crate::privacy::padding`); empty: no padding file.
    pub(super) padding: Vec<u8>,
    pub(super) mtime: rustic_core::jiff::Timestamp,
}

type Entry = RusticResult<ReadSourceEntry<Cursor<Vec<u8>>>>;

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
    type Open = Cursor<Vec<u8>>;
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
