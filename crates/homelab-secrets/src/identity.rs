//! age identities and recipients: where they come from (`SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`,
//! `~/.config/homelab/age.key`), creating the identity file (0600 in a 0700 directory) and
//! refusing files others can read; it must never print or log a secret key.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use std::sync::Arc;

use crate::atomic::write_new_atomic;
use crate::error::{Error, Result};
use crate::timefmt::now_rfc3339;
use crate::vault::{VaultCredential, VaultEnv};

/// The environment variable holding identities inline (as sops reads it).
pub const ENV_SOPS_AGE_KEY: &str = "SOPS_AGE_KEY";
/// The environment variable naming an identity file (as sops reads it).
pub const ENV_SOPS_AGE_KEY_FILE: &str = "SOPS_AGE_KEY_FILE";

/// An age X25519 public key (`age1...`), the thing files are encrypted to.
#[derive(Clone)]
pub struct Recipient(age::x25519::Recipient);

impl Recipient {
    pub(crate) fn as_age(&self) -> &age::x25519::Recipient {
        &self.0
    }
}

impl FromStr for Recipient {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let trimmed = s.trim();
        age::x25519::Recipient::from_str(trimmed)
            .map(Recipient)
            .map_err(|reason| Error::InvalidRecipient {
                value: trimmed.to_owned(),
                reason: reason.to_owned(),
            })
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({})", self.0)
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Recipient {}

/// Where an identity was loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// The `SOPS_AGE_KEY` environment variable.
    EnvVar,
    /// An identity file.
    File(PathBuf),
}

impl fmt::Display for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentitySource::EnvVar => f.write_str(ENV_SOPS_AGE_KEY),
            IdentitySource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

struct Entry {
    identity: age::x25519::Identity,
    recipient: Recipient,
    source: IdentitySource,
}

/// What can open a file's data key: age identities (secret keys), tried first, and Vault or
/// OpenBao credentials. `Debug` shows public keys, addresses and sources only.
#[derive(Default)]
pub struct Identities {
    entries: Vec<Entry>,
    vault: Vec<Arc<VaultCredential>>,
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.entries
                    .iter()
                    .map(|e| format!("{} (from {})", e.recipient, e.source)),
            )
            .entries(self.vault.iter().map(|c| format!("{c:?}")))
            .finish()
    }
}

