//! `services.openWebui` in the spec: read with its defaults, refused without a model server
//! (Ollama or vLLM) and in front of the lab's basic auth, every wrong input reported with its
//! code at file:line:col.

mod common;

use common::{errors, load, messages};

/// A lab with one server and one GPU agent; `{services}` is the body of `services:`.
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
    - name: k3s-gpu
      role: agent
      address: 192.168.2.21
      gpu: true
storage:
  nfs: {{server: 192.168.2.2, path: /volume1/k8s-data}}
tls:
  acmeEmail: you@example.com
  challenge: {{type: dns01, provider: cloudflare, apiToken: {{secret: cloudflare-api-token}}}}
services:
{services}"
    )
}

const OLLAMA: &str = "  ollama: {models: [llama3.2:3b]}\n";
const VLLM: &str = "  vllm: {model: Qwen/Qwen2.5-1.5B-Instruct, revision: main}\n";

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` is not in the spec"))
        + 1
}

#[test]
fn an_empty_mapping_is_open_webui_on_its_defaults() {
    let loaded = load(&spec(&format!("{OLLAMA}  openWebui: {{}}\n")));
    let o = loaded.lab.services.open_webui.as_ref().expect("it is on");
    assert_eq!(o.admin_email, None, "admin@<domain> is the plan's default");
    assert_eq!(o.admin_password.name(), "open-webui-admin-password");
    assert_eq!(o.storage.to_string(), "5Gi");
    assert_eq!(o.host, "chat");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn every_setting_is_taken_as_written() {
    let text = spec(&format!(
        "{VLLM}  openWebui:\n    adminEmail: me@example.org\n    adminPassword: {{secret: chat-admin}}\n    storage: 10Gi\n    host: ai\n    helm: {{values: {{replicaCount: 1}}}}\n"
    ));
    let loaded = load(&text);
    let o = loaded.lab.services.open_webui.as_ref().expect("it is on");
    assert_eq!(o.admin_email.as_deref(), Some("me@example.org"));
    assert_eq!(o.admin_password.name(), "chat-admin");
    assert_eq!(o.storage.to_string(), "10Gi");
    assert_eq!(o.host, "ai");
    assert!(loaded.lab.helm_overrides.contains_key("open-webui"));
}

#[test]
fn without_ollama_and_without_vllm_it_has_no_model_and_is_refused() {
    let text = spec("  openWebui: {host: chat}\n");
    let line = line_of(&text, "  openWebui:");
    assert_eq!(
        errors(&text),
        [format!("open-webui-without-models {line}:14")]
    );
    let shown = messages(&text);
    assert!(
        shown.contains("neither `services.ollama` nor `services.vllm` is on"),
        "{shown}"
    );
    assert!(shown.contains("remove `services.openWebui`"), "{shown}");
    // A stopped Ollama is no model server either.
    let text = spec("  ollama: {enabled: false}\n  openWebui: {}\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("open-webui-without-models"), "{errs:?}");
    // Either one is enough, and a stopped Open WebUI asks for none.
    load(&spec(&format!("{OLLAMA}  openWebui: {{}}\n")));
    load(&spec(&format!("{VLLM}  openWebui: {{}}\n")));
    let off = load(&spec("  openWebui: {enabled: false}\n"));
    assert!(off.lab.services.open_webui.is_none());
}

#[test]
fn basic_auth_in_front_is_refused_with_why() {
    let text = spec(&format!("{OLLAMA}  openWebui:\n    auth: basic\n"));
    let line = line_of(&text, "    auth: basic");
    assert_eq!(errors(&text), [format!("open-webui-auth {line}:11")]);
    let shown = messages(&text);
    assert!(shown.contains("Authorization: Bearer"), "{shown}");
    assert!(shown.contains("remove `auth`"), "{shown}");
}

#[test]
fn a_bad_admin_email_password_or_size_is_reported_where_it_is_written() {
    for email in ["admin", "admin@localhost", "'a b@example.com'"] {
        let text = spec(&format!("{OLLAMA}  openWebui:\n    adminEmail: {email}\n"));
        let line = line_of(&text, "    adminEmail:");
        assert_eq!(
            errors(&text),
            [format!("invalid-admin-email {line}:17")],
            "{email}"
        );
        assert!(messages(&text).contains("is not an e-mail address"));
    }
    let text = spec(&format!(
        "{OLLAMA}  openWebui:\n    adminPassword: {{secret: Admin}}\n"
    ));
    let line = line_of(&text, "    adminPassword:");
    assert_eq!(errors(&text), [format!("secret-name {line}:29")]);
    let text = spec(&format!("{OLLAMA}  openWebui:\n    storage: lots\n"));
    let line = line_of(&text, "    storage: lots");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].ends_with(&format!(" {line}:14")), "{errs:?}");
}

#[test]
fn unknown_keys_and_a_taken_host_are_errors() {
    let text = spec(&format!("{OLLAMA}  openWebui:\n    signup: true\n"));
    let line = line_of(&text, "    signup: true");
    assert_eq!(errors(&text), [format!("unknown-key {line}:5")]);
    let text = spec("  ollama: {host: chat}\n  openWebui: {}\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("duplicate-host"), "{errs:?}");
    assert!(messages(&text).contains("openWebui"));
}

#[test]
fn its_data_needs_the_storage_section() {
    let text = spec("  ollama: {}\n  openWebui: {}\n").replace(
        "storage:\n  nfs: {server: 192.168.2.2, path: /volume1/k8s-data}\n",
        "",
    );
    let shown = messages(&text);
    assert!(shown.contains("openWebui"), "{shown}");
    assert!(
        errors(&text)
            .iter()
            .any(|e| e.starts_with("stateful-without-storage")),
        "{shown}"
    );
}

#[test]
fn a_users_chart_may_not_take_the_catalogs_release_name() {
    let text = spec(&format!(
        "{OLLAMA}charts:\n  - name: open-webui\n    repo: https://helm.openwebui.com\n    chart: open-webui\n    version: 16.0.0\n"
    ));
    let line = line_of(&text, "  - name: open-webui");
    assert_eq!(errors(&text), [format!("chart-name-taken {line}:11")]);
}
