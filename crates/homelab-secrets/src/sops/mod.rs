//! The SOPS YAML format with age recipients: decrypting (data key via age, every value and
//! comment, MAC check) and encrypting (fresh IVs, new `lastmodified` and MAC) whole documents. Pure: text
//! in, text out; it never writes a file and never returns plaintext except as a `SecretString`
//! or a tree the caller asked for.

mod cipher;
mod metadata;

use std::io::{Read, Write};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use secrecy::SecretString;
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

pub use metadata::{
    AgeEntry, DEFAULT_UNENCRYPTED_SUFFIX, EncryptionRule, Metadata, SOPS_FORMAT_VERSION, VaultEntry,
};

use crate::error::SopsError;
use crate::identity::{Identities, Recipient};
use crate::timefmt::{now_rfc3339, parse_rfc3339};
use crate::vault::{VaultError, VaultKey};
use crate::yaml::{self, Mapping, Value};
pub(crate) use cipher::DataKey;
use cipher::{CipherFailure, decrypt_scalar, encrypt_scalar, mac_bytes};
use metadata::CompiledRule;

/// The metadata key sops adds to every document.
pub const METADATA_KEY: &str = "sops";

/// sops hashes this first when `mac_only_encrypted` is set, so such MACs differ from full ones.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// The indentation sops's YAML store writes with.
const SOPS_INDENT: usize = 4;

/// Which key opened a file's data key, for `-v` and `doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyUsed {
    /// An age identity.
    Age {
        /// Its public key.
        recipient: String,
        /// Where it came from (`SOPS_AGE_KEY`, a file).
        source: String,
    },
    /// A Vault/OpenBao transit key.
    Vault {
        /// The key, in sops's URI form.
        uri: String,
        /// The credential (`token from VAULT_TOKEN`).
        credential: String,
    },
}

impl std::fmt::Display for KeyUsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyUsed::Age { recipient, source } => {
                write!(f, "the age identity {recipient} from {source}")
            }
            KeyUsed::Vault { uri, credential } => {
                write!(f, "the Vault transit key {uri} with the {credential}")
            }
        }
    }
}

/// How to encrypt a new file.
#[derive(Debug, Clone)]
pub struct EncryptOptions {
    /// age recipients (at least one of these or of `vault`).
    pub recipients: Vec<Recipient>,
    /// Vault/OpenBao transit keys that also wrap the data key (one key group: any of them
    /// and of the age recipients decrypts).
    pub vault: Vec<VaultKey>,
    /// Which values are encrypted.
    pub rule: EncryptionRule,
    /// Whether the MAC covers only encrypted values.
    pub mac_only_encrypted: bool,
}

impl EncryptOptions {
    /// Encrypt every value (sops's default rule) for these recipients.
    pub fn new(recipients: Vec<Recipient>) -> Self {
        Self {
            recipients,
            vault: Vec::new(),
            rule: EncryptionRule::default(),
            mac_only_encrypted: false,
        }
    }

    /// Also wrap the data key with these transit keys.
    pub fn with_vault(mut self, keys: Vec<VaultKey>) -> Self {
        self.vault = keys;
        self
    }

    /// Use `encrypted_regex`.
    pub fn with_encrypted_regex(mut self, regex: impl Into<String>) -> Self {
        self.rule = EncryptionRule::EncryptedRegex(regex.into());
        self
    }
}

/// A decrypted SOPS file: its plaintext documents (without the `sops` key), its metadata and
/// its data key. Zeroes the plaintext on drop; `Debug` shows structure only.
pub struct SopsDocument {
    documents: Vec<Value>,
    metadata: Metadata,
    data_key: DataKey,
    opened_with: Option<KeyUsed>,
}

impl std::fmt::Debug for SopsDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SopsDocument")
            .field("documents", &self.documents)
            .field("recipients", &self.recipients())
            .finish_non_exhaustive()
    }
}

impl Drop for SopsDocument {
    fn drop(&mut self) {
        self.documents.iter_mut().for_each(Zeroize::zeroize);
    }
}

impl SopsDocument {
    /// A new document set with a fresh data key encrypted to `options.recipients` (age
    /// only: a transit key in `options.vault` needs [`SopsDocument::new_with_keys`]).
    pub fn new(documents: Vec<Value>, options: &EncryptOptions) -> Result<Self, SopsError> {
        Self::new_with_keys(documents, options, &Identities::empty())
    }

