//! The `[escrow]` section of the config: where OpenBao is, how we log in,
//! where items live, and the offline recipients for envelope sealing.
//!
//! Like the rest of the config it holds paths to secrets (token, AppRole
//! role-id and secret-id files), never secrets. The address and CA may come
//! from `BAO_ADDR`/`BAO_CACERT` (or `VAULT_*`) so that an operator's shell
//! that already talks to OpenBao needs nothing else.
//!
//! `address` is one URL or, for an OpenBao cluster (raft HA), the list of its
//! nodes: the token is sent to these addresses only, so a node that
//! redirects elsewhere is never followed (see `escrow::kv::cluster`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default KV v2 mount.
pub const DEFAULT_MOUNT: &str = "secret";
/// Default path prefix of escrowed items inside the mount.
pub const DEFAULT_PREFIX: &str = "chanvault";
/// Default AppRole auth mount.
pub const DEFAULT_APPROLE_MOUNT: &str = "approle";
/// Default per-request timeout against OpenBao.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 15;

/// Most nodes `escrow.address` may list (a raft cluster has 3 or 5).
pub const MAX_ADDRESSES: usize = 16;

/// Networks `escrow.network` accepts (the names bitcoind and the `bitcoin` crate use, plus "mainnet").
pub const NETWORKS: &[&str] = &["bitcoin", "mainnet", "testnet", "signet", "regtest"];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowConfig {
    /// `https://host:8200`, or the list of a cluster's nodes; else
    /// `BAO_ADDR`, else `VAULT_ADDR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// PEM CA bundle that signed OpenBao's certificate; else `BAO_CACERT`/`VAULT_CACERT`; else the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacert: Option<PathBuf>,
    /// KV v2 mount.
    #[serde(default = "default_mount")]
    pub mount: String,
    /// Items live at `MOUNT/data/PREFIX/NAME`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// A file holding an OpenBao token (exclusive with AppRole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// AppRole role-id file (with `approle_secret_id_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approle_role_id_file: Option<PathBuf>,
    /// AppRole secret-id file (with `approle_role_id_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approle_secret_id_file: Option<PathBuf>,
    /// Where AppRole is mounted.
    #[serde(default = "default_approle_mount")]
    pub approle_mount: String,
    /// The AppRole role name (only `keys rotate approle` needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approle_role_name: Option<String>,
    /// Bitcoin network of the escrowed keys.
    #[serde(default = "default_network")]
    pub network: String,
    /// Offline age recipients; when set, secret fields are age-encrypted before they reach OpenBao.
    #[serde(default)]
    pub seal_recipients: Vec<String>,
    /// Names `keys verify` expects to find.
    #[serde(default)]
    pub required: Vec<String>,
    /// Per-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// `socks5h://HOST:PORT` on loopback (Tor): OpenBao is reached through it only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
}

/// `escrow.address`: one node, or every node of one cluster. A string keeps
/// every config written before clusters valid; a list needs no second key
/// that could disagree with the first.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    untagged,
    expecting = "escrow.address must be a URL (\"https://bao:8200\") or a list of the URLs of one cluster's nodes"
)]
pub enum Address {
    One(String),
    Cluster(Vec<String>),
}

