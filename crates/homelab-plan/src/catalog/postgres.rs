//! PostgreSQL from the official image as a StatefulSet on NFS, its databases and owners, a
//! metrics exporter, and the verified nightly dump CronJob (scripts from `homelab-backup`).

use std::collections::BTreeMap;

use homelab_backup::postgres::{PostgresBackupParams, TableChecksums, scripts};
use homelab_spec::lab::{BackupVerify, PostgresBackup};
use serde_json::{Value, json};

use super::Ctx;
use crate::meta::{labels, labels_map, metadata, namespace, pvc, selector};
use crate::{
    BackupJob, Component, HealthCheck, Layer, PlainFile, SecretGenerator, SecretObject,
    SecretSource, versions,
};

pub(crate) const NS: &str = "data";
pub(crate) const BACKUP_DIR: &str = "/backups";
pub(crate) const BACKUP_CRONJOB: &str = "postgres-backup";
pub(crate) const BACKUP_PVC: &str = "postgres-backup";
const SCRIPTS_DIR: &str = "/opt/homelab";

pub(super) fn component(ctx: &Ctx) -> Component {
    let pg = ctx
        .lab
        .services
        .postgres
        .as_ref()
        .expect("planned only when enabled");
    let pin = versions::postgres(pg.version);
    let image = pin.image();
    let mut c = Component::new("postgres", Layer::Applications, Some(NS));
    c.depends_on.push("nfs".into());
    c.depends_on.push("prometheus".into());
    c.add("namespace.yaml", namespace(NS, Some("baseline")));
    let l = |component: &str| labels("postgres", "postgres-primary", component);

    ctx.need_secret(
        pg.superuser_password.name(),
        SecretGenerator::Password { length: 32 },
        "postgres",
        "password of the PostgreSQL superuser `postgres`",
    );
    ctx.manual_rotation(
        pg.superuser_password.name(),
        format!(
            "PostgreSQL keeps the password in its data directory: set the new value with `homelab secrets set {}`, run `kubectl -n {NS} exec postgres-0 -c postgres -- psql -U postgres -c \"ALTER ROLE postgres PASSWORD 'NEW'\"`, then `homelab apply`",
            pg.superuser_password
        ),
    );
    c.secret_objects.push(SecretObject {
        name: "postgres-superuser".into(),
        namespace: NS.into(),
        data: BTreeMap::from([
            (
                "username".to_string(),
                SecretSource::Literal("postgres".into()),
            ),
            (
                "password".to_string(),
                SecretSource::Secret(pg.superuser_password.name().into()),
            ),
        ]),
        labels: labels_map("postgres", "postgres-primary", "database"),
    });
    let mut roles = BTreeMap::new();
    for d in &pg.databases {
        ctx.need_secret(
            d.password.name(),
            SecretGenerator::Password { length: 32 },
            "postgres",
            &format!("password of the PostgreSQL role `{}`", d.owner),
        );
        ctx.manual_rotation(
            d.password.name(),
            format!(
                "PostgreSQL keeps the password in its data directory: set the new value with `homelab secrets set {}`, run `kubectl -n {NS} exec postgres-0 -c postgres -- psql -U postgres -c \"ALTER ROLE {} PASSWORD 'NEW'\"`, then `homelab apply` so its users get the new value",
                d.password, d.owner
            ),
        );
        roles.insert(
            d.owner.clone(),
            SecretSource::Secret(d.password.name().into()),
        );
    }
    if !roles.is_empty() {
        c.secret_objects.push(SecretObject {
            name: "postgres-roles".into(),
            namespace: NS.into(),
            data: roles,
            labels: labels_map("postgres", "postgres-primary", "database"),
        });
    }

    c.add(
        "service.yaml",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": metadata("postgres", Some(NS), l("database")),
            "spec": {
                "type": "ClusterIP",
                "selector": selector("postgres", "postgres-primary"),
                "ports": [
                    {"name": "postgres", "port": 5432, "targetPort": "postgres"},
                    {"name": "metrics", "port": 9187, "targetPort": "metrics"},
                ],
            },
        }),
    );
    c.add(
        "service.yaml",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": metadata("postgres-headless", Some(NS), l("database")),
            "spec": {
                "clusterIP": "None",
                "selector": selector("postgres", "postgres-primary"),
                "ports": [{"name": "postgres", "port": 5432, "targetPort": "postgres"}],
            },
        }),
    );
    let password_env = |name: &str, secret: &str, key: &str| json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}});
    c.add("statefulset.yaml", json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": metadata("postgres", Some(NS), l("database")),
        "spec": {
            "serviceName": "postgres-headless",
            "replicas": 1,
            "selector": {"matchLabels": selector("postgres", "postgres-primary")},
            "template": {
                "metadata": {"labels": l("database")},
                "spec": {
                    "securityContext": {"fsGroup": 999, "seccompProfile": {"type": "RuntimeDefault"}},
                    "terminationGracePeriodSeconds": 60,
                    "containers": [
                        {
                            "name": "postgres",
                            "image": image,
                            "ports": [{"name": "postgres", "containerPort": 5432}],
                            "env": [
                                password_env("POSTGRES_PASSWORD", "postgres-superuser", "password"),
                                // A subdirectory, because the NFS volume's root is not empty
                                // on some NAS exports and initdb refuses a non-empty directory.
                                {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                            ],
                            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
                            "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "postgres"]}, "periodSeconds": 10},
                            "livenessProbe": {"exec": {"command": ["pg_isready", "-U", "postgres"]}, "initialDelaySeconds": 30, "periodSeconds": 20, "failureThreshold": 6},
                            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
                        },
                        {
                            "name": "exporter",
                            "image": versions::POSTGRES_EXPORTER.image(),
                            "ports": [{"name": "metrics", "containerPort": 9187}],
                            "env": [
                                {"name": "DATA_SOURCE_URI", "value": "localhost:5432/postgres?sslmode=disable"},
                                {"name": "DATA_SOURCE_USER", "value": "postgres"},
                                password_env("DATA_SOURCE_PASS", "postgres-superuser", "password"),
                            ],
                            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                        },
                    ],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data", "labels": l("database")},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": ctx.storage_class,
                    "resources": {"requests": {"storage": pg.storage.to_string()}},
                },
            }],
        },
    }));

    // Databases and owners are ensured by a Job named after its content: a changed list makes
    // a new Job (Jobs cannot be changed in place), and pruning removes the old one.
    let ensure = ensure_script(ctx);
    let job_name = format!("postgres-databases-{}", &crate::meta::short_hash(&ensure));
    c.add(
        "databases.yaml",
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata("postgres-databases", Some(NS), l("database")),
            "data": {"ensure-databases.sh": ensure},
        }),
    );
    let mut env = vec![
        json!({"name": "PGHOST", "value": "postgres"}),
        json!({"name": "PGUSER", "value": "postgres"}),
        password_env("PGPASSWORD", "postgres-superuser", "password"),
    ];
    for d in &pg.databases {
        env.push(password_env(
            &role_env(&d.owner),
            "postgres-roles",
            &d.owner,
        ));
    }
    c.add("databases.yaml", json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": metadata(&job_name, Some(NS), l("database-setup")),
        "spec": {
            "backoffLimit": 6,
            "template": {
                "metadata": {"labels": l("database-setup")},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{
                        "name": "ensure-databases",
                        "image": image,
                        "command": ["bash", "/scripts/ensure-databases.sh"],
                        "env": env,
                        "volumeMounts": [{"name": "scripts", "mountPath": "/scripts"}],
                    }],
                    "volumes": [{"name": "scripts", "configMap": {"name": "postgres-databases"}}],
                },
            },
        },
    }));

    // Backups.
    let backup = &pg.backup;
    let params = backup_params(backup);
    let scripts = scripts(&params).expect("the lab's backup parameters are valid");
    let mut data = serde_json::Map::new();
    let mut items = Vec::new();
    for s in &scripts {
        data.insert(s.file_name.to_string(), json!(s.content));
        items.push(json!({"key": s.file_name, "path": s.file_name, "mode": s.mode}));
        c.files.push(PlainFile {
            path: format!("backup/{}", s.file_name),
            content: s.content.clone(),
            mode: if s.mode & 0o111 != 0 { 0o755 } else { 0o644 },
        });
    }
    c.add(
        "backup-cronjob.yaml",
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata("postgres-backup-scripts", Some(NS), l("backup")),
            "data": data,
        }),
    );
    c.add(
        "backup-cronjob.yaml",
        pvc(
            BACKUP_PVC,
            NS,
            l("backup"),
            &backup.storage.to_string(),
            &ctx.storage_class,
            "ReadWriteOnce",
        ),
    );
    c.add("backup-cronjob.yaml", json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": metadata(BACKUP_CRONJOB, Some(NS), l("backup")),
        "spec": {
            "schedule": backup.schedule.as_str(),
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {
                "backoffLimit": 1,
                "template": {
                    "metadata": {"labels": l("backup")},
                    "spec": backup_pod_spec(&image, &items, vec!["bash".into(), format!("{SCRIPTS_DIR}/backup.sh")]),
                },
            }},
        },
    }));
    c.backups.push(BackupJob {
        name: "postgres".into(),
        namespace: NS.into(),
        cronjob: BACKUP_CRONJOB.into(),
        schedule: backup.schedule.to_string(),
        keep: backup.keep,
        what: "every database (pg_dump -Fc, verified) and the roles (pg_dumpall --globals-only)"
            .into(),
        target: format!(
            "PVC {BACKUP_PVC} ({}) mounted at {BACKUP_DIR}",
            backup.storage
        ),
    });
    c.health.push(HealthCheck::Workload {
        kind: "StatefulSet".into(),
        namespace: NS.into(),
        name: "postgres".into(),
    });
    c.health.push(HealthCheck::Pvc {
        namespace: NS.into(),
        name: "data-postgres-0".into(),
    });
    c.health.push(HealthCheck::Pvc {
        namespace: NS.into(),
        name: BACKUP_PVC.into(),
    });
    c.health.push(HealthCheck::Backup {
        namespace: NS.into(),
        cronjob: BACKUP_CRONJOB.into(),
        max_age_hours: 26,
    });
    let dbs: Vec<String> = pg
        .databases
        .iter()
        .map(|d| format!("`{}` (owner `{}`)", d.name, d.owner))
        .collect();
    c.docs = crate::ComponentDocs {
        title: "PostgreSQL".into(),
        what: format!(
            "PostgreSQL {} (official image {image}) as the StatefulSet `postgres` (pod `postgres-0`) with databases {}.",
            pg.version,
            if dbs.is_empty() { "none yet".to_string() } else { dbs.join(", ") }
        ),
        why: "The official image is maintained by the PostgreSQL Docker team; Bitnami's free images were frozen in 2025. One instance on NFS is enough for a lab, and nightly verified dumps make it recoverable.".into(),
        access: vec![
            "In the cluster: `postgres.data.svc.cluster.local:5432`".into(),
            "From your machine: `kubectl -n data port-forward svc/postgres 5432` then `psql -h localhost -U <owner> <database>`".into(),
            format!("Superuser password: `homelab secrets get {}`", pg.superuser_password),
        ],
        data: format!("PGDATA on a {} NFS volume (PVC data-postgres-0).", pg.storage),
        backup: format!(
            "CronJob `{BACKUP_CRONJOB}` at `{}` dumps every database and the roles to PVC `{BACKUP_PVC}`, verifies each dump, keeps {} per database; `homelab backup postgres` runs it now, `homelab backup drill` proves the dumps restore; see docs/runbooks/postgres-backup.md and postgres-restore.md.",
            backup.schedule, backup.keep
        ),
        requirements: ["FR31", "FR32", "FR33", "FR34", "FR35", "NFR6"].iter().map(|s| s.to_string()).collect(),
    };
    c
}

