//! Signed manifests: what lets `restore` and `verify` tell the newest backup
//! from an old one a target replays with a new date, and a genuine manifest
//! from one a target wrote itself.
//!
//! Every backup the spool stores gets a sequence number from the journal
//! (never from the clock) and an Ed25519 signature over its [`Claims`]. The
//! signing key lives in `state_dir` ([`KEY_FILE`], 0600), created on the
//! first store; its public half (`ed25519:<hex>`) goes into the config's
//! `manifest_public_keys`, which a recovery machine has with the config.
//! The same file holds an HMAC key: the fingerprints published on targets
//! are keyed with it, so someone who guesses a node's channel set cannot
//! confirm the guess from a manifest or a restic tag.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hmac::{Hmac, Mac};
use zeroize::Zeroizing;

use crate::fsutil;

/// The keys' file in `state_dir`.
pub use crate::state_dir::MANIFEST_KEY_FILE as KEY_FILE;
/// How far in the future a manifest's `created` may be (clock skew between
/// the machine that wrote it and the one reading it).
pub const MAX_CLOCK_SKEW_SECS: i64 = 600;
const KEY_FILE_HEADER: &str = "# chanvault manifest keys: keep this file 0600; its public half is in the config (manifest_public_keys)";
const PUBLIC_PREFIX: &str = "ed25519:";
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a chanvault manifest key file ({reason}); move it aside to make a new key"
    )]
    Damaged { path: PathBuf, reason: &'static str },
    #[error("{path} can be read by others (mode {mode:o}); chmod 600 it")]
    TooOpen { path: PathBuf, mode: u32 },
}

/// The signing key and the fingerprint key of one state dir. Both are
/// zeroized on drop; `Debug` shows the public key only.
pub struct ManifestKeys {
    signing: SigningKey,
    fingerprint: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for ManifestKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManifestKeys({})", self.public())
    }
}

impl ManifestKeys {
    /// Load the keys of `state_dir`, creating them (0600) if there are none.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, KeyError> {
        if let Some(k) = Self::load(state_dir)? {
            return Ok(k);
        }
        let path = state_dir.join(KEY_FILE);
        let mut seed = Zeroizing::new([0u8; 32]);
        let mut fp = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, seed.as_mut());
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, fp.as_mut());
        let mut text = Zeroizing::new(String::with_capacity(512));
        text.push_str(KEY_FILE_HEADER);
        for (name, key) in [("signing", &seed), ("fingerprint", &fp)] {
            text.push('\n');
            text.push_str(name);
            text.push('=');
            for b in key.iter() {
                text.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
                text.push(char::from(HEX_DIGITS[usize::from(b & 0x0f)]));
            }
        }
        text.push('\n');
        match fsutil::create_secret_file(&path, text.as_bytes()) {
            Ok(()) => {}
            // Another process made it first: use that one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(KeyError::Io {
                    op: "create",
                    path,
                    source,
                });
            }
        }
        Self::load(state_dir)?.ok_or(KeyError::Damaged {
            path: state_dir.join(KEY_FILE),
            reason: "it vanished after it was written",
        })
    }

    /// The keys of `state_dir`, if it has any; never creates anything.
    pub fn load(state_dir: &Path) -> Result<Option<Self>, KeyError> {
        let path = state_dir.join(KEY_FILE);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KeyError::Io {
                    op: "open",
                    path,
                    source,
                });
            }
        };
        let io = |source| KeyError::Io {
            op: "read",
            path: path.clone(),
            source,
        };
        if let Some(mode) = fsutil::too_open(&file).map_err(io)? {
            return Err(KeyError::TooOpen { path, mode });
        }
        let text = crate::secret::read_secret_line_from(file).map_err(|_| KeyError::Damaged {
            path: path.clone(),
            reason: "unreadable, empty or too large",
        })?;
        let damaged = |reason| KeyError::Damaged {
            path: path.clone(),
            reason,
        };
        let field = |name: &str| -> Result<Zeroizing<[u8; 32]>, KeyError> {
            let value = text
                .expose()
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .ok_or(damaged("a key is missing"))?;
            let mut out = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(value.trim(), out.as_mut())
                .map_err(|_| damaged("a key is not 64 hex digits"))?;
            Ok(out)
        };
        let seed = field("signing")?;
        let fingerprint = field("fingerprint")?;
        Ok(Some(Self {
            signing: SigningKey::from_bytes(&seed),
            fingerprint,
        }))
    }

    /// The public key as the config and manifests write it: `ed25519:<hex>`.
    pub fn public(&self) -> String {
        public_text(&self.signing.verifying_key())
    }

    /// The fingerprint as targets may publish it: HMAC-SHA256 of the plain
    /// fingerprint under this state dir's key.
    pub fn keyed_fingerprint(&self, fingerprint: &str) -> String {
        let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.fingerprint.as_ref())
        else {
            unreachable!("HMAC takes a key of any length")
        };
        mac.update(b"chanvault-fingerprint/1\n");
        mac.update(fingerprint.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Sign `claims` (whose `signer` must be [`Self::public`]).
    pub fn sign(&self, claims: &Claims) -> String {
        hex::encode(self.signing.sign(claims.message().as_bytes()).to_bytes())
    }
}

