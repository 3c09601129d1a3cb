//! End to end through the real client code path against the Kubernetes API stand-in (kmock),
//! and against a real cluster when HOMELAB_E2E_KUBECONFIG is set: apply, re-apply, change,
//! diff, prune, interrupted runs, status, and the errors that stop before anything is written.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use homelab_kube::{
    ApplyError, ApplyEvent, ApplyOptions, ApplyPlan, Cluster, ConnectError, DiffOptions, Health,
    KubeconfigSource, ObjectChange, ObjectOutcome, RetryPolicy, StatusChecks, StatusOptions,
};
use serde_json::{Value, json};
use support::{Backend, LabPlan, StandIn, StandInOptions, real_cluster};

async fn connect(backend: &Backend) -> Cluster {
    Cluster::connect(&KubeconfigSource {
        explicit: Some(backend.kubeconfig()),
        ..Default::default()
    })
    .await
    .expect("connect")
}

fn options(backend: &Backend) -> ApplyOptions {
    ApplyOptions {
        wait_timeout: if backend.is_real() {
            Duration::from_secs(300)
        } else {
            Duration::from_secs(60)
        },
        poll_interval: Duration::from_millis(if backend.is_real() { 1000 } else { 20 }),
        retry: RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
        },
        ..ApplyOptions::default()
    }
}

fn plan(lab: &LabPlan) -> ApplyPlan {
    serde_json::from_value(lab.to_json()).expect("the lab plan deserializes as an ApplyPlan")
}

type Events = Arc<Mutex<Vec<ApplyEvent>>>;

fn recorder() -> (Events, impl Fn(ApplyEvent) + Send + Sync) {
    let events: Events = Arc::default();
    let sink = events.clone();
    (events, move |e| sink.lock().unwrap().push(e))
}

fn outcomes(report: &homelab_kube::ApplyReport) -> Vec<(String, ObjectOutcome)> {
    report
        .units
        .iter()
        .flat_map(|u| u.objects.iter().map(|o| (o.object.to_string(), o.outcome)))
        .collect()
}

fn changed_objects(report: &homelab_kube::ApplyReport) -> Vec<String> {
    let mut v: Vec<String> = outcomes(report)
        .into_iter()
        .filter(|(_, o)| *o != ObjectOutcome::Unchanged)
        .map(|(r, _)| r)
        .collect();
    v.sort();
    v
}

async fn exists(cluster: &Cluster, path: &str) -> bool {
    let req = http::Request::get(path).body(vec![]).unwrap();
    match cluster.client().request::<Value>(req).await {
        Ok(_) => true,
        Err(kube::Error::Api(s)) if s.code == 404 => false,
        Err(e) => panic!("GET {path}: {e}"),
    }
}

