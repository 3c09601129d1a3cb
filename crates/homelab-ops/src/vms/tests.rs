use std::collections::BTreeMap;

use homelab_spec::load_str;

use super::*;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHomelabTestKeyOnly you@host";

fn lab_with(template: &str, vms: [&str; 3]) -> Lab {
    let text = format!(
        "name: lab
network:
  subnet: 192.168.2.0/24
  gateway: 192.168.2.1
  domain: home.example.com
  loadBalancerPool: 192.168.2.100-192.168.2.120
cluster:
  k3sVersion: v1.34.2+k3s1
  nodes:
    - name: k3s-master
      role: server
      address: 192.168.2.20
      ssh: {{user: admin}}
      vm: {}
    - name: k3s-worker-1
      role: agent
      address: 192.168.2.21
      vm: {}
    - name: k3s-worker-2
      role: agent
      address: 192.168.2.22
      vm: {}
tls:
  acmeEmail: you@example.com
  challenge: {{type: dns01, provider: cloudflare, apiToken: {{secret: cloudflare-api-token}}}}
proxmox:
  endpoint: https://pve.example.com:8006
  node: pve1
  tokenId: homelab@pve!lab
  tokenSecret: {{secret: proxmox-token}}
  sshKeys: [\"{KEY}\"]
  template: {template}
",
        vms[0], vms[1], vms[2]
    );
    load_str("homelab.yaml", &text)
        .unwrap_or_else(|e| panic!("{}", e.render()))
        .lab
}

fn lab() -> Lab {
    lab_with(
        "9000",
        ["{cores: 4, memory: 8Gi, disk: 40Gi}", "{}", "{vmid: 120}"],
    )
}

fn storage(name: &str, content: &str) -> ObservedStorage {
    ObservedStorage {
        name: name.into(),
        kind: "dir".into(),
        content: content.split(',').map(str::to_string).collect(),
        active: true,
        avail: None,
    }
}

fn template(disk: &str) -> ObservedVm {
    ObservedVm {
        vmid: 9000,
        name: "tmpl".into(),
        node: "pve1".into(),
        template: true,
        config: BTreeMap::from([
            (
                "scsi0".into(),
                format!("local-lvm:base-9000-disk-0,size={disk}"),
            ),
            (
                "ide2".into(),
                "local-lvm:vm-9000-cloudinit,media=cdrom".into(),
            ),
            (
                "net0".into(),
                "virtio=BC:24:11:00:00:01,bridge=vmbr0".into(),
            ),
        ]),
        ..ObservedVm::default()
    }
}

fn empty_host(disk: &str) -> Observed {
    Observed {
        nodes: vec!["pve1".into()],
        quorate: true,
        vms: vec![template(disk)],
        storages: vec![
            storage("local", "iso,vztmpl,backup"),
            storage("local-lvm", "images,rootdir"),
        ],
        images: Vec::new(),
    }
}

/// The host after the plan for `lab` was carried out on `host`: each VM cloned, configured,
/// grown and running.
fn carried_out(lab: &Lab, host: &Observed) -> Observed {
    let mut after = host.clone();
    let plan = plan(lab, host).unwrap();
    for (i, change) in plan.vms.iter().enumerate() {
        let d = desired(lab)
            .into_iter()
            .find(|d| d.name == change.name)
            .unwrap();
        let vmid = change.vmid.unwrap_or(101 + i as u32);
        let mut config: BTreeMap<String, String> = host
            .vm(vmid)
            .map(|v| v.config.clone())
            .unwrap_or_else(|| template("4G").config);
        for s in &change.settings {
            config.insert(s.key.clone(), s.to.clone());
        }
        config.insert(
            "scsi0".into(),
            format!("local-lvm:vm-{vmid}-disk-0,size={}G", d.disk_gib),
        );
        after.vms.retain(|v| v.vmid != vmid);
        after.vms.push(ObservedVm {
            vmid,
            name: change.name.clone(),
            node: change.node.clone(),
            running: true,
            tags: vec![plan.tag.clone()],
            config,
            ..ObservedVm::default()
        });
    }
    after
}

#[test]
fn three_new_vms_are_cloned_set_up_grown_and_started() {
    let lab = lab();
    let plan = plan(&lab, &empty_host("4G")).unwrap();
    assert_eq!(plan.tag, "homelab-lab");
    assert_eq!(
        plan.template,
        TemplatePlan::Existing {
            vmid: 9000,
            node: "pve1".into(),
            disk_gib: Some(4)
        }
    );
    assert!(plan.writes() && plan.needs_template());
    let names: Vec<_> = plan.vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["k3s-master", "k3s-worker-1", "k3s-worker-2"]);
    let master = &plan.vms[0];
    assert_eq!(master.action, VmAction::Create);
    assert!(master.start && master.needs_reboot.is_empty());
    assert_eq!(master.vmid, None);
    assert_eq!(plan.vms[2].vmid, Some(120));
    assert_eq!(
        master.grow,
        Some(DiskGrow {
            disk: "scsi0".into(),
            from_gib: Some(4),
            to_gib: 40
        })
    );
    let set: BTreeMap<&str, &str> = master
        .settings
        .iter()
        .map(|s| (s.key.as_str(), s.to.as_str()))
        .collect();
    assert_eq!(set["cores"], "4");
    assert_eq!(set["memory"], "8192");
    assert_eq!(set["ciuser"], "admin");
    assert_eq!(set["agent"], "1");
    assert_eq!(set["ciupgrade"], "0");
    assert_eq!(set["ipconfig0"], "ip=192.168.2.20/24,gw=192.168.2.1");
    assert_eq!(set["nameserver"], "192.168.2.1");
    assert_eq!(set["tags"], "homelab-lab");
    assert_eq!(
        set["sshkeys"],
        "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIHomelabTestKeyOnly%20you%40host"
    );
    // No ssh.user: the image's own default user gets the keys.
    assert!(plan.vms[1].settings.iter().all(|s| s.key != "ciuser"));
    // Defaults: 2 cores, 4Gi, 32Gi.
    let w1: BTreeMap<&str, &str> = plan.vms[1]
        .settings
        .iter()
        .map(|s| (s.key.as_str(), s.to.as_str()))
        .collect();
    assert_eq!((w1["cores"], w1["memory"]), ("2", "4096"));
    assert_eq!(plan.vms[1].grow.as_ref().unwrap().to_gib, 32);
}

