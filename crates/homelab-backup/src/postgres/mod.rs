//! The PostgreSQL backup, restore, drill and listing scripts, rendered from a small parameter
//! type; pure: it builds text and never runs anything, touches a disk or opens a connection.
//!
//! The scripts run in the official `postgres:<major>` image (bash, coreutils, findutils, grep
//! and the client tools; no jq, no python). They connect with the libpq environment
//! (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`) and keep everything under
//! [`PostgresBackupParams::backup_dir`]:
//!
//! ```text
//! <backup_dir>/db/<name>/<name>.<YYYYMMDDTHHMMSSZ>.dump       pg_dump -Fc
//! <backup_dir>/db/<name>/<name>.<YYYYMMDDTHHMMSSZ>.manifest   size, SHA-256, per-table rows and checksums
//! <backup_dir>/globals/globals.<YYYYMMDDTHHMMSSZ>.sql         pg_dumpall --globals-only
//! <backup_dir>/globals/globals.<YYYYMMDDTHHMMSSZ>.manifest
//! <backup_dir>/status.json        last successful run  (crate::records::BackupRun)
//! <backup_dir>/last-run.json      last attempt         (crate::records::BackupRun)
//! <backup_dir>/last-drill.jsonl   last drill's report  (crate::records::DrillReport)
//! ```
//!
//! `<name>` is the database name with every byte outside `[A-Za-z0-9_-]` written as `%XX`.

use std::fmt::Write as _;

/// File name of the library every script sources; it carries the rendered configuration.
pub const LIB_SCRIPT: &str = "lib.sh";
/// `backup.sh`: no arguments. Exit 0 ok, 1 failed, 2 bad arguments, 3 another backup runs.
pub const BACKUP_SCRIPT: &str = "backup.sh";
/// `restore.sh --db NAME [--from FILE | --latest] [--into NEW | --drop-old]` or
/// `restore.sh --globals [--from FILE | --latest]`. Exit 0 ok, 1 failed, 2 refused.
pub const RESTORE_SCRIPT: &str = "restore.sh";
/// `drill.sh [--db NAME]...`. Exit 0 passed, 1 failed, 2 bad arguments.
pub const DRILL_SCRIPT: &str = "drill.sh";
/// `list.sh [--verify]`. Exit 0, or 2 on bad arguments.
pub const LIST_SCRIPT: &str = "list.sh";

/// Exit status of every script when it was given bad arguments or refused a target.
pub const EXIT_USAGE: i32 = 2;
/// Exit status of `backup.sh` when another run holds the lock.
pub const EXIT_LOCKED: i32 = 3;

/// Prefix of the run record `backup.sh` prints as its last stdout line.
pub const BACKUP_LINE_PREFIX: &str = "HOMELAB-BACKUP ";
/// Prefix of every line of the drill report.
pub const DRILL_LINE_PREFIX: &str = "HOMELAB-DRILL ";
/// Prefix of the lines `restore.sh` prints (failed tables and the summary).
pub const RESTORE_LINE_PREFIX: &str = "HOMELAB-RESTORE ";
/// Prefix of the per-dump lines of `list.sh`.
pub const DUMP_LINE_PREFIX: &str = "HOMELAB-DUMP ";
/// Prefix of the status record `list.sh` prints.
pub const STATUS_LINE_PREFIX: &str = "HOMELAB-STATUS ";
/// Prefix of the last-run record `list.sh` prints.
pub const LAST_RUN_LINE_PREFIX: &str = "HOMELAB-LAST-RUN ";

const LIB_TEMPLATE: &str = include_str!("scripts/lib.sh");
const BACKUP_TEMPLATE: &str = include_str!("scripts/backup.sh");
const RESTORE_TEMPLATE: &str = include_str!("scripts/restore.sh");
const DRILL_TEMPLATE: &str = include_str!("scripts/drill.sh");
const LIST_TEMPLATE: &str = include_str!("scripts/list.sh");
const CONFIG_MARKER: &str = "#@CONFIG@";

