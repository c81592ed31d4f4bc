//! The watch pipeline end to end against the LND simulator: real gRPC, TLS,
//! macaroons, age and the filesystem.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{Fixture, eventually, names};
use chanvault::lnd::{LndClient, LndSettings};
use chanvault::pipeline::{Outcome, Pipeline, PipelineError};
use chanvault::scb;
use chanvault::seal::{self, Identities, Recipients};
use chanvault::sink::dir::{CURRENT_FILE, DirTarget};
use chanvault::spool::Spool;
use chanvault::watch::Agent;
use tokio::sync::watch;

async fn pipeline(f: &Fixture) -> (Pipeline, LndClient) {
    let cfg = f.load();
    let spool = Spool::open(&cfg.state_dir, cfg.backup.keep).unwrap();
    let r = Recipients::from_config(&cfg.seal.recipients, &[]).unwrap();
    let lnd = LndClient::connect(&LndSettings::from(&cfg.lnd))
        .await
        .unwrap();
    (Pipeline::new(Arc::new(spool), Arc::new(r)), lnd)
}

fn stored(o: Outcome) -> chanvault::spool::BackupRecord {
    match o {
        Outcome::Stored(r) => *r,
        o => panic!("expected a stored backup, got {o:?}"),
    }
}

#[tokio::test]
async fn verify_then_dedupe_then_seal_then_spool() {
    let f = Fixture::new().await;
    let (p, lnd) = pipeline(&f).await;
    f.sim.open_channels(3);
    let verify_before = f.sim.calls("VerifyChanBackup");
    let snap = lnd.export_all().await.unwrap();
    let rec = stored(p.process(&lnd, snap.clone(), "test").await.unwrap());
    assert_eq!(
        f.sim.calls("VerifyChanBackup"),
        verify_before + 1,
        "verified before storing"
    );
    assert_eq!(rec.channels, 3);
    assert_eq!(rec.fingerprint, scb::fingerprint(&f.sim.channels()));
    assert_eq!(rec.blob_sha256, scb::sha256_hex(&snap.multi));

    // lnd re-encrypts every export: new bytes, same channels -> duplicate.
    let again = lnd.export_all().await.unwrap();
    assert_ne!(again.multi, snap.multi);
    assert_eq!(
        p.process(&lnd, again, "test").await.unwrap(),
        Outcome::Duplicate {
            fingerprint: rec.fingerprint.clone()
        }
    );

    // What the spool holds opens with the identity to lnd's exact bytes.
    let sealed = p.spool().read(&rec.id).unwrap();
    let ids = Identities::from_file(&f.identity).unwrap();
    assert_eq!(seal::open(&ids, &sealed).unwrap().expose(), &snap.multi[..]);
    assert_eq!(p.spool().journal().unwrap().backups.len(), 1);
    // Only the stored backup's file: nothing of the duplicate, not a temp.
    assert_eq!(
        names(&p.spool().dir().join("backups")),
        vec![format!("{}.age", rec.id)]
    );
}

/// lnd sends two or more snapshots per channel event; the ones that list
/// the newest stored backup's channels are dropped without asking LND to
/// verify them, once the journal confirms the listing is the newest.
#[tokio::test]
async fn a_stream_duplicate_on_lnds_listing_is_not_verified_again() {
    let f = Fixture::new().await;
    let (p, lnd) = pipeline(&f).await;
    f.sim.open_channels(2);
    let older = lnd.export_all().await.unwrap();
    let rec = stored(p.process(&lnd, older.clone(), "stream").await.unwrap());
    let verifies = || f.sim.calls("VerifyChanBackup");
    let before = verifies();
    let dup = Outcome::Duplicate {
        fingerprint: rec.fingerprint.clone(),
    };
    let again = lnd.export_all().await.unwrap();
    assert_eq!(p.process(&lnd, again, "stream").await.unwrap(), dup);
    assert_eq!(
        verifies(),
        before,
        "a duplicate on LND's listing is not verified"
    );
    // A connect, the schedule and `backup --once` are the proof that LND's
    // backup still reads: verified whatever they list.
    let again = lnd.export_all().await.unwrap();
    assert_eq!(p.process(&lnd, again, "schedule").await.unwrap(), dup);
    assert_eq!(verifies(), before + 1);

    // Another process stores a newer set: the pipeline's memory of the
    // newest is a hint only, and the old set is verified and judged again.
    f.sim.open_channels(1);
    let cfg = f.load();
    let other = Pipeline::new(
        Arc::new(Spool::open(&cfg.state_dir, cfg.backup.keep).unwrap()),
        Arc::new(Recipients::from_config(&cfg.seal.recipients, &[]).unwrap()),
    );
    let newer = stored(
        other
            .process(&lnd, lnd.export_all().await.unwrap(), "once")
            .await
            .unwrap(),
    );
    assert_eq!(verifies(), before + 2);
    let judged = stored(p.process(&lnd, older, "stream").await.unwrap());
    assert_eq!(
        verifies(),
        before + 3,
        "verified: the journal's newest is another set"
    );
    assert!(
        judged.is_suspect(),
        "it lacks a channel LND has open: {judged:?}"
    );
    assert_eq!(
        p.spool().journal().unwrap().last_good().unwrap().id,
        newer.id
    );
}

