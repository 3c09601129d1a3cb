//! Turns the spec as written (`RawLab`) into a `Lab`, applying defaults and checking every rule
//! that spans fields, collecting all problems instead of stopping at the first; no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use crate::de::Spanned;
use crate::diag::{Diagnostic, Span};
use crate::lab::*;
use crate::raw::*;
use crate::types::{
    Cron, Duration, Invalid, Ipv4Net, Ipv4Range, K3sVersion, Quantity, check_dns_label,
    check_domain, check_image_reference, is_private, parse_ipv4,
};

mod dns;
pub(crate) mod examples;
mod gpu;
mod open_webui;
mod sso;
mod vllm;

/// Ports the dev-container SSH forwards may not take: SSH on the nodes, HTTP(S) and the API.
pub const RESERVED_PORTS: &[u16] = &[22, 80, 443, 6443];

/// Host names the platform itself serves under the domain.
pub const PLATFORM_HOSTS: &[(&str, &str)] = &[("traefik", "the Traefik dashboard")];

pub(crate) struct Checker {
    pub diags: Vec<Diagnostic>,
    /// Where each secret is referenced by name, for checks against the secrets file.
    pub refs: Vec<(String, Span)>,
}

type Opt<T> = Option<Spanned<T>>;

impl Checker {
    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn invalid(&mut self, code: &'static str, span: Span, e: Invalid) {
        self.error(Diagnostic::error(code, e.message).at(span).help(e.help));
    }

    /// A required value, or a "missing" diagnostic at the mapping that should hold it.
    fn require<'a, T>(
        &mut self,
        v: &'a Opt<T>,
        parent: Span,
        key: &str,
        what: &str,
        help: &str,
    ) -> Option<&'a Spanned<T>> {
        if v.is_none() {
            self.error(
                Diagnostic::error("missing-key", format!("`{key}` is missing: {what}"))
                    .at(Span::new(parent.start, parent.start))
                    .scope(parent)
                    .suggest(key)
                    .label(format!("add `{key}` to this mapping"))
                    .help(help.to_string()),
            );
        }
        v.as_ref()
    }

    fn parse<T>(
        &mut self,
        v: &Spanned<String>,
        code: &'static str,
        f: impl Fn(&str) -> Result<T, Invalid>,
    ) -> Option<T> {
        match f(&v.value) {
            Ok(t) => Some(t),
            Err(e) => {
                self.invalid(code, v.span, e);
                None
            }
        }
    }

    fn parse_or<T>(
        &mut self,
        v: &Opt<String>,
        default: &str,
        code: &'static str,
        f: impl Fn(&str) -> Result<T, Invalid>,
    ) -> Option<T> {
        match v {
            Some(v) => self.parse(v, code, f),
            None => f(default).ok(),
        }
    }

    fn secret(&mut self, r: &Opt<RawSecretRef>, default: &str) -> SecretRef {
        match r.as_ref().map(|r| (r, r.secret.as_ref())) {
            Some((_, Some(name))) => {
                self.secret_name(name);
                SecretRef(name.value.clone())
            }
            Some((r, None)) => {
                if !r.reported {
                    self.error(
                        Diagnostic::error(
                            "missing-key",
                            "`secret` is missing in this secret reference",
                        )
                        .at(r.span)
                        .label("a secret reference needs `secret: NAME`")
                        .help(format!(
                            "write `{{secret: {default}}}` and store the value with `homelab secrets set {default}`"
                        )),
                    );
                }
                SecretRef(default.to_string())
            }
            None => SecretRef(default.to_string()),
        }
    }

    fn required_secret(
        &mut self,
        r: &Opt<RawSecretRef>,
        parent: Span,
        key: &str,
        example: &str,
        what: &str,
    ) -> Option<SecretRef> {
        match r.as_ref().and_then(|r| r.secret.as_ref()) {
            Some(name) => {
                self.secret_name(name);
                Some(SecretRef(name.value.clone()))
            }
            None if r.as_ref().is_some_and(|r| r.reported) => None,
            None if r.is_some() => {
                let r = r.as_ref().expect("checked");
                self.error(
                    Diagnostic::error(
                        "missing-key",
                        format!("`{key}` has no `secret` name"),
                    )
                    .at(r.span)
                    .label("a secret reference needs `secret: NAME`")
                    .help(format!(
                        "write `{key}: {{secret: {example}}}` and store the value with `homelab secrets set {example}`"
                    )),
                );
                None
            }
            None => {
                self.error(
                    Diagnostic::error("missing-key", format!("`{key}` is missing: {what}"))
                        .at(Span::point(parent.start))
                        .label(format!("add `{key}: {{secret: {example}}}`"))
                        .help(format!(
                            "store the value with `homelab secrets set {example}` and reference it as `{key}: {{secret: {example}}}`"
                        )),
                );
                None
            }
        }
    }

    fn secret_name(&mut self, name: &Spanned<String>) {
        self.refs.push((name.value.clone(), name.span));
        let ok = !name.value.is_empty()
            && name.value.len() <= 253
            && name.value.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' || c == '_'
            })
            && name.value.starts_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            self.error(
                Diagnostic::error("secret-name", format!("`{}` is not a valid secret name", name.value))
                    .at(name.span)
                    .help("secret names use lowercase letters, digits, `-`, `_` and `.`, e.g. `grafana-admin-password`"),
            );
        }
    }

    fn label(&mut self, v: &Spanned<String>, what: &str) -> bool {
        match check_dns_label(&v.value, what) {
            Ok(()) => true,
            Err(e) => {
                self.invalid("invalid-name", v.span, e);
                false
            }
        }
    }

    fn quantity(&mut self, v: &Opt<String>, default: &str) -> Quantity {
        self.parse_or(v, default, "invalid-quantity", Quantity::parse)
            .unwrap_or_else(|| Quantity::parse(default).expect("defaults are valid"))
    }

    fn duration(&mut self, v: &Opt<String>, default: &str) -> Duration {
        self.parse_or(v, default, "invalid-duration", Duration::parse)
            .unwrap_or_else(|| Duration::parse(default).expect("defaults are valid"))
    }

    fn cron(&mut self, v: &Opt<String>, default: &str) -> Cron {
        self.parse_or(v, default, "invalid-cron", Cron::parse)
            .unwrap_or_else(|| Cron::parse(default).expect("defaults are valid"))
    }
}

fn enabled(v: &Opt<bool>) -> bool {
    v.as_ref().is_none_or(|b| b.value)
}

/// Placeholder values that stand in when a required field is missing, so later checks can run.
fn fallback_net() -> Ipv4Net {
    Ipv4Net {
        network: Ipv4Addr::UNSPECIFIED,
        prefix: 0,
    }
}

/// Validates a whole spec. Returns the lab when there are no errors; diagnostics hold
/// warnings in both cases and every error otherwise.
pub fn validate(raw: &RawLab, root: Span) -> (Option<Lab>, Vec<Diagnostic>, Vec<(String, Span)>) {
    let mut c = Checker {
        diags: Vec::new(),
        refs: Vec::new(),
    };

    let name = c
        .require(
            &raw.name,
            root,
            "name",
            "the lab needs a name",
            "add `name: home-lab` at the top of the file",
        )
        .cloned();
    if let Some(n) = &name {
        c.label(n, "lab name");
    }

    let network = c
        .require(&raw.network, root, "network", "the lab's network is required", "add a `network:` section with `subnet`, `gateway`, `domain` and `loadBalancerPool` (run `homelab init` for an example)")
        .map(|n| network(&mut c, n));
    let storage = storage(&mut c, raw);
    let proxmox = raw
        .proxmox
        .as_ref()
        .and_then(|p| proxmox(&mut c, p, network.as_ref().map(|(n, _)| n)));
    let pve = raw
        .proxmox
        .as_ref()
        .map(|p| p.node.as_ref().map(|n| n.value.clone()).unwrap_or_default());
    let cluster = c
        .require(&raw.cluster, root, "cluster", "the cluster's nodes are required", "add a `cluster:` section with `k3sVersion` and `nodes` (run `homelab init` for an example)")
        .map(|cl| cluster(&mut c, cl, network.as_ref(), storage.as_ref(), pve.as_deref()));
    let tls = c
        .require(
            &raw.tls,
            root,
            "tls",
            "HTTPS certificates need a source",
            "add `tls:` with `acmeEmail: you@example.com` and a `challenge` for Let's Encrypt, or `tls: {mode: internal-ca}` for the lab's own certificate authority",
        )
        .and_then(|t| tls(&mut c, t, network.as_ref()));
    let alerting = raw
        .alerting
        .as_ref()
        .map(|a| alerting(&mut c, a))
        .unwrap_or_default();
    let services = raw
        .services
        .as_ref()
        .map(|s| services(&mut c, s))
        .unwrap_or_default();
    let auth = sso::auth(
        &mut c,
        raw.auth.as_ref(),
        network.as_ref().map(|(n, _)| n.domain.as_str()),
    );
    let sso_on = auth.sso.is_some();
    let apps: Vec<App> = raw
        .apps
        .iter()
        .filter_map(|a| app(&mut c, a, sso_on))
        .collect();
    let helm_overrides = helm_overrides(&mut c, raw, &services, storage.is_some());
    let shares = shares(&mut c, raw, storage.as_ref());
    app_checks(&mut c, raw, &apps, &shares, network.as_ref(), &services);

    gpu::requests(&mut c, raw, cluster.as_ref(), &services, &apps);

    let charts = charts(&mut c, raw, &services, storage.is_some(), &apps);
    let secrets = raw
        .secrets
        .as_ref()
        .map(|s| secrets_settings(&mut c, s))
        .unwrap_or_default();
    cross_checks(
        &mut c,
        raw,
        network.as_ref(),
        storage.as_ref(),
        Parts {
            services: &services,
            apps: &apps,
            alerting: &alerting,
            charts: &charts,
            auth: &auth,
        },
    );

    let manifests = raw
        .manifests
        .as_ref()
        .and_then(|m| manifests_dir(&mut c, m));

    let lab = match (name, network, cluster, tls) {
        (Some(name), Some((network, _)), Some(cluster), Some(tls)) => Some(Lab {
            name: name.value,
            network,
            cluster,
            storage,
            tls,
            alerting,
            services,
            apps,
            shares,
            charts,
            helm_overrides,
            secrets,
            manifests,
            proxmox,
            auth,
        }),
        _ => None,
    };
    examples::check(&mut c, raw, lab.as_ref().map(|l| &l.tls));
    let ok = !c.diags.iter().any(Diagnostic::is_error);
    (lab.filter(|_| ok), c.diags, c.refs)
}

/// The `manifests:` directory: a relative path, so that the lab's repository carries it.
fn manifests_dir(c: &mut Checker, m: &Spanned<String>) -> Option<crate::lab::Manifests> {
    let dir = m.value.trim();
    let problem = if dir.is_empty() {
        Some("the manifests directory is empty")
    } else if dir.starts_with('/')
        || dir.starts_with('~')
        || dir.contains('\\')
        || dir.get(1..2) == Some(":")
    {
        Some("the manifests directory must be relative to homelab.yaml")
    } else {
        None
    };
    if let Some(problem) = problem {
        c.error(
            Diagnostic::error("manifests-dir", format!("{problem}: `{}`", m.value))
                .at(m.span)
                .help("write the directory beside homelab.yaml, e.g. `manifests: manifests`, so that the lab's repository holds it"),
        );
        return None;
    }
    Some(crate::lab::Manifests {
        dir: dir.trim_end_matches('/').to_string(),
        span: m.span,
        objects: Vec::new(),
        patches: Vec::new(),
    })
}

/// The validated network and the spans of its addresses (for checks that point at them).
struct NetSpans {
    gateway: Option<Span>,
    domain: Option<Span>,
    pool: Option<Span>,
}

fn network(c: &mut Checker, n: &Spanned<RawNetwork>) -> (Network, NetSpans) {
    let subnet = c
        .require(
            &n.subnet,
            n.span,
            "subnet",
            "the LAN's network",
            "add e.g. `subnet: 192.168.2.0/24`",
        )
        .and_then(|s| c.parse(s, "invalid-subnet", Ipv4Net::parse));
    let gateway = c
        .require(
            &n.gateway,
            n.span,
            "gateway",
            "the router's address",
            "add e.g. `gateway: 192.168.2.1`",
        )
        .and_then(|g| {
            c.parse(g, "invalid-address", parse_ipv4)
                .map(|a| (a, g.span))
        });
    let domain = c
        .require(
            &n.domain,
            n.span,
            "domain",
            "services are served under it",
            "add e.g. `domain: home.example.com`",
        )
        .and_then(|d| {
            c.parse(d, "invalid-domain", |t| {
                check_domain(t).map(|()| t.to_string())
            })
        });
    let pool = c
        .require(&n.load_balancer_pool, n.span, "loadBalancerPool", "MetalLB hands these addresses to LoadBalancer services", "add e.g. `loadBalancerPool: 192.168.2.100-192.168.2.120` (addresses outside your DHCP range)")
        .and_then(|p| c.parse(p, "invalid-pool", Ipv4Range::parse).map(|r| (r, p.span)));

    if let (Some(subnet), Some((gw, gspan))) = (subnet, gateway)
        && !subnet.contains(gw)
    {
        c.error(
            Diagnostic::error(
                "gateway-outside-subnet",
                format!("the gateway {gw} is outside the subnet {subnet}"),
            )
            .at(gspan)
            .help(format!(
                "the gateway is your router's address on {subnet}; check both values"
            )),
        );
    }
    if let Some((range, span)) = pool {
        if range.start > range.end {
            c.error(
                Diagnostic::error(
                    "pool-backwards",
                    format!(
                        "the pool starts at {} but ends before it, at {}",
                        range.start, range.end
                    ),
                )
                .at(span)
                .help(format!(
                    "write the lower address first: `{}-{}`",
                    range.end, range.start
                )),
            );
        }
        if let Some(subnet) = subnet {
            if !subnet.contains(range.start) || !subnet.contains(range.end) {
                c.error(
                    Diagnostic::error(
                        "pool-outside-subnet",
                        format!("the load-balancer pool {range} is not inside the subnet {subnet}"),
                    )
                    .at(span)
                    .help(format!(
                        "choose free addresses inside {subnet}, outside your DHCP range"
                    )),
                );
            } else if range.contains(subnet.network) || range.contains(subnet.broadcast()) {
                let (addr, which, fix) = if range.contains(subnet.network) {
                    let next = Ipv4Addr::from(u32::from(subnet.network).saturating_add(1));
                    (
                        subnet.network,
                        "network",
                        format!("start the pool at {next} or later"),
                    )
                } else {
                    let before = Ipv4Addr::from(u32::from(subnet.broadcast()).saturating_sub(1));
                    (
                        subnet.broadcast(),
                        "broadcast",
                        format!("end the pool at {before} or earlier"),
                    )
                };
                c.error(
                    Diagnostic::error("pool-network-address", format!("the load-balancer pool {range} includes {addr}, the {which} address of {subnet}, which no device can use"))
                        .at(span)
                        .help(fix),
                );
            }
        }
        if let Some((gw, gspan)) = gateway
            && range.contains(gw)
        {
            c.error(
                Diagnostic::error(
                    "pool-contains-gateway",
                    format!("the load-balancer pool {range} contains the gateway {gw}"),
                )
                .at(span)
                .related(gspan, "gateway set here")
                .help("MetalLB would answer for your router's address; choose a range that leaves it out"),
            );
        }
    }
    let ingress_ip = match (&n.ingress_ip, pool) {
        (Some(ip), pool) => c.parse(ip, "invalid-address", parse_ipv4).inspect(|&addr| {
            if let Some((range, _)) = pool
                && !range.contains(addr) {
                    c.error(
                        Diagnostic::error("ingress-outside-pool", format!("the ingress IP {addr} is not in the load-balancer pool {range}"))
                            .at(ip.span)
                            .help(format!("MetalLB can only give Traefik an address from the pool; use one in {range}, e.g. `{}`, or leave `ingressIp` out to use the first", range.start)),
                    );
                }
        }),
        (None, Some((range, _))) => Some(range.start),
        (None, None) => None,
    };
    let (dns_provider, dns) = dns::dns(c, n.dns.as_ref());
    let remote_access = match &n.remote_access {
        Some(r) => {
            let tailscale = r.tailscale.as_ref().map(|t| {
                host_or_ip(c, t, "Tailscale name");
                t.value.clone()
            });
            for san in &r.extra_sans {
                host_or_ip(c, san, "certificate name");
            }
            let kubeconfig_address = match r.kubeconfig_address.as_ref().map(|k| (k.value, k.span))
            {
                Some((KubeconfigAddress::Tailscale, span)) if tailscale.is_none() => {
                    c.error(
                        Diagnostic::error("kubeconfig-address", "`kubeconfigAddress: tailscale` needs `tailscale` set")
                            .at(span)
                            .help("add `tailscale: <name or IP of the first server>` or use `kubeconfigAddress: lan`"),
                    );
                    KubeconfigAddress::Lan
                }
                Some((k, _)) => k,
                None if tailscale.is_some() => KubeconfigAddress::Tailscale,
                None => KubeconfigAddress::Lan,
            };
            RemoteAccess {
                tailscale,
                extra_sans: r.extra_sans.iter().map(|s| s.value.clone()).collect(),
                kubeconfig_address,
            }
        }
        None => RemoteAccess {
            tailscale: None,
            extra_sans: Vec::new(),
            kubeconfig_address: KubeconfigAddress::Lan,
        },
    };
    (
        Network {
            subnet: subnet.unwrap_or_else(fallback_net),
            gateway: gateway.map_or(Ipv4Addr::UNSPECIFIED, |g| g.0),
            domain: domain.unwrap_or_default(),
            load_balancer_pool: pool.map_or(
                Ipv4Range {
                    start: Ipv4Addr::UNSPECIFIED,
                    end: Ipv4Addr::UNSPECIFIED,
                },
                |p| p.0,
            ),
            ingress_ip: ingress_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            dns_provider,
            dns,
            remote_access,
        },
        NetSpans {
            gateway: gateway.map(|g| g.1),
            domain: n.domain.as_ref().map(|d| d.span),
            pool: pool.map(|p| p.1),
        },
    )
}

