//! The pure DNS plan: the records the lab wants (the wildcard or each host of the domain at the
//! ingress address) against the records a provider lists, each marked owned or not. A record
//! homelab did not create is never changed or removed: one that stands in the way is a
//! conflict, and a plan with a conflict is refused as a whole. No I/O here.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use homelab_spec::lab::{DnsProvider, DnsRecords};
use serde::{Deserialize, Serialize};

/// One A record: a name (`*.home.example.com`, `grafana.home.example.com`) and its address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub address: Ipv4Addr,
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} A {}", self.name, self.address)
    }
}

/// A record as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Existing {
    /// What the provider's API calls it by: an ID, a hosts line, a rewrite's pair.
    pub id: String,
    /// The name, lowercase, without a trailing dot.
    pub name: String,
    /// `A`, `CNAME`, ...; rewrites that answer with a name are `CNAME`.
    pub kind: String,
    /// The answer as the provider holds it (an address or a name).
    pub answer: String,
    /// Whether homelab made it (a mark the provider keeps, or the lab's note).
    pub owned: bool,
}

impl Existing {
    fn is(&self, r: &Record) -> bool {
        self.kind == "A" && same_name(&self.name, &r.name) && self.answer == r.address.to_string()
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The records the lab wants at a provider.
///
/// `hosts` are the full host names the lab serves. With `DnsRecords::Wildcard` one record
/// covers them: `*.<domain>`, except at NextDNS, where a rewrite of the domain answers for
/// its subdomains too (and a `*.` name is not a rewrite it takes).
pub fn desired(
    provider: DnsProvider,
    mode: DnsRecords,
    domain: &str,
    hosts: &[String],
    ingress: Ipv4Addr,
) -> Vec<Record> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    match mode {
        DnsRecords::Wildcard => vec![Record {
            name: if provider == DnsProvider::Nextdns {
                domain
            } else {
                format!("*.{domain}")
            },
            address: ingress,
        }],
        DnsRecords::Hosts => {
            let names: BTreeSet<String> = hosts
                .iter()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                .collect();
            names
                .into_iter()
                .map(|name| Record {
                    name,
                    address: ingress,
                })
                .collect()
        }
    }
}

/// One change to make at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Change {
    Create {
        record: Record,
    },
    /// A record homelab made that now points elsewhere.
    Update {
        existing: Existing,
        record: Record,
    },
    /// A record homelab made that the lab no longer wants.
    Delete {
        existing: Existing,
    },
}

/// A record homelab did not make that stands where the lab wants one of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub existing: Existing,
    pub wanted: Record,
    /// Why it is in the way.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// What the lab wants, in name order.
    pub records: Vec<Record>,
    pub changes: Vec<Change>,
    /// Wanted records already in place (homelab's or not).
    pub in_place: Vec<Record>,
    /// In place but not made by homelab: left alone, and never removed.
    pub not_owned: Vec<Record>,
    pub conflicts: Vec<Conflict>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.conflicts.is_empty()
    }

    /// The wanted records homelab holds once the plan is carried out: made or kept by it.
    pub fn owned_after(&self) -> Vec<Record> {
        let mut out: Vec<Record> = self
            .records
            .iter()
            .filter(|r| !self.not_owned.contains(r))
            .cloned()
            .collect();
        out.sort();
        out
    }
}

