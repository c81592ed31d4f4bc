//! The one configuration type, read from TOML and validated once at start-up.
//!
//! Unknown keys are refused, every error names the file and the key, and
//! relative paths are resolved against the config file's directory so that a
//! config can be moved together with the files it names. The config holds
//! paths to secrets, never secrets themselves.

pub mod escrow;
pub mod net;
pub mod proxy;
mod target;

pub use target::{DirTargetConfig, Privacy, ResticTargetConfig, TargetPrivacy};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the config lives unless `--config` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/chanvault/chanvault.toml";
/// Default cron schedule (seconds field first) for the baseline export.
pub const DEFAULT_SCHEDULE: &str = "0 */15 * * * *";
/// Default number of backups kept in the spool (the last good one is always kept).
pub const DEFAULT_KEEP: usize = 50;
/// Default first retry delay of a failed delivery.
pub const DEFAULT_RETRY_INITIAL_SECONDS: u64 = 2;
/// Default cap of the delivery retry delay.
pub const DEFAULT_RETRY_MAX_SECONDS: u64 = 300;
pub const DEFAULT_DELIVERY_TIMEOUT_SECONDS: u64 = 120;
pub const DEFAULT_MIN_INTERVAL_MS: u64 = 500;
/// Default time each target has at shutdown to receive what is pending.
pub const DEFAULT_SHUTDOWN_GRACE_SECONDS: u64 = 25;
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: u64 = 30;
/// Default cap of the LND reconnect delay.
pub const DEFAULT_RECONNECT_MAX_SECONDS: u64 = 60;
/// Default LND RPC timeout.
pub const DEFAULT_LND_TIMEOUT_SECONDS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// The file as written by the user.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the spool and journal live. Created 0700 if missing.
    pub state_dir: PathBuf,
    pub lnd: LndConfig,
    #[serde(default)]
    pub backup: BackupConfig,
    pub seal: SealConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default, rename = "target")]
    pub targets: Vec<TargetConfig>,
    /// The recovery drill (`chanvault verify`).
    #[serde(default)]
    pub verify: VerifyConfig,
    /// Key escrow in OpenBao KV v2 (`keys` commands); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escrow: Option<escrow::EscrowConfig>,
    /// Path of the file this was read from (not a key).
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LndConfig {
    /// `host:port`, `https://host:port`, `[::1]:port`.
    pub address: String,
    /// lnd's `tls.cert`; its exact bytes are pinned.
    pub tls_cert: PathBuf,
    /// A macaroon with at least `offchain:read` (`lncli bakemacaroon offchain:read`).
    pub macaroon: PathBuf,
    #[serde(default = "default_lnd_timeout")]
    pub timeout_seconds: u64,
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_seconds: u64,
    /// `watch` exits (code 6) after this many connections in a row whose
    /// certificate does not match `tls_cert`: a copy that only a restart
    /// refreshes (systemd's `LoadCredential=`) is stale. 0: never exit.
    #[serde(default = "default_pin_mismatch_exit_after")]
    pub pin_mismatch_exit_after: u32,
    /// A macaroon with `offchain:write` for `restore apply` only
    /// (`lncli bakemacaroon offchain:read offchain:write`); the daemon never uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_macaroon: Option<PathBuf>,
    /// The node's backup account key (the m/1017'/COIN'/7' xpub or tpub of
    /// `lncli wallet accounts list`), one line, a 0600 secret file: with it
    /// the daemon reads every snapshot itself instead of trusting
    /// `VerifyChanBackup` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Cron expression (with a seconds field) for the periodic full export.
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// How many backups the spool keeps; the last good one is kept regardless.
    #[serde(default = "default_keep")]
    pub keep: usize,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            schedule: default_schedule(),
            keep: default_keep(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SealConfig {
    /// age recipients: `age1…`, `ssh-ed25519 …`, `ssh-rsa …`.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Files in the age CLI's `-R` format.
    #[serde(default)]
    pub recipients_files: Vec<PathBuf>,
    /// `ed25519:<hex>` keys whose signed manifests `restore` and `verify`
    /// believe, besides the state dir's own (`signing`): what a recovery
    /// machine, which has the config but not the state dir, checks with.
    #[serde(default)]
    pub manifest_public_keys: Vec<String>,
}

/// Prometheus `/metrics` and `/healthz`, served by `watch`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Loopback only unless you mean it.
    #[serde(default = "default_metrics_listen")]
    pub listen: std::net::SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: default_metrics_listen(),
        }
    }
}

