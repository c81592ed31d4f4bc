//! One chanvault snapshot, written in restic's repository format by
//! chanvault itself (restic's design document: "Pack Format", "Indexing",
//! "Trees and Data", "Snapshots").
//!
//! A snapshot here is always the same few things: the files' data blobs in
//! one pack, two tree blobs (`/` and `/chanvault`) in another, one index file
//! naming both packs, and the snapshot file, uploaded in that order under our
//! restic lock, as restic does (the two packs side by side). Everything is
//! encrypted first ([`prepare`], which needs no repository, so it runs while
//! the lock is taken), then uploaded ([`Prepared::upload`]). rustic's
//! archiver did the same work through a scanner, a chunker and thread pools
//! spawned per backup (about twenty threads each time, spinning while idle),
//! which on a small machine cost more than the upload. Nothing is deduplicated against the repository:
//! every blob chanvault writes is new (age encrypts under a fresh file key;
//! the manifest names the backup), so no index is read before writing.
//!
//! Blobs are stored uncompressed (valid in v1 and v2 repositories:
//! ciphertext does not compress) and at most [`MAX_BLOB`] long, the largest
//! blob restic's chunker makes.

use bytes::Bytes;
use rustic_core::repofile::{Metadata, Node, NodeType, SnapshotFile, StringList, Tree};
use rustic_core::{DataId, FileType, Id, RusticError, WriteBackend};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::SNAPSHOT_DIR;
use super::crypt::{self, Cipher, OVERHEAD};
use super::session::RepoKey;

/// restic's chunker makes blobs of at most 8 MiB.
pub(super) const MAX_BLOB: usize = 8 << 20;

/// Go's `os.ModeDir`, which restic stores in a node's mode.
pub(super) const GO_MODE_DIR: u32 = 1 << 31;

/// A file's name, bytes and SHA-256 when known.
pub(super) type File<'a> = (&'static str, &'a [u8], Option<[u8; 32]>);

/// What goes into `/chanvault`, in name order.
pub(super) struct Files<'a> {
    /// `(name, bytes, SHA-256 of bytes if known)`; names sorted, as
    /// restic's trees are. A file of one blob is named by its hash, so a
    /// known one (the spool's id of a sealed backup) is not computed again.
    pub(super) files: Vec<File<'a>>,
    /// The files' and the directory's times (when the backup was taken).
    pub(super) mtime: rustic_core::jiff::Timestamp,
    /// The largest blob to write ([`MAX_BLOB`]; smaller in tests).
    pub(super) max_blob: usize,
}

#[derive(Debug)]
pub(super) enum WriteError {
    /// The repository refused or could not be reached.
    Repo(Box<RusticError>),
    /// Our side (encryption, encoding).
    Local(String),
}

impl From<Box<RusticError>> for WriteError {
    fn from(e: Box<RusticError>) -> Self {
        Self::Repo(e)
    }
}

