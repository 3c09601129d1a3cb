//! The spec's `manifests:` directory in the plan: its objects as one component applied after
//! every other (with namespaces nothing else creates), and its patches attached to the
//! generated objects they change.

use std::collections::BTreeSet;

use homelab_spec::lab::{Manifests, PatchTarget};

use crate::meta::namespace;
use crate::{Component, Layer, Object, ObjectPatch};

/// The component's name (reserved: no app or chart may take it).
pub const NAME: &str = "manifests";

pub(super) fn component(m: &Manifests, others: &[Component]) -> Component {
    let mut c = Component::new(NAME, Layer::Applications, None);
    // After everything the cluster gets, so that CRDs, webhooks and namespaces are there.
    c.depends_on = others
        .iter()
        .filter(|o| !o.objects.is_empty() || !o.releases.is_empty())
        .map(|o| o.name.clone())
        .collect();
    let created: BTreeSet<&str> = others
        .iter()
        .flat_map(|o| o.objects.iter())
        .chain(c.objects.iter())
        .filter(|o| o.kind() == "Namespace")
        .map(Object::name)
        .chain(
            m.objects
                .iter()
                .filter(|o| o.manifest["kind"] == "Namespace")
                .filter_map(|o| o.manifest["metadata"]["name"].as_str()),
        )
        .collect();
    let missing: BTreeSet<&str> = m
        .objects
        .iter()
        .filter_map(|o| o.manifest["metadata"]["namespace"].as_str())
        .filter(|ns| !created.contains(ns))
        .collect();
    for ns in missing {
        c.add("namespaces.yaml", namespace(ns, None));
    }
    for o in &m.objects {
        c.add(&o.file, o.manifest.clone());
        let kind = o.manifest["kind"].as_str().unwrap_or_default();
        if matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet")
            && let (Some(ns), Some(name)) = (
                o.manifest["metadata"]["namespace"].as_str(),
                o.manifest["metadata"]["name"].as_str(),
            )
        {
            c.health.push(crate::HealthCheck::Workload {
                kind: kind.into(),
                namespace: ns.into(),
                name: name.into(),
            });
        }
    }
    c.docs = crate::ComponentDocs {
        title: "Your manifests".into(),
        what: format!(
            "The Kubernetes objects of the `{}` directory beside homelab.yaml, applied after every other component and pruned with the lab.",
            m.dir
        ),
        why: "What the spec has no key for, kept in the same repository and ApplySet as the rest of the lab.".into(),
        access: Vec::new(),
        data: "As the objects say (homelab adds only the namespaces they need).".into(),
        backup: "The objects are in git; data they claim is backed up as their storage class's is.".into(),
        requirements: vec!["FR8".into(), "FR12".into()],
    };
    c
}

/// Whether `o` is the object a patch names.
pub fn targets(t: &PatchTarget, o: &Object) -> bool {
    o.kind() == t.kind
        && o.name() == t.name
        && o.namespace() == t.namespace.as_deref()
        && t.api_version
            .as_deref()
            .is_none_or(|v| v == o.api_version())
}

/// Attaches every patch to the generated object it names; patches naming nothing are left
/// for the spec check to report.
pub(super) fn attach(m: &Manifests, components: &mut [Component]) {
    for p in &m.patches {
        let found = components
            .iter_mut()
            .filter(|c| c.name != NAME)
            .find_map(|c| {
                let i = c.objects.iter().position(|o| targets(&p.target, o))?;
                Some((c, i))
            });
        if let Some((c, object)) = found {
            c.patches.push(ObjectPatch {
                file: p.file.clone(),
                object,
                target: p.target.clone(),
                operations: p.operations.clone(),
            });
        }
    }
}
