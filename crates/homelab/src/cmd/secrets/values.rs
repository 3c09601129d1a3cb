//! `homelab secrets get | set | edit | rotate`: one secret's value in or out of the store.
//! Values come in through stdin or a hidden prompt and go out only through `get`'s stdout;
//! no message, log line or JSON document here ever holds one.

use std::io::{IsTerminal, Read};

use anyhow::Context;
use homelab_secrets::edit::{EditOptions, EditOutcome, edit_store, editor_from_env};
use homelab_secrets::generate::{argon2id_hash, htpasswd_line};
use homelab_secrets::store::{SetOutcome, secret_from_input, validate_name};
use homelab_secrets::{Error, Generator, SecretRequirement, SecretsStore};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use zeroize::Zeroizing;

use super::lab_requirements;
use crate::cli::Global;
use crate::cmd::shared::secrets::{LabFiles, fail, lab_identities, open_store};
use crate::exit;
use crate::output::Output;

/// The largest value `set` reads from stdin (a certificate bundle fits; a mistaken pipe of a
/// large file does not).
const MAX_VALUE_BYTES: usize = 1024 * 1024;

pub fn get(lab: &LabFiles, name: &str, reveal: bool, out: &Output) -> anyhow::Result<u8> {
    if std::io::stdout().is_terminal() && !reveal {
        return Err(exit::usage(format!(
            "refusing to print secret `{name}` to a terminal; pipe or redirect it (`homelab secrets get {name} | ...`), or pass --reveal to show it"
        )));
    }
    let store = open_store(lab, out)?;
    let value = store.get(name).map_err(fail)?;
    // Always exactly one newline after the value, even when the value ends with one, so
    // `get | set` gives back the same value.
    let line = Zeroizing::new(format!("{}\n", value.expose_secret()));
    out.raw(&line);
    Ok(exit::OK)
}

pub fn set(
    global: &Global,
    lab: &LabFiles,
    name: &str,
    force: bool,
    out: &Output,
) -> anyhow::Result<u8> {
    validate_name(name).map_err(fail)?;
    let requirements = lab_requirements(global, out)?;
    let needed: Vec<&str> = requirements.iter().map(|r| r.name.as_str()).collect();
    if !needed.contains(&name) {
        let listing = needed.join(", ");
        if !force {
            return Err(exit::usage(format!(
                "the lab does not use a secret named `{name}`; the secrets it needs are: {listing}. Check the spelling, or pass --force to store it anyway; nothing was changed"
            )));
        }
        out.warn(format!(
            "storing `{name}`, which the lab does not use (--force); the secrets it needs are: {listing}"
        ));
    }
    let mut store = open_store(lab, out)?;
    let value = read_value(name)?;
    let outcome = store.set(name, value.clone()).map_err(fail)?;
    let derived = update_derived(&mut store, &requirements, name, &value)?;
    store.save().map_err(fail)?;
    let reapply = users(
        &requirements,
        std::iter::once(name).chain(derived.iter().map(String::as_str)),
    );
    let file = lab.store.display().to_string();
    out.result(
        || {
            let mut t = format!(
                "{} `{name}` {} {file}",
                match outcome {
                    SetOutcome::Added => "added",
                    SetOutcome::Replaced => "set a new value for",
                },
                match outcome {
                    SetOutcome::Added => "to",
                    SetOutcome::Replaced => "in",
                }
            );
            if !derived.is_empty() {
                t.push_str(&format!(" (and updated {}, made from it)", derived.join(", ")));
            }
            t.push_str(&reapply_line(&reapply));
            t
        },
        &json!({
            "name": name,
            "outcome": match outcome { SetOutcome::Added => "added", SetOutcome::Replaced => "replaced" },
            "derived": derived,
            "reapply": reapply,
            "file": file,
        }),
    );
    Ok(exit::OK)
}

/// Recomputes the secrets made from `name` (htpasswd lines and argon2id hashes from their
/// password).
fn update_derived(
    store: &mut SecretsStore,
    requirements: &[SecretRequirement],
    name: &str,
    value: &SecretString,
) -> anyhow::Result<Vec<String>> {
    let mut derived = Vec::new();
    for req in requirements {
        if let Generator::BcryptHtpasswd {
            user,
            password_from,
        } = &req.generator
            && password_from == name
        {
            let line = htpasswd_line(user, value).map_err(fail)?;
            store.set(&req.name, line).map_err(fail)?;
            derived.push(req.name.clone());
        }
        if let Generator::Argon2idHash { password_from } = &req.generator
            && password_from == name
        {
            store
                .set(&req.name, argon2id_hash(value).map_err(fail)?)
                .map_err(fail)?;
            derived.push(req.name.clone());
        }
    }
    Ok(derived)
}

