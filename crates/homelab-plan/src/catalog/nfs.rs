//! NFS storage: the nfs-subdir-external-provisioner chart as the default StorageClass.

use serde_json::json;

use super::Ctx;
use crate::meta::namespace;
use crate::{ChartRef, Component, HealthCheck, HelmRelease, Layer, versions};

pub(crate) const NS: &str = "infra";

pub(super) fn component(ctx: &Ctx) -> Component {
    let storage = ctx
        .lab
        .storage
        .as_ref()
        .expect("nfs is planned only with storage");
    let mut c = Component::new("nfs", Layer::Infrastructure, Some(NS));
    c.depends_on.push("local-path".into());
    c.add("namespace.yaml", infra_namespace());
    let pin = versions::NFS_PROVISIONER;
    c.releases.push(HelmRelease {
        name: "nfs-provisioner".into(),
        namespace: NS.into(),
        chart: ChartRef { name: pin.dep_name.into(), repo: pin.registry_url.into(), version: pin.version.into() },
        create_namespace: false,
        values: json!({
            "nfs": {
                "server": storage.nfs.server,
                "path": storage.nfs.path,
                "mountOptions": ["nfsvers=4.1", "hard", "noatime"],
            },
            "storageClass": {
                "create": true,
                "name": storage.storage_class,
                "defaultClass": true,
                "reclaimPolicy": "Delete",
                "archiveOnDelete": false,
                "accessModes": "ReadWriteOnce",
            },
            "labels": {"app.kubernetes.io/part-of": crate::meta::PART_OF},
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        }),
    });
    c.health.push(HealthCheck::HelmChart {
        namespace: "kube-system".into(),
        name: "nfs-provisioner".into(),
    });
    c.health.push(HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: NS.into(),
        name: "nfs-provisioner-nfs-subdir-external-provisioner".into(),
    });
    c.docs = crate::ComponentDocs {
        title: "NFS provisioner".into(),
        what: format!(
            "Creates a directory on the NFS export {}:{} for every PersistentVolumeClaim, through the default StorageClass `{}`.",
            storage.nfs.server, storage.nfs.path, storage.storage_class
        ),
        why: "The NAS already stores data redundantly and snapshots it hourly, so volumes on NFS survive node loss without running a distributed storage system (Longhorn, Ceph) on three small nodes.".into(),
        access: vec![format!("StorageClass `{}` (default): any PVC without a class lands here", storage.storage_class)],
        data: format!("On the NAS under {}/<namespace>-<pvc-name>; deleting a PVC deletes its directory (reclaim Delete, archiveOnDelete false).", storage.nfs.path),
        backup: "The NAS's snapshots of the export (see docs/runbooks/nfs-restore.md); PostgreSQL additionally dumps to its backup volume.".into(),
        requirements: vec!["FR14".into(), "FR15".into(), "FR16".into(), "FR17".into(), "FR18".into(), "NFR4".into(), "NFR16".into()],
    };
    c
}

/// The `infra` namespace shared by NFS, MetalLB and cert-manager. MetalLB's speaker needs the
/// host network, hence the privileged Pod Security level.
pub(crate) fn infra_namespace() -> serde_json::Value {
    namespace(NS, Some("privileged"))
}
