//! Types and parsers for what the backup scripts write and print: run records (`status.json`,
//! `last-run.json`, the `HOMELAB-BACKUP` line), drill reports, restore reports, dump listings
//! and manifests. Pure: parsers take text the caller read from a file or from a Job's log.

use serde::Deserialize;

use crate::postgres::{
    BACKUP_LINE_PREFIX, DRILL_LINE_PREFIX, DUMP_LINE_PREFIX, LAST_RUN_LINE_PREFIX,
    RESTORE_LINE_PREFIX, STATUS_LINE_PREFIX,
};
use crate::time::UtcTime;

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{what}: line {line} is not a valid record: {source}")]
    BadJson {
        what: &'static str,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: no {missing} found; did the script run to the end? Check its log")]
    Missing {
        what: &'static str,
        missing: &'static str,
    },
    #[error(
        "{what} has format {found}; this homelab reads format {expected}: use the homelab version that rendered the scripts"
    )]
    UnsupportedFormat {
        what: &'static str,
        found: u32,
        expected: u32,
    },
    #[error("manifest line {line}: {reason}")]
    Manifest { line: usize, reason: String },
}

/// Format number of the run records this crate reads.
pub const RECORD_FORMAT: u32 = 1;
/// Format number of the manifests this crate reads.
pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

/// One run of `backup.sh`: `status.json` holds the last successful one, `last-run.json` and
/// the `HOMELAB-BACKUP` stdout line the last attempt.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BackupRun {
    pub format: u32,
    pub result: Outcome,
    pub started_at: UtcTime,
    pub finished_at: UtcTime,
    pub duration_seconds: u64,
    pub backup_dir: String,
    pub keep: u32,
    /// `None` when the globals dump failed.
    pub globals: Option<GlobalsDump>,
    pub databases: Vec<DatabaseDump>,
    /// Kept dumps that failed their check in this run (left in place, not counted as valid).
    pub invalid_dumps: Vec<InvalidDump>,
    /// Files removed, relative to the backup directory: by retention, and the `.partial` files
    /// left by runs that stopped while writing them (each also named in `warnings`).
    pub deleted: Vec<String>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

impl BackupRun {
    /// Reads a record as written to `status.json` / `last-run.json`.
    pub fn from_json(text: &str) -> Result<BackupRun, RecordError> {
        let run: BackupRun =
            serde_json::from_str(text.trim()).map_err(|source| RecordError::BadJson {
                what: "backup run record",
                line: 1,
                source,
            })?;
        check_format("backup run record", run.format)?;
        Ok(run)
    }

    /// Finds the `HOMELAB-BACKUP` line in the output of `backup.sh` (e.g. a Job's log).
    pub fn from_log(log: &str) -> Result<BackupRun, RecordError> {
        last_prefixed(log, BACKUP_LINE_PREFIX)
            .ok_or(RecordError::Missing {
                what: "backup log",
                missing: "HOMELAB-BACKUP line",
            })
            .and_then(|(line, json)| BackupRun::from_json(json).map_err(|e| with_line(e, line)))
    }

    pub fn succeeded(&self) -> bool {
        self.result == Outcome::Success
    }

    /// Total bytes of the dumps this run wrote.
    pub fn total_bytes(&self) -> u64 {
        self.databases.iter().filter_map(|d| d.bytes).sum::<u64>()
            + self.globals.as_ref().map_or(0, |g| g.bytes)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GlobalsDump {
    pub file: String,
    pub manifest: String,
    pub bytes: u64,
    pub sha256: String,
}

/// One database of a run; the file fields are `None` when its dump failed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DatabaseDump {
    pub name: String,
    pub result: Outcome,
    #[serde(default)]
    pub file: Option<String>,
    /// The manifest with the per-table row counts and checksums (see [`Manifest`]).
    #[serde(default)]
    pub manifest: Option<String>,
    #[serde(default)]
    pub bytes: Option<u64>,
    #[serde(default)]
    pub sha256: Option<String>,
    pub duration_seconds: u64,
    #[serde(default)]
    pub tables: Option<u64>,
    #[serde(default)]
    pub rows: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InvalidDump {
    pub file: String,
    pub reason: String,
}

fn check_format(what: &'static str, found: u32) -> Result<(), RecordError> {
    if found != RECORD_FORMAT {
        return Err(RecordError::UnsupportedFormat {
            what,
            found,
            expected: RECORD_FORMAT,
        });
    }
    Ok(())
}

fn with_line(e: RecordError, line: usize) -> RecordError {
    match e {
        RecordError::BadJson { what, source, .. } => RecordError::BadJson { what, line, source },
        other => other,
    }
}

/// Lines of `text` that start with `prefix` (after leading blanks), with their 1-based line
/// numbers and the rest of the line.
fn prefixed<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    text.lines().enumerate().filter_map(move |(i, l)| {
        l.trim_start()
            .strip_prefix(prefix)
            .map(|rest| (i + 1, rest))
    })
}

fn last_prefixed<'a>(text: &'a str, prefix: &'a str) -> Option<(usize, &'a str)> {
    prefixed(text, prefix).last()
}

