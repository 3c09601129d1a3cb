//! `homelab up`: reads the spec, works out the kubeconfig targets and check options from the
//! flags, makes one `homelab_ops::up` call and prints its steps (progress through the shared
//! step view, then a summary or JSON). On a terminal it offers `homelab secrets init` when the
//! operation says that would help, and asks nothing else. Decides nothing about the lab.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use homelab_kube::{ConnectError, StatusOptions};
use homelab_nodes::NodesError;
use homelab_ops::inventory::InventoryError;
use homelab_ops::kubeconfig::{KubeEnv, KubeconfigChoice};
use homelab_ops::up::{UpError, UpFailure, UpInput, UpOptions, UpReport};
use serde_json::{Value, json};

use crate::cli::Global;
use crate::cmd::shared::checks::UrlCheckArgs;
use crate::cmd::shared::cluster::ClusterArgs;
use crate::cmd::shared::format::parse_duration;
use crate::cmd::shared::nodes::{ConnectArgs, InstallArgs, block_on, report_json};
use crate::cmd::shared::secrets::fail;
use crate::cmd::shared::spec;
use crate::cmd::shared::steps::{StepProgress, steps_json, steps_text};
use crate::exit::{self, Exit};
use crate::output::{Output, ask_yes};

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Run every step's dry run: the nodes are checked over SSH, the cluster (when it
    /// answers) gets a server-side dry run and one status pass; nothing changes anywhere.
    #[arg(long)]
    pub dry_run: bool,
    /// The longest one wait of the apply step may take (a CRD established, a chart
    /// installed, a workload available), e.g. `5m` [default: 10m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// How long the lab may take to become healthy after the apply step, e.g. `15m`.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub wait: Duration,
    /// Reboot the lab's running VMs whose changes wait for a boot (else they are listed).
    #[arg(long)]
    pub reboot: bool,
    /// How long each backup Job of the first drill may run, e.g. `30m`.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration)]
    pub job_timeout: Duration,
    #[command(flatten)]
    pub install: InstallArgs,
    #[command(flatten)]
    pub conn: ConnectArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub urls: UrlCheckArgs,
    #[command(flatten)]
    pub examples: spec::ExampleValuesArgs,
}

pub fn run(global: &Global, args: &UpArgs, out: &Output) -> anyhow::Result<u8> {
    let loaded = spec::load_valid(&global.file, out)?;
    spec::refuse_example_values(&global.file, &loaded, &args.examples)?;
    let plan = homelab_plan::plan(&loaded.lab);
    let lab = loaded.lab.name.clone();
    let checks = homelab_ops::cluster_plan::status_checks(&plan);
    let tls = args.urls.tls(&checks)?;
    let merge = KubeconfigChoice {
        merge: true,
        ..KubeconfigChoice::default()
    };
    let targets =
        homelab_ops::kubeconfig::targets(&loaded.lab, &plan, &merge, &KubeEnv::from_process_env())
            .map_err(|e| exit::usage(e.to_string()))?;
    if let Some(w) = &targets.warning {
        out.warn(w);
    }
    let mut options = UpOptions {
        dry_run: args.dry_run,
        access: args.conn.access(Some(&args.install)),
        kubeconfig: targets.options,
        cluster: args.cluster.source(&lab),
        retry: args.cluster.retry(),
        apply_timeout: Duration::from_secs(600),
        status: StatusOptions {
            tls,
            retry: args.cluster.retry(),
            ..StatusOptions::default()
        },
        healthy_within: args.wait,
        status_interval: Duration::from_secs(1),
        job_timeout: args.job_timeout,
        vms: homelab_ops::vms::ApplyOptions {
            reboot: args.reboot,
            ..homelab_ops::vms::ApplyOptions::default()
        },
    };
    if let Some(t) = args.timeout {
        options.apply_timeout = t;
    }
    let input = UpInput {
        spec: &global.file,
        loaded: &loaded,
        plan: &plan,
    };
    let progress = StepProgress::new(
        out,
        loaded.lab.cluster.nodes.iter().map(|n| n.name.as_str()),
    );
    out.status(format!(
        "{} lab `{lab}` from {}",
        if args.dry_run {
            "Checking every step of (dry run)"
        } else {
            "Bringing up"
        },
        global.file.display()
    ));
    let mut offered = false;
    loop {
        let result = block_on(homelab_ops::up::up(&input, &options, &progress))?;
        let failure = match result {
            Ok(report) => return Ok(done(out, &report)),
            Err(f) => f,
        };
        let can_ask =
            !out.is_json() && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        if failure.error.secrets_init_helps() && can_ask && !offered && !args.dry_run {
            offered = true;
            out.status(format!("{}", failure.error));
            if ask_yes(
                "Run `homelab secrets init` now? It creates an age key if you have none and writes every secret the lab generates (values already set are kept).",
            ) {
                let init =
                    homelab_ops::up::secrets_init(&global.file, &loaded, &plan).map_err(fail)?;
                if let Some(p) = init
                    .identity_path
                    .as_ref()
                    .filter(|_| init.identity_created)
                {
                    out.status(format!(
                        "created age identity {} (mode 0600); back it up somewhere safe: without it nobody can decrypt the secrets",
                        p.display()
                    ));
                }
                out.status(format!(
                    "secrets init: {} generated, {} to set yourself",
                    init.generated.generated.len(),
                    init.generated.placeholders.len()
                ));
                continue;
            }
        }
        return failed(out, *failure);
    }
}

