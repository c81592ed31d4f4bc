use super::*;

#[test]
fn addresses() {
    assert_eq!(
        parse_address("127.0.0.1:10009").unwrap(),
        ("127.0.0.1".into(), 10009)
    );
    assert_eq!(
        parse_address("https://localhost:10009/").unwrap(),
        ("localhost".into(), 10009)
    );
    assert_eq!(parse_address("[::1]:10009").unwrap(), ("::1".into(), 10009));
    assert!(parse_address("http://localhost:10009").is_err());
    assert!(parse_address("localhost").is_err());
    assert!(parse_address("localhost:99999").is_err());
    assert!(parse_address(":10009").is_err());
}

const MIN: &str = r#"
state_dir = "state"
[lnd]
address = "127.0.0.1:10009"
tls_cert = "tls.cert"
macaroon = "/abs/chanvault.macaroon"
[seal]
recipients = ["age1xyz"]
[[target]]
name = "pbs"
kind = "dir"
path = "targets/pbs"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/chanvault/chanvault.toml"))
}

#[test]
fn minimal_config_gets_defaults_and_resolved_paths() {
    let c = parse(MIN).unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/etc/chanvault/state"));
    assert_eq!(c.lnd.tls_cert, PathBuf::from("/etc/chanvault/tls.cert"));
    assert_eq!(c.lnd.macaroon, PathBuf::from("/abs/chanvault.macaroon"));
    assert_eq!(c.backup.keep, DEFAULT_KEEP);
    assert_eq!(c.backup.schedule, DEFAULT_SCHEDULE);
    match &c.targets[0] {
        TargetConfig::Dir(d) => {
            assert_eq!(d.path, PathBuf::from("/etc/chanvault/targets/pbs"))
        }
        TargetConfig::Restic(_) => panic!("not a restic target"),
    }
}

#[test]
fn unknown_key_names_file_and_key() {
    let text = MIN.replace("[seal]", "[seal]\nrecipeints = []");
    let e = parse(&text).unwrap_err().to_string();
    assert!(
        e.starts_with("config /etc/chanvault/chanvault.toml:"),
        "{e}"
    );
    assert!(e.contains("recipeints"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn unknown_key_in_target_is_refused() {
    let text = MIN.replace("path = \"targets/pbs\"", "path = \"x\"\npth = \"y\"");
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("pth"), "{e}");
}

#[test]
fn invalid_values_name_their_key() {
    let cases = [
        (
            MIN.replace("[seal]", "[backup]\nschedule = \"every minute\"\n[seal]"),
            "backup.schedule",
        ),
        (
            MIN.replace("[seal]", "[backup]\nkeep = 0\n[seal]"),
            "backup.keep",
        ),
        (
            MIN.replace("recipients = [\"age1xyz\"]", "recipients = []"),
            "seal.recipients",
        ),
        (
            MIN.replace("name = \"pbs\"", "name = \"p b s\""),
            "target[0].name",
        ),
        (MIN.replace("127.0.0.1:10009", "127.0.0.1"), "lnd.address"),
        (
            format!("{MIN}\n[[target]]\nname = \"pbs\"\nkind = \"dir\"\npath = \"/x\"\n"),
            "target[1].name",
        ),
    ];
    for (text, key) in cases {
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("config /etc/chanvault/chanvault.toml: {key}: ")),
            "{key}: {e}"
        );
    }
}

const RESTIC: &str = r#"
[[target]]
name = "offsite"
kind = "restic"
repository = "rest:https://backup.lan:8000/chanvault/"
password_file = "restic-password"
cacert = "rest.pem"
http_credentials_file = "/run/credentials/rest-auth"
tags = ["node1"]
"#;

#[test]
fn restic_target_resolves_paths_and_gets_defaults() {
    let c = parse(&format!("{MIN}{RESTIC}")).unwrap();
    let TargetConfig::Restic(r) = &c.targets[1] else {
        panic!("restic target expected")
    };
    assert_eq!(
        r.password_file,
        PathBuf::from("/etc/chanvault/restic-password")
    );
    assert_eq!(
        r.cacert.as_deref(),
        Some(Path::new("/etc/chanvault/rest.pem"))
    );
    assert_eq!(
        r.http_credentials_file.as_deref(),
        Some(Path::new("/run/credentials/rest-auth"))
    );
    assert_eq!(r.repository, "rest:https://backup.lan:8000/chanvault/");
    assert_eq!(r.host, DEFAULT_RESTIC_HOST);
    assert_eq!(r.forget_keep_last, None);
    let local = RESTIC
        .replace("rest:https://backup.lan:8000/chanvault/", "repos/local")
        .replace("cacert = \"rest.pem\"\n", "")
        .replace(
            "http_credentials_file = \"/run/credentials/rest-auth\"\n",
            "",
        );
    let c = parse(&format!("{MIN}{local}")).unwrap();
    let TargetConfig::Restic(r) = &c.targets[1] else {
        panic!("restic target expected")
    };
    assert_eq!(r.repository, "/etc/chanvault/repos/local");
}

