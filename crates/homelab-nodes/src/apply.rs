//! `homelab nodes apply`: converges every host of the inventory (connect, facts, validate,
//! prepare, install or reconfigure the first server, join servers one at a time, join
//! agents, wait for Ready, labels and taints). Re-running on a converged lab changes nothing.
//! It never changes the k3s version of an installed node: that is `upgrade`'s job.

use crate::inventory::{PrepareOptions, UpdateOrigins};
use std::sync::Mutex;

use futures::future::BoxFuture;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::airgap::AirgapFiles;
use crate::cluster::metadata_change;
use crate::common::{self, Connect, GatherFacts};
use crate::error::{HostError, HostErrorKind, NodesError};
use crate::event::{EventSink, Report};
use crate::facts::{AUTO_UPGRADES_PATH, Facts, IMAGES_DIR, NO_REBOOT_PATH};
use crate::history::{self, HistoryEntry};
use crate::inventory::{InstallSource, Inventory, Role};
use crate::k3s_config::{self, CONFIG_PATH, Join, TOKEN_PATH};
use crate::phase::{Mode, OnFailure, Phase, Run, Step, failure_summary};
use crate::shell::quote;
use crate::ssh::{Input, Remote};
use crate::validate;
use crate::version::K3sVersion;

/// Where the airgap installer is put on a host before it runs.
pub(crate) const AIRGAP_INSTALLER_PATH: &str = "/var/lib/rancher/k3s/homelab/install.sh";

/// Options of [`apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Report per host what would change, and change nothing.
    pub dry_run: bool,
}

pub(crate) const AUTO_UPGRADES: &str = "// Written by homelab nodes: refresh package lists and install security updates daily.\n\
APT::Periodic::Update-Package-Lists \"1\";\n\
APT::Periodic::Unattended-Upgrade \"1\";\n";

