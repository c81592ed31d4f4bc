//! Targets that hang and targets written by two processes (issue 13 §2):
//! a dir target whose lock is held forever costs one thread however long it
//! hangs, and holds up no other target; `watch` and `backup --once` writing
//! one dir target never leave a current file that disagrees with its
//! manifest; a start never sweeps another process's fresh temp file.

use std::path::Path;
use std::time::Duration;

use crate::common::{Fixture, Watch, bin, eventually, text};
use chanvault::scb::sha256_hex;
use chanvault::seal::Identities;
use chanvault::sink::Manifest;
use chanvault::sink::dir::{CURRENT_FILE, CURRENT_MANIFEST, HISTORY_DIR, LOCK_FILE};
use chanvault::spool::read_journal;

/// The number of threads of `pid`, and how many of them are named `name`.
fn threads(pid: u32, name: &str) -> (usize, usize) {
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|rd| rd.filter_map(Result::ok).collect())
        .unwrap_or_default();
    let named = tasks
        .iter()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .count();
    (tasks.len(), named)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_dir_target_holds_one_thread_and_no_other_target() {
    let f = Fixture::new().await;
    f.write_config("[[target]]\nname = \"nfs\"\nkind = \"dir\"\npath = \"targets/nfs\"\n");
    f.edit_config(
        "retry_max_seconds = 1\n",
        "retry_max_seconds = 1\ntimeout_seconds = 1\nmin_interval_ms = 0\n",
    );
    // Another process holds the target's lock and never lets go: every
    // delivery to nfs blocks in flock, as on a share that hangs.
    let nfs = f.target_dir("nfs");
    std::fs::create_dir_all(&nfs).unwrap();
    let held = std::fs::File::create(nfs.join(LOCK_FILE)).unwrap();
    held.lock().unwrap();

    let watch = Watch::start(&f);
    f.wait_current("pbs", "the baseline on pbs", 20).await;
    let (mut most, mut most_nfs) = (0, 0);
    let mut sample = || {
        let (all, named) = threads(watch.pid(), "cv-nfs");
        most = most.max(all);
        most_nfs = most_nfs.max(named);
    };
    for _ in 0..100 {
        f.sim.open_channel();
        sample();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    f.wait_current("pbs", "pbs holds all 100 channels", 30)
        .await;
    let state = f.path().join("state");
    let stuck_retries = || {
        read_journal(&state).ok().flatten().is_some_and(|j| {
            j.targets.get("nfs").is_some_and(|t| {
                t.failures >= 6 && t.last_error.as_deref().is_some_and(|e| e.contains("stuck"))
            })
        })
    };
    for _ in 0..60 {
        sample();
        if stuck_retries() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    sample();
    let journal = read_journal(&state).unwrap().unwrap();
    let newest = journal.last_good().unwrap();
    assert_eq!(newest.channels, 100, "every snapshot reached the spool");
    assert!(journal.pending_for("pbs").is_empty(), "pbs is not behind");
    let nfs_state = &journal.targets["nfs"];
    println!(
        "nfs: {} failures, last: {:?}; threads at most {most}, cv-nfs at most {most_nfs}",
        nfs_state.failures, nfs_state.last_error
    );
    assert!(stuck_retries(), "nfs retried while stuck: {nfs_state:?}");
    assert!(most_nfs <= 1, "{most_nfs} threads work for nfs at once");
    assert!(most < 40, "{most} threads");
    let log = watch.log();
    let stuck_lines = log.lines().filter(|l| l.contains("stuck: ")).count();
    assert_eq!(stuck_lines, 1, "one line per change of state:\n{log}");

    // The holder lets go: the hung attempt returns and nfs catches up.
    drop(held);
    watch
        .wait_log("the hung attempt returns", |l| {
            l.contains("the hung delivery attempt returned")
        })
        .await;
    f.wait_current("nfs", "nfs catches up", 30).await;
    assert!(watch.stop().await.success());
}

/// The sealed file and its manifest agree, and the file opens to the
/// plaintext the manifest names.
fn check_pair(ids: &Identities, sealed: &Path, manifest: &Path) {
    let bytes = std::fs::read(sealed).unwrap();
    let m: Manifest = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    let what = sealed.display();
    assert_eq!(
        sha256_hex(&bytes),
        m.sealed_sha256,
        "{what} vs its manifest"
    );
    let plain = chanvault::seal::open(ids, &bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        sha256_hex(plain.expose()),
        m.blob_sha256,
        "{what}'s plaintext"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_backup_once_never_tear_a_dir_target() {
    let f = Fixture::new().await;
    f.edit_config(
        "retry_max_seconds = 1\n",
        "retry_max_seconds = 1\nmin_interval_ms = 0\n",
    );
    f.sim.open_channels(2);
    f.backup_once();
    // A fresh temp file of another writer (keys put replacing the audit
    // head) and an orphan of ours whose writer died.
    let state = f.path().join("state");
    let theirs = state.join("escrow-audit.head.tmp");
    std::fs::write(&theirs, b"in progress").unwrap();
    let orphan = state.join(format!(".journal.json.{}.{:016x}.tmp", i32::MAX, 1));
    std::fs::write(&orphan, b"dead").unwrap();

    let watch = Watch::start(&f);
    watch
        .wait_log("watch started", |l| l.contains("chanvault watch started"))
        .await;
    assert!(
        theirs.exists(),
        "a start swept another process's fresh temp file"
    );
    assert!(!orphan.exists(), "a dead writer's temp file stays");
    for _ in 0..12 {
        f.sim.open_channel();
        let config = f.config.clone();
        let o = tokio::task::spawn_blocking(move || {
            bin()
                .args(["backup", "--once", "--config"])
                .arg(&config)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(matches!(o.status.code(), Some(0 | 3)), "{}", text(&o));
    }
    f.wait_current("pbs", "pbs holds the final state", 20).await;
    assert!(watch.stop().await.success());

    let ids = Identities::from_file(&f.identity).unwrap();
    let pbs = f.target_dir("pbs");
    check_pair(&ids, &pbs.join(CURRENT_FILE), &pbs.join(CURRENT_MANIFEST));
    let mut pairs = 0;
    for e in std::fs::read_dir(pbs.join(HISTORY_DIR)).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "a temp file left behind: {name}");
        if name.ends_with(".age") {
            check_pair(&ids, &p, &p.with_extension("json"));
            pairs += 1;
        }
    }
    assert!(pairs >= 2, "{pairs} history backups");
    eventually("nothing else in the target", 1, || {
        std::fs::read_dir(&pbs)
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
    })
    .await;
}
