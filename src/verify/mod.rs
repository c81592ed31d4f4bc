//! `chanvault verify`: the monthly drill that proves recovery would work
//! today, and says exactly what would not.
//!
//! Per target: the newest good backup is there (and is the spool's last good
//! one, or the newest any target holds), intact, fresh, opens with the
//! escrowed identity and every `--identity`, matches the spool's record,
//! covers every channel LND has now, and LND accepts it. The escrow: every
//! required item, `keys verify`'s cross-checks, the audit chain. `--drill`
//! adds a `restore fetch` from scratch per target. Output: a ✓/✗ table,
//! JSON, a Prometheus textfile, and an exit code per failure class.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::escrow::audit::AuditLog;
use crate::lnd::{LndClient, LndSettings};
use crate::pipeline::short;
use crate::progress::Progress;
use crate::restore::{self, Listed, RestoreError};
use crate::scb::{ChanPoint, sha256_hex};
use crate::seal::Identities;
use crate::spool::{BackupRecord, JOURNAL_FILE, Journal};

/// What a failed check is. Ordered root cause first: when several classes
/// fail, the smallest is the one to fix first (and gives the exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Audit,
    Target,
    Integrity,
    Decrypt,
    LndRefused,
    Stale,
    Escrow,
    LndUnreachable,
}