impl From<String> for WriteError {
    fn from(e: String) -> Self {
        Self::Local(e)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BlobKind {
    Data,
    Tree,
}

impl BlobKind {
    /// The type byte of an uncompressed blob in a pack header.
    fn header_byte(self) -> u8 {
        match self {
            Self::Data => 0,
            Self::Tree => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Tree => "tree",
        }
    }
}

/// A pack being filled: encrypted blobs back to back, then (at
/// [`Pack::finish`]) the encrypted header and its length.
struct Pack {
    kind: BlobKind,
    body: Vec<u8>,
    blobs: Vec<([u8; 32], u32, u32)>,
}

/// A finished pack, ready to upload, and what the index says of it.
struct Packed {
    kind: BlobKind,
    id: [u8; 32],
    body: Bytes,
    entry: IndexPack,
}

impl Pack {
    fn new(kind: BlobKind, capacity: usize) -> Self {
        Self {
            kind,
            body: Vec::with_capacity(capacity),
            blobs: Vec::new(),
        }
    }

    /// Add one blob; its id (the SHA-256 of the plaintext, given or computed).
    fn add(
        &mut self,
        cipher: &Cipher,
        plain: &[u8],
        known: Option<[u8; 32]>,
    ) -> Result<[u8; 32], String> {
        let id: [u8; 32] = known.unwrap_or_else(|| Sha256::digest(plain).into());
        // A pack lists a blob once (two equal chunks of one file share it).
        if self.blobs.iter().any(|(b, _, _)| *b == id) {
            return Ok(id);
        }
        let offset = self.body.len();
        crypt::append_sealed(cipher, &mut self.body, plain)?;
        let (offset, length) = (u32_len(offset)?, u32_len(self.body.len() - offset)?);
        self.blobs.push((id, offset, length));
        Ok(id)
    }

    fn finish(mut self, cipher: &Cipher) -> Result<Packed, String> {
        let mut header = Vec::with_capacity(self.blobs.len() * 37);
        for (id, _, length) in &self.blobs {
            header.push(self.kind.header_byte());
            header.extend_from_slice(&length.to_le_bytes());
            header.extend_from_slice(id);
        }
        let before = self.body.len();
        crypt::append_sealed(cipher, &mut self.body, &header)?;
        let header_len = u32_len(self.body.len() - before)?;
        self.body.extend_from_slice(&header_len.to_le_bytes());
        let id: [u8; 32] = Sha256::digest(&self.body).into();
        let entry = IndexPack {
            id: Id::new(id).to_hex().to_string(),
            blobs: self
                .blobs
                .iter()
                .map(|(b, offset, length)| IndexBlob {
                    id: Id::new(*b).to_hex().to_string(),
                    kind: self.kind.name(),
                    offset: *offset,
                    length: *length,
                })
                .collect(),
        };
        Ok(Packed {
            kind: self.kind,
            id,
            body: Bytes::from(self.body),
            entry,
        })
    }
}

fn u32_len(n: usize) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("{n} bytes do not fit in one restic pack"))
}

/// restic's index file (only the fields restic defines).
#[derive(Serialize)]
struct IndexFile<'a> {
    packs: [&'a IndexPack; 2],
}

#[derive(Serialize)]
struct IndexPack {
    id: String,
    blobs: Vec<IndexBlob>,
}

#[derive(Serialize)]
struct IndexBlob {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    offset: u32,
    length: u32,
}

impl Files<'_> {
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

    /// The data pack and the `/chanvault` tree naming its blobs.
    fn data(&self, cipher: &Cipher) -> Result<(Packed, Tree), String> {
        let size: usize = self.files.iter().map(|(_, b, _)| b.len()).sum();
        let blobs = self
            .files
            .iter()
            .map(|(_, b, _)| b.len().div_ceil(self.max_blob))
            .sum::<usize>();
        let mut pack = Pack::new(BlobKind::Data, size + (blobs + 1) * (OVERHEAD + 37) + 4);
        let mut dir = Tree::default();
        for (name, bytes, sha256) in &self.files {
            let mut content = Vec::with_capacity(bytes.len().div_ceil(self.max_blob));
            let whole = sha256.filter(|_| bytes.len() <= self.max_blob);
            for chunk in bytes.chunks(self.max_blob.max(1)) {
                content.push(DataId::from(Id::new(pack.add(cipher, chunk, whole)?)));
            }
            let meta = self.meta(0o600, bytes.len() as u64);
            let mut node = Node::new_node(std::ffi::OsStr::new(name), NodeType::File, meta);
            node.content = Some(content);
            dir.nodes.push(node);
        }
        Ok((pack.finish(cipher)?, dir))
    }
}

/// A snapshot ready to upload: its packs and index encrypted, its tree
/// named. Made without the repository (and without our lock), so it can
/// be made while the lock is taken.
pub(super) struct Prepared {
    packs: [Packed; 2],
    index: Vec<u8>,
    cipher: Cipher,
    snap: SnapshotFile,
}

