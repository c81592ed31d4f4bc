use super::descriptor::count_private_tokens;
use std::str::FromStr;

use bitcoin::secp256k1::Secp256k1;

use super::xkey::{KEY_VERSIONS, standard_version};
use super::*;
use crate::secret::SecretString;

/// lnd `aezeed/cipherseed_test.go`, `version0TestVectors[0]`: entropy
/// 81b637d86359e6960de795e41e0b4cfd, salt "salt1", empty password
/// (default "aezeed"), birthday 0.
const LND_VECTOR: &str = "ability liquid travel stem barely drastic pact cupboard apple \
    thrive morning oak feature tissue couch old math inform success suggest drink motion \
    know royal";

/// lnd `lnwallet/btcwallet/signer_test.go`: a real wallet seed (scrypt
/// N = 32768, default passphrase) and its regtest node key, as WIF.
const LND_WALLET: &str = "able promote dizzy mixture sword myth share public find tattoo catalog \
    cousin bulb unfair machine alarm cool large promote kick shop rug mean year";
const LND_WALLET_NODE_WIF: &str = "cPeQdpcGJmLqpdmvokh3DK9ZtjYAXxiw4p4ELNUWkWt6bMRqArEV";

fn aezeed(words: &str, passphrase: Option<&str>) -> Result<Material, MaterialError> {
    let opts = ParseOptions {
        passphrase: passphrase.map(|p| SecretString::new(p.to_owned())),
        ..ParseOptions::new(Network::Regtest)
    };
    Material::parse(Kind::Aezeed, &SecretString::new(words.to_owned()), &opts)
}

#[test]
fn lnd_aezeed_vectors_pass_the_checksum() {
    // N = 16 vectors: they cannot be deciphered here, only checksummed.
    let second = "able tree stool crush transfer cloud cross three profit outside hen \
        citizen plate ride require leg siren drum success suggest drink require fiscal upgrade";
    for m in [LND_VECTOR, second] {
        let m = crate::wallet::aezeed::Mnemonic::from_str(m).unwrap();
        assert!(m.checksum_ok());
    }
}