impl Class {
    fn of(e: &RestoreError) -> Self {
        match e {
            RestoreError::WrongIdentity(_) => Class::Decrypt,
            RestoreError::Tampered(_) => Class::Integrity,
            RestoreError::LndRefused(_) => Class::LndRefused,
            _ => Class::Target,
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub target: String,
    pub check: String,
    /// `None`: skipped (not applicable, or an earlier check failed).
    pub ok: Option<bool>,
    pub detail: String,
    pub class: Class,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started: DateTime<Utc>,
    pub success: bool,
    pub checks: Vec<Check>,
}

struct Rows(Vec<Check>);

impl Rows {
    fn push(&mut self, target: &str, check: &str, ok: Option<bool>, class: Class, detail: String) {
        self.0.push(Check {
            target: target.to_owned(),
            check: check.to_owned(),
            ok,
            detail,
            class,
        });
    }
    fn pass(&mut self, target: &str, check: &str, class: Class, detail: String) {
        self.push(target, check, Some(true), class, detail);
    }
    fn fail(&mut self, target: &str, check: &str, class: Class, detail: String) {
        self.push(target, check, Some(false), class, detail);
    }
    fn skip(&mut self, target: &str, check: &str, class: Class, detail: String) {
        self.push(target, check, None, class, detail);
    }
}

fn read_journal(state_dir: &Path) -> Result<Option<Journal>, String> {
    let p = state_dir.join(JOURNAL_FILE);
    match std::fs::read(&p) {
        Ok(b) => crate::spool::parse_journal(&b)
            .map(Some)
            .map_err(|e| format!("{}: {e}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", p.display())),
    }
}

fn list_points(p: &BTreeSet<ChanPoint>) -> String {
    let v: Vec<String> = p.iter().map(ToString::to_string).collect();
    v.join(", ")
}

/// Run every check. Never fails as a whole: problems are rows.
pub async fn verify(
    cfg: &Config,
    identity_files: &[PathBuf],
    drill: bool,
    progress: &dyn Progress,
) -> Report {
    let started = Utc::now();
    let mut rows = Rows(Vec::new());

    // The audit chain first: a broken chain is the root cause of whatever follows.
    let log = AuditLog::new(&cfg.state_dir);
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

    // Offline identities.
    let mut offline: Vec<(String, Identities)> = Vec::new();
    for p in identity_files {
        match Identities::from_file(p) {
            Ok(ids) => offline.push((p.display().to_string(), ids)),
            Err(e) => rows.fail("identity", "identity-file", Class::Decrypt, e.to_string()),
        }
    }

    // The escrow: identities and keys verify.
    let mut escrowed: Vec<(String, Identities)> = Vec::new();
    if cfg.escrow.is_some() {
        progress.step("checking the escrow…");
        escrow_checks(
            cfg,
            offline.first().map(|(_, i)| i),
            &mut escrowed,
            &mut rows,
        )
        .await;
    } else {
        rows.skip(
            "escrow",
            "escrow",
            Class::Escrow,
            "no [escrow] section in the config".into(),
        );
    }

    // The spool, when this machine has one.
    let journal = match read_journal(&cfg.state_dir) {
        Ok(j) => j,
        Err(e) => {
            rows.fail("spool", "spool", Class::Integrity, e);
            None
        }
    };
    let last_good: Option<BackupRecord> = journal.as_ref().and_then(|j| j.last_good().cloned());

    // LND now.
    progress.step(&format!(
        "asking LND at {} for its channels…",
        cfg.lnd.address
    ));
    let lnd = match LndClient::connect(&LndSettings::from(&cfg.lnd)).await {
        Ok(c) => match c.current_channels().await {
            Ok(cur) => {
                rows.pass(
                    "lnd",
                    "lnd-reachable",
                    Class::LndUnreachable,
                    format!("{} channel(s) open or pending", cur.len()),
                );
                Some((c, cur))
            }
            Err(e) => {
                rows.fail("lnd", "lnd-reachable", Class::LndUnreachable, e.to_string());
                None
            }
        },
        Err(e) => {
            rows.fail("lnd", "lnd-reachable", Class::LndUnreachable, e.to_string());
            None
        }
    };

    // Every target's listing first, so that "newest" can be compared across them.
    let mut listings: Vec<(String, Result<Vec<Listed>, RestoreError>)> = Vec::new();
    for t in &cfg.targets {
        let r = restore::list(cfg, Some(t.name()), true)
            .await
            .map(|l| l.backups);
        listings.push((t.name().to_owned(), r));
    }
    let newest_anywhere: Option<(DateTime<Utc>, String)> = listings
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .flatten()
        .filter(|b| b.suspect.is_none())
        .map(|b| (b.created, b.id.clone()))
        .max();
    let expected = last_good
        .as_ref()
        .map(|r| (r.created, r.id.clone()))
        .or(newest_anywhere);

    if cfg.targets.is_empty() {
        rows.fail(
            "-",
            "targets",
            Class::Target,
            "no targets configured".into(),
        );
    }
    // Bounded by config validation (at most ten years).
    let max_age = i64::try_from(cfg.verify.max_age_hours)
        .ok()
        .and_then(chrono::Duration::try_hours)
        .unwrap_or(chrono::Duration::MAX);
    for (name, listing) in listings {
        progress.step(&format!("checking target {name}…"));
        let backups = match listing {
            Ok(b) => b,
            Err(e) => {
                rows.fail(&name, "newest-present", Class::Target, e.to_string());
                continue;
            }
        };
        let Some(newest) = backups.iter().find(|b| b.suspect.is_none()).cloned() else {
            rows.fail(
                &name,
                "newest-present",
                Class::Target,
                "holds no good backup".into(),
            );
            continue;
        };
        match &expected {
            Some((t, id)) if short(id) != short(&newest.id) && *t > newest.created => rows.fail(
                &name,
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
                &name,
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
        let age = started - newest.created;

        // Integrity: every copy of it this target holds (current and history).
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
                &name,
                "integrity",
                Class::Integrity,
                "SHA-256 matches what the target published (manifest or snapshot tag)".into(),
            ),
            (Some(e), _) => {
                let class = Class::of(e);
                rows.fail(
                    &name,
                    if class == Class::Integrity {
                        "integrity"
                    } else {
                        "newest-present"
                    },
                    class,
                    e.to_string(),
                );
            }
            (None, None) => {}
        }
        let (None, Some(sealed)) = (bad, sealed) else {
            continue;
        };
        let record = journal.as_ref().and_then(|j| {
            j.backups
                .iter()
                .find(|r| short(&r.id) == short(&newest.id))
                .cloned()
        });

        // Decrypt with every identity.
        let mut plain = None;
        let what = format!("backup {} on target {name}", short(&newest.id));
        if cfg.escrow.is_some() && escrowed.is_empty() {
            rows.fail(
                &name,
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
            match restore::decrypt(ids, &sealed, &what) {
                Ok(p) => {
                    rows.pass(&name, check, Class::Decrypt, format!("opens with {label}"));
                    plain.get_or_insert(p);
                }
                Err(e) => {
                    let class = Class::of(&e);
                    rows.fail(&name, check, class, format!("{label}: {e}"));
                }
            }
        }
        if escrowed.is_empty() && offline.is_empty() {
            rows.skip(
                &name,
                "decrypt",
                Class::Decrypt,
                "no identity: configure [escrow] with an age-identity item or pass --identity"
                    .into(),
            );
        }

        // The spool's record.
        match (&record, &plain) {
            (Some(r), Some(p)) => {
                let sealed_ok = sha256_hex(&sealed) == r.id;
                let blob_ok = sha256_hex(p.expose()) == r.blob_sha256;
                if sealed_ok && blob_ok {
                    rows.pass(
                        &name,
                        "spool-match",
                        Class::Integrity,
                        format!("bytes match spool record {}", short(&r.id)),
                    );
                } else {
                    rows.fail(
                        &name,
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
                if sha256_hex(&sealed) == r.id {
                    rows.pass(
                        &name,
                        "spool-match",
                        Class::Integrity,
                        format!("ciphertext matches spool record {}", short(&r.id)),
                    );
                } else {
                    rows.fail(
                        &name,
                        "spool-match",
                        Class::Integrity,
                        format!("ciphertext differs from spool record {}", short(&r.id)),
                    );
                }
            }
            (None, _) if journal.is_some() => rows.skip(
                &name,
                "spool-match",
                Class::Integrity,
                "the spool no longer holds this backup".into(),
            ),
            (None, _) => rows.skip(
                &name,
                "spool-match",
                Class::Integrity,
                "no spool on this machine".into(),
            ),
        }

        // LND: VerifyChanBackup, coverage, freshness.
        let mut covered: Option<BTreeSet<ChanPoint>> = None;
        match (&lnd, &plain) {
            (Some((client, _)), Some(p)) => match client.verify_multi(p.expose()).await {
                Ok(points) => {
                    rows.pass(
                        &name,
                        "lnd-verify",
                        Class::LndRefused,
                        match &points {
                            Some(c) => format!("LND reads {} channel(s) in it", c.len()),
                            None => "LND accepts it (lnd < 0.19 lists no channel points)".into(),
                        },
                    );
                    // lnd < 0.19 lists no points: the journal's, where it still has them.
                    covered = points.or_else(|| {
                        record
                            .as_ref()
                            .filter(|r| r.channels == 0 || !r.chan_points.is_empty())
                            .map(|r| {
                                r.chan_points
                                    .iter()
                                    .filter_map(|s| s.parse().ok())
                                    .collect()
                            })
                    });
                }
                Err(e) if e.is_connection() => {
                    rows.fail(&name, "lnd-verify", Class::LndUnreachable, e.to_string())
                }
                Err(e) => rows.fail(&name, "lnd-verify", Class::LndRefused, e.to_string()),
            },
            (None, _) => rows.skip(
                &name,
                "lnd-verify",
                Class::LndRefused,
                "LND unreachable".into(),
            ),
            (_, None) => rows.skip(
                &name,
                "lnd-verify",
                Class::LndRefused,
                "not decrypted".into(),
            ),
        }
        let current = lnd.as_ref().map(|(_, c)| c);
        match (&covered, current) {
            (Some(cov), Some(cur)) => {
                let missing: BTreeSet<ChanPoint> = cur.difference(cov).cloned().collect();
                if missing.is_empty() {
                    rows.pass(
                        &name,
                        "covers-lnd",
                        Class::Stale,
                        format!("covers all {} of LND's channels", cur.len()),
                    );
                } else {
                    rows.fail(
                        &name,
                        "covers-lnd",
                        Class::Stale,
                        format!(
                            "lacks {} channel(s) LND has now (opened since the backup): {}",
                            missing.len(),
                            list_points(&missing)
                        ),
                    );
                }
            }
            _ => rows.skip(
                &name,
                "covers-lnd",
                Class::Stale,
                "channel set unknown (not decrypted, or LND unreachable)".into(),
            ),
        }
        let hours = age.num_minutes() as f64 / 60.0;
        if age <= max_age {
            rows.pass(
                &name,
                "fresh",
                Class::Stale,
                format!("{hours:.1} h old (max {} h)", cfg.verify.max_age_hours),
            );
        } else if matches!((&covered, current), (Some(cov), Some(cur)) if cov == cur) {
            rows.pass(
                &name,
                "fresh",
                Class::Stale,
                format!("{hours:.1} h old, but LND's channels are unchanged since"),
            );
        } else {
            rows.fail(
                &name,
                "fresh",
                Class::Stale,
                format!(
                    "{hours:.1} h old, more than verify.max_age_hours = {}",
                    cfg.verify.max_age_hours
                ),
            );
        }

        // The drill: a stranger's restore fetch, from scratch.
        if drill {
            let ids = escrowed.first().or(offline.first());
            match ids {
                Some((label, ids)) => rows
                    .0
                    .push(drill_one(cfg, &name, ids, label, plain.as_ref()).await),
                None => rows.skip(
                    &name,
                    "drill",
                    Class::Target,
                    "no identity to open the backup with".into(),
                ),
            }
        }
    }

    let success = rows.0.iter().all(|c| c.ok != Some(false));
    Report {
        started,
        success,
        checks: rows.0,
    }
}

async fn drill_one(
    cfg: &Config,
    target: &str,
    ids: &Identities,
    label: &str,
    expect: Option<&crate::secret::SecretBytes>,
) -> Check {
    let mut check = Check {
        target: target.to_owned(),
        check: "drill".into(),
        ok: Some(false),
        detail: String::new(),
        class: Class::Target,
    };
    let dir = match tempfile_dir() {
        Ok(d) => d,
        Err(e) => {
            check.detail = e;
            return check;
        }
    };
    let out = dir.join("channel.backup");
    let r = restore::fetch(cfg, Some(target), "latest", ids, true).await;
    let result = match r {
        Ok(f) => crate::fsutil::create_secret_file(&out, f.plain.expose())
            .map_err(|e| format!("cannot write {}: {e}", out.display()))
            .and_then(|()| {
                std::fs::read(&out).map_err(|e| format!("cannot read {}: {e}", out.display()))
            })
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
    let _ = std::fs::remove_dir_all(&dir);
    check
}

/// A private temp dir (0700) for the drill.
fn tempfile_dir() -> Result<PathBuf, String> {
    let base = std::env::temp_dir().join(format!(
        "chanvault-drill-{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 6]>())
    ));
    std::fs::create_dir(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
    crate::fsutil::ensure_dir(&base, 0o700)
        .map_err(|e| format!("cannot protect {}: {e}", base.display()))?;
    Ok(base)
}

async fn escrow_checks(
    cfg: &Config,
    envelope: Option<&Identities>,
    escrowed: &mut Vec<(String, Identities)>,
    rows: &mut Rows,
) {
    let mut e = match crate::escrow::store::Escrow::open(cfg) {
        Ok(e) => e,
        Err(err) => {
            rows.fail("escrow", "escrow", Class::Escrow, err.to_string());
            return;
        }
    };
    match e.verify(envelope).await {
        Ok(results) => {
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
        Err(err) => rows.fail("escrow", "escrow", Class::Escrow, err.to_string()),
    }
    let items = match e.list().await {
        Ok(i) => i,
        Err(err) => {
            rows.fail(
                "escrow",
                "escrowed-identity",
                Class::Escrow,
                err.to_string(),
            );
            return;
        }
    };
    let names: Vec<String> = items
        .into_iter()
        .filter(|(_, m)| m.custom_metadata.get("kind").map(String::as_str) == Some("age-identity"))
        .map(|(n, _)| n)
        .collect();
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
}

impl Report {
    /// The class of the failure to fix first, if any check failed.
    pub fn root_cause(&self) -> Option<Class> {
        self.checks
            .iter()
            .filter(|c| c.ok == Some(false))
            .map(|c| c.class)
            .min()
    }

    /// Prometheus text exposition for node_exporter's textfile collector.
    pub fn textfile(&self) -> String {
        let mut per: BTreeMap<(String, String), bool> = BTreeMap::new();
        for c in &self.checks {
            if let Some(ok) = c.ok {
                let e = per
                    .entry((c.check.clone(), c.target.clone()))
                    .or_insert(true);
                *e = *e && ok;
            }
        }
        let mut s = String::new();
        s.push_str("# HELP chanvault_verify_success 1 if every check of the last chanvault verify passed.\n");
        s.push_str("# TYPE chanvault_verify_success gauge\n");
        s.push_str(&format!(
            "chanvault_verify_success {}\n",
            u8::from(self.success)
        ));
        s.push_str("# HELP chanvault_verify_last_run_timestamp_seconds When the last chanvault verify ran.\n");
        s.push_str("# TYPE chanvault_verify_last_run_timestamp_seconds gauge\n");
        s.push_str(&format!(
            "chanvault_verify_last_run_timestamp_seconds {}\n",
            self.started.timestamp()
        ));
        s.push_str(
            "# HELP chanvault_verify_check 1 if this check of the last chanvault verify passed.\n",
        );
        s.push_str("# TYPE chanvault_verify_check gauge\n");
        for ((check, target), ok) in per {
            s.push_str(&format!(
                "chanvault_verify_check{{check=\"{}\",target=\"{}\"}} {}\n",
                label(&check),
                label(&target),
                u8::from(ok)
            ));
        }
        s
    }
}

/// Leave the result in `state_dir` for `watch`'s metrics. Only where a state
/// dir already exists: a verify from a fresh machine creates nothing.
pub fn record_result(cfg: &Config, report: &Report) -> Result<(), String> {
    if !cfg.state_dir.is_dir() {
        return Ok(());
    }
    let result = crate::metrics::VerifyResult {
        time: report.started.timestamp(),
        success: report.success,
        failed_checks: report.checks.iter().filter(|c| c.ok == Some(false)).count(),
    };
    let path = cfg.state_dir.join(crate::metrics::VERIFY_RESULT_FILE);
    serde_json::to_vec(&result)
        .map_err(std::io::Error::other)
        .and_then(|b| crate::fsutil::write_atomic(&path, &b, 0o600))
        .map_err(|e| format!("cannot record the result in {}: {e}", path.display()))
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(target: &str, name: &str, ok: Option<bool>, class: Class) -> Check {
        Check {
            target: target.into(),
            check: name.into(),
            ok,
            detail: "d".into(),
            class,
        }
    }

    #[test]
    fn textfile_has_the_alerted_names_and_one_gauge_per_check() {
        let r = Report {
            started: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            success: false,
            checks: vec![
                check("pbs", "integrity", Some(false), Class::Integrity),
                check("pbs", "decrypt-identity", Some(true), Class::Decrypt),
                check("pbs", "decrypt-identity", Some(false), Class::Decrypt),
                check("a\"b", "fresh", Some(true), Class::Stale),
                check("pbs", "drill", None, Class::Target),
            ],
        };
        let t = r.textfile();
        assert!(t.contains("chanvault_verify_success 0\n"), "{t}");
        assert!(
            t.contains("chanvault_verify_last_run_timestamp_seconds 1700000000\n"),
            "{t}"
        );
        assert!(
            t.contains("chanvault_verify_check{check=\"integrity\",target=\"pbs\"} 0\n"),
            "{t}"
        );
        // Several rows of one check: it passes only if all do.
        assert!(
            t.contains("chanvault_verify_check{check=\"decrypt-identity\",target=\"pbs\"} 0\n"),
            "{t}"
        );
        assert!(t.contains("target=\"a\\\"b\"} 1\n"), "{t}");
        assert!(!t.contains("drill"), "skipped checks have no gauge: {t}");
        assert_eq!(r.root_cause(), Some(Class::Integrity));
    }
}
