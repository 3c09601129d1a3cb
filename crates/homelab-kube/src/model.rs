//! The input of `apply` and `diff`: units of manifests with dependencies and waits. Pure data;
//! must not talk to a cluster, and its `Debug` output must never show an object's content
//! (Secrets travel in here).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where the ApplySet parent lives (KEP-3659): a Secret `applyset-<name>` in `namespace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplySetRef {
    /// The ApplySet name; the parent Secret is called `applyset-<name>`.
    pub name: String,
    /// A namespace the plan owns; created when missing.
    pub namespace: String,
}

impl ApplySetRef {
    /// Name of the parent Secret.
    pub fn parent_name(&self) -> String {
        format!("applyset-{}", self.name)
    }
}

/// Everything `apply`, `diff` and prune need: units in any order (they are sorted by
/// `depends_on`), the ApplySet that owns what they create, and the field manager.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyPlan {
    pub applyset: ApplySetRef,
    /// The one server-side apply field manager, e.g. `homelab`.
    pub field_manager: String,
    pub units: Vec<ApplyUnit>,
}

/// One component: its manifests, the units it needs first, and what to wait for after applying.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyUnit {
    pub name: String,
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Full manifests (`apiVersion`, `kind`, `metadata.name`, `metadata.namespace` for
    /// namespaced kinds). Applied Namespace first, CRDs next, custom resources last.
    #[serde(default)]
    pub objects: Vec<Value>,
    /// Checked in order after every object of the unit is applied.
    #[serde(default)]
    pub waits: Vec<WaitFor>,
}

impl fmt::Debug for ApplyUnit {
    // Objects may be Secrets: show what they are, never what they hold.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let objects: Vec<String> = self
            .objects
            .iter()
            .map(|o| ObjectRef::from_manifest(o).to_string())
            .collect();
        f.debug_struct("ApplyUnit")
            .field("name", &self.name)
            .field("depends_on", &self.depends_on)
            .field("objects", &objects)
            .field("waits", &self.waits)
            .finish()
    }
}

/// A namespace and a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedName {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The workload kinds `apply` can wait on and `status` can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        })
    }
}

/// A gate the next unit needs before it can be applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WaitFor {
    /// `CustomResourceDefinition` `name` has condition `Established=True`.
    CrdEstablished { name: String },
    /// An admission webhook answers: its Service has a ready endpoint and, when `probe` is
    /// given, a server-side dry-run create of `probe` (a custom resource the webhook
    /// validates) succeeds.
    Webhook {
        service: NamespacedName,
        #[serde(default)]
        probe: Option<Value>,
    },
    /// A `helm.cattle.io/v1` `HelmChart`'s install Job (`status.jobName`) succeeded.
    HelmChartInstalled { namespace: String, name: String },
    /// A Deployment, StatefulSet or DaemonSet has all replicas updated and available.
    Available {
        kind: WorkloadKind,
        namespace: String,
        name: String,
    },
}

impl fmt::Display for WaitFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitFor::CrdEstablished { name } => {
                write!(f, "CustomResourceDefinition {name} to be established")
            }
            WaitFor::Webhook { service, .. } => {
                write!(f, "webhook behind Service {service} to answer")
            }
            WaitFor::HelmChartInstalled { namespace, name } => {
                write!(f, "HelmChart {namespace}/{name} install job to succeed")
            }
            WaitFor::Available {
                kind,
                namespace,
                name,
            } => write!(f, "{kind} {namespace}/{name} to be available"),
        }
    }
}

/// Identifies one object: group/version/kind, namespace and name, as written in its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// Reads the identity of a manifest; missing fields become empty strings (validation
    /// reports them separately).
    pub fn from_manifest(object: &Value) -> ObjectRef {
        let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        ObjectRef {
            api_version: s(object.get("apiVersion")),
            kind: s(object.get("kind")),
            namespace: object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|ns| !ns.is_empty())
                .map(str::to_string),
            name: s(object.pointer("/metadata/name")),
        }
    }

    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }

    /// `Kind.group` as in the ApplySet `contains-group-kinds` annotation.
    pub fn group_kind(&self) -> String {
        crate::applyset::group_kind_label(self.group(), &self.kind)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = self.group();
        let kind = if group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, group)
        };
        match &self.namespace {
            Some(ns) => write!(f, "{kind} {ns}/{}", self.name),
            None => write!(f, "{kind} {}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn debug_output_names_objects_but_never_shows_their_content() {
        let unit = ApplyUnit {
            name: "postgres".into(),
            depends_on: vec![],
            objects: vec![json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db", "namespace": "data"},
                "stringData": {"password": "hunter2-very-secret"}})],
            waits: vec![],
        };
        let plan = ApplyPlan {
            applyset: ApplySetRef {
                name: "lab".into(),
                namespace: "homelab".into(),
            },
            field_manager: "homelab".into(),
            units: vec![unit],
        };
        let text = format!("{plan:?} {plan:#?}");
        assert!(text.contains("Secret data/db"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn waits_deserialize_from_tagged_json() {
        let w: WaitFor = serde_json::from_value(json!({"type": "available", "kind": "StatefulSet", "namespace": "data", "name": "postgres"})).unwrap();
        assert_eq!(w.to_string(), "StatefulSet data/postgres to be available");
        let w: WaitFor = serde_json::from_value(json!({"type": "webhook", "service": {"namespace": "infra", "name": "cert-manager-webhook"}})).unwrap();
        assert_eq!(
            w.to_string(),
            "webhook behind Service infra/cert-manager-webhook to answer"
        );
    }
}
