//! `homelab backup postgres|list|drill`: runs the rendered backup scripts in Jobs (through
//! `homelab_ops::backup_job`), reads their reports with `homelab-backup`'s parsers, and prints them as
//! text or JSON; `list` adds the etcd snapshots through `homelab-nodes`. It never runs a
//! database command itself and never touches a dump.

use clap::{Args, Subcommand};
use homelab_backup::records::{DrillDatabaseStatus, DumpKind, DumpValidity, Outcome, TableCheck};
use homelab_backup::{BackupListing, BackupRun, DrillReport, UtcTime};
use serde_json::{Value, json};

use homelab_ops::inventory::{self, Needs};

use crate::cli::Global;
use homelab_ops::backup_job::{BackupSetup, Operation};

use crate::cmd::shared::backup::{
    self, JobArgs, check_database_name, failed, job_json, load, no_report, report_lines,
    table_status,
};
use crate::cmd::shared::complete;
use crate::cmd::shared::format::{human_age, table};
use crate::cmd::shared::nodes::{ConnectArgs, block_on};
use crate::exit;
use crate::output::{Output, human_size};
use clap_complete::engine::ArgValueCandidates;

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: BackupCommand,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up PostgreSQL now: a Job from the backup CronJob, followed to the end.
    ///
    /// Dumps every database (pg_dump custom format) and the roles, verifies each dump, keeps
    /// the newest N valid ones per database, and prints what it wrote: databases, sizes,
    /// duration. The run counts as the CronJob's (`homelab status` and the "no recent backup"
    /// alert see it). Exits 1 with the script's reason when the backup fails; older dumps are
    /// never touched then.
    Postgres(RunArgs),
    /// List the PostgreSQL dumps and the etcd snapshots, with ages and sizes.
    ///
    /// Dumps are read in a Job on the backup volume, with the last backup and drill; etcd
    /// snapshots are listed on the first server over SSH. Without SSH access (or without what
    /// the node commands need from the spec and secrets) the dumps are still listed and the
    /// snapshots are skipped, saying why.
    List(ListArgs),
    /// Prove the dumps restore: restore the newest dump of each database into a scratch
    /// database and compare every table with what was recorded at dump time.
    ///
    /// Row counts and a checksum of every table's contents must match; the scratch databases
    /// are dropped afterwards. Prints a line per table and exits 1 on any difference, on an
    /// invalid dump or on a failed restore.
    Drill(DrillArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Check every dump's SHA-256 against its manifest (reads every dump in full) instead of
    /// only its size.
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub job: JobArgs,
    #[command(flatten)]
    pub conn: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Drill only this database (repeat for more) [default: every database with dumps].
    #[arg(long = "db", value_name = "NAME", add = ArgValueCandidates::new(complete::databases))]
    pub databases: Vec<String>,
    #[command(flatten)]
    pub job: JobArgs,
}

pub fn run(global: &Global, args: &BackupArgs, out: &Output) -> anyhow::Result<u8> {
    match &args.command {
        BackupCommand::Postgres(a) => postgres(global, a, out),
        BackupCommand::List(a) => list(global, a, out),
        BackupCommand::Drill(a) => drill(global, a, out),
    }
}

