//! What `apply` would change, object by object: a server-side dry-run apply compared with the
//! live object, as a unified diff of YAML without server bookkeeping and with Secret values
//! hidden. Must not write to the cluster.

use std::collections::{BTreeSet, HashSet};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde::Serialize;
use serde_json::Value;

use crate::apply::{ApplyOptions, Key, Run, plan_inventory};
use crate::applyset;
use crate::connect::Cluster;
use crate::error::ApplyError;
use crate::events::{NoProgress, Progress};
use crate::model::{ApplyPlan, ObjectRef};
use crate::objects::{comparable, redact_secret_pair, to_yaml};
use crate::order::order_plan;
use crate::resolve::Resolver;
use crate::retry::{RetryPolicy, with_retry, with_retry_opt};

/// How `diff` behaves.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Also show members `apply --prune` would delete.
    pub prune: bool,
    pub retry: RetryPolicy,
}

/// What `apply` would do to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectChange {
    Create,
    Update,
    Unchanged,
    /// Only with `prune`: a member the plan no longer has.
    Delete,
}

/// One object's diff. `diff` is empty when unchanged; Secret values never appear in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDiff {
    /// The plan unit, `None` for objects only prune would touch.
    pub unit: Option<String>,
    pub object: ObjectRef,
    pub change: ObjectChange,
    pub diff: String,
}

/// The whole diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffReport {
    pub objects: Vec<ObjectDiff>,
}

impl DiffReport {
    /// Whether `apply` would change anything (the CLI exits 1 when it would).
    pub fn has_changes(&self) -> bool {
        self.objects
            .iter()
            .any(|o| o.change != ObjectChange::Unchanged)
    }

    /// Every object's diff, one after the other, like `kubectl diff`.
    pub fn unified(&self) -> String {
        self.objects.iter().map(|o| o.diff.as_str()).collect()
    }
}

fn unified_diff(r: &ObjectRef, before: &str, after: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{r}"), &format!("planned/{r}"))
        .to_string()
}

/// Diff of two object states (either may be absent) with Secret values hidden.
pub(crate) fn object_diff(
    r: &ObjectRef,
    live: Option<&Value>,
    planned: Option<&Value>,
) -> (ObjectChange, String) {
    let mut before = live.map(comparable);
    let mut after = planned.map(comparable);
    redact_secret_pair(before.as_mut(), after.as_mut());
    let change = match (&before, &after) {
        (None, Some(_)) => ObjectChange::Create,
        (Some(_), None) => ObjectChange::Delete,
        (Some(b), Some(a)) if b == a => ObjectChange::Unchanged,
        (None, None) => ObjectChange::Unchanged,
        _ => ObjectChange::Update,
    };
    if change == ObjectChange::Unchanged {
        return (change, String::new());
    }
    let text = |v: &Option<Value>| v.as_ref().map(to_yaml).unwrap_or_default();
    (change, unified_diff(r, &text(&before), &text(&after)))
}

impl Cluster {
    /// Shows per object what `apply` would change, using server-side dry-run apply.
    pub async fn diff(
        &self,
        plan: &ApplyPlan,
        options: &DiffOptions,
    ) -> Result<DiffReport, ApplyError> {
        self.diff_with(plan, options, &NoProgress).await
    }

    /// [`Cluster::diff`], reporting retried requests to `progress` (the only events a diff
    /// has).
    pub async fn diff_with(
        &self,
        plan: &ApplyPlan,
        options: &DiffOptions,
        progress: &dyn Progress,
    ) -> Result<DiffReport, ApplyError> {
        let ordered = order_plan(plan)?;
        let apply_options = ApplyOptions {
            dry_run: true,
            prune: options.prune,
            retry: options.retry.clone(),
            ..ApplyOptions::default()
        };
        let mut run = Run {
            client: self.client().clone(),
            plan,
            options: &apply_options,
            progress,
            resolver: tokio::sync::Mutex::new(Resolver::new(self.client().clone())),
            id: applyset::id_of(&plan.applyset),
            created: HashSet::new(),
        };
        let params = PatchParams {
            dry_run: true,
            force: true,
            field_manager: Some(plan.field_manager.clone()),
            field_validation: None,
        };
        // Objects are independent here (nothing is written), so they are compared side by
        // side; the report keeps plan order.
        let api_versions: BTreeSet<String> = ordered
            .iter()
            .flat_map(|u| u.objects.iter().map(|(r, _)| r.api_version.clone()))
            .collect();
        run.resolver
            .lock()
            .await
            .prefetch(&api_versions, &options.retry, progress)
            .await?;
        let jobs: Vec<(&str, &ObjectRef, &Value)> = ordered
            .iter()
            .flat_map(|u| {
                u.objects
                    .iter()
                    .map(move |(r, m)| (u.unit.name.as_str(), r, *m))
            })
            .collect();
        let mut objects: Vec<ObjectDiff> = {
            use futures::stream::{self, StreamExt, TryStreamExt};
            let (run, params) = (&run, &params);
            stream::iter(jobs)
                .map(|(unit, r, manifest)| diff_one(run, params, unit, r, manifest))
                .buffered(16)
                .try_collect()
                .await?
        };
        if options.prune {
            let planned: HashSet<Key> = ordered
                .iter()
                .flat_map(|u| u.objects.iter().map(|(r, _)| Key::of(r)))
                .collect();
            let mut kinds: BTreeSet<String> = plan_inventory(plan).group_kinds;
            let secrets = crate::wait::api_resource("", "v1", "Secret", "secrets");
            let parent_api: Api<DynamicObject> =
                Api::namespaced_with(run.client.clone(), &plan.applyset.namespace, &secrets);
            let parent_name = plan.applyset.parent_name();
            if let Some(parent) =
                with_retry_opt(&options.retry, progress, "read", &parent_name, || {
                    parent_api.get(&parent_name)
                })
                .await?
            {
                let parent = serde_json::to_value(parent).unwrap_or_default();
                kinds.extend(applyset::Inventory::from_parent(&parent).group_kinds);
            }
            let members = run.list_members(&kinds).await?;
            for (key, member) in members {
                if planned.contains(&key) || !applyset::is_member(&member.live, &run.id) {
                    continue;
                }
                let (change, diff) = object_diff(&member.object_ref, Some(&member.live), None);
                objects.push(ObjectDiff {
                    unit: None,
                    object: member.object_ref.clone(),
                    change,
                    diff,
                });
            }
        }
        Ok(DiffReport { objects })
    }
}

