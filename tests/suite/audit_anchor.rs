//! The escrow audit log's anchor in OpenBao, against a real `bao server -dev`
//! on 127.0.0.1 (stopped when each test's `Bao` drops): what the local hash
//! chain alone let through (a truncation with the head file recomputed, a
//! whole chain rewritten consistently) fails `audit verify` with exit 30; an
//! anchor that cannot be checked is exit 31, never a pass; and the shipped
//! policies let no token delete or destroy a checkpoint.

use std::path::{Path, PathBuf};
use std::process::Output;

use sha2::{Digest, Sha256};

use crate::common::bao::Bao;
use crate::common::vectors::{ABANDON, LEGAL, LETTER};
use crate::common::{bin, text};
use chanvault::escrow::audit::{Entry, Record};

const TAMPERED: i32 = 30;
const UNANCHORED: i32 = 31;
const ANCHOR: &str = "secret/chanvault/_audit/anchor";
const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

struct Env {
    bao: Bao,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    fn new() -> Self {
        let bao = Bao::start();
        let dir = tempfile::tempdir().unwrap();
        let token = bao.token_file("root.token", &bao.root_token);
        let config = dir.path().join("chanvault.toml");
        std::fs::write(&config, config_text(&bao, &token)).unwrap();
        Env { bao, dir, config }
    }

    fn run(&self, args: &[&str]) -> Output {
        run_with(&self.config, args)
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        out
    }

