//! Golden help texts of the escrow commands (`keys`, `audit`).
//! Regenerate with `CHANVAULT_BLESS=1 cargo test --test escrow_cli`.

use std::path::PathBuf;
use std::process::Command;

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("CHANVAULT_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (CHANVAULT_BLESS=1 creates it)", path.display()));
    assert_eq!(
        actual, want,
        "golden {name} differs (CHANVAULT_BLESS=1 to update)"
    );
}

#[test]
fn escrow_help_texts_are_golden() {
    for argv in [
        vec!["keys"],
        vec!["keys", "put"],
        vec!["keys", "get"],
        vec!["keys", "list"],
        vec!["keys", "history"],
        vec!["keys", "verify"],
        vec!["keys", "export-public"],
        vec!["keys", "rotate"],
        vec!["keys", "rotate", "age-identity"],
        vec!["keys", "rotate", "approle"],
        vec!["keys", "reseal"],
        vec!["audit"],
        vec!["audit", "verify"],
        vec!["audit", "show"],
    ] {
        let mut args = argv.clone();
        args.push("--help");
        let out = Command::new(env!("CARGO_BIN_EXE_chanvault"))
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        let name = format!("help-{}.txt", argv.join("-"));
        golden(&name, &String::from_utf8(out.stdout).unwrap());
    }
}
