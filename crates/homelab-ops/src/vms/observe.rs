//! Reading what the Proxmox host has for the lab: its nodes and quorum, the VMs (with the
//! config and pending changes of those the lab names), the storages and the downloaded cloud
//! images. Reads only; logging in takes the secret from the lab's secrets, never shows it.

use std::collections::BTreeMap;

use homelab_proxmox::{Client, Credentials, ProxmoxError, Tls};
use homelab_render::SecretValues;
use homelab_spec::lab::{Lab, Proxmox, ProxmoxAuth, VmTemplate};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;

use super::{VmError, desired, template_name};

/// What the Proxmox host showed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    /// The cluster's node names.
    pub nodes: Vec<String>,
    pub quorate: bool,
    pub vms: Vec<ObservedVm>,
    /// The storages enabled on `proxmox.node`.
    pub storages: Vec<ObservedStorage>,
    /// Volume ids of the imported-image files on those storages (`local:import/x.qcow2`).
    pub images: Vec<String>,
}

impl Observed {
    pub fn vm(&self, vmid: u32) -> Option<&ObservedVm> {
        self.vms.iter().find(|v| v.vmid == vmid)
    }
}

/// A VM as the API lists it; `config` and `pending` only for the VMs the lab names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedVm {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    pub running: bool,
    pub template: bool,
    pub tags: Vec<String>,
    pub lock: Option<String>,
    pub config: BTreeMap<String, String>,
    /// Changes waiting for the next boot: a new value, or `None` for a key to be removed.
    pub pending: BTreeMap<String, Option<String>>,
}

/// A storage on the lab's Proxmox node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedStorage {
    pub name: String,
    pub kind: String,
    pub content: Vec<String>,
    pub active: bool,
    /// Free bytes, when the storage says.
    pub avail: Option<u64>,
}

/// A client for the lab's Proxmox API, logged in with the spec's token or user and the
/// secret's value from the lab's secrets.
pub fn connect(px: &Proxmox, secrets: &dyn SecretValues) -> Result<Client, VmError> {
    let (name, make): (&str, Box<dyn Fn(String) -> Credentials>) = match &px.auth {
        ProxmoxAuth::Token {
            token_id,
            token_secret,
        } => {
            let id = token_id.clone();
            (
                token_secret.name(),
                Box::new(move |secret| Credentials::Token {
                    id: id.clone(),
                    secret,
                }),
            )
        }
        ProxmoxAuth::Password { user, password } => {
            let user = user.clone();
            (
                password.name(),
                Box::new(move |password| Credentials::Password {
                    user: user.clone(),
                    password,
                }),
            )
        }
    };
    let value = secrets.secret(name).map_err(|reason| VmError::Secret {
        name: name.to_string(),
        reason,
    })?;
    let credentials = make(value.expose_secret().to_string());
    let tls = if px.verify_tls {
        Tls::System
    } else {
        Tls::Unverified
    };
    Ok(Client::new(&px.endpoint, credentials, tls)?)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        _ => None,
    }
}

fn flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => s == "1",
        _ => false,
    }
}

fn list<'a>(op: &str, v: &'a Value) -> Result<&'a Vec<Value>, VmError> {
    v.as_array().ok_or_else(|| {
        VmError::Proxmox(ProxmoxError::BadAnswer {
            op: op.to_string(),
            reason: format!("expected a list, got {v}"),
        })
    })
}