/// The components that use any of `names`, sorted and once each.
fn users<'a>(
    requirements: &[SecretRequirement],
    names: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    let names: Vec<&str> = names.collect();
    let mut users: Vec<String> = requirements
        .iter()
        .filter(|r| names.contains(&r.name.as_str()))
        .flat_map(|r| r.used_by.iter().cloned())
        .collect();
    users.sort();
    users.dedup();
    users
}

fn reapply_line(components: &[String]) -> String {
    if components.is_empty() {
        "\nno component of the lab uses it".to_string()
    } else {
        format!(
            "\nnext: re-apply so the new value is used: `homelab apply` (components: {})",
            components.join(", ")
        )
    }
}

/// The value from stdin when it is piped, else from a hidden prompt typed twice.
fn read_value(name: &str) -> anyhow::Result<SecretString> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = Zeroizing::new(
            rpassword::prompt_password(format!("Value for {name} (typing is hidden): "))
                .context("cannot read the value from the terminal; pipe it to stdin instead")?,
        );
        if first.is_empty() {
            return Err(fail(Error::EmptyValue {
                name: name.to_owned(),
            }));
        }
        let again = Zeroizing::new(
            rpassword::prompt_password("Type it again: ")
                .context("cannot read the value from the terminal; pipe it to stdin instead")?,
        );
        if *first != *again {
            return Err(exit::usage(
                "the two values differ; nothing was changed. Run the command again",
            ));
        }
        return Ok(SecretString::from(first.as_str().to_owned()));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    stdin
        .lock()
        .take(MAX_VALUE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .context("cannot read the value from stdin")?;
    if bytes.len() > MAX_VALUE_BYTES {
        return Err(exit::usage(format!(
            "the value on stdin is larger than {} KiB; nothing was changed",
            MAX_VALUE_BYTES / 1024
        )));
    }
    let text = String::from_utf8(std::mem::take(&mut *bytes)).map_err(|e| {
        // Wipe the rejected bytes too.
        drop(Zeroizing::new(e.into_bytes()));
        exit::usage(
            "the value on stdin is not UTF-8 text; store binary data base64-encoded. Nothing was changed",
        )
    })?;
    if text.is_empty() {
        return Err(fail(Error::EmptyValue {
            name: name.to_owned(),
        }));
    }
    Ok(secret_from_input(text))
}

pub fn rotate(global: &Global, lab: &LabFiles, name: &str, out: &Output) -> anyhow::Result<u8> {
    // Some values live on in a database or in etcd: a new value there must be changed by hand
    // first, or re-applying would lock the lab out of its own data.
    let loaded = crate::cmd::shared::spec::load_valid(&global.file, out)?;
    let plan = homelab_plan::plan(&loaded.lab);
    if let Some(how) = plan
        .secrets
        .iter()
        .find(|n| n.name == name)
        .and_then(|n| n.manual_rotation.as_ref())
    {
        return Err(exit::usage(format!(
            "`{name}` cannot be rotated by re-applying: {how}. Nothing was changed"
        )));
    }
    let requirements = lab_requirements(global, out)?;
    let mut store = open_store(lab, out)?;
    let report = store.rotate(name, &requirements).map_err(fail)?;
    store.save().map_err(fail)?;
    let file = lab.store.display().to_string();
    out.result(
        || {
            let mut t = format!("rotated {} in {file}", report.rotated.join(", "));
            t.push_str(&reapply_line(&report.reapply));
            t
        },
        &json!({
            "rotated": report.rotated,
            "reapply": report.reapply,
            "next": if report.reapply.is_empty() { None } else { Some("homelab apply") },
            "file": file,
        }),
    );
    Ok(exit::OK)
}

pub fn edit(lab: &LabFiles, out: &Output) -> anyhow::Result<u8> {
    if !lab.store.exists() {
        return Err(fail(Error::StoreMissing {
            path: lab.store.clone(),
        }));
    }
    let ids = lab_identities(lab, out)?;
    let editor = editor_from_env();
    out.detail(format!("editing a decrypted copy with `{editor}`"));
    let outcome = edit_store(&lab.store, &ids, &EditOptions::new(editor)).map_err(fail)?;
    let file = lab.store.display().to_string();
    out.result(
        || match outcome {
            EditOutcome::Saved => format!(
                "saved {file} (re-encrypted); `homelab validate` checks it still holds what the lab needs"
            ),
            EditOutcome::Unchanged => format!("no changes; {file} was not rewritten"),
        },
        &json!({
            "file": file,
            "saved": outcome == EditOutcome::Saved,
        }),
    );
    Ok(exit::OK)
}
