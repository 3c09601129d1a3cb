//! Vault and OpenBao transit as a key source of SOPS files: the transit key that wraps a file's
//! data key (`hc_vault` metadata, as sops writes it), the credentials the environment gives
//! (a token, or an AppRole login), and the few HTTP calls this takes (hyper and rustls, as kube
//! already builds them). It never logs, prints or returns a token, a secret id or a data key,
//! and it sends a credential only to the address it was given for.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// `VAULT_ADDR`: the Vault server a token or AppRole login is for.
pub const ENV_VAULT_ADDR: &str = "VAULT_ADDR";
/// `VAULT_TOKEN`.
pub const ENV_VAULT_TOKEN: &str = "VAULT_TOKEN";
/// `BAO_ADDR`: OpenBao's name for `VAULT_ADDR`.
pub const ENV_BAO_ADDR: &str = "BAO_ADDR";
/// `BAO_TOKEN`.
pub const ENV_BAO_TOKEN: &str = "BAO_TOKEN";

/// How long one request to Vault may take before it counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Responses larger than this are not Vault's answers to these calls.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Why a Vault call failed. Messages name the server, the path and where the credential came
/// from, never the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// A transit key or address is not well formed.
    #[error("invalid Vault transit key `{value}`: {reason}")]
    InvalidKey {
        /// What was given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// No credential is configured for the file's Vault address.
    #[error(
        "no Vault credential for {address}: set VAULT_ADDR={address} with VAULT_TOKEN (or BAO_ADDR/BAO_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID for an AppRole login){}",
        if configured.is_empty() { String::new() } else {
            format!("; credentials are configured for {} only, and homelab sends a credential only to the address it was given for", configured.join(", "))
        }
    )]
    NoCredential {
        /// The address the file names.
        address: String,
        /// Addresses credentials are configured for.
        configured: Vec<String>,
    },
    /// The server could not be reached.
    #[error("cannot reach Vault at {address}: {reason}")]
    Unreachable {
        /// The server.
        address: String,
        /// What failed.
        reason: String,
    },
    /// Vault refused the credential (HTTP 403).
    #[error(
        "Vault at {address} refused `{path}` with the {credential} (403 {}): the token is revoked or expired, or its policy does not allow this path; log in again (`bao login` or `vault login`) or issue a new AppRole secret id",
        messages.join("; ")
    )]
    Denied {
        /// The server.
        address: String,
        /// The API path.
        path: String,
        /// Where the credential came from.
        credential: String,
        /// Vault's error messages.
        messages: Vec<String>,
    },
    /// Vault is sealed (HTTP 503).
    #[error("Vault at {address} is sealed: unseal it (`bao operator unseal`) and try again")]
    Sealed {
        /// The server.
        address: String,
    },
    /// Any other error answer.
    #[error("Vault at {address} answered `{path}` with HTTP {status}: {}", messages.join("; "))]
    Api {
        /// The server.
        address: String,
        /// The API path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// Vault's error messages.
        messages: Vec<String>,
    },
    /// The answer was not what this call returns.
    #[error("Vault at {address} gave an unexpected answer to `{path}`: {reason}")]
    BadResponse {
        /// The server.
        address: String,
        /// The API path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A transit key that wraps data keys: the `hc_vault` entry's identity as sops writes it
/// (`vault_address`, `engine_path`, `key_name`); its text form is sops's
/// `https://vault:8200/v1/transit/keys/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultKey {
    /// `scheme://host[:port]`, without a trailing slash.
    pub address: String,
    /// The transit engine's mount path (`transit`, `sops/transit`).
    pub engine_path: String,
    /// The transit key's name.
    pub key_name: String,
}