#[test]
fn the_same_lab_again_changes_nothing() {
    let lab = lab();
    let after = carried_out(&lab, &empty_host("4G"));
    let again = plan(&lab, &after).unwrap();
    assert!(!again.writes(), "{again:#?}");
    assert!(again.vms.iter().all(|v| v.action == VmAction::Keep
        && v.settings.is_empty()
        && v.grow.is_none()
        && !v.start));
    assert_eq!(again.awaiting_reboot().count(), 0);
}

#[test]
fn a_changed_running_vm_lists_what_waits_for_a_reboot() {
    let before = lab();
    let after = carried_out(&before, &empty_host("4G"));
    let changed = lab_with(
        "9000",
        ["{cores: 6, memory: 12Gi, disk: 64Gi}", "{}", "{vmid: 120}"],
    );
    let plan = plan(&changed, &after).unwrap();
    let master = &plan.vms[0];
    assert_eq!(master.action, VmAction::Update);
    assert!(!master.start);
    let keys: Vec<_> = master.settings.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["cores", "memory"]);
    assert_eq!(master.settings[0].from.as_deref(), Some("4"));
    assert_eq!(master.needs_reboot, ["cores", "memory"]);
    assert_eq!(
        master.grow,
        Some(DiskGrow {
            disk: "scsi0".into(),
            from_gib: Some(40),
            to_gib: 64
        })
    );
    assert_eq!(plan.awaiting_reboot().count(), 1);
    assert!(plan.vms[1..].iter().all(|v| !v.writes()));
}

#[test]
fn a_pending_change_is_not_set_again_but_still_waits_for_the_reboot() {
    let lab = lab();
    let mut after = carried_out(&lab, &empty_host("4G"));
    let master = after
        .vms
        .iter_mut()
        .find(|v| v.name == "k3s-master")
        .unwrap();
    master.config.insert("cores".into(), "2".into());
    master.pending.insert("cores".into(), Some("4".into()));
    let plan = plan(&lab, &after).unwrap();
    let master = &plan.vms[0];
    assert!(master.settings.is_empty(), "{:?}", master.settings);
    assert_eq!(master.needs_reboot, ["cores"]);
}

