//! aezeed against lnd's own vectors (lnd `aezeed/cipherseed_test.go`, read at
//! lightningnetwork/lnd @0fd335a631b6f35829482ec974fc3177e89dbd8a; the test
//! file lowers scrypt's N to 16 for them, so they run with `TEST_LOG_N`).

use std::str::FromStr;

use bitcoin::bip32::{DerivationPath, Xpriv, Xpub};
use bitcoin::secp256k1::{PublicKey, Secp256k1};

use super::*;

/// N = 2^4 = 16, as lnd's test file sets it.
const TEST_LOG_N: u8 = 4;
const ENTROPY: [u8; ENTROPY_SIZE] = [
    0x81, 0xb6, 0x37, 0xd8, 0x63, 0x59, 0xe6, 0x96, 0x0d, 0xe7, 0x95, 0xe4, 0x1e, 0x0b, 0x4c, 0xfd,
];
const SALT: [u8; SALT_SIZE] = *b"salt1";
/// lnd's first vector: birthday 0 (the genesis day), no passphrase.
const MNEMONIC_NO_PASS: &str = "ability liquid travel stem barely drastic pact cupboard apple thrive morning oak feature tissue couch old math inform success suggest drink motion know royal";
/// lnd's second vector: born 2018-03-23 (day 3365), with a passphrase.
const MNEMONIC_PASS: &str = "able tree stool crush transfer cloud cross three profit outside hen citizen plate ride require leg siren drum success suggest drink require fiscal upgrade";
const PASS: &[u8] = b"!very_safe_55345_password*";

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn open(mnemonic: &str, pass: &[u8]) -> Result<CipherSeed, SeedError> {
    let m = Mnemonic::from_str(mnemonic)?;
    CipherSeed::decipher_with_scrypt_log_n_for_tests(&m, pass, TEST_LOG_N)
}

/// No word of `mnemonic` and not the passphrase in `message`.
fn assert_clean(message: &str, mnemonic: &str, pass: &[u8]) {
    let tokens: Vec<String> = message
        .split(|c: char| !c.is_ascii_alphabetic())
        .map(str::to_ascii_lowercase)
        .collect();
    for w in words(mnemonic) {
        assert!(
            !tokens.contains(&w),
            "{message:?} names a word of the mnemonic"
        );
    }
    if !pass.is_empty() {
        assert!(
            !message.contains(&*String::from_utf8_lossy(pass)),
            "{message:?} has the passphrase"
        );
    }
    assert!(!message.contains('\n'));
}

#[test]
fn crc32c_check_value() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c(b""), 0);
}

#[test]
fn lnd_vectors_encipher_to_the_same_words() {
    let seed = CipherSeed::new(&ENTROPY, 0, SALT);
    let m = seed.encipher(b"", TEST_LOG_N).expect("encipher");
    assert_eq!(*m.phrase(), MNEMONIC_NO_PASS);
    let seed = CipherSeed::new(&ENTROPY, birthday_from_unix(1_521_799_345), SALT);
    assert_eq!(seed.birthday(), 3365);
    let m = seed.encipher(PASS, TEST_LOG_N).expect("encipher");
    assert_eq!(*m.phrase(), MNEMONIC_PASS);
}

#[test]
fn lnd_vectors_decipher() {
    for (text, pass, birthday) in [(MNEMONIC_NO_PASS, &b""[..], 0), (MNEMONIC_PASS, PASS, 3365)] {
        let seed = open(text, pass).expect("opens");
        assert_eq!(seed.internal_version(), 0);
        assert_eq!(seed.birthday(), birthday);
        assert_eq!(seed.entropy(), &ENTROPY);
        assert_eq!(seed.salt(), SALT);
    }
    // An empty passphrase is "aezeed".
    assert!(open(MNEMONIC_NO_PASS, b"aezeed").is_ok());
}

#[test]
fn birthdays_count_days_from_genesis() {
    assert_eq!(birthday_from_unix(BITCOIN_GENESIS_UNIX), 0);
    assert_eq!(birthday_from_unix(BITCOIN_GENESIS_UNIX - 1), 0);
    assert_eq!(birthday_from_unix(i64::MAX / 2), u16::MAX);
    let seed = CipherSeed::new(&ENTROPY, 3365, SALT);
    assert_eq!(birthday_from_unix(seed.birthday_unix()), 3365);
}

#[test]
fn real_scrypt_round_trip() {
    let seed = CipherSeed::generate(birthday_from_unix(1_764_547_200)).expect("random");
    let m = seed.to_mnemonic(b"correct horse").expect("encipher");
    let parsed = Mnemonic::from_str(&m.phrase()).expect("parses");
    assert_eq!(parsed, m);
    let back = CipherSeed::decipher(&parsed, b"correct horse").expect("opens");
    assert_eq!(back.entropy(), seed.entropy());
    assert_eq!(back.birthday(), seed.birthday());
    assert_eq!(back.salt(), seed.salt());
    assert_eq!(
        CipherSeed::decipher(&parsed, b"").unwrap_err(),
        SeedError::WrongPassphrase
    );
}