/// Default `verify.max_age_hours`: a target's newest backup may be this old
/// before `verify` calls it stale (unless LND's channels are unchanged since).
pub const DEFAULT_VERIFY_MAX_AGE_HOURS: u64 = 168;
/// Largest `verify.max_age_hours` (ten years).
pub const MAX_VERIFY_MAX_AGE_HOURS: u64 = 87_600;

/// `chanvault verify` (the monthly recovery drill).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    #[serde(default = "default_verify_max_age")]
    pub max_age_hours: u64,
    /// The oldest lnd release a recovery may use (`"0.18.5"`): channels it
    /// cannot restore are warned about. Unset: no such warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_lnd_version: Option<String>,
}

impl VerifyConfig {
    /// `restore_lnd_version`, parsed (validated when the config loads).
    pub fn restore_lnd(&self) -> Option<crate::chanbackup::LndVersion> {
        self.restore_lnd_version.as_deref()?.parse().ok()
    }
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            max_age_hours: default_verify_max_age(),
            restore_lnd_version: None,
        }
    }
}

fn default_verify_max_age() -> u64 {
    DEFAULT_VERIFY_MAX_AGE_HOURS
}

/// Default address of the metrics endpoint.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9750";

fn default_true() -> bool {
    true
}

fn default_metrics_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 9750))
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    #[serde(default = "default_retry_initial")]
    pub retry_initial_seconds: u64,
    #[serde(default = "default_retry_max")]
    pub retry_max_seconds: u64,
    /// Longest one delivery to one target may take (a peer that accepts and
    /// never answers fails after this, and is retried with backoff).
    #[serde(default = "default_delivery_timeout")]
    pub timeout_seconds: u64,
    /// Least time between the starts of two uploads to one target. The first
    /// change after a quiet spell goes out at once; during a burst of channel
    /// events each target gets the newest state at most this often, and
    /// less often while the burst lasts (`deliver::pace`).
    #[serde(default = "default_min_interval")]
    pub min_interval_ms: u64,
    /// At shutdown (SIGTERM), how long each target may take to receive what
    /// is still pending, without pacing; what cannot go out in time stays in
    /// the spool and is named in the log.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_seconds: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry_initial_seconds: default_retry_initial(),
            retry_max_seconds: default_retry_max(),
            timeout_seconds: default_delivery_timeout(),
            min_interval_ms: default_min_interval(),
            shutdown_grace_seconds: default_shutdown_grace(),
        }
    }
}

/// One delivery target; `kind` selects the variant.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetConfig {
    /// A directory (local disk, NFS) that PBS or another backup picks up.
    Dir(DirTargetConfig),
    /// A restic repository (local path, REST server or rclone remote) that stock restic can read.
    /// (Boxed: its many keys would make every `Dir` as large.)
    Restic(Box<ResticTargetConfig>),
}

/// Hostname recorded in the restic snapshots unless `host` says otherwise.
pub const DEFAULT_RESTIC_HOST: &str = "chanvault";

impl TargetConfig {
    pub fn name(&self) -> &str {
        match self {
            TargetConfig::Dir(d) => &d.name,
            TargetConfig::Restic(r) => &r.name,
        }
    }
}

fn default_schedule() -> String {
    DEFAULT_SCHEDULE.to_string()
}
fn default_keep() -> usize {
    DEFAULT_KEEP
}
fn default_retry_initial() -> u64 {
    DEFAULT_RETRY_INITIAL_SECONDS
}
fn default_retry_max() -> u64 {
    DEFAULT_RETRY_MAX_SECONDS
}
fn default_delivery_timeout() -> u64 {
    DEFAULT_DELIVERY_TIMEOUT_SECONDS
}
fn default_min_interval() -> u64 {
    DEFAULT_MIN_INTERVAL_MS
}
fn default_shutdown_grace() -> u64 {
    DEFAULT_SHUTDOWN_GRACE_SECONDS
}
fn default_pin_mismatch_exit_after() -> u32 {
    5
}
fn default_reconnect_max() -> u64 {
    DEFAULT_RECONNECT_MAX_SECONDS
}
fn default_lnd_timeout() -> u64 {
    DEFAULT_LND_TIMEOUT_SECONDS
}

