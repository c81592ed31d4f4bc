//! The escrow audit log: `state_dir/escrow-audit.jsonl`, one JSON line per
//! escrow operation, hash-chained.
//!
//! Each line is a JSON object whose fields are, in order: `seq`, `time`,
//! `user`, `accessor`, `op`, `path`, `version`, `outcome`, `prev`, `hash`.
//! `prev` is the SHA-256 (hex) of the previous line's exact bytes (without
//! the newline; 64 zeros for the first line) and `hash` the SHA-256 of this
//! line's bytes up to, but not including, `,"hash":`. So an edited line
//! breaks its own hash, and a removed, inserted or reordered line breaks the
//! next line's `prev` and the `seq` count. A sidecar file
//! `escrow-audit.head` (written atomically after each append) holds the
//! line count and the last hash, which detects truncation at the end; an
//! attacker who can rewrite both files consistently defeats any local log,
//! which is why OpenBao's own audit device is the second, independent record.
//!
//! Nothing secret is ever written: records carry paths, versions, the
//! token accessor (not the token) and an outcome class.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fsutil;

pub use crate::state_dir::{AUDIT_FILE, AUDIT_HEAD_FILE as HEAD_FILE};
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// How much of the file's end we read to find the last line.
const TAIL_WINDOW: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("escrow audit log {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("escrow audit log {}: line {line}: {reason}", path.display())]
    Broken {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// One record as written (without the hash, which is appended).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub time: String,
    pub user: String,
    pub accessor: String,
    pub op: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    pub outcome: String,
    pub prev: String,
}

/// A record read back, with its hash.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub record: Record,
    pub hash: String,
}

#[derive(Serialize, Deserialize)]
struct Head {
    lines: u64,
    last_hash: String,
}

/// What the caller says about one operation.
pub struct Event<'a> {
    pub accessor: &'a str,
    pub op: &'a str,
    pub path: &'a str,
    pub version: Option<u64>,
    pub outcome: &'a str,
}

pub struct AuditLog {
    path: PathBuf,
    head: PathBuf,
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The OS user running us (for the record).
pub fn os_user() -> String {
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let name = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|s| !s.is_empty());
    match (name, uid) {
        (Some(n), Some(u)) => format!("{n} (uid {u})"),
        (Some(n), None) => n,
        (None, Some(u)) => format!("uid {u}"),
        (None, None) => "unknown".into(),
    }
}

