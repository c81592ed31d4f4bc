//! Key escrow against a real OpenBao dev server (see tests/common/bao.rs):
//! the `chanvault keys` and `audit` commands end to end, plus the KV client's
//! check-and-set and error classification. No mock of OpenBao anywhere; the
//! only fake is a one-shot TCP responder that sends a malformed reply.

use crate::common::bao;
use crate::common::bin;
use bao::{multisig, origin_key};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::vectors::{ABANDON, LEGAL, LETTER, LND_WALLET_AEZEED};
use bao::Bao;
use chanvault::escrow::material::{Kind, Material, Network, ParseOptions};
use chanvault::secret::SecretString;

struct Env {
    bao: Bao,
    dir: tempfile::TempDir,
    config: PathBuf,
    identity: PathBuf,
    recipient: String,
}

impl Env {
    fn new() -> Self {
        Self::with(|_| String::new())
    }

    /// `extra(env_dir)` is appended to the [escrow] section.
    fn with(extra: impl FnOnce(&Path) -> String) -> Self {
        let bao = Bao::start();
        let dir = tempfile::tempdir().unwrap();
        let identity = dir.path().join("identity.txt");
        let recipient = chanvault::seal::write_new_identity(&identity).unwrap();
        let token = bao.token_file("root.token", &bao.root_token);
        let config = dir.path().join("chanvault.toml");
        let extra = extra(dir.path());
        let extra = if extra.contains("token_file") || extra.contains("approle_") {
            extra
        } else {
            format!("token_file = \"{}\"\n{extra}", token.display())
        };
        std::fs::write(
            &config,
            format!(
                r#"state_dir = "state"
[lnd]
address = "127.0.0.1:10009"
tls_cert = "tls.cert"
macaroon = "m.macaroon"
[seal]
recipients = ["{recipient}"]
[escrow]
address = "{addr}"
{extra}"#,
                addr = bao.addr()
            ),
        )
        .unwrap();
        Env {
            bao,
            dir,
            config,
            identity,
            recipient,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) -> Output {
        bin()
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Exactly one error line on stderr, exit 1.
    fn err(&self, args: &[&str]) -> String {
        self.err_code(args, 1)
    }

    /// Exactly one error line on stderr, exit `code`.
    fn err_code(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: expected one line:\n{stderr}");
        lines[0].to_owned()
    }

    /// A file of test input (mode 0600: some are identities or secrets).
    fn file(&self, name: &str, text: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p.display().to_string()
    }

    fn audit_file(&self) -> PathBuf {
        self.path().join("state/escrow-audit.jsonl")
    }

    /// The raw KV data of an item, as root, via the bao CLI.
    fn raw(&self, name: &str) -> serde_json::Value {
        let out = self.bao.bao_ok(&[
            "kv",
            "get",
            "-format=json",
            &format!("secret/chanvault/{name}"),
        ]);
        serde_json::from_str(&out).unwrap()
    }
}

fn mainnet() -> ParseOptions {
    ParseOptions::new(Network::Bitcoin)
}

fn parse(kind: Kind, text: &str) -> Material {
    Material::parse(kind, &SecretString::new(text.to_owned()), &mainnet()).unwrap()
}

fn account_xprv() -> String {
    // The LEGAL seed's account key at m/48'/0'/0'/2', with its origin.
    use bitcoin::bip32::{DerivationPath, Xpriv};
    let seed = bip39::Mnemonic::parse(LEGAL).unwrap().to_seed("");
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let master = Xpriv::new_master(bitcoin::NetworkKind::Main, &seed).unwrap();
    let path: DerivationPath = "m/48'/0'/0'/2'".parse().unwrap();
    let acct = master.derive_priv(&secp, &path).unwrap();
    format!("[{}/48h/0h/0h/2h]{acct}", master.fingerprint(&secp))
}

#[test]
fn every_kind_round_trips_as_json_strings_with_cas_and_history() {
    let env = Env::new();
    let age_text = std::fs::read_to_string(&env.identity).unwrap();
    let age_pub = env.recipient.clone();
    let a = parse(Kind::Bip39, ABANDON);
    let b = parse(Kind::Bip39, LEGAL);
    let c = parse(Kind::Bip39, LETTER);
    let desc = multisig(&[origin_key(&a), origin_key(&b), origin_key(&c)]);
    let xprv = account_xprv();
    let items: Vec<(&str, &str, String)> = vec![
        ("bip39", "seed-a", ABANDON.to_owned()),
        ("aezeed", "lnd-seed", LND_WALLET_AEZEED.to_owned()),
        ("xprv", "cosigner-xprv", xprv.clone()),
        ("xpub", "cosigner-b", origin_key(&b)),
        ("descriptor", "wallet", desc.clone()),
        ("age-identity", "backup-id", age_text.clone()),
    ];
    for (kind, name, text) in &items {
        let f = env.file(&format!("{name}.in"), &format!("{text}\n"));
        let out = env.ok(&["keys", "put", kind, name, "--file", &f]);
        assert!(
            out.contains(&format!("escrowed {name} as {kind} version 1")),
            "{out}"
        );
        // Stored as JSON strings only; public facts in custom_metadata.
        let raw = env.raw(name);
        for (k, v) in raw["data"]["data"].as_object().unwrap() {
            assert!(v.is_string(), "{name}.{k} is not a JSON string: {v}");
        }
        assert_eq!(raw["data"]["metadata"]["custom_metadata"]["kind"], *kind);
        // Reveal to a new 0600 file gives back the canonical text.
        let out_file = env.path().join(format!("{name}.out"));
        env.ok(&[
            "keys",
            "get",
            name,
            "--reveal",
            "--out",
            out_file.to_str().unwrap(),
        ]);
        let got = std::fs::read_to_string(&out_file).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        match *kind {
            "bip39" | "aezeed" | "descriptor" => assert_eq!(got.trim(), text.trim()),
            "xpub" => assert!(text.ends_with(got.trim()), "{got}"),
            "xprv" => assert!(got.trim().ends_with(xprv.split(']').nth(1).unwrap())),
            _ => assert!(got.contains(age_text.lines().last().unwrap())),
        }
        // Without --reveal: facts only, never the secret.
        let shown = env.ok(&["keys", "get", name]);
        assert!(
            !shown.contains("abandon") && !shown.contains("AGE-SECRET"),
            "{shown}"
        );
        if *kind == "aezeed" {
            for fact in ["birthday: 20", "node_pubkey: 0", "backup_key_fingerprint: "] {
                assert!(shown.contains(fact), "{shown}");
            }
            assert!(!shown.contains("dizzy"), "{shown}");
        }
    }
    // An aezeed with a passphrase it was not made with is refused, without
    // echoing the passphrase.
    let seed_file = env.file("wrong-pass.in", LND_WALLET_AEZEED);
    let pass_file = env.file("wrong-pass.txt", "not-the-passphrase\n");
    let e = env.err(&[
        "keys",
        "put",
        "aezeed",
        "lnd-seed-2",
        "--file",
        &seed_file,
        "--passphrase-file",
        &pass_file,
    ]);
    assert!(e.contains("passphrase does not open this aezeed"), "{e}");
    assert!(!e.contains("not-the-passphrase"), "{e}");
    let list = env.ok(&["keys", "list"]);
    for (_, name, _) in &items {
        assert!(list.contains(name), "{list}");
    }
    assert!(list.contains(&age_pub), "{list}");

    // Create-only: a second put of the same name is refused.
    let f = env.file("legal.in", LEGAL);
    let e = env.err(&["keys", "put", "bip39", "seed-a", "--file", &f]);
    assert!(
        e.contains("seed-a already exists (version 1); pass --replace"),
        "{e}"
    );
    // --replace writes version 2 with cas=1.
    let out = env.ok(&["keys", "put", "bip39", "seed-a", "--file", &f, "--replace"]);
    assert!(out.contains("version 2"), "{out}");
    let h = env.ok(&["keys", "history", "seed-a"]);
    assert!(
        h.contains("current version 2") && h.contains("v1") && h.contains("v2"),
        "{h}"
    );
    assert!(h.contains("rotated from version 1"), "{h}");
    let o1 = env.path().join("v1.out");
    env.ok(&[
        "keys",
        "get",
        "seed-a",
        "--version",
        "1",
        "--reveal",
        "--out",
        o1.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&o1).unwrap().trim(), ABANDON);

    // The whole set cross-checks; export-public has no secrets.
    let out = env.ok(&["keys", "verify"]);
    assert!(out.contains('✓'), "{out}");
    let export = env.path().join("public.json");
    env.ok(&["keys", "export-public", "--out", export.to_str().unwrap()]);
    let text = std::fs::read_to_string(&export).unwrap();
    assert!(text.contains(&desc), "{text}");
    let xprv_key = xprv.split(']').nth(1).unwrap();
    for secret in [
        "abandon",
        "legal winner",
        "ability liquid",
        xprv_key,
        "AGE-SECRET-KEY",
    ] {
        assert!(!text.contains(secret), "{secret} in export");
    }

    // Latest deleted: a clear message naming the readable version and how.
    env.bao
        .bao_ok(&["kv", "delete", "-versions=2", "secret/chanvault/seed-a"]);
    let e = env.err(&["keys", "get", "seed-a"]);
    assert!(e.contains("version 2 was deleted at"), "{e}");
    assert!(
        e.contains("version 1 is the newest readable one: chanvault keys get seed-a --version 1"),
        "{e}"
    );
    env.bao
        .bao_ok(&["kv", "destroy", "-versions=2", "secret/chanvault/seed-a"]);
    let e = env.err(&["keys", "get", "seed-a"]);
    assert!(e.contains("version 2 was destroyed"), "{e}");
    assert!(e.contains("--version 1"), "{e}");
    let h = env.ok(&["keys", "history", "seed-a"]);
    assert!(h.contains("destroyed"), "{h}");

    // Every call left an audit record and the chain holds.
    let v = env.ok(&["audit", "verify"]);
    assert!(v.contains("hash chain intact"), "{v}");
    let show = env.ok(&["audit", "show"]);
    assert!(
        show.contains("put") && show.contains("get-reveal"),
        "{show}"
    );
}

#[test]
fn mismatched_items_are_refused_and_verify_reports_them() {
    let env = Env::with(|_| "required = [\"wallet\", \"cosigner-key\"]\n".into());
    let a = parse(Kind::Bip39, ABANDON);
    let b = parse(Kind::Bip39, LEGAL);
    let c = parse(Kind::Bip39, LETTER);
    let desc = multisig(&[origin_key(&a), origin_key(&b), origin_key(&c)]);
    let f = env.file("d", &desc);
    env.ok(&["keys", "put", "descriptor", "wallet", "--file", &f]);
    // A wrong-network xpub and a bad checksum are refused by material, one line each.
    let tp = env.file("tpub", &origin_key(&b).replace("xpub", "tpub"));
    env.err(&["keys", "put", "xpub", "bad-net", "--file", &tp]);
    let bad = env.file("bad", &format!("{}x", &desc[..desc.len() - 1]));
    let e = env.err(&["keys", "put", "descriptor", "bad-sum", "--file", &bad]);
    assert!(e.contains("checksum"), "{e}");
    // A seed that is not a key of the escrowed descriptor is refused on put.
    let zoo = env.file("zoo", "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong");
    let e = env.err(&["keys", "put", "bip39", "stranger", "--file", &zoo]);
    assert!(
        e.starts_with("chanvault: error: refusing to escrow stranger:"),
        "{e}"
    );
    // verify: the required cosigner-key is missing.
    let out = env.run(&["keys", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("✗ required item 'cosigner-key' is escrowed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("✓ required item 'wallet' is escrowed"),
        "{stdout}"
    );
}

#[test]
fn envelope_sealed_secrets_never_reach_openbao_in_clear() {
    let (offline_text, offline_pub) = chanvault::seal::generate_identity();
    let env = Env::with(|_| format!("seal_recipients = [\"{offline_pub}\"]\n"));
    let offline = env.file("offline.txt", offline_text.expose());
    let f = env.file("seed", ABANDON);
    let out = env.ok(&["keys", "put", "bip39", "seed", "--file", &f]);
    assert!(out.contains("sealed to the offline recipients"), "{out}");
    let raw = env.raw("seed").to_string();
    assert!(!raw.contains("abandon"), "{raw}");
    assert!(raw.contains("BEGIN AGE ENCRYPTED FILE"), "{raw}");
    let e = env.err(&["keys", "get", "seed", "--reveal", "--out", "/dev/null/x"]);
    assert!(e.contains("pass --identity FILE"), "{e}");
    // The wrong identity is refused, the right one opens it.
    let wrong = env.identity.to_str().unwrap().to_owned();
    env.err(&[
        "keys",
        "get",
        "seed",
        "--reveal",
        "--out",
        "/tmp/never",
        "--identity",
        &wrong,
    ]);
    let o = env.path().join("seed.out");
    env.ok(&[
        "keys",
        "get",
        "seed",
        "--reveal",
        "--out",
        o.to_str().unwrap(),
        "--identity",
        &offline,
    ]);
    assert_eq!(std::fs::read_to_string(&o).unwrap().trim(), ABANDON);
    let out = env.run(&["keys", "verify"]);
    assert_eq!(out.status.code(), Some(1), "sealed items need --identity");
    env.ok(&["keys", "verify", "--identity", &offline]);
}

#[test]
fn openbao_errors_are_one_clear_line_and_write_nothing() {
    let env = Env::new();
    let f = env.file("seed", ABANDON);

    // Wrong token.
    let bad = env.bao.token_file("bad.token", "s.not-a-real-token");
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    let good = env.bao.dir.path().join("root.token").display().to_string();
    std::fs::write(&env.config, cfg.replace(&good, &bad.display().to_string())).unwrap();
    let e = env.err(&["keys", "list"]);
    assert_eq!(
        e,
        format!(
            "chanvault: error: OpenBao at {} refused the token from {}: permission denied (auth/token/lookup-self)",
            env.bao.addr(),
            bad.display()
        )
    );
    assert!(!e.contains("s.not-a-real-token"));
    std::fs::write(&env.config, &cfg).unwrap();

    // Sealed: clear error, nothing written (the item does not exist after unseal is impossible
    // in dev mode, so check the audit record says so and no version was recorded).
    env.ok(&["keys", "list"]);
    env.bao.seal();
    let e = env.err(&["keys", "put", "bip39", "seed", "--file", &f]);
    assert!(
        e.starts_with(&format!(
            "chanvault: error: OpenBao at {} is sealed",
            env.bao.addr()
        )),
        "{e}"
    );
    let audit = std::fs::read_to_string(env.audit_file()).unwrap();
    let last = audit.lines().last().unwrap();
    assert!(last.contains("\"outcome\":\"error: sealed\""), "{last}");
    assert!(!last.contains("\"version\""), "{last}");

    // Down.
    let addr = env.bao.addr();
    let mut env = env;
    env.bao.kill();
    let e = env.err(&["keys", "list"]);
    assert!(
        e.starts_with(&format!(
            "chanvault: error: OpenBao at {addr} is unreachable"
        )),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1);
    env.ok(&["audit", "verify", "--local-only"]);
}

#[test]
fn malformed_replies_are_reported_clearly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().take(4) {
            let mut s = s.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot json!",
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("t");
    std::fs::write(&token, "tok").unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"state\"\n[lnd]\naddress = \"127.0.0.1:1\"\ntls_cert = \"c\"\nmacaroon = \"m\"\n[seal]\nrecipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]\n[escrow]\naddress = \"http://127.0.0.1:{port}\"\ntoken_file = \"t\"\n"
        ),
    )
    .unwrap();
    let out = bin()
        .args(["keys", "list", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        e.contains(&format!(
            "OpenBao at http://127.0.0.1:{port} sent a malformed reply for auth/token/lookup-self"
        )),
        "{e}"
    );
}

#[tokio::test]
async fn check_and_set_conflicts_are_reported() {
    let env = Env::new();
    let cfg = chanvault::config::Config::load(&env.config).unwrap();
    let mut kv = chanvault::escrow::kv::KvClient::new(cfg.escrow.as_ref().unwrap()).unwrap();
    let v = kv.put("chanvault/race", &[("v", "1")], 0).await.unwrap();
    assert_eq!(v, 1);
    let e = kv
        .put("chanvault/race", &[("v", "2")], 0)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("check-and-set conflict on secret/data/chanvault/race"),
        "{e}"
    );
    assert_eq!(kv.put("chanvault/race", &[("v", "2")], 1).await.unwrap(), 2);
    let e = kv
        .put("chanvault/race", &[("v", "3")], 1)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("expected version 1"), "{e}");
}

/// `audit verify`'s exit code for a changed log (README, exit codes).
const CHAIN_BROKEN: i32 = 30;

#[test]
fn audit_log_tampering_is_detected() {
    let env = Env::new();
    let f = env.file("seed", ABANDON);
    env.ok(&["keys", "put", "bip39", "s1", "--file", &f]);
    env.ok(&["keys", "list"]);
    env.ok(&["keys", "get", "s1"]);
    env.ok(&["keys", "history", "s1"]);
    env.ok(&["audit", "verify"]);
    let path = env.audit_file();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let orig = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = orig.lines().collect();
    assert_eq!(lines.len(), 4);
    let write = |l: &[String]| std::fs::write(&path, l.join("\n") + "\n").unwrap();
    let owned: Vec<String> = lines.iter().map(|s| s.to_string()).collect();

    let mut edited = owned.clone();
    edited[1] = edited[1].replace("\"list\"", "\"lust\"");
    write(&edited);
    let e = env.err_code(&["audit", "verify"], CHAIN_BROKEN);
    assert!(
        e.contains("line 2: its content does not match its hash"),
        "{e}"
    );

    let mut removed = owned.clone();
    removed.remove(2);
    write(&removed);
    assert!(
        env.err_code(&["audit", "verify"], CHAIN_BROKEN)
            .contains("line 3:")
    );

    let mut reordered = owned.clone();
    reordered.swap(0, 1);
    write(&reordered);
    assert!(
        env.err_code(&["audit", "verify"], CHAIN_BROKEN)
            .contains("line 1:")
    );

    write(&owned[..3]);
    let e = env.err_code(&["audit", "verify"], CHAIN_BROKEN);
    assert!(e.contains("line 4:") && e.contains("truncated"), "{e}");

    std::fs::write(&path, &orig).unwrap();
    env.ok(&["audit", "verify"]);
}

#[test]
fn policies_let_the_daemon_read_the_identity_but_not_a_seed() {
    let env = Env::new();
    for p in ["chanvault-daemon", "chanvault-operator"] {
        env.bao.write_shipped_policy(p, p, "chanvault");
    }

    // The operator, logged in with AppRole, escrows a seed and the identity.
    env.bao.bao_ok(&[
        "write",
        "auth/approle/role/chanvault-operator",
        "token_policies=chanvault-operator",
        "token_ttl=1h",
    ]);
    let role_id = env.bao.bao_ok(&[
        "read",
        "-field=role_id",
        "auth/approle/role/chanvault-operator/role-id",
    ]);
    let secret_id = env.bao.bao_ok(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/chanvault-operator/secret-id",
    ]);
    let rid = env.file("role-id", &role_id);
    let sid = env.file("secret-id", &secret_id);
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    let token_line = cfg
        .lines()
        .find(|l| l.starts_with("token_file"))
        .unwrap()
        .to_owned();
    let approle = cfg.replace(
        &token_line,
        &format!("approle_role_id_file = \"{rid}\"\napprole_secret_id_file = \"{sid}\""),
    );
    std::fs::write(&env.config, &approle).unwrap();
    let f = env.file("seed", ABANDON);
    env.ok(&["keys", "put", "bip39", "seed", "--file", &f]);
    let g = env.identity.display().to_string();
    env.ok(&["keys", "put", "age-identity", "age-identity", "--file", &g]);
    env.ok(&["keys", "list"]);
    env.ok(&["keys", "put", "bip39", "seed", "--file", &f, "--replace"]);

