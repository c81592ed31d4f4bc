//! `restore list` and `restore fetch` with the node's backup key
//! (`[lnd] backup_key_file`): what is inside each backup, read by chanvault
//! itself, and which channels one backup has that another lacks, on a dir
//! target and a local restic repository. Without a key, or without an
//! identity, the output is what it always was.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;

use crate::common::{Fixture, run, text};
use crate::lnd_sim_wallet::peers;
use chanvault::config::TargetConfig;
use chanvault::scb::ChanPoint;
use chanvault::sink::restic::ResticTarget;

async fn cv(f: &Fixture, argv: &[&str]) -> Output {
    let mut args: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    args.push("--config".into());
    args.push(f.config.display().to_string());
    let o = run(args).await;
    assert_eq!(o.status.code(), Some(0), "{argv:?}: {}", text(&o));
    o
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// The channel points of a JSON list of `{chan_point, peer}`, with the peers.
fn changed(v: &serde_json::Value) -> BTreeMap<String, String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|c| {
            (
                c["chan_point"].as_str().unwrap().to_owned(),
                c["peer"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn only(all: &BTreeMap<String, String>, points: &[ChanPoint]) -> BTreeMap<String, String> {
    points
        .iter()
        .map(|p| (p.to_string(), all[&p.to_string()].clone()))
        .collect()
}

async fn setup() -> Fixture {
    let f = Fixture::new().await;
    std::fs::write(f.path().join("restic-password"), "pw-contents-1\n").unwrap();
    f.write_config(
        "[[target]]\nname = \"repo\"\nkind = \"restic\"\nrepository = \"targets/restic\"\npassword_file = \"restic-password\"\n",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_fetch_show_the_channels_added_and_removed() {
    let f = setup().await;
    let first = f.sim.open_channels(3);
    f.backup_once();
    // Peers of every channel there ever was (a closed one leaves ListChannels).
    let mut all: BTreeMap<String, String> = BTreeMap::new();
    let mut note = |m: BTreeMap<ChanPoint, String>| {
        all.extend(m.into_iter().map(|(cp, p)| (cp.to_string(), p)));
    };
    note(peers(&f.sim).await);
    assert!(f.sim.close_channel(&first[0]));
    let opened = f.sim.open_channels(2);
    f.backup_once();
    note(peers(&f.sim).await);
    let id = f.identity.display().to_string();

    // No key: the listing is what it was, text and JSON.
    let plain = stdout(&cv(&f, &["restore", "list"]).await);
    assert_eq!(plain.lines().count(), 3, "{plain}");
    assert!(!plain.contains("channel(s) with"), "{plain}");
    let v = json(&cv(&f, &["restore", "list", "--json"]).await);
    assert!(v["backups"][0].get("inside").is_none(), "{v}");
    assert!(v.get("read_with").is_none(), "{v}");
    let older_id = v["backups"][1]["id"].as_str().unwrap().to_owned();
    let newer_id = v["backups"][0]["id"].as_str().unwrap().to_owned();

    // A key but no identity: the same stdout, and a hint on stderr.
    chanvault::fsutil::create_secret_file(
        &f.path().join("node.xpub"),
        format!("{}\n", f.sim.backup_account_xpub()).as_bytes(),
    )
    .unwrap();
    f.edit_config(
        "reconnect_max_seconds = 1\n",
        "reconnect_max_seconds = 1\nbackup_key_file = \"node.xpub\"\n",
    );
    let o = cv(&f, &["restore", "list"]).await;
    assert_eq!(stdout(&o), plain);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--identity FILE"),
        "{}",
        text(&o)
    );

    // Key and identity: each backup with what is inside, per target.
    for target in ["pbs", "repo"] {
        let v = json(
            &cv(
                &f,
                &[
                    "restore",
                    "list",
                    "--target",
                    target,
                    "--identity",
                    &id,
                    "--json",
                ],
            )
            .await,
        );
        let backups = v["backups"].as_array().unwrap();
        assert_eq!(backups.len(), 2, "{v}");
        let inside = |b: &serde_json::Value| changed(&b["inside"]["channels"]);
        assert_eq!(
            inside(&backups[0]).keys().cloned().collect::<BTreeSet<_>>(),
            f.sim.channels().iter().map(ToString::to_string).collect(),
            "{v}"
        );
        assert_eq!(
            inside(&backups[0]),
            only(&all, &f.sim.channels().into_iter().collect::<Vec<_>>())
        );
        assert_eq!(inside(&backups[1]), only(&all, &first), "{v}");
        let c = &backups[0]["changes"];
        assert_eq!(c["target"], target, "{v}");
        assert_eq!(
            c["from"].as_str().unwrap(),
            older_id.get(..c["from"].as_str().unwrap().len()).unwrap()
        );
        assert_eq!(changed(&c["added"]), only(&all, &opened), "{v}");
        assert_eq!(changed(&c["removed"]), only(&all, &first[..1]), "{v}");
        assert!(backups[1].get("changes").is_none(), "the oldest: {v}");
        assert!(
            v["read_with"]
                .as_str()
                .unwrap()
                .contains("lnd.backup_key_file"),
            "{v}"
        );
    }

    // The text: a count line under each backup; --verbose names the channels.
    let text_out = stdout(&cv(&f, &["restore", "list", "--identity", &id]).await);
    let lines: Vec<&str> = text_out.lines().collect();
    assert!(
        lines[0].starts_with("what is inside: read with backup key "),
        "{text_out}"
    );
    assert_eq!(lines.len(), 1 + 1 + 2 * 2, "{text_out}");
    let peer_count = |points: &[ChanPoint]| {
        let set: BTreeSet<&String> = points.iter().map(|p| &all[&p.to_string()]).collect();
        set.len()
    };
    let now: Vec<ChanPoint> = f.sim.channels().into_iter().collect();
    assert_eq!(
        lines[3].trim(),
        format!(
            "4 channel(s) with {} peer(s); +2 -1 since {} on pbs",
            peer_count(&now),
            &older_id[..12]
        ),
        "{text_out}"
    );
    assert_eq!(
        lines[5].trim(),
        format!("3 channel(s) with {} peer(s)", peer_count(&first)),
        "{text_out}"
    );
    let verbose = stdout(&cv(&f, &["restore", "list", "--identity", &id, "--verbose"]).await);
    for cp in &opened {
        let want = format!("+ {cp}  peer {}", all[&cp.to_string()]);
        assert!(
            verbose.lines().any(|l| l.trim() == want),
            "{want}: {verbose}"
        );
    }
    let want = format!("- {}  peer {}", first[0], all[&first[0].to_string()]);
    assert!(
        verbose.lines().any(|l| l.trim() == want),
        "{want}: {verbose}"
    );
    assert_eq!(verbose.lines().count(), lines.len() + 3, "{verbose}");

    // fetch an older backup: what the newest has that it lacks, and the reverse.
    let older = &older_id[..12];
    for target in ["pbs", "repo"] {
        let out = f.path().join(format!("older-{target}.backup"));
        let o = cv(
            &f,
            &[
                "restore",
                "fetch",
                "--target",
                target,
                "--backup",
                older,
                "--identity",
                &id,
                "--out",
                out.to_str().unwrap(),
                "--json",
            ],
        )
        .await;
        let v = json(&o);
        let c = &v["changes_to_newest"];
        assert!(newer_id.starts_with(c["to"].as_str().unwrap()), "{v}");
        assert_eq!(changed(&c["added"]), only(&all, &opened), "{v}");
        assert_eq!(changed(&c["removed"]), only(&all, &first[..1]), "{v}");
        assert_eq!(changed(&v["inside"]["channels"]), only(&all, &first), "{v}");
    }
    let out = f.path().join("older.backup");
    let shown = stdout(
        &cv(
            &f,
            &[
                "restore",
                "fetch",
                "--backup",
                older,
                "--identity",
                &id,
                "--out",
                out.to_str().unwrap(),
            ],
        )
        .await,
    );
    assert!(
        shown.contains(
            "+2 only there (opened since: restoring this one cannot recover them), -1 only here"
        ),
        "{shown}"
    );
    for cp in &opened {
        assert!(shown.contains(&format!("  + {cp}  peer ")), "{shown}");
    }
    assert!(
        shown.contains(&format!("  - {}  peer ", first[0])),
        "{shown}"
    );
    let out = f.path().join("newest.backup");
    let shown = stdout(
        &cv(
            &f,
            &[
                "restore",
                "fetch",
                "--identity",
                &id,
                "--out",
                out.to_str().unwrap(),
            ],
        )
        .await,
    );
    assert!(
        shown.contains("it is the newest backup on target pbs"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "reads 4 channel(s) in it (no LND needed), with {} peer(s)",
            peer_count(&now)
        )),
        "{shown}"
    );
}
