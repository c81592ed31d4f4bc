//! `rclone:REMOTE:path` repositories: every rclone backend as a restic
//! target. rclone serves the remote as a restic REST server on 127.0.0.1
//! (`rclone serve restic --addr 127.0.0.1:0`) with a user and password made
//! up for this process and handed over in rclone's environment, never argv;
//! the target then talks to it as to any `rest:` server (the same REST
//! backend, existence probe and lock files). Stock restic reaches the same
//! repository with `restic -r rclone:REMOTE:path` and the same
//! `RCLONE_CONFIG`.
//!
//! This is what rustic_backend's `RcloneBackend` (feature `rclone`) does too;
//! we start rclone ourselves because that backend keeps the REST URL and its
//! credentials to itself (our lock files and probe need them), sends rclone's
//! messages to the `log` crate (we could not say why a remote failed), finds
//! rclone only on `PATH` unless given a whole command line, and kills rclone
//! on drop without reaping it. Here the child is killed and reaped on drop,
//! and rclone's error lines are kept for the one-line error.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distributions::Alphanumeric;

use super::ResticTarget;
use crate::config::ResticTargetConfig;
use crate::secret::SecretString;
use crate::sink::{ErrorKind, TargetError};

/// How long rclone may take to open the remote and start serving.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an error path waits for rclone's own line about the failure
/// (rclone writes it before answering, but our reader may lag behind).
const REASON_WAIT: Duration = Duration::from_millis(500);
/// rclone's line once it serves (`… Serving restic REST API on http://127.0.0.1:PORT/`).
const MARKER: &str = "Serving restic REST API on ";
/// rclone error lines kept (only the newest is ever shown).
const KEPT_LINES: usize = 16;
/// rclone settings from the environment that would hide its log from us or
/// change how it serves: the command line below decides these.
const ENV_OVERRIDDEN: &[&str] = &[
    "RCLONE_LOG_FILE",
    "RCLONE_LOG_LEVEL",
    "RCLONE_LOG_FORMAT",
    "RCLONE_USE_JSON_LOG",
    "RCLONE_VERBOSE",
    "RCLONE_QUIET",
    "RCLONE_STDIO",
    "RCLONE_HTPASSWD",
    "RCLONE_ADDR",
    // At debug level a dump would put the REST credentials in the log.
    "RCLONE_DUMP",
    "RCLONE_DUMP_HEADERS",
    "RCLONE_DUMP_BODIES",
    "RCLONE_DUMP_AUTH",
];

/// The error lines rclone wrote, newest last, without their timestamps.
#[derive(Clone, Default)]
pub(super) struct RcloneLog(Arc<Mutex<VecDeque<String>>>);

