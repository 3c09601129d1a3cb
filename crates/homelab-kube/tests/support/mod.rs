//! Test support for end-to-end runs: starts the Kubernetes API stand-in (kube_standin.py on
//! kmock) on a free port with a kubeconfig pointing at it, or uses a real cluster from
//! `HOMELAB_E2E_KUBECONFIG`; and builds a realistic multi-unit plan as plain JSON. It depends
//! only on std, serde_json and tempfile so CLI tests can include it with `#[path]`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub mod tls;

/// The Python of the test virtualenv (`HOMELAB_TEST_VENV`, else `<workspace>/.venv-test`).
pub fn test_python() -> PathBuf {
    let venv = std::env::var_os("HOMELAB_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv-test"));
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "the test virtualenv is missing ({}): run scripts/install-test-deps",
        python.display()
    );
    let ok = Command::new(&python)
        .args(["-c", "import kmock"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the PyPI package kmock is not installed in {}: run scripts/install-test-deps",
        venv.display()
    );
    python
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate is two levels below the workspace root")
        .to_path_buf()
}

pub fn standin_script() -> PathBuf {
    workspace_root().join("crates/homelab-kube/tests/support/kube_standin.py")
}

/// Options of a stand-in run.
#[derive(Debug, Clone)]
pub struct StandInOptions {
    /// Play the controllers (workloads become ready, HelmCharts install, ...).
    pub controllers: bool,
    pub controller_delay: Duration,
    pub crd_delay: Duration,
    pub latency: Duration,
    pub nodes: Vec<String>,
    /// Run Jobs that have a command for real, as `job_runner.py` describes; the JSON
    /// configuration file it reads (`--run-jobs`). Needs root.
    pub run_jobs: Option<PathBuf>,
    /// Answer lists with every object of the kind, whatever their `labelSelector` says, as a
    /// server or proxy that drops the parameter would (`--ignore-label-selectors`).
    pub ignore_label_selectors: bool,
}

impl Default for StandInOptions {
    fn default() -> Self {
        StandInOptions {
            controllers: true,
            controller_delay: Duration::from_millis(50),
            crd_delay: Duration::from_millis(100),
            latency: Duration::ZERO,
            nodes: vec!["server-1".into(), "agent-1".into()],
            run_jobs: None,
            ignore_label_selectors: false,
        }
    }
}

/// One API request as the stand-in saw it: when it arrived and when its answer was sent,
/// in seconds of the stand-in's monotonic clock (`end` is `None` while it is in flight).
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub method: String,
    /// The path with its query string.
    pub path: String,
    pub start: f64,
    pub end: Option<f64>,
}

impl Served {
    /// The path without its query string.
    pub fn path_only(&self) -> &str {
        self.path.split_once('?').map_or(&self.path, |(p, _)| p)
    }
}

/// Whether every request of `served` was in flight at one moment: the last to arrive came
/// before the first answer was sent.
pub fn all_in_flight_together(served: &[Served]) -> bool {
    let last_start = served.iter().map(|s| s.start).fold(f64::MIN, f64::max);
    let first_end = served
        .iter()
        .map(|s| s.end.unwrap_or(f64::MAX))
        .fold(f64::MAX, f64::min);
    !served.is_empty() && last_start < first_end
}

