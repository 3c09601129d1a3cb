//! `secrets doctor` as a library call: whether the lab's secrets file is healthy — every key
//! of it tried on its own (age identities held here, Vault/OpenBao transit keys through their
//! servers), the spec's transit key among them, every secret the spec references present and
//! set, no value the lab does not use, and the age key file private. It reads and decrypts
//! only to check; it never writes a file and never returns a value.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use homelab_plan::Plan;
use homelab_secrets::store::peek_names;
use homelab_secrets::{
    Error as SecretsError, Identities, IdentityEnv, KeyCheckOutcome, check_keys,
};
use homelab_spec::LoadedSpec;

use crate::openbao_init::is_openbao_secret;
use crate::secrets::{check_names, lab_vault, requirements, secrets_file};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// As it should be.
    Ok,
    /// Worth a look, but the file works (a key only its holder can check, an unused value).
    Warning,
    /// Broken: the lab cannot use the file as it is.
    Failed,
}

/// What a check looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// The secrets file itself (exists, opens).
    File,
    /// One age recipient of the file.
    AgeRecipient,
    /// One Vault/OpenBao transit key of the file.
    VaultKey,
    /// The spec's `secrets.vault` key among the file's keys.
    SpecVaultKey,
    /// A secret the lab needs (referenced in the spec or generated for a component).
    Secret,
    /// A value in the file that nothing in the lab uses.
    UnusedValue,
    /// The age identity file's permissions.
    IdentityFile,
}

impl CheckKind {
    /// A short name for tables and JSON (`age-recipient`).
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::File => "file",
            CheckKind::AgeRecipient => "age-recipient",
            CheckKind::VaultKey => "vault-key",
            CheckKind::SpecVaultKey => "spec-vault-key",
            CheckKind::Secret => "secret",
            CheckKind::UnusedValue => "unused-value",
            CheckKind::IdentityFile => "identity-file",
        }
    }
}

/// One check: what, its subject, how it came out, why, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub kind: CheckKind,
    /// The recipient, key URI, secret name or file.
    pub subject: String,
    pub status: CheckStatus,
    /// What was found (never a value or a token).
    pub detail: String,
    /// What to do, for warnings and failures.
    pub next: Option<String>,
}

/// Every check, in the order they ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorReport {
    /// The secrets file looked at.
    pub file: PathBuf,
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// Whether no check failed (warnings allowed).
    pub fn healthy(&self) -> bool {
        !self.checks.iter().any(|c| c.status == CheckStatus::Failed)
    }

    /// How many checks came out `status`.
    pub fn count(&self, status: CheckStatus) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

fn check(
    kind: CheckKind,
    subject: impl Into<String>,
    status: CheckStatus,
    detail: impl Into<String>,
    next: Option<String>,
) -> Check {
    Check {
        kind,
        subject: subject.into(),
        status,
        detail: detail.into(),
        next,
    }
}

