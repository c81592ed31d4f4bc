//! What `verify` found: the rows, their failure classes, and the Prometheus
//! textfile. The table, the JSON and the exit code are the command line's.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::restore::RestoreError;

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
    /// The state dir this config names is gone: its journal and the escrow
    /// audit log with it.
    StateLost,
    /// The node's own backup key (`[lnd] backup_key_file`) does not open a
    /// target's newest backup, or what it opens does not parse: recovery
    /// with the seed alone would fail.
    ScbKey,
}

impl Class {
    pub(super) fn of(e: &RestoreError) -> Self {
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

/// Something about one channel in a backup that makes restoring it less
/// certain (no address, Tor v2 only, a type the planned lnd cannot restore,
/// no close-tx inputs). Shown and exported; never fails the drill.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelWarning {
    pub target: String,
    pub chan_point: String,
    pub concern: crate::chanbackup::Concern,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started: DateTime<Utc>,
    pub success: bool,
    pub checks: Vec<Check>,
    pub warnings: Vec<ChannelWarning>,
}

/// The rows so far, in the order they are checked.
pub(super) struct Rows(pub(super) Vec<Check>);

impl Rows {
    pub(super) fn push(
        &mut self,
        target: &str,
        check: &str,
        ok: Option<bool>,
        class: Class,
        detail: String,
    ) {
        self.0.push(Check {
            target: target.to_owned(),
            check: check.to_owned(),
            ok,
            detail,
            class,
        });
    }
    pub(super) fn pass(&mut self, target: &str, check: &str, class: Class, detail: String) {
        self.push(target, check, Some(true), class, detail);
    }
    pub(super) fn fail(&mut self, target: &str, check: &str, class: Class, detail: String) {
        self.push(target, check, Some(false), class, detail);
    }
    pub(super) fn skip(&mut self, target: &str, check: &str, class: Class, detail: String) {
        self.push(target, check, None, class, detail);
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
        let mut counts: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
        for w in &self.warnings {
            *counts
                .entry((w.target.clone(), w.concern.as_str()))
                .or_default() += 1;
        }
        s.push_str("# HELP chanvault_verify_channel_warnings Channels in a target's newest backup with this restore concern.\n");
        s.push_str("# TYPE chanvault_verify_channel_warnings gauge\n");
        for ((target, kind), n) in counts {
            s.push_str(&format!(
                "chanvault_verify_channel_warnings{{kind=\"{kind}\",target=\"{}\"}} {n}\n",
                label(&target)
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
    let result = crate::state_dir::VerifyResult {
        time: report.started.timestamp(),
        success: report.success,
        failed_checks: report.checks.iter().filter(|c| c.ok == Some(false)).count(),
    };
    let path = cfg.state_dir.join(crate::state_dir::VERIFY_RESULT_FILE);
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
            warnings: vec![ChannelWarning {
                target: "pbs".into(),
                chan_point: "00:0".into(),
                concern: crate::chanbackup::Concern::NoAddress,
                detail: "d".into(),
            }],
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
        assert!(
            t.contains("chanvault_verify_channel_warnings{kind=\"no-address\",target=\"pbs\"} 1\n"),
            "{t}"
        );
        assert_eq!(r.root_cause(), Some(Class::Integrity));
    }
}
