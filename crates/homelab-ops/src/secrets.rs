//! The secrets the lab needs, and how the secrets file measures up to them: every requirement
//! from the plan and the spec, and which referenced secrets the file lacks or holds without a
//! value. The check reads names only (no key, no decryption), so it can never see a value.

use std::path::{Path, PathBuf};

use homelab_plan::{Plan, SecretGenerator};
use homelab_secrets::store::peek_names;
use homelab_secrets::{
    Error as SecretsError, LabVault, SECRETS_FILE, SecretRequirement, VaultAuthKind, VaultKey,
};
use homelab_spec::lab::{VaultAuth, VaultSettings};
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

/// The spec's `secrets.vault` server as the secrets library takes it: where credentials
/// whose address variable is unset go, and which kind is used first.
pub fn lab_vault(v: &VaultSettings) -> LabVault {
    LabVault {
        address: v.address.clone(),
        auth: match v.auth {
            VaultAuth::Token => VaultAuthKind::Token,
            VaultAuth::Approle => VaultAuthKind::AppRole,
        },
    }
}

/// The spec's transit key in the secrets library's form.
pub fn vault_key(v: &VaultSettings) -> Result<VaultKey, SecretsError> {
    VaultKey::new(&v.address, &v.transit_path, &v.key).map_err(SecretsError::Vault)
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
                SecretGenerator::Argon2id { password_secret } => {
                    SecretRequirement::argon2id(&need.name, password_secret)
                }
                SecretGenerator::UserProvided => match &need.optional {
                    // Said in the hint, so `secrets list` and `secrets init` show it.
                    Some(without) => SecretRequirement::user_provided(
                        &need.name,
                        format!("{}; optional: without it, {without}", need.description),
                    ),
                    None => SecretRequirement::user_provided(&need.name, &need.description),
                },
                SecretGenerator::CaKey => SecretRequirement::ca_key(&need.name),
                SecretGenerator::CaCertificate {
                    common_name,
                    key_secret,
                    days,
                } => SecretRequirement::ca_certificate(&need.name, common_name, key_secret, *days),
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
    /// Optional secrets (ADR 0133) that are in the file without a value, or not in it: the
    /// lab works without them.
    pub unset_optional: Vec<String>,
    /// Secrets the lab generates itself that the file lacks (`secrets init` adds them).
    pub not_generated: Vec<String>,
}

impl NamesCheck {
    /// The optional secrets without a value, each with the command that sets it, as one line.
    pub fn unset_optional_with_commands(&self) -> String {
        self.unset_optional
            .iter()
            .map(|n| format!("{n} (`homelab secrets set {n}`)"))
            .collect::<Vec<_>>()
            .join(", ")
    }
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
        unset_optional: Vec::new(),
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
        let optional = plan.optional_secret(&req.name).is_some();
        match stored.iter().find(|s| s.name == req.name) {
            Some(s) if !s.set && optional => check.unset_optional.push(req.name),
            Some(s) if !s.set => check.unset.push(req.name),
            None if optional => check.unset_optional.push(req.name),
            Some(_) => {}
            None if !referenced.contains(&req.name) => check.not_generated.push(req.name),
            None => {}
        }
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use homelab_secrets::SecretsStore;
    use homelab_secrets::identity::create_identity_file;
    use secrecy::SecretString;

    const SPEC: &str = r#"name: lab
network:
  subnet: 10.1.0.0/24
  gateway: 10.1.0.1
  domain: lab.example.com
  loadBalancerPool: 10.1.0.100-10.1.0.120
cluster:
  k3sVersion: v1.34.2+k3s1
  nodes:
    - name: s1
      role: server
      address: 10.1.0.10
      ssh: {sudoPassword: {secret: sudo-pw}}
    - name: a1
      role: agent
      address: 10.1.0.11
      ssh: {sudoPassword: {secret: sudo-pw}}
tls:
  acmeEmail: you@example.com
  challenge: {type: dns01, provider: cloudflare, apiToken: {secret: cf}}
"#;

    fn load() -> (LoadedSpec, Plan) {
        let loaded = homelab_spec::load_str("homelab.yaml", SPEC)
            .unwrap_or_else(|e| panic!("{}", e.render()));
        let plan = homelab_plan::plan(&loaded.lab);
        (loaded, plan)
    }

