//! What can go wrong talking to OpenBao.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("cannot read {what} {}: {source}", path.display())]
    ReadCredential {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {} is empty", path.display())]
    EmptyCredential { what: &'static str, path: PathBuf },
    #[error("cannot read OpenBao CA certificate {}: {detail}", path.display())]
    CaCert { path: PathBuf, detail: String },
    #[error("{0}")]
    Config(String),
    #[error(
        "OpenBao at {address} refused the token from {source_desc}: permission denied ({path})"
    )]
    Refused {
        address: String,
        source_desc: String,
        path: String,
    },
    #[error(
        "OpenBao at {address} is sealed; unseal it (bao operator unseal) and retry ({path}); nothing was written"
    )]
    Sealed { address: String, path: String },
    #[error("OpenBao at {address} is unreachable ({path}): {detail}")]
    Unreachable {
        address: String,
        path: String,
        detail: String,
    },
    #[error(
        "OpenBao at {address} did not answer {path} within {seconds}s (escrow.timeout_seconds); check the server and the network, then retry"
    )]
    Timeout {
        address: String,
        path: String,
        seconds: u64,
    },
    #[error("OpenBao at {address} sent a malformed reply for {path}: {detail}")]
    Malformed {
        address: String,
        path: String,
        detail: String,
    },
    #[error(
        "OpenBao at {address}: check-and-set conflict on {path}: it changed since it was read (expected version {expected}); read it again and retry"
    )]
    CasConflict {
        address: String,
        path: String,
        expected: u64,
    },
    #[error(
        "OpenBao at {address} redirected {path} to {location}, which is not in escrow.address; the token goes to configured nodes only: add that node to escrow.address if it belongs to the cluster"
    )]
    Redirect {
        address: String,
        path: String,
        location: String,
    },
    #[error("OpenBao at {address} knows no active node (an election is under way)")]
    NoLeader { address: String },
    #[error(
        "no OpenBao node answered as the active one within {seconds}s (escrow.timeout_seconds; tried {addresses}); last error: {last}"
    )]
    NoActiveNode {
        addresses: String,
        seconds: u64,
        last: String,
    },
    #[error("OpenBao at {address}: {path}: {status}: {message}")]
    Server {
        address: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error(
        "OpenBao at {address}: AppRole login at auth/{mount}/login failed: {message} (role-id {role_id_file}, secret-id {secret_id_file})"
    )]
    Login {
        address: String,
        mount: String,
        role_id_file: String,
        secret_id_file: String,
        message: String,
    },
}

impl KvError {
    /// A write that failed this way may still have been applied: the
    /// request may have reached OpenBao and only the reply was lost.
    pub fn in_doubt(&self) -> bool {
        match self {
            KvError::Timeout { .. } | KvError::Unreachable { .. } | KvError::Malformed { .. } => {
                true
            }
            KvError::Server { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// A short, secret-free class for the audit log.
    pub fn class(&self) -> &'static str {
        match self {
            KvError::ReadCredential { .. } | KvError::EmptyCredential { .. } => "credential-file",
            KvError::CaCert { .. } | KvError::Config(_) => "config",
            KvError::Refused { .. } => "permission-denied",
            KvError::Sealed { .. } => "sealed",
            KvError::Unreachable { .. } => "unreachable",
            KvError::Timeout { .. } => "timeout",
            KvError::Malformed { .. } => "malformed-reply",
            KvError::CasConflict { .. } => "cas-conflict",
            KvError::Server { .. } => "server-error",
            KvError::Login { .. } => "login-failed",
            KvError::Redirect { .. } => "redirect-refused",
            KvError::NoLeader { .. } | KvError::NoActiveNode { .. } => "no-active-node",
        }
    }
}
