//! Issue 13 §1: a target that can write its share cannot roll restore back
//! to an old backup or forge a newer one, and a clock that jumps does not
//! pin an old state. Two dir targets and a local restic repository, the real
//! binary, stock restic's format.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chanvault::config::TargetConfig;
use chanvault::signing::ManifestKeys;
use chanvault::sink::restic::ResticTarget;
use chanvault::sink::{Delivery, Manifest, Target, dir::DirTarget};
use chanvault::spool::{BackupRecord, Spool, Stored};
use chrono::{Duration, Utc};

use crate::common::{Fixture, bin, text};

fn run(f: &Fixture, argv: &[&str]) -> std::process::Output {
    bin()
        .args(argv)
        .arg("--config")
        .arg(&f.config)
        .output()
        .expect("binary runs")
}

/// `restore fetch` with the fixture's identity into `out`, plus `extra` options.
fn fetch(f: &Fixture, extra: &[&str], out: &Path) -> std::process::Output {
    let (id, out) = (f.identity.display().to_string(), out.display().to_string());
    let mut argv = vec!["restore", "fetch", "--identity", &id, "--out", &out];
    argv.extend_from_slice(extra);
    run(f, &argv)
}

/// pbs and nfs (dir) and repo (restic), three backups of a growing node.
async fn three_backups() -> Fixture {
    let f = Fixture::new().await;
    std::fs::write(f.path().join("restic-password"), "pw-signed-1\n").unwrap();
    f.write_config(
        "[[target]]\nname = \"nfs\"\nkind = \"dir\"\npath = \"targets/nfs\"\n\
         [[target]]\nname = \"repo\"\nkind = \"restic\"\nrepository = \"targets/restic\"\npassword_file = \"restic-password\"\n",
    );
    // A read-only macaroon (with info:read): the node's identity key is signed in.
    f.edit_config(
        &f.sim.offchain_read_macaroon_path().display().to_string(),
        &f.sim.readonly_macaroon_path().display().to_string(),
    );
    let cfg = f.load();
    let Some(TargetConfig::Restic(r)) = cfg.targets.iter().find(|t| t.name() == "repo") else {
        panic!("no restic target");
    };
    chanvault::sink::unblock(&ResticTarget::new(r), ResticTarget::init_blocking)
        .await
        .unwrap();
    for n in 1..=3 {
        f.sim.open_channels(n);
        f.backup_once();
    }
    f
}

fn journal(f: &Fixture) -> chanvault::spool::Journal {
    chanvault::spool::read_journal(&f.path().join("state"))
        .unwrap()
        .unwrap()
}

