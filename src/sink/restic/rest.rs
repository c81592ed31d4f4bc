//! The REST server as we talk to it: one client, without proxy (or through
//! the target's own `proxy` only, never the environment's), for the
//! repository probe, the lock files and the repository itself
//! (`rest_backend`).

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

use super::rclone::RcloneServer;
use super::rest_backend::RestBackend;
use super::{ResticTarget, read_secret};
use crate::secret::SecretString;
use crate::sink::{ErrorKind, TargetError};

/// restic's REST protocol v2 listing.
pub(super) const REST_V2: &str = "application/vnd.x.restic.rest.v2";

/// The basic-auth user and password of a REST server.
pub(super) struct BasicAuth {
    pub(super) user: String,
    pub(super) pass: SecretString,
}

/// The REST server as we talk to it (probe, lock files, repository).
pub(super) struct Http {
    client: reqwest::blocking::Client,
    /// Base URL with a trailing slash and without credentials.
    pub(super) base: reqwest::Url,
    pub(super) auth: Option<Arc<BasicAuth>>,
    /// For an `rclone:` repository, the rclone that serves it (stopped with this).
    pub(super) rclone: Option<RcloneServer>,
}

impl Http {
    pub(super) fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::blocking::RequestBuilder {
        let url = self.base.join(path).unwrap_or_else(|_| self.base.clone());
        let rb = self.client.request(method, url);
        match &self.auth {
            Some(a) => rb.basic_auth(&a.user, Some(a.pass.expose())),
            None => rb,
        }
    }

    /// The repository over this client, for rustic_core.
    pub(super) fn backend(&self, location: &str) -> RestBackend {
        RestBackend::new(
            self.client.clone(),
            self.base.clone(),
            self.auth.clone(),
            location.to_string(),
        )
    }
}

