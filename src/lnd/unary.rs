//! A unary call whose request goes out from buffers already held: a few
//! bytes of gRPC prefix and protobuf field headers, then the large bytes
//! field as the caller's own view of it.
//!
//! tonic's codec encodes every request into a buffer of its own before the
//! first byte leaves: for `VerifyChanBackup` a copy of the multi, megabytes
//! at thousands of channels, grown by doubling and (in `watch`, whose
//! allocator maps buffers over 4 MiB afresh) faulted in page by page. A
//! profile of `watch` at 10,000 channels put that copy at about 5 ms per
//! event, all of it before LND could start reading. Here the request is
//! the two buffers; the reply (small) is read whole and its one message
//! returned, with LND's status from the trailers as tonic reports it.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use prost::encoding::{WireType, encode_key, encode_varint};
use tonic::Status;

use super::{Authed, undecodable};

/// `ChanBackupSnapshot { multi_chan_backup: MultiChanBackup {
/// multi_chan_backup: multi } }` as one gRPC message, less the multi's own
/// bytes: what goes before them on the wire. With the multi after it, the
/// bytes are prost's encoding of that message (tested below).
pub(super) fn verify_request_head(multi_len: usize) -> Bytes {
    let mut inner = BytesMut::with_capacity(16);
    // proto3 leaves out an empty bytes field; prost does too.
    if multi_len > 0 {
        encode_key(2, WireType::LengthDelimited, &mut inner);
        encode_varint(multi_len as u64, &mut inner);
    }
    let inner_len = inner.len() + multi_len;
    let mut outer = BytesMut::with_capacity(32);
    encode_key(2, WireType::LengthDelimited, &mut outer);
    encode_varint(inner_len as u64, &mut outer);
    let message_len = outer.len() + inner_len;
    let mut head = BytesMut::with_capacity(5 + outer.len() + inner.len());
    // gRPC's prefix: not compressed, then the length, big-endian. A multi
    // over 4 GiB is far past what LND takes (MAX_MESSAGE_BYTES).
    head.extend_from_slice(&[0]);
    head.extend_from_slice(&u32::try_from(message_len).unwrap_or(u32::MAX).to_be_bytes());
    head.extend_from_slice(&outer);
    head.extend_from_slice(&inner);
    head.freeze()
}

/// Call `path` with `head` then `tail` as the request body; the reply's one
/// message (at most `max` bytes), or LND's status.
pub(super) async fn call(
    svc: Authed,
    path: &'static str,
    head: Bytes,
    tail: Bytes,
    max: usize,
) -> Result<Bytes, Status> {
    let frames = [head, tail].map(|b| Ok::<_, std::convert::Infallible>(http_body::Frame::data(b)));
    let body = http_body_util::StreamBody::new(tokio_stream::iter(frames));
    let mut body = super::stream::open_with(svc, path, tonic::body::Body::new(body)).await?;
    let mut reply = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        match frame?.into_data() {
            Ok(data) => {
                if reply.len() + data.len() > max.saturating_add(5) {
                    return Err(Status::out_of_range(format!(
                        "Error, decoded {}: more than {max} bytes",
                        super::TOO_LARGE
                    )));
                }
                reply.extend_from_slice(&data);
            }
            Err(frame) => {
                trailers = frame.into_trailers().ok();
                break;
            }
        }
    }
    match trailers.as_ref().and_then(Status::from_header_map) {
        Some(status) if status.code() != tonic::Code::Ok => return Err(status),
        Some(_) => {}
        None => return Err(Status::internal("the reply ended without a gRPC status")),
    }
    one_message(reply.freeze())
}

/// The single message of a unary reply's body.
fn one_message(mut body: Bytes) -> Result<Bytes, Status> {
    if body.len() < 5 {
        return Err(undecodable("the reply holds no message"));
    }
    let prefix = body.split_to(5);
    if prefix[0] != 0 {
        return Err(undecodable("a compressed reply, which was not asked for"));
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if len != body.len() {
        return Err(undecodable(format!(
            "the reply's message is {len} bytes long, the body holds {}",
            body.len()
        )));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn the_head_and_the_multi_are_prosts_encoding_of_the_request() {
        for len in [0usize, 1, 127, 128, 16_383, 16_384, 70_000, 2_097_152] {
            let multi = Bytes::from(vec![0xa5u8; len]);
            let req = super::super::MultiOnlySnapshot {
                multi_chan_backup: Some(super::super::SharedMultiBackup {
                    chan_points: vec![],
                    multi_chan_backup: multi.clone(),
                }),
            };
            let mut want = vec![0u8];
            want.extend_from_slice(&(req.encoded_len() as u32).to_be_bytes());
            req.encode(&mut want).unwrap();
            let mut got = verify_request_head(len).to_vec();
            got.extend_from_slice(&multi);
            assert_eq!(got, want, "multi of {len} bytes");
        }
    }

    #[test]
    fn a_reply_body_gives_its_one_message_or_says_what_is_wrong() {
        let framed = |flag: u8, len: u32, msg: &[u8]| {
            let mut b = vec![flag];
            b.extend_from_slice(&len.to_be_bytes());
            b.extend_from_slice(msg);
            Bytes::from(b)
        };
        assert_eq!(one_message(framed(0, 3, b"abc")).unwrap(), &b"abc"[..]);
        assert_eq!(one_message(framed(0, 0, b"")).unwrap(), &b""[..]);
        for (body, says) in [
            (Bytes::from_static(&[0, 0]), "no message"),
            (framed(1, 3, b"abc"), "compressed"),
            (framed(0, 4, b"abc"), "4 bytes long, the body holds 3"),
            (framed(0, 2, b"abc"), "2 bytes long, the body holds 3"),
        ] {
            let e = one_message(body).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Internal);
            assert!(e.message().starts_with("failed to decode Protobuf message"));
            assert!(e.message().contains(says), "{}", e.message());
        }
    }
}