/// apply, re-apply (no change), diff, change, diff, apply, prune a removed unit.
async fn apply_lifecycle(backend: Backend, suffix: &str) {
    let cluster = connect(&backend).await;
    let opts = options(&backend);
    let mut lab = LabPlan::new(suffix);
    let apps = lab.ns("apps");
    let data = lab.ns("data");

    // First apply creates everything, in dependency order, passing every gate.
    let (events, sink) = recorder();
    let report = cluster
        .apply(&plan(&lab), &opts, &sink)
        .await
        .expect("first apply");
    assert!(
        outcomes(&report)
            .iter()
            .all(|(_, o)| *o == ObjectOutcome::Created),
        "{:?}",
        outcomes(&report)
    );
    let units: Vec<&str> = report.units.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        units,
        [
            "namespaces",
            "cert-manager",
            "podinfo-chart",
            "postgres",
            "web"
        ]
    );
    let waited: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ApplyEvent::WaitDone { what, .. } => Some(what.clone()),
            _ => None,
        })
        .collect();
    for want in [
        "CustomResourceDefinition certificates.cert-manager.io to be established".to_string(),
        format!("HelmChart kube-system/podinfo-{suffix} install job to succeed"),
        format!("StatefulSet {data}/postgres to be available"),
        format!("Deployment {apps}/web to be available"),
    ] {
        assert!(
            waited.contains(&want),
            "missing wait {want:?} in {waited:?}"
        );
    }

    // A second apply with no change reports every object and unit unchanged.
    let (events, sink) = recorder();
    let report = cluster
        .apply(&plan(&lab), &opts, &sink)
        .await
        .expect("re-apply");
    assert_eq!(changed_objects(&report), Vec::<String>::new());
    assert!(!report.changed());
    let ready: Vec<bool> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ApplyEvent::UnitReady { changed, .. } => Some(*changed),
            _ => None,
        })
        .collect();
    assert_eq!(ready, [false; 5]);

    let diff = cluster
        .diff(&plan(&lab), &DiffOptions::default())
        .await
        .expect("diff");
    assert!(!diff.has_changes(), "{}", diff.unified());

    // Change the plan: the diff shows exactly those objects, without Secret values.
    lab.greeting = "good evening".into();
    lab.web_replicas = 2;
    lab.db_password = "second-secret-value".into();
    let diff = cluster
        .diff(&plan(&lab), &DiffOptions::default())
        .await
        .expect("diff");
    assert!(diff.has_changes());
    let mut updated: Vec<String> = diff
        .objects
        .iter()
        .filter(|o| o.change != ObjectChange::Unchanged)
        .map(|o| format!("{:?} {}", o.change, o.object))
        .collect();
    updated.sort();
    assert_eq!(
        updated,
        [
            format!("Update ConfigMap {apps}/web-settings"),
            format!("Update Deployment.apps {apps}/web"),
            format!("Update Secret {data}/postgres-credentials"),
        ]
    );
    let text = diff.unified();
    assert!(text.contains("+  greeting: good evening"), "{text}");
    assert!(text.contains("-  greeting: hello"), "{text}");
    assert!(text.contains("*** (after)"), "{text}");
    for secret in [
        "first-secret-value",
        "second-secret-value",
        "Zmlyc3Qtc2VjcmV0LXZhbHVl",
        "c2Vjb25kLXNlY3JldC12YWx1ZQ==",
    ] {
        assert!(!text.contains(secret), "the diff shows a secret value");
    }

    let report = cluster
        .apply(&plan(&lab), &opts, &|_| {})
        .await
        .expect("apply change");
    assert_eq!(
        changed_objects(&report),
        [
            format!("ConfigMap {apps}/web-settings"),
            format!("Deployment.apps {apps}/web"),
            format!("Secret {data}/postgres-credentials"),
        ]
    );
    let diff = cluster
        .diff(&plan(&lab), &DiffOptions::default())
        .await
        .expect("diff");
    assert!(!diff.has_changes(), "{}", diff.unified());

    // Remove a unit: diff --prune shows its objects as deletions, apply --prune deletes them.
    lab.without = vec!["web".into()];
    let diff = cluster
        .diff(
            &plan(&lab),
            &DiffOptions {
                prune: true,
                ..Default::default()
            },
        )
        .await
        .expect("diff --prune");
    let mut deletions: Vec<String> = diff
        .objects
        .iter()
        .filter(|o| o.change == ObjectChange::Delete)
        .map(|o| o.object.to_string())
        .collect();
    deletions.sort();
    assert_eq!(
        deletions,
        [
            format!("Certificate.cert-manager.io {apps}/web-tls"),
            format!("ConfigMap {apps}/web-settings"),
            format!("Deployment.apps {apps}/web"),
            format!("Service {apps}/web"),
        ]
    );
    let prune = ApplyOptions {
        prune: true,
        ..opts.clone()
    };
    let report = cluster
        .apply(&plan(&lab), &prune, &|_| {})
        .await
        .expect("apply --prune");
    let mut pruned: Vec<String> = report
        .pruned
        .iter()
        .filter(|p| p.deleted)
        .map(|p| p.object.to_string())
        .collect();
    pruned.sort();
    assert_eq!(pruned, deletions);
    assert!(
        !exists(
            &cluster,
            &format!("/apis/apps/v1/namespaces/{apps}/deployments/web")
        )
        .await
    );
    assert!(
        exists(
            &cluster,
            &format!("/apis/apps/v1/namespaces/{data}/statefulsets/postgres")
        )
        .await
    );
    assert!(
        exists(&cluster, &format!("/api/v1/namespaces/{apps}")).await,
        "namespaces unit still plans it"
    );

    // Nothing left to prune or change.
    let report = cluster
        .apply(&plan(&lab), &prune, &|_| {})
        .await
        .expect("second prune");
    assert!(!report.changed(), "{report:?}");
    assert!(report.pruned.is_empty());

    // Leave a real cluster clean.
    if backend.is_real() {
        lab.without = vec![
            "namespaces".into(),
            "cert-manager".into(),
            "podinfo-chart".into(),
            "postgres".into(),
            "web".into(),
        ];
        let _ = cluster.apply(&plan(&lab), &prune, &|_| {}).await;
    }
}

