//! The phase manager (k0sctl's model): an operation is a list of phases, each with a title,
//! a per-host `run`, an optional per-host dry-run message and a cleanup. The manager runs
//! them in order over the hosts, in parallel up to the inventory's limit, records what
//! happened per host and stops at a failure that the rest depends on. It does no I/O itself.

use std::sync::Mutex;

use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use tokio::sync::OnceCell;

use crate::cluster::NodeView;
use crate::error::{HostError, HostErrorKind};
use crate::event::{Event, EventKind, EventSink, HostOutcome, HostReport, Report};
use crate::facts::Facts;
use crate::inventory::{Host, Inventory};
use crate::ssh::Remote;

/// What a phase did on one host.
pub(crate) enum Step {
    Changed(String),
    Unchanged(String),
}

/// How a phase goes through its hosts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Up to `parallelism` hosts at a time.
    Parallel,
    /// One host after the other; the next starts only when the previous succeeded.
    OneAtATime,
}

/// What a failure on a host means for the operation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// The host drops out; the others go on.
    DropHost,
    /// Nothing after this phase runs (the others finish the current phase).
    StopRun,
}

pub(crate) trait Phase: Sync {
    fn title(&self) -> &str;
    /// The hosts this phase concerns (indices into the inventory); failed hosts are skipped.
    fn hosts(&self, run: &Run<'_>) -> Vec<usize>;
    fn mode(&self) -> Mode {
        Mode::Parallel
    }
    /// Phases that only read run in dry-run mode too.
    fn read_only(&self) -> bool {
        false
    }
    /// A failure on the control host stops the run (nothing else can go on without it); on
    /// another host it means [`Phase::on_other_host_failure`].
    fn on_failure(&self, run: &Run<'_>, host: usize) -> OnFailure {
        if run.control == Some(host) {
            OnFailure::StopRun
        } else {
            self.on_other_host_failure()
        }
    }
    fn on_other_host_failure(&self) -> OnFailure {
        OnFailure::DropHost
    }
    /// Dry run: what `run` would change on this host, or `None` when nothing.
    fn dry_run(&self, _run: &Run<'_>, _host: usize) -> Option<String> {
        None
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, host: usize) -> BoxFuture<'r, Result<Step, HostError>>;
    /// Runs after the operation ends, whether it succeeded or not, for phases that started.
    fn cleanup<'r>(&'r self, _run: &'r Run<'_>) -> BoxFuture<'r, ()> {
        Box::pin(async {})
    }
}

#[derive(Default)]
pub(crate) struct SlotState {
    pub involved: bool,
    pub failed: Option<(String, HostError)>,
    pub changes: Vec<String>,
    pub would: Vec<String>,
    pub warnings: Vec<String>,
    pub skipped: Option<String>,
}

/// Everything an operation knows about one host while it runs.
#[derive(Default)]
pub(crate) struct Slot {
    pub remote: OnceCell<Remote>,
    pub facts: Mutex<Option<Facts>>,
    /// The facts script's output, read right after connecting, for the facts phase.
    pub prefetched: Mutex<Option<Result<crate::common::RawFacts, HostError>>>,
    pub state: Mutex<SlotState>,
}

/// One operation in progress.
pub(crate) struct Run<'a> {
    pub inv: &'a Inventory,
    pub events: &'a dyn EventSink,
    pub dry_run: bool,
    pub slots: Vec<Slot>,
    /// The server that runs cluster-side commands (`k3s kubectl`) and keeps the history.
    pub control: Option<usize>,
    /// Nodes as the cluster reported them, when read.
    pub cluster: Mutex<Option<Vec<NodeView>>>,
    stopped: Mutex<Option<String>>,
}

impl<'a> Run<'a> {
    pub(crate) fn new(
        inv: &'a Inventory,
        events: &'a dyn EventSink,
        dry_run: bool,
        control: Option<usize>,
    ) -> Self {
        Run {
            inv,
            events,
            dry_run,
            slots: inv.hosts.iter().map(|_| Slot::default()).collect(),
            control,
            cluster: Mutex::new(None),
            stopped: Mutex::new(None),
        }
    }

    pub(crate) fn host(&self, i: usize) -> &Host {
        &self.inv.hosts[i]
    }

