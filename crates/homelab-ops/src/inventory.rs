//! Builds the node engine's inventory from the validated spec, its plan and the secrets file
//! (cluster token, sudo password) and the caller's SSH and install choices. Reads local files
//! only; never contacts a host, never prints, and never puts a secret in an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use homelab_nodes::{
    Host, InstallSource, Inventory, Role, SshOptions, SshTarget, Taint, TaintEffect,
};
use homelab_plan::Plan;
use homelab_secrets::{Error as SecretsError, Identities, IdentityEnv, SecretsStore};
use homelab_spec::LoadedSpec;
use homelab_spec::lab::{Lab, NodeRole, OsUpdateMode};
use secrecy::{ExposeSecret as _, SecretString};

use crate::secrets::{lab_dir, secrets_file};

/// The secret holding the cluster join token.
pub const TOKEN_SECRET: &str = "k3s-token";

/// How long a host's SSH connection stays open after a node command, for the next one to
/// reuse (ADR 0107): long enough for a quick succession of commands, short enough that
/// nothing lingers.
const KEEP_SSH_CONNECTIONS: std::time::Duration = std::time::Duration::from_secs(60);

/// How to reach the hosts and where k3s comes from: what the caller chooses beyond the spec.
#[derive(Debug, Clone, Default)]
pub struct NodeAccess {
    /// An SSH client configuration file to use instead of `~/.ssh/config` (`ssh -F`).
    pub ssh_config: Option<PathBuf>,
    /// Where the hosts get k3s from; `None` keeps the engine's default (online, get.k3s.io).
    pub install: Option<InstallSource>,
}

/// Why the inventory cannot be built. Names files, secrets and nodes, never a value.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The plan lacks a node of the spec (a defect of the plan, not of the spec).
    #[error("the plan has no entry for node {node}")]
    NodeNotPlanned { node: String },
    /// The secrets file does not exist.
    #[error(
        "{} does not exist, and {why} is kept there; run `homelab secrets init` to create it (it generates the cluster token)",
        path.display()
    )]
    SecretsFileMissing { path: PathBuf, why: String },
    /// No age identity to open the secrets file with.
    #[error("reading {why} from {} needs your age key", path.display())]
    AgeKey {
        path: PathBuf,
        why: String,
        #[source]
        source: Box<SecretsError>,
    },
    /// The secrets file could not be opened (decrypted and verified).
    #[error(transparent)]
    OpenSecrets(Box<SecretsError>),
    /// A secret the nodes need is in the file without a value.
    #[error("{}", unset_message(what, name, path))]
    SecretUnset {
        name: String,
        what: String,
        path: PathBuf,
    },
    /// A secret the nodes need is not in the file at all.
    #[error("{}", unknown_message(what, name, path))]
    SecretNotInFile {
        name: String,
        what: String,
        path: PathBuf,
    },
    /// Reading a secret from the opened file failed.
    #[error(transparent)]
    ReadSecret(Box<SecretsError>),
}

fn unset_message(what: &str, name: &str, path: &Path) -> String {
    if name == TOKEN_SECRET {
        format!(
            "{what} (`{name}`) in {} has no value; run `homelab secrets init` to generate it, or `homelab secrets set {name}` to give the token of an existing cluster",
            path.display()
        )
    } else {
        format!(
            "{what} (`{name}`) in {} has no value; set it with `homelab secrets set {name}`",
            path.display()
        )
    }
}

fn unknown_message(what: &str, name: &str, path: &Path) -> String {
    if name == TOKEN_SECRET {
        format!(
            "{} has no `{name}` ({what}); run `homelab secrets init` to add it (existing values are kept), or `homelab secrets set {name}` to give the token of an existing cluster",
            path.display()
        )
    } else {
        format!(
            "{} has no `{name}` ({what}); add it with `homelab secrets set {name}`",
            path.display()
        )
    }
}

/// Which secrets a command needs from the secrets file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// The cluster token (`nodes apply`), and the sudo password when a node has one.
    TokenAndSudo,
    /// Only the sudo password, when a node has one; the token is not used.
    SudoOnly,
}

/// The inventory and what the caller should tell the user about how it was made.
pub struct LabInventory {
    pub inventory: Inventory,
    /// Parts of the spec the node engine does not carry out as written.
    pub warnings: Vec<String>,
}

