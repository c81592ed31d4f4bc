//! The `audit` commands: check the escrow audit log (its local hash chain,
//! then its anchor in OpenBao) or print it.
//!
//! `audit verify` passes only when both agree. A log that could not be
//! compared with its anchor (no `[escrow]` section, OpenBao down, sealed or
//! refusing, no anchor written yet) is its own exit code, never a pass:
//! the local chain alone cannot tell a truncated log whose head file was
//! recomputed from an honest one. `--local-only` asks for that weaker check
//! by name.

use std::path::Path;

use clap::{Args, Subcommand};

use super::{ConfigArg, exit, load};
use crate::escrow::anchor::AnchorError;
use crate::escrow::audit::{AuditLog, show_line};
use crate::escrow::store::Escrow;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the escrow audit log's hash chain and compare it with its anchor in OpenBao; exit 30 if it was changed, 31 if the anchor could not be checked.
    Verify(VerifyArgs),
    /// Print the escrow audit log readably.
    Show(ConfigArg),
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Check the local hash chain only, without OpenBao (weaker: whoever can write the state dir can rewrite the whole chain).
    #[arg(long)]
    pub local_only: bool,
}

pub async fn run(cmd: AuditCommand) -> u8 {
    let r = match cmd {
        AuditCommand::Verify(a) => verify(&a.config.config, a.local_only).await,
        AuditCommand::Show(c) => show(&c.config).map_err(|e| (exit::ERROR, e)),
    };
    match r {
        Ok(()) => exit::OK,
        Err((code, msg)) => {
            eprintln!("chanvault: error: {}", crate::text::one_line(&msg));
            code
        }
    }
}

async fn verify(config: &Path, local_only: bool) -> Result<(), (u8, String)> {
    let cfg = load(config).map_err(|e| (exit::ERROR, e))?;
    let log = AuditLog::new(&cfg.state_dir);
    let shown = log.path().display().to_string();
    if !log.exists() {
        return Err((
            exit::ERROR,
            format!(
                "no audit log at {shown}: nothing was escrowed from this machine, or its state dir was lost"
            ),
        ));
    }
    let entries = log
        .verify()
        .map_err(|e| (exit::AUDIT_TAMPERED, e.to_string()))?;
    let intact = format!("{shown}: {} record(s), hash chain intact", entries.len());
    if local_only {
        println!(
            "{intact} (local chain only: not compared with its anchor in OpenBao, so a truncation with the head file recomputed, or a consistent rewrite, would pass)"
        );
        return Ok(());
    }
    let unanchored = |why: String| (exit::AUDIT_UNANCHORED, format!("{intact}, but {why}"));
    if cfg.escrow.is_none() {
        return Err(unanchored(format!(
            "it is not anchored: {} has no [escrow] section, so there is no anchor in OpenBao to compare it with; pass --local-only to check the local chain alone",
            cfg.source.display()
        )));
    }
    let mut escrow = Escrow::open(&cfg).map_err(|e| {
        unanchored(format!(
            "it could not be compared with its anchor in OpenBao: {e}"
        ))
    })?;
    let path = escrow.anchor_path();
    let checked = match escrow.check_anchor(&entries).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(unanchored(format!(
                "there is no anchor at {path} in OpenBao: the log was never anchored (the first check after an upgrade, or an administrator removed it); the next escrow operation (e.g. chanvault keys list) writes it"
            )));
        }
        Err(e @ AnchorError::Unavailable(_)) => return Err(unanchored(e.to_string())),
        Err(e) => return Err((exit::AUDIT_TAMPERED, format!("{shown}: {e}"))),
    };
    println!(
        "{intact}; records 1-{} anchored in OpenBao at {path} ({} anchor version(s) compared)",
        checked.anchored, checked.versions_checked
    );
    let late = checked.unanchored();
    if late > 0 {
        eprintln!(
            "chanvault: warning: the last {late} record(s) ({}-{}) are not anchored yet (OpenBao could not be written when they were): until the next escrow operation anchors them, only the local chain protects them",
            checked.anchored + 1,
            checked.local
        );
    }
    Ok(())
}

fn show(config: &Path) -> Result<(), String> {
    let cfg = load(config)?;
    let log = AuditLog::new(&cfg.state_dir);
    let entries = log.read_all().map_err(|e| e.to_string())?;
    if entries.is_empty() {
        println!("(no records in {})", log.path().display());
    }
    for e in &entries {
        println!("{}", show_line(e));
    }
    if let Err(e) = log.verify() {
        eprintln!("chanvault: warning: {e}");
    }
    Ok(())
}
