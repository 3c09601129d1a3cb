//! Checks a plan and puts it in apply order: units topologically by `depends_on` (ties keep
//! plan order), objects inside a unit by kind. Pure; must not talk to a cluster.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::error::PlanError;
use crate::model::{ApplyPlan, ApplyUnit, ObjectRef};

/// Kinds in the order they must exist; anything not listed (custom resources) comes last.
/// Namespaces first, CRDs right after so their kinds are served before anyone uses them.
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "CustomResourceDefinition",
    "PriorityClass",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Kinds that only the core and well-known built-in API groups serve; a kind with a group
/// outside this list is a custom resource.
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "policy",
    "autoscaling",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "admissionregistration.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "certificates.k8s.io",
];

/// Rank of an object inside its unit: lower goes first.
pub(crate) fn kind_rank(object: &ObjectRef) -> usize {
    if !BUILTIN_GROUPS.contains(&object.group()) {
        return KIND_ORDER.len() + 1;
    }
    KIND_ORDER
        .iter()
        .position(|k| *k == object.kind)
        .unwrap_or(KIND_ORDER.len())
}

/// A unit ready to apply: objects sorted, identities read.
#[derive(Debug)]
pub(crate) struct OrderedUnit<'a> {
    pub unit: &'a ApplyUnit,
    pub objects: Vec<(ObjectRef, &'a Value)>,
}

/// Validates the plan and returns its units in apply order.
pub(crate) fn order_plan(plan: &ApplyPlan) -> Result<Vec<OrderedUnit<'_>>, PlanError> {
    if plan.field_manager.is_empty() || plan.field_manager.len() > 128 {
        return Err(PlanError::FieldManager(plan.field_manager.clone()));
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, unit) in plan.units.iter().enumerate() {
        if index.insert(unit.name.as_str(), i).is_some() {
            return Err(PlanError::DuplicateUnit {
                unit: unit.name.clone(),
            });
        }
    }
    for unit in &plan.units {
        for dep in &unit.depends_on {
            if !index.contains_key(dep.as_str()) {
                return Err(PlanError::UnknownDependency {
                    unit: unit.name.clone(),
                    dependency: dep.clone(),
                });
            }
        }
    }

    let order = topological(plan, &index)?;

    let mut seen: BTreeMap<ObjectRef, &str> = BTreeMap::new();
    let mut result = Vec::with_capacity(order.len());
    for i in order {
        let unit = &plan.units[i];
        let mut objects = Vec::with_capacity(unit.objects.len());
        for (n, object) in unit.objects.iter().enumerate() {
            let r = check_manifest(unit, n, object)?;
            if let Some(first) = seen.insert(r.clone(), unit.name.as_str()) {
                return Err(PlanError::DuplicateObject {
                    object: r.to_string(),
                    first: first.to_string(),
                    second: unit.name.clone(),
                });
            }
            objects.push((r, object));
        }
        objects.sort_by_key(|(r, _)| kind_rank(r));
        result.push(OrderedUnit { unit, objects });
    }
    Ok(result)
}

/// Kahn's algorithm, always taking the earliest ready unit in plan order so the result is
/// deterministic; on a cycle, reports one.
fn topological(plan: &ApplyPlan, index: &HashMap<&str, usize>) -> Result<Vec<usize>, PlanError> {
    let n = plan.units.len();
    let mut remaining: Vec<usize> = plan
        .units
        .iter()
        .map(|u| {
            let mut deps: Vec<&String> = u.depends_on.iter().collect();
            deps.sort();
            deps.dedup();
            deps.len()
        })
        .collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, unit) in plan.units.iter().enumerate() {
        let mut deps: Vec<&String> = unit.depends_on.iter().collect();
        deps.sort();
        deps.dedup();
        for dep in deps {
            dependents[index[dep.as_str()]].push(i);
        }
    }
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let Some(next) = (0..n).find(|&i| !done[i] && remaining[i] == 0) else {
            return Err(PlanError::Cycle {
                units: find_cycle(plan, index, &done),
            });
        };
        done[next] = true;
        order.push(next);
        for &d in &dependents[next] {
            remaining[d] -= 1;
        }
    }
    Ok(order)
}

fn find_cycle(plan: &ApplyPlan, index: &HashMap<&str, usize>, done: &[bool]) -> Vec<String> {
    // Every unit left has an unfinished dependency, so walking them must revisit one.
    let start = (0..plan.units.len()).find(|&i| !done[i]).unwrap_or(0);
    let mut path = vec![start];
    let mut current = start;
    loop {
        let next = plan.units[current]
            .depends_on
            .iter()
            .map(|d| index[d.as_str()])
            .find(|&d| !done[d]);
        let Some(next) = next else { break };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<String> = path[pos..]
                .iter()
                .map(|&i| plan.units[i].name.clone())
                .collect();
            cycle.push(plan.units[next].name.clone());
            return cycle;
        }
        path.push(next);
        current = next;
    }
    path.iter().map(|&i| plan.units[i].name.clone()).collect()
}

