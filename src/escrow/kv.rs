//! A small OpenBao KV v2 client over reqwest.
//!
//! Why not the vaultrs crate: it supports the OpenBao features we rely on
//! (check-and-set writes, `custom_metadata`, AppRole login). What it lacks
//! is the handling around them that an escrow of keys needs: secrets (the
//! token, secret values) zeroized when dropped, a cap on the size of a
//! reply, trust in the configured CA only (no system roots), no proxies and
//! no redirects, and error messages that name the KV path that failed. For
//! the handful of endpoints we use, that is simpler to get exactly right by
//! hand over reqwest, with errors that name the address and path and never
//! a secret.
//!
//! Secret values travel as JSON strings only (OpenBao's audit device HMACs
//! strings but logs other JSON types in clear). Request bodies holding
//! secrets are built in zeroizing buffers; reply bodies are read into
//! zeroizing buffers and secret fields moved straight into [`SecretString`].
//! (reqwest/hyper keep their own transient copies of the bytes on the wire,
//! which we cannot wipe.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::escrow::config::{Auth, EscrowConfig};
use crate::secret::SecretString;

/// Renew the token when less than this fraction of its TTL is left.
const RENEW_WHEN_LEFT: f64 = 0.5;
/// Largest reply we accept (a KV item is a few KiB).
const REPLY_LIMIT: usize = 4 << 20;
/// Largest token/role-id/secret-id file we read.
const CREDENTIAL_FILE_LIMIT: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("cannot read {what} {}: {source}", path.display())]
    ReadCredential {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {} is empty", path.display())]
    EmptyCredential { what: &'static str, path: PathBuf },
    #[error("cannot read OpenBao CA certificate {}: {detail}", path.display())]
    CaCert { path: PathBuf, detail: String },
    #[error("{0}")]
    Config(String),
    #[error(
        "OpenBao at {address} refused the token from {source_desc}: permission denied ({path})"
    )]
    Refused {
        address: String,
        source_desc: String,
        path: String,
    },
    #[error(
        "OpenBao at {address} is sealed; unseal it (bao operator unseal) and retry ({path}); nothing was written"
    )]
    Sealed { address: String, path: String },
    #[error("OpenBao at {address} is unreachable ({path}): {detail}")]
    Unreachable {
        address: String,
        path: String,
        detail: String,
    },
    #[error(
        "OpenBao at {address} did not answer {path} within {seconds}s (escrow.timeout_seconds); check the server and the network, then retry"
    )]
    Timeout {
        address: String,
        path: String,
        seconds: u64,
    },
    #[error("OpenBao at {address} sent a malformed reply for {path}: {detail}")]
    Malformed {
        address: String,
        path: String,
        detail: String,
    },
    #[error(
        "OpenBao at {address}: check-and-set conflict on {path}: it changed since it was read (expected version {expected}); read it again and retry"
    )]
    CasConflict {
        address: String,
        path: String,
        expected: u64,
    },
    #[error("OpenBao at {address}: {path}: {status}: {message}")]
    Server {
        address: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error(
        "OpenBao at {address}: AppRole login at auth/{mount}/login failed: {message} (role-id {role_id_file}, secret-id {secret_id_file})"
    )]
    Login {
        address: String,
        mount: String,
        role_id_file: String,
        secret_id_file: String,
        message: String,
    },
}

impl KvError {
    /// A short, secret-free class for the audit log.
    pub fn class(&self) -> &'static str {
        match self {
            KvError::ReadCredential { .. } | KvError::EmptyCredential { .. } => "credential-file",
            KvError::CaCert { .. } | KvError::Config(_) => "config",
            KvError::Refused { .. } => "permission-denied",
            KvError::Sealed { .. } => "sealed",
            KvError::Unreachable { .. } => "unreachable",
            KvError::Timeout { .. } => "timeout",
            KvError::Malformed { .. } => "malformed-reply",
            KvError::CasConflict { .. } => "cas-conflict",
            KvError::Server { .. } => "server-error",
            KvError::Login { .. } => "login-failed",
        }
    }
}