impl VaultKey {
    /// A key from its three parts, checked.
    pub fn new(address: &str, engine_path: &str, key_name: &str) -> Result<Self, VaultError> {
        let shown = format!("{address}/v1/{engine_path}/keys/{key_name}");
        let invalid = |reason: &str| VaultError::InvalidKey {
            value: shown.clone(),
            reason: reason.to_owned(),
        };
        let address = normalize_address(address).map_err(|r| invalid(&r))?;
        let engine_path = engine_path.trim_matches('/');
        let safe = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
                && !s
                    .split('/')
                    .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        };
        if !safe(engine_path) {
            return Err(invalid(
                "the engine path is letters, digits, `-`, `_`, `.` and `/`-separated segments",
            ));
        }
        if !safe(key_name) || key_name.contains('/') {
            return Err(invalid("the key name is letters, digits, `-`, `_` and `.`"));
        }
        Ok(Self {
            address,
            engine_path: engine_path.to_owned(),
            key_name: key_name.to_owned(),
        })
    }

    /// sops's text form: `ADDRESS/v1/ENGINE/keys/NAME`.
    pub fn uri(&self) -> String {
        format!(
            "{}/v1/{}/keys/{}",
            self.address, self.engine_path, self.key_name
        )
    }
}

impl fmt::Display for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

impl FromStr for VaultKey {
    type Err = VaultError;

    /// Reads sops's `https://vault.example.com:8200/v1/transit/keys/NAME`.
    fn from_str(s: &str) -> Result<Self, VaultError> {
        let s = s.trim();
        let invalid = |reason: &str| VaultError::InvalidKey {
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        let scheme_end = s
            .find("://")
            .ok_or_else(|| invalid("expected ADDRESS/v1/ENGINE/keys/NAME, for example https://vault.example.com:8200/v1/transit/keys/homelab"))?;
        let path_start = s[scheme_end + 3..]
            .find('/')
            .map(|i| i + scheme_end + 3)
            .ok_or_else(|| invalid("the address has no /v1/ENGINE/keys/NAME path"))?;
        let (address, path) = s.split_at(path_start);
        let rest = path.strip_prefix("/v1/").ok_or_else(|| {
            invalid(
                "the path must start with /v1/ (a prefixed Vault URL is not supported, as in sops)",
            )
        })?;
        let (engine, name) = rest
            .rsplit_once("/keys/")
            .ok_or_else(|| invalid("the path must be /v1/ENGINE/keys/NAME"))?;
        Self::new(address, engine, name)
    }
}

/// Checks and normalises `http(s)://host[:port]` (no path, query or credentials).
fn normalize_address(address: &str) -> Result<String, String> {
    let address = address.trim().trim_end_matches('/');
    let rest = address
        .strip_prefix("https://")
        .or_else(|| address.strip_prefix("http://"))
        .ok_or_else(|| format!("the address `{address}` must start with https:// or http://"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!(
            "the address `{address}` must be scheme://host[:port], without a path or user"
        ));
    }
    Ok(address.to_owned())
}

/// How a credential authenticates.
enum Auth {
    Token(SecretString),
    AppRole {
        mount: String,
        role_id: String,
        secret_id: SecretString,
    },
}

/// A credential for one Vault server: a token, or an AppRole whose login happens on first use
/// (the token it gives is kept for the process). `Debug` shows the address and the source only.
pub struct VaultCredential {
    address: String,
    source: String,
    auth: Auth,
    ca_pem: Option<Vec<u8>>,
    login: Mutex<Option<SecretString>>,
}

impl fmt::Debug for VaultCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VaultCredential({} for {})", self.source, self.address)
    }
}

impl VaultCredential {
    /// A token for `address`; `source` says where it came from (`VAULT_TOKEN`).
    pub fn token(address: &str, token: SecretString, source: &str) -> Result<Self, VaultError> {
        Ok(Self {
            address: address_for(address)?,
            source: source.to_owned(),
            auth: Auth::Token(token),
            ca_pem: None,
            login: Mutex::new(None),
        })
    }

    /// An AppRole login at `auth/MOUNT/login` on `address`.
    pub fn approle(
        address: &str,
        mount: &str,
        role_id: &str,
        secret_id: SecretString,
        source: &str,
    ) -> Result<Self, VaultError> {
        Ok(Self {
            address: address_for(address)?,
            source: source.to_owned(),
            auth: Auth::AppRole {
                mount: mount.trim_matches('/').to_owned(),
                role_id: role_id.to_owned(),
                secret_id,
            },
            ca_pem: None,
            login: Mutex::new(None),
        })
    }

