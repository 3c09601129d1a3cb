//! The runbooks carry the lab's real names and paths, the measured restore figures, working
//! links between each other, and well-formed tables.

use homelab_backup::postgres::PostgresBackupParams;
use homelab_backup::runbooks::{
    self, ClusterRunbookParams, DatabaseAccess, MEASURED_RESTORE, NfsRunbookParams, NfsVolume,
    NodeRef, PostgresRunbookParams, Runbook,
};

fn postgres() -> PostgresRunbookParams {
    let mut backup = PostgresBackupParams::new("/backups", 7);
    backup.databases = None;
    PostgresRunbookParams {
        namespace: "data".into(),
        statefulset: "postgres".into(),
        pod: "postgres-0".into(),
        container: "postgres".into(),
        service: "postgres".into(),
        port: 5432,
        cluster_domain: "cluster.local".into(),
        data_pvc: "data-postgres-0".into(),
        backup_pvc: "postgres-backups".into(),
        backup_cronjob: "postgres-backup".into(),
        schedule: "0 2 * * *".into(),
        scripts_configmap: "postgres-backup-scripts".into(),
        script_dir: "/opt/homelab-backup".into(),
        image: "postgres:17".into(),
        superuser: "postgres".into(),
        superuser_secret: "postgres-superuser".into(),
        superuser_secret_key: "password".into(),
        databases: vec![
            DatabaseAccess {
                name: "n8n".into(),
                owner: "n8n".into(),
                secret: "n8n-db".into(),
                secret_key: "password".into(),
            },
            DatabaseAccess {
                name: "paperless".into(),
                owner: "paperless".into(),
                secret: "paperless-db".into(),
                secret_key: "password".into(),
            },
        ],
        backup,
        alert_max_age_hours: 26,
    }
}

fn cluster() -> ClusterRunbookParams {
    let node = |name: &str, address: &str| NodeRef {
        name: name.into(),
        address: address.into(),
    };
    ClusterRunbookParams {
        servers: vec![
            node("k3s-master", "192.168.2.20"),
            node("k3s-master-2", "192.168.2.23"),
        ],
        agents: vec![
            node("k3s-worker-01", "192.168.2.21"),
            node("k3s-worker-02", "192.168.2.22"),
        ],
        ssh_user: "tom".into(),
        snapshot_dir: "/mnt/k3s-snapshots".into(),
        snapshot_nfs_source: Some("192.168.2.2:/volume1/k3s-snapshots".into()),
        snapshot_schedule: "0 */12 * * *".into(),
        snapshot_retention: 14,
        k3s_config_path: "/etc/rancher/k3s/config.yaml".into(),
        data_dir: "/var/lib/rancher/k3s".into(),
        api_server: "https://192.168.2.20:6443".into(),
    }
}

fn nfs() -> NfsRunbookParams {
    NfsRunbookParams {
        nas: "Synology DS920+".into(),
        server: "192.168.2.2".into(),
        export_path: "/volume1/k8s-data".into(),
        storage_class: "nfs-client".into(),
        provisioner_namespace: "infra".into(),
        provisioner_deployment: "nfs-subdir-external-provisioner".into(),
        snapshot_schedule: "hourly".into(),
        snapshot_retention: "24 hourly and 7 daily snapshots".into(),
        volumes: vec![
            NfsVolume {
                namespace: "data".into(),
                pvc: "postgres-backups".into(),
                workload: "cronjob/postgres-backup".into(),
            },
            NfsVolume {
                namespace: "docs".into(),
                pvc: "paperless-media".into(),
                workload: "deployment/paperless".into(),
            },
        ],
        rto_minutes: 30,
    }
}

fn all() -> Vec<Runbook> {
    runbooks::all(&postgres(), &cluster(), &nfs())
}

fn get(name: &str) -> String {
    all().into_iter().find(|r| r.name == name).unwrap().markdown
}

#[test]
fn the_six_runbooks_are_rendered_deterministically() {
    let names: Vec<&str> = all().iter().map(|r| r.name).collect();
    assert_eq!(
        names,
        [
            "postgres-backup",
            "postgres-restore",
            "postgres-connectivity",
            "cluster-backup",
            "cluster-restore",
            "nfs-restore"
        ]
    );
    assert_eq!(all(), all());
    assert_eq!(all()[0].file_name(), "postgres-backup.md");
}

