//! AEZ v5 (Hoang, Krovetz, Rogaway, "AEZ v5: Authenticated Encryption by
//! Enciphering", 2017): the authenticated encryption lnd's aezeed uses.
//!
//! Written from the published specification; checked against the vectors
//! of the reference implementation (`tests/vectors/aez_v5.json`, see the
//! unit tests). Both enciphering paths are here: AEZ-tiny for strings
//! shorter than 32 bytes (aezeed's 23 bytes go this way) and AEZ-core for
//! the rest, so published vectors of every size can be checked.
//!
//! Blocks are 128-bit big-endian integers (`u128`); the tweakable block
//! cipher E(j,i) is AES4 or AES10 made of the AES round function
//! (`aes::hazmat::cipher_round`, which is AESENC: every round has
//! MixColumns). The key state (I, J, L) is wiped on drop and every buffer
//! that holds plaintext is `Zeroizing`. Copies of `u128` values in
//! registers and on the stack cannot be reached from safe Rust; that is the
//! usual limit of zeroization.

use aes::Block;
use aes::hazmat::cipher_round;
use blake2::Blake2b;
use blake2::Digest;
use blake2::digest::consts::U48;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Bytes in one AES block.
const BLOCK: usize = 16;
/// AEZ's key is 384 bits after Extract.
const EXTRACTED_KEY: usize = 48;
/// Strings shorter than this many bytes are enciphered with AEZ-tiny.
const TINY_LIMIT: usize = 32;
/// 10* for the empty string: a single one bit, then zeros.
const PAD_EMPTY: u128 = 1 << 127;

/// Decryption failed: the ciphertext, nonce, associated data or key is not
/// the one that was used. AEZ says nothing more, on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("AEZ authentication failed")]
pub struct AuthError;

/// The extracted key I ‖ J ‖ L, wiped when dropped.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Key {
    i: u128,
    j: u128,
    l: u128,
}

/// Multiplication by x in GF(2^128) with AEZ's (and OCB's) polynomial.
fn dbl(x: u128) -> u128 {
    (x << 1) ^ if x >> 127 == 1 { 0x87 } else { 0 }
}

/// `k · x` in GF(2^128) for a small integer `k`, by double and add.
fn mul(k: u64, x: u128) -> u128 {
    let mut acc = 0u128;
    for bit in (0..64).rev() {
        acc = dbl(acc);
        if (k >> bit) & 1 == 1 {
            acc ^= x;
        }
    }
    acc
}

/// A 16-byte slice as a block.
fn load(bytes: &[u8]) -> u128 {
    let mut b = [0u8; BLOCK];
    b.copy_from_slice(bytes);
    let v = u128::from_be_bytes(b);
    b.zeroize();
    v
}

/// A string shorter than a block, followed by 10* to fill the block.
fn pad(bytes: &[u8]) -> u128 {
    let mut b = [0u8; BLOCK];
    b[..bytes.len()].copy_from_slice(bytes);
    b[bytes.len()] = 0x80;
    let v = u128::from_be_bytes(b);
    b.zeroize();
    v
}

/// XOR the first `dst.len()` bytes of `block` into `dst`.
fn xor_into(dst: &mut [u8], block: u128) {
    for (d, s) in dst.iter_mut().zip(block.to_be_bytes()) {
        *d ^= s;
    }
}

/// `n` bits starting at bit `start` of `bytes` (MSB first), left-aligned.
fn get_bits(bytes: &[u8], start: usize, n: usize) -> u128 {
    let mut v = 0u128;
    for k in 0..n {
        let pos = start + k;
        let bit = (bytes[pos / 8] >> (7 - pos % 8)) & 1;
        v |= u128::from(bit) << (127 - k);
    }
    v
}

/// Write the top `n` bits of `v` at bit `start` of `bytes`.
fn set_bits(bytes: &mut [u8], start: usize, n: usize, v: u128) {
    for k in 0..n {
        let pos = start + k;
        let mask = 1u8 << (7 - pos % 8);
        if (v >> (127 - k)) & 1 == 1 {
            bytes[pos / 8] |= mask;
        } else {
            bytes[pos / 8] &= !mask;
        }
    }
}

/// 2^⌈i/8⌉ I for i = 0, 1, 2, … in turn, one doubling every eight steps, so
/// long strings cost no more per block than short ones.
struct IMultiples {
    current: u128,
}

