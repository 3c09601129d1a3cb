//! The nfs-restore runbook (NAS snapshots of the NFS share behind the `nfs-client` class);
//! pure text.

use std::fmt::Write as _;

use super::{code, table};

/// A volume the NFS provisioner created, and the workload that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsVolume {
    pub namespace: String,
    pub pvc: String,
    /// The workload to stop while its files are restored, as `kind/name`
    /// (e.g. `statefulset/postgres`).
    pub workload: String,
}

/// The NAS and provisioner facts the nfs-restore runbook needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsRunbookParams {
    /// What the NAS is, for people (e.g. `Synology DS920+`).
    pub nas: String,
    /// NFS server address.
    pub server: String,
    /// The exported path every provisioned volume is a directory of.
    pub export_path: String,
    pub storage_class: String,
    pub provisioner_namespace: String,
    pub provisioner_deployment: String,
    /// The NAS's snapshot schedule, for people (e.g. `hourly`).
    pub snapshot_schedule: String,
    /// The NAS's snapshot retention, for people (e.g. `24 hourly and 7 daily`).
    pub snapshot_retention: String,
    pub volumes: Vec<NfsVolume>,
    /// Recovery time objective for a volume, in minutes.
    pub rto_minutes: u32,
}

/// `docs/runbooks/nfs-restore.md`: recover files of a volume from the NAS's snapshots.
pub fn nfs_restore(p: &NfsRunbookParams) -> String {
    let mut o = String::new();
    let export = p.export_path.trim_end_matches('/');
    let share = export.rsplit('/').next().unwrap_or(export);
    let _ = writeln!(
        o,
        "# Runbook: restore files of a volume from NAS snapshots\n"
    );
    let _ = writeln!(
        o,
        "Every volume of the storage class {} is a directory of the share {} on {} (server {}), \
         and the NAS snapshots that share: {}, keeping {}. A snapshot is read-only and \
         survives deletions in the share, so files deleted or overwritten by mistake can be \
         copied back. Target: a volume is recovered within {} minutes.\n",
        code(&p.storage_class),
        code(export),
        p.nas,
        code(&p.server),
        p.snapshot_schedule,
        p.snapshot_retention,
        p.rto_minutes
    );
    let _ = writeln!(o, "## Where a volume lives\n");
    let _ = writeln!(
        o,
        "The provisioner ({} in {}) names each volume's directory \
         `<namespace>-<pvc>-<pv>` under {}. It deletes the directory when the PVC is deleted \
         (`archiveOnDelete: false`): then only the snapshots still have the files.\n",
        code(&p.provisioner_deployment),
        code(&p.provisioner_namespace),
        code(export)
    );
    let _ = writeln!(o, "Find the directory of a PVC:\n");
    let _ = writeln!(o, "```sh");
    let _ = writeln!(
        o,
        "kubectl -n <namespace> get pvc <pvc> -o jsonpath='{{.spec.volumeName}}{{\"\\n\"}}'"
    );
    let _ = writeln!(
        o,
        "kubectl get pv <pv> -o jsonpath='{{.spec.nfs.path}}{{\"\\n\"}}'"
    );
    let _ = writeln!(o, "```\n");
    if !p.volumes.is_empty() {
        let rows: Vec<Vec<String>> = p
            .volumes
            .iter()
            .map(|v| {
                vec![
                    code(&v.namespace),
                    code(&v.pvc),
                    code(&format!("{export}/{}-{}-<pv>", v.namespace, v.pvc)),
                    code(&v.workload),
                ]
            })
            .collect();
        table(
            &mut o,
            &[
                "namespace",
                "PVC",
                "directory on the NAS",
                "stop while restoring",
            ],
            &rows,
        );
    }

    let _ = writeln!(o, "## Pick the snapshot\n");
    let _ = writeln!(
        o,
        "In DSM open **Snapshot Replication → Snapshots**, select the shared folder {} and \
         note the newest snapshot taken before the damage. If \"Make snapshot visible\" is \
         enabled for the share, the snapshots also appear read-only in the share's \
         `#snapshot` folder, named by their time (e.g. `GMT+01-2026.11.01-02.00.00`).\n",
        code(share)
    );

    let _ = writeln!(o, "## Restore a volume's files\n");
    let _ = writeln!(
        o,
        "1. Stop the workload so that nothing writes while the files change \
         (`kubectl -n <namespace> scale <workload> --replicas=0`; for a CronJob \
         `kubectl -n <namespace> patch <workload> -p '{{\"spec\":{{\"suspend\":true}}}}'`), \
         and wait until its pods are gone."
    );
    let _ = writeln!(
        o,
        "2. Copy the files back on the NAS, over SSH as an administrator (keeps owners and \
         permissions):\n\n   ```sh\n   ssh <admin>@{} \"sudo rsync -a --delete \\\n     \
         '{export}/#snapshot/<snapshot>/<directory>/' '{export}/<directory>/'\"\n   ```\n\n   \
         Drop `--delete` to bring back deleted files without removing newer ones. For a few \
         files, DSM's File Station can copy from `#snapshot` too. To roll the whole share back \
         instead, use **Snapshot Replication → Snapshots → Restore to this snapshot** (it \
         rewinds every volume: stop every workload of the class first).",
        p.server
    );
    let _ = writeln!(
        o,
        "3. If the PVC itself was deleted, create it again (re-apply the rendered tree or \
         `homelab apply`): it gets a new PV and a new, empty directory. Find it as above and \
         copy the snapshot's old directory into it."
    );
    let _ = writeln!(
        o,
        "4. Start the workload again (`kubectl -n <namespace> scale <workload> --replicas=1`, \
         or `\"suspend\":false` for a CronJob).\n"
    );
    let _ = writeln!(o, "## Verify\n");
    let _ = writeln!(
        o,
        "- The pod is Running and Ready; the application shows the recovered data."
    );
    let _ = writeln!(
        o,
        "- `kubectl -n <namespace> exec <pod> -- ls -la <mount path>` shows the files with the \
         expected owners (an application running as a non-root user cannot read files restored \
         as root: `chown -R` them on the NAS)."
    );
    let _ = writeln!(
        o,
        "- For PostgreSQL, do not restore its data directory from a NAS snapshot taken while \
         it ran (the files may be mid-write): restore from its dumps instead, see \
         [postgres-restore](postgres-restore.md). The dump files of the backup volume are safe \
         to copy from a snapshot.\n"
    );
    let _ = writeln!(o, "## When the share itself is unreachable\n");
    table(
        &mut o,
        &["symptom", "check"],
        &[
            vec![
                "pods stuck in ContainerCreating with `mount.nfs` errors".into(),
                format!(
                    "the NAS answers: `showmount -e {}` from a node; the export allows the \
                     nodes' addresses",
                    p.server
                ),
            ],
            vec![
                "new PVCs stay Pending".into(),
                format!(
                    "the provisioner runs: `kubectl -n {} get deploy {}` and its log",
                    p.provisioner_namespace, p.provisioner_deployment
                ),
            ],
            vec![
                "`Read-only file system` in pods".into(),
                "the share is full or the NAS remounted its volume read-only: check DSM's \
                 Storage Manager"
                    .into(),
            ],
        ],
    );
    o
}