    /// A new document set with a fresh data key encrypted to the age recipients and wrapped
    /// by the transit keys of `options`, with the Vault credentials of `identities`.
    pub fn new_with_keys(
        documents: Vec<Value>,
        options: &EncryptOptions,
        identities: &Identities,
    ) -> Result<Self, SopsError> {
        check_documents(&documents)?;
        if options.recipients.is_empty() && options.vault.is_empty() {
            return Err(SopsError::NoRecipients);
        }
        options.rule.compile()?;
        let data_key = DataKey::generate();
        let age = encrypt_data_key(&data_key, &options.recipients)?;
        let vault = wrap_data_key(&data_key, &options.vault, &[], identities)?;
        Ok(Self {
            opened_with: None,
            documents,
            metadata: Metadata {
                vault,
                age,
                lastmodified: String::new(),
                mac: String::new(),
                rule: options.rule.clone(),
                mac_only_encrypted: options.mac_only_encrypted,
                version: SOPS_FORMAT_VERSION.to_owned(),
                other: Vec::new(),
            },
            data_key,
        })
    }

    /// The plaintext documents.
    pub fn documents(&self) -> &[Value] {
        &self.documents
    }

    /// The plaintext documents, to change before [`SopsDocument::encrypt`].
    pub fn documents_mut(&mut self) -> &mut Vec<Value> {
        &mut self.documents
    }

    /// The metadata as read (or as last written).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Which key opened the data key (`None` for a new document).
    pub fn opened_with(&self) -> Option<&KeyUsed> {
        self.opened_with.as_ref()
    }

    /// The Vault transit keys of the data key, in sops's URI form.
    pub fn vault_keys(&self) -> Vec<String> {
        self.metadata.vault.iter().map(VaultEntry::uri).collect()
    }

    /// The age recipients of the data key.
    pub fn recipients(&self) -> Vec<String> {
        self.metadata
            .age
            .iter()
            .map(|e| e.recipient.clone())
            .collect()
    }

    /// The plaintext as YAML, as `sops -d` prints it.
    pub fn to_plain_yaml(&self) -> SecretString {
        SecretString::from(yaml::emit_documents(&self.documents, SOPS_INDENT))
    }

    /// Encrypts the documents with the same data key and recipients, fresh IVs, a new
    /// `lastmodified` and MAC (what `sops edit` does on save).
    pub fn encrypt(&mut self) -> Result<String, SopsError> {
        if self.documents.is_empty() {
            return Err(SopsError::EmptyInput);
        }
        check_documents(&self.documents)?;
        let rule = self.metadata.rule.compile()?;
        let mut walker = Walker::new(&rule, self.metadata.mac_only_encrypted, &self.data_key);
        let mut encrypted = Vec::with_capacity(self.documents.len());
        for doc in &self.documents {
            let mut path = Vec::new();
            encrypted.push(walker.encrypt(as_mapping_value(doc), &mut path)?);
        }
        let mac = walker.finish();
        let lastmodified = now_rfc3339();
        let mac_enc =
            encrypt_scalar(&Value::Str(mac), &self.data_key, &lastmodified).map_err(|reason| {
                SopsError::Unencryptable {
                    path: "sops:mac".to_owned(),
                    reason,
                }
            })?;
        self.metadata.lastmodified = lastmodified;
        self.metadata.mac = mac_enc;
        self.metadata.version = SOPS_FORMAT_VERSION.to_owned();
        Ok(emit_encrypted(encrypted, &self.metadata))
    }

    /// Zeroes and drops the plaintext documents (the data key and metadata stay).
    pub(crate) fn clear_documents(&mut self) {
        self.documents.iter_mut().for_each(Zeroize::zeroize);
        self.documents.clear();
    }

    /// Replaces the age recipients, encrypting the same data key to each. Values, MAC and
    /// `lastmodified` are not touched.
    pub(crate) fn set_recipients(&mut self, recipients: &[Recipient]) -> Result<(), SopsError> {
        if recipients.is_empty() && self.metadata.vault.is_empty() {
            return Err(SopsError::NoRecipients);
        }
        self.metadata.age = encrypt_data_key(&self.data_key, recipients)?;
        Ok(())
    }

