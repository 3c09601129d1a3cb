//! `homelab nodes`, `homelab kubeconfig` and `homelab etcd snapshot` through the real binary,
//! against real sshd test hosts (own network and mount namespaces) running the k3s stand-ins:
//! a spec and an encrypted secrets file on disk, SSH settings passed as a user would
//! (`HOMELAB_SSH_CONFIG`), and what the user sees (output, exit codes) and what the hosts got.

#[path = "common/terminal.rs"]
mod terminal;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;

use homelab_nodes::Role;
use homelab_nodes::testkit::TestLab;
use homelab_secrets::{Recipient, SecretsStore};
use secrecy::SecretString;
use serde_json::Value;

const V1: &str = "v1.31.2+k3s1";
const V2: &str = "v1.31.4+k3s1";
const TOKEN: &str = "cli-test-cluster-token-5f1c9e";
const SUDO_PASSWORD: &str = "s3cret-sudo-pw";
const SUDO_PASSWORD_A2: &str = "an0ther-sudo-pw";

/// A lab directory (homelab.yaml, secrets.sops.yaml, an age key, a home directory) for a set
/// of test hosts, or for none (commands that must fail before any host is contacted).
struct CliLab {
    hosts: Option<TestLab>,
    dir: tempfile::TempDir,
}

/// How one node is written in the spec: its `ssh:` mapping and any extra keys.
struct NodeLines {
    ssh: String,
    extra: String,
}

impl CliLab {
    fn start(nodes: &[(&str, Role)]) -> CliLab {
        let lab = CliLab {
            hosts: Some(TestLab::start(nodes)),
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(lab.path("home")).unwrap();
        lab
    }

    fn without_hosts(spec: &str) -> CliLab {
        let lab = CliLab {
            hosts: None,
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(lab.path("home")).unwrap();
        std::fs::write(lab.path("homelab.yaml"), spec).unwrap();
        lab
    }

    fn hosts(&self) -> &TestLab {
        self.hosts.as_ref().expect("a lab with test hosts")
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Writes homelab.yaml for the test hosts, logging in as root unless `node` says otherwise.
    fn write_spec(&self, version: &str, node: impl Fn(&str) -> NodeLines) {
        let lab = self.hosts();
        let (net, _) = lab.gateway.rsplit_once('.').unwrap();
        let mut nodes = String::new();
        for h in &lab.hosts {
            let lines = node(&h.name);
            nodes.push_str(&format!(
                "    - name: {}\n      role: {}\n      address: {}\n      ssh: {}\n{}",
                h.name,
                match h.role {
                    Role::Server => "server",
                    Role::Agent => "agent",
                },
                h.ip,
                lines.ssh,
                lines.extra
            ));
        }
        let spec = format!(
            "name: test-lab\nnetwork:\n  subnet: {net}.0/24\n  gateway: {gw}\n  domain: lab.example.com\n  loadBalancerPool: {net}.100-{net}.120\n\
cluster:\n  k3sVersion: {version}\n  nodes:\n{nodes}\
tls:\n  acmeEmail: you@example.com\n  challenge: {{type: dns01, provider: cloudflare, apiToken: {{secret: cloudflare-api-token}}}}\n",
            gw = lab.gateway
        );
        std::fs::write(self.path("homelab.yaml"), spec).unwrap();
    }

    fn write_root_spec(&self, version: &str) {
        self.write_spec(version, |_| NodeLines {
            ssh: "{user: root}".into(),
            extra: String::new(),
        });
    }

    /// An age key and secrets.sops.yaml holding `secrets`.
    fn write_secrets(&self, secrets: &[(&str, &str)]) {
        let key = self.path("age.key");
        let (_, recipient): (_, Recipient) =
            homelab_secrets::identity::create_identity_file(&key).unwrap();
        let mut store =
            SecretsStore::create(&self.path("secrets.sops.yaml"), &[recipient]).unwrap();
        for (name, value) in secrets {
            store
                .set(name, SecretString::from(value.to_string()))
                .unwrap();
        }
        store.save().unwrap();
    }

    /// The environment every run gets: nothing of this machine's but PATH.
    fn environment(&self, cmd: &mut std::process::Command) {
        cmd.current_dir(self.dir.path())
            .env_clear()
            // Some test labs start from the example lab; refusing its values is tested on
            // its own (spec::cli).
            .env("HOMELAB_ALLOW_EXAMPLE_VALUES", "1")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("SOPS_AGE_KEY_FILE", self.path("age.key"));
        if let Some(lab) = &self.hosts {
            cmd.env("HOMELAB_SSH_CONFIG", lab.ssh_config())
                .env("HOMELAB_K3S_INSTALLER_URL", lab.installer_url());
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("homelab"));
        self.environment(&mut cmd);
        cmd.args(args);
        let started = std::time::Instant::now();
        let out = cmd.output().unwrap();
        eprintln!(
            "$ homelab {}\n[exit {:?} after {:.2}s]\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            out.status.code(),
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs on a pseudo-terminal (util-linux `script`) and types `input`; returns the exit
    /// code and everything the terminal showed, with plain line ends.
    fn run_on_terminal(&self, args: &[&str], input: &str) -> (i32, String) {
        let (code, shown) = terminal::run_on_terminal(args, input, |cmd| self.environment(cmd));
        for secret in [TOKEN, SUDO_PASSWORD, SUDO_PASSWORD_A2] {
            assert!(!shown.contains(secret), "a secret reached the terminal");
        }
        (code, shown)
    }

    /// Runs and expects exit code `code`; returns (stdout, stderr).
    fn expect(&self, code: i32, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "`homelab {}` exit code",
            args.join(" ")
        );
        let text = (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        );
        for secret in [TOKEN, SUDO_PASSWORD, SUDO_PASSWORD_A2] {
            assert!(
                !text.0.contains(secret) && !text.1.contains(secret),
                "a secret reached the output of `homelab {}`",
                args.join(" ")
            );
        }
        text
    }

    fn json(&self, code: i32, args: &[&str]) -> Value {
        let (stdout, stderr) = self.expect(code, args);
        assert!(
            stderr.is_empty(),
            "--output json prints nothing on stderr: {stderr}"
        );
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not one JSON document ({e}): {stdout}"))
    }

    /// Recorded stand-in calls, as `node<TAB>call` lines.
    fn calls(&self) -> Vec<String> {
        self.hosts()
            .calls()
            .into_iter()
            .map(|(n, c)| format!("{n}\t{c}"))
            .collect()
    }
}

fn outcome<'v>(report: &'v Value, host: &str) -> &'v Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host)
        .unwrap_or_else(|| panic!("{host} not in {report:#}"))
}

fn line_of<'t>(text: &'t str, start: &str) -> &'t str {
    text.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting with {start:?} in:\n{text}"))
}

