//! The VM operation against fakepve (a separate process) and real sshd test hosts standing in
//! for the booted guests: three nodes from nothing, a re-run that writes nothing, a changed VM
//! (grown, rebooted only when asked, a shrink refused), destroy of the tagged VMs only, both
//! logins, and the faults: a held lock, full storage, lost quorum, an expired login, a slow
//! network, a lost VMID race and a failed task, each with a clear error and what was done.

#[path = "../../homelab-proxmox/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use homelab_nodes::Role;
use homelab_nodes::testkit::TestLab;
use homelab_ops::vms::{
    self, ApplyOptions, PlanProblem, TemplatePlan, VmAction, VmError, VmEvent, VmPlan,
};
use homelab_proxmox::{Client, Credentials, Tls};
use homelab_render::SecretValues;
use homelab_spec::lab::Lab;
use secrecy::SecretString;
use serde_json::{Value, json};
use support::FakePve;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHomelabTestKeyOnly you@host";
const TOKEN_ID: &str = "homelab@pve!lab";
const TOKEN: &str = "0b7e-lab-token-x1";
const NODES: [&str; 3] = ["k3s-master", "k3s-worker-1", "k3s-worker-2"];

struct Secrets(BTreeMap<String, String>);

impl SecretValues for Secrets {
    fn secret(&self, name: &str) -> Result<SecretString, String> {
        self.0
            .get(name)
            .map(|v| SecretString::from(v.clone()))
            .ok_or_else(|| format!("`{name}` is not in the secrets file"))
    }
}

fn secrets() -> Secrets {
    Secrets(BTreeMap::from([
        ("proxmox-token".to_string(), TOKEN.to_string()),
        ("proxmox-password".to_string(), "lab-test-pw".to_string()),
    ]))
}

fn template_vm(disk: &str) -> Value {
    json!({"vmid": 9000, "name": "tmpl", "template": true, "config": {
        "scsi0": format!("local-lvm:base-9000-disk-0,size={disk}"),
        "ide2": "local-lvm:vm-9000-cloudinit,media=cdrom",
        "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0",
        "scsihw": "virtio-scsi-pci", "memory": 2048, "cores": 1}})
}

fn fakepve(guests: Vec<Value>, extra: Value) -> FakePve {
    let mut setup = json!({"guests": guests, "guests_boot": true});
    if let Value::Object(m) = extra {
        setup.as_object_mut().unwrap().extend(m);
    }
    FakePve::with_tokens(setup, &[(TOKEN_ID, TOKEN)])
}

