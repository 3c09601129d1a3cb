//! `homelab secrets init`: the age identity, `.sops.yaml` rules and a secrets file holding
//! every secret the lab needs; it checks that an existing secrets file opens before writing
//! anything, and never prints a value.

use std::fmt::Write as _;

use homelab_secrets::sops_config::{SOPS_CONFIG_FILE, SopsConfig};
use homelab_secrets::{
    Error, Generator, Identities, IdentityEnv, SecretRequirement, SecretsStore, store,
};
use serde_json::json;

use super::{count, lab_spec};
use crate::cli::Global;
use crate::cmd::shared::secrets::{LabFiles, fail, lab_vault, vault_key};
use crate::exit::{self, Exit};
use crate::output::Output;

pub fn run(global: &Global, lab: &LabFiles, out: &Output) -> anyhow::Result<u8> {
    let (loaded, requirements) = lab_spec(global, out)?;
    let vault = loaded.lab.secrets.vault.as_ref();
    let vault_key = vault.map(vault_key).transpose()?;
    let mut env = IdentityEnv::from_process_env();
    env.vault = env.vault.with_lab(vault.map(lab_vault));
    let config_path = lab.file(SOPS_CONFIG_FILE);
    if config_path.exists() {
        SopsConfig::load(&config_path).map_err(fail)?;
    }
    if lab.store.exists() {
        // An existing secrets file must open with the identity at hand before anything is
        // written: otherwise init would make a new identity, or add `.sops.yaml` rules for a
        // key that cannot read the file.
        let identities = Identities::from_env(&env).map_err(|e| match e {
            Error::NoIdentity { path } => Exit {
                code: exit::FAILURE,
                message: format!(
                    "{} exists, but there is no age identity to open it: {} does not exist and SOPS_AGE_KEY is not set. Copy your age key there or set SOPS_AGE_KEY_FILE to it (init creates a new identity only for a lab without a secrets file); nothing was changed",
                    lab.store.display(),
                    path.display()
                ),
                help: None,
            }
            .into(),
            other => fail(other),
        })?;
        SecretsStore::open(&lab.store, &identities).map_err(fail)?;
    }
    let done = homelab_secrets::init_lab_with(&lab.root, &env, &requirements, vault_key.as_ref())
        .map_err(fail)?;
    let public_keys: Vec<String> = Identities::from_env(&env)
        .map_err(fail)?
        .recipients()
        .iter()
        .map(ToString::to_string)
        .collect();
    let unset: Vec<String> = store::peek_names(&lab.store)
        .map_err(fail)?
        .into_iter()
        .filter(|s| !s.set)
        .map(|s| s.name)
        .collect();
    let identity_file = done.identity_path.as_ref().map(|p| p.display().to_string());
    let store_file = lab.store.display().to_string();
    let config_file = config_path.display().to_string();
    out.result(
        || {
            let mut t = String::new();
            match (&identity_file, done.identity_created) {
                (Some(f), true) => {
                    let _ = writeln!(
                        t,
                        "created age identity {f} (mode 0600); back it up somewhere safe: without it nobody can decrypt the secrets"
                    );
                }
                (Some(f), false) => {
                    let _ = writeln!(t, "using age identity {f}");
                }
                (None, _) => {
                    let _ = writeln!(t, "using the age identity in SOPS_AGE_KEY");
                }
            }
            let _ = writeln!(t, "your public key: {}", public_keys.join(", "));
            if done.sops_config_changed {
                let _ = writeln!(
                    t,
                    "wrote homelab's creation rules to {config_file} (the sops CLI uses them too)"
                );
            }
            let added = done.generated.generated.len() + done.generated.placeholders.len();
            if done.store_created {
                let _ = writeln!(
                    t,
                    "created {store_file} with {} the lab needs",
                    count(added, "secret")
                );
            } else if added == 0 {
                let _ = writeln!(
                    t,
                    "{store_file} already holds all {} the lab needs; nothing added",
                    count(requirements.len(), "secret")
                );
            } else {
                let _ = writeln!(t, "added {} to {store_file}", count(added, "secret"));
            }
            if done.store_created && !done.vault_keys.is_empty() {
                let _ = writeln!(
                    t,
                    "  its data key is also wrapped by the Vault transit key {}",
                    done.vault_keys.join(", ")
                );
            }
            if let Some(key) = &done.vault_missing {
                let _ = writeln!(
                    t,
                    "note: {store_file} is not wrapped by the spec's Vault transit key {key}; add it with `homelab secrets rekey --add-vault`"
                );
            }
            if !done.generated.generated.is_empty() {
                let _ = writeln!(
                    t,
                    "  generated: {}",
                    done.generated.generated.join(", ")
                );
            }
            for name in &done.generated.placeholders {
                let _ = writeln!(t, "  set me: {name} ({})", hint(&requirements, name));
            }
            let older: Vec<&String> = unset
                .iter()
                .filter(|n| !done.generated.placeholders.contains(n))
                .collect();
            for name in &older {
                let _ = writeln!(
                    t,
                    "  still unset (set me): {name} ({})",
                    hint(&requirements, name)
                );
            }
            if let Some(first) = unset.first() {
                let _ = writeln!(
                    t,
                    "next: set each with `homelab secrets set NAME` (e.g. `homelab secrets set {first}`), then `homelab validate`"
                );
            } else {
                let _ = writeln!(t, "next: `homelab validate`, then commit {store_file} and {config_file}");
            }
            t
        },
        &json!({
            "identity": {
                "file": identity_file,
                "created": done.identity_created,
                "publicKeys": public_keys,
            },
            "sopsConfig": { "file": config_file, "changed": done.sops_config_changed },
            "secretsFile": { "file": store_file, "created": done.store_created },
            "recipients": done.recipients,
            "vaultKeys": done.vault_keys,
            "vaultMissing": done.vault_missing,
            "generated": done.generated.generated,
            "placeholders": done.generated.placeholders,
            "existing": done.generated.existing,
            "unset": unset,
        }),
    );
    Ok(exit::OK)
}

/// What a user-provided secret is for, from its requirement.
fn hint(requirements: &[SecretRequirement], name: &str) -> String {
    requirements
        .iter()
        .find(|r| r.name == name)
        .map(|r| match &r.generator {
            Generator::UserProvided { hint } => hint.clone(),
            other => other.describe(),
        })
        .unwrap_or_else(|| "not used by the lab".to_string())
}
