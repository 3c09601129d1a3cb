//! `homelab validate`: reads the spec and reports every problem with its place and a fix,
//! including secrets the spec uses that secrets.sops.yaml lacks (read without the key).

use homelab_ops::secrets::NamesCheck;
use serde_json::{Value, json};

use crate::cli::Global;
use crate::cmd::shared::secrets::fail;
use crate::cmd::shared::spec;
use crate::exit;
use crate::output::Output;

pub fn run(global: &Global, out: &Output) -> anyhow::Result<u8> {
    let name = global.file.display().to_string();
    match spec::read(&global.file)? {
        Ok(loaded) => {
            out.diagnostics(&loaded.source.render(&loaded.warnings));
            let secrets = check_secrets(&global.file, &loaded, out)?;
            if !secrets.missing.is_empty() {
                return Ok(missing_secrets(&name, &loaded, &secrets, out));
            }
            let lab = &loaded.lab;
            let services = count_services(lab);
            for n in &lab.cluster.nodes {
                out.detail(format!("node {} ({}) at {}", n.name, n.role, n.address));
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
                    "secrets": secrets_json(&secrets),
                }),
            );
            Ok(exit::OK)
        }
        Err(invalid) => {
            out.diagnostics(&invalid.render());
            let errors = invalid.errors().count();
            out.result(
                || format!("{name} is not valid: {}", invalid.summary()),
                &json!({
                    "file": name,
                    "valid": false,
                    "errors": errors,
                    "warnings": invalid.all().count() - errors,
                    "diagnostics": invalid.to_json(),
                }),
            );
            Ok(exit::USAGE)
        }
    }
}

/// The spec is valid, but references secrets the secrets file lacks: every such reference as
/// an error at its place, exit 2.
fn missing_secrets(
    name: &str,
    loaded: &homelab_spec::LoadedSpec,
    secrets: &NamesCheck,
    out: &Output,
) -> u8 {
    out.diagnostics(&loaded.source.render(&secrets.missing));
    let mut all = loaded.warnings.clone();
    all.extend(secrets.missing.iter().cloned());
    out.result(
        || {
            format!(
                "{name} is not valid: {} (it uses secrets that {} lacks)",
                homelab_spec::summary(&secrets.missing),
                secrets.file.display()
            )
        },
        &json!({
            "file": name,
            "valid": false,
            "errors": secrets.missing.len(),
            "warnings": loaded.warnings.len(),
            "diagnostics": loaded.source.to_json(&all),
            "secrets": secrets_json(secrets),
        }),
    );
    exit::USAGE
}

/// Checks the secrets file next to `spec` against what the lab needs, by name; says so
/// (without failing) when there is no secrets file yet, and warns of secrets it lacks or
/// holds without a value.
fn check_secrets(
    spec: &std::path::Path,
    loaded: &homelab_spec::LoadedSpec,
    out: &Output,
) -> anyhow::Result<NamesCheck> {
    let file = homelab_ops::secrets::secrets_file(spec);
    if file.exists() {
        out.detail(format!(
            "checking secret names in {} (without decrypting)",
            file.display()
        ));
    }
    let plan = homelab_plan::plan(&loaded.lab);
    let check = homelab_ops::secrets::check_names(spec, loaded, &plan).map_err(fail)?;
    if !check.exists {
        out.status(format!(
            "secrets not checked: {} does not exist yet; create it with `homelab secrets init`",
            check.file.display()
        ));
        return Ok(check);
    }
    if !check.not_generated.is_empty() {
        out.warn(format!(
            "{} lacks {} the lab generates itself: {}; add them with `homelab secrets init`",
            check.file.display(),
            count(check.not_generated.len(), "secret"),
            check.not_generated.join(", ")
        ));
    }
    if !check.unset.is_empty() {
        out.warn(format!(
            "{} not set yet (\"set me\"): {}; set each with `homelab secrets set NAME`",
            match check.unset.len() {
                1 => "1 secret is".to_string(),
                n => format!("{n} secrets are"),
            },
            check.unset.join(", ")
        ));
    }
    if !check.unset_optional.is_empty() {
        out.status(format!(
            "optional secrets without a value (the lab works without them): {}",
            check.unset_optional_with_commands()
        ));
    }
    Ok(check)
}

fn secrets_json(check: &NamesCheck) -> Value {
    json!({
        "file": check.file.display().to_string(),
        "checked": check.exists,
        "missing": check.missing_names,
        "unset": check.unset,
        "unsetOptional": check.unset_optional,
        "notGenerated": check.not_generated,
    })
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
