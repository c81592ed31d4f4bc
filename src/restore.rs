//! `chanvault restore`: disaster recovery from the targets alone.
//!
//! Works on a fresh machine with nothing but the config, an identity source
//! and a reachable target: the spool is never opened (the disk that held it
//! is usually the one that died). Every backup is checked against what the
//! target published next to it (the dir target's manifest, the restic
//! snapshot's `backup:` tag) before it is decrypted.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Config, TargetConfig};
use crate::lnd::{LndClient, LndError, LndSettings};
use crate::pipeline::short;
use crate::progress::Progress;
use crate::scb::{ChanPoint, sha256_hex};
use crate::seal::{Identities, SealError};
use crate::secret::SecretBytes;
use crate::signing::Trusted;
use crate::sink::{Manifest, TargetError};

mod authentic;
pub mod contents;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0}")]
    Other(String),
    #[error("{0}")]
    WrongIdentity(String),
    #[error("{0}")]
    Tampered(String),
    /// Targets that could not be read: the one a copy is on, or every one listed.
    #[error("{}", joined(.0))]
    Unreachable(Vec<TargetError>),
    #[error("{0}")]
    NoBackups(String),
    #[error("{0}")]
    LndRefused(String),
    #[error("{0}")]
    NotConfirmed(String),
}

fn joined(errors: &[TargetError]) -> String {
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    all.join("; ")
}

// ------------------------------------------------------------------ listing

/// Where one copy of a backup is.
#[derive(Debug, Clone, Serialize)]
pub struct Location {
    pub target: String,
    pub kind: &'static str,
    /// A file path (dir) or a snapshot id (restic).
    pub locator: String,
    /// What the copy must hash to: the full SHA-256 (dir manifest) or a prefix (restic tag).
    #[serde(skip)]
    pub expect_sha256: String,
    /// What published `expect_sha256` ("manifest", "snapshot tag"), for messages.
    #[serde(skip)]
    pub published_in: &'static str,
    /// How a listing names this copy next to the target (restic: the snapshot).
    #[serde(skip)]
    pub label: Option<String>,
    /// The sequence number the target claims for this copy; believed only
    /// once the signed manifest confirms it ([`check_manifest`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// One backup as the targets describe it. Nothing secret, no channel points.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// SHA-256 of the sealed file (a 12-character prefix when only restic holds it).
    pub id: String,
    /// The highest sequence number a copy claims (unchecked: see [`Location::seq`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub created: DateTime<Utc>,
    pub channels: usize,
    pub fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspect: Option<String>,
    pub held_by: Vec<Location>,
}

/// What a listing found, and which targets could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub backups: Vec<Listed>,
    pub failed_targets: Vec<(String, String)>,
}

fn named<'a>(cfg: &'a Config, name: &str) -> Result<&'a TargetConfig, RestoreError> {
    cfg.targets
        .iter()
        .find(|t| t.name() == name)
        .ok_or_else(|| {
            RestoreError::Other(format!(
                "config {}: no target named {name:?}",
                cfg.source.display()
            ))
        })
}

fn selected<'a>(
    cfg: &'a Config,
    target: Option<&str>,
) -> Result<Vec<&'a TargetConfig>, RestoreError> {
    match target {
        Some(name) => named(cfg, name).map(|t| vec![t]),
        None if cfg.targets.is_empty() => Err(RestoreError::Other(format!(
            "config {}: no targets configured; add the [[target]] that holds the backups",
            cfg.source.display()
        ))),
        None => Ok(cfg.targets.iter().collect()),
    }
}

/// The backups one target holds, as the target describes them.
async fn list_target(t: &TargetConfig) -> Result<Vec<Listed>, TargetError> {
    let sink = crate::sink::build(t);
    let held = sink.list().await?;
    Ok(held
        .into_iter()
        .map(|h| Listed {
            id: h.id,
            seq: h.seq,
            created: h.created,
            channels: h.channels,
            fingerprint: h.fingerprint,
            suspect: h.suspect,
            held_by: vec![Location {
                target: sink.name().to_owned(),
                kind: sink.kind(),
                locator: h.locator,
                expect_sha256: h.sealed_sha256,
                published_in: h.published_in,
                label: h.label,
                seq: h.seq,
            }],
        })
        .collect())
}

