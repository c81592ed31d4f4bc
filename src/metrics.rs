//! Prometheus metrics and the health endpoint of `watch`.
//!
//! Counters are updated where things happen (pipeline, delivery workers, the
//! LND link); everything that is a fact of the spool (channel counts, pending
//! per target, up to date or not) is read from the journal at scrape time,
//! so it is never stale and survives restarts. Every name starts with
//! `chanvault_`; `contrib/` (alerts, dashboard) only use names listed in
//! [`METRIC_NAMES`], which a test checks against the exposition.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::sink::ErrorKind;
use crate::spool::{Journal, Spool};
use crate::state_dir::{VERIFY_RESULT_FILE, VerifyResult};

/// A client that has not sent a whole request header this long after it
/// connected (or after its previous request) is dropped: an idle or
/// slow-drip connection cannot hold a slot for long.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Connections served at once. Past it, new ones wait in the listen backlog
/// until a slot frees (at the latest after [`HEADER_READ_TIMEOUT`]), so a
/// flood of connections costs neither file descriptors nor tasks beyond this.
pub const MAX_CONNECTIONS: usize = 16;

/// Every metric family this build exports (as it appears in the exposition).
pub const METRIC_NAMES: &[&str] = &[
    "chanvault_build_info",
    "chanvault_lnd_connected",
    "chanvault_lnd_last_snapshot_timestamp_seconds",
    "chanvault_snapshots_total",
    "chanvault_backup_newest_channels",
    "chanvault_backup_newest_timestamp_seconds",
    "chanvault_backup_newest_suspect",
    "chanvault_backup_last_good_channels",
    "chanvault_backup_last_good_timestamp_seconds",
    "chanvault_backups_suspect",
    "chanvault_target_last_success_timestamp_seconds",
    "chanvault_target_pending",
    "chanvault_target_up_to_date",
    "chanvault_target_delivery_attempts_total",
    "chanvault_target_delivery_failures_total",
    "chanvault_last_verify_success",
    "chanvault_last_verify_timestamp_seconds",
    "chanvault_escrow_operations",
    "chanvault_snapshot_to_spool_seconds",
    "chanvault_delivery_seconds",
    "chanvault_lnd_rpc_seconds",
];

/// Histogram buckets for every latency: 1 ms to 65.5 s, doubling (a slow
/// offsite upload still lands in a bucket below the alert's threshold).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