/// The lab's spec: three nodes with a `vm:` each at `addresses` in `subnet`, on fakepve.
fn spec(
    pve: &FakePve,
    net: (&str, &str, [String; 3]),
    vms: [&str; 3],
    auth: &str,
    template: &str,
) -> Lab {
    let (subnet, gateway, addresses) = net;
    let base = gateway.rsplit_once('.').unwrap().0;
    let mut nodes = String::new();
    for (i, name) in NODES.iter().enumerate() {
        let role = if i == 0 { "server" } else { "agent" };
        nodes.push_str(&format!(
            "    - name: {name}\n      role: {role}\n      address: {}\n      vm: {}\n",
            addresses[i], vms[i]
        ));
    }
    let text = format!(
        "name: lab
network:
  subnet: {subnet}
  gateway: {gateway}
  domain: home.example.com
  loadBalancerPool: {base}.200-{base}.210
cluster:
  k3sVersion: v1.34.2+k3s1
  nodes:
{nodes}tls:
  acmeEmail: you@example.com
  challenge: {{type: dns01, provider: cloudflare, apiToken: {{secret: cloudflare-api-token}}}}
proxmox:
  endpoint: {}
  node: pve1
  verifyTls: false
{auth}
  sshKeys: [\"{KEY}\"]
  template: {template}
",
        pve.endpoint
    );
    homelab_spec::load_str("homelab.yaml", &text)
        .unwrap_or_else(|e| panic!("{}\n{text}", e.render()))
        .lab
}

const TOKEN_AUTH: &str = "  tokenId: homelab@pve!lab\n  tokenSecret: {secret: proxmox-token}";
const PASSWORD_AUTH: &str = "  user: root@pam\n  password: {secret: proxmox-password}";
const DEFAULT_VMS: [&str; 3] = ["{cores: 4, memory: 8Gi, disk: 40Gi}", "{}", "{vmid: 120}"];

/// Addresses where nothing answers, for tests that stop before the guests are waited for.
fn nowhere() -> (&'static str, &'static str, [String; 3]) {
    (
        "192.168.2.0/24",
        "192.168.2.1",
        ["192.168.2.20", "192.168.2.21", "192.168.2.22"].map(String::from),
    )
}

fn hosts(lab: &TestLab) -> (String, String, [String; 3]) {
    let gw = lab.gateway.clone();
    let subnet = format!("{}.0/24", gw.rsplit_once('.').unwrap().0);
    (subnet, gw, [0, 1, 2].map(|i| lab.hosts[i].ip.clone()))
}

fn test_lab() -> TestLab {
    TestLab::start(&[
        ("k3s-master", Role::Server),
        ("k3s-worker-1", Role::Agent),
        ("k3s-worker-2", Role::Agent),
    ])
}

fn opts() -> ApplyOptions {
    ApplyOptions {
        poll_every: Duration::from_millis(50),
        ready_timeout: Duration::from_secs(30),
        retry_base: Duration::from_millis(100),
        retry_cap: Duration::from_millis(400),
        retries: 4,
        ..ApplyOptions::default()
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<VmEvent>>);

impl Events {
    fn sink(&self) -> impl Fn(VmEvent) + Send + Sync + '_ {
        |e| self.0.lock().unwrap().push(e)
    }
    fn retries(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                VmEvent::Retrying { step, reason, .. } => Some(format!("{step}: {reason}")),
                _ => None,
            })
            .collect()
    }
}

fn client(lab: &Lab) -> Client {
    let mut c = vms::connect(lab.proxmox.as_ref().unwrap(), &secrets()).unwrap();
    c.poll_every = Duration::from_millis(20);
    c
}

