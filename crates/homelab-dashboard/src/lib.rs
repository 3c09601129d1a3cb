//! `homelab serve`: the lab's dashboard, read-only. Pages, the same data as JSON under
//! `/api/...`, `/metrics` and `/healthz`, all from the plan and the checks `homelab status`
//! runs (called through `homelab-kube`, never reimplemented). Must not write to the cluster or
//! to disk, must not show a secret value, and must not bind beyond loopback without auth.

mod alerts;
mod auth;
mod backups;
mod docs;
mod html;
mod metrics;
mod model;
mod nodes;
mod pages;
mod reads;
mod server;

pub use auth::AuthToken;
pub use model::{
    ComponentInfo, ComponentView, Inventory, Overview, PinnedChart, UrlView, VersionView,
};
pub use server::{ServeError, ServeOptions, Served, check_listen, serve};