/// Encrypt `files` into a data pack, their tree into a tree pack, and the
/// index naming both; fill in `snap`'s tree, paths and summary.
pub(super) fn prepare(
    key: &RepoKey,
    files: &Files<'_>,
    mut snap: SnapshotFile,
) -> Result<Prepared, WriteError> {
    let start = rustic_core::jiff::Zoned::now();
    let cipher = crypt::cipher(key)?;
    let (data, dir) = files.data(&cipher)?;

    let tree_err = |e: &dyn std::fmt::Display| format!("cannot encode a tree: {e}");
    let (dir_json, dir_id) = dir.serialize().map_err(|e| tree_err(&e))?;
    let dir_name = SNAPSHOT_DIR.trim_start_matches('/');
    let mut node = Node::new_node(
        std::ffi::OsStr::new(dir_name),
        NodeType::Dir,
        files.meta(GO_MODE_DIR | 0o700, 0),
    );
    node.subtree = Some(dir_id);
    let root = Tree { nodes: vec![node] };
    let (root_json, root_id) = root.serialize().map_err(|e| tree_err(&e))?;
    let mut trees = Pack::new(
        BlobKind::Tree,
        dir_json.len() + root_json.len() + 3 * (OVERHEAD + 37) + 4,
    );
    trees.add(&cipher, &dir_json, None)?;
    trees.add(&cipher, &root_json, None)?;
    let trees = trees.finish(&cipher)?;
    let index = serde_json::to_vec(&IndexFile {
        packs: [&data.entry, &trees.entry],
    })
    .map_err(|e| format!("cannot encode the index: {e}"))?;

    snap.tree = root_id;
    let mut paths = StringList::default();
    paths.add(SNAPSHOT_DIR.to_string());
    snap.paths = paths;
    let mut summary = snap.summary.take().unwrap_or_default();
    let bytes: u64 = files.files.iter().map(|(_, b, _)| b.len() as u64).sum();
    let n = files.files.len() as u64;
    summary.files_new = n;
    summary.total_files_processed = n;
    summary.total_bytes_processed = bytes;
    summary.dirs_new = 1;
    summary.total_dirs_processed = 1;
    summary.data_blobs = data.entry.blobs.len() as u64;
    summary.tree_blobs = 2;
    summary.data_added = bytes + (dir_json.len() + root_json.len()) as u64;
    summary.data_added_packed = (data.body.len() + trees.body.len()) as u64;
    summary.data_added_files = bytes;
    summary.data_added_files_packed = data.body.len() as u64;
    summary.data_added_trees = (dir_json.len() + root_json.len()) as u64;
    summary.data_added_trees_packed = trees.body.len() as u64;
    summary.backup_start = start;
    snap.summary = Some(summary);
    Ok(Prepared {
        packs: [data, trees],
        index,
        cipher,
        snap,
    })
}

impl Prepared {
    /// Upload it in restic's order: the two packs (side by side), then the
    /// index naming them, then the snapshot naming the tree. Call with our
    /// restic lock held.
    pub(super) fn upload(self, be: &dyn WriteBackend) -> Result<SnapshotFile, WriteError> {
        let Self {
            packs: [data, trees],
            index,
            cipher,
            mut snap,
        } = self;
        let put = |pack: &Packed| -> Result<(), WriteError> {
            Ok(be.write_bytes(
                FileType::Pack,
                &Id::new(pack.id),
                pack.kind == BlobKind::Tree,
                pack.body.clone().into(),
            )?)
        };
        let (data_put, trees_put) =
            crate::beside::both("restic-pack", || put(&data), || put(&trees));
        data_put.and(trees_put)?;
        write_file(be, &cipher, FileType::Index, &index)?;
        if let Some(summary) = snap.summary.as_mut() {
            let end = rustic_core::jiff::Zoned::now();
            summary.backup_duration = seconds(&summary.backup_start, &end);
            summary.total_duration = seconds(&snap.time, &end);
            summary.backup_end = end;
        }
        let json =
            serde_json::to_vec(&snap).map_err(|e| format!("cannot encode the snapshot: {e}"))?;
        snap.id = write_file(be, &cipher, FileType::Snapshot, &json)?.into();
        Ok(snap)
    }
}

fn seconds(from: &rustic_core::jiff::Zoned, to: &rustic_core::jiff::Zoned) -> f64 {
    (to.timestamp().as_nanosecond() - from.timestamp().as_nanosecond()) as f64 / 1e9
}

/// An unpacked file (index, snapshot): encrypted, named by the SHA-256 of
/// what is stored.
fn write_file(
    be: &dyn WriteBackend,
    cipher: &Cipher,
    tpe: FileType,
    plain: &[u8],
) -> Result<Id, WriteError> {
    let mut stored = Vec::with_capacity(plain.len() + OVERHEAD);
    crypt::append_sealed(cipher, &mut stored, plain)?;
    let id = Id::new(Sha256::digest(&stored).into());
    be.write_bytes(tpe, &id, true, stored.into())?;
    Ok(id)
}
