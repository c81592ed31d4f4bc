//! SIGTERM never leaves the newest state behind. A node that is shut down
//! for good (the disk dies during the reboot) must have its last channel on
//! every target, even when the shutdown falls inside the delivery pacing;
//! and a target that is down at shutdown holds the exit up for at most
//! `delivery.shutdown_grace_seconds`.
//!
//! CI runs the first test `CHANVAULT_SHUTDOWN_RUNS` times (default 3); the
//! longer check is `CHANVAULT_SHUTDOWN_RUNS=20 cargo test --test suite shutdown::`.

use std::time::{Duration, Instant};

use crate::common::{Fixture, Watch};
use chanvault::sink::dir::DirTarget;
use chanvault::spool::read_journal;

fn runs() -> usize {
    std::env::var("CHANVAULT_SHUTDOWN_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_delivers_what_is_pending_to_every_target() {
    for run in 1..=runs() {
        let f = Fixture::new().await;
        f.write_config(
            r#"[[target]]
name = "nas"
kind = "dir"
path = "targets/nas"
"#,
        );
        // Pacing that is certain to be waiting when the signal comes.
        f.edit_config(
            "retry_max_seconds = 1\n",
            "retry_max_seconds = 1\nmin_interval_ms = 2000\n",
        );
        let watch = Watch::start(&f);
        f.wait_current("pbs", "the baseline is delivered", 20).await;
        // A node opening a channel every 300 ms.
        for _ in 0..8 {
            f.sim.open_channel();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let log = watch.log();
        let status = watch.stop().await;
        assert!(status.success(), "run {run}: exit {status:?}\n{log}");

        let journal = read_journal(&f.path().join("state")).unwrap().unwrap();
        let newest = journal.last_good().expect("a last good backup");
        assert_eq!(newest.channels, 8, "run {run}: the spool has every channel");
        for name in ["pbs", "nas"] {
            let current = journal.targets.get(name).and_then(|t| t.current.clone());
            assert_eq!(
                current.as_deref(),
                Some(newest.id.as_str()),
                "run {run}: {name} is behind the spool after SIGTERM"
            );
            let on_disk = DirTarget::new(name, &f.target_dir(name))
                .current_manifest()
                .unwrap()
                .expect("a current backup");
            assert_eq!(on_disk.id, newest.id, "run {run}: {name}'s current file");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_hangs_at_shutdown_delays_exit_by_the_grace_only() {
    let f = Fixture::new().await;
    // Accepts connections and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std::fs::write(f.path().join("restic-password"), "pw\n").unwrap();
    f.write_config(&format!(
        r#"[[target]]
name = "offsite"
kind = "restic"
repository = "rest:http://127.0.0.1:{}/repo/"
password_file = "restic-password"
timeout_seconds = 60
"#,
        hole.local_addr().unwrap().port()
    ));
    f.edit_config(
        "retry_max_seconds = 1\n",
        "retry_max_seconds = 1\ntimeout_seconds = 60\nshutdown_grace_seconds = 2\n",
    );
    let watch = Watch::start(&f);
    f.wait_current("pbs", "pbs holds the baseline", 20).await;
    f.sim.open_channels(1);
    f.wait_current("pbs", "pbs holds the new channel", 20).await;
    let t0 = Instant::now();
    let status = watch.stop().await;
    let took = t0.elapsed();
    assert!(status.success(), "exit {status:?}");
    // The delivery in flight is not waited for (it hangs for 60 s); the
    // flush gets the grace, and shutdown its margin on top.
    assert!(
        took < Duration::from_secs(2 + 5 + 3),
        "shutdown took {took:?} with a 2 s grace"
    );
    println!(
        "stopped {} ms after SIGTERM with a hung target",
        took.as_millis()
    );
    drop(hole);
}
