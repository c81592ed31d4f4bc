//! `ChanPoint::from_str`: channel points from LND replies, the CLI and the journal.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(cp) = s.parse::<chanvault::scb::ChanPoint>() {
            // What parses must print back to something that parses to the same point.
            let again: chanvault::scb::ChanPoint = cp.to_string().parse().expect("round trip");
            assert_eq!(again, cp);
        }
    }
});