/// The oldest history pair on a dir target: (sealed file, manifest).
fn oldest_pair(target: &Path) -> (PathBuf, Manifest) {
    let mut jsons: Vec<PathBuf> = std::fs::read_dir(target.join("history"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    jsons.sort();
    let m: Manifest = serde_json::from_slice(&std::fs::read(&jsons[0]).unwrap()).unwrap();
    (jsons[0].with_extension("age"), m)
}

/// What a compromised share does: the oldest backup made current again,
/// dated 2099 (its genuine signature no longer holds); and the same old
/// backup re-signed with a key of the attacker's as sequence 999.
fn attack(target: &Path, scratch: &Path) {
    let (age, mut m) = oldest_pair(target);
    m.created = "2099-01-01T00:00:00Z".parse().unwrap();
    std::fs::copy(&age, target.join("channel.backup.age")).unwrap();
    std::fs::write(
        target.join("channel.backup.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
    std::fs::create_dir_all(scratch).unwrap();
    let theirs = ManifestKeys::load_or_create(scratch).unwrap();
    m.seq = Some(999);
    m.signer = Some(theirs.public());
    let claims = m.claims().unwrap();
    m.signature = Some(theirs.sign(&claims));
    let stem = target.join("history/20990101T000000.000Z-forged");
    std::fs::copy(&age, stem.with_extension("age")).unwrap();
    std::fs::write(
        stem.with_extension("json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_or_re_signed_old_backup_never_becomes_latest() {
    let f = three_backups().await;
    let j = journal(&f);
    let honest = j.last_good().unwrap().clone();
    assert_eq!(honest.seq, j.max_seq());
    let current = DirTarget::new("pbs", &f.target_dir("pbs"))
        .current_manifest()
        .unwrap()
        .unwrap();
    assert_eq!(
        current.node,
        Some(f.sim.identity_pubkey()),
        "the node is signed in"
    );
    let public = ManifestKeys::load(&f.path().join("state"))
        .unwrap()
        .unwrap()
        .public();
    attack(&f.target_dir("pbs"), &f.path().join("attacker"));

    // On the node: verify names the bad target, and only that one.
    let out = run(&f, &["verify"]);
    assert_eq!(out.status.code(), Some(22), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bad: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("signed") && l.contains('✗'))
        .collect();
    assert_eq!(bad.len(), 1, "{stdout}");
    assert!(bad[0].contains("pbs"), "{stdout}");
    assert!(bad[0].contains("not a trusted key"), "{stdout}");

    // A fresh machine with the config and its manifest key: the honest newest.
    std::fs::rename(f.path().join("state"), f.path().join("state.lost")).unwrap();
    f.edit_config(
        "[seal]\n",
        &format!("[seal]\nmanifest_public_keys = [\"{public}\"]\n"),
    );
    let out_file = f.path().join("restored.backup");
    let out = fetch(&f, &[], &out_file);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("target pbs") && stderr.contains("not believed"),
        "{stderr}"
    );
    let sealed = std::fs::read(
        f.path()
            .join("state.lost/backups")
            .join(format!("{}.age", honest.id)),
    )
    .unwrap();
    let want = chanvault::seal::open(
        &chanvault::seal::Identities::from_file(&f.identity).unwrap(),
        &sealed,
    )
    .unwrap();
    assert_eq!(std::fs::read(&out_file).unwrap(), want.expose());

    // pbs alone still holds the honest newest in its history: found by
    // sequence number, past its forged current file.
    let pbs_out = f.path().join("from-pbs.backup");
    let out = fetch(&f, &["--target", "pbs"], &pbs_out);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&pbs_out).unwrap(), want.expose());

    // Without the key in the config, the targets disagree about the signer:
    // an error that says so, never a guess.
    f.edit_config(&format!("manifest_public_keys = [\"{public}\"]\n"), "");
    let none = f.path().join("never-written.backup");
    let out = fetch(&f, &[], &none);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    assert!(
        text(&out).contains("targets disagree about the key"),
        "{}",
        text(&out)
    );
    assert!(!none.exists());
}

fn record(created: chrono::DateTime<Utc>, fp: &str) -> BackupRecord {
    BackupRecord {
        id: String::new(),
        created,
        source: "test".into(),
        channels: 1,
        chan_points: vec![],
        fingerprint: fp.into(),
        blob_sha256: "00".repeat(32),
        sealed_len: 0,
        recipients: vec![],
        suspect: None,
        suspect_channels: vec![],
        seq: 0,
        node: None,
        signed: None,
        cover_for: Vec::new(),
    }
}

#[tokio::test]
async fn a_clock_a_year_ahead_and_back_leaves_the_newest_state_current() {
    let f = Fixture::new().await;
    std::fs::write(f.path().join("restic-password"), "pw-clock-1\n").unwrap();
    f.write_config(
        "[[target]]\nname = \"repo\"\nkind = \"restic\"\nrepository = \"targets/restic\"\npassword_file = \"restic-password\"\nforget_keep_last = 1\n",
    );
    let cfg = f.load();
    let Some(TargetConfig::Restic(r)) = cfg.targets.iter().find(|t| t.name() == "repo") else {
        panic!("no restic target");
    };
    let restic = ResticTarget::new(r);
    chanvault::sink::unblock(&restic, ResticTarget::init_blocking)
        .await
        .unwrap();
    let pbs = DirTarget::new("pbs", &f.target_dir("pbs"));
    let spool = Spool::open(&f.path().join("state"), 10).unwrap();
    let deliver = |rec: BackupRecord, sealed: Vec<u8>| {
        let (pbs, restic) = (pbs.clone(), restic.clone());
        async move {
            let d = Delivery {
                known_seq: rec.seq,
                record: rec,
                sealed: Arc::new(sealed),
                current: true,
            };
            pbs.deliver(&d).await.unwrap();
            restic.deliver(&d).await.unwrap();
        }
    };
    // The clock a year ahead, then set right.
    for (when, fp, bytes) in [
        (Utc::now() + Duration::days(365), "aa", b"ahead".as_slice()),
        (Utc::now(), "bb", b"right".as_slice()),
    ] {
        let Stored::New(rec) = spool.store(record(when, &fp.repeat(32)), bytes).unwrap() else {
            panic!("not stored");
        };
        deliver(*rec, bytes.to_vec()).await;
    }
    let newest = spool.journal().unwrap().last_good().unwrap().clone();
    assert_eq!(newest.seq, 2);
    let current = pbs.current_manifest().unwrap().unwrap();
    assert_eq!(
        current.seq,
        Some(2),
        "the dir target orders by sequence, not by date"
    );
    assert_eq!(
        std::fs::read(f.target_dir("pbs").join("channel.backup.age")).unwrap(),
        b"right"
    );
    let (info, bytes) = chanvault::sink::unblock(&restic, ResticTarget::latest_blocking)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        bytes, b"right",
        "forget_keep_last kept the snapshot just written"
    );
    assert_eq!(info.tag("seq"), Some("2"));
    let snaps = chanvault::sink::unblock(&restic, ResticTarget::snapshots_blocking)
        .await
        .unwrap();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
}
