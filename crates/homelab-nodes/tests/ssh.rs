//! SSH behaviour against real sshd hosts: host keys are checked strictly, sudo works with
//! and without a password, and refusals are explained.

mod common;

use common::{Recorder, changed};
use homelab_nodes::testkit::TestLab;
use homelab_nodes::{ApplyOptions, HostErrorKind, HostOutcome, NodesError, Role, apply};
use secrecy::SecretString;

const V: &str = "v1.31.2+k3s1";

fn failure(err: &NodesError, host: &str) -> (HostErrorKind, String) {
    let report = err.report().unwrap_or_else(|| panic!("no report: {err}"));
    match &report.host(host).unwrap().outcome {
        HostOutcome::Failed { error, .. } => (error.kind, error.message.clone()),
        other => panic!("{host}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_and_unknown_host_keys_are_refused_with_the_fingerprint() {
    let lab = TestLab::start(&[
        ("s1", Role::Server),
        ("a1", Role::Agent),
        ("a2", Role::Agent),
    ]);
    lab.change_known_host_key("a1");
    lab.forget_known_host("a2");
    let inv = lab.inventory(V);
    let untouched = |tree: std::collections::BTreeMap<String, String>| -> Vec<(String, String)> {
        tree.into_iter()
            .filter(|(k, _)| k.starts_with("a1:") || k.starts_with("a2:"))
            .collect()
    };
    let before = untouched(lab.tree());
    let err = apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap_err();

    let (kind, msg) = failure(&err, "a1");
    assert_eq!(kind, HostErrorKind::HostKeyChanged);
    assert!(
        msg.contains(&lab.fingerprint("a1")),
        "the presented key's fingerprint is shown: {msg}"
    );
    assert!(msg.contains("has CHANGED"), "{msg}");
    let ip = &lab.host("a1").ip;
    assert!(
        msg.contains(&format!(
            "ssh-keygen -R {ip} -f {}",
            lab.known_hosts().display()
        )),
        "{msg}"
    );
    assert!(msg.contains("StrictHostKeyChecking=accept-new"), "{msg}");

    let (kind, msg) = failure(&err, "a2");
    assert_eq!(kind, HostErrorKind::HostKeyUnknown);
    assert!(msg.contains(&lab.fingerprint("a2")), "{msg}");
    assert!(msg.contains("is not known"), "{msg}");
    assert!(
        msg.contains(&format!(
            "-F {} -l root -o StrictHostKeyChecking=accept-new {} true",
            lab.ssh_config().display(),
            lab.host("a2").ip
        )),
        "{msg}"
    );

    // Nothing was accepted on the user's behalf, and the refused hosts were not touched.
    let known = std::fs::read_to_string(lab.known_hosts()).unwrap();
    assert!(!known.contains(&lab.host("a2").ip));
    assert!(!known.contains(&lab.host("a1").host_key));
    assert_eq!(untouched(lab.tree()), before);
    assert_eq!(
        err.report()
            .unwrap()
            .host("s1")
            .map(|h| matches!(h.outcome, HostOutcome::Changed { .. })),
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sudo_with_password_works_and_a_wrong_password_is_named() {
    let lab = TestLab::start(&[("s1", Role::Server), ("a1", Role::Agent)]);
    // Each host has its own sudo password.
    let password = "c0rrect-h0rse";
    let s1_password = "s1-b4ttery-staple";
    lab.add_user("s1", "alice", Some(s1_password), Some("ALL=(ALL) ALL"));
    lab.add_user("a1", "alice", Some(password), Some("ALL=(ALL) ALL"));
    let mut inv = lab.inventory(V);
    for h in &mut inv.hosts {
        h.ssh.user = Some("alice".into());
    }
    inv.sudo_passwords
        .insert("s1".into(), SecretString::from(s1_password));

    // a1 is given a wrong password: refused on a1 alone.
    inv.sudo_passwords
        .insert("a1".into(), SecretString::from("wrong-password"));
    let rec = Recorder::default();
    let err = apply(&inv, &ApplyOptions::default(), &rec)
        .await
        .unwrap_err();
    let (kind, msg) = failure(&err, "a1");
    assert_eq!(kind, HostErrorKind::SudoRefused);
    assert!(
        msg.contains("the sudo password for user alice was not accepted"),
        "{msg}"
    );
    assert!(!format!("{err}{}", rec.text()).contains("wrong-password"));
    assert!(
        err.report()
            .and_then(|r| r.host("s1"))
            .is_some_and(|h| !matches!(h.outcome, HostOutcome::Failed { .. })),
        "s1's own password works: {err}"
    );

    inv.sudo_passwords
        .insert("a1".into(), SecretString::from(password));
    let rec = Recorder::default();
    let report = apply(&inv, &ApplyOptions::default(), &rec)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        changed(&report, "a1")
            .iter()
            .any(|c| c.contains("installed"))
    );
    assert_eq!(
        lab.mode("a1", "/etc/rancher/k3s/cluster-token"),
        Some(0o600)
    );
    for secret in [password, s1_password] {
        assert!(
            !format!("{report}{}", rec.text()).contains(secret),
            "a sudo password leaked"
        );
    }
    // The password travels on stdin: no process on the host ever had it in its arguments.
    let sshd_log = std::fs::read_to_string(lab.dir.join("host-a1/sshd.log")).unwrap();
    assert!(!sshd_log.contains(password));
}
