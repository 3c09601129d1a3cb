//! Maps the Plan to what `homelab-kube` applies and checks: one unit per component (split so
//! custom resources come after the gates that make them possible), Secrets filled from the
//! secrets file, the ApplySet named after the lab, and the status checks. Pure: no I/O, and
//! secret values go only into Secret manifests, never into names, errors or Debug output.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use homelab_kube::{
    ApplyPlan, ApplySetRef, ApplyUnit, BackupCheck, ComponentCheck, HelmChartRef, NamespacedName,
    ObjectRef, StatusChecks, UrlCheck, WaitFor, WorkloadKind, WorkloadRef,
};
use homelab_plan::{Component, HealthCheck, Plan};
use homelab_render::SecretValues;
use serde_json::Value;

/// The one server-side apply field manager of every object homelab writes.
pub const FIELD_MANAGER: &str = "homelab";

/// Where the ApplySet parent Secret lives: a namespace every K3s cluster has and nobody
/// deletes, so the record of what homelab applied outlives any of the lab's own namespaces.
pub const APPLYSET_NAMESPACE: &str = "kube-system";

/// Suffix of the second unit of a component whose custom resources need its chart's CRDs and
/// webhook first.
const RESOURCES_SUFFIX: &str = "/resources";

/// What a chart of the catalog serves once installed: the API groups of its custom resources,
/// their CustomResourceDefinitions, and the Service of the admission webhook that validates
/// them (in the release namespace). Upstream facts, checked against the charts' templates.
struct ChartApis {
    chart: &'static str,
    groups: &'static [&'static str],
    crds: &'static [&'static str],
    webhook: fn(release: &str) -> String,
}

const CHART_APIS: &[ChartApis] = &[
    ChartApis {
        chart: "cert-manager",
        groups: &["cert-manager.io", "acme.cert-manager.io"],
        crds: &[
            "certificates.cert-manager.io",
            "clusterissuers.cert-manager.io",
            "issuers.cert-manager.io",
        ],
        // `{{ fullname }}-webhook`; the fullname is the release name when it holds the chart's.
        webhook: |release| format!("{release}-webhook"),
    },
    ChartApis {
        chart: "metallb",
        groups: &["metallb.io"],
        crds: &["ipaddresspools.metallb.io", "l2advertisements.metallb.io"],
        // A fixed name in the chart's webhooks template.
        webhook: |_| "metallb-webhook-service".to_string(),
    },
    ChartApis {
        chart: "kube-prometheus-stack",
        groups: &["monitoring.coreos.com"],
        crds: &[
            "prometheusrules.monitoring.coreos.com",
            "podmonitors.monitoring.coreos.com",
            "servicemonitors.monitoring.coreos.com",
        ],
        // The operator serves the PrometheusRule admission webhook itself.
        webhook: |release| format!("{release}-operator"),
    },
];

fn chart_apis(chart: &str) -> Option<&'static ChartApis> {
    CHART_APIS.iter().find(|c| c.chart == chart)
}

/// Why the Secrets of the plan cannot be built. Names secrets and objects, never values.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe_unavailable(.0))]
pub struct SecretsUnavailable(pub Vec<UnavailableSecret>);

