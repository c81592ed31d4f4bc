//! The Nix files (see `contrib.rs`): they parse, the package's source filter
//! keeps every source file, the module documents exactly the README table's
//! keys and lets the units write where chanvault writes.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::contrib::{ok, read, readme_config_keys, repo, tool};

// ---------------------------------------------------------------- Nix

#[test]
fn nix_files_parse() {
    let nix = tool("nix-instantiate", "nix-bin");
    let mut files = vec![];
    for e in std::fs::read_dir(repo().join("nix")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "nix") {
            files.push(p);
        }
    }
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let state = tempfile::tempdir().unwrap();
    for f in files {
        ok(
            &format!("nix-instantiate --parse {}", f.display()),
            Command::new(&nix)
                .arg("--parse")
                .arg(&f)
                // No daemon or store is needed to parse; keep it away from /nix.
                .env("NIX_STATE_DIR", state.path())
                .env("NIX_REMOTE", "")
                .output()
                .unwrap(),
        );
    }
}

/// The package's source filter keeps every file the build needs. It once
/// dropped any path containing "/target", which took `src/target/` with it:
/// the package could not build and parsing the file did not notice.
#[test]
fn nix_source_filter_keeps_every_source_file() {
    let nix = tool("nix-instantiate", "nix-bin");
    assert!(
        read("nix/package.nix").contains("filter = import ./source-filter.nix"),
        "nix/package.nix must take its source filter from nix/source-filter.nix (tested here)"
    );
    let files = ok(
        "git ls-files",
        Command::new("git")
            .args(["ls-files"])
            .current_dir(repo())
            .output()
            .unwrap(),
    );
    let files: Vec<String> = String::from_utf8(files.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(files.iter().any(|f| f == "src/main.rs"), "{files:?}");
    // Every tracked file and every folder above one, as the filter sees them.
    let mut asked: BTreeSet<(String, &str)> = BTreeSet::new();
    for f in &files {
        asked.insert((f.clone(), "regular"));
        let mut dir = Path::new(f).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            asked.insert((d.display().to_string(), "directory"));
            dir = d.parent();
        }
    }
    // Output folders, and a source folder named like one (the old bug).
    for (p, t) in [
        ("target", "directory"),
        ("target/debug/chanvault", "regular"),
        ("fuzz/target/x", "regular"),
        ("src/target", "directory"),
        ("src/target/mod.rs", "regular"),
    ] {
        asked.insert((p.to_string(), t));
    }
    let asked: Vec<(String, &str)> = asked.into_iter().collect();
    let list = serde_json::to_string(
        &asked
            .iter()
            .map(|(p, t)| serde_json::json!({"p": p, "t": t}))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let list_file = state.path().join("paths.json");
    std::fs::write(&list_file, list).unwrap();
    let root = repo();
    let expr = format!(
        "let root = {root}; f = import {root}/nix/source-filter.nix {{ inherit root; }}; \
         in map (x: f (root + \"/${{x.p}}\") x.t) (builtins.fromJSON (builtins.readFile {list}))",
        root = root.display(),
        list = list_file.display(),
    );
    let out = ok(
        "nix-instantiate --eval nix/source-filter.nix",
        Command::new(&nix)
            .args(["--eval", "--strict", "--json", "--expr", &expr])
            .env("NIX_STATE_DIR", state.path())
            .env("NIX_REMOTE", "")
            .output()
            .unwrap(),
    );
    let kept: Vec<bool> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(kept.len(), asked.len());
    let verdict: std::collections::BTreeMap<&str, bool> = asked
        .iter()
        .zip(&kept)
        .map(|((p, _), k)| (p.as_str(), *k))
        .collect();
    let needed = |p: &str| {
        p.starts_with("src/")
            || p.starts_with("proto/")
            || ["src", "proto", "Cargo.toml", "Cargo.lock", "build.rs"].contains(&p)
    };
    let dropped: Vec<&str> = verdict
        .iter()
        .filter(|(p, k)| needed(p) && !**k)
        .map(|(p, _)| *p)
        .collect();
    assert!(
        dropped.is_empty(),
        "nix/source-filter.nix drops {dropped:?}"
    );
    for p in ["src/target", "src/target/mod.rs"] {
        assert!(verdict[p], "{p} must be kept");
    }
    for p in ["target", "target/debug/chanvault", "fuzz/target/x"] {
        assert!(!verdict[p], "{p} must be dropped");
    }
}

/// The module lets the units write the state dir, every dir target and
/// every local restic repository (a local repository under
/// ProtectSystem=strict failed with EROFS), and nothing for a REST one.
#[test]
fn nix_module_makes_local_restic_repositories_writable() {
    let nix = tool("nix-instantiate", "nix-bin");
    assert!(
        read("nix/module.nix").contains("ReadWritePaths = readWritePaths;"),
        "nix/module.nix must take ReadWritePaths from nix/read-write-paths.nix (tested here)"
    );
    let expr = format!(
        r#"import {}/nix/read-write-paths.nix {{
            stateDirName = "chanvault";
            targets = [
              {{ name = "pbs"; kind = "dir"; path = "/srv/pbs-pickup/chanvault"; }}
              {{ name = "local"; kind = "restic"; repository = "/srv/restic/chanvault"; password_file = "pw"; }}
              {{ name = "rest"; kind = "restic"; repository = "rest:https://backup:8000/cv/"; password_file = "pw"; }}
            ];
          }}"#,
        repo().display()
    );
    let state = tempfile::tempdir().unwrap();
    let out = ok(
        "nix-instantiate --eval nix/read-write-paths.nix",
        Command::new(&nix)
            .args(["--eval", "--strict", "--json", "--expr", &expr])
            .env("NIX_STATE_DIR", state.path())
            .env("NIX_REMOTE", "")
            .output()
            .unwrap(),
    );
    let paths: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        paths,
        [
            "/var/lib/chanvault",
            "-/srv/pbs-pickup/chanvault",
            "-/srv/restic/chanvault"
        ]
    );
}

/// The keys in module.nix's `settingsKeys` list.
fn nix_module_keys() -> BTreeSet<String> {
    let text = read("nix/module.nix");
    let start = text
        .find("settingsKeys = [")
        .expect("module.nix has settingsKeys");
    let end = start + text[start..].find("];").expect("settingsKeys ends");
    text[start..end]
        .split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

#[test]
fn nix_module_documents_the_readme_tables_keys() {
    let module = nix_module_keys();
    let readme = readme_config_keys();
    let only_module: Vec<_> = module.difference(&readme).collect();
    let only_readme: Vec<_> = readme.difference(&module).collect();
    assert!(
        only_module.is_empty() && only_readme.is_empty(),
        "nix/module.nix settingsKeys but not in the README table: {only_module:?}; \
         README table but not in settingsKeys: {only_readme:?}"
    );
}