    fn put_seeds(&self) {
        for (name, words) in [("s1", ABANDON), ("s2", LEGAL), ("s3", LETTER)] {
            let f = self.dir.path().join(name);
            std::fs::write(&f, words).unwrap();
            self.ok(&["keys", "put", "bip39", name, "--file", f.to_str().unwrap()]);
        }
        self.ok(&["keys", "list"]);
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.state().join("escrow-audit.jsonl"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// What an attacker with the daemon's uid does: write the log and a head
    /// file that agrees with it, so the local check passes.
    fn forge(&self, lines: &[String]) {
        let state = self.state();
        std::fs::write(state.join("escrow-audit.jsonl"), lines.join("\n") + "\n").unwrap();
        let last = lines.last().unwrap();
        let head = serde_json::json!({
            "lines": lines.len(),
            "last_hash": hex::encode(Sha256::digest(last.as_bytes())),
        });
        std::fs::write(state.join("escrow-audit.head"), head.to_string()).unwrap();
        self.ok(&["audit", "verify", "--local-only"]);
    }

    /// The anchor's version `v` (`None`: latest), as root.
    fn anchor(&self, v: Option<u64>) -> serde_json::Value {
        let mut args = vec!["kv", "get", "-format=json"];
        let version = v.map(|v| format!("-version={v}"));
        args.extend(version.as_deref());
        args.push(ANCHOR);
        serde_json::from_str(&self.bao.bao_ok(&args)).unwrap()
    }
}

fn config_text(bao: &Bao, token: &Path) -> String {
    format!(
        r#"state_dir = "state"
[lnd]
address = "127.0.0.1:10009"
tls_cert = "tls.cert"
macaroon = "m.macaroon"
[seal]
recipients = ["{RECIPIENT}"]
[escrow]
address = "{}"
token_file = "{}"
"#,
        bao.addr(),
        token.display()
    )
}

fn run_with(config: &Path, args: &[&str]) -> Output {
    bin()
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn entry(line: &str) -> Entry {
    serde_json::from_str(line).unwrap()
}

/// A record's line as chanvault writes it: its JSON, then the hash of that.
fn render(r: &Record) -> String {
    let json = serde_json::to_string(r).unwrap();
    let body = json.strip_suffix('}').unwrap();
    format!(
        "{body},\"hash\":\"{}\"}}",
        hex::encode(Sha256::digest(body.as_bytes()))
    )
}

#[test]
fn an_untouched_log_passes_and_each_record_is_anchored_at_its_own_version() {
    let env = Env::new();
    env.put_seeds();
    let out = env.ok(&["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("4 record(s), hash chain intact; records 1-4 anchored in OpenBao at secret/data/chanvault/_audit/anchor"),
        "{}",
        text(&out)
    );
    assert!(stderr(&out).is_empty(), "{}", text(&out));

    // Version N holds record N's hash, and nothing secret.
    let lines = env.lines();
    for v in [2, 4] {
        let data = &env.anchor(Some(v))["data"]["data"];
        assert_eq!(data["seq"], v.to_string());
        assert_eq!(data["hash"], entry(&lines[v as usize - 1]).hash.as_str());
        let fields: Vec<&String> = data.as_object().unwrap().keys().collect();
        assert_eq!(fields, ["hash", "seq", "time"]);
    }
    // The anchor is a folder under the prefix: not an item of `keys list`.
    let list = String::from_utf8_lossy(&env.ok(&["keys", "list"]).stdout).into_owned();
    assert!(!list.contains("_audit"), "{list}");
}

#[test]
fn a_truncated_log_with_its_head_recomputed_fails() {
    let env = Env::new();
    env.put_seeds();
    let lines = env.lines();
    env.forge(&lines[..lines.len() - 1]);

    let out = env.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(TAMPERED), "{}", text(&out));
    let e = stderr(&out);
    assert!(
        e.contains("the local log has 3 record(s), but its anchor in OpenBao says 4 were written: records were removed"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");

    // The next operation does not anchor on top of the truncated log either.
    let out = env.ok(&["keys", "list"]);
    assert!(stderr(&out).contains("is not anchored"), "{}", text(&out));
    assert_eq!(env.anchor(None)["data"]["metadata"]["version"], 4);
}

#[test]
fn a_consistently_rewritten_chain_fails() {
    let env = Env::new();
    env.put_seeds();
    // Change who did the first operation, then rehash every record after it.
    let mut prev = "0".repeat(64);
    let mut forged = Vec::new();
    for line in env.lines() {
        let mut r = entry(&line).record;
        if r.seq == 1 {
            r.user = "someone-else (uid 4242)".into();
        }
        r.prev = prev;
        let line = render(&r);
        prev = hex::encode(Sha256::digest(line.as_bytes()));
        forged.push(line);
    }
    env.forge(&forged);

    let out = env.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(TAMPERED), "{}", text(&out));
    assert!(
        stderr(&out).contains("record 4 does not match its anchor in OpenBao"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_anchor_rolled_back_by_a_token_holder_fails() {
    let env = Env::new();
    env.put_seeds();
    let lines = env.lines();
    // The token can write new versions: it writes record 3's checkpoint as
    // version 5, then truncates the log to 3 records.
    let e3 = entry(&lines[2]);
    env.bao.bao_ok(&[
        "kv",
        "put",
        "-cas=4",
        ANCHOR,
        "seq=3",
        &format!("hash={}", e3.hash),
        &format!("time={}", e3.record.time),
    ]);
    env.forge(&lines[..3]);
    let out = env.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(TAMPERED), "{}", text(&out));
    assert!(stderr(&out).contains("5 were written"), "{}", text(&out));
}

#[test]
fn an_anchor_that_cannot_be_checked_is_exit_31_never_a_pass() {
    let mut env = Env::new();
    env.put_seeds();

    // A failed operation (a refused token) is recorded but not anchored: a warning, exit 0.
    let bad = env.bao.token_file("bad.token", "s.not-a-real-token");
    let good = std::fs::read_to_string(&env.config).unwrap();
    let root_file = env.bao.dir.path().join("root.token");
    let bad_cfg = env.dir.path().join("bad.toml");
    let bad_text = good.replace(&root_file.display().to_string(), &bad.display().to_string());
    std::fs::write(&bad_cfg, bad_text).unwrap();
    let out = run_with(&bad_cfg, &["keys", "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", text(&out));
    let out = env.ok(&["audit", "verify"]);
    assert!(
        stderr(&out).contains("warning: the last 1 record(s) (5-5) are not anchored yet"),
        "{}",
        text(&out)
    );
    // The refused token cannot check the anchor either.
    let out = run_with(&bad_cfg, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(UNANCHORED), "{}", text(&out));
    assert!(stderr(&out).contains("permission denied"), "{}", text(&out));

    // No anchor at all (an upgrade; or an administrator removed it): said, not passed.
    env.bao.bao_ok(&["kv", "metadata", "delete", ANCHOR]);
    let out = env.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(UNANCHORED), "{}", text(&out));
    assert!(
        stderr(&out).contains("there is no anchor at secret/data/chanvault/_audit/anchor"),
        "{}",
        text(&out)
    );
    // The next operation anchors the whole log again.
    env.ok(&["keys", "list"]);
    let out = env.ok(&["audit", "verify"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("records 1-6 anchored"),
        "{}",
        text(&out)
    );

    // OpenBao down: exit 31, and it says so; --local-only still checks the chain.
    env.bao.kill();
    let out = env.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(UNANCHORED), "{}", text(&out));
    let e = stderr(&out);
    assert!(
        e.contains("6 record(s), hash chain intact, but the audit log's anchor in OpenBao could not be checked: OpenBao at")
            && e.contains("is unreachable"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    let out = env.ok(&["audit", "verify", "--local-only"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("local chain only"),
        "{}",
        text(&out)
    );

    // No [escrow] section: not anchored, and it says how to check the chain alone.
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    let no_escrow = env.dir.path().join("no-escrow.toml");
    std::fs::write(&no_escrow, &cfg[..cfg.find("[escrow]").unwrap()]).unwrap();
    let out = run_with(&no_escrow, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(UNANCHORED), "{}", text(&out));
    assert!(
        stderr(&out).contains("has no [escrow] section") && stderr(&out).contains("--local-only"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_shipped_policies_never_let_a_token_delete_or_destroy_a_checkpoint() {
    let env = Env::new();
    for p in ["chanvault-operator", "chanvault-daemon"] {
        env.bao.write_shipped_policy(p, p, "chanvault");
    }
    let operator = env.bao.token_with_policy("chanvault-operator");
    let daemon = env.bao.token_with_policy("chanvault-daemon");
    let f = env.dir.path().join("identity.txt");
    let recipient = chanvault::seal::write_new_identity(&f).unwrap();
    let config = |name: &str, token: &str| {
        let file = env.bao.token_file(&format!("{name}.token"), token);
        let cfg = env.dir.path().join(format!("{name}.toml"));
        let text = config_text(&env.bao, &file).replace(RECIPIENT, &recipient);
        std::fs::write(&cfg, text).unwrap();
        cfg
    };
    let op_cfg = config("operator", &operator);
    let out = run_with(
        &op_cfg,
        &[
            "keys",
            "put",
            "age-identity",
            "age-identity",
            "--file",
            f.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stderr(&out).is_empty(), "{}", text(&out));

    // The operator can read the anchor through the same CLI, so the refusals
    // below are the policy's, not the CLI's mount lookup failing.
    let out = env.bao.bao_as(&operator, &["kv", "get", ANCHOR]);
    assert!(out.status.success(), "{}", text(&out));

    // The daemon's token moves the anchor forward too (keys get: record 2).
    let d_cfg = config("daemon", &daemon);
    let out = run_with(&d_cfg, &["keys", "get", "age-identity"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stderr(&out).is_empty(), "{}", text(&out));
    let out = run_with(&d_cfg, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("records 1-2 anchored"),
        "{}",
        text(&out)
    );

    for token in [&operator, &daemon] {
        for args in [
            vec!["kv", "delete", ANCHOR],
            vec!["kv", "delete", "-versions=1", ANCHOR],
            vec!["kv", "destroy", "-versions=1", ANCHOR],
            vec!["kv", "undelete", "-versions=1", ANCHOR],
            vec!["kv", "metadata", "delete", ANCHOR],
            vec!["kv", "metadata", "put", "-max-versions=1", ANCHOR],
            vec!["kv", "metadata", "put", "-delete-version-after=1s", ANCHOR],
        ] {
            let out = env.bao.bao_as(token, &args);
            assert!(!out.status.success(), "a policy token could run {args:?}");
            assert!(
                stderr(&out).contains("permission denied"),
                "{args:?}: {}",
                text(&out)
            );
        }
    }
    // Every checkpoint is still there.
    let meta = env
        .bao
        .bao_ok(&["kv", "metadata", "get", "-format=json", ANCHOR]);
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["data"]["current_version"], 2);
    let versions = meta["data"]["versions"].as_object().unwrap();
    assert!(
        versions
            .values()
            .all(|v| v["deletion_time"] == "" && v["destroyed"] == false),
        "{meta}"
    );
}
