//! `chanvault init` end to end: against the LND simulator's directory it
//! writes a config that `check-config` accepts and `backup --once` uses
//! (exit 0), an identity (0600) whose recipient is in the config, and it
//! refuses to overwrite either.

use crate::common::{bin, run};
use std::os::unix::fs::PermissionsExt;

use chanvault::sim::{SimOptions, Simulator};

fn s(p: &std::path::Path) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn init_non_interactive_against_the_simulator_gives_a_working_config() {
    let d = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimOptions::new(d.path().join("lnd")))
        .await
        .unwrap();
    sim.open_channels(2);
    let config = d.path().join("etc/chanvault.toml");
    let identity = d.path().join("keys/identity.txt");
    let target = d.path().join("pbs-pickup");
    let init = vec![
        "init".to_string(),
        "--non-interactive".into(),
        "--config".into(),
        s(&config),
        "--lnd-dir".into(),
        s(sim.dir()),
        "--lnd-address".into(),
        sim.address(),
        "--state-dir".into(),
        s(&d.path().join("state")),
        "--identity".into(),
        s(&identity),
        "--target-dir".into(),
        s(&target),
    ];
    let out = run(init.clone()).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The identity: 0600, its recipient printed and in the config.
    let mode = std::fs::metadata(&identity).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let id_text = std::fs::read_to_string(&identity).unwrap();
    let recipient = id_text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    assert!(stdout.contains(&recipient), "{stdout}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&recipient), "{text}");
    assert!(!text.contains("AGE-SECRET-KEY"), "{text}");
    assert!(
        text.contains(&s(&sim.offchain_read_macaroon_path())),
        "init picks the offchain:read macaroon: {text}"
    );
    // It tells the user what to do next, exactly.
    for next in [
        format!("chanvault check-config --config {}", s(&config)),
        format!("chanvault backup --once --config {}", s(&config)),
        "systemctl enable --now chanvault.service".to_string(),
        "offline recipient".to_string(),
    ] {
        assert!(stdout.contains(&next), "missing {next:?} in:\n{stdout}");
    }

    let out = run(vec!["check-config".into(), "--config".into(), s(&config)]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(vec![
        "backup".into(),
        "--once".into(),
        "--config".into(),
        s(&config),
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let delivered = chanvault::sink::dir::DirTarget::new("pbs-pickup", &target);
    let m = delivered.current_manifest().unwrap().expect("delivered");
    assert_eq!(m.channels, 2);

    // Never overwrites: the config, then (with a new config path) the identity.
    let out = run(init.clone()).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let mut again = init.clone();
    again[3] = s(&d.path().join("etc/other.toml"));
    let out = run(again).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("never overwrites an identity"), "{err}");
    assert!(!d.path().join("etc/other.toml").exists());
    assert_eq!(std::fs::read_to_string(&identity).unwrap(), id_text);
    sim.stop().await;
}

#[test]
fn init_without_lnd_says_where_it_looked() {
    let d = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["init", "--non-interactive", "--config"])
        .arg(d.path().join("c.toml"))
        .arg("--lnd-dir")
        .arg(d.path().join("nolnd"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no LND tls.cert found"), "{err}");
    assert!(!d.path().join("c.toml").exists());
}