#[test]
fn three_nodes_converge_rerun_unchanged_then_an_agent_is_removed() {
    let mut lab = CliLab::start(&[
        ("s1", Role::Server),
        ("a1", Role::Agent),
        ("a2", Role::Agent),
    ]);
    let hosts = lab.hosts();
    // a1 and a2 log in as ordinary users whose sudo asks for a password, each its own, kept
    // in the secrets file.
    hosts.add_user("a1", "alice", Some(SUDO_PASSWORD), Some("ALL=(ALL) ALL"));
    hosts.add_user("a2", "bob", Some(SUDO_PASSWORD_A2), Some("ALL=(ALL) ALL"));
    lab.write_spec(V1, |name| match name {
        "a1" => NodeLines {
            ssh: "{user: alice, sudoPassword: {secret: node-sudo}}".into(),
            extra: String::new(),
        },
        "a2" => NodeLines {
            ssh: "{user: bob, sudoPassword: {secret: a2-sudo}}".into(),
            extra: "      labels: {tier: batch}\n".into(),
        },
        _ => NodeLines {
            ssh: "{user: root}".into(),
            extra: String::new(),
        },
    });
    lab.write_secrets(&[
        ("k3s-token", TOKEN),
        ("node-sudo", SUDO_PASSWORD),
        ("a2-sudo", SUDO_PASSWORD_A2),
    ]);

    // Dry run on fresh hosts: says what would happen per host, changes nothing.
    let before = hosts.tree();
    let (stdout, stderr) = lab.expect(0, &["nodes", "apply", "--dry-run", "--parallel", "1"]);
    for h in ["s1", "a1", "a2"] {
        assert_eq!(
            line_of(&stdout, &format!("{h}: ")),
            format!("{h}: would change")
        );
    }
    assert!(stdout.contains("Dry run: nothing was changed; 3 of 3 host(s) would change"));
    assert!(
        stderr.contains("[Gather facts] a1: unchanged:"),
        "plain progress lines: {stderr}"
    );
    // One host at a time: each host's facts come in spec order.
    let facts: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("[Gather facts] ") && l.contains(": unchanged: "))
        .collect();
    assert_eq!(facts.len(), 3, "{stderr}");
    for (line, host) in facts.iter().zip(["s1", "a1", "a2"]) {
        assert!(
            line.starts_with(&format!("[Gather facts] {host}: ")),
            "{facts:#?}"
        );
    }
    assert_eq!(hosts.tree(), before, "the dry run wrote on a host");
    assert!(
        !lab.calls().iter().any(|c| c.contains("install.sh")),
        "{:?}",
        lab.calls()
    );

    // Converge.
    let (stdout, stderr) = lab.expect(0, &["nodes", "apply"]);
    for h in ["s1", "a1", "a2"] {
        assert_eq!(line_of(&stdout, &format!("{h}: ")), format!("{h}: changed"));
    }
    assert!(stdout.contains("Converged lab `test-lab`: 3 host(s) changed, 0 unchanged."));
    assert!(stderr.contains("Converging lab `test-lab`: 3 node(s), k3s v1.31.2+k3s1"));
    assert!(stderr.contains("[Install first server] s1: changed: installed k3s v1.31.2+k3s1"));
    for h in ["s1", "a1", "a2"] {
        assert_eq!(
            hosts.file(h, "/etc/rancher/k3s/cluster-token").as_deref(),
            Some(TOKEN),
            "{h} got the token from secrets.sops.yaml"
        );
        assert_eq!(hosts.mode(h, "/etc/rancher/k3s/cluster-token"), Some(0o600));
        let config = hosts.file(h, "/etc/rancher/k3s/config.yaml").unwrap();
        assert!(!config.contains(TOKEN));
        assert!(config.contains(&format!("node-name: \"{h}\"")), "{config}");
        // Every token path the file names, in its comment and its `token-file`, is the file
        // the token really is in.
        let named: Vec<&str> = config
            .split(|c: char| c.is_whitespace() || c == '"')
            .filter(|w| w.starts_with("/etc/rancher/k3s/") && w.contains("token"))
            .collect();
        assert!(named.len() >= 2, "{config}");
        for path in named {
            assert_eq!(
                hosts.file(h, path).as_deref(),
                Some(TOKEN),
                "{h}: config.yaml names {path} as the token file:\n{config}"
            );
        }
    }
    // The plan's server config arrived: certificate names, snapshot settings, disabled addons.
    let s1_config = hosts.file("s1", "/etc/rancher/k3s/config.yaml").unwrap();
    for needle in [
        "tls-san:",
        "etcd-snapshot-retention:",
        "- servicelb",
        "cluster-init: true",
    ] {
        assert!(s1_config.contains(needle), "{needle} missing:\n{s1_config}");
    }
    let a1_config = hosts.file("a1", "/etc/rancher/k3s/config.yaml").unwrap();
    assert!(
        a1_config.contains(&format!("server: \"https://{}:6443\"", hosts.host("s1").ip)),
        "{a1_config}"
    );
    let state = hosts.state();
    assert_eq!(state["nodes"]["a2"]["labels"]["tier"], "batch", "{state:#}");

    // A converged lab: every host unchanged, nothing installed again.
    hosts.clear_calls();
    let converged = hosts.tree();
    let (stdout, _) = lab.expect(0, &["nodes", "apply"]);
    for h in ["s1", "a1", "a2"] {
        assert_eq!(
            line_of(&stdout, &format!("{h}: ")),
            format!("{h}: unchanged")
        );
    }
    assert!(stdout.contains("Lab `test-lab` is converged: all 3 host(s) unchanged."));
    let report = lab.json(0, &["--output", "json", "nodes", "apply"]);
    assert_eq!(report["ok"], true);
    assert_eq!(report["operation"], "nodes apply");
    for h in ["s1", "a1", "a2"] {
        assert_eq!(outcome(&report, h)["outcome"], "unchanged", "{report:#}");
    }
    let (stdout, stderr) = lab.expect(0, &["--quiet", "nodes", "apply"]);
    assert_eq!(
        (stdout.as_str(), stderr.as_str()),
        ("", ""),
        "--quiet prints nothing"
    );
    assert!(
        !lab.calls().iter().any(|c| c.contains("install.sh")),
        "{:?}",
        lab.calls()
    );
    assert_eq!(hosts.tree(), converged, "a no-op re-run wrote on a host");

    // Remove an agent: drained, deleted from the cluster, k3s uninstalled.
    hosts.add_pod("a2", "apps", "web-1", false, false);
    let (stdout, _) = lab.expect(0, &["nodes", "remove", "a2", "--dry-run"]);
    assert!(stdout.contains("Dry run: nothing was changed."));
    assert!(lab.hosts().state()["nodes"]["a2"].is_object());
    let (stdout, _) = lab.expect(0, &["nodes", "remove", "a2", "--drain-timeout", "30s"]);
    assert_eq!(line_of(&stdout, "a2: "), "a2: changed");
    assert!(stdout.contains("Next: delete node a2 from homelab.yaml"));
    let state = hosts.state();
    assert!(
        state["nodes"]["a2"].is_null(),
        "a2 still in the cluster: {state:#}"
    );
    assert!(state["nodes"]["a1"].is_object());
    assert_eq!(
        hosts.file("a2", "/usr/local/bin/k3s"),
        None,
        "k3s is uninstalled"
    );
    let calls = lab.calls();
    let drain = calls.iter().position(|c| c.contains("kubectl drain a2"));
    let delete = calls
        .iter()
        .position(|c| c.contains("kubectl delete node a2"));
    assert!(
        drain.is_some() && delete.is_some() && drain < delete,
        "{calls:#?}"
    );

    let history = lab.json(0, &["--output", "json", "nodes", "history"]);
    let entries = history["history"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "remove" && e["node"] == "a2"),
        "{history:#}"
    );

    // The first server is down: the run stops, and the agents it never looked at are
    // "skipped" (a2, removed above, is not "unchanged" either), in text and in JSON.
    lab.hosts.as_mut().unwrap().stop_sshd("s1");
    let (stdout, _) = lab.expect(1, &["nodes", "apply"]);
    assert!(
        line_of(&stdout, "s1: ").starts_with("s1: FAILED in Connect: "),
        "{stdout}"
    );
    for h in ["a1", "a2"] {
        let line = line_of(&stdout, &format!("{h}: "));
        assert!(
            line.starts_with(&format!(
                "{h}: skipped: not worked on from phase \"Gather facts\" on, because the run stopped: s1 failed"
            )),
            "{stdout}"
        );
    }
    assert!(!stdout.contains("unchanged"), "{stdout}");
    let report = lab.json(1, &["--output", "json", "nodes", "apply"]);
    assert_eq!(outcome(&report, "s1")["outcome"], "failed");
    for h in ["a1", "a2"] {
        let o = outcome(&report, h);
        assert_eq!(o["outcome"], "skipped", "{report:#}");
        assert!(
            o["reason"]
                .as_str()
                .unwrap()
                .contains("s1 failed in phase \"Connect\"")
        );
        assert_eq!(o["changes"], serde_json::json!([]));
    }
    assert!(report["stopped"].as_str().unwrap().contains("s1 failed"));
}

