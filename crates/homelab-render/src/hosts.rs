//! `docs/host-preparation.md`: what must be true of the machines, the NAS and the DNS before
//! the first `homelab nodes apply` (or the README's path without the tool), written with the
//! lab's own names, addresses, export and domain. Pure text; it tells the operator what to do
//! and never holds a secret.

use std::fmt::Write as _;

use homelab_plan::{NodePlan, Plan};
use homelab_spec::lab::{DnsProvider, NodeRole};

use crate::docs::{ingress_ip, nfs_export};

/// `user@address` (or the address alone when the spec leaves the user to `~/.ssh/config`),
/// and the `-p` option when the spec sets a port.
pub(crate) fn ssh_target(n: &NodePlan) -> (String, String) {
    let dest = match &n.ssh_user {
        Some(u) => format!("{u}@{}", n.address),
        None => n.address.clone(),
    };
    let port = n.ssh_port.map(|p| format!("-p {p} ")).unwrap_or_default();
    (dest, port)
}

fn user_of(n: &NodePlan) -> &str {
    n.ssh_user.as_deref().unwrap_or("<your user>")
}

pub(crate) fn guide(plan: &Plan) -> String {
    let net = &plan.network;
    let prefix = net.subnet.prefix;
    let ingress = ingress_ip(plan).unwrap_or_else(|| net.ingress_ip.to_string());
    let domain = &plan.domain;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Preparing the hosts of {lab}\n\nWhat the tool cannot do for you, once, before `homelab nodes apply` (or the README's path without the tool): install the machines, give them fixed addresses, a user with sudo and your SSH key, export the NAS directory and point the lab's names at the ingress address. Written from homelab.yaml: the names and addresses below are this lab's.\n",
        lab = plan.lab_name
    );
    let _ = writeln!(o, "| node | role | address | SSH user |\n|---|---|---|---|");
    for n in &plan.nodes {
        let _ = writeln!(
            o,
            "| {} | {} | {}/{prefix} | {} |",
            n.name,
            match (n.role, n.init) {
                (NodeRole::Server, true) => "server (initialises the cluster)",
                (NodeRole::Server, false) => "server",
                (NodeRole::Agent, _) => "agent",
            },
            n.address,
            n.ssh_user
                .as_deref()
                .map_or("from `~/.ssh/config`".to_string(), |u| format!("`{u}`"))
        );
    }
    let _ = writeln!(
        o,
        "\nGateway {gw}, network {subnet}. The MetalLB pool {pool} and the ingress address {ingress} must be outside the router's DHCP range, and no machine may use them.\n",
        gw = net.gateway,
        subnet = net.subnet,
        pool = net.load_balancer_pool,
    );

    let _ = writeln!(
        o,
        "## 1. Install Ubuntu Server\n\nUbuntu Server 24.04 LTS (or Debian 12) on each machine, 64-bit (amd64 or arm64), at least 2 CPUs and 4 GB of memory for a server, 2 GB for an agent, and 20 GB of disk. In the installer:\n\n- name each machine as in the table (`{first}`, ...): K3s registers the node under that name;\n- choose \"Install OpenSSH server\";\n- leave swap off or turn it off afterwards (`sudo swapoff -a` and remove the swap line from `/etc/fstab`);\n- do not install the Docker or MicroK8s snaps.\n",
        first = plan
            .nodes
            .first()
            .map(|n| n.name.as_str())
            .unwrap_or("node")
    );

    let _ = writeln!(
        o,
        "## 2. A fixed address\n\nEach node keeps its address: give it a static one (or a DHCP reservation on the router for the same address). With netplan, `/etc/netplan/50-homelab.yaml` on each node (the interface name from `ip -br link`, here `eth0`), then `sudo netplan apply`:\n"
    );
    for n in &plan.nodes {
        let _ = writeln!(
            o,
            "`{name}`:\n\n```yaml\nnetwork:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: false\n      addresses: [{addr}/{prefix}]\n      routes:\n        - to: default\n          via: {gw}\n      nameservers:\n        addresses: [{gw}]\n```\n",
            name = n.name,
            addr = n.address,
            gw = net.gateway
        );
    }
    let _ = writeln!(
        o,
        "The nameserver must be the DNS that has the lab's rewrite (step 6), so the nodes resolve `*.{domain}` too; {gw} is the gateway, change it when your DNS runs elsewhere.\n",
        gw = net.gateway
    );

    let _ = writeln!(
        o,
        "## 3. A user with sudo\n\nhomelab logs in as the SSH user and becomes root with `sudo`. On each node, as the user the installer created or as root:\n\n```sh"
    );
    let mut users: Vec<&str> = plan.nodes.iter().map(user_of).collect();
    users.sort_unstable();
    users.dedup();
    for u in &users {
        let _ = writeln!(
            o,
            "sudo adduser {u}                # skip when it exists\nsudo usermod -aG sudo {u}"
        );
    }
    let _ = writeln!(
        o,
        "```\n\nWith a sudo password, keep it in the secrets file and name it in the node's `ssh.sudoPassword`; or allow the user sudo without one (`echo '{u} ALL=(ALL) NOPASSWD:ALL' | sudo tee /etc/sudoers.d/{u}` and `sudo chmod 0440 /etc/sudoers.d/{u}`), which the README's path without the tool needs.\n",
        u = users.first().copied().unwrap_or("<your user>")
    );

    let _ = writeln!(
        o,
        "## 4. Your SSH key on every node\n\nFrom your machine (an existing key, or `ssh-keygen -t ed25519` first). The first login asks you to confirm each host key: check its fingerprint on the node's console (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`). homelab checks host keys strictly and never accepts one for you.\n\n```sh"
    );
    for n in &plan.nodes {
        let (dest, port) = ssh_target(n);
        let _ = writeln!(o, "ssh-copy-id {port}{dest}");
    }
    for n in &plan.nodes {
        let (dest, port) = ssh_target(n);
        let _ = writeln!(
            o,
            "ssh {port}{dest} 'sudo -n true && hostname'   # prints {}",
            n.name
        );
    }
    let _ = writeln!(
        o,
        "```\n\nThen turn password logins off on each node (`PasswordAuthentication no` in `/etc/ssh/sshd_config.d/50-homelab.conf`, `sudo systemctl reload ssh`).\n"
    );

    let _ = writeln!(o, "## 5. The NAS export\n");
    match nfs_export(plan) {
        Some((server, path)) => {
            let _ = writeln!(
                o,
                "Every volume of the lab is a directory in the NFS export `{server}:{path}`. Create the shared folder on the NAS and export it over NFS (v4.1) read-write to the network {subnet} only, with root not squashed: the provisioner creates one directory per volume, and PostgreSQL, Prometheus and Loki change their files' owners.\n\n- Synology DSM: Control Panel > Shared Folder > the folder > Edit > NFS Permissions > Create: hostname or IP `{subnet}`, privilege Read/Write, squash \"No mapping\", security `sys`, \"Allow connections from non-privileged ports\" on; and Control Panel > File Services > NFS: enable NFS with NFSv4.1.\n- A Linux NAS: in `/etc/exports`\n\n  ```\n  {path} {subnet}(rw,sync,no_subtree_check,no_root_squash)\n  ```\n\n  then `sudo exportfs -ra`.\n\nEach node mounts it through K3s: install the NFS client (`homelab nodes apply` does) and check it from one node:\n\n```sh\nsudo apt-get install -y nfs-common\nshowmount -e {server}                     # lists {path} for {subnet}\nsudo mount -t nfs4 -o nfsvers=4.1 {server}:{path} /mnt && sudo touch /mnt/.homelab-check && sudo rm /mnt/.homelab-check && sudo umount /mnt\n```\n",
                subnet = net.subnet
            );
            let mounts: Vec<&NodePlan> = plan
                .nodes
                .iter()
                .filter(|n| n.etcd_snapshot_mount.is_some())
                .collect();
            if let Some(m) = mounts.first().and_then(|n| n.etcd_snapshot_mount.as_ref()) {
                let _ = writeln!(
                    o,
                    "The etcd snapshots of the server(s) go to `{dir}`, a mount of `{source}`: create that directory in the export once (`sudo mkdir -p /mnt/{sub}` while the export is mounted at `/mnt`). `homelab nodes apply` mounts it with a systemd mount unit before K3s starts; by hand, on {nodes}, `sudo mkdir -p {dir}` and add to `/etc/fstab`:\n\n```\n{source} {dir} nfs4 nfsvers=4.1,hard,noatime,_netdev 0 0\n```\n\nthen `sudo mount {dir}`.\n",
                    dir = m.dir,
                    source = m.source(),
                    sub = m.subdir,
                    nodes = mounts
                        .iter()
                        .map(|n| format!("`{}`", n.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        None => {
            let _ = writeln!(
                o,
                "This lab has no `storage.nfs`: volumes stay on the nodes' own disks and are lost with a node. Add a NAS export to homelab.yaml to keep them.\n"
            );
        }
    }

    let _ = writeln!(
        o,
        "## 6. The lab's names: *.{domain} to {ingress}\n\nEvery service is `<name>.{domain}` at the ingress address {ingress}. The name must resolve on the LAN (and over Tailscale) to that private address:\n"
    );
    match net.dns_provider {
        DnsProvider::Nextdns => {
            let _ = writeln!(
                o,
                "NextDNS (the spec's `network.dns.provider: nextdns`): in my.nextdns.io, your configuration > Settings > Rewrites > add `*.{domain}` with the answer `{ingress}` (and `{domain}` itself, if you use it). Every device that uses this NextDNS configuration, the nodes included, then resolves the lab's names. Tailscale: set NextDNS as the tailnet's nameserver (Admin console > DNS > Nameservers) so that phones on the go resolve them too.\n"
            );
        }
        DnsProvider::Cloudflare => {
            let _ = writeln!(
                o,
                "Cloudflare (the spec's `network.dns.provider: cloudflare`): in the zone's DNS records, add an `A` record `*.{domain}` with the content `{ingress}`, proxy status \"DNS only\" (grey cloud: Cloudflare cannot proxy a private address). The address is then public knowledge but only reachable on your LAN or tailnet. Some routers drop answers that point at private addresses (DNS rebinding protection): allow `{domain}` there.\n"
            );
        }
        DnsProvider::Pihole => {
            let _ = writeln!(
                o,
                "Pi-hole (the spec's `network.dns.provider: pihole`): a wildcard needs dnsmasq. Pi-hole v6: Settings > All settings > Miscellaneous > `misc.dnsmasq_lines`, add\n\n```\naddress=/{domain}/{ingress}\n```\n\n(Pi-hole v5: put that line in `/etc/dnsmasq.d/50-homelab.conf` and run `pihole restartdns`). Local DNS records in the web interface cannot hold a wildcard. Point the router's DHCP DNS setting (and Tailscale's nameserver) at the Pi-hole.\n"
            );
        }
        DnsProvider::Adguard => {
            let _ = writeln!(
                o,
                "AdGuard Home (the spec's `network.dns.provider: adguard`): Filters > DNS rewrites > Add DNS rewrite, domain `*.{domain}`, answer `{ingress}`. Point the router's DHCP DNS setting (and Tailscale's nameserver) at AdGuard Home.\n"
            );
        }
        DnsProvider::Manual => {
            let _ = writeln!(
                o,
                "Your own DNS (the spec's `network.dns.provider: manual`): add a wildcard `A` record `*.{domain}` with `{ingress}` on the DNS server your LAN uses (router, dnsmasq: `address=/{domain}/{ingress}`, Unbound: `local-zone: \"{domain}.\" redirect` and `local-data: \"{domain}. A {ingress}\"`, BIND: `*.{domain}. IN A {ingress}`).\n"
            );
        }
    }
    if net.dns.api.is_some() {
        let _ = writeln!(
            o,
            "The spec gives the provider's API, so `homelab dns plan` shows these records and `homelab dns apply` sets them (only records it made are ever changed or removed; see docs/runbooks/dns-record-conflict.md).\n"
        );
    }
    let _ = writeln!(
        o,
        "Check from your machine and from a node:\n\n```sh\ndig +short grafana.{domain}        # {ingress}\ndig +short anything.{domain}       # {ingress}\n```\n"
    );
    let _ = writeln!(
        o,
        "## Then\n\n`homelab validate`, `homelab nodes apply --dry-run` (it connects to every node and says what it would change) and `homelab nodes apply`; or follow the README's path without the tool. K3s {} is installed by either.",
        plan.k3s_version
    );
    o
}
