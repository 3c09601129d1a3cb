//! The tree's Mermaid diagrams, drawn from the plan: how a request and an alert travel
//! through the lab (`docs/diagrams/architecture.md`) and the order components are applied in
//! (`docs/diagrams/apply-order.md`). Pure text; only components that are on appear, and
//! nothing is drawn that the plan does not say.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use homelab_plan::{Component, HealthCheck, Layer, Plan};
use serde_json::Value;

use crate::docs::{ingress_ip, nfs_export};

/// A Mermaid node id for a name (letters, digits and `_` only), with a prefix per role.
fn id(prefix: &str, name: &str) -> String {
    let body: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{prefix}_{body}")
}

/// Text inside a quoted Mermaid label: `"` would end it.
fn label(text: &str) -> String {
    text.replace('"', "#quot;")
}

/// The StorageClass the NFS provisioner creates, when the lab has NFS.
fn nfs_class(plan: &Plan) -> Option<String> {
    let values = &plan.component("nfs")?.releases.first()?.values;
    values["storageClass"]["name"].as_str().map(str::to_string)
}

/// Every string value of a `storageClassName`/`storageClass` key below `v`.
fn storage_classes(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if matches!(k.as_str(), "storageClassName" | "storageClass")
                    && let Some(s) = x.as_str()
                {
                    out.insert(s.to_string());
                }
                storage_classes(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| storage_classes(x, out)),
        _ => {}
    }
}

/// Whether a manifest below `v` mounts NFS directly (a static PersistentVolume of a share).
fn mounts_nfs(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, x)| {
            (k == "nfs" && x.get("server").is_some() && x.get("path").is_some()) || mounts_nfs(x)
        }),
        Value::Array(a) => a.iter().any(mounts_nfs),
        _ => false,
    }
}

/// What a component keeps its data on.
struct Storage {
    /// Claims the plan names (its health checks).
    claims: Vec<String>,
    classes: BTreeSet<String>,
    direct_nfs: bool,
}

