//! `keys verify` and `keys export-public`: read-only views of the whole
//! escrow.

use super::{Escrow, EscrowError, now};
use crate::escrow::material::{self, CheckResult, Kind, Material, PublicFacts};
use crate::seal::Identities;

/// What `keys verify` found: one result per check, and every item it could
/// read and validate (for the checks its caller can add: the running node's
/// identity, the backups the escrowed keys open).
pub struct Verified {
    pub checks: Vec<CheckResult>,
    pub items: Vec<(String, Material)>,
}

impl Verified {
    /// The items as [`material::node_identity`] and friends take them.
    pub fn refs(&self) -> Vec<(&str, &Material)> {
        self.items.iter().map(|(n, m)| (n.as_str(), m)).collect()
    }
}

impl Escrow {
    /// `keys verify`: every item readable and valid, the required names
    /// present, and the cross-checks between items.
    pub async fn verify(&mut self, identity: Option<&Identities>) -> Result<Verified, EscrowError> {
        let path = format!("{}/metadata/{}/", self.kv.mount(), self.prefix);
        let r = self.verify_inner(identity).await;
        let failed = r
            .as_ref()
            .map(|v| v.checks.iter().filter(|c| !c.ok).count())
            .unwrap_or(0);
        let outcome = match &r {
            Ok(_) if failed == 0 => "ok".to_owned(),
            Ok(_) => format!("failed: {failed} check(s)"),
            Err(e) => e.class(),
        };
        let kv_failed = r.as_ref().is_err_and(EscrowError::is_kv);
        self.append_and_anchor("verify", &path, None, &outcome, kv_failed)
            .await?;
        r
    }

    async fn verify_inner(
        &mut self,
        identity: Option<&Identities>,
    ) -> Result<Verified, EscrowError> {
        let mut results = Vec::new();
        let names = self.names().await?;
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
        Ok(Verified {
            checks: results,
            items,
        })
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
        self.record("export-public", &path, |_| None, r).await
    }
}
