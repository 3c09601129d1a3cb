//! `.sops.yaml` creation rules: writing homelab's rules (the secrets file and rendered Flux
//! Secrets) so the `sops` CLI works on the same files, reading recipients back, and choosing
//! the rule for a file. It keeps rules and keys it does not own (comments are not kept).

use std::fs;
use std::path::{Path, PathBuf};

use regex::Regex;

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::identity::Recipient;
use crate::sops::{EncryptOptions, EncryptionRule};
use crate::vault::VaultKey;
use crate::yaml::{self, Mapping, Value};

/// The config file name sops looks for.
pub const SOPS_CONFIG_FILE: &str = ".sops.yaml";
/// The rule matching the lab secrets store.
pub const SECRETS_PATH_REGEX: &str = r"(^|/)secrets\.sops\.yaml$";
/// The rule matching rendered Flux Secrets: any other `*.sops.yaml` file.
pub const FLUX_SECRETS_PATH_REGEX: &str = r"\.sops\.yaml$";
/// What Flux Secrets encrypt: only `data` and `stringData`, so Flux can read the rest.
pub const FLUX_ENCRYPTED_REGEX: &str = "^(data|stringData)$";
/// The creation-rule key sops reads Vault transit keys from.
const VAULT_URI_KEY: &str = "hc_vault_transit_uri";

/// One `creation_rules` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CreationRule {
    /// `path_regex`; `None` matches every file.
    pub path_regex: Option<String>,
    /// `age` recipients.
    pub age: Vec<String>,
    /// `encrypted_regex` / `unencrypted_regex` / `encrypted_suffix` / `unencrypted_suffix`.
    pub rule: Option<EncryptionRule>,
    /// `mac_only_encrypted`.
    pub mac_only_encrypted: bool,
    /// Keys homelab does not interpret (pgp, kms, key_groups, ...), kept as they are.
    pub other: Mapping,
}

impl CreationRule {
    /// A rule for `path_regex` encrypting to `recipients`.
    pub fn new(path_regex: &str, recipients: &[Recipient]) -> Self {
        Self {
            path_regex: Some(path_regex.to_owned()),
            age: recipients.iter().map(ToString::to_string).collect(),
            rule: None,
            mac_only_encrypted: false,
            other: Mapping::new(),
        }
    }

    /// The options to encrypt a file this rule matches.
    pub fn encrypt_options(&self) -> Result<EncryptOptions> {
        let recipients = self
            .age
            .iter()
            .map(|r| r.parse())
            .collect::<Result<Vec<Recipient>>>()?;
        // sops's `hc_vault_transit_uri`: comma-separated transit key URIs.
        let vault = match self.other.get(VAULT_URI_KEY) {
            Some(Value::Str(uris)) => uris
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(|u| u.parse().map_err(Error::Vault))
                .collect::<Result<Vec<_>>>()?,
            _ => Vec::new(),
        };
        Ok(EncryptOptions {
            recipients,
            vault,
            rule: self.rule.clone().unwrap_or_default(),
            mac_only_encrypted: self.mac_only_encrypted,
        })
    }

