//! Delivery workers: one per target, reading the spool journal. Each retries
//! with capped exponential backoff and jitter, always sends the newest good
//! backup first, and resumes after a restart from what the journal says is
//! pending. One dead target never delays another.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::{Metrics, failure_reason};
use crate::pipeline::{PipelineError, blocking, short};
use crate::sink::{Delivery, ErrorKind, Receipt, Target, TargetError};
use crate::spool::{Pending, Spool, SpoolError};

mod pace;
pub use pace::MAX_STRETCH;
use pace::{Pace, Step};

/// Why one delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The spool could not give the backup, or record that it was delivered.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// A spool task did not finish (it panicked or was cancelled).
    #[error(transparent)]
    Task(#[from] PipelineError),
    #[error(transparent)]
    Target(#[from] TargetError),
}

impl DeliveryError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            DeliveryError::Spool(_) | DeliveryError::Task(_) => ErrorKind::Spool,
            DeliveryError::Target(e) => e.kind,
        }
    }
}

/// Capped exponential backoff with jitter (each wait is 50–100% of the step).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            step: initial,
        }
    }

    /// The next wait; doubles the step up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=half)
    }

    pub fn reset(&mut self) {
        self.step = self.initial;
    }
}

/// The one delivery attempt a target may have running. An attempt runs as a
/// task of its own (a blocking target's on a thread of its own,
/// `sink::unblock`); when it outlives its timeout it cannot be stopped, so
/// it is kept here, and no new attempt starts until it has returned: however
/// long a target hangs, it holds one thread, and retries against it cost
/// nothing but a journal line.
#[derive(Default)]
pub struct InFlight {
    running: Option<Running>,
}

struct Running {
    task: JoinHandle<Result<Receipt, TargetError>>,
    /// When the attempt started, for messages.
    started: chrono::DateTime<Utc>,
    since: tokio::time::Instant,
}

impl InFlight {
    /// Whether no attempt is running (a finished one is let go of here,
    /// with one line saying how long the target hung).
    fn free(&mut self, target: &str) -> bool {
        match &self.running {
            Some(r) if !r.task.is_finished() => false,
            Some(r) => {
                tracing::info!(
                    target,
                    after_s = r.since.elapsed().as_secs(),
                    "the hung delivery attempt returned; deliveries resume"
                );
                self.running = None;
                true
            }
            None => true,
        }
    }

    /// Wait (at shutdown) until the running attempt returns or `deadline`
    /// passes; whether none is running then.
    async fn settle(&mut self, target: &str, deadline: tokio::time::Instant) -> bool {
        if let Some(r) = &mut self.running {
            let _ = tokio::time::timeout_at(deadline, &mut r.task).await;
        }
        self.free(target)
    }

