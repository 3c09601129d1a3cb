//! The files of the spec's `manifests:` directory, read by the caller and checked here: plain
//! objects (every document a Kubernetes object naming its namespace) and, under `patches/`,
//! JSON Patches for objects homelab generates. Pure: it never lists or reads the directory;
//! whether a patch's target exists is the plan's business.

use std::collections::HashMap;

use crate::diag::{Diagnostic, SourceFile, Span};
use crate::lab::{Manifests, PatchTarget, UserObject, UserPatch};
use crate::yaml::{self, Node, Value};

/// Files under this subdirectory are patches, every other `*.yaml` a plain manifest.
pub const PATCHES_DIR: &str = "patches/";

/// The most files a manifests directory may hold; far more than a lab needs, and a guard
/// against pointing `manifests:` at a large tree by mistake.
pub const MAX_FILES: usize = 1000;

/// Kinds that live outside namespaces (the built-in ones and those of the catalog's charts).
/// Any other kind must name its namespace.
pub const CLUSTER_SCOPED: &[&str] = &[
    "APIService",
    "CSIDriver",
    "CertificateSigningRequest",
    "ClusterIssuer",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PriorityClass",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
    "VolumeSnapshotClass",
];

/// One file as read: its path relative to the manifests directory (`/`-separated) and text.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    pub path: String,
    pub text: String,
}

/// The files of the directory, each as a source for diagnostics with what was found in it;
/// the index of a file here is the one [`UserObject::at`] and [`UserPatch::target_at`] hold.
pub type Sources = Vec<(SourceFile, Vec<Diagnostic>)>;

/// Reads the objects and patches of `files` into `manifests` and returns every file with
/// its problems. Files are taken in path order.
pub fn read(manifests: &mut Manifests, mut files: Vec<ManifestFile>) -> Sources {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut sources = Vec::new();
    let mut seen: HashMap<(String, String, String, String), String> = HashMap::new();
    for (index, f) in files.into_iter().enumerate() {
        let source = SourceFile::new(format!("{}/{}", manifests.dir, f.path), f.text);
        let mut diags = Vec::new();
        match yaml::parse_stream(source.text()) {
            Err(found) => diags.extend(found),
            Ok(documents) => {
                for doc in &documents {
                    if f.path.starts_with(PATCHES_DIR) {
                        if let Some(p) = patch(doc, &f.path, index, &mut diags) {
                            manifests.patches.push(p);
                        }
                    } else if let Some(o) = object(doc, &f.path, index, &mut diags) {
                        let id = identity(&o.manifest);
                        if let Some(first) = seen.get(&id) {
                            diags.push(
                                Diagnostic::error(
                                    "manifest-duplicate",
                                    format!("{} `{}` is defined twice", id.1, describe(&id)),
                                )
                                .at(o.at.1)
                                .help(format!(
                                    "it is also in {}/{first}: keep one of the two",
                                    manifests.dir
                                )),
                            );
                        } else {
                            seen.insert(id, f.path.clone());
                            manifests.objects.push(o);
                        }
                    }
                }
            }
        }
        sources.push((source, diags));
    }
    sources
}

/// (API group, kind, namespace, name): what makes an object the same object to the API.
pub fn identity(manifest: &serde_json::Value) -> (String, String, String, String) {
    let s = |p: &str| {
        manifest
            .pointer(p)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let api = s("/apiVersion");
    let group = api
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or("")
        .to_string();
    (
        group,
        s("/kind"),
        s("/metadata/namespace"),
        s("/metadata/name"),
    )
}

fn describe(id: &(String, String, String, String)) -> String {
    match id.2.as_str() {
        "" => id.3.clone(),
        ns => format!("{ns}/{}", id.3),
    }
}

fn get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.scalar_text() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// A key's value as text, or an error at the mapping when it is missing or not text.
fn text<'a>(node: &'a Node, key: &str, what: &str, diags: &mut Vec<Diagnostic>) -> Option<&'a str> {
    match get(node, key) {
        Some(v) => match v.resolve() {
            Some(yaml::Resolved::Str(s)) if !s.trim().is_empty() => Some(s),
            _ => {
                diags.push(
                    Diagnostic::error(
                        "manifest-shape",
                        format!("`{key}` must be text, but this is {}", v.describe()),
                    )
                    .at(v.span)
                    .help(format!("write {what}")),
                );
                None
            }
        },
        None => {
            diags.push(
                Diagnostic::error(
                    "manifest-shape",
                    format!(
                        "this {} has no `{key}`",
                        if key == "name" || key == "kind" {
                            "mapping"
                        } else {
                            "object"
                        }
                    ),
                )
                .at(Span::new(node.span.start, node.span.start))
                .scope(node.span)
                .help(format!("add `{key}:` with {what}")),
            );
            None
        }
    }
}

