//! The lab's nodes as Proxmox VE VMs: what the spec wants ([`desired`]), what the API shows
//! ([`observe`]), and the pure comparison of the two ([`plan`]) that says, per VM, what must be
//! made, changed, grown, started or rebooted. The plan never touches the API and never prints;
//! reading and writing go through `homelab-proxmox`.

pub mod apply;
pub mod observe;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use homelab_proxmox::wire;
use homelab_spec::lab::{Lab, Proxmox, VmTemplate};
use serde::Serialize;

pub use apply::{
    ApplyFailed, ApplyOptions, DestroyPlan, DestroyReport, DestroyVm, VmDone, VmEvent, VmReport,
    apply, destroy, plan_destroy,
};
pub use observe::{Observed, ObservedStorage, ObservedVm, connect, observe};

/// The disk clones boot from, and the one a template made here gets.
pub const BOOT_DISK: &str = "scsi0";
/// The tag of templates homelab made from a cloud image; `destroy` keeps them.
pub const TEMPLATE_TAG: &str = "homelab-template";
/// Config keys Proxmox applies to a running VM at once; any other change waits for a reboot.
const HOTPLUG: &[&str] = &[
    "name",
    "description",
    "onboot",
    "tags",
    "protection",
    "startup",
];

/// The tag every VM of the lab carries: `homelab-<lab>`, in the characters a Proxmox tag takes.
pub fn lab_tag(lab_name: &str) -> String {
    let name: String = lab_name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("homelab-{name}")
}

/// One node's VM as the spec wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredVm {
    /// The node's name, which is the VM's name.
    pub name: String,
    /// The Proxmox node it runs on.
    pub node: String,
    pub vmid: Option<u32>,
    pub cores: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub address: Ipv4Addr,
    /// Where SSH answers once the guest is up (the node's `ssh.port`, else 22).
    pub ssh_port: u16,
    /// The config keys and values cloud-init and the hardware need, in the order they are set.
    pub settings: Vec<(String, String)>,
}

/// The VMs of every node with a `vm:`, in spec order.
pub fn desired(lab: &Lab) -> Vec<DesiredVm> {
    let Some(px) = &lab.proxmox else {
        return Vec::new();
    };
    let net = &lab.network;
    lab.cluster
        .nodes
        .iter()
        .filter_map(|n| {
            let vm = n.vm.as_ref()?;
            let mut settings = vec![
                ("cores".to_string(), vm.cores.to_string()),
                ("memory".to_string(), vm.memory_mib.to_string()),
                ("agent".to_string(), "1".to_string()),
                ("ciupgrade".to_string(), "0".to_string()),
            ];
            // Without a user of its own the image's default user (ubuntu, debian) gets the keys.
            if let Some(user) = &n.ssh.user {
                settings.push(("ciuser".to_string(), user.clone()));
            }
            settings.push(("sshkeys".to_string(), wire::sshkeys_value(&px.ssh_keys)));
            settings.push((
                "ipconfig0".to_string(),
                format!("ip={}/{},gw={}", n.address, net.subnet.prefix, net.gateway),
            ));
            settings.push(("nameserver".to_string(), px.nameserver.to_string()));
            Some(DesiredVm {
                name: n.name.clone(),
                node: vm.node.clone(),
                vmid: vm.vmid,
                cores: vm.cores,
                memory_mib: vm.memory_mib,
                disk_gib: vm.disk_gib,
                address: n.address,
                ssh_port: n.ssh.port.unwrap_or(22),
                settings,
            })
        })
        .collect()
}

/// Where the clones come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum TemplatePlan {
    /// A template that is there (the spec's VMID, or one made here earlier).
    Existing {
        vmid: u32,
        node: String,
        /// Its boot disk's size, when it has one.
        disk_gib: Option<u64>,
    },
    /// A template to make from the cloud image (or to finish, after an interrupted run).
    Make(MakeTemplate),
}

