//! One concurrent pass over the lab's health: nodes, components (HelmChart installed,
//! workloads ready, PVCs bound, LoadBalancer IPs, certificates), HTTPS URLs and backup
//! CronJobs. Every problem says what to do. Read-only: must not write to the cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connect::Cluster;
use crate::model::WorkloadKind;
use crate::retry::message_of;
use crate::tls::{TlsCheckOptions, check_url, client_config};
use crate::wait::{
    Probe, api_resource, condition, conditions_summary, crd_resource, crd_state, get_json,
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
}

/// How `status` runs.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// Checks in flight at once.
    pub concurrency: usize,
    pub tls: TlsCheckOptions,
    /// A certificate with fewer days left is a problem.
    pub certificate_min_days: i64,
    /// The time to judge ages against (tests pin it); `None` is now.
    pub now: Option<Timestamp>,
}

impl Default for StatusOptions {
    fn default() -> Self {
        StatusOptions {
            concurrency: 16,
            tls: TlsCheckOptions::default(),
            certificate_min_days: 14,
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
            problems: vec![Problem {
                subject: format!("Kubernetes API {server}"),
                problem: format!("unreachable: {reason}"),
                fix: "check the cluster is running and the kubeconfig points at it (homelab kubeconfig, --kubeconfig or KUBECONFIG)".into(),
            }],
        }
    }
}

/// The result of one concurrent task, put back in place after the pass.
enum Outcome {
    Nodes(Result<Vec<Value>, String>),
    Component(usize, usize, Check, Option<Problem>),
    Url(usize, UrlStatus, Option<Problem>),
    Backup(usize, BackupStatus, Option<Problem>),
}

fn api_error(e: &kube::Error) -> String {
    let (code, message) = message_of(e);
    match code {
        Some(c) => format!("API error {c}: {message}"),
        None => message,
    }
}

