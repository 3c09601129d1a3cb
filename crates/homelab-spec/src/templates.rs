//! The commented specs: the example labs, and the user's lab `homelab init` writes from their
//! answers; text only, the caller decides where it goes.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::raw::NodeRole;
use crate::types::{Ipv4Net, Ipv4Range, check_dns_label, check_domain, parse_ipv4};

/// The lab of the planning documents: three nodes and every service; `examples/homelab.yaml`.
pub const SEED: &str = include_str!("../templates/seed.yaml");

/// One node and only the platform (K3s, NFS, MetalLB, cert-manager, Traefik), with example
/// names; what `--preset minimal` writes is [`user_lab`] with the user's.
pub const MINIMAL: &str = include_str!("../templates/minimal.yaml");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Seed,
    Minimal,
}

impl Preset {
    pub fn text(self) -> &'static str {
        match self {
            Preset::Seed => SEED,
            Preset::Minimal => MINIMAL,
        }
    }
}

/// The K3s release the templates pin, and so the one a new lab starts on.
pub const K3S_VERSION: &str = "v1.34.2+k3s1";

/// The parts of a lab only its owner knows, as `homelab init` collects them from flags or
/// questions. Everything else in the written spec is a sensible default with a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    pub name: String,
    pub domain: String,
    pub email: String,
    pub subnet: Ipv4Net,
    /// The LAN's router; the first address of the subnet when not given.
    pub gateway: Option<Ipv4Addr>,
    /// MetalLB's addresses; the last 16 of the subnet when not given.
    pub pool: Option<Ipv4Range>,
    pub nodes: Vec<NodeAnswer>,
    pub nfs: NfsAnswer,
    /// Written into each node's `ssh:`; without it ssh's own configuration decides.
    pub ssh_user: Option<String>,
    /// One line of a `.pub` file: the key the dev container accepts.
    pub ssh_key: Option<String>,
    pub ntfy_topic: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAnswer {
    pub name: String,
    pub address: Ipv4Addr,
    pub role: NodeRole,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsAnswer {
    pub server: String,
    pub path: String,
}

/// An answer that cannot go into a lab, naming the flag (or question) it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct AnswerError {
    /// The command-line flag the answer belongs to, e.g. `--nodes`.
    pub flag: &'static str,
    pub message: String,
    /// What to write instead.
    pub help: String,
}

fn answer_error(
    flag: &'static str,
    message: impl Into<String>,
    help: impl Into<String>,
) -> AnswerError {
    AnswerError {
        flag,
        message: message.into(),
        help: help.into(),
    }
}

fn from_invalid(flag: &'static str, e: crate::types::Invalid) -> AnswerError {
    answer_error(flag, e.message, e.help)
}

/// Parses `--nodes NAME=IP[:role],...`. A node without a role is an agent, except that the
/// first, written without a role, is the server when no node says `server`: a lab needs one, and the first is where
/// people put it.
pub fn parse_nodes(text: &str) -> Result<Vec<NodeAnswer>, AnswerError> {
    const FLAG: &str = "--nodes";
    let help = "write NAME=IP[:role] separated by commas, e.g. `k3s-1=192.168.1.20:server,k3s-2=192.168.1.21`";
    let mut nodes: Vec<NodeAnswer> = Vec::new();
    let mut any_server = false;
    let mut first_has_role = false;
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, rest) = item
            .split_once('=')
            .ok_or_else(|| answer_error(FLAG, format!("`{item}` has no `=IP`"), help))?;
        let name = name.trim();
        check_dns_label(name, "node name").map_err(|e| from_invalid(FLAG, e))?;
        let (ip, role) = match rest.split_once(':') {
            Some((ip, role)) => (ip, Some(role.trim())),
            None => (rest, None),
        };
        let address = parse_ipv4(ip.trim()).map_err(|e| from_invalid(FLAG, e))?;
        let role = match role {
            None => None,
            Some("server") => Some(NodeRole::Server),
            Some("agent") => Some(NodeRole::Agent),
            Some(other) => {
                return Err(answer_error(
                    FLAG,
                    format!("`{other}` (node `{name}`) is not a role"),
                    "the role is `server` (control plane) or `agent` (workloads only)",
                ));
            }
        };
        any_server |= role == Some(NodeRole::Server);
        if nodes.is_empty() {
            first_has_role = role.is_some();
        }
        if nodes.iter().any(|n| n.name == name) {
            return Err(answer_error(
                FLAG,
                format!("two nodes are named `{name}`"),
                "give each node its own name",
            ));
        }
        if let Some(other) = nodes.iter().find(|n| n.address == address) {
            return Err(answer_error(
                FLAG,
                format!(
                    "`{name}` and `{}` have the same address {address}",
                    other.name
                ),
                "give each node its own address",
            ));
        }
        nodes.push(NodeAnswer {
            name: name.to_string(),
            address,
            role: role.unwrap_or(NodeRole::Agent),
        });
    }
    if nodes.is_empty() {
        return Err(answer_error(FLAG, "no node given", help));
    }
    if !any_server && !first_has_role {
        nodes[0].role = NodeRole::Server;
    }
    Ok(nodes)
}

