use super::descriptor::count_private_tokens;
use super::seed::{aezeed_bytes, aezeed_checksum_ok, crc32c};
use super::xkey::{KEY_VERSIONS, standard_version};
use super::*;

/// lnd `aezeed/cipherseed_test.go`, `version0TestVectors[0]`: entropy
/// 81b637d86359e6960de795e41e0b4cfd, salt "salt1", empty password
/// (default "aezeed"), birthday 0.
const LND_VECTOR: &str = "ability liquid travel stem barely drastic pact cupboard apple \
    thrive morning oak feature tissue couch old math inform success suggest drink motion \
    know royal";

fn indices(m: &str) -> Vec<u16> {
    m.split_whitespace()
        .map(|w| bip39::Language::English.find_word(w).unwrap())
        .collect()
}

#[test]
fn crc32c_check_value() {
    // The standard CRC-32C check value (RFC 3720 / iSCSI).
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn lnd_aezeed_vector_decodes_to_its_layout() {
    let bytes = aezeed_bytes(&indices(LND_VECTOR));
    assert_eq!(bytes[0], 0, "external version");
    assert_eq!(&bytes[24..29], b"salt1", "salt from lnd's test vector");
    assert!(aezeed_checksum_ok(&indices(LND_VECTOR)));
    // The second vector (password "!very_safe_55345_password*") shares
    // the salt.
    let second = "able tree stool crush transfer cloud cross three profit outside hen \
        citizen plate ride require leg siren drum success suggest drink require fiscal upgrade";
    let bytes = aezeed_bytes(&indices(second));
    assert_eq!(&bytes[24..29], b"salt1");
    assert!(aezeed_checksum_ok(&indices(second)));
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
