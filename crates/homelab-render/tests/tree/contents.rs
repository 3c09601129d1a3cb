//! What the seed tree contains, item by item, read back with a third-party YAML parser.

use std::collections::BTreeSet;

use homelab_render::{RENOVATE_MATCH_STRINGS, Tree};
use serde_json::{Value, json};

use crate::common::*;

fn docs(tree: &Tree, path: &str) -> Vec<Value> {
    yaml_docs(
        tree.text(path)
            .unwrap_or_else(|| panic!("{path} is not in the tree")),
    )
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn layout_is_the_seeds() {
    let tree = render_k3s(&seed_plan());
    for dir in [
        "infrastructure/k3s",
        "infrastructure/nfs",
        "infrastructure/metallb",
        "infrastructure/cert-manager",
        "infrastructure/traefik",
        "monitoring/prometheus",
        "monitoring/loki",
        "applications/postgres",
        "applications/ollama",
        "applications/n8n",
        "applications/paperless",
        "applications/nginx",
        "applications/dev-containers",
    ] {
        let readme = tree
            .text(&format!("{dir}/README.md"))
            .unwrap_or_else(|| panic!("{dir}/README.md"));
        for section in [
            "## Why this",
            "## How to reach it",
            "## Where its data lives",
            "## Backup and restore",
            "## Files",
            "## Apply",
            "## Requirements",
        ] {
            assert!(readme.contains(section), "{dir}/README.md lacks {section}");
        }
    }
    for f in [
        "README.md",
        "renovate.json",
        "infrastructure/kustomization.yaml",
        "monitoring/kustomization.yaml",
        "applications/kustomization.yaml",
        "docs/adrs/README.md",
        "docs/runbooks/README.md",
        "docs/diagrams/architecture.md",
        "infrastructure/metallb/ip-pool.yaml",
        "infrastructure/cert-manager/cluster-issuer.yaml",
        "applications/postgres/backup-cronjob.yaml",
        "applications/dev-containers/base-image/Dockerfile",
    ] {
        assert!(tree.get(f).is_some(), "{f} missing");
    }
    for adr in [
        "ADR-001-k3s-over-kubernetes.md",
        "ADR-002-nfs-over-longhorn.md",
        "ADR-003-traefik-ingress.md",
        "ADR-004-dns01-challenge.md",
        "ADR-010-official-postgresql-image.md",
        "ADR-009-loki-and-alloy.md",
    ] {
        let text = tree.text(&format!("docs/adrs/{adr}")).unwrap();
        for s in ["## Context", "## Decision", "## Consequences"] {
            assert!(text.contains(s), "{adr} lacks {s}");
        }
    }
    let diagram = tree.text("docs/diagrams/architecture.md").unwrap();
    assert!(diagram.contains("```mermaid\nflowchart LR"));
    assert!(diagram.contains("traefik -->|\"n8n.home.jetzinger.com\"| svc_n8n"));
    let order = tree.text("docs/diagrams/apply-order.md").unwrap();
    assert!(order.contains("c_n8n --> c_postgres"));
    let readme = tree.text("README.md").unwrap();
    for url in [
        "https://grafana.home.jetzinger.com",
        "https://n8n.home.jetzinger.com",
        "https://traefik.home.jetzinger.com/dashboard/",
    ] {
        assert!(readme.contains(url), "README lacks {url}");
    }
    assert!(readme.contains("secrets.sops.yaml"));
}

#[test]
fn helm_releases_are_helmcharts_carrying_their_values() {
    let plan = seed_plan();
    let tree = render_k3s(&plan);
    let mut seen = 0;
    for c in &plan.components {
        for r in &c.releases {
            seen += 1;
            let dir = c.dir();
            let values_file = if c.releases.len() > 1 {
                format!("{dir}/values-homelab-{}.yaml", r.name)
            } else {
                format!("{dir}/values-homelab.yaml")
            };
            assert_eq!(
                yaml_value(tree.text(&values_file).unwrap()),
                r.values,
                "{values_file}"
            );
            let charts = docs(&tree, &format!("{dir}/helmchart.yaml"));
            let hc = find(&charts, "HelmChart", &r.name);
            assert_eq!(hc["apiVersion"], "helm.cattle.io/v1");
            assert_eq!(hc["metadata"]["namespace"], "kube-system");
            assert_eq!(hc["spec"]["targetNamespace"], r.namespace.as_str());
            assert_eq!(hc["spec"]["version"], r.chart.version.as_str());
            if r.chart.is_oci() {
                assert_eq!(
                    hc["spec"]["chart"],
                    format!("{}/{}", r.chart.repo, r.chart.name)
                );
                assert!(hc["spec"].get("repo").is_none());
            } else {
                assert_eq!(hc["spec"]["chart"], r.chart.name.as_str());
                assert_eq!(hc["spec"]["repo"], r.chart.repo.as_str());
            }
            let values = yaml_value(hc["spec"]["valuesContent"].as_str().unwrap());
            assert_eq!(values, r.values, "valuesContent of {}", r.name);
        }
    }
    assert_eq!(seen, 8);
    let cm = docs(&tree, "infrastructure/cert-manager/helmchart.yaml");
    assert_eq!(
        find(&cm, "HelmChart", "cert-manager")["spec"]["chart"],
        "oci://quay.io/jetstack/charts/cert-manager"
    );
}

#[test]
fn plain_manifests_are_the_plan_objects_in_the_files_it_names() {
    let plan = seed_plan();
    let tree = render_k3s(&plan);
    for (c, o) in plan.objects() {
        let path = format!("{}/{}", c.dir(), o.file);
        let docs = docs(&tree, &path);
        let found = docs
            .iter()
            .find(|d| d["kind"] == o.kind() && d["metadata"]["name"] == o.name())
            .unwrap_or_else(|| panic!("{} not in {path}", o.id()));
        assert_eq!(*found, o.manifest, "{} in {path}", o.id());
    }
    for c in &plan.components {
        for f in &c.files {
            let path = format!("{}/{}", c.dir(), f.path);
            let file = tree.get(&path).unwrap();
            assert_eq!(tree.text(&path).unwrap(), f.content);
            assert_eq!(file.mode, f.mode, "{path}");
        }
    }
}

#[test]
fn runbooks_are_the_plans() {
    let plan = seed_plan();
    let tree = render_k3s(&plan);
    assert!(plan.runbooks.len() >= 14);
    for r in &plan.runbooks {
        let text = tree.text(&format!("docs/runbooks/{}.md", r.name)).unwrap();
        assert_eq!(text, r.content, "{}", r.name);
        assert!(
            tree.text("docs/runbooks/README.md")
                .unwrap()
                .contains(&format!("({}.md)", r.name))
        );
    }
}

#[test]
fn the_cluster_backup_runbook_names_the_nas_directory_the_servers_mount() {
    let tree = render_k3s(&seed_plan());
    let text = tree.text("docs/runbooks/cluster-backup.md").unwrap();
    assert!(
        text.contains("the snapshots go to the NAS (`192.168.2.2:/volume1/k8s-data/k3s-etcd-snapshots/home-lab`, mounted at `/mnt/k3s-snapshots` on every server by `homelab nodes apply`"),
        "{text}"
    );
    let no_nas = minimal_spec().replace(
        "storage:\n  nfs:\n    server: 192.168.2.2\n    path: /volume1/k8s-data\n",
        "",
    );
    assert!(!no_nas.contains("storage:"), "{no_nas}");
    let tree = render_k3s(&plan_of(&no_nas));
    let text = tree.text("docs/runbooks/cluster-backup.md").unwrap();
    assert!(
        text.contains("on each server's own disk, because the lab has no `storage.nfs`")
            && !text.contains("go to the NAS"),
        "{text}"
    );
}

#[test]
fn node_configs_have_what_k3s_and_prometheus_need() {
    let tree = render_k3s(&seed_plan());
    let master = yaml_value(
        tree.text("infrastructure/k3s/nodes/k3s-master.yaml")
            .unwrap(),
    );
    assert_eq!(master["cluster-init"], true);
    assert_eq!(master["disable"], json!(["servicelb", "local-storage"]));
    assert_eq!(master["secrets-encryption"], true);
    assert_eq!(master["etcd-snapshot-schedule-cron"], "0 */12 * * *");
    assert_eq!(master["etcd-snapshot-retention"], 14);
    assert_eq!(master["etcd-snapshot-dir"], "/mnt/k3s-snapshots");
    assert_eq!(master["etcd-expose-metrics"], true);
    assert!(
        master["tls-san"]
            .as_array()
            .unwrap()
            .contains(&json!("k3s-master"))
    );
    for arg in ["kube-controller-manager-arg", "kube-scheduler-arg"] {
        assert_eq!(master[arg], json!(["bind-address=0.0.0.0"]));
    }
    let agent = yaml_value(
        tree.text("infrastructure/k3s/nodes/k3s-worker-01.yaml")
            .unwrap(),
    );
    assert_eq!(agent["server"], "https://192.168.2.20:6443");
    assert!(agent.get("cluster-init").is_none());
    assert!(
        !tree
            .text("infrastructure/k3s/nodes/k3s-master.yaml")
            .unwrap()
            .contains("token:")
    );
}

#[test]
fn storage_metallb_certificates_and_traefik() {
    let tree = render_k3s(&seed_plan());
    let nfs = yaml_value(tree.text("infrastructure/nfs/values-homelab.yaml").unwrap());
    assert_eq!(nfs["storageClass"]["name"], "nfs-client");
    assert_eq!(nfs["storageClass"]["defaultClass"], true);
    assert_eq!(nfs["storageClass"]["reclaimPolicy"], "Delete");
    assert_eq!(nfs["storageClass"]["archiveOnDelete"], false);
    let lp = docs(&tree, "infrastructure/local-path/storageclass.yaml");
    assert_eq!(
        find(&lp, "StorageClass", "local-path")["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "false"
    );

    let ns = docs(&tree, "infrastructure/nfs/namespace.yaml");
    let infra = find(&ns, "Namespace", "infra");
    assert_eq!(
        infra["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    let pool = docs(&tree, "infrastructure/metallb/ip-pool.yaml");
    assert_eq!(
        find(&pool, "IPAddressPool", "lab-pool")["spec"]["addresses"],
        json!(["192.168.2.100-192.168.2.120"])
    );
    find(&pool, "L2Advertisement", "lab-pool");

    let cm = yaml_value(
        tree.text("infrastructure/cert-manager/values-homelab.yaml")
            .unwrap(),
    );
    assert_eq!(cm["crds"]["enabled"], true);
    let issuers = docs(&tree, "infrastructure/cert-manager/cluster-issuer.yaml");
    for name in ["letsencrypt-staging", "letsencrypt-production"] {
        let solver = &find(&issuers, "ClusterIssuer", name)["spec"]["acme"]["solvers"][0];
        assert!(
            solver["dns01"]["cloudflare"].is_object(),
            "{name}: {solver}"
        );
    }

    let hcc = docs(&tree, "infrastructure/traefik/helmchartconfig.yaml");
    let values = yaml_value(
        find(&hcc, "HelmChartConfig", "traefik")["spec"]["valuesContent"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        values["ports"]["web"]["redirections"]["entryPoint"]["to"],
        "websecure"
    );
    assert_eq!(
        values["tlsOptions"]["default"]["minVersion"],
        "VersionTLS12"
    );
    assert_eq!(
        values["ingressRoute"]["dashboard"]["matchRule"],
        "Host(`traefik.home.jetzinger.com`)"
    );
    let dash = docs(&tree, "infrastructure/traefik/dashboard.yaml");
    assert_eq!(
        find(&dash, "Middleware", "traefik-dashboard-auth")["spec"]["basicAuth"]["secret"],
        "traefik-dashboard-auth"
    );
}

#[test]
fn every_web_service_has_https_with_a_cert_manager_certificate() {
    let plan = seed_plan();
    let tree = render_k3s(&plan);
    let issuer = "letsencrypt-production";
    for e in plan.urls() {
        let c = plan
            .components
            .iter()
            .find(|c| c.endpoints.iter().any(|x| x.url == e.url))
            .unwrap();
        assert!(e.url.starts_with("https://"), "{}", e.url);
        // Either a plain Ingress in the tree, or chart values that create one, or (for the
        // dashboard) an explicit Certificate: each carries the host and the issuer.
        let mut texts: Vec<String> = Vec::new();
        for (path, _) in tree.iter() {
            if path.starts_with(&format!("{}/", c.dir()))
                && path.ends_with(".yaml")
                && let Some(t) = tree.text(path)
            {
                texts.push(t.to_string());
            }
        }
        let all = texts.join("\n");
        assert!(all.contains(&e.host), "{} not in {}", e.host, c.dir());
        assert!(
            all.contains(&format!("cert-manager.io/cluster-issuer: {issuer}"))
                || all.contains(&format!("name: {issuer}")),
            "{}: no certificate from cert-manager",
            e.url
        );
    }
}

#[test]
fn runbook_links_are_absolute_under_the_runbook_base_url() {
    let spec = SEED.replace(
        "alerting:\n",
        "alerting:\n  runbookBaseUrl: https://git.example.com/me/lab/src/branch/main/\n",
    );
    let tree = render_k3s(&plan_of(&spec));
    let rules = docs(&tree, "monitoring/prometheus/custom-rules.yaml");
    let rule = find(&rules, "PrometheusRule", "homelab-alerts");
    let mut checked = 0;
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for r in group["rules"].as_array().unwrap() {
            let url = r["annotations"]["runbook_url"].as_str().unwrap();
            // One slash between the base and the path, however the base was written.
            let path = url
                .strip_prefix("https://git.example.com/me/lab/src/branch/main/docs/runbooks/")
                .unwrap_or_else(|| panic!("{url} is not under the base URL"));
            assert!(
                tree.get(&format!("docs/runbooks/{path}")).is_some(),
                "{url} names no runbook of the tree"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} rules");
}

#[test]
fn monitoring_rules_receivers_and_runbooks() {
    let tree = render_k3s(&seed_plan());
    let rules = docs(&tree, "monitoring/prometheus/custom-rules.yaml");
    let rule = find(&rules, "PrometheusRule", "homelab-alerts");
    let mut names = BTreeSet::new();
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for r in group["rules"].as_array().unwrap() {
            let name = r["alert"].as_str().unwrap();
            names.insert(name.to_string());
            let sev = r["labels"]["severity"].as_str().unwrap();
            assert!(["critical", "warning", "info"].contains(&sev), "{name}");
            let url = r["annotations"]["runbook_url"].as_str().unwrap();
            assert!(
                tree.get(url).is_some(),
                "{name}: runbook_url {url} is not a file of the tree"
            );
        }
    }
    for want in [
        "NodeDown",
        "TargetDown",
        "PostgresDown",
        "NfsProvisionerDown",
        "PersistentVolumeClaimNotBound",
        "PersistentVolumeClaimLost",
        "PodCrashLooping",
        "NodeMemoryPressure",
        "CertificateExpiringSoon",
        "DiskSpaceLow",
    ] {
        assert!(names.contains(want), "no rule {want}");
    }
    let values = yaml_value(
        tree.text("monitoring/prometheus/values-homelab.yaml")
            .unwrap(),
    );
    assert_eq!(
        values["grafana"]["admin"]["existingSecret"],
        "grafana-admin"
    );
    assert_eq!(values["prometheus"]["prometheusSpec"]["retention"], "15d");
    let routes = values["alertmanager"]["config"]["route"]["routes"]
        .as_array()
        .unwrap();
    assert!(routes.iter().any(|r| r["receiver"] == "phone"
        && r["matchers"] == json!(["severity=\"critical\""])
        && r["group_wait"] == "10s"
        && r["group_by"] == json!(["..."])));
    for component in ["kubeEtcd", "kubeControllerManager", "kubeScheduler"] {
        assert_eq!(values[component]["endpoints"], json!(["192.168.2.20"]));
    }
    let loki = yaml_value(
        tree.text("monitoring/loki/values-homelab-loki.yaml")
            .unwrap(),
    );
    assert_eq!(loki["deploymentMode"], "SingleBinary");
    assert_eq!(loki["loki"]["limits_config"]["retention_period"], "168h");
    assert_eq!(
        loki["loki"]["compactor"]["delete_request_store"],
        "filesystem"
    );
    assert!(
        tree.get("monitoring/loki/values-homelab-alloy.yaml")
            .is_some()
    );
}

#[test]
fn applications() {
    let tree = render_k3s(&seed_plan());
    let sts = docs(&tree, "applications/postgres/statefulset.yaml");
    let pg = find(&sts, "StatefulSet", "postgres");
    assert_eq!(pg["metadata"]["namespace"], "data");
    assert!(
        pg["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .starts_with("docker.io/library/postgres:17.")
    );
    assert_eq!(
        pg["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
        "nfs-client"
    );
    let svc = docs(&tree, "applications/postgres/service.yaml");
    assert_eq!(
        find(&svc, "Service", "postgres")["spec"]["ports"][0]["port"],
        5432
    );
    let backup = docs(&tree, "applications/postgres/backup-cronjob.yaml");
    let cron = find(&backup, "CronJob", "postgres-backup");
    assert_eq!(cron["spec"]["schedule"], "0 2 * * *");
    let dbs = docs(&tree, "applications/postgres/databases.yaml");
    let script = find(&dbs, "ConfigMap", "postgres-databases")["data"]["ensure-databases.sh"]
        .as_str()
        .unwrap();
    assert!(script.contains("ensure n8n n8n"));

    let n8n = yaml_value(tree.text("applications/n8n/values-homelab.yaml").unwrap());
    assert_eq!(n8n["externalPostgresql"]["database"], "n8n");
    let ollama = yaml_value(
        tree.text("applications/ollama/values-homelab.yaml")
            .unwrap(),
    );
    assert_eq!(ollama["ollama"]["models"]["pull"], json!(["llama3.2:3b"]));
    assert_eq!(ollama["persistentVolume"]["storageClass"], "nfs-client");

    let pp = docs(&tree, "applications/paperless/deployment.yaml");
    let env =
        &find(&pp, "Deployment", "paperless")["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "PAPERLESS_CONSUMER_POLLING")
    );
    let pvcs = docs(&tree, "applications/paperless/pvc.yaml");
    for name in [
        "paperless-data",
        "paperless-media",
        "paperless-consume",
        "paperless-export",
    ] {
        find(&pvcs, "PersistentVolumeClaim", name);
    }
    find(
        &docs(&tree, "applications/paperless/redis.yaml"),
        "Deployment",
        "paperless-redis",
    );

    let dev = docs(&tree, "applications/dev-containers/dev-tom.yaml");
    let d = find(&dev, "Deployment", "dev-tom");
    let vols = d["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    assert!(vols.iter().any(|v| v["configMap"]["name"] == "dev-tom-ssh"));
    assert_eq!(
        find(&dev, "PersistentVolumeClaim", "dev-tom-workspace")["spec"]["storageClassName"],
        "local-path"
    );
    let cm = docs(&tree, "applications/nginx/configmap.yaml");
    let conf = find(&cm, "ConfigMap", "nginx-proxy-config")["data"]["nginx.conf"]
        .as_str()
        .unwrap();
    assert!(conf.contains("location /app1/") && conf.contains("listen 2222;"));
}

#[test]
fn custom_apps_render_like_services() {
    let plan = plan_of(&wide_spec());
    let tree = render_k3s(&plan);
    let dep = docs(&tree, "applications/mealie/deployment.yaml");
    let d = find(&dep, "Deployment", "mealie");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "ghcr.io/mealie-recipes/mealie:v2.3.0");
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "mealie-env");
    let ing = docs(&tree, "applications/mealie/ingress.yaml");
    assert_eq!(
        find(&ing, "Ingress", "mealie")["spec"]["rules"][0]["host"],
        "recipes.home.jetzinger.com"
    );
    assert!(tree.get("applications/whoami/deployment.yaml").is_some());
    let apps = yaml_value(tree.text("applications/kustomization.yaml").unwrap());
    let res = apps["resources"].as_array().unwrap();
    assert!(res.contains(&json!("mealie")) && res.contains(&json!("whoami")));
}

#[test]
fn no_secret_value_or_secret_object_in_the_k3s_tree() {
    let plan = plan_of(&wide_spec());
    let tree = render_k3s(&plan);
    for (path, _) in tree.iter() {
        let text = tree.text(path).unwrap();
        if path.ends_with(".yaml") && !path.contains("/nodes/") {
            for d in yaml_docs(text) {
                assert_ne!(d["kind"], "Secret", "{path} holds a Secret");
            }
        }
    }
    // Each Secret is documented by name with a way to create it without the tool.
    let readme = tree.text("README.md").unwrap();
    for c in &plan.components {
        for s in &c.secret_objects {
            assert!(
                readme.contains(&format!(
                    "kubectl -n {} create secret generic {}",
                    s.namespace, s.name
                )),
                "README lacks {}",
                s.name
            );
        }
    }
}

#[test]
fn renovate_reads_every_pinned_version() {
    let plan = plan_of(&wide_spec());
    let tree = render_k3s(&plan);
    let config: Value = serde_json::from_str(tree.text("renovate.json").unwrap()).unwrap();
    let manager = &config["customManagers"][0];
    assert_eq!(manager["customType"], "regex");
    assert_eq!(manager["matchStrings"], json!(RENOVATE_MATCH_STRINGS));
    let patterns: Vec<regex::Regex> = RENOVATE_MATCH_STRINGS
        .iter()
        .map(|p| regex::Regex::new(p).expect("the pattern is valid for RE2-style engines"))
        .collect();
    let files: Vec<regex::Regex> = manager["managerFilePatterns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| regex::Regex::new(p.as_str().unwrap().trim_matches('/')).unwrap())
        .collect();

    // What Renovate would find: (file, depName, currentValue).
    let mut found = BTreeSet::new();
    for (path, _) in tree.iter() {
        if !files.iter().any(|f| f.is_match(path)) {
            continue;
        }
        let text = tree.text(path).unwrap();
        for p in &patterns {
            for cap in p.captures_iter(text) {
                found.insert((
                    path.to_string(),
                    cap["depName"].to_string(),
                    cap["currentValue"].to_string(),
                ));
            }
        }
    }
    // Every chart release...
    for c in &plan.components {
        for r in &c.releases {
            let dep = if r.chart.is_oci() {
                format!(
                    "{}/{}",
                    r.chart.repo.trim_start_matches("oci://"),
                    r.chart.name
                )
            } else {
                r.chart.name.clone()
            };
            assert!(
                found.contains(&(
                    format!("{}/helmchart.yaml", c.dir()),
                    dep.clone(),
                    r.chart.version.clone()
                )),
                "chart {dep} {} is not read by Renovate",
                r.chart.version
            );
        }
    }
    // ...and every tagged image in a manifest (outside block scalars) and the Dockerfile.
    let mut images = 0;
    for (c, o) in plan.objects() {
        let text = serde_json::to_string(&o.manifest).unwrap();
        for part in text.split("\"image\":\"").skip(1) {
            let image = &part[..part.find('"').unwrap()];
            let (repo, tag) = image.rsplit_once(':').unwrap();
            images += 1;
            assert!(
                found.contains(&(
                    format!("{}/{}", c.dir(), o.file),
                    repo.to_string(),
                    tag.to_string()
                )),
                "image {image} in {} is not read by Renovate",
                o.file
            );
        }
    }
    assert!(images > 10);
    assert!(found.contains(&(
        "applications/dev-containers/base-image/Dockerfile".into(),
        "docker.io/library/ubuntu".into(),
        "24.04".into()
    )));
}

/// `helm:` in the spec: the values files and HelmCharts carry the merged values, the pinned
/// version moves with its Renovate comment, and the README says what the spec changed.
#[test]
fn helm_settings_reach_the_values_the_helm_charts_and_the_readme() {
    let spec = format!(
        "{SEED}\ninfrastructure:\n  metallb:\n    helm:\n      values:\n        controller: {{logLevel: debug}}\n        speaker: {{frr: null}}\n  certManager:\n    helm:\n      version: v1.21.2\n"
    );
    let tree = render_k3s(&plan_of(&spec));
    let values = yaml_docs(
        tree.text("infrastructure/metallb/values-homelab.yaml")
            .unwrap(),
    );
    assert_eq!(values[0]["controller"]["logLevel"], "debug");
    assert_eq!(values[0]["speaker"], json!({"frr": null}));
    let charts = docs(&tree, "infrastructure/metallb/helmchart.yaml");
    let chart = find(&charts, "HelmChart", "metallb");
    let content = yaml_docs(chart["spec"]["valuesContent"].as_str().unwrap());
    assert_eq!(
        content[0], values[0],
        "the HelmChart installs the values file's values"
    );
    let text = tree
        .text("infrastructure/cert-manager/helmchart.yaml")
        .unwrap();
    assert!(
        text.contains("  # renovate: datasource=docker depName=quay.io/jetstack/charts/cert-manager\n  version: v1.21.2\n"),
        "{text}"
    );
    let readme = tree.text("infrastructure/metallb/README.md").unwrap();
    assert!(
        readme.contains("## Changed by homelab.yaml")
            && readme.contains("- `metallb`: `+ controller.logLevel: \"debug\"`"),
        "{readme}"
    );
    let readme = tree.text("infrastructure/cert-manager/README.md").unwrap();
    assert!(
        readme.contains("chart version v1.21.2 instead of the pinned v1.21.1"),
        "{readme}"
    );
    assert!(
        !tree
            .text("infrastructure/nfs/README.md")
            .unwrap()
            .contains("Changed by"),
        "untouched components say nothing"
    );
}
