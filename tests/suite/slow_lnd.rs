//! An LND that is slow or incomplete is not a dead LND. A `VerifyChanBackup`
//! that outlasts its timeout during a burst keeps the stream and retries the
//! newest snapshot; a node without `ClosedChannels` is logged once, not once
//! per suspect snapshot.

use std::time::Duration;

use crate::common::{Fixture, Watch, eventually};
use chanvault::scb;
use chanvault::spool::read_journal;

fn journal(f: &Fixture) -> Option<chanvault::spool::Journal> {
    read_journal(&f.path().join("state")).ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_verify_keeps_the_stream_and_stores_the_newest() {
    let f = Fixture::new().await;
    f.edit_config("timeout_seconds = 5\n", "timeout_seconds = 1\n");
    let watch = Watch::start(&f);
    f.wait_current("pbs", "the baseline is delivered", 20).await;
    let subscribed = f.sim.calls("SubscribeChannelBackups");

    // LND busy for longer than the timeout the (small) backup is given.
    f.sim
        .set_delay("VerifyChanBackup", Duration::from_millis(2500));
    f.sim.open_channels(2);
    watch
        .wait_log("the slow verify", |l| l.contains("LND is slow, not gone"))
        .await;
    f.sim.set_delay("VerifyChanBackup", Duration::ZERO);
    f.sim.open_channel();
    f.wait_current("pbs", "the newest state after the slow verify", 20)
        .await;

    let want = scb::fingerprint(&f.sim.channels());
    let j = journal(&f).expect("a journal");
    assert_eq!(
        j.newest().map(|b| b.fingerprint.as_str()),
        Some(want.as_str())
    );
    let log = watch.log();
    assert!(!log.contains("LND not available"), "{log}");
    assert!(log.contains("keeping the stream"), "{log}");
    assert_eq!(
        f.sim.calls("SubscribeChannelBackups"),
        subscribed,
        "a slow RPC is not a reason to reconnect\n{log}"
    );
    assert!(watch.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_closed_channels_is_logged_once() {
    let f = Fixture::new().await;
    let watch = Watch::start(&f);
    f.sim.open_channels(3);
    f.wait_current("pbs", "three channels delivered", 20).await;
    for _ in 0..10 {
        f.sim.fail_next(
            "ClosedChannels",
            tonic::Status::unimplemented(
                "unknown method ClosedChannels for service lnrpc.Lightning",
            ),
        );
    }

    // Three suspect snapshots in a row: each asks ClosedChannels.
    let backups = |f: &Fixture| journal(f).map_or(0, |j| j.backups.len());
    let before = backups(&f);
    f.sim.lose_channel_db();
    eventually("the empty snapshot", 20, || backups(&f) == before + 1).await;
    f.sim.open_channel();
    eventually("the second suspect", 20, || backups(&f) == before + 2).await;
    f.sim.open_channel();
    eventually("the third suspect", 20, || backups(&f) == before + 3).await;
    // The line is written after the journal commit: wait for it, do not race it.
    watch
        .wait_log("the third suspect's line", |log| {
            log.matches("stored a SUSPECT backup").count() >= 3
        })
        .await;

    let log = watch.log();
    let j = journal(&f).expect("a journal");
    assert_eq!(j.backups.iter().filter(|b| b.is_suspect()).count(), 3);
    assert_eq!(
        log.matches("cannot ask LND which channels closed").count(),
        1,
        "one line when ClosedChannels starts failing\n{log}"
    );
    assert_eq!(log.matches("stored a SUSPECT backup").count(), 3, "{log}");
    assert!(watch.stop().await.success());
}
