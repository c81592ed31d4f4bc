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

use crate::escrow::audit::{AuditError, AuditLog, Event};
use crate::escrow::config::{EscrowConfig, check_name};
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

    fn api_path(&self, name: &str) -> String {
        format!("{}/data/{}", self.kv.mount(), self.item(name))
    }

    /// Append the audit record for one operation, then pass its result on.
    fn record<T>(
        &self,
        op: &str,
        path: &str,
        version: impl Fn(&T) -> Option<u64>,
        r: Result<T, EscrowError>,
    ) -> Result<T, EscrowError> {
        let (v, outcome) = match &r {
            Ok(t) => (version(t), "ok".to_owned()),
            Err(e) => (None, e.class()),
        };
        let accessor = self.kv.accessor().unwrap_or("").to_owned();
        self.audit.append(&Event {
            accessor: &accessor,
            op,
            path,
            version: v,
            outcome: &outcome,
        })?;
        r
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
        for n in self.kv.list(&format!("{}/", self.prefix)).await? {
            if n.ends_with('/') || n == name {
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
        self.record(op, &path, |i: &Item| Some(i.version), r)
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
        self.record("list", &path, |_| None, r)
    }

    async fn list_inner(&mut self) -> Result<Vec<(String, Metadata)>, EscrowError> {
        let mut out = Vec::new();
        for n in self.kv.list(&format!("{}/", self.prefix)).await? {
            if n.ends_with('/') {
                continue;
            }
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
        self.record(op, &path, |_| v, r)
    }

    /// `keys verify`: every item readable and valid, the required names
    /// present, and the cross-checks between items.
    pub async fn verify(
        &mut self,
        identity: Option<&Identities>,
    ) -> Result<Vec<CheckResult>, EscrowError> {
        let path = format!("{}/metadata/{}/", self.kv.mount(), self.prefix);
        let r = self.verify_inner(identity).await;
        let failed = r
            .as_ref()
            .map(|c| c.iter().filter(|c| !c.ok).count())
            .unwrap_or(0);
        let outcome = match &r {
            Ok(_) if failed == 0 => "ok".to_owned(),
            Ok(_) => format!("failed: {failed} check(s)"),
            Err(e) => e.class(),
        };
        let accessor = self.kv.accessor().unwrap_or("").to_owned();
        self.audit.append(&Event {
            accessor: &accessor,
            op: "verify",
            path: &path,
            version: None,
            outcome: &outcome,
        })?;
        r
    }

    async fn verify_inner(
        &mut self,
        identity: Option<&Identities>,
    ) -> Result<Vec<CheckResult>, EscrowError> {
        let mut results = Vec::new();
        let names: Vec<String> = self
            .kv
            .list(&format!("{}/", self.prefix))
            .await?
            .into_iter()
            .filter(|n| !n.ends_with('/'))
            .collect();
        for r in &self.required {
            results.push(CheckResult {
                name: format!("required item '{r}' is escrowed"),
                ok: names.contains(r),
                detail: if names.contains(r) {
                    "present".into()
                } else {
                    format!("missing: chanvault keys put KIND {r}")
                },
            });
        }
        let mut items = Vec::new();
        for n in &names {
            let name = format!("'{n}' is readable and valid");
            match self.get_inner(n, None, identity).await {
                Ok(item) => match item.material {
                    Some(m) => {
                        results.push(CheckResult {
                            name,
                            ok: true,
                            detail: format!("{} version {}", item.kind, item.version),
                        });
                        items.push((n.clone(), m));
                    }
                    None if !item.kind.is_secret() => {
                        results.push(CheckResult {
                            name,
                            ok: false,
                            detail: "public item without facts".into(),
                        });
                    }
                    None => results.push(CheckResult {
                        name,
                        ok: false,
                        detail: format!(
                            "{} version {} is envelope-sealed; pass --identity FILE to check it",
                            item.kind, item.version
                        ),
                    }),
                },
                Err(EscrowError::Kv(e)) => return Err(EscrowError::Kv(e)),
                Err(e) => results.push(CheckResult {
                    name,
                    ok: false,
                    detail: e.to_string(),
                }),
            }
        }
        let refs: Vec<(&str, &Material)> = items.iter().map(|(n, m)| (n.as_str(), m)).collect();
        results.extend(material::cross_check(&refs, &self.config_recipients));
        Ok(results)
    }

    /// `keys export-public`: descriptors, xpubs, origins and fingerprints; nothing secret.
    pub async fn export_public(&mut self) -> Result<serde_json::Value, EscrowError> {
        let path = format!("{}/metadata/{}/", self.kv.mount(), self.prefix);
        let r = async {
            let mut items = Vec::new();
            for (name, meta) in self.list_inner().await? {
                let Ok(f) = PublicFacts::from_metadata(&meta.custom_metadata) else {
                    continue;
                };
                if f.kind == Kind::AgeIdentity.as_str() {
                    // The identity's recipient is public, but it is not wallet config.
                }
                items.push(serde_json::json!({
                    "name": name,
                    "kind": f.kind,
                    "version": meta.current_version,
                    "network": f.network,
                    "master_fingerprint": f.master_fingerprint,
                    "derivation": f.derivation,
                    "xpub": f.xpub,
                    "descriptor": f.descriptor,
                    "descriptor_keys": f.descriptor_keys,
                    "recipient": f.recipient,
                }));
            }
            Ok(serde_json::json!({
                "chanvault_export": 1,
                "network": self.network.as_str(),
                "exported": now(),
                "items": items,
            }))
        }
        .await;
        self.record("export-public", &path, |_| None, r)
    }

    /// `keys rotate age-identity NAME`: a fresh identity as a new version
    /// (check-and-set). Returns (version, new recipient, old recipient).
    pub async fn rotate_age_identity(
        &mut self,
        name: &str,
    ) -> Result<(u64, String, Option<String>), EscrowError> {
        let path = self.api_path(name);
        let r = async {
            check_name(name).map_err(EscrowError::Invalid)?;
            let meta = self.kv.metadata(&self.item(name)).await?;
            let old = meta
                .as_ref()
                .and_then(|m| m.custom_metadata.get("recipient").cloned());
            if let Some(k) = meta.as_ref().and_then(|m| m.custom_metadata.get("kind"))
                && k != Kind::AgeIdentity.as_str()
            {
                return Err(EscrowError::Invalid(format!(
                    "{name} is a {k}, not an age-identity"
                )));
            }
            let current = meta.as_ref().map(|m| m.current_version);
            let (text, public) = crate::seal::generate_identity();
            let report = self
                .put_inner(
                    Kind::AgeIdentity,
                    name,
                    &text,
                    PutOptions {
                        replace: true,
                        ..PutOptions::default()
                    },
                    false,
                    current,
                )
                .await?;
            Ok((report.version, public, old))
        }
        .await;
        self.record(
            "rotate",
            &path,
            |r: &(u64, String, Option<String>)| Some(r.0),
            r,
        )
    }

    /// `--destroy-old`: destroy every version before the latest, only once the
    /// latest identity's recipient is in the config's recipients and the
    /// caller found nothing else in the way (`blocker`: why not, e.g. the
    /// re-sealed backup has not reached every target yet).
    pub async fn destroy_old_identities(
        &mut self,
        name: &str,
        blocker: impl FnOnce(&str) -> Option<String>,
    ) -> Result<Vec<u64>, EscrowError> {
        let path = format!("{}/destroy/{}", self.kv.mount(), self.item(name));
        let r = async {
            let meta = self
                .kv
                .metadata(&self.item(name))
                .await?
                .ok_or_else(|| EscrowError::NotFound {
                    name: name.to_owned(),
                    address: self.kv.address().to_owned(),
                    path: path.clone(),
                })?;
            let recipient = meta.custom_metadata.get("recipient").cloned();
            match &recipient {
                Some(r) if self.config_recipients.contains(r) => {}
                _ => {
                    return Err(EscrowError::Invalid(format!(
                        "refusing to destroy old versions of {name}: its newest recipient {} is not yet in the config's seal.recipients; change the config first",
                        recipient.as_deref().unwrap_or("(unknown)")
                    )));
                }
            }
            if let Some(why) = recipient.as_deref().and_then(blocker) {
                return Err(EscrowError::Invalid(format!(
                    "refusing to destroy old versions of {name}: {why}"
                )));
            }
            let old: Vec<u64> = meta
                .versions()
                .into_iter()
                .filter(|(v, m)| *v < meta.current_version && !m.destroyed)
                .map(|(v, _)| v)
                .collect();
            if !old.is_empty() {
                self.kv.destroy_versions(&self.item(name), &old).await?;
            }
            Ok(old)
        }
        .await;
        self.record("destroy", &path, |v: &Vec<u64>| v.last().copied(), r)
    }

    /// `keys rotate approle`: a new secret-id for `escrow.approle_role_name`,
    /// proved by logging in with it, written atomically (0600) to
    /// `escrow.approle_secret_id_file`; then the old secret-id is destroyed
    /// by its accessor. If anything fails before the file is written, the old
    /// secret-id stays in place and valid.
    pub async fn rotate_approle(
        &mut self,
        e: &EscrowConfig,
    ) -> Result<ApproleRotation, EscrowError> {
        let role = e.approle_role_name.clone().unwrap_or_default();
        let base = format!("auth/{}/role/{role}", e.approle_mount);
        let path = format!("{base}/secret-id");
        let r = self.rotate_approle_inner(e, &role, &base).await;
        self.record("rotate-approle", &path, |_| None, r)
    }

    async fn rotate_approle_inner(
        &mut self,
        e: &EscrowConfig,
        role: &str,
        base: &str,
    ) -> Result<ApproleRotation, EscrowError> {
        if role.is_empty() {
            return Err(EscrowError::Invalid(
                "escrow.approle_role_name is not set; `keys rotate approle` needs the role's name"
                    .into(),
            ));
        }
        if !crate::escrow::config::valid_segment(role) {
            return Err(EscrowError::Invalid(format!(
                "escrow.approle_role_name {role:?} is not a valid role name"
            )));
        }
        let (None, Some(file)) = (&e.token_file, &e.approle_secret_id_file) else {
            return Err(EscrowError::Invalid(
                "`keys rotate approle` needs the AppRole login (escrow.approle_role_id_file and escrow.approle_secret_id_file), not token_file".into(),
            ));
        };
        let old = crate::escrow::kv::read_credential("AppRole secret-id file", file)?;
        let address = self.kv.address().to_owned();
        let malformed = |p: &str, what: &str| {
            EscrowError::Kv(KvError::Malformed {
                address: address.clone(),
                path: p.to_owned(),
                detail: format!("no {what} in the reply"),
            })
        };
        let gen_path = format!("{base}/secret-id");
        let mut generated = self
            .kv
            .post_data(&gen_path, zeroize::Zeroizing::new(b"{}".to_vec()))
            .await?;
        let new = generated
            .remove("secret_id")
            .ok_or_else(|| malformed(&gen_path, "secret_id"))?;
        let new_accessor = generated
            .remove("secret_id_accessor")
            .map(|a| a.expose().to_owned())
            .ok_or_else(|| malformed(&gen_path, "secret_id_accessor"))?;
        self.kv
            .login_approle(&new, "the newly generated secret-id")
            .await?;
        crate::fsutil::write_atomic(file, new.expose().as_bytes(), 0o600).map_err(|err| {
            EscrowError::Invalid(format!(
                "cannot write the new secret-id to {}: {err}; the old secret-id there is still valid, and the new one (accessor {new_accessor}) was not saved",
                file.display()
            ))
        })?;
        let lookup_path = format!("{base}/secret-id/lookup");
        let body = crate::escrow::kv::json_body(&[("secret_id", old.expose())])?;
        let found = self.kv.post_data(&lookup_path, body).await?;
        let old_accessor = found
            .get("secret_id_accessor")
            .map(|a| a.expose().to_owned());
        if let Some(acc) = &old_accessor
            && *acc != new_accessor
        {
            let body = crate::escrow::kv::json_body(&[("secret_id_accessor", acc)])?;
            self.kv
                .post_no_reply(&format!("{base}/secret-id-accessor/destroy"), body)
                .await?;
        }
        Ok(ApproleRotation {
            role: role.to_owned(),
            new_accessor,
            old_accessor,
        })
    }

    /// `keys reseal`: re-encrypt the latest version of every envelope-sealed
    /// item to the current `escrow.seal_recipients`, as a new version
    /// (check-and-set on the version read). Older versions stay sealed to
    /// whatever they were sealed to. Refuses, writing nothing, if `ids`
    /// opens none of the sealed items.
    pub async fn reseal(
        &mut self,
        ids: &Identities,
        what: &str,
    ) -> Result<Vec<Resealed>, EscrowError> {
        let list_path = format!("{}/metadata/{}/", self.kv.mount(), self.prefix);
        let opened = self.reseal_open(ids, what).await;
        let opened = match opened {
            Ok(o) => o,
            Err(e) => return self.record("reseal", &list_path, |_| None, Err(e)),
        };
        let mut out = Vec::new();
        for o in opened {
            match o {
                ResealInput::Skipped(r) => out.push(r),
                ResealInput::Open {
                    name,
                    version,
                    data,
                } => {
                    let path = self.api_path(&name);
                    let r = self.reseal_one(&name, version, data).await;
                    let r = self.record("reseal", &path, |v: &u64| Some(*v), r);
                    out.push(Resealed {
                        name,
                        from: version,
                        result: r.map_err(|e| e.to_string()),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn reseal_open(
        &mut self,
        ids: &Identities,
        what: &str,
    ) -> Result<Vec<ResealInput>, EscrowError> {
        if self.envelope.is_none() {
            return Err(EscrowError::Invalid(
                "escrow.seal_recipients is empty: there are no offline recipients to re-seal to"
                    .into(),
            ));
        }
        let names: Vec<String> = self
            .kv
            .list(&format!("{}/", self.prefix))
            .await?
            .into_iter()
            .filter(|n| !n.ends_with('/'))
            .collect();
        let mut out = Vec::new();
        let (mut sealed, mut opened) = (0, 0);
        for name in names {
            let Read::Found {
                version, mut data, ..
            } = self.kv.read(&self.item(&name), None).await?
            else {
                continue;
            };
            let envelope = data.get("envelope").map(|e| e.expose().to_owned());
            if envelope.as_deref() != Some(ENVELOPE_AGE) {
                continue;
            }
            sealed += 1;
            let mut failure = None;
            for field in ["secret", "passphrase"] {
                if let Some(v) = data.remove(field) {
                    match armor_open(ids, &v) {
                        Ok(plain) => {
                            data.insert(field.to_owned(), plain);
                        }
                        Err(e) => {
                            failure = Some(e.to_string());
                            break;
                        }
                    }
                }
            }
            match failure {
                None => {
                    opened += 1;
                    out.push(ResealInput::Open {
                        name,
                        version,
                        data,
                    });
                }
                Some(e) => out.push(ResealInput::Skipped(Resealed {
                    name,
                    from: version,
                    result: Err(format!("not opened with {what}: {e}")),
                })),
            }
        }
        if sealed > 0 && opened == 0 {
            return Err(EscrowError::Invalid(format!(
                "refusing to re-seal: {what} opens none of the {sealed} envelope-sealed item(s); nothing was written"
            )));
        }
        Ok(out)
    }

    async fn reseal_one(
        &mut self,
        name: &str,
        version: u64,
        mut data: BTreeMap<String, SecretString>,
    ) -> Result<u64, EscrowError> {
        let r = self
            .envelope
            .as_ref()
            .ok_or_else(|| EscrowError::Invalid("escrow.seal_recipients is empty".into()))?;
        for field in ["secret", "passphrase"] {
            if let Some(plain) = data.remove(field) {
                data.insert(field.to_owned(), SecretString::new(armor_seal(r, &plain)?));
            }
        }
        let fields: Vec<(&str, &str)> =
            data.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        let item = self.item(name);
        let new = self.kv.put(&item, &fields, version).await?;
        let mut custom = self
            .kv
            .metadata(&item)
            .await?
            .map(|m| m.custom_metadata)
            .unwrap_or_default();
        custom.insert("updated".into(), now());
        custom.insert("rotated_from".into(), version.to_string());
        self.kv.write_metadata(&item, &custom).await?;
        Ok(new)
    }
}

/// What `keys rotate approle` did (accessors only; they are not secret).
pub struct ApproleRotation {
    pub role: String,
    pub new_accessor: String,
    /// None: the old secret-id was not found (already gone).
    pub old_accessor: Option<String>,
}

/// One item of `keys reseal`: Ok(new version) or why it was not re-sealed.
pub struct Resealed {
    pub name: String,
    pub from: u64,
    pub result: Result<u64, String>,
}

enum ResealInput {
    Open {
        name: String,
        version: u64,
        data: BTreeMap<String, SecretString>,
    },
    Skipped(Resealed),
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// age-encrypt to the offline recipients, ASCII-armored.
fn armor_seal(r: &Recipients, s: &SecretString) -> Result<String, EscrowError> {
    let bin = crate::seal::seal(r, s.expose().as_bytes())?;
    let mut out = Vec::with_capacity(bin.len() * 4 / 3 + 128);
    {
        use std::io::Write;
        let mut w =
            age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
                .map_err(|e| EscrowError::Invalid(format!("cannot armor: {e}")))?;
        w.write_all(&bin)
            .map_err(|e| EscrowError::Invalid(format!("cannot armor: {e}")))?;
        w.finish()
            .map_err(|e| EscrowError::Invalid(format!("cannot armor: {e}")))?;
    }
    String::from_utf8(out).map_err(|e| EscrowError::Invalid(format!("armor: {e}")))
}

/// Open an armored envelope.
fn armor_open(ids: &Identities, s: &SecretString) -> Result<SecretString, EscrowError> {
    use std::io::Read;
    let mut bin = Vec::new();
    age::armor::ArmoredReader::new(s.expose().as_bytes())
        .read_to_end(&mut bin)
        .map_err(|e| EscrowError::Invalid(format!("envelope is not age armor: {e}")))?;
    let plain = crate::seal::open(ids, &bin)?;
    let text = std::str::from_utf8(plain.expose())
        .map_err(|_| EscrowError::Invalid("envelope content is not UTF-8".into()))?;
    Ok(SecretString::new(text.to_owned()))
}