    /// Trust only this CA (PEM) for the server's certificate instead of the system's.
    pub fn with_ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca_pem = Some(pem);
        self
    }

    /// The server this credential is for.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// What the credential is and where it came from, for messages (`token from VAULT_TOKEN`).
    pub fn describe(&self) -> String {
        match self.auth {
            Auth::Token(_) => format!("token from {}", self.source),
            Auth::AppRole { .. } => format!("AppRole login from {}", self.source),
        }
    }

    /// Wraps `data_key` with the transit key: sops's `ENGINE/encrypt/NAME`.
    pub fn encrypt(&self, key: &VaultKey, data_key: &[u8]) -> Result<String, VaultError> {
        let path = format!("{}/encrypt/{}", key.engine_path, key.key_name);
        let body =
            Zeroizing::new(serde_json::json!({ "plaintext": B64.encode(data_key) }).to_string());
        let answer = self.call(&path, Some(body))?;
        answer
            .pointer("/data/ciphertext")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| self.bad(&path, "no data.ciphertext"))
    }

    /// Unwraps a data key: sops's `ENGINE/decrypt/NAME`.
    pub fn decrypt(&self, key: &VaultKey, enc: &str) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let path = format!("{}/decrypt/{}", key.engine_path, key.key_name);
        let body = Zeroizing::new(serde_json::json!({ "ciphertext": enc }).to_string());
        let answer = self.call(&path, Some(body))?;
        let plain = answer
            .pointer("/data/plaintext")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| self.bad(&path, "no data.plaintext"))?;
        B64.decode(plain)
            .map(Zeroizing::new)
            .map_err(|_| self.bad(&path, "data.plaintext is not base64"))
    }

    /// `sys/health`: whether the server is initialised, unsealed and active.
    pub fn health(&self) -> Result<(), VaultError> {
        let path = "sys/health";
        match request(&self.address, self.ca_pem.as_deref(), path, None, None) {
            Ok((200, _)) => Ok(()),
            Ok((503, _)) => Err(VaultError::Sealed {
                address: self.address.clone(),
            }),
            Ok((status, body)) => Err(self.api_error(path, status, &body)),
            Err(reason) => Err(self.unreachable(reason)),
        }
    }

    /// `GET path` with this credential: the answer, or `None` when the server has nothing
    /// there (HTTP 404). For configuration reads (policies, mounts, keys), never a secret.
    pub fn read(&self, path: &str) -> Result<Option<serde_json::Value>, VaultError> {
        match self.call(path, None) {
            Ok(v) => Ok(Some(v)),
            Err(VaultError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST path` with a JSON body and this credential; a write that answers with no body
    /// (HTTP 204) is a success too.
    pub fn write(&self, path: &str, body: &serde_json::Value) -> Result<(), VaultError> {
        self.call(path, Some(Zeroizing::new(body.to_string())))
            .map(|_| ())
    }

    fn token_for_call(&self) -> Result<SecretString, VaultError> {
        match &self.auth {
            Auth::Token(t) => Ok(t.clone()),
            Auth::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                let mut cached = self.login.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(t) = cached.as_ref() {
                    return Ok(t.clone());
                }
                let path = format!("auth/{mount}/login");
                let body = Zeroizing::new(
                    serde_json::json!({ "role_id": role_id, "secret_id": secret_id.expose_secret() })
                        .to_string(),
                );
                let answer = self.send(&path, None, Some(body))?;
                let token = answer
                    .pointer("/auth/client_token")
                    .and_then(serde_json::Value::as_str)
                    .map(|t| SecretString::from(t.to_owned()))
                    .ok_or_else(|| self.bad(&path, "no auth.client_token"))?;
                *cached = Some(token.clone());
                Ok(token)
            }
        }
    }

    fn call(
        &self,
        path: &str,
        body: Option<Zeroizing<String>>,
    ) -> Result<serde_json::Value, VaultError> {
        let token = self.token_for_call()?;
        self.send(path, Some(&token), body)
    }

    fn send(
        &self,
        path: &str,
        token: Option<&SecretString>,
        body: Option<Zeroizing<String>>,
    ) -> Result<serde_json::Value, VaultError> {
        let (status, answer) = request(&self.address, self.ca_pem.as_deref(), path, token, body)
            .map_err(|reason| self.unreachable(reason))?;
        match status {
            // Writes answer 204 without a body.
            200..=299 if answer.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::Value::Null),
            200..=299 => serde_json::from_slice(&answer)
                .map_err(|e| self.bad(path, &format!("not JSON ({e})"))),
            403 => Err(VaultError::Denied {
                address: self.address.clone(),
                path: path.to_owned(),
                credential: self.describe(),
                messages: error_messages(&answer),
            }),
            503 => Err(VaultError::Sealed {
                address: self.address.clone(),
            }),
            _ => Err(self.api_error(path, status, &answer)),
        }
    }

    fn api_error(&self, path: &str, status: u16, body: &[u8]) -> VaultError {
        VaultError::Api {
            address: self.address.clone(),
            path: path.to_owned(),
            status,
            messages: error_messages(body),
        }
    }

    fn unreachable(&self, reason: String) -> VaultError {
        VaultError::Unreachable {
            address: self.address.clone(),
            reason,
        }
    }

    fn bad(&self, path: &str, reason: &str) -> VaultError {
        VaultError::BadResponse {
            address: self.address.clone(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// Whether a server is initialised and sealed (`sys/seal-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealStatus {
    /// Whether `sys/init` has run.
    pub initialized: bool,
    /// Whether it is sealed.
    pub sealed: bool,
    /// Unseal keys needed.
    pub threshold: u32,
    /// Unseal keys that exist.
    pub shares: u32,
    /// Keys given so far towards the threshold.
    pub progress: u32,
}

/// What `sys/init` returns: the unseal keys and the root token. `Debug` shows counts only.
pub struct InitKeys {
    /// The unseal keys (hex, as `bao operator unseal` takes them).
    pub unseal_keys: Vec<SecretString>,
    /// The initial root token.
    pub root_token: SecretString,
}

impl fmt::Debug for InitKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "InitKeys({} unseal keys, a root token)",
            self.unseal_keys.len()
        )
    }
}

