//! lnd's static channel backups (SCB), read by us: the encryption key
//! (`key`), decryption, and strict parsers of the Multi (`channel.backup`)
//! and Single plaintexts (`multi`, `single`, `address`).
//!
//! This is an implementation of its own, from lnd's sources (cited in
//! proto/NOTES.md §8). The LND simulator (`sim::backup`) has a separate
//! writer and reader of the same format; neither uses the other, so each
//! checks the other in the tests.
//!
//! A decrypted backup lists every peer and channel of the node: plaintexts
//! stay in `Zeroizing` buffers and are wiped when dropped.

mod address;
mod key;
mod multi;
mod restorable;
mod single;
mod wire;

// The cross-checks need the simulator's writer.
#[cfg(all(test, feature = "sim"))]
mod tests;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

pub use address::{Address, ONION_V2_LEN, ONION_V3_LEN};
pub use key::{BackupKey, FAMILY_BASE_ENCRYPTION, KeyError, PURPOSE};
pub use multi::{MULTI_VERSION, Multi};
pub use restorable::{
    Concern, FIRST_LND_READING_CLOSE_TX_INPUTS, LndVersion, concerns, first_lnd_reading,
};
pub use single::{
    CLOSE_TX_INPUTS_BIT, ChannelType, CloseTxInputs, KeyLocator, LocalConfig, MIN_SINGLE_LEN,
    RemoteConfig, ShachainRoot, ShortChannelId, Single,
};
pub use wire::{Kind as ParseErrorKind, ParseError};

/// XChaCha20 nonce, prepended to every packed backup and used as its
/// associated data (lnd `lnencrypt.EncryptPayloadToWriter`).
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag at the end of the ciphertext.
pub const TAG_LEN: usize = 16;

/// Why a packed backup did not decrypt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecryptError {
    #[error(
        "the backup is {len} bytes, shorter than lnd's nonce and tag ({min} bytes): \
         it is not an lnd static channel backup"
    )]
    TooShort { len: usize, min: usize },
    #[error(
        "backup key {fingerprint} does not open this backup: it was made by another node \
         (another seed or network), or the file was altered"
    )]
    WrongKey { fingerprint: String },
}

/// Why a packed backup could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
    #[error("the backup decrypted, but its contents are not a valid lnd backup: {0}")]
    Parse(#[from] ParseError),
}

/// Decrypt a packed Single or Multi: `nonce (24) || ciphertext || tag (16)`,
/// the nonce also the associated data.
pub fn decrypt(key: &BackupKey, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    let min = NONCE_LEN + TAG_LEN;
    if blob.len() < min {
        return Err(DecryptError::TooShort {
            len: blob.len(),
            min,
        });
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key.expose()));
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: nonce,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| DecryptError::WrongKey {
            fingerprint: key.fingerprint(),
        })
}

/// Decrypt and parse a packed Multi (the `channel.backup` file).
pub fn open_multi(key: &BackupKey, blob: &[u8]) -> Result<Multi, OpenError> {
    Ok(Multi::parse(&decrypt(key, blob)?)?)
}

/// Decrypt and parse one packed Single (`ChannelBackup.chan_backup`).
pub fn open_single(key: &BackupKey, blob: &[u8]) -> Result<Single, OpenError> {
    Ok(Single::parse(&decrypt(key, blob)?)?)
}
