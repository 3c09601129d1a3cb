//! The validated lab: typed, defaults applied, every cross-field rule already checked; a `Lab`
//! can only be made by validation, so code that receives one never re-checks it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::de::YamlValue;
use crate::diag::Span;
pub use crate::raw::{
    AcmeEnvironment, AlertSeverity, AppAuth, BackupVerify, DnsProvider, DnsRecords, GpuVendor,
    KubeconfigAddress, NodeRole, OsUpdateMode, PortProtocol, TsigAlgorithm, VaultAuth,
};
use crate::types::{Cron, Duration, Ipv4Net, Ipv4Range, K3sVersion, Quantity};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lab {
    pub name: String,
    pub network: Network,
    pub cluster: Cluster,
    pub storage: Option<Storage>,
    pub tls: Tls,
    pub alerting: Alerting,
    pub services: Services,
    pub apps: Vec<App>,
    /// Volumes several apps mount.
    pub shares: Vec<Share>,
    /// The user's own Helm charts, in spec order.
    pub charts: Vec<UserChart>,
    /// The user's changes to catalog charts, by Helm release name (see [`CATALOG_RELEASES`]).
    pub helm_overrides: BTreeMap<String, HelmOverride>,
    /// How the secrets file is encrypted besides the age keys.
    pub secrets: SecretsSettings,
    /// The user's own manifests directory (`manifests:`), with what was read from it.
    pub manifests: Option<Manifests>,
    /// The Proxmox VE host the nodes with a `vm` run on.
    pub proxmox: Option<Proxmox>,
    /// Logins in front of web addresses.
    pub auth: Auth,
}

/// The spec's `auth:` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    pub sso: Option<Sso>,
}

/// Single sign-on through Authelia.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sso {
    /// The portal's host label under the domain.
    pub host: String,
    /// A TOTP code is asked after the password.
    pub totp: bool,
    pub users: Vec<SsoUser>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SsoUser {
    pub name: String,
    pub display_name: String,
    pub email: String,
    pub groups: Vec<String>,
}

impl SsoUser {
    /// The secret holding the user's password (generated, or set by the user).
    pub fn password_secret(&self) -> String {
        format!("sso-user-{}-password", self.name)
    }

    /// The secret holding the password's argon2id hash, the only form the cluster sees.
    pub fn hash_secret(&self) -> String {
        format!("sso-user-{}-hash", self.name)
    }
}

/// The spec's `proxmox:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proxmox {
    /// `scheme://host[:port]`, without a trailing `/`.
    pub endpoint: String,
    /// The Proxmox node the template lives on and VMs go to by default.
    pub node: String,
    pub auth: ProxmoxAuth,
    pub verify_tls: bool,
    pub storage: String,
    pub template: VmTemplate,
    pub bridge: String,
    /// Public keys, one OpenSSH line each.
    pub ssh_keys: Vec<String>,
    /// The VMs' DNS server (the gateway unless set).
    pub nameserver: Ipv4Addr,
}

/// How homelab logs in to the Proxmox API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ProxmoxAuth {
    /// An API token: `USER@REALM!NAME` and the secret holding its UUID.
    #[serde(rename_all = "camelCase")]
    Token {
        token_id: String,
        token_secret: SecretRef,
    },
    /// A ticket from a user's password.
    Password { user: String, password: SecretRef },
}

/// Where the VMs' template comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum VmTemplate {
    /// An existing template.
    Vmid { vmid: u32 },
    /// A template homelab makes once from a cloud image.
    #[serde(rename_all = "camelCase")]
    Image {
        url: String,
        /// The file name the image is stored under (from the URL, with an extension Proxmox
        /// accepts for imports).
        file_name: String,
        checksum_algorithm: ChecksumAlgorithm,
        /// Lowercase hex.
        checksum: String,
        vmid: Option<u32>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    Sha256,
    Sha512,
}

impl ChecksumAlgorithm {
    /// As Proxmox's `checksum-algorithm` parameter writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::Sha512 => "sha512",
        }
    }
}

/// A node's VM on the Proxmox host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Vm {
    /// Fixed VMID; `None` takes the next free one.
    pub vmid: Option<u32>,
    pub cores: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    /// The Proxmox node (already defaulted to `proxmox.node`).
    pub node: String,
}

/// The spec's `secrets:` section.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretsSettings {
    /// A Vault/OpenBao transit key that also wraps the secrets file's data key.
    pub vault: Option<VaultSettings>,
}

