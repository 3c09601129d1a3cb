//! `upgrade` and `history` against sshd test hosts: snapshot first, servers then agents one
//! at a time, a failed step stops the rollout with rollback instructions.

mod common;

use common::{Recorder, changed, is_unchanged};
use homelab_nodes::testkit::TestLab;
use homelab_nodes::{
    ApplyOptions, NodesError, PREVIOUS_BINARY_PATH, Role, UpgradeOptions, apply, history, upgrade,
};

const OLD: &str = "v1.30.5+k3s1";
const NEW: &str = "v1.31.2+k3s1";

/// The node each drain/uncordon/install call concerns, in call order.
fn rollout(calls: &[(String, String)]) -> Vec<String> {
    calls
        .iter()
        .filter_map(|(n, c)| {
            if let Some(rest) = c.strip_prefix("kubectl drain ") {
                Some(format!("drain {}", rest.split_whitespace().next()?))
            } else if let Some(rest) = c.strip_prefix("kubectl uncordon ") {
                Some(format!("uncordon {rest}"))
            } else if c.starts_with("install.sh") {
                Some(format!(
                    "install {n} {}",
                    c.split_whitespace()
                        .find_map(|w| w.strip_prefix("INSTALL_K3S_VERSION="))?
                ))
            } else if c.starts_with("etcd-snapshot save") {
                Some("snapshot".into())
            } else {
                None
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_goes_snapshot_servers_agents_one_at_a_time() {
    let lab = TestLab::start(&[
        ("s1", Role::Server),
        ("a1", Role::Agent),
        ("s2", Role::Server),
        ("a2", Role::Agent),
    ]);
    let inv = lab.inventory(OLD);
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    lab.add_pod("a1", "apps", "web-1", false, false);
    lab.clear_calls();

    let dry = upgrade(
        &inv,
        &UpgradeOptions {
            to: Some(NEW.into()),
            dry_run: true,
        },
        &Recorder::default(),
    )
    .await
    .unwrap();
    assert!(
        format!("{dry}").contains("would drain a2, upgrade k3s v1.30.5+k3s1 -> v1.31.2+k3s1"),
        "{dry}"
    );
    assert!(
        lab.calls()
            .iter()
            .all(|(_, c)| c.starts_with("kubectl get"))
    );

    let rec = Recorder::default();
    let report = upgrade(
        &inv,
        &UpgradeOptions {
            to: Some(NEW.into()),
            dry_run: false,
        },
        &rec,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rollout(&lab.calls()),
        [
            "snapshot",
            "drain s1",
            "install s1 v1.31.2+k3s1",
            "uncordon s1",
            "drain s2",
            "install s2 v1.31.2+k3s1",
            "uncordon s2",
            "drain a1",
            "install a1 v1.31.2+k3s1",
            "uncordon a1",
            "drain a2",
            "install a2 v1.31.2+k3s1",
            "uncordon a2",
        ]
    );
    assert!(
        changed(&report, "s1")
            .iter()
            .any(|c| c.starts_with("took etcd snapshot pre-upgrade-v1-31-2-k3s1-s1-"))
    );
    assert!(
        changed(&report, "a2").contains(&"upgraded k3s v1.30.5+k3s1 -> v1.31.2+k3s1".to_string())
    );
    assert!(
        report
            .host("s1")
            .unwrap()
            .warnings
            .iter()
            .any(|w| w.contains("pins v1.30.5+k3s1; change it to v1.31.2+k3s1"))
    );
    let state = lab.state();
    for h in ["s1", "s2", "a1", "a2"] {
        assert_eq!(state["nodes"][h]["version"], NEW);
        assert_eq!(state["nodes"][h]["unschedulable"], false);
        assert!(
            lab.file(h, PREVIOUS_BINARY_PATH)
                .unwrap()
                .contains("VERSION='v1.30.5+k3s1'"),
            "the previous binary is kept on {h}"
        );
    }

    let hist = history(&inv, &Recorder::default()).await.unwrap();
    let upgrades: Vec<_> = hist.iter().filter(|e| e.action == "upgrade").collect();
    assert_eq!(
        upgrades.iter().map(|e| e.node.as_str()).collect::<Vec<_>>(),
        ["s1", "s2", "a1", "a2"]
    );
    assert!(upgrades.iter().all(|e| e.from.as_deref() == Some(OLD)
        && e.to.as_deref() == Some(NEW)
        && e.result == "ok"));
    assert!(
        upgrades[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("pre-upgrade-v1-31-2-k3s1")
    );

    // Pinned version updated: nothing left to do, and apply agrees.
    let inv = lab.inventory(NEW);
    lab.clear_calls();
    let again = upgrade(&inv, &UpgradeOptions::default(), &Recorder::default())
        .await
        .unwrap();
    assert!(again.all_unchanged(), "{again}");
    assert!(rollout(&lab.calls()).is_empty());
    assert!(
        apply(&inv, &ApplyOptions::default(), &Recorder::default())
            .await
            .unwrap()
            .all_unchanged()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_stops_the_rollout_and_says_how_to_roll_back() {
    let lab = TestLab::start(&[
        ("s1", Role::Server),
        ("s2", Role::Server),
        ("a1", Role::Agent),
    ]);
    let mut inv = lab.inventory(OLD);
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    lab.set_fail_ready("s2", true);
    inv.timeouts.ready = std::time::Duration::from_secs(4);
    lab.clear_calls();

    let err = upgrade(
        &inv,
        &UpgradeOptions {
            to: Some(NEW.into()),
            dry_run: false,
        },
        &Recorder::default(),
    )
    .await
    .unwrap_err();
    let NodesError::Incomplete { report, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        changed(report, "s1").contains(&"upgraded k3s v1.30.5+k3s1 -> v1.31.2+k3s1".to_string()),
        "{report}"
    );
    let msg = format!("{report}");
    assert!(msg.contains("s2 failed while waiting for Ready"), "{msg}");
    assert!(
        msg.contains(&format!(
            "sudo cp {PREVIOUS_BINARY_PATH} /usr/local/bin/k3s && sudo systemctl restart k3s"
        )),
        "{msg}"
    );
    assert!(
        msg.contains("homelab etcd snapshot restore pre-upgrade-v1-31-2-k3s1-s1-"),
        "{msg}"
    );
    assert!(msg.contains("Upgraded: s1. Not touched: a1."), "{msg}");
    assert!(report.stopped.is_some());
    assert!(
        !rollout(&lab.calls()).iter().any(|c| c.contains("a1")),
        "a1 was not touched: {:?}",
        rollout(&lab.calls())
    );
    assert_eq!(lab.state()["nodes"]["a1"]["version"], OLD);
    let hist = history(&inv, &Recorder::default()).await.unwrap();
    let last = hist.last().unwrap();
    assert_eq!((last.node.as_str(), last.result.as_str()), ("s2", "failed"));
    assert!(
        last.detail
            .as_deref()
            .unwrap()
            .contains("waiting for Ready")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downgrades_skipped_minors_and_broken_clusters_are_refused_before_any_change() {
    let lab = TestLab::start(&[("s1", Role::Server), ("a1", Role::Agent)]);
    let inv = lab.inventory(NEW);
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    lab.clear_calls();
    let before = lab.tree();
    for (to, expect) in [
        (
            "v1.30.9+k3s1",
            "newer than v1.30.9+k3s1; k3s does not support downgrades",
        ),
        ("v1.33.1+k3s1", "skips a Kubernetes minor release"),
        ("latest", "is not a k3s release version"),
    ] {
        let err = upgrade(
            &inv,
            &UpgradeOptions {
                to: Some(to.into()),
                dry_run: false,
            },
            &Recorder::default(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, NodesError::Refused { .. }) && err.to_string().contains(expect),
            "{to}: {err}"
        );
    }
    assert_eq!(lab.tree(), before);
    let out = lab.exec("a1", "systemctl stop k3s-agent");
    assert!(out.status.success());
    let before = lab.tree();
    let err = upgrade(
        &inv,
        &UpgradeOptions {
            to: Some("v1.31.3+k3s1".into()),
            dry_run: false,
        },
        &Recorder::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("a1 is NotReady"), "{err}");
    assert_eq!(lab.tree(), before);
    assert!(rollout(&lab.calls()).is_empty());
    assert!(is_unchanged(
        &apply(
            &lab.inventory_of(NEW, &["s1"]),
            &ApplyOptions::default(),
            &Recorder::default()
        )
        .await
        .unwrap(),
        "s1"
    ));
}