    // The daemon's token: the identity yes, the seed no (403), no listing.
    let daemon = env.bao.token_with_policy("chanvault-daemon");
    let dfile = env.bao.token_file("daemon.token", &daemon);
    std::fs::write(
        &env.config,
        approle.replace(
            &format!("approle_role_id_file = \"{rid}\"\napprole_secret_id_file = \"{sid}\""),
            &format!("token_file = \"{}\"", dfile.display()),
        ),
    )
    .unwrap();
    let o = env.path().join("id.out");
    env.ok(&[
        "keys",
        "get",
        "age-identity",
        "--reveal",
        "--out",
        o.to_str().unwrap(),
    ]);
    let e = env.err(&["keys", "get", "seed"]);
    assert!(
        e.contains(&format!(
            "refused the token from {}: permission denied (secret/data/chanvault/seed)",
            dfile.display()
        )),
        "{e}"
    );
    assert!(env.err(&["keys", "list"]).contains("permission denied"));
    let f2 = env.file("seed2", LEGAL);
    assert!(
        env.err(&["keys", "put", "bip39", "new", "--file", &f2])
            .contains("permission denied")
    );
    // Raw API, per path: the daemon cannot destroy or delete either.
    for args in [
        vec![
            "kv",
            "destroy",
            "-versions=1",
            "secret/chanvault/age-identity",
        ],
        vec!["kv", "delete", "secret/chanvault/age-identity"],
        vec!["kv", "metadata", "get", "secret/chanvault/seed"],
    ] {
        let out = env.bao.bao_as(&daemon, &args);
        assert!(!out.status.success(), "daemon could run {args:?}");
    }
}