#[test]
fn a_smaller_disk_is_refused_and_nothing_is_planned() {
    let before = lab();
    let after = carried_out(&before, &empty_host("4G"));
    let smaller = lab_with(
        "9000",
        ["{cores: 4, memory: 8Gi, disk: 20Gi}", "{}", "{vmid: 120}"],
    );
    let err = plan(&smaller, &after).unwrap_err();
    assert_eq!(
        err.problems,
        [PlanProblem::Shrink {
            vm: "k3s-master".into(),
            disk: "scsi0".into(),
            from_gib: 40,
            to_gib: 20
        }]
    );
    let text = err.to_string();
    assert!(
        text.contains("https://pve.example.com:8006")
            && text.contains("never shrunk")
            && text.contains("`vm.disk: 40Gi`"),
        "{text}"
    );
    // A template bigger than the new VM's disk is the same refusal, before any clone.
    let err = plan(&lab(), &empty_host("50G")).unwrap_err();
    assert_eq!(err.problems.len(), 3, "{err}");
    assert!(
        err.problems
            .iter()
            .all(|p| matches!(p, PlanProblem::Shrink { from_gib: 50, .. }))
    );
}

#[test]
fn an_untagged_vm_of_the_node_name_is_adopted() {
    let lab = lab();
    let mut host = carried_out(&lab, &empty_host("4G"));
    let w1 = host
        .vms
        .iter_mut()
        .find(|v| v.name == "k3s-worker-1")
        .unwrap();
    w1.tags = vec!["mine".into()];
    let plan = plan(&lab, &host).unwrap();
    let w1 = &plan.vms[1];
    assert_eq!(w1.action, VmAction::Adopt);
    assert_eq!(
        w1.settings,
        [Setting {
            key: "tags".into(),
            from: Some("mine".into()),
            to: "homelab-lab;mine".into()
        }]
    );
    assert!(w1.needs_reboot.is_empty(), "tags need no reboot");
}

#[test]
fn a_stopped_vm_is_started_and_takes_its_changes_at_once() {
    let lab = lab();
    let mut host = carried_out(&lab, &empty_host("4G"));
    let w2 = host
        .vms
        .iter_mut()
        .find(|v| v.name == "k3s-worker-2")
        .unwrap();
    w2.running = false;
    w2.config.insert("memory".into(), "2048".into());
    let plan = plan(&lab, &host).unwrap();
    let w2 = &plan.vms[2];
    assert!(w2.start && w2.needs_reboot.is_empty());
    assert_eq!(w2.settings[0].key, "memory");
}

