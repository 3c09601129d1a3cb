//! Runs one of the PostgreSQL backup scripts as a one-off Job made from the plan's backup
//! CronJob: finds the CronJob in the plan and builds the Job (pure), checks that what its pod
//! needs exists, follows it to its end with its events handed to the caller, and hands back
//! how it ended with its log. What the scripts' output means is for the caller to read; this
//! module never interprets it, never prints, and never deletes or changes an object in the
//! cluster.

use std::time::Duration;

use homelab_backup::UtcTime;
use homelab_kube::{Cluster, JobError, JobEvent, JobOptions, JobOutcome, RetryPolicy};
use homelab_plan::Plan;
use serde_json::{Value, json};

/// Why a backup script Job could not be made, started or followed to its end. A script that
/// ran and failed is not an error: it is a [`Ran`] whose outcome did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum BackupJobError {
    /// The lab has no PostgreSQL, so there is no backup CronJob to make a Job from.
    #[error(
        "the lab has no PostgreSQL backups: enable `services.postgres` in the spec (it backs up every database nightly), then `homelab apply`"
    )]
    NoPostgresBackups,
    /// The plan names a backup CronJob it does not hold (a defect of the plan).
    #[error("the plan names backup CronJob {namespace}/{cronjob} but does not hold it")]
    CronJobNotPlanned { namespace: String, cronjob: String },
    /// The plan's backup CronJob does not run the backup script the way the Jobs expect.
    #[error(
        "the plan's backup CronJob {namespace}/{cronjob} does not run `bash <dir>/backup.sh` (it runs {command:?})"
    )]
    UnexpectedCommand {
        namespace: String,
        cronjob: String,
        command: Vec<String>,
    },
    /// A backup run needs the CronJob in the cluster (it owns the Job), and it is not there.
    #[error(
        "the backup CronJob {namespace}/{cronjob} is not in the cluster, so there is nothing to run a backup from; apply the lab first (`homelab apply`). Nothing was started."
    )]
    CronJobNotInCluster { namespace: String, cronjob: String },
    /// Objects the Job's pod needs (Secrets, ConfigMaps, PVCs) are not in the cluster.
    #[error(
        "the {} Job needs {}, which {} not in the cluster; apply the lab first (`homelab apply`). Nothing was started.",
        operation.word(),
        missing.join(", "),
        if missing.len() == 1 { "is" } else { "are" }
    )]
    MissingReferences {
        operation: Operation,
        missing: Vec<String>,
    },
    /// The Job's namespace is not in the cluster.
    #[error("{source}; apply the lab first (`homelab apply`)")]
    NamespaceMissing {
        operation: Operation,
        source: JobError,
    },
    /// Looking at the cluster, creating the Job or following it failed.
    #[error("{source}")]
    Job {
        operation: Operation,
        source: JobError,
    },
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
    /// The script's file name in the scripts directory.
    pub fn script(self) -> &'static str {
        match self {
            Operation::Backup => homelab_backup::postgres::BACKUP_SCRIPT,
            Operation::Restore => homelab_backup::postgres::RESTORE_SCRIPT,
            Operation::Drill => homelab_backup::postgres::DRILL_SCRIPT,
            Operation::List => homelab_backup::postgres::LIST_SCRIPT,
        }
    }

    /// The operation in one word, as Job names and labels carry it.
    pub fn word(self) -> &'static str {
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
pub fn setup(plan: &Plan) -> Result<BackupSetup, BackupJobError> {
    let Some((component, backup)) = plan.components.iter().find_map(|c| {
        c.backups
            .iter()
            .find(|b| b.name == "postgres")
            .map(|b| (c, b))
    }) else {
        return Err(BackupJobError::NoPostgresBackups);
    };
    let cronjob = component
        .objects
        .iter()
        .find(|o| o.kind() == "CronJob" && o.name() == backup.cronjob)
        .ok_or_else(|| BackupJobError::CronJobNotPlanned {
            namespace: backup.namespace.clone(),
            cronjob: backup.cronjob.clone(),
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
        _ => {
            return Err(BackupJobError::UnexpectedCommand {
                namespace: backup.namespace.clone(),
                cronjob: backup.cronjob.clone(),
                command: command.iter().map(|c| c.to_string()).collect(),
            });
        }
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

/// How to follow a Job.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long to follow the Job before giving up on it (it keeps running in the cluster).
    pub timeout: Duration,
    /// Hand over the pod's log lines as they come ([`JobEvent::LogLine`]).
    pub follow_log: bool,
    /// Retries of every request of the run.
    pub retry: RetryPolicy,
}

/// Runs `op`'s script with `args` in a Job on `cluster` and follows it to the end, handing
/// the Job's events (created, pod states, log lines, retries) to `progress`. Errors when the
/// Job cannot be started or followed to its end; a script that fails is a [`Ran`] whose
/// outcome did not succeed. Before anything is created it checks that a backup's CronJob and
/// everything the pod mounts are in the cluster, so a lab not applied yet starts nothing.
pub async fn run(
    cluster: &Cluster,
    setup: &BackupSetup,
    op: Operation,
    args: &[String],
    options: &RunOptions,
    progress: &(dyn Fn(JobEvent) + Send + Sync),
) -> Result<Ran, BackupJobError> {
    let job_error = |source: JobError| match source {
        JobError::Create { ref message, .. } if message.contains("namespaces") => {
            BackupJobError::NamespaceMissing {
                operation: op,
                source,
            }
        }
        source => BackupJobError::Job {
            operation: op,
            source,
        },
    };
    let cronjob_uid = if op == Operation::Backup {
        let cronjob = homelab_kube::ObjectAddress {
            api_version: "batch/v1",
            kind: "CronJob",
            plural: "cronjobs",
            namespace: Some(&setup.namespace),
            name: &setup.cronjob,
        };
        let live = homelab_kube::get_object(cluster, cronjob, &options.retry, &progress)
            .await
            .map_err(job_error)?;
        let Some(live) = live else {
            return Err(BackupJobError::CronJobNotInCluster {
                namespace: setup.namespace.clone(),
                cronjob: setup.cronjob.clone(),
            });
        };
        live.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string)
    } else {
        None
    };
    let name = job_name(setup, op, now(), salt());
    let manifest = job_manifest(setup, op, args, &name, cronjob_uid.as_deref());
    let missing = homelab_kube::missing_references(cluster, &manifest, &options.retry, &progress)
        .await
        .map_err(job_error)?;
    if !missing.is_empty() {
        return Err(BackupJobError::MissingReferences {
            operation: op,
            missing,
        });
    }
    let job_options = JobOptions {
        timeout: options.timeout,
        poll_interval: Duration::from_millis(500),
        follow_log: options.follow_log,
        retry: options.retry.clone(),
    };
    let outcome = homelab_kube::run_job(cluster, &manifest, &job_options, &progress)
        .await
        .map_err(job_error)?;
    Ok(Ran { outcome, manifest })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_plan() -> Plan {
        // The same small lab the integration tests run the Job against.
        let spec = include_str!("../tests/fixtures/postgres-lab.yaml");
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
        assert!(matches!(err, BackupJobError::NoPostgresBackups), "{err:?}");
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
}