/// A Vault/OpenBao transit key and how to log in to its server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultSettings {
    /// `scheme://host[:port]`, without a trailing `/`.
    pub address: String,
    /// The transit engine's mount path, without leading or trailing `/`.
    pub transit_path: String,
    /// The transit key's name.
    pub key: String,
    pub auth: VaultAuth,
}

impl VaultSettings {
    /// The key in sops's form, `ADDRESS/v1/TRANSIT_PATH/keys/KEY` (`hc_vault_transit_uri`).
    pub fn key_uri(&self) -> String {
        format!(
            "{}/v1/{}/keys/{}",
            self.address, self.transit_path, self.key
        )
    }
}

/// The spec's `manifests:` directory. Validation only checks the path; the objects and
/// patches are filled in by [`crate::manifests::read`] from files the caller read.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifests {
    /// The directory as written, relative to the spec file.
    pub dir: String,
    /// Where the spec names it.
    #[serde(skip)]
    pub span: Span,
    /// Plain objects, in file order (files sorted by path).
    pub objects: Vec<UserObject>,
    /// Changes to objects homelab generates (the files under `patches/`).
    pub patches: Vec<UserPatch>,
}

/// One object of the manifests directory.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserObject {
    /// The file it is in, relative to the manifests directory (`/`-separated).
    pub file: String,
    pub manifest: serde_json::Value,
    /// Where it is written: the index of its file among those read, and its span there.
    #[serde(skip)]
    pub at: (usize, Span),
}

/// A JSON Patch (RFC 6902) for one object homelab generates.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPatch {
    /// The file it is in, relative to the manifests directory.
    pub file: String,
    pub target: PatchTarget,
    /// The operations, as written (a JSON array of `{op, path, value?, from?}`).
    pub operations: serde_json::Value,
    /// Where the target is written (file index, span).
    #[serde(skip)]
    pub target_at: (usize, Span),
    /// Where each operation is written.
    #[serde(skip)]
    pub operation_spans: Vec<Span>,
}

/// Which generated object a patch changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchTarget {
    /// `group/version` or `version`; when absent, any version of the kind.
    pub api_version: Option<String>,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

/// Where the spec sets each catalog chart's `helm:` and the Helm release that key changes.
/// The plan names its releases the same way (a test of the plan crate holds it to that).
pub const CATALOG_RELEASES: &[(&str, &str)] = &[
    ("infrastructure.nfs.helm", "nfs-provisioner"),
    ("infrastructure.metallb.helm", "metallb"),
    ("infrastructure.certManager.helm", "cert-manager"),
    ("infrastructure.traefik.helm", "traefik"),
    ("services.monitoring.helm", "kube-prometheus-stack"),
    ("services.logging.helm.loki", "loki"),
    ("services.logging.helm.alloy", "alloy"),
    ("services.ollama.helm", "ollama"),
    ("services.n8n.helm", "n8n"),
    ("services.openbao.helm", "openbao"),
    ("services.openWebui.helm", "open-webui"),
];

/// A catalog chart's `helm:` settings as the user wrote them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmOverride {
    /// Replaces the pinned chart version.
    pub version: Option<String>,
    /// Deep-merged over the generated values; kept as written, with positions, so checks
    /// against the chart can point into the spec.
    pub values: Option<YamlValue>,
    /// Where the `helm:` mapping is written.
    #[serde(skip)]
    pub span: Span,
}

/// The name of a secret in `secrets.sops.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SecretRef(pub String);

impl SecretRef {
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub domain: String,
    pub load_balancer_pool: Ipv4Range,
    pub ingress_ip: Ipv4Addr,
    pub dns_provider: DnsProvider,
    /// What `homelab dns` sets at the provider and what `status` asks the LAN resolvers.
    pub dns: DnsSettings,
    pub remote_access: RemoteAccess,
}

/// The spec's `network.dns` beyond the provider's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsSettings {
    /// One wildcard record or one record per host.
    pub records: DnsRecords,
    /// The LAN resolvers `status` asks; empty: the system's.
    pub servers: Vec<std::net::SocketAddrV4>,
    /// How homelab reaches the provider's API; `None` for `manual` and for a provider named
    /// without its API settings (the records are then set by hand, as the docs say).
    pub api: Option<DnsApi>,
}

