//! `cargo bench --bench memory`: resident memory of the real `watch` binary
//! (release build) with the bench config (one restic REST target on
//! `rclone serve restic`, 127.0.0.1) at 1,000 and 10,000 channels: idle right
//! after start (fresh), idle after a 1,000-event burst, and the peak (VmHWM)
//! at start and over the whole run. Prints a table; docs/benchmarks.md
//! records the figures. Not a test: nothing here asserts a size.
//!
//! Each size runs twice: as a user starts it by hand, and with the
//! environment `contrib/systemd/chanvault.service` sets (the allocator
//! tunables), so the table shows what the shipped unit changes.
//!
//! `CHANVAULT_BENCH_SIZES=10000` runs only that row; `CHANVAULT_BENCH_PROBE=1`
//! also prints where the after-burst memory is (see `probe`; needs gdb);
//! `CHANVAULT_BENCH_HOW=unit` (or `by hand`) runs only that way of starting
//! it; `CHANVAULT_BENCH_WRAP="heaptrack -o /tmp/watch"` starts `watch` under
//! a profiler (the figures are then the profiled process's).

mod support;

use std::time::Duration;

use support::{BenchResult, Setup, WatchProcess, churn_burst, machine, wait_final_on_target};

/// How long the start-up or the burst's final state may take to reach the target.
const SETTLE_LIMIT: Duration = Duration::from_secs(180);
/// Quiet time before an "idle" reading: the allocator's chance to give back.
const IDLE_WAIT: Duration = Duration::from_secs(10);

struct Row {
    channels: usize,
    fresh_rss: u64,
    start_peak: u64,
    burst_settle: Option<f64>,
    after_rss: u64,
    peak: u64,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The `Environment=` lines of the shipped unit.
fn unit_environment() -> BenchResult<Vec<(String, String)>> {
    let unit = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/systemd/chanvault.service"
    );
    let text = std::fs::read_to_string(unit).map_err(|e| format!("{unit}: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

async fn measure(channels: usize, env: &[(String, String)]) -> BenchResult<Row> {
    let s = Setup::new().await?;
    let sim = s.sim.clone();
    tokio::task::spawn_blocking(move || sim.open_channels_batch(channels))
        .await
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let watch = WatchProcess::start_with(&s, env).await?;
    if wait_final_on_target(&s, started, SETTLE_LIMIT)
        .await?
        .is_none()
    {
        let log = std::fs::read_to_string(&watch.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "the baseline never reached the target; watch's log ends:\n{}",
            tail.join("\n")
        ));
    }
    tokio::time::sleep(IDLE_WAIT).await;
    let (fresh_rss, start_peak) = watch.rss_kib();

    let (t0, _) = churn_burst(&s).await?;
    let burst_settle = wait_final_on_target(&s, t0, SETTLE_LIMIT).await?;
    tokio::time::sleep(IDLE_WAIT).await;
    let (after_rss, peak) = watch.rss_kib();
    if std::env::var("CHANVAULT_BENCH_PROBE").is_ok() {
        probe(watch.pid()).await;
    }
    watch.stop();
    Ok(Row {
        channels,
        fresh_rss,
        start_peak,
        burst_settle,
        after_rss,
        peak,
    })
}

/// Where the after-burst memory is (`CHANVAULT_BENCH_PROBE=1`): the RSS
/// split into anonymous and file-backed pages, the thread count, and the RSS
/// once glibc has given back every free page it can (`malloc_trim(0)`, called
/// in the process through gdb): what is left is held by the program.
async fn probe(pid: u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    for l in status
        .lines()
        .filter(|l| l.starts_with("Threads") || l.starts_with("Rss"))
    {
        println!("probe: {l}");
    }
    let o = std::process::Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "call (int)malloc_trim(0)",
        ])
        .output();
    println!("probe: gdb ok={}", o.is_ok_and(|o| o.status.success()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = support::proc_field(pid, "VmRSS:").unwrap_or(0);
    println!("probe: after malloc_trim VmRSS {rss} KiB");
}

async fn run() -> BenchResult<()> {
    chanvault::lnd::install_crypto_provider();
    println!("machine: {}", machine());
    let only: Option<Vec<usize>> = std::env::var("CHANVAULT_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    let unit = unit_environment()?;
    println!(
        "\n{:>8} {:>9} | {:>11} {:>11} | {:>12} {:>14} | {:>9}",
        "channels", "env", "fresh idle", "start peak", "burst final", "after-burst", "peak"
    );
    for channels in [1000, 10000] {
        if only.as_ref().is_some_and(|o| !o.contains(&channels)) {
            continue;
        }
        let how = std::env::var("CHANVAULT_BENCH_HOW").ok();
        for (label, env) in [("by hand", &[][..]), ("unit", &unit[..])] {
            if how.as_deref().is_some_and(|h| h != label) {
                continue;
            }
            let r = measure(channels, env).await?;
            println!(
                "{:>8} {label:>9} | {:>7.1} MiB {:>7.1} MiB | {:>11} {:>10.1} MiB | {:>5.1} MiB",
                r.channels,
                mib(r.fresh_rss),
                mib(r.start_peak),
                r.burst_settle
                    .map_or("not reached".to_string(), |s| format!("{s:.1} s")),
                mib(r.after_rss),
                mib(r.peak),
            );
        }
    }
    Ok(())
}

fn main() {
    support::main_with("memory", 2, run);
}
