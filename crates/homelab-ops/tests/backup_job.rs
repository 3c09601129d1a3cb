//! Backup script Jobs as a library call against the Kubernetes API stand-in (kmock): a lab that
//! was never applied starts nothing, and the error says which operation stopped and why. The
//! full runs (a real PostgreSQL behind the scripts) are the CLI's backup tier.

#[path = "../../homelab-kube/tests/support/mod.rs"]
mod support;

use std::sync::Mutex;
use std::time::Duration;

use homelab_kube::{Cluster, JobEvent, KubeconfigSource, RetryPolicy};
use homelab_ops::backup_job::{self, BackupJobError, Operation, RunOptions};
use support::{StandIn, StandInOptions, http_json};

const SPEC: &str = include_str!("fixtures/postgres-lab.yaml");

fn standin() -> StandIn {
    StandIn::start(&StandInOptions {
        controllers: false,
        controller_delay: Duration::ZERO,
        crd_delay: Duration::ZERO,
        latency: Duration::ZERO,
        nodes: vec!["k3s-master".into()],
        run_jobs: None,
        ignore_label_selectors: false,
    })
}

/// Runs `op` on an empty cluster; returns the error and every event the run reported.
fn run_on_empty_cluster(op: Operation) -> (BackupJobError, Vec<JobEvent>, StandIn) {
    run_on_empty_cluster_with(op, RetryPolicy::with_retries(0), |_| {})
}

/// [`run_on_empty_cluster`] with `retry`, after `prepare` (e.g. injecting faults) once the
/// connection was checked.
fn run_on_empty_cluster_with(
    op: Operation,
    retry: RetryPolicy,
    prepare: impl FnOnce(&StandIn),
) -> (BackupJobError, Vec<JobEvent>, StandIn) {
    let loaded =
        homelab_spec::load_str("homelab.yaml", SPEC).unwrap_or_else(|e| panic!("{}", e.render()));
    let plan = homelab_plan::plan(&loaded.lab);
    let setup = backup_job::setup(&plan).unwrap();
    let api = standin();
    let source = KubeconfigSource {
        explicit: Some(api.kubeconfig.clone()),
        ..KubeconfigSource::default()
    };
    let events = Mutex::new(Vec::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async {
        let cluster = Cluster::connect(&source).await.unwrap();
        prepare(&api);
        let options = RunOptions {
            timeout: Duration::from_secs(30),
            follow_log: true,
            retry,
        };
        let progress = |e: JobEvent| events.lock().unwrap().push(e);
        backup_job::run(&cluster, &setup, op, &[], &options, &progress).await
    });
    let err = match result {
        Ok(ran) => panic!("a Job ran on an empty cluster: {:?}", ran.outcome),
        Err(e) => e,
    };
    (err, events.into_inner().unwrap(), api)
}

fn jobs_in_cluster(api: &StandIn) -> usize {
    let (code, list) = http_json(
        api.port,
        "GET",
        "/apis/batch/v1/jobs",
        "application/json",
        None,
    );
    assert_eq!(code, 200, "{list}");
    list["items"].as_array().map_or(0, Vec::len)
}

#[test]
fn a_backup_of_a_lab_never_applied_names_the_missing_cronjob_and_starts_nothing() {
    let (err, events, api) = run_on_empty_cluster(Operation::Backup);
    match &err {
        BackupJobError::CronJobNotInCluster { namespace, cronjob } => {
            assert_eq!(
                (namespace.as_str(), cronjob.as_str()),
                ("data", "postgres-backup")
            );
        }
        other => panic!("expected CronJobNotInCluster, got {other:?}"),
    }
    assert!(err.to_string().contains("apply the lab first"), "{err}");
    assert!(err.to_string().contains("Nothing was started"), "{err}");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(jobs_in_cluster(&api), 0);
}

#[test]
fn a_listing_without_what_its_pod_mounts_names_each_object_and_starts_nothing() {
    let (err, events, api) = run_on_empty_cluster(Operation::List);
    match &err {
        BackupJobError::MissingReferences { operation, missing } => {
            assert_eq!(*operation, Operation::List);
            assert!(
                missing.iter().any(|m| m.contains("postgres-backup")),
                "the backup volume's claim is named: {missing:?}"
            );
        }
        other => panic!("expected MissingReferences, got {other:?}"),
    }
    assert!(err.to_string().starts_with("the list Job needs "), "{err}");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(jobs_in_cluster(&api), 0);
}

/// Retries as short as a test can wait for, three attempts.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    }
}

fn retries(events: &[JobEvent]) -> Vec<(String, u32)> {
    events
        .iter()
        .filter_map(|e| match e {
            JobEvent::Retrying {
                action, attempt, ..
            } => Some((action.clone(), *attempt)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_checks_before_a_job_ride_out_a_starting_api_and_say_each_retry() {
    // The CronJob read answers 503 twice and the scripts' ConfigMap read has its connection
    // reset once, as a K3s server that is still starting does.
    let (err, events, api) = run_on_empty_cluster_with(Operation::Backup, quick_retries(), |api| {
        api.inject_fault("GET", "/cronjobs/postgres-backup$", 503, 2);
    });
    assert!(
        matches!(err, BackupJobError::CronJobNotInCluster { .. }),
        "the third read got the answer: {err:?}"
    );
    assert_eq!(
        retries(&events),
        [
            ("read CronJob data/postgres-backup".to_string(), 1),
            ("read CronJob data/postgres-backup".to_string(), 2),
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| matches!(e, JobEvent::Retrying { reason, .. } if reason.contains("HTTP 503"))),
        "{events:?}"
    );
    assert_eq!(jobs_in_cluster(&api), 0);

    let (err, events, api) = run_on_empty_cluster_with(Operation::List, quick_retries(), |api| {
        api.inject_reset("GET", "/configmaps/", 1);
    });
    assert!(
        matches!(err, BackupJobError::MissingReferences { .. }),
        "{err:?}"
    );
    let retried = retries(&events);
    assert_eq!(retried.len(), 1, "{events:?}");
    assert!(
        retried[0].0.starts_with("read ConfigMap data/"),
        "{events:?}"
    );
    assert_eq!(jobs_in_cluster(&api), 0);
}

#[test]
fn with_no_retries_asked_for_the_first_failure_stops_the_run_and_is_named() {
    let (err, events, api) =
        run_on_empty_cluster_with(Operation::Backup, RetryPolicy::with_retries(0), |api| {
            api.inject_fault("GET", "/cronjobs/postgres-backup$", 503, 1);
        });
    let text = err.to_string();
    assert!(
        text.contains("CronJob data/postgres-backup") && text.contains("HTTP 503"),
        "{text}"
    );
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(jobs_in_cluster(&api), 0);
}
