//! The spec's `proxmox:` section and the nodes' `vm:`: defaults, both ways to log in, and each
//! mistake reported at its place (file:line:col) without a lab being made.

use homelab_spec::lab::{ChecksumAlgorithm, Proxmox, ProxmoxAuth, SecretRef, Vm, VmTemplate};
use homelab_spec::templates::SEED;
use homelab_spec::{InvalidSpec, LoadedSpec, load_str};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHomelabTestKeyOnly you@host";
const SUM: &str = "sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

fn with(section: &str) -> Result<LoadedSpec, InvalidSpec> {
    load_str("homelab.yaml", &format!("{SEED}\n{section}"))
}

fn proxmox(body: &str) -> String {
    format!(
        "proxmox:\n  endpoint: https://pve.lab.example.com:8006\n  node: pve\n  sshKeys: [\"{KEY}\"]\n{body}"
    )
}

fn token() -> &'static str {
    "  tokenId: homelab@pve!lab\n  tokenSecret: {secret: proxmox-token}\n  template: 9000\n"
}

fn loaded(section: &str) -> LoadedSpec {
    with(section).unwrap_or_else(|e| panic!("{}", e.render()))
}

fn errors(section: &str) -> Vec<(String, String)> {
    whole_errors(&format!("{SEED}\n{section}"))
}

fn whole_errors(text: &str) -> Vec<(String, String)> {
    load_str("homelab.yaml", text)
        .expect_err(text)
        .errors()
        .map(|d| (d.code.to_string(), d.message.clone()))
        .collect()
}

/// The seed's nodes with a `vm:` under the first one.
fn seed_with_vm(vm: &str) -> String {
    let marker = "  nodes:\n";
    let at = SEED.find(marker).expect("seed has nodes");
    let first_node_end = SEED[at + marker.len()..]
        .find("\n    - ")
        .map(|i| at + marker.len() + i)
        .expect("seed has two nodes");
    format!(
        "{}\n      vm: {vm}{}",
        &SEED[..first_node_end],
        &SEED[first_node_end..]
    )
}

#[test]
fn a_token_and_a_template_vmid_take_the_defaults() {
    let lab = loaded(&proxmox(token())).lab;
    assert_eq!(
        lab.proxmox,
        Some(Proxmox {
            endpoint: "https://pve.lab.example.com:8006".into(),
            node: "pve".into(),
            auth: ProxmoxAuth::Token {
                token_id: "homelab@pve!lab".into(),
                token_secret: SecretRef("proxmox-token".into()),
            },
            verify_tls: true,
            storage: "local-lvm".into(),
            template: VmTemplate::Vmid { vmid: 9000 },
            bridge: "vmbr0".into(),
            ssh_keys: vec![KEY.into()],
            nameserver: lab.network.gateway,
        })
    );
    assert!(lab.cluster.nodes.iter().all(|n| n.vm.is_none()));
    assert!(
        lab.secret_refs()
            .iter()
            .any(|(s, used_by)| s.name() == "proxmox-token" && used_by.contains("Proxmox")),
        "the token secret is one the lab needs"
    );
}

#[test]
fn a_user_and_password_and_a_cloud_image_are_read() {
    let p = loaded(&proxmox(&format!(
        "  user: root@pam\n  password: {{secret: pve-root}}\n  verifyTls: false\n  storage: tank\n  bridge: vmbr1\n  nameserver: 1.1.1.1\n  template:\n    image: https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img\n    checksum: {SUM}\n    vmid: 9100\n"
    )))
    .lab
    .proxmox
    .unwrap();
    assert_eq!(
        p.auth,
        ProxmoxAuth::Password {
            user: "root@pam".into(),
            password: SecretRef("pve-root".into())
        }
    );
    assert!(!p.verify_tls);
    assert_eq!((p.storage.as_str(), p.bridge.as_str()), ("tank", "vmbr1"));
    assert_eq!(p.nameserver.to_string(), "1.1.1.1");
    assert_eq!(
        p.template,
        VmTemplate::Image {
            url: "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"
                .into(),
            file_name: "noble-server-cloudimg-amd64.qcow2".into(),
            checksum_algorithm: ChecksumAlgorithm::Sha256,
            checksum: SUM[7..].to_ascii_lowercase(),
            vmid: Some(9100),
        }
    );
}

