//! `down`: `up` in reverse — with `delete_data` the lab's objects deleted from the cluster
//! with the claims its StatefulSets made (their volumes, and so the data the NFS provisioner
//! keeps for them, go too), then k3s and
//! its data removed from every node (agents first, the first server last), then the VMs
//! unless kept — and what that loses, in words, for the caller's confirmation. Never asks
//! and never prints: the caller confirms before calling [`down`].

use std::path::Path;
use std::time::Instant;

use homelab_kube::{
    ApplyOptions, ApplyPlan, ApplySetRef, Cluster, KubeconfigSource, RetryPolicy,
    StatefulSetClaims, delete_statefulset_claims,
};
use homelab_nodes::{HostOutcome, Report};
use homelab_plan::Plan;
use homelab_spec::LoadedSpec;

use crate::cluster_plan::{APPLYSET_NAMESPACE, FIELD_MANAGER};
use crate::inventory::{self, Needs, NodeAccess};
use crate::journal::Journal;
use crate::up::{KubeSink, NodeSink, Outcome, Step, StepReport, UpError, UpEvent, UpEvents};
use crate::vms::{self, VmEvent};

/// The steps of `down`, in order.
pub const STEPS: [Step; 3] = [Step::DeleteData, Step::ResetNodes, Step::DestroyVms];

/// The caller's choices.
#[derive(Debug, Clone)]
pub struct DownOptions {
    /// Say what would be done; change nothing (the cluster sees a server-side dry run).
    pub dry_run: bool,
    /// Delete the lab's objects, and with its volumes their data, before the nodes go.
    pub delete_data: bool,
    /// Keep the VMs (only k3s goes).
    pub keep_vms: bool,
    pub access: NodeAccess,
    /// The cluster, for `delete_data`.
    pub cluster: KubeconfigSource,
    pub retry: RetryPolicy,
}

/// What `down` did, step by step.
#[derive(Debug, Default)]
pub struct DownReport {
    pub lab: String,
    pub dry_run: bool,
    pub steps: Vec<StepReport>,
    /// Per host, what resetting it did.
    pub nodes: Option<Report>,
    /// Whether the journal of `up` was removed.
    pub journal_removed: bool,
}

/// A step of `down` that stopped it, with what ran before.
#[derive(Debug)]
pub struct DownFailure {
    pub step: Step,
    pub error: UpError,
    pub report: DownReport,
}

impl std::fmt::Display for DownFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.step.title(), self.error)
    }
}

impl std::error::Error for DownFailure {}

/// The hosts in the order they are reset: agents, then servers, the first server last (the
/// cluster keeps its API while the others go).
pub fn reset_order(loaded: &LoadedSpec) -> Vec<String> {
    let first = loaded.lab.cluster.first_server().name.clone();
    let mut agents = Vec::new();
    let mut servers = Vec::new();
    for n in &loaded.lab.cluster.nodes {
        match n.role {
            homelab_spec::lab::NodeRole::Agent => agents.push(n.name.clone()),
            _ if n.name == first => {}
            _ => servers.push(n.name.clone()),
        }
    }
    servers.reverse();
    agents.into_iter().chain(servers).chain([first]).collect()
}

/// What `down` with `options` loses and what it keeps, one line each, for the confirmation.
pub fn losses(loaded: &LoadedSpec, options: &DownOptions) -> Vec<String> {
    let lab = &loaded.lab;
    let hosts = reset_order(loaded).join(", ");
    let mut lines = vec![format!(
        "k3s and all its data on {hosts}: etcd (every object of the cluster), local volumes, containers and images"
    )];
    let nfs = lab
        .storage
        .as_ref()
        .map(|s| format!("{}:{}", s.nfs.server, s.nfs.path));
    match (options.delete_data, &nfs) {
        (true, Some(nfs)) => lines.push(format!(
            "the data of the lab's volumes on NFS ({nfs}): their claims are deleted first, and the provisioner removes their directories"
        )),
        (true, None) => lines.push("every object of the lab in the cluster, deleted before the nodes go".to_string()),
        (false, Some(nfs)) => lines.push(format!(
            "kept: the volumes' data on NFS ({nfs}); `--delete-data` deletes it too"
        )),
        (false, None) => {}
    }
    match (&lab.proxmox, options.keep_vms) {
        (Some(p), false) => lines.push(format!(
            "the lab's VMs on Proxmox {} ({}), with their disks",
            p.endpoint, p.node
        )),
        (Some(_), true) => lines.push("kept: the VMs (`--keep-vms`)".to_string()),
        (None, _) => {}
    }
    lines
}