fn host_or_ip(c: &mut Checker, v: &Spanned<String>, what: &str) {
    if v.value.parse::<Ipv4Addr>().is_ok() {
        return;
    }
    let ok = !v.value.is_empty()
        && v.value.len() <= 253
        && v.value
            .split('.')
            .all(|l| check_dns_label(l, "label").is_ok());
    if !ok {
        c.error(
            Diagnostic::error(
                "invalid-host",
                format!("`{}` is not a valid {what}", v.value),
            )
            .at(v.span)
            .help("write a host name such as `k3s-master.tail1234.ts.net` or an IPv4 address"),
        );
    }
}

fn storage(c: &mut Checker, raw: &RawLab) -> Option<Storage> {
    let s = raw.storage.as_ref()?;
    let nfs = c.require(
        &s.nfs,
        s.span,
        "nfs",
        "the NFS export that backs volumes",
        "add `nfs: {server: 192.168.2.2, path: /volume1/k8s-data}`",
    )?;
    let server = c.require(
        &nfs.server,
        nfs.span,
        "server",
        "the NFS server's address",
        "add e.g. `server: 192.168.2.2`",
    );
    if let Some(server) = server {
        host_or_ip(c, server, "NFS server");
    }
    let path = c.require(
        &nfs.path,
        nfs.span,
        "path",
        "the exported directory",
        "add e.g. `path: /volume1/k8s-data`",
    );
    if let Some(p) = path
        && !p.value.starts_with('/')
    {
        c.error(
            Diagnostic::error(
                "nfs-path",
                format!("the NFS path `{}` is not absolute", p.value),
            )
            .at(p.span)
            .help(format!(
                "write the exported path from the server's root, e.g. `/{}`",
                p.value.trim_start_matches("./")
            )),
        );
    }
    let storage_class = match &s.storage_class {
        Some(sc) => {
            c.label(sc, "storage class name");
            sc.value.clone()
        }
        None => "nfs-client".into(),
    };
    Some(Storage {
        nfs: Nfs {
            server: server?.value.clone(),
            path: path?.value.clone(),
        },
        storage_class,
    })
}

fn cluster(
    c: &mut Checker,
    cl: &Spanned<RawCluster>,
    network: Option<&(Network, NetSpans)>,
    storage: Option<&Storage>,
    pve_node: Option<&str>,
) -> Cluster {
    let k3s_version = c
        .require(
            &cl.k3s_version,
            cl.span,
            "k3sVersion",
            "every node runs this K3s release",
            "add e.g. `k3sVersion: v1.34.2+k3s1`",
        )
        .and_then(|v| c.parse(v, "invalid-k3s-version", K3sVersion::parse));
    let node_list: &[Spanned<RawNode>] = cl.nodes.as_ref().map_or(&[], |n| &n.value);
    match &cl.nodes {
        None => {
            c.error(
                Diagnostic::error("no-nodes", "`nodes` is missing: the cluster has no nodes")
                    .at(Span::point(cl.span.start))
                    .label("add `nodes:` to this mapping")
                    .help("list at least one node with `name`, `role: server` and `address`, e.g. `nodes: [{name: k3s-master, role: server, address: 192.168.2.20}]`"),
            );
        }
        Some(list) if list.value.is_empty() => {
            c.error(
                Diagnostic::error("no-nodes", "the cluster has no nodes")
                    .at(list.span)
                    .label("an empty list")
                    .help("list at least one node with `name`, `role: server` and `address`, e.g. `- {name: k3s-master, role: server, address: 192.168.2.20}`"),
            );
        }
        Some(_) => {}
    }
    let mut nodes = Vec::new();
    let mut names: HashMap<String, Span> = HashMap::new();
    let mut addresses: HashMap<Ipv4Addr, Span> = HashMap::new();
    let mut vmids: HashMap<u32, Span> = HashMap::new();
    for n in node_list {
        let name = c.require(
            &n.name,
            n.span,
            "name",
            "each node needs its host name",
            "add e.g. `name: k3s-worker-01`",
        );
        let role = c.require(
            &n.role,
            n.span,
            "role",
            "is it a control-plane `server` or a worker `agent`?",
            "add `role: server` or `role: agent`",
        );
        let address = c.require(
            &n.address,
            n.span,
            "address",
            "the node's static IPv4 address",
            "add e.g. `address: 192.168.2.21`",
        );
        if let Some(name) = name
            && c.label(name, "node name")
        {
            if let Some(first) = names.get(&name.value) {
                c.error(
                    Diagnostic::error(
                        "duplicate-node-name",
                        format!("two nodes are named `{}`", name.value),
                    )
                    .at(name.span)
                    .related(*first, "first used here")
                    .help("node names become Kubernetes node names and must be unique"),
                );
            } else {
                names.insert(name.value.clone(), name.span);
            }
        }
        let addr = address.and_then(|a| {
            c.parse(a, "invalid-address", parse_ipv4)
                .map(|ip| (ip, a.span))
        });
        if let Some((ip, span)) = addr {
            if let Some(first) = addresses.get(&ip) {
                c.error(
                    Diagnostic::error(
                        "duplicate-node-address",
                        format!("two nodes have the address {ip}"),
                    )
                    .at(span)
                    .related(*first, "first used here")
                    .help("each node needs its own static address"),
                );
            } else {
                addresses.insert(ip, span);
            }
            if let Some((net, spans)) = network {
                check_node_address(c, ip, span, net, spans);
            }
            if let Some(s) = storage
                && s.nfs.server == ip.to_string()
            {
                c.error(
                        Diagnostic::error("node-is-nfs-server", format!("the node address {ip} is also the NFS server's address"))
                            .at(span)
                            .help("the NFS server must be a separate machine (e.g. the NAS); check both addresses"),
                    );
            }
        }
        let mut labels = BTreeMap::new();
        for (k, v) in &n.labels {
            check_label(c, k, v);
            labels.insert(k.clone(), v.value.clone());
        }
        let mut taints = n.taints.iter().filter_map(|t| taint(c, t)).collect();
        let gpu = gpu::node(c, &n.gpu, &mut labels, &n.labels, &mut taints);
        let ssh = n.ssh.as_ref().map(|s| ssh(c, s)).unwrap_or_default();
        let vm = n.vm.as_ref().and_then(|v| vm(c, v, pve_node, &mut vmids));
        if let (Some(name), Some(role), Some((address, _))) = (name, role, addr) {
            nodes.push(Node {
                name: name.value.clone(),
                role: role.value,
                address,
                ssh,
                labels,
                taints,
                gpu,
                vm,
            });
        }
    }
    let server_roles: Vec<Span> = node_list
        .iter()
        .filter_map(|n| n.role.as_ref())
        .filter(|r| r.value == NodeRole::Server)
        .map(|r| r.span)
        .collect();
    let servers = server_roles.len();
    let all_roles_known = node_list.iter().all(|n| n.role.is_some());
    if let Some(first) = node_list.first()
        && servers == 0
        && all_roles_known
    {
        let span = first.role.as_ref().map_or(first.span, |r| r.span);
        c.error(
            Diagnostic::error("no-server", "the cluster has no server node: every node is an agent")
                .at(span)
                .label("make this node `role: server`")
                .help("at least one node must be `role: server`: it runs the control plane and etcd, and the agents join it"),
        );
    }
    if servers >= 2 && servers.is_multiple_of(2) {
        let mut d = Diagnostic::warning("even-servers", format!("{servers} servers: etcd keeps quorum only with a majority, so {servers} servers tolerate no more failures than {}", servers - 1))
            .at(server_roles[servers - 1])
            .label(format!("server number {servers}"))
            .help(format!("use an odd number of servers ({} or {}), or make this node an agent", servers - 1, servers + 1));
        for (i, span) in server_roles[..servers - 1].iter().enumerate() {
            d = d.related(*span, format!("server number {}", i + 1));
        }
        c.error(d);
    }
    let etcd_snapshots = match &cl.etcd_snapshots {
        Some(e) => {
            let dir = match &e.dir {
                Some(d) if !d.value.starts_with('/') => {
                    c.error(
                        Diagnostic::error(
                            "invalid-path",
                            format!(
                                "the snapshot directory `{}` is not an absolute path",
                                d.value
                            ),
                        )
                        .at(d.span)
                        .help("write a directory on the servers, e.g. `/mnt/k3s-snapshots`"),
                    );
                    d.value.clone()
                }
                Some(d) => d.value.clone(),
                None => "/mnt/k3s-snapshots".into(),
            };
            let retention = e.retention.as_ref().map_or(14, |r| r.value);
            if let Some(r) = &e.retention
                && r.value == 0
            {
                c.error(
                    Diagnostic::error(
                        "zero-retention",
                        "keeping 0 etcd snapshots disables restore",
                    )
                    .at(r.span)
                    .help("keep at least a few, e.g. `retention: 14` (7 days at two a day)"),
                );
            }
            EtcdSnapshots {
                schedule: c.cron(&e.schedule, "0 */12 * * *"),
                retention,
                dir,
            }
        }
        None => EtcdSnapshots {
            schedule: Cron::parse("0 */12 * * *").expect("default"),
            retention: 14,
            dir: "/mnt/k3s-snapshots".into(),
        },
    };
    let os_updates = match &cl.os_updates {
        Some(o) => {
            let reboot = match &o.reboot {
                None => None,
                Some(r) if r.value == "never" => None,
                Some(r) => {
                    let ok = r.value.split_once(':').is_some_and(|(h, m)| {
                        h.len() == 2
                            && m.len() == 2
                            && h.parse::<u8>().is_ok_and(|h| h < 24)
                            && m.parse::<u8>().is_ok_and(|m| m < 60)
                    });
                    if !ok {
                        c.error(
                            Diagnostic::error("invalid-reboot", format!("`{}` is neither `never` nor a time `HH:MM`", r.value))
                                .at(r.span)
                                .help("write `never` or a time of day such as `03:30` (quote it: `\"03:30\"`)"),
                        );
                    }
                    Some(r.value.clone())
                }
            };
            OsUpdates {
                automatic: o
                    .automatic
                    .as_ref()
                    .map_or(OsUpdateMode::Security, |a| a.value),
                reboot,
            }
        }
        None => OsUpdates {
            automatic: OsUpdateMode::Security,
            reboot: None,
        },
    };
    Cluster {
        k3s_version: k3s_version.unwrap_or(K3sVersion {
            major: 0,
            minor: 0,
            patch: 0,
            k3s: 0,
        }),
        nodes,
        etcd_snapshots,
        os_updates,
    }
}

fn check_node_address(c: &mut Checker, ip: Ipv4Addr, span: Span, net: &Network, spans: &NetSpans) {
    let subnet = net.subnet;
    if subnet.prefix == 0 && subnet.network.is_unspecified() {
        return;
    }
    if !subnet.contains(ip) {
        c.error(
            Diagnostic::error(
                "node-outside-subnet",
                format!("the node address {ip} is outside the subnet {subnet}"),
            )
            .at(span)
            .help(format!(
                "use the node's static address on {subnet}, or correct `network.subnet`"
            )),
        );
    } else if ip == subnet.network || ip == subnet.broadcast() {
        let which = if ip == subnet.network {
            "network"
        } else {
            "broadcast"
        };
        c.error(
            Diagnostic::error(
                "node-reserved-address",
                format!("{ip} is the {which} address of {subnet}, not a host address"),
            )
            .at(span)
            .help(format!(
                "the first and last addresses of a subnet are reserved; use the node's own static address, from {} to {}",
                Ipv4Addr::from(u32::from(subnet.network).saturating_add(1)),
                Ipv4Addr::from(u32::from(subnet.broadcast()).saturating_sub(1)),
            )),
        );
    }
    if ip == net.gateway {
        let mut d = Diagnostic::error(
            "node-is-gateway",
            format!("the node address {ip} is the gateway's address"),
        )
        .at(span)
        .help("the gateway is your router; give the node its own address");
        if let Some(g) = spans.gateway {
            d = d.related(g, "gateway set here");
        }
        c.error(d);
    }
    if net.load_balancer_pool.contains(ip) && !net.load_balancer_pool.start.is_unspecified() {
        let mut d = Diagnostic::error(
            "pool-contains-node",
            format!(
                "the load-balancer pool {} contains the node address {ip}",
                net.load_balancer_pool
            ),
        )
        .at(span)
        .help(
            "MetalLB would hand this node's address to a service; shrink the pool or move the node",
        );
        if let Some(p) = spans.pool {
            d = d.related(p, "pool set here");
        }
        c.error(d);
    }
}

fn check_label(c: &mut Checker, key: &str, v: &Spanned<String>) {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        && name.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        && name.ends_with(|ch: char| ch.is_ascii_alphanumeric());
    let prefix_ok =
        prefix.is_none_or(|p| p.split('.').all(|l| check_dns_label(l, "label").is_ok()));
    if !name_ok || !prefix_ok {
        c.error(
            Diagnostic::error("invalid-label", format!("`{key}` is not a valid Kubernetes label key"))
                .at(v.span)
                .help("a label key is an optional DNS prefix and `/`, then up to 63 letters, digits, `-`, `_`, `.`"),
        );
    }
    let val = &v.value;
    let val_ok = val.len() <= 63
        && val
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        && (val.is_empty()
            || val.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && val.ends_with(|ch: char| ch.is_ascii_alphanumeric()));
    if !val_ok {
        c.error(
            Diagnostic::error("invalid-label", format!("`{val}` is not a valid Kubernetes label value"))
                .at(v.span)
                .help("a label value has up to 63 letters, digits, `-`, `_`, `.` and starts and ends with a letter or digit"),
        );
    }
}

fn taint(c: &mut Checker, t: &Spanned<String>) -> Option<Taint> {
    let help = "write `key=value:Effect` or `key:Effect`, with Effect one of NoSchedule, PreferNoSchedule, NoExecute";
    let Some((kv, effect)) = t.value.rsplit_once(':') else {
        c.error(
            Diagnostic::error("invalid-taint", format!("`{}` is not a taint", t.value))
                .at(t.span)
                .help(help),
        );
        return None;
    };
    let effect = match effect {
        "NoSchedule" => TaintEffect::NoSchedule,
        "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
        "NoExecute" => TaintEffect::NoExecute,
        other => {
            let mut d =
                Diagnostic::error("invalid-taint", format!("`{other}` is not a taint effect"))
                    .at(t.span);
            d = match crate::de::did_you_mean(
                other,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ) {
                Some(s) => d.help(format!("did you mean `{s}`? Write `{kv}:{s}`")),
                None => d.help(help),
            };
            c.error(d);
            return None;
        }
    };
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (kv.to_string(), None),
    };
    if key.is_empty() {
        c.error(
            Diagnostic::error(
                "invalid-taint",
                format!("the taint `{}` has no key", t.value),
            )
            .at(t.span)
            .help(help),
        );
        return None;
    }
    Some(Taint { key, value, effect })
}

fn ssh(c: &mut Checker, s: &Spanned<RawSsh>) -> Ssh {
    if let Some(p) = &s.port
        && p.value == 0
    {
        c.error(
            Diagnostic::error("invalid-port", "port 0 is not a usable SSH port")
                .at(p.span)
                .help("use the port sshd listens on, usually 22"),
        );
    }
    Ssh {
        user: s.user.as_ref().map(|u| u.value.clone()),
        port: s.port.as_ref().map(|p| p.value),
        identity: s.identity.as_ref().map(|i| i.value.clone()),
        sudo_password: s
            .sudo_password
            .as_ref()
            .map(|_| c.secret(&s.sudo_password, "sudo-password")),
    }
}

/// Name suffixes without public DNS: no ACME challenge can prove them, and each says why.
const PRIVATE_SUFFIXES: &[(&str, &str)] = &[
    ("home.arpa", "RFC 8375 reserves it for home networks"),
    (
        "lan",
        "it is a local-only name, not a delegated top-level domain",
    ),
    ("internal", "ICANN reserves it for private use"),
    ("local", "it belongs to multicast DNS (RFC 6762)"),
    (
        "localdomain",
        "it is a local-only name, not a delegated top-level domain",
    ),
    ("test", "RFC 2606 reserves it for testing"),
    ("example", "RFC 2606 reserves it for documentation"),
    ("invalid", "RFC 2606 reserves it as never valid"),
    ("localhost", "RFC 2606 reserves it for the loopback host"),
];

/// The private suffix `domain` ends in, with why it has no public DNS.
pub fn private_suffix(domain: &str) -> Option<(&'static str, &'static str)> {
    PRIVATE_SUFFIXES
        .iter()
        .find(|(suffix, _)| {
            domain == *suffix
                || domain
                    .strip_suffix(suffix)
                    .is_some_and(|rest| rest.ends_with('.'))
        })
        .copied()
}

fn tls(c: &mut Checker, t: &Spanned<RawTls>, network: Option<&(Network, NetSpans)>) -> Option<Tls> {
    if t.mode.as_ref().is_none_or(|m| m.value == TlsMode::Acme)
        && t.acme_email.is_none()
        && t.challenge.is_none()
        && t.environment.is_none()
    {
        // No ACME key at all (an empty mapping, or a `mode` that did not parse and fell back
        // to `acme`): one error, not one per missing ACME key.
        c.error(
            Diagnostic::error(
                "missing-key",
                "`tls` has neither Let's Encrypt settings nor `mode: internal-ca`",
            )
            .at(Span::point(t.span.start))
            .label("where certificates come from belongs in this mapping")
            .help("use `mode: internal-ca` for the lab's own certificate authority (names without public DNS such as `home.arpa`), or `acmeEmail` and `challenge` for Let's Encrypt"),
        );
        return None;
    }
    let mode = t.mode.as_ref().map_or(TlsMode::Acme, |m| m.value);
    if mode == TlsMode::InternalCa {
        for (at, key) in [
            (t.acme_email.as_ref().map(|v| v.span), "acmeEmail"),
            (t.environment.as_ref().map(|v| v.span), "environment"),
            (t.challenge.as_ref().map(|v| v.span), "challenge"),
        ] {
            if let Some(at) = at {
                c.error(
                    Diagnostic::warning(
                        "unused-key",
                        format!(
                            "`{key}` is only used by Let's Encrypt, and `mode` is `internal-ca`"
                        ),
                    )
                    .at(at)
                    .label("ignored")
                    .help(format!("remove `{key}`, or set `mode: acme`")),
                );
            }
        }
        return Some(Tls::InternalCa);
    }
    if let Some((net, spans)) = network
        && let Some((suffix, why)) = private_suffix(&net.domain)
    {
        let mut d = Diagnostic::error(
            "acme-private-domain",
            format!(
                "Let's Encrypt cannot issue certificates for `{}`: `.{suffix}` has no public DNS ({why}), so no ACME challenge can prove the name",
                net.domain
            ),
        )
        .help("set `tls: {mode: internal-ca}` for the lab's own certificate authority (each device trusts it once, see `homelab tls ca`), or use a domain you own at a DNS provider");
        if let Some(at) = spans.domain {
            d = d.at(at).label("a private name");
        } else {
            d = d.at(t.span);
        }
        c.error(d);
    }
    let email = c.require(
        &t.acme_email,
        t.span,
        "acmeEmail",
        "Let's Encrypt needs a contact address",
        "add e.g. `acmeEmail: you@example.com`",
    );
    if let Some(e) = email {
        let ok = e.value.split_once('@').is_some_and(|(u, d)| {
            !u.is_empty() && d.contains('.') && !d.starts_with('.') && !e.value.contains(' ')
        });
        if !ok {
            c.error(
                Diagnostic::error("invalid-email", format!("`{}` is not an email address", e.value))
                    .at(e.span)
                    .help("write the address Let's Encrypt should send expiry warnings to, e.g. `you@example.com`"),
            );
        }
    }
    let challenge = match &t.challenge {
        None => {
            c.error(
                Diagnostic::error("missing-key", "`challenge` is missing: how should Let's Encrypt check the domain?")
                    .at(Span::point(t.span.start))
                    .label("add `challenge:` to this mapping")
                    .help("a home lab is usually not reachable from the internet: use DNS-01, e.g. `challenge: {type: dns01, provider: cloudflare, apiToken: {secret: cloudflare-api-token}}`"),
            );
            None
        }
        Some(ch) => challenge(c, ch, network),
    };
    Some(Tls::Acme(Acme {
        acme_email: email?.value.clone(),
        environment: t
            .environment
            .as_ref()
            .map_or(AcmeEnvironment::Production, |e| e.value),
        challenge: challenge?,
    }))
}