fn public_text(k: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}", hex::encode(k.as_bytes()))
}

/// Parse `ed25519:<64 hex>`.
pub fn parse_public(text: &str) -> Result<VerifyingKey, String> {
    let hex_part = text
        .strip_prefix(PUBLIC_PREFIX)
        .ok_or_else(|| format!("{text:?} does not start with {PUBLIC_PREFIX}"))?;
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut bytes)
        .map_err(|_| format!("{text:?}: the key is not 64 hex digits"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| format!("{text:?} is not an Ed25519 public key"))
}

/// What a manifest's signature covers, in a fixed text form (no JSON
/// canonicalisation to get wrong).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub seq: u64,
    pub created: DateTime<Utc>,
    pub channels: usize,
    /// The keyed fingerprint, as published.
    pub fingerprint: String,
    /// The full SHA-256 of the sealed file.
    pub sealed_sha256: String,
    pub sealed_len: u64,
    /// The count-only suspect reason, as published.
    pub suspect: Option<String>,
    /// The node's identity key, when chanvault knew it.
    pub node: Option<String>,
    pub signer: String,
}

impl Claims {
    fn message(&self) -> String {
        format!(
            "chanvault-manifest/2\nseq={}\ncreated={}\nchannels={}\nfingerprint={}\nsealed_sha256={}\nsealed_len={}\nsuspect={}\nnode={}\nsigner={}\n",
            self.seq,
            self.created.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            self.channels,
            self.fingerprint,
            self.sealed_sha256,
            self.sealed_len,
            self.suspect.as_deref().unwrap_or("").replace('\n', " "),
            self.node.as_deref().unwrap_or(""),
            self.signer,
        )
    }
}

/// The public keys whose manifests a reader believes.
#[derive(Debug, Clone, Default)]
pub struct Trusted {
    keys: Vec<VerifyingKey>,
}

