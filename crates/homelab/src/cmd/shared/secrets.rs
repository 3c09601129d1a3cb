//! What the commands that read or write the lab's secrets share: where the lab's files are,
//! the age identities from the environment, and the secrets library's errors as messages with
//! a next step and an exit code. Never prints a secret value.

use std::path::{Path, PathBuf};

use homelab_secrets::{Error, Identities, IdentityEnv, SopsError};

use crate::exit::{self, Exit};
use crate::output::Output;

/// Where a lab's files are: the directory of the spec file.
pub(crate) struct LabFiles {
    pub root: PathBuf,
    pub store: PathBuf,
}

impl LabFiles {
    pub fn of(spec: &Path) -> Self {
        LabFiles {
            root: homelab_ops::secrets::lab_dir(spec),
            store: homelab_ops::secrets::secrets_file(spec),
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

/// The age identities from the environment, with where they came from on `-v`.
pub(crate) fn identities(out: &Output) -> anyhow::Result<Identities> {
    let ids = Identities::from_env(&IdentityEnv::from_process_env()).map_err(fail)?;
    out.detail(format!("age identities: {}", ids.describe()));
    Ok(ids)
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
    let message = match hint(&err) {
        Some(h) => format!("{err}; {h}"),
        None => err.to_string(),
    };
    Exit { code, message }.into()
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
        | Error::Encrypt { .. } => "nothing was changed".into(),
        _ => return None,
    })
}
