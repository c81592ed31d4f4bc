//! `chanvault restore` end to end with the real binary: the LND simulator, a
//! dir target and a local restic repository (real format, read back by
//! chanvault from scratch). The state dir is "lost" before restoring; every
//! failure class has its own exit code.

use crate::common::bin;
use crate::common::{golden, text};
use std::process::Output;

use crate::common::Fixture;
use chanvault::config::TargetConfig;
use chanvault::sink::restic::ResticTarget;

async fn run(f: &Fixture, argv: &[&str]) -> Output {
    let mut args: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    args.push("--config".into());
    args.push(f.config.display().to_string());
    tokio::task::spawn_blocking(move || bin().args(&args).output().expect("binary runs"))
        .await
        .expect("join")
}

/// The one `chanvault: error:` line of a failed run.
fn error_line(o: &Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("chanvault: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", text(o));
    errors[0].to_owned()
}

/// An error line with what changes from run to run (temp dir, LND's port,
/// backup ids, hashes) replaced by placeholders.
fn stable(f: &Fixture, line: &str) -> String {
    let line = line
        .replace(&f.path().display().to_string(), "$DIR")
        .replace(&format!(":{}", f.sim.addr().port()), ":$PORT");
    let mut out = String::new();
    let mut word = String::new();
    for c in line.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            word.push(c);
            continue;
        }
        if word.len() >= 8 && word.chars().any(|c| c.is_ascii_digit()) {
            out.push_str("$HEX");
        } else {
            out.push_str(&word);
        }
        word.clear();
        out.push(c);
    }
    out.pop();
    out
}

async fn setup() -> Fixture {
    let f = Fixture::new().await;
    std::fs::write(f.path().join("restic-password"), "pw-restore-1\n").unwrap();
    f.write_config(
        "[[target]]\nname = \"repo\"\nkind = \"restic\"\nrepository = \"targets/restic\"\npassword_file = \"restic-password\"\n",
    );
    f.edit_config(
        "timeout_seconds = 5\n",
        &format!(
            "timeout_seconds = 5\nrestore_macaroon = \"{}\"\n",
            f.sim.admin_macaroon_path().display()
        ),
    );
    let cfg = f.load();
    let Some(TargetConfig::Restic(r)) = cfg.targets.iter().find(|t| t.name() == "repo") else {
        panic!("no restic target");
    };
    chanvault::sink::unblock(&ResticTarget::new(r), ResticTarget::init_blocking)
        .await
        .unwrap();
    f
}