fn postgres(global: &Global, args: &RunArgs, out: &Output) -> anyhow::Result<u8> {
    let (_, _, setup) = load(global, out)?;
    let conn = backup::connect(&args.job, &setup.lab, out)?;
    out.status(format!(
        "Backing up PostgreSQL of lab `{}` now (from CronJob {}/{})",
        setup.lab, setup.namespace, setup.cronjob
    ));
    let ran = backup::run(&conn, &setup, Operation::Backup, &[], args.job.timeout, out)?;
    if ran.outcome.exit_code == Some(homelab_backup::postgres::EXIT_LOCKED) {
        return Err(exit::Exit {
            code: exit::FAILURE,
            message: format!(
                "another backup is running (it holds the lock on the backup volume), so this one did not start; wait for it, or see {}",
                ran.logs_hint()
            ),
            help: None,
        }
        .into());
    }
    let record = match BackupRun::from_log(&ran.outcome.log) {
        Ok(r) => r,
        Err(e) => return Err(no_report(&ran, "the backup", &e)),
    };
    let raw = report_lines(
        &ran.outcome.log,
        homelab_backup::postgres::BACKUP_LINE_PREFIX,
    )
    .pop()
    .unwrap_or(Value::Null);
    let ok = ran.outcome.succeeded && record.succeeded();
    let data = json!({
        "ok": ok,
        "exitCode": if ok { exit::OK } else { exit::FAILURE },
        "job": job_json(&ran),
        "run": raw,
    });
    let text = run_text(&record, &setup);
    if ok {
        out.result(|| text, &data);
        return Ok(exit::OK);
    }
    // Errors quote the tools' own last lines, which may be indented or wrapped.
    let mut reasons: Vec<String> = record
        .errors
        .iter()
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    if reasons.is_empty() {
        reasons.push(
            ran.outcome
                .failure
                .clone()
                .unwrap_or_else(|| "backup.sh reported a failure".into()),
        );
    }
    Ok(failed(
        out,
        text,
        data,
        format!(
            "the backup failed, and the dumps kept from earlier runs are untouched: {}; see {}",
            reasons.join("; "),
            ran.logs_hint()
        ),
    ))
}

