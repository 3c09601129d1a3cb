//! Converges a cluster to a plan: records the ApplySet inventory first, server-side applies
//! every unit in dependency order with its gates, then (when asked) prunes members the plan
//! no longer has. Must not print, must not delete anything that lacks our ApplySet label, and
//! must not send object content anywhere but the API server.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions,
    PropagationPolicy,
};
use kube::core::ApiResource;
use serde::Serialize;
use serde_json::Value;

use crate::applyset::{self, Inventory, LABEL_PART_OF};
use crate::connect::Cluster;
use crate::error::ApplyError;
use crate::events::{ApplyEvent, ObjectOutcome, Progress};
use crate::model::{ApplyPlan, ObjectRef, WaitFor};
use crate::objects::{comparable, resource_version};
use crate::order::{OrderedUnit, kind_rank, order_plan};
use crate::resolve::{Resolved, Resolver};
use crate::retry::{
    RetryPolicy, is_conflict, is_not_found, is_transient, with_retry, with_retry_if, with_retry_opt,
};
use crate::wait::{Probe, WaitContext, api_resource, crd_state, managed_time, wait_for};

/// How `apply` behaves.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Send every write with `dryRun=All`: nothing is stored, waits are skipped.
    pub dry_run: bool,
    /// Delete ApplySet members the plan no longer has.
    pub prune: bool,
    /// Longest time one wait may take.
    pub wait_timeout: Duration,
    /// Longest pause between two looks at a waited-on object (the first pauses are shorter
    /// and double up to this).
    pub poll_interval: Duration,
    pub retry: RetryPolicy,
    /// Units applied at the same time (each waits only for its own dependencies).
    pub concurrency: usize,
    /// Written to the ApplySet parent as `applyset.kubernetes.io/tooling: homelab/<version>`.
    pub tooling_version: String,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            dry_run: false,
            prune: false,
            wait_timeout: Duration::from_secs(600),
            poll_interval: Duration::from_secs(2),
            retry: RetryPolicy::default(),
            concurrency: 8,
            tooling_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// What one object's apply did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectReport {
    pub object: ObjectRef,
    pub outcome: ObjectOutcome,
}

/// What one unit's apply did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitReport {
    pub name: String,
    pub objects: Vec<ObjectReport>,
    /// False when every object was unchanged.
    pub changed: bool,
}

/// A member considered for pruning: deleted, or kept and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrunedObject {
    pub object: ObjectRef,
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_because: Option<String>,
}

/// The result of a whole apply.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    pub applyset_id: String,
    pub dry_run: bool,
    pub units: Vec<UnitReport>,
    pub pruned: Vec<PrunedObject>,
}

impl ApplyReport {
    /// Whether anything was (or, in a dry run, would be) created, changed or deleted.
    pub fn changed(&self) -> bool {
        self.units.iter().any(|u| u.changed) || self.pruned.iter().any(|p| p.deleted)
    }
}

/// Identity of an object across API versions: group, kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl Key {
    pub fn of(r: &ObjectRef) -> Key {
        Key {
            group: r.group().to_string(),
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        }
    }
}

/// A live member of the ApplySet found by listing.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub object_ref: ObjectRef,
    pub resource: ApiResource,
    pub live: Value,
}

impl Cluster {
    /// Applies `plan`: see the crate documentation for the order of events.
    pub async fn apply(
        &self,
        plan: &ApplyPlan,
        options: &ApplyOptions,
        progress: &dyn Progress,
    ) -> Result<ApplyReport, ApplyError> {
        let ordered = order_plan(plan)?;
        let mut run = Run {
            client: self.client().clone(),
            plan,
            options,
            progress,
            resolver: tokio::sync::Mutex::new(Resolver::new(self.client().clone())),
            id: applyset::id_of(&plan.applyset),
            created: HashSet::new(),
        };
        run.execute(&ordered).await
    }
}

pub(crate) struct Run<'a> {
    pub client: Client,
    pub plan: &'a ApplyPlan,
    pub options: &'a ApplyOptions,
    pub progress: &'a dyn Progress,
    pub resolver: tokio::sync::Mutex<Resolver>,
    pub id: String,
    /// Objects this run created before their unit (the parent's namespace).
    pub created: HashSet<Key>,
}

/// The inventory a plan needs: its group-kinds and the namespaces other than the parent's.
pub(crate) fn plan_inventory(plan: &ApplyPlan) -> Inventory {
    let mut inv = Inventory::default();
    for unit in &plan.units {
        for object in &unit.objects {
            let r = ObjectRef::from_manifest(object);
            inv.group_kinds.insert(r.group_kind());
            if let Some(ns) = r.namespace
                && ns != plan.applyset.namespace
            {
                inv.namespaces.insert(ns);
            }
        }
    }
    inv
}

