//! The lab's secrets: the SOPS file format (age recipients and Vault/OpenBao transit keys), identities and `.sops.yaml`, the secrets
//! store (`secrets.sops.yaml`) with generation and rotation, editing, leak scanning, and
//! redaction. Each `homelab secrets <sub>` command is one call into this crate; it never
//! prints, logs or returns a secret except as a `SecretString` the caller asked for.
//!
//! | command | call |
//! |---|---|
//! | `init` | [`init_lab_with`] |
//! | `list` | [`SecretsStore::open`] + [`SecretsStore::list`] + [`store::listing`] (or [`store::peek_names`] without a key) |
//! | `get NAME` | [`SecretsStore::get`] |
//! | `set NAME` | [`SecretsStore::set`] + [`SecretsStore::save`] |
//! | `edit` | [`edit::edit_store`] with [`edit::editor_from_env`] |
//! | `rotate NAME` | [`SecretsStore::rotate`] + [`SecretsStore::save`] |
//! | `rekey` | [`rekey_lab_keys`] |
//! | `decrypt FILE` | [`decrypt_file`] |
//! | `encrypt FILE` | [`encrypt_file`] with [`sops_config::encrypt_options_for`] |
//! | `scan [PATH]` | [`scan::scan`] with [`SecretsStore::known_secrets`] |

mod atomic;
pub mod ca;
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
    encrypt_file_with_keys, encrypt_kubernetes_secret, encrypt_kubernetes_secret_stable,
    encrypt_kubernetes_secret_stable_with, open_file, rekey_file, rekey_file_keys,
};
pub use generate::{Alphabet, Generator, SecretRequirement};
pub use identity::{Identities, IdentityEnv, IdentitySource, Recipient};
pub use redact::{KnownSecrets, Redactor};
pub use sops::{
    EncryptOptions, EncryptionRule, KeyCheck, KeyCheckOutcome, KeyUsed, SopsDocument, check_keys,
};
pub use store::{
    GenerateReport, RotateReport, SECRETS_FILE, SecretListing, SecretStatus, SecretsStore,
};
pub use vault::{
    InitKeys, LabVault, SealStatus, VaultAuthKind, VaultCredential, VaultEnv, VaultError, VaultKey,
    VaultOperator,
};

/// What [`init_lab`] found and did.
#[derive(Debug)]
pub struct LabInit {
    /// The identity file in use (`None` when the identity comes from `SOPS_AGE_KEY` only).
    pub identity_path: Option<PathBuf>,
    /// Whether the identity file was created now.
    pub identity_created: bool,
    /// The recipients of the secrets store.
    pub recipients: Vec<String>,
    /// The Vault transit keys of the secrets store (sops's URI form).
    pub vault_keys: Vec<String>,
    /// The lab's transit key when an existing secrets file lacks it.
    pub vault_missing: Option<String>,
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
    init_lab_with(lab_root, env, requirements, None)
}

/// [`init_lab`] for a lab with a Vault/OpenBao transit key (the spec's `secrets.vault`): a
/// new secrets file's data key is also wrapped by it, and `.sops.yaml`'s rule for the file
/// names it. An existing file keeps its keys (`rekey_lab_keys` adds one; [`LabInit`] says
/// whether the file lacks it). When Vault cannot be reached, no secrets file is written (the
/// age identity and `.sops.yaml` are, and running it again completes the rest).
pub fn init_lab_with(
    lab_root: &Path,
    env: &IdentityEnv,
    requirements: &[SecretRequirement],
    vault: Option<&VaultKey>,
) -> Result<LabInit> {
    generate::validate_requirements(requirements)?;
    let identity = identity::init_identity(env)?;
    let own = identity.identities.recipients();
    let store_path = lab_root.join(SECRETS_FILE);
    let store_created = !store_path.exists();
    let vault_keys: Vec<VaultKey> = vault.cloned().into_iter().collect();
    let config_path = lab_root.join(sops_config::SOPS_CONFIG_FILE);
    let rule_keys = store_created.then_some(vault_keys.as_slice());
    let sops_config_changed = sops_config::write_homelab_rules_with(&config_path, &own, rule_keys)?;
    let mut store = if store_created {
        let mut recipients = sops_config::secrets_recipients(&config_path)?;
        for r in &own {
            if !recipients.contains(r) {
                recipients.push(r.clone());
            }
        }
        SecretsStore::create_with_keys(&store_path, &recipients, &vault_keys, &identity.identities)?
    } else {
        SecretsStore::open(&store_path, &identity.identities)?
    };
    let vault_missing = vault
        .filter(|k| !store.vault_keys().contains(&k.uri()))
        .map(VaultKey::uri);
    let generated = store.generate_missing(requirements)?;
    if store_created || generated.changed() {
        store.save()?;
    }
    Ok(LabInit {
        identity_path: identity.path,
        identity_created: identity.created,
        recipients: store.recipients(),
        vault_keys: store.vault_keys(),
        vault_missing,
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
    let changes = KeyChanges {
        add: add.to_vec(),
        remove: remove.to_vec(),
        ..KeyChanges::default()
    };
    rekey_lab_keys(lab_root, identities, &changes)
}

/// `homelab secrets rekey` with Vault transit keys too (`--add-vault`, `--remove-vault`):
/// changes the keys of `secrets.sops.yaml` in `lab_root` and makes homelab's `.sops.yaml`
/// rules name the same recipients and transit keys. Nothing is written when a Vault call
/// fails.
pub fn rekey_lab_keys(
    lab_root: &Path,
    identities: &Identities,
    changes: &KeyChanges,
) -> Result<RekeyReport> {
    let store_path = lab_root.join(SECRETS_FILE);
    let report = rekey_file_keys(&store_path, identities, changes)?;
    let config_path = lab_root.join(sops_config::SOPS_CONFIG_FILE);
    if report.changed() && config_path.exists() {
        let mut config = sops_config::SopsConfig::load(&config_path)?;
        let recipients = report
            .recipients
            .iter()
            .map(|r| r.parse())
            .collect::<Result<Vec<Recipient>>>()?;
        let keys = report
            .vault_keys
            .iter()
            .map(|k| k.parse().map_err(Error::Vault))
            .collect::<Result<Vec<VaultKey>>>()?;
        let age_changed = config.set_homelab_recipients(&recipients);
        let vault_changed = config.set_homelab_vault_keys(&keys);
        if age_changed || vault_changed {
            config.write(&config_path)?;
        }
    }
    Ok(report)
}