/// The steps that make a template from a cloud image; each is skipped when already done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MakeTemplate {
    pub name: String,
    pub node: String,
    /// The spec's VMID for it, or the VM an earlier run created and did not convert.
    pub vmid: Option<u32>,
    /// The file storage the image is downloaded to (one that holds `import` content).
    pub image_storage: String,
    /// `STORAGE:import/FILE`.
    pub image_volume: String,
    pub url: String,
    pub checksum: String,
    pub checksum_algorithm: String,
    /// The image is not on the storage yet.
    pub download: bool,
    /// No VM of the template's name yet.
    pub create: bool,
    /// Where its disk and cloud-init drive go.
    pub storage: String,
    pub bridge: String,
}

/// What happens to one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VmAction {
    /// Cloned from the template.
    Create,
    /// A VM of the node's name without the lab's tag: tagged and reconciled.
    Adopt,
    /// The lab's VM, with settings to change.
    Update,
    /// The lab's VM, as the spec wants it.
    Keep,
}

/// A config key set to a new value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub key: String,
    /// What the VM has (its pending value when one is waiting), `None` when unset.
    pub from: Option<String>,
    pub to: String,
}

/// A disk made larger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskGrow {
    pub disk: String,
    /// `None` for a clone, whose size is read after cloning.
    pub from_gib: Option<u64>,
    pub to_gib: u64,
}

/// The plan for one node's VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VmChange {
    pub name: String,
    pub node: String,
    /// Known for an existing VM or a fixed VMID; a new VM without one takes `nextid`.
    pub vmid: Option<u32>,
    pub action: VmAction,
    pub settings: Vec<Setting>,
    pub grow: Option<DiskGrow>,
    /// The VM is stopped (or new) and will be started.
    pub start: bool,
    /// Keys whose new value a running VM only takes at its next boot (set now, pending until
    /// a reboot, which happens only when asked for).
    pub needs_reboot: Vec<String>,
    pub address: Ipv4Addr,
    pub ssh_port: u16,
}

impl VmChange {
    /// Whether applying it writes anything.
    pub fn writes(&self) -> bool {
        self.action != VmAction::Keep || self.start || self.grow.is_some()
    }
}

/// Everything to do on the Proxmox host for the lab's VMs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VmPlan {
    pub endpoint: String,
    /// The tag the lab's VMs carry.
    pub tag: String,
    pub template: TemplatePlan,
    pub vms: Vec<VmChange>,
}

impl VmPlan {
    /// Whether applying it writes anything (it still checks that every guest answers).
    pub fn writes(&self) -> bool {
        self.vms.iter().any(VmChange::writes)
    }

    /// Whether a VM is cloned, so the template must be there (and made, when it is not).
    pub fn needs_template(&self) -> bool {
        self.vms.iter().any(|v| v.action == VmAction::Create)
    }

    /// The VMs that wait for a reboot to take changes.
    pub fn awaiting_reboot(&self) -> impl Iterator<Item = &VmChange> {
        self.vms.iter().filter(|v| !v.needs_reboot.is_empty())
    }
}

