//! `homelab plan`: shows what the lab is made of (components in apply order, objects, Helm
//! releases, URLs, node actions, secrets needed) without touching anything.

use std::fmt::Write as _;

use homelab_plan::{Plan, SecretGenerator};
use serde_json::{Value, json};

use crate::cli::Global;
use crate::cmd::shared::spec;
use crate::exit;
use crate::output::Output;

pub fn run(global: &Global, out: &Output) -> anyhow::Result<u8> {
    let loaded = spec::load_valid(&global.file, out)?;
    let plan = homelab_plan::plan(&loaded.lab);
    // The JSON document is only built when it is asked for: for thousands of apps it costs
    // as much as the plan itself.
    let lab = &loaded.lab;
    if out.is_json() {
        let mut d = data(&plan);
        if lab.proxmox.is_some() {
            d["vms"] = serde_json::to_value(homelab_ops::vms::desired(lab))?;
        }
        out.answer(String::new, &d);
    } else {
        out.answer(|| text(&plan) + &vms_text(lab), &());
    }
    Ok(exit::OK)
}

fn generator(g: &SecretGenerator) -> String {
    match g {
        SecretGenerator::Password { length } => format!("generated password ({length} chars)"),
        SecretGenerator::Hex { bytes } => format!("generated key ({bytes} bytes, hex)"),
        SecretGenerator::Htpasswd {
            user,
            password_secret,
        } => format!("htpasswd line for `{user}` from {password_secret}"),
        SecretGenerator::Argon2id { password_secret } => {
            format!("argon2id hash of {password_secret}")
        }
        SecretGenerator::UserProvided => "you provide it".to_string(),
        SecretGenerator::CaKey => "generated CA key (ECDSA P-256)".to_string(),
        SecretGenerator::CaCertificate {
            key_secret, days, ..
        } => {
            format!("self-signed CA certificate from {key_secret} ({days} days)")
        }
    }
}

fn text(plan: &Plan) -> String {
    let (components, objects, releases) = homelab_plan::summary_counts(plan);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Lab `{}` ({}): {components} components, {objects} objects, {releases} Helm releases\n",
        plan.lab_name, plan.domain
    );
    let _ = writeln!(o, "Components, in apply order:");
    for (i, c) in plan.components.iter().enumerate() {
        let ns = c
            .namespace
            .as_deref()
            .map_or("no namespace".to_string(), |n| format!("namespace {n}"));
        let _ = writeln!(o, "{:>3}. {} ({}, {ns})", i + 1, c.name, c.dir());
        if !c.depends_on.is_empty() {
            let _ = writeln!(o, "       after: {}", c.depends_on.join(", "));
        }
        for r in &c.releases {
            let _ = writeln!(
                o,
                "       helm: {} <- chart {} {} from {} (into {})",
                r.name, r.chart.name, r.chart.version, r.chart.repo, r.namespace
            );
        }
        for ov in &c.overrides {
            if ov.version != ov.pinned_version {
                let _ = writeln!(
                    o,
                    "       version of {}: {} (homelab pins {})",
                    ov.release, ov.version, ov.pinned_version
                );
            }
            if !ov.changes.is_empty() {
                let _ = writeln!(
                    o,
                    "       values of {} changed by homelab.yaml:",
                    ov.release
                );
                for change in &ov.changes {
                    let _ = writeln!(o, "         {}", change.describe());
                }
            }
        }
        for ob in &c.objects {
            let _ = writeln!(o, "       {} {}  [{}]", ob.kind(), ob.name(), ob.file);
        }
        for p in &c.patches {
            let ops = p.operations.as_array().map_or(0, Vec::len);
            let _ = writeln!(
                o,
                "       patched: {} {} by manifests {} ({ops} operation{})",
                p.target.kind,
                p.target.name,
                p.file,
                if ops == 1 { "" } else { "s" }
            );
        }
        for s in &c.secret_objects {
            let _ = writeln!(
                o,
                "       Secret {} (created at apply time; keys: {})",
                s.name,
                s.data.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        for f in &c.files {
            let _ = writeln!(o, "       file {}", f.path);
        }
    }
    let urls: Vec<_> = plan.urls().collect();
    if !urls.is_empty() {
        let _ = writeln!(o, "\nURLs:");
        for e in urls {
            let _ = writeln!(o, "  {}  {}", e.url, e.description);
        }
    }
    let _ = writeln!(o, "\nNodes:");
    for n in &plan.nodes {
        let _ = writeln!(
            o,
            "  {} ({}{}, {}):",
            n.name,
            n.role,
            if n.init { ", cluster-init" } else { "" },
            n.address
        );
        for a in &n.actions {
            let _ = writeln!(o, "    - {a}");
        }
    }
    let _ = writeln!(
        o,
        "\nSecrets the lab needs (values live in secrets.sops.yaml; `homelab secrets init` creates them):"
    );
    for s in &plan.secrets {
        let _ = writeln!(
            o,
            "  {}: {}; used by {}. {}",
            s.name,
            generator(&s.generator),
            s.used_by.iter().cloned().collect::<Vec<_>>().join(", "),
            s.description
        );
    }
    o
}

/// The nodes' VMs as the spec wants them; the host is only read by `homelab vms plan`.
fn vms_text(lab: &homelab_spec::lab::Lab) -> String {
    let Some(px) = &lab.proxmox else {
        return String::new();
    };
    let template = match &px.template {
        homelab_spec::lab::VmTemplate::Vmid { vmid } => format!("template {vmid}"),
        homelab_spec::lab::VmTemplate::Image { url, .. } => format!("a template made from {url}"),
    };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\nVMs on Proxmox VE {} (clones of {template}; `homelab vms plan` compares them with the host):",
        px.endpoint
    );
    for v in homelab_ops::vms::desired(lab) {
        let id = v
            .vmid
            .map_or_else(|| "next free VMID".to_string(), |i| format!("VMID {i}"));
        let _ = writeln!(
            o,
            "  {}: {} cores, {} MiB, {} GiB disk, on {}, {id}, address {}",
            v.name, v.cores, v.memory_mib, v.disk_gib, v.node, v.address
        );
    }
    o
}