#[tokio::test]
async fn standin_apply_reapply_change_diff_and_prune() {
    let standin = StandIn::start(&StandInOptions::default());
    apply_lifecycle(Backend::StandIn(standin), "life").await;
}

#[tokio::test]
async fn real_cluster_apply_reapply_change_diff_and_prune() {
    let Some(kubeconfig) = real_cluster("real_cluster_apply_reapply_change_diff_and_prune") else {
        return;
    };
    apply_lifecycle(Backend::Real(kubeconfig), "e2e1").await;
}

fn checks(lab: &LabPlan, nodes: &[&str]) -> StatusChecks {
    serde_json::from_value(lab.status_checks(nodes)).expect("status checks deserialize")
}

fn now_minus(seconds: i64) -> String {
    let t =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(seconds);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[tokio::test]
async fn standin_status_reports_ready_and_unready_objects_as_json() {
    let standin = StandIn::start(&StandInOptions::default());
    let backend = Backend::StandIn(standin);
    let cluster = connect(&backend).await;
    let lab = LabPlan::new("st");
    cluster
        .apply(&plan(&lab), &options(&backend), &|_| {})
        .await
        .expect("apply");
    let Backend::StandIn(standin) = &backend else {
        unreachable!()
    };
    let (data, apps) = (lab.ns("data"), lab.ns("apps"));
    standin.patch_status(
        &format!("/apis/batch/v1/namespaces/{data}/cronjobs/postgres-backup"),
        json!({"lastScheduleTime": now_minus(3600), "lastSuccessfulTime": now_minus(3590)}),
    );

    let report = cluster
        .status(
            &checks(&lab, &["server-1", "agent-1"]),
            &StatusOptions::default(),
        )
        .await;
    assert_eq!(report.health, Health::Healthy, "{:#?}", report.problems);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["health"], "healthy");
    assert_eq!(json["nodes"][0]["kubeletVersion"], "v1.34.1+k3s1");
    let web = report.components.iter().find(|c| c.name == "web").unwrap();
    let details: Vec<&str> = web.checks.iter().map(|c| c.detail.as_str()).collect();
    assert_eq!(details[0], "ready");
    assert!(details[1].starts_with("address 192.0.2."), "{details:?}");
    let days: i64 = details[2]
        .strip_prefix("ready, expires in ")
        .and_then(|d| d.strip_suffix(" days"))
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("{details:?}"));
    assert!((88..=90).contains(&days), "{details:?}");
    assert_eq!(
        report.backups[0]
            .age_seconds
            .map(|a| (3590..3700).contains(&a)),
        Some(true)
    );

    // The test marks things unready through the API, as a controller would.
    standin.patch_status(
        &format!("/apis/apps/v1/namespaces/{apps}/deployments/web"),
        json!({"availableReplicas": 0, "readyReplicas": 0,
               "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]}),
    );
    standin.patch_status(
        &format!("/api/v1/namespaces/{data}/persistentvolumeclaims/postgres-backups"),
        json!({"phase": "Pending"}),
    );
    standin.patch_status(
        "/api/v1/nodes/agent-1",
        json!({"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"},
                              {"type": "DiskPressure", "status": "True"}]}),
    );
    standin.patch_status(
        &format!("/apis/batch/v1/namespaces/{data}/cronjobs/postgres-backup"),
        json!({"lastSuccessfulTime": now_minus(3 * 86_400)}),
    );
    let report = cluster
        .status(
            &checks(&lab, &["server-1", "agent-1", "agent-2"]),
            &StatusOptions::default(),
        )
        .await;
    assert_eq!(report.health, Health::Unhealthy);
    let subjects: Vec<&str> = report.problems.iter().map(|p| p.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "node agent-1".to_string(),
            "node agent-1".into(),
            "node agent-2".into(),
            format!("PersistentVolumeClaim {data}/postgres-backups"),
            format!("Deployment {apps}/web"),
            format!("backup CronJob {data}/postgres-backup"),
        ]
    );
    assert!(report.problems.iter().all(|p| !p.fix.is_empty()));
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"health\":\"unhealthy\""));
    assert!(json.contains("0/1 replicas available"), "{json}");

    // The API going away is "unreachable", not "unhealthy".
    drop(backend);
    let report = cluster
        .status(&checks(&lab, &["server-1"]), &StatusOptions::default())
        .await;
    assert_eq!(report.health, Health::Unreachable);
    assert_eq!(
        serde_json::to_value(&report).unwrap()["health"],
        "unreachable"
    );
}