/// A backup run as people read it: the outcome, then a line per database.
fn run_text(run: &BackupRun, setup: &BackupSetup) -> String {
    let dumped = run
        .databases
        .iter()
        .filter(|d| d.result == Outcome::Success)
        .count();
    let mut text = if run.succeeded() {
        format!(
            "Backup succeeded in {}s: {dumped} database(s) and the roles, {} in all, verified.\n",
            run.duration_seconds,
            human_size(run.total_bytes())
        )
    } else if run.databases.is_empty() {
        format!(
            "Backup FAILED after {}s: no database was dumped.\n",
            run.duration_seconds
        )
    } else {
        format!(
            "Backup FAILED after {}s: {dumped} of {} database(s) dumped.\n",
            run.duration_seconds,
            run.databases.len()
        )
    };
    let mut rows = vec![
        [
            "DATABASE", "RESULT", "SIZE", "TABLES", "ROWS", "TIME", "DUMP",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for d in &run.databases {
        let ok = d.result == Outcome::Success;
        rows.push(vec![
            d.name.clone(),
            if ok { "ok".into() } else { "FAILED".into() },
            d.bytes.map(human_size).unwrap_or_else(|| "-".into()),
            d.tables
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
            d.rows.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            format!("{}s", d.duration_seconds),
            if ok {
                d.file.clone().unwrap_or_default()
            } else {
                d.error.clone().unwrap_or_default()
            },
        ]);
    }
    match &run.globals {
        Some(g) => rows.push(vec![
            "(roles)".into(),
            "ok".into(),
            human_size(g.bytes),
            "-".into(),
            "-".into(),
            "-".into(),
            g.file.clone(),
        ]),
        None => rows.push(vec![
            "(roles)".into(),
            "FAILED".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "pg_dumpall --globals-only failed".into(),
        ]),
    }
    text.push_str(&table(&rows));
    if !run.deleted.is_empty() {
        text.push_str(&format!(
            "Removed by retention (keeping {} per database): {}\n",
            setup.keep,
            run.deleted.join(", ")
        ));
    }
    for invalid in &run.invalid_dumps {
        text.push_str(&format!(
            "warning: kept dump {} is invalid ({}); it is not counted as a backup\n",
            invalid.file, invalid.reason
        ));
    }
    for w in &run.warnings {
        text.push_str(&format!("warning: {w}\n"));
    }
    text
}

fn list(global: &Global, args: &ListArgs, out: &Output) -> anyhow::Result<u8> {
    let (loaded, plan, setup) = load(global, out)?;
    let conn = backup::connect(&args.job, &setup.lab, out)?;
    let script_args: Vec<String> = if args.verify {
        vec!["--verify".into()]
    } else {
        vec![]
    };
    let ran = backup::run(
        &conn,
        &setup,
        Operation::List,
        &script_args,
        args.job.timeout,
        out,
    )?;
    if !ran.outcome.succeeded {
        return Err(exit::Exit {
            code: exit::FAILURE,
            message: format!(
                "listing the dumps failed: {}; see {}",
                ran.outcome.failure.as_deref().unwrap_or("list.sh failed"),
                ran.logs_hint()
            ),
            help: None,
        }
        .into());
    }
    let listing = match BackupListing::parse(&ran.outcome.log) {
        Ok(l) => l,
        Err(e) => return Err(no_report(&ran, "listing the dumps", &e)),
    };
    let now = homelab_ops::backup_job::now();

    // etcd snapshots: best effort, the dumps are worth showing without them. A failure is
    // the reason they were skipped, not an error of the command.
    let snapshots: Result<(String, Vec<homelab_nodes::SnapshotInfo>), String> =
        match inventory::build(
            &global.file,
            &loaded,
            &plan,
            &args.conn.access(None),
            Needs::SudoOnly,
        ) {
            Err(e) => Err(format!(
                "the node inventory is not available: {}",
                chain(&e.into())
            )),
            Ok(lab) => {
                let inv = &lab.inventory;
                let server = inv
                    .first_server()
                    .map(|h| h.name.clone())
                    .unwrap_or_default();
                out.status(format!("Listing the etcd snapshots on {server} over SSH"));
                // The node engine's own progress is not shown: the listing says how it went.
                match block_on(homelab_nodes::snapshot_list(inv, &homelab_nodes::NoEvents))? {
                    Ok(list) => Ok((server, list)),
                    Err(e) => Err(chain(&anyhow::Error::from(e))),
                }
            }
        };

    let dumps_json: Vec<Value> =
        report_lines(&ran.outcome.log, homelab_backup::postgres::DUMP_LINE_PREFIX)
            .into_iter()
            .zip(&listing.dumps)
            .map(|(mut raw, d)| {
                raw["ageSeconds"] = json!(d.created_at.seconds_before(now));
                raw
            })
            .collect();
    let record = |prefix: &str| {
        report_lines(&ran.outcome.log, prefix)
            .pop()
            .unwrap_or(Value::Null)
    };
    let data = json!({
        "ok": true,
        "exitCode": exit::OK,
        "lab": setup.lab,
        "job": job_json(&ran),
        "dumps": dumps_json,
        "lastSuccess": record(homelab_backup::postgres::STATUS_LINE_PREFIX),
        "lastRun": record(homelab_backup::postgres::LAST_RUN_LINE_PREFIX),
        "lastDrill": listing.last_drill.as_ref().map(|d| json!({
            "status": if d.passed() { "passed" } else { "failed" },
            "finishedAt": d.summary.finished_at.to_string(),
            "databases": d.summary.databases,
            "tables": d.summary.tables,
            "mismatches": d.summary.mismatches,
        })),
        "etcdSnapshots": match &snapshots {
            Ok((server, list)) => json!({
                "server": server,
                "skipped": null,
                "snapshots": list.iter().map(|s| json!({
                    "name": s.name, "location": s.location, "sizeBytes": s.size_bytes,
                    "created": s.created, "age": s.age,
                })).collect::<Vec<_>>(),
            }),
            Err(reason) => json!({"server": null, "skipped": reason, "snapshots": []}),
        },
    });
    out.result(|| listing_text(&listing, &setup, now, &snapshots), &data);
    Ok(exit::OK)
}

fn chain(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

fn listing_text(
    listing: &BackupListing,
    setup: &BackupSetup,
    now: UtcTime,
    snapshots: &Result<(String, Vec<homelab_nodes::SnapshotInfo>), String>,
) -> String {
    let mut text = format!(
        "PostgreSQL dumps{} (keeping {} per database):\n",
        setup
            .pvc
            .as_ref()
            .map(|p| format!(" on PVC {}/{p}", setup.namespace))
            .unwrap_or_default(),
        setup.keep
    );
    if listing.dumps.is_empty() {
        text.push_str("  none yet; take one with `homelab backup postgres`\n");
    } else {
        let mut rows = vec![
            [
                "DATABASE", "TAKEN", "AGE", "SIZE", "TABLES", "ROWS", "STATUS", "FILE",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for d in &listing.dumps {
            let globals = d.kind == DumpKind::Globals;
            rows.push(vec![
                d.database.clone().unwrap_or_else(|| "(roles)".into()),
                d.created_at.to_string(),
                human_age(d.created_at.seconds_before(now)),
                d.bytes.map(human_size).unwrap_or_else(|| "-".into()),
                if globals {
                    "-".into()
                } else {
                    d.tables.to_string()
                },
                if globals {
                    "-".into()
                } else {
                    d.rows.to_string()
                },
                match d.status {
                    DumpValidity::Valid => "valid".into(),
                    DumpValidity::Invalid => format!(
                        "INVALID: {}",
                        d.reason.as_deref().unwrap_or("failed its check")
                    ),
                },
                d.file.clone(),
            ]);
        }
        text.push_str(&table(&rows));
    }
    match &listing.last_success {
        Some(r) => text.push_str(&format!(
            "Last successful backup: {} ({} ago), {} database(s), {}, took {}s.\n",
            r.finished_at,
            human_age(r.finished_at.seconds_before(now)),
            r.databases.len(),
            human_size(r.total_bytes()),
            r.duration_seconds
        )),
        None => text.push_str("No successful backup recorded yet.\n"),
    }
    if let Some(r) = &listing.last_run
        && !r.succeeded()
    {
        text.push_str(&format!(
            "The last attempt, at {} ({} ago), FAILED: {}\n",
            r.finished_at,
            human_age(r.finished_at.seconds_before(now)),
            r.errors.join("; ")
        ));
    }
    if let Some(d) = &listing.last_drill {
        text.push_str(&format!(
            "Last drill: {} at {} ({} ago), {} database(s), {} table(s), {} difference(s).\n",
            if d.passed() { "passed" } else { "FAILED" },
            d.summary.finished_at,
            human_age(d.summary.finished_at.seconds_before(now)),
            d.summary.databases,
            d.summary.tables,
            d.summary.mismatches
        ));
    }
    text.push('\n');
    match snapshots {
        Ok((server, list)) if list.is_empty() => text.push_str(&format!(
            "etcd snapshots on {server}: none yet; take one with `homelab etcd snapshot save`\n"
        )),
        Ok((server, list)) => {
            text.push_str(&format!("etcd snapshots on {server}:\n"));
            let mut rows = vec![
                ["NAME", "CREATED", "AGE", "SIZE", "LOCATION"]
                    .map(String::from)
                    .to_vec(),
            ];
            for s in list {
                rows.push(vec![
                    s.name.clone(),
                    s.created.clone(),
                    s.age.clone().unwrap_or_else(|| "?".into()),
                    human_size(s.size_bytes),
                    s.location.clone(),
                ]);
            }
            text.push_str(&table(&rows));
        }
        Err(reason) => text.push_str(&format!("etcd snapshots: skipped ({reason})\n")),
    }
    text
}

fn drill(global: &Global, args: &DrillArgs, out: &Output) -> anyhow::Result<u8> {
    for db in &args.databases {
        check_database_name("--db", db)?;
    }
    let (_, _, setup) = load(global, out)?;
    let conn = backup::connect(&args.job, &setup.lab, out)?;
    let script_args: Vec<String> = args
        .databases
        .iter()
        .flat_map(|d| ["--db".to_string(), d.clone()])
        .collect();
    out.status(format!(
        "Drilling the PostgreSQL dumps of lab `{}`: restore into scratch databases and compare every table",
        setup.lab
    ));
    let ran = backup::run(
        &conn,
        &setup,
        Operation::Drill,
        &script_args,
        args.job.timeout,
        out,
    )?;
    let report = match DrillReport::parse(&ran.outcome.log) {
        Ok(r) => r,
        Err(e) if ran.outcome.exit_code == Some(homelab_backup::postgres::EXIT_USAGE) => {
            return Err(exit::usage(format!(
                "the drill refused its arguments: {}; see {} ({e})",
                ran.log_tail(2),
                ran.logs_hint()
            )));
        }
        Err(e) => return Err(no_report(&ran, "the drill", &e)),
    };
    let grouped = |kind: &str| -> Vec<Value> {
        report_lines(
            &ran.outcome.log,
            homelab_backup::postgres::DRILL_LINE_PREFIX,
        )
        .into_iter()
        .filter(|l| l["kind"] == kind)
        .collect()
    };
    let passed = ran.outcome.succeeded && report.passed();
    let data = json!({
        "ok": passed,
        "exitCode": if passed { exit::OK } else { exit::FAILURE },
        "job": job_json(&ran),
        "summary": grouped("summary").pop(),
        "databases": grouped("database"),
        "tables": grouped("table"),
        "dumps": grouped("dump"),
    });
    let text = drill_text(&report);
    if passed {
        out.result(|| text, &data);
        return Ok(exit::OK);
    }
    let s = &report.summary;
    let mut reasons = Vec::new();
    if s.mismatches > 0 {
        reasons.push(format!(
            "{} table(s) differ from what was recorded at dump time",
            s.mismatches
        ));
    }
    if s.invalid_dumps > 0 {
        reasons.push(format!("{} dump(s) are invalid", s.invalid_dumps));
    }
    // Databases whose tables differ are counted above; the others failed for another reason.
    for d in report
        .databases
        .iter()
        .filter(|d| d.status == DrillDatabaseStatus::Failed && d.mismatches.unwrap_or(0) == 0)
    {
        if let Some(e) = &d.error {
            reasons.push(format!("database {}: {e}", d.database));
        }
    }
    if reasons.is_empty() {
        reasons.push("drill.sh reported a failure".into());
    }
    Ok(failed(
        out,
        text,
        data,
        format!(
            "the drill FAILED: {}. Do not rely on these dumps until a backup and a drill pass; see {}",
            reasons.join("; "),
            ran.logs_hint()
        ),
    ))
}

fn table_row(t: &TableCheck) -> Vec<String> {
    let rows = match (t.expected_rows, t.actual_rows) {
        (Some(e), Some(a)) if e == a => e.to_string(),
        (e, a) => format!(
            "{} (recorded {})",
            a.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            e.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
        ),
    };
    vec![t.database.clone(), t.table.clone(), rows, table_status(t)]
}

fn drill_text(report: &DrillReport) -> String {
    let s = &report.summary;
    // Dumps taken with `verify: row-counts` record no checksum ("-"): say what was compared.
    let counts_only = !report.tables.is_empty()
        && report
            .tables
            .iter()
            .all(|t| t.expected_checksum.as_deref() == Some("-"));
    let mut text = if report.passed() {
        let compared = if counts_only {
            "every row count matches the dump (row counts only: the backup runs with `verify: row-counts`)"
        } else {
            "every row count and checksum matches the dump"
        };
        format!(
            "Drill passed: {} database(s), {} table(s), {compared} (took {}s).\n",
            s.databases, s.tables, s.duration_seconds
        )
    } else {
        format!(
            "Drill FAILED: {} of {} database(s) failed, {} table(s) differ, {} invalid dump(s).\n",
            s.failed_databases, s.databases, s.mismatches, s.invalid_dumps
        )
    };
    let mut rows = vec![
        ["DATABASE", "TABLE", "ROWS", "RESULT"]
            .map(String::from)
            .to_vec(),
    ];
    rows.extend(report.tables.iter().map(table_row));
    if report.tables.is_empty() {
        text.push_str("No tables were compared.\n");
    } else {
        text.push_str(&table(&rows));
    }
    for d in &report.databases {
        let restore = d
            .restore_seconds
            .map(|r| format!("restored in {r}s"))
            .unwrap_or_default();
        text.push_str(&format!(
            "{} {}: {}{}{}\n",
            if d.status == DrillDatabaseStatus::Ok {
                "ok    "
            } else {
                "FAILED"
            },
            d.database,
            d.file.as_deref().unwrap_or("no dump"),
            if restore.is_empty() {
                String::new()
            } else {
                format!(", {restore}")
            },
            d.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    for dump in report
        .dumps
        .iter()
        .filter(|d| d.status == DumpValidity::Invalid)
    {
        text.push_str(&format!(
            "INVALID dump {}: {}\n",
            dump.file,
            dump.reason.as_deref().unwrap_or("failed its check")
        ));
    }
    text
}