impl RcloneLog {
    fn lines(&self) -> MutexGuard<'_, VecDeque<String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, line: String) {
        let mut l = self.lines();
        if l.len() == KEPT_LINES {
            l.pop_front();
        }
        l.push_back(line);
    }

    /// Forget what rclone said before this operation.
    pub(super) fn clear(&self) {
        self.lines().clear();
    }

    /// rclone's newest error line, waiting briefly for it.
    fn take_newest(&self) -> Option<String> {
        let start = Instant::now();
        loop {
            if let Some(line) = self.lines().drain(..).next_back() {
                return Some(line);
            }
            if start.elapsed() >= REASON_WAIT {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running `rclone serve restic`; killed and reaped on drop.
pub(super) struct RcloneServer {
    child: Mutex<Child>,
    /// `http://127.0.0.1:PORT/`
    pub(super) url: String,
    pub(super) user: String,
    pub(super) pass: SecretString,
    reader: Option<JoinHandle<()>>,
}

impl RcloneServer {
    /// Has rclone exited (killed, crashed)?
    pub(super) fn gone(&self) -> bool {
        let mut c = self.child.lock().unwrap_or_else(|e| e.into_inner());
        !matches!(c.try_wait(), Ok(None))
    }
}

impl Drop for RcloneServer {
    fn drop(&mut self) {
        let c = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = c.kill();
        let _ = c.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// A made-up credential for one rclone server: letters and digits.
fn random_word(len: usize) -> String {
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A line of rclone's log without the `2024/01/02 03:04:05 ` timestamp.
fn strip_time(line: &str) -> &str {
    let b = line.as_bytes();
    let stamped = b.len() > 20
        && b[4] == b'/'
        && b[7] == b'/'
        && b[13] == b':'
        && b[19] == b' '
        && b[..4].iter().all(u8::is_ascii_digit);
    if stamped { &line[20..] } else { line }
}

/// The error in one of rclone's log lines, if it is one. rclone logs some
/// failures only at debug level (a GET it answers with 404 because the
/// remote is unreachable), so debug lines that carry an error count too.
/// rclone's fatal start-up line (`Failed to create file system for
/// "REMOTE:path": …`) has no level; our message names the remote, so that
/// prefix goes, as does the retry counter of `low level retry N/M (error …)`.
fn error_of(line: &str) -> Option<String> {
    let l = strip_time(line.trim_end());
    let mut quiet = false;
    let mut l = l;
    for (level, is_quiet) in [
        ("ERROR : ", false),
        ("CRITICAL: ", false),
        ("NOTICE: ", true),
        ("INFO  : ", true),
        ("DEBUG : ", true),
    ] {
        if let Some(rest) = l.strip_prefix(level) {
            (l, quiet) = (rest, is_quiet);
            break;
        }
    }
    if quiet && !l.contains(" error") && !l.contains("(error ") {
        return None;
    }
    if let Some(rest) = l.strip_prefix("Failed to create file system for ") {
        l = rest.split_once("\": ").map_or(rest, |(_, why)| why);
    }
    if let Some((_, why)) = l.split_once("low level retry ")
        && let Some((_, e)) = why.split_once("(error ")
    {
        l = e.strip_suffix(')').unwrap_or(e);
    }
    let l = l.trim();
    (!l.is_empty()).then(|| crate::text::one_line(l))
}

/// The class of a failure from rclone's words for it.
fn kind_of(reason: &str) -> ErrorKind {
    let r = reason.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| r.contains(w));
    if has(&["timeout", "deadline exceeded", "timed out"]) {
        ErrorKind::Timeout
    } else if has(&[
        "connection refused",
        "no such host",
        "network is unreachable",
        "no route to host",
        "connection reset",
    ]) {
        ErrorKind::Unreachable
    } else if has(&[
        "401",
        "403",
        "unauthorized",
        "forbidden",
        "permission denied",
    ]) {
        ErrorKind::Refused
    } else {
        ErrorKind::Other
    }
}

/// Read rclone's stderr: hand over the URL once it serves, keep error lines.
fn read_stderr(stderr: ChildStderr, log: RcloneLog, url: mpsc::Sender<String>) {
    let mut url = Some(url);
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        tracing::trace!(rclone = %crate::text::one_line(strip_time(&line)), "rclone said");
        if let Some(i) = line.find(MARKER) {
            if let Some(tx) = url.take() {
                // rclone 1.61 and later bracket the URL.
                let u = line[i + MARKER.len()..].trim().trim_matches(['[', ']']);
                let _ = tx.send(u.to_string());
            }
            continue;
        }
        if let Some(e) = error_of(&line) {
            log.push(e);
        }
    }
}

/// Refuse an rclone.conf that group or others can read: it holds the
/// remote's credentials.
fn check_config_file(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let f =
        std::fs::File::open(path).map_err(|e| format!("cannot read rclone_config {shown}: {e}"))?;
    match crate::fsutil::too_open(&f) {
        Ok(None) => Ok(()),
        Ok(Some(mode)) => Err(format!(
            "rclone_config {shown} is readable by group or others (mode {mode:o}); it holds the remote's credentials: chmod 600 it"
        )),
        Err(e) => Err(format!("cannot read rclone_config {shown}: {e}")),
    }
}

/// Start `rclone serve restic` for the target's remote and wait until it serves.
fn start(cfg: &ResticTargetConfig, log: &RcloneLog) -> Result<RcloneServer, (ErrorKind, String)> {
    let remote = cfg.rclone_remote().unwrap_or_default();
    if let Some(conf) = &cfg.rclone_config {
        check_config_file(conf).map_err(|m| (ErrorKind::Refused, m))?;
    }
    let program = cfg
        .rclone_program
        .clone()
        .unwrap_or_else(|| "rclone".into());
    let (user, pass) = (random_word(16), SecretString::new(random_word(32)));
    let mut cmd = Command::new(&program);
    cmd.args(["serve", "restic", "--addr", "127.0.0.1:0"])
        .args(["--log-level", "DEBUG"])
        .arg(remote)
        .env("RCLONE_USER", &user)
        .env("RCLONE_PASS", pass.expose())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in ENV_OVERRIDDEN {
        cmd.env_remove(var);
    }
    if let Some(conf) = &cfg.rclone_config {
        cmd.env("RCLONE_CONFIG", conf);
    }
    super::proxy::rclone_through(cfg, &program, &mut cmd)?;
    let shown = program.display();
    let mut child = cmd.spawn().map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => {
                "; install rclone (Debian: apt install rclone) or set rclone_program"
            }
            _ => "",
        };
        (
            ErrorKind::Other,
            format!("cannot run rclone ({shown}): {e}{hint}"),
        )
    })?;
    let (tx, rx) = mpsc::channel();
    let reader = child.stderr.take().map(|stderr| {
        let log = log.clone();
        std::thread::spawn(move || read_stderr(stderr, log, tx))
    });
    let mut server = RcloneServer {
        child: Mutex::new(child),
        url: String::new(),
        user,
        pass,
        reader,
    };
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(url) if url.starts_with("http://127.0.0.1:") => {
            server.url = url;
            Ok(server)
        }
        Ok(url) => Err((
            ErrorKind::Other,
            format!("rclone serves the remote {remote} at {url:?}, not on 127.0.0.1"),
        )),
        Err(RecvTimeoutError::Disconnected) => {
            drop(server);
            let why = log.take_newest();
            let kind = why.as_deref().map_or(ErrorKind::Other, kind_of);
            let why = why.unwrap_or_else(|| "rclone exited without saying why".into());
            Err((
                kind,
                format!("rclone cannot open the remote {remote}: {why}"),
            ))
        }
        Err(RecvTimeoutError::Timeout) => Err((
            ErrorKind::Timeout,
            format!(
                "rclone did not start serving the remote {remote} within {}s",
                START_TIMEOUT.as_secs()
            ),
        )),
    }
}

