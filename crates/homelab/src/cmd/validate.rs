//! `homelab validate`: reads the spec and reports every problem with its place and a fix.

use serde_json::json;

use crate::cli::Global;
use crate::exit;
use crate::output::Output;
use crate::spec_file;

pub fn run(global: &Global, out: &Output) -> anyhow::Result<u8> {
    let name = global.file.display().to_string();
    match spec_file::read(&global.file)? {
        Ok(loaded) => {
            out.diagnostics(&loaded.source.render(&loaded.warnings));
            let lab = &loaded.lab;
            let services = count_services(lab);
            for n in &lab.cluster.nodes {
                out.detail(format!("node {} ({:?}) at {}", n.name, n.role, n.address));
            }
            out.result(
                || {
                    let warnings = match loaded.warnings.len() {
                        0 => String::new(),
                        n => format!(" with {}", count(n, "warning")),
                    };
                    format!(
                        "{name} is valid{warnings}: lab `{}`, {}, {}, {}",
                        lab.name,
                        count(lab.cluster.nodes.len(), "node"),
                        count(services, "service"),
                        count(lab.apps.len(), "app"),
                    )
                },
                &json!({
                    "file": name,
                    "valid": true,
                    "errors": 0,
                    "warnings": loaded.warnings.len(),
                    "diagnostics": loaded.source.to_json(&loaded.warnings),
                    "lab": {
                        "name": lab.name,
                        "nodes": lab.cluster.nodes.len(),
                        "services": services,
                        "apps": lab.apps.len(),
                    },
                }),
            );
            Ok(exit::OK)
        }
        Err(invalid) => {
            out.diagnostics(&invalid.render());
            let errors = invalid.errors().count();
            out.result(
                || {
                    format!(
                        "{name} is not valid: {}",
                        homelab_spec::summary(&invalid.diagnostics)
                    )
                },
                &json!({
                    "file": name,
                    "valid": false,
                    "errors": errors,
                    "warnings": invalid.diagnostics.len() - errors,
                    "diagnostics": invalid.file.to_json(&invalid.diagnostics),
                }),
            );
            Ok(exit::USAGE)
        }
    }
}

/// "1 node", "3 nodes".
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn count_services(lab: &homelab_spec::Lab) -> usize {
    let s = &lab.services;
    [
        s.monitoring.is_some(),
        s.logging.is_some(),
        s.postgres.is_some(),
        s.ollama.is_some(),
        s.n8n.is_some(),
        s.paperless.is_some(),
        s.dev_proxy.is_some(),
        !s.dev_containers.is_empty(),
    ]
    .iter()
    .filter(|b| **b)
    .count()
}
