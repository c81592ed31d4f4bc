//! `wallet::aez::decrypt` on arbitrary ciphertext with a fixed key (what an
//! aezeed hands AEZ, and every other length). The first byte picks τ (0–16
//! bytes). Decryption must fail or succeed without panicking, and what
//! encrypts must decrypt to itself.
#![no_main]

use chanvault::wallet::aez;
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [0x42; 32];
const AD: &[&[u8]] = &[b"\x00salt1"];

fuzz_target!(|data: &[u8]| {
    let Some((&t, bytes)) = data.split_first() else {
        return;
    };
    let tau = usize::from(t % 17);
    let _ = aez::decrypt(&KEY, b"", AD, tau, bytes);
    let sealed = aez::encrypt(&KEY, b"", AD, tau, bytes);
    assert_eq!(sealed.len(), bytes.len() + tau);
    let opened = aez::decrypt(&KEY, b"", AD, tau, &sealed).expect("own ciphertext opens");
    assert_eq!(opened.as_slice(), bytes);
});
