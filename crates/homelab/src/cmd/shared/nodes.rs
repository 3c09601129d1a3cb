//! What the commands that work on nodes share: the SSH and install flags, the inventory built
//! from the spec (its notes shown), the node engine's progress events as lines, its per-host
//! report as text or JSON with the exit code, the confirmation question, and the engine's
//! errors as exit codes. Nothing here talks to a host or decides what happens on one.

use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use clap::Args;
use homelab_nodes::{
    Confirm, DEFAULT_INSTALLER_URL, Event, EventKind, EventSink, HostErrorKind, HostOutcome,
    InstallSource, Inventory, NodesError, Report,
};
use homelab_ops::inventory::{self, InventoryError, LabInventory, Needs, NodeAccess};
use serde_json::{Map, Value, json};

use super::spec;
use crate::cli::Global;
use crate::exit;
use crate::output::Output;

/// How to reach the hosts: shared by every command that talks to nodes.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// An SSH client configuration file to use instead of `~/.ssh/config` (`ssh -F`).
    ///
    /// Host keys, ProxyJump, identities and the agent work as with `ssh`; unknown or changed
    /// host keys are refused. OpenSSH reads `~/.ssh/config` from your account's home
    /// directory (not `$HOME`), so this is the way to point it elsewhere.
    #[arg(long = "ssh-config", env = "HOMELAB_SSH_CONFIG", value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
}

impl ConnectArgs {
    /// The node access these flags and `install` choose.
    pub fn access(&self, install: Option<&InstallArgs>) -> NodeAccess {
        NodeAccess {
            ssh_config: self.ssh_config.clone(),
            install: install.map(InstallArgs::source),
        }
    }
}

/// Where k3s comes from: shared by `nodes apply` and `nodes upgrade`.
#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// Install without internet access on the hosts: upload `install.sh`, the k3s binary
    /// (`k3s`, `k3s-arm64` or `k3s-armhf`) and the images archive
    /// (`k3s-airgap-images-<arch>.tar[.zst|.gz]`) from this local directory.
    #[arg(long, value_name = "DIR")]
    pub airgap: Option<PathBuf>,
    /// Where the hosts download the k3s installer from (a local mirror of get.k3s.io).
    /// Ignored with `--airgap`.
    #[arg(
        long,
        env = "HOMELAB_K3S_INSTALLER_URL",
        value_name = "URL",
        default_value = DEFAULT_INSTALLER_URL
    )]
    pub installer_url: String,
}

impl InstallArgs {
    pub fn source(&self) -> InstallSource {
        match &self.airgap {
            Some(dir) => InstallSource::Airgap { dir: dir.clone() },
            None => InstallSource::Online {
                installer_url: self.installer_url.clone(),
            },
        }
    }
}

/// The spec, its plan and the inventory built from them, with the inventory's notes shown.
/// A command that installs the lab (`examples` given) refuses values copied from an example
/// first, before the secrets are read.
pub(crate) fn load_inventory(
    global: &Global,
    conn: &ConnectArgs,
    install: Option<&InstallArgs>,
    needs: Needs,
    out: &Output,
) -> anyhow::Result<(homelab_spec::LoadedSpec, homelab_plan::Plan, LabInventory)> {
    load_inventory_checked(global, conn, install, needs, None, out)
}

/// [`load_inventory`], refusing example values unless `examples` allows them.
pub(crate) fn load_inventory_checked(
    global: &Global,
    conn: &ConnectArgs,
    install: Option<&InstallArgs>,
    needs: Needs,
    examples: Option<&spec::ExampleValuesArgs>,
    out: &Output,
) -> anyhow::Result<(homelab_spec::LoadedSpec, homelab_plan::Plan, LabInventory)> {
    let loaded = spec::load_valid(&global.file, out)?;
    if let Some(examples) = examples {
        spec::refuse_example_values(&global.file, &loaded, examples)?;
    }
    let plan = homelab_plan::plan(&loaded.lab);
    let inv = inventory::build(&global.file, &loaded, &plan, &conn.access(install), needs)
        .map_err(inventory_error)?;
    for w in &inv.warnings {
        out.warn(w);
    }
    Ok((loaded, plan, inv))
}

/// An inventory that cannot be built as the CLI reports it: what the user must fix in the
/// secrets file is a usage error (2, as for `render --flavor flux`), anything else a failure.
pub(crate) fn inventory_error(e: InventoryError) -> anyhow::Error {
    match e {
        InventoryError::SecretsFileMissing { .. }
        | InventoryError::SecretUnset { .. }
        | InventoryError::SecretNotInFile { .. } => exit::usage(e.to_string()),
        other => other.into(),
    }
}

