//! `proxy = "socks5h://127.0.0.1:9050"`: a SOCKS5 proxy (Tor's SOCKS port)
//! for a `rest:` or `rclone:` target and for `[escrow]`.
//!
//! Only `socks5h://` is accepted: the `h` means the proxy resolves the
//! target's name, so no DNS query for it leaves this machine. `socks5://`
//! (resolve here, send the address) would leak every target's name to the
//! local resolver and, for a `.onion` name, fail; it is refused with a
//! message that says so. The proxy itself must be on loopback: SOCKS5
//! without authentication is clear text, and a proxy elsewhere on the
//! network would see every target's name and be a hop no one vouches for
//! (Tor's SOCKS port listens on 127.0.0.1 by default). Credentials in the
//! URL are refused, as everywhere in the config.
//!
//! A proxied client never goes direct: reqwest has no fallback, so with the
//! proxy down every request fails (and a target's delivery is retried).

/// What the error messages call a valid proxy.
const SHAPE: &str = "socks5h://127.0.0.1:9050";

/// A checked `socks5h://HOST:PORT` with HOST on loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socks5h {
    /// As it goes in a URL (`127.0.0.1`, `[::1]`, `localhost`).
    host: String,
    port: u16,
}

impl Socks5h {
    /// Parse and check a `proxy` value; the error is one line, without the key.
    pub fn parse(s: &str) -> Result<Self, String> {
        let Some((scheme, _)) = s.split_once("://") else {
            return Err(format!("{s:?} is not a proxy URL: write {SHAPE}"));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "socks5h" => {}
            "socks5" => {
                return Err(format!(
                    "{s:?} would resolve each target's name on this machine (a DNS query that names it): write socks5h:// so that the proxy resolves it"
                ));
            }
            other => {
                return Err(format!(
                    "{other}:// proxies are not supported: only a SOCKS5 proxy with remote DNS, e.g. {SHAPE} (Tor)"
                ));
            }
        }
        let u = reqwest::Url::parse(s).map_err(|e| format!("{s:?} is not a valid URL: {e}"))?;
        if !u.username().is_empty() || u.password().is_some() {
            // Not echoed: the value holds a credential.
            return Err(format!(
                "the proxy URL must not contain credentials: write {SHAPE}"
            ));
        }
        if !matches!(u.path(), "" | "/") || u.query().is_some() || u.fragment().is_some() {
            return Err(format!(
                "{s:?} must be socks5h://HOST:PORT and nothing more"
            ));
        }
        let Some(port) = u.port() else {
            return Err(format!("{s:?} names no port: write {SHAPE}"));
        };
        // IPv6 hosts come bracketed, as they go in a URL.
        let Some(host) = u.host_str().filter(|h| !h.is_empty()).map(str::to_owned) else {
            return Err(format!("{s:?} names no host: write {SHAPE}"));
        };
        if !super::net::is_loopback_url(&format!("http://{host}:{port}")) {
            return Err(format!(
                "{s:?} is not on this machine: the proxy must listen on a loopback address ({}); SOCKS5 is clear text between us and the proxy",
                super::net::LOOPBACK_HOSTS
            ));
        }
        Ok(Self { host, port })
    }

    /// `socks5h://HOST:PORT`, as shown in messages.
    pub fn url(&self) -> String {
        format!("socks5h://{}:{}", self.host, self.port)
    }

    /// For reqwest: every request through the proxy, names resolved there.
    /// (Set after `no_proxy()`, it replaces the environment's proxies.)
    pub fn reqwest(&self) -> Result<reqwest::Proxy, String> {
        reqwest::Proxy::all(self.url())
            .map_err(|e| format!("cannot use the proxy {}: {e}", self.url()))
    }

    /// The environment that sends a Go program's HTTP client (rclone's
    /// HTTP-based backends) through this proxy. Go spells it `socks5://`
    /// (its releases before 1.22 know no `socks5h`), and its SOCKS5 dialer
    /// sends the target's name to the proxy unresolved: the same remote DNS.
    /// Go reads both spellings of the variables, the upper case first.
    pub fn go_env(&self) -> Vec<(&'static str, String)> {
        let v = format!("socks5://{}:{}", self.host, self.port);
        ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]
            .into_iter()
            .map(|k| (k, v.clone()))
            .collect()
    }

    /// What must not reach that Go program: a `NO_PROXY` would send some
    /// hosts direct, and Go ignores `HTTP_PROXY` altogether when
    /// `REQUEST_METHOD` says it runs as a CGI script.
    pub const GO_ENV_REMOVED: &'static [&'static str] = &["NO_PROXY", "no_proxy", "REQUEST_METHOD"];
}