#[test]
fn a_node_vm_defaults_to_the_proxmox_node_and_sizes_convert() {
    let text = format!(
        "{}\n{}",
        seed_with_vm("{vmid: 201, cores: 4, memory: 8Gi, disk: 64Gi}"),
        proxmox(token())
    );
    let lab = load_str("homelab.yaml", &text)
        .unwrap_or_else(|e| panic!("{}", e.render()))
        .lab;
    let first = &lab.cluster.nodes[0];
    assert_eq!(
        first.vm,
        Some(Vm {
            vmid: Some(201),
            cores: 4,
            memory_mib: 8192,
            disk_gib: 64,
            node: "pve".into()
        })
    );
    let text = format!("{}\n{}", seed_with_vm("{node: pve2}"), proxmox(token()));
    let vm = load_str("homelab.yaml", &text).unwrap().lab.cluster.nodes[0]
        .vm
        .clone()
        .unwrap();
    assert_eq!(
        (
            vm.vmid,
            vm.cores,
            vm.memory_mib,
            vm.disk_gib,
            vm.node.as_str()
        ),
        (None, 2, 4096, 32, "pve2")
    );
}

#[test]
fn bad_proxmox_settings_are_errors_at_their_place() {
    let t = "  tokenSecret: {secret: proxmox-token}\n  template: 9000\n";
    let cases: Vec<(String, &str)> = vec![
        (format!("  tokenId: homelab@pve\n{t}"), "proxmox-token-id"),
        (format!("  tokenId: '!lab'\n{t}"), "proxmox-token-id"),
        ("  tokenId: a@pve!x\n  template: 9000\n".into(), "missing-key"),
        ("  template: 9000\n".into(), "missing-key"),
        (
            "  user: root\n  password: {secret: p}\n  template: 9000\n".into(),
            "proxmox-user",
        ),
        ("  user: root@pam\n  template: 9000\n".into(), "missing-key"),
        (
            format!("  tokenId: a@pve!x\n  user: root@pam\n{t}"),
            "proxmox-auth-both",
        ),
        (
            format!("  tokenId: a@pve!x\n  password: {{secret: p}}\n{t}"),
            "proxmox-auth-both",
        ),
        (
            "  user: root@pam\n  password: {secret: p}\n  tokenSecret: {secret: t}\n  template: 9000\n"
                .into(),
            "proxmox-auth-both",
        ),
        (format!("{}  template: 99\n", &token()[..token().len() - 17]), "proxmox-vmid"),
        ("  tokenId: a@pve!x\n  tokenSecret: {secret: t}\n".into(), "missing-key"),
        (
            "  tokenId: a@pve!x\n  tokenSecret: {secret: t}\n  template: ubuntu\n".into(),
            "spec-shape",
        ),
        (
            format!("  tokenId: a@pve!x\n  tokenSecret: {{secret: t}}\n  template: {{image: https://x.example/a.iso, checksum: {SUM}}}\n"),
            "proxmox-image-format",
        ),
        (
            "  tokenId: a@pve!x\n  tokenSecret: {secret: t}\n  template: {image: https://x.example/a.img, checksum: md5:abc}\n".into(),
            "proxmox-checksum",
        ),
        (
            "  tokenId: a@pve!x\n  tokenSecret: {secret: t}\n  template: {image: https://x.example/a.img, checksum: 'sha256:abc'}\n".into(),
            "proxmox-checksum",
        ),
        (
            "  tokenId: a@pve!x\n  tokenSecret: {secret: t}\n  template: {image: x.example/a.img, checksum: sha256:abc}\n".into(),
            "invalid-url",
        ),
        (
            format!("  tokenId: a@pve!x\n  tokenSecret: {{secret: t}}\n  template: {{image: https://x.example/a.img, checksum: {SUM}, imgae: x}}\n"),
            "unknown-key",
        ),
        (
            "  tokenId: a@pve!x\n  tokenSecret: {secret: t}\n  template: {checksum: sha256:abc}\n".into(),
            "missing-key",
        ),
        (format!("{}  storage: 'local lvm'\n", token()), "proxmox-name"),
        (format!("{}  bridge: 0br\n", token()), "proxmox-name"),
        (format!("{}  nameserver: dns.example\n", token()), "invalid-address"),
        (format!("{}  verifyTls: yes\n", token()), "wrong-type"),
        (format!("{}  tokn: x\n", token()), "unknown-key"),
    ];
    for (body, code) in &cases {
        let found = errors(&proxmox(body));
        assert!(
            found.iter().any(|(c, _)| c == code),
            "`{body}`: expected {code}, got {found:?}"
        );
    }
    for (endpoint, code) in [
        ("pve.lab:8006", "proxmox-endpoint"),
        ("https://pve.lab:8006/api2/json", "proxmox-endpoint"),
        ("https://pve.lab:0", "proxmox-endpoint"),
    ] {
        let text = format!(
            "proxmox:\n  endpoint: {endpoint}\n  node: pve\n  sshKeys: [\"{KEY}\"]\n{}",
            token()
        );
        let found = errors(&text);
        assert_eq!(found.len(), 1, "{endpoint}: {found:?}");
        assert_eq!(found[0].0, code, "{endpoint}");
    }
    for keys in ["[]", "['not a key']", "['ssh-ed25519']"] {
        let text = format!(
            "proxmox:\n  endpoint: https://pve.lab:8006\n  node: pve\n  sshKeys: {keys}\n{}",
            token()
        );
        assert!(!errors(&text).is_empty(), "{keys}");
    }
    let text = format!(
        "proxmox:\n  endpoint: https://pve.lab:8006\n  node: 'p v e'\n  sshKeys: [\"{KEY}\"]\n{}",
        token()
    );
    assert!(errors(&text).iter().any(|(c, _)| c == "proxmox-name"));
}

