//! The cluster as seen through `k3s kubectl` on a server: node and pod views parsed from
//! JSON, label and taint differences, and the kubectl command lines that apply them. Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::inventory::{Host, Taint, TaintEffect};
use crate::shell::quote;

/// Annotation listing the label keys this tool set on a node, so that labels removed from
/// the spec are removed from the node and labels set by others are left alone.
pub const MANAGED_LABELS_ANNOTATION: &str = "homelab-rs.github.io/managed-labels";
/// Annotation listing the taints (`key:Effect`) this tool set on a node.
pub const MANAGED_TAINTS_ANNOTATION: &str = "homelab-rs.github.io/managed-taints";
/// k3s removes a server's etcd member when its node carries this annotation.
pub const ETCD_REMOVE_ANNOTATION: &str = "etcd.k3s.cattle.io/remove";
/// k3s records the removed member's name here once it is gone.
pub const ETCD_REMOVED_ANNOTATION: &str = "etcd.k3s.cattle.io/removed-node-name";
/// k3s labels etcd members with this.
pub const ETCD_ROLE_LABEL: &str = "node-role.kubernetes.io/etcd";

/// `k3s kubectl` as root on a server.
pub(crate) const KUBECTL: &str = "k3s kubectl";

/// A node as the API server reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// Why the node is not ready, from the `Ready` condition.
    pub ready_message: String,
    /// Cordoned.
    pub unschedulable: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Taints.
    pub taints: Vec<Taint>,
    /// kubelet version (`v1.31.2+k3s1`).
    pub kubelet_version: String,
}

impl NodeView {
    /// An embedded-etcd member that k3s has not removed.
    pub fn is_etcd_member(&self) -> bool {
        self.labels
            .get(ETCD_ROLE_LABEL)
            .is_some_and(|v| v == "true")
            && !self.annotations.contains_key(ETCD_REMOVED_ANNOTATION)
    }
}

/// A pod as far as draining cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodView {
    pub namespace: String,
    pub name: String,
    pub owner_kind: Option<String>,
    pub mirror: bool,
    pub phase: String,
}

