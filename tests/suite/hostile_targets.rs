//! Targets that cannot hurt each other or the host (issue 13 §2): a dir
//! target whose files are symlinks, FIFOs or huge; a second `watch` on the
//! same state dir; clients that hold `/metrics` connections open.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Fixture, Watch, bin, text};

/// Run the binary with `args`, off the async threads; kill it and fail if it
/// has not finished within `secs`.
async fn run_within(secs: u64, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd: Command = bin();
        let mut child = cmd
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary runs");
        let start = Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if start.elapsed() > Duration::from_secs(secs) {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait");
                panic!("`chanvault {}` hung:\n{}", args.join(" "), text(&out));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("output")
    })
    .await
    .expect("join")
}

fn args(f: &Fixture, cmd: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    v.extend(["--config".to_string(), f.config.display().to_string()]);
    v
}

fn mkfifo(p: &Path) {
    let made = Command::new("mkfifo").arg(p).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", p.display());
}

/// `restore list` and `verify` on a target whose manifest is `bad` fail
/// fast, and their output names the file and what it is.
async fn list_and_verify_name(f: &Fixture, manifest: &Path, what: &str) {
    let want = format!("{} {what}", manifest.display());
    let o = run_within(5, args(f, &["restore", "list"])).await;
    assert!(!o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let error = stderr.lines().find(|l| l.starts_with("chanvault: error: "));
    assert!(
        error.is_some_and(|l| l.ends_with(&want) || l.contains(&format!("{want} "))),
        "restore list: {}",
        text(&o)
    );
    let mut v = args(f, &["verify"]);
    v.extend(["--identity".to_string(), f.identity.display().to_string()]);
    let o = run_within(30, v).await;
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(&want), "verify: {}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_is_a_symlink_to_dev_zero_fails_fast_and_named() {
    let f = Fixture::new().await;
    f.sim.open_channels(2);
    f.backup_once();
    let manifest = f.target_dir("pbs").join("channel.backup.json");
    std::fs::remove_file(&manifest).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &manifest).unwrap();
    list_and_verify_name(&f, &manifest, "is a symbolic link, not a regular file").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_is_a_fifo_fails_fast_and_named() {
    let f = Fixture::new().await;
    f.sim.open_channels(2);
    f.backup_once();
    let manifest = f.target_dir("pbs").join("channel.backup.json");
    std::fs::remove_file(&manifest).unwrap();
    mkfifo(&manifest);
    list_and_verify_name(&f, &manifest, "is a FIFO (named pipe), not a regular file").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_history_manifest_fails_fast_and_named() {
    let f = Fixture::new().await;
    f.sim.open_channels(2);
    f.backup_once();
    let manifest = f
        .target_dir("pbs")
        .join("history/29990101T000000.000Z-huge.json");
    let file = std::fs::File::create(&manifest).unwrap();
    file.set_len(1 << 30).unwrap();
    list_and_verify_name(&f, &manifest, "is larger than 64 KiB").await;
}

/// A second `watch` on one state dir exits 1 naming the first one's PID;
/// `backup --once` still runs beside it, and the lock goes with the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_watch_on_one_state_dir_names_the_first() {
    let f = Fixture::new().await;
    f.sim.open_channels(2);
    let first = Watch::start(&f);
    first
        .wait_log("watch started", |l| l.contains("chanvault watch started"))
        .await;
    f.wait_current("pbs", "the first watch's backup", 20).await;

    let o = run_within(20, args(&f, &["watch"])).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let lock = f.path().join("state/watch.lock");
    assert_eq!(
        stderr.trim(),
        format!(
            "chanvault: error: another chanvault watch (PID {}) is running on this state dir: \
             {} is locked; stop it, or give this one its own state_dir",
            first.pid(),
            lock.display()
        ),
        "{}",
        text(&o)
    );

    // The timer's one-shot backup is not locked out (3: nothing new).
    f.sim.open_channels(1);
    let o = run_within(30, args(&f, &["backup", "--once"])).await;
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", text(&o));

    assert!(first.stop().await.success());
    // The lock went with the process: a new watch starts.
    let second = Watch::start(&f);
    second
        .wait_log("the second watch started", |l| {
            l.contains("chanvault watch started")
        })
        .await;
    assert!(second.stop().await.success());
}

/// Twenty clients that connect to `/metrics` and send nothing: a scrape
/// still answers within a few seconds (slots are capped and idle ones time
/// out), and every idle connection is closed by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_metrics_connections_neither_block_a_scrape_nor_stay_open() {
    use chanvault::metrics::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS, Metrics};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let dir = tempfile::tempdir().unwrap();
    let spool = chanvault::spool::Spool::open(&dir.path().join("state"), 5).unwrap();
    let listener = chanvault::metrics::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(chanvault::metrics::serve(
        listener,
        std::sync::Arc::new(Metrics::new()),
        std::sync::Arc::new(spool),
        vec!["pbs".to_string()],
        stopped,
    ));

    let idle_count = MAX_CONNECTIONS + 4;
    let mut idle = Vec::new();
    for _ in 0..idle_count {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let start = Instant::now();
    let scrape = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        body
    };
    let budget = HEADER_READ_TIMEOUT + Duration::from_secs(3);
    let body = tokio::time::timeout(budget, scrape)
        .await
        .unwrap_or_else(|_| panic!("no answer to a scrape within {budget:?}"));
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("chanvault_build_info"), "{body}");
    eprintln!("scrape answered after {:?}", start.elapsed());

    // The ones held in the backlog get their slot late: two timeouts at most.
    let deadline = start + 2 * HEADER_READ_TIMEOUT + Duration::from_secs(3);
    for (n, mut c) in idle.into_iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut buf = [0u8; 64];
        match tokio::time::timeout(left, c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(k)) => panic!("idle connection {n} got {k} bytes"),
            Err(_) => panic!("idle connection {n} still open after {:?}", start.elapsed()),
        }
    }
    stop.send(true).unwrap();
    server.await.unwrap();
}
