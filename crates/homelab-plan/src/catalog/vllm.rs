//! vLLM (official image) as rendered manifests: one model from the Hugging Face Hub served
//! with an OpenAI-compatible API on one GPU, its cache on a volume, behind the lab's TLS and
//! an API key; no chart, because vLLM publishes none for a single server.

use std::collections::BTreeMap;

use serde_json::json;

use super::Ctx;
use crate::meta::{ingress, labels, labels_map, metadata, namespace, pvc, selector, service};
use crate::{
    Component, Endpoint, HealthCheck, Layer, Runbook, SecretGenerator, SecretObject, SecretSource,
    versions,
};

pub(crate) const NS: &str = "ml";
pub(crate) const PORT: u16 = 8000;
/// The key every client sends as `Authorization: Bearer` (Open WebUI too).
pub(crate) const API_KEY: &str = "vllm-api-key";
const SECRETS: &str = "vllm-secrets";
const CACHE_PVC: &str = "vllm-cache";
/// Where the Hugging Face client keeps downloaded weights (`HF_HOME`).
const CACHE_DIR: &str = "/root/.cache/huggingface";
/// The first start downloads the weights before `/health` answers: up to 30 minutes.
const STARTUP_PERIOD_SECONDS: u32 = 10;
const STARTUP_FAILURES: u32 = 180;

/// The in-cluster base URL of the OpenAI-compatible API.
pub(crate) fn api_url() -> String {
    format!("http://vllm.{NS}.svc.cluster.local:{PORT}/v1")
}

pub(super) fn component(ctx: &Ctx) -> Component {
    let v = ctx
        .lab
        .services
        .vllm
        .as_ref()
        .expect("planned only when enabled");
    let host = ctx.fqdn(&v.host);
    let mut c = Component::new("vllm", Layer::Applications, Some(NS));
    c.depends_on
        .extend(["nfs".to_string(), "traefik".to_string(), "gpu".to_string()]);
    c.add("namespace.yaml", namespace(NS, Some("baseline")));
    let l = || labels("vllm", "vllm", "inference");

    ctx.need_secret(
        API_KEY,
        SecretGenerator::Hex { bytes: 32 },
        "vllm",
        "API key clients of vLLM send as `Authorization: Bearer`",
    );
    let mut data = BTreeMap::from([(
        "VLLM_API_KEY".to_string(),
        SecretSource::Secret(API_KEY.into()),
    )]);
    if let Some(token) = &v.hf_token {
        ctx.need_secret(
            token.name(),
            SecretGenerator::UserProvided,
            "vllm",
            "Hugging Face access token (read) for the model vLLM serves",
        );
        data.insert(
            "HF_TOKEN".to_string(),
            SecretSource::Secret(token.name().into()),
        );
    }
    c.secret_objects.push(SecretObject {
        name: SECRETS.into(),
        namespace: NS.into(),
        data,
        labels: labels_map("vllm", "vllm", "inference"),
    });

    c.add(
        "pvc.yaml",
        pvc(
            CACHE_PVC,
            NS,
            l(),
            &v.storage.to_string(),
            &ctx.storage_class,
            "ReadWriteOnce",
        ),
    );
    c.health.push(HealthCheck::Pvc {
        namespace: NS.into(),
        name: CACHE_PVC.into(),
    });

    let mut args = vec![
        v.model.clone(),
        "--revision".into(),
        v.revision.clone(),
        "--tokenizer-revision".into(),
        v.revision.clone(),
        "--host".into(),
        "0.0.0.0".into(),
        "--port".into(),
        PORT.to_string(),
    ];
    args.extend(v.args.iter().cloned());
    let probe = |period: u32, failures: u32| json!({"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": period, "failureThreshold": failures});
    let mut pod = json!({
        // A Service named `vllm` would put VLLM_PORT=tcp://… into the pod's environment,
        // which vLLM reads as its own port setting and refuses.
        "enableServiceLinks": false,
        "runtimeClassName": "nvidia",
        "nodeSelector": {"homelab/gpu": "nvidia"},
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "vllm",
            "image": versions::VLLM.image(),
            "command": ["vllm", "serve"],
            "args": args,
            "ports": [{"name": "http", "containerPort": PORT}],
            "env": [{"name": "HF_HOME", "value": CACHE_DIR}],
            "envFrom": [{"secretRef": {"name": SECRETS}}],
            "volumeMounts": [
                {"name": "cache", "mountPath": CACHE_DIR},
                // PyTorch passes tensors between vLLM's processes through shared memory.
                {"name": "shm", "mountPath": "/dev/shm"},
            ],
            "startupProbe": probe(STARTUP_PERIOD_SECONDS, STARTUP_FAILURES),
            "readinessProbe": probe(10, 3),
            "livenessProbe": probe(30, 3),
            "resources": {
                "requests": {"cpu": "1", "memory": "6Gi", "nvidia.com/gpu": 1},
                "limits": {"memory": "16Gi", "nvidia.com/gpu": 1},
            },
        }],
        "volumes": [
            {"name": "cache", "persistentVolumeClaim": {"claimName": CACHE_PVC}},
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
        ],
    });
    if super::gpu::tainted(ctx.lab) {
        pod["tolerations"] = json!([super::gpu::toleration()]);
    }
    c.add(
        "deployment.yaml",
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": metadata("vllm", Some(NS), l()),
            "spec": {
                "replicas": 1,
                // One GPU and a ReadWriteOnce cache: the old pod must let go of both first.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector("vllm", "vllm")},
                "template": {"metadata": {"labels": l()}, "spec": pod},
            },
        }),
    );
    c.add(
        "deployment.yaml",
        service(
            "vllm",
            NS,
            l(),
            selector("vllm", "vllm"),
            json!([{"name": "http", "port": PORT, "targetPort": "http"}]),
        ),
    );
    c.add(
        "ingress.yaml",
        ingress("vllm", NS, l(), &host, "vllm", PORT, ctx.issuer),
    );
    if ctx.lab.services.monitoring.is_some() {
        // vLLM serves Prometheus metrics (requests, tokens, KV-cache use) at `/metrics` on its
        // API port without the key; the ServiceMonitor needs kube-prometheus-stack's CRD.
        c.depends_on.push("prometheus".into());
        c.add(
            "servicemonitor.yaml",
            json!({
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": metadata("vllm", Some(NS), l()),
                "spec": {
                    "selector": {"matchLabels": selector("vllm", "vllm")},
                    "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
                },
            }),
        );
    }
    c.endpoints.push(Endpoint {
        name: "vllm".into(),
        url: format!("https://{host}/v1"),
        host: host.clone(),
        description: format!(
            "vLLM OpenAI-compatible API serving {} (`/v1/chat/completions`, key: `homelab secrets get {API_KEY}`)",
            v.model
        ),
    });
    c.health.push(HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: NS.into(),
        name: "vllm".into(),
    });
    c.health.push(HealthCheck::Certificate {
        namespace: NS.into(),
        name: "vllm-tls".into(),
    });
    c.health.push(HealthCheck::Url {
        url: format!("https://{host}/health"),
        host: host.clone(),
    });
    c.docs = crate::ComponentDocs {
        title: "vLLM".into(),
        what: format!(
            "Serves {} at revision `{}` with an OpenAI-compatible API on one GPU.",
            v.model, v.revision
        ),
        why: "High-throughput inference (continuous batching, paged attention) behind the API most LLM clients already speak; the official image, rendered as plain manifests.".into(),
        access: vec![
            format!("https://{host}/v1 with `Authorization: Bearer $(homelab secrets get {API_KEY})`"),
            format!("In the cluster: {}", api_url()),
        ],
        data: format!(
            "The downloaded weights in PVC {CACHE_PVC} ({}) on NFS.",
            v.storage
        ),
        backup: "Not backed up: the weights are downloaded again from the Hugging Face Hub.".into(),
        requirements: vec!["FR38".into(), "FR39".into()],
    };
    c
}