    /// Replaces the transit keys: entries of keys that stay are kept as they are, new keys
    /// wrap the same data key (a Vault call each). Values, MAC and `lastmodified` are not
    /// touched.
    pub(crate) fn set_vault_keys(
        &mut self,
        keys: &[VaultKey],
        identities: &Identities,
    ) -> Result<(), SopsError> {
        if keys.is_empty() && self.metadata.age.is_empty() {
            return Err(SopsError::NoRecipients);
        }
        self.metadata.vault =
            wrap_data_key(&self.data_key, keys, &self.metadata.vault, identities)?;
        Ok(())
    }
}

/// Encrypts plaintext YAML documents (all of them, as `sops -e` does) to age recipients only.
pub fn encrypt_text(plain_yaml: &str, options: &EncryptOptions) -> Result<String, SopsError> {
    encrypt_text_with(plain_yaml, options, &Identities::empty())
}

/// Encrypts plaintext YAML documents to the age recipients and Vault transit keys of
/// `options`, with the Vault credentials of `identities`.
pub fn encrypt_text_with(
    plain_yaml: &str,
    options: &EncryptOptions,
    identities: &Identities,
) -> Result<String, SopsError> {
    let documents = yaml::parse_documents(plain_yaml).map_err(SopsError::Yaml)?;
    if documents
        .first()
        .and_then(Value::as_map)
        .is_some_and(|m| m.contains_key(METADATA_KEY))
    {
        return Err(SopsError::AlreadyEncrypted);
    }
    SopsDocument::new_with_keys(documents, options, identities)?.encrypt()
}

/// Decrypts SOPS-encrypted YAML: the data key with one of `identities`, every value, then
/// checks the MAC. Any failure is an error; no partial plaintext is returned.
pub fn decrypt_text(text: &str, identities: &Identities) -> Result<SopsDocument, SopsError> {
    let (documents, metadata) = split_metadata(text)?;
    let (data_key, opened_with) = decrypt_data_key(&metadata, identities)?;
    let rule = metadata.rule.compile()?;
    let mut walker = Walker::new(&rule, metadata.mac_only_encrypted, &data_key);
    let mut plain = Vec::with_capacity(documents.len());
    for doc in &documents {
        let mut path = Vec::new();
        plain.push(walker.decrypt(doc, &mut path)?);
    }
    let computed = walker.finish();
    verify_mac(&metadata, &data_key, &computed)?;
    Ok(SopsDocument {
        documents: plain,
        metadata,
        data_key,
        opened_with: Some(opened_with),
    })
}

/// What [`check_keys`] found for one key of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheckOutcome {
    /// The key opened the data key, and the whole file (every value and the MAC) verified
    /// with it; `with` says what opened it.
    Opens {
        /// The identity or credential (`the age identity ... from ...`).
        with: String,
    },
    /// Nothing here can try this key: an age recipient whose identity is someone else's, or a
    /// transit key without a credential for its server.
    NotChecked {
        /// Why.
        reason: String,
    },
    /// Trying it failed: the server refused or could not be reached, the stanza is damaged, or
    /// it opens a data key the file's values do not verify with.
    Fails {
        /// What failed.
        reason: String,
    },
}

/// One key of a file and whether it opens the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCheck {
    /// The age recipient or the transit key's URI.
    pub key: String,
    /// Whether it is a Vault/OpenBao transit key.
    pub vault: bool,
    /// What happened.
    pub outcome: KeyCheckOutcome,
}