/// `status` of a seed-sized lab is one round of requests: `GET /version` and one
/// cluster-wide list per kind its checks read, all in flight together, whatever the number
/// of objects checked (38 here).
#[tokio::test]
async fn standin_status_is_one_round_of_one_list_per_kind() {
    let standin = StandIn::start(&StandInOptions {
        controller_delay: Duration::from_millis(10),
        crd_delay: Duration::ZERO,
        nodes: vec!["server-1".into(), "agent-1".into(), "agent-2".into()],
        ..StandInOptions::default()
    });
    let backend = Backend::StandIn(standin);
    let cluster = connect(&backend).await;
    let Backend::StandIn(standin) = &backend else {
        unreachable!()
    };
    let (plan, checks) = support::seed_sized_lab();
    let plan: ApplyPlan = serde_json::from_value(plan).unwrap();
    let mut checks: StatusChecks = serde_json::from_value(checks).unwrap();
    checks.urls.clear();
    cluster
        .apply(&plan, &options(&backend), &|_| {})
        .await
        .expect("apply the seed-sized lab");
    for b in &checks.backups {
        standin.patch_status(
            &format!(
                "/apis/batch/v1/namespaces/{}/cronjobs/{}",
                b.namespace, b.cronjob
            ),
            json!({"lastSuccessfulTime": now_minus(60)}),
        );
    }
    let checked: usize = checks
        .components
        .iter()
        .map(|c| {
            c.helm_charts.len()
                + c.workloads.len()
                + c.pvcs.len()
                + c.load_balancers.len()
                + c.certificates.len()
        })
        .sum::<usize>()
        + checks.backups.len()
        + 1;
    assert_eq!(checked, 38, "checks of the seed-sized lab");

    // With latency, requests sent one after the other would never overlap.
    standin.set_latency(Duration::from_millis(300));
    standin.reset_max_in_flight();
    let before = standin.request_count();
    let report = cluster.status(&checks, &StatusOptions::default()).await;
    let requests = standin.request_count() - before;
    assert_eq!(report.health, Health::Healthy, "{:#?}", report.problems);
    // version + Node, HelmChart, Job, Deployment, StatefulSet, DaemonSet,
    // PersistentVolumeClaim, Service, Certificate, CronJob
    assert_eq!(requests, 11, "one request per kind, not per object");
    assert_eq!(standin.max_in_flight(), 11, "all sent at once");
}

#[tokio::test]
async fn real_cluster_status_names_an_unready_workload() {
    let Some(kubeconfig) = real_cluster("real_cluster_status_names_an_unready_workload") else {
        return;
    };
    let backend = Backend::Real(kubeconfig);
    let cluster = connect(&backend).await;
    let mut lab = LabPlan::new("e2e2");
    lab.without = vec!["podinfo-chart".into()];
    cluster
        .apply(&plan(&lab), &options(&backend), &|_| {})
        .await
        .expect("apply");
    let mut checks = checks(&lab, &[]);
    checks.backups.clear();
    let report = cluster.status(&checks, &StatusOptions::default()).await;
    let web = report.components.iter().find(|c| c.name == "web").unwrap();
    assert!(web.checks[0].ok, "{:?}", web.checks);
    assert!(report.nodes.iter().all(|n| n.ready), "{:?}", report.nodes);
    // An image that cannot be pulled keeps the new rollout from ever becoming available.
    lab.image = "registry.invalid/homelab/none:0".into();
    lab.without.push("postgres".into());
    let no_wait = ApplyOptions {
        wait_timeout: Duration::from_secs(1),
        ..options(&backend)
    };
    let _ = cluster.apply(&plan(&lab), &no_wait, &|_| {}).await;
    let report = cluster.status(&checks, &StatusOptions::default()).await;
    assert_eq!(report.health, Health::Unhealthy);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.subject == format!("Deployment {}/web", lab.ns("apps")))
    );
    lab.without = vec![
        "namespaces".into(),
        "cert-manager".into(),
        "postgres".into(),
        "web".into(),
    ];
    let _ = cluster
        .apply(
            &plan(&lab),
            &ApplyOptions {
                prune: true,
                ..options(&backend)
            },
            &|_| {},
        )
        .await;
}

