//! `homelab kubeconfig`: fetches the admin kubeconfig from the first server, points it at
//! the chosen address and names it after the lab, writes it with mode 0600 and merges it
//! into an existing kubeconfig without touching other entries (atomic replace). Writes
//! nothing when the existing file cannot be understood.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::apply::{first_server_index, preflight};
use crate::common::Connect;
use crate::error::{HostErrorKind, NodesError};
use crate::event::EventSink;
use crate::inventory::{Inventory, api_url_for};
use crate::k3s_config::KUBECONFIG_PATH;
use crate::phase::{OnFailure, Run};
use crate::yaml;

/// Options of [`kubeconfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigOptions {
    /// Address clients use for the API server (LAN IP, DNS or Tailscale name); it must be
    /// covered by the server certificate (`tls-san`). `None`: the inventory's API address.
    pub server: Option<String>,
    /// Where to write the lab's own kubeconfig (mode 0600).
    pub write_to: PathBuf,
    /// A kubeconfig to merge the lab's cluster, user and context into (e.g. `~/.kube/config`).
    pub merge_into: Option<PathBuf>,
    /// Make the lab's context the current one in the merged file (it becomes current anyway
    /// when the file had none).
    pub switch_context: bool,
}

/// What [`kubeconfig`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigOutcome {
    /// The lab's kubeconfig file.
    pub written: PathBuf,
    /// The merged file, when merging was asked for.
    pub merged_into: Option<PathBuf>,
    /// The cluster, user and context name (the lab's name).
    pub context: String,
    /// The API server URL written into it.
    pub server: String,
    /// The merged file already had entries with the lab's name, which were replaced.
    pub replaced_existing: bool,
    /// The merged file's current context afterwards.
    pub current_context: Option<String>,
}

fn entries<'v>(doc: &'v Value, list: &str) -> &'v [Value] {
    doc.get(list)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn named<'v>(doc: &'v Value, list: &str, name: &str) -> Option<&'v Value> {
    entries(doc, list)
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
}

/// The lab's kubeconfig, made from the one k3s wrote: one cluster, user and context, all
/// named `lab`, with the server at `server_url`.
pub(crate) fn rewrite(fetched: &str, lab: &str, server_url: &str) -> Result<Value, String> {
    let doc = yaml::parse(fetched)?;
    let ctx_name = doc
        .get("current-context")
        .and_then(Value::as_str)
        .ok_or("it has no current-context")?;
    let context = named(&doc, "contexts", ctx_name)
        .ok_or_else(|| format!("context {ctx_name:?} is missing"))?;
    let cluster_name = context["context"]["cluster"]
        .as_str()
        .ok_or("its context names no cluster")?;
    let user_name = context["context"]["user"]
        .as_str()
        .ok_or("its context names no user")?;
    let mut cluster = named(&doc, "clusters", cluster_name)
        .ok_or_else(|| format!("cluster {cluster_name:?} is missing"))?["cluster"]
        .clone();
    let user = named(&doc, "users", user_name)
        .ok_or_else(|| format!("user {user_name:?} is missing"))?["user"]
        .clone();
    if !cluster.is_object() || !user.is_object() {
        return Err("its cluster or user entry is empty".into());
    }
    cluster["server"] = Value::String(server_url.to_string());
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"cluster": cluster, "name": lab}],
        "contexts": [{"context": {"cluster": lab, "user": lab}, "name": lab}],
        "current-context": lab,
        "preferences": {},
        "users": [{"name": lab, "user": user}],
    }))
}