#[test]
fn mistakes_on_the_host_are_all_reported() {
    let lab = lab();
    let mut host = empty_host("4G");
    host.nodes = vec!["pve2".into()];
    host.quorate = false;
    host.storages.retain(|s| s.name != "local-lvm");
    host.vms.push(ObservedVm {
        vmid: 120,
        name: "someone-else".into(),
        node: "pve2".into(),
        ..ObservedVm::default()
    });
    let err = plan(&lab, &host).unwrap_err();
    let kinds: Vec<String> = err
        .problems
        .iter()
        .map(|p| {
            serde_json::to_value(p).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        ["unknownNode", "vmidTaken", "storage", "noQuorum"],
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("`pve1`") && text.contains("nodes: pve2"),
        "{text}"
    );
    assert!(
        text.contains("VMID 120 of `k3s-worker-2` is taken by the VM `someone-else`"),
        "{text}"
    );
}

#[test]
fn a_missing_or_plain_template_is_an_error() {
    let lab = lab();
    let mut host = empty_host("4G");
    host.vms.clear();
    assert_eq!(
        plan(&lab, &host).unwrap_err().problems,
        [PlanProblem::TemplateMissing { vmid: 9000 }]
    );
    host.vms.push(ObservedVm {
        template: false,
        ..template("4G")
    });
    assert!(matches!(
        plan(&lab, &host).unwrap_err().problems[..],
        [PlanProblem::NotATemplate { vmid: 9000, .. }]
    ));
}

#[test]
fn a_vm_on_another_node_or_with_another_vmid_is_not_moved() {
    let lab = lab();
    let mut host = carried_out(&lab, &empty_host("4G"));
    host.nodes.push("pve2".into());
    let w2 = host
        .vms
        .iter_mut()
        .find(|v| v.name == "k3s-worker-2")
        .unwrap();
    w2.node = "pve2".into();
    w2.vmid = 130;
    let problems = plan(&lab, &host).unwrap_err().problems;
    assert_eq!(
        problems,
        [
            PlanProblem::VmidDiffers {
                vm: "k3s-worker-2".into(),
                wanted: 120,
                found: 130
            },
            PlanProblem::WrongNode {
                vm: "k3s-worker-2".into(),
                vmid: 130,
                found: "pve2".into(),
                wanted: "pve1".into()
            }
        ]
    );
}

#[test]
fn a_cloud_image_template_is_made_once_on_an_import_storage() {
    let lab = lab_with(
        "{image: https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img, checksum: \"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}",
        ["{}", "{}", "{}"],
    );
    let mut host = empty_host("4G");
    host.vms.clear();
    let err = plan(&lab, &host).unwrap_err();
    assert_eq!(
        err.problems,
        [PlanProblem::NoImportStorage {
            node: "pve1".into()
        }]
    );
    assert!(
        err.to_string().contains("pvesm set local --content"),
        "{err}"
    );

    host.storages[0] = storage("local", "iso,vztmpl,backup,import");
    let p = plan(&lab, &host).unwrap();
    let TemplatePlan::Make(make) = &p.template else {
        panic!("{:?}", p.template)
    };
    assert_eq!(make.name, "tmpl-noble-server-cloudimg-amd64");
    assert_eq!(
        make.image_volume,
        "local:import/noble-server-cloudimg-amd64.qcow2"
    );
    assert!(make.download && make.create);
    assert_eq!(make.checksum_algorithm, "sha256");
    assert!(
        p.vms
            .iter()
            .all(|v| v.grow.as_ref().unwrap().from_gib.is_none())
    );

    // Interrupted after the download and the create: only the conversion is left.
    host.images.push(make.image_volume.clone());
    host.vms.push(ObservedVm {
        vmid: 100,
        name: make.name.clone(),
        node: "pve1".into(),
        ..ObservedVm::default()
    });
    let TemplatePlan::Make(make) = plan(&lab, &host).unwrap().template else {
        panic!()
    };
    assert!(!make.download && !make.create);
    assert_eq!(make.vmid, Some(100));

    // Made: an existing template from then on.
    host.vms[0].template = true;
    assert!(matches!(
        plan(&lab, &host).unwrap().template,
        TemplatePlan::Existing { vmid: 100, .. }
    ));
}

#[test]
fn full_storage_is_refused_before_anything_is_cloned() {
    let lab = lab();
    let mut host = empty_host("4G");
    host.storages[1].avail = Some(12 * 1024 * 1024 * 1024);
    assert!(plan(&lab, &host).is_ok(), "three copies of 4 GiB fit in 12");
    host.storages[1].avail = Some(11 * 1024 * 1024 * 1024);
    let err = plan(&lab, &host).unwrap_err();
    assert_eq!(
        err.problems,
        [PlanProblem::StorageFull {
            storage: "local-lvm".into(),
            avail_gib: 11,
            need_gib: 12
        }]
    );
}

#[test]
fn without_proxmox_there_is_no_plan() {
    let mut lab = lab();
    lab.proxmox = None;
    assert!(desired(&lab).is_empty());
    assert_eq!(
        plan(&lab, &Observed::default()).unwrap_err().problems,
        [PlanProblem::NoProxmox]
    );
}

#[test]
fn disk_sizes_and_names_read_as_proxmox_writes_them() {
    assert_eq!(disk_size_gib("local-lvm:vm-1-disk-0,size=32G"), Some(32));
    assert_eq!(
        disk_size_gib("local-lvm:vm-1-disk-0,iothread=1,size=2252M"),
        Some(3)
    );
    assert_eq!(disk_size_gib("local:1/x.qcow2,size=1T"), Some(1024));
    assert_eq!(disk_size_gib("local-lvm:vm-1-disk-0"), None);
    assert_eq!(
        template_name("Debian-13.generic_amd64.qcow2"),
        "tmpl-debian-13-generic-amd64"
    );
    assert_eq!(lab_tag("My Lab"), "homelab-my-lab");
    assert!(same("agent", "enabled=1,fstrim_cloned_disks=1", "1"));
    assert!(same(
        "ipconfig0",
        "gw=192.168.2.1,ip=192.168.2.20/24",
        "ip=192.168.2.20/24,gw=192.168.2.1"
    ));
    assert!(!same("cores", "2", "4"));
    assert!(is_cloudinit_drive("local-lvm:vm-101-cloudinit,media=cdrom"));
    assert!(is_cloudinit_drive("local-lvm:vm-101-disk-1,media=cdrom"));
    assert!(!is_cloudinit_drive("local:iso/debian.iso,media=cdrom"));
    assert!(!is_cloudinit_drive("none,media=cdrom"));
    assert_eq!(
        net0(Some("virtio=AA:BB,bridge=vmbr1,firewall=1"), "vmbr0").as_deref(),
        Some("virtio=AA:BB,firewall=1,bridge=vmbr0")
    );
    assert_eq!(net0(Some("virtio=AA:BB,bridge=vmbr0"), "vmbr0"), None);
}
