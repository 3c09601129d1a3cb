//! Error types of the crate: every variant names the operation, the file or secret it concerns
//! and what to do next; none ever carries a secret value.

use std::io;
use std::path::PathBuf;

use crate::vault::VaultError;
use crate::yaml::YamlError;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a SOPS document could not be decrypted or encrypted. Carries key paths and recipients,
/// never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SopsError {
    /// The text is not YAML.
    #[error("not valid YAML ({0})")]
    Yaml(YamlError),
    /// A document is not a mapping (sops only encrypts mappings).
    #[error("document {index} is a {found}, but SOPS files hold mappings")]
    NotAMapping {
        /// 1-based document number.
        index: usize,
        /// What was found instead.
        found: &'static str,
    },
    /// There is no YAML document to encrypt.
    #[error("there is nothing to encrypt: the input has no YAML document")]
    EmptyInput,
    /// No `sops:` block.
    #[error(
        "no `sops:` metadata block: the file is not SOPS-encrypted (encrypt it with `homelab secrets encrypt`)"
    )]
    MissingMetadata,
    /// A `sops:` field is missing or malformed.
    #[error("invalid `sops.{field}` metadata: {reason}")]
    InvalidMetadata {
        /// The metadata field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A feature of the format this implementation does not handle.
    #[error("unsupported SOPS feature: {0}")]
    Unsupported(String),
    /// The file has no age recipients or Vault keys to decrypt the data key with.
    #[error(
        "the file has no age recipients or Vault transit keys (only other key types such as PGP or KMS), which homelab cannot use"
    )]
    NoAgeRecipients,
    /// Neither an age identity nor a Vault transit key opened the data key.
    #[error(
        "no key opened the data key: age: {age}; {}",
        vault.iter().map(|(uri, e)| format!("Vault {uri}: {e}")).collect::<Vec<_>>().join("; ")
    )]
    NoKeyOpened {
        /// Why age did not (the recipients and our identities).
        age: String,
        /// Each Vault key and why it did not.
        vault: Vec<(String, VaultError)>,
    },
    /// A Vault call failed while writing the file's keys.
    #[error("Vault transit key {uri}: {source}")]
    Vault {
        /// The transit key.
        uri: String,
        /// What failed.
        source: Box<VaultError>,
    },
    /// None of the identities is a recipient.
    #[error(
        "wrong key: none of the age identities ({identities}) can decrypt the data key; the file's recipients are {}",
        recipients.join(", ")
    )]
    NoMatchingIdentity {
        /// The file's recipients.
        recipients: Vec<String>,
        /// Our identities' public keys and where they came from.
        identities: String,
    },
    /// The age-encrypted data key for a recipient is damaged.
    #[error("the encrypted data key for recipient {recipient} is damaged: {reason}")]
    DataKey {
        /// The recipient whose `enc` failed.
        recipient: String,
        /// What failed.
        reason: String,
    },
    /// A value is not in the `ENC[AES256_GCM,...]` form.
    #[error("the value at `{path}` is not a valid ENC[AES256_GCM,...] value: {reason}")]
    MalformedValue {
        /// The sops key path (`a:b:`).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// AES-GCM authentication failed for a value.
    #[error(
        "the value at `{path}` failed authentication: it was modified, moved to another key, or encrypted with another data key"
    )]
    ValueAuthentication {
        /// The sops key path.
        path: String,
    },
    /// A value that the encryption rules say is encrypted is in plaintext.
    #[error("the value at `{path}` should be encrypted but is a plain {found}")]
    NotEncrypted {
        /// The sops key path.
        path: String,
        /// The plain type found.
        found: &'static str,
    },
    /// The MAC could not be decrypted.
    #[error(
        "the MAC could not be authenticated: the `sops.mac` or `sops.lastmodified` field was modified"
    )]
    MacAuthentication,
    /// The MAC does not match the values.
    #[error(
        "MAC mismatch: the file's values do not match its MAC (a value was changed, added, removed or reordered outside sops/homelab)"
    )]
    MacMismatch,
    /// The file already has a `sops:` block.
    #[error("the file is already SOPS-encrypted (it has a `sops:` block)")]
    AlreadyEncrypted,
    /// Encrypting requires at least one recipient.
    #[error("no age recipients to encrypt to")]
    NoRecipients,
    /// An encryption rule regex does not compile.
    #[error("invalid regular expression in `{field}`: {reason}")]
    Regex {
        /// The metadata field.
        field: &'static str,
        /// The regex error.
        reason: String,
    },
    /// age failed while encrypting the data key.
    #[error("age encryption of the data key failed: {0}")]
    AgeEncrypt(String),
    /// A value cannot be represented (for example a key that is not valid UTF-8).
    #[error("the value at `{path}` cannot be encrypted: {reason}")]
    Unencryptable {
        /// The sops key path.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Errors of the secrets library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a file failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Writing a file failed (nothing was replaced).
    #[error("cannot write {} (the previous content, if any, is unchanged): {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Decrypting a SOPS file failed.
    #[error("cannot decrypt {}: {reason}", path.display())]
    Decrypt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: SopsError,
    },
    /// Encrypting a SOPS file failed.
    #[error("cannot encrypt {}: {reason}", path.display())]
    Encrypt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: SopsError,
    },
    /// No identity could be found.
    #[error(
        "no age identity: {} does not exist and SOPS_AGE_KEY is not set; run `homelab secrets init` to create one, or set SOPS_AGE_KEY_FILE to your age key file",
        path.display()
    )]
    NoIdentity {
        /// The default identity file that was looked for.
        path: PathBuf,
    },
    /// SOPS_AGE_KEY_FILE names a file that does not exist.
    #[error("SOPS_AGE_KEY_FILE points to {}, which does not exist", path.display())]
    IdentityFileMissing {
        /// The configured path.
        path: PathBuf,
    },
    /// The identity file is readable or writable by others.
    #[error(
        "refusing to use the age identity file {}: its permissions are {mode:04o}, so other users can read or change it; run `chmod 600 {}`",
        path.display(), path.display()
    )]
    IdentityPermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The identity file's content is not a list of age identities.
    #[error("{source_name} is not a valid age identity list: line {line}: {reason}")]
    IdentityParse {
        /// `SOPS_AGE_KEY` or the file path.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The identity file exists already.
    #[error("{} already exists; refusing to overwrite an age identity", path.display())]
    IdentityExists {
        /// The file.
        path: PathBuf,
    },
    /// Neither HOME nor SOPS_AGE_KEY_FILE is set.
    #[error("cannot find the home directory (HOME is not set); set SOPS_AGE_KEY_FILE")]
    NoHome,
    /// A recipient string is not an age X25519 public key.
    #[error("`{value}` is not an age recipient (expected `age1...`): {reason}")]
    InvalidRecipient {
        /// The text given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// `.sops.yaml` is malformed.
    #[error("{}: {reason}", path.display())]
    SopsConfig {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The secrets file does not have the store's shape.
    #[error("{}: {reason}", path.display())]
    StoreShape {
        /// The secrets file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The secrets file does not exist.
    #[error("{} does not exist; run `homelab secrets init` to create it", path.display())]
    StoreMissing {
        /// The secrets file.
        path: PathBuf,
    },
    /// A secret name is not in the store.
    #[error(
        "unknown secret `{name}`; the secrets that exist are: {}; add one with `homelab secrets set {name}`",
        if known.is_empty() { "(none)".to_owned() } else { known.join(", ") }
    )]
    UnknownSecret {
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: Vec<String>,
    },
    /// A secret exists but has no value yet.
    #[error("secret `{name}` is not set yet; set it with `homelab secrets set {name}`")]
    SecretUnset {
        /// The secret.
        name: String,
    },
    /// `set` with an empty value.
    #[error("refusing to set secret `{name}` to an empty value")]
    EmptyValue {
        /// The secret.
        name: String,
    },
    /// A secret name that cannot be stored safely.
    #[error("invalid secret name `{name}`: {reason}")]
    InvalidSecretName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A requirement list is inconsistent.
    #[error("secret requirement `{name}`: {reason}")]
    Requirement {
        /// The requirement.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A CA key or certificate could not be made or read.
    #[error("certificate `{name}`: {reason}")]
    Certificate {
        /// The secret holding it.
        name: String,
        /// What failed (never the key).
        reason: String,
    },
    /// `rotate` cannot regenerate this secret.
    #[error("cannot rotate `{name}`: {reason}")]
    Rotate {
        /// The secret.
        name: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// `rekey` was refused.
    #[error("cannot rekey {}: {reason}", path.display())]
    Rekey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The editor failed.
    #[error("editor `{command}` failed: {reason}; {} is unchanged", path.display())]
    Editor {
        /// The editor command.
        command: String,
        /// What happened.
        reason: String,
        /// The file being edited.
        path: PathBuf,
    },
    /// The edited text is not valid.
    #[error("the edited file is not valid: {reason}; {} is unchanged", path.display())]
    EditInvalid {
        /// The file being edited.
        path: PathBuf,
        /// Where and what.
        reason: String,
    },
    /// The Vault/OpenBao configuration of the environment is unusable.
    #[error("{0}")]
    Vault(VaultError),
    /// A git command failed during a scan.
    #[error("git failed in {}: {reason}", path.display())]
    Git {
        /// The repository.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}
