//! The spec as written: every field optional and positioned, so that parsing never stops early
//! and validation can report each missing or wrong value at its place; no meaning is checked here.
//!
//! The doc comments on these types are the field documentation users see in their editor
//! (they become the JSON Schema descriptions).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::de::{Spanned, YamlValue};

type S<T> = Option<Spanned<T>>;

/// A K3s home lab: its nodes, network, storage, TLS, alerting and the services it runs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "homelab.yaml")]
pub struct RawLab {
    /// Name of the lab (DNS label: lowercase letters, digits, `-`). Used for the kubeconfig
    /// context, the ApplySet and labels. Example: `home-lab`.
    #[schemars(required)]
    pub name: S<String>,
    /// The LAN the lab lives on, its domain, load-balancer addresses and remote access.
    #[schemars(required)]
    pub network: S<RawNetwork>,
    /// The K3s cluster: version, nodes, etcd snapshots, OS updates.
    #[schemars(required)]
    pub cluster: S<RawCluster>,
    /// Persistent storage for stateful services (an NFS export, e.g. on a Synology NAS).
    pub storage: S<RawStorage>,
    /// HTTPS certificates from Let's Encrypt through cert-manager.
    #[schemars(required)]
    pub tls: S<RawTls>,
    /// Where alerts go (phone push, webhooks) by severity.
    pub alerting: S<RawAlerting>,
    /// Settings of the platform's infrastructure charts (NFS provisioner, MetalLB,
    /// cert-manager, Traefik), which always run.
    pub infrastructure: S<RawInfrastructure>,
    /// The platform services to run. A service runs when its key is present (set
    /// `enabled: false` to keep its settings but not run it).
    pub services: S<RawServices>,
    /// Your own applications: each gets a Deployment, Service, HTTPS host name and storage.
    #[serde(default)]
    pub apps: Vec<Spanned<RawApp>>,
    /// Volumes several apps mount: existing data on the NAS (`nfs`) or a new shared volume
    /// (`size`).
    #[serde(default)]
    pub shares: Vec<Spanned<RawShare>>,
    /// Helm charts of your own, installed like the catalog's (a HelmChart for K3s, a
    /// HelmRelease for Flux) and checked by `homelab status`.
    #[serde(default)]
    pub charts: Vec<Spanned<RawChart>>,
    /// How the secrets file is encrypted besides your age keys. Without this section only age
    /// keys (`homelab secrets init`, `homelab secrets rekey --add age1...`) open it.
    pub secrets: S<RawSecrets>,
    /// A directory of your own Kubernetes manifests, relative to this file (e.g.
    /// `manifests`): every `*.yaml` in it is applied with the lab (in the rendered tree under
    /// `applications/manifests/`, pruned with it), and files under its `patches/` change
    /// objects homelab generates (`target: {kind, name, namespace}` and `patch:` a list of
    /// JSON Patch operations, as kustomize takes them). Objects name their namespace; missing
    /// namespaces are created. Secrets do not belong here (they would be plaintext in git).
    pub manifests: S<String>,
    /// The Proxmox VE host the lab's VMs run on. With this section `homelab vms apply` makes
    /// each node that has a `vm:` a VM cloned from a cloud-init template.
    pub proxmox: S<RawProxmox>,
    /// Logins in front of the lab's web addresses. With `sso:` one login page (Authelia at
    /// `auth.<domain>`) guards every service without a login of its own.
    pub auth: S<RawAuth>,
}

/// How people log in to the lab's web addresses.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawAuth {
    /// Single sign-on: one login page for the apps, the dev proxy, Ollama's API, Prometheus and
    /// Alertmanager (a Traefik ForwardAuth middleware on each). Each user's password is
    /// generated into the secrets file (`homelab secrets get sso-user-NAME-password`, change it
    /// with `homelab secrets set`); only its argon2id hash reaches the cluster.
    pub sso: S<RawSso>,
}

/// The single sign-on portal and its users.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSso {
    /// The portal: `authelia` (the only one for now).
    #[schemars(required)]
    pub provider: S<SsoProvider>,
    /// The login page's host name under the domain. Default: `auth`.
    pub host: S<String>,
    /// Ask for a one-time code from an authenticator app (TOTP) after the password; each user
    /// registers the app at the first login. Default: `false` (password only).
    pub totp: S<bool>,
    /// Who may log in (at least one).
    #[serde(default)]
    #[schemars(required)]
    pub users: Vec<Spanned<RawSsoUser>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SsoProvider {
    /// Authelia (chart 0.11.5), users in a file kept as a SOPS-encrypted Secret.
    Authelia,
}

/// A person who may log in.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSsoUser {
    /// The login name: lowercase letters, digits, `-`, `_` and `.`, starting with a letter,
    /// e.g. `alice`.
    #[schemars(required)]
    pub name: S<String>,
    /// The name the portal greets with. Default: the login name.
    pub display_name: S<String>,
    /// Where the portal sends codes (to register TOTP, reset a password); the lab has no mail
    /// server, so the messages are written to the portal's notification file (the
    /// `sso-locked-out` runbook reads it). Default: `NAME@<domain>`.
    pub email: S<String>,
    /// Groups, for the user's own apps reading the `Remote-Groups` header, e.g. `[admins]`.
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
}

