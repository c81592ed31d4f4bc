//! `chanvault init`: a first, working config in one step.
//!
//! It finds LND's `tls.cert` and macaroon directory where LND installs
//! usually put them (or takes them from flags), creates an age identity
//! (0600, never overwritten), writes a commented config (never overwritten)
//! that [`Config::parse`] accepts, and ends with the exact next commands.
//! With `--non-interactive` (or when stdin is not a terminal) it only uses
//! flags and defaults, so NixOS activation scripts and tests can run it.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::Config;

/// LND data dirs, in the order they are tried (`~/.lnd` first).
pub const LND_DIRS: &[&str] = &[
    "/var/lib/lnd",
    "/mnt/hdd/lnd",
    "/data/lnd",
    "/home/lnd/.lnd",
    "/home/bitcoin/.lnd",
];

/// Networks under `data/chain/bitcoin/`, mainnet first.
pub const NETWORKS: &[&str] = &["mainnet", "testnet", "testnet4", "signet", "regtest"];

/// The macaroon `init` looks for (what the README tells you to bake).
pub const MACAROON_NAME: &str = "chanvault.macaroon";

#[derive(Args, Debug, Clone)]
pub struct InitArgs {
    /// Where to write the new config (refuses to overwrite).
    #[arg(long, short = 'c', value_name = "FILE", default_value = crate::config::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// LND's data dir (default: the first of ~/.lnd, /var/lib/lnd, /mnt/hdd/lnd, … that has tls.cert).
    #[arg(long, value_name = "DIR")]
    pub lnd_dir: Option<PathBuf>,
    /// LND's gRPC address.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:10009")]
    pub lnd_address: String,
    /// LND's tls.cert (default: LND_DIR/tls.cert).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// A macaroon with offchain:read (default: chanvault.macaroon in LND_DIR/data/chain/bitcoin/NETWORK or LND_DIR).
    #[arg(long, value_name = "FILE")]
    pub macaroon: Option<PathBuf>,
    /// Spool and journal directory.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/chanvault")]
    pub state_dir: PathBuf,
    /// New age identity to create (0600; refuses to overwrite) [default: identity.txt next to the config].
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Another recipient, e.g. an OFFLINE age1… or ssh-ed25519 key (repeatable).
    #[arg(long = "recipient", value_name = "KEY")]
    pub recipients: Vec<String>,
    /// A directory target, e.g. what PBS backs up (repeatable).
    #[arg(long = "target-dir", value_name = "PATH")]
    pub target_dirs: Vec<PathBuf>,
    /// Never prompt; use flags and defaults only (also the behaviour when stdin is not a terminal).
    #[arg(long)]
    pub non_interactive: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "{} already exists; init never overwrites a config (move it away, or pass --config NEW_FILE)",
        .0.display()
    )]
    ConfigExists(PathBuf),
    #[error("no LND tls.cert found (tried {tried}); pass --lnd-dir DIR or --tls-cert FILE")]
    NoTlsCert { tried: String },
    #[error("{}: {reason}", path.display())]
    Unusable { path: PathBuf, reason: String },
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    #[error("the generated config does not load ({0}); this is a bug in init, please report it")]
    Generated(String),
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read the answer: {0}")]
    Prompt(io::Error),
}

/// Where LND's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LndFiles {
    pub tls_cert: PathBuf,
    /// `None`: no chanvault.macaroon yet (init says how to bake one).
    pub macaroon: Option<PathBuf>,
    /// The dirs searched for macaroons (for the bake hint).
    pub macaroon_dir: PathBuf,
}

/// LND data dirs to try: `explicit`, else `~/.lnd` then [`LND_DIRS`].
pub fn candidate_dirs(explicit: Option<&Path>, home: Option<&Path>) -> Vec<PathBuf> {
    if let Some(d) = explicit {
        return vec![d.to_path_buf()];
    }
    let mut dirs: Vec<PathBuf> = home.map(|h| h.join(".lnd")).into_iter().collect();
    dirs.extend(LND_DIRS.iter().map(PathBuf::from));
    dirs
}