    pub(crate) fn remote(&self, i: usize) -> Result<&Remote, HostError> {
        self.slots[i].remote.get().ok_or_else(|| {
            HostError::new(
                &self.host(i).name,
                HostErrorKind::ConnectionLost,
                "no SSH connection to this host (the connect phase did not succeed)",
            )
        })
    }

    /// The connection to the server that runs cluster-side commands.
    pub(crate) fn control_remote(&self) -> Result<&Remote, HostError> {
        match self.control {
            Some(c) => self.remote(c),
            None => Err(HostError::new(
                "cluster",
                HostErrorKind::Refused,
                "the lab has no server to run cluster commands on",
            )),
        }
    }

    pub(crate) fn facts(&self, i: usize) -> Option<Facts> {
        self.slots[i].facts.lock().expect("facts lock").clone()
    }

    pub(crate) fn node_view(&self, name: &str) -> Option<NodeView> {
        self.cluster
            .lock()
            .expect("cluster lock")
            .as_ref()?
            .iter()
            .find(|n| n.name == name)
            .cloned()
    }

    pub(crate) fn is_failed(&self, i: usize) -> bool {
        self.slots[i]
            .state
            .lock()
            .expect("slot lock")
            .failed
            .is_some()
    }

    pub(crate) fn stop(&self, why: String) {
        let mut s = self.stopped.lock().expect("stop lock");
        if s.is_none() {
            *s = Some(why);
        }
    }

    pub(crate) fn stopped(&self) -> Option<String> {
        self.stopped.lock().expect("stop lock").clone()
    }

    pub(crate) fn emit(&self, phase: &str, host: Option<usize>, kind: EventKind) {
        self.events.event(&Event {
            phase: phase.to_string(),
            host: host.map(|i| self.host(i).name.clone()),
            kind,
        });
    }

    pub(crate) fn progress(&self, phase: &str, host: usize, message: impl Into<String>) {
        self.emit(
            phase,
            Some(host),
            EventKind::Progress {
                message: message.into(),
            },
        );
    }

    pub(crate) fn warn(&self, phase: &str, host: usize, message: impl Into<String>) {
        let message = message.into();
        self.slots[host]
            .state
            .lock()
            .expect("slot lock")
            .warnings
            .push(message.clone());
        self.emit(phase, Some(host), EventKind::Warning { message });
    }

    pub(crate) fn fail(&self, phase: &str, host: usize, error: HostError) {
        let message = error.message.clone();
        {
            let mut st = self.slots[host].state.lock().expect("slot lock");
            st.involved = true;
            if st.failed.is_none() {
                st.failed = Some((phase.to_string(), error));
            }
        }
        self.emit(phase, Some(host), EventKind::Failed { message });
    }

    /// Host `host` will not be worked on from phase `title` on, because the run stopped: it
    /// is reported as skipped (with what was done on it before), never with an outcome no
    /// phase observed. Only the first phase it misses is recorded and announced.
    fn skip(&self, title: &str, host: usize, why: &str) {
        {
            let mut st = self.slots[host].state.lock().expect("slot lock");
            if st.failed.is_some() || st.skipped.is_some() {
                return;
            }
            st.involved = true;
            st.skipped = Some(format!(
                "not worked on from phase \"{title}\" on, because the run stopped: {why}"
            ));
        }
        self.emit(
            title,
            Some(host),
            EventKind::Skipped {
                reason: why.to_string(),
            },
        );
    }

    async fn one(&self, phase: &dyn Phase, host: usize) {
        let title = phase.title();
        if let Some(why) = self.stopped() {
            self.skip(title, host, &why);
            return;
        }
        self.slots[host].state.lock().expect("slot lock").involved = true;
        if self.dry_run && !phase.read_only() {
            match phase.dry_run(self, host) {
                Some(message) => {
                    self.slots[host]
                        .state
                        .lock()
                        .expect("slot lock")
                        .would
                        .push(message.clone());
                    self.emit(title, Some(host), EventKind::WouldChange { message });
                }
                None => self.emit(
                    title,
                    Some(host),
                    EventKind::Unchanged {
                        message: "nothing to do".into(),
                    },
                ),
            }
            return;
        }
        self.emit(title, Some(host), EventKind::Started);
        match phase.run(self, host).await {
            Ok(Step::Changed(message)) => {
                self.slots[host]
                    .state
                    .lock()
                    .expect("slot lock")
                    .changes
                    .push(message.clone());
                self.emit(title, Some(host), EventKind::Changed { message });
            }
            Ok(Step::Unchanged(message)) => {
                self.emit(title, Some(host), EventKind::Unchanged { message })
            }
            Err(error) => {
                let name = self.host(host).name.clone();
                self.fail(title, host, error);
                if phase.on_failure(self, host) == OnFailure::StopRun {
                    self.stop(format!(
                        "{name} failed in phase \"{title}\"; later phases were not run"
                    ));
                }
            }
        }
    }