#[test]
fn secrets_are_never_read_from_a_pipe_prompt_or_printed_to_one() {
    let env = Env::new();
    let e = env.err(&["keys", "put", "bip39", "seed"]);
    assert!(
        e.contains("no terminal to prompt") && e.contains("--file"),
        "{e}"
    );
    let f = env.file("seed", ABANDON);
    env.ok(&["keys", "put", "bip39", "seed", "--file", &f]);
    let e = env.err(&["keys", "get", "seed", "--reveal"]);
    assert!(e.contains("refusing to print a secret to a pipe"), "{e}");
    // --out never overwrites.
    let existing = env.file("exists", "keep");
    let e = env.err(&["keys", "get", "seed", "--reveal", "--out", &existing]);
    assert!(e.contains("must not exist"), "{e}");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep");
}

#[test]
fn rotating_the_age_identity_keeps_history_and_destroys_old_only_after_the_config_changed() {
    let env = Env::new();
    let g = env.identity.display().to_string();
    env.ok(&["keys", "put", "age-identity", "backup-id", "--file", &g]);
    let out = env.ok(&["keys", "rotate", "age-identity", "backup-id"]);
    assert!(out.contains("backup-id version 2"), "{out}");
    assert!(out.contains(&format!("replace {}", env.recipient)), "{out}");
    let new = out
        .lines()
        .find_map(|l| l.strip_prefix("new recipient: "))
        .unwrap()
        .to_owned();
    // Not in the config yet: refused, nothing destroyed.
    let e = env.err(&[
        "keys",
        "rotate",
        "age-identity",
        "backup-id",
        "--destroy-old",
    ]);
    assert!(e.contains("not yet in the config's seal.recipients"), "{e}");
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, cfg.replace(&env.recipient, &new)).unwrap();
    let out = env.ok(&[
        "keys",
        "rotate",
        "age-identity",
        "backup-id",
        "--destroy-old",
    ]);
    assert!(out.contains("destroyed versions [1]"), "{out}");
    let h = env.ok(&["keys", "history", "backup-id"]);
    assert!(h.contains("v1") && h.contains("destroyed"), "{h}");
    env.ok(&["keys", "verify"]);
    env.ok(&["audit", "verify"]);
}

