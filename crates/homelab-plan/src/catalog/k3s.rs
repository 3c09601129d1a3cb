//! K3s itself: the per-node configuration files and node actions (applied over SSH by the node
//! engine, not through the API), plus the facts for its README.

use homelab_spec::lab::{Node, NodeRole};
use serde_json::{Map, Value, json};

use super::Ctx;
use crate::{Component, EtcdSnapshotMount, Layer, NodePlan, PlainFile, SecretGenerator};

pub const TOKEN_SECRET: &str = "k3s-token";
/// Where `homelab nodes apply` writes the join token (`homelab_nodes::TOKEN_PATH`; ADR 0032).
pub(crate) const TOKEN_FILE: &str = "/etc/rancher/k3s/cluster-token";
const API_PORT: u16 = 6443;

pub(super) fn component(ctx: &Ctx) -> Component {
    let lab = ctx.lab;
    let mut c = Component::new("k3s", Layer::Infrastructure, None);
    ctx.need_secret(
        TOKEN_SECRET,
        SecretGenerator::Hex { bytes: 32 },
        "k3s",
        "cluster join token shared by every node",
    );
    ctx.manual_rotation(
        TOKEN_SECRET,
        format!(
            "the servers keep the join token in etcd, so a new value alone would lock every node out: rotate it on the first server with `sudo k3s token rotate --new-token NEW`, then store NEW with `homelab secrets set {TOKEN_SECRET}` and run `homelab nodes apply`"
        ),
    );
    for node in &lab.cluster.nodes {
        c.files.push(PlainFile {
            path: format!("nodes/{}.yaml", node.name),
            content: config_text(ctx, node),
            mode: 0o600,
        });
    }
    let first = lab.cluster.first_server();
    let snap = &lab.cluster.etcd_snapshots;
    c.docs = crate::ComponentDocs {
        title: "K3s".into(),
        what: format!(
            "The Kubernetes distribution of the lab, {} on {} node(s): {} server(s) running the control plane with embedded etcd, and {} agent(s).",
            lab.cluster.k3s_version,
            lab.cluster.nodes.len(),
            lab.cluster.servers().count(),
            lab.cluster.agents().count()
        ),
        why: "K3s is a single binary with everything a small cluster needs (containerd, flannel, CoreDNS, Traefik, helm-controller) and the lowest memory footprint of the certified distributions; embedded etcd gives snapshots and a path to three servers.".into(),
        access: vec![
            format!("API: https://{}:{API_PORT} (certificate also valid for {})", first.address, sans(ctx).join(", ")),
            "`homelab kubeconfig --merge` writes the admin kubeconfig with mode 0600 and adds it to ~/.kube/config".into(),
        ],
        data: match etcd_snapshot_mount(lab) {
            Some(m) => format!(
                "Cluster state lives in etcd on the server(s) under /var/lib/rancher/k3s/server/db; snapshots go to {} every `{}`, {} kept, a mount of {} on the NAS.",
                snap.dir,
                snap.schedule,
                snap.retention,
                m.source()
            ),
            None => format!(
                "Cluster state lives in etcd on the server(s) under /var/lib/rancher/k3s/server/db; snapshots go to {} every `{}`, {} kept, on each server's own disk (the lab has no storage.nfs to put them on).",
                snap.dir, snap.schedule, snap.retention
            ),
        },
        backup: "Automatic etcd snapshots (see docs/runbooks/cluster-backup.md); `homelab etcd snapshot save` before risky changes; restore with `homelab etcd snapshot restore` (docs/runbooks/cluster-restore.md). The manifests are this repository.".into(),
        requirements: vec!["FR1".into(), "FR2".into(), "FR3".into(), "FR4".into(), "FR5".into(), "FR6".into(), "FR44".into(), "FR47".into(), "FR48".into(), "NFR2".into(), "NFR10".into(), "NFR20".into()],
    };
    c
}

/// Names and addresses the API server certificate must cover.
fn sans(ctx: &Ctx) -> Vec<String> {
    let lab = ctx.lab;
    let mut out: Vec<String> = Vec::new();
    for n in lab.cluster.servers() {
        out.push(n.address.to_string());
        out.push(n.name.clone());
    }
    if let Some(t) = &lab.network.remote_access.tailscale {
        out.push(t.clone());
    }
    out.extend(lab.network.remote_access.extra_sans.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|s| seen.insert(s.clone()));
    out
}

