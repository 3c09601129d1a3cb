//! Exact request sequences of apply, diff and prune against a scripted API (tower-test mock
//! service): order, apply parameters, CRD and webhook gates, retries, and prune safety.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use homelab_kube::{
    ApplyError, ApplyEvent, ApplyOptions, ApplyPlan, ApplySetRef, ApplyUnit, Cluster, DiffOptions,
    Health, NamespacedName, ObjectChange, ObjectOutcome, RetryPolicy, StatusChecks, StatusOptions,
    WaitFor, WorkloadKind, applyset_id,
};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

/// One request as the API saw it.
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
    fn param(&self, key: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == key).then(|| v.to_string())
        })
    }
}

type Responder = Box<dyn FnMut(&Seen) -> Option<(u16, Value)> + Send>;

/// Starts a mock API: `respond` answers what it knows, the empty-cluster defaults the rest.
fn mock(mut respond: Responder) -> (Cluster, tokio::task::JoinHandle<Vec<Seen>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            let req = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                body,
            };
            let (status, reply) = respond(&req).unwrap_or_else(|| default_answer(&req));
            seen.push(req);
            send.send_response(
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        }
        seen
    });
    let client = kube::Client::new(service, "default");
    (Cluster::from_client(client, "https://mock"), server)
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message})
}

fn resources(group_version: &str, list: &[(&str, &str, bool)]) -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
        "resources": list.iter().map(|(plural, kind, namespaced)| json!({
            "name": plural, "singularName": "", "namespaced": namespaced, "kind": kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]
        })).collect::<Vec<_>>()
    })
}

/// An empty cluster that serves core, apps, batch, apiextensions and discovery kinds; the
/// namespace of the ApplySet parent exists; applies echo the body with resourceVersion 1.
fn default_answer(req: &Seen) -> (u16, Value) {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/api/v1") => (
            200,
            resources(
                "v1",
                &[
                    ("namespaces", "Namespace", false),
                    ("configmaps", "ConfigMap", true),
                    ("secrets", "Secret", true),
                    ("services", "Service", true),
                ],
            ),
        ),
        ("GET", "/apis/apps/v1") => (
            200,
            resources(
                "apps/v1",
                &[
                    ("deployments", "Deployment", true),
                    ("statefulsets", "StatefulSet", true),
                ],
            ),
        ),
        ("GET", "/apis/apiextensions.k8s.io/v1") => (
            200,
            resources(
                "apiextensions.k8s.io/v1",
                &[(
                    "customresourcedefinitions",
                    "CustomResourceDefinition",
                    false,
                )],
            ),
        ),
        ("GET", "/api/v1/namespaces/homelab") => (
            200,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "homelab", "resourceVersion": "1"}}),
        ),
        ("GET", _) if req.param("labelSelector").is_some() => (
            200,
            json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []}),
        ),
        ("GET", _) => (404, status(404, "NotFound", "not found")),
        ("PATCH", _) => {
            let mut obj = req.body.clone();
            obj["metadata"]["resourceVersion"] = json!("1");
            (201, obj)
        }
        ("DELETE", _) => (200, status(200, "", "")),
        _ => (405, status(405, "MethodNotAllowed", "not scripted")),
    }
}

fn plan(units: Vec<ApplyUnit>) -> ApplyPlan {
    ApplyPlan {
        applyset: ApplySetRef {
            name: "lab".into(),
            namespace: "homelab".into(),
        },
        field_manager: "homelab".into(),
        units,
    }
}

fn unit(name: &str, deps: &[&str], objects: Vec<Value>, waits: Vec<WaitFor>) -> ApplyUnit {
    ApplyUnit {
        name: name.into(),
        depends_on: deps.iter().map(|s| s.to_string()).collect(),
        objects,
        waits,
    }
}

fn web_unit() -> ApplyUnit {
    unit(
        "web",
        &[],
        vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "web"},
                   "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "web"}, "data": {"a": "1"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}),
        ],
        vec![],
    )
}

fn id() -> String {
    applyset_id("applyset-lab", "homelab", "Secret", "")
}

fn fast() -> ApplyOptions {
    ApplyOptions {
        wait_timeout: Duration::from_millis(300),
        poll_interval: Duration::from_millis(5),
        retry: RetryPolicy {
            attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
        },
        ..ApplyOptions::default()
    }
}

fn recorder() -> (
    Arc<Mutex<Vec<ApplyEvent>>>,
    impl Fn(ApplyEvent) + Send + Sync,
) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    (events, move |e| sink.lock().unwrap().push(e))
}

const APPLY: &str = "&dryRun=All&force=true&fieldManager=homelab";

#[tokio::test]
async fn first_apply_records_the_applyset_then_applies_in_order() {
    let (cluster, server) = mock(Box::new(|_| None));
    let (events, sink) = recorder();
    let report = cluster
        .apply(&plan(vec![web_unit()]), &fast(), &sink)
        .await
        .unwrap();
    drop(cluster);
    let seen = server.await.unwrap();
    let selector = format!("labelSelector=applyset.kubernetes.io%2Fpart-of%3D{}", id());
    let apply = APPLY.replace("&dryRun=All", "");
    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    assert_eq!(
        lines,
        vec![
            "GET /api/v1/namespaces/homelab/secrets/applyset-lab".to_string(),
            "GET /api/v1/namespaces/homelab".into(),
            format!("PATCH /api/v1/namespaces/homelab/secrets/applyset-lab?{apply}"),
            // Every group-version the plan uses, in one concurrent round.
            "GET /apis/apps/v1".into(),
            "GET /api/v1".into(),
            format!("GET /api/v1/configmaps?&{selector}"),
            format!("GET /apis/apps/v1/deployments?&{selector}"),
            format!("GET /api/v1/namespaces?&{selector}"),
            "GET /api/v1/namespaces/web".into(),
            format!("PATCH /api/v1/namespaces/web?{apply}"),
            "GET /api/v1/namespaces/web/configmaps/settings".into(),
            format!("PATCH /api/v1/namespaces/web/configmaps/settings?{apply}"),
            "GET /apis/apps/v1/namespaces/web/deployments/web".into(),
            format!("PATCH /apis/apps/v1/namespaces/web/deployments/web?{apply}"),
        ],
        "{lines:#?}"
    );
    // The parent lists every group-kind and namespace before any member is written.
    let parent = &seen[2].body;
    assert_eq!(
        parent["metadata"]["labels"]["applyset.kubernetes.io/id"],
        id()
    );
    let ann = &parent["metadata"]["annotations"];
    assert_eq!(
        ann["applyset.kubernetes.io/contains-group-kinds"],
        "ConfigMap,Deployment.apps,Namespace"
    );
    assert_eq!(ann["applyset.kubernetes.io/additional-namespaces"], "web");
    assert!(
        ann["applyset.kubernetes.io/tooling"]
            .as_str()
            .unwrap()
            .starts_with("homelab/")
    );
    // Every member carries the part-of label.
    for req in seen.iter().skip(3).filter(|r| r.method == "PATCH") {
        assert_eq!(
            req.body["metadata"]["labels"]["applyset.kubernetes.io/part-of"],
            id(),
            "{}",
            req.line()
        );
    }
    assert!(report.changed());
    assert!(
        report.units[0]
            .objects
            .iter()
            .all(|o| o.outcome == ObjectOutcome::Created)
    );
    let events = events.lock().unwrap();
    assert!(matches!(
        events.first(),
        Some(ApplyEvent::ApplySetUpdated { .. })
    ));
    assert_eq!(
        events.last(),
        Some(&ApplyEvent::UnitReady {
            unit: "web".into(),
            changed: true
        })
    );
}

