//! `homelab nodes apply|remove|upgrade|reset|history`: each one call into `homelab-nodes`, with
//! its progress events shown through `Output` and its per-host report as text or JSON; and
//! what the other node commands share (runtime, progress, report, confirmation, tables).
//! Nothing here talks to a host itself or decides what happens on one.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use homelab_nodes::{
    ApplyOptions, Confirm, Event, EventKind, EventSink, HostErrorKind, HostOutcome, Inventory,
    NodesError, RemoveOptions, Report, UpgradeOptions,
};
use serde_json::{Map, Value, json};

use crate::cli::Global;
use crate::exit;
use crate::inventory::{self, ConnectArgs, InstallArgs, LabInventory, Needs};
use crate::output::Output;
use crate::spec_file;

#[derive(Debug, Args)]
pub struct NodesArgs {
    #[command(subcommand)]
    pub command: NodesCommand,
}

#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// Install k3s on every node of the spec and bring each to its desired state; safe to re-run.
    ///
    /// Phases: connect over SSH; gather facts (OS, architecture, installed k3s and its config,
    /// free ports, clock skew, swap, nfs-common); validate (a node that cannot work is refused
    /// with the reason); prepare (nfs-common, unattended updates as `cluster.osUpdates` says:
    /// security only by default, never an automatic reboot unless a time is set); install or reconfigure the first server (cluster-init), join the other
    /// servers one at a time, then the agents; wait for Ready; apply labels and taints.
    /// Hosts are worked on in parallel (`--parallel`); a host that fails is reported and the
    /// others go on. On a converged lab every host reports "unchanged".
    ///
    /// The cluster token comes from secrets.sops.yaml next to the spec (`homelab secrets
    /// init` creates it), and so does the sudo password when a node names one.
    ///
    /// Example: `homelab nodes apply --dry-run`, then `homelab nodes apply`.
    Apply(ApplyArgs),
    /// Take a node out of the cluster: cordon, drain, delete, uninstall k3s.
    ///
    /// The drain respects PodDisruptionBudgets; when pods do not leave within
    /// `--drain-timeout` the removal stops and names them. For a server, its etcd member is
    /// removed first, and the removal is refused when the remaining servers would lose
    /// quorum. The node must still be in homelab.yaml; delete it from there afterwards.
    ///
    /// A host that is gone for good (dead disk, reinstalled) cannot be drained or reached:
    /// `--unreachable` takes its node out of the cluster without connecting to it.
    ///
    /// Example: `homelab nodes remove k3s-worker-02 --dry-run`, then without `--dry-run`.
    Remove(RemoveArgs),
    /// Upgrade k3s: etcd snapshot first, then servers one at a time, then agents one at a time.
    ///
    /// Each node is drained, upgraded, uncordoned and must be Ready (with the API answering)
    /// before the next one. The target is the spec's `cluster.k3sVersion` unless `--to` says
    /// otherwise. A failed step stops the rollout and says how to roll back. What was upgraded
    /// from and to is recorded on the first server: see `homelab nodes history`.
    Upgrade(UpgradeArgs),
    /// Remove k3s and all its data from one host (asks first).
    ///
    /// Does not take the node out of the cluster: use `homelab nodes remove` for that. On a
    /// terminal you are asked to confirm; without one (scripts, CI) it refuses unless `--yes`.
    Reset(ResetArgs),
    /// Show the recorded node operations (installs, upgrades, removals, restores).
    History(HistoryArgs),
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Connect, gather facts and validate, then print per host what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How many hosts to work on at the same time [default: 10].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: Option<u16>,
    #[command(flatten)]
    pub install: InstallArgs,
    #[command(flatten)]
    pub conn: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The node to remove (its name in homelab.yaml).
    pub name: String,
    /// How long pods may take to leave the node (PodDisruptionBudgets can hold them), e.g.
    /// `90s`, `5m`, `1h`.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Print what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The host is gone: do not connect to it. The node is cordoned, its etcd member removed
    /// and the node deleted (its pods go with it); nothing is uninstalled. Refused while the
    /// node is still Ready.
    #[arg(long)]
    pub unreachable: bool,
    #[command(flatten)]
    pub conn: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// The k3s release to upgrade to, e.g. `v1.34.3+k3s1` [default: the spec's
    /// cluster.k3sVersion]. Change the spec to match afterwards.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Print the order and what would be done on each node; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub install: InstallArgs,
    #[command(flatten)]
    pub conn: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The host to reset (its node name in homelab.yaml).
    pub name: String,
    /// Do not ask; needed when there is no terminal to ask on.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub conn: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub conn: ConnectArgs,
}

