//! `homelab nodes remove NAME`: cordon, drain, take a server out of etcd (refusing when that
//! would lose quorum or remove the last member), delete the node, uninstall k3s. Nothing is
//! changed before those checks pass. A host that is gone for good is removed from the cluster
//! without connecting to it (`unreachable`).

use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::apply::{finish, preflight};
use crate::cluster::{ETCD_REMOVE_ANNOTATION, ETCD_REMOVED_ANNOTATION, KUBECTL, NodeView, quorum};
use crate::common::{self, Connect, GatherFacts};
use crate::drain;
use crate::error::{HostError, HostErrorKind, NodesError};
use crate::event::{EventSink, Report};
use crate::history::{self, HistoryEntry};
use crate::inventory::{Inventory, Role};
use crate::phase::{OnFailure, Phase, Run, Step};
use crate::shell::quote;

/// Options of [`remove`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveOptions {
    /// Report what would be done and change nothing.
    pub dry_run: bool,
    /// How long PodDisruptionBudgets may hold up the drain (the inventory's drain timeout by default).
    pub drain_timeout: Option<Duration>,
    /// The host is gone (dead disk, reinstalled, stolen): do not connect to it. The node is
    /// cordoned (not drained: nothing there can answer an eviction), its etcd member removed,
    /// the node deleted (its pods go with it), and nothing is uninstalled. Refused while the
    /// node is Ready, since a running k3s would register it again.
    pub unreachable: bool,
}

/// What the cluster looked like when the removal was checked.
#[derive(Default)]
struct Found {
    node: Option<NodeView>,
}

/// Whether removing `name` from a cluster with these nodes keeps etcd working.
pub(crate) fn quorum_check(nodes: &[NodeView], name: &str) -> Result<(), String> {
    let Some(target) = nodes.iter().find(|n| n.name == name) else {
        return Ok(());
    };
    if !target.is_etcd_member() {
        return Ok(());
    }
    let members: Vec<&NodeView> = nodes.iter().filter(|n| n.is_etcd_member()).collect();
    if members.len() == 1 {
        return Err(format!(
            "{name} is the last etcd member of the cluster: removing it would destroy the cluster. To tear the lab down, run `homelab nodes reset` on every host"
        ));
    }
    let remaining_ready = members.iter().filter(|n| n.name != name && n.ready).count();
    let needed = quorum(members.len() - 1);
    if remaining_ready < needed {
        let down: Vec<&str> = members
            .iter()
            .filter(|n| n.name != name && !n.ready)
            .map(|n| n.name.as_str())
            .collect();
        return Err(format!(
            "removing {name} would leave {remaining_ready} healthy etcd member(s) of {} while {needed} are needed for quorum ({} NotReady); bring the other servers back first",
            members.len() - 1,
            down.join(", ")
        ));
    }
    Ok(())
}

struct Check<'f> {
    target: usize,
    found: &'f std::sync::Mutex<Found>,
    unreachable: bool,
}

impl Phase for Check<'_> {
    fn title(&self) -> &str {
        "Check the cluster"
    }
    fn hosts(&self, _run: &Run<'_>) -> Vec<usize> {
        vec![self.target]
    }
    fn read_only(&self) -> bool {
        true
    }
    fn on_failure(&self, _run: &Run<'_>, _host: usize) -> OnFailure {
        OnFailure::StopRun
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, h: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(async move {
            let name = run.host(h).name.clone();
            let nodes = common::read_nodes(run).await?;
            quorum_check(&nodes, &name)
                .map_err(|e| HostError::new(&name, HostErrorKind::Refused, e))?;
            let node = nodes.into_iter().find(|n| n.name == name);
            if self.unreachable && node.as_ref().is_some_and(|n| n.ready) {
                return Err(HostError::new(
                    &name,
                    HostErrorKind::Refused,
                    format!(
                        "node {name} is Ready, so k3s still runs on its host and would register it again after the removal; make the host reachable over SSH and remove it without --unreachable (k3s is then uninstalled from it), or power it off first"
                    ),
                ));
            }
            let msg = match &node {
                Some(n) if n.is_etcd_member() => {
                    "a server with an etcd member; the others keep quorum without it".to_string()
                }
                Some(_) => "a node of the cluster".to_string(),
                None => "not in the cluster (only k3s on the host is removed)".to_string(),
            };
            self.found.lock().expect("found lock").node = node;
            Ok(Step::Unchanged(msg))
        })
    }
}

/// The steps that change things, one phase each so that reports and events name them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StepKind {
    Drain,
    LeaveEtcd,
    Delete,
    Uninstall,
}

struct RemoveStep<'f> {
    kind: StepKind,
    target: usize,
    found: &'f std::sync::Mutex<Found>,
    drain_timeout: Duration,
    unreachable: bool,
}

impl RemoveStep<'_> {
    fn node(&self) -> Option<NodeView> {
        self.found.lock().expect("found lock").node.clone()
    }
}