/// Compares what the lab wants with what the provider lists.
///
/// `hosts` are the lab's host names, so that with a wildcard a record of one of them that
/// points elsewhere (and would shadow the wildcard) is reported as a conflict too.
pub fn plan(wanted: &[Record], hosts: &[String], existing: &[Existing]) -> Plan {
    let mut records = wanted.to_vec();
    records.sort();
    records.dedup();
    let mut changes = Vec::new();
    let mut in_place = Vec::new();
    let mut not_owned = Vec::new();
    let mut conflicts = Vec::new();
    let mut used: BTreeSet<usize> = BTreeSet::new();

    for r in &records {
        let at_name: Vec<(usize, &Existing)> = existing
            .iter()
            .enumerate()
            .filter(|(_, e)| same_name(&e.name, &r.name) && answers_names(&e.kind))
            .collect();
        let exact = at_name.iter().find(|(_, e)| e.is(r));
        for (i, e) in &at_name {
            if !e.is(r) && !e.owned {
                conflicts.push(Conflict {
                    existing: (*e).clone(),
                    wanted: r.clone(),
                    reason: format!(
                        "`{}` already answers {} {} and was not made by homelab",
                        e.name, e.kind, e.answer
                    ),
                });
                used.insert(*i);
            }
        }
        match exact {
            Some((i, e)) => {
                used.insert(*i);
                in_place.push(r.clone());
                if !e.owned {
                    not_owned.push(r.clone());
                }
                // Further records of homelab's at the name are stale duplicates.
                for (j, other) in &at_name {
                    if j != i && other.owned && !used.contains(j) {
                        used.insert(*j);
                        changes.push(Change::Delete {
                            existing: (*other).clone(),
                        });
                    }
                }
            }
            None => {
                let ours: Vec<&(usize, &Existing)> = at_name
                    .iter()
                    .filter(|(j, e)| e.owned && !used.contains(j))
                    .collect();
                let mut ours = ours.into_iter();
                match ours.next() {
                    Some((j, e)) => {
                        used.insert(*j);
                        changes.push(Change::Update {
                            existing: (*e).clone(),
                            record: r.clone(),
                        });
                        for (k, other) in ours {
                            used.insert(*k);
                            changes.push(Change::Delete {
                                existing: (*other).clone(),
                            });
                        }
                    }
                    None => changes.push(Change::Create { record: r.clone() }),
                }
            }
        }
    }

    // With a wildcard, a host's own record that points elsewhere wins over it.
    for h in hosts {
        if records.iter().any(|r| same_name(&r.name, h)) {
            continue;
        }
        let Some(cover) = records.iter().find(|r| covers(&r.name, h)) else {
            continue;
        };
        for (i, e) in existing.iter().enumerate() {
            if used.contains(&i) || !same_name(&e.name, h) || !answers_names(&e.kind) {
                continue;
            }
            if e.owned {
                continue;
            }
            if e.kind == "A" && e.answer == cover.address.to_string() {
                continue;
            }
            used.insert(i);
            conflicts.push(Conflict {
                existing: e.clone(),
                wanted: cover.clone(),
                reason: format!(
                    "`{}` answers {} {}, which overrides `{}` for this host, and was not made by homelab",
                    e.name, e.kind, e.answer, cover.name
                ),
            });
        }
    }

    // Records homelab made that the lab no longer wants.
    for (i, e) in existing.iter().enumerate() {
        if e.owned && !used.contains(&i) {
            changes.push(Change::Delete {
                existing: e.clone(),
            });
        }
    }
    Plan {
        records,
        changes,
        in_place,
        not_owned,
        conflicts,
    }
}

/// Whether a record of this kind answers an A lookup of its name.
fn answers_names(kind: &str) -> bool {
    matches!(kind, "A" | "CNAME")
}

/// Whether the wildcard (or, at NextDNS, the domain) `name` answers for `host`.
fn covers(name: &str, host: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let base = name.strip_prefix("*.").unwrap_or(&name);
    host.ends_with(&format!(".{base}"))
}

