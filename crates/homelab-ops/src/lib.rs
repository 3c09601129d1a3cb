//! Operating the lab as library calls, for every front end (the CLI today, the dashboard
//! next): the Plan mapped to what `homelab-kube` applies and checks, the node inventory
//! `homelab-nodes` works on, where the kubeconfig goes, the secrets the lab needs and the
//! secrets file's health, the nodes' VMs on Proxmox VE, and `up`/`down`, which chain those
//! operations (with `journal`).
//!
//! Each module takes the validated lab and what the operation needs (plan, secrets, connection
//! choices) and returns typed data, reporting progress through events. Nothing here writes to
//! a terminal, parses a command line or decides an exit code: errors are `thiserror` enums
//! that name what failed and carry its context, and the front end decides how to show them.

pub mod backup_job;
pub mod cluster_plan;
pub mod dns;
pub mod down;
pub mod inventory;
pub mod journal;
pub mod kubeconfig;
pub mod openbao_init;
pub mod secrets;
pub mod secrets_doctor;
pub mod tls;
pub mod up;
pub mod vms;
