//! Issue 13 §4: secrets and metadata that leave the host. Plain `http://`
//! only to loopback, no proxy from the environment, an OpenBao address from
//! the environment said out loud, and no channel point in anything a target
//! or a log receives. Everything here talks to 127.0.0.1 only.

use std::path::Path;
use std::process::Output;

use crate::common::bao::Bao;
use crate::common::{bin, text};

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