fn challenge(
    c: &mut Checker,
    ch: &Spanned<RawChallenge>,
    network: Option<&(Network, NetSpans)>,
) -> Option<Challenge> {
    let kind = c.require(
        &ch.kind,
        ch.span,
        "type",
        "`dns01` or `http01`",
        "add `type: dns01` (works without exposing the lab to the internet)",
    )?;
    match kind.value {
        ChallengeKind::Http01 => {
            for (at, key) in [
                (ch.provider.as_ref().map(|v| v.span), "provider"),
                (ch.api_token.as_ref().map(|v| v.span), "apiToken"),
                (ch.access_key_id.as_ref().map(|v| v.span), "accessKeyId"),
                (ch.region.as_ref().map(|v| v.span), "region"),
            ] {
                if let Some(at) = at {
                    c.error(
                        Diagnostic::warning(
                            "unused-key",
                            format!("`{key}` is only used by the DNS-01 challenge, and this challenge is `http01`"),
                        )
                        .at(at)
                        .label("ignored")
                        .help(format!("remove `{key}`, or set `type: dns01`")),
                    );
                }
            }
            if let Some((net, _)) = network
                && is_private(net.ingress_ip)
                && !net.ingress_ip.is_unspecified()
            {
                c.error(
                        Diagnostic::error(
                            "http01-private-ingress",
                            format!(
                                "the HTTP-01 challenge cannot work: the ingress IP {} is a private address, so Let's Encrypt's servers cannot reach it to check the domain",
                                net.ingress_ip
                            ),
                        )
                        .at(kind.span)
                        .label("Let's Encrypt must fetch http://<host>/.well-known/acme-challenge/ from the internet")
                        .help("use `type: dns01` with your DNS provider's API token (e.g. `provider: cloudflare`, `apiToken: {secret: cloudflare-api-token}`); it proves ownership through a DNS record instead"),
                    );
            }
            Some(Challenge::Http01)
        }
        ChallengeKind::Dns01 => {
            let provider = c.require(
                &ch.provider,
                ch.span,
                "provider",
                "the DNS provider hosting the domain",
                "add `provider: cloudflare` (or digitalocean, route53, clouddns, azuredns, rfc2136)",
            )?;
            unused_provider_keys(c, ch, provider.value);
            match provider.value {
                Dns01Provider::Cloudflare => Some(Challenge::Dns01(Dns01::Cloudflare {
                    api_token: c.required_secret(
                        &ch.api_token,
                        ch.span,
                        "apiToken",
                        "cloudflare-api-token",
                        "DNS-01 with cloudflare needs an API token that may edit the zone's DNS records",
                    )?,
                })),
                Dns01Provider::Digitalocean => Some(Challenge::Dns01(Dns01::Digitalocean {
                    api_token: c.required_secret(
                        &ch.api_token,
                        ch.span,
                        "apiToken",
                        "digitalocean-api-token",
                        "DNS-01 with digitalocean needs an API token with write access",
                    )?,
                })),
                Dns01Provider::Route53 => {
                    let key_id = c.require(
                        &ch.access_key_id,
                        ch.span,
                        "accessKeyId",
                        "route53 needs the access key ID",
                        "add `accessKeyId: AKIA...`",
                    );
                    let region = c.require(
                        &ch.region,
                        ch.span,
                        "region",
                        "route53 needs the AWS region",
                        "add e.g. `region: eu-central-1`",
                    );
                    let secret = c.required_secret(
                        &ch.api_token,
                        ch.span,
                        "apiToken",
                        "route53-secret-access-key",
                        "DNS-01 with route53 needs the secret access key of the access key ID",
                    );
                    Some(Challenge::Dns01(Dns01::Route53 {
                        access_key_id: key_id?.value.clone(),
                        region: region?.value.clone(),
                        secret_access_key: secret?,
                    }))
                }
                Dns01Provider::Clouddns => {
                    let project = c.require(
                        &ch.project,
                        ch.span,
                        "project",
                        "clouddns needs the Google Cloud project holding the zone",
                        "add e.g. `project: my-lab-123456`",
                    );
                    let key = c.required_secret(
                        &ch.service_account_key,
                        ch.span,
                        "serviceAccountKey",
                        "clouddns-service-account-key",
                        "DNS-01 with clouddns needs the JSON key of a service account with the DNS Administrator role",
                    );
                    Some(Challenge::Dns01(Dns01::Clouddns {
                        project: project?.value.clone(),
                        service_account_key: key?,
                        hosted_zone: ch.hosted_zone.as_ref().map(|z| z.value.clone()),
                    }))
                }
                Dns01Provider::Azuredns => {
                    let mut need = |v: &Option<Spanned<String>>, key: &str, example: &str| {
                        c.require(
                            v,
                            ch.span,
                            key,
                            "azuredns signs in as a service principal and finds the zone by subscription and resource group",
                            &format!("add e.g. `{key}: {example}`"),
                        )
                        .map(|s| s.value.clone())
                    };
                    let client_id = need(&ch.client_id, "clientId", "00000000-0000-0000-0000-000000000000");
                    let subscription_id = need(&ch.subscription_id, "subscriptionId", "00000000-0000-0000-0000-000000000000");
                    let tenant_id = need(&ch.tenant_id, "tenantId", "00000000-0000-0000-0000-000000000000");
                    let resource_group = need(&ch.resource_group, "resourceGroup", "dns-zones");
                    let secret = c.required_secret(
                        &ch.client_secret,
                        ch.span,
                        "clientSecret",
                        "azuredns-client-secret",
                        "DNS-01 with azuredns needs the service principal's client secret (DNS Zone Contributor on the zone)",
                    );
                    Some(Challenge::Dns01(Dns01::Azuredns {
                        client_id: client_id?,
                        client_secret: secret?,
                        subscription_id: subscription_id?,
                        tenant_id: tenant_id?,
                        resource_group: resource_group?,
                        hosted_zone: ch.hosted_zone.as_ref().map(|z| z.value.clone()),
                    }))
                }
                Dns01Provider::Rfc2136 => {
                    let nameserver = c
                        .require(
                            &ch.nameserver,
                            ch.span,
                            "nameserver",
                            "rfc2136 sends its updates to the zone's authoritative server",
                            "add e.g. `nameserver: 192.168.2.53` (HOST or HOST:PORT)",
                        )
                        .and_then(|n| c.parse(n, "invalid-nameserver", check_nameserver));
                    let key_name = c.require(
                        &ch.tsig_key_name,
                        ch.span,
                        "tsigKeyName",
                        "rfc2136 signs every update with a TSIG key; the server refuses unsigned ones, and should",
                        "add the key's name as the server knows it, e.g. `tsigKeyName: cert-manager`",
                    );
                    let secret = c.required_secret(
                        &ch.tsig_secret,
                        ch.span,
                        "tsigSecret",
                        "rfc2136-tsig-secret",
                        "DNS-01 with rfc2136 needs the TSIG key's secret (base64, as `tsig-keygen` prints it)",
                    );
                    Some(Challenge::Dns01(Dns01::Rfc2136 {
                        nameserver: nameserver?,
                        tsig_key_name: key_name?.value.clone(),
                        tsig_algorithm: ch
                            .tsig_algorithm
                            .as_ref()
                            .map_or(TsigAlgorithm::HmacSha256, |a| a.value),
                        tsig_secret: secret?,
                    }))
                }
            }
        }
    }
}

/// The challenge keys each DNS-01 provider reads; any other one given is ignored, and said.
fn provider_keys(p: Dns01Provider) -> &'static [&'static str] {
    match p {
        Dns01Provider::Cloudflare | Dns01Provider::Digitalocean => &["apiToken"],
        Dns01Provider::Route53 => &["apiToken", "accessKeyId", "region"],
        Dns01Provider::Clouddns => &["project", "serviceAccountKey", "hostedZone"],
        Dns01Provider::Azuredns => &[
            "clientId",
            "clientSecret",
            "subscriptionId",
            "tenantId",
            "resourceGroup",
            "hostedZone",
        ],
        Dns01Provider::Rfc2136 => &["nameserver", "tsigKeyName", "tsigAlgorithm", "tsigSecret"],
    }
}

/// Where each provider-specific key of a challenge is, when given.
fn provider_key_spans(ch: &RawChallenge) -> [(&'static str, Option<Span>); 15] {
    let at = |v: Option<Span>| v;
    [
        ("apiToken", at(ch.api_token.as_ref().map(|v| v.span))),
        ("accessKeyId", at(ch.access_key_id.as_ref().map(|v| v.span))),
        ("region", at(ch.region.as_ref().map(|v| v.span))),
        ("project", at(ch.project.as_ref().map(|v| v.span))),
        (
            "serviceAccountKey",
            at(ch.service_account_key.as_ref().map(|v| v.span)),
        ),
        ("clientId", at(ch.client_id.as_ref().map(|v| v.span))),
        (
            "clientSecret",
            at(ch.client_secret.as_ref().map(|v| v.span)),
        ),
        (
            "subscriptionId",
            at(ch.subscription_id.as_ref().map(|v| v.span)),
        ),
        ("tenantId", at(ch.tenant_id.as_ref().map(|v| v.span))),
        (
            "resourceGroup",
            at(ch.resource_group.as_ref().map(|v| v.span)),
        ),
        ("hostedZone", at(ch.hosted_zone.as_ref().map(|v| v.span))),
        ("nameserver", at(ch.nameserver.as_ref().map(|v| v.span))),
        ("tsigKeyName", at(ch.tsig_key_name.as_ref().map(|v| v.span))),
        (
            "tsigAlgorithm",
            at(ch.tsig_algorithm.as_ref().map(|v| v.span)),
        ),
        ("tsigSecret", at(ch.tsig_secret.as_ref().map(|v| v.span))),
    ]
}

fn unused_provider_keys(c: &mut Checker, ch: &RawChallenge, p: Dns01Provider) {
    let wanted = provider_keys(p);
    let name = serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    for (key, span) in provider_key_spans(ch) {
        if let Some(at) = span
            && !wanted.contains(&key)
        {
            c.error(
                Diagnostic::warning(
                    "unused-key",
                    format!("`{key}` is not used by the DNS-01 provider `{name}`"),
                )
                .at(at)
                .label("ignored")
                .help(format!(
                    "`{name}` reads {}; remove `{key}`, or change `provider`",
                    wanted
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
        }
    }
}

/// `HOST` or `HOST:PORT` for a DNS server (`[IPv6]:PORT` for IPv6), as cert-manager takes it.
fn check_nameserver(text: &str) -> Result<String, Invalid> {
    let help = "write `HOST` or `HOST:PORT`, e.g. `192.168.2.53`, `ns1.example.com:5353` or `[fd00::53]:53`";
    let bad = || Invalid::new(format!("`{text}` is not a DNS server address"), help);
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(bad)?;
        v6.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        match after.strip_prefix(':') {
            Some(p) => (v6, Some(p)),
            None if after.is_empty() => (v6, None),
            None => return Err(bad()),
        }
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if let Some(p) = port
        && !p.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(Invalid::new(
            format!("`{text}`: the port must be a number from 1 to 65535"),
            help,
        ));
    }
    let is_v6 = text.starts_with('[');
    let host_ok = is_v6
        || host.parse::<Ipv4Addr>().is_ok()
        || (!host.is_empty() && host.split('.').all(|l| check_dns_label(l, "label").is_ok()));
    if !host_ok {
        return Err(bad());
    }
    Ok(text.to_string())
}

fn alerting(c: &mut Checker, a: &Spanned<RawAlerting>) -> Alerting {
    let mut names: HashMap<String, Span> = HashMap::new();
    let mut receivers = Vec::new();
    for r in &a.receivers {
        let name = c.require(
            &r.name,
            r.span,
            "name",
            "each receiver needs a name",
            "add e.g. `name: phone`",
        );
        if let Some(n) = name
            && c.label(n, "receiver name")
            && let Some(first) = names.insert(n.value.clone(), n.span)
        {
            c.error(
                Diagnostic::error(
                    "duplicate-receiver",
                    format!("two receivers are named `{}`", n.value),
                )
                .at(n.span)
                .related(first, "first used here")
                .help("give each receiver its own name"),
            );
        }
        if r.severities.is_empty() {
            c.error(
                Diagnostic::error(
                    "no-severities",
                    "this receiver receives no alerts: `severities` is empty or missing",
                )
                .at(Span::point(r.span.start))
                .help("add e.g. `severities: [critical]` for phone push of P1 alerts"),
            );
        }
        let kinds = [r.ntfy.is_some(), r.pushover.is_some(), r.webhook.is_some()]
            .iter()
            .filter(|k| **k)
            .count();
        if kinds != 1 {
            c.error(
                Diagnostic::error(
                    "receiver-kind",
                    if kinds == 0 {
                        "this receiver has no destination".to_string()
                    } else {
                        "this receiver has more than one destination".to_string()
                    },
                )
                .at(Span::point(r.span.start))
                .label(if kinds == 0 { "add `ntfy:`, `pushover:` or `webhook:`" } else { "keep one destination" })
                .help("give each receiver exactly one of `ntfy`, `pushover` or `webhook`; use two receivers for two destinations"),
            );
        }
        let kind = if let Some(n) = &r.ntfy {
            let url = match &n.url {
                Some(u) => {
                    check_url(c, u, "https://ntfy.sh");
                    u.value.trim_end_matches('/').to_string()
                }
                None => "https://ntfy.sh".into(),
            };
            let topic = c.require(
                &n.topic,
                n.span,
                "topic",
                "the ntfy topic to publish to",
                "add e.g. `topic: homelab-alerts-7f3k`",
            );
            let token = n.token.as_ref().map(|_| c.secret(&n.token, "ntfy-token"));
            topic.map(|t| ReceiverKind::Ntfy {
                url,
                topic: t.value.clone(),
                token,
            })
        } else if let Some(p) = &r.pushover {
            let user_key = c.required_secret(
                &p.user_key,
                p.span,
                "userKey",
                "pushover-user-key",
                "Pushover needs your user key",
            );
            let token = c.required_secret(
                &p.token,
                p.span,
                "token",
                "pushover-token",
                "Pushover needs the token of your Pushover application",
            );
            user_key
                .zip(token)
                .map(|(user_key, token)| ReceiverKind::Pushover { user_key, token })
        } else if let Some(w) = &r.webhook {
            c.require(
                &w.url,
                w.span,
                "url",
                "where to POST alerts",
                "add e.g. `url: https://hooks.example.com/alerts`",
            )
            .map(|u| {
                check_url(c, u, "https://hooks.example.com/alerts");
                ReceiverKind::Webhook {
                    url: u.value.clone(),
                }
            })
        } else {
            None
        };
        if let (Some(name), Some(kind)) = (name, kind) {
            receivers.push(Receiver {
                name: name.value.clone(),
                severities: r.severities.iter().map(|s| s.value).collect(),
                kind,
            });
        }
    }
    let runbook_base_url = a
        .runbook_base_url
        .as_ref()
        .filter(|u| check_url(c, u, "https://github.com/you/homelab/blob/main"))
        .map(|u| u.value.trim_end_matches('/').to_string());
    Alerting {
        receivers,
        runbook_base_url,
    }
}

fn secrets_settings(c: &mut Checker, s: &Spanned<RawSecrets>) -> SecretsSettings {
    let vault = s.vault.as_ref().and_then(|v| vault_settings(c, v));
    SecretsSettings { vault }
}

fn vault_settings(c: &mut Checker, v: &Spanned<RawVault>) -> Option<VaultSettings> {
    let address = c
        .require(
            &v.address,
            v.span,
            "address",
            "the Vault/OpenBao server",
            "add e.g. `address: https://bao.home.example.com:8200`",
        )
        .and_then(|a| vault_address(c, a));
    let transit_path = match &v.transit_path {
        Some(p) => {
            let trimmed = p.value.trim_matches('/');
            let ok = !trimmed.is_empty()
                && trimmed.split('/').all(|seg| {
                    !seg.is_empty()
                        && seg != "."
                        && seg != ".."
                        && seg
                            .chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
                });
            if !ok {
                c.error(
                    Diagnostic::error(
                        "vault-transit-path",
                        format!("`{}` is not a secrets engine mount path", p.value),
                    )
                    .at(p.span)
                    .help("write the path the transit engine is mounted at, e.g. `transit` or `sops/transit` (letters, digits, `-`, `_`, `.`, segments separated by `/`)"),
                );
                None
            } else {
                Some(trimmed.to_string())
            }
        }
        None => Some("transit".to_string()),
    };
    let key = c
        .require(
            &v.key,
            v.span,
            "key",
            "the transit key that wraps the secrets file's data key",
            "add e.g. `key: homelab` (create it with `bao write -f transit/keys/homelab`)",
        )
        .and_then(|k| {
            let ok = !k.value.is_empty()
                && k.value.len() <= 128
                && k.value
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
                && k.value != "."
                && k.value != "..";
            if ok {
                Some(k.value.clone())
            } else {
                c.error(
                    Diagnostic::error(
                        "vault-key-name",
                        format!("`{}` is not a transit key name", k.value),
                    )
                    .at(k.span)
                    .help("write the key's name only, e.g. `homelab` (letters, digits, `-`, `_` and `.`); its mount goes in `transitPath`"),
                );
                None
            }
        });
    let auth = v.auth.as_ref().map(|a| a.value).unwrap_or_default();
    Some(VaultSettings {
        address: address?,
        transit_path: transit_path?,
        key: key?,
        auth,
    })
}

/// What a server address check says about the server it names.
struct ServerWords {
    code: &'static str,
    noun: &'static str,
    example: &'static str,
    path: &'static str,
    plain_code: &'static str,
    plain_what: &'static str,
    plain_help: &'static str,
}

const VAULT_WORDS: ServerWords = ServerWords {
    code: "vault-address",
    noun: "a Vault address",
    example: "https://bao.home.example.com:8200",
    path: "/v1/...",
    plain_code: "vault-plain-http",
    plain_what: "the Vault token",
    plain_help: "serve Vault/OpenBao over TLS and write `https://`; `http://` is safe only for a server on this machine",
};

const PROXMOX_WORDS: ServerWords = ServerWords {
    code: "proxmox-endpoint",
    noun: "a Proxmox API address",
    example: "https://pve.home.example.com:8006",
    path: "/api2/json/...",
    plain_code: "proxmox-plain-http",
    plain_what: "the Proxmox credentials",
    plain_help: "use the API's `https://` address (Proxmox serves TLS on port 8006); `http://` is safe only for a server on this machine",
};

/// `scheme://host[:port]`, normalised without a trailing `/`; an error at it when it is not,
/// and a warning when a token would cross the network unencrypted.
fn vault_address(c: &mut Checker, a: &Spanned<String>) -> Option<String> {
    server_address(c, a, &VAULT_WORDS)
}

fn server_address(c: &mut Checker, a: &Spanned<String>, w: &ServerWords) -> Option<String> {
    let text = a.value.trim().trim_end_matches('/');
    let (scheme, rest) = match text.split_once("://") {
        Some((s @ ("https" | "http"), rest)) => (s, rest),
        _ => {
            c.error(
                Diagnostic::error(w.code, format!("`{}` is not {}", a.value, w.noun))
                .at(a.span)
                .help(if text.contains("://") {
                    format!("the address starts with `https://` (or `http://` for a server on this machine), e.g. `{}`", w.example)
                } else {
                    format!("add the scheme: `https://{text}`")
                }),
            );
            return None;
        }
    };
    let (host, port) = match rest.find(']') {
        Some(end) if rest.starts_with('[') => {
            let (h, tail) = rest.split_at(end + 1);
            (
                h,
                (!tail.is_empty()).then(|| tail.strip_prefix(':').unwrap_or("x")),
            )
        }
        _ => match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        },
    };
    let bracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .filter(|inner| inner.chars().all(|ch| ch.is_ascii_hexdigit() || ch == ':'));
    let bad_host = host.is_empty()
        || rest.contains(['/', '?', '#', '@', ' '])
        || (bracketed.is_none()
            && !host
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '.')));
    let bad_port = port.is_some_and(|p| p.parse::<u16>().map_or(true, |n| n == 0));
    if bad_host || bad_port {
        c.error(
            Diagnostic::error(w.code, format!("`{}` is not {}", a.value, w.noun))
                .at(a.span)
                .label(if bad_port && !bad_host {
                    "the port must be a number from 1 to 65535"
                } else {
                    "expected scheme://host[:port]"
                })
                .help(format!(
                    "write the server only, e.g. `{}`: no path (homelab adds `{}`), user or query",
                    w.example, w.path
                )),
        );
        return None;
    }
    let loopback = matches!(host, "localhost" | "[::1]") || host.starts_with("127.");
    if scheme == "http" && !loopback {
        c.error(
            Diagnostic::warning(
                w.plain_code,
                format!(
                    "{} would cross the network unencrypted to {host}",
                    w.plain_what
                ),
            )
            .at(a.span)
            .help(w.plain_help),
        );
    }
    Some(text.to_string())
}

