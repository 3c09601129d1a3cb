//! The tree's layout (the seeds' repository structure): a directory per component under its
//! layer, a `kustomization.yaml` per component and per layer, the docs, and `renovate.json`.
//! Pure: it only assembles texts.

use std::collections::BTreeMap;

use homelab_plan::{Component, Layer, Plan};
use serde_json::{Value, json};

use crate::docs::{self, FileNote};
use crate::renovate::annotate;
use crate::yaml::{HEADER, manifest_file};
use crate::{
    Content, Flavor, RenderError, SecretValues, SopsSecret, Surroundings, Tree, flux, k3s, secrets,
};

/// Mode of every generated file that is not a plan file with a mode of its own.
const FILE_MODE: u32 = 0o644;

pub(crate) fn render(
    plan: &Plan,
    flavor: Flavor,
    secrets: Option<&dyn SecretValues>,
    around: &Surroundings,
) -> Result<Tree, RenderError> {
    let mut tree = Tree::default();
    let mut layers: BTreeMap<Layer, Vec<String>> = BTreeMap::new();
    let mut stages = BTreeMap::new();
    for c in &plan.components {
        let out = component(&mut tree, plan, c, flavor, secrets, around)?;
        let entries = layers.entry(c.layer).or_default();
        if out.has_main {
            entries.push(c.name.clone());
        }
        if out.has_config {
            entries.push(format!("{}/config", c.name));
        }
        stages.insert(c.name.clone(), out);
    }
    for (layer, entries) in &layers {
        if !entries.is_empty() {
            tree.insert(
                format!("{}/kustomization.yaml", layer.dir()),
                Content::Text(kustomization(entries)),
                FILE_MODE,
            );
        }
    }
    if flavor == Flavor::Flux {
        tree.insert(
            format!("clusters/{}/components.yaml", plan.lab_name),
            Content::Text(flux::kustomizations(plan, &stages)),
            FILE_MODE,
        );
    }
    for (path, text) in docs::lab_docs(plan, flavor, around) {
        tree.insert(path, Content::Text(text), FILE_MODE);
    }
    tree.insert(
        "renovate.json".into(),
        Content::Text(crate::renovate_json()),
        FILE_MODE,
    );
    Ok(tree)
}

/// A `kustomization.yaml` listing resources (files or directories).
fn kustomization(resources: &[String]) -> String {
    kustomization_with(resources, Vec::new())
}

/// A `kustomization.yaml` listing resources and the manifests directory's patches of them
/// (JSON Patches with their target, as kustomize's `patches:` takes them).
fn kustomization_with(resources: &[String], patches: Vec<Value>) -> String {
    let mut k = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    });
    if !patches.is_empty() {
        k["patches"] = Value::Array(patches);
    }
    format!("{HEADER}{}", homelab_spec::emit::to_yaml(&k))
}

/// A kustomize `patches:` entry for a patch of `object`.
fn patch_entry(p: &homelab_plan::ObjectPatch, object: &homelab_plan::Object) -> Value {
    let (group, version) = match object.api_version().rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", object.api_version()),
    };
    let mut target = json!({"kind": object.kind(), "name": object.name()});
    if !group.is_empty() {
        target["group"] = json!(group);
    }
    target["version"] = json!(version);
    if let Some(ns) = object.namespace() {
        target["namespace"] = json!(ns);
    }
    let mut text = homelab_spec::emit::to_yaml(&p.operations);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    json!({"target": target, "patch": text})
}

