//! aezeed mnemonic text → `CipherSeed::decipher` (a fixed passphrase, lnd's
//! test scrypt N = 16). The first byte picks the mode: text as typed, or 29
//! raw bytes given a valid checksum so AEZ and the version checks are reached.
#![no_main]

use chanvault::wallet::aezeed::{CipherSeed, Mnemonic};
use libfuzzer_sys::fuzz_target;

/// N = 2^4, as lnd's aezeed tests.
const TEST_LOG_N: u8 = 4;

fn open(m: &Mnemonic) {
    // Round trip: the words print and parse back to the same mnemonic.
    let again: Mnemonic = m.phrase().parse().expect("printed words parse");
    assert_eq!(&again, m);
    if let Err(e) = CipherSeed::decipher_with_scrypt_log_n_for_tests(m, b"fuzz", TEST_LOG_N) {
        assert!(!e.to_string().contains('\n'), "one-line error");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        if let Some(body) = rest.get(..29).and_then(|b| <&[u8; 29]>::try_from(b).ok()) {
            open(&Mnemonic::with_checksum_for_tests(body));
        }
        return;
    }
    match String::from_utf8_lossy(rest).parse::<Mnemonic>() {
        Ok(m) => open(&m),
        Err(e) => assert!(!e.to_string().contains('\n'), "one-line error"),
    }
});
