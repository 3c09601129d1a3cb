//! Phases and steps shared by several operations: connect, gather facts, read the cluster,
//! run `k3s kubectl` on the control server, wait for a node. Talks to hosts only through
//! [`crate::ssh::Remote`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;

use crate::cluster::{self, KUBECTL, NodeView};
use crate::error::{HostError, HostErrorKind};
use crate::facts;
use crate::phase::{OnFailure, Phase, Run, Step};
use crate::shell::quote;
use crate::ssh::Remote;
use crate::version::K3sVersion;

/// Opens the SSH connections.
pub(crate) struct Connect {
    pub hosts: Vec<usize>,
    pub on_failure: OnFailure,
    /// Runs the facts script (listing the nodes on the control server when `true`) on each
    /// host as soon as it is connected, for a later [`GatherFacts`], so that no host waits
    /// for the slowest handshake before its facts are read.
    pub prefetch_facts: Option<bool>,
}

impl Phase for Connect {
    fn title(&self) -> &str {
        "Connect"
    }
    fn hosts(&self, _run: &Run<'_>) -> Vec<usize> {
        self.hosts.clone()
    }
    fn read_only(&self) -> bool {
        true
    }
    fn on_other_host_failure(&self) -> OnFailure {
        self.on_failure
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, host: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(async move {
            let mut remote = Remote::connect(run.inv, run.host(host)).await?;
            let mut first = self.first_command(run, &remote, host).await;
            // A kept master can still greet while its connection is already gone (the host
            // went down since the earlier run): the first command tells, and a connection of
            // this run's own then says whether the host is there at all.
            if remote.reused
                && matches!(&first, Some(Err(e)) if e.kind == HostErrorKind::ConnectionLost)
            {
                remote.close().await;
                remote = Remote::connect_for_this_run(run.inv, run.host(host)).await?;
                first = self.first_command(run, &remote, host).await;
            }
            let said = if remote.reused {
                "connected (through the SSH connection an earlier run kept)"
            } else {
                "connected"
            };
            let _ = run.slots[host].remote.set(remote);
            match (self.prefetch_facts, first) {
                (Some(_), Some(out)) => {
                    *run.slots[host].prefetched.lock().expect("prefetch lock") = Some(out);
                }
                (None, Some(Err(e))) => return Err(e),
                _ => {}
            }
            Ok(Step::Unchanged(said.into()))
        })
    }
}

impl Connect {
    /// The first command on a new connection: the facts script when they are prefetched, a
    /// bare `true` on a reused connection otherwise (whose liveness is otherwise unknown),
    /// nothing on a connection this run made (its handshake just proved it).
    async fn first_command(
        &self,
        run: &Run<'_>,
        remote: &Remote,
        host: usize,
    ) -> Option<Result<RawFacts, HostError>> {
        match self.prefetch_facts {
            Some(with_nodes) => Some(read_facts(run, remote, host, with_nodes).await),
            None if remote.reused => Some(
                remote
                    .run(
                        "checking the kept connection",
                        "true",
                        run.inv.timeouts.command,
                    )
                    .await
                    .map(|out| (out, 0, 0)),
            ),
            None => None,
        }
    }
}

/// Runs the facts script on each host.
pub(crate) struct GatherFacts {
    pub hosts: Vec<usize>,
    pub on_failure: OnFailure,
    /// The control server lists the cluster's nodes in the same command.
    pub with_nodes: bool,
}

fn unix_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// The facts script's output, with this machine's clock just before and after it ran.
pub(crate) type RawFacts = (String, i128, i128);

async fn read_facts(
    run: &Run<'_>,
    remote: &Remote,
    host: usize,
    with_nodes: bool,
) -> Result<RawFacts, HostError> {
    let sent = unix_nanos();
    let out = remote
        .run(
            "gathering facts",
            &facts::script(
                run.inv.snapshot_mount_for(run.host(host)),
                with_nodes && run.control == Some(host),
            ),
            run.inv.timeouts.command,
        )
        .await?;
    Ok((out, sent, unix_nanos()))
}

impl Phase for GatherFacts {
    fn title(&self) -> &str {
        "Gather facts"
    }
    fn hosts(&self, _run: &Run<'_>) -> Vec<usize> {
        self.hosts.clone()
    }
    fn read_only(&self) -> bool {
        true
    }
    fn on_other_host_failure(&self) -> OnFailure {
        self.on_failure
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, host: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(async move {
            let prefetched = run.slots[host]
                .prefetched
                .lock()
                .expect("prefetch lock")
                .take();
            let (out, sent, received) = match prefetched {
                Some(read) => read?,
                None => read_facts(run, run.remote(host)?, host, self.with_nodes).await?,
            };
            let f = facts::parse(&out, sent, received).map_err(|e| {
                HostError::new(&run.host(host).name, HostErrorKind::CommandFailed, e)
            })?;
            let summary = format!(
                "{} {}, {}, {}",
                f.os_id,
                f.os_version,
                f.arch,
                f.k3s_version
                    .as_ref()
                    .map(|v| format!("k3s {v}"))
                    .unwrap_or_else(|| "no k3s".into())
            );
            *run.slots[host].facts.lock().expect("facts lock") = Some(f);
            Ok(Step::Unchanged(summary))
        })
    }
}

