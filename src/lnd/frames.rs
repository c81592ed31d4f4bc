//! The backup stream's bytes, read as they arrive: gRPC's length-prefixed
//! messages over the HTTP/2 body ("Length-Prefixed-Message" in gRPC's
//! PROTOCOL-HTTP2), and inside each `ChanBackupSnapshot` only field 2, the
//! `MultiChanBackup`, is kept.
//!
//! lnd sends every channel's Single (field 1) beside the multi, together as
//! large as the multi. tonic's reader collected each whole message into one
//! buffer that grew by doubling (16 MiB of address space for a 10 MB message
//! at 10,000 channels, reallocated and copied on the way) and that the
//! multi's view then kept alive with the Singles in it. Here the Singles are
//! skipped as they arrive and the multi is gathered into one buffer of
//! exactly its size, allocated once when its length is read.
//!
//! Only the top level of the message is walked (field keys and lengths);
//! what is kept is decoded by prost afterwards, as before.

use bytes::Bytes;

/// Why the bytes are not a stream of `ChanBackupSnapshot`s. The texts match
/// the decoder verdicts `LndClient::status_error` reports as a bad reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrameError(pub(crate) String);

fn bad(what: impl std::fmt::Display) -> FrameError {
    FrameError(format!("{}: {what}", super::UNDECODABLE))
}

/// One message's top-level walk.
#[derive(Debug)]
enum Part {
    /// The 5-byte prefix: compressed flag and big-endian length.
    Prefix { got: [u8; 5], have: usize },
    /// A field key (varint).
    Key { value: u64, shift: u32 },
    /// The length of a length-delimited field (varint).
    Len { field: u64, value: u64, shift: u32 },
    /// A varint field's value, skipped.
    SkipVarint,
    /// Bytes skipped (a Single list, an unknown field).
    Skip { left: usize },
    /// Bytes of field 2 gathered.
    Keep { left: usize },
}

/// Reads `ChanBackupSnapshot` messages from the body's chunks; yields each
/// message's field 2 (the encoded `MultiChanBackup`), `None` for a message
/// without one.
#[derive(Debug)]
pub(crate) struct SnapshotFrames {
    max: usize,
    part: Part,
    /// Bytes of the current message not yet walked.
    left: usize,
    /// Field 2 of the current message (more than one occurrence merges, as
    /// protobuf merges a repeated embedded message: their bytes concatenate).
    multi: Option<Vec<u8>>,
}

