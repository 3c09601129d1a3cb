//! `tls.mode: internal-ca` in both flavors: the root CA from the secrets file as the CA
//! ClusterIssuer's Secret, a wildcard certificate Traefik serves by default, every Ingress on
//! the CA issuer, no Let's Encrypt left, the "CA not trusted" runbook, and the strict schemas.

use serde_json::{Value, json};

use crate::common::*;
use crate::flux::Lab;
use crate::validators::{build_layers, kubernetes_version, layers_of, validate_objects};

const ACME: &str = "tls:\n  acmeEmail: tom@jetzinger.com\n  environment: production      # `staging` while experimenting (untrusted certificates, no rate limits)\n  challenge:\n    # HTTP-01 cannot work here: 192.168.2.100 is private, Let's Encrypt cannot reach it.\n    # DNS-01 proves ownership through a TXT record set with the DNS provider's API.\n    type: dns01\n    provider: cloudflare\n    apiToken: {secret: cloudflare-api-token}\n";

/// The seed lab under `domain` with its own CA instead of Let's Encrypt.
pub fn internal_ca_spec(domain: &str) -> String {
    assert!(SEED.contains(ACME), "the seed lab's tls section changed");
    SEED.replace(ACME, "tls:\n  mode: internal-ca\n")
        .replace("domain: home.jetzinger.com", &format!("domain: {domain}"))
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// What both flavors carry: the issuer, the wildcard and Traefik's default certificate.
fn check_issuing(objects: &[Value], traefik_values: &Value, domain: &str) {
    let issuers = of_kind(objects, "ClusterIssuer");
    assert_eq!(issuers.len(), 1, "{issuers:?}");
    assert_eq!(issuers[0]["metadata"]["name"], "homelab-ca");
    assert_eq!(
        issuers[0]["spec"],
        json!({"ca": {"secretName": "homelab-root-ca"}})
    );
    let wildcard = find(objects, "Certificate", "lab-wildcard");
    assert_eq!(wildcard["metadata"]["namespace"], "kube-system");
    assert_eq!(
        wildcard["spec"]["dnsNames"],
        json!([format!("*.{domain}"), domain])
    );
    assert_eq!(
        wildcard["spec"]["issuerRef"],
        json!({"kind": "ClusterIssuer", "name": "homelab-ca"})
    );
    assert_eq!(
        traefik_values["tlsStore"],
        json!({"default": {"defaultCertificate": {"secretName": "lab-wildcard-tls"}}})
    );
    for ing in of_kind(objects, "Ingress") {
        assert_eq!(
            ing["metadata"]["annotations"]["cert-manager.io/cluster-issuer"], "homelab-ca",
            "{}",
            ing["metadata"]["name"]
        );
    }
    for cert in of_kind(objects, "Certificate") {
        assert_eq!(cert["spec"]["issuerRef"]["name"], "homelab-ca");
    }
    let text = serde_json::to_string(objects).unwrap();
    assert!(!text.contains("letsencrypt"), "no Let's Encrypt is left");
    assert!(!text.contains("acme-dns-credentials"));
}

#[test]
fn the_k3s_tree_signs_every_host_with_the_lab_ca() {
    for domain in ["lab.home.arpa", "lab.lan"] {
        let spec = internal_ca_spec(domain);
        let (_tmp, objects) = layers_of(&spec);
        let config = find(&objects, "HelmChartConfig", "traefik");
        let values = yaml_value(config["spec"]["valuesContent"].as_str().unwrap());
        check_issuing(&objects, &values, domain);
        assert!(
            of_kind(&objects, "Secret").is_empty(),
            "the k3s tree carries no Secret: apply makes homelab-root-ca from the secrets file"
        );
        validate_objects(&objects, &kubernetes_version(&spec));
    }
}

#[test]
fn the_plan_takes_the_root_from_the_secrets_file() {
    let plan = plan_of(&internal_ca_spec("lab.home.arpa"));
    let cm = plan.component("cert-manager").unwrap();
    let secret = cm
        .secret_objects
        .iter()
        .find(|s| s.name == "homelab-root-ca")
        .expect("the CA Secret");
    assert_eq!(secret.namespace, "infra");
    assert_eq!(
        serde_json::to_value(&secret.data).unwrap(),
        json!({
            "tls.crt": {"from": "secret", "value": "internal-ca-cert"},
            "tls.key": {"from": "secret", "value": "internal-ca-key"},
        })
    );
    let cert = plan
        .secrets
        .iter()
        .find(|s| s.name == "internal-ca-cert")
        .unwrap();
    assert_eq!(
        serde_json::to_value(&cert.generator).unwrap(),
        json!({"kind": "caCertificate", "commonName": "home-lab homelab root CA", "keySecret": "internal-ca-key", "days": 3650})
    );
    assert!(
        plan.secrets
            .iter()
            .find(|s| s.name == "internal-ca-key")
            .unwrap()
            .manual_rotation
            .as_deref()
            .is_some_and(|m| m.contains("trusted again on every device"))
    );
    assert!(
        !plan
            .secrets
            .iter()
            .any(|s| s.name == "cloudflare-api-token"),
        "no DNS-01 token without ACME"
    );
}

#[test]
fn the_flux_tree_carries_the_root_encrypted_and_the_same_issuer() {
    let spec = internal_ca_spec("lab.home.arpa");
    let lab = Lab::new(&spec);
    let out = lab.dir.path().join("tree");
    lab.render_into(&out);
    let objects = build_layers(&out);
    let secret = find(&objects, "Secret", "homelab-root-ca");
    assert_eq!(secret["metadata"]["namespace"], "infra");
    assert!(
        secret.get("sops").is_some(),
        "the root CA is SOPS-encrypted"
    );
    let config = find(&objects, "HelmChartConfig", "traefik");
    let values = yaml_value(config["spec"]["valuesContent"].as_str().unwrap());
    let rest: Vec<Value> = objects
        .iter()
        .filter(|o| o["kind"] != "Secret")
        .cloned()
        .collect();
    check_issuing(&rest, &values, "lab.home.arpa");
    validate_objects(&rest, &kubernetes_version(&spec));
    let leaks = lab.canaries.check_dir(&out).unwrap();
    assert!(leaks.is_empty(), "{leaks:?}");
}

#[test]
fn the_runbook_says_how_to_trust_the_root_on_every_platform() {
    let plan = plan_of(&internal_ca_spec("lab.home.arpa"));
    let tree = render_k3s(&plan);
    let text = tree.text("docs/runbooks/ca-not-trusted.md").unwrap();
    for part in [
        "homelab tls ca --out homelab-ca.pem",
        "**macOS**",
        "**Windows**",
        "**Linux**",
        "**iOS, iPadOS**",
        "**Android**",
        "**Firefox**",
        "NET::ERR_CERT_AUTHORITY_INVALID",
        "curl --cacert homelab-ca.pem https://grafana.lab.home.arpa/",
        "kubectl -n infra get secret homelab-root-ca",
        "homelab secrets rotate internal-ca-key",
    ] {
        assert!(text.contains(part), "{part}\n{text}");
    }
    let readme = tree.text("infrastructure/cert-manager/README.md").unwrap();
    assert!(readme.contains("homelab tls ca"), "{readme}");
}

#[test]
fn an_acme_lab_has_no_ca_and_no_ca_runbook() {
    let plan = seed_plan();
    assert!(
        !plan
            .secrets
            .iter()
            .any(|s| s.name.starts_with("internal-ca"))
    );
    assert!(!plan.runbooks.iter().any(|r| r.name == "ca-not-trusted"));
    let (_tmp, objects) = layers_of(SEED);
    assert!(
        !objects
            .iter()
            .any(|o| o["metadata"]["name"] == "lab-wildcard")
    );
    let config = find(&objects, "HelmChartConfig", "traefik");
    let values = yaml_value(config["spec"]["valuesContent"].as_str().unwrap());
    assert!(values.get("tlsStore").is_none());
}
