//! KV v2 data writes: check-and-set, and what a lost reply means.
//!
//! A write whose reply never came (the connection dropped, a timeout, the
//! active node killed between applying it and answering) may or may not
//! have been applied. Sending it again blindly could add a second version;
//! giving up leaves the caller guessing, and `keys put` would then say the
//! item exists. Check-and-set decides instead:
//!
//! - the item's metadata is read again (from the active node: a new one
//!   after a failover, see `cluster`);
//! - still at version `cas`: nothing was applied, and the same body is sent
//!   again with the same `cas`. OpenBao applies a `cas` write only while
//!   the item is at that version, so of all the copies at most one lands;
//! - version `cas + 1` exists and holds exactly our fields: our write was
//!   applied, and its version is returned like any other (the caller
//!   counts it once and audits it once);
//! - anything else is someone else's write: a check-and-set conflict, as
//!   without the lost reply.
//!
//! A copy applied late (after the re-read found nothing) makes the repeat
//! fail with a conflict, and the same check then finds it. Another writer
//! that wrote the very same fields at `cas + 1` is indistinguishable from
//! us, and harmless: the item holds what we meant to write, once.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::http::{Method, serialize_zeroizing};
use super::{KvClient, KvError, Read};
use crate::secret::SecretString;

/// How many times a write whose reply was lost is sent again.
const RESENDS: usize = 3;

#[derive(Deserialize)]
struct WriteReply {
    data: Option<WriteData>,
}

#[derive(Deserialize)]
struct WriteData {
    version: u64,
}

/// What the item says about a write that got no reply.
enum Applied {
    /// Version `cas + 1` holds our fields.
    Yes(u64),
    /// The item is still at `cas`.
    No,
    /// Someone else wrote.
    Other,
}

impl KvClient {
    /// Write a new version with check-and-set (`cas = 0`: create only),
    /// finding out with a re-read whether a write whose reply was lost was
    /// applied (see the module's comment).
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
        let mut in_doubt = false;
        let mut resent = 0;
        loop {
            let e = match self.put_once(&path, bytes.clone(), cas).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let conflict = matches!(e, KvError::CasConflict { .. });
            if !(e.in_doubt() || (in_doubt && conflict)) {
                return Err(e);
            }
            in_doubt = true;
            tracing::debug!(error = %e, "no reply to a write; reading {item} again");
            match self.applied(item, cas, fields).await {
                Ok(Applied::Yes(v)) => {
                    tracing::info!(
                        "OpenBao applied the write of {path} as version {v}, though its reply was lost"
                    );
                    return Ok(v);
                }
                Ok(Applied::No) if !conflict && resent < RESENDS => resent += 1,
                Ok(Applied::No) => return Err(e),
                Ok(Applied::Other) => return Err(self.conflict(&path, cas)),
                // Cannot tell: the write's own error, which says to check
                // and retry (a retry is safe: it is check-and-set too).
                Err(_) => return Err(e),
            }
        }
    }

    async fn put_once(
        &mut self,
        path: &str,
        bytes: zeroize::Zeroizing<Vec<u8>>,
        cas: u64,
    ) -> Result<u64, KvError> {
        let sent = async {
            let token = self.session_token().await?;
            self.call(&token, Method::Post, path, Some(bytes)).await
        }
        .await;
        let reply: Option<WriteReply> = match sent {
            Err(KvError::Server {
                status: 400,
                message,
                ..
            }) if message.contains("check-and-set") => {
                return Err(self.conflict(path, cas));
            }
            other => other?,
        };
        reply
            .and_then(|r| r.data)
            .map(|d| d.version)
            .ok_or_else(|| self.malformed(path, "no version in the write reply"))
    }

    fn conflict(&self, path: &str, cas: u64) -> KvError {
        KvError::CasConflict {
            address: self.address().to_owned(),
            path: path.to_owned(),
            expected: cas,
        }
    }

    /// Whether our write of `fields` with `cas` is in the item.
    async fn applied(
        &mut self,
        item: &str,
        cas: u64,
        fields: &[(&str, &str)],
    ) -> Result<Applied, KvError> {
        let current = self.metadata(item).await?.map_or(0, |m| m.current_version);
        if current == cas {
            return Ok(Applied::No);
        }
        if current < cas {
            return Ok(Applied::Other);
        }
        Ok(match self.read(item, Some(cas + 1)).await? {
            Read::Found { version, data, .. } if version == cas + 1 && same(&data, fields) => {
                Applied::Yes(version)
            }
            _ => Applied::Other,
        })
    }
}

/// The stored fields are exactly ours.
fn same(data: &BTreeMap<String, SecretString>, fields: &[(&str, &str)]) -> bool {
    let ours: BTreeMap<&str, &str> = fields.iter().copied().collect();
    data.len() == ours.len()
        && ours
            .iter()
            .all(|(k, v)| data.get(*k).is_some_and(|d| d.expose() == *v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exactly_our_fields_are_our_write() {
        let stored: BTreeMap<String, SecretString> = [("kind", "bip39"), ("secret", "abandon")]
            .iter()
            .map(|(k, v)| (k.to_string(), SecretString::new(v.to_string())))
            .collect();
        assert!(same(&stored, &[("secret", "abandon"), ("kind", "bip39")]));
        assert!(!same(&stored, &[("secret", "abandon")]));
        assert!(!same(&stored, &[("kind", "bip39"), ("secret", "ability")]));
        assert!(!same(
            &stored,
            &[
                ("kind", "bip39"),
                ("secret", "abandon"),
                ("passphrase", "x")
            ]
        ));
    }
}
