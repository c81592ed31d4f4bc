//! `seal::open` on arbitrary ciphertext (what a target or the spool hands back).
#![no_main]

use std::sync::LazyLock;

use chanvault::seal::Identities;
use chanvault::secret::SecretString;
use libfuzzer_sys::fuzz_target;

static IDS: LazyLock<Identities> = LazyLock::new(|| {
    let (secret, _recipient) = chanvault::seal::generate_identity();
    let text = SecretString::new(format!("{}\n", secret.expose()));
    Identities::from_secret_str(&text, "fuzz identity").expect("generated identity parses")
});

fuzz_target!(|data: &[u8]| {
    if let Err(e) = chanvault::seal::open(&IDS, data) {
        assert!(!e.to_string().contains('\n'), "one-line error");
    }
});
