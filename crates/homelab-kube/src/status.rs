//! One round over the lab's health: nodes, components (HelmChart installed, workloads ready,
//! PVCs bound, LoadBalancer IPs, certificates, the root CA's expiry), HTTPS URLs and backup
//! CronJobs. Each kind is listed once cluster-wide (the root CA's Secret is read by name), all
//! lists and URL probes at the same moment, and every check is read from those lists. Every
//! problem says what to do. Read-only: must not write to the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connect::Cluster;
use crate::error::ApplyError;
use crate::events::{NoProgress, Progress};
use crate::model::WorkloadKind;
use crate::retry::{RetryPolicy, with_retry, with_retry_opt};
use crate::tls::{TlsCheckOptions, check_url, client_config};
use crate::wait::{
    Probe, api_resource, condition, conditions_summary, crd_resource, crd_state,
    helmchart_resource, job_resource, job_state, timestamp, workload_resource, workload_state,
};

/// A workload of a component (in the component's namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub name: String,
}

/// A `helm.cattle.io/v1` HelmChart (usually in `kube-system`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartRef {
    pub namespace: String,
    pub name: String,
}

/// What makes one component healthy. Names are in `namespace`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentCheck {
    pub name: String,
    pub namespace: String,
    #[serde(default)]
    pub helm_charts: Vec<HelmChartRef>,
    #[serde(default)]
    pub workloads: Vec<WorkloadRef>,
    /// PersistentVolumeClaims that must be Bound.
    #[serde(default)]
    pub pvcs: Vec<String>,
    /// Services of type LoadBalancer that must have an address.
    #[serde(default)]
    pub load_balancers: Vec<String>,
    /// The address a LoadBalancer Service of `load_balancers` must have (e.g. the ingress
    /// address DNS points at), by Service name.
    #[serde(default)]
    pub expected_addresses: BTreeMap<String, String>,
    /// CustomResourceDefinitions (cluster-scoped) that must be established.
    #[serde(default)]
    pub crds: Vec<String>,
    /// cert-manager `Certificate`s that must be Ready and not close to expiry.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// Secrets holding a CA certificate in `tls.crt` (the lab's own root) whose expiry is
    /// reported; each is read by name, never listed.
    #[serde(default)]
    pub ca_secrets: Vec<String>,
}

/// An HTTPS URL that must answer with a certificate valid for `host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlCheck {
    pub url: String,
    pub host: String,
}

/// A backup CronJob whose last successful run must be younger than `max_age`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupCheck {
    pub namespace: String,
    pub cronjob: String,
    pub max_age: Duration,
}

/// An alerting rule of the lab's Prometheus whose state `status` reports: read from
/// Prometheus' rules API through the Kubernetes API server's service proxy, so that what
/// node-exporter sees on the hosts (mounts, for one) needs no SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertCheck {
    /// Prometheus' Service and port (plain HTTP, inside the cluster).
    pub namespace: String,
    pub service: String,
    pub port: u16,
    /// The alerting rule's name.
    pub alert: String,
    /// The label of a pending or firing alert that names what it is about (e.g. `node`).
    pub subject_label: String,
    /// What holds while the rule has no pending or firing alert.
    pub healthy: String,
    /// What is wrong with each subject the rule fires (or is about to fire) for.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

/// Everything `status` checks, built by the CLI from the Plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChecks {
    /// Node names that must be present and Ready.
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default)]
    pub components: Vec<ComponentCheck>,
    #[serde(default)]
    pub urls: Vec<UrlCheck>,
    #[serde(default)]
    pub backups: Vec<BackupCheck>,
    #[serde(default)]
    pub alerts: Vec<AlertCheck>,
    /// The lab runs the GPU device plugin: report each node's GPUs (`nvidia.com/gpu`
    /// allocatable) and the pods that hold them; a node labelled `homelab/gpu` that offers
    /// none is a problem.
    #[serde(default)]
    pub gpus: bool,
}

/// The extended resource the NVIDIA device plugin offers.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// The label `nodes apply` puts on a GPU node.
pub const GPU_NODE_LABEL: &str = "homelab/gpu";

/// How `status` runs.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// URL probes in flight at once (the API lists all start together).
    pub concurrency: usize,
    /// Retries of every API request.
    pub retry: RetryPolicy,
    pub tls: TlsCheckOptions,
    /// A certificate with fewer days left is a problem.
    pub certificate_min_days: i64,
    /// A root CA with fewer days left is a problem: every device must trust its successor.
    pub ca_min_days: i64,
    /// The time to judge ages against (tests pin it); `None` is now.
    pub now: Option<Timestamp>,
}

impl Default for StatusOptions {
    fn default() -> Self {
        StatusOptions {
            concurrency: 16,
            retry: RetryPolicy::default(),
            tls: TlsCheckOptions::default(),
            certificate_min_days: 14,
            ca_min_days: 90,
            now: None,
        }
    }
}

/// Overall verdict; the CLI exits 0, 1 and 2 respectively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    Unhealthy,
    Unreachable,
}

/// One thing that is wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub subject: String,
    pub problem: String,
    pub fix: String,
}

/// One check of a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// e.g. `Deployment apps/n8n`.
    pub what: String,
    pub ok: bool,
    pub detail: String,
    /// Whole days until a certificate's end, for the checks of certificates (the dashboard's
    /// `/metrics` graphs them; the detail says the same in words).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
    /// The chart version the cluster's HelmChart asks for, for HelmChart checks (the
    /// dashboard shows it beside the pinned one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub name: String,
    pub present: bool,
    pub ready: bool,
    pub kubelet_version: String,
    /// Conditions such as `DiskPressure` that are True.
    pub pressure: Vec<String>,
    /// Its GPUs, when the lab has GPUs and the node offers or should offer some.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuUse>,
}

