//! Benchmark driver for `scripts/bench-nodes`: a no-op re-converge of three test hosts by
//! `homelab_nodes::apply`, on bare hosts and on hosts whose root `.bashrc` costs 250 ms per
//! shell start, side by side with an ansible-core playbook that performs the same fact
//! checks on the same (bare) hosts; each of ours cold (new SSH masters every run) and warm
//! (through the masters the previous run kept). Needs root (the test hosts are network
//! namespaces).
//!
//! Usage: bench_nodes [--ansible-playbook PATH | --no-ansible] [--runs N] [--out FILE]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use homelab_nodes::testkit::TestLab;
use std::sync::Mutex;

use homelab_nodes::{ApplyOptions, Event, EventKind, EventSink, NoEvents, Role, Timeouts, apply};

/// Where a run's time goes: each phase's start and end, from the start of the run.
#[derive(Default)]
struct PhaseClock {
    start: Mutex<Option<Instant>>,
    spans: Mutex<Vec<(String, Duration, Duration)>>,
}

impl PhaseClock {
    fn begin(&self) {
        *self.start.lock().unwrap() = Some(Instant::now());
        self.spans.lock().unwrap().clear();
    }
}

impl PhaseClock {
    /// The last run's phases, as `title start-end ms`.
    fn phases(&self) -> Vec<String> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .map(|(p, a, b)| {
                format!(
                    "{p} {:.0}-{:.0} ms",
                    a.as_secs_f64() * 1000.0,
                    b.as_secs_f64() * 1000.0
                )
            })
            .collect()
    }
}

impl EventSink for PhaseClock {
    fn event(&self, e: &Event) {
        let Some(start) = *self.start.lock().unwrap() else {
            return;
        };
        let at = start.elapsed();
        let mut spans = self.spans.lock().unwrap();
        match e.kind {
            EventKind::PhaseStarted => spans.push((e.phase.clone(), at, at)),
            EventKind::PhaseFinished => {
                if let Some(s) = spans.iter_mut().rev().find(|s| s.0 == e.phase) {
                    s.2 = at;
                }
            }
            EventKind::Unchanged { .. } if e.phase == "Connect" => spans.push((
                format!(
                    "{} connected and facts read",
                    e.host.clone().unwrap_or_default()
                ),
                at,
                at,
            )),
            _ => {}
        }
    }
}