/// VMIDs Proxmox accepts.
const VMIDS: std::ops::RangeInclusive<i64> = 100..=999_999_999;

fn vmid(c: &mut Checker, v: &Spanned<i64>, what: &str) -> Option<u32> {
    if VMIDS.contains(&v.value) {
        u32::try_from(v.value).ok()
    } else {
        c.error(
            Diagnostic::error(
                "proxmox-vmid",
                format!("{} is not a Proxmox VMID", v.value),
            )
            .at(v.span)
            .label(format!("{what}: a number from 100 to 999999999"))
            .help("Proxmox numbers VMs from 100; pick a free one, or leave it out to take the next free id"),
        );
        None
    }
}

/// A name Proxmox accepts for a storage, a bridge or a cluster node.
fn pve_name(c: &mut Checker, v: &Spanned<String>, what: &str, example: &str) -> Option<String> {
    let ok = v.value.starts_with(|ch: char| ch.is_ascii_alphabetic())
        && v.value.len() <= 63
        && v.value
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'));
    if ok {
        Some(v.value.clone())
    } else {
        c.error(
            Diagnostic::error("proxmox-name", format!("`{}` is not a {what}", v.value))
                .at(v.span)
                .help(format!("write the name Proxmox shows for it, e.g. `{example}` (a letter first, then letters, digits, `-`, `_`, `.`)")),
        );
        None
    }
}

