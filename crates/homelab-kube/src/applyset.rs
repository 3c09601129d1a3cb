//! ApplySet bookkeeping as KEP-3659 defines it: the parent's ID, its labels and annotations,
//! and the member label. Pure; must not talk to a cluster.

use std::collections::BTreeSet;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::model::ApplySetRef;

pub(crate) const LABEL_ID: &str = "applyset.kubernetes.io/id";
pub(crate) const LABEL_PART_OF: &str = "applyset.kubernetes.io/part-of";
pub(crate) const ANNOTATION_TOOLING: &str = "applyset.kubernetes.io/tooling";
pub(crate) const ANNOTATION_GROUP_KINDS: &str = "applyset.kubernetes.io/contains-group-kinds";
pub(crate) const ANNOTATION_NAMESPACES: &str = "applyset.kubernetes.io/additional-namespaces";
pub(crate) const TOOLING_NAME: &str = "homelab";
/// An object carrying this annotation with [`KEEP_VALUE`] is never pruned, even when the plan
/// no longer has it (the static volume of existing NFS data), and its namespace stays.
pub const ANNOTATION_KEEP: &str = "homelab-rs.github.io/prune";
pub const KEEP_VALUE: &str = "never";

/// Whether an object is marked to be kept by prune.
pub(crate) fn is_kept(object: &serde_json::Value) -> bool {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_KEEP))
        .and_then(serde_json::Value::as_str)
        == Some(KEEP_VALUE)
}

/// The ApplySet ID of a parent object: `applyset-<base64url(sha256(name.namespace.kind.group))>-v1`
/// (unpadded URL-safe base64, RFC 4648), the value of both `applyset.kubernetes.io/id` on the
/// parent and `applyset.kubernetes.io/part-of` on every member.
pub fn applyset_id(name: &str, namespace: &str, kind: &str, group: &str) -> String {
    let digest = Sha256::digest(format!("{name}.{namespace}.{kind}.{group}").as_bytes());
    format!(
        "applyset-{}-v1",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// `Kind.group`, or `Kind` for the core group, as written in `contains-group-kinds`.
pub fn group_kind_label(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

/// Splits a `contains-group-kinds` entry back into (group, kind).
pub(crate) fn parse_group_kind(label: &str) -> (String, String) {
    match label.split_once('.') {
        Some((kind, group)) => (group.to_string(), kind.to_string()),
        None => (String::new(), label.to_string()),
    }
}

/// The ID of the plan's ApplySet (its parent is a core-group Secret).
pub(crate) fn id_of(set: &ApplySetRef) -> String {
    applyset_id(&set.parent_name(), &set.namespace, "Secret", "")
}

/// What the parent records: the group-kinds and the namespaces (other than its own) that may
/// hold members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Inventory {
    pub group_kinds: BTreeSet<String>,
    pub namespaces: BTreeSet<String>,
}

impl Inventory {
    /// Reads the annotations of an existing parent.
    pub fn from_parent(parent: &Value) -> Inventory {
        let list = |key: &str| -> BTreeSet<String> {
            parent
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        Inventory {
            group_kinds: list(ANNOTATION_GROUP_KINDS),
            namespaces: list(ANNOTATION_NAMESPACES),
        }
    }

    pub fn union(&self, other: &Inventory) -> Inventory {
        Inventory {
            group_kinds: self
                .group_kinds
                .union(&other.group_kinds)
                .cloned()
                .collect(),
            namespaces: self.namespaces.union(&other.namespaces).cloned().collect(),
        }
    }
}

/// The parent Secret manifest, to be server-side applied.
pub(crate) fn parent_manifest(set: &ApplySetRef, inventory: &Inventory, version: &str) -> Value {
    let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": set.parent_name(),
            "namespace": set.namespace,
            "labels": { LABEL_ID: id_of(set) },
            "annotations": {
                ANNOTATION_TOOLING: format!("{TOOLING_NAME}/{version}"),
                ANNOTATION_GROUP_KINDS: join(&inventory.group_kinds),
                ANNOTATION_NAMESPACES: join(&inventory.namespaces),
            },
        },
        "type": "Opaque",
    })
}

