//! The audited escrow API: typed material in, OpenBao KV v2 out, one audit
//! record per operation.
//!
//! Layout of an item `NAME` (all values JSON strings):
//!
//! ```text
//! MOUNT/data/PREFIX/NAME      kind, secret (secret kinds), passphrase (if any),
//!                             envelope ("none" | "age"), public (JSON of the facts)
//! MOUNT/metadata/PREFIX/NAME  custom_metadata: the public facts, created, rotated_from, envelope
//! ```
//!
//! The facts are kept in each version's data as well as in `custom_metadata`,
//! because KV v2 has one `custom_metadata` per item, not per version: an old
//! version must still be checkable against its own facts. With
//! `escrow.seal_recipients` set, `secret` and `passphrase` are age-encrypted
//! (ASCII-armored, so the stock `age -d` opens them) before they leave this
//! process, and OpenBao alone can reveal nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

mod envelope;
mod reseal;
mod rotation;
mod verify;

pub use reseal::Resealed;
pub use rotation::ApproleRotation;
pub use verify::Verified;

use envelope::{armor_open, armor_seal};

use crate::config::escrow::{EscrowConfig, check_name};
use crate::escrow::anchor::{self, AnchorError, Checked};
use crate::escrow::audit::{AuditError, AuditLog, Entry, Event};
use crate::escrow::kv::{KvClient, KvError, Metadata, Read};
use crate::escrow::material::{
    self, CheckResult, Kind, Material, MaterialError, Network, ParseOptions, PublicFacts,
};
use crate::seal::{Identities, Recipients, SealError};
use crate::secret::SecretString;

pub const ENVELOPE_NONE: &str = "none";
pub const ENVELOPE_AGE: &str = "age";

#[derive(Debug, thiserror::Error)]
pub enum EscrowError {
    #[error(transparent)]
    Kv(#[from] KvError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("{name}: {source}")]
    Material { name: String, source: MaterialError },
    #[error("{0}")]
    Seal(#[from] SealError),
    #[error(
        "config {config}: the [escrow] section is missing; add it to use `keys` (see the README)"
    )]
    NotConfigured { config: String },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{name} already exists (version {version}); pass --replace to write a new version (the old one stays in the history)"
    )]
    Exists { name: String, version: u64 },
    #[error("{name} is not in the escrow at {address} ({path})")]
    NotFound {
        name: String,
        address: String,
        path: String,
    },
    #[error("{0}")]
    Unreadable(String),
    #[error(
        "{name} is envelope-sealed to the offline recipients; pass --identity FILE with one of their identities"
    )]
    NeedIdentity { name: String },
    #[error("{name}: stored item is damaged: {detail}")]
    Damaged { name: String, detail: String },
    #[error("refusing to escrow {name}: {detail}")]
    CrossCheck { name: String, detail: String },
}

impl EscrowError {
    /// The operation failed talking to OpenBao (not on what it found there).
    fn is_kv(&self) -> bool {
        matches!(self, EscrowError::Kv(_))
    }

    fn class(&self) -> String {
        match self {
            EscrowError::Kv(e) => format!("error: {}", e.class()),
            EscrowError::Audit(_) => "error: audit".into(),
            EscrowError::Material { .. } => "error: invalid-material".into(),
            EscrowError::Seal(_) => "error: envelope".into(),
            EscrowError::NotConfigured { .. } | EscrowError::Invalid(_) => "error: invalid".into(),
            EscrowError::Exists { .. } => "error: exists".into(),
            EscrowError::NotFound { .. } => "error: not-found".into(),
            EscrowError::Unreadable(_) => "error: deleted-or-destroyed".into(),
            EscrowError::NeedIdentity { .. } => "error: sealed-needs-identity".into(),
            EscrowError::Damaged { .. } => "error: damaged".into(),
            EscrowError::CrossCheck { .. } => "error: cross-check".into(),
        }
    }
}

/// Options of `keys put`.
#[derive(Default)]
pub struct PutOptions {
    pub replace: bool,
    pub passphrase: Option<SecretString>,
    pub path: Option<String>,
}