fn proxmox(c: &mut Checker, p: &Spanned<RawProxmox>, network: Option<&Network>) -> Option<Proxmox> {
    let endpoint = c
        .require(
            &p.endpoint,
            p.span,
            "endpoint",
            "the Proxmox API's address",
            "add e.g. `endpoint: https://pve.home.example.com:8006`",
        )
        .and_then(|e| server_address(c, e, &PROXMOX_WORDS));
    let node = c
        .require(
            &p.node,
            p.span,
            "node",
            "the Proxmox node the VMs are made on",
            "add the node's name as Proxmox shows it, e.g. `node: pve`",
        )
        .and_then(|n| pve_name(c, n, "Proxmox node name", "pve"));
    let auth = proxmox_auth(c, p);
    let storage = match &p.storage {
        Some(s) => pve_name(c, s, "Proxmox storage name", "local-lvm"),
        None => Some("local-lvm".to_string()),
    };
    let bridge = match &p.bridge {
        Some(b) => pve_name(c, b, "network bridge name", "vmbr0"),
        None => Some("vmbr0".to_string()),
    };
    let template = c
        .require(
            &p.template,
            p.span,
            "template",
            "the cloud-init template the VMs are cloned from",
            "add `template: 9000` (an existing template's VMID) or `template: {image: https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img, checksum: sha256:HEX}`",
        )
        .and_then(|t| vm_template(c, t));
    let mut ssh_keys = Vec::new();
    let mut keys_ok = true;
    for k in &p.ssh_keys {
        let line = k.value.trim();
        let mut parts = line.split_whitespace();
        let kind = parts.next().unwrap_or_default();
        let ok =
            (kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-"))
                && parts.next().is_some_and(|b| b.len() >= 16)
                && !line.contains(['\n', '\r']);
        if ok {
            ssh_keys.push(line.to_string());
        } else {
            keys_ok = false;
            c.error(
                Diagnostic::error("proxmox-ssh-key", "this is not an SSH public key line")
                    .at(k.span)
                    .help("paste a whole public key line, e.g. the content of `~/.ssh/id_ed25519.pub` (`ssh-ed25519 AAAA... you@host`)"),
            );
        }
    }
    if p.ssh_keys.is_empty() {
        keys_ok = false;
        c.error(
            Diagnostic::error(
                "missing-key",
                "`sshKeys` is missing: the VMs would have no key to log in with",
            )
            .at(Span::point(p.span.start))
            .scope(p.span)
            .suggest("sshKeys")
            .label("add `sshKeys` to this mapping")
            .help("add `sshKeys: [\"ssh-ed25519 AAAA... you@host\"]` (the content of `~/.ssh/id_ed25519.pub`); cloud-init installs them for the login user"),
        );
    }
    let nameserver = match &p.nameserver {
        Some(n) => c.parse(n, "invalid-address", parse_ipv4),
        None => network.map(|n| n.gateway),
    };
    Some(Proxmox {
        endpoint: endpoint?,
        node: node?,
        auth: auth?,
        verify_tls: p.verify_tls.as_ref().is_none_or(|v| v.value),
        storage: storage?,
        template: template?,
        bridge: bridge?,
        ssh_keys: keys_ok.then_some(ssh_keys)?,
        nameserver: nameserver?,
    })
}

fn proxmox_auth(c: &mut Checker, p: &Spanned<RawProxmox>) -> Option<ProxmoxAuth> {
    if let (Some(t), Some(u)) = (&p.token_id, &p.user) {
        c.error(
            Diagnostic::error(
                "proxmox-auth-both",
                "both an API token and a user are given",
            )
            .at(u.span)
            .related(t.span, "the API token")
            .help("keep `tokenId` + `tokenSecret` (preferred) or `user` + `password`, not both"),
        );
        return None;
    }
    if let Some(t) = &p.token_id {
        let ok = t.value.split_once('!').is_some_and(|(user, name)| {
            user_at_realm(user)
                && !name.is_empty()
                && name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
        });
        if !ok {
            c.error(
                Diagnostic::error("proxmox-token-id", format!("`{}` is not an API token id", t.value))
                    .at(t.span)
                    .help("write it as Proxmox shows it under Datacenter > API Tokens: `USER@REALM!NAME`, e.g. `homelab@pve!lab`"),
            );
        }
        let secret = c.required_secret(
            &p.token_secret,
            p.span,
            "tokenSecret",
            "proxmox-token",
            "the API token's secret",
        );
        if let Some(pw) = &p.password {
            c.error(
                Diagnostic::error(
                    "proxmox-auth-both",
                    "a password is given beside an API token",
                )
                .at(pw.span)
                .help("remove `password` (it goes with `user`); the token logs in by itself"),
            );
            return None;
        }
        return Some(ProxmoxAuth::Token {
            token_id: ok.then(|| t.value.clone())?,
            token_secret: secret?,
        });
    }
    if let Some(u) = &p.user {
        let ok = user_at_realm(&u.value);
        if !ok {
            c.error(
                Diagnostic::error(
                    "proxmox-user",
                    format!("`{}` is not a Proxmox user", u.value),
                )
                .at(u.span)
                .help("write the user with its realm, e.g. `root@pam` or `homelab@pve`"),
            );
        }
        if let Some(t) = &p.token_secret {
            c.error(
                Diagnostic::error("proxmox-auth-both", "a token secret is given beside a user")
                    .at(t.span)
                    .help("remove `tokenSecret`, or replace `user` with the token's `tokenId`"),
            );
            return None;
        }
        let password = c.required_secret(
            &p.password,
            p.span,
            "password",
            "proxmox-password",
            "the user's password",
        );
        return Some(ProxmoxAuth::Password {
            user: ok.then(|| u.value.clone())?,
            password: password?,
        });
    }
    c.error(
        Diagnostic::error("missing-key", "`tokenId` is missing: how homelab logs in to Proxmox")
            .at(Span::point(p.span.start))
            .scope(p.span)
            .suggest("tokenId")
            .label("add `tokenId` and `tokenSecret` to this mapping")
            .help("add `tokenId: homelab@pve!lab` and `tokenSecret: {secret: proxmox-token}` (store it with `homelab secrets set proxmox-token`), or `user: root@pam` and `password: {secret: proxmox-password}`"),
    );
    None
}

/// `USER@REALM` as Proxmox names users.
fn user_at_realm(text: &str) -> bool {
    text.split_once('@').is_some_and(|(user, realm)| {
        !user.is_empty()
            && !user.contains([':', '!', ' ', '/'])
            && !realm.is_empty()
            && realm
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
    })
}

fn vm_template(c: &mut Checker, t: &Spanned<RawTemplate>) -> Option<VmTemplate> {
    match &t.value {
        RawTemplate::Vmid(n) => vmid(
            c,
            &Spanned {
                value: *n,
                span: t.span,
            },
            "the template",
        )
        .map(|vmid| VmTemplate::Vmid { vmid }),
        RawTemplate::Image(i) => {
            let url = c
                .require(&i.image, t.span, "image", "the cloud image's URL", "add e.g. `image: https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img`")
                .filter(|u| check_url(c, u, "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"));
            let file_name = url.and_then(|u| {
                let last = u.value.split(['?', '#']).next().unwrap_or_default().rsplit('/').next().unwrap_or_default();
                let (stem, ext) = last.rsplit_once('.').unwrap_or((last, ""));
                let safe = !stem.is_empty() && stem.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'));
                match ext {
                    "qcow2" | "raw" | "vmdk" if safe => Some(last.to_string()),
                    // Cloud images named `.img` are qcow2 files; Proxmox imports only by extension.
                    "img" if safe => Some(format!("{stem}.qcow2")),
                    _ => {
                        c.error(
                            Diagnostic::error("proxmox-image-format", format!("`{last}` is not a disk image Proxmox can import"))
                                .at(u.span)
                                .help("point at a cloud image file ending in `.img`, `.qcow2`, `.raw` or `.vmdk` (letters, digits, `-`, `_`, `.` in its name)"),
                        );
                        None
                    }
                }
            });
            let checksum = c
                .require(&i.checksum, t.span, "checksum", "the image's checksum, so a damaged or changed download is refused", "add `checksum: sha256:HEX` from the image's SHA256SUMS file")
                .and_then(|s| {
                    let parsed = s.value.trim().split_once(':').and_then(|(alg, hex)| {
                        let (alg, len) = match alg.to_ascii_lowercase().as_str() {
                            "sha256" => (ChecksumAlgorithm::Sha256, 64),
                            "sha512" => (ChecksumAlgorithm::Sha512, 128),
                            _ => return None,
                        };
                        (hex.len() == len && hex.chars().all(|ch| ch.is_ascii_hexdigit()))
                            .then(|| (alg, hex.to_ascii_lowercase()))
                    });
                    if parsed.is_none() {
                        c.error(
                            Diagnostic::error("proxmox-checksum", format!("`{}` is not a checksum", s.value))
                                .at(s.span)
                                .help("write `sha256:` and the 64 hex digits from the image's SHA256SUMS (or `sha512:` and 128)"),
                        );
                    }
                    parsed
                });
            let fixed = match &i.vmid {
                Some(v) => Some(vmid(c, v, "the template")?),
                None => None,
            };
            let (checksum_algorithm, checksum) = checksum?;
            Some(VmTemplate::Image {
                url: url?.value.clone(),
                file_name: file_name?,
                checksum_algorithm,
                checksum,
                vmid: fixed,
            })
        }
    }
}

fn vm(
    c: &mut Checker,
    v: &Spanned<RawVm>,
    pve_node: Option<&str>,
    vmids: &mut HashMap<u32, Span>,
) -> Option<Vm> {
    let Some(default_node) = pve_node else {
        c.error(
            Diagnostic::error("vm-without-proxmox", "this node has a `vm` but the spec has no `proxmox:` section")
                .at(v.span)
                .help("add a top-level `proxmox:` section (endpoint, node, tokenId, tokenSecret, template, sshKeys), or remove `vm`"),
        );
        return None;
    };
    let fixed = match &v.vmid {
        Some(id) => {
            let n = vmid(c, id, "the VM")?;
            if let Some(first) = vmids.get(&n) {
                c.error(
                    Diagnostic::error("duplicate-vmid", format!("two VMs have the VMID {n}"))
                        .at(id.span)
                        .related(*first, "first used here")
                        .help("give each VM its own VMID, or leave `vmid` out to take the next free one"),
                );
                return None;
            }
            vmids.insert(n, id.span);
            Some(n)
        }
        None => None,
    };
    let cores = match &v.cores {
        Some(n) if (1..=512).contains(&n.value) => Some(n.value as u32),
        Some(n) => {
            c.error(
                Diagnostic::error(
                    "vm-cores",
                    format!("{} is not a number of CPU cores", n.value),
                )
                .at(n.span)
                .help("write a number from 1 to 512, e.g. `cores: 4`"),
            );
            None
        }
        None => Some(2),
    };
    let memory = sized(
        c,
        &v.memory,
        "4Gi",
        1 << 20,
        512 << 20,
        "memory",
        "whole MiB, at least `512Mi`, e.g. `memory: 8Gi`",
    )
    .map(|b| (b >> 20) as u64);
    let disk = sized(
        c,
        &v.disk,
        "32Gi",
        1 << 30,
        4 << 30,
        "disk",
        "whole GiB, at least `4Gi`, e.g. `disk: 64Gi`",
    )
    .map(|b| (b >> 30) as u64);
    let node = match &v.node {
        Some(n) => pve_name(c, n, "Proxmox node name", "pve"),
        None => Some(default_node.to_string()),
    };
    Some(Vm {
        vmid: fixed,
        cores: cores?,
        memory_mib: memory?,
        disk_gib: disk?,
        node: node?,
    })
}

/// A size that is a whole number of `unit` bytes and at least `min`.
fn sized(
    c: &mut Checker,
    v: &Opt<String>,
    default: &str,
    unit: u128,
    min: u128,
    what: &str,
    help: &str,
) -> Option<u128> {
    let Some(s) = v else {
        return Quantity::parse(default).ok().map(|q| q.bytes());
    };
    let bytes = c.parse(s, "invalid-quantity", Quantity::parse)?.bytes();
    if bytes % unit != 0 || bytes < min || bytes > (1u128 << 60) {
        c.error(
            Diagnostic::error(
                "vm-size",
                format!("`{}` is not a usable VM {what} size", s.value),
            )
            .at(s.span)
            .help(format!("write {help}")),
        );
        return None;
    }
    Some(bytes)
}

/// Whether `u` is an http(s) URL; an error diagnostic at it when not.
fn check_url(c: &mut Checker, u: &Spanned<String>, example: &str) -> bool {
    let ok = (u.value.starts_with("https://") || u.value.starts_with("http://"))
        && u.value
            .split("://")
            .nth(1)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/') && !rest.contains(' '));
    if !ok {
        c.error(
            Diagnostic::error(
                "invalid-url",
                format!("`{}` is not an http(s) URL", u.value),
            )
            .at(u.span)
            .help(if u.value.contains("://") || u.value.contains(' ') {
                format!("write a full URL such as `{example}`")
            } else {
                format!("add the scheme: `https://{}`", u.value)
            }),
        );
    }
    ok
}

fn services(c: &mut Checker, s: &Spanned<RawServices>) -> Services {
    let monitoring = s
        .monitoring
        .as_ref()
        .filter(|m| enabled(&m.enabled))
        .map(|m| Monitoring {
            retention: c.duration(&m.retention, "15d"),
            storage: c.quantity(&m.storage, "20Gi"),
            grafana_admin_password: c.secret(&m.grafana_admin_password, "grafana-admin-password"),
        });
    let logging = s.logging.as_ref().filter(|l| enabled(&l.enabled)).map(|l| {
        let retention = c.duration(&l.retention, "7d");
        if let Some(r) = &l.retention
            && retention.seconds() < 7 * 86_400 {
                c.error(
                    Diagnostic::warning("short-log-retention", format!("logs are kept {retention}, less than the 7 days the lab's requirements ask for (NFR19)"))
                        .at(r.span)
                        .help("use `retention: 7d` or more, unless you mean it"),
                );
            }
        Logging {
            retention,
            storage: c.quantity(&l.storage, "10Gi"),
        }
    });
    let postgres = s
        .postgres
        .as_ref()
        .filter(|p| enabled(&p.enabled))
        .map(|p| postgres(c, p));
    let ollama = s.ollama.as_ref().filter(|o| enabled(&o.enabled)).map(|o| {
        for m in &o.models {
            if m.value.trim().is_empty() || m.value.contains(char::is_whitespace) {
                c.error(
                    Diagnostic::error(
                        "invalid-model",
                        format!("`{}` is not an Ollama model name", m.value),
                    )
                    .at(m.span)
                    .help("write a model as listed on ollama.com/library, e.g. `llama3.2:3b`"),
                );
            }
        }
        Ollama {
            models: o.models.iter().map(|m| m.value.clone()).collect(),
            storage: c.quantity(&o.storage, "50Gi"),
            gpu: o.gpu.as_ref().is_some_and(|g| g.value),
            host: o
                .host
                .as_ref()
                .map_or_else(|| "ollama".into(), |h| h.value.clone()),
        }
    });
    let n8n = s.n8n.as_ref().filter(|n| enabled(&n.enabled)).map(|n| N8n {
        database: n
            .database
            .as_ref()
            .map_or_else(|| "n8n".into(), |d| d.value.clone()),
        encryption_key: c.secret(&n.encryption_key, "n8n-encryption-key"),
        host: n
            .host
            .as_ref()
            .map_or_else(|| "n8n".into(), |h| h.value.clone()),
    });
    let openbao = s
        .openbao
        .as_ref()
        .filter(|o| enabled(&o.enabled))
        .map(|o| Openbao {
            storage: c.quantity(&o.storage, "5Gi"),
            audit_storage: c.quantity(&o.audit_storage, "5Gi"),
            host: o
                .host
                .as_ref()
                .map_or_else(|| "bao".into(), |h| h.value.clone()),
        });
    let vllm = s
        .vllm
        .as_ref()
        .filter(|v| enabled(&v.enabled))
        .map(|v| vllm::vllm(c, v));
    let open_webui = s
        .open_webui
        .as_ref()
        .filter(|o| enabled(&o.enabled))
        .map(|o| open_webui::open_webui(c, o));
    let paperless = s
        .paperless
        .as_ref()
        .filter(|p| enabled(&p.enabled))
        .map(|p| {
            if let Some(l) = &p.ocr_language {
                let ok = !l.value.is_empty()
                    && l.value.split('+').all(|x| {
                        x.len() >= 3 && x.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')
                    });
                if !ok {
                    c.error(
                        Diagnostic::error(
                            "invalid-ocr-language",
                            format!("`{}` is not a list of Tesseract language codes", l.value),
                        )
                        .at(l.span)
                        .help("write three-letter codes joined by `+`, e.g. `deu+eng`"),
                    );
                }
            }
            Paperless {
                storage: c.quantity(&p.storage, "50Gi"),
                secret_key: c.secret(&p.secret_key, "paperless-secret-key"),
                ocr_language: p
                    .ocr_language
                    .as_ref()
                    .map_or_else(|| "eng".into(), |l| l.value.clone()),
                host: p
                    .host
                    .as_ref()
                    .map_or_else(|| "paperless".into(), |h| h.value.clone()),
            }
        });
    let dev_proxy = s
        .dev_proxy
        .as_ref()
        .filter(|d| enabled(&d.enabled))
        .map(|d| dev_proxy(c, d));
    let mut ports: HashMap<u16, Span> = HashMap::new();
    let mut names: HashMap<String, Span> = HashMap::new();
    let mut dev_containers = Vec::new();
    for dc in &s.dev_containers {
        let name = c.require(
            &dc.name,
            dc.span,
            "name",
            "each dev container needs a name",
            "add e.g. `name: tom`",
        );
        let port = c.require(
            &dc.ssh_port,
            dc.span,
            "sshPort",
            "the port SSH reaches this container on",
            "add e.g. `sshPort: 2222`",
        );
        if let Some(n) = name
            && c.label(n, "dev container name")
            && let Some(first) = names.insert(n.value.clone(), n.span)
        {
            c.error(
                Diagnostic::error(
                    "duplicate-dev-container",
                    format!("two dev containers are named `{}`", n.value),
                )
                .at(n.span)
                .related(first, "first used here")
                .help("give each dev container its own name"),
            );
        }
        if let Some(p) = port {
            if RESERVED_PORTS.contains(&p.value) {
                c.error(
                    Diagnostic::error("reserved-ssh-port", format!("port {} is taken by the lab itself", p.value))
                        .at(p.span)
                        .help("ports 22 (SSH to the nodes), 80, 443 (HTTP/HTTPS) and 6443 (Kubernetes API) are taken; use e.g. 2222"),
                );
            } else if p.value < 1024 {
                c.error(
                    Diagnostic::error(
                        "privileged-ssh-port",
                        format!("port {} is below 1024", p.value),
                    )
                    .at(p.span)
                    .help("use a port from 1024 up, e.g. 2222"),
                );
            } else if let Some(first) = ports.insert(p.value, p.span) {
                c.error(
                    Diagnostic::error(
                        "duplicate-ssh-port",
                        format!("two dev containers use SSH port {}", p.value),
                    )
                    .at(p.span)
                    .related(first, "first used here")
                    .help("each dev container needs its own port, e.g. 2222, 2223, ..."),
                );
            }
        }
        if dc.authorized_keys.is_empty() {
            c.error(
                Diagnostic::warning(
                    "no-authorized-keys",
                    "nobody can log in to this dev container: `authorizedKeys` is empty",
                )
                .at(Span::point(dc.span.start))
                .label("add `authorizedKeys:` to this dev container")
                .help("add your public key, e.g. the contents of `~/.ssh/id_ed25519.pub`"),
            );
        }
        for k in &dc.authorized_keys {
            let mut parts = k.value.split_whitespace();
            let kind = parts.next().unwrap_or_default();
            let ok =
                (kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-"))
                    && parts.next().is_some_and(|b| b.len() > 16);
            if !ok {
                let concealed = k.value.contains("PRIVATE KEY");
                let mut d = Diagnostic::error(
                    "invalid-public-key",
                    if concealed {
                        "this is a private key; only public keys belong here".to_string()
                    } else {
                        "this is not an SSH public key".to_string()
                    },
                )
                .at(k.span)
                .help(
                    "paste one line of a `.pub` file, e.g. `ssh-ed25519 AAAAC3Nza... you@laptop`",
                );
                if concealed {
                    d = d.conceal(k.span).help(
                        "remove the private key from this file and from its git history, and treat it as exposed: \
                         make a new key pair (`ssh-keygen -t ed25519`) and put the `.pub` line here",
                    );
                }
                c.error(d);
            }
        }
        if let (Some(n), Some(p)) = (name, port) {
            let cpu = dc
                .cpu
                .as_ref()
                .map_or_else(|| "2".into(), |v| v.value.clone());
            if let Some(v) = &dc.cpu {
                let ok = v.value.parse::<f64>().is_ok_and(|f| f > 0.0)
                    || v.value
                        .strip_suffix('m')
                        .is_some_and(|m| m.parse::<u32>().is_ok_and(|m| m > 0));
                if !ok {
                    c.error(
                        Diagnostic::error(
                            "invalid-cpu",
                            format!("`{}` is not a CPU amount", v.value),
                        )
                        .at(v.span)
                        .help("write cores (`2`, `0.5`) or millicores (`500m`)"),
                    );
                }
            }
            let image = dc
                .image
                .as_ref()
                .and_then(|i| match check_image_reference(&i.value) {
                    Ok(()) => Some(i.value.clone()),
                    Err(e) => {
                        c.invalid("invalid-image", i.span, e);
                        None
                    }
                });
            dev_containers.push(DevContainer {
                name: n.value.clone(),
                ssh_port: p.value,
                authorized_keys: dc.authorized_keys.iter().map(|k| k.value.clone()).collect(),
                workspace: c.quantity(&dc.workspace, "20Gi"),
                cpu,
                memory: c.quantity(&dc.memory, "4Gi"),
                image,
            });
        }
    }
    let out = Services {
        monitoring,
        logging,
        postgres,
        ollama,
        n8n,
        paperless,
        openbao,
        vllm,
        open_webui,
        dev_proxy,
        dev_containers,
    };
    if let Some(o) = &s.open_webui {
        open_webui::needs_a_model_server(c, &out, o.span);
    }
    out
}

fn postgres(c: &mut Checker, p: &Spanned<RawPostgres>) -> Postgres {
    if let Some(v) = &p.version
        && !(13..=18).contains(&v.value)
    {
        c.error(
            Diagnostic::error(
                "postgres-version",
                format!("PostgreSQL {} is not a supported major version", v.value),
            )
            .at(v.span)
            .help("use a supported major version from 13 to 18, e.g. `version: 17`"),
        );
    }
    let mut names: HashMap<String, Span> = HashMap::new();
    let mut databases = Vec::new();
    for d in &p.databases {
        let Some(name) = c.require(
            &d.name,
            d.span,
            "name",
            "each database needs a name",
            "add e.g. `name: n8n`",
        ) else {
            continue;
        };
        let ident_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.starts_with(|ch: char| ch.is_ascii_lowercase() || ch == '_')
                && s.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        };
        if !ident_ok(&name.value) {
            c.error(
                Diagnostic::error("invalid-database-name", format!("`{}` is not a valid database name", name.value))
                    .at(name.span)
                    .help("use lowercase letters, digits and `_`, starting with a letter, e.g. `n8n` or `home_assistant`"),
            );
        } else if ["postgres", "template0", "template1"].contains(&name.value.as_str()) {
            c.error(
                Diagnostic::error(
                    "reserved-database-name",
                    format!("`{}` is a database PostgreSQL creates itself", name.value),
                )
                .at(name.span)
                .help("choose a name for your application's database"),
            );
        }
        if let Some(first) = names.insert(name.value.clone(), name.span) {
            c.error(
                Diagnostic::error(
                    "duplicate-database",
                    format!("the database `{}` is listed twice", name.value),
                )
                .at(name.span)
                .related(first, "first listed here")
                .help("list each database once"),
            );
        }
        let owner = d
            .owner
            .as_ref()
            .map_or_else(|| name.value.clone(), |o| o.value.clone());
        if let Some(o) = &d.owner
            && (!ident_ok(&o.value) || o.value == "postgres")
        {
            c.error(
                Diagnostic::error(
                    "invalid-role-name",
                    format!("`{}` is not a usable owner role name", o.value),
                )
                .at(o.span)
                .help("use lowercase letters, digits and `_` (not `postgres`, the superuser)"),
            );
        }
        let default_secret = format!("postgres-{}-password", owner.replace('_', "-"));
        databases.push(Database {
            name: name.value.clone(),
            password: c.secret(&d.password, &default_secret),
            owner,
        });
    }
    let backup = match &p.backup {
        Some(b) => {
            if let Some(k) = &b.keep
                && k.value == 0
            {
                c.error(
                    Diagnostic::error("zero-keep", "keeping 0 backups means having no backup")
                        .at(k.span)
                        .help("keep at least one; the seeds ask for 7 (a week of nightly dumps)"),
                );
            }
            PostgresBackup {
                schedule: c.cron(&b.schedule, "0 2 * * *"),
                keep: b.keep.as_ref().map_or(7, |k| k.value),
                storage: c.quantity(&b.storage, "20Gi"),
                verify: b
                    .verify
                    .as_ref()
                    .map_or(BackupVerify::Checksums, |v| v.value),
            }
        }
        None => PostgresBackup {
            schedule: Cron::parse("0 2 * * *").expect("default"),
            keep: 7,
            storage: Quantity::parse("20Gi").expect("default"),
            verify: BackupVerify::Checksums,
        },
    };
    Postgres {
        version: p.version.as_ref().map_or(17, |v| v.value),
        storage: c.quantity(&p.storage, "20Gi"),
        superuser_password: c.secret(&p.superuser_password, "postgres-superuser-password"),
        databases,
        backup,
    }
}

fn dev_proxy(c: &mut Checker, d: &Spanned<RawDevProxy>) -> DevProxy {
    let mut paths: HashMap<String, Span> = HashMap::new();
    let mut routes = Vec::new();
    for r in &d.routes {
        let path = c.require(
            &r.path,
            r.span,
            "path",
            "the URL path to route",
            "add e.g. `path: /app1`",
        );
        let target = c.require(
            &r.target,
            r.span,
            "target",
            "where to send requests",
            "add e.g. `target: 192.168.2.50:3000`",
        );
        if let Some(p) = path {
            let ok = p.value.starts_with('/')
                && p.value.len() > 1
                && p.value
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "/-_.~".contains(ch))
                && !p.value.contains("//");
            if !ok {
                c.error(
                    Diagnostic::error("invalid-route-path", format!("`{}` is not a route path", p.value))
                        .at(p.span)
                        .help("write a path starting with `/`, of letters, digits, `-`, `_`, `.`, e.g. `/app1`"),
                );
            }
            let norm = p.value.trim_end_matches('/').to_string();
            if let Some(first) = paths.insert(norm, p.span) {
                c.error(
                    Diagnostic::error(
                        "duplicate-route",
                        format!("the path `{}` is routed twice", p.value),
                    )
                    .at(p.span)
                    .related(first, "first routed here")
                    .help("route each path once"),
                );
            }
        }
        let parsed = target.and_then(|t| {
            let parsed = t.value.rsplit_once(':').and_then(|(h, port)| {
                let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
                let host_ok = h.parse::<Ipv4Addr>().is_ok()
                    || (!h.is_empty() && h.split('.').all(|l| check_dns_label(l, "label").is_ok()));
                host_ok.then(|| (h.to_string(), port))
            });
            if parsed.is_none() {
                c.error(
                    Diagnostic::error(
                        "invalid-route-target",
                        format!("`{}` is not a `host:port` target", t.value),
                    )
                    .at(t.span)
                    .help("write the dev server's address and port, e.g. `192.168.2.50:3000`"),
                );
            }
            parsed
        });
        if let (Some(p), Some((host, port))) = (path, parsed) {
            routes.push(Route {
                path: p.value.trim_end_matches('/').to_string(),
                target_host: host,
                target_port: port,
            });
        }
    }
    DevProxy {
        routes,
        host: d
            .host
            .as_ref()
            .map_or_else(|| "dev".into(), |h| h.value.clone()),
    }
}

