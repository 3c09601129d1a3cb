//! `homelab vms plan|apply|destroy` and the VMs in `homelab plan`, through the real binary:
//! fakepve as the Proxmox host (its own process), the node test hosts' sshd as the booted
//! guests, a spec and an encrypted secrets file on disk; what the user sees (text, JSON,
//! exit codes), that the token never shows, and what the host ends up with.

#[path = "../../homelab-proxmox/tests/support/mod.rs"]
mod support;
#[path = "common/terminal.rs"]
mod terminal;

use std::path::PathBuf;
use std::process::Output;

use homelab_nodes::Role;
use homelab_nodes::testkit::TestLab;
use homelab_secrets::{Recipient, SecretsStore};
use secrecy::SecretString;
use serde_json::{Value, json};
use support::FakePve;

const TOKEN_ID: &str = "homelab@pve!lab";
const TOKEN: &str = "0b7e-cli-token-7d2a";
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHomelabTestKeyOnly you@host";

struct VmLab {
    dir: tempfile::TempDir,
}

impl VmLab {
    fn new() -> VmLab {
        let lab = VmLab {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(lab.path("home")).unwrap();
        lab
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// homelab.yaml with three nodes at `ips` in `net`.0/24 and, unless `proxmox` is empty,
    /// that `proxmox:` section and a `vm:` per node.
    fn write_spec(&self, net: &str, ips: [&str; 3], proxmox: &str, vm: &str) {
        let names = ["k3s-master", "k3s-worker-1", "k3s-worker-2"];
        let mut nodes = String::new();
        for (i, name) in names.iter().enumerate() {
            let role = if i == 0 { "server" } else { "agent" };
            nodes.push_str(&format!(
                "    - name: {name}\n      role: {role}\n      address: {}\n",
                ips[i]
            ));
            if !proxmox.is_empty() {
                nodes.push_str(&format!("      vm: {vm}\n"));
            }
        }
        let spec = format!(
            "name: lab\nnetwork:\n  subnet: {net}.0/24\n  gateway: {net}.1\n  domain: lab.example.com\n  loadBalancerPool: {net}.200-{net}.210\n\
cluster:\n  k3sVersion: v1.34.2+k3s1\n  nodes:\n{nodes}\
tls:\n  acmeEmail: you@example.com\n  challenge: {{type: dns01, provider: cloudflare, apiToken: {{secret: cloudflare-api-token}}}}\n{proxmox}"
        );
        std::fs::write(self.path("homelab.yaml"), spec).unwrap();
    }

    fn write_secrets(&self, secrets: &[(&str, &str)]) {
        let _ = std::fs::remove_file(self.path("age.key"));
        let _ = std::fs::remove_file(self.path("secrets.sops.yaml"));
        let (_, recipient): (_, Recipient) =
            homelab_secrets::identity::create_identity_file(&self.path("age.key")).unwrap();
        let mut store =
            SecretsStore::create(&self.path("secrets.sops.yaml"), &[recipient]).unwrap();
        for (name, value) in secrets {
            store
                .set(name, SecretString::from(value.to_string()))
                .unwrap();
        }
        store.save().unwrap();
    }

    fn environment(&self, cmd: &mut std::process::Command) {
        cmd.current_dir(self.dir.path())
            .env_clear()
            // Some test labs start from the example lab; refusing its values is tested on
            // its own (spec::cli).
            .env("HOMELAB_ALLOW_EXAMPLE_VALUES", "1")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("SOPS_AGE_KEY_FILE", self.path("age.key"));
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("homelab"));
        self.environment(&mut cmd);
        cmd.args(args);
        let out = cmd.output().unwrap();
        eprintln!(
            "$ homelab {}\n[exit {:?}]\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn expect(&self, code: i32, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "`homelab {}`",
            args.join(" ")
        );
        let text = (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        );
        assert!(
            !text.0.contains(TOKEN) && !text.1.contains(TOKEN),
            "the token reached the output"
        );
        text
    }

    fn json(&self, code: i32, args: &[&str]) -> Value {
        let (stdout, stderr) = self.expect(code, args);
        assert!(
            stderr.is_empty(),
            "--output json prints nothing on stderr: {stderr}"
        );
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
    }
}

fn proxmox_section(endpoint: &str) -> String {
    format!(
        "proxmox:\n  endpoint: {endpoint}\n  node: pve1\n  verifyTls: false\n  tokenId: {TOKEN_ID}\n  tokenSecret: {{secret: proxmox-token}}\n  sshKeys: [\"{KEY}\"]\n  template: 9000\n"
    )
}

fn fakepve(guests: Vec<Value>) -> FakePve {
    let mut all = vec![
        json!({"vmid": 9000, "name": "tmpl", "template": true, "config": {
        "scsi0": "local-lvm:base-9000-disk-0,size=4G",
        "ide2": "local-lvm:vm-9000-cloudinit,media=cdrom",
        "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0"}}),
    ];
    all.extend(guests);
    FakePve::with_tokens(
        json!({"guests": all, "guests_boot": true}),
        &[(TOKEN_ID, TOKEN)],
    )
}

#[test]
fn vms_plan_apply_rerun_and_destroy() {
    let hosts = TestLab::start(&[
        ("k3s-master", Role::Server),
        ("k3s-worker-1", Role::Agent),
        ("k3s-worker-2", Role::Agent),
    ]);
    let pve = fakepve(vec![]);
    let lab = VmLab::new();
    let net = hosts.gateway.rsplit_once('.').unwrap().0.to_string();
    let ips = [0, 1, 2].map(|i| hosts.hosts[i].ip.as_str());
    lab.write_spec(
        &net,
        ips,
        &proxmox_section(&pve.endpoint),
        "{cores: 2, memory: 4Gi, disk: 32Gi}",
    );
    lab.write_secrets(&[("proxmox-token", TOKEN), ("cloudflare-api-token", "cf-x")]);

    let (plan, _) = lab.expect(0, &["plan"]);
    assert!(plan.contains("VMs on Proxmox VE"), "{plan}");
    assert!(
        plan.contains(&format!(
            "k3s-master: 2 cores, 4096 MiB, 32 GiB disk, on pve1, next free VMID, address {}",
            ips[0]
        )),
        "{plan}"
    );

    let (text, _) = lab.expect(0, &["vms", "plan"]);
    assert!(
        text.contains("k3s-master (new VMID, on pve1): clone from the template; set cores=2, memory=4096, agent=1, ciupgrade=0, sshkeys=1 key"),
        "{text}"
    );
    assert!(text.contains("grow scsi0 4 -> 32 GiB; start"), "{text}");
    let json = lab.json(0, &["--output", "json", "vms", "plan"]);
    assert_eq!(json["ok"], true);
    assert_eq!(
        json["template"],
        json!({"kind": "existing", "vmid": 9000, "node": "pve1", "diskGib": 4})
    );
    let actions: Vec<&str> = json["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "create", "create"]);

    let (report, progress) = lab.expect(0, &["vms", "apply", "--ready-timeout", "30s"]);
    assert!(
        progress.contains("k3s-master: clone template 9000"),
        "{progress}"
    );
    assert!(
        report.contains(&format!(
            "k3s-master (100): cloned from 9000, set cores, memory, agent, ciupgrade, sshkeys, ipconfig0, nameserver, tags, grow scsi0 to 32 GiB, started; agent reports {}, SSH answers",
            ips[0]
        )),
        "{report}"
    );

    let again = lab.json(0, &["--output", "json", "vms", "apply"]);
    for vm in again["report"]["vms"].as_array().unwrap() {
        assert_eq!(vm["done"], json!([]), "{vm}");
        assert_eq!(vm["ready"], true);
    }
    let (text, _) = lab.expect(0, &["vms", "plan"]);
    assert!(text.contains("Nothing to change."), "{text}");

    // Destroy: refused without a terminal, cancelled by a "no", done with --yes.
    let (_, err) = lab.expect(1, &["vms", "destroy"]);
    assert!(
        err.contains("refusing to destroy VMs without a confirmation") && err.contains("--yes"),
        "{err}"
    );
    let (code, shown) =
        terminal::run_on_terminal(&["vms", "destroy"], "no\n", |c| lab.environment(c));
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("Destroy 3 VMs of lab `lab`")
            && shown.contains("k3s-master (100)")
            && shown.contains("Nothing was destroyed."),
        "{shown}"
    );
    let gone = lab.json(0, &["--output", "json", "vms", "destroy", "--yes"]);
    assert_eq!(gone["destroyed"].as_array().unwrap().len(), 3, "{gone}");
    let (text, _) = lab.expect(0, &["vms", "destroy", "--yes"]);
    assert!(
        text.contains("No VM on") && text.contains("carries the tag homelab-lab"),
        "{text}"
    );
}

#[test]
fn mistakes_say_what_to_do_with_their_exit_codes() {
    let pve = fakepve(vec![
        json!({"vmid": 100, "name": "k3s-master", "status": "running", "config": {
        "tags": "homelab-lab", "scsi0": "local-lvm:vm-100-disk-0,size=64G",
        "ide2": "local-lvm:vm-100-cloudinit,media=cdrom", "net0": "virtio,bridge=vmbr0"}}),
    ]);
    let lab = VmLab::new();
    let ips = ["192.168.2.20", "192.168.2.21", "192.168.2.22"];

    // No proxmox: section.
    lab.write_spec("192.168.2", ips, "", "");
    lab.write_secrets(&[("proxmox-token", TOKEN)]);
    let (_, err) = lab.expect(2, &["vms", "plan"]);
    assert!(
        err.contains("no `proxmox:` section") && err.contains("help:"),
        "{err}"
    );

    // The token's secret not in the file.
    lab.write_spec("192.168.2", ips, &proxmox_section(&pve.endpoint), "{}");
    lab.write_secrets(&[("other", "x")]);
    let (_, err) = lab.expect(2, &["vms", "plan"]);
    assert!(err.contains("homelab secrets set proxmox-token"), "{err}");

    // A disk smaller than the VM has: refused, nothing written.
    lab.write_secrets(&[("proxmox-token", TOKEN)]);
    pve.control(json!({"op": "clear_requests"}));
    let (_, err) = lab.expect(1, &["vms", "apply"]);
    assert!(
        err.contains("never shrunk") && err.contains("`vm.disk: 64Gi`"),
        "{err}"
    );
    assert!(pve.requests().iter().all(|(m, _)| m == "GET"));

    // Nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    lab.write_spec(
        "192.168.2",
        ips,
        &proxmox_section(&format!("https://127.0.0.1:{port}")),
        "{disk: 64Gi}",
    );
    let (_, err) = lab.expect(1, &["vms", "plan"]);
    assert!(err.contains("cannot reach the Proxmox API"), "{err}");
}
