//! One-off Jobs against a scripted API (tower-test mock service): the requests `run_job` makes
//! (create once, then only reads), the events it reports while the Job runs, how it reads the
//! outcome and the log, its timeout message, and its handling of failed requests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use homelab_kube::{
    Cluster, JobError, JobEvent, JobOptions, RetryPolicy, missing_references, run_job,
};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    body: Value,
}

impl Seen {
    fn line(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }
}

/// An answer: status and either a JSON document or plain text (pod logs).
enum Reply {
    Json(u16, Value),
    Text(u16, String),
}

type Responder = Box<dyn FnMut(&Seen) -> Reply + Send>;

fn mock(mut respond: Responder) -> (Cluster, tokio::task::JoinHandle<Vec<Seen>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let req = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (status, content_type, bytes) = match respond(&req) {
                Reply::Json(s, v) => (s, "application/json", serde_json::to_vec(&v).unwrap()),
                Reply::Text(s, t) => (s, "text/plain", t.into_bytes()),
            };
            seen.push(req);
            send.send_response(
                Response::builder()
                    .status(status)
                    .header("content-type", content_type)
                    .body(Body::from(bytes))
                    .unwrap(),
            );
        }
        seen
    });
    (
        Cluster::from_client(kube::Client::new(service, "default"), "https://mock"),
        server,
    )
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message})
}

fn job_manifest() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "restore-1", "namespace": "data", "labels": {"app.kubernetes.io/component": "backup-restore"}},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "backup", "image": "postgres:17", "command": ["bash", "/opt/homelab/restore.sh", "--db", "shop"]}],
        }}},
    })
}

fn job_with_status(uid: &str, status: Value) -> Value {
    let mut job = job_manifest();
    job["metadata"]["uid"] = json!(uid);
    job["status"] = status;
    job
}

fn pod(name: &str, status: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "data", "creationTimestamp": "2026-11-22T00:00:00Z",
                        "labels": {"batch.kubernetes.io/controller-uid": "uid-1", "batch.kubernetes.io/job-name": "restore-1"}},
           "spec": {"containers": [{"name": "backup", "image": "postgres:17"}]},
           "status": status})
}

fn pod_list(pods: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "7"}, "items": pods})
}

fn options() -> JobOptions {
    JobOptions {
        timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(5),
        retry: RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        },
        follow_log: true,
    }
}

fn recorder() -> (Arc<Mutex<Vec<JobEvent>>>, impl Fn(JobEvent) + Send + Sync) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    (events, move |e| sink.lock().unwrap().push(e))
}

const JOB_PATH: &str = "/apis/batch/v1/namespaces/data/jobs/restore-1";
const PODS_PATH: &str = "/api/v1/namespaces/data/pods";
const LOG_PATH: &str = "/api/v1/namespaces/data/pods/restore-1-x7k2p/log";

