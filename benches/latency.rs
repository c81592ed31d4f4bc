//! `cargo bench --bench latency`: event → spooled and event → committed in a
//! restic REST repository (rclone serve restic on 127.0.0.1) at 1, 100, 1000
//! and 10000 channels, next to the stock per-event pipeline
//! (`age -R … | restic backup --stdin`); a 1000-event burst; idle RSS/CPU of
//! the real `watch`. Prints a table; docs/benchmarks.md records the figures.
//!
//! Needs the Debian packages restic, rclone and age. Not a test: nothing here
//! asserts a time.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chanvault::config::Config;
use chanvault::metrics::Metrics;
use chanvault::scb::fingerprint;
use chanvault::sim::{SimOptions, Simulator};
use chanvault::sink::restic::ResticTarget;
use chanvault::watch::Agent;

const PASSWORD: &str = "bench-repository-password";
/// Longest any single wait may take before the bench gives up on it.
const WAIT_LIMIT: Duration = Duration::from_secs(120);
const IDLE_SAMPLE: Duration = Duration::from_secs(10);
/// `delivery.min_interval_ms`, left at its default in the bench config.
const MIN_INTERVAL: Duration = Duration::from_millis(chanvault::config::DEFAULT_MIN_INTERVAL_MS);
/// How long the burst's final state may take to reach the target.
const BURST_LIMIT: Duration = Duration::from_secs(60);

type BenchResult<T> = Result<T, String>;

fn free_port() -> BenchResult<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// `rclone serve restic` on 127.0.0.1, killed on drop.
struct Rclone(Child);

