//! lnd's static channel backup format, written and read the way lnd does it
//! (see `proto/NOTES.md` §5): XChaCha20-Poly1305 with the random 24-byte nonce
//! prepended and used as associated data, a Multi of `version || count ||
//! Singles`, and Singles in the lnwire (big-endian) layout.
//!
//! Errors are lnd's own texts (Go error strings), because they reach clients
//! verbatim inside gRPC statuses.

use std::sync::OnceLock;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey, SignOnly};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::seq::SliceRandom;
use rand::{Rng, RngCore};
use sha3::{Digest, Sha3_256};
use zeroize::Zeroizing;

use crate::scb::ChanPoint;

mod close_tx;

pub(crate) use close_tx::CloseTxInputs;

/// XChaCha20 nonce length; lnd prepends the nonce to every packed blob.
pub(crate) const NONCE_LEN: usize = 24;
/// The only Multi version lnd knows.
pub(crate) const MULTI_VERSION: u8 = 0;
/// Bit 7 of a Single's version byte: CloseTxInputs appended (lnd >= 0.19).
pub(crate) const CLOSE_TX_INPUTS_BIT: u8 = 0x80;
/// Highest known Single version (7 = `SimpleTaprootFinalVersion`).
pub(crate) const MAX_SINGLE_VERSION: u8 = 7;
/// `ScriptEnforcedLeaseVersion`: the only version carrying a lease expiry.
pub(crate) const LEASE_VERSION: u8 = 4;
/// `SimpleTaprootVersion`: the first taproot version.
const SIMPLE_TAPROOT_VERSION: u8 = 5;
/// `TapscriptRootVersion`: its CloseTxInputs end with the tapscript root.
pub(crate) const TAPSCRIPT_ROOT_VERSION: u8 = 6;
/// `SimpleTaprootFinalVersion`: production taproot channels.
const SIMPLE_TAPROOT_FINAL_VERSION: u8 = 7;
/// How often `Single::random` includes CloseTxInputs: lnd >= 0.19 writes
/// them whenever it has the local commitment, but many channels in a backup
/// come from older nodes or are waiting for data loss protection.
const CLOSE_TX_INPUTS_SHARE: f64 = 0.5;

/// lnd's `IsTaproot`: versions 5, 6 and 7 (bit 7 cleared).
pub(crate) fn is_taproot(version: u8) -> bool {
    (SIMPLE_TAPROOT_VERSION..=SIMPLE_TAPROOT_FINAL_VERSION).contains(&version)
}

/// Regtest genesis block hash in internal byte order, as lnd writes a Single's
/// chain hash. Display order: `0f9188f1...466e2206`.
pub(crate) const REGTEST_GENESIS: [u8; 32] = [
    0x06, 0x22, 0x6e, 0x46, 0x11, 0x1a, 0x0b, 0x59, 0xca, 0xaf, 0x12, 0x60, 0x43, 0xeb, 0x5b, 0xbf,
    0x28, 0xc3, 0x4f, 0x3a, 0x5e, 0x33, 0x2a, 0x1f, 0xc7, 0xb2, 0xb7, 0x3c, 0xf1, 0x88, 0x91, 0x0f,
];

/// lnd key families used in a Single's local key locators (keychain/derivation.go).
const FAMILY_MULTISIG: u32 = 0;
const FAMILY_REVOCATION_BASE: u32 = 1;
const FAMILY_HTLC_BASE: u32 = 2;
const FAMILY_PAYMENT_BASE: u32 = 3;
const FAMILY_DELAY_BASE: u32 = 4;
const FAMILY_REVOCATION_ROOT: u32 = 5;

/// Encrypt like lnd's `lnencrypt.EncryptPayloadToWriter`: a fresh random
/// nonce every time, so two packings of the same plaintext never share bytes.
pub(crate) fn encrypt(key: &[u8; 32], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &nonce,
            },
        )
        .map_err(|_| "chacha20poly1305: plaintext too large".to_string())?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypt like lnd's `lnencrypt.DecryptPayloadFromReader`, with its error texts.
pub(crate) fn decrypt(key: &[u8; 32], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    if blob.len() < NONCE_LEN {
        return Err(format!(
            "payload size too small, must be at least {NONCE_LEN} bytes"
        ));
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: nonce,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| "chacha20poly1305: message authentication failed".to_string())
}

