//! The `sops:` metadata block: reading it from a tree and writing it back in sops's field order;
//! it keeps key sources it cannot use (PGP, KMS, ...) untouched and never drops a field silently.

use regex::Regex;

use crate::error::SopsError;
use crate::yaml::{Mapping, Value};

/// The suffix sops uses when a file names no encryption rule.
pub const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// The `version` homelab writes: the sops release whose format (including `type:time`
/// values) it produces.
pub const SOPS_FORMAT_VERSION: &str = "3.10.2";

/// Which values sops encrypts. A file has exactly one rule; without one sops uses
/// `unencrypted_suffix: _unencrypted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncryptionRule {
    /// Values under a key ending with this suffix stay in plaintext.
    UnencryptedSuffix(String),
    /// Only values under a key ending with this suffix are encrypted.
    EncryptedSuffix(String),
    /// Values under a key matching this regex stay in plaintext.
    UnencryptedRegex(String),
    /// Only values under a key matching this regex are encrypted.
    EncryptedRegex(String),
}

impl Default for EncryptionRule {
    fn default() -> Self {
        EncryptionRule::UnencryptedSuffix(DEFAULT_UNENCRYPTED_SUFFIX.to_owned())
    }
}

impl EncryptionRule {
    fn field(&self) -> &'static str {
        match self {
            EncryptionRule::UnencryptedSuffix(_) => "unencrypted_suffix",
            EncryptionRule::EncryptedSuffix(_) => "encrypted_suffix",
            EncryptionRule::UnencryptedRegex(_) => "unencrypted_regex",
            EncryptionRule::EncryptedRegex(_) => "encrypted_regex",
        }
    }

    fn text(&self) -> &str {
        match self {
            EncryptionRule::UnencryptedSuffix(s)
            | EncryptionRule::EncryptedSuffix(s)
            | EncryptionRule::UnencryptedRegex(s)
            | EncryptionRule::EncryptedRegex(s) => s,
        }
    }

    pub(crate) fn compile(&self) -> Result<CompiledRule, SopsError> {
        let regex = |s: &str| {
            Regex::new(s).map_err(|e| SopsError::Regex {
                field: self.field(),
                reason: e.to_string(),
            })
        };
        Ok(match self {
            EncryptionRule::UnencryptedSuffix(s) => CompiledRule::UnencryptedSuffix(s.clone()),
            EncryptionRule::EncryptedSuffix(s) => CompiledRule::EncryptedSuffix(s.clone()),
            EncryptionRule::UnencryptedRegex(s) => CompiledRule::UnencryptedRegex(regex(s)?),
            EncryptionRule::EncryptedRegex(s) => CompiledRule::EncryptedRegex(regex(s)?),
        })
    }
}

/// An [`EncryptionRule`] ready to match key paths.
pub(crate) enum CompiledRule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
}

impl CompiledRule {
    /// sops's `shouldBeEncrypted`: any key on the path decides.
    pub(crate) fn should_encrypt(&self, path: &[String]) -> bool {
        match self {
            CompiledRule::UnencryptedSuffix(s) => !path.iter().any(|k| k.ends_with(s.as_str())),
            CompiledRule::EncryptedSuffix(s) => path.iter().any(|k| k.ends_with(s.as_str())),
            CompiledRule::UnencryptedRegex(r) => !path.iter().any(|k| r.is_match(k)),
            CompiledRule::EncryptedRegex(r) => path.iter().any(|k| r.is_match(k)),
        }
    }
}

/// One age recipient of a file and the data key encrypted to it (armored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeEntry {
    /// The recipient (`age1...`).
    pub recipient: String,
    /// The data key, age-encrypted and armored.
    pub enc: String,
}

/// One Vault/OpenBao transit key of a file and the data key it wrapped (`hc_vault`), with the
/// fields sops writes, in its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultEntry {
    /// `vault_address`: `scheme://host[:port]`.
    pub vault_address: String,
    /// `engine_path`: the transit engine's mount.
    pub engine_path: String,
    /// `key_name`: the transit key.
    pub key_name: String,
    /// `created_at`: RFC 3339, when the data key was wrapped.
    pub created_at: String,
    /// `enc`: the wrapped data key (`vault:v1:...`).
    pub enc: String,
}

impl VaultEntry {
    /// sops's text form of the key: `ADDRESS/v1/ENGINE/keys/NAME`.
    pub fn uri(&self) -> String {
        format!(
            "{}/v1/{}/keys/{}",
            self.vault_address, self.engine_path, self.key_name
        )
    }
}