#[test]
fn unreachable_host_and_changed_host_key_are_reported_per_host_while_the_rest_converge() {
    let mut lab = CliLab::start(&[
        ("s1", Role::Server),
        ("a1", Role::Agent),
        ("a2", Role::Agent),
    ]);
    lab.write_root_spec(V1);
    lab.write_secrets(&[("k3s-token", TOKEN)]);
    let hosts = lab.hosts.as_mut().unwrap();
    hosts.stop_sshd("a1");
    hosts.change_known_host_key("a2");
    let a2_ip = hosts.host("a2").ip.clone();
    let fingerprint = hosts.fingerprint("a2");
    let known_hosts = hosts.known_hosts();

    let (stdout, stderr) = lab.expect(1, &["nodes", "apply"]);
    assert_eq!(line_of(&stdout, "s1: "), "s1: changed");
    let a1 = line_of(&stdout, "a1: ");
    assert!(a1.starts_with("a1: FAILED in Connect: "), "{a1}");
    assert!(a1.contains("refused") || a1.contains("unreachable"), "{a1}");
    let a2 = line_of(&stdout, "a2: ");
    assert!(a2.starts_with("a2: FAILED in Connect: host key of"), "{a2}");
    assert!(a2.contains("has CHANGED"), "{a2}");
    assert!(
        a2.contains(&fingerprint),
        "the presented key is shown: {a2}"
    );
    assert!(
        a2.contains(&format!(
            "ssh-keygen -R {a2_ip} -f {}",
            known_hosts.display()
        )),
        "the fix is given: {a2}"
    );
    assert!(
        stderr.contains(
            "error: nodes apply did not complete: 2 of 3 host(s) failed (a1, a2), see above"
        ),
        "{stderr}"
    );
    assert!(lab.hosts().state()["nodes"]["s1"].is_object());
    assert_eq!(
        lab.hosts().file("a2", "/usr/local/bin/k3s"),
        None,
        "a2 untouched"
    );

    // The same as data: one document, every host with its outcome and error kind.
    let report = lab.json(1, &["--output", "json", "nodes", "apply"]);
    assert_eq!(report["ok"], false);
    assert_eq!(report["exitCode"], 1);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("did not complete")
    );
    assert_eq!(outcome(&report, "s1")["outcome"], "unchanged");
    let a1 = outcome(&report, "a1");
    assert_eq!(a1["outcome"], "failed");
    assert_eq!(a1["phase"], "Connect");
    assert_eq!(a1["error"]["kind"], "unreachable");
    let a2 = outcome(&report, "a2");
    assert_eq!(a2["error"]["kind"], "hostKeyChanged");
    assert!(
        a2["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&fingerprint)
    );

    // With --quiet only the error remains, naming the failed hosts.
    let (stdout, stderr) = lab.expect(1, &["--quiet", "nodes", "apply"]);
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with("error: nodes apply did not complete")
            && stderr.contains("a1")
            && stderr.contains("a2"),
        "{stderr}"
    );
}

