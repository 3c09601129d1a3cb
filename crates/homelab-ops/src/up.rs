//! `up`: the lab from its spec to a running, checked cluster as one chain of typed steps —
//! validate, secrets present, VMs, nodes, kubeconfig, apply, status until healthy, a first
//! backup drill — each calling the library operation the single commands call, each with a
//! dry run, each reporting what it did, progress handed to the caller as events. A failed
//! step stops the chain with what to do; the journal (`crate::journal`) only lets the next run
//! say where it resumes and spares a second first drill. Never prints, never asks anything
//! (the caller offers `secrets init` when this says it would help), never holds a secret in
//! an error or an event.

use std::path::Path;
use std::time::{Duration, Instant};

use homelab_backup::{BackupRun, DrillReport};
use homelab_kube::{
    ApplyError, ApplyEvent, ApplyOptions, ApplyReport, Cluster, ConnectError, Health, JobEvent,
    KubeconfigSource, ObjectOutcome, RetryPolicy, StatusOptions, StatusReport,
};
use homelab_nodes::{Event, EventSink, Inventory, KubeconfigOptions, NodesError, Report};
use homelab_plan::Plan;
use homelab_secrets::{Error as SecretsError, Identities, IdentityEnv, SecretsStore};
use homelab_spec::LoadedSpec;
use serde::Serialize;

use crate::backup_job::{self, BackupJobError, Operation, RunOptions};
use crate::cluster_plan::{self, ClusterPlan, ClusterPlanError};
use crate::inventory::{self, InventoryError, Needs, NodeAccess};
use crate::journal::Journal;
use crate::vms::{self, ApplyFailed, VmAction, VmError, VmEvent, VmReport};

/// One step of `up` (and of `down`, whose steps come after them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    Validate,
    Secrets,
    Vms,
    Nodes,
    Kubeconfig,
    Apply,
    Status,
    Drill,
    /// `down`: the lab's objects deleted from the cluster, volumes and their data with them.
    DeleteData,
    /// `down`: k3s and its data removed from every node.
    ResetNodes,
    /// `down`: the lab's VMs destroyed.
    DestroyVms,
}

impl Step {
    /// The steps of `up`, in order.
    pub const UP: [Step; 8] = [
        Step::Validate,
        Step::Secrets,
        Step::Vms,
        Step::Nodes,
        Step::Kubeconfig,
        Step::Apply,
        Step::Status,
        Step::Drill,
    ];

    /// The name the journal and `--output json` use.
    pub fn id(self) -> &'static str {
        match self {
            Step::Validate => "validate",
            Step::Secrets => "secrets",
            Step::Vms => "vms",
            Step::Nodes => "nodes",
            Step::Kubeconfig => "kubeconfig",
            Step::Apply => "apply",
            Step::Status => "status",
            Step::Drill => "drill",
            Step::DeleteData => "deleteData",
            Step::ResetNodes => "resetNodes",
            Step::DestroyVms => "destroyVms",
        }
    }

    /// What the step does, for people.
    pub fn title(self) -> &'static str {
        match self {
            Step::Validate => "validate the spec",
            Step::Secrets => "check the secrets",
            Step::Vms => "provision the VMs",
            Step::Nodes => "converge the nodes",
            Step::Kubeconfig => "write and merge the kubeconfig",
            Step::Apply => "apply the lab to the cluster",
            Step::Status => "wait until the lab is healthy",
            Step::Drill => "run a first backup drill",
            Step::DeleteData => "delete the lab's objects and volumes",
            Step::ResetNodes => "remove k3s from the nodes",
            Step::DestroyVms => "destroy the VMs",
        }
    }

    /// The single command that does this step alone.
    pub fn command(self) -> &'static str {
        match self {
            Step::Validate => "homelab validate",
            Step::Secrets => "homelab secrets list",
            Step::Vms => "homelab vms apply",
            Step::Nodes => "homelab nodes apply",
            Step::Kubeconfig => "homelab kubeconfig --merge",
            Step::Apply => "homelab apply",
            Step::Status => "homelab status",
            Step::Drill => "homelab backup drill",
            Step::DeleteData => "homelab apply --prune",
            Step::ResetNodes => "homelab nodes reset",
            Step::DestroyVms => "homelab vms destroy",
        }
    }

    /// The step whose [`Step::id`] is `id`.
    pub fn of_id(id: &str) -> Option<Step> {
        Step::UP.into_iter().find(|s| s.id() == id)
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// It changed something.
    Changed,
    /// Everything was already as the spec says.
    Unchanged,
    /// It does not apply to this lab (or this run), and why is in the summary.
    Skipped,
    /// Dry run: it checked and says what it would do.
    DryRun,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    pub step: Step,
    pub outcome: Outcome,
    /// One sentence: what it did or would do.
    pub summary: String,
    pub seconds: f64,
}