pub struct PutReport {
    pub version: u64,
    pub sealed: bool,
    pub facts: PublicFacts,
    pub checks: Vec<CheckResult>,
}

/// An item read back.
pub struct Item {
    pub name: String,
    pub kind: Kind,
    pub version: u64,
    pub created: String,
    pub envelope: String,
    pub facts: PublicFacts,
    /// Present when the item is a secret kind and was opened (not sealed, or sealed and an identity was given).
    pub material: Option<Material>,
}

pub struct Escrow {
    kv: KvClient,
    audit: AuditLog,
    prefix: String,
    network: Network,
    envelope: Option<Recipients>,
    config_recipients: Vec<String>,
    required: Vec<String>,
}

impl Escrow {
    /// Set up from the whole config (the escrow section, the state dir for
    /// the audit log, and `seal.recipients` for the identity cross-check).
    pub fn open(cfg: &crate::config::Config) -> Result<Self, EscrowError> {
        let e = cfg
            .escrow
            .as_ref()
            .ok_or_else(|| EscrowError::NotConfigured {
                config: cfg.source.display().to_string(),
            })?;
        let config_recipients =
            Recipients::from_config(&cfg.seal.recipients, &cfg.seal.recipients_files)
                .map(|r| r.public_keys().to_vec())
                .unwrap_or_default();
        Self::with(e, &cfg.state_dir, config_recipients)
    }

    pub fn with(
        e: &EscrowConfig,
        state_dir: &Path,
        config_recipients: Vec<String>,
    ) -> Result<Self, EscrowError> {
        let network = Network::from_str(&e.network).map_err(|source| EscrowError::Material {
            name: "escrow.network".into(),
            source,
        })?;
        let envelope = if e.seal_recipients.is_empty() {
            None
        } else {
            Some(Recipients::from_config(&e.seal_recipients, &[])?)
        };
        Ok(Self {
            kv: KvClient::new(e)?,
            audit: AuditLog::new(state_dir),
            prefix: e.prefix.trim_matches('/').to_owned(),
            network,
            envelope,
            config_recipients,
            required: e.required.clone(),
        })
    }