/// A reason the plan cannot be carried out; nothing is done while there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum PlanProblem {
    #[error("the spec has no `proxmox:` section, so no node has a VM")]
    NoProxmox,
    #[error(
        "Proxmox node `{node}` (for {used_by}) is not in the cluster at {endpoint} (nodes: {known}); set `proxmox.node` or the node's `vm.node` to one of them"
    )]
    UnknownNode {
        node: String,
        used_by: String,
        endpoint: String,
        known: String,
    },
    #[error(
        "the Proxmox cluster has no quorum, so nothing can be changed; bring its nodes back (`pvecm status` on a node) and run again"
    )]
    NoQuorum,
    #[error(
        "storage `{storage}` on Proxmox node `{node}` {why}; set `proxmox.storage` to a storage that holds VM images (`pvesm status --content images`)"
    )]
    Storage {
        storage: String,
        node: String,
        why: String,
    },
    #[error(
        "no storage on Proxmox node `{node}` takes imported disk images for the cloud image; enable the `import` content on a file storage (e.g. `pvesm set local --content iso,vztmpl,backup,import`) or set `proxmox.template` to an existing template's VMID"
    )]
    NoImportStorage { node: String },
    #[error(
        "storage `{storage}` has {avail_gib} GiB free, and the full clones of the template's disk for the new VMs need {need_gib} GiB; free space on it or choose another `proxmox.storage`"
    )]
    StorageFull {
        storage: String,
        avail_gib: u64,
        need_gib: u64,
    },
    #[error(
        "template {vmid} (`proxmox.template`) is not on the Proxmox host; create it or give the VMID of an existing template"
    )]
    TemplateMissing { vmid: u32 },
    #[error(
        "VM {vmid} (`proxmox.template`) is `{name}`, not a template; convert it (`qm template {vmid}`) or give a template's VMID"
    )]
    NotATemplate { vmid: u32, name: String },
    #[error(
        "VMID {vmid} of `{vm}` is taken by the VM `{other}`; choose a free VMID or remove `vm.vmid`"
    )]
    VmidTaken {
        vmid: u32,
        vm: String,
        other: String,
    },
    #[error(
        "`{vm}` is VM {found}, but the spec gives it VMID {wanted}; set `vm.vmid: {found}` or rename the VM"
    )]
    VmidDiffers { vm: String, wanted: u32, found: u32 },
    #[error(
        "`{vm}` (VM {vmid}) is on Proxmox node `{found}`, the spec puts it on `{wanted}`; migrate it (`qm migrate {vmid} {wanted}`) or set `vm.node: {found}`"
    )]
    WrongNode {
        vm: String,
        vmid: u32,
        found: String,
        wanted: String,
    },
    #[error(
        "more than one VM is named `{vm}` (VMIDs {vmids}); rename or remove all but one, or set `vm.vmid`"
    )]
    Ambiguous { vm: String, vmids: String },
    #[error("`{vm}` (VMID {vmid}) is a template; a node's VM must be a plain VM")]
    IsTemplate { vm: String, vmid: u32 },
    #[error(
        "`{vm}` has a {from_gib} GiB disk ({disk}) and the spec asks for {to_gib} GiB; disks are never shrunk: set `vm.disk: {from_gib}Gi` or more"
    )]
    Shrink {
        vm: String,
        disk: String,
        from_gib: u64,
        to_gib: u64,
    },
    #[error("`{vm}` (VM {vmid}) has no boot disk ({BOOT_DISK}, virtio0, sata0 or ide0) to size")]
    NoDisk { vm: String, vmid: u32 },
}

/// Every reason the plan cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("the VM plan for {endpoint} cannot be carried out:\n  - {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  - "))]
pub struct VmPlanError {
    pub endpoint: String,
    pub problems: Vec<PlanProblem>,
}

/// Why a VM operation stopped. Messages name the endpoint, VM and call; never a secret.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("the spec has no `proxmox:` section, so no node has a VM")]
    NoProxmox,
    #[error("the Proxmox login secret `{name}` cannot be read: {reason}{}", secret_hint(.name, .reason))]
    Secret { name: String, reason: String },
    #[error(transparent)]
    Proxmox(#[from] homelab_proxmox::ProxmoxError),
    #[error(transparent)]
    Plan(#[from] VmPlanError),
    #[error(
        "{step}: still locked after {attempts} attempts ({source}); another task holds the lock: wait for it (`qm unlock VMID` if it is stale) and run again"
    )]
    StillLocked {
        step: String,
        attempts: u32,
        source: homelab_proxmox::ProxmoxError,
    },
    #[error(
        "`{vm}` (VM {vmid}) has no boot disk ({BOOT_DISK}, virtio0, sata0 or ide0) after cloning; check the template's disks"
    )]
    NoBootDisk { vm: String, vmid: u32 },
    #[error(
        "`{vm}` (VM {vmid}) was cloned with a {from_gib} GiB disk ({disk}), more than the {to_gib} GiB the spec asks for; disks are never shrunk: set `vm.disk: {from_gib}Gi` or more"
    )]
    CloneTooLarge {
        vm: String,
        vmid: u32,
        disk: String,
        from_gib: u64,
        to_gib: u64,
    },
    #[error(
        "`{vm}` (VM {vmid}): the guest agent did not report {address} within {waited}s (last: {last}); check the VM's console, that the image runs qemu-guest-agent and that ipconfig0 matches the node's address"
    )]
    AgentTimeout {
        vm: String,
        vmid: u32,
        address: Ipv4Addr,
        waited: u64,
        last: String,
    },
    #[error(
        "`{vm}`: SSH on {address}:{port} did not answer within {waited}s (last: {last}); check the VM's console and the node's `ssh.port`"
    )]
    SshTimeout {
        vm: String,
        address: Ipv4Addr,
        port: u16,
        waited: u64,
        last: String,
    },
}