fn object(doc: &Node, file: &str, index: usize, diags: &mut Vec<Diagnostic>) -> Option<UserObject> {
    if !matches!(doc.value, Value::Map(_)) {
        diags.push(
            Diagnostic::error(
                "manifest-shape",
                format!(
                    "a manifest must be a Kubernetes object (a mapping), but this is {}",
                    doc.describe()
                ),
            )
            .at(doc.span)
            .help("write one object per YAML document, separated by `---` lines"),
        );
        return None;
    }
    let api = text(
        doc,
        "apiVersion",
        "the object's API version, e.g. `apiVersion: v1`",
        diags,
    );
    let kind = text(
        doc,
        "kind",
        "the object's kind, e.g. `kind: ConfigMap`",
        diags,
    );
    let meta = get(doc, "metadata");
    let (name, namespace) = match meta {
        Some(m) if matches!(m.value, Value::Map(_)) => (
            text(m, "name", "the object's name", diags),
            get(m, "namespace"),
        ),
        Some(m) => {
            diags.push(
                Diagnostic::error(
                    "manifest-shape",
                    format!("`metadata` must be a mapping, but this is {}", m.describe()),
                )
                .at(m.span)
                .help("write `metadata:` with `name:` and `namespace:`"),
            );
            (None, None)
        }
        None => {
            diags.push(
                Diagnostic::error("manifest-shape", "this object has no `metadata`")
                    .at(Span::new(doc.span.start, doc.span.start))
                    .scope(doc.span)
                    .help("add `metadata:` with `name:` and `namespace:`"),
            );
            (None, None)
        }
    };
    let (api, kind, _name) = (api?, kind?, name?);
    let kind_span = get(doc, "kind").map_or(doc.span, |k| k.span);
    match kind {
        "Secret" => {
            diags.push(
                Diagnostic::error("manifest-secret", "a Secret in the manifests directory would be plaintext in git")
                    .at(kind_span)
                    .help("keep the value in secrets.sops.yaml (`homelab secrets set NAME`) and pass it to an app with `secretEnv`, or create the Secret outside the repository"),
            );
            return None;
        }
        "List" => {
            diags.push(
                Diagnostic::error("manifest-shape", "a `List` is not applied item by item")
                    .at(kind_span)
                    .help("write each item as its own YAML document, separated by `---` lines"),
            );
            return None;
        }
        _ => {}
    }
    let cluster_scoped = CLUSTER_SCOPED.contains(&kind);
    match (namespace, cluster_scoped) {
        (None, false) => {
            let m = meta.expect("metadata was read");
            diags.push(
                Diagnostic::error("manifest-namespace", format!("this {kind} names no namespace"))
                    .at(get(m, "name").map_or(m.span, |n| n.span))
                    .help("add `namespace:` under `metadata:` (homelab creates the namespace when nothing else does); objects are never put into `default` silently"),
            );
            return None;
        }
        (Some(ns), false) => {
            match ns.resolve() {
                Some(yaml::Resolved::Str(s))
                    if crate::types::check_dns_label(s, "namespace").is_ok() => {}
                _ => {
                    diags.push(
                    Diagnostic::error("manifest-namespace", format!("`{}` is not a namespace name", ns.scalar_text().unwrap_or("this")))
                        .at(ns.span)
                        .help("a namespace is a DNS label: lowercase letters, digits and `-`, at most 63"),
                );
                    return None;
                }
            }
        }
        (Some(ns), true) => {
            diags.push(
                Diagnostic::error("manifest-namespace", format!("a {kind} has no namespace"))
                    .at(ns.span)
                    .help("remove `namespace:`: this kind lives outside namespaces"),
            );
            return None;
        }
        (None, true) => {}
    }
    let _ = api;
    Some(UserObject {
        file: file.to_string(),
        manifest: doc.to_json(),
        at: (index, doc.span),
    })
}

const OPS: &[&str] = &["add", "remove", "replace", "move", "copy", "test"];

