//! lnd's aezeed cipher seed, read and written here (lnd `aezeed/cipherseed.go`;
//! the facts we rely on are in proto/NOTES.md §7).
//!
//! A seed is 19 plaintext bytes: internal version (1) ‖ birthday (2,
//! big-endian days since the bitcoin genesis block) ‖ entropy (16). They are
//! encrypted with AEZ (τ = 4 bytes, empty nonce, associated data = external
//! version ‖ salt) under `scrypt(passphrase, salt, N = 32768, r = 8, p = 1)`,
//! and written as external version (1) ‖ ciphertext (23) ‖ salt (5) ‖
//! CRC-32C of those 29 bytes (4): 33 bytes, 24 words of 11 bits from the
//! BIP-39 English list. aezeed is not BIP-39: only the word list is shared,
//! and the wallet's BIP-32 master key is made from the 16 entropy bytes
//! directly.
//!
//! Secrets: the entropy, the mnemonic, the scrypt key and every plaintext
//! buffer are wiped when dropped; none of them has `Display`, `Clone` or a
//! `Debug` that shows them; errors never carry a word or the passphrase.

use std::fmt;
use std::str::FromStr;

use bitcoin::Network;
use bitcoin::bip32::{ChildNumber, Xpriv, Xpub};
use bitcoin::secp256k1::{PublicKey, Secp256k1};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::aez;

/// The only external version lnd writes and reads.
pub const CIPHER_SEED_VERSION: u8 = 0;

/// Internal versions lnd knows (`keychain.IsKnownVersion`): 0 is the legacy
/// key derivation, 1 (`KeyDerivationVersionTaproot`) adds BIP-86 taproot
/// accounts. Both derive the node and backup keys the same way.
pub const KNOWN_INTERNAL_VERSIONS: [u8; 2] = [0, 1];

/// The internal version lnd writes into new seeds (since taproot wallets).
pub const CURRENT_INTERNAL_VERSION: u8 = 1;
/// Bytes of entropy: the wallet's BIP-32 seed.
pub const ENTROPY_SIZE: usize = 16;
/// Bytes of scrypt salt, stored in the clear in the mnemonic.
pub const SALT_SIZE: usize = 5;
/// Words in a mnemonic.
pub const NUM_WORDS: usize = 24;
/// Seconds since the epoch of the bitcoin genesis block's timestamp, which
/// lnd counts birthdays from.
pub const BITCOIN_GENESIS_UNIX: i64 = 1_231_006_505;

/// version ‖ birthday ‖ entropy.
const DECIPHERED_SIZE: usize = 1 + 2 + ENTROPY_SIZE;
/// AEZ's authenticator: four bytes of zeros that must come back.
const TAU: usize = 4;
/// version ‖ ciphertext ‖ salt ‖ checksum.
const ENCIPHERED_SIZE: usize = 1 + DECIPHERED_SIZE + TAU + SALT_SIZE + 4;
const SALT_OFFSET: usize = 1 + DECIPHERED_SIZE + TAU;
const CHECKSUM_OFFSET: usize = SALT_OFFSET + SALT_SIZE;
const BITS_PER_WORD: usize = 11;
/// lnd's passphrase when the user gives none.
const DEFAULT_PASSPHRASE: &[u8] = b"aezeed";
/// scrypt's N = 2^15 = 32768, fixed by cipher seed version 0.
const SCRYPT_LOG_N: u8 = 15;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const KEY_LEN: usize = 32;
const SECONDS_PER_DAY: i64 = 86_400;

/// lnd's BIP-43 purpose for its key families (`keychain.BIP0043Purpose`).
const LND_PURPOSE: u32 = 1017;
/// `keychain.KeyFamilyNodeKey`: the node's identity key lives here.
const FAMILY_NODE_KEY: u32 = 6;
/// `keychain.KeyFamilyStaticBackup` (later `KeyFamilyBaseEncryption`): the
/// key that encrypts channel backups.
const FAMILY_STATIC_BACKUP: u32 = 7;

