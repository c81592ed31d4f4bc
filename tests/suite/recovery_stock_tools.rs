//! docs/recovery.md's script, run verbatim with stock tools only (restic,
//! age, the real OpenBao `bao`) on what chanvault wrote, with the escrowed
//! identity envelope-sealed. The recovered channel.backup must equal the SCB
//! chanvault sealed, byte for byte. `lncli` is not installable here: the
//! script's `lncli` line is the only one not run.

use crate::common::bao;
use crate::common::text;
use std::process::{Command, Stdio};

use crate::common::Fixture;
use chanvault::config::TargetConfig;
use chanvault::sink::restic::ResticTarget;

/// The shell block between the recovery-script markers of docs/recovery.md.
fn doc_script() -> String {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/recovery.md"),
    )
    .unwrap();
    let start = doc.find("<!-- recovery-script:begin -->").unwrap();
    let end = doc.find("<!-- recovery-script:end -->").unwrap();
    let block = &doc[start..end];
    let body_start = block.find("```sh\n").unwrap() + 6;
    let body_end = block.rfind("```").unwrap();
    block[body_start..body_end].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_stock_tools_path_recovers_the_exact_scb() {
    let f = Fixture::new().await;
    let bao = tokio::task::spawn_blocking(bao::Bao::start).await.unwrap();
    let (offline_text, offline_pub) = chanvault::seal::generate_identity();
    let offline = f.path().join("offline.txt");
    chanvault::fsutil::create_secret_file(&offline, offline_text.expose().as_bytes()).unwrap();
    let pw = f.path().join("restic-password");
    std::fs::write(&pw, "pw-stock-1\n").unwrap();
    let token = bao.token_file("root.token", &bao.root_token);
    f.write_config(&format!(
        "[[target]]\nname = \"repo\"\nkind = \"restic\"\nrepository = \"targets/restic\"\n\
         password_file = \"restic-password\"\n[escrow]\naddress = \"{}\"\ntoken_file = \"{}\"\n\
         seal_recipients = [\"{offline_pub}\"]\n",
        bao.addr(),
        token.display()
    ));
    let cfg = f.load();
    let Some(TargetConfig::Restic(r)) = cfg.targets.iter().find(|t| t.name() == "repo") else {
        panic!("no restic target");
    };
    chanvault::sink::unblock(&ResticTarget::new(r), ResticTarget::init_blocking)
        .await
        .unwrap();
    f.sim.open_channels(3);
    let (config, identity) = (f.config.clone(), f.identity.clone());
    let outs = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_chanvault"))
                .args(args)
                .arg("--config")
                .arg(&config)
                .env_remove("RUST_LOG")
                .env_remove("BAO_ADDR")
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        vec![
            run(&[
                "keys",
                "put",
                "age-identity",
                "backup-identity",
                "--file",
                identity.to_str().unwrap(),
            ]),
            run(&["backup", "--once"]),
        ]
    })
    .await
    .unwrap();
    for o in &outs {
        assert_eq!(o.status.code(), Some(0), "{}", text(o));
    }

    // The SCB chanvault sealed: the spool's last good backup, opened with the identity.
    let journal = chanvault::spool::parse_journal(
        &std::fs::read(f.path().join("state/journal.json")).unwrap(),
    )
    .unwrap();
    let rec = journal.last_good().unwrap().clone();
    let sealed = std::fs::read(f.path().join(format!("state/backups/{}.age", rec.id))).unwrap();
    let ids = chanvault::seal::Identities::from_file(&f.identity).unwrap();
    let original = chanvault::seal::open(&ids, &sealed).unwrap();
    assert_eq!(
        chanvault::scb::sha256_hex(original.expose()),
        rec.blob_sha256
    );

    // The script, minus the lncli line (no lncli binary can be installed here).
    let script = doc_script();
    let lncli: Vec<&str> = script.lines().filter(|l| l.starts_with("lncli ")).collect();
    assert_eq!(lncli.len(), 1, "{script}");
    let runnable: String = script
        .lines()
        .filter(|l| !l.starts_with("lncli "))
        .map(|l| format!("{l}\n"))
        .collect();
    let work = f.path().join("recovery");
    let home = f.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let bao_dir = bao::bao_binary().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bao_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::task::spawn_blocking({
        let (bao_addr, bao_token) = (bao.addr(), bao.root_token.clone());
        let repo = f.path().join("targets/restic");
        let dir_target = f.target_dir("pbs");
        let (offline, pw, work, home) = (offline.clone(), pw.clone(), work.clone(), home.clone());
        let runnable = runnable.clone();
        move || {
            Command::new("sh")
                .arg("-eu")
                .arg("-c")
                .arg(&runnable)
                .env_clear()
                .env("PATH", path)
                .env("HOME", &home)
                .env("XDG_CACHE_HOME", home.join("cache"))
                .env("BAO_ADDR", bao_addr)
                .env("BAO_TOKEN", bao_token)
                .env("MOUNT", "secret")
                .env("PREFIX", "chanvault")
                .env("ITEM", "backup-identity")
                .env("OFFLINE_IDENTITY", &offline)
                .env("RESTIC_REPOSITORY", &repo)
                .env("RESTIC_PASSWORD_FILE", &pw)
                .env("DIR_TARGET", &dir_target)
                .env("WORK", &work)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}\n{runnable}", text(&out));

    for file in ["channel.backup", "channel-from-dir.backup"] {
        let got = std::fs::read(work.join(file)).unwrap();
        assert_eq!(got, original.expose(), "{file} differs from the sealed SCB");
        assert_eq!(f.sim.decode_multi(&got).unwrap(), f.sim.channels());
    }
    // The escrowed identity never reached OpenBao in clear.
    let raw = bao.bao_ok(&[
        "kv",
        "get",
        "-format=json",
        "-mount=secret",
        "chanvault/backup-identity",
    ]);
    assert!(!raw.contains("AGE-SECRET-KEY-1"), "{raw}");
}
