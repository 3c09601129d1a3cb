//! DNS-01 through each provider cert-manager supports that labs use: the solver of both
//! ClusterIssuers exactly as cert-manager documents it, its credentials from the secrets file
//! under the key the solver names, the strict schemas, and the secret the plan asks for.

use serde_json::{Value, json};

use crate::common::*;
use crate::validators::{kubernetes_version, layers_of, validate_objects};

const CLOUDFLARE: &str = "    provider: cloudflare\n    apiToken: {secret: cloudflare-api-token}\n";

fn with_provider(challenge: &str) -> String {
    assert!(
        SEED.contains(CLOUDFLARE),
        "the seed lab's challenge changed"
    );
    SEED.replace(CLOUDFLARE, challenge)
}

/// Renders the lab and checks both issuers carry `solver`, the credentials Secret maps `key`
/// to `secret`, and the plan asks the user for `secret`.
fn check(spec: &str, solver: Value, key: &str, secret: &str) {
    let (_tmp, objects) = layers_of(spec);
    let issuers: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "ClusterIssuer")
        .collect();
    assert_eq!(issuers.len(), 2);
    for issuer in issuers {
        assert_eq!(
            issuer["spec"]["acme"]["solvers"],
            json!([solver]),
            "{}",
            issuer["metadata"]["name"]
        );
    }
    validate_objects(&objects, &kubernetes_version(spec));
    let plan = plan_of(spec);
    let cm = plan.component("cert-manager").unwrap();
    let creds = cm
        .secret_objects
        .iter()
        .find(|s| s.name == "acme-dns-credentials")
        .unwrap();
    assert_eq!(
        serde_json::to_value(&creds.data).unwrap(),
        json!({key: {"from": "secret", "value": secret}})
    );
    let need = plan.secrets.iter().find(|s| s.name == secret).unwrap();
    assert_eq!(
        serde_json::to_value(&need.generator).unwrap(),
        json!({"kind": "userProvided"})
    );
    let readme = render_k3s(&plan)
        .text("infrastructure/cert-manager/README.md")
        .unwrap()
        .to_string();
    assert!(readme.contains("DNS-01 with "), "{readme}");
}

#[test]
fn google_cloud_dns_reads_a_service_account_key() {
    let spec = with_provider(
        "    provider: clouddns\n    project: my-lab-123456\n    serviceAccountKey: {secret: clouddns-service-account-key}\n",
    );
    check(
        &spec,
        json!({"dns01": {"cloudDNS": {
            "project": "my-lab-123456",
            "serviceAccountSecretRef": {"name": "acme-dns-credentials", "key": "key.json"},
        }}, "selector": {"dnsZones": ["home.jetzinger.com"]}}),
        "key.json",
        "clouddns-service-account-key",
    );
    let zoned = with_provider(
        "    provider: clouddns\n    project: my-lab-123456\n    hostedZone: lab-zone\n    serviceAccountKey: {secret: gcp-dns}\n",
    );
    let (_tmp, objects) = layers_of(&zoned);
    let issuer = objects
        .iter()
        .find(|o| o["kind"] == "ClusterIssuer")
        .unwrap();
    assert_eq!(
        issuer["spec"]["acme"]["solvers"][0]["dns01"]["cloudDNS"]["hostedZoneName"],
        "lab-zone"
    );
}

#[test]
fn azure_dns_signs_in_as_a_service_principal() {
    let spec = with_provider(
        "    provider: azuredns\n    clientId: 11111111-1111-1111-1111-111111111111\n    clientSecret: {secret: azuredns-client-secret}\n    subscriptionId: 22222222-2222-2222-2222-222222222222\n    tenantId: 33333333-3333-3333-3333-333333333333\n    resourceGroup: dns-zones\n",
    );
    check(
        &spec,
        json!({"dns01": {"azureDNS": {
            "clientID": "11111111-1111-1111-1111-111111111111",
            "clientSecretSecretRef": {"name": "acme-dns-credentials", "key": "client-secret"},
            "subscriptionID": "22222222-2222-2222-2222-222222222222",
            "tenantID": "33333333-3333-3333-3333-333333333333",
            "resourceGroupName": "dns-zones",
            "hostedZoneName": "home.jetzinger.com",
            "environment": "AzurePublicCloud",
        }}, "selector": {"dnsZones": ["home.jetzinger.com"]}}),
        "client-secret",
        "azuredns-client-secret",
    );
}

#[test]
fn rfc2136_signs_updates_with_a_tsig_key() {
    let spec = with_provider(
        "    provider: rfc2136\n    nameserver: 192.168.2.53:53\n    tsigKeyName: cert-manager\n    tsigAlgorithm: hmac-sha512\n    tsigSecret: {secret: rfc2136-tsig-secret}\n",
    );
    check(
        &spec,
        json!({"dns01": {"rfc2136": {
            "nameserver": "192.168.2.53:53",
            "tsigKeyName": "cert-manager",
            "tsigAlgorithm": "HMACSHA512",
            "tsigSecretSecretRef": {"name": "acme-dns-credentials", "key": "tsig-secret"},
        }}, "selector": {"dnsZones": ["home.jetzinger.com"]}}),
        "tsig-secret",
        "rfc2136-tsig-secret",
    );
    // HMAC-SHA256 unless told otherwise; cert-manager's own default is MD5.
    let default = with_provider(
        "    provider: rfc2136\n    nameserver: ns1.home.jetzinger.com\n    tsigKeyName: cm\n    tsigSecret: {secret: tsig}\n",
    );
    let (_tmp, objects) = layers_of(&default);
    let issuer = objects
        .iter()
        .find(|o| o["kind"] == "ClusterIssuer")
        .unwrap();
    assert_eq!(
        issuer["spec"]["acme"]["solvers"][0]["dns01"]["rfc2136"]["tsigAlgorithm"],
        "HMACSHA256"
    );
}

#[test]
fn the_existing_providers_keep_their_solvers() {
    check(
        SEED,
        json!({"dns01": {"cloudflare": {"apiTokenSecretRef": {"name": "acme-dns-credentials", "key": "api-token"}}}, "selector": {"dnsZones": ["home.jetzinger.com"]}}),
        "api-token",
        "cloudflare-api-token",
    );
    check(
        &with_provider("    provider: digitalocean\n    apiToken: {secret: do-token}\n"),
        json!({"dns01": {"digitalocean": {"tokenSecretRef": {"name": "acme-dns-credentials", "key": "access-token"}}}, "selector": {"dnsZones": ["home.jetzinger.com"]}}),
        "access-token",
        "do-token",
    );
    check(
        &with_provider(
            "    provider: route53\n    accessKeyId: AKIAIOSFODNN7EXAMPLE\n    region: eu-central-1\n    apiToken: {secret: route53-key}\n",
        ),
        json!({"dns01": {"route53": {"region": "eu-central-1", "accessKeyID": "AKIAIOSFODNN7EXAMPLE", "secretAccessKeySecretRef": {"name": "acme-dns-credentials", "key": "secret-access-key"}}}, "selector": {"dnsZones": ["home.jetzinger.com"]}}),
        "secret-access-key",
        "route53-key",
    );
}