fn app(c: &mut Checker, a: &Spanned<RawApp>, sso_on: bool) -> Option<App> {
    let name = c.require(
        &a.name,
        a.span,
        "name",
        "each app needs a name",
        "add e.g. `name: mealie`",
    );
    let image = c.require(
        &a.image,
        a.span,
        "image",
        "the container image to run",
        "add e.g. `image: ghcr.io/mealie-recipes/mealie:v2.3.0`",
    );
    let port = c.require(
        &a.port,
        a.span,
        "port",
        "the port the container listens on",
        "add e.g. `port: 9000`",
    );
    if let Some(n) = name {
        c.label(n, "app name");
    }
    if let Some(i) = image {
        let last = i.value.rsplit('/').next().unwrap_or_default();
        if i.value.trim().is_empty() || i.value.contains(char::is_whitespace) {
            c.error(
                Diagnostic::error(
                    "invalid-image",
                    format!("`{}` is not a container image reference", i.value),
                )
                .at(i.span)
                .help("write e.g. `ghcr.io/mealie-recipes/mealie:v2.3.0`"),
            );
        } else if !last.contains(':') && !i.value.contains('@') {
            c.error(
                Diagnostic::warning("unpinned-image", format!("the image `{}` has no tag, so it runs whatever `latest` is today", i.value))
                    .at(i.span)
                    .help(format!("pin a version, e.g. `{}:v1.2.3`, so that rebuilding the lab gives the same result", i.value)),
            );
        } else if last.ends_with(":latest") {
            c.error(
                Diagnostic::warning(
                    "unpinned-image",
                    "`latest` changes under you, so a rebuild may not give the same app",
                )
                .at(i.span)
                .help("pin a version tag instead of `latest`"),
            );
        }
    }
    if let Some(p) = port
        && p.value == 0
    {
        c.error(
            Diagnostic::error(
                "invalid-port",
                "port 0 is not a port a container can listen on",
            )
            .at(p.span)
            .help("write the port the app listens on, e.g. `8080`"),
        );
    }
    let namespace = match &a.namespace {
        Some(ns) => {
            c.label(ns, "namespace");
            if ["kube-system", "kube-public", "kube-node-lease", "default"]
                .contains(&ns.value.as_str())
            {
                c.error(
                    Diagnostic::error(
                        "reserved-namespace",
                        format!("apps may not run in the `{}` namespace", ns.value),
                    )
                    .at(ns.span)
                    .help("leave `namespace` out (apps go to `apps`) or choose your own"),
                );
            }
            ns.value.clone()
        }
        None => "apps".into(),
    };
    for (k, v) in &a.env {
        check_env_name(c, k, v.span);
        if crate::de::looks_secret(k) {
            c.error(
                Diagnostic::warning(
                    "secret-in-env",
                    format!("`{k}` looks like a secret, but `env` values are written in the spec in plain text"),
                )
                .at(v.span)
                .label("plain text, committed to git")
                .help(format!(
                    "move it to `secretEnv: {{{k}: {{secret: NAME}}}}` and store the value with `homelab secrets set NAME`; if it is not a secret, ignore this warning"
                )),
            );
        }
    }
    let mut secret_env = BTreeMap::new();
    for (k, r) in &a.secret_env {
        check_env_name(c, k, a.span);
        if a.env.contains_key(k) {
            c.error(
                Diagnostic::error(
                    "duplicate-env",
                    format!("`{k}` is set both in `env` and in `secretEnv`"),
                )
                .at(a.env[k].span)
                .help("keep one of the two"),
            );
        }
        let default = format!(
            "{}-{}",
            name.map_or("app", |n| n.value.as_str()),
            k.to_ascii_lowercase().replace('_', "-")
        );
        secret_env.insert(k.clone(), c.secret(&Some(r.clone()), &default));
    }
    let mut vol_names: HashMap<String, Span> = HashMap::new();
    let mut volumes = Vec::new();
    for v in &a.volumes {
        let vname = c.require(
            &v.name,
            v.span,
            "name",
            "each volume needs a name",
            "add e.g. `name: data`",
        );
        let mount = c.require(
            &v.mount_path,
            v.span,
            "mountPath",
            "where the volume appears in the container",
            "add e.g. `mountPath: /data`",
        );
        let source = volume_source(c, v);
        if let Some(n) = vname
            && c.label(n, "volume name")
            && let Some(first) = vol_names.insert(n.value.clone(), n.span)
        {
            c.error(
                Diagnostic::error(
                    "duplicate-volume",
                    format!("two volumes of this app are named `{}`", n.value),
                )
                .at(n.span)
                .related(first, "first used here")
                .help("give each volume its own name"),
            );
        }
        if let Some(m) = mount
            && !m.value.starts_with('/')
        {
            c.error(
                Diagnostic::error(
                    "invalid-mount-path",
                    format!("the mount path `{}` is not absolute", m.value),
                )
                .at(m.span)
                .help(format!(
                    "write a path inside the container, e.g. `/{}`",
                    m.value
                )),
            );
        }
        if let (Some(n), Some(m), Some(source)) = (vname, mount, source) {
            volumes.push(Volume {
                name: n.value.clone(),
                mount_path: m.value.clone(),
                source,
                read_only: v.read_only.as_ref().is_some_and(|r| r.value),
            });
        }
    }
    let ports = app_ports(c, a);
    let load_balancer_ip = a
        .load_balancer_ip
        .as_ref()
        .and_then(|ip| c.parse(ip, "invalid-address", parse_ipv4));
    if let (Some(ip), true) = (&a.load_balancer_ip, a.ports.is_empty()) {
        c.error(
            Diagnostic::warning(
                "unused-key",
                "`loadBalancerIp` is only used with `ports`: without them the app has no LoadBalancer Service",
            )
            .at(ip.span)
            .label("ignored")
            .help("add the ports to expose at this address, e.g. `ports: [{name: dns-udp, port: 53, protocol: UDP}]`, or remove `loadBalancerIp`"),
        );
    }
    let resources = a
        .resources
        .as_ref()
        .map(|r| resources(c, r))
        .unwrap_or_default();
    let container_ports: Vec<u16> = port
        .map(|p| p.value)
        .into_iter()
        .chain(
            a.ports
                .iter()
                .filter_map(|p| p.port.as_ref().map(|p| p.value)),
        )
        .collect();
    let probe = a.probe.as_ref().and_then(|p| {
        let path = c.require(
            &p.path,
            p.span,
            "path",
            "the HTTP path that answers while the app is healthy",
            "add e.g. `path: /health`",
        )?;
        http_path(c, path, "probe path");
        let port = match &p.port {
            Some(pp) => {
                if !container_ports.contains(&pp.value) {
                    c.error(
                        Diagnostic::error(
                            "probe-port",
                            format!(
                                "the probe checks port {}, which the app does not declare",
                                pp.value
                            ),
                        )
                        .at(pp.span)
                        .help("use the app's `port` (the default) or one of its `ports`"),
                    );
                }
                pp.value
            }
            None => port.map_or(0, |p| p.value),
        };
        Some(Probe {
            path: path.value.clone(),
            port,
        })
    });
    let metrics = a.metrics.as_ref().and_then(|m| {
        let mport = c.require(
            &m.port,
            m.span,
            "port",
            "the port serving the metrics",
            "add e.g. `port: 9090` (or the app's `port`)",
        )?;
        if mport.value == 0 {
            c.error(
                Diagnostic::error("invalid-port", "port 0 cannot serve metrics")
                    .at(mport.span)
                    .help("write the port the app serves `/metrics` on"),
            );
        }
        if let Some(p) = a.ports.iter().find(|p| {
            p.port.as_ref().is_some_and(|pp| pp.value == mport.value)
                && p.protocol
                    .as_ref()
                    .is_some_and(|pr| pr.value == PortProtocol::Udp)
        }) {
            c.error(
                Diagnostic::error(
                    "metrics-port-udp",
                    format!(
                        "port {} is a UDP port; Prometheus scrapes over HTTP (TCP)",
                        mport.value
                    ),
                )
                .at(mport.span)
                .related(p.span, "declared as UDP here")
                .help("use the TCP port the app serves its metrics on"),
            );
        }
        let path = match &m.path {
            Some(p) => {
                http_path(c, p, "metrics path");
                p.value.clone()
            }
            None => "/metrics".to_string(),
        };
        Some(Metrics {
            port: mport.value,
            path,
        })
    });
    let no_host = a.host.as_ref().is_some_and(|h| h.value == "none");
    // With single sign-on an app is behind it unless it says otherwise (it has its own login).
    let auth = a.auth.as_ref().map_or(
        if sso_on && !no_host {
            AppAuth::Sso
        } else {
            AppAuth::None
        },
        |x| x.value,
    );
    if let (Some(au), Some(h)) = (&a.auth, &a.host)
        && au.value != AppAuth::None
        && no_host
    {
        let word = if au.value == AppAuth::Sso {
            "sso"
        } else {
            "basic"
        };
        c.error(
            Diagnostic::error(
                "auth-without-host",
                format!(
                    "`auth: {word}` guards the app's web address, but `host: none` gives it none"
                ),
            )
            .at(au.span)
            .related(h.span, "no web address")
            .help("remove `auth`, or give the app a host name"),
        );
    }
    if let Some(au) = &a.auth
        && au.value == AppAuth::Sso
        && !sso_on
    {
        c.error(
            Diagnostic::error(
                "sso-not-configured",
                "`auth: sso` needs the lab's single sign-on, but `auth.sso` is not set",
            )
            .at(au.span)
            .help("add `auth: {sso: {provider: authelia, users: [{name: alice}]}}` at the top level, or use `auth: basic` for the dashboard's login"),
        );
    }
    if let Some(r) = &a.replicas
        && r.value == 0
    {
        c.error(
            Diagnostic::warning("zero-replicas", "`replicas: 0` keeps the app stopped")
                .at(r.span)
                .help("remove `replicas` to let `kubectl scale` decide, or set at least 1; ignore this if the app is meant to be off"),
        );
    }
    let check_words = |c: &mut Checker, list: &[Spanned<String>], what: &str| {
        for w in list {
            if w.value.is_empty() {
                c.error(
                    Diagnostic::error("empty-argument", format!("an empty {what} entry"))
                        .at(w.span)
                        .help("remove it, or quote the text it should be"),
                );
            }
        }
    };
    check_words(c, &a.command, "`command`");
    check_words(c, &a.args, "`args`");
    let host = match &a.host {
        Some(h) if h.value == "none" => None,
        Some(h) => Some(h.value.clone()),
        None => name.map(|n| n.value.clone()),
    };
    Some(App {
        name: name?.value.clone(),
        image: image?.value.clone(),
        port: port?.value,
        host,
        namespace,
        env: a
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect(),
        secret_env,
        volumes,
        database: a.database.as_ref().map(|d| d.value.clone()),
        backup: a.backup.as_ref().is_none_or(|b| b.value),
        ports,
        load_balancer_ip,
        host_network: a.host_network.as_ref().is_some_and(|h| h.value),
        replicas: a.replicas.as_ref().map(|r| r.value),
        resources,
        command: a.command.iter().map(|w| w.value.clone()).collect(),
        args: a.args.iter().map(|w| w.value.clone()).collect(),
        probe,
        metrics,
        gpu: a.gpu.as_ref().is_some_and(|g| g.value),
        auth,
    })
}

fn shares(c: &mut Checker, raw: &RawLab, storage: Option<&Storage>) -> Vec<Share> {
    let mut names: HashMap<String, Span> = HashMap::new();
    let mut out = Vec::new();
    for sh in &raw.shares {
        let Some(name) = c.require(
            &sh.name,
            sh.span,
            "name",
            "each share needs a name",
            "add e.g. `name: media`",
        ) else {
            continue;
        };
        if !c.label(name, "share name") {
            continue;
        }
        if let Some(first) = names.insert(name.value.clone(), name.span) {
            c.error(
                Diagnostic::error(
                    "duplicate-share",
                    format!("two shares are named `{}`", name.value),
                )
                .at(name.span)
                .related(first, "first used here")
                .help("give each share its own name"),
            );
            continue;
        }
        let size = sh
            .size
            .as_ref()
            .and_then(|s| c.parse(s, "invalid-quantity", Quantity::parse));
        let kind = match &sh.nfs {
            Some(nfs) => {
                let path = c.require(
                    &nfs.path,
                    nfs.span,
                    "path",
                    "the exported directory with the data",
                    "add e.g. `path: /volume1/media`",
                );
                if let Some(p) = path
                    && !p.value.starts_with('/')
                {
                    c.error(
                        Diagnostic::error(
                            "nfs-path",
                            format!("the NFS path `{}` is not absolute", p.value),
                        )
                        .at(p.span)
                        .help(format!(
                            "write the exported path from the server's root, e.g. `/{}`",
                            p.value.trim_start_matches("./")
                        )),
                    );
                }
                let server = match (&nfs.server, storage) {
                    (Some(srv), _) => {
                        host_or_ip(c, srv, "NFS server");
                        Some(srv.value.clone())
                    }
                    (None, Some(st)) => Some(st.nfs.server.clone()),
                    (None, None) => {
                        c.error(
                            Diagnostic::error("missing-key", "`server` is missing: the spec has no `storage.nfs` whose server this share could use")
                                .at(Span::point(nfs.span.start))
                                .label("add `server` to this mapping")
                                .help("add e.g. `server: 192.168.2.2`, the NAS holding the export"),
                        );
                        None
                    }
                };
                path.zip(server).map(|(p, server)| ShareKind::Nfs {
                    server,
                    path: p.value.clone(),
                    capacity: size
                        .clone()
                        .unwrap_or_else(|| Quantity::parse("1Ti").expect("default")),
                })
            }
            None => match (size, &sh.size) {
                (Some(size), _) => Some(ShareKind::Claim { size }),
                (None, Some(_)) => None,
                (None, None) => {
                    c.error(
                        Diagnostic::error("share-kind", format!("the share `{}` says neither where its data is nor how big it is", name.value))
                            .at(name.span)
                            .help("add `nfs: {path: /volume1/media}` for existing data on the NAS, or `size: 100Gi` for a new shared volume"),
                    );
                    None
                }
            },
        };
        if let Some(kind) = kind {
            out.push(Share {
                name: name.value.clone(),
                kind,
            });
        }
    }
    out
}