impl Address {
    fn list(&self) -> Vec<&str> {
        match self {
            Address::One(a) => vec![a.as_str()],
            Address::Cluster(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// Each URL checked, without a trailing '/'; errors are (key, message).
    fn checked(&self, proxied: bool) -> Result<Vec<String>, (String, String)> {
        let list = self.list();
        if list.is_empty() {
            return Err((
                "escrow.address".into(),
                "the list is empty: name at least one OpenBao node".into(),
            ));
        }
        if list.len() > MAX_ADDRESSES {
            return Err((
                "escrow.address".into(),
                format!("lists {} nodes; at most {MAX_ADDRESSES}", list.len()),
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(list.len());
        for (i, a) in list.iter().enumerate() {
            let key = match self {
                Address::One(_) => "escrow.address".to_owned(),
                Address::Cluster(_) => format!("escrow.address[{i}]"),
            };
            check_address(a, proxied).map_err(|m| (key.clone(), m))?;
            let a = a.trim_end_matches('/').to_owned();
            if out.contains(&a) {
                return Err((key, format!("{a:?} is listed twice")));
            }
            out.push(a);
        }
        Ok(out)
    }
}

fn default_mount() -> String {
    DEFAULT_MOUNT.to_owned()
}
fn default_prefix() -> String {
    DEFAULT_PREFIX.to_owned()
}
fn default_approle_mount() -> String {
    DEFAULT_APPROLE_MOUNT.to_owned()
}
fn default_network() -> String {
    "bitcoin".to_owned()
}
fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}

/// How we log in to OpenBao.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Token {
        file: PathBuf,
    },
    AppRole {
        mount: String,
        role_id_file: PathBuf,
        secret_id_file: PathBuf,
    },
}

/// A path segment in KV (mount, prefix pieces, item names): no traversal, no
/// characters that need URL escaping.
pub fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Item names: one segment.
pub fn check_name(name: &str) -> Result<(), String> {
    if valid_segment(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid item name (1-128 characters: letters, digits, '-', '_', '.')"
        ))
    }
}

impl EscrowConfig {
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [
            &mut self.cacert,
            &mut self.token_file,
            &mut self.approle_role_id_file,
            &mut self.approle_secret_id_file,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Checks that need no network; errors are (key, message).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: String| Err((format!("escrow.{k}"), m));
        if let Some(p) = &self.proxy
            && let Err(m) = super::proxy::Socks5h::parse(p)
        {
            return bad("proxy", m);
        }
        if let Some(a) = &self.address {
            a.checked(self.proxy.is_some())?;
        }
        if !valid_segment(&self.mount) {
            return bad(
                "mount",
                format!("{:?} is not a valid mount name", self.mount),
            );
        }
        if !self.prefix.split('/').all(valid_segment) {
            return bad(
                "prefix",
                format!(
                    "{:?} is not a valid path prefix (segments of letters, digits, '-', '_', '.', separated by '/')",
                    self.prefix
                ),
            );
        }
        if !valid_segment(&self.approle_mount) {
            return bad(
                "approle_mount",
                format!("{:?} is not a valid mount name", self.approle_mount),
            );
        }
        match (
            &self.token_file,
            &self.approle_role_id_file,
            &self.approle_secret_id_file,
        ) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            (None, None, None) => {
                return bad(
                    "token_file",
                    "no OpenBao login configured: set token_file, or approle_role_id_file and approle_secret_id_file".into(),
                );
            }
            (Some(_), _, _) => {
                return bad(
                    "token_file",
                    "token_file and approle_role_id_file/approle_secret_id_file are mutually exclusive: keep one login method".into(),
                );
            }
            (None, Some(_), None) => {
                return bad(
                    "approle_secret_id_file",
                    "missing: approle_role_id_file needs approle_secret_id_file".into(),
                );
            }
            (None, None, Some(_)) => {
                return bad(
                    "approle_role_id_file",
                    "missing: approle_secret_id_file needs approle_role_id_file".into(),
                );
            }
        }
        if !NETWORKS.contains(&self.network.as_str()) {
            return bad(
                "network",
                format!(
                    "{:?} is not a network; use one of {}",
                    self.network,
                    NETWORKS.join(", ")
                ),
            );
        }
        for (i, r) in self.seal_recipients.iter().enumerate() {
            let key = format!("escrow.seal_recipients[{i}]");
            if let Err(e) = crate::seal::Recipients::parse_one(r, &key) {
                let msg = strip_prefix_desc(&e.to_string(), &key);
                return Err((key, msg));
            }
        }
        for (i, n) in self.required.iter().enumerate() {
            if let Err(m) = check_name(n) {
                return bad(&format!("required[{i}]"), m);
            }
        }
        if self.timeout_seconds == 0 {
            return bad("timeout_seconds", "must be at least 1".into());
        }
        Ok(())
    }

    pub fn auth(&self) -> Option<Auth> {
        match (
            &self.token_file,
            &self.approle_role_id_file,
            &self.approle_secret_id_file,
        ) {
            (Some(f), _, _) => Some(Auth::Token { file: f.clone() }),
            (None, Some(r), Some(s)) => Some(Auth::AppRole {
                mount: self.approle_mount.clone(),
                role_id_file: r.clone(),
                secret_id_file: s.clone(),
            }),
            _ => None,
        }
    }