/// Every backup the selected targets hold, merged by id, newest first.
pub async fn list(
    cfg: &Config,
    target: Option<&str>,
    progress: &dyn Progress,
) -> Result<Listing, RestoreError> {
    let targets = selected(cfg, target)?;
    let mut backups: Vec<Listed> = Vec::new();
    let mut failed = Vec::new();
    for t in &targets {
        progress.step(&format!("listing target {}…", t.name()));
        match list_target(t).await {
            Ok(found) => {
                for b in found {
                    match backups.iter_mut().find(|x| short(&x.id) == short(&b.id)) {
                        Some(x) => {
                            if b.id.len() > x.id.len() {
                                x.id = b.id.clone();
                                x.fingerprint = b.fingerprint.clone();
                            }
                            x.suspect = x.suspect.take().or(b.suspect);
                            x.seq = x.seq.max(b.seq);
                            x.held_by.extend(b.held_by);
                        }
                        None => backups.push(b),
                    }
                }
            }
            Err(e) => {
                progress.step(&format!("warning: {e}"));
                failed.push((t.name().to_owned(), e));
            }
        }
    }
    if failed.len() == targets.len() {
        return Err(RestoreError::Unreachable(
            failed.into_iter().map(|(_, e)| e).collect(),
        ));
    }
    backups.sort_by_key(|b| std::cmp::Reverse((b.seq, b.created)));
    Ok(Listing {
        backups,
        failed_targets: failed
            .into_iter()
            .map(|(name, e)| (name, e.to_string()))
            .collect(),
    })
}

// ------------------------------------------------------------------ fetch

/// A fetched, checked and decrypted backup.
pub struct Fetched {
    pub backup: Listed,
    pub from: Location,
    /// The copy's signed manifest, checked; `None` for a backup written
    /// before manifests were signed.
    pub manifest: Option<Manifest>,
    pub sealed: Vec<u8>,
    pub plain: SecretBytes,
}

/// The backup `sel` names: `latest` (the newest good one) or an id prefix.
pub fn choose(listing: &Listing, sel: &str, where_: &str) -> Result<Listed, RestoreError> {
    if listing.backups.is_empty() {
        return Err(RestoreError::NoBackups(format!(
            "no backups on {where_}: nothing has been delivered there yet, or it is the wrong place"
        )));
    }
    if sel == "latest" {
        return listing
            .backups
            .iter()
            .find(|b| b.suspect.is_none())
            .cloned()
            .ok_or_else(|| {
                RestoreError::NoBackups(format!(
                    "only suspect backups on {where_}; pick one explicitly with --backup ID after checking `restore list`"
                ))
            });
    }
    let sel_l = sel.to_ascii_lowercase();
    let found: Vec<&Listed> = listing
        .backups
        .iter()
        .filter(|b| b.id.starts_with(&sel_l) || sel_l.starts_with(&b.id))
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(RestoreError::NoBackups(format!(
            "no backup {sel} on {where_} (`chanvault restore list` shows what is there)"
        ))),
        _ => Err(RestoreError::Other(format!(
            "backup id {sel} is ambiguous on {where_}; give more characters"
        ))),
    }
}

/// Read one copy and check it against what the target published.
pub async fn read_copy(cfg: &Config, loc: &Location) -> Result<Vec<u8>, RestoreError> {
    let sink = crate::sink::build(named(cfg, &loc.target)?);
    let bytes = sink
        .fetch(&loc.locator)
        .await
        .map_err(|e| RestoreError::Unreachable(vec![e]))?;
    let got = sha256_hex(&bytes);
    if !got.starts_with(&loc.expect_sha256) || loc.expect_sha256.is_empty() {
        return Err(RestoreError::Tampered(format!(
            "target {}: {} has SHA-256 {} but its {} says {}: the ciphertext was changed or damaged",
            loc.target,
            loc.locator,
            short(&got),
            loc.published_in,
            short(&loc.expect_sha256)
        )));
    }
    Ok(bytes)
}

/// The keys whose signed manifests this config believes: the state dir's
/// own (read only: restore never creates the state dir) and
/// `seal.manifest_public_keys`.
pub fn trusted_keys(cfg: &Config) -> Result<Trusted, RestoreError> {
    Trusted::of(&cfg.state_dir, &cfg.seal.manifest_public_keys)
        .map_err(|e| RestoreError::Other(format!("manifest keys: {e}")))
}

