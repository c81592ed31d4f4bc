//! What lnd's layer of each backup holds, read with the node's own key after
//! the age layer, and which channels one backup has that another lacks.
//! No LND: this is what a recovery machine can tell from the targets, an
//! age identity and the wallet's key alone (`restore list`, `restore fetch`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Listed, Listing, NodeKey, fetch_backup};
use crate::config::Config;
use crate::inspect::{self, Inspection};
use crate::progress::Progress;
use crate::seal::Identities;

/// What the node's key reads in one backup.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Inside {
    Read(Inspection),
    /// The key does not open it, or what it opens is not an lnd backup.
    KeyError {
        backup_key_error: String,
    },
    /// The backup could not be fetched, or its age layer not opened.
    Unread {
        read_error: String,
    },
}

impl Inside {
    pub fn read(&self) -> Option<&Inspection> {
        match self {
            Inside::Read(found) => Some(found),
            _ => None,
        }
    }
}

/// Read lnd's layer of a backup whose age layer is already off.
pub fn read_plain(key: &NodeKey, plain: &[u8]) -> Inside {
    match inspect::inspect(plain, None, &key.key, &key.describe()) {
        Ok(found) => Inside::Read(found),
        Err(e) => Inside::KeyError {
            backup_key_error: e.to_string(),
        },
    }
}

/// Fetch one listed backup, open its age layer with `ids` and read it with `key`.
pub async fn read_backup(
    cfg: &Config,
    backup: &Listed,
    ids: &Identities,
    key: &NodeKey,
    progress: &dyn Progress,
) -> Inside {
    match fetch_backup(cfg, backup, ids, progress).await {
        Ok(f) => read_plain(key, f.plain.expose()),
        Err(e) => Inside::Unread {
            read_error: e.to_string(),
        },
    }
}

/// One channel that one backup has and the other lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    pub chan_point: String,
    pub peer: String,
}

/// How the channels changed from backup `from` to backup `to`, both held by
/// `target`: `added` are in `to` and not in `from`, `removed` the reverse.
#[derive(Debug, Clone, Serialize)]
pub struct Changes {
    pub target: String,
    pub from: String,
    pub to: String,
    pub added: Vec<Changed>,
    pub removed: Vec<Changed>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// The channels `to` has that `from` lacks, and the reverse, by channel point.
pub fn changes(target: &str, from: (&Listed, &Inspection), to: (&Listed, &Inspection)) -> Changes {
    let points = |i: &Inspection| -> BTreeMap<String, String> {
        i.channels
            .iter()
            .map(|c| (c.chan_point.clone(), c.peer.clone()))
            .collect()
    };
    let (old, new) = (points(from.1), points(to.1));
    let only = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| -> Vec<Changed> {
        a.iter()
            .filter(|(cp, _)| !b.contains_key(*cp))
            .map(|(cp, peer)| Changed {
                chan_point: cp.clone(),
                peer: peer.clone(),
            })
            .collect()
    };
    Changes {
        target: target.to_owned(),
        from: from.0.id.clone(),
        to: to.0.id.clone(),
        added: only(&new, &old),
        removed: only(&old, &new),
    }
}

/// Whether `backup` has a copy on `target`.
fn held_on(backup: &Listed, target: &str) -> bool {
    backup.held_by.iter().any(|l| l.target == target)
}

/// The newest backup `target` holds (a suspect one too: a newer suspect
/// backup is exactly what someone restoring an older one must hear about).
pub fn newest_on<'a>(listing: &'a Listing, target: &str) -> Option<&'a Listed> {
    listing.backups.iter().find(|b| held_on(b, target))
}

/// One backup of a listing, with what is inside it.
#[derive(Debug, Clone, Serialize)]
pub struct ListedContents {
    #[serde(flatten)]
    pub backup: Listed,
    pub inside: Inside,
    /// From the next older backup on the same target (the first that holds
    /// this one) to this one; absent for the oldest, or when either could
    /// not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
}

/// Every backup of `listing` (newest first) read with `ids` and `key`, each
/// compared with the next older backup on its first target.
pub async fn read_listing(
    cfg: &Config,
    listing: &Listing,
    ids: &Identities,
    key: &NodeKey,
    progress: &dyn Progress,
) -> Vec<ListedContents> {
    let mut insides = Vec::with_capacity(listing.backups.len());
    for b in &listing.backups {
        insides.push(read_backup(cfg, b, ids, key, progress).await);
    }
    with_changes(&listing.backups, insides)
}

/// Pair each backup with what is inside it and its changes since the next
/// older backup on its first target.
pub fn with_changes(backups: &[Listed], insides: Vec<Inside>) -> Vec<ListedContents> {
    let changes: Vec<Option<Changes>> = backups
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let target = &b.held_by.first()?.target;
            let older = (i + 1..backups.len()).find(|&j| held_on(&backups[j], target))?;
            let to = insides.get(i)?.read()?;
            let from = insides.get(older)?.read()?;
            Some(self::changes(target, (&backups[older], from), (b, to)))
        })
        .collect();
    backups
        .iter()
        .zip(insides)
        .zip(changes)
        .map(|((b, inside), changes)| ListedContents {
            backup: b.clone(),
            inside,
            changes,
        })
        .collect()
}