/// A node's GPUs and what holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuUse {
    /// `nvidia.com/gpu` the node offers (each GPU once per time-slice).
    pub allocatable: u64,
    /// How many of them running or pending pods on the node hold.
    pub in_use: u64,
    /// Those pods, as `namespace/name (N)`.
    pub pods: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    pub name: String,
    pub namespace: String,
    pub healthy: bool,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlStatus {
    pub url: String,
    pub host: String,
    pub ok: bool,
    pub tls_version: Option<String>,
    pub http_status: Option<u16>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    pub namespace: String,
    pub cronjob: String,
    pub ok: bool,
    pub last_success: Option<String>,
    pub age_seconds: Option<i64>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertStatus {
    pub alert: String,
    pub ok: bool,
    /// What holds, or what is wrong.
    pub detail: String,
    /// What the rule is pending or firing for (values of its subject label).
    pub failing: Vec<String>,
}

/// The result of `status`, ready for a table or `--output json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub health: Health,
    pub server: String,
    pub version: Option<String>,
    pub nodes: Vec<NodeStatus>,
    pub components: Vec<ComponentStatus>,
    pub urls: Vec<UrlStatus>,
    pub backups: Vec<BackupStatus>,
    pub alerts: Vec<AlertStatus>,
    pub problems: Vec<Problem>,
}

impl StatusReport {
    /// The report for a cluster that could not be reached at all.
    pub fn unreachable(server: &str, reason: &str) -> StatusReport {
        StatusReport {
            health: Health::Unreachable,
            server: server.to_string(),
            version: None,
            nodes: vec![],
            components: vec![],
            urls: vec![],
            backups: vec![],
            alerts: vec![],
            problems: vec![Problem {
                subject: format!("Kubernetes API {server}"),
                problem: format!("unreachable: {reason}"),
                fix: "check the cluster is running and the kubeconfig points at it (homelab kubeconfig, --kubeconfig or KUBECONFIG)".into(),
            }],
        }
    }
}

/// One kind listed cluster-wide (or, where that is forbidden, per namespace): the objects by
/// namespace and name, or why they could not be listed.
struct Listing {
    label: &'static str,
    /// Cluster-scoped objects are under `None`.
    by_namespace: BTreeMap<Option<String>, Result<BTreeMap<String, Value>, String>>,
    /// The list as a whole failed (also when a namespace is asked that was not listed).
    error: Option<String>,
    /// The API does not serve the kind (404 on the list), e.g. a CRD not installed yet.
    not_served: bool,
}

impl Listing {
    /// The object `namespace/name`: `Ok(None)` when it does not exist, `Err` when that could
    /// not be known.
    fn get(&self, namespace: Option<&str>, name: &str) -> Result<Option<&Value>, String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match self.by_namespace.get(&namespace.map(str::to_string)) {
            Some(Ok(objects)) => Ok(objects.get(name)),
            Some(Err(e)) => Err(e.clone()),
            None => Ok(None),
        }
    }

    /// "does not exist", saying why when the kind itself is missing.
    fn missing(&self) -> String {
        if self.not_served {
            format!(
                "does not exist (the cluster does not serve {} at all yet)",
                self.label
            )
        } else {
            "does not exist".to_string()
        }
    }
}

/// The kinds `status` reads, each listed once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Node,
    HelmChart,
    Job,
    Deployment,
    StatefulSet,
    DaemonSet,
    Pvc,
    Service,
    Crd,
    Certificate,
    CronJob,
    Pod,
}

impl Kind {
    fn resource(self) -> (ApiResource, &'static str) {
        match self {
            Kind::Node => (api_resource("", "v1", "Node", "nodes"), "Node"),
            Kind::HelmChart => (helmchart_resource(), "HelmChart.helm.cattle.io"),
            Kind::Job => (job_resource(), "Job.batch"),
            Kind::Deployment => (
                workload_resource(WorkloadKind::Deployment),
                "Deployment.apps",
            ),
            Kind::StatefulSet => (
                workload_resource(WorkloadKind::StatefulSet),
                "StatefulSet.apps",
            ),
            Kind::DaemonSet => (workload_resource(WorkloadKind::DaemonSet), "DaemonSet.apps"),
            Kind::Pvc => (
                api_resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
                "PersistentVolumeClaim",
            ),
            Kind::Service => (api_resource("", "v1", "Service", "services"), "Service"),
            Kind::Crd => (crd_resource(), "CustomResourceDefinition"),
            Kind::Certificate => (
                api_resource("cert-manager.io", "v1", "Certificate", "certificates"),
                "Certificate.cert-manager.io",
            ),
            Kind::CronJob => (
                api_resource("batch", "v1", "CronJob", "cronjobs"),
                "CronJob.batch",
            ),
            Kind::Pod => (api_resource("", "v1", "Pod", "pods"), "Pod"),
        }
    }

    fn cluster_scoped(self) -> bool {
        matches!(self, Kind::Node | Kind::Crd)
    }

    fn of_workload(kind: WorkloadKind) -> Kind {
        match kind {
            WorkloadKind::Deployment => Kind::Deployment,
            WorkloadKind::StatefulSet => Kind::StatefulSet,
            WorkloadKind::DaemonSet => Kind::DaemonSet,
        }
    }
}

/// Every kind the checks need, with the namespaces they look into (for the per-namespace
/// fallback when a cluster-wide list is forbidden).
fn kinds_needed(checks: &StatusChecks) -> BTreeMap<Kind, BTreeSet<String>> {
    let mut kinds: BTreeMap<Kind, BTreeSet<String>> = BTreeMap::new();
    kinds.entry(Kind::Node).or_default();
    for c in &checks.components {
        let mut need = |kind: Kind, ns: &str| {
            let entry = kinds.entry(kind).or_default();
            if !kind.cluster_scoped() {
                entry.insert(ns.to_string());
            }
        };
        for h in &c.helm_charts {
            need(Kind::HelmChart, &h.namespace);
            need(Kind::Job, &h.namespace);
        }
        for w in &c.workloads {
            need(Kind::of_workload(w.kind), &c.namespace);
        }
        if !c.pvcs.is_empty() {
            need(Kind::Pvc, &c.namespace);
        }
        if !c.load_balancers.is_empty() {
            need(Kind::Service, &c.namespace);
        }
        if !c.crds.is_empty() {
            need(Kind::Crd, "");
        }
        if !c.certificates.is_empty() {
            need(Kind::Certificate, &c.namespace);
        }
    }
    for b in &checks.backups {
        kinds
            .entry(Kind::CronJob)
            .or_default()
            .insert(b.namespace.clone());
    }
    if checks.gpus {
        kinds.entry(Kind::Pod).or_default();
    }
    kinds
}