/// Serves the objects of `web_unit` as existing members with resourceVersion "7", and
/// applies that change nothing (same resourceVersion back).
fn existing_members(req: &Seen) -> Option<(u16, Value)> {
    let member = |api: &str, kind: &str, ns: Option<&str>, name: &str| {
        let mut m = json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "resourceVersion": "7",
            "labels": {"applyset.kubernetes.io/part-of": id()}}});
        if let Some(ns) = ns {
            m["metadata"]["namespace"] = json!(ns);
        }
        json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": [m]})
    };
    if req.method == "GET" && req.param("labelSelector").is_some() {
        return Some((
            200,
            match req.path.as_str() {
                "/api/v1/configmaps" => member("v1", "ConfigMap", Some("web"), "settings"),
                "/apis/apps/v1/deployments" => member("apps/v1", "Deployment", Some("web"), "web"),
                "/api/v1/namespaces" => member("v1", "Namespace", None, "web"),
                _ => json!({"items": []}),
            },
        ));
    }
    if req.method == "PATCH" {
        let mut obj = req.body.clone();
        obj["metadata"]["resourceVersion"] = json!("7");
        return Some((200, obj));
    }
    None
}

#[tokio::test]
async fn second_apply_with_no_change_reports_every_object_unchanged_without_extra_reads() {
    let (cluster, server) = mock(Box::new(|req| {
        // The parent from the first run, already covering the plan.
        if req.method == "GET" && req.path == "/api/v1/namespaces/homelab/secrets/applyset-lab" {
            return Some((
                200,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "applyset-lab", "namespace": "homelab",
                "labels": {"applyset.kubernetes.io/id": id()},
                "annotations": {"applyset.kubernetes.io/tooling": format!("homelab/{}", ApplyOptions::default().tooling_version),
                    "applyset.kubernetes.io/contains-group-kinds": "ConfigMap,Deployment.apps,Namespace",
                    "applyset.kubernetes.io/additional-namespaces": "web"}}}),
            ));
        }
        existing_members(req)
    }));
    let (events, sink) = recorder();
    let report = cluster
        .apply(&plan(vec![web_unit()]), &fast(), &sink)
        .await
        .unwrap();
    drop(cluster);
    let seen = server.await.unwrap();
    assert!(!report.changed());
    assert!(report.units.iter().all(|u| !u.changed));
    assert!(
        report.units[0]
            .objects
            .iter()
            .all(|o| o.outcome == ObjectOutcome::Unchanged)
    );
    // Members are known from the labelled lists: no per-object GET before applying.
    let object_gets: Vec<String> = seen
        .iter()
        .filter(|r| {
            r.method == "GET"
                && (r.path.starts_with("/api/v1/namespaces/web")
                    || r.path.starts_with("/apis/apps/v1/namespaces"))
        })
        .map(Seen::line)
        .collect();
    assert!(object_gets.is_empty(), "{object_gets:?}");
    // An up-to-date parent is neither rewritten nor is its namespace looked up again.
    assert!(
        !seen
            .iter()
            .any(|r| r.path.ends_with("applyset-lab") && r.method == "PATCH")
    );
    assert!(!seen.iter().any(|r| r.path == "/api/v1/namespaces/homelab"));
    assert_eq!(
        events.lock().unwrap().last(),
        Some(&ApplyEvent::UnitReady {
            unit: "web".into(),
            changed: false
        })
    );
}

#[tokio::test]
async fn dry_run_sends_dry_run_all_everywhere_and_never_writes_the_parent() {
    let (cluster, server) = mock(Box::new(|_| None));
    let options = ApplyOptions {
        dry_run: true,
        prune: true,
        ..fast()
    };
    let report = cluster
        .apply(&plan(vec![web_unit()]), &options, &|_| {})
        .await
        .unwrap();
    drop(cluster);
    let seen = server.await.unwrap();
    let writes: Vec<&Seen> = seen.iter().filter(|r| r.method != "GET").collect();
    assert_eq!(writes.len(), 3, "{seen:#?}");
    for w in writes {
        assert_eq!(w.param("dryRun").as_deref(), Some("All"), "{}", w.line());
        assert_eq!(w.param("force").as_deref(), Some("true"));
        assert_eq!(w.param("fieldManager").as_deref(), Some("homelab"));
        assert!(
            !w.path.contains("applyset-lab"),
            "the parent is not written in a dry run"
        );
    }
    assert!(report.dry_run && report.changed());
}

fn crd_unit() -> ApplyUnit {
    unit(
        "widgets",
        &[],
        vec![
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "homelab"}, "spec": {"size": 1}}),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": "widgets.example.com"},
                   "spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"}, "scope": "Namespaced",
                            "versions": [{"name": "v1", "served": true, "storage": true}]}}),
        ],
        vec![],
    )
}

