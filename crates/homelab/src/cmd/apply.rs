//! `homelab apply`: reads the spec, its plan and the secrets file, connects to the cluster and
//! makes one `homelab-kube` apply call, showing its events as progress and its report as a
//! summary or JSON. Decides nothing about objects itself and never prints a secret value.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;
use homelab_kube::{ApplyEvent, ApplyOptions, ApplyReport, Cluster, ObjectOutcome, Progress};
use homelab_ops::cluster_plan::component_of_unit;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::cli::Global;
use crate::cmd::shared::cluster::{
    ClusterArgs, RetryLines, connect_error, left_out_json, load_cluster_plan, retry_line, runtime,
};
use crate::cmd::shared::format::{parse_duration, table};
use crate::cmd::shared::spec::ExampleValuesArgs;
use crate::exit::{self, Exit};
use crate::output::Output;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Also delete what an earlier apply created and the spec no longer has (only objects
    /// carrying this lab's ApplySet label, never anything else).
    #[arg(long)]
    pub prune: bool,
    /// Send everything as a server-side dry run: the API checks it, nothing is stored, no
    /// waits. `homelab diff` shows the changes themselves.
    #[arg(long)]
    pub dry_run: bool,
    /// The longest one wait may take (a CRD established, a chart installed, a workload
    /// available), e.g. `5m`, `90s` [default: 10m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub examples: ExampleValuesArgs,
}

pub fn run(global: &Global, args: &ApplyArgs, out: &Output) -> anyhow::Result<u8> {
    let (loaded, _plan, cluster_plan) = load_cluster_plan(global, Some(&args.examples), out)?;
    let lab = &loaded.lab.name;
    let rt = runtime()?;
    let source = args.cluster.source(lab);
    let retry = args.cluster.retry();
    let cluster = rt
        .block_on(Cluster::connect_with(&source, &retry, &RetryLines(out)))
        .map_err(|e| connect_error(e, exit::FAILURE))?;
    let units = cluster_plan.apply.units.len();
    let objects: usize = cluster_plan
        .apply
        .units
        .iter()
        .map(|u| u.objects.len())
        .sum();
    out.status(format!(
        "{} lab `{lab}` at {}: {objects} objects in {units} units{}",
        if args.dry_run {
            "Checking (server-side dry run)"
        } else {
            "Applying"
        },
        cluster.server(),
        if args.prune { ", pruning" } else { "" }
    ));
    let mut options = ApplyOptions {
        dry_run: args.dry_run,
        prune: args.prune,
        retry,
        ..ApplyOptions::default()
    };
    if let Some(t) = args.timeout {
        options.wait_timeout = t;
    }
    let progress = ApplyProgress::new(out, args.dry_run);
    let result = rt.block_on(cluster.apply(&cluster_plan.apply, &options, &progress));
    progress.finish();
    let report = result.map_err(|e| Exit {
        code: exit::FAILURE,
        message: format!(
            "apply stopped: {e}; what was applied stays, and running `homelab apply` again continues from there"
        ),
        help: None,
    })?;
    let mut data = report_json(lab, &report, args.prune);
    data["optionalSecretsAbsent"] = left_out_json(&cluster_plan);
    out.result(|| summary(lab, &report), &data);
    Ok(exit::OK)
}

/// Counts of outcomes per component, in plan order.
struct ComponentSummary {
    name: String,
    created: usize,
    configured: usize,
    unchanged: usize,
}

fn components(report: &ApplyReport) -> Vec<ComponentSummary> {
    let mut out: Vec<ComponentSummary> = Vec::new();
    for unit in &report.units {
        let name = component_of_unit(&unit.name);
        let i = match out.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                out.push(ComponentSummary {
                    name: name.to_string(),
                    created: 0,
                    configured: 0,
                    unchanged: 0,
                });
                out.len() - 1
            }
        };
        for o in &unit.objects {
            match o.outcome {
                ObjectOutcome::Created => out[i].created += 1,
                ObjectOutcome::Configured => out[i].configured += 1,
                ObjectOutcome::Unchanged => out[i].unchanged += 1,
            }
        }
    }
    out
}

/// "1 object", "3 objects".
fn objects(n: usize) -> String {
    format!("{n} object{}", if n == 1 { "" } else { "s" })
}