#[test]
fn restic_target_mistakes_name_their_key() {
    let cases = [
        (
            RESTIC.replace("rest:https://", "rest:https://u:secret@"),
            "target[1].repository",
        ),
        (
            RESTIC.replace("rest:https://", "rest:ftp://"),
            "target[1].repository",
        ),
        (
            RESTIC.replace("rest:https://backup.lan:8000/chanvault/", "s3:bucket/x"),
            "target[1].repository",
        ),
        (
            RESTIC.replace("rest:https://", "rest:http://"),
            "target[1].cacert",
        ),
        (RESTIC.replace("[\"node1\"]", "[\"a,b\"]"), "target[1].tags"),
        (
            RESTIC.replace("tags = ", "forget_keep_last = 0\ntags = "),
            "target[1].forget_keep_last",
        ),
    ];
    for (restic, key) in cases {
        let e = parse(&format!("{MIN}{restic}")).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("config /etc/chanvault/chanvault.toml: {key}: ")),
            "{key}: {e}"
        );
        assert!(!e.contains("secret"), "{e}");
    }
    // Basic auth over plain http: only to loopback, refused naming the target.
    let plain = RESTIC.replace("cacert = \"rest.pem\"\n", "");
    for host in ["backup.lan:8000", "10.1.2.3:8000", "[fd00::2]:8000"] {
        let restic = plain.replace("https://backup.lan:8000", &format!("http://{host}"));
        let e = parse(&format!("{MIN}{restic}")).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "config /etc/chanvault/chanvault.toml: target[1].http_credentials_file: target \"offsite\" "
            ) && e.contains("in clear")
                && e.contains(host),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
    for host in ["127.0.0.1:8000", "[::1]:8000", "localhost:8000"] {
        let restic = plain.replace("https://backup.lan:8000", &format!("http://{host}"));
        assert!(parse(&format!("{MIN}{restic}")).is_ok(), "{host}");
    }
    // Without credentials, plain http stays allowed (the backups are age ciphertext).
    let restic = plain.replace("https://", "http://").replace(
        "http_credentials_file = \"/run/credentials/rest-auth\"\n",
        "",
    );
    assert!(parse(&format!("{MIN}{restic}")).is_ok());
    // A password inline is an unknown key, never accepted.
    let e = parse(&format!(
        "{MIN}{}",
        RESTIC.replace("tags = ", "password = \"x\"\ntags = ")
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("password"), "{e}");
    // password_file is required.
    let e = parse(&format!(
        "{MIN}{}",
        RESTIC.replace("password_file = \"restic-password\"\n", "")
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("password_file"), "{e}");
}

#[test]
fn unknown_target_kind_is_refused() {
    let e = parse(&MIN.replace("kind = \"dir\"", "kind = \"ftp\""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("ftp"), "{e}");
}

const RCLONE: &str = r#"
[[target]]
name = "offsite"
kind = "restic"
repository = "rclone:b2:chanvault/node1"
password_file = "restic-password"
rclone_config = "rclone.conf"
rclone_program = "bin/rclone"
"#;

#[test]
fn rclone_target_resolves_paths() {
    let c = parse(&format!("{MIN}{RCLONE}")).unwrap();
    let TargetConfig::Restic(r) = &c.targets[1] else {
        panic!("restic target expected")
    };
    assert_eq!(r.repository, "rclone:b2:chanvault/node1");
    assert_eq!(r.rclone_remote(), Some("b2:chanvault/node1"));
    assert_eq!(
        r.rclone_config.as_deref(),
        Some(Path::new("/etc/chanvault/rclone.conf"))
    );
    assert_eq!(
        r.rclone_program.as_deref(),
        Some(Path::new("/etc/chanvault/bin/rclone"))
    );
    // A bare program name is looked up on PATH, as a shell would.
    let c = parse(&format!("{MIN}{}", RCLONE.replace("bin/rclone", "rclone"))).unwrap();
    let TargetConfig::Restic(r) = &c.targets[1] else {
        panic!("restic target expected")
    };
    assert_eq!(r.rclone_program.as_deref(), Some(Path::new("rclone")));
}

#[test]
fn rclone_mistakes_name_the_target_and_key() {
    let cases = [
        (
            RCLONE.replace("rclone:b2:chanvault/node1", "rclone::chanvault"),
            "target[1].repository",
            "names no rclone remote",
        ),
        (
            RCLONE.replace("rclone:b2:chanvault/node1", "rclone:b2:"),
            "target[1].repository",
            "names no path on the remote b2",
        ),
        (
            RCLONE.replace("rclone:b2:chanvault/node1", "rclone:b2"),
            "target[1].repository",
            "names no path",
        ),
        (
            RCLONE.replace("rclone:b2:chanvault/node1", "rclone:"),
            "target[1].repository",
            "names no rclone remote",
        ),
        (
            RCLONE.replace("rclone:b2:", "rclone:b2,account=x,key=secret:"),
            "target[1].repository",
            "define the remote in rclone_config",
        ),
        (
            RCLONE.replace("rclone:b2:chanvault/node1", "/srv/repo"),
            "target[1].rclone_config",
            "only applies to an rclone:",
        ),
        (
            RCLONE
                .replace("rclone:b2:chanvault/node1", "/srv/repo")
                .replace("rclone_config = \"rclone.conf\"\n", ""),
            "target[1].rclone_program",
            "only applies to an rclone:",
        ),
        (
            RCLONE.replace("rclone_program", "cacert = \"x.pem\"\nrclone_program"),
            "target[1].cacert",
            "rest:https://",
        ),
    ];
    for (rclone, key, needle) in cases {
        let e = parse(&format!("{MIN}{rclone}")).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("config /etc/chanvault/chanvault.toml: {key}: ")),
            "{key}: {e}"
        );
        assert!(
            e.contains("target \"offsite\"") || key.ends_with("cacert"),
            "{e}"
        );
        assert!(e.contains(needle), "{needle:?} not in {e}");
        assert!(!e.contains("secret"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn a_proxy_applies_to_network_targets_only_and_must_be_socks5h() {
    const ONION: &str = "chanvaultrestonionaddressaaaaaaaaaaaaaaaaaaaaaaaaaaaaaad.onion";
    let proxy = "proxy = \"socks5h://127.0.0.1:9050\"\n";
    let rest = |url: &str, extra: &str| {
        format!(
            "{MIN}[[target]]\nname = \"offsite\"\nkind = \"restic\"\nrepository = \"rest:{url}\"\npassword_file = \"pw\"\n{extra}"
        )
    };
    for ok in [
        rest("https://backup.example:8000/r/", proxy),
        format!("{MIN}{RCLONE}{proxy}"),
        // Tor carries http:// to an onion service end to end encrypted.
        rest(
            &format!("http://{ONION}:8000/r/"),
            &format!("{proxy}http_credentials_file = \"creds\"\n"),
        ),
    ] {
        let c = parse(&ok).unwrap();
        let TargetConfig::Restic(r) = &c.targets[1] else {
            panic!("restic target expected")
        };
        assert_eq!(r.proxy.as_deref(), Some("socks5h://127.0.0.1:9050"));
    }
    for (text, key, needle) in [
        (
            format!("{MIN}{RCLONE}")
                .replace("rclone:b2:chanvault/node1", "/srv/repo")
                .replace(
                    "rclone_config = \"rclone.conf\"\nrclone_program = \"bin/rclone\"\n",
                    proxy,
                ),
            "target[1].proxy",
            "only applies to a rest: or rclone:",
        ),
        (
            format!("{MIN}{RCLONE}proxy = \"socks5://127.0.0.1:9050\"\n"),
            "target[1].proxy",
            "write socks5h://",
        ),
        (
            format!("{MIN}{RCLONE}proxy = \"socks5h://10.152.152.10:9050\"\n"),
            "target[1].proxy",
            "loopback",
        ),
        (
            // Without a proxy, an onion name is just another host in clear.
            rest(
                &format!("http://{ONION}:8000/r/"),
                "http_credentials_file = \"creds\"\n",
            ),
            "target[1].http_credentials_file",
            "in clear",
        ),
    ] {
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("config /etc/chanvault/chanvault.toml: {key}: ")),
            "{key}: {e}"
        );
        assert!(e.contains("target \"offsite\""), "{e}");
        assert!(e.contains(needle), "{needle:?} not in {e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
