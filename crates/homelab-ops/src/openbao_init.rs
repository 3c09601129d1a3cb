//! Initialising and unsealing an OpenBao (or Vault) server as a library call: a new server is
//! initialised once and its unseal keys and root token go straight into the lab's encrypted
//! secrets file, saved before anything else happens; a sealed one is unsealed with the keys
//! stored there. It never prints, logs or returns a key or the token.

use homelab_plan::{OpenBaoPolicy, openbao_policies};
use homelab_secrets::{
    Error as SecretsError, SecretsStore, VaultCredential, VaultEnv, VaultError, VaultOperator,
};
use homelab_spec::Lab;
use secrecy::SecretString;
use serde_json::json;

/// The secret holding unseal key N (from 1).
pub const UNSEAL_KEY_PREFIX: &str = "openbao-unseal-key-";
/// The secret holding the initial root token.
pub const ROOT_TOKEN: &str = "openbao-root-token";

/// How many unseal keys a new server hands out, and how many unseal it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitOptions {
    pub shares: u32,
    pub threshold: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            shares: 5,
            threshold: 3,
        }
    }
}

/// What [`init_and_unseal`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// The server.
    pub address: String,
    /// Whether it was initialised now (else it was already).
    pub initialized_now: bool,
    /// Whether it was unsealed now (else it was already unsealed).
    pub unsealed_now: bool,
    /// The secrets written into the file (names only), when it was initialised now.
    pub stored: Vec<String>,
}

/// What [`configure`] did on the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigureReport {
    /// Policies written now (new or changed).
    pub policies_written: Vec<String>,
    /// Policies the server already held as rendered.
    pub policies_unchanged: Vec<String>,
    /// Whether the transit engine was mounted now.
    pub transit_mounted: bool,
    /// Whether the transit key was created now.
    pub key_created: bool,
    /// Why nothing was configured, when it was not.
    pub skipped: Option<String>,
}

/// Why it stopped. Messages name the server and the secrets file, never a key.
#[derive(Debug, thiserror::Error)]
pub enum OpenBaoInitError {
    /// A call to the server failed.
    #[error("{operation} on {address}: {source}")]
    Server {
        /// `seal status`, `init`, `unseal`.
        operation: &'static str,
        address: String,
        source: Box<VaultError>,
    },
    /// The secrets file could not be read or written.
    #[error("{operation}: {source}")]
    Secrets {
        operation: &'static str,
        source: Box<SecretsError>,
    },
    /// The server is not initialised, but the file holds another server's keys.
    #[error(
        "{address} is not initialised, but {file} already holds `{ROOT_TOKEN}` and unseal keys of a server; initialising would replace them. If that server is gone for good, remove them with `homelab secrets edit` first; nothing was changed"
    )]
    KeysOfAnotherServer { address: String, file: String },
    /// The server is sealed and the file lacks enough of its keys.
    #[error(
        "{address} is sealed and needs {threshold} unseal keys, but {file} holds {held}: it was initialised without homelab, or the keys were removed. Unseal it with the keys of whoever holds them (`bao operator unseal`), see the runbook for a lost key; nothing was changed"
    )]
    KeysMissing {
        address: String,
        file: String,
        threshold: u32,
        held: usize,
    },
    /// The stored keys did not unseal it.
    #[error(
        "{address} is still sealed after the {tried} unseal keys in {file}: they belong to another server or were changed (`bao operator rekey`); see the runbook for a lost key"
    )]
    StillSealed {
        address: String,
        file: String,
        tried: usize,
    },
    /// Nonsense options.
    #[error("invalid options: {0}")]
    Options(String),
    /// Configuring the unsealed server failed.
    #[error("{operation} on {address}: {source}")]
    Configure {
        /// `writing policy homelab-sops`, `mounting the transit engine`, ...
        operation: String,
        address: String,
        source: Box<VaultError>,
    },
    /// Nothing says where the server is.
    #[error(
        "no OpenBao server to initialise: `services.openbao` is off in the spec and neither --address nor BAO_ADDR/VAULT_ADDR is set; turn the component on, or name the server with --address https://HOST:8200; nothing was changed"
    )]
    NoServer,
}

