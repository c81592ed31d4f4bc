//! Issue 15 item 2: `proxy = "socks5h://…"` (Tor) on `rest:` and `rclone:`
//! targets and on `[escrow]`, against a real SOCKS5 server: Debian's dante
//! (`danted`, package dante-server) on 127.0.0.1, with a generated config
//! that lets it connect to loopback only, and its own log.
//!
//! How remote DNS is proven: dante runs in a mount namespace of its own
//! (`unshare --mount`) in which /etc/hosts is bind-mounted over by a copy
//! that also maps the test's names (`…onion`, `chanvault-dav.test`) to
//! 127.0.0.1. Nothing else on the machine can resolve those names: chanvault
//! and rclone see the real /etc/hosts (checked at the start of each test),
//! and there is no DNS server to ask. So a delivery to such a name can only
//! succeed if the name went to the proxy unresolved and dante resolved it;
//! with `socks5://` (local resolution) the same test fails. The namespace
//! needs root, or unprivileged user namespaces (`unshare --map-root-user`).
//!
//! Every server here listens on 127.0.0.1 and is killed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::bao::{Bao, cli};
use crate::common::{Watch, eventually, text};
use crate::rclone_target::{
    DAV_PASS, DAV_USER, RcloneServe, chanvault, obscure, write_rclone_conf,
};
use crate::restic_target::{Setup, free_port};

/// Onion v3 names (56 base32 characters) that only the proxy resolves.
const REST_ONION: &str = "chanvaultrestonionaddressaaaaaaaaaaaaaaaaaaaaaaaaaaaaaad.onion";
const BAO_ONION: &str = "chanvaultbaoonionaddressaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.onion";
/// A plain name only the proxy resolves (rclone's webdav remote).
const DAV_NAME: &str = "chanvault-dav.test";

/// dante's server, as Debian installs it.
fn danted() -> PathBuf {
    ["/usr/sbin/danted", "/usr/bin/danted"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect(
            "danted is not installed: these tests need the Debian package dante-server \
             (apt-get install dante-server; scripts/install-test-deps does this)",
        )
}

/// `danted` on 127.0.0.1:`port` in its own mount namespace, whose
/// /etc/hosts also maps `names` to 127.0.0.1; killed on drop.
struct Sockd {
    port: u16,
    dir: PathBuf,
    names: Vec<String>,
    child: Option<Child>,
}

impl Sockd {
    fn start(dir: &Path, port: u16, names: &[&str]) -> Self {
        for n in names {
            assert!(
                (*n, 80).to_socket_addrs().is_err(),
                "{n} resolves on this machine: the test could not tell local from remote DNS"
            );
        }
        let mut s = Self {
            port,
            dir: dir.to_path_buf(),
            names: names.iter().map(|n| n.to_string()).collect(),
            child: None,
        };
        s.restart();
        s
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("sockd.log")
    }

    fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        std::fs::create_dir_all(&self.dir).unwrap();
        let mut hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        for n in &self.names {
            hosts.push_str(&format!("\n127.0.0.1 {n}\n"));
        }
        let hosts_file = self.dir.join("hosts");
        std::fs::write(&hosts_file, hosts).unwrap();
        let conf = self.dir.join("sockd.conf");
        std::fs::write(
            &conf,
            format!(
                "logoutput: {log}\ninternal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n\
                 socksmethod: none\nclientmethod: none\n\
                 user.privileged: root\nuser.unprivileged: root\n\
                 client pass {{\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  log: error\n}}\n\
                 socks pass {{\n  from: 127.0.0.0/8 to: 127.0.0.0/8\n  command: connect\n  log: connect error\n}}\n",
                log = self.log_path().display(),
                port = self.port
            ),
        )
        .unwrap();
        let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
        let mut cmd = Command::new("unshare");
        if !root {
            cmd.arg("--map-root-user");
        }
        let child = cmd
            .args(["--mount", "sh", "-c"])
            .arg(r#"mount --bind "$1" /etc/hosts && exec "$2" -f "$3""#)
            .arg("sh")
            .args([&hosts_file, &danted(), &conf])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("sockd.stderr")).unwrap())
            .spawn()
            .expect("unshare runs");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if start.elapsed() > Duration::from_secs(20) {
                let err =
                    std::fs::read_to_string(self.dir.join("sockd.stderr")).unwrap_or_default();
                panic!(
                    "danted did not listen on {}: {err}{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Connections dante made for its clients to 127.0.0.1:`port`.
    fn connects_to(&self, port: u16) -> usize {
        let to = format!(" 127.0.0.1.{port}");
        self.log()
            .lines()
            .filter(|l| l.contains("tcp/connect [") && l.trim_end().ends_with(&to))
            .count()
    }

    fn url(&self) -> String {
        format!("socks5h://127.0.0.1:{}", self.port)
    }

    /// dante's mother process dies with SIGKILL, and its children with it.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && start.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sockd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP relay on 127.0.0.1 in front of `to` that counts the connections
/// it accepts: whoever reaches the server must pass it. Its thread ends
/// with the test binary; each accept is bounded by the test's own runtime.
fn counting_relay(to: u16) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for a in l.incoming() {
            let Ok(a) = a else { break };
            c.fetch_add(1, Ordering::SeqCst);
            let Ok(b) = TcpStream::connect(("127.0.0.1", to)) else {
                continue;
            };
            let pipe = |mut from: TcpStream, mut into: TcpStream| {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 << 10];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || into.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = into.shutdown(std::net::Shutdown::Write);
                });
            };
            pipe(a.try_clone().unwrap(), b.try_clone().unwrap());
            pipe(b, a);
        }
    });
    (port, count)
}

