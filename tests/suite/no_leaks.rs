//! Issue 13 §4: secrets and metadata that leave the host. Plain `http://`
//! only to loopback, no proxy from the environment, an OpenBao address from
//! the environment said out loud, and no channel point in anything a target
//! or a log receives. Everything here talks to 127.0.0.1 only.

use std::path::Path;
use std::process::Output;

use crate::common::bao::Bao;
use crate::common::{Fixture, Watch, bin, eventually, run, text};

/// `http://127.0.0.1:PORT` where nothing listens: a proxy that, if used,
/// fails every request.
fn dead_proxy() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// The chanvault binary with every proxy variable pointing at a dead port.
fn bin_behind_dead_proxy() -> std::process::Command {
    let proxy = dead_proxy();
    let mut c = bin();
    for v in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        c.env(v, &proxy);
    }
    c.env_remove("NO_PROXY").env_remove("no_proxy");
    c
}

/// A config whose `[escrow]` names only the token file (no address).
fn escrow_config(dir: &Path, bao: &Bao, address: Option<&str>) -> std::path::PathBuf {
    let token = bao.token_file("root.token", &bao.root_token);
    let config = dir.join("chanvault.toml");
    let address = address.map_or(String::new(), |a| format!("address = \"{a}\"\n"));
    std::fs::write(
        &config,
        format!(
            "state_dir = \"state\"\n[lnd]\naddress = \"127.0.0.1:10009\"\ntls_cert = \"tls.cert\"\n\
             macaroon = \"m.macaroon\"\n[seal]\nrecipients = [\"{r}\"]\n[escrow]\n{address}token_file = \"{t}\"\n",
            r = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
            t = token.display()
        ),
    )
    .unwrap();
    config
}