impl Trusted {
    /// The state dir's own key (if it has one) and the config's list.
    pub fn new(own: Option<&ManifestKeys>, configured: &[String]) -> Result<Self, String> {
        let mut keys: Vec<VerifyingKey> =
            own.map(|k| k.signing.verifying_key()).into_iter().collect();
        for text in configured {
            let k = parse_public(text)?;
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        Ok(Self { keys })
    }

    /// From `state_dir` (read only) and the config's list.
    pub fn of(state_dir: &Path, configured: &[String]) -> Result<Self, String> {
        let own = ManifestKeys::load(state_dir).map_err(|e| e.to_string())?;
        Self::new(own.as_ref(), configured)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Check a signed manifest: its signer is trusted (or, with no trusted
    /// key at all, merely consistent), the signature holds, and it is not
    /// dated in the future. The error says which, in a few words.
    pub fn check(
        &self,
        claims: &Claims,
        signature: &str,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let key =
            parse_public(&claims.signer).map_err(|e| format!("its signer is unreadable: {e}"))?;
        if !self.keys.is_empty() && !self.keys.contains(&key) {
            return Err(format!(
                "it is signed by {}, which is not a trusted key (manifest_public_keys)",
                short_key(&claims.signer)
            ));
        }
        let mut sig = [0u8; 64];
        hex::decode_to_slice(signature, &mut sig)
            .map_err(|_| "its signature is not 128 hex digits".to_owned())?;
        key.verify(claims.message().as_bytes(), &Signature::from_bytes(&sig))
            .map_err(|_| {
                "its signature does not match what it says (edited or forged)".to_owned()
            })?;
        if claims.created > now + chrono::Duration::seconds(MAX_CLOCK_SKEW_SECS) {
            return Err(format!(
                "it is dated {} (in the future)",
                claims.created.format("%Y-%m-%d %H:%M:%SZ")
            ));
        }
        Ok(())
    }
}

/// `ed25519:` and the first 12 hex digits, for messages.
pub fn short_key(text: &str) -> String {
    text.chars().take(PUBLIC_PREFIX.len() + 12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(signer: String) -> Claims {
        Claims {
            seq: 7,
            created: "2026-01-02T03:04:05.678Z".parse().unwrap(),
            channels: 3,
            fingerprint: "ab".repeat(32),
            sealed_sha256: "cd".repeat(32),
            sealed_len: 400,
            suspect: None,
            node: None,
            signer,
        }
    }

    #[test]
    fn a_signature_holds_only_for_what_was_signed_by_a_trusted_key() {
        let d = tempfile::tempdir().unwrap();
        let k = ManifestKeys::load_or_create(d.path()).unwrap();
        let again = ManifestKeys::load_or_create(d.path()).unwrap();
        assert_eq!(k.public(), again.public(), "the key is kept, not remade");
        let c = claims(k.public());
        let sig = k.sign(&c);
        let now = Utc::now();
        let trusted = Trusted::new(Some(&k), &[]).unwrap();
        trusted.check(&c, &sig, now).unwrap();
        for edit in [
            Claims {
                seq: 8,
                ..c.clone()
            },
            Claims {
                created: "2099-01-01T00:00:00Z".parse().unwrap(),
                ..c.clone()
            },
            Claims {
                suspect: Some("shrunk".into()),
                ..c.clone()
            },
            Claims {
                sealed_sha256: "ce".repeat(32),
                ..c.clone()
            },
        ] {
            assert!(trusted.check(&edit, &sig, now).is_err(), "{edit:?}");
        }
        // Signed again by another key: consistent, but not trusted.
        let other_dir = tempfile::tempdir().unwrap();
        let other = ManifestKeys::load_or_create(other_dir.path()).unwrap();
        let forged = claims(other.public());
        let e = trusted
            .check(&forged, &other.sign(&forged), now)
            .unwrap_err();
        assert!(e.contains("not a trusted key"), "{e}");
        // With no trusted key at all, a self-consistent manifest passes.
        Trusted::default()
            .check(&forged, &other.sign(&forged), now)
            .unwrap();
        // The future is refused even when signed.
        let future = Claims {
            created: now + chrono::Duration::days(365),
            ..claims(k.public())
        };
        let e = trusted.check(&future, &k.sign(&future), now).unwrap_err();
        assert!(e.contains("in the future"), "{e}");
    }

    #[test]
    fn the_key_file_is_0600_and_never_in_debug() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let k = ManifestKeys::load_or_create(d.path()).unwrap();
        let path = d.path().join(KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        let seed = text
            .lines()
            .find_map(|l| l.strip_prefix("signing="))
            .unwrap();
        assert!(!format!("{k:?}").contains(seed));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            ManifestKeys::load(d.path()),
            Err(KeyError::TooOpen { .. })
        ));
    }

    #[test]
    fn keyed_fingerprints_differ_per_state_dir() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let ka = ManifestKeys::load_or_create(a.path()).unwrap();
        let kb = ManifestKeys::load_or_create(b.path()).unwrap();
        let fp = "00".repeat(32);
        assert_eq!(ka.keyed_fingerprint(&fp), ka.keyed_fingerprint(&fp));
        assert_ne!(ka.keyed_fingerprint(&fp), kb.keyed_fingerprint(&fp));
        assert_ne!(ka.keyed_fingerprint(&fp), fp);
    }
}