/// A Proxmox VE host (or cluster) and how homelab logs in to its API.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawProxmox {
    /// The API, `https://host[:port]` without a path, e.g. `https://pve.home.example.com:8006`.
    #[schemars(required)]
    pub endpoint: S<String>,
    /// The Proxmox node (its host name in the Proxmox cluster) the template lives on and VMs
    /// are made on unless a node's `vm.node` says otherwise, e.g. `pve`.
    #[schemars(required)]
    pub node: S<String>,
    /// An API token's id, `USER@REALM!NAME`, e.g. `homelab@pve!lab` (preferred over a password;
    /// give it the rights to clone and configure VMs and to write to `storage`).
    pub token_id: S<String>,
    /// The secret holding that API token's secret (a UUID).
    pub token_secret: S<RawSecretRef>,
    /// Instead of a token: a user, `USER@REALM`, e.g. `root@pam`, logging in with `password`.
    pub user: S<String>,
    /// The secret holding `user`'s password.
    pub password: S<RawSecretRef>,
    /// Check the API's TLS certificate. Default: `true`. Set `false` only for the self-signed
    /// certificate a fresh Proxmox install serves.
    pub verify_tls: S<bool>,
    /// The storage VM disks and the template go to, e.g. `local-lvm`. Default: `local-lvm`.
    pub storage: S<String>,
    /// The cloud-init template VMs are cloned from: the VMID of an existing template, or
    /// `{image: URL, checksum: sha256:HEX}` to make one from a cloud image (downloaded by the
    /// Proxmox host itself, checked against the checksum).
    #[schemars(required)]
    pub template: S<RawTemplate>,
    /// The bridge the VMs' network card joins. Default: `vmbr0`.
    pub bridge: S<String>,
    /// SSH public keys cloud-init installs for the login user (each `ssh-ed25519 AAAA... name`).
    #[serde(default)]
    pub ssh_keys: Vec<Spanned<String>>,
    /// The DNS server the VMs use. Default: the network's gateway.
    pub nameserver: S<String>,
}

/// The VMID of an existing template, or a cloud image to make the template from.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(untagged)]
pub enum RawTemplate {
    /// The VMID of an existing cloud-init template on the Proxmox node, e.g. `9000`.
    Vmid(i64),
    /// A cloud image to make the template from.
    Image(RawTemplateImage),
}

/// A cloud image and its checksum.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTemplateImage {
    /// Where the Proxmox host downloads the image from, e.g.
    /// `https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img`.
    #[schemars(required)]
    pub image: S<String>,
    /// The image's checksum as `sha256:HEX` (or `sha512:HEX`), from the image's `SHA256SUMS`.
    #[schemars(required)]
    pub checksum: S<String>,
    /// The VMID the template gets. Default: the next free one.
    pub vmid: S<i64>,
}

/// The struct name `RawTemplate` deserializes as: a scalar under it goes to the visitor as
/// itself (a VMID), a mapping as a struct with known keys, so unknown keys are reported.
pub(crate) const SCALAR_OR_STRUCT: &str = "$homelab::ScalarOrStruct";

impl<'de> Deserialize<'de> for RawTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawTemplate;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a template VMID or `{image: URL, checksum: sha256:HEX}`")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawTemplate, E> {
                Ok(RawTemplate::Vmid(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawTemplate, E> {
                Ok(RawTemplate::Vmid(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawTemplate, A::Error> {
                let mut image = RawTemplateImage {
                    image: None,
                    checksum: None,
                    vmid: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "image" => image.image = map.next_value()?,
                        "checksum" => image.checksum = map.next_value()?,
                        "vmid" => image.vmid = map.next_value()?,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(RawTemplate::Image(image))
            }
        }
        d.deserialize_struct(SCALAR_OR_STRUCT, &["image", "checksum", "vmid"], V)
    }
}

/// The VM a node runs in on Proxmox VE.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawVm {
    /// The VM's id. Default: the next free one (a VM already named like the node is adopted).
    pub vmid: S<i64>,
    /// CPU cores. Default: 2.
    pub cores: S<i64>,
    /// Memory, e.g. `4Gi` (whole MiB). Default: `4Gi`.
    pub memory: S<String>,
    /// The boot disk's size, e.g. `32Gi` (whole GiB; grown, never shrunk). Default: `32Gi`.
    pub disk: S<String>,
    /// The Proxmox node the VM runs on. Default: `proxmox.node`.
    pub node: S<String>,
}

/// How `secrets.sops.yaml` is encrypted besides your age keys.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSecrets {
    /// A Vault or OpenBao transit key that also wraps the secrets file's data key, in the same
    /// key group as the age recipients (as `sops` writes it), so either an age key or the
    /// server opens the file: the server keeps an audit trail of every decryption and a token
    /// can be revoked. `homelab secrets init` writes new files with it, `homelab secrets
    /// rekey --add-vault` adds it to an existing file, and the Flux flavor renders the token
    /// Secret reference Flux needs.
    pub vault: S<RawVault>,
}

/// A Vault/OpenBao transit key and how homelab authenticates to its server.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawVault {
    /// The server, `https://host[:port]` without a path, e.g.
    /// `https://bao.home.example.com:8200` (`http://` sends the token unencrypted: only for
    /// a server on this machine). Credentials from the environment go to this address when
    /// `VAULT_ADDR`/`BAO_ADDR` are not set, and never to an address a file names.
    #[schemars(required)]
    pub address: S<String>,
    /// Where the transit secrets engine is mounted on the server. Default: `transit`.
    pub transit_path: S<String>,
    /// The transit key's name, e.g. `homelab` (created with `bao write -f
    /// transit/keys/homelab`); the file's data key is wrapped by
    /// `<transitPath>/encrypt/<key>`.
    #[schemars(required)]
    pub key: S<String>,
    /// How homelab logs in: `token` (default; `VAULT_TOKEN` or `BAO_TOKEN`) or `approle` (a
    /// login with `VAULT_ROLE_ID` and `VAULT_SECRET_ID` at `auth/approle`, or at
    /// `VAULT_APPROLE_MOUNT`). The other kind is used only when the environment lacks this one.
    pub auth: S<VaultAuth>,
}

/// How homelab authenticates to Vault/OpenBao.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VaultAuth {
    /// A token from `VAULT_TOKEN` or `BAO_TOKEN`.
    #[default]
    Token,
    /// An AppRole login with `VAULT_ROLE_ID` and `VAULT_SECRET_ID`.
    Approle,
}

