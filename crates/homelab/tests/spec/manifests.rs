//! The spec's `manifests:` directory through the binary: its objects and patches in `plan`
//! and `render`, and every bad input an error at its file:line:col, exit 2, with nothing
//! written.

use crate::support::{Spec, Workdir};

fn with_manifests(files: &[(&str, &str)]) -> Workdir {
    let work = Workdir::new();
    work.write(
        "homelab.yaml",
        format!("{}\nmanifests: manifests\n", Spec::seed().text()),
    );
    for (path, text) in files {
        work.write(&format!("manifests/{path}"), text);
    }
    work
}

const CONFIG_MAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: homepage\n  namespace: homepage\ndata:\n  title: My lab\n";

const REDIS_PATCH: &str = "target: {kind: Deployment, name: paperless-redis, namespace: docs}\npatch:\n  - op: add\n    path: /spec/template/spec/priorityClassName\n    value: system-cluster-critical\n";

#[test]
fn objects_and_patches_are_planned_and_rendered() {
    let work = with_manifests(&[
        ("homepage.yaml", CONFIG_MAP),
        ("patches/redis.yaml", REDIS_PATCH),
        ("notes.txt", "not a manifest"),
        (".hidden.yaml", "not: read"),
    ]);
    let run = work.run(&["validate"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let plan = work.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.transcript());
    assert!(
        plan.stdout.contains("ConfigMap homepage  [homepage.yaml]"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains(
            "patched: Deployment paperless-redis by manifests patches/redis.yaml (1 operation)"
        ),
        "{}",
        plan.stdout
    );
    let doc = work.run(&["plan", "--output", "json"]).json();
    let components = doc["components"].as_array().unwrap();
    let last = components.last().unwrap();
    assert_eq!(last["name"], "manifests");
    let kinds: Vec<String> = last["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(kinds, ["Namespace homepage", "ConfigMap homepage"]);
    let paperless = components
        .iter()
        .find(|c| c["name"] == "paperless")
        .unwrap();
    assert_eq!(paperless["patches"][0]["target"]["name"], "paperless-redis");

    let render = work.run(&["render", "--out", "tree"]);
    assert_eq!(render.code, 0, "{}", render.transcript());
    assert!(
        work.read("tree/applications/manifests/homepage.yaml")
            .contains("title: My lab")
    );
    let k = work.read("tree/applications/paperless/kustomization.yaml");
    assert!(
        k.contains("patches:") && k.contains("priorityClassName"),
        "{k}"
    );
}

/// Runs `validate` and `render` on a bad directory: both exit 2 naming `place` (the
/// file:line:col) and `code`, and nothing is written.
fn refused(work: &Workdir, place: &str, code: &str) -> String {
    let before = work.state();
    let run = work.run(&["validate"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.contains(&format!("error[{code}]")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(place),
        "expected {place}:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("help:"), "{}", run.stderr);
    let json = work.run(&["validate", "--output", "json"]).json();
    let d = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == code)
        .unwrap_or_else(|| panic!("{json}"))
        .clone();
    let (file, rest) = place.rsplit_once(':').unwrap().0.rsplit_once(':').unwrap();
    assert_eq!(d["file"], file, "{d}");
    assert_eq!(d["line"].to_string(), rest, "{d}");
    let render = work.run(&["render", "--out", "tree"]);
    assert_eq!(render.code, 2, "{}", render.transcript());
    assert_eq!(work.state(), before, "nothing is written");
    run.stderr
}

#[test]
fn a_missing_directory_is_an_error_at_the_spec_key() {
    let work = with_manifests(&[]);
    let line = work.read("homelab.yaml").lines().count();
    let stderr = refused(
        &work,
        &format!("homelab.yaml:{line}:12"),
        "manifests-unreadable",
    );
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn an_absolute_directory_is_refused() {
    let work = Workdir::new();
    work.write(
        "homelab.yaml",
        format!("{}\nmanifests: /etc/k8s\n", Spec::seed().text()),
    );
    let line = work.read("homelab.yaml").lines().count();
    refused(&work, &format!("homelab.yaml:{line}:12"), "manifests-dir");
}

#[test]
fn a_secret_is_refused_where_its_kind_is_written() {
    let work = with_manifests(&[(
        "db.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: data}\nstringData: {password: hunter2hunter2}\n",
    )]);
    let stderr = refused(&work, "manifests/db.yaml:2:7", "manifest-secret");
    assert!(
        !stderr.contains("hunter2hunter2"),
        "the value is never shown:\n{stderr}"
    );
}

#[test]
fn an_object_without_namespace_is_refused_at_its_name() {
    let work = with_manifests(&[(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: homepage\n",
    )]);
    refused(&work, "manifests/cm.yaml:4:9", "manifest-namespace");
}

#[test]
fn yaml_that_does_not_parse_is_located_in_its_file() {
    let work = with_manifests(&[
        ("ok.yaml", CONFIG_MAP),
        ("broken.yaml", "apiVersion: v1\nkind: [ConfigMap\n"),
    ]);
    let stderr = refused(&work, "manifests/broken.yaml:3:1", "yaml-syntax");
    assert!(!stderr.contains("ok.yaml"), "{stderr}");
}

#[test]
fn redefining_a_generated_object_points_to_a_patch() {
    let work = with_manifests(&[(
        "redis.yaml",
        "# my own redis\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: paperless-redis, namespace: docs}\nspec: {}\n",
    )]);
    let stderr = refused(&work, "manifests/redis.yaml:2:1", "manifest-generated");
    assert!(
        stderr.contains("component `paperless`") && stderr.contains("patches/"),
        "{stderr}"
    );
}

#[test]
fn a_patch_of_nothing_names_what_exists() {
    let work = with_manifests(&[(
        "patches/p.yaml",
        "target: {kind: Deployment, name: paperless-rediss, namespace: docs}\npatch:\n  - {op: add, path: /spec/paused, value: true}\n",
    )]);
    let stderr = refused(&work, "manifests/patches/p.yaml:1:9", "patch-target");
    assert!(stderr.contains("`docs/paperless-redis`"), "{stderr}");
}

#[test]
fn a_patch_that_does_not_apply_is_an_error_at_its_operation() {
    let work = with_manifests(&[(
        "patches/p.yaml",
        "target: {kind: Deployment, name: paperless-redis, namespace: docs}\npatch:\n  - {op: add, path: /spec/paused, value: true}\n  - {op: replace, path: /spec/template/spec/nosuch/field, value: 1}\n",
    )]);
    let stderr = refused(&work, "manifests/patches/p.yaml:4:5", "patch-fails");
    assert!(stderr.contains("operation 2"), "{stderr}");
}

#[test]
fn a_bad_operation_is_an_error_at_its_op() {
    let work = with_manifests(&[(
        "patches/p.yaml",
        "target: {kind: Deployment, name: paperless-redis, namespace: docs}\npatch:\n  - {op: merge, path: /spec}\n",
    )]);
    refused(&work, "manifests/patches/p.yaml:3:10", "patch-operation");
}
