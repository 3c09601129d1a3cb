//! The cluster-backup and cluster-restore runbooks (k3s embedded-etcd snapshots); pure text.

use std::fmt::Write as _;

use super::{code, table};

/// A node, as the operator reaches it over SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    /// The Kubernetes node name.
    pub name: String,
    /// Host name or address for SSH.
    pub address: String,
}

/// The k3s facts the cluster runbooks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRunbookParams {
    /// The k3s servers (embedded etcd members); the first is the one a restore runs on.
    pub servers: Vec<NodeRef>,
    pub agents: Vec<NodeRef>,
    /// The SSH user with sudo on the nodes.
    pub ssh_user: String,
    /// `etcd-snapshot-dir` on the servers.
    pub snapshot_dir: String,
    /// NFS export mounted at `snapshot_dir` (e.g. `nas:/volume1/k3s-snapshots`), if any.
    pub snapshot_nfs_source: Option<String>,
    /// `etcd-snapshot-schedule-cron`.
    pub snapshot_schedule: String,
    /// `etcd-snapshot-retention`.
    pub snapshot_retention: u32,
    /// k3s's config file on the nodes.
    pub k3s_config_path: String,
    /// k3s's data directory (`/var/lib/rancher/k3s` unless changed).
    pub data_dir: String,
    /// The address clients use for the API server (`https://<host>:6443`).
    pub api_server: String,
}

impl ClusterRunbookParams {
    fn first_server(&self) -> NodeRef {
        self.servers.first().cloned().unwrap_or(NodeRef {
            name: "<server>".into(),
            address: "<server>".into(),
        })
    }

    fn ssh(&self, node: &NodeRef) -> String {
        format!("ssh {}@{}", self.ssh_user, node.address)
    }

    fn data_dir(&self) -> &str {
        self.data_dir.trim_end_matches('/')
    }

    fn snapshot_dir(&self) -> &str {
        self.snapshot_dir.trim_end_matches('/')
    }
}

fn facts(o: &mut String, p: &ClusterRunbookParams) {
    let servers: Vec<String> = p
        .servers
        .iter()
        .map(|n| format!("{} ({})", code(&n.name), n.address))
        .collect();
    let agents: Vec<String> = p
        .agents
        .iter()
        .map(|n| format!("{} ({})", code(&n.name), n.address))
        .collect();
    table(
        o,
        &["what", "value"],
        &[
            vec!["Servers (etcd members)".into(), servers.join(", ")],
            vec![
                "Agents".into(),
                if agents.is_empty() {
                    "none".into()
                } else {
                    agents.join(", ")
                },
            ],
            vec![
                "Snapshot directory".into(),
                match &p.snapshot_nfs_source {
                    Some(src) => format!(
                        "{} on every server, an NFS mount of {}",
                        code(p.snapshot_dir()),
                        code(src)
                    ),
                    None => format!("{} on every server", code(p.snapshot_dir())),
                },
            ],
            vec![
                "Schedule".into(),
                format!("{} (the servers' local time)", code(&p.snapshot_schedule)),
            ],
            vec![
                "Retention".into(),
                format!("{} scheduled snapshots per server", p.snapshot_retention),
            ],
            vec!["k3s configuration".into(), code(&p.k3s_config_path)],
            vec![
                "Cluster token".into(),
                format!(
                    "{} on every server: needed to restore a snapshot; keep a copy outside the cluster",
                    code(&format!("{}/server/token", p.data_dir()))
                ),
            ],
            vec!["API server".into(), code(&p.api_server)],
        ],
    );
}