#[test]
fn rotating_the_approle_secret_id_proves_writes_and_destroys_the_old_one() {
    let env = Env::new();
    // As the operator (root here): escrow the identity the daemon may read.
    let g = env.identity.display().to_string();
    env.ok(&["keys", "put", "age-identity", "age-identity", "--file", &g]);
    // The daemon's policy from contrib/, with its optional self-rotation block enabled.
    let daemon = bao::shipped_policy("chanvault-daemon", "chanvault");
    let (head, optional) = daemon.split_once("Uncomment to use:").unwrap();
    let enabled: String = optional
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
        .collect::<Vec<_>>()
        .join("\n");
    let policy = env.file(
        "rotator.hcl",
        &format!("{head}\n{enabled}\n").replace("chanvault-daemon", "chanvault"),
    );
    env.bao
        .write_policy("chanvault-rotator", Path::new(&policy));
    env.bao.bao_ok(&[
        "write",
        "auth/approle/role/chanvault",
        "token_policies=chanvault-rotator",
        "token_ttl=1h",
    ]);
    let role_id = env.bao.bao_ok(&[
        "read",
        "-field=role_id",
        "auth/approle/role/chanvault/role-id",
    ]);
    let old = env.bao.bao_ok(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/chanvault/secret-id",
    ]);
    let rid = env.file("role-id", &role_id);
    let sid = env.file("secret-id", &old);
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    let token_line = cfg
        .lines()
        .find(|l| l.starts_with("token_file"))
        .unwrap()
        .to_owned();
    let approle = format!("approle_role_id_file = \"{rid}\"\napprole_secret_id_file = \"{sid}\"");
    std::fs::write(&env.config, cfg.replace(&token_line, &approle)).unwrap();

    // Without the role name: one clear line, nothing changed.
    let e = env.err(&["keys", "rotate", "approle"]);
    assert!(e.contains("escrow.approle_role_name is not set"), "{e}");
    assert_eq!(std::fs::read_to_string(&sid).unwrap(), old);

    let cfg = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        cfg.replace(
            &approle,
            &format!("{approle}\napprole_role_name = \"chanvault\""),
        ),
    )
    .unwrap();
    let out = env.ok(&["keys", "rotate", "approle"]);
    assert!(out.contains("login works"), "{out}");
    assert!(out.contains("destroyed the old secret-id"), "{out}");
    let new = std::fs::read_to_string(&sid).unwrap();
    assert_ne!(new.trim(), old.trim());
    assert!(
        !out.contains(new.trim()) && !out.contains(old.trim()),
        "{out}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sid).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let login = |secret: &str| {
        env.bao.bao(&[
            "write",
            "-field=token",
            "auth/approle/login",
            &format!("role_id={role_id}"),
            &format!("secret_id={}", secret.trim()),
        ])
    };
    assert!(!login(&old).status.success(), "old secret-id still works");
    assert!(login(&new).status.success(), "new secret-id does not work");
    // A fresh process logs in with the new file (and the daemon policy still reads only the identity).
    let out = env.ok(&["keys", "get", "age-identity"]);
    assert!(out.contains("age-identity version 1"), "{out}");
    assert!(!out.contains("AGE-SECRET-KEY"), "{out}");
    let e = env.err(&["keys", "list"]);
    assert!(e.contains("permission denied"), "{e}");
    let audit = std::fs::read_to_string(env.audit_file()).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"op\":\"rotate-approle\"") && l.contains("\"outcome\":\"ok\"")),
        "{audit}"
    );
    assert!(!audit.contains(new.trim()) && !audit.contains(old.trim()));
    env.ok(&["audit", "verify"]);
}

