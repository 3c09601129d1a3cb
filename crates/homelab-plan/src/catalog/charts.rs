//! The user's own Helm charts from the spec's `charts:` list: a release each (with the
//! user's values as they are), its namespace, and an HTTPS Ingress to one of its Services.

use homelab_spec::lab::UserChart;

use super::Ctx;
use crate::meta::{ingress, labels, namespace};
use crate::{ChartRef, Component, Endpoint, HealthCheck, HelmRelease, Layer};

pub(super) fn component(ctx: &Ctx, chart: &UserChart) -> Component {
    let ns = chart.namespace.as_str();
    let mut c = Component::new(&chart.name, Layer::Applications, Some(ns));
    c.depends_on.extend(chart.depends_on.iter().cloned());
    // No Pod Security level is imposed: what the chart needs is the chart's business.
    c.add("namespace.yaml", namespace(ns, None));
    c.releases.push(HelmRelease {
        name: chart.name.clone(),
        namespace: ns.into(),
        chart: ChartRef {
            name: chart.chart.clone(),
            repo: chart.repo.clone(),
            version: chart.version.clone(),
        },
        values: chart
            .values
            .as_ref()
            .map(|v| v.to_json())
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({})),
        create_namespace: false,
    });
    c.health.push(HealthCheck::HelmChart {
        namespace: "kube-system".into(),
        name: chart.name.clone(),
    });
    let mut access = Vec::new();
    if let Some(h) = &chart.host {
        c.depends_on.push("traefik".into());
        c.depends_on.push("cert-manager".into());
        let host = ctx.fqdn(&h.name);
        c.add(
            "ingress.yaml",
            ingress(
                &chart.name,
                ns,
                labels(&chart.name, &chart.name, "ingress"),
                &host,
                &h.service,
                h.port,
                ctx.issuer,
            ),
        );
        c.endpoints.push(Endpoint {
            name: chart.name.clone(),
            url: format!("https://{host}"),
            host: host.clone(),
            description: format!("chart {}", chart.name),
        });
        c.health.push(HealthCheck::Certificate {
            namespace: ns.into(),
            name: format!("{}-tls", chart.name),
        });
        c.health.push(HealthCheck::Url {
            url: format!("https://{host}"),
            host: host.clone(),
        });
        access.push(format!(
            "https://{host} (the Service `{}` port {})",
            h.service, h.port
        ));
    }
    c.docs = crate::ComponentDocs {
        title: chart.name.clone(),
        what: format!(
            "The chart `{}` {} from {}, from the `charts:` list of homelab.yaml.",
            chart.chart, chart.version, chart.repo
        ),
        why: "Declared in homelab.yaml so that it is installed, upgraded and checked with the lab.".into(),
        access,
        data: "As the chart's values say (homelab adds no volume of its own).".into(),
        backup: "Not backed up by homelab; volumes it claims on the NFS storage class are in the NAS snapshots.".into(),
        requirements: vec!["FR8".into(), "FR12".into()],
    };
    c
}