/// Tries every key of an encrypted file on its own (each age recipient whose identity is
/// held, each transit key with a credential for its server) and checks that each opens a
/// data key the whole file verifies with. Errors only when the text is not a SOPS file.
pub fn check_keys(text: &str, identities: &Identities) -> Result<Vec<KeyCheck>, SopsError> {
    let (documents, metadata) = split_metadata(text)?;
    let verify = |key: &DataKey| -> Result<(), SopsError> {
        let rule = metadata.rule.compile()?;
        let mut walker = Walker::new(&rule, metadata.mac_only_encrypted, key);
        for doc in &documents {
            let mut path = Vec::new();
            walker.decrypt(doc, &mut path)?;
        }
        let computed = walker.finish();
        verify_mac(&metadata, key, &computed)
    };
    let judge = |key: DataKey, with: String| match verify(&key) {
        Ok(()) => KeyCheckOutcome::Opens { with },
        Err(e) => KeyCheckOutcome::Fails {
            reason: format!("it opens a data key the file does not verify with ({e})"),
        },
    };
    let mut out = Vec::new();
    for entry in &metadata.age {
        let outcome = match identities.source_of(&entry.recipient) {
            None => KeyCheckOutcome::NotChecked {
                reason: "its identity is not here (only its holder can check it)".to_owned(),
            },
            Some(source) => match try_age_decrypt(&entry.enc, identities) {
                Ok(key) => judge(
                    key,
                    format!("the age identity {} from {source}", entry.recipient),
                ),
                Err(e) => KeyCheckOutcome::Fails {
                    reason: format!("its stanza does not decrypt with your identity ({e})"),
                },
            },
        };
        out.push(KeyCheck {
            key: entry.recipient.clone(),
            vault: false,
            outcome,
        });
    }
    for entry in &metadata.vault {
        let outcome = match unwrap_with_vault(entry, identities) {
            Ok((key, used)) => judge(key, used.to_string()),
            Err(e @ VaultError::NoCredential { .. }) => KeyCheckOutcome::NotChecked {
                reason: e.to_string(),
            },
            Err(e) => KeyCheckOutcome::Fails {
                reason: e.to_string(),
            },
        };
        out.push(KeyCheck {
            key: entry.uri(),
            vault: true,
            outcome,
        });
    }
    Ok(out)
}

/// Changes the age recipients of an encrypted file: verifies it fully, then re-encrypts only
/// the data key. Every value, the MAC and `lastmodified` stay byte-for-byte as they were.
pub(crate) fn rekey_text(
    text: &str,
    identities: &Identities,
    recipients: &[Recipient],
    vault: &[VaultKey],
) -> Result<String, SopsError> {
    let mut verified = decrypt_text(text, identities)?;
    if recipients.is_empty() && vault.is_empty() {
        return Err(SopsError::NoRecipients);
    }
    verified.set_vault_keys(vault, identities)?;
    verified.set_recipients(recipients)?;
    let (encrypted_docs, _) = split_metadata(text)?;
    Ok(emit_encrypted(encrypted_docs, &verified.metadata))
}

/// Whether YAML text carries a `sops:` block (without decrypting anything).
pub fn is_encrypted(text: &str) -> bool {
    split_metadata(text).is_ok()
}

/// Reads the encrypted documents (without `sops` keys) and the metadata of the first one.
pub(crate) fn split_metadata(text: &str) -> Result<(Vec<Value>, Metadata), SopsError> {
    let mut documents = yaml::parse_documents(text).map_err(SopsError::Yaml)?;
    check_documents(&documents)?;
    let meta_value = match documents.first_mut().and_then(Value::as_map_mut) {
        Some(m) => m.remove(METADATA_KEY),
        None => None,
    };
    let meta_map = match meta_value {
        Some(Value::Map(m)) => m,
        Some(other) => {
            return Err(SopsError::InvalidMetadata {
                field: "sops",
                reason: format!("expected a mapping, found a {}", other.type_name()),
            });
        }
        None => return Err(SopsError::MissingMetadata),
    };
    let metadata = Metadata::from_mapping(&meta_map)?;
    for doc in documents.iter_mut().skip(1) {
        if let Some(m) = doc.as_map_mut() {
            m.remove(METADATA_KEY);
        }
    }
    let documents = documents
        .into_iter()
        .map(|d| match d {
            Value::Null => Value::Map(Mapping::new()),
            other => other,
        })
        .collect();
    Ok((documents, metadata))
}

fn check_documents(documents: &[Value]) -> Result<(), SopsError> {
    for (i, doc) in documents.iter().enumerate() {
        match doc {
            Value::Map(_) | Value::Null => {}
            other => {
                return Err(SopsError::NotAMapping {
                    index: i + 1,
                    found: other.type_name(),
                });
            }
        }
    }
    Ok(())
}

fn as_mapping_value(doc: &Value) -> &Value {
    static EMPTY: Value = Value::Null;
    match doc {
        Value::Null => &EMPTY,
        other => other,
    }
}

fn emit_encrypted(documents: Vec<Value>, metadata: &Metadata) -> String {
    let meta = Value::Map(metadata.to_mapping());
    let docs: Vec<Value> = documents
        .into_iter()
        .map(|doc| {
            let mut m = match doc {
                Value::Map(m) => m,
                _ => Mapping::new(),
            };
            m.insert(METADATA_KEY, meta.clone());
            Value::Map(m)
        })
        .collect();
    yaml::emit_documents(&docs, SOPS_INDENT)
}

fn path_text(path: &[String]) -> String {
    path.join(":")
}

