//! The runbook for a DNS record homelab did not make standing where the lab wants one of its
//! own (`homelab dns apply` refusing), rendered with the lab's provider and names when the
//! spec gives the provider's API. Text only; the records themselves are homelab-dns's.

use homelab_spec::lab::{DnsApi, DnsRecords};

use super::Ctx;

pub(crate) fn runbook(ctx: &Ctx) -> Option<crate::Runbook> {
    let net = &ctx.lab.network;
    let api = net.dns.api.as_ref()?;
    let title = "Runbook: DNS record conflict";
    let domain = ctx.domain();
    let ingress = net.ingress_ip;
    let example = ctx.fqdn("grafana");
    let (provider, where_, mark) = match api {
        DnsApi::Pihole { url, .. } => (
            "Pi-hole",
            format!("{url}/admin > Settings > Local DNS Records"),
            "the note `.homelab/dns.json` beside homelab.yaml (Pi-hole records carry no comment); a line is homelab's only as homelab writes it, `IP NAME` with one name",
        ),
        DnsApi::Adguard { url, .. } => (
            "AdGuard Home",
            format!("{url} > Filters > DNS rewrites"),
            "the note `.homelab/dns.json` beside homelab.yaml (rewrites carry no comment)",
        ),
        DnsApi::Nextdns { profile, .. } => (
            "NextDNS",
            format!("my.nextdns.io > profile {profile} > Settings > Rewrites"),
            "the note `.homelab/dns.json` beside homelab.yaml (rewrites carry no comment)",
        ),
        DnsApi::Cloudflare { .. } => (
            "Cloudflare",
            "the Cloudflare dashboard > the zone > DNS > Records".to_string(),
            "the record's comment `managed by homelab (lab <name>)`",
        ),
    };
    let wanted = match net.dns.records {
        DnsRecords::Wildcard if matches!(api, DnsApi::Nextdns { .. }) => {
            format!("a rewrite of `{domain}` (it answers for every `*.{domain}` name)")
        }
        DnsRecords::Wildcard => format!("`*.{domain}`"),
        DnsRecords::Hosts => format!("one record per service host, e.g. `{example}`"),
    };
    Some(crate::Runbook {
        name: "dns-record-conflict".into(),
        title: title.into(),
        content: format!(
            "# {title}\n\n`homelab dns apply` stopped with *records are in the way that homelab did not make, so nothing was changed*, and `homelab dns plan` lists them with `!`. The lab wants {wanted} at {provider} answering `{ingress}`, the ingress address, and a record homelab did not make already answers one of those names with something else. homelab never changes or removes a record it did not make: it may be yours, or another tool's.\n\nHow homelab knows its own records: {mark}.\n\n## Fix it\n\n1. `homelab dns plan` names each record in the way and what it answers.\n2. Decide, for each: if it is an old record of yours for the lab, delete it in {where_}; if something else still needs that name, give the lab another `network.domain` (or move that service off the name).\n3. `homelab dns apply`, then `homelab dns plan` shows `nothing to change`, and `dig +short {example}` answers `{ingress}`.\n\n## homelab's own records look foreign\n\nA record homelab made is counted as someone else's when the note `.homelab/dns.json` is gone (a new checkout of the lab's repository, where `.homelab/` is not committed) or was made for another server or profile. Records that are exactly as the lab wants them are left in place and reported as not made by homelab; only ones that differ are conflicts. Delete those at {provider} and run `homelab dns apply` again: homelab makes them anew and notes them.\n\n## A host record shadows the wildcard\n\nWith one wildcard record, a record of one host (`{example}`) pointing elsewhere wins over it for that host, so it is a conflict too. Remove it, or point it at `{ingress}`.\n"
        ),
    })
}
