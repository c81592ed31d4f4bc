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
/// How much longer than `delivery.shutdown_grace_seconds` shutdown waits for
/// the delivery workers before it aborts them: time to log what stays behind.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(5);

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
    #[error(
        "another chanvault watch (PID {holder}) is running on this state dir: {lock} is locked; stop it, or give this one its own state_dir"
    )]
    AlreadyRunning { lock: String, holder: String },
    #[error("cannot lock {lock}: {source}")]
    InstanceLock {
        lock: String,
        source: std::io::Error,
    },
    #[error(
        "LND's TLS certificate changed: {count} connections in a row to {address} presented a certificate that does not match {cert} (lnd.tls_cert); copy lnd's new tls.cert there (a systemd LoadCredential= copy is refreshed by the restart this exit asks for)"
    )]
    TlsCertChanged {
        address: String,
        cert: String,
        count: u32,
    },
    #[error("config {path}: lnd.backup_key_file {file}: {message}")]
    BackupKey {
        path: String,
        file: String,
        message: String,
    },
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
    /// `state_dir/watch.lock`, held while `watch` runs.
    instance: Option<std::fs::File>,
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
        let mut pipeline = Pipeline::new(Arc::new(spool), Arc::new(recipients));
        if cfg.targets.iter().any(|t| t.privacy().cover_mean.is_some()) {
            pipeline = pipeline.with_covers();
        }
        if let Some(file) = &cfg.lnd.backup_key_file {
            let key = crate::chanbackup::BackupKey::from_file(file).map_err(|message| {
                AgentError::BackupKey {
                    path: cfg.source.display().to_string(),
                    file: file.display().to_string(),
                    message,
                }
            })?;
            pipeline = pipeline.with_backup_key(key);
        }
        Ok(Self {
            pipeline,
            cfg,
            targets,
            metrics_listener: None,
            instance: None,
        })
    }

    /// Become the one `watch` on this state dir: an exclusive flock on
    /// `state_dir/watch.lock`, held until the agent is dropped, with our PID
    /// written into it. Two `watch`es on one spool would double every
    /// delivery and race on the targets' current files; a second one fails
    /// here, naming the first one's PID. `backup --once` never takes it (the
    /// journal has its own lock), so the timer keeps working beside `watch`.
    pub fn lock_instance(&mut self) -> Result<(), AgentError> {
        if self.instance.is_some() {
            return Ok(());
        }
        let path = self.cfg.state_dir.join(crate::state_dir::WATCH_LOCK_FILE);
        self.instance = Some(take_instance_lock(&path)?);
        Ok(())
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
        self.lock_instance()?;
        let schedule = self
            .cfg
            .schedule()
            .map_err(|message| AgentError::Schedule {
                path: self.cfg.source.display().to_string(),
                message,
            })?;
        // The delivery workers stop only once nothing more can be stored, so
        // that what the loop stores last is in what they flush.
        let (stop_workers, workers_stop) = watch::channel(false);
        let mut workers = self.spawn_background(&workers_stop)?;
        // Anything pending from before a restart goes out now.
        self.pipeline.wake();
        tracing::info!(
            targets = self.targets.len(),
            state_dir = %self.cfg.state_dir.display(),
            "chanvault watch started"
        );
        crate::systemd::notify_ready();

        let settings = self.settings();
        let mut reconnect = Backoff::new(
            RECONNECT_INITIAL,
            Duration::from_secs(self.cfg.lnd.reconnect_max_seconds),
        );
        let mut link = LinkState {
            metrics: Some(self.pipeline.metrics().clone()),
            ..LinkState::default()
        };
        // Consecutive connections refused for the pinned certificate.
        let mut mismatches = 0u32;
        let mut exit_error = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let connected = tokio::select! {
                r = connect_and_subscribe(&settings, self.pipeline.metrics()) => r,
                _ = shutdown.changed() => break,
            };
            match connected {
                Ok((lnd, stream)) => {
                    mismatches = 0;
                    let connected_at = tokio::time::Instant::now();
                    let session = self.follow(&lnd, stream, &schedule, &mut link, &mut reconnect);
                    match session.run(&mut shutdown).await {
                        Flow::Shutdown => break,
                        Flow::ReconnectNow => continue,
                        Flow::Reconnect => {}
                    }
                    // The backoff resets only once the link proved itself: an LND
                    // that accepts connections and then breaks every stream is not
                    // retried in a tight loop.
                    if connected_at.elapsed() >= STABLE_LINK {
                        reconnect.reset();
                    }
                }
                Err(e) => {
                    link.down(&settings.address, &e.to_string(), e.is_connection());
                    mismatches = match e {
                        LndError::TlsMismatch { .. } => mismatches + 1,
                        _ => 0,
                    };
                    let limit = self.cfg.lnd.pin_mismatch_exit_after;
                    if limit > 0 && mismatches >= limit {
                        exit_error = Some(AgentError::TlsCertChanged {
                            address: settings.address.clone(),
                            cert: settings.tls_cert.display().to_string(),
                            count: mismatches,
                        });
                        break;
                    }
                }
            }
            let wait = reconnect.next_delay();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {},
                _ = shutdown.changed() => break,
            }
        }

        crate::systemd::notify_stopping();
        tracing::info!("shutting down: delivering what is pending");
        let _ = stop_workers.send(true);
        let joined = tokio::time::timeout(self.shutdown_grace() + SHUTDOWN_MARGIN, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        if joined.is_err() {
            tracing::warn!("delivery workers did not stop in time; aborting them");
            workers.abort_all();
        }
        tracing::info!("chanvault watch stopped");
        // What is pending went out above: only then exit for a restart.
        exit_error.map_or(Ok(()), Err)
    }

    /// The tasks that live as long as `watch`: one delivery worker per
    /// target, the metrics server and the systemd watchdog, all stopped by
    /// `workers_stop` once the event loop has ended (on a signal, or on an
    /// error that exits).
    fn spawn_background(
        &mut self,
        workers_stop: &watch::Receiver<bool>,
    ) -> Result<JoinSet<()>, AgentError> {
        let mut workers = JoinSet::new();
        for (t, c) in self.targets.iter().zip(&self.cfg.targets) {
            let privacy = c.privacy();
            if let Some(mean) = privacy.cover_mean {
                workers.spawn(cover_loop(
                    self.pipeline.clone(),
                    t.name().to_owned(),
                    mean,
                    workers_stop.clone(),
                ));
            }
            workers.spawn(deliver::run_worker(
                t.clone(),
                self.spool().clone(),
                self.pipeline.metrics().clone(),
                self.pipeline.subscribe(),
                workers_stop.clone(),
                deliver::Pacing {
                    backoff: self.retry_backoff(),
                    timeout: self.delivery_timeout(),
                    min_interval: Duration::from_millis(self.cfg.delivery.min_interval_ms),
                    flush_grace: self.shutdown_grace(),
                    jitter: privacy.jitter,
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
                workers_stop.clone(),
            ));
        }
        if let Some(every) = crate::systemd::watchdog_interval() {
            workers.spawn(crate::systemd::watchdog(every, workers_stop.clone()));
        }
        Ok(workers)
    }

    fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.cfg.delivery.shutdown_grace_seconds)
    }

    fn retry_backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_secs(self.cfg.delivery.retry_initial_seconds),
            Duration::from_secs(self.cfg.delivery.retry_max_seconds),
        )
    }

    fn follow<'a>(
        &'a self,
        lnd: &'a LndClient,
        stream: crate::lnd::NewestSnapshot,
        schedule: &'a cron::Schedule,
        link: &'a mut LinkState,
        reconnect: &'a mut Backoff,
    ) -> Session<'a> {
        Session {
            agent: self,
            lnd,
            stream,
            schedule,
            link,
            reconnect,
            processing: self.retry_backoff(),
            retry_at: None,
        }
    }
}

