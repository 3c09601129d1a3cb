//! `services.openWebui` in both flavors: the open-webui chart pointed at the lab's Ollama and,
//! when on, vLLM's OpenAI API with its key, its data on the lab's storage class, behind the
//! lab's TLS with no basic auth, the admin account and session key from Secrets, sign-up off,
//! the runbook and the docs; none of it when Open WebUI is off.

use serde_json::{Value, json};

use crate::common::*;
use crate::flux::Lab;
use crate::validators::{build_layers, kubernetes_version, layers_of, validate_objects};

const MONITORING: &str = "  monitoring:                  # Prometheus, Grafana, Alertmanager\n";

/// The seed lab (Ollama on) with a GPU node, vLLM and Open WebUI under its own admin address.
fn open_webui_spec() -> String {
    let s = SEED.replace(
        "      labels:\n        homelab/workload: general\n",
        "      labels:\n        homelab/workload: general\n      gpu: {sharing: {replicas: 2}}\n",
    );
    let s = s.replace(
        MONITORING,
        &format!("  vllm: {{model: Qwen/Qwen2.5-1.5B-Instruct, revision: main}}\n  openWebui:\n    adminEmail: me@example.org\n    storage: 8Gi\n{MONITORING}"),
    );
    assert_ne!(s, SEED, "the seed lab changed");
    s
}

/// The seed lab with Open WebUI over Ollama alone.
fn ollama_only_spec() -> String {
    let s = SEED.replace(MONITORING, &format!("  openWebui: {{}}\n{MONITORING}"));
    assert_ne!(s, SEED, "the seed lab changed");
    s
}

fn release_values(plan: &homelab_plan::Plan) -> Value {
    let c = plan.component("open-webui").expect("the component");
    let r = &c.releases[0];
    assert_eq!(
        (
            r.name.as_str(),
            r.namespace.as_str(),
            r.chart.name.as_str(),
            r.chart.version.as_str(),
            r.chart.repo.as_str()
        ),
        (
            "open-webui",
            "ml",
            "open-webui",
            "16.0.0",
            "https://helm.openwebui.com"
        )
    );
    r.values.clone()
}

fn domain(spec: &str) -> String {
    homelab_spec::load_str("homelab.yaml", spec)
        .unwrap()
        .lab
        .network
        .domain
}

#[test]
fn the_chart_talks_to_ollama_and_vllm_with_its_key_and_keeps_its_own_login() {
    let spec = open_webui_spec();
    let plan = plan_of(&spec);
    let v = release_values(&plan);
    assert_eq!(v["ollama"]["enabled"], false);
    assert_eq!(v["pipelines"]["enabled"], false);
    assert_eq!(
        v["ollamaUrls"],
        json!(["http://ollama.ml.svc.cluster.local:11434"])
    );
    assert_eq!(v["enableOpenaiApi"], true);
    assert_eq!(
        v["openaiBaseApiUrl"],
        "http://vllm.ml.svc.cluster.local:8000/v1"
    );
    assert_eq!(v["openaiApiKeyExistingSecret"], "open-webui-secrets");
    assert_eq!(v["openaiApiKeyExistingSecretKey"], "OPENAI_API_KEY");
    assert_eq!(v["persistence"]["size"], "8Gi");
    assert_eq!(v["persistence"]["storageClass"], "nfs-client");
    let host = format!("chat.{}", domain(&spec));
    assert_eq!(v["ingress"]["host"], host);
    assert_eq!(v["ingress"]["tls"], true);
    assert!(
        v["ingress"]["annotations"]
            .get("traefik.ingress.kubernetes.io/router.middlewares")
            .is_none(),
        "no basic auth in front of its own login"
    );
    let env = v["extraEnvVars"].as_array().unwrap();
    assert!(env.contains(&json!({"name": "WEBUI_ADMIN_EMAIL", "value": "me@example.org"})));
    assert!(env.contains(&json!({"name": "ENABLE_SIGNUP", "value": "False"})));
    let c = plan.component("open-webui").unwrap();
    assert!(c.depends_on.contains(&"ollama".to_string()));
    assert!(c.depends_on.contains(&"vllm".to_string()));
    let secret = &c.secret_objects[0];
    assert_eq!(secret.name, "open-webui-secrets");
    assert!(
        secret
            .data
            .keys()
            .eq(["OPENAI_API_KEY", "WEBUI_ADMIN_PASSWORD", "WEBUI_SECRET_KEY"]),
        "{:?}",
        secret.data.keys()
    );
    let need = |name: &str| {
        plan.secrets
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no secret need {name}"))
    };
    assert!(matches!(
        need("open-webui-admin-password").generator,
        homelab_plan::SecretGenerator::Password { .. }
    ));
    assert!(matches!(
        need("open-webui-secret-key").generator,
        homelab_plan::SecretGenerator::Hex { bytes: 32 }
    ));
    assert!(
        need("vllm-api-key").used_by.contains("open-webui"),
        "rotating the key re-applies Open WebUI"
    );
}