/// How the fetched backup `this` (read as `inside`) differs from the newest
/// backup on `target`: `Ok` with `from` = this backup and `to` = the newest
/// (no changes when it is the newest); `Err` says why it cannot be told.
pub async fn against_newest(
    cfg: &Config,
    listing: &Listing,
    target: &str,
    this: (&Listed, &Inside),
    ids: &Identities,
    key: &NodeKey,
    progress: &dyn Progress,
) -> Result<Changes, String> {
    let Some(mine) = this.1.read() else {
        return Err("this backup could not be read with the backup key".into());
    };
    let Some(newest) = newest_on(listing, target) else {
        return Err(format!("target {target} lists no backups"));
    };
    if newest.id == this.0.id {
        return Ok(changes(target, (this.0, mine), (this.0, mine)));
    }
    progress.step(&format!(
        "reading the newest backup on target {target} to compare…"
    ));
    match read_backup(cfg, newest, ids, key, progress).await {
        Inside::Read(theirs) => Ok(changes(target, (this.0, mine), (newest, &theirs))),
        Inside::KeyError { backup_key_error } => Err(backup_key_error),
        Inside::Unread { read_error } => Err(read_error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::ChannelFacts;
    use crate::restore::Location;

    fn listed(id: &str, targets: &[&str]) -> Listed {
        Listed {
            id: id.into(),
            seq: None,
            created: chrono::Utc::now(),
            channels: 0,
            fingerprint: String::new(),
            suspect: None,
            held_by: targets
                .iter()
                .map(|t| Location {
                    target: (*t).into(),
                    kind: "dir",
                    locator: String::new(),
                    expect_sha256: String::new(),
                    published_in: "manifest",
                    label: None,
                    seq: None,
                })
                .collect(),
        }
    }

    fn read(points: &[&str]) -> Inside {
        Inside::Read(Inspection {
            backup_key: "00000000".into(),
            age_layer: false,
            channels: points
                .iter()
                .map(|p| ChannelFacts {
                    chan_point: (*p).into(),
                    chan_id: 0,
                    short_channel_id: String::new(),
                    peer: format!("peer-of-{p}"),
                    addresses: vec![],
                    channel_type: "anchors",
                    capacity_sat: 0,
                    initiator: true,
                    close_tx_inputs: false,
                })
                .collect(),
        })
    }

    fn points(v: &[Changed]) -> Vec<&str> {
        v.iter().map(|c| c.chan_point.as_str()).collect()
    }

    #[test]
    fn each_backup_is_compared_with_the_next_older_on_its_target() {
        // Newest first: c on a and b, then b only on b, then a on a.
        let backups = [
            listed("c", &["a", "b"]),
            listed("b", &["b"]),
            listed("a", &["a"]),
        ];
        let insides = vec![read(&["x:0", "y:0"]), read(&["x:0"]), read(&["z:1", "x:0"])];
        let rows = with_changes(&backups, insides);
        let c = rows[0].changes.as_ref().unwrap();
        assert_eq!((c.target.as_str(), c.from.as_str()), ("a", "a"));
        assert_eq!(points(&c.added), ["y:0"]);
        assert_eq!(points(&c.removed), ["z:1"]);
        assert_eq!(c.removed[0].peer, "peer-of-z:1");
        assert!(rows[1].changes.is_none(), "nothing older on target b");
        assert!(rows[2].changes.is_none(), "the oldest");
        assert_eq!(rows[1].inside.read().unwrap().channels.len(), 1);
    }

    #[test]
    fn an_unreadable_neighbour_gives_no_changes_and_json_says_why() {
        let backups = [listed("b", &["t"]), listed("a", &["t"])];
        let insides = vec![
            read(&["x:0"]),
            Inside::KeyError {
                backup_key_error: "backup key 1 does not open this backup".into(),
            },
        ];
        let rows = with_changes(&backups, insides);
        assert!(rows[0].changes.is_none());
        let json = serde_json::to_value(&rows).unwrap();
        assert_eq!(
            json[1]["inside"]["backup_key_error"],
            "backup key 1 does not open this backup"
        );
        assert_eq!(json[0]["id"], "b", "the listing's fields stay at the top");
        assert_eq!(json[0]["inside"]["channels"][0]["chan_point"], "x:0");
    }

    #[test]
    fn the_newest_on_a_target_may_be_suspect() {
        let mut newest = listed("n", &["t"]);
        newest.suspect = Some("lost channels".into());
        let listing = Listing {
            backups: vec![listed("m", &["u"]), newest, listed("o", &["t", "u"])],
            failed_targets: vec![],
        };
        assert_eq!(newest_on(&listing, "t").unwrap().id, "n");
        assert_eq!(newest_on(&listing, "u").unwrap().id, "m");
        assert!(newest_on(&listing, "v").is_none());
    }
}
