//! `keys reseal`: re-encrypt sealed items to the current offline
//! recipients.

use std::collections::BTreeMap;

use super::envelope::{armor_open, armor_seal};
use super::{ENVELOPE_AGE, Escrow, EscrowError, now};
use crate::escrow::kv::Read;
use crate::seal::Identities;
use crate::secret::SecretString;

impl Escrow {
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
            Err(e) => return self.record("reseal", &list_path, |_| None, Err(e)).await,
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
                    let r = self.record("reseal", &path, |v: &u64| Some(*v), r).await;
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
        let names = self.names().await?;
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