/// The unattended-upgrades policy file for the lab's update settings: which origins are
/// installed automatically, and whether and when the host may reboot for them.
pub(crate) fn upgrades_policy(prepare: &PrepareOptions) -> String {
    let mut out =
        String::from("// Written by homelab nodes from cluster.osUpdates in homelab.yaml.\n");
    match prepare.updates {
        UpdateOrigins::Security => out.push_str(
            "// Only security updates install by themselves.\n\
#clear Unattended-Upgrade::Origins-Pattern;\n\
#clear Unattended-Upgrade::Allowed-Origins;\n\
Unattended-Upgrade::Origins-Pattern {\n\
        \"origin=${distro_id},codename=${distro_codename}-security\";\n\
        \"origin=${distro_id},archive=${distro_codename}-security\";\n\
        \"origin=Debian,codename=${distro_codename},label=Debian-Security\";\n\
};\n",
        ),
        UpdateOrigins::All => out.push_str(
            "// Every update of the distribution's archives installs by itself.\n\
#clear Unattended-Upgrade::Origins-Pattern;\n\
#clear Unattended-Upgrade::Allowed-Origins;\n\
Unattended-Upgrade::Origins-Pattern {\n\
        \"origin=${distro_id},codename=${distro_codename}\";\n\
        \"origin=${distro_id},codename=${distro_codename}-updates\";\n\
        \"origin=${distro_id},codename=${distro_codename}-security\";\n\
        \"origin=${distro_id},archive=${distro_codename}\";\n\
        \"origin=${distro_id},archive=${distro_codename}-updates\";\n\
        \"origin=${distro_id},archive=${distro_codename}-security\";\n\
        \"origin=Debian,codename=${distro_codename},label=Debian-Security\";\n\
};\n",
        ),
    }
    match &prepare.reboot_at {
        None => out.push_str(
            "// Never reboot by itself: reboots are planned (drain first) instead.\n\
Unattended-Upgrade::Automatic-Reboot \"false\";\n",
        ),
        Some(time) => out.push_str(&format!(
            "// Reboot by itself at {time} when an update needs it (the node is not drained first).\n\
Unattended-Upgrade::Automatic-Reboot \"true\";\n\
Unattended-Upgrade::Automatic-Reboot-Time \"{time}\";\n"
        )),
    }
    out
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What k3s needs on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum K3sAction {
    Install,
    Reconfigure(Vec<String>),
    /// Installed and configured as wanted: restart only if the node is not Ready.
    Check,
}

/// What the etcd snapshot mount needs on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountPlan {
    /// The unit's content, when the file must be (re)written.
    unit: Option<String>,
    enable: bool,
    mount: MountStep,
    /// Mounted, but the file system did not answer: the NAS is down or cut off.
    hung: bool,
    /// Entries on the server's own disk that mounting over the directory hides.
    hidden_entries: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MountStep {
    Keep,
    Start,
    Restart,
}

fn plan_mount(inv: &Inventory, host: &crate::inventory::Host, facts: &Facts) -> Option<MountPlan> {
    let m = inv.snapshot_mount_for(host)?;
    let found = facts.snapshot_mount.clone().unwrap_or_default();
    let unit = m.unit(&inv.lab_name);
    let write = found.unit_sha256.as_deref() != Some(sha256_hex(unit.as_bytes()).as_str());
    let mount = match (&found.mounted, write) {
        (None, _) => MountStep::Start,
        (Some(_), true) => MountStep::Restart,
        (Some(_), false) => MountStep::Keep,
    };
    let plan = MountPlan {
        unit: write.then_some(unit),
        enable: !found.enabled,
        mount,
        hung: found.answers == Some(false),
        hidden_entries: if found.mounted.is_none() {
            found.local_entries
        } else {
            0
        },
    };
    (plan.unit.is_some() || plan.enable || plan.mount != MountStep::Keep || plan.hung)
        .then_some(plan)
}

#[derive(Debug, Clone)]
struct HostPlan {
    join: Join,
    config: String,
    k3s: K3sAction,
    packages: Vec<&'static str>,
    apt_files: Vec<(&'static str, String)>,
    upload_images: Option<(std::path::PathBuf, String)>,
    upload_binary: Option<std::path::PathBuf>,
    mount: Option<MountPlan>,
    /// The NVIDIA container toolkit is to be installed (a GPU host without it), and then
    /// this k3s unit restarted so that it registers the `nvidia` runtime (when k3s runs).
    gpu_toolkit: Option<Option<String>>,
}

struct ApplyState {
    pinned: K3sVersion,
    airgap: Option<AirgapFiles>,
    token_sha256: String,
    plans: Vec<Mutex<Option<HostPlan>>>,
    touched: Vec<Mutex<bool>>,
}

impl ApplyState {
    fn plan(&self, h: usize) -> Option<HostPlan> {
        self.plans[h].lock().expect("plan lock").clone()
    }
}

fn plan_host(run: &Run<'_>, st: &ApplyState, h: usize, facts: &Facts) -> HostPlan {
    let inv = run.inv;
    let host = run.host(h);
    let join = if run.control == Some(h) {
        Join::ClusterInit
    } else {
        Join::Via {
            url: inv.api_url().expect("validated inventory has a server"),
        }
    };
    let config = k3s_config::managed_config(&host.k3s_config, &host.name, &join);
    let k3s = if !facts.k3s_installed() {
        K3sAction::Install
    } else {
        let mut reasons = Vec::new();
        match &facts.k3s_config {
            Some(current) if *current == config => {}
            Some(current) => reasons.push(format!(
                "config.yaml differs ({})",
                k3s_config::describe_difference(current, &config)
            )),
            None => reasons.push("config.yaml is missing".into()),
        }
        if facts.token_sha256.as_deref() != Some(st.token_sha256.as_str()) {
            reasons.push("the token file differs from the lab's token".into());
        }
        if reasons.is_empty() {
            K3sAction::Check
        } else {
            K3sAction::Reconfigure(reasons)
        }
    };
    let mut apt_files = Vec::new();
    if inv.prepare.unattended_upgrades {
        let policy = upgrades_policy(&inv.prepare);
        for (path, content) in [
            (AUTO_UPGRADES_PATH, AUTO_UPGRADES.to_string()),
            (NO_REBOOT_PATH, policy),
        ] {
            if facts.apt_conf_sha256.get(path).map(String::as_str)
                != Some(sha256_hex(content.as_bytes()).as_str())
            {
                apt_files.push((path, content));
            }
        }
    }
    let (mut upload_images, mut upload_binary) = (None, None);
    if let (Some(files), Some(arch)) = (&st.airgap, facts.k3s_arch()) {
        if let Some((path, size)) = files.images.get(arch) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if facts.images.get(&name) != Some(size) {
                upload_images = Some((path.clone(), name));
            }
        }
        if facts.k3s_version.as_ref() != Some(&st.pinned) {
            upload_binary = files.binaries.get(arch).cloned();
        }
    }
    HostPlan {
        join,
        config,
        k3s,
        packages: validate::missing_packages(inv, host, facts),
        apt_files,
        upload_images,
        upload_binary,
        mount: plan_mount(inv, host, facts),
        gpu_toolkit: (host.gpu && !facts.has_nvidia_runtime).then(|| facts.k3s_unit.clone()),
    }
}

struct ReadCluster;

impl Phase for ReadCluster {
    fn title(&self) -> &str {
        "Read cluster state"
    }
    fn hosts(&self, run: &Run<'_>) -> Vec<usize> {
        run.control
            .into_iter()
            .filter(|&c| run.facts(c).is_some_and(|f| f.k3s_installed()))
            .collect()
    }
    fn read_only(&self) -> bool {
        true
    }
    fn on_failure(&self, _run: &Run<'_>, _host: usize) -> OnFailure {
        OnFailure::DropHost
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, host: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(async move {
            // Listed by the facts script already, unless that could not run kubectl.
            let answered = match run.facts(host).and_then(|f| f.cluster_nodes) {
                Some(Ok(json)) => match crate::cluster::parse_nodes(&json) {
                    Ok(nodes) => {
                        *run.cluster.lock().expect("cluster lock") = Some(nodes);
                        true
                    }
                    Err(_) => false,
                },
                Some(Err(_)) => false,
                None => common::refresh_cluster(run).await?,
            };
            if answered {
                let nodes = run
                    .cluster
                    .lock()
                    .expect("cluster lock")
                    .clone()
                    .unwrap_or_default();
                let ready = nodes.iter().filter(|n| n.ready).count();
                Ok(Step::Unchanged(format!(
                    "the cluster has {} nodes, {ready} Ready",
                    nodes.len()
                )))
            } else {
                run.warn(self.title(), host, "k3s is installed but its API did not answer; k3s will be restarted on this server");
                Ok(Step::Unchanged("the API server did not answer".into()))
            }
        })
    }
}

struct Validate<'s> {
    st: &'s ApplyState,
}