#[test]
fn plain_http_is_a_warning_except_on_this_machine() {
    let text = format!(
        "proxmox:\n  endpoint: http://pve.lab:8006\n  node: pve\n  sshKeys: [\"{KEY}\"]\n{}",
        token()
    );
    let w = loaded(&text);
    assert!(w.warnings.iter().any(|w| w.code == "proxmox-plain-http"));
    let text = text.replace("http://pve.lab", "http://127.0.0.1");
    assert!(
        !loaded(&text)
            .warnings
            .iter()
            .any(|w| w.code == "proxmox-plain-http")
    );
}

#[test]
fn bad_vms_are_errors_at_their_place_with_the_line() {
    for (vm, code) in [
        ("{vmid: 5}", "proxmox-vmid"),
        ("{cores: 0}", "vm-cores"),
        ("{cores: 1000}", "vm-cores"),
        ("{memory: 256Mi}", "vm-size"),
        ("{memory: 1500k}", "vm-size"),
        ("{memory: lots}", "invalid-quantity"),
        ("{disk: 1Gi}", "vm-size"),
        ("{disk: 10500Mi}", "vm-size"),
        ("{node: 'a b'}", "proxmox-name"),
        ("{cpus: 2}", "unknown-key"),
    ] {
        let text = format!("{}\n{}", seed_with_vm(vm), proxmox(token()));
        let invalid = load_str("homelab.yaml", &text).expect_err(vm);
        let found: Vec<_> = invalid.errors().collect();
        assert!(found.iter().any(|d| d.code == code), "{vm}: {found:?}");
        let rendered = invalid.render();
        let line = text.lines().position(|l| l.contains("vm: ")).unwrap() + 1;
        assert!(
            rendered.contains(&format!("homelab.yaml:{line}:")),
            "{vm}: no file:line in\n{rendered}"
        );
    }
}

#[test]
fn a_vm_needs_the_proxmox_section_and_vmids_are_unique() {
    let found = whole_errors(&seed_with_vm("{cores: 2}"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "vm-without-proxmox");

    let text = seed_with_vm("{vmid: 300}").replacen(
        "      address: 192.168.2.21\n",
        "      address: 192.168.2.21\n      vm: {vmid: 300}\n",
        1,
    );
    let found = whole_errors(&format!("{text}\n{}", proxmox(token())));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "duplicate-vmid");
}
