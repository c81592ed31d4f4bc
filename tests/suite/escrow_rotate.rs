//! `keys rotate age-identity` end to end: a real OpenBao dev server, the LND
//! simulator, a dir target and a real restic repository. After rotation the
//! newest good backup is re-sealed to the new recipient set and delivered to
//! every target; `--destroy-old` waits for that.

use crate::common::bao;
use std::path::Path;
use std::process::Command;

use crate::common::Fixture;
use bao::Bao;
use chanvault::seal::Identities;

fn err(config: &Path, args: &[&str]) -> String {
    let out = bao::cli(config, args);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

fn opens(identity: &Path, sealed: &[u8]) -> Option<Vec<u8>> {
    let ids = Identities::from_file(identity).unwrap();
    chanvault::seal::open(&ids, sealed)
        .ok()
        .map(|p| p.expose().to_vec())
}

fn restic_snapshots(repo: &Path, password: &Path) -> usize {
    let out = Command::new("restic")
        .arg("-r")
        .arg(repo)
        .arg("--password-file")
        .arg(password)
        .args(["--no-cache", "snapshots", "--json"])
        .env_remove("RESTIC_PASSWORD")
        .env_remove("RESTIC_REPOSITORY")
        .output()
        .expect("restic runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_reseals_the_newest_backup_and_redelivers_it_everywhere() {
    let bao = Bao::start();
    let f = Fixture::new().await;
    f.sim.open_channels(3);
    let other = f.path().join("other-identity.txt");
    let other_pub = chanvault::seal::write_new_identity(&other).unwrap();
    let token = bao.token_file("root.token", &bao.root_token);
    let password = f.path().join("restic-password");
    std::fs::write(&password, "correct horse\n").unwrap();
    f.write_config(&format!(
        "[[target]]\nname = \"offsite\"\nkind = \"restic\"\nrepository = \"targets/restic\"\npassword_file = \"restic-password\"\n\
         [escrow]\naddress = \"{}\"\ntoken_file = \"{}\"\n",
        bao.addr(),
        token.display()
    ));
    f.edit_config(
        &format!("recipients = [\"{}\"]", f.recipient),
        &format!("recipients = [\"{}\", \"{other_pub}\"]", f.recipient),
    );
    let cfg = &f.config;
    bao::cli_ok(cfg, &["target", "init", "offsite"]);
    bao::cli_ok(cfg, &["backup", "--once"]);
    let repo = f.path().join("targets/restic");
    assert_eq!(restic_snapshots(&repo, &password), 1);
    let current = f.target_dir("pbs").join("channel.backup.age");
    let before = std::fs::read(&current).unwrap();
    let plain = opens(&f.identity, &before).expect("the old identity opens the first backup");

    let g = f.identity.display().to_string();
    bao::cli_ok(
        cfg,
        &["keys", "put", "age-identity", "backup-id", "--file", &g],
    );
    let out = bao::cli_ok(cfg, &["keys", "rotate", "age-identity", "backup-id"]);
    assert!(
        out.contains("stored a new age identity as backup-id version 2"),
        "{out}"
    );
    assert!(out.contains("re-sealed backup"), "{out}");
    assert!(out.contains("✓ pbs: delivered"), "{out}");
    assert!(out.contains("✓ offsite: delivered"), "{out}");
    assert!(!out.contains("AGE-SECRET-KEY"), "{out}");
    assert!(out.contains(&format!("replace {}", f.recipient)), "{out}");
    let new_pub = out
        .lines()
        .find_map(|l| l.strip_prefix("new recipient: "))
        .unwrap()
        .to_owned();

    // The new identity, read back from the escrow.
    let new_id = f.path().join("new-identity.txt");
    bao::cli_ok(
        cfg,
        &[
            "keys",
            "get",
            "backup-id",
            "--reveal",
            "--out",
            new_id.to_str().unwrap(),
        ],
    );
    let after = std::fs::read(&current).unwrap();
    assert_ne!(
        after, before,
        "the dir target's current backup was not replaced"
    );
    assert_eq!(opens(&new_id, &after).as_deref(), Some(plain.as_slice()));
    assert_eq!(opens(&other, &after).as_deref(), Some(plain.as_slice()));
    assert!(
        opens(&f.identity, &after).is_none(),
        "the old identity still opens it"
    );
    assert_eq!(restic_snapshots(&repo, &password), 2);

    let c = f.load();
    let spool = chanvault::spool::Spool::open(&c.state_dir, c.backup.keep).unwrap();
    let j = spool.journal().unwrap();
    let good = j.last_good().unwrap();
    assert_eq!(good.source, "reseal");
    assert_eq!(good.recipients, vec![new_pub.clone(), other_pub.clone()]);
    assert_eq!(j.backups.len(), 2);

    // Not in the config yet: refused.
    let e = err(
        cfg,
        &[
            "keys",
            "rotate",
            "age-identity",
            "backup-id",
            "--destroy-old",
        ],
    );
    assert!(e.contains("not yet in the config's seal.recipients"), "{e}");
    f.edit_config(&f.recipient, &new_pub);
    // A target that does not hold the re-sealed backup blocks it too.
    let text = std::fs::read_to_string(cfg).unwrap();
    let late = "[[target]]\nname = \"late\"\nkind = \"dir\"\npath = \"targets/late\"\n";
    std::fs::write(
        cfg,
        text.replacen("[escrow]", &format!("{late}[escrow]"), 1),
    )
    .unwrap();
    let e = err(
        cfg,
        &[
            "keys",
            "rotate",
            "age-identity",
            "backup-id",
            "--destroy-old",
        ],
    );
    assert!(
        e.contains("target late does not hold the re-sealed backup"),
        "{e}"
    );
    std::fs::write(cfg, text).unwrap();
    let out = bao::cli_ok(
        cfg,
        &[
            "keys",
            "rotate",
            "age-identity",
            "backup-id",
            "--destroy-old",
        ],
    );
    assert!(out.contains("destroyed versions [1]"), "{out}");
    bao::cli_ok(cfg, &["audit", "verify"]);
    // The next backup from LND is sealed to the new set as well.
    f.sim.open_channel();
    bao::cli_ok(cfg, &["backup", "--once"]);
    let next = std::fs::read(&current).unwrap();
    assert!(opens(&new_id, &next).is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_refuses_before_writing_when_the_old_identity_does_not_open_the_backup() {
    let bao = Bao::start();
    let f = Fixture::new().await;
    f.sim.open_channels(2);
    let token = bao.token_file("root.token", &bao.root_token);
    f.write_config(&format!(
        "[escrow]\naddress = \"{}\"\ntoken_file = \"{}\"\n",
        bao.addr(),
        token.display()
    ));
    let cfg = &f.config;
    bao::cli_ok(cfg, &["backup", "--once"]);
    let stranger = f.path().join("stranger.txt");
    chanvault::seal::write_new_identity(&stranger).unwrap();
    let e = err(
        cfg,
        &[
            "keys",
            "rotate",
            "age-identity",
            "backup-id",
            "--identity",
            stranger.to_str().unwrap(),
        ],
    );
    assert!(e.contains("cannot open the newest good backup"), "{e}");
    assert!(e.contains("pass --identity FILE"), "{e}");
    // Nothing was stored in OpenBao.
    let e = err(cfg, &["keys", "history", "backup-id"]);
    assert!(e.contains("not in the escrow"), "{e}");
    // Without any old identity at all: refused too.
    let e = err(cfg, &["keys", "rotate", "age-identity", "backup-id"]);
    assert!(e.contains("pass --identity FILE"), "{e}");
    // With the right one it works (first rotation of a new item).
    let g = f.identity.display().to_string();
    let out = bao::cli_ok(
        cfg,
        &[
            "keys",
            "rotate",
            "age-identity",
            "backup-id",
            "--identity",
            &g,
        ],
    );
    assert!(out.contains("✓ pbs: delivered"), "{out}");
    assert!(out.contains("[seal] recipients: add"), "{out}");
}