/// Builds the inventory for `loaded` (with its `plan`), reading the secrets `needs` asks for
/// from `secrets.sops.yaml` next to the spec file `spec`.
pub fn build(
    spec: &Path,
    loaded: &LoadedSpec,
    plan: &Plan,
    access: &NodeAccess,
    needs: Needs,
) -> Result<LabInventory, InventoryError> {
    let lab = &loaded.lab;
    let hosts = hosts(lab, plan, &lab_dir(spec))?;
    let sudo_refs = sudo_secrets(lab);
    let secrets_path = secrets_file(spec);
    let (token, sudo_passwords) = if needs == Needs::TokenAndSudo || !sudo_refs.is_empty() {
        let store = open_store(&secrets_path, needs, sudo_refs.first())?;
        let token = match needs {
            Needs::TokenAndSudo => get_secret(
                &store,
                &secrets_path,
                TOKEN_SECRET,
                "the cluster join token",
            )?,
            // Only `nodes apply` writes the token to the hosts; no other operation reads it.
            Needs::SudoOnly => SecretString::from(String::new()),
        };
        let mut sudo = BTreeMap::new();
        for (name, nodes) in &sudo_refs {
            let value = get_secret(
                &store,
                &secrets_path,
                name,
                &format!("the sudo password of node {}", nodes.join(", node ")),
            )?;
            for node in nodes {
                sudo.insert(node.clone(), value.clone());
            }
        }
        (token, sudo)
    } else {
        (SecretString::from(String::new()), BTreeMap::new())
    };

    let mut inventory = Inventory::new(
        lab.name.clone(),
        lab.cluster.k3s_version.to_string(),
        token,
        hosts,
    );
    inventory.sudo_passwords = sudo_passwords;
    inventory.ssh = SshOptions {
        config_file: access.ssh_config.clone(),
        control_dir: None,
        keep_connections: Some(KEEP_SSH_CONNECTIONS),
    };
    if let Some(install) = &access.install {
        inventory.install = install.clone();
    }
    inventory.prepare.nfs_common = lab.storage.is_some();
    inventory.prepare.unattended_upgrades = lab.cluster.os_updates.automatic != OsUpdateMode::None;
    inventory.prepare.updates = match lab.cluster.os_updates.automatic {
        OsUpdateMode::All => homelab_nodes::UpdateOrigins::All,
        _ => homelab_nodes::UpdateOrigins::Security,
    };
    inventory.prepare.reboot_at = lab.cluster.os_updates.reboot.clone();
    // Every server of the plan gets the same mount: the lab's directory on the NAS.
    inventory.prepare.etcd_snapshot_mount = plan
        .nodes
        .iter()
        .find_map(|n| n.etcd_snapshot_mount.as_ref())
        .map(|m| homelab_nodes::SnapshotMount {
            server: m.server.clone(),
            export: m.export.clone(),
            subdir: m.subdir.clone(),
            dir: m.dir.clone(),
        });
    let mut warnings = Vec::new();
    if let Some(time) = &lab.cluster.os_updates.reboot {
        warnings.push(format!(
            "cluster.osUpdates.reboot is {time}: a node that needs a reboot after an update reboots at that time without being drained first, which interrupts its workloads"
        ));
    }
    Ok(LabInventory {
        inventory,
        warnings,
    })
}

fn hosts(lab: &Lab, plan: &Plan, dir: &Path) -> Result<Vec<Host>, InventoryError> {
    lab.cluster
        .nodes
        .iter()
        .map(|node| {
            let planned = plan
                .nodes
                .iter()
                .find(|p| p.name == node.name)
                .ok_or_else(|| InventoryError::NodeNotPlanned {
                    node: node.name.clone(),
                })?;
            Ok(Host {
                name: node.name.clone(),
                role: match node.role {
                    NodeRole::Server => Role::Server,
                    NodeRole::Agent => Role::Agent,
                },
                address: node.address.to_string(),
                ssh: SshTarget {
                    user: node.ssh.user.clone(),
                    port: node.ssh.port,
                    identity_file: node.ssh.identity.as_deref().map(|p| identity_path(p, dir)),
                    destination: None,
                },
                labels: node.labels.clone(),
                taints: node
                    .taints
                    .iter()
                    .map(|t| Taint {
                        key: t.key.clone(),
                        value: t.value.clone(),
                        effect: match t.effect {
                            homelab_spec::lab::TaintEffect::NoSchedule => TaintEffect::NoSchedule,
                            homelab_spec::lab::TaintEffect::PreferNoSchedule => {
                                TaintEffect::PreferNoSchedule
                            }
                            homelab_spec::lab::TaintEffect::NoExecute => TaintEffect::NoExecute,
                        },
                    })
                    .collect(),
                gpu: node.gpu.is_some(),
                k3s_config: planned.k3s_config.clone(),
            })
        })
        .collect()
}

