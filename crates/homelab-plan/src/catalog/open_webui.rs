//! Open WebUI (open-webui chart): a chat interface over the lab's Ollama and vLLM, its data on
//! a volume, behind the lab's TLS and its own login (never the lab's basic auth: its browser
//! code sends `Authorization: Bearer`, which a basic-auth middleware in front would refuse).

use std::collections::BTreeMap;

use serde_json::json;

use super::Ctx;
use crate::meta::{ingress_annotations, labels_map, namespace};
use crate::{
    ChartRef, Component, Endpoint, HealthCheck, HelmRelease, Layer, Runbook, SecretGenerator,
    SecretObject, SecretSource, versions,
};

/// Beside the model servers it talks to.
const NS: &str = "ml";
/// The release, and the chart's name for its workload, Service, Ingress and PVC.
const NAME: &str = "open-webui";
const SECRETS: &str = "open-webui-secrets";
const TLS_SECRET: &str = "open-webui-tls";
/// The key Open WebUI signs its session tokens with; generated once, so logins survive a
/// restart (the image otherwise makes a new one in the container on every start).
const SESSION_KEY: &str = "open-webui-secret-key";
/// Ollama's Service in the cluster (the ollama chart's release `ollama` in `ml`).
const OLLAMA_URL: &str = "http://ollama.ml.svc.cluster.local:11434";
/// The first start downloads the embedding model for documents before `/health` answers.
const STARTUP_PERIOD_SECONDS: u32 = 10;
const STARTUP_FAILURES: u32 = 60;

fn admin_email(ctx: &Ctx, o: &homelab_spec::lab::OpenWebui) -> String {
    o.admin_email
        .clone()
        .unwrap_or_else(|| format!("admin@{}", ctx.domain()))
}

