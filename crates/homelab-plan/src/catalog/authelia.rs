//! Single sign-on (`auth.sso`): Authelia from its chart as the one login page at
//! `auth.<domain>`, its users' argon2id hashes in a SOPS-encrypted Secret, and the Traefik
//! ForwardAuth Middleware every guarded Ingress names. Never holds a password: only the names
//! of the secrets they are made from.

use std::collections::BTreeMap;

use homelab_spec::lab::Sso;
use serde_json::{Value, json};

use super::Ctx;
use crate::meta::{labels, labels_map, metadata, namespace};
use crate::{
    ChartRef, Component, Endpoint, HealthCheck, HelmRelease, Layer, SecretGenerator, SecretObject,
    SecretSource, versions,
};

pub(crate) const NS: &str = "auth";
const RELEASE: &str = "authelia";
/// The Secret the chart mounts at /secrets (`secret.existingSecret`), under the keys the chart
/// reads at its default paths.
const SECRETS: &str = "authelia-secrets";
/// The users database, mounted beside it (`secret.additionalSecrets`).
const USERS: &str = "authelia-users";
const USERS_KEY: &str = "users_database.yml";
const TLS_SECRET: &str = "authelia-tls";
/// The unprivileged user and group the portal runs as.
const USER_ID: u32 = 8000;
/// The ForwardAuth Middleware's name in each namespace that uses it: Traefik resolves an
/// Ingress's middlewares by `<namespace>-<name>`, one copy per namespace keeps each Ingress's
/// reference inside its own namespace, as the basic-auth middlewares are.
pub(crate) const MIDDLEWARE: &str = "sso-forward-auth";

pub(crate) const JWT_SECRET: &str = "authelia-jwt-secret";
pub(crate) const SESSION_KEY: &str = "authelia-session-key";
pub(crate) const STORAGE_KEY: &str = "authelia-storage-key";

/// The headers Authelia answers a successful check with, passed on to the app.
const RESPONSE_HEADERS: &[&str] = &[
    "Remote-User",
    "Remote-Groups",
    "Remote-Name",
    "Remote-Email",
];

/// The lab's single sign-on, when the spec has one.
pub(crate) fn sso<'a>(ctx: &Ctx<'a>) -> Option<&'a Sso> {
    ctx.lab.auth.sso.as_ref()
}

/// Authelia's authorization endpoint for Traefik, inside the cluster.
pub(crate) fn forward_auth_address() -> String {
    format!("http://{RELEASE}.{NS}.svc.cluster.local/api/authz/forward-auth")
}

/// The ForwardAuth Middleware for namespace `ns` (owned by `component`), and the value of the
/// `router.middlewares` annotation that puts an Ingress behind it.
pub(crate) fn middleware(ns: &str, component: &str) -> (Value, String) {
    (
        json!({
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": metadata(MIDDLEWARE, Some(ns), labels(component, MIDDLEWARE, "ingress")),
            "spec": {"forwardAuth": {
                "address": forward_auth_address(),
                // Traefik is the only way in, so the X-Forwarded-* it sets are the truth.
                "trustForwardHeader": true,
                "authResponseHeaders": RESPONSE_HEADERS,
            }},
        }),
        format!("{ns}-{MIDDLEWARE}@kubernetescrd"),
    )
}