impl Phase for Validate<'_> {
    fn title(&self) -> &str {
        "Validate"
    }
    fn hosts(&self, run: &Run<'_>) -> Vec<usize> {
        (0..run.slots.len()).collect()
    }
    fn read_only(&self) -> bool {
        true
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, h: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(async move {
            let host = run.host(h);
            let facts = run.facts(h).ok_or_else(|| {
                HostError::new(
                    &host.name,
                    HostErrorKind::Refused,
                    "no facts were gathered for this host",
                )
            })?;
            let verdict = validate::check(
                run.inv,
                host,
                &facts,
                &self.st.pinned,
                self.st.airgap.as_ref(),
            );
            for w in verdict.warnings {
                run.warn(self.title(), h, w);
            }
            if !verdict.problems.is_empty() {
                return Err(HostError::new(
                    &host.name,
                    HostErrorKind::Refused,
                    verdict.problems.join("; "),
                ));
            }
            *self.st.plans[h].lock().expect("plan lock") = Some(plan_host(run, self.st, h, &facts));
            Ok(Step::Unchanged("the host can run k3s".into()))
        })
    }
}

struct Prepare<'s> {
    st: &'s ApplyState,
}

fn describe_prepare(inv: &Inventory, plan: &HostPlan) -> Option<String> {
    let mut parts = Vec::new();
    if !plan.packages.is_empty() {
        parts.push(format!("install {}", plan.packages.join(", ")));
    }
    for (path, _) in &plan.apt_files {
        parts.push(format!("write {path}"));
    }
    if let Some(restart) = &plan.gpu_toolkit {
        parts.push(format!(
            "install the NVIDIA container toolkit from {}",
            inv.prepare.nvidia_repo
        ));
        if let Some(unit) = restart {
            parts.push(format!(
                "restart {unit} so that k3s registers the nvidia runtime"
            ));
        }
    }
    if let (Some(mp), Some(m)) = (&plan.mount, &inv.prepare.etcd_snapshot_mount) {
        if mp.unit.is_some() {
            parts.push(format!("write {}", m.unit_path()));
        }
        if mp.enable {
            parts.push(format!("enable {}", m.unit_name()));
        }
        match mp.mount {
            MountStep::Start => parts.push(format!(
                "mount {} at {} for the etcd snapshots",
                m.source(),
                m.mount_point()
            )),
            MountStep::Restart => parts.push(format!(
                "remount {} at {} for the etcd snapshots",
                m.source(),
                m.mount_point()
            )),
            MountStep::Keep => {}
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn mount_hung(inv: &Inventory, host: &str) -> String {
    let m = inv
        .prepare
        .etcd_snapshot_mount
        .as_ref()
        .expect("only planned with a mount");
    format!(
        "the etcd snapshot directory {} is mounted from the NAS ({}) but did not answer within {}s: the NAS is down or cut off from {host}, and k3s cannot write its snapshots; check the NAS and the network, then run `homelab nodes apply` again",
        m.mount_point(),
        m.source(),
        crate::facts::MOUNT_ANSWER_SECS
    )
}

/// Mounts the lab's directory of the NAS export at the snapshot directory through its
/// systemd unit, in one remote script. The export is mounted (and the lab's directory made)
/// before anything is written, so an unreachable NAS fails the step with nothing changed.
async fn converge_mount(
    run: &Run<'_>,
    h: usize,
    remote: &Remote,
    mp: &MountPlan,
) -> Result<(), HostError> {
    let inv = run.inv;
    let host = &run.host(h).name;
    let m = inv
        .prepare
        .etcd_snapshot_mount
        .as_ref()
        .expect("only planned with a mount");
    let (unit_path, name) = (quote(&m.unit_path()), quote(&m.unit_name()));
    let mut script = String::from("set -u\n");
    if mp.mount != MountStep::Keep {
        script.push_str(&format!(
            "t=$(mktemp -d) || exit 1\n\
             if ! out=$(timeout -s KILL 60 mount -t nfs -o retry=0 {export} \"$t\" 2>&1); then rmdir \"$t\"; printf '%s\\n' \"$out\" >&2; exit 10; fi\n\
             if ! out=$(mkdir -p \"$t\"/{sub} 2>&1); then umount \"$t\"; rmdir \"$t\"; printf '%s\\n' \"$out\" >&2; exit 11; fi\n\
             umount \"$t\" && rmdir \"$t\"\n",
            export = quote(&m.export_source()),
            sub = quote(m.subdir.trim_matches('/')),
        ));
    }
    if mp.unit.is_some() {
        script.push_str(&format!(
            "umask 022; f=$(mktemp -p /etc/systemd/system) || exit 12\n\
             cat > \"$f\" && chmod 644 \"$f\" && mv -f \"$f\" {unit_path} || {{ rm -f \"$f\"; exit 12; }}\n\
             systemctl daemon-reload || exit 12\n"
        ));
    }
    if mp.enable {
        script.push_str(&format!("systemctl enable {name} || exit 12\n"));
    }
    match mp.mount {
        MountStep::Start => script.push_str(&format!("systemctl start {name} || exit 13\n")),
        MountStep::Restart => script.push_str(&format!("systemctl restart {name} || exit 13\n")),
        MountStep::Keep => {}
    }
    if mp.mount != MountStep::Keep {
        script.push_str(&format!(
            "{} | grep -q . || exit 14\n",
            crate::facts::mounted_at_script(m.mount_point())
        ));
    }
    let input = match &mp.unit {
        Some(unit) => Input::Bytes(unit.as_bytes()),
        None => Input::None,
    };
    let out = remote.exec(&script, input, inv.timeouts.install).await?;
    let said = out
        .stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    let fail = |message: String| Err(HostError::new(host, HostErrorKind::CommandFailed, message));
    match out.status {
        0 => Ok(()),
        10 => fail(format!(
            "the NAS export {} cannot be mounted on {host} ({said}); check that the NAS at {} is up, reachable from {host} and exports {} to it (storage.nfs in homelab.yaml); nothing was changed for the etcd snapshot mount",
            m.export_source(),
            m.server,
            m.export
        )),
        11 => fail(format!(
            "cannot create {} in the NAS export {} ({said}); the export must let root on {host} write (no root squash): k3s writes its snapshots as root",
            m.subdir,
            m.export_source()
        )),
        12 => fail(format!(
            "installing the mount unit {} failed ({said})",
            m.unit_path()
        )),
        13 => fail(format!(
            "systemctl could not mount {} at {} ({said}); see `journalctl -u {}` on {host}",
            m.source(),
            m.mount_point(),
            m.unit_name()
        )),
        14 => fail(format!(
            "{} started but nothing is mounted at {}; see `journalctl -u {}` on {host}",
            m.unit_name(),
            m.mount_point(),
            m.unit_name()
        )),
        _ => Err(crate::ssh::command_failed(
            host,
            "mounting the etcd snapshot directory",
            &out,
        )),
    }
}

impl Phase for Prepare<'_> {
    fn title(&self) -> &str {
        "Prepare hosts"
    }
    fn hosts(&self, run: &Run<'_>) -> Vec<usize> {
        (0..run.slots.len()).collect()
    }
    fn dry_run(&self, run: &Run<'_>, h: usize) -> Option<String> {
        let plan = self.st.plan(h)?;
        if plan.mount.as_ref().is_some_and(|m| m.hung) {
            return Some(format!(
                "would fail: {}",
                mount_hung(run.inv, &run.host(h).name)
            ));
        }
        describe_prepare(run.inv, &plan).map(|d| format!("would {d}"))
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, h: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(async move {
            let plan = self.st.plan(h).expect("validated hosts have a plan");
            if plan.mount.as_ref().is_some_and(|m| m.hung) {
                return Err(HostError::new(
                    &run.host(h).name,
                    HostErrorKind::CommandFailed,
                    mount_hung(run.inv, &run.host(h).name),
                ));
            }
            let Some(what) = describe_prepare(run.inv, &plan) else {
                return Ok(Step::Unchanged(
                    "packages, automatic security updates and mounts are in place".into(),
                ));
            };
            let remote = run.remote(h)?;
            if !plan.packages.is_empty() {
                run.progress(
                    self.title(),
                    h,
                    format!("installing {}", plan.packages.join(", ")),
                );
                let script = format!(
                    "export DEBIAN_FRONTEND=noninteractive; apt-get -o DPkg::Lock::Timeout=300 update -qq && \
                     apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends {}",
                    plan.packages.join(" ")
                );
                remote
                    .run(
                        &format!("installing {}", plan.packages.join(", ")),
                        &script,
                        run.inv.timeouts.install,
                    )
                    .await?;
            }
            for (path, content) in &plan.apt_files {
                remote
                    .write_file(path, content.as_bytes(), 0o644, run.inv.timeouts.command)
                    .await?;
            }
            if let Some(restart) = &plan.gpu_toolkit {
                let what = "installing the NVIDIA container toolkit";
                run.progress(self.title(), h, what.to_string());
                remote
                    .run(
                        what,
                        &crate::gpu::toolkit_script(&run.inv.prepare.nvidia_repo),
                        run.inv.timeouts.install,
                    )
                    .await?;
                if let Some(unit) = restart {
                    remote
                        .run(
                            &format!("restarting {unit} for the nvidia runtime"),
                            &format!("systemctl restart {unit}"),
                            run.inv.timeouts.command,
                        )
                        .await?;
                }
            }
            if let Some(mp) = &plan.mount {
                converge_mount(run, h, remote, mp).await?;
                if mp.mount == MountStep::Start
                    && mp.hidden_entries > 0
                    && let Some(m) = &run.inv.prepare.etcd_snapshot_mount
                {
                    run.warn(
                        self.title(),
                        h,
                        format!(
                            "{} held {} {} on the server's own disk (older snapshots?) that the NAS mount now hides, without deleting them; to keep them, `systemctl stop {}`, move them aside, `systemctl start {}` and copy them in",
                            m.mount_point(),
                            mp.hidden_entries,
                            if mp.hidden_entries == 1 { "entry" } else { "entries" },
                            m.unit_name(),
                            m.unit_name()
                        ),
                    );
                }
            }
            Ok(Step::Changed(what))
        })
    }
}

/// Installs, reconfigures or checks k3s on a set of hosts.
struct ConvergeK3s<'s> {
    st: &'s ApplyState,
    title: &'static str,
    which: fn(&Run<'_>, usize) -> bool,
    mode: Mode,
}

fn join_description(run: &Run<'_>, h: usize, plan: &HostPlan) -> String {
    match (&plan.join, run.host(h).role) {
        (Join::ClusterInit, _) => "as first server (cluster-init)".to_string(),
        (Join::Via { url }, Role::Server) => format!("as server joining {url}"),
        (Join::Via { url }, Role::Agent) => format!("as agent joining {url}"),
    }
}

impl ConvergeK3s<'_> {
    async fn converge(&self, run: &Run<'_>, h: usize) -> Result<Step, HostError> {
        let st = self.st;
        let inv = run.inv;
        let host = run.host(h);
        let plan = st.plan(h).expect("validated hosts have a plan");
        let facts = run.facts(h).expect("validated hosts have facts");
        let remote = run.remote(h)?;
        let verb = match &plan.k3s {
            K3sAction::Install => format!(
                "installed k3s {} {}",
                st.pinned,
                join_description(run, h, &plan)
            ),
            K3sAction::Reconfigure(reasons) => {
                format!("reconfigured and restarted k3s ({})", reasons.join("; "))
            }
            K3sAction::Check => match run.node_view(&host.name) {
                // The view read at the start of the run is enough to know nothing is to be done.
                Some(node) if node.ready && node.kubelet_version == st.pinned.to_string() => {
                    return Ok(Step::Unchanged(format!(
                        "k3s {} is running and the node is Ready",
                        st.pinned
                    )));
                }
                _ => match common::read_node(run, &host.name).await {
                    Ok(Some(node))
                        if node.ready && node.kubelet_version == st.pinned.to_string() =>
                    {
                        return Ok(Step::Unchanged(format!(
                            "k3s {} is running and the node is Ready",
                            st.pinned
                        )));
                    }
                    Ok(Some(node)) => format!(
                        "restarted k3s (the node was NotReady: {})",
                        node.ready_message
                    ),
                    Ok(None) => {
                        "restarted k3s (the node was not registered in the cluster)".to_string()
                    }
                    Err(e) if run.control == Some(h) => format!(
                        "restarted k3s (the API server did not answer: {})",
                        e.message
                    ),
                    Err(e) => return Err(e),
                },
            },
        };
        *st.touched[h].lock().expect("touched lock") = true;
        let t = &inv.timeouts;
        if facts.token_sha256.as_deref() != Some(st.token_sha256.as_str()) {
            remote
                .write_file(
                    TOKEN_PATH,
                    inv.token.expose_secret().as_bytes(),
                    0o600,
                    t.command,
                )
                .await?;
        }
        if facts.k3s_config.as_deref() != Some(plan.config.as_str()) {
            remote
                .write_file(CONFIG_PATH, plan.config.as_bytes(), 0o600, t.command)
                .await?;
        }
        if let Some((local, name)) = &plan.upload_images {
            run.progress(self.title, h, format!("uploading {name}"));
            remote
                .upload(local, &format!("{IMAGES_DIR}/{name}"), 0o644, t.install)
                .await?;
        }
        if let Some(binary) = &plan.upload_binary {
            run.progress(self.title, h, "uploading the k3s binary");
            remote
                .upload(binary, "/usr/local/bin/k3s", 0o755, t.install)
                .await?;
            let out = remote
                .run(
                    "checking the uploaded k3s binary",
                    "/usr/local/bin/k3s --version",
                    t.command,
                )
                .await?;
            let got = crate::version::from_version_output(&out);
            if got.as_ref() != Some(&st.pinned) {
                return Err(HostError::new(
                    &host.name,
                    HostErrorKind::Refused,
                    format!(
                        "the k3s binary in the airgap directory is {}, but {} is pinned; put the pinned release's files in the airgap directory",
                        got.map(|v| v.to_string())
                            .unwrap_or_else(|| "not a k3s binary".into()),
                        st.pinned
                    ),
                ));
            }
        }
        run.progress(self.title, h, "running the k3s installer");
        run_installer(run, remote, host.role, &st.pinned, &inv.install).await?;
        common::wait_ready(run, self.title, h, Some(&st.pinned)).await?;
        if run.control == Some(h) {
            common::refresh_cluster(run).await?;
        }
        if plan.k3s == K3sAction::Install {
            let entry = HistoryEntry::now(
                "install",
                &host.name,
                host.role.k3s_command(),
                facts.k3s_version.as_ref().map(|v| v.to_string()),
                Some(st.pinned.to_string()),
                true,
                None,
            );
            history::append(run.control_remote()?, &[entry], t.command).await?;
        }
        Ok(Step::Changed(verb))
    }
}

/// Runs the k3s installer for `role` (it writes the unit and (re)starts k3s).
pub(crate) async fn run_installer(
    run: &Run<'_>,
    remote: &Remote,
    role: Role,
    version: &K3sVersion,
    install: &InstallSource,
) -> Result<(), HostError> {
    let t = &run.inv.timeouts;
    let cmd = role.k3s_command();
    let script = match install {
        InstallSource::Online { installer_url } => {
            let url = quote(installer_url);
            format!(
                "set -e; t=$(mktemp -d); trap 'rm -rf \"$t\"' EXIT; \
                 if ! curl -sfL --retry 3 --connect-timeout 20 -o \"$t/install.sh\" {url}; then \
                 echo \"could not download the k3s installer from \"{url} >&2; exit 1; fi; \
                 INSTALL_K3S_VERSION={v} sh \"$t/install.sh\" {cmd}",
                v = quote(&version.to_string())
            )
        }
        InstallSource::Airgap { dir } => {
            remote
                .upload(
                    &dir.join("install.sh"),
                    AIRGAP_INSTALLER_PATH,
                    0o755,
                    t.command,
                )
                .await?;
            format!("INSTALL_K3S_SKIP_DOWNLOAD=true sh {AIRGAP_INSTALLER_PATH} {cmd}")
        }
    };
    remote
        .run("running the k3s installer", &script, t.install)
        .await
        .map(|_| ())
}

impl Phase for ConvergeK3s<'_> {
    fn title(&self) -> &str {
        self.title
    }
    fn hosts(&self, run: &Run<'_>) -> Vec<usize> {
        (0..run.slots.len())
            .filter(|&h| (self.which)(run, h))
            .collect()
    }
    fn mode(&self) -> Mode {
        self.mode
    }
    fn dry_run(&self, run: &Run<'_>, h: usize) -> Option<String> {
        let plan = self.st.plan(h)?;
        let mut parts = Vec::new();
        match &plan.k3s {
            K3sAction::Install => parts.push(format!(
                "would install k3s {} {}",
                self.st.pinned,
                join_description(run, h, &plan)
            )),
            K3sAction::Reconfigure(reasons) => parts.push(format!(
                "would reconfigure and restart k3s: {}",
                reasons.join("; ")
            )),
            K3sAction::Check => match run.node_view(&run.host(h).name) {
                Some(node) if !node.ready => parts.push(format!(
                    "would restart k3s: the node is NotReady ({})",
                    node.ready_message
                )),
                _ => {}
            },
        }
        if let Some((_, name)) = &plan.upload_images {
            parts.push(format!("would upload {name}"));
        }
        if plan.upload_binary.is_some() {
            parts.push("would upload the k3s binary".into());
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, h: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(self.converge(run, h))
    }
}

struct NodeMetadata<'s> {
    st: &'s ApplyState,
}

