//! cert-manager with Let's Encrypt staging and production ClusterIssuers for the lab's challenge.

use std::collections::BTreeMap;

use homelab_spec::lab::{Challenge, Dns01};
use serde_json::{Value, json};

use super::Ctx;
use crate::meta::{labels, metadata};
use crate::{
    ChartRef, Component, HealthCheck, HelmRelease, Layer, SecretGenerator, SecretObject,
    SecretSource, versions,
};

use super::nfs::{NS, infra_namespace};

pub(super) fn component(ctx: &Ctx) -> Component {
    let lab = ctx.lab;
    let mut c = Component::new("cert-manager", Layer::Infrastructure, Some(NS));
    c.add("namespace.yaml", infra_namespace());
    let pin = versions::CERT_MANAGER;
    let (repo, name) = pin
        .dep_name
        .rsplit_once('/')
        .expect("OCI path with chart name");
    c.releases.push(HelmRelease {
        name: "cert-manager".into(),
        namespace: NS.into(),
        chart: ChartRef { name: name.into(), repo: format!("oci://{repo}"), version: pin.version.into() },
        create_namespace: false,
        values: json!({
            "crds": {"enabled": true, "keep": true},
            // Check DNS-01 records against public resolvers: the LAN's DNS rewrites the lab's
            // domain to the ingress address and would never show the TXT record.
            "extraArgs": ["--dns01-recursive-nameservers-only", "--dns01-recursive-nameservers=1.1.1.1:53,9.9.9.9:53"],
            "prometheus": {"enabled": true},
            "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        }),
    });
    let l = || labels("cert-manager", "cert-manager", "certificates");
    let mut secret_data = BTreeMap::new();
    let solver: Value = match &lab.tls.challenge {
        Challenge::Http01 => json!({"http01": {"ingress": {"ingressClassName": "traefik"}}}),
        Challenge::Dns01(Dns01::Cloudflare { api_token }) => {
            ctx.need_secret(
                api_token.name(),
                SecretGenerator::UserProvided,
                "cert-manager",
                "Cloudflare API token with Zone:DNS:Edit on the lab's zone",
            );
            secret_data.insert(
                "api-token".to_string(),
                SecretSource::Secret(api_token.name().into()),
            );
            json!({"dns01": {"cloudflare": {"apiTokenSecretRef": {"name": "acme-dns-credentials", "key": "api-token"}}}, "selector": {"dnsZones": [ctx.domain()]}})
        }
        Challenge::Dns01(Dns01::Digitalocean { api_token }) => {
            ctx.need_secret(
                api_token.name(),
                SecretGenerator::UserProvided,
                "cert-manager",
                "DigitalOcean API token with write access to the lab's domain",
            );
            secret_data.insert(
                "access-token".to_string(),
                SecretSource::Secret(api_token.name().into()),
            );
            json!({"dns01": {"digitalocean": {"tokenSecretRef": {"name": "acme-dns-credentials", "key": "access-token"}}}, "selector": {"dnsZones": [ctx.domain()]}})
        }
        Challenge::Dns01(Dns01::Route53 {
            access_key_id,
            secret_access_key,
            region,
        }) => {
            ctx.need_secret(
                secret_access_key.name(),
                SecretGenerator::UserProvided,
                "cert-manager",
                "AWS secret access key allowed to change the lab's Route 53 zone",
            );
            secret_data.insert(
                "secret-access-key".to_string(),
                SecretSource::Secret(secret_access_key.name().into()),
            );
            json!({"dns01": {"route53": {
                "region": region,
                "accessKeyIDSecretRef": null,
                "accessKeyID": access_key_id,
                "secretAccessKeySecretRef": {"name": "acme-dns-credentials", "key": "secret-access-key"},
            }}, "selector": {"dnsZones": [ctx.domain()]}})
        }
    };
    let solver = strip_nulls(solver);
    if !secret_data.is_empty() {
        c.secret_objects.push(SecretObject {
            name: "acme-dns-credentials".into(),
            namespace: NS.into(),
            data: secret_data,
            labels: crate::meta::labels_map("cert-manager", "acme-dns-credentials", "certificates"),
        });
    }
    for (issuer, server) in [
        (
            "letsencrypt-staging",
            "https://acme-staging-v02.api.letsencrypt.org/directory",
        ),
        (
            "letsencrypt-production",
            "https://acme-v02.api.letsencrypt.org/directory",
        ),
    ] {
        c.add(
            "cluster-issuer.yaml",
            json!({
                "apiVersion": "cert-manager.io/v1",
                "kind": "ClusterIssuer",
                "metadata": metadata(issuer, None, l()),
                "spec": {"acme": {
                    "email": lab.tls.acme_email,
                    "server": server,
                    "privateKeySecretRef": {"name": format!("{issuer}-account-key")},
                    "solvers": [solver.clone()],
                }},
            }),
        );
    }
    c.health.push(HealthCheck::HelmChart {
        namespace: "kube-system".into(),
        name: "cert-manager".into(),
    });
    c.health.push(HealthCheck::Crd {
        name: "certificates.cert-manager.io".into(),
    });
    for d in [
        "cert-manager",
        "cert-manager-webhook",
        "cert-manager-cainjector",
    ] {
        c.health.push(HealthCheck::Workload {
            kind: "Deployment".into(),
            namespace: NS.into(),
            name: d.into(),
        });
    }
    let challenge = match &lab.tls.challenge {
        Challenge::Http01 => "HTTP-01 through Traefik".to_string(),
        Challenge::Dns01(d) => format!(
            "DNS-01 with {}",
            match d {
                Dns01::Cloudflare { .. } => "Cloudflare",
                Dns01::Digitalocean { .. } => "DigitalOcean",
                Dns01::Route53 { .. } => "Route 53",
            }
        ),
    };
    c.docs = crate::ComponentDocs {
        title: "cert-manager".into(),
        what: format!(
            "Requests and renews Let's Encrypt certificates for every host under {} ({challenge}); Ingresses ask for one with the annotation `cert-manager.io/cluster-issuer: {}`.",
            ctx.domain(),
            ctx.issuer
        ),
        why: "The standard for certificates in Kubernetes: renewals happen 30 days before expiry without anyone remembering. DNS-01 works for a lab that the internet cannot reach.".into(),
        access: vec!["`kubectl get certificates -A` lists certificates and whether they are ready".into(), "ClusterIssuers `letsencrypt-staging` and `letsencrypt-production`".into()],
        data: "ACME account keys and issued certificates are Secrets in the cluster; they are re-issued automatically if lost.".into(),
        backup: "Nothing to back up: certificates are re-issued on a fresh cluster (mind Let's Encrypt's rate limits; use staging while rebuilding repeatedly).".into(),
        requirements: vec!["FR9".into(), "FR10".into(), "NFR7".into()],
    };
    c
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}
