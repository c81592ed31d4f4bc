//! `chanvault verify`: arguments, the ✓/✗ table, JSON and the textfile. The
//! checks themselves are `crate::verify`.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;

use super::{ConfigArg, Stderr, exit};
use crate::config::Config;
use crate::progress::{Progress, Quiet};
use crate::verify::{Check, Report};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Offline age identity file that must also open the backups (repeatable); the first also opens envelope-sealed escrow items.
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    /// Also do a full restore fetch from each target into a temp dir, from scratch.
    #[arg(long)]
    pub drill: bool,
    /// This is a fresh recovery machine: do not require the state dir (journal, audit log).
    #[arg(long)]
    pub no_spool: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Write Prometheus metrics here (node_exporter's textfile collector; atomic, mode 0644).
    #[arg(long, value_name = "PATH")]
    pub textfile: Option<PathBuf>,
}

/// The JSON document `verify --json` prints.
#[derive(Serialize)]
struct JsonReport<'a> {
    started: DateTime<Utc>,
    success: bool,
    exit_code: u8,
    checks: &'a [Check],
    warnings: &'a [crate::verify::ChannelWarning],
}

fn human(report: &Report, code: u8) -> String {
    let mut out = String::new();
    for c in &report.checks {
        let mark = match c.ok {
            Some(true) => "✓",
            Some(false) => "✗",
            None => "-",
        };
        out.push_str(&format!(
            "{mark} {:<10} {:<18} {}\n",
            c.target, c.check, c.detail
        ));
    }
    if !report.warnings.is_empty() {
        out.push_str(&format!(
            "{} channel warning(s) (they do not fail the drill):\n",
            report.warnings.len()
        ));
        for w in &report.warnings {
            out.push_str(&format!(
                "! {:<10} {} {}: {}\n",
                w.target,
                w.chan_point,
                w.concern.as_str(),
                w.detail
            ));
        }
    }
    let failed = report.checks.iter().filter(|c| c.ok == Some(false)).count();
    if failed == 0 {
        out.push_str("recovery works today: every check passed\n");
    } else {
        out.push_str(&format!("{failed} check(s) FAILED (exit {code})\n"));
    }
    out
}

/// `chanvault verify`; returns the exit code.
pub async fn run(a: VerifyArgs) -> u8 {
    let cfg = match Config::load(&a.config.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chanvault: error: {e}");
            return exit::ERROR;
        }
    };
    let progress: &dyn Progress = if a.json { &Quiet } else { &Stderr };
    let opts = crate::verify::Options {
        identity_files: a.identity.clone(),
        drill: a.drill,
        no_spool: a.no_spool,
    };
    let report = crate::verify::verify(&cfg, &opts, progress).await;
    if let Err(e) = crate::verify::record_result(&cfg, &report) {
        eprintln!("chanvault: warning: {e}");
    }
    if let Some(p) = &a.textfile
        && let Err(e) = crate::fsutil::write_atomic(p, report.textfile().as_bytes(), 0o644)
    {
        eprintln!(
            "chanvault: error: cannot write the textfile {}: {e}",
            p.display()
        );
        return exit::ERROR;
    }
    let code = exit::of_verify_report(&report);
    if a.json {
        let doc = JsonReport {
            started: report.started,
            success: report.success,
            exit_code: code,
            checks: &report.checks,
            warnings: &report.warnings,
        };
        match serde_json::to_string_pretty(&doc) {
            Ok(t) => println!("{t}"),
            Err(e) => {
                eprintln!("chanvault: error: {e}");
                return exit::ERROR;
            }
        }
    } else {
        print!("{}", human(&report, code));
    }
    if let Some(root) = report.root_cause() {
        let first = report
            .checks
            .iter()
            .find(|c| c.ok == Some(false) && c.class == root);
        if let Some(c) = first {
            eprintln!(
                "chanvault: verify failed: {} {}: {}",
                c.target, c.check, c.detail
            );
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Class;

    #[test]
    fn the_table_names_each_row_and_the_exit_code() {
        let row = |ok, class| Check {
            target: "pbs".into(),
            check: "integrity".into(),
            ok,
            detail: "d".into(),
            class,
        };
        let r = Report {
            started: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            success: false,
            checks: vec![
                row(Some(false), Class::Integrity),
                row(Some(false), Class::Stale),
            ],
            warnings: Vec::new(),
        };
        let code = exit::of_verify_report(&r);
        assert_eq!(code, exit::VERIFY_INTEGRITY);
        let t = human(&r, code);
        assert!(t.contains("✗ pbs"), "{t}");
        assert!(t.ends_with("2 check(s) FAILED (exit 22)\n"), "{t}");
    }
}
