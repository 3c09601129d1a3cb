//! Checks the spec's `manifests:` directory against the plan: its files read into the lab
//! (objects and patches, see `homelab_spec::manifests`), no object homelab generates defined
//! again, and every patch naming a generated object and applying to it. Pure: the caller
//! lists and reads the directory.

use homelab_spec::manifests::{ManifestFile, Sources};
use homelab_spec::{Diagnostic, InvalidSpec, LoadedSpec};

use crate::catalog::manifests::{NAME, targets};

/// Fills the lab's manifests from `files` (what the caller read from the directory, or why
/// it could not) and checks them; a spec without `manifests:` passes as it is.
pub fn check_loaded(
    mut loaded: LoadedSpec,
    files: Result<Vec<ManifestFile>, String>,
) -> Result<LoadedSpec, InvalidSpec> {
    let Some(mut m) = loaded.lab.manifests.take() else {
        return Ok(loaded);
    };
    let files = match files {
        Ok(files) => files,
        Err(reason) => {
            let mut diags = std::mem::take(&mut loaded.warnings);
            diags.push(
                Diagnostic::error(
                    "manifests-unreadable",
                    format!("the manifests directory `{}` cannot be read: {reason}", m.dir),
                )
                .at(m.span)
                .help("create the directory beside homelab.yaml with your `*.yaml` manifests in it, or remove `manifests:`"),
            );
            return Err(InvalidSpec::new(loaded.source, diags));
        }
    };
    let mut sources = homelab_spec::manifests::read(&mut m, files);
    if !has_errors(&sources) {
        loaded.lab.manifests = Some(m);
        let plan = crate::plan(&loaded.lab);
        check_against_plan(&loaded, &plan, &mut sources);
        if !has_errors(&sources) {
            return Ok(loaded);
        }
    }
    for (file, diags) in &mut sources {
        diags.sort_by_key(|d| (d.span.map_or(0, |s| s.start), d.severity));
        for d in diags.iter_mut() {
            file.scrub(d);
        }
    }
    Err(InvalidSpec {
        file: Box::new(loaded.source),
        diagnostics: loaded.warnings,
        others: sources.into_iter().filter(|(_, d)| !d.is_empty()).collect(),
    })
}

fn has_errors(sources: &Sources) -> bool {
    sources
        .iter()
        .any(|(_, d)| d.iter().any(Diagnostic::is_error))
}

fn check_against_plan(loaded: &LoadedSpec, plan: &crate::Plan, sources: &mut Sources) {
    let Some(m) = &loaded.lab.manifests else {
        return;
    };
    let generated = || {
        plan.components
            .iter()
            .filter(|c| c.name != NAME)
            .flat_map(|c| c.objects.iter().map(move |o| (c, o)))
    };
    for o in &m.objects {
        let id = homelab_spec::manifests::identity(&o.manifest);
        let clash = generated().find(|(_, g)| {
            g.kind() == id.1 && g.namespace().unwrap_or_default() == id.2 && g.name() == id.3
        });
        if let Some((c, g)) = clash {
            let (index, span) = o.at;
            sources[index].1.push(
                Diagnostic::error(
                    "manifest-generated",
                    format!("homelab already generates {} (component `{}`)", g.id(), c.name),
                )
                .at(span)
                .help(format!(
                    "to change it, write a patch in {}/patches/ (`target: {{kind: {}, name: {}{}}}` and `patch:` with JSON Patch operations) instead of defining it again",
                    m.dir,
                    g.kind(),
                    g.name(),
                    g.namespace().map(|ns| format!(", namespace: {ns}")).unwrap_or_default()
                )),
            );
        }
    }
    for p in &m.patches {
        let (index, span) = p.target_at;
        let t = &p.target;
        let shown = match &t.namespace {
            Some(ns) => format!("{} {ns}/{}", t.kind, t.name),
            None => format!("{} {}", t.kind, t.name),
        };
        let Some((_, object)) = generated().find(|(_, o)| targets(t, o)) else {
            let own = m.objects.iter().any(|o| {
                let id = homelab_spec::manifests::identity(&o.manifest);
                id.1 == t.kind && id.3 == t.name && id.2 == t.namespace.clone().unwrap_or_default()
            });
            let help = if own {
                "this object is one of your manifests: change its file instead of patching it"
                    .to_string()
            } else {
                let same_kind: Vec<String> = generated()
                    .filter(|(_, o)| o.kind() == t.kind)
                    .map(|(_, o)| match o.namespace() {
                        Some(ns) => format!("{ns}/{}", o.name()),
                        None => o.name().to_string(),
                    })
                    .collect();
                match same_kind.len() {
                    0 => format!(
                        "homelab generates no {}; `homelab plan --output json` lists what it generates",
                        t.kind
                    ),
                    _ => format!(
                        "the {} objects homelab generates are {} (check `name` and `namespace`)",
                        t.kind,
                        same_kind
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            };
            sources[index].1.push(
                Diagnostic::error(
                    "patch-target",
                    format!("homelab generates no {shown} for this patch to change"),
                )
                .at(span)
                .help(help),
            );
            continue;
        };
        let patch = crate::ObjectPatch {
            file: p.file.clone(),
            object: 0,
            target: t.clone(),
            operations: p.operations.clone(),
        };
        let mut manifest = object.manifest.clone();
        match patch.apply_to(&mut manifest, &object.id()) {
            Err(e) => {
                let at = e
                    .operation
                    .and_then(|i| p.operation_spans.get(i).copied())
                    .unwrap_or(span);
                sources[index].1.push(
                    Diagnostic::error("patch-fails", format!("this patch does not apply to {}: {}", object.id(), e.reason))
                        .at(at)
                        .help("compare the path with the generated object (`homelab render`, then its file under the component's directory): `add` needs the parent to exist, `replace`, `remove` and `test` the value itself"),
                );
            }
            Ok(()) => {
                let before = homelab_spec::manifests::identity(&object.manifest);
                let after = homelab_spec::manifests::identity(&manifest);
                if before != after || manifest["apiVersion"] != object.manifest["apiVersion"] {
                    sources[index].1.push(
                        Diagnostic::error("patch-fails", format!("this patch changes which object {} is", object.id()))
                            .at(span)
                            .help("a patch must keep `apiVersion`, `kind`, `metadata.name` and `metadata.namespace`; to add an object of your own, write it as a manifest outside patches/"),
                    );
                }
            }
        }
    }
}