/// Everything that can go wrong between a typed mnemonic and a seed. No
/// variant carries a word or the passphrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    #[error("an aezeed mnemonic has 24 words; this one has {0}")]
    WordCount(usize),
    #[error(
        "word {position} of the mnemonic is not in the aezeed word list (BIP-39 English); check its spelling"
    )]
    UnknownWord { position: usize },
    #[error("the mnemonic's checksum does not match: a word is mistyped, missing or out of order")]
    BadChecksum,
    #[error("this seed has external version {0}; only version 0 is known, so it cannot be opened")]
    UnknownExternalVersion(u8),
    #[error(
        "this seed has internal version {0}; only versions 0 and 1 are known, so its keys cannot be derived"
    )]
    UnknownInternalVersion(u8),
    #[error("the passphrase does not open this seed")]
    WrongPassphrase,
    #[error("the system's random number source failed")]
    Random,
    #[error("scrypt failed: {0}")]
    Kdf(&'static str),
    #[error("BIP-32 derivation from the seed failed: {0}")]
    Derivation(String),
}

/// A deciphered aezeed: what lnd's wallet is made from. Wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct CipherSeed {
    internal_version: u8,
    birthday: u16,
    entropy: [u8; ENTROPY_SIZE],
    salt: [u8; SALT_SIZE],
}

impl fmt::Debug for CipherSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CipherSeed")
            .field("internal_version", &self.internal_version)
            .field("birthday", &self.birthday)
            .field("entropy", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// 24 words as indices into the word list. Wiped on drop; no `Display`, and
/// its `Debug` shows nothing: use [`Mnemonic::phrase`] to show it to a user.
#[derive(PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Mnemonic {
    words: [u16; NUM_WORDS],
}

impl fmt::Debug for Mnemonic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mnemonic(<redacted>)")
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: the
/// checksum lnd puts at the end of the 33 bytes. 29 bytes do not need a table.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The 32-byte AEZ key: scrypt of the passphrase ("aezeed" if empty).
fn derive_key(
    passphrase: &[u8],
    salt: &[u8; SALT_SIZE],
    log_n: u8,
) -> Result<Zeroizing<[u8; KEY_LEN]>, SeedError> {
    let pass = if passphrase.is_empty() {
        DEFAULT_PASSPHRASE
    } else {
        passphrase
    };
    let params = scrypt::Params::new(log_n, SCRYPT_R, SCRYPT_P)
        .map_err(|_| SeedError::Kdf("invalid parameters"))?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    scrypt::scrypt(pass, salt, &params, key.as_mut_slice())
        .map_err(|_| SeedError::Kdf("invalid output length"))?;
    Ok(key)
}

/// external version ‖ salt: what AEZ authenticates besides the plaintext.
fn associated_data(version: u8, salt: &[u8; SALT_SIZE]) -> [u8; 1 + SALT_SIZE] {
    let mut ad = [0u8; 1 + SALT_SIZE];
    ad[0] = version;
    ad[1..].copy_from_slice(salt);
    ad
}

impl Mnemonic {
    /// 33 bytes as 24 big-endian 11-bit word indices.
    fn from_bytes(bytes: &[u8; ENCIPHERED_SIZE]) -> Mnemonic {
        let mut words = [0u16; NUM_WORDS];
        for (w, word) in words.iter_mut().enumerate() {
            for bit in w * BITS_PER_WORD..(w + 1) * BITS_PER_WORD {
                let b = (bytes[bit / 8] >> (7 - bit % 8)) & 1;
                *word = (*word << 1) | u16::from(b);
            }
        }
        Mnemonic { words }
    }

    /// The 33 bytes the words spell.
    fn to_bytes(&self) -> Zeroizing<[u8; ENCIPHERED_SIZE]> {
        let mut bytes = Zeroizing::new([0u8; ENCIPHERED_SIZE]);
        for (w, word) in self.words.iter().enumerate() {
            for k in 0..BITS_PER_WORD {
                if (word >> (BITS_PER_WORD - 1 - k)) & 1 == 1 {
                    let bit = w * BITS_PER_WORD + k;
                    bytes[bit / 8] |= 1 << (7 - bit % 8);
                }
            }
        }
        bytes
    }

