//! The component catalog and the Plan computed from a validated Lab: for every component its
//! Kubernetes objects, Helm releases, host files, secrets, health checks, backups and the facts
//! the docs need. Pure data: this crate never touches the network, the disk or the terminal.

pub mod catalog;
pub mod chart_values;
pub mod manifests;
pub mod meta;
pub mod trust;
pub mod values;
pub mod versions;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

pub use catalog::{OpenBaoPolicy, openbao_policies, plan};

/// Where a component's files go in the rendered tree (the seeds' repository layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Infrastructure,
    Monitoring,
    Applications,
}

impl Layer {
    pub fn dir(self) -> &'static str {
        match self {
            Layer::Infrastructure => "infrastructure",
            Layer::Monitoring => "monitoring",
            Layer::Applications => "applications",
        }
    }
}

/// Everything the lab is made of, in apply order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub lab_name: String,
    pub domain: String,
    /// Components in dependency order: each comes after everything it depends on.
    pub components: Vec<Component>,
    /// What each node gets: its K3s configuration and the actions to converge it.
    pub nodes: Vec<NodePlan>,
    /// Every secret value the lab needs, with how to make it and who uses it.
    pub secrets: Vec<SecretNeed>,
    /// Runbooks for the alerts and the data-safety procedures (`docs/runbooks/<name>.md`).
    pub runbooks: Vec<Runbook>,
    /// The Vault/OpenBao transit key that also wraps the lab's SOPS data keys (the spec's
    /// `secrets.vault`): Flux then decrypts through Vault with a token instead of an age key.
    pub secrets_vault: Option<homelab_spec::lab::VaultSettings>,
    /// The LAN the nodes live on (subnet, gateway, domain, ingress address, DNS provider), for
    /// the documents that prepare the hosts and the network by hand.
    pub network: homelab_spec::lab::Network,
    /// The K3s release every node runs.
    pub k3s_version: String,
}

/// An operational procedure, rendered with the lab's real names.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Runbook {
    pub name: String,
    pub title: String,
    pub content: String,
}

impl Plan {
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    /// Every URL the lab serves, in component order.
    pub fn urls(&self) -> impl Iterator<Item = &Endpoint> {
        self.components.iter().flat_map(|c| c.endpoints.iter())
    }

    /// Every Kubernetes object of the plan with the component it belongs to.
    pub fn objects(&self) -> impl Iterator<Item = (&Component, &Object)> {
        self.components
            .iter()
            .flat_map(|c| c.objects.iter().map(move |o| (c, o)))
    }
}

/// One part of the lab (MetalLB, PostgreSQL, an app, ...).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// Short stable name, e.g. `metallb`; also its directory name.
    pub name: String,
    pub layer: Layer,
    /// The namespace its workloads run in, when it has one.
    pub namespace: Option<String>,
    /// Components that must be applied (and ready) first.
    pub depends_on: Vec<String>,
    /// Helm releases, delivered as K3s `HelmChart` objects (or Flux `HelmRelease`s).
    pub releases: Vec<HelmRelease>,
    /// Plain Kubernetes manifests, each with the file it is rendered to.
    pub objects: Vec<Object>,
    /// Kubernetes Secrets the component needs, built at apply time from the secrets file.
    pub secret_objects: Vec<SecretObject>,
    /// Files that are not applied to the cluster (a Dockerfile, host configuration).
    pub files: Vec<PlainFile>,
    /// URLs the component serves.
    pub endpoints: Vec<Endpoint>,
    /// What `homelab status` checks for this component.
    pub health: Vec<HealthCheck>,
    /// Backups the component runs.
    pub backups: Vec<BackupJob>,
    /// Facts for the component's README (NFR26).
    pub docs: ComponentDocs,
    /// What the spec's `helm:` settings change in the component's charts.
    pub overrides: Vec<ChartOverride>,
    /// Changes from the spec's `manifests:` directory to objects of this component; the
    /// objects above stay as generated (the rendered tree carries the patches in its
    /// kustomization), [`Component::applied_objects`] has them applied.
    pub patches: Vec<ObjectPatch>,
}