/// Checks the secrets file next to `spec` against the lab (`loaded`, `plan`), with the
/// identities and Vault credentials of `env` (the spec's `secrets.vault` server is added as
/// the address of credentials whose variable is unset). Errors only when the file cannot be
/// read at all; everything else is a check in the report.
pub fn doctor(
    spec: &Path,
    loaded: &LoadedSpec,
    plan: &Plan,
    env: &IdentityEnv,
) -> Result<DoctorReport, SecretsError> {
    let file = secrets_file(spec);
    let shown = file.display().to_string();
    let mut checks = Vec::new();
    let spec_vault = loaded.lab.secrets.vault.as_ref();
    let mut env = env.clone();
    env.vault = env.vault.clone().with_lab(spec_vault.map(lab_vault));

    let identities = identity_file_check(&env, &mut checks);
    let identities = match identities {
        Some(ids) => ids,
        None => match Identities::vault_only(&env.vault) {
            Ok(ids) => ids,
            Err(e) => {
                checks.push(check(
                    CheckKind::File,
                    &shown,
                    CheckStatus::Failed,
                    format!("the Vault settings of the environment are unusable: {e}"),
                    Some("fix VAULT_ADDR/VAULT_TOKEN (or BAO_*) and run it again".into()),
                ));
                Identities::empty()
            }
        },
    };

    if !file.exists() {
        checks.push(check(
            CheckKind::File,
            &shown,
            CheckStatus::Failed,
            "the secrets file does not exist",
            Some("create it with `homelab secrets init`".into()),
        ));
        return Ok(DoctorReport { file, checks });
    }
    let text = std::fs::read_to_string(&file).map_err(|source| SecretsError::Read {
        path: file.clone(),
        source,
    })?;
    match check_keys(&text, &identities) {
        Err(e) => checks.push(check(
            CheckKind::File,
            &shown,
            CheckStatus::Failed,
            format!("not a SOPS file homelab can read: {e}"),
            Some(format!(
                "see what changed with `git diff -- {shown}` and restore it with `git checkout -- {shown}`"
            )),
        )),
        Ok(keys) => {
            let opened = keys
                .iter()
                .any(|k| matches!(k.outcome, KeyCheckOutcome::Opens { .. }));
            let file_keys: Vec<String> = keys.iter().filter(|k| k.vault).map(|k| k.key.clone()).collect();
            for k in keys {
                let kind = if k.vault {
                    CheckKind::VaultKey
                } else {
                    CheckKind::AgeRecipient
                };
                checks.push(match k.outcome {
                    KeyCheckOutcome::Opens { with } => check(
                        kind,
                        k.key,
                        CheckStatus::Ok,
                        format!("opens the file (with {with})"),
                        None,
                    ),
                    KeyCheckOutcome::NotChecked { reason } => {
                        let next = if k.vault {
                            "set VAULT_TOKEN (or an AppRole login) for its server to check it"
                        } else {
                            "its holder checks it with `homelab secrets doctor`"
                        };
                        check(kind, k.key, CheckStatus::Warning, format!("not checked: {reason}"), Some(next.into()))
                    }
                    KeyCheckOutcome::Fails { reason } => {
                        let next = if k.vault {
                            "make the server reachable and unsealed and the credential valid, or remove the key with `homelab secrets rekey --remove-vault URI`"
                        } else {
                            "re-encrypt the data key for it with `homelab secrets rekey --remove age1... --add age1...` from a key that opens the file"
                        };
                        check(kind, k.key, CheckStatus::Failed, reason, Some(next.into()))
                    }
                });
            }
            checks.push(if opened {
                check(CheckKind::File, &shown, CheckStatus::Ok, "opens and verifies (values and MAC)", None)
            } else {
                check(
                    CheckKind::File,
                    &shown,
                    CheckStatus::Failed,
                    "no key here opens the file",
                    Some("point SOPS_AGE_KEY_FILE at an identity of one of its recipients, or set VAULT_TOKEN for one of its transit keys".into()),
                )
            });
            if let Some(v) = spec_vault {
                let uri = v.key_uri();
                checks.push(if file_keys.contains(&uri) {
                    check(CheckKind::SpecVaultKey, &uri, CheckStatus::Ok, "the spec's transit key is a key of the file", None)
                } else {
                    check(
                        CheckKind::SpecVaultKey,
                        &uri,
                        CheckStatus::Failed,
                        "the spec names this transit key, but the file is not wrapped by it",
                        Some("add it with `homelab secrets rekey --add-vault`".into()),
                    )
                });
            }
        }
    }

    let names = check_names(spec, loaded, plan)?;
    for name in &names.missing_names {
        let detail = names
            .missing
            .iter()
            .find(|d| d.message.contains(&format!("`{name}`")))
            .map(|d| d.message.clone())
            .unwrap_or_else(|| "the spec references it, but the file lacks it".to_owned());
        checks.push(check(
            CheckKind::Secret,
            name,
            CheckStatus::Failed,
            detail,
            Some(format!("set it with `homelab secrets set {name}`")),
        ));
    }
    for name in &names.unset {
        checks.push(check(
            CheckKind::Secret,
            name,
            CheckStatus::Failed,
            "in the file without a value",
            Some(format!("set it with `homelab secrets set {name}`")),
        ));
    }
    for name in &names.not_generated {
        checks.push(check(
            CheckKind::Secret,
            name,
            CheckStatus::Failed,
            "the lab generates this secret, but the file lacks it",
            Some("add it with `homelab secrets init`".into()),
        ));
    }
    let needed = requirements(loaded, plan);
    let stored = peek_names(&file)?;
    let mut problems = names.missing_names.clone();
    problems.extend(names.unset.iter().cloned());
    problems.extend(names.not_generated.iter().cloned());
    for r in &needed {
        if !problems.contains(&r.name) && stored.iter().any(|s| s.name == r.name) {
            checks.push(check(
                CheckKind::Secret,
                &r.name,
                CheckStatus::Ok,
                format!("present and set (used by {})", r.used_by.join(", ")),
                None,
            ));
        }
    }
    let openbao_on = loaded.lab.services.openbao.is_some();
    for s in &stored {
        if needed.iter().any(|r| r.name == s.name) {
            continue;
        }
        // The server's unseal keys and root token: no component reads them, but the lab's
        // OpenBao cannot be unsealed without them.
        if is_openbao_secret(&s.name) && openbao_on {
            checks.push(check(
                CheckKind::Secret,
                &s.name,
                CheckStatus::Ok,
                "present (unseals services.openbao; written by `homelab secrets openbao-init`)",
                None,
            ));
        } else if is_openbao_secret(&s.name) {
            checks.push(check(
                CheckKind::UnusedValue,
                &s.name,
                CheckStatus::Warning,
                "an OpenBao unseal key or root token, but services.openbao is off",
                Some("keep it while that server still exists elsewhere; once it is gone for good, remove it with `homelab secrets edit`".into()),
            ));
        } else {
            checks.push(check(
                CheckKind::UnusedValue,
                &s.name,
                CheckStatus::Warning,
                "nothing in the lab uses this value",
                Some("remove it with `homelab secrets edit` if nothing else needs it (a value kept in git for nothing is one more to leak)".into()),
            ));
        }
    }
    Ok(DoctorReport { file, checks })
}