/// The REST server (`rclone serve restic` with a user and password) and the
/// target's credentials file.
fn rest_server(s: &Setup) -> RcloneServe {
    std::fs::write(
        s.f.path().join("rest-auth"),
        format!("{DAV_USER}:{DAV_PASS}\n"),
    )
    .unwrap();
    RcloneServe::serve("restic", &s.f.path().join("rest"))
}

/// (1) and (2): a `rest:http://….onion` target with basic auth delivers
/// through the proxy, which made the connection (its log) and resolved the
/// name (nothing else can).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_target_over_socks5h_delivers_and_the_proxy_resolves_its_name() {
    let s = Setup::new().await;
    let server = rest_server(&s);
    let proxy = Sockd::start(&s.f.path().join("sockd"), free_port(), &[REST_ONION]);
    s.configure(
        &format!("rest:http://{REST_ONION}:{}/chanvault/", server.port),
        &format!(
            "http_credentials_file = \"rest-auth\"\nproxy = \"{}\"\n",
            proxy.url()
        ),
    );
    let out = chanvault(&s, &["target", "init", "offsite"]);
    assert!(out.status.success(), "{}", text(&out));
    s.f.sim.open_channels(2);
    s.f.backup_once();
    let snapshots = s.f.path().join("rest/chanvault/snapshots");
    assert_eq!(std::fs::read_dir(&snapshots).unwrap().count(), 1);
    assert!(
        proxy.connects_to(server.port) >= 2,
        "dante made the connections:\n{}",
        proxy.log()
    );

    // socks5:// would resolve the name here: refused before anything is sent.
    s.f.edit_config("socks5h://", "socks5://");
    let out = chanvault(&s, &["backup", "--once"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("write socks5h://"),
        "{}",
        text(&out)
    );
}

/// (3) The proxy is down: every delivery fails with one line naming the
/// target and the proxy, is retried, and nothing reaches the REST server
/// directly (a counting relay in front of it sees no connection). When the
/// proxy is back, the retry delivers through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_proxy_down_delivery_fails_clearly_is_retried_and_never_goes_direct() {
    let s = Setup::new().await;
    let server = rest_server(&s);
    let (relay, direct) = counting_relay(server.port);
    let mut proxy = Sockd::start(&s.f.path().join("sockd"), free_port(), &[]);
    s.configure(
        &format!("rest:http://127.0.0.1:{relay}/chanvault/"),
        &format!(
            "http_credentials_file = \"rest-auth\"\nproxy = \"{}\"\n",
            proxy.url()
        ),
    );
    let out = chanvault(&s, &["target", "init", "offsite"]);
    assert!(out.status.success(), "{}", text(&out));
    let through_proxy = proxy.connects_to(relay);
    assert!(through_proxy > 0, "{}", proxy.log());
    assert_eq!(direct.load(Ordering::SeqCst), through_proxy);

    proxy.stop();
    let before = direct.load(Ordering::SeqCst);
    let watch = Watch::start(&s.f);
    s.f.sim.open_channels(2);
    let needle = format!("through the proxy {}", proxy.url());
    watch
        .wait_log("a failed try naming the proxy", |l| l.contains(&needle))
        .await;
    let log = watch.log();
    let line = log.lines().find(|l| l.contains(&needle)).unwrap();
    assert!(
        line.contains("target offsite: cannot reach the REST server rest:http://127.0.0.1:"),
        "{line}"
    );
    // Retried (the journal counts the failed tries), each with that line.
    let cfg = s.f.load();
    let spool = chanvault::spool::Spool::open(&cfg.state_dir, cfg.backup.keep).unwrap();
    let offsite = || spool.journal().unwrap().targets["offsite"].clone();
    eventually("a second failed try", 20, || offsite().failures >= 2).await;
    let last = offsite().last_error.unwrap();
    assert!(last.contains(&needle) && !last.contains('\n'), "{last}");
    assert_eq!(
        direct.load(Ordering::SeqCst),
        before,
        "a connection reached the REST server without the proxy"
    );

    // The proxy is back: the next retry delivers, through it.
    proxy.restart();
    let snapshots = s.f.path().join("rest/chanvault/snapshots");
    eventually("delivery through the restarted proxy", 30, || {
        std::fs::read_dir(&snapshots).is_ok_and(|d| d.count() > 0)
    })
    .await;
    assert!(proxy.connects_to(relay) > 0, "{}", proxy.log());
    watch.stop().await;
}