impl Config {
    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parse and validate config text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: parse_message(text, &e),
        })?;
        cfg.source = path.to_path_buf();
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        cfg.resolve_paths(&base);
        cfg.validate()?;
        Ok(cfg)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.state_dir);
        abs(&mut self.lnd.tls_cert);
        abs(&mut self.lnd.macaroon);
        self.lnd.restore_macaroon.iter_mut().for_each(abs);
        self.lnd.backup_key_file.iter_mut().for_each(abs);
        self.seal.recipients_files.iter_mut().for_each(abs);
        if let Some(e) = &mut self.escrow {
            e.resolve_paths(base);
        }
        for t in &mut self.targets {
            match t {
                TargetConfig::Dir(d) => abs(&mut d.path),
                TargetConfig::Restic(r) => {
                    let records = self.state_dir.join(crate::state_dir::RESTIC_LOCKS_DIR);
                    r.lock_records = Some(records.into_boxed_path());
                    abs(&mut r.password_file);
                    r.cacert.iter_mut().for_each(abs);
                    r.http_credentials_file.iter_mut().for_each(abs);
                    r.rclone_config.iter_mut().for_each(abs);
                    // A bare name (`rclone`) is looked up on PATH; a path is the config's.
                    if r.rclone_program
                        .as_ref()
                        .is_some_and(|p| p.components().count() > 1)
                    {
                        r.rclone_program.iter_mut().for_each(abs);
                    }
                    if !r.is_rest()
                        && !r.repository.is_empty()
                        && repo_scheme(&r.repository).is_none()
                    {
                        let mut p = PathBuf::from(&r.repository);
                        abs(&mut p);
                        r.repository = p.display().to_string();
                    }
                }
            }
        }
    }

    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.source.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        parse_address(&self.lnd.address).map_err(|m| self.invalid("lnd.address", m))?;
        if self.lnd.timeout_seconds == 0 {
            return Err(self.invalid("lnd.timeout_seconds", "must be at least 1"));
        }
        if self.lnd.reconnect_max_seconds == 0 {
            return Err(self.invalid("lnd.reconnect_max_seconds", "must be at least 1"));
        }
        self.schedule()
            .map_err(|m| self.invalid("backup.schedule", m))?;
        if self.backup.keep == 0 {
            return Err(self.invalid("backup.keep", "must be at least 1"));
        }
        if self.verify.max_age_hours == 0 || self.verify.max_age_hours > MAX_VERIFY_MAX_AGE_HOURS {
            return Err(self.invalid(
                "verify.max_age_hours",
                format!("must be between 1 and {MAX_VERIFY_MAX_AGE_HOURS}"),
            ));
        }
        if let Some(v) = &self.verify.restore_lnd_version {
            v.parse::<crate::chanbackup::LndVersion>()
                .map_err(|m| self.invalid("verify.restore_lnd_version", m))?;
        }
        if self.seal.recipients.is_empty() && self.seal.recipients_files.is_empty() {
            return Err(self.invalid(
                "seal.recipients",
                "no recipients: add at least one age1… or ssh- public key, or a recipients_files entry",
            ));
        }
        for k in &self.seal.manifest_public_keys {
            crate::signing::parse_public(k)
                .map_err(|m| self.invalid("seal.manifest_public_keys", m))?;
        }
        let d = &self.delivery;
        if d.retry_initial_seconds == 0 {
            return Err(self.invalid("delivery.retry_initial_seconds", "must be at least 1"));
        }
        if d.retry_max_seconds < d.retry_initial_seconds {
            return Err(self.invalid(
                "delivery.retry_max_seconds",
                "must not be smaller than delivery.retry_initial_seconds",
            ));
        }
        if d.timeout_seconds == 0 {
            return Err(self.invalid("delivery.timeout_seconds", "must be at least 1"));
        }
        if d.min_interval_ms > 60_000 {
            return Err(self.invalid(
                "delivery.min_interval_ms",
                "must be at most 60000 (a minute); 0 uploads every change",
            ));
        }
        if d.shutdown_grace_seconds > 600 {
            return Err(self.invalid(
                "delivery.shutdown_grace_seconds",
                "must be at most 600 (systemd's stop timeout must cover it)",
            ));
        }
        if let Some(e) = &self.escrow {
            e.validate().map_err(|(key, m)| self.invalid(key, m))?;
        }
        let mut names = BTreeSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            let key = format!("target[{i}].name");
            let name = t.name();
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(self.invalid(
                    key,
                    format!(
                        "{:?} is not a valid name (1-64 characters: letters, digits, '-', '_')",
                        name
                    ),
                ));
            }
            if !names.insert(name) {
                return Err(self.invalid(key, format!("duplicate target name {name:?}")));
            }
            t.check_privacy()
                .map_err(|(k, m)| self.invalid(format!("target[{i}].{k}"), m))?;
            if let TargetConfig::Restic(r) = t {
                validate_rclone(r).map_err(|(k, m)| self.invalid(format!("target[{i}].{k}"), m))?;
                validate_restic(r).map_err(|(k, m)| self.invalid(format!("target[{i}].{k}"), m))?;
            }
        }
        Ok(())
    }

    /// The parsed export schedule.
    pub fn schedule(&self) -> Result<cron::Schedule, String> {
        cron::Schedule::from_str(&self.backup.schedule).map_err(|e| {
            format!(
                "{:?} is not a cron expression with a seconds field (e.g. \"0 */15 * * * *\"): {e}",
                self.backup.schedule
            )
        })
    }

    pub fn lnd_timeout(&self) -> Duration {
        Duration::from_secs(self.lnd.timeout_seconds)
    }

    /// The effective config as TOML. It holds no secrets (only paths to them).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// The `scheme` of a restic `scheme:…` repository string (`s3`, `sftp`, …), if any.
