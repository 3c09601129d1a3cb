//! The dashboard's reads of the cluster beyond the status checks: Nodes, node metrics
//! (metrics.k8s.io), Alertmanager's alerts and silences through the API server's service
//! proxy, K3s' etcd snapshot records, and the logs of the last backup and drill Jobs. GET
//! requests only, all of one pass at once; each answer is kept as it came (JSON or text) or
//! as why it could not be had, for the pure page models to read. Must not write anything.

use kube::Client;
use serde_json::Value;

/// One GET's outcome.
#[derive(Debug, Clone)]
pub enum Read<T> {
    Got(T),
    /// 404: the API has no such thing (metrics-server or a CRD not installed).
    Absent,
    /// Anything else, in one line.
    Failed(String),
}

impl<T> Read<T> {
    pub fn got(&self) -> Option<&T> {
        match self {
            Read::Got(v) => Some(v),
            _ => None,
        }
    }
}

/// Where Alertmanager is, as the API server's service proxy names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertmanagerRef {
    pub namespace: String,
    pub service: String,
    pub port: u16,
}

impl AlertmanagerRef {
    /// `/api/v1/namespaces/NS/services/http:NAME:PORT/proxy` + `path`.
    pub fn proxy_path(&self, path: &str) -> String {
        format!(
            "/api/v1/namespaces/{}/services/http:{}:{}/proxy{path}",
            self.namespace, self.service, self.port
        )
    }

    pub fn describe(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.service, self.port)
    }
}

/// The PostgreSQL backup CronJob whose Jobs' logs hold the dump and drill records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupJobsRef {
    pub namespace: String,
    pub cronjob: String,
}

/// What the pages beyond the overview need, named once at start from the plan.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub alertmanager: Option<AlertmanagerRef>,
    pub backup: Option<BackupJobsRef>,
}

/// The log of the newest finished Job of one kind, with the Job's name.
#[derive(Debug, Clone)]
pub struct JobLog {
    pub job: String,
    pub succeeded: bool,
    pub log: Read<String>,
}

/// One pass of reads.
#[derive(Debug, Clone)]
pub struct ClusterReads {
    pub nodes: Read<Value>,
    pub node_metrics: Read<Value>,
    pub alerts: Option<Read<Value>>,
    pub silences: Option<Read<Value>>,
    pub etcd_snapshots: Read<Value>,
    /// `None`: the lab has no PostgreSQL backups, or no Job of that kind is there.
    pub last_backup: Option<Read<JobLog>>,
    pub last_drill: Option<Read<JobLog>>,
}

/// K3s records each etcd snapshot it takes (scheduled or on demand) as one of these,
/// cluster-scoped, since v1.27.
pub const ETCD_SNAPSHOT_FILES: &str = "/apis/k3s.cattle.io/v1/etcdsnapshotfiles";
pub const NODE_METRICS: &str = "/apis/metrics.k8s.io/v1beta1/nodes";

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn get_text(client: &Client, path: &str) -> Read<String> {
    let request = match http::Request::get(path).body(Vec::new()) {
        Ok(r) => r,
        Err(e) => return Read::Failed(format!("cannot make the request {path}: {e}")),
    };
    match client.request_text(request).await {
        Ok(text) => Read::Got(text),
        Err(kube::Error::Api(status)) if status.code == 404 => Read::Absent,
        Err(kube::Error::Api(status)) => Read::Failed(format!(
            "HTTP {}: {}",
            status.code,
            one_line(&status.message)
        )),
        Err(e) => Read::Failed(one_line(&e.to_string())),
    }
}

async fn get_json(client: &Client, path: &str) -> Read<Value> {
    match get_text(client, path).await {
        Read::Got(text) => match serde_json::from_str(&text) {
            Ok(v) => Read::Got(v),
            Err(e) => Read::Failed(format!("the answer to {path} is not JSON ({e})")),
        },
        Read::Absent => Read::Absent,
        Read::Failed(why) => Read::Failed(why),
    }
}