/// A Job that goes Pending -> Running -> Complete over three looks, printing its log as it runs.
fn successful_job() -> Responder {
    let mut looks = 0;
    Box::new(move |req| match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/apis/batch/v1/namespaces/data/jobs") => {
            Reply::Json(201, job_with_status("uid-1", json!({})))
        }
        ("GET", JOB_PATH) => {
            looks += 1;
            Reply::Json(
                200,
                job_with_status(
                    "uid-1",
                    if looks < 3 {
                        json!({"active": 1})
                    } else {
                        json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
                    },
                ),
            )
        }
        ("GET", PODS_PATH) => Reply::Json(
            200,
            pod_list(vec![pod(
                "restore-1-x7k2p",
                match looks {
                    1 => json!({"phase": "Pending", "containerStatuses": [
                        {"name": "backup", "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
                    2 => json!({"phase": "Running", "containerStatuses": [
                        {"name": "backup", "state": {"running": {"startedAt": "2026-11-22T00:00:01Z"}}}]}),
                    _ => json!({"phase": "Succeeded", "containerStatuses": [
                        {"name": "backup", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                },
            )]),
        ),
        ("GET", LOG_PATH) if looks < 3 => Reply::Text(200, "restoring shop\nchecking ta".into()),
        ("GET", LOG_PATH) => Reply::Text(
            200,
            "restoring shop\nchecking tables\nHOMELAB-RESTORE {\"kind\":\"summary\"}\n".into(),
        ),
        _ => Reply::Json(404, status(404, "NotFound", "not scripted")),
    })
}

#[tokio::test]
async fn a_job_is_created_once_followed_with_its_log_and_read_to_the_end() {
    let (cluster, server) = mock(successful_job());
    let (events, sink) = recorder();
    let outcome = run_job(&cluster, &job_manifest(), &options(), &sink)
        .await
        .unwrap();
    drop(cluster);
    let seen = server.await.unwrap();

    assert!(outcome.succeeded);
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(outcome.failure, None);
    assert_eq!(outcome.pod.as_deref(), Some("restore-1-x7k2p"));
    assert_eq!(outcome.container.as_deref(), Some("backup"));
    assert!(
        outcome
            .log
            .ends_with("HOMELAB-RESTORE {\"kind\":\"summary\"}\n")
    );

    // One create with the manifest as given; everything after it only reads.
    let writes: Vec<&Seen> = seen.iter().filter(|s| s.method != "GET").collect();
    assert_eq!(
        writes.len(),
        1,
        "{:?}",
        seen.iter().map(Seen::line).collect::<Vec<_>>()
    );
    assert_eq!(writes[0].body["metadata"]["name"], "restore-1");
    assert_eq!(writes[0].body["spec"]["backoffLimit"], 0);
    // Pods are found by the Job's uid, and the log of the Job's container is read.
    let list = seen.iter().find(|s| s.path == PODS_PATH).unwrap();
    assert_eq!(
        list.query,
        "&labelSelector=batch.kubernetes.io%2Fcontroller-uid%3Duid-1"
    );
    assert!(
        seen.iter()
            .filter(|s| s.path == LOG_PATH)
            .all(|s| s.query == "&container=backup"),
        "{:?}",
        seen.iter().map(Seen::line).collect::<Vec<_>>()
    );

    let events = events.lock().unwrap().clone();
    let pod = |state: &str| JobEvent::Pod {
        pod: "restore-1-x7k2p".into(),
        state: state.into(),
    };
    let line = |text: &str| JobEvent::LogLine {
        pod: "restore-1-x7k2p".into(),
        line: text.into(),
    };
    assert_eq!(
        events,
        vec![
            JobEvent::Created {
                namespace: "data".into(),
                name: "restore-1".into()
            },
            pod("Pending: container backup waiting: ContainerCreating"),
            pod("Running"),
            // The half-written line waits until it is complete.
            line("restoring shop"),
            line("checking tables"),
            line("HOMELAB-RESTORE {\"kind\":\"summary\"}"),
            // The end of the pod comes after the last lines of its log.
            pod("Succeeded: container backup exited with code 0 (Completed)"),
        ]
    );
}

#[tokio::test]
async fn a_failed_job_is_an_outcome_with_the_reason_and_the_exit_code() {
    let (cluster, server) = mock(Box::new(|req| {
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", _) => Reply::Json(201, job_with_status("uid-1", json!({}))),
            ("GET", JOB_PATH) => Reply::Json(
                200,
                job_with_status(
                    "uid-1",
                    json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                    "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}),
                ),
            ),
            ("GET", PODS_PATH) => Reply::Json(
                200,
                pod_list(vec![pod(
                    "restore-1-x7k2p",
                    json!({"phase": "Failed", "containerStatuses": [
                    {"name": "backup", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}),
                )]),
            ),
            ("GET", LOG_PATH) => {
                Reply::Text(200, "restore.sh: error: no dumps of database nope\n".into())
            }
            _ => Reply::Json(404, status(404, "NotFound", "not scripted")),
        }
    }));
    let (_, sink) = recorder();
    let outcome = run_job(&cluster, &job_manifest(), &options(), &sink)
        .await
        .unwrap();
    drop(cluster);
    server.await.unwrap();
    assert!(!outcome.succeeded);
    assert_eq!(outcome.exit_code, Some(2));
    assert_eq!(
        outcome.failure.as_deref(),
        Some(
            "BackoffLimitExceeded: Job has reached the specified backoff limit; container backup exited with code 2 (Error)"
        )
    );
    assert!(outcome.log.contains("no dumps of database nope"));
}

#[tokio::test]
async fn a_job_that_does_not_finish_in_time_is_left_running_and_the_error_says_what_it_waited_for()
{
    let (cluster, server) = mock(Box::new(|req| {
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", _) => Reply::Json(201, job_with_status("uid-1", json!({}))),
            ("GET", JOB_PATH) => Reply::Json(200, job_with_status("uid-1", json!({"active": 1}))),
            ("GET", PODS_PATH) => Reply::Json(
                200,
                pod_list(vec![pod(
                    "restore-1-x7k2p",
                    json!({"phase": "Pending", "containerStatuses": [{"name": "backup", "state": {"waiting": {
                    "reason": "CreateContainerConfigError", "message": "secret \"postgres-superuser\" not found"}}}]}),
                )]),
            ),
            _ => Reply::Json(404, status(404, "NotFound", "not scripted")),
        }
    }));
    let (_, sink) = recorder();
    let err = run_job(
        &cluster,
        &job_manifest(),
        &JobOptions {
            timeout: Duration::from_millis(150),
            ..options()
        },
        &sink,
    )
    .await
    .unwrap_err();
    drop(cluster);
    let seen = server.await.unwrap();
    assert!(matches!(err, JobError::Timeout { .. }), "{err:?}");
    let text = err.to_string();
    for part in [
        "Job data/restore-1 did not finish within 150ms",
        "Job: 1 active, 0 succeeded, 0 failed",
        "pod restore-1-x7k2p: Pending: container backup waiting: CreateContainerConfigError: secret \"postgres-superuser\" not found",
        "kubectl -n data delete job restore-1",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    // The log of a container that never started is not asked for, and nothing is deleted.
    assert!(
        seen.iter()
            .all(|s| s.path != LOG_PATH && s.method != "DELETE")
    );
}

#[tokio::test]
async fn create_errors_name_the_job_and_the_servers_reason() {
    for (code, reason, message) in [
        (404, "NotFound", "namespaces \"data\" not found"),
        (
            409,
            "AlreadyExists",
            "jobs.batch \"restore-1\" already exists",
        ),
        (
            403,
            "Forbidden",
            "jobs.batch is forbidden: User \"me\" cannot create resource",
        ),
    ] {
        let (cluster, server) = mock(Box::new(move |_| {
            Reply::Json(code, status(code, reason, message))
        }));
        let (events, sink) = recorder();
        let err = run_job(&cluster, &job_manifest(), &options(), &sink)
            .await
            .unwrap_err();
        drop(cluster);
        let seen = server.await.unwrap();
        assert_eq!(
            err.to_string(),
            format!("cannot create Job data/restore-1: {message} (HTTP {code})")
        );
        assert_eq!(seen.len(), 1, "a refused create is not retried or followed");
        assert!(events.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_create_that_reached_the_server_before_failing_is_found_on_retry() {
    let mut posts = 0;
    let mut inner = successful_job();
    let (cluster, server) = mock(Box::new(move |req| {
        if req.method == "POST" {
            posts += 1;
            return match posts {
                1 => Reply::Json(
                    503,
                    status(503, "ServiceUnavailable", "etcd leader changed"),
                ),
                _ => Reply::Json(
                    409,
                    status(
                        409,
                        "AlreadyExists",
                        "jobs.batch \"restore-1\" already exists",
                    ),
                ),
            };
        }
        inner(req)
    }));
    let (events, sink) = recorder();
    let outcome = run_job(&cluster, &job_manifest(), &options(), &sink)
        .await
        .unwrap();
    drop(cluster);
    let seen = server.await.unwrap();
    assert!(outcome.succeeded);
    assert_eq!(seen.iter().filter(|s| s.method == "POST").count(), 2);
    let events = events.lock().unwrap().clone();
    assert!(
        matches!(&events[0], JobEvent::Retrying { attempt: 1, reason, .. } if reason.contains("HTTP 503: etcd leader changed")),
        "{events:?}"
    );
    assert!(matches!(&events[1], JobEvent::Created { .. }));
}

#[tokio::test]
async fn passing_read_failures_are_looked_past_and_a_deleted_job_is_reported() {
    // A 503 on one look at the Job does not end the follow.
    let mut inner = successful_job();
    let mut failed_once = false;
    let (cluster, server) = mock(Box::new(move |req| {
        if req.method == "GET" && req.path == JOB_PATH && !failed_once {
            failed_once = true;
            return Reply::Json(503, status(503, "ServiceUnavailable", "try again"));
        }
        inner(req)
    }));
    let (events, sink) = recorder();
    let outcome = run_job(&cluster, &job_manifest(), &options(), &sink)
        .await
        .unwrap();
    drop(cluster);
    server.await.unwrap();
    assert!(outcome.succeeded);
    // ... and the retry is said on the progress line.
    assert!(
        events.lock().unwrap().iter().any(|e| matches!(e,
            JobEvent::Retrying { action, attempt: 1, reason }
                if action == "read Job data/restore-1" && reason == "HTTP 503: try again")),
        "{:?}",
        events.lock().unwrap()
    );

    // An API that stays unavailable: the retries are bounded, and the error says the Job
    // may still be running and how to follow it.
    let (cluster, server) = mock(Box::new(|req| match req.method.as_str() {
        "POST" => Reply::Json(201, job_with_status("uid-1", json!({}))),
        _ => Reply::Json(
            503,
            status(503, "ServiceUnavailable", "apiserver is restarting"),
        ),
    }));
    let (events, sink) = recorder();
    let err = run_job(&cluster, &job_manifest(), &options(), &sink)
        .await
        .unwrap_err();
    drop(cluster);
    let seen = server.await.unwrap();
    assert!(matches!(err, JobError::LostTrack { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("apiserver is restarting")
            && text.contains("kubectl -n data logs -f job/restore-1"),
        "{text}"
    );
    let gets = seen.iter().filter(|s| s.method == "GET").count() as u32;
    assert_eq!(
        gets,
        options().retry.attempts,
        "one look, retried up to the bound"
    );
    let retries = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, JobEvent::Retrying { .. }))
        .count() as u32;
    assert_eq!(retries, options().retry.attempts - 1);

    // A Job deleted by someone else while it is followed.
    let (cluster, server) = mock(Box::new(|req| match req.method.as_str() {
        "POST" => Reply::Json(201, job_with_status("uid-1", json!({}))),
        _ if req.path == JOB_PATH => Reply::Json(
            404,
            status(404, "NotFound", "jobs.batch \"restore-1\" not found"),
        ),
        _ => Reply::Json(200, pod_list(vec![])),
    }));
    let err = run_job(&cluster, &job_manifest(), &options(), &sink)
        .await
        .unwrap_err();
    drop(cluster);
    server.await.unwrap();
    assert!(matches!(err, JobError::Vanished { .. }), "{err:?}");
    assert!(err.to_string().contains("was deleted before it finished"));

    // A read the server refuses for good ends the follow with the server's reason.
    let (cluster, server) = mock(Box::new(|req| match req.method.as_str() {
        "POST" => Reply::Json(201, job_with_status("uid-1", json!({}))),
        _ => Reply::Json(
            403,
            status(403, "Forbidden", "jobs.batch \"restore-1\" is forbidden"),
        ),
    }));
    let err = run_job(&cluster, &job_manifest(), &options(), &sink)
        .await
        .unwrap_err();
    drop(cluster);
    server.await.unwrap();
    assert_eq!(
        err.to_string(),
        "read Job data/restore-1 failed: jobs.batch \"restore-1\" is forbidden (HTTP 403)"
    );
}

#[tokio::test]
async fn missing_references_are_found_before_a_pod_would_wait_for_them() {
    let mut job = job_manifest();
    job["spec"]["template"]["spec"]["volumes"] = json!([
        {"name": "scripts", "configMap": {"name": "postgres-backup-scripts"}},
        {"name": "backups", "persistentVolumeClaim": {"claimName": "postgres-backup"}},
        {"name": "extra", "secret": {"secretName": "optional-extra", "optional": true}},
    ]);
    job["spec"]["template"]["spec"]["containers"][0]["env"] = json!([
        {"name": "PGHOST", "value": "postgres"},
        {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "postgres-superuser", "key": "password"}}},
        {"name": "OTHER", "valueFrom": {"secretKeyRef": {"name": "postgres-superuser", "key": "username"}}},
    ]);
    let (cluster, server) = mock(Box::new(|req| {
        if req.path.ends_with("/configmaps/postgres-backup-scripts") {
            Reply::Json(
                200,
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "postgres-backup-scripts", "namespace": "data"}}),
            )
        } else {
            Reply::Json(404, status(404, "NotFound", "not found"))
        }
    }));
    let missing = missing_references(&cluster, &job, &options().retry, &|_| {})
        .await
        .unwrap();
    drop(cluster);
    let seen = server.await.unwrap();
    assert_eq!(
        missing,
        vec![
            "PersistentVolumeClaim data/postgres-backup",
            "Secret data/postgres-superuser"
        ]
    );
    let asked: Vec<String> = seen.iter().map(Seen::line).collect();
    assert_eq!(
        asked,
        vec![
            "GET /api/v1/namespaces/data/configmaps/postgres-backup-scripts",
            "GET /api/v1/namespaces/data/persistentvolumeclaims/postgres-backup",
            "GET /api/v1/namespaces/data/secrets/postgres-superuser",
        ],
        "each object once, optional ones not at all"
    );
}

#[tokio::test]
async fn the_reads_before_a_job_retry_under_the_callers_policy_and_say_so() {
    let mut job = job_manifest();
    job["spec"]["template"]["spec"]["volumes"] =
        json!([{"name": "scripts", "configMap": {"name": "postgres-backup-scripts"}}]);
    let configmap = "GET /api/v1/namespaces/data/configmaps/postgres-backup-scripts";
    let answers = |failures: u32| -> Responder {
        let mut failed = 0;
        Box::new(move |req| {
            if req.path.ends_with("/configmaps/postgres-backup-scripts") && failed < failures {
                failed += 1;
                return Reply::Json(
                    503,
                    status(503, "ServiceUnavailable", "apiserver is starting"),
                );
            }
            Reply::Json(
                200,
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "postgres-backup-scripts", "namespace": "data"}}),
            )
        })
    };

    // Two passing failures: retried, each retry an event, then the answer.
    let (cluster, server) = mock(answers(2));
    let (events, sink) = recorder();
    let missing = missing_references(&cluster, &job, &options().retry, &sink)
        .await
        .unwrap();
    drop(cluster);
    let seen = server.await.unwrap();
    assert!(missing.is_empty(), "{missing:?}");
    assert_eq!(seen.len(), 3, "three attempts");
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    for (i, e) in events.iter().enumerate() {
        assert!(
            matches!(e, JobEvent::Retrying { action, attempt, reason }
                if action == "read ConfigMap data/postgres-backup-scripts"
                    && *attempt == i as u32 + 1
                    && reason == "HTTP 503: apiserver is starting"),
            "{events:?}"
        );
    }

    // No retries asked for (`--api-retries 0`): the first failure is the answer.
    let (cluster, server) = mock(answers(1));
    let (events, sink) = recorder();
    let err = missing_references(&cluster, &job, &RetryPolicy::with_retries(0), &sink)
        .await
        .unwrap_err();
    drop(cluster);
    let seen = server.await.unwrap();
    assert_eq!(seen.len(), 1, "one attempt");
    assert!(events.lock().unwrap().is_empty());
    assert_eq!(
        err.to_string(),
        "read ConfigMap data/postgres-backup-scripts failed: apiserver is starting (HTTP 503)"
    );

    // The same for one object read on its own.
    let (cluster, server) = mock(answers(1));
    let (events, sink) = recorder();
    let address = homelab_kube::ObjectAddress {
        api_version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        namespace: Some("data"),
        name: "postgres-backup-scripts",
    };
    let found = homelab_kube::get_object(&cluster, address, &options().retry, &sink)
        .await
        .unwrap();
    drop(cluster);
    let seen = server.await.unwrap();
    assert!(found.is_some());
    assert_eq!(
        seen.iter().map(Seen::line).collect::<Vec<_>>(),
        [configmap, configmap]
    );
    assert!(
        matches!(
            &events.lock().unwrap()[..],
            [JobEvent::Retrying { attempt: 1, .. }]
        ),
        "{events:?}"
    );
}

#[tokio::test]
async fn the_read_after_a_create_found_the_name_taken_is_retried_too() {
    let mut posts = 0;
    let mut job_reads = 0;
    let mut inner = successful_job();
    let (cluster, server) = mock(Box::new(move |req| {
        if req.method == "POST" {
            posts += 1;
            return match posts {
                1 => Reply::Json(
                    503,
                    status(503, "ServiceUnavailable", "etcd leader changed"),
                ),
                _ => Reply::Json(
                    409,
                    status(
                        409,
                        "AlreadyExists",
                        "jobs.batch \"restore-1\" already exists",
                    ),
                ),
            };
        }
        if req.path == JOB_PATH {
            job_reads += 1;
            if job_reads == 1 {
                return Reply::Json(
                    503,
                    status(503, "ServiceUnavailable", "etcd leader changed"),
                );
            }
        }
        inner(req)
    }));
    let (events, sink) = recorder();
    let outcome = run_job(&cluster, &job_manifest(), &options(), &sink)
        .await
        .unwrap();
    drop(cluster);
    server.await.unwrap();
    assert!(outcome.succeeded);
    let events = events.lock().unwrap().clone();
    assert!(
        matches!(&events[1], JobEvent::Retrying { action, attempt: 1, .. } if action == "read Job data/restore-1"),
        "{events:?}"
    );
    assert!(matches!(&events[2], JobEvent::Created { .. }), "{events:?}");
}