/// Everything `up` did, step by step, with the engines' own reports for the caller to show.
#[derive(Debug, Default)]
pub struct UpReport {
    pub lab: String,
    pub dry_run: bool,
    /// The step the last, unfinished run stopped before (from the journal).
    pub resumed_at: Option<Step>,
    /// Things the caller should tell the user (inventory notes, a journal that could not be
    /// read or written).
    pub notes: Vec<String>,
    pub steps: Vec<StepReport>,
    pub nodes: Option<Report>,
    pub apply: Option<ApplyReport>,
    pub status: Option<StatusReport>,
}

impl UpReport {
    /// Whether any step changed something.
    pub fn changed(&self) -> bool {
        self.steps.iter().any(|s| s.outcome == Outcome::Changed)
    }
}

/// Progress of `up` as it happens, for one progress view.
#[derive(Debug)]
pub enum UpEvent<'a> {
    /// The last run stopped before `at`; the steps before it finished then.
    Resuming {
        at: Step,
        finished: &'a [String],
    },
    StepStarted {
        step: Step,
        number: usize,
        of: usize,
    },
    /// An event of the node engine (nodes step, kubeconfig step, `down`).
    Node(&'a Event),
    /// An event of apply (apply step; retries of status and Jobs too).
    Apply(&'a ApplyEvent),
    /// An event of a backup Job (drill step).
    Job(&'a JobEvent),
    /// An event of the VM operation (VM steps of `up` and `down`).
    Vm(&'a VmEvent),
    /// One status pass ended unhealthy or unreachable; another follows after a pause.
    StatusPending {
        health: Health,
        problems: usize,
        first_problem: Option<String>,
        waited: Duration,
    },
    StepFinished(&'a StepReport),
}

/// Receives `up`'s events; implemented for closures.
pub trait UpEvents: Send + Sync {
    fn event(&self, event: UpEvent<'_>);
}

impl<F: Fn(UpEvent<'_>) + Send + Sync> UpEvents for F {
    fn event(&self, event: UpEvent<'_>) {
        self(event)
    }
}

/// What `up` reads: the spec file's path (its directory holds the secrets file and the
/// journal), the validated lab and its plan. The secrets file opens with the age identities
/// and Vault credentials of the environment, as for every command.
pub struct UpInput<'a> {
    pub spec: &'a Path,
    pub loaded: &'a LoadedSpec,
    pub plan: &'a Plan,
}

/// The caller's choices for every step.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Every step's dry run: nothing changes anywhere, the journal included.
    pub dry_run: bool,
    /// How to reach the hosts and where k3s comes from.
    pub access: NodeAccess,
    /// Where the kubeconfig is written and merged (`crate::kubeconfig::targets`).
    pub kubeconfig: KubeconfigOptions,
    /// Which kubeconfig the cluster steps use: looked up when they start, so it finds the one
    /// the kubeconfig step just merged.
    pub cluster: KubeconfigSource,
    pub retry: RetryPolicy,
    /// The longest one wait of apply may take.
    pub apply_timeout: Duration,
    /// How status checks (URL resolution, CA).
    pub status: StatusOptions,
    /// How long status may take to become healthy.
    pub healthy_within: Duration,
    /// The pause between two status passes.
    pub status_interval: Duration,
    /// How long each backup Job of the drill step may run.
    pub job_timeout: Duration,
    /// How the VM step waits and retries, and whether it reboots VMs whose changes wait
    /// for a boot.
    pub vms: vms::ApplyOptions,
}

/// Why a step of `up` (or `down`) stopped. Each says what failed and what to do; none holds a
/// secret value.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(
        "{} does not exist: the lab's secrets (the cluster token among them) are kept there; run `homelab secrets init` to create it",
        .path.display()
    )]
    SecretsFileMissing { path: std::path::PathBuf },
    #[error(
        "{} lacks {} the lab generates itself ({}); run `homelab secrets init` to add {} (it keeps the values already set)",
        .path.display(), count(.names.len(), "secret"), .names.join(", "),
        if .names.len() == 1 { "it" } else { "them" }
    )]
    SecretsNotGenerated {
        path: std::path::PathBuf,
        names: Vec<String>,
    },
    #[error(
        "{} in {} {} no value yet, and only you can give {}: {}",
        count(.names.len(), "secret"), .path.display(),
        if .names.len() == 1 { "has" } else { "have" },
        if .names.len() == 1 { "it" } else { "them" },
        .names.iter().map(|n| format!("`homelab secrets set {n}`")).collect::<Vec<_>>().join(", ")
    )]
    SecretsUnset {
        path: std::path::PathBuf,
        names: Vec<String>,
    },
    #[error("cannot read the names in the secrets file: {0}")]
    SecretsRead(#[source] Box<SecretsError>),
    #[error("cannot open the secrets file for the cluster's Secrets: {0}")]
    SecretsOpen(#[source] Box<SecretsError>),
    #[error(
        "{} holds every secret the lab needs, but cannot be opened here: {source}; the next steps need its values (the cluster token first), so nothing was contacted; point SOPS_AGE_KEY_FILE (or SOPS_AGE_KEY) at the age key the file is encrypted to, and `homelab secrets doctor` says which keys open it",
        .path.display()
    )]
    SecretsUnopened {
        path: std::path::PathBuf,
        #[source]
        source: Box<SecretsError>,
    },
    #[error("{0}")]
    Vms(#[source] Box<VmError>),
    #[error("{0}")]
    VmsApply(#[source] Box<ApplyFailed<VmReport>>),
    #[error("{0}")]
    VmsDestroy(#[source] Box<ApplyFailed<vms::DestroyReport>>),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error("{0}")]
    Nodes(#[source] NodesError),
    #[error("the kubeconfig was not written: {0}")]
    Kubeconfig(#[source] NodesError),
    #[error(transparent)]
    ClusterPlan(#[from] ClusterPlanError),
    #[error("{0}")]
    Connect(#[source] ConnectError),
    #[error("apply stopped: {0}; what was applied stays")]
    Apply(#[source] ApplyError),
    #[error(
        "the lab is not healthy after {}: {}",
        human(*.within), describe_problems(.report)
    )]
    Unhealthy {
        within: Duration,
        report: Box<StatusReport>,
    },
    #[error(transparent)]
    BackupJob(#[from] BackupJobError),
    #[error("the first backup failed: {reason}")]
    BackupFailed { reason: String },
    #[error(
        "the first drill FAILED: {reason}; do not rely on the dumps until a backup and a drill pass"
    )]
    DrillFailed { reason: String },
}

impl UpError {
    /// Whether `homelab secrets init` would fix this (the caller may offer to run it).
    pub fn secrets_init_helps(&self) -> bool {
        matches!(
            self,
            UpError::SecretsFileMissing { .. } | UpError::SecretsNotGenerated { .. }
        )
    }
}

/// A step that stopped the chain, with what ran before it.
#[derive(Debug)]
pub struct UpFailure {
    pub step: Step,
    pub error: UpError,
    pub report: UpReport,
}

impl UpFailure {
    /// What to do next, after fixing what the error names.
    pub fn next(&self) -> String {
        format!(
            "fix that, then run `homelab up` again: it checks the steps before (they are idempotent) and goes on with `{}` ({}); `{}` runs this step alone",
            self.step.id(),
            self.step.title(),
            self.step.command()
        )
    }
}

impl std::fmt::Display for UpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.step.title(), self.error)
    }
}

impl std::error::Error for UpFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// `90s`, `2m`, `1m30s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 60, s % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

fn describe_problems(report: &StatusReport) -> String {
    let shown: Vec<String> = report
        .problems
        .iter()
        .take(3)
        .map(|p| format!("{}: {} (fix: {})", p.subject, p.problem, p.fix))
        .collect();
    let more = report.problems.len().saturating_sub(shown.len());
    let mut text = format!(
        "{} ({})",
        count(report.problems.len(), "problem"),
        shown.join("; ")
    );
    if more > 0 {
        text.push_str(&format!("; {more} more in `homelab status --output json`"));
    }
    text
}

/// Now, as the journal writes it.
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string())
}

