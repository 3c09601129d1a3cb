//! `network.dns` read into the provider and its `DnsSettings`: which API keys each provider
//! reads, all of them once one is given, the record shape the provider can hold and the LAN
//! resolvers `status` asks; no I/O.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::{Checker, check_url};
use crate::de::Spanned;
use crate::diag::{Diagnostic, Span};
use crate::lab::{DnsApi, DnsSettings};
use crate::raw::{DnsProvider, DnsRecords, RawDns};

/// The API keys each provider reads, in the order the help names them.
fn provider_keys(p: DnsProvider) -> &'static [&'static str] {
    match p {
        DnsProvider::Pihole => &["url", "password"],
        DnsProvider::Adguard => &["url", "username", "password"],
        DnsProvider::Nextdns => &["profile", "apiKey"],
        DnsProvider::Cloudflare => &["zoneId", "apiToken"],
        DnsProvider::Manual => &[],
    }
}

fn key_spans(d: &RawDns) -> [(&'static str, Option<Span>); 7] {
    [
        ("url", d.url.as_ref().map(|v| v.span)),
        ("username", d.username.as_ref().map(|v| v.span)),
        ("password", d.password.as_ref().map(|v| v.span)),
        ("profile", d.profile.as_ref().map(|v| v.span)),
        ("apiKey", d.api_key.as_ref().map(|v| v.span)),
        ("zoneId", d.zone_id.as_ref().map(|v| v.span)),
        ("apiToken", d.api_token.as_ref().map(|v| v.span)),
    ]
}

pub(super) fn provider_name(p: DnsProvider) -> &'static str {
    match p {
        DnsProvider::Pihole => "pihole",
        DnsProvider::Adguard => "adguard",
        DnsProvider::Nextdns => "nextdns",
        DnsProvider::Cloudflare => "cloudflare",
        DnsProvider::Manual => "manual",
    }
}

/// Whether the provider can hold one record for `*.<domain>`.
fn has_wildcards(p: DnsProvider) -> bool {
    !matches!(p, DnsProvider::Pihole)
}

