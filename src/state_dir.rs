//! Every file chanvault keeps under `state_dir`, named in one place, with the
//! schema of the small ones that two commands share. The spool owns the
//! journal and the sealed files, the escrow owns its audit log, `verify`
//! writes its last result for `watch`'s metrics; all of them take the names
//! from here.
//!
//! ```text
//! state_dir/                 0700
//!   journal.json             the spool's journal (what is stored, what each target took)
//!   backups/<sha256>.age     sealed backups the journal names
//!   lock                     held while a process writes the spool
//!   watch.lock               held (flock) by the one `watch` on this state dir; holds its PID
//!   .write-probe             written at start to prove the dir is writable
//!   manifest.key             the key that signs manifests and keys published fingerprints (0600)
//!   escrow-audit.jsonl       the escrow's hash-chained audit log
//!   escrow-audit.head        the chain's newest hash and length
//!   verify-last.json         the last `chanvault verify` result (VerifyResult)
//!   restic-locks/<lock id>   one per restic lock file we wrote and have not removed yet;
//!                            holds the target's name
//! ```

use serde::{Deserialize, Serialize};

/// The spool's journal.
pub const JOURNAL_FILE: &str = "journal.json";
/// Sealed backups, one file per SHA-256.
pub const BACKUPS_DIR: &str = "backups";
/// Held by the process that writes the spool.
pub const LOCK_FILE: &str = "lock";
/// Held for its whole life by the one `watch` on this state dir (an
/// exclusive flock); the file holds that process's PID, for the error a
/// second `watch` gives. `backup --once` does not take it.
pub const WATCH_LOCK_FILE: &str = "watch.lock";
/// Written and replaced at start, to prove the dir is writable now.
pub const WRITE_PROBE: &str = ".write-probe";
/// The Ed25519 key that signs manifests and the HMAC key of published
/// fingerprints (`signing`), 0600.
pub const MANIFEST_KEY_FILE: &str = "manifest.key";
/// The escrow audit log (JSON lines, hash-chained).
pub const AUDIT_FILE: &str = "escrow-audit.jsonl";
/// The audit chain's head: newest hash and record count.
pub const AUDIT_HEAD_FILE: &str = "escrow-audit.head";
/// Where `chanvault verify` records its last result, so that `watch` can
/// export it (`verify` itself is a separate, timed process).
pub const VERIFY_RESULT_FILE: &str = "verify-last.json";

/// The restic lock files this state dir's chanvault wrote and has not
/// removed yet, one empty-ish file per lock id (its content: the target's
/// name). A lock is removed as stale only when it is recorded here: never
/// another process's, whatever its host, user and PID say.
pub const RESTIC_LOCKS_DIR: &str = "restic-locks";

/// What `verify` leaves behind for `watch`'s metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResult {
    /// Unix seconds.
    pub time: i64,
    pub success: bool,
    pub failed_checks: usize,
}
