//! Runs a one-off Job to the end: creates it, follows the Job and its pod by polling until it
//! finishes or a deadline passes, and reads the pod's log. It creates only the Job it is
//! given and reads what that Job needs; it never deletes or changes another object and never
//! prints (progress goes to a [`JobProgress`]).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, LogParams, PostParams};
use serde::Serialize;
use serde_json::Value;

use crate::connect::Cluster;
use crate::error::ApplyError;
use crate::events::ApplyEvent;
use crate::retry::{RetryPolicy, is_transient, message_of, retry_reason, with_retry};
use crate::wait::{Probe, api_resource, condition, get_json, job_resource, job_state};

/// The label the Job controller puts on every pod of a Job (Kubernetes 1.27 and later).
pub const JOB_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

/// How a Job is followed.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// How long to wait for the Job to finish after it was created.
    pub timeout: Duration,
    /// Time between two looks at the Job and its pod.
    pub poll_interval: Duration,
    /// Retries of the create request and of the final log read.
    pub retry: RetryPolicy,
    /// Read the log while the pod runs and report new lines as [`JobEvent::LogLine`].
    pub follow_log: bool,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            timeout: Duration::from_secs(30 * 60),
            poll_interval: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            follow_log: true,
        }
    }
}

/// What happens to a Job while it is followed, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JobEvent {
    /// The Job was created.
    Created { namespace: String, name: String },
    /// A pod of the Job changed state (`Pending: ContainerCreating`, `Running`, ...).
    Pod { pod: String, state: String },
    /// A new line of the running pod's log (only with [`JobOptions::follow_log`]).
    LogLine { pod: String, line: String },
    /// A request failed for a passing reason and is tried again.
    Retrying {
        action: String,
        attempt: u32,
        reason: String,
    },
}

/// Receives the events of a followed Job. Implemented for closures.
pub trait JobProgress: Send + Sync {
    fn event(&self, event: JobEvent);
}

impl<F> JobProgress for F
where
    F: Fn(JobEvent) + Send + Sync,
{
    fn event(&self, event: JobEvent) {
        self(event)
    }
}

/// How a Job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobOutcome {
    pub namespace: String,
    pub name: String,
    pub succeeded: bool,
    /// The pod whose log was read: the Job's last one.
    pub pod: Option<String>,
    /// The container whose log was read: the pod's first.
    pub container: Option<String>,
    /// The container's exit code, when it ran to an end.
    pub exit_code: Option<i32>,
    /// Why the Job did not succeed, from its `Failed` condition and its container's end.
    pub failure: Option<String>,
    /// The container's log (stdout and stderr, as the runtime interleaved them).
    pub log: String,
    /// From the create request to the end.
    pub elapsed: Duration,
}

/// Why a Job could not be run or followed to its end.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the Job manifest cannot be used: {reason}")]
    InvalidManifest { reason: String },

    #[error("cannot create Job {namespace}/{name}: {message}{}", .code.map(|c| format!(" (HTTP {c})")).unwrap_or_default())]
    Create {
        namespace: String,
        name: String,
        code: Option<u16>,
        message: String,
    },

    #[error("{action} {object} failed: {message}{}", .code.map(|c| format!(" (HTTP {c})")).unwrap_or_default())]
    Api {
        action: &'static str,
        object: String,
        code: Option<u16>,
        message: String,
    },

    #[error(
        "lost track of Job {namespace}/{name}: {reason}. It may still be running: follow it with `kubectl -n {namespace} logs -f job/{name}` and `kubectl -n {namespace} get job {name}`"
    )]
    LostTrack {
        namespace: String,
        name: String,
        reason: String,
    },

    #[error(
        "Job {namespace}/{name} was deleted before it finished; see `kubectl -n {namespace} get events` for who deleted it"
    )]
    Vanished { namespace: String, name: String },

    #[error(
        "Job {namespace}/{name} did not finish within {}: {job_status}; {pod_status}. It is still in the cluster: follow it with `kubectl -n {namespace} logs -f job/{name}` and `kubectl -n {namespace} describe job {name}`, or stop it with `kubectl -n {namespace} delete job {name}`",
        human_duration(*.timeout)
    )]
    Timeout {
        namespace: String,
        name: String,
        timeout: Duration,
        /// What the Job's status said last.
        job_status: String,
        /// What its pod's status said last.
        pod_status: String,
    },
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, 0) => format!("{}ms", d.as_millis()),
        (0, 0, sec) => format!("{sec}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, sec) => format!("{m}m{sec}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

fn from_apply_error(err: ApplyError) -> JobError {
    match err {
        ApplyError::Api {
            action,
            object,
            code,
            message,
            ..
        } => JobError::Api {
            action,
            object,
            code,
            message,
        },
        other => JobError::Api {
            action: "follow",
            object: String::new(),
            code: None,
            message: other.to_string(),
        },
    }
}

/// Forwards the retry events of the shared retry helper as [`JobEvent::Retrying`].
struct RetryEvents<'a>(&'a dyn JobProgress);