/// The `sops:` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// Vault/OpenBao transit keys with their wrapped data keys.
    pub vault: Vec<VaultEntry>,
    /// age recipients with their encrypted data keys.
    pub age: Vec<AgeEntry>,
    /// `lastmodified`, as written.
    pub lastmodified: String,
    /// `mac`: the encrypted MAC.
    pub mac: String,
    /// Which values are encrypted.
    pub rule: EncryptionRule,
    /// `mac_only_encrypted`.
    pub mac_only_encrypted: bool,
    /// `version`.
    pub version: String,
    /// Key sources and fields homelab does not use, kept as they are.
    pub(crate) other: Vec<(String, Value)>,
}

/// Fields sops writes before `hc_vault` and `age`, in its order.
const LEADING_KEY_SOURCES: [&str; 5] = ["shamir_threshold", "kms", "gcp_kms", "hckms", "azure_kv"];

impl Metadata {
    /// Reads the `sops:` mapping.
    pub(crate) fn from_mapping(m: &Mapping) -> Result<Self, SopsError> {
        let invalid = |field: &'static str, reason: &str| SopsError::InvalidMetadata {
            field,
            reason: reason.to_owned(),
        };
        let text = |field: &'static str, v: &Value| -> Result<String, SopsError> {
            match v {
                Value::Str(s) | Value::Timestamp(s) => Ok(s.clone()),
                Value::Int(_) | Value::Float(_) => Ok(v.scalar_text().unwrap_or_default()),
                _ => Err(invalid(
                    field,
                    &format!("expected a string, found a {}", v.type_name()),
                )),
            }
        };
        let mut age = Vec::new();
        let mut vault = Vec::new();
        let mut lastmodified = None;
        let mut mac = None;
        let mut version = String::new();
        let mut rules = Vec::new();
        let mut mac_only_encrypted = false;
        let mut other = Vec::new();
        for (key, value) in m.iter() {
            match key {
                "age" => age = parse_age(value)?,
                "hc_vault" => vault = parse_vault(value)?,
                "lastmodified" => lastmodified = Some(text("lastmodified", value)?),
                "mac" => mac = Some(text("mac", value)?),
                "version" => version = text("version", value)?,
                "unencrypted_suffix" | "encrypted_suffix" | "unencrypted_regex"
                | "encrypted_regex" => {
                    let field: &'static str = match key {
                        "unencrypted_suffix" => "unencrypted_suffix",
                        "encrypted_suffix" => "encrypted_suffix",
                        "unencrypted_regex" => "unencrypted_regex",
                        _ => "encrypted_regex",
                    };
                    let s = text(field, value)?;
                    if !s.is_empty() {
                        rules.push(match field {
                            "unencrypted_suffix" => EncryptionRule::UnencryptedSuffix(s),
                            "encrypted_suffix" => EncryptionRule::EncryptedSuffix(s),
                            "unencrypted_regex" => EncryptionRule::UnencryptedRegex(s),
                            _ => EncryptionRule::EncryptedRegex(s),
                        });
                    }
                }
                "unencrypted_comment_regex" | "encrypted_comment_regex" => {
                    if !matches!(value, Value::Str(s) if s.is_empty()) && *value != Value::Null {
                        return Err(SopsError::Unsupported(format!(
                            "`{key}` (comments are not kept, so comment-based rules cannot be applied)"
                        )));
                    }
                }
                "mac_only_encrypted" => match value {
                    Value::Bool(b) => mac_only_encrypted = *b,
                    Value::Null => {}
                    _ => return Err(invalid("mac_only_encrypted", "expected true or false")),
                },
                "key_groups" => {
                    if !is_empty_collection(value) {
                        return Err(SopsError::Unsupported(
                            "`key_groups` (Shamir secret sharing across key groups)".to_owned(),
                        ));
                    }
                }
                _ => {
                    if !is_empty_collection(value) {
                        other.push((key.to_owned(), value.clone()));
                    }
                }
            }
        }
        if rules.len() > 1 {
            return Err(SopsError::InvalidMetadata {
                field: "encrypted_regex",
                reason: "a file may use only one of unencrypted_suffix, encrypted_suffix, unencrypted_regex and encrypted_regex".to_owned(),
            });
        }
        Ok(Metadata {
            vault,
            age,
            lastmodified: lastmodified.ok_or_else(|| invalid("lastmodified", "missing"))?,
            mac: mac.ok_or_else(|| invalid("mac", "missing"))?,
            rule: rules.pop().unwrap_or_default(),
            mac_only_encrypted,
            version,
            other,
        })
    }

    /// Writes the `sops:` mapping in the field order sops uses.
    pub(crate) fn to_mapping(&self) -> Mapping {
        let mut m = Mapping::new();
        for key in LEADING_KEY_SOURCES {
            if let Some((_, v)) = self.other.iter().find(|(k, _)| k == key) {
                m.insert(key, v.clone());
            }
        }
        if !self.vault.is_empty() {
            let entries = self
                .vault
                .iter()
                .map(|e| {
                    let mut entry = Mapping::new();
                    entry.insert("vault_address", Value::Str(e.vault_address.clone()));
                    entry.insert("engine_path", Value::Str(e.engine_path.clone()));
                    entry.insert("key_name", Value::Str(e.key_name.clone()));
                    entry.insert("created_at", Value::Str(e.created_at.clone()));
                    entry.insert("enc", Value::Str(e.enc.clone()));
                    Value::Map(entry)
                })
                .collect();
            m.insert("hc_vault", Value::Seq(entries));
        }
        if !self.age.is_empty() {
            let entries = self
                .age
                .iter()
                .map(|e| {
                    let mut entry = Mapping::new();
                    entry.insert("recipient", Value::Str(e.recipient.clone()));
                    entry.insert("enc", Value::Str(e.enc.clone()));
                    Value::Map(entry)
                })
                .collect();
            m.insert("age", Value::Seq(entries));
        }
        m.insert("lastmodified", Value::Str(self.lastmodified.clone()));
        m.insert("mac", Value::Str(self.mac.clone()));
        if let Some((_, v)) = self.other.iter().find(|(k, _)| k == "pgp") {
            m.insert("pgp", v.clone());
        }
        m.insert(self.rule.field(), Value::Str(self.rule.text().to_owned()));
        if self.mac_only_encrypted {
            m.insert("mac_only_encrypted", Value::Bool(true));
        }
        for (k, v) in &self.other {
            if !LEADING_KEY_SOURCES.contains(&k.as_str()) && k != "pgp" {
                m.insert(k.clone(), v.clone());
            }
        }
        m.insert("version", Value::Str(self.version.clone()));
        m
    }

    /// Whether the file has key sources other than age and Vault (which homelab keeps but
    /// cannot use).
    pub fn has_other_key_sources(&self) -> bool {
        self.other
            .iter()
            .any(|(k, _)| matches!(k.as_str(), "kms" | "gcp_kms" | "hckms" | "azure_kv" | "pgp"))
    }
}