fn parse_prefixed<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
    prefix: &str,
) -> Result<Vec<T>, RecordError> {
    prefixed(text, prefix)
        .map(|(line, json)| {
            serde_json::from_str(json).map_err(|source| RecordError::BadJson { what, line, source })
        })
        .collect()
}

/// Status of one table in a drill or restore check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableStatus {
    /// Row count and checksum equal those recorded at dump time.
    Ok,
    /// Present, but the row count or the checksum differs.
    Mismatch,
    /// Recorded at dump time, absent after the restore.
    Missing,
    /// Present after the restore, not recorded at dump time.
    Unexpected,
}

/// One table compared after a restore.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TableCheck {
    pub database: String,
    /// Schema-qualified, quoted as PostgreSQL's `format('%I.%I')` quotes it.
    pub table: String,
    pub status: TableStatus,
    pub expected_rows: Option<u64>,
    pub actual_rows: Option<u64>,
    pub expected_checksum: Option<String>,
    pub actual_checksum: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpValidity {
    Valid,
    Invalid,
}

/// A kept dump's integrity as the drill or the listing found it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DumpCheck {
    /// `None` for the globals.
    pub database: Option<String>,
    pub file: String,
    pub status: DumpValidity,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrillDatabaseStatus {
    Ok,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DrillDatabase {
    pub database: String,
    pub status: DrillDatabaseStatus,
    pub file: Option<String>,
    pub tables: Option<u64>,
    pub mismatches: Option<u64>,
    pub restore_seconds: Option<u64>,
    pub verify_seconds: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrillVerdict {
    Passed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DrillSummary {
    pub status: DrillVerdict,
    pub databases: u64,
    pub failed_databases: u64,
    pub tables: u64,
    pub mismatches: u64,
    pub invalid_dumps: u64,
    pub started_at: UtcTime,
    pub finished_at: UtcTime,
    pub duration_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum DrillLine {
    Dump(DumpCheck),
    Table(TableCheck),
    Database(DrillDatabase),
    Summary(DrillSummary),
}

/// The report of `drill.sh`, from its stdout, its Job's log or `last-drill.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillReport {
    pub dumps: Vec<DumpCheck>,
    pub tables: Vec<TableCheck>,
    pub databases: Vec<DrillDatabase>,
    pub summary: DrillSummary,
}

impl DrillReport {
    pub fn parse(text: &str) -> Result<DrillReport, RecordError> {
        let lines: Vec<DrillLine> = parse_prefixed("drill report", text, DRILL_LINE_PREFIX)?;
        let mut report = (Vec::new(), Vec::new(), Vec::new(), None);
        for line in lines {
            match line {
                DrillLine::Dump(d) => report.0.push(d),
                DrillLine::Table(t) => report.1.push(t),
                DrillLine::Database(d) => report.2.push(d),
                DrillLine::Summary(s) => report.3 = Some(s),
            }
        }
        let summary = report.3.ok_or(RecordError::Missing {
            what: "drill report",
            missing: "summary line",
        })?;
        Ok(DrillReport {
            dumps: report.0,
            tables: report.1,
            databases: report.2,
            summary,
        })
    }

    pub fn passed(&self) -> bool {
        self.summary.status == DrillVerdict::Passed
    }

    /// Tables whose status is not [`TableStatus::Ok`].
    pub fn differences(&self) -> impl Iterator<Item = &TableCheck> {
        self.tables.iter().filter(|t| t.status != TableStatus::Ok)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestoreStatus {
    Restored,
    Failed,
}

/// The outcome line of `restore.sh`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RestoreSummary {
    pub status: RestoreStatus,
    /// Empty for `--globals`.
    pub database: String,
    pub file: Option<String>,
    /// The database that now holds the restored data (`NAME` after a swap, `NEW` with `--into`).
    pub restored_as: Option<String>,
    pub swapped: bool,
    /// Where the database that was replaced now lives (kept until the user drops it).
    pub previous_kept_as: Option<String>,
    pub tables: Option<u64>,
    pub mismatches: Option<u64>,
    pub duration_seconds: u64,
    /// `pg_restore` into the new database and its database-level settings.
    #[serde(default)]
    pub restore_millis: Option<u64>,
    /// The per-table row count and checksum check.
    #[serde(default)]
    pub check_millis: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum RestoreLine {
    Table(TableCheck),
    Summary(RestoreSummary),
}

/// What `restore.sh` printed: the tables that failed the check, and the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    pub failed_tables: Vec<TableCheck>,
    pub summary: RestoreSummary,
}

impl RestoreReport {
    pub fn parse(text: &str) -> Result<RestoreReport, RecordError> {
        let lines: Vec<RestoreLine> = parse_prefixed("restore report", text, RESTORE_LINE_PREFIX)?;
        let mut failed_tables = Vec::new();
        let mut summary = None;
        for line in lines {
            match line {
                RestoreLine::Table(t) => failed_tables.push(t),
                RestoreLine::Summary(s) => summary = Some(s),
            }
        }
        let summary = summary.ok_or(RecordError::Missing {
            what: "restore report",
            missing: "summary line",
        })?;
        Ok(RestoreReport {
            failed_tables,
            summary,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpKind {
    Database,
    Globals,
}

/// One kept dump, as `list.sh` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DumpEntry {
    pub kind: DumpKind,
    /// `None` for the globals.
    pub database: Option<String>,
    /// Relative to the backup directory.
    pub file: String,
    pub bytes: Option<u64>,
    pub created_at: UtcTime,
    pub status: DumpValidity,
    pub reason: Option<String>,
    pub tables: u64,
    pub rows: u64,
}

/// Everything `list.sh` prints: the dumps and the records found in the backup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupListing {
    pub dumps: Vec<DumpEntry>,
    pub last_success: Option<BackupRun>,
    pub last_run: Option<BackupRun>,
    pub last_drill: Option<DrillReport>,
}

impl BackupListing {
    pub fn parse(text: &str) -> Result<BackupListing, RecordError> {
        let dumps = parse_prefixed("backup listing", text, DUMP_LINE_PREFIX)?;
        let record = |prefix| -> Result<Option<BackupRun>, RecordError> {
            last_prefixed(text, prefix)
                .map(|(line, json)| BackupRun::from_json(json).map_err(|e| with_line(e, line)))
                .transpose()
        };
        let last_drill = if prefixed(text, DRILL_LINE_PREFIX).next().is_some() {
            Some(DrillReport::parse(text)?)
        } else {
            None
        };
        Ok(BackupListing {
            dumps,
            last_success: record(STATUS_LINE_PREFIX)?,
            last_run: record(LAST_RUN_LINE_PREFIX)?,
            last_drill,
        })
    }

    /// The newest valid dump of `database`.
    pub fn latest_valid(&self, database: &str) -> Option<&DumpEntry> {
        self.dumps
            .iter()
            .filter(|d| d.database.as_deref() == Some(database) && d.status == DumpValidity::Valid)
            .max_by_key(|d| d.created_at)
    }
}

/// How a table's checksum was computed (recorded so that checks recompute the same thing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumMethod {
    /// Sum over the rows of each column's own hash function, seeded with the hash of the
    /// column's name, combined by XOR (columns without a callable one hashed together as
    /// one record): no row value is built.
    ValueHash,
    /// Sum of `hash_record_extended(row, 0)`: the column types' own hash functions, through
    /// the row as one record (manifests written before [`ChecksumMethod::ValueHash`]).
    RecordHash,
    /// Sum of `hashtextextended(row::text, 0)`: the row's text form.
    TextHash,
    /// Row count only; the checksum is `-`.
    RowCount,
}

/// One table as recorded at dump time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableChecksum {
    /// Schema-qualified, quoted as `format('%I.%I')` quotes it.
    pub table: String,
    pub method: ChecksumMethod,
    pub rows: u64,
    /// Sum of the rows' 64-bit hashes, in decimal (it may exceed 64 bits); `-` for
    /// [`ChecksumMethod::RowCount`].
    pub checksum: String,
}

/// The manifest written beside every dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `None` for a globals dump.
    pub database: Option<String>,
    pub dump: String,
    pub bytes: u64,
    pub sha256: String,
    pub snapshot: Option<String>,
    pub dumped_at: Option<UtcTime>,
    pub server_version_num: Option<u32>,
    pub tables: Vec<TableChecksum>,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, RecordError> {
        let bad = |line: usize, reason: String| RecordError::Manifest { line, reason };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, l)) if l == format!("homelab-backup-manifest\t{MANIFEST_FORMAT}") => {}
            Some((_, l)) if l.starts_with("homelab-backup-manifest\t") => {
                let found = l["homelab-backup-manifest\t".len()..].parse().unwrap_or(0);
                return Err(RecordError::UnsupportedFormat {
                    what: "manifest",
                    found,
                    expected: MANIFEST_FORMAT,
                });
            }
            _ => return Err(bad(1, "not a homelab backup manifest".into())),
        }
        let mut database = None;
        let mut dump = None;
        let mut bytes = None;
        let mut sha256 = None;
        let mut snapshot = None;
        let mut dumped_at = None;
        let mut server_version_num = None;
        let mut tables = Vec::new();
        let mut end = None;
        for (n, line) in lines {
            if end.is_some() {
                return Err(bad(n, "text after the end line".into()));
            }
            let fields: Vec<&str> = line.split('\t').collect();
            let one = |fields: &[&str]| -> Result<String, RecordError> {
                match fields {
                    [_, v] => Ok((*v).to_string()),
                    _ => Err(bad(n, format!("expected 2 fields, found {}", fields.len()))),
                }
            };
            match fields[0] {
                "database" => {
                    let json = one(&fields)?;
                    database = Some(
                        serde_json::from_str::<String>(&json)
                            .map_err(|e| bad(n, format!("database name: {e}")))?,
                    );
                }
                "globals" => {}
                "dump" => dump = Some(one(&fields)?),
                "bytes" => {
                    bytes = Some(
                        one(&fields)?
                            .parse::<u64>()
                            .map_err(|e| bad(n, format!("bytes: {e}")))?,
                    )
                }
                "sha256" => sha256 = Some(one(&fields)?),
                "snapshot" => snapshot = Some(one(&fields)?),
                "dumped_at" => {
                    dumped_at = Some(
                        one(&fields)?
                            .parse::<UtcTime>()
                            .map_err(|e| bad(n, e.to_string()))?,
                    )
                }
                "server_version_num" => {
                    server_version_num = Some(
                        one(&fields)?
                            .parse::<u32>()
                            .map_err(|e| bad(n, format!("server_version_num: {e}")))?,
                    )
                }
                "table" => {
                    let [_, name, method, rows, checksum] = fields[..] else {
                        return Err(bad(
                            n,
                            format!("table line has {} fields, not 5", fields.len()),
                        ));
                    };
                    tables.push(TableChecksum {
                        table: serde_json::from_str(name)
                            .map_err(|e| bad(n, format!("table name: {e}")))?,
                        method: match method {
                            "v" => ChecksumMethod::ValueHash,
                            "r" => ChecksumMethod::RecordHash,
                            "t" => ChecksumMethod::TextHash,
                            "c" => ChecksumMethod::RowCount,
                            other => {
                                return Err(bad(n, format!("unknown checksum method {other:?}")));
                            }
                        },
                        rows: rows.parse().map_err(|e| bad(n, format!("rows: {e}")))?,
                        checksum: checksum.to_string(),
                    });
                }
                "end" => {
                    let count: usize = one(&fields)?
                        .parse()
                        .map_err(|e| bad(n, format!("end: {e}")))?;
                    if count != tables.len() {
                        return Err(bad(
                            n,
                            format!(
                                "end line counts {count} tables, the manifest lists {}",
                                tables.len()
                            ),
                        ));
                    }
                    end = Some(count);
                }
                // Fields added by later versions of the same format are skipped.
                _ => {}
            }
        }
        let last = text.lines().count();
        if end.is_none() {
            return Err(bad(last, "no end line: the manifest is incomplete".into()));
        }
        let missing = |what: &str| bad(last, format!("no {what} line"));
        Ok(Manifest {
            database,
            dump: dump.ok_or_else(|| missing("dump"))?,
            bytes: bytes.ok_or_else(|| missing("bytes"))?,
            sha256: sha256.ok_or_else(|| missing("sha256"))?,
            snapshot,
            dumped_at,
            server_version_num,
            tables,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = r#"{"format":1,"kind":"backup","result":"success","started_at":"2026-11-22T00:15:46Z","finished_at":"2026-11-22T00:15:49Z","duration_seconds":3,"backup_dir":"/tmp/bk","keep":3,"globals":{"file":"globals/globals.20261122T001546Z.sql","manifest":"globals/globals.20261122T001546Z.manifest","bytes":640,"sha256":"2a77"},"databases":[{"name":"shop","result":"success","file":"db/shop/shop.20261122T001546Z.dump","manifest":"db/shop/shop.20261122T001546Z.manifest","bytes":16552,"sha256":"89f9","duration_seconds":0,"tables":2,"rows":1002},{"name":"bad","result":"failure","error":"pg_dump failed","duration_seconds":1}],"invalid_dumps":[{"file":"db/x/x.20261121T001546Z.dump","reason":"corrupted"}],"deleted":[],"warnings":[],"errors":["database bad: pg_dump failed"]}"#;

    #[test]
    fn a_run_record_reads_back_with_its_failures() {
        let run = BackupRun::from_json(RUN).unwrap();
        assert!(run.succeeded());
        assert_eq!(run.started_at.to_string(), "2026-11-22T00:15:46Z");
        assert_eq!(run.databases[1].result, Outcome::Failure);
        assert_eq!(run.databases[1].file, None);
        assert_eq!(run.total_bytes(), 640 + 16552);
        assert_eq!(run.invalid_dumps[0].reason, "corrupted");
    }

    #[test]
    fn the_run_line_is_found_among_log_lines() {
        let log = format!("2026-11-22T00:15:46Z backup.sh: dumping\nHOMELAB-BACKUP {RUN}\n");
        assert_eq!(BackupRun::from_log(&log).unwrap().keep, 3);
        let err = BackupRun::from_log("backup.sh: error: killed").unwrap_err();
        assert!(err.to_string().contains("no HOMELAB-BACKUP line"), "{err}");
    }

    #[test]
    fn a_newer_record_format_is_refused_by_name() {
        let err = BackupRun::from_json(&RUN.replace("\"format\":1", "\"format\":2")).unwrap_err();
        assert!(err.to_string().contains("format 2"), "{err}");
    }

    #[test]
    fn broken_json_names_the_line() {
        let err = DrillReport::parse("x\nHOMELAB-DRILL {\"kind\":\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn a_drill_report_without_summary_is_incomplete() {
        let err = DrillReport::parse(
            r#"HOMELAB-DRILL {"kind":"dump","database":null,"file":"g","status":"valid","reason":null}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("summary line"), "{err}");
    }

    #[test]
    fn a_manifest_reads_back_and_an_incomplete_one_does_not() {
        let text = "homelab-backup-manifest\t1\ndatabase\t\"my db\"\ndump\tmy%20db.20261122T001546Z.dump\nbytes\t1914\nsha256\tabc\nsnapshot\t00000003-00000108-1\ndumped_at\t2026-11-22T00:15:49Z\nserver_version_num\t150018\ntable\t\"public.\\\"Odd \\\"\\\"Name\\\"\"\tr\t2\t-22914836705708996\ntable\t\"public.items\"\tt\t1000\t-31049433894447423478\nend\t2\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.database.as_deref(), Some("my db"));
        assert_eq!(m.tables[0].method, ChecksumMethod::RecordHash);
        let per_column = Manifest::parse(&text.replace("\tr\t2\t", "\tv\t2\t")).unwrap();
        assert_eq!(per_column.tables[0].method, ChecksumMethod::ValueHash);
        assert!(
            Manifest::parse(&text.replace("\tr\t2\t", "\tx\t2\t"))
                .unwrap_err()
                .to_string()
                .contains("unknown checksum method \"x\"")
        );
        assert_eq!(m.tables[0].table, "public.\"Odd \"\"Name\"");
        assert_eq!(m.tables[1].method, ChecksumMethod::TextHash);
        assert_eq!(m.tables[1].checksum, "-31049433894447423478");
        let cut = &text[..text.len() - "end\t2\n".len()];
        assert!(
            Manifest::parse(cut)
                .unwrap_err()
                .to_string()
                .contains("incomplete")
        );
        let miscounted = text.replace("end\t2", "end\t3");
        assert!(
            Manifest::parse(&miscounted)
                .unwrap_err()
                .to_string()
                .contains("counts 3")
        );
        assert!(
            Manifest::parse("hello\n")
                .unwrap_err()
                .to_string()
                .contains("not a homelab")
        );
    }
}