    /// The addresses from the config, else the one of `BAO_ADDR`, else of
    /// `VAULT_ADDR`. An address from the environment is checked as
    /// `escrow.address` is (no plain `http://` beyond loopback), and one info
    /// line names the variable, so that a shell's leftover `VAULT_ADDR` never
    /// decides silently where tokens and seeds go.
    pub fn effective_addresses(&self) -> Result<Vec<String>, String> {
        if let Some(a) = &self.address {
            return a
                .checked(self.proxy.is_some())
                .map_err(|(k, m)| format!("{k}: {m}"));
        }
        let (var, a) = ["BAO_ADDR", "VAULT_ADDR"]
            .iter()
            .find_map(|k| {
                let v = std::env::var(k).ok().filter(|v| !v.trim().is_empty())?;
                Some((*k, v))
            })
            .ok_or_else(|| {
                "escrow.address is not set and neither BAO_ADDR nor VAULT_ADDR is".to_owned()
            })?;
        check_address(&a, self.proxy.is_some())
            .map_err(|m| format!("{var} (escrow.address is not set): {m}"))?;
        tracing::info!("escrow.address is not set: using OpenBao at {a} from {var}");
        Ok(vec![a.trim_end_matches('/').to_owned()])
    }

    /// The CA file from the config, else `BAO_CACERT`, else `VAULT_CACERT`.
    pub fn effective_cacert(&self) -> Option<PathBuf> {
        self.cacert.clone().or_else(|| {
            ["BAO_CACERT", "VAULT_CACERT"]
                .iter()
                .find_map(|k| std::env::var_os(k).filter(|v| !v.is_empty()))
                .map(PathBuf::from)
        })
    }
}

/// `proxied`: plain `http://` may also reach an onion service (Tor
/// encrypts it end to end; see `proxy::is_onion_url`).
fn check_address(a: &str, proxied: bool) -> Result<(), String> {
    let rest = a
        .strip_prefix("https://")
        .or_else(|| a.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("{a:?} must start with https:// (or http:// for a local dev server)")
        })?;
    if rest.trim_end_matches('/').is_empty() || rest.contains(char::is_whitespace) {
        return Err(format!("{a:?} has no host"));
    }
    if a.starts_with("http://") && !super::proxy::clear_http_ok(a, proxied) {
        return Err(format!(
            "{a:?} would send the OpenBao token and the escrowed seeds and keys in clear over the network: use https:// (plain http:// is allowed only to a loopback address: {}, or to a .onion service through escrow.proxy)",
            super::net::LOOPBACK_HOSTS
        ));
    }
    Ok(())
}