/// `docs/runbooks/cluster-backup.md`: where the etcd snapshots are and how to take and check one.
pub fn cluster_backup(p: &ClusterRunbookParams) -> String {
    let mut o = String::new();
    let s1 = p.first_server();
    let dir = p.snapshot_dir();
    let _ = writeln!(o, "# Runbook: cluster state backups (etcd snapshots)\n");
    let whereto = match &p.snapshot_nfs_source {
        Some(src) => format!(
            "the snapshots go to the NAS ({}, mounted at {} on every server by `homelab nodes \
             apply` through a systemd mount unit that starts before k3s) so that they survive the \
             loss of a server",
            code(src),
            code(dir)
        ),
        None => format!(
            "the snapshots stay in {} on each server's own disk, because the lab has no \
             `storage.nfs`: they are lost with the server. Give the lab a NAS in homelab.yaml \
             and run `homelab nodes apply` to mount its export there",
            code(dir)
        ),
    };
    let _ = writeln!(
        o,
        "The cluster's state (every Kubernetes object, including Secrets) lives in the k3s \
         servers' embedded etcd. k3s snapshots it on a schedule; {whereto}. Application data in \
         volumes is not in these snapshots: see [postgres-backup](postgres-backup.md) and \
         [nfs-restore](nfs-restore.md). The manifests themselves are in git.\n"
    );
    let _ = writeln!(o, "## Facts\n");
    facts(&mut o, p);
    let _ = writeln!(
        o,
        "The schedule and retention are set in {}:\n",
        code(&p.k3s_config_path)
    );
    let _ = writeln!(o, "```yaml");
    let _ = writeln!(
        o,
        "etcd-snapshot-schedule-cron: \"{}\"",
        p.snapshot_schedule
    );
    let _ = writeln!(o, "etcd-snapshot-retention: {}", p.snapshot_retention);
    let _ = writeln!(o, "etcd-snapshot-dir: {dir}");
    let _ = writeln!(o, "```\n");
    let _ = writeln!(
        o,
        "Scheduled snapshots are named `etcd-snapshot-<node>-<unix time>`, on-demand ones \
         `<name>-<node>-<unix time>` (default name `on-demand`). k3s prunes only the scheduled \
         ones; on-demand snapshots stay until you delete them.\n"
    );

    let _ = writeln!(o, "## List the snapshots\n");
    let _ = writeln!(o, "```sh");
    let _ = writeln!(
        o,
        "homelab backup list                       # with ages and sizes"
    );
    let _ = writeln!(
        o,
        "{} sudo k3s etcd-snapshot ls --etcd-snapshot-dir {dir}",
        p.ssh(&s1)
    );
    let _ = writeln!(o, "{} ls -l {dir}", p.ssh(&s1));
    let _ = writeln!(o, "```\n");
    let _ = writeln!(
        o,
        "Expect a snapshot from every server for each run of the schedule, the newest no older \
         than one interval. The ages and sizes of successive snapshots should be similar; a \
         sudden drop in size deserves a look.\n"
    );

    let _ = writeln!(o, "## Take a snapshot now\n");
    let _ = writeln!(
        o,
        "Before an upgrade, a change of the k3s configuration, or any risky change to the \
         cluster:\n"
    );
    let _ = writeln!(o, "```sh");
    let _ = writeln!(
        o,
        "{} sudo k3s etcd-snapshot save --name pre-change --etcd-snapshot-dir {dir}",
        p.ssh(&s1)
    );
    let _ = writeln!(o, "```\n");
    let _ = writeln!(
        o,
        "The command prints the snapshot's path. It exits non-zero when the snapshot fails; a \
         snapshot it reports as saved is a consistent copy of the etcd database.\n"
    );

    let _ = writeln!(o, "## Verify\n");
    let _ = writeln!(
        o,
        "1. The snapshot is listed by `k3s etcd-snapshot ls` and is in {} with a plausible \
         size (tens of MB for a home lab).",
        code(dir)
    );
    let mut step = 2;
    if let Some(src) = &p.snapshot_nfs_source {
        let _ = writeln!(
            o,
            "2. The NFS mount is really there, so the snapshot is off the node: `findmnt` shows \
             {} at {dir} (`homelab nodes apply` mounts it again and says so when it is not):\n\n   \
             ```sh\n   {} findmnt {dir}\n   ```\n",
            code(src),
            p.ssh(&s1)
        );
        step += 1;
    }
    let _ = writeln!(
        o,
        "{step}. The cluster token is kept outside the cluster (a password manager): without it a \
         snapshot cannot be restored.\n"
    );
    let _ = writeln!(
        o,
        "{}. At least once, rehearse [cluster-restore](cluster-restore.md) on a throw-away \
         server or VM; note how long it took.\n",
        step + 1
    );

    let _ = writeln!(o, "## Housekeeping\n");
    let _ = writeln!(o, "```sh");
    let _ = writeln!(
        o,
        "{} sudo k3s etcd-snapshot delete pre-change-{}-<unix time> --etcd-snapshot-dir {dir}",
        p.ssh(&s1),
        s1.name
    );
    let _ = writeln!(
        o,
        "{} sudo k3s etcd-snapshot prune --snapshot-retention {} --etcd-snapshot-dir {dir}",
        p.ssh(&s1),
        p.snapshot_retention
    );
    let _ = writeln!(o, "```\n");
    if p.snapshot_nfs_source.is_some() {
        let _ = writeln!(
            o,
            "If snapshots stop appearing: `journalctl -u k3s` on the server shows the snapshot \
             errors; a missing or read-only NFS mount is the usual cause (`findmnt {dir}`, \
             `systemctl status $(systemd-escape --path --suffix=mount {dir})`)."
        );
        let _ = writeln!(o, "\n## Alert: EtcdSnapshotDirNotMounted (P2)\n");
        let _ = writeln!(
            o,
            "Prometheus warns when node-exporter on a server (a node with the control-plane \
             role) has reported no `nfs`/`nfs4` filesystem at {} for 15 minutes. The cluster \
             still runs, but the snapshots k3s takes meanwhile stay on that server's own disk. \
             The alert names the server (`node`).\n",
            code(dir)
        );
        let _ = writeln!(
            o,
            "1. `homelab nodes apply`: it mounts {} at {dir} again and \
             says what it did; `homelab nodes apply --dry-run` first shows that it would.\n\
             2. If the mount fails: the NAS is reachable and exports the directory \
             (`showmount -e` from the server), and `journalctl -u $(systemd-escape --path \
             --suffix=mount {dir})` on the server says why.\n\
             3. Files written to {dir} while the mount was missing are hidden under it once \
             mounted; `homelab nodes apply` warns about them. Take a fresh snapshot (above) \
             once the mount is back.",
            code(p.snapshot_nfs_source.as_deref().unwrap_or_default())
        );
    } else {
        let _ = writeln!(
            o,
            "If snapshots stop appearing: `journalctl -u k3s` on the server shows the snapshot \
             errors; a full disk is the usual cause (`df -h {dir}`)."
        );
    }
    o
}

