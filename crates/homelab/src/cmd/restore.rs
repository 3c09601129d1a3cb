//! `homelab restore postgres`: asks for a confirmation (or takes `--yes`), runs the rendered
//! `restore.sh` in a Job (through `homelab_ops::backup_job`), and reports which database holds the
//! restored data and which one was kept beside it. It never restores without a confirmation,
//! and drops the database it replaced only when asked to (`--drop-old`).

use std::io::IsTerminal;

use clap::{Args, Subcommand};
use homelab_backup::RestoreReport;
use homelab_backup::records::{
    BackupListing, DumpEntry, DumpKind, DumpValidity, RestoreStatus, TableCheck,
};
use serde_json::{Value, json};

use crate::cli::Global;
use homelab_ops::backup_job::Operation;

use crate::cmd::shared::backup::{
    self, JobArgs, check_database_name, failed, job_json, load, no_report, report_lines,
    table_status,
};
use crate::cmd::shared::complete;
use crate::cmd::shared::format::human_age;
use crate::exit;
use crate::output::Output;
use crate::output::human_size;
use clap_complete::engine::ArgValueCandidates;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(subcommand)]
    pub command: RestoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum RestoreCommand {
    /// Restore a PostgreSQL database (or the roles) from a dump on the backup volume.
    ///
    /// The dump is restored into a new database and every table's row count and checksum
    /// are checked against what was recorded at dump time. Then, by default, it is swapped in
    /// by renames: NAME becomes NAME_before_restore_<time> and is kept (drop it yourself once
    /// you are happy, or pass `--drop-old`), and the restored copy takes its name. With
    /// `--into NEW` it is left beside NAME as NEW, and NAME is not touched. If anything fails,
    /// NAME is unchanged. `--globals` applies the roles (with their password hashes) from a
    /// globals dump instead: restore them first when rebuilding a server.
    ///
    /// On a terminal you are asked to confirm, with the dump that will be used; without one
    /// it refuses unless `--yes`.
    ///
    /// Example: `homelab restore postgres --db n8n --latest --into n8n_check`.
    Postgres(RestorePostgresArgs),
}

#[derive(Debug, Args)]
pub struct RestorePostgresArgs {
    /// The database to restore (one that has dumps: see `homelab backup list`).
    #[arg(
        long = "db",
        value_name = "NAME",
        required_unless_present = "globals",
        conflicts_with = "globals",
        add = ArgValueCandidates::new(complete::databases)
    )]
    pub db: Option<String>,
    /// Apply the roles and their passwords from a globals dump instead of restoring a
    /// database; roles that exist already are reported, not an error.
    #[arg(long, conflicts_with_all = ["into", "drop_old"])]
    pub globals: bool,
    /// The dump to restore: its file name or its path on the backup volume, as `homelab
    /// backup list` shows it.
    #[arg(long, value_name = "FILE", conflicts_with = "latest")]
    pub from: Option<String>,
    /// Restore the newest valid dump (the default).
    #[arg(long)]
    pub latest: bool,
    /// Restore into the new database NEW and leave NAME as it is.
    #[arg(long, value_name = "NEW")]
    pub into: Option<String>,
    /// After a successful swap, drop the database that was replaced instead of keeping it.
    #[arg(long, conflicts_with = "into")]
    pub drop_old: bool,
    /// Do not ask; needed when there is no terminal to ask on.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub job: JobArgs,
}

pub fn run(global: &Global, args: &RestoreArgs, out: &Output) -> anyhow::Result<u8> {
    let RestoreCommand::Postgres(a) = &args.command;
    postgres(global, a, out)
}

/// Whether `from` names the listed dump `d` (its path relative to the backup volume, its file
/// name, or its absolute path in the pod).
fn names_dump(from: &str, d: &DumpEntry, backup_dir: &str) -> bool {
    from == d.file
        || d.file.rsplit('/').next() == Some(from)
        || from == format!("{}/{}", backup_dir.trim_end_matches('/'), d.file)
}

/// What is restored: a database, or the roles from a globals dump.
enum Target<'a> {
    Database(&'a str),
    Globals,
}

