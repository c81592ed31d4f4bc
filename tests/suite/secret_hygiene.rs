//! Secret hygiene, end to end: known secrets (the age identity, a BIP-39
//! seed, an xprv, the OpenBao token, the restic password, the macaroon) are
//! seeded; the real binary runs watch, backup, restore, verify, keys and
//! audit at trace level against the LND simulator, a local restic repository
//! and a real OpenBao; then every log line, stdout, stderr and file under the
//! state dir and the targets (and OpenBao's own audit log) is searched for
//! each secret raw, as hex and as base64. Zero hits.
//!
//! Refusing a group/world-readable identity and the non-dumpable process are
//! pinned in tests/suite/cli.rs.

use crate::common::bao;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use crate::common::{Fixture, Watch};
use base64::Engine;
use bitcoin::bip32::{DerivationPath, Xpriv};

const RESTIC_PASSWORD: &str = "hygiene-restic-password-5d41402abc";
const SEED: &str = "legal winner thank year wave sausage worth useful legal winner thank yellow";

/// The SEED's account xprv at m/48'/0'/0'/2' with its origin, and its 32 secret bytes.
fn account_xprv() -> (String, Vec<u8>) {
    let seed = bip39::Mnemonic::parse(SEED).unwrap().to_seed("");
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let master = Xpriv::new_master(bitcoin::NetworkKind::Main, &seed).unwrap();
    let path: DerivationPath = "m/48'/0'/0'/2'".parse().unwrap();
    let acct = master.derive_priv(&secp, &path).unwrap();
    (
        format!("[{}/48h/0h/0h/2h]{acct}", master.fingerprint(&secp)),
        acct.private_key.secret_bytes().to_vec(),
    )
}

/// The binary at trace level, off the async threads (the simulator lives on them).
async fn trace(config: &Path, list: &[&str]) -> Output {
    let mut args: Vec<String> = vec!["--log-level".into(), "trace".into()];
    args.extend(list.iter().map(|s| s.to_string()));
    let config = config.to_path_buf();
    tokio::task::spawn_blocking(move || {
        bao::cli(
            &config,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    })
    .await
    .unwrap()
}

fn collect_files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
}