#[tokio::test]
async fn custom_resources_wait_for_their_crd_to_be_established_and_served() {
    let crd_gets = Arc::new(Mutex::new(0));
    let counter = crd_gets.clone();
    let (cluster, server) = mock(Box::new(move |req| {
        let crd_path =
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com";
        let crd = |established: bool| {
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": "widgets.example.com", "resourceVersion": "3"},
                   "status": {"conditions": [{"type": "Established", "status": if established {"True"} else {"False"}}]}})
        };
        match (req.method.as_str(), req.path.as_str()) {
            ("PATCH", p) if p == crd_path => Some((201, crd(false))),
            ("GET", p) if p == crd_path => {
                let mut n = counter.lock().unwrap();
                *n += 1;
                // The first GET comes before the apply (does it exist?), then two polls.
                Some(if *n == 1 {
                    (404, status(404, "NotFound", ""))
                } else {
                    (200, crd(*n >= 4))
                })
            }
            ("GET", "/apis/example.com/v1") => {
                if *counter.lock().unwrap() >= 4 {
                    Some((
                        200,
                        resources("example.com/v1", &[("widgets", "Widget", true)]),
                    ))
                } else {
                    Some((
                        404,
                        status(
                            404,
                            "NotFound",
                            "the server could not find the requested resource",
                        ),
                    ))
                }
            }
            _ => None,
        }
    }));
    let (events, sink) = recorder();
    cluster
        .apply(&plan(vec![crd_unit()]), &fast(), &sink)
        .await
        .unwrap();
    drop(cluster);
    let seen = server.await.unwrap();
    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    let crd_patch = lines
        .iter()
        .position(|l| l.starts_with("PATCH /apis/apiextensions.k8s.io"))
        .unwrap();
    let cr_patch = lines
        .iter()
        .position(|l| l.starts_with("PATCH /apis/example.com/v1/namespaces/homelab/widgets/w1"))
        .unwrap();
    let established = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            l.starts_with("GET /apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets")
        })
        .map(|(i, _)| i)
        .nth(3)
        .expect("polled until established");
    assert!(
        crd_patch < established && established < cr_patch,
        "{lines:#?}"
    );
    let waits: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ApplyEvent::Waiting { what, .. } => Some(what.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        waits,
        ["CustomResourceDefinition widgets.example.com to be established"]
    );
}

#[tokio::test]
async fn the_next_unit_waits_for_the_webhook_to_admit_a_dry_run_create() {
    let slice_polls = Arc::new(Mutex::new(0));
    let creates = Arc::new(Mutex::new(0));
    let (sp, cr) = (slice_polls.clone(), creates.clone());
    let (cluster, server) = mock(Box::new(move |req| {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/apis/discovery.k8s.io/v1/namespaces/infra/endpointslices") => {
                let mut n = sp.lock().unwrap();
                *n += 1;
                let ready = *n >= 2;
                Some((
                    200,
                    json!({"items": [{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "webhook-abc", "namespace": "infra"}, "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.42.0.9"], "conditions": {"ready": ready}}]}]}),
                ))
            }
            ("GET", "/apis/metallb.io/v1beta1") => Some((
                200,
                resources(
                    "metallb.io/v1beta1",
                    &[("ipaddresspools", "IPAddressPool", true)],
                ),
            )),
            ("POST", "/apis/metallb.io/v1beta1/namespaces/infra/ipaddresspools") => {
                let mut n = cr.lock().unwrap();
                *n += 1;
                Some(if *n == 1 {
                    (
                        500,
                        status(
                            500,
                            "InternalError",
                            "Internal error occurred: failed calling webhook \"ipaddresspoolvalidationwebhook.metallb.io\": connection refused",
                        ),
                    )
                } else {
                    (201, req.body.clone())
                })
            }
            _ => None,
        }
    }));
    let probe = json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "homelab-probe", "namespace": "infra"}, "spec": {"addresses": ["192.0.2.1/32"]}});
    let p = plan(vec![
        unit(
            "metallb",
            &[],
            vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": "infra"}}),
            ],
            vec![WaitFor::Webhook {
                service: NamespacedName {
                    namespace: "infra".into(),
                    name: "metallb-webhook-service".into(),
                },
                probe: Some(probe),
            }],
        ),
        unit(
            "pools",
            &["metallb"],
            vec![
                json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "lab", "namespace": "infra"}, "spec": {"addresses": ["192.168.1.240-192.168.1.250"]}}),
            ],
            vec![],
        ),
    ]);
    cluster.apply(&p, &fast(), &|_| {}).await.unwrap();
    drop(cluster);
    let seen = server.await.unwrap();
    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    let slices: Vec<&Seen> = seen
        .iter()
        .filter(|r| r.path.ends_with("endpointslices"))
        .collect();
    assert_eq!(
        slices[0].param("labelSelector").as_deref(),
        Some("kubernetes.io%2Fservice-name%3Dmetallb-webhook-service")
    );
    let posts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("POST"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(posts.len(), 2, "{lines:#?}");
    for &i in &posts {
        assert_eq!(
            seen[i].param("dryRun").as_deref(),
            Some("All"),
            "the probe is never stored"
        );
    }
    let pool_patch = lines
        .iter()
        .position(|l| {
            l.starts_with("PATCH /apis/metallb.io/v1beta1/namespaces/infra/ipaddresspools/lab")
        })
        .unwrap();
    assert!(posts[1] < pool_patch, "{lines:#?}");
    assert!(*slice_polls.lock().unwrap() >= 2);
}

fn flaky(codes: Vec<u16>) -> Responder {
    let mut codes = codes.into_iter();
    Box::new(move |req| {
        if req.method == "PATCH"
            && req.path == "/api/v1/namespaces/web/configmaps/settings"
            && let Some(code) = codes.next()
        {
            return Some((
                code,
                status(code, "Conflict", &format!("scripted failure {code}")),
            ));
        }
        None
    })
}

#[tokio::test]
async fn conflicts_throttling_and_server_errors_are_retried_with_backoff() {
    let (cluster, server) = mock(flaky(vec![409, 429, 503]));
    let (events, sink) = recorder();
    cluster
        .apply(&plan(vec![web_unit()]), &fast(), &sink)
        .await
        .unwrap();
    drop(cluster);
    let seen = server.await.unwrap();
    let patches = seen
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("configmaps/settings"))
        .count();
    assert_eq!(patches, 4);
    let retries: Vec<(u32, Duration, String)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ApplyEvent::Retrying {
                attempt,
                backoff,
                reason,
                object,
                ..
            } => {
                assert_eq!(object, "ConfigMap web/settings");
                Some((*attempt, *backoff, reason.clone()))
            }
            _ => None,
        })
        .collect();
    // Each wait is jittered within the upper half of the doubling backoff (1, 2, 4 ms).
    let said: Vec<(u32, String)> = retries.iter().map(|(a, _, r)| (*a, r.clone())).collect();
    assert_eq!(
        said,
        [
            (1, "HTTP 409: scripted failure 409".to_string()),
            (2, "HTTP 429: scripted failure 429".to_string()),
            (3, "HTTP 503: scripted failure 503".to_string()),
        ]
    );
    for ((attempt, wait, _), cap_ms) in retries.iter().zip([1u64, 2, 4]) {
        let cap = Duration::from_millis(cap_ms);
        assert!(
            *wait >= cap / 2 && *wait <= cap,
            "attempt {attempt}: waited {wait:?}, not within {:?}..={cap:?}",
            cap / 2
        );
    }
}

