//! Many nodes, one operator (docs/many-nodes.md): two chanvault instances,
//! each following its own LND simulator, share ONE REST server with private
//! repositories (`rclone serve restic --private-repos`, one htpasswd user per
//! node) and ONE OpenBao (an `escrow.prefix` per node, each node's tokens
//! under its own copy of the shipped policies, made by the documented `sed`).
//! Each node delivers, escrows and passes `verify`; then neither node's
//! credentials reach the other's escrow items or repository. Every server is
//! on 127.0.0.1 and is stopped when the test ends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;

use crate::common::bao::{self, Bao};
use crate::common::{Fixture, text};
use crate::restic_target::{REPO_PASSWORD, Rclone, free_port, need, restic, write_htpasswd};

const MOUNT: &str = "secret";

/// One LND node and its chanvault: the simulator, the config, the REST
/// user, and its two OpenBao tokens (operator and daemon policies).
struct Node {
    name: &'static str,
    f: Fixture,
    rest_pass: String,
    operator: String,
    daemon: String,
}

impl Node {
    fn prefix(&self) -> String {
        format!("chanvault/{}", self.name)
    }

    fn password_file(&self) -> PathBuf {
        self.f.path().join("restic-password")
    }

    /// The node's repository as stock restic names it, with `user`'s credentials.
    fn repo_as(&self, port: u16, user: &str, pass: &str) -> String {
        format!("rest:http://{user}:{pass}@127.0.0.1:{port}/{}/", self.name)
    }

