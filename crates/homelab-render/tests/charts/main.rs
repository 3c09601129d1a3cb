//! The chart tier: every chart a lab installs, through `helm template` of the real upstream
//! chart at the pinned version (shared/charts) with exactly the values the rendered tree
//! carries, then every templated object and every object of the tree against the strict
//! Kubernetes schemas and the charts' own CRDs, and the cross-checks of what the lab's
//! objects point at (see README.md beside this file). Run it alone with
//! `cargo nextest run -p homelab-render --test charts`.

#[path = "../tree/alert_budget.rs"]
mod alert_budget;
#[path = "../tree/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "../tree/crd.rs"]
#[allow(dead_code)]
mod crd;

mod checks;
mod lab;
mod negative;
mod p1;
mod schemas;
mod setup;

use common::SEED;

/// One test per lab; adding a lab to the tier is one line here: `test_name => spec text`.
macro_rules! labs {
    ($($name:ident => $spec:expr,)*) => {
        $(
            #[test]
            fn $name() {
                let spec = $spec;
                lab::check_lab(stringify!($name), spec.as_ref());
            }
        )*

        /// Every lab of the tier: name and spec text.
        pub fn all_labs() -> Vec<(&'static str, String)> {
            vec![$((stringify!($name), { let spec = $spec; AsRef::<str>::as_ref(&spec).to_string() }),)*]
        }
    };
}

labs! {
    seed_lab => SEED,
    minimal_preset => common::minimal_spec(),
    apps_and_every_receiver => common::wide_spec(),
    gpu_ollama_route53_staging => gpu_route53_staging(),
    gpu_time_slicing_tainted => gpu_time_slicing(),
    openbao_on_raft => openbao(),
    digitalocean_dns01 => digitalocean(),
    internal_ca_home_arpa => internal_ca(),
    rfc2136_dns01 => rfc2136(),
    http01_without_optional_services => http01_bare(),
    catalog_helm_overrides => catalog_overrides(),
    sso_authelia => common::sso_spec(),
    media_lab => std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/media-lab.yaml")).unwrap(),
}

/// The seed lab with `helm:` values on several catalog charts, Traefik's over K3s's own.
fn catalog_overrides() -> String {
    let s = replace(
        SEED,
        "    grafanaAdminPassword: {secret: grafana-admin-password}\n",
        "    grafanaAdminPassword: {secret: grafana-admin-password}\n    helm:\n      values:\n        prometheus: {prometheusSpec: {retentionSize: 18GB}}\n        alertmanager: {alertmanagerSpec: {replicas: 1}}\n",
    );
    let s = replace(
        &s,
        "  n8n:\n    database: n8n\n",
        "  n8n:\n    database: n8n\n    helm:\n      values:\n        main: {resources: {limits: {memory: 1Gi}}}\n",
    );
    s + "\ninfrastructure:\n  metallb:\n    helm:\n      values:\n        controller: {logLevel: debug}\n        speaker: {logLevel: warn}\n  traefik:\n    helm:\n      values:\n        logs: {general: {level: WARN}}\n        deployment: {replicas: 2}\n  nfs:\n    helm:\n      values:\n        nfs: {mountOptions: [nfsvers=4.2, hard]}\n"
}

/// The seed lab with Ollama on a GPU node and Open WebUI over it, DNS-01 through Route 53 and
/// staging certificates.
fn gpu_route53_staging() -> String {
    let s = replace(
        SEED,
        "      labels:\n        homelab/workload: general\n",
        "      labels:\n        homelab/workload: general\n      gpu: true\n",
    );
    let s = replace(
        &s,
        "    gpu: false                 # the RTX 3060 comes in phase 2\n",
        "    gpu: true\n",
    );
    let s = replace(&s, "  environment: production ", "  environment: staging ");
    let s = replace(
        &s,
        "  monitoring:                  # Prometheus, Grafana, Alertmanager\n",
        "  openWebui: {adminEmail: me@example.org}\n  monitoring:                  # Prometheus, Grafana, Alertmanager\n",
    );
    replace(
        &s,
        "    provider: cloudflare\n    apiToken: {secret: cloudflare-api-token}\n",
        "    provider: route53\n    accessKeyId: AKIAIOSFODNN7EXAMPLE\n    region: eu-central-1\n    apiToken: {secret: route53-secret-access-key}\n",
    )
}

/// The seed lab with its GPU node's card shared three ways and tainted, for Ollama, vLLM and
/// an app, with Open WebUI over Ollama and vLLM.
fn gpu_time_slicing() -> String {
    let s = replace(
        SEED,
        "      labels:\n        homelab/workload: general\n",
        "      labels:\n        homelab/workload: general\n      gpu: {vendor: nvidia, sharing: {replicas: 3}, taint: true}\n",
    );
    let s = replace(
        &s,
        "    gpu: false                 # the RTX 3060 comes in phase 2\n",
        "    gpu: true\n",
    );
    let apps = "apps:\n  - name: plex\n    image: docker.io/plexinc/pms-docker:1.41.3.9314-a0bfb8370\n    port: 32400\n    gpu: true\n";
    let s = replace(&s, "apps: []", apps);
    replace(
        &s,
        "  monitoring:                  # Prometheus, Grafana, Alertmanager\n",
        "  vllm: {model: Qwen/Qwen2.5-1.5B-Instruct, revision: main, hfToken: {secret: huggingface-token}}\n  openWebui: {}\n  monitoring:                  # Prometheus, Grafana, Alertmanager\n",
    )
}

