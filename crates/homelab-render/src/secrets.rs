//! Kubernetes Secrets of the plan: the plaintext manifest the flux flavor encrypts, and the
//! `kubectl` commands that create a Secret without this tool. Pure; values stay in
//! `SecretString`s and never reach a rendered text.

use homelab_plan::{SecretObject, SecretSource};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use zeroize::Zeroize;

use crate::{RenderError, SecretValues};

/// The file a Secret is written to in the flux flavor. Not `secrets.sops.yaml`, which the
/// lab's `.sops.yaml` reserves for the secrets store (every value encrypted).
pub(crate) fn sops_file_name(secret: &SecretObject) -> String {
    format!("secret-{}.sops.yaml", secret.name)
}

/// `Secret/<namespace>/<name>`.
pub(crate) fn object_id(secret: &SecretObject) -> String {
    format!("Secret/{}/{}", secret.namespace, secret.name)
}

/// The Secret as a plaintext manifest with its values filled in, kept secret.
pub(crate) fn manifest(
    secret: &SecretObject,
    values: &dyn SecretValues,
) -> Result<SecretString, RenderError> {
    let mut manifest = secret_manifest(secret, values)?;
    let text = homelab_spec::emit::to_yaml(&manifest);
    scrub_manifest(&mut manifest);
    Ok(SecretString::from(text))
}

/// The Secret manifest with its values filled in from `values` (in `stringData`), for a
/// caller that sends it straight to the cluster (`homelab apply`). The values are plaintext:
/// the caller must not print it and should [`scrub_manifest`] it when done.
pub fn secret_manifest(
    secret: &SecretObject,
    values: &dyn SecretValues,
) -> Result<Value, RenderError> {
    let fail = |key: &str, name: &str, reason: String| RenderError::SecretValue {
        object: object_id(secret),
        key: key.to_string(),
        secret: name.to_string(),
        reason,
    };
    let mut data = Map::new();
    for (key, source) in &secret.data {
        let value = match source {
            SecretSource::Literal(v) => v.clone(),
            SecretSource::Secret(name) => values
                .secret(name)
                .map_err(|r| fail(key, name, r))?
                .expose_secret()
                .to_string(),
            SecretSource::Template(template) => {
                let mut text = template.clone();
                for name in source.secret_names() {
                    let v = values.secret(&name).map_err(|r| fail(key, &name, r))?;
                    text = text.replace(&format!("${{secret:{name}}}"), v.expose_secret());
                }
                text
            }
        };
        data.insert(key.clone(), Value::String(value));
    }
    let labels: Map<String, Value> = secret
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret.name, "namespace": secret.namespace, "labels": labels},
        "type": "Opaque",
        "stringData": data,
    }))
}

/// Overwrites the values' memory before the manifest is dropped.
pub fn scrub_manifest(manifest: &mut Value) {
    if let Some(Value::Object(data)) = manifest.get_mut("stringData") {
        for (_, v) in data.iter_mut() {
            if let Value::String(s) = v {
                s.zeroize();
            }
        }
    }
}

/// What every `sops -d` of the tree's commands is preceded by: sops does not look for the
/// key where `homelab secrets init` puts it (ADR 0011).
pub(crate) const SOPS_KEY_ENV: &str = "SOPS_AGE_KEY_FILE=$HOME/.config/homelab/age.key";

/// A path as one shell word (single-quoted unless it is plain).
pub(crate) fn shell_word(path: &str) -> String {
    if !path.is_empty()
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        path.to_string()
    } else {
        format!("'{}'", path.replace('\'', "'\\''"))
    }
}

/// The command that prints secret `name` of the lab's encrypted secrets file `file`.
pub(crate) fn sops_extract(name: &str, file: &str) -> String {
    format!(
        "{SOPS_KEY_ENV} sops -d --extract '[\"{name}\"]' {}",
        shell_word(file)
    )
}

/// The shell expression that reads secret `name` from the lab's encrypted secrets file.
fn from_store(name: &str, file: &str) -> String {
    format!("$({})", sops_extract(name, file))
}

/// Shell commands that create (or update) the Secret with `kubectl` and the `sops` CLI, run
/// from the tree's root, with `file` the secrets file relative to it.
pub(crate) fn kubectl_commands(secret: &SecretObject, file: &str) -> String {
    let mut cmd = format!(
        "kubectl -n {} create secret generic {} \\\n",
        secret.namespace, secret.name
    );
    for (key, source) in &secret.data {
        let value = match source {
            SecretSource::Literal(v) => format!("'{}'", v.replace('\'', "'\\''")),
            SecretSource::Secret(name) => format!("\"{}\"", from_store(name, file)),
            SecretSource::Template(t) => {
                let mut text = t.replace('"', "\\\"");
                for name in source.secret_names() {
                    text = text.replace(&format!("${{secret:{name}}}"), &from_store(&name, file));
                }
                format!("\"{text}\"")
            }
        };
        cmd.push_str(&format!("  --from-literal={key}={value} \\\n"));
    }
    cmd.push_str("  --dry-run=client -o yaml | kubectl apply -f -\n");
    let labels: Vec<String> = secret
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !labels.is_empty() {
        cmd.push_str(&format!(
            "kubectl -n {} label secret {} --overwrite {}\n",
            secret.namespace,
            secret.name,
            labels.join(" ")
        ));
    }
    cmd
}
