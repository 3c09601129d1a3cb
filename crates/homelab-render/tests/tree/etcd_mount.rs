//! The etcd snapshot mount watched without SSH: the warning that a server's snapshot
//! directory is not the NAS, read from node-exporter's mount table and kube-state-metrics'
//! nodes, proven with promtool, and explained in the cluster-backup runbook only when the
//! snapshots go to the NAS.

use serde_json::{Value, json};

use crate::common::*;
use crate::validators::layers_of;

const ALERT: &str = "EtcdSnapshotDirNotMounted";

fn rule_of(objects: &[Value]) -> Option<Value> {
    objects
        .iter()
        .filter(|o| o["kind"] == "PrometheusRule")
        .flat_map(|o| o["spec"]["groups"].as_array().unwrap().iter())
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .find(|r| r["alert"] == ALERT)
        .cloned()
}

fn series(series: &str, values: &str) -> Value {
    json!({"series": series, "values": values})
}

/// The seed lab's server `k3s-master` (192.168.2.20) and agent `k3s-worker-01`
/// (192.168.2.21) as kube-state-metrics reports them, for `minutes`.
fn nodes(minutes: u64) -> Vec<Value> {
    let ksm = "job=\"kube-state-metrics\",instance=\"10.42.0.9:8080\"";
    vec![
        series(
            &format!("kube_node_info{{{ksm},node=\"k3s-master\",internal_ip=\"192.168.2.20\"}}"),
            &format!("1x{minutes}"),
        ),
        series(
            &format!("kube_node_role{{{ksm},node=\"k3s-master\",role=\"control-plane\"}}"),
            &format!("1x{minutes}"),
        ),
        series(
            &format!("kube_node_role{{{ksm},node=\"k3s-master\",role=\"etcd\"}}"),
            &format!("1x{minutes}"),
        ),
        series(
            &format!("kube_node_info{{{ksm},node=\"k3s-worker-01\",internal_ip=\"192.168.2.21\"}}"),
            &format!("1x{minutes}"),
        ),
    ]
}

/// node-exporter on a host (on the host network: its instance is the node's IP).
fn exporter(ip: &str, minutes: u64) -> Value {
    series(
        &format!(
            "node_uname_info{{job=\"node-exporter\",instance=\"{ip}:9100\",nodename=\"host-{ip}\"}}"
        ),
        &format!("1x{minutes}"),
    )
}

fn filesystem(ip: &str, mountpoint: &str, fstype: &str, values: &str) -> Value {
    series(
        &format!(
            "node_filesystem_avail_bytes{{job=\"node-exporter\",instance=\"{ip}:9100\",mountpoint=\"{mountpoint}\",fstype=\"{fstype}\"}}"
        ),
        values,
    )
}