/// The VMs as `/cluster/resources` lists them.
pub async fn list_vms(client: &Client) -> Result<Vec<ObservedVm>, VmError> {
    let op = "list the VMs";
    let answer = client.get(op, "/cluster/resources?type=vm").await?;
    let mut vms = Vec::new();
    for r in list(op, &answer)? {
        if r.get("type").and_then(Value::as_str) != Some("qemu") {
            continue;
        }
        let Some(vmid) = r.get("vmid").and_then(Value::as_u64) else {
            continue;
        };
        vms.push(ObservedVm {
            vmid: vmid as u32,
            name: r.get("name").and_then(text).unwrap_or_default(),
            node: r.get("node").and_then(text).unwrap_or_default(),
            running: r.get("status").and_then(Value::as_str) == Some("running"),
            template: flag(r.get("template")),
            tags: r
                .get("tags")
                .and_then(Value::as_str)
                .map(|t| {
                    t.split([';', ',', ' '])
                        .filter(|t| !t.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            lock: r.get("lock").and_then(text).filter(|l| !l.is_empty()),
            ..ObservedVm::default()
        });
    }
    vms.sort_by_key(|v| v.vmid);
    Ok(vms)
}

/// A VM's config and pending changes, from `/pending` (which holds both).
pub async fn read_config(client: &Client, vm: &mut ObservedVm) -> Result<(), VmError> {
    let op = format!("read the config of VM {} ({})", vm.vmid, vm.name);
    let answer = client
        .get(&op, &format!("/nodes/{}/qemu/{}/pending", vm.node, vm.vmid))
        .await?;
    vm.config.clear();
    vm.pending.clear();
    for item in list(&op, &answer)? {
        let Some(key) = item.get("key").and_then(Value::as_str) else {
            continue;
        };
        if key == "digest" {
            continue;
        }
        if let Some(v) = item.get("value").and_then(text) {
            vm.config.insert(key.to_string(), v);
        }
        if flag(item.get("delete")) {
            vm.pending.insert(key.to_string(), None);
        } else if let Some(p) = item.get("pending").and_then(text) {
            vm.pending.insert(key.to_string(), Some(p));
        }
    }
    Ok(())
}

/// Everything [`super::plan`] compares the spec with.
pub async fn observe(client: &Client, lab: &Lab) -> Result<Observed, VmError> {
    let Some(px) = &lab.proxmox else {
        return Err(VmError::NoProxmox);
    };
    let op = "list the Proxmox nodes";
    let answer = client.get(op, "/nodes").await?;
    let mut nodes: Vec<String> = list(op, &answer)?
        .iter()
        .filter_map(|n| n.get("node").and_then(text))
        .collect();
    nodes.sort();

    let op = "read the cluster's quorum";
    let status = client.get(op, "/cluster/status").await?;
    // A host that is not in a cluster lists only itself, and is its own quorum.
    let quorate = list(op, &status)?
        .iter()
        .find(|e| e.get("type").and_then(Value::as_str) == Some("cluster"))
        .is_none_or(|c| flag(c.get("quorate")));

    let mut vms = list_vms(client).await?;
    let names: Vec<String> = desired(lab).into_iter().map(|d| d.name).collect();
    let (template_vmid, template_name) = match &px.template {
        VmTemplate::Vmid { vmid } => (Some(*vmid), None),
        VmTemplate::Image {
            vmid, file_name, ..
        } => (*vmid, Some(template_name(file_name))),
    };
    for vm in &mut vms {
        let wanted = names.contains(&vm.name)
            || Some(vm.vmid) == template_vmid
            || template_name.as_deref() == Some(vm.name.as_str());
        if wanted && nodes.contains(&vm.node) {
            read_config(client, vm).await?;
        }
    }

    let mut storages = Vec::new();
    let mut images = Vec::new();
    if nodes.contains(&px.node) {
        let op = format!("list the storages of Proxmox node {}", px.node);
        let answer = client
            .get(&op, &format!("/nodes/{}/storage", px.node))
            .await?;
        for s in list(&op, &answer)? {
            let Some(name) = s.get("storage").and_then(text) else {
                continue;
            };
            storages.push(ObservedStorage {
                name,
                kind: s.get("type").and_then(text).unwrap_or_default(),
                content: s
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                active: flag(s.get("active")),
                avail: s.get("avail").and_then(Value::as_u64),
            });
        }
        if matches!(px.template, VmTemplate::Image { .. }) {
            for s in storages
                .iter()
                .filter(|s| s.active && s.content.iter().any(|c| c == "import"))
            {
                let op = format!("list the images on storage {}", s.name);
                let answer = client
                    .get(
                        &op,
                        &format!(
                            "/nodes/{}/storage/{}/content?content=import",
                            px.node, s.name
                        ),
                    )
                    .await?;
                images.extend(
                    list(&op, &answer)?
                        .iter()
                        .filter_map(|v| v.get("volid").and_then(text)),
                );
            }
        }
    }
    Ok(Observed {
        nodes,
        quorate,
        vms,
        storages,
        images,
    })
}
