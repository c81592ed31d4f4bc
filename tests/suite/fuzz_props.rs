//! The stable-toolchain stand-in for the `fuzz/` targets: random and mutated
//! inputs to every parser of untrusted bytes. Each must return (never panic)
//! and every error must be one line. The long runs are cargo-fuzz's (see
//! docs/fuzzing.md); these keep the entry points honest in CI.

use std::path::Path;
use std::sync::LazyLock;

use chanvault::escrow::audit::{AUDIT_FILE, AuditLog, Event, HEAD_FILE};
use chanvault::scb::ChanPoint;
use chanvault::seal::{Identities, Recipients};
use chanvault::secret::SecretString;
use chanvault::wallet::aez;
use chanvault::wallet::aezeed::{CipherSeed, Mnemonic};
use proptest::prelude::*;
use prost::Message;

const CASES: u32 = 256;
/// A lock file as restic writes it (after decryption).
const LOCK: &[u8] = br#"{"time":"2026-11-26T03:00:00.123456789Z","exclusive":false,"hostname":"node","username":"chanvault","pid":4242,"uid":0,"gid":0}"#;

/// lnd's first aezeed vector (no passphrase, scrypt N = 16 as in lnd's test
/// file) and the entropy it holds.
const AEZEED: &str = "ability liquid travel stem barely drastic pact cupboard apple thrive morning oak feature tissue couch old math inform success suggest drink motion know royal";
const AEZEED_ENTROPY: [u8; 16] = [
    0x81, 0xb6, 0x37, 0xd8, 0x63, 0x59, 0xe6, 0x96, 0x0d, 0xe7, 0x95, 0xe4, 0x1e, 0x0b, 0x4c, 0xfd,
];
/// N = 2^4.
const AEZEED_TEST_LOG_N: u8 = 4;
const AEZ_KEY: [u8; 32] = [0x42; 32];

/// The words of every message a mnemonic can fail with (numbers aside).
static AEZEED_ERROR_WORDS: LazyLock<Vec<String>> = LazyLock::new(|| {
    use chanvault::wallet::aezeed::SeedError as E;
    [
        E::WordCount(1),
        E::UnknownWord { position: 1 },
        E::BadChecksum,
        E::UnknownExternalVersion(1),
        E::UnknownInternalVersion(1),
        E::WrongPassphrase,
        E::Kdf("invalid parameters"),
        E::Kdf("invalid output length"),
    ]
    .iter()
    .flat_map(|e| words_of(&e.to_string()))
    .collect()
});

fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Open a mnemonic the way the fuzz target does: it opens to lnd's vector's
/// entropy (only the untouched words can) or fails with a one-line error
/// made only of the fixed messages' words, so nothing typed leaks into it.
fn open_aezeed(m: &Mnemonic) -> Result<(), TestCaseError> {
    match CipherSeed::decipher_with_scrypt_log_n_for_tests(m, b"", AEZEED_TEST_LOG_N) {
        Ok(seed) => prop_assert_eq!(seed.entropy(), &AEZEED_ENTROPY),
        Err(e) => aezeed_error_is_clean(&e)?,
    }
    Ok(())
}

fn aezeed_error_is_clean(e: &chanvault::wallet::aezeed::SeedError) -> Result<(), TestCaseError> {
    one_line(e)?;
    for w in words_of(&e.to_string()) {
        prop_assert!(
            AEZEED_ERROR_WORDS.contains(&w),
            "{:?} is not in any fixed message",
            w
        );
    }
    Ok(())
}

struct Keys {
    ids: Identities,
    recipients: Recipients,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let (secret, recipient) = chanvault::seal::generate_identity();
    let text = SecretString::new(format!("{}\n", secret.expose()));
    Keys {
        ids: Identities::from_secret_str(&text, "test identity").expect("identity"),
        recipients: Recipients::from_config(&[recipient], &[]).expect("recipients"),
    }
});

/// A sealed backup, a journal, an audit log and a config that are all valid:
/// the seeds the mutations start from.
static SEALED: LazyLock<Vec<u8>> = LazyLock::new(|| {
    chanvault::seal::seal(&KEYS.recipients, b"a multi channel backup").expect("seal")
});

const JOURNAL: &str = r#"{"format":1,"backups":[{"id":"0000000000000000000000000000000000000000000000000000000000000000","created":"2024-01-01T00:00:00Z","source":"stream","channels":1,"chan_points":["0000000000000000000000000000000000000000000000000000000000000001:0"],"fingerprint":"ab","blob_sha256":"cd","sealed_len":10,"recipients":["age1x"]}],"last_good":"0000000000000000000000000000000000000000000000000000000000000000","targets":{"pbs":{"delivered":{},"current":null,"failures":0}}}"#;

