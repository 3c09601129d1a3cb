//! What the backup and restore commands share: the Job flags, connecting, a backup script Job
//! run through `homelab-ops` with its events as progress lines, the scripts' report lines as
//! JSON, the spec with its backup setup, a failed report with its one-line reason, a Job that
//! left no report, database names checked before anything runs, and a table check in words.

use std::time::Duration;

use clap::Args;
use homelab_backup::records::{TableCheck, TableStatus};
use homelab_kube::{Cluster, JobEvent};
use homelab_ops::backup_job::{self, BackupJobError, BackupSetup, Operation, Ran, RunOptions};
use serde_json::{Value, json};

use super::cluster::{ClusterArgs, RetryLines, connect_error, runtime};
use super::format::parse_duration;
use super::spec;
use crate::cli::Global;
use crate::exit::{self, Exit};
use crate::output::Output;

/// Which cluster to talk to, and how long to follow the Job.
#[derive(Debug, Clone, Args)]
pub struct JobArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// How long to follow the Job before giving up on it (it keeps running in the cluster),
    /// e.g. `90s`, `30m`, `2h`.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// A connected cluster and the runtime that drives it.
pub struct Connected {
    rt: tokio::runtime::Runtime,
    cluster: Cluster,
    /// `--api-retries`, for every request of the Job's run.
    retry: homelab_kube::RetryPolicy,
}

/// Connects to the lab's cluster: a kubeconfig that is missing or wrong is a usage error (2),
/// an API that does not answer a failure (1).
pub fn connect(args: &JobArgs, lab_name: &str, out: &Output) -> anyhow::Result<Connected> {
    let rt = runtime()?;
    let cluster = rt
        .block_on(Cluster::connect_with(
            &args.cluster.source(lab_name),
            &args.cluster.retry(),
            &RetryLines(out),
        ))
        .map_err(|e| connect_error(e, exit::FAILURE))?;
    Ok(Connected {
        rt,
        cluster,
        retry: args.cluster.retry(),
    })
}

/// Runs `op`'s script with `args` in a Job and follows it to the end, showing the pod's
/// progress and log lines as they come. Errors when the Job cannot be started or followed to
/// its end; a script that fails is a [`Ran`] whose outcome did not succeed.
pub fn run(
    conn: &Connected,
    setup: &BackupSetup,
    op: Operation,
    args: &[String],
    timeout: Duration,
    out: &Output,
) -> anyhow::Result<Ran> {
    let options = RunOptions {
        timeout,
        follow_log: !out.quiet && !out.is_json(),
        retry: conn.retry.clone(),
    };
    let progress = |event: JobEvent| match event {
        JobEvent::Created { namespace, name } => out.status(format!(
            "Started Job {namespace}/{name} ({})",
            std::iter::once(op.script())
                .chain(args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        JobEvent::Pod { pod, state } => out.status(format!("  pod {pod}: {state}")),
        JobEvent::LogLine { line, .. } if !line.trim_start().starts_with("HOMELAB-") => {
            out.status(format!("  | {line}"))
        }
        JobEvent::LogLine { .. } => {}
        JobEvent::Retrying {
            action,
            attempt,
            reason,
        } => out.status(format!(
            "  retrying {action} (attempt {attempt} failed: {reason})"
        )),
    };
    conn.rt
        .block_on(backup_job::run(
            &conn.cluster,
            setup,
            op,
            args,
            &options,
            &progress,
        ))
        .map_err(job_error)
}

/// A backup Job error as the CLI reports it: a lab without PostgreSQL is a usage error (2),
/// everything else a failure (1), each with the library's message and its next step.
pub(crate) fn job_error(e: BackupJobError) -> anyhow::Error {
    let code = match e {
        BackupJobError::NoPostgresBackups => exit::USAGE,
        _ => exit::FAILURE,
    };
    Exit {
        code,
        message: e.to_string(),
        help: None,
    }
    .into()
}

/// The Job as data for `--output json`.
pub(crate) fn job_json(ran: &Ran) -> Value {
    let o = &ran.outcome;
    json!({
        "namespace": o.namespace,
        "name": o.name,
        "pod": o.pod,
        "succeeded": o.succeeded,
        "exitCode": o.exit_code,
        "failure": o.failure,
        "seconds": o.elapsed.as_secs_f64(),
    })
}

/// The JSON object of each report line starting with `prefix` (e.g. `HOMELAB-DUMP `), for
/// `--output json`: the scripts' records with their keys in the camelCase every other
/// `--output json` uses (the records on the backup volume keep the scripts' snake_case).
pub fn report_lines(log: &str, prefix: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| l.trim_start().strip_prefix(prefix))
        .filter_map(|json| serde_json::from_str(json).ok())
        .map(camel_case_keys)
        .collect()
}

/// `value` with every object key turned from snake_case into camelCase. The scripts' records
/// only have fixed keys, never names taken from the data, so no database or table name is
/// touched (those are values).
fn camel_case_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (snake_to_camel(&k), camel_case_keys(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(camel_case_keys).collect()),
        other => other,
    }
}

fn snake_to_camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The spec, its plan and the backup setup, with the spec's warnings shown.
pub(crate) fn load(
    global: &Global,
    out: &Output,
) -> anyhow::Result<(homelab_spec::LoadedSpec, homelab_plan::Plan, BackupSetup)> {
    let loaded = spec::load_valid(&global.file, out)?;
    let plan = homelab_plan::plan(&loaded.lab);
    let setup = backup_job::setup(&plan).map_err(job_error)?;
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
        help: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_without_postgres_is_a_usage_error_other_job_errors_failures() {
        let err = job_error(BackupJobError::NoPostgresBackups);
        assert_eq!(exit::code_of(&err), exit::USAGE);
        assert!(err.to_string().contains("services.postgres"), "{err}");
        let err = job_error(BackupJobError::CronJobNotInCluster {
            namespace: "data".into(),
            cronjob: "postgres-backup".into(),
        });
        assert_eq!(exit::code_of(&err), exit::FAILURE);
        assert!(err.to_string().contains("data/postgres-backup"), "{err}");
    }

    #[test]
    fn report_lines_are_read_as_json_and_other_lines_skipped() {
        let log = "backup.sh: x\nHOMELAB-DUMP {\"file\":\"a\"}\nHOMELAB-DUMP not json\n";
        assert_eq!(
            report_lines(log, "HOMELAB-DUMP "),
            vec![json!({"file": "a"})]
        );
    }

    #[test]
    fn report_lines_use_camel_case_keys_and_leave_values_alone() {
        let log = r#"HOMELAB-RESTORE {"kind":"summary","restored_as":"shop_new","tables":[{"table_name":"public.order_items","row_count":2}]}"#;
        assert_eq!(
            report_lines(log, "HOMELAB-RESTORE "),
            vec![json!({"kind": "summary", "restoredAs": "shop_new",
                        "tables": [{"tableName": "public.order_items", "rowCount": 2}]})]
        );
    }
}