/// The K3s configuration for one node, as data.
pub(crate) fn config(ctx: &Ctx, node: &Node) -> Value {
    let lab = ctx.lab;
    let first = lab.cluster.first_server();
    let mut m = Map::new();
    let is_first = node.name == first.name;
    if node.role == NodeRole::Server {
        if is_first {
            m.insert("cluster-init".into(), json!(true));
        } else {
            m.insert(
                "server".into(),
                json!(format!("https://{}:{API_PORT}", first.address)),
            );
        }
    } else {
        m.insert(
            "server".into(),
            json!(format!("https://{}:{API_PORT}", first.address)),
        );
    }
    m.insert("token-file".into(), json!(TOKEN_FILE));
    m.insert("node-name".into(), json!(node.name));
    m.insert("node-ip".into(), json!(node.address.to_string()));
    if !node.labels.is_empty() {
        m.insert(
            "node-label".into(),
            json!(
                node.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
            ),
        );
    }
    if !node.taints.is_empty() {
        m.insert(
            "node-taint".into(),
            json!(
                node.taints
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
        );
    }
    if node.role == NodeRole::Server {
        m.insert("tls-san".into(), json!(sans(ctx)));
        // MetalLB replaces servicelb; local-path is redeployed as a non-default class
        // (ADR-0002) because K3s would otherwise make it the default again on every restart.
        m.insert("disable".into(), json!(["servicelb", "local-storage"]));
        m.insert("write-kubeconfig-mode".into(), json!("0600"));
        m.insert("secrets-encryption".into(), json!(true));
        let snap = &lab.cluster.etcd_snapshots;
        m.insert(
            "etcd-snapshot-schedule-cron".into(),
            json!(snap.schedule.as_str()),
        );
        m.insert("etcd-snapshot-retention".into(), json!(snap.retention));
        m.insert("etcd-snapshot-dir".into(), json!(snap.dir));
        // kube-prometheus-stack scrapes these; K3s binds them to localhost by default.
        m.insert("etcd-expose-metrics".into(), json!(true));
        m.insert(
            "kube-controller-manager-arg".into(),
            json!(["bind-address=0.0.0.0"]),
        );
        m.insert("kube-scheduler-arg".into(), json!(["bind-address=0.0.0.0"]));
    }
    m.insert(
        "kube-proxy-arg".into(),
        json!(["metrics-bind-address=0.0.0.0"]),
    );
    Value::Object(m)
}

fn config_text(ctx: &Ctx, node: &Node) -> String {
    format!(
        "# /etc/rancher/k3s/config.yaml for {} ({}), written by `homelab nodes apply`.\n# The join token is not here: it is written to {TOKEN_FILE} from the encrypted secrets file.\n{}",
        node.name,
        node.role,
        homelab_spec::emit::to_yaml(&config(ctx, node))
    )
}

/// Where the etcd snapshots go: the lab's own directory of the NAS export, when the lab has
/// one (ADR 0105); without `storage.nfs` they stay on each server's disk.
pub(crate) fn etcd_snapshot_mount(lab: &homelab_spec::lab::Lab) -> Option<EtcdSnapshotMount> {
    let nfs = &lab.storage.as_ref()?.nfs;
    Some(EtcdSnapshotMount {
        server: nfs.server.clone(),
        export: nfs.path.clone(),
        subdir: format!("k3s-etcd-snapshots/{}", lab.name),
        dir: lab.cluster.etcd_snapshots.dir.clone(),
    })
}

/// The alert of a server whose etcd snapshot directory is not the NAS mount.
pub(crate) const SNAPSHOT_MOUNT_ALERT: &str = "EtcdSnapshotDirNotMounted";

/// "The etcd snapshot directory is not the NAS": a warning, because the cluster runs on, but
/// the next snapshots land on the server's own disk (or nowhere, when k3s cannot write) and die
/// with it. Seen through node-exporter's mount table, so no SSH is needed; only for a lab whose
/// snapshots go to the NAS (ADR 0105).
///
/// node-exporter runs on the host network, so its `instance` is the node's InternalIP and a
/// port; kube-state-metrics gives that IP (`kube_node_info`) and the control-plane role of
/// every k3s server (`kube_node_role`). A server that node-exporter does not report at all is
/// left to TargetDown: this rule speaks only of a server seen without the mount.
pub(crate) fn alerts(lab: &homelab_spec::lab::Lab) -> Vec<super::monitoring::Alert> {
    let Some(mount) = etcd_snapshot_mount(lab) else {
        return Vec::new();
    };
    let dir = mount.dir.trim_end_matches('/');
    let dir = if dir.is_empty() { "/" } else { dir };
    let ip_of = |metric: &str| {
        format!(
            "label_replace({metric}, \"internal_ip\", \"$1\", \"instance\", \"\\\\[?([^\\\\]]*?)\\\\]?:[0-9]+\")"
        )
    };
    let mountpoint = promql_string(dir);
    vec![super::monitoring::Alert {
        name: SNAPSHOT_MOUNT_ALERT,
        priority: "P2",
        expr: format!(
            "(\n  kube_node_info * on (node) group_left () kube_node_role{{role=\"control-plane\"}}\n)\nand on (internal_ip) {}\nunless on (internal_ip) {}",
            ip_of("node_uname_info"),
            ip_of(&format!(
                "node_filesystem_avail_bytes{{mountpoint={mountpoint},fstype=~\"nfs|nfs4\"}}"
            )),
        ),
        for_: "15m".into(),
        summary: format!("{dir} on server {{{{ $labels.node }}}} is not an NFS mount"),
        description: format!(
            "node-exporter has not seen the NAS ({}) mounted at {dir} on {{{{ $labels.node }}}} for 15 minutes: the etcd snapshots k3s takes there stay on the server's own disk and are lost with it.",
            mount.source()
        ),
        runbook: "cluster-backup",
    }]
}

/// A PromQL string literal: double-quoted, with backslashes and quotes escaped.
fn promql_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub(super) fn node_plans(ctx: &Ctx) -> Vec<NodePlan> {
    let lab = ctx.lab;
    let first = lab.cluster.first_server();
    let mount = etcd_snapshot_mount(lab);
    let mut plans = Vec::new();
    for node in &lab.cluster.nodes {
        let init = node.name == first.name;
        let mut actions = vec![
            format!("connect over SSH to {}", node.address),
            "gather facts: OS, architecture, installed K3s version and config, free ports, clock skew, swap, nfs-common".into(),
            "prepare: install nfs-common and unattended security updates (no automatic reboot)".into(),
            "write /etc/rancher/k3s/config.yaml and the token file".into(),
        ];
        if node.gpu.is_some() {
            actions.insert(
                3,
                "check the NVIDIA driver (`nvidia-smi`) and install the NVIDIA container toolkit from NVIDIA's repository when it is missing (then restart K3s if it runs)".into(),
            );
        }
        let node_mount = mount.clone().filter(|_| node.role == NodeRole::Server);
        if let Some(m) = &node_mount {
            actions.insert(
                3,
                format!(
                    "mount {} at {} for the etcd snapshots (a systemd mount unit, before K3s starts)",
                    m.source(),
                    m.dir
                ),
            );
        }
        actions.push(match (node.role, init) {
            (NodeRole::Server, true) => format!(
                "install K3s {} as the first server (cluster-init)",
                lab.cluster.k3s_version
            ),
            (NodeRole::Server, false) => format!(
                "install K3s {} and join https://{}:{API_PORT} as a server",
                lab.cluster.k3s_version, first.address
            ),
            (NodeRole::Agent, _) => format!(
                "install K3s {} and join https://{}:{API_PORT} as an agent",
                lab.cluster.k3s_version, first.address
            ),
        });
        actions.push("wait until the node is Ready".into());
        if !node.labels.is_empty() || !node.taints.is_empty() {
            actions.push("apply labels and taints".into());
        }
        plans.push(NodePlan {
            name: node.name.clone(),
            role: node.role,
            address: node.address.to_string(),
            k3s_config: config_text(ctx, node),
            init,
            actions,
            etcd_snapshot_mount: node_mount,
            ssh_user: node.ssh.user.clone(),
            ssh_port: node.ssh.port,
        });
    }
    plans
}