    /// Runs `phases` in order; returns when all ran or the run was stopped. Cleanups run
    /// for every phase that started, last first.
    pub(crate) async fn execute(&self, phases: &[&dyn Phase]) {
        let mut started = 0;
        for phase in phases {
            if self.stopped().is_some() {
                break;
            }
            started += 1;
            let title = phase.title();
            let targets: Vec<usize> = phase
                .hosts(self)
                .into_iter()
                .filter(|&h| !self.is_failed(h))
                .collect();
            if targets.is_empty() {
                continue;
            }
            self.emit(title, None, EventKind::PhaseStarted);
            match phase.mode() {
                Mode::Parallel => {
                    stream::iter(targets)
                        .map(|h| self.one(*phase, h))
                        .buffer_unordered(self.inv.parallelism.max(1))
                        .collect::<Vec<()>>()
                        .await;
                }
                Mode::OneAtATime => {
                    for (i, &h) in targets.iter().enumerate() {
                        self.one(*phase, h).await;
                        if self.is_failed(h) && phase.on_failure(self, h) == OnFailure::StopRun {
                            let why = self.stopped().unwrap_or_default();
                            for &later in &targets[i + 1..] {
                                self.skip(title, later, &why);
                            }
                            break;
                        }
                    }
                }
            }
            self.emit(title, None, EventKind::PhaseFinished);
        }
        if let Some(why) = self.stopped() {
            for phase in &phases[started..] {
                for h in phase.hosts(self) {
                    self.skip(phase.title(), h, &why);
                }
            }
        }
        for phase in phases[..started].iter().rev() {
            phase.cleanup(self).await;
        }
    }

    /// Closes every SSH connection, all at once.
    pub(crate) async fn close(&mut self) {
        let remotes: Vec<Remote> = self
            .slots
            .iter_mut()
            .filter_map(|slot| slot.remote.take())
            .collect();
        futures::future::join_all(remotes.into_iter().map(Remote::close)).await;
    }

    /// The per-host report, for hosts the operation involved, in inventory order.
    pub(crate) fn report(&self) -> Report {
        let stopped = self.stopped();
        let hosts = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| {
                let st = slot.state.lock().expect("slot lock");
                if !st.involved {
                    return None;
                }
                let warnings = st.warnings.clone();
                let outcome = if let Some((phase, error)) = &st.failed {
                    HostOutcome::Failed {
                        phase: phase.clone(),
                        error: error.clone(),
                        changes: st.changes.clone(),
                    }
                } else if let Some(reason) = &st.skipped {
                    HostOutcome::Skipped {
                        reason: reason.clone(),
                        changes: if self.dry_run {
                            st.would.clone()
                        } else {
                            st.changes.clone()
                        },
                    }
                } else if self.dry_run {
                    if st.would.is_empty() {
                        HostOutcome::Unchanged
                    } else {
                        HostOutcome::WouldChange {
                            changes: st.would.clone(),
                        }
                    }
                } else if st.changes.is_empty() {
                    HostOutcome::Unchanged
                } else {
                    HostOutcome::Changed {
                        changes: st.changes.clone(),
                    }
                };
                Some(HostReport {
                    host: self.host(i).name.clone(),
                    outcome,
                    warnings,
                })
            })
            .collect();
        Report { hosts, stopped }
    }
}

/// One line naming the failed hosts, for error messages.
pub(crate) fn failure_summary(report: &Report) -> String {
    let mut parts: Vec<String> = report
        .hosts
        .iter()
        .filter_map(|h| match &h.outcome {
            HostOutcome::Failed { phase, error, .. } => Some(format!(
                "{} failed in \"{phase}\": {}",
                h.host, error.message
            )),
            _ => None,
        })
        .collect();
    if let Some(s) = &report.stopped {
        parts.push(s.clone());
    }
    if parts.is_empty() {
        "no host failed".into()
    } else {
        parts.join("; ")
    }
}
