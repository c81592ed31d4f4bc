//! What `restore list` and `restore fetch` print: the listing table, what
//! the node's key reads inside a backup, how it differs from another, and
//! what LND says.

use crate::pipeline::short;
use crate::restore::contents::{Changed, Changes, Inside, ListedContents};
use crate::restore::{Listed, Listing, LndView};

/// Channel lines under a listing row start under its time column.
const ROW_INDENT: &str = "               ";

fn held_by(b: &Listed) -> String {
    let mut held: Vec<String> = b
        .held_by
        .iter()
        .map(|l| match &l.label {
            Some(label) => format!("{} ({label})", l.target),
            None => l.target.clone(),
        })
        .collect();
    held.dedup();
    held.join(", ")
}

/// The `restore list` table; with `rows`, each backup is followed by what is
/// inside it and its changes since the next older backup on its target
/// (with `verbose`, the channels themselves).
pub fn print_listing(listing: &Listing, rows: Option<&[ListedContents]>, verbose: bool) {
    println!(
        "{:<14} {:<24} {:>8}  {:<14} {:<8} held by",
        "backup", "time (UTC)", "channels", "fingerprint", "suspect"
    );
    for (i, b) in listing.backups.iter().enumerate() {
        println!(
            "{:<14} {:<24} {:>8}  {:<14} {:<8} {}",
            short(&b.id),
            b.created.format("%Y-%m-%d %H:%M:%S"),
            b.channels,
            short(&b.fingerprint),
            if b.suspect.is_some() { "SUSPECT" } else { "" },
            held_by(b)
        );
        if let Some(row) = rows.and_then(|r| r.get(i)) {
            print_row_inside(row, verbose);
        }
    }
    for (t, e) in &listing.failed_targets {
        println!("! target {t} could not be read: {e}");
    }
}

fn print_row_inside(row: &ListedContents, verbose: bool) {
    let found = match &row.inside {
        Inside::Read(found) => found,
        Inside::KeyError {
            backup_key_error: e,
        }
        | Inside::Unread { read_error: e } => {
            println!("{ROW_INDENT}cannot read it: {e}");
            return;
        }
    };
    let mut line = format!(
        "{ROW_INDENT}{} channel(s) with {} peer(s)",
        found.channels.len(),
        found.peer_count()
    );
    if let Some(c) = &row.changes {
        line.push_str(&format!(
            "; +{} -{} since {} on {}",
            c.added.len(),
            c.removed.len(),
            short(&c.from),
            c.target
        ));
    }
    println!("{line}");
    if let (true, Some(c)) = (verbose, &row.changes) {
        print_changed(&format!("{ROW_INDENT}  "), c);
    }
}

fn print_changed(indent: &str, c: &Changes) {
    let line = |sign: char, ch: &Changed| {
        println!("{indent}{sign} {}  peer {}", ch.chan_point, ch.peer);
    };
    c.added.iter().for_each(|ch| line('+', ch));
    c.removed.iter().for_each(|ch| line('-', ch));
}

/// What the node's key reads in a fetched backup.
pub fn print_inside(inside: Option<&Inside>) {
    match inside {
        None => {}
        Some(Inside::KeyError { backup_key_error }) => {
            println!("cannot read it with the backup key: {backup_key_error}")
        }
        Some(Inside::Unread { read_error }) => println!("cannot read it: {read_error}"),
        Some(Inside::Read(found)) => {
            println!(
                "the backup key {} reads {} channel(s) in it (no LND needed), with {} peer(s):",
                found.backup_key,
                found.channels.len(),
                found.peer_count()
            );
            for c in &found.channels {
                println!(
                    "  {}  peer {}  {}",
                    c.chan_point,
                    c.peer,
                    c.addresses_text()
                );
            }
        }
    }
}

/// How a fetched backup differs from the newest one on its target.
pub fn print_against_newest(compared: &Result<Changes, String>, newest_suspect: bool) {
    match compared {
        Err(e) => println!("cannot compare it with the newest backup: {e}"),
        Ok(c) if c.from == c.to => println!("it is the newest backup on target {}", c.target),
        Ok(c) => {
            let newest = format!(
                "the newest backup on target {} ({}{})",
                c.target,
                short(&c.to),
                if newest_suspect { ", SUSPECT" } else { "" }
            );
            if c.is_empty() {
                println!("{newest} has the same channels");
                return;
            }
            println!(
                "{newest}: +{} only there (opened since: restoring this one cannot recover them), \
                 -{} only here (closed since, or lost there):",
                c.added.len(),
                c.removed.len()
            );
            print_changed("  ", c);
        }
    }
}

pub fn print_lnd(v: &LndView) {
    if let Some(e) = &v.refused {
        println!("LND REFUSED this backup: {e}");
        return;
    }
    if !v.reachable {
        println!(
            "LND is unreachable ({}); channel points and missing channels cannot be shown",
            v.error.as_deref().unwrap_or("unknown error")
        );
        return;
    }
    match &v.covered {
        Some(c) => {
            println!(
                "covers {} channel(s) (decoded by LND's VerifyChanBackup):",
                c.len()
            );
            for p in c {
                println!("  {p}");
            }
        }
        None => println!("LND accepted the backup (lnd < 0.19 does not list its channel points)"),
    }
    match (&v.missing, &v.current) {
        (Some(m), _) if m.is_empty() => println!("every channel LND has now is in this backup"),
        (Some(m), _) => {
            println!(
                "{} of LND's current channel(s) are NOT in this backup:",
                m.len()
            );
            for p in m {
                println!("  {p}");
            }
        }
        (None, Some(c)) => println!("LND has {} channel(s) now", c.len()),
        _ => {}
    }
    if let Some(e) = &v.error {
        println!("LND: {e}");
    }
}
