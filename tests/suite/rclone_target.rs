//! `rclone:REMOTE:path` restic targets with real rclone against remotes that
//! need no internet: a `local` remote, and `webdav` and `sftp` remotes
//! served by `rclone serve webdav|sftp` on 127.0.0.1 (started and stopped by
//! the test).
//! For each, `target init`, `backup --once`, `restore fetch`, and stock
//! restic (`restic -r rclone:REMOTE:path` with the same `RCLONE_CONFIG`)
//! listing, checking and restoring what chanvault wrote. A remote that fails
//! is one line naming the target and the remote.
//!
//! Needs the Debian packages `rclone`, `restic` and `age`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{bin, text};
use crate::restic_target::{REPO_PASSWORD, Setup, free_port, need};

pub(crate) const DAV_USER: &str = "dav-user";
pub(crate) const DAV_PASS: &str = "dav-pass-3c9e1a";

/// `rclone serve webdav` (or `sftp`) on 127.0.0.1 with a user and
/// password, killed on drop.
pub(crate) struct RcloneServe {
    protocol: &'static str,
    root: PathBuf,
    pub(crate) port: u16,
    child: Option<Child>,
}

impl RcloneServe {
    fn start(root: &Path) -> Self {
        Self::serve("webdav", root)
    }

    pub(crate) fn serve(protocol: &'static str, root: &Path) -> Self {
        need("rclone");
        std::fs::create_dir_all(root).unwrap();
        let mut w = Self {
            protocol,
            root: root.to_path_buf(),
            port: free_port(),
            child: None,
        };
        w.restart();
        w
    }