/// A restic target's `proxy`: only for `rest:` and `rclone:` repositories,
/// and a valid one; (key, message) naming the target.
pub(super) fn check_target(r: &super::ResticTargetConfig) -> Result<(), (&'static str, String)> {
    let Some(p) = &r.proxy else {
        return Ok(());
    };
    let name = &r.name;
    if !r.is_rest() && r.rclone_remote().is_none() {
        return Err((
            "proxy",
            format!(
                "target {name:?}: only applies to a rest: or rclone: repository (a local path is not reached over the network)"
            ),
        ));
    }
    Socks5h::parse(p)
        .map(drop)
        .map_err(|m| ("proxy", format!("target {name:?}: {m}")))
}

/// True when `url` (`http://host…`) names a Tor v3 onion service: 56
/// base32 characters before `.onion`. Through a `socks5h://` proxy such a
/// connection is encrypted end to end by Tor and reaches only the holder of
/// the key the name is made of, so plain `http://` to it is no more in
/// clear than `https://` elsewhere.
pub fn is_onion_url(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = u.host_str() else {
        return false;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let Some(name) = host.strip_suffix(".onion") else {
        return false;
    };
    // A subdomain of an onion service is the same service.
    let label = name.rsplit('.').next().unwrap_or(name);
    label.len() == 56
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// True when plain `http://` may carry secrets to `url`: a loopback host,
/// or an onion service reached through a SOCKS5 proxy.
pub fn clear_http_ok(url: &str, proxied: bool) -> bool {
    super::net::is_loopback_url(url) || (proxied && is_onion_url(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONION: &str = "chanvaultrestonionaddressaaaaaaaaaaaaaaaaaaaaaaaaaaaaaad";

    #[test]
    fn only_socks5h_on_loopback() {
        for (ok, url) in [
            ("socks5h://127.0.0.1:9050", "socks5h://127.0.0.1:9050"),
            ("SOCKS5H://127.0.0.1:9050/", "socks5h://127.0.0.1:9050"),
            ("socks5h://[::1]:9050", "socks5h://[::1]:9050"),
            ("socks5h://localhost:9150", "socks5h://localhost:9150"),
        ] {
            assert_eq!(Socks5h::parse(ok).map(|p| p.url()), Ok(url.to_owned()));
        }
        for (bad, says) in [
            ("socks5://127.0.0.1:9050", "socks5h://"),
            ("http://127.0.0.1:8080", "not supported"),
            ("socks4a://127.0.0.1:9050", "not supported"),
            ("127.0.0.1:9050", "not a proxy URL"),
            ("socks5h://127.0.0.1", "no port"),
            ("socks5h://10.152.152.10:9050", "loopback"),
            ("socks5h://tor.lan:9050", "loopback"),
            ("socks5h://127.0.0.1:9050/x", "nothing more"),
            ("socks5h://u:hunter2@127.0.0.1:9050", "credentials"),
        ] {
            let e = Socks5h::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn go_gets_socks5_with_no_way_around_it() {
        let p = Socks5h::parse("socks5h://127.0.0.1:9050").unwrap();
        let env = p.go_env();
        assert_eq!(env.len(), 4);
        assert!(env.iter().all(|(_, v)| v == "socks5://127.0.0.1:9050"));
        assert!(Socks5h::GO_ENV_REMOVED.contains(&"NO_PROXY"));
    }

    #[test]
    fn plain_http_to_an_onion_only_through_a_proxy() {
        let onion = format!("http://{ONION}.onion:8000/repo/");
        assert!(is_onion_url(&onion));
        assert!(is_onion_url(&format!("http://www.{ONION}.onion/")));
        assert!(clear_http_ok(&onion, true));
        assert!(!clear_http_ok(&onion, false));
        assert!(clear_http_ok("http://127.0.0.1:8000/", false));
        for no in [
            "http://short.onion/",
            "http://onion.example.com/",
            &format!("http://{ONION}.onion.example.com/"),
            &format!("http://{}1.onion/", &ONION[..55]),
        ] {
            assert!(!is_onion_url(no), "{no}");
            assert!(!clear_http_ok(no, true), "{no}");
        }
    }
}
