//! `escrow.address` as an OpenBao cluster (raft HA): which node a request
//! goes to, what a standby's answers mean, how long to wait for an election,
//! and which requests may be sent again.
//!
//! Where requests go. With one address, to it, as before clusters. With
//! several, to the active node: the first request of a process (and the
//! first after a node failed) asks every node's `sys/leader` (without the
//! token) and takes the one that says it is active. A standby would forward
//! to it anyway, but since OpenBao 2.5 a standby also answers reads from its
//! own replica, which may lag a write just made; asking the active node
//! keeps a read after a write (and the check below) exact. When no node
//! says it is active but one names a leader we were not given, that node
//! is used: it forwards (inside the cluster, over its mutually
//! authenticated cluster port).
//!
//! The token goes to configured addresses only. reqwest follows no
//! redirect; a 307 from a standby is handled here: when its `Location`
//! has the scheme, host and port of a configured node, the request is sent
//! again to that node's configured URL (never to the URL the server chose);
//! otherwise it fails with one line naming the location. A server, or
//! whoever answers in its name, cannot make chanvault send the token or a
//! secret anywhere the operator did not list.
//!
//! An election. While no node is active (the leader died and the others
//! have not elected one: connections refused, 503s, "local node not active
//! but active cluster node not found"), requests wait with backoff up to
//! `escrow.timeout_seconds` in all, then fail with one line naming every
//! address and the last error.
//!
//! Sending again. A request is sent again to another node only when it
//! cannot have changed anything: it never left this process (no
//! connection), or a node refused it before doing anything (sealed, not
//! active), or it is a read, or a write whose repetition is harmless
//! ([`idempotent`]). A KV data write whose reply was lost is left to
//! `put`, which finds out with check-and-set whether it was applied.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Deserialize;
use zeroize::Zeroizing;

use super::http::{Failed, Method, Reply, request_body};
use super::{KvClient, KvError};
use crate::secret::SecretString;

/// First pause after a failed round over the nodes; doubles up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Longest wait for one node's `sys/leader` while looking for the active one,
/// so that one unreachable node does not use up the whole budget.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// With several nodes, the longest wait for a TCP/TLS connection to one.
const CLUSTER_CONNECT_SECONDS: u64 = 3;
/// Redirects followed for one request (between configured nodes only).
const MAX_REDIRECTS: usize = 3;

/// The connect timeout: the whole timeout for one node, less for a cluster,
/// where another node can answer instead.
pub(super) fn connect_timeout(nodes: usize, timeout_seconds: u64) -> Duration {
    Duration::from_secs(if nodes > 1 {
        timeout_seconds.min(CLUSTER_CONNECT_SECONDS)
    } else {
        timeout_seconds
    })
}

/// Requests that may be sent twice with the effect of once: reads, and the
/// writes that set a state rather than add one (custom metadata replaced,
/// versions deleted or destroyed, the item removed, the token renewed).
/// Not a KV data write (a second one would add a version), not a login (a
/// second token, and a use of a limited secret-id), not a secret-id
/// generation.
pub(super) fn idempotent(method: Method, path: &str) -> bool {
    match method {
        Method::Get | Method::List | Method::Delete => true,
        Method::Post | Method::Put => {
            let path = path.split('?').next().unwrap_or(path);
            path == "auth/token/renew-self"
                || ["/metadata/", "/delete/", "/destroy/"]
                    .iter()
                    .any(|p| path.contains(p))
        }
    }
}

/// Whether a node's error says it did nothing with the request: it is
/// sealed, a standby that knows no active node, or rate-limiting.
fn refused_untouched(status: u16, message: &str) -> bool {
    let m = message.to_lowercase();
    status == 429
        || m.contains("sealed")
        || m.contains("not active")
        || m.contains("standby")
        || m.contains("no active")
}

/// `sys/leader`'s reply.
#[derive(Deserialize)]
struct Leader {
    #[serde(default)]
    ha_enabled: bool,
    #[serde(default)]
    is_self: bool,
    #[serde(default)]
    leader_address: String,
}