async fn backup(f: &Fixture) {
    let o = run(f, &["backup", "--once"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

fn out_path(f: &Fixture, name: &str) -> String {
    f.path().join(name).display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_after_losing_the_state_dir() {
    let f = setup().await;
    f.sim.open_channels(2);
    backup(&f).await;
    f.sim.open_channels(1);
    backup(&f).await;
    let channels = f.sim.channels();
    assert_eq!(channels.len(), 3);
    // The disk dies: the spool is gone.
    std::fs::remove_dir_all(f.path().join("state")).unwrap();

    // list: both backups, on both targets, newest first.
    let o = run(&f, &["restore", "list", "--json"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let backups = v["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2, "{v}");
    assert_eq!(backups[0]["channels"], 3);
    assert_eq!(backups[1]["channels"], 2);
    let held: std::collections::BTreeSet<&str> = backups[0]["held_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["target"].as_str().unwrap())
        .collect();
    assert_eq!(held.into_iter().collect::<Vec<_>>(), ["pbs", "repo"], "{v}");
    let o = run(&f, &["restore", "list"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("pbs, repo ("),
        "{}",
        text(&o)
    );

    // fetch latest from each target: the plain channel.backup, 0600, that LND reads.
    for target in ["pbs", "repo"] {
        let out = out_path(&f, &format!("channel-{target}.backup"));
        let id = f.identity.display().to_string();
        let o = run(
            &f,
            &[
                "restore",
                "fetch",
                "--target",
                target,
                "--identity",
                &id,
                "--out",
                &out,
            ],
        )
        .await;
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let stdout = String::from_utf8_lossy(&o.stdout);
        for cp in &channels {
            assert!(stdout.contains(&cp.to_string()), "{stdout}");
        }
        assert!(
            stdout.contains("every channel LND has now is in this backup"),
            "{stdout}"
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("fetching backup"),
            "{}",
            text(&o)
        );
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(f.sim.decode_multi(&bytes).unwrap(), channels);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Never overwrites.
        let o = run(
            &f,
            &[
                "restore",
                "fetch",
                "--target",
                target,
                "--identity",
                &id,
                "--out",
                &out,
            ],
        )
        .await;
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(error_line(&o).contains("already exists"), "{}", text(&o));
    }

    // An older backup by id, and a channel LND has that it lacks.
    let older = backups[1]["id"].as_str().unwrap()[..12].to_owned();
    let out = out_path(&f, "older.backup");
    let id = f.identity.display().to_string();
    let o = run(
        &f,
        &[
            "restore",
            "fetch",
            "--backup",
            &older,
            "--identity",
            &id,
            "--out",
            &out,
            "--json",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["lnd"]["missing"].as_array().unwrap().len(), 1, "{v}");

    // apply: refuses without a terminal and without --yes.
    let o = run(&f, &["restore", "apply", "--identity", &id]).await;
    assert_eq!(o.status.code(), Some(15), "{}", text(&o));
    assert!(error_line(&o).contains("--yes"), "{}", text(&o));
    assert!(f.sim.restored().is_empty());

    // The node lost its channel.db: apply restores every channel.
    f.sim.lose_channel_db();
    let o = run(&f, &["restore", "apply", "--identity", &id, "--yes"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("LND restored 3 channel(s)"), "{stdout}");
    assert!(stdout.contains("force-close"), "{stdout}");
    assert_eq!(f.sim.restored(), channels);
    assert!(
        !f.path().join("state").join("journal.json").exists(),
        "restore must not create a spool"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_has_its_own_exit_code() {
    let f = setup().await;
    let id = f.identity.display().to_string();
    // Every error line a user sees here, kept as tests/golden/restore-errors.txt.
    let mut seen = String::new();
    let mut golden_line = |o: &Output| {
        seen += &format!(
            "exit {:?}: {}\n",
            o.status.code(),
            stable(&f, &error_line(o))
        );
    };

    // No backups yet.
    let o = run(
        &f,
        &[
            "restore",
            "fetch",
            "--identity",
            &id,
            "--out",
            &out_path(&f, "x"),
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(13), "{}", text(&o));
    golden_line(&o);
    error_line(&o);

    f.sim.open_channels(2);
    backup(&f).await;

    // Wrong identity.
    let other = f.path().join("other.txt");
    chanvault::seal::write_new_identity(&other).unwrap();
    let o = run(
        &f,
        &[
            "restore",
            "fetch",
            "--identity",
            other.to_str().unwrap(),
            "--out",
            &out_path(&f, "w"),
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(10), "{}", text(&o));
    golden_line(&o);
    assert!(error_line(&o).contains("no identity"), "{}", text(&o));
    assert!(!f.path().join("w").exists());

    // A passphrase-protected identity file needs a terminal to ask on.
    let locked = f.path().join("identity.age");
    {
        use std::io::Write;
        let enc = age::Encryptor::with_user_passphrase(age::secrecy::SecretString::from(
            "correct horse".to_owned(),
        ));
        let mut buf = Vec::new();
        let mut w = enc.wrap_output(&mut buf).unwrap();
        w.write_all(&std::fs::read(&f.identity).unwrap()).unwrap();
        w.finish().unwrap();
        std::fs::write(&locked, buf).unwrap();
    }
    let o = run(
        &f,
        &[
            "restore",
            "fetch",
            "--identity",
            locked.to_str().unwrap(),
            "--out",
            &out_path(&f, "p"),
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    golden_line(&o);
    assert!(
        error_line(&o).contains("passphrase-protected"),
        "{}",
        text(&o)
    );

    // Tampered ciphertext on the dir target.
    let cur = f.target_dir("pbs").join("channel.backup.age");
    let mut bytes = std::fs::read(&cur).unwrap();
    let n = bytes.len() - 20;
    bytes[n] ^= 1;
    std::fs::write(&cur, &bytes).unwrap();
    let hist: Vec<_> = std::fs::read_dir(f.target_dir("pbs").join("history"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "age"))
        .collect();
    for h in &hist {
        std::fs::write(h, &bytes).unwrap();
    }
    let o = run(
        &f,
        &[
            "restore",
            "fetch",
            "--target",
            "pbs",
            "--identity",
            &id,
            "--out",
            &out_path(&f, "t"),
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(11), "{}", text(&o));
    golden_line(&o);
    assert!(
        error_line(&o).contains("changed or damaged"),
        "{}",
        text(&o)
    );
    // Without --target the intact restic copy is used.
    let o = run(
        &f,
        &[
            "restore",
            "fetch",
            "--identity",
            &id,
            "--out",
            &out_path(&f, "ok"),
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Target unreachable.
    std::fs::rename(f.target_dir("pbs"), f.path().join("pbs-away")).unwrap();
    let o = run(
        &f,
        &[
            "restore",
            "fetch",
            "--target",
            "pbs",
            "--identity",
            &id,
            "--out",
            &out_path(&f, "u"),
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(12), "{}", text(&o));
    golden_line(&o);
    assert!(
        error_line(&o).contains("is the share mounted"),
        "{}",
        text(&o)
    );

    // LND refuses the backup.
    f.sim.fail_next(
        "VerifyChanBackup",
        tonic::Status::unknown("invalid multi channel backup: unable to decrypt"),
    );
    let o = run(&f, &["restore", "apply", "--identity", &id, "--yes"]).await;
    assert_eq!(o.status.code(), Some(14), "{}", text(&o));
    golden_line(&o);
    assert!(error_line(&o).contains("refused"), "{}", text(&o));

    // LND unreachable: fetch still works and says so.
    f.sim.stop().await;
    let o = run(
        &f,
        &[
            "restore",
            "fetch",
            "--identity",
            &id,
            "--out",
            &out_path(&f, "down"),
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("LND is unreachable"),
        "{}",
        text(&o)
    );
    golden("restore-errors.txt", &seen);
}

/// RUSTSEC-2023-0071 (Marvin) is about RSA *decryption*: `restore fetch`
/// refuses an ssh-rsa identity with one line that names the file and says
/// what to use instead, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_rsa_identity_is_refused_for_restore() {
    let f = setup().await;
    f.sim.open_channels(1);
    backup(&f).await;
    let key = f.path().join("id_rsa");
    let made = match std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&key)
        .output()
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "NOTICE: ssh-keygen not found, skipping this test (apt-get install openssh-client)"
            );
            return;
        }
        other => other.expect("ssh-keygen runs"),
    };
    assert!(made.status.success(), "{}", text(&made));
    let out = f.path().join("rsa.backup");
    let o = run(
        &f,
        &[
            "restore",
            "fetch",
            "--identity",
            key.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await;
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let line = error_line(&o);
    for needle in [
        key.display().to_string().as_str(),
        "ssh-rsa",
        "RUSTSEC-2023-0071",
        "use an age X25519 identity",
        "ssh-ed25519",
    ] {
        assert!(line.contains(needle), "{needle}: {}", text(&o));
    }
    assert!(!out.exists());
}
