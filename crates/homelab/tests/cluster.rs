//! End-to-end tests of `homelab apply`, `homelab diff` and `homelab status` through the real
//! binary against the Kubernetes API stand-in (kmock, started per test), and the same
//! scenario against a real cluster when `HOMELAB_E2E_KUBECONFIG` is set.
//!
//! The stand-in plays what the cluster's controllers and charts would do: the charts of the
//! seed lab create their CRDs, webhook Services and workloads when their HelmChart is
//! installed (see `seed_charts`), and K3s' bundled Traefik is there from the start.

#[path = "common/dashboard.rs"]
mod dashboard;
#[path = "../../homelab-kube/tests/support/mod.rs"]
mod kube_support;
#[path = "common/run.rs"]
mod run;

#[path = "secrets/support.rs"]
mod lab_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dashboard::Dashboard;
use kube_support::tls::{HttpsServer, make_certificates};
use kube_support::{StandIn, StandInOptions};
use lab_support::{Lab, Run};
use serde_json::{Value, json};

const SEED_NODES: [&str; 3] = ["k3s-master", "k3s-worker-01", "k3s-worker-02"];
/// The secrets of the seed lab only its user can provide, with test values.
const USER_SECRETS: [(&str, &str); 2] = [
    ("cloudflare-api-token", "cf-token-e2e-7f3a9c"),
    (
        "devcontainer-tom-git-credentials",
        "https://tom:ghp-e2e-51d0@github.com",
    ),
];

// ---- the lab and the binary ------------------------------------------------------------

/// A lab directory with the spec, its secrets initialised and the user's secrets set.
fn lab_with_secrets(spec: &str) -> Lab {
    lab_with_secrets_but(spec, &[])
}

/// As [`lab_with_secrets`], leaving the user's secrets `unset` without a value.
fn lab_with_secrets_but(spec: &str, unset: &[&str]) -> Lab {
    let lab = Lab::with_spec(spec);
    lab.run(&["secrets", "init"]).ok();
    for (name, value) in USER_SECRETS {
        if unset.contains(&name) {
            continue;
        }
        let listed = lab
            .run(&["secrets", "list", "--output", "json"])
            .ok()
            .json();
        let needed = listed["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == name);
        if needed {
            lab.run_stdin(&["secrets", "set", name], value).ok();
        }
    }
    lab
}

/// Every secret value of the lab (generated and set), to prove none is ever printed.
fn secret_values(lab: &Lab) -> Vec<String> {
    let listed = lab
        .run(&["secrets", "list", "--output", "json"])
        .ok()
        .json();
    listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["set"] == true)
        .map(|s| {
            let name = s["name"].as_str().unwrap();
            lab.run(&["secrets", "get", name, "--reveal"])
                .ok()
                .stdout
                .trim_end_matches('\n')
                .to_string()
        })
        .filter(|v| v.len() >= 8)
        .collect()
}

fn assert_no_secret_in(run: &Run, values: &[String]) {
    for v in values {
        assert!(
            !run.stdout.contains(v.as_str()) && !run.stderr.contains(v.as_str()),
            "a secret value was printed:\n{}",
            run.transcript()
        );
    }
}

/// `homelab ARGS --kubeconfig KC` in the lab.
fn homelab(lab: &Lab, kubeconfig: &Path, args: &[&str]) -> Run {
    let kc = kubeconfig.display().to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--kubeconfig", kc.as_str()]);
    lab.run(&all)
}

/// The seed lab with a Pushover receiver as well: two more secrets only the user can give.
fn seed_with_a_pushover_receiver() -> String {
    let webhook = "    - name: n8n-webhook\n";
    assert!(homelab_spec::templates::SEED.contains(webhook));
    homelab_spec::templates::SEED.replacen(
        webhook,
        &format!("    - name: pager\n      pushover:\n        userKey: {{secret: pushover-user-key}}\n        token: {{secret: pushover-app-token}}\n      severities: [critical]\n{webhook}"),
        1,
    )
}

fn edit_spec(lab: &Lab, edit: impl FnOnce(String) -> String) {
    let spec = lab.read("homelab.yaml");
    let changed = edit(spec.clone());
    assert_ne!(spec, changed, "the edit changed nothing");
    lab.write("homelab.yaml", changed);
}

const MEALIE: &str = "apps:\n  - name: mealie\n    image: ghcr.io/mealie-recipes/mealie:v2.3.0\n    port: 9000\n    env: {TZ: Europe/Berlin}\n";

fn add_app(spec: String) -> String {
    spec.replace("apps: []\n", MEALIE)
}

fn remove_ollama(spec: String) -> String {
    let start = spec.find("  ollama:\n").expect("the seed has ollama");
    let end = spec[start..].find("  n8n:\n").expect("n8n follows ollama") + start;
    format!("{}{}", &spec[..start], &spec[end..])
}

// ---- talking to the stand-in ------------------------------------------------------------

/// The API path of an object (`group` empty for the core group).
fn path(group: &str, version: &str, plural: &str, ns: Option<&str>, name: &str) -> String {
    let base = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    match ns {
        Some(ns) => format!("{base}/namespaces/{ns}/{plural}/{name}"),
        None => format!("{base}/{plural}/{name}"),
    }
}

fn get(standin: &StandIn, path: &str) -> Option<Value> {
    let (code, body) = standin.request("GET", path, "application/json", None);
    match code {
        200 => Some(body),
        404 => None,
        other => panic!("GET {path}: HTTP {other}: {body}"),
    }
}

fn create(standin: &StandIn, collection: &str, object: Value) {
    let (code, body) = standin.request("POST", collection, "application/json", Some(&object));
    assert_eq!(code, 201, "POST {collection}: {body}");
}

fn crd(group: &str, kind: &str, plural: &str, version: &str, scope: &str) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": scope,
                 "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
                 "versions": [{"name": version, "served": true, "storage": true,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

fn workload(kind: &str, name: &str) -> Value {
    let labels = json!({"app.kubernetes.io/name": name});
    let mut spec = json!({"selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": name, "image": "registry.k8s.io/pause:3.10"}]}}});
    if kind != "DaemonSet" {
        spec["replicas"] = json!(1);
    }
    if kind == "StatefulSet" {
        spec["serviceName"] = json!(name);
    }
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec})
}

fn service(name: &str, port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app.kubernetes.io/name": name}, "ports": [{"name": "https", "port": port, "targetPort": port}]}})
}

fn certificate(name: &str) -> Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": name},
        "spec": {"secretName": name, "dnsNames": ["example.invalid"], "issuerRef": {"kind": "ClusterIssuer", "name": "letsencrypt-production"}}})
}

fn pvc(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
}

/// What each chart of the seed lab creates that apply waits for and status checks: its CRDs,
/// the Service of its admission webhook and its workloads (names from the charts' templates
/// with the catalog's release names).
fn seed_charts() -> Vec<(&'static str, Vec<Value>)> {
    vec![
        (
            "nfs-provisioner",
            vec![workload(
                "Deployment",
                "nfs-provisioner-nfs-subdir-external-provisioner",
            )],
        ),
        (
            "metallb",
            vec![
                crd(
                    "metallb.io",
                    "IPAddressPool",
                    "ipaddresspools",
                    "v1beta1",
                    "Namespaced",
                ),
                crd(
                    "metallb.io",
                    "L2Advertisement",
                    "l2advertisements",
                    "v1beta1",
                    "Namespaced",
                ),
                service("metallb-webhook-service", 443),
                workload("Deployment", "metallb-controller"),
                workload("DaemonSet", "metallb-speaker"),
            ],
        ),
        (
            "cert-manager",
            vec![
                crd(
                    "cert-manager.io",
                    "Certificate",
                    "certificates",
                    "v1",
                    "Namespaced",
                ),
                crd(
                    "cert-manager.io",
                    "ClusterIssuer",
                    "clusterissuers",
                    "v1",
                    "Cluster",
                ),
                crd("cert-manager.io", "Issuer", "issuers", "v1", "Namespaced"),
                service("cert-manager-webhook", 443),
                workload("Deployment", "cert-manager"),
                workload("Deployment", "cert-manager-webhook"),
                workload("Deployment", "cert-manager-cainjector"),
            ],
        ),
        (
            "kube-prometheus-stack",
            vec![
                crd(
                    "monitoring.coreos.com",
                    "PrometheusRule",
                    "prometheusrules",
                    "v1",
                    "Namespaced",
                ),
                crd(
                    "monitoring.coreos.com",
                    "PodMonitor",
                    "podmonitors",
                    "v1",
                    "Namespaced",
                ),
                crd(
                    "monitoring.coreos.com",
                    "ServiceMonitor",
                    "servicemonitors",
                    "v1",
                    "Namespaced",
                ),
                service("kube-prometheus-stack-operator", 443),
                workload("StatefulSet", "prometheus-kube-prometheus-stack-prometheus"),
                workload(
                    "StatefulSet",
                    "alertmanager-kube-prometheus-stack-alertmanager",
                ),
                workload("Deployment", "kube-prometheus-stack-grafana"),
                workload(
                    "DaemonSet",
                    "kube-prometheus-stack-prometheus-node-exporter",
                ),
            ],
        ),
        ("loki", vec![workload("StatefulSet", "loki")]),
        ("alloy", vec![workload("Deployment", "alloy")]),
        ("ollama", vec![workload("Deployment", "ollama")]),
        ("n8n", vec![workload("Deployment", "n8n")]),
    ]
}