/// scheme://host:port of a URL, for comparing a redirect with the nodes.
fn origin(url: &str) -> Option<(String, String, u16)> {
    let u = reqwest::Url::parse(url).ok()?;
    Some((
        u.scheme().to_owned(),
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default()?,
    ))
}

impl KvClient {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }

    fn cluster(&self) -> bool {
        self.addresses.len() > 1
    }

    /// The configured node with `url`'s scheme, host and port.
    fn configured(&self, url: &str) -> Option<usize> {
        let o = origin(url)?;
        self.addresses
            .iter()
            .position(|a| origin(a).as_ref() == Some(&o))
    }

    /// Send one request, to the active node of a cluster, through its
    /// elections and standbys' redirects (see the module's comment).
    pub(super) async fn send(
        &self,
        token: &SecretString,
        method: Method,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), KvError> {
        let body = body.map(request_body);
        let deadline = Instant::now() + self.timeout();
        let safe = idempotent(method, path);
        let mut redirects = 0;
        let mut backoff = BACKOFF_START;
        let mut last: Option<KvError> = None;
        loop {
            let node = if self.cluster() {
                self.active(deadline, last.take()).await?
            } else {
                0
            };
            let timeout = if self.cluster() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                self.timeout()
            };
            let failed = match self
                .send_once(node, token, method, path, body.as_ref(), timeout)
                .await
            {
                // A 307 did nothing: the standby points at the active node.
                // Followed to a configured node only; in a cluster, one
                // pointing elsewhere (an active node not listed, or one
                // that just died) is waited out like any refusal.
                Ok(r) if matches!(r.status, 307 | 308) => match self.redirect(node, path, &r) {
                    Ok(to) if to != node && redirects < MAX_REDIRECTS => {
                        redirects += 1;
                        self.node.store(to, Ordering::Relaxed);
                        continue;
                    }
                    Ok(_) => self.error_of(node, r.status, &r.body, path),
                    Err(e) => e,
                },
                Ok(r) if (200..300).contains(&r.status) || !self.cluster() => {
                    self.node.store(node, Ordering::Relaxed);
                    return Ok((r.status, r.body));
                }
                Ok(r) => {
                    let e = self.error_of(node, r.status, &r.body, path);
                    let retry = refused_untouched(r.status, &e.to_string())
                        || (safe && matches!(r.status, 500 | 502..=504));
                    if !retry {
                        return Ok((r.status, r.body));
                    }
                    e
                }
                Err(Failed::NotSent(e)) if self.cluster() => e,
                Err(Failed::InDoubt(e)) if self.cluster() && safe => e,
                Err(f) => return Err(f.into_error()),
            };
            if !self.cluster() {
                return Err(failed);
            }
            tracing::debug!(error = %failed, "OpenBao node failed; trying the cluster again");
            self.known.store(false, Ordering::Relaxed);
            self.node
                .store((node + 1) % self.addresses.len(), Ordering::Relaxed);
            last = Some(failed);
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(backoff.min(left)).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// The error a non-2xx reply of `node` stands for; `node` becomes the
    /// current one, so that the error names it.
    fn error_of(&self, node: usize, status: u16, body: &[u8], path: &str) -> KvError {
        self.node.store(node, Ordering::Relaxed);
        match self.check_status(status, body, path) {
            Err(e) => e,
            Ok(()) => self.malformed(path, &format!("unexpected status {status}")),
        }
    }

    /// Where a redirect from `node` may be followed: a configured node.
    fn redirect(&self, node: usize, path: &str, r: &Reply) -> Result<usize, KvError> {
        let location = r.location.as_deref().unwrap_or("");
        self.configured(location).ok_or_else(|| KvError::Redirect {
            address: self.addresses[node].clone(),
            path: path.split('?').next().unwrap_or(path).to_owned(),
            location: origin(location)
                .map(|(s, h, p)| format!("{s}://{h}:{p}"))
                .unwrap_or_else(|| "an unusable location".into()),
        })
    }

    /// The active node: the current one if it is known, else the first
    /// that says so in `sys/leader`, waiting with backoff through an
    /// election until `deadline`.
    async fn active(&self, deadline: Instant, mut last: Option<KvError>) -> Result<usize, KvError> {
        if self.known.load(Ordering::Relaxed) {
            return Ok(self.node.load(Ordering::Relaxed));
        }
        let n = self.addresses.len();
        let mut backoff = BACKOFF_START;
        loop {
            let start = self.node.load(Ordering::Relaxed);
            let mut forwarder = None;
            for k in 0..n {
                let i = (start + k) % n;
                match self.leader(i, deadline).await {
                    Ok(l) if l.is_self || !l.ha_enabled => {
                        self.node.store(i, Ordering::Relaxed);
                        self.known.store(true, Ordering::Relaxed);
                        return Ok(i);
                    }
                    Ok(l) if l.leader_address.is_empty() => {
                        last = Some(KvError::NoLeader {
                            address: self.addresses[i].clone(),
                        });
                    }
                    // A leader we were not given: this node forwards to it.
                    Ok(l) if self.configured(&l.leader_address).is_none() => {
                        forwarder.get_or_insert(i);
                    }
                    // A configured leader that did not answer as one (dead,
                    // and this node has not noticed yet): wait.
                    Ok(_) => {}
                    Err(e) => last = Some(e),
                }
            }
            if let Some(i) = forwarder {
                self.node.store(i, Ordering::Relaxed);
                self.known.store(true, Ordering::Relaxed);
                return Ok(i);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left <= backoff {
                return Err(KvError::NoActiveNode {
                    addresses: self.addresses.join(", "),
                    seconds: self.timeout_seconds,
                    last: last.map_or_else(|| "no node answered".into(), |e| e.to_string()),
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Node `i`'s `sys/leader` (no token: the endpoint needs none).
    async fn leader(&self, i: usize, deadline: Instant) -> Result<Leader, KvError> {
        let path = "sys/leader";
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .min(PROBE_TIMEOUT);
        let none = SecretString::new(String::new());
        let r = self
            .send_once(i, &none, Method::Get, path, None, timeout)
            .await
            .map_err(Failed::into_error)?;
        if !(200..300).contains(&r.status) {
            return Err(self.error_of(i, r.status, &r.body, path));
        }
        serde_json::from_slice(&r.body).map_err(|e| KvError::Malformed {
            address: self.addresses[i].clone(),
            path: path.into(),
            detail: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_harmless_repeats_are_idempotent() {
        assert!(idempotent(Method::Get, "secret/data/chanvault/seed"));
        assert!(idempotent(Method::List, "secret/metadata/chanvault/"));
        assert!(idempotent(Method::Post, "secret/metadata/chanvault/seed"));
        assert!(idempotent(Method::Put, "secret/destroy/chanvault/seed"));
        assert!(idempotent(Method::Post, "auth/token/renew-self"));
        assert!(!idempotent(Method::Post, "secret/data/chanvault/seed"));
        assert!(!idempotent(Method::Post, "auth/approle/login"));
        assert!(!idempotent(
            Method::Post,
            "auth/approle/role/chanvault/secret-id"
        ));
    }

    #[test]
    fn redirects_compare_scheme_host_and_port() {
        assert_eq!(
            origin("http://127.0.0.1:8200/v1/secret/data/x"),
            origin("http://127.0.0.1:8200")
        );
        assert_ne!(
            origin("https://127.0.0.1:8200"),
            origin("http://127.0.0.1:8200")
        );
        assert_ne!(
            origin("http://127.0.0.1:8201"),
            origin("http://127.0.0.1:8200")
        );
        assert_eq!(origin("https://BAO.lan/x"), origin("https://bao.lan:443"));
        assert_eq!(origin("not a url"), None);
    }
}