/// One channel's static backup (lnd's `chanbackup.Single`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Single {
    /// Version byte as written, including bit 7 when CloseTxInputs follow.
    pub version: u8,
    pub is_initiator: bool,
    pub chain_hash: [u8; 32],
    /// Funding txid, internal byte order.
    pub txid: [u8; 32],
    /// Funding output index: a u16 on the wire (lnwire `WriteOutPoint`).
    pub output_index: u16,
    pub short_chan_id: u64,
    pub remote_node_pub: [u8; 33],
    /// lnwire-encoded address list, without its u16 length prefix.
    pub addresses: Vec<u8>,
    pub capacity_sat: u64,
    pub local_csv: u16,
    /// (family, index) of multisig, revocation base, payment base, delay base, htlc base.
    pub local_keys: [(u32, u32); 5],
    pub remote_csv: u16,
    /// Remote multisig, revocation base, payment base, delay base, htlc base pubkeys.
    pub remote_keys: [[u8; 33]; 5],
    /// All zero when only the key locator is stored (modern lnd).
    pub shachain_pub: [u8; 33],
    pub shachain_locator: (u32, u32),
    /// Present for version 4 (script-enforced lease) only.
    pub lease_expiry: Option<u32>,
    /// When present, written after the other fields, and bit 7 is set in
    /// the version byte as written.
    pub close_tx_inputs: Option<CloseTxInputs>,
    /// Body bytes after every field lnd knows, kept verbatim: only tests
    /// write any, to play a newer or broken writer.
    pub trailer: Vec<u8>,
}

/// One signing context for every key the simulator makes up.
fn secp() -> &'static Secp256k1<SignOnly> {
    static SECP: OnceLock<Secp256k1<SignOnly>> = OnceLock::new();
    SECP.get_or_init(Secp256k1::signing_only)
}

/// A fresh random secret key (of a made-up peer: nobody's secret).
fn random_secret(rng: &mut impl Rng) -> SecretKey {
    loop {
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut secret[..]);
        // Fails only for zero or values >= n (about 2^-128).
        if let Ok(sk) = SecretKey::from_slice(&secret[..]) {
            return sk;
        }
    }
}

/// A real secp256k1 public key (compressed) of a fresh random secret.
fn random_pubkey(rng: &mut impl Rng) -> [u8; 33] {
    PublicKey::from_secret_key(secp(), &random_secret(rng)).serialize()
}

/// lnwire address descriptor types (BOLT 7).
const ADDR_TCP4: u8 = 1;
const ADDR_TCP6: u8 = 2;
const ADDR_ONION_V3: u8 = 4;
const LN_PORT: u16 = 9735;

/// A Tor v3 service name's 35 decoded bytes: ed25519 key (random bytes here),
/// checksum `SHA3-256(".onion checksum" || key || version)[..2]`, version 3.
fn onion_v3(rng: &mut impl Rng) -> [u8; 35] {
    let mut out = [0u8; 35];
    rng.fill_bytes(&mut out[..32]);
    let mut h = Sha3_256::new();
    h.update(b".onion checksum");
    h.update(&out[..32]);
    h.update([3u8]);
    out[32..34].copy_from_slice(&h.finalize()[..2]);
    out[34] = 3;
    out
}