/// A stand-in with the seed lab's nodes, K3s' bundled Traefik and the charts' contents.
fn seed_standin(options: StandInOptions) -> StandIn {
    let standin = StandIn::start(&StandInOptions {
        nodes: SEED_NODES.iter().map(|n| n.to_string()).collect(),
        ..options
    });
    for (name, objects) in seed_charts() {
        standin.register_chart("kube-system", name, &objects);
    }
    // K3s installs Traefik (its CRDs, Deployment and LoadBalancer Service) when it boots.
    for (kind, plural) in [
        ("Middleware", "middlewares"),
        ("IngressRoute", "ingressroutes"),
        ("TLSOption", "tlsoptions"),
    ] {
        create(
            &standin,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd("traefik.io", kind, plural, "v1alpha1", "Namespaced"),
        );
    }
    let mut traefik = workload("Deployment", "traefik");
    traefik["metadata"]["namespace"] = json!("kube-system");
    create(
        &standin,
        "/apis/apps/v1/namespaces/kube-system/deployments",
        traefik,
    );
    standin
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- status: an HTTPS server for the lab's URLs ------------------------------------------

// ---- the scenario ----------------------------------------------------------------------

fn components_json(run: &Run) -> Vec<Value> {
    run.json()["components"].as_array().unwrap().clone()
}

fn changed_components(run: &Run) -> BTreeSet<String> {
    components_json(run)
        .iter()
        .filter(|c| c["changed"] == true)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// apply, re-apply, change, diff, apply, remove and prune, on the stand-in or a real cluster.
fn converge_scenario(lab: &Lab, kubeconfig: &Path, standin: Option<&StandIn>) {
    let secrets = secret_values(lab);
    let real = standin.is_none();
    let timeout = if real { "15m" } else { "60s" };

    // First apply: everything is created, in dependency order, waits passing.
    let first = homelab(
        lab,
        kubeconfig,
        &["apply", "--timeout", timeout, "--output", "json"],
    )
    .ok();
    assert_no_secret_in(&first, &secrets);
    let report = first.json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["changed"], true);
    let all: BTreeSet<String> = components_json(&first)
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        all.contains("cert-manager") && all.contains("traefik"),
        "{all:?}"
    );
    if let Some(s) = standin {
        // The Secret reached the cluster with the value from the secrets file.
        let secret = get(
            s,
            &path("", "v1", "secrets", Some("infra"), "acme-dns-credentials"),
        )
        .expect("the cert-manager DNS credentials Secret exists");
        let token = secret["data"]["api-token"].as_str().unwrap();
        assert_eq!(
            base64_decode(token),
            USER_SECRETS[0].1,
            "the Secret holds the secrets file's value"
        );
        // The ApplySet parent records the lab.
        let parent = get(
            s,
            &path(
                "",
                "v1",
                "secrets",
                Some("kube-system"),
                "applyset-home-lab",
            ),
        )
        .expect("the ApplySet parent exists");
        assert_eq!(
            parent["metadata"]["annotations"]["applyset.kubernetes.io/tooling"]
                .as_str()
                .unwrap()
                .split('/')
                .next(),
            Some("homelab")
        );
        // The custom resources exist: they were applied after their CRDs and webhooks.
        assert!(
            get(
                s,
                &path(
                    "cert-manager.io",
                    "v1",
                    "clusterissuers",
                    None,
                    "letsencrypt-production"
                )
            )
            .is_some()
        );
        assert!(
            get(
                s,
                &path(
                    "metallb.io",
                    "v1beta1",
                    "ipaddresspools",
                    Some("infra"),
                    "lab-pool"
                )
            )
            .is_some()
        );
    }

    // Second apply: nothing changed, and it says so for every component.
    let again = homelab(lab, kubeconfig, &["apply", "--timeout", timeout]).ok();
    assert!(
        again
            .stdout
            .contains("every component of lab `home-lab` is unchanged"),
        "{}",
        again.transcript()
    );
    for name in &all {
        let row = again
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("no row for {name}:\n{}", again.stdout));
        assert!(row.contains("unchanged"), "{row}");
    }
    let again_json = homelab(lab, kubeconfig, &["apply", "--output", "json"]).ok();
    assert_eq!(again_json.json()["changed"], false);
    assert!(changed_components(&again_json).is_empty());

    // Nothing to diff.
    let same = homelab(lab, kubeconfig, &["diff"]).expect(0);
    assert_eq!(same.stdout, "", "{}", same.transcript());
    assert!(
        same.stderr.contains("No differences"),
        "{}",
        same.transcript()
    );

    // A new app: diff shows it and exits 1; apply creates it and touches nothing else.
    edit_spec(lab, add_app);
    let diff = homelab(lab, kubeconfig, &["diff"]).expect(1);
    assert_no_secret_in(&diff, &secrets);
    assert!(
        diff.stdout
            .contains("+++ planned/Deployment.apps apps/mealie"),
        "{}",
        diff.transcript()
    );
    assert!(diff.stdout.contains("+  name: mealie"), "{}", diff.stdout);
    let diff_json = homelab(lab, kubeconfig, &["diff", "--output", "json"]).expect(1);
    let objects = diff_json.json()["objects"].as_array().unwrap().clone();
    let changed: Vec<&Value> = objects
        .iter()
        .filter(|o| o["change"] != "unchanged")
        .collect();
    assert!(!changed.is_empty());
    assert!(
        changed.iter().all(|o| o["component"] == "mealie"),
        "only the new app would change: {changed:?}"
    );
    let add = homelab(lab, kubeconfig, &["apply", "--output", "json"]).ok();
    assert_eq!(
        changed_components(&add),
        BTreeSet::from(["mealie".to_string()])
    );
    if let Some(s) = standin {
        assert!(
            get(
                s,
                &path("apps", "v1", "deployments", Some("apps"), "mealie")
            )
            .is_some()
        );
    }

    // Remove a service and prune: its objects go, nothing else is touched.
    let (removed, removed_chart) = if real {
        ("mealie", None)
    } else {
        ("ollama", Some("ollama"))
    };
    if let Some(s) = standin {
        // Something homelab did not create, in the namespace of the removed service.
        create(
            s,
            "/api/v1/namespaces/ml/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep-me", "namespace": "ml"}, "data": {"a": "b"}}),
        );
    }
    if real {
        edit_spec(lab, |s| s.replace(MEALIE, "apps: []\n"));
    } else {
        edit_spec(lab, remove_ollama);
    }
    let without_prune = homelab(lab, kubeconfig, &["apply", "--output", "json"]).ok();
    assert!(
        without_prune.json()["pruned"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let prune_diff = homelab(lab, kubeconfig, &["diff", "--prune"]).expect(1);
    assert!(
        prune_diff.stderr.contains("`--prune` would delete"),
        "{}",
        prune_diff.transcript()
    );
    let pruned = homelab(lab, kubeconfig, &["apply", "--prune", "--output", "json"]).ok();
    let report = pruned.json();
    let list = report["pruned"].as_array().unwrap();
    let deleted: Vec<String> = list
        .iter()
        .filter(|p| p["deleted"] == true)
        .map(|p| {
            format!(
                "{} {}",
                p["object"]["kind"].as_str().unwrap(),
                p["object"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert!(changed_components(&pruned).is_empty(), "{}", pruned.stdout);
    if let Some(chart) = removed_chart {
        assert!(
            deleted.contains(&format!("HelmChart {chart}")),
            "{deleted:?}"
        );
    }
    assert!(
        deleted
            .iter()
            .all(|d| !d.contains("n8n") && !d.contains("cert-manager")),
        "{deleted:?}"
    );
    if let Some(s) = standin {
        assert!(
            get(
                s,
                &path(
                    "helm.cattle.io",
                    "v1",
                    "helmcharts",
                    Some("kube-system"),
                    "ollama"
                )
            )
            .is_none(),
            "the removed service's HelmChart is gone"
        );
        assert!(
            get(
                s,
                &path(
                    "helm.cattle.io",
                    "v1",
                    "helmcharts",
                    Some("kube-system"),
                    "n8n"
                )
            )
            .is_some(),
            "the other services stay"
        );
        assert!(get(s, &path("", "v1", "configmaps", Some("ml"), "keep-me")).is_some());
        // The namespace holds something that is not ours, so it is kept, and the report says why.
        let ml = list
            .iter()
            .find(|p| p["object"]["kind"] == "Namespace" && p["object"]["name"] == "ml")
            .expect("the namespace of the removed service was considered");
        assert_eq!(ml["deleted"], false);
        assert!(
            ml["keptBecause"]
                .as_str()
                .unwrap()
                .contains("ConfigMap keep-me"),
            "{ml}"
        );
        assert!(get(s, &path("", "v1", "namespaces", None, "ml")).is_some());
        // Kubernetes' own namespaces and objects were never candidates.
        assert!(get(s, &path("", "v1", "namespaces", None, "kube-system")).is_some());
        assert!(
            get(
                s,
                &path("apps", "v1", "deployments", Some("kube-system"), "traefik")
            )
            .is_some()
        );
    } else {
        assert!(deleted.iter().any(|d| d.contains(removed)), "{deleted:?}");
    }
    let after = homelab(lab, kubeconfig, &["apply", "--prune"]).ok();
    assert!(
        after.stdout.contains("is unchanged"),
        "{}",
        after.transcript()
    );
}

fn base64_decode(text: &str) -> String {
    let out = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("base64 runs");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn seed_lab_applies_reapplies_unchanged_diffs_and_prunes_on_the_standin() {
    let standin = seed_standin(StandInOptions::default());
    let lab = lab_with_secrets(homelab_spec::templates::SEED);
    converge_scenario(&lab, &standin.kubeconfig, Some(&standin));
}

#[test]
fn real_cluster_applies_reapplies_diffs_and_prunes() {
    let Some(kubeconfig) =
        kube_support::real_cluster("real_cluster_applies_reapplies_diffs_and_prunes")
    else {
        return;
    };
    // The one-node platform preset: the seed's services need NFS and hardware a test cluster
    // does not have, while cert-manager's and MetalLB's charts and webhooks are real here.
    let lab = lab_with_secrets(homelab_spec::templates::MINIMAL);
    converge_scenario(&lab, &kubeconfig, None);
    let status = homelab(&lab, &kubeconfig, &["status", "--output", "json"]);
    assert!(
        status.code == 0 || status.code == 1,
        "{}",
        status.transcript()
    );
    assert_eq!(status.json()["lab"], "home-lab");
}

// ---- status ------------------------------------------------------------------------------

/// Marks what the lab's controllers would: the Certificates cert-manager makes for Ingresses,
/// the volumes of StatefulSets, a successful backup run, and Traefik's Service with the
/// address the HelmChartConfig asks MetalLB for.
fn finish_like_the_controllers(standin: &StandIn, ingress_ip: &str) {
    let certs = [
        ("monitoring", "grafana-tls"),
        ("monitoring", "prometheus-tls"),
        ("monitoring", "alertmanager-tls"),
        ("ml", "ollama-tls"),
        ("apps", "n8n-tls"),
        ("docs", "paperless-tls"),
        ("dev", "nginx-proxy-tls"),
    ];
    for (ns, name) in certs {
        if get(
            standin,
            &path("cert-manager.io", "v1", "certificates", Some(ns), name),
        )
        .is_none()
        {
            create(
                standin,
                &format!("/apis/cert-manager.io/v1/namespaces/{ns}/certificates"),
                certificate(name),
            );
        }
    }
    for (ns, name) in [
        ("data", "data-postgres-0"),
        ("monitoring", "storage-loki-0"),
    ] {
        create(
            standin,
            &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims"),
            pvc(name),
        );
    }
    let mut svc = service("traefik", 443);
    svc["metadata"]["namespace"] = json!("kube-system");
    svc["metadata"]["annotations"] = json!({"metallb.io/loadBalancerIPs": ingress_ip});
    svc["spec"]["type"] = json!("LoadBalancer");
    create(standin, "/api/v1/namespaces/kube-system/services", svc);
    let an_hour_ago = {
        let out = Command::new("date")
            .args(["-u", "-d", "1 hour ago", "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .expect("date runs");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    standin.patch_status(
        &path("batch", "v1", "cronjobs", Some("data"), "postgres-backup"),
        json!({"lastSuccessfulTime": an_hour_ago, "lastScheduleTime": an_hour_ago}),
    );
    prometheus_mount_alerts(standin, &[]);
}

/// What the seed lab's Prometheus says of EtcdSnapshotDirNotMounted through the API server's
/// service proxy: firing for the servers in `failing`.
fn prometheus_mount_alerts(standin: &StandIn, failing: &[&str]) {
    let alerts: Vec<Value> = failing
        .iter()
        .map(|node| json!({"labels": {"alertname": "EtcdSnapshotDirNotMounted", "node": node}, "state": "firing"}))
        .collect();
    standin.proxy_answer(
        "monitoring",
        "http:kube-prometheus-stack-prometheus:9090",
        "/api/v1/rules?type=alert",
        200,
        json!({"status": "success", "data": {"groups": [{"name": "homelab", "rules": [{
            "name": "EtcdSnapshotDirNotMounted", "type": "alerting", "health": "ok",
            "state": if failing.is_empty() { "inactive" } else { "firing" },
            "alerts": alerts,
        }]}]}}),
    );
}

/// The seed lab applied to a stand-in and finished as its controllers would, with an HTTPS
/// server (its certificate from a private CA) answering for every URL of the lab.
struct HealthySeedLab {
    standin: StandIn,
    lab: Lab,
    https: HttpsServer,
    resolve: String,
    ca: String,
    _certs: tempfile::TempDir,
}

impl HealthySeedLab {
    /// `logging`: the HTTPS server notes each request it receives.
    fn start(options: StandInOptions, logging: bool) -> HealthySeedLab {
        let standin = seed_standin(options);
        let lab = lab_with_secrets(homelab_spec::templates::SEED);
        homelab(&lab, &standin.kubeconfig, &["apply", "--timeout", "60s"]).ok();
        finish_like_the_controllers(&standin, "192.168.2.100");
        let certs = tempfile::tempdir().unwrap();
        make_certificates(certs.path(), "*.home.jetzinger.com");
        let https = if logging {
            HttpsServer::start_logging(certs.path(), "TLSv1_3")
        } else {
            HttpsServer::start(certs.path(), "TLSv1_3")
        };
        let resolve = format!("*=127.0.0.1:{}", https.port);
        let ca = certs.path().join("ca.pem").display().to_string();
        HealthySeedLab {
            standin,
            lab,
            https,
            resolve,
            ca,
            _certs: certs,
        }
    }

    /// `homelab status` with the lab's URLs sent to the HTTPS server, then `extra`.
    fn status(&self, extra: &[&str]) -> Run {
        self.status_via(&self.standin.kubeconfig, extra)
    }

    /// [`HealthySeedLab::status`] with another kubeconfig.
    fn status_via(&self, kubeconfig: &Path, extra: &[&str]) -> Run {
        let mut args = vec![
            "status",
            "--resolve",
            self.resolve.as_str(),
            "--ca-file",
            self.ca.as_str(),
        ];
        args.extend(extra);
        homelab(&self.lab, kubeconfig, &args)
    }

    /// `status --output json` once every check passes (the simulated controllers are quick but
    /// not instant).
    fn wait_healthy(&self) -> Run {
        let mut last = None;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            let run = self.status(&["--output", "json"]);
            if run.code == 0 {
                return run;
            }
            last = Some(run);
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("never healthy:\n{}", last.unwrap().transcript());
    }
}

#[test]
fn status_reports_healthy_then_names_each_problem_then_unreachable() {
    let seed = HealthySeedLab::start(StandInOptions::default(), false);
    let (standin, lab) = (&seed.standin, &seed.lab);

    // Every check passes once the controllers have done their part.
    let healthy = seed.wait_healthy().json();
    assert_eq!(healthy["health"], "healthy");
    assert_eq!(healthy["exitCode"], 0);
    assert_eq!(healthy["nodes"].as_array().unwrap().len(), 3);
    assert!(healthy["problems"].as_array().unwrap().is_empty());
    let urls = healthy["urls"].as_array().unwrap();
    assert!(urls.len() >= 7, "{urls:?}");
    assert!(urls.iter().all(|u| u["tlsVersion"] == "TLS 1.3"));
    assert_eq!(healthy["backups"][0]["ok"], true);
    let text = seed.status(&[]).ok();
    assert!(
        text.stdout.starts_with("Lab `home-lab`: healthy"),
        "{}",
        text.stdout
    );
    for section in ["NODE", "COMPONENT", "URL", "BACKUP", "ALERT"] {
        assert!(text.stdout.contains(section), "{}", text.stdout);
    }
    assert!(
        text.stdout.lines().any(|l| l.starts_with("EtcdSnapshotDirNotMounted")
            && l.ends_with("etcd snapshot directory /mnt/k3s-snapshots is mounted from the NAS on every server")),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.lines().count() < 60,
        "one screen:\n{}",
        text.stdout
    );

    // The test breaks things the way a cluster does; each becomes a named problem with a fix.
    standin.patch_status(
        &path("apps", "v1", "deployments", Some("apps"), "n8n"),
        json!({"availableReplicas": 0, "readyReplicas": 0}),
    );
    standin.patch_status(
        &path(
            "",
            "v1",
            "persistentvolumeclaims",
            Some("docs"),
            "paperless-data",
        ),
        json!({"phase": "Pending"}),
    );
    standin.patch_status(
        &path("", "v1", "nodes", None, "k3s-worker-02"),
        json!({"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "container runtime is down"}]}),
    );
    prometheus_mount_alerts(standin, &["k3s-master"]);
    let sick = seed.status(&["--output", "json"]).expect(1).json();
    assert_eq!(sick["health"], "unhealthy");
    let problems = sick["problems"].as_array().unwrap();
    let subjects: Vec<&str> = problems
        .iter()
        .map(|p| p["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        [
            "node k3s-worker-02",
            "Deployment apps/n8n",
            "PersistentVolumeClaim docs/paperless-data",
            "alert EtcdSnapshotDirNotMounted"
        ]
    );
    assert_eq!(sick["alerts"][0]["failing"], json!(["k3s-master"]));
    assert!(
        problems
            .iter()
            .all(|p| !p["fix"].as_str().unwrap().is_empty())
    );
    let text = seed.status(&[]).expect(1);
    assert!(
        text.stdout.contains("UNHEALTHY (4 problems)"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("fix: see `kubectl -n apps describe deployment/n8n`"),
        "{}",
        text.stdout
    );

    // A cluster that stopped answering: exit 2 and what to do.
    let kubeconfig = lab.write(
        "standin.kubeconfig",
        std::fs::read(&standin.kubeconfig).unwrap(),
    );
    let HealthySeedLab { standin, lab, .. } = seed;
    drop(standin);
    let gone = homelab(&lab, &kubeconfig, &["status"]).expect(2);
    assert!(gone.stdout.contains("UNREACHABLE"), "{}", gone.transcript());
    assert!(
        gone.stdout.contains("fix: check the cluster is running"),
        "{}",
        gone.stdout
    );
}

/// `date -u -d WHEN` in RFC 3339, for timestamps relative to now.
fn date_utc(when: &str) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", when, "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date runs");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl HealthySeedLab {
    /// `homelab serve` on a free loopback port with the lab's URLs sent to the HTTPS server,
    /// a status pass every second, then `extra`.
    fn serve(&self, extra: &[&str]) -> Dashboard {
        let mut cmd = self.lab.command();
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--refresh",
            "1s",
            "--resolve",
            self.resolve.as_str(),
            "--ca-file",
            self.ca.as_str(),
            "--kubeconfig",
        ])
        .arg(&self.standin.kubeconfig)
        .args(extra);
        Dashboard::start(cmd)
    }
}

fn component<'a>(overview: &'a Value, name: &str) -> &'a Value {
    overview["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no component {name} in {overview:#}"))
}

/// The `<tr>` of a component on the overview page.
fn component_row<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"component-{name}\""))
        .unwrap_or_else(|| panic!("no row for {name}"));
    let end = html[start..].find("</tr>").unwrap() + start;
    &html[start..end]
}

#[test]
fn serve_shows_every_component_healthy_then_each_problem_with_its_reason_and_runbook() {
    let seed = HealthySeedLab::start(StandInOptions::default(), false);
    seed.wait_healthy();
    let plan = {
        let loaded =
            homelab_spec::load_bytes("homelab.yaml", homelab_spec::templates::SEED.as_bytes())
                .unwrap();
        homelab_plan::plan(&loaded.lab)
    };
    seed.standin.clear_journal();
    let dash = seed.serve(&[]);
    assert!(dash.banner.contains("read-only"), "{}", dash.banner);

    // Every component of the plan, healthy, with its URLs and the charts it pins as deployed.
    let healthy = dash.overview_when("a healthy overview", Duration::from_secs(30), |o| {
        o["health"] == "healthy"
    });
    let names: Vec<&str> = healthy["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let planned: Vec<&str> = plan.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, planned);
    assert_eq!(
        healthy["nodes"],
        json!({"expected": 3, "present": 3, "ready": 3})
    );
    for c in healthy["components"].as_array().unwrap() {
        assert_eq!(c["healthy"], true, "{c:#}");
        assert!(c["reason"].is_null(), "{c:#}");
        for v in c["versions"].as_array().unwrap() {
            assert_eq!(v["deployed"], v["pinned"], "{c:#}");
            assert_eq!(v["current"], true, "{c:#}");
        }
    }
    let planned_urls: Vec<&str> = plan.urls().map(|e| e.url.as_str()).collect();
    let shown_urls: Vec<&str> = healthy["components"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["urls"].as_array().unwrap().iter())
        .map(|u| u["url"].as_str().unwrap())
        .collect();
    assert_eq!(shown_urls, planned_urls);
    let grafana = component(&healthy, "prometheus");
    assert!(
        grafana["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["chart"] == "kube-prometheus-stack"),
        "{grafana:#}"
    );

    let page = dash.get("/");
    assert_eq!(page.code, 200);
    assert!(
        page.headers.contains("content-type: text/html"),
        "{}",
        page.headers
    );
    assert!(page.body.contains("data-health=\"healthy\""));
    for name in &planned {
        assert!(
            component_row(&page.body, name).contains("data-health=\"healthy\""),
            "{name}"
        );
    }
    for url in &planned_urls {
        assert!(page.body.contains(&format!("href=\"{url}\"")), "{url}");
    }
    let metrics = dash.get("/metrics");
    assert_eq!(metrics.code, 200);
    assert!(metrics.headers.contains("text/plain; version=0.0.4"));
    for line in [
        "homelab_healthy{lab=\"home-lab\"} 1",
        "homelab_component_healthy{lab=\"home-lab\",component=\"n8n\",layer=\"applications\"} 1",
        "homelab_nodes{lab=\"home-lab\",state=\"ready\"} 3",
        "homelab_backup_ok{lab=\"home-lab\",namespace=\"data\",cronjob=\"postgres-backup\"} 1",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "{line} in\n{}",
            metrics.body
        );
    }
    assert!(
        metrics
            .body
            .lines()
            .any(|l| l.starts_with("homelab_backup_age_seconds{lab=\"home-lab\",namespace=\"data\",cronjob=\"postgres-backup\"} ")),
        "{}",
        metrics.body
    );
    assert_eq!(dash.get("/healthz").body, "ok\n");
    let docs = dash.get("/docs");
    assert_eq!(docs.code, 200);
    for r in &plan.runbooks {
        assert!(
            docs.body
                .contains(&format!("href=\"/docs/runbooks/{}\"", r.name))
        );
        let page = dash.get(&format!("/docs/runbooks/{}", r.name));
        assert_eq!(page.code, 200);
        // Markdown rendered, not shown as source.
        assert!(page.body.contains("<h1>"), "{}", r.name);
        assert!(!page.body.contains("<pre class=\"markdown\">"));
    }
    // The rendered tree's ADRs and diagrams are pages too; diagrams load the vendored Mermaid
    // from this server and nothing else.
    let tree = homelab_render::render(&plan, homelab_render::Flavor::K3s, None).unwrap();
    let adrs: Vec<&str> = tree
        .paths()
        .filter(|p| p.starts_with("docs/adrs/") && p.ends_with(".md"))
        .collect();
    assert!(adrs.len() > 3, "{adrs:?}");
    for adr in &adrs {
        let key = adr.trim_start_matches("docs/").trim_end_matches(".md");
        assert!(
            docs.body.contains(&format!("href=\"/docs/{key}\"")),
            "{key}"
        );
        assert_eq!(dash.get(&format!("/docs/{key}")).code, 200, "{key}");
    }
    let diagram = dash.get("/docs/diagrams/architecture");
    assert_eq!(diagram.code, 200);
    assert!(
        diagram.body.contains("<pre class=\"mermaid\">"),
        "{}",
        diagram.body
    );
    let script = diagram
        .body
        .split("<script src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the diagram page loads a script");
    assert!(script.starts_with("/assets/mermaid-"), "{script}");
    for src in diagram.body.split("<script src=\"").skip(1) {
        assert!(src.starts_with('/'), "a script from elsewhere: {src}");
    }
    let js = dash.get(script);
    assert_eq!(js.code, 200);
    assert!(
        js.headers.contains("content-type: text/javascript"),
        "{}",
        js.headers
    );
    assert!(js.body.len() > 1_000_000 && js.body.contains("mermaid"));
    assert!(
        dash.get("/")
            .headers
            .contains("content-security-policy: default-src 'none'; script-src 'self'")
    );
    // Server-side search over titles and text, as a page and as JSON.
    let found = dash.get("/docs?q=etcd+snapshot");
    assert_eq!(found.code, 200);
    assert!(found.body.contains("id=\"results\""), "{}", found.body);
    let hits: Value = serde_json::from_str(&dash.get("/api/docs?q=etcd%20snapshot").body).unwrap();
    let keys: Vec<&str> = hits["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["key"].as_str().unwrap())
        .collect();
    assert!(!keys.is_empty(), "{hits:#}");
    for key in &keys {
        assert!(
            found.body.contains(&format!("href=\"/docs/{key}\"")),
            "{key}"
        );
        let text = tree.text(&format!("docs/{key}.md")).unwrap().to_lowercase();
        assert!(text.contains("etcd") && text.contains("snapshot"), "{key}");
    }
    let none: Value =
        serde_json::from_str(&dash.get("/api/docs?q=zzqx-no-such-word").body).unwrap();
    assert_eq!(none["hits"], json!([]));
    let escaped = dash.get("/docs?q=%3Cscript%3E");
    assert!(escaped.body.contains("&lt;script&gt;") && !escaped.body.contains("<script>"));
    // Paths that try to leave the docs are refused before any lookup, however spelled.
    for evil in [
        "/docs/runbooks/..%2F..%2F..%2Fetc%2Fpasswd",
        "/docs/runbooks/../../../etc/passwd",
        "/docs/runbooks/%2Fetc%2Fpasswd",
        "/docs/../../etc/passwd",
        "/docs/%2e%2e/%2e%2e/etc/passwd",
        "/docs/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/docs//etc/passwd",
        "/docs/%2Fetc%2Fpasswd",
        "/docs/runbooks/..%5C..%5Cetc%5Cpasswd",
    ] {
        let answer = dash.get(evil);
        assert_eq!(answer.code, 400, "{evil}: {answer:?}");
        assert!(answer.body.contains("is not a document path"), "{evil}");
        assert!(!answer.body.contains("root:"), "{evil}");
    }
    // A name the tree does not have is not found, and says where the list is.
    let missing = dash.get("/docs/runbooks/no-such-runbook");
    assert_eq!(missing.code, 404);
    assert!(missing.body.contains("/docs lists them"), "{missing:?}");
    // Read-only: nothing but GET is served, and the dashboard's requests to the API are reads.
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        assert_eq!(dash.request(method, "/", &[]).code, 405, "{method}");
    }
    let writes: Vec<_> = seed
        .standin
        .journal()
        .into_iter()
        .filter(|s| s.method != "GET")
        .collect();
    assert!(
        writes.is_empty(),
        "the dashboard wrote to the API: {writes:?}"
    );

    // An unhealthy workload, a certificate about to end, a backup older than its schedule
    // allows: each component turns unhealthy with its reason, its fix and its runbook.
    seed.standin.patch_status(
        &path("apps", "v1", "deployments", Some("apps"), "n8n"),
        json!({"availableReplicas": 0, "readyReplicas": 0}),
    );
    seed.standin.patch_status(
        &path("cert-manager.io", "v1", "certificates", Some("docs"), "paperless-tls"),
        json!({"notAfter": date_utc("5 days"), "conditions": [{"type": "Ready", "status": "True"}]}),
    );
    seed.standin.patch_status(
        &path("batch", "v1", "cronjobs", Some("data"), "postgres-backup"),
        json!({"lastSuccessfulTime": date_utc("3 days ago")}),
    );
    let sick = dash.overview_when("three unhealthy components", Duration::from_secs(30), |o| {
        ["n8n", "paperless", "postgres"]
            .iter()
            .all(|n| component(o, n)["healthy"] == false)
    });
    assert_eq!(sick["health"], "unhealthy");
    let n8n = component(&sick, "n8n");
    assert!(
        n8n["reason"]
            .as_str()
            .unwrap()
            .starts_with("Deployment apps/n8n: not ready"),
        "{n8n:#}"
    );
    assert!(
        n8n["fix"]
            .as_str()
            .unwrap()
            .contains("kubectl -n apps describe deployment/n8n"),
        "{n8n:#}"
    );
    assert_eq!(n8n["runbook"], "/docs/runbooks/pod-crash-looping");
    let paperless = component(&sick, "paperless");
    assert!(
        paperless["reason"]
            .as_str()
            .unwrap()
            .contains("Certificate docs/paperless-tls: expires in"),
        "{paperless:#}"
    );
    assert_eq!(paperless["runbook"], "/docs/runbooks/certificate-expiring");
    let postgres = component(&sick, "postgres");
    assert!(
        postgres["reason"]
            .as_str()
            .unwrap()
            .starts_with("backup CronJob data/postgres-backup: last success 3d ago"),
        "{postgres:#}"
    );
    assert_eq!(postgres["runbook"], "/docs/runbooks/postgres-backup");
    let healthy_still = component(&sick, "traefik");
    assert_eq!(healthy_still["healthy"], true);

    let page = dash.get("/").body;
    let row = component_row(&page, "n8n");
    assert!(row.contains("data-health=\"unhealthy\""), "{row}");
    assert!(row.contains("Deployment apps/n8n: not ready"), "{row}");
    assert!(
        row.contains("href=\"/docs/runbooks/pod-crash-looping\""),
        "{row}"
    );
    assert!(page.contains("data-health=\"unhealthy\""));
    let metrics = dash.get("/metrics").body;
    for line in [
        "homelab_healthy{lab=\"home-lab\"} 0",
        "homelab_component_healthy{lab=\"home-lab\",component=\"n8n\",layer=\"applications\"} 0",
        "homelab_backup_ok{lab=\"home-lab\",namespace=\"data\",cronjob=\"postgres-backup\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    let days = metrics
        .lines()
        .find(|l| l.contains("certificate=\"Certificate docs/paperless-tls\""))
        .unwrap_or_else(|| panic!("no days for paperless-tls in\n{metrics}"));
    assert!(days.ends_with(" 4") || days.ends_with(" 5"), "{days}");
    // The only writes the API saw came from this test, playing the controllers.
    let writes: Vec<_> = seed
        .standin
        .journal()
        .into_iter()
        .filter(|s| s.method != "GET" && !s.path.contains("fieldManager=test-controller"))
        .collect();
    assert!(
        writes.is_empty(),
        "the dashboard wrote to the API: {writes:?}"
    );
}

#[test]
fn serve_beyond_loopback_needs_auth_and_with_auth_every_page_needs_the_token() {
    let lab = Lab::seed();
    let kubeconfig = lab.write("nowhere.kubeconfig", "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: home-lab, context: {cluster: c, user: u}}]\ncurrent-context: home-lab\n");
    let kc = kubeconfig.display().to_string();
    for listen in ["0.0.0.0:0", "[::]:0", "192.168.2.10:8080"] {
        let refused = lab
            .run(&["serve", "--listen", listen, "--kubeconfig", &kc])
            .expect(2);
        assert!(
            refused
                .stderr
                .contains(&format!("refusing to listen on {listen}"))
                && refused.stderr.contains("--auth-token-file"),
            "{}",
            refused.transcript()
        );
    }
    let short = lab.write("short.token", "tiny\n");
    let refused = lab
        .run(&[
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--auth-token-file",
            short.to_str().unwrap(),
            "--kubeconfig",
            &kc,
        ])
        .expect(2);
    assert!(
        refused.stderr.contains("at least 16") && !refused.stderr.contains("tiny"),
        "{}",
        refused.transcript()
    );

    // With a token (on loopback here, so that the test binds nothing wider), every page but
    // /healthz needs it; the cluster being unreachable is shown, not fatal.
    let token = "4f1c9e7a2b6d8e0f1a3c5e7b9d2f4a6c";
    let file = lab.write("dash.token", format!("{token}\n"));
    let mut cmd = lab.command();
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--api-retries",
        "0",
        "--auth-token-file",
    ])
    .arg(&file)
    .args(["--kubeconfig", &kc]);
    let dash = Dashboard::start(cmd);
    assert!(dash.banner.contains("token required"), "{}", dash.banner);
    assert!(!dash.banner.contains(token));
    for p in [
        "/",
        "/api/overview",
        "/metrics",
        "/docs",
        "/docs/runbooks/node-down",
    ] {
        let denied = dash.get(p);
        assert_eq!(denied.code, 401, "{p}");
        assert!(denied.headers.contains("www-authenticate: basic"), "{p}");
        let wrong = dash.get_with(
            p,
            &["Authorization: Bearer 4f1c9e7a2b6d8e0f1a3c5e7b9d2f4a6X"],
        );
        assert_eq!(wrong.code, 401, "{p}");
        let bearer = dash.get_with(p, &[&format!("Authorization: Bearer {token}")]);
        assert_eq!(bearer.code, 200, "{p}");
    }
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("anyone:{token}"));
    assert_eq!(
        dash.get_with("/", &[&format!("Authorization: Basic {basic}")])
            .code,
        200
    );
    assert_eq!(dash.get("/healthz").code, 200);
    let auth = format!("Authorization: Bearer {token}");
    let start = Instant::now();
    let down = loop {
        let o: Value =
            serde_json::from_str(&dash.get_with("/api/overview", &[&auth]).body).unwrap();
        if o["health"] != "unknown" {
            break o;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never checked: {o:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(down["health"], "unreachable");
    assert!(
        down["unreachable"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{down:#}"
    );
    let page = dash.get_with("/", &[&auth]).body;
    assert!(page.contains("data-health=\"unreachable\""), "{page}");
    assert!(page.contains("data-health=\"unknown\""));
    let metrics = dash.get_with("/metrics", &[&auth]).body;
    assert!(
        metrics
            .lines()
            .any(|l| l == "homelab_up{lab=\"home-lab\"} 0"),
        "{metrics}"
    );
}

/// The kind a request lists when it is a list of every namespace (`/api/v1/PLURAL` or
/// `/apis/GROUP/VERSION/PLURAL`, as `plural.group`); `None` for anything else (a namespaced
/// list, a read of one object, discovery).
fn cluster_wide_list(served: &kube_support::Served) -> Option<String> {
    let parts: Vec<&str> = served.path_only().trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "v1", plural] => Some(plural.to_string()),
        ["apis", group, _, plural] => Some(format!("{plural}.{group}")),
        _ => None,
    }
}

#[test]
fn status_lists_each_kind_once_all_at_once_beside_the_url_probes() {
    let seed = HealthySeedLab::start(StandInOptions::default(), true);
    let healthy = seed.wait_healthy().json();
    let checked: usize = healthy["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["checks"].as_array().unwrap().len())
        .sum();
    assert!(checked > 40, "the seed lab has many checks: {checked}");

    // Every answer takes long enough that requests sent one after the other could never be in
    // flight together, and a URL probe that waited for any list would come after its answer.
    seed.standin.set_latency(Duration::from_millis(500));
    seed.standin.clear_journal();
    seed.https.clear_received();
    let report = seed.status(&["--output", "json"]).ok().json();
    assert_eq!(report["health"], "healthy", "{report:#}");
    let journal = seed.standin.journal();

    let (version, rest): (Vec<_>, Vec<_>) =
        journal.iter().partition(|s| s.path_only() == "/version");
    assert_eq!(version.len(), 1, "one version check: {journal:#?}");
    let (prometheus, lists): (Vec<_>, Vec<_>) =
        rest.into_iter().partition(|s| s.path.contains("/proxy/"));
    assert_eq!(
        prometheus
            .iter()
            .map(|s| s.path.as_str())
            .collect::<Vec<_>>(),
        [
            "/api/v1/namespaces/monitoring/services/http:kube-prometheus-stack-prometheus:9090/proxy/api/v1/rules?type=alert"
        ],
        "one question to Prometheus, for the etcd snapshot mount"
    );
    let mut kinds = Vec::new();
    for list in &lists {
        assert_eq!(list.method, "GET", "status only reads: {list:?}");
        kinds.push(
            cluster_wide_list(list)
                .unwrap_or_else(|| panic!("not a list of every namespace: {list:?}")),
        );
    }
    kinds.sort();
    let distinct: BTreeSet<&String> = kinds.iter().collect();
    assert_eq!(
        distinct.len(),
        kinds.len(),
        "a kind listed twice: {kinds:?}"
    );
    assert_eq!(
        kinds,
        [
            "certificates.cert-manager.io",
            "cronjobs.batch",
            "customresourcedefinitions.apiextensions.k8s.io",
            "daemonsets.apps",
            "deployments.apps",
            "helmcharts.helm.cattle.io",
            "jobs.batch",
            "nodes",
            "persistentvolumeclaims",
            "services",
            "statefulsets.apps",
        ],
        "one list for each kind the checks read, whatever the number of objects"
    );
    assert!(
        kube_support::all_in_flight_together(&journal),
        "every request in flight at once: {journal:#?}"
    );

    let probes = seed.https.received();
    let urls = report["urls"].as_array().unwrap();
    assert_eq!(probes.len(), urls.len(), "one probe per URL: {probes:#?}");
    let first_answer = journal
        .iter()
        .filter_map(|s| s.end)
        .fold(f64::MAX, f64::min);
    assert!(
        probes.iter().all(|p| p.at < first_answer),
        "every URL probed before the API's first answer: {probes:#?} {journal:#?}"
    );
}

#[test]
fn unreachable_api_and_missing_kubeconfig_stop_before_anything_is_written() {
    let lab = lab_with_secrets(homelab_spec::templates::SEED);
    // A kubeconfig pointing at a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = lab.write(
        "closed.kubeconfig",
        json!({"apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": format!("http://127.0.0.1:{closed}")}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c"})
        .to_string(),
    );
    let apply = homelab(&lab, &kubeconfig, &["apply"]).expect(1);
    assert!(
        apply.stderr.contains("is unreachable") && apply.stderr.contains("nothing was changed"),
        "{}",
        apply.transcript()
    );
    let status = homelab(&lab, &kubeconfig, &["status"]).expect(2);
    assert!(
        status.stdout.contains("UNREACHABLE"),
        "{}",
        status.transcript()
    );
    let status_json = homelab(&lab, &kubeconfig, &["status", "--output", "json"]).expect(2);
    assert_eq!(status_json.json()["health"], "unreachable");
    let diff = homelab(&lab, &kubeconfig, &["diff"]).expect(2);
    assert!(
        diff.stderr.contains("is unreachable"),
        "{}",
        diff.transcript()
    );

    // No --kubeconfig, no KUBECONFIG, nothing at ~/.kube/home-lab.yaml.
    for cmd in ["apply", "diff", "status"] {
        let run = lab.run_with(&[cmd], &[("KUBECONFIG", "")], "").expect(2);
        assert!(
            run.stderr.contains("no kubeconfig found")
                && run.stderr.contains("home-lab.yaml")
                && run.stderr.contains("homelab kubeconfig"),
            "{}",
            run.transcript()
        );
    }
    // KUBECONFIG names a file that is not there.
    let run = lab
        .run_with(&["apply"], &[("KUBECONFIG", "/nonexistent/kubeconfig")], "")
        .expect(2);
    assert!(
        run.stderr.contains("/nonexistent/kubeconfig"),
        "{}",
        run.transcript()
    );
    // The file `homelab kubeconfig` writes is found without any flag.
    let standin = seed_standin(StandInOptions::default());
    std::fs::create_dir_all(lab.home().join(".kube")).unwrap();
    std::fs::copy(&standin.kubeconfig, lab.home().join(".kube/home-lab.yaml")).unwrap();
    let found = lab.run_with(&["diff"], &[("KUBECONFIG", "")], "");
    assert_eq!(found.code, 1, "{}", found.transcript());

    // ~/.kube/config as kubectl reads it: its context named like the lab is used although
    // the current one is another cluster (here one that does not answer).
    std::fs::remove_file(lab.home().join(".kube/home-lab.yaml")).unwrap();
    let mut merged: Value =
        serde_json::from_str(&std::fs::read_to_string(&standin.kubeconfig).unwrap()).unwrap();
    merged["contexts"][0]["name"] = json!("home-lab");
    merged["clusters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "work", "cluster": {"server": format!("http://127.0.0.1:{closed}")}}));
    merged["users"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "work", "user": {"token": "t"}}));
    merged["contexts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "work", "context": {"cluster": "work", "user": "work"}}));
    merged["current-context"] = json!("work");
    std::fs::write(
        lab.home().join(".kube/config"),
        serde_json::to_string(&merged).unwrap(),
    )
    .unwrap();
    let found = lab.run_with(&["diff"], &[("KUBECONFIG", "")], "");
    assert_eq!(found.code, 1, "{}", found.transcript());
    // --context still wins: the current (unreachable) cluster when named.
    let work = lab
        .run_with(&["diff", "--context", "work"], &[("KUBECONFIG", "")], "")
        .expect(2);
    assert!(
        work.stderr.contains("is unreachable"),
        "{}",
        work.transcript()
    );
    // Without the lab's context and without the lab's file: the current context, as kubectl;
    // the error says which cluster it tried.
    merged["contexts"][0]["name"] = json!("standin");
    std::fs::write(
        lab.home().join(".kube/config"),
        serde_json::to_string(&merged).unwrap(),
    )
    .unwrap();
    let current = lab.run_with(&["diff"], &[("KUBECONFIG", "")], "").expect(2);
    assert!(
        current.stderr.contains(&format!("127.0.0.1:{closed}")),
        "{}",
        current.transcript()
    );
    // Nothing usable: every file tried is named.
    merged.as_object_mut().unwrap().remove("current-context");
    std::fs::write(
        lab.home().join(".kube/config"),
        serde_json::to_string(&merged).unwrap(),
    )
    .unwrap();
    let none = lab.run_with(&["diff"], &[("KUBECONFIG", "")], "").expect(2);
    assert!(
        none.stderr.contains(".kube/config") && none.stderr.contains(".kube/home-lab.yaml"),
        "{}",
        none.transcript()
    );
    // An unknown context is named with the ones there are.
    let run = homelab(&lab, &standin.kubeconfig, &["apply", "--context", "nope"]).expect(2);
    assert!(run.stderr.contains("standin"), "{}", run.transcript());
    assert!(get(&standin, &path("", "v1", "namespaces", None, "infra")).is_none());
}

#[test]
fn secrets_that_cannot_be_read_stop_before_the_cluster_is_contacted() {
    let standin = seed_standin(StandInOptions::default());
    let before = standin.request_count();
    let lab = lab_with_secrets(homelab_spec::templates::SEED);
    let values = secret_values(&lab);

    // Somebody else's key: decryption fails.
    let other_home = tempfile::tempdir().unwrap();
    let other_key = other_home.path().join("other.key");
    let keygen = Command::new("age-keygen")
        .arg("-o")
        .arg(&other_key)
        .output()
        .expect("age-keygen is needed: run scripts/install-test-deps");
    assert!(keygen.status.success());
    let key = other_key.display().to_string();
    let kc = standin.kubeconfig.display().to_string();
    for cmd in ["apply", "diff"] {
        let run = lab.run_with(
            &[cmd, "--kubeconfig", kc.as_str()],
            &[("SOPS_AGE_KEY_FILE", key.as_str())],
            "",
        );
        assert_ne!(run.code, 0, "{}", run.transcript());
        assert!(
            run.stderr.contains("SOPS_AGE_KEY_FILE") && run.stderr.contains("nothing was changed"),
            "{}",
            run.transcript()
        );
        assert_no_secret_in(&run, &values);
    }

    // Secrets the lab needs that have no value: each named once, with the one command that
    // gives it one, exit 2. The optional git credentials, unset as well, are not among them.
    let blank = Lab::with_spec(&seed_with_a_pushover_receiver());
    blank.run(&["secrets", "init"]).ok();
    for cmd in ["apply", "diff"] {
        let run = homelab(&blank, &standin.kubeconfig, &[cmd]).expect(2);
        let err = &run.stderr;
        assert!(
            err.contains(
                "cloudflare-api-token (for Secret infra/acme-dns-credentials): yours to give: `homelab secrets set cloudflare-api-token`"
            ) && err.contains("`homelab secrets set pushover-user-key`")
                && err.contains("`homelab secrets set pushover-app-token`")
                && err.contains("nothing was changed in the cluster"),
            "{}",
            run.transcript()
        );
        for name in [
            "cloudflare-api-token",
            "pushover-user-key",
            "pushover-app-token",
        ] {
            assert_eq!(
                err.matches(&format!("secrets set {name}`")).count(),
                1,
                "{name} once: {}",
                run.transcript()
            );
        }
        assert!(
            !err.contains("devcontainer-tom-git-credentials"),
            "the optional one is not demanded: {}",
            run.transcript()
        );
    }
    // No secrets file at all.
    let none = Lab::with_spec(homelab_spec::templates::SEED);
    let run = homelab(&none, &standin.kubeconfig, &["apply"]).expect(1);
    assert!(
        run.stderr.contains("homelab secrets init"),
        "{}",
        run.transcript()
    );

    assert_eq!(
        standin.request_count(),
        before,
        "the API was not contacted at all"
    );
}

#[test]
fn apply_goes_on_without_the_optional_git_credentials_and_says_so_once() {
    let standin = seed_standin(StandInOptions::default());
    let lab = lab_with_secrets_but(
        homelab_spec::templates::SEED,
        &["devcontainer-tom-git-credentials"],
    );
    let first = homelab(
        &lab,
        &standin.kubeconfig,
        &["apply", "--timeout", "60s", "--output", "json"],
    )
    .ok();
    let absent = first.json()["optionalSecretsAbsent"].clone();
    assert_eq!(
        absent,
        json!([{
            "secret": "devcontainer-tom-git-credentials",
            "object": "Secret dev/dev-tom-git",
            "without": "dev container `tom` runs without git credentials (git over https asks for them; SSH remotes work)",
            "command": "homelab secrets set devcontainer-tom-git-credentials",
        }])
    );
    // The container is there, mounting the Secret that is not.
    assert!(
        get(
            &standin,
            &path("", "v1", "secrets", Some("dev"), "dev-tom-git")
        )
        .is_none()
    );
    let deployment = get(
        &standin,
        &path("apps", "v1", "deployments", Some("dev"), "dev-tom"),
    )
    .expect("the dev container is applied");
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .clone();
    let git = volumes.iter().find(|v| v["name"] == "git").unwrap();
    assert_eq!(git["secret"]["optional"], true, "{git}");
    // In text, one warning line names it with its command, even with --quiet.
    for extra in [&[][..], &["--quiet"][..]] {
        let mut args = vec!["apply", "--timeout", "60s"];
        args.extend(extra);
        let run = homelab(&lab, &standin.kubeconfig, &args).ok();
        let warnings: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains("devcontainer-tom-git-credentials"))
            .collect();
        assert_eq!(warnings.len(), 1, "{}", run.transcript());
        assert!(
            warnings[0].starts_with("warning: optional secret `devcontainer-tom-git-credentials` has no value, so Secret dev/dev-tom-git is not applied")
                && warnings[0].ends_with("`homelab secrets set devcontainer-tom-git-credentials` and apply again"),
            "{}",
            run.transcript()
        );
    }
    // Once set, the next apply creates the Secret and says nothing of it.
    lab.run_stdin(
        &["secrets", "set", "devcontainer-tom-git-credentials"],
        "https://tom:ghp-e2e-51d0@github.com",
    )
    .ok();
    let run = homelab(&lab, &standin.kubeconfig, &["apply", "--timeout", "60s"]).ok();
    assert!(
        !run.stderr.contains("devcontainer-tom-git-credentials"),
        "{}",
        run.transcript()
    );
    assert!(
        get(
            &standin,
            &path("", "v1", "secrets", Some("dev"), "dev-tom-git")
        )
        .is_some()
    );
}

#[test]
fn api_conflicts_and_unavailability_are_retried() {
    let standin = seed_standin(StandInOptions::default());
    let lab = lab_with_secrets(homelab_spec::templates::SEED);
    // The first writes of a ConfigMap and a HelmChart conflict, a list answers 503 twice.
    standin.inject_fault("PATCH", "/configmaps/", 409, 1);
    standin.inject_fault("PATCH", "/helmcharts/cert-manager$", 409, 2);
    standin.inject_fault("GET", "/customresourcedefinitions/certificates", 503, 2);
    let run = homelab(&lab, &standin.kubeconfig, &["apply", "--timeout", "60s"]).ok();
    assert!(
        run.stderr
            .contains("retrying apply HelmChart.helm.cattle.io kube-system/cert-manager")
            && run.stderr.contains("HTTP 409"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains("retrying apply ConfigMap"),
        "{}",
        run.transcript()
    );
    assert!(
        get(
            &standin,
            &path(
                "helm.cattle.io",
                "v1",
                "helmcharts",
                Some("kube-system"),
                "cert-manager"
            )
        )
        .is_some()
    );

    // Someone changes a field homelab owns; the next apply must write it back, but the
    // server keeps failing: the object and the server's message are named.
    let chart = path(
        "helm.cattle.io",
        "v1",
        "helmcharts",
        Some("kube-system"),
        "n8n",
    );
    let (code, body) = standin.request(
        "PATCH",
        &format!("{chart}?fieldManager=kubectl-edit"),
        "application/merge-patch+json",
        Some(&json!({"spec": {"version": "0.0.1"}})),
    );
    assert_eq!(code, 200, "{body}");
    standin.inject_fault("PATCH", "/helmcharts/n8n$", 503, 100);
    let run = homelab(
        &lab,
        &standin.kubeconfig,
        &["apply", "--timeout", "60s", "--api-retries", "3"],
    )
    .expect(1);
    assert!(
        run.stderr
            .contains("HelmChart.helm.cattle.io kube-system/n8n")
            && run.stderr.contains("injected 503")
            && run.stderr.contains("(HTTP 503)"),
        "{}",
        run.transcript()
    );
    // Once the server recovers, the drifted field is written back.
    standin.clear_faults();
    let run = homelab(&lab, &standin.kubeconfig, &["apply", "--output", "json"]).ok();
    assert_eq!(
        changed_components(&run),
        BTreeSet::from(["n8n".to_string()]),
        "{}",
        run.stdout
    );
    let live = get(&standin, &chart).unwrap();
    assert_ne!(live["spec"]["version"], "0.0.1");
}

/// Against an API that ignores `labelSelector` on lists (every list answers with every
/// object), pruning a disabled service deletes its objects and nothing else, and keeps its
/// namespace while something homelab did not create is in it.
#[test]
fn prune_against_a_server_ignoring_label_selectors_keeps_a_namespace_with_foreign_objects() {
    let standin = seed_standin(StandInOptions {
        ignore_label_selectors: true,
        ..StandInOptions::default()
    });
    let lab = lab_with_secrets(homelab_spec::templates::SEED);
    homelab(&lab, &standin.kubeconfig, &["apply", "--timeout", "60s"]).ok();
    create(
        &standin,
        "/api/v1/namespaces/ml/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine", "namespace": "ml"}, "data": {"a": "b"}}),
    );
    edit_spec(&lab, remove_ollama);
    let run = homelab(&lab, &standin.kubeconfig, &["apply", "--prune"]).ok();
    assert!(
        run.stdout.contains("kept Namespace ml: namespace ml still holds objects homelab did not create (ConfigMap mine)"),
        "{}",
        run.transcript()
    );
    assert!(
        !run.stdout.contains("pruned Namespace") && !run.stderr.contains("pruned Namespace"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr
            .contains("pruned HelmChart.helm.cattle.io kube-system/ollama"),
        "{}",
        run.transcript()
    );
    assert!(get(&standin, &path("", "v1", "namespaces", None, "ml")).is_some());
    assert!(get(&standin, &path("", "v1", "configmaps", Some("ml"), "mine")).is_some());
    // Everything else the server listed along with our objects is still there.
    for ns in ["default", "kube-system", "docs", "apps"] {
        assert!(
            get(&standin, &path("", "v1", "namespaces", None, ns)).is_some(),
            "{ns}"
        );
    }
    assert!(
        get(
            &standin,
            &path("apps", "v1", "deployments", Some("kube-system"), "traefik")
        )
        .is_some()
    );
    let json = homelab(
        &lab,
        &standin.kubeconfig,
        &["apply", "--prune", "--output", "json"],
    )
    .ok()
    .json();
    let pruned = json["pruned"].as_array().unwrap();
    assert!(
        pruned.iter().all(|p| p["deleted"] == false),
        "nothing more to delete: {pruned:?}"
    );
}

/// K3s answers 503 for seconds while it starts, throttles with 429, and drops connections
/// when it restarts: apply, diff and status ride it out, saying each retry on the progress
/// line, and give up only after a bounded number of attempts.
#[test]
fn a_restarting_api_server_is_ridden_out_with_bounded_retries() {
    let standin = seed_standin(StandInOptions::default());
    let lab = lab_with_secrets(homelab_spec::templates::SEED);

    // The first three requests, `GET /version` included, answer 503.
    standin.inject_fault("*", ".", 503, 3);
    // Later: throttling with Retry-After, a dropped connection, and a restart that refuses
    // connections for a second while the apply is under way.
    standin.inject_fault_retry_after("GET", "/api/v1/configmaps$", 429, 1, 1);
    standin.inject_reset("PATCH", "/configmaps/", 2);
    standin.inject_restart("PATCH", "/helmcharts/cert-manager$", Duration::from_secs(1));
    let run = homelab(&lab, &standin.kubeconfig, &["apply", "--timeout", "60s"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    for want in [
        "retrying read version of the Kubernetes API",
        "HTTP 503",
        "HTTP 429",
        "retrying apply ConfigMap",
        "retrying apply HelmChart.helm.cattle.io kube-system/cert-manager",
    ] {
        assert!(
            run.stderr.contains(want),
            "{want:?} missing:\n{}",
            run.transcript()
        );
    }
    assert!(
        run.stdout.contains("components of lab `home-lab` changed"),
        "{}",
        run.transcript()
    );
    assert!(
        get(
            &standin,
            &path(
                "helm.cattle.io",
                "v1",
                "helmcharts",
                Some("kube-system"),
                "cert-manager"
            )
        )
        .is_some()
    );

    // diff and status wait for it too, and say so.
    standin.inject_fault("*", ".", 503, 3);
    let diff = homelab(&lab, &standin.kubeconfig, &["diff"]);
    assert_eq!(diff.code, 0, "{}", diff.transcript());
    assert!(
        diff.stderr.contains("retrying") && diff.stderr.contains("HTTP 503"),
        "{}",
        diff.transcript()
    );
    standin.inject_fault("*", ".", 503, 3);
    standin.inject_reset("GET", "/deployments$", 1);
    let status = homelab(&lab, &standin.kubeconfig, &["status"]);
    assert_ne!(status.code, 2, "{}", status.transcript());
    assert!(
        !status.stdout.contains("UNREACHABLE"),
        "{}",
        status.transcript()
    );
    assert!(
        status.stderr.contains("retrying") && status.stderr.contains("HTTP 503"),
        "{}",
        status.transcript()
    );
    let quiet = {
        standin.inject_fault("*", ".", 503, 2);
        homelab(&lab, &standin.kubeconfig, &["status", "--output", "json"])
    };
    assert!(
        quiet.stderr.is_empty(),
        "JSON output stays clean:\n{}",
        quiet.transcript()
    );
    assert_ne!(quiet.json()["health"], "unreachable");

    // An API that keeps failing: bounded, then the object, the server's message and the
    // number of attempts are named. `--api-retries` sets the bound.
    standin.inject_fault("GET", "^/version$", 503, 100);
    let started = Instant::now();
    let gone = homelab(&lab, &standin.kubeconfig, &["apply", "--api-retries", "2"]).expect(1);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        gone.stderr.contains("is unreachable") && gone.stderr.contains("after 3 attempts"),
        "{}",
        gone.transcript()
    );
    assert_eq!(
        gone.stderr.matches("retrying read version").count(),
        2,
        "{}",
        gone.transcript()
    );
    standin.clear_faults();
}

#[test]
fn an_interrupted_apply_is_finished_by_the_next_one() {
    // Slow controllers so that the first apply is still waiting when it is killed.
    let standin = seed_standin(StandInOptions {
        controller_delay: Duration::from_millis(1500),
        ..StandInOptions::default()
    });
    let lab = lab_with_secrets(homelab_spec::templates::SEED);
    let mut child = lab
        .command()
        .args(["apply", "--timeout", "60s", "--kubeconfig"])
        .arg(&standin.kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("homelab starts");
    wait_until("the first units", Duration::from_secs(30), || {
        get(
            &standin,
            &path(
                "helm.cattle.io",
                "v1",
                "helmcharts",
                Some("kube-system"),
                "nfs-provisioner",
            ),
        )
        .is_some()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        get(
            &standin,
            &path("apps", "v1", "statefulsets", Some("data"), "postgres")
        )
        .is_none(),
        "killed before the end"
    );
    // The next run finishes the job and knows what the first one created.
    let run = homelab(
        &lab,
        &standin.kubeconfig,
        &["apply", "--timeout", "60s", "--output", "json"],
    )
    .ok();
    let created_before: Vec<Value> = run.json()["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "nfs")
        .cloned()
        .collect();
    assert_eq!(
        created_before[0]["created"], 0,
        "nfs was done by the first run"
    );
    assert!(
        get(
            &standin,
            &path("apps", "v1", "statefulsets", Some("data"), "postgres")
        )
        .is_some()
    );
    let again = homelab(&lab, &standin.kubeconfig, &["apply", "--timeout", "60s"]).ok();
    assert!(
        again.stdout.contains("is unchanged"),
        "{}",
        again.transcript()
    );
}

#[test]
fn dry_run_stores_nothing() {
    let standin = seed_standin(StandInOptions::default());
    let lab = lab_with_secrets(homelab_spec::templates::SEED);
    let run = homelab(
        &lab,
        &standin.kubeconfig,
        &["apply", "--dry-run", "--output", "json"],
    )
    .ok();
    let report = run.json();
    assert_eq!(report["dryRun"], true);
    assert_eq!(report["changed"], true);
    assert!(get(&standin, &path("", "v1", "namespaces", None, "infra")).is_none());
    assert!(
        get(
            &standin,
            &path(
                "",
                "v1",
                "secrets",
                Some("kube-system"),
                "applyset-home-lab"
            )
        )
        .is_none()
    );
    let text = homelab(&lab, &standin.kubeconfig, &["apply", "--dry-run"]).ok();
    assert!(
        text.stdout.contains("Dry run, nothing was changed"),
        "{}",
        text.stdout
    );
}

// ---- benchmark (run by scripts/bench-apply, never as part of the test suite) ------------

/// Times `homelab apply` on the seed lab through the binary against the stand-in with
/// `BENCH_LATENCY_MS` (default 20) added to every request: one first apply, then
/// `BENCH_RUNS` (default 5) no-op re-applies, each checked to report nothing changed.
#[test]
#[ignore = "a benchmark: run it with scripts/bench-apply"]
fn bench_seed_lab_noop_reapply_through_the_cli() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let latency = env("BENCH_LATENCY_MS", 20);
    let runs = env("BENCH_RUNS", 5) as usize;
    let standin = seed_standin(StandInOptions {
        latency: Duration::from_millis(latency),
        ..StandInOptions::default()
    });
    let lab = lab_with_secrets(homelab_spec::templates::SEED);
    let timed = |args: &[&str]| {
        let before = standin.request_count();
        let start = Instant::now();
        let run = homelab(&lab, &standin.kubeconfig, args);
        let took = start.elapsed();
        let requests = standin.request_count() - before;
        (run, took, requests)
    };
    let (first, took, requests) = timed(&["apply", "--timeout", "120s", "--output", "json"]);
    let first = first.ok();
    let objects: usize = first.json()["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["created"].as_u64().unwrap() as usize)
        .sum();
    println!(
        "first apply: {objects} objects created, {requests} requests, {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
    let mut times = Vec::new();
    for _ in 0..runs {
        let (run, took, requests) = timed(&["apply", "--output", "json"]);
        assert_eq!(run.ok().json()["changed"], false, "a no-op re-apply");
        println!(
            "no-op re-apply: {requests} requests, {:.0} ms",
            took.as_secs_f64() * 1000.0
        );
        times.push(took);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "no-op re-apply at {latency} ms per request: runs={runs} median_ms={:.0} min_ms={:.0} max_ms={:.0}",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
}

/// Times `homelab status` of the seed lab through the binary against the stand-in with
/// `BENCH_LATENCY_MS` (default 20) added to every request and the lab's URLs answered by a
/// local HTTPS server, and, in turn with it, the same checks as a script of sequential
/// `kubectl get` and `curl` calls; `BENCH_RUNS` (default 5) runs of each, every status run
/// checked to be healthy and every script run to have failed nowhere. Prints both side by side.
#[test]
#[ignore = "a benchmark: run it with scripts/bench-status"]
fn bench_seed_lab_status_through_the_cli() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let latency = env("BENCH_LATENCY_MS", 20);
    let runs = (env("BENCH_RUNS", 5) as usize).max(1);
    let seed = HealthySeedLab::start(StandInOptions::default(), false);
    seed.wait_healthy();
    let spec = seed.lab.read("homelab.yaml");
    let loaded = homelab_spec::load_bytes("homelab.yaml", spec.as_bytes())
        .unwrap_or_else(|_| panic!("the seed spec is valid"));
    let checks = homelab_ops::cluster_plan::status_checks(&homelab_plan::plan(&loaded.lab));
    let script = kube_support::kubectl_status_script(&serde_json::to_value(&checks).unwrap());
    let calls = kube_support::script_calls(&script);
    let scratch = tempfile::tempdir().unwrap();
    // The kubeconfig K3s writes names the cluster's CA, so a client trusts only that and never
    // loads the system's trust store; the stand-in's (plain HTTP) gets one too, for the same
    // start-up work as against a real lab.
    let mut kubeconfig: Value =
        serde_json::from_slice(&std::fs::read(&seed.standin.kubeconfig).unwrap()).unwrap();
    let ca = Command::new("base64")
        .args(["-w0", seed.ca.as_str()])
        .output()
        .expect("base64 runs");
    kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"] =
        json!(String::from_utf8(ca.stdout).unwrap());
    let kubeconfig_path = scratch.path().join("kubeconfig");
    std::fs::write(&kubeconfig_path, kubeconfig.to_string()).unwrap();
    let script_path = scratch.path().join("kubectl-checks.sh");
    std::fs::write(&script_path, &script).unwrap();
    let kubectl = || {
        let start = Instant::now();
        let out = Command::new("bash")
            .arg(&script_path)
            .env("KUBECONFIG_FILE", &kubeconfig_path)
            .env("URL_TARGET", format!("127.0.0.1:{}", seed.https.port))
            .env("CA_FILE", &seed.ca)
            .env("HOME", scratch.path())
            .output()
            .expect("bash runs the kubectl script (kubectl and curl are needed)");
        let took = start.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "the kubectl script failed somewhere:\n{stderr}"
        );
        took
    };
    let status = || {
        let before = seed.standin.request_count();
        let start = Instant::now();
        let run = seed.status_via(&kubeconfig_path, &["--output", "json"]);
        let took = start.elapsed();
        assert_eq!(run.code, 0, "healthy:\n{}", run.transcript());
        (took, seed.standin.request_count() - before)
    };

    seed.standin.set_latency(Duration::from_millis(latency));
    // One run of each first: kubectl fills its discovery cache, as on a workstation.
    status();
    kubectl();
    let (mut ours, mut theirs, mut requests) = (Vec::new(), Vec::new(), 0);
    for _ in 0..runs {
        let (took, served) = status();
        ours.push(took);
        requests = served;
        theirs.push(kubectl());
    }
    ours.sort();
    theirs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let row = |what: String, calls: String, times: &[Duration]| {
        println!(
            "| {what} | {calls} | {:.0} ms | {:.0} ms | {:.0} ms |",
            ms(times[times.len() / 2]),
            ms(times[0]),
            ms(times[times.len() - 1])
        )
    };
    println!(
        "| what (seed lab, {latency} ms per API request, {runs} runs) | requests | median | min | max |"
    );
    println!("|---|---|---|---|---|");
    row(
        "`homelab status --output json` (whole process)".into(),
        format!("{requests} API + {} URL probes, at once", checks.urls.len()),
        &ours,
    );
    row(
        "same checks, sequential `kubectl get` and `curl`".into(),
        format!("{calls} calls, one after another"),
        &theirs,
    );
    println!(
        "status: median {:.0} ms against an aim of 5 x {latency} ms = {} ms; {:.0}x faster than the script",
        ms(ours[ours.len() / 2]),
        5 * latency,
        ms(theirs[theirs.len() / 2]) / ms(ours[ours.len() / 2])
    );
}

/// `homelab ARGS` on a pseudo-terminal (util-linux `script`); the exit code and everything
/// the terminal showed.
fn on_terminal(lab: &Lab, args: &[&str]) -> (i32, String) {
    let found = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`script` (util-linux) not found: the terminal tests need it; run scripts/install-test-deps"
    );
    let line: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_homelab").to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect();
    let template = lab.command();
    let mut cmd = Command::new("script");
    for (k, v) in template.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.current_dir(lab.dir())
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .stdin(Stdio::null());
    let out = cmd.output().expect("script runs");
    let shown = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    (out.status.code().unwrap_or(-1), shown)
}

#[test]
fn a_terminal_shows_one_updating_line_per_component() {
    let standin = seed_standin(StandInOptions::default());
    let lab = lab_with_secrets(homelab_spec::templates::SEED);
    let kc = standin.kubeconfig.display().to_string();
    let (code, shown) = on_terminal(&lab, &["apply", "--timeout", "60s", "--kubeconfig", &kc]);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("✓ 9 of 9 objects changed"), "{shown}");
    assert!(
        !shown.contains("local-path: Namespace"),
        "object lines only with -v:\n{shown}"
    );
    let (code, shown) = on_terminal(&lab, &["apply", "--kubeconfig", &kc]);
    assert_eq!(code, 0, "{shown}");
    for unit in [
        "local-path",
        "cert-manager",
        "cert-manager/resources",
        "postgres",
        "n8n",
    ] {
        assert!(
            shown
                .lines()
                .any(|l| l.contains(unit) && l.contains("✓ unchanged")),
            "no finished line for {unit}:\n{shown}"
        );
    }
    assert!(
        shown.contains("every component of lab `home-lab` is unchanged"),
        "{shown}"
    );
    let values = secret_values(&lab);
    assert!(values.iter().all(|v| !shown.contains(v.as_str())));
}

// ---- the media lab: manifests, patches, replicas and prune ------------------------------

/// examples/media-lab.yaml with its manifests directory, every secret it needs set.
fn media_lab() -> Lab {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let lab = Lab::with_spec(&std::fs::read_to_string(examples.join("media-lab.yaml")).unwrap());
    let mut stack = vec![examples.join("media-lab")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(&examples).unwrap().display().to_string();
                lab.write(&rel, std::fs::read(&p).unwrap());
            }
        }
    }
    lab.run(&["secrets", "init"]).ok();
    let listed = lab
        .run(&["secrets", "list", "--output", "json"])
        .ok()
        .json();
    for s in listed["secrets"].as_array().unwrap() {
        if s["set"] != true {
            let name = s["name"].as_str().unwrap();
            lab.run_stdin(&["secrets", "set", name], &format!("e2e-{name}-4d1c"))
                .ok();
        }
    }
    lab
}

fn deployment(standin: &StandIn, ns: &str, name: &str) -> Option<Value> {
    get(standin, &path("apps", "v1", "deployments", Some(ns), name))
}

/// What `kubectl scale` does: a change of `spec.replicas` by another field manager.
fn scale(standin: &StandIn, ns: &str, name: &str, replicas: u32) {
    let (code, body) = standin.request(
        "PATCH",
        &format!(
            "{}?fieldManager=kubectl",
            path("apps", "v1", "deployments", Some(ns), name)
        ),
        "application/merge-patch+json",
        Some(&json!({"spec": {"replicas": replicas}})),
    );
    assert_eq!(code, 200, "scale {ns}/{name}: {body}");
}

#[test]
fn media_lab_applies_its_manifests_and_patches_keeps_a_scale_and_prunes_what_was_removed() {
    let standin = StandIn::start(&StandInOptions {
        nodes: vec!["k3s-master".into(), "k3s-gpu".into()],
        ..StandInOptions::default()
    });
    for (name, objects) in seed_charts() {
        standin.register_chart("kube-system", name, &objects);
    }
    for (kind, plural) in [
        ("Middleware", "middlewares"),
        ("IngressRoute", "ingressroutes"),
        ("TLSOption", "tlsoptions"),
    ] {
        create(
            &standin,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd("traefik.io", kind, plural, "v1alpha1", "Namespaced"),
        );
    }
    let lab = media_lab();
    let kc = standin.kubeconfig.clone();

    let first = homelab(
        &lab,
        &kc,
        &["apply", "--timeout", "60s", "--output", "json"],
    )
    .ok();
    let names: Vec<String> = components_json(&first)
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names.last().map(String::as_str),
        Some("manifests"),
        "{names:?}"
    );

    // The user's objects, with the namespace nothing else creates, in the lab's ApplySet.
    let unpackerr = deployment(&standin, "media", "unpackerr").expect("unpackerr is applied");
    assert!(
        unpackerr["metadata"]["labels"]["applyset.kubernetes.io/part-of"].is_string(),
        "{unpackerr}"
    );
    assert!(get(&standin, &path("", "v1", "namespaces", None, "tools")).is_some());
    assert!(deployment(&standin, "tools", "it-tools").is_some());
    assert!(
        get(
            &standin,
            &path("", "v1", "services", Some("tools"), "it-tools")
        )
        .is_some()
    );
    // The patches are applied to the generated objects.
    let plex = deployment(&standin, "media", "plex").unwrap();
    let pod = &plex["spec"]["template"]["spec"];
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "transcode"),
        "{pod}"
    );
    let pihole = deployment(&standin, "dns", "pihole").unwrap();
    assert_eq!(
        pihole["spec"]["template"]["spec"]["dnsConfig"]["nameservers"][0],
        "1.1.1.1"
    );

    let again = homelab(&lab, &kc, &["apply", "--output", "json"]).ok();
    assert!(changed_components(&again).is_empty(), "{}", again.stdout);

    // `kubectl scale` of an app whose spec leaves replicas out survives apply; where the spec
    // sets them (Pi-hole: 1), the spec wins.
    scale(&standin, "media", "sonarr", 3);
    scale(&standin, "dns", "pihole", 3);
    let diff = homelab(&lab, &kc, &["diff", "--output", "json"]).expect(1);
    let differing: BTreeSet<String> = diff.json()["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["change"] != "unchanged")
        .map(|o| {
            format!(
                "{} {}",
                o["object"]["kind"].as_str().unwrap_or_default(),
                o["object"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        differing,
        BTreeSet::from(["Deployment pihole".to_string()]),
        "{}",
        diff.stdout
    );
    homelab(&lab, &kc, &["apply"]).ok();
    assert_eq!(
        deployment(&standin, "media", "sonarr").unwrap()["spec"]["replicas"],
        3
    );
    assert_eq!(
        deployment(&standin, "dns", "pihole").unwrap()["spec"]["replicas"],
        1
    );

    // Remove an app, a manifest file and a patch; prune deletes what they made and only that.
    edit_spec(&lab, |s| {
        let start = s.find("  - name: radarr\n").unwrap();
        let end = s[start..].find("  - name: qbittorrent\n").unwrap() + start;
        format!("{}{}", &s[..start], &s[end..])
    });
    std::fs::remove_file(lab.path("media-lab/tools/it-tools.yaml")).unwrap();
    std::fs::remove_file(lab.path("media-lab/patches/pihole-upstream-dns.yaml")).unwrap();
    let pruned = homelab(&lab, &kc, &["apply", "--prune", "--output", "json"]).ok();
    let report = pruned.json();
    let deleted: BTreeSet<String> = report["pruned"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["deleted"] == true)
        .map(|p| {
            format!(
                "{} {}",
                p["object"]["kind"].as_str().unwrap(),
                p["object"]["name"].as_str().unwrap()
            )
        })
        .collect();
    for gone in [
        "Deployment radarr",
        "Deployment it-tools",
        "Service it-tools",
        "Namespace tools",
    ] {
        assert!(deleted.contains(gone), "{gone} is pruned: {deleted:?}");
    }
    assert!(
        deleted.iter().all(|d| !d.contains("sonarr")
            && !d.contains("unpackerr")
            && !d.contains("share-media")
            && d != "Namespace media"),
        "{deleted:?}"
    );
    assert!(deployment(&standin, "media", "radarr").is_none());
    assert!(deployment(&standin, "tools", "it-tools").is_none());
    assert!(get(&standin, &path("", "v1", "namespaces", None, "tools")).is_none());
    assert!(deployment(&standin, "media", "unpackerr").is_some());
    assert!(
        get(
            &standin,
            &path("", "v1", "persistentvolumes", None, "share-media-media")
        )
        .is_some()
    );
    // The removed patch's fields are gone: apply no longer sends them.
    let pihole = deployment(&standin, "dns", "pihole").unwrap();
    assert!(
        pihole["spec"]["template"]["spec"]
            .get("dnsConfig")
            .is_none(),
        "{pihole}"
    );
    let after = homelab(&lab, &kc, &["apply", "--prune"]).ok();
    assert!(
        after.stdout.contains("is unchanged"),
        "{}",
        after.transcript()
    );
}

// ---- the rendered README, followed by hand ----------------------------------------------

/// The first `sh` block after `heading` in a README.
fn readme_block(readme: &str, heading: &str) -> String {
    let at = readme
        .find(heading)
        .unwrap_or_else(|| panic!("the README has no `{heading}`:\n{readme}"));
    let rest = &readme[at..];
    let start = rest.find("```sh\n").expect("a sh block follows") + "```sh\n".len();
    let end = rest[start..].find("```\n").expect("the block ends") + start;
    rest[start..end].to_string()
}

/// An `ssh` that records each call (its arguments, then what it got on stdin) in `log`
/// instead of connecting: the K3s step's commands run for real up to the network.
fn recording_ssh(bin: &Path, log: &Path) {
    std::fs::create_dir_all(bin).unwrap();
    std::fs::create_dir_all(log).unwrap();
    let script = format!(
        "#!/bin/sh\nn=$(ls '{log}' | wc -l)\nn=$(printf '%03d' $((n / 2)))\nprintf '%s' \"$*\" > '{log}'/$n.args\ncat > '{log}'/$n.stdin\n",
        log = log.display()
    );
    let ssh = bin.join("ssh");
    std::fs::write(&ssh, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The recorded ssh calls: (arguments, stdin), in order.
fn ssh_calls(log: &Path) -> Vec<(String, String)> {
    let mut names: Vec<String> = std::fs::read_dir(log)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".args").map(str::to_string))
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| {
            (
                std::fs::read_to_string(log.join(format!("{n}.args"))).unwrap(),
                std::fs::read_to_string(log.join(format!("{n}.stdin"))).unwrap(),
            )
        })
        .collect()
}

/// Runs one README block with bash (stopping at the first failing command) in the tree.
fn run_block(tree: &Path, block: &str, env: &[(&str, String)]) -> Run {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("set -eo pipefail\n{block}"))
        .current_dir(tree)
        .env_clear()
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from_output(cmd.output().expect("bash runs"))
}

#[test]
fn the_rendered_readme_without_the_tool_installs_k3s_creates_the_secrets_and_applies_every_layer() {
    let lab = lab_with_secrets(homelab_spec::templates::SEED);
    lab.run(&["render", "--out", "tree"]).ok();
    let tree = lab.path("tree");
    let readme = std::fs::read_to_string(tree.join("README.md")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let bin = scratch.path().join("bin");
    let log = scratch.path().join("ssh-calls");
    recording_ssh(&bin, &log);
    let venv_bin = lab_support::venv_python().parent().unwrap().to_path_buf();
    let search_path = format!(
        "{}:{}:{}:{}",
        bin.display(),
        venv_bin.display(),
        lab_support::workspace_root()
            .join(".test-tools/bin")
            .display(),
        std::env::var("PATH").unwrap_or_default()
    );
    lab_support::require_tool("kubectl");
    let home = lab.home().display().to_string();

    // 1. K3s on each node: the node's configuration, the join token decrypted by the real
    // sops with the age key the README names, then the installer; the first server first.
    let step = readme_block(&readme, homelab_render::HAND_STEP_K3S);
    run_block(
        &tree,
        &step,
        &[("PATH", search_path.clone()), ("HOME", home.clone())],
    )
    .ok();
    let calls = ssh_calls(&log);
    let token = lab.get("k3s-token");
    let mut expected: Vec<(String, Option<String>)> = Vec::new();
    for (node, address, role) in [
        ("k3s-master", "192.168.2.20", "server"),
        ("k3s-worker-01", "192.168.2.21", "agent"),
        ("k3s-worker-02", "192.168.2.22", "agent"),
    ] {
        let config =
            std::fs::read_to_string(tree.join(format!("infrastructure/k3s/nodes/{node}.yaml")))
                .unwrap();
        expected.push((
            format!("tom@{address} sudo mkdir -p /etc/rancher/k3s && sudo tee /etc/rancher/k3s/config.yaml >/dev/null"),
            Some(config),
        ));
        expected.push((
            format!(
                "tom@{address} sudo sh -c \"umask 077 && cat > /etc/rancher/k3s/cluster-token\""
            ),
            Some(token.clone()),
        ));
        expected.push((
            format!("tom@{address} curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION=v1.34.2+k3s1 sh -s - {role}"),
            Some(String::new()),
        ));
        if role == "server" {
            expected.push((
                format!("tom@{address} sudo k3s kubectl wait --for=condition=Ready node/{node} --timeout=5m"),
                Some(String::new()),
            ));
        }
    }
    let got: Vec<(String, Option<String>)> = calls
        .into_iter()
        .map(|(args, stdin)| (args, Some(stdin.trim_end_matches('\n').to_string())))
        .collect();
    let expected: Vec<(String, Option<String>)> = expected
        .into_iter()
        .map(|(a, s)| (a, s.map(|s| s.trim_end_matches('\n').to_string())))
        .collect();
    assert_eq!(got, expected, "the K3s step:\n{step}");

    // 3. and 4.: the Secrets, then the layers in order, against the API stand-in. kubectl's
    // client-side validation needs the OpenAPI documents the stand-in does not serve; a
    // kubectl preference (kuberc) turns it off without changing a line of the README.
    let standin = seed_standin(StandInOptions::default());
    std::fs::create_dir_all(lab.home().join(".kube")).unwrap();
    std::fs::write(
        lab.home().join(".kube/kuberc"),
        "apiVersion: kubectl.config.k8s.io/v1alpha1\nkind: Preference\noverrides:\n  - command: apply\n    flags:\n      - name: validate\n        default: \"false\"\n",
    )
    .unwrap();
    let env = [
        ("PATH", search_path),
        ("HOME", home),
        ("KUBECONFIG", standin.kubeconfig.display().to_string()),
        ("KUBECTL_KUBERC", "true".to_string()),
    ];
    let step = readme_block(&readme, homelab_render::HAND_STEP_SECRETS);
    run_block(&tree, &step, &env).ok();
    let secret = |ns: &str, name: &str, key: &str| -> String {
        let s = get(&standin, &path_of_secret(ns, name))
            .unwrap_or_else(|| panic!("Secret {ns}/{name} was not created"));
        assert_eq!(
            s["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "homelab"
        );
        let b64 = s["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{ns}/{name} has no {key}: {s}"));
        use base64::Engine as _;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        secret("data", "postgres-superuser", "password"),
        lab.get("postgres-superuser-password")
    );
    assert_eq!(secret("data", "postgres-superuser", "username"), "postgres");
    assert_eq!(
        secret("infra", "acme-dns-credentials", "api-token"),
        USER_SECRETS[0].1
    );
    assert_eq!(
        secret("apps", "n8n-secrets", "postgres-password"),
        lab.get("postgres-n8n-password")
    );
    assert_eq!(
        secret("dev", "dev-tom-git", ".git-credentials"),
        USER_SECRETS[1].1
    );

    let step = readme_block(&readme, homelab_render::HAND_STEP_LAYERS);
    for layer in ["infrastructure", "monitoring", "applications"] {
        assert!(
            step.contains(&format!("kubectl apply -k {layer}\n")),
            "{step}"
        );
    }
    run_block(&tree, &step, &env).ok();
    for (what, object) in [
        (
            "the MetalLB pool (a custom resource of the chart)",
            path(
                "metallb.io",
                "v1beta1",
                "ipaddresspools",
                Some("infra"),
                "lab-pool",
            ),
        ),
        (
            "the production issuer",
            path(
                "cert-manager.io",
                "v1",
                "clusterissuers",
                None,
                "letsencrypt-production",
            ),
        ),
        (
            "the alert rules",
            path(
                "monitoring.coreos.com",
                "v1",
                "prometheusrules",
                Some("monitoring"),
                "homelab-alerts",
            ),
        ),
        (
            "PostgreSQL",
            path("apps", "v1", "statefulsets", Some("data"), "postgres"),
        ),
        (
            "Paperless",
            path("apps", "v1", "deployments", Some("docs"), "paperless"),
        ),
    ] {
        assert!(
            get(&standin, &object).is_some(),
            "{what} ({object}) is missing after the layers"
        );
    }
}

fn path_of_secret(ns: &str, name: &str) -> String {
    path("", "v1", "secrets", Some(ns), name)
}

/// `GET path` of the dashboard as JSON once `done` holds for it.
fn dashboard_json_when(
    dash: &Dashboard,
    path: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let answer = dash.get(path);
        assert_eq!(answer.code, 200, "{path}: {answer:?}");
        assert!(
            answer.headers.contains("content-type: application/json"),
            "{path}: {}",
            answer.headers
        );
        let v: Value = serde_json::from_str(&answer.body).expect("the answer is JSON");
        if done(&v) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}; last {path}: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn html_page(dash: &Dashboard, path: &str) -> String {
    let answer = dash.get(path);
    assert_eq!(answer.code, 200, "{path}: {answer:?}");
    assert!(answer.headers.contains("content-type: text/html"), "{path}");
    answer.body
}

#[test]
fn serve_shows_nodes_backups_and_alerts_as_the_cluster_has_them() {
    let seed = HealthySeedLab::start(StandInOptions::default(), false);
    seed.wait_healthy();
    let standin = &seed.standin;
    let plan = {
        let loaded =
            homelab_spec::load_bytes("homelab.yaml", homelab_spec::templates::SEED.as_bytes())
                .unwrap();
        homelab_plan::plan(&loaded.lab)
    };
    standin.clear_journal();
    let dash = seed.serve(&[]);

    // Nodes: every node of the plan with its role and version; no metrics-server yet.
    let nodes = dashboard_json_when(&dash, "/api/nodes", "a first read", |v| {
        !v["readAt"].is_null()
    });
    assert!(nodes["error"].is_null(), "{nodes:#}");
    // (The stand-in answers every list it does not know with an empty one, so metrics-server
    // looks installed without figures; the API without metrics.k8s.io is a unit test.)
    assert!(
        nodes["metricsUnavailable"]
            .as_str()
            .is_some_and(|m| m.contains("metrics-server reports no node yet")),
        "{nodes:#}"
    );
    let shown: Vec<(&str, &str)> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        shown,
        [
            ("k3s-master", "server"),
            ("k3s-worker-01", "agent"),
            ("k3s-worker-02", "agent")
        ]
    );
    for n in nodes["nodes"].as_array().unwrap() {
        assert_eq!(n["ready"], true, "{n:#}");
        assert_eq!(n["k3sVersion"], "v1.34.1+k3s1");
        assert_eq!(
            n["versionSkew"],
            plan.k3s_version != "v1.34.1+k3s1",
            "{n:#}"
        );
        assert!(n["cpu"].is_null());
    }
    assert!(html_page(&dash, "/nodes").contains("id=\"metrics-unavailable\""));

    // metrics-server arrives, one worker runs another k3s and is short of memory.
    create(
        standin,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        crd(
            "metrics.k8s.io",
            "NodeMetrics",
            "nodes",
            "v1beta1",
            "Cluster",
        ),
    );
    for (node, cpu, memory) in [
        ("k3s-master", "500m", "2Gi"),
        ("k3s-worker-01", "1500000000n", "3Gi"),
        ("k3s-worker-02", "250m", "1Gi"),
    ] {
        create(
            standin,
            "/apis/metrics.k8s.io/v1beta1/nodes",
            json!({"apiVersion": "metrics.k8s.io/v1beta1", "kind": "NodeMetrics",
                   "metadata": {"name": node}, "window": "20s",
                   "usage": {"cpu": cpu, "memory": memory}}),
        );
    }
    standin.patch_status(
        &path("", "v1", "nodes", None, "k3s-worker-01"),
        json!({"nodeInfo": {"kubeletVersion": "v1.33.5+k3s1"},
               "allocatable": {"cpu": "4", "memory": "8Gi"},
               "conditions": [{"type": "Ready", "status": "True"},
                              {"type": "MemoryPressure", "status": "True"}]}),
    );
    let nodes = dashboard_json_when(&dash, "/api/nodes", "metrics and the worker's skew", |v| {
        v["nodes"][1]["versionSkew"] == true && !v["nodes"][1]["cpu"].is_null()
    });
    assert!(nodes["metricsUnavailable"].is_null(), "{nodes:#}");
    let worker = &nodes["nodes"][1];
    assert_eq!(worker["pressure"], json!(["MemoryPressure"]));
    assert_eq!(worker["cpu"]["used"], 1.5);
    assert_eq!(worker["cpu"]["percent"], 37.5);
    assert_eq!(worker["memory"]["percent"], 37.5);
    let page = html_page(&dash, "/nodes");
    assert!(page.contains("v1.33.5+k3s1 (skew)"), "{page}");
    assert!(page.contains("MemoryPressure"));

    // Alerts: Alertmanager has no ready pod yet, which is said, not a failure.
    let down = dashboard_json_when(&dash, "/api/alerts", "a first read", |v| {
        !v["readAt"].is_null()
    });
    assert_eq!(
        down["alertmanager"],
        "monitoring/kube-prometheus-stack-alertmanager:9093"
    );
    assert!(
        down["error"].as_str().unwrap().contains("did not answer"),
        "{down:#}"
    );
    assert!(html_page(&dash, "/alerts").contains("id=\"alerts-error\""));
    let am = "http:kube-prometheus-stack-alertmanager:9093";
    standin.proxy_answer(
        "monitoring",
        am,
        "/api/v2/alerts",
        200,
        json!([
            {"labels": {"alertname": "NodeDown", "severity": "critical", "node": "k3s-worker-02"},
             "annotations": {"summary": "k3s-worker-02 is down", "runbook_url": "docs/runbooks/node-down.md"},
             "startsAt": "2026-12-07T20:00:00.000Z", "endsAt": "2026-12-07T21:00:00.000Z",
             "updatedAt": "2026-12-07T20:00:00.000Z", "fingerprint": "a1", "generatorURL": "http://prometheus/graph",
             "receivers": [{"name": "ntfy"}],
             "status": {"state": "active", "silencedBy": [], "inhibitedBy": [], "mutedBy": []}},
            {"labels": {"alertname": "DiskSpaceLow", "severity": "warning", "mountpoint": "/"},
             "annotations": {"summary": "<script>alert(1)</script>", "runbook_url": "docs/runbooks/disk-space.md"},
             "startsAt": "2026-12-07T19:00:00.000Z", "endsAt": "2026-12-07T21:00:00.000Z",
             "updatedAt": "2026-12-07T20:00:00.000Z", "fingerprint": "b2", "receivers": [{"name": "ntfy"}],
             "status": {"state": "suppressed", "silencedBy": ["5e1e"], "inhibitedBy": [], "mutedBy": []}}
        ]),
    );
    standin.proxy_answer(
        "monitoring",
        am,
        "/api/v2/silences",
        200,
        json!([{"id": "5e1e", "status": {"state": "active"}, "updatedAt": "2026-12-07T19:00:00.000Z",
                "matchers": [{"name": "alertname", "value": "DiskSpaceLow", "isRegex": false, "isEqual": true}],
                "startsAt": "2026-12-07T19:00:00.000Z", "endsAt": "2026-12-08T19:00:00.000Z",
                "createdBy": "tom", "comment": "resizing the disk"}]),
    );
    let alerts = dashboard_json_when(&dash, "/api/alerts", "the firing alert", |v| {
        v["firing"].as_array().is_some_and(|a| !a.is_empty())
    });
    assert!(alerts["error"].is_null(), "{alerts:#}");
    assert_eq!(alerts["firing"][0]["name"], "NodeDown");
    assert_eq!(alerts["firing"][0]["runbook"], "/docs/runbooks/node-down");
    assert_eq!(alerts["silenced"][0]["name"], "DiskSpaceLow");
    assert_eq!(alerts["silenced"][0]["silencedBy"], json!(["5e1e"]));
    assert_eq!(
        alerts["silences"][0]["matchers"],
        json!(["alertname=\"DiskSpaceLow\""])
    );
    let page = html_page(&dash, "/alerts");
    assert!(page.contains("href=\"/docs/runbooks/node-down\""), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script>"));
    assert!(page.contains("resizing the disk"));

    // Backups: the CronJob is fresh; no dump record, drill or etcd record is there yet.
    let backups = dashboard_json_when(&dash, "/api/backups", "a first read", |v| {
        !v["readAt"].is_null()
    });
    assert_eq!(backups["cronjobs"][0]["cronjob"], "postgres-backup");
    assert_eq!(backups["cronjobs"][0]["ok"], true);
    assert!(backups["lastBackup"].is_null() && backups["lastDrill"].is_null());
    assert!(
        backups["etcdError"]
            .as_str()
            .unwrap()
            .contains("no ETCDSnapshotFile records"),
        "{backups:#}"
    );
    assert!(html_page(&dash, "/backups").contains("id=\"no-drill\""));

    // A backup run and a drill, with the records their scripts log; K3s' snapshot records.
    let job = |name: &str, owner: Option<&str>, component: &str| {
        let mut meta = json!({"name": name, "namespace": "data",
            "labels": {"app.kubernetes.io/component": component}});
        if let Some(cj) = owner {
            meta["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "CronJob",
                "name": cj, "uid": "0000", "controller": true}]);
        }
        create(
            standin,
            "/apis/batch/v1/namespaces/data/jobs",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
                   "spec": {"template": {"spec": {"restartPolicy": "Never",
                       "containers": [{"name": "backup", "image": "postgres:18"}]}}}}),
        );
        standin.patch_status(
            &path("batch", "v1", "jobs", Some("data"), name),
            json!({"succeeded": 1, "completionTime": date_utc("1 hour ago")}),
        );
        let pod = format!("{name}-x7k2p");
        create(
            standin,
            "/api/v1/namespaces/data/pods",
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": pod, "labels": {"job-name": name}},
                   "spec": {"containers": [{"name": "backup", "image": "postgres:18"}]}}),
        );
        pod
    };
    let finished = date_utc("1 hour ago");
    let record = json!({"format": 1, "result": "success", "started_at": finished,
        "finished_at": finished, "duration_seconds": 4, "backup_dir": "/backups", "keep": 7,
        "globals": {"file": "globals.sql", "manifest": "globals.json", "bytes": 512, "sha256": "aa"},
        "databases": [
            {"name": "n8n", "result": "success", "file": "n8n.dump", "manifest": "n8n.json",
             "bytes": 1048576, "sha256": "bb", "duration_seconds": 2, "tables": 40, "rows": 1200},
            {"name": "paperless", "result": "failure", "duration_seconds": 1,
             "error": "pg_dump: error: connection refused"}],
        "invalid_dumps": [], "deleted": [], "warnings": [], "errors": ["paperless failed"]});
    let pod = job(
        "postgres-backup-manual-20261207-1",
        Some("postgres-backup"),
        "backup",
    );
    standin.set_pod_log("data", &pod, &format!("dumping\nHOMELAB-BACKUP {record}\n"));
    let drill_pod = job("postgres-drill-20261207-1", None, "backup-drill");
    let summary = json!({"kind": "summary", "status": "passed", "databases": 1,
        "failed_databases": 0, "tables": 40, "mismatches": 0, "invalid_dumps": 0,
        "started_at": finished, "finished_at": finished, "duration_seconds": 9});
    let database = json!({"kind": "database", "database": "n8n", "status": "ok",
        "file": "n8n.dump", "tables": 40, "mismatches": 0, "restore_seconds": 3, "verify_seconds": 2});
    standin.set_pod_log(
        "data",
        &drill_pod,
        &format!("HOMELAB-DRILL {database}\nHOMELAB-DRILL {summary}\n"),
    );
    create(
        standin,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        crd(
            "k3s.cattle.io",
            "ETCDSnapshotFile",
            "etcdsnapshotfiles",
            "v1",
            "Cluster",
        ),
    );
    let snapshot = "local-etcd-snapshot-k3s-master-1765130400-3f1a2b";
    create(
        standin,
        "/apis/k3s.cattle.io/v1/etcdsnapshotfiles",
        json!({"apiVersion": "k3s.cattle.io/v1", "kind": "ETCDSnapshotFile",
               "metadata": {"name": snapshot},
               "spec": {"snapshotName": "etcd-snapshot-k3s-master-1765130400", "nodeName": "k3s-master",
                        "location": "file:///var/lib/rancher/k3s/server/db/snapshots/etcd-snapshot-k3s-master-1765130400"}}),
    );
    standin.patch_status(
        &path("k3s.cattle.io", "v1", "etcdsnapshotfiles", None, snapshot),
        json!({"creationTime": date_utc("2 hours ago"), "readyToUse": true, "size": "5242880"}),
    );
    let backups = dashboard_json_when(&dash, "/api/backups", "the records", |v| {
        !v["lastBackup"].is_null() && !v["lastDrill"].is_null() && !v["etcd"][0]["newest"].is_null()
    });
    let dumps = &backups["lastBackup"]["databases"];
    assert_eq!(dumps[0]["database"], "n8n");
    assert_eq!(dumps[0]["verified"], true);
    assert_eq!(dumps[0]["bytes"], 1048576);
    let age = dumps[0]["ageSeconds"].as_i64().unwrap();
    assert!((3500..4000).contains(&age), "{age}");
    assert_eq!(dumps[1]["ok"], false);
    assert_eq!(dumps[1]["verified"], false);
    assert_eq!(backups["lastDrill"]["passed"], true);
    assert_eq!(backups["lastDrill"]["tables"], 40);
    assert_eq!(backups["etcd"][0]["node"], "k3s-master");
    assert_eq!(backups["etcd"][0]["fresh"], true);
    assert_eq!(backups["etcd"][0]["bytes"], 5242880);
    // The failed dump is named in the banner.
    assert!(
        backups["stale"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().contains("database paperless")),
        "{backups:#}"
    );
    let page = html_page(&dash, "/backups");
    assert!(page.contains("data-stale=\"true\""), "{page}");
    assert!(page.contains("connection refused"));
    assert!(page.contains("id=\"drill\" data-passed=\"true\""));

    // The CronJob's last success falls behind its schedule and the snapshot ages: both red.
    standin.patch_status(
        &path("batch", "v1", "cronjobs", Some("data"), "postgres-backup"),
        json!({"lastSuccessfulTime": date_utc("3 days ago")}),
    );
    standin.patch_status(
        &path("k3s.cattle.io", "v1", "etcdsnapshotfiles", None, snapshot),
        json!({"creationTime": date_utc("2 days ago")}),
    );
    let stale = dashboard_json_when(&dash, "/api/backups", "stale backups", |v| {
        v["cronjobs"][0]["ok"] == false && v["etcd"][0]["fresh"] == false
    });
    let banner: Vec<&str> = stale["stale"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        banner
            .iter()
            .any(|s| s.starts_with("backup CronJob data/postgres-backup: last success 3d ago")),
        "{banner:?}"
    );
    assert!(
        banner
            .iter()
            .any(|s| s.starts_with("server k3s-master: the newest etcd snapshot is from")),
        "{banner:?}"
    );

    // Every page and its JSON twin were reads: no write reached the API from the dashboard.
    let writes: Vec<_> = standin
        .journal()
        .into_iter()
        .filter(|s| {
            s.method != "GET"
                && !s.path.contains("fieldManager=test-controller")
                && !s.path.starts_with("/_standin")
        })
        .filter(|s| {
            // The test's own creations.
            !(s.method == "POST"
                && (s.path.contains("customresourcedefinitions")
                    || s.path.contains("/nodes")
                    || s.path.contains("/jobs")
                    || s.path.contains("/pods")
                    || s.path.contains("etcdsnapshotfiles")))
        })
        .collect();
    assert!(
        writes.is_empty(),
        "the dashboard wrote to the API: {writes:?}"
    );
}
