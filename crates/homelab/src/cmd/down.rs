//! `homelab down`: asks once, naming what is lost (on a terminal; `--yes` otherwise), then one
//! `homelab_ops::down` call whose steps are shown through the shared step view, and a summary
//! or JSON. Decides nothing about the lab; the operation takes nothing without the answer.

use std::io::IsTerminal;

use clap::Args;
use homelab_ops::down::{DownFailure, DownOptions, DownReport};
use serde_json::json;

use crate::cli::Global;
use crate::cmd::shared::cluster::ClusterArgs;
use crate::cmd::shared::nodes::{ConnectArgs, block_on, report_json};
use crate::cmd::shared::spec;
use crate::cmd::shared::steps::{StepProgress, steps_json, steps_text};
use crate::exit::{self, Exit};
use crate::output::{Output, ask_yes};

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Do not ask; needed when there is no terminal to ask on.
    #[arg(long)]
    pub yes: bool,
    /// Also delete the lab's objects from the cluster first, so that the NFS provisioner
    /// deletes its volumes' data [default: the data on NFS is kept].
    #[arg(long)]
    pub delete_data: bool,
    /// Keep the VMs of a lab with `proxmox:`; only k3s is removed from them.
    #[arg(long)]
    pub keep_vms: bool,
    /// Say what would go; change nothing (the cluster sees a server-side dry run).
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub conn: ConnectArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub fn run(global: &Global, args: &DownArgs, out: &Output) -> anyhow::Result<u8> {
    let loaded = spec::load_valid(&global.file, out)?;
    let plan = homelab_plan::plan(&loaded.lab);
    let lab = loaded.lab.name.clone();
    let options = DownOptions {
        dry_run: args.dry_run,
        delete_data: args.delete_data,
        keep_vms: args.keep_vms,
        access: args.conn.access(None),
        cluster: args.cluster.source(&lab),
        retry: args.cluster.retry(),
    };
    let losses = homelab_ops::down::losses(&loaded, &options);
    if !args.dry_run && !args.yes {
        let question = format!(
            "Take lab `{lab}` down? This loses:\n{}",
            losses
                .iter()
                .map(|l| format!("  - {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        if !terminal || out.is_json() {
            return Err(Exit {
                code: exit::FAILURE,
                message: format!(
                    "refusing to take lab `{lab}` down without a confirmation: there is no terminal to ask on. Nothing was changed. It would lose:\n{}",
                    losses.iter().map(|l| format!("  - {l}")).collect::<Vec<_>>().join("\n")
                ),
                help: Some("run it again with --yes to confirm (`--dry-run` shows each step first)".into()),
            }
            .into());
        }
        if !ask_yes(&question) {
            return Err(Exit {
                code: exit::FAILURE,
                message: format!("lab `{lab}` was not taken down: nothing was changed"),
                help: None,
            }
            .into());
        }
    }
    out.status(format!(
        "{} lab `{lab}`",
        if args.dry_run {
            "Checking the steps that would take down (dry run)"
        } else {
            "Taking down"
        }
    ));
    let progress = StepProgress::new(
        out,
        loaded.lab.cluster.nodes.iter().map(|n| n.name.as_str()),
    );
    match block_on(homelab_ops::down::down(
        &global.file,
        &loaded,
        &plan,
        &options,
        &progress,
    ))? {
        Ok(report) => {
            let data = data(&report, None);
            out.result(
                || {
                    let mut text = steps_text(&report.steps);
                    text.push_str(&if report.dry_run {
                        "Dry run: nothing was changed.".to_string()
                    } else {
                        format!(
                            "Lab `{lab}` is down. `homelab up` brings it back from the spec and the secrets file."
                        )
                    });
                    text
                },
                &data,
            );
            Ok(exit::OK)
        }
        Err(failure) => {
            if out.is_json() {
                out.json(&data(&failure.report, Some(&failure)));
                return Ok(exit::FAILURE);
            }
            Err(Exit {
                code: exit::FAILURE,
                message: failure.to_string(),
                help: Some(format!(
                    "fix that, then run `homelab down` again: what is already gone stays gone, and each step checks again (`{}` does this step alone)",
                    failure.step.command()
                )),
            }
            .into())
        }
    }
}

fn data(report: &DownReport, failure: Option<&DownFailure>) -> serde_json::Value {
    let mut data = json!({
        "ok": failure.is_none(),
        "exitCode": if failure.is_none() { exit::OK } else { exit::FAILURE },
        "lab": report.lab,
        "dryRun": report.dry_run,
        "steps": steps_json(&report.steps),
        "journalRemoved": report.journal_removed,
    });
    if let Some(f) = failure {
        data["failedStep"] = json!(f.step.id());
        data["error"] = json!(f.error.to_string());
    }
    if let Some(nodes) = &report.nodes {
        data["nodes"] = report_json("down", nodes, &[], report.dry_run, None)["hosts"].clone();
    }
    data
}