/// A DNS provider's API and the credential it takes, from `secrets.sops.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "provider")]
pub enum DnsApi {
    /// Pi-hole v6: local DNS records (`dns.hosts`) through `/api/config`.
    Pihole { url: String, password: SecretRef },
    /// AdGuard Home: DNS rewrites through `/control/rewrite`.
    Adguard {
        url: String,
        username: String,
        password: SecretRef,
    },
    /// NextDNS: a profile's rewrites.
    Nextdns { profile: String, api_key: SecretRef },
    /// Cloudflare: A records of a zone, proxy off.
    Cloudflare {
        zone_id: String,
        api_token: SecretRef,
    },
}

impl DnsApi {
    /// The credential's secret.
    pub fn secret(&self) -> &SecretRef {
        match self {
            DnsApi::Pihole { password, .. } | DnsApi::Adguard { password, .. } => password,
            DnsApi::Nextdns { api_key, .. } => api_key,
            DnsApi::Cloudflare { api_token, .. } => api_token,
        }
    }
}

impl Network {
    /// The full host name of a service, e.g. `grafana.home.example.com`.
    pub fn fqdn(&self, host: &str) -> String {
        format!("{host}.{}", self.domain)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteAccess {
    pub tailscale: Option<String>,
    pub extra_sans: Vec<String>,
    pub kubeconfig_address: KubeconfigAddress,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub k3s_version: K3sVersion,
    pub nodes: Vec<Node>,
    pub etcd_snapshots: EtcdSnapshots,
    pub os_updates: OsUpdates,
}

impl Cluster {
    pub fn servers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == NodeRole::Server)
    }

    pub fn agents(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == NodeRole::Agent)
    }

    /// The server that initialises the cluster (`cluster-init`); the others join it.
    pub fn gpu_nodes(&self) -> impl Iterator<Item = (&Node, Gpu)> {
        self.nodes.iter().filter_map(|n| Some((n, n.gpu?)))
    }

    pub fn first_server(&self) -> &Node {
        self.servers()
            .next()
            .expect("validation guarantees at least one server")
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    pub role: NodeRole,
    pub address: Ipv4Addr,
    pub ssh: Ssh,
    pub labels: BTreeMap<String, String>,
    /// With the GPU's label (and taint, when asked for) already among `labels` and `taints`.
    pub taints: Vec<Taint>,
    pub gpu: Option<Gpu>,
    /// The node's VM, when `proxmox:` makes it.
    pub vm: Option<Vm>,
}

/// The label every GPU node carries and every GPU workload selects.
pub const GPU_LABEL: (&str, &str) = ("homelab/gpu", "nvidia");

/// The taint of a GPU node with `taint: true`; the resource's name, as the device plugin
/// tolerates it.
pub const GPU_TAINT_KEY: &str = "nvidia.com/gpu";

/// The node label that picks the device plugin's configuration for the node (time-slicing).
pub const GPU_SHARING_LABEL: &str = "nvidia.com/device-plugin.config";

/// A node's GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gpu {
    pub vendor: GpuVendor,
    pub count: u32,
    /// How many pods share each GPU; 1 when it is not shared.
    pub replicas: u32,
    pub taint: bool,
}

impl Gpu {
    /// How many `nvidia.com/gpu` the device plugin offers on the node: each GPU once per
    /// time-slice.
    pub fn allocatable(&self) -> u32 {
        self.count.saturating_mul(self.replicas)
    }