/// The server to initialise and what named it, for `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    pub address: String,
    /// `--address`, `BAO_ADDR`, `VAULT_ADDR` or `services.openbao`.
    pub source: &'static str,
}

/// Where the server is: the address given on the command line, else the environment's
/// (`BAO_ADDR` before `VAULT_ADDR`, as the `bao` CLI would use it), else the in-cluster
/// server of `services.openbao` behind the lab's ingress.
pub fn server_address(
    explicit: Option<&str>,
    env: &VaultEnv,
    lab: &Lab,
) -> Result<ServerAddress, OpenBaoInitError> {
    let found = |address: &str, source| ServerAddress {
        address: address.to_owned(),
        source,
    };
    if let Some(a) = explicit.filter(|a| !a.trim().is_empty()) {
        return Ok(found(a, "--address"));
    }
    if let Some(a) = env.bao_addr.as_deref() {
        return Ok(found(a, "BAO_ADDR"));
    }
    if let Some(a) = env.vault_addr.as_deref() {
        return Ok(found(a, "VAULT_ADDR"));
    }
    lab.services
        .openbao
        .as_ref()
        .map(|o| ServerAddress {
            address: format!("https://{}", lab.network.fqdn(&o.host)),
            source: "services.openbao",
        })
        .ok_or(OpenBaoInitError::NoServer)
}

/// Whether `name` is one of the secrets this operation writes (an unseal key or the root
/// token): no component reads them, but they are what `services.openbao` is unsealed with.
pub fn is_openbao_secret(name: &str) -> bool {
    name == ROOT_TOKEN
        || name
            .strip_prefix(UNSEAL_KEY_PREFIX)
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=64).contains(&n))
}

/// The name of unseal key `n` (from 1).
pub fn unseal_key_name(n: usize) -> String {
    format!("{UNSEAL_KEY_PREFIX}{n}")
}

/// Initialises the server when it is not (saving its keys and root token in `store` at once,
/// before unsealing), then unseals it with the keys in `store` when it is sealed. Safe to run
/// again: an initialised, unsealed server is left as it is.
pub fn init_and_unseal(
    server: &VaultOperator,
    store: &mut SecretsStore,
    options: InitOptions,
) -> Result<InitReport, OpenBaoInitError> {
    if options.threshold == 0 || options.threshold > options.shares || options.shares > 64 {
        return Err(OpenBaoInitError::Options(format!(
            "{} of {} unseal keys: the threshold is 1 to the number of keys (at most 64)",
            options.threshold, options.shares
        )));
    }
    let address = server.address().to_owned();
    let file = store.path().display().to_string();
    let server_err = |operation, source| OpenBaoInitError::Server {
        operation,
        address: address.clone(),
        source: Box::new(source),
    };
    let status = server
        .seal_status()
        .map_err(|e| server_err("reading the seal status", e))?;
    let mut report = InitReport {
        address: address.clone(),
        initialized_now: false,
        unsealed_now: false,
        stored: Vec::new(),
    };
    let mut threshold = status.threshold;
    if !status.initialized {
        if store.contains(ROOT_TOKEN) || store.contains(&unseal_key_name(1)) {
            return Err(OpenBaoInitError::KeysOfAnotherServer { address, file });
        }
        let keys = server
            .init(options.shares, options.threshold)
            .map_err(|e| server_err("initialising", e))?;
        let mut names = Vec::new();
        for (i, key) in keys.unseal_keys.iter().enumerate() {
            let name = unseal_key_name(i + 1);
            put(store, &name, key.clone())?;
            names.push(name);
        }
        put(store, ROOT_TOKEN, keys.root_token.clone())?;
        names.push(ROOT_TOKEN.to_owned());
        // Saved before anything else: the server hands these out once.
        store.save().map_err(|source| OpenBaoInitError::Secrets {
            operation: "saving the new unseal keys and root token",
            source: Box::new(source),
        })?;
        report.initialized_now = true;
        report.stored = names;
        threshold = options.threshold;
    } else if !status.sealed {
        return Ok(report);
    }
    let held: Vec<String> = (1..=64)
        .map(unseal_key_name)
        .filter(|n| store.is_set(n).unwrap_or(false))
        .collect();
    if held.len() < threshold as usize {
        return Err(OpenBaoInitError::KeysMissing {
            address,
            file,
            threshold,
            held: held.len(),
        });
    }
    let mut tried = 0;
    for name in &held {
        let key = store
            .get(name)
            .map_err(|source| OpenBaoInitError::Secrets {
                operation: "reading an unseal key",
                source: Box::new(source),
            })?
            .clone();
        tried += 1;
        let status = server
            .unseal(&key)
            .map_err(|e| server_err("unsealing", e))?;
        if !status.sealed {
            report.unsealed_now = true;
            return Ok(report);
        }
    }
    Err(OpenBaoInitError::StillSealed {
        address,
        file,
        tried,
    })
}