/// The user's own charts: names that no other component has, a repository Helm can read, and
/// `dependsOn` naming components of this lab without a cycle.
fn charts(
    c: &mut Checker,
    raw: &RawLab,
    services: &Services,
    has_storage: bool,
    apps: &[App],
) -> Vec<UserChart> {
    let presence = CatalogPresence {
        storage: has_storage,
        monitoring: services.monitoring.is_some(),
        logging: services.logging.is_some(),
        postgres: services.postgres.is_some(),
        ollama: services.ollama.is_some(),
        n8n: services.n8n.is_some(),
        paperless: services.paperless.is_some(),
        openbao: services.openbao.is_some(),
        vllm: services.vllm.is_some(),
        open_webui: services.open_webui.is_some(),
        dev_proxy: services.dev_proxy.is_some() || !services.dev_containers.is_empty(),
        dev_containers: !services.dev_containers.is_empty(),
        shares: apps.iter().any(|a| {
            a.volumes
                .iter()
                .any(|v| matches!(v.source, VolumeSource::Share { .. }))
        }),
        sso: raw.auth.as_ref().is_some_and(|a| a.sso.is_some()),
    };
    let catalog = catalog_components(&presence);
    let app_names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
    let chart_names: Vec<&str> = raw
        .charts
        .iter()
        .filter_map(|ch| ch.name.as_ref().map(|n| n.value.as_str()))
        .collect();
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut out = Vec::new();
    // (chart, its dependsOn entries that are charts, with their spans)
    let mut edges: Vec<(String, Vec<(String, Span)>)> = Vec::new();
    for ch in &raw.charts {
        let name = c.require(
            &ch.name,
            ch.span,
            "name",
            "the release name",
            "add e.g. `name: jellyfin`",
        );
        let repo = c.require(
            &ch.repo,
            ch.span,
            "repo",
            "where the chart comes from",
            "add e.g. `repo: https://charts.example.com` or `repo: oci://ghcr.io/org/charts`",
        );
        let chart = c.require(
            &ch.chart,
            ch.span,
            "chart",
            "the chart's name in the repository",
            "add e.g. `chart: jellyfin`",
        );
        let version = c.require(
            &ch.version,
            ch.span,
            "version",
            "the chart version to install",
            "add e.g. `version: 1.4.2`",
        );
        let mut name_ok = false;
        if let Some(n) = name
            && c.label(n, "chart name")
        {
            if CATALOG_NAMES.contains(&n.value.as_str())
                || CATALOG_RELEASES.iter().any(|(_, r)| *r == n.value)
            {
                c.error(
                    Diagnostic::error("chart-name-taken", format!("`{}` is the name of a component or Helm release of the catalog", n.value))
                        .at(n.span)
                        .help(format!("choose another release name, e.g. `my-{}`; to change the catalog's own chart, use its `helm:` settings", n.value)),
                );
            } else if app_names.contains(&n.value.as_str()) {
                c.error(
                    Diagnostic::error("chart-name-taken", format!("`{}` is also the name of an app", n.value))
                        .at(n.span)
                        .help("give the chart or the app another name: each names a directory of the rendered tree"),
                );
            } else if let Some(first) = seen.insert(n.value.clone(), n.span) {
                c.error(
                    Diagnostic::error(
                        "duplicate-chart",
                        format!("two charts are named `{}`", n.value),
                    )
                    .at(n.span)
                    .related(first, "first used here")
                    .help("give each chart its own release name"),
                );
            } else {
                name_ok = true;
            }
        }
        if let Some(r) = repo {
            let rest = r
                .value
                .strip_prefix("https://")
                .or_else(|| r.value.strip_prefix("oci://"));
            let ok = rest.is_some_and(|rest| {
                !rest.is_empty() && !rest.starts_with('/') && !rest.contains(char::is_whitespace)
            });
            if !ok {
                let help = if r.value.starts_with("http://") {
                    format!(
                        "use `https://{}`: chart downloads must not be open to tampering on the way",
                        &r.value[7..]
                    )
                } else {
                    "write an `https://` Helm repository (the URL holding `index.yaml`) or an `oci://` registry path without the chart's name".to_string()
                };
                c.error(
                    Diagnostic::error(
                        "chart-repo",
                        format!(
                            "`{}` is not an https:// or oci:// chart repository",
                            r.value
                        ),
                    )
                    .at(r.span)
                    .help(help),
                );
            }
        }
        if let Some(ch_name) = chart
            && (ch_name.value.is_empty() || ch_name.value.contains(['/', ' ', ':']))
        {
            c.error(
                Diagnostic::error(
                    "invalid-chart",
                    format!("`{}` is not a chart name", ch_name.value),
                )
                .at(ch_name.span)
                .help(
                    "write the chart's own name, e.g. `jellyfin`; the repository goes into `repo`",
                ),
            );
        }
        if let Some(v) = version {
            check_chart_version(c, v);
        }
        let namespace = match &ch.namespace {
            Some(ns) => {
                c.label(ns, "namespace");
                Some(ns.value.clone())
            }
            None => name.map(|n| n.value.clone()),
        };
        if let Some(v) = &ch.values {
            check_values_shape(c, &v.value.0);
        }
        let mut depends_on = Vec::new();
        let mut chart_deps = Vec::new();
        for d in &ch.depends_on {
            let canonical = COMPONENT_SYNONYMS
                .iter()
                .find(|(word, _)| *word == d.value)
                .map_or(d.value.as_str(), |(_, c)| *c);
            if name.is_some_and(|n| n.value == d.value) {
                c.error(
                    Diagnostic::error(
                        "depends-on-cycle",
                        format!("the chart `{}` depends on itself", d.value),
                    )
                    .at(d.span)
                    .help("remove it from its own `dependsOn`"),
                );
                continue;
            }
            if chart_names.contains(&canonical) {
                chart_deps.push((canonical.to_string(), d.span));
            } else if !catalog.contains(&canonical) && !app_names.contains(&canonical) {
                let mut known: Vec<&str> = catalog.clone();
                known.extend(app_names.iter().copied());
                known.extend(
                    chart_names
                        .iter()
                        .copied()
                        .filter(|n| name.is_none_or(|me| me.value != *n)),
                );
                let mut diag = Diagnostic::error(
                    "unknown-dependency",
                    if CATALOG_NAMES.contains(&canonical) {
                        format!("`{}` is not part of this lab: it is not enabled", d.value)
                    } else {
                        format!(
                            "`{}` is neither a component, an app nor a chart of this lab",
                            d.value
                        )
                    },
                )
                .at(d.span);
                diag = match crate::de::did_you_mean(&d.value, &known) {
                    Some(m) => diag.suggest(m).help(format!("did you mean `{m}`?")),
                    None => diag.help(format!(
                        "name one of {}",
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                };
                c.error(diag);
                continue;
            }
            if !depends_on.contains(&canonical.to_string()) {
                depends_on.push(canonical.to_string());
            }
        }
        let host = ch.host.as_ref().and_then(|h| {
            let service = c.require(
                &h.service,
                h.span,
                "service",
                "the chart's Service the host name leads to",
                "add e.g. `service: jellyfin` (`helm template` shows the chart's Services)",
            );
            let port = c.require(
                &h.port,
                h.span,
                "port",
                "the Service's port",
                "add e.g. `port: 8096`",
            );
            if let Some(s) = service {
                c.label(s, "service name");
            }
            if let Some(p) = port
                && p.value == 0
            {
                c.error(
                    Diagnostic::error("invalid-port", "port 0 is not a Service port")
                        .at(p.span)
                        .help("write the port of the Service, e.g. `8096`"),
                );
            }
            Some(ChartHost {
                name: h
                    .name
                    .as_ref()
                    .map(|n| n.value.clone())
                    .or_else(|| name.map(|n| n.value.clone()))?,
                service: service?.value.clone(),
                port: port?.value,
            })
        });
        if let (Some(n), true) = (name, name_ok) {
            edges.push((n.value.clone(), chart_deps));
        }
        if let (Some(n), true, Some(repo), Some(chart), Some(version), Some(namespace)) =
            (name, name_ok, repo, chart, version, namespace)
        {
            out.push(UserChart {
                name: n.value.clone(),
                repo: repo.value.trim_end_matches('/').to_string(),
                chart: chart.value.clone(),
                version: version.value.trim().to_string(),
                namespace,
                values: ch.values.as_ref().map(|v| v.value.clone()),
                depends_on,
                host,
            });
        }
    }
    report_cycles(c, &edges);
    out
}

/// A `dependsOn` cycle among the charts, reported once at the entry that closes it.
fn report_cycles(c: &mut Checker, edges: &[(String, Vec<(String, Span)>)]) {
    let index = |name: &str| edges.iter().position(|(n, _)| n == name);
    // 0: not visited, 1: on the current path, 2: done.
    let mut state = vec![0u8; edges.len()];
    let mut reported: BTreeSet<Vec<String>> = BTreeSet::new();
    fn visit(
        i: usize,
        edges: &[(String, Vec<(String, Span)>)],
        index: &dyn Fn(&str) -> Option<usize>,
        state: &mut [u8],
        path: &mut Vec<usize>,
        found: &mut Vec<(Vec<String>, Span)>,
    ) {
        state[i] = 1;
        path.push(i);
        for (dep, span) in &edges[i].1 {
            let Some(j) = index(dep) else { continue };
            match state[j] {
                0 => visit(j, edges, index, state, path, found),
                1 => {
                    let from = path.iter().position(|&p| p == j).unwrap_or(0);
                    let cycle: Vec<String> =
                        path[from..].iter().map(|&p| edges[p].0.clone()).collect();
                    found.push((cycle, *span));
                }
                _ => {}
            }
        }
        path.pop();
        state[i] = 2;
    }
    let mut found = Vec::new();
    for i in 0..edges.len() {
        if state[i] == 0 {
            visit(i, edges, &index, &mut state, &mut Vec::new(), &mut found);
        }
    }
    for (cycle, span) in found {
        let mut key = cycle.clone();
        key.sort();
        if !reported.insert(key) {
            continue;
        }
        let mut shown = cycle.clone();
        shown.push(cycle[0].clone());
        c.error(
            Diagnostic::error(
                "depends-on-cycle",
                format!(
                    "the charts depend on each other in a circle: {}",
                    shown.join(" -> ")
                ),
            )
            .at(span)
            .label("this closes the circle")
            .help("nothing could be installed first: remove one of these `dependsOn` entries"),
        );
    }
}

/// Rules between apps and the rest: load-balancer addresses, shares, metrics.
fn app_checks(
    c: &mut Checker,
    raw: &RawLab,
    apps: &[App],
    shares: &[Share],
    network: Option<&(Network, NetSpans)>,
    services: &Services,
) {
    let raw_apps = raw
        .apps
        .iter()
        .filter(|ra| ra.name.is_some() && ra.image.is_some() && ra.port.is_some());
    let mut addresses: HashMap<Ipv4Addr, (String, Span)> = HashMap::new();
    let ingress_span = raw
        .network
        .as_ref()
        .and_then(|n| n.ingress_ip.as_ref())
        .map(|i| i.span);
    let share_names: Vec<&str> = shares.iter().map(|s| s.name.as_str()).collect();
    let mut used: HashMap<&str, Vec<(&str, Span)>> = HashMap::new();
    for (a, ra) in apps.iter().zip(raw_apps) {
        if let (Some(ip), Some(rip), Some((net, _))) =
            (a.load_balancer_ip, &ra.load_balancer_ip, network)
        {
            let pool = net.load_balancer_pool;
            if !pool.contains(ip) {
                c.error(
                    Diagnostic::error("lb-ip-outside-pool", format!("the address {ip} is not in the load-balancer pool {pool}"))
                        .at(rip.span)
                        .help(format!("MetalLB only hands out addresses from `network.loadBalancerPool`; choose a free one in {pool}, or leave `loadBalancerIp` out to get one")),
                );
            } else if ip == net.ingress_ip {
                let mut d = Diagnostic::error("lb-ip-taken", format!("the address {ip} is the ingress IP, which Traefik answers on"))
                    .at(rip.span)
                    .help(format!("choose another free address in {pool}; the apps' web pages are reached through the ingress anyway"));
                if let Some(s) = ingress_span {
                    d = d.related(s, "ingress IP set here");
                } else {
                    d = d.label("the ingress IP is the first address of the pool by default");
                }
                c.error(d);
            } else if let Some((other, first)) = addresses.get(&ip) {
                c.error(
                    Diagnostic::error(
                        "lb-ip-taken",
                        format!("the address {ip} is already the app `{other}`'s"),
                    )
                    .at(rip.span)
                    .related(*first, "taken here")
                    .help(format!("give each app its own address in {pool}")),
                );
            } else {
                addresses.insert(ip, (a.name.clone(), rip.span));
            }
        }
        for (v, rv) in a.volumes.iter().zip(ra.volumes.iter().filter(|rv| {
            rv.name.is_some()
                && rv.mount_path.is_some()
                && (rv.size.is_some() != rv.share.is_some())
        })) {
            let VolumeSource::Share { share, .. } = &v.source else {
                continue;
            };
            let span = rv.share.as_ref().map_or(rv.span, |s| s.span);
            let defined_but_invalid = raw
                .shares
                .iter()
                .any(|rs| rs.name.as_ref().is_some_and(|n| n.value == *share));
            if !share_names.contains(&share.as_str()) && defined_but_invalid {
                // Its own errors are reported at the share.
                continue;
            }
            if !share_names.contains(&share.as_str()) {
                let mut d = Diagnostic::error(
                    "unknown-share",
                    format!(
                        "the app `{}` mounts the share `{share}`, which `shares:` does not define",
                        a.name
                    ),
                )
                .at(span);
                d = match crate::de::did_you_mean(share, &share_names) {
                    Some(m) => d.suggest(m).help(format!("did you mean `{m}`? Otherwise add `{{name: {share}, nfs: {{path: /volume1/{share}}}}}` to `shares:`")),
                    None => d.help(format!("add it to `shares:`, e.g. `{{name: {share}, nfs: {{path: /volume1/{share}}}}}` for data already on the NAS")),
                };
                c.error(d);
                continue;
            }
            used.entry(share_names[share_names.iter().position(|n| n == share).expect("known")])
                .or_default()
                .push((a.namespace.as_str(), span));
        }
        if let (Some(_), Some(rm)) = (&a.metrics, &ra.metrics)
            && services.monitoring.is_none()
        {
            c.error(
                Diagnostic::error("metrics-without-monitoring", format!("the app `{}` asks for its metrics to be scraped, but monitoring is not enabled", a.name))
                    .at(rm.span)
                    .help("add `services.monitoring` (Prometheus scrapes through its ServiceMonitor), or remove `metrics`"),
            );
        }
        if let (true, Some(h)) = (a.host_network, &ra.host_network)
            && a.namespace == "apps"
        {
            c.error(
                Diagnostic::warning("host-network-shared-namespace", format!("the app `{}` uses the host network, which makes its namespace `apps` privileged for every app in it", a.name))
                    .at(h.span)
                    .help(format!("give it a namespace of its own, e.g. `namespace: {}`", a.name)),
            );
        }
    }
    for (share, rs) in shares
        .iter()
        .zip(raw.shares.iter().filter(|r| r.name.is_some()))
    {
        let name_span = rs.name.as_ref().map_or(rs.span, |n| n.span);
        match used.get(share.name.as_str()) {
            None => c.error(
                Diagnostic::warning("unused-share", format!("no app mounts the share `{}`", share.name))
                    .at(name_span)
                    .help(format!("mount it with `volumes: [{{name: {0}, mountPath: /{0}, share: {0}}}]`, or remove it", share.name)),
            ),
            Some(users) if matches!(share.kind, ShareKind::Claim { .. }) => {
                let first_ns = users[0].0;
                if let Some((ns, span)) = users.iter().find(|(ns, _)| *ns != first_ns) {
                    c.error(
                        Diagnostic::error("share-namespaces", format!("the share `{}` is mounted in the namespaces `{first_ns}` and `{ns}`, but a new shared volume lives in one namespace", share.name))
                            .at(*span)
                            .related(users[0].1, format!("mounted in `{first_ns}` here"))
                            .help("put the apps that share it in one `namespace`, or make it an `nfs` share, which every namespace can mount"),
                    );
                }
            }
            Some(_) => {}
        }
    }
}

/// Where a volume's data comes from: a size of its own or a share, not both.
fn volume_source(c: &mut Checker, v: &Spanned<RawVolume>) -> Option<VolumeSource> {
    match (&v.size, &v.share) {
        (Some(size), Some(share)) => {
            c.error(
                Diagnostic::error(
                    "volume-size-and-share",
                    "a volume is either the app's own (`size`) or a share (`share`), not both",
                )
                .at(share.span)
                .related(size.span, "size given here")
                .help(format!(
                    "remove `size` to mount the share `{}` (its size is set in `shares:`), or remove `share`",
                    share.value
                )),
            );
            None
        }
        (Some(size), None) => {
            if let Some(sp) = &v.sub_path {
                c.error(
                    Diagnostic::warning("unused-key", "`subPath` is only used with `share`")
                        .at(sp.span)
                        .label("ignored")
                        .help("remove `subPath`: the app's own volume is mounted whole"),
                );
            }
            c.parse(size, "invalid-quantity", Quantity::parse)
                .map(|size| VolumeSource::Claim { size })
        }
        (None, Some(share)) => {
            let sub_path = v.sub_path.as_ref().map(|sp| {
                let ok = !sp.value.is_empty()
                    && !sp.value.starts_with('/')
                    && sp
                        .value
                        .split('/')
                        .all(|part| part != ".." && !part.is_empty());
                if !ok {
                    c.error(
                        Diagnostic::error(
                            "invalid-sub-path",
                            format!("`{}` is not a directory inside the share", sp.value),
                        )
                        .at(sp.span)
                        .help("write a relative path without `..`, e.g. `tv` or `media/movies`"),
                    );
                }
                sp.value.clone()
            });
            Some(VolumeSource::Share {
                share: share.value.clone(),
                sub_path,
            })
        }
        (None, None) => {
            c.error(
                Diagnostic::error(
                    "missing-key",
                    "`size` is missing: how big the volume is (or `share` for a volume from `shares:`)",
                )
                .at(Span::new(v.span.start, v.span.start))
                .scope(v.span)
                .suggest("size")
                .label("add `size` to this mapping")
                .help("add e.g. `size: 5Gi`, or `share: media` to mount a share"),
            );
            None
        }
    }
}

/// The ports of an app's LoadBalancer Service: names, numbers and protocols, each pair once.
fn app_ports(c: &mut Checker, a: &Spanned<RawApp>) -> Vec<AppPort> {
    let mut names: HashMap<String, Span> = HashMap::new();
    let mut numbers: HashMap<(u16, PortProtocol), Span> = HashMap::new();
    let mut out = Vec::new();
    for p in &a.ports {
        let name = c.require(
            &p.name,
            p.span,
            "name",
            "each port needs a name",
            "add e.g. `name: dns-udp`",
        );
        let number = c.require(
            &p.port,
            p.span,
            "port",
            "the port number",
            "add e.g. `port: 53`",
        );
        let protocol = p.protocol.as_ref().map_or(PortProtocol::Tcp, |pr| pr.value);
        if let Some(n) = name {
            let ok = !n.value.is_empty()
                && n.value.len() <= 15
                && n.value
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
                && n.value.chars().any(|ch| ch.is_ascii_lowercase())
                && !n.value.starts_with('-')
                && !n.value.ends_with('-')
                && !n.value.contains("--");
            if !ok {
                c.error(
                    Diagnostic::error("invalid-port-name", format!("`{}` is not a port name", n.value))
                        .at(n.span)
                        .help("use up to 15 lowercase letters, digits and single `-`, with at least one letter, e.g. `dns-udp` or `rtsp`"),
                );
            } else if n.value == "http" || n.value == "metrics" {
                c.error(
                    Diagnostic::error("reserved-port-name", format!("the port name `{}` is the app's own", n.value))
                        .at(n.span)
                        .help("homelab names the app's `port` `http` and its metrics port `metrics`; choose another name"),
                );
            } else if let Some(first) = names.insert(n.value.clone(), n.span) {
                c.error(
                    Diagnostic::error(
                        "duplicate-port-name",
                        format!("two ports of this app are named `{}`", n.value),
                    )
                    .at(n.span)
                    .related(first, "first used here")
                    .help("give each port its own name, e.g. `dns-tcp` and `dns-udp`"),
                );
            }
        }
        if let Some(num) = number {
            if num.value == 0 {
                c.error(
                    Diagnostic::error("invalid-port", "port 0 cannot be exposed")
                        .at(num.span)
                        .help("write the port the container listens on"),
                );
            } else if let Some(first) = numbers.insert((num.value, protocol), num.span) {
                // At the protocol when it is written: a protocol the reader rejected stands
                // in as TCP, and this is then not reported a second time.
                let at = p.protocol.as_ref().map_or(num.span, |pr| pr.span);
                c.error(
                    Diagnostic::error(
                        "duplicate-port",
                        format!("port {}/{protocol} is listed twice", num.value),
                    )
                    .at(at)
                    .related(first, "first listed here")
                    .help("list each port and protocol once; the same number may appear once as TCP and once as UDP"),
                );
            }
        }
        if let (Some(n), Some(num)) = (name, number) {
            out.push(AppPort {
                name: n.value.clone(),
                port: num.value,
                protocol,
            });
        }
    }
    out
}

fn resources(c: &mut Checker, r: &Spanned<RawResources>) -> Resources {
    let mut out = Resources::default();
    type Amounts = (Option<(String, Span)>, Option<(Quantity, Span)>);
    let amounts = |c: &mut Checker, a: &Option<Spanned<RawResourceAmounts>>| -> Amounts {
        let Some(a) = a else { return (None, None) };
        let cpu = a.cpu.as_ref().filter(|v| {
            let ok = v.value.parse::<f64>().is_ok_and(|f| f > 0.0)
                || v.value
                    .strip_suffix('m')
                    .is_some_and(|m| m.parse::<u32>().is_ok_and(|m| m > 0));
            if !ok {
                c.error(
                    Diagnostic::error("invalid-cpu", format!("`{}` is not a CPU amount", v.value))
                        .at(v.span)
                        .help("write cores (`2`, `0.5`) or millicores (`500m`)"),
                );
            }
            ok
        });
        let memory = a.memory.as_ref().and_then(|m| {
            c.parse(m, "invalid-quantity", Quantity::parse)
                .map(|q| (q, m.span))
        });
        (cpu.map(|v| (v.value.clone(), v.span)), memory)
    };
    let (req_cpu, req_mem) = amounts(c, &r.requests);
    let (lim_cpu, lim_mem) = amounts(c, &r.limits);
    let millis = |s: &str| {
        s.strip_suffix('m').map_or_else(
            || s.parse::<f64>().ok().map(|f| f * 1000.0),
            |m| m.parse().ok(),
        )
    };
    if let (Some((rq, rs)), Some((lq, ls))) = (&req_mem, &lim_mem)
        && rq.bytes() > lq.bytes()
    {
        c.error(
            Diagnostic::error(
                "requests-above-limits",
                format!("the memory request {rq} is above the limit {lq}"),
            )
            .at(*rs)
            .related(*ls, "limit set here")
            .help("Kubernetes refuses such a pod: lower the request or raise the limit"),
        );
    }
    if let (Some((rq, rs)), Some((lq, ls))) = (&req_cpu, &lim_cpu)
        && millis(rq).zip(millis(lq)).is_some_and(|(r, l)| r > l)
    {
        c.error(
            Diagnostic::error(
                "requests-above-limits",
                format!("the CPU request {rq} is above the limit {lq}"),
            )
            .at(*rs)
            .related(*ls, "limit set here")
            .help("Kubernetes refuses such a pod: lower the request or raise the limit"),
        );
    }
    if let Some((v, _)) = req_cpu {
        out.requests_cpu = Some(v);
    }
    if let Some((q, _)) = req_mem {
        out.requests_memory = Some(q.to_string());
    }
    if let Some((v, _)) = lim_cpu {
        out.limits_cpu = Some(v);
    }
    if let Some((q, _)) = lim_mem {
        out.limits_memory = Some(q.to_string());
    }
    // A request above the default limit raises the limit with it, instead of a pod that
    // Kubernetes refuses.
    if r.limits.as_ref().is_none_or(|l| l.memory.is_none())
        && let (Some(rq), Some(lm)) = (&out.requests_memory, &out.limits_memory)
        && Quantity::parse(rq)
            .ok()
            .zip(Quantity::parse(lm).ok())
            .is_some_and(|(a, b)| a.bytes() > b.bytes())
    {
        out.limits_memory = Some(rq.clone());
    }
    out
}

/// An absolute URL path without spaces, for probes and metrics.
fn http_path(c: &mut Checker, p: &Spanned<String>, what: &str) {
    if !p.value.starts_with('/') || p.value.contains(char::is_whitespace) {
        c.error(
            Diagnostic::error(
                "invalid-http-path",
                format!("`{}` is not a {what}", p.value),
            )
            .at(p.span)
            .help(format!(
                "write a path starting with `/`, e.g. `/{}`",
                p.value.trim_start_matches('/').trim()
            )),
        );
    }
}

/// The `helm:` settings of every catalog chart that runs, by release name. Settings of a
/// service that does not run are kept quietly, like its other settings; those of the NFS
/// provisioner without `storage` are a warning, since it never runs then.
fn helm_overrides(
    c: &mut Checker,
    raw: &RawLab,
    services: &Services,
    has_storage: bool,
) -> BTreeMap<String, HelmOverride> {
    let mut out = BTreeMap::new();
    let infra = raw.infrastructure.as_ref();
    fn settings(s: Option<&Spanned<RawChartSettings>>) -> Option<&Spanned<RawHelm>> {
        s.and_then(|s| s.helm.as_ref())
    }
    let rs = raw.services.as_ref();
    let logging = rs
        .and_then(|s| s.logging.as_ref())
        .and_then(|l| l.helm.as_ref());
    let wanted: [(&str, Option<&Spanned<RawHelm>>, bool); 11] = [
        (
            "nfs-provisioner",
            settings(infra.and_then(|i| i.nfs.as_ref())),
            has_storage,
        ),
        (
            "metallb",
            settings(infra.and_then(|i| i.metallb.as_ref())),
            true,
        ),
        (
            "cert-manager",
            settings(infra.and_then(|i| i.cert_manager.as_ref())),
            true,
        ),
        (
            "traefik",
            settings(infra.and_then(|i| i.traefik.as_ref())),
            true,
        ),
        (
            "kube-prometheus-stack",
            rs.and_then(|s| s.monitoring.as_ref())
                .and_then(|m| m.helm.as_ref()),
            services.monitoring.is_some(),
        ),
        (
            "loki",
            logging.and_then(|l| l.loki.as_ref()),
            services.logging.is_some(),
        ),
        (
            "alloy",
            logging.and_then(|l| l.alloy.as_ref()),
            services.logging.is_some(),
        ),
        (
            "ollama",
            rs.and_then(|s| s.ollama.as_ref())
                .and_then(|o| o.helm.as_ref()),
            services.ollama.is_some(),
        ),
        (
            "n8n",
            rs.and_then(|s| s.n8n.as_ref())
                .and_then(|n| n.helm.as_ref()),
            services.n8n.is_some(),
        ),
        (
            "openbao",
            rs.and_then(|s| s.openbao.as_ref())
                .and_then(|o| o.helm.as_ref()),
            services.openbao.is_some(),
        ),
        (
            "open-webui",
            rs.and_then(|s| s.open_webui.as_ref())
                .and_then(|o| o.helm.as_ref()),
            services.open_webui.is_some(),
        ),
    ];
    for (release, helm, runs) in wanted {
        let Some(h) = helm else { continue };
        if release == "nfs-provisioner" && !runs {
            c.error(
                Diagnostic::warning(
                    "unused-key",
                    "the NFS provisioner runs only with `storage`, so these Helm settings are not used",
                )
                .at(h.span)
                .label("ignored")
                .help("add a `storage:` section with your NFS export, or remove `infrastructure.nfs`"),
            );
        }
        let over = helm_override(c, h, release);
        if runs {
            out.insert(release.to_string(), over);
        }
    }
    out
}

fn helm_override(c: &mut Checker, h: &Spanned<RawHelm>, release: &str) -> HelmOverride {
    if let Some(v) = &h.version {
        if release == "traefik" {
            c.error(
                Diagnostic::error(
                    "traefik-version",
                    "Traefik's chart version cannot be chosen: K3s bundles Traefik and upgrades it with K3s",
                )
                .at(v.span)
                .help("remove `version`; a newer Traefik comes with a newer `cluster.k3sVersion`, and `helm.values` still apply"),
            );
        } else {
            check_chart_version(c, v);
        }
    }
    if let Some(values) = &h.values {
        check_values_shape(c, &values.value.0);
    }
    HelmOverride {
        version: h
            .version
            .as_ref()
            .filter(|_| release != "traefik")
            .map(|v| v.value.trim().to_string()),
        values: h.values.as_ref().map(|v| v.value.clone()),
        span: h.span,
    }
}

/// A chart version as Helm repositories and OCI registries tag them (`1.2.3`, `v1.21.1`).
fn check_chart_version(c: &mut Checker, v: &Spanned<String>) {
    let t = v.value.trim();
    let ok = !t.is_empty()
        && t.len() <= 128
        && t.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        && t.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ".-+_".contains(ch));
    if !ok {
        c.error(
            Diagnostic::error(
                "invalid-chart-version",
                format!("`{}` is not a chart version", v.value),
            )
            .at(v.span)
            .help("write the version as the chart repository lists it, e.g. `1.2.3` or `v1.21.1` (no ranges, no spaces)"),
        );
    }
}

/// Values must be a mapping; a secret-looking key holding plain text is a warning, because
/// the values are written into the rendered tree as they are.
fn check_values_shape(c: &mut Checker, node: &crate::yaml::Node) {
    use crate::yaml::{Resolved, Value};
    if !matches!(node.value, Value::Map(_)) && node.resolve() != Some(Resolved::Null) {
        c.error(
            Diagnostic::error(
                "helm-values-not-mapping",
                format!(
                    "Helm values are a mapping of keys, but this is {}",
                    node.describe()
                ),
            )
            .at(node.span)
            .help("write the chart's keys below `values:`, e.g. `values: {replicaCount: 2}`"),
        );
        return;
    }
    fn walk(c: &mut Checker, node: &crate::yaml::Node) {
        match &node.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    let key = k.scalar_text().unwrap_or_default();
                    if crate::de::looks_secret(key)
                        && v.scalar_text().is_some()
                        && !matches!(v.resolve(), Some(Resolved::Null | Resolved::Bool(_)))
                        && !key.to_ascii_lowercase().contains("existing")
                    {
                        c.error(
                            Diagnostic::warning(
                                "secret-in-values",
                                format!("`{key}` looks like a secret, but Helm values are written in plain text into the rendered tree"),
                            )
                            .at(v.span)
                            .conceal(v.span)
                            .label("plain text, committed to git")
                            .help("most charts read such values from an existing Secret (a key such as `existingSecret`): create it from `manifests:` or a chart of your own; if it is not a secret, ignore this warning"),
                        );
                    }
                    walk(c, v);
                }
            }
            Value::Seq(items) => {
                for i in items {
                    walk(c, i);
                }
            }
            Value::Scalar { .. } => {}
        }
    }
    walk(c, node);
}