#[test]
fn without_vllm_the_openai_api_is_off_and_the_admin_is_at_the_domain() {
    let spec = ollama_only_spec();
    let plan = plan_of(&spec);
    let v = release_values(&plan);
    assert_eq!(
        v["enableOpenaiApi"], false,
        "else the chart points it at api.openai.com"
    );
    assert!(v.get("openaiApiKeyExistingSecret").is_none());
    let env = v["extraEnvVars"].as_array().unwrap();
    assert!(env.contains(
        &json!({"name": "WEBUI_ADMIN_EMAIL", "value": format!("admin@{}", domain(&spec))})
    ));
    let c = plan.component("open-webui").unwrap();
    assert!(!c.secret_objects[0].data.contains_key("OPENAI_API_KEY"));
}

#[test]
fn the_k3s_tree_passes_the_strict_schemas() {
    let spec = open_webui_spec();
    let (_tmp, objects) = layers_of(&spec);
    let chart = objects
        .iter()
        .find(|o| o["kind"] == "HelmChart" && o["metadata"]["name"] == "open-webui")
        .expect("a HelmChart for open-webui");
    assert_eq!(chart["spec"]["targetNamespace"], "ml");
    assert_eq!(chart["spec"]["version"], "16.0.0");
    validate_objects(&objects, &kubernetes_version(&spec));
}

#[test]
fn the_flux_tree_carries_the_release_and_encrypts_the_secrets() {
    let spec = open_webui_spec();
    let lab = Lab::new(&spec);
    let out = lab.dir.path().join("tree");
    lab.render_into(&out);
    let objects = build_layers(&out);
    let release = objects
        .iter()
        .find(|o| o["kind"] == "HelmRelease" && o["metadata"]["name"] == "open-webui")
        .expect("a HelmRelease for open-webui");
    assert_eq!(
        release["spec"]["values"]["ollamaUrls"][0],
        "http://ollama.ml.svc.cluster.local:11434"
    );
    let secret = objects
        .iter()
        .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == "open-webui-secrets")
        .expect("the Secret");
    let data = secret["stringData"]
        .as_object()
        .or(secret["data"].as_object())
        .expect("the Secret has data");
    for (key, value) in data {
        assert!(
            value
                .as_str()
                .is_some_and(|v| v.starts_with("ENC[AES256_GCM,")),
            "{key} is not encrypted: {value}"
        );
    }
    let objects: Vec<Value> = objects
        .into_iter()
        .filter(|o| o["kind"] != "Secret")
        .collect();
    validate_objects(&objects, &kubernetes_version(&spec));
}

#[test]
fn the_runbook_and_the_docs_say_how_to_log_in_and_why_no_basic_auth() {
    let plan = plan_of(&open_webui_spec());
    let tree = render_k3s(&plan);
    let text = tree.text("docs/runbooks/open-webui.md").unwrap();
    for part in [
        "me@example.org",
        "open-webui-admin-password",
        "http://ollama.ml.svc.cluster.local:11434",
        "vllm-api-key",
        "Authorization: Bearer",
        "Admin Panel > Settings > Connections",
    ] {
        assert!(text.contains(part), "{part}\n{text}");
    }
    let docs: String = tree
        .paths()
        .filter(|p| !p.starts_with("docs/runbooks/"))
        .filter(|p| p.ends_with(".md"))
        .filter_map(|p| tree.text(p))
        .collect();
    assert!(docs.contains("Open WebUI"), "the docs of the tree list it");
    assert!(
        docs.contains("homelab secrets get open-webui-admin-password"),
        "{docs}"
    );
}

#[test]
fn a_lab_without_open_webui_has_none_of_it() {
    let plan = plan_of(SEED);
    assert!(plan.component("open-webui").is_none());
    assert!(plan.runbooks.iter().all(|r| r.name != "open-webui"));
    assert!(
        plan.secrets
            .iter()
            .all(|s| !s.name.starts_with("open-webui"))
    );
}