/// The unauthenticated operator calls on one server: seal status, initialisation and
/// unsealing (`sys/seal-status`, `sys/init`, `sys/unseal`). Keys and tokens go in and out
/// only as [`SecretString`]s.
#[derive(Debug, Clone)]
pub struct VaultOperator {
    address: String,
    ca_pem: Option<Vec<u8>>,
}

impl VaultOperator {
    /// The server at `address` (`scheme://host[:port]`), trusting `ca_pem` when given.
    pub fn new(address: &str, ca_pem: Option<Vec<u8>>) -> Result<Self, VaultError> {
        Ok(Self {
            address: address_for(address)?,
            ca_pem,
        })
    }

    /// The server.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn call(
        &self,
        path: &str,
        body: Option<Zeroizing<String>>,
    ) -> Result<serde_json::Value, VaultError> {
        let (status, answer) = request(&self.address, self.ca_pem.as_deref(), path, None, body)
            .map_err(|reason| VaultError::Unreachable {
                address: self.address.clone(),
                reason,
            })?;
        if !(200..300).contains(&status) {
            return Err(VaultError::Api {
                address: self.address.clone(),
                path: path.to_owned(),
                status,
                messages: error_messages(&answer),
            });
        }
        serde_json::from_slice(&answer).map_err(|e| VaultError::BadResponse {
            address: self.address.clone(),
            path: path.to_owned(),
            reason: format!("not JSON ({e})"),
        })
    }

    fn status_from(&self, path: &str, v: &serde_json::Value) -> Result<SealStatus, VaultError> {
        let bad = |what: &str| VaultError::BadResponse {
            address: self.address.clone(),
            path: path.to_owned(),
            reason: format!("no `{what}`"),
        };
        let flag = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_bool)
                .ok_or_else(|| bad(k))
        };
        let num = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_u64)
                .map(|n| n as u32)
                .ok_or_else(|| bad(k))
        };
        Ok(SealStatus {
            initialized: flag("initialized")?,
            sealed: flag("sealed")?,
            threshold: num("t")?,
            shares: num("n")?,
            progress: num("progress")?,
        })
    }

    /// `sys/seal-status`.
    pub fn seal_status(&self) -> Result<SealStatus, VaultError> {
        let path = "sys/seal-status";
        let v = self.call(path, None)?;
        self.status_from(path, &v)
    }

    /// `sys/init` with `shares` unseal keys of which `threshold` unseal. Fails on a server
    /// that is initialised already (its keys were handed out then, once).
    pub fn init(&self, shares: u32, threshold: u32) -> Result<InitKeys, VaultError> {
        let path = "sys/init";
        let body = Zeroizing::new(
            serde_json::json!({ "secret_shares": shares, "secret_threshold": threshold })
                .to_string(),
        );
        let v = Zeroizing::new(self.call(path, Some(body))?.to_string());
        let v: serde_json::Value =
            serde_json::from_str(&v).map_err(|e| VaultError::BadResponse {
                address: self.address.clone(),
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        let bad = |what: &str| VaultError::BadResponse {
            address: self.address.clone(),
            path: path.to_owned(),
            reason: format!("no `{what}`"),
        };
        let unseal_keys = v
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| bad("keys"))?
            .iter()
            .map(|k| {
                k.as_str()
                    .map(|k| SecretString::from(k.to_owned()))
                    .ok_or_else(|| bad("keys"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let root_token = v
            .get("root_token")
            .and_then(serde_json::Value::as_str)
            .map(|t| SecretString::from(t.to_owned()))
            .ok_or_else(|| bad("root_token"))?;
        if unseal_keys.len() != shares as usize {
            return Err(bad("keys (as many as asked for)"));
        }
        Ok(InitKeys {
            unseal_keys,
            root_token,
        })
    }

    /// `sys/unseal` with one key; the status after it.
    pub fn unseal(&self, key: &SecretString) -> Result<SealStatus, VaultError> {
        let path = "sys/unseal";
        let body = Zeroizing::new(serde_json::json!({ "key": key.expose_secret() }).to_string());
        let v = self.call(path, Some(body))?;
        self.status_from(path, &v)
    }
}

fn address_for(address: &str) -> Result<String, VaultError> {
    normalize_address(address).map_err(|reason| VaultError::InvalidKey {
        value: address.to_owned(),
        reason,
    })
}

/// Vault's `{"errors": [...]}`, which never holds a secret; other bodies are not shown.
fn error_messages(body: &[u8]) -> Vec<String> {
    let messages: Vec<String> = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errors").cloned())
        .and_then(|e| e.as_array().cloned())
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e.as_str())
                .map(|e| e.chars().take(300).collect())
                .collect()
        })
        .unwrap_or_default();
    if messages.is_empty() {
        vec!["no error message".to_owned()]
    } else {
        messages
    }
}

/// The credentials the environment gives, one per server, and the variables it read.
#[derive(Clone, Default)]
pub struct VaultEnv {
    /// `VAULT_ADDR`.
    pub vault_addr: Option<String>,
    /// `VAULT_TOKEN`.
    pub vault_token: Option<SecretString>,
    /// `BAO_ADDR`.
    pub bao_addr: Option<String>,
    /// `BAO_TOKEN`.
    pub bao_token: Option<SecretString>,
    /// `VAULT_ROLE_ID` (else `BAO_ROLE_ID`): an AppRole login instead of a token.
    pub role_id: Option<String>,
    /// `VAULT_SECRET_ID` (else `BAO_SECRET_ID`).
    pub secret_id: Option<SecretString>,
    /// `VAULT_APPROLE_MOUNT` (else `BAO_APPROLE_MOUNT`, default `approle`).
    pub approle_mount: Option<String>,
    /// `VAULT_CACERT` (else `BAO_CACERT`): a CA file to trust instead of the system's.
    pub ca_cert: Option<std::path::PathBuf>,
    /// The lab's own server (the spec's `secrets.vault`): where a token or AppRole login
    /// goes when its address variable is unset, and which kind is used first there.
    pub lab: Option<LabVault>,
}

/// Which kind of credential a lab logs in to its server with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VaultAuthKind {
    /// `VAULT_TOKEN` / `BAO_TOKEN`.
    #[default]
    Token,
    /// An AppRole login with `VAULT_ROLE_ID` and `VAULT_SECRET_ID`.
    AppRole,
}