impl PodView {
    /// Pods that `kubectl drain --ignore-daemonsets` leaves in place on purpose.
    pub(crate) fn stays_on_drain(&self) -> bool {
        self.mirror
            || self.owner_kind.as_deref() == Some("DaemonSet")
            || matches!(self.phase.as_str(), "Succeeded" | "Failed")
    }
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_node(item: &Value) -> Option<NodeView> {
    let meta = item.get("metadata")?;
    let name = meta.get("name")?.as_str()?.to_string();
    let spec = item.get("spec").cloned().unwrap_or(Value::Null);
    let status = item.get("status").cloned().unwrap_or(Value::Null);
    let ready_cond = status
        .get("conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        });
    let ready = ready_cond
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True");
    let ready_message = ready_cond
        .map(|c| {
            let reason = c.get("reason").and_then(Value::as_str).unwrap_or("");
            let message = c.get("message").and_then(Value::as_str).unwrap_or("");
            format!("{reason} {message}").trim().to_string()
        })
        .unwrap_or_else(|| "no Ready condition reported yet".into());
    let taints = spec
        .get("taints")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(|t| {
                    Some(Taint {
                        key: t.get("key")?.as_str()?.to_string(),
                        value: t
                            .get("value")
                            .and_then(Value::as_str)
                            .filter(|v| !v.is_empty())
                            .map(str::to_string),
                        effect: TaintEffect::parse(t.get("effect")?.as_str()?)?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(NodeView {
        name,
        ready,
        ready_message,
        unschedulable: spec
            .get("unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        labels: string_map(meta.get("labels").unwrap_or(&Value::Null)),
        annotations: string_map(meta.get("annotations").unwrap_or(&Value::Null)),
        taints,
        kubelet_version: status
            .get("nodeInfo")
            .and_then(|n| n.get("kubeletVersion"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

/// Parses `kubectl get nodes -o json` (a List) or `kubectl get node X -o json` (one Node).
pub(crate) fn parse_nodes(json: &str) -> Result<Vec<NodeView>, String> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| format!("kubectl printed something that is not JSON: {e}"))?;
    match v.get("items").and_then(Value::as_array) {
        Some(items) => Ok(items.iter().filter_map(parse_node).collect()),
        None => parse_node(&v)
            .map(|n| vec![n])
            .ok_or_else(|| "kubectl output is neither a node nor a list of nodes".into()),
    }
}

/// Parses `kubectl get pods -o json`.
pub(crate) fn parse_pods(json: &str) -> Result<Vec<PodView>, String> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| format!("kubectl printed something that is not JSON: {e}"))?;
    let items = v
        .get("items")
        .and_then(Value::as_array)
        .ok_or("kubectl output is not a list of pods")?;
    Ok(items
        .iter()
        .filter_map(|p| {
            let meta = p.get("metadata")?;
            Some(PodView {
                namespace: meta
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_string(),
                name: meta.get("name")?.as_str()?.to_string(),
                owner_kind: meta
                    .get("ownerReferences")
                    .and_then(Value::as_array)
                    .and_then(|o| o.first())
                    .and_then(|o| o.get("kind"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                mirror: meta
                    .get("annotations")
                    .and_then(|a| a.get("kubernetes.io/config.mirror"))
                    .is_some(),
                phase: p
                    .get("status")
                    .and_then(|s| s.get("phase"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            })
        })
        .collect())
}

/// What has to change on a node so that its managed labels and taints match the spec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct MetadataChange {
    pub set_labels: BTreeMap<String, String>,
    pub remove_labels: BTreeSet<String>,
    pub add_taints: Vec<Taint>,
    pub remove_taints: Vec<(String, TaintEffect)>,
    pub labels_annotation: Option<String>,
    pub taints_annotation: Option<String>,
}

impl MetadataChange {
    pub(crate) fn is_empty(&self) -> bool {
        self.set_labels.is_empty()
            && self.remove_labels.is_empty()
            && self.add_taints.is_empty()
            && self.remove_taints.is_empty()
            && self.labels_annotation.is_none()
            && self.taints_annotation.is_none()
    }

    /// One line per kind of change, for reports.
    pub(crate) fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.set_labels.is_empty() {
            out.push(format!(
                "set labels {}",
                self.set_labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !self.remove_labels.is_empty() {
            out.push(format!(
                "remove labels {}",
                self.remove_labels
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !self.add_taints.is_empty() {
            out.push(format!(
                "add taints {}",
                self.add_taints
                    .iter()
                    .map(Taint::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !self.remove_taints.is_empty() {
            out.push(format!(
                "remove taints {}",
                self.remove_taints
                    .iter()
                    .map(|(k, e)| format!("{k}:{e}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if out.is_empty() && (self.labels_annotation.is_some() || self.taints_annotation.is_some())
        {
            out.push("record which labels and taints are managed".into());
        }
        out
    }

    /// The kubectl command lines that make the change.
    pub(crate) fn commands(&self, node: &str) -> Vec<String> {
        let mut cmds = Vec::new();
        let n = quote(node);
        let mut label_args: Vec<String> = self
            .set_labels
            .iter()
            .map(|(k, v)| quote(&format!("{k}={v}")))
            .collect();
        label_args.extend(self.remove_labels.iter().map(|k| quote(&format!("{k}-"))));
        if !label_args.is_empty() {
            cmds.push(format!(
                "{KUBECTL} label node {n} --overwrite {}",
                label_args.join(" ")
            ));
        }
        let mut taint_args: Vec<String> = self
            .remove_taints
            .iter()
            .map(|(k, e)| quote(&format!("{k}:{e}-")))
            .collect();
        taint_args.extend(self.add_taints.iter().map(|t| quote(&t.to_string())));
        if !taint_args.is_empty() {
            cmds.push(format!(
                "{KUBECTL} taint node {n} --overwrite {}",
                taint_args.join(" ")
            ));
        }
        let mut ann = Vec::new();
        if let Some(v) = &self.labels_annotation {
            ann.push(quote(&format!("{MANAGED_LABELS_ANNOTATION}={v}")));
        }
        if let Some(v) = &self.taints_annotation {
            ann.push(quote(&format!("{MANAGED_TAINTS_ANNOTATION}={v}")));
        }
        if !ann.is_empty() {
            cmds.push(format!(
                "{KUBECTL} annotate node {n} --overwrite {}",
                ann.join(" ")
            ));
        }
        cmds
    }
}

fn managed_list(node: &NodeView, annotation: &str) -> BTreeSet<String> {
    node.annotations
        .get(annotation)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The change that brings `node`'s managed labels and taints to what `host` asks for.
pub(crate) fn metadata_change(host: &Host, node: &NodeView) -> MetadataChange {
    let mut change = MetadataChange::default();
    for (k, v) in &host.labels {
        if node.labels.get(k) != Some(v) {
            change.set_labels.insert(k.clone(), v.clone());
        }
    }
    for k in managed_list(node, MANAGED_LABELS_ANNOTATION) {
        if !host.labels.contains_key(&k) && node.labels.contains_key(&k) {
            change.remove_labels.insert(k);
        }
    }
    let wanted_labels = host.labels.keys().cloned().collect::<Vec<_>>().join(",");
    if node
        .annotations
        .get(MANAGED_LABELS_ANNOTATION)
        .map(String::as_str)
        .unwrap_or("")
        != wanted_labels
    {
        change.labels_annotation = Some(wanted_labels);
    }

    let previously: BTreeSet<String> = managed_list(node, MANAGED_TAINTS_ANNOTATION);
    for t in &host.taints {
        // `--overwrite` replaces the value of a taint with the same key and effect.
        if !node.taints.contains(t) {
            change.add_taints.push(t.clone());
        }
    }
    for n in &node.taints {
        let id = format!("{}:{}", n.key, n.effect);
        let still_wanted = host
            .taints
            .iter()
            .any(|t| t.key == n.key && t.effect == n.effect);
        if previously.contains(&id) && !still_wanted {
            change.remove_taints.push((n.key.clone(), n.effect));
        }
    }
    let wanted_taints = host
        .taints
        .iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect::<Vec<_>>()
        .join(",");
    if node
        .annotations
        .get(MANAGED_TAINTS_ANNOTATION)
        .map(String::as_str)
        .unwrap_or("")
        != wanted_taints
    {
        change.taints_annotation = Some(wanted_taints);
    }
    change
}

/// How many etcd members must be healthy for a cluster of `members` to have quorum.
pub(crate) fn quorum(members: usize) -> usize {
    members / 2 + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Role, SshTarget};

    const NODES: &str = r#"{"apiVersion":"v1","kind":"List","items":[
      {"metadata":{"name":"s1","labels":{"node-role.kubernetes.io/etcd":"true","zone":"a","old":"x"},
        "annotations":{"homelab-rs.github.io/managed-labels":"old,zone","homelab-rs.github.io/managed-taints":"gone:NoSchedule"}},
       "spec":{"taints":[{"key":"gone","effect":"NoSchedule"},{"key":"keep","value":"1","effect":"NoExecute"}]},
       "status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"kubelet is posting ready status"}],
                 "nodeInfo":{"kubeletVersion":"v1.31.2+k3s1"}}},
      {"metadata":{"name":"a1","labels":{}},"spec":{"unschedulable":true},
       "status":{"conditions":[{"type":"Ready","status":"Unknown","reason":"NodeStatusUnknown","message":"Kubelet stopped posting node status."}]}}
    ]}"#;

    fn host(labels: &[(&str, &str)], taints: Vec<Taint>) -> Host {
        Host {
            name: "s1".into(),
            role: Role::Server,
            address: "10.0.0.1".into(),
            ssh: SshTarget::default(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            taints,
            gpu: false,
            k3s_config: String::new(),
        }
    }

    #[test]
    fn parses_nodes_from_a_list() {
        let nodes = parse_nodes(NODES).unwrap();
        assert_eq!(nodes.len(), 2);
        assert!(nodes[0].ready && nodes[0].is_etcd_member());
        assert_eq!(nodes[0].kubelet_version, "v1.31.2+k3s1");
        assert_eq!(nodes[0].taints.len(), 2);
        assert!(!nodes[1].ready && nodes[1].unschedulable && !nodes[1].is_etcd_member());
        assert!(nodes[1].ready_message.contains("stopped posting"));
        assert!(parse_nodes("error: not json").is_err());
    }

    #[test]
    fn label_and_taint_changes_touch_only_managed_keys() {
        let node = &parse_nodes(NODES).unwrap()[0];
        let want = host(
            &[("zone", "b"), ("gpu", "yes")],
            vec![Taint {
                key: "keep".into(),
                value: Some("2".into()),
                effect: TaintEffect::NoExecute,
            }],
        );
        let c = metadata_change(&want, node);
        assert_eq!(
            c.set_labels,
            [
                ("gpu".to_string(), "yes".to_string()),
                ("zone".to_string(), "b".to_string())
            ]
            .into_iter()
            .collect()
        );
        assert_eq!(c.remove_labels, ["old".to_string()].into_iter().collect());
        assert!(!c.remove_labels.contains("node-role.kubernetes.io/etcd"));
        assert_eq!(
            c.remove_taints,
            vec![("gone".to_string(), TaintEffect::NoSchedule)]
        );
        assert_eq!(c.add_taints.len(), 1);
        assert_eq!(c.labels_annotation.as_deref(), Some("gpu,zone"));
        assert_eq!(c.taints_annotation.as_deref(), Some("keep:NoExecute"));
        let cmds = c.commands("s1");
        assert_eq!(
            cmds[0],
            "k3s kubectl label node 's1' --overwrite 'gpu=yes' 'zone=b' 'old-'"
        );
        assert_eq!(
            cmds[1],
            "k3s kubectl taint node 's1' --overwrite 'gone:NoSchedule-' 'keep=2:NoExecute'"
        );
    }

    #[test]
    fn a_matching_node_needs_no_change() {
        let mut node = parse_nodes(NODES).unwrap().remove(0);
        node.annotations
            .insert(MANAGED_LABELS_ANNOTATION.into(), "zone".into());
        node.annotations
            .insert(MANAGED_TAINTS_ANNOTATION.into(), "keep:NoExecute".into());
        node.taints.retain(|t| t.key == "keep");
        let want = host(
            &[("zone", "a")],
            vec![Taint {
                key: "keep".into(),
                value: Some("1".into()),
                effect: TaintEffect::NoExecute,
            }],
        );
        assert!(metadata_change(&want, &node).is_empty());
    }

    #[test]
    fn parses_pods_and_knows_which_stay() {
        let pods = parse_pods(r#"{"items":[
          {"metadata":{"namespace":"kube-system","name":"svclb-x","ownerReferences":[{"kind":"DaemonSet"}]},"status":{"phase":"Running"}},
          {"metadata":{"namespace":"data","name":"postgres-0","ownerReferences":[{"kind":"StatefulSet"}]},"status":{"phase":"Running"}}]}"#)
        .unwrap();
        assert!(pods[0].stays_on_drain());
        assert!(!pods[1].stays_on_drain());
    }

    #[test]
    fn quorum_is_a_strict_majority() {
        assert_eq!(quorum(1), 1);
        assert_eq!(quorum(2), 2);
        assert_eq!(quorum(3), 2);
        assert_eq!(quorum(5), 3);
    }
}
