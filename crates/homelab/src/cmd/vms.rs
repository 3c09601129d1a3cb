//! `homelab vms plan|apply|destroy`: parses the flags, calls `homelab_ops::vms` once (the plan
//! read from the Proxmox host, then apply or destroy) and prints the plan or the report.

use std::time::Duration;

use clap::{Args, Subcommand};
use homelab_ops::vms::{self, ApplyOptions};
use serde_json::json;

use crate::cli::Global;
use crate::cmd::shared::cluster::runtime;
use crate::cmd::shared::format::parse_duration;
use crate::cmd::shared::spec;
use crate::cmd::shared::vms::{
    confirm, connect, destroy_text, plan_text, progress, proxmox, report_text, vm_error,
};
use crate::exit::{self, Exit};
use crate::output::Output;

#[derive(Debug, Args)]
pub struct VmsArgs {
    #[command(subcommand)]
    pub command: VmsCommand,
}

#[derive(Debug, Subcommand)]
pub enum VmsCommand {
    /// Compare the nodes' `vm:` with the Proxmox host: what would be cloned, adopted,
    /// changed, grown, started, and what waits for a reboot. Changes nothing.
    Plan,
    /// Make the template once, clone and set up each node's VM, grow its disk, start it, and
    /// wait until its guest agent reports the node's address and SSH answers.
    ///
    /// Safe to re-run: a VM with the node's name is adopted and reconciled, and an unchanged
    /// lab only checks that every guest answers. Disks are never shrunk.
    Apply(ApplyArgs),
    /// Stop and remove the VMs carrying the lab's tag, with their disks; nothing else.
    ///
    /// Asks on a terminal; needs --yes otherwise. Templates are kept.
    Destroy(DestroyArgs),
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Reboot running VMs whose changes (cores, memory, cloud-init) wait for a boot; without
    /// it they are set and listed.
    #[arg(long)]
    pub reboot: bool,
    /// How long each guest may take until its agent reports the address and SSH answers.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub ready_timeout: Duration,
    /// How long one Proxmox task (clone, resize, start, the image download) may run.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration)]
    pub task_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Destroy without asking.
    #[arg(long)]
    pub yes: bool,
}

pub fn run(global: &Global, args: &VmsArgs, out: &Output) -> anyhow::Result<u8> {
    let loaded = spec::load_valid(&global.file, out)?;
    let px = proxmox(&loaded.lab)?;
    let client = connect(global, &loaded, out)?;
    let lab = &loaded.lab;
    let rt = runtime()?;
    out.status(format!("reading the VMs on {}", px.endpoint));
    match &args.command {
        VmsCommand::Plan => {
            let plan = rt
                .block_on(vms::plan_live(&client, lab))
                .map_err(vm_error)?;
            out.answer(|| plan_text(&plan), &plan);
            Ok(exit::OK)
        }
        VmsCommand::Apply(a) => {
            let plan = rt
                .block_on(vms::plan_live(&client, lab))
                .map_err(vm_error)?;
            let opts = ApplyOptions {
                reboot: a.reboot,
                ready_timeout: a.ready_timeout,
                task_timeout: a.task_timeout,
                download_timeout: a.task_timeout,
                ..ApplyOptions::default()
            };
            let events = progress(out);
            let report = rt
                .block_on(vms::apply(&client, &plan, &opts, &events))
                .map_err(|failed| Exit::new(exit::FAILURE, failed.to_string()))?;
            out.result(
                || report_text(&report),
                &json!({"plan": plan, "report": report}),
            );
            Ok(exit::OK)
        }
        VmsCommand::Destroy(d) => {
            let observed = rt.block_on(vms::observe(&client, lab)).map_err(vm_error)?;
            let plan = vms::plan_destroy(lab, &observed);
            if plan.vms.is_empty() {
                out.result(
                    || destroy_text(&plan),
                    &json!({"plan": plan, "destroyed": []}),
                );
                return Ok(exit::OK);
            }
            let names: Vec<String> = plan
                .vms
                .iter()
                .map(|v| format!("{} ({})", v.name, v.vmid))
                .collect();
            let question = format!(
                "Destroy {} VM{} of lab `{}` on {} with their disks: {}? This cannot be undone.",
                plan.vms.len(),
                if plan.vms.len() == 1 { "" } else { "s" },
                lab.name,
                plan.endpoint,
                names.join(", ")
            );
            if !out.is_json() {
                out.status(destroy_text(&plan).trim_end());
            }
            if !confirm(d.yes, &question)? {
                out.result(
                    || "Nothing was destroyed.".to_string(),
                    &json!({"plan": plan, "destroyed": [], "cancelled": true}),
                );
                return Ok(exit::FAILURE);
            }
            let events = progress(out);
            let report = rt
                .block_on(vms::destroy(
                    &client,
                    &plan,
                    &ApplyOptions::default(),
                    &events,
                ))
                .map_err(|failed| Exit::new(exit::FAILURE, failed.to_string()))?;
            out.result(
                || {
                    report
                        .destroyed
                        .iter()
                        .map(|v| format!("{} ({}): destroyed\n", v.name, v.vmid))
                        .collect()
                },
                &json!({"plan": plan, "destroyed": report.destroyed}),
            );
            Ok(exit::OK)
        }
    }
}
