//! The agent: `watch` (the event loop) and `backup --once` (one pass).
//!
//! `watch` keeps one LND connection: subscribe first, then a baseline
//! `ExportAllChannelBackups` (the stream sends nothing on connect, and
//! whatever changed while we were away arrives this way), then snapshots from
//! the stream and a full export on the cron schedule. LND going away means
//! reconnect with backoff and jitter, forever, with one log line per change
//! of state. Shutdown finishes the step in flight.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::deliver::{self, Backoff};
use crate::lnd::{LndClient, LndError, LndSettings};
use crate::pipeline::{Outcome, Pipeline, PipelineError};
use crate::seal::{Recipients, SealError};
use crate::sink::{self, Target};
use crate::spool::{Spool, SpoolError};

/// First wait before reconnecting to LND.
pub const RECONNECT_INITIAL: Duration = Duration::from_secs(1);
/// A link that stayed up this long before it broke starts its reconnect
/// backoff afresh.
const STABLE_LINK: Duration = Duration::from_secs(60);
/// How long shutdown waits for delivery workers to finish their step.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Lnd(#[from] LndError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("config {path}: {source}")]
    Recipients { path: String, source: SealError },
    #[error("{0}")]
    Metrics(String),
    #[error("config {path}: backup.schedule: {message}")]
    Schedule { path: String, message: String },
}

/// The result of `backup --once`.
#[derive(Debug)]
pub struct OnceReport {
    pub outcome: Outcome,
    /// (target, error) for every target that did not take what was pending.
    pub failures: Vec<(String, String)>,
}

pub struct Agent {
    cfg: Config,
    pipeline: Pipeline,
    targets: Vec<Arc<dyn Target>>,
    metrics_listener: Option<std::net::TcpListener>,
}

impl Agent {
    /// Everything that can be checked without LND: recipients, spool, targets.
    pub fn new(cfg: Config) -> Result<Self, AgentError> {
        let recipients = Recipients::from_config(&cfg.seal.recipients, &cfg.seal.recipients_files)
            .map_err(|source| AgentError::Recipients {
                path: cfg.source.display().to_string(),
                source,
            })?;
        let spool = Spool::open(&cfg.state_dir, cfg.backup.keep)?;
        let targets = cfg.targets.iter().map(sink::build).collect();
        Ok(Self {
            pipeline: Pipeline::new(Arc::new(spool), Arc::new(recipients)),
            cfg,
            targets,
            metrics_listener: None,
        })
    }

