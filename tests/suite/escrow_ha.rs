//! The escrow against a real three-node OpenBao raft cluster on 127.0.0.1:
//! the active node killed (SIGKILL) in the middle of `keys put`, reads
//! during the election that follows, and `verify` and `audit verify`
//! afterwards. Every server and relay a test starts, it stops (kill on
//! Drop, so also when an assertion fails).
//!
//! The kill in the middle of a write is made exact by a relay in front of
//! the active node: it passes the write on, waits for OpenBao's reply (the
//! write is applied), kills the node and drops the connection without
//! answering. That is the case check-and-set must settle: applied, reply
//! lost, and a new leader to ask.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::bao::{self, bao_binary, free_port_pair};
use crate::common::vectors::ABANDON;
use crate::common::{Fixture, text};

/// One `bao server` with raft storage in its own dir. Killed on Drop.
struct Node {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Node {
    fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let child = Command::new(bao_binary())
            .args(["server", "-config"])
            .arg(self.dir.join("bao.hcl"))
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start bao: {e}; {}", bao::INSTALL_HINT));
        self.child = Some(child);
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL (what `Child::kill` sends on Unix), and reap it.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three raft nodes, initialised (one unseal key), unsealed and joined, all
/// voters, KV v2 at `secret/`.
struct Cluster {
    _dir: tempfile::TempDir,
    nodes: Vec<Node>,
    unseal_key: String,
    root_token: String,
}

/// Ports p (API) and p+1 (cluster), distinct for each node.
fn ports(n: usize) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::new();
    while out.len() < n {
        let p = free_port_pair();
        if out.iter().all(|q| p.abs_diff(*q) > 1) {
            out.push(p);
        }
    }
    out
}

impl Cluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let nodes = ports(3)
            .into_iter()
            .enumerate()
            .map(|(i, port)| {
                let d = dir.path().join(format!("n{i}"));
                std::fs::create_dir_all(d.join("raft")).unwrap();
                std::fs::write(
                    d.join("bao.hcl"),
                    format!(
                        r#"storage "raft" {{
  path = "{raft}"
  node_id = "n{i}"
  performance_multiplier = 1
}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cport}"
  tls_disable = true
}}
api_addr = "http://127.0.0.1:{port}"
cluster_addr = "https://127.0.0.1:{cport}"
disable_mlock = true
"#,
                        raft = d.join("raft").display(),
                        cport = port + 1
                    ),
                )
                .unwrap();
                Node {
                    dir: d,
                    port,
                    child: None,
                }
            })
            .collect();
        let mut c = Cluster {
            _dir: dir,
            nodes,
            unseal_key: String::new(),
            root_token: String::new(),
        };
        for i in 0..3 {
            c.nodes[i].spawn();
            c.wait_up(i);
        }
        let init = c.ok(
            0,
            &[
                "operator",
                "init",
                "-key-shares=1",
                "-key-threshold=1",
                "-format=json",
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&init).unwrap();
        c.unseal_key = v["unseal_keys_b64"][0].as_str().unwrap().to_owned();
        c.root_token = v["root_token"].as_str().unwrap().to_owned();
        c.unseal(0);
        assert_eq!(c.wait_leader(&[0, 1, 2]), 0);
        // Joined nodes become voters once stable; 1 s instead of 10.
        c.ok(
            0,
            &[
                "operator",
                "raft",
                "autopilot",
                "set-config",
                "-server-stabilization-time=1s",
            ],
        );
        c.ok(0, &["secrets", "enable", "-path=secret", "kv-v2"]);
        let leader = c.nodes[0].addr();
        for i in 1..3 {
            c.ok(i, &["operator", "raft", "join", &leader]);
            c.unseal(i);
        }
        c.wait_voters(3);
        c
    }

    fn bao(&self, i: usize, args: &[&str]) -> Output {
        Command::new(bao_binary())
            .args(args)
            .env("BAO_ADDR", self.nodes[i].addr())
            .env("BAO_TOKEN", &self.root_token)
            .env("HOME", &self.nodes[i].dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.bao(i, args);
        assert!(out.status.success(), "bao {args:?} on n{i}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Up (sealed or not) once `bao status` answers at all.
    fn wait_up(&self, i: usize) {
        wait(&format!("n{i} to start"), 20, || {
            matches!(self.bao(i, &["status"]).status.code(), Some(0 | 2))
        });
    }

    fn unseal(&self, i: usize) {
        self.ok(i, &["operator", "unseal", &self.unseal_key]);
    }

    /// The node among `alive` that says it is the active one.
    fn leader(&self, alive: &[usize]) -> Option<usize> {
        alive.iter().copied().find(|&i| {
            let out = self.bao(i, &["read", "-format=json", "sys/leader"]);
            out.status.success()
                && serde_json::from_slice::<serde_json::Value>(&out.stdout)
                    .is_ok_and(|v| v["data"]["is_self"] == true)
        })
    }

    fn wait_leader(&self, alive: &[usize]) -> usize {
        let mut found = None;
        wait("an active node", 30, || {
            found = self.leader(alive);
            found.is_some()
        });
        found.unwrap()
    }

    fn wait_voters(&self, n: usize) {
        wait(&format!("{n} raft voters"), 60, || {
            let Some(l) = self.leader(&[0, 1, 2]) else {
                return false;
            };
            let out = self.bao(l, &["operator", "raft", "list-peers", "-format=json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            v["data"]["config"]["servers"]
                .as_array()
                .is_some_and(|s| s.iter().filter(|s| s["voter"] == true).count() == n)
        });
    }

    /// An item's current version, as root on node `i`.
    fn version(&self, i: usize, item: &str) -> u64 {
        let out = self.ok(i, &["kv", "metadata", "get", "-format=json", item]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["data"]["current_version"].as_u64().unwrap()
    }
}

fn wait(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "no {what} after {secs}s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP relay on 127.0.0.1 in front of one node. Armed, it passes the
/// first request whose head starts with `trigger` on, and when the reply
/// comes back it SIGKILLs the node (`pid`) and closes the client's
/// connection instead of answering.
struct Relay {
    port: u16,
    tripped: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    fn start(upstream: u16, pid: u32, trigger: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tripped = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let armed = Arc::new(AtomicU32::new(pid));
        let (t, s) = (tripped.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            for c in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(c) = c else { continue };
                let (t, s, a) = (t.clone(), s.clone(), armed.clone());
                conns.push(std::thread::spawn(move || {
                    relay(c, upstream, trigger, &a, &t, &s)
                }));
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Relay {
            port,
            tripped,
            stop,
            thread: Some(thread),
        }
    }

    fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn relay(
    client: TcpStream,
    upstream: u16,
    trigger: &[u8],
    armed: &AtomicU32,
    tripped: &AtomicBool,
    stop: &AtomicBool,
) {
    let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    for s in [&client, &up] {
        let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    }
    // Set once the trigger went upstream: its reply is swallowed.
    let swallow = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let (mut from, mut to) = (client.try_clone().unwrap(), up.try_clone().unwrap());
            pump(&mut from, &mut to, stop, &done, |chunk| {
                if chunk.starts_with(trigger) && armed.load(Ordering::SeqCst) != 0 {
                    swallow.store(true, Ordering::SeqCst);
                }
                true
            });
        });
        let (mut from, mut to) = (up.try_clone().unwrap(), client.try_clone().unwrap());
        pump(&mut from, &mut to, stop, &done, |_| {
            if !swallow.load(Ordering::SeqCst) {
                return true;
            }
            // OpenBao answered: the write is applied. Kill the node before
            // anyone hears of it, and hang up on the client.
            let pid = armed.swap(0, Ordering::SeqCst);
            if pid != 0 {
                let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                tripped.store(true, Ordering::SeqCst);
            }
            let _ = client.shutdown(Shutdown::Both);
            false
        });
    });
}

/// Copy `from` to `to` while `pass` says so (it sees each chunk first).
fn pump(
    from: &mut TcpStream,
    to: &mut TcpStream,
    stop: &AtomicBool,
    done: &AtomicBool,
    mut pass: impl FnMut(&[u8]) -> bool,
) {
    let mut buf = [0u8; 16 << 10];
    while !stop.load(Ordering::SeqCst) && !done.load(Ordering::SeqCst) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if !pass(&buf[..n]) || to.write_all(&buf[..n]).is_err() {
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

/// The escrow section for these nodes.
fn escrow(addresses: &[String], token: &Path, timeout: u64) -> String {
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[escrow]\naddress = [{}]\ntoken_file = \"{}\"\ntimeout_seconds = {timeout}\n",
        list.join(", "),
        token.display()
    )
}

/// Audit records of `op` on `item`.
fn records(f: &Fixture, op: &str, item: &str) -> Vec<serde_json::Value> {
    let log = std::fs::read_to_string(f.path().join("state/escrow-audit.jsonl")).unwrap();
    log.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["op"] == op && r["path"] == format!("secret/data/chanvault/{item}"))
        .collect()
}

fn put(f: &Fixture, name: &str, seed: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_chanvault"))
        .args(["keys", "put", "bip39", name, "--file"])
        .arg(seed)
        .arg("--config")
        .arg(&f.config)
        .env_remove("RUST_LOG")
        .env_remove("BAO_ADDR")
        .env_remove("VAULT_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_node_killed_mid_write_leaves_one_version_and_one_record() {
    let mut c = Cluster::start();
    let f = Fixture::new().await;
    f.sim.open_channels(2);
    let token = f.path().join("root.token");
    std::fs::write(&token, &c.root_token).unwrap();
    let seed = f.path().join("seed");
    std::fs::write(&seed, ABANDON).unwrap();
    let timeout = 20;

    // 1. n0 is active; the relay in front of it kills it once it has
    // applied the write of `seed`, and the reply never comes.
    let relay = Relay::start(
        c.nodes[0].port,
        c.nodes[0].pid(),
        b"POST /v1/secret/data/chanvault/seed ",
    );
    let addrs = vec![relay.addr(), c.nodes[1].addr(), c.nodes[2].addr()];
    f.write_config(&escrow(&addrs, &token, timeout));
    let t0 = Instant::now();
    let out = put(&f, "seed", &seed).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        relay.tripped.load(Ordering::SeqCst),
        "the relay never fired"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("version 1"),
        "{}",
        text(&out)
    );
    assert!(t0.elapsed() < Duration::from_secs(timeout * 2));
    c.nodes[0].kill();
    drop(relay);
    let l = c.wait_leader(&[1, 2]);
    assert_eq!(c.version(l, "secret/chanvault/seed"), 1);
    let put_records = records(&f, "put", "seed");
    assert_eq!(put_records.len(), 1, "{put_records:?}");
    assert_eq!(put_records[0]["version"], 1, "{put_records:?}");
    bao::cli_ok(&f.config, &["audit", "verify"]);

    // n0 back (same raft data), unsealed, a voter again.
    c.nodes[0].spawn();
    c.wait_up(0);
    c.unseal(0);
    c.wait_voters(3);

    // 2. All three nodes by their own addresses; the active one killed
    // while a `keys put` and a `keys get` run.
    let addrs: Vec<String> = c.nodes.iter().map(Node::addr).collect();
    f.write_config(&escrow(&addrs, &token, timeout));
    let l = c.wait_leader(&[0, 1, 2]);
    let writer = put(&f, "seed2", &seed);
    std::thread::sleep(Duration::from_millis(150));
    c.nodes[l].kill();
    let t0 = Instant::now();
    let got = bao::cli(&f.config, &["keys", "get", "seed"]);
    assert!(got.status.success(), "{}", text(&got));
    assert!(
        t0.elapsed() < Duration::from_secs(timeout),
        "{:?}",
        t0.elapsed()
    );
    let out = writer.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let alive: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    let l2 = c.wait_leader(&alive);
    assert_eq!(c.version(l2, "secret/chanvault/seed2"), 1);
    assert_eq!(records(&f, "put", "seed2").len(), 1);

    // 3. Afterwards: the drill's escrow rows and the anchor agree.
    let identity = f.identity.to_str().unwrap();
    bao::cli_ok(
        &f.config,
        &["keys", "put", "age-identity", "backups", "--file", identity],
    );
    f.backup_once();
    let out = bao::cli(&f.config, &["verify", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let rows = report["checks"].as_array().cloned().unwrap_or_default();
    let escrow_rows: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| {
            let s = format!("{}{}", r["target"], r["check"]);
            s.contains("escrow") || s.contains("audit")
        })
        .collect();
    assert!(!escrow_rows.is_empty(), "{}", text(&out));
    for r in &escrow_rows {
        assert_eq!(r["ok"], true, "{r}: {}", text(&out));
    }
    bao::cli_ok(&f.config, &["audit", "verify"]);

    // 4. No node left: one line naming every address, within the timeout.
    for n in &mut c.nodes {
        n.kill();
    }
    f.write_config(&escrow(&addrs, &token, 3));
    let t0 = Instant::now();
    let out = bao::cli(&f.config, &["keys", "get", "seed"]);
    let e = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("within 3s"), "{e}");
    for a in &addrs {
        assert!(e.contains(a.as_str()), "{a}: {e}");
    }
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
}