/// PostgreSQL's limit on identifier length, in bytes.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// What the backup scripts are rendered with. Build it with [`PostgresBackupParams::new`] and
/// adjust fields; [`scripts`] validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresBackupParams {
    /// Absolute directory the backup volume is mounted at in the backup container.
    pub backup_dir: String,
    /// Valid dumps kept per database (and for the globals); at least 1.
    pub keep: u32,
    /// The databases to dump; `None` dumps every database that is not a template and accepts
    /// connections, found at run time (scratch databases of drills and restores excluded).
    pub databases: Option<Vec<String>>,
    /// Database the scripts connect to for server-wide work (listing, creating, renaming).
    pub maintenance_db: String,
    /// A new dump smaller than this is rejected as implausible.
    pub min_dump_bytes: u64,
    /// A new dump smaller than this percentage of the previous one is reported as a warning.
    pub shrink_warn_percent: u32,
    /// `pg_restore --jobs` for restores and drills.
    pub restore_jobs: u32,
    /// What the backup records per table in the dump's snapshot, for restores and drills to
    /// compare against.
    pub table_checksums: TableChecksums,
    /// A lock older than this is taken to be left by a crashed run and is broken.
    pub lock_stale_after_secs: u64,
    /// Where the last successful run's record is written.
    pub status_file: String,
    /// Where the last attempt's record is written.
    pub last_run_file: String,
    /// Where the last drill's report is written.
    pub drill_report_file: String,
}

impl PostgresBackupParams {
    /// Parameters with the defaults: every database, records inside `backup_dir`.
    pub fn new(backup_dir: impl Into<String>, keep: u32) -> Self {
        let backup_dir = backup_dir.into();
        let base = backup_dir.trim_end_matches('/').to_string();
        PostgresBackupParams {
            status_file: format!("{base}/status.json"),
            last_run_file: format!("{base}/last-run.json"),
            drill_report_file: format!("{base}/last-drill.jsonl"),
            backup_dir,
            keep,
            databases: None,
            maintenance_db: "postgres".to_string(),
            min_dump_bytes: 256,
            shrink_warn_percent: 50,
            restore_jobs: 2,
            table_checksums: TableChecksums::RowHashes,
            lock_stale_after_secs: 6 * 3600,
        }
    }

    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ParamsError> {
        check_path("backup_dir", &self.backup_dir)?;
        if self.backup_dir.trim_end_matches('/').is_empty() {
            return Err(ParamsError::RootBackupDir);
        }
        check_path("status_file", &self.status_file)?;
        check_path("last_run_file", &self.last_run_file)?;
        check_path("drill_report_file", &self.drill_report_file)?;
        if self.keep == 0 {
            return Err(ParamsError::KeepZero);
        }
        if let Some(dbs) = &self.databases {
            if dbs.is_empty() {
                return Err(ParamsError::NoDatabases);
            }
            for (i, db) in dbs.iter().enumerate() {
                check_database_name("databases", db)?;
                if dbs[..i].contains(db) {
                    return Err(ParamsError::DuplicateDatabase { name: db.clone() });
                }
            }
        }
        check_database_name("maintenance_db", &self.maintenance_db)?;
        if self.shrink_warn_percent > 100 {
            return Err(ParamsError::OutOfRange {
                field: "shrink_warn_percent",
                value: u64::from(self.shrink_warn_percent),
                range: "0..=100",
            });
        }
        if !(1..=64).contains(&self.restore_jobs) {
            return Err(ParamsError::OutOfRange {
                field: "restore_jobs",
                value: u64::from(self.restore_jobs),
                range: "1..=64",
            });
        }
        if self.lock_stale_after_secs < 60 {
            return Err(ParamsError::OutOfRange {
                field: "lock_stale_after_secs",
                value: self.lock_stale_after_secs,
                range: "60 or more",
            });
        }
        Ok(())
    }

    fn backup_dir_normalized(&self) -> &str {
        self.backup_dir.trim_end_matches('/')
    }
}

/// What the backup records per table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TableChecksums {
    /// Row count and the sum of a 64-bit hash of every row: a restore or drill detects any
    /// changed value. Costs one more scan of the data on the server during the dump.
    #[default]
    RowHashes,
    /// Row count only: detects lost or extra rows, not changed values. The scan is cheaper.
    RowCountsOnly,
}