/// Runs the steps of `down` in order, stopping at the first that fails.
pub async fn down(
    spec: &Path,
    loaded: &LoadedSpec,
    plan: &Plan,
    options: &DownOptions,
    events: &dyn UpEvents,
) -> Result<DownReport, Box<DownFailure>> {
    let mut report = DownReport {
        lab: loaded.lab.name.clone(),
        dry_run: options.dry_run,
        ..DownReport::default()
    };
    for (i, step) in STEPS.into_iter().enumerate() {
        events.event(UpEvent::StepStarted {
            step,
            number: i + 1,
            of: STEPS.len(),
        });
        let started = Instant::now();
        let result = match step {
            Step::DeleteData => delete_data(plan, options, events).await,
            Step::ResetNodes if destroys_vms(loaded, options) => Ok((
                Outcome::Skipped,
                "the nodes' VMs are destroyed with their disks next, and k3s with them".to_string(),
            )),
            Step::ResetNodes => reset_nodes(spec, loaded, plan, options, events, &mut report).await,
            Step::DestroyVms => destroy_vms(spec, loaded, options, events).await,
            _ => unreachable!("a step of up, not of down"),
        };
        match result {
            Ok((outcome, summary)) => {
                let done = StepReport {
                    step,
                    outcome,
                    summary,
                    seconds: started.elapsed().as_secs_f64(),
                };
                events.event(UpEvent::StepFinished(&done));
                report.steps.push(done);
            }
            Err(error) => {
                return Err(Box::new(DownFailure {
                    step,
                    error,
                    report,
                }));
            }
        }
    }
    if !options.dry_run {
        // The journal speaks of a lab that is gone; a journal that cannot be removed is
        // harmless (the next `up` checks every step for itself).
        report.journal_removed = Journal::remove(spec).unwrap_or(false);
    }
    Ok(report)
}

async fn delete_data(
    plan: &Plan,
    options: &DownOptions,
    events: &dyn UpEvents,
) -> Result<(Outcome, String), UpError> {
    if !options.delete_data {
        return Ok((
            Outcome::Skipped,
            "the lab's objects and volumes stay as they are (`--delete-data` deletes them first)"
                .to_string(),
        ));
    }
    let cluster = Cluster::connect_with(&options.cluster, &options.retry, &KubeSink(events))
        .await
        .map_err(UpError::Connect)?;
    // An empty plan in the lab's ApplySet: pruning it deletes every object an apply made,
    // and nothing that is not the lab's (objects marked to be kept stay, and are named).
    let empty = ApplyPlan {
        applyset: ApplySetRef {
            name: plan.lab_name.clone(),
            namespace: APPLYSET_NAMESPACE.to_string(),
        },
        field_manager: FIELD_MANAGER.to_string(),
        units: Vec::new(),
    };
    let apply_options = ApplyOptions {
        dry_run: options.dry_run,
        prune: true,
        retry: options.retry.clone(),
        ..ApplyOptions::default()
    };
    let pruned = cluster
        .apply(&empty, &apply_options, &KubeSink(events))
        .await
        .map_err(UpError::Apply)?;
    // Kubernetes keeps the claims a StatefulSet made when the StatefulSet goes (PostgreSQL's
    // data among them), and with the claim its volume's data on NFS: those are the data
    // `--delete-data` is for, so they go by name; no other claim is touched.
    let sets: Vec<StatefulSetClaims> = plan
        .components
        .iter()
        .flat_map(|c| &c.objects)
        .filter_map(|o| StatefulSetClaims::of_manifest(&o.manifest))
        .collect();
    let claims = delete_statefulset_claims(
        &cluster,
        &sets,
        options.dry_run,
        &options.retry,
        &KubeSink(events),
    )
    .await
    .map_err(UpError::Apply)?;
    let claims_said = if claims.is_empty() {
        String::new()
    } else {
        format!(
            " and the {} claim(s) its StatefulSets made ({})",
            claims.len(),
            claims.join(", ")
        )
    };
    let deleted = pruned.pruned.iter().filter(|p| p.deleted).count() + claims.len();
    let kept = pruned.pruned.len() + claims.len() - deleted;
    Ok(if options.dry_run {
        (
            Outcome::DryRun,
            format!(
                "would delete {} object(s) of the lab{claims_said} at {}",
                pruned
                    .pruned
                    .iter()
                    .filter(|p| p.kept_because.is_none())
                    .count(),
                cluster.server()
            ),
        )
    } else if deleted == 0 {
        (
            Outcome::Unchanged,
            format!("no object of the lab is left at {}", cluster.server()),
        )
    } else {
        (
            Outcome::Changed,
            format!(
                "deleted {} object(s) of the lab{claims_said} at {}{}",
                deleted - claims.len(),
                cluster.server(),
                if kept > 0 {
                    format!(", kept {kept} (named above with the reason)")
                } else {
                    String::new()
                }
            ),
        )
    })
}