fn secret_hint(name: &str, reason: &str) -> String {
    if reason.contains("secrets set") {
        String::new()
    } else {
        format!("; add it with `homelab secrets set {name}`")
    }
}

/// Reads the host and plans: [`observe`] then [`plan`].
pub async fn plan_live(client: &homelab_proxmox::Client, lab: &Lab) -> Result<VmPlan, VmError> {
    let observed = observe(client, lab).await?;
    Ok(plan(lab, &observed)?)
}

/// The template's VM name for an image: `tmpl-` and the file's stem, as a DNS name.
pub fn template_name(file_name: &str) -> String {
    let stem = file_name
        .rsplit_once('.')
        .map_or(file_name, |(stem, _)| stem);
    let mut name: String = stem
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name.truncate(58);
    format!("tmpl-{}", name.trim_matches('-'))
}

/// The boot disk of a config: its key and size in whole GiB (rounded up).
pub fn boot_disk(config: &BTreeMap<String, String>) -> Option<(String, Option<u64>)> {
    ["scsi0", "virtio0", "sata0", "ide0"].iter().find_map(|k| {
        let v = config.get(*k)?;
        if v.contains("media=cdrom") || v.contains("cloudinit") {
            return None;
        }
        Some((k.to_string(), disk_size_gib(v)))
    })
}

/// The `size=` of a drive value in whole GiB, rounded up (`2252M` is 3).
pub fn disk_size_gib(drive: &str) -> Option<u64> {
    let size = drive.split(',').find_map(|p| p.strip_prefix("size="))?;
    let (num, unit) = size.split_at(
        size.find(|c: char| c.is_ascii_alphabetic())?
            .min(size.len()),
    );
    let num: f64 = num.parse().ok()?;
    let bytes = num
        * match unit {
            "K" => 1024.0,
            "M" => 1024.0 * 1024.0,
            "G" => 1024.0 * 1024.0 * 1024.0,
            "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            _ => return None,
        };
    Some((bytes / (1024.0 * 1024.0 * 1024.0)).ceil() as u64)
}

/// Whether a drive is a cloud-init drive: Proxmox names its volume `vm-N-cloudinit`; any CD-ROM
/// on a VM-image volume (not an ISO, not empty) is taken for one too.
fn is_cloudinit_drive(drive: &str) -> bool {
    let volume = drive.split(',').next().unwrap_or_default();
    drive.contains("cloudinit")
        || (drive.split(',').any(|p| p == "media=cdrom")
            && volume.contains(':')
            && !volume.contains(":iso/"))
}

/// Whether a config value already says what the spec wants for `key`.
fn same(key: &str, have: &str, want: &str) -> bool {
    match key {
        // `agent: 1` and `agent: enabled=1,fstrim_cloned_disks=1` both enable it.
        "agent" => {
            let first = have.split(',').next().unwrap_or_default();
            first == want || first == format!("enabled={want}")
        }
        "ipconfig0" | "nameserver" => {
            let mut a: Vec<&str> = have.split([',', ' ']).collect();
            let mut b: Vec<&str> = want.split([',', ' ']).collect();
            a.sort_unstable();
            b.sort_unstable();
            a == b
        }
        _ => have == want,
    }
}

/// The lab's tag added to a VM's tags (Proxmox keeps them `;`-separated and sorted).
fn with_tag(tags: &[String], tag: &str) -> String {
    let mut all: Vec<String> = tags.to_vec();
    all.push(tag.to_string());
    all.sort();
    all.dedup();
    all.join(";")
}

