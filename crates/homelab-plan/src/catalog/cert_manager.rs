//! cert-manager and the lab's ClusterIssuers: Let's Encrypt staging and production for the
//! lab's challenge, or the lab's own CA whose root lives in the secrets file. It never makes a
//! key itself: the root is generated once by `homelab secrets` and only referenced here.

use std::collections::BTreeMap;

use homelab_spec::lab::{Acme, Challenge, Dns01, Tls, TsigAlgorithm};
use serde_json::{Value, json};

use super::Ctx;
use crate::meta::{labels, metadata};
use crate::{
    ChartRef, Component, HealthCheck, HelmRelease, Layer, SecretGenerator, SecretObject,
    SecretSource, versions,
};

use super::nfs::{NS, infra_namespace};

pub(crate) use crate::trust::{CA_CERT, CA_DAYS, CA_ISSUER, CA_KEY, CA_SECRET};

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
    match &lab.tls {
        Tls::Acme(acme) => acme_issuers(ctx, &mut c, acme),
        Tls::InternalCa => ca_issuer(ctx, &mut c),
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
    c.docs = match &lab.tls {
        Tls::Acme(acme) => acme_docs(ctx, acme),
        Tls::InternalCa => ca_docs(ctx),
    };
    c
}

/// The root CA from the secrets file as the Secret a CA ClusterIssuer signs with.
fn ca_issuer(ctx: &Ctx, c: &mut Component) {
    ctx.need_secret(
        CA_KEY,
        SecretGenerator::CaKey,
        "cert-manager",
        "private key of the lab's root CA (ECDSA P-256); the CA is only as safe as this key",
    );
    ctx.need_secret(
        CA_CERT,
        SecretGenerator::CaCertificate {
            common_name: format!("{} homelab root CA", ctx.lab.name),
            key_secret: CA_KEY.into(),
            days: CA_DAYS,
        },
        "cert-manager",
        "the lab's root CA certificate, self-signed with internal-ca-key; devices trust it once (`homelab tls ca`)",
    );
    ctx.manual_rotation(
        CA_KEY,
        "a new root CA must be trusted again on every device: rotate, re-apply, then repeat `homelab tls ca` on each device and remove the old CA from its trust store".into(),
    );
    c.secret_objects.push(SecretObject {
        name: CA_SECRET.into(),
        namespace: NS.into(),
        data: BTreeMap::from([
            ("tls.crt".to_string(), SecretSource::Secret(CA_CERT.into())),
            ("tls.key".to_string(), SecretSource::Secret(CA_KEY.into())),
        ]),
        labels: crate::meta::labels_map("cert-manager", "root-ca", "certificates"),
    });
    c.health.push(HealthCheck::CaSecret {
        namespace: NS.into(),
        name: CA_SECRET.into(),
    });
    c.add(
        "cluster-issuer.yaml",
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "ClusterIssuer",
            "metadata": metadata(CA_ISSUER, None, labels("cert-manager", "root-ca", "certificates")),
            "spec": {"ca": {"secretName": CA_SECRET}},
        }),
    );
}

fn ca_docs(ctx: &Ctx) -> crate::ComponentDocs {
    crate::ComponentDocs {
        title: "cert-manager".into(),
        what: format!(
            "Issues and renews certificates for every host under {} from the lab's own root CA (ClusterIssuer `{CA_ISSUER}`); Traefik serves a wildcard certificate for `*.{}` to any host without its own.",
            ctx.domain(),
            ctx.domain()
        ),
        why: format!(
            "The domain has no public DNS that Let's Encrypt could check, so the lab signs its own certificates. The root's key and certificate are generated once into the secrets file (`{CA_KEY}`, `{CA_CERT}`), so a rebuilt cluster keeps the CA every device already trusts."
        ),
        access: vec![
            "`homelab tls ca` prints the root certificate and how to trust it on macOS, Windows, Linux, iOS, Android and Firefox".into(),
            "`kubectl get certificates -A` lists certificates and whether they are ready".into(),
            format!("ClusterIssuer `{CA_ISSUER}`, signing with the Secret `{NS}/{CA_SECRET}`"),
        ],
        data: format!(
            "The root CA lives in the secrets file; `{NS}/{CA_SECRET}` is re-created from it on every apply. Issued certificates are Secrets in the cluster, re-issued automatically if lost."
        ),
        backup: "Back up the secrets file (it is in git, encrypted): losing it means a new root CA that every device must trust again.".into(),
        requirements: vec!["FR9".into(), "FR10".into(), "NFR7".into()],
    }
}