pub fn run(global: &Global, args: &NodesArgs, out: &Output) -> anyhow::Result<u8> {
    match &args.command {
        NodesCommand::Apply(a) => apply(global, a, out),
        NodesCommand::Remove(a) => remove(global, a, out),
        NodesCommand::Upgrade(a) => upgrade(global, a, out),
        NodesCommand::Reset(a) => reset(global, a, out),
        NodesCommand::History(a) => history(global, a, out),
    }
}

/// The spec, its plan and the inventory built from them, with the inventory's notes shown.
pub(crate) fn load_inventory(
    global: &Global,
    conn: &ConnectArgs,
    install: Option<&InstallArgs>,
    needs: Needs,
    out: &Output,
) -> anyhow::Result<(homelab_spec::LoadedSpec, homelab_plan::Plan, LabInventory)> {
    let loaded = spec_file::load_valid(&global.file, out)?;
    let plan = homelab_plan::plan(&loaded.lab);
    let inv = inventory::build(&global.file, &loaded, &plan, conn, install, needs)?;
    for w in &inv.warnings {
        out.warn(w);
    }
    Ok((loaded, plan, inv))
}

fn apply(global: &Global, args: &ApplyArgs, out: &Output) -> anyhow::Result<u8> {
    let (_, _, mut lab) = load_inventory(
        global,
        &args.conn,
        Some(&args.install),
        Needs::TokenAndSudo,
        out,
    )?;
    if let Some(n) = args.parallel {
        lab.inventory.parallelism = usize::from(n);
    }
    let inv = &lab.inventory;
    out.status(format!(
        "{} lab `{}`: {} node(s), k3s {}{}",
        if args.dry_run {
            "Checking (dry run)"
        } else {
            "Converging"
        },
        inv.lab_name,
        inv.hosts.len(),
        inv.k3s_version,
        match &inv.install {
            homelab_nodes::InstallSource::Airgap { dir } =>
                format!(", airgap from {}", dir.display()),
            homelab_nodes::InstallSource::Online { .. } => String::new(),
        }
    ));
    let progress = Progress::new(out, inv);
    let opts = ApplyOptions {
        dry_run: args.dry_run,
    };
    let result = block_on(homelab_nodes::apply(inv, &opts, &progress))?;
    let dry_run = args.dry_run;
    conclude(
        out,
        "nodes apply",
        result,
        &lab.warnings,
        dry_run,
        |report| {
            if dry_run {
                let would = count(report, |o| matches!(o, HostOutcome::WouldChange { .. }));
                format!(
                    "Dry run: nothing was changed; {would} of {} host(s) would change. Run without --dry-run to converge.",
                    report.hosts.len()
                )
            } else if report.all_unchanged() {
                format!(
                    "Lab `{}` is converged: all {} host(s) unchanged.",
                    inv.lab_name,
                    report.hosts.len()
                )
            } else {
                let changed = count(report, |o| matches!(o, HostOutcome::Changed { .. }));
                format!(
                    "Converged lab `{}`: {changed} host(s) changed, {} unchanged.\nNext: `homelab kubeconfig --merge` to use the cluster with kubectl.",
                    inv.lab_name,
                    report.hosts.len() - changed
                )
            }
        },
    )
}

fn remove(global: &Global, args: &RemoveArgs, out: &Output) -> anyhow::Result<u8> {
    let (_, _, lab) = load_inventory(global, &args.conn, None, Needs::SudoOnly, out)?;
    let inv = &lab.inventory;
    if inv.host(&args.name).is_some() {
        out.status(format!(
            "{} node {} from lab `{}`",
            if args.dry_run {
                "Checking the removal of (dry run)"
            } else {
                "Removing"
            },
            args.name,
            inv.lab_name
        ));
    }
    let progress = Progress::new(out, inv);
    let opts = RemoveOptions {
        dry_run: args.dry_run,
        drain_timeout: Some(args.drain_timeout),
        unreachable: args.unreachable,
    };
    let result = block_on(homelab_nodes::remove(inv, &args.name, &opts, &progress))?;
    let name = &args.name;
    let dry_run = args.dry_run;
    let unreachable = args.unreachable;
    conclude(out, "nodes remove", result, &lab.warnings, dry_run, |_| {
        if dry_run {
            "Dry run: nothing was changed.".to_string()
        } else if unreachable {
            format!(
                "Node {name} is out of the cluster; its host was not contacted.\nNext: delete node {name} from homelab.yaml; before the host comes back, wipe it or run `homelab nodes reset {name}` on it."
            )
        } else {
            format!(
                "Node {name} is out of the cluster and k3s is uninstalled from it.\nNext: delete node {name} from homelab.yaml, or `homelab nodes apply` joins it again."
            )
        }
    })
}

