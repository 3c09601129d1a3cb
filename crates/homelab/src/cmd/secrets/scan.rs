//! `homelab secrets scan [PATH]`: reports plaintext secrets in a tree and its git history by
//! place and kind (exit 1 when any), never by value.

use std::path::Path;

use homelab_secrets::scan::{Location, ScanOptions, scan_with};
use homelab_secrets::{Identities, IdentityEnv, KnownSecrets, SecretsStore};
use serde_json::json;

use super::count;
use crate::cmd::shared::secrets::{LabFiles, fail, lab_vault, spec_vault};
use crate::exit;
use crate::output::Output;

pub fn run(
    lab: &LabFiles,
    path: Option<&Path>,
    no_history: bool,
    ignore: &[String],
    out: &Output,
) -> anyhow::Result<u8> {
    let path = path.unwrap_or(&lab.root);
    if !path.exists() {
        return Err(exit::usage(format!(
            "{} does not exist; pass a directory or file to scan",
            path.display()
        )));
    }
    let (known, known_checked) = known_values(lab, out);
    let options = ScanOptions {
        history: !no_history,
        ignore: ignore.to_vec(),
    };
    let report = scan_with(path, &known, &options).map_err(fail)?;
    let where_ = path.display().to_string();
    let scope = || {
        let mut s = count(report.files_scanned, "file");
        if report.repository.is_some() && !no_history {
            s.push_str(&format!(" and {}", count(report.commits_scanned, "commit")));
        }
        s
    };
    // Findings are what a scan is run for, so `--quiet` keeps them; only the all-clear line
    // is hidden.
    let show = |text: &dyn Fn() -> String, data: &serde_json::Value| {
        if report.is_clean() {
            out.result(text, data)
        } else {
            out.answer(text, data)
        }
    };
    show(
        &|| {
            if report.is_clean() {
                format!(
                    "no plaintext secrets found in {where_} ({} scanned)",
                    scope()
                )
            } else {
                report
                    .findings
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        },
        &json!({
            "path": where_,
            "clean": report.is_clean(),
            "filesScanned": report.files_scanned,
            "commitsScanned": report.commits_scanned,
            "repository": report.repository.as_ref().map(|r| r.display().to_string()),
            "knownValuesChecked": known_checked,
            "findings": report.findings.iter().map(|f| {
                let (file, line, commit) = match &f.location {
                    Location::WorkingTree { path, line } => (path.display().to_string(), *line, None),
                    Location::History { commit, path, line } => (path.clone(), *line, Some(commit.clone())),
                };
                json!({
                    "location": f.location.to_string(),
                    "file": file,
                    "line": line,
                    "commit": commit,
                    "kind": f.kind.code(),
                    "what": f.kind.to_string(),
                    "fingerprint": f.fingerprint,
                })
            }).collect::<Vec<_>>(),
        }),
    );
    if report.is_clean() {
        return Ok(exit::OK);
    }
    out.status(format!(
        "{} in {where_} ({} scanned). Remove each value, rotate the secret (`homelab secrets rotate NAME` or `set`), and rewrite history if it was committed; list test fixtures in .homelab-scan-ignore",
        count(report.findings.len(), "finding"),
        scope()
    ));
    Ok(exit::FAILURE)
}

/// The store's values when the key at hand opens it; a scan without them still finds key
/// blocks and random-looking values, and says what it could not check.
fn known_values(lab: &LabFiles, out: &Output) -> (KnownSecrets, bool) {
    if !lab.store.exists() {
        out.detail(format!(
            "{} does not exist: not looking for its values",
            lab.store.display()
        ));
        return (KnownSecrets::new(), false);
    }
    let mut env = IdentityEnv::from_process_env();
    env.vault = env
        .vault
        .with_lab(spec_vault(&lab.spec, out).as_ref().map(lab_vault));
    let opened = Identities::from_env(&env).and_then(|ids| SecretsStore::open(&lab.store, &ids));
    match opened {
        Ok(store) => (store.known_secrets(), true),
        Err(e) => {
            out.warn(format!(
                "not looking for the values of {} ({e})",
                lab.store.display()
            ));
            (KnownSecrets::new(), false)
        }
    }
}