#[tokio::test]
async fn persistent_failures_name_the_object_and_the_server_message() {
    let (cluster, server) = mock(flaky(vec![500; 10]));
    let err = cluster
        .apply(&plan(vec![web_unit()]), &fast(), &|_| {})
        .await
        .unwrap_err();
    drop(cluster);
    let seen = server.await.unwrap();
    assert_eq!(
        err.to_string(),
        "apply ConfigMap web/settings failed after 4 attempt(s): scripted failure 500 (HTTP 500)"
    );
    // Nothing after the failing object was sent.
    assert!(!seen.iter().any(|r| r.path.contains("deployments/web")));

    let (cluster, server) = mock(flaky(vec![422]));
    let err = cluster
        .apply(&plan(vec![web_unit()]), &fast(), &|_| {})
        .await
        .unwrap_err();
    drop(cluster);
    server.await.unwrap();
    assert!(
        matches!(
            err,
            ApplyError::Api {
                attempts: 1,
                code: Some(422),
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn prune_never_deletes_an_object_without_our_applyset_label() {
    let (cluster, server) = mock(Box::new(|req| {
        if req.method == "GET" && req.path == "/api/v1/namespaces/homelab/secrets/applyset-lab" {
            return Some((
                200,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "applyset-lab", "namespace": "homelab",
                "labels": {"applyset.kubernetes.io/id": id()},
                "annotations": {"applyset.kubernetes.io/tooling": "homelab/0.1.0",
                    "applyset.kubernetes.io/contains-group-kinds": "ConfigMap,Deployment.apps,Namespace,Service",
                    "applyset.kubernetes.io/additional-namespaces": "old,web"}}}),
            ));
        }
        if req.method == "GET" && req.path == "/api/v1/namespaces/old/services/gone" {
            return Some((
                200,
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gone", "namespace": "old", "resourceVersion": "2",
                    "uid": "uid-gone", "labels": {"applyset.kubernetes.io/part-of": id()}}}),
            ));
        }
        if req.method == "GET" && req.path == "/api/v1/services" {
            // A server that ignored the label selector: one member we dropped, one stranger.
            return Some((
                200,
                json!({"items": [
                    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gone", "namespace": "old", "resourceVersion": "2",
                        "labels": {"applyset.kubernetes.io/part-of": id()}}},
                    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default", "resourceVersion": "1"}},
                    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "theirs", "namespace": "old", "resourceVersion": "1",
                        "labels": {"applyset.kubernetes.io/part-of": "applyset-someone-else-v1"}}}
                ]}),
            ));
        }
        None
    }));
    let (events, sink) = recorder();
    let options = ApplyOptions {
        prune: true,
        ..fast()
    };
    let report = cluster
        .apply(&plan(vec![web_unit()]), &options, &sink)
        .await
        .unwrap();
    drop(cluster);
    let seen = server.await.unwrap();
    let deletes: Vec<String> = seen
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(Seen::line)
        .collect();
    assert_eq!(deletes, ["DELETE /api/v1/namespaces/old/services/gone"]);
    assert_eq!(report.pruned.len(), 1);
    let skipped: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ApplyEvent::PruneSkipped { object, .. } => Some(object.to_string()),
            _ => None,
        })
        .collect();
    // What the server returned without our label (or with another ApplySet's) was never a
    // candidate, so there is nothing to skip either.
    assert!(skipped.is_empty(), "{skipped:?}");
    assert!(
        report
            .pruned
            .iter()
            .all(|p| p.object.to_string() == "Service old/gone" && p.deleted),
        "{report:?}"
    );
    // After pruning, the parent shrinks to what the plan has.
    let last_parent = seen
        .iter()
        .rev()
        .find(|r| r.method == "PATCH" && r.path.ends_with("applyset-lab"))
        .unwrap();
    assert_eq!(
        last_parent.body["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"],
        "ConfigMap,Deployment.apps,Namespace"
    );
}

/// A server that ignores `labelSelector` on lists, with the ApplySet's old namespace `old`
/// holding a member we dropped (`gone`), one whose label was removed since it was listed
/// (`adopted`), and a ConfigMap somebody else made (`mine`).
#[tokio::test]
async fn a_server_ignoring_label_selectors_never_gets_a_namespace_holding_foreign_objects_pruned() {
    let labelled = |kind: &str, ns: Option<&str>, name: &str, uid: &str| {
        let mut m = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "uid": uid,
            "resourceVersion": "5", "labels": {"applyset.kubernetes.io/part-of": id()}}});
        if let Some(ns) = ns {
            m["metadata"]["namespace"] = json!(ns);
        }
        m
    };
    let gone = labelled("ConfigMap", Some("old"), "gone", "uid-gone");
    let adopted = labelled("ConfigMap", Some("old"), "adopted", "uid-adopted");
    let mine = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine", "namespace": "old",
        "uid": "uid-mine", "resourceVersion": "3"}});
    let old_ns = labelled("Namespace", None, "old", "uid-old");
    let default_ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default", "uid": "uid-default", "resourceVersion": "1"}});
    let deleted = Arc::new(Mutex::new(Vec::<String>::new()));
    let deleted_in = deleted.clone();
    let (cluster, server) = mock(Box::new(move |req| {
        let list = |items: Vec<&Value>| {
            Some((
                200,
                json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}),
            ))
        };
        let gone_now = deleted_in
            .lock()
            .unwrap()
            .iter()
            .any(|d| d.ends_with("/gone"));
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/api/v1/namespaces/homelab/secrets/applyset-lab") => Some((
                200,
                json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "applyset-lab", "namespace": "homelab",
                "labels": {"applyset.kubernetes.io/id": id()},
                "annotations": {"applyset.kubernetes.io/tooling": "homelab/0.1.0",
                    "applyset.kubernetes.io/contains-group-kinds": "ConfigMap,Deployment.apps,Namespace",
                    "applyset.kubernetes.io/additional-namespaces": "old,web"}}}),
            )),
            // Every list answers with every object, whatever the selector says.
            ("GET", "/api/v1/configmaps") => list(if gone_now {
                vec![&adopted, &mine]
            } else {
                vec![&gone, &adopted, &mine]
            }),
            ("GET", "/api/v1/namespaces") => list(vec![&old_ns, &default_ns]),
            // What the objects look like now.
            ("GET", "/api/v1/namespaces/old/configmaps/gone") => Some((200, gone.clone())),
            ("GET", "/api/v1/namespaces/old/configmaps/adopted") => {
                let mut now = adopted.clone();
                now["metadata"]["labels"] = json!({});
                now["metadata"]["resourceVersion"] = json!("6");
                Some((200, now))
            }
            ("GET", "/api/v1/namespaces/old") => Some((200, old_ns.clone())),
            // Discovery of every kind, for the unfiltered look into the namespace.
            ("GET", "/api") => Some((
                200,
                json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
            )),
            ("GET", "/apis") => Some((
                200,
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
            )),
            ("GET", "/api/v1/namespaces/old/configmaps") => list(if gone_now {
                vec![&adopted, &mine]
            } else {
                vec![&gone, &adopted, &mine]
            }),
            ("GET", p) if p.starts_with("/api/v1/namespaces/old/") => list(vec![]),
            ("DELETE", p) => {
                deleted_in.lock().unwrap().push(p.to_string());
                None
            }
            _ => None,
        }
    }));
    let (events, sink) = recorder();
    let options = ApplyOptions {
        prune: true,
        ..fast()
    };
    let report = cluster
        .apply(&plan(vec![web_unit()]), &options, &sink)
        .await
        .unwrap();
    drop(cluster);
    let seen = server.await.unwrap();
    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    let deletes: Vec<&Seen> = seen.iter().filter(|r| r.method == "DELETE").collect();
    assert_eq!(
        deletes.iter().map(|r| r.line()).collect::<Vec<_>>(),
        ["DELETE /api/v1/namespaces/old/configmaps/gone"],
        "{lines:#?}"
    );
    // The delete was made only after reading the object again, and only for that version.
    let get_at = lines
        .iter()
        .position(|l| l == "GET /api/v1/namespaces/old/configmaps/gone")
        .expect("the object is read again before it is deleted");
    let delete_at = lines.iter().position(|l| l.starts_with("DELETE")).unwrap();
    assert!(get_at < delete_at, "{lines:#?}");
    assert_eq!(
        deletes[0].body["preconditions"],
        json!({"uid": "uid-gone", "resourceVersion": "5"})
    );
    // The namespace was looked into without a selector, and kept for `mine`.
    assert!(
        lines.contains(&"GET /api/v1/namespaces/old/configmaps?".to_string())
            || lines.contains(&"GET /api/v1/namespaces/old/configmaps".to_string()),
        "{lines:#?}"
    );
    let kept: Vec<(String, String)> = report
        .pruned
        .iter()
        .filter(|p| !p.deleted)
        .map(|p| {
            (
                p.object.to_string(),
                p.kept_because.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(kept.len(), 2, "{kept:#?}");
    assert_eq!(kept[0].0, "ConfigMap old/adopted");
    assert!(kept[0].1.contains("no longer carries"), "{kept:#?}");
    assert_eq!(kept[1].0, "Namespace old");
    assert!(kept[1].1.contains("ConfigMap mine"), "{kept:#?}");
    assert!(
        !kept[1].1.contains("adopted") || kept[1].1.contains("ConfigMap adopted"),
        "{kept:#?}"
    );
    // Objects the server returned without our label were never candidates.
    let candidates: Vec<String> = report.pruned.iter().map(|p| p.object.to_string()).collect();
    assert!(
        !candidates
            .iter()
            .any(|c| c.contains("mine") || c.contains("default")),
        "{candidates:?}"
    );
    assert!(
        !events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ApplyEvent::Pruned { object } if object.kind == "Namespace")),
    );
}