/// (4) `keys list` against a real OpenBao at an onion name only the proxy
/// resolves (plain http:// to an onion service is allowed through a proxy);
/// with the proxy down, one line naming OpenBao and the proxy.
#[test]
fn escrow_reaches_openbao_through_the_proxy_only() {
    let bao = Bao::start();
    let dir = tempfile::tempdir().unwrap();
    let mut proxy = Sockd::start(&dir.path().join("sockd"), free_port(), &[BAO_ONION]);
    let token = bao.token_file("root.token", &bao.root_token);
    let config = dir.path().join("chanvault.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"state\"\n[lnd]\naddress = \"127.0.0.1:10009\"\ntls_cert = \"tls.cert\"\n\
             macaroon = \"m.macaroon\"\n[seal]\nrecipients = [\"{r}\"]\n[escrow]\n\
             address = \"http://{BAO_ONION}:{port}\"\nproxy = \"{proxy}\"\ntoken_file = \"{t}\"\n",
            r = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
            port = bao.port,
            proxy = proxy.url(),
            t = token.display()
        ),
    )
    .unwrap();
    let out = cli(&config, &["keys", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(proxy.connects_to(bao.port) >= 1, "{}", proxy.log());

    proxy.stop();
    let out = cli(&config, &["keys", "list"]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{}", text(&out));
    assert!(
        lines[0].contains(BAO_ONION) && lines[0].contains(&proxy.url()),
        "{}",
        lines[0]
    );
}

/// (5) An rclone webdav remote at a name only the proxy resolves: rclone
/// gets the proxy in its environment and delivers through it. An sftp
/// remote, which rclone would dial directly, is refused before rclone runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rclone_webdav_remote_goes_through_the_proxy_and_sftp_is_refused() {
    let s = Setup::new().await;
    let dav = RcloneServe::serve("webdav", &s.f.path().join("dav"));
    let proxy = Sockd::start(&s.f.path().join("sockd"), free_port(), &[DAV_NAME]);
    let pass = obscure(DAV_PASS);
    write_rclone_conf(
        &s,
        &format!(
            "[dav]\ntype = webdav\nurl = http://{DAV_NAME}:{port}/\nvendor = other\nuser = {DAV_USER}\npass = {pass}\n\n\
             [box]\ntype = sftp\nhost = {DAV_NAME}\nuser = {DAV_USER}\npass = {pass}\n",
            port = dav.port
        ),
    );
    let keys = format!(
        "rclone_config = \"rclone.conf\"\nproxy = \"{}\"\n",
        proxy.url()
    );
    s.configure("rclone:dav:chanvault/node1", &keys);
    let out = chanvault(&s, &["target", "init", "offsite"]);
    assert!(out.status.success(), "{}", text(&out));
    s.f.sim.open_channels(2);
    s.f.backup_once();
    assert!(s.f.path().join("dav/chanvault/node1/config").is_file());
    assert!(proxy.connects_to(dav.port) >= 1, "{}", proxy.log());

    s.configure("rclone:box:chanvault", &keys);
    let out = chanvault(&s, &["target", "init", "offsite"]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("offsite")
            && err.contains("of type sftp")
            && err.contains("refusing rather than connecting directly"),
        "{}",
        text(&out)
    );
    assert!(!err.contains(DAV_PASS) && !err.contains(&pass), "{err}");
}
