//! `remove` and `reset` against sshd test hosts: agents and servers leave cleanly, drains
//! respect disruption budgets, and removals that would break etcd are refused.

mod common;

use common::{Recorder, call_index, changed};
use homelab_nodes::testkit::TestLab;
use homelab_nodes::{
    ApplyOptions, HostOutcome, NodesError, RemoveOptions, Role, apply, history, remove, reset,
};

const V: &str = "v1.31.2+k3s1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_agent_drains_deletes_and_uninstalls() {
    let lab = TestLab::start(&[
        ("s1", Role::Server),
        ("a1", Role::Agent),
        ("a2", Role::Agent),
    ]);
    let inv = lab.inventory(V);
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    lab.add_pod("a1", "apps", "n8n-7d9f", false, false);
    lab.add_pod("a1", "kube-system", "svclb-a1", false, true);
    lab.add_pod("a2", "data", "postgres-0", true, false);

    // Dry run first: nothing happens.
    let before = lab.tree();
    lab.clear_calls();
    let dry = remove(
        &inv,
        "a1",
        &RemoveOptions {
            dry_run: true,
            ..Default::default()
        },
        &Recorder::default(),
    )
    .await
    .unwrap();
    let HostOutcome::WouldChange { changes } = &dry.host("a1").unwrap().outcome else {
        panic!("{dry}")
    };
    assert!(
        changes
            .join("\n")
            .contains("would run /usr/local/bin/k3s-agent-uninstall.sh on a1"),
        "{changes:?}"
    );
    assert_eq!(lab.tree(), before);
    assert!(
        lab.calls()
            .iter()
            .all(|(_, c)| c.starts_with("kubectl get")),
        "{:#?}",
        lab.calls()
    );

    let report = remove(&inv, "a1", &RemoveOptions::default(), &Recorder::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        changed(&report, "a1"),
        [
            "cordoned and drained",
            "deleted from the cluster",
            "ran /usr/local/bin/k3s-agent-uninstall.sh"
        ]
    );
    let calls = lab.calls();
    let drain = call_index(
        &calls,
        "s1",
        "kubectl drain a1 --ignore-daemonsets --delete-emptydir-data --timeout=",
    );
    let delete = call_index(&calls, "s1", "kubectl delete node a1");
    let uninstall = call_index(&calls, "a1", "k3s-agent-uninstall.sh");
    assert!(drain < delete && delete < uninstall, "{calls:#?}");
    assert!(
        !calls
            .iter()
            .any(|(_, c)| c.contains("etcd.k3s.cattle.io/remove")),
        "an agent has no etcd member"
    );
    let state = lab.state();
    assert!(state["nodes"].get("a1").is_none());
    assert!(
        state["pods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["node"] != "a1")
    );
    assert!(lab.file("a1", "/etc/rancher/k3s/config.yaml").is_none());
    assert!(lab.file("a1", "/usr/local/bin/k3s").is_none());
    assert!(
        lab.file("a1", "/etc/systemd/system/k3s-agent.service")
            .is_none()
    );

    // A PodDisruptionBudget holds postgres-0 on a2: the drain times out and names the pod.
    let err = remove(&inv, "a2", &RemoveOptions::default(), &Recorder::default())
        .await
        .unwrap_err();
    let NodesError::Incomplete { report, .. } = &err else {
        panic!("{err}")
    };
    let HostOutcome::Failed { phase, error, .. } = &report.host("a2").unwrap().outcome else {
        panic!("{report}")
    };
    assert_eq!(phase, "Cordon and drain");
    assert!(
        error
            .message
            .contains("these pods would not leave: data/postgres-0 (a PodDisruptionBudget"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("k3s kubectl uncordon a2"),
        "{}",
        error.message
    );
    let state = lab.state();
    assert_eq!(
        state["nodes"]["a2"]["unschedulable"], true,
        "the node stays, cordoned"
    );
    assert!(
        lab.file("a2", "/usr/local/bin/k3s").is_some(),
        "k3s stays installed"
    );

    // Unknown names are refused before anything is contacted.
    let err = remove(
        &inv,
        "nope",
        &RemoveOptions::default(),
        &Recorder::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, NodesError::UnknownHost { .. })
            && err.to_string().contains("hosts: s1, a1, a2"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_server_leaves_etcd_first_and_quorum_is_protected() {
    let lab = TestLab::start(&[
        ("s1", Role::Server),
        ("s2", Role::Server),
        ("s3", Role::Server),
    ]);
    let inv = lab.inventory(V);
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();

    // s2 is down: removing s3 would leave one healthy member of two.
    let out = lab.exec("s2", "systemctl stop k3s");
    assert!(out.status.success());
    lab.clear_calls();
    let before = lab.tree();
    let err = remove(&inv, "s3", &RemoveOptions::default(), &Recorder::default())
        .await
        .unwrap_err();
    assert!(matches!(err, NodesError::Refused { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(
            "would leave 1 healthy etcd member(s) of 2 while 2 are needed for quorum (s2 NotReady)"
        ),
        "{msg}"
    );
    assert_eq!(lab.tree(), before, "a refused removal changes nothing");
    assert!(
        lab.calls()
            .iter()
            .all(|(_, c)| c.starts_with("kubectl get")),
        "{:#?}",
        lab.calls()
    );

    let out = lab.exec("s2", "systemctl start k3s");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = remove(&inv, "s3", &RemoveOptions::default(), &Recorder::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        changed(&report, "s3"),
        [
            "cordoned and drained",
            "removed from etcd",
            "deleted from the cluster",
            "ran /usr/local/bin/k3s-uninstall.sh"
        ]
    );
    let calls = lab.calls();
    let leave = call_index(
        &calls,
        "s1",
        "kubectl annotate node s3 --overwrite etcd.k3s.cattle.io/remove=true",
    );
    let delete = call_index(&calls, "s1", "kubectl delete node s3");
    assert!(
        call_index(&calls, "s1", "kubectl drain s3") < leave && leave < delete,
        "{calls:#?}"
    );
    assert!(lab.state()["nodes"].get("s3").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_etcd_server_is_never_removed() {
    let lab = TestLab::start(&[
        ("s1", Role::Server),
        ("s2", Role::Server),
        ("a1", Role::Agent),
    ]);
    // Inventory level: s1 is the only server listed.
    let alone = lab.inventory_of(V, &["s1", "a1"]);
    apply(&alone, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    let err = remove(
        &alone,
        "s1",
        &RemoveOptions::default(),
        &Recorder::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, NodesError::Refused { .. })
            && err.to_string().contains("s1 is the only server"),
        "{err}"
    );

    // Cluster level: s2 runs k3s but its etcd member was removed earlier, so s1 holds the last member.
    let inv = lab.inventory(V);
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    let out = lab.exec(
        "s1",
        "k3s kubectl annotate node s2 --overwrite etcd.k3s.cattle.io/remove=true",
    );
    assert!(out.status.success());
    lab.clear_calls();
    let before = lab.tree();
    let err = remove(&inv, "s1", &RemoveOptions::default(), &Recorder::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("s1 is the last etcd member of the cluster"),
        "{err}"
    );
    assert_eq!(lab.tree(), before);
    assert!(lab.state()["nodes"]["s1"]["unschedulable"] == false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_asks_first_and_removes_k3s() {
    let lab = TestLab::start(&[("s1", Role::Server), ("a1", Role::Agent)]);
    let inv = lab.inventory(V);
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    let before = lab.tree();
    let asked = std::sync::Mutex::new(String::new());
    let no = |q: &str| {
        *asked.lock().unwrap() = q.to_string();
        false
    };
    let err = reset(&inv, "a1", &no, &Recorder::default())
        .await
        .unwrap_err();
    assert!(matches!(err, NodesError::Cancelled { .. }), "{err}");
    assert!(
        asked.lock().unwrap().contains("from a1 ("),
        "{}",
        asked.lock().unwrap()
    );
    assert_eq!(lab.tree(), before);

    let yes = |_: &str| true;
    let report = reset(&inv, "a1", &yes, &Recorder::default()).await.unwrap();
    assert_eq!(
        changed(&report, "a1"),
        ["ran /usr/local/bin/k3s-agent-uninstall.sh"]
    );
    assert!(lab.file("a1", "/etc/rancher/k3s/cluster-token").is_none());
    assert!(lab.file("a1", "/usr/local/bin/k3s").is_none());
    let again = reset(&inv, "a1", &yes, &Recorder::default()).await.unwrap();
    assert!(again.all_unchanged(), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_is_gone_is_removed_from_the_cluster_without_contacting_it() {
    let mut lab = TestLab::start(&[
        ("s1", Role::Server),
        ("s2", Role::Server),
        ("a1", Role::Agent),
    ]);
    let inv = lab.inventory(V);
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    // A pod a PodDisruptionBudget holds: a drain would wait for it forever.
    lab.add_pod("s2", "data", "postgres-0", true, false);
    lab.stop_sshd("s2");
    let before = lab.tree();
    let state_before = lab.state();

    // Without the flag the removal stops at the connection, changes nothing, and says what
    // to do when the host is gone for good.
    lab.clear_calls();
    let err = remove(&inv, "s2", &RemoveOptions::default(), &Recorder::default())
        .await
        .unwrap_err();
    let NodesError::Incomplete { report, .. } = &err else {
        panic!("{err}")
    };
    let stopped = report.stopped.as_deref().unwrap_or_default();
    assert!(
        stopped.contains("nothing was changed")
            && stopped.contains("homelab nodes remove s2 --unreachable"),
        "{report}"
    );
    assert!(
        lab.calls().iter().all(|(_, c)| !c.contains("cordon")),
        "{:#?}",
        lab.calls()
    );
    assert_eq!(lab.state(), state_before);

    // With the flag, while k3s still reports the node Ready, the removal is refused: a
    // running k3s would register the node again.
    let gone = RemoveOptions {
        unreachable: true,
        ..Default::default()
    };
    let err = remove(&inv, "s2", &gone, &Recorder::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, NodesError::Refused { .. }) && err.to_string().contains("s2 is Ready"),
        "{err}"
    );
    assert_eq!(lab.state(), state_before);

    // The host died: its node goes NotReady. A dry run says what would happen and does it not.
    lab.mark_not_ready("s2");
    let state_dead = lab.state();
    let dry = remove(
        &inv,
        "s2",
        &RemoveOptions {
            dry_run: true,
            unreachable: true,
            ..Default::default()
        },
        &Recorder::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let HostOutcome::WouldChange { changes } = &dry.host("s2").unwrap().outcome else {
        panic!("{dry}")
    };
    assert_eq!(
        changes,
        &[
            "would cordon s2 (not drained: its host is gone; its pods are deleted with the node)",
            "would remove s2's etcd member",
            "would delete node s2",
        ],
        "{dry}"
    );
    assert_eq!(lab.state(), state_dead);

    // The removal: cordon, etcd member, delete, in that order on s1; nothing on s2.
    lab.clear_calls();
    let report = remove(&inv, "s2", &gone, &Recorder::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        changed(&report, "s2"),
        [
            "cordoned (its host is gone)",
            "removed from etcd",
            "deleted from the cluster"
        ]
    );
    let calls = lab.calls();
    let cordon = call_index(&calls, "s1", "kubectl cordon s2");
    let leave = call_index(&calls, "s1", "etcd.k3s.cattle.io/remove=true");
    let delete = call_index(&calls, "s1", "kubectl delete node s2");
    assert!(cordon < leave && leave < delete, "{calls:#?}");
    assert!(
        calls.iter().all(|(host, _)| host != "s2"),
        "the dead host was contacted: {calls:#?}"
    );
    let state = lab.state();
    assert!(state["nodes"].get("s2").is_none(), "{state}");
    assert!(
        state["pods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["node"] != "s2"),
        "its pods went with the node"
    );
    let host_files = |tree: &std::collections::BTreeMap<String, String>| {
        tree.iter()
            .filter(|(k, _)| k.starts_with("s2:"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        host_files(&lab.tree()),
        host_files(&before),
        "nothing on the host was touched"
    );
    assert!(lab.file("s2", "/usr/local/bin/k3s").is_some());
    let hist = history(&inv, &Recorder::default()).await.unwrap();
    assert!(
        hist.iter()
            .any(|e| e.action == "remove" && e.node == "s2" && e.result == "ok"),
        "{hist:?}"
    );
}
