//! `chanvault verify` end to end: the LND simulator, a dir target, a local
//! restic repository, a restic REST server (`rclone serve restic` on
//! 127.0.0.1), the real OpenBao (`bao server -dev`) holding the escrow with
//! envelope sealing, the stock age identity format. A healthy setup passes
//! (with `--drill` and a Prometheus textfile); each seeded fault fails with
//! its own reason and exit code.

use crate::common::bao;
use crate::common::text;
use crate::common::{bin, run};
use bao::{multisig, origin_key};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::Fixture;
use chanvault::config::TargetConfig;
use chanvault::escrow::material::{Kind, Material, Network, ParseOptions};
use chanvault::secret::SecretString;
use chanvault::sink::restic::ResticTarget;

const ABANDON: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon \
                       abandon abandon about";
const LEGAL: &str = "legal winner thank year wave sausage worth useful legal winner thank yellow";
const LETTER: &str =
    "letter advice cage absurd amount doctor acoustic avoid letter advice cage above";
const ZOO: &str = "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong";

fn parse(text: &str) -> Material {
    Material::parse(
        Kind::Bip39,
        &SecretString::new(text.to_owned()),
        &ParseOptions::new(Network::Bitcoin),
    )
    .unwrap()
}

/// `rclone serve restic` on 127.0.0.1, killed on drop.
struct Rclone {
    child: Option<Child>,
}