    /// The mnemonic of the first 29 bytes (version ‖ ciphertext ‖ salt) with
    /// the right checksum appended: lets a fuzzer reach AEZ, which random
    /// words almost never do (one in 2^32 passes the checksum).
    #[doc(hidden)]
    pub fn with_checksum_for_tests(body: &[u8; CHECKSUM_OFFSET]) -> Mnemonic {
        let mut bytes = Zeroizing::new([0u8; ENCIPHERED_SIZE]);
        bytes[..CHECKSUM_OFFSET].copy_from_slice(body);
        let checksum = crc32c(body);
        bytes[CHECKSUM_OFFSET..].copy_from_slice(&checksum.to_be_bytes());
        Mnemonic::from_bytes(&bytes)
    }

    /// Whether the last four bytes are the CRC-32C of the first 29: the
    /// words are an aezeed as typed (no passphrase needed to tell).
    pub fn checksum_ok(&self) -> bool {
        let bytes = self.to_bytes();
        let mut checksum = [0u8; 4];
        checksum.copy_from_slice(&bytes[CHECKSUM_OFFSET..]);
        crc32c(&bytes[..CHECKSUM_OFFSET]) == u32::from_be_bytes(checksum)
    }

    /// The words, in order.
    pub fn words(&self) -> impl Iterator<Item = &'static str> + '_ {
        let list = bip39::Language::English.word_list();
        self.words
            .iter()
            .map(move |&i| list[usize::from(i) & 0x7ff])
    }

    /// The words separated by single spaces, for showing to the user once.
    pub fn phrase(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(NUM_WORDS * 9));
        for (n, word) in self.words().enumerate() {
            if n > 0 {
                out.push(' ');
            }
            out.push_str(word);
        }
        out
    }
}

/// Parses 24 words separated by any whitespace, in any letter case (lncli
/// lowercases what the user types before lnd sees it).
impl FromStr for Mnemonic {
    type Err = SeedError;

    fn from_str(text: &str) -> Result<Mnemonic, SeedError> {
        let count = text.split_whitespace().count();
        if count != NUM_WORDS {
            return Err(SeedError::WordCount(count));
        }
        let mut words = [0u16; NUM_WORDS];
        for (n, (slot, word)) in words.iter_mut().zip(text.split_whitespace()).enumerate() {
            let lower = Zeroizing::new(word.to_ascii_lowercase());
            *slot = bip39::Language::English
                .find_word(&lower)
                .ok_or(SeedError::UnknownWord { position: n + 1 })?;
        }
        Ok(Mnemonic { words })
    }
}

/// Days since the genesis block for a time in seconds since the epoch, as
/// lnd counts a seed's birthday. Saturates where lnd's `uint16` would wrap
/// (before 2009, after 2188).
pub fn birthday_from_unix(unix_seconds: i64) -> u16 {
    let days = (unix_seconds - BITCOIN_GENESIS_UNIX).div_euclid(SECONDS_PER_DAY);
    u16::try_from(days.max(0)).unwrap_or(u16::MAX)
}

/// lnd's coin type: 0 on mainnet, 1 on every test network
/// (`chainreg/chainparams.go`).
fn coin_type(network: Network) -> u32 {
    if network == Network::Bitcoin { 0 } else { 1 }
}

fn hardened(index: u32) -> Result<ChildNumber, SeedError> {
    ChildNumber::from_hardened_idx(index).map_err(|e| SeedError::Derivation(e.to_string()))
}

fn normal(index: u32) -> Result<ChildNumber, SeedError> {
    ChildNumber::from_normal_idx(index).map_err(|e| SeedError::Derivation(e.to_string()))
}

/// Wipe the private half of an extended key in place. The chain code stays
/// (the bitcoin crate gives no way to overwrite it), and `Xpriv` is `Copy`,
/// so copies the bitcoin crate made while deriving are out of reach.
fn wipe(key: &mut Xpriv) {
    key.private_key.non_secure_erase();
}

impl CipherSeed {
    /// A seed from chosen entropy, birthday (days since genesis, see
    /// [`birthday_from_unix`]) and scrypt salt, at internal version 0. The
    /// caller's copy of `entropy` is theirs to wipe.
    pub fn new(entropy: &[u8; ENTROPY_SIZE], birthday: u16, salt: [u8; SALT_SIZE]) -> CipherSeed {
        CipherSeed {
            internal_version: CIPHER_SEED_VERSION,
            birthday,
            entropy: *entropy,
            salt,
        }
    }

