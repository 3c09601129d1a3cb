//! One lab through the tier: render its tree, template every chart it installs with exactly
//! the values the tree carries, then check everything (schemas, cross-references) and
//! collect every finding before failing, so one run shows them all.

use std::path::Path;

use serde_json::{Value, json};

use crate::checks;
use crate::common::*;
use crate::crd::Crds;
use crate::schemas;
use crate::setup::{self, Release, Templated};

/// An object in the lab, with where it comes from (for messages).
#[derive(Debug, Clone)]
pub struct Obj {
    /// `the tree` for what the render writes, else the release that templated it, or
    /// `the cluster` for what K3s and Kubernetes provide themselves.
    pub origin: String,
    pub value: Value,
}

impl Obj {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.value["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
    }

    /// `Kind namespace/name (origin)`.
    pub fn id(&self) -> String {
        if self.namespace().is_empty() {
            format!("{} {} ({})", self.kind(), self.name(), self.origin)
        } else {
            format!(
                "{} {}/{} ({})",
                self.kind(),
                self.namespace(),
                self.name(),
                self.origin
            )
        }
    }
}

pub const TREE: &str = "the tree";
pub const CLUSTER: &str = "the cluster";

/// The Traefik chart a K3s minor bundles, and the values K3s installs it with (a
/// HelmChartConfig's values are applied over them).
fn k3s_traefik(k3s_minor: u32) -> (&'static str, &'static str, &'static str) {
    match k3s_minor {
        34 => ("traefik", "37.1.0", "traefik-37.1.0.k3s-base-values.yaml"),
        other => panic!(
            "the chart tier knows the Traefik chart of K3s v1.34 only, not v1.{other}; add the chart K3s bundles to shared/charts and here"
        ),
    }
}

/// The lab's Kubernetes version, `1.34.2` for K3s `v1.34.2+k3s1`.
fn kube_version(spec: &str) -> String {
    let loaded = homelab_spec::load_str("homelab.yaml", spec).unwrap();
    let v = loaded.lab.cluster.k3s_version.to_string();
    v.trim_start_matches('v')
        .split('+')
        .next()
        .unwrap()
        .to_string()
}

