//! The local-path provisioner as a non-default StorageClass for node-local data (dev-container
//! workspaces), deployed by the lab instead of K3s so that NFS stays the default (ADR-0002).

use serde_json::json;

use super::Ctx;
use crate::meta::{labels, metadata, namespace};
use crate::{Component, Layer};

const NS: &str = "local-path-storage";
pub(crate) const CLASS: &str = "local-path";

pub(super) fn component(ctx: &Ctx) -> Component {
    let mut c = Component::new("local-path", Layer::Infrastructure, Some(NS));
    let l = || {
        labels(
            "local-path-provisioner",
            "local-path-provisioner",
            "storage",
        )
    };
    let default = ctx.lab.storage.is_none();
    c.add("namespace.yaml", namespace(NS, Some("privileged")));
    c.add(
        "rbac.yaml",
        json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": metadata("local-path-provisioner", Some(NS), l()),
        }),
    );
    c.add("rbac.yaml", json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": metadata("local-path-provisioner", None, l()),
        "rules": [
            {"apiGroups": [""], "resources": ["nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list", "watch"]},
        ],
    }));
    c.add("rbac.yaml", json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": metadata("local-path-provisioner", None, l()),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "local-path-provisioner"},
        "subjects": [{"kind": "ServiceAccount", "name": "local-path-provisioner", "namespace": NS}],
    }));
    c.add("rbac.yaml", json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": metadata("local-path-provisioner", Some(NS), l()),
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]}],
    }));
    c.add("rbac.yaml", json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": metadata("local-path-provisioner", Some(NS), l()),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "local-path-provisioner"},
        "subjects": [{"kind": "ServiceAccount", "name": "local-path-provisioner", "namespace": NS}],
    }));
    c.add("configmap.yaml", json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": metadata("local-path-config", Some(NS), l()),
        "data": {
            "config.json": "{\n  \"nodePathMap\": [\n    {\"node\": \"DEFAULT_PATH_FOR_NON_LISTED_NODES\", \"paths\": [\"/var/lib/rancher/k3s/storage\"]}\n  ]\n}\n",
            "setup": "#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\n",
            "teardown": "#!/bin/sh\nset -eu\nrm -rf \"$VOL_DIR\"\n",
            "helperPod.yaml": helper_pod_yaml(),
        },
    }));
    c.add("deployment.yaml", json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": metadata("local-path-provisioner", Some(NS), l()),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "local-path-provisioner"}},
            "template": {
                "metadata": {"labels": l()},
                "spec": {
                    "serviceAccountName": "local-path-provisioner",
                    "priorityClassName": "system-node-critical",
                    "containers": [{
                        "name": "local-path-provisioner",
                        "image": crate::versions::LOCAL_PATH_PROVISIONER.image(),
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["local-path-provisioner", "start", "--config", "/etc/config/config.json"],
                        "env": [
                            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                            {"name": "CONFIG_MOUNT_PATH", "value": "/etc/config/"},
                        ],
                        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/config/"}],
                        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                    }],
                    "volumes": [{"name": "config-volume", "configMap": {"name": "local-path-config"}}],
                },
            },
        },
    }));
    c.add("storageclass.yaml", json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {
            "name": CLASS,
            "labels": l(),
            "annotations": {"storageclass.kubernetes.io/is-default-class": if default { "true" } else { "false" }},
        },
        "provisioner": "rancher.io/local-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }));
    c.health.push(crate::HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: NS.into(),
        name: "local-path-provisioner".into(),
    });
    c.docs = crate::ComponentDocs {
        title: "local-path provisioner".into(),
        what: "Dynamic volumes on a node's own disk (under /var/lib/rancher/k3s/storage), for data that must be fast and may be lost with the node, such as dev-container workspaces.".into(),
        why: if default {
            "No NFS storage is configured, so node-local volumes are the default.".into()
        } else {
            "K3s bundles this provisioner but re-marks it as the default class on every restart, which would give the cluster two defaults; the lab disables the bundled copy and deploys it here as a non-default class, so NFS stays the default (ADR-0002).".into()
        },
        access: vec![format!("StorageClass `{CLASS}`")],
        data: "On the node that runs the pod, under /var/lib/rancher/k3s/storage.".into(),
        backup: "Not backed up: use it only for data you can recreate (workspaces hold git checkouts).".into(),
        requirements: vec!["FR63".into()],
    };
    let _ = ctx;
    c
}

/// The pod local-path runs to create and delete a volume's directory (busybox is pinned in
/// `versions.rs`, so Renovate updates it with the rest).
fn helper_pod_yaml() -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: helper-pod\nspec:\n  priorityClassName: system-node-critical\n  tolerations:\n    - key: node.kubernetes.io/disk-pressure\n      operator: Exists\n      effect: NoSchedule\n  containers:\n    - name: helper-pod\n      image: {}\n      imagePullPolicy: IfNotPresent\n",
        crate::versions::BUSYBOX.image()
    )
}