fn data(plan: &Plan) -> Value {
    let components: Vec<Value> = plan
        .components
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "layer": c.layer,
                "directory": c.dir(),
                "namespace": c.namespace,
                "dependsOn": c.depends_on,
                "releases": c.releases.iter().map(|r| json!({
                    "name": r.name,
                    "namespace": r.namespace,
                    "chart": r.chart.name,
                    "version": r.chart.version,
                    "repository": r.chart.repo,
                })).collect::<Vec<_>>(),
                "objects": c.objects.iter().map(|o| json!({
                    "apiVersion": o.api_version(),
                    "kind": o.kind(),
                    "namespace": o.namespace(),
                    "name": o.name(),
                    "file": o.file,
                })).collect::<Vec<_>>(),
                "secrets": c.secret_objects.iter().map(|s| json!({
                    "name": s.name,
                    "namespace": s.namespace,
                    "keys": s.data.keys().collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "files": c.files.iter().map(|f| &f.path).collect::<Vec<_>>(),
                "patches": c.patches.iter().map(|p| json!({
                    "file": p.file,
                    "target": p.target,
                    "operations": p.operations,
                })).collect::<Vec<_>>(),
                "overrides": c.overrides.iter().map(|ov| json!({
                    "release": ov.release,
                    "chart": ov.chart,
                    "pinnedVersion": ov.pinned_version,
                    "version": ov.version,
                    "changes": ov.changes.iter().map(|ch| json!({
                        "path": ch.path,
                        "change": ch.describe(),
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "endpoints": c.endpoints,
                "backups": c.backups,
            })
        })
        .collect();
    json!({
        "lab": plan.lab_name,
        "domain": plan.domain,
        "components": components,
        "urls": plan.urls().collect::<Vec<_>>(),
        "nodes": plan.nodes.iter().map(|n| json!({
            "name": n.name,
            "role": n.role,
            "address": n.address,
            "init": n.init,
            "actions": n.actions,
        })).collect::<Vec<_>>(),
        "secrets": plan.secrets.iter().map(|s| json!({
            "name": s.name,
            "generator": s.generator,
            "usedBy": s.used_by,
            "description": s.description,
        })).collect::<Vec<_>>(),
    })
}