impl crate::events::Progress for RetryEvents<'_> {
    fn event(&self, event: ApplyEvent) {
        if let ApplyEvent::Retrying {
            action,
            object,
            attempt,
            reason,
            ..
        } = event
        {
            self.0.event(JobEvent::Retrying {
                action: format!("{action} {object}"),
                attempt,
                reason,
            });
        }
    }
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// Namespace and name of a Job manifest, checked before anything is sent.
fn job_identity(job: &Value) -> Result<(String, String), JobError> {
    let bad = |reason: &str| JobError::InvalidManifest {
        reason: reason.to_string(),
    };
    if str_at(job, "/apiVersion") != Some("batch/v1") || str_at(job, "/kind") != Some("Job") {
        return Err(bad("it must have apiVersion batch/v1 and kind Job"));
    }
    let name = str_at(job, "/metadata/name").ok_or_else(|| bad("metadata.name is missing"))?;
    let namespace =
        str_at(job, "/metadata/namespace").ok_or_else(|| bad("metadata.namespace is missing"))?;
    let containers = job
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        return Err(bad("spec.template.spec.containers is empty"));
    }
    Ok((namespace.to_string(), name.to_string()))
}

/// The objects a Job's pod refers to that do not exist: ConfigMaps and Secrets mounted or read
/// into the environment, and PersistentVolumeClaims (each as `Kind namespace/name`). A pod
/// that refers to a missing object does not fail: it waits, so this is worth asking first.
/// References marked `optional: true` are not checked. Each read is retried under `retry`,
/// each retry reported to `progress`.
pub async fn missing_references(
    cluster: &Cluster,
    job: &Value,
    retry: &RetryPolicy,
    progress: &dyn JobProgress,
) -> Result<Vec<String>, JobError> {
    let (namespace, _) = job_identity(job)?;
    let mut wanted: Vec<(&'static str, &'static str, String)> = Vec::new();
    let mut want = |kind: &'static str, plural: &'static str, name: Option<&str>| {
        if let Some(name) = name
            && !wanted.iter().any(|(k, _, n)| *k == kind && n == name)
        {
            wanted.push((kind, plural, name.to_string()));
        }
    };
    let optional = |v: &Value| v.get("optional").and_then(Value::as_bool) == Some(true);
    let spec = job
        .pointer("/spec/template/spec")
        .cloned()
        .unwrap_or_default();
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        if let Some(cm) = volume.get("configMap").filter(|v| !optional(v)) {
            want("ConfigMap", "configmaps", cm["name"].as_str());
        }
        if let Some(s) = volume.get("secret").filter(|v| !optional(v)) {
            want("Secret", "secrets", s["secretName"].as_str());
        }
        if let Some(pvc) = volume.get("persistentVolumeClaim") {
            want(
                "PersistentVolumeClaim",
                "persistentvolumeclaims",
                pvc["claimName"].as_str(),
            );
        }
    }
    let containers = spec["initContainers"]
        .as_array()
        .into_iter()
        .chain(spec["containers"].as_array())
        .flatten();
    for container in containers {
        for env in container["env"].as_array().into_iter().flatten() {
            if let Some(r) = env
                .pointer("/valueFrom/secretKeyRef")
                .filter(|v| !optional(v))
            {
                want("Secret", "secrets", r["name"].as_str());
            }
            if let Some(r) = env
                .pointer("/valueFrom/configMapKeyRef")
                .filter(|v| !optional(v))
            {
                want("ConfigMap", "configmaps", r["name"].as_str());
            }
        }
        for from in container["envFrom"].as_array().into_iter().flatten() {
            if let Some(r) = from.get("secretRef").filter(|v| !optional(v)) {
                want("Secret", "secrets", r["name"].as_str());
            }
            if let Some(r) = from.get("configMapRef").filter(|v| !optional(v)) {
                want("ConfigMap", "configmaps", r["name"].as_str());
            }
        }
    }
    let mut missing = Vec::new();
    for (kind, plural, name) in wanted {
        let resource = api_resource("", "v1", kind, plural);
        let object = format!("{kind} {namespace}/{name}");
        let found = with_retry(retry, &RetryEvents(progress), "read", &object, || {
            get_json(cluster.client(), &resource, Some(&namespace), &name)
        })
        .await
        .map_err(from_apply_error)?;
        if found.is_none() {
            missing.push(object);
        }
    }
    Ok(missing)
}