/// The lab's Vault server as its spec names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabVault {
    /// `scheme://host[:port]`.
    pub address: String,
    /// The credential used first for this address; the other kind only when the
    /// environment lacks this one.
    pub auth: VaultAuthKind,
}

impl fmt::Debug for VaultEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: bool| if v { "[set]" } else { "unset" };
        f.debug_struct("VaultEnv")
            .field("vault_addr", &self.vault_addr)
            .field("vault_token", &set(self.vault_token.is_some()))
            .field("bao_addr", &self.bao_addr)
            .field("bao_token", &set(self.bao_token.is_some()))
            .field("role_id", &set(self.role_id.is_some()))
            .field("secret_id", &set(self.secret_id.is_some()))
            .field("approle_mount", &self.approle_mount)
            .field("ca_cert", &self.ca_cert)
            .field("lab", &self.lab)
            .finish()
    }
}

impl VaultEnv {
    /// Reads the variables (empty values count as unset).
    pub fn from_process_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let either = |a: &str, b: &str| var(a).or_else(|| var(b));
        Self {
            vault_addr: var(ENV_VAULT_ADDR),
            vault_token: var(ENV_VAULT_TOKEN).map(SecretString::from),
            bao_addr: var(ENV_BAO_ADDR),
            bao_token: var(ENV_BAO_TOKEN).map(SecretString::from),
            role_id: either("VAULT_ROLE_ID", "BAO_ROLE_ID"),
            secret_id: either("VAULT_SECRET_ID", "BAO_SECRET_ID").map(SecretString::from),
            approle_mount: either("VAULT_APPROLE_MOUNT", "BAO_APPROLE_MOUNT"),
            ca_cert: either("VAULT_CACERT", "BAO_CACERT").map(Into::into),
            lab: None,
        }
    }

    /// The same variables with the lab's server as the address of credentials whose address
    /// variable is unset.
    pub fn with_lab(mut self, lab: Option<LabVault>) -> Self {
        self.lab = lab;
        self
    }

    /// Whether any credential variable is set.
    pub fn is_empty(&self) -> bool {
        self.vault_token.is_none() && self.bao_token.is_none() && self.secret_id.is_none()
    }

    /// The credentials: a token for `VAULT_ADDR` and one for `BAO_ADDR`; an AppRole login for
    /// the address without a token. The lab's server (see [`VaultEnv::with_lab`]) stands in
    /// for an unset address variable, and there the lab's kind of credential comes first. A
    /// token without any address is an error: homelab would otherwise have to send it to
    /// whatever address a file names.
    pub fn credentials(&self) -> Result<Vec<Arc<VaultCredential>>, VaultError> {
        let lab_address = self.lab.as_ref().map(|l| l.address.clone());
        let vault_addr = self.vault_addr.clone().or(lab_address.clone());
        let bao_addr = self.bao_addr.clone().or(lab_address);
        let ca = match &self.ca_cert {
            Some(path) => Some(std::fs::read(path).map_err(|e| VaultError::Unreachable {
                address: path.display().to_string(),
                reason: format!("cannot read the CA certificate file from VAULT_CACERT ({e})"),
            })?),
            None => None,
        };
        let mut out = Vec::new();
        let pairs = [
            (
                &vault_addr,
                &self.vault_token,
                ENV_VAULT_ADDR,
                ENV_VAULT_TOKEN,
            ),
            (&bao_addr, &self.bao_token, ENV_BAO_ADDR, ENV_BAO_TOKEN),
        ];
        for (addr, token, addr_name, token_name) in pairs {
            match (addr, token) {
                (Some(addr), Some(token)) => {
                    out.push(VaultCredential::token(addr, token.clone(), token_name)?)
                }
                (None, Some(_)) => {
                    return Err(VaultError::InvalidKey {
                        value: token_name.to_owned(),
                        reason: format!(
                            "{token_name} is set but {addr_name} is not; set {addr_name} to the server the token is for (homelab sends a token only to the address it was given for)"
                        ),
                    });
                }
                _ => {}
            }
        }
        if let (Some(role_id), Some(secret_id)) = (&self.role_id, &self.secret_id) {
            let addr = self
                .vault_addr
                .as_ref()
                .filter(|_| self.vault_token.is_none())
                .or(self.bao_addr.as_ref().filter(|_| self.bao_token.is_none()))
                .or(self.vault_addr.as_ref())
                .or(self.bao_addr.as_ref())
                .or(vault_addr.as_ref())
                .ok_or_else(|| VaultError::InvalidKey {
                    value: "VAULT_ROLE_ID".to_owned(),
                    reason: "an AppRole login needs VAULT_ADDR (or BAO_ADDR)".to_owned(),
                })?;
            let mount = self.approle_mount.as_deref().unwrap_or("approle");
            out.push(VaultCredential::approle(
                addr,
                mount,
                role_id,
                secret_id.clone(),
                "VAULT_ROLE_ID/VAULT_SECRET_ID",
            )?);
        }
        // The first credential for an address is the one used there: put the lab's kind first.
        if let Some(lab) = &self.lab
            && lab.auth == VaultAuthKind::AppRole
        {
            out.sort_by_key(|c| !matches!(c.auth, Auth::AppRole { .. }));
        }
        Ok(out
            .into_iter()
            .map(|c| match &ca {
                Some(pem) => c.with_ca_pem(pem.clone()),
                None => c,
            })
            .map(Arc::new)
            .collect())
    }
}

