//! Golden help texts of the escrow commands (`keys`, `audit`).
//! Regenerate with `CHANVAULT_BLESS=1 cargo test --test suite escrow_cli::`.

use crate::common::golden;
use std::process::Command;

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