#[tokio::test]
async fn an_applyset_of_another_tool_is_left_alone() {
    let (cluster, server) = mock(Box::new(|req| {
        (req.method == "GET" && req.path == "/api/v1/namespaces/homelab/secrets/applyset-lab").then(|| {
            (200, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "applyset-lab", "namespace": "homelab",
                "annotations": {"applyset.kubernetes.io/tooling": "kubectl/v1.34"}}}))
        })
    }));
    let err = cluster
        .apply(&plan(vec![web_unit()]), &fast(), &|_| {})
        .await
        .unwrap_err();
    drop(cluster);
    let seen = server.await.unwrap();
    assert!(matches!(err, ApplyError::ForeignApplySet { .. }), "{err}");
    assert!(err.to_string().contains("kubectl/v1.34"));
    assert_eq!(seen.len(), 1, "nothing is written");
}

#[tokio::test]
async fn an_invalid_plan_sends_nothing() {
    let (cluster, server) = mock(Box::new(|_| None));
    let bad = plan(vec![
        unit("a", &["b"], vec![], vec![]),
        unit("b", &["a"], vec![], vec![]),
    ]);
    let err = cluster.apply(&bad, &fast(), &|_| {}).await.unwrap_err();
    drop(cluster);
    assert!(err.to_string().contains("cycle"), "{err}");
    assert!(server.await.unwrap().is_empty());
}

#[tokio::test]
async fn a_wait_that_expires_says_what_it_waited_for_and_the_last_status() {
    let (cluster, server) = mock(Box::new(|req| {
        (req.method == "GET" && req.path == "/apis/apps/v1/namespaces/web/deployments/web" && req.query.is_empty()).then(|| {
            (200, json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "web", "generation": 1},
                "spec": {"replicas": 1},
                "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 0,
                    "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]}}))
        })
    }));
    let mut u = web_unit();
    u.waits = vec![WaitFor::Available {
        kind: WorkloadKind::Deployment,
        namespace: "web".into(),
        name: "web".into(),
    }];
    let (events, sink) = recorder();
    let err = cluster
        .apply(&plan(vec![u]), &fast(), &sink)
        .await
        .unwrap_err();
    drop(cluster);
    server.await.unwrap();
    let text = err.to_string();
    assert!(
        text.contains("waiting for Deployment web/web to be available"),
        "{text}"
    );
    assert!(text.contains("0/1 replicas available"), "{text}");
    assert!(
        text.contains("Available=False (MinimumReplicasUnavailable)"),
        "{text}"
    );
    assert!(matches!(
        events.lock().unwrap().last(),
        Some(ApplyEvent::UnitFailed { .. })
    ));
}

#[tokio::test]
async fn helmchart_wait_follows_status_job_name_to_a_succeeded_job() {
    let polls = Arc::new(Mutex::new(0));
    let p2 = polls.clone();
    let (cluster, server) = mock(Box::new(move |req| {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/apis/helm.cattle.io/v1") => Some((
                200,
                resources("helm.cattle.io/v1", &[("helmcharts", "HelmChart", true)]),
            )),
            ("GET", "/apis/helm.cattle.io/v1/namespaces/kube-system/helmcharts/metallb")
                if req.param("labelSelector").is_none() =>
            {
                let mut n = p2.lock().unwrap();
                *n += 1;
                let status = if *n >= 3 {
                    json!({"jobName": "helm-install-metallb"})
                } else {
                    json!({})
                };
                Some((
                    200,
                    json!({"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart", "metadata": {"name": "metallb", "namespace": "kube-system"}, "status": status}),
                ))
            }
            ("GET", "/apis/batch/v1/namespaces/kube-system/jobs/helm-install-metallb") => Some((
                200,
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "helm-install-metallb", "namespace": "kube-system"}, "status": {"succeeded": 1}}),
            )),
            _ => None,
        }
    }));
    let u = unit(
        "metallb",
        &[],
        vec![
            json!({"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart", "metadata": {"name": "metallb", "namespace": "kube-system"}, "spec": {"chart": "metallb"}}),
        ],
        vec![WaitFor::HelmChartInstalled {
            namespace: "kube-system".into(),
            name: "metallb".into(),
        }],
    );
    cluster
        .apply(&plan(vec![u]), &fast(), &|_| {})
        .await
        .unwrap();
    drop(cluster);
    let seen = server.await.unwrap();
    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    assert!(
        lines.contains(
            &"GET /apis/batch/v1/namespaces/kube-system/jobs/helm-install-metallb".to_string()
        ),
        "{lines:#?}"
    );
    assert!(*polls.lock().unwrap() >= 3);
}