/// The network device a VM needs: on the lab's bridge (keeping its model and MAC).
fn net0(have: Option<&str>, bridge: &str) -> Option<String> {
    let want = format!("bridge={bridge}");
    match have {
        Some(v) if v.split(',').any(|p| p == want) => None,
        Some(v) => {
            let mut parts: Vec<String> = v
                .split(',')
                .filter(|p| !p.starts_with("bridge="))
                .map(str::to_string)
                .collect();
            parts.push(want);
            Some(parts.join(","))
        }
        None => Some(format!("virtio,{want}")),
    }
}

/// What must happen for the lab's VMs, from the spec and what the API showed. Pure.
pub fn plan(lab: &Lab, observed: &Observed) -> Result<VmPlan, VmPlanError> {
    let endpoint = lab
        .proxmox
        .as_ref()
        .map(|p| p.endpoint.clone())
        .unwrap_or_default();
    let fail = |problems| VmPlanError {
        endpoint: endpoint.clone(),
        problems,
    };
    let Some(px) = &lab.proxmox else {
        return Err(fail(vec![PlanProblem::NoProxmox]));
    };
    let tag = lab_tag(&lab.name);
    let wanted = desired(lab);
    let mut problems = Vec::new();

    let known = observed.nodes.join(", ");
    let check_node = |node: &str, used_by: &str, problems: &mut Vec<PlanProblem>| {
        if !observed.nodes.iter().any(|n| n == node) {
            problems.push(PlanProblem::UnknownNode {
                node: node.to_string(),
                used_by: used_by.to_string(),
                endpoint: endpoint.clone(),
                known: known.clone(),
            });
        }
    };
    check_node(&px.node, "proxmox.node", &mut problems);
    for d in &wanted {
        if d.node != px.node {
            check_node(&d.node, &format!("node {}", d.name), &mut problems);
        }
    }

    let template = plan_template(px, observed, &mut problems);
    let template_disk = match &template {
        TemplatePlan::Existing { disk_gib, .. } => *disk_gib,
        TemplatePlan::Make(_) => None,
    };

    let mut vms = Vec::new();
    let mut new_disk_gib = 0u64;
    for d in &wanted {
        if let Some(change) = plan_vm(d, px, &tag, template_disk, observed, &mut problems) {
            // A full clone copies the template's disk; growing it later takes thin storage
            // nothing up front, so only the copies are counted.
            if change.action == VmAction::Create {
                new_disk_gib += template_disk.unwrap_or(0);
            }
            vms.push(change);
        }
    }

    check_storage(px, observed, new_disk_gib, &mut problems);
    let plan = VmPlan {
        endpoint: endpoint.clone(),
        tag,
        template,
        vms,
    };
    if !observed.quorate && plan.writes() {
        problems.push(PlanProblem::NoQuorum);
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(fail(problems))
    }
}

fn plan_template(
    px: &Proxmox,
    observed: &Observed,
    problems: &mut Vec<PlanProblem>,
) -> TemplatePlan {
    match &px.template {
        VmTemplate::Vmid { vmid } => match observed.vm(*vmid) {
            None => {
                problems.push(PlanProblem::TemplateMissing { vmid: *vmid });
                TemplatePlan::Existing {
                    vmid: *vmid,
                    node: px.node.clone(),
                    disk_gib: None,
                }
            }
            Some(t) => {
                if !t.template {
                    problems.push(PlanProblem::NotATemplate {
                        vmid: *vmid,
                        name: t.name.clone(),
                    });
                }
                TemplatePlan::Existing {
                    vmid: *vmid,
                    node: t.node.clone(),
                    disk_gib: boot_disk(&t.config).and_then(|(_, s)| s),
                }
            }
        },
        VmTemplate::Image {
            url,
            file_name,
            checksum_algorithm,
            checksum,
            vmid,
        } => {
            let name = template_name(file_name);
            let found = match vmid {
                Some(id) => observed.vm(*id),
                None => observed
                    .vms
                    .iter()
                    .find(|v| v.name == name && v.template)
                    .or_else(|| observed.vms.iter().find(|v| v.name == name)),
            };
            if let Some(t) = found {
                if t.template {
                    return TemplatePlan::Existing {
                        vmid: t.vmid,
                        node: t.node.clone(),
                        disk_gib: boot_disk(&t.config).and_then(|(_, s)| s),
                    };
                }
                if t.name != name {
                    problems.push(PlanProblem::VmidTaken {
                        vmid: t.vmid,
                        vm: name.clone(),
                        other: t.name.clone(),
                    });
                }
            }
            let storage = observed
                .storages
                .iter()
                .find(|s| s.active && s.content.iter().any(|c| c == "import"));
            let Some(storage) = storage else {
                problems.push(PlanProblem::NoImportStorage {
                    node: px.node.clone(),
                });
                return TemplatePlan::Make(MakeTemplate {
                    name,
                    node: px.node.clone(),
                    vmid: *vmid,
                    image_storage: String::new(),
                    image_volume: String::new(),
                    url: url.clone(),
                    checksum: checksum.clone(),
                    checksum_algorithm: checksum_algorithm.as_str().to_string(),
                    download: true,
                    create: found.is_none(),
                    storage: px.storage.clone(),
                    bridge: px.bridge.clone(),
                });
            };
            let image_volume = format!("{}:import/{file_name}", storage.name);
            TemplatePlan::Make(MakeTemplate {
                name,
                node: px.node.clone(),
                vmid: found.map(|t| t.vmid).or(*vmid),
                image_storage: storage.name.clone(),
                download: !observed.images.contains(&image_volume),
                image_volume,
                url: url.clone(),
                checksum: checksum.clone(),
                checksum_algorithm: checksum_algorithm.as_str().to_string(),
                create: found.is_none(),
                storage: px.storage.clone(),
                bridge: px.bridge.clone(),
            })
        }
    }
}

