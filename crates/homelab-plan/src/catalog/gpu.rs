//! NVIDIA GPUs: the device plugin (with time-slicing per node), the `nvidia` RuntimeClass and
//! dcgm-exporter on the GPU nodes, and what the monitoring component adds for them (monitor,
//! dashboard, alert, runbook); planned only when a node has a GPU. No host work here: the
//! node engine installs the container toolkit.

use std::collections::BTreeMap;

use homelab_spec::lab::{GPU_LABEL, GPU_TAINT_KEY, Lab};
use serde_json::{Value, json};

use super::Ctx;
use super::monitoring::Alert;
use crate::meta::{labels, metadata, namespace, selector};
use crate::{ChartRef, Component, HealthCheck, HelmRelease, Layer, Runbook, versions};

pub(crate) const NS: &str = "gpu";
pub(crate) const RELEASE: &str = "nvidia-device-plugin";
const RUNTIME_CLASS: &str = "nvidia";
const EXPORTER: &str = "dcgm-exporter";
const EXPORTER_PORT: u16 = 9400;
/// The configuration of a GPU node without `sharing` (see `Gpu::sharing_config`).
const EXCLUSIVE: &str = "exclusive";

/// Whether the lab has a GPU node, so this component and its monitoring exist.
pub(crate) fn planned(lab: &Lab) -> bool {
    lab.cluster.gpu_nodes().next().is_some()
}

/// What GPU pods tolerate: the taint of a GPU node with `taint: true`.
pub(crate) fn toleration() -> Value {
    json!({"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"})
}

/// Whether any GPU node is tainted, so GPU workloads need [`toleration`].
pub(crate) fn tainted(lab: &Lab) -> bool {
    lab.cluster.gpu_nodes().any(|(_, g)| g.taint)
}

fn gpu_selector() -> Value {
    json!({GPU_LABEL.0: GPU_LABEL.1})
}

/// The device plugin's configurations, by the name a node's label picks: one without
/// sharing, and one per time-slicing replica count the nodes use.
fn plugin_configs(lab: &Lab) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([(
        EXCLUSIVE.to_string(),
        "version: v1\nflags:\n  migStrategy: none\n".to_string(),
    )]);
    for (_, g) in lab.cluster.gpu_nodes().filter(|(_, g)| g.replicas > 1) {
        out.insert(
            g.sharing_config(),
            format!(
                "version: v1\nflags:\n  migStrategy: none\nsharing:\n  timeSlicing:\n    resources:\n      - name: nvidia.com/gpu\n        replicas: {}\n",
                g.replicas
            ),
        );
    }
    out
}