fn check_manifest(unit: &ApplyUnit, index: usize, object: &Value) -> Result<ObjectRef, PlanError> {
    let invalid = |reason: &str| PlanError::InvalidObject {
        unit: unit.name.clone(),
        index,
        reason: reason.to_string(),
    };
    if !object.is_object() {
        return Err(invalid("it is not a mapping"));
    }
    let r = ObjectRef::from_manifest(object);
    if r.api_version.is_empty() {
        return Err(invalid("apiVersion is missing"));
    }
    if r.kind.is_empty() {
        return Err(invalid("kind is missing"));
    }
    if r.name.is_empty() {
        return Err(invalid("metadata.name is missing"));
    }
    if object.pointer("/metadata/generateName").is_some() {
        return Err(invalid(
            "metadata.generateName cannot be applied server-side; give the object a name",
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ApplySetRef;
    use serde_json::json;

    fn unit(name: &str, deps: &[&str], objects: Vec<Value>) -> ApplyUnit {
        ApplyUnit {
            name: name.into(),
            depends_on: deps.iter().map(|s| s.to_string()).collect(),
            objects,
            waits: vec![],
        }
    }

    fn plan(units: Vec<ApplyUnit>) -> ApplyPlan {
        ApplyPlan {
            applyset: ApplySetRef {
                name: "lab".into(),
                namespace: "homelab".into(),
            },
            field_manager: "homelab".into(),
            units,
        }
    }

    fn names(p: &ApplyPlan) -> Vec<String> {
        order_plan(p)
            .unwrap()
            .iter()
            .map(|u| u.unit.name.clone())
            .collect()
    }

    #[test]
    fn units_follow_dependencies_and_keep_plan_order_otherwise() {
        let p = plan(vec![
            unit("apps", &["postgres", "cert-manager"], vec![]),
            unit("postgres", &["nfs"], vec![]),
            unit("cert-manager", &[], vec![]),
            unit("nfs", &[], vec![]),
        ]);
        assert_eq!(names(&p), ["cert-manager", "nfs", "postgres", "apps"]);
    }

    #[test]
    fn a_cycle_is_reported_with_its_units() {
        let p = plan(vec![
            unit("a", &["b"], vec![]),
            unit("b", &["c"], vec![]),
            unit("c", &["a"], vec![]),
            unit("d", &[], vec![]),
        ]);
        let err = order_plan(&p).unwrap_err();
        assert_eq!(
            err,
            PlanError::Cycle {
                units: vec!["a".into(), "b".into(), "c".into(), "a".into()]
            }
        );
        assert!(err.to_string().contains("a -> b -> c -> a"), "{err}");
    }

    #[test]
    fn unknown_and_duplicate_units_are_errors() {
        let p = plan(vec![unit("a", &["zz"], vec![])]);
        assert!(matches!(
            order_plan(&p),
            Err(PlanError::UnknownDependency { .. })
        ));
        let p = plan(vec![unit("a", &[], vec![]), unit("a", &[], vec![])]);
        assert!(matches!(
            order_plan(&p),
            Err(PlanError::DuplicateUnit { .. })
        ));
    }

    #[test]
    fn objects_in_a_unit_go_namespace_crd_builtins_then_custom_resources() {
        let p = plan(vec![unit(
            "metallb",
            &[],
            vec![
                json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "pool", "namespace": "infra"}}),
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "controller", "namespace": "infra"}}),
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "ipaddresspools.metallb.io"}}),
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "webhook", "namespace": "infra"}}),
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "infra"}}),
            ],
        )]);
        let ordered = order_plan(&p).unwrap();
        let kinds: Vec<&str> = ordered[0]
            .objects
            .iter()
            .map(|(r, _)| r.kind.as_str())
            .collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "Service",
                "Deployment",
                "IPAddressPool"
            ]
        );
    }

    #[test]
    fn invalid_manifests_name_the_unit_and_the_problem() {
        let p = plan(vec![unit(
            "web",
            &[],
            vec![json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})],
        )]);
        let err = order_plan(&p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "object #0 of unit \"web\" is not a valid manifest: metadata.name is missing"
        );
        let p = plan(vec![
            unit(
                "a",
                &[],
                vec![
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "n"}}),
                ],
            ),
            unit(
                "b",
                &[],
                vec![
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "n"}}),
                ],
            ),
        ]);
        assert!(matches!(
            order_plan(&p),
            Err(PlanError::DuplicateObject { .. })
        ));
    }
}
