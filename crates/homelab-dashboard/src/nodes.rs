//! The Nodes page and `/api/nodes`: each node of the plan with its role, the k3s version it
//! runs against the pinned one, Ready, pressure conditions and, when metrics-server answers,
//! CPU and memory in use against what the node offers. Pure: reads the Node list and the
//! node metrics as the API gave them; no I/O.

use std::fmt::Write;

use serde::Serialize;
use serde_json::Value;

use crate::html::{esc, page};
use crate::reads::Read;

/// A node as the plan has it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedNode {
    pub name: String,
    pub role: String,
}

/// Used against offered, in the resource's base unit (cores, bytes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub used: f64,
    pub allocatable: Option<f64>,
    /// Per cent of allocatable, when that is known.
    pub percent: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub name: String,
    pub role: String,
    /// The cluster has a Node of that name.
    pub present: bool,
    pub ready: bool,
    /// The Ready condition's reason or message when not Ready.
    pub ready_detail: Option<String>,
    pub k3s_version: Option<String>,
    /// It runs another k3s release than the plan pins.
    pub version_skew: bool,
    /// Conditions such as `DiskPressure` that are True.
    pub pressure: Vec<String>,
    pub cpu: Option<Usage>,
    pub memory: Option<Usage>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodesPage {
    pub lab: String,
    pub k3s_pinned: String,
    /// When the cluster was last read (RFC 3339); `None` before the first read.
    pub read_at: Option<String>,
    /// Why the Nodes could not be read, when they could not.
    pub error: Option<String>,
    /// Why CPU and memory are not shown, when they are not (no metrics-server, say).
    pub metrics_unavailable: Option<String>,
    pub nodes: Vec<NodeView>,
}

/// A Kubernetes quantity (`250m`, `1500000n`, `2Gi`, `1e3`) as a number of base units.
pub fn quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    // A decimal exponent (`1e3`, `1E3`) belongs to the number.
    if suffix.starts_with(['e', 'E']) && suffix.len() > 1 {
        return text.parse().ok();
    }
    let n: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(n * factor)
}

fn condition<'a>(node: &'a Value, kind: &str) -> Option<&'a Value> {
    node.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn usage(used: Option<f64>, allocatable: Option<f64>) -> Option<Usage> {
    let used = used?;
    Some(Usage {
        used,
        allocatable,
        percent: allocatable
            .filter(|a| *a > 0.0)
            .map(|a| (used / a * 1000.0).round() / 10.0),
    })
}