/// Why [`PostgresBackupParams`] cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("backup parameter {field} is {value:?}: it must be an absolute path (starting with /)")]
    RelativePath { field: &'static str, value: String },
    #[error(
        "backup parameter {field} contains a control character (line break, tab, ...): use a plain path"
    )]
    ControlCharacter { field: &'static str },
    #[error(
        "backup parameter backup_dir is the root directory: give the backup volume its own mount path, e.g. /backups"
    )]
    RootBackupDir,
    #[error(
        "backup parameter keep is 0: at least one dump must be kept; use 7 for a week of daily dumps"
    )]
    KeepZero,
    #[error(
        "backup parameter databases is an empty list: leave it unset to back up every database, or name at least one"
    )]
    NoDatabases,
    #[error("backup parameter {field} has database name {name:?}: {reason}")]
    BadDatabaseName {
        field: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("backup parameter databases names {name:?} twice: list each database once")]
    DuplicateDatabase { name: String },
    #[error("backup parameter {field} is {value}: it must be {range}")]
    OutOfRange {
        field: &'static str,
        value: u64,
        range: &'static str,
    },
}

fn check_path(field: &'static str, value: &str) -> Result<(), ParamsError> {
    if value.chars().any(char::is_control) {
        return Err(ParamsError::ControlCharacter { field });
    }
    if !value.starts_with('/') {
        return Err(ParamsError::RelativePath {
            field,
            value: value.to_string(),
        });
    }
    Ok(())
}

fn check_database_name(field: &'static str, name: &str) -> Result<(), ParamsError> {
    let bad = |reason| ParamsError::BadDatabaseName {
        field,
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(bad("PostgreSQL names are at most 63 bytes long"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("it contains a control character"));
    }
    Ok(())
}

/// One file to put into the scripts' ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// File name inside the mounted directory; the scripts find each other next to themselves.
    pub file_name: &'static str,
    pub content: String,
    /// Unix permission bits (for the ConfigMap volume's `items[].mode`).
    pub mode: u32,
}

/// The scripts, in a fixed order: `lib.sh`, `backup.sh`, `restore.sh`, `drill.sh`, `list.sh`.
/// Mount them together in one directory and run them with bash (`bash <dir>/backup.sh`).
pub fn scripts(params: &PostgresBackupParams) -> Result<Vec<Script>, ParamsError> {
    params.validate()?;
    let lib = LIB_TEMPLATE.replacen(CONFIG_MARKER, &config_block(params), 1);
    Ok(vec![
        Script {
            file_name: LIB_SCRIPT,
            content: lib,
            mode: 0o444,
        },
        Script {
            file_name: BACKUP_SCRIPT,
            content: BACKUP_TEMPLATE.to_string(),
            mode: 0o555,
        },
        Script {
            file_name: RESTORE_SCRIPT,
            content: RESTORE_TEMPLATE.to_string(),
            mode: 0o555,
        },
        Script {
            file_name: DRILL_SCRIPT,
            content: DRILL_TEMPLATE.to_string(),
            mode: 0o555,
        },
        Script {
            file_name: LIST_SCRIPT,
            content: LIST_TEMPLATE.to_string(),
            mode: 0o555,
        },
    ])
}

/// `value` as one bash word that expands to exactly `value`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn config_block(p: &PostgresBackupParams) -> String {
    let mut out = String::from(
        "# Configuration rendered by homelab (change homelab.yaml and render again).\n",
    );
    let mut line = |name: &str, value: String| {
        let _ = writeln!(out, "HB_{name}={value}");
    };
    line("BACKUP_DIR", shell_quote(p.backup_dir_normalized()));
    line("KEEP", p.keep.to_string());
    match &p.databases {
        None => {
            line("DISCOVER", "1".into());
            line("DATABASES", "()".into());
        }
        Some(dbs) => {
            line("DISCOVER", "0".into());
            let quoted: Vec<String> = dbs.iter().map(|d| shell_quote(d)).collect();
            line("DATABASES", format!("({})", quoted.join(" ")));
        }
    }
    line("MAINTENANCE_DB", shell_quote(&p.maintenance_db));
    line("MIN_DUMP_BYTES", p.min_dump_bytes.to_string());
    line("SHRINK_WARN_PERCENT", p.shrink_warn_percent.to_string());
    line("RESTORE_JOBS", p.restore_jobs.to_string());
    line(
        "CHECKSUMS",
        match p.table_checksums {
            TableChecksums::RowHashes => shell_quote("hash"),
            TableChecksums::RowCountsOnly => shell_quote("count"),
        },
    );
    line("LOCK_STALE_SECONDS", p.lock_stale_after_secs.to_string());
    line("STATUS_FILE", shell_quote(&p.status_file));
    line("LAST_RUN_FILE", shell_quote(&p.last_run_file));
    line("DRILL_REPORT_FILE", shell_quote(&p.drill_report_file));
    out
}

