//! `homelab dns plan|apply`: parses the flags, calls `homelab_ops::dns` once (the records the
//! lab wants against the provider's, then apply) and prints the plan or what was done. Never
//! prints the provider's credential.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use homelab_dns::Change;
use homelab_ops::dns::{self, DnsOpError, DnsPlan};
use serde_json::json;

use crate::cli::Global;
use crate::cmd::shared::cluster::runtime;
use crate::cmd::shared::secrets::{LabFiles, open_store};
use crate::cmd::shared::spec;
use crate::exit::{self, Exit};
use crate::output::Output;

/// Replaces the address of a hosted DNS API (NextDNS, Cloudflare): a mirror or a test's
/// stand-in. Pi-hole and AdGuard Home are reached at the spec's `url`.
const API_ENV: &str = "HOMELAB_DNS_API";

#[derive(Debug, Args)]
pub struct DnsArgs {
    #[command(subcommand)]
    pub command: DnsCommand,
}

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Compare the records the lab wants (`network.dns`: the wildcard or each host at the
    /// ingress address) with the provider's, and say what `apply` would change. Changes
    /// nothing. With `provider: manual` (or no API settings) it prints the records to create.
    Plan,
    /// Create, point or remove the lab's records at the provider; a second run changes nothing.
    ///
    /// Only records homelab made are ever changed or removed. A record it did not make where
    /// the lab wants one is a conflict: nothing is changed, and the message says what to fix.
    Apply,
}

pub fn run(global: &Global, args: &DnsArgs, out: &Output) -> anyhow::Result<u8> {
    let loaded = spec::load_valid(&global.file, out)?;
    let lab = &loaded.lab;
    let plan = homelab_plan::plan(lab);
    let base = std::env::var(API_ENV).ok().filter(|b| !b.is_empty());
    let client = if lab.network.dns.api.is_some() {
        let store = open_store(&LabFiles::of(&global.file), out)?;
        dns::connect(lab, &store, base.as_deref()).map_err(op_error)?
    } else {
        None
    };
    let rt = runtime()?;
    if let Some(c) = &client {
        out.status(format!(
            "reading the records at {} ({})",
            c.provider(),
            c.target()
        ));
    }
    let p = rt
        .block_on(dns::plan(lab, &plan, client.as_ref(), &global.file))
        .map_err(op_error)?;
    match (&args.command, &client) {
        (DnsCommand::Plan, _) | (DnsCommand::Apply, None) => {
            out.answer(|| plan_text(&p), &p);
            Ok(exit::OK)
        }
        (DnsCommand::Apply, Some(c)) => {
            let report = rt
                .block_on(dns::apply(c, &p, &global.file))
                .map_err(op_error)?;
            out.result(
                || {
                    if report.done.is_empty() {
                        format!(
                            "{}: the lab's records are in place; nothing changed",
                            p.provider
                        )
                    } else {
                        let mut s =
                            format!("{} ({}):", p.provider, p.target.as_deref().unwrap_or(""));
                        for c in &report.done {
                            let _ = write!(s, "\n  {}", change_line(c));
                        }
                        s
                    }
                },
                &json!({"plan": p, "report": report}),
            );
            Ok(exit::OK)
        }
    }
}

fn op_error(e: DnsOpError) -> anyhow::Error {
    let code = match &e {
        DnsOpError::Secret { .. } => exit::USAGE,
        _ => exit::FAILURE,
    };
    Exit::new(code, e.to_string()).into()
}

fn change_line(c: &Change) -> String {
    match c {
        Change::Create { record } => format!("+ {record}"),
        Change::Update { existing, record } => {
            format!(
                "~ {} A {} -> {}",
                record.name, existing.answer, record.address
            )
        }
        Change::Delete { existing } => {
            format!("- {} {} {}", existing.name, existing.kind, existing.answer)
        }
    }
}

fn plan_text(p: &DnsPlan) -> String {
    let mut s = String::new();
    let Some(live) = &p.live else {
        let _ = writeln!(
            s,
            "Create these records at {} (homelab has no API settings for it in `network.dns`):",
            if p.provider == "manual" {
                "your DNS server"
            } else {
                &p.provider
            }
        );
        for l in &p.zone_lines {
            let _ = write!(s, "\n  {l}");
        }
        return s;
    };
    let _ = write!(s, "{} ({}):", p.provider, p.target.as_deref().unwrap_or(""));
    for c in &live.changes {
        let _ = write!(s, "\n  {}", change_line(c));
    }
    for r in &live.in_place {
        let mine = if live.not_owned.contains(r) {
            " (not made by homelab; left alone)"
        } else {
            ""
        };
        let _ = write!(s, "\n  = {r}{mine}");
    }
    for c in &live.conflicts {
        let _ = write!(s, "\n  ! {}", c.reason);
    }
    if !live.conflicts.is_empty() {
        let _ = write!(
            s,
            "\n\n`homelab dns apply` will refuse: homelab never changes or removes a record it did not make. Fix these at {} first; see docs/runbooks/dns-record-conflict.md",
            p.provider
        );
    } else if live.changes.is_empty() {
        s.push_str("\n\nnothing to change");
    } else {
        let _ = write!(
            s,
            "\n\n{} change{}; `homelab dns apply` makes them",
            live.changes.len(),
            if live.changes.len() == 1 { "" } else { "s" }
        );
    }
    s
}
