//! Custom apps from the spec's `apps:` list: Deployment, Service, HTTPS Ingress, NFS volumes,
//! secret environment and an optional PostgreSQL database, without new code per app.

use std::collections::BTreeMap;

use homelab_spec::lab::App;
use serde_json::json;

use super::Ctx;
use crate::meta::{ingress, labels, labels_map, metadata, namespace, pvc, selector, service};
use crate::{Component, Endpoint, HealthCheck, Layer, SecretGenerator, SecretObject, SecretSource};

pub(super) fn component(ctx: &Ctx, app: &App) -> Component {
    let ns = app.namespace.as_str();
    let mut c = Component::new(&app.name, Layer::Applications, Some(ns));
    c.depends_on.push("traefik".into());
    if !app.volumes.is_empty() {
        c.depends_on.push("nfs".into());
    }
    if app.database.is_some() {
        c.depends_on.push("postgres".into());
    }
    c.add("namespace.yaml", namespace(ns, Some("baseline")));
    let l = || labels(&app.name, &app.name, "app");
    let mut env: Vec<serde_json::Value> = app
        .env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let mut secret_data = BTreeMap::new();
    for (var, r) in &app.secret_env {
        ctx.need_secret(
            r.name(),
            SecretGenerator::UserProvided,
            &app.name,
            &format!("{var} of app `{}`", app.name),
        );
        secret_data.insert(var.clone(), SecretSource::Secret(r.name().into()));
    }
    if let Some(db_name) = &app.database {
        let db = ctx
            .lab
            .services
            .postgres
            .as_ref()
            .and_then(|p| p.databases.iter().find(|d| &d.name == db_name))
            .expect("validation guarantees the database exists");
        env.push(json!({"name": "PGHOST", "value": "postgres.data.svc.cluster.local"}));
        env.push(json!({"name": "PGPORT", "value": "5432"}));
        env.push(json!({"name": "PGDATABASE", "value": db.name}));
        env.push(json!({"name": "PGUSER", "value": db.owner}));
        secret_data.insert(
            "PGPASSWORD".into(),
            SecretSource::Secret(db.password.name().into()),
        );
    }
    let secret_name = format!("{}-env", app.name);
    if !secret_data.is_empty() {
        c.secret_objects.push(SecretObject {
            name: secret_name.clone(),
            namespace: ns.into(),
            data: secret_data,
            labels: labels_map(&app.name, &app.name, "app"),
        });
    }
    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    for v in &app.volumes {
        let claim = format!("{}-{}", app.name, v.name);
        c.add(
            "pvc.yaml",
            pvc(
                &claim,
                ns,
                l(),
                &v.size.to_string(),
                &ctx.storage_class,
                "ReadWriteOnce",
            ),
        );
        mounts.push(json!({"name": v.name, "mountPath": v.mount_path}));
        volumes.push(json!({"name": v.name, "persistentVolumeClaim": {"claimName": claim}}));
        c.health.push(HealthCheck::Pvc {
            namespace: ns.into(),
            name: claim,
        });
    }
    let mut container = json!({
        "name": app.name,
        "image": app.image,
        "ports": [{"name": "http", "containerPort": app.port}],
        "env": env,
        "volumeMounts": mounts,
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
    });
    if !c.secret_objects.is_empty() {
        container["envFrom"] = json!([{"secretRef": {"name": secret_name}}]);
    }
    c.add("deployment.yaml", json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": metadata(&app.name, Some(ns), l()),
        "spec": {
            "replicas": 1,
            "strategy": {"type": if app.volumes.is_empty() { "RollingUpdate" } else { "Recreate" }},
            "selector": {"matchLabels": selector(&app.name, &app.name)},
            "template": {
                "metadata": {"labels": l()},
                "spec": {
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }));
    c.add(
        "deployment.yaml",
        service(
            &app.name,
            ns,
            l(),
            selector(&app.name, &app.name),
            json!([{"name": "http", "port": app.port, "targetPort": "http"}]),
        ),
    );
    c.health.push(HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: ns.into(),
        name: app.name.clone(),
    });
    let mut access = vec![format!(
        "In the cluster: http://{}.{ns}.svc.cluster.local:{}",
        app.name, app.port
    )];
    if let Some(h) = &app.host {
        let host = ctx.fqdn(h);
        c.add(
            "ingress.yaml",
            ingress(&app.name, ns, l(), &host, &app.name, app.port, ctx.issuer),
        );
        c.endpoints.push(Endpoint {
            name: app.name.clone(),
            url: format!("https://{host}"),
            host: host.clone(),
            description: format!("app {}", app.name),
        });
        c.health.push(HealthCheck::Certificate {
            namespace: ns.into(),
            name: format!("{}-tls", app.name),
        });
        c.health.push(HealthCheck::Url {
            url: format!("https://{host}"),
            host: host.clone(),
        });
        access.insert(0, format!("https://{host}"));
    }
    c.docs = crate::ComponentDocs {
        title: app.name.clone(),
        what: format!(
            "The container image `{}` listening on port {}, from the `apps:` list of homelab.yaml.",
            app.image, app.port
        ),
        why: "Declared in homelab.yaml so that it is rebuilt with the lab.".into(),
        access,
        data: if app.volumes.is_empty() {
            "No persistent volume.".to_string()
        } else {
            app.volumes
                .iter()
                .map(|v| format!("{} ({}) at {}", v.name, v.size, v.mount_path))
                .collect::<Vec<_>>()
                .join("; ")
                + " on NFS"
        },
        backup: match (&app.database, app.backup && !app.volumes.is_empty()) {
            (Some(db), true) => {
                format!("Volumes: NAS snapshots; database `{db}`: the nightly PostgreSQL dumps.")
            }
            (Some(db), false) => format!("Database `{db}`: the nightly PostgreSQL dumps."),
            (None, true) => "Volumes: NAS snapshots (see docs/runbooks/nfs-restore.md).".into(),
            (None, false) => "Not backed up.".into(),
        },
        requirements: vec!["FR7".into(), "FR8".into(), "FR11".into(), "NFR21".into()],
    };
    c
}