fn plan_vm(
    d: &DesiredVm,
    px: &Proxmox,
    tag: &str,
    template_disk: Option<u64>,
    observed: &Observed,
    problems: &mut Vec<PlanProblem>,
) -> Option<VmChange> {
    let named: Vec<&ObservedVm> = observed.vms.iter().filter(|v| v.name == d.name).collect();
    let found = match (named.as_slice(), d.vmid) {
        ([], _) => None,
        ([one], _) => Some(*one),
        (many, Some(id)) if many.iter().any(|v| v.vmid == id) => {
            many.iter().find(|v| v.vmid == id).copied()
        }
        (many, _) => {
            problems.push(PlanProblem::Ambiguous {
                vm: d.name.clone(),
                vmids: many
                    .iter()
                    .map(|v| v.vmid.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
            return None;
        }
    };
    let Some(vm) = found else {
        if let Some(id) = d.vmid
            && let Some(other) = observed.vm(id)
        {
            problems.push(PlanProblem::VmidTaken {
                vmid: id,
                vm: d.name.clone(),
                other: other.name.clone(),
            });
            return None;
        }
        if let Some(from) = template_disk
            && from > d.disk_gib
        {
            problems.push(PlanProblem::Shrink {
                vm: d.name.clone(),
                disk: format!("{BOOT_DISK}, from the template"),
                from_gib: from,
                to_gib: d.disk_gib,
            });
        }
        let mut settings: Vec<Setting> = d
            .settings
            .iter()
            .map(|(k, v)| Setting {
                key: k.clone(),
                from: None,
                to: v.clone(),
            })
            .collect();
        settings.push(Setting {
            key: "tags".into(),
            from: None,
            to: tag.to_string(),
        });
        return Some(VmChange {
            name: d.name.clone(),
            node: d.node.clone(),
            vmid: d.vmid,
            action: VmAction::Create,
            settings,
            grow: Some(DiskGrow {
                disk: BOOT_DISK.into(),
                from_gib: template_disk,
                to_gib: d.disk_gib,
            }),
            start: true,
            needs_reboot: Vec::new(),
            address: d.address,
            ssh_port: d.ssh_port,
        });
    };
    if vm.template {
        problems.push(PlanProblem::IsTemplate {
            vm: d.name.clone(),
            vmid: vm.vmid,
        });
        return None;
    }
    if let Some(id) = d.vmid
        && id != vm.vmid
    {
        problems.push(PlanProblem::VmidDiffers {
            vm: d.name.clone(),
            wanted: id,
            found: vm.vmid,
        });
    }
    if vm.node != d.node {
        problems.push(PlanProblem::WrongNode {
            vm: d.name.clone(),
            vmid: vm.vmid,
            found: vm.node.clone(),
            wanted: d.node.clone(),
        });
    }
    // What the VM will run with at its next boot: a pending value wins over the config.
    let effective = |key: &str| -> Option<String> {
        match vm.pending.get(key) {
            Some(Some(v)) => Some(v.clone()),
            Some(None) => None,
            None => vm.config.get(key).cloned(),
        }
    };
    let mut wanted: Vec<(String, String)> = d.settings.clone();
    if let Some(v) = net0(effective("net0").as_deref(), &px.bridge) {
        wanted.push(("net0".into(), v));
    }
    let has_cloudinit = vm
        .config
        .iter()
        .chain(
            vm.pending
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k, v))),
        )
        .any(|(_, v)| is_cloudinit_drive(v));
    if !has_cloudinit {
        wanted.push(("ide2".into(), format!("{}:cloudinit", px.storage)));
    }
    let mut settings = Vec::new();
    for (key, want) in wanted {
        let have = effective(&key);
        if have.as_deref().is_some_and(|h| same(&key, h, &want)) {
            continue;
        }
        settings.push(Setting {
            key,
            from: have,
            to: want,
        });
    }
    let tagged = vm.tags.iter().any(|t| t == tag);
    if !tagged {
        settings.push(Setting {
            key: "tags".into(),
            from: (!vm.tags.is_empty()).then(|| vm.tags.join(";")),
            to: with_tag(&vm.tags, tag),
        });
    }
    let grow = match boot_disk(&vm.config) {
        None => {
            problems.push(PlanProblem::NoDisk {
                vm: d.name.clone(),
                vmid: vm.vmid,
            });
            None
        }
        Some((disk, size)) => match size {
            Some(have) if have > d.disk_gib => {
                problems.push(PlanProblem::Shrink {
                    vm: d.name.clone(),
                    disk,
                    from_gib: have,
                    to_gib: d.disk_gib,
                });
                None
            }
            Some(have) if have == d.disk_gib => None,
            from_gib => Some(DiskGrow {
                disk,
                from_gib,
                to_gib: d.disk_gib,
            }),
        },
    };
    let mut needs_reboot: Vec<String> = Vec::new();
    if vm.running {
        needs_reboot.extend(
            settings
                .iter()
                .filter(|s| !HOTPLUG.contains(&s.key.as_str()))
                .map(|s| s.key.clone()),
        );
        // Changes an earlier run set that still wait for a boot.
        for key in vm.pending.keys() {
            if !needs_reboot.contains(key) && !HOTPLUG.contains(&key.as_str()) {
                needs_reboot.push(key.clone());
            }
        }
    }
    let action = if !tagged {
        VmAction::Adopt
    } else if settings.is_empty() {
        VmAction::Keep
    } else {
        VmAction::Update
    };
    Some(VmChange {
        name: d.name.clone(),
        node: vm.node.clone(),
        vmid: Some(vm.vmid),
        action,
        settings,
        grow,
        start: !vm.running,
        needs_reboot,
        address: d.address,
        ssh_port: d.ssh_port,
    })
}

fn check_storage(
    px: &Proxmox,
    observed: &Observed,
    need_gib: u64,
    problems: &mut Vec<PlanProblem>,
) {
    let storage = observed.storages.iter().find(|s| s.name == px.storage);
    let why = match storage {
        None => Some("does not exist or is not enabled there".to_string()),
        Some(s) if !s.active => Some("is not active".to_string()),
        Some(s) if !s.content.iter().any(|c| c == "images") => Some(format!(
            "does not hold VM images (its content is {})",
            s.content.join(",")
        )),
        _ => None,
    };
    if let Some(why) = why {
        problems.push(PlanProblem::Storage {
            storage: px.storage.clone(),
            node: px.node.clone(),
            why,
        });
        return;
    }
    if let Some(avail) = storage.and_then(|s| s.avail) {
        let avail_gib = avail / (1024 * 1024 * 1024);
        if need_gib > avail_gib {
            problems.push(PlanProblem::StorageFull {
                storage: px.storage.clone(),
                avail_gib,
                need_gib,
            });
        }
    }
}

#[cfg(test)]
mod tests;
