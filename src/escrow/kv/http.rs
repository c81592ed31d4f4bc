//! One request to OpenBao: the token header, size-capped zeroizing reply
//! bodies, status codes turned into errors that name the address and path.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

use super::{KvClient, KvError};
use crate::secret::SecretString;

/// What one attempt at one node got back.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Zeroizing<Vec<u8>>,
    /// The `Location` header (a standby's redirect to the active node).
    pub(super) location: Option<String>,
}

/// Why one attempt failed, by what it tells about the request.
pub(super) enum Failed {
    /// Not a network matter (the config, the token's characters): no other
    /// node would do better.
    Fatal(KvError),
    /// No connection was made: the node never saw the request.
    NotSent(KvError),
    /// The request may have reached the node, and a write may have been
    /// applied even though no reply came back.
    InDoubt(KvError),
}

impl Failed {
    pub(super) fn into_error(self) -> KvError {
        match self {
            Failed::Fatal(e) | Failed::NotSent(e) | Failed::InDoubt(e) => e,
        }
    }
}

/// Largest reply we accept (a KV item is a few KiB).
const REPLY_LIMIT: usize = 4 << 20;

/// The reply buffer's first size when the server sends no length.
const REPLY_START: usize = 16 << 10;

#[derive(Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
    Put,
    List,
    Delete,
}

impl KvClient {
    pub(super) fn malformed(&self, path: &str, detail: &str) -> KvError {
        KvError::Malformed {
            address: self.address().to_owned(),
            path: path.to_owned(),
            detail: detail.to_owned(),
        }
    }