fn repo_scheme(repo: &str) -> Option<&str> {
    let (scheme, _) = repo.split_once(':')?;
    (scheme.len() > 1 && scheme.chars().all(|c| c.is_ascii_alphanumeric())).then_some(scheme)
}

/// An `rclone:REMOTE:path` repository and the rclone keys: (key, message)
/// of the first problem, naming the target.
fn validate_rclone(r: &ResticTargetConfig) -> Result<(), (&'static str, String)> {
    let name = &r.name;
    let Some(spec) = r.rclone_remote() else {
        for (key, set) in [
            ("rclone_config", r.rclone_config.is_some()),
            ("rclone_program", r.rclone_program.is_some()),
        ] {
            if set {
                return Err((
                    key,
                    format!("target {name:?}: only applies to an rclone:REMOTE:path repository"),
                ));
            }
        }
        return Ok(());
    };
    let shape =
        "write rclone:REMOTE:path with REMOTE a remote of rclone_config (e.g. rclone:b2:chanvault)";
    let (remote, path) = spec.split_once(':').unwrap_or((spec, ""));
    if remote.is_empty() {
        return Err((
            "repository",
            format!(
                "target {name:?}: {:?} names no rclone remote: {shape}",
                r.repository
            ),
        ));
    }
    if let Some((bare, _)) = remote.split_once(',') {
        // The options are not echoed: they may hold a key.
        return Err((
            "repository",
            format!(
                "target {name:?}: the rclone remote {bare:?} carries connection-string options: define the remote in rclone_config instead (its credentials stay in that file)"
            ),
        ));
    }
    if path.trim().is_empty() {
        return Err((
            "repository",
            format!(
                "target {name:?}: {:?} names no path on the remote {remote}: {shape}",
                r.repository
            ),
        ));
    }
    if r.rclone_program
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        return Err((
            "rclone_program",
            format!("target {name:?}: must not be empty"),
        ));
    }
    Ok(())
}