/// `k3s kubectl ARGS` on the control server; fails unless it exits 0.
pub(crate) async fn kubectl(run: &Run<'_>, what: &str, args: &str) -> Result<String, HostError> {
    run.control_remote()?
        .run(what, &format!("{KUBECTL} {args}"), run.inv.timeouts.command)
        .await
}

/// All nodes as the cluster reports them.
pub(crate) async fn read_nodes(run: &Run<'_>) -> Result<Vec<NodeView>, HostError> {
    let remote = run.control_remote()?;
    let out = kubectl(run, "listing nodes", "get nodes -o json").await?;
    cluster::parse_nodes(&out)
        .map_err(|e| HostError::new(&remote.host, HostErrorKind::CommandFailed, e))
}

/// One node, or `None` when the cluster does not know it.
pub(crate) async fn read_node(run: &Run<'_>, name: &str) -> Result<Option<NodeView>, HostError> {
    let remote = run.control_remote()?;
    let out = remote
        .exec(
            &format!("{KUBECTL} get node {} -o json", quote(name)),
            crate::ssh::Input::None,
            run.inv.timeouts.command,
        )
        .await?;
    if out.status != 0 {
        if out.stderr.contains("NotFound") || out.stderr.contains("not found") {
            return Ok(None);
        }
        return Err(crate::ssh::command_failed(
            &remote.host,
            &format!("reading node {name}"),
            &out,
        ));
    }
    let nodes = cluster::parse_nodes(&out.stdout)
        .map_err(|e| HostError::new(&remote.host, HostErrorKind::CommandFailed, e))?;
    Ok(nodes.into_iter().next())
}

/// Reads the nodes into the run, tolerating a cluster that is not up (returns false then).
pub(crate) async fn refresh_cluster(run: &Run<'_>) -> Result<bool, HostError> {
    match read_nodes(run).await {
        Ok(nodes) => {
            *run.cluster.lock().expect("cluster lock") = Some(nodes);
            Ok(true)
        }
        Err(e) if e.kind == HostErrorKind::CommandFailed => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits until node `host` is Ready (and runs `version`, when given) and the API server
/// answers `/readyz`.
pub(crate) async fn wait_ready(
    run: &Run<'_>,
    phase: &str,
    host: usize,
    version: Option<&K3sVersion>,
) -> Result<NodeView, HostError> {
    let name = run.host(host).name.clone();
    let t = &run.inv.timeouts;
    let deadline = Instant::now() + t.ready;
    let mut last: String;
    let mut announced = false;
    loop {
        match read_node(run, &name).await {
            Ok(Some(node)) => {
                let version_ok = version.is_none_or(|v| node.kubelet_version == v.to_string());
                if node.ready && version_ok {
                    let api = run
                        .control_remote()?
                        .exec(
                            &format!("{KUBECTL} get --raw /readyz"),
                            crate::ssh::Input::None,
                            t.command,
                        )
                        .await?;
                    if api.status == 0 {
                        return Ok(node);
                    }
                    last = format!("the API server is not ready: {}", api.stderr.trim());
                } else if !node.ready {
                    last = format!("node is NotReady ({})", node.ready_message);
                } else {
                    last = format!(
                        "node runs {} instead of {}",
                        node.kubelet_version,
                        version.map(|v| v.to_string()).unwrap_or_default()
                    );
                }
            }
            Ok(None) => last = "node has not registered with the cluster yet".into(),
            Err(e) if e.kind == HostErrorKind::CommandFailed => last = e.message,
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            return Err(HostError::new(
                &name,
                HostErrorKind::Timeout,
                format!(
                    "node {name} did not become Ready within {}s: {last}; look at `journalctl -u {}` on the host",
                    t.ready.as_secs(),
                    run.host(host).role.unit()
                ),
            ));
        }
        if !announced {
            run.progress(phase, host, "waiting for the node to be Ready");
            announced = true;
        }
        tokio::time::sleep(t.poll_interval.min(Duration::from_secs(10))).await;
    }
}

/// The error that kept host `h` from connecting (or a generic one).
pub(crate) fn connect_error(run: &Run<'_>, h: usize) -> HostError {
    let st = run.slots[h].state.lock().expect("slot lock");
    match &st.failed {
        Some((_, e)) => e.clone(),
        None => HostError::new(
            &run.host(h).name,
            HostErrorKind::ConnectionLost,
            "no SSH connection to this host",
        ),
    }
}

/// Connects to `hosts`; the first failure is returned as the operation's error.
pub(crate) async fn connect_all(
    run: &Run<'_>,
    hosts: Vec<usize>,
) -> Result<(), crate::error::NodesError> {
    let targets = hosts.clone();
    run.execute(&[&Connect {
        hosts,
        on_failure: OnFailure::StopRun,
        prefetch_facts: None,
    }])
    .await;
    match targets.into_iter().find(|&h| run.remote(h).is_err()) {
        Some(h) => Err(connect_error(run, h).into()),
        None => Ok(()),
    }
}
