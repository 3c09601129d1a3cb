//! Waits for the gates a unit declares (CRD established, webhook answering, HelmChart
//! installed, workload available) by polling, and reads readiness from object status. The
//! readiness rules are pure functions shared with `status`. Must not write to the cluster
//! (the webhook probe is a server-side dry run).

use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::ApiResource;
use serde_json::Value;

use crate::error::ApplyError;
use crate::events::Progress;
use crate::model::{WaitFor, WorkloadKind};
use crate::resolve::Resolver;
use crate::retry::{RetryPolicy, is_not_found, message_of, with_retry};

/// What a look at an object's status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    Ready,
    Pending(String),
    Failed(String),
}

pub(crate) fn api_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

pub(crate) fn workload_resource(kind: WorkloadKind) -> ApiResource {
    match kind {
        WorkloadKind::Deployment => api_resource("apps", "v1", "Deployment", "deployments"),
        WorkloadKind::StatefulSet => api_resource("apps", "v1", "StatefulSet", "statefulsets"),
        WorkloadKind::DaemonSet => api_resource("apps", "v1", "DaemonSet", "daemonsets"),
    }
}

pub(crate) fn crd_resource() -> ApiResource {
    api_resource(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
    )
}

pub(crate) fn helmchart_resource() -> ApiResource {
    api_resource("helm.cattle.io", "v1", "HelmChart", "helmcharts")
}

pub(crate) fn job_resource() -> ApiResource {
    api_resource("batch", "v1", "Job", "jobs")
}

