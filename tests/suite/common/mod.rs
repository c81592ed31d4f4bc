//! Shared test fixture: an LND simulator on 127.0.0.1, an age identity, and a
//! config with two dir targets, all in a temp dir that goes away with it.
#![allow(dead_code)]

pub mod bao;
pub mod vectors;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chanvault::config::Config;
use chanvault::sim::{SimOptions, Simulator};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub sim: Simulator,
    pub config: PathBuf,
    pub identity: PathBuf,
    pub recipient: String,
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with_options(|_| {}).await
    }

    pub async fn with_options(tweak: impl FnOnce(&mut SimOptions)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = SimOptions::new(dir.path().join("lnd"));
        tweak(&mut opts);
        let sim = Simulator::start(opts).await.expect("simulator starts");
        let identity = dir.path().join("identity.txt");
        let recipient = chanvault::seal::write_new_identity(&identity).expect("identity");
        let config = dir.path().join("chanvault.toml");
        let f = Self {
            dir,
            sim,
            config,
            identity,
            recipient,
        };
        f.write_config("");
        f
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write the config; `extra` is appended (more targets, overrides).
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            r#"state_dir = "state"
[lnd]
address = "{addr}"
tls_cert = "{cert}"
macaroon = "{mac}"
timeout_seconds = 5
reconnect_max_seconds = 1
[backup]
schedule = "0 0 0 1 1 * 2099"
keep = 10
[seal]
recipients = ["{recipient}"]
[delivery]
retry_initial_seconds = 1
retry_max_seconds = 1
[metrics]
listen = "127.0.0.1:0"
[[target]]
name = "pbs"
kind = "dir"
path = "targets/pbs"
{extra}"#,
            addr = self.sim.addr(),
            cert = self.sim.tls_cert_path().display(),
            mac = self.sim.offchain_read_macaroon_path().display(),
            recipient = self.recipient,
        );
        std::fs::create_dir_all(self.path().join("targets")).expect("targets dir");
        std::fs::write(&self.config, text).expect("write config");
    }

    pub fn load(&self) -> Config {
        Config::load(&self.config).expect("config loads")
    }

    /// Replace the first `from` in the config file with `to`.
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).expect("read config");
        assert!(text.contains(from), "{from} not in config");
        std::fs::write(&self.config, text.replacen(from, to, 1)).expect("write config");
    }

    /// `chanvault backup --once` on this config, which must succeed
    /// (stored and delivered everywhere).
    pub fn backup_once(&self) {
        let out = bin()
            .args(["backup", "--once", "--config"])
            .arg(&self.config)
            .output()
            .expect("run chanvault");
        assert!(out.status.success(), "{}", text(&out));
    }

    pub fn target_dir(&self, name: &str) -> PathBuf {
        self.path().join("targets").join(name)
    }

    /// Wait until the dir target `name` holds LND's channel set as it is now;
    /// returns how long that took.
    pub async fn wait_current(&self, name: &str, what: &str, secs: u64) -> Duration {
        let fp = chanvault::scb::fingerprint(&self.sim.channels());
        let t = chanvault::sink::dir::DirTarget::new(name, &self.target_dir(name));
        let t0 = Instant::now();
        let state = self.path().join("state");
        eventually(
            what,
            secs,
            || matches!(t.current_manifest(), Ok(Some(m)) if m.fingerprint == published(&state, &fp)),
        )
        .await;
        t0.elapsed()
    }
}

/// The fingerprint as targets publish it for the state dir `state`: keyed
/// with its manifest key (the plain one before the key exists).
pub fn published(state: &Path, fp: &str) -> String {
    match chanvault::signing::ManifestKeys::load(state) {
        Ok(Some(k)) => k.keyed_fingerprint(fp),
        _ => fp.to_owned(),
    }
}

/// Poll until `f` is true or fail the test after `secs`.
pub async fn eventually(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > Duration::from_secs(secs) {
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// SIGTERM `child` (a clean shutdown, as systemd stops a unit) and wait for
/// it off the async threads; its exit status.
pub async fn terminate(mut child: Child) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap()
}

/// `chanvault watch` (the real binary) with its log in `watch.log`; killed on drop.
pub struct Watch {
    child: Option<Child>,
    log: std::path::PathBuf,
}

impl Watch {
    pub fn start(f: &Fixture) -> Self {
        Self::start_at(f, "info")
    }

    /// With `--log-level level` (RUST_LOG from the environment is ignored).
    pub fn start_at(f: &Fixture, level: &str) -> Self {
        let log = f.path().join("watch.log");
        let child = Command::new(env!("CARGO_BIN_EXE_chanvault"))
            .args(["--log-level", level, "watch", "--config"])
            .arg(&f.config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log satisfies `f`; fail with the whole log otherwise.
    pub async fn wait_log(&self, what: &str, mut f: impl FnMut(&str) -> bool) {
        let start = Instant::now();
        loop {
            let log = self.log();
            if f(&log) {
                return;
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!("timed out waiting for {what}; log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Wait up to `secs` for the process to exit on its own; its status, or
    /// `None` if it still runs.
    pub async fn exited_within(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            if let Some(status) = self.child.as_mut()?.try_wait().ok()? {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Peak resident memory so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    /// SIGTERM and wait, off the async threads (the simulator may live on
    /// the only one).
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        tokio::task::spawn_blocking(move || {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            child.wait().unwrap()
        })
        .await
        .unwrap()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Compare `actual` with the golden file `tests/golden/NAME`;
/// `CHANVAULT_BLESS=1` writes it instead.
pub fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("CHANVAULT_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (CHANVAULT_BLESS=1 creates it)", path.display()));
    assert_eq!(
        actual, want,
        "golden {name} differs (CHANVAULT_BLESS=1 to update)"
    );
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A finished command as text for assertion messages: exit code, stdout, stderr.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The chanvault binary under test, with nothing from the caller's
/// environment that would point it elsewhere (log filter, OpenBao address
/// or CA) and no stdin.
pub fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_chanvault"));
    c.env_remove("RUST_LOG")
        .env_remove("BAO_ADDR")
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_CACERT")
        .env_remove("VAULT_CACERT")
        .stdin(std::process::Stdio::null());
    c
}

/// Run the binary off the async threads (the simulator lives on them).
pub async fn run(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || bin().args(&args).output().expect("binary runs"))
        .await
        .expect("join")
}