/// `docs/runbooks/cluster-restore.md`: restoring etcd from a snapshot with `--cluster-reset`.
pub fn cluster_restore(p: &ClusterRunbookParams) -> String {
    let mut o = String::new();
    let s1 = p.first_server();
    let others: Vec<NodeRef> = p.servers.iter().skip(1).cloned().collect();
    let dir = p.snapshot_dir();
    let data = p.data_dir();
    let _ = writeln!(o, "# Runbook: restore the cluster from an etcd snapshot\n");
    let _ = writeln!(
        o,
        "Target: the cluster is back within 30 minutes. The restore rewinds every Kubernetes \
         object to the snapshot's time; volumes on NFS and the PostgreSQL data are not rewound.\n"
    );
    let _ = writeln!(o, "## Facts\n");
    facts(&mut o, p);

    let _ = writeln!(o, "## Restore or rebuild?\n");
    table(
        &mut o,
        &["situation", "do"],
        &[
            vec![
                "one server of several is lost; the others have quorum".into(),
                "no restore: remove the node (`kubectl delete node <name>`) and join a \
                 replacement server with homelab"
                    .into(),
            ],
            vec![
                "etcd has lost quorum, or its data is corrupted".into(),
                "restore (below)".into(),
            ],
            vec![
                "objects were deleted or damaged by mistake (a namespace, CRDs)".into(),
                "restore to the snapshot before the mistake, or re-apply from git if the \
                 objects are all in the rendered tree (faster, no rewind)"
                    .into(),
            ],
            vec![
                "all servers are lost".into(),
                "install k3s on a new server with the same token, then restore (below)".into(),
            ],
        ],
    );

    let _ = writeln!(o, "## Pick the snapshot\n");
    let _ = writeln!(o, "```sh");
    let _ = writeln!(o, "{} ls -l --time-style=+%FT%TZ {dir}", p.ssh(&s1));
    let _ = writeln!(o, "```\n");
    let _ = writeln!(
        o,
        "Take the newest snapshot from before the problem started (the unix time in the name \
         is its creation time: `date -u -d @<unix time>`). Prefer a snapshot of the server you \
         restore on; any server's snapshot of the same cluster works. A zero-size or \
         unusually small file is not a candidate.\n"
    );

    let _ = writeln!(o, "## Restore\n");
    let _ = writeln!(
        o,
        "1. Stop k3s on every server, the restore server {} last:\n",
        code(&s1.name)
    );
    let _ = writeln!(o, "   ```sh");
    for n in others.iter().chain(std::iter::once(&s1)) {
        let _ = writeln!(o, "   {} sudo systemctl stop k3s", p.ssh(n));
    }
    let _ = writeln!(o, "   ```\n");
    let _ = writeln!(
        o,
        "2. On {}, reset the cluster from the snapshot (k3s moves the current etcd data aside \
         to {} first):\n",
        code(&s1.name),
        code(&format!("{data}/server/db/etcd-old-<time>"))
    );
    let _ = writeln!(o, "   ```sh");
    let _ = writeln!(
        o,
        "   {} sudo k3s server --cluster-reset \\\n     --cluster-reset-restore-path={dir}/<snapshot file>",
        p.ssh(&s1)
    );
    let _ = writeln!(o, "   ```\n");
    let _ = writeln!(
        o,
        "   It reads {} as usual and stops by itself with the message `Managed etcd cluster \
         membership has been reset, restart without --cluster-reset flag now`. On a new server, \
         add `--token <the cluster token>`: the snapshot's bootstrap data is encrypted with it.\n",
        code(&p.k3s_config_path)
    );
    let _ = writeln!(o, "3. Start k3s on {}:\n", code(&s1.name));
    let _ = writeln!(
        o,
        "   ```sh\n   {} sudo systemctl start k3s\n   ```\n",
        p.ssh(&s1)
    );
    if others.is_empty() {
        let _ = writeln!(
            o,
            "4. (Single server: there are no other servers to rejoin.)\n"
        );
    } else {
        let _ = writeln!(
            o,
            "4. On every other server, move its old etcd data aside and start k3s: it rejoins \
             the restored cluster. Never do this on {}.\n",
            code(&s1.name)
        );
        let _ = writeln!(o, "   ```sh");
        for n in &others {
            let _ = writeln!(
                o,
                "   {} 'sudo mv {data}/server/db {data}/server/db.before-restore && sudo systemctl start k3s'",
                p.ssh(n)
            );
        }
        let _ = writeln!(o, "   ```\n");
    }
    let _ = writeln!(
        o,
        "5. Agents reconnect by themselves. If one stays NotReady after five minutes, restart \
         its agent:\n"
    );
    let _ = writeln!(o, "   ```sh");
    for n in &p.agents {
        let _ = writeln!(o, "   {} sudo systemctl restart k3s-agent", p.ssh(n));
    }
    if p.agents.is_empty() {
        let _ = writeln!(o, "   # (no agents in this lab)");
    }
    let _ = writeln!(o, "   ```\n");

    let _ = writeln!(o, "## Verify\n");
    let _ = writeln!(o, "```sh");
    let _ = writeln!(o, "kubectl get nodes -o wide");
    let _ = writeln!(
        o,
        "kubectl get pods --all-namespaces | grep -v -E 'Running|Completed'"
    );
    let _ = writeln!(o, "homelab status");
    let _ = writeln!(o, "```\n");
    let _ = writeln!(
        o,
        "- Every node is Ready with the expected version; every server shows as an etcd member \
         (`kubectl get nodes -l node-role.kubernetes.io/etcd=true`)."
    );
    let _ = writeln!(
        o,
        "- Workloads are Running; the applications' data is intact (it lives on NFS and in \
         PostgreSQL, which the restore did not touch). Run `homelab backup drill`."
    );
    let _ = writeln!(
        o,
        "- Objects created after the snapshot are gone: re-apply the rendered tree from git \
         (`homelab apply`) to bring the cluster's configuration to the current spec."
    );
    let _ = writeln!(
        o,
        "- Note the time the restore took in this runbook's history: the target is 30 minutes.\n"
    );
    let _ = writeln!(o, "## Afterwards\n");
    let _ = writeln!(
        o,
        "When the cluster has run well for a day, delete the old etcd data: {} on {} and {} on \
         the other servers. Take a fresh snapshot ([cluster-backup](cluster-backup.md)).",
        code(&format!("{data}/server/db/etcd-old-<time>")),
        code(&s1.name),
        code(&format!("{data}/server/db.before-restore"))
    );
    o
}