    /// Start (again, on the same port).
    fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("rclone")
            .args(["serve", self.protocol, "--addr"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["--user", DAV_USER, "--pass", DAV_PASS])
            .arg(&self.root)
            // Not the user's own rclone.conf.
            .env("RCLONE_CONFIG", self.root.with_extension("server.conf"))
            // serve sftp makes its host key there.
            .env("RCLONE_CACHE_DIR", self.root.with_extension("server-cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rclone serve starts");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "rclone serve {} did not listen on {}",
                self.protocol,
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RcloneServe {
    fn drop(&mut self) {
        self.stop();
    }
}

/// rclone.conf keeps passwords obscured (`rclone obscure`).
pub(crate) fn obscure(pass: &str) -> String {
    let out = Command::new("rclone")
        .args(["obscure", pass])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A `webdav` remote named `dav` at 127.0.0.1:`port`.
fn dav_remote(port: u16, pass: &str) -> String {
    format!(
        "[dav]\ntype = webdav\nurl = http://127.0.0.1:{port}/\nvendor = other\nuser = {DAV_USER}\npass = {}\n",
        obscure(pass)
    )
}

/// Write the test's rclone.conf (owner-only, as chanvault insists).
pub(crate) fn write_rclone_conf(s: &Setup, body: &str) -> PathBuf {
    let p = s.f.path().join("rclone.conf");
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// Configure target "offsite" on `repository` with the test's rclone.conf.
fn configure(s: &Setup, repository: &str) {
    s.configure(repository, "rclone_config = \"rclone.conf\"\n");
}

pub(crate) fn chanvault(s: &Setup, args: &[&str]) -> Output {
    bin()
        .args(args)
        .arg("--config")
        .arg(&s.f.config)
        .output()
        .expect("chanvault runs")
}

/// `target init`, `backup --once`, `restore fetch` through the binary, then
/// stock restic through the same remote and the same rclone.conf.
fn round_trip(s: &Setup, repository: &str, conf: &Path) {
    let out = chanvault(s, &["target", "init", "offsite"]);
    assert!(out.status.success(), "{}", text(&out));
    s.f.sim.open_channels(3);
    s.f.backup_once();
    let (rec, _) = s.last_good();

    let plain = s.f.path().join("fetched.backup");
    let mut args = vec!["restore", "fetch", "--target", "offsite", "--identity"];
    let identity = s.f.identity.display().to_string();
    let plain_s = plain.display().to_string();
    args.extend([identity.as_str(), "--out", plain_s.as_str()]);
    let out = chanvault(s, &args);
    assert!(out.status.success(), "{}", text(&out));
    let got =
        s.f.sim
            .decode_multi(&std::fs::read(&plain).unwrap())
            .unwrap();
    assert_eq!(got.len(), rec.channels, "restore fetch gave the backup");

    let conf = conf.display().to_string();
    s.stock_tools_agree(repository, &[("RCLONE_CONFIG", conf.as_str())], &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_local_remote_round_trips_with_stock_restic() {
    need("rclone");
    let s = Setup::new().await;
    let conf = write_rclone_conf(&s, "[box]\ntype = local\n");
    let repository = format!(
        "rclone:box:{}",
        s.f.path().join("repos/via-rclone").display()
    );
    configure(&s, &repository);
    round_trip(&s, &repository, &conf);
    // The backup is plain restic files in the directory, no lock left behind.
    let dir = s.f.path().join("repos/via-rclone");
    assert!(dir.join("config").is_file());
    assert_eq!(
        std::fs::read_dir(dir.join("locks"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_webdav_remote_round_trips_with_stock_restic() {
    let s = Setup::new().await;
    let dav = RcloneServe::start(&s.f.path().join("dav"));
    let conf = write_rclone_conf(&s, &dav_remote(dav.port, DAV_PASS));
    configure(&s, "rclone:dav:chanvault/node1");
    round_trip(&s, "rclone:dav:chanvault/node1", &conf);
    assert!(s.f.path().join("dav/chanvault/node1/config").is_file());
}

/// SFTP, served by `rclone serve sftp` on 127.0.0.1 (no sshd here): an
/// `sftp` remote with a password, no shell commands on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_sftp_remote_round_trips_with_stock_restic() {
    let s = Setup::new().await;
    let server = RcloneServe::serve("sftp", &s.f.path().join("sftp"));
    let conf = write_rclone_conf(
        &s,
        &format!(
            "[sftp]\ntype = sftp\nhost = 127.0.0.1\nport = {}\nuser = {DAV_USER}\npass = {}\nshell_type = none\ndisable_hashcheck = true\n",
            server.port,
            obscure(DAV_PASS)
        ),
    );
    configure(&s, "rclone:sftp:chanvault");
    round_trip(&s, "rclone:sftp:chanvault", &conf);
    assert!(s.f.path().join("sftp/chanvault/config").is_file());
}

/// `backup --once` to a failing remote: exit 5, the first line of stderr
/// and the journal say it in one line naming the target and the remote,
/// never a password; the backup stays pending.
fn one_clear_rclone_failure(s: &Setup, needles: &[&str]) -> String {
    s.f.sim.open_channel();
    // Without the info lines about the backup itself, the failure comes first.
    let out = chanvault(s, &["backup", "--once", "--log-level", "warn"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(
            "chanvault: delivery to offsite failed (will be retried): target offsite: "
        ),
        "{stderr}"
    );
    let cfg = s.f.load();
    let spool = chanvault::spool::Spool::open(&cfg.state_dir, cfg.backup.keep).unwrap();
    let journal = spool.journal().unwrap();
    let last = journal.targets["offsite"].last_error.clone().unwrap();
    assert!(first.ends_with(&last), "{first} / {last}");
    for needle in needles {
        assert!(last.contains(needle), "{needle:?} not in {last}");
    }
    for secret in [DAV_PASS, REPO_PASSWORD, "wrong-dav-pass"] {
        assert!(!stderr.contains(secret), "secret in {stderr}");
    }
    assert!(
        !spool.pending_for("offsite").unwrap().is_empty(),
        "nothing lost"
    );
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_rclone_remote_is_one_clear_line() {
    let s = Setup::new().await;
    let mut dav = RcloneServe::start(&s.f.path().join("dav"));
    write_rclone_conf(&s, &dav_remote(dav.port, DAV_PASS));
    configure(&s, "rclone:dav:chanvault");
    let out = chanvault(&s, &["target", "init", "offsite"]);
    assert!(out.status.success(), "{}", text(&out));

    // A wrong password in the remote.
    write_rclone_conf(&s, &dav_remote(dav.port, "wrong-dav-pass"));
    let e = one_clear_rclone_failure(&s, &["target offsite: ", "remote dav:chanvault", "401"]);
    eprintln!("{e}");

    // The WebDAV server down.
    write_rclone_conf(&s, &dav_remote(dav.port, DAV_PASS));
    dav.stop();
    let e = one_clear_rclone_failure(&s, &["remote dav:chanvault", "connection refused"]);
    eprintln!("{e}");

    // A remote that rclone.conf does not define.
    configure(&s, "rclone:nosuch:chanvault");
    let e = one_clear_rclone_failure(&s, &["remote nosuch:chanvault", "didn't find section"]);
    eprintln!("{e}");

    // rclone.conf readable by others: refused before rclone runs.
    let conf = s.f.path().join("rclone.conf");
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = one_clear_rclone_failure(&s, &["rclone_config", "chmod 600"]);
    eprintln!("{e}");
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();

    // An rclone that ignores RCLONE_USER/RCLONE_PASS (as before 1.52.2)
    // would serve the repository to every local user: refused.
    let old_rclone = s.f.path().join("old-rclone");
    std::fs::write(
        &old_rclone,
        "#!/bin/sh\nunset RCLONE_USER RCLONE_PASS\nexec rclone \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&old_rclone, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_rclone_conf(&s, "[box]\ntype = local\n");
    s.configure(
        &format!("rclone:box:{}", s.f.path().join("repos/open").display()),
        // A path relative to the config (a bare name would be looked up on PATH).
        "rclone_config = \"rclone.conf\"\nrclone_program = \"./old-rclone\"\n",
    );
    let e = one_clear_rclone_failure(&s, &["without authentication", "1.52.2"]);
    eprintln!("{e}");

    // No rclone where rclone_program says.
    s.configure(
        "rclone:nosuch:chanvault",
        "rclone_config = \"rclone.conf\"\nrclone_program = \"/nonexistent/rclone\"\n",
    );
    let e = one_clear_rclone_failure(
        &s,
        &["cannot run rclone (/nonexistent/rclone)", "rclone_program"],
    );
    eprintln!("{e}");
}

#[tokio::test]
async fn an_rclone_repository_without_remote_or_path_is_a_config_error() {
    let s = Setup::new().await;
    for (repository, needle) in [
        ("rclone::chanvault", "names no rclone remote"),
        ("rclone:box:", "names no path on the remote box"),
    ] {
        configure(&s, repository);
        let out = chanvault(&s, &["check-config"]);
        assert!(!out.status.success(), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.lines().next().unwrap_or_default();
        assert!(line.contains("target[1].repository"), "{stderr}");
        assert!(line.contains("target \"offsite\""), "{stderr}");
        assert!(line.contains(needle), "{stderr}");
    }
}

/// A running agent keeps its rclone between backups. The WebDAV server going
/// away under it is one clear line in rclone's words; once the server is
/// back, the next backup goes through the same rclone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_failing_under_a_running_rclone_is_one_clear_line_and_recovers() {
    use chanvault::sink::restic::ResticTarget;
    use chanvault::sink::{Delivery, Target};
    let s = Setup::new().await;
    let mut dav = RcloneServe::start(&s.f.path().join("dav"));
    write_rclone_conf(&s, &dav_remote(dav.port, DAV_PASS));
    configure(&s, "rclone:dav:chanvault");
    let t = s.target();
    chanvault::sink::unblock(&t, ResticTarget::init_blocking)
        .await
        .unwrap();
    let delivery = |s: &Setup| {
        let (record, sealed) = s.last_good();
        Delivery {
            record,
            sealed: std::sync::Arc::new(sealed),
            current: true,
            known_seq: 0,
        }
    };
    s.f.sim.open_channels(2);
    assert!(s.once().await.is_empty());
    t.deliver(&delivery(&s)).await.unwrap();

    dav.stop();
    s.f.sim.open_channel();
    s.once().await;
    let e = t.deliver(&delivery(&s)).await.unwrap_err();
    let line = e.to_string();
    eprintln!("{line}");
    assert!(line.starts_with("target offsite: "), "{line}");
    assert!(
        line.contains("the rclone remote dav:chanvault failed ("),
        "{line}"
    );
    assert!(line.contains("connection refused"), "{line}");
    assert!(!line.contains('\n'), "{line}");
    assert_eq!(e.kind, chanvault::sink::ErrorKind::Unreachable, "{line}");

    dav.restart();
    let receipt = t.deliver(&delivery(&s)).await.unwrap();
    let held = t.list().await.unwrap();
    assert_eq!(held.len(), 2, "{held:?}");
    assert_eq!(held[0].locator, receipt.location);
}

/// The `rclone serve restic` processes whose parent is `pid`.
fn rclone_children(pid: u32) -> Vec<u32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid …: comm may hold spaces, so split after its ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if ppid == Some(pid) && cmdline.windows(13).any(|w| w == b"serve\0restic\0") {
            out.push(child);
        }
    }
    out
}

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

/// `watch` keeps one rclone for the target; if rclone dies, the next backup
/// starts another; on SIGTERM the agent stops its rclone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_restarts_a_dead_rclone_and_stops_its_own_on_exit() {
    let s = Setup::new().await;
    write_rclone_conf(&s, "[box]\ntype = local\n");
    let repository = format!("rclone:box:{}", s.f.path().join("repos/watch").display());
    configure(&s, &repository);
    let out = chanvault(&s, &["target", "init", "offsite"]);
    assert!(out.status.success(), "{}", text(&out));
    let delivered = |log: &str| log.matches("delivered target=offsite ").count();

    s.f.sim.open_channels(2);
    let w = crate::common::Watch::start(&s.f);
    w.wait_log("the first delivery", |l| delivered(l) >= 1)
        .await;
    let pid = w.pid();
    let first = rclone_children(pid);
    assert_eq!(first.len(), 1, "one rclone for the target: {first:?}");

    Command::new("kill")
        .args(["-KILL", &first[0].to_string()])
        .status()
        .unwrap();
    s.f.sim.open_channel();
    w.wait_log("a delivery through a new rclone", |l| delivered(l) >= 2)
        .await;
    let second = rclone_children(pid);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second[0], first[0]);

    let status = w.stop().await;
    assert!(status.success(), "{status:?}");
    assert!(
        !running(second[0]),
        "rclone {} outlived the agent",
        second[0]
    );
}
