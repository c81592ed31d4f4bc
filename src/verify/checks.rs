//! One function per check of `verify`. Each adds its rows and hands on what
//! the next check needs (the newest backup, its bytes, its plaintext, the
//! channels it covers), so a failed check skips what depends on it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::drill_dir::DrillDir;
use super::report::{Check, Class, Rows};
use crate::config::Config;
use crate::escrow::audit::AuditLog;
use crate::escrow::material::{Kind, Material};
use crate::lnd::{LndClient, LndSettings};
use crate::pipeline::short;
use crate::progress::Progress;
use crate::restore::{self, Listed, RestoreError};
use crate::scb::{ChanPoint, sha256_hex};
use crate::seal::Identities;
use crate::secret::SecretBytes;
use crate::spool::{BackupRecord, Journal};

/// An identity source and what it is called in the table.
pub(super) type Labeled = (String, Identities);

/// The audit chain first: a broken chain is the root cause of whatever
/// follows. With an escrow configured the log must exist, unless this is a
/// fresh recovery machine (`--no-spool`).
pub(super) fn audit_chain(cfg: &Config, no_spool: bool, rows: &mut Rows) {
    let log = AuditLog::new(&cfg.state_dir);
    if !log.exists() {
        let detail = format!("no audit log at {}", log.path().display());
        if cfg.escrow.is_some() && !no_spool {
            rows.fail(
                "escrow",
                "audit-chain",
                Class::Audit,
                format!("{detail}: the record of every escrow access is lost"),
            );
        } else {
            rows.skip("escrow", "audit-chain", Class::Audit, detail);
        }
        return;
    }
    match log.verify() {
        Ok(entries) => rows.pass(
            "escrow",
            "audit-chain",
            Class::Audit,
            format!(
                "{}: {} record(s), hash chain intact",
                log.path().display(),
                entries.len()
            ),
        ),
        Err(e) => rows.fail("escrow", "audit-chain", Class::Audit, e.to_string()),
    }
}

/// The `--identity` files.
pub(super) fn offline_identities(files: &[PathBuf], rows: &mut Rows) -> Vec<Labeled> {
    let mut offline = Vec::new();
    for p in files {
        match Identities::from_file(p) {
            Ok(ids) => offline.push((p.display().to_string(), ids)),
            Err(e) => rows.fail("identity", "identity-file", Class::Decrypt, e.to_string()),
        }
    }
    offline
}

/// The escrow: `keys verify`'s checks, every escrowed age identity, and
/// the valid items that hold lnd's backup key (aezeed, lnd-backup-key).
pub(super) async fn escrow(
    cfg: &Config,
    envelope: Option<&Identities>,
    rows: &mut Rows,
    progress: &dyn Progress,
) -> (Vec<Labeled>, Vec<(String, Material)>) {
    let mut escrowed = Vec::new();
    let mut valid = Vec::new();
    if cfg.escrow.is_none() {
        rows.skip(
            "escrow",
            "escrow",
            Class::Escrow,
            "no [escrow] section in the config".into(),
        );
        return (escrowed, valid);
    }
    progress.step("checking the escrow…");
    let mut e = match crate::escrow::store::Escrow::open(cfg) {
        Ok(e) => e,
        Err(err) => {
            rows.fail("escrow", "escrow", Class::Escrow, err.to_string());
            return (escrowed, valid);
        }
    };
    match e.verify(envelope).await {
        Ok(verified) => {
            let results = verified.checks;
            // What opens lnd's layer, for the scb-* rows.
            valid = verified
                .items
                .into_iter()
                .filter(|(_, m)| matches!(m.kind(), Kind::Aezeed | Kind::LndBackupKey))
                .collect();
            let mut passed = 0;
            for c in &results {
                if c.ok {
                    passed += 1;
                } else {
                    rows.fail(
                        "escrow",
                        "escrow",
                        Class::Escrow,
                        format!("{}: {}", c.name, c.detail),
                    );
                }
            }
            if passed == results.len() {
                rows.pass(
                    "escrow",
                    "escrow",
                    Class::Escrow,
                    format!("{passed} keys verify check(s) pass"),
                );
            }
        }
        Err(err) if refused(&err) => rows.skip(
            "escrow",
            "escrow",
            Class::Escrow,
            format!(
                "this token may not list the escrow (the shipped daemon policy): the drill reads only {DAEMON_IDENTITY_ITEM:?}; `keys verify` with an operator token checks every item"
            ),
        ),
        Err(err) => rows.fail("escrow", "escrow", Class::Escrow, err.to_string()),
    }
    let names: Vec<String> = match e.list().await {
        Ok(items) => items
            .into_iter()
            .filter(|(_, m)| {
                m.custom_metadata.get("kind").map(String::as_str) == Some("age-identity")
            })
            .map(|(n, _)| n)
            .collect(),
        Err(err) if refused(&err) => vec![DAEMON_IDENTITY_ITEM.to_owned()],
        Err(err) => {
            rows.fail(
                "escrow",
                "escrowed-identity",
                Class::Escrow,
                err.to_string(),
            );
            return (escrowed, valid);
        }
    };
    if names.is_empty() {
        rows.fail(
            "escrow",
            "escrowed-identity",
            Class::Escrow,
            "no age-identity item is escrowed (chanvault keys put age-identity NAME)".into(),
        );
    }
    drop(e);
    for n in names {
        match restore::escrowed_identity(cfg, &n, envelope).await {
            Ok(ids) => escrowed.push((format!("escrowed {n}"), ids)),
            Err(err) => rows.fail(
                "escrow",
                "escrowed-identity",
                Class::Escrow,
                err.to_string(),
            ),
        }
    }
    (escrowed, valid)
}