fn patch(doc: &Node, file: &str, index: usize, diags: &mut Vec<Diagnostic>) -> Option<UserPatch> {
    let help = "a patch file holds `target: {kind, name, namespace}` and `patch:` with a list of JSON Patch operations (`- {op: add, path: /spec/..., value: ...}`)";
    let Value::Map(entries) = &doc.value else {
        diags.push(
            Diagnostic::error(
                "patch-shape",
                format!("a patch must be a mapping, but this is {}", doc.describe()),
            )
            .at(doc.span)
            .help(help),
        );
        return None;
    };
    let before = diags.len();
    for (k, _) in entries {
        let key = k.scalar_text().unwrap_or_default();
        if key != "target" && key != "patch" {
            diags.push(
                Diagnostic::error("patch-shape", format!("`{key}` is not a key of a patch"))
                    .at(k.span)
                    .help(help),
            );
        }
    }
    let target = match get(doc, "target") {
        Some(t) if matches!(t.value, Value::Map(_)) => {
            if let Value::Map(entries) = &t.value {
                for (k, _) in entries {
                    let key = k.scalar_text().unwrap_or_default();
                    if !["apiVersion", "kind", "name", "namespace"].contains(&key) {
                        diags.push(
                            Diagnostic::error("patch-shape", format!("`{key}` is not a key of a patch target"))
                                .at(k.span)
                                .help("a target names `kind`, `name`, and `namespace` for namespaced kinds (`apiVersion` optional)"),
                        );
                    }
                }
            }
            let kind = text(
                t,
                "kind",
                "the kind of the object to change, e.g. `kind: Deployment`",
                diags,
            );
            let name = text(t, "name", "the name of the object to change", diags);
            let optional = |key: &str, diags: &mut Vec<Diagnostic>| {
                get(t, key)
                    .and_then(|_| text(t, key, "text", diags))
                    .map(str::to_string)
            };
            let namespace = optional("namespace", diags);
            let api_version = optional("apiVersion", diags);
            match (kind, name) {
                (Some(kind), Some(name)) => Some((
                    PatchTarget {
                        api_version,
                        kind: kind.to_string(),
                        name: name.to_string(),
                        namespace,
                    },
                    t.span,
                )),
                _ => None,
            }
        }
        Some(t) => {
            diags.push(
                Diagnostic::error(
                    "patch-shape",
                    format!("`target` must be a mapping, but this is {}", t.describe()),
                )
                .at(t.span)
                .help(help),
            );
            None
        }
        None => {
            diags.push(
                Diagnostic::error("patch-shape", "this patch has no `target`")
                    .at(Span::new(doc.span.start, doc.span.start))
                    .scope(doc.span)
                    .help(help),
            );
            None
        }
    };
    let mut spans = Vec::new();
    match get(doc, "patch") {
        Some(Node {
            value: Value::Seq(items),
            span,
        }) if !items.is_empty() => {
            for op in items {
                spans.push(op.span);
                operation(op, diags);
            }
            let _ = span;
        }
        Some(p) => {
            diags.push(
                Diagnostic::error(
                    "patch-shape",
                    format!(
                        "`patch` must be a list of JSON Patch operations, but this is {}",
                        p.describe()
                    ),
                )
                .at(p.span)
                .help(help),
            );
        }
        None => {
            diags.push(
                Diagnostic::error("patch-shape", "this patch has no `patch`")
                    .at(Span::new(doc.span.start, doc.span.start))
                    .scope(doc.span)
                    .help(help),
            );
        }
    }
    if diags.len() > before {
        return None;
    }
    let (target, target_span) = target?;
    Some(UserPatch {
        file: file.to_string(),
        target,
        operations: get(doc, "patch").map(Node::to_json).unwrap_or_default(),
        target_at: (index, target_span),
        operation_spans: spans,
    })
}

