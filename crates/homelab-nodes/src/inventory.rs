//! The input of every node operation: the lab's hosts, how to reach them and which k3s they
//! get. Pure data and its validation; this module does no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::k3s_config;
use crate::version::K3sVersion;

/// Where the k3s installer gets from online, unless the inventory says otherwise.
pub const DEFAULT_INSTALLER_URL: &str = "https://get.k3s.io";

/// Everything the node engine needs to know about a lab, independent of the spec format.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The lab's name: the kubeconfig cluster, user and context are named after it.
    pub lab_name: String,
    /// The pinned k3s release, e.g. `v1.31.2+k3s1`.
    pub k3s_version: String,
    /// Where the installer, binary and images come from.
    pub install: InstallSource,
    /// Host name or IP that joining nodes and the kubeconfig use for the API server
    /// (port 6443). `None` means the first server's address.
    pub api_endpoint: Option<String>,
    /// The hosts, in spec order. The first host with role `Server` is the first server:
    /// it initialises the cluster (`cluster-init`), runs cluster-side commands and keeps
    /// the history.
    pub hosts: Vec<Host>,
    /// The cluster join token. Written to a mode-0600 token file on each host, never into
    /// `config.yaml`, an argument list or a log.
    pub token: SecretString,
    /// Passwords for `sudo`, by host name, for hosts whose SSH user is not root and whose
    /// sudo asks for one.
    pub sudo_passwords: BTreeMap<String, SecretString>,
    /// SSH client settings shared by all hosts.
    pub ssh: SshOptions,
    /// How many hosts are worked on at the same time.
    pub parallelism: usize,
    /// How long each kind of step may take.
    pub timeouts: Timeouts,
    /// Thresholds the validation phase enforces.
    pub limits: Limits,
    /// What the prepare phase sets up on each host.
    pub prepare: PrepareOptions,
}

/// Where k3s comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallSource {
    /// Each host downloads the installer from `installer_url` and the pinned release from
    /// GitHub (through `INSTALL_K3S_VERSION`).
    Online {
        /// The installer script's address (`https://get.k3s.io` unless mirrored).
        installer_url: String,
    },
    /// Hosts have no internet access: the installer (`install.sh`), the binary (`k3s`,
    /// `k3s-arm64` or `k3s-armhf`) and the images archive (`k3s-airgap-images-<arch>.tar[.zst|.gz]`)
    /// are uploaded from this local directory.
    Airgap {
        /// Local directory holding the k3s release files.
        dir: PathBuf,
    },
}

impl Default for InstallSource {
    fn default() -> Self {
        InstallSource::Online {
            installer_url: DEFAULT_INSTALLER_URL.to_string(),
        }
    }
}

/// One machine of the lab.
#[derive(Debug, Clone)]
pub struct Host {
    /// The Kubernetes node name (DNS-1123: lowercase letters, digits, `-` and `.`).
    pub name: String,
    /// Server (control plane + embedded etcd) or agent.
    pub role: Role,
    /// IP or DNS name of the host on the lab network; used for SSH unless
    /// `ssh.destination` says otherwise, and for the API endpoint of the first server.
    pub address: String,
    /// How to log in.
    pub ssh: SshTarget,
    /// Node labels this tool manages (others on the node are left alone).
    pub labels: BTreeMap<String, String>,
    /// Node taints this tool manages.
    pub taints: Vec<Taint>,
    /// The host has an NVIDIA GPU that pods use through the `nvidia` runtime class.
    pub gpu: bool,
    /// The k3s configuration for this host, rendered elsewhere. The node engine adds the
    /// keys it owns (`node-name`, `token-file`, `cluster-init`/`server`) and writes the
    /// result to `/etc/rancher/k3s/config.yaml`.
    pub k3s_config: String,
}

/// A node's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Runs the control plane and an embedded etcd member.
    Server,
    /// Runs workloads only.
    Agent,
}

