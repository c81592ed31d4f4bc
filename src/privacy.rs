//! Opt-in traffic shaping for targets with `privacy = "padded"`: the size
//! an observer sees is rounded up to a bucket, uploads wait a random while,
//! and cover uploads (the current state re-sealed) come at random times.
//! What this hides and what it cannot is in `docs/privacy.md`.
//!
//! Only the sampling and the arithmetic live here; the targets write the
//! padding (`sink::dir`, `sink::restic`), the delivery worker waits
//! (`deliver`), and `watch` schedules covers through the pipeline.

use std::time::Duration;

use rand::{Rng, RngCore};

/// The smallest bucket: below it every backup looks the same. 64 KiB holds
/// a node of a few hundred channels.
pub const PAD_FLOOR: u64 = 64 * 1024;

/// The size an observer should see for `len` bytes: the next power of two,
/// at least [`PAD_FLOOR`].
pub fn bucket(len: u64) -> u64 {
    len.max(PAD_FLOOR)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX)
}

/// How many padding bytes bring `len` up to its bucket.
pub fn padding_len(len: u64) -> u64 {
    bucket(len) - len
}

/// `n` random bytes. Random, not zeros: restic deduplicates equal blobs, so
/// zeros would be uploaded once and then cost nothing, and the size would
/// track the backup again.
pub fn padding(n: u64) -> Vec<u8> {
    let mut v = vec![0u8; usize::try_from(n).unwrap_or(0)];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// A delay drawn uniformly from 0 to `max` (inclusive).
pub fn jitter(max: Duration, rng: &mut impl Rng) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_nanos(rng.gen_range(0..=u64::try_from(max.as_nanos()).unwrap_or(u64::MAX)))
}

/// The longest gap [`cover_gap`] returns: 20 means (the chance of a longer
/// exponential gap is e^-20), so that a tiny `u` cannot mean "never".
pub const COVER_GAP_CAP_MEANS: f64 = 20.0;

/// The gap to the next cover upload: exponentially distributed with `mean`
/// (a Poisson process, so a cover's time says nothing about the previous
/// one), capped at [`COVER_GAP_CAP_MEANS`] means.
pub fn cover_gap(mean: Duration, rng: &mut impl Rng) -> Duration {
    // 1 - u is in (0, 1]: its logarithm is finite.
    let u: f64 = rng.r#gen::<f64>();
    let x = (-(1.0 - u).ln()).min(COVER_GAP_CAP_MEANS);
    Duration::from_secs_f64(mean.as_secs_f64() * x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn buckets_are_powers_of_two_above_the_floor() {
        assert_eq!(bucket(0), PAD_FLOOR);
        assert_eq!(bucket(1), PAD_FLOOR);
        assert_eq!(bucket(PAD_FLOOR), PAD_FLOOR);
        assert_eq!(bucket(PAD_FLOOR + 1), 2 * PAD_FLOOR);
        assert_eq!(bucket(300_000), 512 * 1024);
        for len in [0, 5, 65_535, 65_537, 1 << 20, (1 << 20) + 3] {
            let b = bucket(len);
            assert!(b >= len && b.is_power_of_two() && b >= PAD_FLOOR);
            assert!(
                b == PAD_FLOOR || b / 2 < len,
                "{len} -> {b} is not the least bucket"
            );
            assert_eq!(padding_len(len) + len, b);
        }
        assert_eq!(padding(10).len(), 10);
        assert_ne!(padding(32), padding(32), "padding is random");
    }

    #[test]
    fn jitter_stays_within_zero_and_max() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        assert_eq!(jitter(Duration::ZERO, &mut rng), Duration::ZERO);
        let max = Duration::from_secs(30);
        let draws: Vec<_> = (0..10_000).map(|_| jitter(max, &mut rng)).collect();
        assert!(draws.iter().all(|d| *d <= max));
        // Spread over the range, not stuck at one end.
        assert!(draws.iter().any(|d| *d < max / 10));
        assert!(draws.iter().any(|d| *d > max * 9 / 10));
    }

    #[test]
    fn cover_gaps_are_exponential_with_the_mean_and_bounded() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mean = Duration::from_secs(3600);
        let n = 20_000;
        let gaps: Vec<f64> = (0..n)
            .map(|_| cover_gap(mean, &mut rng).as_secs_f64())
            .collect();
        let cap = mean.as_secs_f64() * COVER_GAP_CAP_MEANS;
        assert!(gaps.iter().all(|g| *g >= 0.0 && *g <= cap));
        let avg = gaps.iter().sum::<f64>() / n as f64;
        assert!((avg / 3600.0 - 1.0).abs() < 0.05, "mean {avg}");
        // Exponential: about e^-1 of the gaps are longer than the mean.
        let longer = gaps.iter().filter(|g| **g > 3600.0).count() as f64 / n as f64;
        assert!((longer - (-1f64).exp()).abs() < 0.02, "{longer}");
    }
}
