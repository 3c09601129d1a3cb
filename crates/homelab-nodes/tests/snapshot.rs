//! etcd snapshots against sshd test hosts: save, list, prune and a confirmed restore that
//! resets the first server and rejoins the others.

mod common;

use common::{Recorder, call_index, changed};
use homelab_nodes::testkit::TestLab;
use homelab_nodes::{
    ApplyOptions, NodesError, Role, apply, history, snapshot_list, snapshot_prune,
    snapshot_restore, snapshot_save,
};

const V: &str = "v1.31.2+k3s1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_list_prune() {
    let lab = TestLab::start(&[("s1", Role::Server)]);
    let inv = lab.inventory(V);
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    let first = snapshot_save(&inv, Some("manual"), &Recorder::default())
        .await
        .unwrap();
    let second = snapshot_save(&inv, Some("manual"), &Recorder::default())
        .await
        .unwrap();
    let other = snapshot_save(&inv, None, &Recorder::default())
        .await
        .unwrap();
    assert!(first.starts_with("manual-s1-") && second.starts_with("manual-s1-") && first != second);
    assert!(other.starts_with("on-demand-s1-"));
    let calls = lab.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|(_, c)| c == "etcd-snapshot save --name manual")
            .count(),
        2,
        "{calls:#?}"
    );

    let list = snapshot_list(&inv, &Recorder::default()).await.unwrap();
    assert_eq!(
        list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        [first.as_str(), second.as_str(), other.as_str()]
    );
    assert!(list.iter().all(|s| {
        s.size_bytes > 0
            && s.age.is_some()
            && s.location
                .starts_with("file:///var/lib/rancher/k3s/server/db/snapshots/")
    }));
    let path = format!("/var/lib/rancher/k3s/server/db/snapshots/{first}");
    assert!(lab.file("s1", &path).is_some());

    let pruned = snapshot_prune(&inv, 1, Some("manual"), &Recorder::default())
        .await
        .unwrap();
    assert_eq!(pruned, vec![first.clone()]);
    assert!(lab.file("s1", &path).is_none());
    assert_eq!(
        snapshot_list(&inv, &Recorder::default())
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        snapshot_prune(&inv, 0, None, &Recorder::default())
            .await
            .unwrap_err()
            .to_string()
            .contains("keep at least 1")
    );
    assert!(
        snapshot_save(&inv, Some("bad name;"), &Recorder::default())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_asks_then_resets_the_first_server_and_rejoins_the_others() {
    let lab = TestLab::start(&[
        ("s1", Role::Server),
        ("s2", Role::Server),
        ("a1", Role::Agent),
    ]);
    let inv = lab.inventory(V);
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    let snap = snapshot_save(&inv, Some("before-change"), &Recorder::default())
        .await
        .unwrap();

    let err = snapshot_restore(
        &inv,
        "no-such-snapshot",
        &|_: &str| true,
        &Recorder::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, NodesError::Refused { .. }) && err.to_string().contains(&snap),
        "{err}"
    );

    lab.clear_calls();
    let before = lab.tree();
    let asked = std::sync::Mutex::new(String::new());
    let no = |q: &str| {
        *asked.lock().unwrap() = q.into();
        false
    };
    let err = snapshot_restore(&inv, &snap, &no, &Recorder::default())
        .await
        .unwrap_err();
    assert!(matches!(err, NodesError::Cancelled { .. }), "{err}");
    assert!(
        asked
            .lock()
            .unwrap()
            .contains("k3s stops on every server (s1, s2)"),
        "{}",
        asked.lock().unwrap()
    );
    assert_eq!(lab.tree(), before);
    assert!(
        !lab.calls().iter().any(|(_, c)| c.starts_with("systemctl")),
        "{:#?}",
        lab.calls()
    );

    let report = snapshot_restore(&inv, &snap, &|_: &str| true, &Recorder::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        changed(&report, "s1")
            .iter()
            .any(|c| c.contains("restored etcd from /var/lib/rancher/k3s/server/db/snapshots/"))
    );
    assert!(changed(&report, "s2").iter().any(|c| c.contains(
        "moved its old etcd data to /var/lib/rancher/k3s/server/db.homelab-before-restore-"
    )));
    let calls = lab.calls();
    let stop1 = call_index(&calls, "s1", "systemctl stop k3s");
    let stop2 = call_index(&calls, "s2", "systemctl stop k3s");
    let reset = call_index(
        &calls,
        "s1",
        &format!(
            "server --cluster-reset --cluster-reset-restore-path=/var/lib/rancher/k3s/server/db/snapshots/{snap}"
        ),
    );
    let start1 = call_index(&calls, "s1", "systemctl start k3s");
    let start2 = call_index(&calls, "s2", "systemctl start k3s");
    assert!(
        stop1.max(stop2) < reset && reset < start1 && start1 < start2,
        "{calls:#?}"
    );
    assert!(
        !calls.iter().any(|(n, _)| n == "a1"),
        "agents are left alone: {calls:#?}"
    );
    let state = lab.state();
    assert_eq!(state["reset_epoch"], 1);
    assert_eq!(state["nodes"]["s2"]["ready"], true, "s2 rejoined");
    let hist = history(&inv, &Recorder::default()).await.unwrap();
    assert_eq!(
        hist.last().map(|e| (e.action.as_str(), e.result.as_str())),
        Some(("restore", "ok"))
    );
}