/// How one connection to LND ended.
enum Flow {
    Shutdown,
    /// After the backoff.
    Reconnect,
    /// At once: the link broke during the baseline export.
    ReconnectNow,
}

/// One connection to LND: the baseline export, then the stream, the cron
/// schedule and retries, until the link breaks or shutdown.
struct Session<'a> {
    agent: &'a Agent,
    lnd: &'a LndClient,
    stream: crate::lnd::NewestSnapshot,
    schedule: &'a cron::Schedule,
    link: &'a mut LinkState,
    reconnect: &'a mut Backoff,
    processing: Backoff,
    retry_at: Option<tokio::time::Instant>,
}

impl Session<'_> {
    async fn run(mut self, shutdown: &mut watch::Receiver<bool>) -> Flow {
        let address = self.agent.settings().address;
        // Baseline: the stream says nothing about what changed while we were away.
        let baseline = self.agent.export_and_process(self.lnd, "connect").await;
        match baseline {
            Ok(_) => self.processing.reset(),
            Err(e) if e.is_connection() => {
                self.link.down(&address, &e.to_string(), true);
                return Flow::ReconnectNow;
            }
            Err(e) => {
                tracing::error!(error = %e, "baseline export failed; retrying");
                self.retry_at = Some(tokio::time::Instant::now() + self.processing.next_delay());
            }
        }
        self.link.up(&address);
        loop {
            let until_cron = next_cron_delay(self.schedule);
            let step = tokio::select! {
                biased;
                _ = shutdown.changed() => return Flow::Shutdown,
                msg = self.stream.next() => match msg {
                    Ok((snap, superseded)) => {
                        self.reconnect.reset();
                        let pipeline = &self.agent.pipeline;
                        if superseded > 0 {
                            tracing::debug!(superseded, "newer snapshot replaced ones not yet processed");
                            pipeline.metrics().superseded(superseded);
                        }
                        pipeline.process(self.lnd, snap, "stream").await
                    }
                    Err(e) => {
                        self.link.down(&address, &e.to_string(), e.is_connection());
                        return Flow::Reconnect;
                    }
                },
                _ = tokio::time::sleep(until_cron) => self.agent.export_and_process(self.lnd, "schedule").await,
                _ = sleep_until_opt(self.retry_at), if self.retry_at.is_some() => {
                    self.agent.export_and_process(self.lnd, "retry").await
                }
            };
            match step {
                Ok(_) => {
                    self.retry_at = None;
                    self.processing.reset();
                }
                Err(e) if e.is_connection() => {
                    self.link.down(&address, &e.to_string(), true);
                    return Flow::Reconnect;
                }
                Err(e) => {
                    // Nothing is lost: a fresh export is retried until it is stored.
                    let wait = self.processing.next_delay();
                    if e.is_slow() {
                        tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "keeping the stream; will export the newest snapshot again");
                    } else {
                        tracing::error!(error = %e, retry_in_s = wait.as_secs(), "could not store the snapshot; will export again");
                    }
                    self.retry_at = Some(tokio::time::Instant::now() + wait);
                }
            }
        }
    }
}

