//! Traefik, the ingress K3s bundles, customised by a HelmChartConfig: HTTP to HTTPS, TLS 1.2
//! minimum, the lab's ingress address, and its dashboard behind basic auth.

use std::collections::BTreeMap;

use serde_json::json;

use super::Ctx;
use crate::meta::{labels, labels_map, metadata};
use crate::{Component, Endpoint, HealthCheck, Layer, SecretGenerator, SecretObject, SecretSource};

const NS: &str = "kube-system";
/// The MetalLB sharing key that lets the dev proxy's SSH ports use the ingress address too.
pub(crate) const SHARED_IP_KEY: &str = "lab-ingress";
pub(crate) const DASHBOARD_PASSWORD: &str = "traefik-dashboard-password";
pub(crate) const DASHBOARD_HTPASSWD: &str = "traefik-dashboard-htpasswd";
/// The wildcard Certificate of `tls.mode: internal-ca`, Traefik's default certificate.
pub(crate) const WILDCARD: &str = "lab-wildcard";
pub(crate) const WILDCARD_SECRET: &str = "lab-wildcard-tls";

pub(super) fn component(ctx: &Ctx) -> Component {
    let net = &ctx.lab.network;
    let host = ctx.fqdn("traefik");
    let mut c = Component::new("traefik", Layer::Infrastructure, Some(NS));
    c.depends_on
        .extend(["metallb".to_string(), "cert-manager".to_string()]);
    let mut values = json!({
        "ports": {
            "web": {"redirections": {"entryPoint": {"to": "websecure", "scheme": "https", "permanent": true}}},
            "websecure": {"tls": {"enabled": true}},
        },
        "tlsOptions": {"default": {"minVersion": "VersionTLS12", "sniStrict": true}},
        "service": {"annotations": {
            "metallb.io/loadBalancerIPs": net.ingress_ip.to_string(),
            "metallb.io/allow-shared-ip": SHARED_IP_KEY,
        }},
        "ingressRoute": {"dashboard": {
            "enabled": true,
            "matchRule": format!("Host(`{host}`)"),
            "entryPoints": ["websecure"],
            "middlewares": [{"name": "traefik-dashboard-auth"}],
            "tls": {"secretName": "traefik-dashboard-tls"},
        }},
        "metrics": {"prometheus": {"entryPoint": "metrics"}},
        "logs": {"access": {"enabled": true}},
    });
    let internal_ca = matches!(ctx.lab.tls, homelab_spec::lab::Tls::InternalCa);
    if internal_ca {
        // Every host under the domain gets a certificate the lab's CA signed, even one a
        // user's own IngressRoute or manifest forgets to ask for.
        values["tlsStore"] =
            json!({"default": {"defaultCertificate": {"secretName": WILDCARD_SECRET}}});
    }
    if let Some(over) = ctx.lab.helm_overrides.get("traefik") {
        let generated = values.clone();
        let changes = super::merge_override(over, &mut values);
        c.overrides.push(crate::ChartOverride {
            release: "traefik".into(),
            chart: "traefik".into(),
            pinned_version: crate::versions::K3S_TRAEFIK_CHART.into(),
            version: crate::versions::K3S_TRAEFIK_CHART.into(),
            generated,
            values: values.clone(),
            changes,
        });
    }
    c.add(
        "helmchartconfig.yaml",
        json!({
            "apiVersion": "helm.cattle.io/v1",
            "kind": "HelmChartConfig",
            "metadata": metadata("traefik", Some(NS), labels("traefik", "traefik", "ingress")),
            "spec": {"valuesContent": homelab_spec::emit::to_yaml(&values)},
        }),
    );
    c.files.push(crate::PlainFile {
        path: "values-homelab.yaml".into(),
        content: homelab_spec::emit::to_yaml(&values),
        mode: 0o644,
    });
    let l = || labels("traefik", "traefik-dashboard", "ingress");
    c.add(
        "dashboard.yaml",
        json!({
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": metadata("traefik-dashboard-auth", Some(NS), l()),
            "spec": {"basicAuth": {"secret": "traefik-dashboard-auth", "removeHeader": true}},
        }),
    );
    c.add(
        "dashboard.yaml",
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": metadata("traefik-dashboard", Some(NS), l()),
            "spec": {
                "secretName": "traefik-dashboard-tls",
                "dnsNames": [host],
                "issuerRef": {"kind": "ClusterIssuer", "name": ctx.issuer},
            },
        }),
    );
    if internal_ca {
        c.add(
            "wildcard-certificate.yaml",
            json!({
                "apiVersion": "cert-manager.io/v1",
                "kind": "Certificate",
                "metadata": metadata(WILDCARD, Some(NS), labels("traefik", "wildcard-certificate", "ingress")),
                "spec": {
                    "secretName": WILDCARD_SECRET,
                    "commonName": format!("*.{}", ctx.domain()),
                    "dnsNames": [format!("*.{}", ctx.domain()), ctx.domain()],
                    "issuerRef": {"kind": "ClusterIssuer", "name": ctx.issuer},
                },
            }),
        );
        c.health.push(HealthCheck::Certificate {
            namespace: NS.into(),
            name: WILDCARD.into(),
        });
    }
    ctx.need_secret(
        DASHBOARD_PASSWORD,
        SecretGenerator::Password { length: 24 },
        "traefik",
        "password of the Traefik dashboard user `admin`",
    );
    ctx.need_secret(
        DASHBOARD_HTPASSWD,
        SecretGenerator::Htpasswd {
            user: "admin".into(),
            password_secret: DASHBOARD_PASSWORD.into(),
        },
        "traefik",
        "bcrypt htpasswd line for the dashboard, made from traefik-dashboard-password",
    );
    c.secret_objects.push(SecretObject {
        name: "traefik-dashboard-auth".into(),
        namespace: NS.into(),
        data: BTreeMap::from([(
            "users".to_string(),
            SecretSource::Secret(DASHBOARD_HTPASSWD.into()),
        )]),
        labels: labels_map("traefik", "traefik-dashboard", "ingress"),
    });
    c.endpoints.push(Endpoint {
        name: "traefik".into(),
        url: format!("https://{host}/dashboard/"),
        host: host.clone(),
        description: "Traefik dashboard: routers, services, middlewares (user `admin`)".into(),
    });
    c.health.push(HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: NS.into(),
        name: "traefik".into(),
    });
    c.health.push(HealthCheck::LoadBalancer {
        namespace: NS.into(),
        name: "traefik".into(),
        expected_ip: Some(net.ingress_ip.to_string()),
    });
    c.health.push(HealthCheck::Certificate {
        namespace: NS.into(),
        name: "traefik-dashboard".into(),
    });
    c.health.push(HealthCheck::Url {
        url: format!("https://{host}/dashboard/"),
        host: host.clone(),
    });
    c.docs = crate::ComponentDocs {
        title: "Traefik".into(),
        what: format!(
            "The ingress: answers on {} ports 80 and 443, redirects HTTP to HTTPS, refuses TLS below 1.2, and routes each host under {} to its service.",
            net.ingress_ip,
            ctx.domain()
        ),
        why: "K3s ships and upgrades Traefik itself; a HelmChartConfig customises it without replacing it, so K3s upgrades keep working.".into(),
        access: vec![
            format!("Dashboard: https://{host}/dashboard/ (user `admin`, password: `homelab secrets get {DASHBOARD_PASSWORD}`)"),
            format!("Point the wildcard DNS record `*.{}` at {}", ctx.domain(), net.ingress_ip),
        ],
        data: "None: configuration is this directory; certificates are managed by cert-manager.".into(),
        backup: "Nothing to back up.".into(),
        requirements: vec!["FR9".into(), "FR20".into(), "FR21".into(), "FR22".into(), "FR23".into(), "NFR7".into(), "NFR9".into(), "NFR17".into()],
    };
    c
}