/// Let's Encrypt staging and production ClusterIssuers with the lab's challenge solver.
fn acme_issuers(ctx: &Ctx, c: &mut Component, acme: &Acme) {
    let l = || labels("cert-manager", "cert-manager", "certificates");
    let mut secret_data = BTreeMap::new();
    let solver: Value = match &acme.challenge {
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
        Challenge::Dns01(Dns01::Clouddns {
            project,
            service_account_key,
            hosted_zone,
        }) => {
            ctx.need_secret(
                service_account_key.name(),
                SecretGenerator::UserProvided,
                "cert-manager",
                "Google Cloud service account key (the JSON file) with the DNS Administrator role on the project",
            );
            secret_data.insert(
                "key.json".to_string(),
                SecretSource::Secret(service_account_key.name().into()),
            );
            json!({"dns01": {"cloudDNS": {
                "project": project,
                "hostedZoneName": hosted_zone,
                "serviceAccountSecretRef": {"name": "acme-dns-credentials", "key": "key.json"},
            }}, "selector": {"dnsZones": [ctx.domain()]}})
        }
        Challenge::Dns01(Dns01::Azuredns {
            client_id,
            client_secret,
            subscription_id,
            tenant_id,
            resource_group,
            hosted_zone,
        }) => {
            ctx.need_secret(
                client_secret.name(),
                SecretGenerator::UserProvided,
                "cert-manager",
                "client secret of the Azure service principal with DNS Zone Contributor on the lab's zone",
            );
            secret_data.insert(
                "client-secret".to_string(),
                SecretSource::Secret(client_secret.name().into()),
            );
            json!({"dns01": {"azureDNS": {
                "clientID": client_id,
                "clientSecretSecretRef": {"name": "acme-dns-credentials", "key": "client-secret"},
                "subscriptionID": subscription_id,
                "tenantID": tenant_id,
                "resourceGroupName": resource_group,
                "hostedZoneName": hosted_zone.as_deref().unwrap_or(ctx.domain()),
                "environment": "AzurePublicCloud",
            }}, "selector": {"dnsZones": [ctx.domain()]}})
        }
        Challenge::Dns01(Dns01::Rfc2136 {
            nameserver,
            tsig_key_name,
            tsig_algorithm,
            tsig_secret,
        }) => {
            ctx.need_secret(
                tsig_secret.name(),
                SecretGenerator::UserProvided,
                "cert-manager",
                "TSIG key secret (base64) the DNS server accepts updates of the lab's zone with",
            );
            secret_data.insert(
                "tsig-secret".to_string(),
                SecretSource::Secret(tsig_secret.name().into()),
            );
            json!({"dns01": {"rfc2136": {
                "nameserver": nameserver,
                "tsigKeyName": tsig_key_name,
                "tsigAlgorithm": tsig_algorithm_name(*tsig_algorithm),
                "tsigSecretSecretRef": {"name": "acme-dns-credentials", "key": "tsig-secret"},
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
                    "email": acme.acme_email,
                    "server": server,
                    "privateKeySecretRef": {"name": format!("{issuer}-account-key")},
                    "solvers": [solver.clone()],
                }},
            }),
        );
    }
}

fn acme_docs(ctx: &Ctx, acme: &Acme) -> crate::ComponentDocs {
    let challenge = match &acme.challenge {
        Challenge::Http01 => "HTTP-01 through Traefik".to_string(),
        Challenge::Dns01(d) => format!("DNS-01 with {}", d.title()),
    };
    crate::ComponentDocs {
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
    }
}

/// cert-manager's spelling of a TSIG algorithm.
fn tsig_algorithm_name(a: TsigAlgorithm) -> &'static str {
    match a {
        TsigAlgorithm::HmacMd5 => "HMACMD5",
        TsigAlgorithm::HmacSha1 => "HMACSHA1",
        TsigAlgorithm::HmacSha256 => "HMACSHA256",
        TsigAlgorithm::HmacSha512 => "HMACSHA512",
    }
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

/// The runbook for a device or program that refuses the lab's certificates.
pub(crate) fn ca_runbook(ctx: &Ctx) -> crate::Runbook {
    let title = "Runbook: CA not trusted";
    let host = ctx.fqdn("grafana");
    let domain = ctx.domain();
    crate::Runbook {
        name: "ca-not-trusted".into(),
        title: title.into(),
        content: format!(
            "# {title}\n\nThe lab signs its certificates with its own root CA (`tls.mode: internal-ca`). A device that does not trust that root shows `NET::ERR_CERT_AUTHORITY_INVALID` (Chrome, Edge), `SEC_ERROR_UNKNOWN_ISSUER` (Firefox), *This Connection Is Not Private* (Safari), or `unable to get local issuer certificate` (curl, git); `homelab status` reports the URLs as failing with an unknown issuer.\n\n## Trust the root once per device\n\n1. `homelab tls ca --out homelab-ca.pem` writes the root certificate (the public part only; the key never leaves the secrets file) and shows its fingerprint and expiry.\n2. Install it:\n\n{steps}\n3. Check: `curl --cacert homelab-ca.pem https://{host}/` answers without a certificate error, and `homelab status --ca-file homelab-ca.pem` passes its URL checks. Restart the browser after installing.\n\n## Trusted, yet still refused\n\n- **Another root signs the lab**: the cluster's root must be the one in the secrets file. Compare `openssl x509 -noout -fingerprint -sha256 -in homelab-ca.pem` with `kubectl -n {NS} get secret {CA_SECRET} -o jsonpath='{{.data.tls\\.crt}}' | base64 -d | openssl x509 -noout -fingerprint -sha256`. They differ after the secrets file was re-created: restore it from git (`git log -p -- secrets.sops.yaml`) and `homelab apply`, or trust the new root on every device and remove the old one.\n- **A certificate from before the CA**: `kubectl get certificates -A` must show every certificate Ready with issuer `{CA_ISSUER}`; delete the Secret of one that is not (`kubectl -n NS delete secret NAME-tls`) and cert-manager issues it again.\n- **The name is outside the domain**: the wildcard covers `*.{domain}` and `{domain}` only, one level deep: `a.b.{domain}` needs its own Ingress host.\n- **A name under `.local`**: multicast DNS answers those names before DNS does; use `home.arpa` or `lan`.\n- **An Android app**: apps that do not opt in to user CAs refuse it whatever the settings; use the browser or the app's own certificate setting.\n\n## The root expires\n\n`homelab status` reports the root's expiry. Before it ends: `homelab secrets rotate {CA_KEY}` (a new key and root), `homelab apply`, then trust the new root on every device as above.\n",
            steps = crate::trust::trust_steps("homelab-ca.pem"),
        ),
    }
}