#[tokio::test]
async fn standin_an_interrupted_apply_is_finished_and_pruned_by_later_runs() {
    let standin = StandIn::start(&StandInOptions::default());
    let lab = LabPlan::new("int");
    let apps = lab.ns("apps");
    // Every write of the web Deployment fails: the run stops in the middle of the last unit.
    standin.inject_fault(
        "PATCH",
        &format!("/namespaces/{apps}/deployments/web$"),
        503,
        1000,
    );
    let backend = Backend::StandIn(standin);
    let cluster = connect(&backend).await;
    let opts = options(&backend);
    let err = cluster
        .apply(&plan(&lab), &opts, &|_| {})
        .await
        .unwrap_err();
    match &err {
        ApplyError::Api {
            action,
            object,
            code,
            message,
            attempts,
        } => {
            assert_eq!(
                (*action, object.as_str(), *code, *attempts),
                (
                    "apply",
                    format!("Deployment.apps {apps}/web").as_str(),
                    Some(503),
                    3
                )
            );
            assert_eq!(message, "injected 503");
        }
        other => panic!("unexpected error {other}"),
    }
    // The parent already covers what the interrupted run wrote.
    assert!(
        exists(
            &cluster,
            &format!("/api/v1/namespaces/{apps}/configmaps/web-settings")
        )
        .await
    );
    let Backend::StandIn(standin) = &backend else {
        unreachable!()
    };
    let parent = standin
        .request(
            "GET",
            &format!(
                "/api/v1/namespaces/{}/secrets/applyset-lab-int",
                lab.ns("homelab")
            ),
            "application/json",
            None,
        )
        .1;
    let kinds = parent["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        kinds.contains("Deployment.apps") && kinds.contains("Certificate.cert-manager.io"),
        "{kinds}"
    );

    // A plan without the web unit, with --prune, removes what the interrupted run created.
    let mut smaller = lab.clone();
    smaller.without = vec!["web".into()];
    let prune = ApplyOptions {
        prune: true,
        ..opts.clone()
    };
    let report = cluster
        .apply(&plan(&smaller), &prune, &|_| {})
        .await
        .expect("prune after interruption");
    let pruned: Vec<String> = report.pruned.iter().map(|p| p.object.to_string()).collect();
    assert!(
        pruned.contains(&format!("ConfigMap {apps}/web-settings")),
        "{pruned:?}"
    );
    assert!(
        !exists(
            &cluster,
            &format!("/api/v1/namespaces/{apps}/configmaps/web-settings")
        )
        .await
    );

    // And the full plan, once the API behaves, is finished by the next run.
    standin.clear_faults();
    let report = cluster
        .apply(&plan(&lab), &opts, &|_| {})
        .await
        .expect("finish");
    let web = report.units.iter().find(|u| u.name == "web").unwrap();
    assert!(
        web.objects
            .iter()
            .all(|o| o.outcome == ObjectOutcome::Created)
    );
    assert!(
        report
            .units
            .iter()
            .filter(|u| u.name != "web")
            .all(|u| !u.changed)
    );
}