impl Rclone {
    fn start(root: &Path, port: u16) -> Self {
        let log = std::fs::File::create(root.with_extension("rclone.log")).unwrap();
        let child = Command::new("rclone")
            .args(["serve", "restic", "--addr", &format!("127.0.0.1:{port}")])
            .arg(root)
            .env("RCLONE_CONFIG", root.with_extension("conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("rclone starts (Debian package rclone)");
        let r = Self { child: Some(child) };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "rclone did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }
}

impl Drop for Rclone {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Setup {
    f: Fixture,
    bao: bao::Bao,
    _rclone: Rclone,
    offline: PathBuf,
}

impl Setup {
    async fn run(&self, argv: &[&str]) -> Output {
        let mut args: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        args.push("--config".into());
        args.push(self.f.config.display().to_string());
        tokio::task::spawn_blocking(move || bin().args(&args).output().expect("binary runs"))
            .await
            .expect("join")
    }

    async fn ok(&self, argv: &[&str]) -> String {
        let o = self.run(argv).await;
        assert_eq!(o.status.code(), Some(0), "{argv:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `verify --identity OFFLINE`: its exit code, and the failed rows.
    async fn verify(&self) -> (i32, Vec<serde_json::Value>, Output) {
        let off = self.offline.display().to_string();
        let o = self.run(&["verify", "--identity", &off, "--json"]).await;
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
        let failed = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ok"] == false)
            .cloned()
            .collect();
        (o.status.code().unwrap(), failed, o)
    }

    fn kv_get(&self, name: &str) -> serde_json::Value {
        let out = self.bao.bao_ok(&[
            "kv",
            "get",
            "-format=json",
            "-mount=secret",
            &format!("chanvault/{name}"),
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["data"]["data"].clone()
    }

    fn kv_put(&self, name: &str, data: &serde_json::Value) {
        let mut c = Command::new(bao::bao_binary());
        let mut child = c
            .args([
                "kv",
                "put",
                "-mount=secret",
                &format!("chanvault/{name}"),
                "-",
            ])
            .env("BAO_ADDR", self.bao.addr())
            .env("BAO_TOKEN", &self.bao.root_token)
            .env("HOME", self.bao.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(data.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn setup() -> Setup {
    let f = Fixture::new().await;
    let bao = tokio::task::spawn_blocking(bao::Bao::start).await.unwrap();
    let (offline_text, offline_pub) = chanvault::seal::generate_identity();
    let offline = f.path().join("offline.txt");
    chanvault::fsutil::create_secret_file(&offline, offline_text.expose().as_bytes()).unwrap();
    std::fs::write(f.path().join("restic-password"), "pw-verify-1\n").unwrap();
    let rest_root = f.path().join("rest-root");
    std::fs::create_dir(&rest_root).unwrap();
    let port = free_port();
    let rclone = Rclone::start(&rest_root, port);
    let token = bao.token_file("root.token", &bao.root_token);
    f.write_config(&format!(
        r#"[[target]]
name = "repo"
kind = "restic"
repository = "targets/restic"
password_file = "restic-password"
[[target]]
name = "rest"
kind = "restic"
repository = "rest:http://127.0.0.1:{port}/"
password_file = "restic-password"
[escrow]
address = "{addr}"
token_file = "{token}"
seal_recipients = ["{offline_pub}"]
required = ["backup-identity", "wallet", "cosigner"]
[verify]
max_age_hours = 24
"#,
        addr = bao.addr(),
        token = token.display()
    ));
    // The offline key also opens the backups (a second recipient).
    f.edit_config(
        &format!("recipients = [\"{}\"]", f.recipient),
        &format!("recipients = [\"{}\", \"{offline_pub}\"]", f.recipient),
    );
    let cfg = f.load();
    for t in &cfg.targets {
        if let TargetConfig::Restic(r) = t {
            chanvault::sink::unblock(&ResticTarget::new(r), ResticTarget::init_blocking)
                .await
                .unwrap();
        }
    }
    let s = Setup {
        f,
        bao,
        _rclone: rclone,
        offline,
    };
    let id = s.f.identity.display().to_string();
    s.ok(&[
        "keys",
        "put",
        "age-identity",
        "backup-identity",
        "--file",
        &id,
    ])
    .await;
    let (a, b, c) = (parse(ABANDON), parse(LEGAL), parse(LETTER));
    let desc = s.f.path().join("wallet.txt");
    std::fs::write(
        &desc,
        multisig(&[origin_key(&a), origin_key(&b), origin_key(&c)]),
    )
    .unwrap();
    let xpub = s.f.path().join("cosigner.txt");
    std::fs::write(&xpub, origin_key(&b)).unwrap();
    s.ok(&[
        "keys",
        "put",
        "descriptor",
        "wallet",
        "--file",
        desc.to_str().unwrap(),
    ])
    .await;
    s.ok(&[
        "keys",
        "put",
        "xpub",
        "cosigner",
        "--file",
        xpub.to_str().unwrap(),
    ])
    .await;
    s
}

fn failed_checks(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter()
        .map(|c| {
            format!(
                "{}/{}",
                c["target"].as_str().unwrap(),
                c["check"].as_str().unwrap()
            )
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_when_healthy_and_names_each_seeded_fault() {
    let s = setup().await;
    s.f.sim.open_channels(2);
    s.ok(&["backup", "--once"]).await;
    let pbs = s.f.target_dir("pbs");
    let pbs_first = s.f.path().join("pbs-first");
    copy_dir(&pbs, &pbs_first);
    s.f.sim.open_channels(1);
    s.ok(&["backup", "--once"]).await;

    // Healthy: every check passes, with the drill and the textfile.
    let tf = s.f.path().join("chanvault_verify.prom");
    let off = s.offline.display().to_string();
    let o = s
        .run(&[
            "verify",
            "--identity",
            &off,
            "--drill",
            "--textfile",
            tf.to_str().unwrap(),
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "✓ pbs",
        "✓ repo",
        "✓ rest",
        "drill",
        "covers-lnd",
        "decrypt-escrowed",
        "audit-chain",
        "recovery works today",
    ] {
        assert!(table.contains(needle), "{needle}: {table}");
    }
    assert!(!table.contains('✗'), "{table}");
    let prom = std::fs::read_to_string(&tf).unwrap();
    assert!(prom.contains("chanvault_verify_success 1\n"), "{prom}");
    assert!(
        prom.contains("chanvault_verify_last_run_timestamp_seconds "),
        "{prom}"
    );
    assert!(
        prom.contains("chanvault_verify_check{check=\"covers-lnd\",target=\"rest\"} 1"),
        "{prom}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&tf).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // The result is left in state_dir for watch's metrics.
    let last: chanvault::state_dir::VerifyResult = serde_json::from_slice(
        &std::fs::read(
            s.f.path()
                .join("state")
                .join(chanvault::state_dir::VERIFY_RESULT_FILE),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(last.success && last.failed_checks == 0, "{last:?}");
    let (code, failed, o) = s.verify().await;
    assert_eq!((code, failed.len()), (0, 0), "{}", text(&o));

    // 1. A broken audit chain: exit 20.
    let audit = s.f.path().join("state/escrow-audit.jsonl");
    let saved = std::fs::read(&audit).unwrap();
    let head = s.f.path().join("state/escrow-audit.head");
    let saved_head = std::fs::read(&head).unwrap();
    let log = String::from_utf8(saved.clone()).unwrap();
    let mut lines: Vec<String> = log.lines().map(str::to_owned).collect();
    lines[1] = lines[1].replacen("\"ok\"", "\"denied\"", 1);
    std::fs::write(&audit, lines.join("\n") + "\n").unwrap();
    let (code, failed, o) = s.verify().await;
    assert_eq!(code, 20, "{}", text(&o));
    assert_eq!(
        failed_checks(&failed),
        ["escrow/audit-chain"],
        "{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("audit-chain"),
        "{}",
        text(&o)
    );
    std::fs::write(&audit, &saved).unwrap();
    std::fs::write(&head, &saved_head).unwrap();

    // 2. Tampered ciphertext on one target: exit 22.
    let cur = pbs.join("channel.backup.age");
    let good = std::fs::read(&cur).unwrap();
    let mut bad = good.clone();
    let n = bad.len() - 10;
    bad[n] ^= 0x40;
    std::fs::write(&cur, &bad).unwrap();
    let (code, failed, o) = s.verify().await;
    assert_eq!(code, 22, "{}", text(&o));
    assert_eq!(failed_checks(&failed), ["pbs/integrity"], "{}", text(&o));
    std::fs::write(&cur, &good).unwrap();

    // 3. A target missing its newest backup: exit 21.
    let pbs_new = s.f.path().join("pbs-new");
    std::fs::rename(&pbs, &pbs_new).unwrap();
    copy_dir(&pbs_first, &pbs);
    let (code, failed, o) = s.verify().await;
    assert_eq!(code, 21, "{}", text(&o));
    let names = failed_checks(&failed);
    assert!(
        names.contains(&"pbs/newest-present".to_owned()),
        "{}",
        text(&o)
    );
    assert!(names.iter().all(|n| n.starts_with("pbs/")), "{}", text(&o));
    std::fs::remove_dir_all(&pbs).unwrap();
    std::fs::rename(&pbs_new, &pbs).unwrap();

    // 4. A descriptor that does not contain the escrowed xpub: exit 26.
    let orig = s.kv_get("wallet");
    let (a, b, c, z) = (parse(ABANDON), parse(LEGAL), parse(LETTER), parse(ZOO));
    let old_desc = multisig(&[origin_key(&a), origin_key(&b), origin_key(&c)]);
    let new_desc = multisig(&[origin_key(&a), origin_key(&z), origin_key(&c)]);
    let raw = orig.to_string();
    let old_json = serde_json::to_string(&old_desc).unwrap();
    let old_inner = &old_json[1..old_json.len() - 1];
    assert!(
        raw.contains(old_inner),
        "descriptor not stored verbatim: {raw}"
    );
    let new_json = serde_json::to_string(&new_desc).unwrap();
    // The descriptor and its recorded facts, consistently: b's key becomes z's.
    let (pb, pz) = (b.public(), z.public());
    let forged = raw
        .replace(old_inner, &new_json[1..new_json.len() - 1])
        .replace(pb.xpub.as_deref().unwrap(), pz.xpub.as_deref().unwrap())
        .replace(
            pb.master_fingerprint.as_deref().unwrap(),
            pz.master_fingerprint.as_deref().unwrap(),
        );
    let forged: serde_json::Value = serde_json::from_str(&forged).unwrap();
    s.kv_put("wallet", &forged);
    let (code, failed, o) = s.verify().await;
    assert_eq!(code, 26, "{}", text(&o));
    assert!(
        failed.iter().all(|c| c["target"] == "escrow"),
        "{}",
        text(&o)
    );
    assert!(
        failed
            .iter()
            .any(|c| c["detail"].as_str().unwrap().contains("cosigner")),
        "{}",
        text(&o)
    );
    s.kv_put("wallet", &orig);

    // 5. Stale: a channel opened since the last backup (watch stopped): exit 25.
    let new_cp = s.f.sim.open_channel();
    let (code, failed, o) = s.verify().await;
    assert_eq!(code, 25, "{}", text(&o));
    assert_eq!(
        failed_checks(&failed),
        ["pbs/covers-lnd", "repo/covers-lnd", "rest/covers-lnd"],
        "{}",
        text(&o)
    );
    assert!(
        failed[0]["detail"]
            .as_str()
            .unwrap()
            .contains(&new_cp.to_string()),
        "{}",
        text(&o)
    );
    s.ok(&["backup", "--once"]).await;
    let (code, failed, o) = s.verify().await;
    assert_eq!((code, failed.len()), (0, 0), "{}", text(&o));

    // restore with the escrowed identity (envelope opened by the offline key), over REST.
    let out = s.f.path().join("from-escrow.backup");
    let o = s
        .run(&[
            "restore",
            "fetch",
            "--target",
            "rest",
            "--identity-from-escrow",
            "backup-identity",
            "--envelope-identity",
            &off,
            "--out",
            out.to_str().unwrap(),
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        s.f.sim.decode_multi(&std::fs::read(&out).unwrap()).unwrap(),
        s.f.sim.channels()
    );

    // 6. The wrong identity escrowed: exit 23 (decrypt), the escrow cross-check fails too.
    let other = s.f.path().join("other.txt");
    let other_pub = chanvault::seal::write_new_identity(&other).unwrap();
    let cfg_text = std::fs::read_to_string(&s.f.config).unwrap();
    s.f.edit_config(
        "recipients = [\"",
        &format!("recipients = [\"{other_pub}\", \""),
    );
    s.ok(&[
        "keys",
        "put",
        "age-identity",
        "backup-identity",
        "--replace",
        "--file",
        other.to_str().unwrap(),
    ])
    .await;
    std::fs::write(&s.f.config, cfg_text).unwrap();
    let (code, failed, o) = s.verify().await;
    assert_eq!(code, 23, "{}", text(&o));
    let names = failed_checks(&failed);
    for t in ["pbs", "repo", "rest"] {
        assert!(
            names.contains(&format!("{t}/decrypt-escrowed")),
            "{}",
            text(&o)
        );
    }
    let o = s.run(&["verify", "--identity", &off]).await;
    assert_eq!(o.status.code(), Some(23), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("✗ pbs"),
        "{}",
        text(&o)
    );

    // 7. OpenBao sealed while the offline identity opens every backup: the
    // escrow is the root cause (exit 26); no decrypt row fails because of it.
    s.bao.bao_ok(&["operator", "seal"]);
    let (code, failed, o) = s.verify().await;
    assert_eq!(code, 26, "{}", text(&o));
    assert!(
        failed.iter().all(|c| c["target"] == "escrow"),
        "{}",
        text(&o)
    );
    assert!(
        failed
            .iter()
            .any(|c| c["detail"].as_str().unwrap().contains("sealed")),
        "{}",
        text(&o)
    );
}

/// A machine whose state dir is gone has lost its journal (and audit log):
/// `verify` says so with its own row and code unless `--no-spool` says this
/// is a fresh recovery machine; read-only commands never create the dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_state_dir_fails_the_drill_unless_this_is_a_fresh_machine() {
    let f = Fixture::new().await;
    let cfg = f.config.display().to_string();
    let id = f.identity.display().to_string();
    let argv = |a: &[&str]| -> Vec<String> {
        a.iter()
            .map(|s| s.to_string())
            .chain(["--config".to_string(), cfg.clone()])
            .collect()
    };
    f.sim.open_channels(2);
    let o = run(argv(&["backup", "--once"])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let state = f.path().join("state");
    std::fs::remove_dir_all(&state).unwrap();

    let o = run(argv(&["verify", "--identity", &id, "--json"])).await;
    assert_eq!(o.status.code(), Some(28), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let failed: Vec<&serde_json::Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{}", text(&o));
    assert_eq!(failed[0]["check"], "spool", "{}", text(&o));
    assert!(
        failed[0]["detail"].as_str().unwrap().contains("--no-spool"),
        "{}",
        text(&o)
    );
    assert!(!state.exists(), "verify created the state dir");

    let o = run(argv(&["verify", "--identity", &id, "--no-spool"])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let o = run(argv(&["status"])).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not exist"),
        "{}",
        text(&o)
    );
    let o = run(argv(&["audit", "verify"])).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no audit log at"),
        "{}",
        text(&o)
    );
    assert!(!state.exists(), "a read-only command created the state dir");
}
