//! `services.openbao` in the spec: its defaults, its settings read as written, and every wrong
//! input reported with its code at file:line:col.

mod common;

use common::{errors, load, messages};

/// A small lab whose `services:` section is `services`.
fn spec(services: &str) -> String {
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
storage:
  nfs: {{server: 192.168.2.2, path: /volume1/k8s-data}}
tls:
  acmeEmail: you@example.com
  challenge: {{type: dns01, provider: cloudflare, apiToken: {{secret: cloudflare-api-token}}}}
services:
{services}"
    )
}

#[test]
fn an_empty_mapping_is_openbao_on_its_defaults() {
    let lab = load(&spec("  openbao: {}\n")).lab;
    let o = lab.services.openbao.expect("openbao");
    assert_eq!(o.storage.to_string(), "5Gi");
    assert_eq!(o.audit_storage.to_string(), "5Gi");
    assert_eq!(o.host, "bao");
}

#[test]
fn its_settings_are_read_as_written_and_enabled_false_turns_it_off() {
    let lab = load(&spec(
        "  openbao:\n    storage: 2Gi\n    auditStorage: 1Gi\n    host: vault\n",
    ))
    .lab;
    let o = lab.services.openbao.expect("openbao");
    assert_eq!(
        (o.storage.to_string(), o.audit_storage.to_string(), o.host),
        ("2Gi".into(), "1Gi".into(), "vault".into())
    );
    let lab = load(&spec("  openbao: {enabled: false, host: vault}\n")).lab;
    assert!(lab.services.openbao.is_none());
    assert!(
        load(&spec("  logging: {}\n"))
            .lab
            .services
            .openbao
            .is_none()
    );
}

#[test]
fn it_keeps_its_data_on_a_volume_so_it_needs_storage() {
    let text = spec("  openbao: {}\n").replace(
        "storage:\n  nfs: {server: 192.168.2.2, path: /volume1/k8s-data}\n",
        "",
    );
    assert_eq!(errors(&text), ["stateful-without-storage 17:12"]);
    assert!(messages(&text).contains("openbao keeps data on a volume"));
}

#[test]
fn a_bad_size_is_reported_where_it_is_written() {
    let text = spec("  openbao:\n    storage: lots\n    auditStorage: -1Gi\n");
    assert_eq!(
        errors(&text),
        ["invalid-quantity 20:14", "invalid-quantity 21:19"]
    );
    assert!(messages(&text).contains("lots"), "{}", messages(&text));
}

#[test]
fn an_unknown_key_names_the_one_meant() {
    let text = spec("  openbao:\n    auditStorag: 1Gi\n");
    assert_eq!(errors(&text), ["unknown-key 20:5"]);
    assert!(
        messages(&text).contains("auditStorage"),
        "{}",
        messages(&text)
    );
}

#[test]
fn its_host_may_not_be_another_services_nor_an_invalid_name() {
    let text = spec(
        "  openbao: {host: n8n}\n  postgres:\n    databases: [{name: n8n, owner: n8n}]\n  n8n: {}\n",
    );
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("duplicate-host "), "{e:?}");
    assert!(messages(&text).contains("openbao"), "{}", messages(&text));
    let text = spec("  openbao: {host: Not_A_Host}\n");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].ends_with(" 19:19"), "{e:?}");
}

#[test]
fn helm_settings_are_accepted_only_as_a_mapping() {
    let lab = load(&spec(
        "  openbao:\n    helm: {values: {server: {logLevel: debug}}}\n",
    ))
    .lab;
    assert!(
        lab.helm_overrides.contains_key("openbao"),
        "{:?}",
        lab.helm_overrides.keys()
    );
    let text = spec("  openbao:\n    helm: {values: [1]}\n");
    assert_eq!(errors(&text).len(), 1, "{:?}", errors(&text));
}
