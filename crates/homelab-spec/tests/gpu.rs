//! GPU nodes and GPU requests in the spec: `gpu: true` and the mapping form read into the
//! node's GPUs, label and taint; every wrong input reported with its code at file:line:col.

mod common;

use common::{errors, load, messages};
use homelab_spec::lab::{GPU_LABEL, GPU_SHARING_LABEL, GPU_TAINT_KEY, GpuVendor, TaintEffect};

/// A lab with one server and one agent; `{agent_gpu}` is the agent's `gpu:` value, `{more}`
/// is appended at the end (services, apps).
fn spec(agent_gpu: &str, more: &str) -> String {
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
      gpu: {agent_gpu}
storage:
  nfs: {{server: 192.168.2.2, path: /volume1/k8s-data}}
tls:
  acmeEmail: you@example.com
  challenge: {{type: dns01, provider: cloudflare, apiToken: {{secret: cloudflare-api-token}}}}
{more}"
    )
}

/// The line (1-based) of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` is not in the spec"))
        + 1
}

#[test]
fn gpu_true_is_one_unshared_nvidia_gpu_with_the_label_and_no_taint() {
    let spec = load(&spec("true", ""));
    let node = &spec.lab.cluster.nodes[1];
    let gpu = node.gpu.expect("a GPU");
    assert_eq!(gpu.vendor, GpuVendor::Nvidia);
    assert_eq!((gpu.count, gpu.replicas, gpu.taint), (1, 1, false));
    assert_eq!(gpu.allocatable(), 1);
    assert_eq!(
        node.labels.get(GPU_LABEL.0).map(String::as_str),
        Some(GPU_LABEL.1)
    );
    assert_eq!(
        node.labels.get(GPU_SHARING_LABEL).map(String::as_str),
        Some("exclusive")
    );
    assert!(node.taints.is_empty());
    let server = &spec.lab.cluster.nodes[0];
    assert!(server.gpu.is_none() && server.labels.is_empty());
    assert_eq!(spec.lab.cluster.gpu_nodes().count(), 1);
}

#[test]
fn gpu_false_and_no_gpu_are_the_same() {
    for value in ["false", "null"] {
        let spec = load(&spec(value, ""));
        assert!(spec.lab.cluster.nodes[1].gpu.is_none(), "{value}");
        assert!(spec.lab.cluster.nodes[1].labels.is_empty(), "{value}");
    }
}

#[test]
fn the_mapping_sets_count_sharing_and_the_taint() {
    let spec = load(&spec(
        "{vendor: nvidia, count: 2, sharing: {replicas: 4}, taint: true}",
        "",
    ));
    let node = &spec.lab.cluster.nodes[1];
    let gpu = node.gpu.expect("a GPU");
    assert_eq!((gpu.count, gpu.replicas, gpu.taint), (2, 4, true));
    assert_eq!(gpu.allocatable(), 8);
    assert_eq!(
        node.labels.get(GPU_SHARING_LABEL).map(String::as_str),
        Some("time-slicing-4")
    );
    assert_eq!(node.taints.len(), 1);
    assert_eq!(node.taints[0].key, GPU_TAINT_KEY);
    assert_eq!(node.taints[0].effect, TaintEffect::NoSchedule);
    assert_eq!(node.taints[0].to_string(), "nvidia.com/gpu=true:NoSchedule");
}

#[test]
fn a_taint_written_by_hand_is_not_doubled() {
    let text = spec("{taint: true}", "").replace(
        "      gpu: {taint: true}",
        "      gpu: {taint: true}\n      taints: [\"nvidia.com/gpu=true:NoSchedule\"]",
    );
    let spec = load(&text);
    assert_eq!(spec.lab.cluster.nodes[1].taints.len(), 1);
}

#[test]
fn the_gpu_label_written_by_hand_is_accepted_when_it_agrees() {
    let text = spec("true", "").replace(
        "      gpu: true",
        "      gpu: true\n      labels: {homelab/gpu: nvidia, zone: a}",
    );
    let spec = load(&text);
    assert_eq!(spec.lab.cluster.nodes[1].labels.len(), 3);
}

#[test]
fn requests_within_what_the_nodes_offer_are_valid() {
    let apps = "services:\n  ollama: {gpu: true}\napps:\n  - {name: plex, image: plexinc/pms-docker:1.41.3, port: 32400, gpu: true}\n";
    load(&spec("{sharing: {replicas: 2}}", apps));
    load(&spec("{count: 2}", apps));
}

#[test]
fn a_gpu_service_without_a_gpu_node_is_an_error() {
    let text = spec("false", "services:\n  ollama:\n    gpu: true\n");
    let line = line_of(&text, "    gpu: true");
    assert_eq!(errors(&text), [format!("no-gpu-node {line}:10")]);
    let shown = messages(&text);
    assert!(
        shown.contains("ollama needs a GPU, but no node has one"),
        "{shown}"
    );
    assert!(shown.contains("add `gpu: true` to the node"), "{shown}");
}

