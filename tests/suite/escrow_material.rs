//! Key material for the escrow: parsing, normalisation, read-back and the
//! cross-checks between items. Vectors are published ones (BIP-39 / Trezor
//! vectors.json, BIP-84, lnd's aezeed tests); everything else is derived
//! from them here.

use std::collections::BTreeMap;
use std::str::FromStr;

use bitcoin::base58;
use bitcoin::bip32::{DerivationPath, Xpriv, Xpub};
use bitcoin::secp256k1::Secp256k1;
use chanvault::escrow::material::{
    CheckResult, Kind, Material, MaterialError, Network, ParseOptions, PublicFacts, cross_check,
};
use chanvault::secret::SecretString;

use crate::common::vectors::{
    ABANDON, ABANDON_24, ABANDON_FP, BIP84_XPUB, BIP84_ZPUB, LEGAL, LETTER, LND_AEZEED,
    LND_WALLET_AEZEED, LND_WALLET_NODE_WIF, TREZOR_MASTER_XPRV, ZOO,
};

fn s(text: &str) -> SecretString {
    SecretString::new(text.to_owned())
}

fn mainnet() -> ParseOptions {
    ParseOptions::new(Network::Bitcoin)
}

fn with_path(network: Network, path: &str) -> ParseOptions {
    ParseOptions {
        path: Some(path.to_owned()),
        ..ParseOptions::new(network)
    }
}

fn with_passphrase(network: Network, passphrase: &str) -> ParseOptions {
    ParseOptions {
        passphrase: Some(s(passphrase)),
        ..ParseOptions::new(network)
    }
}

fn parse(kind: Kind, text: &str, opts: &ParseOptions) -> Result<Material, MaterialError> {
    Material::parse(kind, &s(text), opts)
}

fn seed(words: &str) -> Material {
    parse(Kind::Bip39, words, &mainnet()).unwrap()
}

/// `[fp/48h/0h/0h/2h]xpub…` of a seed's default account.
fn origin_key(m: &Material) -> String {
    let p = m.public();
    let path = p.derivation.as_deref().unwrap().trim_start_matches("m/");
    format!(
        "[{}/{}]{}",
        p.master_fingerprint.as_deref().unwrap(),
        path.replace('\'', "h"),
        p.xpub.as_deref().unwrap()
    )
}

fn xpub_item(m: &Material) -> Material {
    parse(Kind::Xpub, &origin_key(m), &mainnet()).unwrap()
}