    /// Bind the metrics endpoint now (so a taken port fails before `watch`),
    /// returning the bound address; `None` when metrics are disabled.
    pub fn bind_metrics(&mut self) -> Result<Option<std::net::SocketAddr>, AgentError> {
        if !self.cfg.metrics.enabled {
            return Ok(None);
        }
        let l = crate::metrics::bind(self.cfg.metrics.listen).map_err(AgentError::Metrics)?;
        let addr = l.local_addr().ok();
        self.metrics_listener = Some(l);
        Ok(addr)
    }

    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        self.pipeline.metrics()
    }

    pub fn spool(&self) -> &Arc<Spool> {
        self.pipeline.spool()
    }

    pub fn targets(&self) -> &[Arc<dyn Target>] {
        &self.targets
    }

    fn delivery_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.delivery.timeout_seconds)
    }

    fn settings(&self) -> LndSettings {
        LndSettings::from(&self.cfg.lnd)
    }

    async fn export_and_process(
        &self,
        lnd: &LndClient,
        source: &str,
    ) -> Result<Outcome, PipelineError> {
        let snap = lnd.export_all().await?;
        self.pipeline.process(lnd, snap, source).await
    }

    /// `backup --once`: one export through the pipeline, one delivery attempt per target.
    pub async fn backup_once(&self) -> Result<OnceReport, AgentError> {
        let lnd = LndClient::connect(&self.settings()).await?;
        let outcome = self.export_and_process(&lnd, "once").await?;
        let failures = deliver::deliver_pending_once(
            &self.targets,
            self.spool(),
            self.pipeline.metrics(),
            self.delivery_timeout(),
        )
        .await;
        Ok(OnceReport { outcome, failures })
    }

    /// The event loop. Returns when `shutdown` becomes true.
    pub async fn watch(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), AgentError> {
        let schedule = self
            .cfg
            .schedule()
            .map_err(|message| AgentError::Schedule {
                path: self.cfg.source.display().to_string(),
                message,
            })?;
        let mut workers = JoinSet::new();
        let retry = Backoff::new(
            Duration::from_secs(self.cfg.delivery.retry_initial_seconds),
            Duration::from_secs(self.cfg.delivery.retry_max_seconds),
        );
        for t in &self.targets {
            workers.spawn(deliver::run_worker(
                t.clone(),
                self.spool().clone(),
                self.pipeline.metrics().clone(),
                self.pipeline.subscribe(),
                shutdown.clone(),
                deliver::Pacing {
                    backoff: retry.clone(),
                    timeout: self.delivery_timeout(),
                    min_interval: Duration::from_millis(self.cfg.delivery.min_interval_ms),
                },
            ));
        }
        if self.cfg.metrics.enabled {
            let listener = match self.metrics_listener.take() {
                Some(l) => l,
                None => {
                    crate::metrics::bind(self.cfg.metrics.listen).map_err(AgentError::Metrics)?
                }
            };
            let addr = listener.local_addr().ok();
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|e| AgentError::Metrics(format!("cannot serve metrics: {e}")))?;
            tracing::info!(address = ?addr, "serving /metrics and /healthz");
            workers.spawn(crate::metrics::serve(
                listener,
                self.pipeline.metrics().clone(),
                self.spool().clone(),
                self.targets.iter().map(|t| t.name().to_string()).collect(),
                shutdown.clone(),
            ));
        }
        // Anything pending from before a restart goes out now.
        self.pipeline.wake();
        tracing::info!(
            targets = self.targets.len(),
            state_dir = %self.cfg.state_dir.display(),
            "chanvault watch started"
        );
        if let Some(every) = crate::systemd::watchdog_interval() {
            workers.spawn(crate::systemd::watchdog(every, shutdown.clone()));
        }
        crate::systemd::notify_ready();

        let settings = self.settings();
        let mut reconnect = Backoff::new(
            RECONNECT_INITIAL,
            Duration::from_secs(self.cfg.lnd.reconnect_max_seconds),
        );
        let mut processing = retry.clone();
        let mut link = LinkState {
            metrics: Some(self.pipeline.metrics().clone()),
            ..LinkState::default()
        };
        'outer: loop {
            if *shutdown.borrow() {
                break;
            }
            let connected = tokio::select! {
                r = connect_and_subscribe(&settings) => r,
                _ = shutdown.changed() => break 'outer,
            };
            let (lnd, mut stream) = match connected {
                Ok(c) => c,
                Err(e) => {
                    link.down(&settings.address, &e.to_string(), e.is_connection());
                    let wait = reconnect.next_delay();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => continue 'outer,
                        _ = shutdown.changed() => break 'outer,
                    }
                }
            };
            // Baseline: the stream says nothing about what changed while we were away.
            let mut retry_at: Option<tokio::time::Instant> = None;
            match self.export_and_process(&lnd, "connect").await {
                Ok(_) => processing.reset(),
                Err(e) if e.is_connection() => {
                    link.down(&settings.address, &e.to_string(), true);
                    continue 'outer;
                }
                Err(e) => {
                    tracing::error!(error = %e, "baseline export failed; retrying");
                    retry_at = Some(tokio::time::Instant::now() + processing.next_delay());
                }
            }
            link.up(&settings.address);
            // The backoff resets only once the link proved itself: an LND that
            // accepts connections and then breaks every stream is not retried
            // in a tight loop.
            let connected_at = tokio::time::Instant::now();
            loop {
                let until_cron = next_cron_delay(&schedule);
                let step = tokio::select! {
                    biased;
                    _ = shutdown.changed() => break 'outer,
                    msg = stream.next() => match msg {
                        Ok((snap, superseded)) => {
                            reconnect.reset();
                            if superseded > 0 {
                                tracing::debug!(superseded, "newer snapshot replaced ones not yet processed");
                                self.pipeline.metrics().superseded(superseded);
                            }
                            self.pipeline.process(&lnd, snap, "stream").await
                        }
                        Err(e) => {
                            link.down(&settings.address, &e.to_string(), e.is_connection());
                            break;
                        }
                    },
                    _ = tokio::time::sleep(until_cron) => self.export_and_process(&lnd, "schedule").await,
                    _ = sleep_until_opt(retry_at), if retry_at.is_some() => {
                        self.export_and_process(&lnd, "retry").await
                    }
                };
                match step {
                    Ok(_) => {
                        retry_at = None;
                        processing.reset();
                    }
                    Err(e) if e.is_connection() => {
                        link.down(&settings.address, &e.to_string(), true);
                        break;
                    }
                    Err(e) => {
                        // Nothing is lost: a fresh export is retried until it is stored.
                        let wait = processing.next_delay();
                        tracing::error!(error = %e, retry_in_s = wait.as_secs(), "could not store the snapshot; will export again");
                        retry_at = Some(tokio::time::Instant::now() + wait);
                    }
                }
            }
            if connected_at.elapsed() >= STABLE_LINK {
                reconnect.reset();
            }
            let wait = reconnect.next_delay();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {},
                _ = shutdown.changed() => break 'outer,
            }
        }

        crate::systemd::notify_stopping();
        tracing::info!("shutting down: waiting for deliveries in flight");
        let joined = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        if joined.is_err() {
            tracing::warn!("delivery workers did not stop in time; aborting them");
            workers.abort_all();
        }
        tracing::info!("chanvault watch stopped");
        Ok(())
    }
}

