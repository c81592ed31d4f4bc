//! `verify --drill` writes a plaintext `channel.backup` the way a
//! stranger's restore would: into a 0700 dir under this user's 0700
//! `$TMPDIR/chanvault-<uid>`, removed afterwards; what a drill killed
//! outright left behind is swept by the next one; a parent that is not a
//! private dir of this user is refused with one line that names it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;

use crate::common::{Fixture, bin, names, text};

async fn verify_drill(f: &Fixture, tmpdir: &Path) -> Output {
    let args: Vec<String> = [
        "verify",
        "--drill",
        "--identity",
        &f.identity.display().to_string(),
        "--config",
        &f.config.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let tmpdir = tmpdir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        bin()
            .args(&args)
            .env("TMPDIR", tmpdir)
            .output()
            .expect("binary runs")
    })
    .await
    .expect("join")
}

/// A pid that ran and has ended.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drill_dir_is_private_removed_and_swept() {
    let f = Fixture::new().await;
    f.sim.open_channels(2);
    let o = crate::common::run(
        [
            "backup",
            "--once",
            "--config",
            &f.config.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let tmp = f.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let uid = std::fs::metadata(&tmp).unwrap().uid();
    // A parent left 0755 (by hand, or by an older chanvault's mkdir).
    let parent = tmp.join(format!("chanvault-{uid}"));
    std::fs::create_dir(&parent).unwrap();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    // What a SIGKILLed drill left: in the parent, and directly in $TMPDIR
    // (where earlier versions made drill dirs).
    let dead = dead_pid();
    for d in [
        parent.join(format!("chanvault-drill-{dead}-00aa11bb22cc")),
        tmp.join(format!("chanvault-drill-{dead}-33dd44ee55ff")),
    ] {
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("channel.backup"), b"plaintext of a killed drill").unwrap();
    }

    let o = verify_drill(&f, &tmp).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.contains("drill") && l.contains('✓')),
        "{}",
        text(&o)
    );
    let mode = std::fs::metadata(&parent).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the drill's parent dir was left {mode:03o}");
    assert_eq!(names(&tmp), [format!("chanvault-{uid}")], "{}", text(&o));
    assert!(names(&parent).is_empty(), "{:?}", names(&parent));

    // A parent that is not a directory: the drill fails with one line that
    // names it, and writes no plaintext anywhere.
    let tmp2 = f.path().join("tmp2");
    std::fs::create_dir(&tmp2).unwrap();
    let not_dir = tmp2.join(format!("chanvault-{uid}"));
    std::fs::write(&not_dir, b"").unwrap();
    let o = verify_drill(&f, &tmp2).await;
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(&not_dir.display().to_string()))
        .collect();
    assert_eq!(lines.len(), 1, "{}", text(&o));
    assert!(lines[0].contains("not a directory"), "{}", text(&o));
    assert_eq!(names(&tmp2), [format!("chanvault-{uid}")], "{}", text(&o));
}