impl IMultiples {
    fn new(i: u128) -> IMultiples {
        IMultiples { current: i }
    }

    /// The multiple for `i`; call with i = 0, 1, 2, … (or start at 1).
    fn next_for(&mut self, i: u64) -> u128 {
        if i % 8 == 1 {
            self.current = dbl(self.current);
        }
        self.current
    }
}

impl Drop for IMultiples {
    fn drop(&mut self) {
        self.current.zeroize();
    }
}

impl Key {
    /// AEZ's Extract: a 48-byte key is used as it is; any other length is
    /// hashed with BLAKE2b to 384 bits first.
    fn extract(key: &[u8]) -> Key {
        let mut bytes = Zeroizing::new([0u8; EXTRACTED_KEY]);
        if key.len() == EXTRACTED_KEY {
            bytes.copy_from_slice(key);
        } else {
            let mut digest = Blake2b::<U48>::digest(key);
            bytes.copy_from_slice(&digest);
            digest.as_mut_slice().zeroize();
        }
        Key {
            i: load(&bytes[..16]),
            j: load(&bytes[16..32]),
            l: load(&bytes[32..]),
        }
    }

    /// The AES round function applied with each round key in turn.
    fn rounds(x: u128, keys: &[u128]) -> u128 {
        let mut b = Block::from(x.to_be_bytes());
        for k in keys {
            cipher_round(&mut b, &Block::from(k.to_be_bytes()));
        }
        let out = load(&b);
        b.as_mut_slice().zeroize();
        out
    }

    /// E(j,i) for j ≥ 0: AES4 with round keys (0, J, I, L, 0) of
    /// X ⊕ jJ ⊕ 2^⌈i/8⌉ I ⊕ (i mod 8) L.
    fn e(&self, j: u64, i: u64, x: u128) -> u128 {
        let mut steps = IMultiples::new(self.i);
        let mut i_mult = steps.next_for(0);
        for k in 1..=i {
            i_mult = steps.next_for(k);
        }
        self.e_at(j, i, i_mult, x)
    }

    /// E(j,i) with 2^⌈i/8⌉ I already computed (see [`IMultiples`]).
    fn e_at(&self, j: u64, i: u64, i_mult: u128, x: u128) -> u128 {
        let offset = mul(j, self.j) ^ i_mult ^ mul(i % 8, self.l);
        Self::rounds(x ^ offset, &[self.j, self.i, self.l, 0])
    }

    /// E(-1,i): AES10 with round keys (0, I, J, L, I, J, L, I, J, L, I) of
    /// X ⊕ iL.
    fn e_neg(&self, i: u64, x: u128) -> u128 {
        let (a, b, c) = (self.i, self.j, self.l);
        Self::rounds(x ^ mul(i, self.l), &[a, b, c, a, b, c, a, b, c, a])
    }

    /// One string of the tweak vector, hashed under the tweak's index j.
    fn hash_string(&self, j: u64, s: &[u8]) -> u128 {
        if s.is_empty() {
            return self.e(j, 0, PAD_EMPTY);
        }
        let mut acc = 0u128;
        let mut steps = IMultiples::new(self.i);
        let mut chunks = s.chunks_exact(BLOCK);
        for (k, chunk) in (1u64..).zip(&mut chunks) {
            acc ^= self.e_at(j, k, steps.next_for(k), load(chunk));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            acc ^= self.e(j, 0, pad(rest));
        }
        acc
    }

    /// AEZ-hash of the tweak ([τ]₁₂₈, N, A₁, …, Aₘ); τ in bits. The i-th
    /// string of the tweak (from 1) is hashed under j = i + 2.
    fn hash(&self, tau_bits: u128, nonce: &[u8], ad: &[&[u8]]) -> u128 {
        let mut delta = self.e(3, 1, tau_bits) ^ self.hash_string(4, nonce);
        for (j, a) in (5u64..).zip(ad) {
            delta ^= self.hash_string(j, a);
        }
        delta
    }

    /// AEZ-prf: E(-1,3)(Δ ⊕ [k]₁₂₈) for k = 0, 1, …, truncated to `out`.
    fn prf(&self, delta: u128, out: &mut [u8]) {
        for (k, chunk) in (0u128..).zip(out.chunks_mut(BLOCK)) {
            chunk.fill(0);
            xor_into(chunk, self.e_neg(3, delta ^ k));
        }
    }