/// A Helm chart of your own.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawChart {
    /// The release name (DNS label), e.g. `jellyfin`; also its directory
    /// `applications/<name>` and what `dependsOn` lists.
    #[schemars(required)]
    pub name: S<String>,
    /// The chart repository: an `https://` Helm repository, or an `oci://` registry path
    /// without the chart's name (e.g. `oci://ghcr.io/org/charts`).
    #[schemars(required)]
    pub repo: S<String>,
    /// The chart's name in the repository.
    #[schemars(required)]
    pub chart: S<String>,
    /// The chart version, e.g. `1.4.2` (a Renovate comment keeps it current).
    #[schemars(required)]
    pub version: S<String>,
    /// The namespace it installs into. Default: the release name.
    pub namespace: S<String>,
    /// The chart's Helm values.
    pub values: S<YamlValue>,
    /// Components or charts installed (and ready) before this one, e.g. `[postgres, metallb]`.
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    /// An HTTPS host name under the domain for one of the chart's Services.
    pub host: S<RawChartHost>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawChartHost {
    /// The host name under the domain. Default: the release name.
    pub name: S<String>,
    /// The Service the chart creates (see `helm template`), e.g. `jellyfin`.
    #[schemars(required)]
    pub service: S<String>,
    /// That Service's port.
    #[schemars(required)]
    pub port: S<u16>,
}

/// A reference to a value kept in the encrypted secrets file (`secrets.sops.yaml`), never the
/// value itself. Set values with `homelab secrets set NAME`.
#[derive(Debug, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSecretRef {
    /// Name of the secret in `secrets.sops.yaml` (lowercase letters, digits, `-`).
    #[schemars(required)]
    pub secret: S<String>,
    /// Set when the reader already reported this reference as malformed (e.g. a value
    /// written in its place), so validation does not report it twice.
    #[serde(skip)]
    #[schemars(skip)]
    pub reported: bool,
}

pub(crate) const SECRET_REF: &str = "$homelab::SecretRef";
pub(crate) const REPORTED_MARK: &str = "$reported";

