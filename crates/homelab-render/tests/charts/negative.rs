//! The tier's checks can fail: each one is shown a broken input and must report it (and
//! must accept the repaired one).

use serde_json::{Value, json};

use crate::checks;
use crate::crd::Crds;
use crate::lab::{Obj, TREE};
use crate::schemas;
use crate::setup::{self, Release};

fn ours(value: Value) -> Obj {
    Obj {
        origin: TREE.into(),
        value,
    }
}

fn deployment(ns: &str, labels: Value, ports: Value) -> Obj {
    ours(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app", "namespace": ns},
        "spec": {"selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": "app:1", "ports": ports}]},
        }},
    }))
}

fn service(ns: &str, name: &str, selector: Value, ports: Value) -> Obj {
    ours(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": selector},
        "spec": {"selector": selector, "ports": ports},
    }))
}

fn findings_about(objects: &[Obj], needle: &str) -> Vec<String> {
    checks::all(objects)
        .into_iter()
        .filter(|f| f.contains(needle))
        .collect()
}

#[test]
fn a_pod_monitor_on_a_port_the_pods_lack_is_reported() {
    let pods = deployment(
        "infra",
        json!({"app.kubernetes.io/name": "metallb"}),
        json!([{"name": "metricshttps", "containerPort": 9120}]),
    );
    let monitor = |port: &str| {
        ours(json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
            "metadata": {"name": "metallb", "namespace": "monitoring"},
            "spec": {"namespaceSelector": {"matchNames": ["infra"]},
                     "selector": {"matchLabels": {"app.kubernetes.io/name": "metallb"}},
                     "podMetricsEndpoints": [{"port": port}]},
        }))
    };
    let found = findings_about(
        &[pods.clone(), monitor("monitoring")],
        "PodMonitor monitoring/metallb",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("scrapes port \"monitoring\"")
            && found[0].contains("metricshttps (9120)"),
        "{}",
        found[0]
    );
    assert!(findings_about(&[pods.clone(), monitor("metricshttps")], "PodMonitor").is_empty());
    // A selector that matches nothing, or pods in another namespace, is reported too.
    let elsewhere = deployment(
        "apps",
        json!({"app.kubernetes.io/name": "metallb"}),
        json!([{"name": "metricshttps", "containerPort": 9120}]),
    );
    let found = findings_about(
        &[elsewhere, monitor("metricshttps")],
        "matches no pod in namespace infra",
    );
    assert_eq!(found.len(), 1);
}

#[test]
fn a_service_monitor_needs_a_selected_service_with_the_port() {
    let pods = deployment(
        "data",
        json!({"app": "db"}),
        json!([{"name": "metrics", "containerPort": 9187}]),
    );
    let svc = service(
        "data",
        "db",
        json!({"app": "db"}),
        json!([{"name": "metrics", "port": 9187, "targetPort": "metrics"}]),
    );
    let monitor = |selector: Value, port: &str| {
        ours(json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": {"name": "db", "namespace": "data"},
            "spec": {"selector": {"matchLabels": selector}, "endpoints": [{"port": port}]},
        }))
    };
    assert!(
        findings_about(
            &[
                pods.clone(),
                svc.clone(),
                monitor(json!({"app": "db"}), "metrics")
            ],
            "ServiceMonitor"
        )
        .is_empty()
    );
    assert_eq!(
        findings_about(
            &[
                pods.clone(),
                svc.clone(),
                monitor(json!({"app": "db"}), "http")
            ],
            "scrapes port \"http\""
        )
        .len(),
        1
    );
    assert_eq!(
        findings_about(
            &[pods, svc, monitor(json!({"app": "other"}), "metrics")],
            "matches no Service"
        )
        .len(),
        1
    );
}

#[test]
fn a_service_whose_target_port_name_no_pod_has_is_reported() {
    let pods = deployment(
        "apps",
        json!({"app": "web"}),
        json!([{"name": "http", "containerPort": 8080}]),
    );
    let good = service(
        "apps",
        "web",
        json!({"app": "web"}),
        json!([{"name": "http", "port": 80, "targetPort": "http"}]),
    );
    let bad = service(
        "apps",
        "web",
        json!({"app": "web"}),
        json!([{"name": "http", "port": 80, "targetPort": "web"}]),
    );
    let orphan = service(
        "apps",
        "web",
        json!({"app": "nothing"}),
        json!([{"port": 80}]),
    );
    assert!(checks::all(&[pods.clone(), good]).is_empty());
    assert_eq!(
        findings_about(&[pods.clone(), bad], "targetPort web").len(),
        1
    );
    assert_eq!(findings_about(&[pods, orphan], "matches no pod").len(), 1);
}