/// The signed manifest published with one copy, checked: signed by a
/// trusted key, not dated in the future, and saying the same sequence
/// number and sealed file as the target's listing. `Ok(None)`: the copy has
/// an unsigned (format 1) manifest or none.
pub async fn check_manifest(
    cfg: &Config,
    loc: &Location,
    trusted: &Trusted,
) -> Result<Option<Manifest>, RestoreError> {
    let sink = crate::sink::build(named(cfg, &loc.target)?);
    let manifest = sink
        .fetch_manifest(&loc.locator)
        .await
        .map_err(|e| RestoreError::Unreachable(vec![e]))?;
    let Some(m) = manifest else {
        return match loc.seq {
            Some(n) => Err(not_believed(
                loc,
                format!("it claims sequence {n} but has no manifest"),
            )),
            None => Ok(None),
        };
    };
    let seq = m
        .authenticate(trusted, Utc::now())
        .map_err(|reason| not_believed(loc, reason))?;
    if seq != loc.seq {
        return Err(not_believed(
            loc,
            format!(
                "the listing says sequence {} but the signed manifest says {}",
                loc.seq.map_or("none".into(), |n| n.to_string()),
                seq.map_or("none".into(), |n| n.to_string())
            ),
        ));
    }
    if seq.is_none() {
        return Ok(None);
    }
    if !m.sealed_sha256.starts_with(&loc.expect_sha256) || loc.expect_sha256.is_empty() {
        return Err(not_believed(
            loc,
            format!(
                "its manifest is for another file ({})",
                short(&m.sealed_sha256)
            ),
        ));
    }
    Ok(Some(m))
}

fn not_believed(loc: &Location, reason: String) -> RestoreError {
    RestoreError::Tampered(format!(
        "target {}: the manifest of {} is not believed: {reason}",
        loc.target, loc.locator
    ))
}

/// [`check_manifest`] and [`read_copy`], and the copy's full SHA-256
/// against the signed manifest's.
pub async fn check_copy(
    cfg: &Config,
    loc: &Location,
    trusted: &Trusted,
) -> Result<(Vec<u8>, Option<Manifest>), RestoreError> {
    let manifest = check_manifest(cfg, loc, trusted).await?;
    let sealed = read_copy(cfg, loc).await?;
    if let Some(m) = &manifest {
        let got = sha256_hex(&sealed);
        if got != m.sealed_sha256 {
            return Err(RestoreError::Tampered(format!(
                "target {}: {} has SHA-256 {} but its signed manifest says {}: the ciphertext was changed or damaged",
                loc.target,
                loc.locator,
                short(&got),
                short(&m.sealed_sha256)
            )));
        }
    }
    Ok((sealed, manifest))
}

/// Decrypt, mapping age's errors to the restore error classes.
pub fn decrypt(ids: &Identities, sealed: &[u8], what: &str) -> Result<SecretBytes, RestoreError> {
    crate::seal::open(ids, sealed).map_err(|e| match e {
        SealError::WrongIdentity { .. } => RestoreError::WrongIdentity(format!("{what}: {e}")),
        SealError::Corrupt(_) | SealError::Decrypt(_) => {
            RestoreError::Tampered(format!("{what}: {e}"))
        }
        other => RestoreError::Other(format!("{what}: {other}")),
    })
}

/// Fetch the chosen backup from the first target that holds an intact copy.
pub async fn fetch(
    cfg: &Config,
    target: Option<&str>,
    sel: &str,
    ids: &Identities,
    progress: &dyn Progress,
) -> Result<Fetched, RestoreError> {
    let listing = list(cfg, target, progress).await?;
    fetch_from(cfg, &listing, target, sel, ids, progress).await
}

