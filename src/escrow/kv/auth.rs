//! Credentials and the token: reading credential files, logging in with a
//! token file or AppRole, renewing.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use zeroize::Zeroizing;

use super::http::{Method, json_body};
use super::{Envelope, KvClient, KvError, SecretField};
use crate::config::escrow::Auth;
use crate::secret::SecretString;

/// Renew the token when less than this fraction of its TTL is left.
const RENEW_WHEN_LEFT: f64 = 0.5;

/// What the token can do and until when.
pub(super) struct TokenState {
    pub(super) token: SecretString,
    pub(super) accessor: String,
    /// None: no expiry (root or periodic without TTL).
    expires: Option<Instant>,
    ttl: Duration,
    renewable: bool,
}

#[derive(Deserialize)]
struct AuthReply {
    auth: Option<AuthBlock>,
}

#[derive(Deserialize)]
struct AuthBlock {
    client_token: SecretField,
    #[serde(default)]
    accessor: String,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

#[derive(Deserialize)]
struct LookupSelf {
    #[serde(default)]
    accessor: String,
    #[serde(default)]
    ttl: u64,
    #[serde(default)]
    renewable: bool,
}

/// Read a credential file (token, role-id, secret-id), trimmed, zeroized.
pub fn read_credential(what: &'static str, path: &Path) -> Result<SecretString, KvError> {
    use crate::secret::SecretFileError;
    crate::secret::read_secret_line(path).map_err(|e| match e {
        SecretFileError::Empty => KvError::EmptyCredential {
            what,
            path: path.to_path_buf(),
        },
        SecretFileError::Io(source) => KvError::ReadCredential {
            what,
            path: path.to_path_buf(),
            source,
        },
        other => KvError::ReadCredential {
            what,
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
        },
    })
}

impl KvClient {
    /// Log in (read the token file or do an AppRole login) if needed, renew
    /// the token when it is past half its TTL, and log in again when it can
    /// no longer be renewed (past its max TTL).
    pub async fn ensure_token(&mut self) -> Result<(), KvError> {
        let now = Instant::now();
        let action = match &self.state {
            None => 0,
            Some(s) => match s.expires {
                None => return Ok(()),
                Some(exp) if exp <= now => 2,
                Some(exp) => {
                    let left = exp.duration_since(now).as_secs_f64();
                    if left < s.ttl.as_secs_f64() * RENEW_WHEN_LEFT {
                        if s.renewable { 1 } else { 2 }
                    } else {
                        return Ok(());
                    }
                }
            },
        };
        if action == 1 {
            match self.renew_self().await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::debug!(error = %e, "token renewal failed; logging in again");
                }
            }
        }
        self.login().await
    }

    async fn login(&mut self) -> Result<(), KvError> {
        match self.auth.clone() {
            Auth::Token { file } => {
                let token = read_credential("OpenBao token file", &file)?;
                let info: LookupSelf = self
                    .call(&token, Method::Get, "auth/token/lookup-self", None)
                    .await?
                    .and_then(|v: Envelope<LookupSelf>| v.data)
                    .ok_or_else(|| self.malformed("auth/token/lookup-self", "no data"))?;
                self.state = Some(TokenState {
                    token,
                    accessor: info.accessor,
                    expires: (info.ttl > 0).then(|| Instant::now() + Duration::from_secs(info.ttl)),
                    ttl: Duration::from_secs(info.ttl),
                    renewable: info.renewable,
                });
            }
            Auth::AppRole { secret_id_file, .. } => {
                let secret_id = read_credential("AppRole secret-id file", &secret_id_file)?;
                self.login_approle(&secret_id, &secret_id_file.display().to_string())
                    .await?;
            }
        }
        tracing::debug!(address = %self.address(), accessor = self.accessor().unwrap_or(""), "logged in to OpenBao");
        Ok(())
    }

    /// AppRole login with the configured role-id and this secret-id (from
    /// the configured file, or a freshly generated one being proved before
    /// it is written there); the new token replaces the current one.
    /// `secret_id_desc` names the secret-id in errors.
    pub async fn login_approle(
        &mut self,
        secret_id: &SecretString,
        secret_id_desc: &str,
    ) -> Result<(), KvError> {
        let Auth::AppRole {
            mount,
            role_id_file,
            ..
        } = self.auth.clone()
        else {
            return Err(KvError::Config(
                "escrow: AppRole login needs approle_role_id_file and approle_secret_id_file"
                    .into(),
            ));
        };
        let role_id = read_credential("AppRole role-id file", &role_id_file)?;
        let body = json_body(&[
            ("role_id", role_id.expose()),
            ("secret_id", secret_id.expose()),
        ])?;
        let path = format!("auth/{mount}/login");
        let empty = SecretString::new(String::new());
        let reply: Option<AuthReply> =
            match self.call(&empty, Method::Post, &path, Some(body)).await {
                Ok(r) => r,
                Err(KvError::Server { message, .. })
                | Err(KvError::Refused { path: message, .. }) => {
                    return Err(KvError::Login {
                        address: self.address().to_owned(),
                        mount,
                        role_id_file: role_id_file.display().to_string(),
                        secret_id_file: secret_id_desc.to_owned(),
                        message,
                    });
                }
                Err(e) => return Err(e),
            };
        let auth = reply
            .and_then(|r| r.auth)
            .ok_or_else(|| self.malformed(&path, "no auth block in the login reply"))?;
        self.state = Some(TokenState {
            token: auth.client_token.0,
            accessor: auth.accessor,
            expires: (auth.lease_duration > 0)
                .then(|| Instant::now() + Duration::from_secs(auth.lease_duration)),
            ttl: Duration::from_secs(auth.lease_duration),
            renewable: auth.renewable,
        });
        Ok(())
    }

    /// The auth method from the config.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// `auth/token/renew-self`.
    pub async fn renew_self(&mut self) -> Result<(), KvError> {
        // With the current token as it is: `session_token` would try to
        // renew first.
        let token = self.current_token()?;
        let reply: Option<AuthReply> = self
            .call(
                &token,
                Method::Post,
                "auth/token/renew-self",
                Some(Zeroizing::new(b"{}".to_vec())),
            )
            .await?;
        let auth = reply
            .and_then(|r| r.auth)
            .ok_or_else(|| self.malformed("auth/token/renew-self", "no auth block"))?;
        if let Some(s) = &mut self.state {
            s.expires = (auth.lease_duration > 0)
                .then(|| Instant::now() + Duration::from_secs(auth.lease_duration));
            s.ttl = Duration::from_secs(auth.lease_duration);
            s.renewable = auth.renewable;
        }
        tracing::debug!(ttl = auth.lease_duration, "renewed the OpenBao token");
        Ok(())
    }

    /// Seconds of TTL the token has left (None: no expiry or not logged in).
    pub fn token_ttl_left(&self) -> Option<Duration> {
        self.state
            .as_ref()
            .and_then(|s| s.expires)
            .map(|e| e.saturating_duration_since(Instant::now()))
    }
}
