//! `status` reading alerting rules from Prometheus through the API server's service proxy
//! (the stand-in answers the proxy path with Prometheus' rules API documents): a rule without
//! alerts is a healthy line, pending and firing alerts name what they are about, and a
//! Prometheus that cannot be asked or lacks the rule is a problem, never a pass.

mod support;

use homelab_kube::{
    AlertCheck, Cluster, Health, KubeconfigSource, StatusChecks, StatusOptions, StatusReport,
};
use serde_json::{Value, json};
use support::{StandIn, StandInOptions};

const NS: &str = "monitoring";
const SERVICE: &str = "kube-prometheus-stack-prometheus";
const PROXIED: &str = "http:kube-prometheus-stack-prometheus:9090";
const RULES: &str = "/api/v1/rules?type=alert";

fn mount_check() -> AlertCheck {
    AlertCheck {
        namespace: NS.into(),
        service: SERVICE.into(),
        port: 9090,
        alert: "EtcdSnapshotDirNotMounted".into(),
        subject_label: "node".into(),
        healthy: "etcd snapshot directory /mnt/k3s-snapshots is mounted from the NAS on every server".into(),
        problem: "etcd snapshot directory /mnt/k3s-snapshots is not mounted from the NAS".into(),
        fix: "run `homelab nodes apply` (it mounts the NAS there), see docs/runbooks/cluster-backup.md".into(),
    }
}

/// Prometheus' answer to `GET /api/v1/rules?type=alert` with the mount rule in `state`,
/// alerting for `alerts` (node, state), beside another group's rule.
fn rules(state: &str, alerts: &[(&str, &str)]) -> Value {
    json!({
        "status": "success",
        "data": {"groups": [
            {"name": "homelab-k3s", "file": "/etc/prometheus/rules/x.yaml", "rules": [{
                "name": "EtcdSnapshotDirNotMounted",
                "query": "kube_node_info unless node_filesystem_avail_bytes",
                "duration": 900,
                "labels": {"severity": "warning", "priority": "P2"},
                "annotations": {},
                "alerts": alerts.iter().map(|(node, state)| json!({
                    "labels": {"alertname": "EtcdSnapshotDirNotMounted", "node": node, "severity": "warning"},
                    "annotations": {},
                    "state": state,
                    "activeAt": "2026-12-07T10:00:00Z",
                    "value": "1e+00",
                })).collect::<Vec<_>>(),
                "health": "ok",
                "evaluationTime": 0.001,
                "lastEvaluation": "2026-12-07T10:20:00Z",
                "state": state,
                "type": "alerting",
            }]},
            {"name": "homelab-nodes", "file": "/etc/prometheus/rules/y.yaml", "rules": [{
                "name": "NodeDown", "query": "up == 0", "duration": 0, "labels": {}, "annotations": {},
                "alerts": [{"labels": {"alertname": "NodeDown", "node": "s9"}, "state": "firing"}],
                "health": "ok", "state": "firing", "type": "alerting",
            }]},
        ]},
    })
}

async fn status(standin: &StandIn, checks: &StatusChecks) -> StatusReport {
    let cluster = Cluster::connect(&KubeconfigSource {
        explicit: Some(standin.kubeconfig.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    cluster.status(checks, &StatusOptions::default()).await
}

#[tokio::test]
async fn the_etcd_snapshot_mount_is_read_from_prometheus_through_the_service_proxy() {
    let standin = StandIn::start(&StandInOptions {
        nodes: vec![],
        ..Default::default()
    });
    let checks = StatusChecks {
        alerts: vec![mount_check()],
        ..Default::default()
    };

    // No Prometheus pod behind the Service yet: unknown, and said so.
    let report = status(&standin, &checks).await;
    assert_eq!(report.health, Health::Unhealthy);
    let a = &report.alerts[0];
    assert!(!a.ok);
    assert!(
        a.detail.starts_with("unknown: Prometheus (monitoring/kube-prometheus-stack-prometheus) could not be asked through the API server: ")
            && a.detail.contains("no endpoints available"),
        "{}",
        a.detail
    );
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(
        report.problems[0].subject,
        "alert EtcdSnapshotDirNotMounted"
    );

    // Prometheus answers, the rule has no alert: every server has its mount.
    standin.proxy_answer(NS, PROXIED, RULES, 200, rules("inactive", &[]));
    let report = status(&standin, &checks).await;
    assert_eq!(report.health, Health::Healthy, "{:?}", report.problems);
    assert_eq!(
        serde_json::to_value(&report.alerts).unwrap(),
        json!([{
            "alert": "EtcdSnapshotDirNotMounted",
            "ok": true,
            "detail": "etcd snapshot directory /mnt/k3s-snapshots is mounted from the NAS on every server",
            "failing": [],
        }])
    );

    // Pending (within the rule's 15 minutes) and firing alike: the servers are named. The
    // other rule's firing alert is not this check's business.
    standin.proxy_answer(
        NS,
        PROXIED,
        RULES,
        200,
        rules("firing", &[("s3", "firing"), ("s2", "pending")]),
    );
    let report = status(&standin, &checks).await;
    assert_eq!(report.health, Health::Unhealthy);
    let a = &report.alerts[0];
    assert_eq!(a.failing, ["s2", "s3"]);
    assert_eq!(
        a.detail,
        "etcd snapshot directory /mnt/k3s-snapshots is not mounted from the NAS on s2, s3"
    );
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].problem, a.detail);
    assert_eq!(
        report.problems[0].fix,
        "run `homelab nodes apply` (it mounts the NAS there), see docs/runbooks/cluster-backup.md"
    );

    // A Prometheus without the rule (the lab's rules not applied) is not "mounted".
    let mut other = rules("inactive", &[]);
    other["data"]["groups"].as_array_mut().unwrap().remove(0);
    standin.proxy_answer(NS, PROXIED, RULES, 200, other);
    let report = status(&standin, &checks).await;
    assert_eq!(report.health, Health::Unhealthy);
    assert_eq!(
        report.alerts[0].detail,
        "unknown: Prometheus (monitoring/kube-prometheus-stack-prometheus) has no alerting rule EtcdSnapshotDirNotMounted"
    );
    assert!(report.problems[0].fix.contains("homelab apply"));

    // A rule Prometheus cannot evaluate is not "mounted" either.
    let mut broken = rules("inactive", &[]);
    broken["data"]["groups"][0]["rules"][0]["health"] = json!("err");
    broken["data"]["groups"][0]["rules"][0]["lastError"] =
        json!("many-to-many matching not allowed");
    standin.proxy_answer(NS, PROXIED, RULES, 200, broken);
    let report = status(&standin, &checks).await;
    assert!(!report.alerts[0].ok);
    assert_eq!(
        report.alerts[0].detail,
        "unknown: Prometheus cannot evaluate EtcdSnapshotDirNotMounted: many-to-many matching not allowed"
    );

    // Only one request to Prometheus per status run, however many rules are checked.
    let twice = StatusChecks {
        alerts: vec![mount_check(), mount_check()],
        ..Default::default()
    };
    standin.clear_journal();
    let report = status(&standin, &twice).await;
    assert_eq!(report.alerts.len(), 2);
    let proxied = standin
        .journal()
        .iter()
        .filter(|s| s.path.contains("/proxy/"))
        .count();
    assert_eq!(proxied, 1);
}