    #[test]
    fn the_secrets_file_is_next_to_the_spec_and_named_as_the_user_would() {
        assert_eq!(
            secrets_file(Path::new("homelab.yaml")),
            Path::new(SECRETS_FILE)
        );
        assert_eq!(
            secrets_file(Path::new("labs/home/homelab.yaml")),
            Path::new("labs/home").join(SECRETS_FILE)
        );
        assert_eq!(lab_dir(Path::new("homelab.yaml")), Path::new("."));
    }

    #[test]
    fn requirements_are_the_plans_secrets_and_what_only_the_spec_references() {
        let (loaded, plan) = load();
        let reqs = requirements(&loaded, &plan);
        for need in &plan.secrets {
            let req = reqs.iter().find(|r| r.name == need.name).unwrap();
            let planned: Vec<String> = need.used_by.iter().cloned().collect();
            assert_eq!(req.used_by, planned, "{}", need.name);
        }
        // No component generates the sudo password: the user gives it, and both nodes use it.
        let sudo = reqs.iter().find(|r| r.name == "sudo-pw").unwrap();
        assert!(matches!(
            sudo.generator,
            homelab_secrets::Generator::UserProvided { .. }
        ));
        assert_eq!(sudo.used_by.len(), 2, "{:?}", sudo.used_by);
        let names: Vec<&str> = reqs.iter().map(|r| r.name.as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "each secret once: {names:?}");
    }

    #[test]
    fn without_a_secrets_file_nothing_is_checked_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("homelab.yaml");
        let (loaded, plan) = load();
        let check = check_names(&spec, &loaded, &plan).unwrap();
        assert!(!check.exists);
        assert_eq!(check.file, dir.path().join(SECRETS_FILE));
        assert!(check.missing.is_empty() && check.unset.is_empty());
        assert!(check.not_generated.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// Writes the lab's secrets file with `set` given values and `unset` as placeholders,
    /// for a key that is then thrown away: the check must not need one.
    fn write_store(dir: &Path, set: &[&str], unset: &[&str]) {
        let key = dir.join("key.txt");
        let (_, recipient) = create_identity_file(&key).unwrap();
        let mut store = SecretsStore::create(&dir.join(SECRETS_FILE), &[recipient]).unwrap();
        let placeholders: Vec<SecretRequirement> = set
            .iter()
            .chain(unset)
            .map(|n| SecretRequirement::user_provided(*n, "test"))
            .collect();
        store.generate_missing(&placeholders).unwrap();
        for name in set {
            store
                .set(name, SecretString::from(format!("{name}-value")))
                .unwrap();
        }
        store.save().unwrap();
        std::fs::remove_file(key).unwrap();
    }

    #[test]
    fn the_check_names_unset_and_not_generated_secrets_without_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("homelab.yaml");
        let (loaded, plan) = load();
        write_store(dir.path(), &["cf"], &["sudo-pw"]);
        let check = check_names(&spec, &loaded, &plan).unwrap();
        assert!(check.exists);
        assert!(check.missing.is_empty(), "{:?}", check.missing);
        assert!(check.missing_names.is_empty());
        assert_eq!(check.unset, ["sudo-pw"]);
        // What the plan generates is not in the file yet: `secrets init` adds it.
        let generated: Vec<&str> = plan
            .secrets
            .iter()
            .map(|s| s.name.as_str())
            .filter(|n| *n != "cf")
            .collect();
        assert!(!generated.is_empty());
        assert_eq!(check.not_generated, generated);
    }

    #[test]
    fn a_referenced_secret_the_file_lacks_is_one_error_at_its_first_reference() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("homelab.yaml");
        let (loaded, plan) = load();
        write_store(dir.path(), &["cf"], &[]);
        let check = check_names(&spec, &loaded, &plan).unwrap();
        assert_eq!(check.missing_names, ["sudo-pw"]);
        assert_eq!(check.missing.len(), 1, "{:?}", check.missing);
        let error = &check.missing[0];
        assert_eq!(error.code, "unknown-secret");
        assert!(error.message.contains("node s1"), "{}", error.message);
        assert!(error.span.is_some(), "the error is at the reference");
        assert!(check.unset.is_empty());
        assert!(!check.not_generated.contains(&"sudo-pw".to_string()));
    }

    #[test]
    fn a_damaged_secrets_file_is_an_error_of_the_secrets_library_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("homelab.yaml");
        let (loaded, plan) = load();
        std::fs::write(dir.path().join(SECRETS_FILE), "just: [text\n").unwrap();
        let err = check_names(&spec, &loaded, &plan).unwrap_err();
        assert!(
            err.to_string().contains(SECRETS_FILE),
            "the message names the file: {err}"
        );
    }
}