type Latencies<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabel {
    rpc: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    target: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EscrowLabels {
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

/// What happened to a snapshot, as counted by `chanvault_snapshots_total`.
#[derive(Debug, Clone, Copy)]
pub enum SnapshotOutcome {
    Stored,
    Suspect,
    Duplicate,
    Rejected,
    Error,
    /// Replaced by a newer snapshot from LND before it was processed.
    Superseded,
}

impl SnapshotOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Suspect => "suspect",
            Self::Duplicate => "duplicate",
            Self::Rejected => "rejected",
            Self::Error => "error",
            Self::Superseded => "superseded",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    lnd_connected: Gauge,
    last_snapshot: Gauge,
    snapshots: Family<OutcomeLabel, Counter>,
    newest_channels: Gauge,
    newest_timestamp: Gauge,
    newest_suspect: Gauge,
    last_good_channels: Gauge,
    last_good_timestamp: Gauge,
    suspects: Gauge,
    target_last_success: Family<TargetLabel, Gauge>,
    target_pending: Family<TargetLabel, Gauge>,
    target_up_to_date: Family<TargetLabel, Gauge>,
    attempts: Family<TargetLabel, Counter>,
    failures: Family<FailureLabels, Counter>,
    verify_success: Gauge,
    verify_timestamp: Gauge,
    escrow_ops: Family<EscrowLabels, Gauge>,
    snapshot_to_spool: Histogram,
    delivery_seconds: Latencies<TargetLabel>,
    lnd_rpc: Latencies<RpcLabel>,
    milestones: tokio::sync::watch::Sender<Milestones>,
}

/// The moments the agent last stored a backup and last committed one on a
/// target, for an observer in the same process (the latency bench) that
/// must not poll the exposition to learn them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Milestones {
    /// Backups stored (good or suspect) since start.
    pub stored: u64,
    pub stored_at: Option<std::time::Instant>,
    /// Successful deliveries, over all targets, since start.
    pub delivered: u64,
    /// When the last of them was committed on its target (the spool's
    /// record of it follows).
    pub delivered_at: Option<std::time::Instant>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("chanvault");
        let m = Self {
            lnd_connected: Gauge::default(),
            last_snapshot: Gauge::default(),
            snapshots: Family::default(),
            newest_channels: Gauge::default(),
            newest_timestamp: Gauge::default(),
            newest_suspect: Gauge::default(),
            last_good_channels: Gauge::default(),
            last_good_timestamp: Gauge::default(),
            suspects: Gauge::default(),
            target_last_success: Family::default(),
            target_pending: Family::default(),
            target_up_to_date: Family::default(),
            attempts: Family::default(),
            failures: Family::default(),
            verify_success: Gauge::default(),
            verify_timestamp: Gauge::default(),
            escrow_ops: Family::default(),
            snapshot_to_spool: latency_histogram(),
            delivery_seconds: Family::new_with_constructor(latency_histogram),
            lnd_rpc: Family::new_with_constructor(latency_histogram),
            milestones: tokio::sync::watch::Sender::new(Milestones::default()),
            registry: Registry::default(),
        };
        let version = env!("CARGO_PKG_VERSION").to_string();
        let build = Info::new(VersionLabel { version });
        registry.register("build", "chanvault build information", build);
        registry.register(
            "lnd_connected",
            "1 while the LND backup stream is connected",
            m.lnd_connected.clone(),
        );
        registry.register(
            "lnd_last_snapshot_timestamp_seconds",
            "When the last snapshot arrived from LND (stream or export)",
            m.last_snapshot.clone(),
        );
        registry.register(
            "snapshots",
            "Snapshots processed, by outcome",
            m.snapshots.clone(),
        );
        registry.register(
            "backup_newest_channels",
            "Channels in the newest stored backup",
            m.newest_channels.clone(),
        );
        registry.register(
            "backup_newest_timestamp_seconds",
            "When the newest backup was stored",
            m.newest_timestamp.clone(),
        );
        registry.register(
            "backup_newest_suspect",
            "1 if the newest backup was flagged by the shrink guard",
            m.newest_suspect.clone(),
        );
        registry.register(
            "backup_last_good_channels",
            "Channels in the last good backup",
            m.last_good_channels.clone(),
        );
        registry.register(
            "backup_last_good_timestamp_seconds",
            "When the last good backup was stored",
            m.last_good_timestamp.clone(),
        );
        registry.register(
            "backups_suspect",
            "Suspect backups held in the spool",
            m.suspects.clone(),
        );
        registry.register(
            "target_last_success_timestamp_seconds",
            "Last successful delivery to a target",
            m.target_last_success.clone(),
        );
        registry.register(
            "target_pending",
            "Backups a target still has to receive",
            m.target_pending.clone(),
        );
        registry.register(
            "target_up_to_date",
            "1 if the target's current backup is the last good one",
            m.target_up_to_date.clone(),
        );
        registry.register(
            "target_delivery_attempts",
            "Delivery attempts per target",
            m.attempts.clone(),
        );
        registry.register(
            "target_delivery_failures",
            "Failed deliveries per target and reason",
            m.failures.clone(),
        );
        registry.register(
            "last_verify_success",
            "1 if the last `chanvault verify` passed every check (from state_dir)",
            m.verify_success.clone(),
        );
        registry.register(
            "last_verify_timestamp_seconds",
            "When `chanvault verify` last ran (0: never)",
            m.verify_timestamp.clone(),
        );
        registry.register(
            "escrow_operations",
            "Escrow operations recorded in the audit log, by operation and outcome",
            m.escrow_ops.clone(),
        );
        m.register_latencies(&mut registry);
        Self { registry, ..m }
    }

    fn register_latencies(&self, registry: &mut Registry) {
        registry.register(
            "snapshot_to_spool_seconds",
            "From a snapshot taken from LND to its backup durable in the spool (verified, sealed, fsynced)",
            self.snapshot_to_spool.clone(),
        );
        registry.register(
            "delivery_seconds",
            "From a backup recorded in the spool to the target holding it (committed), per target",
            self.delivery_seconds.clone(),
        );
        registry.register(
            "lnd_rpc_seconds",
            "LND RPC round trips, per RPC (failures included)",
            self.lnd_rpc.clone(),
        );
    }

    /// A snapshot stored in the spool `secs` after the pipeline took it.
    pub fn stored_in(&self, secs: f64) {
        self.snapshot_to_spool.observe(secs);
    }

    /// A backup committed on `target` `secs` after it was recorded.
    pub fn delivered_in(&self, target: &str, secs: f64) {
        let label = TargetLabel {
            target: target.to_string(),
        };
        self.delivery_seconds.get_or_create(&label).observe(secs);
    }

    /// One LND RPC round trip.
    pub fn lnd_rpc(&self, rpc: &str, secs: f64) {
        let label = RpcLabel {
            rpc: rpc.to_string(),
        };
        self.lnd_rpc.get_or_create(&label).observe(secs);
    }

    pub fn set_lnd_connected(&self, up: bool) {
        self.lnd_connected.set(i64::from(up));
    }

    pub fn lnd_connected(&self) -> bool {
        self.lnd_connected.get() == 1
    }

    /// Changes when a backup is stored or delivered (see [`Milestones`]).
    pub fn milestones(&self) -> tokio::sync::watch::Receiver<Milestones> {
        self.milestones.subscribe()
    }

    pub fn snapshot(&self, outcome: SnapshotOutcome) {
        if matches!(outcome, SnapshotOutcome::Stored | SnapshotOutcome::Suspect) {
            let now = std::time::Instant::now();
            self.milestones.send_modify(|m| {
                m.stored += 1;
                m.stored_at = Some(now);
            });
        }
        self.last_snapshot.set(chrono::Utc::now().timestamp());
        self.snapshots
            .get_or_create(&OutcomeLabel {
                outcome: outcome.label().to_string(),
            })
            .inc();
    }

    /// Count snapshots that a newer one replaced before the pipeline took them.
    pub fn superseded(&self, n: u64) {
        self.snapshots
            .get_or_create(&OutcomeLabel {
                outcome: SnapshotOutcome::Superseded.label().to_string(),
            })
            .inc_by(n);
    }

    /// Count one delivery attempt: `Ok` with the moment the target
    /// committed it, or `Err` with a short reason class.
    pub fn delivery(&self, target: &str, outcome: Result<std::time::Instant, &str>) {
        let label = TargetLabel {
            target: target.to_string(),
        };
        self.attempts.get_or_create(&label).inc();
        if let Ok(committed) = outcome {
            self.milestones.send_modify(|m| {
                m.delivered += 1;
                m.delivered_at = Some(committed);
            });
        }
        if let Err(reason) = outcome {
            self.failures
                .get_or_create(&FailureLabels {
                    target: target.to_string(),
                    reason: reason.to_string(),
                })
                .inc();
        }
    }

    /// Set the spool-derived gauges from the journal.
    pub fn refresh(&self, j: &Journal, targets: &[String]) {
        let ts = |r: &crate::spool::BackupRecord| r.created.timestamp();
        if let Some(n) = j.newest() {
            self.newest_channels.set(n.channels as i64);
            self.newest_timestamp.set(ts(n));
            self.newest_suspect.set(i64::from(n.is_suspect()));
        }
        if let Some(g) = j.last_good() {
            self.last_good_channels.set(g.channels as i64);
            self.last_good_timestamp.set(ts(g));
        }
        self.suspects.set(j.suspects().count() as i64);
        for t in targets {
            let label = TargetLabel { target: t.clone() };
            let st = j.targets.get(t);
            self.target_pending
                .get_or_create(&label)
                .set(j.pending_for(t).len() as i64);
            let due = j.due_for(t).map(|d| d.id.as_str());
            let up = due.is_some() && st.is_some_and(|s| s.current.as_deref() == due);
            self.target_up_to_date
                .get_or_create(&label)
                .set(i64::from(up));
            if let Some(at) = st.and_then(|s| s.last_success) {
                self.target_last_success
                    .get_or_create(&label)
                    .set(at.timestamp());
            }
            // Make the counters visible at 0 before the first attempt.
            let _ = self.attempts.get_or_create(&label);
        }
    }

    /// Set the gauges that other chanvault processes leave in `state_dir`:
    /// the last `verify` result and the escrow audit log's records.
    pub fn refresh_state_dir(&self, state_dir: &std::path::Path) {
        match std::fs::read(state_dir.join(VERIFY_RESULT_FILE)) {
            Ok(bytes) => match serde_json::from_slice::<VerifyResult>(&bytes) {
                Ok(v) => {
                    self.verify_success.set(i64::from(v.success));
                    self.verify_timestamp.set(v.time);
                }
                Err(e) => tracing::warn!(error = %e, "metrics: {VERIFY_RESULT_FILE} is damaged"),
            },
            // Never verified: success 0, timestamp 0, so "not run" alerts fire.
            Err(_) => {
                self.verify_success.set(0);
                self.verify_timestamp.set(0);
            }
        }
        let log = crate::escrow::audit::AuditLog::new(state_dir);
        if let Ok(entries) = log.read_all() {
            let mut counts: std::collections::BTreeMap<(String, String), i64> = Default::default();
            for e in entries {
                *counts.entry((e.record.op, e.record.outcome)).or_default() += 1;
            }
            for ((operation, outcome), n) in counts {
                self.escrow_ops
                    .get_or_create(&EscrowLabels { operation, outcome })
                    .set(n);
            }
        }
    }

    /// The exposition text (OpenMetrics, which Prometheus scrapes natively).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// The failure counter's `reason` label for a class of delivery error.