#[tokio::test]
async fn standin_prune_keeps_a_namespace_holding_objects_it_did_not_create() {
    let standin = StandIn::start(&StandInOptions::default());
    let mut lab = LabPlan::new("ns");
    lab.without = vec![
        "podinfo-chart".into(),
        "postgres".into(),
        "cert-manager".into(),
    ];
    let mut p = plan(&lab);
    p.units.retain(|u| u.name == "namespaces");
    let apps = lab.ns("apps");
    let backend = Backend::StandIn(standin);
    let cluster = connect(&backend).await;
    let opts = ApplyOptions {
        prune: true,
        ..options(&backend)
    };
    cluster.apply(&p, &opts, &|_| {}).await.unwrap();
    let Backend::StandIn(standin) = &backend else {
        unreachable!()
    };
    let (code, _) = standin.request(
        "POST",
        &format!("/api/v1/namespaces/{apps}/configmaps"),
        "application/json",
        Some(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hand-made"}, "data": {"k": "v"}})),
    );
    assert_eq!(code, 201);
    let mut without_apps = p.clone();
    without_apps.units[0]
        .objects
        .retain(|o| o["metadata"]["name"] != apps.as_str());
    let (events, sink) = recorder();
    let report = cluster.apply(&without_apps, &opts, &sink).await.unwrap();
    assert_eq!(report.pruned.len(), 1);
    assert!(!report.pruned[0].deleted);
    let reason = report.pruned[0].kept_because.clone().unwrap();
    assert!(reason.contains("ConfigMap hand-made"), "{reason}");
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ApplyEvent::PruneSkipped { .. }))
    );
    assert!(
        exists(
            &cluster,
            &format!("/api/v1/namespaces/{apps}/configmaps/hand-made")
        )
        .await
    );

    // Once the stranger is gone, the next prune removes the namespace.
    let (code, _) = standin.request(
        "DELETE",
        &format!("/api/v1/namespaces/{apps}/configmaps/hand-made"),
        "application/json",
        None,
    );
    assert_eq!(code, 200);
    let report = cluster.apply(&without_apps, &opts, &|_| {}).await.unwrap();
    assert!(
        report.pruned.iter().all(|p| p.deleted) && report.pruned.len() == 1,
        "{report:?}"
    );
    assert!(!exists(&cluster, &format!("/api/v1/namespaces/{apps}")).await);
}

/// A server (or a proxy in front of it) that drops `labelSelector` answers every list with
/// every object of the kind. Prune must still delete only what carries our label, and delete
/// a namespace only when nothing else is in it.
#[tokio::test]
async fn standin_ignoring_label_selectors_prunes_only_what_is_ours_and_keeps_a_shared_namespace() {
    let standin = StandIn::start(&StandInOptions {
        ignore_label_selectors: true,
        ..StandInOptions::default()
    });
    let backend = Backend::StandIn(standin);
    let cluster = connect(&backend).await;
    let Backend::StandIn(standin) = &backend else {
        unreachable!()
    };
    let opts = ApplyOptions {
        prune: true,
        ..options(&backend)
    };
    let docs_unit = json!({"name": "docs", "dependsOn": ["homelab"], "objects": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "docs"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ours", "namespace": "docs"}, "data": {"a": "1"}},
    ]});
    let homelab_unit = json!({"name": "homelab", "objects": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "homelab"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "homelab"}, "data": {"a": "1"}},
    ]});
    let plan_of = |units: Vec<&Value>| -> ApplyPlan {
        serde_json::from_value(json!({"applyset": {"name": "lab", "namespace": "homelab"},
            "fieldManager": "homelab", "units": units}))
        .unwrap()
    };
    cluster
        .apply(&plan_of(vec![&homelab_unit, &docs_unit]), &opts, &|_| {})
        .await
        .expect("first apply");
    // Someone keeps their own things in the lab's namespace, and in another of ours.
    for ns in ["docs", "homelab"] {
        let (code, body) = standin.request(
            "POST",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            "application/json",
            Some(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine"}, "data": {"k": "v"}})),
        );
        assert_eq!(code, 201, "{body}");
    }

    // The service is disabled: its ConfigMap goes, the namespace stays for `mine`.
    let (events, sink) = recorder();
    let report = cluster
        .apply(&plan_of(vec![&homelab_unit]), &opts, &sink)
        .await
        .expect("apply --prune");
    let deleted: Vec<String> = report
        .pruned
        .iter()
        .filter(|p| p.deleted)
        .map(|p| p.object.to_string())
        .collect();
    assert_eq!(deleted, ["ConfigMap docs/ours"], "{report:#?}");
    let kept: Vec<(String, String)> = report
        .pruned
        .iter()
        .filter(|p| !p.deleted)
        .map(|p| (p.object.to_string(), p.kept_because.clone().unwrap()))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].0, "Namespace docs");
    assert!(kept[0].1.contains("ConfigMap mine"), "{kept:?}");
    assert!(
        !events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ApplyEvent::Pruned { object } if object.kind == "Namespace")),
        "no namespace is reported pruned"
    );
    for path in [
        "/api/v1/namespaces/docs",
        "/api/v1/namespaces/docs/configmaps/mine",
        "/api/v1/namespaces/homelab/configmaps/mine",
        "/api/v1/namespaces/homelab/configmaps/settings",
        "/api/v1/namespaces/default",
        "/api/v1/namespaces/kube-system",
    ] {
        assert!(exists(&cluster, path).await, "{path} was deleted");
    }
    assert!(!exists(&cluster, "/api/v1/namespaces/docs/configmaps/ours").await);

    // Once their ConfigMap is gone, the namespace is pruned too.
    let (code, _) = standin.request(
        "DELETE",
        "/api/v1/namespaces/docs/configmaps/mine",
        "application/json",
        None,
    );
    assert_eq!(code, 200);
    let report = cluster
        .apply(&plan_of(vec![&homelab_unit]), &opts, &|_| {})
        .await
        .expect("second prune");
    let deleted: Vec<String> = report
        .pruned
        .iter()
        .filter(|p| p.deleted)
        .map(|p| p.object.to_string())
        .collect();
    assert_eq!(deleted, ["Namespace docs"], "{report:#?}");
    assert!(exists(&cluster, "/api/v1/namespaces/homelab/configmaps/mine").await);
}

