//! GPUs in `status` against the API stand-in: what each GPU node offers (`nvidia.com/gpu`
//! allocatable, as the device plugin reports it) and which pods hold it; a labelled GPU node
//! that offers none is a problem with a fix.

mod support;

use homelab_kube::{Cluster, Health, KubeconfigSource, StatusChecks, StatusOptions};
use serde_json::{Value, json};
use support::{StandIn, StandInOptions};

fn send(standin: &StandIn, method: &str, path: &str, kind: &str, body: Value) {
    let (code, answer) = standin.request(method, path, kind, Some(&body));
    assert!(
        (200..300).contains(&code),
        "{method} {path}: {code} {answer}"
    );
}

fn pod(name: &str, node: &str, gpus: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "ml"},
           "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox",
               "resources": {"limits": {"nvidia.com/gpu": gpus}}}]}})
}

#[tokio::test]
async fn gpu_nodes_show_what_they_offer_and_what_holds_it() {
    let standin = StandIn::start(&StandInOptions {
        nodes: vec!["gpu-1".into(), "gpu-2".into(), "cpu-1".into()],
        ..Default::default()
    });
    let merge = "application/merge-patch+json";
    for node in ["gpu-1", "gpu-2"] {
        send(
            &standin,
            "PATCH",
            &format!("/api/v1/nodes/{node}"),
            merge,
            json!({"metadata": {"labels": {"homelab/gpu": "nvidia"}}}),
        );
    }
    standin.patch_status(
        "/api/v1/nodes/gpu-1",
        json!({"allocatable": {"cpu": "8", "nvidia.com/gpu": "4"}}),
    );
    send(
        &standin,
        "POST",
        "/api/v1/namespaces",
        "application/json",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}}),
    );
    for p in [
        pod("ollama-0", "gpu-1", "1"),
        pod("vllm-0", "gpu-1", "2"),
        pod("web-0", "cpu-1", "0"),
    ] {
        send(
            &standin,
            "POST",
            "/api/v1/namespaces/ml/pods",
            "application/json",
            p,
        );
    }
    let cluster = Cluster::connect(&KubeconfigSource {
        explicit: Some(standin.kubeconfig.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let checks = StatusChecks {
        nodes: vec!["gpu-1".into(), "gpu-2".into(), "cpu-1".into()],
        gpus: true,
        ..Default::default()
    };
    let report = cluster.status(&checks, &StatusOptions::default()).await;
    let json = serde_json::to_value(&report).unwrap();
    let node = |name: &str| {
        json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {json:#}"))
    };
    assert_eq!(
        node("gpu-1")["gpu"],
        json!({"allocatable": 4, "inUse": 3, "pods": ["ml/ollama-0 (1)", "ml/vllm-0 (2)"]}),
        "{json:#}"
    );
    assert_eq!(
        node("gpu-2")["gpu"],
        json!({"allocatable": 0, "inUse": 0, "pods": []})
    );
    assert!(node("cpu-1").get("gpu").is_none(), "{json:#}");
    assert_eq!(report.health, Health::Unhealthy, "{json:#}");
    let problem = report
        .problems
        .iter()
        .find(|p| p.subject == "node gpu-2")
        .unwrap_or_else(|| panic!("{:#?}", report.problems));
    assert!(
        problem.problem.contains("offers no nvidia.com/gpu"),
        "{problem:?}"
    );
    assert!(problem.fix.contains("nvidia-device-plugin"), "{problem:?}");

    // Without GPUs in the lab, no pod list and no GPU column.
    let plain = cluster
        .status(
            &StatusChecks {
                gpus: false,
                ..checks
            },
            &StatusOptions::default(),
        )
        .await;
    assert!(plain.nodes.iter().all(|n| n.gpu.is_none()));
    assert_eq!(plain.health, Health::Healthy, "{:#?}", plain.problems);
}