impl Target<'_> {
    /// `restore database shop`, for messages.
    fn what(&self, args: &RestorePostgresArgs) -> String {
        match (self, &args.into) {
            (Target::Globals, _) => "restore the roles from a globals dump".to_string(),
            (Target::Database(db), Some(into)) => {
                format!("restore database {db} into a new database {into}")
            }
            (Target::Database(db), None) => format!("restore database {db}"),
        }
    }

    fn is_dump_of(&self, d: &DumpEntry) -> bool {
        match self {
            Target::Globals => d.kind == DumpKind::Globals,
            Target::Database(db) => d.database.as_deref() == Some(*db),
        }
    }
}

fn check_arguments(args: &RestorePostgresArgs) -> anyhow::Result<Target<'_>> {
    let target = match &args.db {
        Some(db) => {
            check_database_name("--db", db)?;
            Target::Database(db)
        }
        None => Target::Globals,
    };
    if let Some(into) = &args.into {
        check_database_name("--into", into)?;
        if Some(into) == args.db.as_ref() {
            return Err(exit::usage(format!(
                "--into must name a new database, not {into} itself; leave --into out to swap the restored copy in"
            )));
        }
    }
    if let Some(from) = &args.from
        && (from.is_empty() || from.chars().any(char::is_control))
    {
        return Err(exit::usage(
            "--from needs a dump's file name or path, as `homelab backup list` shows it",
        ));
    }
    Ok(target)
}

/// A database the spec does not have has no dumps either: refused with the names it has.
fn check_database_of_lab(
    db: &str,
    loaded: &homelab_spec::LoadedSpec,
    spec: &std::path::Path,
) -> anyhow::Result<()> {
    let names: Vec<&str> = loaded
        .lab
        .services
        .postgres
        .iter()
        .flat_map(|p| p.databases.iter().map(|d| d.name.as_str()))
        .collect();
    if names.contains(&db) {
        return Ok(());
    }
    Err(exit::usage_help(
        format!(
            "--db {db}: {} has no database {db} (its databases: {})",
            spec.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ),
        "name one of those, or see what has dumps with `homelab backup list`; nothing was changed",
    ))
}

/// What happens, for the question: after the dump is named.
fn consequence(target: &Target, args: &RestorePostgresArgs) -> String {
    match (target, &args.into) {
        (Target::Globals, _) => "Every role in the dump gets the password it had at dump time; roles that exist already are reported and kept.".to_string(),
        (Target::Database(db), Some(into)) => {
            format!("It is restored into the new database {into}; {db} is not changed.")
        }
        (Target::Database(db), None) if args.drop_old => format!(
            "The restored copy replaces {db}, and the current {db} is DROPPED once the swap has succeeded (--drop-old)."
        ),
        (Target::Database(db), None) => format!(
            "The restored copy replaces {db}; the current {db} is kept, renamed to {db}_before_restore_<time>, until you drop it."
        ),
    }
}

