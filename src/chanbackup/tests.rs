//! Cross-checks against the simulator's independent SCB writer
//! (`sim::backup`), and one test per error kind.
//!
//! The simulator's Singles carry real curve points; the fixtures here still
//! replace them with fixed keys so that a failure names a reproducible key.

use std::collections::BTreeMap;

use bitcoin::consensus::encode::serialize;
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
use rand::Rng;

use super::*;
use crate::sim::backup as sim;

const RAW_KEY: [u8; 32] = [7u8; 32];

fn key() -> BackupKey {
    BackupKey::from_raw(RAW_KEY)
}

fn point(seed: u8) -> [u8; 33] {
    let secp = Secp256k1::signing_only();
    let sk = SecretKey::from_slice(&[seed.max(1); 32]).expect("valid secret");
    PublicKey::from_secret_key(&secp, &sk).serialize()
}

/// A simulator Single of a random version with fixed public keys. Odd ones
/// carry CloseTxInputs; the tests that edit a version byte or the body's
/// tail by hand take even ones.
fn fixture(i: u32) -> sim::Single {
    let mut rng = rand::thread_rng();
    let version = rng.gen_range(0..=sim::MAX_SINGLE_VERSION);
    let mut s = sim::Single::random_of(&mut rng, i, 600 + i, version, i % 2 == 1);
    let base = (i as u8).wrapping_mul(7).wrapping_add(1);
    s.remote_node_pub = point(base);
    for (k, key) in s.remote_keys.iter_mut().enumerate() {
        *key = point(base.wrapping_add(k as u8 + 1));
    }
    s
}

/// The simulator's serialized Single as our parser reads it alone.
fn parse_sim(s: &sim::Single) -> Result<Single, ParseError> {
    Single::parse(&s.serialize().expect("sim serializes"))
}

/// CloseTxInputs as lnd appends them: tx, u16 sig length, sig, extras.
fn close_tx_bytes(height: Option<u64>, root: Option<[u8; 32]>) -> (Transaction, Vec<u8>) {
    let tx = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::from_consensus(0x2000_0001),
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::new(),
            sequence: Sequence(0x8000_0002),
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(99_000),
            script_pubkey: ScriptBuf::from_bytes(
                vec![0x00, 0x20].into_iter().chain([9u8; 32]).collect(),
            ),
        }],
    };
    let mut out = serialize(&tx);
    let sig = [0x30u8; 71];
    out.extend_from_slice(&(sig.len() as u16).to_be_bytes());
    out.extend_from_slice(&sig);
    if let Some(h) = height {
        out.extend_from_slice(&h.to_be_bytes());
    }
    if let Some(r) = root {
        out.extend_from_slice(&r);
    }
    (tx, out)
}

/// Our reading of CloseTxInputs equals what the simulator wrote.
fn assert_same_close_tx_inputs(got: &Single, s: &sim::Single) {
    assert_eq!(got.version_byte(), s.version_byte());
    let (Some(g), Some(w)) = (&got.close_tx_inputs, &s.close_tx_inputs) else {
        assert_eq!(got.has_close_tx_inputs(), s.close_tx_inputs.is_some());
        return;
    };
    assert_eq!(g.commit_tx, w.commit_tx);
    assert_eq!(g.commit_sig, w.commit_sig);
    let taproot = got.channel_type.is_taproot();
    assert_eq!(g.commit_height, taproot.then_some(w.commit_height));
    assert_eq!(g.tapscript_root, w.tapscript_root);
}

#[test]
fn unmodified_simulator_singles_parse_strictly() {
    let mut rng = rand::thread_rng();
    let mut kinds = std::collections::BTreeSet::new();
    for i in 0..200 {
        let s = sim::Single::random(&mut rng, i, 700 + i);
        let got = parse_sim(&s).unwrap_or_else(|e| panic!("single {i}: {e}"));
        assert_eq!(got.remote_node_pub.serialize(), s.remote_node_pub);
        assert!(got.addresses.len() <= 2);
        assert_same_close_tx_inputs(&got, &s);
        kinds.insert(got.has_close_tx_inputs());
    }
    // About half carry CloseTxInputs: 200 draws without both is nil.
    assert_eq!(kinds.len(), 2);
}