/// Parses `--nfs SERVER:/PATH`, the NAS export the lab keeps its volumes on.
pub fn parse_nfs(text: &str) -> Result<NfsAnswer, AnswerError> {
    const FLAG: &str = "--nfs";
    let help = "write the NAS and its export as SERVER:/PATH, e.g. `192.168.1.2:/volume1/k8s-data`";
    let (server, path) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| answer_error(FLAG, format!("`{text}` has no `:/PATH`"), help))?;
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(answer_error(
            FLAG,
            format!("`{path}` is not an absolute export path"),
            help,
        ));
    }
    if parse_ipv4(server).is_err()
        && check_domain(server).is_err()
        && check_dns_label(server, "host").is_err()
    {
        return Err(answer_error(
            FLAG,
            format!("`{server}` is neither an IPv4 address nor a host name"),
            help,
        ));
    }
    Ok(NfsAnswer {
        server: server.to_string(),
        path: path.to_string(),
    })
}

/// Parses `--subnet`, e.g. `192.168.1.0/24`.
pub fn parse_subnet(text: &str) -> Result<Ipv4Net, AnswerError> {
    Ipv4Net::parse(text.trim()).map_err(|e| from_invalid("--subnet", e))
}

/// Parses `--gateway`.
pub fn parse_gateway(text: &str) -> Result<Ipv4Addr, AnswerError> {
    parse_ipv4(text.trim()).map_err(|e| from_invalid("--gateway", e))
}

/// Parses `--pool`, `FIRST-LAST` or a CIDR.
pub fn parse_pool(text: &str) -> Result<Ipv4Range, AnswerError> {
    Ipv4Range::parse(text.trim()).map_err(|e| from_invalid("--pool", e))
}

/// Checks `--domain`.
pub fn check_domain_answer(text: &str) -> Result<(), AnswerError> {
    check_domain(text).map_err(|e| from_invalid("--domain", e))
}

/// Checks `--email`: an address Let's Encrypt accepts, plain enough to need no YAML quoting.
pub fn check_email_answer(text: &str) -> Result<(), AnswerError> {
    let help = "write the address Let's Encrypt should send expiry warnings to, e.g. `you@your-domain.net`";
    let bad = || answer_error("--email", format!("`{text}` is not an email address"), help);
    let (local, domain) = text.split_once('@').ok_or_else(bad)?;
    let local_ok = !local.is_empty()
        && !local.starts_with(['.', '-'])
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c));
    if !local_ok || check_domain(&domain.to_ascii_lowercase()).is_err() {
        return Err(bad());
    }
    Ok(())
}

/// Checks `--ssh-user`: a login name as `useradd` accepts it.
pub fn check_ssh_user_answer(text: &str) -> Result<(), AnswerError> {
    let ok = !text.is_empty()
        && text.len() <= 32
        && text.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(answer_error(
            "--ssh-user",
            format!("`{text}` is not a login name"),
            "use the user you log in to the nodes as: lowercase letters, digits, `_` and `-`, e.g. `admin`",
        ))
    }
}