/// Runs an operation's future to completion on a runtime of its own.
pub(crate) fn block_on<F: Future>(fut: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime that drives the SSH connections")?;
    Ok(rt.block_on(fut))
}

/// A library error as the CLI reports it: bad names and inventories are usage errors (2),
/// refusals and failures are failures (1).
pub(crate) fn nodes_error(e: NodesError) -> anyhow::Error {
    match e {
        NodesError::InvalidInventory { .. } | NodesError::UnknownHost { .. } => {
            exit::usage(e.to_string())
        }
        other => other.into(),
    }
}

/// Prints the report of an operation (also when some host failed) and returns its exit code.
pub(crate) fn conclude(
    out: &Output,
    operation: &str,
    result: Result<Report, NodesError>,
    warnings: &[String],
    dry_run: bool,
    summary: impl FnOnce(&Report) -> String,
) -> anyhow::Result<u8> {
    match result {
        Ok(report) => {
            let data = report_json(operation, &report, warnings, dry_run, None);
            out.result(|| format!("{report}{}", summary(&report)), &data);
            Ok(exit::OK)
        }
        Err(NodesError::Incomplete {
            operation: op,
            summary: why,
            report,
        }) => {
            let message = format!("{op} did not complete: {why}");
            let data = report_json(operation, &report, warnings, dry_run, Some(&message));
            out.result(|| report.to_string(), &data);
            if !out.is_json() {
                // The report above already says why, unless --quiet kept it back.
                let line = if out.quiet {
                    message
                } else {
                    brief_failure(&op, &report)
                };
                out.error(&anyhow::anyhow!(line), exit::FAILURE);
            }
            Ok(exit::FAILURE)
        }
        Err(e) => Err(nodes_error(e)),
    }
}

/// One line under a printed report: which hosts failed, or why the operation stopped.
fn brief_failure(operation: &str, report: &Report) -> String {
    let failed = report.failed_hosts();
    let mut line = format!("{operation} did not complete");
    if !failed.is_empty() {
        line.push_str(&format!(
            ": {} of {} host(s) failed ({}), see above",
            failed.len(),
            report.hosts.len(),
            failed.join(", ")
        ));
    }
    if let Some(stopped) = &report.stopped {
        line.push_str(&format!("; stopped: {stopped}"));
    }
    line
}

fn error_kind(kind: HostErrorKind) -> &'static str {
    match kind {
        HostErrorKind::Unreachable => "unreachable",
        HostErrorKind::HostKeyUnknown => "hostKeyUnknown",
        HostErrorKind::HostKeyChanged => "hostKeyChanged",
        HostErrorKind::AuthenticationFailed => "authenticationFailed",
        HostErrorKind::SudoRefused => "sudoRefused",
        HostErrorKind::CommandFailed => "commandFailed",
        HostErrorKind::Timeout => "timeout",
        HostErrorKind::Refused => "refused",
        HostErrorKind::ConnectionLost => "connectionLost",
        HostErrorKind::LocalIo => "localIo",
    }
}

/// The report as data for `--output json`.
pub(crate) fn report_json(
    operation: &str,
    report: &Report,
    warnings: &[String],
    dry_run: bool,
    error: Option<&str>,
) -> Value {
    let hosts: Vec<Value> = report
        .hosts
        .iter()
        .map(|h| {
            let mut m = Map::new();
            m.insert("host".into(), json!(h.host));
            match &h.outcome {
                HostOutcome::Unchanged => {
                    m.insert("outcome".into(), json!("unchanged"));
                }
                HostOutcome::Changed { changes } => {
                    m.insert("outcome".into(), json!("changed"));
                    m.insert("changes".into(), json!(changes));
                }
                HostOutcome::WouldChange { changes } => {
                    m.insert("outcome".into(), json!("wouldChange"));
                    m.insert("changes".into(), json!(changes));
                }
                HostOutcome::Failed {
                    phase,
                    error,
                    changes,
                } => {
                    m.insert("outcome".into(), json!("failed"));
                    m.insert("phase".into(), json!(phase));
                    m.insert(
                        "error".into(),
                        json!({ "kind": error_kind(error.kind), "message": error.message }),
                    );
                    m.insert("changes".into(), json!(changes));
                }
                HostOutcome::Skipped { reason, changes } => {
                    m.insert("outcome".into(), json!("skipped"));
                    m.insert("reason".into(), json!(reason));
                    m.insert("changes".into(), json!(changes));
                }
            }
            m.insert("warnings".into(), json!(h.warnings));
            Value::Object(m)
        })
        .collect();
    let ok = error.is_none();
    json!({
        "ok": ok,
        "exitCode": if ok { exit::OK } else { exit::FAILURE },
        "operation": operation,
        "dryRun": dry_run,
        "hosts": hosts,
        "stopped": report.stopped,
        "error": error,
        "warnings": warnings,
    })
}