    fn to_value(&self) -> Value {
        let mut m = Mapping::new();
        if let Some(p) = &self.path_regex {
            m.insert("path_regex", Value::Str(p.clone()));
        }
        match &self.rule {
            Some(EncryptionRule::EncryptedRegex(r)) => {
                m.insert("encrypted_regex", Value::Str(r.clone()));
            }
            Some(EncryptionRule::UnencryptedRegex(r)) => {
                m.insert("unencrypted_regex", Value::Str(r.clone()));
            }
            Some(EncryptionRule::EncryptedSuffix(s)) => {
                m.insert("encrypted_suffix", Value::Str(s.clone()));
            }
            Some(EncryptionRule::UnencryptedSuffix(s)) => {
                m.insert("unencrypted_suffix", Value::Str(s.clone()));
            }
            None => {}
        }
        if self.mac_only_encrypted {
            m.insert("mac_only_encrypted", Value::Bool(true));
        }
        for (k, v) in self.other.iter() {
            m.insert(k, v.clone());
        }
        if !self.age.is_empty() {
            m.insert("age", Value::Str(self.age.join(",")));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value, index: usize) -> std::result::Result<Self, String> {
        let m = v
            .as_map()
            .ok_or_else(|| format!("creation_rules entry {} is not a mapping", index + 1))?;
        let string = |key: &str| -> std::result::Result<Option<String>, String> {
            match m.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Str(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!(
                    "creation_rules entry {}: `{key}` must be a string, found a {}",
                    index + 1,
                    other.type_name()
                )),
            }
        };
        let mut rule = None;
        let mut count = 0;
        for (key, make) in [
            (
                "encrypted_regex",
                EncryptionRule::EncryptedRegex as fn(String) -> EncryptionRule,
            ),
            ("unencrypted_regex", EncryptionRule::UnencryptedRegex),
            ("encrypted_suffix", EncryptionRule::EncryptedSuffix),
            ("unencrypted_suffix", EncryptionRule::UnencryptedSuffix),
        ] {
            if let Some(s) = string(key)?.filter(|s| !s.is_empty()) {
                rule = Some(make(s));
                count += 1;
            }
        }
        if count > 1 {
            return Err(format!(
                "creation_rules entry {} sets more than one of encrypted_regex, unencrypted_regex, encrypted_suffix, unencrypted_suffix",
                index + 1
            ));
        }
        let age = match m.get("age") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Str(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(Value::Seq(items)) => items
                .iter()
                .map(|i| {
                    i.as_str().map(|s| s.trim().to_owned()).ok_or_else(|| {
                        format!(
                            "creation_rules entry {}: `age` list items must be strings",
                            index + 1
                        )
                    })
                })
                .collect::<std::result::Result<_, _>>()?,
            Some(other) => {
                return Err(format!(
                    "creation_rules entry {}: `age` must be a string or list, found a {}",
                    index + 1,
                    other.type_name()
                ));
            }
        };
        let mac_only_encrypted = matches!(m.get("mac_only_encrypted"), Some(Value::Bool(true)));
        let known = [
            "path_regex",
            "age",
            "encrypted_regex",
            "unencrypted_regex",
            "encrypted_suffix",
            "unencrypted_suffix",
            "mac_only_encrypted",
        ];
        let other = m
            .iter()
            .filter(|(k, _)| !known.contains(k))
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        Ok(Self {
            path_regex: string("path_regex")?,
            age,
            rule,
            mac_only_encrypted,
            other,
        })
    }
}

/// A `.sops.yaml` file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SopsConfig {
    /// `creation_rules`, first match wins.
    pub creation_rules: Vec<CreationRule>,
    /// Other top-level keys, kept.
    other: Mapping,
}

impl SopsConfig {
    /// homelab's rules: the secrets store (every value encrypted) and rendered Flux Secrets
    /// (`data`/`stringData` encrypted), both for `recipients`.
    pub fn homelab(recipients: &[Recipient]) -> Self {
        let mut config = Self::default();
        config.apply_homelab_rules(recipients);
        config
    }

    /// Adds homelab's two rules when missing: the secrets-store rule in front, the Flux rule
    /// right after it (first match wins in sops, and the Flux rule's pattern also matches
    /// `secrets.sops.yaml`). Existing homelab rules keep their recipients. Returns whether
    /// anything changed.
    pub fn apply_homelab_rules(&mut self, recipients: &[Recipient]) -> bool {
        let position = |c: &Self, regex: &str| {
            c.creation_rules
                .iter()
                .position(|r| r.path_regex.as_deref() == Some(regex))
        };
        let mut changed = false;
        let secrets_at = match position(self, SECRETS_PATH_REGEX) {
            Some(i) => i,
            None => {
                self.creation_rules
                    .insert(0, CreationRule::new(SECRETS_PATH_REGEX, recipients));
                changed = true;
                0
            }
        };
        if position(self, FLUX_SECRETS_PATH_REGEX).is_none() {
            let mut flux = CreationRule::new(FLUX_SECRETS_PATH_REGEX, recipients);
            flux.rule = Some(EncryptionRule::EncryptedRegex(
                FLUX_ENCRYPTED_REGEX.to_owned(),
            ));
            self.creation_rules.insert(secrets_at + 1, flux);
            changed = true;
        }
        changed
    }