async fn connect_and_subscribe(
    settings: &LndSettings,
) -> Result<(LndClient, crate::lnd::NewestSnapshot), LndError> {
    let lnd = LndClient::connect(settings).await?;
    // Subscribe before the baseline export so no change falls in between.
    let stream = lnd.subscribe().await?.newest_only();
    Ok((lnd, stream))
}

fn next_cron_delay(schedule: &cron::Schedule) -> Duration {
    schedule
        .upcoming(Utc)
        .next()
        .and_then(|t| (t - Utc::now()).to_std().ok())
        .unwrap_or(Duration::from_secs(3600))
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Logs LND link changes once, not once per retry.
#[derive(Default)]
struct LinkState {
    up: bool,
    last_error: Option<String>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl LinkState {
    fn up(&mut self, address: &str) {
        if !self.up {
            tracing::info!(lnd = address, "connected to LND; watching channel backups");
        }
        self.up = true;
        self.last_error = None;
        if let Some(m) = &self.metrics {
            m.set_lnd_connected(true);
        }
    }

    /// `connection`: LND could not be reached, as opposed to LND answering
    /// with something unusable (a broken stream, bytes that do not decode).
    fn down(&mut self, address: &str, error: &str, connection: bool) {
        if self.up || self.last_error.as_deref() != Some(error) {
            if connection {
                tracing::warn!(
                    lnd = address,
                    error,
                    "LND not available; reconnecting with backoff"
                );
            } else {
                tracing::warn!(
                    lnd = address,
                    error,
                    "LND's channel backup stream failed; reconnecting with backoff"
                );
            }
        }
        self.up = false;
        self.last_error = Some(error.to_string());
        if let Some(m) = &self.metrics {
            m.set_lnd_connected(false);
        }
    }
}