impl Role {
    /// The k3s subcommand for this role.
    pub fn k3s_command(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Agent => "agent",
        }
    }

    /// The systemd unit the installer creates for this role.
    pub fn unit(self) -> &'static str {
        match self {
            Role::Server => "k3s",
            Role::Agent => "k3s-agent",
        }
    }

    /// The uninstall script the installer leaves for this role.
    pub fn uninstall_script(self) -> &'static str {
        match self {
            Role::Server => "/usr/local/bin/k3s-uninstall.sh",
            Role::Agent => "/usr/local/bin/k3s-agent-uninstall.sh",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.k3s_command())
    }
}

/// How to reach a host over SSH. Anything left `None` comes from the user's SSH
/// configuration (`~/.ssh/config` or `SshOptions::config_file`), as with plain `ssh`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshTarget {
    /// Login user; `None` lets the SSH configuration decide.
    pub user: Option<String>,
    /// SSH port; `None` lets the SSH configuration decide (22 by default).
    pub port: Option<u16>,
    /// Private key to use (and only that key); `None` uses the agent and configured keys.
    pub identity_file: Option<PathBuf>,
    /// What to give `ssh` as destination instead of the address, e.g. a `Host` alias from
    /// the SSH configuration that sets `ProxyJump`.
    pub destination: Option<String>,
}

/// SSH client settings for all hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshOptions {
    /// An SSH configuration file used instead of `~/.ssh/config` (`ssh -F`).
    pub config_file: Option<PathBuf>,
    /// Where the multiplexing control sockets live. By default the user's runtime directory
    /// (`$XDG_RUNTIME_DIR/homelab-ssh`) or cache directory (`~/.cache/homelab/ssh`) when
    /// connections are kept, the system temporary directory otherwise. A directory used for
    /// kept connections is made mode 0700.
    pub control_dir: Option<PathBuf>,
    /// Keep each host's SSH master connection open for this long after its last use, for the
    /// next run to reuse (as `ControlPersist`); `None` closes them at the end of every
    /// operation.
    pub keep_connections: Option<std::time::Duration>,
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Taint {
    /// Taint key, e.g. `nvidia.com/gpu`.
    pub key: String,
    /// Optional value.
    pub value: Option<String>,
    /// What the taint does to pods that do not tolerate it.
    pub effect: TaintEffect,
}

impl fmt::Display for Taint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={}:{}", self.key, v, self.effect),
            None => write!(f, "{}:{}", self.key, self.effect),
        }
    }
}

/// Kubernetes taint effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaintEffect {
    /// New pods are not scheduled without a toleration.
    NoSchedule,
    /// The scheduler avoids the node when it can.
    PreferNoSchedule,
    /// Running pods without a toleration are evicted.
    NoExecute,
}

impl TaintEffect {
    /// The effect as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "NoSchedule" => Some(TaintEffect::NoSchedule),
            "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
            "NoExecute" => Some(TaintEffect::NoExecute),
            _ => None,
        }
    }
}

impl fmt::Display for TaintEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long each kind of step may take before it is reported as failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the SSH connection.
    pub connect: Duration,
    /// An ordinary remote command.
    pub command: Duration,
    /// Running the installer (download included).
    pub install: Duration,
    /// A node becoming Ready after install, upgrade or restart.
    pub ready: Duration,
    /// Draining a node (PodDisruptionBudgets may hold pods back).
    pub drain: Duration,
    /// k3s removing a server's etcd member after it was asked to.
    pub etcd_member_removal: Duration,
    /// Pause between two checks while waiting.
    pub poll_interval: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(120),
            install: Duration::from_secs(600),
            ready: Duration::from_secs(300),
            drain: Duration::from_secs(300),
            etcd_member_removal: Duration::from_secs(180),
            poll_interval: Duration::from_secs(2),
        }
    }
}

/// Thresholds the validation phase enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest tolerated difference between a host's clock and this machine's. etcd
    /// members complain above one second of drift between each other.
    pub max_clock_skew: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clock_skew: Duration::from_secs(2),
        }
    }
}