pub(crate) struct NodeSink<'e>(pub &'e dyn UpEvents);

impl EventSink for NodeSink<'_> {
    fn event(&self, event: &Event) {
        self.0.event(UpEvent::Node(event));
    }
}

pub(crate) struct KubeSink<'e>(pub &'e dyn UpEvents);

impl homelab_kube::Progress for KubeSink<'_> {
    fn event(&self, event: ApplyEvent) {
        self.0.event(UpEvent::Apply(&event));
    }
}

/// What the steps hand on to the ones after them.
#[derive(Default)]
struct Carried {
    inventory: Option<Inventory>,
    cluster: Option<Cluster>,
}

/// Runs every step of `up` in order, stopping at the first that fails.
pub async fn up(
    input: &UpInput<'_>,
    options: &UpOptions,
    events: &dyn UpEvents,
) -> Result<UpReport, Box<UpFailure>> {
    let lab = &input.loaded.lab.name;
    let (mut journal, note) = Journal::read(input.spec, lab);
    let mut report = UpReport {
        lab: lab.clone(),
        dry_run: options.dry_run,
        ..UpReport::default()
    };
    report.notes.extend(note);
    if let Some(done) = journal.unfinished_run() {
        let at = Step::UP
            .into_iter()
            .find(|s| !done.iter().any(|d| d == s.id()));
        if let Some(at) = at {
            report.resumed_at = Some(at);
            events.event(UpEvent::Resuming {
                at,
                finished: &done,
            });
        }
    }
    let mut journal_ok = true;
    if !options.dry_run {
        journal.start(&now());
        journal_ok = save(&journal, &mut report);
    }
    let mut carried = Carried::default();
    for (i, step) in Step::UP.into_iter().enumerate() {
        events.event(UpEvent::StepStarted {
            step,
            number: i + 1,
            of: Step::UP.len(),
        });
        let started = Instant::now();
        let result = run_step(
            step,
            input,
            options,
            events,
            &mut journal,
            &mut report,
            &mut carried,
        )
        .await;
        match result {
            Ok((outcome, summary)) => {
                let done = StepReport {
                    step,
                    outcome,
                    summary,
                    seconds: started.elapsed().as_secs_f64(),
                };
                events.event(UpEvent::StepFinished(&done));
                report.steps.push(done);
                if !options.dry_run && journal_ok {
                    journal.finish(step.id(), &now());
                    if step == Step::UP[Step::UP.len() - 1] {
                        journal.data.complete = true;
                    }
                    journal_ok = save(&journal, &mut report);
                }
            }
            Err(error) => {
                return Err(Box::new(UpFailure {
                    step,
                    error,
                    report,
                }));
            }
        }
    }
    Ok(report)
}

