//! What the dashboard shows, as data: the plan's side (components, URLs, pinned charts,
//! runbooks) and the overview that joins it with one `status` report. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use homelab_kube::{Health, StatusReport};
use homelab_plan::{HealthCheck, Plan};
use jiff::Timestamp;
use serde::Serialize;

/// kube-prometheus-stack's `alertmanager.service.port`, which the plan leaves as it is.
const ALERTMANAGER_PORT: u16 = 9093;

/// A chart release as the plan pins it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PinnedChart {
    pub release: String,
    pub chart: String,
    pub version: String,
    /// The HelmChart object's `namespace/name` that `status` checks for it.
    pub helm_chart: Option<String>,
}

/// One component of the plan, as the dashboard lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentInfo {
    pub name: String,
    pub title: String,
    pub layer: String,
    pub namespace: Option<String>,
    /// Name and URL of each endpoint.
    pub urls: Vec<(String, String)>,
    pub charts: Vec<PinnedChart>,
    /// `namespace/cronjob` of each backup the component runs.
    pub backups: Vec<String>,
}

/// Everything the dashboard takes from the plan, read once at start.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    pub lab: String,
    pub domain: String,
    pub k3s_version: String,
    pub components: Vec<ComponentInfo>,
    /// The plan's nodes with their roles.
    pub nodes: Vec<crate::nodes::PlannedNode>,
    /// Runbook names (`docs/runbooks/<name>.md`) with title and Markdown text.
    #[serde(skip)]
    pub runbooks: BTreeMap<String, (String, String)>,
}

