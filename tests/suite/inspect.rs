//! `chanvault inspect` on the real binary: backups the simulator (an lnd
//! wallet with an aezeed) wrote, delivered to a dir target, opened with the
//! seed alone, with the backup account key, and refused with a wrong one;
//! and every channel type the simulator writes, with and without
//! CloseTxInputs, reported as it wrote them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::{Fixture, bin, text};
use chanvault::chanbackup::ChannelType;
use chanvault::scb::ChanPoint;
use chanvault::sim::ChannelKind;
use chanvault::sink::dir::CURRENT_FILE;
use chanvault::wallet::aezeed::CipherSeed;

fn inspect(file: &Path, extra: &[&std::ffi::OsStr]) -> std::process::Output {
    bin()
        .arg("inspect")
        .arg(file)
        .args(["--network", "regtest"])
        .args(extra)
        .output()
        .unwrap()
}

fn channels(out: &std::process::Output) -> (BTreeSet<ChanPoint>, Vec<serde_json::Value>) {
    assert!(out.status.success(), "{}", text(out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v["channels"].as_array().unwrap().clone();
    let points = list
        .iter()
        .map(|c| c["chan_point"].as_str().unwrap().parse().unwrap())
        .collect();
    (points, list)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_opens_a_delivered_backup_with_the_seed_alone() {
    let f = Fixture::new().await;
    f.sim.open_channels(6);
    f.backup_once();
    let sealed = f.target_dir("pbs").join(CURRENT_FILE);
    let (seed, pass) = (f.sim.aezeed_path(), f.sim.aezeed_passphrase_path());

    // The aezeed and its passphrase, through the age layer.
    let out = inspect(
        &sealed,
        &[
            "--identity".as_ref(),
            f.identity.as_os_str(),
            "--aezeed-file".as_ref(),
            seed.as_os_str(),
            "--passphrase-file".as_ref(),
            pass.as_os_str(),
            "--json".as_ref(),
        ],
    );
    let (points, list) = channels(&out);
    assert_eq!(points, f.sim.channels());
    for c in &list {
        let peer = c["peer"].as_str().unwrap();
        assert_eq!(peer.len(), 66, "{c}");
        assert!(peer.starts_with("02") || peer.starts_with("03"), "{c}");
    }

    // The backup account key as lncli prints it, on lnd's own (plain) file.
    let xpub = f.path().join("backup-key.txt");
    chanvault::fsutil::create_secret_file(
        &xpub,
        format!("{}\n", f.sim.backup_account_xpub()).as_bytes(),
    )
    .unwrap();
    let plain = f.path().join("channel.backup");
    let ids = chanvault::seal::Identities::from_file(&f.identity).unwrap();
    let opened = chanvault::seal::open(&ids, &std::fs::read(&sealed).unwrap()).unwrap();
    std::fs::write(&plain, opened.expose()).unwrap();
    let out = inspect(
        &plain,
        &[
            "--backup-key-file".as_ref(),
            xpub.as_os_str(),
            "--json".as_ref(),
        ],
    );
    assert_eq!(channels(&out).0, f.sim.channels());
    // The table: one line per channel after the header.
    let out = inspect(&plain, &["--backup-key-file".as_ref(), xpub.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("backup key "), "{table}");
    assert_eq!(table.lines().count(), 1 + 6, "{table}");

    // Another wallet's seed: exit 10, naming the key and the file.
    let other = f.path().join("other-seed.txt");
    let words = CipherSeed::generate(1)
        .unwrap()
        .to_mnemonic(b"")
        .unwrap()
        .phrase();
    chanvault::fsutil::create_secret_file(&other, words.as_bytes()).unwrap();
    let out = inspect(&plain, &["--aezeed-file".as_ref(), other.as_os_str()]);
    assert_eq!(out.status.code(), Some(10), "{}", text(&out));
    let err = text(&out);
    assert!(
        err.contains("other-seed.txt") && err.contains("does not open this backup"),
        "{err}"
    );
    // The whole line is known text, a fingerprint and the two paths: no
    // room for a seed word. (Testing word by word cannot work: "another",
    // "open" and "file" are in the word list too.)
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    let fp = stderr
        .split("backup key ")
        .nth(1)
        .and_then(|r| r.get(..8))
        .unwrap_or_default();
    assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "chanvault: error: {}: backup key {fp} (from the aezeed in {}) does not open this \
             backup: it was made by another node (another seed or network), or the file was altered",
            plain.display(),
            other.display()
        )
    );

    // The right seed, a wrong passphrase: one clear line, exit 1.
    let out = inspect(&plain, &["--aezeed-file".as_ref(), seed.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the passphrase does not open this seed"),
        "{}",
        text(&out)
    );

    // The age file without an identity: exit 10, saying what to pass.
    let out = inspect(&sealed, &["--backup-key-file".as_ref(), xpub.as_os_str()]);
    assert_eq!(out.status.code(), Some(10), "{}", text(&out));
    assert!(text(&out).contains("--identity"), "{}", text(&out));

    // A truncated backup: exit 11, never a panic.
    let short = f.path().join("short.backup");
    let bytes = std::fs::read(&plain).unwrap();
    std::fs::write(&short, &bytes[..bytes.len() / 2]).unwrap();
    let out = inspect(&short, &["--backup-key-file".as_ref(), xpub.as_os_str()]);
    assert!(
        matches!(out.status.code(), Some(10) | Some(11)),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reports_every_channel_type_and_close_tx_inputs_as_written() {
    let f = Fixture::new().await;
    // Versions 0 to 7, each without and with CloseTxInputs, chosen rather
    // than drawn so that every case is always there.
    for kind in ChannelKind::all() {
        f.sim.open_channel_of(kind);
    }
    f.backup_once();
    let sealed = f.target_dir("pbs").join(CURRENT_FILE);
    let xpub = f.path().join("backup-key.txt");
    chanvault::fsutil::create_secret_file(
        &xpub,
        format!("{}\n", f.sim.backup_account_xpub()).as_bytes(),
    )
    .unwrap();
    let out = inspect(
        &sealed,
        &[
            "--identity".as_ref(),
            f.identity.as_os_str(),
            "--backup-key-file".as_ref(),
            xpub.as_os_str(),
            "--json".as_ref(),
        ],
    );
    let (_, list) = channels(&out);
    let got: BTreeMap<ChanPoint, (String, bool)> = list
        .iter()
        .map(|c| {
            let cp = c["chan_point"].as_str().unwrap().parse().unwrap();
            let kind = c["channel_type"].as_str().unwrap().to_string();
            (cp, (kind, c["close_tx_inputs"].as_bool().unwrap()))
        })
        .collect();
    assert_eq!(got.len(), list.len(), "no channel twice");
    // What the simulator wrote, named as lnd's version constants are.
    let written = f.sim.channel_kinds();
    let want: BTreeMap<ChanPoint, (String, bool)> = written
        .iter()
        .map(|(cp, k)| {
            let name = ChannelType::from_version(k.version).unwrap().name();
            (*cp, (name.to_string(), k.close_tx_inputs))
        })
        .collect();
    assert_eq!(got, want);
    let kinds: BTreeSet<ChannelKind> = written.values().copied().collect();
    assert_eq!(kinds, ChannelKind::all().into_iter().collect());

    // The table marks exactly the channels written with CloseTxInputs.
    let out = inspect(
        &sealed,
        &[
            "--identity".as_ref(),
            f.identity.as_os_str(),
            "--backup-key-file".as_ref(),
            xpub.as_os_str(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    let marked: BTreeSet<ChanPoint> = table
        .lines()
        .skip(1)
        .filter(|l| l.ends_with("  close-tx-inputs"))
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    let with: BTreeSet<ChanPoint> = written
        .iter()
        .filter(|(_, k)| k.close_tx_inputs)
        .map(|(cp, _)| *cp)
        .collect();
    assert_eq!(marked, with, "{table}");
}