pub(super) fn component(ctx: &Ctx) -> Component {
    let sso = sso(ctx).expect("planned only with auth.sso");
    let host = ctx.fqdn(&sso.host);
    let domain = ctx.domain();
    let mut c = Component::new("authelia", Layer::Infrastructure, Some(NS));
    c.depends_on
        .extend(["traefik".to_string(), "cert-manager".to_string()]);
    c.add("namespace.yaml", namespace(NS, Some("restricted")));
    let policy = if sso.totp { "two_factor" } else { "one_factor" };
    let values = json!({
        // One replica on a volume: the SQLite database (TOTP registrations, bans) is not
        // shared, so a second pod would have its own.
        "pod": {
            "kind": "Deployment",
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            // The image runs as any user; a non-root one keeps the namespace `restricted`, and
            // the group owns the volume.
            "securityContext": {
                "pod": {"fsGroup": USER_ID},
                "container": crate::meta::restricted_security_context(USER_ID),
            },
            "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        },
        "ingress": {
            "enabled": true,
            "className": "traefik",
            "annotations": crate::meta::ingress_annotations(ctx.issuer),
            "tls": {"enabled": true, "secret": TLS_SECRET},
        },
        "secret": {
            "existingSecret": SECRETS,
            "additionalSecrets": {USERS: {"items": [{"key": USERS_KEY, "path": USERS_KEY}]}},
        },
        "persistence": {"enabled": true, "storageClass": ctx.storage_class, "size": "100Mi"},
        "configMap": {
            "totp": {"disable": !sso.totp, "issuer": domain},
            "authentication_backend": {
                // The secrets file is where passwords live: a password changed in the portal
                // would be lost at the next apply, so the portal offers neither.
                "password_reset": {"disable": true},
                "password_change": {"disable": true},
                "file": {
                    "enabled": true,
                    "path": format!("/secrets/{USERS}/{USERS_KEY}"),
                    // A new password reaches the mounted Secret without a restart.
                    "watch": true,
                },
            },
            "access_control": {
                "default_policy": "deny",
                "rules": [{"domain": [format!("*.{domain}"), domain], "policy": policy}],
            },
            "session": {"cookies": [{"domain": domain, "subdomain": sso.host}]},
            "storage": {"local": {"enabled": true, "path": "/config/db.sqlite3"}},
            // No mail server: one-time codes are written to a file on the volume (the
            // sso-locked-out runbook reads it).
            "notifier": {"filesystem": {"enabled": true, "filename": "/config/notification.txt"}},
        },
    });
    let pin = versions::AUTHELIA;
    c.releases.push(HelmRelease {
        name: RELEASE.into(),
        namespace: NS.into(),
        chart: ChartRef {
            name: pin.dep_name.into(),
            repo: pin.registry_url.into(),
            version: pin.version.into(),
        },
        create_namespace: false,
        values,
    });
    for (name, description) in [
        (
            JWT_SECRET,
            "HMAC key of Authelia's identity-verification tokens",
        ),
        (SESSION_KEY, "encryption key of Authelia's session cookies"),
        (
            STORAGE_KEY,
            "encryption key of Authelia's database (TOTP secrets)",
        ),
    ] {
        ctx.need_secret(
            name,
            SecretGenerator::Password { length: 64 },
            "authelia",
            description,
        );
    }
    ctx.manual_rotation(
        STORAGE_KEY,
        format!("the database is encrypted with the old key: run `kubectl -n {NS} exec deploy/{RELEASE} -- authelia storage encryption change-key --new-encryption-key NEW` with the new value first, then `homelab secrets set {STORAGE_KEY}` and `homelab apply`"),
    );
    c.secret_objects.push(SecretObject {
        name: SECRETS.into(),
        namespace: NS.into(),
        data: BTreeMap::from([
            (
                "identity_validation.reset_password.jwt.hmac.key".to_string(),
                SecretSource::Secret(JWT_SECRET.into()),
            ),
            (
                "session.encryption.key".to_string(),
                SecretSource::Secret(SESSION_KEY.into()),
            ),
            (
                "storage.encryption.key".to_string(),
                SecretSource::Secret(STORAGE_KEY.into()),
            ),
        ]),
        labels: labels_map("authelia", SECRETS, "sso"),
    });
    for u in &sso.users {
        ctx.need_secret(
            &u.password_secret(),
            SecretGenerator::Password { length: 24 },
            "authelia",
            &format!("password of the single sign-on user `{}`", u.name),
        );
        ctx.need_secret(
            &u.hash_secret(),
            SecretGenerator::Argon2id {
                password_secret: u.password_secret(),
            },
            "authelia",
            &format!(
                "argon2id hash of {}, the only form Authelia sees",
                u.password_secret()
            ),
        );
    }
    c.secret_objects.push(SecretObject {
        name: USERS.into(),
        namespace: NS.into(),
        data: BTreeMap::from([(
            USERS_KEY.to_string(),
            SecretSource::Template(users_database(sso)),
        )]),
        labels: labels_map("authelia", USERS, "sso"),
    });
    c.endpoints.push(Endpoint {
        name: "sso".into(),
        url: format!("https://{host}"),
        host: host.clone(),
        description: "single sign-on login page (Authelia)".into(),
    });
    c.health.push(HealthCheck::HelmChart {
        namespace: "kube-system".into(),
        name: RELEASE.into(),
    });
    c.health.push(HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: NS.into(),
        name: RELEASE.into(),
    });
    c.health.push(HealthCheck::Certificate {
        namespace: NS.into(),
        name: TLS_SECRET.into(),
    });
    c.health.push(HealthCheck::Url {
        url: format!("https://{host}/api/health"),
        host: host.clone(),
    });
    let users: Vec<String> = sso
        .users
        .iter()
        .map(|u| {
            format!(
                "`{}`: password `homelab secrets get {}`",
                u.name,
                u.password_secret()
            )
        })
        .collect();
    let mut access = vec![format!(
        "https://{host}: the login page every guarded address sends you to{}",
        if sso.totp {
            "; after the password, a code from an authenticator app (registered at the first login)"
        } else {
            ""
        }
    )];
    access.extend(users);
    access.push("A new password: `homelab secrets set sso-user-NAME-password` (its hash follows), then `homelab apply`; runbook sso-locked-out".into());
    c.docs = crate::ComponentDocs {
        title: "Single sign-on (Authelia)".into(),
        what: format!(
            "One login page at {host} in front of every service without a login of its own: Traefik asks Authelia (ForwardAuth) before each request, and a session cookie for {domain} lets one login count for all of them."
        ),
        why: "The lab's apps, the dev proxy, Ollama's API, Prometheus and Alertmanager have no login of their own; one portal with one password per person (and TOTP when asked for) guards them all, with the passwords in the encrypted secrets file and only their argon2id hashes in the cluster.".into(),
        access,
        data: "A 100Mi volume: the SQLite database of TOTP registrations and login bans, and the notification file of one-time codes.".into(),
        backup: "Not backed up: users and passwords come from homelab.yaml and the secrets file; a lost volume means registering TOTP again.".into(),
        requirements: vec!["NFR9".into()],
    };
    c
}

