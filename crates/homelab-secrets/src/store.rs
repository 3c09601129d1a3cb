//! The lab secrets store `secrets.sops.yaml`: a flat SOPS map of name to string value. Get,
//! set, remove, list (never values), generate what is missing, rotate, save atomically with
//! mode 0600. Values live in `SecretString`s; an unset secret is stored as an empty string.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result, SopsError};
use crate::files::{read_text, write_secret_file};
use crate::generate::{
    Generator, SecretRequirement, argon2id_hash, fresh_value, htpasswd_line, validate_requirements,
};
use crate::identity::{Identities, Recipient};
use crate::redact::KnownSecrets;
use crate::sops::{self, EncryptOptions, KeyUsed, METADATA_KEY, SopsDocument};
use crate::vault::VaultKey;
use crate::yaml::{Mapping, Value};

/// The store's file name, at the root of the lab repository.
pub const SECRETS_FILE: &str = "secrets.sops.yaml";

/// Whether a secret has a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretStatus {
    /// The name.
    pub name: String,
    /// `false` for placeholders waiting for `homelab secrets set`.
    pub set: bool,
}

/// One line of `homelab secrets list`: store state joined with the plan's requirements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretListing {
    /// The name.
    pub name: String,
    /// Whether it has a value.
    pub set: bool,
    /// Whether it is in the store at all.
    pub stored: bool,
    /// Components that use it (empty when the plan does not need it).
    pub used_by: Vec<String>,
    /// How its value is made, when the plan needs it.
    pub source: Option<String>,
}

/// What [`SecretsStore::generate_missing`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GenerateReport {
    /// Secrets that got a generated value.
    pub generated: Vec<String>,
    /// User-provided secrets added as unset placeholders.
    pub placeholders: Vec<String>,
    /// Secrets that already existed (never changed).
    pub existing: Vec<String>,
}

impl GenerateReport {
    /// Whether the store changed.
    pub fn changed(&self) -> bool {
        !self.generated.is_empty() || !self.placeholders.is_empty()
    }
}

/// What [`SecretsStore::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateReport {
    /// Secrets that got new values (the one asked for and those derived from it).
    pub rotated: Vec<String>,
    /// Components to re-apply so they pick up the new values.
    pub reapply: Vec<String>,
}

/// Whether [`SecretsStore::set`] added or replaced a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// A new name.
    Added,
    /// An existing name got a new value.
    Replaced,
}

struct Entry {
    name: String,
    value: Option<SecretString>,
}

/// An open secrets store. `Debug` shows names and whether each is set, never values.
pub struct SecretsStore {
    path: PathBuf,
    entries: Vec<Entry>,
    file: SopsDocument,
    dirty: bool,
}

impl fmt::Debug for SecretsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsStore")
            .field("path", &self.path)
            .field("secrets", &self.list())
            .finish_non_exhaustive()
    }
}