/// Where one object is in the API, e.g. the CronJob a Job is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectAddress<'a> {
    /// `v1` or `group/version`.
    pub api_version: &'a str,
    pub kind: &'a str,
    /// The resource name, e.g. `cronjobs`.
    pub plural: &'a str,
    /// `None` for a cluster-scoped object.
    pub namespace: Option<&'a str>,
    pub name: &'a str,
}

/// Reads one object as JSON (`None` when it does not exist), retrying under `retry` and
/// reporting each retry to `progress`.
pub async fn get_object(
    cluster: &Cluster,
    address: ObjectAddress<'_>,
    retry: &RetryPolicy,
    progress: &dyn JobProgress,
) -> Result<Option<Value>, JobError> {
    let ObjectAddress {
        api_version,
        kind,
        plural,
        namespace,
        name,
    } = address;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = api_resource(group, version, kind, plural);
    let object = match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    };
    with_retry(retry, &RetryEvents(progress), "read", &object, || {
        get_json(cluster.client(), &resource, namespace, name)
    })
    .await
    .map_err(from_apply_error)
}

/// Creates the Job `job` (a full `batch/v1` manifest), follows it until it finishes or
/// `options.timeout` passes, and returns how it ended with its pod's log. A Job that fails is
/// an outcome (`succeeded: false`), not an error; an error means it could not be created or
/// followed to an end, and the Job may still be running.
pub async fn run_job(
    cluster: &Cluster,
    job: &Value,
    options: &JobOptions,
    progress: &dyn JobProgress,
) -> Result<JobOutcome, JobError> {
    let started = Instant::now();
    let uid = create_job(cluster, job, options, progress).await?;
    let (namespace, name) = job_identity(job)?;
    let mut outcome = follow_job(cluster, &namespace, &name, &uid, options, progress).await?;
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

/// Creates the Job and returns its uid. A create that timed out on the way may have reached the
/// server: when a retry then finds the name taken, the Job found is taken to be ours.
pub async fn create_job(
    cluster: &Cluster,
    job: &Value,
    options: &JobOptions,
    progress: &dyn JobProgress,
) -> Result<String, JobError> {
    let (namespace, name) = job_identity(job)?;
    let object: DynamicObject =
        serde_json::from_value(job.clone()).map_err(|e| JobError::InvalidManifest {
            reason: e.to_string(),
        })?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(cluster.client().clone(), &namespace, &job_resource());
    let attempts = options.retry.attempts.max(1);
    let mut attempt = 1;
    loop {
        match api.create(&PostParams::default(), &object).await {
            Ok(created) => {
                let uid = created.metadata.uid.unwrap_or_default();
                progress.event(JobEvent::Created {
                    namespace: namespace.clone(),
                    name: name.clone(),
                });
                return Ok(uid);
            }
            Err(kube::Error::Api(s)) if s.code == 409 && attempt > 1 => {
                let object = format!("Job {namespace}/{name}");
                let jobs = job_resource();
                let existing = with_retry(
                    &options.retry,
                    &RetryEvents(progress),
                    "read",
                    &object,
                    || get_json(cluster.client(), &jobs, Some(&namespace), &name),
                )
                .await
                .map_err(from_apply_error)?;
                let uid = existing
                    .as_ref()
                    .and_then(|j| str_at(j, "/metadata/uid"))
                    .unwrap_or_default()
                    .to_string();
                progress.event(JobEvent::Created {
                    namespace: namespace.clone(),
                    name: name.clone(),
                });
                return Ok(uid);
            }
            Err(e)
                if attempt < attempts
                    && is_transient(&e)
                    && !matches!(&e, kube::Error::Api(s) if s.code == 409) =>
            {
                progress.event(JobEvent::Retrying {
                    action: format!("create Job {namespace}/{name}"),
                    attempt,
                    reason: retry_reason(&e),
                });
                tokio::time::sleep(options.retry.wait_after(attempt, &e)).await;
                attempt += 1;
            }
            Err(e) => {
                let (code, message) = message_of(&e);
                return Err(JobError::Create {
                    namespace,
                    name,
                    code,
                    message,
                });
            }
        }
    }
}

/// The state of one pod as one line: its phase and, when it is not simply running, why.
pub fn pod_state(pod: &Value) -> String {
    let phase = str_at(pod, "/status/phase").unwrap_or("Pending");
    if let Some(c) = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
        })
    {
        let reason = c["reason"].as_str().unwrap_or("not scheduled");
        let message = c["message"].as_str().unwrap_or_default();
        return format!("{phase}: not scheduled ({reason}): {message}")
            .trim_end_matches(": ")
            .to_string();
    }
    let statuses = pod
        .pointer("/status/initContainerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            pod.pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    let mut details = Vec::new();
    for status in statuses {
        let container = status["name"].as_str().unwrap_or("?");
        if let Some(w) = status.pointer("/state/waiting") {
            let mut d = format!(
                "container {container} waiting: {}",
                w["reason"].as_str().unwrap_or("unknown reason")
            );
            if let Some(m) = w["message"].as_str().filter(|m| !m.is_empty()) {
                d.push_str(&format!(": {m}"));
            }
            details.push(d);
        } else if let Some(t) = status.pointer("/state/terminated") {
            details.push(terminated_text(container, t));
        }
    }
    if details.is_empty() {
        phase.to_string()
    } else {
        format!("{phase}: {}", details.join("; "))
    }
}

