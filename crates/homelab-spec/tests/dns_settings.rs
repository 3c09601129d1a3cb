//! The spec's `network.dns`: a provider named alone (records set by hand), each provider's API
//! settings with the secret it reads, and each mistake reported at its place (file:line:col)
//! with what to write instead.

mod common;

use common::{errors, load, messages};
use homelab_spec::lab::{DnsApi, DnsProvider, DnsRecords, SecretRef};
use homelab_spec::templates::SEED;

/// The seed with its `dns:` block replaced by `block` (indented under `network:`).
fn with_dns(block: &str) -> String {
    let old = "  dns:\n    # Where the wildcard rewrite lives: nextdns, cloudflare, pihole or manual.\n    provider: nextdns\n";
    assert!(SEED.contains(old), "the seed's dns block moved");
    SEED.replace(old, &format!("  dns:\n{block}"))
}

#[test]
fn a_provider_alone_has_no_api_and_takes_its_record_shape() {
    let lab = load(SEED).lab;
    assert_eq!(lab.network.dns_provider, DnsProvider::Nextdns);
    assert_eq!(lab.network.dns.api, None);
    assert_eq!(lab.network.dns.records, DnsRecords::Wildcard);
    let lab = load(&with_dns("    provider: pihole\n")).lab;
    assert_eq!(lab.network.dns.records, DnsRecords::Hosts);
}

#[test]
fn each_provider_reads_its_settings_and_its_secret() {
    let cases = [
        (
            "    provider: pihole\n    url: http://192.168.2.2/\n    password: {secret: pihole-password}\n",
            DnsApi::Pihole {
                url: "http://192.168.2.2".into(),
                password: SecretRef("pihole-password".into()),
            },
        ),
        (
            "    provider: adguard\n    url: http://192.168.2.3:3000\n    username: admin\n    password: {secret: adguard-password}\n",
            DnsApi::Adguard {
                url: "http://192.168.2.3:3000".into(),
                username: "admin".into(),
                password: SecretRef("adguard-password".into()),
            },
        ),
        (
            "    provider: nextdns\n    profile: abc123\n    apiKey: {secret: nextdns-api-key}\n",
            DnsApi::Nextdns {
                profile: "abc123".into(),
                api_key: SecretRef("nextdns-api-key".into()),
            },
        ),
        (
            "    provider: cloudflare\n    zoneId: 023E105F4ECEF8AD9CA31A8372D0C353\n    apiToken: {secret: cloudflare-dns-token}\n",
            DnsApi::Cloudflare {
                zone_id: "023e105f4ecef8ad9ca31a8372d0c353".into(),
                api_token: SecretRef("cloudflare-dns-token".into()),
            },
        ),
    ];
    for (block, want) in cases {
        let lab = load(&with_dns(block)).lab;
        let secret = want.secret().clone();
        assert_eq!(lab.network.dns.api, Some(want));
        assert!(
            lab.secret_refs()
                .iter()
                .any(|(s, used)| *s == secret && used.contains("homelab dns")),
            "{block}"
        );
    }
}

#[test]
fn resolvers_take_an_optional_port() {
    let lab = load(&with_dns(
        "    provider: manual\n    servers: [192.168.2.2, \"127.0.0.1:5353\"]\n",
    ))
    .lab;
    let s: Vec<String> = lab
        .network
        .dns
        .servers
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(s, ["192.168.2.2:53", "127.0.0.1:5353"]);
}

#[test]
fn a_provider_given_part_of_its_api_is_told_the_rest() {
    let e = errors(&with_dns(
        "    provider: pihole\n    url: http://192.168.2.2\n",
    ));
    assert_eq!(e, ["missing-key 22:5"]);
    let m = messages(&with_dns(
        "    provider: pihole\n    url: http://192.168.2.2\n",
    ));
    assert!(
        m.contains("`password` is missing") && m.contains("pihole-password"),
        "{m}"
    );

    let m = messages(&with_dns(
        "    provider: adguard\n    password: {secret: adguard-password}\n",
    ));
    assert!(
        m.contains("`url` is missing") && m.contains("`username` is missing"),
        "{m}"
    );

    let m = messages(&with_dns(
        "    provider: nextdns\n    apiKey: {secret: nextdns-api-key}\n",
    ));
    assert!(m.contains("`profile` is missing"), "{m}");

    let m = messages(&with_dns(
        "    provider: cloudflare\n    zoneId: 023e105f4ecef8ad9ca31a8372d0c353\n",
    ));
    assert!(
        m.contains("`apiToken` is missing") && m.contains("Zone > DNS > Edit"),
        "{m}"
    );
}

#[test]
fn bad_values_are_reported_where_they_are() {
    let e = errors(&with_dns(
        "    provider: cloudflare\n    zoneId: home.example.com\n    apiToken: {secret: t}\n",
    ));
    assert_eq!(e, ["invalid-zone-id 23:13"]);
    let m = messages(&with_dns(
        "    provider: cloudflare\n    zoneId: home.example.com\n    apiToken: {secret: t}\n",
    ));
    assert!(
        m.contains("homelab.yaml:23:13") && m.contains("32 hex digits"),
        "{m}"
    );

    let e = errors(&with_dns(
        "    provider: pihole\n    url: 192.168.2.2\n    password: {secret: p}\n",
    ));
    assert_eq!(e, ["invalid-url 23:10"]);

    let e = errors(&with_dns(
        "    provider: nextdns\n    profile: \"abc 123\"\n    apiKey: {secret: k}\n",
    ));
    assert_eq!(e, ["invalid-id 23:14"]);

    let e = errors(&with_dns(
        "    provider: manual\n    servers: [pi.hole, \"10.0.0.1:99999\"]\n",
    ));
    assert_eq!(e, ["invalid-dns-server 23:15", "invalid-dns-server 23:24"]);
}

#[test]
fn a_key_the_provider_does_not_read_is_an_error() {
    let e = errors(&with_dns(
        "    provider: nextdns\n    profile: abc123\n    apiKey: {secret: k}\n    zoneId: 023e105f4ecef8ad9ca31a8372d0c353\n",
    ));
    assert_eq!(e, ["dns-key-unused 25:13"]);
    let m = messages(&with_dns(
        "    provider: manual\n    password: {secret: p}\n",
    ));
    assert!(m.contains("`manual` has no API"), "{m}");
}

#[test]
fn pihole_cannot_hold_a_wildcard() {
    let t = with_dns("    provider: pihole\n    records: wildcard\n");
    assert_eq!(errors(&t), ["dns-wildcard-unsupported 23:14"]);
    assert!(messages(&t).contains("records: hosts"));
}
