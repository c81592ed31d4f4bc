//! The `signed` row: a target's newest backup carries a manifest signed by a
//! trusted key, not dated in the future, and is the spool's last good one by
//! sequence number (not by date): a target that is behind, or that claims a
//! backup this state dir never stored, fails here and is named.

use super::report::{Class, Rows};
use crate::config::Config;
use crate::pipeline::short;
use crate::restore::{self, Listed};
use crate::signing::{Trusted, short_key};
use crate::spool::Journal;

/// Check the manifest of each copy of `newest` on target `name`; `false`
/// when one must not be believed (the later checks are then skipped).
pub(super) async fn check(
    cfg: &Config,
    name: &str,
    newest: &Listed,
    journal: Option<&Journal>,
    trusted: &Trusted,
    rows: &mut Rows,
) -> bool {
    let mut checked = None;
    for loc in newest.held_by.iter().filter(|l| l.target == name) {
        match restore::check_manifest(cfg, loc, trusted).await {
            Ok(m) => {
                checked.get_or_insert(m);
            }
            Err(e) => {
                rows.fail(name, "signed", Class::of(&e), e.to_string());
                return false;
            }
        }
    }
    let good = journal.and_then(|j| j.due_for(name));
    let good_seq = good.filter(|g| g.signed.is_some()).map(|g| g.seq);
    let Some(Some(m)) = checked else {
        match good_seq {
            Some(n) => rows.fail(
                name,
                "signed",
                Class::Target,
                format!(
                    "its newest backup {} has no signed manifest; the spool's last good is sequence {n}",
                    short(&newest.id)
                ),
            ),
            None => rows.skip(
                name,
                "signed",
                Class::Target,
                "its newest backup was written before manifests were signed".into(),
            ),
        }
        return true;
    };
    let seq = m.seq.unwrap_or(0);
    let signer = short_key(m.signer.as_deref().unwrap_or(""));
    match good_seq {
        Some(n) if seq < n => rows.fail(
            name,
            "signed",
            Class::Target,
            format!("behind: its newest is sequence {seq}; the spool's last good is sequence {n}"),
        ),
        Some(n) if seq > n => rows.fail(
            name,
            "signed",
            Class::Target,
            format!(
                "ahead: it holds sequence {seq} (signed by {signer}), newer than the spool's last good, sequence {n}; another writer, or a journal that was reset"
            ),
        ),
        Some(_) => rows.pass(
            name,
            "signed",
            Class::Integrity,
            format!("sequence {seq}, signed by {signer}, is the spool's last good"),
        ),
        None => rows.pass(
            name,
            "signed",
            Class::Integrity,
            format!("sequence {seq}, signed by {signer}"),
        ),
    }
    true
}