/// The releases the tree installs: one per HelmChart, plus K3s's own Traefik with the
/// tree's HelmChartConfig.
pub fn releases(tree_objects: &[Value], kube_version: &str) -> Vec<Release> {
    let mut out = Vec::new();
    for o in tree_objects {
        match o["kind"].as_str() {
            Some("HelmChart") => {
                let spec = &o["spec"];
                let chart = spec["chart"].as_str().unwrap();
                // An OCI chart is named by its whole reference; its last segment is the chart.
                let chart = chart.rsplit('/').next().unwrap().to_string();
                out.push(Release {
                    name: o["metadata"]["name"].as_str().unwrap().to_string(),
                    namespace: spec["targetNamespace"].as_str().unwrap().to_string(),
                    chart,
                    version: spec["version"].as_str().unwrap().to_string(),
                    values: vec![spec["valuesContent"].as_str().unwrap_or("").to_string()],
                    skip_schema_validation: false,
                });
            }
            Some("HelmChartConfig") => {
                let name = o["metadata"]["name"].as_str().unwrap();
                assert_eq!(
                    name, "traefik",
                    "a HelmChartConfig for a chart K3s does not bundle"
                );
                let minor: u32 = kube_version.split('.').nth(1).unwrap().parse().unwrap();
                let (chart, version, base) = k3s_traefik(minor);
                let base = std::fs::read_to_string(setup::charts_dir().join(base))
                    .unwrap_or_else(|e| panic!("K3s's Traefik values {base}: {e}"));
                out.push(Release {
                    name: name.to_string(),
                    namespace: o["metadata"]["namespace"].as_str().unwrap().to_string(),
                    chart: chart.to_string(),
                    version: version.to_string(),
                    values: vec![
                        base,
                        o["spec"]["valuesContent"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                    ],
                    skip_schema_validation: false,
                });
            }
            _ => {}
        }
    }
    out
}

/// Kinds that are not namespaced (the core ones the charts and the tree write).
const CLUSTER_SCOPED: &[&str] = &[
    "APIService",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "PersistentVolume",
    "PriorityClass",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
];

/// Gives a namespaced object without one the release namespace, as `helm install` does.
fn place(o: &mut Value, namespace: &str, crds: &Crds) {
    let kind = o["kind"].as_str().unwrap_or_default();
    let api = o["apiVersion"].as_str().unwrap_or_default();
    let namespaced = if is_core_kind(api) {
        !CLUSTER_SCOPED.contains(&kind)
    } else {
        crds.namespaced(api, kind).unwrap_or(true)
    };
    if namespaced && o["metadata"].get("namespace").is_none() {
        o["metadata"]["namespace"] = json!(namespace);
    }
}

/// What K3s, Kubernetes and the operators run that the lab's objects point at: the API
/// server's Service, CoreDNS (K3s's manifests/coredns.yaml), and what prometheus-operator
/// makes from the templated objects (the Prometheus and Alertmanager StatefulSets, the
/// kubelet Service of `--kubelet-service`).
fn cluster_objects(templated: &[Obj]) -> Vec<Obj> {
    let mut out = vec![
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 6443}]},
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            "spec": {"selector": {"matchLabels": {"k8s-app": "kube-dns"}}, "template": {
                "metadata": {"labels": {"k8s-app": "kube-dns"}},
                "spec": {"containers": [{"name": "coredns", "ports": [
                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
                ]}]},
            }},
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            "spec": {"selector": {"k8s-app": "kube-dns"}, "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                {"name": "metrics", "port": 9153, "protocol": "TCP"},
            ]},
        }),
    ];
    // prometheus-operator runs each Prometheus and Alertmanager as a StatefulSet whose pods
    // carry these labels and serve on `spec.portName` (default `web`) plus the config
    // reloader's `reloader-web`.
    for o in templated
        .iter()
        .filter(|o| matches!(o.kind(), "Prometheus" | "Alertmanager"))
    {
        let (app, port) = if o.kind() == "Prometheus" {
            ("prometheus", 9090)
        } else {
            ("alertmanager", 9093)
        };
        let name = o.name();
        let mut labels = json!({
            "app.kubernetes.io/name": app,
            "app.kubernetes.io/instance": name,
            "app.kubernetes.io/managed-by": "prometheus-operator",
            app: name,
        });
        if app == "prometheus" {
            labels["operator.prometheus.io/name"] = json!(name);
            labels["operator.prometheus.io/shard"] = json!("0");
        }
        for (k, v) in o.value["spec"]["podMetadata"]["labels"]
            .as_object()
            .into_iter()
            .flatten()
        {
            labels[k] = v.clone();
        }
        let port_name = o.value["spec"]["portName"].as_str().unwrap_or("web");
        out.push(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": format!("{app}-{name}"), "namespace": o.namespace()},
            "spec": {"selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [
                    {"name": app, "ports": [{"name": port_name, "containerPort": port}]},
                    {"name": "config-reloader", "ports": [{"name": "reloader-web", "containerPort": 8080}]},
                ]},
            }},
        }));
    }
    for o in templated.iter().filter(|o| o.kind() == "Deployment") {
        for c in o.value["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for arg in c["args"].as_array().into_iter().flatten() {
                if let Some((ns, name)) = arg
                    .as_str()
                    .and_then(|a| a.strip_prefix("--kubelet-service="))
                    .and_then(|s| s.split_once('/'))
                {
                    out.push(json!({
                        "apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": name, "namespace": ns, "labels": {
                            "app.kubernetes.io/name": "kubelet",
                            "app.kubernetes.io/managed-by": "prometheus-operator",
                            "k8s-app": "kubelet",
                        }},
                        "spec": {"clusterIP": "None", "ports": [
                            {"name": "https-metrics", "port": 10250},
                            {"name": "http-metrics", "port": 10255},
                            {"name": "cadvisor", "port": 4194},
                        ]},
                    }));
                }
            }
        }
    }
    out.into_iter()
        .map(|value| Obj {
            origin: CLUSTER.into(),
            value,
        })
        .collect()
}

/// Everything the tier learnt about a lab.
pub struct LabRun {
    pub templated: Vec<Templated>,
    pub findings: Vec<String>,
}