impl Phase for RemoveStep<'_> {
    fn title(&self) -> &str {
        match self.kind {
            StepKind::Drain if self.unreachable => "Cordon",
            StepKind::Drain => "Cordon and drain",
            StepKind::LeaveEtcd => "Remove the etcd member",
            StepKind::Delete => "Delete the node",
            StepKind::Uninstall => "Uninstall k3s",
        }
    }
    fn hosts(&self, run: &Run<'_>) -> Vec<usize> {
        let node = self.node();
        let applies = match self.kind {
            StepKind::Drain | StepKind::Delete => node.is_some(),
            StepKind::LeaveEtcd => node.as_ref().is_some_and(NodeView::is_etcd_member),
            StepKind::Uninstall => run
                .facts(self.target)
                .is_some_and(|f| f.k3s_version.is_some() || f.k3s_unit.is_some()),
        };
        if applies { vec![self.target] } else { vec![] }
    }
    fn on_failure(&self, _run: &Run<'_>, _host: usize) -> OnFailure {
        OnFailure::StopRun
    }
    fn dry_run(&self, run: &Run<'_>, h: usize) -> Option<String> {
        let name = &run.host(h).name;
        Some(match self.kind {
            StepKind::Drain if self.unreachable => format!(
                "would cordon {name} (not drained: its host is gone; its pods are deleted with the node)"
            ),
            StepKind::Drain => format!(
                "would cordon {name} and drain it (waiting up to {}s for PodDisruptionBudgets)",
                self.drain_timeout.as_secs()
            ),
            StepKind::LeaveEtcd => format!("would remove {name}'s etcd member"),
            StepKind::Delete => format!("would delete node {name}"),
            StepKind::Uninstall => format!("would run {} on {name}", uninstall_script(run, h)),
        })
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, h: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(async move {
            let name = run.host(h).name.clone();
            let t = &run.inv.timeouts;
            match self.kind {
                StepKind::Drain if self.unreachable => {
                    common::kubectl(
                        run,
                        "cordoning the node",
                        &format!("cordon {}", quote(&name)),
                    )
                    .await?;
                    Ok(Step::Changed("cordoned (its host is gone)".into()))
                }
                StepKind::Drain => {
                    drain::drain(run, &name, self.drain_timeout).await?;
                    Ok(Step::Changed("cordoned and drained".into()))
                }
                StepKind::LeaveEtcd => {
                    common::kubectl(
                        run,
                        "asking k3s to remove the etcd member",
                        &format!(
                            "annotate node {} --overwrite {}",
                            quote(&name),
                            quote(&format!("{ETCD_REMOVE_ANNOTATION}=true"))
                        ),
                    )
                    .await?;
                    let deadline = Instant::now() + t.etcd_member_removal;
                    loop {
                        match common::read_node(run, &name).await? {
                            Some(n) if n.annotations.contains_key(ETCD_REMOVED_ANNOTATION) => break,
                            None => break,
                            Some(_) if Instant::now() >= deadline => {
                                return Err(HostError::new(
                                    &name,
                                    HostErrorKind::Timeout,
                                    format!(
                                        "k3s did not remove {name}'s etcd member within {}s (annotation {ETCD_REMOVED_ANNOTATION} not set); check `journalctl -u k3s` on the other servers, then run remove again",
                                        t.etcd_member_removal.as_secs()
                                    ),
                                ));
                            }
                            Some(_) => tokio::time::sleep(t.poll_interval).await,
                        }
                    }
                    Ok(Step::Changed("removed from etcd".into()))
                }
                StepKind::Delete => {
                    run.control_remote()?
                        .run(
                            "deleting the node",
                            &format!("{KUBECTL} delete node {}", quote(&name)),
                            t.command,
                        )
                        .await?;
                    if self.unreachable {
                        // Uninstall does not run on a host that is gone: record the removal here.
                        record_removal(run, self.title(), h, None).await?;
                    }
                    Ok(Step::Changed("deleted from the cluster".into()))
                }
                StepKind::Uninstall => {
                    let script = uninstall_script(run, h);
                    run.remote(h)?
                        .run("uninstalling k3s", script, t.install)
                        .await?;
                    let version = run
                        .facts(h)
                        .and_then(|f| f.k3s_version)
                        .map(|v| v.to_string());
                    record_removal(run, self.title(), h, version).await?;
                    Ok(Step::Changed(format!("ran {script}")))
                }
            }
        })
    }
}

/// Appends the removal of host `h` to the history; a failure to record it is a warning.
async fn record_removal(
    run: &Run<'_>,
    phase: &str,
    h: usize,
    version: Option<String>,
) -> Result<(), HostError> {
    let host = run.host(h);
    let entry = HistoryEntry::now(
        "remove",
        &host.name,
        host.role.k3s_command(),
        version,
        None,
        true,
        None,
    );
    if let Err(e) = history::append(run.control_remote()?, &[entry], run.inv.timeouts.command).await
    {
        run.warn(
            phase,
            h,
            format!("the removal was not recorded in the history: {}", e.message),
        );
    }
    Ok(())
}