    /// The error of an attempt that was not started because one still runs.
    fn stuck(&self, target: &str) -> TargetError {
        let started = self.running.as_ref().map(|r| r.started).unwrap_or_default();
        // The same text for as long as the same attempt hangs: the worker
        // logs once per change of error, not once per retry.
        TargetError::new(
            target,
            format!(
                "stuck: the delivery attempt started at {} timed out and has not returned yet \
                 (the target hangs); no new attempt until it does",
                started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        )
        .with_kind(ErrorKind::Timeout)
    }
}

/// Deliver one pending item to one target and record the result. With an
/// attempt of this target's still running in `slot`, none is started.
pub async fn deliver_one(
    target: &Arc<dyn Target>,
    spool: &Arc<Spool>,
    metrics: &Metrics,
    p: &Pending,
    timeout: Duration,
    slot: &mut InFlight,
) -> Result<Receipt, DeliveryError> {
    let result = put_one(target, spool, p, timeout, slot).await;
    // Timed to the target's commit, not to the journal's record of it
    // after: the backup is offsite from that moment.
    if let Ok(done) = &result {
        let since = done.wall - p.record.created;
        metrics.delivered_in(target.name(), since.as_seconds_f64().max(0.0));
    }
    metrics.delivery(
        target.name(),
        result
            .as_ref()
            .map(|done| done.at)
            .map_err(|e| failure_reason(e.kind())),
    );
    result.map(|done| done.receipt)
}

/// A delivery the target committed and the spool recorded.
struct Committed {
    receipt: Receipt,
    /// When the target returned its receipt.
    at: std::time::Instant,
    wall: DateTime<Utc>,
}

async fn put_one(
    target: &Arc<dyn Target>,
    spool: &Arc<Spool>,
    p: &Pending,
    timeout: Duration,
    slot: &mut InFlight,
) -> Result<Committed, DeliveryError> {
    if !slot.free(target.name()) {
        return Err(slot.stuck(target.name()).into());
    }
    let t0 = std::time::Instant::now();
    // A new backup's bytes are in memory: no hop to a blocking thread.
    let sealed = match spool.fresh_bytes(&p.record.id) {
        Some(sealed) => sealed,
        None => {
            let (sp, id) = (spool.clone(), p.record.id.clone());
            blocking(move || sp.read_shared(&id)).await??
        }
    };
    // `p` was read from the journal just now (every caller reads what is
    // pending right before it delivers, and again after any wait), so its
    // `known_seq` is current without a second read of the journal.
    let delivery = Delivery {
        record: p.record.clone(),
        sealed,
        current: p.current,
        known_seq: p.known_seq,
    };
    let t_read = t0.elapsed();
    let (started, since) = (Utc::now(), tokio::time::Instant::now());
    let t = target.clone();
    let mut task = tokio::spawn(async move { t.deliver(&delivery).await });
    let receipt = match tokio::time::timeout(timeout, &mut task).await {
        Err(_) => {
            slot.running = Some(Running {
                task,
                started,
                since,
            });
            let message = format!(
                "delivery not finished within {}s (delivery.timeout_seconds)",
                timeout.as_secs()
            );
            return Err(TargetError::new(target.name(), message)
                .with_kind(ErrorKind::Timeout)
                .into());
        }
        Ok(Err(e)) => {
            return Err(TargetError::new(target.name(), format!("task failed: {e}")).into());
        }
        Ok(Ok(r)) => r?,
    };
    let (at, wall) = (std::time::Instant::now(), Utc::now());
    let t_target = at - t0;
    let (sp, name, id, current) = (
        spool.clone(),
        target.name().to_string(),
        p.record.id.clone(),
        p.current,
    );
    blocking(move || sp.mark_delivered(&name, &id, current)).await??;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    tracing::debug!(
        target = target.name(),
        read_ms = ms(t_read),
        target_ms = ms(t_target - t_read),
        journal_ms = ms(t0.elapsed() - t_target),
        "delivery stage times"
    );
    Ok(Committed { receipt, at, wall })
}

/// What the spool still owes `target`, read off the async threads.
async fn pending_for(spool: &Arc<Spool>, target: &str) -> Result<Vec<Pending>, DeliveryError> {
    let (sp, name) = (spool.clone(), target.to_string());
    Ok(blocking(move || sp.pending_for(&name)).await??)
}

async fn record_failure(spool: &Arc<Spool>, target: &str, error: &str, wait: Duration) {
    let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
    let (sp, name, err) = (spool.clone(), target.to_string(), error.to_string());
    match blocking(move || sp.mark_failed(&name, &err, next)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(target = target, error = %e, "cannot record delivery failure")
        }
        Err(e) => tracing::error!(target = target, error = %e, "cannot record delivery failure"),
    }
}

/// How a worker paces its target.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Retries after a failure.
    pub backoff: Backoff,
    /// Longest one delivery may take.
    pub timeout: Duration,
    /// Least time between the starts of two deliveries (see `pace`).
    pub min_interval: Duration,
    /// At shutdown, how long the worker may spend delivering what is still
    /// pending (without pacing) before it gives up and says what stays behind.
    pub flush_grace: Duration,
    /// `privacy = "padded"`: the most a delivery waits, chosen at random,
    /// once new work is seen (zero: no wait). Shutdown cuts the wait short.
    pub jitter: Duration,
}

