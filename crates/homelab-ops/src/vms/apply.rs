//! Carrying out a [`VmPlan`] and removing the lab's VMs: every long call's task waited for to
//! `OK`, clones one at a time (parallel full clones on one storage time out on its lock),
//! lock timeouts retried with backoff, lost `nextid` races retried with a new VMID, then each
//! guest waited for until its agent reports the node's address and SSH answers. What was done
//! before a failure is always handed back with the error. No terminal here: progress goes to
//! the caller's events.

use std::future::Future;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use homelab_proxmox::wire::{self, Upid};
use homelab_proxmox::{Client, ProxmoxError};
use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::observe::{ObservedVm, read_config};
use super::{
    BOOT_DISK, MakeTemplate, Observed, TEMPLATE_TAG, TemplatePlan, VmAction, VmChange, VmError,
    VmPlan, boot_disk,
};

/// How [`apply`] and [`destroy`] wait and retry.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Reboot running VMs whose changes wait for a boot (else they are only listed).
    pub reboot: bool,
    /// How long one task (clone, config, resize, start) may run.
    pub task_timeout: Duration,
    /// How long the image download may run.
    pub download_timeout: Duration,
    /// How long a guest may take until its agent reports the address and SSH answers.
    pub ready_timeout: Duration,
    /// How often the agent and SSH are tried, and a task's state read.
    pub poll_every: Duration,
    /// Attempts after a lock timeout or a lost VMID race.
    pub retries: u32,
    /// The first wait before a retry; it doubles up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            reboot: false,
            task_timeout: Duration::from_secs(600),
            download_timeout: Duration::from_secs(1800),
            ready_timeout: Duration::from_secs(300),
            poll_every: Duration::from_secs(2),
            retries: 5,
            retry_base: Duration::from_secs(2),
            retry_cap: Duration::from_secs(30),
        }
    }
}

/// Progress, for the front end to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum VmEvent {
    /// A step on a VM (or the template) begins.
    Started { vm: String, step: String },
    /// A step failed in a way worth another try, which comes after `wait`.
    Retrying {
        vm: String,
        step: String,
        attempt: u32,
        #[serde(rename = "waitMs")]
        wait: u128,
        reason: String,
    },
    /// A step is done.
    Finished { vm: String, step: String },
}

/// What happened to one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VmDone {
    pub name: String,
    pub vmid: Option<u32>,
    pub node: String,
    pub action: VmAction,
    /// The steps done, in order (`clone from 9000`, `set cores, memory`, `grow scsi0 to 32 GiB`).
    pub done: Vec<String>,
    /// Keys set on a running VM that it takes at its next boot (rerun with a reboot).
    pub awaiting_reboot: Vec<String>,
    /// Its agent reported the address and SSH answered.
    pub ready: bool,
    pub address: Ipv4Addr,
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VmReport {
    pub endpoint: String,
    /// The template the clones came from, and whether it was made now.
    pub template: Option<u32>,
    pub template_made: bool,
    pub vms: Vec<VmDone>,
}

impl VmReport {
    /// Whether anything was written.
    pub fn changed(&self) -> bool {
        self.template_made || self.vms.iter().any(|v| !v.done.is_empty())
    }
}

/// An operation that stopped: the error, and everything done before it.
#[derive(Debug, thiserror::Error)]
#[error("{error}{}", done_before(.done))]
pub struct ApplyFailed<R: Done> {
    pub error: VmError,
    pub done: R,
}

/// A report that can list what it did.
pub trait Done: std::fmt::Debug {
    fn lines(&self) -> Vec<String>;
}

impl Done for VmReport {
    fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.template_made
            && let Some(t) = self.template
        {
            out.push(format!("template {t}: made"));
        }
        for v in &self.vms {
            if !v.done.is_empty() {
                let id = v.vmid.map(|i| format!(" ({i})")).unwrap_or_default();
                out.push(format!("{}{id}: {}", v.name, v.done.join(", ")));
            }
        }
        out
    }
}

