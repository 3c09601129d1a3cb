//! Runs one of the PostgreSQL backup scripts as a one-off Job made from the plan's backup
//! CronJob: builds the Job (pure), connects, checks that what its pod needs exists, follows it
//! with progress lines through `Output`, and hands back how it ended with its log. What the
//! scripts' output means is for `backup.rs` and `restore.rs` to read; this module never
//! interprets it, and never deletes or changes an object in the cluster.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use homelab_backup::UtcTime;
use homelab_kube::{Cluster, JobError, JobEvent, JobOptions, JobOutcome};
use homelab_plan::Plan;
use serde_json::{Value, json};

use super::cluster::{ClusterArgs, RetryLines, connect_error, runtime};
use super::format::parse_duration;
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

/// What a backup script Job is made from: the plan's backup CronJob and where it keeps things.
#[derive(Debug, Clone)]
pub struct BackupSetup {
    pub lab: String,
    pub namespace: String,
    pub cronjob: String,
    /// The CronJob's `spec.jobTemplate`.
    pub job_template: Value,
    /// Where the scripts are mounted in the pod.
    pub scripts_dir: String,
    /// The PVC the dumps are written to.
    pub pvc: Option<String>,
    pub keep: u32,
    /// What the CronJob's own runs are labelled with (the Job's labels start from these).
    pub labels: Value,
}

/// The scripts a Job can run, each with the label its Job carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Backup,
    Restore,
    Drill,
    List,
}

impl Operation {
    fn script(self) -> &'static str {
        match self {
            Operation::Backup => homelab_backup::postgres::BACKUP_SCRIPT,
            Operation::Restore => homelab_backup::postgres::RESTORE_SCRIPT,
            Operation::Drill => homelab_backup::postgres::DRILL_SCRIPT,
            Operation::List => homelab_backup::postgres::LIST_SCRIPT,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Restore => "restore",
            Operation::Drill => "drill",
            Operation::List => "list",
        }
    }

    /// How long a finished Job stays for `kubectl logs`; backup runs are cleaned up by the
    /// CronJob's history limits instead, like its scheduled runs.
    fn ttl_seconds(self) -> Option<u32> {
        match self {
            Operation::Backup => None,
            Operation::Restore | Operation::Drill => Some(7 * 24 * 3600),
            Operation::List => Some(3600),
        }
    }
}

/// Finds the PostgreSQL backup CronJob in the plan.
pub fn setup(plan: &Plan) -> anyhow::Result<BackupSetup> {
    let Some((component, backup)) = plan.components.iter().find_map(|c| {
        c.backups
            .iter()
            .find(|b| b.name == "postgres")
            .map(|b| (c, b))
    }) else {
        return Err(exit::usage(
            "the lab has no PostgreSQL backups: enable `services.postgres` in the spec (it backs up every database nightly), then `homelab apply`",
        ));
    };
    let cronjob = component
        .objects
        .iter()
        .find(|o| o.kind() == "CronJob" && o.name() == backup.cronjob)
        .with_context(|| {
            format!(
                "the plan names backup CronJob {}/{} but does not hold it",
                backup.namespace, backup.cronjob
            )
        })?;
    let template = cronjob.manifest["spec"]["jobTemplate"].clone();
    let container = &template["spec"]["template"]["spec"]["containers"][0];
    let command: Vec<&str> = container["command"]
        .as_array()
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let scripts_dir = match command.as_slice() {
        ["bash", script, ..] if script.ends_with(&format!("/{}", Operation::Backup.script())) => {
            script[..script.len() - Operation::Backup.script().len() - 1].to_string()
        }
        _ => anyhow::bail!(
            "the plan's backup CronJob {}/{} does not run `bash <dir>/backup.sh` (it runs {command:?})",
            backup.namespace,
            backup.cronjob
        ),
    };
    let pvc = template["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|v| v.pointer("/persistentVolumeClaim/claimName"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(BackupSetup {
        lab: plan.lab_name.clone(),
        namespace: backup.namespace.clone(),
        cronjob: backup.cronjob.clone(),
        job_template: template,
        scripts_dir,
        pvc,
        keep: backup.keep,
        labels: cronjob.manifest["metadata"]["labels"].clone(),
    })
}

/// `postgres-backup-manual-20261122-001546-3fa2`: the time keeps names readable and ordered,
/// `salt` keeps two runs in the same second apart.
pub fn job_name(setup: &BackupSetup, op: Operation, now: UtcTime, salt: u16) -> String {
    let stamp: String = now
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let prefix = match op {
        Operation::Backup => format!("{}-manual", setup.cronjob),
        other => format!("postgres-{}", other.word()),
    };
    format!("{prefix}-{}-{}-{salt:04x}", &stamp[..8], &stamp[8..])
}