/// Saves the journal; a failure becomes a note (the journal is never needed).
fn save(journal: &Journal, report: &mut UpReport) -> bool {
    match journal.save() {
        Ok(()) => true,
        Err(e) => {
            report.notes.push(format!(
                "{e}; `homelab up` works without it, but cannot say where an interrupted run stopped"
            ));
            false
        }
    }
}

async fn run_step(
    step: Step,
    input: &UpInput<'_>,
    options: &UpOptions,
    events: &dyn UpEvents,
    journal: &mut Journal,
    report: &mut UpReport,
    carried: &mut Carried,
) -> Result<(Outcome, String), UpError> {
    let dry_run = options.dry_run;
    let loaded = input.loaded;
    let plan = input.plan;
    match step {
        Step::Validate => {
            let warnings = loaded.warnings.len();
            Ok((
                Outcome::Unchanged,
                format!(
                    "{} is valid ({}): {} node(s), {} component(s)",
                    input.spec.display(),
                    if warnings == 0 {
                        "no warnings".to_string()
                    } else {
                        count(warnings, "warning")
                    },
                    loaded.lab.cluster.nodes.len(),
                    plan.components.len()
                ),
            ))
        }
        Step::Secrets => secrets_present(input).map(|s| (Outcome::Unchanged, s)),
        Step::Vms => match &loaded.lab.proxmox {
            None => Ok((
                Outcome::Skipped,
                "no `proxmox:` section: the nodes are machines you provide".to_string(),
            )),
            Some(px) => vms_step(input, options, events, report, px).await,
        },
        Step::Nodes => {
            let lab = inventory::build(
                input.spec,
                loaded,
                plan,
                &options.access,
                Needs::TokenAndSudo,
            )?;
            report.notes.extend(lab.warnings);
            let inv = lab.inventory;
            let opts = homelab_nodes::ApplyOptions { dry_run };
            let result = homelab_nodes::apply(&inv, &opts, &NodeSink(events))
                .await
                .map_err(UpError::Nodes)?;
            let hosts = result.hosts.len();
            let changed = result
                .hosts
                .iter()
                .filter(|h| {
                    matches!(
                        h.outcome,
                        homelab_nodes::HostOutcome::Changed { .. }
                            | homelab_nodes::HostOutcome::WouldChange { .. }
                    )
                })
                .count();
            let done = if dry_run {
                (
                    Outcome::DryRun,
                    format!("{changed} of {hosts} host(s) would change"),
                )
            } else if changed == 0 {
                (
                    Outcome::Unchanged,
                    format!("all {hosts} host(s) unchanged, k3s {}", inv.k3s_version),
                )
            } else {
                (
                    Outcome::Changed,
                    format!(
                        "{changed} host(s) changed, {} unchanged, k3s {}",
                        hosts - changed,
                        inv.k3s_version
                    ),
                )
            };
            report.nodes = Some(result);
            carried.inventory = Some(inv);
            Ok(done)
        }
        Step::Kubeconfig => {
            let k = &options.kubeconfig;
            let merged = k
                .merge_into
                .as_ref()
                .map(|m| format!(" and the context `{}` in {}", loaded.lab.name, m.display()))
                .unwrap_or_default();
            if dry_run {
                return Ok((
                    Outcome::DryRun,
                    format!(
                        "would write {}{merged} once the first server runs",
                        k.write_to.display()
                    ),
                ));
            }
            let inv = carried
                .inventory
                .as_ref()
                .expect("the nodes step ran before the kubeconfig step");
            let before = [read(&k.write_to), k.merge_into.as_deref().and_then(read)];
            let done = homelab_nodes::kubeconfig(inv, k, &NodeSink(events))
                .await
                .map_err(UpError::Kubeconfig)?;
            let after = [read(&k.write_to), k.merge_into.as_deref().and_then(read)];
            Ok(if before == after {
                (
                    Outcome::Unchanged,
                    format!(
                        "{}{merged} already point at {}",
                        done.written.display(),
                        done.server
                    ),
                )
            } else {
                (
                    Outcome::Changed,
                    format!(
                        "wrote {} (mode 0600){merged}, server {}",
                        done.written.display(),
                        done.server
                    ),
                )
            })
        }
        Step::Apply => {
            let cluster_plan = cluster_plan_of(input)?;
            let cluster =
                match Cluster::connect_with(&options.cluster, &options.retry, &KubeSink(events))
                    .await
                {
                    Ok(c) => c,
                    Err(e) if dry_run => {
                        return Ok((
                            Outcome::Skipped,
                            format!(
                                "no cluster to check against yet ({e}); the nodes step makes it"
                            ),
                        ));
                    }
                    Err(e) => return Err(UpError::Connect(e)),
                };
            let apply_options = ApplyOptions {
                dry_run,
                prune: false,
                retry: options.retry.clone(),
                wait_timeout: options.apply_timeout,
                ..ApplyOptions::default()
            };
            let applied = cluster
                .apply(&cluster_plan.apply, &apply_options, &KubeSink(events))
                .await
                .map_err(UpError::Apply)?;
            let mut created = 0;
            let mut configured = 0;
            let mut unchanged = 0;
            for o in applied.units.iter().flat_map(|u| &u.objects) {
                match o.outcome {
                    ObjectOutcome::Created => created += 1,
                    ObjectOutcome::Configured => configured += 1,
                    ObjectOutcome::Unchanged => unchanged += 1,
                }
            }
            let units = applied.units.len();
            let done = if dry_run {
                (
                    Outcome::DryRun,
                    format!(
                        "server-side dry run at {}: {created} object(s) would be created, {configured} configured, {unchanged} unchanged",
                        cluster.server()
                    ),
                )
            } else if applied.changed() {
                (
                    Outcome::Changed,
                    format!(
                        "{created} object(s) created, {configured} configured, {unchanged} unchanged in {units} unit(s) at {}",
                        cluster.server()
                    ),
                )
            } else {
                (
                    Outcome::Unchanged,
                    format!(
                        "all {unchanged} object(s) in {units} unit(s) unchanged at {}",
                        cluster.server()
                    ),
                )
            };
            report.apply = Some(applied);
            carried.cluster = Some(cluster);
            Ok(done)
        }
        Step::Status => {
            let Some(cluster) = &carried.cluster else {
                return Ok((
                    Outcome::Skipped,
                    "no cluster to check yet (dry run)".to_string(),
                ));
            };
            let checks = cluster_plan::status_checks(plan);
            let started = Instant::now();
            loop {
                let status = cluster
                    .status_with(&checks, &options.status, &KubeSink(events))
                    .await;
                let waited = started.elapsed();
                // A new lab's backups have not run yet; the drill step runs the first one, so
                // they hold nothing up while that step is still to come.
                let first_backup_pending =
                    journal.data.first_drill_passed.is_none() && backup_job::setup(plan).is_ok();
                let never_ran: Vec<String> = status
                    .backups
                    .iter()
                    .filter(|b| {
                        first_backup_pending
                            && !b.ok
                            && b.last_success.is_none()
                            && !b.detail.contains("suspended")
                    })
                    .map(|b| format!("backup CronJob {}/{}", b.namespace, b.cronjob))
                    .collect();
                let blocking = status
                    .problems
                    .iter()
                    .filter(|p| !never_ran.contains(&p.subject))
                    .count();
                if status.health == Health::Unhealthy && blocking == 0 && !never_ran.is_empty() {
                    let summary = format!(
                        "healthy apart from {}, which never ran yet: the next step runs the first backup",
                        never_ran.join(", ")
                    );
                    report.status = Some(status);
                    return Ok((Outcome::Unchanged, summary));
                }
                if status.health == Health::Healthy {
                    let summary = format!(
                        "healthy: {} node(s) Ready, {} component(s), {} URL(s) and {} backup(s) checked",
                        status.nodes.len(),
                        status.components.len(),
                        status.urls.len(),
                        status.backups.len()
                    );
                    report.status = Some(status);
                    return Ok((Outcome::Unchanged, summary));
                }
                if dry_run {
                    let summary = format!(
                        "not healthy now ({}); a run without --dry-run waits up to {} for it",
                        count(status.problems.len(), "problem"),
                        human(options.healthy_within)
                    );
                    report.status = Some(status);
                    return Ok((Outcome::DryRun, summary));
                }
                if waited >= options.healthy_within {
                    report.status = Some(status.clone());
                    return Err(UpError::Unhealthy {
                        within: options.healthy_within,
                        report: Box::new(status),
                    });
                }
                events.event(UpEvent::StatusPending {
                    health: status.health,
                    problems: status.problems.len(),
                    first_problem: status
                        .problems
                        .first()
                        .map(|p| format!("{}: {}", p.subject, p.problem)),
                    waited,
                });
                let left = options.healthy_within.saturating_sub(waited);
                tokio::time::sleep(options.status_interval.min(left)).await;
            }
        }
        Step::Drill => {
            let setup = match backup_job::setup(plan) {
                Ok(s) => s,
                Err(BackupJobError::NoPostgresBackups) => {
                    return Ok((
                        Outcome::Skipped,
                        "PostgreSQL is off: there is nothing to back up".to_string(),
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(at) = &journal.data.first_drill_passed {
                return Ok((
                    Outcome::Unchanged,
                    format!("the first drill passed at {at}; `homelab backup drill` runs another"),
                ));
            }
            let Some(cluster) = &carried.cluster else {
                return Ok((
                    Outcome::Skipped,
                    "no cluster to drill in yet (dry run)".to_string(),
                ));
            };
            if dry_run {
                return Ok((
                    Outcome::DryRun,
                    format!(
                        "would back up PostgreSQL now (a Job from CronJob {}/{}) and drill the dumps",
                        setup.namespace, setup.cronjob
                    ),
                ));
            }
            let run_options = RunOptions {
                timeout: options.job_timeout,
                follow_log: false,
                retry: options.retry.clone(),
            };
            let job_events = |e: JobEvent| events.event(UpEvent::Job(&e));
            let ran = backup_job::run(
                cluster,
                &setup,
                Operation::Backup,
                &[],
                &run_options,
                &job_events,
            )
            .await?;
            let backup =
                BackupRun::from_log(&ran.outcome.log).map_err(|e| UpError::BackupFailed {
                    reason: format!("it left no report ({e}); see {}", ran.logs_hint()),
                })?;
            if !(ran.outcome.succeeded && backup.succeeded()) {
                let mut reasons: Vec<String> = backup
                    .errors
                    .iter()
                    .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
                    .collect();
                if reasons.is_empty() {
                    reasons.push(
                        ran.outcome
                            .failure
                            .clone()
                            .unwrap_or_else(|| "backup.sh reported a failure".into()),
                    );
                }
                return Err(UpError::BackupFailed {
                    reason: format!("{}; see {}", reasons.join("; "), ran.logs_hint()),
                });
            }
            let ran = backup_job::run(
                cluster,
                &setup,
                Operation::Drill,
                &[],
                &run_options,
                &job_events,
            )
            .await?;
            let drill = DrillReport::parse(&ran.outcome.log).map_err(|e| UpError::DrillFailed {
                reason: format!("it left no report ({e}); see {}", ran.logs_hint()),
            })?;
            let s = &drill.summary;
            if !(ran.outcome.succeeded && drill.passed()) {
                return Err(UpError::DrillFailed {
                    reason: format!(
                        "{} of {} database(s) failed, {} table(s) differ, {} invalid dump(s); see {}",
                        s.failed_databases,
                        s.databases,
                        s.mismatches,
                        s.invalid_dumps,
                        ran.logs_hint()
                    ),
                });
            }
            journal.data.first_drill_passed = Some(now());
            Ok((
                Outcome::Changed,
                format!(
                    "backed up {} database(s), restored them into scratch databases and compared {} table(s): all match",
                    backup.databases.len(),
                    s.tables
                ),
            ))
        }
        Step::DeleteData | Step::ResetNodes | Step::DestroyVms => {
            unreachable!("a step of down, not of up")
        }
    }
}

/// Plans the lab's VMs against what Proxmox shows and, unless a dry run, carries the plan out
/// (the VM operation waits for every guest to answer SSH).
async fn vms_step(
    input: &UpInput<'_>,
    options: &UpOptions,
    events: &dyn UpEvents,
    report: &mut UpReport,
    px: &homelab_spec::lab::Proxmox,
) -> Result<(Outcome, String), UpError> {
    let lab = &input.loaded.lab;
    let store = open_store(input.spec, input.loaded)?;
    let client = vms::connect(px, &store).map_err(|e| UpError::Vms(Box::new(e)))?;
    let plan = vms::plan_live(&client, lab)
        .await
        .map_err(|e| UpError::Vms(Box::new(e)))?;
    let of = |a: VmAction| plan.vms.iter().filter(|v| v.action == a).count();
    let waiting: Vec<&str> = plan.awaiting_reboot().map(|v| v.name.as_str()).collect();
    if !waiting.is_empty() && !options.vms.reboot {
        report.notes.push(format!(
            "VM(s) {} take some changes only at their next boot; `homelab up --reboot` reboots them",
            waiting.join(", ")
        ));
    }
    if options.dry_run {
        return Ok((
            Outcome::DryRun,
            format!(
                "on {}: {} VM(s) to clone, {} to adopt, {} to change, {} as the spec says",
                plan.endpoint,
                of(VmAction::Create),
                of(VmAction::Adopt),
                of(VmAction::Update),
                of(VmAction::Keep)
            ),
        ));
    }
    let sink = |e: VmEvent| events.event(UpEvent::Vm(&e));
    let done = vms::apply(&client, &plan, &options.vms, &sink)
        .await
        .map_err(|f| UpError::VmsApply(Box::new(f)))?;
    let ready = done.vms.iter().filter(|v| v.ready).count();
    Ok(if done.changed() {
        let mut what = Vec::new();
        if done.template_made {
            what.push("made the template".to_string());
        }
        for v in done.vms.iter().filter(|v| !v.done.is_empty()) {
            what.push(format!("{}: {}", v.name, v.done.join(", ")));
        }
        (
            Outcome::Changed,
            format!(
                "on {}: {}; {ready} of {} VM(s) answer SSH",
                done.endpoint,
                what.join("; "),
                done.vms.len()
            ),
        )
    } else {
        (
            Outcome::Unchanged,
            format!(
                "all {} VM(s) on {} as the spec says, and answering SSH",
                done.vms.len(),
                done.endpoint
            ),
        )
    })
}

/// The secrets file, opened with the environment's identities.
pub(crate) fn open_store(spec: &Path, loaded: &LoadedSpec) -> Result<SecretsStore, UpError> {
    let path = crate::secrets::secrets_file(spec);
    identities(loaded)
        .and_then(|ids| SecretsStore::open(&path, &ids))
        .map_err(|e| UpError::SecretsOpen(Box::new(e)))
}

fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

/// The secrets file holds every secret the lab needs, with a value, and opens with the keys
/// of this environment: checked before any host or Proxmox is contacted, so a missing or
/// wrong key stops here rather than halfway through the steps that need the values (ADR 0161).
/// The names are checked first, without a key, so their messages come first.
fn secrets_present(input: &UpInput<'_>) -> Result<String, UpError> {
    let check = crate::secrets::check_names(input.spec, input.loaded, input.plan)
        .map_err(|e| UpError::SecretsRead(Box::new(e)))?;
    if !check.exists {
        return Err(UpError::SecretsFileMissing { path: check.file });
    }
    let mut generate = check.not_generated.clone();
    for name in &check.missing_names {
        if !generate.contains(name) {
            generate.push(name.clone());
        }
    }
    if !generate.is_empty() {
        return Err(UpError::SecretsNotGenerated {
            path: check.file,
            names: generate,
        });
    }
    if !check.unset.is_empty() {
        return Err(UpError::SecretsUnset {
            path: check.file,
            names: check.unset,
        });
    }
    // Opened and dropped at once: the values stay in memory only while the file verifies.
    identities(input.loaded)
        .and_then(|ids| SecretsStore::open(&check.file, &ids))
        .map_err(|e| UpError::SecretsUnopened {
            path: check.file.clone(),
            source: Box::new(e),
        })?;
    let needed =
        crate::secrets::requirements(input.loaded, input.plan).len() - check.unset_optional.len();
    let mut done = format!(
        "all {} the lab needs are in {} which opens with the keys here",
        count(needed, "secret"),
        check.file.display()
    );
    if !check.unset_optional.is_empty() {
        done.push_str(&format!(
            "; optional and without a value, so their Secrets are left out: {}",
            check.unset_optional_with_commands()
        ));
    }
    Ok(done)
}

/// The plan as `homelab-kube` input, its Secrets filled from the secrets file (opened only
/// when the lab has Secrets).
fn cluster_plan_of(input: &UpInput<'_>) -> Result<ClusterPlan, UpError> {
    let needs_secrets = input
        .plan
        .components
        .iter()
        .any(|c| !c.secret_objects.is_empty());
    if needs_secrets {
        let store = open_store(input.spec, input.loaded)?;
        Ok(cluster_plan::cluster_plan(input.plan, &store)?)
    } else {
        Ok(cluster_plan::cluster_plan(input.plan, &NoSecrets)?)
    }
}

/// The age identities and Vault credentials of the environment, with the lab's server
/// (`secrets.vault`) for a credential whose address variable is unset.
fn identity_env(loaded: &LoadedSpec) -> IdentityEnv {
    let mut env = IdentityEnv::from_process_env();
    env.vault = env.vault.with_lab(
        loaded
            .lab
            .secrets
            .vault
            .as_ref()
            .map(crate::secrets::lab_vault),
    );
    env
}

fn identities(loaded: &LoadedSpec) -> Result<Identities, SecretsError> {
    Identities::from_env(&identity_env(loaded))
}

/// `homelab secrets init` for the lab, for a caller that offered it after
/// [`UpError::secrets_init_helps`]: an age identity when there is none, `.sops.yaml` rules,
/// and the secrets file with every secret the lab generates (values already set are kept).
pub fn secrets_init(
    spec: &Path,
    loaded: &LoadedSpec,
    plan: &Plan,
) -> Result<homelab_secrets::LabInit, SecretsError> {
    let vault_key = loaded
        .lab
        .secrets
        .vault
        .as_ref()
        .map(crate::secrets::vault_key)
        .transpose()?;
    let requirements = crate::secrets::requirements(loaded, plan);
    homelab_secrets::init_lab_with(
        &crate::secrets::lab_dir(spec),
        &identity_env(loaded),
        &requirements,
        vault_key.as_ref(),
    )
}

/// The values of a lab without Secrets: asking for one is a defect of the plan.
pub(crate) struct NoSecrets;

impl homelab_render::SecretValues for NoSecrets {
    fn secret(&self, name: &str) -> Result<secrecy::SecretString, String> {
        Err(format!("no secrets file is read for `{name}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_have_ids_titles_and_their_single_command() {
        let ids: Vec<&str> = Step::UP.iter().map(|s| s.id()).collect();
        assert_eq!(
            ids,
            [
                "validate",
                "secrets",
                "vms",
                "nodes",
                "kubeconfig",
                "apply",
                "status",
                "drill"
            ]
        );
        for s in Step::UP {
            assert_eq!(Step::of_id(s.id()), Some(s));
            assert!(s.command().starts_with("homelab "));
        }
        assert_eq!(human(Duration::from_secs(90)), "1m30s");
        assert_eq!(human(Duration::from_secs(120)), "2m");
        assert_eq!(human(Duration::from_secs(5)), "5s");
    }

    #[test]
    fn a_failure_says_what_failed_and_where_the_next_run_goes_on() {
        let f = UpFailure {
            step: Step::Secrets,
            error: UpError::SecretsUnset {
                path: "lab/secrets.sops.yaml".into(),
                names: vec!["cloudflare-api-token".into()],
            },
            report: UpReport::default(),
        };
        let text = f.to_string();
        assert!(
            text.starts_with(
                "check the secrets failed: 1 secret in lab/secrets.sops.yaml has no value yet"
            ),
            "{text}"
        );
        assert!(
            text.contains("`homelab secrets set cloudflare-api-token`"),
            "{text}"
        );
        assert!(!f.error.secrets_init_helps());
        assert!(
            f.next()
                .contains("goes on with `secrets` (check the secrets); `homelab secrets list`"),
            "{}",
            f.next()
        );
        let missing = UpError::SecretsFileMissing {
            path: "secrets.sops.yaml".into(),
        };
        assert!(missing.secrets_init_helps());
        assert!(missing.to_string().contains("homelab secrets init"));
    }
}