fn uninstall_script(run: &Run<'_>, h: usize) -> &'static str {
    match run.facts(h).and_then(|f| f.k3s_unit) {
        Some(u) if u == "k3s-agent" => Role::Agent.uninstall_script(),
        Some(_) => Role::Server.uninstall_script(),
        None => run.host(h).role.uninstall_script(),
    }
}

/// Removes node `name` from the cluster and uninstalls k3s from it. Cluster-side steps run
/// on the first server (another server when `name` is the first one).
pub async fn remove(
    inv: &Inventory,
    name: &str,
    opts: &RemoveOptions,
    events: &dyn EventSink,
) -> Result<Report, NodesError> {
    preflight(inv)?;
    let target = inv.host_index(name)?;
    let refuse = |reason: String| NodesError::Refused {
        operation: format!("remove {name}"),
        reason,
    };
    let control = inv.hosts.iter().enumerate().position(|(i, h)| i != target && h.role == Role::Server).ok_or_else(|| {
        refuse(format!(
            "{name} is the only server in homelab.yaml: removing it would destroy the cluster (k3s needs a server to run the removal and keep etcd). To tear the lab down, run `homelab nodes reset` on every host"
        ))
    })?;
    let found = std::sync::Mutex::new(Found::default());
    let drain_timeout = opts.drain_timeout.unwrap_or(inv.timeouts.drain);
    let mut run = Run::new(inv, events, opts.dry_run, Some(control));
    let step = |kind| RemoveStep {
        kind,
        target,
        found: &found,
        drain_timeout,
        unreachable: opts.unreachable,
    };
    // A host that is gone is never contacted: no connection, no facts, nothing uninstalled.
    let connect = Connect {
        hosts: if opts.unreachable {
            vec![control]
        } else {
            vec![control, target]
        },
        on_failure: OnFailure::StopRun,
        prefetch_facts: None,
    };
    let facts = GatherFacts {
        hosts: if opts.unreachable {
            vec![]
        } else {
            vec![target]
        },
        on_failure: OnFailure::StopRun,
        with_nodes: false,
    };
    let check = Check {
        target,
        found: &found,
        unreachable: opts.unreachable,
    };
    let (s1, s2, s3, s4) = (
        step(StepKind::Drain),
        step(StepKind::LeaveEtcd),
        step(StepKind::Delete),
        step(StepKind::Uninstall),
    );
    run.execute(&[&connect, &facts, &check, &s1, &s2, &s3, &s4])
        .await;
    run.close().await;
    let mut report = run.report();
    match report.host(name).map(|h| h.outcome.clone()) {
        Some(crate::event::HostOutcome::Failed { error, .. })
            if error.kind == HostErrorKind::Refused =>
        {
            return Err(refuse(error.message));
        }
        Some(crate::event::HostOutcome::Failed { phase, error, .. })
            if phase == connect.title()
                && matches!(
                    error.kind,
                    HostErrorKind::Unreachable | HostErrorKind::ConnectionLost
                ) =>
        {
            let hint = format!(
                "nothing was changed. If {name}'s host is gone for good (dead disk, reinstalled), run `homelab nodes remove {name} --unreachable`: it takes the node out of the cluster without connecting to the host"
            );
            report.stopped = Some(match report.stopped.take() {
                Some(why) => format!("{why}; {hint}"),
                None => hint,
            });
        }
        _ => {}
    }
    finish(&format!("nodes remove {name}"), report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, etcd: bool, ready: bool) -> NodeView {
        let mut n = NodeView {
            name: name.into(),
            ready,
            ..NodeView::default()
        };
        if etcd {
            n.labels
                .insert("node-role.kubernetes.io/etcd".into(), "true".into());
        }
        n
    }

    #[test]
    fn quorum_rules() {
        let three = vec![
            node("s1", true, true),
            node("s2", true, true),
            node("s3", true, true),
            node("a1", false, true),
        ];
        assert!(quorum_check(&three, "s3").is_ok());
        assert!(quorum_check(&three, "a1").is_ok());
        assert!(quorum_check(&three, "gone").is_ok());
        let one = vec![node("s1", true, true), node("a1", false, true)];
        assert!(
            quorum_check(&one, "s1")
                .unwrap_err()
                .contains("last etcd member")
        );
        let degraded = vec![
            node("s1", true, true),
            node("s2", true, false),
            node("s3", true, true),
        ];
        let e = quorum_check(&degraded, "s3").unwrap_err();
        assert!(
            e.contains("1 healthy etcd member(s) of 2 while 2 are needed") && e.contains("s2"),
            "{e}"
        );
        assert!(
            quorum_check(&degraded, "s2").is_ok(),
            "removing the broken member itself keeps quorum"
        );
    }
}
