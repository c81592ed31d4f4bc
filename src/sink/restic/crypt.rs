//! restic's authenticated encryption, for every file and blob chanvault
//! writes itself: IV(16) || AES-256-CTR ciphertext || Poly1305-AES tag(16)
//! under the repository's master key (restic's design document, "Keys,
//! Encryption and MAC").

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use aes256ctr_poly1305aes::aead::AeadInPlace;
use rand::RngCore;

use super::session::RepoKey;

/// The bytes encryption adds to a plaintext.
pub(super) const OVERHEAD: usize = 32;

pub(super) type Cipher = Aes256CtrPoly1305Aes;

pub(super) fn cipher(key: &RepoKey) -> Result<Cipher, String> {
    cipher_from(&key.aead_key())
}

/// The AEAD for a 64-byte key in restic's layout (AES key, Poly1305 k, r).
fn cipher_from(k: &[u8]) -> Result<Cipher, String> {
    if k.len() != 64 {
        return Err("the repository key has the wrong length".into());
    }
    Ok(Cipher::new(aes256ctr_poly1305aes::Key::from_slice(k)))
}

/// Encrypt `plain` onto the end of `out` (a fresh random IV each time).
pub(super) fn append_sealed(
    cipher: &Cipher,
    out: &mut Vec<u8>,
    plain: &[u8],
) -> Result<(), String> {
    let mut nonce = aes256ctr_poly1305aes::Nonce::default();
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    out.reserve(plain.len() + OVERHEAD);
    out.extend_from_slice(&nonce);
    let at = out.len();
    out.extend_from_slice(plain);
    let tag = cipher
        .encrypt_in_place_detached(&nonce, &[], &mut out[at..])
        .map_err(|_| "cannot encrypt".to_string())?;
    out.extend_from_slice(&tag);
    Ok(())
}

/// An unpacked file (lock, key, index, snapshot), encrypted.
pub(super) fn encrypt(key: &RepoKey, plain: &[u8]) -> Result<Vec<u8>, String> {
    encrypt_with(&key.aead_key(), plain)
}

/// [`encrypt`] under a raw 64-byte key (a key file's scrypt output).
pub(super) fn encrypt_with(key: &[u8], plain: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
    append_sealed(&cipher_from(key)?, &mut out, plain)?;
    Ok(out)
}
