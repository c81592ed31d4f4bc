//! What an observer of one target sees over simulated weeks of channel
//! events, with `privacy = "plain"` and with `"padded"`: the sizes and the
//! gaps between uploads, and how closely uploads follow events. Uses the
//! agent's own bucket, jitter and cover sampling (`chanvault::privacy`).
//!
//! ```text
//! cargo run --release --example privacy_sim -- [--days 7] [--seed 1] [--jitter 30] [--cover-hours 6]
//! ```
//! The node: 20 channels at the start, opens as a Poisson process of 0.5 an
//! hour, closes of 0.2 an hour (a growing routing node). Each event is one
//! upload (`delivery.min_interval_ms` coalesces only bursts under a second,
//! which Poisson events of this rate almost never are). Upload size model:
//! an age header of 200 bytes, lnd's multi at 300 bytes a channel plus 100,
//! a manifest of 700 bytes (what the restic target's data pack carries).

use std::time::Duration;

use chanvault::privacy::{bucket, cover_gap, jitter};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Args {
    days: f64,
    seed: u64,
    jitter_s: u64,
    cover_h: f64,
}

fn args() -> Args {
    let mut a = Args {
        days: 7.0,
        seed: 1,
        jitter_s: 30,
        cover_h: 6.0,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for pair in v.chunks(2) {
        let val = pair.get(1).map(String::as_str).unwrap_or("");
        match pair[0].as_str() {
            "--days" => a.days = val.parse().unwrap_or(a.days),
            "--seed" => a.seed = val.parse().unwrap_or(a.seed),
            "--jitter" => a.jitter_s = val.parse().unwrap_or(a.jitter_s),
            "--cover-hours" => a.cover_h = val.parse().unwrap_or(a.cover_h),
            other => eprintln!("ignored argument {other}"),
        }
    }
    a
}

fn size_of(channels: u64) -> u64 {
    200 + 100 + 300 * channels + 700
}

/// (time in seconds, channels after the event) of each channel event.
fn events(rng: &mut StdRng, horizon: f64) -> Vec<(f64, u64)> {
    let (open, close) = (0.5 / 3600.0, 0.2 / 3600.0);
    let (mut t, mut n, mut out) = (0.0, 20u64, vec![]);
    loop {
        let rate = open + if n > 0 { close } else { 0.0 };
        t += -(1.0 - rng.r#gen::<f64>()).ln() / rate;
        if t > horizon {
            return out;
        }
        if rng.r#gen::<f64>() < open / rate {
            n += 1;
        } else {
            n -= 1;
        }
        out.push((t, n));
    }
}

fn quantiles(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!(
        "min {:.0}  p10 {:.0}  p50 {:.0}  p90 {:.0}  max {:.0}",
        q(0.0),
        q(0.1),
        q(0.5),
        q(0.9),
        q(1.0)
    )
}

/// Print what an observer sees of `uploads` (time, size), given the events.
fn report(name: &str, mut uploads: Vec<(f64, u64)>, events: &[(f64, u64)], window: f64) {
    uploads.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut sizes: Vec<u64> = uploads.iter().map(|u| u.1).collect();
    let all_sizes: Vec<f64> = sizes.iter().map(|s| *s as f64).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let gaps: Vec<f64> = uploads
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) / 60.0)
        .collect();
    // Uploads that come within `window` after some event: an observer who
    // knows event times (e.g. watches the chain) matches them up.
    let near = uploads
        .iter()
        .filter(|u| events.iter().any(|e| u.0 >= e.0 && u.0 - e.0 <= window))
        .count();
    println!("{name}:");
    println!("  uploads            {}", uploads.len());
    println!(
        "  distinct sizes     {} ({:?}…)",
        sizes.len(),
        &sizes[..sizes.len().min(4)]
    );
    println!("  size (bytes)       {}", quantiles(all_sizes));
    println!("  gap (minutes)      {}", quantiles(gaps));
    println!(
        "  within {window:.0} s after an event: {near} of {} ({:.0}%)",
        uploads.len(),
        100.0 * near as f64 / uploads.len().max(1) as f64
    );
}

fn main() {
    let a = args();
    let mut rng = StdRng::seed_from_u64(a.seed);
    let horizon = a.days * 86_400.0;
    let ev = events(&mut rng, horizon);
    let first = ev.first().map_or(20, |e| e.1);
    let last = ev.last().map_or(20, |e| e.1);
    println!(
        "{} days, {} channel events, {first} -> {last} channels (seed {})",
        a.days,
        ev.len(),
        a.seed
    );
    let plain: Vec<(f64, u64)> = ev.iter().map(|e| (e.0, size_of(e.1))).collect();
    let max = Duration::from_secs(a.jitter_s);
    let mut padded: Vec<(f64, u64)> = ev
        .iter()
        .map(|e| {
            (
                e.0 + jitter(max, &mut rng).as_secs_f64(),
                bucket(size_of(e.1)),
            )
        })
        .collect();
    let mean = Duration::from_secs_f64(a.cover_h * 3600.0);
    let mut t = 0.0;
    loop {
        t += cover_gap(mean, &mut rng).as_secs_f64();
        if t > horizon {
            break;
        }
        // The state at that time, re-sealed: its bucket.
        let n = ev
            .iter()
            .take_while(|e| e.0 <= t)
            .last()
            .map_or(20, |e| e.1);
        padded.push((t, bucket(size_of(n))));
    }
    let window = a.jitter_s.max(60) as f64;
    report("plain", plain, &ev, window);
    report(
        &format!(
            "padded (jitter {} s, covers every {} h on average)",
            a.jitter_s, a.cover_h
        ),
        padded,
        &ev,
        window,
    );
}