/// `Recipients::parse_one` errors start with the source description; the
/// config error already names the key.
fn strip_prefix_desc(msg: &str, key: &str) -> String {
    msg.strip_prefix(key)
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(msg)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::{Path, PathBuf};

    const BASE: &str = r#"
state_dir = "state"
[lnd]
address = "127.0.0.1:10009"
tls_cert = "tls.cert"
macaroon = "m"
[seal]
recipients = ["age1xyz"]
"#;

    fn parse(escrow: &str) -> Result<Config, String> {
        Config::parse(
            &format!("{BASE}[escrow]\n{escrow}"),
            Path::new("/etc/cv/c.toml"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_resolved_paths() {
        let c = parse("token_file = \"bao.token\"\n").unwrap();
        let e = c.escrow.unwrap();
        assert_eq!(e.mount, "secret");
        assert_eq!(e.prefix, "chanvault");
        assert_eq!(e.network, "bitcoin");
        assert_eq!(e.token_file, Some(PathBuf::from("/etc/cv/bao.token")));
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for a in [
            "http://127.0.0.1:8200",
            "http://127.0.0.2:8200/",
            "http://[::1]:8200",
            "http://localhost:8200",
            "https://bao.lan:8200",
            "https://10.0.0.5:8200",
        ] {
            let c = parse(&format!("token_file = \"t\"\naddress = \"{a}\"\n"));
            assert!(c.is_ok(), "{a}: {c:?}", c = c.err());
        }
    }

    #[test]
    fn a_cluster_is_a_list_of_its_nodes() {
        let c = parse(
            "token_file = \"t\"\naddress = [\"http://127.0.0.1:8200/\", \"https://bao2.lan:8200\"]\n",
        )
        .unwrap();
        assert_eq!(
            c.escrow.unwrap().effective_addresses().unwrap(),
            ["http://127.0.0.1:8200", "https://bao2.lan:8200"]
        );
        let c = parse("token_file = \"t\"\naddress = \"https://bao.lan:8200/\"\n").unwrap();
        assert_eq!(
            c.escrow.unwrap().effective_addresses().unwrap(),
            ["https://bao.lan:8200"]
        );
        for (list, key, says) in [
            ("[]", "escrow.address", "empty"),
            (
                "[\"https://a:8200\", \"http://bao.lan:8200\"]",
                "escrow.address[1]",
                "in clear",
            ),
            (
                "[\"https://a:8200\", \"https://a:8200/\"]",
                "escrow.address[1]",
                "twice",
            ),
            ("8200", "escrow.address", "list of the URLs"),
        ] {
            let e = parse(&format!("token_file = \"t\"\naddress = {list}\n")).unwrap_err();
            assert!(
                e.contains(key) && e.contains(says) && !e.contains('\n'),
                "{list}: {e}"
            );
        }
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("", "escrow.token_file"),
            (
                "token_file = \"t\"\napprole_role_id_file = \"r\"\n",
                "escrow.token_file",
            ),
            (
                "approle_role_id_file = \"r\"\n",
                "escrow.approle_secret_id_file",
            ),
            (
                "approle_secret_id_file = \"r\"\n",
                "escrow.approle_role_id_file",
            ),
            ("token_file = \"t\"\nnetwork = \"moon\"\n", "escrow.network"),
            (
                "token_file = \"t\"\naddress = \"bao:8200\"\n",
                "escrow.address",
            ),
            ("token_file = \"t\"\nmount = \"a/../b\"\n", "escrow.mount"),
            ("token_file = \"t\"\nprefix = \"a//b\"\n", "escrow.prefix"),
            (
                "token_file = \"t\"\nseal_recipients = [\"age1nope\"]\n",
                "escrow.seal_recipients[0]",
            ),
            (
                "token_file = \"t\"\nrequired = [\"a b\"]\n",
                "escrow.required[0]",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                e.starts_with(&format!("config /etc/cv/c.toml: {key}: ")),
                "{key}: {e}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
        for host in [
            "bao.lan:8200",
            "10.0.0.5:8200",
            "[fd00::1]:8200",
            "0.0.0.0:8200",
        ] {
            let e = parse(&format!(
                "token_file = \"t\"\naddress = \"http://{host}\"\n"
            ))
            .unwrap_err();
            assert!(
                e.starts_with("config /etc/cv/c.toml: escrow.address: ")
                    && e.contains("in clear")
                    && e.contains("https://"),
                "{e}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
        // escrow.proxy: socks5h on loopback; http:// to an onion service through it.
        let onion = "http://chanvaultbaoonionaddressaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.onion:8200";
        let proxied = "token_file = \"t\"\nproxy = \"socks5h://127.0.0.1:9050\"\n".to_owned();
        assert!(parse(&format!("{proxied}address = \"{onion}\"\n")).is_ok());
        let e = parse(&format!("token_file = \"t\"\naddress = \"{onion}\"\n")).unwrap_err();
        assert!(
            e.contains("escrow.address: ") && e.contains("in clear"),
            "{e}"
        );
        let e = parse(&proxied.replace("socks5h", "socks5")).unwrap_err();
        assert!(
            e.starts_with("config /etc/cv/c.toml: escrow.proxy: ") && e.contains("socks5h://"),
            "{e}"
        );
        let e = parse("token_file = \"t\"\ntokenfile = \"x\"\n").unwrap_err();
        assert!(e.contains("tokenfile"), "{e}");
    }
}
