//! `homelab secrets rekey | decrypt | encrypt`: whole SOPS files, as the `sops` CLI handles
//! them (age recipients and Vault/OpenBao transit keys). `decrypt` prints plaintext to stdout because that is what it is for; nothing else
//! here prints a value.

use homelab_secrets::sops_config::encrypt_options_for;
use homelab_secrets::{
    EncryptOptions, Error, KeyChanges, Recipient, VaultKey, encrypt_file, encrypt_file_in_place,
    open_file, rekey_lab_keys,
};
use secrecy::ExposeSecret;
use serde_json::json;

use super::RekeyArgs;
use crate::cmd::shared::secrets::{
    LabFiles, fail, identities, lab_identities, opened_with, spec_vault, vault_key,
};
use crate::exit::{self, Exit};
use crate::output::Output;

fn recipients(values: &[String]) -> anyhow::Result<Vec<Recipient>> {
    values
        .iter()
        .map(|v| v.parse::<Recipient>().map_err(fail))
        .collect()
}

/// `--add-vault`/`--remove-vault` values: a transit key URI, or "" for the spec's key.
fn vault_keys(
    values: &[String],
    spec_key: Option<&VaultKey>,
    flag: &str,
) -> anyhow::Result<Vec<VaultKey>> {
    values
        .iter()
        .map(|v| {
            if v.trim().is_empty() {
                spec_key.cloned().ok_or_else(|| {
                    exit::usage(format!(
                        "`{flag}` without a key uses the spec's `secrets.vault`, which the spec does not have; add `secrets: {{vault: {{address: https://bao.example.com:8200, key: homelab}}}}` to it, or pass the key as `{flag} https://bao.example.com:8200/v1/transit/keys/homelab`; nothing was changed"
                    ))
                })
            } else {
                v.parse::<VaultKey>().map_err(|e| {
                    exit::usage(format!("{e}; nothing was changed"))
                })
            }
        })
        .collect()
}

pub fn rekey(lab: &LabFiles, args: &RekeyArgs, out: &Output) -> anyhow::Result<u8> {
    if args.add.is_empty()
        && args.remove.is_empty()
        && args.add_vault.is_empty()
        && args.remove_vault.is_empty()
    {
        return Err(exit::usage(
            "say what to change: `--add age1...`, `--remove age1...`, `--add-vault [URI]` and/or `--remove-vault [URI]` (repeat for more)",
        ));
    }
    let spec = spec_vault(&lab.spec, out);
    let spec_key = spec.as_ref().map(vault_key).transpose()?;
    let changes = KeyChanges {
        add: recipients(&args.add)?,
        remove: recipients(&args.remove)?,
        add_vault: vault_keys(&args.add_vault, spec_key.as_ref(), "--add-vault")?,
        remove_vault: vault_keys(&args.remove_vault, spec_key.as_ref(), "--remove-vault")?,
    };
    if !lab.store.exists() {
        return Err(fail(Error::StoreMissing {
            path: lab.store.clone(),
        }));
    }
    let ids = identities(spec.as_ref(), out)?;
    let report = rekey_lab_keys(&lab.root, &ids, &changes).map_err(fail)?;
    opened_with(&lab.store, report.opened_with.as_ref(), out);
    let file = lab.store.display().to_string();
    out.result(
        || {
            let keys_now = || {
                let mut keys = report.recipients.clone();
                keys.extend(report.vault_keys.iter().cloned());
                keys.join(", ")
            };
            if !report.changed() {
                return format!("nothing to change: {file} is already encrypted to {}", keys_now());
            }
            let mut t = format!("re-encrypted the data key of {file}");
            for r in &report.added {
                t.push_str(&format!("\n  added:   {r}"));
            }
            for k in &report.added_vault {
                t.push_str(&format!("\n  added:   {k} (Vault transit)"));
            }
            for r in &report.removed {
                t.push_str(&format!("\n  removed: {r}"));
            }
            for k in &report.removed_vault {
                t.push_str(&format!("\n  removed: {k} (Vault transit)"));
            }
            t.push_str(&format!("\nrecipients now: {}", report.recipients.join(", ")));
            if !report.vault_keys.is_empty() {
                t.push_str(&format!("\nVault transit keys now: {}", report.vault_keys.join(", ")));
            }
            if !report.removed.is_empty() || !report.removed_vault.is_empty() {
                t.push_str("\nnote: a removed key could read the values before; rotate the secrets it may have seen (`homelab secrets rotate NAME`)");
            }
            t.push_str("\nnext: commit the file, and render again (`homelab render --flavor flux`) so rendered Secrets use the same recipients");
            t
        },
        &json!({
            "file": file,
            "changed": report.changed(),
            "added": report.added,
            "removed": report.removed,
            "recipients": report.recipients,
            "addedVault": report.added_vault,
            "removedVault": report.removed_vault,
            "vaultKeys": report.vault_keys,
        }),
    );
    Ok(exit::OK)
}

pub fn decrypt(lab: &LabFiles, file: &std::path::Path, out: &Output) -> anyhow::Result<u8> {
    let ids = lab_identities(lab, out)?;
    let doc = open_file(file, &ids).map_err(fail)?;
    opened_with(file, doc.opened_with(), out);
    let plain = doc.to_plain_yaml();
    out.raw(plain.expose_secret());
    Ok(exit::OK)
}

pub fn encrypt(
    file: &std::path::Path,
    in_place: bool,
    age: &[String],
    out: &Output,
) -> anyhow::Result<u8> {
    let options = if age.is_empty() {
        encrypt_options_for(file).map_err(|e| match e {
            Error::SopsConfig { .. } => Exit {
                code: exit::FAILURE,
                message: format!(
                    "{e}; add a creation rule for it to .sops.yaml, or pass `--age age1...`; nothing was changed"
                ),
                help: None,
            }
            .into(),
            other => fail(other),
        })?
    } else {
        EncryptOptions::new(recipients(age)?)
    };
    let to: Vec<String> = options.recipients.iter().map(ToString::to_string).collect();
    out.detail(format!(
        "encrypting {} to {}",
        file.display(),
        to.join(", ")
    ));
    if in_place {
        encrypt_file_in_place(file, &options).map_err(fail)?;
        out.result(
            || {
                format!(
                    "encrypted {} in place (to {})",
                    file.display(),
                    to.join(", ")
                )
            },
            &json!({ "file": file.display().to_string(), "recipients": to, "inPlace": true }),
        );
    } else {
        let encrypted = encrypt_file(file, &options).map_err(fail)?;
        out.raw(&encrypted);
    }
    Ok(exit::OK)
}
