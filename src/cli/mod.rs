//! Command line: parsing, exit codes, human and JSON output. Everything the
//! commands do lives in the library; this file only wires and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;

use crate::config::{Config, DEFAULT_CONFIG};
use crate::pipeline::{Outcome, short};
use crate::status::Status;
use crate::watch::Agent;

pub mod audit;
#[cfg(feature = "sim")]
pub mod demo;
pub mod exit;
pub mod inspect;
pub mod keys;
pub mod restore;
mod restore_show;
pub mod verify;

#[derive(Parser, Debug)]
#[command(
    name = "chanvault",
    version,
    about = "Keeps LND's static channel backups sealed with age, durable and delivered",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    /// Log filter (error, warn, info, debug, trace, or a tracing directive); RUST_LOG also works.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct ConfigArg {
    /// Config file (TOML).
    #[arg(long, short = 'c', value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the event loop: follow LND's channel backup stream and keep every target current.
    Watch(ConfigArg),
    /// One export through the pipeline, one delivery attempt per target, then exit (for a timer).
    Backup {
        /// Required: run once and exit (the daemon is `watch`).
        #[arg(long, required = true)]
        once: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show what the spool holds and what each target has received.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Validate the config and print it as it will be used (it names secret files, never their contents).
    CheckConfig(ConfigArg),
    /// Write a first config: find LND's tls.cert and macaroon, create an age identity, add targets.
    Init(crate::init::InitArgs),
    /// Run the whole pipeline against a built-in LND simulator, with no external services.
    #[cfg(feature = "sim")]
    Demo {
        /// Directory for the demo's config, identity, state and targets (must be new or empty).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Channels the simulated node opens.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=2000))]
        channels: u16,
    },
    /// Key escrow in OpenBao: put, get, list, history, verify, export-public, rotate, reseal.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// The escrow audit log: verify its hash chain and its anchor in OpenBao, or show it.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Disaster recovery: list, fetch and decrypt a backup from the targets, restore it into LND.
    #[command(subcommand)]
    Restore(restore::RestoreCommand),
    /// The recovery drill: prove every target's newest backup restores today; table, JSON, Prometheus textfile.
    Verify(verify::VerifyArgs),
    /// Open a backup (a file, or one on a target) with the wallet's own key (aezeed or backup account xpub, from files or the escrow) and list its channels; needs no LND.
    Inspect(inspect::InspectArgs),
    /// Manage delivery targets.
    #[command(subcommand)]
    Target(TargetCommand),
    /// Developer tools.
    #[cfg(feature = "sim")]
    #[command(subcommand)]
    Dev(DevCommand),
}