impl Cluster {
    /// Checks everything in `checks` in one pass with at most `options.concurrency` requests
    /// in flight. Never fails: an unreachable API is a report with [`Health::Unreachable`].
    pub async fn status(&self, checks: &StatusChecks, options: &StatusOptions) -> StatusReport {
        let version = match self.ping().await {
            Ok(v) => v,
            Err(crate::ConnectError::Unreachable { server, reason }) => {
                return StatusReport::unreachable(&server, &reason);
            }
            Err(other) => return StatusReport::unreachable(self.server(), &other.to_string()),
        };
        let now = options.now.unwrap_or_else(Timestamp::now);
        let client = self.client().clone();
        let mut tasks: Vec<BoxFuture<'_, Outcome>> = Vec::new();

        {
            let client = client.clone();
            tasks.push(
                async move {
                    let api: Api<DynamicObject> =
                        Api::all_with(client, &api_resource("", "v1", "Node", "nodes"));
                    Outcome::Nodes(match api.list(&ListParams::default()).await {
                        Ok(list) => Ok(list
                            .items
                            .into_iter()
                            .map(|n| serde_json::to_value(n).unwrap_or_default())
                            .collect()),
                        Err(e) => Err(api_error(&e)),
                    })
                }
                .boxed(),
            );
        }

        let mut component_slots: Vec<Vec<Option<Check>>> = Vec::new();
        for (ci, component) in checks.components.iter().enumerate() {
            let mut slot = 0;
            for chart in &component.helm_charts {
                tasks.push(check_helm_chart(client.clone(), ci, slot, chart.clone()).boxed());
                slot += 1;
            }
            for w in &component.workloads {
                tasks.push(
                    check_workload(
                        client.clone(),
                        ci,
                        slot,
                        component.namespace.clone(),
                        w.clone(),
                    )
                    .boxed(),
                );
                slot += 1;
            }
            for pvc in &component.pvcs {
                tasks.push(
                    check_pvc(
                        client.clone(),
                        ci,
                        slot,
                        component.namespace.clone(),
                        pvc.clone(),
                    )
                    .boxed(),
                );
                slot += 1;
            }
            for svc in &component.load_balancers {
                tasks.push(
                    check_load_balancer(
                        client.clone(),
                        ci,
                        slot,
                        component.namespace.clone(),
                        svc.clone(),
                        component.expected_addresses.get(svc).cloned(),
                    )
                    .boxed(),
                );
                slot += 1;
            }
            for crd in &component.crds {
                tasks.push(check_crd(client.clone(), ci, slot, crd.clone()).boxed());
                slot += 1;
            }
            for cert in &component.certificates {
                tasks.push(
                    check_certificate(
                        client.clone(),
                        ci,
                        slot,
                        component.namespace.clone(),
                        cert.clone(),
                        now,
                        options.certificate_min_days,
                    )
                    .boxed(),
                );
                slot += 1;
            }
            component_slots.push(vec![None; slot]);
        }

        let tls_config = client_config(&options.tls);
        for (ui, url) in checks.urls.iter().enumerate() {
            let tls_config = tls_config.clone();
            let tls = options.tls.clone();
            let url = url.clone();
            tasks.push(
                async move {
                    let probe = match tls_config {
                        Ok(cfg) => check_url(&url.url, &url.host, cfg, &tls).await,
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
                    Outcome::Url(
                        ui,
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
                .boxed(),
            );
        }

        for (bi, backup) in checks.backups.iter().enumerate() {
            tasks.push(check_backup(client.clone(), bi, backup.clone(), now).boxed());
        }

        let outcomes: Vec<Outcome> = futures::stream::iter(tasks)
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;

        let mut problems_nodes = Vec::new();
        let mut nodes = Vec::new();
        let mut component_problems: Vec<(usize, usize, Problem)> = Vec::new();
        let mut urls: Vec<Option<(UrlStatus, Option<Problem>)>> = vec![None; checks.urls.len()];
        let mut backups: Vec<Option<(BackupStatus, Option<Problem>)>> =
            vec![None; checks.backups.len()];
        for outcome in outcomes {
            match outcome {
                Outcome::Nodes(result) => {
                    let (n, p) = node_statuses(&checks.nodes, result);
                    nodes = n;
                    problems_nodes = p;
                }
                Outcome::Component(ci, slot, check, problem) => {
                    component_slots[ci][slot] = Some(check);
                    if let Some(p) = problem {
                        component_problems.push((ci, slot, p));
                    }
                }
                Outcome::Url(i, status, problem) => urls[i] = Some((status, problem)),
                Outcome::Backup(i, status, problem) => backups[i] = Some((status, problem)),
            }
        }
        component_problems.sort_by_key(|(ci, slot, _)| (*ci, *slot));

        let mut problems = problems_nodes;
        problems.extend(component_problems.into_iter().map(|(_, _, p)| p));
        let components: Vec<ComponentStatus> = checks
            .components
            .iter()
            .zip(component_slots)
            .map(|(c, slots)| {
                let checks: Vec<Check> = slots.into_iter().flatten().collect();
                ComponentStatus {
                    name: c.name.clone(),
                    namespace: c.namespace.clone(),
                    healthy: checks.iter().all(|c| c.ok),
                    checks,
                }
            })
            .collect();
        let urls: Vec<UrlStatus> = urls
            .into_iter()
            .flatten()
            .map(|(s, p)| {
                problems.extend(p);
                s
            })
            .collect();
        let backups: Vec<BackupStatus> = backups
            .into_iter()
            .flatten()
            .map(|(s, p)| {
                problems.extend(p);
                s
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
            problems,
        }
    }
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
            });
        }
    }
    (statuses, problems)
}

fn component_outcome(
    ci: usize,
    slot: usize,
    what: String,
    result: Result<Result<String, String>, String>,
    fix: String,
) -> Outcome {
    match result {
        Ok(Ok(detail)) => Outcome::Component(
            ci,
            slot,
            Check {
                what,
                ok: true,
                detail,
            },
            None,
        ),
        Ok(Err(problem)) | Err(problem) => Outcome::Component(
            ci,
            slot,
            Check {
                what: what.clone(),
                ok: false,
                detail: problem.clone(),
            },
            Some(Problem {
                subject: what,
                problem,
                fix,
            }),
        ),
    }
}

