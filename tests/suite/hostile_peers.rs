//! Slow and hostile peers: a target that accepts connections and never
//! answers, and an LND that streams garbage or a message far over the limit.
//! Each must fail with a clear error, hold up nothing else, keep memory
//! bounded, and recover once the peer behaves again.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Fixture, Watch, eventually};
use chanvault::sim::{HostileStream, SimOptions, Simulator};
use chanvault::watch::Agent;
use tokio::sync::watch;

/// A TCP server on 127.0.0.1 that accepts every connection, reads what it is
/// sent, and never answers. Stops (closing every socket) on drop.
struct BlackHole {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BlackHole {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = vec![];
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::SeqCst) {
                if let Ok((conn, _)) = listener.accept() {
                    conn.set_nonblocking(true).unwrap();
                    a.fetch_add(1, Ordering::SeqCst);
                    held.push(conn);
                }
                // Drain requests so the client never blocks on a full buffer:
                // it is the missing answer that must trip its timeout.
                for c in &mut held {
                    let _ = c.read(&mut buf);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self {
            port,
            accepted,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The body of `GET /metrics` from the agent's metrics endpoint.
fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out.split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_answers_times_out_and_holds_up_no_other() {
    let f = Fixture::new().await;
    let hole = BlackHole::start();
    std::fs::write(f.path().join("restic-password"), "pw\n").unwrap();
    f.write_config(&format!(
        r#"[[target]]
name = "offsite"
kind = "restic"
repository = "rest:http://127.0.0.1:{}/repo/"
password_file = "restic-password"
timeout_seconds = 1
"#,
        hole.port
    ));
    f.edit_config(
        "retry_max_seconds = 1\n",
        "retry_max_seconds = 1\ntimeout_seconds = 3\n",
    );
    let mut agent = Agent::new(f.load()).unwrap();
    let metrics_addr = agent.bind_metrics().unwrap().expect("metrics enabled");
    let spool = agent.spool().clone();
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(agent.watch(rx));
    for round in 1..=2 {
        f.sim.open_channels(2);
        let took = f
            .wait_current("pbs", "pbs holds the state while offsite hangs", 10)
            .await;
        println!(
            "round {round}: pbs current {} ms after the event",
            took.as_millis()
        );
    }

    let failed = |n: u64| {
        let spool = spool.clone();
        move || {
            spool
                .journal()
                .map(|j| j.targets.get("offsite").is_some_and(|t| t.failures >= n))
                .unwrap_or(false)
        }
    };
    eventually("offsite failures recorded", 30, failed(2)).await;
    let journal = spool.journal().unwrap();
    let offsite = &journal.targets["offsite"];
    let error = offsite.last_error.clone().unwrap();
    println!(
        "offsite: {} failures, last error: {error}",
        offsite.failures
    );
    assert!(
        error.contains("did not answer within 1s")
            || error.contains("not finished within 3s (delivery.timeout_seconds)"),
        "the error names the timeout: {error}"
    );
    assert!(
        error.contains("offsite"),
        "the error names the target: {error}"
    );
    assert!(hole.accepted.load(Ordering::SeqCst) >= 1);
    // The failure counter says what kind of failure it is: a hung target is a timeout.
    let text = tokio::task::spawn_blocking(move || scrape(metrics_addr))
        .await
        .unwrap();
    let hung = r#"chanvault_target_delivery_failures_total{target="offsite",reason="timeout"}"#;
    let count = text
        .lines()
        .find_map(|l| l.strip_prefix(hung))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(
        count.is_some_and(|n| n >= 2.0),
        "the offsite failures are counted as timeouts:\n{text}"
    );
    assert!(
        !text.contains(r#"target="offsite",reason="target""#),
        "no offsite failure is left unclassified:\n{text}"
    );
    assert!(
        !journal.pending_for("offsite").is_empty(),
        "the newest state is still owed to offsite"
    );
    assert!(journal.pending_for("pbs").is_empty());

    let t0 = Instant::now();
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("watch stops while a delivery hangs")
        .unwrap()
        .unwrap();
    println!(
        "stopped {} ms after SIGTERM-equivalent",
        t0.elapsed().as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lnd_streaming_garbage_or_huge_messages_is_refused_and_reconnected() {
    let f = Fixture::new().await;
    f.sim.open_channels(1);
    f.sim.set_hostile_stream(Some(HostileStream::Garbage));
    let watch = Watch::start(&f);

    watch
        .wait_log("the garbage is reported", |l| {
            l.contains("failed to decode Protobuf")
        })
        .await;
    let reconnects = |log: &str| log.matches("connected to LND").count();
    watch
        .wait_log("reconnects while the stream is garbage", |l| {
            reconnects(l) >= 2
        })
        .await;

    // 2 GiB declared, zeros for as long as anyone reads them.
    f.sim
        .set_hostile_stream(Some(HostileStream::Oversized { declared: 2 << 30 }));
    f.sim.drop_streams();
    watch
        .wait_log("the oversized message is reported", |l| {
            l.contains("too large")
        })
        .await;
    let before = reconnects(&watch.log());
    watch
        .wait_log("reconnects while the stream is oversized", |l| {
            reconnects(l) >= before + 2
        })
        .await;
    let peak = watch.peak_rss_kib();
    println!(
        "watch peak RSS while fed an oversized message: {} KiB",
        peak
    );
    assert!(
        peak < 128 * 1024,
        "memory is bounded by the message limit, not by what LND sends: {peak} KiB"
    );

    // LND behaves again: the stream is used as before.
    f.sim.set_hostile_stream(None);
    f.sim.drop_streams();
    f.sim.open_channels(2);
    let took = f
        .wait_current("pbs", "the state after recovery is delivered", 20)
        .await;
    println!(
        "final state on pbs {} ms after LND behaved again",
        took.as_millis()
    );

    let log = watch.log();
    let status = watch.stop().await;
    assert!(
        status.success(),
        "watch exits 0 on SIGTERM: {status:?}\n{log}"
    );
    for line in log
        .lines()
        .filter(|l| l.contains("failed to decode Protobuf") || l.contains("too large"))
    {
        assert!(
            line.contains(
                "LND SubscribeChannelBackups sent a reply we cannot use: cannot decode it"
            ),
            "the error names the RPC and the fault: {line}"
        );
        assert!(
            line.contains("stream failed"),
            "not called an outage: {line}"
        );
    }
    assert!(!log.contains("panicked"), "{log}");
}

/// lnd regenerates tls.cert (both files deleted, lnd restarted) while
/// chanvault pins a copy taken at start, as systemd's `LoadCredential=`
/// makes one: after `lnd.pin_mismatch_exit_after` refused connections in a
/// row, `watch` exits 6 with one line naming the pinned file, for
/// `Restart=on-failure` to start it again with a fresh copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_exits_for_a_restart_when_lnd_regenerates_its_certificate() {
    let mut f = Fixture::new().await;
    let pinned = f.path().join("credentials-tls.cert");
    std::fs::copy(f.sim.tls_cert_path(), &pinned).unwrap();
    let cert = f.sim.tls_cert_path().display().to_string();
    f.edit_config(&cert, &pinned.display().to_string());
    f.edit_config(
        "reconnect_max_seconds = 1\n",
        "reconnect_max_seconds = 1\npin_mismatch_exit_after = 3\n",
    );
    f.sim.open_channels(1);
    let mut watch = Watch::start(&f);
    f.wait_current("pbs", "the baseline", 20).await;

    let addr = f.sim.addr();
    f.sim.stop().await;
    std::fs::remove_file(f.sim.tls_cert_path()).unwrap();
    std::fs::remove_file(f.sim.tls_key_path()).unwrap();
    let mut opts = SimOptions::new(f.path().join("lnd"));
    opts.listen = addr;
    f.sim = Simulator::start(opts).await.expect("lnd restarts");
    assert_ne!(
        std::fs::read(f.sim.tls_cert_path()).unwrap(),
        std::fs::read(&pinned).unwrap(),
        "lnd made a new certificate"
    );
    let t0 = Instant::now();
    let status = watch.exited_within(30).await;
    let log = watch.log();
    assert_eq!(status.and_then(|s| s.code()), Some(6), "{log}");
    println!(
        "exited {} ms after the new certificate",
        t0.elapsed().as_millis()
    );
    let line = log
        .lines()
        .find(|l| l.starts_with("chanvault: error: "))
        .unwrap_or_else(|| panic!("no error line:\n{log}"));
    assert!(line.contains("LND's TLS certificate changed"), "{line}");
    assert!(line.contains(&pinned.display().to_string()), "{line}");
    assert!(line.contains("3 connections in a row"), "{line}");
}
