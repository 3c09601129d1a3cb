//! n8n (community-charts) on the lab's PostgreSQL, with its own database and role.

use std::collections::BTreeMap;

use serde_json::json;

use super::Ctx;
use crate::meta::{labels_map, namespace};
use crate::{
    ChartRef, Component, Endpoint, HealthCheck, HelmRelease, Layer, SecretGenerator, SecretObject,
    SecretSource, versions,
};

const NS: &str = "apps";

pub(super) fn component(ctx: &Ctx) -> Component {
    let lab = ctx.lab;
    let n = lab
        .services
        .n8n
        .as_ref()
        .expect("planned only when enabled");
    let db = lab
        .services
        .postgres
        .as_ref()
        .and_then(|p| p.databases.iter().find(|d| d.name == n.database))
        .expect("validation guarantees the database exists");
    let host = ctx.fqdn(&n.host);
    let mut c = Component::new("n8n", Layer::Applications, Some(NS));
    c.depends_on
        .extend(["postgres".to_string(), "traefik".to_string()]);
    c.add("namespace.yaml", namespace(NS, Some("baseline")));
    ctx.need_secret(
        n.encryption_key.name(),
        SecretGenerator::Hex { bytes: 32 },
        "n8n",
        "key n8n encrypts stored credentials with (keep it: without it they cannot be read)",
    );
    ctx.manual_rotation(
        n.encryption_key.name(),
        "n8n encrypts the stored credentials with this key and cannot re-encrypt them: export them decrypted (`n8n export:credentials --all --decrypted`), set the new key, re-apply, and import them (`n8n import:credentials`)".into(),
    );
    ctx.need_secret(
        db.password.name(),
        SecretGenerator::Password { length: 32 },
        "n8n",
        &format!("password of the PostgreSQL role `{}`", db.owner),
    );
    c.secret_objects.push(SecretObject {
        name: "n8n-secrets".into(),
        namespace: NS.into(),
        data: BTreeMap::from([
            (
                "N8N_ENCRYPTION_KEY".to_string(),
                SecretSource::Secret(n.encryption_key.name().into()),
            ),
            (
                "postgres-password".to_string(),
                SecretSource::Secret(db.password.name().into()),
            ),
        ]),
        labels: labels_map("n8n", "n8n", "workflow"),
    });
    let pin = versions::N8N;
    c.releases.push(HelmRelease {
        name: "n8n".into(),
        namespace: NS.into(),
        chart: ChartRef { name: pin.dep_name.into(), repo: pin.registry_url.into(), version: pin.version.into() },
        create_namespace: false,
        values: json!({
            "db": {"type": "postgresdb"},
            "externalPostgresql": {
                "host": "postgres.data.svc.cluster.local",
                "port": 5432,
                "username": db.owner,
                "database": db.name,
                "existingSecret": "n8n-secrets",
            },
            "existingEncryptionKeySecret": "n8n-secrets",
            "extraSecretNamesForEnvFrom": ["n8n-secrets"],
            "webhook": {"url": format!("https://{host}")},
            "extraEnvVars": {"N8N_HOST": host, "N8N_PROTOCOL": "https", "N8N_PORT": "5678"},
            "diagnostics": {"enabled": false},
            "versionNotifications": {"enabled": false},
            "ingress": crate::meta::chart_ingress(&host, "n8n-tls", ctx.issuer),
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        }),
    });
    c.endpoints.push(Endpoint {
        name: "n8n".into(),
        url: format!("https://{host}"),
        host: host.clone(),
        description: "n8n workflow editor and webhooks".into(),
    });
    c.health.push(HealthCheck::HelmChart {
        namespace: "kube-system".into(),
        name: "n8n".into(),
    });
    c.health.push(HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: NS.into(),
        name: "n8n".into(),
    });
    c.health.push(HealthCheck::Certificate {
        namespace: NS.into(),
        name: "n8n-tls".into(),
    });
    c.health.push(HealthCheck::Url {
        url: format!("https://{host}"),
        host: host.clone(),
    });
    c.docs = crate::ComponentDocs {
        title: "n8n".into(),
        what: format!("Workflow automation with a visual editor; stores workflows and credentials in the PostgreSQL database `{}` (role `{}`).", db.name, db.owner),
        why: "Self-hosted automation that can call Ollama and anything with an API; PostgreSQL instead of SQLite keeps its data in the nightly verified backups.".into(),
        access: vec![format!("https://{host} (create the owner account on first visit)")],
        data: format!("Workflows, executions and encrypted credentials in PostgreSQL `{}`; the encryption key is the secret `{}`.", db.name, n.encryption_key),
        backup: format!("The PostgreSQL dumps of `{}`; keep the secrets file (with `{}`) too, or the restored credentials cannot be decrypted.", db.name, n.encryption_key),
        requirements: vec!["FR40".into()],
    };
    c
}