impl ResticTarget {
    /// Per HTTP request (packs here are tiny); `timeout_seconds` in the config.
    fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.timeout_seconds)
    }

    pub(super) fn http(&self) -> Result<Option<Http>, TargetError> {
        if self.cfg.rclone_remote().is_some() {
            return self.rclone_http().map(Some);
        }
        let Some(url) = self.cfg.repository.strip_prefix("rest:") else {
            return Ok(None);
        };
        let url = if url.ends_with('/') {
            url.to_string()
        } else {
            format!("{url}/")
        };
        let base = reqwest::Url::parse(&url)
            .map_err(|e| self.err(format!("repository {url} is not a valid URL: {e}")))?;
        // No proxy from HTTP_PROXY/HTTPS_PROXY/ALL_PROXY: the credentials
        // and the repository are for this server only. The target's own
        // `proxy`, when set, carries every request (there is no fallback).
        crate::lnd::install_crypto_provider();
        let mut builder = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(self.request_timeout())
            .user_agent(concat!("chanvault/", env!("CARGO_PKG_VERSION")));
        if let Some(p) = self.proxy().map_err(|m| self.err(m))? {
            builder = builder.proxy(p.reqwest().map_err(|m| self.err(m))?);
        }
        if let Some(ca) = &self.cfg.cacert {
            use crate::fsutil::CaBundleError;
            let certs = crate::fsutil::read_ca_bundle(ca).map_err(|e| match e {
                CaBundleError::Read(e) => self
                    .err(format!("cannot read cacert {}: {e}", ca.display()))
                    .with_kind(ErrorKind::of_io(&e)),
                CaBundleError::NotPem(e) => self.err(format!(
                    "cacert {} is not a PEM certificate: {e}",
                    ca.display()
                )),
                CaBundleError::Empty => {
                    self.err(format!("cacert {} holds no PEM certificate", ca.display()))
                }
            })?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder
            .build()
            .map_err(|e| self.err(format!("cannot set up the HTTP client: {e}")))?;
        let auth = match &self.cfg.http_credentials_file {
            None => None,
            Some(p) => {
                let line = read_secret(p, "http_credentials_file").map_err(|m| self.err(m))?;
                let Some((user, pass)) = line.expose().split_once(':') else {
                    return Err(self.err(format!(
                        "http_credentials_file {} must hold `user:password` on one line",
                        p.display()
                    )));
                };
                Some(Arc::new(BasicAuth {
                    user: user.to_string(),
                    pass: SecretString::new(pass.to_string()),
                }))
            }
        };
        Ok(Some(Http {
            client,
            base,
            auth,
            rclone: None,
        }))
    }

    /// An `rclone:` repository: rclone serves it on 127.0.0.1 for as long
    /// as the returned client lives.
    fn rclone_http(&self) -> Result<Http, TargetError> {
        let server = self.start_rclone()?;
        let base = reqwest::Url::parse(&server.url)
            .map_err(|e| self.err(format!("rclone serves at {} (not a URL: {e})", server.url)))?;
        // No proxy either: rclone listens on loopback only.
        crate::lnd::install_crypto_provider();
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(self.request_timeout())
            .user_agent(concat!("chanvault/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| self.err(format!("cannot set up the HTTP client: {e}")))?;
        // rclone before 1.52.2 ignores RCLONE_USER/RCLONE_PASS and would
        // serve the repository to every local user: make sure it does not.
        let probe = base.join("config").unwrap_or_else(|_| base.clone());
        match client.head(probe).send().map(|r| r.status()) {
            Ok(StatusCode::UNAUTHORIZED) => {}
            Ok(s) => {
                return Err(self.err(format!(
                    "rclone serves the remote {} without authentication (HTTP {s} without credentials): it must be 1.52.2 or newer; refusing to use it",
                    self.cfg.rclone_remote().unwrap_or_default()
                )));
            }
            Err(e) => return Err(self.http_err("checking rclone's authentication", e)),
        }
        let auth = Some(Arc::new(BasicAuth {
            user: server.user.clone(),
            pass: SecretString::new(server.pass.expose().to_string()),
        }));
        Ok(Http {
            client,
            base,
            auth,
            rclone: Some(server),
        })
    }

    /// A clear error for a REST failure (the URL never carries credentials).
    pub(super) fn http_err(&self, what: &str, e: reqwest::Error) -> TargetError {
        if let Some(remote) = self.cfg.rclone_remote() {
            let chain = crate::text::error_chain(&e.without_url());
            return self.rclone_reason(what).unwrap_or_else(|| {
                self.err(format!(
                    "{what}: rclone, serving the remote {remote} on 127.0.0.1, did not answer ({chain}); it is restarted on the next try"
                ))
                .with_kind(ErrorKind::Other)
            });
        }
        let (is_connect, is_timeout) = (e.is_connect(), e.is_timeout());
        let chain = crate::text::error_chain(&e.without_url());
        let lower = chain.to_lowercase();
        let repo = &self.cfg.repository;
        if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
            let hint = if self.cfg.cacert.is_some() {
                "the server's certificate does not match cacert"
            } else {
                "set cacert to the server's certificate if it is self-signed"
            };
            return self
                .err(format!(
                    "TLS with the REST server {repo} failed ({chain}): {hint}"
                ))
                .with_kind(ErrorKind::Refused);
        }
        if is_connect {
            let how = match &self.cfg.proxy {
                Some(p) => format!(
                    " through the proxy {p} ({chain}); are the proxy and the server running?"
                ),
                None => format!(" ({chain}); is it running?"),
            };
            return self
                .err(format!("cannot reach the REST server {repo}{how}"))
                .with_kind(ErrorKind::Unreachable);
        }
        if is_timeout {
            return self
                .err(format!(
                    "the REST server {repo} did not answer within {}s",
                    self.cfg.timeout_seconds
                ))
                .with_kind(ErrorKind::Timeout);
        }
        self.err(format!("{what} on the REST server {repo} failed: {chain}"))
    }

    pub(super) fn status_err(&self, what: &str, status: StatusCode) -> TargetError {
        if let Some(remote) = self.cfg.rclone_remote() {
            return self.rclone_reason(what).unwrap_or_else(|| {
                self.err(format!(
                    "{what}: rclone, serving the remote {remote}, answered HTTP {status}"
                ))
            });
        }
        let repo = &self.cfg.repository;
        let kind = if status.is_client_error() {
            ErrorKind::Refused
        } else {
            ErrorKind::Other
        };
        let e = match status {
            StatusCode::UNAUTHORIZED => self.err(match &self.cfg.http_credentials_file {
                Some(p) => format!(
                    "the REST server {repo} refused the credentials in {} (HTTP 401)",
                    p.display()
                ),
                None => format!(
                    "the REST server {repo} wants credentials (HTTP 401): set http_credentials_file"
                ),
            }),
            StatusCode::FORBIDDEN => self.err(format!(
                "the REST server {repo} forbids {what} (HTTP 403): check its --private-repos/--append-only setup"
            )),
            s => self.err(format!("{what} on the REST server {repo}: HTTP {s}")),
        };
        e.with_kind(kind)
    }
}
