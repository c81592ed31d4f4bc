//! A restic lock file after decryption (`sink::restic::parse_lock_plaintext`):
//! plain JSON, or restic 0.14's version byte 2 + zstd, inflated with a bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = chanvault::sink::restic::parse_lock_plaintext(data) {
        assert!(!e.contains('\n'), "one-line error");
    }
});