/// What the prepare phase sets up on each host (Debian/Ubuntu hosts, through apt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareOptions {
    /// Install `nfs-common`, which NFS-backed volumes need on every node.
    pub nfs_common: bool,
    /// Install `unattended-upgrades` and enable daily automatic updates.
    pub unattended_upgrades: bool,
    /// Which updates install by themselves.
    pub updates: UpdateOrigins,
    /// `HH:MM` at which a host may reboot by itself when an update needs it; `None`: never.
    pub reboot_at: Option<String>,
    /// An NFS export mounted on every server at the etcd snapshot directory, so that the
    /// snapshots survive the loss of a server; `None`: they stay on the servers' own disks.
    pub etcd_snapshot_mount: Option<SnapshotMount>,
    /// NVIDIA's package repository, from which GPU hosts get the container toolkit
    /// (a mirror's address in place of [`crate::gpu::NVIDIA_REPO`]).
    pub nvidia_repo: String,
}

/// A directory of an NFS export that a systemd mount unit mounts on every server (ADR 0105).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMount {
    /// The NFS server (address or host name).
    pub server: String,
    /// The path the server exports (`storage.nfs.path`).
    pub export: String,
    /// The lab's directory inside the export, relative to it; created when missing.
    pub subdir: String,
    /// Where it is mounted on the servers: k3s's `etcd-snapshot-dir`.
    pub dir: String,
}

impl SnapshotMount {
    /// The export's path on the server, without a trailing slash (`/` stays `/`).
    fn export_path(&self) -> &str {
        match self.export.trim_end_matches('/') {
            "" => "/",
            p => p,
        }
    }

    /// What is mounted: `server:/export/subdir`.
    pub fn source(&self) -> String {
        format!("{}:{}", self.server, self.subdir_path())
    }

    /// The mounted directory's path on the server.
    pub(crate) fn subdir_path(&self) -> String {
        let sub = self.subdir.trim_matches('/');
        match self.export_path() {
            "/" => format!("/{sub}"),
            e => format!("{e}/{sub}"),
        }
    }

    /// The export itself: `server:/export` (mounted once to create the lab's directory).
    pub(crate) fn export_source(&self) -> String {
        format!("{}:{}", self.server, self.export_path())
    }

    /// The mount point without a trailing slash.
    pub(crate) fn mount_point(&self) -> &str {
        match self.dir.trim_end_matches('/') {
            "" => "/",
            d => d,
        }
    }

    /// The systemd unit's name: the mount point escaped as `systemd-escape --path` does,
    /// plus `.mount` (systemd requires that name for the unit of that mount point).
    pub fn unit_name(&self) -> String {
        let mut out = String::new();
        let parts: Vec<&str> = self
            .mount_point()
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() {
            out.push('-');
        }
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.push('-');
            }
            for (j, b) in part.bytes().enumerate() {
                let plain = b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'.';
                if plain && !(i == 0 && j == 0 && b == b'.') {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
        }
        out.push_str(".mount");
        out
    }

    /// The unit file's path on the servers.
    pub fn unit_path(&self) -> String {
        format!("/etc/systemd/system/{}", self.unit_name())
    }

