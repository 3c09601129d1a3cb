//! SOPS files on disk: decrypt (`sops -d`), encrypt (`sops -e`, also in place), rekey, and
//! Flux Secret manifests. Reads and atomic writes only; a failed operation leaves the file as
//! it was.

use std::fs;
use std::path::Path;

use secrecy::SecretString;

use crate::atomic::write_atomic;
use crate::error::{Error, Result, SopsError};
use crate::identity::{Identities, Recipient};
use crate::sops::{self, EncryptOptions, KeyUsed, SopsDocument};
use crate::sops_config::FLUX_ENCRYPTED_REGEX;
use crate::vault::VaultKey;
use crate::yaml::{self, Value};

/// Mode of every file this crate writes that holds secrets (encrypted or not).
pub const SECRET_FILE_MODE: u32 = 0o600;

pub(crate) fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// Decrypts a SOPS file (MAC verified) and keeps it open for changes.
pub fn open_file(path: &Path, identities: &Identities) -> Result<SopsDocument> {
    let text = read_text(path)?;
    sops::decrypt_text(&text, identities).map_err(|reason| Error::Decrypt {
        path: path.to_owned(),
        reason,
    })
}

/// `sops -d`: the plaintext YAML of a SOPS file, MAC verified.
pub fn decrypt_file(path: &Path, identities: &Identities) -> Result<SecretString> {
    Ok(open_file(path, identities)?.to_plain_yaml())
}

/// `sops -e`: the encrypted YAML of a plaintext file (the file is not changed).
pub fn encrypt_file(path: &Path, options: &EncryptOptions) -> Result<String> {
    let text = zeroize::Zeroizing::new(read_text(path)?);
    sops::encrypt_text(&text, options).map_err(|reason| Error::Encrypt {
        path: path.to_owned(),
        reason,
    })
}

/// `sops -e` with Vault transit keys in `options`: the credentials come from `identities`.
pub fn encrypt_file_with_keys(
    path: &Path,
    options: &EncryptOptions,
    identities: &Identities,
) -> Result<String> {
    let text = zeroize::Zeroizing::new(read_text(path)?);
    sops::encrypt_text_with(&text, options, identities).map_err(|reason| Error::Encrypt {
        path: path.to_owned(),
        reason,
    })
}

/// `sops -e -i`: replaces a plaintext file with its encryption, atomically (mode 0600).
pub fn encrypt_file_in_place(path: &Path, options: &EncryptOptions) -> Result<()> {
    let encrypted = encrypt_file(path, options)?;
    write_secret_file(path, &encrypted)
}

/// Writes an encrypted document atomically with mode 0600.
pub(crate) fn write_secret_file(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, text.as_bytes(), SECRET_FILE_MODE).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

/// What [`rekey_file`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekeyReport {
    /// age recipients added.
    pub added: Vec<String>,
    /// age recipients removed.
    pub removed: Vec<String>,
    /// The age recipients now.
    pub recipients: Vec<String>,
    /// Vault transit keys added (sops's URI form).
    pub added_vault: Vec<String>,
    /// Vault transit keys removed.
    pub removed_vault: Vec<String>,
    /// The Vault transit keys now.
    pub vault_keys: Vec<String>,
    /// Which key opened the file's data key.
    pub opened_with: Option<KeyUsed>,
}

impl RekeyReport {
    /// Whether the file changed.
    pub fn changed(&self) -> bool {
        !self.added.is_empty()
            || !self.removed.is_empty()
            || !self.added_vault.is_empty()
            || !self.removed_vault.is_empty()
    }
}

/// The keys a rekey adds and removes.
#[derive(Debug, Clone, Default)]
pub struct KeyChanges {
    /// age recipients to add.
    pub add: Vec<Recipient>,
    /// age recipients to remove.
    pub remove: Vec<Recipient>,
    /// Vault/OpenBao transit keys to add (the data key is wrapped through Vault).
    pub add_vault: Vec<VaultKey>,
    /// Transit keys to remove.
    pub remove_vault: Vec<VaultKey>,
}

/// Adds and removes age recipients of a SOPS file, re-encrypting only its data key. Refuses to
/// remove the last recipient, or one whose identity you hold (you would lock yourself out).
pub fn rekey_file(
    path: &Path,
    identities: &Identities,
    add: &[Recipient],
    remove: &[Recipient],
) -> Result<RekeyReport> {
    let changes = KeyChanges {
        add: add.to_vec(),
        remove: remove.to_vec(),
        ..KeyChanges::default()
    };
    rekey_file_keys(path, identities, &changes)
}

