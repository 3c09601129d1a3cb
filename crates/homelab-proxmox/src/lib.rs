//! A small typed client for the Proxmox VE API: the request encoding, task and retry rules
//! here are pure; the HTTP transport lives at the edge and no lab logic belongs in this crate.

pub mod client;
pub mod wire;

pub use client::{Client, Credentials, ProxmoxError, Tls};
