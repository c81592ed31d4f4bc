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
        let mut rev = self.txid;
        rev.reverse();
        hex::encode(rev)
    }
}

impl fmt::Display for ChanPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.txid_hex(), self.index)
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
        let mut bytes: [u8; 32] = hex::decode(txid)
            .map_err(|_| err("txid is not hex"))?
            .try_into()
            .map_err(|_| err("txid must be 32 bytes"))?;
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

/// SHA-256 over the sorted channel points, each as `txid:index\n`.
pub fn fingerprint<'a>(points: impl IntoIterator<Item = &'a ChanPoint>) -> String {
    let sorted: BTreeSet<String> = points.into_iter().map(|p| p.to_string()).collect();
    let mut h = Sha256::new();
    for p in &sorted {
        h.update(p.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
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
}
