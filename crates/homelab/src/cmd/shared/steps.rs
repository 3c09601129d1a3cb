//! The one progress view of `up` and `down`: a numbered line per step, the engines' events
//! under it (hosts grouped as for the node commands, apply's changes and retries, Job pods,
//! status passes that are not healthy yet), and each step's summary; the steps as JSON.
//! Silent with `--quiet` and `--output json`. Decides nothing.

use std::io::IsTerminal;
use std::sync::Mutex;

use homelab_kube::{ApplyEvent, JobEvent, ObjectOutcome};
use homelab_ops::up::{Outcome, StepReport, UpEvent, UpEvents};
use homelab_ops::vms::VmEvent;
use serde_json::{Value, json};

use super::cluster::retry_line;
use super::nodes::Lines;
use crate::output::Output;

/// Shows `up`'s and `down`'s events as they happen.
pub(crate) struct StepProgress<'o> {
    out: &'o Output,
    state: Mutex<State>,
}

struct State {
    lines: Lines,
    /// The last "not healthy yet" line, so that a wait prints only what changes.
    last_pending: Option<String>,
}

impl<'o> StepProgress<'o> {
    /// `hosts`: the node names, for the width of the host column.
    pub(crate) fn new<'h>(out: &'o Output, hosts: impl Iterator<Item = &'h str>) -> Self {
        let width = hosts.map(str::len).max().unwrap_or(0);
        let grouped = std::io::stderr().is_terminal();
        StepProgress {
            out,
            state: Mutex::new(State {
                lines: Lines::new(grouped, width, out.verbose > 0),
                last_pending: None,
            }),
        }
    }

    fn line(&self, text: impl AsRef<str>) {
        self.out.status(text);
    }
}

/// How a step's outcome reads in front of its summary.
pub(crate) fn mark(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Changed => "changed",
        Outcome::Unchanged => "unchanged",
        Outcome::Skipped => "skipped",
        Outcome::DryRun => "dry run",
    }
}

impl UpEvents for StepProgress<'_> {
    fn event(&self, event: UpEvent<'_>) {
        if self.out.quiet || self.out.is_json() {
            return;
        }
        let mut state = self.state.lock().expect("progress lock");
        match event {
            UpEvent::Resuming { at, finished } => self.line(format!(
                "Resuming at `{}` ({}): the last run finished {}; every step checks again, and what is done stays done",
                at.id(),
                at.title(),
                finished.join(", ")
            )),
            UpEvent::StepStarted { step, number, of } => {
                state.last_pending = None;
                self.line(format!("[{number}/{of}] {}", capitalized(step.title())));
            }
            UpEvent::Node(e) => {
                for l in state.lines.feed(e) {
                    self.line(format!("  {l}"));
                }
            }
            UpEvent::Apply(e) => {
                if let Some(l) = retry_line(e) {
                    self.line(format!("  {l}"));
                    return;
                }
                match e {
                    ApplyEvent::ObjectApplied {
                        unit,
                        object,
                        outcome,
                    } if *outcome != ObjectOutcome::Unchanged || self.out.verbose > 0 => {
                        self.line(format!("  {unit}: {object} {}", outcome.as_str()))
                    }
                    ApplyEvent::Waiting { unit, what } if self.out.verbose > 0 => {
                        self.line(format!("  {unit}: waiting for {what}"))
                    }
                    ApplyEvent::UnitFailed { unit, error } => {
                        self.line(format!("  {unit}: FAILED: {error}"))
                    }
                    ApplyEvent::Pruned { object } => self.line(format!("  deleted {object}")),
                    ApplyEvent::PruneSkipped { object, reason } => {
                        self.line(format!("  kept {object}: {reason}"))
                    }
                    _ => {}
                }
            }
            UpEvent::Job(e) => match e {
                JobEvent::Created { namespace, name } => {
                    self.line(format!("  started Job {namespace}/{name}"))
                }
                JobEvent::Pod { pod, state } => self.line(format!("  pod {pod}: {state}")),
                JobEvent::Retrying {
                    action,
                    attempt,
                    reason,
                } => self.line(format!(
                    "  retrying {action} (attempt {attempt} failed: {reason})"
                )),
                JobEvent::LogLine { .. } => {}
            },
            UpEvent::Vm(e) => match e {
                VmEvent::Started { vm, step } => self.line(format!("  {vm}: {step}")),
                VmEvent::Retrying {
                    vm,
                    step,
                    attempt,
                    wait,
                    reason,
                } => self.line(format!(
                    "  {vm}: retrying {step} in {:.1}s (attempt {attempt} failed: {reason})",
                    *wait as f64 / 1000.0
                )),
                VmEvent::Finished { vm, step } if self.out.verbose > 0 => {
                    self.line(format!("  {vm}: done: {step}"))
                }
                VmEvent::Finished { .. } => {}
            },
            UpEvent::StatusPending {
                problems,
                first_problem,
                waited,
                ..
            } => {
                let what = format!(
                    "{problems} problem(s){}",
                    first_problem
                        .map(|p| format!(", first: {p}"))
                        .unwrap_or_default()
                );
                if state.last_pending.as_deref() != Some(what.as_str()) {
                    self.line(format!(
                        "  not healthy yet after {}s: {what}",
                        waited.as_secs()
                    ));
                    state.last_pending = Some(what);
                }
            }
            UpEvent::StepFinished(report) => {
                self.line(format!("  {}: {}", mark(report.outcome), report.summary))
            }
        }
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The steps as `--output json` lists them.
pub(crate) fn steps_json(steps: &[StepReport]) -> Vec<Value> {
    steps
        .iter()
        .map(|s| {
            json!({
                "step": s.step.id(),
                "outcome": s.outcome,
                "summary": s.summary,
                "seconds": (s.seconds * 1000.0).round() / 1000.0,
            })
        })
        .collect()
}

/// The steps as people read them at the end: one line each.
pub(crate) fn steps_text(steps: &[StepReport]) -> String {
    let width = steps.iter().map(|s| s.step.id().len()).max().unwrap_or(0);
    steps
        .iter()
        .map(|s| {
            format!(
                "{:<width$}  {:<9}  {}\n",
                s.step.id(),
                mark(s.outcome),
                s.summary
            )
        })
        .collect()
}
