//! GPU rules: a node's `gpu:` read into its GPUs, label and taint, and the GPU requests of the
//! services and apps held against what the GPU nodes can give; no I/O.

use std::collections::BTreeMap;

use super::{Checker, Opt};
use crate::de::Spanned;
use crate::diag::{Diagnostic, Span};
use crate::lab::{
    App, Cluster, GPU_LABEL, GPU_SHARING_LABEL, GPU_TAINT_KEY, Gpu, GpuVendor, Services, Taint,
    TaintEffect,
};
use crate::raw::{RawGpu, RawLab};

/// The node's GPUs from its `gpu:` value, with the GPU label (and the taint, when asked for)
/// added to what the node carries.
pub(super) fn node(
    c: &mut Checker,
    gpu: &Opt<RawGpu>,
    labels: &mut BTreeMap<String, String>,
    raw_labels: &BTreeMap<String, Spanned<String>>,
    taints: &mut Vec<Taint>,
) -> Option<Gpu> {
    let g = gpu.as_ref()?;
    let gpu = match &g.value {
        RawGpu::Flag(false) => return None,
        RawGpu::Flag(true) => Gpu {
            vendor: GpuVendor::Nvidia,
            count: 1,
            replicas: 1,
            taint: false,
        },
        RawGpu::Detail(d) => {
            let count = match &d.count {
                Some(n) if n.value == 0 => {
                    c.error(
                        Diagnostic::error("gpu-count", "`count: 0` says the node has no GPU")
                            .at(n.span)
                            .help("write how many GPUs the node has (at least 1), or `gpu: false` if it has none"),
                    );
                    1
                }
                Some(n) => n.value,
                None => 1,
            };
            let replicas = match d.sharing.as_ref() {
                None => 1,
                Some(s) => match &s.replicas {
                    Some(r) if r.value < 2 => {
                        c.error(
                            Diagnostic::error(
                                "gpu-sharing-replicas",
                                format!("`replicas: {}` does not share the GPU", r.value),
                            )
                            .at(r.span)
                            .help("time-slicing needs at least 2 replicas (pods per GPU); remove `sharing` to give the GPU to one pod at a time"),
                        );
                        1
                    }
                    Some(r) => r.value,
                    None => {
                        c.error(
                            Diagnostic::error(
                                "missing-key",
                                "`replicas` is missing: how many pods share each GPU",
                            )
                            .at(Span::point(s.span.start))
                            .scope(s.span)
                            .suggest("replicas")
                            .label("add `replicas` to this mapping")
                            .help("write e.g. `sharing: {replicas: 4}` for four pods on each GPU"),
                        );
                        1
                    }
                },
            };
            Gpu {
                vendor: d.vendor.as_ref().map_or(GpuVendor::Nvidia, |v| v.value),
                count,
                replicas,
                taint: d.taint.as_ref().is_some_and(|t| t.value),
            }
        }
    };
    let (key, value) = GPU_LABEL;
    match raw_labels.get(key) {
        Some(v) if v.value != value => c.error(
            Diagnostic::error(
                "gpu-label",
                format!("the label `{key}: {}` contradicts `gpu`", v.value),
            )
            .at(v.span)
            .related(g.span, "the node's GPU is set here")
            .help(format!(
                "GPU workloads select `{key}: {value}`, which homelab sets on GPU nodes; remove this label"
            )),
        ),
        _ => {
            labels.insert(key.into(), value.into());
        }
    }
    if let Some(v) = raw_labels.get(GPU_SHARING_LABEL) {
        c.error(
            Diagnostic::error(
                "gpu-label",
                format!("the label `{GPU_SHARING_LABEL}` is homelab's to set"),
            )
            .at(v.span)
            .help("it picks the device plugin's configuration from `gpu.sharing`; remove the label and set `gpu: {sharing: {replicas: N}}` instead"),
        );
    }
    labels.insert(GPU_SHARING_LABEL.into(), gpu.sharing_config());
    if gpu.taint
        && !taints
            .iter()
            .any(|t| t.key == GPU_TAINT_KEY && t.effect == TaintEffect::NoSchedule)
    {
        taints.push(Taint {
            key: GPU_TAINT_KEY.into(),
            value: Some("true".into()),
            effect: TaintEffect::NoSchedule,
        });
    }
    Some(gpu)
}

/// Something in the spec that asks for GPUs, and where.
struct Request {
    who: String,
    gpus: u32,
    span: Span,
    /// Why it cannot do without a GPU, where `gpu: true` is not the user's choice.
    needs: Option<&'static str>,
}