    /// The same seed at another internal version (lnd's vectors are at 0,
    /// new lnd wallets at [`CURRENT_INTERNAL_VERSION`]).
    pub fn with_internal_version(mut self, version: u8) -> CipherSeed {
        self.internal_version = version;
        self
    }

    /// A new seed with entropy and salt from the operating system, at the
    /// internal version lnd writes today.
    pub fn generate(birthday: u16) -> Result<CipherSeed, SeedError> {
        let mut seed = CipherSeed::new(&[0u8; ENTROPY_SIZE], birthday, [0u8; SALT_SIZE])
            .with_internal_version(CURRENT_INTERNAL_VERSION);
        let mut rng = rand::rngs::OsRng;
        rng.try_fill_bytes(&mut seed.entropy)
            .map_err(|_| SeedError::Random)?;
        rng.try_fill_bytes(&mut seed.salt)
            .map_err(|_| SeedError::Random)?;
        Ok(seed)
    }

    pub fn internal_version(&self) -> u8 {
        self.internal_version
    }

    /// Days since the bitcoin genesis block.
    pub fn birthday(&self) -> u16 {
        self.birthday
    }

    /// The birthday as seconds since the epoch (the genesis block's time of
    /// day, as lnd's `BirthdayTime`).
    pub fn birthday_unix(&self) -> i64 {
        BITCOIN_GENESIS_UNIX + i64::from(self.birthday) * SECONDS_PER_DAY
    }

    /// The scrypt salt (not secret: it is written in the mnemonic).
    pub fn salt(&self) -> [u8; SALT_SIZE] {
        self.salt
    }

    /// The 16 bytes of entropy: the wallet's BIP-32 seed.
    pub fn entropy(&self) -> &[u8; ENTROPY_SIZE] {
        &self.entropy
    }

    /// The 24 words lnd would show for this seed under `passphrase` (empty
    /// means lnd's default, "aezeed").
    pub fn to_mnemonic(&self, passphrase: &[u8]) -> Result<Mnemonic, SeedError> {
        self.encipher(passphrase, SCRYPT_LOG_N)
    }

    /// Open a mnemonic with its passphrase (empty means "aezeed").
    pub fn decipher(mnemonic: &Mnemonic, passphrase: &[u8]) -> Result<CipherSeed, SeedError> {
        Self::decipher_with_log_n(mnemonic, passphrase, SCRYPT_LOG_N)
    }

    /// [`CipherSeed::decipher`] with scrypt's N = 2^`log_n`, for lnd's test
    /// vectors (N = 16) and the fuzz targets only: a real seed opens only
    /// with N = 32768, so this cannot weaken one.
    #[doc(hidden)]
    pub fn decipher_with_scrypt_log_n_for_tests(
        mnemonic: &Mnemonic,
        passphrase: &[u8],
        log_n: u8,
    ) -> Result<CipherSeed, SeedError> {
        Self::decipher_with_log_n(mnemonic, passphrase, log_n)
    }

    /// Encipher with scrypt's N = 2^`log_n`. Not public: a mnemonic made
    /// with a lower N than 32768 would be weak, and lnd could not open it.
    pub(crate) fn encipher(&self, passphrase: &[u8], log_n: u8) -> Result<Mnemonic, SeedError> {
        let key = derive_key(passphrase, &self.salt, log_n)?;
        let mut plain = Zeroizing::new([0u8; DECIPHERED_SIZE]);
        plain[0] = self.internal_version;
        plain[1..3].copy_from_slice(&self.birthday.to_be_bytes());
        plain[3..].copy_from_slice(&self.entropy);
        let ad = associated_data(CIPHER_SEED_VERSION, &self.salt);
        let ciphertext = Zeroizing::new(aez::encrypt(
            key.as_slice(),
            &[],
            &[&ad],
            TAU,
            plain.as_slice(),
        ));
        let mut bytes = Zeroizing::new([0u8; ENCIPHERED_SIZE]);
        bytes[0] = CIPHER_SEED_VERSION;
        bytes[1..SALT_OFFSET].copy_from_slice(&ciphertext);
        bytes[SALT_OFFSET..CHECKSUM_OFFSET].copy_from_slice(&self.salt);
        let checksum = crc32c(&bytes[..CHECKSUM_OFFSET]);
        bytes[CHECKSUM_OFFSET..].copy_from_slice(&checksum.to_be_bytes());
        Ok(Mnemonic::from_bytes(&bytes))
    }

