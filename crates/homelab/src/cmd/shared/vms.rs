//! What the commands that show or change the lab's Proxmox VMs share: logging in with the
//! secret from secrets.sops.yaml, VM events as progress lines, plans and reports as text, and
//! the operation's errors as exit codes. Never prints the token or password.

use std::fmt::Write as _;
use std::io::IsTerminal as _;

use homelab_ops::vms::{
    self, DestroyPlan, TemplatePlan, VmAction, VmChange, VmError, VmEvent, VmPlan, VmReport,
};
use homelab_proxmox::Client;
use homelab_secrets::SecretsStore;
use homelab_spec::LoadedSpec;
use homelab_spec::lab::{Lab, Proxmox};

use super::secrets::{LabFiles, fail, identities, opened_with};
use crate::cli::Global;
use crate::exit::{self, Exit};
use crate::output::Output;

/// The spec's `proxmox:` section, or a usage error saying how to add one.
pub(crate) fn proxmox(lab: &Lab) -> anyhow::Result<&Proxmox> {
    lab.proxmox.as_ref().ok_or_else(|| {
        exit::usage_help(
            "the spec has no `proxmox:` section, so no node has a VM",
            "add `proxmox:` (endpoint, node, tokenId + tokenSecret or user + password, template, sshKeys) and a `vm:` under each node that runs on it",
        )
    })
}

/// A client logged in with the spec's credentials, the secret read from the lab's file.
pub(crate) fn connect(
    global: &Global,
    loaded: &LoadedSpec,
    out: &Output,
) -> anyhow::Result<Client> {
    let px = proxmox(&loaded.lab)?;
    let files = LabFiles::of(&global.file);
    let ids = identities(loaded.lab.secrets.vault.as_ref(), out)?;
    let store = SecretsStore::open(&files.store, &ids).map_err(fail)?;
    opened_with(&files.store, store.opened_with(), out);
    vms::connect(px, &store).map_err(vm_error)
}

/// A library error with its exit code: a plan that cannot be carried out or a host that
/// fails is 1, a missing secret or section is 2.
pub(crate) fn vm_error(e: VmError) -> anyhow::Error {
    let code = match &e {
        VmError::NoProxmox | VmError::Secret { .. } => exit::USAGE,
        _ => exit::FAILURE,
    };
    Exit::new(code, e.to_string()).into()
}

/// A VM event as a progress line.
pub(crate) fn progress(out: &Output) -> impl Fn(VmEvent) + Send + Sync + '_ {
    move |e| match e {
        VmEvent::Started { vm, step } => out.status(format!("{vm}: {step}")),
        VmEvent::Retrying {
            vm,
            step,
            attempt,
            wait,
            reason,
        } => out.status(format!(
            "{vm}: {step}: retrying in {:.1}s (attempt {attempt} failed: {reason})",
            wait as f64 / 1000.0
        )),
        VmEvent::Finished { vm, step } => out.detail(format!("{vm}: done: {step}")),
    }
}

fn shown(key: &str, value: &str) -> String {
    match key {
        // Percent-encoded public keys: their count says enough.
        "sshkeys" => {
            let n = value.matches("%0A").count() + 1;
            format!("{n} key{}", if n == 1 { "" } else { "s" })
        }
        _ => value.to_string(),
    }
}

fn change_line(v: &VmChange) -> String {
    let id = v
        .vmid
        .map_or_else(|| "new VMID".to_string(), |i| i.to_string());
    let mut parts = Vec::new();
    match v.action {
        VmAction::Create => parts.push("clone from the template".to_string()),
        VmAction::Adopt => parts.push("adopt (tag it as the lab's)".to_string()),
        VmAction::Update | VmAction::Keep => {}
    }
    let set: Vec<String> = v
        .settings
        .iter()
        .filter(|s| s.key != "tags" || v.action != VmAction::Create)
        .map(|s| match &s.from {
            Some(from) if v.action != VmAction::Create => {
                format!(
                    "{} {} -> {}",
                    s.key,
                    shown(&s.key, from),
                    shown(&s.key, &s.to)
                )
            }
            _ => format!("{}={}", s.key, shown(&s.key, &s.to)),
        })
        .collect();
    if !set.is_empty() {
        parts.push(format!("set {}", set.join(", ")));
    }
    if let Some(g) = &v.grow {
        parts.push(match g.from_gib {
            Some(from) => format!("grow {} {from} -> {} GiB", g.disk, g.to_gib),
            None => format!("grow {} to {} GiB", g.disk, g.to_gib),
        });
    }
    if v.start {
        parts.push("start".into());
    }
    if parts.is_empty() {
        parts.push("as the spec says".into());
    }
    let mut line = format!("  {} ({id}, on {}): {}", v.name, v.node, parts.join("; "));
    if !v.needs_reboot.is_empty() {
        let _ = write!(
            line,
            "\n      after a reboot: {}",
            v.needs_reboot.join(", ")
        );
    }
    line
}

