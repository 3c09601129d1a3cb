//! Tests of the rendered tree: snapshot and determinism, contents, re-rendering, and the
//! real validators (kubectl kustomize, Kubernetes and CRD schemas, promtool, amtool, nginx),
//! and the P1 alert paths against NFR5's minute.

#[allow(dead_code)] // shared with the chart tier, which uses all of it
mod alert_budget;
mod alerts;
mod common;
mod contents;
mod crd;
mod dns01;
mod etcd_mount;
mod flux;
mod flux_vault;
mod gpu;
mod internal_ca;
mod manifests;
mod open_webui;
mod openbao;
mod proxy;
mod rerender;
mod snapshot;
mod spread;
mod sso;
mod standalone;
mod validators;
mod vllm;

/// The real sops and OpenBao helpers of the secrets crate.
#[path = "../../../homelab-secrets/tests/common/tools.rs"]
mod sops_tools;