/// [`fetch`] from a listing already made (of `target`, or of every target),
/// for a caller that needs the listing too.
pub async fn fetch_from(
    cfg: &Config,
    listing: &Listing,
    target: Option<&str>,
    sel: &str,
    ids: &Identities,
    progress: &dyn Progress,
) -> Result<Fetched, RestoreError> {
    let where_ = target.map_or("any target".to_owned(), |t| format!("target {t}"));
    if sel == "latest" && !listing.backups.is_empty() {
        let f = authentic::fetch_latest(cfg, listing, &where_, ids, progress).await?;
        authentic::warn_disagreement(listing, &f, progress);
        return Ok(f);
    }
    let backup = choose(listing, sel, &where_)?;
    fetch_backup(cfg, &backup, ids, progress).await
}

/// Fetch one listed backup from the first of its copies that is intact and
/// opens with `ids`.
pub async fn fetch_backup(
    cfg: &Config,
    backup: &Listed,
    ids: &Identities,
    progress: &dyn Progress,
) -> Result<Fetched, RestoreError> {
    let trusted = trusted_keys(cfg)?;
    let mut first_err: Option<RestoreError> = None;
    for loc in &backup.held_by {
        match try_copy(cfg, backup, loc, ids, &trusted, progress).await? {
            Ok(f) => return Ok(f),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| {
        RestoreError::NoBackups(format!("backup {} has no readable copy", short(&backup.id)))
    }))
}

/// Check, read and decrypt one copy of `backup`. The outer error stops the
/// whole fetch (the identity opens no copy); the inner one is why this copy
/// cannot be used (already shown as a warning), and the next one is tried.
async fn try_copy(
    cfg: &Config,
    backup: &Listed,
    loc: &Location,
    ids: &Identities,
    trusted: &Trusted,
    progress: &dyn Progress,
) -> Result<Result<Fetched, RestoreError>, RestoreError> {
    progress.step(&format!(
        "fetching backup {} from target {} ({})…",
        short(&backup.id),
        loc.target,
        loc.locator
    ));
    let warn = |e: RestoreError| {
        progress.step(&format!("warning: {e}"));
        Ok(Err(e))
    };
    let (sealed, manifest) = match check_copy(cfg, loc, trusted).await {
        Ok(x) => x,
        Err(e) => return warn(e),
    };
    progress.step("decrypting…");
    let what = format!("backup {} from target {}", short(&backup.id), loc.target);
    match decrypt(ids, &sealed, &what) {
        Ok(plain) => Ok(Ok(Fetched {
            from: loc.clone(),
            backup: backup.clone(),
            manifest,
            sealed,
            plain,
        })),
        // The identity is wrong for every copy: stop here.
        Err(e @ RestoreError::WrongIdentity(_)) => Err(e),
        Err(e) => warn(e),
    }
}

// ------------------------------------------------------------------ LND

/// What LND says about a backup, when it can be asked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LndView {
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// LND refused the backup (VerifyChanBackup failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Channel points the backup covers (VerifyChanBackup, lnd ≥ 0.19).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_points")]
    pub covered: Option<BTreeSet<ChanPoint>>,
    /// LND's channels now (ListChannels + PendingChannels).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_points")]
    pub current: Option<BTreeSet<ChanPoint>>,
    /// LND's channels the backup does not cover.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_points")]
    pub missing: Option<BTreeSet<ChanPoint>>,
}

/// Channel points as `txid:index` strings.
pub fn ser_points<S: serde::Serializer>(
    v: &Option<BTreeSet<ChanPoint>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    v.as_ref()
        .map(|x| x.iter().map(ToString::to_string).collect::<Vec<_>>())
        .serialize(s)
}

/// Whether LND refused the backup itself (as opposed to connection or
/// credential trouble).
pub fn lnd_class(e: &LndError) -> bool {
    // Refusals of the backup itself (as opposed to connection/credential trouble).
    matches!(e, LndError::Rpc { .. } | LndError::BadReply { .. })
}

/// Ask LND (read macaroon) to decode the backup and list its channels now.
pub async fn ask_lnd(cfg: &Config, multi: &[u8], progress: &dyn Progress) -> LndView {
    let settings = LndSettings::from(&cfg.lnd);
    progress.step(&format!(
        "asking LND at {} to verify the backup…",
        cfg.lnd.address
    ));
    let client = match LndClient::connect(&settings).await {
        Ok(c) => c,
        Err(e) => {
            return LndView {
                error: Some(e.to_string()),
                ..Default::default()
            };
        }
    };
    let mut v = LndView {
        reachable: true,
        ..Default::default()
    };
    match client.verify_multi(multi).await {
        Ok(points) => v.covered = points,
        Err(e) if lnd_class(&e) => v.refused = Some(e.to_string()),
        Err(e) => {
            v.reachable = !e.is_connection();
            v.error = Some(e.to_string());
            return v;
        }
    }
    match client.current_channels().await {
        Ok(cur) => {
            if let Some(cov) = &v.covered {
                v.missing = Some(cur.difference(cov).cloned().collect());
            }
            v.current = Some(cur);
        }
        Err(e) => v.error = Some(e.to_string()),
    }
    v
}