/// Renders, templates and checks a lab; panics with every finding.
pub fn check_lab(name: &str, spec: &str) {
    let run = run_lab(spec);
    for t in &run.templated {
        let mut note = if t.stubbed.is_empty() {
            String::new()
        } else {
            format!(
                "; not templated (missing from shared/charts): {}",
                t.stubbed.join(", ")
            )
        };
        if !t.unresolved_refs.is_empty() {
            note.push_str(&format!(
                "; schema parts not checked (remote $ref, the tier is offline): {}",
                t.unresolved_refs.join(", ")
            ));
        }
        eprintln!(
            "lab {name}: {}: {} objects{note}",
            t.release.id(),
            t.objects.len()
        );
    }
    let findings: Vec<&String> = run
        .findings
        .iter()
        .filter(|f| !crate::KNOWN.iter().any(|k| f.starts_with(k)))
        .collect();
    assert!(
        findings.is_empty(),
        "lab {name}: the chart tier found {} problem(s):\n\n{}",
        findings.len(),
        findings
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

pub fn run_lab(spec: &str) -> LabRun {
    let tmp = tempfile::tempdir().unwrap();
    let tree_dir = tmp.path().join("tree");
    write_k3s(&render_k3s(&plan_of(spec)), &tree_dir, false);
    let tree_objects = build_layers(&tree_dir);
    let kube_version = kube_version(spec);
    let releases = releases(&tree_objects, &kube_version);
    assert!(!releases.is_empty(), "the lab installs no chart");

    let mut findings = Vec::new();
    let mut templated = Vec::new();
    for result in setup::template_all(&releases, &kube_version, &tmp.path().join("helm")) {
        match result {
            Ok(t) => templated.push(t),
            Err(e) => findings.push(e),
        }
    }

    // K3s's helm-controller CRDs are part of K3s, not of a chart; every other custom
    // resource must validate against a CRD that one of the lab's charts ships.
    let mut crds = Crds::from_definitions(&yaml_docs(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/crds/helm.cattle.io.yaml"),
        )
        .unwrap(),
    ));
    for t in &templated {
        crds.add(&t.objects);
    }
    let mut objects: Vec<Obj> = tree_objects
        .into_iter()
        .map(|value| Obj {
            origin: TREE.into(),
            value,
        })
        .collect();
    let mut chart_objects = Vec::new();
    for t in &templated {
        for o in &t.objects {
            let mut value = o.clone();
            place(&mut value, &t.release.namespace, &crds);
            chart_objects.push(Obj {
                origin: t.release.id(),
                value,
            });
        }
    }
    let cluster = cluster_objects(&chart_objects);
    objects.extend(chart_objects);

    // CustomResourceDefinitions are validated once for all labs (check_crds).
    let without_crds: Vec<Obj> = objects
        .iter()
        .filter(|o| o.kind() != "CustomResourceDefinition")
        .cloned()
        .collect();
    findings.extend(schemas::kubernetes(
        &without_crds,
        &kube_version,
        &tmp.path().join("validate"),
    ));
    findings.extend(schemas::custom_resources(&objects, &crds));
    let mut everything = objects.clone();
    everything.extend(cluster);
    findings.extend(checks::all(&everything));
    findings.extend(crate::p1::findings(&everything));
    LabRun {
        templated,
        findings,
    }
}

/// Every object of the tree's layers, as `kubectl kustomize` builds them.
fn build_layers(root: &Path) -> Vec<Value> {
    let mut objects = Vec::new();
    for layer in ["infrastructure", "monitoring", "applications"] {
        if root.join(layer).join("kustomization.yaml").exists() {
            objects.extend(kustomize(root, layer));
        }
    }
    assert!(!objects.is_empty(), "no layer in {}", root.display());
    objects
}

/// Templates every lab's charts and validates each distinct CRD among them once with the
/// strict Kubernetes schemas.
pub fn check_crds(labs: &[(&str, String)]) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let mut findings = Vec::new();
    let mut crds: Vec<Obj> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut kube_versions = std::collections::BTreeSet::new();
    for (i, (name, spec)) in labs.iter().enumerate() {
        let dir = tmp.path().join(format!("{i}"));
        write_k3s(&render_k3s(&plan_of(spec)), &dir.join("tree"), false);
        let kube_version = kube_version(spec);
        let releases = releases(&build_layers(&dir.join("tree")), &kube_version);
        kube_versions.insert(kube_version.clone());
        for result in setup::template_all(&releases, &kube_version, &dir.join("helm")) {
            match result {
                Ok(t) => {
                    for o in t.objects {
                        if o["kind"] == "CustomResourceDefinition" && seen.insert(o.to_string()) {
                            crds.push(Obj {
                                origin: t.release.id(),
                                value: o,
                            });
                        }
                    }
                }
                Err(e) => findings.push(format!("lab {name}: {e}")),
            }
        }
    }
    assert!(!crds.is_empty(), "no chart ships a CRD");
    for kube_version in kube_versions {
        findings.extend(schemas::kubernetes(
            &crds,
            &kube_version,
            &tmp.path().join(format!("validate-{kube_version}")),
        ));
    }
    findings
}