impl<'de> Deserialize<'de> for RawSecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawSecretRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a secret reference `{secret: NAME}`")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawSecretRef, A::Error> {
                let mut secret = None;
                let mut reported = false;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "secret" => secret = map.next_value()?,
                        REPORTED_MARK => {
                            reported = true;
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(RawSecretRef { secret, reported })
            }
        }
        d.deserialize_struct(SECRET_REF, &["secret"], V)
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawNetwork {
    /// The LAN in CIDR notation. Example: `192.168.2.0/24`.
    #[schemars(required)]
    pub subnet: S<String>,
    /// The router's address. Example: `192.168.2.1`.
    #[schemars(required)]
    pub gateway: S<String>,
    /// The domain under which every service gets a host name (`grafana.<domain>`).
    /// Example: `home.jetzinger.com`.
    #[schemars(required)]
    pub domain: S<String>,
    /// Addresses MetalLB may hand to LoadBalancer services: `FIRST-LAST` or a CIDR, inside the
    /// subnet, outside your DHCP range. Example: `192.168.2.100-192.168.2.120`.
    #[schemars(required)]
    pub load_balancer_pool: S<String>,
    /// The address Traefik (the ingress) answers on; the wildcard DNS record points here.
    /// Default: the first address of the pool.
    pub ingress_ip: S<String>,
    /// Who answers `*.<domain>` on your LAN, so the docs and checks can tell you what to set.
    pub dns: S<RawDns>,
    /// How you reach the lab from outside (Tailscale). Its names go into the API certificate.
    pub remote_access: S<RawRemoteAccess>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawDns {
    /// `pihole`, `adguard`, `nextdns`, `cloudflare` or `manual`: where the lab's names
    /// (`*.<domain>` or each host) point at `ingressIp`. With the provider's API settings below,
    /// `homelab dns apply` sets the records; without them the docs say what to set by hand.
    #[schemars(required)]
    pub provider: S<DnsProvider>,
    /// pihole and adguard: the web interface's address, e.g. `http://192.168.2.2`.
    pub url: S<String>,
    /// adguard only: the user name of the web interface.
    pub username: S<String>,
    /// pihole: the web interface password or an app password (Settings > Web interface / API);
    /// adguard: the user's password.
    pub password: S<RawSecretRef>,
    /// nextdns only: the profile (configuration) ID, e.g. `abc123`.
    pub profile: S<String>,
    /// nextdns only: the API key from the bottom of the account page.
    pub api_key: S<RawSecretRef>,
    /// cloudflare only: the zone ID of the domain (the zone's Overview page).
    pub zone_id: S<String>,
    /// cloudflare only: an API token with DNS edit permission on the zone.
    pub api_token: S<RawSecretRef>,
    /// `wildcard` (one record `*.<domain>`; the default where the provider has wildcards) or
    /// `hosts` (one record per service host; Pi-hole's local DNS records only take this).
    pub records: S<DnsRecords>,
    /// The LAN resolvers `homelab status` asks whether each host resolves to `ingressIp`:
    /// `IP` or `IP:PORT`. Default: the system's resolvers (`/etc/resolv.conf`).
    #[serde(default)]
    pub servers: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsProvider {
    Nextdns,
    Cloudflare,
    Pihole,
    Adguard,
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsRecords {
    Wildcard,
    Hosts,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRemoteAccess {
    /// The Tailscale name or IP of the first server (e.g. `k3s-master.tail1234.ts.net` or
    /// `100.64.0.10`); added to the API server certificate.
    pub tailscale: S<String>,
    /// Further names or addresses the API server certificate must cover.
    #[serde(default)]
    pub extra_sans: Vec<Spanned<String>>,
    /// Which address `homelab kubeconfig` writes: `tailscale` (default when set) or `lan`.
    pub kubeconfig_address: S<KubeconfigAddress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KubeconfigAddress {
    Tailscale,
    Lan,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCluster {
    /// The K3s release every node runs, e.g. `v1.34.2+k3s1` (see github.com/k3s-io/k3s/releases).
    #[schemars(required)]
    pub k3s_version: S<String>,
    /// The machines of the cluster. At least one `server`; an odd number of servers keeps
    /// etcd quorum.
    #[schemars(required)]
    pub nodes: S<Vec<Spanned<RawNode>>>,
    /// Automatic etcd snapshots of the cluster state.
    pub etcd_snapshots: S<RawEtcdSnapshots>,
    /// Automatic operating-system updates on the nodes.
    pub os_updates: S<RawOsUpdates>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawNode {
    /// Host name of the node (DNS label), e.g. `k3s-master`.
    #[schemars(required)]
    pub name: S<String>,
    /// `server` (control plane + etcd) or `agent` (worker).
    #[schemars(required)]
    pub role: S<NodeRole>,
    /// The node's static IPv4 address inside the subnet.
    #[schemars(required)]
    pub address: S<String>,
    /// How to log in. Anything left out comes from your `~/.ssh/config` and agent.
    pub ssh: S<RawSsh>,
    /// Kubernetes labels for the node, e.g. `{gpu: nvidia}`.
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<String>>,
    /// Taints as `key=value:Effect` (Effect: NoSchedule, PreferNoSchedule, NoExecute).
    #[serde(default)]
    pub taints: Vec<Spanned<String>>,
    /// The node has a GPU: `true` for one NVIDIA GPU, or a mapping to say more (time-slicing,
    /// a taint). `nodes apply` checks the driver, installs the NVIDIA container toolkit and
    /// labels the node `homelab/gpu=nvidia`; the NVIDIA device plugin runs on it.
    pub gpu: S<RawGpu>,
    /// Run the node as a VM on the spec's `proxmox:` host (`homelab vms apply` makes it).
    pub vm: S<RawVm>,
}

/// `gpu: true`, `gpu: false`, or `gpu: {vendor: nvidia, sharing: {replicas: 4}, taint: true}`.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum RawGpu {
    /// `true`: one NVIDIA GPU, not shared, no taint. `false`: no GPU.
    Flag(bool),
    /// The GPU described.
    Detail(RawGpuDetail),
}

pub(crate) const FLAG_OR_MAPPING: &str = "$homelab::FlagOrMapping";

impl<'de> Deserialize<'de> for RawGpu {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawGpu;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`true`, `false` or a mapping")
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<RawGpu, E> {
                Ok(RawGpu::Flag(b))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawGpu, A::Error> {
                RawGpuDetail::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawGpu::Detail)
            }
        }
        d.deserialize_struct(FLAG_OR_MAPPING, GPU_FIELDS, V)
    }
}

const GPU_FIELDS: &[&str] = &["vendor", "count", "sharing", "taint"];

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawGpuDetail {
    /// Who made the GPU: `nvidia` (the only vendor supported so far). Default: `nvidia`.
    pub vendor: S<GpuVendor>,
    /// How many GPUs the node has. Default: 1.
    pub count: S<u32>,
    /// Time-slicing: several pods take turns on each GPU (no memory isolation between them).
    pub sharing: S<RawGpuSharing>,
    /// Taint the node `nvidia.com/gpu=true:NoSchedule`, so that only pods that need a GPU run
    /// there. Default: false.
    pub taint: S<bool>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawGpuSharing {
    /// How many pods each GPU takes at once (at least 2), e.g. `4` for Ollama, vLLM and Plex on
    /// one card.
    #[schemars(required)]
    pub replicas: S<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuVendor {
    Nvidia,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Server,
    Agent,
}

impl std::fmt::Display for NodeRole {
    /// As the spec writes it: `server` or `agent`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeRole::Server => "server",
            NodeRole::Agent => "agent",
        })
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSsh {
    /// Login user (needs sudo). Default: from `~/.ssh/config`, else your local user name.
    pub user: S<String>,
    /// SSH port. Default: from `~/.ssh/config`, else 22.
    pub port: S<u16>,
    /// Private key file, e.g. `~/.ssh/id_ed25519`. Default: your SSH agent and config.
    pub identity: S<String>,
    /// A secret holding the sudo password, when sudo asks for one.
    pub sudo_password: S<RawSecretRef>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawEtcdSnapshots {
    /// Cron schedule (5 fields, UTC). Default: `0 */12 * * *` (00:00 and 12:00).
    pub schedule: S<String>,
    /// Snapshots to keep. Default: 14 (7 days at two a day).
    pub retention: S<u32>,
    /// Directory on the servers where k3s writes the snapshots. With `storage.nfs`,
    /// `homelab nodes apply` mounts the NAS directory `<storage.nfs.path>/k3s-etcd-snapshots/<name>`
    /// there on every server, so the snapshots survive the loss of a server; without it they
    /// stay on each server's disk. Default: `/mnt/k3s-snapshots`.
    pub dir: S<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawOsUpdates {
    /// Which updates install automatically: `security` (default), `all` or `none`.
    pub automatic: S<OsUpdateMode>,
    /// Automatic reboot when an update needs one: `never` (default) or a time `HH:MM`.
    pub reboot: S<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OsUpdateMode {
    Security,
    All,
    None,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawStorage {
    /// The NFS export that backs persistent volumes.
    pub nfs: S<RawNfs>,
    /// Name of the default StorageClass. Default: `nfs-client`.
    pub storage_class: S<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawNfs {
    /// NFS server address, e.g. `192.168.2.2`.
    #[schemars(required)]
    pub server: S<String>,
    /// Exported path, e.g. `/volume1/k8s-data`.
    #[schemars(required)]
    pub path: S<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTls {
    /// Where certificates come from: `acme` (default; Let's Encrypt, for a domain you own at a
    /// DNS provider) or `internal-ca` (the lab's own certificate authority, kept in the secrets
    /// file; works for names without public DNS such as `lab.home.arpa` or `lab.lan`, and
    /// every device that opens the lab must trust it once: `homelab tls ca`).
    pub mode: S<TlsMode>,
    /// `acme` only: the email Let's Encrypt sends expiry warnings to.
    pub acme_email: S<String>,
    /// `acme` only: `production` (trusted certificates, strict rate limits) or `staging`
    /// (untrusted, for trying things out). Default: `production`. Both issuers are always
    /// created.
    pub environment: S<AcmeEnvironment>,
    /// `acme` only: how Let's Encrypt checks that you own the domain.
    pub challenge: S<RawChallenge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    Acme,
    InternalCa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AcmeEnvironment {
    Production,
    Staging,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawChallenge {
    /// `dns01` (default; works for a lab that is not reachable from the internet) or
    /// `http01` (needs the ingress reachable from the internet on port 80).
    #[schemars(required)]
    #[serde(rename = "type")]
    pub kind: S<ChallengeKind>,
    /// DNS-01 only: the DNS provider hosting the domain: `cloudflare`, `digitalocean`,
    /// `route53`, `clouddns` (Google Cloud DNS), `azuredns` or `rfc2136` (your own BIND,
    /// PowerDNS or Knot taking dynamic updates).
    pub provider: S<Dns01Provider>,
    /// DNS-01 only: API token (cloudflare, digitalocean) or secret access key (route53).
    pub api_token: S<RawSecretRef>,
    /// route53 only: the access key ID.
    pub access_key_id: S<String>,
    /// route53 only: the AWS region, e.g. `eu-central-1`.
    pub region: S<String>,
    /// clouddns only: the Google Cloud project holding the zone, e.g. `my-lab-123456`.
    pub project: S<String>,
    /// clouddns only: the JSON key of a service account with the DNS Administrator role.
    pub service_account_key: S<RawSecretRef>,
    /// azuredns only: the service principal's application (client) ID.
    pub client_id: S<String>,
    /// azuredns only: the service principal's client secret.
    pub client_secret: S<RawSecretRef>,
    /// azuredns only: the subscription ID of the DNS zone.
    pub subscription_id: S<String>,
    /// azuredns only: the tenant (directory) ID of the service principal.
    pub tenant_id: S<String>,
    /// azuredns only: the resource group of the DNS zone.
    pub resource_group: S<String>,
    /// clouddns and azuredns: the zone's name at the provider, when cert-manager should not
    /// look it up (several zones for the same domain).
    pub hosted_zone: S<String>,
    /// rfc2136 only: the authoritative server taking updates, `HOST` or `HOST:PORT` (port 53
    /// by default), e.g. `192.168.2.53` or `ns1.example.com:5353`.
    pub nameserver: S<String>,
    /// rfc2136 only: the TSIG key's name as the server knows it, e.g. `cert-manager`.
    pub tsig_key_name: S<String>,
    /// rfc2136 only: the TSIG algorithm: `hmac-sha256` (default), `hmac-sha512`, `hmac-sha1`
    /// or `hmac-md5`.
    pub tsig_algorithm: S<TsigAlgorithm>,
    /// rfc2136 only: the TSIG key's secret (base64, as `tsig-keygen` prints it).
    pub tsig_secret: S<RawSecretRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TsigAlgorithm {
    HmacMd5,
    HmacSha1,
    HmacSha256,
    HmacSha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeKind {
    Dns01,
    Http01,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dns01Provider {
    Cloudflare,
    Digitalocean,
    Route53,
    Clouddns,
    Azuredns,
    Rfc2136,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawAlerting {
    /// Where alerts are sent. Each receiver has exactly one of `ntfy`, `pushover`, `webhook`.
    #[serde(default)]
    pub receivers: Vec<Spanned<RawReceiver>>,
    /// Where the rendered tree can be read in a browser, e.g.
    /// `https://github.com/you/homelab/blob/main`: every alert's `runbook_url` becomes
    /// `<runbookBaseUrl>/docs/runbooks/<name>.md`, a link that opens from the notification.
    /// Without it the links are paths relative to the tree's root.
    pub runbook_base_url: S<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawReceiver {
    /// A name for the receiver, e.g. `phone`.
    #[schemars(required)]
    pub name: S<String>,
    /// Which alert severities go to it: `critical` (P1), `warning` (P2), `info` (P3).
    #[serde(default)]
    #[schemars(required)]
    pub severities: Vec<Spanned<AlertSeverity>>,
    /// Push to an ntfy topic (ntfy.sh or your own server).
    pub ntfy: S<RawNtfy>,
    /// Push through Pushover.
    pub pushover: S<RawPushover>,
    /// POST Alertmanager's JSON to a URL.
    pub webhook: S<RawWebhook>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    Critical,
    Warning,
    Info,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawNtfy {
    /// The ntfy server. Default: `https://ntfy.sh`.
    pub url: S<String>,
    /// The topic to publish to (treat it like a password on the public server).
    #[schemars(required)]
    pub topic: S<String>,
    /// Access token for a protected topic.
    pub token: S<RawSecretRef>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPushover {
    /// Your Pushover user key.
    #[schemars(required)]
    pub user_key: S<RawSecretRef>,
    /// The Pushover application token.
    #[schemars(required)]
    pub token: S<RawSecretRef>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawWebhook {
    /// The URL Alertmanager POSTs to (http or https).
    #[schemars(required)]
    pub url: S<String>,
}

/// Your changes to a chart of the catalog: another version, and values of your own.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawHelm {
    /// The chart version to install instead of the one homelab pins, e.g. a newer patch
    /// release. The rendered `# renovate:` comment follows it. Values are checked against
    /// the chart's `values.schema.json` only at the pinned version.
    pub version: S<String>,
    /// Helm values deep-merged over the values homelab generates: mappings merge key by key,
    /// a list replaces the generated list, and `null` removes a generated key. `homelab plan`
    /// shows what they change; `homelab validate` checks them against the chart.
    pub values: S<YamlValue>,
}

/// The Helm settings of a chart of the platform.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawChartSettings {
    /// Another chart version and your own values for this chart.
    pub helm: S<RawHelm>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawInfrastructure {
    /// The NFS provisioner (chart `nfs-subdir-external-provisioner`), run when `storage` is set.
    pub nfs: S<RawChartSettings>,
    /// MetalLB (chart `metallb`).
    pub metallb: S<RawChartSettings>,
    /// cert-manager (OCI chart `cert-manager`).
    pub cert_manager: S<RawChartSettings>,
    /// Traefik, which K3s bundles: only `helm.values` apply (written into its
    /// HelmChartConfig); its version comes with K3s.
    pub traefik: S<RawChartSettings>,
}

/// The Helm settings of the two charts of the logging service.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawLoggingHelm {
    /// Loki (chart `loki`).
    pub loki: S<RawHelm>,
    /// Alloy, the log collector (chart `alloy`).
    pub alloy: S<RawHelm>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawServices {
    /// Prometheus, Grafana and Alertmanager (kube-prometheus-stack).
    pub monitoring: S<RawMonitoring>,
    /// Loki and Alloy: pod logs, searchable in Grafana.
    pub logging: S<RawLogging>,
    /// PostgreSQL for the lab's applications, with verified nightly backups.
    pub postgres: S<RawPostgres>,
    /// Ollama: local LLM inference.
    pub ollama: S<RawOllama>,
    /// n8n: workflow automation, on PostgreSQL.
    pub n8n: S<RawN8n>,
    /// Paperless-ngx with Redis: scanned documents, OCR and search.
    pub paperless: S<RawPaperless>,
    /// OpenBao: an in-cluster secrets server (integrated storage, an audit log shipped to Loki).
    pub openbao: S<RawOpenbao>,
    /// vLLM: an OpenAI-compatible server for one Hugging Face model on a GPU node.
    pub vllm: S<RawVllm>,
    /// Open WebUI: a chat interface over the lab's Ollama and vLLM, with its own login.
    pub open_webui: S<RawOpenWebui>,
    /// An nginx proxy from `dev.<domain>/<path>` to development servers on your LAN.
    pub dev_proxy: S<RawDevProxy>,
    /// Remote development containers reachable over SSH through the dev proxy.
    #[serde(default)]
    pub dev_containers: Vec<Spanned<RawDevContainer>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawMonitoring {
    /// Set to `false` to keep the settings but not run the service.
    pub enabled: S<bool>,
    /// How long Prometheus keeps metrics, e.g. `15d`. Default: `15d`.
    pub retention: S<String>,
    /// Size of the Prometheus volume, e.g. `20Gi`. Default: `20Gi`.
    pub storage: S<String>,
    /// Grafana's admin password. Default: the secret `grafana-admin-password`.
    pub grafana_admin_password: S<RawSecretRef>,
    /// Another version and your own values for the `kube-prometheus-stack` chart.
    pub helm: S<RawHelm>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawLogging {
    /// Set to `false` to keep the settings but not run the service.
    pub enabled: S<bool>,
    /// How long logs are kept, at least `7d` (NFR19). Default: `7d`.
    pub retention: S<String>,
    /// Size of the Loki volume. Default: `10Gi`.
    pub storage: S<String>,
    /// Another version and your own values for the `loki` and `alloy` charts.
    pub helm: S<RawLoggingHelm>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPostgres {
    /// Set to `false` to keep the settings but not run the service.
    pub enabled: S<bool>,
    /// PostgreSQL major version (official `postgres` image). Default: 17.
    pub version: S<u32>,
    /// Size of the data volume. Default: `20Gi`.
    pub storage: S<String>,
    /// The superuser password. Default: the secret `postgres-superuser-password`.
    pub superuser_password: S<RawSecretRef>,
    /// Databases created on start, each with its owner role.
    #[serde(default)]
    pub databases: Vec<Spanned<RawDatabase>>,
    /// Nightly dumps to the NFS export, verified after writing.
    pub backup: S<RawPostgresBackup>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawDatabase {
    /// Database name (lowercase letters, digits, `_`).
    #[schemars(required)]
    pub name: S<String>,
    /// Owner role, created with a generated password. Default: the database name.
    pub owner: S<String>,
    /// The owner's password. Default: the secret `postgres-<owner>-password`.
    pub password: S<RawSecretRef>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPostgresBackup {
    /// Cron schedule (5 fields, UTC). Default: `0 2 * * *`.
    pub schedule: S<String>,
    /// Verified dumps kept per database. Default: 7.
    pub keep: S<u32>,
    /// Size of the backup volume. Default: `20Gi`.
    pub storage: S<String>,
    /// What each dump records per table, in the dump's own snapshot, for every restore and
    /// drill to check: `checksums` (default; row counts and a hash of every row, so a changed
    /// value is caught) or `row-counts` (counts only: lost or extra rows are caught, changed
    /// values are not; no hash pass over the data).
    pub verify: S<BackupVerify>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupVerify {
    Checksums,
    RowCounts,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawOllama {
    /// Set to `false` to keep the settings but not run the service.
    pub enabled: S<bool>,
    /// Models pulled on start, e.g. `llama3.2:3b`.
    #[serde(default)]
    pub models: Vec<Spanned<String>>,
    /// Size of the model volume. Default: `50Gi`.
    pub storage: S<String>,
    /// Run on a GPU node (`runtimeClassName: nvidia`). Default: false.
    pub gpu: S<bool>,
    /// Host name under the domain. Default: `ollama`.
    pub host: S<String>,
    /// Another version and your own values for the `ollama` chart.
    pub helm: S<RawHelm>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawN8n {
    /// Set to `false` to keep the settings but not run the service.
    pub enabled: S<bool>,
    /// The PostgreSQL database n8n uses (must be listed under `services.postgres.databases`).
    /// Default: `n8n`.
    pub database: S<String>,
    /// Key n8n encrypts stored credentials with. Default: the secret `n8n-encryption-key`.
    pub encryption_key: S<RawSecretRef>,
    /// Host name under the domain. Default: `n8n`.
    pub host: S<String>,
    /// Another version and your own values for the `n8n` chart.
    pub helm: S<RawHelm>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawOpenWebui {
    /// Set to `false` to keep the settings but not run the service.
    pub enabled: S<bool>,
    /// The e-mail address of the admin account created on the first start.
    /// Default: `admin@<domain>`.
    pub admin_email: S<String>,
    /// The admin account's password. Default: the secret `open-webui-admin-password`.
    pub admin_password: S<RawSecretRef>,
    /// Size of the data volume (accounts, chats, uploaded documents). Default: `5Gi`.
    pub storage: S<String>,
    /// Host name under the domain. Default: `chat`.
    pub host: S<String>,
    /// Another version and your own values for the `open-webui` chart.
    pub helm: S<RawHelm>,
    /// Not a setting: read only to say why the lab's basic auth cannot sit in front of it.
    #[schemars(skip)]
    pub auth: S<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawVllm {
    /// Set to `false` to keep the settings but not run the service.
    pub enabled: S<bool>,
    /// The Hugging Face model repository to serve, e.g. `Qwen/Qwen2.5-1.5B-Instruct`.
    #[schemars(required)]
    pub model: S<String>,
    /// The branch, tag or commit of the model repository; a commit hash makes the lab
    /// reproducible. Default: `main`.
    pub revision: S<String>,
    /// The Hugging Face token for gated or private models, e.g. `{secret: huggingface-token}`.
    /// Leave it out for public models.
    pub hf_token: S<RawSecretRef>,
    /// Size of the model cache volume (the downloaded weights). Default: `50Gi`.
    pub storage: S<String>,
    /// Host name under the domain. Default: `vllm`.
    pub host: S<String>,
    /// More `vllm serve` flags, e.g. `[--max-model-len=8192, --gpu-memory-utilization=0.6]`.
    #[serde(default)]
    pub args: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawOpenbao {
    /// Set to `false` to keep the settings but not run the service.
    pub enabled: S<bool>,
    /// Size of the integrated (raft) storage volume. Default: `5Gi`.
    pub storage: S<String>,
    /// Size of the volume the audit log is written to. Default: `5Gi`.
    pub audit_storage: S<String>,
    /// Host name under the domain. Default: `bao`.
    pub host: S<String>,
    /// Another version and your own values for the `openbao` chart.
    pub helm: S<RawHelm>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPaperless {
    /// Set to `false` to keep the settings but not run the service.
    pub enabled: S<bool>,
    /// Size of the document (media) volume. Default: `50Gi`.
    pub storage: S<String>,
    /// Django secret key. Default: the secret `paperless-secret-key`.
    pub secret_key: S<RawSecretRef>,
    /// OCR languages (Tesseract codes joined by `+`). Default: `eng`.
    pub ocr_language: S<String>,
    /// Host name under the domain. Default: `paperless`.
    pub host: S<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawDevProxy {
    /// Set to `false` to keep the settings but not run the service.
    pub enabled: S<bool>,
    /// Path routes: `dev.<domain>/<path>` is proxied to `host:port` on your LAN.
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    /// Host name under the domain. Default: `dev`.
    pub host: S<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRoute {
    /// URL path prefix starting with `/`, e.g. `/app1`.
    #[schemars(required)]
    pub path: S<String>,
    /// Where requests go: `host:port`, e.g. `192.168.2.50:3000`.
    #[schemars(required)]
    pub target: S<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawDevContainer {
    /// Name of the container (DNS label), e.g. `tom`.
    #[schemars(required)]
    pub name: S<String>,
    /// Port on the ingress address that forwards to this container's SSH server.
    #[schemars(required)]
    pub ssh_port: S<u16>,
    /// Public keys allowed to log in (`ssh-ed25519 AAAA... you@laptop`).
    #[serde(default)]
    pub authorized_keys: Vec<Spanned<String>>,
    /// Size of the local workspace volume. Default: `20Gi`.
    pub workspace: S<String>,
    /// CPU limit, e.g. `4`. Default: `2`.
    pub cpu: S<String>,
    /// Memory limit, e.g. `8Gi`. Default: `4Gi`.
    pub memory: S<String>,
    /// Image to run instead of the lab's own, e.g. `ghcr.io/you/dev:1.0` (it must run sshd
    /// like the rendered `base-image/Dockerfile`). Default: the base image the lab builds from
    /// that Dockerfile, tagged with its content hash.
    pub image: S<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawApp {
    /// Name of the app (DNS label), e.g. `mealie`.
    #[schemars(required)]
    pub name: S<String>,
    /// Container image with a pinned tag, e.g. `ghcr.io/mealie-recipes/mealie:v2.3.0`.
    #[schemars(required)]
    pub image: S<String>,
    /// The port the container listens on.
    #[schemars(required)]
    pub port: S<u16>,
    /// Host name under the domain (default: the app name); `none` for no web access.
    pub host: S<String>,
    /// Namespace. Default: `apps`.
    pub namespace: S<String>,
    /// Plain environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<String>>,
    /// Environment variables whose values come from secrets.
    #[serde(default)]
    pub secret_env: BTreeMap<String, Spanned<RawSecretRef>>,
    /// Persistent volumes on the NFS storage.
    #[serde(default)]
    pub volumes: Vec<Spanned<RawVolume>>,
    /// A PostgreSQL database the app uses (must be listed under `services.postgres.databases`);
    /// its connection settings are passed as `PGHOST`, `PGPORT`, `PGDATABASE`, `PGUSER`,
    /// `PGPASSWORD`.
    pub database: S<String>,
    /// Include the app's volumes in the documented backup (NFS snapshots). Default: true.
    pub backup: S<bool>,
    /// Further ports reachable on the LAN through a LoadBalancer Service (DNS, media
    /// streaming, ...), e.g. `[{name: dns-udp, port: 53, protocol: UDP}]`.
    #[serde(default)]
    pub ports: Vec<Spanned<RawAppPort>>,
    /// The address of the app's LoadBalancer Service, from `network.loadBalancerPool`, not
    /// the ingress IP and not another app's. Default: MetalLB picks a free one.
    pub load_balancer_ip: S<String>,
    /// Run in the node's network namespace (device discovery, mDNS). Its namespace becomes
    /// privileged, so give such an app a `namespace` of its own.
    pub host_network: S<bool>,
    /// How many pods. When left out, homelab does not set it, so `kubectl scale` sticks.
    pub replicas: S<u32>,
    /// CPU and memory requests and limits.
    pub resources: S<RawResources>,
    /// The container's entrypoint, replacing the image's.
    #[serde(default)]
    pub command: Vec<Spanned<String>>,
    /// Arguments to the entrypoint, replacing the image's.
    #[serde(default)]
    pub args: Vec<Spanned<String>>,
    /// Readiness and liveness check over HTTP.
    pub probe: S<RawProbe>,
    /// Scrape the app's Prometheus metrics (a ServiceMonitor; needs `services.monitoring`).
    pub metrics: S<RawMetrics>,
    /// Run on a GPU node with one NVIDIA GPU (`runtimeClassName: nvidia`). Default: false.
    pub gpu: S<bool>,
    /// A login in front of the app's web address: `none`, `basic` or `sso`. Default: `sso` when
    /// `auth.sso` is set (an app with a login of its own says `none`), else `none`.
    pub auth: S<AppAuth>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawVolume {
    /// Volume name (DNS label), e.g. `data`.
    #[schemars(required)]
    pub name: S<String>,
    /// Where it is mounted in the container, e.g. `/app/data`.
    #[schemars(required)]
    pub mount_path: S<String>,
    /// Size of a new volume of the app's own, e.g. `5Gi`. Give either `size` or `share`.
    pub size: S<String>,
    /// A volume from `shares:` that other apps mount too (give it instead of `size`).
    pub share: S<String>,
    /// With `share`: the directory inside the share to mount, e.g. `tv` (default: all of it).
    pub sub_path: S<String>,
    /// Mount it read-only. Default: false.
    pub read_only: S<bool>,
}

/// A port of an app reachable on the LAN at the app's load-balancer address.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawAppPort {
    /// Port name (up to 15 lowercase letters, digits and `-`), e.g. `dns-udp`.
    #[schemars(required)]
    pub name: S<String>,
    /// The port number, the same in the container and on the load-balancer address.
    #[schemars(required)]
    pub port: S<u16>,
    /// `TCP` (default) or `UDP`.
    pub protocol: S<PortProtocol>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema, serde::Serialize)]
pub enum PortProtocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

impl std::fmt::Display for PortProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PortProtocol::Tcp => "TCP",
            PortProtocol::Udp => "UDP",
        })
    }
}

/// CPU and memory of a container.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawResourceAmounts {
    /// CPU as cores (`2`, `0.5`) or millicores (`500m`).
    pub cpu: S<String>,
    /// Memory, e.g. `512Mi` or `2Gi`.
    pub memory: S<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawResources {
    /// What the scheduler reserves for the app. Default: `{cpu: 50m, memory: 128Mi}`.
    pub requests: S<RawResourceAmounts>,
    /// The most it may use. Default: `{memory: 1Gi}` (no CPU limit).
    pub limits: S<RawResourceAmounts>,
}

/// An HTTP check of the app's health.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawProbe {
    /// The path that answers 2xx or 3xx while the app is healthy, e.g. `/health`.
    #[schemars(required)]
    pub path: S<String>,
    /// The port it answers on. Default: the app's `port`.
    pub port: S<u16>,
}

/// Prometheus metrics the app serves.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawMetrics {
    /// The port serving them (may be the app's `port`).
    #[schemars(required)]
    pub port: S<u16>,
    /// The path. Default: `/metrics`.
    pub path: S<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppAuth {
    /// No login in front of the app (it has its own, or needs none).
    None,
    /// The lab's login (user `admin`, the Traefik dashboard's password) in front of it.
    Basic,
    /// The single sign-on portal of `auth.sso` in front of it.
    Sso,
}

/// A volume that several apps mount.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawShare {
    /// The name apps use in `volumes: [{share: NAME}]` (DNS label), e.g. `media`.
    #[schemars(required)]
    pub name: S<String>,
    /// Existing data on the NAS, mounted as it is. `prune` never deletes it.
    pub nfs: S<RawShareNfs>,
    /// A new shared volume of this size from the lab's storage class, e.g. `100Gi` (for
    /// `nfs`: the capacity the volume declares, default `1Ti`).
    pub size: S<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawShareNfs {
    /// The exported directory, e.g. `/volume1/media`.
    #[schemars(required)]
    pub path: S<String>,
    /// The NFS server. Default: the server of `storage.nfs`.
    pub server: S<String>,
}