fn operation(op: &Node, diags: &mut Vec<Diagnostic>) {
    let Value::Map(entries) = &op.value else {
        diags.push(
            Diagnostic::error("patch-operation", format!("an operation must be a mapping, but this is {}", op.describe()))
                .at(op.span)
                .help("write e.g. `- {op: add, path: /spec/template/spec/nodeSelector, value: {disk: ssd}}`"),
        );
        return;
    };
    let Some(name) = text(
        op,
        "op",
        "one of add, remove, replace, move, copy, test",
        diags,
    ) else {
        return;
    };
    if !OPS.contains(&name) {
        diags.push(
            Diagnostic::error(
                "patch-operation",
                format!("`{name}` is not a JSON Patch operation"),
            )
            .at(get(op, "op").map_or(op.span, |n| n.span))
            .help("use one of add, remove, replace, move, copy, test"),
        );
        return;
    }
    let mut allowed = vec!["op", "path"];
    match name {
        "add" | "replace" | "test" => allowed.push("value"),
        "move" | "copy" => allowed.push("from"),
        _ => {}
    }
    for (k, _) in entries {
        let key = k.scalar_text().unwrap_or_default();
        if !allowed.contains(&key) {
            diags.push(
                Diagnostic::error(
                    "patch-operation",
                    format!("`{key}` does not belong to a `{name}` operation"),
                )
                .at(k.span)
                .help(format!("a `{name}` operation takes {}", allowed.join(", "))),
            );
        }
    }
    for key in &allowed[1..] {
        if *key == "value" {
            if get(op, "value").is_none() {
                diags.push(
                    Diagnostic::error(
                        "patch-operation",
                        format!("this `{name}` operation has no `value`"),
                    )
                    .at(op.span)
                    .help("add `value:` with what to write at `path`"),
                );
            }
            continue;
        }
        if let Some(p) = text(op, key, "a JSON Pointer such as `/spec/replicas`", diags)
            && !p.starts_with('/')
        {
            {
                diags.push(
                    Diagnostic::error("patch-operation", format!("`{p}` is not a JSON Pointer"))
                        .at(get(op, key).map_or(op.span, |n| n.span))
                        .help(
                            "a path starts with `/`, e.g. `/spec/template/spec/containers/0/args`",
                        ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifests() -> Manifests {
        Manifests {
            dir: "manifests".into(),
            span: Span::default(),
            objects: Vec::new(),
            patches: Vec::new(),
        }
    }

    fn file(path: &str, text: &str) -> ManifestFile {
        ManifestFile {
            path: path.into(),
            text: text.into(),
        }
    }

    fn codes(sources: &Sources) -> Vec<&'static str> {
        sources
            .iter()
            .flat_map(|(_, d)| d.iter().map(|d| d.code))
            .collect()
    }

    #[test]
    fn objects_and_patches_are_read_in_path_order() {
        let mut m = manifests();
        let sources = read(
            &mut m,
            vec![
                file(
                    "z.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: z, namespace: media}\n",
                ),
                file(
                    "a.yaml",
                    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: media}\nspec: {podSelector: {}}\n---\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: reader}\n",
                ),
                file(
                    "patches/plex.yaml",
                    "target: {kind: Deployment, name: plex, namespace: media}\npatch:\n  - {op: add, path: /spec/template/spec/priorityClassName, value: high}\n",
                ),
            ],
        );
        assert_eq!(codes(&sources), Vec::<&str>::new());
        let names: Vec<_> = m
            .objects
            .iter()
            .map(|o| {
                (
                    o.file.as_str(),
                    o.manifest["metadata"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [("a.yaml", "a"), ("a.yaml", "reader"), ("z.yaml", "z")]
        );
        assert_eq!(sources[0].0.name(), "manifests/a.yaml");
        assert_eq!(m.patches.len(), 1);
        assert_eq!(m.patches[0].target.kind, "Deployment");
        assert_eq!(m.patches[0].operations[0]["value"], "high");
        assert_eq!(m.objects[0].at.0, 0);
        assert_eq!(m.objects[2].at.0, 2);
    }

    #[test]
    fn each_bad_object_is_an_error_where_it_is_written() {
        let mut m = manifests();
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: no-namespace}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: a}\n---\nkind: ConfigMap\nmetadata: {name: x, namespace: a}\n---\n- just a list\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: n, namespace: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: twice, namespace: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: twice, namespace: a}\n";
        let sources = read(&mut m, vec![file("bad.yaml", text)]);
        let (src, diags) = &sources[0];
        let at: Vec<(&str, usize)> = diags
            .iter()
            .map(|d| (d.code, src.position(d.span.unwrap().start).line))
            .collect();
        assert_eq!(
            at,
            [
                ("manifest-namespace", 3),
                ("manifest-secret", 6),
                ("manifest-shape", 9),
                ("manifest-shape", 12),
                ("manifest-namespace", 16),
                ("manifest-duplicate", 22),
            ]
        );
        assert_eq!(m.objects.len(), 1, "only the first `twice` is kept");
    }

    #[test]
    fn bad_patches_are_errors_at_the_operation() {
        let mut m = manifests();
        let text = "target: {kind: Deployment, name: plex, namespace: media}\npatch:\n  - {op: frobnicate, path: /spec}\n  - {op: add, path: spec/x, value: 1}\n  - {op: replace, path: /spec/replicas}\n  - {op: remove, path: /spec/x, value: 2}\n---\ntarget: {kind: Deployment}\npatch: []\nextra: 1\n";
        let sources = read(&mut m, vec![file("patches/p.yaml", text)]);
        let (src, diags) = &sources[0];
        let at: Vec<(&str, usize)> = diags
            .iter()
            .map(|d| (d.code, src.position(d.span.unwrap().start).line))
            .collect();
        assert_eq!(
            at,
            [
                ("patch-operation", 3),
                ("patch-operation", 4),
                ("patch-operation", 5),
                ("patch-operation", 6),
                ("patch-shape", 10),
                ("manifest-shape", 8),
                ("patch-shape", 9),
            ]
        );
        assert!(m.patches.is_empty());
    }

    #[test]
    fn yaml_errors_name_the_file() {
        let mut m = manifests();
        let sources = read(&mut m, vec![file("x.yaml", "a: [1, 2\n")]);
        assert_eq!(sources[0].0.name(), "manifests/x.yaml");
        assert!(sources[0].1.iter().all(Diagnostic::is_error) && !sources[0].1.is_empty());
    }
}