fn outcome_text(c: &ComponentSummary, dry_run: bool) -> String {
    if c.created + c.configured == 0 {
        return format!("unchanged ({})", objects(c.unchanged));
    }
    let (created, configured) = if dry_run {
        ("would be created", "would be configured")
    } else {
        ("created", "configured")
    };
    let mut parts = Vec::new();
    if c.created > 0 {
        parts.push(format!("{} {created}", c.created));
    }
    if c.configured > 0 {
        parts.push(format!("{} {configured}", c.configured));
    }
    if c.unchanged > 0 {
        parts.push(format!("{} unchanged", c.unchanged));
    }
    parts.join(", ")
}

fn summary(lab: &str, report: &ApplyReport) -> String {
    let comps = components(report);
    let mut rows = vec![vec!["COMPONENT".to_string(), "RESULT".to_string()]];
    for c in &comps {
        rows.push(vec![c.name.clone(), outcome_text(c, report.dry_run)]);
    }
    let mut text = table(&rows);
    let pruned: Vec<&homelab_kube::PrunedObject> = report.pruned.iter().collect();
    for p in &pruned {
        match (&p.kept_because, report.dry_run) {
            (Some(why), _) => text.push_str(&format!("kept {}: {why}\n", p.object)),
            (None, true) => text.push_str(&format!("would prune {}\n", p.object)),
            (None, false) => text.push_str(&format!("pruned {}\n", p.object)),
        }
    }
    let changed = comps
        .iter()
        .filter(|c| c.created + c.configured > 0)
        .count();
    let deleted = report.pruned.iter().filter(|p| p.deleted).count();
    let prefix = if report.dry_run {
        "Dry run, nothing was changed: "
    } else {
        ""
    };
    if changed == 0 && deleted == 0 {
        text.push_str(&format!(
            "{prefix}every component of lab `{lab}` is unchanged ({} components).",
            comps.len()
        ));
    } else {
        let created: usize = comps.iter().map(|c| c.created).sum();
        let configured: usize = comps.iter().map(|c| c.configured).sum();
        text.push_str(&format!(
            "{prefix}{changed} of {} components of lab `{lab}` {}: {created} objects created, {configured} configured, {deleted} pruned.",
            comps.len(),
            if report.dry_run {
                "would change"
            } else {
                "changed"
            }
        ));
    }
    text
}

fn report_json(lab: &str, report: &ApplyReport, prune: bool) -> Value {
    let comps = components(report);
    let components: Vec<Value> = comps
        .iter()
        .map(|c| {
            let units: Vec<&homelab_kube::UnitReport> = report
                .units
                .iter()
                .filter(|u| component_of_unit(&u.name) == c.name)
                .collect();
            json!({
                "name": c.name,
                "changed": c.created + c.configured > 0,
                "created": c.created,
                "configured": c.configured,
                "unchanged": c.unchanged,
                "units": units,
            })
        })
        .collect();
    json!({
        "ok": true,
        "exitCode": exit::OK,
        "lab": lab,
        "dryRun": report.dry_run,
        "prune": prune,
        "changed": report.changed(),
        "applysetId": report.applyset_id,
        "components": components,
        "pruned": report.pruned,
    })
}

/// Shows apply events: on a terminal one line per unit that updates in place, otherwise
/// plain lines (objects that changed, retries, prunes, finished units; waits with `-v`).
/// Silent with `--quiet` and `--output json`.
struct ApplyProgress<'o> {
    out: &'o Output,
    dry_run: bool,
    bars: Option<MultiProgress>,
    state: Mutex<ProgressState>,
}

#[derive(Default)]
struct ProgressState {
    units: BTreeMap<String, UnitLine>,
}

struct UnitLine {
    bar: Option<ProgressBar>,
    total: usize,
    done: usize,
    changed: usize,
}

impl<'o> ApplyProgress<'o> {
    fn new(out: &'o Output, dry_run: bool) -> Self {
        let silent = out.quiet || out.is_json();
        let bars = (!silent && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        ApplyProgress {
            out,
            dry_run,
            bars,
            state: Mutex::new(ProgressState::default()),
        }
    }

    fn silent(&self) -> bool {
        self.out.quiet || self.out.is_json()
    }

    /// A line above the bars (or a plain line without them).
    fn line(&self, text: String) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(text);
            }
            None => self.out.status(text),
        }
    }

    fn finish(&self) {
        let state = self.state.lock().expect("progress lock");
        for line in state.units.values() {
            if let Some(bar) = &line.bar
                && !bar.is_finished()
            {
                bar.abandon();
            }
        }
    }
}