/// A JSON Patch from the manifests directory for one object of a component.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectPatch {
    /// The patch file, relative to the manifests directory.
    pub file: String,
    /// The index of the object in the component's `objects`.
    pub object: usize,
    pub target: homelab_spec::lab::PatchTarget,
    /// The RFC 6902 operations.
    pub operations: Value,
}

/// A patch that does not apply to the object it targets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the patch {file} does not apply to {object}: {reason}")]
pub struct PatchFailed {
    pub file: String,
    pub object: String,
    /// Which operation failed (0-based).
    pub operation: Option<usize>,
    pub reason: String,
}

impl ObjectPatch {
    /// Applies the operations to `manifest`, all or none.
    pub fn apply_to(&self, manifest: &mut Value, object: &str) -> Result<(), PatchFailed> {
        let failed = |operation, reason: String| PatchFailed {
            file: self.file.clone(),
            object: object.to_string(),
            operation,
            reason,
        };
        let ops: json_patch::Patch = serde_json::from_value(self.operations.clone())
            .map_err(|e| failed(None, e.to_string()))?;
        json_patch::patch(manifest, &ops).map_err(|e| {
            failed(
                Some(e.operation),
                format!("operation {} at `{}`: {}", e.operation + 1, e.path, e.kind),
            )
        })
    }
}

/// A catalog chart the spec changed with `helm:`: the version and the values it installs
/// now, and how they differ from what the catalog generates.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartOverride {
    /// The Helm release (`traefik` for the HelmChartConfig of K3s' Traefik).
    pub release: String,
    pub chart: String,
    /// The version the catalog pins.
    pub pinned_version: String,
    /// The version installed (the pin unless the spec names another).
    pub version: String,
    /// The values the catalog generates.
    pub generated: Value,
    /// The values installed: the generated ones with the spec's merged over them.
    pub values: Value,
    /// How they differ from the generated values.
    pub changes: Vec<values::ValueChange>,
}

impl Component {
    pub fn new(name: &str, layer: Layer, namespace: Option<&str>) -> Self {
        Component {
            name: name.to_string(),
            layer,
            namespace: namespace.map(str::to_string),
            depends_on: Vec::new(),
            releases: Vec::new(),
            objects: Vec::new(),
            secret_objects: Vec::new(),
            files: Vec::new(),
            endpoints: Vec::new(),
            health: Vec::new(),
            backups: Vec::new(),
            docs: ComponentDocs::default(),
            overrides: Vec::new(),
            patches: Vec::new(),
        }
    }

    /// The component's objects as they are applied: with the manifests directory's patches.
    pub fn applied_objects(&self) -> Result<Vec<Object>, PatchFailed> {
        let mut objects = self.objects.clone();
        for p in &self.patches {
            if let Some(o) = objects.get_mut(p.object) {
                let id = o.id();
                p.apply_to(&mut o.manifest, &id)?;
            }
        }
        Ok(objects)
    }

    /// The component's directory in the rendered tree, e.g. `infrastructure/metallb`.
    pub fn dir(&self) -> String {
        format!("{}/{}", self.layer.dir(), self.name)
    }

    pub fn add(&mut self, file: &str, manifest: Value) {
        self.objects.push(Object {
            file: file.to_string(),
            manifest,
        });
    }
}

/// A Kubernetes object and the file (within the component directory) it is rendered to.
#[derive(Debug, Clone, Serialize)]
pub struct Object {
    pub file: String,
    pub manifest: Value,
}

impl Object {
    pub fn kind(&self) -> &str {
        self.manifest["kind"].as_str().unwrap_or_default()
    }

    pub fn api_version(&self) -> &str {
        self.manifest["apiVersion"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.manifest["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.manifest["metadata"]["namespace"].as_str()
    }

    /// `Kind/namespace/name`, for messages.
    pub fn id(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{}/{ns}/{}", self.kind(), self.name()),
            None => format!("{}/{}", self.kind(), self.name()),
        }
    }
}

/// A Helm chart release with its values.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmRelease {
    pub name: String,
    /// Where the release's objects go.
    pub namespace: String,
    pub chart: ChartRef,
    pub values: Value,
    /// Create the namespace with the release (K3s helm-controller does this itself).
    pub create_namespace: bool,
}

