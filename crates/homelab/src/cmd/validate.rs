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
                        n => format!(" with {n} warning{}", if n == 1 { "" } else { "s" }),
                    };
                    format!(
                        "{name} is valid{warnings}: lab `{}`, {} nodes, {services} services, {} apps",
                        lab.name,
                        lab.cluster.nodes.len(),
                        lab.apps.len()
                    )
                },
                &json!({
                    "file": name,
                    "valid": true,
                    "errors": 0,
                    "warnings": loaded.warnings.len(),
                    "diagnostics": loaded.source.to_json(&loaded.warnings),
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