#[test]
fn ingress_and_ingress_route_backends_must_exist() {
    let pods = deployment(
        "apps",
        json!({"app": "web"}),
        json!([{"name": "http", "containerPort": 8080}]),
    );
    let svc = service(
        "apps",
        "web",
        json!({"app": "web"}),
        json!([{"name": "http", "port": 80, "targetPort": "http"}]),
    );
    let class = ours(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "traefik"}, "spec": {}}),
    );
    let ingress = |port: Value, class: &str, middleware: &str| {
        ours(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "apps", "annotations": {"traefik.ingress.kubernetes.io/router.middlewares": middleware}},
            "spec": {"ingressClassName": class, "rules": [{"host": "web.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": port}}}]}}]},
        }))
    };
    let middleware = ours(
        json!({"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware", "metadata": {"name": "auth", "namespace": "apps"}, "spec": {}}),
    );
    let base = vec![pods, svc, class, middleware];
    let with = |o: Obj| {
        let mut v = base.clone();
        v.push(o);
        v
    };
    assert!(
        checks::all(&with(ingress(
            json!({"number": 80}),
            "traefik",
            "apps-auth@kubernetescrd"
        )))
        .is_empty()
    );
    assert!(checks::all(&with(ingress(json!({"name": "http"}), "traefik", ""))).is_empty());
    assert_eq!(
        findings_about(
            &with(ingress(json!({"number": 8080}), "traefik", "")),
            "has no port 8080"
        )
        .len(),
        1
    );
    assert_eq!(
        findings_about(
            &with(ingress(json!({"number": 80}), "nginx", "")),
            "IngressClass nginx does not exist"
        )
        .len(),
        1
    );
    assert_eq!(
        findings_about(
            &with(ingress(
                json!({"number": 80}),
                "traefik",
                "kube-system-auth@kubernetescrd"
            )),
            "middleware kube-system-auth@kubernetescrd"
        )
        .len(),
        1
    );

    let route = |service: &str, middleware: &str| {
        ours(json!({
            "apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute",
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"routes": [{"match": "Host(`web.example.com`)", "kind": "Rule",
                "services": [{"name": service, "port": 80}], "middlewares": [{"name": middleware}]}]},
        }))
    };
    assert!(checks::all(&with(route("web", "auth"))).is_empty());
    assert_eq!(
        findings_about(
            &with(route("api", "auth")),
            "Service apps/api does not exist"
        )
        .len(),
        1
    );
    assert_eq!(
        findings_about(
            &with(route("web", "login")),
            "Middleware apps/login does not exist"
        )
        .len(),
        1
    );
}

/// metallb's own CRDs, by templating the real chart.
fn metallb_objects() -> Vec<Value> {
    let tmp = tempfile::tempdir().unwrap();
    let release = Release {
        name: "metallb".into(),
        namespace: "infra".into(),
        chart: "metallb".into(),
        version: homelab_plan::versions::METALLB.version.into(),
        values: vec![String::new()],
        skip_schema_validation: false,
    };
    let mut out = setup::template_all(&[release], "1.34.2", tmp.path());
    out.pop()
        .unwrap()
        .expect("metallb templates with its defaults")
        .objects
}

#[test]
fn custom_resources_are_checked_against_the_charts_crds() {
    let crds = Crds::from_definitions(&metallb_objects());
    let pool = |spec: Value| {
        ours(
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "lab-pool", "namespace": "infra"}, "spec": spec}),
        )
    };
    assert!(
        schemas::custom_resources(
            &[pool(json!({"addresses": ["192.168.2.100-192.168.2.120"]}))],
            &crds
        )
        .is_empty()
    );
    let found = schemas::custom_resources(
        &[pool(json!({"adresses": ["192.168.2.100-192.168.2.120"]}))],
        &crds,
    );
    assert_eq!(found.len(), 1, "{found:?}");
    // A kind that no chart of the lab defines cannot be applied either.
    let rule = ours(
        json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "x", "namespace": "monitoring"}, "spec": {}}),
    );
    let found = schemas::custom_resources(&[rule], &crds);
    assert!(
        found[0].contains("no CRD defines monitoring.coreos.com/v1 PrometheusRule"),
        "{found:?}"
    );
}