impl AuditLog {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(AUDIT_FILE),
            head: state_dir.join(HEAD_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether there is a log (or its head) at all.
    pub fn exists(&self) -> bool {
        self.path.exists() || self.head.exists()
    }

    fn io(&self, source: io::Error) -> AuditError {
        AuditError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Append one record (fsynced) and update the head file. Holds an
    /// exclusive lock on the log while doing so. Returns the record with its
    /// hash (what the anchor in OpenBao holds).
    pub fn append(&self, ev: &Event<'_>) -> Result<Entry, AuditError> {
        if let Some(dir) = self.path.parent() {
            fsutil::ensure_dir(dir, 0o700).map_err(|e| self.io(e))?;
        }
        let created = !self.path.exists();
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        f.lock().map_err(|e| self.io(e))?;
        let (count, last) = self.last_line(&mut f)?;
        let (seq, prev) = match last {
            Some(line) => (count + 1, sha_hex(&line)),
            None => (1, GENESIS.to_owned()),
        };
        let record = Record {
            seq,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            user: os_user(),
            accessor: ev.accessor.to_owned(),
            op: ev.op.to_owned(),
            path: ev.path.to_owned(),
            version: ev.version,
            outcome: ev.outcome.replace('\n', " "),
            prev,
        };
        let (line, hash) = render(&record).map_err(|e| self.io(io::Error::other(e)))?;
        f.write_all(line.as_bytes())
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.sync_all())
            .map_err(|e| self.io(e))?;
        if created && let Some(dir) = self.path.parent() {
            fsutil::sync_dir(dir).map_err(|e| self.io(e))?;
        }
        let head = Head {
            lines: seq,
            last_hash: sha_hex(line.as_bytes()),
        };
        let bytes = serde_json::to_vec(&head).map_err(|e| self.io(io::Error::other(e)))?;
        fsutil::write_atomic(&self.head, &bytes, 0o600).map_err(|e| self.io(e))?;
        drop(f);
        Ok(Entry { record, hash })
    }

    /// The number of lines (from the last line's seq) and the last line's bytes.
    fn last_line(&self, f: &mut File) -> Result<(u64, Option<Vec<u8>>), AuditError> {
        let len = f.metadata().map_err(|e| self.io(e))?.len();
        if len == 0 {
            return Ok((0, None));
        }
        let start = len.saturating_sub(TAIL_WINDOW);
        f.seek(SeekFrom::Start(start)).map_err(|e| self.io(e))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(|e| self.io(e))?;
        if buf.last() != Some(&b'\n') {
            return Err(AuditError::Broken {
                path: self.path.clone(),
                line: 0,
                reason: "the last line is incomplete (truncated or a crashed write); run `chanvault audit verify` and repair or move the log aside".into(),
            });
        }
        buf.pop();
        let last = match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => buf[i + 1..].to_vec(),
            None => buf,
        };
        let entry: Entry = serde_json::from_slice(&last).map_err(|e| AuditError::Broken {
            path: self.path.clone(),
            line: 0,
            reason: format!(
                "the last line is not an audit record ({e}); run `chanvault audit verify`"
            ),
        })?;
        Ok((entry.record.seq, Some(last)))
    }