    /// The mount unit's content. Ordered before k3s and wanted by it, but not required: a NAS
    /// that is down at boot must not keep the cluster from starting (ADR 0105).
    pub fn unit(&self, lab: &str) -> String {
        format!(
            "# Written by `homelab nodes apply` from homelab.yaml (storage.nfs and\n\
             # cluster.etcdSnapshots.dir): lab {lab}'s etcd snapshots go to the NAS, so that they\n\
             # survive the loss of this server. Changes here are overwritten by the next apply.\n\
             [Unit]\n\
             Description=etcd snapshots of lab {lab} on the NAS ({source})\n\
             Wants=network-online.target\n\
             After=network-online.target\n\
             Before=k3s.service\n\
             \n\
             [Mount]\n\
             What={source}\n\
             Where={dir}\n\
             Type=nfs\n\
             Options=hard,noatime,_netdev\n\
             TimeoutSec=60\n\
             \n\
             [Install]\n\
             WantedBy=remote-fs.target k3s.service\n",
            source = self.source(),
            dir = self.mount_point(),
        )
    }

    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let bad_char = |s: &str| s.chars().any(|c| c.is_whitespace() || c.is_control());
        if self.server.trim().is_empty() || bad_char(&self.server) || self.server.contains('/') {
            out.push(format!(
                "the NFS server {:?} for the etcd snapshots is not a host name or address",
                self.server
            ));
        }
        if !self.export.starts_with('/') || bad_char(&self.export) {
            out.push(format!(
                "the NFS export {:?} for the etcd snapshots must be an absolute path without spaces",
                self.export
            ));
        }
        let sub = self.subdir.trim_matches('/');
        if sub.is_empty() || bad_char(sub) || sub.split('/').any(|p| p == ".." || p == ".") {
            out.push(format!(
                "the etcd snapshots' directory {:?} inside the NFS export must be a relative path without `.`, `..` or spaces",
                self.subdir
            ));
        }
        if !self.dir.starts_with('/') || self.mount_point() == "/" || bad_char(&self.dir) {
            out.push(format!(
                "the etcd snapshot directory {:?} must be an absolute path other than / and without spaces",
                self.dir
            ));
        }
        out
    }
}

/// The archives unattended-upgrades installs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdateOrigins {
    /// Security updates only.
    #[default]
    Security,
    /// Every update of the distribution (security, updates and the release itself).
    All,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions {
            nfs_common: true,
            unattended_upgrades: true,
            updates: UpdateOrigins::Security,
            reboot_at: None,
            etcd_snapshot_mount: None,
            nvidia_repo: crate::gpu::NVIDIA_REPO.to_string(),
        }
    }
}

impl Inventory {
    /// An inventory with default install source, SSH options, parallelism, timeouts,
    /// limits and prepare options.
    pub fn new(
        lab_name: impl Into<String>,
        k3s_version: impl Into<String>,
        token: SecretString,
        hosts: Vec<Host>,
    ) -> Self {
        Inventory {
            lab_name: lab_name.into(),
            k3s_version: k3s_version.into(),
            install: InstallSource::default(),
            api_endpoint: None,
            hosts,
            token,
            sudo_passwords: BTreeMap::new(),
            ssh: SshOptions::default(),
            parallelism: 10,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            prepare: PrepareOptions::default(),
        }
    }

    /// The etcd snapshot mount host `host` gets: servers only, as agents keep no etcd.
    pub(crate) fn snapshot_mount_for(&self, host: &Host) -> Option<&SnapshotMount> {
        self.prepare
            .etcd_snapshot_mount
            .as_ref()
            .filter(|_| host.role == Role::Server)
    }