fn done(out: &Output, report: &UpReport) -> u8 {
    let data = report_data(report, None);
    for note in &report.notes {
        out.warn(note);
    }
    out.result(
        || {
            let mut text = steps_text(&report.steps);
            text.push_str(&if report.dry_run {
                format!(
                    "Dry run: nothing was changed. `homelab up` without --dry-run brings lab `{}` up.",
                    report.lab
                )
            } else if report.changed() {
                format!(
                    "Lab `{}` is up and healthy. `homelab status` shows it any time.",
                    report.lab
                )
            } else {
                format!(
                    "Lab `{}` is up and healthy; nothing needed changing.",
                    report.lab
                )
            });
            text
        },
        &data,
    );
    exit::OK
}

fn report_data(report: &UpReport, failure: Option<(&UpFailure, u8)>) -> Value {
    let ok = failure.is_none();
    let mut data = json!({
        "ok": ok,
        "exitCode": failure.map_or(exit::OK, |(_, code)| code),
        "lab": report.lab,
        "dryRun": report.dry_run,
        "resumedAt": report.resumed_at.map(|s| s.id()),
        "changed": report.changed(),
        "steps": steps_json(&report.steps),
        "notes": report.notes,
    });
    if let Some((f, _)) = failure {
        data["failedStep"] = json!(f.step.id());
        data["error"] = json!(f.error.to_string());
        data["help"] = json!(f.next());
    }
    if let Some(nodes) = &report.nodes {
        data["nodes"] =
            report_json("nodes apply", nodes, &[], report.dry_run, None)["hosts"].clone();
    }
    if let Some(apply) = &report.apply {
        data["apply"] = json!({"applysetId": apply.applyset_id, "changed": apply.changed()});
    }
    if let Some(status) = &report.status {
        data["status"] = serde_json::to_value(status).expect("the report serializes");
    }
    data
}

/// The exit code of a failed step: what the user must fix in the spec's inputs is a usage
/// error (2), as for the single commands; anything else a failure (1).
fn code(error: &UpError) -> u8 {
    match error {
        UpError::SecretsFileMissing { .. }
        | UpError::SecretsNotGenerated { .. }
        | UpError::SecretsUnset { .. }
        | UpError::Inventory(
            InventoryError::SecretsFileMissing { .. }
            | InventoryError::SecretUnset { .. }
            | InventoryError::SecretNotInFile { .. },
        )
        | UpError::Nodes(NodesError::InvalidInventory { .. } | NodesError::UnknownHost { .. }) => {
            exit::USAGE
        }
        UpError::Connect(ConnectError::Unreachable { .. } | ConnectError::Client { .. }) => {
            exit::FAILURE
        }
        UpError::Connect(_) => exit::USAGE,
        _ => exit::FAILURE,
    }
}

fn failed(out: &Output, failure: UpFailure) -> anyhow::Result<u8> {
    let code = code(&failure.error);
    for note in &failure.report.notes {
        out.warn(note);
    }
    if out.is_json() {
        out.json(&report_data(&failure.report, Some((&failure, code))));
        return Ok(code);
    }
    let help = failure.next();
    Err(Exit {
        code,
        message: failure.to_string(),
        help: Some(help),
    }
    .into())
}
