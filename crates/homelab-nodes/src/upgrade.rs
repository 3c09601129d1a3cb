//! `homelab nodes upgrade [--to VERSION]`: an etcd snapshot first, then servers one at a
//! time, then agents one at a time (keep the previous binary, drain, upgrade, wait for Ready
//! and the API, uncordon), each recorded in the history. The first failure stops the
//! rollout with instructions to roll back. Never two nodes at once, never a downgrade.

use std::sync::Mutex;

use futures::future::BoxFuture;

use crate::apply::{finish, first_server_index, preflight, run_installer};
use crate::common::{self, Connect, GatherFacts};
use crate::drain;
use crate::error::{HostError, HostErrorKind, NodesError};
use crate::event::{EventSink, Report};
use crate::history::{self, HistoryEntry};
use crate::inventory::{InstallSource, Inventory, Role};
use crate::phase::{Mode, OnFailure, Phase, Run, Step};
use crate::snapshot;
use crate::version::K3sVersion;

/// Where the binary that ran before an upgrade is kept on each node, for rolling back.
pub const PREVIOUS_BINARY_PATH: &str = "/usr/local/bin/k3s.homelab-previous";

/// Options of [`upgrade`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpgradeOptions {
    /// Target version; the inventory's pinned version when `None`.
    pub to: Option<String>,
    /// Report the order and what would be done; change nothing.
    pub dry_run: bool,
}

struct UpgradeState {
    target: K3sVersion,
    /// Hosts to upgrade, in order, with the version they run now.
    todo: Mutex<Vec<(usize, K3sVersion)>>,
    snapshot: Mutex<Option<String>>,
    done: Mutex<Vec<String>>,
}

impl UpgradeState {
    fn running_version(&self, h: usize) -> Option<K3sVersion> {
        self.todo
            .lock()
            .expect("todo lock")
            .iter()
            .find(|(i, _)| *i == h)
            .map(|(_, v)| v.clone())
    }
}

struct Plan<'s> {
    st: &'s UpgradeState,
}

impl Phase for Plan<'_> {
    fn title(&self) -> &str {
        "Plan the upgrade"
    }
    fn hosts(&self, run: &Run<'_>) -> Vec<usize> {
        run.control.into_iter().collect()
    }
    fn read_only(&self) -> bool {
        true
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, _c: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(async move {
            let target = &self.st.target;
            let refuse =
                |host: &str, msg: String| HostError::new(host, HostErrorKind::Refused, msg);
            let nodes = common::read_nodes(run).await?;
            let mut todo = Vec::new();
            let mut order: Vec<usize> = (0..run.slots.len())
                .filter(|&h| run.host(h).role == Role::Server)
                .collect();
            order.extend((0..run.slots.len()).filter(|&h| run.host(h).role == Role::Agent));
            for h in order {
                let host = run.host(h);
                let facts = run
                    .facts(h)
                    .ok_or_else(|| refuse(&host.name, "no facts were gathered".into()))?;
                let Some(installed) = facts.k3s_version.clone() else {
                    return Err(refuse(
                        &host.name,
                        format!(
                            "{} has no k3s installed; run `homelab nodes apply` first",
                            host.name
                        ),
                    ));
                };
                if installed > *target {
                    return Err(refuse(
                        &host.name,
                        format!(
                            "{} runs {installed}, newer than {target}; k3s does not support downgrades (restore a snapshot instead)",
                            host.name
                        ),
                    ));
                }
                if installed.skips_minor_to(target) {
                    return Err(refuse(
                        &host.name,
                        format!(
                            "{} runs {installed}; going to {target} skips a Kubernetes minor release, which is not supported: upgrade to the latest v{}.{}.x first",
                            host.name,
                            installed.major,
                            installed.minor + 1
                        ),
                    ));
                }
                match nodes.iter().find(|n| n.name == host.name) {
                    Some(n) if n.ready => {}
                    Some(n) => {
                        return Err(refuse(
                            &host.name,
                            format!(
                                "{} is NotReady ({}); fix it before upgrading",
                                host.name, n.ready_message
                            ),
                        ));
                    }
                    None => {
                        return Err(refuse(
                            &host.name,
                            format!(
                                "{} is not in the cluster; run `homelab nodes apply` first",
                                host.name
                            ),
                        ));
                    }
                }
                if installed < *target {
                    todo.push((h, installed));
                }
            }
            let summary = if todo.is_empty() {
                format!("every node already runs {target}")
            } else {
                format!(
                    "{} node(s) to upgrade to {target}: {}",
                    todo.len(),
                    todo.iter()
                        .map(|(h, v)| format!("{} ({v})", run.host(*h).name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            *self.st.todo.lock().expect("todo lock") = todo;
            Ok(Step::Unchanged(summary))
        })
    }
}

struct Snapshot<'s> {
    st: &'s UpgradeState,
}

impl Snapshot<'_> {
    fn prefix(&self) -> String {
        format!("pre-upgrade-{}", self.st.target.slug())
    }
}

impl Phase for Snapshot<'_> {
    fn title(&self) -> &str {
        "Take an etcd snapshot"
    }
    fn hosts(&self, run: &Run<'_>) -> Vec<usize> {
        if self.st.todo.lock().expect("todo lock").is_empty() {
            vec![]
        } else {
            run.control.into_iter().collect()
        }
    }
    fn on_failure(&self, _run: &Run<'_>, _host: usize) -> OnFailure {
        OnFailure::StopRun
    }
    fn dry_run(&self, _run: &Run<'_>, _h: usize) -> Option<String> {
        Some(format!("would take etcd snapshot {}-...", self.prefix()))
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, c: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(async move {
            let name = snapshot::save_on(run, c, &self.prefix()).await?;
            *self.st.snapshot.lock().expect("snapshot lock") = Some(name.clone());
            Ok(Step::Changed(format!("took etcd snapshot {name}")))
        })
    }
}