#[test]
fn reseal_moves_the_latest_versions_to_the_new_offline_recipients() {
    let (old_text, old_pub) = chanvault::seal::generate_identity();
    let (new_text, new_pub) = chanvault::seal::generate_identity();
    let env = Env::with(|_| format!("seal_recipients = [\"{old_pub}\"]\n"));
    let old_id = env.file("old-offline.txt", old_text.expose());
    let new_id = env.file("new-offline.txt", new_text.expose());
    let f = env.file("seed", ABANDON);
    env.ok(&["keys", "put", "bip39", "seed", "--file", &f]);
    let g = env.identity.display().to_string();
    env.ok(&["keys", "put", "age-identity", "backup-id", "--file", &g]);
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, cfg.replace(&old_pub, &new_pub)).unwrap();

    // An identity that opens nothing: refused, nothing written.
    let e = env.err(&["keys", "reseal", "--identity", &new_id]);
    assert!(
        e.contains("opens none of the 2 envelope-sealed item(s)"),
        "{e}"
    );
    assert!(
        env.ok(&["keys", "history", "seed"])
            .contains("current version 1")
    );

    let out = env.ok(&["keys", "reseal", "--identity", &old_id]);
    assert!(
        out.contains("✓ seed version 1 re-sealed as version 2"),
        "{out}"
    );
    assert!(
        out.contains("✓ backup-id version 1 re-sealed as version 2"),
        "{out}"
    );
    assert!(out.contains("only the latest version"), "{out}");
    let raw = env.raw("seed").to_string();
    assert!(!raw.contains("abandon"), "{raw}");

    let get = |id: &str, version: Option<&str>, out: &str| {
        let o = env.path().join(out);
        let mut a = vec![
            "keys",
            "get",
            "seed",
            "--reveal",
            "--out",
            o.to_str().unwrap(),
            "--identity",
            id,
        ];
        if let Some(v) = version {
            a.extend(["--version", v]);
        }
        (env.run(&a), o)
    };
    let (r, o) = get(&new_id, None, "latest-new");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read_to_string(o).unwrap().trim(), ABANDON);
    let (r, _) = get(&old_id, None, "latest-old");
    assert!(
        !r.status.success(),
        "the old identity still opens the latest version"
    );
    let (r, _) = get(&old_id, Some("1"), "v1-old");
    assert!(
        r.status.success(),
        "version 1 stays sealed to the old recipient"
    );
    env.ok(&["keys", "verify", "--identity", &new_id]);
    let audit = std::fs::read_to_string(env.audit_file()).unwrap();
    assert_eq!(
        audit
            .lines()
            .filter(|l| l.contains("\"op\":\"reseal\"") && l.contains("\"outcome\":\"ok\""))
            .count(),
        2,
        "{audit}"
    );
    env.ok(&["audit", "verify"]);
}