/// sops's associated data for a value: the key path joined with `:`, plus a trailing `:`.
fn additional_data(path: &[String]) -> String {
    let mut aad = path.join(":");
    aad.push(':');
    aad
}

struct Walker<'a> {
    rule: &'a CompiledRule,
    mac_only_encrypted: bool,
    key: &'a DataKey,
    hasher: Sha512,
}

impl<'a> Walker<'a> {
    fn new(rule: &'a CompiledRule, mac_only_encrypted: bool, key: &'a DataKey) -> Self {
        let mut hasher = Sha512::new();
        if mac_only_encrypted {
            hasher.update(MAC_ONLY_ENCRYPTED_INIT);
        }
        Self {
            rule,
            mac_only_encrypted,
            key,
            hasher,
        }
    }

    fn hash(&mut self, encrypted: bool, plain: &Value) {
        if !self.mac_only_encrypted || encrypted {
            self.hasher.update(&mac_bytes(plain)[..]);
        }
    }

    fn finish(self) -> String {
        let digest = self.hasher.finalize();
        digest.iter().map(|b| format!("{b:02X}")).collect()
    }

    fn encrypt(&mut self, v: &Value, path: &mut Vec<String>) -> Result<Value, SopsError> {
        match v {
            Value::Map(m) => {
                let mut out = Mapping::new();
                for (k, child) in m.iter() {
                    path.push(k.to_owned());
                    let enc = self.encrypt(child, path)?;
                    path.pop();
                    out.insert(k, enc);
                }
                let comments = m
                    .comments()
                    .iter()
                    .map(|(at, text)| Ok((*at, self.encrypt_comment(text, path)?)))
                    .collect::<Result<_, SopsError>>()?;
                out.set_comments(comments);
                Ok(Value::Map(out))
            }
            // In a list sops keeps an encrypted comment as an item (`- ENC[...,type:comment]`).
            Value::Comment(text) if self.rule.should_encrypt(path) && !text.is_empty() => {
                Ok(Value::Str(self.encrypt_comment(text, path)?))
            }
            Value::Comment(text) => Ok(Value::Comment(text.clone())),
            Value::Seq(items) => Ok(Value::Seq(
                items
                    .iter()
                    .map(|item| self.encrypt(item, path))
                    .collect::<Result<_, _>>()?,
            )),
            Value::Null => Ok(Value::Null),
            leaf => {
                let encrypted = self.rule.should_encrypt(path);
                self.hash(encrypted, leaf);
                if !encrypted {
                    return Ok(leaf.clone());
                }
                encrypt_scalar(leaf, self.key, &additional_data(path))
                    .map(Value::Str)
                    .map_err(|reason| SopsError::Unencryptable {
                        path: path_text(path),
                        reason,
                    })
            }
        }
    }

    /// A comment's text as the file stores it: encrypted with the key path of the collection
    /// it is in, outside the MAC, as sops does; left as it is where the rule says plaintext.
    fn encrypt_comment(&self, text: &str, path: &[String]) -> Result<String, SopsError> {
        if text.is_empty() || !self.rule.should_encrypt(path) {
            return Ok(text.to_owned());
        }
        encrypt_scalar(
            &Value::Comment(text.to_owned()),
            self.key,
            &additional_data(path),
        )
        .map_err(|reason| SopsError::Unencryptable {
            path: path_text(path),
            reason,
        })
    }

    /// A stored comment's plaintext. Like sops, a comment that does not decrypt is taken as
    /// a plaintext comment (older sops releases wrote them so); comments are not in the MAC.
    fn decrypt_comment(&self, text: &str, path: &[String]) -> String {
        if !text.starts_with("ENC[AES256_GCM,") || !self.rule.should_encrypt(path) {
            return text.to_owned();
        }
        match decrypt_scalar(text, self.key, &additional_data(path)) {
            Ok(Value::Comment(plain)) => plain,
            _ => text.to_owned(),
        }
    }

