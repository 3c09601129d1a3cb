//! Benchmark driver for `scripts/bench-nodes`: a no-op re-converge of three test hosts by
//! `homelab_nodes::apply`, side by side with an ansible-core playbook that performs the same
//! fact checks on the same hosts. Needs root (the test hosts are network namespaces).
//!
//! Usage: bench_nodes --ansible-playbook PATH [--runs N] [--out FILE]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use homelab_nodes::testkit::TestLab;
use homelab_nodes::{ApplyOptions, NoEvents, Role, Timeouts, apply};

const VERSION: &str = "v1.31.2+k3s1";

const PLAYBOOK: &str = r#"- name: The fact checks homelab nodes apply makes on a converged lab
  hosts: lab
  gather_facts: true
  gather_subset: [min, hardware]
  tasks:
    - name: Installed k3s version
      ansible.builtin.command: /usr/local/bin/k3s --version
      register: k3s_version
      changed_when: false
      failed_when: false
    - name: k3s service units
      ansible.builtin.stat:
        path: "/etc/systemd/system/{{ item }}.service"
      loop: [k3s, k3s-agent]
      register: units
    - name: Current k3s config
      ansible.builtin.slurp:
        src: /etc/rancher/k3s/config.yaml
      register: k3s_config
    - name: Token file checksum
      ansible.builtin.stat:
        path: /etc/rancher/k3s/cluster-token
        checksum_algorithm: sha256
      register: token
    - name: Listening TCP ports
      ansible.builtin.command: cat /proc/net/tcp /proc/net/tcp6
      register: tcp
      changed_when: false
    - name: Installed packages (nfs-common, unattended-upgrades)
      ansible.builtin.package_facts:
        manager: apt
    - name: Managed apt configuration
      ansible.builtin.stat:
        path: "{{ item }}"
        checksum_algorithm: sha256
      loop: [/etc/apt/apt.conf.d/20auto-upgrades, /etc/apt/apt.conf.d/52homelab-unattended-upgrades]
      register: aptconf
    - name: Tools (curl, apt-get, nvidia-container-runtime)
      ansible.builtin.shell: command -v curl apt-get nvidia-container-runtime || true
      register: tools
      changed_when: false
    - name: Airgap images
      ansible.builtin.find:
        paths: /var/lib/rancher/k3s/agent/images
      register: images
    - name: Cluster nodes (labels, taints, Ready)
      ansible.builtin.command: k3s kubectl get nodes -o json
      register: nodes
      changed_when: false
      run_once: true
      delegate_to: s1
"#;

fn stats(times: &[Duration]) -> (f64, f64, f64, f64) {
    let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let median = if ms.len() % 2 == 1 {
        ms[ms.len() / 2]
    } else {
        (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0
    };
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    (median, mean, ms[0], ms[ms.len() - 1])
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut runs = 10usize;
    let mut playbook_bin: Option<PathBuf> = None;
    let mut out: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--ansible-playbook" => playbook_bin = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from),
            other => panic!(
                "unknown argument {other}; usage: bench_nodes --ansible-playbook PATH [--runs N] [--out FILE]"
            ),
        }
    }
    let playbook_bin =
        playbook_bin.expect("--ansible-playbook PATH is required (scripts/bench-nodes sets it up)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let lab = TestLab::start(&[
        ("s1", Role::Server),
        ("s2", Role::Server),
        ("a1", Role::Agent),
    ]);
    let mut inv = lab.inventory(VERSION);
    inv.timeouts = Timeouts::default();
    let first = rt
        .block_on(apply(&inv, &ApplyOptions::default(), &NoEvents))
        .unwrap_or_else(|e| panic!("initial converge failed: {e}"));
    assert!(!first.all_unchanged());

    let run_ours = || {
        let t = Instant::now();
        let report = rt
            .block_on(apply(&inv, &ApplyOptions::default(), &NoEvents))
            .unwrap_or_else(|e| panic!("{e}"));
        let took = t.elapsed();
        assert!(
            report.all_unchanged(),
            "the re-converge was not a no-op:\n{report}"
        );
        took
    };
    run_ours();
    let ours: Vec<Duration> = (0..runs).map(|_| run_ours()).collect();

    let dir = lab.dir.join("ansible");
    std::fs::create_dir_all(&dir).expect("ansible dir");
    let inventory: String = std::iter::once("[lab]\n".to_string())
        .chain(
            lab.hosts
                .iter()
                .map(|h| format!("{} ansible_host={}\n", h.name, h.ip)),
        )
        .collect();
    std::fs::write(dir.join("inventory.ini"), inventory).expect("inventory");
    std::fs::write(dir.join("playbook.yml"), PLAYBOOK).expect("playbook");
    std::fs::write(
        dir.join("ansible.cfg"),
        format!(
            "[defaults]\ninventory = {d}/inventory.ini\nremote_user = root\nforks = 10\ninterpreter_python = /usr/bin/python3\n\
             host_key_checking = True\nlocal_tmp = {d}/tmp\n\n[ssh_connection]\npipelining = True\n\
             ssh_args = -F {cfg} -o ControlMaster=auto -o ControlPersist=60s\ncontrol_path_dir = {d}/cp\n",
            d = dir.display(),
            cfg = lab.ssh_config().display()
        ),
    )
    .expect("ansible.cfg");
    let run_ansible = || {
        let t = Instant::now();
        let o = Command::new(&playbook_bin)
            .arg(dir.join("playbook.yml"))
            .env("ANSIBLE_CONFIG", dir.join("ansible.cfg"))
            .env("ANSIBLE_HOME", dir.join("home"))
            .env("ANSIBLE_NOCOLOR", "1")
            .output()
            .expect("ansible-playbook runs");
        let took = t.elapsed();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && text.contains("failed=0"),
            "ansible-playbook failed:\n{text}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            !text.contains("changed=1"),
            "the playbook changed something:\n{text}"
        );
        took
    };
    run_ansible();
    let ansible: Vec<Duration> = (0..runs).map(|_| run_ansible()).collect();

    let (om, oa, omin, omax) = stats(&ours);
    let (am, aa, amin, amax) = stats(&ansible);
    let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    let table = format!(
        "| tool | runs | median | mean | min | max |\n|---|---|---|---|---|---|\n\
         | homelab-nodes `apply` (no-op) | {runs} | {om:.0} ms | {oa:.0} ms | {omin:.0} ms | {omax:.0} ms |\n\
         | ansible-playbook (same fact checks) | {runs} | {am:.0} ms | {aa:.0} ms | {amin:.0} ms | {amax:.0} ms |\n\n\
         Speed-up (median): {:.1}x\n\n\
         Machine: {} cores, {cpu}, kernel {}; {}; {}.\n",
        am / om,
        sh("nproc"),
        sh("uname -r"),
        sh("ssh -V 2>&1"),
        sh(&format!("{} --version | head -n1", playbook_bin.display()))
            .split("core ")
            .nth(1)
            .map(|v| format!("ansible-core {}", v.trim_end_matches(']')))
            .unwrap_or_else(|| "ansible-core (version unknown)".into()),
    );
    println!("{table}");
    if let Some(path) = out {
        std::fs::write(path, &table).expect("write results");
    }
}