/// The file-name form of a database name the scripts use (`%XX` for bytes outside
/// `[A-Za-z0-9_-]`), e.g. to find `<backup_dir>/db/<encoded>/`.
pub fn encode_database_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_params_render_five_scripts_with_the_configuration_in_the_library() {
        let params = PostgresBackupParams::new("/backups/", 7);
        let scripts = scripts(&params).unwrap();
        let names: Vec<_> = scripts.iter().map(|s| s.file_name).collect();
        assert_eq!(
            names,
            ["lib.sh", "backup.sh", "restore.sh", "drill.sh", "list.sh"]
        );
        let lib = &scripts[0].content;
        assert!(lib.contains("HB_BACKUP_DIR='/backups'\n"), "{lib}");
        assert!(lib.contains("HB_KEEP=7\n"));
        assert!(lib.contains("HB_DISCOVER=1\n"));
        assert!(lib.contains("HB_STATUS_FILE='/backups/status.json'\n"));
        assert!(!lib.contains(CONFIG_MARKER));
        assert!(scripts[1..].iter().all(|s| s.mode == 0o555));
    }

    #[test]
    fn database_names_are_quoted_for_bash() {
        let mut params = PostgresBackupParams::new("/b", 3);
        params.databases = Some(vec!["n8n".into(), "it's $(odd)".into()]);
        let lib = &scripts(&params).unwrap()[0].content;
        assert!(
            lib.contains(r"HB_DATABASES=('n8n' 'it'\''s $(odd)')"),
            "{lib}"
        );
        assert!(lib.contains("HB_DISCOVER=0\n"));
    }

    #[test]
    fn rendering_is_deterministic() {
        let params = PostgresBackupParams::new("/backups", 7);
        assert_eq!(scripts(&params).unwrap(), scripts(&params).unwrap());
    }

    #[test]
    fn bad_parameters_are_refused_with_the_field_named() {
        let base = PostgresBackupParams::new("/backups", 7);
        let cases: Vec<(PostgresBackupParams, &str)> = vec![
            (PostgresBackupParams::new("backups", 7), "absolute path"),
            (PostgresBackupParams::new("/", 7), "root directory"),
            (PostgresBackupParams::new("/b\nx", 7), "control character"),
            (
                PostgresBackupParams {
                    keep: 0,
                    ..base.clone()
                },
                "keep is 0",
            ),
            (
                PostgresBackupParams {
                    databases: Some(vec![]),
                    ..base.clone()
                },
                "empty list",
            ),
            (
                PostgresBackupParams {
                    databases: Some(vec![String::new()]),
                    ..base.clone()
                },
                "it is empty",
            ),
            (
                PostgresBackupParams {
                    databases: Some(vec!["x".repeat(64)]),
                    ..base.clone()
                },
                "63 bytes",
            ),
            (
                PostgresBackupParams {
                    databases: Some(vec!["a".into(), "a".into()]),
                    ..base.clone()
                },
                "twice",
            ),
            (
                PostgresBackupParams {
                    restore_jobs: 0,
                    ..base.clone()
                },
                "restore_jobs",
            ),
            (
                PostgresBackupParams {
                    shrink_warn_percent: 101,
                    ..base.clone()
                },
                "shrink_warn_percent",
            ),
            (
                PostgresBackupParams {
                    lock_stale_after_secs: 5,
                    ..base.clone()
                },
                "lock_stale_after_secs",
            ),
            (
                PostgresBackupParams {
                    status_file: "status.json".into(),
                    ..base.clone()
                },
                "status_file",
            ),
            (
                PostgresBackupParams {
                    maintenance_db: String::new(),
                    ..base.clone()
                },
                "maintenance_db",
            ),
        ];
        for (params, expected) in cases {
            let err = scripts(&params).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
        }
    }

    #[test]
    fn encoded_names_keep_safe_bytes_and_escape_the_rest() {
        assert_eq!(encode_database_name("n8n_prod-1"), "n8n_prod-1");
        assert_eq!(encode_database_name("my db.x/é"), "my%20db%2Ex%2F%C3%A9");
    }

    #[test]
    fn shell_quote_survives_single_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