impl SnapshotFrames {
    /// A reader that refuses a message longer than `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            part: Part::Prefix {
                got: [0; 5],
                have: 0,
            },
            left: 0,
            multi: None,
        }
    }

    /// Whether the reader is between messages (a clean place for the stream to end).
    pub(crate) fn at_boundary(&self) -> bool {
        matches!(self.part, Part::Prefix { have: 0, .. })
    }

    /// Walk one chunk; every message it completes goes to `out`.
    pub(crate) fn feed(
        &mut self,
        mut chunk: &[u8],
        out: &mut Vec<Option<Bytes>>,
    ) -> Result<(), FrameError> {
        while !chunk.is_empty() {
            let used = self.step(chunk)?;
            chunk = &chunk[used..];
            if !matches!(self.part, Part::Prefix { .. }) && self.left == 0 {
                self.end_of_message(out)?;
            }
        }
        Ok(())
    }

    /// Take what one state needs from `chunk`; the bytes used.
    fn step(&mut self, chunk: &[u8]) -> Result<usize, FrameError> {
        match &mut self.part {
            Part::Prefix { got, have } => {
                let n = (5 - *have).min(chunk.len());
                got[*have..*have + n].copy_from_slice(&chunk[..n]);
                *have += n;
                if *have == 5 {
                    let (flag, len) =
                        (got[0], u32::from_be_bytes([got[1], got[2], got[3], got[4]]));
                    self.start_message(flag, len as usize)?;
                }
                Ok(n)
            }
            Part::Key { value, shift } => {
                let (done, b) = varint_byte(value, shift, chunk[0])?;
                self.left -= 1;
                if done {
                    let key = *value;
                    self.part = match key & 7 {
                        0 => Part::SkipVarint,
                        1 => Part::Skip { left: 8 },
                        5 => Part::Skip { left: 4 },
                        2 => Part::Len {
                            field: key >> 3,
                            value: 0,
                            shift: 0,
                        },
                        t => return Err(bad(format!("invalid wire type {t}"))),
                    };
                    if key >> 3 == 0 {
                        return Err(bad("invalid field number 0"));
                    }
                    self.check_skip()?;
                }
                Ok(b)
            }
            Part::Len {
                field,
                value,
                shift,
            } => {
                let (done, b) = varint_byte(value, shift, chunk[0])?;
                self.left -= 1;
                if done {
                    let len = usize::try_from(*value).unwrap_or(usize::MAX);
                    if len > self.left {
                        return Err(bad("buffer underflow: a field is longer than its message"));
                    }
                    if *field == 2 {
                        let keep = self.multi.get_or_insert_with(Vec::new);
                        keep.reserve_exact(len);
                        self.part = Part::Keep { left: len };
                    } else {
                        self.part = Part::Skip { left: len };
                    }
                    self.field_done_if_empty();
                }
                Ok(b)
            }
            Part::SkipVarint => {
                self.left -= 1;
                if chunk[0] & 0x80 == 0 {
                    self.part = Part::Key { value: 0, shift: 0 };
                }
                Ok(1)
            }
            Part::Skip { left } => {
                let n = (*left).min(chunk.len());
                *left -= n;
                self.left -= n;
                self.field_done_if_empty();
                Ok(n)
            }
            Part::Keep { left } => {
                let n = (*left).min(chunk.len());
                if let Some(keep) = self.multi.as_mut() {
                    keep.extend_from_slice(&chunk[..n]);
                }
                *left -= n;
                self.left -= n;
                self.field_done_if_empty();
                Ok(n)
            }
        }
    }

    fn start_message(&mut self, flag: u8, len: usize) -> Result<(), FrameError> {
        if flag != 0 {
            return Err(FrameError(
                "a compressed message, which chanvault never asked for".into(),
            ));
        }
        if len > self.max {
            return Err(FrameError(format!(
                "{}: found {len} bytes, the limit is: {} bytes",
                super::TOO_LARGE,
                self.max
            )));
        }
        self.left = len;
        self.multi = None;
        self.part = Part::Key { value: 0, shift: 0 };
        Ok(())
    }

    /// A fixed-size skip must fit in the message.
    fn check_skip(&self) -> Result<(), FrameError> {
        match self.part {
            Part::Skip { left } if left > self.left => {
                Err(bad("buffer underflow: a field is longer than its message"))
            }
            _ => Ok(()),
        }
    }

    fn field_done_if_empty(&mut self) {
        if matches!(self.part, Part::Skip { left: 0 } | Part::Keep { left: 0 }) {
            self.part = Part::Key { value: 0, shift: 0 };
        }
    }

    fn end_of_message(&mut self, out: &mut Vec<Option<Bytes>>) -> Result<(), FrameError> {
        if !matches!(self.part, Part::Key { shift: 0, .. }) {
            return Err(bad("a field is cut off at the end of its message"));
        }
        out.push(self.multi.take().map(Bytes::from));
        self.part = Part::Prefix {
            got: [0; 5],
            have: 0,
        };
        Ok(())
    }
}