#[tokio::test]
async fn a_missing_kubeconfig_or_unreachable_api_stops_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope/kubeconfig");
    let err = Cluster::connect(&KubeconfigSource {
        default_path: Some(missing.clone()),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectError::NoKubeconfig { .. }));
    let text = err.to_string();
    for hint in [
        "--kubeconfig",
        "KUBECONFIG",
        "homelab kubeconfig",
        &missing.display().to_string(),
    ] {
        assert!(text.contains(hint), "{text}");
    }

    let err = Cluster::connect(&KubeconfigSource {
        env: Some(
            format!(
                "{}:{}",
                dir.path().join("a").display(),
                dir.path().join("b").display()
            )
            .into(),
        ),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, ConnectError::NoKubeconfig { ref looked_at } if looked_at.len() == 2),
        "{err}"
    );

    // A closed port: reserve one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        json!({"apiVersion": "v1", "kind": "Config", "current-context": "lab",
               "clusters": [{"name": "lab", "cluster": {"server": format!("http://127.0.0.1:{port}")}}],
               "users": [{"name": "lab", "user": {"token": "t"}}],
               "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}]})
        .to_string(),
    )
    .unwrap();
    let source = KubeconfigSource {
        explicit: Some(kubeconfig.clone()),
        ..Default::default()
    };
    let err = Cluster::connect(&source).await.unwrap_err();
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("nothing was changed"), "{err}");

    let err = Cluster::connect(&KubeconfigSource {
        context: Some("prod".into()),
        ..source
    })
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "context \"prod\" is not in the kubeconfig (available: lab); pass one of them with --context"
    );

    std::fs::write(&kubeconfig, "clusters: [not, a, kubeconfig").unwrap();
    let err = Cluster::connect(&KubeconfigSource {
        explicit: Some(kubeconfig.clone()),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectError::ReadKubeconfig { .. }), "{err}");
}

#[tokio::test]
async fn standin_dry_run_and_diff_on_an_empty_cluster_write_nothing() {
    let standin = StandIn::start(&StandInOptions::default());
    let backend = Backend::StandIn(standin);
    let cluster = connect(&backend).await;
    let lab = LabPlan::new("dry");
    let dry = ApplyOptions {
        dry_run: true,
        prune: true,
        ..options(&backend)
    };
    let (events, sink) = recorder();
    let report = cluster
        .apply(&plan(&lab), &dry, &sink)
        .await
        .expect("dry run");
    assert!(report.dry_run && report.changed());
    assert!(
        outcomes(&report)
            .iter()
            .all(|(_, o)| *o == ObjectOutcome::Created),
        "{:?}",
        outcomes(&report)
    );
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ApplyEvent::WaitSkipped { .. }))
    );
    let diff = cluster
        .diff(&plan(&lab), &DiffOptions::default())
        .await
        .expect("diff");
    assert!(
        diff.objects
            .iter()
            .all(|o| o.change == ObjectChange::Create)
    );
    assert!(!diff.unified().contains("first-secret-value"));
    for path in [
        format!("/api/v1/namespaces/{}", lab.ns("apps")),
        format!(
            "/api/v1/namespaces/{}/secrets/applyset-lab-dry",
            lab.ns("homelab")
        ),
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/certificates.cert-manager.io"
            .to_string(),
    ] {
        assert!(!exists(&cluster, &path).await, "{path} was written");
    }
}