/// Checks one public key line (what `--ssh-key FILE` holds) and returns it trimmed.
pub fn check_ssh_key_answer(text: &str) -> Result<String, AnswerError> {
    const FLAG: &str = "--ssh-key";
    let line = text.trim();
    if line.contains("PRIVATE KEY") {
        return Err(answer_error(
            FLAG,
            "this is a private key; init needs the public one",
            "pass the `.pub` file, e.g. `--ssh-key ~/.ssh/id_ed25519.pub`",
        ));
    }
    let mut parts = line.split_whitespace();
    let kind = parts.next().unwrap_or_default();
    let ok = line.lines().count() == 1
        && (kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-"))
        && parts.next().is_some_and(|b| b.len() > 16);
    if !ok {
        return Err(answer_error(
            FLAG,
            "this is not an SSH public key",
            "pass a `.pub` file with one key line, e.g. `--ssh-key ~/.ssh/id_ed25519.pub` (make one with `ssh-keygen -t ed25519`)",
        ));
    }
    Ok(line.to_string())
}

/// Checks an ntfy topic: the characters ntfy allows.
pub fn check_ntfy_topic(text: &str) -> Result<(), AnswerError> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(answer_error(
            "--ntfy-topic",
            format!("`{text}` is not an ntfy topic"),
            "use letters, digits, `-` and `_`, at most 64 characters",
        ))
    }
}

/// A topic nobody guesses: ntfy.sh topics are public, so whoever knows the name reads the
/// lab's alerts. `random` is 12 or more random bytes from the caller (this crate does no I/O).
pub fn random_ntfy_topic(random: &[u8]) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let tail: String = random
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("homelab-alerts-{tail}")
}

fn offset(addr: Ipv4Addr, by: i64) -> Ipv4Addr {
    Ipv4Addr::from((i64::from(u32::from(addr)) + by) as u32)
}

