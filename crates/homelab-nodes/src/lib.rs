//! Converges the lab's hosts over SSH as a list of phases: k3s install, join, remove, upgrade, snapshots, kubeconfig.
//!
//! Every operation takes an [`Inventory`] (the hosts and how to reach them; free of the
//! spec format), reports progress through an [`EventSink`] and returns a per-host
//! [`Report`] or a [`NodesError`]. Nothing is printed. Hosts are reached with the system
//! OpenSSH client, so `~/.ssh/config`, `ProxyJump`, the agent and `known_hosts` behave as
//! with `ssh`; unknown or changed host keys are refused. Cluster-side work (cordon, drain,
//! labels, etcd members) runs as `k3s kubectl` on a server over the same connections.

mod airgap;
mod apply;
mod cluster;
mod common;
mod drain;
mod error;
mod event;
mod facts;
mod gpu;
mod history;
mod inventory;
mod k3s_config;
mod kubeconfig;
mod phase;
mod remove;
mod reset;
mod shell;
mod snapshot;
mod ssh;
mod time;
mod upgrade;
mod validate;
mod version;
mod yaml;

pub use apply::{ApplyOptions, apply};
pub use cluster::{MANAGED_LABELS_ANNOTATION, MANAGED_TAINTS_ANNOTATION};
pub use error::{HostError, HostErrorKind, NodesError};
pub use event::{Confirm, Event, EventKind, EventSink, HostOutcome, HostReport, NoEvents, Report};
pub use history::{HISTORY_PATH, HistoryEntry, history};
pub use inventory::{
    DEFAULT_INSTALLER_URL, Host, InstallSource, Inventory, Limits, PrepareOptions, Role,
    SnapshotMount, SshOptions, SshTarget, Taint, TaintEffect, Timeouts, UpdateOrigins,
};
pub use k3s_config::{CONFIG_PATH, KUBECONFIG_PATH, TOKEN_PATH};
pub use kubeconfig::{KubeconfigOptions, KubeconfigOutcome, kubeconfig};
pub use remove::{RemoveOptions, remove};
pub use reset::reset;
pub use snapshot::{
    DEFAULT_SNAPSHOT_PREFIX, SnapshotInfo, snapshot_list, snapshot_prune, snapshot_restore,
    snapshot_save,
};
pub use upgrade::{PREVIOUS_BINARY_PATH, UpgradeOptions, upgrade};
pub use version::K3sVersion;

#[cfg(feature = "testkit")]
pub mod testkit;
