//! SOPS files on disk: decrypt (`sops -d`), encrypt (`sops -e`, also in place), rekey, and
//! Flux Secret manifests. Reads and atomic writes only; a failed operation leaves the file as
//! it was.

use std::fs;
use std::path::Path;

use secrecy::SecretString;

use crate::atomic::write_atomic;
use crate::error::{Error, Result, SopsError};
use crate::identity::{Identities, Recipient};
use crate::sops::{self, EncryptOptions, SopsDocument};
use crate::sops_config::FLUX_ENCRYPTED_REGEX;
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
    /// Recipients added.
    pub added: Vec<String>,
    /// Recipients removed.
    pub removed: Vec<String>,
    /// The recipients now.
    pub recipients: Vec<String>,
}

impl RekeyReport {
    /// Whether the file changed.
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty()
    }
}

/// Adds and removes age recipients of a SOPS file, re-encrypting only its data key. Refuses to
/// remove the last recipient, or one whose identity you hold (you would lock yourself out).
pub fn rekey_file(
    path: &Path,
    identities: &Identities,
    add: &[Recipient],
    remove: &[Recipient],
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
    for r in remove {
        let r = r.to_string();
        if !current.contains(&r) {
            return Err(refuse(format!(
                "{r} is not a recipient; the recipients are {}",
                current.join(", ")
            )));
        }
        if let Some(source) = identities.source_of(&r) {
            return Err(refuse(format!(
                "{r} is the public key of your own identity (from {source}); removing it would lock you out. \
                 Add the new recipient first, point SOPS_AGE_KEY_FILE at the new identity, then remove this one"
            )));
        }
    }
    let removed: Vec<String> = remove.iter().map(ToString::to_string).collect();
    let mut next: Vec<String> = current
        .iter()
        .filter(|r| !removed.contains(r))
        .cloned()
        .collect();
    let mut added = Vec::new();
    for r in add {
        let r = r.to_string();
        if !next.contains(&r) {
            next.push(r.clone());
            added.push(r);
        }
    }
    if next.is_empty() {
        return Err(refuse(
            "that would remove the last recipient, and nobody could decrypt the file".to_owned(),
        ));
    }
    let report = RekeyReport {
        added,
        removed,
        recipients: next.clone(),
    };
    if !report.changed() {
        return Ok(report);
    }
    let recipients = next
        .iter()
        .map(|r| r.parse())
        .collect::<Result<Vec<Recipient>>>()?;
    let rekeyed =
        sops::rekey_text(&text, identities, &recipients).map_err(|reason| Error::Encrypt {
            path: path.to_owned(),
            reason,
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
    if let Some(previous) = previous {
        let documents = yaml::parse_documents(manifest_yaml).map_err(SopsError::Yaml)?;
        if let Ok(old) = sops::decrypt_text(previous, identities) {
            let mut wanted: Vec<String> = recipients.iter().map(ToString::to_string).collect();
            let mut have = old.recipients();
            wanted.sort();
            have.sort();
            let same_rule = old.metadata().rule
                == sops::EncryptionRule::EncryptedRegex(FLUX_ENCRYPTED_REGEX.to_owned());
            if same_rule && wanted == have && old.documents() == documents.as_slice() {
                return Ok(previous.to_owned());
            }
        }
    }
    encrypt_kubernetes_secret(manifest_yaml, recipients)
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
