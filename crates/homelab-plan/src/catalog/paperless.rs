//! Paperless-ngx with Redis as rendered Deployments (the public charts are unmaintained), its
//! volumes on NFS and a polling consumer (inotify does not see NFS writes).

use std::collections::BTreeMap;

use serde_json::json;

use super::Ctx;
use crate::meta::{ingress, labels, labels_map, metadata, namespace, pvc, selector, service};
use crate::{
    Component, Endpoint, HealthCheck, Layer, SecretGenerator, SecretObject, SecretSource, versions,
};

const NS: &str = "docs";
const ADMIN_PASSWORD: &str = "paperless-admin-password";

pub(super) fn component(ctx: &Ctx) -> Component {
    let p = ctx
        .lab
        .services
        .paperless
        .as_ref()
        .expect("planned only when enabled");
    let host = ctx.fqdn(&p.host);
    let mut c = Component::new("paperless", Layer::Applications, Some(NS));
    c.depends_on
        .extend(["nfs".to_string(), "traefik".to_string()]);
    c.add("namespace.yaml", namespace(NS, Some("baseline")));
    let l = |component: &str| labels("paperless", "paperless-ngx", component);
    let rl = || labels("redis", "paperless-redis", "queue");

    ctx.need_secret(
        p.secret_key.name(),
        SecretGenerator::Hex { bytes: 32 },
        "paperless",
        "Django secret key of Paperless-ngx",
    );
    ctx.need_secret(
        ADMIN_PASSWORD,
        SecretGenerator::Password { length: 24 },
        "paperless",
        "password of the Paperless-ngx user `admin`",
    );
    ctx.manual_rotation(
        ADMIN_PASSWORD,
        format!(
            "Paperless-ngx uses this password only to create the `admin` user: change it in the web UI (or `kubectl -n {NS} exec deploy/paperless -- python3 manage.py changepassword admin`), then store it with `homelab secrets set {ADMIN_PASSWORD}`"
        ),
    );
    c.secret_objects.push(SecretObject {
        name: "paperless-secrets".into(),
        namespace: NS.into(),
        data: BTreeMap::from([
            (
                "PAPERLESS_SECRET_KEY".to_string(),
                SecretSource::Secret(p.secret_key.name().into()),
            ),
            (
                "PAPERLESS_ADMIN_USER".to_string(),
                SecretSource::Literal("admin".into()),
            ),
            (
                "PAPERLESS_ADMIN_PASSWORD".to_string(),
                SecretSource::Secret(ADMIN_PASSWORD.into()),
            ),
        ]),
        labels: labels_map("paperless", "paperless-ngx", "documents"),
    });

    for (name, size) in [
        ("paperless-data", "5Gi".to_string()),
        ("paperless-media", p.storage.to_string()),
        ("paperless-consume", "5Gi".to_string()),
        ("paperless-export", "5Gi".to_string()),
    ] {
        c.add(
            "pvc.yaml",
            pvc(
                name,
                NS,
                l("documents"),
                &size,
                &ctx.storage_class,
                "ReadWriteOnce",
            ),
        );
        c.health.push(HealthCheck::Pvc {
            namespace: NS.into(),
            name: name.into(),
        });
    }
    c.add("redis.yaml", json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": metadata("paperless-redis", Some(NS), rl()),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector("redis", "paperless-redis")},
            "template": {
                "metadata": {"labels": rl()},
                "spec": {
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "redis",
                        "image": versions::REDIS.image(),
                        // A task queue only: nothing to persist.
                        "args": ["--save", "", "--appendonly", "no"],
                        "ports": [{"name": "redis", "containerPort": 6379}],
                        "securityContext": crate::meta::restricted_security_context(999),
                        "readinessProbe": {"exec": {"command": ["redis-cli", "ping"]}, "periodSeconds": 10},
                        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
                    }],
                },
            },
        },
    }));
    c.add(
        "redis.yaml",
        service(
            "paperless-redis",
            NS,
            rl(),
            selector("redis", "paperless-redis"),
            json!([{"name": "redis", "port": 6379, "targetPort": "redis"}]),
        ),
    );
    let mount = |name: &str, path: &str| json!({"name": name, "mountPath": path});
    c.add("deployment.yaml", json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": metadata("paperless", Some(NS), l("documents")),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector("paperless", "paperless-ngx")},
            "template": {
                "metadata": {"labels": l("documents")},
                "spec": {
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "paperless",
                        "image": versions::PAPERLESS.image(),
                        "ports": [{"name": "http", "containerPort": 8000}],
                        "env": [
                            {"name": "PAPERLESS_REDIS", "value": "redis://paperless-redis:6379"},
                            {"name": "PAPERLESS_URL", "value": format!("https://{host}")},
                            {"name": "PAPERLESS_OCR_LANGUAGE", "value": p.ocr_language},
                            {"name": "PAPERLESS_OCR_LANGUAGES", "value": p.ocr_language.split('+').filter(|l| *l != "eng").collect::<Vec<_>>().join(" ")},
                            {"name": "PAPERLESS_CONSUMER_POLLING", "value": "60"},
                            {"name": "PAPERLESS_CONSUMER_RECURSIVE", "value": "true"},
                            {"name": "PAPERLESS_TIME_ZONE", "value": "UTC"},
                        ],
                        "envFrom": [{"secretRef": {"name": "paperless-secrets"}}],
                        "volumeMounts": [
                            mount("data", "/usr/src/paperless/data"),
                            mount("media", "/usr/src/paperless/media"),
                            mount("consume", "/usr/src/paperless/consume"),
                            mount("export", "/usr/src/paperless/export"),
                        ],
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "initialDelaySeconds": 30, "periodSeconds": 15},
                        "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
                    }],
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": "paperless-data"}},
                        {"name": "media", "persistentVolumeClaim": {"claimName": "paperless-media"}},
                        {"name": "consume", "persistentVolumeClaim": {"claimName": "paperless-consume"}},
                        {"name": "export", "persistentVolumeClaim": {"claimName": "paperless-export"}},
                    ],
                },
            },
        },
    }));
    c.add(
        "deployment.yaml",
        service(
            "paperless",
            NS,
            l("documents"),
            selector("paperless", "paperless-ngx"),
            json!([{"name": "http", "port": 8000, "targetPort": "http"}]),
        ),
    );
    c.add(
        "ingress.yaml",
        ingress(
            "paperless",
            NS,
            l("documents"),
            &host,
            "paperless",
            8000,
            ctx.issuer,
        ),
    );
    c.endpoints.push(Endpoint {
        name: "paperless".into(),
        url: format!("https://{host}"),
        host: host.clone(),
        description: "Paperless-ngx: upload, tag and search documents (user `admin`)".into(),
    });
    c.health.push(HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: NS.into(),
        name: "paperless".into(),
    });
    c.health.push(HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: NS.into(),
        name: "paperless-redis".into(),
    });
    c.health.push(HealthCheck::Certificate {
        namespace: NS.into(),
        name: "paperless-tls".into(),
    });
    c.health.push(HealthCheck::Url {
        url: format!("https://{host}"),
        host: host.clone(),
    });
    c.docs = crate::ComponentDocs {
        title: "Paperless-ngx".into(),
        what: format!("Scanned documents with OCR ({}), tags and full-text search; Redis queues the OCR work.", p.ocr_language),
        why: "The most active self-hosted document manager; rendered as plain manifests because the public charts are unmaintained. SQLite in the data volume is enough for one user.".into(),
        access: vec![
            format!("https://{host} (user `admin`, password: `homelab secrets get {ADMIN_PASSWORD}`)"),
            "Drop files into the consume volume (PVC paperless-consume) or upload them in the web UI; the consumer polls every 60 s because NFS does not deliver inotify events.".into(),
        ],
        data: format!("Database and index in PVC paperless-data, originals and archived PDFs in paperless-media ({}), incoming files in paperless-consume, exports in paperless-export, all on NFS.", p.storage),
        backup: "The NAS snapshots of the volumes; for a portable copy run `document_exporter` into the export volume (`kubectl -n docs exec deploy/paperless -- document_exporter ../export`).".into(),
        requirements: vec!["FR55".into(), "FR56".into(), "FR57".into(), "FR58".into()],
    };
    c
}
