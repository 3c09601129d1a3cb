//! Schema checks of every object in the lab: the Kubernetes kinds with kubernetes-validate's
//! strict schemas of the lab's Kubernetes minor (offline), custom resources against the CRDs
//! the lab's charts ship.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::common::{is_core_kind, venv_tool};
use crate::crd::Crds;
use crate::lab::Obj;

/// Findings of `kubernetes-validate --strict` for every Kubernetes-kind object, in one run.
pub fn kubernetes(objects: &[Obj], kube_version: &str, dir: &Path) -> Vec<String> {
    let minor = kube_version.split('.').nth(1).unwrap();
    let k8s = format!("1.{minor}.0");
    std::fs::create_dir_all(dir).unwrap();
    let mut files: BTreeMap<String, &Obj> = BTreeMap::new();
    for (i, o) in objects.iter().enumerate() {
        if !is_core_kind(o.value["apiVersion"].as_str().unwrap_or_default()) {
            continue;
        }
        let path = dir.join(format!("{i:05}.json"));
        std::fs::write(&path, serde_json::to_vec(&o.value).unwrap()).unwrap();
        files.insert(path.to_string_lossy().into_owned(), o);
    }
    assert!(!files.is_empty(), "no Kubernetes object to validate");
    let out = Command::new(venv_tool("kubernetes-validate"))
        .args(["-k", &k8s, "--strict", "--quiet"])
        .args(files.keys())
        .output()
        .expect("run kubernetes-validate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut findings = Vec::new();
    for line in stdout.lines() {
        let Some((level, rest)) = line.split_once(' ') else {
            continue;
        };
        if level != "ERROR" && level != "WARN" {
            continue;
        }
        let (path, message) = rest.split_once(' ').unwrap_or((rest, ""));
        match files.get(path) {
            Some(o) => findings.push(format!(
                "{}: Kubernetes {k8s} strict schema: {message}",
                o.id()
            )),
            None => findings.push(format!("kubernetes-validate: {line}")),
        }
    }
    if !out.status.success() && findings.is_empty() {
        findings.push(format!(
            "kubernetes-validate -k {k8s} --strict failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    findings
}

/// Every custom resource against its CRD: a kind that no chart of the lab defines is a
/// finding too (the API server would refuse it).
pub fn custom_resources(objects: &[Obj], crds: &Crds) -> Vec<String> {
    objects
        .iter()
        .filter(|o| !is_core_kind(o.value["apiVersion"].as_str().unwrap_or_default()))
        .filter_map(|o| {
            crds.check(&o.value)
                .err()
                .map(|e| format!("{}: {e}", o.id()))
        })
        .collect()
}