/// The macaroon dirs of one LND data dir: `data/chain/bitcoin/NETWORK`, then the dir itself.
pub fn macaroon_dirs(lnd_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = NETWORKS
        .iter()
        .map(|n| lnd_dir.join("data/chain/bitcoin").join(n))
        .collect();
    v.push(lnd_dir.to_path_buf());
    v
}

/// Find tls.cert and a chanvault macaroon, honouring the explicit flags.
pub fn find_lnd(
    lnd_dir: Option<&Path>,
    tls_cert: Option<&Path>,
    macaroon: Option<&Path>,
    home: Option<&Path>,
) -> Result<LndFiles, InitError> {
    let dirs = candidate_dirs(lnd_dir, home);
    let found_dir = dirs.iter().find(|d| d.join("tls.cert").is_file()).cloned();
    let tls_cert = match (tls_cert, &found_dir) {
        (Some(c), _) => c.to_path_buf(),
        (None, Some(d)) => d.join("tls.cert"),
        (None, None) => {
            let tried = dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(InitError::NoTlsCert { tried });
        }
    };
    let base = found_dir
        .or_else(|| lnd_dir.map(Path::to_path_buf))
        .or_else(|| tls_cert.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let mdirs = macaroon_dirs(&base);
    let macaroon_dir = mdirs
        .iter()
        .find(|d| d.join("admin.macaroon").is_file() || d.join("readonly.macaroon").is_file())
        .cloned()
        .unwrap_or_else(|| base.clone());
    let macaroon = match macaroon {
        Some(m) => Some(m.to_path_buf()),
        None => mdirs
            .iter()
            .map(|d| d.join(MACAROON_NAME))
            .find(|p| p.is_file()),
    };
    Ok(LndFiles {
        tls_cert,
        macaroon,
        macaroon_dir,
    })
}

/// A target name from a path: its last component, letters/digits/-/_ only, unique.
fn target_name(path: &Path, taken: &[String]) -> String {
    let base: String = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    let base = if base.is_empty() {
        "dir".to_string()
    } else {
        base
    };
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_path(p: &Path) -> String {
    toml_str(&p.display().to_string())
}

/// The commented config text.
pub fn render_config(
    args: &InitArgs,
    lnd: &LndFiles,
    macaroon: &Path,
    recipients: &[String],
    targets: &[PathBuf],
) -> String {
    let mut t = String::new();
    t.push_str("# chanvault config, written by `chanvault init`.\n");
    t.push_str(
        "# Every key: contrib/chanvault.example.toml and the README's configuration table.\n",
    );
    t.push_str("# It holds paths to secrets, never secrets.\n\n");
    t.push_str("# Spool and journal (created 0700).\n");
    t.push_str(&format!("state_dir = {}\n\n", toml_path(&args.state_dir)));
    t.push_str("[lnd]\n");
    t.push_str(&format!("address = {}\n", toml_str(&args.lnd_address)));
    t.push_str("# Pinned byte for byte: after LND regenerates it, restart chanvault.\n");
    t.push_str(&format!("tls_cert = {}\n", toml_path(&lnd.tls_cert)));
    t.push_str("# Needs offchain:read only: lncli bakemacaroon offchain:read --save_to FILE\n");
    t.push_str(&format!("macaroon = {}\n\n", toml_path(macaroon)));
    t.push_str("[backup]\n# Full export every 15 minutes (cron with a seconds field), besides the stream.\n");
    t.push_str(&format!(
        "schedule = {}\nkeep = {}\n\n",
        toml_str(crate::config::DEFAULT_SCHEDULE),
        crate::config::DEFAULT_KEEP
    ));
    t.push_str("[seal]\n# Backups are sealed to every recipient. Add an OFFLINE one (a key that never lives on this host).\n");
    t.push_str("recipients = [\n");
    for r in recipients {
        t.push_str(&format!("    {},\n", toml_str(r)));
    }
    t.push_str("]\n\n");
    t.push_str("[metrics]\n# /metrics and /healthz of `chanvault watch`.\nenabled = true\n");
    t.push_str(&format!(
        "listen = {}\n",
        toml_str(crate::config::DEFAULT_METRICS_LISTEN)
    ));
    let mut names: Vec<String> = vec![];
    for p in targets {
        let name = target_name(p, &names);
        t.push_str("\n# A directory that PBS (or any file backup) picks up.\n[[target]]\n");
        t.push_str(&format!(
            "name = {}\nkind = \"dir\"\npath = {}\n",
            toml_str(&name),
            toml_path(p)
        ));
        names.push(name);
    }
    if targets.is_empty() {
        t.push_str("\n# No target yet: backups stay in the spool only. Add one, e.g.\n");
        t.push_str("# [[target]]\n# name = \"pbs\"\n# kind = \"dir\"\n# path = \"/srv/pbs-pickup/chanvault\"\n");
    }
    t
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Ask on stdout, read a line from `input`; empty answer -> `None`.
fn ask(
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    question: &str,
) -> Result<Option<String>, InitError> {
    let _ = write!(out, "{question} ");
    let _ = out.flush();
    let mut line = String::new();
    input.read_line(&mut line).map_err(InitError::Prompt)?;
    let a = line.trim();
    Ok((!a.is_empty()).then(|| a.to_string()))
}

/// Run `init` against the real stdin/stdout.
pub fn run(mut args: InitArgs) -> Result<(), InitError> {
    let interactive = !args.non_interactive && io::stdin().is_terminal();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut out = io::stdout();
    if interactive {
        prompt_missing(&mut args, home.as_deref(), &mut input, &mut out)?;
    }
    run_with(&args, home.as_deref(), &mut out)
}

/// Interactive: ask for what the flags did not say.
fn prompt_missing(
    args: &mut InitArgs,
    home: Option<&Path>,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), InitError> {
    if args.tls_cert.is_none()
        && find_lnd(args.lnd_dir.as_deref(), None, None, home).is_err()
        && let Some(d) = ask(input, out, "LND data dir (with tls.cert)?")?
    {
        args.lnd_dir = Some(PathBuf::from(d));
    }
    if args.recipients.is_empty()
        && let Some(r) = ask(
            input,
            out,
            "An OFFLINE recipient (age1… or ssh-ed25519 …; empty to add one later)?",
        )?
    {
        args.recipients.push(r);
    }
    if args.target_dirs.is_empty() {
        while let Some(p) = ask(
            input,
            out,
            "A directory target (e.g. /srv/pbs-pickup/chanvault; empty when done)?",
        )? {
            args.target_dirs.push(PathBuf::from(p));
        }
    }
    Ok(())
}

/// Everything after the questions: find, generate, render, check, write, explain.
pub fn run_with(
    args: &InitArgs,
    home: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), InitError> {
    let config = absolute(&args.config);
    if config.exists() {
        return Err(InitError::ConfigExists(config));
    }
    let lnd = find_lnd(
        args.lnd_dir.as_deref(),
        args.tls_cert.as_deref(),
        args.macaroon.as_deref(),
        home,
    )?;
    let lnd = LndFiles {
        tls_cert: absolute(&lnd.tls_cert),
        macaroon: lnd.macaroon.as_deref().map(absolute),
        macaroon_dir: absolute(&lnd.macaroon_dir),
    };
    crate::lnd::load_cert(&lnd.tls_cert).map_err(|e| InitError::Unusable {
        path: lnd.tls_cert.clone(),
        reason: e.to_string(),
    })?;
    for r in &args.recipients {
        crate::seal::Recipients::parse_one(r, "--recipient")?;
    }
    let config_dir = config
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let macaroon = lnd
        .macaroon
        .clone()
        .unwrap_or_else(|| config_dir.join(MACAROON_NAME));
    let identity = absolute(
        &args
            .identity
            .clone()
            .unwrap_or_else(|| config_dir.join("identity.txt")),
    );
    if identity.exists() {
        return Err(crate::seal::SealError::IdentityExists { path: identity }.into());
    }
    let targets: Vec<PathBuf> = args.target_dirs.iter().map(|p| absolute(p)).collect();
    // Render and check with a placeholder recipient first, so nothing is
    // written when the config would not load.
    let (_, probe) = crate::seal::generate_identity();
    let mut recipients = vec![probe];
    recipients.extend(args.recipients.iter().cloned());
    let state_dir = absolute(&args.state_dir);
    let args_abs = InitArgs {
        state_dir,
        ..args.clone()
    };
    let text = render_config(&args_abs, &lnd, &macaroon, &recipients, &targets);
    Config::parse(&text, &config).map_err(|e| InitError::Generated(e.to_string()))?;

    crate::fsutil::ensure_dir(&config_dir, 0o755).map_err(|source| InitError::Write {
        path: config_dir.clone(),
        source,
    })?;
    if let Some(parent) = identity.parent() {
        crate::fsutil::ensure_dir(parent, 0o700).map_err(|source| InitError::Write {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let recipient = crate::seal::write_new_identity(&identity)?;
    recipients[0] = recipient.clone();
    let text = render_config(&args_abs, &lnd, &macaroon, &recipients, &targets);
    write_new(&config, text.as_bytes())?;

    let mut say = |s: String| {
        let _ = writeln!(out, "{s}");
    };
    say(format!("LND tls.cert: {}", lnd.tls_cert.display()));
    match &lnd.macaroon {
        Some(m) => say(format!("macaroon: {}", m.display())),
        None => {
            say(format!(
                "macaroon: none with offchain:read found in {}; bake one that can only read channel backups:",
                lnd.macaroon_dir.display()
            ));
            say(format!(
                "    lncli bakemacaroon offchain:read --save_to {}",
                macaroon.display()
            ));
        }
    }
    say(format!("age identity: {} (0600)", identity.display()));
    say(format!("    recipient {recipient}"));
    say("    Keep a copy of this identity OFF this host (or escrow it: chanvault keys put age-identity NAME --file …),".into());
    if args.recipients.is_empty() {
        say("    and ALSO add an offline recipient to seal.recipients: a key whose identity never lives here.".into());
    }
    if targets.is_empty() {
        say("targets: none yet; backups stay in the spool until you add a [[target]].".into());
    }
    for p in &targets {
        say(format!("target dir: {}", p.display()));
    }
    say(format!("config: {}", config.display()));
    say(String::new());
    say("Next:".into());
    let c = config.display();
    say(format!("    chanvault check-config --config {c}"));
    say(format!("    chanvault backup --once --config {c}"));
    say("    systemctl enable --now chanvault.service chanvault-backup.timer chanvault-verify.timer".into());
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), InitError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                InitError::ConfigExists(path.to_path_buf())
            } else {
                InitError::Write {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|source| InitError::Write {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lnd_in_the_network_subdir() {
        let d = tempfile::tempdir().unwrap();
        let lnd = d.path().join(".lnd");
        let net = lnd.join("data/chain/bitcoin/mainnet");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(lnd.join("tls.cert"), b"x").unwrap();
        std::fs::write(net.join("admin.macaroon"), b"x").unwrap();
        let f = find_lnd(None, None, None, Some(d.path())).unwrap();
        assert_eq!(f.tls_cert, lnd.join("tls.cert"));
        assert_eq!(f.macaroon, None);
        assert_eq!(f.macaroon_dir, net);
        std::fs::write(net.join(MACAROON_NAME), b"x").unwrap();
        let f = find_lnd(None, None, None, Some(d.path())).unwrap();
        assert_eq!(f.macaroon, Some(net.join(MACAROON_NAME)));
    }

    #[test]
    fn no_tls_cert_names_where_it_looked() {
        let d = tempfile::tempdir().unwrap();
        let e = find_lnd(Some(d.path()), None, None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&d.path().display().to_string()), "{e}");
        assert!(e.contains("--lnd-dir"), "{e}");
    }

    #[test]
    fn target_names_are_valid_and_unique() {
        let a = target_name(Path::new("/srv/pbs pickup"), &[]);
        assert_eq!(a, "pbs-pickup");
        let b = target_name(Path::new("/mnt/x/pbs pickup"), &[a]);
        assert_eq!(b, "pbs-pickup-2");
        assert_eq!(target_name(Path::new("/"), &[]), "dir");
    }
}