fn postgres(global: &Global, args: &RestorePostgresArgs, out: &Output) -> anyhow::Result<u8> {
    let target = check_arguments(args)?;
    let (loaded, _, setup) = load(global, out)?;
    if let Target::Database(db) = target {
        check_database_of_lab(db, &loaded, &global.file)?;
    }
    let what = target.what(args);
    // Everything that can be checked without the user is checked before asking: the name,
    // then the kubeconfig and the API. A confirmation is never asked for a restore that
    // cannot start.
    let conn = backup::connect(&args.job, &setup.lab, out)?;
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !args.yes && !interactive {
        return Err(exit::Exit {
            code: exit::FAILURE,
            message: format!(
                "refusing to {what} without a confirmation: there is no terminal to ask on. Nothing was changed; run it again with --yes to confirm."
            ),
            help: None,
        }
        .into());
    }
    let name = match target {
        Target::Database(db) => format!("database {db}"),
        Target::Globals => "the roles".to_string(),
    };

    if !args.yes {
        // Show what will be restored before asking, from the volume itself.
        out.status(format!(
            "Looking up the dumps of {name} on the backup volume"
        ));
        let ran = backup::run(&conn, &setup, Operation::List, &[], args.job.timeout, out)?;
        let listing = BackupListing::parse(&ran.outcome.log)
            .map_err(|e| no_report(&ran, "listing the dumps", &e))?;
        let backup_dir = backup_dir_of(&ran.manifest);
        let candidates: Vec<&DumpEntry> = listing
            .dumps
            .iter()
            .filter(|d| target.is_dump_of(d))
            .collect();
        if candidates.is_empty() {
            let mut known: Vec<&str> = listing
                .dumps
                .iter()
                .filter_map(|d| d.database.as_deref())
                .collect();
            known.dedup();
            return Err(exit::usage(format!(
                "there are no dumps of {name} (dumps exist for: {}); check the name with `homelab backup list`. Nothing was changed.",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        let dump = match &args.from {
            Some(from) => candidates
                .iter()
                .copied()
                .find(|d| names_dump(from, d, &backup_dir)),
            None => candidates
                .iter()
                .copied()
                .filter(|d| d.status == DumpValidity::Valid)
                .max_by_key(|d| d.created_at),
        };
        let Some(dump) = dump else {
            return Err(exit::usage(match &args.from {
                Some(from) => format!(
                    "{from} is not a dump of {name}; its dumps are: {}. Nothing was changed.",
                    candidates
                        .iter()
                        .map(|d| d.file.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => format!(
                    "{name} has no valid dump to restore (every kept dump failed its check; see `homelab backup list`). Nothing was changed."
                ),
            }));
        };
        let now = homelab_ops::backup_job::now();
        let question = format!(
            "{} from {} (taken {}, {} ago, {})?\n{}",
            match target {
                Target::Database(db) => format!("Restore database {db}"),
                Target::Globals => "Apply the roles".to_string(),
            },
            dump.file,
            dump.created_at,
            human_age(dump.created_at.seconds_before(now)),
            dump.bytes
                .map(human_size)
                .unwrap_or_else(|| "size unknown".into()),
            consequence(&target, args)
        );
        if !crate::output::ask_yes(&question) {
            return Err(exit::Exit {
                code: exit::FAILURE,
                message: format!("{what}: cancelled, nothing was changed"),
                help: None,
            }
            .into());
        }
    }

    let mut script_args = match target {
        Target::Database(db) => vec!["--db".to_string(), db.to_string()],
        Target::Globals => vec!["--globals".to_string()],
    };
    match &args.from {
        Some(from) => script_args.extend(["--from".to_string(), from.clone()]),
        None => script_args.push("--latest".into()),
    }
    if let Some(into) = &args.into {
        script_args.extend(["--into".to_string(), into.clone()]);
    }
    if args.drop_old {
        script_args.push("--drop-old".into());
    }
    out.status(format!(
        "Restoring {} of lab `{}` ({})",
        match target {
            Target::Database(db) => format!("database {db}"),
            Target::Globals => "the roles".to_string(),
        },
        setup.lab,
        match (&target, &args.into) {
            (Target::Globals, _) => "applying a globals dump".to_string(),
            (_, Some(into)) => format!("into the new database {into}"),
            _ => "into a new database, checked, then swapped in".to_string(),
        }
    ));
    let ran = backup::run(
        &conn,
        &setup,
        Operation::Restore,
        &script_args,
        args.job.timeout,
        out,
    )?;
    let report = match RestoreReport::parse(&ran.outcome.log) {
        Ok(r) => r,
        Err(e) => return Err(no_report(&ran, "the restore", &e)),
    };
    let s = &report.summary;
    let restored = ran.outcome.succeeded && s.status == RestoreStatus::Restored;
    let lines = report_lines(
        &ran.outcome.log,
        homelab_backup::postgres::RESTORE_LINE_PREFIX,
    );
    let refused = ran.outcome.exit_code == Some(homelab_backup::postgres::EXIT_USAGE);
    let data = json!({
        "ok": restored,
        "exitCode": if restored { exit::OK } else if refused { exit::USAGE } else { exit::FAILURE },
        "job": job_json(&ran),
        "restore": lines.iter().rfind(|l| l["kind"] == "summary").cloned().unwrap_or(Value::Null),
        "failedTables": lines.iter().filter(|l| l["kind"] == "table").cloned().collect::<Vec<_>>(),
    });
    let from = s.file.as_deref().unwrap_or("the dump");
    if restored {
        let text = restored_text(&target, args, s, from);
        out.result(|| text, &data);
        return Ok(exit::OK);
    }
    let reason = s
        .error
        .clone()
        .or_else(|| ran.outcome.failure.clone())
        .unwrap_or_else(|| "restore.sh reported a failure".into());
    if refused {
        if out.is_json() {
            out.json(&data);
            return Ok(exit::USAGE);
        }
        return Err(exit::usage(format!(
            "the restore was refused: {reason}. Nothing was changed; see `homelab backup list` for the databases and dumps there are"
        )));
    }
    let unchanged = match target {
        Target::Database(db) => format!("{db} is unchanged"),
        Target::Globals => "roles applied before the failing statement stay".to_string(),
    };
    let mut text = format!("Restore of {name} FAILED: {reason}\n");
    for t in &report.failed_tables {
        text.push_str(&failed_table(t));
    }
    text.push_str(&format!("{unchanged}."));
    Ok(failed(
        out,
        text,
        data,
        format!(
            "the restore of {name} failed: {reason}; {unchanged}. See {}",
            ran.logs_hint()
        ),
    ))
}

/// What a successful restore did, and which database is where now.
fn restored_text(
    target: &Target,
    args: &RestorePostgresArgs,
    s: &homelab_backup::records::RestoreSummary,
    from: &str,
) -> String {
    let took = s.duration_seconds;
    let db = match target {
        Target::Globals => return format!("Applied the roles from {from} (took {took}s)."),
        Target::Database(db) => *db,
    };
    let checked = match (s.tables, s.mismatches) {
        (Some(t), Some(0)) => {
            format!("{t} table(s) checked, every row count and checksum matches the dump")
        }
        (Some(t), Some(m)) => format!("{t} table(s) checked, {m} differ"),
        _ => "not checked".to_string(),
    };
    if !s.swapped {
        let restored_as = s.restored_as.as_deref().unwrap_or(db);
        return format!(
            "Restored database {db} from {from} into the new database {restored_as}: {checked} (took {took}s).\n{db} was not changed and is kept beside it; point the application at {restored_as}, or restore again without --into to swap it in."
        );
    }
    let head = format!(
        "Restored database {db} from {from}: {checked} (took {took}s).\n{db} now holds the restored data"
    );
    match s.previous_kept_as.as_deref() {
        Some(kept) => format!(
            "{head}. The database it replaced is kept beside it as {kept}: check the restored data, then drop {kept} when you no longer need it."
        ),
        None if args.drop_old => {
            format!("{head}; the database it replaced was dropped (--drop-old).")
        }
        None => format!("{head}; there was no database {db} before, so none was kept."),
    }
}

fn failed_table(t: &TableCheck) -> String {
    format!(
        "  {}: {}, rows {} (recorded {}), checksum {} (recorded {})\n",
        t.table,
        table_status(t),
        t.actual_rows
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into()),
        t.expected_rows
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into()),
        t.actual_checksum.as_deref().unwrap_or("-"),
        t.expected_checksum.as_deref().unwrap_or("-"),
    )
}

/// Where the backup volume is mounted in the Job's pod (to recognise absolute dump paths).
fn backup_dir_of(job: &Value) -> String {
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let claim_volume = job["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v.get("persistentVolumeClaim").is_some())
        .and_then(|v| v["name"].as_str());
    container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"].as_str() == claim_volume)
        .and_then(|m| m["mountPath"].as_str())
        .unwrap_or("/backups")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(file: &str) -> DumpEntry {
        serde_json::from_value(json!({
            "kind": "database", "database": "shop", "file": file, "bytes": 10,
            "created_at": "2026-11-22T00:15:46Z", "status": "valid", "reason": null,
            "tables": 1, "rows": 1
        }))
        .unwrap()
    }

    #[test]
    fn a_dump_is_named_by_its_listed_path_its_file_name_or_its_path_in_the_pod() {
        let d = dump("db/shop/shop.20261122T001546Z.dump");
        for from in [
            "db/shop/shop.20261122T001546Z.dump",
            "shop.20261122T001546Z.dump",
            "/backups/db/shop/shop.20261122T001546Z.dump",
        ] {
            assert!(names_dump(from, &d, "/backups"), "{from}");
        }
        for from in ["shop.dump", "/elsewhere/db/shop/shop.20261122T001546Z.dump"] {
            assert!(!names_dump(from, &d, "/backups"), "{from}");
        }
    }

    #[test]
    fn the_backup_dir_is_where_the_claim_is_mounted() {
        let job = json!({"spec": {"template": {"spec": {
            "containers": [{"volumeMounts": [
                {"name": "scripts", "mountPath": "/opt/homelab"},
                {"name": "backups", "mountPath": "/var/backups"}]}],
            "volumes": [{"name": "scripts", "configMap": {"name": "x"}},
                        {"name": "backups", "persistentVolumeClaim": {"claimName": "b"}}]}}}});
        assert_eq!(backup_dir_of(&job), "/var/backups");
    }
}