impl Phase for NodeMetadata<'_> {
    fn title(&self) -> &str {
        "Labels and taints"
    }
    fn hosts(&self, run: &Run<'_>) -> Vec<usize> {
        (0..run.slots.len()).collect()
    }
    fn dry_run(&self, run: &Run<'_>, h: usize) -> Option<String> {
        let host = run.host(h);
        match run.node_view(&host.name) {
            Some(node) => {
                let change = metadata_change(host, &node);
                let lines = change.describe();
                (!change.is_empty() && !lines.is_empty())
                    .then(|| format!("would {}", lines.join("; ")))
            }
            None if host.labels.is_empty() && host.taints.is_empty() => None,
            None => Some(format!(
                "would set labels [{}] and taints [{}] once the node has joined",
                host.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                host.taints
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, h: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(async move {
            let host = run.host(h);
            let touched = *self.st.touched[h].lock().expect("touched lock");
            let cached = if touched {
                None
            } else {
                run.node_view(&host.name)
            };
            let node = match cached {
                Some(n) => n,
                None => common::read_node(run, &host.name).await?.ok_or_else(|| {
                    HostError::new(
                        &host.name,
                        HostErrorKind::CommandFailed,
                        "the node is not registered in the cluster",
                    )
                })?,
            };
            let change = metadata_change(host, &node);
            if change.is_empty() {
                return Ok(Step::Unchanged("labels and taints are as specified".into()));
            }
            for cmd in change.commands(&host.name) {
                run.control_remote()?
                    .run("setting labels and taints", &cmd, run.inv.timeouts.command)
                    .await?;
            }
            let lines = change.describe();
            Ok(Step::Changed(lines.join("; ")))
        })
    }
}

fn is_control(run: &Run<'_>, h: usize) -> bool {
    run.control == Some(h)
}
fn is_other_server(run: &Run<'_>, h: usize) -> bool {
    run.control != Some(h) && run.host(h).role == Role::Server
}
fn is_agent(run: &Run<'_>, h: usize) -> bool {
    run.host(h).role == Role::Agent
}

/// Checks the inventory before any host is contacted.
pub(crate) fn preflight(inv: &Inventory) -> Result<(K3sVersion, Option<AirgapFiles>), NodesError> {
    let problems = inv.problems();
    if !problems.is_empty() {
        return Err(NodesError::InvalidInventory { problems });
    }
    let pinned = inv
        .pinned_version()
        .map_err(|e| NodesError::InvalidInventory { problems: vec![e] })?;
    let airgap = match &inv.install {
        InstallSource::Airgap { dir } => Some(AirgapFiles::scan(dir)?),
        InstallSource::Online { .. } => None,
    };
    Ok((pinned, airgap))
}

pub(crate) fn first_server_index(inv: &Inventory) -> Option<usize> {
    inv.hosts.iter().position(|h| h.role == Role::Server)
}

/// Converges every host of `inv` and reports per host. With `dry_run`, only connects,
/// gathers facts and validates, and reports what each phase would change.
pub async fn apply(
    inv: &Inventory,
    opts: &ApplyOptions,
    events: &dyn EventSink,
) -> Result<Report, NodesError> {
    let (pinned, airgap) = preflight(inv)?;
    let n = inv.hosts.len();
    let st = ApplyState {
        pinned,
        airgap,
        token_sha256: sha256_hex(inv.token.expose_secret().as_bytes()),
        plans: (0..n).map(|_| Mutex::new(None)).collect(),
        touched: (0..n).map(|_| Mutex::new(false)).collect(),
    };
    let mut run = Run::new(inv, events, opts.dry_run, first_server_index(inv));
    let all: Vec<usize> = (0..n).collect();
    let connect = Connect {
        hosts: all.clone(),
        on_failure: OnFailure::DropHost,
        prefetch_facts: Some(true),
    };
    let facts = GatherFacts {
        hosts: all,
        on_failure: OnFailure::DropHost,
        with_nodes: true,
    };
    let validate = Validate { st: &st };
    let prepare = Prepare { st: &st };
    let first = ConvergeK3s {
        st: &st,
        title: "Install first server",
        which: is_control,
        mode: Mode::OneAtATime,
    };
    let servers = ConvergeK3s {
        st: &st,
        title: "Join servers",
        which: is_other_server,
        mode: Mode::OneAtATime,
    };
    let agents = ConvergeK3s {
        st: &st,
        title: "Join agents",
        which: is_agent,
        mode: Mode::Parallel,
    };
    let metadata = NodeMetadata { st: &st };
    run.execute(&[
        &connect,
        &facts,
        &ReadCluster,
        &validate,
        &prepare,
        &first,
        &servers,
        &agents,
        &metadata,
    ])
    .await;
    run.close().await;
    finish("nodes apply", run.report())
}

/// `Ok(report)` when every host succeeded, the `Incomplete` error otherwise.
pub(crate) fn finish(operation: &str, report: Report) -> Result<Report, NodesError> {
    if report.is_success() {
        Ok(report)
    } else {
        Err(NodesError::Incomplete {
            operation: operation.into(),
            summary: failure_summary(&report),
            report: Box::new(report),
        })
    }
}

#[cfg(test)]
mod upgrades_policy_tests {
    use super::upgrades_policy;
    use crate::inventory::{PrepareOptions, UpdateOrigins};

    #[test]
    fn security_only_and_never_reboot_by_default() {
        let text = upgrades_policy(&PrepareOptions::default());
        assert!(text.contains("codename=${distro_codename}-security"));
        assert!(!text.contains("codename=${distro_codename}-updates"));
        assert!(text.contains("Unattended-Upgrade::Automatic-Reboot \"false\";"));
        assert!(!text.contains("Automatic-Reboot-Time"));
    }

    #[test]
    fn all_updates_and_a_reboot_time_when_asked() {
        let prepare = PrepareOptions {
            updates: UpdateOrigins::All,
            reboot_at: Some("03:30".into()),
            ..PrepareOptions::default()
        };
        let text = upgrades_policy(&prepare);
        assert!(text.contains("codename=${distro_codename}-updates"));
        assert!(text.contains("Unattended-Upgrade::Automatic-Reboot \"true\";"));
        assert!(text.contains("Unattended-Upgrade::Automatic-Reboot-Time \"03:30\";"));
    }
}
