//! `auth.sso` in both flavors: Authelia's release with the values its chart reads, the
//! ForwardAuth Middleware and annotation on every guarded Ingress (and not on the ones with a
//! login of their own), the users file decrypted from the SOPS Secret holding only argon2id
//! hashes that verify the secrets file's passwords, the runbook, and none of it without
//! `auth.sso`.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::common::*;
use crate::flux::Lab;
use crate::validators::{build_layers, kubernetes_version, layers_of, validate_objects};

const ADDRESS: &str = "http://authelia.auth.svc.cluster.local/api/authz/forward-auth";

fn find<'a>(objects: &'a [Value], kind: &str, ns: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"] == name
                && (ns.is_empty() || o["metadata"]["namespace"] == ns)
        })
        .unwrap_or_else(|| panic!("no {kind} {ns}/{name}"))
}

fn check_values(values: &Value, domain: &str) {
    assert_eq!(values["pod"]["kind"], "Deployment");
    assert_eq!(values["pod"]["replicas"], 1);
    assert_eq!(values["secret"]["existingSecret"], "authelia-secrets");
    assert_eq!(
        values["secret"]["additionalSecrets"],
        json!({"authelia-users": {"items": [{"key": "users_database.yml", "path": "users_database.yml"}]}})
    );
    let cm = &values["configMap"];
    // The chart mounts additionalSecrets at /secrets/<name>.
    assert_eq!(
        cm["authentication_backend"]["file"]["path"],
        "/secrets/authelia-users/users_database.yml"
    );
    assert_eq!(cm["authentication_backend"]["file"]["enabled"], true);
    assert_eq!(
        cm["authentication_backend"]["password_reset"]["disable"],
        true
    );
    assert_eq!(
        cm["session"]["cookies"],
        json!([{"domain": domain, "subdomain": "auth"}])
    );
    assert_eq!(cm["access_control"]["default_policy"], "deny");
    assert_eq!(
        cm["access_control"]["rules"],
        json!([{"domain": [format!("*.{domain}"), domain], "policy": "two_factor"}])
    );
    assert_eq!(cm["totp"]["disable"], false);
    assert_eq!(cm["storage"]["local"]["enabled"], true);
    assert_eq!(cm["notifier"]["filesystem"]["enabled"], true);
    assert_eq!(values["ingress"]["tls"]["secret"], "authelia-tls");
}

/// The Ingress names the ForwardAuth Middleware of its own namespace, which exists there.
fn guarded(objects: &[Value], ns: &str, ingress: &str) {
    let ing = find(objects, "Ingress", ns, ingress);
    assert_eq!(
        ing["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"],
        format!("{ns}-sso-forward-auth@kubernetescrd"),
        "{ns}/{ingress}"
    );
    let mw = find(objects, "Middleware", ns, "sso-forward-auth");
    assert_eq!(mw["spec"]["forwardAuth"]["address"], ADDRESS);
    assert_eq!(mw["spec"]["forwardAuth"]["trustForwardHeader"], true);
    assert_eq!(
        mw["spec"]["forwardAuth"]["authResponseHeaders"],
        json!([
            "Remote-User",
            "Remote-Groups",
            "Remote-Name",
            "Remote-Email"
        ])
    );
}

fn chart_values(objects: &[Value], name: &str) -> Value {
    let chart = find(objects, "HelmChart", "", name);
    yaml_value(chart["spec"]["valuesContent"].as_str().unwrap())
}