/// Renders one component's directory; returns which flux stages it has.
fn component(
    tree: &mut Tree,
    plan: &Plan,
    c: &Component,
    flavor: Flavor,
    values: Option<&dyn SecretValues>,
    around: &Surroundings,
) -> Result<flux::Stages, RenderError> {
    let dir = c.dir();
    let mut notes: Vec<FileNote> = Vec::new();
    let mut main: Vec<String> = Vec::new();
    let mut config: Vec<String> = Vec::new();

    // Plain manifests, in the files the plan names (first appearance order).
    let mut files: Vec<(String, Vec<&Value>)> = Vec::new();
    for o in &c.objects {
        let file = if flavor == Flavor::Flux && flux::needs_own_crds(c, o) {
            format!("config/{}", o.file)
        } else {
            o.file.clone()
        };
        match files.iter_mut().find(|(f, _)| *f == file) {
            Some((_, objs)) => objs.push(&o.manifest),
            None => files.push((file, vec![&o.manifest])),
        }
    }
    for (file, objects) in &files {
        let text = annotate(&manifest_file(objects.iter().copied()), None);
        tree.insert(format!("{dir}/{file}"), Content::Text(text), FILE_MODE);
        notes.push(FileNote::objects(file, objects));
        match file.strip_prefix("config/") {
            Some(f) => config.push(f.to_string()),
            None => main.push(file.clone()),
        }
    }

    // Helm releases: the values, and the object that installs the chart with them.
    let several = c.releases.len() > 1;
    for r in &c.releases {
        let name = if several {
            format!("values-homelab-{}.yaml", r.name)
        } else {
            "values-homelab.yaml".to_string()
        };
        let text = format!(
            "{HEADER}# Helm values of the release `{}` (chart `{}` from {}), in namespace `{}`.\n{}",
            r.name,
            r.chart.name,
            r.chart.repo,
            r.namespace,
            homelab_spec::emit::to_yaml(&r.values)
        );
        tree.insert(format!("{dir}/{name}"), Content::Text(text), FILE_MODE);
        notes.push(FileNote::values(&name, r));
    }
    if !c.releases.is_empty() {
        match flavor {
            Flavor::K3s => {
                tree.insert(
                    format!("{dir}/helmchart.yaml"),
                    Content::Text(k3s::helm_chart_file(c)),
                    FILE_MODE,
                );
                notes.push(FileNote::releases("helmchart.yaml", "HelmChart", c));
                main.push("helmchart.yaml".into());
            }
            Flavor::Flux => {
                for (file, text) in flux::source_files(c) {
                    tree.insert(format!("{dir}/{file}"), Content::Text(text), FILE_MODE);
                    let kind = if file == "ocirepository.yaml" {
                        "OCIRepository"
                    } else {
                        "HelmRepository"
                    };
                    notes.push(FileNote::releases(file, kind, c));
                    main.push(file.into());
                }
                tree.insert(
                    format!("{dir}/helmrelease.yaml"),
                    Content::Text(flux::helm_release_file(c)),
                    FILE_MODE,
                );
                notes.push(FileNote::releases("helmrelease.yaml", "HelmRelease", c));
                main.push("helmrelease.yaml".into());
            }
        }
    }

    // Secrets: encrypted files in the flux flavor; nowhere in the k3s one.
    let mut has_secrets = false;
    if flavor == Flavor::Flux {
        let values = values.ok_or(RenderError::FluxNeedsSecrets)?;
        for s in &c.secret_objects {
            // A Secret reading only optional secrets without a value is not written, as
            // `apply` does not send it; what mounts it mounts it optional (ADR 0133).
            let absent: Vec<String> = s
                .data
                .values()
                .flat_map(|v| v.secret_names())
                .filter(|n| values.secret(n).is_err())
                .collect();
            if plan.may_leave_out(&absent) {
                continue;
            }
            let file = secrets::sops_file_name(s);
            let plaintext = secrets::manifest(s, values)?;
            tree.insert(
                format!("{dir}/{file}"),
                Content::Sops(SopsSecret {
                    plaintext,
                    object: secrets::object_id(s),
                }),
                0o600,
            );
            notes.push(FileNote::secret(&file, s));
            main.push(file);
            has_secrets = true;
        }
    }

    for f in &c.files {
        tree.insert(
            format!("{dir}/{}", f.path),
            Content::Text(f.content.clone()),
            f.mode,
        );
        notes.push(FileNote::plain(c, f));
    }

    // The manifests directory's patches go with the kustomization holding their object.
    let mut main_patches = Vec::new();
    let mut config_patches = Vec::new();
    for p in &c.patches {
        let Some(o) = c.objects.get(p.object) else {
            continue;
        };
        let entry = patch_entry(p, o);
        if flavor == Flavor::Flux && flux::needs_own_crds(c, o) {
            config_patches.push(entry);
        } else {
            main_patches.push(entry);
        }
    }
    let has_main = !main.is_empty();
    let has_config = !config.is_empty();
    if has_main {
        tree.insert(
            format!("{dir}/kustomization.yaml"),
            Content::Text(kustomization_with(&main, main_patches)),
            FILE_MODE,
        );
    }
    if has_config {
        tree.insert(
            format!("{dir}/config/kustomization.yaml"),
            Content::Text(kustomization_with(&config, config_patches)),
            FILE_MODE,
        );
    }
    tree.insert(
        format!("{dir}/README.md"),
        Content::Text(docs::component_readme(plan, c, flavor, &notes, around)),
        FILE_MODE,
    );
    Ok(flux::Stages {
        has_main,
        has_config,
        has_secrets,
    })
}