#[test]
fn kubernetes_strict_schemas_reject_unknown_fields_in_templated_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let mut dep = deployment(
        "apps",
        json!({"app": "web"}),
        json!([{"name": "http", "containerPort": 8080}]),
    );
    assert!(
        schemas::kubernetes(std::slice::from_ref(&dep), "1.34.2", &tmp.path().join("a")).is_empty()
    );
    dep.value["spec"]["template"]["spec"]["containers"][0]["portz"] = json!([]);
    let found = schemas::kubernetes(&[dep], "1.34.2", &tmp.path().join("b"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("Deployment apps/app (the tree)"),
        "{found:?}"
    );
}

#[test]
fn helm_refuses_values_the_charts_schema_rejects() {
    // Traefik ships a values.schema.json: a wrong type for a known key fails the template.
    let tmp = tempfile::tempdir().unwrap();
    let release = Release {
        name: "traefik".into(),
        namespace: "kube-system".into(),
        chart: "traefik".into(),
        version: "37.1.0".into(),
        values: vec!["deployment:\n  replicas: many\n".into()],
        skip_schema_validation: false,
    };
    let mut out = setup::template_all(&[release], "1.34.2", tmp.path());
    let err = out
        .pop()
        .unwrap()
        .expect_err("helm accepted replicas: many");
    assert!(
        err.contains("release kube-system/traefik (chart traefik 37.1.0)"),
        "{err}"
    );
}

#[test]
fn a_critical_rule_whose_path_exceeds_nfr5s_minute_is_reported() {
    use base64::Engine;
    let config = "route:\n  receiver: 'null'\n  group_by: [alertname]\n  routes:\n  - matchers: ['severity=\"critical\"']\n    receiver: phone\n    group_by: ['...']\n    group_wait: 10s\nreceivers:\n- name: 'null'\n- name: phone\n";
    let chart = |value: Value| Obj {
        origin: "release monitoring/kube-prometheus-stack (chart kube-prometheus-stack 88.5.3)"
            .into(),
        value,
    };
    let base = vec![
        chart(json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
            "metadata": {"name": "kps", "namespace": "monitoring"},
            "spec": {"scrapeInterval": "15s", "evaluationInterval": "30s"},
        })),
        chart(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "alertmanager-kps", "namespace": "monitoring"},
            "data": {"alertmanager.yaml": base64::engine::general_purpose::STANDARD.encode(config)},
        })),
    ];
    let rule = |severity: &str, for_: &str| {
        chart(json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "kps-kubernetes-apps", "namespace": "monitoring"},
            "spec": {"groups": [{"name": "kubernetes-apps", "rules": [
                {"alert": "KubeAPIDown", "expr": "absent(up{job=\"apiserver\"} == 1)", "for": for_, "labels": {"severity": severity}},
            ]}]},
        }))
    };
    let with = |extra: Vec<Obj>| {
        let mut all = base.clone();
        all.extend(extra);
        crate::p1::findings(&all)
    };
    let found = with(vec![rule("critical", "15m")]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("P1 KubeAPIDown (PrometheusRule monitoring/kps-kubernetes-apps (release monitoring/kube-prometheus-stack")
            && found[0].contains("for 900 s")
            && found[0].contains("= 955 s"),
        "{}",
        found[0]
    );
    assert!(with(vec![rule("warning", "15m")]).is_empty());
    // 15 s scrape + 30 s evaluation + 10 s group_wait: within the minute without a `for:`.
    assert!(with(vec![rule("critical", "0s")]).is_empty());
    // A monitor that scrapes once a minute makes the same rule miss it.
    let slow_monitor = chart(json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": "slow", "namespace": "monitoring"},
        "spec": {"endpoints": [{"port": "metrics", "interval": "1m"}]},
    }));
    let found = with(vec![rule("critical", "0s"), slow_monitor]);
    assert!(
        found.len() == 1
            && found[0].contains("detection 60 s")
            && found[0].contains("ServiceMonitor slow"),
        "{found:?}"
    );
}
