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

mod checks;
mod drill_dir;
mod report;
mod scb;
mod signed;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

pub use report::{ChannelWarning, Check, Class, Report, record_result};

use self::checks::Labeled;
use self::report::Rows;
use crate::config::Config;
use crate::lnd::LndClient;
use crate::pipeline::short;
use crate::progress::Progress;
use crate::restore::{self, Listed, RestoreError};
use crate::scb::ChanPoint;
use crate::spool::{BackupRecord, Journal};

/// What every target's checks are held against.
struct Context<'a> {
    cfg: &'a Config,
    started: DateTime<Utc>,
    offline: Vec<Labeled>,
    escrowed: Vec<Labeled>,
    journal: Option<Journal>,
    lnd: Option<(LndClient, std::collections::BTreeSet<ChanPoint>)>,
    /// The backup every target should hold as its newest.
    expected: Option<(DateTime<Utc>, String)>,
    drill: bool,
    /// `[lnd] backup_key_file` and the escrowed aezeed / lnd-backup-key:
    /// lnd's layer is read without LND too.
    scb_keys: Vec<crate::restore::NodeKey>,
    /// The manifest keys `signed` believes, read once for every target.
    trusted: Result<crate::signing::Trusted, RestoreError>,
}

/// What the drill is asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Offline identities that must also open every backup.
    pub identity_files: Vec<PathBuf>,
    /// Also a `restore fetch` from scratch per target.
    pub drill: bool,
    /// This is a fresh recovery machine: no state dir is expected.
    pub no_spool: bool,
}

/// Run every check. Never fails as a whole: problems are rows.
pub async fn verify(cfg: &Config, opts: &Options, progress: &dyn Progress) -> Report {
    let started = Utc::now();
    let drill = opts.drill;
    let mut rows = Rows(Vec::new());
    checks::audit_chain(cfg, opts.no_spool, &mut rows);
    let offline = checks::offline_identities(&opts.identity_files, &mut rows);
    let envelope = offline.first().map(|(_, i)| i);
    let (escrowed, items) = checks::escrow(cfg, envelope, &mut rows, progress).await;
    let journal = checks::spool(&cfg.state_dir, opts.no_spool, &mut rows);
    let mut scb_keys: Vec<crate::restore::NodeKey> =
        scb::file_key(cfg, &mut rows).into_iter().collect();
    scb_keys.extend(scb::escrowed_keys(&items, &mut rows));
    let lnd = checks::lnd_now(cfg, !scb_keys.is_empty(), &mut rows, progress).await;
    scb::node_identity(&items, lnd.as_ref().map(|(c, _)| c), &mut rows).await;
    drop(items);

    // Every target's listing first, so that "newest" can be compared across them.
    let mut listings: Vec<(String, Result<Vec<Listed>, RestoreError>)> = Vec::new();
    for t in &cfg.targets {
        let r = restore::list(cfg, Some(t.name()), &crate::progress::Quiet)
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
    let last_good: Option<&BackupRecord> = journal.as_ref().and_then(|j| j.last_good());
    let expected = last_good
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
    let ctx = Context {
        cfg,
        started,
        offline,
        escrowed,
        journal,
        lnd,
        expected,
        drill,
        scb_keys,
        trusted: restore::trusted_keys(cfg),
    };
    let mut warnings = Vec::new();
    for (name, listing) in listings {
        progress.step(&format!("checking target {name}…"));
        check_target(&ctx, &name, listing, &mut rows, &mut warnings).await;
    }
    let success = rows.0.iter().all(|c| c.ok != Some(false));
    Report {
        started,
        success,
        checks: rows.0,
        warnings,
    }
}

/// Every check of one target, in order; each skips what an earlier one
/// could not establish.
async fn check_target(
    ctx: &Context<'_>,
    name: &str,
    listing: Result<Vec<Listed>, RestoreError>,
    rows: &mut Rows,
    warnings: &mut Vec<ChannelWarning>,
) {
    let Some(newest) = checks::newest_present(name, listing, ctx.expected.as_ref(), rows) else {
        return;
    };
    match &ctx.trusted {
        Ok(trusted) => {
            if !signed::check(ctx.cfg, name, &newest, ctx.journal.as_ref(), trusted, rows).await {
                return;
            }
        }
        Err(e) => {
            rows.fail(name, "signed", Class::Integrity, e.to_string());
            return;
        }
    }
    let age = ctx.started - newest.created;
    let Some(sealed) = checks::integrity(ctx.cfg, name, &newest, rows).await else {
        return;
    };
    let record = ctx
        .journal
        .as_ref()
        .and_then(|j| j.backups.iter().find(|r| short(&r.id) == short(&newest.id)));
    let what = format!("backup {} on target {name}", short(&newest.id));
    let plain = checks::decrypt(
        ctx.cfg,
        name,
        &what,
        &sealed,
        &ctx.escrowed,
        &ctx.offline,
        rows,
    );
    checks::spool_match(
        name,
        ctx.journal.is_some(),
        record,
        &sealed,
        plain.as_ref(),
        rows,
    );
    let release = ctx.cfg.verify.restore_lnd();
    let plain_ref = plain.as_ref();
    let offline = scb::check(
        &ctx.scb_keys,
        release,
        name,
        plain_ref,
        record,
        rows,
        warnings,
    );
    let client = ctx.lnd.as_ref().map(|(c, _)| c);
    let covered = checks::lnd_verify(name, client, plain.as_ref(), record, rows).await;
    scb::matches_lnd(name, offline.channels.as_ref(), covered.as_ref(), rows);
    let current = ctx.lnd.as_ref().map(|(_, c)| c);
    checks::covers_lnd(name, covered.as_ref(), current, rows);
    checks::fresh(ctx.cfg, name, age, covered.as_ref(), current, rows);
    if ctx.drill {
        match ctx.escrowed.first().or(ctx.offline.first()) {
            Some((label, ids)) => rows
                .0
                .push(checks::drill(ctx.cfg, name, ids, label, plain.as_ref()).await),
            None => rows.skip(
                name,
                "drill",
                Class::Target,
                "no identity to open the backup with".into(),
            ),
        }
    }
}
