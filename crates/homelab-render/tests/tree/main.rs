//! Tests of the rendered tree: snapshot and determinism, contents, re-rendering, and the
//! real validators (kubectl kustomize, Kubernetes and CRD schemas, promtool, amtool, nginx).

mod common;
mod contents;
mod crd;
mod flux;
mod proxy;
mod rerender;
mod snapshot;
mod validators;