#[test]
fn simulator_close_tx_inputs_read_back_for_every_version() {
    let mut rng = rand::thread_rng();
    for t in ChannelType::ALL {
        for close in [false, true] {
            let s = sim::Single::random_of(&mut rng, 1, 900, t.version(), close);
            let got = parse_sim(&s).unwrap_or_else(|e| panic!("{} close {close}: {e}", t.name()));
            assert_eq!(got.channel_type, t);
            assert_eq!(got.has_close_tx_inputs(), close);
            assert_eq!(got.lease_expiry, s.lease_expiry);
            assert_same_close_tx_inputs(&got, &s);
        }
    }
}

#[test]
fn simulator_multi_opens_with_the_same_channels() {
    let singles: Vec<sim::Single> = (0..6).map(fixture).collect();
    let refs: Vec<&sim::Single> = singles.iter().collect();
    let blob = sim::pack_multi(&RAW_KEY, &refs).expect("sim packs");
    let multi = open_multi(&key(), &blob).expect("opens");
    assert_eq!(multi.singles.len(), singles.len());
    let want: BTreeMap<_, _> = singles.iter().map(|s| (s.chan_point(), s)).collect();
    for got in &multi.singles {
        let s = want[&got.chan_point()];
        assert_eq!(got.version_byte(), s.version);
        assert_eq!(got.is_initiator, s.is_initiator);
        assert_eq!(got.chain_hash, s.chain_hash);
        assert_eq!(got.funding_txid, s.txid);
        assert_eq!(got.short_channel_id.to_u64(), s.short_chan_id);
        assert_eq!(got.remote_node_pub.serialize(), s.remote_node_pub);
        assert_eq!(got.capacity_sat, s.capacity_sat);
        assert_eq!(got.local.csv_delay, s.local_csv);
        let locs = [
            got.local.multisig,
            got.local.revocation_base,
            got.local.payment_base,
            got.local.delay_base,
            got.local.htlc_base,
        ];
        let locs: Vec<(u32, u32)> = locs.iter().map(|l| (l.family, l.index)).collect();
        assert_eq!(locs, s.local_keys);
        assert_eq!(got.remote.htlc_base.serialize(), s.remote_keys[4]);
        assert_eq!(got.shachain_root.pubkey, None);
        let sl = got.shachain_root.locator;
        assert_eq!((sl.family, sl.index), s.shachain_locator);
        assert_eq!(got.lease_expiry, s.lease_expiry);
        // IPv4, IPv6, Tor v3, Tor v3 and IPv4, or none.
        assert!(got.addresses.len() <= 2);
        for a in &got.addresses {
            let text = a.to_string();
            assert!(text.ends_with(":9735"), "{text}");
            assert!(
                matches!(a, Address::Ipv4 { .. } | Address::Ipv6 { .. })
                    || text.ends_with("d.onion:9735"),
                "{text}"
            );
        }
        assert_same_close_tx_inputs(got, s);
    }
    // And lncli's channel point strings match the simulator's.
    let mut a: Vec<String> = multi
        .singles
        .iter()
        .map(|s| s.chan_point().to_string())
        .collect();
    let mut b: Vec<String> = singles.iter().map(|s| s.chan_point().to_string()).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn simulator_packed_single_and_empty_multi_open() {
    let s = fixture(3);
    let blob = sim::pack_single(&RAW_KEY, &s).expect("sim packs");
    let got = open_single(&key(), &blob).expect("opens");
    assert_eq!(got.chan_point(), s.chan_point());
    let empty = sim::pack_multi(&RAW_KEY, &[]).expect("sim packs");
    assert_eq!(empty.len(), NONCE_LEN + TAG_LEN + 5);
    assert_eq!(open_multi(&key(), &empty).expect("opens").singles, vec![]);
}

#[test]
fn every_version_with_and_without_close_tx_inputs() {
    for t in ChannelType::ALL {
        for close in [false, true] {
            let v = t.version();
            let mut s = fixture(u32::from(v));
            s.close_tx_inputs = None; // written by hand below
            s.version = if close { v | CLOSE_TX_INPUTS_BIT } else { v };
            s.lease_expiry = (t == ChannelType::ScriptEnforcedLease).then_some(800_000);
            let height = t.is_taproot().then_some(42);
            let root = t.has_tapscript_root().then_some([0xabu8; 32]);
            let (tx, bytes) = close_tx_bytes(height, root);
            if close {
                s.trailer = bytes;
            }
            let got = parse_sim(&s).unwrap_or_else(|e| panic!("version {v} close {close}: {e}"));
            assert_eq!(got.channel_type, t);
            assert_eq!(got.version_byte(), s.version);
            assert_eq!(got.has_close_tx_inputs(), close);
            assert_eq!(got.lease_expiry, s.lease_expiry);
            if let Some(c) = got.close_tx_inputs {
                assert_eq!(c.commit_tx, tx);
                assert_eq!(c.commit_sig, vec![0x30; 71]);
                assert_eq!(c.commit_height, height);
                assert_eq!(c.tapscript_root, root);
            }
        }
    }
}

#[test]
fn channel_type_names_are_distinct() {
    let names: std::collections::BTreeSet<_> = ChannelType::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(names.len(), 8);
    assert_eq!(
        ChannelType::from_version(3),
        Some(ChannelType::AnchorsZeroFeeHtlcTx)
    );
    assert_eq!(ChannelType::from_version(8), None);
}

#[test]
fn every_address_type_prints_like_lncli() {
    let mut s = fixture(1);
    let mut a = vec![0u8]; // type 0: skipped
    a.extend([1, 1, 2, 3, 4, 0x26, 0x07]); // 1.2.3.4:9735
    a.push(2);
    a.extend(std::net::Ipv6Addr::LOCALHOST.octets());
    a.extend(9735u16.to_be_bytes());
    a.push(2); // IPv4-mapped IPv6: Go prints it as IPv4
    a.extend(
        std::net::Ipv4Addr::new(5, 6, 7, 8)
            .to_ipv6_mapped()
            .octets(),
    );
    a.extend(9736u16.to_be_bytes());
    a.push(3);
    a.extend([0u8; ONION_V2_LEN]);
    a.extend(9735u16.to_be_bytes());
    a.push(4);
    a.extend([0xffu8; ONION_V3_LEN]);
    a.extend(9735u16.to_be_bytes());
    a.push(5);
    a.push(12);
    a.extend(b"node.example");
    a.extend(9735u16.to_be_bytes());
    a.extend([9, 0xde, 0xad, 1, 0]); // unknown type 9: swallows the rest
    s.addresses = a;
    let got = parse_sim(&s).expect("parses");
    let shown: Vec<String> = got.addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        shown,
        [
            "1.2.3.4:9735".to_string(),
            "[::1]:9735".into(),
            "5.6.7.8:9736".into(),
            format!("{}.onion:9735", "a".repeat(16)),
            format!("{}.onion:9735", "7".repeat(56)),
            "node.example:9735".into(),
            "09dead0100".into(),
        ]
    );
    // A DNS name lnd did not validate is printed escaped, on one line.
    let dns = Address::Dns {
        hostname: b"a\nb".to_vec(),
        port: 1,
    };
    assert_eq!(dns.to_string(), "a\\nb:1");
}