    /// Send with `token` and parse the JSON reply (`None` when it is empty).
    /// Calls on the session pass [`KvClient::session_token`]; logging in
    /// and renewing pass the token they are about to adopt or renew (an
    /// empty one sends none).
    pub(super) async fn call<T: serde::de::DeserializeOwned>(
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

    pub(super) async fn raw(
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
    pub(super) async fn session_token(&mut self) -> Result<SecretString, KvError> {
        self.ensure_token().await?;
        self.current_token()
    }

    /// A copy of the current token, as it is.
    pub(super) fn current_token(&self) -> Result<SecretString, KvError> {
        match &self.state {
            Some(s) => Ok(SecretString::new(s.token.expose().to_owned())),
            None => Err(KvError::Config("not logged in to OpenBao".into())),
        }
    }

    /// One attempt at node `node` (an index into `escrow.address`), within
    /// `timeout`. Errors name that node, and say whether the request may
    /// have reached it ([`Failed`]).
    pub(super) async fn send_once(
        &self,
        node: usize,
        token: &SecretString,
        method: Method,
        path: &str,
        body: Option<&bytes::Bytes>,
        timeout: Duration,
    ) -> Result<Reply, Failed> {
        let address = &self.addresses[node];
        let url = format!("{address}/v1/{path}");
        let m = match method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
            Method::List => reqwest::Method::from_bytes(b"LIST")
                .map_err(|e| Failed::Fatal(KvError::Config(format!("LIST method: {e}"))))?,
        };
        let mut req = self.http.request(m, &url).timeout(timeout);
        if !token.expose().is_empty() {
            let mut v = reqwest::header::HeaderValue::from_str(token.expose()).map_err(|_| {
                Failed::Fatal(KvError::Config(format!(
                    "the token from {} contains characters not allowed in an HTTP header",
                    self.source_desc()
                )))
            })?;
            v.set_sensitive(true);
            req = req.header("X-Vault-Token", v);
        }
        if let Some(b) = body {
            // A clone of `Bytes` shares the zeroizing buffer: no copy.
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.clone());
        }
        let unreachable = |e: reqwest::Error| {
            if e.is_timeout() {
                Failed::InDoubt(KvError::Timeout {
                    address: address.clone(),
                    path: path.to_owned(),
                    seconds: self.timeout_seconds,
                })
            } else if e.is_decode() || e.is_body() {
                Failed::InDoubt(KvError::Malformed {
                    address: address.clone(),
                    path: path.to_owned(),
                    detail: crate::text::error_chain(&e),
                })
            } else {
                let chain = crate::text::error_chain(&e);
                let error = KvError::Unreachable {
                    address: address.clone(),
                    path: path.to_owned(),
                    detail: match &self.proxy {
                        Some(p) => format!("through the proxy {p}: {chain}"),
                        None => chain,
                    },
                };
                // No connection: the request never left this process.
                if e.is_connect() {
                    Failed::NotSent(error)
                } else {
                    Failed::InDoubt(error)
                }
            }
        };
        let mut resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let expected = resp.content_length().map_or(REPLY_START, |n| {
            usize::try_from(n).map_or(REPLY_LIMIT, |n| n.min(REPLY_LIMIT))
        });
        let mut buf = Zeroizing::new(Vec::with_capacity(expected));
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            if buf.len() + chunk.len() > REPLY_LIMIT {
                return Err(Failed::InDoubt(KvError::Malformed {
                    address: address.clone(),
                    path: path.to_owned(),
                    detail: "reply larger than 4 MiB".into(),
                }));
            }
            append_zeroizing(&mut buf, &chunk);
            // hyper's copy: wiped too when it is ours alone (best effort).
            if let Ok(mut own) = chunk.try_into_mut() {
                own.as_mut().zeroize();
            }
        }
        tracing::trace!(address = %address, path, status, bytes = buf.len(), "OpenBao reply");
        Ok(Reply {
            status,
            body: buf,
            location,
        })
    }

    pub(super) fn check_status(&self, status: u16, body: &[u8], path: &str) -> Result<(), KvError> {
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
                address: self.address().to_owned(),
                path,
            },
            403 => KvError::Refused {
                address: self.address().to_owned(),
                source_desc: self.source_desc(),
                path,
            },
            _ if sealed => KvError::Sealed {
                address: self.address().to_owned(),
                path,
            },
            _ => KvError::Server {
                address: self.address().to_owned(),
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

/// The request body handed to reqwest: the zeroizing buffer itself, not a
/// copy, so it is wiped when reqwest drops it after sending. (hyper and
/// rustls copy the bytes on their way to the socket; those copies we
/// cannot reach.)
pub(super) fn request_body(body: Zeroizing<Vec<u8>>) -> bytes::Bytes {
    bytes::Bytes::from_owner(body)
}

/// Append to a zeroizing buffer without letting the `Vec` reallocate in
/// place, which would free the old block unwiped: when it is full, the
/// bytes move into a new zeroizing buffer (at least twice as large) and the
/// old one is wiped as it drops.
fn append_zeroizing(buf: &mut Zeroizing<Vec<u8>>, chunk: &[u8]) {
    if buf.capacity() - buf.len() < chunk.len() {
        let want = (buf.len() + chunk.len()).max(buf.capacity() * 2);
        let mut bigger = Zeroizing::new(Vec::with_capacity(want));
        bigger.extend_from_slice(buf);
        *buf = bigger;
    }
    buf.extend_from_slice(chunk);
}

/// Serialize into a zeroizing buffer (bodies carrying secrets).
pub(super) fn serialize_zeroizing<T: serde::Serialize>(
    v: &T,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut buf = Zeroizing::new(Vec::with_capacity(1024));
    serde_json::to_writer(&mut *buf, v).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// A JSON object of string fields in a zeroizing buffer.
pub fn json_body(fields: &[(&str, &str)]) -> Result<Zeroizing<Vec<u8>>, KvError> {
    let map: BTreeMap<&str, &str> = fields.iter().copied().collect();
    serialize_zeroizing(&map).map_err(KvError::Config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_body_is_the_zeroizing_buffer_itself() {
        let body = json_body(&[("seed", "abandon ability able about")]).unwrap();
        let at = body.as_ptr();
        let sent = request_body(body);
        // The same memory, not a copy: it is wiped when reqwest drops it.
        assert_eq!(sent.as_ptr(), at);
        assert_eq!(&sent[..], br#"{"seed":"abandon ability able about"}"#);
    }

    #[test]
    fn the_reply_buffer_grows_only_into_new_zeroizing_buffers() {
        let mut buf: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::with_capacity(4));
        append_zeroizing(&mut buf, b"ab");
        let at = buf.as_ptr();
        append_zeroizing(&mut buf, b"cd");
        // It fit: the same buffer.
        assert_eq!((buf.as_ptr(), buf.capacity()), (at, 4));
        append_zeroizing(&mut buf, b"efghi");
        assert_eq!(&buf[..], b"abcdefghi");
        assert!(buf.capacity() >= 9);
        for _ in 0..100 {
            append_zeroizing(&mut buf, b"0123456789");
        }
        assert_eq!(buf.len(), 1009);
    }
}
