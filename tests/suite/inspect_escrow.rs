//! `chanvault inspect --target` on the real binary: a backup the simulator
//! wrote, delivered to a dir target and a local restic repository, read back
//! through the sink trait and opened with keys from a real OpenBao (the
//! simulator's own aezeed with its passphrase, its `lnd-backup-key`, an
//! envelope-sealed one), from files and from `[lnd] backup_key_file`. Every
//! way lists exactly the simulator's channels with their peers; a wrong key
//! is named, with exit 10.

use std::collections::BTreeMap;
use std::process::Output;

use crate::common::{Fixture, bao, run, text};
use crate::lnd_sim_wallet::peers;
use chanvault::config::TargetConfig;
use chanvault::sink::restic::ResticTarget;
use chanvault::wallet::aezeed::CipherSeed;

struct Setup {
    f: Fixture,
    _bao: bao::Bao,
}

impl Setup {
    /// The binary with `--config` appended.
    async fn run(&self, argv: &[&str]) -> Output {
        let mut args: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        args.push("--config".into());
        args.push(self.f.config.display().to_string());
        run(args).await
    }

    async fn ok(&self, argv: &[&str]) -> Output {
        let o = self.run(argv).await;
        assert_eq!(o.status.code(), Some(0), "{argv:?}: {}", text(&o));
        o
    }

    /// `inspect --identity` (the fixture's identity) and `extra`.
    async fn inspect(&self, extra: &[&str]) -> Output {
        let id = self.f.identity.display().to_string();
        let mut argv = vec!["inspect", "--identity", id.as_str()];
        argv.extend_from_slice(extra);
        self.run(&argv).await
    }

    fn path(&self, name: &str) -> String {
        self.f.path().join(name).display().to_string()
    }

    /// A 0600 file in the fixture's dir.
    fn secret_file(&self, name: &str, body: &str) -> String {
        let p = self.f.path().join(name);
        let _ = std::fs::remove_file(&p);
        chanvault::fsutil::create_secret_file(&p, body.as_bytes()).unwrap();
        p.display().to_string()
    }
}

/// Another regtest wallet's backup account key.
fn other_wallets_xpub() -> String {
    let seed = CipherSeed::generate(1).unwrap();
    seed.backup_account_xpub(bitcoin::Network::Regtest)
        .unwrap()
        .to_string()
}

/// The simulator with a dir target `pbs`, a restic target `repo`, an escrow
/// on a real OpenBao (regtest), and the node's keys escrowed:
/// `lnd-seed` (aezeed + passphrase), `node-key` (lnd-backup-key),
/// `other-node` (another wallet's lnd-backup-key), `backup-identity`.
async fn setup() -> Setup {
    let f = Fixture::new().await;
    let bao = tokio::task::spawn_blocking(bao::Bao::start).await.unwrap();
    std::fs::write(f.path().join("restic-password"), "pw-inspect-1\n").unwrap();
    let token = bao.token_file("root.token", &bao.root_token);
    f.write_config(&format!(
        "[[target]]\nname = \"repo\"\nkind = \"restic\"\nrepository = \"targets/restic\"\n\
         password_file = \"restic-password\"\n\
         [escrow]\naddress = \"{}\"\ntoken_file = \"{}\"\nnetwork = \"regtest\"\n",
        bao.addr(),
        token.display()
    ));
    let cfg = f.load();
    let Some(TargetConfig::Restic(r)) = cfg.targets.iter().find(|t| t.name() == "repo") else {
        panic!("no restic target");
    };
    chanvault::sink::unblock(&ResticTarget::new(r), ResticTarget::init_blocking)
        .await
        .unwrap();
    let s = Setup { f, _bao: bao };
    let seed = s.f.sim.aezeed_path().display().to_string();
    let pass = s.f.sim.aezeed_passphrase_path().display().to_string();
    s.ok(&[
        "keys",
        "put",
        "aezeed",
        "lnd-seed",
        "--file",
        &seed,
        "--passphrase-file",
        &pass,
    ])
    .await;
    let xpub = s.secret_file("node.xpub", &format!("{}\n", s.f.sim.backup_account_xpub()));
    s.ok(&["keys", "put", "lnd-backup-key", "node-key", "--file", &xpub])
        .await;
    let other = s.secret_file("other.xpub", &format!("{}\n", other_wallets_xpub()));
    s.ok(&[
        "keys",
        "put",
        "lnd-backup-key",
        "other-node",
        "--file",
        &other,
    ])
    .await;
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
    s
}

/// Channel point → peer, from `inspect --json`.
fn read_channels(o: &Output) -> (BTreeMap<String, String>, serde_json::Value) {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    read_channels_at(o, &v)
}