/// Checks a secret name: letters, digits, `.`, `_`, `-`; starts with a letter or digit.
pub fn validate_name(name: &str) -> Result<()> {
    let fail = |reason: &str| Error::InvalidSecretName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() || name.len() > 253 {
        return Err(fail("a name has 1 to 253 characters"));
    }
    if !name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return Err(fail("a name starts with a letter or digit"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(fail("a name uses only letters, digits, `.`, `_` and `-`"));
    }
    if name == METADATA_KEY {
        return Err(fail("`sops` is reserved for the SOPS metadata"));
    }
    Ok(())
}

impl SecretsStore {
    /// Opens and decrypts the store (MAC verified).
    pub fn open(path: &Path, identities: &Identities) -> Result<Self> {
        if !path.exists() {
            return Err(Error::StoreMissing {
                path: path.to_owned(),
            });
        }
        let file = crate::files::open_file(path, identities)?;
        let entries = entries_from(path, file.documents())?;
        let mut store = Self {
            path: path.to_owned(),
            entries,
            file,
            dirty: false,
        };
        store.file.clear_documents();
        Ok(store)
    }

    /// A new, empty store for `recipients` (written by [`SecretsStore::save`]). Refuses when
    /// the file exists.
    pub fn create(path: &Path, recipients: &[Recipient]) -> Result<Self> {
        Self::create_with_keys(path, recipients, &[], &Identities::empty())
    }

    /// A new, empty store whose data key is encrypted to `recipients` and wrapped by the
    /// transit keys `vault` (with the Vault credentials of `identities`). Refuses when the
    /// file exists; nothing is written when a Vault call fails.
    pub fn create_with_keys(
        path: &Path,
        recipients: &[Recipient],
        vault: &[VaultKey],
        identities: &Identities,
    ) -> Result<Self> {
        if path.exists() {
            return Err(Error::StoreShape {
                path: path.to_owned(),
                reason: "the secrets file already exists; open it instead of creating it"
                    .to_owned(),
            });
        }
        let options = EncryptOptions::new(recipients.to_vec()).with_vault(vault.to_vec());
        let file =
            SopsDocument::new_with_keys(Vec::new(), &options, identities).map_err(|reason| {
                Error::Encrypt {
                    path: path.to_owned(),
                    reason,
                }
            })?;
        Ok(Self {
            path: path.to_owned(),
            entries: Vec::new(),
            file,
            dirty: true,
        })
    }

    /// Opens the store, or creates an empty one for `recipients` when the file does not exist.
    pub fn open_or_create(
        path: &Path,
        identities: &Identities,
        recipients: &[Recipient],
    ) -> Result<Self> {
        if path.exists() {
            Self::open(path, identities)
        } else {
            Self::create(path, recipients)
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The age recipients of the store.
    pub fn recipients(&self) -> Vec<String> {
        self.file.recipients()
    }

    /// The Vault transit keys of the store, in sops's URI form.
    pub fn vault_keys(&self) -> Vec<String> {
        self.file.vault_keys()
    }

    /// Which key opened the store (`None` for a store created now).
    pub fn opened_with(&self) -> Option<&KeyUsed> {
        self.file.opened_with()
    }

    /// Whether there are unsaved changes.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Secret names, in file order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// Names and whether each is set; never values.
    pub fn list(&self) -> Vec<SecretStatus> {
        self.entries
            .iter()
            .map(|e| SecretStatus {
                name: e.name.clone(),
                set: e.value.is_some(),
            })
            .collect()
    }

    /// Whether `name` is in the store (set or not).
    pub fn contains(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }

    /// Whether `name` has a value.
    pub fn is_set(&self, name: &str) -> Result<bool> {
        Ok(self.entry_or_unknown(name)?.value.is_some())
    }

    /// The value of `name`. Errors for unknown names (listing those that exist) and unset ones.
    pub fn get(&self, name: &str) -> Result<&SecretString> {
        self.entry_or_unknown(name)?
            .value
            .as_ref()
            .ok_or_else(|| Error::SecretUnset {
                name: name.to_owned(),
            })
    }

    /// Sets `name` (adding it when new). Empty values are refused.
    pub fn set(&mut self, name: &str, value: SecretString) -> Result<SetOutcome> {
        self.check_storable(name)?;
        if value.expose_secret().is_empty() {
            return Err(Error::EmptyValue {
                name: name.to_owned(),
            });
        }
        self.dirty = true;
        match self.entries.iter_mut().find(|e| e.name == name) {
            Some(entry) => {
                entry.value = Some(value);
                Ok(SetOutcome::Replaced)
            }
            None => {
                self.entries.push(Entry {
                    name: name.to_owned(),
                    value: Some(value),
                });
                Ok(SetOutcome::Added)
            }
        }
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) -> Result<()> {
        self.entry_or_unknown(name)?;
        self.entries.retain(|e| e.name != name);
        self.dirty = true;
        Ok(())
    }

    /// Adds every required secret that is missing: generated values, or unset placeholders
    /// for user-provided ones. Existing secrets (set or not) are never changed.
    pub fn generate_missing(
        &mut self,
        requirements: &[SecretRequirement],
    ) -> Result<GenerateReport> {
        validate_requirements(requirements)?;
        let mut report = GenerateReport::default();
        let ordered = requirements
            .iter()
            .filter(|r| r.generator.derived_from().is_none())
            .chain(
                requirements
                    .iter()
                    .filter(|r| r.generator.derived_from().is_some()),
            );
        for req in ordered {
            if self.contains(&req.name) {
                report.existing.push(req.name.clone());
                continue;
            }
            self.check_storable(&req.name)?;
            let value = self.make_value(req)?;
            if value.is_some() {
                report.generated.push(req.name.clone());
            } else {
                report.placeholders.push(req.name.clone());
            }
            self.entries.push(Entry {
                name: req.name.clone(),
                value,
            });
            self.dirty = true;
        }
        Ok(report)
    }

    /// Gives `name` a new generated value; secrets derived from it (htpasswd lines) follow.
    /// Rotating an htpasswd line rotates its password. Returns the components to re-apply.
    pub fn rotate(
        &mut self,
        name: &str,
        requirements: &[SecretRequirement],
    ) -> Result<RotateReport> {
        validate_requirements(requirements)?;
        let refuse = |reason: String| Error::Rotate {
            name: name.to_owned(),
            reason,
        };
        let Some(req) = requirements.iter().find(|r| r.name == name) else {
            if self.contains(name) {
                return Err(refuse(format!(
                    "the lab does not generate it; set a new value with `homelab secrets set {name}`"
                )));
            }
            return Err(Error::UnknownSecret {
                name: name.to_owned(),
                known: self.names().iter().map(|s| (*s).to_owned()).collect(),
            });
        };
        let root = match &req.generator {
            Generator::UserProvided { .. } => {
                return Err(refuse(format!(
                    "it is provided by you; set a new value with `homelab secrets set {name}`"
                )));
            }
            Generator::BcryptHtpasswd { password_from, .. }
            | Generator::Argon2idHash { password_from } => {
                let source = requirements.iter().find(|r| &r.name == password_from);
                match source.map(|s| &s.generator) {
                    Some(Generator::Password { .. }) => source.expect("found above"),
                    _ => {
                        return Err(refuse(format!(
                            "its password `{password_from}` is not generated; set it with `homelab secrets set {password_from}`, then rotate again"
                        )));
                    }
                }
            }
            Generator::CaCertificate { key_from, .. } => requirements
                .iter()
                .find(|r| &r.name == key_from)
                .expect("validated: the key is listed"),
            _ => req,
        };
        let mut rotated = vec![root.name.clone()];
        let new_value = self
            .make_value(root)?
            .expect("a self-contained generator makes a value");
        self.put(&root.name, Some(new_value))?;
        for derived in requirements
            .iter()
            .filter(|r| r.generator.derived_from() == Some(root.name.as_str()))
        {
            let value = self.make_value(derived)?;
            self.put(&derived.name, value)?;
            rotated.push(derived.name.clone());
        }
        let mut reapply: Vec<String> = requirements
            .iter()
            .filter(|r| rotated.contains(&r.name))
            .flat_map(|r| r.used_by.iter().cloned())
            .collect();
        reapply.sort();
        reapply.dedup();
        Ok(RotateReport { rotated, reapply })
    }

    /// Names among `referenced` that the store lacks.
    pub fn missing<'a>(&self, referenced: &[&'a str]) -> Vec<&'a str> {
        referenced
            .iter()
            .copied()
            .filter(|n| !self.contains(n))
            .collect()
    }

    /// The store's values, for redaction and leak scans.
    pub fn known_secrets(&self) -> KnownSecrets {
        let mut known = KnownSecrets::new();
        for e in &self.entries {
            if let Some(v) = &e.value {
                known.insert(&e.name, v.clone());
            }
        }
        known
    }

    /// Writes the store atomically (mode 0600), re-encrypted with fresh IVs and a new MAC.
    pub fn save(&mut self) -> Result<()> {
        let mut map = Mapping::new();
        for e in &self.entries {
            let value = e
                .value
                .as_ref()
                .map(|v| v.expose_secret().to_owned())
                .unwrap_or_default();
            map.insert(e.name.clone(), Value::Str(value));
        }
        *self.file.documents_mut() = vec![Value::Map(map)];
        let encrypted = self.file.encrypt();
        self.file.clear_documents();
        let encrypted = encrypted.map_err(|reason| Error::Encrypt {
            path: self.path.clone(),
            reason,
        })?;
        write_secret_file(&self.path, &encrypted)?;
        self.dirty = false;
        Ok(())
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    fn entry_or_unknown(&self, name: &str) -> Result<&Entry> {
        self.entry(name).ok_or_else(|| Error::UnknownSecret {
            name: name.to_owned(),
            known: self.names().iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    fn put(&mut self, name: &str, value: Option<SecretString>) -> Result<()> {
        self.check_storable(name)?;
        self.dirty = true;
        match self.entries.iter_mut().find(|e| e.name == name) {
            Some(e) => e.value = value,
            None => self.entries.push(Entry {
                name: name.to_owned(),
                value,
            }),
        }
        Ok(())
    }

    /// A name must be valid and its value encrypted under the file's rule.
    fn check_storable(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        let rule = self
            .file
            .metadata()
            .rule
            .compile()
            .map_err(|reason| Error::Encrypt {
                path: self.path.clone(),
                reason,
            })?;
        if !rule.should_encrypt(&[name.to_owned()]) {
            return Err(Error::InvalidSecretName {
                name: name.to_owned(),
                reason: format!(
                    "the file's rule ({:?}) would leave its value unencrypted",
                    self.file.metadata().rule
                ),
            });
        }
        Ok(())
    }

    fn make_value(&self, req: &SecretRequirement) -> Result<Option<SecretString>> {
        match &req.generator {
            Generator::BcryptHtpasswd {
                user,
                password_from,
            } => {
                let password = match self.entry(password_from) {
                    Some(Entry { value: Some(v), .. }) => v,
                    _ => {
                        return Err(Error::Requirement {
                            name: req.name.clone(),
                            reason: format!(
                                "its password `{password_from}` is not set; set it with `homelab secrets set {password_from}`"
                            ),
                        });
                    }
                };
                htpasswd_line(user, password).map(Some)
            }
            Generator::Argon2idHash { password_from } => {
                let Some(Entry {
                    value: Some(password),
                    ..
                }) = self.entry(password_from)
                else {
                    return Err(Error::Requirement {
                        name: req.name.clone(),
                        reason: format!(
                            "its password `{password_from}` is not set; set it with `homelab secrets set {password_from}`"
                        ),
                    });
                };
                argon2id_hash(password).map(Some)
            }
            Generator::CaKey => crate::ca::generate_key(&req.name).map(Some),
            Generator::CaCertificate {
                common_name,
                key_from,
                days,
            } => {
                let Some(Entry {
                    value: Some(key), ..
                }) = self.entry(key_from)
                else {
                    return Err(Error::Requirement {
                        name: req.name.clone(),
                        reason: format!(
                            "its key `{key_from}` is not set; remove both and run `homelab secrets init` to make a new pair"
                        ),
                    });
                };
                let today = jiff::Timestamp::now()
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .date();
                crate::ca::self_signed_root(&req.name, key, common_name, *days, today).map(Some)
            }
            other => Ok(fresh_value(other)),
        }
    }
}

fn entries_from(path: &Path, documents: &[Value]) -> Result<Vec<Entry>> {
    let shape = |reason: String| Error::StoreShape {
        path: path.to_owned(),
        reason,
    };
    let map = match documents {
        [] => return Ok(Vec::new()),
        [Value::Map(m)] => m,
        [other] => {
            return Err(shape(format!(
                "the secrets file must be a map of name to value, not a {}",
                other.type_name()
            )));
        }
        _ => {
            return Err(shape(
                "the secrets file must hold one YAML document".to_owned(),
            ));
        }
    };
    map.iter()
        .map(|(name, value)| {
            let text = match value {
                Value::Null => None,
                Value::Str(s) if s.is_empty() => None,
                Value::Seq(_) | Value::Map(_) => {
                    return Err(shape(format!(
                        "secret `{name}` holds a {}; the secrets file is a flat map of name to string value",
                        value.type_name()
                    )));
                }
                Value::Bytes(_) => {
                    return Err(shape(format!(
                        "secret `{name}` holds binary data; store it base64-encoded as a string"
                    )));
                }
                scalar => scalar.scalar_text(),
            };
            Ok(Entry {
                name: name.to_owned(),
                value: text.map(SecretString::from),
            })
        })
        .collect()
}

/// A value typed at a prompt or piped to stdin: one trailing line break (`\n` or `\r\n`) is
/// removed, as `echo VALUE | homelab secrets set NAME` adds one; everything else is kept.
pub fn secret_from_input(mut text: String) -> SecretString {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    SecretString::from(text)
}

/// Reads the secret names and whether each is set, without decrypting (names and empty
/// placeholders are plaintext in a SOPS file). Integrity is not verified: use
/// [`SecretsStore::open`] when that matters.
pub fn peek_names(path: &Path) -> Result<Vec<SecretStatus>> {
    let text = read_text(path)?;
    let (documents, _) = sops::split_metadata(&text).map_err(|reason| Error::Decrypt {
        path: path.to_owned(),
        reason,
    })?;
    let map = match documents.as_slice() {
        [] => return Ok(Vec::new()),
        [Value::Map(m)] => m,
        _ => {
            return Err(Error::Decrypt {
                path: path.to_owned(),
                reason: SopsError::NotAMapping {
                    index: 1,
                    found: "list",
                },
            });
        }
    };
    Ok(map
        .iter()
        .map(|(name, v)| SecretStatus {
            name: name.to_owned(),
            set: !matches!(v, Value::Null) && !matches!(v, Value::Str(s) if s.is_empty()),
        })
        .collect())
}

/// Joins store state with the plan's requirements: every stored secret and every required
/// one, with users and how each is made. Required-but-missing secrets show `stored: false`.
pub fn listing(
    statuses: &[SecretStatus],
    requirements: &[SecretRequirement],
) -> Vec<SecretListing> {
    let mut out: Vec<SecretListing> = statuses
        .iter()
        .map(|s| {
            let req = requirements.iter().find(|r| r.name == s.name);
            SecretListing {
                name: s.name.clone(),
                set: s.set,
                stored: true,
                used_by: req.map(|r| r.used_by.clone()).unwrap_or_default(),
                source: req.map(|r| r.generator.describe()),
            }
        })
        .collect();
    for req in requirements {
        if !statuses.iter().any(|s| s.name == req.name) {
            out.push(SecretListing {
                name: req.name.clone(),
                set: false,
                stored: false,
                used_by: req.used_by.clone(),
                source: Some(req.generator.describe()),
            });
        }
    }
    out
}