    /// AEZ-tiny's closing step for strings under 128 bits: the first bit is
    /// flipped by a bit that depends on all the others. It undoes itself.
    fn tiny_first_bit(&self, delta: u128, c: &mut [u8]) {
        let mut b = [0u8; BLOCK];
        b[..c.len()].copy_from_slice(c);
        b[0] |= 0x80;
        let t = self.e(0, 3, delta ^ u128::from_be_bytes(b));
        b.zeroize();
        c[0] ^= (t >> 120) as u8 & 0x80;
    }

    /// AEZ-tiny: a balanced Feistel network on the two halves of a string of
    /// 1 to 31 bytes (halves of 4 to 124 bits).
    fn tiny(&self, delta: u128, input: &[u8], decipher: bool) -> Zeroizing<Vec<u8>> {
        let m = input.len() * 8;
        let n = m / 2;
        let rounds: u128 = match input.len() {
            1 => 24,
            2 => 16,
            len if len < 16 => 10,
            _ => 8,
        };
        let j = if m >= 128 { 6 } else { 7 };
        let mask = !(u128::MAX >> n);
        let mut buf = Zeroizing::new(input.to_vec());
        if decipher && m < 128 {
            self.tiny_first_bit(delta, &mut buf);
        }
        let mut left = get_bits(&buf, 0, n);
        let mut right = get_bits(&buf, n, n);
        for step in 0..rounds {
            let round = if decipher { rounds - 1 - step } else { step };
            let padded = right | (1u128 << (127 - n));
            let f = self.e(0, j, delta ^ padded ^ round) & mask;
            let next = left ^ f;
            left = right;
            right = next;
        }
        set_bits(&mut buf, 0, n, right);
        set_bits(&mut buf, n, n, left);
        left.zeroize();
        right.zeroize();
        if !decipher && m < 128 {
            self.tiny_first_bit(delta, &mut buf);
        }
        buf
    }

    /// The checksum of the 0 to 31 bytes between the pairs and the last two
    /// blocks: E(0,4) of the first block (padded if short), E(0,5) of the
    /// padded rest when the first block is full.
    fn core_tail_sum(&self, uv: &[u8]) -> u128 {
        match uv.len() {
            0 => 0,
            len if len < BLOCK => self.e(0, 4, pad(uv)),
            _ => self.e(0, 4, load(&uv[..BLOCK])) ^ self.e(0, 5, pad(&uv[BLOCK..])),
        }
    }

    /// AEZ-core for strings of 32 bytes or more. Deciphering is the same
    /// walk with the tweaks of the two middle rounds swapped (1 ↔ 2).
    fn core(&self, delta: u128, input: &[u8], decipher: bool) -> Zeroizing<Vec<u8>> {
        let len = input.len();
        let pairs = (len - TINY_LIMIT) / TINY_LIMIT;
        let uv_len = len - TINY_LIMIT - pairs * TINY_LIMIT;
        let (first, second) = if decipher { (2, 1) } else { (1, 2) };
        let mut out = Zeroizing::new(vec![0u8; len]);
        // Pass 1: each pair (Xi, Xi') becomes (Wi, Xi'') and is summed.
        let mut sum_x = 0u128;
        let mut steps = IMultiples::new(self.i);
        for (i, pair) in (1u64..).zip(input[..pairs * TINY_LIMIT].chunks_exact(TINY_LIMIT)) {
            let w = load(&pair[..BLOCK]) ^ self.e_at(1, i, steps.next_for(i), load(&pair[BLOCK..]));
            let x = load(&pair[BLOCK..]) ^ self.e(0, 0, w);
            sum_x ^= x;
            let at = (i as usize - 1) * TINY_LIMIT;
            out[at..at + BLOCK].copy_from_slice(&w.to_be_bytes());
            out[at + BLOCK..at + TINY_LIMIT].copy_from_slice(&x.to_be_bytes());
        }
        let uv_at = pairs * TINY_LIMIT;
        sum_x ^= self.core_tail_sum(&input[uv_at..uv_at + uv_len]);
        // The middle: two rounds on the last two blocks give S.
        let xx = load(&input[len - TINY_LIMIT..len - BLOCK]);
        let xy = load(&input[len - BLOCK..]);
        let sx = xx ^ sum_x ^ delta ^ self.e(0, first, xy);
        let sy = xy ^ self.e_neg(first, sx);
        let s = sx ^ sy;
        // Pass 2: every pair is masked by E(2,i)(S) and mixed again.
        let mut sum_y = 0u128;
        let mut steps = IMultiples::new(self.i);
        for (i, pair) in (1u64..).zip(out[..pairs * TINY_LIMIT].chunks_exact_mut(TINY_LIMIT)) {
            let i_mult = steps.next_for(i);
            let mask = self.e_at(2, i, i_mult, s);
            let y = load(&pair[..BLOCK]) ^ mask;
            let y2 = load(&pair[BLOCK..]) ^ mask;
            let c2 = y ^ self.e(0, 0, y2);
            let c = y2 ^ self.e_at(1, i, i_mult, c2);
            sum_y ^= y;
            pair[..BLOCK].copy_from_slice(&c.to_be_bytes());
            pair[BLOCK..].copy_from_slice(&c2.to_be_bytes());
        }
        // The tail is masked by E(-1,4)(S) and E(-1,5)(S).
        let uv = &mut out[uv_at..uv_at + uv_len];
        uv.copy_from_slice(&input[uv_at..uv_at + uv_len]);
        let (u, v) = uv.split_at_mut(uv_len.min(BLOCK));
        xor_into(u, self.e_neg(4, s));
        xor_into(v, self.e_neg(5, s));
        sum_y ^= self.core_tail_sum(&out[uv_at..uv_at + uv_len]);
        let cy = sx ^ self.e_neg(second, sy);
        let cx = sy ^ delta ^ sum_y ^ self.e(0, second, cy);
        out[len - TINY_LIMIT..len - BLOCK].copy_from_slice(&cx.to_be_bytes());
        out[len - BLOCK..].copy_from_slice(&cy.to_be_bytes());
        out
    }