/// Objects marked `homelab-rs.github.io/prune: never` (the static volume of existing NFS
/// data and its claim) survive a prune of the unit that had them, and so does their namespace;
/// the report says why.
#[tokio::test]
async fn standin_prune_keeps_objects_marked_never_and_their_namespace() {
    let standin = StandIn::start(&StandInOptions::default());
    let mut lab = LabPlan::new("keep");
    lab.without = vec![
        "podinfo-chart".into(),
        "postgres".into(),
        "cert-manager".into(),
        "web".into(),
    ];
    let media = lab.ns("media");
    let keep = json!({homelab_kube::ANNOTATION_KEEP: homelab_kube::KEEP_VALUE});
    let labels = json!({"app.kubernetes.io/name": "media"});
    let mut with_share = plan(&lab);
    with_share.units.push(
        serde_json::from_value(json!({"name": "shares", "dependsOn": ["namespaces"], "objects": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": media, "labels": labels}},
            {"apiVersion": "v1", "kind": "PersistentVolume",
             "metadata": {"name": format!("share-{media}"), "labels": labels, "annotations": keep},
             "spec": {"capacity": {"storage": "1Ti"}, "accessModes": ["ReadWriteMany"],
                      "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                      "nfs": {"server": "192.168.2.2", "path": "/volume1/media"},
                      "claimRef": {"namespace": media, "name": "share-media"}}},
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": "share-media", "namespace": media, "labels": labels, "annotations": keep},
             "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "",
                      "volumeName": format!("share-{media}"), "resources": {"requests": {"storage": "1Ti"}}}},
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "settings", "namespace": media, "labels": labels}, "data": {"k": "v"}},
        ]}))
        .unwrap(),
    );
    let backend = Backend::StandIn(standin);
    let cluster = connect(&backend).await;
    let opts = ApplyOptions {
        prune: true,
        ..options(&backend)
    };
    cluster.apply(&with_share, &opts, &|_| {}).await.unwrap();
    let pv = format!("/api/v1/persistentvolumes/share-{media}");
    let pvc = format!("/api/v1/namespaces/{media}/persistentvolumeclaims/share-media");
    assert!(exists(&cluster, &pv).await && exists(&cluster, &pvc).await);

    // The unit is gone from the plan: its ConfigMap goes, the marked objects and the
    // namespace stay, each with its reason.
    let without = plan(&lab);
    let report = cluster.apply(&without, &opts, &|_| {}).await.unwrap();
    let by_kind = |kind: &str| {
        report
            .pruned
            .iter()
            .find(|p| p.object.kind == kind)
            .unwrap_or_else(|| panic!("{kind} not in {:?}", report.pruned))
    };
    assert!(by_kind("ConfigMap").deleted);
    for kind in ["PersistentVolume", "PersistentVolumeClaim", "Namespace"] {
        let p = by_kind(kind);
        assert!(!p.deleted, "{kind} was deleted");
        let reason = p.kept_because.as_deref().unwrap();
        assert!(
            reason.contains("homelab-rs.github.io/prune=never"),
            "{kind}: {reason}"
        );
    }
    assert!(
        by_kind("Namespace")
            .kept_because
            .as_deref()
            .unwrap()
            .contains("PersistentVolumeClaim share-media")
    );
    assert!(exists(&cluster, &pv).await && exists(&cluster, &pvc).await);
    assert!(exists(&cluster, &format!("/api/v1/namespaces/{media}")).await);
    assert!(
        !exists(
            &cluster,
            &format!("/api/v1/namespaces/{media}/configmaps/settings")
        )
        .await
    );
    // Pruning again changes nothing and says the same.
    let again = cluster.apply(&without, &opts, &|_| {}).await.unwrap();
    assert!(
        again.pruned.iter().all(|p| !p.deleted),
        "{:?}",
        again.pruned
    );
}
