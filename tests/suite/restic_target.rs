//! The restic target against real parts: stock `restic` (Debian, 0.14) must
//! list, check and restore what chanvault wrote, the stock `age` CLI must open
//! the restored file, and `rclone serve restic` on 127.0.0.1 is the REST
//! server (plain, append-only, with basic auth, with TLS). Every server a test
//! starts is stopped by it (kill on drop).
//!
//! These tests need the Debian packages `restic`, `rclone` and `age`; they fail
//! (not skip) when one is missing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Fixture, Watch, eventually};
use chanvault::config::TargetConfig;
use chanvault::scb;
use chanvault::sink::restic::ResticTarget;
use chanvault::sink::{Delivery, Target};
use chanvault::state_dir::RESTIC_LOCKS_DIR;
use chanvault::watch::Agent;
use tokio::sync::watch;

const USER: &str = "chanvault";
const PASS: &str = "http-pass-7f3a9c";
pub(crate) const REPO_PASSWORD: &str = "repo-pass-5b1e0d";

pub(crate) fn need(bin: &str) {
    let ok = Command::new(bin)
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "`{bin}` is not installed: these tests need the Debian packages restic, rclone and age \
         (apt-get install restic rclone age; .ci/run does this)"
    );
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `rclone serve restic` on 127.0.0.1, killed on drop.
pub(crate) struct Rclone {
    args: Vec<String>,
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Rclone {
    pub(crate) fn start(root: &Path, port: u16, extra: &[&str]) -> Self {
        need("rclone");
        let mut args = vec![
            "serve".to_string(),
            "restic".to_string(),
            "--addr".to_string(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(root.display().to_string());
        let mut r = Self {
            args,
            port,
            child: None,
            log: root.with_extension("rclone.log"),
        };
        r.restart();
        r
    }

    fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("rclone")
            .args(&self.args)
            .env("RCLONE_CONFIG", self.log.with_extension("conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("rclone starts");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "rclone did not listen on {}: {}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
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

impl Drop for Rclone {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stock restic with the repository password from a file.
pub(crate) fn restic(
    repo: &str,
    password_file: &Path,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> String {
    need("restic");
    let mut c = Command::new("restic");
    c.arg("-r")
        .arg(repo)
        .arg("--password-file")
        .arg(password_file)
        .arg("--no-cache")
        .args(args)
        .env_remove("RESTIC_PASSWORD")
        .env_remove("RESTIC_REPOSITORY");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let out = c.output().expect("restic runs");
    assert!(
        out.status.success(),
        "restic {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) struct Setup {
    pub(crate) f: Fixture,
    pub(crate) password_file: PathBuf,
}

impl Setup {
    pub(crate) async fn new() -> Self {
        let f = Fixture::new().await;
        let password_file = f.path().join("restic-password");
        std::fs::write(&password_file, format!("{REPO_PASSWORD}\n")).unwrap();
        Self { f, password_file }
    }

    /// Configure one restic target "offsite" with `keys` (TOML lines).
    pub(crate) fn configure(&self, repository: &str, keys: &str) {
        self.f.write_config(&format!(
            "[[target]]\nname = \"offsite\"\nkind = \"restic\"\nrepository = \"{repository}\"\npassword_file = \"restic-password\"\n{keys}"
        ));
    }

    pub(crate) fn target(&self) -> ResticTarget {
        let cfg = self.f.load();
        let t = cfg
            .targets
            .iter()
            .find_map(|t| match t {
                TargetConfig::Restic(r) => Some(r.clone()),
                TargetConfig::Dir(_) => None,
            })
            .expect("restic target configured");
        ResticTarget::new(&t)
    }

    fn write_http_credentials(&self, user: &str, pass: &str) {
        std::fs::write(self.f.path().join("rest-auth"), format!("{user}:{pass}\n")).unwrap();
    }

    /// One `backup --once`; returns the failures.
    pub(crate) async fn once(&self) -> Vec<(String, String)> {
        let report = Agent::new(self.f.load())
            .unwrap()
            .backup_once()
            .await
            .unwrap();
        report.failures
    }

    pub(crate) fn last_good(&self) -> (chanvault::spool::BackupRecord, Vec<u8>) {
        let cfg = self.f.load();
        let spool = chanvault::spool::Spool::open(&cfg.state_dir, cfg.backup.keep).unwrap();
        let j = spool.journal().unwrap();
        let rec = j.last_good().unwrap().clone();
        let bytes = spool.read(&rec.id).unwrap();
        (rec, bytes)
    }

    /// Stock restic lists, checks and restores what we wrote; stock age opens it.
    pub(crate) fn stock_tools_agree(&self, repo: &str, env: &[(&str, &str)], extra: &[&str]) {
        let (rec, sealed) = self.last_good();
        let mut a = extra.to_vec();
        a.extend(["snapshots", "--json"]);
        let json: serde_json::Value =
            serde_json::from_str(&restic(repo, &self.password_file, &a, env)).unwrap();
        let snaps = json.as_array().unwrap();
        let fp_tag = format!("fp:{}", &rec.published_fingerprint()[..12]);
        let tags_of = |s: &serde_json::Value| -> Vec<String> {
            s["tags"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|t| t.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let seq_of = |s: &serde_json::Value| -> u64 {
            tags_of(s)
                .iter()
                .find_map(|t| t.strip_prefix("seq:")?.parse().ok())
                .unwrap_or(0)
        };
        // The newest snapshot holds the last good channel set. Its backup is
        // the last good one, or an earlier backup of the same channel set
        // (a set that recurs is not uploaded again over the newest snapshot).
        let ours = snaps
            .iter()
            .filter(|s| tags_of(s).iter().any(|t| t == "chanvault"))
            .max_by_key(|s| seq_of(s))
            .unwrap_or_else(|| panic!("no chanvault snapshot: {json}"));
        let tags = tags_of(ours);
        assert!(tags.contains(&fp_tag), "newest is not {fp_tag}: {tags:?}");
        assert!(
            tags.contains(&format!("channels:{}", rec.channels)),
            "{tags:?}"
        );
        let backup_tag = tags
            .iter()
            .find_map(|t| t.strip_prefix("backup:"))
            .unwrap_or_else(|| panic!("no backup tag: {tags:?}"))
            .to_string();
        assert_eq!(ours["hostname"], "chanvault");
        assert_eq!(ours["paths"][0], "/chanvault");

        let mut a = extra.to_vec();
        a.extend(["check", "--read-data"]);
        let out = restic(repo, &self.password_file, &a, env);
        assert!(out.contains("no errors were found"), "{out}");

        let dest = self.f.path().join(format!("restored-{}", &rec.id[..8]));
        let mut a = extra.to_vec();
        a.extend(["restore", "latest", "--target", dest.to_str().unwrap()]);
        restic(repo, &self.password_file, &a, env);
        let restored = dest.join("chanvault/channel.backup.age");
        let bytes = std::fs::read(&restored).unwrap();
        if rec.id.starts_with(&backup_tag) {
            assert_eq!(bytes, sealed, "byte-identical to the spool");
        } else {
            let sha = chanvault::scb::sha256_hex(&bytes);
            assert!(sha.starts_with(&backup_tag), "{sha} is not {backup_tag}");
        }
        let mtime = std::fs::metadata(dest.join("chanvault"))
            .unwrap()
            .modified()
            .unwrap();
        assert!(
            mtime > std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000),
            "dir mtime restored"
        );

        need("age");
        let out = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&self.f.identity)
            .arg(&restored)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = self.f.sim.decode_multi(&out.stdout).unwrap();
        assert_eq!(got.len(), rec.channels);
    }
}

#[tokio::test]
async fn local_repository_works_with_stock_restic_and_age() {
    let s = Setup::new().await;
    let repo = s.f.path().join("repos/local");
    s.configure(&repo.display().to_string(), "");
    let t = s.target();
    chanvault::sink::unblock(&t, ResticTarget::init_blocking)
        .await
        .unwrap();
    // One key, at restic's own scrypt cost (32 MiB to open, not rustic's 128).
    let keys: Vec<_> = std::fs::read_dir(repo.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key: serde_json::Value = serde_json::from_slice(&std::fs::read(&keys[0]).unwrap()).unwrap();
    assert_eq!(
        (key["N"].as_u64(), key["r"].as_u64(), key["p"].as_u64()),
        (Some(32768), Some(8), Some(1))
    );
    // init is never silent about an existing repository.
    let e = chanvault::sink::unblock(&t, ResticTarget::init_blocking)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("target offsite: ") && e.contains("already holds a restic repository"),
        "{e}"
    );

    s.f.sim.open_channels(3);
    assert!(s.once().await.is_empty());
    s.stock_tools_agree(repo.to_str().unwrap(), &[], &[]);

    // Idempotent: the same backup again is not a second snapshot.
    let (rec, sealed) = s.last_good();
    let d = Delivery {
        record: rec.clone(),
        sealed: std::sync::Arc::new(sealed),
        current: true,
        known_seq: 0,
    };
    let first = t.deliver(&d).await.unwrap();
    let again = t.deliver(&d).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(
        chanvault::sink::unblock(&t, ResticTarget::snapshots_blocking)
            .await
            .unwrap()
            .len(),
        1
    );
    let (info, bytes) = chanvault::sink::unblock(&t, ResticTarget::latest_blocking)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.id, first.location);
    assert_eq!(bytes, *d.sealed);
    // Read back through the sink trait: what restore and verify use.
    let held = t.list().await.unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].locator, info.id);
    assert!(rec.id.starts_with(&held[0].sealed_sha256), "{held:?}");
    assert_eq!(held[0].fingerprint, info.tag("fp").unwrap());
    assert_eq!(held[0].channels, rec.channels);
    assert_eq!(t.fetch(&held[0].locator).await.unwrap(), *d.sealed);
    // No lock is left behind.
    assert_eq!(
        std::fs::read_dir(repo.join("locks"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );

    // A suspect backup never becomes restic's `latest`.
    s.f.sim.lose_channel_db();
    let report = Agent::new(s.f.load()).unwrap().backup_once().await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(
        chanvault::sink::unblock(&t, ResticTarget::snapshots_blocking)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_repository_made_by_restic_init_is_a_usable_target() {
    let s = Setup::new().await;
    let repo = s.f.path().join("repos/by-restic");
    restic(repo.to_str().unwrap(), &s.password_file, &["init"], &[]);
    s.configure(&repo.display().to_string(), "tags = [\"node1\"]\n");
    s.f.sim.open_channels(2);
    assert!(s.once().await.is_empty());
    s.stock_tools_agree(repo.to_str().unwrap(), &[], &[]);
    let snaps = chanvault::sink::unblock(&s.target(), ResticTarget::snapshots_blocking)
        .await
        .unwrap();
    assert!(
        snaps[0].tags.iter().any(|t| t == "node1"),
        "{:?}",
        snaps[0].tags
    );
}

#[tokio::test]
async fn rest_server_plain_and_append_only_with_basic_auth() {
    for append_only in [false, true] {
        let s = Setup::new().await;
        let port = free_port();
        // Plain: rclone's single --user/--pass. Append-only: an htpasswd file
        // as rest-server deployments use (SHA1 entry; rclone also takes bcrypt).
        let htpasswd = s.f.path().join("htpasswd");
        let htpasswd_arg = htpasswd.display().to_string();
        let mut flags = vec!["--user", USER, "--pass", PASS];
        if append_only {
            write_htpasswd(&htpasswd, USER, PASS);
            flags = vec!["--htpasswd", &htpasswd_arg, "--append-only"];
        }
        let _server = Rclone::start(&s.f.path().join("rest"), port, &flags);
        s.write_http_credentials(USER, PASS);
        s.configure(
            &format!("rest:http://127.0.0.1:{port}/chanvault/"),
            "http_credentials_file = \"rest-auth\"\n",
        );
        chanvault::sink::unblock(&s.target(), ResticTarget::init_blocking)
            .await
            .unwrap();
        s.f.sim.open_channels(2);
        assert!(s.once().await.is_empty());
        s.f.sim.open_channels(1);
        assert!(s.once().await.is_empty(), "append_only={append_only}");
        let repo = format!("rest:http://{USER}:{PASS}@127.0.0.1:{port}/chanvault/");
        if append_only {
            // restic check needs an exclusive lock, which an append-only server allows;
            // but it must not delete anything: only list and restore here.
            let out = restic(&repo, &s.password_file, &["snapshots"], &[]);
            assert!(out.contains("2 snapshots"), "{out}");
        }
        s.stock_tools_agree(&repo, &[], &[]);
        assert_eq!(
            chanvault::sink::unblock(&s.target(), ResticTarget::snapshots_blocking)
                .await
                .unwrap()
                .len(),
            2
        );
    }
}

/// An apache htpasswd line `USER:{SHA}base64(sha1(PASS))`, made by python3's
/// hashlib (no SHA-1 crate in the tree).
pub(crate) fn write_htpasswd(path: &std::path::Path, user: &str, pass: &str) {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import base64,hashlib,sys; print(sys.argv[1] + ':{SHA}' + base64.b64encode(hashlib.sha1(sys.argv[2].encode()).digest()).decode())",
            user,
            pass,
        ])
        .output()
        .expect("python3 runs");
    assert!(out.status.success());
    std::fs::write(path, out.stdout).unwrap();
}

fn self_signed() -> (String, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

#[tokio::test]
async fn rest_server_over_https_with_a_self_signed_cacert() {
    let s = Setup::new().await;
    let (cert, key) = self_signed();
    std::fs::write(s.f.path().join("rest.pem"), &cert).unwrap();
    std::fs::write(s.f.path().join("rest.key"), &key).unwrap();
    let port = free_port();
    let pem = s.f.path().join("rest.pem").display().to_string();
    let keyp = s.f.path().join("rest.key").display().to_string();
    let _server = Rclone::start(
        &s.f.path().join("rest"),
        port,
        &["--cert", &pem, "--key", &keyp],
    );
    s.configure(
        &format!("rest:https://127.0.0.1:{port}/chanvault/"),
        "cacert = \"rest.pem\"\n",
    );
    chanvault::sink::unblock(&s.target(), ResticTarget::init_blocking)
        .await
        .unwrap();
    s.f.sim.open_channels(2);
    assert!(s.once().await.is_empty());
    s.stock_tools_agree(
        &format!("rest:https://127.0.0.1:{port}/chanvault/"),
        &[],
        &["--cacert", &pem],
    );
}

fn journal_fp(s: &Setup, target: &str) -> Option<String> {
    let cfg = s.f.load();
    let spool = chanvault::spool::Spool::open(&cfg.state_dir, cfg.backup.keep).ok()?;
    let j = spool.journal().ok()?;
    let id = j.targets.get(target)?.current.clone()?;
    j.get(&id).map(|b| b.fingerprint.clone())
}

#[tokio::test]
async fn rest_server_outage_is_survived_without_a_restart() {
    let s = Setup::new().await;
    let port = free_port();
    let mut server = Rclone::start(&s.f.path().join("rest"), port, &["--append-only"]);
    s.configure(&format!("rest:http://127.0.0.1:{port}/chanvault/"), "");
    chanvault::sink::unblock(&s.target(), ResticTarget::init_blocking)
        .await
        .unwrap();

    let agent = Agent::new(s.f.load()).unwrap();
    let spool = agent.spool().clone();
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(agent.watch(rx));
    s.f.sim.open_channels(2);
    let fp = scb::fingerprint(&s.f.sim.channels());
    eventually("first state on the REST server", 20, || {
        journal_fp(&s, "offsite").as_deref() == Some(fp.as_str())
    })
    .await;

    // The server goes away during 200 channel events (100 opens, 100 closes).
    server.stop();
    for i in 0..200 {
        if i % 2 == 0 {
            s.f.sim.open_channel();
        } else {
            let cp = s.f.sim.channels().into_iter().next().unwrap();
            assert!(s.f.sim.close_channel(&cp));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eventually("the failure is recorded", 20, || {
        spool
            .journal()
            .map(|j| j.targets.get("offsite").is_some_and(|t| t.failures > 0))
            .unwrap_or(false)
    })
    .await;
    let err = spool.journal().unwrap().targets["offsite"]
        .last_error
        .clone()
        .unwrap();
    assert!(
        err.starts_with("target offsite: ") && err.contains("cannot reach the REST server"),
        "{err}"
    );
    // The pipeline keeps going: the pbs dir target has the newest state meanwhile.
    let fp = scb::fingerprint(&s.f.sim.channels());
    let pbs = chanvault::sink::dir::DirTarget::new("pbs", &s.f.target_dir("pbs"));
    eventually(
        "pbs is current",
        20,
        || matches!(pbs.current_manifest(), Ok(Some(m)) if m.fingerprint == crate::common::published(&s.f.path().join("state"), &fp)),
    )
    .await;

    // Back on the same port: the final good state arrives, chanvault untouched.
    server.restart();
    let back = std::time::Instant::now();
    eventually("final state on the REST server", 30, || {
        journal_fp(&s, "offsite").as_deref() == Some(fp.as_str())
    })
    .await;
    println!(
        "REST outage over 200 events: final state on the server {} ms after it came back",
        back.elapsed().as_millis()
    );
    tx.send(true).unwrap();
    task.await.unwrap().unwrap();
    s.stock_tools_agree(
        &format!("rest:http://127.0.0.1:{port}/chanvault/"),
        &[],
        &[],
    );
    // Nothing in the spool was lost.
    let j = spool.journal().unwrap();
    assert!(j.backups.len() >= 3, "{}", j.backups.len());
    for b in &j.backups {
        assert!(spool.read(&b.id).is_ok());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_or_a_new_repository_between_backups_is_survived() {
    let s = Setup::new().await;
    let repo = s.f.path().join("repos/pruned");
    let repo_s = repo.to_str().unwrap();
    s.configure(repo_s, "");
    chanvault::sink::unblock(&s.target(), ResticTarget::init_blocking)
        .await
        .unwrap();
    // A first snapshot by another process, so that the index watch reads is not empty.
    s.f.sim.open_channels(1);
    assert!(s.once().await.is_empty());
    let watch = Watch::start(&s.f);
    fn delivered(s: &Setup) -> impl FnMut() -> bool + '_ {
        let fp = scb::fingerprint(&s.f.sim.channels());
        move || journal_fp(s, "offsite").as_deref() == Some(fp.as_str())
    }
    // Three backups through one session, then stock restic forgets all but
    // the newest and prunes (rewriting the index): chanvault reads no index,
    // so the next backup goes on as before, and what it wrote checks clean.
    watch
        .wait_log("watch connected", |l| l.contains("connected to LND"))
        .await;
    for _ in 0..3 {
        s.f.sim.open_channels(1);
        let mut done = delivered(&s);
        watch.wait_log("delivered", |_| done()).await;
    }
    let out = restic(
        repo_s,
        &s.password_file,
        &["forget", "--keep-last", "1", "--prune"],
        &[],
    );
    assert!(
        out.contains("remove 3 snapshots") || out.contains("snapshots"),
        "{out}"
    );
    s.f.sim.open_channels(1);
    let mut done = delivered(&s);
    watch
        .wait_log("delivered after the prune", |_| done())
        .await;
    s.stock_tools_agree(repo_s, &[], &[]);

    // The repository is deleted and made again by `restic init` (same
    // password, a new master key): nothing may be written under the old
    // key; the session is dropped and the new repository gets the backup.
    std::fs::remove_dir_all(&repo).unwrap();
    restic(repo_s, &s.password_file, &["init"], &[]);
    s.f.sim.open_channels(1);
    let mut done = delivered(&s);
    watch
        .wait_log("delivered to the new repository", |_| done())
        .await;
    let log = watch.log();
    assert!(watch.stop().await.success(), "{log}");
    assert!(
        log.contains("the repository was replaced (its config changed); opening it afresh"),
        "{log}"
    );
    s.stock_tools_agree(repo_s, &[], &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_our_own_stale_locks_are_removed() {
    let s = Setup::new().await;
    let repo = s.f.path().join("repos/locked");
    let repo_s = repo.to_str().unwrap();
    s.configure(repo_s, "");
    chanvault::sink::unblock(&s.target(), ResticTarget::init_blocking)
        .await
        .unwrap();
    // A stock restic killed mid-backup (it waits for stdin): its lock stays.
    let mut restic_backup = Command::new("restic")
        .args(["-r", repo_s, "--password-file"])
        .arg(&s.password_file)
        .args(["--no-cache", "backup", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let locks =
        |repo: &std::path::Path| std::fs::read_dir(repo.join("locks")).map_or(0, |d| d.count());
    eventually("restic holds its lock", 20, || locks(&repo) == 1).await;
    // Kill it only once the lock file is whole: a lock caught half-written
    // cannot be read, and unreadable locks are (rightly) left alone.
    let lock_len = |repo: &std::path::Path| -> u64 {
        std::fs::read_dir(repo.join("locks"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok()?.metadata().ok())
            .map_or(0, |m| m.len())
    };
    let mut last = 0;
    eventually("restic's lock file is written", 20, || {
        let now = lock_len(&repo);
        let stable = now > 0 && now == last;
        last = now;
        stable
    })
    .await;
    restic_backup.kill().unwrap();
    restic_backup.wait().unwrap();
    assert_eq!(locks(&repo), 1, "a killed restic leaves its lock");

    // The same stale lock under a second name, recorded in state_dir as one
    // chanvault wrote (what a chanvault killed mid-delivery leaves).
    let theirs = std::fs::read_dir(repo.join("locks"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let ours_name = "ab".repeat(32);
    let ours = repo.join("locks").join(&ours_name);
    std::fs::copy(&theirs, &ours).unwrap();
    let records = s.f.path().join("state").join(RESTIC_LOCKS_DIR);
    std::fs::create_dir_all(&records).unwrap();
    std::fs::write(records.join(&ours_name), "offsite").unwrap();

    // chanvault's next session removes its own stale lock and its record,
    // and leaves restic's (same host, same uid, dead PID) for `restic unlock`.
    s.f.sim.open_channels(1);
    assert!(s.once().await.is_empty());
    assert!(!ours.exists(), "our recorded stale lock is removed");
    assert!(!records.join(&ours_name).exists(), "and its record");
    assert!(theirs.exists(), "another program's lock is never removed");
    assert_eq!(locks(&repo), 1);
    // Stock restic (0.14) refuses an exclusive lock beside it until
    // `restic unlock` removes it, which is the operator's call, not ours.
    restic(repo_s, &s.password_file, &["unlock"], &[]);
    assert_eq!(
        locks(&repo),
        0,
        "restic unlock removes the dead restic's lock"
    );
    let out = restic(repo_s, &s.password_file, &["check"], &[]);
    assert!(out.contains("no errors were found"), "{out}");
}

/// backup --once with a broken target: one failure, one line naming the target,
/// no secret, and the backup stays pending in the spool.
async fn one_clear_failure(s: &Setup, needle: &str) -> String {
    s.f.sim.open_channel();
    let failures = s.once().await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    let (target, err) = &failures[0];
    eprintln!("{err}");
    assert_eq!(target, "offsite");
    assert!(err.starts_with("target offsite: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert!(!err.contains('\n'), "{err}");
    for secret in [PASS, REPO_PASSWORD, "wrong-http-pass"] {
        assert!(!err.contains(secret), "secret in {err}");
    }
    let cfg = s.f.load();
    let spool = chanvault::spool::Spool::open(&cfg.state_dir, cfg.backup.keep).unwrap();
    assert!(
        !spool.pending_for("offsite").unwrap().is_empty(),
        "nothing lost"
    );
    err.clone()
}

#[tokio::test]
async fn bad_input_gives_one_clear_error_and_loses_nothing() {
    // Wrong repository password.
    let s = Setup::new().await;
    let repo = s.f.path().join("repos/a");
    s.configure(&repo.display().to_string(), "");
    chanvault::sink::unblock(&s.target(), ResticTarget::init_blocking)
        .await
        .unwrap();
    std::fs::write(&s.password_file, "not-the-password\n").unwrap();
    one_clear_failure(&s, "wrong repository password").await;

    // Repository missing.
    let s = Setup::new().await;
    s.configure(&s.f.path().join("repos/none").display().to_string(), "");
    one_clear_failure(&s, "chanvault target init offsite").await;

    // Server unreachable.
    let s = Setup::new().await;
    s.configure(
        &format!("rest:http://127.0.0.1:{}/chanvault/", free_port()),
        "",
    );
    one_clear_failure(&s, "cannot reach the REST server").await;

    // 401: wrong credentials.
    let s = Setup::new().await;
    let port = free_port();
    let _server = Rclone::start(
        &s.f.path().join("rest"),
        port,
        &["--user", USER, "--pass", PASS],
    );
    s.write_http_credentials(USER, PASS);
    s.configure(
        &format!("rest:http://127.0.0.1:{port}/chanvault/"),
        "http_credentials_file = \"rest-auth\"\n",
    );
    chanvault::sink::unblock(&s.target(), ResticTarget::init_blocking)
        .await
        .unwrap();
    s.write_http_credentials(USER, "wrong-http-pass");
    one_clear_failure(&s, "HTTP 401").await;

    // TLS mismatch: the server's certificate is not the one in cacert.
    let s = Setup::new().await;
    let (cert, key) = self_signed();
    let (other, _) = self_signed();
    std::fs::write(s.f.path().join("server.pem"), &cert).unwrap();
    std::fs::write(s.f.path().join("server.key"), &key).unwrap();
    std::fs::write(s.f.path().join("other.pem"), &other).unwrap();
    let port = free_port();
    let pem = s.f.path().join("server.pem").display().to_string();
    let keyp = s.f.path().join("server.key").display().to_string();
    let _tls = Rclone::start(
        &s.f.path().join("rest"),
        port,
        &["--cert", &pem, "--key", &keyp],
    );
    s.configure(
        &format!("rest:https://127.0.0.1:{port}/chanvault/"),
        "cacert = \"other.pem\"\n",
    );
    one_clear_failure(&s, "TLS").await;
}

/// A `restic prune` killed on this host leaves an exclusive lock whose
/// process is gone. restic itself treats it as stale; so must a running
/// `watch` (its repository already open), instead of waiting 30 minutes for
/// the lock to age. The lock is ignored, not deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_prune_on_this_host_does_not_block_delivery() {
    let s = Setup::new().await;
    let repo = s.f.path().join("repos/pruned");
    let repo_s = repo.to_str().unwrap().to_owned();
    s.configure(&repo_s, "");
    chanvault::sink::unblock(&s.target(), ResticTarget::init_blocking)
        .await
        .unwrap();
    let watch = Watch::start(&s.f);
    let spool_state = s.f.path().join("state");
    // offsite's current backup has exactly `n` channels.
    let holds = move |n: usize| {
        let spool_state = spool_state.clone();
        move || {
            let Ok(Some(j)) = chanvault::spool::read_journal(&spool_state) else {
                return false;
            };
            j.targets
                .get("offsite")
                .and_then(|t| t.current.as_deref())
                .and_then(|id| j.get(id))
                .is_some_and(|b| b.channels == n)
        }
    };
    s.f.sim.open_channels(1);
    eventually("offsite holds the first channel", 30, holds(1)).await;

    // Kill a stock prune as soon as its exclusive lock is on disk.
    let locks = repo.join("locks");
    let pw = s.password_file.clone();
    let left = tokio::task::spawn_blocking(move || {
        let mut prune = Command::new("restic")
            .args(["-r", &repo_s, "--password-file"])
            .arg(&pw)
            .args(["--no-cache", "prune"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if std::fs::read_dir(&locks).is_ok_and(|mut d| d.next().is_some()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = prune.kill();
        prune.wait().unwrap();
        std::fs::read_dir(&locks).map_or(0, |d| d.count())
    })
    .await
    .unwrap();
    assert_eq!(left, 1, "the killed prune left its exclusive lock");

    // The next channel goes out at once, well before the 30 s lock wait.
    let t0 = Instant::now();
    s.f.sim.open_channels(1);
    eventually(
        "offsite holds the second channel despite the stale lock",
        15,
        holds(2),
    )
    .await;
    println!(
        "delivered {} ms after the event, past a dead prune's lock",
        t0.elapsed().as_millis()
    );
    assert_eq!(
        std::fs::read_dir(repo.join("locks")).map_or(0, |d| d.count()),
        1,
        "the stale lock is left for restic unlock"
    );
    let status = watch.stop().await;
    assert!(status.success());
    // A new process's first open clears its own dead locks, never an
    // exclusive one: not even one recorded as ours.
    let prune_lock = std::fs::read_dir(repo.join("locks"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let records = s.f.path().join("state").join(RESTIC_LOCKS_DIR);
    std::fs::create_dir_all(&records).unwrap();
    std::fs::write(records.join(prune_lock.file_name()), "offsite").unwrap();
    s.f.sim.open_channels(1);
    s.f.backup_once();
    assert_eq!(
        std::fs::read_dir(repo.join("locks")).map_or(0, |d| d.count()),
        1,
        "a new process leaves the dead prune's lock for restic unlock too"
    );
}
