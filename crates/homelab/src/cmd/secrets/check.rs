//! The secrets part of `homelab validate`: which secrets the spec uses that secrets.sops.yaml
//! lacks, and which it holds without a value. Reads names only (no key, no decryption), so it
//! can never see a value.

use std::path::{Path, PathBuf};

use homelab_secrets::store::peek_names;
use homelab_spec::{Diagnostic, LoadedSpec};
use serde_json::{Value, json};

use super::{LabFiles, count, fail, requirements};
use crate::output::Output;

/// What the check found.
pub struct Check {
    /// The secrets file it looked at.
    pub file: PathBuf,
    /// Whether it exists (nothing is checked when it does not).
    pub exists: bool,
    /// An error per secret the spec references that the file lacks, at the reference.
    pub missing: Vec<Diagnostic>,
    missing_names: Vec<String>,
    /// Secrets the lab needs that are in the file without a value.
    unset: Vec<String>,
    /// Secrets the lab generates itself that the file lacks (`secrets init` adds them).
    not_generated: Vec<String>,
}

impl Check {
    pub fn to_json(&self) -> Value {
        json!({
            "file": self.file.display().to_string(),
            "checked": self.exists,
            "missing": self.missing_names,
            "unset": self.unset,
            "notGenerated": self.not_generated,
        })
    }
}

/// Checks the secrets file next to `spec` against what the lab needs; says so (without
/// failing) when there is no secrets file yet.
pub fn check(spec: &Path, loaded: &LoadedSpec, out: &Output) -> anyhow::Result<Check> {
    let lab = LabFiles::of(spec);
    let mut check = Check {
        file: lab.store.clone(),
        exists: lab.store.exists(),
        missing: Vec::new(),
        missing_names: Vec::new(),
        unset: Vec::new(),
        not_generated: Vec::new(),
    };
    if !check.exists {
        out.status(format!(
            "secrets not checked: {} does not exist yet; create it with `homelab secrets init`",
            lab.store.display()
        ));
        return Ok(check);
    }
    out.detail(format!(
        "checking secret names in {} (without decrypting)",
        lab.store.display()
    ));
    let stored = peek_names(&lab.store).map_err(fail)?;
    let names: Vec<String> = stored.iter().map(|s| s.name.clone()).collect();
    check.missing = loaded.missing_secrets(&names);
    let referenced: Vec<String> = loaded
        .lab
        .secret_refs()
        .iter()
        .map(|(s, _)| s.name().to_string())
        .collect();
    for name in &referenced {
        if !names.contains(name) && !check.missing_names.contains(name) {
            check.missing_names.push(name.clone());
        }
    }
    let plan = homelab_plan::plan(&loaded.lab);
    for req in requirements(loaded, &plan) {
        match stored.iter().find(|s| s.name == req.name) {
            Some(s) if !s.set => check.unset.push(req.name),
            Some(_) => {}
            None if !referenced.contains(&req.name) => check.not_generated.push(req.name),
            None => {}
        }
    }
    if !check.not_generated.is_empty() {
        out.warn(format!(
            "{} lacks {} the lab generates itself: {}; add them with `homelab secrets init`",
            lab.store.display(),
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
    Ok(check)
}
