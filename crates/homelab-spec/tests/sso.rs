//! `auth.sso` in the spec: its defaults, which apps it guards, and every wrong input reported
//! with its code at file:line:col and what to write instead.

mod common;

use common::{errors, load, messages};
use homelab_spec::raw::AppAuth;

/// A small lab with `apps` and the top-level `auth` section `auth` (both may be empty).
fn spec(apps: &str, auth: &str) -> String {
    format!(
        "name: lab
network:
  subnet: 192.168.2.0/24
  gateway: 192.168.2.1
  domain: home.example.com
  loadBalancerPool: 192.168.2.100-192.168.2.120
cluster:
  k3sVersion: v1.34.2+k3s1
  nodes:
    - name: k3s-master
      role: server
      address: 192.168.2.20
tls:
  acmeEmail: you@example.com
  challenge: {{type: dns01, provider: cloudflare, apiToken: {{secret: cloudflare-api-token}}}}
apps:
{apps}
{auth}"
    )
}

const APPS: &str = "  - {name: whoami, image: docker.io/traefik/whoami:v1.10.3, port: 80}
  - {name: mealie, image: ghcr.io/mealie-recipes/mealie:v2.3.0, port: 9000, auth: none}
  - {name: worker, image: docker.io/library/busybox:1.37, port: 8080, host: none}";

const ONE_USER: &str = "auth:\n  sso:\n    provider: authelia\n    users:\n      - name: alice\n";

#[test]
fn one_user_is_enough_and_the_defaults_fill_the_rest() {
    let lab = load(&spec(APPS, ONE_USER)).lab;
    let sso = lab.auth.sso.expect("sso");
    assert_eq!(sso.host, "auth");
    assert!(!sso.totp);
    let alice = &sso.users[0];
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.display_name, "alice");
    assert_eq!(alice.email, "alice@home.example.com");
    assert!(alice.groups.is_empty());
    assert_eq!(alice.password_secret(), "sso-user-alice-password");
    assert_eq!(alice.hash_secret(), "sso-user-alice-hash");
    // Apps are behind it unless they say `none`; one without a web address has nothing to guard.
    let auth: Vec<(&str, AppAuth)> = lab.apps.iter().map(|a| (a.name.as_str(), a.auth)).collect();
    assert_eq!(
        auth,
        [
            ("whoami", AppAuth::Sso),
            ("mealie", AppAuth::None),
            ("worker", AppAuth::None)
        ]
    );
}

#[test]
fn without_sso_apps_keep_no_login_by_default() {
    let lab = load(&spec(APPS, "")).lab;
    assert!(lab.auth.sso.is_none());
    assert!(lab.apps.iter().all(|a| a.auth == AppAuth::None));
}

#[test]
fn its_settings_are_read_as_written() {
    let lab = load(&spec(
        APPS,
        "auth:\n  sso:\n    provider: authelia\n    host: login\n    totp: true\n    users:\n      - {name: alice, displayName: Alice Smith, email: a@example.org, groups: [admins, admins, family]}\n      - {name: bob.k}\n",
    ))
    .lab;
    let sso = lab.auth.sso.unwrap();
    assert_eq!(sso.host, "login");
    assert!(sso.totp);
    assert_eq!(sso.users[0].display_name, "Alice Smith");
    assert_eq!(sso.users[0].email, "a@example.org");
    assert_eq!(sso.users[0].groups, ["admins", "family"]);
    assert_eq!(sso.users[1].name, "bob.k");
}

#[test]
fn no_users_would_lock_everyone_out() {
    let text = spec(APPS, "auth:\n  sso:\n    provider: authelia\n");
    assert_eq!(errors(&text), ["sso-no-users 22:5"]);
    assert!(messages(&text).contains("users: [{name: alice}]"));
    let text = spec(
        APPS,
        "auth:\n  sso:\n    provider: authelia\n    users: []\n",
    );
    assert_eq!(errors(&text), ["sso-no-users 22:5"]);
}

#[test]
fn the_provider_is_required_and_only_authelia_is_known() {
    let text = spec(APPS, "auth:\n  sso:\n    users: [{name: alice}]\n");
    assert_eq!(errors(&text), ["missing-key 22:5"]);
    assert!(
        messages(&text).contains("provider: authelia"),
        "{}",
        messages(&text)
    );
    let text = spec(
        APPS,
        "auth:\n  sso:\n    provider: keycloak\n    users: [{name: alice}]\n",
    );
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].ends_with(" 22:15"), "{e:?}");
    assert!(messages(&text).contains("authelia"), "{}", messages(&text));
}

#[test]
fn bad_user_entries_are_reported_where_they_are_written() {
    let text = spec(
        APPS,
        "auth:\n  sso:\n    provider: authelia\n    users:\n      - {name: Alice}\n      - {name: bob, email: not-an-address}\n      - {name: carol, groups: [\"a b\"]}\n      - {name: dave, displayName: \"  \"}\n      - {name: bob}\n      - {displayName: Nobody}\n",
    );
    assert_eq!(
        errors(&text),
        [
            "sso-user-name 24:16",
            "sso-email 25:28",
            "sso-group 26:32",
            "sso-display-name 27:35",
            "sso-duplicate-user 28:16",
            "missing-key 29:9",
        ]
    );
    let m = messages(&text);
    for part in [
        "`Alice` is not a login name",
        "`not-an-address` is not an e-mail address",
        "`a b` is not a group name",
        "two users are named `bob`",
    ] {
        assert!(m.contains(part), "{part}\n{m}");
    }
}

#[test]
fn an_unknown_key_names_the_one_meant() {
    let text = spec(
        APPS,
        "auth:\n  sso:\n    provider: authelia\n    totpp: true\n    users: [{name: alice}]\n",
    );
    assert_eq!(errors(&text), ["unknown-key 23:5"]);
    assert!(messages(&text).contains("totp"), "{}", messages(&text));
}

#[test]
fn auth_sso_on_an_app_needs_the_labs_sso_and_a_web_address() {
    let apps = "  - {name: whoami, image: docker.io/traefik/whoami:v1.10.3, port: 80, auth: sso}";
    let text = spec(apps, "");
    assert_eq!(errors(&text), ["sso-not-configured 17:77"]);
    assert!(
        messages(&text).contains("auth: {sso: {provider: authelia"),
        "{}",
        messages(&text)
    );
    let apps = "  - {name: whoami, image: docker.io/traefik/whoami:v1.10.3, port: 80, auth: sso, host: none}";
    let text = spec(apps, ONE_USER);
    assert_eq!(errors(&text), ["auth-without-host 17:77"]);
    assert!(
        messages(&text).contains("`auth: sso`"),
        "{}",
        messages(&text)
    );
}

#[test]
fn the_portals_host_may_not_be_another_services_nor_an_invalid_name() {
    let apps = "  - {name: auth, image: docker.io/traefik/whoami:v1.10.3, port: 80, auth: none}";
    let text = spec(apps, ONE_USER);
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("duplicate-host "), "{e:?}");
    assert!(
        messages(&text).contains("single sign-on portal"),
        "{}",
        messages(&text)
    );
    let text = spec(
        APPS,
        "auth:\n  sso:\n    provider: authelia\n    host: Not_A_Host\n    users: [{name: alice}]\n",
    );
    assert_eq!(errors(&text), ["invalid-host-name 23:11"]);
}
