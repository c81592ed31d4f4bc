//! SECURITY.md is a list of promises: a claim the code does not keep is a
//! vulnerability (its own words). These tests hold the claims that were
//! found stale against the code they are about, and check that every file
//! and test it cites as proof exists.

use std::path::Path;

fn security_md() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("SECURITY.md")).unwrap()
}

/// The binary calls `set_non_dumpable` first thing: SECURITY.md must say
/// so, not list it as missing.
#[test]
fn security_md_says_the_process_is_non_dumpable() {
    let main =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/main.rs")).unwrap();
    assert!(main.contains("set_non_dumpable()"), "src/main.rs changed");
    let doc = security_md();
    assert!(
        !doc.contains("does not make itself non-dumpable"),
        "SECURITY.md says PR_SET_DUMPABLE is not set, but src/main.rs sets it"
    );
    assert!(doc.contains("PR_SET_DUMPABLE 0"), "not documented");
}

/// Manifests and the journal carry `Recipients::public_keys`, which drop an
/// SSH key's comment: SECURITY.md must not say the comment leaks.
#[test]
fn security_md_says_ssh_comments_do_not_reach_manifests() {
    let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN4PfomZOLox3KToigxNV25fsMM+px0qdMTBrydhDcHp \
                you@laptop";
    let r = chanvault::seal::Recipients::from_config(&[line.to_owned()], &[]).unwrap();
    assert!(!r.public_keys()[0].contains("you@laptop"), "{r:?}");
    let doc = security_md();
    assert!(
        !doc.contains("including an SSH key's comment"),
        "SECURITY.md says SSH comments reach the manifest, but they are dropped"
    );
    assert!(doc.contains("without their comment"), "not documented");
}

/// Every `src/…` and `tests/…` path SECURITY.md cites exists, and every
/// test it names by name is a test.
#[test]
fn what_security_md_cites_as_proof_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = security_md();
    let mut all_tests = String::new();
    for dir in ["src", "tests/suite"] {
        collect_rs(&root.join(dir), &mut all_tests);
    }
    for cited in doc.split('`').skip(1).step_by(2) {
        if cited.starts_with("src/") || cited.starts_with("tests/") || cited.starts_with("contrib/")
        {
            assert!(root.join(cited).exists(), "SECURITY.md cites {cited}");
        } else if let Some(prefix) = cited.strip_suffix('*') {
            assert!(
                all_tests.contains(&format!("fn {prefix}")),
                "SECURITY.md cites {cited}"
            );
        } else if cited.contains("_is_") || cited.starts_with("the_") {
            assert!(
                all_tests.contains(&format!("fn {cited}(")),
                "SECURITY.md cites {cited}"
            );
        }
    }
}

fn collect_rs(dir: &Path, out: &mut String) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
}
