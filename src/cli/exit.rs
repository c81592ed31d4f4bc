//! Every exit code chanvault returns: the README's table, in one place, and
//! the one place where typed errors and verify's failure classes become
//! codes. Domain modules never name a number.

use crate::restore::RestoreError;
use crate::verify::Class;

/// Success; for `backup --once`: a new backup was stored and delivered everywhere.
pub const OK: u8 = 0;
/// An error: bad config, LND unreachable or refusing, unusable state dir.
pub const ERROR: u8 = 1;
/// Bad command-line usage (clap).
pub const USAGE: u8 = 2;
/// `backup --once`: LND's channel set is unchanged; nothing new was stored.
pub const UNCHANGED: u8 = 3;
/// `backup --once`: a new backup was stored but flagged suspect (shrink guard).
pub const SUSPECT: u8 = 4;
/// `backup --once`: stored, but at least one target did not take it (retried later).
pub const UNDELIVERED: u8 = 5;
/// `watch`: LND's TLS certificate no longer matches `lnd.tls_cert`
/// (`lnd.pin_mismatch_exit_after` connections in a row): exit for a restart.
pub const TLS_CERT_CHANGED: u8 = 6;

/// `restore`: no identity given can open the backup; `inspect`: the key or identity does not open it.
pub const WRONG_IDENTITY: u8 = 10;
/// `restore`: the ciphertext does not match its manifest / tag, or does not authenticate;
/// `inspect`: it decrypts but is not a valid lnd backup.
pub const TAMPERED: u8 = 11;
/// `restore`: a target (or every target) could not be read.
pub const TARGET_UNREACHABLE: u8 = 12;
/// `restore`: no backups (or not the one asked for) on the targets.
pub const NO_BACKUPS: u8 = 13;
/// `restore`: LND refused the backup (VerifyChanBackup or RestoreChannelBackups).
pub const LND_REFUSED: u8 = 14;
/// `restore apply` was not confirmed (no terminal and no --yes, or the answer was not "yes").
pub const NOT_CONFIRMED: u8 = 15;

/// `verify`: the escrow audit log's hash chain is broken.
pub const VERIFY_AUDIT: u8 = 20;
/// `verify`: a target is unreachable, empty, or lacks the newest backup.
pub const VERIFY_TARGET: u8 = 21;
/// `verify`: a backup's bytes differ from its manifest/tag or the spool's record.
pub const VERIFY_INTEGRITY: u8 = 22;
/// `verify`: the escrowed identity (or an `--identity`) cannot open the newest backup.
pub const VERIFY_DECRYPT: u8 = 23;
/// `verify`: LND's VerifyChanBackup refused the backup.
pub const VERIFY_LND_REFUSED: u8 = 24;
/// `verify`: stale: older than `verify.max_age_hours`, or LND has channels it lacks.
pub const VERIFY_STALE: u8 = 25;
/// `verify`: the escrow: a required item is missing or a `keys verify` check fails.
pub const VERIFY_ESCROW: u8 = 26;
/// `verify`: LND could not be asked (unreachable, credentials).
pub const VERIFY_LND_UNREACHABLE: u8 = 27;
/// `verify`: the state dir is gone (journal and audit log lost), and `--no-spool` was not given.
pub const VERIFY_STATE_LOST: u8 = 28;
/// `verify`: the node's backup key (`lnd.backup_key_file`, or the escrowed aezeed or
/// lnd-backup-key) does not open a target's newest backup, or a channel in it does not parse.
pub const VERIFY_SCB_KEY: u8 = 29;

/// `audit verify`: the escrow audit log was changed: its hash chain is broken, or it does not
/// match its anchor in OpenBao (records removed or rewritten, or the anchor tampered with).
pub const AUDIT_TAMPERED: u8 = 30;
/// `audit verify`: the local chain is intact but could not be compared with its anchor:
/// no `[escrow]` section, OpenBao unreachable, sealed or refusing, or no anchor written yet.
pub const AUDIT_UNANCHORED: u8 = 31;

/// The code of a failed `watch`.
pub fn of_watch(e: &crate::watch::AgentError) -> u8 {
    match e {
        crate::watch::AgentError::TlsCertChanged { .. } => TLS_CERT_CHANGED,
        _ => ERROR,
    }
}

/// The code of a failed `restore`.
pub fn of_restore(e: &RestoreError) -> u8 {
    match e {
        RestoreError::Other(..) => ERROR,
        RestoreError::WrongIdentity(..) => WRONG_IDENTITY,
        RestoreError::Tampered(..) => TAMPERED,
        RestoreError::Unreachable(..) => TARGET_UNREACHABLE,
        RestoreError::NoBackups(..) => NO_BACKUPS,
        RestoreError::LndRefused(..) => LND_REFUSED,
        RestoreError::NotConfirmed(..) => NOT_CONFIRMED,
    }
}

/// The code of a failed `verify` check class. The classes are ordered root
/// cause first, and so are the codes: when several fail, the smallest wins.
pub fn of_verify(class: Class) -> u8 {
    match class {
        Class::Audit => VERIFY_AUDIT,
        Class::Target => VERIFY_TARGET,
        Class::Integrity => VERIFY_INTEGRITY,
        Class::Decrypt => VERIFY_DECRYPT,
        Class::LndRefused => VERIFY_LND_REFUSED,
        Class::Stale => VERIFY_STALE,
        Class::Escrow => VERIFY_ESCROW,
        Class::LndUnreachable => VERIFY_LND_UNREACHABLE,
        Class::StateLost => VERIFY_STATE_LOST,
        Class::ScbKey => VERIFY_SCB_KEY,
    }
}

/// The code `verify` exits with for a report.
pub fn of_verify_report(report: &crate::verify::Report) -> u8 {
    report.root_cause().map_or(OK, of_verify)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_codes_follow_the_root_cause_order() {
        let classes = [
            Class::Audit,
            Class::Target,
            Class::Integrity,
            Class::Decrypt,
            Class::LndRefused,
            Class::Stale,
            Class::Escrow,
            Class::LndUnreachable,
            Class::StateLost,
            Class::ScbKey,
        ];
        for pair in classes.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
            assert!(of_verify(pair[0]) < of_verify(pair[1]), "{pair:?}");
        }
    }
}
