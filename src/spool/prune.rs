//! Which backups the journal lets go of.

use super::Journal;

/// Keep the newest `keep` backups and always the last good one; return the
/// ids dropped. Delivery records of dropped backups go with them.
pub(super) fn prune(j: &mut Journal, keep: usize) -> Vec<String> {
    let n = j.backups.len();
    if n <= keep {
        return vec![];
    }
    let cut = n - keep;
    let good = j.last_good.clone();
    let mut dropped = vec![];
    let mut i = 0;
    j.backups.retain(|b| {
        let old = i < cut;
        i += 1;
        if old && good.as_deref() != Some(b.id.as_str()) {
            dropped.push(b.id.clone());
            false
        } else {
            true
        }
    });
    for t in j.targets.values_mut() {
        t.delivered.retain(|id, _| !dropped.contains(id));
    }
    dropped
}