#[test]
fn airgap_install_upgrade_history_kubeconfig_and_snapshots() {
    let lab = CliLab::start(&[("s1", Role::Server), ("a1", Role::Agent)]);
    let hosts = lab.hosts();
    lab.write_root_spec(V1);
    lab.write_secrets(&[("k3s-token", TOKEN)]);
    let airgap = hosts.airgap_dir(V1);
    let (stdout, stderr) = lab.expect(0, &["nodes", "apply", "--airgap", airgap.to_str().unwrap()]);
    assert!(
        stderr.contains(&format!("airgap from {}", airgap.display())),
        "{stderr}"
    );
    assert!(stdout.contains("Converged lab `test-lab`"));
    let installs: Vec<String> = lab
        .calls()
        .into_iter()
        .filter(|c| c.contains("install.sh"))
        .collect();
    assert_eq!(installs.len(), 2, "{installs:#?}");
    assert!(
        installs
            .iter()
            .all(|c| c.contains("INSTALL_K3S_SKIP_DOWNLOAD=true")),
        "{installs:#?}"
    );

    // Kubeconfig: merged next to an existing context, which stays as it was.
    let kube = lab.path("home/.kube");
    std::fs::create_dir_all(&kube).unwrap();
    let existing = "apiVersion: v1\nkind: Config\nclusters:\n- name: work\n  cluster:\n    server: https://work.example:443\ncontexts:\n- name: work\n  context:\n    cluster: work\n    user: work\n    namespace: team\ncurrent-context: work\nusers:\n- name: work\n  user:\n    token: work-token\n";
    std::fs::write(kube.join("config"), existing).unwrap();
    let (stdout, _) = lab.expect(0, &["kubeconfig", "--merge"]);
    let s1_ip = &hosts.host("s1").ip;
    assert!(
        stdout.contains(&format!(
            "Wrote the admin kubeconfig of lab `test-lab` (server https://{s1_ip}:6443) to {}",
            kube.join("test-lab.yaml").display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("Added context `test-lab`"), "{stdout}");
    assert!(stdout.contains("Current context: work."), "{stdout}");
    for f in ["test-lab.yaml", "config"] {
        let mode = std::fs::metadata(kube.join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let own = std::fs::read_to_string(kube.join("test-lab.yaml")).unwrap();
    assert!(
        own.contains(&format!("server: https://{s1_ip}:6443")),
        "{own}"
    );
    assert!(
        !stdout.contains("c3RhbmRpbi1rZXk="),
        "the client key is not printed"
    );
    let merged = std::fs::read_to_string(kube.join("config")).unwrap();
    for needle in [
        "server: https://work.example:443",
        "namespace: team",
        "token: work-token",
        "current-context: work",
        "name: test-lab",
        &format!("server: https://{s1_ip}:6443"),
    ] {
        assert!(merged.contains(needle), "{needle} missing:\n{merged}");
    }
    let (_, stderr) = lab.expect(2, &["kubeconfig", "--server", "tailscale"]);
    assert!(
        stderr.contains("network.remoteAccess.tailscale"),
        "{stderr}"
    );
    let elsewhere = lab.path("elsewhere.yaml");
    let (_, stderr) = lab.expect(
        0,
        &[
            "kubeconfig",
            "--server",
            "10.99.0.1",
            "--output-file",
            elsewhere.to_str().unwrap(),
        ],
    );
    assert!(
        stderr.contains("10.99.0.1 is not among the names the API server certificate covers"),
        "{stderr}"
    );
    assert!(
        std::fs::read_to_string(&elsewhere)
            .unwrap()
            .contains("server: https://10.99.0.1:6443")
    );
    assert_eq!(
        std::fs::read_to_string(kube.join("config")).unwrap(),
        merged,
        "without --merge ~/.kube/config is left alone"
    );

    // Snapshots: save with a name, list, prune to a count.
    let (stdout, _) = lab.expect(0, &["etcd", "snapshot", "save", "--name", "before-test"]);
    assert!(
        stdout.starts_with("Saved etcd snapshot before-test-s1-"),
        "{stdout}"
    );
    let saved = stdout
        .trim()
        .strip_prefix("Saved etcd snapshot ")
        .and_then(|s| s.strip_suffix(" on s1."))
        .unwrap()
        .to_string();
    lab.expect(0, &["etcd", "snapshot", "save"]);
    lab.expect(0, &["etcd", "snapshot", "save"]);
    let (stdout, _) = lab.expect(0, &["etcd", "snapshot", "list"]);
    assert!(stdout.starts_with("NAME "), "{stdout}");
    assert!(stdout.contains(&saved), "{stdout}");
    let listed = lab.json(0, &["--output", "json", "etcd", "snapshot", "list"]);
    let names: Vec<&str> = listed["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{listed:#}");
    assert!(names.contains(&saved.as_str()));
    assert!(listed["snapshots"][0]["sizeBytes"].as_u64().is_some());
    let pruned = lab.json(
        0,
        &[
            "--output", "json", "etcd", "snapshot", "prune", "--keep", "1",
        ],
    );
    assert_eq!(pruned["removed"].as_array().unwrap().len(), 1, "{pruned:#}");
    assert_eq!(pruned["prefix"], "on-demand");
    let listed = lab.json(0, &["--output", "json", "etcd", "snapshot", "list"]);
    assert_eq!(
        listed["snapshots"].as_array().unwrap().len(),
        2,
        "the named one is kept"
    );

    // Destructive commands without a terminal need --yes, and change nothing without it.
    hosts.clear_calls();
    let (_, stderr) = lab.expect(1, &["etcd", "snapshot", "restore", &saved]);
    assert!(
        stderr.contains(&format!(
            "refusing to restore snapshot {saved} without a confirmation"
        )) && stderr.contains("--yes"),
        "{stderr}"
    );
    let (_, stderr) = lab.expect(1, &["nodes", "reset", "a1"]);
    assert!(
        stderr.contains("refusing to reset a1 without a confirmation"),
        "{stderr}"
    );
    assert!(
        !lab.calls()
            .iter()
            .any(|c| c.contains("cluster-reset") || c.contains("uninstall")),
        "{:?}",
        lab.calls()
    );
    assert!(hosts.file("a1", "/usr/local/bin/k3s").is_some());

    // On a terminal: the question is asked, and anything but "yes" cancels.
    let (code, shown) = lab.run_on_terminal(&["nodes", "reset", "a1"], "no\n");
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("Remove k3s and all its data")
            && shown.contains("Type yes to go ahead: ")
            && shown.contains("error: reset of a1 cancelled: nothing was changed"),
        "{shown}"
    );
    assert!(hosts.file("a1", "/usr/local/bin/k3s").is_some());
    // Progress on a terminal comes grouped: a phase title, then each host's lines.
    let (code, shown) = lab.run_on_terminal(&["nodes", "apply"], "");
    assert_eq!(code, 0, "{shown}");
    let facts = shown
        .find("\nGather facts\n")
        .unwrap_or_else(|| panic!("no phase title:\n{shown}"));
    let block: Vec<&str> = shown[facts + 1..].lines().skip(1).take(2).collect();
    assert!(
        block
            .iter()
            .all(|l| l.starts_with("  s1  unchanged: ") || l.starts_with("  a1  unchanged: ")),
        "{block:#?}"
    );
    assert!(
        !shown.contains("[Gather facts]"),
        "no plain lines on a terminal"
    );

    // Upgrade to the version the spec now pins: snapshot, server, then agent.
    lab.write_root_spec(V2);
    let airgap2 = hosts.airgap_dir(V2);
    let (stdout, _) = lab.expect(
        0,
        &[
            "nodes",
            "upgrade",
            "--dry-run",
            "--airgap",
            airgap2.to_str().unwrap(),
        ],
    );
    assert!(stdout.contains("Dry run: nothing was changed."), "{stdout}");
    assert!(!lab.calls().iter().any(|c| c.contains("install.sh")));
    let (stdout, _) = lab.expect(
        0,
        &["nodes", "upgrade", "--airgap", airgap2.to_str().unwrap()],
    );
    assert!(stdout.contains("Upgraded to k3s v1.31.4+k3s1."), "{stdout}");
    let order: Vec<String> = lab
        .calls()
        .into_iter()
        .filter(|c| c.contains("etcd-snapshot save") || c.contains("install.sh"))
        .map(|c| {
            c.split('\t').next().unwrap().to_string()
                + if c.contains("install.sh") {
                    " install"
                } else {
                    " snapshot"
                }
        })
        .collect();
    assert_eq!(order, vec!["s1 snapshot", "s1 install", "a1 install"]);
    let (stdout, _) = lab.expect(0, &["nodes", "history"]);
    let upgrade_line = stdout
        .lines()
        .find(|l| l.contains(" upgrade ") && l.contains(" a1 "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        upgrade_line.contains("v1.31.2+k3s1") && upgrade_line.contains("v1.31.4+k3s1"),
        "{upgrade_line}"
    );
    let (stdout, _) = lab.expect(
        0,
        &["nodes", "upgrade", "--airgap", airgap2.to_str().unwrap()],
    );
    assert!(
        stdout.contains("Nothing to upgrade: every node runs k3s v1.31.4+k3s1."),
        "{stdout}"
    );

    // Merging again replaces the lab's own entries; --use-context makes them current.
    let (stdout, _) = lab.expect(0, &["kubeconfig", "--merge", "--use-context"]);
    assert!(stdout.contains("Replaced context `test-lab`"), "{stdout}");
    assert!(stdout.contains("Current context: test-lab."), "{stdout}");
    let merged = std::fs::read_to_string(kube.join("config")).unwrap();
    assert_eq!(
        merged.matches("name: test-lab").count(),
        3,
        "cluster, context and user once each:\n{merged}"
    );
    assert!(merged.contains("token: work-token") && merged.contains("namespace: team"));

    // With --yes the destructive commands go ahead.
    hosts.clear_calls();
    let (stdout, _) = lab.expect(0, &["etcd", "snapshot", "restore", &saved, "--yes"]);
    assert!(
        stdout.contains(&format!("Restored the cluster to snapshot {saved}.")),
        "{stdout}"
    );
    assert!(
        lab.calls()
            .iter()
            .any(|c| c.starts_with("s1\t") && c.contains("cluster-reset")),
        "{:?}",
        lab.calls()
    );
    let (stdout, _) = lab.expect(0, &["nodes", "reset", "a1", "--yes"]);
    assert_eq!(line_of(&stdout, "a1: "), "a1: changed");
    assert_eq!(
        hosts.file("a1", "/usr/local/bin/k3s"),
        None,
        "k3s is gone from a1"
    );
    assert!(
        hosts.file("s1", "/usr/local/bin/k3s").is_some(),
        "s1 untouched"
    );
}

/// A valid spec whose hosts are never contacted (the commands must stop before).
fn offline_spec(extra_node_ssh: &str) -> String {
    format!(
        "name: offline-lab\nnetwork:\n  subnet: 10.77.0.0/24\n  gateway: 10.77.0.1\n  domain: lab.example.com\n  loadBalancerPool: 10.77.0.100-10.77.0.120\n\
cluster:\n  k3sVersion: {V1}\n  nodes:\n    - name: s1\n      role: server\n      address: 10.77.0.10\n      ssh: {{user: root}}\n    - name: a1\n      role: agent\n      address: 10.77.0.11\n      ssh: {extra_node_ssh}\n\
tls:\n  acmeEmail: you@example.com\n  challenge: {{type: dns01, provider: cloudflare, apiToken: {{secret: cloudflare-api-token}}}}\n"
    )
}

#[test]
fn missing_secrets_bad_arguments_and_refusals_say_what_to_do() {
    let lab = CliLab::without_hosts(&offline_spec("{user: root}"));

    // No secrets file: the token cannot be read, and the user is told how to create it.
    let (_, stderr) = lab.expect(2, &["nodes", "apply"]);
    assert!(
        stderr.contains("secrets.sops.yaml does not exist")
            && stderr.contains("homelab secrets init"),
        "{stderr}"
    );
    // A secrets file without the token.
    lab.write_secrets(&[("cloudflare-api-token", "cf-value")]);
    let (_, stderr) = lab.expect(2, &["nodes", "apply", "--dry-run"]);
    assert!(
        stderr.contains("has no `k3s-token`") && stderr.contains("homelab secrets init"),
        "{stderr}"
    );

    // Without the age key the file cannot be opened; the message says what was being read.
    std::fs::rename(lab.path("age.key"), lab.path("age.key.away")).unwrap();
    let (_, stderr) = lab.expect(1, &["nodes", "apply"]);
    assert!(
        stderr.contains(
            "reading the cluster join token (`k3s-token`) from secrets.sops.yaml needs your age key"
        ) && stderr.contains("SOPS_AGE_KEY_FILE"),
        "{stderr}"
    );
    std::fs::rename(lab.path("age.key.away"), lab.path("age.key")).unwrap();

    // Removing the only server would destroy the cluster: refused before anything is touched.
    let (_, stderr) = lab.expect(1, &["nodes", "remove", "s1"]);
    assert!(
        stderr.contains("refusing to remove s1: s1 is the only server"),
        "{stderr}"
    );

    // Names and arguments the user got wrong are usage errors, before any host is contacted.
    let (_, stderr) = lab.expect(2, &["nodes", "remove", "nosuch"]);
    assert!(stderr.contains("no host named \"nosuch\""), "{stderr}");
    assert!(stderr.contains("s1, a1"), "{stderr}");
    let (_, stderr) = lab.expect(2, &["nodes", "remove", "a1", "--drain-timeout", "5"]);
    assert!(stderr.contains("has no unit"), "{stderr}");
    let (_, stderr) = lab.expect(2, &["nodes", "apply", "--parallel", "0"]);
    assert!(stderr.contains("--parallel"), "{stderr}");
    lab.expect(2, &["kubeconfig", "--use-context"]);
    let (_, stderr) = lab.expect(2, &["etcd", "snapshot", "prune", "--keep", "0"]);
    assert!(stderr.contains("--keep"), "{stderr}");

    // Reset asks before it connects; without a terminal it refuses and says to pass --yes.
    let (_, stderr) = lab.expect(1, &["nodes", "reset", "a1"]);
    assert!(
        stderr.contains(
            "refusing to reset a1 without a confirmation: there is no terminal to ask on"
        ) && stderr.contains("Remove k3s and all its data")
            && stderr.contains("--yes"),
        "{stderr}"
    );
    let err = lab.json(1, &["--output", "json", "nodes", "reset", "a1"]);
    assert_eq!(err["ok"], false);
    assert!(err["error"].as_str().unwrap().contains("--yes"));

    // An invalid spec is exit 2 for every node command.
    std::fs::write(lab.path("homelab.yaml"), "name: x\ncluster: {}\n").unwrap();
    for args in [
        &["nodes", "apply"][..],
        &["kubeconfig"],
        &["etcd", "snapshot", "list"],
    ] {
        let (_, stderr) = lab.expect(2, args);
        assert!(stderr.contains("is not valid"), "{stderr}");
    }

    // A node's sudo password that is not in the secrets file.
    std::fs::write(
        lab.path("homelab.yaml"),
        offline_spec("{user: bob, sudoPassword: {secret: bob-sudo}}"),
    )
    .unwrap();
    let (_, stderr) = lab.expect(2, &["etcd", "snapshot", "list"]);
    assert!(
        stderr.contains("has no `bob-sudo` (the sudo password of node a1)")
            && stderr.contains("homelab secrets set bob-sudo"),
        "{stderr}"
    );
}

#[test]
fn help_names_the_ssh_config_variable() {
    let lab = CliLab::without_hosts("name: x\n");
    let (stdout, _) = lab.expect(0, &["nodes", "apply", "--help"]);
    assert!(
        stdout.contains("--ssh-config") && stdout.contains("HOMELAB_SSH_CONFIG"),
        "{stdout}"
    );
    assert!(stdout.contains("HOMELAB_K3S_INSTALLER_URL"), "{stdout}");
    let (stdout, _) = lab.expect(0, &["kubeconfig", "--help"]);
    assert!(
        stdout.contains("~/.kube/<lab>.yaml") && stdout.contains("$KUBECONFIG"),
        "{stdout}"
    );
}