/// The pod that runs a backup script (CronJob and the CLI's one-off Jobs share it).
pub(crate) fn backup_pod_spec(image: &str, items: &[Value], command: Vec<String>) -> Value {
    json!({
        "restartPolicy": "Never",
        "securityContext": {"runAsUser": 999, "runAsGroup": 999, "fsGroup": 999, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "backup",
            "image": image,
            "command": command,
            "env": [
                {"name": "PGHOST", "value": "postgres"},
                {"name": "PGPORT", "value": "5432"},
                {"name": "PGUSER", "value": "postgres"},
                {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "postgres-superuser", "key": "password"}}},
            ],
            "volumeMounts": [
                {"name": "scripts", "mountPath": SCRIPTS_DIR},
                {"name": "backups", "mountPath": BACKUP_DIR},
            ],
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
        }],
        "volumes": [
            {"name": "scripts", "configMap": {"name": "postgres-backup-scripts", "items": items}},
            {"name": "backups", "persistentVolumeClaim": {"claimName": BACKUP_PVC}},
        ],
    })
}

fn role_env(owner: &str) -> String {
    format!("ROLE_PASSWORD_{}", owner.to_ascii_uppercase())
}

/// Idempotent: creates missing roles and databases and sets each owner's password, so adding
/// a database to the spec and re-applying is all it takes.
fn ensure_script(ctx: &Ctx) -> String {
    let pg = ctx
        .lab
        .services
        .postgres
        .as_ref()
        .expect("planned only when enabled");
    let mut s = String::from(
        "#!/bin/bash\n# Creates the lab's PostgreSQL roles and databases if missing and sets the owners' passwords.\nset -euo pipefail\n\nfor _ in $(seq 1 150); do\n  pg_isready -q && break\n  sleep 2\ndone\npg_isready -q || { echo \"PostgreSQL at $PGHOST did not become ready in 300 s\" >&2; exit 1; }\n\nensure() {\n  local owner=$1 db=$2 password=$3\n  psql -X -v ON_ERROR_STOP=1 -v owner=\"$owner\" -v db=\"$db\" -v password=\"$password\" -d postgres <<'SQL'\nSELECT format('CREATE ROLE %I LOGIN', :'owner') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner')\\gexec\nSELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'owner', :'password')\\gexec\nSELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\\gexec\nSELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'owner')\\gexec\nSQL\n  echo \"database $db: ready (owner $owner)\"\n}\n\n",
    );
    for d in &pg.databases {
        s.push_str(&format!(
            "ensure {} {} \"${}\"\n",
            d.owner,
            d.name,
            role_env(&d.owner)
        ));
    }
    s
}

/// The backup scripts' parameters for the lab's `services.postgres.backup`; the runbook quotes
/// the same ones.
pub(crate) fn backup_params(backup: &PostgresBackup) -> PostgresBackupParams {
    let mut params = PostgresBackupParams::new(BACKUP_DIR, backup.keep);
    params.table_checksums = match backup.verify {
        BackupVerify::Checksums => TableChecksums::RowHashes,
        BackupVerify::RowCounts => TableChecksums::RowCountsOnly,
    };
    params
}
