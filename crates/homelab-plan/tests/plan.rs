//! The plan of the seed lab and of the minimal preset: order, dependencies, contents.

use homelab_plan::{HealthCheck, Plan, plan};

fn seed() -> Plan {
    let loaded = homelab_spec::load_str("homelab.yaml", homelab_spec::templates::SEED)
        .expect("seed is valid");
    plan(&loaded.lab)
}

fn minimal() -> Plan {
    let loaded = homelab_spec::load_str("homelab.yaml", homelab_spec::templates::MINIMAL)
        .expect("minimal is valid");
    plan(&loaded.lab)
}

#[test]
fn seed_components_in_dependency_order() {
    let p = seed();
    let names: Vec<&str> = p.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "k3s",
            "local-path",
            "nfs",
            "metallb",
            "cert-manager",
            "traefik",
            "prometheus",
            "loki",
            "postgres",
            "ollama",
            "n8n",
            "paperless",
            "nginx",
            "dev-containers"
        ]
    );
    for (i, c) in p.components.iter().enumerate() {
        for d in &c.depends_on {
            let at = names
                .iter()
                .position(|n| n == d)
                .unwrap_or_else(|| panic!("{} depends on missing {d}", c.name));
            assert!(at < i, "{} comes before its dependency {d}", c.name);
        }
    }
}

#[test]
fn minimal_is_only_the_platform() {
    let p = minimal();
    let names: Vec<&str> = p.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "k3s",
            "local-path",
            "nfs",
            "metallb",
            "cert-manager",
            "traefik"
        ]
    );
}

#[test]
fn every_object_exists_once_and_is_labelled() {
    let p = seed();
    let mut seen = std::collections::BTreeSet::new();
    for (c, o) in p.objects() {
        assert!(
            seen.insert(o.id()),
            "{} appears twice (second in {})",
            o.id(),
            c.name
        );
        let labels = &o.manifest["metadata"]["labels"];
        for key in [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
            "app.kubernetes.io/part-of",
            "app.kubernetes.io/managed-by",
        ] {
            assert!(labels[key].is_string(), "{} lacks label {key}", o.id());
        }
    }
}

#[test]
fn every_web_service_has_an_https_host_under_the_domain() {
    let p = seed();
    let hosts: Vec<&str> = p.urls().map(|e| e.host.as_str()).collect();
    for h in [
        "traefik",
        "grafana",
        "prometheus",
        "alertmanager",
        "ollama",
        "n8n",
        "paperless",
        "dev",
    ] {
        assert!(
            hosts.contains(&format!("{h}.home.jetzinger.com").as_str()),
            "{h} missing from {hosts:?}"
        );
    }
    for e in p.urls() {
        assert!(e.url.starts_with("https://"), "{}", e.url);
    }
}

