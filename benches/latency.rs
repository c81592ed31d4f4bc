//! `cargo bench --bench latency`: event → spooled and event → committed in a
//! restic REST repository (rclone serve restic on 127.0.0.1) at 1, 100, 1000
//! and 10000 channels, next to the stock per-event pipeline
//! (`age -R … | restic backup --stdin`); a 1000-event burst; idle RSS/CPU of
//! the real `watch`. Prints a table; docs/benchmarks.md records the figures.
//!
//! Needs the Debian packages restic, rclone and age. Not a test: nothing here
//! asserts a time.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chanvault::metrics::{Metrics, Milestones};
use chanvault::watch::Agent;
use support::{
    BenchResult, Setup, WatchProcess, churn_burst, cpu_ticks, machine, pct, stored, uploads,
    wait_final_on_target, wait_until,
};

/// Counts every allocation of the process (chanvault and the simulated LND
/// alike) for the per-event allocation figures.
#[global_allocator]
static ALLOC: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

const IDLE_SAMPLE: Duration = Duration::from_secs(10);
/// `delivery.min_interval_ms`, left at its default in the bench config.
const MIN_INTERVAL: Duration = Duration::from_millis(chanvault::config::DEFAULT_MIN_INTERVAL_MS);
/// How long the burst's final state may take to reach the target.
const BURST_LIMIT: Duration = Duration::from_secs(60);

struct Row {
    channels: usize,
    reps: usize,
    spooled: (f64, f64),
    offsite: (f64, f64),
    /// Offsite p50 of the opens (one snapshot in the event) and of the
    /// closes (two at once): the row's p50 sits between the two.
    offsite_by_kind: (f64, f64),
    stock: (f64, f64),
    sealed_kib: f64,
    /// p50 of the simulator's own time before it hands the snapshot over
    /// (not in t0 → spooled), and of its whole event call (its second
    /// snapshot and state save run beside chanvault's work).
    lnd_before_p50: f64,
    lnd_call_p50: f64,
    /// p50 bytes and allocations per event, hand-off to delivered, whole
    /// process.
    alloc_bytes_p50: f64,
    allocs_p50: f64,
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
    }
    // The first event stands alone too: a delivery (the baseline, the grown
    // set, the burst) may have started less than delivery.min_interval_ms
    // ago, and the worker would rightly wait out the rest. Before this wait
    // the first event of every row paid 200-450 ms of pacing, and with 50
    // events that one was the p99. The grown set comes right after the
    // previous delivery, so the pacing took it for the start of a burst and
    // stretched its ceiling: the first event then waited for the events to
    // pause (150 ms) and was the p99 again. The pacing is at rest once the
    // widest ceiling has passed.
    tokio::time::sleep(MIN_INTERVAL * chanvault::DELIVERY_MAX_STRETCH + Duration::from_millis(20))
        .await;
    let mut spooled = Vec::new();
    let mut offsite = Vec::new();
    let (mut opens, mut closes) = (Vec::new(), Vec::new());
    let mut lnd_before = Vec::new();
    let mut lnd_call = Vec::new();
    let mut alloc_bytes = Vec::new();
    let mut allocs = Vec::new();
    let mut seen = metrics.milestones();
    for i in 0..reps {
        let before = *seen.borrow_and_update();
        let _ = s.sim.take_handoff();
        let region = stats_alloc::Region::new(ALLOC);
        let start = Instant::now();
        // Its OpenChannelEvent comes below, after the delivery.
        let pending = channel_event(&s.sim, i);
        lnd_call.push(ms(start.elapsed()));
        // t0: LND hands the event's first snapshot (the new channel set) to
        // the stream. What it did before is LND's time, not chanvault's.
        let (t0, _) = s
            .sim
            .take_handoff()
            .ok_or("the simulator sent no snapshot")?;
        lnd_before.push(ms(t0 - start));
        // The agent stamps each milestone itself: no polling in the measure.
        let m = wait_milestone(&mut seen, |m| {
            m.stored > before.stored && m.delivered > before.delivered
        })
        .await?;
        let used = region.change();
        alloc_bytes.push((used.bytes_allocated as f64) + used.bytes_reallocated.max(0) as f64);
        allocs.push(used.allocations as f64 + used.reallocations as f64);
        let at = |i: Option<Instant>| i.map_or(f64::NAN, |i| ms(i.saturating_duration_since(t0)));
        spooled.push(at(m.stored_at));
        offsite.push(at(m.delivered_at));
        if pending.is_some() {
            &mut opens
        } else {
            &mut closes
        }
        .push(at(m.delivered_at));
        if std::env::var_os("CHANVAULT_BENCH_EVENTS").is_some() {
            // One line per event, to match a slow one with the debug log
            // and a scheduler trace by its wall-clock time.
            eprintln!(
                "event {i} at {}: spooled {:.2}ms, offsite {:.2}ms",
                chrono::Utc::now() - chrono::Duration::from_std(t0.elapsed()).unwrap_or_default(),
                spooled[spooled.len() - 1],
                offsite[offsite.len() - 1]
            );
        }
        if let Some(cp) = pending {
            s.sim.confirm_channel(&cp);
        }
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
        offsite_by_kind: (pct(&mut opens, 0.5), pct(&mut closes, 0.5)),
        stock: (pct(&mut stock, 0.5), pct(&mut stock, 0.99)),
        sealed_kib: sealed.len() as f64 / 1024.0,
        lnd_before_p50: pct(&mut lnd_before, 0.5),
        lnd_call_p50: pct(&mut lnd_call, 0.5),
        alloc_bytes_p50: pct(&mut alloc_bytes, 0.5),
        allocs_p50: pct(&mut allocs, 0.5),
    })
}

