//! `homelab diff`: the same inputs as `apply`, one `homelab-kube` diff call (server-side dry
//! run), and its unified diff on stdout or as JSON. Exits 0 when nothing would change, 1 when
//! something would, 2 when the diff could not be made. Secret values never reach the output:
//! the library replaces them with markers.

use clap::Args;
use homelab_kube::{Cluster, DiffOptions, DiffReport, ObjectChange};
use serde_json::json;

use homelab_ops::cluster_plan::component_of_unit;

use crate::cli::Global;
use crate::cmd::shared::cluster::{
    ClusterArgs, RetryLines, connect_error, load_cluster_plan, runtime,
};
use crate::exit::{self, Exit};
use crate::output::Output;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Also show what `homelab apply --prune` would delete.
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Any failure of `diff` ends with 2, so that 1 always means "there are changes".
fn failed(e: anyhow::Error) -> anyhow::Error {
    let message = e
        .chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    Exit {
        code: exit::USAGE,
        message,
        help: exit::help_of(&e).map(str::to_string),
    }
    .into()
}

pub fn run(global: &Global, args: &DiffArgs, out: &Output) -> anyhow::Result<u8> {
    let (loaded, _plan, cluster_plan) = load_cluster_plan(global, None, out).map_err(failed)?;
    let lab = &loaded.lab.name;
    let rt = runtime().map_err(failed)?;
    let retry = args.cluster.retry();
    let progress = RetryLines(out);
    let cluster = rt
        .block_on(Cluster::connect_with(
            &args.cluster.source(lab),
            &retry,
            &progress,
        ))
        .map_err(|e| connect_error(e, exit::USAGE))?;
    let options = DiffOptions {
        prune: args.prune,
        retry,
    };
    let report = rt
        .block_on(cluster.diff_with(&cluster_plan.apply, &options, &progress))
        .map_err(|e| failed(anyhow::anyhow!("cannot compute the diff: {e}")))?;
    let changes = report.has_changes();
    let code = if changes { exit::FAILURE } else { exit::OK };
    out.result(|| report.unified(), &report_json(lab, &report, code));
    out.status(summary(lab, &report));
    Ok(code)
}

fn summary(lab: &str, report: &DiffReport) -> String {
    let count = |c: ObjectChange| report.objects.iter().filter(|o| o.change == c).count();
    if !report.has_changes() {
        return format!(
            "No differences: the cluster matches lab `{lab}` ({} objects).",
            report.objects.len()
        );
    }
    format!(
        "`homelab apply` would create {}, update {} and leave {} unchanged{}.",
        count(ObjectChange::Create),
        count(ObjectChange::Update),
        count(ObjectChange::Unchanged),
        match count(ObjectChange::Delete) {
            0 => String::new(),
            n => format!("; `--prune` would delete {n}"),
        }
    )
}

fn report_json(lab: &str, report: &DiffReport, code: u8) -> serde_json::Value {
    let objects: Vec<serde_json::Value> = report
        .objects
        .iter()
        .map(|o| {
            json!({
                "component": o.unit.as_deref().map(component_of_unit),
                "unit": o.unit,
                "object": o.object,
                "change": o.change,
                "diff": o.diff,
            })
        })
        .collect();
    json!({
        "ok": true,
        "exitCode": code,
        "lab": lab,
        "changes": report.has_changes(),
        "objects": objects,
    })
}
