//! Every integration test, in one binary: it links once instead of once per
//! file, which is most of a test build's time on a small machine (cargo's own
//! test suite is laid out the same way). Shared helpers live in `common`.
//! Run one area with a filter, e.g. `cargo test --test suite restore_e2e::`.

mod common;

mod age_interop;
mod audit_anchor;
mod backup_key;
mod cli;
mod contrib;
mod contrib_nix;
mod drill_tempdir;
mod escrow_bao;
mod escrow_bao_server;
mod escrow_cli;
mod escrow_ha;
mod escrow_material;
mod escrow_rotate;
mod fuzz_props;
mod hostile_peers;
mod hostile_targets;
mod init;
mod inspect;
mod inspect_escrow;
mod layout;
mod lnd_sim;
mod lnd_sim_wallet;
mod malloc_env;
mod many_nodes;
mod no_leaks;
mod privacy;
mod rclone_target;
mod recovery_stock_tools;
mod restic_target;
mod restore_contents;
mod restore_e2e;
mod secret_hygiene;
mod security_doc;
mod seed_drill;
mod shutdown;
mod signed_manifests;
mod slow_lnd;
mod socks_proxy;
mod stuck_targets;
mod systemd_notify;
mod torture_kill;
mod verify_drill;
mod watch_e2e;