struct Roll<'s> {
    st: &'s UpgradeState,
    role: Role,
}

impl Roll<'_> {
    async fn upgrade_one(
        &self,
        run: &Run<'_>,
        h: usize,
        from: &K3sVersion,
        title: &str,
    ) -> Result<(), (String, HostError)> {
        let st = self.st;
        let inv = run.inv;
        let t = &inv.timeouts;
        let host = run.host(h);
        let name = host.name.as_str();
        let remote = run.remote(h).map_err(|e| ("connecting".to_string(), e))?;
        let keep = format!("cp -p /usr/local/bin/k3s {PREVIOUS_BINARY_PATH}");
        remote
            .run("keeping the previous k3s binary", &keep, t.command)
            .await
            .map_err(|e| ("keeping the previous binary".into(), e))?;
        run.progress(title, h, "draining");
        drain::drain(run, name, t.drain)
            .await
            .map_err(|e| ("draining".into(), e))?;
        run.progress(title, h, format!("upgrading k3s {from} -> {}", st.target));
        if let InstallSource::Airgap { dir } = &inv.install {
            let arch = run.facts(h).and_then(|f| f.k3s_arch()).unwrap_or("amd64");
            let files = crate::airgap::AirgapFiles::scan(dir).map_err(|e| {
                (
                    "reading the airgap directory".into(),
                    HostError::new(name, HostErrorKind::LocalIo, e.to_string()),
                )
            })?;
            if let Some((images, _)) = files.images.get(arch) {
                let file = images
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                remote
                    .upload(
                        images,
                        &format!("{}/{file}", crate::facts::IMAGES_DIR),
                        0o644,
                        t.install,
                    )
                    .await
                    .map_err(|e| ("uploading the images archive".into(), e))?;
            }
            let binary = files.binaries.get(arch).ok_or_else(|| {
                (
                    "finding the binary".into(),
                    HostError::new(
                        name,
                        HostErrorKind::LocalIo,
                        format!("the airgap directory has no k3s binary for {arch}"),
                    ),
                )
            })?;
            remote
                .upload(binary, "/usr/local/bin/k3s", 0o755, t.install)
                .await
                .map_err(|e| ("uploading the binary".into(), e))?;
        }
        run_installer(run, remote, host.role, &st.target, &inv.install)
            .await
            .map_err(|e| ("running the installer".into(), e))?;
        common::wait_ready(run, title, h, Some(&st.target))
            .await
            .map_err(|e| ("waiting for Ready".into(), e))?;
        drain::uncordon(run, name)
            .await
            .map_err(|e| ("uncordoning".into(), e))?;
        Ok(())
    }

    fn rollback_advice(&self, run: &Run<'_>, h: usize, from: &K3sVersion) -> String {
        let host = run.host(h);
        let snapshot = self.st.snapshot.lock().expect("snapshot lock").clone();
        let done = self.st.done.lock().expect("done lock").clone();
        let todo: Vec<String> = self
            .st
            .todo
            .lock()
            .expect("todo lock")
            .iter()
            .map(|(i, _)| run.host(*i).name.clone())
            .filter(|n| *n != host.name && !done.contains(n))
            .collect();
        format!(
            "The rollout stopped at {name}. Upgraded: {}. Not touched: {}. To roll {name} back to {from}, on the host run: \
             sudo cp {PREVIOUS_BINARY_PATH} /usr/local/bin/k3s && sudo systemctl restart {unit}, then `k3s kubectl uncordon {name}` on a server{snap}",
            if done.is_empty() {
                "none".into()
            } else {
                done.join(", ")
            },
            if todo.is_empty() {
                "none".into()
            } else {
                todo.join(", ")
            },
            name = host.name,
            unit = host.role.unit(),
            snap = match snapshot {
                Some(s) => format!(
                    ". If the cluster state is damaged, restore the snapshot taken first: `homelab etcd snapshot restore {s}`"
                ),
                None => String::new(),
            }
        )
    }
}

