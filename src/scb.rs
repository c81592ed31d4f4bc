//! Static channel backup snapshots and their fingerprints.
//!
//! lnd encrypts every export with a fresh nonce, so two exports of the same
//! channel state never share bytes. What identifies a state is the set of
//! channel points it covers: the fingerprint is SHA-256 over that set in a
//! canonical form, which is stable across exports and across lnd versions.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A channel's funding outpoint, `txid:index` with the txid in the usual
/// (byte-reversed, display) hex order, as lncli and lnd's RPC strings show it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChanPoint {
    /// Transaction id in internal (wire) byte order, as in `funding_txid_bytes`.
    pub txid: [u8; 32],
    pub index: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad channel point {input:?}: {reason}")]
pub struct ChanPointError {
    pub input: String,
    pub reason: &'static str,
}

impl ChanPoint {
    /// From `funding_txid_bytes` (internal order) and an output index.
    pub fn from_wire(txid: &[u8], index: u32) -> Result<Self, ChanPointError> {
        let txid: [u8; 32] = txid.try_into().map_err(|_| ChanPointError {
            input: hex::encode(txid),
            reason: "funding txid must be 32 bytes",
        })?;
        Ok(Self { txid, index })
    }

    /// The txid as display hex (reversed byte order).
    pub fn txid_hex(&self) -> String {
        // 64 hex digits: ASCII.
        String::from_utf8_lossy(&self.display_hex()).into_owned()
    }

    /// `txid:index`, as [`fmt::Display`] writes it, in one allocation of
    /// its exact size: `to_string` grows its buffer four times, and the
    /// record of every new backup holds the text of each channel (~1 ms
    /// at 10,000 channels, on the event's path).
    pub fn text(&self) -> String {
        let (digits, len) = decimal(self.index);
        let mut out = Vec::with_capacity(65 + len);
        out.extend_from_slice(&self.display_hex());
        out.push(b':');
        out.extend_from_slice(&digits[..len]);
        // Hex digits, a colon and decimal digits: ASCII.
        String::from_utf8(out).unwrap_or_default()
    }

    /// The txid's display hex: its bytes reversed, as ASCII digits.
    fn display_hex(&self) -> [u8; 64] {
        let mut rev = self.txid;
        rev.reverse();
        hex64(&rev)
    }
}

/// 32 bytes as 64 lowercase hex digits, without an allocation.
fn hex64(bytes: &[u8; 32]) -> [u8; 64] {
    let mut hex = [0u8; 64];
    // 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(bytes, &mut hex);
    hex
}

impl fmt::Display for ChanPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.display_hex();
        let hex = std::str::from_utf8(&hex).map_err(|_| fmt::Error)?;
        write!(f, "{hex}:{}", self.index)
    }
}

impl fmt::Debug for ChanPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChanPoint({self})")
    }
}

impl FromStr for ChanPoint {
    type Err = ChanPointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ChanPointError {
            input: s.chars().take(80).collect(),
            reason,
        };
        let (txid, index) = s
            .split_once(':')
            .ok_or_else(|| err("expected TXID:INDEX"))?;
        if txid.len() != 64 {
            return Err(err("txid must be 64 hex characters"));
        }
        // Straight into the array: `VerifyChanBackup` answers with every
        // channel as text, and a Vec per point cost ~1.5 ms at 10,000.
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(txid, &mut bytes).map_err(|_| err("txid is not hex"))?;
        bytes.reverse();
        let index = index
            .parse::<u32>()
            .map_err(|_| err("output index is not a 32-bit number"))?;
        Ok(Self { txid: bytes, index })
    }
}

/// One snapshot of all channel backups as lnd hands it out.
#[derive(Clone)]
pub struct Snapshot {
    /// The packed, lnd-encrypted multi-channel backup (the `channel.backup`
    /// file). Shared, not copied, by `VerifyChanBackup`'s request: it is
    /// megabytes at thousands of channels.
    pub multi: bytes::Bytes,
    /// The channels it covers, as lnd listed them next to the blob.
    pub chan_points: BTreeSet<ChanPoint>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("multi_len", &self.multi.len())
            .field("channels", &self.chan_points.len())
            .finish()
    }
}