/// Shows an operation's events as they happen: on a terminal grouped per host (a host's
/// lines of a phase appear together when it is done with the phase), otherwise one plain line
/// per event, for logs. Silent with `--quiet` and `--output json`.
pub(crate) struct Progress<'o> {
    out: &'o Output,
    lines: Mutex<Lines>,
}

impl<'o> Progress<'o> {
    pub(crate) fn new(out: &'o Output, inv: &Inventory) -> Self {
        let grouped = std::io::stderr().is_terminal();
        let width = inv.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
        Progress {
            out,
            lines: Mutex::new(Lines::new(grouped, width, out.verbose > 0)),
        }
    }
}

impl EventSink for Progress<'_> {
    fn event(&self, event: &Event) {
        if self.out.quiet || self.out.is_json() {
            return;
        }
        let lines = self.lines.lock().expect("progress lock").feed(event);
        for line in lines {
            self.out.status(line);
        }
    }
}

/// Turns events into the lines to print now. Pure, so both layouts are tested without a terminal.
pub(crate) struct Lines {
    grouped: bool,
    width: usize,
    verbose: bool,
    /// Lines of hosts still working in the current phase, in the order hosts first spoke.
    pending: Vec<(String, Vec<String>)>,
}

impl Lines {
    pub(crate) fn new(grouped: bool, width: usize, verbose: bool) -> Self {
        Lines {
            grouped,
            width,
            verbose,
            pending: Vec::new(),
        }
    }

    pub(crate) fn feed(&mut self, e: &Event) -> Vec<String> {
        if !self.grouped {
            let show = match e.kind {
                EventKind::Started | EventKind::PhaseFinished => self.verbose,
                _ => true,
            };
            return if show { vec![e.to_string()] } else { vec![] };
        }
        let Some(host) = &e.host else {
            return match e.kind {
                EventKind::PhaseStarted => {
                    let mut v = self.flush_all();
                    v.push(e.phase.clone());
                    v
                }
                _ => self.flush_all(),
            };
        };
        let (text, done) = match &e.kind {
            EventKind::Started if !self.verbose => return vec![],
            EventKind::Started => ("started".to_string(), false),
            EventKind::Progress { message } => (format!("... {message}"), false),
            EventKind::Warning { message } => (format!("warning: {message}"), false),
            EventKind::Changed { message } => (format!("changed: {message}"), true),
            EventKind::Unchanged { message } => (format!("unchanged: {message}"), true),
            EventKind::WouldChange { message } => (format!("would change: {message}"), true),
            EventKind::Failed { message } => (format!("FAILED: {message}"), true),
            EventKind::Skipped { reason } => (format!("skipped: {reason}"), true),
            EventKind::PhaseStarted | EventKind::PhaseFinished => return vec![],
        };
        let line = format!("  {host:<w$}  {text}", w = self.width);
        let i = match self.pending.iter().position(|(h, _)| h == host) {
            Some(i) => i,
            None => {
                self.pending.push((host.clone(), Vec::new()));
                self.pending.len() - 1
            }
        };
        self.pending[i].1.push(line);
        if done {
            self.pending.remove(i).1
        } else {
            vec![]
        }
    }

    fn flush_all(&mut self) -> Vec<String> {
        self.pending
            .drain(..)
            .flat_map(|(_, lines)| lines)
            .collect()
    }
}

/// Answers the library's one confirmation question: yes with `--yes`, by asking on a
/// terminal, and no (remembering why) when there is no terminal to ask on.
pub(crate) struct Confirmation {
    yes: bool,
    unasked: Mutex<Option<String>>,
}

impl Confirmation {
    pub(crate) fn new(yes: bool) -> Self {
        Confirmation {
            yes,
            unasked: Mutex::new(None),
        }
    }

    /// The error is returned as it is, unless it is a cancellation that happened because
    /// nobody could be asked: that becomes a refusal saying to pass `--yes`.
    pub(crate) fn explain(&self, e: NodesError, what: &str) -> anyhow::Result<NodesError> {
        match (&e, self.unasked.lock().expect("confirm lock").take()) {
            (NodesError::Cancelled { .. }, Some(question)) => Err(exit::Exit {
                code: exit::FAILURE,
                message: format!(
                    "refusing to {what} without a confirmation: there is no terminal to ask on. The question was: {question} Nothing was changed; run it again with --yes to confirm."
                ),
                help: None,
            }
            .into()),
            _ => Ok(e),
        }
    }
}

impl Confirm for Confirmation {
    fn confirm(&self, question: &str) -> bool {
        if self.yes {
            return true;
        }
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            *self.unasked.lock().expect("confirm lock") = Some(question.to_string());
            return false;
        }
        crate::output::ask_yes(question)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(phase: &str, host: Option<&str>, kind: EventKind) -> Event {
        Event {
            phase: phase.into(),
            host: host.map(str::to_string),
            kind,
        }
    }

