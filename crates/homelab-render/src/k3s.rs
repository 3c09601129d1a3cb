//! The k3s flavor's Helm delivery: one `HelmChart` (helm.cattle.io/v1) per release, in
//! kube-system with `targetNamespace`, carrying the release's values in `valuesContent`.
//! K3s' built-in helm-controller installs them. Pure.

use homelab_plan::{Component, HelmRelease};
use serde_json::{Map, Value, json};

use crate::renovate::{annotate, chart_comment};
use crate::yaml::HEADER;

/// Where K3s' helm-controller looks for HelmCharts by default.
pub(crate) const HELM_NAMESPACE: &str = "kube-system";

/// The HelmChart for a release (also what `homelab apply` sends to the cluster).
pub fn helm_chart(release: &HelmRelease, component: &Component) -> Value {
    let chart = &release.chart;
    let mut spec = Map::new();
    if chart.is_oci() {
        spec.insert(
            "chart".into(),
            json!(format!(
                "{}/{}",
                chart.repo.trim_end_matches('/'),
                chart.name
            )),
        );
    } else {
        spec.insert("repo".into(), json!(chart.repo));
        spec.insert("chart".into(), json!(chart.name));
    }
    spec.insert("version".into(), json!(chart.version));
    spec.insert("targetNamespace".into(), json!(release.namespace));
    if release.create_namespace {
        spec.insert("createNamespace".into(), json!(true));
    }
    spec.insert(
        "valuesContent".into(),
        json!(homelab_spec::emit::to_yaml(&release.values)),
    );
    json!({
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChart",
        "metadata": {
            "name": release.name,
            "namespace": HELM_NAMESPACE,
            "labels": homelab_plan::meta::labels(&chart.name, &release.name, &component.name),
        },
        "spec": spec,
    })
}

/// `helmchart.yaml`: every release of the component, each with its Renovate comment.
pub(crate) fn helm_chart_file(component: &Component) -> String {
    let mut out = String::from(HEADER);
    for (i, release) in component.releases.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let text = homelab_spec::emit::to_yaml(&helm_chart(release, component));
        let comment = chart_comment(&release.chart);
        out.push_str(&annotate(&text, Some((&["spec", "version"], &comment))));
    }
    out
}