    /// Sets the transit keys of homelab's rules (the secrets store and rendered Flux Secrets;
    /// `hc_vault_transit_uri`, as sops reads it, removed when there are none). Returns whether
    /// anything changed.
    pub fn set_homelab_vault_keys(&mut self, keys: &[VaultKey]) -> bool {
        let wanted = keys.iter().map(VaultKey::uri).collect::<Vec<_>>().join(",");
        let mut changed = false;
        for rule in &mut self.creation_rules {
            if !matches!(
                rule.path_regex.as_deref(),
                Some(SECRETS_PATH_REGEX | FLUX_SECRETS_PATH_REGEX)
            ) {
                continue;
            }
            let have = match rule.other.get(VAULT_URI_KEY) {
                Some(Value::Str(s)) => s.clone(),
                _ => String::new(),
            };
            if have == wanted {
                continue;
            }
            if wanted.is_empty() {
                rule.other.remove(VAULT_URI_KEY);
            } else {
                rule.other.insert(VAULT_URI_KEY, Value::Str(wanted.clone()));
            }
            changed = true;
        }
        changed
    }

    /// Sets the recipients of homelab's rules (after a rekey). Returns whether anything changed.
    pub fn set_homelab_recipients(&mut self, recipients: &[Recipient]) -> bool {
        let wanted: Vec<String> = recipients.iter().map(ToString::to_string).collect();
        let mut changed = false;
        for rule in &mut self.creation_rules {
            let ours = matches!(
                rule.path_regex.as_deref(),
                Some(SECRETS_PATH_REGEX | FLUX_SECRETS_PATH_REGEX)
            );
            if ours && rule.age != wanted {
                rule.age = wanted.clone();
                changed = true;
            }
        }
        changed
    }

    /// The first rule whose `path_regex` matches `relative_path` (relative to the config).
    pub fn rule_for(
        &self,
        relative_path: &str,
    ) -> std::result::Result<Option<&CreationRule>, String> {
        for rule in &self.creation_rules {
            match &rule.path_regex {
                None => return Ok(Some(rule)),
                Some(p) => {
                    let re = Regex::new(p).map_err(|e| format!("invalid path_regex `{p}`: {e}"))?;
                    if re.is_match(relative_path) {
                        return Ok(Some(rule));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Parses `.sops.yaml` text.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let docs = yaml::parse_documents(text).map_err(|e| e.to_string())?;
        let root = match docs.into_iter().next() {
            None | Some(Value::Null) => return Ok(Self::default()),
            Some(Value::Map(m)) => m,
            Some(other) => {
                return Err(format!("expected a mapping, found a {}", other.type_name()));
            }
        };
        let mut config = Self::default();
        for (key, value) in root {
            if key == "creation_rules" {
                let items = match value {
                    Value::Seq(items) => items,
                    Value::Null => Vec::new(),
                    other => {
                        return Err(format!(
                            "`creation_rules` must be a list, found a {}",
                            other.type_name()
                        ));
                    }
                };
                config.creation_rules = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| CreationRule::from_value(v, i))
                    .collect::<std::result::Result<_, _>>()?;
            } else {
                config.other.insert(key, value);
            }
        }
        Ok(config)
    }

    /// Reads `.sops.yaml`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| Error::SopsConfig {
            path: path.to_owned(),
            reason,
        })
    }