#[test]
fn parsing_tolerates_case_and_whitespace() {
    let messy = format!("  {}\n", MNEMONIC_PASS.to_uppercase().replace(' ', " \t "));
    let m = Mnemonic::from_str(&messy).expect("parses");
    assert_eq!(*m.phrase(), MNEMONIC_PASS);
    let bytes = m.to_bytes();
    assert_eq!(Mnemonic::from_bytes(&bytes), m);
}

#[test]
fn wrong_passphrase() {
    let err = open(MNEMONIC_PASS, b"!very_safe_55345_password").unwrap_err();
    assert_eq!(err, SeedError::WrongPassphrase);
    assert_eq!(err.to_string(), "the passphrase does not open this seed");
    assert_clean(&err.to_string(), MNEMONIC_PASS, PASS);
    assert_eq!(
        open(MNEMONIC_NO_PASS, b"kek").unwrap_err(),
        SeedError::WrongPassphrase
    );
}

#[test]
fn word_errors_say_where_not_what() {
    let mut w = words(MNEMONIC_PASS);
    w[6] = "kek".into();
    let err = open(&w.join(" "), PASS).unwrap_err();
    assert_eq!(err, SeedError::UnknownWord { position: 7 });
    assert!(err.to_string().contains("word 7 "));
    assert!(!err.to_string().contains("kek"));
    assert_clean(&err.to_string(), MNEMONIC_PASS, PASS);

    let err = open(&words(MNEMONIC_PASS)[..23].join(" "), PASS).unwrap_err();
    assert_eq!(err, SeedError::WordCount(23));
    assert!(err.to_string().contains("23"));
    assert_eq!(open("", PASS).unwrap_err(), SeedError::WordCount(0));
    assert_eq!(
        open(&format!("{MNEMONIC_PASS} able"), PASS).unwrap_err(),
        SeedError::WordCount(25)
    );
}

#[test]
fn swapped_or_changed_words_fail_the_checksum() {
    // lnd's own test swaps words 10 and 14.
    let mut w = words(MNEMONIC_PASS);
    w.swap(9, 13);
    let err = open(&w.join(" "), PASS).unwrap_err();
    assert_eq!(err, SeedError::BadChecksum);
    assert_clean(&err.to_string(), MNEMONIC_PASS, PASS);
    for n in [0, 5, 12, 23] {
        let mut w = words(MNEMONIC_NO_PASS);
        w[n] = if w[n] == "zoo" {
            "zone".into()
        } else {
            "zoo".into()
        };
        assert_eq!(
            open(&w.join(" "), b"").unwrap_err(),
            SeedError::BadChecksum,
            "word {n}"
        );
    }
}

/// The 33 bytes with one byte changed and the checksum made right again.
fn tampered(text: &str, at: usize, value: u8) -> String {
    let mut bytes = Mnemonic::from_str(text).expect("parses").to_bytes();
    bytes[at] = value;
    let crc = crc32c(&bytes[..CHECKSUM_OFFSET]);
    bytes[CHECKSUM_OFFSET..].copy_from_slice(&crc.to_be_bytes());
    Mnemonic::from_bytes(&bytes).phrase().to_string()
}

#[test]
fn unknown_external_version() {
    let text = tampered(MNEMONIC_PASS, 0, 44);
    let err = open(&text, PASS).unwrap_err();
    assert_eq!(err, SeedError::UnknownExternalVersion(44));
    assert_clean(&err.to_string(), &text, PASS);
}

#[test]
fn tampered_ciphertext_or_salt_does_not_open() {
    for at in [1, 12, 23, 24, 28] {
        let text = tampered(MNEMONIC_PASS, at, 0x5a);
        assert_eq!(
            open(&text, PASS).unwrap_err(),
            SeedError::WrongPassphrase,
            "byte {at}"
        );
    }
}

#[test]
fn unknown_internal_version() {
    let seed = CipherSeed::new(&ENTROPY, 7, SALT).with_internal_version(2);
    let m = seed.encipher(PASS, TEST_LOG_N).expect("encipher");
    let err = CipherSeed::decipher_with_scrypt_log_n_for_tests(&m, PASS, TEST_LOG_N).unwrap_err();
    assert_eq!(err, SeedError::UnknownInternalVersion(2));
    assert_clean(&err.to_string(), &m.phrase(), PASS);
}

#[test]
fn seeds_lnd_makes_today_are_version_1_and_derive_the_same_keys() {
    // lnd writes KeyDerivationVersionTaproot (1) into new seeds; the node
    // and backup keys derive from the entropy exactly as at version 0.
    let legacy = CipherSeed::new(&ENTROPY, 7, SALT);
    let taproot = CipherSeed::new(&ENTROPY, 7, SALT).with_internal_version(1);
    let m = taproot.encipher(PASS, TEST_LOG_N).expect("encipher");
    let back = CipherSeed::decipher_with_scrypt_log_n_for_tests(&m, PASS, TEST_LOG_N).unwrap();
    assert_eq!(back.internal_version(), 1);
    let net = bitcoin::Network::Regtest;
    assert_eq!(
        back.node_pubkey(net).unwrap(),
        legacy.node_pubkey(net).unwrap()
    );
    assert_eq!(
        CipherSeed::generate(0).unwrap().internal_version(),
        CURRENT_INTERNAL_VERSION
    );
}

