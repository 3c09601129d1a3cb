//! Errors of connecting, checking a plan and applying it. Each names the object or file it is
//! about and says what to do; none may carry an object's content.

use std::path::PathBuf;
use std::time::Duration;

/// Why no working connection to the Kubernetes API could be made. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "no kubeconfig found (looked at: {}); pass --kubeconfig FILE, set KUBECONFIG, or write one with `homelab kubeconfig`",
        .looked_at.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoKubeconfig { looked_at: Vec<PathBuf> },

    #[error("cannot read kubeconfig {}: {source}; check the file exists and is valid YAML", .path.display())]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },

    #[error("context {context:?} is not in the kubeconfig (available: {}); pass one of them with --context", .available.join(", "))]
    UnknownContext {
        context: String,
        available: Vec<String>,
    },

    #[error(
        "the kubeconfig cannot be used: {source}; check its current context, cluster and user entries"
    )]
    Config {
        #[source]
        source: kube::config::KubeconfigError,
    },

    #[error("cannot create a Kubernetes client for {server}: {source}")]
    Client {
        server: String,
        #[source]
        source: kube::Error,
    },

    #[error(
        "the Kubernetes API at {server} is unreachable: {reason}; check the cluster is running and the kubeconfig points at it (nothing was changed)"
    )]
    Unreachable { server: String, reason: String },
}

/// A plan that cannot be applied as given. Found before anything is sent to the cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("unit {unit:?} appears twice in the plan; unit names must be unique")]
    DuplicateUnit { unit: String },

    #[error("unit {unit:?} depends on {dependency:?}, which is not in the plan")]
    UnknownDependency { unit: String, dependency: String },

    #[error("units depend on each other in a cycle: {}; remove one of these dependencies", .units.join(" -> "))]
    Cycle { units: Vec<String> },

    #[error("object #{index} of unit {unit:?} is not a valid manifest: {reason}")]
    InvalidObject {
        unit: String,
        index: usize,
        reason: String,
    },

    #[error(
        "{object} is in both unit {first:?} and unit {second:?}; each object belongs to one unit"
    )]
    DuplicateObject {
        object: String,
        first: String,
        second: String,
    },

    #[error("field manager {0:?} is not valid: it must be 1 to 128 characters")]
    FieldManager(String),
}

/// Why `apply`, `diff` or prune stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Plan(#[from] PlanError),

    #[error(
        "the ApplySet parent Secret {namespace}/{name} belongs to {tooling:?}, not homelab; pick another ApplySet name or remove that Secret"
    )]
    ForeignApplySet {
        namespace: String,
        name: String,
        tooling: String,
    },

    #[error(
        "{object}: the cluster does not serve kind {kind} in {api_version}; install its CustomResourceDefinition first (or add the unit that does as a dependency)"
    )]
    UnknownKind {
        object: String,
        api_version: String,
        kind: String,
    },

    #[error("{object}: kind {kind} is namespaced but the manifest has no metadata.namespace")]
    MissingNamespace { object: String, kind: String },

    #[error("{action} {object} failed after {attempts} attempt(s): {message}{}", .code.map(|c| format!(" (HTTP {c})")).unwrap_or_default())]
    Api {
        action: &'static str,
        object: String,
        code: Option<u16>,
        message: String,
        attempts: u32,
    },

    #[error(
        "unit {unit:?}: gave up after {:?} waiting for {what}; last seen: {last_status}",
        .timeout
    )]
    WaitTimeout {
        unit: String,
        what: String,
        timeout: Duration,
        last_status: String,
    },

    #[error("unit {unit:?}: {what} failed: {reason}")]
    WaitFailed {
        unit: String,
        what: String,
        reason: String,
    },
}
