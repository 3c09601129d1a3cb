//! `services.vllm` in the spec: the model, revision, token, cache and flags read with their
//! defaults; its GPU counted against the GPU nodes; every wrong input reported with its code
//! at file:line:col.

mod common;

use common::{errors, load, messages};

/// A lab with one server and one agent whose `gpu:` is `{gpu}`; `{services}` is the body of
/// `services:`.
fn spec(gpu: &str, services: &str) -> String {
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
      gpu: {gpu}
storage:
  nfs: {{server: 192.168.2.2, path: /volume1/k8s-data}}
tls:
  acmeEmail: you@example.com
  challenge: {{type: dns01, provider: cloudflare, apiToken: {{secret: cloudflare-api-token}}}}
services:
{services}"
    )
}

const PINNED: &str = "  vllm:\n    model: Qwen/Qwen2.5-1.5B-Instruct\n    revision: 989aa7980e4cf806f80c7fef2b1adb7bc71aa306\n";

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` is not in the spec"))
        + 1
}

#[test]
fn the_model_and_revision_are_read_with_the_defaults() {
    let loaded = load(&spec("true", PINNED));
    let v = loaded.lab.services.vllm.as_ref().expect("vLLM is on");
    assert_eq!(v.model, "Qwen/Qwen2.5-1.5B-Instruct");
    assert_eq!(v.revision, "989aa7980e4cf806f80c7fef2b1adb7bc71aa306");
    assert!(v.hf_token.is_none(), "a public model needs no token");
    assert_eq!(v.storage.to_string(), "50Gi");
    assert_eq!(v.host, "vllm");
    assert!(v.args.is_empty());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn every_setting_is_taken_as_written() {
    let text = spec(
        "true",
        "  vllm:\n    model: meta-llama/Llama-3.2-1B-Instruct\n    revision: v1.0\n    hfToken: {secret: hf-token}\n    storage: 80Gi\n    host: llm\n    args: [--max-model-len=8192, --gpu-memory-utilization, '0.6']\n",
    );
    let loaded = load(&text);
    let v = loaded.lab.services.vllm.as_ref().expect("vLLM is on");
    assert_eq!(v.hf_token.as_ref().map(|s| s.name()), Some("hf-token"));
    assert_eq!(v.storage.to_string(), "80Gi");
    assert_eq!(v.host, "llm");
    assert_eq!(
        v.args,
        ["--max-model-len=8192", "--gpu-memory-utilization", "0.6"]
    );
    assert!(
        loaded
            .secret_ref_spans
            .iter()
            .any(|(name, _)| name == "hf-token"),
        "the token is checked against the secrets file like every secret"
    );
}

#[test]
fn an_unpinned_revision_is_a_warning_and_serves_main() {
    let loaded = load(&spec(
        "true",
        "  vllm:\n    model: Qwen/Qwen2.5-1.5B-Instruct\n",
    ));
    assert_eq!(loaded.lab.services.vllm.as_ref().unwrap().revision, "main");
    let codes: Vec<&str> = loaded.warnings.iter().map(|w| w.code).collect();
    assert_eq!(codes, ["unpinned-model-revision"]);
}

#[test]
fn a_cpu_only_lab_refuses_vllm_and_says_why() {
    let text = spec("false", PINNED);
    let line = line_of(&text, "    model: Qwen");
    assert_eq!(errors(&text), [format!("no-gpu-node {line}:5")]);
    let shown = messages(&text);
    assert!(
        shown.contains("vllm needs a GPU, but no node has one"),
        "{shown}"
    );
    assert!(
        shown.contains("vLLM's official image runs models on an NVIDIA GPU only"),
        "{shown}"
    );
    assert!(shown.contains("services.ollama"), "{shown}");
}

#[test]
fn a_stopped_vllm_asks_for_no_gpu() {
    let text = spec(
        "false",
        "  vllm:\n    enabled: false\n    model: Qwen/Qwen2.5-1.5B-Instruct\n",
    );
    assert!(load(&text).lab.services.vllm.is_none());
}

#[test]
fn vllm_takes_a_gpu_from_the_budget() {
    let both = format!("  ollama: {{gpu: true}}\n{PINNED}");
    let text = spec("true", &both);
    let line = line_of(&text, "    model: Qwen");
    assert_eq!(errors(&text), [format!("gpu-capacity {line}:5")]);
    let shown = messages(&text);
    assert!(
        shown.contains("2 GPUs are asked for (ollama, vllm), but the GPU nodes offer 1"),
        "{shown}"
    );
    load(&spec("{sharing: {replicas: 2}}", &both));
}

#[test]
fn the_model_is_required_and_must_be_a_repository() {
    let text = spec("true", "  vllm:\n    revision: main\n");
    let line = line_of(&text, "    revision: main");
    assert_eq!(errors(&text), [format!("missing-key {line}:5")]);
    assert!(messages(&text).contains("`model` is missing"));
    for (model, col) in [("llama3.2:3b", 12), ("'a/b/c'", 12), ("'-x/y'", 12)] {
        let text = spec(
            "true",
            &format!("  vllm:\n    model: {model}\n    revision: main\n"),
        );
        let line = line_of(&text, "    model:");
        assert_eq!(
            errors(&text),
            [format!("invalid-model {line}:{col}")],
            "{model}"
        );
        assert!(messages(&text).contains("is not a Hugging Face model repository"));
    }
}

#[test]
fn a_revision_with_a_space_is_an_error() {
    let text = spec(
        "true",
        "  vllm:\n    model: Qwen/Qwen2.5-1.5B-Instruct\n    revision: 'my branch'\n",
    );
    let line = line_of(&text, "    revision:");
    assert_eq!(errors(&text), [format!("invalid-revision {line}:15")]);
}

#[test]
fn flags_homelab_sets_and_malformed_arguments_are_errors() {
    for (args, said) in [
        ("[--port=9000]", "`--port` is set by homelab"),
        ("[--model, other/model]", "set the model with `model:`"),
        ("[--api-key=abc]", "homelab secrets set vllm-api-key"),
        ("['--max-model-len 8192']", "`--max-model-len=8192`"),
        ("['8192']", "`8192` is not a `vllm serve` flag"),
        (
            "[--max-model-len=8192, '0.6']",
            "`0.6` is not a `vllm serve` flag",
        ),
    ] {
        let text = spec("true", &format!("{PINNED}    args: {args}\n"));
        let line = line_of(&text, "    args:");
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{args}: {errs:?}");
        assert!(
            errs[0].starts_with(&format!("vllm-arg {line}:")),
            "{args}: {errs:?}"
        );
        let shown = messages(&text);
        assert!(shown.contains(said), "{args}: {shown}");
    }
}

#[test]
fn a_token_reference_needs_a_valid_secret_name() {
    let text = spec("true", &format!("{PINNED}    hfToken: {{}}\n"));
    let line = line_of(&text, "    hfToken:");
    assert_eq!(errors(&text), [format!("missing-key {line}:14")]);
    let text = spec("true", &format!("{PINNED}    hfToken: {{secret: HF}}\n"));
    assert_eq!(errors(&text), [format!("secret-name {line}:23")]);
}

#[test]
fn unknown_keys_and_a_taken_host_are_errors() {
    let text = spec("true", &format!("{PINNED}    gpus: 2\n"));
    let line = line_of(&text, "    gpus: 2");
    assert_eq!(errors(&text), [format!("unknown-key {line}:5")]);
    let text = spec(
        "true",
        &format!("  ollama: {{host: llm}}\n{PINNED}    host: llm\n"),
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("duplicate-host"), "{errs:?}");
}

#[test]
fn vllm_needs_the_storage_section_for_its_cache() {
    let text = spec("true", PINNED).replace(
        "storage:\n  nfs: {server: 192.168.2.2, path: /volume1/k8s-data}\n",
        "",
    );
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("stateful-without-storage")),
        "{errs:?}"
    );
}