#[test]
fn debug_redacts_secrets() {
    let seed = open(MNEMONIC_PASS, PASS).expect("opens");
    let shown = format!("{seed:?} {seed:#?}");
    assert!(shown.contains("<redacted>"));
    assert!(!shown.contains(&hex::encode(ENTROPY)));
    assert!(!shown.contains("129") && !shown.contains("0x81"), "{shown}");
    let m = Mnemonic::from_str(MNEMONIC_PASS).expect("parses");
    let shown = format!("{m:?} {m:#?}");
    assert_eq!(shown, "Mnemonic(<redacted>) Mnemonic(<redacted>)");
}

#[test]
fn master_key_is_bip32_of_the_entropy() {
    let seed = CipherSeed::new(&ENTROPY, 0, SALT);
    let secp = Secp256k1::new();
    for (network, coin) in [
        (Network::Bitcoin, 0),
        (Network::Testnet, 1),
        (Network::Regtest, 1),
        (Network::Signet, 1),
    ] {
        let master = seed.master_key(network).expect("master");
        assert_eq!(master, Xpriv::new_master(network, &ENTROPY).expect("bip32"));
        let node = DerivationPath::from_str(&format!("m/1017'/{coin}'/6'/0/0")).expect("path");
        let node_key = master.derive_priv(&secp, &node).expect("derive");
        assert_eq!(
            seed.node_pubkey(network).expect("node key"),
            PublicKey::from_secret_key(&secp, &node_key.private_key)
        );
        let account = DerivationPath::from_str(&format!("m/1017'/{coin}'/7'")).expect("path");
        let account_key = master.derive_priv(&secp, &account).expect("derive");
        let xpub = seed.backup_account_xpub(network).expect("xpub");
        assert_eq!(xpub, Xpub::from_priv(&secp, &account_key));
        assert_eq!(xpub.depth, 3);
    }
    assert_ne!(
        seed.node_pubkey(Network::Bitcoin).expect("mainnet"),
        seed.node_pubkey(Network::Testnet).expect("testnet")
    );
}

/// A seed lnd's own wallet tests use end to end (lnd
/// `lnwallet/btcwallet/signer_test.go` @dc6c249bd162fa29881a0da3f507686851490273):
/// the 24 words, the entropy they hold, the master key lnd's wallet makes from
/// it, and keys the wallet derives on regtest (as WIF).
const LND_WALLET_MNEMONIC: &str = "able promote dizzy mixture sword myth share public find tattoo catalog cousin bulb unfair machine alarm cool large promote kick shop rug mean year";
const LND_WALLET_ENTROPY: &str = "4a7611b6979ba7c4bc5c5cd2239b2973";
const LND_WALLET_XPRV: &str = "xprv9s21ZrQH143K2KADjED57FvNbptdKLp4sqKzssegwEGKQMGoDkbyhUeCKe5m3AMU44z4vqkmGswwQVKrv599nFG16PPZDEkNrogwoDGeCmZ";
/// m/1017'/1'/6'/0/0: the node key.
const LND_WALLET_NODE_WIF: &str = "cPeQdpcGJmLqpdmvokh3DK9ZtjYAXxiw4p4ELNUWkWt6bMRqArEV";
/// m/1017'/1'/7'/0/123: a key under the static-backup account.
const LND_WALLET_BACKUP_123_WIF: &str = "cPcWZMqY4YErkcwjtFJaYoXkzd7bKxrfxAVzhDgy3n5BGH8CU8sn";

#[test]
fn lnd_wallet_seed_gives_lnd_wallet_keys() {
    let secp = Secp256k1::new();
    let m = Mnemonic::from_str(LND_WALLET_MNEMONIC).expect("parses");
    // The real scrypt (N = 32768) and the default passphrase.
    let seed = CipherSeed::decipher(&m, b"").expect("opens with the default passphrase");
    assert_eq!(hex::encode(seed.entropy()), LND_WALLET_ENTROPY);
    assert_eq!(
        seed.master_key(Network::Bitcoin)
            .expect("master")
            .to_string(),
        LND_WALLET_XPRV
    );

    let wif_pubkey = |wif: &str| {
        let key = bitcoin::PrivateKey::from_wif(wif).expect("wif");
        PublicKey::from_secret_key(&secp, &key.inner)
    };
    assert_eq!(
        seed.node_pubkey(Network::Regtest).expect("node key"),
        wif_pubkey(LND_WALLET_NODE_WIF)
    );
    let account = seed.backup_account_xpub(Network::Regtest).expect("xpub");
    let path = [
        bitcoin::bip32::ChildNumber::from_normal_idx(0).expect("index"),
        bitcoin::bip32::ChildNumber::from_normal_idx(123).expect("index"),
    ];
    let child = account.derive_pub(&secp, &path).expect("derive");
    assert_eq!(child.public_key, wif_pubkey(LND_WALLET_BACKUP_123_WIF));
}