impl Inventory {
    pub fn from_plan(plan: &Plan) -> Inventory {
        let components = plan
            .components
            .iter()
            .map(|c| {
                let helm_charts: Vec<(String, String)> = c
                    .health
                    .iter()
                    .filter_map(|h| match h {
                        HealthCheck::HelmChart { namespace, name } => {
                            Some((namespace.clone(), name.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                ComponentInfo {
                    name: c.name.clone(),
                    title: if c.docs.title.is_empty() {
                        c.name.clone()
                    } else {
                        c.docs.title.clone()
                    },
                    layer: c.layer.dir().to_string(),
                    namespace: c.namespace.clone(),
                    urls: c
                        .endpoints
                        .iter()
                        .map(|e| (e.name.clone(), e.url.clone()))
                        .collect(),
                    charts: c
                        .releases
                        .iter()
                        .map(|r| PinnedChart {
                            release: r.name.clone(),
                            chart: r.chart.name.clone(),
                            version: r.chart.version.clone(),
                            helm_chart: helm_charts
                                .iter()
                                .find(|(_, name)| *name == r.name)
                                .map(|(ns, name)| format!("{ns}/{name}")),
                        })
                        .collect(),
                    backups: c
                        .backups
                        .iter()
                        .map(|b| format!("{}/{}", b.namespace, b.cronjob))
                        .collect(),
                }
            })
            .collect();
        Inventory {
            lab: plan.lab_name.clone(),
            domain: plan.domain.clone(),
            k3s_version: plan.k3s_version.clone(),
            components,
            nodes: plan
                .nodes
                .iter()
                .map(|n| crate::nodes::PlannedNode {
                    name: n.name.clone(),
                    role: match n.role {
                        homelab_spec::lab::NodeRole::Server => "server".into(),
                        homelab_spec::lab::NodeRole::Agent => "agent".into(),
                    },
                })
                .collect(),
            runbooks: plan
                .runbooks
                .iter()
                .map(|r| (r.name.clone(), (r.title.clone(), r.content.clone())))
                .collect(),
        }
    }

    /// What the pages beyond the overview read: the Alertmanager beside the Prometheus whose
    /// rules `status` reads, and the PostgreSQL backup CronJob.
    pub fn targets(plan: &Plan) -> crate::reads::Targets {
        let alertmanager = plan
            .components
            .iter()
            .flat_map(|c| c.health.iter())
            .find_map(|h| match h {
                HealthCheck::Alert {
                    namespace, service, ..
                } => service.strip_suffix("-prometheus").map(|release| {
                    // kube-prometheus-stack names both Services after its release,
                    // `<release>-prometheus` and `<release>-alertmanager`; the Alertmanager
                    // Service's port is the chart's default (`alertmanager.service.port`).
                    crate::reads::AlertmanagerRef {
                        namespace: namespace.clone(),
                        service: format!("{release}-alertmanager"),
                        port: ALERTMANAGER_PORT,
                    }
                }),
                _ => None,
            });
        let backup = plan
            .components
            .iter()
            .flat_map(|c| c.backups.iter())
            .find(|b| b.name == "postgres")
            .map(|b| crate::reads::BackupJobsRef {
                namespace: b.namespace.clone(),
                cronjob: b.cronjob.clone(),
            });
        crate::reads::Targets {
            alertmanager,
            backup,
        }
    }

    /// The runbook for a failing check of `component`: one of the component's own (its name
    /// leads the runbook's, e.g. `postgres-backup`), else the one for the kind of thing that
    /// fails. Only runbooks the plan wrote are named.
    pub fn runbook_for(&self, component: &str, failing: &str) -> Option<String> {
        let own: Vec<&String> = self
            .runbooks
            .keys()
            .filter(|n| n.starts_with(&format!("{component}-")) || *n == component)
            .collect();
        let by_kind = if failing.starts_with("backup CronJob") {
            own.iter()
                .find(|n| n.contains("backup"))
                .map(|n| n.as_str())
        } else if failing.starts_with("PersistentVolumeClaim") {
            Some("pvc-not-bound")
        } else if failing.starts_with("Certificate") {
            Some("certificate-expiring")
        } else if failing.starts_with("root CA Secret") {
            Some("ca-not-trusted")
        } else if failing.starts_with("node ") {
            Some("node-down")
        } else {
            None
        };
        let pick = by_kind
            .filter(|n| self.runbooks.contains_key(*n))
            .or_else(|| own.first().map(|n| n.as_str()))
            .or_else(|| {
                ["Deployment ", "StatefulSet ", "DaemonSet "]
                    .iter()
                    .any(|k| failing.starts_with(k))
                    .then_some("pod-crash-looping")
            })?;
        self.runbooks.contains_key(pick).then(|| pick.to_string())
    }
}

/// A URL of a component with what the last probe found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlView {
    pub name: String,
    pub url: String,
    /// `None` until probed (or when `status` does not probe it).
    pub ok: Option<bool>,
    pub detail: Option<String>,
}

/// A chart: pinned in the plan, deployed as the cluster's HelmChart says.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    pub release: String,
    pub chart: String,
    pub pinned: String,
    pub deployed: Option<String>,
    /// The cluster runs what the plan pins.
    pub current: bool,
}

/// One row of the overview.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentView {
    pub name: String,
    pub title: String,
    pub layer: String,
    pub namespace: Option<String>,
    /// `None` until the first check has run, or while the cluster is unreachable.
    pub healthy: Option<bool>,
    pub checks_passed: usize,
    pub checks_total: usize,
    /// The first thing that is wrong, in one line.
    pub reason: Option<String>,
    /// What to do about it, as `status` says.
    pub fix: Option<String>,
    /// The dashboard's page of the runbook for it.
    pub runbook: Option<String>,
    pub urls: Vec<UrlView>,
    pub versions: Vec<VersionView>,
}

/// Nodes at a glance.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCounts {
    pub expected: usize,
    pub present: usize,
    pub ready: usize,
}

/// The overview page and `/api/overview`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    pub lab: String,
    /// `healthy`, `unhealthy`, `unreachable`, or `unknown` before the first check.
    pub health: &'static str,
    /// When the checks shown were run (RFC 3339).
    pub checked_at: Option<String>,
    pub check_seconds: Option<f64>,
    pub server: Option<String>,
    pub kubernetes_version: Option<String>,
    pub k3s_pinned: String,
    pub nodes: NodeCounts,
    pub problems: usize,
    /// Why the cluster could not be read, when it could not.
    pub unreachable: Option<String>,
    pub components: Vec<ComponentView>,
}

/// One finished `status` pass.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub report: StatusReport,
    pub checked_at: Timestamp,
    pub seconds: f64,
}