/// One HTTP/1.1 request to Vault's API (`/v1/PATH`): POST with a JSON body, or GET without.
/// Runs on its own thread and runtime, so callers may be inside or outside a Tokio runtime.
fn request(
    address: &str,
    ca_pem: Option<&[u8]>,
    path: &str,
    token: Option<&SecretString>,
    body: Option<Zeroizing<String>>,
) -> Result<(u16, Zeroizing<Vec<u8>>), String> {
    let url = format!("{address}/v1/{path}");
    let config = tls_config(ca_pem)?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the HTTP runtime ({e})"))?;
                runtime.block_on(async {
                    match tokio::time::timeout(
                        REQUEST_TIMEOUT,
                        send_request(&url, config, token, body),
                    )
                    .await
                    {
                        Ok(result) => result,
                        Err(_) => Err(format!(
                            "no answer within {} seconds",
                            REQUEST_TIMEOUT.as_secs()
                        )),
                    }
                })
            })
            .join()
            .unwrap_or_else(|_| Err("the HTTP request panicked".to_owned()))
    })
}

async fn send_request(
    url: &str,
    config: rustls::ClientConfig,
    token: Option<&SecretString>,
    body: Option<Zeroizing<String>>,
) -> Result<(u16, Zeroizing<Vec<u8>>), String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build();
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector);
    let method = if body.is_some() {
        hyper::Method::POST
    } else {
        hyper::Method::GET
    };
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        let mut value = hyper::header::HeaderValue::from_str(token.expose_secret())
            .map_err(|_| "the token holds characters an HTTP header cannot carry".to_owned())?;
        value.set_sensitive(true);
        builder = builder.header("X-Vault-Token", value);
    }
    let payload = body
        .map(|b| Bytes::from(b.as_bytes().to_vec()))
        .unwrap_or_default();
    let request = builder
        .body(Full::new(payload))
        .map_err(|e| format!("invalid request ({e})"))?;
    let response = client.request(request).await.map_err(|e| {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        reason
    })?;
    let status = response.status().as_u16();
    let collected = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the answer failed ({e})"))?;
    Ok((status, Zeroizing::new(collected.to_bytes().to_vec())))
}

