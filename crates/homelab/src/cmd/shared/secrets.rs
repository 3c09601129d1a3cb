//! What the commands that read or write the lab's secrets share: where the lab's files are,
//! the age identities and Vault credentials from the environment (with the spec's
//! `secrets.vault` server), which key opened a file, and the secrets library's errors as
//! messages with a next step and an exit code. Never prints a secret value or a token.

use std::path::{Path, PathBuf};

use homelab_secrets::{
    Error, Identities, IdentityEnv, KeyUsed, LabVault, SecretsStore, SopsError, VaultKey,
};
use homelab_spec::lab::VaultSettings;

use crate::exit::{self, Exit};
use crate::output::Output;

/// Where a lab's files are: the directory of the spec file.
pub(crate) struct LabFiles {
    pub root: PathBuf,
    pub store: PathBuf,
    pub spec: PathBuf,
}

impl LabFiles {
    pub fn of(spec: &Path) -> Self {
        LabFiles {
            root: homelab_ops::secrets::lab_dir(spec),
            store: homelab_ops::secrets::secrets_file(spec),
            spec: spec.to_path_buf(),
        }
    }

    /// A file of the lab; spelt without `./` when the lab is the current directory.
    pub fn file(&self, name: &str) -> PathBuf {
        if self.root == Path::new(".") {
            PathBuf::from(name)
        } else {
            self.root.join(name)
        }
    }
}

/// The age identities and Vault credentials from the environment, with the lab's server
/// (`secrets.vault`) as the address of a credential whose address variable is unset; says
/// where each came from on `-v`.
pub(crate) fn identities(
    vault: Option<&VaultSettings>,
    out: &Output,
) -> anyhow::Result<Identities> {
    let mut env = IdentityEnv::from_process_env();
    env.vault = env.vault.with_lab(vault.map(lab_vault));
    let ids = Identities::from_env(&env).map_err(fail)?;
    out.detail(format!("age identities: {}", ids.describe()));
    let vault_ids = ids.describe_vault();
    if !vault_ids.is_empty() {
        out.detail(format!(
            "Vault credentials (tried after the age identities): {}",
            vault_ids.join(", ")
        ));
    }
    Ok(ids)
}

/// The lab's `secrets.vault` for commands that do not need the rest of the spec: `None`
/// without a spec file; a spec that does not load is reported as a warning, and then only
/// the environment's Vault settings count.
pub(crate) fn spec_vault(spec: &Path, out: &Output) -> Option<VaultSettings> {
    if !spec.is_file() {
        return None;
    }
    match super::spec::read(spec) {
        Ok(Ok(loaded)) => loaded.lab.secrets.vault,
        Ok(Err(_)) | Err(_) => {
            out.warn(format!(
                "{} is not valid, so its `secrets.vault` settings are not used (`homelab validate` shows why); Vault credentials come from VAULT_ADDR/BAO_ADDR only",
                spec.display()
            ));
            None
        }
    }
}

/// The identities for a lab whose spec is not otherwise read.
pub(crate) fn lab_identities(lab: &LabFiles, out: &Output) -> anyhow::Result<Identities> {
    identities(spec_vault(&lab.spec, out).as_ref(), out)
}

pub(crate) fn lab_vault(v: &VaultSettings) -> LabVault {
    homelab_ops::secrets::lab_vault(v)
}

/// The spec's transit key in the secrets library's form.
pub(crate) fn vault_key(v: &VaultSettings) -> anyhow::Result<VaultKey> {
    homelab_ops::secrets::vault_key(v).map_err(fail)
}

/// The lab's secrets file, opened with the identities of the environment.
pub(crate) fn open_store(lab: &LabFiles, out: &Output) -> anyhow::Result<SecretsStore> {
    if !lab.store.exists() {
        return Err(fail(Error::StoreMissing {
            path: lab.store.clone(),
        }));
    }
    let ids = lab_identities(lab, out)?;
    let store = SecretsStore::open(&lab.store, &ids).map_err(fail)?;
    opened_with(&lab.store, store.opened_with(), out);
    out.detail(format!(
        "opened {} ({} secrets, recipients {})",
        lab.store.display(),
        store.names().len(),
        store.recipients().join(", ")
    ));
    Ok(store)
}

/// `-v`: which key opened a file.
pub(crate) fn opened_with(file: &Path, used: Option<&KeyUsed>, out: &Output) {
    if let Some(used) = used {
        out.detail(format!("opened {} using {used}", file.display()));
    }
}

/// A library error as the CLI reports it: exit 2 for bad input, 1 otherwise, with what to do
/// next. Every failing operation of the library leaves files unchanged, and the message says so.
pub(crate) fn fail(err: Error) -> anyhow::Error {
    let code = match &err {
        Error::UnknownSecret { .. }
        | Error::EmptyValue { .. }
        | Error::InvalidSecretName { .. }
        | Error::InvalidRecipient { .. }
        | Error::Rotate { .. }
        | Error::Rekey { .. }
        | Error::Requirement { .. }
        | Error::IdentityExists { .. } => exit::USAGE,
        _ => exit::FAILURE,
    };
    Exit {
        code,
        message: err.to_string(),
        help: hint(&err),
    }
    .into()
}

fn hint(err: &Error) -> Option<String> {
    Some(match err {
        Error::Decrypt { path, reason } => match reason {
            SopsError::NoMatchingIdentity { .. } => format!(
                "point SOPS_AGE_KEY_FILE (or SOPS_AGE_KEY) at the identity of one of those recipients, or ask someone who can open {} to run `homelab secrets rekey --add <your public key>`; nothing was changed",
                path.display()
            ),
            SopsError::MacMismatch
            | SopsError::MacAuthentication
            | SopsError::ValueAuthentication { .. }
            | SopsError::MalformedValue { .. }
            | SopsError::DataKey { .. }
            | SopsError::NotEncrypted { .. } => format!(
                "the file was changed outside sops/homelab or is damaged; see what changed with `git diff -- {0}` and restore it with `git checkout -- {0}`; nothing was changed",
                path.display()
            ),
            _ => "nothing was changed".to_string(),
        },
        Error::Read { .. } => "check the path and its permissions; nothing was changed".into(),
        Error::EmptyValue { .. } => "give a non-empty value; nothing was changed".into(),
        Error::UnknownSecret { .. }
        | Error::InvalidSecretName { .. }
        | Error::Rotate { .. }
        | Error::Rekey { .. }
        | Error::SecretUnset { .. }
        | Error::InvalidRecipient { .. }
        | Error::Requirement { .. }
        | Error::SopsConfig { .. }
        | Error::StoreShape { .. }
        | Error::IdentityPermissions { .. }
        | Error::IdentityParse { .. }
        | Error::Vault(_)
        | Error::Encrypt { .. } => "nothing was changed".into(),
        _ => return None,
    })
}