async fn reset_nodes(
    spec: &Path,
    loaded: &LoadedSpec,
    plan: &Plan,
    options: &DownOptions,
    events: &dyn UpEvents,
    report: &mut DownReport,
) -> Result<(Outcome, String), UpError> {
    let order = reset_order(loaded);
    if options.dry_run {
        return Ok((
            Outcome::DryRun,
            format!("would remove k3s and its data from {}", order.join(", ")),
        ));
    }
    let lab = inventory::build(spec, loaded, plan, &options.access, Needs::SudoOnly)?;
    let inv = &lab.inventory;
    // The caller confirmed for every host at once.
    let yes = |_: &str| true;
    let mut all = Report {
        hosts: Vec::new(),
        stopped: None,
    };
    for name in &order {
        let one = homelab_nodes::reset(inv, name, &yes, &NodeSink(events))
            .await
            .map_err(UpError::Nodes)?;
        all.hosts.extend(one.hosts);
    }
    let removed: Vec<&str> = all
        .hosts
        .iter()
        .filter(|h| matches!(h.outcome, HostOutcome::Changed { .. }))
        .map(|h| h.host.as_str())
        .collect();
    let done = if removed.is_empty() {
        (
            Outcome::Unchanged,
            format!("k3s is not installed on {}", order.join(", ")),
        )
    } else {
        (
            Outcome::Changed,
            format!(
                "removed k3s and its data from {} ({} of {} host(s))",
                removed.join(", "),
                removed.len(),
                order.len()
            ),
        )
    };
    report.nodes = Some(all);
    Ok(done)
}

/// Whether `down` destroys the nodes' VMs (which takes k3s with them).
fn destroys_vms(loaded: &LoadedSpec, options: &DownOptions) -> bool {
    loaded.lab.proxmox.is_some() && !options.keep_vms
}

async fn destroy_vms(
    spec: &Path,
    loaded: &LoadedSpec,
    options: &DownOptions,
    events: &dyn UpEvents,
) -> Result<(Outcome, String), UpError> {
    let lab = &loaded.lab;
    let px = match (&lab.proxmox, options.keep_vms) {
        (None, _) => {
            return Ok((
                Outcome::Skipped,
                "no `proxmox:` section: the machines are yours and stay".to_string(),
            ));
        }
        (Some(_), true) => return Ok((Outcome::Skipped, "kept (`--keep-vms`)".to_string())),
        (Some(px), false) => px,
    };
    let store = crate::up::open_store(spec, loaded)?;
    let client = vms::connect(px, &store).map_err(|e| UpError::Vms(Box::new(e)))?;
    let observed = vms::observe(&client, lab)
        .await
        .map_err(|e| UpError::Vms(Box::new(e)))?;
    let plan = vms::plan_destroy(lab, &observed);
    let names: Vec<String> = plan
        .vms
        .iter()
        .map(|v| format!("{} ({})", v.name, v.vmid))
        .collect();
    let untagged = if plan.untagged.is_empty() {
        String::new()
    } else {
        format!(
            "; left alone, without the tag {}: {}",
            plan.tag,
            plan.untagged
                .iter()
                .map(|v| format!("{} ({})", v.name, v.vmid))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if plan.vms.is_empty() {
        return Ok((
            Outcome::Unchanged,
            format!(
                "no VM with the tag {} on {}{untagged}",
                plan.tag, plan.endpoint
            ),
        ));
    }
    if options.dry_run {
        return Ok((
            Outcome::DryRun,
            format!(
                "would destroy {} on {}{untagged}",
                names.join(", "),
                plan.endpoint
            ),
        ));
    }
    let sink = |e: VmEvent| events.event(UpEvent::Vm(&e));
    let done = vms::destroy(&client, &plan, &vms::ApplyOptions::default(), &sink)
        .await
        .map_err(|f| UpError::VmsDestroy(Box::new(f)))?;
    Ok((
        Outcome::Changed,
        format!(
            "destroyed {} with their disks on {}{untagged}",
            names[..done.destroyed.len()].join(", "),
            done.endpoint
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(nodes: &str) -> LoadedSpec {
        let text = homelab_spec::templates::MINIMAL.replace(
            "    - name: k3s-master\n      role: server\n      address: 192.168.2.20\n",
            nodes,
        );
        homelab_spec::load_str("homelab.yaml", &text).unwrap_or_else(|e| panic!("{}", e.render()))
    }

    fn options(delete_data: bool) -> DownOptions {
        DownOptions {
            dry_run: false,
            delete_data,
            keep_vms: false,
            access: NodeAccess::default(),
            cluster: KubeconfigSource::default(),
            retry: RetryPolicy::default(),
        }
    }

    #[test]
    fn agents_go_first_and_the_first_server_last() {
        let loaded = spec(
            "    - {name: s1, role: server, address: 192.168.2.20}\n    - {name: a1, role: agent, address: 192.168.2.21}\n    - {name: s2, role: server, address: 192.168.2.22}\n    - {name: a2, role: agent, address: 192.168.2.23}\n",
        );
        assert_eq!(reset_order(&loaded), ["a1", "a2", "s2", "s1"]);
    }

    #[test]
    fn the_confirmation_names_what_is_lost_and_what_is_kept() {
        let loaded = spec("    - {name: s1, role: server, address: 192.168.2.20}\n");
        let keep = losses(&loaded, &options(false)).join("\n");
        assert!(keep.contains("k3s and all its data on s1"), "{keep}");
        assert!(
            keep.contains("kept: the volumes' data on NFS (192.168.2.2:/volume1/k8s-data)"),
            "{keep}"
        );
        let delete = losses(&loaded, &options(true)).join("\n");
        assert!(
            delete.contains("the data of the lab's volumes on NFS (192.168.2.2:/volume1/k8s-data)"),
            "{delete}"
        );
        assert!(!delete.contains("kept:"), "{delete}");
    }
}