fn keys_list(config: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = bin_behind_dead_proxy();
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(["keys", "list", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn an_openbao_address_from_the_environment_is_named_and_checked() {
    let bao = Bao::start();
    let dir = tempfile::tempdir().unwrap();
    let config = escrow_config(dir.path(), &bao, None);

    // BAO_ADDR is used, said once, and the dead proxy is not.
    let out = keys_list(&config, &[("BAO_ADDR", &bao.addr())]);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("from BAO_ADDR"))
        .collect();
    assert_eq!(said.len(), 1, "{}", text(&out));
    assert!(said[0].contains(&bao.addr()), "{}", said[0]);

    // VAULT_ADDR when BAO_ADDR is unset, named as such.
    let out = keys_list(&config, &[("VAULT_ADDR", &bao.addr())]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("from VAULT_ADDR"),
        "{}",
        text(&out)
    );

    // A plain-http address beyond loopback from the environment: refused,
    // one line naming the variable, nothing sent.
    let out = keys_list(&config, &[("BAO_ADDR", "http://bao.example:8200")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{}", text(&out));
    assert!(
        lines[0].contains("BAO_ADDR") && lines[0].contains("in clear"),
        "{}",
        lines[0]
    );

    // escrow.address set: the environment is not consulted, nothing said.
    let config = escrow_config(dir.path(), &bao, Some(&bao.addr()));
    let out = keys_list(&config, &[("BAO_ADDR", "http://bao.example:8200")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("BAO_ADDR"),
        "{}",
        text(&out)
    );
}

/// Every file under `dir`, as text (binary files lossily).
fn all_files_text(dir: &Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let t = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                out.push((p, t));
            }
        }
    }
    out
}

#[tokio::test]
async fn channel_points_of_a_suspect_backup_stay_in_the_local_journal() {
    let f = Fixture::new().await;
    std::fs::write(f.path().join("restic-password"), "pw-no-leaks\n").unwrap();
    f.write_config(
        "[[target]]\nname = \"offsite\"\nkind = \"restic\"\nrepository = \"repos/offsite\"\npassword_file = \"restic-password\"\n",
    );
    let out = run(vec![
        "target".into(),
        "init".into(),
        "offsite".into(),
        "--config".into(),
        f.config.display().to_string(),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let cps: Vec<String> = f
        .sim
        .open_channels(3)
        .iter()
        .map(ToString::to_string)
        .collect();

    let watch = Watch::start_at(&f, "trace");
    f.wait_current("pbs", "the good backup on pbs", 20).await;
    assert_eq!(f.sim.lose_channel_db(), 3);
    watch
        .wait_log("the suspect backup", |l| l.contains("SUSPECT"))
        .await;
    let history = f.target_dir("pbs").join("history");
    eventually("the suspect backup in pbs/history", 20, || {
        std::fs::read_dir(&history).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with("-suspect.json"))
        })
    })
    .await;
    let log = watch.log();
    assert!(watch.stop().await.success());

    // What left the host (or would, through a log shipper) says a count.
    let mut published = all_files_text(&f.target_dir("pbs"));
    let suspect_manifest = published
        .iter()
        .find(|(p, _)| p.to_string_lossy().ends_with("-suspect.json"))
        .map(|(_, t)| t.clone())
        .unwrap();
    assert!(
        suspect_manifest.contains("3 channel(s) of the last good backup are missing"),
        "{suspect_manifest}"
    );
    published.push(("watch log".into(), log));
    let repo = f.path().join("repos/offsite");
    let snapshots = std::process::Command::new("restic")
        .args(["--no-cache", "--json", "snapshots", "-r"])
        .arg(&repo)
        .arg("--password-file")
        .arg(f.path().join("restic-password"))
        .output()
        .expect("restic runs");
    assert!(snapshots.status.success(), "{}", text(&snapshots));
    published.push((
        "restic snapshots --json".into(),
        String::from_utf8_lossy(&snapshots.stdout).into_owned(),
    ));
    published.extend(all_files_text(&repo));
    for cp in &cps {
        let txid = cp.split(':').next().unwrap();
        for (where_, t) in &published {
            assert!(!t.contains(txid), "{cp} in {}", where_.display());
        }
    }

    // The local journal still names them, for the operator.
    let journal = std::fs::read_to_string(f.path().join("state/journal.json")).unwrap();
    let j: serde_json::Value = serde_json::from_str(&journal).unwrap();
    let newest = j["backups"].as_array().unwrap().last().unwrap().clone();
    let kept: Vec<&str> = newest["suspect_channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(kept.len(), 3, "{newest}");
    for cp in &cps {
        assert!(kept.contains(&cp.as_str()), "{cp} not in {kept:?}");
    }
}

/// Every request to a `rest:` repository (probe, locks, and the repository
/// itself: config, keys, packs, index, snapshots) goes through chanvault's
/// own client, which ignores proxy variables: behind a dead proxy, `target
/// init` and a backup still reach the server. (rustic_backend's
/// `RestBackend`, used before, followed them.)
#[tokio::test]
async fn a_rest_target_ignores_proxy_variables() {
    let f = Fixture::new().await;
    let root = f.path().join("rest-root");
    std::fs::create_dir_all(&root).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut rclone = std::process::Command::new("rclone")
        .args(["serve", "restic", "--addr", &format!("127.0.0.1:{port}")])
        .arg(&root)
        .env("RCLONE_CONFIG", f.path().join("rclone.conf"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("rclone starts");
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed().as_secs() < 20, "rclone did not listen");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::fs::write(f.path().join("restic-password"), "pw-no-leaks\n").unwrap();
    f.write_config(&format!(
        "[[target]]\nname = \"offsite\"\nkind = \"restic\"\nrepository = \"rest:http://127.0.0.1:{port}/repo/\"\npassword_file = \"restic-password\"\ntimeout_seconds = 5\n"
    ));
    f.sim.open_channels(2);
    let config = f.config.clone();
    let run_behind = move |args: &[&str]| {
        bin_behind_dead_proxy()
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = tokio::task::spawn_blocking({
        let run_behind = run_behind.clone();
        move || run_behind(&["target", "init", "offsite"])
    })
    .await
    .unwrap();
    let once = tokio::task::spawn_blocking(move || run_behind(&["backup", "--once"]))
        .await
        .unwrap();
    let _ = rclone.kill();
    let _ = rclone.wait();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(once.status.code(), Some(0), "{}", text(&once));
}