/// Initialises and unseals the server as [`init_and_unseal`] does, then configures it for
/// the lab with the root token from `store`: the policies of the lab's readers
/// ([`openbao_policies`]) and, when the spec's `secrets.vault` names this server, its transit
/// engine and key. Safe to run again: what the server holds as wanted is left alone.
pub fn init_unseal_and_configure(
    server: &VaultOperator,
    ca_pem: Option<Vec<u8>>,
    store: &mut SecretsStore,
    lab: &Lab,
    options: InitOptions,
) -> Result<(InitReport, ConfigureReport), OpenBaoInitError> {
    let init = init_and_unseal(server, store, options)?;
    let policies = openbao_policies(lab);
    if policies.is_empty() {
        return Ok((
            init,
            ConfigureReport {
                skipped: Some(
                    "no component of the lab reads from OpenBao (no `secrets.vault`)".into(),
                ),
                ..ConfigureReport::default()
            },
        ));
    }
    if !store.is_set(ROOT_TOKEN).unwrap_or(false) {
        return Ok((
            init,
            ConfigureReport {
                skipped: Some(format!(
                    "the secrets file holds no `{ROOT_TOKEN}` (the server was initialised elsewhere); nothing was configured"
                )),
                ..ConfigureReport::default()
            },
        ));
    }
    let token = store
        .get(ROOT_TOKEN)
        .map_err(|source| OpenBaoInitError::Secrets {
            operation: "reading the root token",
            source: Box::new(source),
        })?
        .clone();
    let mut root = VaultCredential::token(server.address(), token, ROOT_TOKEN).map_err(|e| {
        OpenBaoInitError::Configure {
            operation: "logging in".into(),
            address: server.address().to_owned(),
            source: Box::new(e),
        }
    })?;
    if let Some(pem) = ca_pem {
        root = root.with_ca_pem(pem);
    }
    let transit = lab
        .secrets
        .vault
        .as_ref()
        .filter(|v| same_server(&v.address, server.address()))
        .map(|v| (v.transit_path.as_str(), v.key.as_str()));
    let report = configure(&root, &policies, transit)?;
    Ok((init, report))
}

fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// Writes each policy the server does not hold as given, and mounts the transit engine at
/// `transit.0` and creates its key `transit.1` when they are missing. Waits (bounded) for a
/// just unsealed server to become active first.
pub fn configure(
    root: &VaultCredential,
    policies: &[OpenBaoPolicy],
    transit: Option<(&str, &str)>,
) -> Result<ConfigureReport, OpenBaoInitError> {
    let address = root.address().to_owned();
    let failed = |operation: String| {
        let address = address.clone();
        move |e: VaultError| OpenBaoInitError::Configure {
            operation,
            address,
            source: Box::new(e),
        }
    };
    // Integrated storage elects its leader just after unsealing: up to 10 s, 100 ms apart.
    let mut active = root.health();
    for _ in 0..100 {
        if active.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        active = root.health();
    }
    active.map_err(failed("waiting for the server to become active".into()))?;
    let mut report = ConfigureReport::default();
    for p in policies {
        let path = format!("sys/policies/acl/{}", p.name);
        let held = root
            .read(&path)
            .map_err(failed(format!("reading policy {}", p.name)))?;
        let current = held
            .as_ref()
            .and_then(|v| v.pointer("/data/policy").or_else(|| v.get("policy")))
            .and_then(serde_json::Value::as_str);
        if current == Some(p.hcl.as_str()) {
            report.policies_unchanged.push(p.name.clone());
            continue;
        }
        root.write(&path, &json!({ "policy": p.hcl }))
            .map_err(failed(format!("writing policy {}", p.name)))?;
        report.policies_written.push(p.name.clone());
    }
    if let Some((mount, key)) = transit {
        let mounts = root
            .read("sys/mounts")
            .map_err(failed("listing the secrets engines".into()))?
            .unwrap_or_default();
        let name = format!("{mount}/");
        let mounted = mounts
            .get("data")
            .and_then(|d| d.get(&name))
            .or_else(|| mounts.get(&name));
        match mounted
            .and_then(|m| m.get("type"))
            .and_then(serde_json::Value::as_str)
        {
            Some("transit") => {}
            Some(other) => {
                return Err(failed(format!("using {name} for transit"))(
                    VaultError::BadResponse {
                        address: address.clone(),
                        path: format!("sys/mounts/{mount}"),
                        reason: format!(
                            "a `{other}` engine is mounted there, not transit; change `secrets.vault.transitPath` or move that engine"
                        ),
                    },
                ));
            }
            None => {
                root.write(
                    &format!("sys/mounts/{mount}"),
                    &json!({ "type": "transit" }),
                )
                .map_err(failed(format!("mounting the transit engine at {name}")))?;
                report.transit_mounted = true;
            }
        }
        let key_path = format!("{mount}/keys/{key}");
        if root
            .read(&key_path)
            .map_err(failed(format!("reading the transit key {key}")))?
            .is_none()
        {
            root.write(&key_path, &json!({}))
                .map_err(failed(format!("creating the transit key {key}")))?;
            report.key_created = true;
        }
    }
    Ok(report)
}

fn put(store: &mut SecretsStore, name: &str, value: SecretString) -> Result<(), OpenBaoInitError> {
    store
        .set(name, value)
        .map(|_| ())
        .map_err(|source| OpenBaoInitError::Secrets {
            operation: "storing a new key",
            source: Box::new(source),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(services: &str) -> Lab {
        let spec = format!(
            "{}\nservices:\n{services}",
            homelab_spec::templates::MINIMAL
        );
        homelab_spec::load_str("homelab.yaml", &spec).unwrap().lab
    }

    #[test]
    fn only_the_names_this_operation_writes_are_openbao_secrets() {
        for name in [
            "openbao-root-token",
            "openbao-unseal-key-1",
            "openbao-unseal-key-64",
        ] {
            assert!(is_openbao_secret(name), "{name}");
        }
        for name in [
            "openbao-unseal-key-0",
            "openbao-unseal-key-65",
            "openbao-unseal-key-x",
            "openbao-unseal-key-",
            "openbao-admin-password",
        ] {
            assert!(!is_openbao_secret(name), "{name}");
        }
    }

    #[test]
    fn the_address_comes_from_the_flag_then_the_environment_then_the_component() {
        let on = lab("  openbao: {host: vault}\n");
        let env = VaultEnv {
            bao_addr: Some("http://127.0.0.1:8200".into()),
            vault_addr: Some("http://127.0.0.1:8300".into()),
            ..VaultEnv::default()
        };
        let got = |explicit, env: &VaultEnv, lab: &Lab| {
            server_address(explicit, env, lab).map(|a| (a.address, a.source))
        };
        assert_eq!(
            got(Some("https://bao.lan:8200"), &env, &on).unwrap(),
            ("https://bao.lan:8200".into(), "--address")
        );
        assert_eq!(
            got(None, &env, &on).unwrap(),
            ("http://127.0.0.1:8200".into(), "BAO_ADDR")
        );
        let vault_only = VaultEnv {
            bao_addr: None,
            ..env.clone()
        };
        assert_eq!(got(None, &vault_only, &on).unwrap().1, "VAULT_ADDR");
        assert_eq!(
            got(Some(" "), &VaultEnv::default(), &on).unwrap(),
            ("https://vault.home.example.com".into(), "services.openbao")
        );
        let off = homelab_spec::load_str("homelab.yaml", homelab_spec::templates::MINIMAL)
            .unwrap()
            .lab;
        let err = got(None, &VaultEnv::default(), &off).unwrap_err();
        assert!(matches!(err, OpenBaoInitError::NoServer), "{err}");
        assert!(err.to_string().contains("--address"), "{err}");
    }
}