/// Open `path` (0600), take its exclusive flock without waiting, and write
/// our PID into it. When another process holds it, the error names that
/// process's PID as it wrote it.
fn take_instance_lock(path: &std::path::Path) -> Result<std::fs::File, AgentError> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let lock = path.display().to_string();
    let io = |source| AgentError::InstanceLock {
        lock: lock.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            // A PID is a few digits; never read more than a line's worth.
            let _ = (&file).take(32).read_to_string(&mut pid);
            let pid = pid.trim();
            let holder = if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
                pid.to_string()
            } else {
                "unknown".to_string()
            };
            return Err(AgentError::AlreadyRunning { lock, holder });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    file.sync_data().map_err(io)?;
    Ok(file)
}

async fn connect_and_subscribe(
    settings: &LndSettings,
    metrics: &Arc<crate::metrics::Metrics>,
) -> Result<(LndClient, crate::lnd::NewestSnapshot), LndError> {
    let lnd = LndClient::connect(settings)
        .await?
        .with_metrics(metrics.clone());
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

/// The cover uploads of one padded target: at exponentially distributed
/// gaps, the last good state re-sealed for it alone (`pipeline::cover`).
/// Stops with the workers; a cover still pending then goes out in the flush
/// like any backup.
async fn cover_loop(
    pipeline: Pipeline,
    target: String,
    mean: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let gap = crate::privacy::cover_gap(mean, &mut rand::thread_rng());
        tokio::select! {
            _ = tokio::time::sleep(gap) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        match pipeline.cover(std::slice::from_ref(&target)).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::debug!(target = %target, "no cover upload: no last good state from LND in this process yet")
            }
            Err(e) => {
                tracing::warn!(target = %target, error = %e, "cannot store a cover upload")
            }
        }
    }
}
