//! `homelab secrets doctor`: one call to `homelab_ops::secrets_doctor::doctor`, printed as a
//! table of checks (or JSON); exit 0 when healthy, 1 when a check failed. It never prints a
//! value or a token: the report holds none.

use std::fmt::Write as _;

use homelab_ops::secrets_doctor::{CheckKind, CheckStatus, DoctorReport, doctor};
use homelab_secrets::IdentityEnv;
use serde_json::json;

use super::{count, lab_spec};
use crate::cli::Global;
use crate::cmd::shared::secrets::fail;
use crate::exit;
use crate::output::Output;

fn status_name(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Ok => "ok",
        CheckStatus::Warning => "warning",
        CheckStatus::Failed => "failed",
    }
}

pub fn run(global: &Global, out: &Output) -> anyhow::Result<u8> {
    let (loaded, _) = lab_spec(global, out)?;
    let plan = homelab_plan::plan(&loaded.lab);
    let report = doctor(
        &global.file,
        &loaded,
        &plan,
        &IdentityEnv::from_process_env(),
    )
    .map_err(fail)?;
    let code = if report.healthy() {
        exit::OK
    } else {
        exit::FAILURE
    };
    out.result(
        || text(&report),
        &json!({
            "file": report.file.display().to_string(),
            "healthy": report.healthy(),
            "failed": report.count(CheckStatus::Failed),
            "warnings": report.count(CheckStatus::Warning),
            "checks": report.checks.iter().map(|c| json!({
                "kind": c.kind.name(),
                "subject": c.subject,
                "status": status_name(c.status),
                "detail": c.detail,
                "next": c.next,
            })).collect::<Vec<_>>(),
        }),
    );
    Ok(code)
}

fn text(report: &DoctorReport) -> String {
    let mut t = String::new();
    // The longest kind name, so the columns line up the same in every report.
    let width = CheckKind::SpecVaultKey.name().len();
    for c in &report.checks {
        let mark = match c.status {
            CheckStatus::Ok => "ok  ",
            CheckStatus::Warning => "warn",
            CheckStatus::Failed => "FAIL",
        };
        let _ = writeln!(
            t,
            "{mark}  {:width$}  {}: {}",
            c.kind.name(),
            c.subject,
            c.detail
        );
        if let Some(next) = &c.next {
            let _ = writeln!(t, "      {:width$}  next: {next}", "");
        }
    }
    let failed = report.count(CheckStatus::Failed);
    let warnings = report.count(CheckStatus::Warning);
    let file = report.file.display();
    if failed == 0 {
        let _ = write!(
            t,
            "{file} is healthy: {} passed, {}",
            report.count(CheckStatus::Ok),
            count(warnings, "warning")
        );
    } else {
        let _ = write!(
            t,
            "{file} is not healthy: {} failed, {}",
            failed,
            count(warnings, "warning")
        );
    }
    t
}
