//! Errors of node operations: per-host failures and operation-level refusals. Messages say
//! what is wrong, where, and what to do; they never contain a secret.

use std::path::PathBuf;

use crate::event::Report;

/// What kind of failure a host had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostErrorKind {
    /// No SSH connection could be made (refused, timed out, no route, unknown name).
    Unreachable,
    /// The host's key is not in `known_hosts`.
    HostKeyUnknown,
    /// The host's key differs from the one in `known_hosts`.
    HostKeyChanged,
    /// The SSH server rejected our credentials.
    AuthenticationFailed,
    /// `sudo` refused to run commands for the SSH user.
    SudoRefused,
    /// A remote command failed.
    CommandFailed,
    /// A step did not finish in time.
    Timeout,
    /// The host cannot be used as it is (validation refused it).
    Refused,
    /// The connection dropped while working.
    ConnectionLost,
    /// A local file needed for the host could not be read.
    LocalIo,
}

/// A failure on one host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host}: {message}")]
pub struct HostError {
    /// The host's name.
    pub host: String,
    /// What kind of failure.
    pub kind: HostErrorKind,
    /// What went wrong and what to do next.
    pub message: String,
}

impl HostError {
    pub(crate) fn new(host: &str, kind: HostErrorKind, message: impl Into<String>) -> Self {
        HostError {
            host: host.to_string(),
            kind,
            message: message.into(),
        }
    }
}

/// Why a node operation could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    /// The inventory itself is unusable; no host was contacted.
    #[error("the node inventory is invalid:\n  - {}", problems.join("\n  - "))]
    InvalidInventory {
        /// Every problem found.
        problems: Vec<String>,
    },
    /// The named host is not in the inventory.
    #[error(
        "no host named {name:?} in the inventory (hosts: {known}); the host must stay in homelab.yaml until it has been removed"
    )]
    UnknownHost {
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// The caller did not confirm a destructive operation.
    #[error("{operation} cancelled: nothing was changed")]
    Cancelled {
        /// The operation.
        operation: String,
    },
    /// The operation was refused before anything was changed.
    #[error("refusing to {operation}: {reason}")]
    Refused {
        /// The operation.
        operation: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// The operation ran but failed on some host or stopped early; the report says where.
    #[error("{operation} did not complete: {summary}")]
    Incomplete {
        /// The operation.
        operation: String,
        /// One line naming the hosts that failed and why.
        summary: String,
        /// The full per-host report.
        report: Box<Report>,
    },
    /// A single-host step failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A local file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    LocalIo {
        /// What was being done (`read`, `write`, ...).
        action: String,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A kubeconfig (fetched or local) could not be understood.
    #[error("kubeconfig {what} is not usable: {reason}")]
    BadKubeconfig {
        /// Which kubeconfig.
        what: String,
        /// Why.
        reason: String,
    },
}

impl NodesError {
    pub(crate) fn local_io(action: &str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NodesError::LocalIo {
            action: action.to_string(),
            path: path.into(),
            source,
        }
    }

    /// The per-host report, when the operation ran far enough to produce one.
    pub fn report(&self) -> Option<&Report> {
        match self {
            NodesError::Incomplete { report, .. } => Some(report),
            _ => None,
        }
    }
}
