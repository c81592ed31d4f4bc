//! The drill with the node gone: `verify` opens lnd's layer of every
//! target's newest backup with the *escrowed* aezeed and `lnd-backup-key`
//! (real OpenBao), so it passes with the LND simulator stopped, and fails
//! with exit 29 when the escrowed seed is another wallet's, when a target
//! holds another node's backup, or when a Single is cut short; a passphrase
//! changed in the store fails as an escrow problem (26). `keys verify`
//! cross-checks the two kinds and, with `info:read`, the running node.

use std::process::Output;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chanvault::sim::SimOptions;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::common::{Fixture, bao::Bao, bin, text};

const PASSPHRASE: &str = "drill passphrase";

struct Setup {
    f: Fixture,
    bao: Bao,
}

impl Setup {
    async fn new() -> Self {
        let f = Fixture::with_options(|o: &mut SimOptions| {
            o.aezeed_passphrase = Some(Zeroizing::new(PASSPHRASE.to_string()));
        })
        .await;
        let bao = tokio::task::spawn_blocking(Bao::start).await.unwrap();
        let token = bao.token_file("root.token", &bao.root_token);
        f.write_config(&format!(
            "[escrow]\naddress = \"{}\"\ntoken_file = \"{}\"\nnetwork = \"regtest\"\n",
            bao.addr(),
            token.display()
        ));
        let s = Setup { f, bao };
        let id = s.f.identity.display().to_string();
        s.ok(&["keys", "put", "age-identity", "backup-id", "--file", &id]);
        s
    }

    fn run(&self, args: &[&str]) -> Output {
        bin()
            .args(args)
            .arg("--config")
            .arg(&self.f.config)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Escrow `sim`'s wallet: its aezeed (with the passphrase file) and its
    /// backup account key.
    fn escrow_wallet(&self, seed: &str, key: &str, wallet: &chanvault::sim::Simulator) {
        let words = wallet.aezeed_path().display().to_string();
        let pass = wallet.aezeed_passphrase_path().display().to_string();
        let args = [
            "keys",
            "put",
            "aezeed",
            seed,
            "--file",
            &words,
            "--passphrase-file",
            &pass,
        ];
        self.ok(&args);
        let xpub = self.f.path().join(format!("{key}.xpub"));
        chanvault::fsutil::create_secret_file(&xpub, wallet.backup_account_xpub().as_bytes())
            .unwrap();
        let xpub = xpub.display().to_string();
        self.ok(&["keys", "put", "lnd-backup-key", key, "--file", &xpub]);
    }

    /// `verify --drill --json` (extra args appended): exit code, report.
    fn verify(&self, extra: &[&str]) -> (i32, serde_json::Value, String) {
        let mut args = vec!["verify", "--drill", "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let report = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out.status.code().unwrap(), report, text(&out))
    }
}

fn rows<'a>(
    report: &'a serde_json::Value,
    target: &str,
    check: &str,
) -> Vec<&'a serde_json::Value> {
    let all = report["checks"].as_array().unwrap();
    all.iter()
        .filter(|r| r["target"] == target && r["check"] == check)
        .collect()
}

