//! Progress events and per-host reports that operations hand to their caller; the library
//! never prints, the caller decides how to show them.

use std::fmt;

use crate::error::HostError;

/// One thing that happened during an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The phase (or step) title, e.g. `Gather facts`.
    pub phase: String,
    /// The host concerned; `None` for events about the whole phase.
    pub host: Option<String>,
    /// What happened.
    pub kind: EventKind,
}

/// What an [`Event`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A phase begins (`host` is `None`).
    PhaseStarted,
    /// A phase ended for every host it concerned (`host` is `None`).
    PhaseFinished,
    /// Work on this host in this phase begins.
    Started,
    /// The phase changed something on this host.
    Changed {
        /// What changed.
        message: String,
    },
    /// The phase found nothing to change on this host.
    Unchanged {
        /// What was checked.
        message: String,
    },
    /// Dry run: what the phase would change on this host.
    WouldChange {
        /// What would change.
        message: String,
    },
    /// The phase failed on this host; the host takes no further part in the operation.
    Failed {
        /// What went wrong and what to do about it.
        message: String,
    },
    /// The phase was not run on this host.
    Skipped {
        /// Why.
        reason: String,
    },
    /// Something worth knowing while a phase runs (waiting, retrying).
    Progress {
        /// What is going on.
        message: String,
    },
    /// A condition that does not stop the operation but deserves attention.
    Warning {
        /// What the condition is.
        message: String,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = self.host.as_deref().unwrap_or("*");
        match &self.kind {
            EventKind::PhaseStarted => write!(f, "[{}] started", self.phase),
            EventKind::PhaseFinished => write!(f, "[{}] finished", self.phase),
            EventKind::Started => write!(f, "[{}] {who}: started", self.phase),
            EventKind::Changed { message } => {
                write!(f, "[{}] {who}: changed: {message}", self.phase)
            }
            EventKind::Unchanged { message } => {
                write!(f, "[{}] {who}: unchanged: {message}", self.phase)
            }
            EventKind::WouldChange { message } => {
                write!(f, "[{}] {who}: would change: {message}", self.phase)
            }
            EventKind::Failed { message } => write!(f, "[{}] {who}: FAILED: {message}", self.phase),
            EventKind::Skipped { reason } => write!(f, "[{}] {who}: skipped: {reason}", self.phase),
            EventKind::Progress { message } => write!(f, "[{}] {who}: {message}", self.phase),
            EventKind::Warning { message } => {
                write!(f, "[{}] {who}: warning: {message}", self.phase)
            }
        }
    }
}

/// Receives events as they happen. Called from the operation's task; keep it quick
/// (hand the event to a channel or a progress bar).
pub trait EventSink: Send + Sync {
    /// Called once per event, in the order they happen for each host.
    fn event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> EventSink for F {
    fn event(&self, event: &Event) {
        self(event)
    }
}

/// An [`EventSink`] that drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn event(&self, _event: &Event) {}
}

/// Answers the yes/no questions of destructive operations (reset, restore). The library
/// asks exactly once, before changing anything.
pub trait Confirm: Send + Sync {
    /// Returns true when the user agrees to `question`.
    fn confirm(&self, question: &str) -> bool;
}

impl<F: Fn(&str) -> bool + Send + Sync> Confirm for F {
    fn confirm(&self, question: &str) -> bool {
        self(question)
    }
}

/// How an operation ended on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutcome {
    /// Every phase found the host as it should be.
    Unchanged,
    /// The listed changes were made.
    Changed {
        /// One line per change.
        changes: Vec<String>,
    },
    /// Dry run: the listed changes would be made; nothing was changed.
    WouldChange {
        /// One line per change.
        changes: Vec<String>,
    },
    /// A phase failed on this host; later phases skipped it.
    Failed {
        /// The phase that failed.
        phase: String,
        /// Why.
        error: HostError,
        /// Changes made before the failure.
        changes: Vec<String>,
    },
    /// The operation stopped before every phase that concerned this host had run on it: its
    /// state after those phases was never examined.
    Skipped {
        /// Why, naming the first phase that did not run on it.
        reason: String,
        /// Changes made (or, in a dry run, found to be needed) before the stop.
        changes: Vec<String>,
    },
}

/// The result of an operation on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostReport {
    /// The host's name.
    pub host: String,
    /// How it ended.
    pub outcome: HostOutcome,
    /// Warnings raised for this host.
    pub warnings: Vec<String>,
}

/// The result of an operation, one entry per host in inventory order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Per-host results.
    pub hosts: Vec<HostReport>,
    /// Why the whole operation stopped early, and what to do next (e.g. how to roll back).
    pub stopped: Option<String>,
}

impl Report {
    /// True when no host failed and the operation was not stopped.
    pub fn is_success(&self) -> bool {
        self.stopped.is_none()
            && !self
                .hosts
                .iter()
                .any(|h| matches!(h.outcome, HostOutcome::Failed { .. }))
    }

    /// The report for host `name`.
    pub fn host(&self, name: &str) -> Option<&HostReport> {
        self.hosts.iter().find(|h| h.host == name)
    }

    /// Names of the hosts that failed.
    pub fn failed_hosts(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .filter(|h| matches!(h.outcome, HostOutcome::Failed { .. }))
            .map(|h| h.host.as_str())
            .collect()
    }

    /// True when every host is unchanged (a converged lab).
    pub fn all_unchanged(&self) -> bool {
        self.hosts
            .iter()
            .all(|h| h.outcome == HostOutcome::Unchanged)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for h in &self.hosts {
            match &h.outcome {
                HostOutcome::Unchanged => writeln!(f, "{}: unchanged", h.host)?,
                HostOutcome::Changed { changes } => {
                    writeln!(f, "{}: changed", h.host)?;
                    for c in changes {
                        writeln!(f, "  - {c}")?;
                    }
                }
                HostOutcome::WouldChange { changes } => {
                    writeln!(f, "{}: would change", h.host)?;
                    for c in changes {
                        writeln!(f, "  - {c}")?;
                    }
                }
                HostOutcome::Failed {
                    phase,
                    error,
                    changes,
                } => {
                    writeln!(f, "{}: FAILED in {phase}: {}", h.host, error.message)?;
                    for c in changes {
                        writeln!(f, "  - done before the failure: {c}")?;
                    }
                }
                HostOutcome::Skipped { reason, changes } => {
                    writeln!(f, "{}: skipped: {reason}", h.host)?;
                    for c in changes {
                        writeln!(f, "  - done before the stop: {c}")?;
                    }
                }
            }
            for w in &h.warnings {
                writeln!(f, "  ! {w}")?;
            }
        }
        if let Some(s) = &self.stopped {
            writeln!(f, "stopped: {s}")?;
        }
        Ok(())
    }
}