pub(super) fn component(ctx: &Ctx) -> Component {
    let lab = ctx.lab;
    let mut c = Component::new("gpu", Layer::Infrastructure, Some(NS));
    // The device plugin mounts the kubelet's socket directory and dcgm-exporter needs
    // SYS_ADMIN: neither passes a stricter Pod Security level.
    c.add("namespace.yaml", namespace(NS, Some("privileged")));
    c.add(
        "runtime-class.yaml",
        json!({
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": metadata(RUNTIME_CLASS, None, labels(RUNTIME_CLASS, RUNTIME_CLASS, "gpu")),
            "handler": RUNTIME_CLASS,
            // A pod of this class lands on a GPU node even if it forgets the selector.
            "scheduling": {"nodeSelector": gpu_selector()},
        }),
    );
    let values = json!({
        "nodeSelector": gpu_selector(),
        // The chart's default affinity asks for node-feature-discovery's labels, which this
        // lab does not run: the GPU label selects the nodes instead.
        "affinity": null,
        "runtimeClassName": RUNTIME_CLASS,
        "config": {"map": plugin_configs(lab), "default": EXCLUSIVE},
        "nfd": {"enabled": false},
        "gfd": {"enabled": false},
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
    });
    let pin = versions::NVIDIA_DEVICE_PLUGIN;
    c.releases.push(HelmRelease {
        name: RELEASE.into(),
        namespace: NS.into(),
        chart: ChartRef {
            name: pin.dep_name.into(),
            repo: pin.registry_url.into(),
            version: pin.version.into(),
        },
        create_namespace: false,
        values,
    });
    c.health.push(HealthCheck::HelmChart {
        namespace: "kube-system".into(),
        name: RELEASE.into(),
    });
    c.health.push(HealthCheck::Workload {
        kind: "DaemonSet".into(),
        namespace: NS.into(),
        name: RELEASE.into(),
    });
    if lab.services.monitoring.is_some() {
        for o in exporter() {
            c.add("dcgm-exporter.yaml", o);
        }
        c.health.push(HealthCheck::Workload {
            kind: "DaemonSet".into(),
            namespace: NS.into(),
            name: EXPORTER.into(),
        });
    }
    let nodes: Vec<String> = lab
        .cluster
        .gpu_nodes()
        .map(|(n, g)| {
            let shared = if g.replicas > 1 {
                format!(", each shared by {} pods", g.replicas)
            } else {
                String::new()
            };
            let taint = if g.taint { ", tainted" } else { "" };
            format!("`{}`: {} GPU(s){shared}{taint}", n.name, g.count)
        })
        .collect();
    c.docs = crate::ComponentDocs {
        title: "NVIDIA GPUs".into(),
        what: format!(
            "The NVIDIA device plugin offers the GPU nodes' GPUs to pods as `nvidia.com/gpu`; the `nvidia` RuntimeClass runs GPU pods with the NVIDIA container runtime{}. Nodes: {}.",
            if lab.services.monitoring.is_some() { "; dcgm-exporter sends GPU metrics to Prometheus" } else { "" },
            nodes.join("; ")
        ),
        why: "The device plugin alone is what K3s needs: the driver and the container toolkit are on the host (`homelab nodes apply` installs the toolkit), so the GPU Operator's driver containers would only duplicate them. Time-slicing lets Ollama, vLLM and a transcoder share one consumer card.".into(),
        access: vec![
            "`kubectl describe node <gpu node>`: `nvidia.com/gpu` under Allocatable".into(),
            "`homelab status`: each GPU node's GPUs and the pods that use them".into(),
        ],
        data: "None.".into(),
        backup: "Nothing to back up.".into(),
        requirements: vec!["FR39".into()],
    };
    c
}

/// dcgm-exporter on every GPU node, and the Service Prometheus scrapes.
fn exporter() -> Vec<Value> {
    let l = labels(EXPORTER, EXPORTER, "monitoring");
    let pod_labels = selector(EXPORTER, EXPORTER);
    vec![
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": metadata(EXPORTER, Some(NS), l.clone()),
            "spec": {
                "selector": {"matchLabels": pod_labels},
                "template": {
                    "metadata": {"labels": l.clone()},
                    "spec": {
                        "runtimeClassName": RUNTIME_CLASS,
                        "nodeSelector": gpu_selector(),
                        "tolerations": [toleration()],
                        "automountServiceAccountToken": false,
                        "containers": [{
                            "name": EXPORTER,
                            "image": versions::DCGM_EXPORTER.image(),
                            "ports": [{"name": "metrics", "containerPort": EXPORTER_PORT}],
                            "env": [
                                {"name": "DCGM_EXPORTER_LISTEN", "value": format!(":{EXPORTER_PORT}")},
                                {"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"},
                                // Every GPU of the node, without taking one from the device plugin.
                                {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
                            ],
                            "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}},
                            "readinessProbe": {"httpGet": {"path": "/health", "port": "metrics"}, "periodSeconds": 15},
                            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
                            "volumeMounts": [{"name": "pod-resources", "mountPath": "/var/lib/kubelet/pod-resources", "readOnly": true}],
                        }],
                        // Which pod uses which GPU, for the metrics' pod labels.
                        "volumes": [{"name": "pod-resources", "hostPath": {"path": "/var/lib/kubelet/pod-resources"}}],
                    },
                },
            },
        }),
        crate::meta::service(
            EXPORTER,
            NS,
            l,
            pod_labels,
            json!([{"name": "metrics", "port": EXPORTER_PORT, "targetPort": "metrics"}]),
        ),
    ]
}