    fn msg(s: &str) -> String {
        s.to_string()
    }

    /// Two hosts working on one phase at the same time, their events interleaved.
    fn interleaved() -> Vec<Event> {
        vec![
            ev("Join agents", None, EventKind::PhaseStarted),
            ev("Join agents", Some("a1"), EventKind::Started),
            ev("Join agents", Some("a22"), EventKind::Started),
            ev(
                "Join agents",
                Some("a1"),
                EventKind::Progress {
                    message: msg("waiting for the node to be Ready"),
                },
            ),
            ev(
                "Join agents",
                Some("a22"),
                EventKind::Progress {
                    message: msg("waiting for the node to be Ready"),
                },
            ),
            ev(
                "Join agents",
                Some("a22"),
                EventKind::Changed {
                    message: msg("installed"),
                },
            ),
            ev(
                "Join agents",
                Some("a1"),
                EventKind::Warning {
                    message: msg("swap is on"),
                },
            ),
            ev(
                "Join agents",
                Some("a1"),
                EventKind::Failed {
                    message: msg("timed out"),
                },
            ),
            ev("Join agents", None, EventKind::PhaseFinished),
        ]
    }

    #[test]
    fn on_a_terminal_each_hosts_lines_come_together() {
        let mut lines = Lines::new(true, 3, false);
        let printed: Vec<String> = interleaved().iter().flat_map(|e| lines.feed(e)).collect();
        assert_eq!(
            printed,
            vec![
                "Join agents",
                "  a22  ... waiting for the node to be Ready",
                "  a22  changed: installed",
                "  a1   ... waiting for the node to be Ready",
                "  a1   warning: swap is on",
                "  a1   FAILED: timed out",
            ]
        );
    }

    #[test]
    fn a_host_without_a_final_event_is_flushed_when_the_phase_ends() {
        let mut lines = Lines::new(true, 2, false);
        let mut printed = Vec::new();
        for e in [
            ev("Upgrade", None, EventKind::PhaseStarted),
            ev(
                "Upgrade",
                Some("s1"),
                EventKind::Warning {
                    message: msg("pin differs"),
                },
            ),
            ev("Upgrade", None, EventKind::PhaseFinished),
        ] {
            printed.extend(lines.feed(&e));
        }
        assert_eq!(printed, vec!["Upgrade", "  s1  warning: pin differs"]);
    }

    #[test]
    fn without_a_terminal_every_event_is_one_line_as_it_happens() {
        let mut lines = Lines::new(false, 3, false);
        let printed: Vec<Vec<String>> = interleaved().iter().map(|e| lines.feed(e)).collect();
        assert_eq!(printed[0], vec!["[Join agents] started"]);
        assert!(printed[1].is_empty(), "Started only with -v");
        assert_eq!(printed[5], vec!["[Join agents] a22: changed: installed"]);
        assert_eq!(printed[7], vec!["[Join agents] a1: FAILED: timed out"]);
        assert!(printed[8].is_empty());
        let mut verbose = Lines::new(false, 3, true);
        assert_eq!(
            verbose.feed(&interleaved()[1]),
            vec!["[Join agents] a1: started"]
        );
    }

    #[test]
    fn a_failed_report_is_data_with_the_error_kind() {
        let report = Report {
            hosts: vec![
                homelab_nodes::HostReport {
                    host: "s1".into(),
                    outcome: HostOutcome::Unchanged,
                    warnings: vec![],
                },
                homelab_nodes::HostReport {
                    host: "a1".into(),
                    outcome: HostOutcome::Failed {
                        phase: "Connect".into(),
                        error: homelab_nodes::HostError {
                            host: "a1".into(),
                            kind: HostErrorKind::HostKeyChanged,
                            message: "host key of 10.0.0.2 has CHANGED".into(),
                        },
                        changes: vec![],
                    },
                    warnings: vec!["w".into()],
                },
            ],
            stopped: None,
        };
        let v = report_json("nodes apply", &report, &[], false, Some("failed"));
        assert_eq!(v["ok"], json!(false));
        assert_eq!(v["exitCode"], json!(1));
        assert_eq!(v["hosts"][0]["outcome"], json!("unchanged"));
        assert_eq!(v["hosts"][1]["outcome"], json!("failed"));
        assert_eq!(v["hosts"][1]["phase"], json!("Connect"));
        assert_eq!(v["hosts"][1]["error"]["kind"], json!("hostKeyChanged"));
        assert_eq!(v["hosts"][1]["warnings"], json!(["w"]));
    }
}
