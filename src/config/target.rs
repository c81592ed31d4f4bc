//! The settings of each target kind, and the privacy settings every kind shares.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{DEFAULT_REQUEST_TIMEOUT_SECONDS, DEFAULT_RESTIC_HOST};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResticTargetConfig {
    /// Unique name, used in the journal, logs and `status`.
    pub name: String,
    /// `/path`, `rest:https://host:8000/path/`, `rest:http://…` or
    /// `rclone:REMOTE:path` (restic's own syntax). No credentials in here.
    pub repository: String,
    /// File holding the repository password (restic's `--password-file`).
    pub password_file: PathBuf,
    /// PEM certificate(s) to trust for a `rest:https://` server (self-signed rest-server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacert: Option<PathBuf>,
    /// File holding `user:password` for the REST server's basic auth (rest-server's htpasswd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_credentials_file: Option<PathBuf>,
    /// Hostname recorded in the snapshots; stable so `restic snapshots --host` finds them all.
    #[serde(default = "default_restic_host")]
    pub host: String,
    /// Extra tags on every snapshot (besides `chanvault`, `channels:N`, `fp:…`, `backup:…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Opt-in retention: after each backup, forget all but the newest N chanvault
    /// snapshots of this host. Never prunes (prune from a trusted host); off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forget_keep_last: Option<u32>,
    /// Per HTTP request to a `rest:` server (connect, send, answer).
    #[serde(default = "default_request_timeout")]
    pub timeout_seconds: u64,
    /// `rclone:` repositories: the rclone.conf that defines the remote
    /// (given to rclone as `RCLONE_CONFIG`, as restic users do); rclone's
    /// own default when unset. Owner-readable only: it holds the remote's
    /// credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rclone_config: Option<PathBuf>,
    /// `rclone:` repositories: the rclone binary (`rclone` on `PATH` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rclone_program: Option<PathBuf>,
    /// `socks5h://HOST:PORT` on loopback (Tor): every connection to a `rest:`
    /// server, or rclone's to an `rclone:` remote, goes through it, never direct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// `padded`: pad to a size bucket, delay uploads, send cover uploads (docs/privacy.md).
    #[serde(default, skip_serializing_if = "Privacy::is_plain")]
    pub privacy: Privacy,
    /// `padded` only: the most an upload is delayed, chosen at random (0: no delay).
    #[serde(default = "default_jitter", skip_serializing_if = "is_default_jitter")]
    pub privacy_jitter_seconds: u64,
    /// `padded` only: the mean time between cover uploads (exponentially distributed).
    #[serde(
        default = "default_cover_mean",
        skip_serializing_if = "is_default_cover_mean"
    )]
    pub privacy_cover_mean_hours: f64,
    /// Not a setting: `state_dir/restic-locks`, where the lock files this
    /// target writes are recorded (filled in when the config is loaded), so
    /// that only those are ever removed as stale.
    /// (A `Box<Path>`: two words, keeping `TargetConfig`'s variants near in size.)
    #[serde(skip)]
    pub lock_records: Option<Box<Path>>,
}

impl ResticTargetConfig {
    /// True for `rest:` repositories.
    pub fn is_rest(&self) -> bool {
        self.repository.starts_with("rest:")
    }

    /// `REMOTE:path` of an `rclone:` repository.
    pub fn rclone_remote(&self) -> Option<&str> {
        self.repository.strip_prefix("rclone:")
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirTargetConfig {
    /// Unique name, used in the journal, logs and `status`.
    pub name: String,
    pub path: PathBuf,
    /// `padded`: pad to a size bucket, delay uploads, send cover uploads (docs/privacy.md).
    #[serde(default, skip_serializing_if = "Privacy::is_plain")]
    pub privacy: Privacy,
    /// `padded` only: the most an upload is delayed, chosen at random (0: no delay).
    #[serde(default = "default_jitter", skip_serializing_if = "is_default_jitter")]
    pub privacy_jitter_seconds: u64,
    /// `padded` only: the mean time between cover uploads (exponentially distributed).
    #[serde(
        default = "default_cover_mean",
        skip_serializing_if = "is_default_cover_mean"
    )]
    pub privacy_cover_mean_hours: f64,
}