/// SHA-256 over the distinct channel points, each as `txid:index\n`, in
/// the order of that text.
///
/// No string per point (10,000 of them on a large node, twice per event):
/// the txid's display hex is fixed-width and keeps byte order, so the text
/// order is the order of the reversed txid bytes, then of the index's
/// decimal digits compared as text ("12" before "9").
pub fn fingerprint<'a>(points: impl IntoIterator<Item = &'a ChanPoint>) -> String {
    let mut keys: Vec<([u8; 32], [u8; 10], usize)> = points
        .into_iter()
        .map(|p| {
            let mut rev = p.txid;
            rev.reverse();
            let (digits, len) = decimal(p.index);
            (rev, digits, len)
        })
        .collect();
    keys.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1[..a.2].cmp(&b.1[..b.2])));
    keys.dedup();
    let mut h = Sha256::new();
    for (rev, digits, len) in &keys {
        h.update(hex64(rev));
        h.update(b":");
        h.update(&digits[..*len]);
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// `n` in decimal ASCII, left-aligned, and how many digits.
fn decimal(mut n: u32) -> ([u8; 10], usize) {
    let mut rev = [0u8; 10];
    let mut len = 0;
    loop {
        rev[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut out = [0u8; 10];
    for i in 0..len {
        out[i] = rev[len - 1 - i];
    }
    (out, len)
}

/// SHA-256 of raw bytes, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TXID: &str = "a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566778899a";

    #[test]
    fn chan_point_display_is_reversed_hex_and_round_trips() {
        let cp: ChanPoint = format!("{TXID}:1").parse().unwrap();
        assert_eq!(cp.to_string(), format!("{TXID}:1"));
        // Wire order is the reverse of display order.
        assert_eq!(cp.txid[0], 0x9a);
        assert_eq!(ChanPoint::from_wire(&cp.txid, 1).unwrap(), cp);
    }

    #[test]
    fn chan_point_rejects_garbage_with_reason() {
        assert_eq!(
            "nope".parse::<ChanPoint>().unwrap_err().reason,
            "expected TXID:INDEX"
        );
        assert!(format!("{}:x", TXID).parse::<ChanPoint>().is_err());
        assert!("abcd:1".parse::<ChanPoint>().is_err());
        assert!(ChanPoint::from_wire(&[0u8; 31], 0).is_err());
    }

    #[test]
    fn fingerprint_ignores_order_and_changes_with_content() {
        let a: ChanPoint = format!("{TXID}:0").parse().unwrap();
        let b: ChanPoint = format!("{TXID}:1").parse().unwrap();
        assert_eq!(fingerprint([&a, &b]), fingerprint([&b, &a]));
        assert_ne!(fingerprint([&a]), fingerprint([&a, &b]));
        // The empty set has a well-defined fingerprint: SHA-256 of nothing.
        assert_eq!(
            fingerprint([]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    /// The definition, spelled out with strings: what journals, manifests
    /// and targets already hold must not change.
    fn fingerprint_by_text(points: &[ChanPoint]) -> String {
        let sorted: BTreeSet<String> = points.iter().map(ToString::to_string).collect();
        let mut h = Sha256::new();
        for p in &sorted {
            h.update(p.as_bytes());
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    }

    #[test]
    fn fingerprint_is_the_sorted_text_of_the_points() {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        for n in [1, 2, 3, 50, 1000] {
            let mut points: Vec<ChanPoint> = (0..n)
                .map(|_| ChanPoint {
                    // Few distinct txids and indices of every width, so
                    // that ties on the txid and "12" against "9" occur.
                    txid: [rng.gen_range(0..3u8); 32],
                    index: match rng.gen_range(0..4) {
                        0 => rng.gen_range(0..10),
                        1 => rng.gen_range(10..200),
                        2 => rng.gen_range(0..100_000),
                        _ => u32::MAX - rng.gen_range(0..3),
                    },
                })
                .collect();
            points.push(points[0]); // a duplicate counts once
            assert_eq!(
                fingerprint(&points),
                fingerprint_by_text(&points),
                "{n} points"
            );
        }
        assert_eq!(decimal(0), (*b"0\0\0\0\0\0\0\0\0\0", 1));
        assert_eq!(decimal(u32::MAX), (*b"4294967295", 10));
    }

    #[test]
    fn the_records_text_of_a_point_is_what_display_writes_and_parses_back() {
        let mut txid = [0u8; 32];
        for (i, b) in txid.iter_mut().enumerate() {
            *b = (i * 37 + 5) as u8;
        }
        for index in [0, 1, 9, 10, 12345, u32::MAX] {
            let p = ChanPoint { txid, index };
            let text = p.text();
            assert_eq!(text, p.to_string());
            assert_eq!(
                text.len(),
                text.capacity(),
                "one allocation of the exact size"
            );
            assert_eq!(text.parse::<ChanPoint>().unwrap(), p);
            assert_eq!(text.split_once(':').unwrap().0, p.txid_hex());
        }
    }
}
