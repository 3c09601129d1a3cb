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

/// `ssh -O check` on a control socket: the master's pid when one answers there.
fn master_pid(socket: &std::path::Path) -> Option<u32> {
    let out = std::process::Command::new("ssh")
        .args(["-O", "check", "-S"])
        .arg(socket)
        .arg("none")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    out.status
        .success()
        .then(|| said.split("pid=").nth(1)?.split(')').next()?.parse().ok())
        .flatten()
}

/// The control sockets in `dir`.
fn sockets(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

fn connect_messages(rec: &Recorder, host: &str) -> Vec<String> {
    rec.kinds("Connect", host)
        .into_iter()
        .filter_map(|k| match k {
            homelab_nodes::EventKind::Unchanged { message } => Some(message),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_connections_are_reused_by_the_next_run_and_a_dead_masters_socket_is_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let lab = TestLab::start(&[("s1", Role::Server), ("a1", Role::Agent)]);
    let dir = lab.dir.join("kept");
    // A directory the user made with the usual umask is narrowed to the user alone.
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut inv = lab.inventory(V);
    inv.ssh.control_dir = Some(dir.clone());
    inv.ssh.keep_connections = Some(std::time::Duration::from_secs(60));

    let first = Recorder::default();
    apply(&inv, &ApplyOptions::default(), &first)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let kept = sockets(&dir);
    assert_eq!(kept.len(), 2, "one master per host stays: {kept:?}");
    let pids: Vec<u32> = kept
        .iter()
        .map(|s| master_pid(s).unwrap_or_else(|| panic!("no master answers on {s:?}")))
        .collect();
    for h in ["s1", "a1"] {
        assert_eq!(connect_messages(&first, h), ["connected"]);
        assert_eq!(lab.logins(h), 1);
    }

    // The next run logs in nowhere: it goes through the masters the first one left.
    lab.slow_login_shell(std::time::Duration::ZERO);
    let second = Recorder::default();
    let report = apply(&inv, &ApplyOptions::default(), &second)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for h in ["s1", "a1"] {
        assert!(common::is_unchanged(&report, h), "{report}");
        assert_eq!(
            connect_messages(&second, h),
            ["connected (through the SSH connection an earlier run kept)"]
        );
        assert_eq!(lab.logins(h), 1, "{h}: no new login");
        assert_eq!(lab.shell_starts(h), 1, "{h}: still one command");
    }
    assert_eq!(sockets(&dir), kept);
    let again: Vec<u32> = kept.iter().map(|s| master_pid(s).unwrap()).collect();
    assert_eq!(again, pids, "the same master processes");

    // A master killed outright leaves its socket behind; the next run sees that nobody
    // answers there, opens a new master in its place and reuses the other host's.
    let s1_path = socket_to(&lab, &kept, "s1");
    let s1_socket = (
        s1_path.clone(),
        pids[kept.iter().position(|s| *s == s1_path).unwrap()],
    );
    let killed = std::process::Command::new("kill")
        .args(["-9", &s1_socket.1.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        s1_socket.0.exists(),
        "the dead master's socket is still there"
    );
    assert_eq!(master_pid(&s1_socket.0), None);
    let third = Recorder::default();
    let report = apply(&inv, &ApplyOptions::default(), &third)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(common::is_unchanged(&report, "s1"), "{report}");
    assert_eq!(connect_messages(&third, "s1"), ["connected"]);
    assert_eq!(
        connect_messages(&third, "a1"),
        ["connected (through the SSH connection an earlier run kept)"]
    );
    assert_eq!(lab.logins("s1"), 2);
    assert_eq!(lab.logins("a1"), 1);
    let new_pid = master_pid(&s1_socket.0).expect("a new master on the same socket");
    assert_ne!(new_pid, s1_socket.1);
    for s in sockets(&dir) {
        let _ = std::process::Command::new("ssh")
            .args(["-O", "exit", "-S"])
            .arg(&s)
            .arg("none")
            .output();
    }
}

/// The kept socket that leads to `host`, asked through each master.
fn socket_to(lab: &TestLab, sockets: &[std::path::PathBuf], host: &str) -> std::path::PathBuf {
    sockets
        .iter()
        .find(|s| {
            let through = std::process::Command::new("ssh")
                .args(["-S"])
                .arg(s)
                .args(["-o", "BatchMode=yes", "none", "echo $SSH_CONNECTION"])
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&through.stdout).into_owned();
            said.split_whitespace().nth(2) == Some(lab.host(host).ip.as_str())
        })
        .cloned()
        .unwrap_or_else(|| panic!("no kept socket leads to {host}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_master_that_greets_but_whose_connection_is_gone_gives_way_to_a_new_login() {
    // A host that went down after the earlier run leaves a master that still greets on its
    // socket until it notices; stood in for here, deterministically, by a socket that sends
    // the master's greeting and then hangs up on every client.
    let lab = TestLab::start(&[("s1", Role::Server), ("a1", Role::Agent)]);
    let dir = lab.dir.join("kept");
    let mut inv = lab.inventory(V);
    inv.ssh.control_dir = Some(dir.clone());
    inv.ssh.keep_connections = Some(std::time::Duration::from_secs(60));
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s1_socket = socket_to(&lab, &sockets(&dir), "s1");
    let pid = master_pid(&s1_socket).expect("a master answers for s1");
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    std::fs::remove_file(&s1_socket).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&s1_socket).unwrap();
    std::thread::spawn(move || {
        use std::io::Write as _;
        for mut client in listener.incoming().flatten() {
            // MUX_MSG_HELLO (PROTOCOL.mux): length 8, type 1, version 4; then the hang-up.
            let _ = client.write_all(&[0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 4]);
        }
    });

    let run = Recorder::default();
    let report = apply(&inv, &ApplyOptions::default(), &run)
        .await
        .unwrap_or_else(|e| panic!("the run failed instead of logging in anew: {e}"));
    assert!(common::is_unchanged(&report, "s1"), "{report}");
    assert_eq!(connect_messages(&run, "s1"), ["connected"]);
    assert_eq!(lab.logins("s1"), 2, "s1: one new login");
    assert_eq!(
        connect_messages(&run, "a1"),
        ["connected (through the SSH connection an earlier run kept)"]
    );
    assert_eq!(lab.logins("a1"), 1, "a1's kept master is still used");
    for s in sockets(&dir) {
        let _ = std::process::Command::new("ssh")
            .args(["-O", "exit", "-S"])
            .arg(&s)
            .arg("none")
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_directory_that_is_a_symbolic_link_is_refused_before_any_login() {
    let lab = TestLab::start(&[("s1", Role::Server)]);
    let elsewhere = lab.dir.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let link = lab.dir.join("kept");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let mut inv = lab.inventory(V);
    inv.ssh.control_dir = Some(link.clone());
    inv.ssh.keep_connections = Some(std::time::Duration::from_secs(60));
    let before = lab.tree();
    let err = apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap_err();
    let (kind, msg) = failure(&err, "s1");
    assert_eq!(kind, HostErrorKind::LocalIo);
    assert_eq!(
        msg,
        format!(
            "cannot keep SSH connections in {}: it is a symbolic link, and control sockets are only kept in a real directory; remove it (it is recreated with mode 0700) or name another directory",
            link.display()
        )
    );
    assert_eq!(lab.logins("s1"), 0, "the host was not contacted");
    assert_eq!(lab.tree(), before);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}
