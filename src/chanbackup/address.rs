//! Peer addresses inside a Single: lnwire's address list (BOLT 7 descriptors),
//! read the way lnd's `lnwire.ReadAddress` reads them (proto/NOTES.md §8).
//!
//! The list is a u16 byte length followed by descriptors. Type 0 is skipped
//! (one byte); types 1 to 5 are IPv4, IPv6, Tor v2, Tor v3 and a DNS
//! hostname; any other type makes lnd keep the type byte and *everything left
//! in the list* as one opaque blob, which we mirror with [`Address::Opaque`].

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::wire::{Cursor, ParseError};

/// Descriptor types (lnwire `addressType`).
const NO_ADDR: u8 = 0;
const TCP4: u8 = 1;
const TCP6: u8 = 2;
const ONION_V2: u8 = 3;
const ONION_V3: u8 = 4;
const DNS: u8 = 5;

/// Decoded lengths of Tor service keys (lnd `tor.V2DecodedLen`, `V3DecodedLen`).
pub const ONION_V2_LEN: usize = 10;
pub const ONION_V3_LEN: usize = 35;

/// One address of the channel peer, as lnd last knew it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Ipv4 {
        ip: Ipv4Addr,
        port: u16,
    },
    Ipv6 {
        ip: Ipv6Addr,
        port: u16,
    },
    /// Tor v2 service: the 10 decoded bytes of the `.onion` name.
    OnionV2 {
        key: [u8; ONION_V2_LEN],
        port: u16,
    },
    /// Tor v3 service: the 35 decoded bytes of the `.onion` name.
    OnionV3 {
        key: [u8; ONION_V3_LEN],
        port: u16,
    },
    /// BOLT 7 type 5. lnd does not check the name when reading, so neither do
    /// we; it is kept as bytes and printed escaped if not plain ASCII.
    Dns {
        hostname: Vec<u8>,
        port: u16,
    },
    /// An unknown type: its type byte and all the bytes after it in the list
    /// (lnd's `OpaqueAddrs`, which also swallows the rest of the list).
    Opaque {
        bytes: Vec<u8>,
    },
}

/// Tor's base32 (RFC 4648 alphabet, lower case), as lnd's `tor.Base32Encoding`.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

impl fmt::Display for Address {
    /// lncli's (Go's `net.Addr.String()`) forms: `1.2.3.4:9735`,
    /// `[::1]:9735`, `xyz.onion:9735`, `host.example:9735`; an opaque entry is
    /// its hex, as lnd's `OpaqueAddrs.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ipv4 { ip, port } => write!(f, "{ip}:{port}"),
            // Go prints an IPv4-mapped IPv6 address as plain IPv4.
            Address::Ipv6 { ip, port } => match ip.to_ipv4_mapped() {
                Some(v4) => write!(f, "{v4}:{port}"),
                None => write!(f, "[{ip}]:{port}"),
            },
            Address::OnionV2 { key, port } => write!(f, "{}.onion:{port}", base32(key)),
            Address::OnionV3 { key, port } => write!(f, "{}.onion:{port}", base32(key)),
            Address::Dns { hostname, port } => {
                write!(f, "{}:{port}", hostname.escape_ascii())
            }
            Address::Opaque { bytes } => write!(f, "{}", hex::encode(bytes)),
        }
    }
}

fn port(c: &mut Cursor<'_>) -> Result<u16, ParseError> {
    c.u16("addresses.port")
}

/// Read the u16-length-prefixed address list.
pub(super) fn read_list(c: &mut Cursor<'_>) -> Result<Vec<Address>, ParseError> {
    let len = usize::from(c.u16("addresses.length")?);
    let list = c.take(len, "addresses")?;
    let mut r = c.sub(list);
    let mut out = Vec::new();
    while !r.is_empty() {
        let kind = r.u8("addresses.type")?;
        let addr = match kind {
            NO_ADDR => continue,
            TCP4 => Address::Ipv4 {
                ip: Ipv4Addr::from(r.array::<4>("addresses.ipv4")?),
                port: port(&mut r)?,
            },
            TCP6 => Address::Ipv6 {
                ip: Ipv6Addr::from(r.array::<16>("addresses.ipv6")?),
                port: port(&mut r)?,
            },
            ONION_V2 => Address::OnionV2 {
                key: r.array("addresses.onion_v2")?,
                port: port(&mut r)?,
            },
            ONION_V3 => Address::OnionV3 {
                key: r.array("addresses.onion_v3")?,
                port: port(&mut r)?,
            },
            DNS => {
                let n = usize::from(r.u8("addresses.dns_length")?);
                Address::Dns {
                    hostname: r.take(n, "addresses.dns_hostname")?.to_vec(),
                    port: port(&mut r)?,
                }
            }
            other => {
                let mut bytes = vec![other];
                bytes.extend_from_slice(r.rest());
                Address::Opaque { bytes }
            }
        };
        out.push(addr);
    }
    Ok(out)
}

/// The smallest address list: just its length (0).
pub(super) const MIN_LIST_LEN: usize = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648_lowercase() {
        // RFC 4648 test vectors, lower-cased and without padding.
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "my");
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
        // A v2 onion is 10 bytes -> 16 characters, v3 is 35 -> 56.
        assert_eq!(base32(&[0u8; ONION_V2_LEN]).len(), 16);
        assert_eq!(base32(&[0u8; ONION_V3_LEN]).len(), 56);
    }
}
