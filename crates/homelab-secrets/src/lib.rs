//! The lab's secrets: the SOPS file format (age recipients and Vault/OpenBao transit keys), identities and `.sops.yaml`, the secrets
//! store (`secrets.sops.yaml`) with generation and rotation, editing, leak scanning, and
//! redaction. Each `homelab secrets <sub>` command is one call into this crate; it never
//! prints, logs or returns a secret except as a `SecretString` the caller asked for.
//!
//! | command | call |
//! |---|---|
//! | `init` | [`init_lab`] |
//! | `list` | [`SecretsStore::open`] + [`SecretsStore::list`] + [`store::listing`] (or [`store::peek_names`] without a key) |
//! | `get NAME` | [`SecretsStore::get`] |
//! | `set NAME` | [`SecretsStore::set`] + [`SecretsStore::save`] |
//! | `edit` | [`edit::edit_store`] with [`edit::editor_from_env`] |
//! | `rotate NAME` | [`SecretsStore::rotate`] + [`SecretsStore::save`] |
//! | `rekey` | [`rekey_lab`] |
//! | `decrypt FILE` | [`decrypt_file`] |
//! | `encrypt FILE` | [`encrypt_file`] with [`sops_config::encrypt_options_for`] |
//! | `scan [PATH]` | [`scan::scan`] with [`SecretsStore::known_secrets`] |

mod atomic;
pub mod canary;
pub mod edit;
pub mod error;
mod files;
pub mod generate;
pub mod identity;
pub mod redact;
pub mod scan;
pub mod sops;
pub mod sops_config;
pub mod store;
mod timefmt;
pub mod vault;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use error::{Error, Result, SopsError};
pub use files::{
    KeyChanges, RekeyReport, SECRET_FILE_MODE, decrypt_file, encrypt_file, encrypt_file_in_place,
    encrypt_file_with_keys, encrypt_kubernetes_secret, encrypt_kubernetes_secret_stable, open_file,
    rekey_file, rekey_file_keys,
};
pub use generate::{Alphabet, Generator, SecretRequirement};
pub use identity::{Identities, IdentityEnv, IdentitySource, Recipient};
pub use redact::{KnownSecrets, Redactor};
pub use sops::{EncryptOptions, EncryptionRule, KeyUsed, SopsDocument};
pub use store::{
    GenerateReport, RotateReport, SECRETS_FILE, SecretListing, SecretStatus, SecretsStore,
};
pub use vault::{VaultCredential, VaultEnv, VaultError, VaultKey};

/// What [`init_lab`] found and did.
#[derive(Debug)]
pub struct LabInit {
    /// The identity file in use (`None` when the identity comes from `SOPS_AGE_KEY` only).
    pub identity_path: Option<PathBuf>,
    /// Whether the identity file was created now.
    pub identity_created: bool,
    /// The recipients of the secrets store.
    pub recipients: Vec<String>,
    /// Whether `.sops.yaml` was created or changed.
    pub sops_config_changed: bool,
    /// Whether `secrets.sops.yaml` was created now.
    pub store_created: bool,
    /// What was generated.
    pub generated: GenerateReport,
}

/// `homelab secrets init`: makes sure an age identity exists, writes `.sops.yaml` rules, and
/// creates or completes `secrets.sops.yaml` in `lab_root` with a value (or an unset
/// placeholder) for every requirement. Re-running adds only what is missing.
pub fn init_lab(
    lab_root: &Path,
    env: &IdentityEnv,
    requirements: &[SecretRequirement],
) -> Result<LabInit> {
    generate::validate_requirements(requirements)?;
    let identity = identity::init_identity(env)?;
    let own = identity.identities.recipients();
    let config_path = lab_root.join(sops_config::SOPS_CONFIG_FILE);
    let sops_config_changed = sops_config::write_homelab_rules(&config_path, &own)?;
    let store_path = lab_root.join(SECRETS_FILE);
    let store_created = !store_path.exists();
    let mut store = if store_created {
        let mut recipients = sops_config::secrets_recipients(&config_path)?;
        for r in &own {
            if !recipients.contains(r) {
                recipients.push(r.clone());
            }
        }
        SecretsStore::create(&store_path, &recipients)?
    } else {
        SecretsStore::open(&store_path, &identity.identities)?
    };
    let generated = store.generate_missing(requirements)?;
    if store_created || generated.changed() {
        store.save()?;
    }
    Ok(LabInit {
        identity_path: identity.path,
        identity_created: identity.created,
        recipients: store.recipients(),
        sops_config_changed,
        store_created,
        generated,
    })
}

/// `homelab secrets rekey`: adds/removes recipients of `secrets.sops.yaml` in `lab_root`
/// (re-encrypting only its data key) and updates homelab's `.sops.yaml` rules to match, so
/// files written later go to the same recipients.
pub fn rekey_lab(
    lab_root: &Path,
    identities: &Identities,
    add: &[Recipient],
    remove: &[Recipient],
) -> Result<RekeyReport> {
    let store_path = lab_root.join(SECRETS_FILE);
    let report = rekey_file(&store_path, identities, add, remove)?;
    let config_path = lab_root.join(sops_config::SOPS_CONFIG_FILE);
    if report.changed() && config_path.exists() {
        let mut config = sops_config::SopsConfig::load(&config_path)?;
        let recipients = report
            .recipients
            .iter()
            .map(|r| r.parse())
            .collect::<Result<Vec<Recipient>>>()?;
        if config.set_homelab_recipients(&recipients) {
            config.write(&config_path)?;
        }
    }
    Ok(report)
}