/// A peer's address list as lnd stores it: IPv4, IPv6, Tor v3, Tor v3 with
/// IPv4, or none (a peer that connected to us and announced nothing).
fn random_addresses(rng: &mut impl Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let kind = rng.gen_range(0..5u8);
    if matches!(kind, 0 | 3) {
        let ip: [u8; 4] = [10, rng.r#gen(), rng.r#gen(), rng.gen_range(1..255)];
        out.push(ADDR_TCP4);
        out.extend_from_slice(&ip);
        out.extend_from_slice(&LN_PORT.to_be_bytes());
    }
    if kind == 1 {
        out.push(ADDR_TCP6);
        out.extend_from_slice(&[0xfd, 0x00, 0x0c, 0x4a]);
        let mut rest = [0u8; 12];
        rng.fill_bytes(&mut rest);
        out.extend_from_slice(&rest);
        out.extend_from_slice(&LN_PORT.to_be_bytes());
    }
    if matches!(kind, 2 | 3) {
        out.push(ADDR_ONION_V3);
        out.extend_from_slice(&onion_v3(rng));
        out.extend_from_slice(&LN_PORT.to_be_bytes());
    }
    out
}

impl Single {
    /// A plausible new channel (see [`Single::random_of`]) of a random
    /// version from 0 to 7, anchors (3) the most common as on today's nodes,
    /// with CloseTxInputs about half the time.
    pub(crate) fn random(rng: &mut impl Rng, key_index: u32, block_height: u32) -> Self {
        let version = *[0u8, 1, 2, 3, 3, 3, 3, 4, 5, 6, 7]
            .choose(rng)
            .unwrap_or(&3);
        let close_tx_inputs = rng.gen_bool(CLOSE_TX_INPUTS_SHARE);
        Self::random_of(rng, key_index, block_height, version, close_tx_inputs)
    }

    /// A plausible new channel of `version` (0 to 7, bit 7 clear): random
    /// funding outpoint, peer (a real secp256k1 key), addresses and remote
    /// keys (real points); local key locators at `key_index` in lnd's key
    /// families; and with `close_tx_inputs`, a commitment spending the
    /// funding outpoint signed by the peer's funding key (version byte
    /// `version | 0x80`).
    pub(crate) fn random_of(
        rng: &mut impl Rng,
        key_index: u32,
        block_height: u32,
        version: u8,
        close_tx_inputs: bool,
    ) -> Self {
        let mut txid = [0u8; 32];
        rng.fill_bytes(&mut txid);
        let output_index: u16 = rng.gen_range(0..2);
        let tx_position: u64 = rng.gen_range(1..3000);
        let short_chan_id = (u64::from(block_height) & 0xff_ffff) << 40
            | (tx_position & 0xff_ffff) << 16
            | u64::from(output_index);
        let addresses = random_addresses(rng);
        let remote_funding = random_secret(rng);
        let mut remote_keys = [[0u8; 33]; 5];
        remote_keys[0] = PublicKey::from_secret_key(secp(), &remote_funding).serialize();
        for k in &mut remote_keys[1..] {
            *k = random_pubkey(rng);
        }
        let capacity_sat = rng.gen_range(20_000..16_777_216);
        let close_tx_inputs = close_tx_inputs.then(|| {
            let funding = bitcoin::OutPoint {
                txid: bitcoin::Txid::from_byte_array(txid),
                vout: u32::from(output_index),
            };
            CloseTxInputs::random(rng, version, funding, capacity_sat, &remote_funding)
        });
        let bit = if close_tx_inputs.is_some() {
            CLOSE_TX_INPUTS_BIT
        } else {
            0
        };
        Single {
            version: version | bit,
            is_initiator: rng.r#gen(),
            chain_hash: REGTEST_GENESIS,
            txid,
            output_index,
            short_chan_id,
            remote_node_pub: random_pubkey(rng),
            addresses,
            capacity_sat,
            local_csv: 144,
            local_keys: [
                (FAMILY_MULTISIG, key_index),
                (FAMILY_REVOCATION_BASE, key_index),
                (FAMILY_PAYMENT_BASE, key_index),
                (FAMILY_DELAY_BASE, key_index),
                (FAMILY_HTLC_BASE, key_index),
            ],
            remote_csv: 144,
            remote_keys,
            shachain_pub: [0u8; 33],
            shachain_locator: (FAMILY_REVOCATION_ROOT, key_index),
            lease_expiry: (version == LEASE_VERSION).then(|| block_height + 4032),
            close_tx_inputs,
            trailer: vec![],
        }
    }

    /// The funding outpoint as chanvault names it.
    pub(crate) fn chan_point(&self) -> ChanPoint {
        ChanPoint {
            txid: self.txid,
            index: u32::from(self.output_index),
        }
    }

    /// The version byte as [`Single::serialize`] writes it: `version`, with
    /// bit 7 set when CloseTxInputs are present (lnd's `Encode`).
    pub(crate) fn version_byte(&self) -> u8 {
        if self.close_tx_inputs.is_some() {
            self.version | CLOSE_TX_INPUTS_BIT
        } else {
            self.version
        }
    }

    /// lnd's `Single.Serialize`: version, u16 body length, body. The version
    /// is written even where lnd would refuse it, so that tests can play a
    /// newer lnd.
    pub(crate) fn serialize(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        let mut body = Zeroizing::new(Vec::with_capacity(400));
        body.push(u8::from(self.is_initiator));
        body.extend_from_slice(&self.chain_hash);
        body.extend_from_slice(&self.txid);
        body.extend_from_slice(&self.output_index.to_be_bytes());
        body.extend_from_slice(&self.short_chan_id.to_be_bytes());
        body.extend_from_slice(&self.remote_node_pub);
        let addr_len =
            u16::try_from(self.addresses.len()).map_err(|_| "address list too long".to_string())?;
        body.extend_from_slice(&addr_len.to_be_bytes());
        body.extend_from_slice(&self.addresses);
        body.extend_from_slice(&self.capacity_sat.to_be_bytes());
        body.extend_from_slice(&self.local_csv.to_be_bytes());
        for (family, index) in self.local_keys {
            body.extend_from_slice(&family.to_be_bytes());
            body.extend_from_slice(&index.to_be_bytes());
        }
        body.extend_from_slice(&self.remote_csv.to_be_bytes());
        for key in &self.remote_keys {
            body.extend_from_slice(key);
        }
        body.extend_from_slice(&self.shachain_pub);
        body.extend_from_slice(&self.shachain_locator.0.to_be_bytes());
        body.extend_from_slice(&self.shachain_locator.1.to_be_bytes());
        if let Some(expiry) = self.lease_expiry {
            body.extend_from_slice(&expiry.to_be_bytes());
        }
        if let Some(inputs) = &self.close_tx_inputs {
            inputs.write(self.version & !CLOSE_TX_INPUTS_BIT, &mut body)?;
        }
        body.extend_from_slice(&self.trailer);
        let len = u16::try_from(body.len()).map_err(|_| "single backup too long".to_string())?;
        let mut out = Zeroizing::new(Vec::with_capacity(3 + body.len()));
        out.push(self.version_byte());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// lnd's `Single.Deserialize`. The body is bounded by its length prefix so
    /// that the next Single always starts at `3 + L`. Like lnd's
    /// `DecodeVersion`, the error names the version with bit 7 cleared.
    pub(crate) fn read(r: &mut GoReader<'_>) -> Result<Self, String> {
        let version = r.u8()?;
        let known = version & !CLOSE_TX_INPUTS_BIT;
        if known > MAX_SINGLE_VERSION {
            return Err(format!(
                "unable to de-serialize w/ unknown version: {known}"
            ));
        }
        let len = r.u16()?;
        let mut b = GoReader::new(r.take_up_to(usize::from(len)));
        let is_initiator = b.u8()? != 0;
        let chain_hash = b.array::<32>()?;
        let txid = b.array::<32>()?;
        let output_index = b.u16()?;
        let short_chan_id = b.u64()?;
        let remote_node_pub = b.array::<33>()?;
        let addr_len = b.u16()?;
        let addresses = b.bytes(usize::from(addr_len))?.to_vec();
        let capacity_sat = b.u64()?;
        let local_csv = b.u16()?;
        let mut local_keys = [(0u32, 0u32); 5];
        for k in &mut local_keys {
            *k = (b.u32()?, b.u32()?);
        }
        let remote_csv = b.u16()?;
        let mut remote_keys = [[0u8; 33]; 5];
        for k in &mut remote_keys {
            *k = b.array::<33>()?;
        }
        let shachain_pub = b.array::<33>()?;
        let shachain_locator = (b.u32()?, b.u32()?);
        let lease_expiry = if known == LEASE_VERSION {
            Some(b.u32()?)
        } else {
            None
        };
        let close_tx_inputs = if version & CLOSE_TX_INPUTS_BIT != 0 {
            Some(CloseTxInputs::read(&mut b, known)?)
        } else {
            None
        };
        Ok(Single {
            version,
            is_initiator,
            chain_hash,
            txid,
            output_index,
            short_chan_id,
            remote_node_pub,
            addresses,
            capacity_sat,
            local_csv,
            local_keys,
            remote_csv,
            remote_keys,
            shachain_pub,
            shachain_locator,
            lease_expiry,
            close_tx_inputs,
            trailer: b.rest().to_vec(),
        })
    }

    /// Parse one serialized Single (as inside a packed single backup).
    pub(crate) fn parse(plain: &[u8]) -> Result<Self, String> {
        Single::read(&mut GoReader::new(plain))
    }
}

/// lnd's `Multi.PackToWriter` plaintext: `0 || u32 count || Singles`, with the
/// Singles in a random order.
pub(crate) fn multi_plaintext(singles: &[&Single]) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut order: Vec<&Single> = singles.to_vec();
    order.shuffle(&mut rand::thread_rng());
    let count = u32::try_from(order.len()).map_err(|_| "too many channels".to_string())?;
    let mut out = Zeroizing::new(Vec::with_capacity(5 + 420 * order.len()));
    out.push(MULTI_VERSION);
    out.extend_from_slice(&count.to_be_bytes());
    for s in order {
        out.extend_from_slice(&s.serialize()?);
    }
    Ok(out)
}

/// lnd's `Multi.UnpackFromReader` on a decrypted plaintext; Singles in blob order.
pub(crate) fn parse_multi(plain: &[u8]) -> Result<Vec<Single>, String> {
    let mut r = GoReader::new(plain);
    let version = r.u8()?;
    if version != MULTI_VERSION {
        return Err(format!(
            "unable to unpack unknown multi-version of {version}"
        ));
    }
    let count = r.u32()?;
    let mut singles = Vec::new();
    for _ in 0..count {
        singles.push(Single::read(&mut r)?);
    }
    Ok(singles)
}

/// Encrypt a Multi for `singles` with `key`.
pub(crate) fn pack_multi(key: &[u8; 32], singles: &[&Single]) -> Result<Vec<u8>, String> {
    encrypt(key, &multi_plaintext(singles)?)
}

/// Decrypt and parse a packed Multi; errors are lnd's inner texts.
pub(crate) fn unpack_multi(key: &[u8; 32], blob: &[u8]) -> Result<Vec<Single>, String> {
    parse_multi(&decrypt(key, blob)?)
}

/// Encrypt one Single (lnd's `Single.PackToWriter`).
pub(crate) fn pack_single(key: &[u8; 32], single: &Single) -> Result<Vec<u8>, String> {
    encrypt(key, &single.serialize()?)
}

/// Decrypt and parse one packed Single.
pub(crate) fn unpack_single(key: &[u8; 32], blob: &[u8]) -> Result<Single, String> {
    Single::parse(&decrypt(key, blob)?)
}

/// Reads like Go's `io.ReadFull`: `EOF` when nothing is left, `unexpected EOF`
/// when a field is cut short.
pub(crate) struct GoReader<'a> {
    buf: &'a [u8],
}

