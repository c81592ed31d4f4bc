//! A bounds-checked reader of lnwire's big-endian fields, and the one parse
//! error type, which names the Single (by index) and the field that failed.

use std::fmt;

/// Where a parse failed: the Multi header, or Single number `n` (0-based, in
/// blob order), and the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The Single being read, `None` for the Multi header.
    pub single: Option<u32>,
    /// The field, in lnd's terms (`remote_node_pub`, `local.csv_delay`, …).
    pub field: &'static str,
    pub kind: Kind,
}

/// What was wrong with the bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Kind {
    #[error("cut short: needs {need} bytes, {left} left")]
    Truncated { need: usize, left: usize },
    #[error("unknown multi-channel backup version {0} (lnd writes only version 0)")]
    UnknownMultiVersion(u8),
    #[error(
        "unknown single-channel backup version {version} (version byte {raw:#04x}); \
         this reader knows versions 0 to 7, a newer lnd may have written it"
    )]
    UnknownSingleVersion { version: u8, raw: u8 },
    #[error("claims {count} channels, but the {left} bytes left can hold at most {max}")]
    ImpossibleCount { count: u32, left: usize, max: usize },
    #[error("{0} bytes left over, where lnd writes none")]
    TrailingBytes(usize),
    #[error("is {0}, expected 0 or 1")]
    NotBool(u8),
    #[error("is not a valid compressed secp256k1 public key")]
    BadPubkey,
    #[error("commitment transaction does not decode: {0}")]
    BadTransaction(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.single {
            Some(i) => write!(f, "single #{i}, field {}: {}", self.field, self.kind),
            None => write!(f, "multi header, field {}: {}", self.field, self.kind),
        }
    }
}

impl std::error::Error for ParseError {}

/// A cursor over a byte slice that knows which Single it is reading, so
/// every error it makes is already placed.
pub(super) struct Cursor<'a> {
    buf: &'a [u8],
    single: Option<u32>,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(buf: &'a [u8], single: Option<u32>) -> Self {
        Self { buf, single }
    }

    /// A cursor over `buf` that reports errors for the same Single.
    pub(super) fn sub(&self, buf: &'a [u8]) -> Cursor<'a> {
        Cursor::new(buf, self.single)
    }

    pub(super) fn err(&self, field: &'static str, kind: Kind) -> ParseError {
        ParseError {
            single: self.single,
            field,
            kind,
        }
    }

    pub(super) fn left(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(super) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ParseError> {
        if self.buf.len() < n {
            return Err(self.err(
                field,
                Kind::Truncated {
                    need: n,
                    left: self.buf.len(),
                },
            ));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// What is left, without consuming it.
    pub(super) fn peek_rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Errors from here on name Single `single` (`None`: the Multi header).
    pub(super) fn set_single(&mut self, single: Option<u32>) {
        self.single = single;
    }

    pub(super) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub(super) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], ParseError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, ParseError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(super) fn u16(&mut self, field: &'static str) -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32, ParseError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(super) fn u64(&mut self, field: &'static str) -> Result<u64, ParseError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// lnd writes a bool as one byte 0 or 1. lnd reads anything but 1 as
    /// false; we refuse other values, since lnd never writes them.
    pub(super) fn bool(&mut self, field: &'static str) -> Result<bool, ParseError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.err(field, Kind::NotBool(b))),
        }
    }

    /// Nothing may follow: lnd's writer leaves no bytes over.
    pub(super) fn finish(&self, field: &'static str) -> Result<(), ParseError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err(field, Kind::TrailingBytes(self.buf.len())))
        }
    }
}