/// A pinned chart and the repository it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartRef {
    pub name: String,
    /// `https://...` Helm repository, or `oci://...` registry path (without the chart name).
    pub repo: String,
    pub version: String,
}

impl ChartRef {
    pub fn is_oci(&self) -> bool {
        self.repo.starts_with("oci://")
    }
}

/// A Kubernetes Secret whose values come from the secrets file when the lab is applied.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretObject {
    pub name: String,
    pub namespace: String,
    /// Secret key -> where its value comes from.
    pub data: BTreeMap<String, SecretSource>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "from", content = "value")]
pub enum SecretSource {
    /// The value of a secret in the secrets file.
    Secret(String),
    /// A fixed, non-secret value (e.g. a user name that belongs next to a password).
    Literal(String),
    /// A text with `${secret:NAME}` placeholders filled from the secrets file (e.g. a URL
    /// with a password in it).
    Template(String),
}

impl SecretSource {
    /// The secrets this source reads.
    pub fn secret_names(&self) -> Vec<String> {
        match self {
            SecretSource::Secret(n) => vec![n.clone()],
            SecretSource::Literal(_) => Vec::new(),
            SecretSource::Template(t) => t
                .split("${secret:")
                .skip(1)
                .filter_map(|rest| rest.split_once('}').map(|(n, _)| n.to_string()))
                .collect(),
        }
    }
}

/// A file that is not a Kubernetes object.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlainFile {
    /// Path within the component directory.
    pub path: String,
    pub content: String,
    /// Unix mode, e.g. 0o755 for scripts.
    pub mode: u32,
}

/// A URL the lab serves.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub name: String,
    pub url: String,
    pub host: String,
    pub description: String,
}

/// Something `homelab status` checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "check")]
pub enum HealthCheck {
    /// A Helm release installed by K3s' helm-controller.
    HelmChart { namespace: String, name: String },
    /// A workload whose pods must be ready.
    Workload {
        kind: String,
        namespace: String,
        name: String,
    },
    /// A PersistentVolumeClaim that must be bound.
    Pvc { namespace: String, name: String },
    /// A LoadBalancer Service that must have an external IP.
    LoadBalancer {
        namespace: String,
        name: String,
        expected_ip: Option<String>,
    },
    /// A cert-manager Certificate that must be ready and not about to expire.
    Certificate { namespace: String, name: String },
    /// An HTTPS URL that must answer with a valid certificate.
    Url { url: String, host: String },
    /// A backup CronJob whose last success must be recent.
    Backup {
        namespace: String,
        cronjob: String,
        max_age_hours: u32,
    },
    /// A CRD that must be established.
    Crd { name: String },
    /// An alerting rule of the lab's Prometheus (its Service `namespace/service:port`) that
    /// must have no pending or firing alert; `subject_label` names what an alert is about.
    Alert {
        namespace: String,
        service: String,
        port: u16,
        alert: String,
        subject_label: String,
        /// What holds while it does not fire.
        healthy: String,
        /// What is wrong with each subject it fires for.
        problem: String,
        fix: String,
    },
    /// A Secret holding the lab's root CA certificate in `tls.crt`: its expiry is reported.
    CaSecret { namespace: String, name: String },
}

/// A scheduled backup.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupJob {
    pub name: String,
    pub namespace: String,
    pub cronjob: String,
    pub schedule: String,
    pub keep: u32,
    pub what: String,
    pub target: String,
}

/// What a component's README says (NFR26).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentDocs {
    pub title: String,
    /// What it is, in one or two sentences.
    pub what: String,
    /// Why this was chosen over the alternatives.
    pub why: String,
    /// How to reach it (URLs, in-cluster addresses, commands).
    pub access: Vec<String>,
    /// Where its data lives.
    pub data: String,
    /// How its data is backed up and restored.
    pub backup: String,
    /// Requirements from the planning documents it fulfils (FR/NFR numbers).
    pub requirements: Vec<String>,
}

