//! systemd integration for `watch` under `Type=notify`: `READY=1` once the
//! workers run, `STOPPING=1` on shutdown, and `WATCHDOG=1` pings while the
//! runtime is alive.
//!
//! Everything here is a no-op outside systemd (no `NOTIFY_SOCKET` /
//! `WATCHDOG_USEC` in the environment), and a failed notification is logged,
//! never fatal: chanvault's job is the backups, not the service manager.
//!
//! The watchdog task runs on the same tokio runtime as the pipeline, so a
//! runtime that is wedged (every worker thread blocked, e.g. on a hung NFS
//! fsync) stops the pings and systemd restarts the service. It does not prove
//! that LND is connected; that is what `chanvault_lnd_connected` is for.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

/// Tell systemd that `watch` is up (workers started, metrics bound).
pub fn notify_ready() {
    send(
        &[NotifyState::Ready, NotifyState::Status("watching LND")],
        "READY",
    );
}

/// Tell systemd that shutdown has begun (deliveries in flight are finishing).
pub fn notify_stopping() {
    send(
        &[
            NotifyState::Stopping,
            NotifyState::Status("finishing deliveries in flight"),
        ],
        "STOPPING",
    );
}

/// One `WATCHDOG=1` ping.
pub fn notify_watchdog() {
    send(&[NotifyState::Watchdog], "WATCHDOG");
}

/// How often to ping: half of `WATCHDOG_USEC` (as sd_watchdog_enabled(3)
/// recommends), or `None` when systemd did not ask for pings.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
}

/// Ping every `interval` until `shutdown` turns true (first ping at once).
pub async fn watchdog(interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => notify_watchdog(),
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

fn send(state: &[NotifyState], what: &str) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd ({what})");
    }
}