/// What an observer of a target may learn from its uploads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Privacy {
    /// Uploads as they come: sizes track the channel count, times track channel events.
    #[default]
    Plain,
    /// Sizes rounded up to a bucket, uploads delayed at random, cover uploads between.
    Padded,
}

impl Privacy {
    fn is_plain(&self) -> bool {
        *self == Privacy::Plain
    }
}

/// Default `privacy_jitter_seconds`.
pub const DEFAULT_PRIVACY_JITTER_SECONDS: u64 = 30;
/// Default `privacy_cover_mean_hours`.
pub const DEFAULT_PRIVACY_COVER_MEAN_HOURS: f64 = 6.0;
/// Longest `privacy_jitter_seconds`: beyond it, a backup stays off-site too long.
pub const MAX_PRIVACY_JITTER_SECONDS: u64 = 3600;
/// Longest `privacy_cover_mean_hours` (a week).
pub const MAX_PRIVACY_COVER_MEAN_HOURS: f64 = 168.0;

fn default_jitter() -> u64 {
    DEFAULT_PRIVACY_JITTER_SECONDS
}
fn is_default_jitter(v: &u64) -> bool {
    *v == DEFAULT_PRIVACY_JITTER_SECONDS
}
fn default_cover_mean() -> f64 {
    DEFAULT_PRIVACY_COVER_MEAN_HOURS
}
fn is_default_cover_mean(v: &f64) -> bool {
    *v == DEFAULT_PRIVACY_COVER_MEAN_HOURS
}
fn default_restic_host() -> String {
    DEFAULT_RESTIC_HOST.to_string()
}
fn default_request_timeout() -> u64 {
    DEFAULT_REQUEST_TIMEOUT_SECONDS
}

/// A target's privacy settings, as the delivery worker and the cover task use them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetPrivacy {
    pub padded: bool,
    /// The most an upload waits (zero when plain).
    pub jitter: std::time::Duration,
    /// The mean gap between cover uploads (`None` when plain).
    pub cover_mean: Option<std::time::Duration>,
}

impl TargetPrivacy {
    fn of(privacy: Privacy, jitter_s: u64, cover_h: f64) -> Self {
        let padded = privacy == Privacy::Padded;
        Self {
            padded,
            jitter: std::time::Duration::from_secs(if padded { jitter_s } else { 0 }),
            cover_mean: padded.then(|| std::time::Duration::from_secs_f64(cover_h * 3600.0)),
        }
    }
}

impl super::TargetConfig {
    /// This target's privacy settings.
    pub fn privacy(&self) -> TargetPrivacy {
        match self {
            super::TargetConfig::Dir(d) => TargetPrivacy::of(
                d.privacy,
                d.privacy_jitter_seconds,
                d.privacy_cover_mean_hours,
            ),
            super::TargetConfig::Restic(r) => TargetPrivacy::of(
                r.privacy,
                r.privacy_jitter_seconds,
                r.privacy_cover_mean_hours,
            ),
        }
    }

    /// The privacy keys' problem, if any: (key, message).
    pub(super) fn check_privacy(&self) -> Result<(), (&'static str, String)> {
        let (jitter, cover) = match self {
            super::TargetConfig::Dir(d) => (d.privacy_jitter_seconds, d.privacy_cover_mean_hours),
            super::TargetConfig::Restic(r) => {
                (r.privacy_jitter_seconds, r.privacy_cover_mean_hours)
            }
        };
        if jitter > MAX_PRIVACY_JITTER_SECONDS {
            return Err((
                "privacy_jitter_seconds",
                format!(
                    "{jitter} is above {MAX_PRIVACY_JITTER_SECONDS}: a backup would wait too long to go off-site"
                ),
            ));
        }
        if !(cover.is_finite() && cover > 0.0 && cover <= MAX_PRIVACY_COVER_MEAN_HOURS) {
            return Err((
                "privacy_cover_mean_hours",
                format!(
                    "{cover} is not a number of hours above 0 and at most {MAX_PRIVACY_COVER_MEAN_HOURS}"
                ),
            ));
        }
        Ok(())
    }
}
