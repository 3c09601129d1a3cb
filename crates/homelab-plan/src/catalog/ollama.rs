//! Ollama (otwld chart): local LLM inference with models on NFS and an optional GPU.

use serde_json::json;

use super::Ctx;
use crate::meta::namespace;
use crate::{ChartRef, Component, Endpoint, HealthCheck, HelmRelease, Layer, versions};

const NS: &str = "ml";

pub(super) fn component(ctx: &Ctx) -> Component {
    let o = ctx
        .lab
        .services
        .ollama
        .as_ref()
        .expect("planned only when enabled");
    let host = ctx.fqdn(&o.host);
    let mut c = Component::new("ollama", Layer::Applications, Some(NS));
    c.depends_on
        .extend(["nfs".to_string(), "traefik".to_string()]);
    c.add("namespace.yaml", namespace(NS, Some("baseline")));
    let mut values = json!({
        "ollama": {
            "gpu": {"enabled": o.gpu, "type": "nvidia", "number": 1},
            "models": {"pull": o.models},
        },
        "persistentVolume": {"enabled": true, "size": o.storage.to_string(), "storageClass": ctx.storage_class},
        "ingress": crate::meta::chart_ingress(&host, "ollama-tls", ctx.issuer),
        "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "12Gi"}},
    });
    if o.gpu {
        values["runtimeClassName"] = json!("nvidia");
        values["nodeSelector"] = json!({"homelab/gpu": "nvidia"});
        if super::gpu::tainted(ctx.lab) {
            values["tolerations"] = json!([super::gpu::toleration()]);
        }
    }
    if super::authelia::sso(ctx).is_some() {
        // Ollama's API has no login: anyone on the LAN could use (and pull onto) the GPU.
        let (mw, annotation) = super::authelia::middleware(NS, "ollama");
        values["ingress"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"] =
            json!(annotation);
        c.add("sso.yaml", mw);
    }
    let pin = versions::OLLAMA;
    c.releases.push(HelmRelease {
        name: "ollama".into(),
        namespace: NS.into(),
        chart: ChartRef {
            name: pin.dep_name.into(),
            repo: pin.registry_url.into(),
            version: pin.version.into(),
        },
        create_namespace: false,
        values,
    });
    c.endpoints.push(Endpoint {
        name: "ollama".into(),
        url: format!("https://{host}"),
        host: host.clone(),
        description: "Ollama API (`/api/generate`, `/api/chat`)".into(),
    });
    c.health.push(HealthCheck::HelmChart {
        namespace: "kube-system".into(),
        name: "ollama".into(),
    });
    c.health.push(HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: NS.into(),
        name: "ollama".into(),
    });
    c.health.push(HealthCheck::Certificate {
        namespace: NS.into(),
        name: "ollama-tls".into(),
    });
    c.health.push(HealthCheck::Url {
        url: format!("https://{host}"),
        host: host.clone(),
    });
    c.docs = crate::ComponentDocs {
        title: "Ollama".into(),
        what: format!("Runs LLMs locally and serves them over an HTTP API; pulls {} on start{}.", if o.models.is_empty() { "no model".to_string() } else { o.models.join(", ") }, if o.gpu { ", on a GPU node" } else { ", on CPU" }),
        why: "One binary with a simple API that n8n and other apps already speak; the chart handles model pulls and GPU scheduling.".into(),
        access: vec![
            format!("https://{host}/api/generate (reachable on the LAN and over Tailscale; it has no login, so keep it off the internet)"),
            "In the cluster: http://ollama.ml.svc.cluster.local:11434".into(),
        ],
        data: format!("Models on a {} NFS volume.", o.storage),
        backup: "Not backed up: models are downloaded again on start.".into(),
        requirements: vec!["FR36".into(), "FR37".into(), "FR39".into(), "NFR13".into()],
    };
    c
}