const CONFIG: &str = r#"state_dir = "state"
[lnd]
address = "127.0.0.1:10009"
tls_cert = "tls.cert"
macaroon = "readonly.macaroon"
[backup]
keep = 10
[seal]
recipients = ["age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"]
[[target]]
name = "pbs"
kind = "dir"
path = "targets/pbs"
[[target]]
name = "offsite"
kind = "restic"
repository = "rest:http://127.0.0.1:8000/repo/"
password_file = "restic-password"
"#;

/// A valid audit log and its head file.
fn audit_seed() -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::new(dir.path());
    for (i, op) in ["put", "get", "rotate"].iter().enumerate() {
        log.append(&Event {
            accessor: "test",
            op,
            path: "chanvault/seed",
            version: Some(i as u64),
            outcome: "ok",
        })
        .expect("append");
    }
    (
        std::fs::read(dir.path().join(AUDIT_FILE)).expect("read audit log"),
        std::fs::read(dir.path().join(HEAD_FILE)).expect("read audit head"),
    )
}

static AUDIT: LazyLock<(Vec<u8>, Vec<u8>)> = LazyLock::new(audit_seed);

/// A decrypted Multi built by hand from lnd's layout (proto/NOTES.md §7):
/// a lease channel (version 4) with every address type, and a tapscript-root
/// channel (version 6) with CloseTxInputs. The parser's seed.
static SCB: LazyLock<Vec<u8>> = LazyLock::new(|| {
    // secp256k1's generator: a valid compressed public key.
    let g = hex::decode("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
        .expect("hex");
    let single = |version: u8, tail: &[u8]| {
        let mut b = vec![1u8];
        b.extend([0x6fu8; 32]); // chain hash
        b.extend([0x11u8; 32]); // funding txid
        b.extend(1u16.to_be_bytes());
        b.extend(0x0009_c400_0012_0001u64.to_be_bytes());
        b.extend(&g);
        let mut addrs = vec![1u8, 10, 0, 0, 1, 0x26, 0x07, 2];
        addrs.extend([0u8; 15]);
        addrs.extend([1, 0x26, 0x07, 3]);
        addrs.extend([7u8; 10]);
        addrs.extend([0x26, 0x07, 4]);
        addrs.extend([8u8; 35]);
        addrs.extend([0x26, 0x07, 5, 4]);
        addrs.extend(b"node");
        addrs.extend([0x26, 0x07]);
        b.extend((addrs.len() as u16).to_be_bytes());
        b.extend(addrs);
        b.extend(1_000_000u64.to_be_bytes());
        b.extend(144u16.to_be_bytes());
        for family in [0u32, 1, 3, 4, 2] {
            b.extend(family.to_be_bytes());
            b.extend(5u32.to_be_bytes());
        }
        b.extend(144u16.to_be_bytes());
        for _ in 0..5 {
            b.extend(&g);
        }
        b.extend([0u8; 33]);
        b.extend(5u32.to_be_bytes());
        b.extend(5u32.to_be_bytes());
        b.extend(tail);
        let mut out = vec![version];
        out.extend((b.len() as u16).to_be_bytes());
        out.extend(b);
        out
    };
    let tx = bitcoin::Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![bitcoin::TxIn::default()],
        output: vec![bitcoin::TxOut {
            value: bitcoin::Amount::from_sat(5000),
            script_pubkey: bitcoin::ScriptBuf::new(),
        }],
    };
    let mut close = bitcoin::consensus::encode::serialize(&tx);
    close.extend(3u16.to_be_bytes());
    close.extend([0x30, 1, 2]);
    close.extend(7u64.to_be_bytes()); // commit height (taproot)
    close.extend([0xaau8; 32]); // tapscript root (version 6)
    let mut plain = vec![0u8, 0, 0, 0, 2];
    plain.extend(single(4, &800_000u32.to_be_bytes()));
    plain.extend(single(6 | 0x80, &close));
    plain
});

/// Byte-level mutations of a valid input: flip, truncate, splice, insert.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = seed.len().max(1);
    prop::collection::vec((0..4u8, 0..len, any::<u8>()), 1..8).prop_map(move |ops| {
        let mut b = seed.clone();
        for (op, at, byte) in ops {
            let at = at.min(b.len());
            match op {
                0 if at < b.len() => b[at] ^= byte | 1,
                1 => b.truncate(at),
                2 => b.insert(at, byte),
                _ => {
                    let end = (at + usize::from(byte) % 16).min(b.len());
                    b.drain(at..end);
                }
            }
        }
        b
    })
}