#[test]
fn postgres_runbooks_name_the_real_objects_and_paths() {
    let backup = get("postgres-backup");
    for needle in [
        "`postgres-backup`",
        "`0 2 * * *`",
        "`postgres-backups`",
        "`/backups`",
        "`/opt/homelab-backup`",
        "`data-postgres-0`",
        "the newest 7 valid dumps",
        "`/backups/status.json`",
        "`/backups/db/n8n/n8n.20261101T020000Z.dump`",
        "kubectl -n data create job --from=cronjob/postgres-backup",
        "PostgresBackupMissing",
        "more than 26 hours",
        "`/backups/.lock`",
    ] {
        assert!(
            backup.contains(needle),
            "postgres-backup lacks {needle:?}:\n{backup}"
        );
    }
    let restore = get("postgres-restore");
    for needle in [
        "homelab restore postgres --db n8n --into n8n_restored",
        "homelab restore postgres --db n8n --drop-old",
        "homelab restore postgres --db paperless --drop-old",
        "homelab restore postgres --globals",
        "kubectl -n data cp n8n.20261101T020000Z.dump postgres-0:/tmp/restore.dump -c postgres",
        "\"bash\", \"/opt/homelab-backup/restore.sh\", \"--db\", \"n8n\", \"--latest\"",
        "n8n_before_restore_",
    ] {
        assert!(
            restore.contains(needle),
            "postgres-restore lacks {needle:?}:\n{restore}"
        );
    }
    let conn = get("postgres-connectivity");
    for needle in [
        "`postgres.data.svc.cluster.local`",
        "postgresql://n8n:<password>@postgres.data.svc.cluster.local:5432/n8n",
        "kubectl -n data get secret n8n-db -o jsonpath='{.data.password}' | base64 -d",
        "kubectl -n data port-forward svc/postgres 5432:5432",
        "`paperless-db` / `password`",
        "--image=postgres:17",
    ] {
        assert!(
            conn.contains(needle),
            "postgres-connectivity lacks {needle:?}:\n{conn}"
        );
    }
}

#[test]
fn the_restore_runbook_quotes_the_measured_restore_time() {
    let restore = get("postgres-restore");
    let m = MEASURED_RESTORE;
    assert!(m.runs > 0 && m.restore_millis > 0 && m.check_millis > 0);
    assert!(!m.machine.is_empty() && !m.measured_on.is_empty());
    assert!(restore.contains(m.machine), "{restore}");
    assert!(restore.contains(m.database), "{restore}");
    assert!(
        restore.contains(&format!("Median of {} runs", m.runs)),
        "{restore}"
    );
}

#[test]
fn cluster_runbooks_use_the_servers_snapshot_dir_and_k3s_commands() {
    let backup = get("cluster-backup");
    for needle in [
        "ssh tom@192.168.2.20 sudo k3s etcd-snapshot save --name pre-change --etcd-snapshot-dir /mnt/k3s-snapshots",
        "ssh tom@192.168.2.20 sudo k3s etcd-snapshot ls --etcd-snapshot-dir /mnt/k3s-snapshots",
        "k3s etcd-snapshot prune --snapshot-retention 14",
        "etcd-snapshot-schedule-cron: \"0 */12 * * *\"",
        "`192.168.2.2:/volume1/k3s-snapshots`",
        "`/var/lib/rancher/k3s/server/token`",
    ] {
        assert!(
            backup.contains(needle),
            "cluster-backup lacks {needle:?}:\n{backup}"
        );
    }
    let restore = get("cluster-restore");
    for needle in [
        "ssh tom@192.168.2.20 sudo k3s server --cluster-reset \\\n     --cluster-reset-restore-path=/mnt/k3s-snapshots/<snapshot file>",
        "ssh tom@192.168.2.23 sudo systemctl stop k3s",
        "ssh tom@192.168.2.23 'sudo mv /var/lib/rancher/k3s/server/db /var/lib/rancher/k3s/server/db.before-restore && sudo systemctl start k3s'",
        "ssh tom@192.168.2.21 sudo systemctl restart k3s-agent",
        "within 30 minutes",
        "--token",
    ] {
        assert!(
            restore.contains(needle),
            "cluster-restore lacks {needle:?}:\n{restore}"
        );
    }
    // The restore server stops last and is never wiped.
    let stop_other = restore
        .find("ssh tom@192.168.2.23 sudo systemctl stop k3s")
        .unwrap();
    let stop_first = restore
        .find("ssh tom@192.168.2.20 sudo systemctl stop k3s")
        .unwrap();
    assert!(stop_other < stop_first);
    assert!(!restore.contains("ssh tom@192.168.2.20 'sudo mv"));
}

