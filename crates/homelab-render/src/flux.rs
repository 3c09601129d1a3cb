//! The flux flavor's delivery: `HelmRepository` + `HelmRelease` per release, and one Flux
//! `Kustomization` per component (plus a `-config` stage for custom resources whose CRDs the
//! component's own chart installs), ordered by the plan's dependencies. Pure.

use std::collections::{BTreeMap, BTreeSet};

use homelab_plan::{Component, HelmRelease, Object, Plan};
use serde_json::{Value, json};

use crate::renovate::{annotate, chart_comment};
use crate::yaml::{HEADER, indent};

pub(crate) const FLUX_NAMESPACE: &str = "flux-system";
/// The Secret holding the age identity kustomize-controller decrypts with.
pub(crate) const SOPS_AGE_SECRET: &str = "sops-age";
/// The GitRepository `flux bootstrap` creates for the repository itself.
const GIT_SOURCE: &str = "flux-system";

/// The chart that installs the CRD of an API group the plan writes objects of.
fn crd_chart(api_version: &str) -> Option<&'static str> {
    match api_version.split('/').next()? {
        "metallb.io" => Some("metallb"),
        "cert-manager.io" | "acme.cert-manager.io" => Some("cert-manager"),
        "monitoring.coreos.com" => Some("kube-prometheus-stack"),
        _ => None,
    }
}

/// Whether the object's kind only exists once the component's own chart is installed: such
/// objects go to a second stage (`config/`), or Flux's dry-run of the first one fails.
pub(crate) fn needs_own_crds(component: &Component, object: &Object) -> bool {
    crd_chart(object.api_version())
        .is_some_and(|chart| component.releases.iter().any(|r| r.chart.name == chart))
}

pub(crate) fn helm_repository(release: &HelmRelease, component: &Component) -> Value {
    let chart = &release.chart;
    let mut spec = json!({"interval": "12h", "url": chart.repo});
    if chart.is_oci() {
        spec["type"] = json!("oci");
    }
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmRepository",
        "metadata": {
            "name": release.name,
            "namespace": FLUX_NAMESPACE,
            "labels": homelab_plan::meta::labels(&chart.name, &release.name, &component.name),
        },
        "spec": spec,
    })
}

/// The HelmRelease without its values (they are appended as the last key of `spec`).
fn helm_release_head(release: &HelmRelease, component: &Component) -> Value {
    let chart = &release.chart;
    json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {
            "name": release.name,
            "namespace": release.namespace,
            "labels": homelab_plan::meta::labels(&chart.name, &release.name, &component.name),
        },
        "spec": {
            "interval": "30m",
            "releaseName": release.name,
            "chart": {"spec": {
                "chart": chart.name,
                "version": chart.version,
                "sourceRef": {"kind": "HelmRepository", "name": release.name, "namespace": FLUX_NAMESPACE},
                "interval": "12h",
            }},
            "install": {"createNamespace": release.create_namespace, "crds": "CreateReplace", "remediation": {"retries": 3}},
            "upgrade": {"crds": "CreateReplace", "remediation": {"retries": 3}},
        },
    })
}

pub(crate) fn helm_repository_file(component: &Component) -> String {
    let mut out = String::from(HEADER);
    out.push_str(&homelab_spec::emit::to_yaml_documents(
        component
            .releases
            .iter()
            .map(|r| helm_repository(r, component))
            .collect::<Vec<_>>()
            .iter(),
    ));
    out
}

pub(crate) fn helm_release_file(component: &Component) -> String {
    let mut out = String::from(HEADER);
    for (i, release) in component.releases.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let head = homelab_spec::emit::to_yaml(&helm_release_head(release, component));
        let comment = chart_comment(&release.chart);
        out.push_str(&annotate(
            &head,
            Some((&["spec", "chart", "spec", "version"], &comment)),
        ));
        match &release.values {
            Value::Object(m) if !m.is_empty() => {
                out.push_str("  values:\n");
                out.push_str(&indent(&homelab_spec::emit::to_yaml(&release.values), 4));
            }
            _ => out.push_str("  values: {}\n"),
        }
    }
    out
}

/// What the flux Kustomizations need to know of one component's rendered directory.
pub(crate) struct Stages {
    pub has_main: bool,
    pub has_config: bool,
    pub has_secrets: bool,
}

/// `clusters/<lab>/components.yaml`: one Flux Kustomization per component stage.
pub(crate) fn kustomizations(plan: &Plan, stages: &BTreeMap<String, Stages>) -> String {
    // A component whose namespace is declared by another one waits for it too.
    let mut namespace_owner: BTreeMap<&str, &str> = BTreeMap::new();
    for c in &plan.components {
        for o in &c.objects {
            if o.kind() == "Namespace" {
                namespace_owner.entry(o.name()).or_insert(c.name.as_str());
            }
        }
    }
    // Dependents wait for a dependency's last stage.
    let last_stage = |name: &str| -> Option<String> {
        let s = stages.get(name)?;
        if s.has_config {
            Some(format!("{name}-config"))
        } else if s.has_main {
            Some(name.to_string())
        } else {
            None
        }
    };
    let mut docs = Vec::new();
    for c in &plan.components {
        let Some(s) = stages.get(&c.name) else {
            continue;
        };
        if !s.has_main {
            continue;
        }
        let mut deps: BTreeSet<String> =
            c.depends_on.iter().filter_map(|d| last_stage(d)).collect();
        let mut namespaces: BTreeSet<&str> =
            c.objects.iter().filter_map(|o| o.namespace()).collect();
        namespaces.extend(c.releases.iter().map(|r| r.namespace.as_str()));
        for ns in namespaces {
            if let Some(owner) = namespace_owner.get(ns)
                && *owner != c.name
                && let Some(stage) = last_stage(owner)
            {
                deps.insert(stage);
            }
        }
        let path = format!("./{}", c.dir());
        docs.push(kustomization(&c.name, &path, &deps, s.has_secrets));
        if s.has_config {
            let deps = BTreeSet::from([c.name.clone()]);
            docs.push(kustomization(
                &format!("{}-config", c.name),
                &format!("{path}/config"),
                &deps,
                false,
            ));
        }
    }
    let mut out = String::from(HEADER);
    out.push_str(
        "# Flux applies each component once the ones it depends on are ready (`wait: true`).\n",
    );
    out.push_str(&homelab_spec::emit::to_yaml_documents(docs.iter()));
    out
}

fn kustomization(name: &str, path: &str, deps: &BTreeSet<String>, decrypt: bool) -> Value {
    let mut spec = json!({
        "interval": "10m",
        "retryInterval": "1m",
        "timeout": "15m",
        "path": path,
        "prune": true,
        "wait": true,
        "sourceRef": {"kind": "GitRepository", "name": GIT_SOURCE},
    });
    if !deps.is_empty() {
        spec["dependsOn"] = json!(deps.iter().map(|d| json!({"name": d})).collect::<Vec<_>>());
    }
    if decrypt {
        spec["decryption"] = json!({"provider": "sops", "secretRef": {"name": SOPS_AGE_SECRET}});
    }
    json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {
            "name": name,
            "namespace": FLUX_NAMESPACE,
            "labels": homelab_plan::meta::labels(name, name, "gitops"),
        },
        "spec": spec,
    })
}