    /// The first host with role `Server`, if any.
    pub fn first_server(&self) -> Option<&Host> {
        self.hosts.iter().find(|h| h.role == Role::Server)
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The position of the host named `name`, or the error that lists the names there are.
    pub(crate) fn host_index(&self, name: &str) -> Result<usize, crate::NodesError> {
        self.hosts
            .iter()
            .position(|h| h.name == name)
            .ok_or_else(|| crate::NodesError::UnknownHost {
                name: name.to_string(),
                known: self
                    .hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The address joining nodes and kubeconfigs use for the API server.
    pub fn api_address(&self) -> Option<&str> {
        self.api_endpoint
            .as_deref()
            .or_else(|| self.first_server().map(|h| h.address.as_str()))
    }

    /// The URL joining nodes put in `server:`.
    pub fn api_url(&self) -> Option<String> {
        self.api_address().map(api_url_for)
    }

    /// The pinned version, parsed.
    pub(crate) fn pinned_version(&self) -> Result<K3sVersion, String> {
        self.k3s_version.parse()
    }

    /// Every problem with the inventory itself, before any host is contacted. Empty when
    /// the inventory can be worked with.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.lab_name.trim().is_empty()
            || self
                .lab_name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            problems.push(format!(
                "lab name {:?} cannot name a kubeconfig context: use letters, digits, '-' or '.' without spaces",
                self.lab_name
            ));
        }
        if let Err(e) = self.pinned_version() {
            problems.push(format!("k3s version: {e}"));
        }
        match &self.install {
            InstallSource::Online { installer_url } => {
                if !(installer_url.starts_with("https://") || installer_url.starts_with("http://"))
                {
                    problems.push(format!("installer URL {installer_url:?} must start with https:// (or http:// for a local mirror)"));
                }
            }
            InstallSource::Airgap { dir } => {
                if dir.as_os_str().is_empty() {
                    problems.push("airgap install needs the directory that holds install.sh, the k3s binary and the images archive".into());
                }
            }
        }
        if let Some(mount) = &self.prepare.etcd_snapshot_mount {
            problems.extend(mount.problems());
        }
        if self.parallelism == 0 {
            problems.push("parallelism must be at least 1".into());
        }
        if self.hosts.is_empty() {
            problems.push("the lab has no hosts: add at least one server".into());
        } else if self.first_server().is_none() {
            problems.push("the lab has no server: give at least one host role server (the first one initialises the cluster)".into());
        }
        if let Some(endpoint) = &self.api_endpoint
            && (endpoint.trim().is_empty()
                || endpoint.contains('/')
                || endpoint.contains(char::is_whitespace))
        {
            problems.push(format!("API endpoint {endpoint:?} must be a host name or IP address, without scheme or path"));
        }
        let mut names = BTreeSet::new();
        let mut addresses = BTreeSet::new();
        for host in &self.hosts {
            let at = format!("host {:?}", host.name);
            if !is_dns_subdomain(&host.name) {
                problems.push(format!(
                    "{at}: the name must be a valid Kubernetes node name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)"
                ));
            }
            if !names.insert(host.name.as_str()) {
                problems.push(format!(
                    "{at}: the name is used by two hosts; node names must be unique"
                ));
            }
            if host.address.trim().is_empty() || host.address.contains(char::is_whitespace) {
                problems.push(format!(
                    "{at}: address {:?} is not a host name or IP address",
                    host.address
                ));
            } else if !addresses.insert(host.address.as_str()) {
                problems.push(format!(
                    "{at}: address {} is used by two hosts",
                    host.address
                ));
            }
            if let Some(user) = &host.ssh.user
                && (user.is_empty() || user.contains(|c: char| c.is_whitespace() || c == '@'))
            {
                problems.push(format!("{at}: SSH user {user:?} is not a valid login name"));
            }
            if host.ssh.port == Some(0) {
                problems.push(format!("{at}: SSH port 0 is not a port"));
            }
            for (key, value) in &host.labels {
                if let Err(e) = check_qualified_name(key) {
                    problems.push(format!("{at}: label key {key:?}: {e}"));
                }
                if let Err(e) = check_label_value(value) {
                    problems.push(format!("{at}: label {key:?} value {value:?}: {e}"));
                }
            }
            let mut taint_keys = BTreeSet::new();
            for taint in &host.taints {
                if let Err(e) = check_qualified_name(&taint.key) {
                    problems.push(format!("{at}: taint key {:?}: {e}", taint.key));
                }
                if let Some(v) = &taint.value
                    && let Err(e) = check_label_value(v)
                {
                    problems.push(format!("{at}: taint {:?} value {v:?}: {e}", taint.key));
                }
                if !taint_keys.insert((taint.key.as_str(), taint.effect)) {
                    problems.push(format!(
                        "{at}: taint {}:{} is listed twice",
                        taint.key, taint.effect
                    ));
                }
            }
            if let Err(e) = k3s_config::check_rendered(&host.k3s_config) {
                problems.push(format!("{at}: k3s config: {e}"));
            }
        }
        problems
    }
}

/// `https://<address>:6443`, with brackets around IPv6 addresses.
pub(crate) fn api_url_for(address: &str) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("https://[{address}]:6443")
    } else {
        format!("https://{address}:6443")
    }
}