#[test]
fn a_single_server_cluster_has_no_rejoin_step() {
    let mut c = cluster();
    c.servers.truncate(1);
    c.agents.clear();
    let restore = runbooks::cluster_restore(&c);
    assert!(restore.contains("no other servers to rejoin"), "{restore}");
    assert!(!restore.contains("db.before-restore &&"));
}

#[test]
fn the_nfs_runbook_names_the_share_and_the_provisioner_directories() {
    let text = get("nfs-restore");
    for needle in [
        "`/volume1/k8s-data`",
        "`<namespace>-<pvc>-<pv>`",
        "`/volume1/k8s-data/docs-paperless-media-<pv>`",
        "`deployment/paperless`",
        "'/volume1/k8s-data/#snapshot/<snapshot>/<directory>/'",
        "shared folder `k8s-data`",
        "hourly, keeping 24 hourly and 7 daily snapshots",
        "within 30 minutes",
        "kubectl -n infra get deploy nfs-subdir-external-provisioner",
    ] {
        assert!(
            text.contains(needle),
            "nfs-restore lacks {needle:?}:\n{text}"
        );
    }
}

#[test]
fn links_point_at_runbooks_that_exist_and_tables_are_well_formed() {
    let books = all();
    let names: Vec<String> = books.iter().map(Runbook::file_name).collect();
    for book in &books {
        for (i, _) in book.markdown.match_indices("](") {
            let rest = &book.markdown[i + 2..];
            let target = &rest[..rest.find(')').unwrap()];
            if let Some(anchor) = target.strip_prefix('#') {
                let heading = book
                    .markdown
                    .lines()
                    .filter_map(|l| l.strip_prefix("## "))
                    .any(|h| h.to_lowercase().replace(' ', "-") == anchor);
                assert!(heading, "{}: no heading for {target}", book.name);
            } else {
                assert!(
                    names.iter().any(|n| n == target),
                    "{}: broken link {target}",
                    book.name
                );
            }
        }
        let mut columns: Option<usize> = None;
        for line in book.markdown.lines() {
            if line.starts_with('|') {
                let cells = line.matches(" | ").count() + 1;
                let cells = if line.starts_with("|---") {
                    line.matches("---|").count()
                } else {
                    cells
                };
                match columns {
                    None => columns = Some(cells),
                    Some(c) => assert_eq!(c, cells, "{}: ragged table row {line}", book.name),
                }
            } else {
                columns = None;
            }
        }
        assert!(book.markdown.starts_with("# Runbook: "), "{}", book.name);
        assert!(
            !book.markdown.contains("\n\n\n"),
            "{}: stray blank lines",
            book.name
        );
    }
}

#[test]
fn the_cluster_backup_runbook_says_where_the_snapshots_really_are() {
    let on_nas = runbooks::cluster_backup(&cluster());
    for needle in [
        "the snapshots go to the NAS (`192.168.2.2:/volume1/k3s-snapshots`, mounted at `/mnt/k3s-snapshots` on every server by `homelab nodes apply`",
        "2. The NFS mount is really there",
        "findmnt /mnt/k3s-snapshots",
        "3. The cluster token is kept outside the cluster",
        "4. At least once, rehearse",
        "systemctl status $(systemd-escape --path --suffix=mount /mnt/k3s-snapshots)",
    ] {
        assert!(on_nas.contains(needle), "lacks {needle:?}:\n{on_nas}");
    }
    let mut c = cluster();
    c.snapshot_nfs_source = None;
    let local = runbooks::cluster_backup(&c);
    assert!(
        local.contains("the snapshots stay in `/mnt/k3s-snapshots` on each server's own disk, because the lab has no `storage.nfs`: they are lost with the server"),
        "{local}"
    );
    for wrong in ["go to the NAS", "NFS mount is really there", "NFS share"] {
        assert!(!local.contains(wrong), "{wrong:?} in:\n{local}");
    }
    assert!(local.contains("2. The cluster token") && local.contains("3. At least once"));
}