/// One version's state from a data read.
pub enum Read {
    Found {
        version: u64,
        created: String,
        data: BTreeMap<String, SecretString>,
    },
    /// Soft-deleted (recoverable with undelete).
    Deleted { version: u64, deleted: String },
    /// Destroyed for good.
    Destroyed { version: u64 },
    /// No such item (or version).
    Missing,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VersionMeta {
    #[serde(default)]
    pub created_time: String,
    #[serde(default)]
    pub deletion_time: String,
    #[serde(default)]
    pub destroyed: bool,
}

impl VersionMeta {
    pub fn readable(&self) -> bool {
        !self.destroyed && self.deletion_time.is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub current_version: u64,
    #[serde(default)]
    pub oldest_version: u64,
    #[serde(default)]
    pub created_time: String,
    #[serde(default)]
    pub updated_time: String,
    #[serde(default, deserialize_with = "null_map")]
    pub custom_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub versions: BTreeMap<String, VersionMeta>,
}

impl Metadata {
    /// Versions as numbers, ascending.
    pub fn versions(&self) -> Vec<(u64, &VersionMeta)> {
        let mut v: Vec<(u64, &VersionMeta)> = self
            .versions
            .iter()
            .filter_map(|(k, m)| k.parse().ok().map(|n| (n, m)))
            .collect();
        v.sort_by_key(|(n, _)| *n);
        v
    }

    /// The newest version that can still be read.
    pub fn newest_readable(&self) -> Option<u64> {
        self.versions()
            .into_iter()
            .rev()
            .find(|(_, m)| m.readable())
            .map(|(n, _)| n)
    }
}

fn null_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// A secret string field of a reply, moved straight into a [`SecretString`].
/// Non-string values are refused (we only ever store strings).
struct SecretField(SecretString);

impl<'de> Deserialize<'de> for SecretField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretField(SecretString::new(s)))
    }
}

/// What the token can do and until when.
struct TokenState {
    token: SecretString,
    accessor: String,
    /// None: no expiry (root or periodic without TTL).
    expires: Option<Instant>,
    ttl: Duration,
    renewable: bool,
}

pub struct KvClient {
    http: reqwest::Client,
    address: String,
    mount: String,
    auth: Auth,
    state: Option<TokenState>,
    timeout_seconds: u64,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: Option<T>,
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

#[derive(Deserialize)]
struct DataReply {
    data: Option<DataBlock>,
}

#[derive(Deserialize)]
struct DataBlock {
    data: Option<BTreeMap<String, SecretField>>,
    metadata: Option<DataMeta>,
}

#[derive(Deserialize)]
struct DataMeta {
    version: u64,
    #[serde(default)]
    created_time: String,
    #[serde(default)]
    deletion_time: String,
    #[serde(default)]
    destroyed: bool,
}

#[derive(Deserialize)]
struct WriteReply {
    data: Option<WriteData>,
}

#[derive(Deserialize)]
struct WriteData {
    version: u64,
}

#[derive(Deserialize)]
struct ListData {
    #[serde(default)]
    keys: Vec<String>,
}

#[derive(Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<String>,
}