/// DNS-1123 subdomain, the rule for Kubernetes node names.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_label_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A label or taint key: optional DNS-subdomain prefix, `/`, name.
pub(crate) fn check_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return Err(format!(
            "prefix {p:?} must be a DNS subdomain such as example.com"
        ));
    }
    if !is_label_name(name) {
        return Err("the name part must be 1-63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit".into());
    }
    Ok(())
}

pub(crate) fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err("must be empty or 1-63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn host(name: &str, role: Role, address: &str) -> Host {
        Host {
            name: name.into(),
            role,
            address: address.into(),
            ssh: SshTarget::default(),
            labels: BTreeMap::new(),
            taints: vec![],
            gpu: false,
            k3s_config: String::new(),
        }
    }

    fn inv(hosts: Vec<Host>) -> Inventory {
        Inventory::new("lab", "v1.31.2+k3s1", SecretString::from("t0ken"), hosts)
    }

    fn mount() -> SnapshotMount {
        SnapshotMount {
            server: "192.168.2.2".into(),
            export: "/volume1/k8s-data/".into(),
            subdir: "k3s-etcd-snapshots/lab".into(),
            dir: "/mnt/k3s-snapshots".into(),
        }
    }

    #[test]
    fn mount_units_are_named_as_systemd_escapes_their_mount_point() {
        // The expected names are what `systemd-escape --path` prints for these paths.
        let named = |dir: &str| {
            SnapshotMount {
                dir: dir.into(),
                ..mount()
            }
            .unit_name()
        };
        assert_eq!(named("/mnt/k3s-snapshots/"), "mnt-k3s\\x2dsnapshots.mount");
        assert_eq!(
            named("/srv/.hidden/a_b:c.d/é"),
            "srv-.hidden-a_b:c.d-\\xc3\\xa9.mount"
        );
        assert_eq!(named("/.snap"), "\\x2esnap.mount");
        assert_eq!(
            mount().unit_path(),
            "/etc/systemd/system/mnt-k3s\\x2dsnapshots.mount"
        );
    }

    #[test]
    fn the_mount_unit_mounts_the_labs_directory_of_the_export_before_k3s() {
        let m = mount();
        assert_eq!(
            m.source(),
            "192.168.2.2:/volume1/k8s-data/k3s-etcd-snapshots/lab"
        );
        assert_eq!(m.export_source(), "192.168.2.2:/volume1/k8s-data");
        let unit = m.unit("lab");
        for line in [
            "What=192.168.2.2:/volume1/k8s-data/k3s-etcd-snapshots/lab\n",
            "Where=/mnt/k3s-snapshots\n",
            "Type=nfs\n",
            "Before=k3s.service\n",
            "WantedBy=remote-fs.target k3s.service\n",
        ] {
            assert!(unit.contains(line), "{line} missing from\n{unit}");
        }
        assert!(
            !unit.contains("Requires="),
            "a NAS outage must not keep k3s down: {unit}"
        );
    }

    #[test]
    fn a_snapshot_mount_that_cannot_be_written_as_a_unit_is_refused() {
        for bad in [
            SnapshotMount {
                server: "".into(),
                ..mount()
            },
            SnapshotMount {
                server: "nas box".into(),
                ..mount()
            },
            SnapshotMount {
                export: "volume1".into(),
                ..mount()
            },
            SnapshotMount {
                subdir: "../other".into(),
                ..mount()
            },
            SnapshotMount {
                subdir: "".into(),
                ..mount()
            },
            SnapshotMount {
                dir: "/".into(),
                ..mount()
            },
            SnapshotMount {
                dir: "mnt/x".into(),
                ..mount()
            },
            SnapshotMount {
                dir: "/mnt/my snapshots".into(),
                ..mount()
            },
        ] {
            let mut i = inv(vec![host("s1", Role::Server, "10.0.0.1")]);
            i.prepare.etcd_snapshot_mount = Some(bad.clone());
            assert_eq!(i.problems().len(), 1, "{bad:?}: {:?}", i.problems());
        }
        let mut i = inv(vec![host("s1", Role::Server, "10.0.0.1")]);
        i.prepare.etcd_snapshot_mount = Some(mount());
        assert!(i.problems().is_empty(), "{:?}", i.problems());
    }

    #[test]
    fn a_plain_lab_has_no_problems() {
        let i = inv(vec![
            host("s1", Role::Server, "10.0.0.1"),
            host("a1", Role::Agent, "10.0.0.2"),
        ]);
        assert_eq!(i.problems(), Vec::<String>::new());
        assert_eq!(i.first_server().unwrap().name, "s1");
        assert_eq!(i.api_url().unwrap(), "https://10.0.0.1:6443");
    }

    #[test]
    fn every_bad_input_is_named() {
        let mut bad = host("Bad_Name", Role::Agent, "10.0.0.1");
        bad.labels.insert("-x".into(), "ok".into());
        bad.labels.insert("zone".into(), "not ok!".into());
        bad.taints.push(Taint {
            key: "gpu".into(),
            value: None,
            effect: TaintEffect::NoSchedule,
        });
        bad.taints.push(Taint {
            key: "gpu".into(),
            value: Some("x".into()),
            effect: TaintEffect::NoSchedule,
        });
        bad.k3s_config = "token: hunter2\n".into();
        let dup = host("dup", Role::Agent, "10.0.0.1");
        let mut i = inv(vec![bad, dup.clone(), dup]);
        i.k3s_version = "latest".into();
        i.parallelism = 0;
        i.lab_name = "my lab".into();
        let problems = i.problems().join("\n");
        for needle in [
            "lab name \"my lab\"",
            "k3s version: \"latest\"",
            "parallelism",
            "no server",
            "host \"Bad_Name\": the name must be a valid Kubernetes node name",
            "label key \"-x\"",
            "label \"zone\" value \"not ok!\"",
            "taint gpu:NoSchedule is listed twice",
            "sets `token:`",
            "host \"dup\": the name is used by two hosts",
            "address 10.0.0.1 is used by two hosts",
        ] {
            assert!(
                problems.contains(needle),
                "missing {needle:?} in:\n{problems}"
            );
        }
        assert!(
            !problems.contains("hunter2"),
            "a secret leaked into a message: {problems}"
        );
    }

    #[test]
    fn debug_output_hides_the_token_and_sudo_password() {
        let mut i = inv(vec![host("s1", Role::Server, "10.0.0.1")]);
        i.sudo_passwords
            .insert("s1".into(), SecretString::from("sudo-pass-123"));
        let text = format!("{i:?}");
        assert!(
            !text.contains("t0ken") && !text.contains("sudo-pass-123"),
            "{text}"
        );
    }

    #[test]
    fn ipv6_api_urls_are_bracketed() {
        assert_eq!(api_url_for("fd00::1"), "https://[fd00::1]:6443");
        assert_eq!(
            api_url_for("lab.example.ts.net"),
            "https://lab.example.ts.net:6443"
        );
    }

    #[test]
    fn qualified_names_follow_kubernetes_rules() {
        assert!(check_qualified_name("node.kubernetes.io/gpu").is_ok());
        assert!(check_qualified_name("gpu").is_ok());
        assert!(check_qualified_name("Example.com/gpu").is_err());
        assert!(check_qualified_name("a/b/c").is_err());
        assert!(check_qualified_name(&"x".repeat(64)).is_err());
    }
}