/// What the monitoring component carries for the GPUs: the ServiceMonitor (the monitoring
/// CRDs come with that component) and the Grafana dashboard.
pub(crate) fn monitoring_objects(monitoring_ns: &str) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": metadata(EXPORTER, Some(monitoring_ns), labels(EXPORTER, EXPORTER, "monitoring")),
            "spec": {
                "namespaceSelector": {"matchNames": [NS]},
                "selector": {"matchLabels": selector(EXPORTER, EXPORTER)},
                "endpoints": [{"port": "metrics"}],
            },
        }),
        dashboard(monitoring_ns),
    ]
}

/// A Grafana dashboard (read by the chart's dashboard sidecar): memory, utilisation and
/// temperature per GPU.
fn dashboard(monitoring_ns: &str) -> Value {
    let panel = |id: u32, title: &str, expr: &str, unit: &str, y: u32| {
        json!({
            "id": id,
            "type": "timeseries",
            "title": title,
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "gridPos": {"h": 8, "w": 24, "x": 0, "y": y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": "A", "expr": expr, "legendFormat": "{{Hostname}} GPU {{gpu}}"}],
        })
    };
    let board = json!({
        "uid": "homelab-gpu",
        "title": "GPUs",
        "tags": ["homelab", "gpu"],
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "panels": [
            panel(1, "GPU memory used", MEMORY_USED_RATIO, "percentunit", 0),
            panel(2, "GPU utilisation", "DCGM_FI_DEV_GPU_UTIL / 100", "percentunit", 8),
            panel(3, "GPU temperature", "DCGM_FI_DEV_GPU_TEMP", "celsius", 16),
        ],
    });
    let mut l = labels("grafana", "gpu-dashboard", "monitoring");
    l["grafana_dashboard"] = json!("1");
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata("gpu-dashboard", Some(monitoring_ns), l),
        "data": {"gpu.json": serde_json::to_string_pretty(&board).expect("JSON")},
    })
}

/// The share of a GPU's framebuffer memory in use, per GPU.
const MEMORY_USED_RATIO: &str = "DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)";

/// "GPU memory full": a warning, because a full GPU slows or fails new model loads but
/// nothing is down.
pub(crate) fn alerts() -> Vec<Alert> {
    vec![Alert {
        name: "GpuMemoryFull",
        priority: "P2",
        expr: format!("{MEMORY_USED_RATIO} > 0.95"),
        for_: "10m".into(),
        summary: "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} has used more than 95% of its memory for 10 minutes".into(),
        description: "Models that do not fit any more load slowly from system memory or fail; with time-slicing, the pods sharing the GPU share its memory too.".into(),
        runbook: "gpu-memory-full",
    }]
}

pub(crate) fn runbook(ctx: &Ctx) -> Runbook {
    let title = "Runbook: GpuMemoryFull (P2)";
    let nodes: Vec<String> = ctx
        .lab
        .cluster
        .gpu_nodes()
        .map(|(n, _)| format!("`{}`", n.name))
        .collect();
    Runbook {
        name: "gpu-memory-full".into(),
        title: title.into(),
        content: format!(
            "# {title}\n\nA GPU has had more than 95% of its memory in use for 10 minutes. GPU nodes: {}. Pods that share a GPU by time-slicing share its memory: one large model can leave none for the others.\n\n## Check\n\n1. Grafana dashboard \"GPUs\" (https://{}): which GPU, since when.\n2. `homelab status`: the pods on each GPU node's GPUs.\n3. On the node: `nvidia-smi` lists the processes and the memory each holds.\n\n## Fix\n\n- Ollama: unload idle models sooner (`OLLAMA_KEEP_ALIVE`) or use a smaller quantisation.\n- vLLM: lower `--gpu-memory-utilization` or `--max-model-len`.\n- Move a workload off the GPU (`gpu: false`) or lower `gpu.sharing.replicas` so fewer pods share it, then `homelab apply`.\n",
            nodes.join(", "),
            ctx.fqdn("grafana"),
        ),
    }
}
