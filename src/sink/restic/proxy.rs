//! A restic target's `proxy` (`socks5h://…`, Tor).
//!
//! A `rest:` target hands it to its HTTP client (`rest.rs`). For an
//! `rclone:` target it is rclone that dials the remote, so the proxy goes
//! into rclone's environment only (`HTTPS_PROXY`/`HTTP_PROXY`, which Go's
//! HTTP client reads), never into ours; our own connection to rclone stays
//! on 127.0.0.1 without proxy. Not every rclone backend uses that HTTP
//! client: sftp, ftp, smb and the like open their own connections, and
//! rclone 1.60 (Debian 12) has no proxy setting for them. Such a remote
//! would go direct with the target believing it goes through Tor, so it
//! is refused before rclone starts, with the backend named. Wrappers
//! (crypt, alias, union, …) are refused too: their inner remotes are not
//! followed here, so the target cannot promise where they connect.

use std::path::Path;
use std::process::{Command, Stdio};

use super::ResticTarget;
use crate::config::ResticTargetConfig;
use crate::config::proxy::Socks5h;
use crate::sink::ErrorKind;

/// rclone backends whose every connection goes through rclone's HTTP
/// client (`lib/http`, `fshttp`), which takes its proxy from the
/// environment. Kept to the ones people back up to; others are refused
/// rather than guessed.
const HTTP_BACKENDS: &[&str] = &[
    "azureblob",
    "b2",
    "box",
    "drive",
    "dropbox",
    "gcs",
    "hidrive",
    "jottacloud",
    "koofr",
    "onedrive",
    "opendrive",
    "pcloud",
    "s3",
    "seafile",
    "sharefile",
    "swift",
    "webdav",
    "yandex",
    "zoho",
];

/// Backends that open no network connection at all.
const OFFLINE_BACKENDS: &[&str] = &["local", "memory"];

impl ResticTarget {
    /// The target's `proxy`, parsed (it was checked when the config loaded).
    pub(super) fn proxy(&self) -> Result<Option<Socks5h>, String> {
        self.cfg
            .proxy
            .as_deref()
            .map(Socks5h::parse)
            .transpose()
            .map_err(|m| format!("proxy: {m}"))
    }
}

/// For an `rclone:` target with a `proxy`: check that the remote's backend
/// connects through it, and set rclone's environment so that it does.
/// Without a `proxy`, nothing changes.
pub(super) fn rclone_through(
    cfg: &ResticTargetConfig,
    program: &Path,
    cmd: &mut Command,
) -> Result<(), (ErrorKind, String)> {
    let Some(p) = cfg.proxy.as_deref() else {
        return Ok(());
    };
    let proxy = Socks5h::parse(p).map_err(|m| (ErrorKind::Other, format!("proxy: {m}")))?;
    let spec = cfg.rclone_remote().unwrap_or_default();
    let remote = spec.split_once(':').map_or(spec, |(r, _)| r);
    let kind = backend_of(cfg, program, remote)?;
    if !HTTP_BACKENDS.contains(&kind.as_str()) && !OFFLINE_BACKENDS.contains(&kind.as_str()) {
        return Err((
            ErrorKind::Refused,
            format!(
                "the rclone remote {remote} is of type {kind}, which rclone does not send through the proxy {}: refusing rather than connecting directly (rclone's HTTP-based backends such as webdav, s3, b2, swift or drive go through it)",
                proxy.url()
            ),
        ));
    }
    for var in Socks5h::GO_ENV_REMOVED {
        cmd.env_remove(var);
    }
    cmd.envs(proxy.go_env());
    Ok(())
}

/// The backend type of `remote`, as rclone itself reads the config
/// (`rclone listremotes --long`: also remotes defined in the environment
/// and encrypted configs whose password rclone is given).
fn backend_of(
    cfg: &ResticTargetConfig,
    program: &Path,
    remote: &str,
) -> Result<String, (ErrorKind, String)> {
    let mut cmd = Command::new(program);
    cmd.args(["listremotes", "--long"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(conf) = &cfg.rclone_config {
        cmd.env("RCLONE_CONFIG", conf);
    }
    let shown = program.display();
    let out = cmd.output().map_err(|e| {
        (
            ErrorKind::Other,
            format!("cannot run rclone ({shown}) to check the remote {remote}'s backend for the proxy: {e}"),
        )
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let why = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no reason given");
        return Err((
            ErrorKind::Other,
            format!(
                "rclone cannot list its remotes to check the remote {remote}'s backend for the proxy: {}",
                crate::text::one_line(why.trim())
            ),
        ));
    }
    type_in_listing(&String::from_utf8_lossy(&out.stdout), remote).ok_or_else(|| {
        (
            ErrorKind::Other,
            format!(
                "rclone knows no remote {remote} (rclone listremotes): define it in rclone_config"
            ),
        )
    })
}

/// The type of `remote` in `rclone listremotes --long` output
/// (`name:   type` lines).
fn type_in_listing(listing: &str, remote: &str) -> Option<String> {
    listing.lines().find_map(|l| {
        let (name, kind) = l.split_once(':')?;
        (name.trim() == remote).then(|| kind.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_type_comes_from_rclones_listing() {
        let listing = "box-eu:     webdav\nsftp-box:   sftp\nlocal:      local\n";
        assert_eq!(
            type_in_listing(listing, "box-eu").as_deref(),
            Some("webdav")
        );
        assert_eq!(
            type_in_listing(listing, "sftp-box").as_deref(),
            Some("sftp")
        );
        assert_eq!(type_in_listing(listing, "box"), None);
        for wrapper in ["crypt", "alias", "union", "sftp", "ftp", "smb"] {
            assert!(!HTTP_BACKENDS.contains(&wrapper) && !OFFLINE_BACKENDS.contains(&wrapper));
        }
    }
}
