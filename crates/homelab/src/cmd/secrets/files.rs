//! `homelab secrets rekey | decrypt | encrypt`: whole SOPS files, as the `sops` CLI handles
//! them. `decrypt` prints plaintext to stdout because that is what it is for; nothing else
//! here prints a value.

use homelab_secrets::sops_config::encrypt_options_for;
use homelab_secrets::{
    EncryptOptions, Error, Recipient, decrypt_file, encrypt_file, encrypt_file_in_place, rekey_lab,
};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::cmd::shared::secrets::{LabFiles, fail, identities};
use crate::exit::{self, Exit};
use crate::output::Output;

fn recipients(values: &[String]) -> anyhow::Result<Vec<Recipient>> {
    values
        .iter()
        .map(|v| v.parse::<Recipient>().map_err(fail))
        .collect()
}

pub fn rekey(
    lab: &LabFiles,
    add: &[String],
    remove: &[String],
    out: &Output,
) -> anyhow::Result<u8> {
    if add.is_empty() && remove.is_empty() {
        return Err(exit::usage(
            "say what to change: `--add age1...` and/or `--remove age1...` (repeat for more)",
        ));
    }
    let add = recipients(add)?;
    let remove = recipients(remove)?;
    if !lab.store.exists() {
        return Err(fail(Error::StoreMissing {
            path: lab.store.clone(),
        }));
    }
    let ids = identities(out)?;
    let report = rekey_lab(&lab.root, &ids, &add, &remove).map_err(fail)?;
    let file = lab.store.display().to_string();
    out.result(
        || {
            if !report.changed() {
                return format!(
                    "nothing to change: {file} is already encrypted to {}",
                    report.recipients.join(", ")
                );
            }
            let mut t = format!("re-encrypted the data key of {file}");
            for r in &report.added {
                t.push_str(&format!("\n  added:   {r}"));
            }
            for r in &report.removed {
                t.push_str(&format!("\n  removed: {r}"));
            }
            t.push_str(&format!("\nrecipients now: {}", report.recipients.join(", ")));
            if !report.removed.is_empty() {
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
        }),
    );
    Ok(exit::OK)
}

pub fn decrypt(file: &std::path::Path, out: &Output) -> anyhow::Result<u8> {
    let ids = identities(out)?;
    let plain = decrypt_file(file, &ids).map_err(fail)?;
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