/// A running stand-in; stops when dropped.
pub struct StandIn {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl StandIn {
    pub fn start(options: &StandInOptions) -> StandIn {
        let python = test_python();
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(python)
            .arg(standin_script())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--controller-delay")
            .arg(options.controller_delay.as_secs_f64().to_string())
            .arg("--crd-delay")
            .arg(options.crd_delay.as_secs_f64().to_string())
            .arg("--latency-ms")
            .arg((options.latency.as_secs_f64() * 1000.0).to_string())
            .arg("--nodes")
            .arg(options.nodes.join(","))
            .args(options.controllers.then_some("--controllers"))
            .args(
                options
                    .ignore_label_selectors
                    .then_some("--ignore-label-selectors"),
            )
            .args(
                options
                    .run_jobs
                    .iter()
                    .flat_map(|config| [std::ffi::OsStr::new("--run-jobs"), config.as_os_str()]),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kube_standin.py");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read READY line");
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the stand-in did not start (said {line:?})"));
        let stdin = child.stdin.take();
        StandIn {
            child,
            stdin,
            port,
            kubeconfig,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Calls the stand-in's admin API (`/_standin/...`) or the Kubernetes API with a JSON body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        http_json(self.port, method, path, content_type, body)
    }

    /// Makes the next `count` requests matching `method` and `path_regex` fail with `status`.
    pub fn inject_fault(&self, method: &str, path_regex: &str, status: u16, count: u32) {
        let (code, _) = self.request(
            "POST",
            "/_standin/faults",
            "application/json",
            Some(
                &json!({"method": method, "path": path_regex, "status": status, "count": count,
                         "message": format!("injected {status}")}),
            ),
        );
        assert_eq!(code, 200);
    }

    /// Like [`StandIn::inject_fault`], with `details.retryAfterSeconds` in the Status, as a
    /// throttling API server answers 429.
    pub fn inject_fault_retry_after(
        &self,
        method: &str,
        path_regex: &str,
        status: u16,
        count: u32,
        retry_after_seconds: u32,
    ) {
        let (code, _) = self.request(
            "POST",
            "/_standin/faults",
            "application/json",
            Some(
                &json!({"method": method, "path": path_regex, "status": status, "count": count,
                         "message": format!("injected {status}"),
                         "reason": if status == 429 { "TooManyRequests" } else { "InternalError" },
                         "retryAfterSeconds": retry_after_seconds}),
            ),
        );
        assert_eq!(code, 200);
    }

    /// Makes the next `count` requests matching `method` and `path_regex` end with a TCP
    /// reset instead of an answer.
    pub fn inject_reset(&self, method: &str, path_regex: &str, count: u32) {
        let (code, _) = self.request(
            "POST",
            "/_standin/faults",
            "application/json",
            Some(&json!({"method": method, "path": path_regex, "count": count, "action": "reset"})),
        );
        assert_eq!(code, 200);
    }

    /// Makes the next request matching `method` and `path_regex` restart the API server as
    /// K3s does: every connection is reset and new ones are refused for `down`, then it
    /// listens again on the same port.
    pub fn inject_restart(&self, method: &str, path_regex: &str, down: Duration) {
        let (code, _) = self.request(
            "POST",
            "/_standin/faults",
            "application/json",
            Some(
                &json!({"method": method, "path": path_regex, "count": 1, "action": "restart",
                         "seconds": down.as_secs_f64()}),
            ),
        );
        assert_eq!(code, 200);
    }

    /// Switches lists between honouring and ignoring `labelSelector`.
    pub fn ignore_label_selectors(&self, ignore: bool) {
        let (code, _) = self.request(
            "POST",
            "/_standin/mode",
            "application/json",
            Some(&json!({"ignoreLabelSelectors": ignore})),
        );
        assert_eq!(code, 200);
    }

    pub fn clear_faults(&self) {
        self.request("DELETE", "/_standin/faults", "application/json", None);
    }

    /// The most API requests the stand-in was answering at once since the last
    /// [`StandIn::reset_max_in_flight`].
    pub fn max_in_flight(&self) -> u64 {
        self.request("GET", "/_standin/requests", "application/json", None)
            .1["maxInFlight"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Changes the latency added to every request from now on.
    pub fn set_latency(&self, latency: Duration) {
        let (code, _) = self.request(
            "POST",
            "/_standin/mode",
            "application/json",
            Some(&json!({"latencyMs": latency.as_secs_f64() * 1000.0})),
        );
        assert_eq!(code, 200);
    }

    pub fn reset_max_in_flight(&self) {
        self.request("DELETE", "/_standin/requests", "application/json", None);
    }

    /// Every API request since the last [`StandIn::clear_journal`], in the order they came.
    pub fn journal(&self) -> Vec<Served> {
        let (code, body) = self.request("GET", "/_standin/journal", "application/json", None);
        assert_eq!(code, 200, "read the journal: {body}");
        body["journal"]
            .as_array()
            .expect("a journal")
            .iter()
            .map(|e| Served {
                method: e["method"].as_str().unwrap_or_default().to_string(),
                path: e["path"].as_str().unwrap_or_default().to_string(),
                start: e["start"].as_f64().unwrap_or_default(),
                end: e["end"].as_f64(),
            })
            .collect()
    }

    pub fn clear_journal(&self) {
        let (code, _) = self.request("DELETE", "/_standin/journal", "application/json", None);
        assert_eq!(code, 200);
    }

    /// How many API requests the stand-in served so far (its admin API's not counted).
    pub fn request_count(&self) -> u64 {
        self.request("GET", "/_standin/requests", "application/json", None)
            .1["count"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Registers what installing the HelmChart `namespace/name` creates (CRDs, Services,
    /// workloads), as the chart would: the simulated helm-controller creates these objects
    /// when it runs the chart's install Job.
    pub fn register_chart(&self, namespace: &str, name: &str, objects: &[Value]) {
        let (code, body) = self.request(
            "POST",
            "/_standin/charts",
            "application/json",
            Some(&json!({"namespace": namespace, "name": name, "objects": objects})),
        );
        assert_eq!(code, 200, "register chart {namespace}/{name}: {body}");
    }

    /// Sets what the proxy of Service `service` (as the proxy path names it, e.g.
    /// `http:prometheus:9090`) in `namespace` answers at `path` (with its query).
    pub fn proxy_answer(
        &self,
        namespace: &str,
        service: &str,
        path: &str,
        status: u16,
        body: Value,
    ) {
        let (code, answer) = self.request(
            "POST",
            "/_standin/proxy",
            "application/json",
            Some(&json!({"namespace": namespace, "service": service, "path": path, "status": status, "body": body})),
        );
        assert_eq!(
            code, 200,
            "proxy answer for {namespace}/{service}{path}: {answer}"
        );
    }

    /// Sets what `GET .../pods/POD/log` answers for a pod the test created.
    pub fn set_pod_log(&self, namespace: &str, pod: &str, text: &str) {
        let (code, body) = self.request(
            "POST",
            "/_standin/logs",
            "application/json",
            Some(&json!({"namespace": namespace, "pod": pod, "text": text})),
        );
        assert_eq!(code, 200, "set the log of pod {namespace}/{pod}: {body}");
    }

    /// Merge-patches the status subresource, as a controller would.
    pub fn patch_status(&self, path: &str, status: Value) {
        let (code, body) = self.request(
            "PATCH",
            &format!("{path}/status?fieldManager=test-controller"),
            "application/merge-patch+json",
            Some(&json!({"status": status})),
        );
        assert_eq!(code, 200, "patch status of {path}: {body}");
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 JSON client for talking to the stand-in without a Kubernetes client.
pub fn http_json(
    port: u16,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    use std::io::Read;
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to stand-in");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json_body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (code, serde_json::from_str(json_body).unwrap_or(Value::Null))
}

/// Where the end-to-end scenario runs.
pub enum Backend {
    StandIn(StandIn),
    /// A real cluster's kubeconfig (from `HOMELAB_E2E_KUBECONFIG`).
    Real(PathBuf),
}

impl Backend {
    pub fn kubeconfig(&self) -> PathBuf {
        match self {
            Backend::StandIn(s) => s.kubeconfig.clone(),
            Backend::Real(p) => p.clone(),
        }
    }

    pub fn is_real(&self) -> bool {
        matches!(self, Backend::Real(_))
    }
}

/// The real cluster to test against, or `None` after printing that the tier is skipped.
pub fn real_cluster(test: &str) -> Option<PathBuf> {
    match std::env::var_os("HOMELAB_E2E_KUBECONFIG") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            eprintln!("skipped {test}: real-cluster tier, set HOMELAB_E2E_KUBECONFIG to run it");
            None
        }
    }
}

/// A realistic lab plan as JSON (the shape of `homelab_kube::ApplyPlan`): namespaces, a CRD
/// and its custom resource, a HelmChart, a database StatefulSet with a Secret and a backup
/// CronJob, and a web Deployment behind a LoadBalancer Service. `suffix` keeps parallel
/// scenarios on one cluster apart.
#[derive(Debug, Clone)]
pub struct LabPlan {
    pub suffix: String,
    /// Value written into the web ConfigMap (change it to change the plan).
    pub greeting: String,
    pub web_replicas: u32,
    pub db_password: String,
    /// Units left out (e.g. to prune them).
    pub without: Vec<String>,
    pub image: String,
}

impl LabPlan {
    pub fn new(suffix: &str) -> LabPlan {
        LabPlan {
            suffix: suffix.to_string(),
            greeting: "hello".into(),
            web_replicas: 1,
            db_password: "first-secret-value".into(),
            without: vec![],
            image: "registry.k8s.io/pause:3.10".into(),
        }
    }

    pub fn ns(&self, base: &str) -> String {
        format!("{base}-{}", self.suffix)
    }

    pub fn applyset(&self) -> Value {
        json!({"name": format!("lab-{}", self.suffix), "namespace": self.ns("homelab")})
    }

    fn labels(app: &str) -> Value {
        json!({"app.kubernetes.io/name": app, "app.kubernetes.io/managed-by": "homelab"})
    }

    pub fn to_json(&self) -> Value {
        let (infra, data, apps, homelab) = (
            self.ns("infra"),
            self.ns("data"),
            self.ns("apps"),
            self.ns("homelab"),
        );
        let image = &self.image;
        let mut units = vec![
            json!({"name": "namespaces", "objects": [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": homelab, "labels": Self::labels("homelab")}},
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": infra, "labels": Self::labels("infra")}},
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": data, "labels": Self::labels("data")}},
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": apps, "labels": Self::labels("apps")}},
            ]}),
            json!({"name": "cert-manager", "dependsOn": ["namespaces"], "objects": [
                {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                 "metadata": {"name": "certificates.cert-manager.io"},
                 "spec": {"group": "cert-manager.io", "scope": "Namespaced",
                          "names": {"kind": "Certificate", "plural": "certificates", "singular": "certificate", "listKind": "CertificateList"},
                          "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                                        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}},
            ], "waits": [{"type": "crd_established", "name": "certificates.cert-manager.io"}]}),
            json!({"name": "podinfo-chart", "dependsOn": ["namespaces"], "objects": [
                {"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart",
                 "metadata": {"name": format!("podinfo-{}", self.suffix), "namespace": "kube-system", "labels": Self::labels("podinfo")},
                 "spec": {"repo": "https://stefanprodan.github.io/podinfo", "chart": "podinfo", "version": "6.7.1",
                          "targetNamespace": infra, "valuesContent": "replicaCount: 1\n"}},
            ], "waits": [{"type": "helm_chart_installed", "namespace": "kube-system", "name": format!("podinfo-{}", self.suffix)}]}),
            json!({"name": "postgres", "dependsOn": ["namespaces"], "objects": [
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "postgres-credentials", "namespace": data},
                 "type": "Opaque", "stringData": {"password": self.db_password}},
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "postgres", "namespace": data, "labels": Self::labels("postgres")},
                 "spec": {"selector": {"app.kubernetes.io/name": "postgres"}, "ports": [{"name": "postgres", "port": 5432, "targetPort": 5432}]}},
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "postgres", "namespace": data, "labels": Self::labels("postgres")},
                 "spec": {"serviceName": "postgres", "replicas": 1,
                          "selector": {"matchLabels": {"app.kubernetes.io/name": "postgres"}},
                          "template": {"metadata": {"labels": Self::labels("postgres")},
                                       "spec": {"containers": [{"name": "postgres", "image": image,
                                                                "env": [{"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "postgres-credentials", "key": "password"}}}]}]}}}},
                {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "postgres-backups", "namespace": data},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
                {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "postgres-backup", "namespace": data},
                 "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                          "containers": [{"name": "backup", "image": image}]}}}}}},
            ], "waits": [{"type": "available", "kind": "StatefulSet", "namespace": data, "name": "postgres"}]}),
            json!({"name": "web", "dependsOn": ["cert-manager", "postgres"], "objects": [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-settings", "namespace": apps},
                 "data": {"greeting": self.greeting}},
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": apps, "labels": Self::labels("web")},
                 "spec": {"replicas": self.web_replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
                          "template": {"metadata": {"labels": Self::labels("web")},
                                       "spec": {"containers": [{"name": "web", "image": image}]}}}},
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": apps, "labels": Self::labels("web")},
                 "spec": {"type": "LoadBalancer", "selector": {"app.kubernetes.io/name": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
                {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "web-tls", "namespace": apps},
                 "spec": {"secretName": "web-tls", "dnsNames": ["web.lab.example"], "issuerRef": {"kind": "ClusterIssuer", "name": "letsencrypt"}}},
            ], "waits": [{"type": "available", "kind": "Deployment", "namespace": apps, "name": "web"}]}),
        ];
        units.retain(|u| !self.without.iter().any(|w| u["name"] == w.as_str()));
        json!({"applyset": self.applyset(), "fieldManager": "homelab", "units": units})
    }

    /// The status checks matching this plan (the shape of `homelab_kube::StatusChecks`).
    pub fn status_checks(&self, nodes: &[&str]) -> Value {
        json!({
            "nodes": nodes,
            "components": [
                {"name": "podinfo", "namespace": self.ns("infra"),
                 "helmCharts": [{"namespace": "kube-system", "name": format!("podinfo-{}", self.suffix)}]},
                {"name": "postgres", "namespace": self.ns("data"),
                 "workloads": [{"kind": "StatefulSet", "name": "postgres"}], "pvcs": ["postgres-backups"]},
                {"name": "web", "namespace": self.ns("apps"),
                 "workloads": [{"kind": "Deployment", "name": "web"}], "loadBalancers": ["web"],
                 "certificates": ["web-tls"]},
            ],
            "urls": [],
            "backups": [{"namespace": self.ns("data"), "cronjob": "postgres-backup", "maxAge": {"secs": 93600, "nanos": 0}}],
        })
    }
}

/// A plan and status checks the size of the seed lab (`shared/seeds`): 14 components in 8
/// namespaces with Helm charts, workloads, Services, PVCs, certificates and backup CronJobs.
/// Used by the benchmark; the objects are realistic in shape, not in every field.
pub fn seed_sized_lab() -> (Value, Value) {
    struct C {
        name: &'static str,
        ns: &'static str,
        chart: bool,
        workload: Option<&'static str>,
        pvc: bool,
        lb: bool,
        url: bool,
        backup: bool,
    }
    let components = [
        C {
            name: "metallb",
            ns: "infra",
            chart: true,
            workload: None,
            pvc: false,
            lb: false,
            url: false,
            backup: false,
        },
        C {
            name: "cert-manager",
            ns: "infra",
            chart: true,
            workload: None,
            pvc: false,
            lb: false,
            url: false,
            backup: false,
        },
        C {
            name: "nfs-provisioner",
            ns: "infra",
            chart: true,
            workload: None,
            pvc: false,
            lb: false,
            url: false,
            backup: false,
        },
        C {
            name: "traefik",
            ns: "kube-system",
            chart: false,
            workload: Some("Deployment"),
            pvc: false,
            lb: true,
            url: true,
            backup: false,
        },
        C {
            name: "prometheus",
            ns: "monitoring",
            chart: true,
            workload: Some("StatefulSet"),
            pvc: true,
            lb: false,
            url: true,
            backup: false,
        },
        C {
            name: "grafana",
            ns: "monitoring",
            chart: false,
            workload: Some("Deployment"),
            pvc: true,
            lb: false,
            url: true,
            backup: false,
        },
        C {
            name: "loki",
            ns: "monitoring",
            chart: true,
            workload: Some("StatefulSet"),
            pvc: true,
            lb: false,
            url: false,
            backup: false,
        },
        C {
            name: "alloy",
            ns: "monitoring",
            chart: true,
            workload: Some("DaemonSet"),
            pvc: false,
            lb: false,
            url: false,
            backup: false,
        },
        C {
            name: "postgres",
            ns: "data",
            chart: false,
            workload: Some("StatefulSet"),
            pvc: true,
            lb: false,
            url: false,
            backup: true,
        },
        C {
            name: "n8n",
            ns: "apps",
            chart: true,
            workload: Some("Deployment"),
            pvc: true,
            lb: false,
            url: true,
            backup: false,
        },
        C {
            name: "ollama",
            ns: "ml",
            chart: true,
            workload: Some("Deployment"),
            pvc: true,
            lb: false,
            url: true,
            backup: false,
        },
        C {
            name: "paperless",
            ns: "docs",
            chart: false,
            workload: Some("Deployment"),
            pvc: true,
            lb: false,
            url: true,
            backup: true,
        },
        C {
            name: "redis",
            ns: "docs",
            chart: false,
            workload: Some("Deployment"),
            pvc: false,
            lb: false,
            url: false,
            backup: false,
        },
        C {
            name: "dev-proxy",
            ns: "dev",
            chart: false,
            workload: Some("Deployment"),
            pvc: false,
            lb: true,
            url: true,
            backup: false,
        },
    ];
    let namespaces = [
        "homelab",
        "infra",
        "monitoring",
        "data",
        "apps",
        "ml",
        "docs",
        "dev",
    ];
    let mut units = vec![
        json!({"name": "namespaces", "objects": namespaces.iter().map(|n| json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": {"app.kubernetes.io/part-of": "homelab"}}})).collect::<Vec<_>>()}),
    ];
    units.push(json!({"name": "cert-manager-crds", "dependsOn": ["namespaces"], "objects": [{
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "certificates.cert-manager.io"},
        "spec": {"group": "cert-manager.io", "scope": "Namespaced", "names": {"kind": "Certificate", "plural": "certificates", "singular": "certificate"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}]}));
    let mut status_components = Vec::new();
    let mut urls = Vec::new();
    let mut backups = Vec::new();
    for c in &components {
        let labels =
            json!({"app.kubernetes.io/name": c.name, "app.kubernetes.io/managed-by": "homelab"});
        let mut objects = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("{}-config", c.name), "namespace": c.ns, "labels": labels},
                   "data": {"setting": "value", "component": c.name}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("{}-credentials", c.name), "namespace": c.ns, "labels": labels},
                   "type": "Opaque", "stringData": {"password": format!("{}-bench-password", c.name)}}),
        ];
        let mut waits = vec![];
        let mut check = json!({"name": c.name, "namespace": c.ns, "helmCharts": [], "workloads": [], "pvcs": [], "loadBalancers": [], "certificates": []});
        if c.chart {
            objects.push(json!({"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart", "metadata": {"name": c.name, "namespace": "kube-system", "labels": labels},
                "spec": {"repo": "https://charts.example.invalid", "chart": c.name, "version": "1.0.0", "targetNamespace": c.ns,
                         "valuesContent": format!("fullnameOverride: {}\n", c.name)}}));
            waits.push(
                json!({"type": "helm_chart_installed", "namespace": "kube-system", "name": c.name}),
            );
            check["helmCharts"] = json!([{"namespace": "kube-system", "name": c.name}]);
        }
        if let Some(kind) = c.workload {
            let template = json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": c.name, "image": "registry.k8s.io/pause:3.10"}]}});
            let mut spec = json!({"selector": {"matchLabels": {"app.kubernetes.io/name": c.name}}, "template": template});
            if kind != "DaemonSet" {
                spec["replicas"] = json!(1);
            }
            if kind == "StatefulSet" {
                spec["serviceName"] = json!(c.name);
            }
            objects.push(json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": c.name, "namespace": c.ns, "labels": labels}, "spec": spec}));
            objects.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": c.name, "namespace": c.ns, "labels": labels},
                "spec": {"type": if c.lb {"LoadBalancer"} else {"ClusterIP"}, "selector": {"app.kubernetes.io/name": c.name},
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}));
            waits.push(
                json!({"type": "available", "kind": kind, "namespace": c.ns, "name": c.name}),
            );
            check["workloads"] = json!([{"kind": kind, "name": c.name}]);
            if c.lb {
                check["loadBalancers"] = json!([c.name]);
            }
        }
        if c.pvc {
            objects.push(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": format!("{}-data", c.name), "namespace": c.ns},
                "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "nfs-client", "resources": {"requests": {"storage": "5Gi"}}}}));
            check["pvcs"] = json!([format!("{}-data", c.name)]);
        }
        if c.url {
            let host = format!("{}.lab.example", c.name);
            objects.push(json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": format!("{}-tls", c.name), "namespace": c.ns},
                "spec": {"secretName": format!("{}-tls", c.name), "dnsNames": [host], "issuerRef": {"kind": "ClusterIssuer", "name": "letsencrypt-production"}}}));
            objects.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": c.name, "namespace": c.ns, "labels": labels},
                "spec": {"tls": [{"hosts": [host], "secretName": format!("{}-tls", c.name)}],
                         "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": c.name, "port": {"number": 80}}}}]}}]}}));
            check["certificates"] = json!([format!("{}-tls", c.name)]);
            urls.push(json!({"url": format!("https://{host}/"), "host": host}));
        }
        if c.backup {
            objects.push(json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": format!("{}-backup", c.name), "namespace": c.ns},
                "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                         "containers": [{"name": "backup", "image": "registry.k8s.io/pause:3.10"}]}}}}}}));
            backups.push(json!({"namespace": c.ns, "cronjob": format!("{}-backup", c.name), "maxAge": {"secs": 93600, "nanos": 0}}));
        }
        let depends = if c.url {
            json!(["namespaces", "cert-manager-crds"])
        } else {
            json!(["namespaces"])
        };
        units.push(
            json!({"name": c.name, "dependsOn": depends, "objects": objects, "waits": waits}),
        );
        status_components.push(check);
    }
    let plan = json!({"applyset": {"name": "lab", "namespace": "homelab"}, "fieldManager": "homelab", "units": units});
    let checks = json!({"nodes": ["server-1", "agent-1", "agent-2"], "components": status_components, "urls": urls, "backups": backups});
    (plan, checks)
}