    /// The name of the device plugin configuration the node uses (see [`GPU_SHARING_LABEL`]).
    pub fn sharing_config(&self) -> String {
        if self.replicas > 1 {
            format!("time-slicing-{}", self.replicas)
        } else {
            "exclusive".into()
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ssh {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity: Option<String>,
    pub sudo_password: Option<SecretRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: TaintEffect,
}

impl std::fmt::Display for Taint {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}:{:?}", self.key, self.effect),
            None => write!(f, "{}:{:?}", self.key, self.effect),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdSnapshots {
    pub schedule: Cron,
    pub retention: u32,
    pub dir: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OsUpdates {
    pub automatic: OsUpdateMode,
    /// `None`: never reboot automatically; otherwise the time of day (`HH:MM`).
    pub reboot: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    pub nfs: Nfs,
    pub storage_class: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Nfs {
    /// An IPv4 address or a host name.
    pub server: String,
    pub path: String,
}

/// Where the lab's certificates come from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum Tls {
    /// Let's Encrypt, for a domain with public DNS.
    Acme(Acme),
    /// The lab's own root CA, generated once into the secrets file, signing a wildcard
    /// certificate for the domain and one per host.
    InternalCa,
}

impl Tls {
    /// The ACME settings, `None` for an internal CA.
    pub fn acme(&self) -> Option<&Acme> {
        match self {
            Tls::Acme(a) => Some(a),
            Tls::InternalCa => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Acme {
    pub acme_email: String,
    pub environment: AcmeEnvironment,
    pub challenge: Challenge,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Challenge {
    Http01,
    Dns01(Dns01),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", tag = "provider")]
pub enum Dns01 {
    Cloudflare {
        api_token: SecretRef,
    },
    Digitalocean {
        api_token: SecretRef,
    },
    #[serde(rename_all = "camelCase")]
    Route53 {
        access_key_id: String,
        secret_access_key: SecretRef,
        region: String,
    },
    /// Google Cloud DNS.
    #[serde(rename_all = "camelCase")]
    Clouddns {
        project: String,
        service_account_key: SecretRef,
        hosted_zone: Option<String>,
    },
    /// Azure DNS through a service principal.
    #[serde(rename_all = "camelCase")]
    Azuredns {
        client_id: String,
        client_secret: SecretRef,
        subscription_id: String,
        tenant_id: String,
        resource_group: String,
        hosted_zone: Option<String>,
    },
    /// Dynamic updates (RFC 2136) signed with a TSIG key.
    #[serde(rename_all = "camelCase")]
    Rfc2136 {
        nameserver: String,
        tsig_key_name: String,
        tsig_algorithm: TsigAlgorithm,
        tsig_secret: SecretRef,
    },
}

impl Dns01 {
    /// The provider's name for people.
    pub fn title(&self) -> &'static str {
        match self {
            Dns01::Cloudflare { .. } => "Cloudflare",
            Dns01::Digitalocean { .. } => "DigitalOcean",
            Dns01::Route53 { .. } => "Route 53",
            Dns01::Clouddns { .. } => "Google Cloud DNS",
            Dns01::Azuredns { .. } => "Azure DNS",
            Dns01::Rfc2136 { .. } => "RFC 2136 dynamic updates",
        }
    }

    /// The secret the solver reads.
    pub fn secret(&self) -> &SecretRef {
        match self {
            Dns01::Cloudflare { api_token } | Dns01::Digitalocean { api_token } => api_token,
            Dns01::Route53 {
                secret_access_key, ..
            } => secret_access_key,
            Dns01::Clouddns {
                service_account_key,
                ..
            } => service_account_key,
            Dns01::Azuredns { client_secret, .. } => client_secret,
            Dns01::Rfc2136 { tsig_secret, .. } => tsig_secret,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alerting {
    pub receivers: Vec<Receiver>,
    /// Without a trailing `/`.
    pub runbook_base_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receiver {
    pub name: String,
    pub severities: BTreeSet<AlertSeverity>,
    pub kind: ReceiverKind,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ReceiverKind {
    Ntfy {
        url: String,
        topic: String,
        token: Option<SecretRef>,
    },
    #[serde(rename_all = "camelCase")]
    Pushover {
        user_key: SecretRef,
        token: SecretRef,
    },
    Webhook {
        url: String,
    },
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Services {
    pub monitoring: Option<Monitoring>,
    pub logging: Option<Logging>,
    pub postgres: Option<Postgres>,
    pub ollama: Option<Ollama>,
    pub n8n: Option<N8n>,
    pub paperless: Option<Paperless>,
    pub openbao: Option<Openbao>,
    pub vllm: Option<Vllm>,
    pub open_webui: Option<OpenWebui>,
    pub dev_proxy: Option<DevProxy>,
    pub dev_containers: Vec<DevContainer>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Monitoring {
    pub retention: Duration,
    pub storage: Quantity,
    pub grafana_admin_password: SecretRef,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Logging {
    pub retention: Duration,
    pub storage: Quantity,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Postgres {
    pub version: u32,
    pub storage: Quantity,
    pub superuser_password: SecretRef,
    pub databases: Vec<Database>,
    pub backup: PostgresBackup,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Database {
    pub name: String,
    pub owner: String,
    pub password: SecretRef,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostgresBackup {
    pub schedule: Cron,
    pub keep: u32,
    pub storage: Quantity,
    pub verify: BackupVerify,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ollama {
    pub models: Vec<String>,
    pub storage: Quantity,
    pub gpu: bool,
    pub host: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct N8n {
    pub database: String,
    pub encryption_key: SecretRef,
    pub host: String,
}

/// Open WebUI over the lab's Ollama and vLLM, with its own login.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenWebui {
    /// The admin account created on the first start; none: `admin@<domain>`.
    pub admin_email: Option<String>,
    pub admin_password: SecretRef,
    pub storage: Quantity,
    pub host: String,
}

/// vLLM's OpenAI-compatible server for one Hugging Face model, on one GPU.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Vllm {
    /// The Hugging Face repository, e.g. `Qwen/Qwen2.5-1.5B-Instruct`.
    pub model: String,
    /// The branch, tag or commit of the repository that is served.
    pub revision: String,
    /// The token for gated or private models; none for public ones.
    pub hf_token: Option<SecretRef>,
    pub storage: Quantity,
    pub host: String,
    /// More `vllm serve` flags, as written.
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Openbao {
    pub storage: Quantity,
    pub audit_storage: Quantity,
    pub host: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Paperless {
    pub storage: Quantity,
    pub secret_key: SecretRef,
    pub ocr_language: String,
    pub host: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DevProxy {
    pub routes: Vec<Route>,
    pub host: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub path: String,
    pub target_host: String,
    pub target_port: u16,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DevContainer {
    pub name: String,
    pub ssh_port: u16,
    pub authorized_keys: Vec<String>,
    pub workspace: Quantity,
    pub cpu: String,
    pub memory: Quantity,
    /// The image the spec asks for; `None`: the base image the lab builds itself.
    pub image: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    pub name: String,
    pub image: String,
    pub port: u16,
    /// `None` when the app has no web access.
    pub host: Option<String>,
    pub namespace: String,
    pub env: BTreeMap<String, String>,
    pub secret_env: BTreeMap<String, SecretRef>,
    pub volumes: Vec<Volume>,
    pub database: Option<String>,
    pub backup: bool,
    /// Ports on the app's LoadBalancer Service (none: no such Service).
    pub ports: Vec<AppPort>,
    pub load_balancer_ip: Option<Ipv4Addr>,
    pub host_network: bool,
    /// `None`: not set by homelab, so whoever scales the Deployment decides.
    pub replicas: Option<u32>,
    pub resources: Resources,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub probe: Option<Probe>,
    pub metrics: Option<Metrics>,
    pub gpu: bool,
    pub auth: AppAuth,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppPort {
    pub name: String,
    pub port: u16,
    pub protocol: PortProtocol,
}

/// Container resources; `None` fields are not set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    pub requests_cpu: Option<String>,
    pub requests_memory: Option<String>,
    pub limits_cpu: Option<String>,
    pub limits_memory: Option<String>,
}

impl Default for Resources {
    /// What an app gets without `resources`: a small reservation and a memory ceiling.
    fn default() -> Self {
        Resources {
            requests_cpu: Some("50m".into()),
            requests_memory: Some("128Mi".into()),
            limits_cpu: None,
            limits_memory: Some("1Gi".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub path: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub port: u16,
    pub path: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub mount_path: String,
    pub source: VolumeSource,
    pub read_only: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum VolumeSource {
    /// A claim of the app's own.
    Claim { size: Quantity },
    /// A share from `shares:`, optionally a directory inside it.
    #[serde(rename_all = "camelCase")]
    Share {
        share: String,
        sub_path: Option<String>,
    },
}

/// A Helm chart of the user's own.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserChart {
    pub name: String,
    pub repo: String,
    pub chart: String,
    pub version: String,
    pub namespace: String,
    pub values: Option<YamlValue>,
    /// Component names (catalog components, apps, charts) it comes after.
    pub depends_on: Vec<String>,
    pub host: Option<ChartHost>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartHost {
    pub name: String,
    pub service: String,
    pub port: u16,
}

/// The names of the catalog's components in a lab, as the plan names them (its tests hold it
/// to that), and the spec's names for them that `dependsOn` also accepts.
pub fn catalog_components(lab_has: &CatalogPresence) -> Vec<&'static str> {
    let mut out = vec!["local-path", "metallb", "cert-manager", "traefik"];
    for (present, name) in [
        (lab_has.storage, "nfs"),
        (lab_has.monitoring, "prometheus"),
        (lab_has.logging, "loki"),
        (lab_has.postgres, "postgres"),
        (lab_has.ollama, "ollama"),
        (lab_has.n8n, "n8n"),
        (lab_has.paperless, "paperless"),
        (lab_has.openbao, "openbao"),
        (lab_has.vllm, "vllm"),
        (lab_has.open_webui, "open-webui"),
        (lab_has.dev_proxy, "nginx"),
        (lab_has.dev_containers, "dev-containers"),
        (lab_has.shares, "shares"),
        (lab_has.sso, "authelia"),
    ] {
        if present {
            out.push(name);
        }
    }
    out
}

/// Which optional catalog components a lab has.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatalogPresence {
    pub storage: bool,
    pub monitoring: bool,
    pub logging: bool,
    pub postgres: bool,
    pub ollama: bool,
    pub n8n: bool,
    pub paperless: bool,
    pub openbao: bool,
    pub vllm: bool,
    pub open_webui: bool,
    pub dev_proxy: bool,
    pub dev_containers: bool,
    pub shares: bool,
    /// `auth.sso`: the Authelia portal.
    pub sso: bool,
}

/// Every catalog component name, present or not, which no app or chart may take.
pub const CATALOG_NAMES: &[&str] = &[
    "k3s",
    "local-path",
    "nfs",
    "metallb",
    "cert-manager",
    "traefik",
    "prometheus",
    "loki",
    "postgres",
    "ollama",
    "n8n",
    "paperless",
    "openbao",
    "vllm",
    "open-webui",
    "nginx",
    "dev-containers",
    "shares",
    "authelia",
    "manifests",
];

/// The spec's words for catalog components whose component is named otherwise.
pub const COMPONENT_SYNONYMS: &[(&str, &str)] = &[
    ("monitoring", "prometheus"),
    ("logging", "loki"),
    ("devProxy", "nginx"),
    ("dev-proxy", "nginx"),
    ("devContainers", "dev-containers"),
    ("certManager", "cert-manager"),
    ("nfs-provisioner", "nfs"),
    ("openWebui", "open-webui"),
];

/// A volume several apps mount.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Share {
    pub name: String,
    pub kind: ShareKind,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ShareKind {
    /// Existing data on an NFS server: a static volume that is never deleted.
    Nfs {
        server: String,
        path: String,
        capacity: Quantity,
    },
    /// A new shared claim from the lab's storage class.
    Claim { size: Quantity },
}

impl Lab {
    /// Every secret the spec references, with where it is used (for `secrets` and docs).
    pub fn secret_refs(&self) -> Vec<(SecretRef, String)> {
        let mut out = Vec::new();
        for n in &self.cluster.nodes {
            if let Some(s) = &n.ssh.sudo_password {
                out.push((s.clone(), format!("sudo on node {}", n.name)));
            }
        }
        if let Some(Challenge::Dns01(d)) = self.tls.acme().map(|a| &a.challenge) {
            out.push((d.secret().clone(), "cert-manager DNS-01 solver".into()));
        }
        if let Some(api) = &self.network.dns.api {
            out.push((
                api.secret().clone(),
                "homelab dns (the LAN's DNS records)".into(),
            ));
        }
        for r in &self.alerting.receivers {
            match &r.kind {
                ReceiverKind::Ntfy { token: Some(t), .. } => {
                    out.push((t.clone(), format!("alert receiver {}", r.name)));
                }
                ReceiverKind::Pushover { user_key, token } => {
                    out.push((user_key.clone(), format!("alert receiver {}", r.name)));
                    out.push((token.clone(), format!("alert receiver {}", r.name)));
                }
                _ => {}
            }
        }
        let s = &self.services;
        if let Some(m) = &s.monitoring {
            out.push((m.grafana_admin_password.clone(), "grafana".into()));
        }
        if let Some(p) = &s.postgres {
            out.push((p.superuser_password.clone(), "postgres".into()));
            for d in &p.databases {
                out.push((d.password.clone(), format!("postgres role {}", d.owner)));
            }
        }
        if let Some(n) = &s.n8n {
            out.push((n.encryption_key.clone(), "n8n".into()));
        }
        if let Some(p) = &s.paperless {
            out.push((p.secret_key.clone(), "paperless".into()));
        }
        for a in &self.apps {
            for (var, r) in &a.secret_env {
                out.push((r.clone(), format!("app {} ({var})", a.name)));
            }
        }
        if let Some(px) = &self.proxmox {
            let secret = match &px.auth {
                ProxmoxAuth::Token { token_secret, .. } => token_secret,
                ProxmoxAuth::Password { password, .. } => password,
            };
            out.push((secret.clone(), "the Proxmox VE login (proxmox:)".into()));
        }
        out
    }
}
