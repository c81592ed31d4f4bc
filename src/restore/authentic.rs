//! Which backup is the newest, when a target may lie: `latest` is the copy
//! with the highest sequence number that its signed manifest confirms.
//!
//! Copies are tried in the order of the sequence number their target claims
//! (a manifest, a restic `seq:` tag); each claim is checked against the
//! signed manifest before the copy is used, so the first copy that holds has
//! the highest sequence number any honest copy has. An old backup a target
//! replays with a new date, a manifest re-signed with another key, a forged
//! `suspect` mark: each fails its own check, is named in a warning, and the
//! next copy is tried. Unsigned manifests (written before signatures) count
//! only when no copy on the targets claims to be signed.

use crate::config::Config;
use crate::progress::Progress;
use crate::seal::Identities;
use crate::signing::{Trusted, short_key};
use std::collections::BTreeMap;

use super::{Fetched, Listed, Listing, Location, RestoreError, trusted_keys, try_copy};

/// One copy, with the backup it is a copy of.
struct Candidate<'a> {
    backup: &'a Listed,
    loc: &'a Location,
}

/// The newest good backup whose signed manifest holds, from the first of
/// its copies that reads, checks and decrypts.
pub(super) async fn fetch_latest(
    cfg: &Config,
    listing: &Listing,
    where_: &str,
    ids: &Identities,
    progress: &dyn Progress,
) -> Result<Fetched, RestoreError> {
    let mut trusted = trusted_keys(cfg)?;
    if trusted.is_empty() {
        trusted = agreed_signer(cfg, listing, progress).await?;
    }
    let mut all: Vec<Candidate> = listing
        .backups
        .iter()
        .flat_map(|b| {
            b.held_by
                .iter()
                .map(move |loc| Candidate { backup: b, loc })
        })
        .collect();
    let signed_anywhere = all.iter().any(|c| c.loc.seq.is_some());
    all.retain(|c| c.loc.seq.is_some() || !signed_anywhere);
    // Stable: within a backup, the copy a restore by hand would use first.
    all.sort_by_key(|c| std::cmp::Reverse((c.loc.seq, c.backup.created)));
    let mut first_err: Option<RestoreError> = None;
    for c in all {
        // An unsigned backup's suspect mark is all there is to go by.
        if c.loc.seq.is_none() && c.backup.suspect.is_some() {
            continue;
        }
        match try_copy(cfg, c.backup, c.loc, ids, &trusted, progress).await? {
            // Its signed manifest says the shrink guard flagged it.
            Ok(f) if f.manifest.as_ref().is_some_and(|m| m.suspect.is_some()) => {}
            Ok(f) => return Ok(f),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| {
        RestoreError::NoBackups(format!(
            "no good backup on {where_} has a manifest that holds{}; pick one explicitly with --backup ID after checking `restore list`",
            if signed_anywhere {
                " (unsigned manifests are not used once backups are signed)"
            } else {
                ""
            }
        ))
    }))
}

/// With no trusted key (a fresh machine whose config lacks
/// `seal.manifest_public_keys`): the one key that signs every target's
/// newest claimed copy. Targets that disagree are an error, never a guess:
/// a compromised target can sign with a key of its own.
async fn agreed_signer(
    cfg: &Config,
    listing: &Listing,
    progress: &dyn Progress,
) -> Result<Trusted, RestoreError> {
    let mut newest: BTreeMap<&str, &Location> = BTreeMap::new();
    for loc in listing.backups.iter().flat_map(|b| &b.held_by) {
        let e = newest.entry(loc.target.as_str()).or_insert(loc);
        if loc.seq > e.seq {
            *e = loc;
        }
    }
    let mut signers: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (target, loc) in newest {
        if loc.seq.is_none() {
            continue;
        }
        let sink = crate::sink::build(super::named(cfg, target)?);
        if let Ok(Some(m)) = sink.fetch_manifest(&loc.locator).await
            && let Some(signer) = m.signer
        {
            signers.entry(signer).or_default().push(target);
        }
    }
    let mut all = signers.iter();
    match (all.next(), all.next()) {
        (None, _) => Ok(Trusted::default()),
        (Some((key, targets)), None) => {
            progress.step(&format!(
                "warning: no trusted manifest key in the config (seal.manifest_public_keys); believing {}, which signs the newest backup on {}",
                short_key(key),
                targets.join(", ")
            ));
            Trusted::new(None, std::slice::from_ref(key)).map_err(RestoreError::Tampered)
        }
        (Some(_), Some(_)) => Err(RestoreError::Tampered(format!(
            "targets disagree about the key that signs their manifests ({}); put this node's key (`chanvault status` on it, or the escrow) into seal.manifest_public_keys, or restore from one --target",
            signers
                .iter()
                .map(|(k, t)| format!("{} on {}", short_key(k), t.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        ))),
    }
}

/// Say which targets' newest copy is not the one restored: behind (an older
/// sequence number) or claiming a newer one that did not check out.
pub(super) fn warn_disagreement(listing: &Listing, f: &Fetched, progress: &dyn Progress) {
    let Some(chosen) = f.manifest.as_ref().and_then(|m| m.seq) else {
        return;
    };
    let mut newest: std::collections::BTreeMap<&str, Option<u64>> = Default::default();
    for b in &listing.backups {
        for loc in &b.held_by {
            let e = newest.entry(loc.target.as_str()).or_default();
            *e = (*e).max(loc.seq);
        }
    }
    for (target, seq) in newest {
        match seq {
            Some(n) if n < chosen => progress.step(&format!(
                "warning: target {target}'s newest backup is sequence {n}, behind sequence {chosen}"
            )),
            Some(n) if n > chosen => progress.step(&format!(
                "warning: target {target} claims sequence {n}, newer than sequence {chosen}, but its manifest did not hold"
            )),
            None => progress.step(&format!(
                "warning: target {target} holds no signed backup; the newest is sequence {chosen}"
            )),
            Some(_) => {}
        }
    }
}