/// Read an escrowed age identity through the audited escrow API.
pub async fn escrowed_identity(
    cfg: &Config,
    name: &str,
    envelope: Option<&Identities>,
) -> Result<Identities, RestoreError> {
    let mut e =
        crate::escrow::store::Escrow::open(cfg).map_err(|e| RestoreError::Other(e.to_string()))?;
    let item = e
        .get(name, None, envelope, true)
        .await
        .map_err(|e| RestoreError::Other(e.to_string()))?;
    if item.kind != crate::escrow::material::Kind::AgeIdentity {
        return Err(RestoreError::Other(format!(
            "escrowed item {name} is a {}, not an age-identity",
            item.kind
        )));
    }
    let Some(m) = item.material else {
        return Err(RestoreError::Other(format!(
            "{name} is envelope-sealed to the offline recipients; pass --envelope-identity FILE"
        )));
    };
    let Some(secret) = m.secret() else {
        return Err(RestoreError::Other(format!(
            "escrowed item {name} holds no secret"
        )));
    };
    Identities::from_secret_str(
        secret,
        &format!("escrowed identity {name} v{}", item.version),
    )
    .map_err(|e| RestoreError::Other(e.to_string()))
}

/// The key that opens lnd's layer of a node's backups, and where it came
/// from, for messages: "the escrowed aezeed 'lnd-seed' v2",
/// "lnd.backup_key_file /etc/…". Never the key itself.
pub struct NodeKey {
    pub key: crate::chanbackup::BackupKey,
    pub source: String,
}

impl NodeKey {
    /// How messages name it: "backup key 1a2b3c4d (from the escrowed aezeed 'x' v1)".
    pub fn describe(&self) -> String {
        format!(
            "backup key {} (from {})",
            self.key.fingerprint(),
            self.source
        )
    }

    /// `[lnd] backup_key_file`, when the config names one.
    pub fn from_config(cfg: &Config) -> Option<Result<NodeKey, RestoreError>> {
        let file = cfg.lnd.backup_key_file.as_ref()?;
        let source = format!("lnd.backup_key_file {}", file.display());
        Some(
            crate::chanbackup::BackupKey::from_file(file)
                .map(|key| NodeKey {
                    key,
                    source: source.clone(),
                })
                .map_err(|e| RestoreError::Other(format!("{source}: {e}"))),
        )
    }
}

/// The key that opens lnd's layer, from an escrowed `aezeed` or
/// `lnd-backup-key` item (an envelope-sealed one needs `envelope`), named
/// with the item's kind and version.
pub async fn escrowed_node_key(
    cfg: &Config,
    name: &str,
    envelope: Option<&Identities>,
) -> Result<NodeKey, RestoreError> {
    let other = |e: &dyn std::fmt::Display| RestoreError::Other(e.to_string());
    let mut e = crate::escrow::store::Escrow::open(cfg).map_err(|e| other(&e))?;
    let item = e
        .get(name, None, envelope, true)
        .await
        .map_err(|e| other(&e))?;
    let Some(m) = item.material else {
        return Err(RestoreError::Other(format!(
            "{name} is envelope-sealed to the offline recipients; pass --envelope-identity FILE"
        )));
    };
    match m.backup_key() {
        Some(key) => key
            .map(|key| NodeKey {
                key,
                source: format!("the escrowed {} '{name}' v{}", item.kind, item.version),
            })
            .map_err(|e| RestoreError::Other(format!("escrowed item {name}: {e}"))),
        None => Err(RestoreError::Other(format!(
            "escrowed item {name} is a {}; lnd's backups open with an aezeed or lnd-backup-key item",
            item.kind
        ))),
    }
}