/// Adds and removes age recipients and Vault transit keys of a SOPS file (one key group:
/// any of them decrypts), re-encrypting only its data key; values, MAC and `lastmodified`
/// stay as they were. Refuses to leave no key, to remove an age recipient whose identity
/// you hold, and to remove the only key you can open the file with. Nothing is written when
/// any Vault call fails.
pub fn rekey_file_keys(
    path: &Path,
    identities: &Identities,
    changes: &KeyChanges,
) -> Result<RekeyReport> {
    let text = read_text(path)?;
    let doc = sops::decrypt_text(&text, identities).map_err(|reason| Error::Decrypt {
        path: path.to_owned(),
        reason,
    })?;
    let refuse = |reason: String| Error::Rekey {
        path: path.to_owned(),
        reason,
    };
    let current = doc.recipients();
    for r in &changes.remove {
        let r = r.to_string();
        if !current.contains(&r) {
            return Err(refuse(format!(
                "{r} is not a recipient; the recipients are {}",
                if current.is_empty() {
                    "(none)".to_owned()
                } else {
                    current.join(", ")
                }
            )));
        }
        if let Some(source) = identities.source_of(&r) {
            return Err(refuse(format!(
                "{r} is the public key of your own identity (from {source}); removing it would lock you out. \
                 Add the new recipient first, point SOPS_AGE_KEY_FILE at the new identity, then remove this one"
            )));
        }
    }
    let current_vault = doc.vault_keys();
    for k in &changes.remove_vault {
        if !current_vault.contains(&k.uri()) {
            return Err(refuse(format!(
                "{k} is not a Vault key of the file; its Vault keys are {}",
                if current_vault.is_empty() {
                    "(none)".to_owned()
                } else {
                    current_vault.join(", ")
                }
            )));
        }
    }
    let removed: Vec<String> = changes.remove.iter().map(ToString::to_string).collect();
    let mut next: Vec<String> = current
        .iter()
        .filter(|r| !removed.contains(r))
        .cloned()
        .collect();
    let mut added = Vec::new();
    for r in &changes.add {
        let r = r.to_string();
        if !next.contains(&r) {
            next.push(r.clone());
            added.push(r);
        }
    }
    let removed_vault: Vec<String> = changes.remove_vault.iter().map(VaultKey::uri).collect();
    let mut next_vault: Vec<VaultKey> = doc
        .metadata()
        .vault
        .iter()
        .filter(|e| !removed_vault.contains(&e.uri()))
        .filter_map(|e| VaultKey::new(&e.vault_address, &e.engine_path, &e.key_name).ok())
        .collect();
    let mut added_vault = Vec::new();
    for k in &changes.add_vault {
        if !next_vault.iter().any(|v| v.uri() == k.uri()) && !current_vault.contains(&k.uri()) {
            next_vault.push(k.clone());
            added_vault.push(k.uri());
        }
    }
    if next.is_empty() && next_vault.is_empty() {
        return Err(refuse(
            "that would remove the last recipient, and nobody could decrypt the file".to_owned(),
        ));
    }
    // Removing a Vault key you opened the file with, when none of the remaining keys is
    // yours, would lock you out as surely as removing your own age key.
    if !removed_vault.is_empty() {
        let age_left = next.iter().any(|r| identities.source_of(r).is_some());
        let vault_left = next_vault
            .iter()
            .any(|k| identities.vault_credential_for(&k.address).is_some());
        if !age_left && !vault_left {
            return Err(refuse(format!(
                "none of the keys left after removing {} is one you hold (no age identity of yours is a recipient, and there is no Vault credential for the remaining keys); removing it would lock you out. Add your own key first",
                removed_vault.join(", ")
            )));
        }
    }
    let report = RekeyReport {
        added,
        removed,
        recipients: next.clone(),
        added_vault,
        removed_vault,
        vault_keys: next_vault.iter().map(VaultKey::uri).collect(),
        opened_with: doc.opened_with().cloned(),
    };
    if !report.changed() {
        return Ok(report);
    }
    let recipients = next
        .iter()
        .map(|r| r.parse())
        .collect::<Result<Vec<Recipient>>>()?;
    let rekeyed =
        sops::rekey_text(&text, identities, &recipients, &next_vault).map_err(|reason| {
            Error::Encrypt {
                path: path.to_owned(),
                reason,
            }
        })?;
    write_secret_file(path, &rekeyed)?;
    Ok(report)
}