impl Overview {
    /// The overview of `inventory` as `snapshot` found the cluster (`None`: not checked yet).
    pub fn build(inventory: &Inventory, snapshot: Option<&Snapshot>) -> Overview {
        let report = snapshot.map(|s| &s.report);
        let reachable = report.filter(|r| r.health != Health::Unreachable);
        let problem_fix = |subject: &str| -> Option<String> {
            reachable?
                .problems
                .iter()
                .find(|p| p.subject == subject)
                .map(|p| p.fix.clone())
        };
        let components = inventory
            .components
            .iter()
            .map(|c| {
                // (what, ok, detail) of every check of the component: its status rows, its URLs
                // and its backups.
                let mut checks: Vec<(String, bool, String)> = Vec::new();
                let mut versions = Vec::new();
                let rows: Vec<_> = reachable
                    .map(|r| r.components.iter().filter(|s| s.name == c.name).collect())
                    .unwrap_or_default();
                for row in &rows {
                    for k in &row.checks {
                        checks.push((k.what.clone(), k.ok, k.detail.clone()));
                    }
                }
                for chart in &c.charts {
                    let deployed = chart.helm_chart.as_ref().and_then(|hc| {
                        let what = format!("HelmChart {hc}");
                        rows.iter()
                            .flat_map(|r| r.checks.iter())
                            .find(|k| k.what == what)
                            .and_then(|k| k.version.clone())
                    });
                    versions.push(VersionView {
                        release: chart.release.clone(),
                        chart: chart.chart.clone(),
                        pinned: chart.version.clone(),
                        current: deployed.as_deref() == Some(chart.version.as_str()),
                        deployed,
                    });
                }
                let urls: Vec<UrlView> = c
                    .urls
                    .iter()
                    .map(|(name, url)| {
                        let probed = reachable.and_then(|r| r.urls.iter().find(|u| &u.url == url));
                        if let Some(u) = probed {
                            let detail = match (&u.error, u.http_status) {
                                (Some(e), _) => e.clone(),
                                (None, Some(s)) => format!("HTTP {s}"),
                                (None, None) => "no answer".into(),
                            };
                            checks.push((u.url.clone(), u.ok, detail));
                        }
                        UrlView {
                            name: name.clone(),
                            url: url.clone(),
                            ok: probed.map(|u| u.ok),
                            detail: probed.map(|u| {
                                u.error.clone().unwrap_or_else(|| {
                                    u.http_status
                                        .map(|s| format!("HTTP {s}"))
                                        .unwrap_or_default()
                                })
                            }),
                        }
                    })
                    .collect();
                for b in &c.backups {
                    if let Some(s) = reachable.and_then(|r| {
                        r.backups
                            .iter()
                            .find(|s| format!("{}/{}", s.namespace, s.cronjob) == *b)
                    }) {
                        checks.push((format!("backup CronJob {b}"), s.ok, s.detail.clone()));
                    }
                }
                let failing = checks.iter().find(|(_, ok, _)| !ok);
                let healthy = reachable.map(|_| failing.is_none());
                ComponentView {
                    name: c.name.clone(),
                    title: c.title.clone(),
                    layer: c.layer.clone(),
                    namespace: c.namespace.clone(),
                    healthy,
                    checks_passed: checks.iter().filter(|(_, ok, _)| *ok).count(),
                    checks_total: checks.len(),
                    reason: failing.map(|(what, _, detail)| format!("{what}: {detail}")),
                    fix: failing.and_then(|(what, _, _)| problem_fix(what)),
                    runbook: failing
                        .and_then(|(what, _, _)| inventory.runbook_for(&c.name, what))
                        .map(|n| format!("/docs/runbooks/{n}")),
                    urls,
                    versions,
                }
            })
            .collect();
        let nodes = reachable
            .map(|r| NodeCounts {
                expected: r.nodes.len(),
                present: r.nodes.iter().filter(|n| n.present).count(),
                ready: r.nodes.iter().filter(|n| n.ready).count(),
            })
            .unwrap_or_default();
        Overview {
            lab: inventory.lab.clone(),
            health: match report.map(|r| r.health) {
                None => "unknown",
                Some(Health::Healthy) => "healthy",
                Some(Health::Unhealthy) => "unhealthy",
                Some(Health::Unreachable) => "unreachable",
            },
            checked_at: snapshot.map(|s| s.checked_at.to_string()),
            check_seconds: snapshot.map(|s| s.seconds),
            server: report.map(|r| r.server.clone()),
            kubernetes_version: report.and_then(|r| r.version.clone()),
            k3s_pinned: inventory.k3s_version.clone(),
            nodes,
            problems: reachable.map(|r| r.problems.len()).unwrap_or(0),
            unreachable: report
                .filter(|r| r.health == Health::Unreachable)
                .and_then(|r| r.problems.first())
                .map(|p| p.problem.clone()),
            components,
        }
    }
}

/// The distinct layers in plan order, for grouping.
pub fn layers(overview: &Overview) -> Vec<&str> {
    let mut seen = BTreeSet::new();
    overview
        .components
        .iter()
        .map(|c| c.layer.as_str())
        .filter(|l| seen.insert(*l))
        .collect()
}