/// What applying one object would change: its live state against a server-side dry run.
async fn diff_one(
    run: &Run<'_>,
    params: &PatchParams,
    unit: &str,
    r: &ObjectRef,
    manifest: &Value,
) -> Result<ObjectDiff, ApplyError> {
    let retry = &run.options.retry;
    let progress = run.progress;
    let labelled = crate::objects::prepared(manifest, &run.id);
    let done = |change, diff| ObjectDiff {
        unit: Some(unit.to_string()),
        object: r.clone(),
        change,
        diff,
    };
    let Some(resolved) = run.resolve_object(unit, r).await? else {
        if run.plan_defines_crd_for(r) {
            // Its kind is served only once this apply installed it: all of it is new.
            let (change, diff) = object_diff(r, None, Some(&labelled));
            return Ok(done(change, diff));
        }
        return Err(ApplyError::UnknownKind {
            object: r.to_string(),
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
        });
    };
    let api: Api<DynamicObject> = resolved.api_for(&run.client, r)?;
    let label = r.to_string();
    let live = with_retry_opt(retry, progress, "read", &label, || api.get(&r.name))
        .await?
        .map(|o| serde_json::to_value(o).unwrap_or_default());
    let planned = with_retry(retry, progress, "dry-run apply", &label, || {
        let patch = Patch::Apply(&labelled);
        let api = &api;
        async move { api.patch(&r.name, params, &patch).await }
    })
    .await;
    let planned = match planned {
        Ok(p) => serde_json::to_value(p).unwrap_or_default(),
        // Its namespace is created by the same apply: show the manifest as new.
        Err(ApplyError::Api {
            code: Some(404), ..
        }) if live.is_none() && run.plan_creates_namespace_of(r) => labelled.clone(),
        Err(e) => return Err(e),
    };
    let (change, diff) = object_diff(r, live.as_ref(), Some(&planned));
    Ok(done(change, diff))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm_ref() -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("apps".into()),
            name: "web".into(),
        }
    }

    #[test]
    fn update_shows_only_the_changed_lines_without_server_fields() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web", "namespace": "apps", "resourceVersion": "5", "managedFields": []},
            "data": {"a": "1", "b": "2"}});
        let planned = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web", "namespace": "apps", "resourceVersion": "6"},
            "data": {"a": "1", "b": "3"}});
        let (change, diff) = object_diff(&cm_ref(), Some(&live), Some(&planned));
        assert_eq!(change, ObjectChange::Update);
        assert!(
            diff.starts_with("--- live/ConfigMap apps/web\n+++ planned/ConfigMap apps/web\n"),
            "{diff}"
        );
        assert!(
            diff.contains("-  b: '2'") || diff.contains("-  b: \"2\""),
            "{diff}"
        );
        assert!(
            diff.contains("+  b: '3'") || diff.contains("+  b: \"3\""),
            "{diff}"
        );
        assert!(!diff.contains("resourceVersion"), "{diff}");
        let (change, diff) = object_diff(&cm_ref(), Some(&live), Some(&live));
        assert_eq!((change, diff.as_str()), (ObjectChange::Unchanged, ""));
    }

    #[test]
    fn secret_diffs_never_show_values() {
        let r = ObjectRef {
            kind: "Secret".into(),
            ..cm_ref()
        };
        let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web"},
            "data": {"password": "b2xkLXBhc3N3b3Jk"}});
        let planned = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web"},
            "data": {"password": "bmV3LXBhc3N3b3Jk"}});
        let (change, diff) = object_diff(&r, Some(&live), Some(&planned));
        assert_eq!(change, ObjectChange::Update);
        assert!(
            diff.contains("*** (before)") && diff.contains("*** (after)"),
            "{diff}"
        );
        assert!(!diff.contains("b2xk") && !diff.contains("bmV3"), "{diff}");
        let (change, diff) = object_diff(&r, None, Some(&planned));
        assert_eq!(change, ObjectChange::Create);
        assert!(!diff.contains("bmV3"), "{diff}");
    }
}