/// `wsh(sortedmulti(2,…/<0;1>/*,…))#checksum` over the seeds' account keys.
fn multisig(keys: &[String]) -> String {
    let body = format!(
        "wsh(sortedmulti(2,{}))",
        keys.iter()
            .map(|k| format!("{k}/<0;1>/*"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let checksum = miniscript::descriptor::checksum::desc_checksum(&body).unwrap();
    format!("{body}#{checksum}")
}

fn age_identity() -> (String, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    (
        id.to_string().expose_secret().to_owned(),
        id.to_public().to_string(),
    )
}

/// Re-encode an extended key with other version bytes (SLIP-132).
fn with_version(key: &str, version: u32) -> String {
    let mut data = base58::decode_check(key).unwrap();
    data[..4].copy_from_slice(&version.to_be_bytes());
    base58::encode_check(&data)
}

fn round_trip(m: &Material, opts: &ParseOptions) -> Material {
    let meta = m.public().to_metadata();
    let facts = PublicFacts::from_metadata(&meta).unwrap();
    assert_eq!(&facts, m.public());
    let back = Material::from_stored(m.kind(), m.secret(), &facts, opts).unwrap();
    assert_eq!(back.public(), m.public());
    assert_eq!(
        back.secret().map(|s| s.expose().to_owned()),
        m.secret().map(|s| s.expose().to_owned())
    );
    back
}

fn failures(results: &[CheckResult]) -> Vec<&CheckResult> {
    results.iter().filter(|r| !r.ok).collect()
}

// ---------------------------------------------------------------------------
// names

#[test]
fn kinds_and_networks_parse_and_display() {
    for kind in Kind::ALL {
        assert_eq!(Kind::from_str(&kind.to_string()).unwrap(), kind);
    }
    assert!(Kind::Bip39.is_secret() && Kind::AgeIdentity.is_secret() && Kind::Xprv.is_secret());
    assert!(!Kind::Xpub.is_secret() && !Kind::Descriptor.is_secret());
    let err = Kind::from_str("seed").unwrap_err().to_string();
    assert!(
        err.contains("bip39, aezeed, xprv, xpub, descriptor, age-identity"),
        "{err}"
    );
    assert_eq!(Network::from_str("bitcoin").unwrap(), Network::Bitcoin);
    assert_eq!(Network::from_str("mainnet").unwrap().to_string(), "mainnet");
    for n in ["testnet", "signet", "regtest"] {
        assert_eq!(Network::from_str(n).unwrap().to_string(), n);
    }
    assert!(Network::from_str("liquid").is_err());
}

// ---------------------------------------------------------------------------
// bip39

#[test]
fn bip39_vector_gives_the_published_fingerprint_and_bip84_account() {
    let m = parse(
        Kind::Bip39,
        ABANDON,
        &with_path(Network::Bitcoin, "m/84h/0h/0h"),
    )
    .unwrap();
    let p = m.public();
    assert_eq!(p.master_fingerprint.as_deref(), Some(ABANDON_FP));
    assert_eq!(p.xpub.as_deref(), Some(BIP84_XPUB));
    assert_eq!(p.derivation.as_deref(), Some("m/84'/0'/0'"));
    assert_eq!(p.words, Some(12));
    assert_eq!(p.has_passphrase, Some(false));
    assert_eq!(p.network.as_deref(), Some("mainnet"));
}

#[test]
fn bip39_with_passphrase_matches_the_trezor_vector_master_key() {
    let secp = Secp256k1::new();
    let master = Xpriv::from_str(TREZOR_MASTER_XPRV).unwrap();
    let expected_fp = master.fingerprint(&secp).to_string();
    let path = DerivationPath::from_str("m/48'/0'/0'/2'").unwrap();
    let expected_xpub = Xpub::from_priv(&secp, &master.derive_priv(&secp, &path).unwrap());

    let m = parse(
        Kind::Bip39,
        ABANDON,
        &with_passphrase(Network::Bitcoin, "TREZOR"),
    )
    .unwrap();
    assert_eq!(
        m.public().master_fingerprint.as_deref(),
        Some(&*expected_fp)
    );
    assert_ne!(expected_fp, ABANDON_FP, "the passphrase changes the wallet");
    assert_eq!(m.public().derivation.as_deref(), Some("m/48'/0'/0'/2'"));
    assert_eq!(m.public().xpub, Some(expected_xpub.to_string()));
    assert_eq!(m.public().has_passphrase, Some(true));
    assert_eq!(m.passphrase().unwrap().expose(), "TREZOR");

    // The master xprv itself, escrowed as xprv, agrees.
    let x = parse(Kind::Xprv, TREZOR_MASTER_XPRV, &mainnet()).unwrap();
    assert_eq!(x.public().master_fingerprint, m.public().master_fingerprint);
    assert_eq!(x.public().xpub, m.public().xpub);
}

#[test]
fn bip39_default_path_uses_coin_type_1_off_mainnet() {
    let m = parse(Kind::Bip39, ABANDON, &ParseOptions::new(Network::Signet)).unwrap();
    assert_eq!(m.public().derivation.as_deref(), Some("m/48'/1'/0'/2'"));
    assert!(m.public().xpub.as_deref().unwrap().starts_with("tpub"));
    assert_eq!(m.public().master_fingerprint.as_deref(), Some(ABANDON_FP));
}

#[test]
fn bip39_is_normalised_to_lowercase_single_spaced_words() {
    let messy = format!("  {}\n", ABANDON.to_uppercase().replace(' ', " \t "));
    let m = parse(Kind::Bip39, &messy, &mainnet()).unwrap();
    assert_eq!(
        m.secret().unwrap().expose(),
        ABANDON.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    round_trip(&m, &mainnet());
}

#[test]
fn bip39_bad_checksum_is_refused() {
    let words = ["abandon"; 12].join(" ");
    let err = parse(Kind::Bip39, &words, &mainnet()).unwrap_err();
    assert!(matches!(err, MaterialError::Bip39Checksum), "{err:?}");
    assert!(err.to_string().contains("checksum"));
    assert!(!err.to_string().contains("abandon"));
}

#[test]
fn bip39_unknown_word_is_named_by_position_only() {
    let mut words: Vec<&str> = LEGAL.split_whitespace().collect();
    words[6] = "wurth";
    let err = parse(Kind::Bip39, &words.join(" "), &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::UnknownWord { position: 7, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("word 7 is not in the BIP-39 English word list"),
        "{msg}"
    );
    assert!(!msg.contains("wurth") && !msg.contains("legal"), "{msg}");
}

#[test]
fn bip39_word_count_is_checked() {
    let err = parse(Kind::Bip39, "abandon abandon about", &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::WordCount { count: 3, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("12, 15, 18, 21 or 24"));
}

#[test]
fn an_aezeed_given_as_bip39_is_recognised() {
    let err = parse(Kind::Bip39, LND_AEZEED, &mainnet()).unwrap_err();
    assert!(matches!(err, MaterialError::LooksLikeAezeed), "{err:?}");
}

// ---------------------------------------------------------------------------
// aezeed

#[test]
fn lnd_wallet_aezeed_is_deciphered_and_gives_its_node_key() {
    let regtest = ParseOptions::new(Network::Regtest);
    let m = parse(Kind::Aezeed, LND_WALLET_AEZEED, &regtest).unwrap();
    let p = m.public();
    assert_eq!(p.kind, "aezeed");
    assert_eq!(p.words, Some(24));
    assert_eq!(p.seed_version, Some(0));
    assert_eq!(p.has_passphrase, Some(false));
    assert_eq!(p.xpub, None, "no BIP-32 account is derived for an aezeed");
    let secp = Secp256k1::new();
    let wif = bitcoin::PrivateKey::from_wif(LND_WALLET_NODE_WIF).unwrap();
    let node = bitcoin::secp256k1::PublicKey::from_secret_key(&secp, &wif.inner);
    assert_eq!(p.node_pubkey, Some(node.to_string()));
    let birthday = p.birthday.as_deref().unwrap();
    assert!(
        birthday.len() == 10 && chrono::NaiveDate::parse_from_str(birthday, "%Y-%m-%d").is_ok(),
        "{birthday}"
    );
    let fp = p.backup_key_fingerprint.as_deref().unwrap();
    assert!(
        fp.len() == 8 && fp.chars().all(|c| c.is_ascii_hexdigit()),
        "{fp}"
    );
    let meta = p.to_metadata();
    assert_eq!(meta.get("node_pubkey"), p.node_pubkey.as_ref());
    assert_eq!(meta.get("birthday").map(String::as_str), Some(birthday));
    assert_eq!(
        meta.get("backup_key_fingerprint").map(String::as_str),
        Some(fp)
    );
    round_trip(&m, &regtest);

    // The default passphrase is the same as none; another one does not open it.
    let d = parse(
        Kind::Aezeed,
        LND_WALLET_AEZEED,
        &with_passphrase(Network::Regtest, "aezeed"),
    )
    .unwrap();
    assert_eq!(d.public(), p);
    let err = parse(
        Kind::Aezeed,
        LND_WALLET_AEZEED,
        &with_passphrase(Network::Regtest, "x-secret-pass"),
    )
    .unwrap_err();
    assert!(matches!(err, MaterialError::AezeedPassphrase), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("passphrase does not open this aezeed"),
        "{msg}"
    );
    assert!(
        !msg.contains("x-secret-pass") && !msg.contains("dizzy"),
        "{msg}"
    );

    // Mainnet uses coin type 0: another node key, another backup key.
    let main = parse(Kind::Aezeed, LND_WALLET_AEZEED, &mainnet()).unwrap();
    assert_ne!(main.public().node_pubkey, p.node_pubkey);
    assert_ne!(
        main.public().backup_key_fingerprint,
        p.backup_key_fingerprint
    );
    assert_eq!(main.public().birthday, p.birthday);
}

#[test]
fn aezeed_with_its_own_passphrase_opens_only_with_it() {
    use chanvault::wallet::aezeed::{CipherSeed, birthday_from_unix};
    // 2023-07-14T20:00:00Z (after 18:15 UTC, the genesis block's time of day
    // that lnd's birthday time has).
    let seed = CipherSeed::generate(birthday_from_unix(1_689_364_800)).unwrap();
    let words = seed.to_mnemonic(b"pass").unwrap().phrase();
    let opts = with_passphrase(Network::Testnet, "pass");
    let m = parse(Kind::Aezeed, &words, &opts).unwrap();
    let p = m.public();
    assert_eq!(p.has_passphrase, Some(true));
    assert_eq!(p.birthday.as_deref(), Some("2023-07-14"));
    let node = seed.node_pubkey(bitcoin::Network::Testnet).unwrap();
    assert_eq!(p.node_pubkey, Some(node.to_string()));
    round_trip(&m, &opts);

    for wrong in [
        ParseOptions::new(Network::Testnet),
        with_passphrase(Network::Testnet, "aezeed"),
        with_passphrase(Network::Testnet, "pass "),
    ] {
        let err = parse(Kind::Aezeed, &words, &wrong).unwrap_err();
        assert!(matches!(err, MaterialError::AezeedPassphrase), "{err:?}");
    }
    // Read back without the passphrase: refused, not silently accepted.
    let err = Material::from_stored(
        Kind::Aezeed,
        m.secret(),
        p,
        &ParseOptions::new(Network::Testnet),
    )
    .unwrap_err();
    assert!(matches!(err, MaterialError::PassphraseRequired), "{err:?}");
}

#[test]
fn aezeed_with_a_wrong_word_fails_the_checksum() {
    let mut words: Vec<&str> = LND_AEZEED.split_whitespace().collect();
    words[9] = "throw"; // was "thrive"
    let err = parse(Kind::Aezeed, &words.join(" "), &mainnet()).unwrap_err();
    assert!(matches!(err, MaterialError::AezeedChecksum), "{err:?}");
    assert!(!err.to_string().contains("thr"), "{err}");

    let mut swapped: Vec<&str> = LND_AEZEED.split_whitespace().collect();
    swapped.swap(3, 4);
    let err = parse(Kind::Aezeed, &swapped.join(" "), &mainnet()).unwrap_err();
    assert!(matches!(err, MaterialError::AezeedChecksum), "{err:?}");
}

#[test]
fn aezeed_length_and_words_are_checked() {
    let err = parse(Kind::Aezeed, ABANDON, &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::WordCount { count: 12, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("exactly 24"));
    let mut words: Vec<&str> = LND_AEZEED.split_whitespace().collect();
    words[23] = "royale";
    let err = parse(Kind::Aezeed, &words.join(" "), &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::UnknownWord { position: 24, .. }),
        "{err:?}"
    );
    let err = parse(Kind::Aezeed, ABANDON_24, &mainnet()).unwrap_err();
    assert!(matches!(err, MaterialError::LooksLikeBip39), "{err:?}");
}

// ---------------------------------------------------------------------------
// xpub / xprv

#[test]
fn published_bip84_zpub_is_normalised_to_xpub() {
    let m = parse(
        Kind::Xpub,
        &format!("[{ABANDON_FP}/84h/0h/0h]{BIP84_ZPUB}"),
        &mainnet(),
    )
    .unwrap();
    assert_eq!(m.public().xpub.as_deref(), Some(BIP84_XPUB));
    assert_eq!(m.public().master_fingerprint.as_deref(), Some(ABANDON_FP));
    assert_eq!(m.public().derivation.as_deref(), Some("m/84'/0'/0'"));
    assert!(m.secret().is_none());
}

#[test]
fn multisig_zpub_is_normalised_to_xpub() {
    let s1 = seed(ABANDON);
    let xpub = s1.public().xpub.clone().unwrap();
    let zpub_upper = with_version(&xpub, 0x02AA_7ED3); // SLIP-132 Zpub
    assert!(zpub_upper.starts_with("Zpub"), "{zpub_upper}");
    let m = parse(
        Kind::Xpub,
        &format!("[{ABANDON_FP}/48'/0'/0'/2']{zpub_upper}"),
        &mainnet(),
    )
    .unwrap();
    assert_eq!(m.public().xpub.as_deref(), Some(&*xpub));
    round_trip(&m, &mainnet());

    // Vpub (testnet multisig) to tpub.
    let t = parse(Kind::Bip39, ABANDON, &ParseOptions::new(Network::Testnet)).unwrap();
    let tpub = t.public().xpub.clone().unwrap();
    let vpub = with_version(&tpub, 0x0257_5483);
    assert!(vpub.starts_with("Vpub"), "{vpub}");
    let m = parse(
        Kind::Xpub,
        &format!("[{ABANDON_FP}/48h/1h/0h/2h]{vpub}"),
        &ParseOptions::new(Network::Testnet),
    )
    .unwrap();
    assert_eq!(m.public().xpub.as_deref(), Some(&*tpub));
}

#[test]
fn xpub_of_the_wrong_network_is_refused_naming_both() {
    let t = parse(Kind::Bip39, ABANDON, &ParseOptions::new(Network::Testnet)).unwrap();
    let err = parse(Kind::Xpub, &origin_key(&t), &mainnet()).unwrap_err();
    assert!(matches!(err, MaterialError::WrongNetwork { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("test-network") && msg.contains("mainnet"),
        "{msg}"
    );

    let err = parse(
        Kind::Xpub,
        &origin_key(&seed(ABANDON)),
        &ParseOptions::new(Network::Regtest),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("mainnet (xpub/xprv)") && msg.contains("regtest"),
        "{msg}"
    );
}

#[test]
fn xpub_without_origin_is_refused_with_the_expected_form() {
    let err = parse(Kind::Xpub, BIP84_XPUB, &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::MissingOrigin { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("[fingerprint/derivation]"),
        "{err}"
    );
}

#[test]
fn xpub_origin_must_fit_the_key() {
    // Three steps of origin for a depth-3 key is right; four is not.
    let err = parse(
        Kind::Xpub,
        &format!("[{ABANDON_FP}/84h/0h/0h/0h]{BIP84_XPUB}"),
        &mainnet(),
    )
    .unwrap_err();
    assert!(
        matches!(err, MaterialError::OriginMismatch { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("depth 3"), "{err}");
    let err = parse(
        Kind::Xpub,
        &format!("[{ABANDON_FP}/84h/0h/1h]{BIP84_XPUB}"),
        &mainnet(),
    )
    .unwrap_err();
    assert!(
        matches!(err, MaterialError::OriginMismatch { .. }),
        "{err:?}"
    );
    let err = parse(
        Kind::Xpub,
        &format!("[73c5da/84h/0h/0h]{BIP84_XPUB}"),
        &mainnet(),
    )
    .unwrap_err();
    assert!(matches!(err, MaterialError::BadOrigin { .. }), "{err:?}");
    let err = parse(
        Kind::Xpub,
        &format!("[{ABANDON_FP}/84h/0h/0h]{BIP84_XPUB}/0/*"),
        &mainnet(),
    )
    .unwrap_err();
    assert!(matches!(err, MaterialError::TrailingText { .. }), "{err:?}");
}

#[test]
fn xpub_kind_refuses_a_private_key_without_echoing_it() {
    let err = parse(
        Kind::Xpub,
        &format!("[{ABANDON_FP}]{TREZOR_MASTER_XPRV}"),
        &mainnet(),
    )
    .unwrap_err();
    assert!(
        matches!(err, MaterialError::PrivateKeyGiven { .. }),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains(&TREZOR_MASTER_XPRV[4..20]));
}

#[test]
fn master_xprv_derives_the_account_at_the_path() {
    let x = parse(Kind::Xprv, TREZOR_MASTER_XPRV, &mainnet()).unwrap();
    assert_eq!(x.public().derivation.as_deref(), Some("m/48'/0'/0'/2'"));
    assert_eq!(x.secret().unwrap().expose(), TREZOR_MASTER_XPRV);
    round_trip(&x, &mainnet());
    // A SLIP-132 zprv is normalised to xprv in the stored secret.
    let zprv = with_version(TREZOR_MASTER_XPRV, 0x04B2_430C);
    let z = parse(Kind::Xprv, &zprv, &mainnet()).unwrap();
    assert_eq!(z.secret().unwrap().expose(), TREZOR_MASTER_XPRV);
    // Testnet key on mainnet: refused.
    let tprv = with_version(TREZOR_MASTER_XPRV, 0x0435_8394);
    let err = parse(Kind::Xprv, &tprv, &mainnet()).unwrap_err();
    assert!(matches!(err, MaterialError::WrongNetwork { .. }), "{err:?}");
    assert!(!err.to_string().contains(&tprv[4..]));
    // An xpub given as xprv.
    let err = parse(Kind::Xprv, BIP84_XPUB, &mainnet()).unwrap_err();
    assert!(matches!(err, MaterialError::PublicKeyGiven), "{err:?}");
}

/// Account-level xprv for ABANDON (no passphrase) at m/48'/0'/0'/2'.
fn abandon_account_xprv() -> String {
    let secp = Secp256k1::new();
    let mnemonic = bip39::Mnemonic::parse(ABANDON).unwrap();
    let master = Xpriv::new_master(bitcoin::NetworkKind::Main, &mnemonic.to_seed("")).unwrap();
    let path = DerivationPath::from_str("m/48'/0'/0'/2'").unwrap();
    master.derive_priv(&secp, &path).unwrap().to_string()
}

#[test]
fn account_xprv_with_origin_records_its_neuter() {
    let acct = abandon_account_xprv();
    let input = format!("[{ABANDON_FP}/48h/0h/0h/2h]{acct}");
    let x = parse(Kind::Xprv, &input, &mainnet()).unwrap();
    let s1 = seed(ABANDON);
    assert_eq!(x.public().xpub, s1.public().xpub);
    assert_eq!(x.public().master_fingerprint.as_deref(), Some(ABANDON_FP));
    assert_eq!(x.public().derivation.as_deref(), Some("m/48'/0'/0'/2'"));
    assert_eq!(
        x.secret().unwrap().expose(),
        format!("[{ABANDON_FP}/48'/0'/0'/2']{acct}")
    );
    round_trip(&x, &mainnet());

    // Without origin a non-master xprv is refused.
    let err = parse(Kind::Xprv, &acct, &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::MissingOrigin { .. }),
        "{err:?}"
    );
    // A path outside its origin cannot be derived.
    let err = parse(
        Kind::Xprv,
        &input,
        &with_path(Network::Bitcoin, "m/84h/0h/0h"),
    )
    .unwrap_err();
    assert!(
        matches!(err, MaterialError::PathNotBelowOrigin { .. }),
        "{err:?}"
    );
    // A path below it can.
    let deeper = parse(
        Kind::Xprv,
        &input,
        &with_path(Network::Bitcoin, "m/48h/0h/0h/2h/0"),
    )
    .unwrap();
    assert_eq!(
        deeper.public().derivation.as_deref(),
        Some("m/48'/0'/0'/2'/0")
    );
}

// ---------------------------------------------------------------------------
// descriptor

fn three_seeds() -> (Material, Material, Material) {
    (seed(ABANDON), seed(LEGAL), seed(LETTER))
}

#[test]
fn multisig_descriptor_with_checksum_is_accepted() {
    let (a, b, c) = three_seeds();
    let desc = multisig(&[origin_key(&a), origin_key(&b), origin_key(&c)]);
    let m = parse(Kind::Descriptor, &desc, &mainnet()).unwrap();
    let p = m.public();
    assert_eq!(p.descriptor.as_deref(), Some(&*desc));
    assert_eq!(p.descriptor_keys.len(), 3);
    assert_eq!(
        p.descriptor_keys[0],
        format!(
            "[{ABANDON_FP}/48'/0'/0'/2']{}",
            a.public().xpub.as_deref().unwrap()
        )
    );
    assert!(m.secret().is_none());
    round_trip(&m, &mainnet());
    let meta = p.to_metadata();
    assert!(meta.values().all(|v| v.len() <= 512), "{meta:?}");
}

#[test]
fn descriptor_checksum_is_required_and_verified() {
    let (a, b, c) = three_seeds();
    let desc = multisig(&[origin_key(&a), origin_key(&b), origin_key(&c)]);
    let (body, checksum) = desc.rsplit_once('#').unwrap();

    let err = parse(Kind::Descriptor, body, &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::DescriptorMissingChecksum),
        "{err:?}"
    );

    // Corrupt one checksum character.
    let mut bad: Vec<char> = checksum.chars().collect();
    bad[3] = if bad[3] == 'q' { 'p' } else { 'q' };
    let corrupted = format!("{body}#{}", bad.iter().collect::<String>());
    let err = parse(Kind::Descriptor, &corrupted, &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::DescriptorBadChecksum),
        "{err:?}"
    );
    assert!(
        !err.to_string().contains(checksum),
        "does not hand out the right checksum"
    );

    // Corrupt the descriptor, keep the checksum.
    let typo = desc.replacen("sortedmulti(2", "sortedmulti(1", 1);
    let err = parse(Kind::Descriptor, &typo, &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::DescriptorBadChecksum),
        "{err:?}"
    );

    let err = parse(Kind::Descriptor, &format!("{body}#abc"), &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::DescriptorMalformedChecksum),
        "{err:?}"
    );
}

#[test]
fn descriptor_with_a_private_key_is_refused_without_echoing_it() {
    let (a, b, _) = three_seeds();
    let acct = abandon_account_xprv();
    let keys = [
        format!("[{ABANDON_FP}/48h/0h/0h/2h]{acct}"),
        origin_key(&b),
        origin_key(&a),
    ];
    let desc = multisig(&keys);
    let err = parse(Kind::Descriptor, &desc, &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::DescriptorPrivateKey { count: 1 }),
        "{err:?}"
    );
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(&acct[4..30]), "{shown}");
}

#[test]
fn descriptor_keys_need_origins_and_the_right_network() {
    let (a, b, c) = three_seeds();
    let bare = a.public().xpub.clone().unwrap();
    let desc = multisig(&[bare, origin_key(&b), origin_key(&c)]);
    let err = parse(Kind::Descriptor, &desc, &mainnet()).unwrap_err();
    assert!(
        matches!(
            err,
            MaterialError::DescriptorKeyWithoutOrigin { position: 1, .. }
        ),
        "{err:?}"
    );

    let desc = multisig(&[origin_key(&a), origin_key(&b), origin_key(&c)]);
    let err = parse(
        Kind::Descriptor,
        &desc,
        &ParseOptions::new(Network::Testnet),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            MaterialError::DescriptorWrongNetwork { position: 1, .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(ABANDON_FP), "{err}");
}

#[test]
fn descriptor_parse_errors_are_reported() {
    let body = "wsh(sortedmulti(2,nonsense))";
    let checksum = miniscript::descriptor::checksum::desc_checksum(body).unwrap();
    let err = parse(Kind::Descriptor, &format!("{body}#{checksum}"), &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::DescriptorParse { .. }),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------
// age identity

#[test]
fn age_identity_file_gives_its_recipient() {
    let (secret, recipient) = age_identity();
    let file = format!("# created: 2026-01-01T00:00:00Z\n# public key: {recipient}\n{secret}\n");
    let m = parse(Kind::AgeIdentity, &file, &mainnet()).unwrap();
    assert_eq!(m.public().recipient.as_deref(), Some(&*recipient));
    assert_eq!(m.secret().unwrap().expose(), secret);
    assert_eq!(m.public().network, None);
    round_trip(&m, &mainnet());

    let one_line = parse(Kind::AgeIdentity, &secret, &mainnet()).unwrap();
    assert_eq!(one_line.public().recipient.as_deref(), Some(&*recipient));
}

#[test]
fn age_identity_mistakes_are_refused_without_echoing_keys() {
    let (secret, recipient) = age_identity();
    let (other, other_recipient) = age_identity();
    let cases = [
        (format!("{secret}\n{other}\n"), "second identity"),
        (recipient.clone(), "public recipient"),
        (
            format!("# public key: {other_recipient}\n{secret}\n"),
            "public key:",
        ),
        (secret[..60].to_owned(), "not a valid age identity"),
        ("# only a comment\n".to_owned(), "no AGE-SECRET-KEY-1"),
    ];
    for (input, expected) in cases {
        let err = parse(Kind::AgeIdentity, &input, &mainnet()).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(expected), "{shown}");
        assert!(
            !shown.contains(&secret[15..]) && !shown.contains(&other[15..]),
            "{shown}"
        );
    }
}

#[test]
fn passphrase_is_refused_where_it_means_nothing() {
    let (secret, _) = age_identity();
    let err = parse(
        Kind::AgeIdentity,
        &secret,
        &with_passphrase(Network::Bitcoin, "x"),
    )
    .unwrap_err();
    assert!(
        matches!(err, MaterialError::PassphraseNotApplicable { .. }),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------
// read-back

#[test]
fn stored_facts_that_disagree_are_refused() {
    let m = seed(ABANDON);
    let mut facts = m.public().clone();
    facts.xpub = Some(seed(LEGAL).public().xpub.clone().unwrap());
    let err = Material::from_stored(Kind::Bip39, m.secret(), &facts, &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::StoredMismatch { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("xpub: stored"), "{msg}");
    assert!(!msg.contains("abandon"), "{msg}");

    // Wrong kind, missing secret, unexpected secret.
    let err = Material::from_stored(Kind::Aezeed, m.secret(), m.public(), &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::StoredKindMismatch { .. }),
        "{err:?}"
    );
    let err = Material::from_stored(Kind::Bip39, None, m.public(), &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::MissingSecret { .. }),
        "{err:?}"
    );
    let x = xpub_item(&m);
    let err = Material::from_stored(Kind::Xpub, m.secret(), x.public(), &mainnet()).unwrap_err();
    assert!(
        matches!(err, MaterialError::UnexpectedSecret { .. }),
        "{err:?}"
    );

    // Another network than the one stored.
    let err = Material::from_stored(
        Kind::Bip39,
        m.secret(),
        m.public(),
        &ParseOptions::new(Network::Testnet),
    )
    .unwrap_err();
    assert!(
        matches!(err, MaterialError::StoredMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn stored_seed_with_passphrase_needs_it() {
    let m = parse(
        Kind::Bip39,
        ABANDON,
        &with_passphrase(Network::Bitcoin, "TREZOR"),
    )
    .unwrap();
    let err = Material::from_stored(Kind::Bip39, m.secret(), m.public(), &mainnet()).unwrap_err();
    assert!(matches!(err, MaterialError::PassphraseRequired), "{err:?}");
    let err = Material::from_stored(
        Kind::Bip39,
        m.secret(),
        m.public(),
        &with_passphrase(Network::Bitcoin, "TREZ0R"),
    )
    .unwrap_err();
    assert!(
        matches!(err, MaterialError::StoredMismatch { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("TREZ"), "{err}");
    round_trip(&m, &with_passphrase(Network::Bitcoin, "TREZOR"));
}

#[test]
fn stored_path_is_used_when_none_is_given() {
    let m = parse(
        Kind::Bip39,
        ABANDON,
        &with_path(Network::Bitcoin, "m/84h/0h/0h"),
    )
    .unwrap();
    let back = Material::from_stored(Kind::Bip39, m.secret(), m.public(), &mainnet()).unwrap();
    assert_eq!(back.public().xpub.as_deref(), Some(BIP84_XPUB));
}

#[test]
fn metadata_is_refused_when_malformed() {
    let mut meta = seed(ABANDON).public().to_metadata();
    meta.insert("words".into(), "twelve".into());
    let err = PublicFacts::from_metadata(&meta).unwrap_err();
    assert!(err.to_string().contains("metadata key words"), "{err}");
    let err = PublicFacts::from_metadata(&BTreeMap::new()).unwrap_err();
    assert!(err.to_string().contains("kind"), "{err}");
}

// ---------------------------------------------------------------------------
// cross-checks

#[test]
fn consistent_set_passes_every_check() {
    let (a, b, c) = three_seeds();
    let xa = xpub_item(&a);
    let desc = parse(
        Kind::Descriptor,
        &multisig(&[origin_key(&a), origin_key(&b), origin_key(&c)]),
        &mainnet(),
    )
    .unwrap();
    let (secret, recipient) = age_identity();
    let id = parse(Kind::AgeIdentity, &secret, &mainnet()).unwrap();
    let items = [
        ("cosigner", &a),
        ("cosigner-xpub", &xa),
        ("wallet", &desc),
        ("backup-identity", &id),
    ];
    let results = cross_check(&items, &[recipient, "age1other".into()]);
    assert!(failures(&results).is_empty(), "{results:#?}");
    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    for expected in [
        "seed 'cosigner' derives xpub 'cosigner-xpub'",
        "xpub 'cosigner-xpub' is a key of descriptor 'wallet'",
        "networks agree",
        "age identity 'backup-identity' opens the configured recipients",
        "seed 'cosigner' is a cosigner of descriptor 'wallet'",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:#?}"
        );
    }
    // An account-level xprv of the same seed checks the same way.
    let x = parse(
        Kind::Xprv,
        &format!("[{ABANDON_FP}/48h/0h/0h/2h]{}", abandon_account_xprv()),
        &mainnet(),
    )
    .unwrap();
    let results = cross_check(
        &[
            ("cosigner-xprv", &x),
            ("cosigner-xpub", &xa),
            ("wallet", &desc),
        ],
        &[],
    );
    assert!(failures(&results).is_empty(), "{results:#?}");
    // A lone item has nothing to compare with.
    assert!(cross_check(&[("cosigner", &a)], &[]).is_empty());
}

#[test]
fn seed_that_does_not_derive_the_claimed_xpub_fails() {
    let (a, b, _) = three_seeds();
    // An xpub item that claims ABANDON's origin but holds LEGAL's key.
    let forged = format!(
        "[{ABANDON_FP}/48h/0h/0h/2h]{}",
        b.public().xpub.as_deref().unwrap()
    );
    let x = parse(Kind::Xpub, &forged, &mainnet()).unwrap();
    let results = cross_check(&[("cosigner", &a), ("cosigner-xpub", &x)], &[]);
    let bad = failures(&results);
    assert_eq!(bad.len(), 1, "{results:#?}");
    assert_eq!(bad[0].name, "seed 'cosigner' derives xpub 'cosigner-xpub'");
    assert!(
        bad[0].detail.contains(a.public().xpub.as_deref().unwrap()),
        "{}",
        bad[0].detail
    );
    assert!(
        bad[0].detail.contains(b.public().xpub.as_deref().unwrap()),
        "{}",
        bad[0].detail
    );
    assert!(
        bad[0].detail.contains("[73c5da0a/48'/0'/0'/2']"),
        "{}",
        bad[0].detail
    );

    // The same seed with a passphrase is another wallet: no xpub claims it.
    let with_pp = parse(
        Kind::Bip39,
        ABANDON,
        &with_passphrase(Network::Bitcoin, "TREZOR"),
    )
    .unwrap();
    let xa = xpub_item(&a);
    let results = cross_check(&[("cosigner", &with_pp), ("cosigner-xpub", &xa)], &[]);
    let bad = failures(&results);
    assert_eq!(bad.len(), 1, "{results:#?}");
    assert!(
        bad[0]
            .detail
            .contains("no xpub item claims seed 'cosigner'"),
        "{}",
        bad[0].detail
    );
    assert!(
        bad[0].detail.contains("with its passphrase"),
        "{}",
        bad[0].detail
    );
    assert!(
        bad[0]
            .detail
            .contains("'cosigner-xpub' [73c5da0a/48'/0'/0'/2']"),
        "{}",
        bad[0].detail
    );
}

#[test]
fn descriptor_that_lacks_the_xpub_fails() {
    let (a, b, c) = three_seeds();
    let z = seed(ZOO);
    let xa = xpub_item(&a);
    let desc = parse(
        Kind::Descriptor,
        &multisig(&[origin_key(&z), origin_key(&b), origin_key(&c)]),
        &mainnet(),
    )
    .unwrap();
    let results = cross_check(&[("cosigner-xpub", &xa), ("wallet", &desc)], &[]);
    let bad = failures(&results);
    assert_eq!(bad.len(), 1, "{results:#?}");
    assert_eq!(
        bad[0].name,
        "xpub 'cosigner-xpub' is a key of an escrowed descriptor"
    );
    assert!(
        bad[0]
            .detail
            .contains("is not a key of descriptor 'wallet'"),
        "{}",
        bad[0].detail
    );
    assert!(bad[0].detail.contains(ABANDON_FP), "{}", bad[0].detail);

    // And the seed is a cosigner of no descriptor.
    let results = cross_check(&[("cosigner", &a), ("wallet", &desc)], &[]);
    let bad = failures(&results);
    assert_eq!(bad.len(), 1, "{results:#?}");
    assert!(
        bad[0]
            .detail
            .contains("master fingerprint 73c5da0a of seed 'cosigner'"),
        "{}",
        bad[0].detail
    );

    // A descriptor with the right origin but another key under it.
    let forged = format!(
        "[{ABANDON_FP}/48h/0h/0h/2h]{}",
        z.public().xpub.as_deref().unwrap()
    );
    let desc = parse(
        Kind::Descriptor,
        &multisig(&[forged, origin_key(&b), origin_key(&c)]),
        &mainnet(),
    )
    .unwrap();
    let results = cross_check(
        &[("cosigner", &a), ("cosigner-xpub", &xa), ("wallet", &desc)],
        &[],
    );
    let bad = failures(&results);
    assert_eq!(bad.len(), 2, "{results:#?}");
    assert!(
        bad.iter()
            .any(|r| r.name == "xpub 'cosigner-xpub' is a key of descriptor 'wallet'")
    );
    assert!(bad.iter().any(|r| {
        r.name == "seed 'cosigner' is a cosigner of descriptor 'wallet'"
            && r.detail
                .contains("not the one this descriptor was made with")
    }));
}

#[test]
fn network_mismatch_fails() {
    let a = seed(ABANDON);
    let t = parse(
        Kind::Aezeed,
        LND_WALLET_AEZEED,
        &ParseOptions::new(Network::Testnet),
    )
    .unwrap();
    let results = cross_check(&[("cosigner", &a), ("lnd-seed", &t)], &[]);
    let bad = failures(&results);
    assert_eq!(bad.len(), 1, "{results:#?}");
    assert_eq!(bad[0].name, "networks agree");
    assert!(
        bad[0].detail.contains("'cosigner': mainnet"),
        "{}",
        bad[0].detail
    );
    assert!(
        bad[0].detail.contains("'lnd-seed': testnet"),
        "{}",
        bad[0].detail
    );
}

#[test]
fn identity_not_among_the_recipients_fails() {
    let (secret, recipient) = age_identity();
    let (_, other) = age_identity();
    let id = parse(Kind::AgeIdentity, &secret, &mainnet()).unwrap();
    let results = cross_check(&[("backup-identity", &id)], std::slice::from_ref(&other));
    let bad = failures(&results);
    assert_eq!(bad.len(), 1, "{results:#?}");
    assert!(
        bad[0].detail.contains(&recipient) && bad[0].detail.contains(&other),
        "{}",
        bad[0].detail
    );
    assert!(!bad[0].detail.contains("AGE-SECRET"), "{}", bad[0].detail);
    let results = cross_check(&[("backup-identity", &id)], &[]);
    assert!(
        failures(&results)[0]
            .detail
            .contains("no recipients are configured")
    );
}

// ---------------------------------------------------------------------------
// redaction

#[test]
fn debug_and_errors_never_show_secret_text() {
    let (age_secret, _) = age_identity();
    let acct = abandon_account_xprv();
    let materials = [
        parse(
            Kind::Bip39,
            ABANDON,
            &with_passphrase(Network::Bitcoin, "TREZOR"),
        )
        .unwrap(),
        parse(Kind::Aezeed, LND_WALLET_AEZEED, &mainnet()).unwrap(),
        parse(Kind::Xprv, TREZOR_MASTER_XPRV, &mainnet()).unwrap(),
        parse(
            Kind::Xprv,
            &format!("[{ABANDON_FP}/48h/0h/0h/2h]{acct}"),
            &mainnet(),
        )
        .unwrap(),
        parse(Kind::AgeIdentity, &age_secret, &mainnet()).unwrap(),
    ];
    let secrets = [
        "abandon",
        "about",
        "dizzy",
        "tattoo",
        "TREZOR",
        &TREZOR_MASTER_XPRV[4..],
        &acct[4..],
        &age_secret[15..],
    ];
    let mut shown = String::new();
    for m in &materials {
        shown.push_str(&format!("{m:?}\n{m:#?}\n"));
    }
    let opts = ParseOptions {
        passphrase: Some(s("TREZOR")),
        ..mainnet()
    };
    shown.push_str(&format!("{opts:?}\n"));
    // Errors on inputs that contain secrets.
    let mut broken: Vec<&str> = ABANDON.split_whitespace().collect();
    broken[11] = "abandon";
    let bad_inputs: Vec<(Kind, String)> = vec![
        (Kind::Bip39, broken.join(" ")),
        (Kind::Bip39, format!("{ABANDON} abandon")),
        (Kind::Bip39, ABANDON.replace("about", "aboutt")),
        (Kind::Aezeed, LND_AEZEED.replace("royal", "abandon")),
        (Kind::Xprv, TREZOR_MASTER_XPRV[..100].to_owned()),
        (Kind::Xprv, format!("[{ABANDON_FP}/1h]{TREZOR_MASTER_XPRV}")),
        (Kind::Xprv, format!("{TREZOR_MASTER_XPRV}/0/*")),
        (Kind::Xpub, TREZOR_MASTER_XPRV.to_owned()),
        (Kind::Descriptor, format!("wpkh({TREZOR_MASTER_XPRV}/0/*)")),
        (
            Kind::Descriptor,
            format!(
                "wpkh({TREZOR_MASTER_XPRV}/0/*)#{}",
                miniscript::descriptor::checksum::desc_checksum(&format!(
                    "wpkh({TREZOR_MASTER_XPRV}/0/*)"
                ))
                .unwrap()
            ),
        ),
        (Kind::AgeIdentity, age_secret[..50].to_owned()),
        (Kind::AgeIdentity, format!("{age_secret}\n{age_secret}")),
    ];
    for (kind, input) in &bad_inputs {
        let err = parse(*kind, input, &mainnet()).unwrap_err();
        shown.push_str(&format!("{err}\n{err:?}\n"));
    }
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret:?} leaked in:\n{shown}");
    }
}
