//! `[lnd] backup_key_file`: the daemon reads each snapshot with the node's
//! backup account key. The right key records the same channel set as LND;
//! another node's key is logged once, not per snapshot, and delivery goes
//! on; a key file others can read is refused at start, naming it.

use std::os::unix::fs::PermissionsExt;

use crate::common::{Fixture, Watch, bin, eventually, text};
use chanvault::scb;
use chanvault::spool::read_journal;

fn backups(f: &Fixture) -> usize {
    read_journal(&f.path().join("state"))
        .ok()
        .flatten()
        .map_or(0, |j| j.backups.len())
}

fn with_key(f: &Fixture, xpub: &str) {
    let file = f.path().join("backup-account.xpub");
    let _ = std::fs::remove_file(&file);
    chanvault::fsutil::create_secret_file(&file, format!("{xpub}\n").as_bytes()).unwrap();
    f.edit_config(
        "reconnect_max_seconds = 1\n",
        "reconnect_max_seconds = 1\nbackup_key_file = \"backup-account.xpub\"\n",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_key_reads_every_snapshot_quietly() {
    let f = Fixture::new().await;
    with_key(&f, &f.sim.backup_account_xpub());
    let watch = Watch::start(&f);
    f.sim.open_channels(3);
    f.wait_current("pbs", "three channels delivered", 20).await;
    let j = read_journal(&f.path().join("state")).unwrap().unwrap();
    let newest = j.newest().unwrap();
    assert_eq!(newest.fingerprint, scb::fingerprint(&f.sim.channels()));
    let log = watch.log();
    assert!(!log.contains("backup key"), "{log}");
    assert!(watch.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_key_is_logged_once_and_nothing_stops() {
    let f = Fixture::new().await;
    let other = Fixture::new().await;
    with_key(&f, &other.sim.backup_account_xpub());
    let watch = Watch::start(&f);
    f.wait_current("pbs", "the baseline is delivered", 20).await;
    for _ in 0..3 {
        let before = backups(&f);
        f.sim.open_channel();
        eventually("the snapshot is stored", 20, || backups(&f) > before).await;
    }
    f.wait_current("pbs", "delivery goes on", 20).await;
    let log = watch.log();
    assert_eq!(
        log.matches("cannot read LND's backup with lnd.backup_key_file")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("does not open this backup"), "{log}");
    assert!(watch.stop().await.success());
}

#[tokio::test]
async fn a_key_file_others_can_read_is_refused_at_start() {
    let f = Fixture::new().await;
    with_key(&f, &f.sim.backup_account_xpub());
    let file = f.path().join("backup-account.xpub");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = bin()
        .args(["backup", "--once", "--config"])
        .arg(&f.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = text(&out);
    assert!(
        err.contains("lnd.backup_key_file")
            && err.contains("backup-account.xpub")
            && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!err.contains("tpub"), "the key itself in {err}");
}

fn verify(f: &Fixture) -> (Option<i32>, Vec<serde_json::Value>, String) {
    let out = bin()
        .args(["verify", "--json", "--config"])
        .arg(&f.config)
        .arg("--identity")
        .arg(&f.identity)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let rows = report["checks"].as_array().cloned().unwrap_or_default();
    (out.status.code(), rows, text(&out))
}

fn row<'a>(rows: &'a [serde_json::Value], target: &str, check: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["target"] == target && r["check"] == check)
        .unwrap_or_else(|| panic!("no {target}/{check} row in {rows:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reads_lnds_layer_with_the_nodes_key() {
    let f = Fixture::new().await;
    f.sim.open_channels(3);
    f.backup_once();

    with_key(&f, &f.sim.backup_account_xpub());
    let (code, rows, all) = verify(&f);
    assert_eq!(code, Some(0), "{all}");
    for check in ["scb-opens", "scb-parses", "covers-spool"] {
        assert_eq!(row(&rows, "pbs", check)["ok"], true, "{check}: {all}");
    }
    assert!(
        row(&rows, "pbs", "covers-spool")["detail"]
            .as_str()
            .unwrap()
            .contains("3 channel(s)")
    );

    // The node is gone: the drill still passes, on the seed's key and the targets.
    f.sim.stop().await;
    let (code, rows, all) = verify(&f);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(
        row(&rows, "lnd", "lnd-reachable")["ok"],
        serde_json::Value::Null,
        "{all}"
    );
    assert_eq!(row(&rows, "pbs", "scb-opens")["ok"], true, "{all}");
    // restore fetch shows what is inside without the node, too.
    let out = bin()
        .args(["restore", "fetch", "--config"])
        .arg(&f.config)
        .arg("--identity")
        .arg(&f.identity)
        .arg("--out")
        .arg(f.path().join("fetched.backup"))
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("reads 3 channel(s) in it (no LND needed)"),
        "{shown}"
    );
    for cp in f.sim.channels() {
        assert!(shown.contains(&cp.to_string()), "{cp} missing: {shown}");
    }
    // Without the key it cannot say: LND unreachable fails, as before.
    f.edit_config("backup_key_file = \"backup-account.xpub\"\n", "");
    let (code, _, all) = verify(&f);
    assert_eq!(code, Some(27), "{all}");
    f.sim.restart().await.unwrap();
    with_key(&f, &f.sim.backup_account_xpub());

    // Another node's key: the drill fails with its own code, naming the target.
    let other = Fixture::new().await;
    f.edit_config("backup_key_file = \"backup-account.xpub\"\n", "");
    with_key(&f, &other.sim.backup_account_xpub());
    let (code, rows, all) = verify(&f);
    assert_eq!(code, Some(29), "{all}");
    let opens = row(&rows, "pbs", "scb-opens");
    assert_eq!(opens["ok"], false, "{all}");
    assert!(
        opens["detail"]
            .as_str()
            .unwrap()
            .contains("does not open this backup"),
        "{all}"
    );
}