/// Read a credential file (token, role-id, secret-id), trimmed, zeroized.
pub fn read_credential(what: &'static str, path: &Path) -> Result<SecretString, KvError> {
    use std::io::Read;
    let err = |source| KvError::ReadCredential {
        what,
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(err)?;
    let mut buf = Zeroizing::new(Vec::new());
    f.take(CREDENTIAL_FILE_LIMIT)
        .read_to_end(&mut buf)
        .map_err(err)?;
    let text = std::str::from_utf8(&buf).map_err(|_| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text",
        ))
    })?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(KvError::EmptyCredential {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(SecretString::new(trimmed.to_owned()))
}

enum Method {
    Get,
    Post,
    Put,
    List,
    Delete,
}

impl KvClient {
    /// Build the client; nothing is sent until the first call.
    pub fn new(cfg: &EscrowConfig) -> Result<Self, KvError> {
        let address = cfg.effective_address().map_err(KvError::Config)?;
        let auth = cfg.auth().ok_or_else(|| {
            KvError::Config("escrow: no token_file or AppRole files configured".into())
        })?;
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_seconds))
            .connect_timeout(Duration::from_secs(cfg.timeout_seconds))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("chanvault/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = cfg.effective_cacert() {
            let pem = std::fs::read(&ca).map_err(|e| KvError::CaCert {
                path: ca.clone(),
                detail: e.to_string(),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| KvError::CaCert {
                    path: ca.clone(),
                    detail: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(KvError::CaCert {
                    path: ca,
                    detail: "no PEM certificate in it".into(),
                });
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| KvError::Config(format!("cannot set up the HTTPS client: {e}")))?;
        Ok(Self {
            http,
            address,
            mount: cfg.mount.clone(),
            auth,
            state: None,
            timeout_seconds: cfg.timeout_seconds,
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// The token's accessor (safe to log), once logged in.
    pub fn accessor(&self) -> Option<&str> {
        self.state.as_ref().map(|s| s.accessor.as_str())
    }

    fn source_desc(&self) -> String {
        match &self.auth {
            Auth::Token { file } => file.display().to_string(),
            Auth::AppRole { secret_id_file, .. } => {
                format!("AppRole login (secret-id {})", secret_id_file.display())
            }
        }
    }

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
        tracing::debug!(address = %self.address, accessor = self.accessor().unwrap_or(""), "logged in to OpenBao");
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
                        address: self.address.clone(),
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

    fn data_path(&self, item: &str) -> String {
        format!("{}/data/{item}", self.mount)
    }

    fn meta_path(&self, item: &str) -> String {
        format!("{}/metadata/{item}", self.mount)
    }

    /// Write a new version with check-and-set (`cas = 0`: create only).
    pub async fn put(
        &mut self,
        item: &str,
        fields: &[(&str, &str)],
        cas: u64,
    ) -> Result<u64, KvError> {
        let path = self.data_path(item);
        #[derive(serde::Serialize)]
        struct Body<'a> {
            options: Opts,
            data: BTreeMap<&'a str, &'a str>,
        }
        #[derive(serde::Serialize)]
        struct Opts {
            cas: u64,
        }
        let body = Body {
            options: Opts { cas },
            data: fields.iter().copied().collect(),
        };
        let bytes = serialize_zeroizing(&body).map_err(|e| self.malformed(&path, &e))?;
        let sent = async {
            let token = self.session_token().await?;
            self.call(&token, Method::Post, &path, Some(bytes)).await
        }
        .await;
        let reply: Option<WriteReply> = match sent {
            Err(KvError::Server {
                status: 400,
                message,
                ..
            }) if message.contains("check-and-set") => {
                return Err(KvError::CasConflict {
                    address: self.address.clone(),
                    path,
                    expected: cas,
                });
            }
            other => other?,
        };
        reply
            .and_then(|r| r.data)
            .map(|d| d.version)
            .ok_or_else(|| self.malformed(&path, "no version in the write reply"))
    }

    /// Read the latest version, or `version`.
    pub async fn read(&mut self, item: &str, version: Option<u64>) -> Result<Read, KvError> {
        let mut path = self.data_path(item);
        if let Some(v) = version {
            path = format!("{path}?version={v}");
        }
        let (status, body) = self.raw(Method::Get, &path, None).await?;
        if status == 404 {
            // A deleted or destroyed version answers 404 with its metadata.
            let parsed: Option<DataReply> = serde_json::from_slice(&body).ok();
            return Ok(match parsed.and_then(|r| r.data).and_then(|d| d.metadata) {
                Some(m) if m.destroyed => Read::Destroyed { version: m.version },
                Some(m) if !m.deletion_time.is_empty() => Read::Deleted {
                    version: m.version,
                    deleted: m.deletion_time,
                },
                _ => Read::Missing,
            });
        }
        self.check_status(status, &body, &path)?;
        let reply: DataReply =
            serde_json::from_slice(&body).map_err(|e| self.malformed(&path, &e.to_string()))?;
        let block = reply
            .data
            .ok_or_else(|| self.malformed(&path, "no data block"))?;
        let meta = block
            .metadata
            .ok_or_else(|| self.malformed(&path, "no metadata block"))?;
        let data = block
            .data
            .ok_or_else(|| self.malformed(&path, "no data in a readable version"))?
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        Ok(Read::Found {
            version: meta.version,
            created: meta.created_time,
            data,
        })
    }

    /// Item metadata; None if the item does not exist.
    pub async fn metadata(&mut self, item: &str) -> Result<Option<Metadata>, KvError> {
        let path = self.meta_path(item);
        let (status, body) = self.raw(Method::Get, &path, None).await?;
        if status == 404 {
            return Ok(None);
        }
        self.check_status(status, &body, &path)?;
        let reply: Envelope<Metadata> =
            serde_json::from_slice(&body).map_err(|e| self.malformed(&path, &e.to_string()))?;
        reply
            .data
            .map(Some)
            .ok_or_else(|| self.malformed(&path, "no data block"))
    }

    /// Replace the item's custom_metadata (non-secret facts only).
    pub async fn write_metadata(
        &mut self,
        item: &str,
        custom: &BTreeMap<String, String>,
    ) -> Result<(), KvError> {
        let path = self.meta_path(item);
        let body = serde_json::json!({ "custom_metadata": custom });
        let bytes = serialize_zeroizing(&body).map_err(|e| self.malformed(&path, &e))?;
        let token = self.session_token().await?;
        let _: Option<serde_json::Value> =
            self.call(&token, Method::Post, &path, Some(bytes)).await?;
        Ok(())
    }

    /// Names under `prefix` (empty if there are none).
    pub async fn list(&mut self, prefix: &str) -> Result<Vec<String>, KvError> {
        let path = self.meta_path(prefix);
        let (status, body) = self.raw(Method::List, &path, None).await?;
        if status == 404 {
            return Ok(Vec::new());
        }
        self.check_status(status, &body, &path)?;
        let reply: Envelope<ListData> =
            serde_json::from_slice(&body).map_err(|e| self.malformed(&path, &e.to_string()))?;
        Ok(reply.data.map(|d| d.keys).unwrap_or_default())
    }

    /// Soft-delete versions (undeletable).
    pub async fn delete_versions(&mut self, item: &str, versions: &[u64]) -> Result<(), KvError> {
        let path = format!("{}/delete/{item}", self.mount);
        let bytes = serialize_zeroizing(&serde_json::json!({ "versions": versions }))
            .map_err(|e| self.malformed(&path, &e))?;
        let token = self.session_token().await?;
        let _: Option<serde_json::Value> =
            self.call(&token, Method::Post, &path, Some(bytes)).await?;
        Ok(())
    }

    /// Destroy versions for good.
    pub async fn destroy_versions(&mut self, item: &str, versions: &[u64]) -> Result<(), KvError> {
        let path = format!("{}/destroy/{item}", self.mount);
        let bytes = serialize_zeroizing(&serde_json::json!({ "versions": versions }))
            .map_err(|e| self.malformed(&path, &e))?;
        let token = self.session_token().await?;
        let _: Option<serde_json::Value> =
            self.call(&token, Method::Put, &path, Some(bytes)).await?;
        Ok(())
    }

    /// Write to an arbitrary API path and parse the reply's `data` (used for
    /// AppRole secret-id rotation). The body must hold no secret the caller
    /// wants kept out of reqwest's buffers.
    pub async fn post_data(
        &mut self,
        path: &str,
        body: Zeroizing<Vec<u8>>,
    ) -> Result<BTreeMap<String, SecretString>, KvError> {
        #[derive(Deserialize)]
        struct R {
            data: Option<BTreeMap<String, serde_json::Value>>,
        }
        let (status, reply) = self.raw(Method::Post, path, Some(body)).await?;
        self.check_status(status, &reply, path)?;
        if status == 204 || reply.is_empty() {
            return Ok(BTreeMap::new());
        }
        let r: R =
            serde_json::from_slice(&reply).map_err(|e| self.malformed(path, &e.to_string()))?;
        Ok(r.data
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, SecretString::new(s))),
                serde_json::Value::Number(n) => Some((k, SecretString::new(n.to_string()))),
                _ => None,
            })
            .collect())
    }

    /// Delete an API path (e.g. an AppRole secret-id by accessor).
    pub async fn post_no_reply(
        &mut self,
        path: &str,
        body: Zeroizing<Vec<u8>>,
    ) -> Result<(), KvError> {
        let token = self.session_token().await?;
        let _: Option<serde_json::Value> =
            self.call(&token, Method::Post, path, Some(body)).await?;
        Ok(())
    }

    /// Remove the item and all its versions (metadata delete).
    pub async fn delete_all(&mut self, item: &str) -> Result<(), KvError> {
        let path = self.meta_path(item);
        let (status, body) = self.raw(Method::Delete, &path, None).await?;
        self.check_status(status, &body, &path)
    }

    fn malformed(&self, path: &str, detail: &str) -> KvError {
        KvError::Malformed {
            address: self.address.clone(),
            path: path.to_owned(),
            detail: detail.to_owned(),
        }
    }

    /// Send with `token` and parse the JSON reply (`None` when it is empty).
    /// Calls on the session pass [`KvClient::session_token`]; logging in
    /// and renewing pass the token they are about to adopt or renew (an
    /// empty one sends none).
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        token: &SecretString,
        method: Method,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Option<T>, KvError> {
        let (status, reply) = self.send(token, method, path, body).await?;
        self.check_status(status, &reply, path)?;
        if status == 204 || reply.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&reply)
            .map(Some)
            .map_err(|e| self.malformed(path, &e.to_string()))
    }

    async fn raw(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), KvError> {
        let token = self.session_token().await?;
        self.send(&token, method, path, body).await
    }

    /// The token for a call on the session: log in or renew first as
    /// needed.
    async fn session_token(&mut self) -> Result<SecretString, KvError> {
        self.ensure_token().await?;
        self.current_token()
    }

    /// A copy of the current token, as it is.
    fn current_token(&self) -> Result<SecretString, KvError> {
        match &self.state {
            Some(s) => Ok(SecretString::new(s.token.expose().to_owned())),
            None => Err(KvError::Config("not logged in to OpenBao".into())),
        }
    }

    async fn send(
        &self,
        token: &SecretString,
        method: Method,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), KvError> {
        let url = format!("{}/v1/{path}", self.address);
        let m = match method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
            Method::List => reqwest::Method::from_bytes(b"LIST")
                .map_err(|e| KvError::Config(format!("LIST method: {e}")))?,
        };
        let mut req = self.http.request(m, &url);
        if !token.expose().is_empty() {
            let mut v = reqwest::header::HeaderValue::from_str(token.expose()).map_err(|_| {
                KvError::Config(format!(
                    "the token from {} contains characters not allowed in an HTTP header",
                    self.source_desc()
                ))
            })?;
            v.set_sensitive(true);
            req = req.header("X-Vault-Token", v);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_vec());
        }
        let unreachable = |e: reqwest::Error| {
            if e.is_timeout() {
                KvError::Timeout {
                    address: self.address.clone(),
                    path: path.to_owned(),
                    seconds: self.timeout_seconds,
                }
            } else if e.is_decode() || e.is_body() {
                self.malformed(path, &error_chain(&e))
            } else {
                KvError::Unreachable {
                    address: self.address.clone(),
                    path: path.to_owned(),
                    detail: error_chain(&e),
                }
            }
        };
        let mut resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let mut buf = Zeroizing::new(Vec::new());
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            if buf.len() + chunk.len() > REPLY_LIMIT {
                return Err(self.malformed(path, "reply larger than 4 MiB"));
            }
            buf.extend_from_slice(&chunk);
        }
        tracing::trace!(path, status, bytes = buf.len(), "OpenBao reply");
        Ok((status, buf))
    }

    fn check_status(&self, status: u16, body: &[u8], path: &str) -> Result<(), KvError> {
        if (200..300).contains(&status) {
            return Ok(());
        }
        let path = path.split('?').next().unwrap_or(path).to_owned();
        let errors = serde_json::from_slice::<Errors>(body)
            .map(|e| e.errors)
            .unwrap_or_default();
        let message = if errors.is_empty() {
            String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .replace('\n', " ")
        } else {
            errors.join("; ").replace('\n', " ")
        };
        let sealed = message.to_lowercase().contains("sealed");
        Err(match status {
            503 if sealed => KvError::Sealed {
                address: self.address.clone(),
                path,
            },
            403 => KvError::Refused {
                address: self.address.clone(),
                source_desc: self.source_desc(),
                path,
            },
            _ if sealed => KvError::Sealed {
                address: self.address.clone(),
                path,
            },
            _ => KvError::Server {
                address: self.address.clone(),
                path,
                status,
                message: if message.is_empty() {
                    "no error message".into()
                } else {
                    message
                },
            },
        })
    }
}

/// Serialize into a zeroizing buffer (bodies carrying secrets).
fn serialize_zeroizing<T: serde::Serialize>(v: &T) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut buf = Zeroizing::new(Vec::with_capacity(1024));
    serde_json::to_writer(&mut *buf, v).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// A JSON object of string fields in a zeroizing buffer.
pub fn json_body(fields: &[(&str, &str)]) -> Result<Zeroizing<Vec<u8>>, KvError> {
    let map: BTreeMap<&str, &str> = fields.iter().copied().collect();
    serialize_zeroizing(&map).map_err(KvError::Config)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s.replace('\n', " ")
}
