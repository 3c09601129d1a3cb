//! The claims a StatefulSet made from its `volumeClaimTemplates`, which Kubernetes keeps when
//! the StatefulSet is deleted: found by their names (`<template>-<statefulset>-<ordinal>` in
//! the StatefulSet's namespace, the names the StatefulSet controller gives them) and deleted
//! on request. Deletes no other claim and no other object; never prints.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::Value;

use crate::connect::Cluster;
use crate::error::ApplyError;
use crate::events::Progress;
use crate::retry::{RetryPolicy, is_not_found, with_retry};

/// A StatefulSet and the names of its claim templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatefulSetClaims {
    pub namespace: String,
    pub statefulset: String,
    pub templates: Vec<String>,
}

impl StatefulSetClaims {
    /// From a StatefulSet manifest with claim templates; `None` for anything else.
    pub fn of_manifest(manifest: &Value) -> Option<StatefulSetClaims> {
        if manifest["kind"] != "StatefulSet" {
            return None;
        }
        let templates: Vec<String> = manifest["spec"]["volumeClaimTemplates"]
            .as_array()?
            .iter()
            .filter_map(|t| t["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        if templates.is_empty() {
            return None;
        }
        Some(StatefulSetClaims {
            namespace: manifest["metadata"]["namespace"].as_str()?.to_string(),
            statefulset: manifest["metadata"]["name"].as_str()?.to_string(),
            templates,
        })
    }

    /// Whether the controller made the claim `name` for this StatefulSet (any ordinal, also
    /// those left from a larger replica count).
    pub fn made(&self, name: &str) -> bool {
        self.templates.iter().any(|t| {
            name.strip_prefix(t.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .and_then(|rest| rest.strip_prefix(self.statefulset.as_str()))
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    }
}

/// Deletes every claim that `sets` made (with `dry_run`, a server-side dry run), returning
/// them as `namespace/name`, sorted. A claim already gone is not an error.
pub async fn delete_statefulset_claims(
    cluster: &Cluster,
    sets: &[StatefulSetClaims],
    dry_run: bool,
    retry: &RetryPolicy,
    progress: &dyn Progress,
) -> Result<Vec<String>, ApplyError> {
    let mut namespaces: Vec<&str> = sets.iter().map(|s| s.namespace.as_str()).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    let mut deleted = Vec::new();
    for ns in namespaces {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client().clone(), ns);
        let all = ListParams::default();
        let listed = with_retry(retry, progress, "list", &format!("claims in {ns}"), || {
            api.list(&all)
        })
        .await?;
        for claim in listed.items {
            let Some(name) = claim.metadata.name else {
                continue;
            };
            if !sets.iter().any(|s| s.namespace == ns && s.made(&name)) {
                continue;
            }
            let params = DeleteParams {
                dry_run,
                preconditions: claim.metadata.uid.map(|uid| kube::api::Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let label = format!("PersistentVolumeClaim {ns}/{name}");
            with_retry(retry, progress, "delete", &label, || {
                let (api, params, name) = (&api, &params, &name);
                async move {
                    match api.delete(name, params).await {
                        Err(e) if is_not_found(&e) => Ok(()),
                        other => other.map(|_| ()),
                    }
                }
            })
            .await?;
            deleted.push(format!("{ns}/{name}"));
        }
    }
    deleted.sort();
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_names_the_controller_gives_are_its_claims() {
        let sts = json!({"kind": "StatefulSet", "metadata": {"name": "postgres", "namespace": "data"},
            "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}]}});
        let set = StatefulSetClaims::of_manifest(&sts).unwrap();
        assert_eq!(set.namespace, "data");
        assert!(set.made("data-postgres-0") && set.made("data-postgres-12"));
        for other in [
            "data-postgres-",
            "data-postgres-x",
            "data-postgres-0-copy",
            "data-postgres",
            "postgres-backup",
            "mine-data-postgres-0",
            "data-postgresql-0",
        ] {
            assert!(!set.made(other), "{other}");
        }
        let deployment =
            json!({"kind": "Deployment", "metadata": {"name": "x", "namespace": "data"}});
        assert_eq!(StatefulSetClaims::of_manifest(&deployment), None);
        let no_claims = json!({"kind": "StatefulSet", "metadata": {"name": "x", "namespace": "data"}, "spec": {}});
        assert_eq!(StatefulSetClaims::of_manifest(&no_claims), None);
    }
}