async fn check_workload(
    client: Client,
    ci: usize,
    slot: usize,
    ns: String,
    w: WorkloadRef,
) -> Outcome {
    let what = format!("{} {ns}/{}", w.kind, w.name);
    let lower = w.kind.to_string().to_lowercase();
    let fix = format!(
        "see `kubectl -n {ns} describe {lower}/{}` and `kubectl -n {ns} logs {lower}/{}`",
        w.name, w.name
    );
    let result = match get_json(&client, &workload_resource(w.kind), Some(&ns), &w.name).await {
        Ok(Some(v)) => Ok(match workload_state(w.kind, &v) {
            Probe::Ready => Ok("ready".to_string()),
            Probe::Pending(s) | Probe::Failed(s) => Err(format!("not ready: {s}")),
        }),
        Ok(None) => Ok(Err("does not exist".to_string())),
        Err(e) => Err(api_error(&e)),
    };
    component_outcome(ci, slot, what, result, fix)
}

async fn check_pvc(client: Client, ci: usize, slot: usize, ns: String, name: String) -> Outcome {
    let what = format!("PersistentVolumeClaim {ns}/{name}");
    let fix = format!(
        "see `kubectl -n {ns} describe pvc/{name}`; check the NFS provisioner is running and its StorageClass exists"
    );
    let r = api_resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims");
    let result = match get_json(&client, &r, Some(&ns), &name).await {
        Ok(Some(v)) => Ok(match v.pointer("/status/phase").and_then(Value::as_str) {
            Some("Bound") => Ok("Bound".to_string()),
            other => Err(format!("not bound (phase {})", other.unwrap_or("unknown"))),
        }),
        Ok(None) => Ok(Err("does not exist".to_string())),
        Err(e) => Err(api_error(&e)),
    };
    component_outcome(ci, slot, what, result, fix)
}

async fn check_crd(client: Client, ci: usize, slot: usize, name: String) -> Outcome {
    let what = format!("CustomResourceDefinition {name}");
    let fix = format!(
        "see `kubectl describe crd/{name}`; it is installed by its component's chart, so check that chart's HelmChart and install job"
    );
    let result = match get_json(&client, &crd_resource(), None, &name).await {
        Ok(Some(v)) => Ok(match crd_state(&v) {
            Probe::Ready => Ok("established".to_string()),
            Probe::Pending(s) | Probe::Failed(s) => Err(format!("not established: {s}")),
        }),
        Ok(None) => Ok(Err("does not exist".to_string())),
        Err(e) => Err(api_error(&e)),
    };
    component_outcome(ci, slot, what, result, fix)
}

async fn check_load_balancer(
    client: Client,
    ci: usize,
    slot: usize,
    ns: String,
    name: String,
    expected: Option<String>,
) -> Outcome {
    let what = format!("Service {ns}/{name}");
    let mut fix = "check MetalLB is running and its IPAddressPool has a free address: `kubectl -n infra get ipaddresspools,l2advertisements`".to_string();
    if let Some(want) = &expected {
        fix = format!(
            "{fix}; the Service asks for {want} with the annotation metallb.io/loadBalancerIPs, which must lie in the pool and not be taken by another Service"
        );
    }
    let r = api_resource("", "v1", "Service", "services");
    let result = match get_json(&client, &r, Some(&ns), &name).await {
        Ok(Some(v)) => {
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
            Ok(match &expected {
                _ if addresses.is_empty() => Err("no LoadBalancer address assigned".to_string()),
                Some(want) if !addresses.contains(want) => Err(format!(
                    "has address {} instead of {want}",
                    addresses.join(", ")
                )),
                _ => Ok(format!("address {}", addresses.join(", "))),
            })
        }
        Ok(None) => Ok(Err("does not exist".to_string())),
        Err(e) => Err(api_error(&e)),
    };
    component_outcome(ci, slot, what, result, fix)
}