/// Merges the lab's entries into `existing` (a kubeconfig's text, or `None`), replacing
/// entries of the same name in place and leaving every other entry as it was. Returns the
/// merged document and whether something was replaced.
pub(crate) fn merge(
    existing: Option<&str>,
    lab_cfg: &Value,
    lab: &str,
    switch: bool,
) -> Result<(Value, bool), String> {
    let mut doc = match existing.map(yaml::parse).transpose()? {
        None | Some(Value::Null) => {
            json!({"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": [], "preferences": {}})
        }
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err("it is not a mapping".into()),
    };
    if let Some(kind) = doc.get("kind").and_then(Value::as_str)
        && kind != "Config"
    {
        return Err(format!("its kind is {kind:?}, not Config"));
    }
    let mut replaced = false;
    let obj: &mut Map<String, Value> = doc.as_object_mut().expect("checked above");
    for list in ["clusters", "users", "contexts"] {
        let ours = lab_cfg[list][0].clone();
        let entry = obj
            .entry(list.to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if entry.is_null() {
            *entry = Value::Array(Vec::new());
        }
        let items = entry
            .as_array_mut()
            .ok_or_else(|| format!("its {list} is not a list"))?;
        match items
            .iter()
            .position(|e| e.get("name").and_then(Value::as_str) == Some(lab))
        {
            Some(i) => {
                items[i] = ours;
                replaced = true;
            }
            None => items.push(ours),
        }
    }
    let has_current = obj
        .get("current-context")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if switch || !has_current {
        obj.insert("current-context".into(), Value::String(lab.into()));
    }
    Ok((doc, replaced))
}

/// Writes `contents` to `path` with mode 0600 by replacing it atomically (temporary file
/// in the same directory, fsync, rename); follows a symlink to its target.
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), NodesError> {
    use std::os::unix::fs::PermissionsExt;
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(path).map_err(|e| NodesError::local_io("resolve", path, e))?
        }
        _ => path.to_path_buf(),
    };
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| NodesError::local_io("create directory", dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".homelab-kubeconfig")
        .tempfile_in(dir)
        .map_err(|e| NodesError::local_io("write", dir, e))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| NodesError::local_io("chmod", tmp.path(), e))?;
    tmp.write_all(contents.as_bytes())
        .map_err(|e| NodesError::local_io("write", tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| NodesError::local_io("sync", tmp.path(), e))?;
    tmp.persist(&target)
        .map_err(|e| NodesError::local_io("replace", &target, e.error))?;
    Ok(())
}