fn is_empty_collection(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Seq(items) => items.is_empty(),
        Value::Map(m) => m.is_empty(),
        _ => false,
    }
}

fn parse_vault(v: &Value) -> Result<Vec<VaultEntry>, SopsError> {
    let invalid = |reason: String| SopsError::InvalidMetadata {
        field: "hc_vault",
        reason,
    };
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Seq(items) => items,
        other => {
            return Err(invalid(format!(
                "expected a list, found a {}",
                other.type_name()
            )));
        }
    };
    items
        .iter()
        .filter(|item| !matches!(item, Value::Comment(_)))
        .enumerate()
        .map(|(i, item)| {
            let m = item
                .as_map()
                .ok_or_else(|| invalid(format!("entry {} is not a mapping", i + 1)))?;
            let field = |name: &str| match m.get(name) {
                Some(Value::Str(s)) | Some(Value::Timestamp(s)) => Ok(s.clone()),
                _ => Err(invalid(format!("entry {} has no `{name}` string", i + 1))),
            };
            Ok(VaultEntry {
                vault_address: field("vault_address")?,
                engine_path: field("engine_path")?,
                key_name: field("key_name")?,
                created_at: field("created_at")?,
                enc: field("enc")?,
            })
        })
        .collect()
}

fn parse_age(v: &Value) -> Result<Vec<AgeEntry>, SopsError> {
    let invalid = |reason: String| SopsError::InvalidMetadata {
        field: "age",
        reason,
    };
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Seq(items) => items,
        other => {
            return Err(invalid(format!(
                "expected a list, found a {}",
                other.type_name()
            )));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let m = item
                .as_map()
                .ok_or_else(|| invalid(format!("entry {} is not a mapping", i + 1)))?;
            let field = |name: &str| {
                m.get(name)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(format!("entry {} has no `{name}` string", i + 1)))
            };
            Ok(AgeEntry {
                recipient: field("recipient")?,
                enc: field("enc")?,
            })
        })
        .collect()
}
