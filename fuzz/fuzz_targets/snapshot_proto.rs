//! An LND `ChanBackupSnapshot` as it comes off the wire: prost decoding, then
//! `lnd::snapshot_from_proto`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = chanvault::lnd::proto::ChanBackupSnapshot::decode(data) {
        if let Err(e) = chanvault::lnd::snapshot_from_proto("SubscribeChannelBackups", s) {
            assert!(!e.to_string().contains('\n'), "one-line error");
        }
    }
});