fn terminated_text(container: &str, t: &Value) -> String {
    let code = t["exitCode"].as_i64().unwrap_or(-1);
    let mut d = format!("container {container} exited with code {code}");
    if let Some(r) = t["reason"].as_str().filter(|r| !r.is_empty()) {
        d.push_str(&format!(" ({r})"));
    }
    if let Some(m) = t["message"].as_str().filter(|m| !m.is_empty()) {
        d.push_str(&format!(": {m}"));
    }
    d
}

/// The Job's status as one line: counts and conditions.
pub fn job_summary(job: &Value) -> String {
    let int = |p: &str| job.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let mut text = format!(
        "Job: {} active, {} succeeded, {} failed",
        int("/status/active"),
        int("/status/succeeded"),
        int("/status/failed")
    );
    if job
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty())
    {
        text.push_str(&format!("; {}", crate::wait::conditions_summary(job)));
    }
    text
}

fn creation_key(pod: &Value) -> (String, String) {
    (
        str_at(pod, "/metadata/creationTimestamp")
            .unwrap_or_default()
            .to_string(),
        str_at(pod, "/metadata/name")
            .unwrap_or_default()
            .to_string(),
    )
}

async fn job_pods(client: &Client, namespace: &str, uid: &str) -> Result<Vec<Value>, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &api_resource("", "v1", "Pod", "pods"),
    );
    let list = api
        .list(&ListParams::default().labels(&format!("{JOB_UID_LABEL}={uid}")))
        .await?;
    let mut pods: Vec<Value> = list
        .items
        .into_iter()
        .filter_map(|p| serde_json::to_value(p).ok())
        .collect();
    pods.sort_by_key(creation_key);
    Ok(pods)
}

async fn read_log(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
) -> Result<String, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.logs(
        pod,
        &LogParams {
            container: container.map(str::to_string),
            ..Default::default()
        },
    )
    .await
}

/// Reads the log of one container of a pod (its first when `container` is `None`).
pub async fn pod_log(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    retry: &RetryPolicy,
    progress: &dyn JobProgress,
) -> Result<String, JobError> {
    let object = format!("the log of pod {namespace}/{pod}");
    with_retry(retry, &RetryEvents(progress), "read", &object, || {
        read_log(cluster.client(), namespace, pod, container)
    })
    .await
    .map_err(from_apply_error)
}

fn first_container(pod_or_job: &Value, pointer: &str) -> Option<String> {
    pod_or_job
        .pointer(pointer)
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(|c| c["name"].as_str())
        .map(str::to_string)
}

