//! restic key files at restic's own scrypt cost.
//!
//! rustic_core writes new keys with scrypt N=2^17, r=8 (128 MiB to derive),
//! and has no option for another cost. Every open of such a repository, by
//! chanvault or by stock restic, then needs 128 MiB for a moment: that was
//! the 145 MB peak of a freshly started `watch`. restic itself calibrates
//! its keys to at most 60 MiB and a fresh `restic init` writes N=2^15, r=8
//! (32 MiB). So after rustic has made the repository, its key is replaced by
//! one with restic's parameters: the same master key, a new salt, the file
//! format and the JSON from rustic_core's own `KeyFile`, sealed with the
//! AEAD restic uses for every file (the one the lock files use here).

use std::sync::Arc;

use rand::RngCore;
use rustic_core::repofile::{KeyFile, MasterKey};
use rustic_core::{FileType, ReadBackend, RusticResult, WriteBackend};
use zeroize::Zeroizing;

use super::crypt::encrypt_with;

/// scrypt cost of the keys chanvault writes: what `restic init` writes.
pub(super) const LOG_N: u8 = 15;
pub(super) const R: u32 = 8;
pub(super) const P: u32 = 1;
/// restic's salt length.
const SALT_LEN: usize = 64;

/// A key file (its bytes, and its name: the SHA-256 of them) that opens
/// `master` with `password`.
pub(super) fn make(
    password: &[u8],
    master: &MasterKey,
    hostname: Option<String>,
) -> Result<(String, Vec<u8>), String> {
    make_at(password, master, hostname, LOG_N)
}

fn make_at(
    password: &[u8],
    master: &MasterKey,
    hostname: Option<String>,
    log_n: u8,
) -> Result<(String, Vec<u8>), String> {
    let mut salt = vec![0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let params = scrypt::Params::new(log_n, R, P).map_err(|e| format!("scrypt parameters: {e}"))?;
    let mut user_key = Zeroizing::new([0u8; 64]);
    scrypt::scrypt(password, &salt, &params, user_key.as_mut_slice())
        .map_err(|e| format!("scrypt: {e}"))?;
    let plain = Zeroizing::new(
        serde_json::to_vec(master).map_err(|e| format!("cannot encode the master key: {e}"))?,
    );
    let data = encrypt_with(user_key.as_slice(), &plain)?;
    let file = KeyFile {
        hostname,
        username: None,
        created: Some(rustic_core::jiff::Zoned::now()),
        kdf: "scrypt".to_string(),
        n: 1u32 << log_n,
        r: R,
        p: P,
        data,
        salt,
    };
    let bytes = serde_json::to_vec(&file).map_err(|e| format!("cannot encode the key: {e}"))?;
    Ok((crate::scb::sha256_hex(&bytes), bytes))
}

/// The master key, from the repository's cheapest key file that `password`
/// opens: a repository may hold rustic's 128 MiB key next to ours (an
/// append-only server refuses to delete it), and which one is tried first
/// decides the memory a start costs. `None`: no key opens with it.
pub(super) fn unlock(
    be: &Arc<dyn WriteBackend>,
    password: &[u8],
) -> RusticResult<Option<MasterKey>> {
    let mut files = Vec::new();
    for id in be.list(FileType::Key)? {
        let bytes = be.read_full(FileType::Key, &id)?;
        match serde_json::from_slice::<KeyFile>(&bytes) {
            Ok(f) => files.push(f),
            // restic skips what it cannot read too; a usable key may follow.
            Err(e) => {
                tracing::warn!(key = %id, error = %e, "skipping a restic key file that does not parse")
            }
        }
    }
    files.sort_by_key(|f| {
        u64::from(f.n)
            .saturating_mul(u64::from(f.r))
            .saturating_mul(u64::from(f.p))
    });
    for f in files {
        match f.key_from_password(&password) {
            Ok(key) => {
                // `Mac` is not exported; its fields are. The random default
                // is overwritten before use.
                let (encrypt, k, r) = key.to_keys();
                let mut master = MasterKey {
                    encrypt,
                    ..MasterKey::default()
                };
                master.mac.k = k;
                master.mac.r = r;
                return Ok(Some(master));
            }
            // C001: the MAC does not check, i.e. another password (rustic's own test).
            Err(e) if e.is_code("C001") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_has_restics_cost_and_opens_with_the_password() {
        let master = MasterKey::default();
        let (name, bytes) = make_at(b"pw", &master, Some("node".into()), 4).expect("key");
        assert_eq!(name, crate::scb::sha256_hex(&bytes));
        let file: KeyFile = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            (file.kdf.as_str(), file.n, file.r, file.p),
            ("scrypt", 16, 8, 1)
        );
        let opened = file
            .key_from_password(b"pw")
            .expect("the password opens it");
        let (encrypt, k, r) = opened.to_keys();
        assert_eq!(
            (encrypt, k, r),
            (
                master.encrypt.clone(),
                master.mac.k.clone(),
                master.mac.r.clone()
            )
        );
        assert!(file.key_from_password(b"wrong").is_err());
        let (_, real) = make(b"pw", &master, None).expect("key");
        let real: KeyFile = serde_json::from_slice(&real).expect("json");
        assert_eq!((real.n, real.r, real.p), (1 << 15, 8, 1));
    }
}