#[test]
fn lnd_wallet_aezeed_gives_its_node_key_and_backup_fingerprint() {
    use crate::wallet::aezeed::CipherSeed;
    let m = aezeed(LND_WALLET, None).unwrap();
    let p = m.public();
    let secp = Secp256k1::new();
    let wif = bitcoin::PrivateKey::from_wif(LND_WALLET_NODE_WIF).unwrap();
    let node = bitcoin::secp256k1::PublicKey::from_secret_key(&secp, &wif.inner);
    assert_eq!(p.node_pubkey.as_deref(), Some(node.to_string().as_str()));
    let seed = CipherSeed::decipher(
        &crate::wallet::aezeed::Mnemonic::from_str(LND_WALLET).unwrap(),
        b"",
    )
    .unwrap();
    let mut master = seed.master_key(bitcoin::Network::Regtest).unwrap();
    let fp = crate::chanbackup::BackupKey::from_master(&master)
        .unwrap()
        .fingerprint();
    master.private_key.non_secure_erase();
    assert_eq!(p.backup_key_fingerprint.as_deref(), Some(fp.as_str()));
    let day = chrono::DateTime::from_timestamp(seed.birthday_unix(), 0).unwrap();
    assert_eq!(p.birthday, Some(day.format("%Y-%m-%d").to_string()));
    assert_eq!(p.has_passphrase, Some(false));
    // lnd's default passphrase is the same as none.
    assert_eq!(aezeed(LND_WALLET, Some("aezeed")).unwrap().public(), p);
    let err = aezeed(LND_WALLET, Some("hunter2")).unwrap_err();
    assert!(matches!(err, MaterialError::AezeedPassphrase), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn aezeed_with_a_passphrase_needs_it() {
    use crate::wallet::aezeed::{CipherSeed, birthday_from_unix};
    // 2024-03-01T20:00:00Z: lnd's birthday time is the genesis block's time
    // of day (18:15 UTC), so earlier in the day would read as the day before.
    let seed = CipherSeed::generate(birthday_from_unix(1_709_323_200)).unwrap();
    let words = seed.to_mnemonic(b"pass").unwrap().phrase();
    let m = aezeed(&words, Some("pass")).unwrap();
    let p = m.public();
    assert_eq!(p.birthday.as_deref(), Some("2024-03-01"));
    assert_eq!(p.has_passphrase, Some(true));
    let node = seed.node_pubkey(bitcoin::Network::Regtest).unwrap();
    assert_eq!(p.node_pubkey, Some(node.to_string()));
    for wrong in [None, Some("Pass")] {
        let err = aezeed(&words, wrong).unwrap_err();
        assert!(matches!(err, MaterialError::AezeedPassphrase), "{err:?}");
        assert!(!err.to_string().contains("Pass"), "{err}");
    }
    // Read back: without the passphrase it is refused, with it the facts agree.
    let regtest = ParseOptions::new(Network::Regtest);
    let err = Material::from_stored(Kind::Aezeed, m.secret(), p, &regtest).unwrap_err();
    assert!(matches!(err, MaterialError::PassphraseRequired), "{err:?}");
    let opts = ParseOptions {
        passphrase: Some(SecretString::new("pass".into())),
        ..ParseOptions::new(Network::Regtest)
    };
    let back = Material::from_stored(Kind::Aezeed, m.secret(), p, &opts).unwrap();
    assert_eq!(back.public(), p);
    // Facts from before they were recorded are compared on what they hold.
    let old = PublicFacts {
        birthday: None,
        node_pubkey: None,
        backup_key_fingerprint: None,
        ..p.clone()
    };
    assert!(Material::from_stored(Kind::Aezeed, m.secret(), &old, &opts).is_ok());
    let mut other = p.clone();
    other.node_pubkey = Some("02".repeat(33));
    let err = Material::from_stored(Kind::Aezeed, m.secret(), &other, &opts).unwrap_err();
    assert!(
        matches!(err, MaterialError::StoredMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn slip132_table_round_trips_standard_prefixes() {
    for v in &KEY_VERSIONS {
        let std = standard_version(v.private, v.network);
        assert!(KEY_VERSIONS.iter().any(|w| w.bytes == std));
    }
}

#[test]
fn metadata_splits_long_descriptor_and_reads_it_back() {
    let facts = PublicFacts {
        kind: "descriptor".into(),
        network: Some("mainnet".into()),
        descriptor: Some("x".repeat(1200)),
        descriptor_keys: vec!["[00000000/1']a".into(), "[00000001/1']b".into()],
        ..PublicFacts::default()
    };
    let m = facts.to_metadata();
    assert!(m.values().all(|v| v.len() <= METADATA_VALUE_LIMIT));
    assert!(m.contains_key("descriptor.2") && !m.contains_key("descriptor"));
    let mut with_extra = m.clone();
    with_extra.insert("created".into(), "2026-01-01".into());
    assert_eq!(PublicFacts::from_metadata(&with_extra).unwrap(), facts);
    let mut gap = m;
    gap.remove("descriptor.1");
    assert!(matches!(
        PublicFacts::from_metadata(&gap),
        Err(MaterialError::BadMetadata { .. })
    ));
}

#[test]
fn private_tokens_are_found_before_parsing() {
    let xprv = "xprv9s21ZrQH143K3h3fDYiay8mocZ3afhfULfb5GX8kCBdno77K4HiA15Tg23wpbeF1pLfs1c5SPmYHrEpTuuRhxMwvKDwqdKiGJS9XFKzUsAF";
    assert_eq!(count_private_tokens(&format!("wpkh({xprv}/0/*)")), 1);
    let xpub = "xpub661MyMwAqRbcGB88KaFbLGiYAat55APKhtWg4uYMkXAmfuSTbq2QYsn9sKJCj1YqZPafsboef4h4YbXXhNhPwMbkHTpkf3zLhx7HvFw1NDy";
    assert_eq!(count_private_tokens(&format!("wpkh({xpub}/0/*)")), 0);
}

/// The tpub at m/1017'/1'/7' of `words` (what `lncli wallet accounts list`
/// shows on regtest).
fn backup_account_tpub(words: &str, passphrase: &[u8]) -> String {
    use crate::wallet::aezeed::{CipherSeed, Mnemonic};
    let seed = CipherSeed::decipher(&Mnemonic::from_str(words).unwrap(), passphrase).unwrap();
    let mut master = seed.master_key(bitcoin::Network::Regtest).unwrap();
    let secp = Secp256k1::new();
    let path = bitcoin::bip32::DerivationPath::from_str("m/1017'/1'/7'").unwrap();
    let xpub = bitcoin::bip32::Xpub::from_priv(&secp, &master.derive_priv(&secp, &path).unwrap());
    master.private_key.non_secure_erase();
    xpub.to_string()
}

fn lnd_backup_key(text: &str) -> Result<Material, MaterialError> {
    let opts = ParseOptions::new(Network::Regtest);
    Material::parse(
        Kind::LndBackupKey,
        &SecretString::new(text.to_owned()),
        &opts,
    )
}

#[test]
fn lnd_backup_key_is_the_aezeed_s_backup_key_and_cross_checks() {
    let seed = aezeed(LND_WALLET, None).unwrap();
    let tpub = backup_account_tpub(LND_WALLET, b"");
    let key = lnd_backup_key(&format!("  {tpub}\n")).unwrap();
    assert!(Kind::LndBackupKey.is_secret());
    assert_eq!(key.secret().unwrap().expose(), tpub);
    let fp = seed.public().backup_key_fingerprint.clone();
    assert_eq!(key.public().backup_key_fingerprint, fp);
    // Both kinds give the key itself, and it is the same key.
    let from_seed = seed.backup_key().unwrap().unwrap().fingerprint();
    let from_key = key.backup_key().unwrap().unwrap().fingerprint();
    assert_eq!((Some(from_seed.clone()), from_key), (fp, from_seed));
    let checks = cross_check(&[("seed", &seed), ("bk", &key)], &[]);
    let c = checks.iter().find(|c| c.name.contains("'bk'")).unwrap();
    assert!(c.ok, "{c:?}");
    // Another wallet's key is caught, naming both fingerprints.
    let other_words = crate::wallet::aezeed::CipherSeed::generate(0)
        .unwrap()
        .to_mnemonic(b"")
        .unwrap()
        .phrase();
    let other = lnd_backup_key(&backup_account_tpub(&other_words, b"")).unwrap();
    let checks = cross_check(&[("seed", &seed), ("bk", &other)], &[]);
    let c = checks.iter().find(|c| c.name.contains("'bk'")).unwrap();
    assert!(!c.ok && c.detail.contains("different nodes"), "{c:?}");
    // Read back from the store's facts.
    let back = Material::from_stored(
        Kind::LndBackupKey,
        key.secret(),
        key.public(),
        &ParseOptions::new(Network::Regtest),
    )
    .unwrap();
    assert_eq!(back.public(), key.public());
    // Other kinds have no backup key.
    assert!(other.backup_key().is_some() && aezeed_free_kinds_have_none());
}

fn aezeed_free_kinds_have_none() -> bool {
    let words = "abandon abandon abandon abandon abandon abandon abandon abandon abandon \
        abandon abandon about";
    let m = Material::parse(
        Kind::Bip39,
        &SecretString::new(words.to_owned()),
        &ParseOptions::new(Network::Regtest),
    );
    m.is_ok_and(|m| m.backup_key().is_none())
}

#[test]
fn lnd_backup_key_refuses_what_is_not_the_backup_account() {
    let tpub = backup_account_tpub(LND_WALLET, b"");
    // On mainnet a tpub is the wrong network.
    let main = ParseOptions::new(Network::Bitcoin);
    let err = Material::parse(Kind::LndBackupKey, &SecretString::new(tpub), &main).unwrap_err();
    assert!(err.to_string().contains("mainnet"), "{err}");
    // A key at the wrong depth (the master's public key).
    use crate::wallet::aezeed::{CipherSeed, Mnemonic};
    let seed = CipherSeed::decipher(&Mnemonic::from_str(LND_WALLET).unwrap(), b"").unwrap();
    let mut master = seed.master_key(bitcoin::Network::Regtest).unwrap();
    let root = bitcoin::bip32::Xpub::from_priv(&Secp256k1::new(), &master).to_string();
    master.private_key.non_secure_erase();
    let err = lnd_backup_key(&root).unwrap_err();
    assert!(matches!(err, MaterialError::BackupKey { .. }), "{err:?}");
    assert!(err.to_string().contains("depth 0"), "{err}");
    assert!(!err.to_string().contains(&root), "{err}");
    // A passphrase has no meaning here.
    let opts = ParseOptions {
        passphrase: Some(SecretString::new("x".into())),
        ..ParseOptions::new(Network::Regtest)
    };
    let err = Material::parse(Kind::LndBackupKey, &SecretString::new(root), &opts).unwrap_err();
    assert!(
        matches!(err, MaterialError::PassphraseNotApplicable { .. }),
        "{err:?}"
    );
}

#[test]
fn node_identity_compares_each_aezeed_with_the_running_node() {
    let seed = aezeed(LND_WALLET, None).unwrap();
    let node = seed.public().node_pubkey.clone().unwrap();
    let items = [("seed", &seed)];
    let ok = node_identity(&items, &node.to_uppercase());
    assert!(ok.len() == 1 && ok[0].ok, "{ok:?}");
    let bad = node_identity(&items, &"02".repeat(33));
    assert!(
        bad.len() == 1 && !bad[0].ok && bad[0].detail.contains(&node),
        "{bad:?}"
    );
}
