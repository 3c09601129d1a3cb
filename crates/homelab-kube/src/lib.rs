//! Applies, diffs, prunes, waits on and checks the health of a Plan in a cluster through the
//! Kubernetes API, and runs one-off Jobs to their end (see [`run_job`]).
//!
//! The crate speaks only Kubernetes: it takes plain manifests grouped into units (see
//! [`ApplyPlan`]) and health checks (see [`StatusChecks`]) that the CLI builds from the Plan,
//! and reports progress through [`Progress`] instead of printing. It never prints, never reads
//! the spec, and never logs the content of a Secret.

mod apply;
mod applyset;
mod claims;
mod connect;
mod diff;
mod error;
mod events;
mod jobs;
mod model;
mod objects;
mod order;
mod resolve;
mod retry;
mod status;
mod tls;
mod wait;
pub mod x509;

pub use apply::{ApplyOptions, ApplyReport, ObjectReport, PrunedObject, UnitReport};
pub use applyset::{ANNOTATION_KEEP, KEEP_VALUE, applyset_id, group_kind_label};
pub use claims::{StatefulSetClaims, delete_statefulset_claims};
pub use connect::{Cluster, KubeconfigSource, ResolvedKubeconfig};
pub use diff::{DiffOptions, DiffReport, ObjectChange, ObjectDiff};
pub use error::{ApplyError, ConnectError, PlanError};
pub use events::{ApplyEvent, ObjectOutcome, Progress};
pub use jobs::{
    JOB_UID_LABEL, JobError, JobEvent, JobOptions, JobOutcome, JobProgress, ObjectAddress,
    create_job, follow_job, get_object, job_summary, missing_references, pod_log, pod_state,
    run_job,
};
pub use model::{
    ApplyPlan, ApplySetRef, ApplyUnit, NamespacedName, ObjectRef, WaitFor, WorkloadKind,
};
pub use retry::RetryPolicy;
pub use status::{
    AlertCheck, AlertStatus, BackupCheck, BackupStatus, Check, ComponentCheck, ComponentStatus,
    GpuUse, Health, HelmChartRef, NodeStatus, Problem, StatusChecks, StatusOptions, StatusReport,
    UrlCheck, UrlStatus, WorkloadRef,
};
pub use tls::TlsCheckOptions;
