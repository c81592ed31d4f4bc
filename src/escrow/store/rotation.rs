//! Rotation in OpenBao: a new age identity version (and destroying the old
//! ones), and a new AppRole secret-id.

use super::{Escrow, EscrowError, PutOptions};
use crate::config::escrow::{EscrowConfig, check_name};
use crate::escrow::kv::KvError;
use crate::escrow::material::Kind;

impl Escrow {
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
        .await
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
            .await
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
        self.record("rotate-approle", &path, |_| None, r).await
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
        if !crate::config::escrow::valid_segment(role) {
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
}

/// What `keys rotate approle` did (accessors only; they are not secret).
pub struct ApproleRotation {
    pub role: String,
    pub new_accessor: String,
    /// None: the old secret-id was not found (already gone).
    pub old_accessor: Option<String>,
}