/// One byte of a varint into `value`; whether it was the last, and the
/// bytes used (always 1). More than ten bytes is not a varint.
fn varint_byte(value: &mut u64, shift: &mut u32, byte: u8) -> Result<(bool, usize), FrameError> {
    if *shift >= 64 {
        return Err(bad("invalid varint"));
    }
    *value |= u64::from(byte & 0x7f) << *shift;
    *shift += 7;
    Ok((byte & 0x80 == 0, 1))
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::lnd::SharedMultiBackup;
    use crate::lnd::proto;

    fn framed(msg: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8];
        v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        v.extend_from_slice(msg);
        v
    }

    fn snapshot(rng: &mut impl Rng, singles: usize, multi_len: usize) -> proto::ChanBackupSnapshot {
        let cp = |rng: &mut dyn rand::RngCore| proto::ChannelPoint {
            funding_txid: Some(proto::channel_point::FundingTxid::FundingTxidBytes(
                (0..32).map(|_| rng.r#gen()).collect(),
            )),
            output_index: rng.gen_range(0..4),
        };
        proto::ChanBackupSnapshot {
            single_chan_backups: Some(proto::ChannelBackups {
                chan_backups: (0..singles)
                    .map(|_| proto::ChannelBackup {
                        chan_point: Some(cp(rng)),
                        chan_backup: (0..rng.gen_range(0..300)).map(|_| rng.r#gen()).collect(),
                    })
                    .collect(),
            }),
            multi_chan_backup: Some(proto::MultiChanBackup {
                chan_points: (0..singles).map(|_| cp(rng)).collect(),
                multi_chan_backup: (0..multi_len).map(|_| rng.r#gen()).collect(),
            }),
        }
    }

    /// Cut into random chunks (HTTP/2 frames fall anywhere), the stream
    /// gives what prost's decoding of each whole message gives.
    #[test]
    fn any_chunking_gives_prosts_decoding_of_field_two() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..60 {
            let msgs: Vec<proto::ChanBackupSnapshot> = (0..3)
                .map(|_| {
                    let len = rng.gen_range(1..3000);
                    snapshot(&mut rng, round % 9, len)
                })
                .collect();
            let mut bytes = Vec::new();
            for m in &msgs {
                bytes.extend(framed(&m.encode_to_vec()));
            }
            let mut frames = SnapshotFrames::new(1 << 20);
            let mut out = Vec::new();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let n = rng.gen_range(1..=rest.len().min(700));
                frames.feed(&rest[..n], &mut out).unwrap();
                rest = &rest[n..];
            }
            assert!(frames.at_boundary());
            assert_eq!(out.len(), msgs.len());
            for (got, want) in out.iter().zip(&msgs) {
                let got = SharedMultiBackup::decode(got.clone().unwrap()).unwrap();
                let want = want.multi_chan_backup.clone().unwrap();
                assert_eq!(got.chan_points, want.chan_points);
                assert_eq!(
                    got.multi_chan_backup.as_ref(),
                    want.multi_chan_backup.as_slice()
                );
            }
        }
    }

    #[test]
    fn the_multi_is_gathered_into_a_buffer_of_its_size() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let m = snapshot(&mut rng, 50, 20_000);
        let mut frames = SnapshotFrames::new(1 << 20);
        let mut out = Vec::new();
        for chunk in framed(&m.encode_to_vec()).chunks(16 * 1024) {
            frames.feed(chunk, &mut out).unwrap();
        }
        let field2 = m.multi_chan_backup.unwrap().encode_to_vec();
        assert_eq!(out[0].as_deref(), Some(field2.as_slice()));
    }

    #[test]
    fn unknown_fields_are_skipped_and_a_message_without_a_multi_says_so() {
        // field 7 varint, field 8 fixed64, field 9 fixed32, field 3 bytes
        let msg = [
            0x38, 0x96, 0x01, 0x41, 1, 2, 3, 4, 5, 6, 7, 8, 0x4d, 1, 2, 3, 4, 0x1a, 2, 9, 9,
        ];
        let mut frames = SnapshotFrames::new(1024);
        let mut out = Vec::new();
        frames.feed(&framed(&msg), &mut out).unwrap();
        frames.feed(&framed(&[]), &mut out).unwrap();
        assert_eq!(out, vec![None, None]);
    }

    #[test]
    fn bad_bytes_are_refused_with_one_reason() {
        let refuse = |bytes: &[u8], max: usize| {
            let mut out = Vec::new();
            SnapshotFrames::new(max)
                .feed(bytes, &mut out)
                .unwrap_err()
                .0
        };
        // A key whose varint never ends (the hostile simulator's garbage).
        let e = refuse(&framed(&[0xff; 40]), 1024);
        assert!(e.starts_with("failed to decode Protobuf"), "{e}");
        // A field longer than its message.
        let e = refuse(&framed(&[0x12, 0x7f, 1, 2]), 1024);
        assert!(e.contains("longer than its message"), "{e}");
        // A message cut inside a key.
        let e = refuse(&framed(&[0x12, 0x01, 0x00, 0x80]), 1024);
        assert!(e.contains("cut off"), "{e}");
        // Groups are not in lnd's messages.
        let e = refuse(&framed(&[0x0b]), 1024);
        assert!(e.contains("wire type 3"), "{e}");
        // Over the limit: refused at the prefix, before anything is read.
        let mut huge = vec![0u8];
        huge.extend_from_slice(&(2u32 << 30).to_be_bytes());
        let e = refuse(&huge, 64 << 20);
        assert!(e.starts_with("message length too large"), "{e}");
        // Compressed: never asked for.
        let e = refuse(&[1, 0, 0, 0, 0], 1024);
        assert!(e.contains("compressed"), "{e}");
    }
}