/// What a node gets.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePlan {
    pub name: String,
    pub role: homelab_spec::lab::NodeRole,
    pub address: String,
    /// `/etc/rancher/k3s/config.yaml` for this node (no token: that comes from the secrets
    /// file and is written to its own file).
    pub k3s_config: String,
    /// Whether it initialises the cluster (`cluster-init`) or joins it.
    pub init: bool,
    /// Human-readable steps `homelab nodes apply` performs on it.
    pub actions: Vec<String>,
    /// The NAS directory mounted at the etcd snapshot directory (servers of a lab with
    /// `storage.nfs`; ADR 0105).
    pub etcd_snapshot_mount: Option<EtcdSnapshotMount>,
    /// The SSH user and port the spec names for it (`None`: whatever `~/.ssh/config` says).
    pub ssh_user: Option<String>,
    pub ssh_port: Option<u16>,
}

/// The lab's directory of the NFS export, mounted on a server where k3s writes its etcd
/// snapshots, so that they survive the loss of the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdSnapshotMount {
    /// `storage.nfs.server`.
    pub server: String,
    /// `storage.nfs.path`.
    pub export: String,
    /// The lab's directory inside the export (`k3s-etcd-snapshots/<lab name>`).
    pub subdir: String,
    /// `cluster.etcdSnapshots.dir`: where it is mounted.
    pub dir: String,
}

impl EtcdSnapshotMount {
    /// What is mounted: `server:/export/subdir`.
    pub fn source(&self) -> String {
        format!(
            "{}:{}/{}",
            self.server,
            self.export.trim_end_matches('/'),
            self.subdir
        )
    }
}

/// How a secret value is made when `homelab secrets init` creates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum SecretGenerator {
    /// A random password of this length (letters and digits).
    Password { length: usize },
    /// Random bytes, hex-encoded.
    Hex { bytes: usize },
    /// A bcrypt htpasswd line for this user, from a generated password kept beside it.
    Htpasswd {
        user: String,
        password_secret: String,
    },
    /// An argon2id password hash (Authelia's file backend), from a password kept beside it.
    #[serde(rename_all = "camelCase")]
    Argon2id { password_secret: String },
    /// Only the user can provide it (an API token, credentials).
    UserProvided,
    /// A certificate authority's private key (ECDSA P-256, PKCS#8 PEM).
    CaKey,
    /// A self-signed CA certificate (PEM) for the key in `key_secret`, valid for `days`.
    #[serde(rename_all = "camelCase")]
    CaCertificate {
        common_name: String,
        key_secret: String,
        days: u32,
    },
}

/// A secret the lab needs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretNeed {
    pub name: String,
    pub generator: SecretGenerator,
    /// Components that read it (to re-apply after a rotation).
    pub used_by: BTreeSet<String>,
    pub description: String,
    /// Set when a new value cannot simply be re-applied (the old one lives on in a database or
    /// in etcd): how to change it by hand instead.
    pub manual_rotation: Option<String>,
    /// Set when the lab works without a value (ADR 0133): what is missing then. The Secret
    /// objects reading only it and other values are left out of the cluster while it has no
    /// value, and everything that mounts them does so with `optional: true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<String>,
}

impl Plan {
    /// The need of secret `name` when the lab works without it (ADR 0133).
    pub fn optional_secret(&self, name: &str) -> Option<&SecretNeed> {
        self.secrets
            .iter()
            .find(|s| s.name == name && s.optional.is_some())
    }

    /// Whether a Secret object may be left out of the cluster when `absent` are the secrets
    /// it reads that have no value: only when each of them is optional.
    pub fn may_leave_out(&self, absent: &[String]) -> bool {
        !absent.is_empty() && absent.iter().all(|n| self.optional_secret(n).is_some())
    }
}

/// The plan's facts that do not belong to one component: for docs and summaries.
pub fn summary_counts(plan: &Plan) -> (usize, usize, usize) {
    let objects = plan.components.iter().map(|c| c.objects.len()).sum();
    let releases = plan.components.iter().map(|c| c.releases.len()).sum();
    (plan.components.len(), objects, releases)
}
