//! What several commands share, so that no command imports from another: reading the spec,
//! cluster, node and URL check flags, spec-aware completions with the plan and inventory built from them, progress and
//! reports of the node engine, secrets access, backup Jobs, Proxmox VMs, tables and durations.
//! Each command module
//! imports only from here (and from the output module); nothing here is a command itself.

pub(crate) mod backup;
pub(crate) mod checks;
pub(crate) mod cluster;
pub(crate) mod complete;
pub(crate) mod format;
pub(crate) mod nodes;
pub(crate) mod secrets;
pub(crate) mod spec;
pub(crate) mod steps;
pub(crate) mod vms;