#[test]
fn secrets_are_referenced_by_name_only() {
    let p = seed();
    let names: Vec<&str> = p.secrets.iter().map(|s| s.name.as_str()).collect();
    for n in [
        "k3s-token",
        "grafana-admin-password",
        "postgres-superuser-password",
        "postgres-n8n-password",
        "n8n-encryption-key",
        "paperless-secret-key",
        "traefik-dashboard-htpasswd",
        "cloudflare-api-token",
        "devcontainer-tom-git-credentials",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    // No Secret kind among the applied objects: they are built from the secrets file.
    assert!(p.objects().all(|(_, o)| o.kind() != "Secret"));
}

#[test]
fn backups_and_health_cover_postgres() {
    let p = seed();
    let pg = p.component("postgres").unwrap();
    assert_eq!(pg.backups[0].cronjob, "postgres-backup");
    assert!(pg.health.contains(&HealthCheck::Backup {
        namespace: "data".into(),
        cronjob: "postgres-backup".into(),
        max_age_hours: 26
    }));
    let runbooks: Vec<&str> = p.runbooks.iter().map(|r| r.name.as_str()).collect();
    for r in [
        "postgres-backup",
        "postgres-restore",
        "postgres-connectivity",
        "cluster-backup",
        "cluster-restore",
        "nfs-restore",
        "node-down",
    ] {
        assert!(runbooks.contains(&r), "{r} missing from {runbooks:?}");
    }
}

#[test]
fn k3s_configs_carry_the_settings_the_platform_needs() {
    let p = seed();
    let master = p.nodes.iter().find(|n| n.name == "k3s-master").unwrap();
    assert!(master.init);
    for needle in [
        "cluster-init: true",
        "- servicelb",
        "secrets-encryption: true",
        "etcd-snapshot-retention: 14",
        "etcd-snapshot-dir: /mnt/k3s-snapshots",
        "bind-address=0.0.0.0",
        "token-file: /etc/rancher/k3s/cluster-token",
        "- k3s-master",
    ] {
        assert!(
            master.k3s_config.contains(needle),
            "{needle} missing:\n{}",
            master.k3s_config
        );
    }
    let worker = p.nodes.iter().find(|n| n.name == "k3s-worker-01").unwrap();
    assert!(
        worker
            .k3s_config
            .contains("server: https://192.168.2.20:6443"),
        "{}",
        worker.k3s_config
    );
    assert!(!worker.k3s_config.contains("cluster-init"));
}

#[test]
fn same_lab_same_plan() {
    let a = serde_json::to_string(&seed()).unwrap();
    let b = serde_json::to_string(&seed()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_gpu_node_plans_the_gpu_component_after_traefik_and_says_what_nodes_apply_does() {
    let spec = homelab_spec::templates::SEED.replace(
        "      labels:\n        homelab/workload: general\n",
        "      labels:\n        homelab/workload: general\n      gpu: true\n",
    );
    assert_ne!(spec, homelab_spec::templates::SEED);
    let p = plan(&homelab_spec::load_str("homelab.yaml", &spec).unwrap().lab);
    let names: Vec<&str> = p.components.iter().map(|c| c.name.as_str()).collect();
    let gpu = names
        .iter()
        .position(|n| *n == "gpu")
        .expect("the gpu component");
    assert_eq!(names[gpu - 1], "traefik", "{names:?}");
    let gpu_node = p.nodes.iter().find(|n| n.name == "k3s-worker-02").unwrap();
    assert!(
        gpu_node
            .actions
            .iter()
            .any(|a| a.contains("check the NVIDIA driver (`nvidia-smi`)")),
        "{:?}",
        gpu_node.actions
    );
    for other in p.nodes.iter().filter(|n| n.name != "k3s-worker-02") {
        assert!(
            !other.actions.iter().any(|a| a.contains("NVIDIA")),
            "{}",
            other.name
        );
    }
    assert!(seed().components.iter().all(|c| c.name != "gpu"));
}

#[test]
fn the_dns_conflict_runbook_comes_with_a_providers_api() {
    assert!(
        !seed()
            .runbooks
            .iter()
            .any(|r| r.name == "dns-record-conflict")
    );
    let old = "  dns:\n    # Where the wildcard rewrite lives: nextdns, cloudflare, pihole or manual.\n    provider: nextdns\n";
    let spec = homelab_spec::templates::SEED.replace(
        old,
        "  dns:\n    provider: cloudflare\n    zoneId: 023e105f4ecef8ad9ca31a8372d0c353\n    apiToken: {secret: cloudflare-dns-token}\n",
    );
    let loaded = homelab_spec::load_str("homelab.yaml", &spec).expect("valid");
    let p = plan(&loaded.lab);
    let r = p
        .runbooks
        .iter()
        .find(|r| r.name == "dns-record-conflict")
        .expect("the runbook");
    assert!(
        r.content
            .contains("`*.home.jetzinger.com` at Cloudflare answering `192.168.2.100`"),
        "{}",
        r.content
    );
    assert!(r.content.contains("managed by homelab (lab <name>)"));
    assert!(r.content.contains("dig +short grafana.home.jetzinger.com"));
}

/// The image of dev container `dev-tom`'s Deployment in the plan of `spec`.
fn dev_image(spec: &str) -> String {
    let loaded = homelab_spec::load_str("homelab.yaml", spec).expect("valid");
    let p = plan(&loaded.lab);
    let (_, o) = p
        .objects()
        .find(|(_, o)| o.kind() == "Deployment" && o.manifest["metadata"]["name"] == "dev-tom")
        .expect("the dev container's Deployment");
    o.manifest["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn dev_containers_run_the_built_image_unless_the_spec_names_one() {
    let seed = homelab_spec::templates::SEED;
    let built = dev_image(seed);
    let tag = built
        .strip_prefix("registry.home.jetzinger.com/homelab/dev-container:")
        .unwrap_or_else(|| panic!("{built} is in the lab's registry"));
    assert_eq!(tag.len(), 12, "{built}");
    let p = seed_plan_files();
    assert!(
        p.iter().any(|f| f == "base-image/Dockerfile"),
        "the Dockerfile the tag hashes is rendered: {p:?}"
    );
    let own = seed.replace(
        "      sshPort: 2222\n",
        "      sshPort: 2222\n      image: ghcr.io/tom/dev:2.0\n",
    );
    assert_ne!(own, seed);
    assert_eq!(dev_image(&own), "ghcr.io/tom/dev:2.0");
}

fn seed_plan_files() -> Vec<String> {
    let p = seed();
    p.component("dev-containers")
        .unwrap()
        .files
        .iter()
        .map(|f| f.path.clone())
        .collect()
}

/// Every reference to Secret `name` in `v` (a volume's `secretName`, an env var's
/// `secretKeyRef`, an `envFrom` `secretRef`), with whether it says `optional: true`.
fn secret_references(v: &serde_json::Value, name: &str, out: &mut Vec<bool>) {
    match v {
        serde_json::Value::Object(m) => {
            let optional = m.get("optional") == Some(&serde_json::Value::Bool(true));
            if m.get("secretName").and_then(|n| n.as_str()) == Some(name) {
                out.push(optional);
            }
            for key in ["secretKeyRef", "secretRef"] {
                if let Some(r) = m.get(key)
                    && r["name"] == name
                {
                    out.push(r["optional"] == true);
                }
            }
            for (_, child) in m {
                secret_references(child, name, out);
            }
        }
        serde_json::Value::Array(a) => {
            for child in a {
                secret_references(child, name, out);
            }
        }
        _ => {}
    }
}

#[test]
fn dev_container_git_credentials_are_optional_and_the_rest_of_the_seeds_secrets_are_not() {
    let p = seed();
    let optional: Vec<&str> = p
        .secrets
        .iter()
        .filter(|s| s.optional.is_some())
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(optional, ["devcontainer-tom-git-credentials"]);
    let need = p
        .optional_secret("devcontainer-tom-git-credentials")
        .unwrap();
    assert_eq!(need.generator, homelab_plan::SecretGenerator::UserProvided);
    let without = need.optional.as_deref().unwrap();
    assert!(
        without.contains("`tom`") && without.contains("without git credentials"),
        "{without}"
    );
    // The DNS token has no such fallback: certificates cannot be issued without it.
    assert!(p.optional_secret("cloudflare-api-token").is_none());
    assert!(p.may_leave_out(&["devcontainer-tom-git-credentials".to_string()]));
    assert!(!p.may_leave_out(&[
        "devcontainer-tom-git-credentials".to_string(),
        "cloudflare-api-token".to_string()
    ]));
    assert!(
        !p.may_leave_out(&[]),
        "nothing absent is nothing to leave out"
    );
}

/// A Secret left out because its optional secret has no value must not break what uses it:
/// each reading only optional secrets is referenced, wherever it is, with `optional: true`.
#[test]
fn secrets_that_may_be_left_out_are_only_ever_mounted_optional() {
    // A second container, so the rule holds per container and not by one name.
    let spec = homelab_spec::templates::SEED.replacen(
        "    - name: tom\n",
        "    - name: ana\n      sshPort: 2223\n      authorizedKeys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF3mN0cW2qYz7c8l0VvZ5o1bXc4sVd0QyJrH2y6kT7aB ana@laptop\"]\n    - name: tom\n",
        1,
    );
    let loaded =
        homelab_spec::load_str("homelab.yaml", &spec).unwrap_or_else(|e| panic!("{}", e.render()));
    let p = plan(&loaded.lab);
    let mut checked = Vec::new();
    for c in &p.components {
        for s in &c.secret_objects {
            let reads: Vec<String> = s.data.values().flat_map(|v| v.secret_names()).collect();
            if !p.may_leave_out(&reads) {
                continue;
            }
            let mut refs = Vec::new();
            for other in &p.components {
                for o in &other.objects {
                    if o.manifest["metadata"]["namespace"] == s.namespace.as_str() {
                        secret_references(&o.manifest, &s.name, &mut refs);
                    }
                }
            }
            assert!(!refs.is_empty(), "Secret {} is used", s.name);
            assert!(
                refs.iter().all(|o| *o),
                "Secret {}/{} is referenced without `optional: true`",
                s.namespace,
                s.name
            );
            checked.push(s.name.clone());
        }
    }
    assert_eq!(checked, ["dev-ana-git", "dev-tom-git"]);
}