/// Follows the Job `namespace/name` (whose uid is `uid`) until it finishes or the timeout
/// passes, then reads its last pod's log.
pub async fn follow_job(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    uid: &str,
    options: &JobOptions,
    progress: &dyn JobProgress,
) -> Result<JobOutcome, JobError> {
    let client = cluster.client();
    let started = Instant::now();
    let deadline = started + options.timeout;
    let object = format!("Job {namespace}/{name}");
    let jobs = job_resource();
    let mut last_job: Value;
    let mut last_pods: Vec<Value>;
    let mut pod_states: Vec<(String, String)> = Vec::new();
    // Lines of the current pod's log already reported.
    let mut followed: (String, usize) = (String::new(), 0);
    let events = RetryEvents(progress);
    // Each look retries passing failures (bounded, reported); a look that still fails loses
    // the Job, which goes on running in the cluster, and the error says how to follow it.
    let lost = |e: ApplyError| match e {
        ApplyError::Api { attempts: 1, .. } => from_apply_error(e),
        e => JobError::LostTrack {
            namespace: namespace.to_string(),
            name: name.to_string(),
            reason: e.to_string(),
        },
    };
    let finished = loop {
        let job = with_retry(&options.retry, &events, "read", &object, || {
            get_json(client, &jobs, Some(namespace), name)
        })
        .await
        .map_err(lost)?;
        match job {
            Some(job) => last_job = job,
            None => {
                return Err(JobError::Vanished {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                });
            }
        }
        last_pods = with_retry(&options.retry, &events, "list the pods of", &object, || {
            job_pods(client, namespace, uid)
        })
        .await
        .map_err(lost)?;
        // A pod's end is told after the last lines of its log, its other states before.
        let mut ended = Vec::new();
        for pod in &last_pods {
            let pod_name = str_at(pod, "/metadata/name")
                .unwrap_or_default()
                .to_string();
            let state = pod_state(pod);
            let changed = match pod_states.iter_mut().find(|(p, _)| *p == pod_name) {
                Some((_, s)) if *s == state => false,
                Some((_, s)) => {
                    *s = state.clone();
                    true
                }
                None => {
                    pod_states.push((pod_name.clone(), state.clone()));
                    true
                }
            };
            if changed {
                let event = JobEvent::Pod {
                    pod: pod_name,
                    state,
                };
                if matches!(str_at(pod, "/status/phase"), Some("Succeeded" | "Failed")) {
                    ended.push(event);
                } else {
                    progress.event(event);
                }
            }
        }
        let done = !matches!(job_state(&last_job), Probe::Pending(_)) && !last_job.is_null();
        if options.follow_log
            && let Some(pod) = last_pods.last()
        {
            follow_log(client, namespace, pod, done, &mut followed, progress).await;
        }
        for event in ended {
            progress.event(event);
        }
        if done {
            break last_job.clone();
        }
        let now = Instant::now();
        if now >= deadline {
            let pod_status = match last_pods.last() {
                Some(p) => format!(
                    "pod {}: {}",
                    str_at(p, "/metadata/name").unwrap_or_default(),
                    pod_state(p)
                ),
                None => "no pod was created".to_string(),
            };
            return Err(JobError::Timeout {
                namespace: namespace.to_string(),
                name: name.to_string(),
                timeout: options.timeout,
                job_status: job_summary(&last_job),
                pod_status,
            });
        }
        tokio::time::sleep(options.poll_interval.min(deadline - now)).await;
    };

    let succeeded = matches!(job_state(&finished), Probe::Ready);
    let last_pod = last_pods.last();
    let pod = last_pod.and_then(|p| str_at(p, "/metadata/name").map(str::to_string));
    let container = last_pod
        .and_then(|p| first_container(p, "/spec/containers"))
        .or_else(|| first_container(&finished, "/spec/template/spec/containers"));
    let terminated = last_pod.and_then(|p| {
        p.pointer("/status/containerStatuses")
            .and_then(Value::as_array)?
            .iter()
            .find(|s| s["name"].as_str() == container.as_deref())?
            .pointer("/state/terminated")
            .cloned()
    });
    let exit_code = terminated
        .as_ref()
        .and_then(|t| t["exitCode"].as_i64())
        .map(|c| c as i32);
    let log = match &pod {
        Some(p) => {
            pod_log(
                cluster,
                namespace,
                p,
                container.as_deref(),
                &options.retry,
                progress,
            )
            .await?
        }
        None => String::new(),
    };
    let failure = (!succeeded).then(|| {
        let mut parts = Vec::new();
        if let Some(c) = condition(&finished, "Failed") {
            let reason = c["reason"].as_str().unwrap_or_default();
            let message = c["message"].as_str().unwrap_or_default();
            parts.push(
                format!("{reason}: {message}")
                    .trim_matches([':', ' '])
                    .to_string(),
            );
        }
        match (&terminated, &container) {
            (Some(t), Some(c)) => parts.push(terminated_text(c, t)),
            _ if pod.is_none() => parts.push("no pod was created".to_string()),
            _ => {}
        }
        parts.join("; ")
    });
    Ok(JobOutcome {
        namespace: namespace.to_string(),
        name: name.to_string(),
        succeeded,
        pod,
        container,
        exit_code,
        failure,
        log,
        elapsed: started.elapsed(),
    })
}