/// Each step of an event alone at this row's size, and the row against
/// their sum (see `support::floor`).
async fn print_floor(s: &Setup, spool: &chanvault::spool::Spool, r: &Row) -> BenchResult<()> {
    let f = support::floor::measure(s, &spool.journal_path()).await?;
    println!(
        "{:>8} (floor, each step alone, p50: verify {:.2} | seal+write {:.2} beside it | commit {:.2} | \
         journal write {:.2} beside it | journal commit {:.2} | {} x REST {:.2} | upload {:.2} | \
         hashes {:.2} = {:.2}ms; offsite p50 is {:.1}x that. Export {:.2}ms, less LND's packing: \
         stream ~{:.2}ms)",
        "",
        f.verify,
        f.seal_write,
        f.commit,
        f.journal_write,
        f.journal_commit,
        support::floor::REQUESTS_IN_A_ROW,
        support::floor::REQUESTS_IN_A_ROW * f.rtt,
        f.upload,
        f.hashes,
        f.sum(),
        r.offsite.0 / f.sum(),
        f.export,
        (f.export - r.lnd_before_p50).max(0.0)
    );
    Ok(())
}

/// Event `i` of a row: opens and closes alternate so the set keeps its size.
/// An open is lnd's PendingOpenChannelEvent, one snapshot with the new
/// channel; its OpenChannelEvent (a second snapshot, same set) comes when
/// the funding confirms, blocks later, so the caller confirms the channel
/// returned once the event is delivered. A cooperative close sends its two
/// (Closed, FullyResolved) together.
fn channel_event(sim: &chanvault::sim::Simulator, i: usize) -> Option<chanvault::scb::ChanPoint> {
    if i.is_multiple_of(2) {
        return Some(sim.open_pending_channel());
    }
    if let Some(cp) = sim.channels().iter().next_back().cloned() {
        sim.close_channel(&cp);
    }
    None
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Wait until the agent's milestones satisfy `done`; the milestones then.
async fn wait_milestone(
    seen: &mut tokio::sync::watch::Receiver<Milestones>,
    mut done: impl FnMut(&Milestones) -> bool,
) -> BenchResult<Milestones> {
    let deadline = tokio::time::Instant::now() + support::WAIT_LIMIT;
    loop {
        let now = *seen.borrow_and_update();
        if done(&now) {
            return Ok(now);
        }
        match tokio::time::timeout_at(deadline, seen.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err("the agent stopped".into()),
            Err(_) => {
                return Err("timed out waiting for the event to be spooled and delivered".into());
            }
        }
    }
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
    let (t0, events_done) = churn_burst(s).await?;
    let Some(settled) = wait_final_on_target(s, t0, BURST_LIMIT).await? else {
        return Ok((uploads(metrics) - up0, events_done, f64::NAN, 0));
    };
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

/// RSS (KiB) and CPU (%) of an idle real `watch` holding `channels` channels,
/// then the CPU its events cost (see [`cpu_per_event`]).
async fn idle_watch(s: &Setup) -> BenchResult<(u64, u64, f64, CpuSplit)> {
    let watch = WatchProcess::start(s).await?;
    // Let start-up work (export, verify, any catch-up upload) finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c0 = cpu_ticks(watch.pid()).unwrap_or(0);
    let t0 = Instant::now();
    tokio::time::sleep(IDLE_SAMPLE).await;
    let c1 = cpu_ticks(watch.pid()).unwrap_or(0);
    let (rss, hwm) = watch.rss_kib();
    let cpu = ticks_ms(c1.saturating_sub(c0)) / 10.0 / t0.elapsed().as_secs_f64();
    let split = cpu_per_event(s, &watch).await?;
    watch.stop();
    Ok((rss, hwm, cpu, split))
}

/// Events for the CPU split, and the time each is given to be delivered
/// before the next (an event takes ~0.3 s at 10000 channels).
const CPU_EVENTS: usize = 20;
const CPU_EVENT_GAP: Duration = Duration::from_millis(1000);

/// CPU per event, in ms: the real `watch` (chanvault alone in its process)
/// and this process, where only the simulated LND works meanwhile (the bench
/// waits), for the same events as the rows: an open confirmed later, a close.
struct CpuSplit {
    chanvault: f64,
    lnd: f64,
}

async fn cpu_per_event(s: &Setup, watch: &WatchProcess) -> BenchResult<CpuSplit> {
    let me = std::process::id();
    let (w0, b0) = (cpu_ticks(watch.pid()), cpu_ticks(me));
    for i in 0..CPU_EVENTS {
        let sim = s.sim.clone();
        let pending = tokio::task::spawn_blocking(move || channel_event(&sim, i))
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::sleep(CPU_EVENT_GAP).await;
        if let Some(cp) = pending {
            s.sim.confirm_channel(&cp);
        }
    }
    tokio::time::sleep(CPU_EVENT_GAP).await;
    let (w1, b1) = (cpu_ticks(watch.pid()), cpu_ticks(me));
    let per_event = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => ticks_ms(b.saturating_sub(a)) / CPU_EVENTS as f64,
        _ => f64::NAN,
    };
    Ok(CpuSplit {
        chanvault: per_event(w0, w1),
        lnd: per_event(b0, b1),
    })
}

/// CPU ticks (USER_HZ, 100 on Linux) in ms.
fn ticks_ms(ticks: u64) -> f64 {
    ticks as f64 * 10.0
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
        // CHANVAULT_BENCH_REPS=30: more events per row, for comparing two builds.
        let reps = std::env::var("CHANVAULT_BENCH_REPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(reps);
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
            "{:>8} (offsite p50 of the opens, one snapshot each: {:.2}ms; of the closes, two \
             snapshots at once: {:.2}ms)",
            "", r.offsite_by_kind.0, r.offsite_by_kind.1
        );
        println!(
            "{:>8} (the simulated LND, not counted: {:.2}ms p50 before it hands the snapshot over; \
             {:.2}ms p50 for its whole event, beside chanvault's work)",
            "", r.lnd_before_p50, r.lnd_call_p50
        );
        println!(
            "{:>8} (allocated per event, whole process with the simulated LND: p50 {:.1} MiB in {:.0} \
             allocations, {:.1}x the sealed size)",
            "",
            r.alloc_bytes_p50 / 1048576.0,
            r.allocs_p50,
            r.alloc_bytes_p50 / (r.sealed_kib * 1024.0)
        );
        print_floor(&s, &spool, &r).await?;
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
    let (rss, hwm, cpu, split) = idle_watch(&s).await?;
    println!(
        "idle watch @{} channels: RSS {:.1} MiB (peak {:.1} MiB), CPU {cpu:.2}% over {}s",
        s.sim.channels().len(),
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        IDLE_SAMPLE.as_secs()
    );
    println!(
        "CPU per event @{} channels ({CPU_EVENTS} events, {} s apart): the real watch {:.1} ms; \
         the simulated LND (this process, the bench waiting) {:.1} ms",
        s.sim.channels().len(),
        CPU_EVENT_GAP.as_secs_f64(),
        split.chanvault,
        split.lnd
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
    support::main_with("latency", 4, run);
}