impl Rclone {
    fn start(root: &Path, port: u16) -> BenchResult<Self> {
        let child = Command::new("rclone")
            .args(["serve", "restic", "--addr", &format!("127.0.0.1:{port}")])
            .arg(root)
            .env("RCLONE_CONFIG", root.with_extension("conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("rclone: {e} (apt-get install rclone)"))?;
        let r = Rclone(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if start.elapsed() > Duration::from_secs(20) {
                return Err("rclone did not listen".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(r)
    }
}

impl Drop for Rclone {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sum of the samples of `metric` whose labels contain `label`.
fn counter(m: &Metrics, metric: &str, label: &str) -> f64 {
    m.render()
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(metric) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

fn stored(m: &Metrics) -> f64 {
    counter(m, "snapshots", "outcome=\"stored\"")
}

fn uploads(m: &Metrics) -> f64 {
    counter(m, "target_delivery_attempts", "offsite")
        - counter(m, "target_delivery_failures", "offsite")
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) -> BenchResult<()> {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > WAIT_LIMIT {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(())
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

struct Setup {
    dir: tempfile::TempDir,
    sim: Simulator,
    config: PathBuf,
    identity: PathBuf,
    recipient_file: PathBuf,
    rest_port: u16,
    _rclone: Rclone,
}

impl Setup {
    async fn new() -> BenchResult<Self> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let sim = Simulator::start(SimOptions::new(dir.path().join("lnd")))
            .await
            .map_err(|e| e.to_string())?;
        let identity = dir.path().join("identity.txt");
        let recipient =
            chanvault::seal::write_new_identity(&identity).map_err(|e| e.to_string())?;
        let recipient_file = dir.path().join("recipients.txt");
        std::fs::write(&recipient_file, format!("{recipient}\n")).map_err(|e| e.to_string())?;
        chanvault::fsutil::create_secret_file(
            &dir.path().join("restic-password"),
            format!("{PASSWORD}\n").as_bytes(),
        )
        .map_err(|e| e.to_string())?;
        let rest_root = dir.path().join("rest");
        std::fs::create_dir_all(&rest_root).map_err(|e| e.to_string())?;
        let rest_port = free_port()?;
        let rclone = Rclone::start(&rest_root, rest_port)?;
        let config = dir.path().join("chanvault.toml");
        let text = format!(
            r#"state_dir = "state"
[lnd]
address = "{addr}"
tls_cert = "{cert}"
macaroon = "{mac}"
timeout_seconds = 30
reconnect_max_seconds = 1
[backup]
schedule = "0 0 0 1 1 * 2099"
keep = 10
[seal]
recipients = ["{recipient}"]
[delivery]
retry_initial_seconds = 1
retry_max_seconds = 1
[metrics]
listen = "127.0.0.1:0"
[[target]]
name = "offsite"
kind = "restic"
repository = "rest:http://127.0.0.1:{rest_port}/chanvault/"
password_file = "restic-password"
"#,
            addr = sim.addr(),
            cert = sim.tls_cert_path().display(),
            mac = sim.offchain_read_macaroon_path().display(),
        );
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let s = Self {
            dir,
            sim,
            config,
            identity,
            recipient_file,
            rest_port,
            _rclone: rclone,
        };
        chanvault::sink::unblock(&s.restic_target()?, ResticTarget::init_blocking)
            .await
            .map_err(|e| e.to_string())?;
        s.stock(&["init"], None)?;
        Ok(s)
    }

    fn load(&self) -> BenchResult<Config> {
        Config::load(&self.config).map_err(|e| e.to_string())
    }

    fn restic_target(&self) -> BenchResult<ResticTarget> {
        let cfg = self.load()?;
        cfg.targets
            .iter()
            .find_map(|t| match t {
                chanvault::config::TargetConfig::Restic(r) => Some(ResticTarget::new(r)),
                _ => None,
            })
            .ok_or_else(|| "no restic target".to_string())
    }

    /// Stock restic on the `stock` repository of the same REST server.
    fn stock(&self, args: &[&str], stdin: Option<Stdio>) -> BenchResult<()> {
        let out = Command::new("restic")
            .arg("-r")
            .arg(format!("rest:http://127.0.0.1:{}/stock/", self.rest_port))
            .arg("--password-file")
            .arg(self.dir.path().join("restic-password"))
            .args(["--no-cache", "--quiet"])
            .args(args)
            .env_remove("RESTIC_PASSWORD")
            .env_remove("RESTIC_REPOSITORY")
            .stdin(stdin.unwrap_or(Stdio::null()))
            .output()
            .map_err(|e| format!("restic: {e} (apt-get install restic)"))?;
        if !out.status.success() {
            return Err(format!(
                "restic {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// One event the way a user scripts it today:
    /// `age -R recipients < channel.backup | restic backup --stdin …`.
    fn stock_pipeline(&self, plain: &Path) -> BenchResult<Duration> {
        let start = Instant::now();
        let mut age = Command::new("age")
            .arg("-R")
            .arg(&self.recipient_file)
            .arg(plain)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("age: {e} (apt-get install age)"))?;
        let pipe = age.stdout.take().ok_or("age stdout")?;
        self.stock(
            &[
                "backup",
                "--stdin",
                "--stdin-filename",
                "channel.backup.age",
            ],
            Some(Stdio::from(pipe)),
        )?;
        age.wait().map_err(|e| e.to_string())?;
        Ok(start.elapsed())
    }
}

struct Row {
    channels: usize,
    reps: usize,
    spooled: (f64, f64),
    offsite: (f64, f64),
    stock: (f64, f64),
    sealed_kib: f64,
    /// p50 of the simulator's own event time (inside t0 → spooled).
    lnd_p50: f64,
}

async fn run_size(
    s: &Setup,
    metrics: &Arc<Metrics>,
    spool: &Arc<chanvault::spool::Spool>,
    channels: usize,
    reps: usize,
    stock_reps: usize,
) -> BenchResult<Row> {
    let have = s.sim.channels().len();
    if channels > have {
        let before = stored(metrics);
        // Setup, not measured: one snapshot for the whole growth. Opening
        // 9000 channels one by one is 18000 snapshots of up to 3.7 MB that
        // the simulator queues for the subscriber (as lnd's unbounded
        // subscription queue would); the bench was OOM-killed that way.
        let sim = s.sim.clone();
        tokio::task::spawn_blocking(move || sim.open_channels_batch(channels - have))
            .await
            .map_err(|e| e.to_string())?;
        let want = uploads(metrics) + 1.0;
        wait_until("grown set delivered", || {
            stored(metrics) > before && uploads(metrics) >= want
        })
        .await?;
        // Let any stray retry drain.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut spooled = Vec::new();
    let mut offsite = Vec::new();
    let mut lnd = Vec::new();
    for i in 0..reps {
        let st0 = stored(metrics);
        let up0 = uploads(metrics);
        let t0 = Instant::now();
        // Alternate open/close so the set stays at `channels`.
        if i % 2 == 0 {
            s.sim.open_channel();
        } else if let Some(cp) = s.sim.channels().iter().next_back().cloned() {
            s.sim.close_channel(&cp);
        }
        // LND's own share of t0 → spooled: building, encrypting and sending
        // the event's snapshots, and saving its state.
        lnd.push(t0.elapsed().as_secs_f64() * 1e3);
        wait_until("spooled", || stored(metrics) > st0).await?;
        spooled.push(t0.elapsed().as_secs_f64() * 1e3);
        wait_until("committed", || uploads(metrics) > up0).await?;
        offsite.push(t0.elapsed().as_secs_f64() * 1e3);
        // Each event stands alone: the worker is idle and past
        // delivery.min_interval_ms (default 500) before the next one.
        tokio::time::sleep(MIN_INTERVAL + Duration::from_millis(20)).await;
    }
    // The newest plaintext, for the stock pipeline.
    let j = spool.journal().map_err(|e| e.to_string())?;
    let newest = j.newest().ok_or("empty spool")?;
    let sealed = spool.read(&newest.id).map_err(|e| e.to_string())?;
    let ids = chanvault::seal::Identities::from_file(&s.identity).map_err(|e| e.to_string())?;
    let plain = chanvault::seal::open(&ids, &sealed).map_err(|e| e.to_string())?;
    let plain_path = s.dir.path().join("channel.backup");
    std::fs::write(&plain_path, plain.expose()).map_err(|e| e.to_string())?;
    let mut stock = Vec::new();
    for _ in 0..stock_reps {
        stock.push(s.stock_pipeline(&plain_path)?.as_secs_f64() * 1e3);
    }
    let _ = std::fs::remove_file(&plain_path);
    Ok(Row {
        channels,
        reps,
        spooled: (pct(&mut spooled, 0.5), pct(&mut spooled, 0.99)),
        offsite: (pct(&mut offsite, 0.5), pct(&mut offsite, 0.99)),
        stock: (pct(&mut stock, 0.5), pct(&mut stock, 0.99)),
        sealed_kib: sealed.len() as f64 / 1024.0,
        lnd_p50: pct(&mut lnd, 0.5),
    })
}

/// 1000 channel events spread over one second; uploads made and time until
/// the final state is the target's newest snapshot.
async fn burst(s: &Setup, metrics: &Arc<Metrics>) -> BenchResult<(f64, f64, f64, usize)> {
    let rt = s.restic_target()?;
    let before = tokio::task::spawn_blocking(move || rt.snapshots_blocking())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
        .len();
    let up0 = uploads(metrics);
    let t0 = Instant::now();
    // Ten slices of 100 events (open, close, open, …), one every 100 ms.
    for i in 1..=10u64 {
        let sim = s.sim.clone();
        tokio::task::spawn_blocking(move || sim.churn(100))
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::sleep_until((t0 + Duration::from_millis(100 * i)).into()).await;
    }
    let events_done = t0.elapsed().as_secs_f64();
    let final_fp = fingerprint(&s.sim.channels());
    let want_tag = format!("fp:{}", &final_fp[..12]);
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let rt = s.restic_target()?;
        let latest = tokio::task::spawn_blocking(move || rt.latest_blocking())
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(Some((info, _))) = &latest {
            if info.tags.contains(&want_tag) {
                break;
            }
            last = format!("{:?}", info.tags);
        }
        if start.elapsed() > BURST_LIMIT {
            // A finding, not a bench failure: report it and go on.
            println!(
                "burst: final state not on the target after {BURST_LIMIT:?}; newest tags {last}"
            );
            return Ok((uploads(metrics) - up0, events_done, f64::NAN, 0));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let settled = t0.elapsed().as_secs_f64();
    let rt = s.restic_target()?;
    let after = tokio::task::spawn_blocking(move || rt.snapshots_blocking())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
        .len();
    Ok((
        uploads(metrics) - up0,
        events_done,
        settled,
        after.saturating_sub(before),
    ))
}

fn proc_field(pid: u32, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// RSS (KiB) and CPU (%) of an idle real `watch` holding `channels` channels.
async fn idle_watch(s: &Setup) -> BenchResult<(u64, u64, f64)> {
    let log = s.dir.path().join("watch.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chanvault"))
        .args(["watch", "--config"])
        .arg(&s.config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id();
    let start = Instant::now();
    let ready = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("connected to LND") {
            break true;
        }
        if start.elapsed() > Duration::from_secs(60) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Let start-up work (export, verify, any catch-up upload) finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c0 = cpu_ticks(pid).unwrap_or(0);
    let t0 = Instant::now();
    tokio::time::sleep(IDLE_SAMPLE).await;
    let c1 = cpu_ticks(pid).unwrap_or(0);
    let rss = proc_field(pid, "VmRSS:").unwrap_or(0);
    let hwm = proc_field(pid, "VmHWM:").unwrap_or(0);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    if !ready {
        return Err(format!("watch did not connect: {log:?}"));
    }
    let hz = 100.0; // USER_HZ on Linux
    let cpu = (c1.saturating_sub(c0)) as f64 / hz / t0.elapsed().as_secs_f64() * 100.0;
    Ok((rss, hwm, cpu))
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim())
        .to_string();
    let n = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.to_string()))
        .unwrap_or_default();
    format!("nproc={n}; cpu={model}; {mem}")
}

async fn run() -> BenchResult<()> {
    chanvault::lnd::install_crypto_provider();
    println!("machine: {}", machine());
    let s = Setup::new().await?;
    s.sim.open_channel();
    let agent = Agent::new(s.load()?).map_err(|e| e.to_string())?;
    let metrics = agent.metrics().clone();
    let spool = agent.spool().clone();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(agent.watch(rx));
    wait_until("baseline delivered", || uploads(&metrics) >= 1.0).await?;

    println!(
        "\n{:>8} {:>5} {:>9} | {:>9} {:>9} | {:>10} {:>10} | {:>10} {:>10} | {:>8}",
        "channels",
        "reps",
        "sealed",
        "spool p50",
        "spool p99",
        "off p50",
        "off p99",
        "stock p50",
        "stock p99",
        "stock/cv"
    );
    let mut rows = Vec::new();
    // CHANVAULT_BENCH_SIZES=1000 (comma-separated) runs only those rows, for profiling.
    let only: Option<Vec<usize>> = std::env::var("CHANVAULT_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    for (channels, reps, stock_reps) in [(1, 50, 5), (100, 50, 5), (1000, 50, 5), (10000, 10, 3)] {
        if only.as_ref().is_some_and(|o| !o.contains(&channels)) {
            continue;
        }
        let r = run_size(&s, &metrics, &spool, channels, reps, stock_reps).await?;
        println!(
            "{:>8} {:>5} {:>7.1}Ki | {:>7.2}ms {:>7.2}ms | {:>8.2}ms {:>8.2}ms | {:>8.1}ms {:>8.1}ms | {:>7.1}x",
            r.channels,
            r.reps,
            r.sealed_kib,
            r.spooled.0,
            r.spooled.1,
            r.offsite.0,
            r.offsite.1,
            r.stock.0,
            r.stock.1,
            r.stock.0 / r.offsite.0
        );
        println!(
            "{:>8} (the simulated LND's own event time, inside t0 → spooled: p50 {:.2}ms)",
            "", r.lnd_p50
        );
        rows.push(r);
        if (100..=1000).contains(&channels)
            && std::env::var_os("CHANVAULT_BENCH_NO_BURST").is_none()
        {
            // Bursts at 100 and 1000 channels, each waited out before the next
            // row: the final state is on the target before it starts.
            let (up, events, settled, snaps) = burst(&s, &metrics).await?;
            println!(
                "burst @{} channels: 1000 events in {events:.2}s; uploads={up} (new snapshots={snaps}); \
                 final state on target {settled:.2}s after the first event",
                s.sim.channels().len()
            );
        }
    }
    let _ = tx.send(true);
    let _ = task.await;

    // Idle watch, real binary, at the size the table ended with.
    let (rss, hwm, cpu) = idle_watch(&s).await?;
    println!(
        "idle watch @{} channels: RSS {:.1} MiB (peak {:.1} MiB), CPU {cpu:.2}% over {}s",
        s.sim.channels().len(),
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        IDLE_SAMPLE.as_secs()
    );
    Ok(())
}

fn main() {
    // CHANVAULT_BENCH_LOG=debug shows chanvault's per-stage timings (pipeline, delivery).
    if let Ok(level) = std::env::var("CHANVAULT_BENCH_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
                "chanvault={level}"
            )))
            .with_writer(std::io::stderr)
            .try_init();
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful.
    // Only run the full bench when invoked as a bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("latency: run with `cargo bench --bench latency`");
        return;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latency: cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run()) {
        eprintln!("latency: {e}");
        std::process::exit(1);
    }
}