/// The long-running worker of one target.
pub async fn run_worker(
    target: Arc<dyn Target>,
    spool: Arc<Spool>,
    metrics: Arc<Metrics>,
    mut wake: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
    pacing: Pacing,
) {
    let Pacing {
        mut backoff,
        timeout,
        min_interval,
        flush_grace,
        jitter,
    } = pacing;
    // When the randomly delayed delivery of the work seen may start; set
    // when work is first seen, cleared when it is delivered, so that a
    // stream of new backups cannot push the delivery back forever.
    let mut jitter_until: Option<tokio::time::Instant> = None;
    let name = target.name().to_string();
    let mut last_error: Option<String> = None;
    let mut pace = Pace::new(min_interval);
    let mut slot = InFlight::default();
    loop {
        if *shutdown.borrow() {
            break;
        }
        wake.mark_unchanged();
        let pending = pending_for(&spool, &name).await.unwrap_or_else(|e| {
            tracing::error!(target = %name, error = %e, "cannot read the spool journal");
            vec![]
        });
        let Some(next) = pending.first() else {
            tokio::select! {
                _ = wake.changed() => continue,
                _ = shutdown.changed() => break,
            }
        };
        // During a burst: never before the floor; then as soon as the
        // events pause, or at the ceiling; and send whatever is newest then.
        match pace.wait(&mut wake, &mut shutdown).await {
            Step::Go => {}
            Step::Recheck => continue,
            Step::Shutdown => break,
        }
        if !jitter.is_zero() {
            let due = *jitter_until.get_or_insert_with(|| {
                tokio::time::Instant::now()
                    + crate::privacy::jitter(jitter, &mut rand::thread_rng())
            });
            if due > tokio::time::Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => continue,
                    _ = shutdown.changed() => break,
                }
            }
        }
        pace.start();
        match deliver_one(&target, &spool, &metrics, next, timeout, &mut slot).await {
            Ok(receipt) => {
                if last_error.take().is_some() {
                    tracing::info!(target = %name, "target reachable again");
                }
                tracing::info!(
                    target = %name,
                    backup = short(&next.record.id),
                    channels = next.record.channels,
                    current = next.current,
                    location = %receipt.location,
                    "delivered"
                );
                backoff.reset();
                jitter_until = None;
            }
            Err(e) => {
                let e = e.to_string();
                let wait = backoff.next_delay();
                // One line per change of state, not per retry.
                if last_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(target = %name, error = %e, "delivery failed; retrying with backoff");
                    last_error = Some(e.clone());
                } else {
                    tracing::debug!(target = %name, error = %e, wait_ms = wait.as_millis() as u64, "delivery failed again");
                }
                record_failure(&spool, &name, &e, wait).await;
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {},
                    _ = shutdown.changed() => break,
                }
            }
        }
    }
    let deadline = tokio::time::Instant::now() + flush_grace;
    flush(&target, &spool, &metrics, timeout, deadline, &mut slot).await;
}

/// At shutdown: deliver what is pending now, without pacing, until nothing
/// is left, a delivery fails or `deadline` passes. A node that is shut down
/// for good must not leave its last channel state on no target. What cannot
/// go out is said, and stays in the spool for the next start.
async fn flush(
    target: &Arc<dyn Target>,
    spool: &Arc<Spool>,
    metrics: &Metrics,
    timeout: Duration,
    deadline: tokio::time::Instant,
    slot: &mut InFlight,
) {
    let name = target.name().to_string();
    loop {
        let pending = match pending_for(spool, &name).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(target = %name, error = %e, "at shutdown: cannot read the spool journal");
                return;
            }
        };
        let Some(next) = pending.first() else {
            return;
        };
        // A hung attempt may still return in time: then its successor goes out.
        if !slot.settle(&name, deadline).await {
            tracing::warn!(
                target = %name,
                backup = short(&next.record.id),
                pending = pending.len(),
                "not delivered before shutdown: a delivery attempt is hung; it stays pending in the spool for the next start"
            );
            return;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            tracing::warn!(
                target = %name,
                backup = short(&next.record.id),
                pending = pending.len(),
                "not delivered before shutdown: no time left; it stays pending in the spool for the next start"
            );
            return;
        }
        match deliver_one(target, spool, metrics, next, timeout.min(left), slot).await {
            Ok(receipt) => tracing::info!(
                target = %name,
                backup = short(&next.record.id),
                channels = next.record.channels,
                location = %receipt.location,
                "delivered at shutdown"
            ),
            Err(e) => {
                tracing::warn!(
                    target = %name,
                    backup = short(&next.record.id),
                    error = %e,
                    "not delivered before shutdown; it stays pending in the spool for the next start"
                );
                return;
            }
        }
    }
}

/// For `backup --once`: one attempt at everything pending, per target.
/// Returns the failures as (target, error).
pub async fn deliver_pending_once(
    targets: &[Arc<dyn Target>],
    spool: &Arc<Spool>,
    metrics: &Metrics,
    timeout: Duration,
) -> Vec<(String, String)> {
    let mut failures = vec![];
    for t in targets {
        let pending = match pending_for(spool, t.name()).await {
            Ok(p) => p,
            Err(e) => {
                failures.push((t.name().to_string(), e.to_string()));
                continue;
            }
        };
        // A timed-out attempt ends this target's turn (the loop breaks on
        // any failure), so it leaves at most one thread behind.
        let mut slot = InFlight::default();
        for p in &pending {
            match deliver_one(t, spool, metrics, p, timeout, &mut slot).await {
                Ok(r) => {
                    tracing::info!(target = t.name(), backup = short(&p.record.id), location = %r.location, "delivered")
                }
                Err(e) => {
                    let e = e.to_string();
                    record_failure(spool, t.name(), &e, Duration::ZERO).await;
                    failures.push((t.name().to_string(), e));
                    break;
                }
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let waits: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        let steps = [1, 2, 4, 8, 8, 8];
        for (w, s) in waits.iter().zip(steps) {
            let s = Duration::from_secs(s);
            assert!(*w >= s / 2 && *w <= s, "{w:?} not in [{:?}, {s:?}]", s / 2);
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }
}