/// `~/...` is left for `ssh` to expand (as it does in its own configuration); other relative
/// paths are relative to the spec's directory, so a lab checked out anywhere finds its keys.
fn identity_path(path: &str, dir: &Path) -> PathBuf {
    let p = Path::new(path);
    if path.starts_with('~') || p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// The secrets the nodes' `ssh.sudoPassword` name, each with the nodes that name it, in the
/// order of the spec.
fn sudo_secrets(lab: &Lab) -> Vec<(String, Vec<String>)> {
    let mut found: Vec<(String, Vec<String>)> = Vec::new();
    for node in &lab.cluster.nodes {
        let Some(r) = &node.ssh.sudo_password else {
            continue;
        };
        match found.iter_mut().find(|(name, _)| name == r.name()) {
            Some((_, nodes)) => nodes.push(node.name.clone()),
            None => found.push((r.name().to_string(), vec![node.name.clone()])),
        }
    }
    found
}

fn open_store(
    path: &Path,
    needs: Needs,
    sudo: Option<&(String, Vec<String>)>,
) -> Result<SecretsStore, InventoryError> {
    let why = match (needs, sudo) {
        (Needs::TokenAndSudo, _) => format!("the cluster join token (`{TOKEN_SECRET}`)"),
        (Needs::SudoOnly, Some((name, nodes))) => {
            format!(
                "the sudo password of node {} (`{name}`)",
                nodes.join(", node ")
            )
        }
        (Needs::SudoOnly, None) => "the lab's secrets".to_string(),
    };
    if !path.exists() {
        return Err(InventoryError::SecretsFileMissing {
            path: path.to_path_buf(),
            why,
        });
    }
    let identities = Identities::from_env(&IdentityEnv::from_process_env()).map_err(|source| {
        InventoryError::AgeKey {
            path: path.to_path_buf(),
            why,
            source: Box::new(source),
        }
    })?;
    SecretsStore::open(path, &identities).map_err(|e| InventoryError::OpenSecrets(Box::new(e)))
}

fn get_secret(
    store: &SecretsStore,
    path: &Path,
    name: &str,
    what: &str,
) -> Result<SecretString, InventoryError> {
    match store.get(name) {
        Ok(value) if !value.expose_secret().is_empty() => Ok(value.clone()),
        Ok(_) | Err(SecretsError::SecretUnset { .. }) => Err(InventoryError::SecretUnset {
            name: name.to_string(),
            what: what.to_string(),
            path: path.to_path_buf(),
        }),
        Err(SecretsError::UnknownSecret { .. }) => Err(InventoryError::SecretNotInFile {
            name: name.to_string(),
            what: what.to_string(),
            path: path.to_path_buf(),
        }),
        Err(e) => Err(InventoryError::ReadSecret(Box::new(e))),
    }
}

/// The names the API server certificate covers (`tls-san` of the first server's config).
pub fn api_certificate_names(plan: &Plan, first_server: &str) -> Vec<String> {
    let Some(node) = plan.nodes.iter().find(|n| n.name == first_server) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut in_list = false;
    for line in node.k3s_config.lines() {
        if !line.starts_with([' ', '-']) {
            in_list = line.trim_end() == "tls-san:";
            continue;
        }
        if in_list && let Some(item) = line.trim_start().strip_prefix("- ") {
            names.push(item.trim().trim_matches(['"', '\'']).to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"name: lab
network:
  subnet: 10.1.0.0/24
  gateway: 10.1.0.1
  domain: lab.example.com
  loadBalancerPool: 10.1.0.100-10.1.0.120
  remoteAccess:
    tailscale: lab.tail1234.ts.net
    extraSans: [api.lab.example.com]
cluster:
  k3sVersion: v1.34.2+k3s1
  nodes:
    - name: s1
      role: server
      address: 10.1.0.10
      ssh: {user: admin, port: 2222, identity: keys/lab, sudoPassword: {secret: sudo-pw}}
    - name: a1
      role: agent
      address: 10.1.0.11
      labels: {gpu: nvidia}
      taints: ["nvidia.com/gpu=true:NoSchedule"]
      ssh: {identity: ~/.ssh/id_ed25519}
tls:
  acmeEmail: you@example.com
  challenge: {type: dns01, provider: cloudflare, apiToken: {secret: cf}}
"#;

    fn load(spec: &str) -> LoadedSpec {
        homelab_spec::load_str("homelab.yaml", spec).unwrap_or_else(|e| panic!("{}", e.render()))
    }

    #[test]
    fn a_gpu_node_is_a_gpu_host_with_the_gpu_labels_and_its_taint() {
        let spec = SPEC.replace(
            "      labels: {gpu: nvidia}\n      taints: [\"nvidia.com/gpu=true:NoSchedule\"]\n",
            "      gpu: {sharing: {replicas: 2}, taint: true}\n",
        );
        assert_ne!(spec, SPEC);
        let loaded = load(&spec);
        let plan = homelab_plan::plan(&loaded.lab);
        let hosts = hosts(&loaded.lab, &plan, Path::new("/labs/home")).unwrap();
        let (s1, a1) = (&hosts[0], &hosts[1]);
        assert!(!s1.gpu && s1.labels.is_empty() && s1.taints.is_empty());
        assert!(a1.gpu);
        assert_eq!(
            a1.labels.get("homelab/gpu").map(String::as_str),
            Some("nvidia")
        );
        assert_eq!(
            a1.labels
                .get("nvidia.com/device-plugin.config")
                .map(String::as_str),
            Some("time-slicing-2")
        );
        assert_eq!(a1.taints.len(), 1);
        assert_eq!(a1.taints[0].to_string(), "nvidia.com/gpu=true:NoSchedule");
    }

    #[test]
    fn nodes_become_hosts_with_their_planned_config() {
        let loaded = load(SPEC);
        let plan = homelab_plan::plan(&loaded.lab);
        let hosts = hosts(&loaded.lab, &plan, Path::new("/labs/home")).unwrap();
        assert_eq!(hosts.len(), 2);
        let s1 = &hosts[0];
        assert_eq!((s1.role, s1.address.as_str()), (Role::Server, "10.1.0.10"));
        assert_eq!(s1.ssh.user.as_deref(), Some("admin"));
        assert_eq!(s1.ssh.port, Some(2222));
        assert_eq!(
            s1.ssh.identity_file.as_deref(),
            Some(Path::new("/labs/home/keys/lab"))
        );
        assert!(
            s1.k3s_config.contains("cluster-init: true"),
            "{}",
            s1.k3s_config
        );
        let a1 = &hosts[1];
        assert_eq!(a1.role, Role::Agent);
        assert_eq!(
            a1.ssh.identity_file.as_deref(),
            Some(Path::new("~/.ssh/id_ed25519")),
            "ssh expands ~ itself"
        );
        assert_eq!(a1.labels.get("gpu").map(String::as_str), Some("nvidia"));
        assert_eq!(a1.taints[0].to_string(), "nvidia.com/gpu=true:NoSchedule");
        assert!(
            a1.k3s_config.contains("server: https://10.1.0.10:6443"),
            "{}",
            a1.k3s_config
        );
    }

    #[test]
    fn servers_mount_the_labs_nas_directory_for_the_etcd_snapshots() {
        let with_nas =
            format!("{SPEC}storage:\n  nfs: {{server: 10.1.0.2, path: /volume1/k8s-data}}\n");
        let loaded = load(&with_nas);
        let plan = homelab_plan::plan(&loaded.lab);
        let s1 = plan.nodes.iter().find(|n| n.name == "s1").unwrap();
        let a1 = plan.nodes.iter().find(|n| n.name == "a1").unwrap();
        let mount = s1
            .etcd_snapshot_mount
            .as_ref()
            .expect("servers mount the NAS");
        assert_eq!(
            mount.source(),
            "10.1.0.2:/volume1/k8s-data/k3s-etcd-snapshots/lab"
        );
        assert_eq!(mount.dir, "/mnt/k3s-snapshots");
        assert!(a1.etcd_snapshot_mount.is_none(), "agents keep no etcd");
        assert!(
            s1.actions.iter().any(|a| a.contains(
                "mount 10.1.0.2:/volume1/k8s-data/k3s-etcd-snapshots/lab at /mnt/k3s-snapshots"
            )),
            "{:?}",
            s1.actions
        );
        let without = homelab_plan::plan(&load(SPEC).lab);
        assert!(
            without
                .nodes
                .iter()
                .all(|n| n.etcd_snapshot_mount.is_none())
        );
    }

    #[test]
    fn sudo_secrets_are_found_per_node() {
        let loaded = load(SPEC);
        assert_eq!(
            sudo_secrets(&loaded.lab),
            [("sudo-pw".to_string(), vec!["s1".to_string()])]
        );
        let two = SPEC.replace(
            "ssh: {identity: ~/.ssh/id_ed25519}",
            "ssh: {sudoPassword: {secret: other-pw}}",
        );
        assert_eq!(
            sudo_secrets(&load(&two).lab),
            [
                ("sudo-pw".to_string(), vec!["s1".to_string()]),
                ("other-pw".to_string(), vec!["a1".to_string()])
            ]
        );
        let shared = SPEC.replace(
            "ssh: {identity: ~/.ssh/id_ed25519}",
            "ssh: {sudoPassword: {secret: sudo-pw}}",
        );
        assert_eq!(
            sudo_secrets(&load(&shared).lab),
            [(
                "sudo-pw".to_string(),
                vec!["s1".to_string(), "a1".to_string()]
            )]
        );
    }

    #[test]
    fn certificate_names_come_from_the_first_servers_config() {
        let loaded = load(SPEC);
        let plan = homelab_plan::plan(&loaded.lab);
        let names = api_certificate_names(&plan, "s1");
        for n in [
            "10.1.0.10",
            "s1",
            "lab.tail1234.ts.net",
            "api.lab.example.com",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
        assert!(api_certificate_names(&plan, "nope").is_empty());
    }
}