fn storage_of(c: &Component) -> Storage {
    let mut classes = BTreeSet::new();
    let mut direct_nfs = false;
    for o in &c.objects {
        storage_classes(&o.manifest, &mut classes);
        direct_nfs |= mounts_nfs(&o.manifest);
    }
    for r in &c.releases {
        storage_classes(&r.values, &mut classes);
    }
    let claims = c
        .health
        .iter()
        .filter_map(|h| match h {
            HealthCheck::Pvc { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    Storage {
        claims,
        classes,
        direct_nfs,
    }
}

fn workloads(c: &Component) -> Vec<String> {
    c.health
        .iter()
        .filter_map(|h| match h {
            HealthCheck::Workload { kind, name, .. } => Some(format!("{kind} {name}")),
            _ => None,
        })
        .collect()
}

/// LoadBalancer Services of a component other than Traefik's: (service, address).
fn load_balancers(c: &Component) -> Vec<(String, Option<String>)> {
    c.health
        .iter()
        .filter_map(|h| match h {
            HealthCheck::LoadBalancer {
                name, expected_ip, ..
            } => Some((name.clone(), expected_ip.clone())),
            _ => None,
        })
        .collect()
}

/// Alertmanager's receivers (name, where they send), from the monitoring chart's values.
fn receivers(c: &Component) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in &c.releases {
        let Some(list) = r.values["alertmanager"]["config"]["receivers"].as_array() else {
            continue;
        };
        for rc in list {
            let Some(name) = rc["name"].as_str().filter(|n| *n != "null") else {
                continue;
            };
            let mut targets = Vec::new();
            for w in rc["webhook_configs"].as_array().into_iter().flatten() {
                let url = w["url"].as_str().unwrap_or_default();
                let host = url
                    .split("://")
                    .nth(1)
                    .unwrap_or(url)
                    .split(['/', '?'])
                    .next()
                    .unwrap_or_default();
                if host.contains("ntfy") || url.contains("template=alertmanager") {
                    targets.push(format!("ntfy ({host})"));
                } else {
                    targets.push(format!("webhook ({host})"));
                }
            }
            if rc["pushover_configs"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                targets.push("Pushover".to_string());
            }
            if targets.is_empty() {
                continue;
            }
            out.push((name.to_string(), targets.join(", ")));
        }
    }
    out
}

/// `docs/diagrams/architecture.md`: a request from a client to the data on the NAS, and an
/// alert from Prometheus to the phone.
pub(crate) fn architecture(plan: &Plan) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Architecture of {}\n\nHow a request reaches a service and its data, and how an alert reaches you. Generated from the plan: only the components this lab runs are drawn. The order the components are applied in is in [apply-order.md](apply-order.md).\n\n```mermaid\nflowchart LR",
        plan.lab_name
    );
    let ip = ingress_ip(plan).unwrap_or_else(|| plan.network.ingress_ip.to_string());
    let domain = &plan.domain;
    let _ = writeln!(o, "  client([\"client on the LAN or Tailscale\"])");
    let _ = writeln!(
        o,
        "  dns{{{{\"DNS: *.{domain} to {ip}<br/>(rewrite at {})\"}}}}",
        dns_where(plan)
    );
    let _ = writeln!(o, "  client -->|\"name under {domain}\"| dns");
    let metallb = plan.component("metallb").is_some();
    let traefik = plan.component("traefik").is_some();
    if metallb {
        let _ = writeln!(
            o,
            "  metallb[/\"MetalLB address {ip}<br/>(layer 2, {})\"/]",
            plan.component("metallb")
                .and_then(|c| c.namespace.as_deref())
                .unwrap_or("infra")
        );
        let _ = writeln!(o, "  dns -->|\"{ip}\"| metallb");
    }
    if traefik {
        let _ = writeln!(
            o,
            "  traefik[\"Traefik: HTTPS, certificates<br/>kube-system\"]"
        );
        let _ = writeln!(
            o,
            "  {} -->|\"ports 80, 443\"| traefik",
            if metallb { "metallb" } else { "dns" }
        );
    }
    let nfs = nfs_export(plan);
    let nfs_class = nfs_class(plan);
    if let Some((server, path)) = &nfs {
        let _ = writeln!(o, "  nas[(\"NAS {server}:{path}\")]");
    }
    for c in &plan.components {
        if matches!(c.name.as_str(), "traefik" | "metallb" | "k3s") {
            continue;
        }
        let hosts: Vec<&str> = c.endpoints.iter().map(|e| e.host.as_str()).collect();
        let lbs = load_balancers(c);
        let storage = storage_of(c);
        let on_nfs = nfs_class
            .as_ref()
            .is_some_and(|class| storage.classes.contains(class))
            || (nfs.is_some() && storage.direct_nfs);
        let local: Vec<&String> = storage
            .classes
            .iter()
            .filter(|cl| Some(*cl) != nfs_class.as_ref())
            .collect();
        let reached = (traefik && !hosts.is_empty()) || (metallb && !lbs.is_empty());
        if !reached && !on_nfs && local.is_empty() {
            continue;
        }
        let ns = c.namespace.as_deref().unwrap_or("-");
        let svc = id("svc", &c.name);
        let pods = id("pods", &c.name);
        let _ = writeln!(o, "  {svc}([\"{} Services<br/>{ns}\"])", label(&c.name));
        if traefik && !hosts.is_empty() {
            let hosts: BTreeSet<&str> = hosts.into_iter().collect();
            let _ = writeln!(
                o,
                "  traefik -->|\"{}\"| {svc}",
                label(&hosts.into_iter().collect::<Vec<_>>().join(", "))
            );
        }
        if metallb {
            for (name, addr) in &lbs {
                let _ = writeln!(
                    o,
                    "  metallb -->|\"{}\"| {svc}",
                    label(&format!(
                        "{} {name}",
                        addr.clone().unwrap_or_else(|| "pool address".into())
                    ))
                );
            }
        }
        let w = workloads(c);
        let _ = writeln!(
            o,
            "  {pods}[\"{}\"]",
            if w.is_empty() {
                format!("{} pods", label(&c.name))
            } else {
                label(&w.join("<br/>"))
            }
        );
        let _ = writeln!(o, "  {svc} --> {pods}");
        if on_nfs || !local.is_empty() {
            let pvc = id("pvc", &c.name);
            let claims = if storage.claims.is_empty() {
                "volumes".to_string()
            } else {
                format!("PVC {}", storage.claims.join(", "))
            };
            let mut classes: Vec<String> = Vec::new();
            if on_nfs {
                classes.push(nfs_class.clone().unwrap_or_else(|| "NFS".into()));
            }
            classes.extend(local.iter().map(|c| c.to_string()));
            let _ = writeln!(
                o,
                "  {pvc}[(\"{}<br/>on {}\")]",
                label(&claims),
                label(&classes.join(", "))
            );
            let _ = writeln!(o, "  {pods} --> {pvc}");
            if on_nfs && nfs.is_some() {
                let _ = writeln!(o, "  {pvc} --> nas");
            }
        }
        for d in &c.depends_on {
            if d == "postgres" {
                let _ = writeln!(o, "  {pods} -->|\"SQL\"| {}", id("svc", d));
            }
        }
    }
    if let Some(mon) = plan.component("prometheus") {
        let ns = mon.namespace.as_deref().unwrap_or("monitoring");
        let _ = writeln!(
            o,
            "  prometheus[\"Prometheus: scrapes and evaluates rules<br/>{ns}\"]"
        );
        let _ = writeln!(o, "  alertmanager[\"Alertmanager<br/>{ns}\"]");
        let _ = writeln!(o, "  prometheus -->|\"alerts\"| alertmanager");
        for (name, target) in receivers(mon) {
            let r = id("receiver", &name);
            let _ = writeln!(o, "  {r}>\"{}: {}\"]", label(&name), label(&target));
            let _ = writeln!(o, "  alertmanager --> {r}");
        }
    }
    let _ = writeln!(o, "```");
    let urls: Vec<_> = plan.urls().collect();
    if !urls.is_empty() {
        let _ = writeln!(o, "\n## Endpoints\n");
        for e in urls {
            let _ = writeln!(o, "- {}: {}", e.url, e.description);
        }
    }
    o
}

/// Where the wildcard rewrite lives, for a label.
fn dns_where(plan: &Plan) -> &'static str {
    use homelab_spec::lab::DnsProvider;
    match plan.network.dns_provider {
        DnsProvider::Nextdns => "NextDNS",
        DnsProvider::Cloudflare => "Cloudflare",
        DnsProvider::Pihole => "Pi-hole",
        DnsProvider::Adguard => "AdGuard Home",
        DnsProvider::Manual => "your DNS server",
    }
}