#[test]
fn the_k3s_tree_guards_every_service_without_a_login_of_its_own() {
    let spec = sso_spec();
    let plan = plan_of(&spec);
    let (_tmp, objects) = layers_of(&spec);
    let chart = find(&objects, "HelmChart", "", "authelia");
    assert_eq!(chart["spec"]["targetNamespace"], "auth");
    assert_eq!(chart["spec"]["version"], "0.11.5");
    assert_eq!(chart["spec"]["repo"], "https://charts.authelia.com");
    check_values(&chart_values(&objects, "authelia"), &plan.domain);

    // An app (by default), the dev proxy, Prometheus and Alertmanager.
    guarded(&objects, "apps", "whoami");
    guarded(&objects, "dev", "nginx-proxy");
    let kps = chart_values(&objects, "kube-prometheus-stack");
    for part in ["prometheus", "alertmanager"] {
        assert_eq!(
            kps[part]["ingress"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"],
            "monitoring-sso-forward-auth@kubernetescrd",
            "{part}"
        );
    }
    find(&objects, "Middleware", "monitoring", "sso-forward-auth");
    // The dashboard's basic auth no longer guards them.
    assert!(
        !objects
            .iter()
            .any(|o| o["kind"] == "Middleware" && o["metadata"]["name"] == "monitoring-basic-auth")
    );
    // Ollama's API, through its chart's ingress.
    let ollama = chart_values(&objects, "ollama");
    assert_eq!(
        ollama["ingress"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"],
        "ml-sso-forward-auth@kubernetescrd"
    );
    find(&objects, "Middleware", "ml", "sso-forward-auth");

    // Services with a login of their own stay as they are.
    let mealie = find(&objects, "Ingress", "apps", "mealie");
    assert!(
        mealie["metadata"]["annotations"]
            .get("traefik.ingress.kubernetes.io/router.middlewares")
            .is_none(),
        "`auth: none` keeps the app's own login"
    );
    let grafana = &kps["grafana"]["ingress"]["annotations"];
    assert!(
        grafana
            .get("traefik.ingress.kubernetes.io/router.middlewares")
            .is_none()
    );
    // The plan says where to log in.
    let sso = plan.urls().find(|u| u.name == "sso").unwrap();
    assert_eq!(sso.url, format!("https://auth.{}", plan.domain));
    validate_objects(&objects, &kubernetes_version(&spec));
}

#[test]
fn the_flux_tree_carries_the_release_and_only_hashes_of_the_passwords() {
    let spec = sso_spec();
    let lab = Lab::new(&spec);
    let out = lab.dir.path().join("tree");
    lab.render_into(&out);
    let leaks = lab.canaries.check_dir(&out).unwrap();
    assert!(leaks.is_empty(), "secret values in the tree: {leaks:?}");

    let objects: Vec<Value> = build_layers(&out)
        .into_iter()
        .filter(|o| o["kind"] != "Secret")
        .collect();
    let hr = find(&objects, "HelmRelease", "auth", "authelia");
    check_values(&hr["spec"]["values"], &lab.plan.domain);
    guarded(&objects, "apps", "whoami");
    validate_objects(&objects, &kubernetes_version(&spec));

    // The users file, decrypted as Flux does: each user with a hash of their password from
    // the secrets file, never the password.
    let path = out.join("infrastructure/authelia/secret-authelia-users.sops.yaml");
    let plain = homelab_secrets::decrypt_file(&path, &lab.identities).unwrap();
    let secret = yaml_value(plain.expose_secret());
    let text = secret["stringData"]["users_database.yml"].as_str().unwrap();
    let users = yaml_value(text);
    let alice = &users["users"]["alice"];
    assert_eq!(alice["displayname"], "Alice Smith");
    assert_eq!(alice["email"], format!("alice@{}", lab.plan.domain));
    assert_eq!(alice["groups"], json!(["admins"]));
    assert_eq!(alice["disabled"], false);
    assert_eq!(users["users"]["bob"]["email"], "bob@example.org");
    assert_eq!(users["users"]["bob"]["displayname"], "bob");
    for name in ["alice", "bob"] {
        let hash = users["users"][name]["password"].as_str().unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"),
            "{hash}"
        );
        let password = lab
            .canaries
            .value(&format!("sso-user-{name}-password"))
            .unwrap();
        assert!(!text.contains(password.expose_secret()));
        assert!(homelab_secrets::generate::verify_argon2id(
            &SecretString::from(hash.to_string()),
            password
        ));
    }
    // The keys Authelia reads from /secrets.
    let path = out.join("infrastructure/authelia/secret-authelia-secrets.sops.yaml");
    let plain = homelab_secrets::decrypt_file(&path, &lab.identities).unwrap();
    let secret = yaml_value(plain.expose_secret());
    for (key, name) in [
        (
            "identity_validation.reset_password.jwt.hmac.key",
            "authelia-jwt-secret",
        ),
        ("session.encryption.key", "authelia-session-key"),
        ("storage.encryption.key", "authelia-storage-key"),
    ] {
        assert_eq!(
            secret["stringData"][key].as_str().unwrap(),
            lab.canaries.value(name).unwrap().expose_secret(),
            "{key}"
        );
    }
}

#[test]
fn the_secrets_are_generated_and_the_hash_follows_its_password() {
    let plan = plan_of(&sso_spec());
    let need = |name: &str| {
        plan.secrets
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no secret {name}"))
    };
    for name in [
        "authelia-jwt-secret",
        "authelia-session-key",
        "authelia-storage-key",
        "sso-user-alice-password",
        "sso-user-bob-password",
    ] {
        assert!(matches!(
            need(name).generator,
            homelab_plan::SecretGenerator::Password { .. }
        ));
    }
    assert!(matches!(
        &need("sso-user-alice-hash").generator,
        homelab_plan::SecretGenerator::Argon2id { password_secret } if password_secret == "sso-user-alice-password"
    ));
    assert!(need("authelia-storage-key").manual_rotation.is_some());
}

#[test]
fn the_runbook_covers_a_lost_password_a_lost_phone_and_a_portal_that_is_down() {
    let plan = plan_of(&sso_spec());
    let tree = render_k3s(&plan);
    let text = tree.text("docs/runbooks/sso-locked-out.md").unwrap();
    for part in [
        "## The password is refused",
        "homelab secrets set sso-user-NAME-password",
        "authelia storage bans user revoke NAME",
        "## The TOTP code is refused or the phone is lost",
        "authelia storage user totp delete NAME",
        "/config/notification.txt",
        "## The login page does not load",
        &format!("https://auth.{}", plan.domain),
    ] {
        assert!(text.contains(part), "{part}\n{text}");
    }
}

#[test]
fn a_lab_without_sso_has_none_of_it_and_keeps_basic_auth() {
    let (_tmp, objects) = layers_of(SEED);
    assert!(
        !objects
            .iter()
            .any(|o| o["kind"] == "HelmChart" && o["metadata"]["name"] == "authelia")
    );
    assert!(
        !objects
            .iter()
            .any(|o| o["kind"] == "Middleware" && o["metadata"]["name"] == "sso-forward-auth")
    );
    find(
        &objects,
        "Middleware",
        "monitoring",
        "monitoring-basic-auth",
    );
    let plan = seed_plan();
    assert!(!plan.secrets.iter().any(|s| s.name.starts_with("authelia-")));
    assert!(!plan.runbooks.iter().any(|r| r.name == "sso-locked-out"));
    let proxy = find(&objects, "Ingress", "dev", "nginx-proxy");
    assert!(
        proxy["metadata"]["annotations"]
            .get("traefik.ingress.kubernetes.io/router.middlewares")
            .is_none()
    );
}

/// The reviewed text of what single sign-on adds to the k3s tree: Authelia's directory, every
/// ForwardAuth Middleware, the guarded Ingresses and the runbook.
#[test]
fn sso_tree_snapshot() {
    let tree = render_k3s(&plan_of(&sso_spec()));
    let mut out = String::new();
    for (path, file) in tree.iter() {
        let text = match &file.content {
            homelab_render::Content::Text(t) => t.as_str(),
            homelab_render::Content::Sops(_) => continue,
        };
        let wanted = path.starts_with("infrastructure/authelia/")
            || path.ends_with("/sso.yaml")
            || path == "docs/runbooks/sso-locked-out.md"
            || (path.ends_with("ingress.yaml") && text.contains("sso-forward-auth"));
        if wanted {
            out.push_str(&format!("=== {path} (mode {:o})\n{text}", file.mode));
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    insta::assert_snapshot!("sso-k3s-tree", out);
}
