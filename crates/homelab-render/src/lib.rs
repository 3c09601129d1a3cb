//! Writes a Plan as a layered GitOps tree of files, per flavor. Building the tree is pure
//! ([`render`]); the only I/O is [`write::write_tree`], which puts it on disk. Nothing here
//! talks to a cluster, and no plaintext secret value ever ends up in a written file.

mod diagrams;
mod docs;
mod flux;
mod hosts;
mod k3s;
mod layout;
mod renovate;
mod secrets;
pub mod write;
mod yaml;

use std::collections::BTreeMap;
use std::fmt;

use homelab_plan::Plan;
use secrecy::SecretString;

pub use docs::{HAND_STEP_K3S, HAND_STEP_KUBECONFIG, HAND_STEP_LAYERS, HAND_STEP_SECRETS};
pub use k3s::helm_chart;
pub use renovate::{RENOVATE_MATCH_STRINGS, renovate_json};
pub use secrets::{scrub_manifest, secret_manifest};
pub use write::{
    MANIFEST_FILE, SopsKeys, WriteError, WriteOptions, WriteReport, surroundings, write_tree,
};

/// How Helm releases and Secrets are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// K3s' helm-controller installs `HelmChart` objects; Secrets are created by
    /// `homelab apply` from the secrets file and never written to the tree.
    K3s,
    /// Flux installs `HelmRelease`s from `HelmRepository`s; Secrets are written
    /// SOPS-encrypted for Flux's kustomize-controller to decrypt.
    Flux,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::K3s => "k3s",
            Flavor::Flux => "flux",
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The rendered tree: relative path (with `/`) to file, sorted by path.
#[derive(Debug, Default)]
pub struct Tree {
    files: BTreeMap<String, RenderedFile>,
}

impl Tree {
    /// Every path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn get(&self, path: &str) -> Option<&RenderedFile> {
        self.files.get(path)
    }

    /// The text of a plain file (`None` for missing paths and for encrypted Secrets, whose
    /// text only exists once [`write_tree`] has encrypted it).
    pub fn text(&self, path: &str) -> Option<&str> {
        match &self.files.get(path)?.content {
            Content::Text(t) => Some(t),
            Content::Sops(_) => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &RenderedFile)> {
        self.files.iter().map(|(p, f)| (p.as_str(), f))
    }

    pub(crate) fn insert(&mut self, path: String, content: Content, mode: u32) {
        let previous = self
            .files
            .insert(path.clone(), RenderedFile { content, mode });
        debug_assert!(previous.is_none(), "two files render to {path}");
    }
}

/// One file of the tree.
#[derive(Debug)]
pub struct RenderedFile {
    pub content: Content,
    /// Unix permission bits.
    pub mode: u32,
}

/// What a file holds.
#[derive(Debug)]
pub enum Content {
    Text(String),
    /// A Kubernetes Secret to be written SOPS-encrypted (flux flavor only).
    Sops(SopsSecret),
}

/// A Secret manifest in plaintext, kept as a `SecretString` until it is encrypted.
pub struct SopsSecret {
    pub(crate) plaintext: SecretString,
    /// `Secret/<namespace>/<name>`, for messages.
    pub object: String,
}

impl fmt::Debug for SopsSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SopsSecret")
            .field("object", &self.object)
            .field("plaintext", &"[redacted]")
            .finish()
    }
}

/// Where the flux flavor reads secret values from (the secrets store, or a test's values).
pub trait SecretValues {
    /// The value of the secret `name`, or why it cannot be had (never containing a value).
    fn secret(&self, name: &str) -> Result<SecretString, String>;
}

impl SecretValues for homelab_secrets::SecretsStore {
    fn secret(&self, name: &str) -> Result<SecretString, String> {
        self.get(name).cloned().map_err(|e| e.to_string())
    }
}

/// Why a tree could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(
        "the flux flavor writes Secrets SOPS-encrypted and needs the lab's secrets file to do so; create it with `homelab secrets init`, or render `--flavor k3s`, whose Secrets `homelab apply` creates"
    )]
    FluxNeedsSecrets,
    #[error("cannot build {object} (key `{key}`) from secret `{secret}`: {reason}")]
    SecretValue {
        object: String,
        key: String,
        secret: String,
        reason: String,
    },
}

/// What the tree says about things outside the plan: where the lab's secrets file is, seen
/// from the tree, and the user's own decision records. [`surroundings`] reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Surroundings {
    /// The secrets file as a `/`-separated path relative to the tree's root, which is where
    /// the README's commands run (`secrets.sops.yaml` for a tree rendered beside homelab.yaml).
    pub secrets_file: String,
    /// The user's own ADRs, listed in `docs/adrs/README.md` after the generated ones.
    pub user_adrs: Vec<UserAdr>,
}

impl Default for Surroundings {
    fn default() -> Self {
        Surroundings {
            secrets_file: homelab_secrets::SECRETS_FILE.to_string(),
            user_adrs: Vec::new(),
        }
    }
}

/// One of the user's own architecture decision records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAdr {
    /// Its file, relative to the tree's `docs/adrs/`.
    pub link: String,
    /// Its first `# ` heading, or its file name when it has none.
    pub title: String,
}

/// Renders the plan as a tree of files. Pure: the same plan (and, for flux, the same secret
/// values) always gives the same tree. The flux flavor needs `secrets`; k3s ignores them.
pub fn render(
    plan: &Plan,
    flavor: Flavor,
    secrets: Option<&dyn SecretValues>,
) -> Result<Tree, RenderError> {
    render_in(plan, flavor, secrets, &Surroundings::default())
}

/// [`render`] for a tree that knows its surroundings (the secrets file's place, the user's
/// ADRs). Pure as well.
pub fn render_in(
    plan: &Plan,
    flavor: Flavor,
    secrets: Option<&dyn SecretValues>,
    around: &Surroundings,
) -> Result<Tree, RenderError> {
    let secrets = match flavor {
        Flavor::K3s => None,
        Flavor::Flux => Some(secrets.ok_or(RenderError::FluxNeedsSecrets)?),
    };
    layout::render(plan, flavor, secrets, around)
}