fn secret_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    chanvault::fsutil::create_secret_file(&p, text.as_bytes()).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_output_or_file_at_trace_level() {
    let f = Fixture::new().await;
    let bao = tokio::task::spawn_blocking(bao::Bao::start).await.unwrap();
    let token = bao.token_file("root.token", &bao.root_token);
    secret_file(f.path(), "restic-password", &format!("{RESTIC_PASSWORD}\n"));
    f.write_config(&format!(
        r#"[[target]]
name = "offsite"
kind = "restic"
repository = "targets/restic-repo"
password_file = "restic-password"
[escrow]
address = "{}"
token_file = "{}"
"#,
        bao.addr(),
        token.display()
    ));
    let (xprv, xprv_secret) = account_xprv();
    let seed_file = secret_file(f.path(), "seed.txt", SEED);
    let xprv_file = secret_file(f.path(), "xprv.txt", &xprv);
    let cfg = f.config.clone();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (id, seed_path, xprv_path) = (s(&f.identity), s(&seed_file), s(&xprv_file));
    let reveal_out = s(&f.path().join("revealed-seed.txt"));
    let plain_out = s(&f.path().join("restored-channel.backup"));

    let mut outputs: Vec<(String, Output)> = Vec::new();
    let must: &[&[&str]] = &[
        &["target", "init", "offsite"],
        &["keys", "put", "bip39", "seed", "--file", &seed_path],
        &["keys", "put", "xprv", "cosigner", "--file", &xprv_path],
        &["keys", "put", "age-identity", "identity", "--file", &id],
    ];
    for list in must {
        let out = trace(&cfg, list).await;
        assert!(
            out.status.success(),
            "{list:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push((format!("{list:?}"), out));
    }
    f.sim.open_channels(2);
    let out = trace(&cfg, &["backup", "--once"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    outputs.push(("backup --once".into(), out));

    // The daemon, with channel events, stopped by SIGTERM.
    let watch = Watch::start_at(&f, "trace");
    f.sim.open_channels(2);
    f.wait_current("pbs", "channels delivered", 20).await;
    assert_eq!(watch.stop().await.code(), Some(0));
    let log = f.path().join("watch.log");
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Everything else a user runs; exit codes printed, not asserted (their own tests pin them).
    let rest: &[&[&str]] = &[
        &["status"],
        &["status", "--json"],
        &["check-config"],
        &["restore", "list"],
        &["restore", "fetch", "--identity", &id, "--out", &plain_out],
        &["verify", "--identity", &id],
        &["keys", "get", "seed"],
        &["keys", "get", "cosigner"],
        &["keys", "list"],
        &["keys", "history", "seed"],
        &["keys", "verify", "--identity", &id],
        &["keys", "get", "seed", "--reveal", "--out", &reveal_out],
        &["audit", "verify"],
        &["audit", "show"],
    ];
    for list in rest {
        let out = trace(&cfg, list).await;
        println!("{list:?}: exit {:?}", out.status.code());
        outputs.push((format!("{list:?}"), out));
    }
    assert_eq!(
        std::fs::read_to_string(&reveal_out).unwrap().trim(),
        SEED,
        "--reveal --out is the one place a secret is meant to go"
    );
    assert!(
        outputs
            .iter()
            .any(|(_, o)| String::from_utf8_lossy(&o.stderr).contains("TRACE")),
        "trace logging is on"
    );

    let identity = std::fs::read_to_string(&f.identity).unwrap();
    let age_key = identity
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_string();
    let seed_bytes = bip39::Mnemonic::parse(SEED).unwrap().to_seed("").to_vec();
    let raw: Vec<(&str, Vec<u8>)> = vec![
        (
            "macaroon",
            std::fs::read(f.sim.offchain_read_macaroon_path()).unwrap(),
        ),
        ("age identity", age_key.as_bytes().to_vec()),
        ("restic password", RESTIC_PASSWORD.as_bytes().to_vec()),
        ("seed words", SEED.as_bytes().to_vec()),
        ("seed bytes", seed_bytes),
        ("xprv", xprv.split(']').nth(1).unwrap().as_bytes().to_vec()),
        ("xprv secret key", xprv_secret),
        ("OpenBao token", bao.root_token.as_bytes().to_vec()),
    ];
    let mut needles: Vec<(String, String)> = Vec::new();
    for (what, r) in &raw {
        let b64 = base64::engine::general_purpose::STANDARD.encode(r);
        for (enc, n) in [
            ("hex", hex::encode(r)),
            ("HEX", hex::encode(r).to_uppercase()),
            ("base64", b64.trim_end_matches('=').to_string()),
            ("text", String::from_utf8_lossy(r).into_owned()),
        ] {
            if n.len() >= 16 {
                needles.push((format!("{what} ({enc})"), n));
            }
        }
    }
    needles.push(("age identity (lowercase)".into(), age_key.to_lowercase()));

    let mut haystacks = vec![
        ("watch.log".to_string(), std::fs::read(&log).unwrap()),
        ("OpenBao audit log".to_string(), bao.audit_log()),
    ];
    for (name, out) in &outputs {
        haystacks.push((format!("{name} stdout"), out.stdout.clone()));
        haystacks.push((format!("{name} stderr"), out.stderr.clone()));
    }
    for dir in [f.path().join("state"), f.path().join("targets")] {
        collect_files(&dir, &mut haystacks);
    }
    let scan = |haystacks: &[(String, Vec<u8>)]| {
        let mut hits = Vec::new();
        for (name, bytes) in haystacks {
            let hay = String::from_utf8_lossy(bytes);
            for (what, n) in &needles {
                if hay.contains(n.as_str()) {
                    hits.push(format!("{what} in {name}"));
                }
            }
            for (what, r) in &raw {
                if bytes.windows(r.len()).any(|w| w == &r[..]) {
                    hits.push(format!("{what} (raw bytes) in {name}"));
                }
            }
        }
        hits
    };
    // Positive control: the scan finds what --reveal wrote, and an identity file.
    let control = scan(&[
        ("reveal".into(), std::fs::read(&reveal_out).unwrap()),
        ("identity".into(), identity.clone().into_bytes()),
    ]);
    assert!(
        control.iter().any(|h| h.starts_with("seed words (text)")),
        "{control:?}"
    );
    assert!(
        control.iter().any(|h| h.starts_with("age identity (text)")),
        "{control:?}"
    );
    let hits = scan(&haystacks);
    let bytes: usize = haystacks.iter().map(|(_, b)| b.len()).sum();
    println!(
        "secret scan: {} haystacks ({bytes} bytes), {} secrets, {} needles, hits={}",
        haystacks.len(),
        raw.len(),
        needles.len(),
        hits.len()
    );
    assert!(hits.is_empty(), "{hits:#?}");
}