fn upgrade(global: &Global, args: &UpgradeArgs, out: &Output) -> anyhow::Result<u8> {
    let (_, _, lab) = load_inventory(
        global,
        &args.conn,
        Some(&args.install),
        Needs::SudoOnly,
        out,
    )?;
    let inv = &lab.inventory;
    let target = args.to.clone().unwrap_or_else(|| inv.k3s_version.clone());
    out.status(format!(
        "{} lab `{}` to k3s {target}",
        if args.dry_run {
            "Planning the upgrade of (dry run)"
        } else {
            "Upgrading"
        },
        inv.lab_name
    ));
    let progress = Progress::new(out, inv);
    let opts = UpgradeOptions {
        to: args.to.clone(),
        dry_run: args.dry_run,
    };
    let result = block_on(homelab_nodes::upgrade(inv, &opts, &progress))?;
    let dry_run = args.dry_run;
    conclude(
        out,
        "nodes upgrade",
        result,
        &lab.warnings,
        dry_run,
        |report| {
            if dry_run {
                "Dry run: nothing was changed.".to_string()
            } else if report.all_unchanged() {
                format!("Nothing to upgrade: every node runs k3s {target}.")
            } else {
                format!(
                    "Upgraded to k3s {target}. `homelab nodes history` shows what ran before on each node."
                )
            }
        },
    )
}

fn reset(global: &Global, args: &ResetArgs, out: &Output) -> anyhow::Result<u8> {
    let (_, _, lab) = load_inventory(global, &args.conn, None, Needs::SudoOnly, out)?;
    let inv = &lab.inventory;
    let confirm = Confirmation::new(args.yes);
    let progress = Progress::new(out, inv);
    let result = block_on(homelab_nodes::reset(inv, &args.name, &confirm, &progress))?;
    let result = match result {
        Ok(r) => Ok(r),
        Err(e) => Err(confirm.explain(e, &format!("reset {}", args.name))?),
    };
    let name = &args.name;
    conclude(out, "nodes reset", result, &lab.warnings, false, |_| {
        format!("k3s and its data are gone from {name}.")
    })
}

fn history(global: &Global, args: &HistoryArgs, out: &Output) -> anyhow::Result<u8> {
    let (_, _, lab) = load_inventory(global, &args.conn, None, Needs::SudoOnly, out)?;
    let inv = &lab.inventory;
    let progress = Progress::new(out, inv);
    let entries = block_on(homelab_nodes::history(inv, &progress))?.map_err(nodes_error)?;
    out.result(
        || {
            if entries.is_empty() {
                return format!(
                    "No node operations recorded yet on the first server of lab `{}`.",
                    inv.lab_name
                );
            }
            let mut rows = vec![
                [
                    "TIME", "ACTION", "NODE", "ROLE", "FROM", "TO", "RESULT", "DETAIL",
                ]
                .map(String::from)
                .to_vec(),
            ];
            for e in &entries {
                rows.push(vec![
                    e.time.clone(),
                    e.action.clone(),
                    e.node.clone(),
                    e.role.clone(),
                    e.from.clone().unwrap_or_else(|| "-".into()),
                    e.to.clone().unwrap_or_else(|| "-".into()),
                    e.result.clone(),
                    e.detail.clone().unwrap_or_default(),
                ]);
            }
            table(&rows)
        },
        &json!({ "lab": inv.lab_name, "history": entries }),
    );
    Ok(exit::OK)
}

fn count(report: &Report, pred: impl Fn(&HostOutcome) -> bool) -> usize {
    report.hosts.iter().filter(|h| pred(&h.outcome)).count()
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

/// `5m`, `90s`, `1h30m`: a duration for a command-line option.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    homelab_spec::types::Duration::parse(text)
        .map(|d| Duration::from_secs(d.seconds()))
        .map_err(|e| format!("{}; {}", e.message, e.help))
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
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
    fn durations_read_like_the_spec() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn tables_align_columns() {
        let t = table(&[
            vec!["NAME".into(), "SIZE".into(), "AGE".into()],
            vec!["on-demand-s1-1".into(), "4.0 KiB".into(), "3m".into()],
        ]);
        assert_eq!(
            t,
            "NAME            SIZE     AGE\non-demand-s1-1  4.0 KiB  3m\n"
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