/// The newest finished Job in `jobs` that `pick` selects, and its pod's log.
async fn last_job_log(
    client: &Client,
    namespace: &str,
    jobs: &Read<Value>,
    pick: impl Fn(&Value) -> bool,
) -> Option<Read<JobLog>> {
    let items = match jobs {
        Read::Got(list) => list["items"].as_array().cloned().unwrap_or_default(),
        Read::Absent => return None,
        Read::Failed(why) => return Some(Read::Failed(why.clone())),
    };
    let finished = |j: &Value| {
        j.pointer("/status/completionTime")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                // A failed Job has no completion time: its Failed condition says when.
                j.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"] == "Failed" && c["status"] == "True")
                    .and_then(|c| c["lastTransitionTime"].as_str())
                    .map(str::to_string)
            })
    };
    let job = items
        .iter()
        .filter(|j| pick(j))
        .filter_map(|j| Some((finished(j)?, j)))
        // RFC 3339 in UTC sorts as text.
        .max_by(|a, b| a.0.cmp(&b.0))?;
    let (_, job) = job;
    let name = job["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let succeeded = job.pointer("/status/succeeded").and_then(Value::as_i64) > Some(0);
    let pods = get_json(
        client,
        &format!("/api/v1/namespaces/{namespace}/pods?labelSelector=job-name%3D{name}"),
    )
    .await;
    let log = match pods {
        Read::Got(list) => {
            let pod = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["metadata"]["name"].as_str())
                .next_back()
                .map(str::to_string);
            match pod {
                Some(pod) => {
                    get_text(
                        client,
                        &format!("/api/v1/namespaces/{namespace}/pods/{pod}/log"),
                    )
                    .await
                }
                None => Read::Failed(format!("Job {namespace}/{name} has no pod left")),
            }
        }
        Read::Absent => Read::Failed(format!("Job {namespace}/{name} has no pod left")),
        Read::Failed(why) => Read::Failed(why),
    };
    Some(Read::Got(JobLog {
        job: name,
        succeeded,
        log,
    }))
}

/// Whether `job` is a run of `cronjob` (scheduled, or made from it by `homelab backup
/// postgres`): the CronJob is its controller.
fn run_of_cronjob(job: &Value, cronjob: &str) -> bool {
    job.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|o| o["kind"] == "CronJob" && o["name"] == cronjob)
}

/// A Job of `homelab backup drill`: labelled so, owned by nobody.
fn drill_job(job: &Value) -> bool {
    job.pointer("/metadata/labels/app.kubernetes.io~1component")
        .and_then(Value::as_str)
        == Some("backup-drill")
}

/// Every read of one pass, all at once.
pub async fn read_all(client: &Client, targets: &Targets) -> ClusterReads {
    let alerts = async {
        match &targets.alertmanager {
            Some(am) => Some(get_json(client, &am.proxy_path("/api/v2/alerts")).await),
            None => None,
        }
    };
    let silences = async {
        match &targets.alertmanager {
            Some(am) => Some(get_json(client, &am.proxy_path("/api/v2/silences")).await),
            None => None,
        }
    };
    let backups = async {
        let Some(b) = &targets.backup else {
            return (None, None);
        };
        let jobs = get_json(
            client,
            &format!("/apis/batch/v1/namespaces/{}/jobs", b.namespace),
        )
        .await;
        futures::join!(
            last_job_log(client, &b.namespace, &jobs, |j| run_of_cronjob(
                j, &b.cronjob
            )),
            last_job_log(client, &b.namespace, &jobs, drill_job)
        )
    };
    let (nodes, node_metrics, alerts, silences, etcd_snapshots, (last_backup, last_drill)) = futures::join!(
        get_json(client, "/api/v1/nodes"),
        get_json(client, NODE_METRICS),
        alerts,
        silences,
        get_json(client, ETCD_SNAPSHOT_FILES),
        backups
    );
    ClusterReads {
        nodes,
        node_metrics,
        alerts,
        silences,
        etcd_snapshots,
        last_backup,
        last_drill,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backup_runs_are_the_cronjobs_and_drills_are_labelled() {
        let scheduled = json!({"metadata": {"ownerReferences": [{"kind": "CronJob", "name": "postgres-backup"}]}});
        let drill =
            json!({"metadata": {"labels": {"app.kubernetes.io/component": "backup-drill"}}});
        assert!(run_of_cronjob(&scheduled, "postgres-backup"));
        assert!(!run_of_cronjob(&scheduled, "other"));
        assert!(!run_of_cronjob(&drill, "postgres-backup"));
        assert!(drill_job(&drill));
        assert!(!drill_job(&scheduled));
    }

    #[test]
    fn the_proxy_path_names_the_plain_http_port() {
        let am = AlertmanagerRef {
            namespace: "monitoring".into(),
            service: "kube-prometheus-stack-alertmanager".into(),
            port: 9093,
        };
        assert_eq!(
            am.proxy_path("/api/v2/alerts"),
            "/api/v1/namespaces/monitoring/services/http:kube-prometheus-stack-alertmanager:9093/proxy/api/v2/alerts"
        );
    }
}