#[test]
fn a_server_without_the_nas_at_its_snapshot_directory_warns_after_fifteen_minutes() {
    let (_tmp, objects) = layers_of(SEED);
    let rule = rule_of(&objects).expect("the etcd snapshot mount alert");
    assert_eq!(rule["labels"]["severity"], "warning");
    assert_eq!(rule["labels"]["priority"], "P2");
    assert_eq!(rule["for"], "15m");
    assert_eq!(
        rule["annotations"]["runbook_url"],
        "docs/runbooks/cluster-backup.md"
    );
    let fires = json!([{
        "exp_labels": {
            "job": "kube-state-metrics", "instance": "10.42.0.9:8080",
            "node": "k3s-master", "internal_ip": "192.168.2.20",
            "severity": "warning", "priority": "P2",
        },
        "exp_annotations": {
            "summary": "/mnt/k3s-snapshots on server k3s-master is not an NFS mount",
            "description": "node-exporter has not seen the NAS (192.168.2.2:/volume1/k8s-data/k3s-etcd-snapshots/home-lab) mounted at /mnt/k3s-snapshots on k3s-master for 15 minutes: the etcd snapshots k3s takes there stay on the server's own disk and are lost with it.",
            "runbook_url": "docs/runbooks/cluster-backup.md",
        },
    }]);
    let at = |minute: u64, fire: bool| {
        json!({
            "eval_time": format!("{minute}m"),
            "alertname": ALERT,
            "exp_alerts": if fire { fires.clone() } else { json!([]) },
        })
    };
    let mut both = vec![exporter("192.168.2.20", 40), exporter("192.168.2.21", 40)];
    both.extend(nodes(40));
    let root = |ip: &str| filesystem(ip, "/", "ext4", "1e10x40");
    let case = |name: &str, extra: Vec<Value>, checks: Vec<Value>| {
        let mut input = both.clone();
        input.extend(extra);
        json!({"name": name, "interval": "1m", "input_series": input, "alert_rule_test": checks})
    };
    let tests = vec![
        case(
            "the NAS mounted (nfs4) on the server, nothing on the agent: quiet",
            vec![
                root("192.168.2.20"),
                root("192.168.2.21"),
                filesystem("192.168.2.20", "/mnt/k3s-snapshots", "nfs4", "5e11x40"),
            ],
            vec![at(20, false), at(39, false)],
        ),
        case(
            "mounted over NFS v3 (nfs): quiet",
            vec![filesystem(
                "192.168.2.20",
                "/mnt/k3s-snapshots",
                "nfs",
                "5e11x40",
            )],
            vec![at(39, false)],
        ),
        case(
            "never mounted, the directory on the root disk: fires after 15 minutes",
            vec![root("192.168.2.20"), root("192.168.2.21")],
            vec![at(14, false), at(16, true)],
        ),
        case(
            "another filesystem at the directory (a local disk): fires",
            vec![filesystem(
                "192.168.2.20",
                "/mnt/k3s-snapshots",
                "ext4",
                "5e11x40",
            )],
            vec![at(16, true)],
        ),
        case(
            "the NAS at another server's path or on the agent only: fires",
            vec![
                filesystem("192.168.2.20", "/mnt/other", "nfs4", "5e11x40"),
                filesystem("192.168.2.21", "/mnt/k3s-snapshots", "nfs4", "5e11x40"),
            ],
            vec![at(16, true)],
        ),
        case(
            // A series gone from a scrape is marked stale at once, as `stale` says here.
            "the mount lost at minute 10: quiet until 15 minutes later",
            vec![filesystem(
                "192.168.2.20",
                "/mnt/k3s-snapshots",
                "nfs4",
                "5e11x10 stale",
            )],
            vec![at(20, false), at(24, false), at(27, true)],
        ),
    ];
    // A server node-exporter does not report at all is TargetDown's, not this rule's.
    let mut unreported = vec![exporter("192.168.2.21", 40)];
    unreported.extend(nodes(40));
    let mut tests = tests;
    tests.push(json!({
        "name": "node-exporter not reporting the server: quiet",
        "interval": "1m",
        "input_series": unreported,
        "alert_rule_test": [at(20, false)],
    }));
    promtool_test_rule("p2", &rule, "1m", json!(tests));
}

/// A lab without `storage.nfs` cannot have monitoring (it is stateful), so only its runbook
/// can speak of the alert, and it does not.
#[test]
fn the_cluster_backup_runbook_explains_the_alert_only_when_the_snapshots_go_to_the_nas() {
    let tree = render_k3s(&seed_plan());
    let text = tree.text("docs/runbooks/cluster-backup.md").unwrap();
    assert!(
        text.contains("## Alert: EtcdSnapshotDirNotMounted (P2)")
            && text.contains("no `nfs`/`nfs4` filesystem at `/mnt/k3s-snapshots` for 15 minutes")
            && text.contains("mounts `192.168.2.2:/volume1/k8s-data/k3s-etcd-snapshots/home-lab` at /mnt/k3s-snapshots again"),
        "{text}"
    );
    let no_nas = minimal_spec().replace(
        "storage:\n  nfs:\n    server: 192.168.2.2\n    path: /volume1/k8s-data\n",
        "",
    );
    assert!(!no_nas.contains("storage:"), "{no_nas}");
    let tree = render_k3s(&plan_of(&no_nas));
    let text = tree.text("docs/runbooks/cluster-backup.md").unwrap();
    assert!(!text.contains(ALERT), "{text}");
}