#[test]
fn a_gpu_app_without_a_gpu_node_is_an_error() {
    let text = spec(
        "false",
        "apps:\n  - name: plex\n    image: plexinc/pms-docker:1.41.3\n    port: 32400\n    gpu: true\n",
    );
    let line = line_of(&text, "    gpu: true");
    assert_eq!(errors(&text), [format!("no-gpu-node {line}:10")]);
    assert!(messages(&text).contains("app plex needs a GPU"));
}

#[test]
fn more_requests_than_gpus_is_an_error_naming_every_requester() {
    let more = "services:\n  ollama:\n    gpu: true\napps:\n  - name: plex\n    image: plexinc/pms-docker:1.41.3\n    port: 32400\n    gpu: true\n  - name: jellyfin\n    image: jellyfin/jellyfin:10.10.3\n    port: 8096\n    replicas: 2\n    gpu: true\n";
    let text = spec("{sharing: {replicas: 3}}", more);
    let plex = line_of(&text, "    port: 32400") + 1;
    let jellyfin = line_of(&text, "    replicas: 2") + 1;
    // ollama and plex fit in three time-slices; jellyfin's two replicas do not.
    assert_eq!(errors(&text), [format!("gpu-capacity {jellyfin}:10")]);
    let shown = messages(&text);
    assert!(
        shown.contains(
            "4 GPUs are asked for (ollama, app plex, app jellyfin (2 replicas)), but the GPU nodes offer 3 (`k3s-gpu` 1 GPU shared 3 ways)"
        ),
        "{shown}"
    );
    assert!(shown.contains("app plex takes 1 GPU"), "{shown}");
    assert!(
        shown.contains(&format!("{plex} |")),
        "plex is shown: {shown}"
    );
    assert!(
        shown.contains("replicas: 4"),
        "the help names the sharing that fits: {shown}"
    );
    // Without sharing, plex is the first that does not fit.
    let text = spec("true", more);
    assert_eq!(errors(&text), [format!("gpu-capacity {plex}:10")]);
}

#[test]
fn a_stopped_app_asks_for_no_gpu() {
    load(&spec(
        "true",
        "services:\n  ollama: {gpu: true}\napps:\n  - {name: plex, image: plexinc/pms-docker:1.41.3, port: 32400, gpu: true, replicas: 0}\n",
    ));
}

#[test]
fn sharing_with_fewer_than_two_replicas_is_an_error() {
    for n in ["0", "1"] {
        let text = spec(&format!("{{sharing: {{replicas: {n}}}}}"), "");
        let line = line_of(&text, "gpu: {");
        assert_eq!(
            errors(&text),
            [format!("gpu-sharing-replicas {line}:33")],
            "{n}"
        );
    }
}

#[test]
fn sharing_without_replicas_is_an_error() {
    let text = spec("{sharing: {}}", "");
    let line = line_of(&text, "gpu: {");
    assert_eq!(errors(&text), [format!("missing-key {line}:22")]);
}

#[test]
fn a_count_of_zero_is_an_error() {
    let text = spec("{count: 0}", "");
    let line = line_of(&text, "gpu: {");
    assert_eq!(errors(&text), [format!("gpu-count {line}:20")]);
}

#[test]
fn wrong_shapes_are_errors_at_their_place() {
    let cases = [
        (
            "2",
            "wrong-type",
            12,
            "expected `true`, `false` or a mapping",
        ),
        (
            "yes",
            "wrong-type",
            12,
            "YAML 1.2 reads only `true` and `false`",
        ),
        (
            "[nvidia]",
            "wrong-type",
            12,
            "expected `true`, `false` or a mapping",
        ),
        (
            "{vendor: amd}",
            "unknown-choice",
            21,
            "is not a valid choice",
        ),
        (
            "{replicas: 2}",
            "unknown-key",
            13,
            "the keys allowed here are `vendor`, `count`, `sharing`, `taint`",
        ),
        ("{sharing: 2}", "wrong-type", 22, "expected a mapping"),
        (
            "{taint: maybe}",
            "wrong-type",
            20,
            "expected `true` or `false`",
        ),
    ];
    for (value, code, column, said) in cases {
        let text = spec(value, "");
        let line = line_of(&text, "      gpu: ");
        assert_eq!(
            errors(&text),
            [format!("{code} {line}:{column}")],
            "{value}"
        );
        let shown = messages(&text);
        assert!(shown.contains(said), "{value}: {shown}");
    }
}

#[test]
fn a_contradicting_gpu_label_is_an_error() {
    let text = spec("true", "").replace(
        "      gpu: true",
        "      gpu: true\n      labels: {homelab/gpu: amd}",
    );
    let line = line_of(&text, "homelab/gpu: amd");
    assert_eq!(errors(&text), [format!("gpu-label {line}:29")]);
    let text = spec("true", "").replace(
        "      gpu: true",
        "      gpu: true\n      labels: {nvidia.com/device-plugin.config: mine}",
    );
    let line = line_of(&text, "device-plugin.config");
    assert_eq!(errors(&text), [format!("gpu-label {line}:49")]);
}