/// Fetches the admin kubeconfig from the first server and writes (and merges) it.
pub async fn kubeconfig(
    inv: &Inventory,
    opts: &KubeconfigOptions,
    events: &dyn EventSink,
) -> Result<KubeconfigOutcome, NodesError> {
    preflight(inv)?;
    let address = opts
        .server
        .clone()
        .or_else(|| inv.api_address().map(str::to_string))
        .expect("validated inventory has a server");
    if address.trim().is_empty() || address.contains(['/', ' ']) {
        return Err(NodesError::Refused {
            operation: "write the kubeconfig".into(),
            reason: format!(
                "{address:?} is not a host name or IP address (give it without https:// or a port)"
            ),
        });
    }
    let server_url = api_url_for(&address);
    // Read the file we would merge into first: a broken one stops us before anything is written.
    let existing = match &opts.merge_into {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(NodesError::local_io("read", p, e)),
        },
        None => None,
    };
    let control = first_server_index(inv);
    let mut run = Run::new(inv, events, false, control);
    let c = control.expect("validated inventory has a server");
    run.execute(&[&Connect {
        hosts: vec![c],
        on_failure: OnFailure::StopRun,
        prefetch_facts: None,
    }])
    .await;
    let fetched = match run.remote(c) {
        Ok(remote) => {
            remote
                .read_file(KUBECONFIG_PATH, inv.timeouts.command)
                .await
        }
        Err(_) => Err(crate::common::connect_error(&run, c)),
    };
    run.close().await;
    let host = &inv.hosts[c].name;
    let fetched = fetched?.ok_or_else(|| {
        NodesError::Host(crate::error::HostError::new(
            host,
            HostErrorKind::CommandFailed,
            format!("{KUBECONFIG_PATH} does not exist: k3s is not installed or has not started on {host}; run `homelab nodes apply` first"),
        ))
    })?;
    let lab_cfg = rewrite(&fetched, &inv.lab_name, &server_url).map_err(|reason| {
        NodesError::BadKubeconfig {
            what: format!("{KUBECONFIG_PATH} on {host}"),
            reason,
        }
    })?;
    let merged = match &opts.merge_into {
        Some(p) => Some(
            merge(
                existing.as_deref(),
                &lab_cfg,
                &inv.lab_name,
                opts.switch_context,
            )
            .map_err(|reason| NodesError::BadKubeconfig {
                what: p.display().to_string(),
                reason: format!("{reason}; it was left unchanged"),
            })?,
        ),
        None => None,
    };
    write_private(&opts.write_to, &yaml::to_string(&lab_cfg))?;
    let mut outcome = KubeconfigOutcome {
        written: opts.write_to.clone(),
        merged_into: None,
        context: inv.lab_name.clone(),
        server: server_url,
        replaced_existing: false,
        current_context: None,
    };
    if let (Some(path), Some((doc, replaced))) = (&opts.merge_into, merged) {
        write_private(path, &yaml::to_string(&doc))?;
        outcome.merged_into = Some(path.clone());
        outcome.replaced_existing = replaced;
        outcome.current_context = doc
            .get("current-context")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3S_YAML: &str = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: https://127.0.0.1:6443\n  name: default\n\
contexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\nkind: Config\npreferences: {}\n\
users:\n- name: default\n  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n";

    const MINE: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: work\n  cluster:\n    server: https://work.example:443\n\
- name: lab\n  cluster:\n    server: https://old:6443\ncontexts:\n- name: work\n  context:\n    cluster: work\n    user: work\n    namespace: team\n\
- name: lab\n  context:\n    cluster: lab\n    user: lab\ncurrent-context: work\nusers:\n- name: work\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n      args: [eks, get-token]\n\
- name: lab\n  user:\n    token: old\n";

    #[test]
    fn rewrite_renames_and_points_at_the_address() {
        let cfg = rewrite(K3S_YAML, "homelab", "https://100.64.0.5:6443").unwrap();
        assert_eq!(cfg["clusters"][0]["name"], "homelab");
        assert_eq!(
            cfg["clusters"][0]["cluster"]["server"],
            "https://100.64.0.5:6443"
        );
        assert_eq!(
            cfg["clusters"][0]["cluster"]["certificate-authority-data"],
            "Q0E="
        );
        assert_eq!(cfg["users"][0]["user"]["client-key-data"], "S0VZ");
        assert_eq!(
            cfg["contexts"][0]["context"],
            json!({"cluster": "homelab", "user": "homelab"})
        );
        assert_eq!(cfg["current-context"], "homelab");
        assert!(
            rewrite("kind: Config\n", "lab", "https://x:6443")
                .unwrap_err()
                .contains("current-context")
        );
    }

    #[test]
    fn merge_replaces_the_lab_and_keeps_everything_else() {
        let ours = rewrite(K3S_YAML, "lab", "https://10.0.0.1:6443").unwrap();
        let before = yaml::parse(MINE).unwrap();
        let (merged, replaced) = merge(Some(MINE), &ours, "lab", false).unwrap();
        assert!(replaced);
        assert_eq!(merged["current-context"], "work");
        assert_eq!(
            named(&merged, "clusters", "work"),
            named(&before, "clusters", "work")
        );
        assert_eq!(
            named(&merged, "contexts", "work"),
            named(&before, "contexts", "work")
        );
        assert_eq!(
            named(&merged, "users", "work"),
            named(&before, "users", "work")
        );
        assert_eq!(
            named(&merged, "clusters", "lab").unwrap()["cluster"]["server"],
            "https://10.0.0.1:6443"
        );
        assert_eq!(entries(&merged, "users").len(), 2);
        let (switched, _) = merge(Some(MINE), &ours, "lab", true).unwrap();
        assert_eq!(switched["current-context"], "lab");
    }

    #[test]
    fn merge_into_nothing_makes_a_config() {
        let ours = rewrite(K3S_YAML, "lab", "https://10.0.0.1:6443").unwrap();
        let (merged, replaced) = merge(None, &ours, "lab", false).unwrap();
        assert!(!replaced);
        assert_eq!(merged["current-context"], "lab");
        assert_eq!(entries(&merged, "contexts").len(), 1);
    }

    #[test]
    fn merge_refuses_what_is_not_a_kubeconfig() {
        let ours = rewrite(K3S_YAML, "lab", "https://10.0.0.1:6443").unwrap();
        assert!(
            merge(Some("- a\n- b\n"), &ours, "lab", false)
                .unwrap_err()
                .contains("not a mapping")
        );
        assert!(
            merge(Some("kind: Pod\n"), &ours, "lab", false)
                .unwrap_err()
                .contains("Pod")
        );
        assert!(
            merge(Some("clusters: {a: 1}\n"), &ours, "lab", false)
                .unwrap_err()
                .contains("clusters is not a list")
        );
        assert!(merge(Some("a: [\n"), &ours, "lab", false).is_err());
    }

    #[test]
    fn private_writes_are_0600_and_replace_through_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real-config");
        std::fs::write(&real, "old").unwrap();
        let link = d.path().join("config");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_private(&link, "new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        assert_eq!(
            std::fs::metadata(&real).unwrap().permissions().mode() & 0o777,
            0o600
        );
        write_private(&d.path().join("sub/dir/file"), "x").unwrap();
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            3,
            "no temporary file left behind"
        );
    }
}