    fn decrypt(&mut self, v: &Value, path: &mut Vec<String>) -> Result<Value, SopsError> {
        match v {
            Value::Map(m) => {
                let mut out = Mapping::new();
                for (k, child) in m.iter() {
                    path.push(k.to_owned());
                    let plain = self.decrypt(child, path)?;
                    path.pop();
                    out.insert(k, plain);
                }
                let comments = m
                    .comments()
                    .iter()
                    .map(|(at, text)| (*at, self.decrypt_comment(text, path)))
                    .collect();
                out.set_comments(comments);
                Ok(Value::Map(out))
            }
            Value::Comment(text) => Ok(Value::Comment(self.decrypt_comment(text, path))),
            Value::Seq(items) => Ok(Value::Seq(
                items
                    .iter()
                    .map(|item| self.decrypt(item, path))
                    .collect::<Result<_, _>>()?,
            )),
            Value::Null => Ok(Value::Null),
            leaf => {
                let encrypted = self.rule.should_encrypt(path);
                let plain = if encrypted {
                    match leaf {
                        Value::Str(s) if s.is_empty() => Value::Str(String::new()),
                        Value::Str(s) => decrypt_scalar(s, self.key, &additional_data(path))
                            .map_err(|failure| match failure {
                                CipherFailure::Authentication => SopsError::ValueAuthentication {
                                    path: path_text(path),
                                },
                                CipherFailure::Malformed(reason) => SopsError::MalformedValue {
                                    path: path_text(path),
                                    reason,
                                },
                            })?,
                        other => {
                            return Err(SopsError::NotEncrypted {
                                path: path_text(path),
                                found: other.type_name(),
                            });
                        }
                    }
                } else {
                    leaf.clone()
                };
                if !matches!(plain, Value::Comment(_)) {
                    self.hash(encrypted, &plain);
                }
                Ok(plain)
            }
        }
    }
}

fn verify_mac(metadata: &Metadata, key: &DataKey, computed: &str) -> Result<(), SopsError> {
    let lastmodified =
        parse_rfc3339(&metadata.lastmodified).ok_or_else(|| SopsError::InvalidMetadata {
            field: "lastmodified",
            reason: format!("`{}` is not an RFC 3339 timestamp", metadata.lastmodified),
        })?;
    let stored = match decrypt_scalar(&metadata.mac, key, &lastmodified.to_rfc3339()) {
        Ok(Value::Str(s)) => s,
        Ok(_) => {
            return Err(SopsError::InvalidMetadata {
                field: "mac",
                reason: "the MAC is not a string".to_owned(),
            });
        }
        Err(CipherFailure::Authentication) => return Err(SopsError::MacAuthentication),
        Err(CipherFailure::Malformed(reason)) => {
            return Err(SopsError::InvalidMetadata {
                field: "mac",
                reason,
            });
        }
    };
    if stored != computed {
        return Err(SopsError::MacMismatch);
    }
    Ok(())
}

fn encrypt_data_key(key: &DataKey, recipients: &[Recipient]) -> Result<Vec<AgeEntry>, SopsError> {
    recipients
        .iter()
        .map(|r| {
            let fail = |e: &dyn std::fmt::Display| SopsError::AgeEncrypt(e.to_string());
            let encryptor =
                age::Encryptor::with_recipients(std::iter::once(r.as_age() as &dyn age::Recipient))
                    .map_err(|e| fail(&e))?;
            let mut out = Vec::new();
            let armored =
                ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(|e| fail(&e))?;
            let mut writer = encryptor.wrap_output(armored).map_err(|e| fail(&e))?;
            writer.write_all(key.bytes()).map_err(|e| fail(&e))?;
            writer
                .finish()
                .and_then(|armored| armored.finish())
                .map_err(|e| fail(&e))?;
            let mut enc = String::from_utf8(out).map_err(|e| fail(&e))?;
            if !enc.ends_with('\n') {
                enc.push('\n');
            }
            Ok(AgeEntry {
                recipient: r.to_string(),
                enc,
            })
        })
        .collect()
}

fn decrypt_data_key(
    metadata: &Metadata,
    identities: &Identities,
) -> Result<(DataKey, KeyUsed), SopsError> {
    if metadata.age.is_empty() && metadata.vault.is_empty() {
        return Err(SopsError::NoAgeRecipients);
    }
    let age_failure = match decrypt_data_key_age(metadata, identities) {
        Ok(found) => return Ok(found),
        Err(e) => e,
    };
    if metadata.vault.is_empty() {
        return Err(age_failure);
    }
    let mut failures = Vec::new();
    for entry in &metadata.vault {
        match unwrap_with_vault(entry, identities) {
            Ok(found) => return Ok(found),
            Err(e) => failures.push((entry.uri(), e)),
        }
    }
    Err(SopsError::NoKeyOpened {
        age: match age_failure {
            SopsError::NoAgeRecipients => "the file has no age recipients".to_owned(),
            other => other.to_string(),
        },
        vault: failures,
    })
}