async fn check_certificate(
    client: Client,
    ci: usize,
    slot: usize,
    ns: String,
    name: String,
    now: Timestamp,
    min_days: i64,
) -> Outcome {
    let what = format!("Certificate {ns}/{name}");
    let fix = format!(
        "see `kubectl -n {ns} describe certificate/{name}` and its CertificateRequest/Order; check the ClusterIssuer's DNS-01 credentials"
    );
    let r = api_resource("cert-manager.io", "v1", "Certificate", "certificates");
    let result = match get_json(&client, &r, Some(&ns), &name).await {
        Ok(Some(v)) => {
            let ready = condition(&v, "Ready")
                .and_then(|c| c.get("status"))
                .and_then(Value::as_str)
                == Some("True");
            let days = timestamp(&v, "/status/notAfter")
                .map(|t| (t.as_second() - now.as_second()).div_euclid(86_400));
            Ok(match (ready, days) {
                (false, _) => Err(format!("not ready: {}", conditions_summary(&v))),
                (true, Some(d)) if d < min_days => Err(format!(
                    "expires in {d} days (renewal should have happened)"
                )),
                (true, Some(d)) => Ok(format!("ready, expires in {d} days")),
                (true, None) => Ok("ready".to_string()),
            })
        }
        Ok(None) => Ok(Err("does not exist".to_string())),
        Err(e) => Err(api_error(&e)),
    };
    component_outcome(ci, slot, what, result, fix)
}

async fn check_helm_chart(client: Client, ci: usize, slot: usize, chart: HelmChartRef) -> Outcome {
    let ns = chart.namespace.clone();
    let what = format!("HelmChart {ns}/{}", chart.name);
    let mut fix = format!("see `kubectl -n {ns} describe helmchart/{}`", chart.name);
    let result = match get_json(&client, &helmchart_resource(), Some(&ns), &chart.name).await {
        Ok(Some(v)) => match v.pointer("/status/jobName").and_then(Value::as_str) {
            None => Ok(Err("helm-controller has not run an install job".to_string())),
            Some(job_name) => {
                fix = format!("see `kubectl -n {ns} logs job/{job_name}`");
                match get_json(&client, &job_resource(), Some(&ns), job_name).await {
                    Ok(Some(job)) => Ok(match job_state(&job) {
                        Probe::Ready => Ok("installed".to_string()),
                        Probe::Pending(s) => {
                            Err(format!("install job {job_name} not finished: {s}"))
                        }
                        Probe::Failed(s) => Err(format!("install job {job_name}: {s}")),
                    }),
                    Ok(None) => Ok(Err(format!("install job {job_name} does not exist"))),
                    Err(e) => Err(api_error(&e)),
                }
            }
        },
        Ok(None) => Ok(Err("does not exist".to_string())),
        Err(e) => Err(api_error(&e)),
    };
    component_outcome(ci, slot, what, result, fix)
}

async fn check_backup(client: Client, i: usize, backup: BackupCheck, now: Timestamp) -> Outcome {
    let ns = &backup.namespace;
    let name = &backup.cronjob;
    let r = api_resource("batch", "v1", "CronJob", "cronjobs");
    let mut status = BackupStatus {
        namespace: ns.clone(),
        cronjob: name.clone(),
        ok: false,
        last_success: None,
        age_seconds: None,
        detail: String::new(),
    };
    match get_json(&client, &r, Some(ns), name).await {
        Ok(Some(v)) => {
            if let Some(t) = timestamp(&v, "/status/lastSuccessfulTime") {
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
        Err(e) => status.detail = api_error(&e),
    }
    let problem = (!status.ok).then(|| Problem {
        subject: format!("backup CronJob {ns}/{name}"),
        problem: status.detail.clone(),
        fix: format!(
            "see `kubectl -n {ns} get jobs` and the last job's logs; run one now with `kubectl -n {ns} create job --from=cronjob/{name} {name}-manual`"
        ),
    });
    Outcome::Backup(i, status, problem)
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
