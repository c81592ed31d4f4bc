//! Age identity rotation, the spool side: re-seal the newest good backup to
//! the new recipient set, store it as the last good backup and deliver it to
//! every target, so that the old identity can be destroyed without leaving
//! any target with a backup only the old identity opens.
//!
//! The escrow side (new identity version, check-and-set, audit) is in
//! `escrow::store`; `cli/keys.rs` runs the steps in order: open the backup with the old
//! identity (fail before anything is written), rotate in OpenBao, re-seal
//! and deliver here.

use std::sync::Arc;

use chrono::Utc;

use crate::config::Config;
use crate::seal::{Identities, Recipients, SealError};
use crate::secret::SecretBytes;
use crate::spool::{BackupRecord, Spool, SpoolError};

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(
        "cannot open the newest good backup {id} with {identity}: {source}; pass --identity FILE with the identity it is sealed to"
    )]
    Open {
        id: String,
        identity: String,
        source: SealError,
    },
    #[error(
        "backup {id} opened to content whose SHA-256 is not the recorded {expected}: the spool is damaged"
    )]
    Content { id: String, expected: String },
    #[error("cannot re-seal backup {id}: {source}")]
    Seal { id: String, source: SealError },
}

/// The newest good backup, opened.
pub struct Opened {
    pub spool: Arc<Spool>,
    pub record: BackupRecord,
    plain: SecretBytes,
}

/// What the re-seal did.
pub struct Resealed {
    /// The backup that was re-sealed.
    pub from: String,
    pub record: BackupRecord,
    /// Per configured target: None if it now holds the re-sealed backup, else the error.
    pub targets: Vec<(String, Option<String>)>,
}

fn spool(cfg: &Config) -> Result<Arc<Spool>, SpoolError> {
    Spool::open(&cfg.state_dir, cfg.backup.keep).map(Arc::new)
}

/// The config's recipients with `old` replaced by `new` (or `new` added if
/// `old` is not among them).
pub fn new_recipients(
    cfg: &Config,
    old: Option<&str>,
    new: &str,
) -> Result<Vec<String>, SealError> {
    let mut keys = Recipients::from_config(&cfg.seal.recipients, &cfg.seal.recipients_files)?
        .public_keys()
        .to_vec();
    match old.and_then(|o| keys.iter().position(|k| k == o)) {
        Some(i) => keys[i] = new.to_owned(),
        None if !keys.iter().any(|k| k == new) => keys.push(new.to_owned()),
        None => {}
    }
    Ok(keys)
}

/// The id of the spool's last good backup, if any.
pub fn newest_good_id(cfg: &Config) -> Result<Option<String>, SpoolError> {
    Ok(spool(cfg)?.journal()?.last_good.clone())
}

/// Open the spool's newest good backup with `ids` (None: the spool holds no good backup).
/// `what` names the identity in errors (a file, or "NAME version N").
pub fn open_newest_good(
    cfg: &Config,
    ids: &Identities,
    what: &str,
) -> Result<Option<Opened>, RotateError> {
    let spool = spool(cfg)?;
    let Some(record) = spool.journal()?.last_good().cloned() else {
        return Ok(None);
    };
    let sealed = spool.read(&record.id)?;
    let plain = crate::seal::open(ids, &sealed).map_err(|source| RotateError::Open {
        id: record.id.clone(),
        identity: what.to_owned(),
        source,
    })?;
    if crate::scb::sha256_hex(plain.expose()) != record.blob_sha256 {
        return Err(RotateError::Content {
            id: record.id,
            expected: record.blob_sha256,
        });
    }
    Ok(Some(Opened {
        spool,
        record,
        plain,
    }))
}

/// Seal the opened backup to `recipients`, store it as the new last good
/// backup (`source: "reseal"`), and make one delivery attempt to every
/// configured target.
pub async fn reseal_and_deliver(
    cfg: &Config,
    opened: Opened,
    recipients: &[String],
) -> Result<Resealed, RotateError> {
    let from = opened.record.id.clone();
    let seal_err = |source| RotateError::Seal {
        id: from.clone(),
        source,
    };
    let r = Recipients::from_config(recipients, &[]).map_err(seal_err)?;
    let sealed = crate::seal::seal(&r, opened.plain.expose()).map_err(seal_err)?;
    let record = BackupRecord {
        id: String::new(),
        created: Utc::now(),
        source: "reseal".into(),
        recipients: r.public_keys().to_vec(),
        suspect: None,
        suspect_channels: Vec::new(),
        sealed_len: 0,
        signed: None,
        cover_for: Vec::new(),
        ..opened.record
    };
    let record = opened.spool.store_reseal(record, &sealed)?;
    tracing::info!(backup = %record.id, from = %from, "stored the newest good backup re-sealed to the new recipients");
    let targets: Vec<_> = cfg.targets.iter().map(crate::sink::build).collect();
    let metrics = crate::metrics::Metrics::new();
    let failures = crate::deliver::deliver_pending_once(
        &targets,
        &opened.spool,
        &metrics,
        std::time::Duration::from_secs(cfg.delivery.timeout_seconds),
    )
    .await;
    let journal = opened.spool.journal()?;
    let targets = targets
        .iter()
        .map(|t| {
            let name = t.name().to_owned();
            let holds = journal
                .targets
                .get(&name)
                .is_some_and(|s| s.current.as_deref() == Some(record.id.as_str()));
            let err = failures
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, e)| e.clone());
            let err = match (holds, err) {
                (true, _) => None,
                (false, Some(e)) => Some(e),
                (false, None) => Some("not delivered".into()),
            };
            (name, err)
        })
        .collect();
    Ok(Resealed {
        from,
        record,
        targets,
    })
}

/// Why `--destroy-old` must wait, if it must: the spool's last good backup
/// is not yet sealed to `recipient`, or a configured target does not hold it.
pub fn destroy_blocker(cfg: &Config, recipient: &str) -> Result<Option<String>, SpoolError> {
    let spool = spool(cfg)?;
    let j = spool.journal()?;
    let Some(good) = j.last_good() else {
        return Ok(None);
    };
    if !good.recipients.iter().any(|r| r == recipient) {
        return Ok(Some(format!(
            "the newest good backup {} is not sealed to the new recipient {recipient}; run `chanvault keys rotate age-identity` again or take a backup first",
            good.id
        )));
    }
    for t in &cfg.targets {
        // A cover upload for other targets re-seals the same state to the
        // same recipients: this target's due backup is the one it covers.
        let good = j.due_for(t.name()).unwrap_or(good);
        let holds = j
            .targets
            .get(t.name())
            .is_some_and(|s| s.delivered.contains_key(&good.id));
        if !holds {
            return Ok(Some(format!(
                "target {} does not hold the re-sealed backup {} yet; wait for delivery (chanvault status)",
                t.name(),
                good.id
            )));
        }
    }
    Ok(None)
}
