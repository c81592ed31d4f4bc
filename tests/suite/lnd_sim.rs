//! chanvault's LND client against the LND simulator: TLS pinning, macaroon
//! errors, stream semantics, backup verification, restarts.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use chanvault::lnd::{LndClient, LndError, LndSettings, proto};
use chanvault::scb::ChanPoint;
use chanvault::sim::{SimError, SimOptions, Simulator};
use tokio::time::timeout;

/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);
/// How long an expected snapshot may take.
const EVENT: Duration = Duration::from_secs(5);

async fn start_with(opts: impl FnOnce(SimOptions) -> SimOptions) -> (tempfile::TempDir, Simulator) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(opts(SimOptions::new(dir.path().join("lnd"))))
        .await
        .unwrap();
    (dir, sim)
}

async fn start() -> (tempfile::TempDir, Simulator) {
    start_with(|o| o).await
}

async fn connect(sim: &Simulator, macaroon: &Path) -> LndClient {
    LndClient::connect(&sim.lnd_settings(macaroon))
        .await
        .unwrap()
}

fn set(points: impl IntoIterator<Item = ChanPoint>) -> BTreeSet<ChanPoint> {
    points.into_iter().collect()
}

/// The generated client over the same pinned TLS, for requests our client
/// never sends (both backup fields, other RPCs, odd macaroon headers).
pub(crate) mod raw {
    use std::path::Path;

    use chanvault::lnd::proto::lightning_client::LightningClient;
    use chanvault::sim::Simulator;
    use tonic::metadata::{Ascii, MetadataValue};
    use tonic::service::Interceptor;
    use tonic::service::interceptor::InterceptedService;
    use tonic::transport::Channel;

    /// Sends each value as one `macaroon` header (none, one, or several).
    #[derive(Clone)]
    pub struct Headers(Vec<MetadataValue<Ascii>>);

    impl Interceptor for Headers {
        fn call(
            &mut self,
            mut req: tonic::Request<()>,
        ) -> Result<tonic::Request<()>, tonic::Status> {
            for v in &self.0 {
                req.metadata_mut().append("macaroon", v.clone());
            }
            Ok(req)
        }
    }

    pub type Client = LightningClient<InterceptedService<Channel, Headers>>;

    pub async fn client_with_headers(sim: &Simulator, headers: &[&str]) -> Client {
        let settings = sim.lnd_settings(&sim.admin_macaroon_path());
        let channel = chanvault::lnd::connect_channel(&settings).await.unwrap();
        let headers = headers.iter().map(|h| h.parse().unwrap()).collect();
        LightningClient::with_interceptor(channel, Headers(headers))
    }

    pub async fn client(sim: &Simulator, macaroon: &Path) -> Client {
        let hex = hex::encode(std::fs::read(macaroon).unwrap());
        client_with_headers(sim, &[&hex]).await
    }
}

