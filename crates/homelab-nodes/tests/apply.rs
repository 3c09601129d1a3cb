//! `apply` against real sshd test hosts (own network and mount namespaces) with the k3s
//! stand-ins: converge, no-op re-run, add a node, dry run, airgap, reconfigure, labels.

mod common;

use common::{Recorder, call_index, changed, is_unchanged};
use homelab_nodes::testkit::{TEST_TOKEN, TestLab};
use homelab_nodes::{
    ApplyOptions, EventKind, HISTORY_PATH, HostErrorKind, HostOutcome, InstallSource, NodesError,
    Role, Taint, TaintEffect, apply, history,
};

const V: &str = "v1.31.2+k3s1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_converge_then_a_rerun_changes_nothing() {
    let lab = TestLab::start(&[
        ("s1", Role::Server),
        ("s2", Role::Server),
        ("a1", Role::Agent),
    ]);
    let inv = lab.inventory(V);
    let rec = Recorder::default();
    let report = apply(&inv, &ApplyOptions::default(), &rec)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    assert!(
        changed(&report, "s1")
            .iter()
            .any(|c| c.contains("installed k3s v1.31.2+k3s1 as first server (cluster-init)"))
    );
    assert!(
        changed(&report, "s2")
            .iter()
            .any(|c| c.contains("as server joining https://"))
    );
    assert!(
        changed(&report, "a1")
            .iter()
            .any(|c| c.contains("as agent joining https://"))
    );

    let s1_ip = &lab.host("s1").ip;
    let first = lab.file("s1", "/etc/rancher/k3s/config.yaml").unwrap();
    assert!(
        first.contains("cluster-init: true\n")
            && first.contains("node-name: \"s1\"\n")
            && !first.contains("server:"),
        "{first}"
    );
    assert!(
        first.contains("disable:\n  - servicelb\n"),
        "the rendered config is kept: {first}"
    );
    let agent = lab.file("a1", "/etc/rancher/k3s/config.yaml").unwrap();
    assert!(
        agent.contains(&format!("server: \"https://{s1_ip}:6443\"")),
        "{agent}"
    );
    assert!(agent.contains("token-file: \"/etc/rancher/k3s/cluster-token\""));
    for h in ["s1", "s2", "a1"] {
        assert_eq!(
            lab.file(h, "/etc/rancher/k3s/cluster-token").as_deref(),
            Some(TEST_TOKEN)
        );
        assert_eq!(lab.mode(h, "/etc/rancher/k3s/cluster-token"), Some(0o600));
        assert!(
            !lab.file(h, "/etc/rancher/k3s/config.yaml")
                .unwrap()
                .contains(TEST_TOKEN)
        );
        assert!(
            lab.file(h, "/usr/local/bin/k3s")
                .unwrap()
                .contains("VERSION='v1.31.2+k3s1'")
        );
        let apt = lab
            .file(h, "/etc/apt/apt.conf.d/52homelab-unattended-upgrades")
            .unwrap();
        assert!(apt.contains("Unattended-Upgrade::Automatic-Reboot \"false\";"));
    }
    assert!(lab.file("s1", "/etc/systemd/system/k3s.service").is_some());
    assert!(
        lab.file("a1", "/etc/systemd/system/k3s-agent.service")
            .is_some()
    );
    let env = lab
        .file("a1", "/etc/systemd/system/k3s-agent.service.env")
        .unwrap();
    assert!(
        !env.contains(TEST_TOKEN),
        "the token must not reach the unit's environment: {env}"
    );
    // Real apt reads the written configuration: reboots off, security origins only.
    let dump = lab.exec("s1", "apt-config dump Unattended-Upgrade");
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("Unattended-Upgrade::Automatic-Reboot \"false\";"),
        "{dump}"
    );
    assert!(
        dump.contains("-security") && !dump.contains("label=Debian\";"),
        "{dump}"
    );

    let calls = lab.calls();
    let installs: Vec<&String> = calls
        .iter()
        .filter(|(_, c)| c.starts_with("install.sh"))
        .map(|(_, c)| c)
        .collect();
    assert_eq!(installs.len(), 3, "{calls:#?}");
    assert!(
        installs
            .iter()
            .all(|c| c.contains("INSTALL_K3S_VERSION=v1.31.2+k3s1") && c.ends_with("K3S_TOKEN="))
    );
    assert!(
        call_index(&calls, "s1", "install.sh server")
            < call_index(&calls, "s2", "install.sh server")
    );
    assert!(
        call_index(&calls, "s2", "install.sh server")
            < call_index(&calls, "a1", "install.sh agent")
    );
    let state = lab.state();
    for h in ["s1", "s2", "a1"] {
        assert_eq!(state["nodes"][h]["ready"], true, "{state}");
    }
    let hist = history(&inv, &Recorder::default()).await.unwrap();
    assert_eq!(
        hist.iter()
            .map(|e| (e.action.as_str(), e.node.as_str()))
            .collect::<Vec<_>>(),
        [("install", "s1"), ("install", "s2"), ("install", "a1")]
    );
    assert!(lab.file("s1", HISTORY_PATH).is_some());

    // The second run changes nothing, says so per host, and runs no installer or mutation.
    lab.clear_calls();
    let before = lab.tree();
    let rec2 = Recorder::default();
    let again = apply(&inv, &ApplyOptions::default(), &rec2).await.unwrap();
    assert!(again.all_unchanged(), "{again}");
    assert_eq!(lab.tree(), before);
    let calls = lab.calls();
    assert!(
        calls.iter().all(|(_, c)| c.starts_with("kubectl get")),
        "a no-op run only reads: {calls:#?}"
    );
    for h in ["s1", "s2", "a1"] {
        assert!(
            rec2.kinds("Labels and taints", h)
                .iter()
                .any(|k| matches!(k, EventKind::Unchanged { .. }))
        );
    }
    let text = rec.text() + &rec2.text();
    assert!(!text.contains(TEST_TOKEN), "the token leaked into events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_node_touches_only_the_new_one_even_through_a_jump_host() {
    let lab = TestLab::start(&[
        ("s1", Role::Server),
        ("a1", Role::Agent),
        ("a2", Role::Agent),
    ]);
    let before = lab.inventory_of(V, &["s1", "a1"]);
    apply(&before, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    lab.clear_calls();

    let mut after = lab.inventory(V);
    // a2 is reached through s1 (ProxyJump in the SSH config), as a host behind a bastion would be.
    after.hosts[2].ssh.destination = Some("via-jump-a2".into());
    let report = apply(&after, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    assert!(
        is_unchanged(&report, "s1") && is_unchanged(&report, "a1"),
        "{report}"
    );
    assert!(
        changed(&report, "a2")
            .iter()
            .any(|c| c.contains("installed k3s"))
    );
    let calls = lab.calls();
    assert!(
        calls.iter().all(|(n, c)| n == "a2"
            || c.starts_with("kubectl get")
            || c.contains("homelab-rs.github.io")),
        "{calls:#?}"
    );
    assert_eq!(lab.state()["nodes"]["a2"]["ready"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_per_host_and_changes_nothing() {
    let lab = TestLab::start(&[("s1", Role::Server), ("a1", Role::Agent)]);
    let mut inv = lab.inventory(V);
    let empty = lab.tree();
    let rec = Recorder::default();
    let report = apply(&inv, &ApplyOptions { dry_run: true }, &rec)
        .await
        .unwrap();
    assert_eq!(lab.tree(), empty, "a dry run wrote on a host");
    assert!(
        lab.calls().is_empty(),
        "a dry run ran k3s: {:#?}",
        lab.calls()
    );
    for (h, expect) in [
        ("s1", "would install k3s v1.31.2+k3s1 as first server"),
        ("a1", "would install k3s v1.31.2+k3s1 as agent"),
    ] {
        match &report.host(h).unwrap().outcome {
            HostOutcome::WouldChange { changes } => {
                assert!(changes.iter().any(|c| c.contains(expect)), "{changes:?}")
            }
            other => panic!("{h}: {other:?}"),
        }
    }
    assert!(rec.kinds("Prepare hosts", "s1").iter().any(|k| matches!(k, EventKind::WouldChange { message } if message.contains("52homelab-unattended-upgrades"))));

    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    inv.hosts[1].labels.insert("tier".into(), "batch".into());
    inv.hosts[1].k3s_config.push_str("node-ip: 10.9.9.9\n");
    lab.clear_calls();
    let converged = lab.tree();
    let report = apply(&inv, &ApplyOptions { dry_run: true }, &Recorder::default())
        .await
        .unwrap();
    assert_eq!(lab.tree(), converged);
    assert!(
        lab.calls()
            .iter()
            .all(|(_, c)| c.starts_with("kubectl get")),
        "{:#?}",
        lab.calls()
    );
    assert_eq!(report.host("s1").unwrap().outcome, HostOutcome::Unchanged);
    let HostOutcome::WouldChange { changes } = &report.host("a1").unwrap().outcome else {
        panic!("{report}")
    };
    let all = changes.join("\n");
    assert!(
        all.contains(
            "would reconfigure and restart k3s: config.yaml differs (+ node-ip: 10.9.9.9)"
        ),
        "{all}"
    );
    assert!(all.contains("would set labels tier=batch"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airgap_uploads_the_release_files_once() {
    let lab = TestLab::start(&[
        ("s1", Role::Server),
        ("a1", Role::Agent),
        ("x1", Role::Server),
    ]);
    let mut inv = lab.inventory_of(V, &["s1", "a1"]);
    inv.install = InstallSource::Airgap {
        dir: lab.airgap_dir(V),
    };
    let report = apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    assert!(
        changed(&report, "a1")
            .iter()
            .any(|c| c.contains("installed k3s v1.31.2+k3s1 as agent"))
    );
    for h in ["s1", "a1"] {
        let images = lab
            .file(
                h,
                "/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst",
            )
            .unwrap();
        assert!(images.starts_with("stand-in images archive"));
        assert_eq!(lab.mode(h, "/usr/local/bin/k3s"), Some(0o755));
    }
    let calls = lab.calls();
    assert!(
        calls
            .iter()
            .filter(|(_, c)| c.starts_with("install.sh"))
            .all(|(_, c)| c.contains("INSTALL_K3S_SKIP_DOWNLOAD=true")),
        "{calls:#?}"
    );
    lab.clear_calls();
    let again = apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    assert!(again.all_unchanged(), "{again}");

    // A binary of another version in the airgap directory is caught after the upload.
    let mut wrong = lab.inventory_of(V, &["x1"]);
    wrong.k3s_version = "v1.31.3+k3s1".into();
    wrong.install = InstallSource::Airgap {
        dir: lab.airgap_dir(V),
    };
    let err = apply(&wrong, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap_err();
    let report = err.report().unwrap().to_string();
    assert!(
        report.contains(
            "the k3s binary in the airgap directory is v1.31.2+k3s1, but v1.31.3+k3s1 is pinned"
        ),
        "{report}"
    );
    assert!(
        lab.file("x1", "/etc/systemd/system/k3s.service").is_none(),
        "the installer did not run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_restart_only_that_host_and_labels_taints_converge() {
    let lab = TestLab::start(&[("s1", Role::Server), ("a1", Role::Agent)]);
    let mut inv = lab.inventory(V);
    inv.hosts[1].labels.insert("tier".into(), "apps".into());
    inv.hosts[1].labels.insert("old".into(), "x".into());
    inv.hosts[1].taints.push(Taint {
        key: "gpu".into(),
        value: Some("rtx3060".into()),
        effect: TaintEffect::NoSchedule,
    });
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    let node = &lab.state()["nodes"]["a1"];
    assert_eq!(node["labels"]["tier"], "apps");
    assert_eq!(node["taints"][0]["value"], "rtx3060");

    // Someone else labels the node; the spec drops `old`, changes the taint value and the config.
    let out = lab.exec("s1", "k3s kubectl label node a1 --overwrite team=data");
    assert!(out.status.success());
    inv.hosts[1].labels.remove("old");
    inv.hosts[1].taints[0].value = Some("a100".into());
    inv.hosts[1]
        .k3s_config
        .push_str("kubelet-arg:\n  - max-pods=50\n");
    lab.clear_calls();
    let report = apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    assert!(is_unchanged(&report, "s1"), "{report}");
    let changes = changed(&report, "a1").join("\n");
    assert!(
        changes.contains("reconfigured and restarted k3s (config.yaml differs"),
        "{changes}"
    );
    assert!(changes.contains("remove labels old"), "{changes}");
    let calls = lab.calls();
    assert!(
        !calls
            .iter()
            .any(|(n, c)| n == "s1" && c.starts_with("install.sh")),
        "{calls:#?}"
    );
    assert!(
        calls
            .iter()
            .any(|(n, c)| n == "a1" && c.starts_with("install.sh agent")),
        "{calls:#?}"
    );
    let node = &lab.state()["nodes"]["a1"];
    assert_eq!(node["labels"]["team"], "data", "labels set by others stay");
    assert!(node["labels"].get("old").is_none());
    assert_eq!(node["taints"].as_array().unwrap().len(), 1);
    assert_eq!(node["taints"][0]["value"], "a100");
    assert!(
        lab.file("a1", "/etc/rancher/k3s/config.yaml")
            .unwrap()
            .contains("  - max-pods=50\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_host_and_refused_sudo_fail_alone_while_the_others_converge() {
    let mut lab = TestLab::start(&[
        ("s1", Role::Server),
        ("a1", Role::Agent),
        ("a2", Role::Agent),
        ("a3", Role::Agent),
    ]);
    lab.add_user("a2", "carol", None, None);
    lab.add_user("a3", "bob", None, Some("ALL=(ALL) NOPASSWD: ALL"));
    lab.stop_sshd("a1");
    let mut inv = lab.inventory(V);
    inv.hosts[2].ssh.user = Some("carol".into());
    inv.hosts[3].ssh.user = Some("bob".into());
    let err = apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap_err();
    let NodesError::Incomplete {
        report, summary, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!(
        summary.contains("a1") && summary.contains("a2"),
        "{summary}"
    );
    match &report.host("a1").unwrap().outcome {
        HostOutcome::Failed { phase, error, .. } => {
            assert_eq!(phase, "Connect");
            assert_eq!(error.kind, HostErrorKind::Unreachable);
            assert!(
                error.message.contains("Connection refused"),
                "{}",
                error.message
            );
        }
        other => panic!("{other:?}"),
    }
    match &report.host("a2").unwrap().outcome {
        HostOutcome::Failed { error, .. } => {
            assert_eq!(error.kind, HostErrorKind::SudoRefused);
            assert!(
                error
                    .message
                    .contains("sudo on this host needs a password for user carol"),
                "{}",
                error.message
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        changed(report, "s1")
            .iter()
            .any(|c| c.contains("installed"))
    );
    assert!(
        changed(report, "a3")
            .iter()
            .any(|c| c.contains("installed")),
        "passwordless sudo works: {report}"
    );
    assert_eq!(lab.state()["nodes"]["a3"]["ready"], true);
    assert!(
        lab.file("a2", "/etc/rancher/k3s/config.yaml").is_none(),
        "nothing was written on the refused host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_that_cannot_run_k3s_are_refused_and_left_alone() {
    let lab = TestLab::start(&[
        ("s1", Role::Server),
        ("s2", Role::Server),
        ("a1", Role::Agent),
    ]);
    lab.occupy_port("s2", 6443);
    let mut inv = lab.inventory(V);

    // A bad inventory is refused before any host is contacted.
    let before = lab.tree();
    inv.hosts[0].name = "S1_bad".into();
    let err = apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, NodesError::InvalidInventory { .. })
            && err.to_string().contains("host \"S1_bad\""),
        "{err}"
    );
    assert_eq!(lab.tree(), before);
    assert!(lab.calls().is_empty());

    inv.hosts[0].name = "s1".into();
    // a1 lacks nfs-common: the dry run says it would be installed.
    let out = lab.exec("a1", "dpkg --purge --force-depends nfs-common >/dev/null 2>&1; dpkg-query -W -f='${Status}' nfs-common");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("install ok installed"));
    let dry = apply(&inv, &ApplyOptions { dry_run: true }, &Recorder::default())
        .await
        .unwrap_err();
    let HostOutcome::WouldChange { changes } = &dry.report().unwrap().host("a1").unwrap().outcome
    else {
        panic!("{dry}")
    };
    assert!(
        changes.iter().any(|c| c
            .starts_with("would install nfs-common; write /etc/apt/apt.conf.d/20auto-upgrades")),
        "{changes:?}"
    );
    // The test hosts cannot reach a package mirror, so the real run leaves NFS out.
    inv.prepare.nfs_common = false;
    let err = apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap_err();
    let report = err.report().unwrap();
    let HostOutcome::Failed { phase, error, .. } = &report.host("s2").unwrap().outcome else {
        panic!("{report}")
    };
    assert_eq!(phase, "Validate");
    assert_eq!(error.kind, HostErrorKind::Refused);
    assert!(
        error.message.contains("port 6443 already in use"),
        "{}",
        error.message
    );
    assert!(
        changed(report, "s1")
            .iter()
            .any(|c| c.contains("installed"))
    );
    assert!(
        changed(report, "a1")
            .iter()
            .any(|c| c.contains("installed"))
    );
    assert!(lab.file("s2", "/etc/rancher/k3s/config.yaml").is_none());
    assert!(
        lab.file("s2", "/etc/apt/apt.conf.d/52homelab-unattended-upgrades")
            .is_none(),
        "a refused host is not prepared either"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_a_stopped_run_never_examined_are_skipped_not_unchanged() {
    let mut lab = TestLab::start(&[
        ("s1", Role::Server),
        ("s2", Role::Server),
        ("a1", Role::Agent),
    ]);
    let mut inv = lab.inventory(V);
    inv.timeouts.ready = std::time::Duration::from_secs(2);
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();

    // s1 (the control server) gets a new config and comes up NotReady: the run stops in
    // "Install first server". a1 gets a new update policy, written in "Prepare hosts" before
    // the stop; s2 and a1 would also get new labels, which no phase ever looked at.
    inv.hosts[0].k3s_config.push_str("node-ip: 10.9.9.9\n");
    lab.set_fail_ready("s1", true);
    inv.prepare.reboot_at = Some("04:00".into());
    inv.hosts[1].labels.insert("tier".into(), "db".into());
    inv.hosts[2].labels.insert("tier".into(), "apps".into());
    let rec = Recorder::default();
    let err = apply(&inv, &ApplyOptions::default(), &rec)
        .await
        .unwrap_err();
    let report = err.report().unwrap();
    let stopped = report.stopped.clone().unwrap();
    assert!(
        stopped.contains("s1 failed in phase \"Install first server\""),
        "{stopped}"
    );
    match &report.host("s1").unwrap().outcome {
        HostOutcome::Failed { phase, .. } => assert_eq!(phase, "Install first server"),
        other => panic!("{other:?}"),
    }
    for h in ["s2", "a1"] {
        match &report.host(h).unwrap().outcome {
            HostOutcome::Skipped { reason, changes } => {
                assert!(
                    reason.contains("Join") && reason.contains(&stopped),
                    "{h}: {reason}"
                );
                // What was done before the stop is still reported, and only that.
                assert!(
                    changes
                        .iter()
                        .all(|c| c.contains("52homelab-unattended-upgrades")),
                    "{h}: {changes:?}"
                );
                assert_eq!(changes.len(), 1, "{h}: {changes:?}");
            }
            other => {
                panic!("{h} was never examined past Prepare, yet reported {other:?}\n{report}")
            }
        }
        assert!(
            rec.events().iter().any(|e| e.host.as_deref() == Some(h)
                && matches!(&e.kind, EventKind::Skipped { reason } if reason.contains(&stopped))),
            "{h} is said to be skipped as it happens"
        );
    }
    let text = report.to_string();
    assert!(text.contains("s2: skipped: "), "{text}");
    assert!(text.contains("a1: skipped: "), "{text}");
    assert!(!text.contains("unchanged"), "{text}");
    assert!(lab.state()["nodes"]["a1"]["labels"].get("tier").is_none());

    // The control server unreachable: the others connected and were never looked at.
    lab.set_fail_ready("s1", false);
    lab.stop_sshd("s1");
    let err = apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap_err();
    let report = err.report().unwrap();
    for h in ["s2", "a1"] {
        match &report.host(h).unwrap().outcome {
            HostOutcome::Skipped { reason, changes } => {
                assert!(reason.contains("Gather facts"), "{reason}");
                assert!(changes.is_empty(), "{changes:?}");
            }
            other => panic!("{h}: {other:?}\n{report}"),
        }
    }
}

const MOUNT_UNIT: &str = "/etc/systemd/system/mnt-k3s\\x2dsnapshots.mount";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_mount_the_snapshot_directory_from_the_nas_before_k3s_and_a_rerun_changes_nothing()
{
    let lab = TestLab::start(&[
        ("s1", Role::Server),
        ("s2", Role::Server),
        ("a1", Role::Agent),
    ]);
    let mut inv = lab.inventory(V);
    let mount = lab.snapshot_mount();
    inv.prepare.etcd_snapshot_mount = Some(mount.clone());
    let nas = lab.nas_address().to_string();
    let source = format!("{nas}:/volume1/k8s-data/k3s-etcd-snapshots/testlab");

    let rec = Recorder::default();
    let dry = apply(&inv, &ApplyOptions { dry_run: true }, &rec)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for s in ["s1", "s2"] {
        match &dry.host(s).unwrap().outcome {
            HostOutcome::WouldChange { changes } => assert!(
                changes.iter().any(|c| c.contains(&format!(
                    "write {MOUNT_UNIT}; enable mnt-k3s\\x2dsnapshots.mount; mount {source} at /mnt/k3s-snapshots"
                ))),
                "{changes:?}"
            ),
            other => panic!("{s}: {other:?}"),
        }
    }
    assert!(lab.calls().iter().all(|(_, c)| !c.starts_with("mount.nfs")));
    assert!(lab.file("s1", MOUNT_UNIT).is_none());

    let report = apply(&inv, &ApplyOptions::default(), &rec)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let unit = format!(
        "# Written by `homelab nodes apply` from homelab.yaml (storage.nfs and\n\
         # cluster.etcdSnapshots.dir): lab testlab's etcd snapshots go to the NAS, so that they\n\
         # survive the loss of this server. Changes here are overwritten by the next apply.\n\
         [Unit]\n\
         Description=etcd snapshots of lab testlab on the NAS ({source})\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         Before=k3s.service\n\
         \n\
         [Mount]\n\
         What={source}\n\
         Where=/mnt/k3s-snapshots\n\
         Type=nfs\n\
         Options=hard,noatime,_netdev\n\
         TimeoutSec=60\n\
         \n\
         [Install]\n\
         WantedBy=remote-fs.target k3s.service\n"
    );
    let tree = lab.tree();
    for s in ["s1", "s2"] {
        assert_eq!(
            lab.file(s, MOUNT_UNIT).as_deref(),
            Some(unit.as_str()),
            "{s}"
        );
        assert_eq!(lab.mode(s, MOUNT_UNIT), Some(0o644));
        for wants in ["k3s.service.wants", "remote-fs.target.wants"] {
            assert_eq!(
                tree.get(&format!(
                    "{s}:/etc/systemd/system/{wants}/mnt-k3s\\x2dsnapshots.mount"
                )),
                Some(&format!("link {MOUNT_UNIT}")),
                "{s} enables the unit for {wants}"
            );
        }
        assert!(
            changed(&report, s)
                .iter()
                .any(|c| c.contains(&format!("mount {source} at /mnt/k3s-snapshots"))),
            "{report}"
        );
    }
    assert!(
        lab.file("a1", MOUNT_UNIT).is_none(),
        "agents keep no etcd snapshots"
    );
    // Both servers write to the lab's directory on the NAS, which was made for it.
    let out = lab.exec("s1", "echo from-s1 > /mnt/k3s-snapshots/probe");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(lab.nas_dir("/volume1/k8s-data/k3s-etcd-snapshots/testlab/probe"))
            .unwrap(),
        "from-s1\n"
    );
    let seen = lab.exec("s2", "cat /mnt/k3s-snapshots/probe");
    assert_eq!(String::from_utf8_lossy(&seen.stdout), "from-s1\n");
    // Mounted before k3s was installed anywhere.
    let calls = lab.calls();
    let last_mount = calls
        .iter()
        .rposition(|(_, c)| c.starts_with("systemctl start mnt-k3s"))
        .expect("the mount unit was started");
    let first_install = calls
        .iter()
        .position(|(_, c)| c.starts_with("install.sh"))
        .expect("k3s was installed");
    assert!(last_mount < first_install, "{calls:#?}");

    lab.clear_calls();
    let again = apply(&inv, &ApplyOptions::default(), &rec)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for h in ["s1", "s2", "a1"] {
        assert!(is_unchanged(&again, h), "{again}");
    }
    let changing: Vec<_> = lab
        .calls()
        .into_iter()
        .filter(|(_, c)| {
            c.starts_with("mount.nfs")
                || ["enable", "start", "restart", "stop", "daemon-reload"]
                    .iter()
                    .any(|v| c.starts_with(&format!("systemctl {v}")))
        })
        .collect();
    assert!(changing.is_empty(), "{changing:#?}");
    assert_eq!(lab.tree(), tree, "the re-run wrote nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nas_that_refuses_or_is_down_fails_prepare_clearly_and_changes_nothing() {
    let mut lab = TestLab::start(&[("s1", Role::Server), ("a1", Role::Agent)]);
    let mut inv = lab.inventory(V);
    let nas = lab.nas_address().to_string();
    let before = lab.tree();

    let failure = |err: NodesError| match err {
        NodesError::Incomplete { report, .. } => {
            match &report.host("a1").unwrap().outcome {
                HostOutcome::Skipped { .. } => {}
                other => panic!("a1 must be skipped: {other:?}"),
            }
            match &report.host("s1").unwrap().outcome {
                HostOutcome::Failed { phase, error, .. } => {
                    assert_eq!(phase, "Prepare hosts");
                    error.message.clone()
                }
                other => panic!("s1 must fail: {other:?}"),
            }
        }
        other => panic!("{other}"),
    };

    // An export the NAS does not have.
    inv.prepare.etcd_snapshot_mount = Some(homelab_nodes::SnapshotMount {
        export: "/volume2/nope".into(),
        ..lab.snapshot_mount()
    });
    let message = failure(
        apply(&inv, &ApplyOptions::default(), &Recorder::default())
            .await
            .unwrap_err(),
    );
    assert!(
        message.contains(&format!(
            "the NAS export {nas}:/volume2/nope cannot be mounted on s1"
        )) && message.contains("access denied by server")
            && message.contains("exports /volume2/nope to it"),
        "{message}"
    );

    // The NAS is down.
    lab.stop_nas();
    inv.prepare.etcd_snapshot_mount = Some(lab.snapshot_mount());
    let message = failure(
        apply(&inv, &ApplyOptions::default(), &Recorder::default())
            .await
            .unwrap_err(),
    );
    assert!(
        message.contains(&format!(
            "the NAS export {nas}:/volume1/k8s-data cannot be mounted on s1 (mount.nfs: Connection refused)"
        )) && message.contains(&format!("check that the NAS at {nas} is up")),
        "{message}"
    );
    let written: Vec<String> = lab
        .tree()
        .into_keys()
        .filter(|k| !before.contains_key(k))
        .collect();
    assert!(
        written.iter().all(|k| k.contains(":/etc/apt")),
        "only the update settings were written, nothing for the mount or k3s: {written:?}"
    );
    assert!(
        lab.calls()
            .iter()
            .all(|(_, c)| !c.starts_with("install.sh")),
        "k3s is not installed without its snapshot mount"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_op_apply_runs_one_remote_command_per_host() {
    let lab = TestLab::start(&[
        ("s1", Role::Server),
        ("s2", Role::Server),
        ("a1", Role::Agent),
    ]);
    let mut inv = lab.inventory(V);
    inv.prepare.etcd_snapshot_mount = Some(lab.snapshot_mount());
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Every command sshd runs starts root's login shell, which logs the start.
    lab.slow_login_shell(std::time::Duration::from_millis(10));
    let report = apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for h in ["s1", "s2", "a1"] {
        assert!(is_unchanged(&report, h), "{report}");
        assert_eq!(
            lab.shell_starts(h),
            1,
            "{h}: privilege, facts, mount and (on s1) the cluster's nodes in one command"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_already_in_the_snapshot_directory_are_hidden_by_the_mount_and_said_so() {
    let lab = TestLab::start(&[("s1", Role::Server)]);
    let mut inv = lab.inventory(V);
    inv.prepare.etcd_snapshot_mount = Some(homelab_nodes::SnapshotMount {
        dir: "/var/lib/k3s-snapshots".into(),
        ..lab.snapshot_mount()
    });
    let out = lab.exec(
        "s1",
        "mkdir -p /var/lib/k3s-snapshots && echo old > /var/lib/k3s-snapshots/etcd-snapshot-s1-1",
    );
    assert!(out.status.success(), "{out:?}");
    let report = apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let warnings = &report.host("s1").unwrap().warnings;
    assert!(
        warnings.iter().any(|w| w.contains(
            "/var/lib/k3s-snapshots held 1 entry on the server's own disk (older snapshots?) that the NAS mount now hides, without deleting them"
        ) && w.contains("systemctl stop var-lib-k3s\\x2dsnapshots.mount")),
        "{warnings:?}"
    );
    let listed = lab.exec("s1", "ls -A /var/lib/k3s-snapshots");
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "",
        "the NAS directory is empty"
    );
    let unmounted = lab.exec(
        "s1",
        "systemctl stop 'var-lib-k3s\\x2dsnapshots.mount' && cat /var/lib/k3s-snapshots/etcd-snapshot-s1-1",
    );
    assert_eq!(
        String::from_utf8_lossy(&unmounted.stdout),
        "old\n",
        "the hidden file is still there: {unmounted:?}"
    );
}
