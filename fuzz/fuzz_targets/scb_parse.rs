//! A decrypted static channel backup (`chanbackup::Multi::parse` and
//! `chanbackup::Single::parse`): lnd's Multi and Single plaintexts. The bytes
//! are past the AEAD in real use, but a parser of funds-critical data must
//! not panic on anything.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match chanvault::chanbackup::Multi::parse(data) {
        Ok(m) => {
            for s in &m.singles {
                let _ = s.chan_point().to_string();
                for a in &s.addresses {
                    assert!(!a.to_string().contains('\n'), "one-line address");
                }
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "one-line error"),
    }
    if let Err(e) = chanvault::chanbackup::Single::parse(data) {
        assert!(!e.to_string().contains('\n'), "one-line error");
    }
});