/// The spec `homelab init` writes for these answers: the preset's services with the user's
/// network, nodes, addresses and keys, commented like the presets. Every answer is checked
/// first, so an error names the flag to fix rather than a line of generated YAML.
pub fn user_lab(preset: Preset, a: &Answers) -> Result<String, AnswerError> {
    check_dns_label(&a.name, "lab name").map_err(|e| from_invalid("--name", e))?;
    check_domain_answer(&a.domain)?;
    check_email_answer(&a.email)?;
    check_ntfy_topic(&a.ntfy_topic)?;
    if let Some(u) = &a.ssh_user {
        check_ssh_user_answer(u)?;
    }
    let key = a.ssh_key.as_deref().map(check_ssh_key_answer).transpose()?;
    let net = a.subnet;
    if net.prefix > 30 {
        return Err(answer_error(
            "--subnet",
            format!("{net} has no room for a lab"),
            "give the LAN's network, e.g. `192.168.1.0/24`",
        ));
    }
    let gateway = a.gateway.unwrap_or_else(|| offset(net.network, 1));
    if !net.contains(gateway) || gateway == net.network || gateway == net.broadcast() {
        return Err(answer_error(
            "--gateway",
            format!("the gateway {gateway} is not a host address in {net}"),
            "give the router's address on the LAN",
        ));
    }
    let pool = match a.pool {
        Some(p) => p,
        None if net.prefix <= 27 => Ipv4Range {
            start: offset(net.broadcast(), -16),
            end: offset(net.broadcast(), -1),
        },
        None => {
            return Err(answer_error(
                "--pool",
                format!("{net} is too small to pick 16 LoadBalancer addresses from"),
                "pass `--pool FIRST-LAST` with free addresses outside the DHCP range",
            ));
        }
    };
    if !net.contains(pool.start) || !net.contains(pool.end) || pool.start > pool.end {
        return Err(answer_error(
            "--pool",
            format!("the pool {pool} is not a range inside {net}"),
            "pass `--pool FIRST-LAST` with free addresses of the LAN outside the DHCP range",
        ));
    }
    if pool.contains(gateway) {
        return Err(answer_error(
            "--pool",
            format!("the pool {pool} includes the gateway {gateway}"),
            "pass `--pool FIRST-LAST` with free addresses outside the DHCP range",
        ));
    }
    for n in &a.nodes {
        if !net.contains(n.address) || n.address == net.network || n.address == net.broadcast() {
            return Err(answer_error(
                "--nodes",
                format!(
                    "node `{}` has the address {}, which is not a host in {net}",
                    n.name, n.address
                ),
                "give each node its address on the LAN, or pass the LAN's `--subnet`",
            ));
        }
        if n.address == gateway {
            return Err(answer_error(
                "--nodes",
                format!("node `{}` has the gateway's address {gateway}", n.name),
                "give each node its own address on the LAN",
            ));
        }
        if pool.contains(n.address) {
            return Err(answer_error(
                "--pool",
                format!("the pool {pool} includes node `{}` ({})", n.name, n.address),
                "pass `--pool FIRST-LAST` with addresses no node or other device uses",
            ));
        }
    }
    let Some(server) = a.nodes.iter().find(|n| n.role == NodeRole::Server) else {
        return Err(answer_error(
            "--nodes",
            "no node is a server",
            "mark one node `:server`, e.g. `k3s-1=192.168.1.20:server`",
        ));
    };
    let nfs = parse_nfs(&format!("{}:{}", a.nfs.server, a.nfs.path))?;
    if let Ok(ip) = parse_ipv4(&nfs.server)
        && pool.contains(ip)
    {
        return Err(answer_error(
            "--pool",
            format!("the pool {pool} includes the NFS server {ip}"),
            "pass `--pool FIRST-LAST` with addresses no node or other device uses",
        ));
    }

    let mut y = String::new();
    let domain = &a.domain;
    let _ = writeln!(y, "# yaml-language-server: $schema={}", crate::SCHEMA_URL);
    y.push_str("#\n# homelab.yaml: the whole lab in one file. `homelab validate` checks it, `homelab plan` shows\n# what it will build, `homelab render --out lab/` writes it as manifests you can commit.\n# Secrets never go in this file: fields that need one say `{secret: NAME}`, and the value lives\n# encrypted in secrets.sops.yaml (`homelab secrets init`, `homelab secrets set NAME`).\n\n");
    let _ = writeln!(
        y,
        "# The lab's name: used for the kubeconfig context and on every object the tool manages.\nname: {}\n",
        a.name
    );
    let _ = writeln!(y, "network:\n  subnet: {net}\n  gateway: {gateway}");
    let _ = writeln!(
        y,
        "  # Every service gets <name>.<domain>, e.g. grafana.{domain}.\n  domain: {domain}"
    );
    let _ = writeln!(
        y,
        "  # Addresses MetalLB hands out to LoadBalancer services. Keep them out of the DHCP range.\n  loadBalancerPool: {}-{}",
        pool.start, pool.end
    );
    let _ = writeln!(
        y,
        "  # Traefik answers here; point the wildcard *.{domain} at it.\n  ingressIp: {}",
        pool.start
    );
    y.push_str("  dns:\n    # Where the wildcard rewrite lives: nextdns, cloudflare, pihole or manual.\n    provider: manual\n\n");
    let _ = writeln!(
        y,
        "cluster:\n  # Pinned K3s release for every node; `homelab nodes upgrade --to vX.Y.Z+k3sN` moves it.\n  k3sVersion: {K3S_VERSION}\n  nodes:"
    );
    for n in &a.nodes {
        let what = match n.role {
            NodeRole::Server => "control plane + embedded etcd",
            NodeRole::Agent => "runs workloads",
        };
        let _ = writeln!(
            y,
            "    - name: {}\n      role: {}          # {what}\n      address: {}",
            n.name, n.role, n.address
        );
        if let Some(u) = &a.ssh_user {
            let _ = writeln!(
                y,
                "      ssh:\n        user: {u}          # needs sudo; anything left out comes from ~/.ssh/config"
            );
        }
    }
    if preset == Preset::Seed {
        let _ = writeln!(
            y,
            "  etcdSnapshots:\n    schedule: \"0 */12 * * *\"   # 00:00 and 12:00 UTC\n    retention: 14              # 7 days of history\n    dir: /mnt/k3s-snapshots    # an NFS mount on {}",
            server.name
        );
        y.push_str("  osUpdates:\n    automatic: security        # unattended security updates\n    reboot: never              # reboot by hand, after `homelab nodes` drains the node\n");
    }
    let _ = writeln!(
        y,
        "\nstorage:\n  nfs:\n    server: {}\n    path: {}\n  storageClass: nfs-client     # becomes the default StorageClass\n",
        nfs.server,
        serde_json::Value::String(nfs.path.clone())
    );
    if let Some((suffix, _)) = crate::validate::private_suffix(&a.domain) {
        // Let's Encrypt cannot prove such a name: the lab signs its own certificates.
        let _ = writeln!(
            y,
            "tls:\n  # `.{suffix}` has no public DNS, so Let's Encrypt cannot issue for it: the lab's own CA\n  # signs every certificate; trust it once per device with `homelab tls ca`.\n  mode: internal-ca\n"
        );
    } else {
        let _ = writeln!(
            y,
            "tls:\n  acmeEmail: {}\n  environment: production      # `staging` while experimenting (untrusted certificates, no rate limits)",
            a.email
        );
        y.push_str("  challenge:\n    # A home lab is usually not reachable from the internet, so HTTP-01 cannot work;\n    # DNS-01 proves ownership through a TXT record set with the DNS provider's API.\n    type: dns01\n    provider: cloudflare\n    apiToken: {secret: cloudflare-api-token}\n\n");
    }
    let _ = writeln!(
        y,
        "alerting:\n  receivers:\n    # Critical (P1) alerts to the phone: subscribe to this topic in the ntfy app. ntfy.sh\n    # topics are public, so the name is random; keep it to yourself.\n    - name: phone\n      ntfy:\n        topic: {}\n      severities: [critical]",
        a.ntfy_topic
    );
    if preset == Preset::Minimal {
        y.push_str("\n# Services (monitoring, logging, postgres, ...) go under `services:`; `homelab init` without\n# `--preset` writes them all.\n");
        return Ok(y);
    }
    let _ = writeln!(
        y,
        "    # Everything else to a webhook, e.g. n8n or a chat bridge.\n    - name: n8n-webhook\n      webhook:\n        url: https://n8n.{domain}/webhook/alerts\n      severities: [warning, info]\n"
    );
    y.push_str("services:\n  monitoring:                  # Prometheus, Grafana, Alertmanager\n    retention: 15d\n    storage: 20Gi\n    grafanaAdminPassword: {secret: grafana-admin-password}\n  logging:                     # Loki + Alloy\n    retention: 7d\n    storage: 10Gi\n  postgres:\n    version: 17\n    storage: 20Gi\n    databases:\n      - name: n8n\n        owner: n8n\n    backup:\n      schedule: \"0 2 * * *\"    # nightly pg_dump to NFS, verified\n      keep: 7\n      verify: checksums        # or row-counts: cheaper, but misses changed values\n  ollama:\n    models: [llama3.2:3b]\n    storage: 50Gi\n    gpu: false\n  n8n:\n    database: n8n\n  paperless:\n    storage: 50Gi\n    ocrLanguage: eng\n");
    let _ = writeln!(
        y,
        "  # devProxy:                  # https://dev.{domain}/<path> -> a dev server on the LAN\n  #   routes:\n  #     - path: /app1\n  #       target: {}:3000",
        offset(net.network, 50)
    );
    let dev = a.ssh_user.as_deref().unwrap_or("dev");
    match &key {
        Some(k) => {
            let _ = writeln!(
                y,
                "  devContainers:               # ssh -p 2222 dev@dev.{domain}\n    - name: {dev}\n      sshPort: 2222\n      authorizedKeys:\n        - {}",
                serde_json::Value::String(k.clone())
            );
        }
        None => {
            let _ = writeln!(
                y,
                "  # devContainers:             # ssh -p 2222 dev@dev.{domain}\n  #   - name: {dev}\n  #     sshPort: 2222\n  #     authorizedKeys:\n  #       - ssh-ed25519 AAAA... (one line of your ~/.ssh/id_*.pub)"
            );
        }
    }
    y.push_str("\n# Your own apps: each gets a Deployment, a Service, https://<host>.<domain> and NFS volumes.\napps: []\n#  - name: mealie\n#    image: ghcr.io/mealie-recipes/mealie:v2.3.0\n#    port: 9000\n#    volumes:\n#      - {name: data, mountPath: /app/data, size: 5Gi}\n");
    Ok(y)
}

