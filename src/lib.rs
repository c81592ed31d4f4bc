//! chanvault: keeps LND's static channel backups (SCB) sealed, durable and
//! delivered, so that losing the node's disk does not mean losing channel funds.
//!
//! The `watch` pipeline flows one way:
//! `lnd` (snapshots) -> `scb` (fingerprint) -> `seal` (age) -> `spool`
//! (durable, journaled) -> `sink` (delivery targets, which also read back).

// No unwrap/expect on paths that handle input; tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

// What the binary, the tests, the fuzz targets and the bench use is public;
// the rest is the crate's own.
mod beside;
pub mod chanbackup;
pub mod cli;
pub mod config;
mod deliver;
/// The widest gap between two uploads in a burst, in `delivery.min_interval_ms`s.
pub use deliver::MAX_STRETCH as DELIVERY_MAX_STRETCH;
pub mod escrow;
pub mod fsutil;
mod init;
mod inspect;
pub mod lnd;
pub mod malloc_env;
pub mod metrics;
pub mod pipeline;
pub mod privacy;
pub mod progress;
pub mod restore;
mod rotate;
pub mod scb;
pub mod seal;
pub mod secret;
pub mod signing;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sink;
pub mod spool;
pub mod state_dir;
mod status;
mod systemd;
mod text;
pub mod verify;
pub mod wallet;
pub mod watch;
