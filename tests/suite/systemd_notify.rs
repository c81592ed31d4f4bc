//! `watch` under systemd's `Type=notify`: the test binds the notify socket
//! itself (a Unix datagram socket, as systemd does), starts the real binary
//! with `NOTIFY_SOCKET` and `WATCHDOG_USEC`, and checks that `READY=1`,
//! `WATCHDOG=1` and, after SIGTERM, `STOPPING=1` arrive.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Fixture;

/// Collect datagrams until `want` has been seen in all of them or `secs` pass.
fn wait_for(sock: &UnixDatagram, seen: &mut Vec<String>, want: &str, secs: u64) -> bool {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < Duration::from_secs(secs) {
        if seen.iter().any(|m| m.lines().any(|l| l == want)) {
            return true;
        }
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    }
    seen.iter().any(|m| m.lines().any(|l| l == want))
}

#[tokio::test]
async fn watch_notifies_ready_watchdog_and_stopping() {
    let f = Fixture::new().await;
    let sock_path = f.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let log = f.path().join("watch.log");
    let child = Command::new(env!("CARGO_BIN_EXE_chanvault"))
        .args(["watch", "--config", f.config.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .env_remove("WATCHDOG_PID")
        .env("NOTIFY_SOCKET", &sock_path)
        // 400 ms: systemd would expect a ping at least every 400 ms; chanvault pings every 200 ms.
        .env("WATCHDOG_USEC", "400000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();

    let mut seen: Vec<String> = Vec::new();
    let (ready, mut seen, sock, pings) = tokio::task::spawn_blocking(move || {
        let ready = wait_for(&sock, &mut seen, "READY=1", 20);
        // Several pings, not just one at start-up.
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        let mut pings = 0;
        while start.elapsed() < Duration::from_secs(3) && pings < 3 {
            if let Ok(n) = sock.recv(&mut buf)
                && String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "WATCHDOG=1")
            {
                pings += 1;
            }
        }
        (ready, seen, sock, pings)
    })
    .await
    .unwrap();
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ready, "no READY=1; got {seen:?}; log:\n{}", text());
    assert!(pings >= 3, "expected watchdog pings, got {pings}");

    let status = crate::common::terminate(child).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", text());
    let stopping = wait_for(&sock, &mut seen, "STOPPING=1", 5);
    assert!(stopping, "no STOPPING=1; got {seen:?}");
}

#[tokio::test]
async fn watch_without_notify_socket_runs_as_before() {
    // No NOTIFY_SOCKET, no WATCHDOG_USEC: every notification is a no-op and
    // nothing is logged about systemd.
    let f = Fixture::new().await;
    let log = f.path().join("watch.log");
    let child = Command::new(env!("CARGO_BIN_EXE_chanvault"))
        .args(["watch", "--config", f.config.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let target = chanvault::sink::dir::DirTarget::new("pbs", &f.target_dir("pbs"));
    crate::common::eventually("baseline delivered", 20, || {
        matches!(target.current_manifest(), Ok(Some(_)))
    })
    .await;
    let status = crate::common::terminate(child).await;
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("systemd"), "{text}");
}