pub(crate) fn runbook(ctx: &Ctx) -> Option<Runbook> {
    let v = ctx.lab.services.vllm.as_ref()?;
    let title = "Runbook: vLLM does not become ready";
    let token = match &v.hf_token {
        Some(t) => format!(
            "the token in the secret `{t}` lacks access: accept the model's licence on its Hugging Face page with the token's account, or store another token with `homelab secrets set {t}`, then `homelab apply`"
        ),
        None => "the model is gated or private and the spec gives no token: create a read token on huggingface.co, store it with `homelab secrets set huggingface-token`, add `hfToken: {secret: huggingface-token}` to `services.vllm` and run `homelab apply`".into(),
    };
    Some(Runbook {
        name: "vllm".into(),
        title: title.into(),
        content: format!(
            "# {title}\n\nvLLM serves `{model}` at revision `{rev}` in namespace `{NS}`. Its first start downloads the weights into PVC `{CACHE_PVC}` before `/health` answers; the startup probe waits {minutes} minutes for that.\n\n## Check\n\n1. `homelab status`: is the pod Pending for a GPU? The nodes table's GPUS column shows what each GPU node offers and which pods hold it.\n2. `kubectl -n {NS} describe pod -l app.kubernetes.io/name=vllm`: scheduling events (`Insufficient nvidia.com/gpu`, the `nvidia` RuntimeClass missing).\n3. `kubectl -n {NS} logs deploy/vllm`: download progress and the error that stopped it.\n\n## Fix\n\n- `401`/`403` or `GatedRepoError` in the log: {token}.\n- `Revision Not Found`: `revision` in the spec names no branch, tag or commit of `{model}`; correct it and `homelab apply`.\n- `CUDA out of memory` or `No available memory for the cache blocks`: the model does not fit the GPU (or the GPU is shared by time-slicing with Ollama): add `--max-model-len=4096` or `--gpu-memory-utilization=0.6` to `services.vllm.args`, or serve a smaller model.\n- Pending with `Insufficient nvidia.com/gpu`: another pod holds the GPU; stop it or share the GPU with `gpu: {{sharing: {{replicas: 2}}}}` on the node, then `homelab apply`.\n- The cache volume is full (`No space left on device`): raise `services.vllm.storage`, or delete old models with `kubectl -n {NS} exec deploy/vllm -- rm -rf {CACHE_DIR}/hub/models--OWNER--NAME`.\n",
            model = v.model,
            rev = v.revision,
            minutes = STARTUP_PERIOD_SECONDS * STARTUP_FAILURES / 60,
        ),
    })
}