    /// Encipher (or decipher) a non-empty string under the tweak hash Δ.
    fn encipher(&self, delta: u128, input: &[u8], decipher: bool) -> Zeroizing<Vec<u8>> {
        if input.len() < TINY_LIMIT {
            self.tiny(delta, input, decipher)
        } else {
            self.core(delta, input, decipher)
        }
    }
}

/// [τ]₁₂₈ for an authenticator of `tau` bytes.
fn tau_bits(tau: usize) -> u128 {
    (tau as u128) * 8
}

/// AEZ encryption: `plaintext ‖ 0^tau` enciphered under the tweak
/// (τ, nonce, ad…), or AEZ-prf when the plaintext is empty. The result is
/// `tau` bytes longer than the plaintext; `tau` is in bytes.
pub fn encrypt(key: &[u8], nonce: &[u8], ad: &[&[u8]], tau: usize, plaintext: &[u8]) -> Vec<u8> {
    let k = Key::extract(key);
    let delta = k.hash(tau_bits(tau), nonce, ad);
    if plaintext.is_empty() {
        let mut out = vec![0u8; tau];
        k.prf(delta, &mut out);
        return out;
    }
    let mut x = Zeroizing::new(Vec::with_capacity(plaintext.len() + tau));
    x.extend_from_slice(plaintext);
    x.resize(plaintext.len() + tau, 0);
    k.encipher(delta, &x, false).to_vec()
}

/// AEZ decryption: the plaintext, or [`AuthError`] if the ciphertext is
/// shorter than `tau` or its last `tau` deciphered bytes are not zero.
pub fn decrypt(
    key: &[u8],
    nonce: &[u8],
    ad: &[&[u8]],
    tau: usize,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AuthError> {
    if ciphertext.len() < tau {
        return Err(AuthError);
    }
    let k = Key::extract(key);
    let delta = k.hash(tau_bits(tau), nonce, ad);
    if ciphertext.len() == tau {
        let mut expect = Zeroizing::new(vec![0u8; tau]);
        k.prf(delta, &mut expect);
        let diff = expect
            .iter()
            .zip(ciphertext)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        return if diff == 0 {
            Ok(Zeroizing::new(Vec::new()))
        } else {
            Err(AuthError)
        };
    }
    let mut x = k.encipher(delta, ciphertext, true);
    let m_len = ciphertext.len() - tau;
    let nonzero = x[m_len..].iter().fold(0u8, |acc, b| acc | b);
    if nonzero != 0 {
        return Err(AuthError);
    }
    x.truncate(m_len);
    Ok(x)
}

#[cfg(test)]
mod tests;
