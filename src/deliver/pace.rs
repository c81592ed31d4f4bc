//! When a worker may start its next delivery: `delivery.min_interval_ms`
//! apart at least; during a burst of channel events, as soon as the events
//! pause, and otherwise at a gap that doubles while the burst lasts.
//!
//! ```text
//! after a start at t:   t + min          floor: never earlier
//!                       t + stretch      ceiling: go with the newest state
//!   in between: go once no new backup was stored for SETTLE
//! stretch: min after a pause; doubled each time the ceiling is what
//! released the delivery (the burst goes on), up to MAX_STRETCH × min
//! ```
//!
//! A burst of 1,000 events over 7 s thus costs five uploads (0, 0.5, 1.5,
//! 3.5 s, then the final state SETTLE after the last event) instead of one
//! per interval, and the final state still reaches the target right after
//! the burst ends. The longest a target lags behind the spool during a
//! burst is the ceiling: `MAX_STRETCH` × `min_interval_ms` (4 s by default).

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// How long the pipeline must store nothing new for a burst to count as paused.
pub const SETTLE: Duration = Duration::from_millis(150);
/// The widest gap between two uploads during a burst, in `min_interval`s.
pub const MAX_STRETCH: u32 = 8;

/// What let a delivery start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Nothing to wait for: the first change after a quiet spell.
    Free,
    /// The events paused for [`SETTLE`].
    Paused,
    /// The ceiling: the burst goes on.
    Ceiling,
}

#[derive(Debug, Clone)]
pub struct Pace {
    min: Duration,
    stretch: Duration,
    last_start: Option<Instant>,
    /// What let the delivery about to start go (kept across the re-read of
    /// the journal that follows every wait).
    released: Option<Release>,
    /// The delivery about to start waited for the floor: work came within
    /// `min` of the last start, so a burst may be on.
    floor_waited: bool,
}

/// What a worker does after [`Pace::wait`].
pub enum Step {
    /// Deliver the newest pending backup now.
    Go,
    /// Time passed: read what is pending again, then ask again.
    Recheck,
    /// Shutdown was asked for while waiting.
    Shutdown,
}

impl Pace {
    pub fn new(min: Duration) -> Self {
        Self {
            min,
            stretch: min,
            last_start: None,
            released: None,
            floor_waited: false,
        }
    }

    /// With work pending: wait as the pace says (never before the floor;
    /// then until the events pause or the ceiling comes).
    pub async fn wait(
        &mut self,
        wake: &mut watch::Receiver<u64>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Step {
        let now = Instant::now();
        if let Some(floor) = self.floor()
            && floor > now
        {
            return tokio::select! {
                _ = tokio::time::sleep_until(floor) => {
                    self.floor_waited = true;
                    Step::Recheck
                }
                _ = shutdown.changed() => Step::Shutdown,
            };
        }
        if self.released.is_none()
            && let Some(ceiling) = self.ceiling()
        {
            if ceiling > now {
                let why = tokio::select! {
                    _ = tokio::time::sleep_until(ceiling) => Release::Ceiling,
                    _ = paused(wake, SETTLE) => Release::Paused,
                    _ = shutdown.changed() => return Step::Shutdown,
                };
                self.released = Some(why);
                return Step::Recheck;
            }
            if self.floor_waited {
                self.released = Some(Release::Ceiling);
            }
        }
        Step::Go
    }

    /// A delivery starts now, released by what [`Pace::wait`] saw.
    pub fn start(&mut self) {
        let why = self.released.take().unwrap_or(Release::Free);
        self.floor_waited = false;
        self.started(Instant::now(), why);
    }

    /// Before this, no delivery starts.
    pub fn floor(&self) -> Option<Instant> {
        self.last_start.map(|t| t + self.min)
    }

    /// By this, a delivery starts even while new backups keep coming.
    pub fn ceiling(&self) -> Option<Instant> {
        self.last_start.map(|t| t + self.stretch)
    }

    /// A delivery starts now, released by `why`.
    pub fn started(&mut self, now: Instant, why: Release) {
        self.stretch = match why {
            Release::Ceiling => (self.stretch * 2).min(self.min * MAX_STRETCH),
            Release::Free | Release::Paused => self.min,
        };
        self.last_start = Some(now);
    }
}

/// Returns once the pipeline has stored nothing new for `settle` (or its
/// sender is gone).
pub async fn paused(wake: &mut watch::Receiver<u64>, settle: Duration) {
    loop {
        match tokio::time::timeout(settle, wake.changed()).await {
            Err(_) | Ok(Err(_)) => return,
            Ok(Ok(())) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_doubles_while_the_burst_lasts_and_resets_after_a_pause() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut p = Pace::new(ms(500));
        assert_eq!(p.floor(), None, "the first change goes out at once");
        p.started(t0, Release::Free);
        assert_eq!(p.floor(), Some(t0 + ms(500)));
        assert_eq!(p.ceiling(), Some(t0 + ms(500)));
        let mut at = t0;
        let mut gaps = vec![];
        for _ in 0..6 {
            let next = p.ceiling().unwrap();
            gaps.push((next - at).as_millis());
            at = next;
            p.started(at, Release::Ceiling);
        }
        assert_eq!(gaps, [500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(p.floor(), Some(at + ms(500)), "the floor never moves");
        p.started(at + ms(700), Release::Paused);
        assert_eq!(p.ceiling(), Some(at + ms(1200)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_is_settle_without_a_new_backup() {
        let (tx, mut rx) = watch::channel(0u64);
        let t0 = Instant::now();
        let burst = tokio::spawn(async move {
            for i in 1..=10 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                tx.send_replace(i);
            }
            tx
        });
        paused(&mut rx, SETTLE).await;
        // The last backup came at 1.0 s; the pause is seen SETTLE later.
        assert_eq!(t0.elapsed(), Duration::from_millis(1000) + SETTLE);
        drop(burst.await.unwrap());
        // A dropped sender is a pause too (no hot loop).
        paused(&mut rx, SETTLE).await;
    }
}