const VERSION: &str = "v1.31.2+k3s1";
/// What the slow hosts' `.bashrc` costs per shell start.
const SLOW_RC: Duration = Duration::from_millis(250);

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
    let mut no_ansible = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--ansible-playbook" => playbook_bin = args.next().map(PathBuf::from),
            "--no-ansible" => no_ansible = true,
            "--out" => out = args.next().map(PathBuf::from),
            other => panic!(
                "unknown argument {other}; usage: bench_nodes [--ansible-playbook PATH | --no-ansible] [--runs N] [--out FILE]"
            ),
        }
    }
    assert!(
        no_ansible || playbook_bin.is_some(),
        "--ansible-playbook PATH or --no-ansible is required (scripts/bench-nodes sets it up)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let load_before = sh("cut -d ' ' -f 1-3 /proc/loadavg");
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

    // Warm: each run finds the SSH masters the previous one kept (ADR 0107), as a user's
    // second command within a minute does; cold: every run opens its own.
    let mut warm_inv = inv.clone();
    warm_inv.ssh.control_dir = Some(lab.dir.join("kept"));
    warm_inv.ssh.keep_connections = Some(Duration::from_secs(60));

    let clock = PhaseClock::default();
    let run_with = |inv: &homelab_nodes::Inventory| {
        clock.begin();
        let t = Instant::now();
        let report = rt
            .block_on(apply(inv, &ApplyOptions::default(), &clock))
            .unwrap_or_else(|e| panic!("{e}"));
        let took = t.elapsed();
        assert!(
            report.all_unchanged(),
            "the re-converge was not a no-op:\n{report}"
        );
        took
    };
    let run_ours = || run_with(&inv);
    let run_warm = || run_with(&warm_inv);
    run_ours();
    let ours: Vec<Duration> = (0..runs).map(|_| run_ours()).collect();
    run_warm();
    let ours_warm: Vec<Duration> = (0..runs).map(|_| run_warm()).collect();

    // Hosts whose login shell does real work: every remote command pays it once.
    lab.slow_login_shell(SLOW_RC);
    run_warm();
    let slow_warm: Vec<Duration> = (0..runs).map(|_| run_warm()).collect();
    let warm_phases = clock.phases();
    run_ours();
    lab.clear_shell_starts();
    let slow: Vec<Duration> = (0..runs).map(|_| run_ours()).collect();
    let last = slow.last().copied().unwrap_or_default();
    let phases = clock.phases();
    let starts: Vec<String> = lab
        .hosts
        .iter()
        .map(|h| {
            format!(
                "{} {:.1}",
                h.name,
                lab.shell_starts(&h.name) as f64 / runs as f64
            )
        })
        .collect();
    lab.plain_login_shell();

    for socket in std::fs::read_dir(lab.dir.join("kept"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = Command::new("ssh")
            .args(["-O", "exit", "-S"])
            .arg(socket.path())
            .arg("none")
            .output();
    }

    let (om, oa, omin, omax) = stats(&ours);
    let (sm, sa, smin, smax) = stats(&slow);
    let (wm, wa, wmin, wmax) = stats(&ours_warm);
    let (xm, xa, xmin, xmax) = stats(&slow_warm);
    let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    let mut table = format!(
        "| tool | hosts | runs | median | mean | min | max |\n|---|---|---|---|---|---|---|\n\
         | homelab-nodes `apply` (no-op) | bare | {runs} | {om:.0} ms | {oa:.0} ms | {omin:.0} ms | {omax:.0} ms |\n\
         | homelab-nodes `apply` (no-op) | `.bashrc` costing {rc} ms | {runs} | {sm:.0} ms | {sa:.0} ms | {smin:.0} ms | {smax:.0} ms |\n\
         | homelab-nodes `apply` (no-op), masters kept from the previous run | bare | {runs} | {wm:.0} ms | {wa:.0} ms | {wmin:.0} ms | {wmax:.0} ms |\n\
         | homelab-nodes `apply` (no-op), masters kept from the previous run | `.bashrc` costing {rc} ms | {runs} | {xm:.0} ms | {xa:.0} ms | {xmin:.0} ms | {xmax:.0} ms |\n",
        rc = SLOW_RC.as_millis()
    );
    let footer = format!(
        "Shell starts per host and run on the slow-rc hosts: {}.\n\n\
         Phases of the last slow-rc run ({:.0} ms in all): {}.\n\n\
         Phases of the last slow-rc run with kept masters: {}.\n\n\
         Machine: {} cores, {cpu}, kernel {}, load average before the runs {}; {}.\n",
        starts.join(", "),
        last.as_secs_f64() * 1000.0,
        phases.join(", "),
        warm_phases.join(", "),
        sh("nproc"),
        sh("uname -r"),
        load_before,
        sh("ssh -V 2>&1"),
    );
    let Some(playbook_bin) = playbook_bin.filter(|_| !no_ansible) else {
        table.push_str(&format!("\n{footer}"));
        println!("{table}");
        if let Some(path) = out {
            std::fs::write(path, &table).expect("write results");
        }
        return;
    };

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

    let (am, aa, amin, amax) = stats(&ansible);
    table.push_str(&format!(
        "| ansible-playbook (same fact checks) | bare | {runs} | {am:.0} ms | {aa:.0} ms | {amin:.0} ms | {amax:.0} ms |\n\n\
         Speed-up on bare hosts (median): {:.1}x; {}.\n\n{footer}",
        am / om,
        sh(&format!("{} --version | head -n1", playbook_bin.display()))
            .split("core ")
            .nth(1)
            .map(|v| format!("ansible-core {}", v.trim_end_matches(']')))
            .unwrap_or_else(|| "ansible-core (version unknown)".into()),
    ));
    println!("{table}");
    if let Some(path) = out {
        std::fs::write(path, &table).expect("write results");
    }
}
