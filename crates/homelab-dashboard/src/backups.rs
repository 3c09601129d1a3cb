//! The Backups page and `/api/backups`: per database the last dump (age, size, verified) from
//! the record the last backup Job logged, the last restore drill and its result from the drill
//! Job's report (both read with `homelab-backup`'s own parsers), the backup CronJob's
//! freshness as `status` judged it, and the etcd snapshots K3s recorded per server. A banner
//! turns red when anything is older than its schedule allows. Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt::Write;

use homelab_backup::records::{DrillDatabaseStatus, Outcome};
use homelab_backup::{BackupRun, DrillReport};
use homelab_kube::BackupStatus;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::html::{esc, page};
use crate::nodes::quantity;
use crate::reads::{JobLog, Read};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DumpView {
    pub database: String,
    pub ok: bool,
    pub finished_at: String,
    pub age_seconds: i64,
    pub bytes: Option<u64>,
    /// Dumped, checked by the backup script and recorded with its SHA-256.
    pub verified: bool,
    pub tables: Option<u64>,
    pub rows: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastBackup {
    pub job: String,
    pub ok: bool,
    pub finished_at: Option<String>,
    pub databases: Vec<DumpView>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillDatabaseView {
    pub database: String,
    pub ok: bool,
    pub tables: Option<u64>,
    pub mismatches: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastDrill {
    pub job: String,
    pub passed: bool,
    pub finished_at: String,
    pub age_seconds: i64,
    pub tables: u64,
    pub mismatches: u64,
    pub databases: Vec<DrillDatabaseView>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdServerView {
    pub node: String,
    pub snapshots: usize,
    pub newest: Option<String>,
    pub newest_name: Option<String>,
    pub age_seconds: Option<i64>,
    pub bytes: Option<u64>,
    pub ready: bool,
    /// Newer than the schedule's longest gap (plus an hour for the snapshot to finish).
    pub fresh: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupsPage {
    pub lab: String,
    pub read_at: Option<String>,
    /// The backup CronJobs as `status` judged them.
    pub cronjobs: Vec<BackupStatus>,
    pub last_backup: Option<LastBackup>,
    /// Why the last backup's record could not be read.
    pub last_backup_error: Option<String>,
    pub last_drill: Option<LastDrill>,
    pub last_drill_error: Option<String>,
    pub etcd_schedule: Option<String>,
    pub etcd: Vec<EtcdServerView>,
    pub etcd_error: Option<String>,
    /// What is older than its schedule allows, or failed; empty when all is well.
    pub stale: Vec<String>,
}

/// What the page is built from.
pub struct BackupInputs<'a> {
    pub lab: &'a str,
    /// The plan's servers: each should have etcd snapshots.
    pub servers: &'a [String],
    pub etcd_schedule: Option<&'a str>,
    pub now: Timestamp,
    pub read_at: Option<String>,
    pub cronjobs: Option<&'a [BackupStatus]>,
    pub last_backup: Option<&'a Read<JobLog>>,
    pub last_drill: Option<&'a Read<JobLog>>,
    pub etcd: Option<&'a Read<Value>>,
}

fn age(now: Timestamp, at: &str) -> Option<i64> {
    at.parse::<Timestamp>()
        .ok()
        .map(|t| now.as_second() - t.as_second())
}

/// The longest time between two runs of a 5-field cron schedule, in minutes, from its
/// minute and hour fields; a schedule restricted by day runs at least weekly (day of week)
/// or monthly (day of month). `None` when it cannot be read.
pub fn longest_gap_minutes(schedule: &str) -> Option<u32> {
    let s = schedule.trim();
    match s {
        "@hourly" => return Some(60),
        "@daily" | "@midnight" => return Some(24 * 60),
        "@weekly" => return Some(7 * 24 * 60),
        "@monthly" => return Some(31 * 24 * 60),
        "@yearly" | "@annually" => return Some(366 * 24 * 60),
        _ => {}
    }
    let f: Vec<&str> = s.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = f[..] else {
        return None;
    };
    if month != "*" {
        return Some(366 * 24 * 60);
    }
    if dom != "*" {
        return Some(31 * 24 * 60);
    }
    if dow != "*" {
        return Some(7 * 24 * 60);
    }
    let minutes = cron_values(minute, 0, 59)?;
    let hours = cron_values(hour, 0, 23)?;
    let mut times: Vec<u32> = hours
        .iter()
        .flat_map(|h| minutes.iter().map(move |m| h * 60 + m))
        .collect();
    times.sort_unstable();
    let first = *times.first()?;
    let mut gap = first + 24 * 60 - times.last()?;
    for w in times.windows(2) {
        gap = gap.max(w[1] - w[0]);
    }
    Some(gap)
}

fn cron_values(field: &str, lo: u32, hi: u32) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().ok()?, b.parse().ok()?)
        } else {
            let v: u32 = range.parse().ok()?;
            (v, if part.contains('/') { hi } else { v })
        };
        if a < lo || b > hi || a > b {
            return None;
        }
        out.extend((a..=b).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

fn log_of(read: Option<&Read<JobLog>>) -> Result<Option<(&JobLog, &str)>, String> {
    match read {
        None | Some(Read::Absent) => Ok(None),
        Some(Read::Failed(why)) => Err(format!("cannot list the Jobs: {why}")),
        Some(Read::Got(job)) => match &job.log {
            Read::Got(text) => Ok(Some((job, text.as_str()))),
            Read::Absent => Err(format!("the log of Job {} is gone", job.job)),
            Read::Failed(why) => Err(format!("cannot read the log of Job {}: {why}", job.job)),
        },
    }
}

impl BackupsPage {
    pub fn build(i: BackupInputs<'_>) -> BackupsPage {
        let mut stale = Vec::new();
        let cronjobs = i.cronjobs.map(<[_]>::to_vec).unwrap_or_default();
        for c in &cronjobs {
            if !c.ok {
                stale.push(format!(
                    "backup CronJob {}/{}: {}",
                    c.namespace, c.cronjob, c.detail
                ));
            }
        }
        let (last_backup, last_backup_error) = match log_of(i.last_backup) {
            Ok(None) => (None, None),
            Err(e) => (None, Some(e)),
            Ok(Some((job, log))) => match BackupRun::from_log(log) {
                Err(e) => (
                    None,
                    Some(format!(
                        "the log of Job {} holds no backup record: {e}",
                        job.job
                    )),
                ),
                Ok(run) => {
                    let finished = run.finished_at.to_string();
                    let databases = run
                        .databases
                        .iter()
                        .map(|d| DumpView {
                            database: d.name.clone(),
                            ok: d.result == Outcome::Success,
                            finished_at: finished.clone(),
                            age_seconds: age(i.now, &finished).unwrap_or_default(),
                            bytes: d.bytes,
                            verified: d.result == Outcome::Success && d.sha256.is_some(),
                            tables: d.tables,
                            rows: d.rows,
                            error: d.error.clone(),
                        })
                        .collect::<Vec<_>>();
                    for d in databases.iter().filter(|d| !d.ok) {
                        stale.push(format!(
                            "database {}: its last dump failed{}",
                            d.database,
                            d.error
                                .as_deref()
                                .map(|e| format!(" ({e})"))
                                .unwrap_or_default()
                        ));
                    }
                    (
                        Some(LastBackup {
                            job: job.job.clone(),
                            ok: run.succeeded() && job.succeeded,
                            finished_at: Some(finished),
                            databases,
                            errors: run.errors.clone(),
                        }),
                        None,
                    )
                }
            },
        };
        let (last_drill, last_drill_error) = match log_of(i.last_drill) {
            Ok(None) => (None, None),
            Err(e) => (None, Some(e)),
            Ok(Some((job, log))) => match DrillReport::parse(log) {
                Err(e) => (
                    None,
                    Some(format!(
                        "the log of Job {} holds no drill report: {e}",
                        job.job
                    )),
                ),
                Ok(report) => {
                    let finished = report.summary.finished_at.to_string();
                    if !report.passed() {
                        stale.push(format!(
                            "the last restore drill (Job {}) failed: {} mismatching tables",
                            job.job, report.summary.mismatches
                        ));
                    }
                    (
                        Some(LastDrill {
                            job: job.job.clone(),
                            passed: report.passed(),
                            age_seconds: age(i.now, &finished).unwrap_or_default(),
                            finished_at: finished,
                            tables: report.summary.tables,
                            mismatches: report.summary.mismatches,
                            databases: report
                                .databases
                                .iter()
                                .map(|d| DrillDatabaseView {
                                    database: d.database.clone(),
                                    ok: d.status == DrillDatabaseStatus::Ok,
                                    tables: d.tables,
                                    mismatches: d.mismatches,
                                    error: d.error.clone(),
                                })
                                .collect(),
                        }),
                        None,
                    )
                }
            },
        };
        let allowed = i
            .etcd_schedule
            .and_then(longest_gap_minutes)
            .map(|m| i64::from(m) * 60 + 3600);
        let (etcd, etcd_error) = match i.etcd {
            None => (Vec::new(), None),
            Some(Read::Absent) => (
                Vec::new(),
                Some("the cluster has no ETCDSnapshotFile records (K3s before v1.27, or not K3s): `homelab backup list` lists the snapshots on the servers".to_string()),
            ),
            Some(Read::Failed(why)) => (
                Vec::new(),
                Some(format!("cannot read the etcd snapshot records: {why}")),
            ),
            Some(Read::Got(list)) => {
                let mut by_node: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
                for s in list["items"].as_array().into_iter().flatten() {
                    if let Some(node) = s.pointer("/spec/nodeName").and_then(Value::as_str) {
                        by_node.entry(node).or_default().push(s);
                    }
                }
                let views = i
                    .servers
                    .iter()
                    .map(|server| {
                        let snaps = by_node.get(server.as_str()).cloned().unwrap_or_default();
                        fn created(s: &Value) -> Option<&str> {
                            s.pointer("/status/creationTime").and_then(Value::as_str)
                        }
                        let newest = snaps
                            .iter()
                            .filter(|s| created(s).is_some())
                            .max_by_key(|s| created(s).and_then(|t| t.parse::<Timestamp>().ok()));
                        let newest_at = newest.and_then(|s| created(s)).map(str::to_string);
                        let age_seconds = newest_at.as_deref().and_then(|t| age(i.now, t));
                        let fresh = match (age_seconds, allowed) {
                            (Some(a), Some(max)) => a <= max,
                            (Some(_), None) => true,
                            (None, _) => false,
                        };
                        EtcdServerView {
                            node: server.clone(),
                            snapshots: snaps.len(),
                            newest_name: newest
                                .and_then(|s| s.pointer("/spec/snapshotName"))
                                .and_then(Value::as_str)
                                .map(str::to_string),
                            newest: newest_at,
                            age_seconds,
                            bytes: newest
                                .and_then(|s| s.pointer("/status/size"))
                                .and_then(|v| match v {
                                    Value::String(q) => quantity(q),
                                    Value::Number(n) => n.as_f64(),
                                    _ => None,
                                })
                                .map(|b| b as u64),
                            ready: newest
                                .and_then(|s| s.pointer("/status/readyToUse"))
                                .and_then(Value::as_bool)
                                .unwrap_or(false),
                            fresh,
                        }
                    })
                    .collect::<Vec<_>>();
                for v in &views {
                    match (&v.newest, v.fresh) {
                        (None, _) => {
                            stale.push(format!("server {}: no etcd snapshot recorded", v.node))
                        }
                        (Some(at), false) => stale.push(format!(
                            "server {}: the newest etcd snapshot is from {at}, older than the schedule `{}` allows",
                            v.node,
                            i.etcd_schedule.unwrap_or("?")
                        )),
                        _ => {}
                    }
                }
                (views, None)
            }
        };
        BackupsPage {
            lab: i.lab.to_string(),
            read_at: i.read_at,
            cronjobs,
            last_backup,
            last_backup_error,
            last_drill,
            last_drill_error,
            etcd_schedule: i.etcd_schedule.map(str::to_string),
            etcd,
            etcd_error,
            stale,
        }
    }
}

fn human_age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s ago"),
        s if s < 2 * 3600 => format!("{}m ago", s / 60),
        s if s < 2 * 86400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86400),
    }
}