fn assert_unknown(status: &tonic::Status, message: &str) {
    assert_eq!(status.code(), tonic::Code::Unknown, "{status:?}");
    assert_eq!(status.message(), message, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_by_ipv4_localhost_and_ipv6() {
    let (_dir, sim) = start().await;
    let want = set(sim.open_channels(2));
    let port = sim.addr().port();
    for address in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("https://127.0.0.1:{port}"),
    ] {
        let settings = LndSettings {
            address: address.clone(),
            ..sim.lnd_settings(&sim.readonly_macaroon_path())
        };
        let client = LndClient::connect(&settings)
            .await
            .unwrap_or_else(|e| panic!("{address}: {e}"));
        assert_eq!(
            client.export_all().await.unwrap().chan_points,
            want,
            "{address}"
        );
    }
    sim.stop().await;

    let dir6 = tempfile::tempdir().unwrap();
    let opts = SimOptions {
        listen: "[::1]:0".parse().unwrap(),
        ..SimOptions::new(dir6.path())
    };
    match Simulator::start(opts).await {
        Err(SimError::Bind { source, .. }) => {
            eprintln!("skipping the ::1 case: this machine has no IPv6 loopback ({source})");
        }
        Err(e) => panic!("{e}"),
        Ok(sim6) => {
            let want = set(sim6.open_channels(1));
            let settings = LndSettings {
                address: format!("https://[::1]:{}", sim6.addr().port()),
                ..sim6.lnd_settings(&sim6.readonly_macaroon_path())
            };
            let client = LndClient::connect(&settings).await.unwrap();
            assert_eq!(client.export_all().await.unwrap().chan_points, want);
            sim6.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_matches_channels_and_never_repeats_bytes() {
    let (_dir, sim) = start().await;
    let client = connect(&sim, &sim.offchain_read_macaroon_path()).await;

    let empty = client.export_all().await.unwrap();
    assert!(empty.chan_points.is_empty());
    assert_eq!(empty.multi.len(), 45, "lnd's NilMultiSizePacked");

    sim.open_channels(5);
    let a = client.export_all().await.unwrap();
    let b = client.export_all().await.unwrap();
    assert_eq!(a.chan_points, sim.channels());
    assert_eq!(b.chan_points, sim.channels());
    assert_ne!(a.multi, b.multi, "fresh nonce on every export");
    assert_eq!(sim.decode_multi(&a.multi).unwrap(), sim.channels());
    assert_eq!(sim.decode_multi(&b.multi).unwrap(), sim.channels());
    // Realistic Singles: a few hundred bytes each.
    assert!(a.multi.len() > 5 * 300, "{}", a.multi.len());
    assert_eq!(
        chanvault::scb::fingerprint(&a.chan_points),
        chanvault::scb::fingerprint(&b.chan_points)
    );
    assert_eq!(sim.calls("ExportAllChannelBackups"), 3);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_carry_singles_and_multi_like_lnd() {
    let (_dir, sim) = start().await;
    sim.open_channels(4);
    let mut rpc = raw::client(&sim, &sim.readonly_macaroon_path()).await;
    let snap = rpc
        .export_all_channel_backups(proto::ChanBackupExportRequest {})
        .await
        .unwrap()
        .into_inner();
    let singles = snap.single_chan_backups.unwrap().chan_backups;
    let multi = snap.multi_chan_backup.unwrap();
    assert_eq!(singles.len(), 4);
    // Singles and the multi's list share one order; both use funding_txid_bytes.
    let single_points: Vec<_> = singles
        .iter()
        .map(|s| s.chan_point.clone().unwrap())
        .collect();
    assert_eq!(single_points, multi.chan_points);
    for cp in &multi.chan_points {
        assert!(matches!(
            cp.funding_txid,
            Some(proto::channel_point::FundingTxid::FundingTxidBytes(_))
        ));
    }
    // Each Single verifies on its own and names its channel.
    for s in singles {
        let want = s.chan_point.clone().unwrap();
        let want = ChanPoint::from_wire(
            match want.funding_txid.unwrap() {
                proto::channel_point::FundingTxid::FundingTxidBytes(b) => b,
                proto::channel_point::FundingTxid::FundingTxidStr(_) => unreachable!(),
            }
            .as_slice(),
            want.output_index,
        )
        .unwrap();
        assert!(s.chan_backup.len() > 300, "{}", s.chan_backup.len());
        let reply = rpc
            .verify_chan_backup(proto::ChanBackupSnapshot {
                single_chan_backups: Some(proto::ChannelBackups {
                    chan_backups: vec![s],
                }),
                multi_chan_backup: None,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.chan_points, vec![want.to_string()]);
    }
    // Two singles at once are refused.
    let two = rpc
        .export_all_channel_backups(proto::ChanBackupExportRequest {})
        .await
        .unwrap()
        .into_inner()
        .single_chan_backups
        .unwrap()
        .chan_backups
        .into_iter()
        .take(2)
        .collect();
    let err = rpc
        .verify_chan_backup(proto::ChanBackupSnapshot {
            single_chan_backups: Some(proto::ChannelBackups { chan_backups: two }),
            multi_chan_backup: None,
        })
        .await
        .unwrap_err();
    assert_unknown(&err, "only one Single is accepted at a time");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_is_silent_until_an_event_then_sends_one_snapshot_per_event() {
    let (_dir, sim) = start().await;
    sim.open_channel();
    let client = connect(&sim, &sim.offchain_read_macaroon_path()).await;
    let mut stream = client.subscribe().await.unwrap();
    assert_eq!(sim.stream_count(), 1);
    assert!(
        timeout(QUIET, stream.next()).await.is_err(),
        "lnd sends nothing when the subscription starts"
    );

    // Open: PendingOpen and Open, two snapshots with the same set.
    let cp = sim.open_channel();
    for _ in 0..2 {
        let snap = timeout(EVENT, stream.next()).await.unwrap().unwrap();
        assert_eq!(snap.chan_points, sim.channels());
        assert!(snap.chan_points.contains(&cp));
        assert_eq!(sim.decode_multi(&snap.multi).unwrap(), snap.chan_points);
    }
    assert!(timeout(QUIET, stream.next()).await.is_err(), "exactly two");

    // Close: Closed and FullyResolved, two snapshots without it.
    assert!(sim.close_channel(&cp));
    let mut blobs = vec![];
    for _ in 0..2 {
        let snap = timeout(EVENT, stream.next()).await.unwrap().unwrap();
        assert!(!snap.chan_points.contains(&cp));
        assert_eq!(snap.chan_points, sim.channels());
        blobs.push(snap.multi);
    }
    assert_ne!(blobs[0], blobs[1], "identical state, different bytes");
    assert!(timeout(QUIET, stream.next()).await.is_err());

    // A pending open is one event; its confirmation another.
    let pending = sim.open_pending_channel();
    let snap = timeout(EVENT, stream.next()).await.unwrap().unwrap();
    assert!(
        snap.chan_points.contains(&pending),
        "pending channels are backed up"
    );
    assert!(sim.confirm_channel(&pending));
    let snap = timeout(EVENT, stream.next()).await.unwrap().unwrap();
    assert!(snap.chan_points.contains(&pending));
    assert!(timeout(QUIET, stream.next()).await.is_err());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_only_keeps_the_newest_of_a_burst_and_then_the_end() {
    let (_dir, sim) = start().await;
    let client = connect(&sim, &sim.readonly_macaroon_path()).await;
    let mut newest = client.subscribe().await.unwrap().newest_only();
    // 25 opens are 50 snapshots, all sent before anyone reads.
    for _ in 0..25 {
        sim.open_channel();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (snap, superseded) = timeout(EVENT, newest.next()).await.unwrap().unwrap();
    assert_eq!(snap.chan_points, sim.channels(), "the newest state");
    assert_eq!(snap.chan_points.len(), 25);
    assert_eq!(superseded, 49, "every older snapshot was dropped");
    assert!(
        timeout(QUIET, newest.next()).await.is_err(),
        "nothing is delivered twice"
    );

    // A snapshot that arrived before the stream ended still comes first.
    let cp = sim.open_channel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.drop_streams(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (snap, superseded) = timeout(EVENT, newest.next()).await.unwrap().unwrap();
    assert!(snap.chan_points.contains(&cp));
    assert_eq!(superseded, 1);
    match timeout(EVENT, newest.next()).await.unwrap() {
        Err(LndError::StreamEnded) | Err(LndError::Unreachable { .. }) => {}
        other => panic!("expected the end of the stream, got {other:?}"),
    }
    match timeout(EVENT, newest.next()).await.unwrap() {
        Err(LndError::StreamEnded) => {}
        other => panic!("an ended stream stays ended, got {other:?}"),
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_multi_returns_the_set_on_new_lnd_and_none_on_old() {
    let (_dir, sim) = start().await;
    sim.open_channels(3);
    let client = connect(&sim, &sim.readonly_macaroon_path()).await;
    let snap = client.export_all().await.unwrap();
    assert_eq!(
        client.verify_multi(&snap.multi).await.unwrap(),
        Some(sim.channels())
    );
    assert_eq!(sim.calls("VerifyChanBackup"), 1);
    sim.stop().await;

    let (_dir, old) = start_with(|o| SimOptions {
        verify_returns_chan_points: false,
        ..o
    })
    .await;
    old.open_channels(3);
    let client = connect(&old, &old.readonly_macaroon_path()).await;
    let snap = client.export_all().await.unwrap();
    assert_eq!(client.verify_multi(&snap.multi).await.unwrap(), None);
    assert_eq!(old.calls("VerifyChanBackup"), 1);
    // Old lnd still refuses a bad blob.
    let mut bad = snap.multi.to_vec();
    bad[40] ^= 0xff;
    assert!(client.verify_multi(&bad).await.is_err());
    old.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_foreign_blobs_are_refused_with_lnds_text() {
    let (_dir, sim) = start().await;
    let (_dir2, other) = start().await;
    sim.open_channels(2);
    other.open_channels(2);
    let client = connect(&sim, &sim.readonly_macaroon_path()).await;
    let mut tampered = client.export_all().await.unwrap().multi.to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let foreign = connect(&other, &other.readonly_macaroon_path())
        .await
        .export_all()
        .await
        .unwrap()
        .multi;
    for (blob, want) in [
        (
            tampered.into(),
            "invalid multi channel backup: chacha20poly1305: message authentication failed",
        ),
        (
            foreign,
            "invalid multi channel backup: chacha20poly1305: message authentication failed",
        ),
        (
            vec![1u8; 10].into(),
            "invalid multi channel backup: payload size too small, must be at least 24 bytes",
        ),
    ] {
        match client.verify_multi(&blob).await {
            Err(LndError::Rpc { rpc, message }) => {
                assert_eq!(rpc, "VerifyChanBackup");
                assert_eq!(message, want);
            }
            other => panic!("expected Rpc error, got {other:?}"),
        }
    }
    sim.stop().await;
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_refuses_both_fields_and_neither() {
    let (_dir, sim) = start().await;
    sim.open_channels(2);
    let mut rpc = raw::client(&sim, &sim.readonly_macaroon_path()).await;
    let snap = rpc
        .export_all_channel_backups(proto::ChanBackupExportRequest {})
        .await
        .unwrap()
        .into_inner();
    let err = rpc.verify_chan_backup(snap.clone()).await.unwrap_err();
    assert_unknown(
        &err,
        "either a Single or Multi channel backup must be specified, but not both",
    );
    let err = rpc
        .verify_chan_backup(proto::ChanBackupSnapshot::default())
        .await
        .unwrap_err();
    assert_unknown(
        &err,
        "either a Single or Multi channel backup must be specified",
    );
    // An empty but present singles list counts as present.
    let err = rpc
        .verify_chan_backup(proto::ChanBackupSnapshot {
            single_chan_backups: Some(proto::ChannelBackups::default()),
            multi_chan_backup: None,
        })
        .await
        .unwrap_err();
    assert_unknown(&err, "only one Single is accepted at a time");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macaroon_errors_match_lnd() {
    let (_dir, sim) = start().await;
    let (_dir2, other) = start().await;

    // Another node's macaroon: signature mismatch, reported with the path.
    let foreign = other.readonly_macaroon_path();
    let settings = sim.lnd_settings(&foreign);
    let client = LndClient::connect(&settings).await.unwrap();
    match client.export_all().await {
        Err(e @ LndError::MacaroonRejected { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&foreign.display().to_string()), "{text}");
            assert!(
                text.contains("verification failed: signature mismatch after caveat verification"),
                "{text}"
            );
        }
        other => panic!("expected MacaroonRejected, got {other:?}"),
    }

    // Raw header cases.
    let req = || proto::ChanBackupExportRequest {};
    let mut none = raw::client_with_headers(&sim, &[]).await;
    let err = none.export_all_channel_backups(req()).await.unwrap_err();
    assert_unknown(&err, "expected 1 macaroon, got 0");

    let good = hex::encode(std::fs::read(sim.readonly_macaroon_path()).unwrap());
    let mut two = raw::client_with_headers(&sim, &[&good, &good]).await;
    let err = two.export_all_channel_backups(req()).await.unwrap_err();
    assert_unknown(&err, "expected 1 macaroon, got 2");

    let mut not_hex = raw::client_with_headers(&sim, &["nothex"]).await;
    let err = not_hex.export_all_channel_backups(req()).await.unwrap_err();
    assert_unknown(&err, "encoding/hex: invalid byte: U+006E 'n'");

    let mut junk = raw::client_with_headers(&sim, &["0201abcdef"]).await;
    let err = junk.export_all_channel_backups(req()).await.unwrap_err();
    assert_unknown(
        &err,
        "verification failed: signature mismatch after caveat verification",
    );

    // Refused calls are still counted.
    assert_eq!(sim.calls("ExportAllChannelBackups"), 5);
    sim.stop().await;
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_follow_lnds_table() {
    let (_dir, sim) = start().await;
    sim.open_channels(2);

    // readonly and offchain:read are enough for everything chanvault watches.
    for mac in [
        sim.readonly_macaroon_path(),
        sim.offchain_read_macaroon_path(),
    ] {
        let client = connect(&sim, &mac).await;
        let snap = client.export_all().await.unwrap();
        assert_eq!(
            client.verify_multi(&snap.multi).await.unwrap(),
            Some(sim.channels())
        );
        assert!(client.closed_channels().await.unwrap().is_empty());
        let _stream = client.subscribe().await.unwrap();
    }

    // GetInfo needs info:read, which the baked offchain:read macaroon lacks.
    let mut narrow = raw::client(&sim, &sim.offchain_read_macaroon_path()).await;
    let err = narrow.get_info(proto::GetInfoRequest {}).await.unwrap_err();
    assert_unknown(&err, "permission denied");
    let mut ro = raw::client(&sim, &sim.readonly_macaroon_path()).await;
    ro.get_info(proto::GetInfoRequest {}).await.unwrap();

    // Restoring needs offchain:write: only admin has it.
    let multi = ro
        .export_all_channel_backups(proto::ChanBackupExportRequest {})
        .await
        .unwrap()
        .into_inner()
        .multi_chan_backup
        .unwrap()
        .multi_chan_backup;
    let restore = || proto::RestoreChanBackupRequest {
        backup: Some(proto::restore_chan_backup_request::Backup::MultiChanBackup(
            multi.clone(),
        )),
    };
    let err = ro.restore_channel_backups(restore()).await.unwrap_err();
    assert_unknown(&err, "permission denied");
    let mut admin = raw::client(&sim, &sim.admin_macaroon_path()).await;
    admin.restore_channel_backups(restore()).await.unwrap();
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_certificate_is_a_tls_mismatch() {
    let (_dir, sim) = start().await;
    let (_dir2, other) = start().await;
    let settings = LndSettings {
        tls_cert: other.tls_cert_path(),
        ..sim.lnd_settings(&sim.readonly_macaroon_path())
    };
    match LndClient::connect(&settings).await {
        Err(e @ LndError::TlsMismatch { .. }) => {
            assert!(
                e.to_string()
                    .contains(&other.tls_cert_path().display().to_string())
            );
        }
        other => panic!("expected TlsMismatch, got {other:?}"),
    }
    sim.stop().await;
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_simulator_is_unreachable_and_restart_keeps_everything() {
    let (_dir, sim) = start().await;
    let want = set(sim.open_channels(3));
    let cert_before = std::fs::read(sim.tls_cert_path()).unwrap();
    let addr = sim.addr();
    let client = connect(&sim, &sim.readonly_macaroon_path()).await;
    let before = client.export_all().await.unwrap();

    sim.stop().await;
    assert!(!sim.is_running());
    match LndClient::connect(&sim.lnd_settings(&sim.readonly_macaroon_path())).await {
        Err(e @ LndError::Unreachable { .. }) => assert!(e.is_connection()),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    let err = client.export_all().await.unwrap_err();
    assert!(err.is_connection(), "old client after stop: {err:?}");
    sim.stop().await; // idempotent

    sim.restart().await.unwrap();
    assert!(sim.is_running());
    assert_eq!(sim.addr(), addr);
    assert_eq!(std::fs::read(sim.tls_cert_path()).unwrap(), cert_before);
    let client = connect(&sim, &sim.readonly_macaroon_path()).await;
    let after = client.export_all().await.unwrap();
    assert_eq!(after.chan_points, want);
    // Same seed: the pre-restart blob still verifies.
    assert_eq!(
        client.verify_multi(&before.multi).await.unwrap(),
        Some(want)
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_on_the_same_dir_is_the_same_node() {
    let dir = tempfile::tempdir().unwrap();
    let first = Simulator::start(SimOptions::new(dir.path())).await.unwrap();
    let opened = set(first.open_channels(2));
    let closed = first.open_channel();
    first.close_channel(&closed);
    let blob = connect(&first, &first.readonly_macaroon_path())
        .await
        .export_all()
        .await
        .unwrap()
        .multi;
    let cert = std::fs::read(first.tls_cert_path()).unwrap();
    let pubkey = first.identity_pubkey();
    first.stop().await;
    drop(first);

    let second = Simulator::start(SimOptions::new(dir.path())).await.unwrap();
    assert_eq!(std::fs::read(second.tls_cert_path()).unwrap(), cert);
    assert_eq!(second.identity_pubkey(), pubkey);
    assert_eq!(second.channels(), opened);
    assert_eq!(second.closed(), set([closed]));
    let client = connect(&second, &second.readonly_macaroon_path()).await;
    assert_eq!(client.verify_multi(&blob).await.unwrap(), Some(opened));
    assert_eq!(client.closed_channels().await.unwrap(), set([closed]));
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_streams_end_and_stop_ends_them_too() {
    let (_dir, sim) = start().await;
    let client = connect(&sim, &sim.readonly_macaroon_path()).await;
    let mut stream = client.subscribe().await.unwrap();
    assert_eq!(sim.drop_streams(), 1);
    match timeout(EVENT, stream.next()).await.unwrap() {
        Err(LndError::StreamEnded) | Err(LndError::Unreachable { .. }) => {}
        other => panic!("expected the end of the stream, got {other:?}"),
    }
    assert_eq!(sim.stream_count(), 0);

    // A new subscription works on the same connection.
    let mut stream = client.subscribe().await.unwrap();
    sim.open_channel();
    timeout(EVENT, stream.next()).await.unwrap().unwrap();
    timeout(EVENT, stream.next()).await.unwrap().unwrap();

    // lnd shutting down ends the stream as well.
    sim.stop().await;
    let err = timeout(EVENT, stream.next()).await.unwrap().unwrap_err();
    assert!(err.is_connection(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_simulator_breaks_streams_as_a_connection_error() {
    let (_dir, sim) = start().await;
    let client = connect(&sim, &sim.readonly_macaroon_path()).await;
    let mut stream = client.subscribe().await.unwrap();
    sim.kill().await;
    let err = timeout(EVENT, stream.next()).await.unwrap().unwrap_err();
    // tonic reports the cut as Code::Unknown with a local h2 source; the
    // client must classify it as a connection problem so watch reconnects.
    assert!(err.is_connection(), "{err:?}");
    let err = client.export_all().await.unwrap_err();
    assert!(err.is_connection(), "{err:?}");

    // A call in flight when lnd dies: tonic says Unknown "transport error".
    sim.restart().await.unwrap();
    sim.set_delay("ExportAllChannelBackups", Duration::from_secs(5));
    let client = connect(&sim, &sim.readonly_macaroon_path()).await;
    let call = tokio::spawn(async move { client.export_all().await });
    while sim.calls("ExportAllChannelBackups") == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sim.kill().await;
    let err = timeout(EVENT, call).await.unwrap().unwrap().unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    sim.set_delay("ExportAllChannelBackups", Duration::ZERO);

    sim.restart().await.unwrap();
    let client = connect(&sim, &sim.readonly_macaroon_path()).await;
    client.export_all().await.unwrap();
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_channels_and_lost_channel_db() {
    let (_dir, sim) = start().await;
    let points = sim.open_channels(3);
    let client = connect(&sim, &sim.readonly_macaroon_path()).await;
    assert!(sim.close_channel(&points[0]));
    assert!(!sim.close_channel(&points[0]), "already closed");
    assert_eq!(client.closed_channels().await.unwrap(), set([points[0]]));
    assert_eq!(sim.closed(), set([points[0]]));

    let mut stream = client.subscribe().await.unwrap();
    assert_eq!(sim.lose_channel_db(), 2);
    let snap = timeout(EVENT, stream.next()).await.unwrap().unwrap();
    assert!(snap.chan_points.is_empty());
    assert!(sim.decode_multi(&snap.multi).unwrap().is_empty());
    assert!(timeout(QUIET, stream.next()).await.is_err(), "one event");
    // No close records for the lost channels.
    assert_eq!(client.closed_channels().await.unwrap(), set([points[0]]));
    assert!(client.export_all().await.unwrap().chan_points.is_empty());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failures_and_delays() {
    let (_dir, sim) = start().await;
    sim.open_channel();
    let settings = LndSettings {
        timeout: Duration::from_millis(500),
        ..sim.lnd_settings(&sim.readonly_macaroon_path())
    };
    let client = LndClient::connect(&settings).await.unwrap();

    sim.fail_next(
        "ExportAllChannelBackups",
        tonic::Status::unknown("unable to fetch all static chan backups: db closed"),
    );
    match client.export_all().await {
        Err(LndError::Rpc { message, .. }) => {
            assert_eq!(
                message,
                "unable to fetch all static chan backups: db closed"
            );
        }
        other => panic!("{other:?}"),
    }
    client.export_all().await.unwrap();

    sim.fail_next(
        "/lnrpc.Lightning/ClosedChannels",
        tonic::Status::unavailable("gone"),
    );
    assert!(client.closed_channels().await.unwrap_err().is_connection());

    sim.set_delay("ExportAllChannelBackups", Duration::from_secs(2));
    match client.export_all().await {
        Err(LndError::Timeout { rpc, .. }) => assert_eq!(rpc, "ExportAllChannelBackups"),
        other => panic!("{other:?}"),
    }
    sim.set_delay("ExportAllChannelBackups", Duration::ZERO);
    client.export_all().await.unwrap();

    // A stream can be ended with an error, as lnd does when a fetch fails.
    let mut stream = client.subscribe().await.unwrap();
    sim.fail_streams(tonic::Status::unknown(
        "unable to fetch all static chan backups: boom",
    ));
    match timeout(EVENT, stream.next()).await.unwrap() {
        Err(LndError::Rpc { message, .. }) => assert!(message.contains("boom")),
        other => panic!("{other:?}"),
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_counts_unknown_channels_only() {
    let (_dir, sim) = start().await;
    let points = set(sim.open_channels(3));
    let mut admin = raw::client(&sim, &sim.admin_macaroon_path()).await;
    let snap = admin
        .export_all_channel_backups(proto::ChanBackupExportRequest {})
        .await
        .unwrap()
        .into_inner();
    let multi = snap.multi_chan_backup.clone().unwrap().multi_chan_backup;
    let restore_multi = |blob: Vec<u8>| proto::RestoreChanBackupRequest {
        backup: Some(proto::restore_chan_backup_request::Backup::MultiChanBackup(
            blob,
        )),
    };

    // All channels still exist: nothing restored.
    let r = admin
        .restore_channel_backups(restore_multi(multi.clone()))
        .await
        .unwrap();
    assert_eq!(r.into_inner().num_restored, 0);

    sim.lose_channel_db();
    let r = admin
        .restore_channel_backups(restore_multi(multi.clone()))
        .await
        .unwrap();
    assert_eq!(r.into_inner().num_restored, 3);
    assert_eq!(sim.restored(), points);
    let r = admin
        .restore_channel_backups(restore_multi(multi.clone()))
        .await
        .unwrap();
    assert_eq!(r.into_inner().num_restored, 0, "already restored");

    let mut bad = multi.clone();
    bad[30] ^= 1;
    let err = admin
        .restore_channel_backups(restore_multi(bad))
        .await
        .unwrap_err();
    assert_unknown(
        &err,
        "unable to unpack chan backup: chacha20poly1305: message authentication failed",
    );
    let mut bad_single = snap.single_chan_backups.unwrap();
    bad_single.chan_backups[0].chan_backup[40] ^= 1;
    let err = admin
        .restore_channel_backups(proto::RestoreChanBackupRequest {
            backup: Some(proto::restore_chan_backup_request::Backup::ChanBackups(
                bad_single,
            )),
        })
        .await
        .unwrap_err();
    assert_unknown(
        &err,
        "unable to unpack single backups: chacha20poly1305: message authentication failed",
    );
    // Neither field: lnd's switch has no default, so this is a no-op.
    let r = admin
        .restore_channel_backups(proto::RestoreChanBackupRequest { backup: None })
        .await
        .unwrap();
    assert_eq!(r.into_inner().num_restored, 0);
    assert_eq!(sim.calls("RestoreChannelBackups"), 6);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_rpcs_describe_the_simulated_node() {
    let (_dir, sim) = start().await;
    let open = sim.open_channels(2);
    let pending = sim.open_pending_channel();
    let mut rpc = raw::client(&sim, &sim.readonly_macaroon_path()).await;

    let info = rpc
        .get_info(proto::GetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.identity_pubkey, sim.identity_pubkey());
    assert_eq!(info.identity_pubkey.len(), 66);
    assert_eq!(info.alias, "chanvault-sim");
    assert!(info.version.starts_with("0.19."), "{}", info.version);
    assert_eq!(info.num_active_channels, 2);
    assert_eq!(info.num_pending_channels, 1);
    assert!(info.synced_to_chain);
    assert_eq!(info.chains.len(), 1);
    assert_eq!(info.chains[0].network, "regtest");

    let list = rpc
        .list_channels(proto::ListChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let listed: BTreeSet<ChanPoint> = list
        .channels
        .iter()
        .map(|c| c.channel_point.parse().unwrap())
        .collect();
    assert_eq!(listed, set(open.clone()));

    let pend = rpc
        .pending_channels(proto::PendingChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pend.pending_open_channels.len(), 1);
    assert_eq!(
        pend.pending_open_channels[0]
            .channel
            .as_ref()
            .unwrap()
            .channel_point,
        pending.to_string()
    );

    // ExportChannelBackup by display-hex string, and an unknown channel.
    let by_str = proto::ChannelPoint {
        funding_txid: Some(proto::channel_point::FundingTxid::FundingTxidStr(
            open[0].txid_hex(),
        )),
        output_index: open[0].index,
    };
    let single = rpc
        .export_channel_backup(proto::ExportChannelBackupRequest {
            chan_point: Some(by_str),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(single.chan_backup.len() > 300);
    let unknown = proto::ChannelPoint {
        funding_txid: Some(proto::channel_point::FundingTxid::FundingTxidBytes(vec![
            7;
            32
        ])),
        output_index: 0,
    };
    let err = rpc
        .export_channel_backup(proto::ExportChannelBackupRequest {
            chan_point: Some(unknown),
        })
        .await
        .unwrap_err();
    assert_unknown(&err, "unable to find target channel");

    // Closing shows up in ClosedChannels with lnd's fields.
    sim.close_channel(&open[1]);
    let closed = rpc
        .closed_channels(proto::ClosedChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(closed.channels.len(), 1);
    let c = &closed.channels[0];
    assert_eq!(c.channel_point, open[1].to_string());
    assert_eq!(
        c.close_type,
        proto::channel_close_summary::ClosureType::CooperativeClose as i32
    );
    assert_eq!(
        c.chain_hash,
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    );
    let only_force = rpc
        .closed_channels(proto::ClosedChannelsRequest {
            local_force: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(only_force.channels.is_empty());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_look_like_lnds() {
    let (_dir, sim) = start().await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for secret in [
        sim.tls_key_path(),
        sim.admin_macaroon_path(),
        sim.readonly_macaroon_path(),
        sim.offchain_read_macaroon_path(),
        sim.aezeed_path(),
        sim.aezeed_passphrase_path(),
    ] {
        assert_eq!(mode(&secret), 0o600, "{}", secret.display());
    }
    assert_eq!(mode(&sim.tls_cert_path()), 0o644);
    let key = std::fs::read_to_string(sim.tls_key_path()).unwrap();
    assert!(key.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let cert = chanvault::lnd::load_cert(&sim.tls_cert_path()).unwrap();
    let der = cert.as_ref();
    let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"lnd autogenerated cert"));
    for dns in [&b"localhost"[..], b"unixpacket", b"bufconn"] {
        assert!(contains(dns), "{}", String::from_utf8_lossy(dns));
    }
    assert!(contains(&[0x87, 0x04, 127, 0, 0, 1]), "IP SAN 127.0.0.1");
    let mut v6 = vec![0x87, 0x10];
    v6.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    assert!(contains(&v6), "IP SAN ::1");
    // ecdsa-with-SHA256 and prime256v1.
    assert!(contains(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]));
    assert!(contains(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]));
    // basicConstraints CA:true.
    assert!(contains(&[0x55, 0x1d, 0x13]));
    assert!(contains(&[0x30, 0x03, 0x01, 0x01, 0xff]));
    for mac in [sim.admin_macaroon_path(), sim.offchain_read_macaroon_path()] {
        let bytes = std::fs::read(&mac).unwrap();
        assert_eq!(&bytes[..2], &[0x02, 0x01], "{}", mac.display());
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_stops_serving() {
    let (_dir, sim) = start().await;
    let settings = sim.lnd_settings(&sim.readonly_macaroon_path());
    connect(&sim, &sim.readonly_macaroon_path()).await;
    drop(sim);
    let deadline = tokio::time::Instant::now() + EVENT;
    loop {
        match LndClient::connect(&settings).await {
            Err(LndError::Unreachable { .. }) => break,
            _ if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("still serving after drop: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_mode_runs_line_commands() {
    let dir = tempfile::tempdir().unwrap();
    let input: &[u8] =
        b"help\nopen 2\nlist\nclose 1\nbogus\ndrop\nrestart\nlose-db\nlist\nquit\nopen\n";
    let mut out = Vec::new();
    chanvault::sim::run_standalone(SimOptions::new(dir.path()), input, &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("lnd-sim listening on 127.0.0.1:"), "{text}");
    assert!(text.contains("tls cert:"), "{text}");
    assert!(text.contains("opened 2 channel(s): "), "{text}");
    assert!(text.contains("open 2: "), "{text}");
    assert!(text.contains("closed 1 channel(s): "), "{text}");
    assert!(text.contains("unknown command \"bogus\""), "{text}");
    assert!(text.contains("ended 0 backup stream(s)"), "{text}");
    assert!(text.contains("restarted on 127.0.0.1:"), "{text}");
    assert!(text.contains("channel DB lost: 1 channel(s)"), "{text}");
    assert!(
        text.contains("open 0: - | pending 0: - | closed 1: "),
        "{text}"
    );
    assert!(text.trim_end().ends_with("lnd-sim stopped"), "{text}");
    assert_eq!(text.matches("opened").count(), 1, "nothing runs after quit");
}