impl NodesPage {
    /// The page of `planned` nodes from one read of the Node list and the node metrics.
    pub fn build(
        lab: &str,
        k3s_pinned: &str,
        planned: &[PlannedNode],
        read_at: Option<String>,
        nodes: Option<&Read<Value>>,
        metrics: Option<&Read<Value>>,
    ) -> NodesPage {
        let items: Vec<Value> = nodes
            .and_then(Read::got)
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default();
        let error = match nodes {
            None => None,
            Some(Read::Got(_)) => None,
            Some(Read::Absent) => Some("the API has no Node list".to_string()),
            Some(Read::Failed(why)) => Some(format!("cannot read the Nodes: {why}")),
        };
        let metric_items: Vec<Value> = metrics
            .and_then(Read::got)
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default();
        let metrics_unavailable = match metrics {
            None => Some("not read yet".to_string()),
            Some(Read::Got(_)) if metric_items.is_empty() => Some(
                "metrics-server reports no node yet (its first figures come about a minute after it starts)"
                    .to_string(),
            ),
            Some(Read::Got(_)) => None,
            Some(Read::Absent) => Some(
                "metrics-server is not installed (the API has no metrics.k8s.io): CPU and memory in use are not known"
                    .to_string(),
            ),
            Some(Read::Failed(why)) => Some(format!("metrics-server did not answer: {why}")),
        };
        let views = planned
            .iter()
            .map(|p| {
                let live = items
                    .iter()
                    .find(|n| n["metadata"]["name"] == p.name.as_str());
                let metric = metric_items
                    .iter()
                    .find(|m| m["metadata"]["name"] == p.name.as_str());
                let ready_cond = live.and_then(|n| condition(n, "Ready"));
                let ready = ready_cond.is_some_and(|c| c["status"] == "True");
                let version = live
                    .and_then(|n| n.pointer("/status/nodeInfo/kubeletVersion"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let pressure = live
                    .and_then(|n| n.pointer("/status/conditions"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|c| c["type"] != "Ready" && c["status"] == "True")
                    .filter_map(|c| c["type"].as_str().map(str::to_string))
                    .collect();
                let alloc = |what: &str| {
                    live.and_then(|n| n.pointer(&format!("/status/allocatable/{what}")))
                        .and_then(Value::as_str)
                        .and_then(quantity)
                };
                let used = |what: &str| {
                    metric
                        .and_then(|m| m.pointer(&format!("/usage/{what}")))
                        .and_then(Value::as_str)
                        .and_then(quantity)
                };
                NodeView {
                    name: p.name.clone(),
                    role: p.role.clone(),
                    present: live.is_some(),
                    ready,
                    ready_detail: match (live, ready_cond, ready) {
                        (None, _, _) => Some("no Node of that name in the cluster".into()),
                        (_, _, true) => None,
                        (_, None, false) => Some("no Ready condition yet".into()),
                        (_, Some(c), false) => Some(
                            [c["reason"].as_str(), c["message"].as_str()]
                                .into_iter()
                                .flatten()
                                .collect::<Vec<_>>()
                                .join(": "),
                        ),
                    },
                    version_skew: version.as_deref().is_some_and(|v| v != k3s_pinned),
                    k3s_version: version,
                    pressure,
                    cpu: usage(used("cpu"), alloc("cpu")),
                    memory: usage(used("memory"), alloc("memory")),
                }
            })
            .collect();
        NodesPage {
            lab: lab.to_string(),
            k3s_pinned: k3s_pinned.to_string(),
            read_at,
            error,
            metrics_unavailable,
            nodes: views,
        }
    }
}

fn bytes(n: f64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    if n >= GIB {
        format!("{:.1} GiB", n / GIB)
    } else {
        format!("{:.0} MiB", n / (1024.0 * 1024.0))
    }
}

fn usage_cell(u: Option<&Usage>, show: fn(f64) -> String) -> String {
    match u {
        None => "<span class=\"unknown\">?</span>".into(),
        Some(u) => {
            let mut s = esc(&show(u.used));
            if let Some(a) = u.allocatable {
                let _ = write!(s, " / {}", esc(&show(a)));
            }
            if let Some(p) = u.percent {
                let _ = write!(s, " <small>({p:.1}%)</small>");
            }
            s
        }
    }
}

pub fn html(p: &NodesPage) -> String {
    let mut body = String::from("<h1>Nodes</h1>");
    if let Some(e) = &p.error {
        let _ = write!(
            body,
            "<div class=\"banner bad\" id=\"nodes-error\">{}</div>",
            esc(e)
        );
    }
    if let Some(why) = &p.metrics_unavailable {
        let _ = write!(
            body,
            "<div class=\"banner unknown\" id=\"metrics-unavailable\">{}</div>",
            esc(why)
        );
    }
    let _ = write!(
        body,
        "<table><thead><tr><th>Node</th><th>Role</th><th>Ready</th><th>k3s (pinned {})</th><th>Pressure</th><th>CPU</th><th>Memory</th></tr></thead><tbody>",
        esc(&p.k3s_pinned)
    );
    for n in &p.nodes {
        let (class, word) = if n.ready {
            ("ok", "Ready")
        } else {
            ("bad", "not Ready")
        };
        let _ = write!(
            body,
            "<tr class=\"node\" id=\"node-{}\" data-ready=\"{}\"><td><strong>{}</strong></td><td>{}</td><td class=\"{class}\">{word}",
            esc(&n.name),
            n.ready,
            esc(&n.name),
            esc(&n.role)
        );
        if let Some(d) = &n.ready_detail {
            let _ = write!(body, "<br><small>{}</small>", esc(d));
        }
        let vclass = if n.version_skew { "bad" } else { "ok" };
        let _ = write!(
            body,
            "</td><td class=\"{vclass}\">{}{}</td><td>",
            esc(n.k3s_version.as_deref().unwrap_or("?")),
            if n.version_skew { " (skew)" } else { "" }
        );
        if n.pressure.is_empty() {
            body.push_str("<span class=\"ok\">none</span>");
        } else {
            let _ = write!(
                body,
                "<span class=\"bad\">{}</span>",
                esc(&n.pressure.join(", "))
            );
        }
        let _ = write!(
            body,
            "</td><td>{}</td><td>{}</td></tr>",
            usage_cell(n.cpu.as_ref(), |c| format!("{c:.2} cores")),
            usage_cell(n.memory.as_ref(), bytes)
        );
    }
    let _ = write!(
        body,
        "</tbody></table><p><small>read {} · the same data: <a href=\"/api/nodes\">/api/nodes</a></small></p>",
        esc(p.read_at.as_deref().unwrap_or("not yet"))
    );
    page(
        &p.lab,
        "Nodes",
        "/nodes",
        Some(crate::pages::REFRESH_SECONDS),
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_in_every_suffix() {
        assert_eq!(quantity("250m"), Some(0.25));
        assert_eq!(quantity("1500000000n"), Some(1.5));
        assert_eq!(quantity("4"), Some(4.0));
        assert_eq!(quantity("2Gi"), Some(2.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(quantity("1024Ki"), Some(1024.0 * 1024.0));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("3x"), None);
        assert_eq!(quantity(""), None);
    }

    fn planned() -> Vec<PlannedNode> {
        ["k3s-master:server", "k3s-worker-01:agent", "gone:agent"]
            .iter()
            .map(|s| {
                let (name, role) = s.split_once(':').unwrap();
                PlannedNode {
                    name: name.into(),
                    role: role.into(),
                }
            })
            .collect()
    }

    #[test]
    fn skew_pressure_usage_and_missing_nodes() {
        let nodes = json!({"items": [
            {"metadata": {"name": "k3s-master"}, "status": {
                "nodeInfo": {"kubeletVersion": "v1.34.1+k3s1"},
                "allocatable": {"cpu": "4", "memory": "8Gi"},
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "False"}]}},
            {"metadata": {"name": "k3s-worker-01"}, "status": {
                "nodeInfo": {"kubeletVersion": "v1.33.5+k3s1"},
                "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "PLEG is not healthy"},
                               {"type": "MemoryPressure", "status": "True"}]}},
        ]});
        let metrics = json!({"items": [{"metadata": {"name": "k3s-master"}, "usage": {"cpu": "1000m", "memory": "2Gi"}}]});
        let p = NodesPage::build(
            "lab",
            "v1.34.1+k3s1",
            &planned(),
            None,
            Some(&Read::Got(nodes)),
            Some(&Read::Got(metrics)),
        );
        assert!(p.metrics_unavailable.is_none());
        let [master, worker, gone] = &p.nodes[..] else {
            panic!()
        };
        assert!(master.ready && !master.version_skew && master.pressure.is_empty());
        assert_eq!(master.cpu.unwrap().percent, Some(25.0));
        assert_eq!(master.memory.unwrap().percent, Some(25.0));
        assert!(!worker.ready && worker.version_skew);
        assert_eq!(worker.pressure, ["MemoryPressure"]);
        assert_eq!(
            worker.ready_detail.as_deref(),
            Some("KubeletNotReady: PLEG is not healthy")
        );
        assert!(worker.cpu.is_none());
        assert!(!gone.present && !gone.ready);
        let page = html(&p);
        assert!(page.contains("v1.33.5+k3s1 (skew)"));
        assert!(page.contains("MemoryPressure"));
    }

    #[test]
    fn no_metrics_server_is_said_and_a_failed_read_is_shown() {
        let p = NodesPage::build(
            "lab",
            "v1",
            &planned(),
            None,
            Some(&Read::Failed("HTTP 500: boom".into())),
            Some(&Read::Absent),
        );
        assert!(p.error.as_deref().unwrap().contains("boom"));
        assert!(
            p.metrics_unavailable
                .as_deref()
                .unwrap()
                .contains("metrics-server is not installed")
        );
        assert!(html(&p).contains("id=\"metrics-unavailable\""));
    }
}