#[test]
fn truncated_address_names_the_field() {
    let mut s = fixture(1);
    s.addresses = vec![1, 10, 0, 0]; // IPv4 cut after three bytes
    let e = parse_sim(&s).unwrap_err();
    assert_eq!(e.field, "addresses.ipv4");
    assert_eq!(e.kind, ParseErrorKind::Truncated { need: 4, left: 3 });
}

fn multi_plain(n: u32) -> Vec<u8> {
    let singles: Vec<sim::Single> = (0..n).map(fixture).collect();
    let refs: Vec<&sim::Single> = singles.iter().collect();
    sim::multi_plaintext(&refs).expect("sim writes").to_vec()
}

#[test]
fn truncation_anywhere_is_an_error_naming_the_single() {
    let plain = multi_plain(2);
    // A short cut leaves too few bytes for two Singles (the count check);
    // a later one is cut short inside a Single, which the error names.
    let mut truncated_inside = 0;
    for cut in 0..plain.len() {
        let e = Multi::parse(&plain[..cut]).unwrap_err();
        assert!(!e.to_string().contains('\n'));
        match e.kind {
            ParseErrorKind::Truncated { .. } if cut > 5 => {
                assert!(e.single.is_some(), "cut at {cut}: {e}");
                truncated_inside += 1;
            }
            ParseErrorKind::Truncated { .. } => assert_eq!(e.single, None),
            ParseErrorKind::ImpossibleCount { count: 2, .. } => {
                assert!(cut < 5 + 2 * MIN_SINGLE_LEN, "cut at {cut}: {e}")
            }
            _ => panic!("cut at {cut}: {e}"),
        }
    }
    assert!(truncated_inside > 0);
    assert_eq!(Multi::parse(&plain).expect("whole").singles.len(), 2);
    // A packed Single cut anywhere names its field.
    let one = fixture(4).serialize().expect("sim").to_vec();
    for cut in 0..one.len() {
        let e = Single::parse(&one[..cut]).unwrap_err();
        assert!(
            matches!(e.kind, ParseErrorKind::Truncated { .. }),
            "cut at {cut}: {e}"
        );
        assert_eq!(e.single, Some(0));
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut plain = multi_plain(1);
    plain.push(0);
    let e = Multi::parse(&plain).unwrap_err();
    assert_eq!(e.single, None);
    assert_eq!(e.kind, ParseErrorKind::TrailingBytes(1));
    // Inside a Single: the length prefix covers bytes no field reads.
    let mut s = fixture(0);
    s.trailer = vec![0xab; 3];
    let e = parse_sim(&s).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::TrailingBytes(3));
    assert!(e.field.starts_with("body"), "{e}");
    // After a packed Single.
    let mut one = s.clone();
    one.trailer.clear();
    let mut bytes = one.serialize().expect("sim").to_vec();
    bytes.push(1);
    let e = Single::parse(&bytes).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::TrailingBytes(1));
}