fn human_bytes(b: Option<u64>) -> String {
    match b {
        None => "?".into(),
        Some(b) if b < 1024 => format!("{b} B"),
        Some(b) if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        Some(b) if b < 1024 * 1024 * 1024 => format!("{:.1} MiB", b as f64 / 1048576.0),
        Some(b) => format!("{:.1} GiB", b as f64 / 1073741824.0),
    }
}

fn ok_cell(ok: bool, yes: &str, no: &str) -> String {
    if ok {
        format!("<td class=\"ok\">{yes}</td>")
    } else {
        format!("<td class=\"bad\">{no}</td>")
    }
}

pub fn html(p: &BackupsPage) -> String {
    let mut body = String::from("<h1>Backups</h1>");
    if p.stale.is_empty() {
        if p.read_at.is_some() {
            body.push_str("<div class=\"banner ok\" id=\"backups-banner\" data-stale=\"false\">Every backup is as recent as its schedule asks.</div>");
        }
    } else {
        body.push_str("<div class=\"banner bad\" id=\"backups-banner\" data-stale=\"true\"><strong>Backups need attention:</strong><ul>");
        for s in &p.stale {
            let _ = write!(body, "<li>{}</li>", esc(s));
        }
        body.push_str("</ul><a href=\"/docs/runbooks/postgres-backup\">runbook</a></div>");
    }
    body.push_str("<h2>PostgreSQL dumps</h2>");
    if let Some(e) = &p.last_backup_error {
        let _ = write!(body, "<p class=\"bad\">{}</p>", esc(e));
    }
    match &p.last_backup {
        None if p.last_backup_error.is_none() => {
            body.push_str("<p class=\"unknown\">No backup Job is in the cluster yet.</p>")
        }
        None => {}
        Some(b) => {
            let _ = write!(
                body,
                "<p><small>from Job {}</small></p><table id=\"dumps\"><thead><tr><th>Database</th><th>Result</th><th>Age</th><th>Size</th><th>Verified</th><th>Tables / rows</th></tr></thead><tbody>",
                esc(&b.job)
            );
            for d in &b.databases {
                let _ = write!(
                    body,
                    "<tr class=\"dump\" data-database=\"{}\"><td>{}</td>{}<td>{}<br><small>{}</small></td><td>{}</td>{}<td>{} / {}</td></tr>",
                    esc(&d.database),
                    esc(&d.database),
                    ok_cell(
                        d.ok,
                        "ok",
                        &format!(
                            "failed{}",
                            d.error
                                .as_deref()
                                .map(|e| format!(": {}", esc(e)))
                                .unwrap_or_default()
                        )
                    ),
                    esc(&human_age(d.age_seconds)),
                    esc(&d.finished_at),
                    esc(&human_bytes(d.bytes)),
                    ok_cell(d.verified, "yes", "no"),
                    d.tables
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "?".into()),
                    d.rows.map(|t| t.to_string()).unwrap_or_else(|| "?".into()),
                );
            }
            body.push_str("</tbody></table>");
        }
    }
    body.push_str("<h2>Backup CronJobs</h2><table id=\"cronjobs\"><thead><tr><th>CronJob</th><th>Fresh</th><th>Last success</th></tr></thead><tbody>");
    for c in &p.cronjobs {
        let _ = write!(
            body,
            "<tr><td>{}/{}</td>{}<td>{}</td></tr>",
            esc(&c.namespace),
            esc(&c.cronjob),
            ok_cell(c.ok, "yes", "no"),
            esc(&c.detail)
        );
    }
    body.push_str("</tbody></table><h2>Last restore drill</h2>");
    if let Some(e) = &p.last_drill_error {
        let _ = write!(body, "<p class=\"bad\">{}</p>", esc(e));
    }
    match &p.last_drill {
        None if p.last_drill_error.is_none() => body.push_str(
            "<p class=\"unknown\" id=\"no-drill\">No drill has run yet (or its Job is gone): <code>homelab backup drill</code> proves the dumps restore.</p>",
        ),
        None => {}
        Some(d) => {
            let _ = write!(
                body,
                "<p id=\"drill\" data-passed=\"{}\"><span class=\"{}\">{}</span> {} ({}) · {} tables, {} mismatches · Job {}</p><ul>",
                d.passed,
                if d.passed { "ok" } else { "bad" },
                if d.passed { "passed" } else { "failed" },
                esc(&human_age(d.age_seconds)),
                esc(&d.finished_at),
                d.tables,
                d.mismatches,
                esc(&d.job)
            );
            for db in &d.databases {
                let _ = write!(
                    body,
                    "<li>{}: <span class=\"{}\">{}</span>{}</li>",
                    esc(&db.database),
                    if db.ok { "ok" } else { "bad" },
                    if db.ok { "ok" } else { "failed" },
                    db.error
                        .as_deref()
                        .map(|e| format!(" ({})", esc(e)))
                        .unwrap_or_default()
                );
            }
            body.push_str("</ul>");
        }
    }
    let _ = write!(
        body,
        "<h2>etcd snapshots</h2><p><small>schedule {}</small></p>",
        esc(p.etcd_schedule.as_deref().unwrap_or("?"))
    );
    if let Some(e) = &p.etcd_error {
        let _ = write!(
            body,
            "<p class=\"unknown\" id=\"etcd-error\">{}</p>",
            esc(e)
        );
    }
    body.push_str("<table id=\"etcd\"><thead><tr><th>Server</th><th>Snapshots</th><th>Newest</th><th>Size</th><th>Ready</th></tr></thead><tbody>");
    for e in &p.etcd {
        let _ = write!(
            body,
            "<tr class=\"etcd\" data-node=\"{}\" data-fresh=\"{}\"><td>{}</td><td>{}</td><td class=\"{}\">{}<br><small>{}</small></td><td>{}</td>{}</tr>",
            esc(&e.node),
            e.fresh,
            esc(&e.node),
            e.snapshots,
            if e.fresh { "ok" } else { "bad" },
            esc(&e
                .age_seconds
                .map(human_age)
                .unwrap_or_else(|| "none".into())),
            esc(e.newest_name.as_deref().unwrap_or("")),
            esc(&human_bytes(e.bytes)),
            ok_cell(e.ready, "yes", "no")
        );
    }
    let _ = write!(
        body,
        "</tbody></table><p><small>read {} · the same data: <a href=\"/api/backups\">/api/backups</a></small></p>",
        esc(p.read_at.as_deref().unwrap_or("not yet"))
    );
    page(
        &p.lab,
        "Backups",
        "/backups",
        Some(crate::pages::REFRESH_SECONDS),
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn longest_gaps_of_schedules() {
        assert_eq!(longest_gap_minutes("0 */12 * * *"), Some(720));
        assert_eq!(longest_gap_minutes("0 2 * * *"), Some(1440));
        assert_eq!(longest_gap_minutes("*/15 * * * *"), Some(15));
        assert_eq!(longest_gap_minutes("0 1,5 * * *"), Some(20 * 60));
        assert_eq!(longest_gap_minutes("0 3 * * 0"), Some(7 * 1440));
        assert_eq!(longest_gap_minutes("@daily"), Some(1440));
        assert_eq!(longest_gap_minutes("0 25 * * *"), None);
        assert_eq!(longest_gap_minutes("nonsense"), None);
    }

    fn log_job(job: &str, log: String) -> Read<JobLog> {
        Read::Got(JobLog {
            job: job.into(),
            succeeded: true,
            log: Read::Got(log),
        })
    }

    #[test]
    fn dumps_drill_and_etcd_with_a_stale_server() {
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        let backup = format!(
            "starting\nHOMELAB-BACKUP {}\n",
            json!({"format": 1, "result": "success", "started_at": "2026-12-07T02:00:00Z",
                   "finished_at": "2026-12-07T02:00:10Z", "duration_seconds": 10, "backup_dir": "/backups",
                   "keep": 7, "globals": null, "databases": [
                       {"name": "n8n", "result": "success", "bytes": 2048, "sha256": "ab", "duration_seconds": 1, "tables": 3, "rows": 10},
                       {"name": "paperless", "result": "failure", "duration_seconds": 1, "error": "pg_dump: boom"}],
                   "invalid_dumps": [], "deleted": [], "warnings": [], "errors": []})
        );
        let etcd = json!({"items": [
            {"spec": {"nodeName": "s1", "snapshotName": "etcd-snapshot-s1-1"}, "status": {"creationTime": "2026-12-07T00:00:00Z", "size": "4Mi", "readyToUse": true}},
            {"spec": {"nodeName": "s2", "snapshotName": "etcd-snapshot-s2-1"}, "status": {"creationTime": "2026-12-05T00:00:00Z", "size": "4Mi", "readyToUse": true}},
        ]});
        let servers = vec!["s1".to_string(), "s2".to_string(), "s3".to_string()];
        let b = log_job("postgres-backup-1", backup);
        let d = log_job("postgres-drill-1", "nothing here\n".into());
        let e = Read::Got(etcd);
        let p = BackupsPage::build(BackupInputs {
            lab: "lab",
            servers: &servers,
            etcd_schedule: Some("0 */12 * * *"),
            now,
            read_at: Some("now".into()),
            cronjobs: Some(&[]),
            last_backup: Some(&b),
            last_drill: Some(&d),
            etcd: Some(&e),
        });
        let dumps = &p.last_backup.as_ref().unwrap().databases;
        assert!(dumps[0].ok && dumps[0].verified && dumps[0].bytes == Some(2048));
        assert_eq!(dumps[0].age_seconds, 10 * 3600 - 10);
        assert!(!dumps[1].ok && !dumps[1].verified);
        assert!(
            p.last_drill_error
                .as_deref()
                .unwrap()
                .contains("no drill report")
        );
        assert!(p.etcd[0].fresh && p.etcd[0].bytes == Some(4 * 1024 * 1024));
        assert!(!p.etcd[1].fresh);
        assert_eq!(p.etcd[2].snapshots, 0);
        assert_eq!(p.stale.len(), 3, "{:?}", p.stale);
        let page = html(&p);
        assert!(page.contains("data-stale=\"true\""));
        assert!(page.contains("pg_dump: boom"));
    }
}
