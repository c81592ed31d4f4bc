//! `chanvault dev lnd-sim`: the simulator driven by line commands, so a
//! human can point chanvault at it and watch what happens.

use std::io::Write;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::{SimError, SimOptions, Simulator};
use crate::scb::ChanPoint;

const HELP: &str = "\
commands:
  open [N]                   open N channels (default 1): 2 snapshots each
  close [N|all|TXID:INDEX]   cooperatively close N (default 1), all, or one channel
  pending                    open a channel whose funding is unconfirmed
  list                       show open, pending and closed channels
  drop                       end every SubscribeChannelBackups stream
  restart                    stop and serve again (same cert, macaroons, channels)
  lose-db                    lose the channel DB without close records (lnd#4377)
  help                       this text
  quit                       stop and exit (EOF does the same)";

fn line(out: &mut impl Write, text: impl AsRef<str>) -> Result<(), SimError> {
    writeln!(out, "{}", text.as_ref()).map_err(SimError::Output)?;
    out.flush().map_err(SimError::Output)
}

fn join(points: &[ChanPoint]) -> String {
    if points.is_empty() {
        return "-".into();
    }
    points
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Start a simulator, print where it is and how to configure chanvault for
/// it, then execute one command per input line until EOF or `quit`,
/// printing one line per action. The simulator is stopped on return.
pub async fn run_standalone<R, W>(opts: SimOptions, input: R, mut out: W) -> Result<(), SimError>
where
    R: AsyncBufRead + Unpin,
    W: Write,
{
    let sim = Simulator::start(opts).await?;
    let result = command_loop(&sim, input, &mut out).await;
    sim.stop().await;
    let stopped = line(&mut out, "lnd-sim stopped");
    result.and(stopped)
}

async fn command_loop<R, W>(sim: &Simulator, mut input: R, out: &mut W) -> Result<(), SimError>
where
    R: AsyncBufRead + Unpin,
    W: Write,
{
    banner(sim, out)?;
    line(out, "type `help` for commands")?;

    let mut buf = String::new();
    loop {
        buf.clear();
        let n = input.read_line(&mut buf).await.map_err(|e| SimError::Io {
            path: "<stdin>".into(),
            source: e,
        })?;
        if n == 0 {
            return Ok(());
        }
        let mut words = buf.split_whitespace();
        let Some(cmd) = words.next() else {
            continue;
        };
        let arg = words.next();
        match cmd {
            "quit" | "exit" => return Ok(()),
            "help" => line(out, HELP)?,
            "open" => match arg.map_or(Ok(1), str::parse::<usize>) {
                Ok(n) => {
                    let opened = sim.open_channels(n);
                    line(
                        out,
                        format!("opened {} channel(s): {}", opened.len(), join(&opened)),
                    )?;
                }
                Err(_) => line(out, "usage: open [N]")?,
            },
            "pending" => {
                let cp = sim.open_pending_channel();
                line(out, format!("pending open: {cp}"))?;
            }
            "close" => close(sim, arg, out)?,
            "list" => list(sim, out)?,
            "drop" => {
                let n = sim.drop_streams();
                line(out, format!("ended {n} backup stream(s)"))?;
            }
            "restart" => match sim.restart().await {
                Ok(()) => line(out, format!("restarted on {}", sim.address()))?,
                Err(e) => line(out, format!("restart failed: {e}"))?,
            },
            "lose-db" => {
                let n = sim.lose_channel_db();
                line(
                    out,
                    format!("channel DB lost: {n} channel(s) gone without close records"),
                )?;
            }
            other => line(out, format!("unknown command {other:?}; type `help`"))?,
        }
    }
}

/// What the simulator listens on and where its credentials are.
fn banner<W: Write>(sim: &Simulator, out: &mut W) -> Result<(), SimError> {
    line(
        out,
        format!(
            "lnd-sim listening on {} (identity {})",
            sim.address(),
            sim.identity_pubkey()
        ),
    )?;
    line(
        out,
        format!("tls cert:          {}", sim.tls_cert_path().display()),
    )?;
    line(
        out,
        format!("admin macaroon:    {}", sim.admin_macaroon_path().display()),
    )?;
    line(
        out,
        format!(
            "readonly macaroon: {}",
            sim.readonly_macaroon_path().display()
        ),
    )?;
    line(
        out,
        format!(
            "chanvault macaroon (offchain:read): {}",
            sim.offchain_read_macaroon_path().display()
        ),
    )?;
    Ok(())
}

/// `close [N|all|TXID:INDEX]`
fn close<W: Write>(sim: &Simulator, arg: Option<&str>, out: &mut W) -> Result<(), SimError> {
    let open: Vec<ChanPoint> = sim.channels().into_iter().collect();
    let targets: Result<Vec<ChanPoint>, String> = match arg {
        None => Ok(open.into_iter().take(1).collect()),
        Some("all") => Ok(open),
        Some(a) if a.contains(':') => a
            .parse::<ChanPoint>()
            .map(|cp| vec![cp])
            .map_err(|e| e.to_string()),
        Some(a) => a
            .parse::<usize>()
            .map(|n| open.into_iter().take(n).collect())
            .map_err(|_| "usage: close [N|all|TXID:INDEX]".to_string()),
    };
    match targets {
        Err(e) => line(out, e)?,
        Ok(targets) => {
            let closed: Vec<ChanPoint> = targets
                .into_iter()
                .filter(|cp| sim.close_channel(cp))
                .collect();
            if closed.is_empty() {
                line(out, "no such open channel; nothing closed")?;
            } else {
                line(
                    out,
                    format!("closed {} channel(s): {}", closed.len(), join(&closed)),
                )?;
            }
        }
    }
    Ok(())
}

/// `list`: open, pending and closed channels.
fn list<W: Write>(sim: &Simulator, out: &mut W) -> Result<(), SimError> {
    let pending = sim.pending_channels();
    let open: Vec<ChanPoint> = sim
        .channels()
        .into_iter()
        .filter(|cp| !pending.contains(cp))
        .collect();
    let pending: Vec<ChanPoint> = pending.into_iter().collect();
    let closed: Vec<ChanPoint> = sim.closed().into_iter().collect();
    line(
        out,
        format!(
            "open {}: {} | pending {}: {} | closed {}: {}",
            open.len(),
            join(&open),
            pending.len(),
            join(&pending),
            closed.len(),
            join(&closed)
        ),
    )?;
    Ok(())
}
