//! The flux flavor's delivery: `HelmRepository` (or, for a chart in an OCI registry,
//! `OCIRepository`) + `HelmRelease` per release, and one Flux
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
/// The Secret holding the Vault/OpenBao token kustomize-controller decrypts with, for a lab
/// whose SOPS files are wrapped by a transit key.
pub(crate) const SOPS_VAULT_SECRET: &str = "sops-hcvault";
/// The key of that Secret: kustomize-controller recognises a Vault token by this exact name.
pub(crate) const SOPS_VAULT_TOKEN_KEY: &str = "sops.vault-token";

/// The Secret the Kustomizations' decryption names: the Vault token's when the lab's data keys
/// are wrapped by a transit key, the age key's otherwise.
pub(crate) fn decryption_secret(plan: &Plan) -> &'static str {
    if plan.secrets_vault.is_some() {
        SOPS_VAULT_SECRET
    } else {
        SOPS_AGE_SECRET
    }
}
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

/// The media type of a Helm chart's layer in an OCI artifact, which an OCIRepository must
/// select for a HelmRelease to read it as a chart.
const HELM_CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// The source of a release: an `OCIRepository` pinned to the chart's tag for an OCI chart
/// (the kind Flux recommends for them), a `HelmRepository` otherwise.
pub(crate) fn helm_repository(release: &HelmRelease, component: &Component) -> Value {
    let chart = &release.chart;
    let (kind, spec) = if chart.is_oci() {
        (
            "OCIRepository",
            json!({
                "interval": "12h",
                "url": format!("{}/{}", chart.repo.trim_end_matches('/'), chart.name),
                "ref": {"tag": chart.version},
                "layerSelector": {"mediaType": HELM_CHART_LAYER, "operation": "copy"},
            }),
        )
    } else {
        (
            "HelmRepository",
            json!({"interval": "12h", "url": chart.repo}),
        )
    };
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": kind,
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
    let mut spec = serde_json::Map::new();
    spec.insert("interval".into(), json!("30m"));
    spec.insert("releaseName".into(), json!(release.name));
    if chart.is_oci() {
        // The OCIRepository names the chart and its version.
        spec.insert(
            "chartRef".into(),
            json!({"kind": "OCIRepository", "name": release.name, "namespace": FLUX_NAMESPACE}),
        );
    } else {
        spec.insert(
            "chart".into(),
            json!({"spec": {
                "chart": chart.name,
                "version": chart.version,
                "sourceRef": {"kind": "HelmRepository", "name": release.name, "namespace": FLUX_NAMESPACE},
                "interval": "12h",
            }}),
        );
    }
    spec.insert(
        "install".into(),
        json!({"createNamespace": release.create_namespace, "crds": "CreateReplace", "remediation": {"retries": 3}}),
    );
    spec.insert(
        "upgrade".into(),
        json!({"crds": "CreateReplace", "remediation": {"retries": 3}}),
    );
    json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {
            "name": release.name,
            "namespace": release.namespace,
            "labels": homelab_plan::meta::labels(&chart.name, &release.name, &component.name),
        },
        "spec": spec,
    })
}

/// The component's source files: `helmrepository.yaml` for charts from Helm repositories,
/// `ocirepository.yaml` (with the Renovate comment above each tag) for OCI charts.
pub(crate) fn source_files(component: &Component) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let (oci, helm): (Vec<&HelmRelease>, Vec<&HelmRelease>) =
        component.releases.iter().partition(|r| r.chart.is_oci());
    if !helm.is_empty() {
        let mut text = String::from(HEADER);
        text.push_str(&homelab_spec::emit::to_yaml_documents(
            helm.iter()
                .map(|r| helm_repository(r, component))
                .collect::<Vec<_>>()
                .iter(),
        ));
        out.push(("helmrepository.yaml", text));
    }
    if !oci.is_empty() {
        let mut text = String::from(HEADER);
        for (i, r) in oci.iter().enumerate() {
            if i > 0 {
                text.push_str("---\n");
            }
            let doc = homelab_spec::emit::to_yaml(&helm_repository(r, component));
            text.push_str(&annotate(
                &doc,
                Some((&["spec", "ref", "tag"], &chart_comment(&r.chart))),
            ));
        }
        out.push(("ocirepository.yaml", text));
    }
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
        // An OCI chart's version is in its OCIRepository, which carries the comment.
        let pin: Option<(&[&str], &str)> = (!release.chart.is_oci())
            .then_some((&["spec", "chart", "spec", "version"][..], comment.as_str()));
        out.push_str(&annotate(&head, pin));
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
        docs.push(kustomization(
            &c.name,
            &path,
            &deps,
            s.has_secrets.then(|| decryption_secret(plan)),
        ));
        if s.has_config {
            let deps = BTreeSet::from([c.name.clone()]);
            docs.push(kustomization(
                &format!("{}-config", c.name),
                &format!("{path}/config"),
                &deps,
                None,
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

fn kustomization(name: &str, path: &str, deps: &BTreeSet<String>, decrypt: Option<&str>) -> Value {
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
    if let Some(secret) = decrypt {
        spec["decryption"] = json!({"provider": "sops", "secretRef": {"name": secret}});
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