fn done_before(done: &impl Done) -> String {
    let lines = done.lines();
    if lines.is_empty() {
        "\n  nothing was changed before it stopped".to_string()
    } else {
        format!(
            "\n  done before it stopped (a new run carries on from there):\n    {}",
            lines.join("\n    ")
        )
    }
}

struct Run<'a> {
    client: &'a Client,
    opts: &'a ApplyOptions,
    events: &'a (dyn Fn(VmEvent) + Send + Sync),
}

impl Run<'_> {
    fn started(&self, vm: &str, step: impl Into<String>) {
        (self.events)(VmEvent::Started {
            vm: vm.to_string(),
            step: step.into(),
        });
    }

    fn finished(&self, vm: &str, step: impl Into<String>) {
        (self.events)(VmEvent::Finished {
            vm: vm.to_string(),
            step: step.into(),
        });
    }

    /// A call, and its task when it starts one, waited for; a lock held past Proxmox's own
    /// wait is tried again after a growing pause.
    async fn call<F, Fut>(
        &self,
        vm: &str,
        step: &str,
        timeout: Duration,
        f: F,
    ) -> Result<(), VmError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Value, ProxmoxError>>,
    {
        let mut attempt = 0;
        loop {
            let result = match f().await {
                Ok(answer) => self.wait(step, &answer, timeout).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if e.is_lock_timeout() && attempt < self.opts.retries => {
                    self.retry(vm, step, attempt, &e.to_string()).await;
                    attempt += 1;
                }
                Err(e) if e.is_lock_timeout() => {
                    return Err(VmError::StillLocked {
                        step: step.to_string(),
                        attempts: attempt + 1,
                        source: e,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn retry(&self, vm: &str, step: &str, attempt: u32, reason: &str) {
        let wait = wire::backoff(attempt, self.opts.retry_base, self.opts.retry_cap);
        (self.events)(VmEvent::Retrying {
            vm: vm.to_string(),
            step: step.to_string(),
            attempt: attempt + 1,
            wait: wait.as_millis(),
            reason: reason.to_string(),
        });
        tokio::time::sleep(wait).await;
    }

    /// Waits for the task a call started (`null` when it finished at once).
    async fn wait(
        &self,
        step: &str,
        answer: &Value,
        timeout: Duration,
    ) -> Result<(), ProxmoxError> {
        match answer {
            Value::Null => Ok(()),
            Value::String(text) => {
                let upid = Upid::parse(text).map_err(|e| ProxmoxError::BadAnswer {
                    op: step.to_string(),
                    reason: e.to_string(),
                })?;
                self.client.wait_task(step, &upid, timeout).await
            }
            other => Err(ProxmoxError::BadAnswer {
                op: step.to_string(),
                reason: format!("expected a task id, got {other}"),
            }),
        }
    }

    async fn nextid(&self) -> Result<u32, VmError> {
        let op = "ask Proxmox for a free VMID";
        let answer = self.client.get(op, "/cluster/nextid").await?;
        let id = match &answer {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            _ => None,
        };
        id.ok_or_else(|| {
            VmError::Proxmox(ProxmoxError::BadAnswer {
                op: op.into(),
                reason: format!("expected a VMID, got {answer}"),
            })
        })
    }

    /// Creates a VM under a free VMID: a fixed one as given, else `nextid`, asked again when
    /// another caller took the id first.
    async fn create_with_id<F, Fut>(
        &self,
        vm: &str,
        step: &str,
        fixed: Option<u32>,
        f: F,
    ) -> Result<u32, VmError>
    where
        F: Fn(u32) -> Fut,
        Fut: Future<Output = Result<Value, ProxmoxError>>,
    {
        let mut attempt = 0;
        loop {
            let id = match fixed {
                Some(id) => id,
                None => self.nextid().await?,
            };
            let step_id = format!("{step} as VM {id}");
            let result = match f(id).await {
                Ok(answer) => self.wait(&step_id, &answer, self.opts.task_timeout).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return Ok(id),
                Err(e) if fixed.is_none() && e.is_vmid_taken() && attempt < self.opts.retries => {
                    self.retry(vm, &step_id, attempt, &e.to_string()).await;
                }
                Err(e) if e.is_lock_timeout() && attempt < self.opts.retries => {
                    self.retry(vm, &step_id, attempt, &e.to_string()).await;
                }
                Err(e) if e.is_lock_timeout() => {
                    return Err(VmError::StillLocked {
                        step: step_id,
                        attempts: attempt + 1,
                        source: e,
                    });
                }
                Err(e) => return Err(e.into()),
            }
            attempt += 1;
        }
    }
}

/// Carries out `plan` (from [`super::plan`]): the template when a clone needs it, then each VM,
/// then waits for every guest to answer. Running VMs with changes that wait for a boot are
/// rebooted only with `opts.reboot`. On failure the error comes with what was done.
pub async fn apply(
    client: &Client,
    plan: &VmPlan,
    opts: &ApplyOptions,
    events: &(dyn Fn(VmEvent) + Send + Sync),
) -> Result<VmReport, ApplyFailed<VmReport>> {
    let run = Run {
        client,
        opts,
        events,
    };
    let mut report = VmReport {
        endpoint: plan.endpoint.clone(),
        template: match &plan.template {
            TemplatePlan::Existing { vmid, .. } => Some(*vmid),
            TemplatePlan::Make(m) => m.vmid,
        },
        template_made: false,
        vms: plan
            .vms
            .iter()
            .map(|c| VmDone {
                name: c.name.clone(),
                vmid: c.vmid,
                node: c.node.clone(),
                action: c.action,
                done: Vec::new(),
                awaiting_reboot: Vec::new(),
                ready: false,
                address: c.address,
            })
            .collect(),
    };
    macro_rules! fail {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(error) => {
                    return Err(ApplyFailed {
                        error,
                        done: report,
                    })
                }
            }
        };
    }
    let template = match &plan.template {
        TemplatePlan::Existing { vmid, node, .. } => (*vmid, node.clone()),
        TemplatePlan::Make(make) if plan.needs_template() => {
            let vmid = fail!(make_template(&run, make, &mut report).await);
            (vmid, make.node.clone())
        }
        TemplatePlan::Make(make) => (make.vmid.unwrap_or_default(), make.node.clone()),
    };
    for (i, change) in plan.vms.iter().enumerate() {
        fail!(apply_vm(&run, change, &template, &mut report.vms[i]).await);
    }
    for (i, change) in plan.vms.iter().enumerate() {
        let Some(vmid) = report.vms[i].vmid else {
            continue;
        };
        fail!(wait_ready(&run, change, vmid).await);
        report.vms[i].ready = true;
    }
    Ok(report)
}

async fn make_template(
    run: &Run<'_>,
    make: &MakeTemplate,
    report: &mut VmReport,
) -> Result<u32, VmError> {
    let name = make.name.as_str();
    let node = make.node.as_str();
    if make.download {
        let file = make
            .image_volume
            .split_once("import/")
            .map_or(make.image_volume.as_str(), |(_, f)| f);
        let step = format!("download {} to {}", make.url, make.image_volume);
        run.started(name, &step);
        let path = format!("/nodes/{node}/storage/{}/download-url", make.image_storage);
        let form = [
            ("content", "import"),
            ("filename", file),
            ("url", make.url.as_str()),
            ("checksum", make.checksum.as_str()),
            ("checksum-algorithm", make.checksum_algorithm.as_str()),
        ];
        run.call(name, &step, run.opts.download_timeout, || {
            run.client.post(&step, &path, &form)
        })
        .await?;
        run.finished(name, &step);
    }
    let vmid = match (make.create, make.vmid) {
        (false, Some(id)) => id,
        (_, fixed) => {
            let step = format!("create the template VM {name} from {}", make.image_volume);
            run.started(name, &step);
            let disk = format!("{}:0,import-from={}", make.storage, make.image_volume);
            let cloudinit = format!("{}:cloudinit", make.storage);
            let net = format!("virtio,bridge={}", make.bridge);
            let path = format!("/nodes/{node}/qemu");
            let id = run
                .create_with_id(name, &step, fixed, |id| {
                    let (path, disk, cloudinit, net) =
                        (path.clone(), disk.clone(), cloudinit.clone(), net.clone());
                    async move {
                        let id = id.to_string();
                        let form = [
                            ("vmid", id.as_str()),
                            ("name", name),
                            ("ostype", "l26"),
                            ("cores", "2"),
                            ("memory", "2048"),
                            ("scsihw", "virtio-scsi-pci"),
                            (BOOT_DISK, disk.as_str()),
                            ("ide2", cloudinit.as_str()),
                            ("boot", "order=scsi0"),
                            ("serial0", "socket"),
                            ("vga", "serial0"),
                            ("agent", "1"),
                            ("net0", net.as_str()),
                            ("tags", TEMPLATE_TAG),
                        ];
                        run.client
                            .post("create the template VM", &path, &form)
                            .await
                    }
                })
                .await?;
            run.finished(name, &step);
            id
        }
    };
    report.template = Some(vmid);
    let step = format!("convert VM {vmid} ({name}) to a template");
    run.started(name, &step);
    let path = format!("/nodes/{node}/qemu/{vmid}/template");
    run.call(name, &step, run.opts.task_timeout, || {
        run.client.post(&step, &path, &[])
    })
    .await?;
    run.finished(name, &step);
    report.template_made = true;
    Ok(vmid)
}

async fn apply_vm(
    run: &Run<'_>,
    change: &VmChange,
    (template, template_node): &(u32, String),
    done: &mut VmDone,
) -> Result<(), VmError> {
    let name = change.name.as_str();
    let node = change.node.as_str();
    let mut grow = change.grow.clone();
    let vmid = match change.action {
        VmAction::Create => {
            let step = format!("clone template {template}");
            run.started(name, &step);
            let path = format!("/nodes/{template_node}/qemu/{template}/clone");
            let id = run
                .create_with_id(name, &step, change.vmid, |id| {
                    let id = id.to_string();
                    let path = path.clone();
                    async move {
                        let mut form = vec![("newid", id.as_str()), ("name", name), ("full", "1")];
                        if node != template_node {
                            form.push(("target", node));
                        }
                        run.client.post("clone the template", &path, &form).await
                    }
                })
                .await?;
            done.vmid = Some(id);
            done.done.push(format!("cloned from {template}"));
            run.finished(name, &step);
            // The clone's disk is the template's; its size decides the grow.
            let mut vm = ObservedVm {
                vmid: id,
                name: name.to_string(),
                node: node.to_string(),
                ..ObservedVm::default()
            };
            read_config(run.client, &mut vm).await?;
            let to = change.grow.as_ref().map_or(0, |g| g.to_gib);
            grow = match boot_disk(&vm.config) {
                None => {
                    return Err(VmError::NoBootDisk {
                        vm: name.to_string(),
                        vmid: id,
                    });
                }
                Some((disk, Some(have))) if have > to => {
                    return Err(VmError::CloneTooLarge {
                        vm: name.to_string(),
                        vmid: id,
                        disk,
                        from_gib: have,
                        to_gib: to,
                    });
                }
                Some((_, Some(have))) if have == to => None,
                Some((disk, from_gib)) => Some(super::DiskGrow {
                    disk,
                    from_gib,
                    to_gib: to,
                }),
            };
            id
        }
        _ => change.vmid.expect("an existing VM has its VMID"),
    };
    if !change.settings.is_empty() {
        let keys: Vec<&str> = change.settings.iter().map(|s| s.key.as_str()).collect();
        let step = format!("set {}", keys.join(", "));
        run.started(name, &step);
        let path = format!("/nodes/{node}/qemu/{vmid}/config");
        let form: Vec<(&str, &str)> = change
            .settings
            .iter()
            .map(|s| (s.key.as_str(), s.to.as_str()))
            .collect();
        run.call(name, &step, run.opts.task_timeout, || {
            run.client.post(&step, &path, &form)
        })
        .await?;
        done.done.push(step.clone());
        run.finished(name, &step);
    }
    if let Some(g) = &grow {
        let size = format!("{}G", g.to_gib);
        let step = format!("grow {} to {} GiB", g.disk, g.to_gib);
        run.started(name, &step);
        let path = format!("/nodes/{node}/qemu/{vmid}/resize");
        let form = [("disk", g.disk.as_str()), ("size", size.as_str())];
        run.call(name, &step, run.opts.task_timeout, || {
            run.client.put(&step, &path, &form)
        })
        .await?;
        done.done.push(step.clone());
        run.finished(name, &step);
    }
    if change.start {
        let step = "start".to_string();
        run.started(name, &step);
        let path = format!("/nodes/{node}/qemu/{vmid}/status/start");
        run.call(name, &step, run.opts.task_timeout, || {
            run.client.post(&step, &path, &[])
        })
        .await?;
        done.done.push("started".into());
        run.finished(name, &step);
    } else if !change.needs_reboot.is_empty() {
        if run.opts.reboot {
            let step = format!("reboot for {}", change.needs_reboot.join(", "));
            run.started(name, &step);
            let path = format!("/nodes/{node}/qemu/{vmid}/status/reboot");
            run.call(name, &step, run.opts.task_timeout, || {
                run.client.post(&step, &path, &[])
            })
            .await?;
            done.done.push("rebooted".into());
            run.finished(name, &step);
        } else {
            done.awaiting_reboot = change.needs_reboot.clone();
        }
    }
    Ok(())
}

/// The addresses a guest agent reports (`network-get-interfaces`), IPv4 only.
pub fn agent_addresses(answer: &Value) -> Vec<Ipv4Addr> {
    let list = answer.get("result").unwrap_or(answer);
    list.as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| {
            i.get("ip-addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|a| a.get("ip-address")?.as_str()?.parse().ok())
        .collect()
}

async fn wait_ready(run: &Run<'_>, change: &VmChange, vmid: u32) -> Result<(), VmError> {
    let name = change.name.as_str();
    let step = format!("wait for the guest agent to report {}", change.address);
    run.started(name, &step);
    let start = Instant::now();
    let path = format!(
        "/nodes/{}/qemu/{vmid}/agent/network-get-interfaces",
        change.node
    );
    let mut last;
    loop {
        match run.client.get(&step, &path).await {
            Ok(answer) => {
                let seen = agent_addresses(&answer);
                if seen.contains(&change.address) {
                    break;
                }
                last = format!(
                    "the agent reports {}",
                    if seen.is_empty() {
                        "no IPv4 address".to_string()
                    } else {
                        seen.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                );
            }
            // Until the guest has booted its agent does not answer.
            Err(ProxmoxError::Api { message, .. }) => last = message,
            Err(e) => return Err(e.into()),
        }
        if start.elapsed() >= run.opts.ready_timeout {
            return Err(VmError::AgentTimeout {
                vm: name.to_string(),
                vmid,
                address: change.address,
                waited: start.elapsed().as_secs(),
                last,
            });
        }
        tokio::time::sleep(run.opts.poll_every).await;
    }
    run.finished(name, &step);
    let step = format!("wait for SSH on {}:{}", change.address, change.ssh_port);
    run.started(name, &step);
    loop {
        let each = run.opts.ready_timeout.min(Duration::from_secs(10));
        let last = match ssh_banner(change.address, change.ssh_port, each).await {
            Ok(()) => break,
            Err(reason) => reason,
        };
        if start.elapsed() >= run.opts.ready_timeout {
            return Err(VmError::SshTimeout {
                vm: name.to_string(),
                address: change.address,
                port: change.ssh_port,
                waited: start.elapsed().as_secs(),
                last,
            });
        }
        tokio::time::sleep(run.opts.poll_every).await;
    }
    run.finished(name, &step);
    Ok(())
}

/// Whether an SSH server answers on the address: it sends its `SSH-` version line first.
async fn ssh_banner(address: Ipv4Addr, port: u16, within: Duration) -> Result<(), String> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect((address, port))
            .await
            .map_err(|e| format!("cannot connect ({e})"))?;
        let mut buf = [0u8; 4];
        stream
            .read_exact(&mut buf)
            .await
            .map_err(|e| format!("no SSH greeting ({e})"))?;
        if &buf == b"SSH-" {
            Ok(())
        } else {
            Err("something other than SSH answers there".to_string())
        }
    };
    tokio::time::timeout(within, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", within.as_secs_f32())))
}

/// The lab's VMs to remove: those carrying its tag (never a template).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestroyPlan {
    pub endpoint: String,
    pub tag: String,
    pub vms: Vec<DestroyVm>,
    /// VMs with a node's name but without the lab's tag: left alone.
    pub untagged: Vec<DestroyVm>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestroyVm {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    pub running: bool,
}

/// What [`destroy`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestroyReport {
    pub endpoint: String,
    pub destroyed: Vec<DestroyVm>,
}

impl Done for DestroyReport {
    fn lines(&self) -> Vec<String> {
        self.destroyed
            .iter()
            .map(|v| format!("{} ({}): destroyed", v.name, v.vmid))
            .collect()
    }
}

/// The VMs `destroy` removes for the lab. Pure.
pub fn plan_destroy(lab: &homelab_spec::lab::Lab, observed: &Observed) -> DestroyPlan {
    let tag = super::lab_tag(&lab.name);
    let names: Vec<String> = super::desired(lab).into_iter().map(|d| d.name).collect();
    let as_destroy = |v: &ObservedVm| DestroyVm {
        vmid: v.vmid,
        name: v.name.clone(),
        node: v.node.clone(),
        running: v.running,
    };
    DestroyPlan {
        endpoint: lab
            .proxmox
            .as_ref()
            .map(|p| p.endpoint.clone())
            .unwrap_or_default(),
        vms: observed
            .vms
            .iter()
            .filter(|v| !v.template && v.tags.contains(&tag))
            .map(as_destroy)
            .collect(),
        untagged: observed
            .vms
            .iter()
            .filter(|v| !v.template && !v.tags.contains(&tag) && names.contains(&v.name))
            .map(as_destroy)
            .collect(),
        tag,
    }
}

/// Stops and removes the planned VMs with their disks, one at a time.
pub async fn destroy(
    client: &Client,
    plan: &DestroyPlan,
    opts: &ApplyOptions,
    events: &(dyn Fn(VmEvent) + Send + Sync),
) -> Result<DestroyReport, ApplyFailed<DestroyReport>> {
    let run = Run {
        client,
        opts,
        events,
    };
    let mut report = DestroyReport {
        endpoint: plan.endpoint.clone(),
        destroyed: Vec::new(),
    };
    for vm in &plan.vms {
        if let Err(error) = destroy_one(&run, vm).await {
            return Err(ApplyFailed {
                error,
                done: report,
            });
        }
        report.destroyed.push(vm.clone());
    }
    Ok(report)
}

async fn destroy_one(run: &Run<'_>, vm: &DestroyVm) -> Result<(), VmError> {
    let base = format!("/nodes/{}/qemu/{}", vm.node, vm.vmid);
    if vm.running {
        let step = format!("stop VM {}", vm.vmid);
        run.started(&vm.name, &step);
        let path = format!("{base}/status/stop");
        run.call(&vm.name, &step, run.opts.task_timeout, || {
            run.client.post(&step, &path, &[])
        })
        .await?;
        run.finished(&vm.name, &step);
    }
    let step = format!("destroy VM {} and its disks", vm.vmid);
    run.started(&vm.name, &step);
    let path = format!("{base}?purge=1&destroy-unreferenced-disks=1");
    run.call(&vm.name, &step, run.opts.task_timeout, || {
        run.client.delete(&step, &path)
    })
    .await?;
    run.finished(&vm.name, &step);
    Ok(())
}