fn failed(report: &serde_json::Value) -> Vec<String> {
    let all = report["checks"].as_array().unwrap();
    all.iter()
        .filter(|r| r["ok"] == false)
        .map(|r| {
            format!(
                "{}/{}",
                r["target"].as_str().unwrap(),
                r["check"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drill_passes_with_the_node_gone_on_the_escrowed_seed() {
    let s = Setup::new().await;
    s.f.sim.open_channels(3);
    s.f.backup_once();
    s.escrow_wallet("lnd-seed", "lnd-bk", &s.f.sim);

    // keys verify: the two kinds are one key; the offchain-read macaroon
    // cannot ask GetInfo, which is said, not failed.
    let out = s.ok(&["keys", "verify"]);
    assert!(
        out.contains("✓ lnd-backup-key 'lnd-bk' is the aezeed's backup key"),
        "{out}"
    );
    assert!(
        out.contains("- the escrowed aezeed is the running node's wallet: not checked"),
        "{out}"
    );
    assert!(out.contains("info:read"), "{out}");
    let readonly = s.f.sim.readonly_macaroon_path().display().to_string();
    let offchain = s.f.sim.offchain_read_macaroon_path().display().to_string();
    s.f.edit_config(&offchain, &readonly);
    let out = s.ok(&["keys", "verify"]);
    assert!(
        out.contains("✓ aezeed 'lnd-seed' is the running node's wallet"),
        "{out}"
    );
    assert!(out.contains(&s.f.sim.identity_pubkey()), "{out}");

    // With the node up: the online and offline rows agree.
    let (code, report, all) = s.verify(&[]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(
        rows(&report, "escrow", "node-identity")[0]["ok"],
        true,
        "{all}"
    );
    assert_eq!(
        rows(&report, "pbs", "scb-matches-lnd")[0]["ok"],
        true,
        "{all}"
    );

    // The node is gone: escrow and targets alone prove recovery.
    s.f.sim.stop().await;
    let tf = s.f.path().join("verify.prom");
    let (code, report, all) = s.verify(&["--textfile", tf.to_str().unwrap()]);
    assert_eq!(code, 0, "{all}");
    let opens = rows(&report, "pbs", "scb-opens");
    assert_eq!(opens.len(), 2, "{all}");
    for label in [
        "escrowed aezeed 'lnd-seed'",
        "escrowed lnd-backup-key 'lnd-bk'",
    ] {
        let row = opens
            .iter()
            .find(|r| r["detail"].as_str().unwrap().contains(label));
        assert_eq!(row.expect(label)["ok"], true, "{all}");
    }
    assert_eq!(rows(&report, "pbs", "scb-parses")[0]["ok"], true, "{all}");
    assert_eq!(rows(&report, "pbs", "covers-spool")[0]["ok"], true, "{all}");
    assert_eq!(
        rows(&report, "lnd", "lnd-reachable")[0]["ok"],
        serde_json::Value::Null
    );
    // Per-channel warnings are shown and exported, and do not fail: a
    // recovery planned on lnd 0.5 could restore none of the 3 channels.
    let mut cfg = std::fs::read_to_string(&s.f.config).unwrap();
    cfg.push_str("[verify]\nrestore_lnd_version = \"v0.5.0-beta\"\n");
    std::fs::write(&s.f.config, cfg).unwrap();
    let (code, report, all) = s.verify(&["--textfile", tf.to_str().unwrap()]);
    assert_eq!(code, 0, "{all}");
    let warnings = report["warnings"].as_array().unwrap();
    let too_old: Vec<&serde_json::Value> = warnings
        .iter()
        .filter(|w| w["concern"] == "needs-newer-lnd")
        .collect();
    assert_eq!(too_old.len(), 3, "{all}");
    for w in &too_old {
        assert_eq!(w["target"], "pbs", "{w}");
        assert!(w["detail"].as_str().unwrap().contains("is 0.5.0"), "{w}");
    }
    let prom = std::fs::read_to_string(&tf).unwrap();
    let line = "chanvault_verify_channel_warnings{kind=\"needs-newer-lnd\",target=\"pbs\"} 3\n";
    assert!(prom.contains(line), "{prom}");
    let human = s.run(&["verify"]);
    let shown = text(&human);
    assert!(
        shown.contains("channel warning(s) (they do not fail the drill)"),
        "{shown}"
    );
    assert!(shown.contains("needs-newer-lnd: the "), "{shown}");
    assert!(prom.contains("chanvault_verify_success 1\n"), "{prom}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drill_names_another_wallet_and_a_changed_passphrase() {
    let s = Setup::new().await;
    s.f.sim.open_channels(2);
    s.f.backup_once();
    let other = Fixture::new().await;
    // Another wallet's seed and key are valid items, but not this node's.
    s.escrow_wallet("other-seed", "other-bk", &other.sim);
    s.f.sim.stop().await;
    let (code, report, all) = s.verify(&[]);
    assert_eq!(code, 29, "{all}");
    let opens = rows(&report, "pbs", "scb-opens");
    assert!(opens.iter().all(|r| r["ok"] == false), "{all}");
    let details: Vec<&str> = opens
        .iter()
        .map(|r| r["detail"].as_str().unwrap())
        .collect();
    for label in [
        "escrowed aezeed 'other-seed'",
        "escrowed lnd-backup-key 'other-bk'",
    ] {
        let d = details.iter().find(|d| d.starts_with(label)).expect(label);
        assert!(d.contains("does not open this backup"), "{all}");
    }
    assert!(
        !all.contains(&std::fs::read_to_string(other.sim.aezeed_path()).unwrap()),
        "{all}"
    );

    // A passphrase changed in the store: the item no longer opens, which
    // is an escrow failure (26) named by item, not a silent success.
    s.bao.bao_ok(&[
        "kv",
        "patch",
        "-mount=secret",
        "chanvault/other-seed",
        "passphrase=not-it",
    ]);
    let (code, report, all) = s.verify(&[]);
    assert_eq!(code, 26, "{all}");
    assert!(
        failed(&report).contains(&"escrow/escrow".to_string()),
        "{all}"
    );
    assert!(
        all.contains("'other-seed'") && all.contains("passphrase"),
        "{all}"
    );
    assert!(!all.contains("not-it"), "{all}");
}

/// The drill on a fresh recovery machine (no state dir), with one target's
/// newest backup replaced by `sealed` (its manifest updated to match, so
/// only lnd's layer can tell).
fn replace_current(f: &Fixture, sealed: &[u8]) {
    let dir = f.target_dir("pbs");
    std::fs::write(dir.join("channel.backup.age"), sealed).unwrap();
    let manifest = dir.join("channel.backup.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let id = hex::encode(Sha256::digest(sealed));
    m["id"] = id.clone().into();
    m["sealed_sha256"] = id.into();
    m["sealed_len"] = sealed.len().into();
    // Signed again with the node's own key, as chanvault would have.
    let keys = ["state", "state.gone"]
        .iter()
        .find_map(|d| chanvault::signing::ManifestKeys::load(&f.path().join(d)).unwrap())
        .unwrap();
    let mut parsed: chanvault::sink::Manifest = serde_json::from_value(m).unwrap();
    parsed.signer = Some(keys.public());
    let claims = parsed.claims().unwrap();
    parsed.signature = Some(keys.sign(&claims));
    std::fs::write(&manifest, serde_json::to_vec(&parsed).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(dir.join("history"));
}

/// lnd's SCB key of a simulator: SHA-256 of the compressed pubkey at
/// m/1017'/1'/7'/0/0 (regtest), derived here independently of chanvault.
fn scb_key(sim: &chanvault::sim::Simulator) -> [u8; 32] {
    use bitcoin::bip32::{ChildNumber, Xpub};
    use std::str::FromStr;
    let xpub = Xpub::from_str(&sim.backup_account_xpub()).unwrap();
    let secp = bitcoin::secp256k1::Secp256k1::verification_only();
    let path = [
        ChildNumber::Normal { index: 0 },
        ChildNumber::Normal { index: 0 },
    ];
    let leaf = xpub.derive_pub(&secp, &path).unwrap();
    Sha256::digest(leaf.public_key.serialize()).into()
}

fn fresh_machine(f: &Fixture) {
    std::fs::rename(f.path().join("state"), f.path().join("state.gone")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drill_catches_another_nodes_backup_and_a_cut_single() {
    let s = Setup::new().await;
    s.f.sim.open_channels(2);
    s.f.backup_once();
    s.escrow_wallet("lnd-seed", "lnd-bk", &s.f.sim);
    let cipher = XChaCha20Poly1305::new((&scb_key(&s.f.sim)).into());
    let mut raw = std::fs::read(s.f.target_dir("pbs").join("channel.backup.age")).unwrap();
    let identity = chanvault::seal::Identities::from_file(&s.f.identity).unwrap();
    let blob = chanvault::seal::open(&identity, &raw).unwrap();
    let (nonce, sealed) = blob.expose().split_at(24);
    let payload = Payload {
        msg: sealed,
        aad: nonce,
    };
    let mut plain = cipher.decrypt(XNonce::from_slice(nonce), payload).unwrap();
    s.f.sim.stop().await;
    fresh_machine(&s.f);

    // A Single cut short (its last 9 bytes), sealed as lnd and chanvault would.
    plain.truncate(plain.len() - 9);
    let nonce = [5u8; 24];
    let payload = Payload {
        msg: &plain[..],
        aad: &nonce[..],
    };
    let lnd_blob = [
        &nonce[..],
        &cipher.encrypt(XNonce::from_slice(&nonce), payload).unwrap(),
    ]
    .concat();
    let recipients =
        chanvault::seal::Recipients::from_config(std::slice::from_ref(&s.f.recipient), &[])
            .unwrap();
    replace_current(
        &s.f,
        &chanvault::seal::seal(&recipients, &lnd_blob).unwrap(),
    );
    let (code, report, all) = s.verify(&["--no-spool"]);
    assert_eq!(code, 29, "{all}");
    assert_eq!(failed(&report), vec!["pbs/scb-parses".to_string()], "{all}");
    assert!(
        rows(&report, "pbs", "scb-parses")[0]["detail"]
            .as_str()
            .unwrap()
            .contains("cut short"),
        "{all}"
    );

    // Another node's backup, sealed to this setup's recipient too.
    let other = Fixture::new().await;
    let both = format!(
        "recipients = [\"{}\", \"{}\"]",
        other.recipient, s.f.recipient
    );
    other.edit_config(&format!("recipients = [\"{}\"]", other.recipient), &both);
    other.sim.open_channels(2);
    other.backup_once();
    raw = std::fs::read(other.target_dir("pbs").join("channel.backup.age")).unwrap();
    replace_current(&s.f, &raw);
    let (code, report, all) = s.verify(&["--no-spool"]);
    assert_eq!(code, 29, "{all}");
    assert!(
        failed(&report).iter().all(|r| r == "pbs/scb-opens"),
        "{all}"
    );
}