#[tokio::test]
async fn diff_uses_dry_run_apply_and_hides_secret_values() {
    let (cluster, server) = mock(Box::new(|req| {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/api/v1/namespaces/web/secrets/db") => Some((
                200,
                json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "web", "resourceVersion": "4", "labels": {"applyset.kubernetes.io/part-of": id()}},
            "data": {"password": "b2xkLXNlY3JldA=="}}),
            )),
            ("PATCH", "/api/v1/namespaces/web/secrets/db") => {
                let mut obj = req.body.clone();
                obj["metadata"]["resourceVersion"] = json!("4");
                Some((200, obj))
            }
            _ => None,
        }
    }));
    let p = plan(vec![unit(
        "db",
        &[],
        vec![
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "web"}, "data": {"password": "bmV3LXNlY3JldA=="}}),
        ],
        vec![],
    )]);
    let report = cluster
        .diff(
            &p,
            &DiffOptions {
                retry: fast().retry,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    drop(cluster);
    let seen = server.await.unwrap();
    assert!(report.has_changes());
    assert_eq!(report.objects[0].change, ObjectChange::Update);
    let text = report.unified();
    assert!(
        text.contains("*** (before)") && text.contains("*** (after)"),
        "{text}"
    );
    assert!(!text.contains("b2xk") && !text.contains("bmV3"), "{text}");
    let writes: Vec<&Seen> = seen.iter().filter(|r| r.method != "GET").collect();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].param("dryRun").as_deref(), Some("All"));
}

/// Unit `a` waits for a Deployment that only becomes available once unit `b` (independent
/// of `a`) has been applied: that finishes only when independent units run side by side.
fn side_by_side() -> (ApplyPlan, Responder) {
    let seen_b = Arc::new(Mutex::new(false));
    let deployment = |name: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "homelab"},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "image": "nginx"}]}}}})
    };
    let p = plan(vec![
        unit(
            "a",
            &[],
            vec![deployment("a")],
            vec![WaitFor::Available {
                kind: WorkloadKind::Deployment,
                namespace: "homelab".into(),
                name: "a".into(),
            }],
        ),
        unit("b", &[], vec![deployment("b")], vec![]),
    ]);
    let responder: Responder = Box::new(move |req| {
        if req.method == "PATCH" && req.path.ends_with("/deployments/b") {
            *seen_b.lock().unwrap() = true;
            return None;
        }
        if req.method == "GET"
            && req.path == "/apis/apps/v1/namespaces/homelab/deployments/a"
            && *seen_b.lock().unwrap()
        {
            return Some((
                200,
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "generation": 1},
                "spec": {"replicas": 1}, "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}}),
            ));
        }
        None
    });
    (p, responder)
}

#[tokio::test]
async fn independent_units_are_applied_side_by_side() {
    let (p, responder) = side_by_side();
    let (cluster, server) = mock(responder);
    let report = cluster.apply(&p, &fast(), &|_| {}).await.unwrap();
    drop(cluster);
    server.await.unwrap();
    let names: Vec<&str> = report.units.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "reports keep plan order");

    // One at a time, `a` waits for something only `b` brings, and gives up.
    let (p, responder) = side_by_side();
    let (cluster, server) = mock(responder);
    let sequential = ApplyOptions {
        concurrency: 1,
        ..fast()
    };
    let err = cluster.apply(&p, &sequential, &|_| {}).await.unwrap_err();
    drop(cluster);
    server.await.unwrap();
    assert!(matches!(err, ApplyError::WaitTimeout { .. }), "{err}");
}

/// A member list answer holding `objects` as the server keeps them (with server fields).
fn as_members(path: &str, objects: &[Value]) -> Value {
    let items: Vec<Value> = objects
        .iter()
        .filter(|o| {
            let api = o["apiVersion"].as_str().unwrap();
            let plural = format!("{}s", o["kind"].as_str().unwrap().to_lowercase());
            let base = if api.contains('/') {
                format!("/apis/{api}/{plural}")
            } else {
                format!("/api/{api}/{plural}")
            };
            base == path
        })
        .map(|o| {
            let mut o = o.clone();
            o["metadata"]["resourceVersion"] = json!("7");
            o["metadata"]["uid"] = json!("u-1");
            o
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items})
}

#[tokio::test]
async fn objects_that_still_hold_what_was_last_applied_are_not_sent_again() {
    // The first apply: what homelab sends carries the digest of each manifest.
    let (cluster, server) = mock(Box::new(|_| None));
    cluster
        .apply(&plan(vec![web_unit()]), &fast(), &|_| {})
        .await
        .unwrap();
    drop(cluster);
    let sent: Vec<Value> = server
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method == "PATCH" && !r.path.ends_with("applyset-lab"))
        .map(|r| r.body)
        .collect();
    assert_eq!(sent.len(), 3);
    for o in &sent {
        assert!(
            o["metadata"]["annotations"]["homelab-rs.github.io/applied-digest"].is_string(),
            "{o}"
        );
    }

    // The cluster holds exactly that, except someone changed the ConfigMap.
    let mut live = sent.clone();
    for o in &mut live {
        if o["kind"] == "ConfigMap" {
            o["data"]["a"] = json!("changed by hand");
        }
    }
    let parent = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "applyset-lab", "namespace": "homelab",
        "labels": {"applyset.kubernetes.io/id": id()},
        "annotations": {"applyset.kubernetes.io/tooling": format!("homelab/{}", ApplyOptions::default().tooling_version),
            "applyset.kubernetes.io/contains-group-kinds": "ConfigMap,Deployment.apps,Namespace",
            "applyset.kubernetes.io/additional-namespaces": "web"}}});
    let (cluster, server) = mock(Box::new(move |req| {
        if req.method == "GET" && req.path.ends_with("applyset-lab") {
            return Some((200, parent.clone()));
        }
        if req.method == "GET" && req.param("labelSelector").is_some() {
            return Some((200, as_members(&req.path, &live)));
        }
        None
    }));
    let report = cluster
        .apply(&plan(vec![web_unit()]), &fast(), &|_| {})
        .await
        .unwrap();
    drop(cluster);
    let patches: Vec<String> = server
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.path.clone())
        .collect();
    // Only the drifted object is written back.
    assert_eq!(patches, ["/api/v1/namespaces/web/configmaps/settings"]);
    let outcomes: Vec<(String, ObjectOutcome)> = report.units[0]
        .objects
        .iter()
        .map(|o| (o.object.kind.clone(), o.outcome))
        .collect();
    assert!(outcomes.contains(&("Namespace".into(), ObjectOutcome::Unchanged)));
    assert!(outcomes.contains(&("Deployment".into(), ObjectOutcome::Unchanged)));
    assert!(outcomes.contains(&("ConfigMap".into(), ObjectOutcome::Configured)));
}

