//! A lab with a GPU node, in both flavors: the device plugin only on GPU nodes with the
//! `nvidia` RuntimeClass and a time-slicing configuration per node, dcgm-exporter scraped by
//! Prometheus with a dashboard, the GPU memory alert proven with promtool, and none of it in a
//! lab without a GPU.

use serde_json::{Value, json};

use crate::common::*;
use crate::flux::Lab;
use crate::validators::{build_layers, kubernetes_version, layers_of, validate_objects};

/// The seed lab with its GPU node's card shared three ways and tainted, for Ollama.
fn gpu_spec() -> String {
    let s = SEED.replace(
        "      labels:\n        homelab/workload: general\n",
        "      labels:\n        homelab/workload: general\n      gpu: {sharing: {replicas: 3}, taint: true}\n",
    );
    let s = s.replace(
        "    gpu: false                 # the RTX 3060 comes in phase 2\n",
        "    gpu: true\n",
    );
    assert_ne!(s, SEED, "the seed lab changed");
    s
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn has(objects: &[Value], kind: &str, name: &str) -> bool {
    objects
        .iter()
        .any(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// The device plugin's values as the k3s flavor carries them.
fn chart_values(objects: &[Value], name: &str) -> Value {
    yaml_value(
        find(objects, "HelmChart", name)["spec"]["valuesContent"]
            .as_str()
            .unwrap(),
    )
}

fn check_device_plugin_values(values: &Value) {
    assert_eq!(values["nodeSelector"], json!({"homelab/gpu": "nvidia"}));
    assert_eq!(values["runtimeClassName"], "nvidia");
    assert_eq!(
        values["affinity"],
        Value::Null,
        "no node-feature-discovery labels needed"
    );
    assert_eq!(values["nfd"]["enabled"], false);
    assert_eq!(values["config"]["default"], "exclusive");
    let map = values["config"]["map"].as_object().unwrap();
    assert_eq!(
        map.keys().collect::<Vec<_>>(),
        ["exclusive", "time-slicing-3"]
    );
    let sliced = yaml_value(map["time-slicing-3"].as_str().unwrap());
    assert_eq!(
        sliced["sharing"]["timeSlicing"]["resources"],
        json!([{"name": "nvidia.com/gpu", "replicas": 3}])
    );
    let exclusive = yaml_value(map["exclusive"].as_str().unwrap());
    assert!(exclusive.get("sharing").is_none());
}

#[test]
fn the_k3s_tree_runs_the_device_plugin_and_dcgm_exporter_on_the_gpu_nodes_only() {
    let spec = gpu_spec();
    let (_tmp, objects) = layers_of(&spec);
    check_device_plugin_values(&chart_values(&objects, "nvidia-device-plugin"));
    assert_eq!(
        find(&objects, "HelmChart", "nvidia-device-plugin")["spec"]["targetNamespace"],
        "gpu"
    );
    let rc = find(&objects, "RuntimeClass", "nvidia");
    assert_eq!(rc["handler"], "nvidia");
    assert_eq!(
        rc["scheduling"]["nodeSelector"],
        json!({"homelab/gpu": "nvidia"})
    );
    let ns = find(&objects, "Namespace", "gpu");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );

    let ds = find(&objects, "DaemonSet", "dcgm-exporter");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"], json!({"homelab/gpu": "nvidia"}));
    assert_eq!(pod["runtimeClassName"], "nvidia");
    assert_eq!(
        pod["tolerations"],
        json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    );
    assert!(
        pod["containers"][0]["image"]
            .as_str()
            .unwrap()
            .starts_with("nvcr.io/nvidia/k8s/dcgm-exporter:")
    );
    assert!(
        pod["containers"][0].get("resources").unwrap()["limits"]
            .get("nvidia.com/gpu")
            .is_none(),
        "the exporter takes no GPU from the workloads"
    );
    let sm = find(&objects, "ServiceMonitor", "dcgm-exporter");
    assert_eq!(sm["metadata"]["namespace"], "monitoring");
    assert_eq!(
        sm["spec"]["namespaceSelector"]["matchNames"],
        json!(["gpu"])
    );
    let svc = find(&objects, "Service", "dcgm-exporter");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        svc["metadata"]["labels"]["app.kubernetes.io/name"]
    );
    assert_eq!(svc["spec"]["ports"][0]["name"], "metrics");

    let board = find(&objects, "ConfigMap", "gpu-dashboard");
    assert_eq!(board["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value =
        serde_json::from_str(board["data"]["gpu.json"].as_str().unwrap()).unwrap();
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["targets"][0]["expr"].as_str().unwrap())
        .collect();
    assert!(
        exprs.iter().any(|e| e.contains("DCGM_FI_DEV_FB_USED")),
        "{exprs:?}"
    );

    // Ollama on the tainted node tolerates the taint.
    let ollama = chart_values(&objects, "ollama");
    assert_eq!(ollama["runtimeClassName"], "nvidia");
    assert_eq!(ollama["tolerations"][0]["key"], "nvidia.com/gpu");

    validate_objects(&objects, &kubernetes_version(&spec));
}

#[test]
fn the_flux_tree_carries_the_same_release_and_objects() {
    let spec = gpu_spec();
    let lab = Lab::new(&spec);
    let out = lab.dir.path().join("tree");
    lab.render_into(&out);
    let objects: Vec<Value> = build_layers(&out)
        .into_iter()
        .filter(|o| o["kind"] != "Secret")
        .collect();
    let hr = find(&objects, "HelmRelease", "nvidia-device-plugin");
    assert_eq!(hr["metadata"]["namespace"], "gpu");
    check_device_plugin_values(&hr["spec"]["values"]);
    assert_eq!(
        find(&objects, "RuntimeClass", "nvidia")["handler"],
        "nvidia"
    );
    assert!(has(&objects, "DaemonSet", "dcgm-exporter"));
    assert!(has(&objects, "ServiceMonitor", "dcgm-exporter"));
    validate_objects(&objects, &kubernetes_version(&spec));
}

#[test]
fn a_lab_without_a_gpu_node_has_none_of_it() {
    let (_tmp, objects) = layers_of(SEED);
    for (kind, name) in [
        ("HelmChart", "nvidia-device-plugin"),
        ("RuntimeClass", "nvidia"),
        ("DaemonSet", "dcgm-exporter"),
        ("ServiceMonitor", "dcgm-exporter"),
        ("ConfigMap", "gpu-dashboard"),
        ("Namespace", "gpu"),
    ] {
        assert!(!has(&objects, kind, name), "{kind} {name}");
    }
    assert!(gpu_memory_rule(&objects).is_none());
}

#[test]
fn a_gpu_lab_without_monitoring_runs_the_plugin_but_no_exporter() {
    let spec = gpu_spec().replace(
        "  monitoring:                  # Prometheus, Grafana, Alertmanager\n",
        "  monitoring:\n    enabled: false\n",
    );
    assert_ne!(spec, gpu_spec());
    let (_tmp, objects) = layers_of(&spec);
    assert!(has(&objects, "HelmChart", "nvidia-device-plugin"));
    assert!(!has(&objects, "DaemonSet", "dcgm-exporter"));
    assert!(!has(&objects, "ServiceMonitor", "dcgm-exporter"));
}

fn gpu_memory_rule(objects: &[Value]) -> Option<Value> {
    objects
        .iter()
        .filter(|o| o["kind"] == "PrometheusRule")
        .flat_map(|o| o["spec"]["groups"].as_array().unwrap().iter())
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .find(|r| r["alert"] == "GpuMemoryFull")
        .cloned()
}

/// `used` MiB of a GPU with 12 GiB, every minute from 0 for `minutes`.
fn series(metric: &str, value: u64, minutes: u64) -> Value {
    json!({
        "series": format!("{metric}{{gpu=\"0\",Hostname=\"k3s-worker-02\",namespace=\"gpu\"}}"),
        "values": format!("{value}x{minutes}"),
    })
}

#[test]
fn gpu_memory_full_warns_after_ten_minutes_above_95_percent_and_not_before() {
    let (_tmp, objects) = layers_of(&gpu_spec());
    let rule = gpu_memory_rule(&objects).expect("the GPU memory alert");
    assert_eq!(rule["labels"]["severity"], "warning");
    assert_eq!(rule["labels"]["priority"], "P2");
    assert_eq!(
        rule["annotations"]["runbook_url"],
        "docs/runbooks/gpu-memory-full.md"
    );
    let total = 12288;
    let expected = json!([{
        "exp_labels": {"gpu": "0", "Hostname": "k3s-worker-02", "namespace": "gpu", "severity": "warning", "priority": "P2"},
        "exp_annotations": {
            "summary": "GPU 0 on k3s-worker-02 has used more than 95% of its memory for 10 minutes",
            "description": rule["annotations"]["description"],
            "runbook_url": rule["annotations"]["runbook_url"],
        },
    }]);
    let case = |name: &str, used: u64, fires_at: Option<u64>| {
        let mut checks =
            vec![json!({"eval_time": "9m", "alertname": "GpuMemoryFull", "exp_alerts": []})];
        checks.push(json!({
            "eval_time": "11m",
            "alertname": "GpuMemoryFull",
            "exp_alerts": if fires_at.is_some() { expected.clone() } else { json!([]) },
        }));
        json!({
            "name": name,
            "interval": "1m",
            "input_series": [
                series("DCGM_FI_DEV_FB_USED", used, 20),
                series("DCGM_FI_DEV_FB_FREE", total - used, 20),
            ],
            "alert_rule_test": checks,
        })
    };
    let tests = vec![
        case(
            "97% used: fires after 10 minutes",
            total * 97 / 100,
            Some(11),
        ),
        case("90% used: never", total * 90 / 100, None),
    ];
    promtool_test_rule("p2", &rule, "1m", json!(tests));
}