/// `docs/diagrams/apply-order.md`: components by layer and namespace, an arrow from each to
/// what must be ready before it, and the nodes.
pub(crate) fn apply_order(plan: &Plan) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Apply order of {}\n\nComponents by layer and namespace; an arrow points from a component to what must be ready before it is applied. `homelab apply` follows it, and so does the lab README's path without the tool. Generated from the plan.\n\n```mermaid\nflowchart LR",
        plan.lab_name
    );
    for layer in [
        Layer::Infrastructure,
        Layer::Monitoring,
        Layer::Applications,
    ] {
        let members: Vec<&Component> = plan
            .components
            .iter()
            .filter(|c| c.layer == layer)
            .collect();
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(o, "  subgraph {}[\"{}/\"]", layer.dir(), layer.dir());
        for c in members {
            let ns = c.namespace.as_deref().unwrap_or("hosts");
            let _ = writeln!(
                o,
                "    {}[\"{}<br/><small>{ns}</small>\"]",
                id("c", &c.name),
                c.name
            );
        }
        let _ = writeln!(o, "  end");
    }
    let _ = writeln!(o, "  subgraph nodes[\"K3s nodes\"]");
    for n in &plan.nodes {
        let _ = writeln!(
            o,
            "    {}[\"{}<br/>{:?} {}\"]",
            id("node", &n.name),
            n.name,
            n.role,
            n.address
        );
    }
    let _ = writeln!(o, "  end");
    let _ = writeln!(o, "  {} --> nodes", id("c", "k3s"));
    for c in &plan.components {
        for d in &c.depends_on {
            let _ = writeln!(o, "  {} --> {}", id("c", &c.name), id("c", d));
        }
    }
    let _ = writeln!(o, "```");
    o
}