/// The seed lab with OpenBao under another host name and its own volume sizes.
fn openbao() -> String {
    replace(
        SEED,
        "  monitoring:                  # Prometheus, Grafana, Alertmanager\n",
        "  openbao: {host: vault, storage: 2Gi, auditStorage: 1Gi}\n  monitoring:                  # Prometheus, Grafana, Alertmanager\n",
    )
}

/// The seed lab under a `home.arpa` name with its own CA instead of Let's Encrypt.
fn internal_ca() -> String {
    let start = SEED.find("tls:\n").expect("the seed lab has a tls section");
    let end = start
        + SEED[start..]
            .find("\n\n")
            .expect("a blank line ends the tls section");
    let s = format!(
        "{}tls:\n  mode: internal-ca\n{}",
        &SEED[..start],
        &SEED[end..]
    );
    replace(&s, "domain: home.jetzinger.com", "domain: lab.home.arpa")
}

/// The seed lab with DNS-01 through its own authoritative server (RFC 2136, TSIG-signed).
fn rfc2136() -> String {
    replace(
        SEED,
        "    provider: cloudflare\n    apiToken: {secret: cloudflare-api-token}\n",
        "    provider: rfc2136\n    nameserver: 192.168.2.53\n    tsigKeyName: cert-manager\n    tsigSecret: {secret: rfc2136-tsig-secret}\n",
    )
}

/// The seed lab with DNS-01 through DigitalOcean.
fn digitalocean() -> String {
    replace(
        SEED,
        "    provider: cloudflare\n    apiToken: {secret: cloudflare-api-token}\n",
        "    provider: digitalocean\n    apiToken: {secret: digitalocean-api-token}\n",
    )
}

/// The minimal preset on public addresses (HTTP-01 needs an ingress the internet reaches),
/// with monitoring but no logging or PostgreSQL, and one webhook receiver for every severity.
fn http01_bare() -> String {
    let mut s = replace(
        &common::minimal_spec(),
        "  challenge:\n    type: dns01                      # works while the lab is not reachable from the internet\n    provider: cloudflare\n    apiToken: {secret: cloudflare-api-token}\n",
        "  challenge:\n    type: http01\n",
    );
    for (from, to) in [
        ("subnet: 192.168.2.0/24", "subnet: 203.0.113.0/24"),
        ("gateway: 192.168.2.1", "gateway: 203.0.113.1"),
        (
            "loadBalancerPool: 192.168.2.100-192.168.2.120",
            "loadBalancerPool: 203.0.113.100-203.0.113.120",
        ),
        ("address: 192.168.2.20", "address: 203.0.113.20"),
        ("server: 192.168.2.2", "server: 203.0.113.2"),
    ] {
        s = replace(&s, from, to);
    }
    s + "\nalerting:\n  receivers:\n    - name: everything\n      webhook:\n        url: https://hooks.example.com/alerts\n      severities: [critical, warning, info]\n\nservices:\n  monitoring:\n    retention: 7d\n    storage: 10Gi\n    grafanaAdminPassword: {secret: grafana-admin-password}\n"
}

/// Findings that are known and about to be fixed: a finding that starts with one of these
/// does not fail its lab. Each fix removes its line, so the tier then proves it fixed.
pub const KNOWN: &[&str] = &[];

fn replace(s: &str, from: &str, to: &str) -> String {
    assert!(
        s.contains(from),
        "the lab text changed: {from:?} is not in it"
    );
    s.replace(from, to)
}

/// The CRDs the charts ship, templated for every lab and validated once (they are the
/// largest objects by far, and the labs share them; each lab skips them).
#[test]
fn every_crd_the_charts_ship_passes_the_strict_schemas() {
    let findings = lab::check_crds(&all_labs());
    assert!(
        findings.is_empty(),
        "the charts' CRDs fail the strict schemas:\n\n{}",
        findings.join("\n\n")
    );
}

/// The spec has no BGP, so MetalLB runs in layer 2 only: no FRR, no FRR-K8s DaemonSet.
#[test]
fn metallb_deploys_no_bgp_routing_in_a_layer2_lab() {
    let run = lab::run_lab(SEED);
    let metallb = run
        .templated
        .iter()
        .find(|t| t.release.chart == "metallb")
        .expect("the seed lab installs MetalLB");
    let bgp: Vec<String> = metallb
        .objects
        .iter()
        .filter(|o| {
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            name.contains("frr")
                || o["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["name"].as_str().unwrap_or_default().contains("frr"))
        })
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert!(
        bgp.is_empty(),
        "MetalLB templates BGP routing parts: {bgp:?}"
    );
}
