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
//! secrets are built in zeroizing buffers and handed to reqwest as they are
//! (no copy), so they are wiped when reqwest drops them; reply bodies are
//! read into zeroizing buffers that never reallocate in place, and secret
//! fields moved straight into [`SecretString`]. (hyper and rustls keep
//! their own transient copies of the bytes on the wire, which we cannot
//! wipe.)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

mod auth;
mod cluster;
mod error;
mod http;
mod put;

pub use auth::read_credential;
pub use error::KvError;
pub use http::json_body;

use auth::TokenState;
use http::{Method, serialize_zeroizing};

use crate::config::escrow::{Auth, EscrowConfig};
use crate::config::proxy::Socks5h;
use crate::secret::SecretString;

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

pub struct KvClient {
    http: reqwest::Client,
    /// `escrow.address`: one node, or every node of a cluster.
    addresses: Vec<String>,
    /// The node the last request went to (an index into `addresses`).
    node: AtomicUsize,
    /// Whether `node` is known to be the active one (or to forward to it).
    known: AtomicBool,
    mount: String,
    auth: Auth,
    state: Option<TokenState>,
    timeout_seconds: u64,
    /// `escrow.proxy`, named when OpenBao cannot be reached.
    proxy: Option<String>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: Option<T>,
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
struct ListData {
    #[serde(default)]
    keys: Vec<String>,
}

impl KvClient {
    /// Build the client; nothing is sent until the first call.
    pub fn new(cfg: &EscrowConfig) -> Result<Self, KvError> {
        let addresses = cfg.effective_addresses().map_err(KvError::Config)?;
        let auth = cfg.auth().ok_or_else(|| {
            KvError::Config("escrow: no token_file or AppRole files configured".into())
        })?;
        crate::lnd::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_seconds))
            .connect_timeout(cluster::connect_timeout(
                addresses.len(),
                cfg.timeout_seconds,
            ))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("chanvault/", env!("CARGO_PKG_VERSION")));
        // `escrow.proxy`: every request through it (reqwest never falls back to direct).
        let proxy = cfg.proxy.as_deref().map(Socks5h::parse).transpose();
        if let Some(p) = proxy.map_err(|m| KvError::Config(format!("escrow.proxy: {m}")))? {
            builder = builder.proxy(p.reqwest().map_err(KvError::Config)?);
        }
        if let Some(ca) = cfg.effective_cacert() {
            use crate::fsutil::CaBundleError;
            let certs = crate::fsutil::read_ca_bundle(&ca).map_err(|e| KvError::CaCert {
                path: ca.clone(),
                detail: match e {
                    CaBundleError::Read(e) => e.to_string(),
                    CaBundleError::NotPem(e) => e,
                    CaBundleError::Empty => e.to_string(),
                },
            })?;
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| KvError::Config(format!("cannot set up the HTTPS client: {e}")))?;
        Ok(Self {
            http,
            addresses,
            node: AtomicUsize::new(0),
            known: AtomicBool::new(false),
            mount: cfg.mount.clone(),
            auth,
            state: None,
            timeout_seconds: cfg.timeout_seconds,
            proxy: cfg.proxy.clone(),
        })
    }

    /// The node the last request went to (the one an error names).
    pub fn address(&self) -> &str {
        &self.addresses[self.node.load(Ordering::Relaxed) % self.addresses.len()]
    }

    /// Every configured node.
    pub fn addresses(&self) -> &[String] {
        &self.addresses
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

    fn data_path(&self, item: &str) -> String {
        format!("{}/data/{item}", self.mount)
    }

    fn meta_path(&self, item: &str) -> String {
        format!("{}/metadata/{item}", self.mount)
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
}
