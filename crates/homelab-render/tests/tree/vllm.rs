//! `services.vllm` in both flavors: the official image pinned, the model and revision as
//! `vllm serve` arguments, one GPU on a GPU node, the cache volume, `/health` probes, the
//! key and token from Secrets, the ingress behind the lab's TLS, the runbook; none of it when
//! vLLM is off.

use serde_json::{Value, json};

use crate::common::*;
use crate::flux::Lab;
use crate::validators::{build_layers, kubernetes_version, layers_of, validate_objects};

const MONITORING: &str = "  monitoring:                  # Prometheus, Grafana, Alertmanager\n";

/// The seed lab with its GPU node shared and tainted, and vLLM serving a gated model.
fn vllm_spec() -> String {
    let s = SEED.replace(
        "      labels:\n        homelab/workload: general\n",
        "      labels:\n        homelab/workload: general\n      gpu: {sharing: {replicas: 2}, taint: true}\n",
    );
    let s = s.replace(
        MONITORING,
        &format!("  vllm:\n    model: meta-llama/Llama-3.2-1B-Instruct\n    revision: 9213176726f574b556790deb65791e0c5aa438b6\n    hfToken: {{secret: huggingface-token}}\n    storage: 40Gi\n    args: [--max-model-len=8192, --gpu-memory-utilization, '0.45']\n{MONITORING}"),
    );
    assert_ne!(s, SEED, "the seed lab changed");
    s
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn has(objects: &[Value], kind: &str, name: &str) -> bool {
    objects
        .iter()
        .any(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn check_objects(objects: &[Value], domain: &str) {
    let d = find(objects, "Deployment", "vllm");
    assert_eq!(d["metadata"]["namespace"], "ml");
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["runtimeClassName"], "nvidia");
    assert_eq!(pod["nodeSelector"], json!({"homelab/gpu": "nvidia"}));
    assert_eq!(
        pod["tolerations"],
        json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    );
    assert_eq!(pod["enableServiceLinks"], false);
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "docker.io/vllm/vllm-openai:v0.23.0");
    assert_eq!(c["command"], json!(["vllm", "serve"]));
    assert_eq!(
        c["args"],
        json!([
            "meta-llama/Llama-3.2-1B-Instruct",
            "--revision",
            "9213176726f574b556790deb65791e0c5aa438b6",
            "--tokenizer-revision",
            "9213176726f574b556790deb65791e0c5aa438b6",
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
            "--max-model-len=8192",
            "--gpu-memory-utilization",
            "0.45",
        ])
    );
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], 1);
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(
            c[probe]["httpGet"],
            json!({"path": "/health", "port": "http"}),
            "{probe}"
        );
    }
    assert_eq!(
        c["startupProbe"]["periodSeconds"].as_u64().unwrap()
            * c["startupProbe"]["failureThreshold"].as_u64().unwrap(),
        1800,
        "the first download has half an hour"
    );
    assert_eq!(
        c["envFrom"],
        json!([{"secretRef": {"name": "vllm-secrets"}}])
    );
    assert_eq!(
        c["env"],
        json!([{"name": "HF_HOME", "value": "/root/.cache/huggingface"}])
    );
    let pvc = find(objects, "PersistentVolumeClaim", "vllm-cache");
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "40Gi");
    assert_eq!(pvc["spec"]["storageClassName"], "nfs-client");
    assert!(
        pod["volumes"].as_array().unwrap().contains(
            &json!({"name": "cache", "persistentVolumeClaim": {"claimName": "vllm-cache"}})
        )
    );
    let svc = find(objects, "Service", "vllm");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8000);
    let sm = find(objects, "ServiceMonitor", "vllm");
    assert_eq!(sm["metadata"]["namespace"], "ml");
    assert_eq!(
        sm["spec"]["endpoints"],
        json!([{"port": "http", "path": "/metrics", "interval": "30s"}])
    );
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "the ServiceMonitor selects the Service"
        );
    }
    let ing = find(objects, "Ingress", "vllm");
    let host = format!("vllm.{domain}");
    assert_eq!(ing["spec"]["rules"][0]["host"], host);
    assert_eq!(
        ing["spec"]["tls"],
        json!([{"hosts": [host], "secretName": "vllm-tls"}])
    );
    assert_eq!(
        ing["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.tls"],
        "true"
    );
}

fn domain(spec: &str) -> String {
    homelab_spec::load_str("homelab.yaml", spec)
        .unwrap()
        .lab
        .network
        .domain
}

#[test]
fn the_k3s_tree_serves_the_model_on_a_gpu_behind_tls() {
    let spec = vllm_spec();
    let (_tmp, objects) = layers_of(&spec);
    check_objects(&objects, &domain(&spec));
    validate_objects(&objects, &kubernetes_version(&spec));
}

#[test]
fn the_flux_tree_carries_the_same_objects_and_encrypts_the_key_and_token() {
    let spec = vllm_spec();
    let lab = Lab::new(&spec);
    let out = lab.dir.path().join("tree");
    lab.render_into(&out);
    let objects = build_layers(&out);
    let secret = find(&objects, "Secret", "vllm-secrets");
    let data = secret["stringData"]
        .as_object()
        .or(secret["data"].as_object())
        .expect("the Secret has data");
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["HF_TOKEN", "VLLM_API_KEY"]
    );
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
    check_objects(&objects, &domain(&spec));
    validate_objects(&objects, &kubernetes_version(&spec));
}

#[test]
fn the_plan_needs_the_key_and_the_users_token() {
    let plan = plan_of(&vllm_spec());
    let need = |name: &str| {
        plan.secrets
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no secret need {name}"))
    };
    assert!(matches!(
        need("vllm-api-key").generator,
        homelab_plan::SecretGenerator::Hex { bytes: 32 }
    ));
    assert!(matches!(
        need("huggingface-token").generator,
        homelab_plan::SecretGenerator::UserProvided
    ));
    let public = plan_of(&vllm_spec().replace("    hfToken: {secret: huggingface-token}\n", ""));
    assert!(public.secrets.iter().all(|s| s.name != "huggingface-token"));
    let c = public.component("vllm").unwrap();
    assert!(
        c.secret_objects[0].data.keys().eq(["VLLM_API_KEY"]),
        "no token for a public model"
    );
}

#[test]
fn the_runbook_covers_the_gpu_the_token_and_memory() {
    let plan = plan_of(&vllm_spec());
    let tree = render_k3s(&plan);
    let text = tree.text("docs/runbooks/vllm.md").unwrap();
    for part in [
        "meta-llama/Llama-3.2-1B-Instruct",
        "Insufficient nvidia.com/gpu",
        "homelab secrets set huggingface-token",
        "--gpu-memory-utilization",
        "Revision Not Found",
        "30 minutes",
    ] {
        assert!(text.contains(part), "{part}\n{text}");
    }
}

#[test]
fn a_lab_without_vllm_has_none_of_it() {
    let (_tmp, objects) = layers_of(SEED);
    for (kind, name) in [
        ("Deployment", "vllm"),
        ("PersistentVolumeClaim", "vllm-cache"),
        ("Ingress", "vllm"),
    ] {
        assert!(!has(&objects, kind, name), "{kind} {name}");
    }
    let plan = plan_of(SEED);
    assert!(plan.runbooks.iter().all(|r| r.name != "vllm"));
    assert!(plan.secrets.iter().all(|s| s.name != "vllm-api-key"));
}