/// GETs one object as JSON; `None` when it does not exist.
pub(crate) async fn get_json(
    client: &Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, kube::Error> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    match api.get(name).await {
        Ok(obj) => Ok(Some(
            serde_json::to_value(obj).map_err(kube::Error::SerdeError)?,
        )),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// `type=status (reason)` of a status condition, if present.
pub(crate) fn condition<'a>(v: &'a Value, kind: &str) -> Option<&'a Value> {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

fn condition_is_true(v: &Value, kind: &str) -> bool {
    condition(v, kind)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True")
}

pub(crate) fn conditions_summary(v: &Value) -> String {
    let Some(conds) = v.pointer("/status/conditions").and_then(Value::as_array) else {
        return "no status conditions".into();
    };
    conds
        .iter()
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
            let mut text = format!("{}={}", s("type"), s("status"));
            if !s("reason").is_empty() {
                text.push_str(&format!(" ({})", s("reason")));
            }
            if !s("message").is_empty() {
                text.push_str(&format!(": {}", s("message")));
            }
            text
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether a workload has caught up with its spec and all replicas are available.
pub(crate) fn workload_state(kind: WorkloadKind, v: &Value) -> Probe {
    let generation = int(v, "/metadata/generation");
    let observed = int(v, "/status/observedGeneration");
    if observed < generation {
        return Probe::Pending(format!(
            "controller has not seen the latest spec yet (observedGeneration {observed} < generation {generation})"
        ));
    }
    match kind {
        WorkloadKind::Deployment => {
            let want = v
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let updated = int(v, "/status/updatedReplicas");
            let available = int(v, "/status/availableReplicas");
            if let Some(c) = condition(v, "Progressing")
                && c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
            {
                return Probe::Failed(format!(
                    "rollout stalled: {}",
                    c.get("message").and_then(Value::as_str).unwrap_or_default()
                ));
            }
            if updated >= want
                && available >= want
                && int(v, "/status/replicas") <= want.max(updated)
            {
                Probe::Ready
            } else {
                Probe::Pending(format!(
                    "{available}/{want} replicas available, {updated}/{want} updated; {}",
                    conditions_summary(v)
                ))
            }
        }
        WorkloadKind::StatefulSet => {
            let want = v
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let ready = int(v, "/status/readyReplicas");
            let updated = int(v, "/status/updatedReplicas");
            let available = v
                .pointer("/status/availableReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(ready);
            if ready >= want && updated >= want && available >= want {
                Probe::Ready
            } else {
                Probe::Pending(format!(
                    "{ready}/{want} replicas ready, {updated}/{want} updated"
                ))
            }
        }
        WorkloadKind::DaemonSet => {
            let want = int(v, "/status/desiredNumberScheduled");
            let available = int(v, "/status/numberAvailable");
            let updated = int(v, "/status/updatedNumberScheduled");
            if available >= want && updated >= want {
                Probe::Ready
            } else {
                Probe::Pending(format!(
                    "{available}/{want} pods available, {updated}/{want} updated"
                ))
            }
        }
    }
}

/// Whether a CRD is established (its kind is served).
pub(crate) fn crd_state(v: &Value) -> Probe {
    if condition_is_true(v, "Established") {
        return Probe::Ready;
    }
    if let Some(c) = condition(v, "NamesAccepted")
        && c.get("status").and_then(Value::as_str) == Some("False")
    {
        return Probe::Failed(format!(
            "names not accepted: {}",
            c.get("message").and_then(Value::as_str).unwrap_or_default()
        ));
    }
    Probe::Pending(conditions_summary(v))
}

/// Whether a Job finished: `Ready` on success, `Failed` when it gave up.
pub(crate) fn job_state(v: &Value) -> Probe {
    if int(v, "/status/succeeded") >= 1 || condition_is_true(v, "Complete") {
        return Probe::Ready;
    }
    if condition_is_true(v, "Failed") {
        let c = condition(v, "Failed").cloned().unwrap_or_default();
        return Probe::Failed(format!(
            "job failed ({}): {}",
            c.get("reason").and_then(Value::as_str).unwrap_or_default(),
            c.get("message").and_then(Value::as_str).unwrap_or_default()
        ));
    }
    Probe::Pending(format!(
        "job running: {} active, {} failed attempts",
        int(v, "/status/active"),
        int(v, "/status/failed")
    ))
}

pub(crate) fn timestamp(v: &Value, pointer: &str) -> Option<Timestamp> {
    v.pointer(pointer)?.as_str()?.parse().ok()
}

/// When `field_manager` last wrote the object, by the server's clock.
pub(crate) fn managed_time(v: &Value, field_manager: &str) -> Option<Timestamp> {
    v.pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .filter(|m| m.get("manager").and_then(Value::as_str) == Some(field_manager))
        .filter_map(|m| m.get("time")?.as_str()?.parse::<Timestamp>().ok())
        .max()
}

/// Everything a wait needs besides its target.
pub(crate) struct WaitContext<'a> {
    pub client: &'a Client,
    pub field_manager: &'a str,
    pub timeout: Duration,
    pub poll: Duration,
    pub retry: &'a RetryPolicy,
    pub progress: &'a dyn Progress,
}

/// The first pause between two looks; it doubles up to the poll interval. Most gates pass
/// within a second (a CRD is established, a small Job finishes), so polling at the full
/// interval from the start would add up to one interval per gate for nothing.
const FIRST_POLL: Duration = Duration::from_millis(50);

/// Pauses between looks at something that is not ready yet: short at first, doubling up to
/// `interval`.
#[derive(Debug, Clone)]
pub(crate) struct PollDelay {
    next: Duration,
    interval: Duration,
}

impl PollDelay {
    pub fn new(interval: Duration) -> PollDelay {
        PollDelay {
            next: FIRST_POLL.min(interval),
            interval,
        }
    }

    pub async fn sleep(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = self.next.saturating_mul(2).min(self.interval);
    }
}

/// Polls until `what` holds, fails, or the timeout passes. `since` is when this run changed
/// the HelmChart (server clock): an install Job older than that is from a previous change.
pub(crate) async fn wait_for(
    ctx: &WaitContext<'_>,
    resolver: &tokio::sync::Mutex<Resolver>,
    unit: &str,
    what: &WaitFor,
    since: Option<Timestamp>,
) -> Result<(), ApplyError> {
    let start = Instant::now();
    let mut delay = PollDelay::new(ctx.poll);
    loop {
        // Each look retries passing failures itself (bounded, reported); one that still
        // fails ends the wait rather than polling a broken API until the timeout.
        let probe = match probe_once(ctx, resolver, what, since).await {
            Ok(p) => p,
            Err(e) => Probe::Failed(e.to_string()),
        };
        match probe {
            Probe::Ready => return Ok(()),
            Probe::Failed(reason) => {
                return Err(ApplyError::WaitFailed {
                    unit: unit.to_string(),
                    what: what.to_string(),
                    reason,
                });
            }
            Probe::Pending(status) => {
                tracing::debug!(unit, what = %what, %status, "still waiting");
                if start.elapsed() >= ctx.timeout {
                    return Err(ApplyError::WaitTimeout {
                        unit: unit.to_string(),
                        what: what.to_string(),
                        timeout: ctx.timeout,
                        last_status: status,
                    });
                }
            }
        }
        delay.sleep().await;
    }
}

/// [`get_json`] with the context's retries; `what` names the object in events and errors.
async fn get_retrying(
    ctx: &WaitContext<'_>,
    resource: &ApiResource,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, ApplyError> {
    let what = match namespace {
        Some(ns) => format!("{} {ns}/{name}", resource.kind),
        None => format!("{} {name}", resource.kind),
    };
    with_retry(ctx.retry, ctx.progress, "read", &what, || {
        get_json(ctx.client, resource, namespace, name)
    })
    .await
}

/// One look at a gate. Passing API failures are retried; an error is one that stayed.
pub(crate) async fn probe_once(
    ctx: &WaitContext<'_>,
    resolver: &tokio::sync::Mutex<Resolver>,
    what: &WaitFor,
    since: Option<Timestamp>,
) -> Result<Probe, ApplyError> {
    let client = ctx.client;
    match what {
        WaitFor::CrdEstablished { name } => Ok(
            match get_retrying(ctx, &crd_resource(), None, name).await? {
                Some(crd) => crd_state(&crd),
                None => Probe::Pending("the CustomResourceDefinition does not exist yet".into()),
            },
        ),
        WaitFor::Available {
            kind,
            namespace,
            name,
        } => Ok(
            match get_retrying(ctx, &workload_resource(*kind), Some(namespace), name).await? {
                Some(w) => workload_state(*kind, &w),
                None => Probe::Pending(format!("{kind} does not exist yet")),
            },
        ),
        WaitFor::HelmChartInstalled { namespace, name } => {
            let Some(chart) =
                get_retrying(ctx, &helmchart_resource(), Some(namespace), name).await?
            else {
                return Ok(Probe::Pending("the HelmChart does not exist yet".into()));
            };
            let Some(job_name) = chart.pointer("/status/jobName").and_then(Value::as_str) else {
                return Ok(Probe::Pending(
                    "helm-controller has not started an install job yet (status.jobName is empty)"
                        .into(),
                ));
            };
            let Some(job) = get_retrying(ctx, &job_resource(), Some(namespace), job_name).await?
            else {
                return Ok(Probe::Pending(format!(
                    "install job {job_name} does not exist yet"
                )));
            };
            if let (Some(since), Some(created)) =
                (since, timestamp(&job, "/metadata/creationTimestamp"))
                && created < since
            {
                return Ok(Probe::Pending(format!(
                    "install job {job_name} is from before this change; waiting for helm-controller to start a new one"
                )));
            }
            Ok(match job_state(&job) {
                Probe::Pending(s) => Probe::Pending(format!("install job {job_name}: {s}")),
                Probe::Failed(s) => Probe::Failed(format!(
                    "install job {job_name}: {s}; see `kubectl -n {namespace} logs job/{job_name}`"
                )),
                Probe::Ready => Probe::Ready,
            })
        }
        WaitFor::Webhook { service, probe } => {
            let slices: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                &service.namespace,
                &api_resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
            );
            let params = ListParams::default()
                .labels(&format!("kubernetes.io/service-name={}", service.name));
            let list = with_retry(
                ctx.retry,
                ctx.progress,
                "list",
                &format!("EndpointSlices of Service {service}"),
                || slices.list(&params),
            )
            .await?;
            let ready = list.items.iter().any(|s| {
                s.data
                    .get("endpoints")
                    .and_then(Value::as_array)
                    .is_some_and(|eps| {
                        eps.iter().any(|e| {
                            e.pointer("/conditions/ready").and_then(Value::as_bool) != Some(false)
                        })
                    })
            });
            if !ready {
                return Ok(Probe::Pending(format!(
                    "Service {service} has no ready endpoint yet"
                )));
            }
            let Some(probe) = probe else {
                return Ok(Probe::Ready);
            };
            dry_run_create(ctx, resolver, probe).await
        }
    }
}

/// Server-side dry-run create of `probe`: the webhook answers when this is admitted (or
/// rejected only because the object already exists).
async fn dry_run_create(
    ctx: &WaitContext<'_>,
    resolver: &tokio::sync::Mutex<Resolver>,
    probe: &Value,
) -> Result<Probe, ApplyError> {
    let r = crate::model::ObjectRef::from_manifest(probe);
    let resolved = match resolver
        .lock()
        .await
        .resolve(&r.api_version, &r.kind, true, ctx.retry, ctx.progress)
        .await
    {
        Ok(Some(res)) => res,
        Ok(None) => {
            return Ok(Probe::Pending(format!(
                "kind {} {} is not served yet",
                r.api_version, r.kind
            )));
        }
        Err(e) => return Ok(Probe::Pending(e.to_string())),
    };
    let api: Api<DynamicObject> = match (&r.namespace, resolved.namespaced) {
        (Some(ns), true) => Api::namespaced_with(ctx.client.clone(), ns, &resolved.resource),
        _ => Api::all_with(ctx.client.clone(), &resolved.resource),
    };
    let object: DynamicObject = match serde_json::from_value(probe.clone()) {
        Ok(o) => o,
        Err(e) => {
            return Ok(Probe::Failed(format!(
                "the webhook probe {r} is not a valid object: {e}"
            )));
        }
    };
    let params = PostParams {
        dry_run: true,
        field_manager: Some(ctx.field_manager.to_string()),
    };
    match api.create(&params, &object).await {
        Ok(_) => Ok(Probe::Ready),
        Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
            Ok(Probe::Ready)
        }
        Err(e) => Ok(Probe::Pending(format!(
            "dry-run create of {r} was not admitted: {}",
            message_of(&e).1
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_is_ready_only_when_caught_up_and_available() {
        let mut d = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}});
        assert!(
            matches!(workload_state(WorkloadKind::Deployment, &d), Probe::Pending(s) if s.contains("observedGeneration 1 < generation 2"))
        );
        d["status"]["observedGeneration"] = json!(2);
        assert_eq!(workload_state(WorkloadKind::Deployment, &d), Probe::Ready);
        d["status"]["availableReplicas"] = json!(1);
        assert!(
            matches!(workload_state(WorkloadKind::Deployment, &d), Probe::Pending(s) if s.starts_with("1/2 replicas available"))
        );
        d["status"]["conditions"] = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet web-1 has timed out progressing."}]);
        assert!(
            matches!(workload_state(WorkloadKind::Deployment, &d), Probe::Failed(s) if s.contains("timed out"))
        );
    }

    #[test]
    fn statefulset_and_daemonset_readiness() {
        let s = json!({"metadata": {"generation": 1}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "readyReplicas": 0, "updatedReplicas": 1}});
        assert!(matches!(
            workload_state(WorkloadKind::StatefulSet, &s),
            Probe::Pending(_)
        ));
        let s = json!({"metadata": {"generation": 1}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1}});
        assert_eq!(workload_state(WorkloadKind::StatefulSet, &s), Probe::Ready);
        let d = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
            "desiredNumberScheduled": 3, "numberAvailable": 3, "updatedNumberScheduled": 3}});
        assert_eq!(workload_state(WorkloadKind::DaemonSet, &d), Probe::Ready);
    }

    #[test]
    fn crd_and_job_states() {
        let crd = json!({"status": {"conditions": [{"type": "NamesAccepted", "status": "False", "message": "kind clashes"}]}});
        assert!(matches!(crd_state(&crd), Probe::Failed(s) if s.contains("kind clashes")));
        let crd = json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}});
        assert_eq!(crd_state(&crd), Probe::Ready);
        let job = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}});
        assert!(matches!(job_state(&job), Probe::Failed(s) if s.contains("BackoffLimitExceeded")));
        assert_eq!(
            job_state(&json!({"status": {"succeeded": 1}})),
            Probe::Ready
        );
    }

    #[test]
    fn managed_time_reads_the_latest_entry_of_our_manager() {
        let v = json!({"metadata": {"managedFields": [
            {"manager": "homelab", "time": "2026-11-01T10:00:00Z"},
            {"manager": "other", "time": "2026-11-01T12:00:00Z"}
        ]}});
        assert_eq!(
            managed_time(&v, "homelab").unwrap().to_string(),
            "2026-11-01T10:00:00Z"
        );
        assert_eq!(managed_time(&v, "nobody"), None);
    }
}