impl Phase for Roll<'_> {
    fn title(&self) -> &str {
        match self.role {
            Role::Server => "Upgrade servers",
            Role::Agent => "Upgrade agents",
        }
    }
    fn hosts(&self, run: &Run<'_>) -> Vec<usize> {
        self.st
            .todo
            .lock()
            .expect("todo lock")
            .iter()
            .map(|(h, _)| *h)
            .filter(|&h| run.host(h).role == self.role)
            .collect()
    }
    fn mode(&self) -> Mode {
        Mode::OneAtATime
    }
    fn on_failure(&self, _run: &Run<'_>, _host: usize) -> OnFailure {
        OnFailure::StopRun
    }
    fn dry_run(&self, run: &Run<'_>, h: usize) -> Option<String> {
        let from = self.st.running_version(h)?;
        Some(format!(
            "would drain {}, upgrade k3s {from} -> {}, wait for Ready, uncordon",
            run.host(h).name,
            self.st.target
        ))
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, h: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(async move {
            let from = self
                .st
                .running_version(h)
                .expect("planned hosts have a version");
            let host = run.host(h);
            let result = self.upgrade_one(run, h, &from, self.title()).await;
            let snapshot = self.st.snapshot.lock().expect("snapshot lock").clone();
            let entry = HistoryEntry::now(
                "upgrade",
                &host.name,
                host.role.k3s_command(),
                Some(from.to_string()),
                Some(self.st.target.to_string()),
                result.is_ok(),
                match &result {
                    Ok(()) => snapshot.map(|s| format!("snapshot {s} taken first")),
                    Err((step, e)) => Some(format!("failed while {step}: {}", e.message)),
                },
            );
            if let Err(e) =
                history::append(run.control_remote()?, &[entry], run.inv.timeouts.command).await
            {
                run.warn(
                    self.title(),
                    h,
                    format!("the upgrade was not recorded in the history: {}", e.message),
                );
            }
            match result {
                Ok(()) => {
                    self.st
                        .done
                        .lock()
                        .expect("done lock")
                        .push(host.name.clone());
                    Ok(Step::Changed(format!(
                        "upgraded k3s {from} -> {}",
                        self.st.target
                    )))
                }
                Err((step, mut e)) => {
                    e.message = format!(
                        "{} failed while {step}: {}. {}",
                        host.name,
                        e.message,
                        self.rollback_advice(run, h, &from)
                    );
                    Err(e)
                }
            }
        })
    }
}

/// Upgrades every node that runs an older k3s than the target, servers first, one node at
/// a time, after an etcd snapshot. Refuses downgrades, skipped minor releases and clusters
/// with NotReady nodes before changing anything.
pub async fn upgrade(
    inv: &Inventory,
    opts: &UpgradeOptions,
    events: &dyn EventSink,
) -> Result<Report, NodesError> {
    let (pinned, _) = preflight(inv)?;
    let target: K3sVersion = match &opts.to {
        Some(v) => v.parse().map_err(|e| NodesError::Refused {
            operation: "upgrade".into(),
            reason: e,
        })?,
        None => pinned.clone(),
    };
    let st = UpgradeState {
        target: target.clone(),
        todo: Mutex::new(Vec::new()),
        snapshot: Mutex::new(None),
        done: Mutex::new(Vec::new()),
    };
    let control = first_server_index(inv);
    let mut run = Run::new(inv, events, opts.dry_run, control);
    let all: Vec<usize> = (0..inv.hosts.len()).collect();
    let connect = Connect {
        hosts: all.clone(),
        on_failure: OnFailure::StopRun,
        prefetch_facts: None,
    };
    let facts = GatherFacts {
        hosts: all,
        on_failure: OnFailure::StopRun,
        with_nodes: false,
    };
    let plan = Plan { st: &st };
    let snap = Snapshot { st: &st };
    let servers = Roll {
        st: &st,
        role: Role::Server,
    };
    let agents = Roll {
        st: &st,
        role: Role::Agent,
    };
    run.execute(&[&connect, &facts, &plan, &snap, &servers, &agents])
        .await;
    if target != pinned
        && run.stopped().is_none()
        && !opts.dry_run
        && let Some(c) = control
    {
        run.warn("Upgrade", c, format!("homelab.yaml pins {pinned}; change it to {target}, or `homelab nodes apply` will refuse the upgraded nodes"));
    }
    run.close().await;
    let report = run.report();
    for h in &report.hosts {
        if let crate::event::HostOutcome::Failed { phase, error, .. } = &h.outcome
            && phase == "Plan the upgrade"
            && error.kind == HostErrorKind::Refused
        {
            return Err(NodesError::Refused {
                operation: format!("upgrade to {target}"),
                reason: error.message.clone(),
            });
        }
    }
    finish("nodes upgrade", report)
}