#[tokio::test]
async fn a_snapshot_lnd_cannot_verify_is_not_stored() {
    let f = Fixture::new().await;
    let (p, lnd) = pipeline(&f).await;
    f.sim.open_channels(2);
    let mut snap = lnd.export_all().await.unwrap();
    let mut multi = snap.multi.to_vec();
    let last = multi.len() - 1;
    multi[last] ^= 0x01;
    snap.multi = multi.into();
    let err = p.process(&lnd, snap, "test").await.unwrap_err();
    assert!(matches!(err, PipelineError::Rejected(_)), "{err:?}");
    assert!(
        err.to_string().contains("invalid multi channel backup"),
        "{err}"
    );
    assert!(p.spool().journal().unwrap().backups.is_empty());
    // The sealed file written while LND verified is gone too, temp name and all.
    assert_eq!(
        names(&p.spool().dir().join("backups")),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn older_lnd_without_verified_chan_points_works() {
    let f = Fixture::with_options(|o| o.verify_returns_chan_points = false).await;
    let (p, lnd) = pipeline(&f).await;
    f.sim.open_channels(2);
    let snap = lnd.export_all().await.unwrap();
    let rec = stored(p.process(&lnd, snap, "test").await.unwrap());
    assert_eq!(rec.channels, 2);
    assert_eq!(rec.fingerprint, scb::fingerprint(&f.sim.channels()));
}

#[tokio::test]
async fn shrink_guard_flags_lost_channels_but_accepts_real_closes() {
    let f = Fixture::new().await;
    let (p, lnd) = pipeline(&f).await;
    let cps = f.sim.open_channels(3);
    let good = stored(
        p.process(&lnd, lnd.export_all().await.unwrap(), "t")
            .await
            .unwrap(),
    );
    assert!(good.suspect.is_none());

    // A real cooperative close: LND lists it in ClosedChannels -> not suspect.
    assert!(f.sim.close_channel(&cps[0]));
    let closed = stored(
        p.process(&lnd, lnd.export_all().await.unwrap(), "t")
            .await
            .unwrap(),
    );
    assert!(closed.suspect.is_none(), "{:?}", closed.suspect);
    assert_eq!(
        p.spool().journal().unwrap().last_good.as_deref(),
        Some(closed.id.as_str())
    );

    // lnd#4377: channel.db lost, empty backup, no close records -> suspect.
    f.sim.lose_channel_db();
    let empty = stored(
        p.process(&lnd, lnd.export_all().await.unwrap(), "t")
            .await
            .unwrap(),
    );
    let reason = empty.suspect.clone().expect("flagged suspect");
    assert!(reason.contains("empty snapshot"), "{reason}");
    let j = p.spool().journal().unwrap();
    assert_eq!(
        j.last_good.as_deref(),
        Some(closed.id.as_str()),
        "suspect never becomes last good"
    );
    assert_eq!(j.newest().unwrap().id, empty.id);

    // It reaches a target only as history, never as the current backup.
    let pending = j.pending_for("pbs");
    assert!(
        pending
            .iter()
            .any(|x| x.record.id == closed.id && x.current)
    );
    assert!(
        pending
            .iter()
            .any(|x| x.record.id == empty.id && !x.current)
    );
}

#[tokio::test]
async fn watch_delivers_reconnects_and_catches_up_on_missed_state() {
    let f = Fixture::new().await;
    let agent = Agent::new(f.load()).unwrap();
    let spool = agent.spool().clone();
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(agent.watch(rx));
    let target = DirTarget::new("pbs", &f.target_dir("pbs"));
    let state = f.path().join("state");
    let on_target = |fp: String| {
        let (target, state) = (target.clone(), state.clone());
        move || matches!(target.current_manifest(), Ok(Some(m)) if m.fingerprint == crate::common::published(&state, &fp))
    };

    // Baseline export on connect, then the stream.
    eventually("baseline backup", 10, || {
        spool
            .journal()
            .map(|j| j.backups.len() == 1)
            .unwrap_or(false)
    })
    .await;
    f.sim.open_channels(2);
    eventually(
        "2 channels delivered",
        10,
        on_target(scb::fingerprint(&f.sim.channels())),
    )
    .await;

    // LND goes away; channels change while we are disconnected.
    f.sim.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.sim.open_channels(1);
    f.sim.restart().await.unwrap();
    // Nothing is streamed about the missed change: only the baseline export on
    // reconnect can bring it.
    let took = f
        .wait_current("pbs", "missed state delivered after reconnect", 20)
        .await;
    println!(
        "LND restarted: missed state on pbs {} ms later",
        took.as_millis()
    );
    assert_eq!(scb::fingerprint(&f.sim.channels()).len(), 64);

    // The stream dropping (not the server) is survived too.
    f.sim.drop_streams();
    tokio::time::sleep(Duration::from_millis(100)).await;
    f.sim.open_channels(1);
    eventually(
        "state after stream drop",
        20,
        on_target(scb::fingerprint(&f.sim.channels())),
    )
    .await;

    // LND killed (connections cut, no clean stream end): reconnect as well.
    f.sim.kill().await;
    f.sim.open_channels(1);
    f.sim.restart().await.unwrap();
    let took = f
        .wait_current("pbs", "state after LND was killed", 20)
        .await;
    println!(
        "LND killed and restarted: state on pbs {} ms later",
        took.as_millis()
    );

    // The delivered file is what LND has now, and opens with the identity.
    let sealed = std::fs::read(f.target_dir("pbs").join(CURRENT_FILE)).unwrap();
    let plain = seal::open(&Identities::from_file(&f.identity).unwrap(), &sealed).unwrap();
    let got: BTreeSet<_> = f.sim.decode_multi(plain.expose()).unwrap();
    assert_eq!(got, f.sim.channels());

    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("watch stops on shutdown")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_dead_target_does_not_delay_another_and_catches_up() {
    let f = Fixture::new().await;
    // "nfs" points below a missing mount point: every delivery fails.
    let missing = f.path().join("mnt/share");
    f.write_config(&format!(
        "[[target]]\nname = \"nfs\"\nkind = \"dir\"\npath = \"{}\"\n",
        missing.join("chanvault").display()
    ));
    let agent = Agent::new(f.load()).unwrap();
    let spool = agent.spool().clone();
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(agent.watch(rx));
    f.sim.open_channels(2);
    let fp = scb::fingerprint(&f.sim.channels());
    let pbs = DirTarget::new("pbs", &f.target_dir("pbs"));
    eventually(
        "pbs has the state",
        10,
        || matches!(pbs.current_manifest(), Ok(Some(m)) if m.fingerprint == crate::common::published(&f.path().join("state"), &fp)),
    )
    .await;
    eventually("nfs failure recorded", 10, || {
        spool
            .journal()
            .map(|j| j.targets.get("nfs").is_some_and(|t| t.failures > 0))
            .unwrap_or(false)
    })
    .await;
    let st = spool.journal().unwrap();
    assert!(
        st.targets["nfs"]
            .last_error
            .as_deref()
            .unwrap()
            .contains("is the share mounted")
    );
    assert!(!st.pending_for("nfs").is_empty());

    // The share comes back: the newest good state arrives without a restart.
    std::fs::create_dir_all(&missing).unwrap();
    let nfs = DirTarget::new("nfs", &missing.join("chanvault"));
    eventually(
        "nfs catches up",
        15,
        || matches!(nfs.current_manifest(), Ok(Some(m)) if m.fingerprint == crate::common::published(&f.path().join("state"), &fp)),
    )
    .await;
    tx.send(true).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn pending_deliveries_resume_after_a_restart() {
    let f = Fixture::new().await;
    // First run: store without delivering (backup --once with the target's parent missing).
    let missing = f.path().join("gone");
    f.write_config(&format!(
        "[[target]]\nname = \"late\"\nkind = \"dir\"\npath = \"{}\"\n",
        missing.join("x").display()
    ));
    f.sim.open_channels(2);
    let report = Agent::new(f.load()).unwrap().backup_once().await.unwrap();
    assert!(matches!(report.outcome, Outcome::Stored(_)));
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].0, "late");

    // Second process: watch picks the pending delivery up from the journal.
    std::fs::create_dir_all(&missing).unwrap();
    let agent = Agent::new(f.load()).unwrap();
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(agent.watch(rx));
    let late = DirTarget::new("late", &missing.join("x"));
    let fp = scb::fingerprint(&f.sim.channels());
    eventually(
        "resumed delivery",
        10,
        || matches!(late.current_manifest(), Ok(Some(m)) if m.fingerprint == crate::common::published(&f.path().join("state"), &fp)),
    )
    .await;
    tx.send(true).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_cron_schedule_exports_even_when_the_stream_is_silent() {
    let f = Fixture::new().await;
    f.edit_config(
        "schedule = \"0 0 0 1 1 * 2099\"",
        "schedule = \"* * * * * *\"",
    );
    let agent = Agent::new(f.load()).unwrap();
    let spool = agent.spool().clone();
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(agent.watch(rx));
    eventually("baseline", 10, || {
        spool
            .journal()
            .map(|j| j.backups.len() == 1)
            .unwrap_or(false)
    })
    .await;
    let before = f.sim.calls("ExportAllChannelBackups");
    eventually("two scheduled exports", 10, || {
        f.sim.calls("ExportAllChannelBackups") >= before + 2
    })
    .await;
    // Unchanged state: the scheduled exports were deduplicated, nothing new stored.
    assert_eq!(spool.journal().unwrap().backups.len(), 1);
    tx.send(true).unwrap();
    task.await.unwrap().unwrap();
}

/// GET a path from the metrics endpoint with a bare HTTP/1.1 request.
fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

// Multi-threaded: the polling closures block on plain TCP while the
// metrics server answers on the other worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_reflect_the_pipeline() {
    let f = Fixture::new().await;
    let missing = f.path().join("unmounted/share");
    f.write_config(&format!(
        "[[target]]\nname = \"nfs\"\nkind = \"dir\"\npath = \"{}\"\n",
        missing.display()
    ));
    let mut agent = Agent::new(f.load()).unwrap();
    let addr = agent.bind_metrics().unwrap().expect("metrics enabled");
    assert!(addr.ip().is_loopback());
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(agent.watch(rx));
    eventually("connected", 10, || http_get(addr, "/healthz").0 == 200).await;
    f.sim.open_channels(2);
    let pbs = DirTarget::new("pbs", &f.target_dir("pbs"));
    let fp = scb::fingerprint(&f.sim.channels());
    eventually(
        "pbs has the state",
        10,
        || matches!(pbs.current_manifest(), Ok(Some(m)) if m.fingerprint == crate::common::published(&f.path().join("state"), &fp)),
    )
    .await;
    let get = |path: &'static str| tokio::task::spawn_blocking(move || http_get(addr, path));
    let scrape = || async {
        let (status, body) = get("/metrics").await.unwrap();
        assert_eq!(status, 200);
        body
    };
    let want = [
        "chanvault_lnd_connected 1",
        "chanvault_backup_last_good_channels 2",
        "chanvault_backup_newest_suspect 0",
        "chanvault_target_up_to_date{target=\"pbs\"} 1",
        "chanvault_target_up_to_date{target=\"nfs\"} 0",
        "chanvault_target_pending{target=\"nfs\"} 1",
        "chanvault_target_pending{target=\"pbs\"} 0",
        "chanvault_snapshots_total{outcome=\"stored\"}",
        // An unmounted share: nothing to write to.
        "chanvault_target_delivery_failures_total{target=\"nfs\",reason=\"unreachable\"}",
    ];
    let mut text = scrape().await;
    for _ in 0..100 {
        if want.iter().all(|l| text.contains(l)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = scrape().await;
    }
    for line in want {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    // lnd sends a snapshot on pending-open and on open: the second is a
    // duplicate, or superseded if it arrived while the first was processed.
    assert!(
        ["duplicate", "superseded"]
            .iter()
            .any(|o| text.contains(&format!("chanvault_snapshots_total{{outcome=\"{o}\"}}"))),
        "{text}"
    );
    assert_eq!(get("/healthz").await.unwrap().0, 200);
    assert_eq!(get("/nope").await.unwrap().0, 404);

    // Results other processes leave in state_dir: never verified yet -> 0;
    // after a verify and two escrow operations, their values.
    assert!(
        text.contains("chanvault_last_verify_timestamp_seconds 0"),
        "{text}"
    );
    let state = f.path().join("state");
    let result = chanvault::state_dir::VerifyResult {
        time: 1_700_000_000,
        success: true,
        failed_checks: 0,
    };
    std::fs::write(
        state.join(chanvault::state_dir::VERIFY_RESULT_FILE),
        serde_json::to_vec(&result).unwrap(),
    )
    .unwrap();
    let log = chanvault::escrow::audit::AuditLog::new(&state);
    for outcome in ["ok", "error: sealed"] {
        log.append(&chanvault::escrow::audit::Event {
            accessor: "acc",
            op: "put",
            path: "secret/data/chanvault/seed",
            version: None,
            outcome,
        })
        .unwrap();
    }
    let text = scrape().await;
    for line in [
        "chanvault_last_verify_success 1",
        "chanvault_last_verify_timestamp_seconds 1700000000",
        "chanvault_escrow_operations{operation=\"put\",outcome=\"ok\"} 1",
        "chanvault_escrow_operations{operation=\"put\",outcome=\"error: sealed\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    // Every name the alerts and dashboard may use is really exported.
    for name in chanvault::metrics::METRIC_NAMES {
        assert!(text.contains(name), "{name} not exported:\n{text}");
    }
    // The latency histograms counted what happened: stores, deliveries, RPCs.
    let count = |series: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(series));
        let value = line.and_then(|l| l.rsplit(' ').next());
        value.and_then(|v| v.parse().ok()).unwrap_or(0.0)
    };
    assert!(
        count("chanvault_snapshot_to_spool_seconds_count ") >= 1.0,
        "{text}"
    );
    assert!(
        count("chanvault_delivery_seconds_count{target=\"pbs\"}") >= 1.0,
        "{text}"
    );
    let rpc = "chanvault_lnd_rpc_seconds_count{rpc=\"VerifyChanBackup\"}";
    assert!(count(rpc) >= 1.0, "{text}");

    f.sim.stop().await;
    eventually("healthz turns 503 when LND is gone", 10, || {
        http_get(addr, "/healthz").0 == 503
    })
    .await;
    assert!(scrape().await.contains("chanvault_lnd_connected 0"));
    tx.send(true).unwrap();
    task.await.unwrap().unwrap();
}

/// A small tmpfs mounted over a directory; unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// `None` when not root (mounting needs it); CI runs as root.
    fn mount(dir: &std::path::Path, size: &str) -> Option<Self> {
        let uid = std::process::Command::new("id").arg("-u").output().unwrap();
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("SKIPPED: mounting a tmpfs needs root (CI runs as root)");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs failed as root");
        Some(Self(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test]
async fn a_full_spool_disk_loses_nothing_and_recovers_without_a_restart() {
    let f = Fixture::new().await;
    let Some(_fs) = Tmpfs::mount(&f.path().join("state"), "512k") else {
        return;
    };
    let agent = Agent::new(f.load()).unwrap();
    let spool = agent.spool().clone();
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(agent.watch(rx));
    let pbs = DirTarget::new("pbs", &f.target_dir("pbs"));
    eventually("baseline delivered", 10, || {
        matches!(pbs.current_manifest(), Ok(Some(_)))
    })
    .await;
    let before = spool.journal().unwrap();

    // Fill the disk, then change the channel set: storing must fail cleanly.
    let filler = f.path().join("state/filler");
    let _ = std::fs::write(&filler, vec![0u8; 1024 * 1024]);
    f.sim.open_channels(2);
    eventually("store attempts fail and are retried", 10, || {
        f.sim.calls("ExportAllChannelBackups") >= 3
    })
    .await;
    let during = spool.journal().unwrap();
    assert_eq!(during, before, "nothing half-written reached the journal");
    let names: Vec<String> = std::fs::read_dir(f.path().join("state/backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        before.backups.len(),
        "no partial or orphan files: {names:?}"
    );
    for b in &before.backups {
        spool.read(&b.id).unwrap();
    }

    // Space comes back: the new state is stored and delivered, no restart.
    std::fs::remove_file(&filler).unwrap();
    let fp = scb::fingerprint(&f.sim.channels());
    eventually(
        "state delivered after space came back",
        15,
        || matches!(pbs.current_manifest(), Ok(Some(m)) if m.fingerprint == crate::common::published(&f.path().join("state"), &fp)),
    )
    .await;
    tx.send(true).unwrap();
    task.await.unwrap().unwrap();
}

/// Sum of the `chanvault_snapshots_total` samples with this outcome.
fn snapshots(m: &chanvault::metrics::Metrics, outcome: &str) -> u64 {
    let label = format!("outcome=\"{outcome}\"");
    m.render()
        .lines()
        .filter(|l| l.starts_with("chanvault_snapshots_total") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_events_is_coalesced_to_the_newest_state() {
    let f = Fixture::new().await;
    f.sim.open_channels(20);
    let agent = Agent::new(f.load()).unwrap();
    let metrics = agent.metrics().clone();
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(agent.watch(rx));
    eventually("baseline stored", 10, || snapshots(&metrics, "stored") == 1).await;
    let pbs_uploads = |m: &chanvault::metrics::Metrics| -> u64 {
        m.render()
            .lines()
            .filter(|l| l.starts_with("chanvault_target_delivery_attempts_total{target=\"pbs\"}"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    eventually("baseline delivered", 10, || pbs_uploads(&metrics) == 1).await;
    let burst_start = std::time::Instant::now();

    // 100 opens and 100 closes back to back: 400 stream snapshots (lnd sends
    // two per open and two per close), far faster than each can be verified,
    // sealed and fsynced.
    for _ in 0..100 {
        let cp = f.sim.open_channel();
        let old = f.sim.channels().into_iter().find(|c| *c != cp).unwrap();
        assert!(f.sim.close_channel(&old));
    }
    let burst = burst_start.elapsed();
    f.wait_current("pbs", "the final state on pbs", 30).await;
    // delivery.min_interval_ms (500 by default): one upload as the burst
    // starts, then at most one per interval, then the final state.
    let uploads = pbs_uploads(&metrics) - 1;
    let bound = 2 + burst.as_millis() as u64 / 500;
    println!(
        "burst of {} ms: {uploads} uploads to pbs (bound {bound})",
        burst.as_millis()
    );
    assert!(uploads <= bound, "{uploads} uploads > {bound}");
    // Every snapshot LND sent is accounted for exactly once: processed
    // (stored or duplicate) or superseded by a newer one while waiting.
    eventually("all 400 snapshots accounted for", 10, || {
        snapshots(&metrics, "stored")
            + snapshots(&metrics, "duplicate")
            + snapshots(&metrics, "superseded")
            == 1 + 400
    })
    .await;
    let (stored, superseded) = (
        snapshots(&metrics, "stored"),
        snapshots(&metrics, "superseded"),
    );
    println!("burst of 400 snapshots: {stored} stored (incl. baseline), {superseded} superseded");
    assert!(superseded > 0, "older snapshots are dropped, not queued");
    assert!(stored < 200, "the burst is coalesced: {stored} stored");
    assert_eq!(snapshots(&metrics, "error"), 0);

    // Churn bursts (one snapshot per event, as fast as the simulator can),
    // then ordinary events: the stream is still followed afterwards.
    for _ in 0..3 {
        let sim = f.sim.clone();
        tokio::task::spawn_blocking(move || sim.churn(500))
            .await
            .unwrap();
    }
    for round in 0..3 {
        let stored_before = snapshots(&metrics, "stored");
        f.sim.open_channels(1);
        f.wait_current("pbs", &format!("event {round} after the bursts"), 20)
            .await;
        assert!(snapshots(&metrics, "stored") > stored_before);
    }
    tx.send(true).unwrap();
    task.await.unwrap().unwrap();
}