async fn planned(c: &Client, lab: &Lab) -> VmPlan {
    vms::plan_live(c, lab)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn config(c: &Client, vmid: u32) -> Value {
    c.get("read", &format!("/nodes/pve1/qemu/{vmid}/config"))
        .await
        .unwrap()
}

fn writes(pve: &FakePve) -> Vec<(String, String)> {
    pve.requests()
        .into_iter()
        .filter(|(m, p)| m != "GET" && !p.ends_with("/access/ticket"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_from_nothing_then_a_rerun_writes_nothing() {
    let hosts_lab = test_lab();
    let pve = fakepve(vec![template_vm("4G")], json!({}));
    let (subnet, gw, addresses) = hosts(&hosts_lab);
    let lab = spec(
        &pve,
        (&subnet, &gw, addresses.clone()),
        DEFAULT_VMS,
        TOKEN_AUTH,
        "9000",
    );
    let c = client(&lab);

    let plan = planned(&c, &lab).await;
    assert!(
        plan.vms.iter().all(|v| v.action == VmAction::Create),
        "{plan:#?}"
    );
    let events = Events::default();
    let report = vms::apply(&c, &plan, &opts(), &events.sink())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.changed());
    assert!(report.vms.iter().all(|v| v.ready), "{report:#?}");
    let ids: Vec<u32> = report.vms.iter().map(|v| v.vmid.unwrap()).collect();
    assert_eq!(ids, [100, 101, 120]);

    for (i, id) in ids.iter().enumerate() {
        let cfg = config(&c, *id).await;
        assert_eq!(cfg["name"], NODES[i]);
        assert_eq!(cfg["tags"], "homelab-lab");
        assert_eq!(cfg["agent"], "1");
        assert_eq!(cfg["ciupgrade"], "0");
        assert_eq!(cfg["ipconfig0"], format!("ip={}/24,gw={gw}", addresses[i]));
        assert_eq!(cfg["nameserver"], gw);
        assert_eq!(
            cfg["sshkeys"],
            "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIHomelabTestKeyOnly%20you%40host"
        );
        let disk = cfg["scsi0"].as_str().unwrap();
        assert!(disk.contains(&format!("vm-{id}-disk-0")), "{disk}");
        let want = if i == 0 { "size=40G" } else { "size=32G" };
        assert!(disk.contains(want), "{disk}");
        let status = c
            .get("status", &format!("/nodes/pve1/qemu/{id}/status/current"))
            .await
            .unwrap();
        assert_eq!(status["status"], "running");
    }
    let first = config(&c, 100).await;
    assert_eq!(
        (first["cores"].as_str(), first["memory"].as_str()),
        (Some("4"), Some("8192"))
    );

    // Again: the plan keeps everything and applying it only reads.
    pve.control(json!({"op": "clear_requests"}));
    let again = planned(&c, &lab).await;
    assert!(!again.writes(), "{again:#?}");
    let report = vms::apply(&c, &again, &opts(), &|_| {}).await.unwrap();
    assert!(!report.changed() && report.vms.iter().all(|v| v.ready));
    assert_eq!(writes(&pve), Vec::<(String, String)>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_vm_grows_and_reboots_only_when_asked_and_a_shrink_is_refused() {
    let hosts_lab = test_lab();
    let pve = fakepve(vec![template_vm("4G")], json!({}));
    let net = hosts(&hosts_lab);
    let net = (net.0.as_str(), net.1.as_str(), net.2.clone());
    // The user + password login, with its ticket and CSRF token.
    let lab = spec(&pve, net.clone(), DEFAULT_VMS, PASSWORD_AUTH, "9000");
    let c = client(&lab);
    vms::apply(&c, &planned(&c, &lab).await, &opts(), &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let bigger = ["{cores: 6, memory: 12Gi, disk: 64Gi}", "{}", "{vmid: 120}"];
    let changed = spec(&pve, net.clone(), bigger, PASSWORD_AUTH, "9000");
    let plan = planned(&c, &changed).await;
    let master = &plan.vms[0];
    assert_eq!(master.action, VmAction::Update);
    assert_eq!(master.needs_reboot, ["cores", "memory"]);
    assert!(plan.vms[1..].iter().all(|v| !v.writes()));

    let report = vms::apply(&c, &plan, &opts(), &|_| {}).await.unwrap();
    assert_eq!(report.vms[0].awaiting_reboot, ["cores", "memory"]);
    assert_eq!(
        report.vms[0].done,
        ["set cores, memory", "grow scsi0 to 64 GiB"]
    );
    let cfg = config(&c, 100).await;
    assert_eq!(
        cfg["cores"], "4",
        "a running VM takes cores at its next boot"
    );
    assert!(cfg["scsi0"].as_str().unwrap().contains("size=64G"), "{cfg}");

    // Still waiting: listed again, nothing set twice.
    let plan = planned(&c, &changed).await;
    assert!(plan.vms[0].settings.is_empty() && plan.vms[0].grow.is_none());
    assert_eq!(plan.vms[0].needs_reboot, ["cores", "memory"]);
    let report = vms::apply(
        &c,
        &plan,
        &ApplyOptions {
            reboot: true,
            ..opts()
        },
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.vms[0].done, ["rebooted"]);
    let cfg = config(&c, 100).await;
    assert_eq!(
        (cfg["cores"].as_str(), cfg["memory"].as_str()),
        (Some("6"), Some("12288"))
    );
    assert!(!planned(&c, &changed).await.writes());

    // Smaller than the disk: refused before anything is written.
    pve.control(json!({"op": "clear_requests"}));
    let smaller = ["{cores: 6, memory: 12Gi, disk: 50Gi}", "{}", "{vmid: 120}"];
    let err = vms::plan_live(&c, &spec(&pve, net, smaller, PASSWORD_AUTH, "9000"))
        .await
        .unwrap_err();
    let VmError::Plan(e) = &err else {
        panic!("{err}")
    };
    assert_eq!(
        e.problems,
        [PlanProblem::Shrink {
            vm: "k3s-master".into(),
            disk: "scsi0".into(),
            from_gib: 64,
            to_gib: 50
        }]
    );
    assert!(err.to_string().contains("never shrunk"), "{err}");
    assert_eq!(writes(&pve), Vec::<(String, String)>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_removes_only_the_lab_tagged_vms() {
    let pve = fakepve(
        vec![
            template_vm("4G"),
            json!({"vmid": 100, "name": "k3s-master", "status": "running",
                   "config": {"tags": "homelab-lab", "scsi0": "local-lvm:vm-100-disk-0,size=32G"}}),
            json!({"vmid": 101, "name": "k3s-worker-1",
                   "config": {"tags": "homelab-lab;extra", "scsi0": "local-lvm:vm-101-disk-0,size=32G"}}),
            json!({"vmid": 102, "name": "k3s-worker-2",
                   "config": {"tags": "mine", "scsi0": "local-lvm:vm-102-disk-0,size=32G"}}),
            json!({"vmid": 103, "name": "other-lab",
                   "config": {"tags": "homelab-other", "scsi0": "local-lvm:vm-103-disk-0,size=32G"}}),
        ],
        json!({}),
    );
    let lab = spec(&pve, nowhere(), DEFAULT_VMS, TOKEN_AUTH, "9000");
    let c = client(&lab);
    let observed = vms::observe(&c, &lab).await.unwrap();
    let plan = vms::plan_destroy(&lab, &observed);
    let ids = |v: &[vms::DestroyVm]| v.iter().map(|v| v.vmid).collect::<Vec<_>>();
    assert_eq!(ids(&plan.vms), [100, 101]);
    assert_eq!(ids(&plan.untagged), [102]);
    let report = vms::destroy(&c, &plan, &opts(), &|_| {}).await.unwrap();
    assert_eq!(ids(&report.destroyed), [100, 101]);
    let left: Vec<u64> = vms::observe(&c, &lab)
        .await
        .unwrap()
        .vms
        .iter()
        .map(|v| v.vmid as u64)
        .collect();
    assert_eq!(left, [102, 103, 9000]);
    // Nothing of the lab is left to destroy.
    let observed = vms::observe(&c, &lab).await.unwrap();
    assert!(vms::plan_destroy(&lab, &observed).vms.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_image_becomes_a_template_once() {
    let hosts_lab = test_lab();
    let pve = fakepve(
        vec![],
        json!({"storages": {"local": {"content": "iso,vztmpl,backup,import"}}}),
    );
    let net = hosts(&hosts_lab);
    let image = "{image: https://cloud-images.example.com/noble-server-cloudimg-amd64.img, checksum: \"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}";
    let lab = spec(
        &pve,
        (&net.0, &net.1, net.2.clone()),
        ["{}", "{}", "{}"],
        TOKEN_AUTH,
        image,
    );
    let c = client(&lab);
    let plan = planned(&c, &lab).await;
    assert!(matches!(&plan.template, TemplatePlan::Make(m) if m.download && m.create));
    let report = vms::apply(&c, &plan, &opts(), &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.template_made);
    let t = report.template.unwrap();
    let cfg = config(&c, t).await;
    assert_eq!(cfg["template"], 1, "{cfg}");
    assert_eq!(cfg["name"], "tmpl-noble-server-cloudimg-amd64");
    assert!(
        cfg["scsi0"]
            .as_str()
            .unwrap()
            .contains("import-from=local:import/noble-server-cloudimg-amd64.qcow2")
            || cfg["scsi0"]
                .as_str()
                .unwrap()
                .starts_with("local-lvm:base-"),
        "{cfg}"
    );
    assert!(report.vms.iter().all(|v| v.ready && v.vmid != Some(t)));
    let again = planned(&c, &lab).await;
    assert!(
        matches!(again.template, TemplatePlan::Existing { vmid, .. } if vmid == t),
        "{again:#?}"
    );
    assert!(!again.writes(), "{again:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_is_waited_out_and_one_never_released_is_a_clear_error() {
    let pve = fakepve(
        vec![
            template_vm("4G"),
            json!({"vmid": 150, "name": "k3s-master", "config": {
                "scsi0": "local-lvm:vm-150-disk-0,size=40G", "ide2": "local-lvm:cloudinit,media=cdrom",
                "net0": "virtio,bridge=vmbr0"}}),
        ],
        json!({}),
    );
    let lab = spec(&pve, nowhere(), DEFAULT_VMS, TOKEN_AUTH, "9000");
    let c = client(&lab);
    let plan = planned(&c, &lab).await;
    assert_eq!(plan.vms[0].action, VmAction::Adopt);

    // Held for good: retried with backoff, then an error naming the lock; the other VMs were
    // not started on, and the report says nothing was changed.
    pve.control(json!({"op": "hold_lock", "vmid": 150, "release_after": null}));
    let events = Events::default();
    let err = vms::apply(&c, &plan, &opts(), &events.sink())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err.error, VmError::StillLocked { attempts: 5, .. }),
        "{text}"
    );
    assert!(
        text.contains("can't lock file") && text.contains("still locked after 5 attempts"),
        "{text}"
    );
    assert!(
        text.contains("nothing was changed before it stopped"),
        "{text}"
    );
    assert_eq!(events.retries().len(), 4);
    let cfg = config(&c, 150).await;
    assert!(cfg.get("tags").is_none(), "{cfg}");

    // Released while we wait: the retry gets through.
    pve.control(json!({"op": "release_lock", "vmid": 150}));
    pve.control(json!({"op": "hold_lock", "vmid": 150, "release_after": 0.3}));
    let events = Events::default();
    let mut fast = opts();
    fast.ready_timeout = Duration::from_millis(200);
    let err = vms::apply(&c, &plan, &fast, &events.sink())
        .await
        .unwrap_err();
    assert!(!events.retries().is_empty());
    // It got as far as waiting for guests that cannot answer here, with everything before
    // that done and reported.
    assert!(
        matches!(
            err.error,
            VmError::AgentTimeout { .. } | VmError::SshTimeout { .. }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("k3s-master (150): set ") && text.contains("cloned from 9000"),
        "{text}"
    );
    assert_eq!(config(&c, 150).await["tags"], "homelab-lab");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_filling_up_mid_run_stops_with_the_task_log_and_what_was_done() {
    let pve = fakepve(
        vec![template_vm("4G")],
        json!({"storages": {"local-lvm": {"avail": 200u64 << 30}}}),
    );
    let lab = spec(&pve, nowhere(), DEFAULT_VMS, TOKEN_AUTH, "9000");
    let c = client(&lab);
    let plan = planned(&c, &lab).await;
    let first_clone_done = std::sync::atomic::AtomicBool::new(false);
    let sink = |e: VmEvent| {
        if let VmEvent::Finished { vm, step } = &e
            && vm == "k3s-master"
            && step.starts_with("clone")
            && !first_clone_done.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            pve.control(
                json!({"op": "storage", "name": "local-lvm", "set": {"avail": 1u64 << 20}}),
            );
        }
    };
    let err = vms::apply(&c, &plan, &opts(), &sink).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("No space left on device"), "{text}");
    assert!(
        text.contains("task log:") && text.contains("TASK ERROR"),
        "{text}"
    );
    assert!(
        text.contains("k3s-master (100): cloned from 9000"),
        "{text}"
    );
    assert_eq!(err.done.vms[1].done, Vec::<String>::new());

    // Known to be full before a run: refused before anything is cloned.
    pve.control(json!({"op": "clear_requests"}));
    let lab2 = spec(&pve, nowhere(), ["{}", "{}", "{}"], TOKEN_AUTH, "9000");
    let err = vms::plan_live(&c, &lab2).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("storage `local-lvm` has 0 GiB free"),
        "{err}"
    );
    assert_eq!(writes(&pve), Vec::<(String, String)>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_quorum_is_refused_before_anything_is_written() {
    let pve = fakepve(vec![template_vm("4G")], json!({}));
    let lab = spec(&pve, nowhere(), DEFAULT_VMS, TOKEN_AUTH, "9000");
    let c = client(&lab);
    pve.control(json!({"op": "lose_quorum"}));
    let err = vms::plan_live(&c, &lab).await.unwrap_err();
    let VmError::Plan(e) = &err else {
        panic!("{err}")
    };
    assert_eq!(e.problems, [PlanProblem::NoQuorum]);
    assert!(err.to_string().contains("no quorum"), "{err}");

    // Lost between the plan and the apply: the first write says so, and nothing is left
    // half-made.
    pve.control(json!({"op": "regain_quorum"}));
    let plan = planned(&c, &lab).await;
    pve.control(json!({"op": "lose_quorum"}));
    let err = vms::apply(&c, &plan, &opts(), &|_| {}).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no quorum") && text.contains("nothing was changed"),
        "{text}"
    );
    pve.control(json!({"op": "regain_quorum"}));
    let observed = vms::observe(&c, &lab).await.unwrap();
    assert_eq!(observed.vms.len(), 1, "only the template: {observed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_login_is_renewed_and_a_revoked_token_is_a_clear_error() {
    let pve = fakepve(vec![template_vm("4G")], json!({}));
    // A ticket that expired (all revoked): the client logs in again once.
    let lab = spec(&pve, nowhere(), DEFAULT_VMS, PASSWORD_AUTH, "9000");
    let c = client(&lab);
    vms::observe(&c, &lab).await.unwrap();
    pve.control(json!({"op": "revoke_tickets"}));
    vms::observe(&c, &lab).await.unwrap();

    // A token the host no longer knows.
    let lab = spec(&pve, nowhere(), DEFAULT_VMS, TOKEN_AUTH, "9000");
    let stale = Client::new(
        &pve.endpoint,
        Credentials::Token {
            id: TOKEN_ID.into(),
            secret: "0b7e-expired-x9".into(),
        },
        Tls::Unverified,
    )
    .unwrap();
    let err = vms::observe(&stale, &lab).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("401") && text.contains("list the Proxmox nodes"),
        "{text}"
    );
    assert!(!text.contains("0b7e-expired-x9"), "{text}");

    // The secret missing from the lab's secrets: named, with what to do.
    let Err(err) = vms::connect(lab.proxmox.as_ref().unwrap(), &Secrets(BTreeMap::new())) else {
        panic!("connected without the secret")
    };
    assert!(
        err.to_string()
            .contains("homelab secrets set proxmox-token"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_network_and_running_tasks_are_waited_for() {
    let hosts_lab = test_lab();
    let pve = fakepve(vec![template_vm("4G")], json!({}));
    let net = hosts(&hosts_lab);
    let lab = spec(
        &pve,
        (&net.0, &net.1, net.2.clone()),
        DEFAULT_VMS,
        TOKEN_AUTH,
        "9000",
    );
    let c = client(&lab);
    let plan = planned(&c, &lab).await;
    // Tasks take PVE seconds now, and every answer comes 0.1s late.
    pve.control(json!({"op": "time_scale", "value": 0.05}));
    pve.control(json!({"op": "latency", "value": 2}));
    let report = vms::apply(&c, &plan, &opts(), &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.vms.iter().all(|v| v.ready));
    let polls = pve
        .requests()
        .iter()
        .filter(|(_, p)| p.contains("/tasks/") && p.ends_with("/status"))
        .count();
    assert!(polls >= 9, "every task's status was read: {polls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_vmid_race_takes_the_next_id_and_a_failed_task_shows_its_log() {
    let pve = fakepve(vec![template_vm("4G")], json!({}));
    let lab = spec(&pve, nowhere(), ["{}", "{}", "{}"], TOKEN_AUTH, "9000");
    let c = client(&lab);
    let plan = planned(&c, &lab).await;
    pve.control(json!({"op": "fail", "method": "POST", "suffix": "/nodes/pve1/qemu/9000/clone",
        "status": 500, "message": "unable to create VM 100: config file already exists", "times": 1}));
    pve.control(
        json!({"op": "fail", "method": "POST", "suffix": "/status/start",
        "error": "qemu_exited_code", "times": 1}),
    );
    let events = Events::default();
    let err = vms::apply(&c, &plan, &opts(), &events.sink())
        .await
        .unwrap_err();
    let retries = events.retries();
    assert!(
        retries.len() == 1 && retries[0].contains("config file already exists"),
        "{retries:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("start") && text.contains("QEMU exited with code 1"),
        "{text}"
    );
    assert!(text.contains("task log:"), "{text}");
    assert!(
        text.contains("k3s-master (100): cloned from 9000, set "),
        "{text}"
    );

    // The next run carries on: the clone is adopted as the lab's and started.
    let again = planned(&c, &lab).await;
    assert_eq!(again.vms[0].vmid, Some(100));
    assert!(
        again.vms[0].start && again.vms[0].settings.is_empty(),
        "{:#?}",
        again.vms[0]
    );
}
