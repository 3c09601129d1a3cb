//! The rendered tree against real validators: `kubectl kustomize` builds every layer, every
//! core object passes the Kubernetes JSON schemas (kubernetes-validate, strict, offline),
//! every custom resource passes its CRD's schema, `promtool check rules` accepts the alert
//! rules and `amtool check-config` the Alertmanager configuration.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::*;
use crate::crd;

/// `1.34.0` for a lab on K3s v1.34.x, or the nearest version kubernetes-validate has.
pub fn kubernetes_version(spec: &str) -> String {
    let loaded = homelab_spec::load_str("homelab.yaml", spec).unwrap();
    let version = loaded.lab.cluster.k3s_version.to_string();
    let minor: u32 = version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the minor of {version}"));
    let lib = venv().join("lib");
    let schemas = std::fs::read_dir(&lib)
        .ok()
        .and_then(|mut d| d.next())
        .map(|py| {
            py.unwrap()
                .path()
                .join("site-packages/kubernetes_validate/kubernetes-json-schema")
        })
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "kubernetes-validate is not installed in {}; run scripts/install-test-deps",
                venv().display()
            )
        });
    let mut minors: Vec<u32> = std::fs::read_dir(schemas)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            let v = name.strip_prefix("v1.")?.strip_suffix(".0-local-strict")?;
            v.parse().ok()
        })
        .collect();
    minors.sort();
    let chosen = minors
        .iter()
        .rev()
        .find(|m| **m <= minor)
        .or(minors.first())
        .expect("kubernetes-validate has schemas");
    format!("1.{chosen}.0")
}

/// Builds every layer of a rendered tree with `kubectl kustomize`; returns all objects.
pub fn build_layers(root: &Path) -> Vec<Value> {
    let mut objects = Vec::new();
    let mut layers = 0;
    for layer in ["infrastructure", "monitoring", "applications"] {
        if root.join(layer).join("kustomization.yaml").exists() {
            layers += 1;
            let docs = kustomize(root, layer);
            assert!(!docs.is_empty(), "{layer} builds to nothing");
            objects.extend(docs);
        }
    }
    assert!(layers > 0, "no layer in {}", root.display());
    objects
}

/// Custom resource kinds whose CRD only the chart tier reads (from the chart that ships it).
const CHART_TIER_KINDS: &[&str] = &["ServiceMonitor"];

/// Validates core objects with kubernetes-validate (strict) and custom resources against
/// their CRDs; every object must be one or the other.
pub fn validate_objects(objects: &[Value], k8s_version: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let crds = crd::Crds::load();
    let mut custom = 0;
    for (i, o) in objects.iter().enumerate() {
        let api = o["apiVersion"].as_str().unwrap();
        if is_core_kind(api) {
            let path = tmp.path().join(format!(
                "{i:04}-{}-{}.json",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            ));
            std::fs::write(&path, serde_json::to_vec_pretty(o).unwrap()).unwrap();
            files.push(path);
        } else if crds.namespaced(api, o["kind"].as_str().unwrap()).is_some() {
            crds.validate(o);
            custom += 1;
        } else {
            // Kinds without a copy in tests/crds are validated against the CRD their chart
            // ships by the chart tier (tests/charts).
            assert!(
                CHART_TIER_KINDS.contains(&o["kind"].as_str().unwrap()),
                "no CRD test data for {api} {}; add it to tests/crds",
                o["kind"]
            );
        }
    }
    assert!(!files.is_empty());
    let out = Command::new(venv_tool("kubernetes-validate"))
        .args(["-k", k8s_version, "--strict", "--quiet"])
        .args(&files)
        .output()
        .expect("run kubernetes-validate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stdout.contains("WARN") && !stdout.contains("ERROR"),
        "kubernetes-validate -k {k8s_version} --strict rejected objects:\n{stdout}\n{stderr}"
    );
    let _ = custom;
}

pub fn layers_of(spec: &str) -> (tempfile::TempDir, Vec<Value>) {
    let tmp = tempfile::tempdir().unwrap();
    write_k3s(&render_k3s(&plan_of(spec)), tmp.path(), false);
    let objects = build_layers(tmp.path());
    (tmp, objects)
}

#[test]
fn kustomize_builds_every_layer_to_the_plan_objects() {
    for spec in [SEED.to_string(), wide_spec(), minimal_spec()] {
        let plan = plan_of(&spec);
        let (_tmp, objects) = layers_of(&spec);
        let releases: usize = plan.components.iter().map(|c| c.releases.len()).sum();
        let plain: usize = plan.components.iter().map(|c| c.objects.len()).sum();
        assert_eq!(objects.len(), plain + releases, "lab {}", plan.lab_name);
        for (_, o) in plan.objects() {
            assert!(
                objects.contains(&o.manifest),
                "{} differs after kustomize",
                o.id()
            );
        }
    }
}

#[test]
fn every_object_passes_kubernetes_and_crd_schemas() {
    for spec in [SEED.to_string(), wide_spec(), minimal_spec()] {
        let (_tmp, objects) = layers_of(&spec);
        validate_objects(&objects, &kubernetes_version(&spec));
    }
}

