//! `privacy = "padded"` on a restic target, against stock restic and age:
//! the padding leaves the stock restore path alone, two channel counts cost
//! the same upload, and a cover upload is a signed backup that restore
//! takes as the newest. Nothing here times anything: covers are waited for.

use std::path::Path;

use crate::common::{Watch, bin, eventually, text};
use crate::restic_target::{Setup, need, restic};
use chanvault::sink::restic::ResticTarget;

/// Size and name of every file under `dir`.
fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        if m.is_dir() {
            out.extend(files(&e.path()));
        } else {
            out.push((e.path().display().to_string(), m.len()));
        }
    }
    out
}

/// The files the repository gained since `before`, sorted by size: what an
/// observer of the server sees one backup upload.
fn gained(repo: &Path, before: &[(String, u64)]) -> Vec<u64> {
    let mut sizes: Vec<u64> = files(repo)
        .into_iter()
        .filter(|f| !before.iter().any(|b| b.0 == f.0))
        .filter(|f| !f.0.contains("/locks/"))
        .map(|f| f.1)
        .collect();
    sizes.sort_unstable();
    sizes
}

async fn padded_setup(name: &str, keys: &str) -> (Setup, std::path::PathBuf) {
    let s = Setup::new().await;
    let repo = s.f.path().join("repos").join(name);
    s.configure(
        &repo.display().to_string(),
        &format!("privacy = \"padded\"\n{keys}"),
    );
    chanvault::sink::unblock(&s.target(), ResticTarget::init_blocking)
        .await
        .unwrap();
    (s, repo)
}

#[tokio::test]
async fn padded_snapshots_restore_with_stock_tools_and_hide_the_channel_count() {
    let (s, repo) = padded_setup("padded", "").await;
    let mut uploads = vec![];
    for opened in [2, 60] {
        s.f.sim.open_channels(opened);
        let before = files(&repo);
        assert!(s.once().await.is_empty());
        uploads.push((s.last_good().0.channels, gained(&repo, &before)));
    }
    // Stock restic restores the .age file byte for byte, stock age opens it.
    s.stock_tools_agree(repo.to_str().unwrap(), &[], &[]);
    let (small, large) = (&uploads[0], &uploads[1]);
    assert!(large.0 > 20 * small.0, "{uploads:?}");
    let total = |u: &Vec<u64>| u.iter().sum::<u64>();
    // The data pack (the biggest file) is the bucket plus restic's framing,
    // the same size for both; the small tree, index and snapshot files
    // differ by a few digits at most.
    let (a, b) = (small.1.last().unwrap(), large.1.last().unwrap());
    assert_eq!(a, b, "data packs differ: {uploads:?}");
    assert!(*a >= chanvault::privacy::PAD_FLOOR, "{uploads:?}");
    assert!(
        total(&small.1).abs_diff(total(&large.1)) <= 64,
        "totals differ: {uploads:?}"
    );
    assert_eq!(small.1.len(), large.1.len(), "{uploads:?}");
    eprintln!(
        "upload of {} channels: {} bytes {:?}; of {} channels: {} bytes {:?}",
        small.0,
        total(&small.1),
        small.1,
        large.0,
        total(&large.1),
        large.1
    );
    // The padding is a file of its own next to the backup.
    let dest = s.f.path().join("restored-padding");
    restic(
        repo.to_str().unwrap(),
        &s.password_file,
        &["restore", "latest", "--target", dest.to_str().unwrap()],
        &[],
    );
    let pad = std::fs::metadata(dest.join("chanvault/padding"))
        .unwrap()
        .len();
    let age = std::fs::metadata(dest.join("chanvault/channel.backup.age"))
        .unwrap()
        .len();
    let json = std::fs::metadata(dest.join("chanvault/channel.backup.json"))
        .unwrap()
        .len();
    assert_eq!(pad + age + json, chanvault::privacy::bucket(age + json));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cover_upload_is_the_newest_signed_backup_and_plain_targets_get_none() {
    need("age");
    let (s, repo) = padded_setup(
        "cover",
        "privacy_cover_mean_hours = 0.0003\nprivacy_jitter_seconds = 0\n",
    )
    .await;
    s.f.sim.open_channels(3);
    let watch = Watch::start(&s.f);
    watch
        .wait_log("a cover stored", |l| l.contains("stored a cover upload"))
        .await;
    let cfg = s.f.load();
    let spool = chanvault::spool::Spool::open(&cfg.state_dir, cfg.backup.keep).unwrap();
    let cover_delivered = || {
        let j = spool.journal().unwrap();
        let good = j.last_good().unwrap();
        good.source == "cover"
            && j.targets
                .get("offsite")
                .is_some_and(|t| t.current.as_deref() == Some(good.id.as_str()))
    };
    eventually("the cover reaches the padded target", 60, cover_delivered).await;
    let log = watch.log();
    assert!(watch.stop().await.success(), "{log}");

    let j = spool.journal().unwrap();
    let cover = j.last_good().unwrap().clone();
    assert_eq!(cover.cover_for, ["offsite"]);
    assert_eq!(cover.seq, j.max_seq());
    assert!(cover.signed.is_some());
    // The plain dir target kept the real backup: no extra upload.
    let real = j.due_for("pbs").unwrap();
    assert!(real.source != "cover" && real.seq < cover.seq, "{real:?}");
    assert!(j.pending_for("pbs").is_empty());
    let pbs: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.f.target_dir("pbs").join("channel.backup.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(pbs["id"], real.id.as_str());

    // Stock restic's latest is the cover; stock age opens it.
    let dest = s.f.path().join("restored-cover");
    restic(
        repo.to_str().unwrap(),
        &s.password_file,
        &["restore", "latest", "--target", dest.to_str().unwrap()],
        &[],
    );
    let restored = dest.join("chanvault/channel.backup.age");
    assert_eq!(
        std::fs::read(&restored).unwrap(),
        spool.read(&cover.id).unwrap()
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("chanvault/channel.backup.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["seq"], cover.seq);
    let opened = std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&s.f.identity)
        .arg(&restored)
        .output()
        .unwrap();
    assert!(opened.status.success(), "{}", text(&opened));
    assert_eq!(
        chanvault::scb::sha256_hex(&opened.stdout),
        cover.blob_sha256
    );
    // chanvault's restore takes it as the newest by its signed sequence number.
    let out_file = s.f.path().join("restored.backup");
    let out = bin()
        .args(["restore", "fetch", "--target", "offsite", "--identity"])
        .arg(&s.f.identity)
        .arg("--out")
        .arg(&out_file)
        .arg("--config")
        .arg(&s.f.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let restored = std::fs::read(&out_file).unwrap();
    assert_eq!(chanvault::scb::sha256_hex(&restored), cover.blob_sha256);
    assert_eq!(s.f.sim.decode_multi(&restored).unwrap().len(), 3);
}