/// The one item the shipped daemon policy lets its token read
/// (contrib/openbao/chanvault-daemon.hcl).
const DAEMON_IDENTITY_ITEM: &str = "age-identity";

/// OpenBao refused this token (403): a least-privilege token, not a failure
/// of the escrow.
fn refused(e: &crate::escrow::store::EscrowError) -> bool {
    matches!(
        e,
        crate::escrow::store::EscrowError::Kv(crate::escrow::kv::KvError::Refused { .. })
    )
}

/// The spool's journal. A state dir the config names but that is gone has
/// lost the journal (and the audit log): a failure, unless the user says
/// this is a fresh recovery machine (`--no-spool`).
pub(super) fn spool(state_dir: &Path, no_spool: bool, rows: &mut Rows) -> Option<Journal> {
    if !state_dir.exists() {
        let (ok, detail) = if no_spool {
            (
                None,
                format!(
                    "no state dir {} (--no-spool: a fresh recovery machine)",
                    state_dir.display()
                ),
            )
        } else {
            (
                Some(false),
                format!(
                    "state dir {} is gone: the journal and the escrow audit log are lost; \
                     on a fresh recovery machine, pass --no-spool",
                    state_dir.display()
                ),
            )
        };
        rows.push("spool", "spool", ok, Class::StateLost, detail);
        return None;
    }
    crate::spool::read_journal(state_dir).unwrap_or_else(|e| {
        rows.fail("spool", "spool", Class::Integrity, e.to_string());
        None
    })
}

/// LND now: reachable, and its channels.
/// `offline`: lnd's layer can be read without LND (`lnd.backup_key_file`),
/// so an LND that cannot be reached (the node is down, or gone: the case
/// the drill is for) is a skipped row; the scb-* rows carry the proof. A
/// refusing LND (macaroon, permissions) still fails.
pub(super) async fn lnd_now(
    cfg: &Config,
    offline: bool,
    rows: &mut Rows,
    progress: &dyn Progress,
) -> Option<(LndClient, BTreeSet<ChanPoint>)> {
    progress.step(&format!(
        "asking LND at {} for its channels…",
        cfg.lnd.address
    ));
    let unreachable = |rows: &mut Rows, e: &crate::lnd::LndError| {
        if offline && e.is_connection() {
            let detail = format!(
                "{e}; lnd's layer is read with the node's backup key instead (the scb-* rows)"
            );
            rows.skip("lnd", "lnd-reachable", Class::LndUnreachable, detail);
        } else {
            rows.fail("lnd", "lnd-reachable", Class::LndUnreachable, e.to_string());
        }
    };
    let client = match LndClient::connect(&LndSettings::from(&cfg.lnd)).await {
        Ok(c) => c,
        Err(e) => {
            unreachable(rows, &e);
            return None;
        }
    };
    match client.current_channels().await {
        Ok(cur) => {
            rows.pass(
                "lnd",
                "lnd-reachable",
                Class::LndUnreachable,
                format!("{} channel(s) open or pending", cur.len()),
            );
            Some((client, cur))
        }
        Err(e) => {
            unreachable(rows, &e);
            None
        }
    }
}

