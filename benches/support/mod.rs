//! What the benches share: the simulator, `rclone serve restic` on 127.0.0.1,
//! the bench config, stock restic, the real `watch` binary and /proc readings.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chanvault::config::Config;
use chanvault::metrics::Metrics;
use chanvault::sim::{SimOptions, Simulator};
use chanvault::sink::restic::ResticTarget;

pub mod floor;

pub const PASSWORD: &str = "bench-repository-password";
/// Longest any single wait may take before the bench gives up on it.
pub const WAIT_LIMIT: Duration = Duration::from_secs(120);

pub type BenchResult<T> = Result<T, String>;

pub fn free_port() -> BenchResult<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// `rclone serve restic` on 127.0.0.1, killed on drop.
pub struct Rclone(Child);

impl Rclone {
    pub fn start(root: &Path, port: u16) -> BenchResult<Self> {
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
pub fn counter(m: &Metrics, metric: &str, label: &str) -> f64 {
    m.render()
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(metric) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

pub fn stored(m: &Metrics) -> f64 {
    counter(m, "snapshots", "outcome=\"stored\"")
}

pub fn uploads(m: &Metrics) -> f64 {
    counter(m, "target_delivery_attempts", "offsite")
        - counter(m, "target_delivery_failures", "offsite")
}

pub async fn wait_until(what: &str, mut f: impl FnMut() -> bool) -> BenchResult<()> {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > WAIT_LIMIT {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(())
}

pub fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub sim: Simulator,
    pub config: PathBuf,
    pub identity: PathBuf,
    pub recipient_file: PathBuf,
    pub rest_port: u16,
    _rclone: Rclone,
}

impl Setup {
    pub async fn new() -> BenchResult<Self> {
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

    pub fn load(&self) -> BenchResult<Config> {
        Config::load(&self.config).map_err(|e| e.to_string())
    }

    pub fn restic_target(&self) -> BenchResult<ResticTarget> {
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
    pub fn stock(&self, args: &[&str], stdin: Option<Stdio>) -> BenchResult<()> {
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
    pub fn stock_pipeline(&self, plain: &Path) -> BenchResult<Duration> {
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

pub fn proc_field(pid: u32, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub fn machine() -> String {
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

/// 1000 channel events spread over one second: ten slices of 100 (open,
/// close, open, …), one every 100 ms, then one more open that makes the
/// final state new. Returns t0 and the seconds the 1000 took to send.
pub async fn churn_burst(s: &Setup) -> BenchResult<(Instant, f64)> {
    let t0 = Instant::now();
    for i in 1..=10u64 {
        let sim = s.sim.clone();
        tokio::task::spawn_blocking(move || sim.churn(100))
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::sleep_until((t0 + Duration::from_millis(100 * i)).into()).await;
    }
    let took = t0.elapsed().as_secs_f64();
    // The churn opens and closes channels in pairs, so its final channel set
    // is the one before it, which recurs after every pair: one more open
    // makes the final state one that only the last snapshot has, and a wait
    // for it on the target ends only when `watch` has read the whole burst.
    let sim = s.sim.clone();
    tokio::task::spawn_blocking(move || sim.open_channels(1))
        .await
        .map_err(|e| e.to_string())?;
    Ok((t0, took))
}

/// Seconds from `t0` until the restic target's newest snapshot holds the
/// simulator's current channel set; `None` (with a printed finding) past `limit`.
pub async fn wait_final_on_target(
    s: &Setup,
    t0: Instant,
    limit: Duration,
) -> BenchResult<Option<f64>> {
    let final_fp = chanvault::scb::fingerprint(&s.sim.channels());
    let start = Instant::now();
    let mut last = String::new();
    loop {
        // Targets publish the fingerprint keyed with the state dir's key
        // (written by `watch` at start), so it is read each time until there.
        let keyed = chanvault::signing::ManifestKeys::load(&s.dir.path().join("state"))
            .ok()
            .flatten()
            .map(|k| k.keyed_fingerprint(&final_fp));
        let want_tag = format!("fp:{}", &keyed.as_deref().unwrap_or(&final_fp)[..12]);
        let rt = s.restic_target()?;
        let latest = tokio::task::spawn_blocking(move || rt.latest_blocking())
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(Some((info, _))) = &latest {
            if info.tags.contains(&want_tag) {
                return Ok(Some(t0.elapsed().as_secs_f64()));
            }
            last = format!("{:?}", info.tags);
        }
        if start.elapsed() > limit {
            // A finding, not a bench failure: report it and go on.
            println!("burst: final state not on the target after {limit:?}; newest tags {last}");
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The real `watch` binary on the bench config, killed on drop.
pub struct WatchProcess {
    child: Option<Child>,
    pub log: PathBuf,
}

impl WatchProcess {
    /// Start it and wait until it is connected to LND.
    pub async fn start(s: &Setup) -> BenchResult<Self> {
        Self::start_with(s, &[]).await
    }

    /// [`WatchProcess::start`] with extra environment variables.
    pub async fn start_with(s: &Setup, env: &[(String, String)]) -> BenchResult<Self> {
        let log = s.dir.path().join("watch.log");
        // `CHANVAULT_BENCH_WRAP="heaptrack -o /tmp/watch"`: start `watch`
        // under that command (a profiler); the RSS figures are then the
        // wrapper's, not the binary's.
        let wrap = std::env::var("CHANVAULT_BENCH_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut command = match words.next() {
            Some(prog) => {
                let mut c = Command::new(prog);
                c.args(words).arg(env!("CARGO_BIN_EXE_chanvault"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_chanvault")),
        };
        let child = command
            .args(["watch", "--config"])
            .arg(&s.config)
            .env_remove("RUST_LOG")
            .env_remove("GLIBC_TUNABLES")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| e.to_string())?;
        let w = Self {
            child: Some(child),
            log,
        };
        w.wait_log("connected to LND", Duration::from_secs(60))
            .await?;
        Ok(w)
    }

    /// The `watch` process: the child, or under `CHANVAULT_BENCH_WRAP` the
    /// wrapper's child that runs the binary.
    pub fn pid(&self) -> u32 {
        let pid = self.child.as_ref().map_or(0, Child::id);
        let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_chanvault")).ok();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
            .find(|c| std::fs::read_link(format!("/proc/{c}/exe")).ok() == exe)
            .unwrap_or(pid)
    }

    /// Wait until the log contains `what`.
    pub async fn wait_log(&self, what: &str, limit: Duration) -> BenchResult<()> {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains(what) {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!("watch: no {what:?} in {:?}", self.log));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resident memory now and its peak so far, in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        (
            proc_field(self.pid(), "VmRSS:").unwrap_or(0),
            proc_field(self.pid(), "VmHWM:").unwrap_or(0),
        )
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(mut self) {
        let pid = self.pid();
        if let Some(mut child) = self.child.take() {
            // Wrapped: the binary, killed, so that a heap profile's "leaks"
            // are what it held at the end (no shutdown frees); the wrapper
            // then writes its output and exits.
            let signal = if pid == child.id() { "-TERM" } else { "-KILL" };
            let _ = Command::new("kill")
                .args([signal, &pid.to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for WatchProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A bench's `main`: only under `cargo bench` (which passes `--bench`; `cargo
/// test --benches` does not), on a runtime with `workers` threads; an error
/// is printed and exits 1.
pub fn main_with<F>(name: &str, workers: usize, run: impl FnOnce() -> F)
where
    F: std::future::Future<Output = BenchResult<()>>,
{
    if !std::env::args().any(|a| a == "--bench") {
        println!("{name}: run with `cargo bench --bench {name}`");
        return;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run()) {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}