/// The directory beside the spec where `homelab up` keeps its journal: the lab's own
/// working state, never part of its repository.
pub const JOURNAL_DIR: &str = ".homelab";

/// What the lab's `.gitignore` must say, with the reason, as `homelab init` writes it.
const GITIGNORE_BLOCK: &str = "# What `homelab up` records for itself (where its next run resumes); not the lab's source.\n.homelab/\n";

/// The `.gitignore` beside the spec with the journal directory ignored: `existing` (the
/// file's text, `None` when there is none) with the entry appended, or `None` when a line
/// already names the directory (ignoring it, or with `!` keeping it: the user decided).
/// Never removes or reorders a line of the user's.
pub fn lab_gitignore(existing: Option<&str>) -> Option<String> {
    let Some(text) = existing else {
        return Some(GITIGNORE_BLOCK.to_string());
    };
    let ignored = text.lines().any(|l| {
        let l = l.trim();
        let l = l.strip_prefix('!').unwrap_or(l);
        let l = l.strip_prefix('/').unwrap_or(l);
        let l = l.strip_suffix('/').unwrap_or(l);
        l == JOURNAL_DIR
    });
    if ignored {
        return None;
    }
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(GITIGNORE_BLOCK);
    Some(out)
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_gitignore_gains_the_journal_once_and_keeps_every_line() {
        let new = lab_gitignore(None).unwrap();
        assert!(new.lines().any(|l| l == ".homelab/"), "{new}");
        assert_eq!(lab_gitignore(Some(&new)), None);
        for already in [".homelab", "/.homelab/", "  .homelab/  ", "/.homelab"] {
            assert_eq!(lab_gitignore(Some(&format!("target/\n{already}\n"))), None);
        }
        let appended = lab_gitignore(Some("target/\n!keep.me")).unwrap();
        assert!(
            appended.starts_with("target/\n!keep.me\n\n# "),
            "{appended}"
        );
        assert!(appended.ends_with(".homelab/\n"), "{appended}");
        // The user's own decision to keep it stands; a longer name is another directory.
        assert_eq!(lab_gitignore(Some("!.homelab/\n")), None);
        assert!(lab_gitignore(Some(".homelab-old/\n")).is_some());
    }
    use super::*;

    #[test]
    fn every_template_pins_the_k3s_release() {
        for preset in [Preset::Seed, Preset::Minimal] {
            let lab = crate::load_str("homelab.yaml", preset.text())
                .expect("templates are valid")
                .lab;
            assert_eq!(
                lab.cluster.k3s_version.to_string(),
                K3S_VERSION,
                "{preset:?}"
            );
        }
    }

    fn answers() -> Answers {
        Answers {
            name: "attic".into(),
            domain: "lab.mydomain.net".into(),
            email: "ops@mydomain.net".into(),
            subnet: Ipv4Net::parse("10.20.0.0/24").unwrap(),
            gateway: None,
            pool: None,
            nodes: parse_nodes("cp-1=10.20.0.10,w-1=10.20.0.11").unwrap(),
            nfs: parse_nfs("10.20.0.5:/export/k8s").unwrap(),
            ssh_user: Some("admin".into()),
            ssh_key: Some(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJm2mYq0000000000000000000000000000000000000 ops@desk"
                    .into(),
            ),
            ntfy_topic: random_ntfy_topic(&[7; 16]),
        }
    }

    #[test]
    fn a_lab_under_a_private_name_gets_its_own_ca() {
        for (domain, internal) in [
            ("lab.home.arpa", true),
            ("attic.lan", true),
            ("lab.mydomain.net", false),
        ] {
            for preset in [Preset::Seed, Preset::Minimal] {
                let a = Answers {
                    domain: domain.into(),
                    ..answers()
                };
                let text = user_lab(preset, &a).unwrap();
                let loaded = crate::load_str("homelab.yaml", &text)
                    .unwrap_or_else(|e| panic!("{domain} {preset:?}:\n{}\n{text}", e.render()));
                assert!(loaded.warnings.is_empty(), "{domain} {preset:?}");
                assert_eq!(
                    matches!(loaded.lab.tls, crate::lab::Tls::InternalCa),
                    internal,
                    "{domain} {preset:?}"
                );
            }
        }
    }

    #[test]
    fn the_user_lab_is_valid_without_warnings_and_holds_the_answers_for_both_presets() {
        for preset in [Preset::Seed, Preset::Minimal] {
            let text = user_lab(preset, &answers()).unwrap();
            let loaded = crate::load_str("homelab.yaml", &text)
                .unwrap_or_else(|e| panic!("{preset:?}: {e}\n{text}"));
            assert!(
                loaded.warnings.is_empty(),
                "{preset:?}: {:?}",
                loaded.warnings
            );
            let lab = loaded.lab;
            assert_eq!(lab.name, "attic");
            assert_eq!(lab.network.domain, "lab.mydomain.net");
            assert_eq!(lab.network.gateway.to_string(), "10.20.0.1");
            assert_eq!(
                lab.network.load_balancer_pool.to_string(),
                "10.20.0.239-10.20.0.254"
            );
            assert_eq!(lab.network.ingress_ip.to_string(), "10.20.0.239");
            let tls = lab.tls.acme().expect("an ACME lab");
            assert_eq!(tls.acme_email, "ops@mydomain.net");
            let nodes: Vec<_> = lab
                .cluster
                .nodes
                .iter()
                .map(|n| (n.name.as_str(), n.address.to_string(), n.role))
                .collect();
            assert_eq!(
                nodes,
                [
                    ("cp-1", "10.20.0.10".to_string(), NodeRole::Server),
                    ("w-1", "10.20.0.11".to_string(), NodeRole::Agent)
                ]
            );
            assert!(text.contains("user: admin"), "{text}");
            assert!(text.contains("server: 10.20.0.5"), "{text}");
            assert!(text.contains(&random_ntfy_topic(&[7; 16])), "{text}");
            if preset == Preset::Seed {
                assert_eq!(lab.services.dev_containers.len(), 1);
                assert_eq!(
                    lab.services.dev_containers[0].authorized_keys,
                    [answers().ssh_key.unwrap()]
                );
                assert!(lab.services.monitoring.is_some() && lab.services.postgres.is_some());
            } else {
                assert!(lab.services.monitoring.is_none());
            }
        }
    }

    #[test]
    fn the_user_lab_holds_none_of_the_planning_documents_values() {
        for preset in [Preset::Seed, Preset::Minimal] {
            let mut a = answers();
            a.ssh_key = None;
            a.ssh_user = None;
            let text = user_lab(preset, &a).unwrap();
            for seed in [
                "jetzinger",
                "tom@",
                "AAAAC3NzaC1lZDI1NTE5AAAAIKq2X0Vb0p1Xh0Zrj7J8Qm6v2V8nK9rZ3Yt1w5sS4uPq",
                "192.168.2.",
                "example.",
            ] {
                assert!(!text.contains(seed), "{preset:?} wrote `{seed}`:\n{text}");
            }
            let lab = crate::load_str("homelab.yaml", &text).unwrap().lab;
            assert!(
                lab.services.dev_containers.is_empty(),
                "no key, no dev container"
            );
            assert!(lab.cluster.nodes.iter().all(|n| n.ssh.user.is_none()));
        }
    }

    #[test]
    fn random_topics_differ_with_their_bytes_and_are_valid() {
        let a = random_ntfy_topic(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let b = random_ntfy_topic(&[12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
        assert_ne!(a, b);
        assert!(check_ntfy_topic(&a).is_ok() && a.len() == "homelab-alerts-".len() + 12);
    }

    #[test]
    fn nodes_parse_with_roles_and_the_first_is_the_server_when_none_says() {
        let n = parse_nodes("a=10.0.0.1, b=10.0.0.2:agent").unwrap();
        assert_eq!((n[0].role, n[1].role), (NodeRole::Server, NodeRole::Agent));
        let n = parse_nodes("a=10.0.0.1,b=10.0.0.2:server").unwrap();
        assert_eq!((n[0].role, n[1].role), (NodeRole::Agent, NodeRole::Server));
    }

    #[test]
    fn every_bad_answer_names_its_flag() {
        let cases: Vec<(Result<(), AnswerError>, &str, &str)> = vec![
            (parse_nodes("a").map(drop), "--nodes", "has no `=IP`"),
            (
                parse_nodes("A_1=10.0.0.1").map(drop),
                "--nodes",
                "not a valid node name",
            ),
            (
                parse_nodes("a=10.0.0.300").map(drop),
                "--nodes",
                "10.0.0.300",
            ),
            (
                parse_nodes("a=10.0.0.1:boss").map(drop),
                "--nodes",
                "`boss` (node `a`) is not a role",
            ),
            (
                parse_nodes("a=10.0.0.1,a=10.0.0.2").map(drop),
                "--nodes",
                "two nodes are named `a`",
            ),
            (
                parse_nodes("a=10.0.0.1,b=10.0.0.1").map(drop),
                "--nodes",
                "the same address",
            ),
            (parse_nodes(" , ").map(drop), "--nodes", "no node given"),
            (parse_nfs("nas").map(drop), "--nfs", "has no `:/PATH`"),
            (
                parse_nfs("nas:relative").map(drop),
                "--nfs",
                "not an absolute export path",
            ),
            (
                parse_nfs("n a s:/x").map(drop),
                "--nfs",
                "neither an IPv4 address nor a host name",
            ),
            (
                parse_subnet("10.20.0.1/24").map(drop),
                "--subnet",
                "host bits set",
            ),
            (
                check_domain_answer("localhost"),
                "--domain",
                "not a domain name",
            ),
            (
                check_email_answer("nobody"),
                "--email",
                "not an email address",
            ),
            (check_email_answer("a@b"), "--email", "not an email address"),
            (
                check_ssh_user_answer("Root Admin"),
                "--ssh-user",
                "not a login name",
            ),
            (
                check_ssh_key_answer(&format!("-----BEGIN OPENSSH {} KEY-----", "PRIVATE"))
                    .map(drop),
                "--ssh-key",
                "private key",
            ),
            (
                check_ssh_key_answer("hello").map(drop),
                "--ssh-key",
                "not an SSH public key",
            ),
        ];
        for (result, flag, said) in cases {
            let e = result.expect_err(said);
            assert_eq!(e.flag, flag, "{e}");
            assert!(e.message.contains(said), "{e}");
            assert!(!e.help.is_empty());
        }
        let lab = |f: fn(&mut Answers)| {
            let mut a = answers();
            f(&mut a);
            user_lab(Preset::Seed, &a).expect_err("refused")
        };
        let e = lab(|a| a.nodes = parse_nodes("x=10.30.0.4").unwrap());
        assert_eq!(e.flag, "--nodes");
        assert!(e.message.contains("not a host in 10.20.0.0/24"), "{e}");
        let e = lab(|a| a.nodes = parse_nodes("x=10.20.0.250").unwrap());
        assert_eq!(e.flag, "--pool");
        let e = lab(|a| a.nodes = parse_nodes("x=10.20.0.1").unwrap());
        assert!(e.message.contains("gateway"), "{e}");
        let e = lab(|a| a.nodes = parse_nodes("x=10.20.0.10:agent").unwrap());
        assert_eq!(e.message, "no node is a server");
        let e = lab(|a| a.subnet = Ipv4Net::parse("10.20.1.0/24").unwrap());
        assert_eq!(e.flag, "--nodes", "{e}");
        let e = lab(|a| {
            a.subnet = Ipv4Net::parse("10.20.0.0/28").unwrap();
            a.nodes = parse_nodes("x=10.20.0.2").unwrap();
            a.nfs = parse_nfs("nas.lan:/k8s").unwrap();
        });
        assert_eq!(e.flag, "--pool", "{e}");
        let e = lab(|a| a.pool = Some(parse_pool("10.20.1.1-10.20.1.9").unwrap()));
        assert_eq!(e.flag, "--pool");
        let e = lab(|a| a.gateway = Some(parse_gateway("10.9.9.9").unwrap()));
        assert_eq!(e.flag, "--gateway");
        let e = lab(|a| {
            a.nfs = NfsAnswer {
                server: "10.20.0.240".into(),
                path: "/k".into(),
            }
        });
        assert!(e.message.contains("NFS server"), "{e}");
    }
}
