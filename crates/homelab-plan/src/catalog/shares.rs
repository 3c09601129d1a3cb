//! Shares from the spec's `shares:` list: volumes several apps mount. Existing data on the NAS
//! becomes a static NFS PersistentVolume per namespace that mounts it (ReadWriteMany, `Retain`,
//! marked so that prune never deletes it) with its claim; a sized share is one new
//! ReadWriteMany claim from the lab's storage class.

use std::collections::{BTreeMap, BTreeSet};

use homelab_spec::lab::{ShareKind, VolumeSource};
use serde_json::json;

use super::Ctx;
use super::apps::share_claim;
use crate::meta::{KEEP_ANNOTATION, KEEP_VALUE, labels, metadata, namespace, pvc};
use crate::{Component, HealthCheck, Layer};

pub(super) fn component(ctx: &Ctx) -> Component {
    let lab = ctx.lab;
    // Which namespaces mount each share, in the apps' order.
    let mut users: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for app in &lab.apps {
        for v in &app.volumes {
            if let VolumeSource::Share { share, .. } = &v.source {
                users
                    .entry(share.as_str())
                    .or_default()
                    .insert(app.namespace.as_str());
            }
        }
    }
    let mut c = Component::new("shares", Layer::Applications, None);
    let mut nfs_shares = Vec::new();
    let mut claims = Vec::new();
    for share in &lab.shares {
        let Some(namespaces) = users.get(share.name.as_str()) else {
            continue;
        };
        let l = || labels(&share.name, &share.name, "share");
        let claim = share_claim(&share.name);
        for ns in namespaces {
            c.add("namespace.yaml", namespace(ns, Some("baseline")));
            match &share.kind {
                ShareKind::Nfs {
                    server,
                    path,
                    capacity,
                } => {
                    let pv = format!("share-{}-{ns}", share.name);
                    let keep = json!({KEEP_ANNOTATION: KEEP_VALUE});
                    let mut pv_meta = metadata(&pv, None, l());
                    pv_meta["annotations"] = keep.clone();
                    c.add(
                        "nfs.yaml",
                        json!({
                            "apiVersion": "v1",
                            "kind": "PersistentVolume",
                            "metadata": pv_meta,
                            "spec": {
                                "capacity": {"storage": capacity.to_string()},
                                "accessModes": ["ReadWriteMany"],
                                // The data was there before the lab and stays after it.
                                "persistentVolumeReclaimPolicy": "Retain",
                                "storageClassName": "",
                                "mountOptions": ["nfsvers=4.1", "hard", "noatime"],
                                "nfs": {"server": server, "path": path},
                                // Only this claim may bind it.
                                "claimRef": {"namespace": ns, "name": claim},
                            },
                        }),
                    );
                    let mut pvc_meta = metadata(&claim, Some(ns), l());
                    pvc_meta["annotations"] = keep;
                    c.add(
                        "nfs.yaml",
                        json!({
                            "apiVersion": "v1",
                            "kind": "PersistentVolumeClaim",
                            "metadata": pvc_meta,
                            "spec": {
                                "accessModes": ["ReadWriteMany"],
                                "storageClassName": "",
                                "volumeName": pv,
                                "resources": {"requests": {"storage": capacity.to_string()}},
                            },
                        }),
                    );
                    nfs_shares.push(format!("`{}` ({server}:{path}) in `{ns}`", share.name));
                }
                ShareKind::Claim { size } => {
                    c.depends_on.push("nfs".into());
                    c.add(
                        "pvc.yaml",
                        pvc(
                            &claim,
                            ns,
                            l(),
                            &size.to_string(),
                            &ctx.storage_class,
                            "ReadWriteMany",
                        ),
                    );
                    claims.push(format!("`{}` ({size}) in `{ns}`", share.name));
                }
            }
            c.health.push(HealthCheck::Pvc {
                namespace: ns.to_string(),
                name: claim.clone(),
            });
        }
    }
    let mut data = Vec::new();
    if !nfs_shares.is_empty() {
        data.push(format!(
            "Existing NFS data, mounted as it is: {}. Deleting the lab or an app never deletes it: the volumes are `Retain` and `homelab apply --prune` keeps objects marked `{KEEP_ANNOTATION}: {KEEP_VALUE}`.",
            nfs_shares.join(", ")
        ));
    }
    if !claims.is_empty() {
        data.push(format!(
            "New shared volumes on the storage class `{}`: {}.",
            ctx.storage_class,
            claims.join(", ")
        ));
    }
    c.docs = crate::ComponentDocs {
        title: "Shares".into(),
        what: "Volumes that several apps of `apps:` mount at once (ReadWriteMany).".into(),
        why: "Media and download directories belong to several apps; one volume per app would copy the data or hide it from the others.".into(),
        access: vec!["`kubectl get pv,pvc -A -l app.kubernetes.io/component=share`".into()],
        data: data.join(" "),
        backup: "The NAS's snapshots of the exports (see docs/runbooks/nfs-restore.md).".into(),
        requirements: vec!["FR14".into(), "FR15".into()],
    };
    c
}