/// Every GPU request has a GPU node to run on, and all of them fit at once.
pub(super) fn requests(
    c: &mut Checker,
    raw: &RawLab,
    cluster: Option<&Cluster>,
    services: &Services,
    apps: &[App],
) {
    let Some(cluster) = cluster else {
        return;
    };
    let mut requests = Vec::new();
    let rs = raw.services.as_ref();
    if let (Some(o), Some(span)) = (
        &services.ollama,
        rs.and_then(|s| s.ollama.as_ref())
            .and_then(|o| o.gpu.as_ref())
            .map(|g| g.span),
    ) && o.gpu
    {
        requests.push(Request {
            who: "ollama".into(),
            gpus: 1,
            span,
            needs: None,
        });
    }
    if services.vllm.is_some()
        && let Some(span) = rs
            .and_then(|s| s.vllm.as_ref())
            .map(|v| Span::point(v.span.start))
    {
        requests.push(Request {
            who: "vllm".into(),
            gpus: 1,
            span,
            needs: Some("vLLM's official image runs models on an NVIDIA GPU only (it is built for CUDA and has no CPU fallback)"),
        });
    }
    let raw_apps = raw
        .apps
        .iter()
        .filter(|ra| ra.name.is_some() && ra.image.is_some() && ra.port.is_some());
    for (a, ra) in apps.iter().zip(raw_apps) {
        if let (true, Some(g)) = (a.gpu, &ra.gpu) {
            requests.push(Request {
                who: format!("app {}", a.name),
                gpus: a.replicas.unwrap_or(1),
                span: g.span,
                needs: None,
            });
        }
    }
    requests.retain(|r| r.gpus > 0);
    let nodes: Vec<(&str, Gpu)> = cluster
        .gpu_nodes()
        .map(|(n, g)| (n.name.as_str(), g))
        .collect();
    if nodes.is_empty() {
        for r in &requests {
            let d = Diagnostic::error(
                "no-gpu-node",
                format!("{} needs a GPU, but no node has one", r.who),
            )
            .at(r.span);
            c.error(match r.needs {
                None => d.help("add `gpu: true` to the node with the NVIDIA GPU in `cluster.nodes` (`nodes apply` then sets it up and labels it), or remove `gpu: true` here; otherwise the pod waits forever for a GPU"),
                Some(why) => d.label(why).help("add `gpu: true` to the node with the NVIDIA GPU in `cluster.nodes` (`nodes apply` then sets it up and labels it), or, on a lab without a GPU, serve models on CPU with `services.ollama` and remove `services.vllm`"),
            });
        }
        return;
    }
    let offered: u32 = nodes.iter().map(|(_, g)| g.allocatable()).sum();
    let asked: u32 = requests.iter().map(|r| r.gpus).sum();
    if asked <= offered {
        return;
    }
    let mut running = 0;
    let over = requests
        .iter()
        .position(|r| {
            running += r.gpus;
            running > offered
        })
        .expect("the requests add up to more than is offered");
    let who = requests
        .iter()
        .map(|r| match r.gpus {
            1 => r.who.clone(),
            n => format!("{} ({n} replicas)", r.who),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let what = nodes
        .iter()
        .map(|(name, g)| describe(name, g))
        .collect::<Vec<_>>()
        .join(", ");
    let mut d = Diagnostic::error(
        "gpu-capacity",
        format!("{asked} GPUs are asked for ({who}), but the GPU nodes offer {offered} ({what})"),
    )
    .at(requests[over].span)
    .label("no GPU is left for this one");
    for (i, r) in requests.iter().enumerate() {
        if i != over {
            d = d.related(r.span, format!("{} takes {}", r.who, gpus(r.gpus)));
        }
    }
    let (first, _) = nodes[0];
    c.error(d.help(format!(
        "let pods take turns on a GPU with time-slicing, e.g. `gpu: {{sharing: {{replicas: {asked}}}}}` on `{first}`, add a GPU node, or remove `gpu: true` from one of them"
    )));
}

fn gpus(n: u32) -> String {
    if n == 1 {
        "1 GPU".into()
    } else {
        format!("{n} GPUs")
    }
}

fn describe(node: &str, g: &Gpu) -> String {
    if g.replicas > 1 {
        format!("`{node}` {} shared {} ways", gpus(g.count), g.replicas)
    } else {
        format!("`{node}` {}", gpus(g.count))
    }
}
