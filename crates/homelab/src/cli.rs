//! The command line: global flags and one subcommand per job, as clap definitions only.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::Format;

/// Build and run a production-grade K3s home lab from one declarative file.
///
/// Start with `homelab init` (writes a commented homelab.yaml), check it with
/// `homelab validate`, see what it builds with `homelab plan`, and write the manifests with
/// `homelab render --out lab/`.
#[derive(Debug, Parser)]
#[command(
    name = "homelab",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(after_help = "Exit codes: 0 ok, 1 failure or unhealthy, 2 usage error or invalid spec.")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The lab spec to read (or write, for `init`).
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        env = "HOMELAB_FILE",
        default_value = "homelab.yaml",
        value_name = "FILE"
    )]
    pub file: PathBuf,
    /// Output format: `text` for people, `json` for scripts (one document on stdout).
    #[arg(long, global = true, value_enum, default_value_t = Format::Text, value_name = "FORMAT")]
    pub output: Format,
    /// Print only results and errors, no progress.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented homelab.yaml for your lab.
    ///
    /// Asks for what only you know (domain, ACME email, LAN, nodes, NAS export) on a terminal,
    /// or takes it from flags; without a terminal every needed flag must be given. The ntfy
    /// topic is random (ntfy.sh topics are public) and the dev container gets your first
    /// `~/.ssh/id_*.pub` unless `--ssh-key` names another. The default preset enables every
    /// service; `--preset minimal` writes only the platform (K3s, NFS storage, MetalLB,
    /// cert-manager, Traefik). The example lab of the planning documents is
    /// examples/homelab.yaml. Refuses to overwrite an existing file unless `--force` is given.
    ///
    /// Example: `homelab init`, or `homelab init --domain lab.my-domain.net --email
    /// me@my-domain.net --subnet 192.168.1.0/24 --nodes k3s-1=192.168.1.20,k3s-2=192.168.1.21
    /// --nfs 192.168.1.2:/volume1/k8s --ssh-user admin`.
    Init(InitArgs),
    /// Check the spec and report every problem at once.
    ///
    /// Each problem comes with its file:line:col, the source line and a `help:` line saying
    /// what to do. Exits 0 when the spec is valid (warnings allowed) and 2 when it is not.
    ///
    /// Example: `homelab validate -f lab.yaml`, or in CI
    /// `homelab validate --output json | jq '.diagnostics[]'`.
    Validate,
    /// Show what the lab is made of, without touching anything.
    ///
    /// Lists the components in apply order with what each depends on, their Kubernetes objects
    /// and Helm releases (chart, version, repository), the URLs the lab serves, what happens
    /// on each node, and every secret the lab needs (names only, never values).
    /// `--output json` gives the same as one JSON document.
    ///
    /// Example: `homelab plan`, or `homelab plan --output json | jq '.components[].name'`.
    Plan,
    /// Write the lab as files: a GitOps tree you can commit and apply without this tool.
    ///
    /// The tree follows the planning documents: `infrastructure/`, `monitoring/`,
    /// `applications/` with a directory per component (manifests, `values-homelab.yaml` per
    /// chart, a README, a `kustomization.yaml`), and `docs/` with decisions, runbooks and an
    /// architecture diagram. The same spec always gives the same bytes.
    ///
    /// Flavor `k3s` (default) installs charts with K3s' HelmChart objects and writes no
    /// Secret: `homelab apply` creates them from secrets.sops.yaml. Flavor `flux` writes
    /// HelmRelease/HelmRepository and Flux Kustomizations, and the Secrets SOPS-encrypted
    /// (it needs the secrets file and your age key).
    ///
    /// Rendering again replaces what the last render wrote (listed in `.homelab-rendered`),
    /// deletes what it no longer writes, and leaves other files alone. A non-empty directory
    /// that was not rendered into is refused unless `--force`.
    ///
    /// Example: `homelab render --out lab/`, then `kubectl kustomize lab/infrastructure`.
    Render(RenderArgs),
    /// Manage the lab's secrets: encrypted in git (SOPS with age), generated, rotated.
    ///
    /// Values live in secrets.sops.yaml next to the spec, encrypted to your age key; the
    /// `sops` CLI reads and writes the same file. Start with `homelab secrets init`, see what
    /// is set with `homelab secrets list`, and check for leaks with `homelab secrets scan`.
    Secrets(crate::cmd::secrets::SecretsArgs),
    /// Make, change and remove the nodes' VMs on Proxmox VE (cloud-init clones of a template).
    ///
    /// Logs in with the spec's `proxmox:` token or user and the secret in secrets.sops.yaml.
    /// Start with `homelab vms plan`; `homelab vms apply` is safe to re-run.
    Vms(crate::cmd::vms::VmsArgs),
    /// Install, join, upgrade and remove the lab's nodes over SSH (k3s).
    ///
    /// Uses your OpenSSH client, so `~/.ssh/config`, ProxyJump, the agent and known_hosts
    /// work as with `ssh` (point at another config with `--ssh-config` or
    /// `HOMELAB_SSH_CONFIG`). Start with `homelab nodes apply --dry-run`.
    Nodes(crate::cmd::nodes::NodesArgs),
    /// Fetch the lab's admin kubeconfig (mode 0600) and merge it into ~/.kube/config.
    ///
    /// Example: `homelab kubeconfig --merge`, then `kubectl --context <lab> get nodes`.
    Kubeconfig(crate::cmd::kubeconfig::KubeconfigArgs),
    /// Apply the lab to the cluster: Secrets from secrets.sops.yaml, then every component in
    /// dependency order with server-side apply, waiting where the next step needs it.
    ///
    /// Waits for CRDs to be established before their custom resources, for the webhooks of
    /// cert-manager and MetalLB to answer, for HelmChart install jobs and for workloads others
    /// need. Safe to re-run: an unchanged lab reports every component unchanged, and an
    /// interrupted apply is finished by the next one. `--prune` deletes what an earlier apply
    /// created and the spec no longer has, and nothing else.
    ///
    /// Example: `homelab diff`, then `homelab apply`.
    Apply(crate::cmd::apply::ApplyArgs),
    /// Show what `homelab apply` would change in the cluster, object by object.
    ///
    /// A server-side dry run compared with what is live, printed as a unified diff (Secret
    /// values hidden). Exits 0 when nothing would change, 1 when something would, 2 when the
    /// diff cannot be made.
    Diff(crate::cmd::diff::DiffArgs),
    /// Check the lab's health: nodes, components, URLs and backups, in one screen.
    ///
    /// Nodes Ready and without pressure; each component's chart installed, workloads ready,
    /// volumes bound, LoadBalancer addresses and certificates; each URL answering over HTTPS
    /// with TLS 1.2 or newer and a valid certificate; the last successful run of each backup.
    /// Exits 0 healthy, 1 unhealthy (each problem with what to do), 2 unreachable.
    Status(crate::cmd::status::StatusArgs),
    /// Serve the lab's dashboard: every component with its URL, health, versions and runbook.
    ///
    /// Pages, the same data as JSON (`/api/overview`), `/metrics` for Prometheus and
    /// `/healthz`, from the checks `homelab status` runs, one pass every `--refresh`. Read-only:
    /// it never changes the cluster and never shows a secret value. Listens on loopback unless
    /// told otherwise; another address needs `--auth-token-file`.
    ///
    /// Example: `homelab serve`, then open http://127.0.0.1:8080/.
    Serve(crate::cmd::serve::ServeArgs),
    /// The lab's own certificate authority (`tls.mode: internal-ca`).
    ///
    /// Example: `homelab tls ca --out homelab-ca.pem`, then trust the file on each device.
    Tls(crate::cmd::tls::TlsArgs),
    /// The lab's names at the DNS provider `network.dns` names: plan and apply.
    ///
    /// Example: `homelab dns plan`, then `homelab dns apply`.
    Dns(crate::cmd::dns::DnsArgs),
    /// Bring the lab up from its spec in one command, resuming where an earlier run stopped.
    ///
    /// Steps: validate the spec; check that secrets.sops.yaml holds every secret (on a
    /// terminal it offers `homelab secrets init`); the VMs when the spec has `proxmox:`;
    /// `nodes apply`; write the kubeconfig and merge it into yours; `apply`; `status` until
    /// healthy (`--wait`); a first backup and `backup drill` when PostgreSQL is on. Each step is
    /// the single command's operation, says what it did, and is safe to repeat: on a lab that
    /// is up every step reports unchanged. A failed step stops with what to do; the next
    /// `homelab up` says where it resumes (from `.homelab/up.json` beside the spec, which
    /// nothing depends on). `--dry-run` runs every step's dry run.
    ///
    /// Example: `homelab up --dry-run`, then `homelab up`.
    Up(crate::cmd::up::UpArgs),
    /// Take the lab down: k3s and its data removed from every node (agents first), then the
    /// VMs of a lab with `proxmox:` (unless `--keep-vms`).
    ///
    /// The volumes' data on NFS is kept unless `--delete-data`, which deletes the lab's
    /// objects first so that the provisioner removes their directories. Asks on a terminal,
    /// naming what is lost; refuses without one unless `--yes`.
    ///
    /// Example: `homelab down --dry-run`, then `homelab down`.
    Down(crate::cmd::down::DownArgs),
    /// Take, list, prune and restore etcd snapshots of the cluster.
    ///
    /// Example: `homelab etcd snapshot save --name before-upgrade`.
    Etcd(crate::cmd::etcd::EtcdArgs),
    /// Back up PostgreSQL now, list dumps and etcd snapshots, and prove the dumps restore.
    ///
    /// Backups run in the cluster as Jobs made from the lab's backup CronJob and are
    /// followed to the end. Example: `homelab backup postgres`, `homelab backup list`,
    /// `homelab backup drill`.
    Backup(crate::cmd::backup::BackupArgs),
    /// Restore a PostgreSQL database from a dump, checked table by table before it is used.
    ///
    /// Example: `homelab restore postgres --db n8n --latest`.
    Restore(crate::cmd::restore::RestoreArgs),
    /// Print the JSON Schema of homelab.yaml (for editors and CI).
    ///
    /// The first line `homelab init` writes points yaml-language-server at the published
    /// copy, so editors complete and check keys as you type.
    ///
    /// Example: `homelab schema > homelab.schema.json`.
    Schema,
    /// Print a shell completion script.
    ///
    /// The script asks `homelab` (on PATH) at each TAB, so it completes subcommands and flags,
    /// and node, secret and database names from the spec the line names (`-f`, else
    /// `HOMELAB_FILE`, else ./homelab.yaml). Bash, zsh, fish, elvish and PowerShell.
    ///
    /// Example: `homelab completions bash > /etc/bash_completion.d/homelab`, or for zsh
    /// `homelab completions zsh > "${fpath[1]}/_homelab"`.
    Completions {
        /// The shell to generate completions for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write a man page for every command and subcommand into a directory.
    ///
    /// One page per command (`homelab.1`, `homelab-nodes.1`, `homelab-nodes-remove.1`, ...),
    /// made from the same text as `--help`. Example: `homelab man --out ~/.local/share/man/man1`,
    /// then `man homelab-apply`.
    Man {
        /// The directory to write the pages into (created when missing).
        #[arg(long, value_name = "DIR")]
        out: std::path::PathBuf,
    },
    /// Print this build's version and the versions it pins: the K3s release new labs start
    /// on (and the one the spec at hand pins), each chart and each image.
    ///
    /// `homelab --version` prints only the first line. Example: `homelab version --output json
    /// | jq -r '.charts[] | "\(.name) \(.version)"'`.
    Version,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Which services to start with.
    #[arg(long, value_enum, default_value_t = Preset::Seed)]
    pub preset: Preset,
    /// Overwrite the file if it exists.
    #[arg(long)]
    pub force: bool,
    /// The lab's name (kubeconfig context, labels on every object).
    #[arg(long, default_value = "home-lab", value_name = "NAME")]
    pub name: String,
    /// The domain services are served under (`grafana.DOMAIN`, ...); one you control.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Where Let's Encrypt sends certificate expiry warnings.
    #[arg(long, value_name = "ADDRESS")]
    pub email: Option<String>,
    /// The home LAN in CIDR notation, e.g. `192.168.1.0/24`.
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// The LAN's router [default: the subnet's first address].
    #[arg(long, value_name = "IP")]
    pub gateway: Option<String>,
    /// Addresses MetalLB may hand out, outside the DHCP range [default: the subnet's last 16].
    #[arg(long, value_name = "FIRST-LAST")]
    pub pool: Option<String>,
    /// The machines: `NAME=IP[:role],...`; without a role the first is the server and the
    /// rest are agents.
    #[arg(long, value_name = "NAME=IP[:role],...")]
    pub nodes: Option<String>,
    /// The NAS export that holds the volumes, e.g. `192.168.1.2:/volume1/k8s-data`.
    #[arg(long, value_name = "SERVER:/PATH")]
    pub nfs: Option<String>,
    /// The user to SSH into the nodes as (needs sudo) [default: what ~/.ssh/config says].
    #[arg(long, value_name = "USER")]
    pub ssh_user: Option<String>,
    /// The public key the dev container accepts [default: the first ~/.ssh/id_*.pub].
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// The ntfy topic critical alerts go to [default: a random one].
    #[arg(long, value_name = "TOPIC")]
    pub ntfy_topic: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// Every service: monitoring, logging, PostgreSQL, Ollama, n8n, Paperless, dev containers.
    Seed,
    /// Only the platform.
    Minimal,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Directory to write the tree to (created when missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// How charts and Secrets are delivered: `k3s` (HelmChart objects) or `flux`.
    #[arg(long, value_enum, default_value_t = Flavor::K3s)]
    pub flavor: Flavor,
    /// Write into a non-empty directory without `.homelab-rendered`, and over files the
    /// render did not write before. Other files are still never deleted.
    #[arg(long)]
    pub force: bool,
    /// The encrypted secrets file the flux flavor reads [default: secrets.sops.yaml next to
    /// the spec].
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    /// K3s HelmChart objects; Secrets created by `homelab apply`.
    K3s,
    /// Flux HelmRelease + Kustomization; Secrets SOPS-encrypted in the tree.
    Flux,
}