/// The Job that runs `op`'s script with `args`: the CronJob's job template with the script's
/// command, no retry (the person waiting sees the failure at once and runs it again), and for
/// `backup` the CronJob as its controller, as `kubectl create job --from=cronjob/...` makes
/// it, so the CronJob's last successful time (which `homelab status` and the backup alert
/// read) moves. Other scripts' Jobs are labelled `backup-<op>` and owned by nobody: a drill
/// or a listing must not count as a backup.
pub fn job_manifest(
    setup: &BackupSetup,
    op: Operation,
    args: &[String],
    name: &str,
    cronjob_uid: Option<&str>,
) -> Value {
    let mut spec = setup.job_template["spec"].clone();
    let mut labels = setup.labels.clone();
    if !labels.is_object() {
        labels = json!({});
    }
    if op != Operation::Backup {
        labels["app.kubernetes.io/component"] = json!(format!("backup-{}", op.word()));
    }
    spec["backoffLimit"] = json!(0);
    if let Some(ttl) = op.ttl_seconds() {
        spec["ttlSecondsAfterFinished"] = json!(ttl);
    }
    let template = &mut spec["template"];
    let mut pod_labels = template["metadata"]["labels"].clone();
    if !pod_labels.is_object() {
        pod_labels = json!({});
    }
    if op != Operation::Backup {
        pod_labels["app.kubernetes.io/component"] = json!(format!("backup-{}", op.word()));
    }
    template["metadata"]["labels"] = pod_labels;
    let mut command = vec![
        json!("bash"),
        json!(format!("{}/{}", setup.scripts_dir, op.script())),
    ];
    command.extend(args.iter().map(|a| json!(a)));
    template["spec"]["containers"][0]["command"] = Value::Array(command);
    if let Some(container) = template["spec"]["containers"][0].as_object_mut() {
        container.remove("args");
    }
    let mut metadata = json!({
        "name": name,
        "namespace": setup.namespace,
        "labels": labels,
    });
    if op == Operation::Backup {
        metadata["annotations"] = json!({"cronjob.kubernetes.io/instantiate": "manual"});
        if let Some(uid) = cronjob_uid {
            metadata["ownerReferences"] = json!([{
                "apiVersion": "batch/v1", "kind": "CronJob", "name": setup.cronjob, "uid": uid,
                "controller": true, "blockOwnerDeletion": true,
            }]);
        }
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec})
}

/// The current time, to the second.
pub fn now() -> UtcTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    UtcTime::from_unix_seconds(secs)
}

fn salt() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    ((nanos ^ std::process::id().rotate_left(16)) % 0x1_0000) as u16
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

/// A Job that ran to an end (succeeded or not).
pub struct Ran {
    pub outcome: JobOutcome,
    pub manifest: Value,
}

impl Ran {
    /// `kubectl` commands to look further, for messages.
    pub fn logs_hint(&self) -> String {
        format!(
            "`kubectl -n {} logs job/{}`",
            self.outcome.namespace, self.outcome.name
        )
    }

    /// The Job as data for `--output json`.
    pub fn json(&self) -> Value {
        let o = &self.outcome;
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

    /// The last lines of the log that are not report lines, to show when a script said
    /// nothing a report could be read from.
    pub fn log_tail(&self, lines: usize) -> String {
        let human: Vec<&str> = self
            .outcome
            .log
            .lines()
            .filter(|l| !l.trim_start().starts_with("HOMELAB-"))
            .collect();
        human[human.len().saturating_sub(lines)..].join("\n")
    }
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
    let cluster = &conn.cluster;
    let cronjob_uid = if op == Operation::Backup {
        let live = conn
            .rt
            .block_on(homelab_kube::get_object(
                cluster,
                "batch/v1",
                "CronJob",
                "cronjobs",
                Some(&setup.namespace),
                &setup.cronjob,
            ))
            .map_err(job_error)?;
        let Some(live) = live else {
            return Err(failure(format!(
                "the backup CronJob {}/{} is not in the cluster, so there is nothing to run a backup from; apply the lab first (`homelab apply`). Nothing was started.",
                setup.namespace, setup.cronjob
            )));
        };
        live.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string)
    } else {
        None
    };
    let name = job_name(setup, op, now(), salt());
    let manifest = job_manifest(setup, op, args, &name, cronjob_uid.as_deref());
    let missing = conn
        .rt
        .block_on(homelab_kube::missing_references(cluster, &manifest))
        .map_err(job_error)?;
    if !missing.is_empty() {
        return Err(failure(format!(
            "the {} Job needs {}, which {} not in the cluster; apply the lab first (`homelab apply`). Nothing was started.",
            op.word(),
            missing.join(", "),
            if missing.len() == 1 { "is" } else { "are" }
        )));
    }
    let options = JobOptions {
        timeout,
        poll_interval: Duration::from_millis(500),
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
    let outcome = conn
        .rt
        .block_on(homelab_kube::run_job(
            cluster, &manifest, &options, &progress,
        ))
        .map_err(job_error)?;
    Ok(Ran { outcome, manifest })
}

fn failure(message: String) -> anyhow::Error {
    Exit {
        code: exit::FAILURE,
        message,
    }
    .into()
}

fn job_error(e: JobError) -> anyhow::Error {
    match e {
        JobError::Create { ref message, .. } if message.contains("namespaces") => {
            failure(format!("{e}; apply the lab first (`homelab apply`)"))
        }
        other => failure(other.to_string()),
    }
}

/// `45s`, `12m`, `3h`, `2d`: how long ago, to the largest whole unit.
pub fn human_age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_plan() -> Plan {
        let spec = r#"name: lab
network:
  subnet: 192.168.2.0/24
  gateway: 192.168.2.1
  domain: home.example.com
  loadBalancerPool: 192.168.2.100-192.168.2.120
cluster:
  k3sVersion: v1.34.2+k3s1
  nodes:
    - name: k3s-master
      role: server
      address: 192.168.2.20
storage:
  nfs:
    server: 192.168.2.2
    path: /volume1/k8s-data
tls:
  acmeEmail: you@example.com
  challenge: {type: dns01, provider: cloudflare, apiToken: {secret: cloudflare-api-token}}
services:
  postgres:
    databases:
      - name: shop
"#;
        let loaded = homelab_spec::load_str("homelab.yaml", spec)
            .unwrap_or_else(|e| panic!("{}", e.render()));
        homelab_plan::plan(&loaded.lab)
    }