impl ResticTarget {
    /// Start rclone for an `rclone:` repository.
    pub(super) fn start_rclone(&self) -> Result<RcloneServer, TargetError> {
        self.rclone_log.clear();
        let server =
            start(&self.cfg, &self.rclone_log).map_err(|(kind, m)| self.err(m).with_kind(kind))?;
        tracing::debug!(target = %self.name, remote = %self.cfg.rclone_remote().unwrap_or_default(), "rclone serves the remote");
        Ok(server)
    }

    /// For an `rclone:` repository, the failure in rclone's words (its
    /// newest error line) instead of the HTTP status it answered with.
    pub(super) fn rclone_reason(&self, what: &str) -> Option<TargetError> {
        let remote = self.cfg.rclone_remote()?;
        let why = self.rclone_log.take_newest()?;
        let kind = kind_of(&why);
        Some(
            self.err(format!("the rclone remote {remote} failed ({what}): {why}"))
                .with_kind(kind),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rclone_lines_become_one_clear_reason() {
        assert_eq!(
            error_of("2026/12/01 09:35:18 Failed to create file system for \"down:repo\": read metadata failed: Propfind \"http://127.0.0.1:1/repo\": dial tcp 127.0.0.1:1: connect: connection refused").as_deref(),
            Some("read metadata failed: Propfind \"http://127.0.0.1:1/repo\": dial tcp 127.0.0.1:1: connect: connection refused")
        );
        assert_eq!(
            error_of(
                "2026/12/01 09:35:41 ERROR : locks/aaaa: Post request put error: 401 Unauthorized\n"
            )
            .as_deref(),
            Some("locks/aaaa: Post request put error: 401 Unauthorized")
        );
        assert_eq!(
            error_of(
                "2026/12/01 09:34:49 NOTICE: Local file system at /x: Serving restic REST API on http://127.0.0.1:1/"
            ),
            None
        );
        assert_eq!(error_of("2026/12/01 09:34:49 INFO  : x: Copied"), None);
        assert_eq!(
            error_of("2026/12/01 09:42:36 DEBUG : webdav root 'repo': GET /keys/"),
            None
        );
        assert_eq!(
            error_of("2026/12/01 09:42:36 DEBUG : config: Get request open error: Get \"http://127.0.0.1:1/repo/config\": dial tcp 127.0.0.1:1: connect: connection refused").as_deref(),
            Some("config: Get request open error: Get \"http://127.0.0.1:1/repo/config\": dial tcp 127.0.0.1:1: connect: connection refused")
        );
        assert_eq!(
            error_of("2026/12/01 09:42:33 DEBUG : pacer: low level retry 8/10 (error Get \"http://127.0.0.1:1/c\": dial tcp 127.0.0.1:1: connect: connection refused)").as_deref(),
            Some("Get \"http://127.0.0.1:1/c\": dial tcp 127.0.0.1:1: connect: connection refused")
        );
        assert_eq!(
            kind_of("dial tcp: connect: connection refused"),
            ErrorKind::Unreachable
        );
        assert_eq!(
            kind_of("read metadata failed: Unauthorized: 401 Unauthorized"),
            ErrorKind::Refused
        );
        assert_eq!(
            kind_of("didn't find section in config file"),
            ErrorKind::Other
        );
    }

    #[test]
    fn the_log_keeps_the_newest_lines_only() {
        let log = RcloneLog::default();
        for i in 0..40 {
            log.push(format!("e{i}"));
        }
        assert_eq!(log.lines().len(), KEPT_LINES);
        assert_eq!(log.take_newest().as_deref(), Some("e39"));
        assert!(log.lines().is_empty(), "taken means gone");
    }

    #[test]
    fn made_up_credentials_differ() {
        let (a, b) = (random_word(32), random_word(32));
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