#[test]
fn impossible_counts_are_refused_before_allocating() {
    let e = Multi::parse(&[0, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
    assert_eq!(e.field, "count");
    assert_eq!(
        e.kind,
        ParseErrorKind::ImpossibleCount {
            count: u32::MAX,
            left: 0,
            max: 0
        }
    );
    let mut plain = multi_plain(1);
    plain[4] = 2; // claims two, holds one
    let e = Multi::parse(&plain).unwrap_err();
    assert!(
        matches!(e.kind, ParseErrorKind::ImpossibleCount { count: 2, .. }),
        "{e}"
    );
}

#[test]
fn unknown_versions_are_named() {
    let e = Multi::parse(&[1, 0, 0, 0, 0]).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::UnknownMultiVersion(1));
    for raw in [8u8, 0x88, 0x7f] {
        let mut s = fixture(0);
        s.version = raw;
        let e = parse_sim(&s).unwrap_err();
        assert_eq!(e.field, "version");
        assert_eq!(
            e.kind,
            ParseErrorKind::UnknownSingleVersion {
                version: raw & 0x7f,
                raw
            }
        );
        assert!(
            e.to_string().contains(&format!("version {}", raw & 0x7f)),
            "{e}"
        );
    }
}

#[test]
fn the_failing_single_is_named_by_index() {
    let mut singles: Vec<sim::Single> = (0..3).map(fixture).collect();
    singles[1].remote_keys[2] = [0x05; 33];
    let refs: Vec<&sim::Single> = singles.iter().collect();
    let plain = sim::multi_plaintext(&refs).expect("sim writes");
    let order = sim::parse_multi(&plain).expect("sim reads its own");
    let bad = order.iter().position(|s| s.remote_keys[2] == [0x05; 33]);
    let e = Multi::parse(&plain).unwrap_err();
    assert_eq!(e.single, bad.map(|i| i as u32));
    assert_eq!(e.field, "remote.payment_base");
    assert_eq!(e.kind, ParseErrorKind::BadPubkey);
    assert_eq!(
        e.to_string(),
        format!(
            "single #{}, field remote.payment_base: is not a valid compressed secp256k1 public key",
            bad.unwrap_or(9)
        )
    );
}

#[test]
fn bad_bools_pubkeys_and_transactions_are_refused() {
    let s = fixture(0);
    let mut bytes = s.serialize().expect("sim").to_vec();
    bytes[3] = 2; // is_initiator
    let e = Single::parse(&bytes).unwrap_err();
    assert_eq!(
        (e.field, e.kind),
        ("is_initiator", ParseErrorKind::NotBool(2))
    );
    let mut t = s.clone();
    t.remote_node_pub = [0x02; 33];
    t.remote_node_pub[1..].fill(0);
    if let Err(e) = parse_sim(&t) {
        assert_eq!(e.field, "remote_node_pub");
    }
    let mut t = s.clone();
    t.shachain_pub = [0x04; 33];
    assert_eq!(parse_sim(&t).unwrap_err().field, "shachain_root.pubkey");
    t.shachain_pub = point(9);
    assert!(
        parse_sim(&t)
            .expect("legacy shachain point")
            .shachain_root
            .pubkey
            .is_some()
    );
    let mut t = s.clone();
    t.version |= CLOSE_TX_INPUTS_BIT;
    t.trailer = vec![2, 0, 0, 0];
    let e = parse_sim(&t).unwrap_err();
    assert_eq!(e.field, "close_tx_inputs.commit_tx");
    assert!(matches!(e.kind, ParseErrorKind::BadTransaction(_)), "{e}");
}

#[test]
fn decryption_errors_are_typed() {
    let blob = sim::pack_multi(&RAW_KEY, &[&fixture(0)]).expect("sim packs");
    let other = BackupKey::from_raw([8u8; 32]);
    let e = open_multi(&other, &blob).unwrap_err();
    assert_eq!(
        e,
        OpenError::Decrypt(DecryptError::WrongKey {
            fingerprint: other.fingerprint()
        })
    );
    assert!(e.to_string().contains(&other.fingerprint()), "{e}");
    assert!(!e.to_string().contains("chacha20poly1305"), "{e}");
    let mut tampered = blob.clone();
    tampered[30] ^= 1;
    assert!(matches!(
        decrypt(&key(), &tampered),
        Err(DecryptError::WrongKey { .. })
    ));
    // The nonce is associated data: changing it fails too.
    let mut nonce = blob.clone();
    nonce[0] ^= 1;
    assert!(decrypt(&key(), &nonce).is_err());
    for len in [0, 23, 24, 39] {
        assert_eq!(
            decrypt(&key(), &blob[..len]).unwrap_err(),
            DecryptError::TooShort { len, min: 40 }
        );
    }
    // 40 bytes is an empty plaintext: decrypts, then fails to parse.
    let empty = sim::encrypt(&RAW_KEY, &[]).expect("sim encrypts");
    assert_eq!(empty.len(), 40);
    let e = open_multi(&key(), &empty).unwrap_err();
    assert!(matches!(e, OpenError::Parse(_)), "{e}");
}

#[test]
fn keys_from_master_and_account_xpub_open_the_same_backup() {
    use bitcoin::bip32::{DerivationPath, Xpriv, Xpub};
    let secp = Secp256k1::new();
    let master = Xpriv::new_master(bitcoin::NetworkKind::Test, &[42u8; 32]).expect("master");
    let path: DerivationPath = "m/1017'/1'/7'".parse().expect("path");
    let account = Xpub::from_priv(&secp, &master.derive_priv(&secp, &path).expect("derive"));
    let a = BackupKey::from_master(&master).expect("from master");
    let b = BackupKey::from_account_xpub(&account.to_string(), bitcoin::NetworkKind::Test)
        .expect("from tpub");
    assert_eq!(a.fingerprint(), b.fingerprint());
    let blob = sim::pack_multi(a.expose(), &[&fixture(2)]).expect("sim packs");
    assert_eq!(open_multi(&b, &blob).expect("opens").singles.len(), 1);
}

#[test]
fn restore_concerns_name_each_risk() {
    let kinds = |s: &sim::Single, lnd: Option<&str>| -> Vec<Concern> {
        let parsed = parse_sim(s).unwrap();
        let lnd = lnd.map(|v| v.parse().unwrap());
        concerns(&parsed, lnd).into_iter().map(|(c, _)| c).collect()
    };
    // A reachable anchors channel with close-tx inputs, on a recent lnd: none.
    let mut rng = rand::thread_rng();
    let mut s = sim::Single::random_of(&mut rng, 3, 603, 3, true);
    s.addresses = vec![1, 127, 0, 0, 1, 0x26, 0x07];
    assert_eq!(kinds(&s, Some("0.19.1-beta")), vec![]);
    // The close-tx bit alone needs 0.19: older lnd refuses the version byte.
    let (parsed, lnd) = (parse_sim(&s).unwrap(), "0.18.5".parse().unwrap());
    let c = concerns(&parsed, Some(lnd));
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(c[0].1.contains("needs lnd 0.19.0 or later"), "{c:?}");
    // No address; then Tor v2 only (type 3: 10 bytes and a port).
    s.addresses.clear();
    assert_eq!(kinds(&s, None), vec![Concern::NoAddress]);
    s.addresses = [vec![3u8], vec![0x11; 10], vec![0x26, 0x07]].concat();
    assert_eq!(kinds(&s, None), vec![Concern::TorV2Only]);
    // A Tor v2 address beside an IPv4 one is fine.
    s.addresses.extend_from_slice(&[1, 10, 0, 0, 1, 0x26, 0x07]);
    assert_eq!(kinds(&s, None), vec![]);
    // Final taproot without close-tx inputs on lnd 0.20.
    let mut s = sim::Single::random_of(&mut rng, 4, 604, 7, false);
    s.addresses = vec![1, 127, 0, 0, 1, 0x26, 0x07];
    let got = kinds(&s, Some("v0.20.0-beta"));
    assert_eq!(got, vec![Concern::NeedsNewerLnd, Concern::NoCloseTxInputs]);
}