    #[test]
    fn the_setup_comes_from_the_plans_cronjob() {
        let s = setup(&lab_plan()).unwrap();
        assert_eq!(
            (s.namespace.as_str(), s.cronjob.as_str()),
            ("data", "postgres-backup")
        );
        assert_eq!(s.scripts_dir, "/opt/homelab");
        assert_eq!(s.pvc.as_deref(), Some("postgres-backup"));
        assert_eq!(s.keep, 7);
    }

    #[test]
    fn a_lab_without_postgres_is_told_how_to_get_backups() {
        let mut plan = lab_plan();
        plan.components.retain(|c| c.name != "postgres");
        let err = setup(&plan).unwrap_err();
        assert_eq!(exit::code_of(&err), exit::USAGE);
        assert!(err.to_string().contains("services.postgres"), "{err}");
    }

    #[test]
    fn a_backup_job_is_the_cronjobs_template_owned_by_the_cronjob() {
        let s = setup(&lab_plan()).unwrap();
        let name = job_name(
            &s,
            Operation::Backup,
            "2026-11-22T00:15:46Z".parse().unwrap(),
            0x3fa2,
        );
        assert_eq!(name, "postgres-backup-manual-20261122-001546-3fa2");
        let job = job_manifest(&s, Operation::Backup, &[], &name, Some("uid-7"));
        assert_eq!(job["metadata"]["namespace"], "data");
        assert_eq!(
            job["metadata"]["ownerReferences"][0],
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "name": "postgres-backup", "uid": "uid-7", "controller": true, "blockOwnerDeletion": true})
        );
        assert_eq!(
            job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
            "manual"
        );
        assert_eq!(
            job["metadata"]["labels"]["app.kubernetes.io/component"],
            "backup"
        );
        assert_eq!(job["spec"]["backoffLimit"], 0);
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["command"],
            json!(["bash", "/opt/homelab/backup.sh"])
        );
        // Everything else is the CronJob's: image, environment, volumes, security context.
        let cron = &s.job_template["spec"]["template"]["spec"];
        for key in ["volumes", "securityContext", "restartPolicy"] {
            assert_eq!(pod[key], cron[key], "{key}");
        }
        assert_eq!(pod["containers"][0]["env"], cron["containers"][0]["env"]);
        assert_eq!(
            pod["containers"][0]["image"],
            cron["containers"][0]["image"]
        );
    }

    #[test]
    fn other_jobs_carry_their_own_label_and_no_owner() {
        let s = setup(&lab_plan()).unwrap();
        let args = vec!["--db".to_string(), "it's".to_string()];
        let now: UtcTime = "2026-11-22T00:15:46Z".parse().unwrap();
        let name = job_name(&s, Operation::Restore, now, 1);
        assert_eq!(name, "postgres-restore-20261122-001546-0001");
        let job = job_manifest(&s, Operation::Restore, &args, &name, Some("uid-7"));
        assert!(job["metadata"].get("ownerReferences").is_none());
        assert_eq!(
            job["metadata"]["labels"]["app.kubernetes.io/component"],
            "backup-restore"
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"],
            "backup-restore"
        );
        assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 7 * 24 * 3600);
        // Arguments are separate words: nothing is parsed by a shell on the way.
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["command"],
            json!(["bash", "/opt/homelab/restore.sh", "--db", "it's"])
        );
        assert!(job_name(&s, Operation::List, now, 0xffff).len() <= 63);
    }

    #[test]
    fn ages_are_readable() {
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(3 * 3600 + 5), "3h");
        assert_eq!(human_age(-4), "0s");
        assert_eq!(human_age(2 * 86400), "2d");
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