impl Identities {
    /// No identities.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses an age identity list: `AGE-SECRET-KEY-1...` lines, `#` comments and blank lines.
    pub fn parse(text: &str, source: IdentitySource) -> Result<Self> {
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail = |reason: &str| Error::IdentityParse {
                source_name: source.to_string(),
                line: index + 1,
                reason: reason.to_owned(),
            };
            if !line.starts_with("AGE-SECRET-KEY-1") {
                return Err(fail(
                    "expected an `AGE-SECRET-KEY-1...` line (plugin and SSH identities are not supported)",
                ));
            }
            let identity = age::x25519::Identity::from_str(line)
                .map_err(|why| fail(&format!("malformed age secret key ({why})")))?;
            let recipient = Recipient(identity.to_public());
            entries.push(Entry {
                identity,
                recipient,
                source: source.clone(),
            });
        }
        if entries.is_empty() {
            return Err(Error::IdentityParse {
                source_name: source.to_string(),
                line: text.lines().count().max(1),
                reason: "no `AGE-SECRET-KEY-1...` line found".to_owned(),
            });
        }
        Ok(Self {
            entries,
            vault: Vec::new(),
        })
    }

    /// Loads an identity file, refusing it when group or others may read or write it.
    pub fn load_file(path: &Path) -> Result<Self> {
        let meta = fs::metadata(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::IdentityPermissions {
                path: path.to_owned(),
                mode,
            });
        }
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?);
        Self::parse(&text, IdentitySource::File(path.to_owned()))
    }

    /// Loads the identities the environment points to, as sops does: `SOPS_AGE_KEY` and
    /// `SOPS_AGE_KEY_FILE` (which must exist when set); without the latter, the homelab
    /// default file when it exists. At least one identity must be found.
    /// The Vault/OpenBao credentials of `env.vault` are added (tried after the age
    /// identities); with one, no age identity is needed.
    pub fn from_env(env: &IdentityEnv) -> Result<Self> {
        let mut ids = Identities::empty();
        ids.vault = env.vault.credentials().map_err(Error::Vault)?;
        if let Some(inline) = &env.sops_age_key {
            ids.extend(Self::parse(inline.expose_secret(), IdentitySource::EnvVar)?);
        }
        let path = env.identity_file_path()?;
        if env.sops_age_key_file.is_some() {
            if !path.exists() {
                return Err(Error::IdentityFileMissing { path });
            }
            ids.extend(Self::load_file(&path)?);
        } else if path.exists() {
            ids.extend(Self::load_file(&path)?);
        } else if ids.is_empty() && ids.vault.is_empty() {
            return Err(Error::NoIdentity { path });
        }
        Ok(ids)
    }

    /// No age identity, only the Vault/OpenBao credentials `env` gives.
    pub fn vault_only(env: &VaultEnv) -> Result<Self> {
        Ok(Self {
            entries: Vec::new(),
            vault: env.credentials().map_err(Error::Vault)?,
        })
    }

    /// Adds other identities and credentials (duplicates are skipped).
    pub fn extend(&mut self, other: Identities) {
        for entry in other.entries {
            if !self.entries.iter().any(|e| e.recipient == entry.recipient) {
                self.entries.push(entry);
            }
        }
        self.vault.extend(other.vault);
    }

    /// Adds a Vault/OpenBao credential, tried after the age identities.
    pub fn with_vault(mut self, credential: VaultCredential) -> Self {
        self.vault.push(Arc::new(credential));
        self
    }

    /// The Vault/OpenBao credentials.
    pub fn vault_credentials(&self) -> &[Arc<VaultCredential>] {
        &self.vault
    }

    /// The credential for a Vault address, if one is held.
    pub fn vault_credential_for(&self, address: &str) -> Option<&VaultCredential> {
        let address = address.trim_end_matches('/');
        self.vault
            .iter()
            .find(|c| c.address() == address)
            .map(|c| &**c)
    }

    /// Number of age identities.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no age identities.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The public keys of these identities.
    pub fn recipients(&self) -> Vec<Recipient> {
        self.entries.iter().map(|e| e.recipient.clone()).collect()
    }

    /// Where the identity for `recipient` came from, if it is held.
    pub fn source_of(&self, recipient: &str) -> Option<&IdentitySource> {
        self.entries
            .iter()
            .find(|e| e.recipient.to_string() == recipient.trim())
            .map(|e| &e.source)
    }

    /// A description for messages: public keys with their sources (age only).
    pub fn describe(&self) -> String {
        if self.entries.is_empty() {
            return "none".to_owned();
        }
        self.entries
            .iter()
            .map(|e| format!("{} from {}", e.recipient, e.source))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The Vault credentials for messages: `token from VAULT_TOKEN for http://...`.
    pub fn describe_vault(&self) -> Vec<String> {
        self.vault
            .iter()
            .map(|c| format!("{} for {}", c.describe(), c.address()))
            .collect()
    }

    pub(crate) fn age_identities(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.entries
            .iter()
            .map(|e| &e.identity as &dyn age::Identity)
    }
}

/// The parts of the environment that decide where identities come from. Tests build it by
/// hand; the CLI uses [`IdentityEnv::from_process_env`].
#[derive(Clone, Default)]
pub struct IdentityEnv {
    /// `SOPS_AGE_KEY`: identities inline.
    pub sops_age_key: Option<SecretString>,
    /// `SOPS_AGE_KEY_FILE`: an identity file.
    pub sops_age_key_file: Option<PathBuf>,
    /// `XDG_CONFIG_HOME`, when set.
    pub xdg_config_home: Option<PathBuf>,
    /// `HOME`.
    pub home: Option<PathBuf>,
    /// The Vault/OpenBao variables (`VAULT_ADDR`, `VAULT_TOKEN`, `BAO_*`, AppRole).
    pub vault: VaultEnv,
}