fn inputs(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..512), mutated(seed)]
}

fn one_line(e: &dyn std::fmt::Display) -> Result<(), TestCaseError> {
    let s = e.to_string();
    prop_assert!(!s.contains('\n'), "multi-line error: {s:?}");
    prop_assert!(!s.is_empty(), "empty error");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn chan_point_parses_or_errs_in_one_line(bytes in inputs(
        b"4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b:1".to_vec()
    )) {
        let s = String::from_utf8_lossy(&bytes);
        match s.parse::<ChanPoint>() {
            Ok(cp) => prop_assert_eq!(cp.to_string().parse::<ChanPoint>().ok(), Some(cp)),
            Err(e) => one_line(&e)?,
        }
    }

    #[test]
    fn snapshot_proto_never_panics(bytes in inputs({
        let mut s = chanvault::lnd::proto::ChanBackupSnapshot::default();
        let mut multi = chanvault::lnd::proto::MultiChanBackup {
            multi_chan_backup: vec![1, 2, 3],
            ..Default::default()
        };
        multi.chan_points.push(Default::default());
        s.multi_chan_backup = Some(multi);
        s.encode_to_vec()
    })) {
        if let Ok(s) = chanvault::lnd::proto::ChanBackupSnapshot::decode(bytes.as_slice())
            && let Err(e) = chanvault::lnd::snapshot_from_proto("SubscribeChannelBackups", s)
        {
            one_line(&e)?;
        }
    }

    #[test]
    fn backup_stream_bytes_read_the_same_in_any_pieces(bytes in inputs({
        // Two framed snapshots as lnd sends them: Singles and multi.
        let s = chanvault::lnd::proto::ChanBackupSnapshot {
            single_chan_backups: Some(chanvault::lnd::proto::ChannelBackups {
                chan_backups: vec![chanvault::lnd::proto::ChannelBackup {
                    chan_point: Some(Default::default()),
                    chan_backup: vec![7; 40],
                }],
            }),
            multi_chan_backup: Some(chanvault::lnd::proto::MultiChanBackup {
                multi_chan_backup: vec![1, 2, 3],
                ..Default::default()
            }),
        };
        let msg = s.encode_to_vec();
        let mut body = Vec::new();
        for _ in 0..2 {
            body.push(0);
            body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
            body.extend_from_slice(&msg);
        }
        body
    }), piece in 1..64usize) {
        let seen = |rs: Vec<Result<chanvault::scb::Snapshot, chanvault::lnd::LndError>>| {
            rs.into_iter()
                .map(|r| r.map(|s| (s.multi.to_vec(), s.chan_points)).map_err(|e| e.to_string()))
                .collect::<Vec<_>>()
        };
        let whole = seen(chanvault::lnd::read_stream_bytes(&bytes, bytes.len()));
        let pieces = seen(chanvault::lnd::read_stream_bytes(&bytes, piece));
        prop_assert_eq!(&whole, &pieces);
        for r in &whole {
            if let Err(e) = r {
                one_line(e)?;
            }
        }
    }

    #[test]
    fn opening_hostile_ciphertext_errs_in_one_line(bytes in inputs(SEALED.clone())) {
        match chanvault::seal::open(&KEYS.ids, &bytes) {
            // Only the untouched file (or a no-op mutation) opens.
            Ok(p) => prop_assert_eq!(p.expose(), b"a multi channel backup"),
            Err(e) => one_line(&e)?,
        }
    }

    #[test]
    fn journal_parser_errs_in_one_line(bytes in inputs(JOURNAL.as_bytes().to_vec())) {
        if let Err(e) = chanvault::spool::parse_journal(&bytes) {
            one_line(&e)?;
        }
    }

    #[test]
    fn audit_verifier_errs_in_one_line(bytes in inputs(AUDIT.0.clone())) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(AUDIT_FILE), &bytes).expect("write");
        std::fs::write(dir.path().join(HEAD_FILE), &AUDIT.1).expect("write head");
        if let Err(e) = AuditLog::new(dir.path()).verify() {
            one_line(&e)?;
        }
    }

    #[test]
    fn restic_lock_parser_errs_in_one_line(bytes in inputs(LOCK.to_vec()), zstd in any::<bool>()) {
        let input = if zstd {
            let mut v = vec![2u8];
            v.extend(zstd::encode_all(&bytes[..], 1).expect("zstd"));
            v
        } else {
            bytes
        };
        if let Err(e) = chanvault::sink::restic::parse_lock_plaintext(&input) {
            one_line(&e)?;
        }
    }

    #[test]
    fn aezeed_text_errs_in_one_line(bytes in inputs(AEZEED.as_bytes().to_vec())) {
        match String::from_utf8_lossy(&bytes).parse::<Mnemonic>() {
            Ok(m) => open_aezeed(&m)?,
            Err(e) => aezeed_error_is_clean(&e)?,
        }
    }

    #[test]
    fn aezeed_word_swaps_and_replacements_never_open(
        edits in prop::collection::vec((0..24usize, 0..2048usize, any::<bool>()), 1..4)
    ) {
        let list = bip39::Language::English.word_list();
        let mut words: Vec<&str> = AEZEED.split(' ').collect();
        for (at, other, swap) in edits {
            if swap {
                words.swap(at, other % 24);
            } else {
                words[at] = list[other];
            }
        }
        let m: Mnemonic = words.join(" ").parse().expect("list words parse");
        open_aezeed(&m)?;
    }

    #[test]
    fn aezeed_bodies_with_valid_checksums_never_panic(body in prop::array::uniform29(any::<u8>())) {
        open_aezeed(&Mnemonic::with_checksum_for_tests(&body))?;
    }

    #[test]
    fn aez_decrypt_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..160), tau in 0..17usize) {
        let ad: &[&[u8]] = &[b"\x00salt1"];
        let _ = aez::decrypt(&AEZ_KEY, b"", ad, tau, &bytes);
        let sealed = aez::encrypt(&AEZ_KEY, b"", ad, tau, &bytes);
        prop_assert_eq!(sealed.len(), bytes.len() + tau);
        let opened = aez::decrypt(&AEZ_KEY, b"", ad, tau, &sealed);
        prop_assert_eq!(opened.ok().map(|m| m.to_vec()), Some(bytes));
    }

    #[test]
    fn scb_parsers_err_in_one_line(bytes in inputs(SCB.clone())) {
        match chanvault::chanbackup::Multi::parse(&bytes) {
            Ok(m) => {
                for s in &m.singles {
                    for a in &s.addresses {
                        one_line(a)?;
                    }
                }
            }
            Err(e) => one_line(&e)?,
        }
        if let Err(e) = chanvault::chanbackup::Single::parse(&bytes) {
            one_line(&e)?;
        }
    }

    #[test]
    fn config_parser_errs_in_one_line(bytes in inputs(CONFIG.as_bytes().to_vec())) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = chanvault::config::Config::parse(&text, Path::new("/etc/chanvault.toml")) {
            one_line(&e)?;
        }
    }
}