pub(super) fn dns(c: &mut Checker, d: Option<&Spanned<RawDns>>) -> (DnsProvider, DnsSettings) {
    let Some(d) = d else {
        return (
            DnsProvider::Manual,
            DnsSettings {
                records: DnsRecords::Wildcard,
                servers: Vec::new(),
                api: None,
            },
        );
    };
    c.require(
        &d.provider,
        d.span,
        "provider",
        "who answers the lab's names",
        "add `provider: pihole` (or adguard, nextdns, cloudflare, manual)",
    );
    let provider = d.provider.as_ref().map_or(DnsProvider::Manual, |p| p.value);
    let name = provider_name(provider);
    let wanted = provider_keys(provider);
    let spans = key_spans(d);
    for (key, span) in spans {
        if let Some(at) = span
            && !wanted.contains(&key)
        {
            c.error(
                Diagnostic::error(
                    "dns-key-unused",
                    format!("`{key}` is not read by the DNS provider `{name}`"),
                )
                .at(at)
                .label("not used")
                .help(match provider {
                    DnsProvider::Manual => format!(
                        "`manual` has no API: remove `{key}`, or name the provider it belongs to"
                    ),
                    _ => format!(
                        "remove `{key}`; `{name}` reads {}",
                        wanted
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
            );
        }
    }
    let given = spans.iter().any(|(k, s)| s.is_some() && wanted.contains(k));
    let api = if given { api(c, d, provider) } else { None };

    let records = match d.records.as_ref() {
        Some(r) if r.value == DnsRecords::Wildcard && !has_wildcards(provider) => {
            c.error(
                Diagnostic::error(
                    "dns-wildcard-unsupported",
                    format!("`{name}` cannot hold a wildcard record"),
                )
                .at(r.span)
                .label("Pi-hole's local DNS records are hosts-file lines: one name each")
                .help("use `records: hosts` (one record per service host, kept up to date by `homelab dns apply`), or `provider: manual` and dnsmasq's `address=/<domain>/<ingressIp>`"),
            );
            DnsRecords::Hosts
        }
        Some(r) => r.value,
        None if has_wildcards(provider) => DnsRecords::Wildcard,
        None => DnsRecords::Hosts,
    };

    let servers = d
        .servers
        .iter()
        .filter_map(|s| match resolver_address(&s.value) {
            Ok(a) => Some(a),
            Err(message) => {
                c.error(
                    Diagnostic::error("invalid-dns-server", message)
                        .at(s.span)
                        .help("write the resolver's IPv4 address, with `:PORT` when it is not 53, e.g. `192.168.2.2` or `127.0.0.1:5353`"),
                );
                None
            }
        })
        .collect();
    (
        provider,
        DnsSettings {
            records,
            servers,
            api,
        },
    )
}

fn api(c: &mut Checker, d: &Spanned<RawDns>, provider: DnsProvider) -> Option<DnsApi> {
    let why = |what: &str| format!("`homelab dns apply` needs it to {what}");
    match provider {
        DnsProvider::Manual => None,
        DnsProvider::Pihole => {
            let url = url(c, d, "http://192.168.2.2");
            let password = c.required_secret(
                &d.password,
                d.span,
                "password",
                "pihole-password",
                &why("log in to Pi-hole's API (the web interface password or an app password)"),
            );
            Some(DnsApi::Pihole {
                url: url?,
                password: password?,
            })
        }
        DnsProvider::Adguard => {
            let url = url(c, d, "http://192.168.2.2:3000");
            let username = c
                .require(
                    &d.username,
                    d.span,
                    "username",
                    &why("log in to AdGuard Home"),
                    "add the web interface's user, e.g. `username: admin`",
                )
                .map(|u| u.value.clone());
            let password = c.required_secret(
                &d.password,
                d.span,
                "password",
                "adguard-password",
                &why("log in to AdGuard Home"),
            );
            Some(DnsApi::Adguard {
                url: url?,
                username: username?,
                password: password?,
            })
        }
        DnsProvider::Nextdns => {
            let profile = c
                .require(
                    &d.profile,
                    d.span,
                    "profile",
                    &why("find the profile's rewrites"),
                    "add the ID my.nextdns.io shows for the configuration, e.g. `profile: abc123`",
                )
                .and_then(|p| {
                    id(c, p, "NextDNS profile ID", "abc123", |ch| {
                        ch.is_ascii_alphanumeric()
                    })
                });
            let key = c.required_secret(
                &d.api_key,
                d.span,
                "apiKey",
                "nextdns-api-key",
                &why("call the NextDNS API (the key is at the bottom of the account page)"),
            );
            Some(DnsApi::Nextdns {
                profile: profile?,
                api_key: key?,
            })
        }
        DnsProvider::Cloudflare => {
            let zone = c
                .require(
                    &d.zone_id,
                    d.span,
                    "zoneId",
                    &why("find the zone's records"),
                    "add the zone ID from the zone's Overview page (32 hex digits)",
                )
                .and_then(|z| {
                    if z.value.len() == 32 && z.value.chars().all(|ch| ch.is_ascii_hexdigit()) {
                        Some(z.value.to_ascii_lowercase())
                    } else {
                        c.error(
                            Diagnostic::error(
                                "invalid-zone-id",
                                format!("`{}` is not a Cloudflare zone ID", z.value),
                            )
                            .at(z.span)
                            .help("copy the Zone ID from the zone's Overview page: 32 hex digits, e.g. `023e105f4ecef8ad9ca31a8372d0c353` (the domain's name is not its ID)"),
                        );
                        None
                    }
                });
            let token = c.required_secret(
                &d.api_token,
                d.span,
                "apiToken",
                "cloudflare-dns-token",
                &why("edit the zone's DNS records (an API token with Zone > DNS > Edit)"),
            );
            Some(DnsApi::Cloudflare {
                zone_id: zone?,
                api_token: token?,
            })
        }
    }
}

fn url(c: &mut Checker, d: &Spanned<RawDns>, example: &str) -> Option<String> {
    let u = c.require(
        &d.url,
        d.span,
        "url",
        "`homelab dns apply` needs the web interface's address to reach its API",
        &format!("add e.g. `url: {example}`"),
    )?;
    check_url(c, u, example).then(|| u.value.trim_end_matches('/').to_string())
}

fn id(
    c: &mut Checker,
    v: &Spanned<String>,
    what: &str,
    example: &str,
    ok: impl Fn(char) -> bool,
) -> Option<String> {
    if !v.value.is_empty() && v.value.len() <= 64 && v.value.chars().all(ok) {
        return Some(v.value.clone());
    }
    c.error(
        Diagnostic::error("invalid-id", format!("`{}` is not a {what}", v.value))
            .at(v.span)
            .help(format!(
                "write the ID as the provider shows it: letters and digits, e.g. `{example}`"
            )),
    );
    None
}

/// `IP` or `IP:PORT` (IPv4: the records are A records, and the lab's LAN is IPv4).
fn resolver_address(text: &str) -> Result<SocketAddrV4, String> {
    let (ip, port) = match text.split_once(':') {
        Some((ip, port)) => (ip, Some(port)),
        None => (text, None),
    };
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("`{text}` is not a resolver address"))?;
    let port = match port {
        None => 53,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("`{text}`: the port must be a number from 1 to 65535"))?,
    };
    Ok(SocketAddrV4::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::resolver_address;

    #[test]
    fn a_resolver_takes_an_optional_port() {
        assert_eq!(resolver_address("192.168.2.2").unwrap().port(), 53);
        assert_eq!(resolver_address("127.0.0.1:5353").unwrap().port(), 5353);
        assert!(resolver_address("127.0.0.1:0").is_err());
        assert!(resolver_address("pi.hole").is_err());
    }
}