fn tls_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    Ok(match ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("invalid CA certificate PEM ({e})"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("unusable CA certificate ({e})"))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| format!("cannot load the system's trusted certificates ({e})"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_and_write_sops_uri_form() {
        let key: VaultKey = "https://vault.lab:8200/v1/sops/transit/keys/homelab"
            .parse()
            .unwrap();
        assert_eq!(key.address, "https://vault.lab:8200");
        assert_eq!(key.engine_path, "sops/transit");
        assert_eq!(key.key_name, "homelab");
        assert_eq!(
            key.uri(),
            "https://vault.lab:8200/v1/sops/transit/keys/homelab"
        );
        for bad in [
            "vault.lab/v1/transit/keys/x",
            "https://vault.lab:8200",
            "https://vault.lab/prefix/v1/transit/keys/x",
            "https://vault.lab/v1/transit/x",
            "https://user@vault.lab/v1/transit/keys/x",
            "https://vault.lab/v1/../keys/x",
        ] {
            assert!(bad.parse::<VaultKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_token_needs_its_address_and_debug_never_shows_it() {
        let env = VaultEnv {
            vault_token: Some(SecretString::from("hvs.SECRET".to_owned())),
            ..VaultEnv::default()
        };
        let err = env.credentials().unwrap_err().to_string();
        assert!(err.contains("VAULT_ADDR"), "{err}");
        let env = VaultEnv {
            vault_addr: Some("http://127.0.0.1:8200/".into()),
            ..env
        };
        let creds = env.credentials().unwrap();
        assert_eq!(creds[0].address(), "http://127.0.0.1:8200");
        assert!(!format!("{creds:?} {env:?}").contains("SECRET"));
    }

    #[test]
    fn the_labs_server_stands_in_for_an_unset_address_and_its_kind_comes_first() {
        let lab = |auth| LabVault {
            address: "https://bao.lab:8200".into(),
            auth,
        };
        let env = VaultEnv {
            vault_token: Some(SecretString::from("hvs.SECRET".to_owned())),
            role_id: Some("role".into()),
            secret_id: Some(SecretString::from("SECRET-ID".to_owned())),
            ..VaultEnv::default()
        };
        let token_first = env
            .clone()
            .with_lab(Some(lab(VaultAuthKind::Token)))
            .credentials()
            .unwrap();
        let shown: Vec<String> = token_first
            .iter()
            .map(|c| format!("{} for {}", c.describe(), c.address()))
            .collect();
        assert_eq!(
            shown,
            [
                "token from VAULT_TOKEN for https://bao.lab:8200",
                "AppRole login from VAULT_ROLE_ID/VAULT_SECRET_ID for https://bao.lab:8200"
            ]
        );
        let approle_first = env
            .clone()
            .with_lab(Some(lab(VaultAuthKind::AppRole)))
            .credentials()
            .unwrap();
        assert!(approle_first[0].describe().starts_with("AppRole"));
        // VAULT_ADDR set: the token is for that server, not the lab's.
        let elsewhere = VaultEnv {
            vault_addr: Some("http://127.0.0.1:8200".into()),
            role_id: None,
            secret_id: None,
            ..env
        }
        .with_lab(Some(lab(VaultAuthKind::Token)))
        .credentials()
        .unwrap();
        assert_eq!(elsewhere.len(), 1);
        assert_eq!(elsewhere[0].address(), "http://127.0.0.1:8200");
    }
}