/// The tooling recorded on an existing parent, when it is not ours.
pub(crate) fn foreign_tooling(parent: &Value) -> Option<String> {
    let tooling = parent
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_TOOLING))
        .and_then(Value::as_str)?;
    let name = tooling.split('/').next().unwrap_or_default();
    (name != TOOLING_NAME).then(|| tooling.to_string())
}

/// Whether a live object carries this ApplySet's member label.
pub(crate) fn is_member(object: &Value, id: &str) -> bool {
    object
        .pointer("/metadata/labels")
        .and_then(|l| l.get(LABEL_PART_OF))
        .and_then(Value::as_str)
        == Some(id)
}

/// A copy of the manifest with the member label added.
pub(crate) fn with_member_label(object: &Value, id: &str) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        let metadata = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(metadata) = metadata.as_object_mut() {
            let labels = metadata
                .entry("labels")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(LABEL_PART_OF.to_string(), Value::String(id.to_string()));
            }
        }
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_matches_the_kep_formula() {
        // sha256("applyset-lab.homelab.Secret.") computed independently with coreutils:
        // printf 'applyset-lab.homelab.Secret.' | sha256sum | xxd -r -p | base64 | tr '+/' '-_' | tr -d =
        let id = applyset_id("applyset-lab", "homelab", "Secret", "");
        assert_eq!(
            id,
            "applyset-pJhibrjVf5nwR87m9vesXUyfxVQr-DN70IqFLvjChvs-v1"
        );
        assert!(id.len() <= 63, "label values are at most 63 characters");
    }

    #[test]
    fn group_kinds_round_trip() {
        assert_eq!(group_kind_label("", "Secret"), "Secret");
        assert_eq!(group_kind_label("apps", "Deployment"), "Deployment.apps");
        assert_eq!(
            parse_group_kind("Certificate.cert-manager.io"),
            ("cert-manager.io".to_string(), "Certificate".to_string())
        );
        assert_eq!(
            parse_group_kind("Namespace"),
            (String::new(), "Namespace".to_string())
        );
    }

    #[test]
    fn parent_records_sorted_inventory_and_tooling() {
        let set = ApplySetRef {
            name: "lab".into(),
            namespace: "homelab".into(),
        };
        let inv = Inventory {
            group_kinds: ["Secret", "Deployment.apps", "Namespace"]
                .into_iter()
                .map(String::from)
                .collect(),
            namespaces: ["data", "apps"].into_iter().map(String::from).collect(),
        };
        let parent = parent_manifest(&set, &inv, "0.1.0");
        let ann = &parent["metadata"]["annotations"];
        assert_eq!(
            ann[ANNOTATION_GROUP_KINDS],
            "Deployment.apps,Namespace,Secret"
        );
        assert_eq!(ann[ANNOTATION_NAMESPACES], "apps,data");
        assert_eq!(ann[ANNOTATION_TOOLING], "homelab/0.1.0");
        assert_eq!(Inventory::from_parent(&parent), inv);
        assert_eq!(foreign_tooling(&parent), None);
        let mut other = parent.clone();
        other["metadata"]["annotations"][ANNOTATION_TOOLING] = "kubectl/v1.34".into();
        assert_eq!(foreign_tooling(&other), Some("kubectl/v1.34".into()));
    }

    #[test]
    fn member_label_is_added_without_touching_other_labels() {
        let obj = serde_json::json!({"metadata": {"name": "x", "labels": {"app": "web"}}});
        let labelled = with_member_label(&obj, "applyset-abc-v1");
        assert_eq!(labelled["metadata"]["labels"]["app"], "web");
        assert!(is_member(&labelled, "applyset-abc-v1"));
        assert!(!is_member(&obj, "applyset-abc-v1"));
        assert!(!is_member(&labelled, "applyset-other-v1"));
    }
}