    pub fn kv(&mut self) -> &mut KvClient {
        &mut self.kv
    }

    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    fn item(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// The names of the items under the prefix (sub-folders left out).
    async fn names(&mut self) -> Result<Vec<String>, KvError> {
        Ok(self
            .kv
            .list(&format!("{}/", self.prefix))
            .await?
            .into_iter()
            .filter(|n| !n.ends_with('/'))
            .collect())
    }

    fn api_path(&self, name: &str) -> String {
        format!("{}/data/{}", self.kv.mount(), self.item(name))
    }

    /// Append the audit record for one operation, anchor it in OpenBao,
    /// then pass the operation's result on.
    async fn record<T>(
        &mut self,
        op: &str,
        path: &str,
        version: impl Fn(&T) -> Option<u64>,
        r: Result<T, EscrowError>,
    ) -> Result<T, EscrowError> {
        let (v, outcome) = match &r {
            Ok(t) => (version(t), "ok".to_owned()),
            Err(e) => (None, e.class()),
        };
        self.append_and_anchor(
            op,
            path,
            v,
            &outcome,
            r.as_ref().is_err_and(EscrowError::is_kv),
        )
        .await?;
        r
    }

    /// Append one record, then bring the anchor up to the log. When the
    /// operation itself failed talking to OpenBao (`kv_failed`), the anchor
    /// is not tried: its error line already says what is wrong, and the
    /// next operation anchors this record too.
    ///
    /// An anchor that cannot be written never fails the operation: what it
    /// did in OpenBao is done and its record is in the local log. One
    /// warning line says so; `audit verify` counts the records not anchored.
    async fn append_and_anchor(
        &mut self,
        op: &str,
        path: &str,
        version: Option<u64>,
        outcome: &str,
        kv_failed: bool,
    ) -> Result<Entry, EscrowError> {
        let accessor = self.kv.accessor().unwrap_or("").to_owned();
        let entry = self.audit.append(&Event {
            accessor: &accessor,
            op,
            path,
            version,
            outcome,
        })?;
        if kv_failed {
            return Ok(entry);
        }
        match anchor::catch_up(&mut self.kv, &self.prefix, &self.audit).await {
            Ok(_) => {}
            Err(e @ AnchorError::Unavailable(_)) => tracing::warn!(
                "audit record {} is not anchored ({e}); the {op} itself is done, and the next escrow operation anchors it",
                entry.record.seq
            ),
            Err(e) => tracing::warn!(
                "audit record {} is not anchored, and will not be until this is resolved: {e}; run `chanvault audit verify`",
                entry.record.seq
            ),
        }
        Ok(entry)
    }

    /// Compare the audit log's verified `entries` with the anchor in
    /// OpenBao (`Ok(None)`: no anchor has been written yet).
    pub async fn check_anchor(
        &mut self,
        entries: &[Entry],
    ) -> Result<Option<Checked>, AnchorError> {
        anchor::check(&mut self.kv, &self.prefix, entries).await
    }

    /// Where the anchor lives (`MOUNT/data/PREFIX/_audit/anchor`).
    pub fn anchor_path(&self) -> String {
        anchor::api_path(&self.kv, &self.prefix)
    }

    fn opts(&self, passphrase: Option<SecretString>, path: Option<String>) -> ParseOptions {
        ParseOptions {
            network: self.network,
            passphrase,
            path,
        }
    }

    /// `keys put`: validate, cross-check against what is escrowed, write with check-and-set.
    pub async fn put(
        &mut self,
        kind: Kind,
        name: &str,
        input: &SecretString,
        o: PutOptions,
    ) -> Result<PutReport, EscrowError> {
        let path = self.api_path(name);
        let r = self.put_inner(kind, name, input, o, true, None).await;
        self.record("put", &path, |r: &PutReport| Some(r.version), r)
            .await
    }

    async fn put_inner(
        &mut self,
        kind: Kind,
        name: &str,
        input: &SecretString,
        o: PutOptions,
        cross_check: bool,
        rotated_from: Option<u64>,
    ) -> Result<PutReport, EscrowError> {
        check_name(name).map_err(EscrowError::Invalid)?;
        let material =
            Material::parse(kind, input, &self.opts(o.passphrase, o.path)).map_err(|source| {
                EscrowError::Material {
                    name: name.to_owned(),
                    source,
                }
            })?;
        let item = self.item(name);
        let existing = self.kv.metadata(&item).await?;
        let current = existing.as_ref().map(|m| m.current_version).unwrap_or(0);
        if current > 0 && !o.replace {
            return Err(EscrowError::Exists {
                name: name.to_owned(),
                version: current,
            });
        }
        let checks = if cross_check {
            let checks = self.check_against_escrow(name, &material).await?;
            if let Some(bad) = checks.iter().find(|c| !c.ok) {
                return Err(EscrowError::CrossCheck {
                    name: name.to_owned(),
                    detail: format!("{}: {}", bad.name, bad.detail),
                });
            }
            checks
        } else {
            Vec::new()
        };
        let facts = material.public().clone();
        let public_json = serde_json::to_string(&facts)
            .map_err(|e| EscrowError::Invalid(format!("cannot encode the public facts: {e}")))?;
        let sealed = self.envelope.is_some() && material.secret().is_some();
        let wrap = |s: &SecretString| -> Result<SecretString, EscrowError> {
            match &self.envelope {
                Some(r) => Ok(SecretString::new(armor_seal(r, s)?)),
                None => Ok(SecretString::new(s.expose().to_owned())),
            }
        };
        let secret = material.secret().map(wrap).transpose()?;
        let passphrase = material.passphrase().map(wrap).transpose()?;
        let envelope = if sealed { ENVELOPE_AGE } else { ENVELOPE_NONE };
        let mut fields: Vec<(&str, &str)> = vec![
            ("kind", kind.as_str()),
            ("envelope", envelope),
            ("public", &public_json),
        ];
        if let Some(s) = &secret {
            fields.push(("secret", s.expose()));
        }
        if let Some(p) = &passphrase {
            fields.push(("passphrase", p.expose()));
        }
        let version = self.kv.put(&item, &fields, current).await?;
        let mut custom = facts.to_metadata();
        let created = existing
            .as_ref()
            .and_then(|m| m.custom_metadata.get("created").cloned())
            .unwrap_or_else(now);
        custom.insert("created".into(), created);
        custom.insert("updated".into(), now());
        custom.insert("envelope".into(), envelope.into());
        if let Some(from) = rotated_from.or((current > 0).then_some(current)) {
            custom.insert("rotated_from".into(), from.to_string());
        }
        self.kv.write_metadata(&item, &custom).await?;
        Ok(PutReport {
            version,
            sealed,
            facts,
            checks,
        })
    }

    /// Cross-checks of a new item against the public items already escrowed
    /// (xpubs, descriptors) and the config's recipients. Only results that
    /// involve the new item are returned.
    async fn check_against_escrow(
        &mut self,
        name: &str,
        new: &Material,
    ) -> Result<Vec<CheckResult>, EscrowError> {
        let mut others = Vec::new();
        for n in self.names().await? {
            if n == name {
                continue;
            }
            let Some(meta) = self.kv.metadata(&self.item(&n)).await? else {
                continue;
            };
            let Ok(facts) = PublicFacts::from_metadata(&meta.custom_metadata) else {
                continue;
            };
            let Ok(kind) = Kind::from_str(&facts.kind) else {
                continue;
            };
            if kind.is_secret() {
                continue;
            }
            if let Ok(m) = Material::from_stored(kind, None, &facts, &self.opts(None, None)) {
                others.push((n, m));
            }
        }
        let mut items: Vec<(&str, &Material)> =
            others.iter().map(|(n, m)| (n.as_str(), m)).collect();
        items.push((name, new));
        let needle = format!("'{name}'");
        Ok(material::cross_check(&items, &self.config_recipients)
            .into_iter()
            .filter(|c| c.name.contains(&needle) || c.detail.contains(&needle))
            .collect())
    }

    /// `keys get`: one version (latest by default), opened if an identity is given.
    pub async fn get(
        &mut self,
        name: &str,
        version: Option<u64>,
        identity: Option<&Identities>,
        reveal: bool,
    ) -> Result<Item, EscrowError> {
        let path = self.api_path(name);
        let op = if reveal { "get-reveal" } else { "get" };
        let r = self.get_inner(name, version, identity).await;
        self.record(op, &path, |i: &Item| Some(i.version), r).await
    }

    async fn get_inner(
        &mut self,
        name: &str,
        version: Option<u64>,
        identity: Option<&Identities>,
    ) -> Result<Item, EscrowError> {
        check_name(name).map_err(EscrowError::Invalid)?;
        let item = self.item(name);
        let read = self.kv.read(&item, version).await?;
        let (version, created, data) = match read {
            Read::Found {
                version,
                created,
                data,
            } => (version, created, data),
            Read::Missing => {
                return Err(EscrowError::NotFound {
                    name: name.to_owned(),
                    address: self.kv.address().to_owned(),
                    path: self.api_path(name),
                });
            }
            Read::Deleted {
                version: v,
                deleted,
            } => {
                let hint = self.fallback_hint(name, v).await;
                return Err(EscrowError::Unreadable(format!(
                    "{name}: version {v} was deleted at {deleted} (`bao kv undelete -mount={} -versions={v} {}` restores it){hint}",
                    self.kv.mount(),
                    item
                )));
            }
            Read::Destroyed { version: v } => {
                let hint = self.fallback_hint(name, v).await;
                return Err(EscrowError::Unreadable(format!(
                    "{name}: version {v} was destroyed and cannot be recovered{hint}"
                )));
            }
        };
        self.open_item(name, version, created, data, identity)
    }

    /// "; version M is the newest readable one: chanvault keys get NAME --version M".
    async fn fallback_hint(&mut self, name: &str, bad: u64) -> String {
        match self.kv.metadata(&self.item(name)).await {
            Ok(Some(m)) => match m.newest_readable() {
                Some(v) if v != bad => format!(
                    "; version {v} is the newest readable one: chanvault keys get {name} --version {v}"
                ),
                _ => "; no version of it is readable".into(),
            },
            _ => String::new(),
        }
    }

    fn open_item(
        &self,
        name: &str,
        version: u64,
        created: String,
        mut data: BTreeMap<String, SecretString>,
        identity: Option<&Identities>,
    ) -> Result<Item, EscrowError> {
        let damaged = |detail: &str| EscrowError::Damaged {
            name: name.to_owned(),
            detail: detail.to_owned(),
        };
        let kind_s = data
            .get("kind")
            .map(|s| s.expose().to_owned())
            .ok_or_else(|| damaged("no kind field"))?;
        let kind = Kind::from_str(&kind_s).map_err(|_| damaged("unknown kind"))?;
        let envelope = data
            .get("envelope")
            .map(|s| s.expose().to_owned())
            .unwrap_or_else(|| ENVELOPE_NONE.into());
        let facts: PublicFacts = data
            .get("public")
            .ok_or_else(|| damaged("no public facts"))
            .and_then(|p| {
                serde_json::from_str(p.expose()).map_err(|e| damaged(&format!("public facts: {e}")))
            })?;
        let secret = data.remove("secret");
        let passphrase = data.remove("passphrase");
        let open = |s: SecretString| -> Result<SecretString, EscrowError> {
            if envelope == ENVELOPE_AGE {
                let ids = identity.ok_or_else(|| EscrowError::NeedIdentity {
                    name: name.to_owned(),
                })?;
                armor_open(ids, &s)
            } else {
                Ok(s)
            }
        };
        let mut item = Item {
            name: name.to_owned(),
            kind,
            version,
            created,
            envelope: envelope.clone(),
            facts,
            material: None,
        };
        if kind.is_secret() && envelope == ENVELOPE_AGE && identity.is_none() {
            return Ok(item);
        }
        let secret = secret.map(open).transpose()?;
        let passphrase = passphrase.map(open).transpose()?;
        if kind.is_secret() && secret.is_none() {
            return Err(damaged("no secret field"));
        }
        let m = Material::from_stored(
            kind,
            secret.as_ref(),
            &item.facts,
            &self.opts(passphrase, None),
        )
        .map_err(|source| EscrowError::Material {
            name: format!("{name} (version {version})"),
            source,
        })?;
        item.material = Some(m);
        Ok(item)
    }

    /// `keys list`: every item with its latest metadata.
    pub async fn list(&mut self) -> Result<Vec<(String, Metadata)>, EscrowError> {
        let path = format!("{}/metadata/{}/", self.kv.mount(), self.prefix);
        let r = self.list_inner().await;
        self.record("list", &path, |_| None, r).await
    }

    async fn list_inner(&mut self) -> Result<Vec<(String, Metadata)>, EscrowError> {
        let mut out = Vec::new();
        for n in self.names().await? {
            if let Some(m) = self.kv.metadata(&self.item(&n)).await? {
                out.push((n, m));
            }
        }
        Ok(out)
    }

    /// `keys history`: the item's metadata with every version's state.
    pub async fn history(&mut self, name: &str) -> Result<Metadata, EscrowError> {
        let path = format!("{}/metadata/{}", self.kv.mount(), self.item(name));
        let r = async {
            check_name(name).map_err(EscrowError::Invalid)?;
            self.kv
                .metadata(&self.item(name))
                .await?
                .ok_or_else(|| EscrowError::NotFound {
                    name: name.to_owned(),
                    address: self.kv.address().to_owned(),
                    path: path.clone(),
                })
        }
        .await;
        self.record("history", &path, |m: &Metadata| Some(m.current_version), r)
            .await
    }

    /// Soft-delete (`destroy = false`) or destroy versions.
    pub async fn remove_versions(
        &mut self,
        name: &str,
        versions: &[u64],
        destroy: bool,
    ) -> Result<(), EscrowError> {
        let op = if destroy { "destroy" } else { "delete" };
        let path = format!("{}/{op}/{}", self.kv.mount(), self.item(name));
        let item = self.item(name);
        let r = if destroy {
            self.kv.destroy_versions(&item, versions).await
        } else {
            self.kv.delete_versions(&item, versions).await
        }
        .map_err(EscrowError::from);
        let v = versions.first().copied();
        self.record(op, &path, |_| v, r).await
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