    /// The YAML text (2-space indentation, as hand-written `.sops.yaml` files usually are).
    pub fn to_yaml(&self) -> String {
        let mut root = Mapping::new();
        root.insert(
            "creation_rules",
            Value::Seq(
                self.creation_rules
                    .iter()
                    .map(CreationRule::to_value)
                    .collect(),
            ),
        );
        for (k, v) in self.other.iter() {
            root.insert(k, v.clone());
        }
        yaml::emit_document(&Value::Map(root), 2)
    }

    /// Writes the file atomically (mode 0644: it holds public keys only).
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_yaml().as_bytes(), 0o644).map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })
    }
}

/// Writes homelab's rules into `path` (creating it, or adding the rules to an existing file
/// without touching its other rules). Returns whether the file changed.
pub fn write_homelab_rules(path: &Path, recipients: &[Recipient]) -> Result<bool> {
    write_homelab_rules_with(path, recipients, None)
}

/// Like [`write_homelab_rules`]; with `vault`, the secrets-store rule also names these transit
/// keys, so files sops creates there are wrapped by them too.
pub fn write_homelab_rules_with(
    path: &Path,
    recipients: &[Recipient],
    vault: Option<&[VaultKey]>,
) -> Result<bool> {
    let mut config = if path.exists() {
        SopsConfig::load(path)?
    } else {
        SopsConfig::default()
    };
    let added = config.apply_homelab_rules(recipients);
    let keys_changed = vault.is_some_and(|keys| config.set_homelab_vault_keys(keys));
    let changed = added || keys_changed || !path.exists();
    if changed {
        config.write(path)?;
    }
    Ok(changed)
}

/// Finds the `.sops.yaml` that applies to `file`: in its directory or the nearest parent.
pub fn find_sops_config(file: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(file).ok()?;
    let mut dir = absolute.parent();
    while let Some(d) = dir {
        let candidate = d.join(SOPS_CONFIG_FILE);
        if candidate.is_file() {
            return Some(candidate);
        }
        dir = d.parent();
    }
    None
}

/// The encryption options `.sops.yaml` gives for `file`, as `sops -e` would choose them.
pub fn encrypt_options_for(file: &Path) -> Result<EncryptOptions> {
    let config_path = find_sops_config(file).ok_or_else(|| Error::SopsConfig {
        path: file.to_owned(),
        reason: format!(
            "no {SOPS_CONFIG_FILE} found in this directory or its parents; run `homelab secrets init` or pass recipients"
        ),
    })?;
    let config = SopsConfig::load(&config_path)?;
    let absolute = std::path::absolute(file).map_err(|source| Error::Read {
        path: file.to_owned(),
        source,
    })?;
    let base = config_path.parent().unwrap_or(Path::new("/"));
    let relative = absolute
        .strip_prefix(base)
        .unwrap_or(&absolute)
        .to_string_lossy()
        .into_owned();
    let rule = config
        .rule_for(&relative)
        .map_err(|reason| Error::SopsConfig {
            path: config_path.clone(),
            reason,
        })?
        .ok_or_else(|| Error::SopsConfig {
            path: config_path.clone(),
            reason: format!("no creation rule matches `{relative}`"),
        })?;
    if rule.age.is_empty() {
        return Err(Error::SopsConfig {
            path: config_path,
            reason: format!("the creation rule matching `{relative}` has no age recipients"),
        });
    }
    rule.encrypt_options()
}

/// The recipients `.sops.yaml` gives the secrets store.
pub fn secrets_recipients(config_path: &Path) -> Result<Vec<Recipient>> {
    let config = SopsConfig::load(config_path)?;
    let rule = config
        .rule_for(crate::store::SECRETS_FILE)
        .map_err(|reason| Error::SopsConfig {
            path: config_path.to_owned(),
            reason,
        })?
        .ok_or_else(|| Error::SopsConfig {
            path: config_path.to_owned(),
            reason: format!("no creation rule matches {}", crate::store::SECRETS_FILE),
        })?;
    Ok(rule.encrypt_options()?.recipients)
}