    /// Read and check every line. Returns the entries, or the first bad line.
    pub fn verify(&self) -> Result<Vec<Entry>, AuditError> {
        let f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.head.exists() => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(self.io(e)),
        };
        let mut reader = BufReader::new(f);
        let mut entries = Vec::new();
        let mut prev_hash = GENESIS.to_owned();
        let mut n = 0usize;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let read = reader.read_until(b'\n', &mut buf).map_err(|e| self.io(e))?;
            if read == 0 {
                break;
            }
            n += 1;
            let broken = |reason: String| AuditError::Broken {
                path: self.path.clone(),
                line: n,
                reason,
            };
            if buf.last() != Some(&b'\n') {
                return Err(broken(
                    "incomplete line (the file was truncated or a write was cut)".into(),
                ));
            }
            buf.pop();
            let entry: Entry = serde_json::from_slice(&buf)
                .map_err(|e| broken(format!("not an audit record: {e}")))?;
            let text = std::str::from_utf8(&buf).map_err(|_| broken("not UTF-8".into()))?;
            let body = text
                .rfind(",\"hash\":")
                .map(|i| &text[..i])
                .ok_or_else(|| broken("no hash field".into()))?;
            if sha_hex(body.as_bytes()) != entry.hash {
                return Err(broken(
                    "its content does not match its hash (the line was edited)".into(),
                ));
            }
            if render(&entry.record).ok().map(|(l, _)| l).as_deref() != Some(text) {
                return Err(broken("the line is not in canonical form (edited)".into()));
            }
            if entry.record.seq != n as u64 {
                return Err(broken(format!(
                    "sequence number {} where {n} was expected (lines were removed, inserted or reordered)",
                    entry.record.seq
                )));
            }
            if entry.record.prev != prev_hash {
                return Err(broken(
                    "it does not chain to the line before it (a line was removed, inserted or reordered)".into(),
                ));
            }
            prev_hash = sha_hex(&buf);
            entries.push(entry);
        }
        match std::fs::read(&self.head) {
            Ok(bytes) => {
                let head: Head =
                    serde_json::from_slice(&bytes).map_err(|e| AuditError::Broken {
                        path: self.head.clone(),
                        line: 1,
                        reason: format!("not a head record: {e}"),
                    })?;
                if head.lines != n as u64 || (n > 0 && head.last_hash != prev_hash) {
                    return Err(AuditError::Broken {
                        path: self.path.clone(),
                        line: n + 1,
                        reason: format!(
                            "{} records, but {} says {} were written (the log was truncated or lines appended by hand)",
                            n,
                            self.head.display(),
                            head.lines
                        ),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && n > 0 => {
                return Err(AuditError::Broken {
                    path: self.path.clone(),
                    line: n,
                    reason: format!(
                        "{} is missing (removed or never written)",
                        self.head.display()
                    ),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(AuditError::Io {
                    path: self.head.clone(),
                    source: e,
                });
            }
        }
        Ok(entries)
    }

    /// Every parseable record, without checking the chain (for `audit show`).
    pub fn read_all(&self) -> Result<Vec<Entry>, AuditError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

/// The record's line: the JSON of the record, then `,"hash":"<sha256 of what
/// came before>"}`; and that hash.
fn render(r: &Record) -> Result<(String, String), String> {
    let json = serde_json::to_string(r).map_err(|e| e.to_string())?;
    let body = json
        .strip_suffix('}')
        .ok_or_else(|| "record did not serialize as an object".to_owned())?;
    let hash = sha_hex(body.as_bytes());
    Ok((format!("{body},\"hash\":\"{hash}\"}}"), hash))
}

/// A human line for `audit show`.
pub fn show_line(e: &Entry) -> String {
    let r = &e.record;
    let version = r.version.map(|v| format!(" v{v}")).unwrap_or_default();
    format!(
        "{:>5}  {}  {:<14} {}{}  {}  user={} accessor={}",
        r.seq,
        r.time,
        r.op,
        r.path,
        version,
        r.outcome,
        r.user,
        if r.accessor.is_empty() {
            "-"
        } else {
            &r.accessor
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(op: &str) -> Event<'_> {
        Event {
            accessor: "acc",
            op,
            path: "secret/data/chanvault/x",
            version: Some(1),
            outcome: "ok",
        }
    }

    fn log_with(n: usize) -> (tempfile::TempDir, AuditLog) {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::new(d.path());
        for i in 0..n {
            log.append(&ev(&format!("op{i}"))).unwrap();
        }
        (d, log)
    }

    fn lines(log: &AuditLog) -> Vec<String> {
        std::fs::read_to_string(log.path())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write(log: &AuditLog, lines: &[String]) {
        let mut t = lines.join("\n");
        t.push('\n');
        std::fs::write(log.path(), t).unwrap();
    }

    fn bad_line(log: &AuditLog) -> usize {
        match log.verify() {
            Err(AuditError::Broken { line, .. }) => line,
            other => panic!("expected a broken log, got {other:?}"),
        }
    }

    #[test]
    fn chain_verifies_and_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_d, log) = log_with(4);
        let entries = log.verify().unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].record.prev, GENESIS);
        let mode = std::fs::metadata(log.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn edit_remove_reorder_truncate_are_detected() {
        let (_d, log) = log_with(5);
        let orig = lines(&log);

        let mut l = orig.clone();
        l[2] = l[2].replace("op2", "op9");
        write(&log, &l);
        assert_eq!(bad_line(&log), 3);

        let mut l = orig.clone();
        l.remove(1);
        write(&log, &l);
        assert_eq!(bad_line(&log), 2);

        let mut l = orig.clone();
        l.swap(3, 4);
        write(&log, &l);
        assert_eq!(bad_line(&log), 4);

        write(&log, &orig[..3]);
        assert_eq!(bad_line(&log), 4);

        let mut t = orig.join("\n");
        t.truncate(t.len() - 10);
        std::fs::write(log.path(), t).unwrap();
        assert_eq!(bad_line(&log), 5);

        write(&log, &orig);
        assert_eq!(log.verify().unwrap().len(), 5);
    }
}