/// The restic target's keys: (key, message) of the first problem.
fn validate_restic(r: &ResticTargetConfig) -> Result<(), (&'static str, String)> {
    let repo = r.repository.as_str();
    if repo.is_empty() {
        return Err(("repository", "must not be empty".into()));
    }
    if r.rclone_remote().is_some() {
        // Checked in `validate_rclone`; REST-only keys do not apply.
        if r.cacert.is_some() {
            return Err((
                "cacert",
                "only applies to a rest:https:// repository".into(),
            ));
        }
        if r.http_credentials_file.is_some() {
            return Err((
                "http_credentials_file",
                "only applies to a rest: repository (an rclone remote's credentials are in rclone_config)".into(),
            ));
        }
    } else if let Some(url) = repo.strip_prefix("rest:") {
        let Some(rest) = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
        else {
            return Err((
                "repository",
                "a REST repository looks like \"rest:https://host:8000/path/\"".into(),
            ));
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err((
                "repository",
                "must not contain credentials: put `user:password` in a file and name it in http_credentials_file".into(),
            ));
        }
        if authority.is_empty() {
            return Err(("repository", "the REST URL has no host".into()));
        }
        if r.cacert.is_some() && !url.starts_with("https://") {
            return Err((
                "cacert",
                "only applies to a rest:https:// repository".into(),
            ));
        }
        if r.http_credentials_file.is_some()
            && url.starts_with("http://")
            && !proxy::clear_http_ok(url, r.proxy.is_some())
        {
            return Err((
                "http_credentials_file",
                format!(
                    "target {:?} would send these REST credentials in clear over the network to {repo}: use rest:https:// (basic auth over http:// is allowed only to a loopback address: {}, or to a .onion service through proxy)",
                    r.name,
                    net::LOOPBACK_HOSTS
                ),
            ));
        }
    } else {
        if let Some(scheme) = repo_scheme(repo) {
            return Err((
                "repository",
                format!(
                    "{scheme}: repositories are not supported: use a local path, rest:https://… or rclone:REMOTE:path (rclone reaches {scheme} too)"
                ),
            ));
        }
        if r.cacert.is_some() {
            return Err((
                "cacert",
                "only applies to a rest:https:// repository".into(),
            ));
        }
        if r.http_credentials_file.is_some() {
            return Err((
                "http_credentials_file",
                "only applies to a rest: repository".into(),
            ));
        }
    }
    let tag_ok = |t: &str| !t.is_empty() && !t.contains(',') && !t.chars().any(char::is_whitespace);
    if !tag_ok(&r.host) {
        return Err(("host", format!("{:?} is not a usable hostname", r.host)));
    }
    if let Some(t) = r.tags.iter().find(|t| !tag_ok(t)) {
        return Err((
            "tags",
            format!("{t:?}: a tag must be non-empty, without commas or spaces"),
        ));
    }
    if r.forget_keep_last == Some(0) {
        return Err((
            "forget_keep_last",
            "must be at least 1 (leave it out to keep every snapshot)".into(),
        ));
    }
    if r.timeout_seconds == 0 {
        return Err(("timeout_seconds", "must be at least 1".into()));
    }
    proxy::check_target(r)?;
    Ok(())
}

/// toml's own Display spans several lines with a source excerpt; say
/// "line L, column C: message" on one line instead.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let msg = crate::text::one_line(&e.message().trim().replace('\n', " "));
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {col}: {msg}")
        }
        None => msg,
    }
}

/// Split an `lnd.address` into host and port. Accepts `host:port`,
/// `https://host:port` and `[v6]:port`.
pub fn parse_address(address: &str) -> Result<(String, u16), String> {
    let rest = if let Some(r) = address.strip_prefix("https://") {
        r
    } else if address.contains("://") {
        return Err(format!(
            "{address:?}: LND's gRPC interface always uses TLS; write host:port or https://host:port"
        ));
    } else {
        address
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, p) = v6
            .split_once("]:")
            .ok_or_else(|| format!("{address:?}: expected [IPv6]:PORT"))?;
        (h, p)
    } else {
        rest.rsplit_once(':')
            .ok_or_else(|| format!("{address:?}: expected HOST:PORT, e.g. 127.0.0.1:10009"))?
    };
    if host.is_empty() {
        return Err(format!("{address:?}: missing host"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{address:?}: {port:?} is not a port number"))?;
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests;
