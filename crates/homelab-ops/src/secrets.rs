//! The secrets the lab needs, and how the secrets file measures up to them: every requirement
//! from the plan and the spec, and which referenced secrets the file lacks or holds without a
//! value. The check reads names only (no key, no decryption), so it can never see a value.

use std::path::{Path, PathBuf};

use homelab_plan::{Plan, SecretGenerator};
use homelab_secrets::store::peek_names;
use homelab_secrets::{Error as SecretsError, SECRETS_FILE, SecretRequirement};
use homelab_spec::{Diagnostic, LoadedSpec};

/// The directory the spec lives in: the secrets file and relative key paths are next to it.
pub fn lab_dir(spec: &Path) -> PathBuf {
    spec.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// The lab's secrets file, next to the spec; spelt without `./` when the lab is the current
/// directory, so messages name it as the user would.
pub fn secrets_file(spec: &Path) -> PathBuf {
    let dir = lab_dir(spec);
    if dir == Path::new(".") {
        PathBuf::from(SECRETS_FILE)
    } else {
        dir.join(SECRETS_FILE)
    }
}

/// Every secret the lab needs, as the secrets library describes them: the plan's secrets, and
/// secrets the spec references that no component generates (node sudo passwords), which only
/// the user can provide.
pub fn requirements(loaded: &LoadedSpec, plan: &Plan) -> Vec<SecretRequirement> {
    let mut out: Vec<SecretRequirement> = plan
        .secrets
        .iter()
        .map(|need| {
            let req = match &need.generator {
                SecretGenerator::Password { length } => {
                    SecretRequirement::password(&need.name, *length)
                }
                SecretGenerator::Hex { bytes } => SecretRequirement::hex_key(&need.name, *bytes),
                SecretGenerator::Htpasswd {
                    user,
                    password_secret,
                } => SecretRequirement::htpasswd(&need.name, user, password_secret),
                SecretGenerator::UserProvided => {
                    SecretRequirement::user_provided(&need.name, &need.description)
                }
            };
            req.used_by(need.used_by.iter().cloned())
        })
        .collect();
    let planned = out.len();
    for (secret, used_by) in loaded.lab.secret_refs() {
        let name = secret.name();
        match out.iter().position(|r| r.name == name) {
            // The plan knows who uses its secrets; spec-only ones collect every user.
            Some(i) if i < planned => {}
            Some(i) => {
                if !out[i].used_by.contains(&used_by) {
                    out[i].used_by.push(used_by);
                }
            }
            None => out.push(
                SecretRequirement::user_provided(name, format!("referenced by {used_by}"))
                    .used_by([used_by]),
            ),
        }
    }
    out
}

/// What the secrets file holds of what the lab needs, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct NamesCheck {
    /// The secrets file it looked at.
    pub file: PathBuf,
    /// Whether it exists (nothing is checked when it does not).
    pub exists: bool,
    /// An error per secret the spec references that the file lacks, at the reference.
    pub missing: Vec<Diagnostic>,
    /// The names of those secrets, each once, in the order the spec references them.
    pub missing_names: Vec<String>,
    /// Secrets the lab needs that are in the file without a value.
    pub unset: Vec<String>,
    /// Secrets the lab generates itself that the file lacks (`secrets init` adds them).
    pub not_generated: Vec<String>,
}

/// Checks the secrets file next to `spec` against what the lab (`loaded` with its `plan`)
/// needs. A file that does not exist yet is not an error: the check says so in `exists`.
pub fn check_names(
    spec: &Path,
    loaded: &LoadedSpec,
    plan: &Plan,
) -> Result<NamesCheck, SecretsError> {
    let file = secrets_file(spec);
    let mut check = NamesCheck {
        exists: file.exists(),
        file,
        missing: Vec::new(),
        missing_names: Vec::new(),
        unset: Vec::new(),
        not_generated: Vec::new(),
    };
    if !check.exists {
        return Ok(check);
    }
    let stored = peek_names(&check.file)?;
    let names: Vec<String> = stored.iter().map(|s| s.name.clone()).collect();
    check.missing = loaded.missing_secrets(&names);
    let referenced: Vec<String> = loaded
        .lab
        .secret_refs()
        .iter()
        .map(|(s, _)| s.name().to_string())
        .collect();
    for name in &referenced {
        if !names.contains(name) && !check.missing_names.contains(name) {
            check.missing_names.push(name.clone());
        }
    }
    for req in requirements(loaded, plan) {
        match stored.iter().find(|s| s.name == req.name) {
            Some(s) if !s.set => check.unset.push(req.name),
            Some(_) => {}
            None if !referenced.contains(&req.name) => check.not_generated.push(req.name),
            None => {}
        }
    }
    Ok(check)
}