/// The records as zone-file lines, for `manual` and for the docs.
pub fn zone_lines(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{}. 300 IN A {}", r.name, r.address))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 100);

    fn e(id: &str, name: &str, answer: &str, owned: bool) -> Existing {
        Existing {
            id: id.into(),
            name: name.into(),
            kind: "A".into(),
            answer: answer.into(),
            owned,
        }
    }

    fn hosts() -> Vec<String> {
        vec!["grafana.home.arpa".into(), "n8n.home.arpa".into()]
    }

    #[test]
    fn an_empty_provider_gets_every_record() {
        let want = desired(
            DnsProvider::Pihole,
            DnsRecords::Hosts,
            "home.arpa",
            &hosts(),
            IP,
        );
        let p = plan(&want, &hosts(), &[]);
        assert_eq!(p.changes.len(), 2);
        assert!(p.conflicts.is_empty());
        assert!(
            matches!(&p.changes[0], Change::Create { record } if record.name == "grafana.home.arpa")
        );
    }

    #[test]
    fn records_in_place_change_nothing_whoever_made_them() {
        let want = desired(
            DnsProvider::Cloudflare,
            DnsRecords::Wildcard,
            "home.arpa",
            &hosts(),
            IP,
        );
        for owned in [true, false] {
            let p = plan(
                &want,
                &hosts(),
                &[e("1", "*.home.arpa", "192.168.2.100", owned)],
            );
            assert!(p.is_empty(), "{p:?}");
            assert_eq!(p.not_owned.len(), usize::from(!owned));
            assert_eq!(p.owned_after().len(), usize::from(owned));
        }
    }

    #[test]
    fn a_record_of_someone_else_at_the_name_is_a_conflict_and_is_left_alone() {
        let want = desired(
            DnsProvider::Adguard,
            DnsRecords::Wildcard,
            "home.arpa",
            &hosts(),
            IP,
        );
        let p = plan(&want, &hosts(), &[e("x", "*.home.arpa", "10.0.0.9", false)]);
        assert_eq!(p.conflicts.len(), 1);
        assert!(p.conflicts[0].reason.contains("10.0.0.9"));
        assert!(
            !p.changes
                .iter()
                .any(|c| matches!(c, Change::Delete { .. } | Change::Update { .. }))
        );
    }

    #[test]
    fn a_host_record_that_shadows_the_wildcard_is_a_conflict() {
        let want = desired(
            DnsProvider::Cloudflare,
            DnsRecords::Wildcard,
            "home.arpa",
            &hosts(),
            IP,
        );
        let p = plan(
            &want,
            &hosts(),
            &[e("x", "grafana.home.arpa", "10.0.0.9", false)],
        );
        assert_eq!(p.conflicts.len(), 1);
        assert!(p.conflicts[0].reason.contains("overrides"));
        // The same host at the ingress address agrees with the wildcard.
        let p = plan(
            &want,
            &hosts(),
            &[e("x", "grafana.home.arpa", "192.168.2.100", false)],
        );
        assert!(p.conflicts.is_empty());
    }

    #[test]
    fn homelabs_own_records_move_with_the_ingress_and_go_when_unwanted() {
        let want = desired(
            DnsProvider::Pihole,
            DnsRecords::Hosts,
            "home.arpa",
            &hosts(),
            IP,
        );
        let p = plan(
            &want,
            &hosts(),
            &[
                e("a", "grafana.home.arpa", "192.168.2.99", true),
                e("b", "old.home.arpa", "192.168.2.100", true),
                e("c", "nas.home.arpa", "192.168.2.5", false),
            ],
        );
        assert!(p.conflicts.is_empty());
        assert!(
            p.changes
                .iter()
                .any(|c| matches!(c, Change::Update { existing, .. } if existing.id == "a"))
        );
        assert!(
            p.changes
                .iter()
                .any(|c| matches!(c, Change::Delete { existing } if existing.id == "b"))
        );
        assert!(
            p.changes
                .iter()
                .any(|c| matches!(c, Change::Create { record } if record.name == "n8n.home.arpa"))
        );
        assert!(
            !p.changes
                .iter()
                .any(|c| matches!(c, Change::Delete { existing } if existing.id == "c"))
        );
    }

    #[test]
    fn nextdns_rewrites_the_domain_for_a_wildcard() {
        let want = desired(
            DnsProvider::Nextdns,
            DnsRecords::Wildcard,
            "Home.Arpa.",
            &hosts(),
            IP,
        );
        assert_eq!(want[0].name, "home.arpa");
        assert!(covers("home.arpa", "grafana.home.arpa"));
        assert!(!covers("home.arpa", "home.arpa.evil"));
        assert_eq!(zone_lines(&want), ["home.arpa. 300 IN A 192.168.2.100"]);
    }
}