/// Reports the lines of `pod`'s log that were not reported yet. Partial last lines wait for the
/// next look unless the Job is done; read errors are ignored (the final read reports them).
async fn follow_log(
    client: &Client,
    namespace: &str,
    pod: &Value,
    done: bool,
    followed: &mut (String, usize),
    progress: &dyn JobProgress,
) {
    let name = str_at(pod, "/metadata/name").unwrap_or_default();
    let started = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter().any(|c| {
                c.pointer("/state/running").is_some() || c.pointer("/state/terminated").is_some()
            })
        });
    if !started {
        return;
    }
    if followed.0 != name {
        *followed = (name.to_string(), 0);
    }
    let container = first_container(pod, "/spec/containers");
    let Ok(text) = read_log(client, namespace, name, container.as_deref()).await else {
        return;
    };
    let complete = if done || text.ends_with('\n') {
        text.as_str()
    } else {
        text.rsplit_once('\n').map_or("", |(head, _)| head)
    };
    let lines: Vec<&str> = complete.lines().collect();
    for line in lines.iter().skip(followed.1) {
        progress.event(JobEvent::LogLine {
            pod: name.to_string(),
            line: line.to_string(),
        });
    }
    followed.1 = followed.1.max(lines.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_states_say_why_a_pod_is_not_running() {
        assert_eq!(pod_state(&json!({})), "Pending");
        let unscheduled = json!({"status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "persistentvolumeclaim \"postgres-backup\" not found"}]}});
        assert_eq!(
            pod_state(&unscheduled),
            "Pending: not scheduled (Unschedulable): persistentvolumeclaim \"postgres-backup\" not found"
        );
        let waiting = json!({"status": {"phase": "Pending", "containerStatuses": [
            {"name": "backup", "state": {"waiting": {"reason": "CreateContainerConfigError",
             "message": "secret \"postgres-superuser\" not found"}}}]}});
        assert_eq!(
            pod_state(&waiting),
            "Pending: container backup waiting: CreateContainerConfigError: secret \"postgres-superuser\" not found"
        );
        let failed = json!({"status": {"phase": "Failed", "containerStatuses": [
            {"name": "backup", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]}});
        assert_eq!(
            pod_state(&failed),
            "Failed: container backup exited with code 3 (Error)"
        );
        let running = json!({"status": {"phase": "Running", "containerStatuses": [
            {"name": "backup", "state": {"running": {"startedAt": "2026-11-22T00:00:00Z"}}}]}});
        assert_eq!(pod_state(&running), "Running");
    }

    #[test]
    fn job_summaries_count_and_name_conditions() {
        let job = json!({"status": {"failed": 1, "conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"}]}});
        assert_eq!(
            job_summary(&job),
            "Job: 0 active, 0 succeeded, 1 failed; Failed=True (BackoffLimitExceeded): Job has reached the specified backoff limit"
        );
    }

    #[test]
    fn manifests_must_be_namespaced_jobs_with_a_container() {
        let ok = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "data"},
            "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}});
        assert_eq!(job_identity(&ok).unwrap(), ("data".into(), "j".into()));
        let mut no_ns = ok.clone();
        no_ns["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("namespace");
        assert!(
            job_identity(&no_ns)
                .unwrap_err()
                .to_string()
                .contains("namespace")
        );
        let mut cronjob = ok.clone();
        cronjob["kind"] = json!("CronJob");
        assert!(
            job_identity(&cronjob)
                .unwrap_err()
                .to_string()
                .contains("kind Job")
        );
        let mut empty = ok;
        empty["spec"]["template"]["spec"]["containers"] = json!([]);
        assert!(
            job_identity(&empty)
                .unwrap_err()
                .to_string()
                .contains("containers")
        );
    }

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(human_duration(Duration::from_secs(45)), "45s");
        assert_eq!(human_duration(Duration::from_secs(1800)), "30m");
        assert_eq!(human_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(human_duration(Duration::from_secs(7260)), "2h1m");
    }
}
