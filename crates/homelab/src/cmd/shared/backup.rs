//! What the backup and restore commands share: the spec with its backup setup, a failed
//! report with its one-line reason, a Job that left no report, database names checked before
//! anything runs, and a table check in words.

use homelab_backup::records::{TableCheck, TableStatus};
use serde_json::Value;

use super::backup_job::{self, BackupSetup, Ran};
use super::spec;
use crate::cli::Global;
use crate::exit;
use crate::output::Output;

/// The spec, its plan and the backup setup, with the spec's warnings shown.
pub(crate) fn load(
    global: &Global,
    out: &Output,
) -> anyhow::Result<(homelab_spec::LoadedSpec, homelab_plan::Plan, BackupSetup)> {
    let loaded = spec::load_valid(&global.file, out)?;
    let plan = homelab_plan::plan(&loaded.lab);
    let setup = backup_job::setup(&plan)?;
    Ok((loaded, plan, setup))
}

/// Prints a report for a command that failed, and the one-line reason under it.
pub(crate) fn failed(out: &Output, text: String, data: Value, reason: String) -> u8 {
    out.result(|| text, &data);
    if !out.is_json() {
        out.error(&anyhow::anyhow!(reason), exit::FAILURE);
    }
    exit::FAILURE
}

/// `reason` and where to read more, for a Job whose script left no report.
pub(crate) fn no_report(ran: &Ran, what: &str, e: &homelab_backup::RecordError) -> anyhow::Error {
    let tail = ran.log_tail(5);
    let why = ran
        .outcome
        .failure
        .clone()
        .unwrap_or_else(|| "it ended without a report".into());
    anyhow::Error::from(exit::Exit {
        code: exit::FAILURE,
        message: format!(
            "{what} did not complete: {why} ({e}); see {}{}",
            ran.logs_hint(),
            if tail.is_empty() {
                String::new()
            } else {
                format!("; its log ends with:\n{tail}")
            }
        ),
    })
}

/// What a table's check found, in words (problems in capitals, to stand out in a table).
pub(crate) fn table_status(t: &TableCheck) -> String {
    match t.status {
        TableStatus::Ok => "ok".to_string(),
        TableStatus::Mismatch if t.expected_rows == t.actual_rows => {
            "DIFFERS: same row count, different contents (checksum)".to_string()
        }
        TableStatus::Mismatch => "DIFFERS: row count".to_string(),
        TableStatus::Missing => "MISSING after restore".to_string(),
        TableStatus::Unexpected => "UNEXPECTED: not recorded at dump time".to_string(),
    }
}

/// A database name as PostgreSQL takes it: 1 to 63 bytes, no control characters. Checked
/// before anything runs, so a typo is a usage error and not a failed Job.
pub(crate) fn check_database_name(flag: &str, name: &str) -> anyhow::Result<()> {
    if name.is_empty() {
        return Err(exit::usage(format!("{flag} needs a database name")));
    }
    if name.len() > 63 {
        return Err(exit::usage(format!(
            "{flag} {name:?} is {} bytes long; PostgreSQL database names are at most 63 bytes",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(exit::usage(format!(
            "{flag} {name:?} contains a control character; give the database's name as `homelab backup list` shows it"
        )));
    }
    Ok(())
}
