//! The escrow against a real OpenBao in the ways a dev server cannot show:
//! a non-dev server with raft storage (init, unseal, seal, restart), token
//! renewal and re-login past the max TTL, and a fault-injecting TCP proxy in
//! front of the real server (timeouts, malformed and truncated replies).
//! Everything listens on 127.0.0.1 only; every server and proxy a test
//! starts, it stops.

use crate::common::bao;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::vectors::ABANDON;
use crate::common::{Fixture, eventually};
use bao::{Bao, bao_binary, free_port_pair};
use chanvault::escrow::kv::{KvClient, Read as KvRead};

/// Exit 1 and exactly one line on stderr.
fn err(config: &Path, args: &[&str]) -> String {
    let out = bao::cli(config, args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    stderr.trim().to_owned()
}

/// A non-dev OpenBao with raft storage in a temp dir, initialised with one
/// unseal key. Killed on Drop.
struct RaftBao {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    unseal_key: String,
    root_token: String,
}

impl RaftBao {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port_pair();
        std::fs::create_dir_all(dir.path().join("raft")).unwrap();
        std::fs::write(
            dir.path().join("bao.hcl"),
            format!(
                r#"storage "raft" {{
  path = "{raft}"
  node_id = "chanvault-test"
}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cport}"
  tls_disable = true
}}
api_addr = "http://127.0.0.1:{port}"
cluster_addr = "http://127.0.0.1:{cport}"
disable_mlock = true
"#,
                raft = dir.path().join("raft").display(),
                cport = port + 1
            ),
        )
        .unwrap();
        let mut b = RaftBao {
            dir,
            port,
            child: None,
            unseal_key: String::new(),
            root_token: String::new(),
        };
        b.spawn();
        let init = b.bao_ok(&[
            "operator",
            "init",
            "-key-shares=1",
            "-key-threshold=1",
            "-format=json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&init).unwrap();
        b.unseal_key = v["unseal_keys_b64"][0].as_str().unwrap().to_owned();
        b.root_token = v["root_token"].as_str().unwrap().to_owned();
        b.unseal();
        b.bao_ok(&["secrets", "enable", "-path=secret", "kv-v2"]);
        b
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let child = Command::new(bao_binary())
            .args(["server", "-config"])
            .arg(self.dir.path().join("bao.hcl"))
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start bao: {e}; {}", bao::INSTALL_HINT));
        self.child = Some(child);
        // Up (sealed or not) once `bao status` answers at all (exit 0 or 2).
        let start = Instant::now();
        loop {
            let code = self.bao(&["status"]).status.code();
            if matches!(code, Some(0) | Some(2)) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "bao server did not start: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn bao(&self, args: &[&str]) -> Output {
        Command::new(bao_binary())
            .args(args)
            .env("BAO_ADDR", self.addr())
            .env("BAO_TOKEN", &self.root_token)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn bao_ok(&self, args: &[&str]) -> String {
        let out = self.bao(args);
        assert!(
            out.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Unseal and wait until this node is the active raft leader.
    fn unseal(&self) {
        self.bao_ok(&["operator", "unseal", &self.unseal_key]);
        let start = Instant::now();
        loop {
            let out = self.bao(&["read", "-format=json", "sys/leader"]);
            if out.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                if v["data"]["is_self"] == true {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no raft leader after unseal"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn seal(&self) {
        self.bao_ok(&["operator", "seal"]);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RaftBao {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `chanvault watch` daemon, killed on Drop.
struct Watch(Child);

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raft_server_seal_unseal_restart_and_watch_is_unaffected() {
    let mut bao = RaftBao::start();
    let f = Fixture::new().await;
    f.sim.open_channels(2);
    let token = f.path().join("root.token");
    std::fs::write(&token, &bao.root_token).unwrap();
    f.write_config(&format!(
        "[escrow]\naddress = \"{}\"\ntoken_file = \"{}\"\n",
        bao.addr(),
        token.display()
    ));
    let cfg = &f.config;
    let seed = f.path().join("seed");
    std::fs::write(&seed, ABANDON).unwrap();
    let out = bao::cli_ok(
        cfg,
        &[
            "keys",
            "put",
            "bip39",
            "seed",
            "--file",
            seed.to_str().unwrap(),
        ],
    );
    assert!(out.contains("version 1"), "{out}");

    // The daemon runs against the same config (it has an [escrow] section).
    let watch = Watch(
        Command::new(env!("CARGO_BIN_EXE_chanvault"))
            .args(["watch", "--config"])
            .arg(cfg)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let current = f.target_dir("pbs").join("channel.backup.json");
    eventually("watch delivers the first backup", 30, || current.exists()).await;

    // Sealed: one clear line, nothing written.
    bao.seal();
    let e = err(
        cfg,
        &[
            "keys",
            "put",
            "bip39",
            "seed",
            "--replace",
            "--file",
            seed.to_str().unwrap(),
        ],
    );
    assert!(
        e.starts_with(&format!(
            "chanvault: error: OpenBao at {} is sealed",
            bao.addr()
        )),
        "{e}"
    );
    assert!(e.contains("nothing was written"), "{e}");
    // watch does not use the escrow: a new channel is still backed up and delivered.
    let before = std::fs::read(&current).unwrap();
    f.sim.open_channel();
    eventually("watch delivers while OpenBao is sealed", 30, || {
        std::fs::read(&current).is_ok_and(|now| now != before)
    })
    .await;
    drop(watch);

    // Unsealed: works again, and the sealed attempt left no version behind.
    bao.unseal();
    let h = bao::cli_ok(cfg, &["keys", "history", "seed"]);
    assert!(h.contains("current version 1"), "{h}");
    bao::cli_ok(
        cfg,
        &[
            "keys",
            "put",
            "bip39",
            "seed",
            "--replace",
            "--file",
            seed.to_str().unwrap(),
        ],
    );

    // Restart: sealed again after start, the data survives the unseal.
    bao.restart();
    let e = err(cfg, &["keys", "list"]);
    assert!(e.contains("is sealed"), "{e}");
    bao.unseal();
    let h = bao::cli_ok(cfg, &["keys", "history", "seed"]);
    assert!(h.contains("current version 2"), "{h}");
    let o = f.path().join("seed.out");
    bao::cli_ok(
        cfg,
        &[
            "keys",
            "get",
            "seed",
            "--reveal",
            "--out",
            o.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&o).unwrap().trim(), ABANDON);
    bao::cli_ok(cfg, &["audit", "verify"]);
}

fn escrow_config(dir: &Path, address: &str, auth: &str, timeout: u64) -> chanvault::config::Config {
    let path = dir.join("chanvault.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = \"state\"\n[lnd]\naddress = \"127.0.0.1:10009\"\ntls_cert = \"c\"\nmacaroon = \"m\"\n\
             [seal]\nrecipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]\n\
             [escrow]\naddress = \"{address}\"\ntimeout_seconds = {timeout}\n{auth}"
        ),
    )
    .unwrap();
    chanvault::config::Config::load(&path).unwrap()
}

fn ops_policy(bao: &Bao) {
    let p = bao.dir.path().join("ops.hcl");
    std::fs::write(
        &p,
        "path \"secret/*\" { capabilities = [\"create\", \"read\", \"update\", \"list\"] }\n",
    )
    .unwrap();
    bao.write_policy("ops", &p);
}

async fn read_v1(kv: &mut KvClient) {
    match kv.read("chanvault/t", None).await.unwrap() {
        KvRead::Found { version, .. } => assert_eq!(version, 1),
        _ => panic!("chanvault/t is not readable"),
    }
}

#[tokio::test]
async fn a_short_ttl_token_is_renewed_and_keeps_working_past_its_ttl() {
    let bao = Bao::start();
    ops_policy(&bao);
    let token = bao.bao_ok(&[
        "token",
        "create",
        "-policy=ops",
        "-ttl=6s",
        "-explicit-max-ttl=1h",
        "-field=token",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let file = bao.token_file("short.token", &token);
    let cfg = escrow_config(
        dir.path(),
        &bao.addr(),
        &format!("token_file = \"{}\"\n", file.display()),
        5,
    );
    let mut kv = KvClient::new(cfg.escrow.as_ref().unwrap()).unwrap();
    assert_eq!(kv.put("chanvault/t", &[("v", "1")], 0).await.unwrap(), 1);
    let start = Instant::now();
    let mut max_left = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(10) {
        read_v1(&mut kv).await;
        let left = kv.token_ttl_left().unwrap();
        max_left = max_left.max(left);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Past the original 6 s TTL and the token (not a new login) still works.
    read_v1(&mut kv).await;
    let lookup = bao.bao(&["token", "lookup", "-format=json", &token]);
    assert!(lookup.status.success(), "the original token expired");
    let v: serde_json::Value = serde_json::from_slice(&lookup.stdout).unwrap();
    assert!(
        v["data"]["last_renewal_time"].as_i64().unwrap_or(0) > 0,
        "the token was never renewed: {v}"
    );
    assert!(max_left <= Duration::from_secs(6), "{max_left:?}");
}

#[tokio::test]
async fn approle_logs_in_again_past_the_max_ttl() {
    let bao = Bao::start();
    ops_policy(&bao);
    bao.bao_ok(&[
        "write",
        "auth/approle/role/short",
        "token_policies=ops",
        "token_ttl=3s",
        "token_max_ttl=4s",
    ]);
    let role_id = bao.bao_ok(&["read", "-field=role_id", "auth/approle/role/short/role-id"]);
    let secret_id = bao.bao_ok(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/short/secret-id",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let rid = dir.path().join("role-id");
    let sid = dir.path().join("secret-id");
    std::fs::write(&rid, role_id).unwrap();
    std::fs::write(&sid, secret_id).unwrap();
    let cfg = escrow_config(
        dir.path(),
        &bao.addr(),
        &format!(
            "approle_role_id_file = \"{}\"\napprole_secret_id_file = \"{}\"\n",
            rid.display(),
            sid.display()
        ),
        5,
    );
    let mut kv = KvClient::new(cfg.escrow.as_ref().unwrap()).unwrap();
    assert_eq!(kv.put("chanvault/t", &[("v", "1")], 0).await.unwrap(), 1);
    let first = kv.accessor().unwrap().to_owned();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(7) {
        read_v1(&mut kv).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    read_v1(&mut kv).await;
    assert_ne!(
        kv.accessor().unwrap(),
        first,
        "no new login past the max TTL"
    );
}

/// What the proxy does with the next connections.
const PASS: u8 = 0;
/// Read the request, never answer.
const HANG: u8 = 1;
/// Answer 200 with a body that is not JSON.
const GARBAGE: u8 = 2;
/// Announce 1000 bytes of body, send 10, close.
const TRUNCATE: u8 = 3;

/// A fault-injecting TCP proxy on 127.0.0.1 in front of the real server.
struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(PASS));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (mode.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut conns: Vec<JoinHandle<()>> = Vec::new();
            for c in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(c) = c else { continue };
                let (mode, stop) = (m.load(Ordering::SeqCst), s.clone());
                conns.push(std::thread::spawn(move || serve(c, upstream, mode, &stop)));
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Proxy {
            port,
            mode,
            stop,
            thread: Some(thread),
        }
    }

    fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut c: TcpStream, upstream: u16, mode: u8, stop: &AtomicBool) {
    let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
    match mode {
        PASS => {
            let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                return;
            };
            let _ = up.set_read_timeout(Some(Duration::from_millis(200)));
            let (mut c2, mut up2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
            let stop_flag = AtomicBool::new(false);
            std::thread::scope(|sc| {
                sc.spawn(|| pump(&mut c2, &mut up, stop, &stop_flag));
                pump(&mut up2, &mut c, stop, &stop_flag);
            });
        }
        HANG => {
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::SeqCst) {
                match c.read(&mut buf) {
                    Ok(0) => return,
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        GARBAGE | TRUNCATE => {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let reply: &[u8] = if mode == GARBAGE {
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{\"data\": [1,"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{\"data\": {"
            };
            let _ = c.write_all(reply);
            let _ = c.shutdown(Shutdown::Both);
        }
        _ => {}
    }
}

/// Copy `from` to `to` until EOF, an error, or a stop.
fn pump(from: &mut TcpStream, to: &mut TcpStream, stop: &AtomicBool, done: &AtomicBool) {
    let mut buf = [0u8; 16 << 10];
    while !stop.load(Ordering::SeqCst) && !done.load(Ordering::SeqCst) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    done.store(true, Ordering::SeqCst);
    let _ = to.shutdown(Shutdown::Write);
}

#[test]
fn a_faulty_network_gives_clear_errors_and_writes_nothing() {
    let bao = Bao::start();
    let proxy = Proxy::start(bao.port);
    let dir = tempfile::tempdir().unwrap();
    let token = bao.token_file("root.token", &bao.root_token);
    let cfg = escrow_config(
        dir.path(),
        &proxy.addr(),
        &format!("token_file = \"{}\"\n", token.display()),
        2,
    );
    let path: PathBuf = cfg.source.clone();
    let seed = dir.path().join("seed");
    std::fs::write(&seed, ABANDON).unwrap();
    let s = seed.to_str().unwrap();

    // Through the proxy, all is well.
    bao::cli_ok(&path, &["keys", "put", "bip39", "seed", "--file", s]);

    proxy.set(HANG);
    let t0 = Instant::now();
    let e = err(
        &path,
        &["keys", "put", "bip39", "seed", "--replace", "--file", s],
    );
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    assert_eq!(
        e,
        format!(
            "chanvault: error: OpenBao at {} did not answer auth/token/lookup-self within 2s (escrow.timeout_seconds); check the server and the network, then retry",
            proxy.addr()
        )
    );

    proxy.set(GARBAGE);
    let e = err(&path, &["keys", "list"]);
    assert!(
        e.starts_with(&format!(
            "chanvault: error: OpenBao at {} sent a malformed reply for auth/token/lookup-self",
            proxy.addr()
        )),
        "{e}"
    );

    proxy.set(TRUNCATE);
    let e = err(&path, &["keys", "get", "seed"]);
    assert!(
        e.starts_with(&format!(
            "chanvault: error: OpenBao at {} sent a malformed reply for auth/token/lookup-self",
            proxy.addr()
        )),
        "{e}"
    );

    proxy.set(PASS);
    let h = bao::cli_ok(&path, &["keys", "history", "seed"]);
    assert!(h.contains("current version 1"), "nothing written: {h}");
    let audit = std::fs::read_to_string(dir.path().join("state/escrow-audit.jsonl")).unwrap();
    assert!(audit.contains("\"outcome\":\"error: timeout\""), "{audit}");
    assert!(
        audit.contains("\"outcome\":\"error: malformed-reply\""),
        "{audit}"
    );
    bao::cli_ok(&path, &["audit", "verify"]);
    drop(proxy);
}