impl<'a> GoReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n == 0 {
            return Ok(&[]);
        }
        if self.buf.is_empty() {
            return Err("EOF".into());
        }
        if self.buf.len() < n {
            self.buf = &[];
            return Err("unexpected EOF".into());
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn take_up_to(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.buf.split_at(n.min(self.buf.len()));
        self.buf = tail;
        head
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// What is left, without consuming it.
    fn peek_rest(&self) -> &'a [u8] {
        self.buf
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let b = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7u8; 32];
    /// Poly1305 tag length.
    const TAG_LEN: usize = 16;
    /// Size of an encrypted Multi without channels (lnd's `NilMultiSizePacked`).
    const NIL_MULTI_SIZE_PACKED: usize = NONCE_LEN + TAG_LEN + 1 + 4;

    fn singles(n: u32) -> Vec<Single> {
        let mut rng = rand::thread_rng();
        (0..n)
            .map(|i| Single::random(&mut rng, i, 500 + i))
            .collect()
    }

    #[test]
    fn regtest_genesis_is_reversed_display_hash() {
        let mut display = REGTEST_GENESIS;
        display.reverse();
        assert_eq!(
            hex::encode(display),
            "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
        );
    }

    #[test]
    fn single_layout_matches_lnd() {
        let s = &Single::random_of(&mut rand::thread_rng(), 1, 501, 3, false);
        let bytes = s.serialize().unwrap();
        let body_len = u16::from_be_bytes([bytes[1], bytes[2]]) as usize;
        assert_eq!(bytes.len(), 3 + body_len);
        assert_eq!(bytes[0], s.version);
        assert_eq!(&bytes[4..36], &REGTEST_GENESIS);
        assert_eq!(&bytes[36..68], &s.txid);
        assert_eq!(u16::from_be_bytes([bytes[68], bytes[69]]), s.output_index);
        assert_eq!(&bytes[78..111], &s.remote_node_pub);
        assert!((350..450).contains(&bytes.len()), "{}", bytes.len());
        assert_eq!(&Single::parse(&bytes).unwrap(), s);
    }

    #[test]
    fn multi_round_trips_and_is_shuffled_and_fresh() {
        let ss = singles(8);
        let refs: Vec<&Single> = ss.iter().collect();
        let a = pack_multi(&KEY, &refs).unwrap();
        let b = pack_multi(&KEY, &refs).unwrap();
        assert_ne!(a, b, "fresh nonce every time");
        let plain = decrypt(&KEY, &a).unwrap();
        assert_eq!(plain[0], 0);
        assert_eq!(&plain[1..5], &8u32.to_be_bytes());
        let mut got = unpack_multi(&KEY, &a).unwrap();
        let mut want = ss.clone();
        got.sort_by_key(|s| s.txid);
        want.sort_by_key(|s| s.txid);
        assert_eq!(got, want);
        // 8 channels: the chance that 20 packings all keep one order is nil.
        let orders: std::collections::HashSet<Vec<[u8; 32]>> = (0..20)
            .map(|_| {
                let blob = pack_multi(&KEY, &refs).unwrap();
                unpack_multi(&KEY, &blob)
                    .unwrap()
                    .iter()
                    .map(|s| s.txid)
                    .collect()
            })
            .collect();
        assert!(orders.len() > 1);
    }

    #[test]
    fn empty_multi_has_lnds_nil_size() {
        assert_eq!(pack_multi(&KEY, &[]).unwrap().len(), NIL_MULTI_SIZE_PACKED);
        assert_eq!(NIL_MULTI_SIZE_PACKED, 45);
    }

    #[test]
    fn errors_are_lnds_texts() {
        let ss = singles(2);
        let refs: Vec<&Single> = ss.iter().collect();
        let mut blob = pack_multi(&KEY, &refs).unwrap();
        assert_eq!(
            unpack_multi(&[8u8; 32], &blob).unwrap_err(),
            "chacha20poly1305: message authentication failed"
        );
        blob[30] ^= 1;
        assert_eq!(
            unpack_multi(&KEY, &blob).unwrap_err(),
            "chacha20poly1305: message authentication failed"
        );
        assert_eq!(
            unpack_multi(&KEY, &[0u8; 10]).unwrap_err(),
            "payload size too small, must be at least 24 bytes"
        );
        let bad_version = encrypt(&KEY, &[1, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            unpack_multi(&KEY, &bad_version).unwrap_err(),
            "unable to unpack unknown multi-version of 1"
        );
        let empty = encrypt(&KEY, &[]).unwrap();
        assert_eq!(unpack_multi(&KEY, &empty).unwrap_err(), "EOF");
        let short = encrypt(&KEY, &[0, 0, 0]).unwrap();
        assert_eq!(unpack_multi(&KEY, &short).unwrap_err(), "unexpected EOF");
        let missing_single = encrypt(&KEY, &[0, 0, 0, 0, 1]).unwrap();
        assert_eq!(unpack_multi(&KEY, &missing_single).unwrap_err(), "EOF");
        let unknown_single = encrypt(&KEY, &[0, 0, 0, 0, 1, 9, 0, 0]).unwrap();
        assert_eq!(
            unpack_multi(&KEY, &unknown_single).unwrap_err(),
            "unable to de-serialize w/ unknown version: 9"
        );
        // lnd's DecodeVersion clears bit 7 before naming the version.
        let unknown_with_bit = encrypt(&KEY, &[0, 0, 0, 0, 1, 0x88, 0, 0]).unwrap();
        assert_eq!(
            unpack_multi(&KEY, &unknown_with_bit).unwrap_err(),
            "unable to de-serialize w/ unknown version: 8"
        );
        let mut cut = multi_plaintext(&refs).unwrap().to_vec();
        cut.truncate(cut.len() - 10);
        let cut = encrypt(&KEY, &cut).unwrap();
        assert_eq!(unpack_multi(&KEY, &cut).unwrap_err(), "unexpected EOF");
    }

    #[test]
    fn unknown_trailing_body_bytes_are_skipped_by_length() {
        let mut rng = rand::thread_rng();
        let mut ss = [
            Single::random_of(&mut rng, 0, 500, 6, true),
            Single::random_of(&mut rng, 1, 501, 2, false),
        ];
        ss[0].trailer = vec![0xab; 120];
        ss[1].trailer = vec![0xcd; 7];
        let refs: Vec<&Single> = ss.iter().collect();
        let blob = pack_multi(&KEY, &refs).unwrap();
        let got = unpack_multi(&KEY, &blob).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got.contains(&ss[0]) && got.contains(&ss[1]));
    }
}