fn check_env_name(c: &mut Checker, k: &str, span: Span) {
    let ok = !k.is_empty()
        && k.starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_')
        && k.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if !ok {
        c.error(
            Diagnostic::error(
                "invalid-env-name",
                format!("`{k}` is not an environment variable name"),
            )
            .at(span)
            .help(
                "use letters, digits and `_`, not starting with a digit, e.g. `TZ` or `BASE_URL`",
            ),
        );
    }
}

/// Rules that span sections: host names, storage for stateful services, database owners,
/// NFS against the pool, receivers for critical alerts.
/// The validated sections the cross checks read.
struct Parts<'a> {
    services: &'a Services,
    apps: &'a [App],
    alerting: &'a Alerting,
    charts: &'a [UserChart],
    auth: &'a Auth,
}

fn cross_checks(
    c: &mut Checker,
    raw: &RawLab,
    network: Option<&(Network, NetSpans)>,
    storage: Option<&Storage>,
    parts: Parts<'_>,
) {
    let Parts {
        services,
        apps,
        alerting,
        charts,
        auth,
    } = parts;
    let rs = raw.services.as_ref();
    // Host names under the domain.
    let mut hosts: Vec<(String, String, Span)> = Vec::new();
    let services_span = rs.map_or(Span::default(), |s| s.span);
    for (h, what) in PLATFORM_HOSTS {
        hosts.push((h.to_string(), what.to_string(), Span::default()));
    }
    if let (Some(_), Some(m)) = (&services.monitoring, rs.and_then(|s| s.monitoring.as_ref())) {
        for h in ["grafana", "prometheus", "alertmanager"] {
            hosts.push((h.into(), format!("{h} (monitoring)"), m.span));
        }
    }
    let host_span = |h: &Opt<String>, fallback: Span| h.as_ref().map_or(fallback, |h| h.span);
    if let (Some(s), Some(rs)) = (&auth.sso, raw.auth.as_ref().and_then(|a| a.sso.as_ref())) {
        hosts.push((
            s.host.clone(),
            "the single sign-on portal".into(),
            host_span(&rs.host, rs.span),
        ));
    }
    if let (Some(o), Some(r)) = (&services.ollama, rs.and_then(|s| s.ollama.as_ref())) {
        hosts.push((o.host.clone(), "ollama".into(), host_span(&r.host, r.span)));
    }
    if let (Some(n), Some(r)) = (&services.n8n, rs.and_then(|s| s.n8n.as_ref())) {
        hosts.push((n.host.clone(), "n8n".into(), host_span(&r.host, r.span)));
    }
    if let (Some(o), Some(r)) = (&services.openbao, rs.and_then(|s| s.openbao.as_ref())) {
        hosts.push((o.host.clone(), "openbao".into(), host_span(&r.host, r.span)));
    }
    if let (Some(v), Some(r)) = (&services.vllm, rs.and_then(|s| s.vllm.as_ref())) {
        hosts.push((v.host.clone(), "vllm".into(), host_span(&r.host, r.span)));
    }
    if let (Some(o), Some(r)) = (&services.open_webui, rs.and_then(|s| s.open_webui.as_ref())) {
        hosts.push((
            o.host.clone(),
            "openWebui".into(),
            host_span(&r.host, r.span),
        ));
    }
    if let (Some(p), Some(r)) = (&services.paperless, rs.and_then(|s| s.paperless.as_ref())) {
        hosts.push((
            p.host.clone(),
            "paperless".into(),
            host_span(&r.host, r.span),
        ));
    }
    if let (Some(d), Some(r)) = (&services.dev_proxy, rs.and_then(|s| s.dev_proxy.as_ref())) {
        hosts.push((
            d.host.clone(),
            "the dev proxy".into(),
            host_span(&r.host, r.span),
        ));
    }
    let mut app_names: HashMap<&str, Span> = HashMap::new();
    for (a, ra) in apps.iter().zip(
        raw.apps
            .iter()
            .filter(|ra| ra.name.is_some() && ra.image.is_some() && ra.port.is_some()),
    ) {
        let name_span = ra.name.as_ref().map_or(ra.span, |n| n.span);
        if let Some(first) = app_names.insert(&a.name, name_span) {
            c.error(
                Diagnostic::error("duplicate-app", format!("two apps are named `{}`", a.name))
                    .at(name_span)
                    .related(first, "first used here")
                    .help("give each app its own name (it names the Deployment, the Service and, by default, the host name)"),
            );
            if ra.host.is_none() {
                // Its default host name repeats the name just reported.
                continue;
            }
        }
        if let Some(h) = &a.host {
            hosts.push((
                h.clone(),
                format!("app {}", a.name),
                host_span(&ra.host, name_span),
            ));
        }
    }
    for ch in charts {
        if let Some(h) = &ch.host {
            let span = raw
                .charts
                .iter()
                .filter_map(|rc| {
                    rc.host
                        .as_ref()
                        .filter(|_| rc.name.as_ref().is_some_and(|n| n.value == ch.name))
                })
                .map(|rh| rh.name.as_ref().map_or(rh.span, |n| n.span))
                .next()
                .unwrap_or_default();
            hosts.push((h.name.clone(), format!("chart {}", ch.name), span));
        }
    }
    let mut seen: HashMap<String, (String, Span)> = HashMap::new();
    for (host, what, span) in hosts {
        let span = if span == Span::default() {
            services_span
        } else {
            span
        };
        if let Err(e) = check_dns_label(&host, "host name") {
            c.error(
                Diagnostic::error(
                    "invalid-host-name",
                    format!(
                        "{}: the host name of {what} must be one DNS label under the domain",
                        e.message
                    ),
                )
                .at(span)
                .help(e.help),
            );
            continue;
        }
        if let Some((first_what, first_span)) = seen.get(&host) {
            let fqdn = network.map_or(host.clone(), |(n, _)| n.fqdn(&host));
            let mut d = Diagnostic::error(
                "duplicate-host",
                format!("{what} and {first_what} both want the host name `{fqdn}`"),
            )
            .at(span);
            if *first_span != Span::default() && *first_span != span {
                d = d.related(*first_span, "first claimed here");
            }
            c.error(d.help(format!("give {what} another host name with `host: <name>`")));
        } else {
            seen.insert(host, (what, span));
        }
    }

    // Stateful services need storage.
    if storage.is_none() {
        let mut stateful: Vec<(&str, Span)> = Vec::new();
        if let Some(s) = rs {
            let span_of = |o: Option<Span>| o.unwrap_or(s.span);
            if services.monitoring.is_some() {
                stateful.push(("monitoring", span_of(s.monitoring.as_ref().map(|x| x.span))));
            }
            if services.logging.is_some() {
                stateful.push(("logging", span_of(s.logging.as_ref().map(|x| x.span))));
            }
            if services.postgres.is_some() {
                stateful.push(("postgres", span_of(s.postgres.as_ref().map(|x| x.span))));
            }
            if services.ollama.is_some() {
                stateful.push(("ollama", span_of(s.ollama.as_ref().map(|x| x.span))));
            }
            if services.paperless.is_some() {
                stateful.push(("paperless", span_of(s.paperless.as_ref().map(|x| x.span))));
            }
            if services.openbao.is_some() {
                stateful.push(("openbao", span_of(s.openbao.as_ref().map(|x| x.span))));
            }
            if services.vllm.is_some() {
                stateful.push(("vllm", span_of(s.vllm.as_ref().map(|x| x.span))));
            }
            if services.open_webui.is_some() {
                stateful.push(("openWebui", span_of(s.open_webui.as_ref().map(|x| x.span))));
            }
        }
        for (a, ra) in apps.iter().zip(&raw.apps) {
            if a.volumes
                .iter()
                .any(|v| matches!(v.source, VolumeSource::Claim { .. }))
            {
                stateful.push(("an app with volumes", ra.span));
            }
        }
        for (sh, rs) in raw
            .shares
            .iter()
            .filter_map(|r| Some((r.size.as_ref()?, r)))
        {
            if rs.nfs.is_none() {
                stateful.push(("a share with `size`", sh.span));
            }
        }
        for (what, span) in stateful {
            c.error(
                Diagnostic::error("stateful-without-storage", format!("{what} keeps data on a volume, but the spec has no `storage` section"))
                    .at(Span::point(span.start))
                    .label(format!("{what} is enabled here"))
                    .help("add `storage: {nfs: {server: 192.168.2.2, path: /volume1/k8s-data}}` with your NAS's address and export, or disable the service with `enabled: false`"),
            );
        }
    }

    // NFS server address against the pool and gateway.
    if let (Some(s), Some((net, spans))) = (storage, network)
        && let Ok(ip) = s.nfs.server.parse::<Ipv4Addr>()
    {
        let span = raw
            .storage
            .as_ref()
            .and_then(|st| st.nfs.as_ref())
            .and_then(|n| n.server.as_ref())
            .map_or(Span::default(), |s| s.span);
        if net.load_balancer_pool.contains(ip) {
            let mut d = Diagnostic::error("pool-contains-nfs", format!("the load-balancer pool {} contains the NFS server {ip}", net.load_balancer_pool))
                    .at(span)
                    .help("MetalLB would answer for the NAS's address; shrink the pool or check the NFS address");
            if let Some(p) = spans.pool {
                d = d.related(p, "pool set here");
            }
            c.error(d);
        }
        if ip == net.gateway {
            c.error(
                Diagnostic::error(
                    "nfs-is-gateway",
                    format!("the NFS server {ip} is the gateway's address"),
                )
                .at(span)
                .help("write the NAS's own address"),
            );
        }
    }

    // Databases that apps need.
    let databases: BTreeSet<&str> = services
        .postgres
        .iter()
        .flat_map(|p| p.databases.iter().map(|d| d.name.as_str()))
        .collect();
    let mut needs: Vec<(String, String, Span)> = Vec::new();
    if let (Some(n), Some(rn)) = (&services.n8n, rs.and_then(|s| s.n8n.as_ref())) {
        needs.push((
            n.database.clone(),
            "n8n".into(),
            rn.database.as_ref().map_or(rn.span, |d| d.span),
        ));
    }
    for (a, ra) in apps.iter().zip(&raw.apps) {
        if let (Some(db), Some(span)) = (&a.database, ra.database.as_ref().map(|d| d.span)) {
            needs.push((db.clone(), format!("app {}", a.name), span));
        }
    }
    for (db, who, span) in needs {
        if services.postgres.is_none() {
            c.error(
                Diagnostic::error(
                    "postgres-disabled",
                    format!(
                        "{who} needs the PostgreSQL database `{db}`, but postgres is not enabled"
                    ),
                )
                .at(span)
                .help(format!(
                    "add `services.postgres` with `databases: [{{name: {db}, owner: {db}}}]`"
                )),
            );
        } else if !databases.contains(db.as_str()) {
            let known: Vec<&str> = databases.iter().copied().collect();
            let mut d = Diagnostic::error("unknown-database", format!("{who} needs the database `{db}`, which `services.postgres.databases` does not create")).at(span);
            d = match crate::de::did_you_mean(&db, &known) {
                Some(s) => d.help(format!("did you mean `{s}`? Otherwise add `{{name: {db}, owner: {db}}}` to `services.postgres.databases`")),
                None => d.help(format!("add `{{name: {db}, owner: {db}}}` to `services.postgres.databases`")),
            };
            c.error(d);
        }
    }

    // Critical alerts should reach a person.
    if services.monitoring.is_some()
        && !alerting
            .receivers
            .iter()
            .any(|r| r.severities.contains(&AlertSeverity::Critical))
    {
        let span = raw
            .alerting
            .as_ref()
            .map_or_else(|| rs.map_or(Span::default(), |s| s.span), |a| a.span);
        c.error(
            Diagnostic::warning("no-critical-receiver", "no receiver gets critical (P1) alerts, so nobody is told when the lab is down")
                .at(Span::point(span.start))
                .label(if raw.alerting.is_some() { "none of these receivers lists `critical`" } else { "monitoring runs, but there is no `alerting` section" })
                .help("add a receiver with `severities: [critical]`, e.g. `{name: phone, ntfy: {topic: my-lab-alerts}, severities: [critical]}`"),
        );
    }
}