fn api_error(e: &ApplyError) -> String {
    match e {
        ApplyError::Api {
            code: Some(c),
            message,
            ..
        } => format!("API error {c}: {message}"),
        ApplyError::Api { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn group_by_namespace(
    items: Vec<DynamicObject>,
) -> BTreeMap<Option<String>, BTreeMap<String, Value>> {
    let mut out: BTreeMap<Option<String>, BTreeMap<String, Value>> = BTreeMap::new();
    for item in items {
        let ns = item.metadata.namespace.clone();
        let name = item.metadata.name.clone().unwrap_or_default();
        out.entry(ns)
            .or_default()
            .insert(name, serde_json::to_value(item).unwrap_or_default());
    }
    out
}

/// Lists `kind` once, cluster-wide; when the kubeconfig's user may not do that (403), lists
/// it in each namespace the checks look into instead, all at once.
async fn list_kind(
    client: &Client,
    kind: Kind,
    namespaces: &BTreeSet<String>,
    retry: &RetryPolicy,
    progress: &dyn Progress,
) -> (Kind, Listing) {
    let (resource, label) = kind.resource();
    let mut listing = Listing {
        label,
        by_namespace: BTreeMap::new(),
        error: None,
        not_served: false,
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let params = ListParams::default();
    let what = format!("{label} in all namespaces");
    match with_retry(retry, progress, "list", &what, || api.list(&params)).await {
        Ok(list) => {
            for (ns, objects) in group_by_namespace(list.items) {
                listing.by_namespace.insert(ns, Ok(objects));
            }
        }
        Err(ApplyError::Api {
            code: Some(404), ..
        }) => listing.not_served = true,
        Err(ApplyError::Api {
            code: Some(403), ..
        }) if !kind.cluster_scoped() && !namespaces.is_empty() => {
            let per_namespace = futures::future::join_all(namespaces.iter().map(|ns| {
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
                let what = format!("{label} in namespace {ns}");
                async move {
                    let params = ListParams::default();
                    let got =
                        with_retry_opt(retry, progress, "list", &what, || api.list(&params)).await;
                    (ns.clone(), got)
                }
            }))
            .await;
            for (ns, got) in per_namespace {
                let entry = match got {
                    Ok(list) => Ok(list
                        .map(|l| {
                            group_by_namespace(l.items)
                                .into_values()
                                .flatten()
                                .collect()
                        })
                        .unwrap_or_default()),
                    Err(e) => Err(api_error(&e)),
                };
                listing.by_namespace.insert(Some(ns), entry);
            }
        }
        Err(e) => listing.error = Some(api_error(&e)),
    }
    (kind, listing)
}

impl Cluster {
    /// Checks everything in `checks` in one pass. Never fails: an unreachable API is a report
    /// with [`Health::Unreachable`]. See [`Cluster::status_with`].
    pub async fn status(&self, checks: &StatusChecks, options: &StatusOptions) -> StatusReport {
        self.status_with(checks, options, &NoProgress).await
    }

    /// Checks everything in `checks` in one round: `GET /version`, one list per kind the
    /// checks need (cluster-wide, all at once) and every URL probe start together (the probes'
    /// trusted certificates are loaded on a blocking thread meanwhile), and each
    /// check is then read from those lists. Passing API failures are retried under
    /// `options.retry` and reported to `progress`; when `/version` fails for good the report
    /// says unreachable without waiting for the rest.
    pub async fn status_with(
        &self,
        checks: &StatusChecks,
        options: &StatusOptions,
        progress: &dyn Progress,
    ) -> StatusReport {
        let now = options.now.unwrap_or_else(Timestamp::now);
        let client = self.client().clone();
        let needed = kinds_needed(checks);
        let lists = futures::future::join_all(needed.iter().map(|(kind, namespaces)| {
            list_kind(&client, *kind, namespaces, &options.retry, progress)
        }));
        // Loading the system's trusted certificates reads and parses a few hundred files: that
        // happens on a blocking thread while the lists are on their way, not before them.
        let tls_config = (!checks.urls.is_empty()).then(|| {
            let tls = options.tls.clone();
            tokio::task::spawn_blocking(move || client_config(&tls))
        });
        let urls = async {
            let Some(tls_config) = tls_config else {
                return Vec::new();
            };
            let tls_config = tls_config
                .await
                .unwrap_or_else(|e| Err(format!("the TLS configuration could not be built: {e}")));
            futures::stream::iter(checks.urls.iter().map(|url| {
                let tls_config = tls_config.clone();
                let tls = &options.tls;
                async move { url_status(url, tls_config, tls).await }
            }))
            .buffered(options.concurrency.max(1))
            .collect::<Vec<_>>()
            .await
        };
        let client_ref = &client;
        let ca_secrets = futures::future::join_all(checks.components.iter().flat_map(|c| {
            c.ca_secrets.iter().map(move |name| {
                let api: Api<Secret> = Api::namespaced(client_ref.clone(), &c.namespace);
                let what = format!("Secret {}/{name}", c.namespace);
                async move {
                    let got =
                        with_retry_opt(&options.retry, progress, "get", &what, || api.get(name))
                            .await;
                    (
                        (c.namespace.clone(), name.clone()),
                        got.map_err(|e| api_error(&e)),
                    )
                }
            })
        }));
        let alerts = read_alert_rules(&client, &checks.alerts, &options.retry, progress);
        let rest = futures::future::join4(lists, urls, alerts, ca_secrets);
        let version = self.ping_with(&options.retry, progress);
        let (version, (lists, urls, rules, ca_secrets)) =
            match futures::future::select(Box::pin(version), Box::pin(rest)).await {
                futures::future::Either::Left((version, rest)) => match version {
                    Ok(v) => (v, rest.await),
                    Err(e) => return unreachable_report(self.server(), e),
                },
                futures::future::Either::Right((rest, version)) => match version.await {
                    Ok(v) => (v, rest),
                    Err(e) => return unreachable_report(self.server(), e),
                },
            };
        let lists: BTreeMap<Kind, Listing> = lists.into_iter().collect();
        let ca_secrets: BTreeMap<(String, String), Result<Option<Secret>, String>> =
            ca_secrets.into_iter().collect();
        let listing = |kind: Kind| lists.get(&kind).expect("every needed kind was listed");

        let nodes_listing = listing(Kind::Node);
        let node_items = match &nodes_listing.error {
            Some(e) => Err(e.clone()),
            None => Ok(nodes_listing
                .by_namespace
                .values()
                .flat_map(|r| r.iter().flat_map(|m| m.values().cloned()))
                .collect()),
        };
        let (mut nodes, mut problems) = node_statuses(&checks.nodes, node_items.clone());
        if checks.gpus
            && let Ok(node_items) = &node_items
        {
            let pods = listing(Kind::Pod);
            let pod_items = match &pods.error {
                Some(e) => Err(e.clone()),
                None => Ok(pods
                    .by_namespace
                    .values()
                    .flat_map(|r| r.iter().flat_map(|m| m.values().cloned()))
                    .collect::<Vec<Value>>()),
            };
            problems.extend(gpu_uses(&mut nodes, node_items, pod_items));
        }

        let mut components = Vec::new();
        for c in &checks.components {
            let mut results: Vec<(Check, Option<Problem>)> = Vec::new();
            for chart in &c.helm_charts {
                results.push(helm_chart_check(
                    listing(Kind::HelmChart),
                    listing(Kind::Job),
                    chart,
                ));
            }
            for w in &c.workloads {
                results.push(workload_check(
                    listing(Kind::of_workload(w.kind)),
                    &c.namespace,
                    w,
                ));
            }
            for pvc in &c.pvcs {
                results.push(pvc_check(listing(Kind::Pvc), &c.namespace, pvc));
            }
            for svc in &c.load_balancers {
                results.push(load_balancer_check(
                    listing(Kind::Service),
                    &c.namespace,
                    svc,
                    c.expected_addresses.get(svc).map(String::as_str),
                ));
            }
            for crd in &c.crds {
                results.push(crd_check(listing(Kind::Crd), crd));
            }
            for cert in &c.certificates {
                results.push(certificate_check(
                    listing(Kind::Certificate),
                    &c.namespace,
                    cert,
                    now,
                    options.certificate_min_days,
                ));
            }
            for name in &c.ca_secrets {
                let got = ca_secrets
                    .get(&(c.namespace.clone(), name.clone()))
                    .cloned()
                    .unwrap_or(Ok(None));
                results.push(ca_secret_check(
                    &c.namespace,
                    name,
                    got,
                    now,
                    options.ca_min_days,
                ));
            }
            let checks: Vec<Check> = results
                .into_iter()
                .map(|(check, problem)| {
                    problems.extend(problem);
                    check
                })
                .collect();
            components.push(ComponentStatus {
                name: c.name.clone(),
                namespace: c.namespace.clone(),
                healthy: checks.iter().all(|c| c.ok),
                checks,
            });
        }
        let urls: Vec<UrlStatus> = urls
            .into_iter()
            .map(|(status, problem)| {
                problems.extend(problem);
                status
            })
            .collect();
        let backups: Vec<BackupStatus> = checks
            .backups
            .iter()
            .map(|b| {
                let (status, problem) = backup_status(listing(Kind::CronJob), b, now);
                problems.extend(problem);
                status
            })
            .collect();
        let alerts: Vec<AlertStatus> = checks
            .alerts
            .iter()
            .map(|a| {
                let (status, problem) = alert_status(a, &rules);
                problems.extend(problem);
                status
            })
            .collect();
        StatusReport {
            health: if problems.is_empty() {
                Health::Healthy
            } else {
                Health::Unhealthy
            },
            server: self.server().to_string(),
            version: Some(version),
            nodes,
            components,
            urls,
            backups,
            alerts,
            problems,
        }
    }
}

/// Prometheus' answer to `GET /api/v1/rules?type=alert`, by Service (`namespace`, `service`,
/// `port`), or why it could not be had.
type RuleAnswers = BTreeMap<(String, String, u16), Result<Value, String>>;

/// The API server's proxy path to `path` of a Service's plain-HTTP port.
fn service_proxy_path(namespace: &str, service: &str, port: u16, path: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/services/http:{service}:{port}/proxy{path}")
}

/// Reads the alerting rules of every Prometheus the checks name, once each, all at once.
/// Only a dropped connection is tried again: a proxy error (no ready Prometheus pod) is the
/// answer, and the component checks say why.
async fn read_alert_rules(
    client: &Client,
    checks: &[AlertCheck],
    retry: &RetryPolicy,
    progress: &dyn Progress,
) -> RuleAnswers {
    let services: BTreeSet<(String, String, u16)> = checks
        .iter()
        .map(|a| (a.namespace.clone(), a.service.clone(), a.port))
        .collect();
    let answers = futures::future::join_all(services.into_iter().map(|key| async move {
        let path = service_proxy_path(&key.0, &key.1, key.2, "/api/v1/rules?type=alert");
        let what = format!("alerting rules of Prometheus {}/{}", key.0, key.1);
        let got = crate::retry::with_retry_if(
            retry,
            progress,
            "read",
            &what,
            |e| crate::retry::transport_failure(e).is_some(),
            || {
                let request = http::Request::get(path.as_str())
                    .body(Vec::new())
                    .expect("a GET with a path is a valid request");
                client.request_text(request)
            },
        )
        .await;
        let answer = match got {
            Ok(text) => serde_json::from_str::<Value>(&text)
                .map_err(|e| format!("Prometheus answered something that is not JSON ({e})")),
            Err(e) => Err(api_error(&e)),
        };
        (key, answer)
    }))
    .await;
    answers.into_iter().collect()
}

/// The state of one alerting rule, from its Prometheus' answer.
fn alert_status(check: &AlertCheck, answers: &RuleAnswers) -> (AlertStatus, Option<Problem>) {
    let subject = format!("alert {}", check.alert);
    let failed = |detail: String, fix: String| {
        (
            AlertStatus {
                alert: check.alert.clone(),
                ok: false,
                detail: detail.clone(),
                failing: vec![],
            },
            Some(Problem {
                subject: subject.clone(),
                problem: detail,
                fix,
            }),
        )
    };
    let key = (check.namespace.clone(), check.service.clone(), check.port);
    let asked = answers
        .get(&key)
        .cloned()
        .unwrap_or_else(|| Err("it was not asked".into()));
    let answer = match &asked {
        Ok(answer) => answer,
        Err(e) => {
            return failed(
                format!(
                    "unknown: Prometheus ({}/{}) could not be asked through the API server: {e}",
                    check.namespace, check.service
                ),
                format!(
                    "see the prometheus component above; once its pod is ready, `homelab status` asks again (or look at {} in Prometheus)",
                    check.alert
                ),
            );
        }
    };
    let rule = answer["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .find(|r| r["name"] == check.alert.as_str() && r["type"] == "alerting");
    let Some(rule) = rule else {
        return failed(
            format!(
                "unknown: Prometheus ({}/{}) has no alerting rule {}",
                check.namespace, check.service, check.alert
            ),
            "run `homelab apply` so that the lab's PrometheusRules are in the cluster, then give the Prometheus operator a minute to load them".into(),
        );
    };
    if rule["health"].as_str().is_some_and(|h| h != "ok") {
        return failed(
            format!(
                "unknown: Prometheus cannot evaluate {}: {}",
                check.alert,
                rule["lastError"].as_str().unwrap_or("no error given")
            ),
            "look at the rule's error in Prometheus (Status > Rules)".into(),
        );
    }
    let failing: Vec<String> = rule["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| matches!(a["state"].as_str(), Some("pending" | "firing")))
        .map(|a| {
            a["labels"][check.subject_label.as_str()]
                .as_str()
                .unwrap_or("(unlabelled)")
                .to_string()
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if failing.is_empty() {
        return (
            AlertStatus {
                alert: check.alert.clone(),
                ok: true,
                detail: check.healthy.clone(),
                failing,
            },
            None,
        );
    }
    let detail = format!("{} on {}", check.problem, failing.join(", "));
    (
        AlertStatus {
            alert: check.alert.clone(),
            ok: false,
            detail: detail.clone(),
            failing,
        },
        Some(Problem {
            subject,
            problem: detail,
            fix: check.fix.clone(),
        }),
    )
}

fn unreachable_report(server: &str, e: crate::ConnectError) -> StatusReport {
    match e {
        crate::ConnectError::Unreachable { server, reason } => {
            StatusReport::unreachable(&server, &reason)
        }
        other => StatusReport::unreachable(server, &other.to_string()),
    }
}

async fn url_status(
    url: &UrlCheck,
    tls_config: Result<std::sync::Arc<rustls::ClientConfig>, String>,
    tls: &TlsCheckOptions,
) -> (UrlStatus, Option<Problem>) {
    let probe = match tls_config {
        Ok(cfg) => check_url(&url.url, &url.host, cfg, tls).await,
        Err(e) => crate::tls::UrlProbe {
            tls_version: None,
            http_status: None,
            error: Some(e),
        },
    };
    let ok = probe.error.is_none() && probe.http_status.is_some_and(|s| s < 500);
    let problem = (!ok).then(|| Problem {
        subject: url.url.clone(),
        problem: match (&probe.error, probe.http_status) {
            (Some(e), _) => e.clone(),
            (None, Some(s)) => format!("answered HTTP {s}"),
            (None, None) => "no answer".into(),
        },
        fix: format!(
            "check DNS for {} points at the ingress address, Traefik and the service behind it are running, and its certificate covers {}",
            url.host, url.host
        ),
    });
    (
        UrlStatus {
            url: url.url.clone(),
            host: url.host.clone(),
            ok,
            tls_version: probe.tls_version,
            http_status: probe.http_status,
            error: probe.error,
        },
        problem,
    )
}

fn node_statuses(
    expected: &[String],
    result: Result<Vec<Value>, String>,
) -> (Vec<NodeStatus>, Vec<Problem>) {
    let mut problems = Vec::new();
    let items = match result {
        Ok(items) => items,
        Err(e) => {
            problems.push(Problem {
                subject: "nodes".into(),
                problem: format!("cannot list nodes: {e}"),
                fix: "check the kubeconfig's user may list nodes (cluster-admin)".into(),
            });
            return (vec![], problems);
        }
    };
    let mut statuses = Vec::new();
    for item in &items {
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let ready = condition(item, "Ready")
            .and_then(|c| c.get("status"))
            .and_then(Value::as_str)
            == Some("True");
        let pressure: Vec<String> = ["MemoryPressure", "DiskPressure", "PIDPressure"]
            .iter()
            .filter(|kind| {
                condition(item, kind)
                    .and_then(|c| c.get("status"))
                    .and_then(Value::as_str)
                    == Some("True")
            })
            .map(|s| s.to_string())
            .collect();
        if !ready {
            problems.push(Problem {
                subject: format!("node {name}"),
                problem: format!("not Ready ({})", conditions_summary(item)),
                fix: format!("check k3s on {name}: `systemctl status k3s` (or k3s-agent) and `journalctl -u k3s -n 100`"),
            });
        }
        for p in &pressure {
            problems.push(Problem {
                subject: format!("node {name}"),
                problem: format!("{p} is True"),
                fix: format!("free memory or disk on {name}, or move workloads off it"),
            });
        }
        statuses.push(NodeStatus {
            name,
            present: true,
            ready,
            kubelet_version: item
                .pointer("/status/nodeInfo/kubeletVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            pressure,
            gpu: None,
        });
    }
    for want in expected {
        if !statuses.iter().any(|s| &s.name == want) {
            problems.push(Problem {
                subject: format!("node {want}"),
                problem: "not in the cluster".into(),
                fix: format!(
                    "join {want} to the cluster (check the k3s agent on it can reach the server)"
                ),
            });
            statuses.push(NodeStatus {
                name: want.clone(),
                present: false,
                ready: false,
                kubelet_version: String::new(),
                pressure: vec![],
                gpu: None,
            });
        }
    }
    (statuses, problems)
}

/// Fills in each node's GPUs: what it offers and which pods on it hold some. A node with the
/// GPU label that offers none means the device plugin is not running there (or found no GPU).
fn gpu_uses(
    nodes: &mut [NodeStatus],
    node_items: &[Value],
    pods: Result<Vec<Value>, String>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let pods = match pods {
        Ok(pods) => pods,
        Err(e) => {
            problems.push(Problem {
                subject: "GPUs".into(),
                problem: format!("cannot list pods to see what holds the GPUs: {e}"),
                fix: "check the kubeconfig's user may list pods in all namespaces".into(),
            });
            Vec::new()
        }
    };
    for item in node_items {
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let labelled = item
            .pointer("/metadata/labels")
            .and_then(|l| l.get(GPU_NODE_LABEL))
            .is_some();
        let allocatable = item
            .pointer("/status/allocatable")
            .and_then(|a| a.get(GPU_RESOURCE))
            .and_then(quantity_count)
            .unwrap_or(0);
        if !labelled && allocatable == 0 {
            continue;
        }
        let mut use_ = GpuUse {
            allocatable,
            in_use: 0,
            pods: Vec::new(),
        };
        for pod in &pods {
            if pod.pointer("/spec/nodeName").and_then(Value::as_str) != Some(name) {
                continue;
            }
            if matches!(
                pod.pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            ) {
                continue;
            }
            let held = pod_gpus(pod);
            if held > 0 {
                use_.in_use += held;
                use_.pods.push(format!(
                    "{}/{} ({held})",
                    pod.pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    pod.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                ));
            }
        }
        use_.pods.sort();
        if labelled && allocatable == 0 {
            problems.push(Problem {
                subject: format!("node {name}"),
                problem: format!("offers no {GPU_RESOURCE}: GPU pods stay Pending"),
                fix: format!(
                    "check the nvidia-device-plugin pod on {name} (`kubectl -n kube-system get pods -o wide | grep nvidia`) and the driver (`nvidia-smi` on {name})"
                ),
            });
        }
        if let Some(n) = nodes.iter_mut().find(|n| n.name == name) {
            n.gpu = Some(use_);
        }
    }
    problems
}

/// The GPUs a pod holds: its containers' `nvidia.com/gpu` limits (an extended resource is
/// requested as much as it is limited), or the largest of its init containers' when more.
fn pod_gpus(pod: &Value) -> u64 {
    let of = |path: &str| -> Vec<u64> {
        pod.pointer(path)
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        let r = |kind: &str| {
                            c.pointer(&format!("/resources/{kind}"))
                                .and_then(|l| l.get(GPU_RESOURCE))
                                .and_then(quantity_count)
                        };
                        r("limits").or_else(|| r("requests")).unwrap_or(0)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let main: u64 = of("/spec/containers").iter().sum();
    let init = of("/spec/initContainers").into_iter().max().unwrap_or(0);
    main.max(init)
}

/// A whole-number quantity (`"2"` or `2`), as extended resources are counted.
fn quantity_count(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// A check from a lookup: `judge` says what the object's state means (`Ok` detail or `Err`
/// problem); a missing object and a failed list are problems too.
fn judged(
    what: String,
    fix: String,
    listing: &Listing,
    found: Result<Option<&Value>, String>,
    judge: impl FnOnce(&Value) -> Result<String, String>,
) -> (Check, Option<Problem>) {
    let verdict = match found {
        Ok(Some(v)) => judge(v),
        Ok(None) => Err(listing.missing()),
        Err(e) => Err(e),
    };
    match verdict {
        Ok(detail) => (
            Check {
                what,
                ok: true,
                detail,
                days_left: None,
                version: None,
            },
            None,
        ),
        Err(problem) => (
            Check {
                what: what.clone(),
                ok: false,
                detail: problem.clone(),
                days_left: None,
                version: None,
            },
            Some(Problem {
                subject: what,
                problem,
                fix,
            }),
        ),
    }
}

fn workload_check(listing: &Listing, ns: &str, w: &WorkloadRef) -> (Check, Option<Problem>) {
    let what = format!("{} {ns}/{}", w.kind, w.name);
    let lower = w.kind.to_string().to_lowercase();
    let fix = format!(
        "see `kubectl -n {ns} describe {lower}/{}` and `kubectl -n {ns} logs {lower}/{}`",
        w.name, w.name
    );
    judged(
        what,
        fix,
        listing,
        listing.get(Some(ns), &w.name),
        |v| match workload_state(w.kind, v) {
            Probe::Ready => Ok("ready".to_string()),
            Probe::Pending(s) | Probe::Failed(s) => Err(format!("not ready: {s}")),
        },
    )
}

fn pvc_check(listing: &Listing, ns: &str, name: &str) -> (Check, Option<Problem>) {
    let what = format!("PersistentVolumeClaim {ns}/{name}");
    let fix = format!(
        "see `kubectl -n {ns} describe pvc/{name}`; check the NFS provisioner is running and its StorageClass exists"
    );
    judged(what, fix, listing, listing.get(Some(ns), name), |v| match v
        .pointer("/status/phase")
        .and_then(Value::as_str)
    {
        Some("Bound") => Ok("Bound".to_string()),
        other => Err(format!("not bound (phase {})", other.unwrap_or("unknown"))),
    })
}

fn crd_check(listing: &Listing, name: &str) -> (Check, Option<Problem>) {
    let what = format!("CustomResourceDefinition {name}");
    let fix = format!(
        "see `kubectl describe crd/{name}`; it is installed by its component's chart, so check that chart's HelmChart and install job"
    );
    judged(
        what,
        fix,
        listing,
        listing.get(None, name),
        |v| match crd_state(v) {
            Probe::Ready => Ok("established".to_string()),
            Probe::Pending(s) | Probe::Failed(s) => Err(format!("not established: {s}")),
        },
    )
}

fn load_balancer_check(
    listing: &Listing,
    ns: &str,
    name: &str,
    expected: Option<&str>,
) -> (Check, Option<Problem>) {
    let what = format!("Service {ns}/{name}");
    let mut fix = "check MetalLB is running and its IPAddressPool has a free address: `kubectl -n infra get ipaddresspools,l2advertisements`".to_string();
    if let Some(want) = expected {
        fix = format!(
            "{fix}; the Service asks for {want} with the annotation metallb.io/loadBalancerIPs, which must lie in the pool and not be taken by another Service"
        );
    }
    judged(what, fix, listing, listing.get(Some(ns), name), |v| {
        let addresses: Vec<String> = v
            .pointer("/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .map(|ingress| {
                ingress
                    .iter()
                    .filter_map(|i| {
                        i.get("ip")
                            .or_else(|| i.get("hostname"))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        match expected {
            _ if addresses.is_empty() => Err("no LoadBalancer address assigned".to_string()),
            Some(want) if !addresses.iter().any(|a| a == want) => Err(format!(
                "has address {} instead of {want}",
                addresses.join(", ")
            )),
            _ => Ok(format!("address {}", addresses.join(", "))),
        }
    })
}

fn certificate_check(
    listing: &Listing,
    ns: &str,
    name: &str,
    now: Timestamp,
    min_days: i64,
) -> (Check, Option<Problem>) {
    let what = format!("Certificate {ns}/{name}");
    let fix = format!(
        "see `kubectl -n {ns} describe certificate/{name}` and its CertificateRequest/Order; check the ClusterIssuer's DNS-01 credentials"
    );
    let found = listing.get(Some(ns), name);
    let days_left = found
        .as_ref()
        .ok()
        .and_then(|v| v.as_ref())
        .and_then(|v| timestamp(v, "/status/notAfter"))
        .map(|t| (t.as_second() - now.as_second()).div_euclid(86_400));
    let (mut check, problem) = judged(what, fix, listing, found, |v| {
        let ready = condition(v, "Ready")
            .and_then(|c| c.get("status"))
            .and_then(Value::as_str)
            == Some("True");
        let days = timestamp(v, "/status/notAfter")
            .map(|t| (t.as_second() - now.as_second()).div_euclid(86_400));
        match (ready, days) {
            (false, _) => Err(format!("not ready: {}", conditions_summary(v))),
            (true, Some(d)) if d < min_days => Err(format!(
                "expires in {d} days (renewal should have happened)"
            )),
            (true, Some(d)) => Ok(format!("ready, expires in {d} days")),
            (true, None) => Ok("ready".to_string()),
        }
    });
    check.days_left = days_left;
    (check, problem)
}

/// The root CA in a Secret's `tls.crt`: readable, a CA, and far enough from its end that every
/// device can be given its successor in time. Only `tls.crt` is looked at.
fn ca_secret_check(
    ns: &str,
    name: &str,
    got: Result<Option<Secret>, String>,
    now: Timestamp,
    min_days: i64,
) -> (Check, Option<Problem>) {
    let what = format!("root CA Secret {ns}/{name}");
    let mut days_left = None;
    let verdict = got.and_then(|secret| {
        let secret =
            secret.ok_or("does not exist: `homelab apply` creates it from the secrets file")?;
        let pem = secret
            .data
            .as_ref()
            .and_then(|d| d.get("tls.crt"))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .ok_or("has no `tls.crt`")?;
        let info = crate::x509::certificate_info(&pem).map_err(|e| format!("`tls.crt` is {e}"))?;
        if !info.is_ca {
            return Err("`tls.crt` is not a CA certificate".to_string());
        }
        let days = (info.not_after.as_second() - now.as_second()).div_euclid(86_400);
        days_left = Some(days);
        let subject = info.common_name.as_deref().unwrap_or("(no common name)");
        if days < 0 {
            Err(format!("`{subject}` expired on {}", info.not_after))
        } else if days < min_days {
            Err(format!(
                "`{subject}` expires on {} (in {days} days)",
                info.not_after
            ))
        } else {
            Ok(format!(
                "`{subject}` valid until {} (in {days} days), SHA-256 {}",
                info.not_after, info.sha256
            ))
        }
    });
    let fix = format!(
        "before it ends: `homelab secrets rotate internal-ca-key`, `homelab apply`, then trust the new root on every device (`homelab tls ca`; docs/runbooks/ca-not-trusted.md); a missing or damaged Secret {ns}/{name} comes back with `homelab apply`"
    );
    match verdict {
        Ok(detail) => (
            Check {
                what,
                ok: true,
                detail,
                days_left,
                version: None,
            },
            None,
        ),
        Err(problem) => (
            Check {
                what: what.clone(),
                ok: false,
                detail: problem.clone(),
                days_left,
                version: None,
            },
            Some(Problem {
                subject: what,
                problem,
                fix,
            }),
        ),
    }
}

fn helm_chart_check(
    charts: &Listing,
    jobs: &Listing,
    chart: &HelmChartRef,
) -> (Check, Option<Problem>) {
    let ns = chart.namespace.as_str();
    let what = format!("HelmChart {ns}/{}", chart.name);
    let found = charts.get(Some(ns), &chart.name);
    let job_name = found
        .as_ref()
        .ok()
        .and_then(|c| c.as_ref())
        .and_then(|c| c.pointer("/status/jobName"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let fix = match &job_name {
        Some(job) => format!("see `kubectl -n {ns} logs job/{job}`"),
        None => format!("see `kubectl -n {ns} describe helmchart/{}`", chart.name),
    };
    let version = found
        .as_ref()
        .ok()
        .and_then(|c| c.as_ref())
        .and_then(|c| c.pointer("/spec/version"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let (mut check, problem) = judged(what, fix, charts, found, |_| {
        let Some(job_name) = &job_name else {
            return Err("helm-controller has not run an install job".to_string());
        };
        match jobs.get(Some(ns), job_name)? {
            Some(job) => match job_state(job) {
                Probe::Ready => Ok("installed".to_string()),
                Probe::Pending(s) => Err(format!("install job {job_name} not finished: {s}")),
                Probe::Failed(s) => Err(format!("install job {job_name}: {s}")),
            },
            None => Err(format!("install job {job_name} does not exist")),
        }
    });
    check.version = version;
    (check, problem)
}

fn backup_status(
    listing: &Listing,
    backup: &BackupCheck,
    now: Timestamp,
) -> (BackupStatus, Option<Problem>) {
    let ns = &backup.namespace;
    let name = &backup.cronjob;
    let mut status = BackupStatus {
        namespace: ns.clone(),
        cronjob: name.clone(),
        ok: false,
        last_success: None,
        age_seconds: None,
        detail: String::new(),
    };
    match listing.get(Some(ns), name) {
        Ok(Some(v)) => {
            if let Some(t) = timestamp(v, "/status/lastSuccessfulTime") {
                let age = now.as_second() - t.as_second();
                status.last_success = Some(t.to_string());
                status.age_seconds = Some(age);
                status.ok = age <= backup.max_age.as_secs() as i64;
                status.detail = format!("last success {} ago", human_age(age));
                if !status.ok {
                    status.detail.push_str(&format!(
                        " (older than {})",
                        human_age(backup.max_age.as_secs() as i64)
                    ));
                }
            } else {
                status.detail = "never succeeded".into();
            }
            if v.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
                status.ok = false;
                status.detail.push_str("; the CronJob is suspended");
            }
        }
        Ok(None) => status.detail = "the CronJob does not exist".into(),
        Err(e) => status.detail = e,
    }
    let problem = (!status.ok).then(|| Problem {
        subject: format!("backup CronJob {ns}/{name}"),
        problem: status.detail.clone(),
        fix: format!(
            "see `kubectl -n {ns} get jobs` and the last job's logs; run one now with `kubectl -n {ns} create job --from=cronjob/{name} {name}-manual`"
        ),
    });
    (status, problem)
}

fn human_age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gpu_pod(ns: &str, name: &str, node: &str, phase: &str, gpus: Value) -> Value {
        json!({"metadata": {"namespace": ns, "name": name},
               "spec": {"nodeName": node, "containers": [
                   {"name": "main", "resources": {"limits": {"nvidia.com/gpu": gpus}}},
                   {"name": "sidecar", "resources": {"limits": {"cpu": "1"}}}]},
               "status": {"phase": phase}})
    }

    #[test]
    fn gpu_nodes_show_what_they_offer_and_which_pods_hold_it() {
        let node = |name: &str, labelled: bool, gpus: Option<&str>| {
            let mut n = json!({"metadata": {"name": name, "labels": {}},
                               "status": {"allocatable": {"cpu": "8"}}});
            if labelled {
                n["metadata"]["labels"]["homelab/gpu"] = json!("nvidia");
            }
            if let Some(g) = gpus {
                n["status"]["allocatable"]["nvidia.com/gpu"] = json!(g);
            }
            n
        };
        let items = vec![
            node("gpu1", true, Some("4")),
            node("gpu2", true, None),
            node("cpu1", false, None),
        ];
        let (mut nodes, _) = node_statuses(&[], Ok(items.clone()));
        let pods = vec![
            gpu_pod("ml", "ollama-0", "gpu1", "Running", json!("1")),
            gpu_pod("ml", "vllm-1", "gpu1", "Pending", json!(2)),
            gpu_pod("ml", "done", "gpu1", "Succeeded", json!("1")),
            gpu_pod("web", "plain", "gpu1", "Running", json!("0")),
            gpu_pod("ml", "elsewhere", "cpu1", "Running", json!("1")),
        ];
        let problems = gpu_uses(&mut nodes, &items, Ok(pods));
        let of = |n: &str| nodes.iter().find(|s| s.name == n).unwrap().gpu.clone();
        assert_eq!(
            of("gpu1"),
            Some(GpuUse {
                allocatable: 4,
                in_use: 3,
                pods: vec!["ml/ollama-0 (1)".into(), "ml/vllm-1 (2)".into()],
            })
        );
        assert_eq!(
            of("gpu2"),
            Some(GpuUse {
                allocatable: 0,
                in_use: 0,
                pods: vec![]
            })
        );
        assert_eq!(of("cpu1"), None, "a node without GPUs has no GPU column");
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].subject, "node gpu2");
        assert!(problems[0].problem.contains("offers no nvidia.com/gpu"));
        assert!(problems[0].fix.contains("nvidia-smi"));

        let (mut nodes, _) = node_statuses(&[], Ok(items.clone()));
        let problems = gpu_uses(&mut nodes, &items, Err("403 forbidden".into()));
        assert!(
            problems
                .iter()
                .any(|p| p.subject == "GPUs" && p.problem.contains("403 forbidden")),
            "{problems:#?}"
        );
        assert_eq!(nodes[0].gpu.as_ref().unwrap().allocatable, 4);
    }

    #[test]
    fn nodes_missing_unready_or_under_pressure_are_problems() {
        let items = vec![
            json!({"metadata": {"name": "server-1"}, "status": {"nodeInfo": {"kubeletVersion": "v1.34.1+k3s1"},
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "True"}]}}),
            json!({"metadata": {"name": "agent-1"}, "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]}}),
        ];
        let (nodes, problems) = node_statuses(
            &["server-1".into(), "agent-1".into(), "agent-2".into()],
            Ok(items),
        );
        assert_eq!(nodes.len(), 3);
        assert!(nodes[0].ready && nodes[0].pressure == ["DiskPressure"]);
        assert_eq!(nodes[0].kubelet_version, "v1.34.1+k3s1");
        assert!(!nodes[2].present);
        let subjects: Vec<&str> = problems.iter().map(|p| p.subject.as_str()).collect();
        assert_eq!(subjects, ["node server-1", "node agent-1", "node agent-2"]);
        assert!(problems.iter().all(|p| !p.fix.is_empty()));
    }

    #[test]
    fn ages_read_like_a_person_writes_them() {
        assert_eq!(human_age(30), "30s");
        assert_eq!(human_age(600), "10m");
        assert_eq!(human_age(30_000), "8h");
        assert_eq!(human_age(400_000), "4d");
    }
}
