//! `homelab nodes apply|remove|upgrade|reset|history`: each one call into `homelab-nodes`, with
//! its progress events shown through `Output` and its per-host report as text or JSON (both
//! through the shared node module). Nothing here talks to a host itself or decides what
//! happens on one.

use std::time::Duration;

use clap::{Args, Subcommand};
use homelab_nodes::{ApplyOptions, HostOutcome, RemoveOptions, Report, UpgradeOptions};
use serde_json::json;

use homelab_ops::inventory::Needs;

use crate::cli::Global;
use crate::cmd::shared::complete;
use crate::cmd::shared::format::{parse_duration, table};
use crate::cmd::shared::nodes::{
    Confirmation, ConnectArgs, InstallArgs, Progress, block_on, conclude, load_inventory,
    load_inventory_checked, nodes_error,
};
use crate::cmd::shared::spec;
use crate::exit;
use crate::output::Output;
use clap_complete::engine::ArgValueCandidates;

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
    #[command(flatten)]
    pub examples: spec::ExampleValuesArgs,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The node to remove (its name in homelab.yaml).
    #[arg(add = ArgValueCandidates::new(complete::nodes))]
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
    #[arg(add = ArgValueCandidates::new(complete::nodes))]
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

fn apply(global: &Global, args: &ApplyArgs, out: &Output) -> anyhow::Result<u8> {
    let (_, _, mut lab) = load_inventory_checked(
        global,
        &args.conn,
        Some(&args.install),
        Needs::TokenAndSudo,
        Some(&args.examples),
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