/// Encrypts Kubernetes Secret manifests for Flux: only `data` and `stringData` are encrypted
/// (`encrypted_regex: ^(data|stringData)$`), so Flux's kustomize-controller can decrypt them in
/// the cluster and everything else stays readable.
pub fn encrypt_kubernetes_secret(
    manifest_yaml: &str,
    recipients: &[Recipient],
) -> std::result::Result<String, SopsError> {
    let documents = yaml::parse_documents(manifest_yaml).map_err(SopsError::Yaml)?;
    check_secret_manifests(&documents)?;
    let options =
        EncryptOptions::new(recipients.to_vec()).with_encrypted_regex(FLUX_ENCRYPTED_REGEX);
    SopsDocument::new(documents, &options)?.encrypt()
}

/// Like [`encrypt_kubernetes_secret`], but returns `previous` unchanged when it already
/// decrypts (with `identities`) to the same manifests for the same recipients, so that
/// re-rendering an unchanged Secret gives byte-identical output.
pub fn encrypt_kubernetes_secret_stable(
    manifest_yaml: &str,
    recipients: &[Recipient],
    previous: Option<&str>,
    identities: &Identities,
) -> std::result::Result<String, SopsError> {
    encrypt_kubernetes_secret_stable_with(manifest_yaml, recipients, &[], previous, identities)
}

/// [`encrypt_kubernetes_secret_stable`] with Vault/OpenBao transit keys too: a new data key is
/// also wrapped by each of `vault` through its server (with the credentials of `identities`),
/// so Flux can decrypt with a Vault token; `previous` is kept when its recipients and transit
/// keys are the ones wanted and it holds the same manifests.
pub fn encrypt_kubernetes_secret_stable_with(
    manifest_yaml: &str,
    recipients: &[Recipient],
    vault: &[VaultKey],
    previous: Option<&str>,
    identities: &Identities,
) -> std::result::Result<String, SopsError> {
    if let Some(previous) = previous {
        let documents = yaml::parse_documents(manifest_yaml).map_err(SopsError::Yaml)?;
        if let Ok(old) = sops::decrypt_text(previous, identities) {
            let mut wanted: Vec<String> = recipients.iter().map(ToString::to_string).collect();
            let mut have = old.recipients();
            wanted.sort();
            have.sort();
            let same_rule = old.metadata().rule
                == sops::EncryptionRule::EncryptedRegex(FLUX_ENCRYPTED_REGEX.to_owned());
            let mut wanted_vault: Vec<String> = vault.iter().map(VaultKey::uri).collect();
            let mut have_vault = old.vault_keys();
            wanted_vault.sort();
            have_vault.sort();
            if same_rule
                && wanted == have
                && wanted_vault == have_vault
                && old.documents() == documents.as_slice()
            {
                return Ok(previous.to_owned());
            }
        }
    }
    if vault.is_empty() {
        return encrypt_kubernetes_secret(manifest_yaml, recipients);
    }
    let documents = yaml::parse_documents(manifest_yaml).map_err(SopsError::Yaml)?;
    check_secret_manifests(&documents)?;
    let options = EncryptOptions::new(recipients.to_vec())
        .with_vault(vault.to_vec())
        .with_encrypted_regex(FLUX_ENCRYPTED_REGEX);
    SopsDocument::new_with_keys(documents, &options, identities)?.encrypt()
}

fn check_secret_manifests(documents: &[Value]) -> std::result::Result<(), SopsError> {
    if documents.is_empty() {
        return Err(SopsError::Unencryptable {
            path: String::new(),
            reason: "the manifest is empty".to_owned(),
        });
    }
    for (i, doc) in documents.iter().enumerate() {
        let kind = doc
            .as_map()
            .and_then(|m| m.get("kind"))
            .and_then(Value::as_str);
        if kind != Some("Secret") {
            return Err(SopsError::Unencryptable {
                path: format!("document {}", i + 1),
                reason: "only `kind: Secret` manifests are encrypted for Flux".to_owned(),
            });
        }
    }
    Ok(())
}