#[tokio::test]
async fn gates_that_all_pass_are_looked_at_once_each_and_the_rest_in_order() {
    let crd = |name: &str| {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": name},
            "status": {"conditions": [{"type": "Established", "status": "True"}]}})
    };
    let deployment_looks = Arc::new(Mutex::new(0));
    let looks = deployment_looks.clone();
    let (cluster, server) = mock(Box::new(move |req| {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/a.example.com") => {
                Some((200, crd("a.example.com")))
            }
            ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/b.example.com") => {
                Some((200, crd("b.example.com")))
            }
            ("GET", "/apis/apps/v1/namespaces/web/deployments/web") => {
                // Not available at the first look, available at the second.
                let mut n = looks.lock().unwrap();
                *n += 1;
                let available = if *n >= 2 { 1 } else { 0 };
                Some((
                    200,
                    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "web", "generation": 1},
                        "spec": {"replicas": 1},
                        "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": available}}),
                ))
            }
            _ => None,
        }
    }));
    let mut u = web_unit();
    u.waits = vec![
        WaitFor::CrdEstablished {
            name: "a.example.com".into(),
        },
        WaitFor::Available {
            kind: WorkloadKind::Deployment,
            namespace: "web".into(),
            name: "web".into(),
        },
        WaitFor::CrdEstablished {
            name: "b.example.com".into(),
        },
    ];
    let (events, sink) = recorder();
    cluster.apply(&plan(vec![u]), &fast(), &sink).await.unwrap();
    drop(cluster);
    let seen = server.await.unwrap();
    let gets = |path: &str| seen.iter().filter(|r| r.path.ends_with(path)).count();
    // The CRDs passed at the first look and are not asked again; the Deployment is waited for.
    assert_eq!(gets("customresourcedefinitions/a.example.com"), 1);
    assert_eq!(gets("customresourcedefinitions/b.example.com"), 1);
    assert_eq!(*deployment_looks.lock().unwrap(), 2);
    // Events keep the declared order: each gate waited for, then done.
    let waits: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ApplyEvent::Waiting { what, .. } => Some(format!("waiting {what}")),
            ApplyEvent::WaitDone { what, .. } => Some(format!("done {what}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        waits,
        [
            "waiting CustomResourceDefinition a.example.com to be established",
            "done CustomResourceDefinition a.example.com to be established",
            "waiting Deployment web/web to be available",
            "done Deployment web/web to be available",
            "waiting CustomResourceDefinition b.example.com to be established",
            "done CustomResourceDefinition b.example.com to be established",
        ]
    );
}

fn version() -> Value {
    json!({"major": "1", "minor": "34", "gitVersion": "v1.34.1+k3s1", "gitCommit": "", "gitTreeState": "clean",
        "buildDate": "", "goVersion": "", "compiler": "gc", "platform": "linux/amd64"})
}

/// `status` lists each kind once cluster-wide, all at once with `/version`; where the user may
/// not list a kind cluster-wide (403), it lists it in each namespace the checks look into.
#[tokio::test]
async fn status_lists_each_kind_once_and_falls_back_to_namespaces_when_forbidden() {
    let (cluster, server) = mock(Box::new(|req| {
        let list = |items: Value| {
            Some((
                200,
                json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}),
            ))
        };
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/version") => Some((200, version())),
            ("GET", "/api/v1/nodes") => list(
                json!([{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "server-1"},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}]),
            ),
            ("GET", "/apis/apps/v1/deployments") => Some((
                403,
                status(
                    403,
                    "Forbidden",
                    "deployments.apps is forbidden at the cluster scope",
                ),
            )),
            ("GET", "/apis/apps/v1/namespaces/apps/deployments") => list(json!([
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps", "generation": 1},
                 "spec": {"replicas": 1},
                 "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}}])),
            ("GET", "/apis/apps/v1/namespaces/data/deployments") => Some((
                403,
                status(403, "Forbidden", "deployments.apps is forbidden in data"),
            )),
            ("GET", "/api/v1/persistentvolumeclaims") => list(json!([
                {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "db", "namespace": "data"}, "status": {"phase": "Bound"}},
                {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "db", "namespace": "apps"}, "status": {"phase": "Pending"}}])),
            ("GET", "/apis/cert-manager.io/v1/certificates") => Some((
                404,
                status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            )),
            _ => None,
        }
    }));
    let checks: StatusChecks = serde_json::from_value(json!({
        "nodes": ["server-1"],
        "components": [
            {"name": "web", "namespace": "apps", "workloads": [{"kind": "Deployment", "name": "web"}], "certificates": ["web-tls"]},
            {"name": "db", "namespace": "data", "workloads": [{"kind": "Deployment", "name": "db"}], "pvcs": ["db"]},
        ],
    }))
    .unwrap();
    let options = StatusOptions {
        retry: RetryPolicy::with_retries(0),
        ..StatusOptions::default()
    };
    let report = cluster.status(&checks, &options).await;
    drop(cluster);
    let seen = server.await.unwrap();
    let mut lines: Vec<String> = seen.iter().map(Seen::line).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "GET /api/v1/nodes",
            "GET /api/v1/persistentvolumeclaims",
            "GET /apis/apps/v1/deployments",
            "GET /apis/apps/v1/namespaces/apps/deployments",
            "GET /apis/apps/v1/namespaces/data/deployments",
            "GET /apis/cert-manager.io/v1/certificates",
            "GET /version",
        ]
    );
    assert_eq!(report.health, Health::Unhealthy);
    assert_eq!(report.version.as_deref(), Some("v1.34.1+k3s1"));
    let details: Vec<(String, bool, String)> = report
        .components
        .iter()
        .flat_map(|c| {
            c.checks
                .iter()
                .map(|k| (k.what.clone(), k.ok, k.detail.clone()))
        })
        .collect();
    assert_eq!(
        details,
        [
            ("Deployment apps/web".to_string(), true, "ready".to_string()),
            (
                "Certificate apps/web-tls".to_string(),
                false,
                "does not exist (the cluster does not serve Certificate.cert-manager.io at all yet)".to_string()
            ),
            (
                "Deployment data/db".to_string(),
                false,
                "API error 403: deployments.apps is forbidden in data".to_string()
            ),
            ("PersistentVolumeClaim data/db".to_string(), true, "Bound".to_string()),
        ]
    );
}

