//! `chanvault status`: what the spool holds and what each target received.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::pipeline::short;
use crate::spool::{BackupRecord, SpoolError};

#[derive(Debug, Serialize)]
pub struct BackupSummary {
    pub id: String,
    pub created: DateTime<Utc>,
    pub source: String,
    pub channels: usize,
    pub fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspect: Option<String>,
}

impl From<&BackupRecord> for BackupSummary {
    fn from(r: &BackupRecord) -> Self {
        Self {
            id: r.id.clone(),
            created: r.created,
            source: r.source.clone(),
            channels: r.channels,
            fingerprint: r.fingerprint.clone(),
            suspect: r.public_suspect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TargetStatus {
    pub name: String,
    pub kind: &'static str,
    /// The backup the target holds as current.
    pub current: Option<BackupSummary>,
    /// True when the target's current backup is the spool's last good one.
    pub up_to_date: bool,
    pub last_success: Option<DateTime<Utc>>,
    pub pending: usize,
    pub failures: u64,
    pub last_error: Option<String>,
    pub next_retry: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub state_dir: String,
    /// The key that signs this state dir's manifests (`ed25519:…`), for the
    /// config's `seal.manifest_public_keys`; `None` before the first backup.
    pub manifest_key: Option<String>,
    /// Whether the config lists it (a recovery machine can check manifests).
    pub manifest_key_in_config: bool,
    pub backups: usize,
    pub newest: Option<BackupSummary>,
    pub last_good: Option<BackupSummary>,
    pub suspects: Vec<BackupSummary>,
    pub targets: Vec<TargetStatus>,
}

impl Status {
    /// Read only: creates, locks and sweeps nothing.
    pub fn read(cfg: &Config) -> Result<Self, SpoolError> {
        if !cfg.state_dir.is_dir() {
            return Err(SpoolError::NoStateDir {
                path: cfg.state_dir.clone(),
            });
        }
        let j = crate::spool::read_journal(&cfg.state_dir)?.unwrap_or_default();
        let targets = cfg
            .targets
            .iter()
            .map(|t| {
                let name = t.name();
                let st = j.targets.get(name).cloned().unwrap_or_default();
                let current = st.current.as_deref().and_then(|id| j.get(id));
                TargetStatus {
                    name: name.to_string(),
                    kind: crate::sink::build(t).kind(),
                    up_to_date: j
                        .due_for(name)
                        .is_some_and(|d| st.current.as_deref() == Some(d.id.as_str())),
                    current: current.map(BackupSummary::from),
                    last_success: st.last_success,
                    pending: j.pending_for(name).len(),
                    failures: st.failures,
                    last_error: st.last_error,
                    next_retry: st.next_retry,
                }
            })
            .collect();
        let manifest_key = crate::signing::ManifestKeys::load(&cfg.state_dir)
            .ok()
            .flatten()
            .map(|k| k.public());
        Ok(Self {
            state_dir: cfg.state_dir.display().to_string(),
            manifest_key_in_config: manifest_key
                .as_ref()
                .is_some_and(|k| cfg.seal.manifest_public_keys.contains(k)),
            manifest_key,
            backups: j.backups.len(),
            newest: j.newest().map(BackupSummary::from),
            last_good: j.last_good().map(BackupSummary::from),
            suspects: j.suspects().map(BackupSummary::from).collect(),
            targets,
        })
    }

    /// The human table.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let line = |b: &BackupSummary| {
            format!(
                "{}  {:>5} channels  fp {}  backup {}  ({}){}",
                b.created.format("%Y-%m-%d %H:%M:%SZ"),
                b.channels,
                short(&b.fingerprint),
                short(&b.id),
                b.source,
                b.suspect
                    .as_deref()
                    .map(|r| format!("\n           SUSPECT: {r}"))
                    .unwrap_or_default()
            )
        };
        out += &format!("spool      {} ({} backups)\n", self.state_dir, self.backups);
        if let Some(k) = &self.manifest_key {
            out += &format!(
                "signing    {k}{}\n",
                if self.manifest_key_in_config {
                    ""
                } else {
                    "  (not in seal.manifest_public_keys: add it, so restore on a fresh machine can check manifests)"
                }
            );
        }
        out += &format!(
            "newest     {}\n",
            self.newest.as_ref().map_or("none yet".into(), line)
        );
        out += &format!(
            "last good  {}\n",
            self.last_good.as_ref().map_or("none yet".into(), line)
        );
        if !self.suspects.is_empty() {
            out += &format!(
                "suspect    {} backup(s) flagged by the shrink guard (kept, never used as last good)\n",
                self.suspects.len()
            );
        }
        out += "\n";
        let rows: Vec<[String; 6]> = self
            .targets
            .iter()
            .map(|t| {
                [
                    t.name.clone(),
                    t.kind.to_string(),
                    match &t.current {
                        Some(c) => format!(
                            "{} {}{}",
                            short(&c.id),
                            t.last_success
                                .map(|s| s.format("%Y-%m-%d %H:%M:%SZ").to_string())
                                .unwrap_or_default(),
                            if t.up_to_date { "" } else { " (behind)" }
                        ),
                        None => "nothing yet".into(),
                    },
                    t.pending.to_string(),
                    t.last_error.clone().unwrap_or_else(|| "-".into()),
                    t.next_retry
                        .filter(|_| t.last_error.is_some())
                        .map(|r| r.format("%H:%M:%SZ").to_string())
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let header = [
            "TARGET",
            "KIND",
            "CURRENT (delivered)",
            "PENDING",
            "LAST ERROR",
            "NEXT RETRY",
        ];
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let fmt_row = |cells: Vec<&str>| {
            let mut s = cells
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ");
            s.truncate(s.trim_end().len());
            s + "\n"
        };
        if self.targets.is_empty() {
            out += "no targets configured\n";
        } else {
            out += &fmt_row(header.to_vec());
            for r in &rows {
                out += &fmt_row(r.iter().map(String::as_str).collect());
            }
        }
        out
    }
}