#[test]
fn an_invalid_object_is_rejected_by_the_validators() {
    // The validators themselves must be able to fail.
    let (_tmp, objects) = layers_of(SEED);
    let mut broken = objects.clone();
    let dep = broken
        .iter_mut()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    dep["spec"]["replicas"] = Value::String("one".into());
    let result = std::panic::catch_unwind(|| validate_objects(&broken, "1.34.0"));
    assert!(
        result.is_err(),
        "kubernetes-validate accepted replicas: \"one\""
    );

    let mut broken = objects;
    let pool = broken
        .iter_mut()
        .find(|o| o["kind"] == "IPAddressPool")
        .unwrap();
    pool["spec"]["adresses"] = pool["spec"]["addresses"].clone();
    let result = std::panic::catch_unwind(|| validate_objects(&broken, "1.34.0"));
    assert!(result.is_err(), "the CRD schema accepted an unknown field");
}

/// The kube-prometheus-stack values of a rendered tree.
fn stack_values(root: &Path) -> Value {
    yaml_value(
        &std::fs::read_to_string(root.join("monitoring/prometheus/values-homelab.yaml")).unwrap(),
    )
}

#[test]
fn promtool_accepts_every_prometheus_rule() {
    for spec in [SEED.to_string(), wide_spec()] {
        let (tmp, objects) = layers_of(&spec);
        let mut checked = 0;
        for o in objects.iter().filter(|o| o["kind"] == "PrometheusRule") {
            let file = tmp.path().join(format!(
                "{}.rules.yaml",
                o["metadata"]["name"].as_str().unwrap()
            ));
            let rules = serde_json::json!({"groups": o["spec"]["groups"]});
            std::fs::write(&file, serde_json::to_string(&rules).unwrap()).unwrap();
            let out = run_ok(
                Command::new(tool("promtool"))
                    .args(["check", "rules"])
                    .arg(&file),
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS"));
            checked += 1;
        }
        assert!(checked > 0);
    }
    // promtool can fail: a broken expression is refused.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.yaml");
    std::fs::write(
        &file,
        "groups:\n- name: x\n  rules:\n  - alert: X\n    expr: up ==\n",
    )
    .unwrap();
    let out = Command::new(tool("promtool"))
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn amtool_accepts_the_alertmanager_config() {
    for spec in [SEED.to_string(), wide_spec()] {
        let tmp = tempfile::tempdir().unwrap();
        write_k3s(&render_k3s(&plan_of(&spec)), tmp.path(), false);
        let config = &stack_values(tmp.path())["alertmanager"]["config"];
        let file = tmp.path().join("alertmanager.yaml");
        let checked = for_amtool(config, amtool_minor());
        std::fs::write(&file, serde_json::to_string(&checked).unwrap()).unwrap();
        let out = run_ok(
            Command::new(tool("amtool"))
                .args(["check-config"])
                .arg(&file),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("SUCCESS"), "{stdout}");
        let receivers = config["receivers"].as_array().unwrap().len();
        assert!(
            stdout.contains(&format!("{receivers} receivers")),
            "{stdout}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.yaml");
    std::fs::write(&file, "route:\n  receiver: nowhere\nreceivers: []\n").unwrap();
    let out = Command::new(tool("amtool"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "amtool accepted an undefined receiver"
    );
}

/// The minor version of the installed amtool (`amtool, version 0.25.0 ...`).
pub fn amtool_minor() -> u32 {
    let out = run_ok(Command::new(tool("amtool")).arg("--version"));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let version = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or_else(|| panic!("cannot read amtool's version from {text:?}"));
    version.split('.').nth(1).unwrap().parse().unwrap()
}

/// The config as the installed amtool can check it. Pushover's `user_key_file`/`token_file`
/// (read from the mounted Secret, so no value is in the config) exist since Alertmanager
/// 0.26; kube-prometheus-stack runs a newer one, but Debian's amtool is 0.25. For an older
/// amtool those two keys become the inline `user_key`/`token` with dummy values; everything
/// else is checked as rendered.
pub fn for_amtool(config: &Value, minor: u32) -> Value {
    let mut c = config.clone();
    if minor >= 26 {
        return c;
    }
    for r in c["receivers"].as_array_mut().unwrap() {
        if let Some(list) = r.get_mut("pushover_configs").and_then(Value::as_array_mut) {
            for p in list {
                let m = p.as_object_mut().unwrap();
                let key_file = m.remove("user_key_file").expect("user_key_file");
                let token_file = m.remove("token_file").expect("token_file");
                assert!(
                    key_file
                        .as_str()
                        .unwrap()
                        .starts_with("/etc/alertmanager/secrets/")
                );
                assert!(
                    token_file
                        .as_str()
                        .unwrap()
                        .starts_with("/etc/alertmanager/secrets/")
                );
                m.insert("user_key".into(), Value::String("dummy-user-key".into()));
                m.insert("token".into(), Value::String("dummy-token".into()));
            }
        }
    }
    c
}