impl Progress for ApplyProgress<'_> {
    fn event(&self, event: ApplyEvent) {
        if self.silent() {
            return;
        }
        let mut state = self.state.lock().expect("progress lock");
        match event {
            ApplyEvent::ApplySetUpdated { id, .. } => {
                if self.out.verbose > 0 {
                    self.line(format!("ApplySet {id} covers the plan"));
                }
            }
            ApplyEvent::UnitStarted { unit, objects } => {
                let bar = self.bars.as_ref().map(|bars| {
                    let bar = bars.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix:<28} {wide_msg}")
                            .expect("valid template"),
                    );
                    bar.set_prefix(unit.clone());
                    bar.set_message(format!("applying 0/{objects} objects"));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                state.units.insert(
                    unit,
                    UnitLine {
                        bar,
                        total: objects,
                        done: 0,
                        changed: 0,
                    },
                );
            }
            ApplyEvent::ObjectApplied {
                unit,
                object,
                outcome,
            } => {
                if let Some(line) = state.units.get_mut(&unit) {
                    line.done += 1;
                    if outcome != ObjectOutcome::Unchanged {
                        line.changed += 1;
                    }
                    if let Some(bar) = &line.bar {
                        bar.set_message(format!("applying {}/{} objects", line.done, line.total));
                    }
                }
                // A log gets every change; a terminal keeps to one line per unit unless -v.
                let show = match outcome {
                    ObjectOutcome::Unchanged => self.out.verbose > 0,
                    _ => self.bars.is_none() || self.out.verbose > 0,
                };
                if show {
                    let would = if self.dry_run && outcome != ObjectOutcome::Unchanged {
                        "would be "
                    } else {
                        ""
                    };
                    self.line(format!("{unit}: {object} {would}{}", outcome.as_str()));
                }
            }
            ApplyEvent::Retrying { .. } => {
                if let Some(line) = retry_line(&event) {
                    self.line(line);
                }
            }
            ApplyEvent::Waiting { unit, what } => {
                if let Some(bar) = state.units.get(&unit).and_then(|l| l.bar.as_ref()) {
                    bar.set_message(format!("waiting for {what}"));
                } else if self.out.verbose > 0 {
                    self.line(format!("{unit}: waiting for {what}"));
                }
            }
            ApplyEvent::WaitDone { unit, what } => {
                if self.out.verbose > 0 {
                    self.line(format!("{unit}: done waiting for {what}"));
                }
            }
            ApplyEvent::WaitSkipped { unit, what } => {
                if self.out.verbose > 0 {
                    self.line(format!("{unit}: dry run, not waiting for {what}"));
                }
            }
            ApplyEvent::UnitReady { unit, changed } => {
                let text = match state.units.get(&unit) {
                    Some(line) if changed => format!(
                        "{} of {} {}",
                        line.changed,
                        objects(line.total),
                        if self.dry_run {
                            "would change"
                        } else {
                            "changed"
                        }
                    ),
                    Some(line) => format!("unchanged ({})", objects(line.total)),
                    None => "ready".to_string(),
                };
                match state.units.get(&unit).and_then(|l| l.bar.as_ref()) {
                    Some(bar) => bar.finish_with_message(format!("✓ {text}")),
                    None => self.line(format!("{unit}: {text}")),
                }
            }
            ApplyEvent::UnitFailed { unit, error } => {
                match state.units.get(&unit).and_then(|l| l.bar.as_ref()) {
                    Some(bar) => bar.abandon_with_message(format!("✗ failed: {error}")),
                    None => self.line(format!("{unit}: FAILED: {error}")),
                }
            }
            ApplyEvent::Pruned { object } => self.line(if self.dry_run {
                format!("would prune {object}")
            } else {
                format!("pruned {object}")
            }),
            ApplyEvent::PruneSkipped { object, reason } => {
                self.line(format!("not pruning {object}: {reason}"))
            }
        }
    }
}