/// The target's newest good backup, which must be the expected newest
/// (the spool's last good one, or the newest any target holds).
pub(super) fn newest_present(
    name: &str,
    listing: Result<Vec<Listed>, RestoreError>,
    expected: Option<&(DateTime<Utc>, String)>,
    rows: &mut Rows,
) -> Option<Listed> {
    let backups = match listing {
        Ok(b) => b,
        Err(e) => {
            rows.fail(name, "readable", Class::Target, e.to_string());
            return None;
        }
    };
    let Some(newest) = backups.iter().find(|b| b.suspect.is_none()).cloned() else {
        rows.fail(
            name,
            "newest-present",
            Class::Target,
            "holds no good backup".into(),
        );
        return None;
    };
    match expected {
        Some((t, id)) if short(id) != short(&newest.id) && *t > newest.created => rows.fail(
            name,
            "newest-present",
            Class::Target,
            format!(
                "missing the newest backup {} ({}); its newest is {} ({})",
                short(id),
                t.format("%Y-%m-%d %H:%M:%S UTC"),
                short(&newest.id),
                newest.created.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        ),
        _ => rows.pass(
            name,
            "newest-present",
            Class::Target,
            format!(
                "backup {} ({}, {} channel(s))",
                short(&newest.id),
                newest.created.format("%Y-%m-%d %H:%M:%S UTC"),
                newest.channels
            ),
        ),
    }
    Some(newest)
}

/// Every copy of the newest backup this target holds (current and history)
/// hashes to what the target published; returns the sealed bytes.
pub(super) async fn integrity(
    cfg: &Config,
    name: &str,
    newest: &Listed,
    rows: &mut Rows,
) -> Option<Vec<u8>> {
    let mut sealed = None;
    let mut bad = None;
    for loc in newest.held_by.iter().filter(|l| l.target == name) {
        match restore::read_copy(cfg, loc).await {
            Ok(b) => {
                sealed.get_or_insert(b);
            }
            Err(e) => {
                bad.get_or_insert(e);
            }
        }
    }
    match (&bad, &sealed) {
        (None, Some(_)) => rows.pass(
            name,
            "integrity",
            Class::Integrity,
            "SHA-256 matches what the target published (manifest or snapshot tag)".into(),
        ),
        (Some(e), _) => {
            let class = Class::of(e);
            rows.fail(
                name,
                if class == Class::Integrity {
                    "integrity"
                } else {
                    "readable"
                },
                class,
                e.to_string(),
            );
        }
        (None, None) => {}
    }
    match (bad, sealed) {
        (None, Some(sealed)) => Some(sealed),
        _ => None,
    }
}

/// Every identity (escrowed and offline) opens the backup; returns the
/// plaintext from the first that does.
pub(super) fn decrypt(
    cfg: &Config,
    name: &str,
    what: &str,
    sealed: &[u8],
    escrowed: &[Labeled],
    offline: &[Labeled],
    rows: &mut Rows,
) -> Option<SecretBytes> {
    let mut plain = None;
    // No escrowed identity could be read: the escrow rows say why and carry
    // the failure (the root cause); this row only points there.
    if cfg.escrow.is_some() && escrowed.is_empty() {
        rows.skip(
            name,
            "decrypt-escrowed",
            Class::Decrypt,
            "no escrowed age identity could be read (see the escrow rows)".into(),
        );
    }
    for (label, ids) in escrowed.iter().chain(offline.iter()) {
        let check = if escrowed.iter().any(|(l, _)| l == label) {
            "decrypt-escrowed"
        } else {
            "decrypt-identity"
        };
        match restore::decrypt(ids, sealed, what) {
            Ok(p) => {
                rows.pass(name, check, Class::Decrypt, format!("opens with {label}"));
                plain.get_or_insert(p);
            }
            Err(e) => {
                let class = Class::of(&e);
                rows.fail(name, check, class, format!("{label}: {e}"));
            }
        }
    }
    if escrowed.is_empty() && offline.is_empty() {
        let detail = if cfg.escrow.is_some() {
            "no identity: the escrow could not be read (see the escrow rows) and no --identity was given"
        } else {
            "no identity: configure [escrow] with an age-identity item or pass --identity"
        };
        rows.skip(name, "decrypt", Class::Decrypt, detail.into());
    }
    plain
}

/// The bytes are the ones the spool recorded for this backup.
pub(super) fn spool_match(
    name: &str,
    has_spool: bool,
    record: Option<&BackupRecord>,
    sealed: &[u8],
    plain: Option<&SecretBytes>,
    rows: &mut Rows,
) {
    match (record, plain) {
        (Some(r), Some(p)) => {
            let sealed_ok = sha256_hex(sealed) == r.id;
            let blob_ok = sha256_hex(p.expose()) == r.blob_sha256;
            if sealed_ok && blob_ok {
                rows.pass(
                    name,
                    "spool-match",
                    Class::Integrity,
                    format!("bytes match spool record {}", short(&r.id)),
                );
            } else {
                rows.fail(
                    name,
                    "spool-match",
                    Class::Integrity,
                    format!(
                        "bytes differ from spool record {} ({})",
                        short(&r.id),
                        if sealed_ok { "plaintext" } else { "ciphertext" }
                    ),
                );
            }
        }
        (Some(r), None) => {
            if sha256_hex(sealed) == r.id {
                rows.pass(
                    name,
                    "spool-match",
                    Class::Integrity,
                    format!("ciphertext matches spool record {}", short(&r.id)),
                );
            } else {
                rows.fail(
                    name,
                    "spool-match",
                    Class::Integrity,
                    format!("ciphertext differs from spool record {}", short(&r.id)),
                );
            }
        }
        (None, _) if has_spool => rows.skip(
            name,
            "spool-match",
            Class::Integrity,
            "the spool no longer holds this backup".into(),
        ),
        (None, _) => rows.skip(
            name,
            "spool-match",
            Class::Integrity,
            "no spool on this machine".into(),
        ),
    }
}

/// LND's `VerifyChanBackup` accepts the backup; returns the channels it
/// covers (from LND, or for lnd < 0.19 from the journal where it has them).
pub(super) async fn lnd_verify(
    name: &str,
    lnd: Option<&LndClient>,
    plain: Option<&SecretBytes>,
    record: Option<&BackupRecord>,
    rows: &mut Rows,
) -> Option<BTreeSet<ChanPoint>> {
    let (client, p) = match (lnd, plain) {
        (Some(c), Some(p)) => (c, p),
        (None, _) => {
            rows.skip(
                name,
                "lnd-verify",
                Class::LndRefused,
                "LND unreachable".into(),
            );
            return None;
        }
        (_, None) => {
            rows.skip(
                name,
                "lnd-verify",
                Class::LndRefused,
                "not decrypted".into(),
            );
            return None;
        }
    };
    match client.verify_multi(p.expose()).await {
        Ok(points) => {
            rows.pass(
                name,
                "lnd-verify",
                Class::LndRefused,
                match &points {
                    Some(c) => format!("LND reads {} channel(s) in it", c.len()),
                    None => "LND accepts it (lnd < 0.19 lists no channel points)".into(),
                },
            );
            // lnd < 0.19 lists no points: the journal's, where it still has them.
            points.or_else(|| {
                record
                    .filter(|r| r.channels == 0 || !r.chan_points.is_empty())
                    .map(BackupRecord::chan_point_set)
            })
        }
        Err(e) if e.is_connection() => {
            rows.fail(name, "lnd-verify", Class::LndUnreachable, e.to_string());
            None
        }
        Err(e) => {
            rows.fail(name, "lnd-verify", Class::LndRefused, e.to_string());
            None
        }
    }
}

/// The backup covers every channel LND has now.
pub(super) fn covers_lnd(
    name: &str,
    covered: Option<&BTreeSet<ChanPoint>>,
    current: Option<&BTreeSet<ChanPoint>>,
    rows: &mut Rows,
) {
    let (Some(cov), Some(cur)) = (covered, current) else {
        rows.skip(
            name,
            "covers-lnd",
            Class::Stale,
            "channel set unknown (not decrypted, or LND unreachable)".into(),
        );
        return;
    };
    let missing: BTreeSet<ChanPoint> = cur.difference(cov).cloned().collect();
    if missing.is_empty() {
        rows.pass(
            name,
            "covers-lnd",
            Class::Stale,
            format!("covers all {} of LND's channels", cur.len()),
        );
    } else {
        let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
        rows.fail(
            name,
            "covers-lnd",
            Class::Stale,
            format!(
                "lacks {} channel(s) LND has now (opened since the backup): {}",
                missing.len(),
                list.join(", ")
            ),
        );
    }
}

/// Not older than `verify.max_age_hours`, unless LND's channels are
/// unchanged since.
pub(super) fn fresh(
    cfg: &Config,
    name: &str,
    age: chrono::Duration,
    covered: Option<&BTreeSet<ChanPoint>>,
    current: Option<&BTreeSet<ChanPoint>>,
    rows: &mut Rows,
) {
    // Bounded by config validation (at most ten years).
    let max_age = i64::try_from(cfg.verify.max_age_hours)
        .ok()
        .and_then(chrono::Duration::try_hours)
        .unwrap_or(chrono::Duration::MAX);
    let hours = age.num_minutes() as f64 / 60.0;
    if age <= max_age {
        rows.pass(
            name,
            "fresh",
            Class::Stale,
            format!("{hours:.1} h old (max {} h)", cfg.verify.max_age_hours),
        );
    } else if matches!((covered, current), (Some(cov), Some(cur)) if cov == cur) {
        rows.pass(
            name,
            "fresh",
            Class::Stale,
            format!("{hours:.1} h old, but LND's channels are unchanged since"),
        );
    } else {
        rows.fail(
            name,
            "fresh",
            Class::Stale,
            format!(
                "{hours:.1} h old, more than verify.max_age_hours = {}",
                cfg.verify.max_age_hours
            ),
        );
    }
}

/// The drill: a stranger's `restore fetch`, from scratch, into a private
/// temp dir; it must write what the checks above read.
pub(super) async fn drill(
    cfg: &Config,
    target: &str,
    ids: &Identities,
    label: &str,
    expect: Option<&SecretBytes>,
) -> Check {
    let mut check = Check {
        target: target.to_owned(),
        check: "drill".into(),
        ok: Some(false),
        detail: String::new(),
        class: Class::Target,
    };
    // Removed with the plaintext in it when it goes out of scope, on every
    // path out of this function.
    let dir = match DrillDir::create() {
        Ok(d) => d,
        Err(e) => {
            check.detail = e;
            return check;
        }
    };
    let r = restore::fetch(cfg, Some(target), "latest", ids, &crate::progress::Quiet).await;
    let result = match r {
        Ok(f) => dir
            .write_and_read_back(f.plain.expose())
            .map(|bytes| (f, bytes)),
        Err(e) => {
            check.class = Class::of(&e);
            Err(e.to_string())
        }
    };
    match result {
        Ok((f, bytes)) => {
            let same = expect.is_none_or(|p| p.expose() == bytes.as_slice());
            check.ok = Some(same);
            check.detail = if same {
                format!(
                    "restore fetch of {} from scratch with {label} wrote an identical channel.backup",
                    short(&f.backup.id)
                )
            } else {
                check.class = Class::Integrity;
                "restore fetch from scratch wrote different bytes than the check above read".into()
            };
        }
        Err(e) => check.detail = e,
    }
    drop(dir);
    check
}
