//! `homelab status`: the plan's health checks, one concurrent `homelab-kube` status pass, and
//! its report as a one-screen table or JSON. Exits 0 healthy, 1 unhealthy (each problem with
//! what to do), 2 when the cluster cannot be reached. Reads no secrets file (of the cluster's
//! Secrets only the root CA's certificate, for its expiry) and writes nothing.

use clap::Args;
use homelab_kube::{Cluster, Health, StatusOptions, StatusReport};
use serde_json::json;

use crate::cli::Global;
use crate::cmd::shared::checks::UrlCheckArgs;
use crate::cmd::shared::cluster::{ClusterArgs, RetryLines, connect_error, runtime};
use crate::cmd::shared::format::table as columns;
use crate::cmd::shared::spec;
use crate::exit;
use crate::output::Output;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub urls: UrlCheckArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub fn run(global: &Global, args: &StatusArgs, out: &Output) -> anyhow::Result<u8> {
    let loaded = spec::load_valid(&global.file, out)?;
    let plan = homelab_plan::plan(&loaded.lab);
    let lab = &loaded.lab.name;
    let checks = homelab_ops::cluster_plan::status_checks(&plan);

    let tls = args.urls.tls(&checks)?;

    let rt = runtime()?;
    let cluster = rt
        .block_on(Cluster::load(&args.cluster.source(lab)))
        .map_err(|e| connect_error(e, exit::USAGE))?;
    let options = StatusOptions {
        tls,
        retry: args.cluster.retry(),
        ..StatusOptions::default()
    };
    let report = rt.block_on(cluster.status_with(&checks, &options, &RetryLines(out)));
    let code = match report.health {
        Health::Healthy => exit::OK,
        Health::Unhealthy => exit::FAILURE,
        Health::Unreachable => exit::USAGE,
    };
    let mut data = serde_json::to_value(&report).expect("the report serializes");
    if let Some(map) = data.as_object_mut() {
        map.insert("ok".into(), json!(code == exit::OK));
        map.insert("exitCode".into(), json!(code));
        map.insert("lab".into(), json!(lab));
    }
    out.result(|| table(lab, &report), &data);
    Ok(code)
}

/// Problems listed in the table; more would push the rest off one screen (a lab that is
/// down entirely has dozens, all following from the first few).
const MAX_PROBLEMS_SHOWN: usize = 10;

fn mark(ok: bool) -> &'static str {
    if ok { "ok" } else { "FAIL" }
}

/// The report as a table a person reads in one screen: a headline, nodes, components, URLs,
/// backups, then each problem with what to do.
fn table(lab: &str, report: &StatusReport) -> String {
    let verdict = match report.health {
        Health::Healthy => "healthy".to_string(),
        Health::Unhealthy => format!("UNHEALTHY ({} problems)", report.problems.len()),
        Health::Unreachable => "UNREACHABLE".to_string(),
    };
    let mut text = format!(
        "Lab `{lab}`: {verdict}, API {}{}\n",
        report.server,
        report
            .version
            .as_deref()
            .map(|v| format!(" ({v})"))
            .unwrap_or_default()
    );
    if !report.nodes.is_empty() {
        let mut rows = vec![vec![
            "NODE".into(),
            "READY".into(),
            "VERSION".into(),
            "PRESSURE".into(),
        ]];
        let gpus = report.nodes.iter().any(|n| n.gpu.is_some());
        if gpus {
            rows[0].push("GPUS (IN USE/OFFERED)".into());
        }
        for n in &report.nodes {
            let mut row = vec![
                n.name.clone(),
                if !n.present {
                    "missing".into()
                } else {
                    mark(n.ready).into()
                },
                n.kubelet_version.clone(),
                n.pressure.join(","),
            ];
            if gpus {
                row.push(match &n.gpu {
                    Some(g) if g.pods.is_empty() => format!("{}/{}", g.in_use, g.allocatable),
                    Some(g) => format!("{}/{}: {}", g.in_use, g.allocatable, g.pods.join(", ")),
                    None => String::new(),
                });
            }
            rows.push(row);
        }
        text.push('\n');
        text.push_str(&columns(&rows));
    }
    if !report.components.is_empty() {
        let mut rows = vec![vec![
            "COMPONENT".into(),
            "NAMESPACE".into(),
            "HEALTH".into(),
            "CHECKS".into(),
        ]];
        for c in &report.components {
            let passed = c.checks.iter().filter(|k| k.ok).count();
            let first_failure = c
                .checks
                .iter()
                .find(|k| !k.ok)
                .map(|k| format!(": {} {}", k.what, k.detail))
                .unwrap_or_default();
            rows.push(vec![
                c.name.clone(),
                c.namespace.clone(),
                mark(c.healthy).into(),
                format!("{passed}/{} passed{first_failure}", c.checks.len()),
            ]);
        }
        text.push('\n');
        text.push_str(&columns(&rows));
    }
    if !report.urls.is_empty() {
        let mut rows = vec![vec!["URL".into(), "HEALTH".into(), "DETAIL".into()]];
        for u in &report.urls {
            let detail = match (&u.error, u.http_status) {
                (Some(e), _) => e.clone(),
                (None, Some(s)) => {
                    format!("HTTP {s}, {}", u.tls_version.as_deref().unwrap_or("TLS ?"))
                }
                (None, None) => "no answer".into(),
            };
            rows.push(vec![u.url.clone(), mark(u.ok).into(), detail]);
        }
        text.push('\n');
        text.push_str(&columns(&rows));
    }
    if !report.backups.is_empty() {
        let mut rows = vec![vec!["BACKUP".into(), "HEALTH".into(), "DETAIL".into()]];
        for b in &report.backups {
            rows.push(vec![
                format!("{}/{}", b.namespace, b.cronjob),
                mark(b.ok).into(),
                b.detail.clone(),
            ]);
        }
        text.push('\n');
        text.push_str(&columns(&rows));
    }
    if !report.alerts.is_empty() {
        let mut rows = vec![vec!["ALERT".into(), "HEALTH".into(), "DETAIL".into()]];
        for a in &report.alerts {
            rows.push(vec![a.alert.clone(), mark(a.ok).into(), a.detail.clone()]);
        }
        text.push('\n');
        text.push_str(&columns(&rows));
    }
    if !report.problems.is_empty() {
        text.push_str("\nProblems:\n");
        for (i, p) in report.problems.iter().take(MAX_PROBLEMS_SHOWN).enumerate() {
            text.push_str(&format!(
                "{:>2}. {}: {}\n    fix: {}\n",
                i + 1,
                p.subject,
                p.problem,
                p.fix
            ));
        }
        if report.problems.len() > MAX_PROBLEMS_SHOWN {
            text.push_str(&format!(
                "... and {} more: `homelab status --output json` lists every problem with its fix\n",
                report.problems.len() - MAX_PROBLEMS_SHOWN
            ));
        }
    }
    text
}