#[test]
fn the_seeds_are_valid() {
    assert!(chanvault::spool::parse_journal(JOURNAL.as_bytes()).is_ok());
    assert!(chanvault::sink::restic::parse_lock_plaintext(LOCK).is_ok());
    assert!(chanvault::seal::open(&KEYS.ids, &SEALED).is_ok());
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(AUDIT_FILE), &AUDIT.0).expect("write");
    std::fs::write(dir.path().join(HEAD_FILE), &AUDIT.1).expect("write head");
    assert_eq!(
        AuditLog::new(dir.path()).verify().expect("verifies").len(),
        3
    );
    let m: Mnemonic = AEZEED.parse().expect("aezeed words");
    let seed = CipherSeed::decipher_with_scrypt_log_n_for_tests(&m, b"", AEZEED_TEST_LOG_N);
    assert_eq!(seed.expect("opens").entropy(), &AEZEED_ENTROPY);
    let multi = chanvault::chanbackup::Multi::parse(&SCB).expect("scb seed parses");
    assert_eq!(multi.singles.len(), 2);
    assert!(multi.singles[1].has_close_tx_inputs());
    assert_eq!(multi.singles[0].addresses.len(), 5);
    let cfg = chanvault::config::Config::parse(CONFIG, Path::new("/etc/chanvault.toml"));
    assert!(cfg.is_ok(), "{:?}", cfg.err().map(|e| e.to_string()));
}

/// Inputs the fuzzers found, kept so they stay fixed.
#[test]
fn fuzz_regressions() {
    // spool_journal, 2026-11-26: an unknown key with an escaped newline made
    // serde_json's "unknown field" error two lines long.
    let crash = b"{\"ji|)  rmat\\ni|)  rm[at\"]\xfd\r\t\\\tn\t\t";
    let e = chanvault::spool::parse_journal(crash)
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n'), "{e}");
    let e = chanvault::spool::parse_journal(br#"{"a\nb": 1}"#)
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n') && e.contains("a\\nb"), "{e}");
}
