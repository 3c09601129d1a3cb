//! Cordon, drain (respecting PodDisruptionBudgets, with a timeout that names the pods that
//! would not leave) and uncordon a node, through `k3s kubectl` on the control server.
//! Never forces pods off: no `--force`, no `--disable-eviction`.

use crate::cluster::{self, KUBECTL};
use crate::error::{HostError, HostErrorKind};
use crate::phase::Run;
use crate::shell::quote;
use crate::ssh::Input;

/// Drains node `name` (it is cordoned first). Pods of DaemonSets and mirror pods stay, as
/// with `kubectl drain --ignore-daemonsets`; evictions go through the eviction API, so
/// PodDisruptionBudgets are respected.
pub(crate) async fn drain(
    run: &Run<'_>,
    name: &str,
    timeout: std::time::Duration,
) -> Result<(), HostError> {
    let remote = run.control_remote()?;
    let secs = timeout.as_secs().max(1);
    let script = format!(
        "{KUBECTL} drain {} --ignore-daemonsets --delete-emptydir-data --timeout={secs}s",
        quote(name)
    );
    let out = remote
        .exec(&script, Input::None, timeout + run.inv.timeouts.command)
        .await?;
    if out.status == 0 {
        return Ok(());
    }
    // Name the pods that are still there, whatever kubectl's message format.
    let pods_script = format!(
        "{KUBECTL} get pods -A --field-selector spec.nodeName={} -o json",
        quote(name)
    );
    let stuck: Vec<String> = match remote
        .exec(&pods_script, Input::None, run.inv.timeouts.command)
        .await
    {
        Ok(o) if o.status == 0 => cluster::parse_pods(&o.stdout)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| !p.stays_on_drain())
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect(),
        _ => Vec::new(),
    };
    let pdb = out.stderr.contains("disruption budget");
    let kubectl_said = out
        .stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("nothing")
        .trim()
        .to_string();
    let why = if stuck.is_empty() {
        format!("kubectl said: {kubectl_said}")
    } else {
        format!(
            "these pods would not leave: {}{} (kubectl said: {kubectl_said})",
            stuck.join(", "),
            if pdb {
                " (a PodDisruptionBudget allows no eviction now)"
            } else {
                ""
            }
        )
    };
    Err(HostError::new(
        name,
        HostErrorKind::Timeout,
        format!(
            "draining {name} did not finish within {secs}s: {why}. The node stays cordoned; fix what holds the pods (scale up, relax the PodDisruptionBudget) and run the command again, or put the node back in service with `k3s kubectl uncordon {name}`"
        ),
    ))
}

/// Makes node `name` schedulable again.
pub(crate) async fn uncordon(run: &Run<'_>, name: &str) -> Result<(), HostError> {
    run.control_remote()?
        .run(
            &format!("uncordoning {name}"),
            &format!("{KUBECTL} uncordon {}", quote(name)),
            run.inv.timeouts.command,
        )
        .await
        .map(|_| ())
}
