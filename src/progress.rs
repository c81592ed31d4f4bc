//! Progress of long work (listing targets, asking LND, checking the
//! escrow), told to whoever runs it. The command line prints it on stderr; a
//! library caller passes [`Quiet`] or collects the steps itself.

/// Receives one line per step of long work.
pub trait Progress: Send + Sync {
    fn step(&self, msg: &str);
}

/// Drops every step.
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _msg: &str) {}
}