#[derive(Subcommand, Debug)]
pub enum TargetCommand {
    /// Create the restic repository of a configured restic target (an error if it exists).
    Init {
        /// The target's name in the config.
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[cfg(feature = "sim")]
#[derive(Subcommand, Debug)]
pub enum DevCommand {
    /// Run the LND simulator standalone; reads commands (open, close, list, drop, restart, lose-db, quit) from stdin.
    LndSim {
        /// Directory for tls.cert, macaroons and the node key (reused if present).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Address to listen on (loopback only is sensible).
        #[arg(long, default_value = "127.0.0.1:10009")]
        listen: std::net::SocketAddr,
        /// Behave like lnd < 0.19: VerifyChanBackup answers with an empty message.
        #[arg(long)]
        old_verify: bool,
    },
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    // The demo tells its own story on stdout; its logs only speak up for problems.
    let default_level = match cli.command {
        #[cfg(feature = "sim")]
        Command::Demo { .. } => "warn",
        _ => "info",
    };
    init_logging(cli.log_level.as_deref(), default_level);
    if matches!(cli.command, Command::Watch(_)) {
        crate::malloc_env::tune_for_watch();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let code = rt.block_on(run(cli.command));
    // A blocking call may still hang (a target's HTTP request with a long
    // timeout). What matters is delivered or recorded as pending by now, so
    // the exit does not wait for it: dropping the runtime would.
    rt.shutdown_timeout(RUNTIME_STOP);
    code
}

/// How long the exit waits for blocking work still running.
const RUNTIME_STOP: std::time::Duration = std::time::Duration::from_secs(1);

fn init_logging(level: Option<&str>, default_level: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).ok(),
        None => EnvFilter::try_from_default_env().ok(),
    }
    .unwrap_or_else(|| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Progress of long work, one line each on stderr.
pub struct Stderr;

impl crate::progress::Progress for Stderr {
    fn step(&self, msg: &str) {
        eprintln!("chanvault: {msg}");
    }
}

/// One line on stderr, exit 1.
fn fail(msg: &str) -> ExitCode {
    eprintln!("chanvault: error: {}", crate::text::one_line(msg));
    ExitCode::from(exit::ERROR)
}

fn load(path: &Path) -> Result<Config, String> {
    Config::load(path).map_err(|e| e.to_string())
}

async fn run(cmd: Command) -> ExitCode {
    match cmd {
        Command::Watch(c) => match watch_cmd(&c.config).await {
            Ok(Ok(())) => ExitCode::from(exit::OK),
            Ok(Err(e)) => {
                eprintln!(
                    "chanvault: error: {}",
                    crate::text::one_line(&e.to_string())
                );
                ExitCode::from(exit::of_watch(&e))
            }
            Err(e) => fail(&e),
        },
        Command::Backup { config, .. } => match backup_once(&config.config).await {
            Ok(code) => ExitCode::from(code),
            Err(e) => fail(&e),
        },
        Command::Status { config, json } => match status(&config.config, json) {
            Ok(()) => ExitCode::from(exit::OK),
            Err(e) => fail(&e),
        },
        Command::CheckConfig(c) => match check_config(&c.config) {
            Ok(()) => ExitCode::from(exit::OK),
            Err(e) => fail(&e),
        },
        Command::Init(a) => match crate::init::run(a) {
            Ok(()) => ExitCode::from(exit::OK),
            Err(e) => fail(&e.to_string()),
        },
        #[cfg(feature = "sim")]
        Command::Demo { dir, channels } => match demo::run(&dir, channels.into()).await {
            Ok(()) => ExitCode::from(exit::OK),
            Err(e) => fail(&e),
        },
        Command::Keys(k) => match keys::keys(k).await {
            Ok(()) => ExitCode::from(exit::OK),
            Err(e) => fail(&e),
        },
        Command::Audit(a) => ExitCode::from(audit::run(a).await),
        Command::Restore(r) => ExitCode::from(restore::run(r).await),
        Command::Verify(v) => ExitCode::from(verify::run(v).await),
        Command::Inspect(a) => ExitCode::from(inspect::run(&a).await),
        Command::Target(TargetCommand::Init { name, config }) => {
            match target_init(&config.config, &name).await {
                Ok(()) => ExitCode::from(exit::OK),
                Err(e) => fail(&e),
            }
        }
        #[cfg(feature = "sim")]
        Command::Dev(DevCommand::LndSim {
            dir,
            listen,
            old_verify,
        }) => {
            let mut opts = crate::sim::SimOptions::new(dir);
            opts.listen = listen;
            opts.verify_returns_chan_points = !old_verify;
            let stdin = tokio::io::BufReader::new(tokio::io::stdin());
            match crate::sim::run_standalone(opts, stdin, std::io::stdout()).await {
                Ok(()) => ExitCode::from(exit::OK),
                Err(e) => fail(&e.to_string()),
            }
        }
    }
}

/// `watch`: set-up errors as text (exit 1); how the event loop ended.
async fn watch_cmd(path: &Path) -> Result<Result<(), crate::watch::AgentError>, String> {
    let cfg = load(path)?;
    let mut agent = Agent::new(cfg).map_err(|e| e.to_string())?;
    // Before the metrics port: a second watch on this state dir would
    // otherwise fail on the taken port, without naming the first one.
    agent.lock_instance().map_err(|e| e.to_string())?;
    agent.bind_metrics().map_err(|e| e.to_string())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received; finishing the step in flight");
        crate::systemd::notify_stopping();
        let _ = tx.send(true);
    });
    Ok(agent.watch(rx).await)
}

/// SIGTERM (systemd) or SIGINT (Ctrl-C).
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn backup_once(path: &Path) -> Result<u8, String> {
    let cfg = load(path)?;
    let agent = Agent::new(cfg).map_err(|e| e.to_string())?;
    let report = agent.backup_once().await.map_err(|e| e.to_string())?;
    let mut code = match &report.outcome {
        Outcome::Stored(r) if r.is_suspect() => {
            println!(
                "stored SUSPECT backup {} ({} channels): {}",
                short(&r.id),
                r.channels,
                r.suspect.as_deref().unwrap_or_default()
            );
            exit::SUSPECT
        }
        Outcome::Stored(r) => {
            println!(
                "stored backup {} ({} channels, fingerprint {})",
                short(&r.id),
                r.channels,
                short(&r.fingerprint)
            );
            exit::OK
        }
        Outcome::Duplicate { fingerprint } => {
            println!(
                "unchanged: the newest backup already has fingerprint {}",
                short(fingerprint)
            );
            exit::UNCHANGED
        }
    };
    for (target, err) in &report.failures {
        eprintln!("chanvault: delivery to {target} failed (will be retried): {err}");
        code = exit::UNDELIVERED;
    }
    Ok(code)
}

/// `target init NAME`: never implicit, so that a typo in a repository path or
/// an unmounted disk does not silently start a new, empty repository.
async fn target_init(path: &Path, name: &str) -> Result<(), String> {
    let cfg = load(path)?;
    let t = cfg
        .targets
        .iter()
        .find(|t| t.name() == name)
        .ok_or_else(|| format!("config {}: no target named {name:?}", cfg.source.display()))?;
    let sink = crate::sink::build(t);
    match sink.create().await.map_err(|e| e.to_string())? {
        Some(id) => {
            println!(
                "created {} repository {} ({}) for target {name}",
                sink.kind(),
                sink.location(),
                short(&id)
            );
            Ok(())
        }
        None => Err(format!(
            "config {}: target {name} is a {} target, which needs no init; only repositories (restic) are created this way",
            cfg.source.display(),
            sink.kind()
        )),
    }
}

fn status(path: &Path, json: bool) -> Result<(), String> {
    let cfg = load(path)?;
    let st = Status::read(&cfg).map_err(|e| e.to_string())?;
    if json {
        let text = serde_json::to_string_pretty(&st).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{}", st.human());
    }
    Ok(())
}

fn check_config(path: &Path) -> Result<(), String> {
    let cfg = load(path)?;
    // Everything that can be checked without LND: recipients parse, secret
    // files are readable, the state dir is usable.
    let recipients =
        crate::seal::Recipients::from_config(&cfg.seal.recipients, &cfg.seal.recipients_files)
            .map_err(|e| format!("config {}: {e}", cfg.source.display()))?;
    crate::lnd::load_cert(&cfg.lnd.tls_cert).map_err(|e| e.to_string())?;
    let macaroon = crate::lnd::load_macaroon(&cfg.lnd.macaroon).map_err(|e| e.to_string())?;
    crate::spool::Spool::open(&cfg.state_dir, cfg.backup.keep).map_err(|e| e.to_string())?;
    println!("# {}: OK", cfg.source.display());
    println!(
        "# {} recipient(s); macaroon {} is readable ({} bytes, contents not shown)",
        recipients.len(),
        cfg.lnd.macaroon.display(),
        macaroon.len()
    );
    print!("{}", cfg.to_toml());
    Ok(())
}