/// Authelia's users file with a `${secret:…}` placeholder for each hash, filled in when the
/// Secret is rendered (and encrypted).
fn users_database(sso: &Sso) -> String {
    let mut users = serde_json::Map::new();
    for u in &sso.users {
        users.insert(
            u.name.clone(),
            json!({
                "disabled": false,
                "displayname": u.display_name,
                "password": format!("${{secret:{}}}", u.hash_secret()),
                "email": u.email,
                "groups": u.groups,
            }),
        );
    }
    homelab_spec::emit::to_yaml(&json!({"users": users}))
}

/// The runbook for a user who cannot get past the login page.
pub(crate) fn runbook(ctx: &Ctx) -> Option<crate::Runbook> {
    let sso = sso(ctx)?;
    let host = ctx.fqdn(&sso.host);
    let title = "Runbook: SSO locked out";
    Some(crate::Runbook {
        name: "sso-locked-out".into(),
        title: title.into(),
        content: format!(
            "# {title}\n\nEvery guarded address sends you to https://{host}. You are locked out when the page refuses your password, asks for a TOTP code you cannot give, or does not load at all.\n\n## The password is refused\n\n1. Read the password the lab knows: `homelab secrets get sso-user-NAME-password` (login names are in homelab.yaml under `auth.sso.users`). Passwords cannot be changed in the portal: the secrets file is the source.\n2. Set a new one if it was lost or leaked: `homelab secrets set sso-user-NAME-password` (its argon2id hash `sso-user-NAME-hash` is recomputed with it), then `homelab apply`. Authelia reads the users file again within a minute, without a restart.\n3. Still refused after too many attempts: Authelia bans a user for 5 minutes after 3 failures within 2 minutes. Wait, or clear the ban: `kubectl -n {NS} exec deploy/{RELEASE} -- authelia storage bans user revoke NAME`.\n\n## The TOTP code is refused or the phone is lost\n\n- Codes depend on the time: the phone's clock and the nodes' must agree within 30 seconds (`timedatectl` on a node).\n- Register a new device: delete the old registration with `kubectl -n {NS} exec deploy/{RELEASE} -- authelia storage user totp delete NAME`, log in with the password, and register again. The one-time code that registration asks for is not mailed: read it from the portal's notification file, `kubectl -n {NS} exec deploy/{RELEASE} -- cat /config/notification.txt`.\n\n## The login page does not load\n\n- `homelab status` shows the `{RELEASE}` Deployment in `{NS}` and the certificate `{TLS_SECRET}`; `kubectl -n {NS} logs deploy/{RELEASE}` says why it stopped (a configuration error names the key).\n- A missing or damaged Secret `{SECRETS}` or `{USERS}` comes back with `homelab apply`.\n- While the portal is down every guarded address answers with an error. To reach one anyway, remove its guard for the time being: give the app `auth: none` (or take `auth.sso` out of homelab.yaml) and `homelab apply`; put it back when the portal answers again. The Traefik dashboard keeps its own login (`homelab secrets get traefik-dashboard-password`), so it stays reachable to look at the routes.\n"
        ),
    })
}
