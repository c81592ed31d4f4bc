//! The spool journal parser (`spool::parse_journal`, used by `Spool::load`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = chanvault::spool::parse_journal(data) {
        assert!(!e.to_string().contains('\n'), "one-line error");
    }
});