/// A plan for people.
pub(crate) fn plan_text(plan: &VmPlan) -> String {
    let mut o = String::new();
    let template = match &plan.template {
        TemplatePlan::Existing { vmid, .. } => format!("template {vmid}"),
        TemplatePlan::Make(m) if plan.needs_template() => {
            let mut steps = Vec::new();
            if m.download {
                steps.push(format!("download {} to {}", m.url, m.image_volume));
            }
            if m.create {
                steps.push(format!("create VM {}", m.name));
            }
            steps.push("convert it to a template".into());
            format!("template {} to make: {}", m.name, steps.join(", "))
        }
        TemplatePlan::Make(m) => format!("template {} (not needed: no VM is cloned)", m.name),
    };
    let _ = writeln!(
        o,
        "VMs on {} (tag {}), {template}:",
        plan.endpoint, plan.tag
    );
    for v in &plan.vms {
        let _ = writeln!(o, "{}", change_line(v));
    }
    if !plan.writes() {
        let _ = writeln!(o, "\nNothing to change.");
    }
    let waiting: Vec<String> = plan
        .awaiting_reboot()
        .map(|v| format!("{} ({})", v.name, v.needs_reboot.join(", ")))
        .collect();
    if !waiting.is_empty() {
        let _ = writeln!(
            o,
            "\nRunning VMs take some changes only at a reboot: {}; `homelab vms apply --reboot` reboots them.",
            waiting.join("; ")
        );
    }
    o
}

/// A report for people.
pub(crate) fn report_text(r: &VmReport) -> String {
    let mut o = String::new();
    if r.template_made
        && let Some(t) = r.template
    {
        let _ = writeln!(o, "template {t}: made");
    }
    for v in &r.vms {
        let id = v.vmid.map(|i| format!(" ({i})")).unwrap_or_default();
        let done = if v.done.is_empty() {
            "unchanged".to_string()
        } else {
            v.done.join(", ")
        };
        let ready = if v.ready {
            format!("; agent reports {}, SSH answers", v.address)
        } else {
            String::new()
        };
        let _ = writeln!(o, "{}{id}: {done}{ready}", v.name);
        if !v.awaiting_reboot.is_empty() {
            let _ = writeln!(
                o,
                "    waits for a reboot to take {}: `homelab vms apply --reboot`",
                v.awaiting_reboot.join(", ")
            );
        }
    }
    o
}

/// The destroy plan for people.
pub(crate) fn destroy_text(plan: &DestroyPlan) -> String {
    let mut o = String::new();
    if plan.vms.is_empty() {
        let _ = writeln!(
            o,
            "No VM on {} carries the tag {}.",
            plan.endpoint, plan.tag
        );
    } else {
        let _ = writeln!(
            o,
            "VMs on {} with the tag {} (destroyed with their disks):",
            plan.endpoint, plan.tag
        );
        for v in &plan.vms {
            let state = if v.running { "running" } else { "stopped" };
            let _ = writeln!(o, "  {} ({}, on {}, {state})", v.name, v.vmid, v.node);
        }
    }
    for v in &plan.untagged {
        let _ = writeln!(
            o,
            "  kept: {} ({}) has a node's name but not the tag",
            v.name, v.vmid
        );
    }
    o
}

/// Yes with `--yes`; asked on a terminal; refused (exit 1, nothing changed) otherwise.
pub(crate) fn confirm(yes: bool, question: &str) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Exit::new(
            exit::FAILURE,
            format!(
                "refusing to destroy VMs without a confirmation: there is no terminal to ask on. The question was: {question} Nothing was changed; run it again with --yes to confirm."
            ),
        )
        .into());
    }
    Ok(crate::output::ask_yes(question))
}