/// Channel point → peer, from the `channels` of `v` (an inspection in `o`'s output).
fn read_channels_at(
    o: &Output,
    v: &serde_json::Value,
) -> (BTreeMap<String, String>, serde_json::Value) {
    let found = v["channels"]
        .as_array()
        .unwrap_or_else(|| panic!("no channels: {}", text(o)))
        .iter()
        .map(|c| {
            (
                c["chan_point"].as_str().unwrap().to_owned(),
                c["peer"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (found, v.clone())
}

/// The one `chanvault: error:` line.
fn error_line(o: &Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("chanvault: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", text(o));
    lines[0].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reads_a_target_with_keys_from_the_escrow_and_from_files() {
    let s = setup().await;
    s.f.sim.open_channels(4);
    s.f.backup_once();
    let want: BTreeMap<String, String> = peers(&s.f.sim)
        .await
        .into_iter()
        .map(|(cp, peer)| (cp.to_string(), peer))
        .collect();
    assert_eq!(want.len(), 4);

    let id = s.f.identity.display().to_string();
    let seed = s.f.sim.aezeed_path().display().to_string();
    let pass = s.f.sim.aezeed_passphrase_path().display().to_string();
    let xpub = s.path("node.xpub");
    let escrowed_id = ["--identity-from-escrow", "backup-identity"];
    let file_id = ["--identity", id.as_str()];
    // (the key options, the identity options, what the key is said to come from)
    let ways: Vec<(Vec<&str>, [&str; 2], String)> = vec![
        (
            vec!["--key-from-escrow", "lnd-seed"],
            escrowed_id,
            "the escrowed aezeed 'lnd-seed' v1".into(),
        ),
        (
            vec!["--key-from-escrow", "node-key"],
            file_id,
            "the escrowed lnd-backup-key 'node-key' v1".into(),
        ),
        (
            vec!["--aezeed-file", &seed, "--passphrase-file", &pass],
            escrowed_id,
            format!("the aezeed in {seed}"),
        ),
        (
            vec!["--backup-key-file", &xpub],
            file_id,
            format!("the backup account key in {xpub}"),
        ),
    ];
    for target in ["pbs", "repo"] {
        for (key, ids, source) in &ways {
            let mut argv = vec!["inspect", "--target", target, "--network", "regtest"];
            argv.extend(key.iter().copied());
            argv.extend(ids.iter().copied());
            argv.push("--json");
            let (found, v) = read_channels(&s.ok(&argv).await);
            assert_eq!(found, want, "{target} {key:?}: {v}");
            assert_eq!(v["key_source"], source.as_str(), "{v}");
            assert_eq!(v["from"]["target"], target, "{v}");
            assert_eq!(v["age_layer"], true, "{v}");
        }
    }

    // restore list and fetch read inside with an escrowed key too.
    let o = s
        .ok(&[
            "restore",
            "list",
            "--key-from-escrow",
            "lnd-seed",
            "--identity-from-escrow",
            "backup-identity",
            "--json",
        ])
        .await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["read_with"]
            .as_str()
            .unwrap()
            .split_once(" (from ")
            .unwrap()
            .1,
        "the escrowed aezeed 'lnd-seed' v1)",
        "{v}"
    );
    let (found, _) = read_channels_at(&o, &v["backups"][0]["inside"]);
    assert_eq!(found, want, "{v}");
    let out = s.path("fetched.backup");
    let argv = [
        "restore",
        "fetch",
        "--target",
        "repo",
        "--key-from-escrow",
        "node-key",
        "--identity",
        &id,
        "--out",
        &out,
        "--json",
    ];
    let o = s.ok(&argv).await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(read_channels_at(&o, &v["inside"]).0, want, "{v}");
    assert_eq!(
        v["changes_to_newest"]["added"],
        serde_json::json!([]),
        "{v}"
    );
    // A plain file with an escrowed key (the config is read for the escrow only).
    let o = s
        .ok(&["inspect", &out, "--key-from-escrow", "lnd-seed", "--json"])
        .await;
    assert_eq!(read_channels(&o).0, want);

    // No key option: `[lnd] backup_key_file`, as restore and verify use it.
    s.f.edit_config(
        "reconnect_max_seconds = 1\n",
        "reconnect_max_seconds = 1\nbackup_key_file = \"node.xpub\"\n",
    );
    let argv = ["inspect", "--target", "pbs", "--identity", &id, "--json"];
    let (found, v) = read_channels(&s.ok(&argv).await);
    assert_eq!(found, want, "{v}");
    assert_eq!(
        v["key_source"],
        format!("lnd.backup_key_file {xpub}").as_str(),
        "{v}"
    );

    // The table: which backup, which key, then one line per channel.
    let o = s
        .run(&[
            "inspect",
            "--target",
            "repo",
            "--key-from-escrow",
            "lnd-seed",
            "--identity-from-escrow",
            "backup-identity",
        ])
        .await;
    let table = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2 + 4, "{table}");
    assert!(
        lines[0].starts_with("backup ") && lines[0].contains("from target repo"),
        "{table}"
    );
    assert!(
        lines[1].contains("(from the escrowed aezeed 'lnd-seed' v1) opens it (after the age layer): 4 channel(s) with 4 peer(s)"),
        "{table}"
    );
    for (cp, peer) in &want {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(cp.as_str()) && l.contains(peer.as_str())),
            "{cp} {peer}: {table}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_or_place_fails_naming_it_with_restores_codes() {
    let s = setup().await;
    s.f.sim.open_channels(2);
    s.f.backup_once();

    // Another wallet's escrowed key: exit 10, one line naming the item, the
    // backup and the target; no AEAD text.
    for target in ["pbs", "repo"] {
        let o = s
            .inspect(&["--target", target, "--key-from-escrow", "other-node"])
            .await;
        assert_eq!(o.status.code(), Some(10), "{}", text(&o));
        let line = error_line(&o);
        let fp = line
            .split("backup key ")
            .nth(1)
            .and_then(|r| r.get(..8))
            .unwrap_or_default();
        assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
        let backup = line
            .strip_prefix("chanvault: error: backup ")
            .and_then(|r| r.get(..12))
            .unwrap_or_default();
        assert_eq!(
            line,
            format!(
                "chanvault: error: backup {backup} from target {target}: backup key {fp} (from the \
                 escrowed lnd-backup-key 'other-node' v1) does not open this backup: it was made by \
                 another node (another seed or network), or the file was altered"
            )
        );
    }

    // The age layer: another identity is restore's wrong identity (10).
    let other_id = s.f.path().join("other-identity.txt");
    chanvault::seal::write_new_identity(&other_id).unwrap();
    let o = s
        .run(&[
            "inspect",
            "--target",
            "pbs",
            "--key-from-escrow",
            "node-key",
            "--identity",
            other_id.to_str().unwrap(),
        ])
        .await;
    assert_eq!(o.status.code(), Some(10), "{}", text(&o));
    assert!(
        error_line(&o).contains("matches any recipient of this backup"),
        "{}",
        text(&o)
    );

    // An unknown target and an unknown backup: restore's texts and codes.
    let o = s
        .inspect(&["--target", "nope", "--key-from-escrow", "node-key"])
        .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        error_line(&o).ends_with("no target named \"nope\""),
        "{}",
        text(&o)
    );
    let o = s
        .inspect(&[
            "--target",
            "repo",
            "--backup",
            "ffffffffffff",
            "--key-from-escrow",
            "node-key",
        ])
        .await;
    assert_eq!(o.status.code(), Some(13), "{}", text(&o));
    assert_eq!(
        error_line(&o),
        "chanvault: error: no backup ffffffffffff on target repo (`chanvault restore list` shows what is there)"
    );

    // An escrowed item that is no lnd key, and no key at all.
    let o = s
        .inspect(&["--target", "pbs", "--key-from-escrow", "backup-identity"])
        .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        error_line(&o).contains(
            "escrowed item backup-identity is a age-identity; lnd's backups open with an aezeed or lnd-backup-key item"
        ),
        "{}",
        text(&o)
    );
    let o = s.inspect(&["--target", "pbs"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        error_line(&o).contains("or set lnd.backup_key_file in"),
        "{}",
        text(&o)
    );

    // The target needs an identity, like restore fetch (a usage error).
    let o = s
        .run(&[
            "inspect",
            "--target",
            "pbs",
            "--key-from-escrow",
            "node-key",
        ])
        .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // An envelope-sealed key opens with --envelope-identity only.
    let (offline_text, offline_pub) = chanvault::seal::generate_identity();
    let offline = s.secret_file("offline.txt", offline_text.expose());
    s.f.edit_config(
        "network = \"regtest\"\n",
        &format!("network = \"regtest\"\nseal_recipients = [\"{offline_pub}\"]\n"),
    );
    let xpub = s.path("node.xpub");
    s.ok(&[
        "keys",
        "put",
        "lnd-backup-key",
        "sealed-key",
        "--file",
        &xpub,
    ])
    .await;
    let o = s
        .inspect(&["--target", "pbs", "--key-from-escrow", "sealed-key"])
        .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        error_line(&o).contains("pass --envelope-identity FILE"),
        "{}",
        text(&o)
    );
    let o = s
        .inspect(&[
            "--target",
            "pbs",
            "--key-from-escrow",
            "sealed-key",
            "--envelope-identity",
            &offline,
            "--json",
        ])
        .await;
    let (found, v) = read_channels(&o);
    assert_eq!(found.len(), 2, "{v}");
    assert_eq!(
        v["key_source"],
        "the escrowed lnd-backup-key 'sealed-key' v1"
    );
}