impl<'a> Run<'a> {
    async fn execute(&mut self, ordered: &[OrderedUnit<'a>]) -> Result<ApplyReport, ApplyError> {
        let set = &self.plan.applyset;
        let parent_ref = ObjectRef {
            api_version: "v1".into(),
            kind: "Secret".into(),
            namespace: Some(set.namespace.clone()),
            name: set.parent_name(),
        };
        let secrets = api_resource("", "v1", "Secret", "secrets");
        let parent_api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &set.namespace, &secrets);
        let existing = with_retry_opt(
            &self.options.retry,
            self.progress,
            "read ApplySet parent",
            &parent_ref.to_string(),
            || parent_api.get(&parent_ref.name),
        )
        .await?
        .map(|p| serde_json::to_value(p).unwrap_or_default());
        let prior = match &existing {
            Some(parent) => {
                if let Some(tooling) = applyset::foreign_tooling(parent) {
                    return Err(ApplyError::ForeignApplySet {
                        namespace: set.namespace.clone(),
                        name: set.parent_name(),
                        tooling,
                    });
                }
                Inventory::from_parent(parent)
            }
            None => Inventory::default(),
        };
        let wanted = plan_inventory(self.plan);
        let union = prior.union(&wanted);

        // The parent must cover every kind and namespace before any member is written, so an
        // interrupted run can still be pruned by the next one.
        let tooling = format!(
            "{}/{}",
            applyset::TOOLING_NAME,
            self.options.tooling_version
        );
        let up_to_date = existing.as_ref().is_some_and(|p| {
            prior == union
                && p.pointer("/metadata/annotations")
                    .and_then(|a| a.get(applyset::ANNOTATION_TOOLING))
                    .and_then(Value::as_str)
                    == Some(tooling.as_str())
        });
        if !self.options.dry_run && !up_to_date {
            // An existing parent proves its namespace exists.
            if existing.is_none() {
                self.ensure_parent_namespace().await?;
            }
            self.write_parent(&union).await?;
        }
        // Learn every kind the plan uses in one round instead of one group-version at a time.
        let api_versions: BTreeSet<String> = ordered
            .iter()
            .flat_map(|u| u.objects.iter().map(|(r, _)| r.api_version.clone()))
            .collect();
        self.resolver
            .lock()
            .await
            .prefetch(&api_versions, &self.options.retry, self.progress)
            .await?;
        self.progress.event(ApplyEvent::ApplySetUpdated {
            id: self.id.clone(),
            group_kinds: union.group_kinds.iter().cloned().collect(),
            namespaces: union.namespaces.iter().cloned().collect(),
        });

        // Current members, for telling "unchanged" from "configured" and for pruning. Kinds
        // only the old inventory has matter only when pruning.
        let list_kinds = if self.options.prune {
            &union.group_kinds
        } else {
            &wanted.group_kinds
        };
        let members = self.list_members(list_kinds).await?;

        let units = self.apply_units(ordered, &members).await?;

        let mut pruned = Vec::new();
        if self.options.prune {
            let planned: HashSet<Key> = ordered
                .iter()
                .flat_map(|u| u.objects.iter().map(|(r, _)| Key::of(r)))
                .collect();
            pruned = self.prune(&members, &planned).await?;
            if !self.options.dry_run {
                // Shrink the inventory to what is left: the plan plus anything kept.
                let mut left = wanted.clone();
                for p in pruned.iter().filter(|p| !p.deleted) {
                    left.group_kinds.insert(p.object.group_kind());
                    if let Some(ns) = &p.object.namespace
                        && ns != &set.namespace
                    {
                        left.namespaces.insert(ns.clone());
                    }
                }
                if left != union {
                    self.write_parent(&left).await?;
                }
            }
        }

        Ok(ApplyReport {
            applyset_id: self.id.clone(),
            dry_run: self.options.dry_run,
            units,
            pruned,
        })
    }

    fn patch_params(&self) -> PatchParams {
        PatchParams {
            dry_run: self.options.dry_run,
            force: true,
            field_manager: Some(self.plan.field_manager.clone()),
            field_validation: None,
        }
    }