pub fn failure_reason(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Timeout => "timeout",
        ErrorKind::Unreachable => "unreachable",
        ErrorKind::Refused => "refused",
        ErrorKind::Io => "io",
        ErrorKind::Spool => "spool",
        ErrorKind::Other => "target",
    }
}

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serve `/metrics` and `/healthz` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    spool: Arc<Spool>,
    targets: Vec<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let ctx = Arc::new((metrics, spool, targets));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        // A slot first, then accept: while every slot is taken, new
        // connections wait in the kernel's backlog rather than in tasks.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(respond(&req, &ctx.0, &ctx.1, &ctx.2).await)
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(io, svc)
                .await
            {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

async fn respond<B>(
    req: &Request<B>,
    metrics: &Arc<Metrics>,
    spool: &Arc<Spool>,
    targets: &[String],
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    match req.uri().path() {
        "/metrics" => {
            let sp = spool.clone();
            match tokio::task::spawn_blocking(move || sp.journal()).await {
                Ok(Ok(j)) => {
                    metrics.refresh(&j, targets);
                    let (m, dir) = (metrics.clone(), spool.dir().to_path_buf());
                    let _ = tokio::task::spawn_blocking(move || m.refresh_state_dir(&dir)).await;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "metrics: cannot read the journal"),
                Err(e) => tracing::warn!(error = %e, "metrics: cannot read the journal"),
            }
            reply(StatusCode::OK, CONTENT_TYPE, metrics.render())
        }
        "/healthz" => {
            if metrics.lnd_connected() {
                reply(StatusCode::OK, "text/plain", "ok\n".into())
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "LND backup stream not connected\n".into(),
                )
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Bind the metrics listener (loopback by default); errors name the address.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_are_prefixed_and_listed() {
        let m = Metrics::new();
        m.set_lnd_connected(true);
        m.snapshot(SnapshotOutcome::Stored);
        m.delivery("pbs", Err("timeout"));
        m.delivered_in("pbs", 0.02);
        m.stored_in(0.003);
        m.lnd_rpc("VerifyChanBackup", 0.5);
        m.refresh(&Journal::default(), &["pbs".to_string()]);
        let text = m.render();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(name.starts_with("chanvault_"), "{line}");
            assert!(
                METRIC_NAMES.iter().any(|n| name == *n
                    || name
                        .strip_prefix(n)
                        .is_some_and(|s| ["", "_total", "_bucket", "_sum", "_count"].contains(&s))),
                "{name} is exported but not in METRIC_NAMES"
            );
        }
        assert!(text.contains("chanvault_lnd_connected 1"), "{text}");
        assert!(
            text.contains(
                r#"chanvault_target_delivery_failures_total{target="pbs",reason="timeout"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"chanvault_build_info{version=""#), "{text}");
        // Latencies land in the bucket that holds them, and not below.
        for line in [
            r#"chanvault_delivery_seconds_bucket{le="0.016",target="pbs"} 0"#,
            r#"chanvault_delivery_seconds_bucket{le="0.032",target="pbs"} 1"#,
            r#"chanvault_snapshot_to_spool_seconds_bucket{le="0.004"} 1"#,
            r#"chanvault_lnd_rpc_seconds_count{rpc="VerifyChanBackup"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line}: {text}");
        }
    }

    #[test]
    fn milestones_move_on_stored_backups_and_successful_deliveries_only() {
        let m = Metrics::new();
        let mut seen = m.milestones();
        m.snapshot(SnapshotOutcome::Duplicate);
        m.snapshot(SnapshotOutcome::Rejected);
        m.delivery("pbs", Err("timeout"));
        assert!(!seen.has_changed().unwrap());
        let before = std::time::Instant::now();
        m.snapshot(SnapshotOutcome::Stored);
        m.snapshot(SnapshotOutcome::Suspect);
        m.delivery("pbs", Ok(std::time::Instant::now()));
        let now = *seen.borrow_and_update();
        assert_eq!((now.stored, now.delivered), (2, 1));
        assert!(now.stored_at.is_some_and(|t| t >= before));
        assert!(now.delivered_at >= now.stored_at);
    }

    #[test]
    fn failure_reasons() {
        let hung = crate::sink::TargetError::new(
            "x",
            "the REST server rest:http://h/ did not answer within 120s",
        )
        .with_kind(ErrorKind::Timeout);
        assert_eq!(failure_reason(hung.kind), "timeout");
        let full = crate::sink::TargetError::new("x", "cannot write /srv/x: No space left")
            .with_kind(ErrorKind::Io);
        assert_eq!(failure_reason(full.kind), "io");
        assert_eq!(failure_reason(ErrorKind::Other), "target");
    }
}