    /// A copy of the node's config with another token, prefix, repository
    /// path and state dir (so probes leave the node's own audit log alone).
    fn probe(&self, what: &str, token: &str, prefix: &str, repo_path: &str) -> PathBuf {
        let token_file = self.f.path().join(format!("{what}.token"));
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        let text = std::fs::read_to_string(&self.f.config)
            .unwrap()
            .replace(
                &format!("prefix = \"{}\"", self.prefix()),
                &format!("prefix = \"{prefix}\""),
            )
            .replace("operator.token", &format!("{what}.token"))
            .replace(&format!("/{}/\"", self.name), &format!("/{repo_path}/\""))
            .replace("state_dir = \"state\"", &format!("state_dir = \"{what}\""));
        let path = self.f.path().join(format!("{what}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A node: its simulator, REST credentials, per-node policies and tokens,
/// and a config with a restic target on the shared server and the escrow
/// under its own prefix.
async fn node(name: &'static str, bao: &Bao, rest_port: u16) -> Node {
    let f = Fixture::new().await;
    let rest_pass = format!("rest-{name}-{}", hex::encode(rand::random::<[u8; 6]>()));
    std::fs::write(
        f.path().join("restic-password"),
        format!("{REPO_PASSWORD}\n"),
    )
    .unwrap();
    std::fs::write(f.path().join("rest-auth"), format!("{name}:{rest_pass}\n")).unwrap();
    let prefix = format!("chanvault/{name}");
    for p in ["chanvault-operator", "chanvault-daemon"] {
        bao.write_shipped_policy(&format!("{p}-{name}"), p, &prefix);
    }
    let operator = bao.token_with_policy(&format!("chanvault-operator-{name}"));
    let daemon = bao.token_with_policy(&format!("chanvault-daemon-{name}"));
    std::fs::write(f.path().join("operator.token"), format!("{operator}\n")).unwrap();
    f.write_config(&format!(
        "[[target]]\nname = \"offsite\"\nkind = \"restic\"\n\
         repository = \"rest:http://127.0.0.1:{rest_port}/{name}/\"\n\
         password_file = \"restic-password\"\nhttp_credentials_file = \"rest-auth\"\n\
         host = \"{name}\"\ntags = [\"{name}\"]\n\
         [escrow]\naddress = \"{addr}\"\nmount = \"{MOUNT}\"\nprefix = \"{prefix}\"\n\
         token_file = \"operator.token\"\nrequired = [\"age-identity\"]\n",
        addr = bao.addr(),
    ));
    Node {
        name,
        f,
        rest_pass,
        operator,
        daemon,
    }
}

/// `chanvault ARGS --config CONFIG` must exit `code`; its stderr.
fn exits(config: &Path, args: &[&str], code: i32) -> String {
    let out = bao::cli(config, args);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_openbao_and_one_rest_server_and_stay_apart() {
    need("rclone");
    need("restic");
    let bao = Bao::start();
    let rest_root = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut nodes = vec![];
    for name in ["alice", "bob"] {
        nodes.push(node(name, &bao, port).await);
    }
    let htpasswd = rest_root.path().join("htpasswd");
    let lines: Vec<String> = nodes
        .iter()
        .map(|n| {
            let one = rest_root.path().join(format!("{}.htpasswd", n.name));
            write_htpasswd(&one, n.name, &n.rest_pass);
            std::fs::read_to_string(one).unwrap()
        })
        .collect();
    std::fs::write(&htpasswd, lines.concat()).unwrap();
    let h = htpasswd.display().to_string();
    let _server = Rclone::start(
        &rest_root.path().join("repos"),
        port,
        &["--htpasswd", &h, "--private-repos"],
    );

    for (i, n) in nodes.iter().enumerate() {
        let cfg = &n.f.config;
        bao::cli_ok(cfg, &["target", "init", "offsite"]);
        n.f.sim.open_channels(2 + i);
        bao::cli_ok(cfg, &["backup", "--once"]);
        let id = n.f.identity.display().to_string();
        bao::cli_ok(
            cfg,
            &["keys", "put", "age-identity", "age-identity", "--file", &id],
        );
        let out = bao::cli_ok(cfg, &["verify"]);
        for row in ["decrypt-escrowed", "lnd-verify", "covers-lnd"] {
            assert!(
                out.lines()
                    .any(|l| l.starts_with("✓ offsite") && l.contains(row)),
                "{}: no passing offsite {row} row:\n{out}",
                n.name
            );
        }
        // The daemon token reads its own node's identity, as the policy says.
        let daemon = n.probe("daemon", &n.daemon, &n.prefix(), n.name);
        let o = n.f.path().join("identity.out");
        bao::cli_ok(
            &daemon,
            &[
                "keys",
                "get",
                "age-identity",
                "--reveal",
                "--out",
                o.to_str().unwrap(),
            ],
        );
        // The monthly drill runs with the daemon token (chanvault-verify.service):
        // it may not list the escrow, so it reads the identity item alone.
        let out = bao::cli_ok(&daemon, &["verify"]);
        assert!(
            out.lines()
                .any(|l| l.starts_with("✓ offsite") && l.contains("decrypt-escrowed")),
            "{}: the daemon token's drill opens no backup:\n{out}",
            n.name
        );
        assert!(
            out.lines()
                .any(|l| l.starts_with('-') && l.contains("may not list the escrow")),
            "{out}"
        );
        let got = std::fs::read_to_string(&o).unwrap();
        let want = std::fs::read_to_string(&n.f.identity).unwrap();
        // Compared without printing either: they are secrets.
        assert!(
            want.lines().any(|l| l == got.trim()),
            "{}: the revealed identity is not the escrowed one",
            n.name
        );
    }

    let (a, b) = (&nodes[0], &nodes[1]);
    escrow_is_per_node(&bao, a, b);
    escrow_is_per_node(&bao, b, a);
    repository_is_per_node(port, a, b, &rest_root.path().join("repos"));
    repository_is_per_node(port, b, a, &rest_root.path().join("repos"));
    for (i, n) in nodes.iter().enumerate() {
        snapshots_carry_the_node_name(port, n, 2 + i);
    }
    one_operator_may_see_every_node(&bao, a, b);
}

/// `from`'s tokens reach nothing under `to`'s prefix: not through the bao CLI
/// (read, list, write, overwrite, delete, undelete, destroy, metadata), nor
/// through chanvault with `from`'s config pointed at `to`'s prefix; `to`'s
/// items are untouched afterwards.
fn escrow_is_per_node(bao: &Bao, from: &Node, to: &Node) {
    let before = metadata(bao, to);
    let own = format!("{MOUNT}/{}/age-identity", from.prefix());
    assert!(
        bao.bao_as(&from.operator, &["kv", "get", &own])
            .status
            .success()
    );
    assert!(
        bao.bao_as(&from.daemon, &["kv", "get", &own])
            .status
            .success()
    );
    let other = item(to);
    let folder = format!("{MOUNT}/{}", to.prefix());
    let planted = format!("{folder}/planted");
    let probes: Vec<Vec<&str>> = vec![
        vec!["kv", "get", &other],
        vec!["kv", "list", &folder],
        vec!["kv", "put", &planted, "x=y"],
        vec!["kv", "put", &other, "x=y"],
        vec!["kv", "patch", &other, "x=y"],
        vec!["kv", "delete", &other],
        vec!["kv", "undelete", "-versions=1", &other],
        vec!["kv", "destroy", "-versions=1", &other],
        vec!["kv", "metadata", "get", &other],
        vec!["kv", "metadata", "put", "-max-versions=1", &other],
        vec!["kv", "metadata", "delete", &other],
    ];
    for token in [&from.operator, &from.daemon] {
        for args in &probes {
            let out = bao.bao_as(token, args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && err.contains("permission denied"),
                "{} could run bao {args:?}: {}",
                from.name,
                text(&out)
            );
        }
    }
    // chanvault itself, with from's operator token and to's prefix.
    let cfg = from.probe("probe", &from.operator, &to.prefix(), from.name);
    let id = from.f.identity.display().to_string();
    for args in [
        vec!["keys", "list"],
        vec!["keys", "get", "age-identity"],
        vec!["keys", "history", "age-identity"],
        vec!["keys", "put", "age-identity", "planted", "--file", &id],
        vec![
            "keys",
            "put",
            "age-identity",
            "age-identity",
            "--file",
            &id,
            "--replace",
        ],
    ] {
        let err = exits(&cfg, &args, 1);
        assert!(err.contains("permission denied"), "{args:?}: {err}");
    }
    assert_eq!(metadata(bao, to), before, "{}'s item changed", to.name);
    let listed = bao.bao_ok(&["kv", "list", "-format=json", &folder]);
    let listed: Vec<String> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed, ["_audit/", "age-identity"], "{}", to.name);
}

/// The KV metadata of `n`'s identity item as root reads it: versions,
/// deletion and destruction times, custom metadata.
fn metadata(bao: &Bao, n: &Node) -> serde_json::Value {
    let out = bao.bao_ok(&["kv", "metadata", "get", "-format=json", &item(n)]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["data"].clone()
}

fn item(n: &Node) -> String {
    format!("{MOUNT}/{}/age-identity", n.prefix())
}

/// `from`'s REST credentials neither read nor write `to`'s repository: the
/// server answers 401/403 to every request, stock restic and chanvault both
/// fail, and `to`'s files are byte for byte what they were.
fn repository_is_per_node(port: u16, from: &Node, to: &Node, root: &Path) {
    let before = files(&root.join(to.name));
    assert!(before.iter().any(|(p, _)| p == "config"), "{before:?}");
    let id = "0".repeat(64);
    let key = before
        .iter()
        .find_map(|(p, _)| p.strip_prefix("keys/"))
        .expect("a key file")
        .to_owned();
    let t = to.name;
    // The owner may (so the refusals below are about who asks, not how).
    assert_eq!(
        http_status(port, "GET", &format!("/{t}/config"), t, &to.rest_pass),
        200
    );
    for (method, path) in [
        ("GET", format!("/{t}/config")),
        ("HEAD", format!("/{t}/config")),
        ("GET", format!("/{t}/keys/")),
        ("GET", format!("/{t}/snapshots/")),
        ("GET", format!("/{t}/keys/{key}")),
        ("POST", format!("/{t}/?create=true")),
        ("POST", format!("/{t}/config")),
        ("POST", format!("/{t}/data/{id}")),
        ("POST", format!("/{t}/keys/{key}")),
        ("DELETE", format!("/{t}/keys/{key}")),
        ("DELETE", format!("/{t}/config")),
    ] {
        let status = http_status(port, method, &path, from.name, &from.rest_pass);
        assert!(
            status == 401 || status == 403,
            "{} got {status} for {method} {path}",
            from.name
        );
    }
    // Stock restic with from's credentials on to's path.
    let out = Command::new("restic")
        .args(["-r", &to.repo_as(port, from.name, &from.rest_pass)])
        .arg("--password-file")
        .arg(to.password_file())
        .args(["--no-cache", "snapshots"])
        .env_remove("RESTIC_PASSWORD")
        .env_remove("RESTIC_REPOSITORY")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    // chanvault with from's config pointed at to's repository: unreachable (12).
    let cfg = from.probe("repo-probe", &from.operator, &from.prefix(), to.name);
    exits(&cfg, &["restore", "list", "--target", "offsite"], 12);
    assert_eq!(
        files(&root.join(to.name)),
        before,
        "{t}'s repository changed"
    );
}

/// Every file under `dir` (relative path, contents), sorted.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// One HTTP/1.1 request with basic auth and an empty body; the status code.
fn http_status(port: u16, method: &str, path: &str, user: &str, pass: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {auth}\r\n\
         Accept: application/vnd.x.restic.rest.v2\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = vec![];
    let _ = s.read_to_end(&mut reply);
    let head = String::from_utf8_lossy(&reply);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"))
}

/// The node's snapshots, read with its own credentials, carry its host name
/// and tag, and hold its channel count.
fn snapshots_carry_the_node_name(port: u16, n: &Node, channels: usize) {
    let repo = n.repo_as(port, n.name, &n.rest_pass);
    let json = restic(&repo, &n.password_file(), &["snapshots", "--json"], &[]);
    let snaps: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(snaps.len(), 1, "{json}");
    let s = &snaps[0];
    assert_eq!(s["hostname"], n.name, "{json}");
    let tags: Vec<&str> = s["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(tags.contains(&n.name), "{tags:?}");
    assert!(
        tags.contains(&format!("channels:{channels}").as_str()),
        "{tags:?}"
    );
    let filtered = restic(
        &repo,
        &n.password_file(),
        &["snapshots", "--json", "--host", n.name],
        &[],
    );
    assert_eq!(filtered, json);
}

/// The documented fleet operator (`PREFIX` -> `chanvault/+`) lists every
/// node's items, and still cannot delete an audit anchor.
fn one_operator_may_see_every_node(bao: &Bao, a: &Node, b: &Node) {
    bao.write_shipped_policy(
        "chanvault-operator-all",
        "chanvault-operator",
        "chanvault/+",
    );
    let all = bao.token_with_policy("chanvault-operator-all");
    for n in [a, b] {
        let cfg = n.probe("fleet", &all, &n.prefix(), n.name);
        let out = bao::cli_ok(&cfg, &["keys", "list"]);
        assert!(out.contains("age-identity"), "{out}");
        let anchor = format!("{MOUNT}/{}/_audit/anchor", n.prefix());
        for args in [
            vec!["kv", "destroy", "-versions=1", &anchor],
            vec!["kv", "delete", &anchor],
            vec!["kv", "metadata", "put", "-max-versions=1", &anchor],
        ] {
            let out = bao.bao_as(&all, &args);
            assert!(!out.status.success(), "fleet operator ran {args:?}");
        }
    }
}