    /// Creates the parent's namespace when it is missing, from the plan's manifest if it has
    /// one (then it is a member like any other).
    async fn ensure_parent_namespace(&mut self) -> Result<(), ApplyError> {
        let ns = self.plan.applyset.namespace.clone();
        let namespaces = api_resource("", "v1", "Namespace", "namespaces");
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &namespaces);
        let label = format!("Namespace {ns}");
        let found = with_retry_opt(&self.options.retry, self.progress, "read", &label, || {
            api.get(&ns)
        })
        .await?;
        if found.is_some() {
            return Ok(());
        }
        let manifest = self
            .plan
            .units
            .iter()
            .flat_map(|u| u.objects.iter())
            .find(|o| {
                let r = ObjectRef::from_manifest(o);
                r.api_version == "v1" && r.kind == "Namespace" && r.name == ns
            })
            .map(|o| crate::objects::prepared(o, &self.id))
            .unwrap_or_else(|| {
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            });
        let params = self.patch_params();
        with_retry(&self.options.retry, self.progress, "apply", &label, || {
            let patch = Patch::Apply(&manifest);
            let (api, ns, params) = (&api, &ns, &params);
            async move { api.patch(ns, params, &patch).await }
        })
        .await?;
        self.created.insert(Key {
            group: String::new(),
            kind: "Namespace".into(),
            namespace: None,
            name: ns,
        });
        Ok(())
    }

    async fn write_parent(&mut self, inventory: &Inventory) -> Result<(), ApplyError> {
        let set = &self.plan.applyset;
        let manifest = applyset::parent_manifest(set, inventory, &self.options.tooling_version);
        let secrets = api_resource("", "v1", "Secret", "secrets");
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &set.namespace, &secrets);
        let name = set.parent_name();
        let label = format!("ApplySet parent Secret {}/{name}", set.namespace);
        let params = PatchParams {
            dry_run: false,
            ..self.patch_params()
        };
        with_retry(&self.options.retry, self.progress, "apply", &label, || {
            let patch = Patch::Apply(&manifest);
            let (api, name, params) = (&api, &name, &params);
            async move { api.patch(name, params, &patch).await }
        })
        .await?;
        Ok(())
    }

    /// Finds the resource for a `Kind.group` from the inventory, using the plan's apiVersion
    /// when it has one and the group's preferred version otherwise.
    async fn resource_for_group_kind(
        &mut self,
        group_kind: &str,
    ) -> Result<Option<Resolved>, ApplyError> {
        let (group, kind) = applyset::parse_group_kind(group_kind);
        let planned = self
            .plan
            .units
            .iter()
            .flat_map(|u| u.objects.iter())
            .map(ObjectRef::from_manifest)
            .find(|r| r.group() == group && r.kind == kind)
            .map(|r| r.api_version);
        let api_version = match planned {
            Some(av) => av,
            None if group.is_empty() => "v1".to_string(),
            None => {
                let client = self.client.clone();
                let g = group.clone();
                let found = with_retry_opt(
                    &self.options.retry,
                    self.progress,
                    "discover",
                    &group,
                    || {
                        let client = client.clone();
                        let g = g.clone();
                        async move { kube::discovery::group(&client, &g).await }
                    },
                )
                .await?;
                match found {
                    Some(g) => format!("{group}/{}", g.preferred_version_or_latest()),
                    None => return Ok(None),
                }
            }
        };
        self.resolver
            .lock()
            .await
            .resolve(
                &api_version,
                &kind,
                false,
                &self.options.retry,
                self.progress,
            )
            .await
    }

    /// Lists every object labelled as a member, for the given group-kinds, cluster-wide.
    pub(crate) async fn list_members(
        &mut self,
        group_kinds: &BTreeSet<String>,
    ) -> Result<BTreeMap<Key, Member>, ApplyError> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        // Resolve first (cached discovery), then list every kind at once.
        let mut kinds = Vec::new();
        for gk in group_kinds {
            if let Some(resolved) = self.resource_for_group_kind(gk).await? {
                kinds.push((gk.as_str(), resolved));
            }
        }
        let selector = format!("{LABEL_PART_OF}={}", self.id);
        let this = &*self;
        let lists: Vec<_> = stream::iter(kinds)
            .map(|(gk, resolved)| {
                let selector = selector.clone();
                async move {
                    let api: Api<DynamicObject> =
                        Api::all_with(this.client.clone(), &resolved.resource);
                    let params = ListParams::default().labels(&selector);
                    let list =
                        with_retry_opt(&this.options.retry, this.progress, "list", gk, || {
                            api.list(&params)
                        })
                        .await?;
                    Ok::<_, ApplyError>((resolved, list.map(|l| l.items).unwrap_or_default()))
                }
            })
            .buffered(16)
            .try_collect()
            .await?;
        let mut members = BTreeMap::new();
        let mut unlabelled = 0usize;
        for (resolved, items) in lists {
            for item in items {
                let live = serde_json::to_value(&item).unwrap_or_default();
                // The server filtered by the label, or should have: a server or proxy that
                // drops the selector answers with every object of the kind, and none of
                // those may ever be taken for ours.
                if !applyset::is_member(&live, &self.id) {
                    unlabelled += 1;
                    continue;
                }
                let object_ref = ObjectRef {
                    api_version: resolved.resource.api_version.clone(),
                    kind: resolved.resource.kind.clone(),
                    namespace: item.metadata.namespace.clone(),
                    name: item.metadata.name.clone().unwrap_or_default(),
                };
                members.insert(
                    Key::of(&object_ref),
                    Member {
                        object_ref,
                        resource: resolved.resource.clone(),
                        live,
                    },
                );
            }
        }
        if unlabelled > 0 {
            tracing::warn!(
                unlabelled,
                "the API answered label-selected member lists with objects without the ApplySet label; they were left out"
            );
        }
        Ok(members)
    }

    /// Resolves an object's kind, waiting for it to be served when a CRD in the plan defines
    /// it (the CRD may have just been applied or be installed by a chart).
    pub(crate) async fn resolve_object(
        &self,
        unit: &str,
        r: &ObjectRef,
    ) -> Result<Option<Resolved>, ApplyError> {
        let retry = self.options.retry.clone();
        if let Some(found) = self
            .resolver
            .lock()
            .await
            .resolve(&r.api_version, &r.kind, true, &retry, self.progress)
            .await?
        {
            return Ok(Some(found));
        }
        if !self.plan_defines_crd_for(r) || self.options.dry_run {
            return Ok(None);
        }
        let what = format!("the API to serve {} {}", r.api_version, r.kind);
        self.progress.event(ApplyEvent::Waiting {
            unit: unit.to_string(),
            what: what.clone(),
        });
        let start = std::time::Instant::now();
        let mut delay = crate::wait::PollDelay::new(self.options.poll_interval);
        loop {
            delay.sleep().await;
            if let Some(found) = self
                .resolver
                .lock()
                .await
                .resolve(&r.api_version, &r.kind, true, &retry, self.progress)
                .await?
            {
                self.progress.event(ApplyEvent::WaitDone {
                    unit: unit.to_string(),
                    what,
                });
                return Ok(Some(found));
            }
            if start.elapsed() >= self.options.wait_timeout {
                return Err(ApplyError::WaitTimeout {
                    unit: unit.to_string(),
                    what,
                    timeout: self.options.wait_timeout,
                    last_status: format!("{} is not listed by API discovery", r.api_version),
                });
            }
        }
    }

    /// Whether the plan holds the Namespace this object lives in.
    pub(crate) fn plan_creates_namespace_of(&self, r: &ObjectRef) -> bool {
        let Some(ns) = &r.namespace else {
            return false;
        };
        self.plan
            .units
            .iter()
            .flat_map(|u| u.objects.iter())
            .any(|o| {
                let o = ObjectRef::from_manifest(o);
                o.api_version == "v1" && o.kind == "Namespace" && &o.name == ns
            })
    }

    /// Whether this run makes the object's kind served: the plan holds its
    /// CustomResourceDefinition, or a unit waits for a CRD of its group to be established
    /// (one a chart of the plan installs).
    pub(crate) fn plan_defines_crd_for(&self, r: &ObjectRef) -> bool {
        let group_suffix = format!(".{}", r.group());
        self.plan.units.iter().any(|u| {
            u.objects.iter().any(|o| {
                o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
                    && o.pointer("/spec/group").and_then(Value::as_str) == Some(r.group())
                    && o.pointer("/spec/names/kind").and_then(Value::as_str)
                        == Some(r.kind.as_str())
            }) || (!r.group().is_empty()
                && u.waits.iter().any(|w| {
                    matches!(w, WaitFor::CrdEstablished { name } if name.ends_with(&group_suffix))
                }))
        })
    }

    async fn apply_unit(
        &self,
        unit: &OrderedUnit<'a>,
        members: &BTreeMap<Key, Member>,
    ) -> Result<UnitReport, ApplyError> {
        let name = unit.unit.name.clone();
        self.progress.event(ApplyEvent::UnitStarted {
            unit: name.clone(),
            objects: unit.objects.len(),
        });
        let mut reports = Vec::with_capacity(unit.objects.len());
        let mut changed_at: HashMap<Key, Timestamp> = HashMap::new();
        // Objects of the same kind rank do not depend on each other: apply them together.
        use futures::stream::{self, StreamExt, TryStreamExt};
        let mut rest: &[(ObjectRef, &Value)] = &unit.objects;
        while let Some((first, _)) = rest.first() {
            let rank = kind_rank(first);
            let len = rest
                .iter()
                .take_while(|(r, _)| kind_rank(r) == rank)
                .count();
            let (group, tail) = rest.split_at(len);
            rest = tail;
            let name_ref = &name;
            let results: Vec<_> = stream::iter(group)
                .map(|(r, manifest)| async move {
                    self.apply_object(name_ref, r, manifest, members)
                        .await
                        .map(|(outcome, applied)| (r, outcome, applied))
                })
                .buffered(8)
                .try_collect()
                .await?;
            for (r, outcome, applied) in results {
                if outcome != ObjectOutcome::Unchanged
                    && let Some(applied) = &applied
                    && let Some(t) = managed_time(applied, &self.plan.field_manager)
                {
                    changed_at.insert(Key::of(r), t);
                }
                self.progress.event(ApplyEvent::ObjectApplied {
                    unit: name.clone(),
                    object: r.clone(),
                    outcome,
                });
                reports.push(ObjectReport {
                    object: r.clone(),
                    outcome,
                });
                // CRDs gate every custom resource after them.
                if r.kind == "CustomResourceDefinition"
                    && r.group() == "apiextensions.k8s.io"
                    && !self.options.dry_run
                {
                    let established = applied.as_ref().map(crd_state) == Some(Probe::Ready);
                    if !established {
                        let wait = WaitFor::CrdEstablished {
                            name: r.name.clone(),
                        };
                        self.run_wait(&name, &wait, None).await?;
                    }
                }
            }
        }
        let since_of = |wait: &WaitFor| match wait {
            WaitFor::HelmChartInstalled { namespace, name } => changed_at
                .get(&Key {
                    group: "helm.cattle.io".into(),
                    kind: "HelmChart".into(),
                    namespace: Some(namespace.clone()),
                    name: name.clone(),
                })
                .copied(),
            _ => None,
        };
        let waits = &unit.unit.waits;
        // One look at every gate at once first: on a converged cluster they all pass, and
        // the unit is done in one round instead of one per gate. Whatever is not ready yet
        // is then waited for in order, as declared.
        let mut passed = vec![false; waits.len()];
        if !self.options.dry_run && waits.len() > 1 {
            let ctx = self.wait_context();
            let looks = futures::future::join_all(
                waits
                    .iter()
                    .map(|w| crate::wait::probe_once(&ctx, &self.resolver, w, since_of(w))),
            )
            .await;
            for (p, look) in passed.iter_mut().zip(looks) {
                *p = matches!(look, Ok(Probe::Ready));
            }
        }
        for (wait, passed) in waits.iter().zip(passed) {
            if self.options.dry_run {
                self.progress.event(ApplyEvent::WaitSkipped {
                    unit: name.clone(),
                    what: wait.to_string(),
                });
                continue;
            }
            if passed {
                self.progress.event(ApplyEvent::Waiting {
                    unit: name.clone(),
                    what: wait.to_string(),
                });
                self.progress.event(ApplyEvent::WaitDone {
                    unit: name.clone(),
                    what: wait.to_string(),
                });
                continue;
            }
            self.run_wait(&name, wait, since_of(wait)).await?;
        }
        let changed = reports
            .iter()
            .any(|r| r.outcome != ObjectOutcome::Unchanged);
        self.progress.event(ApplyEvent::UnitReady {
            unit: name.clone(),
            changed,
        });
        Ok(UnitReport {
            name,
            objects: reports,
            changed,
        })
    }

    /// Applies units as their dependencies finish, at most `options.concurrency` at a time,
    /// starting ready units in plan order. After a failure no new unit starts; the ones
    /// running finish, then the first error is returned.
    async fn apply_units(
        &self,
        ordered: &[OrderedUnit<'a>],
        members: &BTreeMap<Key, Member>,
    ) -> Result<Vec<UnitReport>, ApplyError> {
        use futures::stream::{FuturesUnordered, StreamExt};
        let limit = self.options.concurrency.max(1);
        let mut reports: Vec<Option<UnitReport>> = vec![None; ordered.len()];
        let mut started = vec![false; ordered.len()];
        let mut finished: HashSet<&str> = HashSet::new();
        let mut running = FuturesUnordered::new();
        let mut first_error: Option<ApplyError> = None;
        loop {
            if first_error.is_none() {
                for (i, unit) in ordered.iter().enumerate() {
                    if running.len() >= limit {
                        break;
                    }
                    if started[i]
                        || !unit
                            .unit
                            .depends_on
                            .iter()
                            .all(|d| finished.contains(d.as_str()))
                    {
                        continue;
                    }
                    started[i] = true;
                    running.push(async move { (i, self.apply_unit(unit, members).await) });
                }
            }
            let Some((i, result)) = running.next().await else {
                break;
            };
            match result {
                Ok(report) => {
                    finished.insert(ordered[i].unit.name.as_str());
                    reports[i] = Some(report);
                }
                Err(err) => {
                    self.progress.event(ApplyEvent::UnitFailed {
                        unit: ordered[i].unit.name.clone(),
                        error: err.to_string(),
                    });
                    first_error.get_or_insert(err);
                }
            }
        }
        if let Some(err) = first_error {
            return Err(err);
        }
        Ok(reports.into_iter().flatten().collect())
    }

    async fn run_wait(
        &self,
        unit: &str,
        wait: &WaitFor,
        since: Option<Timestamp>,
    ) -> Result<(), ApplyError> {
        self.progress.event(ApplyEvent::Waiting {
            unit: unit.to_string(),
            what: wait.to_string(),
        });
        let ctx = self.wait_context();
        wait_for(&ctx, &self.resolver, unit, wait, since).await?;
        self.progress.event(ApplyEvent::WaitDone {
            unit: unit.to_string(),
            what: wait.to_string(),
        });
        Ok(())
    }

    fn wait_context(&self) -> WaitContext<'_> {
        WaitContext {
            client: &self.client,
            field_manager: &self.plan.field_manager,
            timeout: self.options.wait_timeout,
            poll: self.options.poll_interval,
            retry: &self.options.retry,
            progress: self.progress,
        }
    }

    /// Server-side applies one object and says what it changed.
    async fn apply_object(
        &self,
        unit: &str,
        r: &ObjectRef,
        manifest: &Value,
        members: &BTreeMap<Key, Member>,
    ) -> Result<(ObjectOutcome, Option<Value>), ApplyError> {
        let Some(resolved) = self.resolve_object(unit, r).await? else {
            if self.options.dry_run && self.plan_defines_crd_for(r) {
                // Its CRD is created by this same run, so the server cannot check it yet.
                return Ok((ObjectOutcome::Created, None));
            }
            return Err(ApplyError::UnknownKind {
                object: r.to_string(),
                api_version: r.api_version.clone(),
                kind: r.kind.clone(),
            });
        };
        let api: Api<DynamicObject> = resolved.api_for(&self.client, r)?;
        let label = r.to_string();
        let key = Key::of(r);
        let before: Option<Value> = match members.get(&key) {
            Some(m) => Some(m.live.clone()),
            None => with_retry_opt(&self.options.retry, self.progress, "read", &label, || {
                api.get(&r.name)
            })
            .await?
            .map(|o| serde_json::to_value(o).unwrap_or_default()),
        };
        let labelled = crate::objects::prepared(manifest, &self.id);
        if let Some(live) = &before
            && !self.created.contains(&key)
            && crate::objects::already_applied(&labelled, live)
        {
            // Applying would change nothing (see `already_applied`): save the request.
            return Ok((ObjectOutcome::Unchanged, Some(live.clone())));
        }
        let params = self.patch_params();
        let applied = with_retry(&self.options.retry, self.progress, "apply", &label, || {
            let patch = Patch::Apply(&labelled);
            let (api, params) = (&api, &params);
            async move { api.patch(&r.name, params, &patch).await }
        })
        .await;
        let applied = match applied {
            Ok(a) => serde_json::to_value(a).unwrap_or_default(),
            Err(ApplyError::Api {
                code: Some(404), ..
            }) if self.options.dry_run && before.is_none() && self.plan_creates_namespace_of(r) => {
                // Its namespace is created by this same run, so the server cannot check it yet.
                return Ok((ObjectOutcome::Created, None));
            }
            Err(e) => return Err(e),
        };
        let outcome = match &before {
            None => ObjectOutcome::Created,
            Some(_) if self.created.contains(&key) => ObjectOutcome::Created,
            Some(before) if self.options.dry_run => {
                if comparable(before) == comparable(&applied) {
                    ObjectOutcome::Unchanged
                } else {
                    ObjectOutcome::Configured
                }
            }
            Some(before) => {
                if resource_version(before).is_some()
                    && resource_version(before) == resource_version(&applied)
                {
                    ObjectOutcome::Unchanged
                } else {
                    ObjectOutcome::Configured
                }
            }
        };
        Ok((outcome, Some(applied)))
    }

    /// Deletes members the plan no longer has, custom resources first and namespaces last.
    /// Each one is read again and deleted only if it still carries our label, with its uid and
    /// resourceVersion as preconditions, so an object that changed hands in between is kept.
    /// A namespace is deleted only when an unfiltered look at every kind in it finds nothing
    /// but our own objects (see [`Run::why_namespace_stays`]).
    async fn prune(
        &mut self,
        members: &BTreeMap<Key, Member>,
        planned: &HashSet<Key>,
    ) -> Result<Vec<PrunedObject>, ApplyError> {
        let mut candidates: Vec<&Member> = members
            .iter()
            .filter(|(k, m)| !planned.contains(*k) && applyset::is_member(&m.live, &self.id))
            .map(|(_, m)| m)
            .collect();
        candidates.sort_by_key(|m| std::cmp::Reverse(kind_rank(&m.object_ref)));
        let mut namespaced_kinds: Option<Vec<ApiResource>> = None;
        let mut results = Vec::new();
        for member in candidates {
            let r = &member.object_ref;
            let kept = |reason: String, results: &mut Vec<PrunedObject>| {
                self.progress.event(ApplyEvent::PruneSkipped {
                    object: r.clone(),
                    reason: reason.clone(),
                });
                results.push(PrunedObject {
                    object: r.clone(),
                    deleted: false,
                    kept_because: Some(reason),
                });
            };
            if r.kind == "Namespace"
                && r.group().is_empty()
                && let Some(reason) = self
                    .why_namespace_stays(&r.name, planned, &mut namespaced_kinds)
                    .await?
            {
                kept(reason, &mut results);
                continue;
            }
            match self.delete_if_still_ours(member).await? {
                Some(reason) => kept(reason, &mut results),
                None => {
                    self.progress
                        .event(ApplyEvent::Pruned { object: r.clone() });
                    results.push(PrunedObject {
                        object: r.clone(),
                        deleted: true,
                        kept_because: None,
                    });
                }
            }
        }
        Ok(results)
    }

    /// Reads `member` again and deletes it when it still carries our label, on condition that
    /// it is still that very version. `Some(reason)` when it is kept; `None` when it was deleted
    /// (or was gone already).
    async fn delete_if_still_ours(&self, member: &Member) -> Result<Option<String>, ApplyError> {
        let r = &member.object_ref;
        let label = r.to_string();
        let api: Api<DynamicObject> = match &r.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &member.resource),
            None => Api::all_with(self.client.clone(), &member.resource),
        };
        let retry = &self.options.retry;
        let mut looks = 0;
        loop {
            looks += 1;
            let Some(now) =
                with_retry_opt(retry, self.progress, "read", &label, || api.get(&r.name)).await?
            else {
                return Ok(None);
            };
            let value = serde_json::to_value(&now).unwrap_or_default();
            if !applyset::is_member(&value, &self.id) {
                return Ok(Some(format!(
                    "it no longer carries {LABEL_PART_OF}={}: it was changed since it was listed, so it is not homelab's to delete any more",
                    self.id
                )));
            }
            if applyset::is_kept(&value) {
                return Ok(Some(format!(
                    "it is marked {}={}: homelab never deletes it (delete it by hand if you mean to)",
                    applyset::ANNOTATION_KEEP,
                    applyset::KEEP_VALUE
                )));
            }
            let params = DeleteParams {
                dry_run: self.options.dry_run,
                propagation_policy: Some(PropagationPolicy::Background),
                preconditions: Some(Preconditions {
                    uid: now.metadata.uid.clone(),
                    resource_version: now.metadata.resource_version.clone(),
                }),
                ..Default::default()
            };
            // A 409 here means the preconditions failed: the object changed between the read
            // and the delete. It is read and checked again rather than deleted blindly.
            let deleted = with_retry_if(
                retry,
                self.progress,
                "delete",
                &label,
                |e| is_transient(e) && !is_conflict(e),
                || {
                    let (api, params) = (&api, &params);
                    async move {
                        match api.delete(&r.name, params).await {
                            Err(e) if is_not_found(&e) => Ok(()),
                            other => other.map(|_| ()),
                        }
                    }
                },
            )
            .await;
            match deleted {
                Ok(()) => return Ok(None),
                Err(ApplyError::Api {
                    code: Some(409), ..
                }) if looks < retry.attempts.max(1) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Why the namespace `namespace` must not be deleted, if it must not: the plan still has
    /// objects in it, or an unfiltered list of every namespaced kind the API serves (ignoring
    /// any label selector) finds an object that is neither ours nor made by a controller from
    /// one of ours (its owner chain reaches one of our objects) nor one Kubernetes puts in
    /// every namespace, or a kind could not be listed (then nothing proves it empty).
    async fn why_namespace_stays(
        &self,
        namespace: &str,
        planned: &HashSet<Key>,
        namespaced_kinds: &mut Option<Vec<ApiResource>>,
    ) -> Result<Option<String>, ApplyError> {
        use futures::stream::{self, StreamExt};
        let mut still_planned: Vec<String> = planned
            .iter()
            .filter(|k| k.namespace.as_deref() == Some(namespace))
            .map(|k| format!("{} {}", k.kind, k.name))
            .collect();
        if !still_planned.is_empty() {
            still_planned.sort();
            return Ok(Some(format!(
                "the plan still has objects in namespace {namespace} ({}); deleting it would delete them",
                name_list(&still_planned)
            )));
        }
        if namespaced_kinds.is_none() {
            *namespaced_kinds = Some(self.discover_namespaced_kinds().await?);
        }
        let kinds = namespaced_kinds.as_deref().unwrap_or_default();
        let this = self;
        let listed: Vec<(&ApiResource, Result<Vec<DynamicObject>, ApplyError>)> =
            stream::iter(kinds)
                .map(|resource| async move {
                    let api: Api<DynamicObject> =
                        Api::namespaced_with(this.client.clone(), namespace, resource);
                    let what = format!("{} in namespace {namespace}", resource.plural);
                    let list =
                        with_retry_opt(&this.options.retry, this.progress, "list", &what, || {
                            let api = &api;
                            async move { api.list(&ListParams::default()).await }
                        })
                        .await;
                    (
                        resource,
                        list.map(|l| l.map(|l| l.items).unwrap_or_default()),
                    )
                })
                .buffered(16)
                .collect()
                .await;
        let mut unlistable = Vec::new();
        let mut kept: Vec<String> = Vec::new();
        // (kind, name, uid, is ours, owner uids)
        let mut objects: Vec<(String, String, String, bool, Vec<String>)> = Vec::new();
        for (resource, items) in listed {
            let items = match items {
                Ok(items) => items,
                Err(e) => {
                    unlistable.push(format!("{}: {e}", resource.kind));
                    continue;
                }
            };
            for item in items {
                let value = serde_json::to_value(&item).unwrap_or_default();
                if applyset::is_kept(&value) {
                    kept.push(format!(
                        "{} {}",
                        resource.kind,
                        item.metadata.name.clone().unwrap_or_default()
                    ));
                }
                objects.push((
                    resource.kind.clone(),
                    item.metadata.name.clone().unwrap_or_default(),
                    item.metadata.uid.clone().unwrap_or_default(),
                    applyset::is_member(&value, &self.id),
                    item.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .map(|o| o.uid.clone())
                        .collect(),
                ));
            }
        }
        if !unlistable.is_empty() {
            return Ok(Some(format!(
                "not every kind in namespace {namespace} could be listed, so nothing proves it holds only homelab's objects ({}); fix that, then prune again",
                unlistable.join("; ")
            )));
        }
        if !kept.is_empty() {
            kept.sort();
            return Ok(Some(format!(
                "namespace {namespace} holds objects marked {}={} ({}), which deleting it would delete; remove them by hand first if you mean to",
                applyset::ANNOTATION_KEEP,
                applyset::KEEP_VALUE,
                name_list(&kept)
            )));
        }
        // Objects made by controllers from ours (a Deployment's ReplicaSets and their Pods)
        // are ours too: follow owner references until nothing new is found.
        let mut ours: HashSet<String> = objects
            .iter()
            .filter(|o| o.3)
            .map(|o| o.2.clone())
            .collect();
        loop {
            let before = ours.len();
            for o in &objects {
                if !ours.contains(&o.2) && o.4.iter().any(|owner| ours.contains(owner)) {
                    ours.insert(o.2.clone());
                }
            }
            if ours.len() == before {
                break;
            }
        }
        let mut foreign: Vec<String> = objects
            .iter()
            .filter(|(kind, name, uid, _, _)| {
                !ours.contains(uid) && !AUTOMATIC.contains(&(kind.as_str(), name.as_str()))
            })
            .map(|(kind, name, ..)| format!("{kind} {name}"))
            .collect();
        if foreign.is_empty() {
            return Ok(None);
        }
        foreign.sort();
        Ok(Some(format!(
            "namespace {namespace} still holds objects homelab did not create ({}); move or delete them, then prune again (objects a chart homelab just removed go once helm-controller has uninstalled it)",
            name_list(&foreign)
        )))
    }

    /// Every namespaced kind the API serves that can be listed, except those Kubernetes fills
    /// by itself from other objects (events, endpoints, leases, metrics).
    async fn discover_namespaced_kinds(&self) -> Result<Vec<ApiResource>, ApplyError> {
        let client = self.client.clone();
        let discovery = with_retry(
            &self.options.retry,
            self.progress,
            "discover",
            "all API groups",
            || {
                let client = client.clone();
                async move { kube::Discovery::new(client).run().await }
            },
        )
        .await?;
        Ok(discovery
            .groups()
            .flat_map(|group| group.recommended_resources())
            .filter(|(resource, caps)| {
                caps.scope == kube::discovery::Scope::Namespaced
                    && caps.supports_operation(kube::discovery::verbs::LIST)
                    && !DERIVED_KINDS.contains(&resource.kind.as_str())
            })
            .map(|(resource, _)| resource)
            .collect())
    }
}

/// What Kubernetes creates in every namespace.
const AUTOMATIC: &[(&str, &str)] = &[
    ("ServiceAccount", "default"),
    ("ConfigMap", "kube-root-ca.crt"),
];

/// Kinds Kubernetes derives from other objects; they say nothing about who uses a namespace.
const DERIVED_KINDS: &[&str] = &[
    "Event",
    "Endpoints",
    "EndpointSlice",
    "Lease",
    "Binding",
    "PodMetrics",
];

/// At most five names, then how many more.
fn name_list(names: &[String]) -> String {
    let mut text = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        text.push_str(&format!(" and {} more", names.len() - 5));
    }
    text
}
