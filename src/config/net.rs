//! Which hosts plain `http://` may reach: loopback only. Tokens, seeds and
//! REST credentials sent over `http://` cross the network in clear, so the
//! config refuses them to any other host.

/// What the error messages say is allowed.
pub const LOOPBACK_HOSTS: &str = "127.0.0.0/8, ::1, localhost";

/// True when `url` (`http://host:port/…`) names a loopback host: an address
/// in 127.0.0.0/8, `::1` (or `::ffff:127.x.y.z`), or `localhost`. The host is
/// read the way the HTTP client reads it (the `url` crate), so spellings such
/// as `127.1` count as what they connect to. An unparsable URL is not
/// loopback.
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = u.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_url;

    #[test]
    fn loopback_hosts_only() {
        for yes in [
            "http://127.0.0.1:8200",
            "http://127.9.8.7/",
            "http://127.1:8000/repo/",
            "http://[::1]:8200",
            "http://[::ffff:127.0.0.1]:80",
            "http://localhost:8200",
            "http://LOCALHOST",
        ] {
            assert!(is_loopback_url(yes), "{yes}");
        }
        for no in [
            "http://10.0.0.5:8200",
            "http://bao.lan:8200",
            "http://localhost.example.com",
            "http://128.0.0.1",
            "http://[::2]:8200",
            "http://0.0.0.0:8200",
            "not a url",
        ] {
            assert!(!is_loopback_url(no), "{no}");
        }
    }
}
