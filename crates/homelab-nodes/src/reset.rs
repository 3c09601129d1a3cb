//! `homelab nodes reset NAME`: removes k3s and its data from one host (the uninstall script
//! the installer left), after a confirmation the caller gives. The cluster is not touched.

use futures::future::BoxFuture;

use crate::apply::{finish, preflight};
use crate::common::{Connect, GatherFacts};
use crate::error::{HostError, NodesError};
use crate::event::{Confirm, EventSink, Report};
use crate::inventory::{Inventory, Role};
use crate::phase::{OnFailure, Phase, Run, Step};

struct Uninstall;

impl Phase for Uninstall {
    fn title(&self) -> &str {
        "Remove k3s and its data"
    }
    fn hosts(&self, run: &Run<'_>) -> Vec<usize> {
        (0..run.slots.len())
            .filter(|&h| run.facts(h).is_some())
            .collect()
    }
    fn on_failure(&self, _run: &Run<'_>, _host: usize) -> OnFailure {
        OnFailure::StopRun
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, h: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(async move {
            let server = Role::Server.uninstall_script();
            let agent = Role::Agent.uninstall_script();
            let script = format!(
                "ran=''; for s in {server} {agent}; do if [ -x \"$s\" ]; then \"$s\" || exit 1; ran=\"$ran $s\"; fi; done; \
                 rm -f /etc/rancher/k3s/cluster-token /etc/rancher/k3s/config.yaml; echo \"ran:$ran\""
            );
            let out = run
                .remote(h)?
                .run("uninstalling k3s", &script, run.inv.timeouts.install)
                .await?;
            let ran = out
                .lines()
                .find_map(|l| l.strip_prefix("ran:"))
                .unwrap_or("")
                .trim()
                .to_string();
            let facts = run.facts(h).unwrap_or_default();
            if ran.is_empty() && facts.k3s_config.is_none() && facts.token_sha256.is_none() {
                Ok(Step::Unchanged("k3s is not installed".into()))
            } else if ran.is_empty() {
                Ok(Step::Changed(
                    "removed the k3s config and token files".into(),
                ))
            } else {
                Ok(Step::Changed(format!("ran {ran}")))
            }
        })
    }
}

/// Removes k3s and its data from host `name` once `confirm` agrees. Use
/// [`crate::remove`] first when the node is still part of the cluster.
pub async fn reset(
    inv: &Inventory,
    name: &str,
    confirm: &dyn Confirm,
    events: &dyn EventSink,
) -> Result<Report, NodesError> {
    preflight(inv)?;
    let target = inv.host_index(name)?;
    let host = &inv.hosts[target];
    let question = format!(
        "Remove k3s and all its data (/etc/rancher/k3s, /var/lib/rancher/k3s, containers and images) from {name} ({})? \
         This does not remove the node from the cluster; run `homelab nodes remove {name}` for that.",
        host.address
    );
    if !confirm.confirm(&question) {
        return Err(NodesError::Cancelled {
            operation: format!("reset of {name}"),
        });
    }
    let mut run = Run::new(inv, events, false, None);
    run.execute(&[
        &Connect {
            hosts: vec![target],
            on_failure: OnFailure::StopRun,
            prefetch_facts: None,
        },
        &GatherFacts {
            hosts: vec![target],
            on_failure: OnFailure::StopRun,
            with_nodes: false,
        },
        &Uninstall,
    ])
    .await;
    run.close().await;
    finish(&format!("nodes reset {name}"), run.report())
}
