//! `watch` restarts itself once with glibc's allocator tunables when it was
//! started without `GLIBC_TUNABLES` (src/malloc_env.rs), and leaves a value
//! the user set alone. The restarted process says in its debug log what it
//! runs with.

use std::process::{Child, Command, Stdio};

use chanvault::malloc_env::{VALUE, VAR};

use crate::common::Fixture;

fn start(f: &Fixture, tunables: Option<&str>) -> (Child, std::path::PathBuf) {
    let log = f.path().join("watch.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chanvault"));
    cmd.args(["--log-level", "debug", "watch", "--config"])
        .arg(&f.config)
        .env_remove("RUST_LOG")
        .env_remove(VAR);
    if let Some(t) = tunables {
        cmd.env(VAR, t);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, log)
}

/// The allocator line of the log, once `watch` is connected; then stop it.
async fn allocator_line(f: &Fixture, tunables: Option<&str>) -> String {
    let (child, log) = start(f, tunables);
    crate::common::eventually("watch connected", 20, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("connected to LND"))
    })
    .await;
    let status = crate::common::terminate(child).await;
    // The pid the test started is the one that exits cleanly: exec, not a child.
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!("allocator: {VAR}")))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    lines[0].to_string()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[tokio::test]
async fn watch_started_without_tunables_runs_with_them() {
    let f = Fixture::new().await;
    let line = allocator_line(&f, None).await;
    assert!(line.contains(&format!("tunables={VALUE}")), "{line}");
}

#[tokio::test]
async fn a_value_the_user_set_is_kept() {
    let f = Fixture::new().await;
    let line = allocator_line(&f, Some("glibc.malloc.arena_max=1")).await;
    assert!(line.contains("tunables=glibc.malloc.arena_max=1"), "{line}");
    // Empty: glibc's defaults, no restart.
    let f = Fixture::new().await;
    let line = allocator_line(&f, Some("")).await;
    assert!(line.trim_end().ends_with("tunables="), "{line}");
}
