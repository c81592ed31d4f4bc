//! The body of LND's `SubscribeChannelBackups` stream as it comes off the
//! HTTP/2 connection: gRPC framing, the top-level walk that keeps only the
//! multi, then prost. The first byte picks the size of the pieces the body
//! arrives in; the result must be the same for every size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, body)) = data.split_first() else {
        return;
    };
    let whole = chanvault::lnd::read_stream_bytes(body, body.len());
    let pieces = chanvault::lnd::read_stream_bytes(body, usize::from(piece) + 1);
    assert_eq!(format!("{whole:?}"), format!("{pieces:?}"), "depends on chunking");
    for r in &whole {
        if let Err(e) = r {
            assert!(!e.to_string().contains('\n'), "one-line error");
        }
    }
});