    /// The checksum is checked before the version, unlike lnd: a mistyped
    /// first word then reads as a typo, not as a seed from the future.
    fn decipher_with_log_n(
        mnemonic: &Mnemonic,
        passphrase: &[u8],
        log_n: u8,
    ) -> Result<CipherSeed, SeedError> {
        if !mnemonic.checksum_ok() {
            return Err(SeedError::BadChecksum);
        }
        let bytes = mnemonic.to_bytes();
        if bytes[0] != CIPHER_SEED_VERSION {
            return Err(SeedError::UnknownExternalVersion(bytes[0]));
        }
        let mut salt = [0u8; SALT_SIZE];
        salt.copy_from_slice(&bytes[SALT_OFFSET..CHECKSUM_OFFSET]);
        let key = derive_key(passphrase, &salt, log_n)?;
        let ad = associated_data(bytes[0], &salt);
        let plain = aez::decrypt(key.as_slice(), &[], &[&ad], TAU, &bytes[1..SALT_OFFSET])
            .map_err(|_| SeedError::WrongPassphrase)?;
        if plain.len() != DECIPHERED_SIZE {
            return Err(SeedError::WrongPassphrase);
        }
        if !KNOWN_INTERNAL_VERSIONS.contains(&plain[0]) {
            return Err(SeedError::UnknownInternalVersion(plain[0]));
        }
        let mut seed = CipherSeed::new(
            &[0u8; ENTROPY_SIZE],
            u16::from_be_bytes([plain[1], plain[2]]),
            salt,
        )
        .with_internal_version(plain[0]);
        seed.entropy.copy_from_slice(&plain[3..]);
        Ok(seed)
    }

    /// The wallet's BIP-32 master key, made as lnd (btcwallet's
    /// `hdkeychain.NewMaster`) makes it: from the 16 entropy bytes directly,
    /// with no BIP-39 stretching. The caller owns the result; wipe it with
    /// `private_key.non_secure_erase()` when done (the chain code cannot be).
    pub fn master_key(&self, network: Network) -> Result<Xpriv, SeedError> {
        Xpriv::new_master(network, &self.entropy).map_err(|e| SeedError::Derivation(e.to_string()))
    }

    /// The key at m/1017'/coin'/`family`'/`rest`…, with the master and the
    /// account keys wiped before returning.
    fn derive(&self, network: Network, family: u32, rest: &[u32]) -> Result<Xpriv, SeedError> {
        let secp = Secp256k1::signing_only();
        let mut master = self.master_key(network)?;
        let mut path = vec![
            hardened(LND_PURPOSE)?,
            hardened(coin_type(network))?,
            hardened(family)?,
        ];
        for &i in rest {
            path.push(normal(i)?);
        }
        let derived = master.derive_priv(&secp, &path);
        wipe(&mut master);
        derived.map_err(|e| SeedError::Derivation(e.to_string()))
    }

    /// The node's identity public key: m/1017'/coin'/6'/0/0, the key lnd
    /// announces and `getinfo` reports.
    pub fn node_pubkey(&self, network: Network) -> Result<PublicKey, SeedError> {
        let secp = Secp256k1::signing_only();
        let mut key = self.derive(network, FAMILY_NODE_KEY, &[0, 0])?;
        let pubkey = PublicKey::from_secret_key(&secp, &key.private_key);
        wipe(&mut key);
        Ok(pubkey)
    }

    /// The extended public key of the static-backup account,
    /// m/1017'/coin'/7': the account whose key lnd encrypts channel backups
    /// with.
    pub fn backup_account_xpub(&self, network: Network) -> Result<Xpub, SeedError> {
        let secp = Secp256k1::signing_only();
        let mut account = self.derive(network, FAMILY_STATIC_BACKUP, &[])?;
        let xpub = Xpub::from_priv(&secp, &account);
        wipe(&mut account);
        Ok(xpub)
    }
}

#[cfg(test)]
mod tests;