/// Why the plan cannot be turned into what `apply` sends.
#[derive(Debug, thiserror::Error)]
pub enum ClusterPlanError {
    #[error(transparent)]
    Secrets(#[from] SecretsUnavailable),
    /// A patch of the manifests directory no longer applies (`homelab validate` says where).
    #[error("{0}; run `homelab validate` to see where")]
    Patch(#[from] homelab_plan::PatchFailed),
}

/// One secret a Secret object needs that the secrets file cannot give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnavailableSecret {
    pub secret: String,
    /// `Secret namespace/name` that needs it.
    pub object: String,
    pub reason: String,
}

fn describe_unavailable(list: &[UnavailableSecret]) -> String {
    let mut names: Vec<&str> = list.iter().map(|u| u.secret.as_str()).collect();
    names.dedup();
    let details: Vec<String> = list
        .iter()
        .map(|u| format!("{} (for {}): {}", u.secret, u.object, u.reason))
        .collect();
    format!(
        "{} secret(s) the lab's Secrets need cannot be read from the secrets file: {}; set each with `homelab secrets set NAME` (e.g. `homelab secrets set {}`), then apply again; nothing was changed in the cluster",
        names.len(),
        details.join("; "),
        names.first().copied().unwrap_or("NAME")
    )
}

/// The plan as `homelab-kube` input. Its Secret manifests hold plaintext values, so it
/// overwrites them when dropped.
pub struct ClusterPlan {
    pub apply: ApplyPlan,
}

impl Drop for ClusterPlan {
    fn drop(&mut self) {
        for unit in &mut self.apply.units {
            for object in &mut unit.objects {
                if object.get("kind").and_then(Value::as_str) == Some("Secret") {
                    homelab_render::scrub_manifest(object);
                }
            }
        }
    }
}

/// Every secret the plan's Secret objects read that `values` cannot give, in plan order.
pub fn unavailable_secrets(plan: &Plan, values: &dyn SecretValues) -> Vec<UnavailableSecret> {
    let mut out: Vec<UnavailableSecret> = Vec::new();
    for component in &plan.components {
        for secret in &component.secret_objects {
            for source in secret.data.values() {
                for name in source.secret_names() {
                    if out.iter().any(|u| u.secret == name) {
                        continue;
                    }
                    if let Err(reason) = values.secret(&name) {
                        out.push(UnavailableSecret {
                            secret: name,
                            object: format!("Secret {}/{}", secret.namespace, secret.name),
                            reason,
                        });
                    }
                }
            }
        }
    }
    out
}

/// Builds what `apply` and `diff` send: see the module documentation. Fails, before anything
/// is built, when a secret is missing or unset.
pub fn cluster_plan(
    plan: &Plan,
    values: &dyn SecretValues,
) -> Result<ClusterPlan, ClusterPlanError> {
    let unavailable = unavailable_secrets(plan, values);
    if !unavailable.is_empty() {
        return Err(SecretsUnavailable(unavailable).into());
    }
    let mut cluster = ClusterPlan {
        apply: ApplyPlan {
            applyset: ApplySetRef {
                name: plan.lab_name.clone(),
                namespace: APPLYSET_NAMESPACE.to_string(),
            },
            field_manager: FIELD_MANAGER.to_string(),
            units: Vec::new(),
        },
    };
    cluster.apply.units = units(plan, &mut |component| {
        component
            .secret_objects
            .iter()
            .map(|s| {
                homelab_render::secret_manifest(s, values).map_err(|e| {
                    // Checked above; a value that vanished in between is still named, not shown.
                    ClusterPlanError::Secrets(SecretsUnavailable(vec![UnavailableSecret {
                        secret: String::new(),
                        object: format!("Secret {}/{}", s.namespace, s.name),
                        reason: e.to_string(),
                    }]))
                })
            })
            .collect()
    })?;
    Ok(cluster)
}

/// The group of an `apiVersion` (`""` for the core group).
fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// Groups served by Kubernetes itself or by K3s out of the box (its helm-controller and the
/// bundled Traefik): no unit of the plan has to install them.
fn served_without_plan(group: &str) -> bool {
    group.is_empty()
        || !group.contains('.')
        || group.ends_with(".k8s.io")
        || matches!(
            group,
            "helm.cattle.io" | "traefik.io" | "traefik.containo.us" | "k3s.cattle.io"
        )
}

fn workload_kind(kind: &str) -> Option<WorkloadKind> {
    match kind {
        "Deployment" => Some(WorkloadKind::Deployment),
        "StatefulSet" => Some(WorkloadKind::StatefulSet),
        "DaemonSet" => Some(WorkloadKind::DaemonSet),
        _ => None,
    }
}

/// A unit under construction, with the component it came from.
struct Draft {
    unit: ApplyUnit,
    component: String,
}

/// The units of the plan in component order. `secrets` builds a component's Secret manifests.
fn units<E: From<homelab_plan::PatchFailed>>(
    plan: &Plan,
    secrets: &mut dyn FnMut(&Component) -> Result<Vec<Value>, E>,
) -> Result<Vec<ApplyUnit>, E> {
    // Which unit provides what: namespaces (the unit holding the Namespace object) and API
    // groups (the unit installing the chart that serves them).
    let mut group_provider: BTreeMap<&str, String> = BTreeMap::new();
    for c in &plan.components {
        for r in &c.releases {
            if let Some(apis) = chart_apis(&r.chart.name) {
                for g in apis.groups {
                    group_provider.insert(g, c.name.clone());
                }
            }
        }
    }
    let used_groups: BTreeSet<String> = plan
        .components
        .iter()
        .flat_map(|c| c.objects.iter())
        .map(|o| group_of(o.api_version()).to_string())
        .collect();
    let depended_on: BTreeSet<&str> = plan
        .components
        .iter()
        .flat_map(|c| c.depends_on.iter().map(String::as_str))
        .collect();

    let mut drafts: Vec<Draft> = Vec::new();
    for c in &plan.components {
        let own_groups: BTreeSet<&str> = c
            .releases
            .iter()
            .filter_map(|r| chart_apis(&r.chart.name))
            .flat_map(|a| a.groups.iter().copied())
            .collect();
        let mut base: Vec<Value> = Vec::new();
        let mut resources: Vec<Value> = Vec::new();
        for o in &c.applied_objects()? {
            if own_groups.contains(group_of(o.api_version())) {
                resources.push(o.manifest.clone());
            } else {
                base.push(o.manifest.clone());
            }
        }
        base.extend(secrets(c)?);
        for r in &c.releases {
            base.push(homelab_render::helm_chart(r, c));
        }
        if base.is_empty() && resources.is_empty() {
            // Nothing for the cluster (the K3s nodes are `homelab nodes`' job).
            continue;
        }

        let mut waits = Vec::new();
        for chart in base.iter().filter(|o| o["kind"] == "HelmChart") {
            let r = ObjectRef::from_manifest(chart);
            waits.push(WaitFor::HelmChartInstalled {
                namespace: r.namespace.unwrap_or_default(),
                name: r.name,
            });
        }
        for r in &c.releases {
            let Some(apis) = chart_apis(&r.chart.name) else {
                continue;
            };
            for crd in apis.crds {
                waits.push(WaitFor::CrdEstablished {
                    name: crd.to_string(),
                });
            }
            let needed = apis.groups.iter().any(|g| used_groups.contains(*g));
            if needed {
                // The first custom resource of the component doubles as the probe: when a
                // server-side dry run of it is admitted, the webhook answers.
                let probe = resources
                    .iter()
                    .find(|o| {
                        apis.groups.contains(&group_of(
                            o.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
                        ))
                    })
                    .cloned();
                waits.push(WaitFor::Webhook {
                    service: NamespacedName {
                        namespace: r.namespace.clone(),
                        name: (apis.webhook)(&r.name),
                    },
                    probe,
                });
            }
        }
        if depended_on.contains(c.name.as_str()) {
            // Whoever comes next may need these running (PostgreSQL before n8n).
            for o in &c.objects {
                if group_of(o.api_version()) != "apps" {
                    continue;
                }
                if let (Some(kind), Some(ns)) = (workload_kind(o.kind()), o.namespace()) {
                    waits.push(WaitFor::Available {
                        kind,
                        namespace: ns.to_string(),
                        name: o.name().to_string(),
                    });
                }
            }
        }

        drafts.push(Draft {
            unit: ApplyUnit {
                name: c.name.clone(),
                depends_on: Vec::new(),
                objects: base,
                waits,
            },
            component: c.name.clone(),
        });
        if !resources.is_empty() {
            drafts.push(Draft {
                unit: ApplyUnit {
                    name: format!("{}{RESOURCES_SUFFIX}", c.name),
                    depends_on: vec![c.name.clone()],
                    objects: resources,
                    waits: Vec::new(),
                },
                component: c.name.clone(),
            });
        }
    }

    // Dependencies: the components the catalog names, the unit creating each namespace an
    // object lives in (or a chart installs into), and the unit serving each custom group.
    let mut namespace_provider: BTreeMap<String, String> = BTreeMap::new();
    for d in &drafts {
        for o in &d.unit.objects {
            let r = ObjectRef::from_manifest(o);
            if r.kind == "Namespace" && r.api_version == "v1" {
                namespace_provider.insert(r.name, d.unit.name.clone());
            }
        }
    }
    let units_of: BTreeMap<&str, Vec<String>> = drafts.iter().fold(BTreeMap::new(), |mut m, d| {
        m.entry(d.component.as_str())
            .or_insert_with(Vec::new)
            .push(d.unit.name.clone());
        m
    });
    let component_of: BTreeMap<String, &Component> = plan
        .components
        .iter()
        .map(|c| (c.name.clone(), c))
        .collect();
    let mut out = Vec::with_capacity(drafts.len());
    for d in &drafts {
        let mut deps: BTreeSet<String> = d.unit.depends_on.iter().cloned().collect();
        if let Some(c) = component_of.get(&d.component) {
            for dep in &c.depends_on {
                for u in units_of.get(dep.as_str()).into_iter().flatten() {
                    deps.insert(u.clone());
                }
            }
        }
        for o in &d.unit.objects {
            let r = ObjectRef::from_manifest(o);
            let mut namespaces: Vec<String> = r.namespace.iter().cloned().collect();
            if let Some(target) = o.pointer("/spec/targetNamespace").and_then(Value::as_str) {
                namespaces.push(target.to_string());
            }
            for ns in namespaces {
                if let Some(p) = namespace_provider.get(&ns) {
                    deps.insert(p.clone());
                }
            }
            let group = r.group();
            if !served_without_plan(group)
                && let Some(provider) = group_provider.get(group)
                && provider != &d.component
            {
                deps.insert(provider.clone());
            }
        }
        deps.remove(&d.unit.name);
        let mut unit = d.unit.clone();
        // Keep the catalog's order for the names it gave, then the derived ones sorted.
        let mut ordered: Vec<String> = unit.depends_on.clone();
        for dep in deps {
            if !ordered.contains(&dep) {
                ordered.push(dep);
            }
        }
        unit.depends_on = ordered;
        out.push(unit);
    }
    Ok(out)
}

/// The component a unit belongs to (`cert-manager/resources` belongs to `cert-manager`).
pub fn component_of_unit(unit: &str) -> &str {
    unit.strip_suffix(RESOURCES_SUFFIX).unwrap_or(unit)
}

/// What `homelab status` checks, from the plan's health checks, nodes and backups.
pub fn status_checks(plan: &Plan) -> StatusChecks {
    let mut checks = StatusChecks {
        nodes: plan.nodes.iter().map(|n| n.name.clone()).collect(),
        ..Default::default()
    };
    for c in &plan.components {
        // One row per namespace the component's checks look in, in the order they appear.
        let mut rows: Vec<ComponentCheck> = Vec::new();
        let row = |rows: &mut Vec<ComponentCheck>, ns: &str| -> usize {
            if let Some(i) = rows.iter().position(|r| r.namespace == ns) {
                return i;
            }
            rows.push(ComponentCheck {
                name: c.name.clone(),
                namespace: ns.to_string(),
                ..Default::default()
            });
            rows.len() - 1
        };
        let home = c.namespace.clone().unwrap_or_else(|| "kube-system".into());
        for h in &c.health {
            match h {
                HealthCheck::HelmChart { namespace, name } => {
                    let i = row(&mut rows, &home);
                    rows[i].helm_charts.push(HelmChartRef {
                        namespace: namespace.clone(),
                        name: name.clone(),
                    });
                }
                HealthCheck::Crd { name } => {
                    let i = row(&mut rows, &home);
                    rows[i].crds.push(name.clone());
                }
                HealthCheck::Workload {
                    kind,
                    namespace,
                    name,
                } => {
                    if let Some(kind) = workload_kind(kind) {
                        let i = row(&mut rows, namespace);
                        rows[i].workloads.push(WorkloadRef {
                            kind,
                            name: name.clone(),
                        });
                    }
                }
                HealthCheck::Pvc { namespace, name } => {
                    let i = row(&mut rows, namespace);
                    rows[i].pvcs.push(name.clone());
                }
                HealthCheck::LoadBalancer {
                    namespace,
                    name,
                    expected_ip,
                } => {
                    let i = row(&mut rows, namespace);
                    rows[i].load_balancers.push(name.clone());
                    if let Some(ip) = expected_ip {
                        rows[i]
                            .expected_addresses
                            .insert(name.clone(), ip.to_string());
                    }
                }
                HealthCheck::Certificate { namespace, name } => {
                    let i = row(&mut rows, namespace);
                    rows[i].certificates.push(name.clone());
                }
                HealthCheck::Url { url, host } => {
                    if !checks.urls.iter().any(|u| &u.url == url) {
                        checks.urls.push(UrlCheck {
                            url: url.clone(),
                            host: host.clone(),
                        });
                    }
                }
                HealthCheck::Backup {
                    namespace,
                    cronjob,
                    max_age_hours,
                } => checks.backups.push(BackupCheck {
                    namespace: namespace.clone(),
                    cronjob: cronjob.clone(),
                    max_age: Duration::from_secs(u64::from(*max_age_hours) * 3600),
                }),
            }
        }
        checks.components.extend(rows);
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Values(BTreeMap<&'static str, &'static str>);

    impl SecretValues for Values {
        fn secret(&self, name: &str) -> Result<secrecy::SecretString, String> {
            self.0
                .get(name)
                .map(|v| secrecy::SecretString::from(v.to_string()))
                .ok_or_else(|| format!("`{name}` is not set"))
        }
    }

    fn seed_plan() -> Plan {
        let loaded =
            homelab_spec::load_bytes("homelab.yaml", homelab_spec::templates::SEED.as_bytes())
                .expect("the seed spec is valid");
        homelab_plan::plan(&loaded.lab)
    }

    /// A value for every secret the plan reads, each a recognisable canary.
    fn all_values(plan: &Plan) -> Values {
        let mut m = BTreeMap::new();
        for s in &plan.secrets {
            let name: &'static str = Box::leak(s.name.clone().into_boxed_str());
            let value: &'static str = Box::leak(format!("canary-{name}-value").into_boxed_str());
            m.insert(name, value);
        }
        for c in &plan.components {
            for so in &c.secret_objects {
                for src in so.data.values() {
                    for n in src.secret_names() {
                        let name: &'static str = Box::leak(n.into_boxed_str());
                        m.entry(name).or_insert_with(|| {
                            Box::leak(format!("canary-{name}-value").into_boxed_str())
                        });
                    }
                }
            }
        }
        Values(m)
    }

    fn unit<'a>(plan: &'a ApplyPlan, name: &str) -> &'a ApplyUnit {
        plan.units
            .iter()
            .find(|u| u.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "no unit {name}: {:?}",
                    plan.units.iter().map(|u| &u.name).collect::<Vec<_>>()
                )
            })
    }

    fn kinds(u: &ApplyUnit) -> Vec<String> {
        u.objects
            .iter()
            .map(|o| ObjectRef::from_manifest(o).kind)
            .collect()
    }

    #[test]
    fn custom_resources_come_after_the_gates_of_the_chart_that_serves_them() {
        let plan = seed_plan();
        let cp = cluster_plan(&plan, &all_values(&plan)).unwrap();
        let ap = &cp.apply;
        assert_eq!(ap.applyset.name, plan.lab_name);
        assert_eq!(ap.applyset.namespace, "kube-system");
        assert_eq!(ap.field_manager, "homelab");

        let cm = unit(ap, "cert-manager");
        assert!(kinds(cm).contains(&"HelmChart".to_string()));
        assert!(!kinds(cm).contains(&"ClusterIssuer".to_string()));
        let waits: Vec<String> = cm.waits.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            waits[..4],
            [
                "HelmChart kube-system/cert-manager install job to succeed",
                "CustomResourceDefinition certificates.cert-manager.io to be established",
                "CustomResourceDefinition clusterissuers.cert-manager.io to be established",
                "CustomResourceDefinition issuers.cert-manager.io to be established",
            ]
        );
        let webhook = cm
            .waits
            .iter()
            .find_map(|w| match w {
                WaitFor::Webhook { service, probe } => Some((service, probe)),
                _ => None,
            })
            .expect("cert-manager's webhook is waited for");
        assert_eq!(webhook.0.to_string(), "infra/cert-manager-webhook");
        assert_eq!(
            webhook.1.as_ref().unwrap()["kind"],
            "ClusterIssuer",
            "the probe is the plan's own first ClusterIssuer"
        );
        let issuers = unit(ap, "cert-manager/resources");
        assert!(kinds(issuers).iter().all(|k| k == "ClusterIssuer"));
        assert_eq!(issuers.depends_on[0], "cert-manager");

        let metallb = unit(ap, "metallb");
        let w: Vec<String> = metallb.waits.iter().map(|w| w.to_string()).collect();
        assert!(
            w.contains(
                &"webhook behind Service infra/metallb-webhook-service to answer".to_string()
            ),
            "{w:?}"
        );
        let pool = unit(ap, "metallb/resources");
        assert_eq!(kinds(pool), ["IPAddressPool", "L2Advertisement"]);

        let mon = unit(ap, "prometheus");
        let w: Vec<String> = mon.waits.iter().map(|w| w.to_string()).collect();
        assert!(
            w.contains(
                &"CustomResourceDefinition prometheusrules.monitoring.coreos.com to be established"
                    .to_string()
            ),
            "{w:?}"
        );
        assert!(
            w.contains(
                &"webhook behind Service monitoring/kube-prometheus-stack-operator to answer"
                    .to_string()
            ),
            "{w:?}"
        );
        let rules = unit(ap, "prometheus/resources");
        assert!(kinds(rules).contains(&"PrometheusRule".to_string()));
        assert!(kinds(rules).contains(&"PodMonitor".to_string()));

        // PostgreSQL is available before n8n starts; n8n needs nothing after it.
        let pg = unit(ap, "postgres");
        assert!(pg.waits.contains(&WaitFor::Available {
            kind: WorkloadKind::StatefulSet,
            namespace: "data".into(),
            name: "postgres".into()
        }));
        let n8n = unit(ap, "n8n");
        assert!(n8n.depends_on.contains(&"postgres".to_string()));
        assert!(
            n8n.waits
                .iter()
                .all(|w| !matches!(w, WaitFor::Available { .. }))
        );

        // Traefik's Certificate needs cert-manager's gates (and, through the catalog, its
        // issuers); the namespace `infra` is created by the unit that holds it.
        let traefik = unit(ap, "traefik");
        assert!(traefik.depends_on.contains(&"cert-manager".to_string()));
        assert!(
            traefik
                .depends_on
                .contains(&"cert-manager/resources".to_string())
        );
        let infra_holder = ap
            .units
            .iter()
            .find(|u| {
                u.objects
                    .iter()
                    .any(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == "infra")
            })
            .unwrap();
        assert!(
            metallb.depends_on.contains(&infra_holder.name),
            "{:?}",
            metallb.depends_on
        );

        // The K3s nodes have nothing to apply.
        assert!(ap.units.iter().all(|u| u.name != "k3s"));
    }

    #[test]
    fn every_object_of_the_plan_is_in_exactly_one_unit_with_secrets_and_charts() {
        let plan = seed_plan();
        let cp = cluster_plan(&plan, &all_values(&plan)).unwrap();
        let mut seen = BTreeSet::new();
        for u in &cp.apply.units {
            for o in &u.objects {
                assert!(seen.insert(ObjectRef::from_manifest(o)), "twice: {o}");
            }
        }
        let plain: usize = plan.components.iter().map(|c| c.objects.len()).sum();
        let charts: usize = plan.components.iter().map(|c| c.releases.len()).sum();
        let secrets: usize = plan.components.iter().map(|c| c.secret_objects.len()).sum();
        assert_eq!(seen.len(), plain + charts + secrets);
        // The HelmChart is render's, byte for byte.
        let c = plan.component("cert-manager").unwrap();
        let chart = homelab_render::helm_chart(&c.releases[0], c);
        assert!(cp.apply.units.iter().any(|u| u.objects.contains(&chart)));
        // The order the kube crate computes exists (no cycle, no unknown dependency).
        for u in &cp.apply.units {
            for d in &u.depends_on {
                assert!(
                    cp.apply.units.iter().any(|x| &x.name == d),
                    "{} -> {d}",
                    u.name
                );
            }
        }
    }

    #[test]
    fn secrets_are_filled_from_the_store_and_never_shown_in_debug() {
        let plan = seed_plan();
        let values = all_values(&plan);
        let cp = cluster_plan(&plan, &values).unwrap();
        let secret = cp
            .apply
            .units
            .iter()
            .flat_map(|u| u.objects.iter())
            .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == "grafana-admin")
            .unwrap();
        assert_eq!(
            secret["stringData"]["admin-password"],
            "canary-grafana-admin-password-value"
        );
        assert_eq!(secret["stringData"]["admin-user"], "admin");
        let debug = format!("{:?}", cp.apply);
        assert!(!debug.contains("canary-"), "{debug}");
    }

    #[test]
    fn unset_secrets_are_all_named_and_nothing_is_built() {
        let plan = seed_plan();
        let mut values = all_values(&plan);
        values.0.remove("cloudflare-api-token");
        values.0.remove("grafana-admin-password");
        let Some(ClusterPlanError::Secrets(err)) = cluster_plan(&plan, &values).err() else {
            panic!("refused for its secrets")
        };
        let names: Vec<&str> = err.0.iter().map(|u| u.secret.as_str()).collect();
        assert_eq!(names, ["cloudflare-api-token", "grafana-admin-password"]);
        let text = err.to_string();
        assert!(
            text.contains("homelab secrets set cloudflare-api-token"),
            "{text}"
        );
        assert!(text.contains("Secret infra/acme-dns-credentials"), "{text}");
        assert!(!text.contains("canary-"), "{text}");
    }

    #[test]
    fn status_checks_cover_nodes_components_urls_and_backups() {
        let plan = seed_plan();
        let checks = status_checks(&plan);
        assert_eq!(
            checks.nodes,
            ["k3s-master", "k3s-worker-01", "k3s-worker-02"]
        );
        let cm = checks
            .components
            .iter()
            .find(|c| c.name == "cert-manager")
            .unwrap();
        assert_eq!(cm.namespace, "infra");
        assert_eq!(cm.crds, ["certificates.cert-manager.io"]);
        assert_eq!(cm.workloads.len(), 3);
        let traefik = checks
            .components
            .iter()
            .find(|c| c.name == "traefik")
            .unwrap();
        assert_eq!(traefik.load_balancers, ["traefik"]);
        assert!(traefik.expected_addresses.contains_key("traefik"));
        assert!(checks.urls.iter().any(|u| u.host.starts_with("grafana.")));
        let backup = &checks.backups[0];
        assert_eq!(
            (backup.namespace.as_str(), backup.cronjob.as_str()),
            ("data", "postgres-backup")
        );
        assert!(backup.max_age >= Duration::from_secs(24 * 3600));
    }
}