impl fmt::Debug for IdentityEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityEnv")
            .field("sops_age_key", &self.sops_age_key.as_ref().map(|_| "[set]"))
            .field("sops_age_key_file", &self.sops_age_key_file)
            .field("xdg_config_home", &self.xdg_config_home)
            .field("home", &self.home)
            .field("vault", &self.vault)
            .finish()
    }
}

impl IdentityEnv {
    /// Reads the variables from the process environment (empty values count as unset).
    pub fn from_process_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Self {
            sops_age_key: var(ENV_SOPS_AGE_KEY)
                .map(|v: OsString| SecretString::from(v.to_string_lossy().into_owned())),
            sops_age_key_file: var(ENV_SOPS_AGE_KEY_FILE).map(PathBuf::from),
            xdg_config_home: var("XDG_CONFIG_HOME").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
            vault: VaultEnv::from_process_env(),
        }
    }

    /// homelab's default identity file: `$XDG_CONFIG_HOME/homelab/age.key`, else
    /// `~/.config/homelab/age.key`.
    pub fn default_identity_path(&self) -> Result<PathBuf> {
        if let Some(xdg) = &self.xdg_config_home {
            return Ok(xdg.join("homelab").join("age.key"));
        }
        let home = self.home.as_ref().ok_or(Error::NoHome)?;
        Ok(home.join(".config").join("homelab").join("age.key"))
    }

    /// The identity file in use: `SOPS_AGE_KEY_FILE` when set, else the default.
    pub fn identity_file_path(&self) -> Result<PathBuf> {
        match &self.sops_age_key_file {
            Some(p) => Ok(p.clone()),
            None => self.default_identity_path(),
        }
    }
}

/// Creates a new identity file at `path` (mode 0600; missing parent directories are created
/// with mode 0700). Refuses to overwrite an existing file.
pub fn create_identity_file(path: &Path) -> Result<(Identities, Recipient)> {
    if path.exists() {
        return Err(Error::IdentityExists {
            path: path.to_owned(),
        });
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| Error::Write {
                path: parent.to_owned(),
                source,
            })?;
    }
    let identity = age::x25519::Identity::generate();
    let recipient = Recipient(identity.to_public());
    let secret = identity.to_string();
    let content = Zeroizing::new(format!(
        "# created: {}\n# public key: {}\n{}\n",
        now_rfc3339(),
        recipient,
        secret.expose_secret()
    ));
    write_new_atomic(path, content.as_bytes(), 0o600).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            Error::IdentityExists {
                path: path.to_owned(),
            }
        } else {
            Error::Write {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let ids = Identities {
        entries: vec![Entry {
            identity,
            recipient: recipient.clone(),
            source: IdentitySource::File(path.to_owned()),
        }],
        vault: Vec::new(),
    };
    Ok((ids, recipient))
}

/// What [`init_identity`] found or made.
#[derive(Debug)]
pub struct IdentityInit {
    /// The identities now available.
    pub identities: Identities,
    /// The identity file, when one is in use.
    pub path: Option<PathBuf>,
    /// Whether a new identity file was created.
    pub created: bool,
}

/// Makes sure an identity exists: uses `SOPS_AGE_KEY` / `SOPS_AGE_KEY_FILE` / the default
/// file when present, and otherwise creates the identity file (at `SOPS_AGE_KEY_FILE` if set,
/// else the default path).
pub fn init_identity(env: &IdentityEnv) -> Result<IdentityInit> {
    let path = env.identity_file_path()?;
    if env.sops_age_key.is_some() || path.exists() {
        let identities = Identities::from_env(env)?;
        let path = path.exists().then_some(path);
        return Ok(IdentityInit {
            identities,
            path,
            created: false,
        });
    }
    let (mut identities, _) = create_identity_file(&path)?;
    identities.vault = env.vault.credentials().map_err(Error::Vault)?;
    Ok(IdentityInit {
        identities,
        path: Some(path),
        created: true,
    })
}