pub(super) fn component(ctx: &Ctx) -> Component {
    let s = &ctx.lab.services;
    let o = s.open_webui.as_ref().expect("planned only when enabled");
    let host = ctx.fqdn(&o.host);
    let mut c = Component::new(NAME, Layer::Applications, Some(NS));
    c.depends_on
        .extend(["nfs".to_string(), "traefik".to_string()]);
    if s.ollama.is_some() {
        c.depends_on.push("ollama".into());
    }
    if s.vllm.is_some() {
        c.depends_on.push("vllm".into());
    }
    c.add("namespace.yaml", namespace(NS, Some("baseline")));

    ctx.need_secret(
        o.admin_password.name(),
        SecretGenerator::Password { length: 32 },
        NAME,
        "password of Open WebUI's admin account (created on its first start)",
    );
    ctx.manual_rotation(
        o.admin_password.name(),
        "Open WebUI reads it only to create the admin account on its first start: change the password in Open WebUI (Settings > Account), then store the same one with `homelab secrets set`".into(),
    );
    ctx.need_secret(
        SESSION_KEY,
        SecretGenerator::Hex { bytes: 32 },
        NAME,
        "key Open WebUI signs login sessions with (a new one logs everyone out)",
    );
    let mut data = BTreeMap::from([
        (
            "WEBUI_ADMIN_PASSWORD".to_string(),
            SecretSource::Secret(o.admin_password.name().into()),
        ),
        (
            "WEBUI_SECRET_KEY".to_string(),
            SecretSource::Secret(SESSION_KEY.into()),
        ),
    ]);
    if s.vllm.is_some() {
        ctx.uses_secret(super::vllm::API_KEY, NAME);
        data.insert(
            "OPENAI_API_KEY".to_string(),
            SecretSource::Secret(super::vllm::API_KEY.into()),
        );
    }
    c.secret_objects.push(SecretObject {
        name: SECRETS.into(),
        namespace: NS.into(),
        data,
        labels: labels_map(NAME, NAME, "chat"),
    });

    let probe = |path: &str, period: u32, failures: u32| json!({"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "failureThreshold": failures});
    let mut values = json!({
        // The chart's own Ollama and Pipelines are off: the lab's services are the backends.
        "ollama": {"enabled": false},
        "pipelines": {"enabled": false},
        "ollamaUrls": if s.ollama.is_some() { json!([OLLAMA_URL]) } else { json!([]) },
        // One replica: the built-in websocket manager instead of the chart's Redis.
        "websocket": {"enabled": true, "manager": "", "redis": {"enabled": false}},
        // A Deployment that lets go of the ReadWriteOnce volume before the new pod starts.
        "workload": {"kind": "Deployment"},
        "strategy": {"type": "Recreate"},
        "persistence": {
            "enabled": true,
            "size": o.storage.to_string(),
            "storageClass": ctx.storage_class,
            "accessModes": ["ReadWriteOnce"],
        },
        "ingress": {
            "enabled": true,
            "class": "traefik",
            "annotations": ingress_annotations(ctx.issuer),
            "host": host,
            "tls": true,
            "existingSecret": TLS_SECRET,
        },
        "extraEnvVars": [
            {"name": "WEBUI_ADMIN_EMAIL", "value": admin_email(ctx, o)},
            {"name": "WEBUI_ADMIN_NAME", "value": "Admin"},
            // Only the admin creates accounts (Admin Panel > Users).
            {"name": "ENABLE_SIGNUP", "value": "False"},
        ],
        "extraEnvFrom": [{"secretRef": {"name": SECRETS}}],
        "startupProbe": probe("/health", STARTUP_PERIOD_SECONDS, STARTUP_FAILURES),
        "readinessProbe": probe("/health/db", 10, 3),
        "livenessProbe": probe("/health", 30, 3),
        "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
    });
    if s.vllm.is_some() {
        values["enableOpenaiApi"] = json!(true);
        values["openaiBaseApiUrl"] = json!(super::vllm::api_url());
        values["openaiApiKeyExistingSecret"] = json!(SECRETS);
        values["openaiApiKeyExistingSecretKey"] = json!("OPENAI_API_KEY");
    } else {
        // Otherwise the chart points it at api.openai.com with a placeholder key.
        values["enableOpenaiApi"] = json!(false);
    }
    let pin = versions::OPEN_WEBUI;
    c.releases.push(HelmRelease {
        name: NAME.into(),
        namespace: NS.into(),
        chart: ChartRef {
            name: pin.dep_name.into(),
            repo: pin.registry_url.into(),
            version: pin.version.into(),
        },
        create_namespace: false,
        values,
    });
    c.endpoints.push(Endpoint {
        name: NAME.into(),
        url: format!("https://{host}"),
        host: host.clone(),
        description: "Open WebUI: chat with the lab's models".into(),
    });
    c.health.push(HealthCheck::HelmChart {
        namespace: "kube-system".into(),
        name: NAME.into(),
    });
    c.health.push(HealthCheck::Pvc {
        namespace: NS.into(),
        name: NAME.into(),
    });
    c.health.push(HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: NS.into(),
        name: NAME.into(),
    });
    c.health.push(HealthCheck::Certificate {
        namespace: NS.into(),
        name: TLS_SECRET.into(),
    });
    c.health.push(HealthCheck::Url {
        url: format!("https://{host}/health"),
        host: host.clone(),
    });
    let backends = match (s.ollama.is_some(), s.vllm.as_ref()) {
        (true, Some(v)) => format!("Ollama's models and vLLM's {}", v.model),
        (true, None) => "Ollama's models".to_string(),
        (false, Some(v)) => format!("vLLM's {}", v.model),
        (false, None) => "no model server".to_string(),
    };
    c.docs = crate::ComponentDocs {
        title: "Open WebUI".into(),
        what: format!("A chat interface in the browser over {backends}; accounts, chats and uploaded documents stay in the lab."),
        why: "The chat front end that speaks both Ollama's API and the OpenAI API vLLM serves, with accounts of its own; the official chart with its bundled Ollama, Pipelines and Redis turned off.".into(),
        access: vec![
            format!("https://{host}: log in as `{}` with `homelab secrets get {}`; sign-up is off, the admin adds accounts (Admin Panel > Users)", admin_email(ctx, o), o.admin_password),
            "Its own login only: the lab's basic auth cannot sit in front of it, because its API calls carry `Authorization: Bearer`.".into(),
        ],
        data: format!("Accounts, chats and documents in PVC {NAME} ({}) on NFS (SQLite).", o.storage),
        backup: "Not in the PostgreSQL dumps: its data is the SQLite database on the NFS volume, covered by the NAS's own snapshots.".into(),
        requirements: vec!["FR37".into(), "FR38".into()],
    };
    c
}

pub(crate) fn runbook(ctx: &Ctx) -> Option<Runbook> {
    let s = &ctx.lab.services;
    let o = s.open_webui.as_ref()?;
    let host = ctx.fqdn(&o.host);
    let title = "Runbook: Open WebUI shows no model or refuses the admin login";
    let mut backends = Vec::new();
    if s.ollama.is_some() {
        backends.push(format!("Ollama at `{OLLAMA_URL}`"));
    }
    if s.vllm.is_some() {
        backends.push(format!(
            "vLLM at `{}` with the key `{}`",
            super::vllm::api_url(),
            super::vllm::API_KEY
        ));
    }
    Some(Runbook {
        name: NAME.into(),
        title: title.into(),
        content: format!(
            "# {title}\n\nOpen WebUI runs in namespace `{NS}` at https://{host} and talks to {backends}. The admin account `{email}` is created on its first start, from the secret `{password}`; sign-up is off.\n\n## Check\n\n1. `homelab status`: are `open-webui` and the model servers healthy?\n2. `kubectl -n {NS} logs deploy/{NAME}`: connection errors to the model servers, the admin account being created.\n3. `kubectl -n {NS} exec deploy/{NAME} -- curl -s {OLLAMA_URL}/api/tags` lists Ollama's models (when Ollama is on).\n\n## Fix\n\n- No model in the list: Ollama has pulled none yet (`services.ollama.models`, then `homelab apply`), or vLLM is still downloading its weights (runbook `vllm`). Open WebUI keeps the connections it was first started with: check them in Admin Panel > Settings > Connections.\n- `401` from vLLM in the log: the key changed after the first start; paste `homelab secrets get {vllm_key}` into the OpenAI connection in Admin Panel > Settings > Connections.\n- The admin login is refused: the account was created with the password of the first start and changing the secret later does not change it. Reset it in the database: `kubectl -n {NS} exec deploy/{NAME} -- python -c \"import bcrypt,sqlite3,sys; db=sqlite3.connect('/app/backend/data/webui.db'); db.execute('update auth set password=? where email=?', (bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt()).decode(), sys.argv[2])); db.commit()\" \"$(homelab secrets get {password})\" {email}`.\n- Logged out after every restart: the secret `{SESSION_KEY}` is missing from the secrets file; `homelab secrets init` makes it, then `homelab apply`.\n- Do not put `auth: basic` or another basic-auth middleware in front of it: its API calls send `Authorization: Bearer` and the middleware answers them with `401`.\n",
            backends = if backends.is_empty() {
                "no model server".to_string()
            } else {
                backends.join(" and ")
            },
            email = admin_email(ctx, o),
            password = o.admin_password,
            vllm_key = super::vllm::API_KEY,
        ),
    })
}