/// The identity file's mode, and the identities of the environment when they load.
fn identity_file_check(env: &IdentityEnv, checks: &mut Vec<Check>) -> Option<Identities> {
    let path = env.identity_file_path().ok();
    if let Some(path) = path.as_ref().filter(|p| p.exists()) {
        let shown = path.display().to_string();
        match std::fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.mode() & 0o7777;
                checks.push(if mode & 0o077 != 0 {
                    check(
                        CheckKind::IdentityFile,
                        &shown,
                        CheckStatus::Failed,
                        format!("mode {mode:04o}: others on this machine may read your age key"),
                        Some(format!("chmod 600 {shown}")),
                    )
                } else {
                    check(
                        CheckKind::IdentityFile,
                        &shown,
                        CheckStatus::Ok,
                        format!("mode {mode:04o}"),
                        None,
                    )
                });
            }
            Err(e) => checks.push(check(
                CheckKind::IdentityFile,
                &shown,
                CheckStatus::Failed,
                format!("cannot read its permissions ({e})"),
                None,
            )),
        }
    } else if env.sops_age_key.is_none() {
        checks.push(check(
            CheckKind::IdentityFile,
            path.map(|p| p.display().to_string()).unwrap_or_default(),
            CheckStatus::Warning,
            "no age identity here (no key file, SOPS_AGE_KEY unset): only Vault keys can be checked",
            Some("point SOPS_AGE_KEY_FILE at your age key to check its recipient".into()),
        ));
    }
    match Identities::from_env(env) {
        Ok(ids) => Some(ids),
        Err(SecretsError::NoIdentity { .. } | SecretsError::IdentityPermissions { .. }) => None,
        Err(e) => {
            checks.push(check(
                CheckKind::IdentityFile,
                env.identity_file_path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                CheckStatus::Failed,
                format!("the age identities do not load: {e}"),
                None,
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homelab_secrets::identity::create_identity_file;
    use homelab_secrets::{SecretRequirement, SecretsStore};
    use secrecy::SecretString;

    /// The minimal lab in `dir` with every secret it needs set, plus `extra` ones, and the
    /// environment whose identity file opens it.
    fn lab(dir: &Path, extra: &[&str]) -> (PathBuf, LoadedSpec, Plan, IdentityEnv) {
        lab_with(dir, homelab_spec::templates::MINIMAL, extra)
    }

    fn lab_with(
        dir: &Path,
        text: &str,
        extra: &[&str],
    ) -> (PathBuf, LoadedSpec, Plan, IdentityEnv) {
        let spec = dir.join("homelab.yaml");
        let loaded = homelab_spec::load_str("homelab.yaml", text).unwrap();
        let plan = homelab_plan::plan(&loaded.lab);
        let key = dir.join("age.key");
        let (_, recipient) = create_identity_file(&key).unwrap();
        let mut store = SecretsStore::create(&dir.join("secrets.sops.yaml"), &[recipient]).unwrap();
        for req in requirements(&loaded, &plan)
            .iter()
            .map(|r| r.name.clone())
            .chain(extra.iter().map(|s| s.to_string()))
        {
            store
                .generate_missing(&[SecretRequirement::user_provided(&req, "test")])
                .unwrap();
            store
                .set(&req, SecretString::from(format!("{req}-v")))
                .unwrap();
        }
        store.save().unwrap();
        let env = IdentityEnv {
            sops_age_key_file: Some(key),
            ..IdentityEnv::default()
        };
        (spec, loaded, plan, env)
    }

    #[test]
    fn a_lab_with_every_secret_set_is_healthy_and_an_unused_value_only_warns() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, loaded, plan, env) = lab(dir.path(), &["leftover"]);
        let report = doctor(&spec, &loaded, &plan, &env).unwrap();
        assert!(report.healthy(), "{report:#?}");
        let unused: Vec<&Check> = report
            .checks
            .iter()
            .filter(|c| c.kind == CheckKind::UnusedValue)
            .collect();
        assert_eq!(unused.len(), 1);
        assert_eq!(unused[0].subject, "leftover");
        assert_eq!(unused[0].status, CheckStatus::Warning);
        assert!(
            report
                .checks
                .iter()
                .any(|c| c.kind == CheckKind::AgeRecipient && c.status == CheckStatus::Ok)
        );
        assert!(
            !format!("{report:?}").contains("-v\""),
            "no value in the report"
        );
    }

    #[test]
    fn without_any_key_the_file_fails_and_the_names_are_still_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, loaded, plan, _) = lab(dir.path(), &[]);
        let env = IdentityEnv {
            home: Some(dir.path().join("no-home")),
            ..IdentityEnv::default()
        };
        let report = doctor(&spec, &loaded, &plan, &env).unwrap();
        assert!(!report.healthy());
        let file = report
            .checks
            .iter()
            .find(|c| c.kind == CheckKind::File)
            .unwrap();
        assert_eq!(file.status, CheckStatus::Failed);
        assert!(
            report
                .checks
                .iter()
                .any(|c| c.kind == CheckKind::Secret && c.status == CheckStatus::Ok)
        );
    }

    #[test]
    fn the_openbao_keys_are_used_while_services_openbao_is_on_and_unused_when_off() {
        let keys = [
            "openbao-unseal-key-1",
            "openbao-unseal-key-2",
            "openbao-root-token",
        ];
        let on = format!(
            "{}\nservices:\n  openbao: {{}}\n",
            homelab_spec::templates::MINIMAL
        );
        let dir = tempfile::tempdir().unwrap();
        let (spec, loaded, plan, env) = lab_with(dir.path(), &on, &keys);
        let report = doctor(&spec, &loaded, &plan, &env).unwrap();
        assert!(report.healthy(), "{report:#?}");
        for key in keys {
            let c = report.checks.iter().find(|c| c.subject == key).unwrap();
            assert_eq!(
                (c.kind, c.status),
                (CheckKind::Secret, CheckStatus::Ok),
                "{c:?}"
            );
            assert!(c.detail.contains("services.openbao"), "{c:?}");
        }
        assert_eq!(report.count(CheckStatus::Warning), 0, "{report:#?}");

        let dir = tempfile::tempdir().unwrap();
        let (spec, loaded, plan, env) = lab(dir.path(), &keys);
        let report = doctor(&spec, &loaded, &plan, &env).unwrap();
        assert!(report.healthy(), "a warning only: {report:#?}");
        for key in keys {
            let c = report.checks.iter().find(|c| c.subject == key).unwrap();
            assert_eq!(
                (c.kind, c.status),
                (CheckKind::UnusedValue, CheckStatus::Warning),
                "{c:?}"
            );
            assert!(c.detail.contains("services.openbao is off"), "{c:?}");
        }
    }
}