fn unwrap_with_vault(
    entry: &VaultEntry,
    identities: &Identities,
) -> Result<(DataKey, KeyUsed), VaultError> {
    let key = VaultKey::new(&entry.vault_address, &entry.engine_path, &entry.key_name)?;
    let credential = identities
        .vault_credential_for(&key.address)
        .ok_or_else(|| VaultError::NoCredential {
            address: key.address.clone(),
            configured: identities
                .vault_credentials()
                .iter()
                .map(|c| c.address().to_owned())
                .collect(),
        })?;
    let plain = credential.decrypt(&key, &entry.enc)?;
    let data_key = DataKey::from_slice(&plain).ok_or_else(|| VaultError::BadResponse {
        address: key.address.clone(),
        path: format!("{}/decrypt/{}", key.engine_path, key.key_name),
        reason: format!("the data key is {} bytes, expected 32", plain.len()),
    })?;
    Ok((
        data_key,
        KeyUsed::Vault {
            uri: key.uri(),
            credential: credential.describe(),
        },
    ))
}

/// The `hc_vault` entries for `keys`: an entry in `existing` for the same key is kept as it
/// is; any other key wraps the data key through Vault.
fn wrap_data_key(
    key: &DataKey,
    keys: &[VaultKey],
    existing: &[VaultEntry],
    identities: &Identities,
) -> Result<Vec<VaultEntry>, SopsError> {
    keys.iter()
        .map(|k| {
            if let Some(entry) = existing.iter().find(|e| e.uri() == k.uri()) {
                return Ok(entry.clone());
            }
            let fail = |source: VaultError| SopsError::Vault {
                uri: k.uri(),
                source: Box::new(source),
            };
            let credential = identities.vault_credential_for(&k.address).ok_or_else(|| {
                fail(VaultError::NoCredential {
                    address: k.address.clone(),
                    configured: identities
                        .vault_credentials()
                        .iter()
                        .map(|c| c.address().to_owned())
                        .collect(),
                })
            })?;
            let enc = credential.encrypt(k, key.bytes()).map_err(fail)?;
            Ok(VaultEntry {
                vault_address: k.address.clone(),
                engine_path: k.engine_path.clone(),
                key_name: k.key_name.clone(),
                created_at: now_rfc3339(),
                enc,
            })
        })
        .collect()
}

fn decrypt_data_key_age(
    metadata: &Metadata,
    identities: &Identities,
) -> Result<(DataKey, KeyUsed), SopsError> {
    if metadata.age.is_empty() {
        return Err(SopsError::NoAgeRecipients);
    }
    // Entries addressed to one of our keys first; a damaged one of those is worth reporting.
    let mut entries: Vec<&AgeEntry> = metadata.age.iter().collect();
    entries.sort_by_key(|e| identities.source_of(&e.recipient).is_none());
    let mut damaged = None;
    for entry in entries {
        let ours = identities.source_of(&entry.recipient).is_some();
        match try_age_decrypt(&entry.enc, identities) {
            Ok(key) => {
                let used = KeyUsed::Age {
                    recipient: entry.recipient.clone(),
                    source: identities
                        .source_of(&entry.recipient)
                        .map(ToString::to_string)
                        .unwrap_or_else(|| "an identity".to_owned()),
                };
                return Ok((key, used));
            }
            Err(age::DecryptError::NoMatchingKeys) if !ours => {}
            Err(e) => {
                if damaged.is_none() {
                    damaged = Some(SopsError::DataKey {
                        recipient: entry.recipient.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
    Err(damaged.unwrap_or_else(|| SopsError::NoMatchingIdentity {
        recipients: metadata.age.iter().map(|e| e.recipient.clone()).collect(),
        identities: identities.describe(),
    }))
}

fn try_age_decrypt(enc: &str, identities: &Identities) -> Result<DataKey, age::DecryptError> {
    let decryptor = age::Decryptor::new(ArmoredReader::new(enc.trim_start().as_bytes()))?;
    let mut reader = decryptor.decrypt(identities.age_identities())?;
    let mut plain = Zeroizing::new(Vec::new());
    reader.read_to_end(&mut plain)?;
    DataKey::from_slice(&plain).ok_or(age::DecryptError::DecryptionFailed)
}