/// The checks of `homelab status` (`checks`: a `StatusChecks` as JSON) as a bash script that
/// does each of them with its own sequential `kubectl get` (the HelmChart, then its install Job)
/// and each URL with its own `curl`, as someone checking a lab by hand or with a shell script
/// would. It reads the kubeconfig path from `KUBECONFIG_FILE`; `URL_TARGET` (ADDRESS:PORT)
/// sends every URL there, as `homelab status --resolve '*=ADDRESS:PORT'` does, and `CA_FILE`
/// names the CA the URLs' certificates are checked against.
pub fn kubectl_status_script(checks: &Value) -> String {
    let list = |v: &Value, key: &str| v[key].as_array().cloned().unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut s = String::from(
        "#!/usr/bin/env bash\n# The checks of `homelab status`, one sequential kubectl or curl call each.\nset -u\nk() { kubectl --kubeconfig \"$KUBECONFIG_FILE\" \"$@\"; }\nk get --raw /version >/dev/null\nk get nodes -o json >/dev/null\n",
    );
    for c in list(checks, "components") {
        let ns = text(&c["namespace"]);
        for h in list(&c, "helmCharts") {
            s += &format!(
                "job=$(k -n {0} get helmcharts.helm.cattle.io {1} -o jsonpath='{{.status.jobName}}')\nk -n {0} get jobs.batch \"$job\" -o jsonpath='{{.status.succeeded}}' >/dev/null\n",
                text(&h["namespace"]),
                text(&h["name"])
            );
        }
        for w in list(&c, "workloads") {
            s += &format!(
                "k -n {ns} get {}s.apps {} -o jsonpath='{{.status}}' >/dev/null\n",
                text(&w["kind"]).to_lowercase(),
                text(&w["name"])
            );
        }
        for p in list(&c, "pvcs") {
            s += &format!(
                "k -n {ns} get persistentvolumeclaims {} -o jsonpath='{{.status.phase}}' >/dev/null\n",
                text(&p)
            );
        }
        for l in list(&c, "loadBalancers") {
            s += &format!(
                "k -n {ns} get services {} -o jsonpath='{{.status.loadBalancer.ingress}}' >/dev/null\n",
                text(&l)
            );
        }
        for crd in list(&c, "crds") {
            s += &format!(
                "k get customresourcedefinitions {} -o jsonpath='{{.status.conditions}}' >/dev/null\n",
                text(&crd)
            );
        }
        for cert in list(&c, "certificates") {
            s += &format!(
                "k -n {ns} get certificates.cert-manager.io {} -o jsonpath='{{.status}}' >/dev/null\n",
                text(&cert)
            );
        }
    }
    for u in list(checks, "urls") {
        s += &format!(
            "curl -sS -o /dev/null --max-time 10 ${{URL_TARGET:+--connect-to \"::$URL_TARGET\"}} ${{CA_FILE:+--cacert \"$CA_FILE\"}} '{}'\n",
            text(&u["url"])
        );
    }
    for b in list(checks, "backups") {
        s += &format!(
            "k -n {} get cronjobs.batch {} -o jsonpath='{{.status.lastSuccessfulTime}}' >/dev/null\n",
            text(&b["namespace"]),
            text(&b["cronjob"])
        );
    }
    for a in list(checks, "alerts") {
        s += &format!(
            "k get --raw '/api/v1/namespaces/{}/services/http:{}:{}/proxy/api/v1/rules?type=alert' >/dev/null\n",
            text(&a["namespace"]),
            text(&a["service"]),
            a["port"]
        );
    }
    s
}

/// How many `kubectl` and `curl` calls a script from [`kubectl_status_script`] makes.
pub fn script_calls(script: &str) -> usize {
    script
        .lines()
        .filter(|l| l.starts_with("k ") || l.starts_with("job=$(k ") || l.starts_with("curl "))
        .count()
}