/// `GET /version` answered 503 (K3s starting) is asked again, each retry reported; a server
/// that keeps answering 503 is unreachable after the bounded attempts.
#[tokio::test]
async fn the_version_check_waits_for_a_starting_server_within_bounds() {
    let mut unavailable = 3;
    let (cluster, server) = mock(Box::new(move |req| {
        if req.path == "/version" && unavailable > 0 {
            unavailable -= 1;
            return Some((
                503,
                status(503, "ServiceUnavailable", "apiserver not ready"),
            ));
        }
        (req.path == "/version").then(|| (200, version()))
    }));
    let (events, sink) = recorder();
    let policy = fast().retry;
    assert_eq!(
        cluster.ping_with(&policy, &sink).await.unwrap(),
        "v1.34.1+k3s1"
    );
    drop(cluster);
    assert_eq!(server.await.unwrap().len(), 4);
    let attempts: Vec<u32> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ApplyEvent::Retrying {
                action,
                object,
                attempt,
                reason,
                ..
            } => {
                assert_eq!(
                    (action.as_str(), object.as_str()),
                    ("read", "version of the Kubernetes API")
                );
                assert_eq!(reason, "HTTP 503: apiserver not ready");
                Some(*attempt)
            }
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2, 3]);

    let (cluster, server) = mock(Box::new(|req| {
        (req.path == "/version").then(|| {
            (
                503,
                status(503, "ServiceUnavailable", "apiserver not ready"),
            )
        })
    }));
    let err = cluster.ping_with(&policy, &|_| {}).await.unwrap_err();
    drop(cluster);
    assert_eq!(server.await.unwrap().len(), policy.attempts as usize);
    assert_eq!(
        err.to_string(),
        "the Kubernetes API at https://mock is unreachable: apiserver not ready (HTTP 503, after 4 attempts); check the cluster is running and the kubeconfig points at it (nothing was changed)"
    );
}

mod support;

/// The root CA's Secret is read by name (never listed): a CA far from its end passes with its
/// subject and fingerprint; one within the margin, a leaf, a Secret without `tls.crt` and a
/// missing Secret each fail with what to do; certificates made by the real openssl.
#[tokio::test]
async fn status_reads_the_root_ca_secret_by_name_and_reports_its_expiry() {
    let dir = tempfile::tempdir().unwrap();
    support::tls::make_certificates(dir.path(), "web.lab.example");
    let b64 = |file: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(dir.path().join(file)).unwrap())
    };
    let (ca, leaf) = (b64("ca.pem"), b64("server.pem"));
    let secret = |name: &str, data: Value| {
        Some((
            200,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "infra"}, "data": data}),
        ))
    };
    let (cluster, server) = mock(Box::new(move |req| match req.path.as_str() {
        "/version" => Some((200, version())),
        "/api/v1/namespaces/infra/secrets/root" => {
            secret("root", json!({"tls.crt": ca, "tls.key": "c2VjcmV0"}))
        }
        "/api/v1/namespaces/infra/secrets/leaf" => secret("leaf", json!({"tls.crt": leaf})),
        "/api/v1/namespaces/infra/secrets/empty" => secret("empty", json!({})),
        _ => None,
    }));
    let checks: StatusChecks = serde_json::from_value(json!({
        "components": [{"name": "cert-manager", "namespace": "infra", "caSecrets": ["root", "leaf", "empty", "gone"]}],
    }))
    .unwrap();
    // The openssl CA is valid for 2 days: with no margin it passes, with the default 90 it
    // is reported as ending soon.
    let relaxed = StatusOptions {
        retry: RetryPolicy::with_retries(0),
        ca_min_days: 0,
        ..StatusOptions::default()
    };
    let report = cluster.status(&checks, &relaxed).await;
    let strict = StatusOptions {
        retry: RetryPolicy::with_retries(0),
        ..StatusOptions::default()
    };
    let strict_report = cluster.status(&checks, &strict).await;
    drop(cluster);
    let seen = server.await.unwrap();
    assert!(
        !seen
            .iter()
            .any(|s| s.path == "/api/v1/secrets" || s.path == "/api/v1/namespaces/infra/secrets"),
        "Secrets are never listed: {:?}",
        seen.iter().map(Seen::line).collect::<Vec<_>>()
    );
    let checks = &report.components[0].checks;
    let detail = |i: usize| (checks[i].ok, checks[i].detail.clone());
    assert_eq!(checks[0].what, "root CA Secret infra/root");
    let (ok, root) = detail(0);
    assert!(ok, "{root}");
    assert!(root.contains("`homelab test CA` valid until 20"), "{root}");
    assert!(root.contains("SHA-256 "), "{root}");
    assert_eq!(
        detail(1),
        (false, "`tls.crt` is not a CA certificate".to_string())
    );
    assert_eq!(detail(2), (false, "has no `tls.crt`".to_string()));
    assert_eq!(
        detail(3),
        (
            false,
            "does not exist: `homelab apply` creates it from the secrets file".to_string()
        )
    );
    assert_eq!(report.health, Health::Unhealthy);
    assert_eq!(report.problems.len(), 3);
    assert!(
        report.problems[0]
            .fix
            .contains("homelab secrets rotate internal-ca-key")
    );
    let soon = &strict_report.components[0].checks[0];
    assert!(!soon.ok);
    assert!(
        // Two days from when openssl made it: one whole day left, or two within its second.
        soon.detail.contains("expires on")
            && (soon.detail.contains("(in 1 days)") || soon.detail.contains("(in 2 days)")),
        "{}",
        soon.detail
    );
    // What the walk reads is what openssl says.
    let pem = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let info = homelab_kube::x509::certificate_info(&pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-enddate",
            "-in",
        ])
        .arg(dir.path().join("ca.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("sha256 Fingerprint={}", info.sha256)),
        "{text}"
    );
    let end = text
        .lines()
        .find_map(|l| l.strip_prefix("notAfter="))
        .unwrap();
    let words: Vec<&str> = end.split_whitespace().collect();
    let date = format!(
        "{} {:0>2} {} {} +0000",
        words[0], words[1], words[2], words[3]
    );
    let parsed = k8s_openapi::jiff::fmt::strtime::parse("%b %d %H:%M:%S %Y %z", &date)
        .and_then(|t| t.to_timestamp())
        .unwrap();
    assert_eq!(parsed, info.not_after, "{end}");
    let text = serde_json::to_string(&report).unwrap();
    assert!(!text.contains("c2VjcmV0"), "the key is never in the report");
}
