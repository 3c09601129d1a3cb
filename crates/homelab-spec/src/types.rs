//! Small validated value types of the spec (networks, quantities, durations, cron schedules,
//! versions, names) with parsers that explain what is wrong; pure functions only.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Why a value did not parse, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub message: String,
    pub help: String,
}

impl Invalid {
    pub(crate) fn new(message: impl Into<String>, help: impl Into<String>) -> Self {
        Invalid {
            message: message.into(),
            help: help.into(),
        }
    }
}

macro_rules! display_serialize {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}

pub fn parse_ipv4(text: &str) -> Result<Ipv4Addr, Invalid> {
    Ipv4Addr::from_str(text.trim()).map_err(|_| {
        Invalid::new(
            format!("`{text}` is not an IPv4 address"),
            "write four numbers from 0 to 255 separated by dots, e.g. `192.168.2.20`",
        )
    })
}

/// An IPv4 network in CIDR notation, normalised to its network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let help = "write the network in CIDR notation, e.g. `192.168.2.0/24`";
        let (addr, prefix) = text.trim().split_once('/').ok_or_else(|| {
            Invalid::new(format!("`{text}` is not a network in CIDR notation"), help)
        })?;
        let addr = parse_ipv4(addr).map_err(|e| Invalid::new(e.message, help))?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| {
            Invalid::new(
                format!("`/{prefix}` is not a prefix length from 0 to 32"),
                help,
            )
        })?;
        let net = Ipv4Net {
            network: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        };
        if net.network != addr {
            return Err(Invalid::new(
                format!("`{text}` has host bits set"),
                format!("the network address is `{net}`; write that"),
            ));
        }
        Ok(net)
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == u32::from(self.network)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// An inclusive range of IPv4 addresses, written `FIRST-LAST` or as a CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Range {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

impl Ipv4Range {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let help = "write `FIRST-LAST`, e.g. `192.168.2.100-192.168.2.120`, or a CIDR such as `192.168.2.96/28`";
        if let Some((a, b)) = text.split_once('-') {
            let start = parse_ipv4(a).map_err(|e| Invalid::new(e.message, help))?;
            let end = parse_ipv4(b).map_err(|e| Invalid::new(e.message, help))?;
            return Ok(Ipv4Range { start, end });
        }
        if text.contains('/') {
            let net = Ipv4Net::parse(text).map_err(|e| Invalid::new(e.message, help))?;
            return Ok(Ipv4Range {
                start: net.network,
                end: net.broadcast(),
            });
        }
        Err(Invalid::new(
            format!("`{text}` is not an address range"),
            help,
        ))
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        addr >= self.start && addr <= self.end
    }

    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.end)).saturating_sub(u64::from(u32::from(self.start))) + 1
    }

    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }
}

impl fmt::Display for Ipv4Range {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A Kubernetes resource quantity for storage or memory, e.g. `20Gi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    text: String,
    bytes: u128,
}

impl Quantity {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let help = "write a size such as `20Gi`, `500Mi` or `1Ti` (binary units Ki, Mi, Gi, Ti; or k, M, G, T)";
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u128 = num
            .parse()
            .map_err(|_| Invalid::new(format!("`{text}` is not a size"), help))?;
        let factor: u128 = match unit {
            "" => 1,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            "Pi" => 1 << 50,
            "k" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            "T" => 1_000_000_000_000,
            "P" => 1_000_000_000_000_000,
            "GB" | "gb" | "Gb" | "MB" | "mb" | "TB" | "tb" | "KB" | "kb" => {
                let fix = format!("{num}{}i", &unit[..1].to_ascii_uppercase());
                return Err(Invalid::new(
                    format!("`{text}` uses the unit `{unit}`, which Kubernetes does not know"),
                    format!("write `{fix}` (binary units: Ki, Mi, Gi, Ti)"),
                ));
            }
            _ => {
                return Err(Invalid::new(
                    format!("`{text}` has an unknown unit `{unit}`"),
                    help,
                ));
            }
        };
        if n == 0 {
            return Err(Invalid::new(format!("`{text}` is zero"), help));
        }
        Ok(Quantity {
            text: t.to_string(),
            bytes: n * factor,
        })
    }

    pub fn bytes(&self) -> u128 {
        self.bytes
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A Prometheus-style duration, e.g. `15d`, `12h`, `1w`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duration {
    text: String,
    seconds: u64,
}

impl Duration {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let help = "write a number and a unit: `s`, `m`, `h`, `d`, `w` or `y`, e.g. `15d` or `12h`";
        let t = text.trim();
        let mut seconds = 0u64;
        let mut rest = t;
        if rest.is_empty() {
            return Err(Invalid::new("the duration is empty", help));
        }
        if let Some(fix) = spelled_out_duration(t) {
            return Err(Invalid::new(
                format!(
                    "`{text}` is not a duration: units are one letter, written right after the number"
                ),
                format!("write `{fix}`"),
            ));
        }
        while !rest.is_empty() {
            let split = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let (num, tail) = rest.split_at(split);
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(tail.len());
            let (unit, next) = tail.split_at(unit_len);
            let n: u64 = num
                .parse()
                .map_err(|_| Invalid::new(format!("`{text}` is not a duration"), help))?;
            let factor = match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3_600,
                "d" => 86_400,
                "w" => 604_800,
                "y" => 31_536_000,
                "" => {
                    return Err(Invalid::new(
                        format!("`{text}` has no unit"),
                        format!("add a unit, e.g. `{num}d` for days"),
                    ));
                }
                _ => {
                    return Err(Invalid::new(
                        format!("`{text}` has an unknown unit `{unit}`"),
                        help,
                    ));
                }
            };
            seconds = seconds.saturating_add(n.saturating_mul(factor));
            rest = next;
        }
        if seconds == 0 {
            return Err(Invalid::new(format!("`{text}` is zero"), help));
        }
        Ok(Duration {
            text: t.to_string(),
            seconds,
        })
    }

    pub fn seconds(&self) -> u64 {
        self.seconds
    }

    /// The duration in whole hours, as Loki's retention period wants it (`168h`).
    pub fn as_hours(&self) -> String {
        format!("{}h", self.seconds.div_ceil(3_600))
    }
}

/// `15 days` -> `15d`, `12 hours` -> `12h`: the short form of a duration written out in words.
fn spelled_out_duration(text: &str) -> Option<String> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = text.split_at(split);
    if num.is_empty() {
        return None;
    }
    let unit = unit.trim().to_ascii_lowercase();
    let short = match unit.trim_end_matches('s') {
        "sec" | "second" => "s",
        "min" | "minute" => "m",
        "hour" | "hr" => "h",
        "day" => "d",
        "week" | "wk" => "w",
        "year" | "yr" => "y",
        _ if unit.len() == 1 && text[split..].starts_with(' ') => unit.as_str(),
        _ => return None,
    };
    Some(format!("{num}{short}"))
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A standard 5-field cron schedule (as Kubernetes CronJobs and K3s read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron(String);

impl Cron {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let t = text.trim();
        const MACROS: &[&str] = &[
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
        ];
        if t.starts_with('@') {
            return if MACROS.contains(&t) {
                Ok(Cron(t.to_string()))
            } else {
                Err(Invalid::new(
                    format!("`{t}` is not a cron shortcut"),
                    format!("use one of {}", MACROS.join(", ")),
                ))
            };
        }
        let fields: Vec<&str> = t.split_whitespace().collect();
        let help = "write five fields `minute hour day-of-month month day-of-week`, e.g. `0 2 * * *` for 02:00 every day";
        if fields.len() != 5 {
            return Err(Invalid::new(
                format!("`{t}` has {} fields; a cron schedule has 5", fields.len()),
                help,
            ));
        }
        const MONTHS: &[&str] = &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let specs: [(&str, u32, u32, &[&str], u32); 5] = [
            ("minute", 0, 59, &[], 0),
            ("hour", 0, 23, &[], 0),
            ("day of month", 1, 31, &[], 0),
            ("month", 1, 12, MONTHS, 1),
            ("day of week", 0, 7, DAYS, 0),
        ];
        for (field, (name, lo, hi, names, name_base)) in fields.iter().zip(specs) {
            check_cron_field(field, name, lo, hi, names, name_base)
                .map_err(|m| Invalid::new(m, help))?;
        }
        Ok(Cron(t.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_cron_field(
    field: &str,
    name: &str,
    lo: u32,
    hi: u32,
    names: &[&str],
    base: u32,
) -> Result<(), String> {
    let value = |v: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(i as u32 + base);
        }
        let n: u32 = v
            .parse()
            .map_err(|_| format!("`{v}` is not a valid {name} in `{field}`"))?;
        if n < lo || n > hi {
            return Err(format!("{name} `{n}` is out of range {lo}-{hi}"));
        }
        Ok(n)
    };
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        if let Some(s) = step {
            let s: u32 = s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                format!("step `/{s}` in the {name} field is not a positive number")
            })?;
            let _ = s;
        }
        if range == "*" || range == "?" && (name == "day of month" || name == "day of week") {
            continue;
        }
        match range.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (value(a)?, value(b)?);
                if a > b {
                    return Err(format!(
                        "range `{range}` in the {name} field runs backwards"
                    ));
                }
            }
            None => {
                value(range)?;
            }
        }
    }
    Ok(())
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A K3s release such as `v1.34.2+k3s1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct K3sVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    pub k3s: u32,
}

impl K3sVersion {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let help = "write a K3s release as published on github.com/k3s-io/k3s/releases, e.g. `v1.34.2+k3s1`";
        let t = text.trim();
        let (has_v, rest) = match t.strip_prefix('v') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let (semver, suffix) = match rest.split_once('+') {
            Some((semver, suffix)) => (semver, Some(suffix)),
            None => (rest, None),
        };
        let numbers: Option<Vec<u32>> = semver.split('.').map(|p| p.parse().ok()).collect();
        let numbers = numbers.filter(|n| n.len() == 3);
        let k3s = suffix.map(|s| s.strip_prefix("k3s").and_then(|n| n.parse::<u32>().ok()));
        match (numbers, k3s) {
            (Some(n), Some(Some(k3s))) if has_v => Ok(K3sVersion {
                major: n[0],
                minor: n[1],
                patch: n[2],
                k3s,
            }),
            (Some(_), Some(Some(_))) => Err(Invalid::new(
                format!("`{text}` is not a K3s version: it must start with `v`"),
                format!("write `v{t}`"),
            )),
            (Some(n), None) => Err(Invalid::new(
                format!("`{text}` lacks the `+k3sN` suffix of a K3s release"),
                format!(
                    "write e.g. `v{}.{}.{}+k3s1` (check the release page for the right N)",
                    n[0], n[1], n[2]
                ),
            )),
            (Some(_), Some(None)) => Err(Invalid::new(
                format!("`{text}` has a suffix that is not `+k3sN`"),
                help,
            )),
            (None, _) if ["stable", "latest", "testing"].contains(&t) => Err(Invalid::new(
                format!("`{text}` is a release channel, not a pinned K3s release"),
                "pin the release the channel points to today, e.g. `v1.34.2+k3s1`, so that every node (and every rebuild) runs the same version",
            )),
            (None, _) => Err(Invalid::new(
                format!("`{text}` is not a K3s version: it needs major.minor.patch and `+k3sN`"),
                help,
            )),
        }
    }

    /// The release channel name K3s uses, e.g. `v1.34`.
    pub fn minor_line(&self) -> String {
        format!("v{}.{}", self.major, self.minor)
    }
}

impl fmt::Display for K3sVersion {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "v{}.{}.{}+k3s{}",
            self.major, self.minor, self.patch, self.k3s
        )
    }
}

display_serialize!(Ipv4Net, Ipv4Range, Quantity, Duration, Cron, K3sVersion);

/// Checks an RFC 1123 DNS label (what Kubernetes calls a DNS-1123 label).
pub fn check_dns_label(text: &str, what: &str) -> Result<(), Invalid> {
    let help = format!(
        "a {what} uses lowercase letters, digits and `-`, starts and ends with a letter or digit, at most 63 characters{}",
        suggestion(text)
            .map(|s| format!(", e.g. `{s}`"))
            .unwrap_or_default()
    );
    if text.is_empty() {
        return Err(Invalid::new(format!("the {what} is empty"), help));
    }
    if text.len() > 63 {
        return Err(Invalid::new(
            format!("the {what} `{text}` is longer than 63 characters"),
            help,
        ));
    }
    let ok_chars = text
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ok_ends = !text.starts_with('-') && !text.ends_with('-');
    if !ok_chars || !ok_ends {
        return Err(Invalid::new(
            format!("`{text}` is not a valid {what}"),
            help,
        ));
    }
    Ok(())
}

/// Checks a container image reference as the OCI distribution grammar has it:
/// `[host[:port]/]path[:tag][@algorithm:hex]`, path components lowercase.
pub fn check_image_reference(text: &str) -> Result<(), Invalid> {
    const HELP: &str = "write `[registry/]name[:tag][@sha256:digest]`, e.g. `ghcr.io/you/dev-container:1.0` (lowercase name, no spaces)";
    let bad = |why: &str| {
        Err(Invalid::new(
            format!("`{text}` is not a container image reference: {why}"),
            HELP,
        ))
    };
    if text.is_empty() {
        return Err(Invalid::new("the image reference is empty", HELP));
    }
    if text.len() > 255 + 1 + 128 + 1 + 150 {
        return bad("it is too long");
    }
    let (rest, digest) = match text.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (text, None),
    };
    if let Some(d) = digest {
        let Some((algo, hex)) = d.split_once(':') else {
            return bad("the digest after `@` needs `algorithm:hex`");
        };
        let algo_ok = !algo.is_empty()
            && algo.split(['+', '.', '_', '-']).all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            });
        let hex_ok = hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit());
        if !algo_ok || !hex_ok {
            return bad(
                "the digest after `@` is not `algorithm:hex` (e.g. `sha256:` and 64 hex digits)",
            );
        }
    }
    // A `:` after the last `/` starts the tag; one before it belongs to the registry's port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].find(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return bad(
                "the tag after `:` uses letters, digits, `_`, `.` and `-` (at most 128, not starting with `.` or `-`)",
            );
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // The first part is a registry host when it has a `.` or a `:`, or is `localhost`.
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        let (h, port) = match host.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        };
        let host_ok = h.split('.').all(|l| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
        if !host_ok || port.is_some_and(|p| p.parse::<u16>().is_err()) {
            return bad(
                "the registry before the first `/` is not a host name with an optional port",
            );
        }
    }
    for p in &parts {
        let chars_ok = p
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
        let ends_ok = p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
        // Separators between alphanumerics: `.`, `_`, `__` or any run of `-`.
        let seps_ok = !p.contains("..")
            && !p.contains("___")
            && !p.contains("._")
            && !p.contains("_.")
            && !p.contains("-.")
            && !p.contains(".-")
            && !p.contains("-_")
            && !p.contains("_-");
        if p.is_empty() || !chars_ok || !ends_ok || !seps_ok {
            return bad(&format!(
                "the name part `{p}` uses lowercase letters and digits separated by `.`, `_` or `-`"
            ));
        }
    }
    Ok(())
}

fn suggestion(text: &str) -> Option<String> {
    let s: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let s = s.trim_matches('-').to_string();
    (!s.is_empty() && s != text && s.len() <= 63).then_some(s)
}

/// Checks a DNS domain name (labels separated by dots).
pub fn check_domain(text: &str) -> Result<(), Invalid> {
    let help =
        "write a domain you control, e.g. `home.example.com` (lowercase labels separated by dots)";
    if text.len() > 253 || !text.contains('.') {
        return Err(Invalid::new(format!("`{text}` is not a domain name"), help));
    }
    for label in text.split('.') {
        check_dns_label(label, "domain label")
            .map_err(|_| Invalid::new(format!("`{text}` is not a valid domain name"), help))?;
    }
    Ok(())
}

/// Whether an address is private (RFC 1918), carrier-grade NAT or loopback: not reachable
/// from the internet.
pub fn is_private(addr: Ipv4Addr) -> bool {
    addr.is_private() || addr.is_loopback() || addr.is_link_local() || {
        let o = addr.octets();
        o[0] == 100 && (64..128).contains(&o[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        for ok in [
            "ubuntu",
            "docker.io/library/ubuntu:24.04",
            "registry.home.example.com/homelab/dev-container:0123456789ab",
            "localhost:5000/dev",
            "ghcr.io/you/my_dev__box:v1.0-rc.1",
            "ghcr.io/you/dev@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "10.0.0.5:5000/a/b:c",
        ] {
            assert_eq!(check_image_reference(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("Ghcr.io/You/Dev:1", "name part `You`"),
            ("ghcr.io/you/dev:", "tag"),
            ("ghcr.io/you/dev:-x", "tag"),
            ("ghcr.io/you/dev box:1", "name part"),
            ("ghcr.io//dev", "name part ``"),
            ("ghcr.io:http/dev", "registry"),
            ("ghcr.io/you/dev@sha256:xyz", "digest"),
            ("ghcr.io/you/dev@1234", "digest"),
            ("ghcr.io/you/-dev", "name part `-dev`"),
            ("ghcr.io/you/dev..x", "name part"),
        ] {
            let e = check_image_reference(bad).unwrap_err();
            assert!(e.message.contains(why), "{bad}: {}", e.message);
            assert!(
                e.help.contains("ghcr.io/you/dev-container:1.0"),
                "{}",
                e.help
            );
        }
    }

    #[test]
    fn networks() {
        let n = Ipv4Net::parse("192.168.2.0/24").unwrap();
        assert!(n.contains("192.168.2.77".parse().unwrap()));
        assert!(!n.contains("192.168.3.1".parse().unwrap()));
        assert_eq!(n.broadcast().to_string(), "192.168.2.255");
        assert!(
            Ipv4Net::parse("192.168.2.1/24")
                .unwrap_err()
                .help
                .contains("192.168.2.0/24")
        );
        assert!(Ipv4Net::parse("192.168.2.0/33").is_err());
    }

    #[test]
    fn ranges() {
        let r = Ipv4Range::parse("192.168.2.100-192.168.2.120").unwrap();
        assert_eq!(r.len(), 21);
        assert!(
            Ipv4Range::parse("192.168.2.96/28")
                .unwrap()
                .contains("192.168.2.100".parse().unwrap())
        );
        assert!(Ipv4Range::parse("10.0.0.1").is_err());
    }

    #[test]
    fn quantities() {
        assert_eq!(Quantity::parse("20Gi").unwrap().bytes(), 20 << 30);
        assert_eq!(
            Quantity::parse("20GB").unwrap_err().help,
            "write `20Gi` (binary units: Ki, Mi, Gi, Ti)"
        );
        assert!(Quantity::parse("lots").is_err());
        assert!(Quantity::parse("0Gi").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(Duration::parse("15d").unwrap().seconds(), 15 * 86_400);
        assert_eq!(Duration::parse("1d12h").unwrap().seconds(), 36 * 3_600);
        assert_eq!(Duration::parse("7d").unwrap().as_hours(), "168h");
        assert_eq!(
            Duration::parse("7").unwrap_err().help,
            "add a unit, e.g. `7d` for days"
        );
        assert!(Duration::parse("7x").is_err());
        assert_eq!(Duration::parse("15 days").unwrap_err().help, "write `15d`");
        assert_eq!(Duration::parse("2 weeks").unwrap_err().help, "write `2w`");
        assert_eq!(Duration::parse("12 h").unwrap_err().help, "write `12h`");
    }

    #[test]
    fn cron_schedules() {
        for ok in [
            "0 */12 * * *",
            "0 2 * * *",
            "*/5 1-3 1,15 jan-jun mon-fri",
            "@daily",
            "0 0 * * 7",
        ] {
            Cron::parse(ok).unwrap();
        }
        assert!(
            Cron::parse("0 25 * * *")
                .unwrap_err()
                .message
                .contains("hour `25`")
        );
        assert!(
            Cron::parse("0 2 * *")
                .unwrap_err()
                .message
                .contains("4 fields")
        );
        assert!(Cron::parse("@sometimes").is_err());
        assert!(Cron::parse("5-1 * * * *").is_err());
        assert!(Cron::parse("*/0 * * * *").is_err());
    }

    #[test]
    fn k3s_versions() {
        let v = K3sVersion::parse("v1.34.2+k3s1").unwrap();
        assert_eq!(v.to_string(), "v1.34.2+k3s1");
        assert_eq!(v.minor_line(), "v1.34");
        assert_eq!(
            K3sVersion::parse("1.34.2+k3s1").unwrap_err().help,
            "write `v1.34.2+k3s1`"
        );
        assert_eq!(
            K3sVersion::parse("v1.34.2").unwrap_err().help,
            "write e.g. `v1.34.2+k3s1` (check the release page for the right N)"
        );
        assert!(
            K3sVersion::parse("v1.34")
                .unwrap_err()
                .message
                .contains("major.minor.patch")
        );
        assert!(
            K3sVersion::parse("stable")
                .unwrap_err()
                .message
                .contains("release channel")
        );
        assert!(K3sVersion::parse("v1.34.2+rke2r1").is_err());
        assert!(K3sVersion::parse("v1.34+k3s1").is_err());
        assert!(v < K3sVersion::parse("v1.34.3+k3s1").unwrap());
    }

    #[test]
    fn names() {
        check_dns_label("k3s-worker-01", "node name").unwrap();
        let e = check_dns_label("K3s_Worker", "node name").unwrap_err();
        assert!(e.help.contains("`k3s-worker`"), "{}", e.help);
        assert!(check_dns_label("-a", "x").is_err());
        check_domain("home.jetzinger.com").unwrap();
        assert!(check_domain("localhost").is_err());
        assert!(check_domain("Home.example.com").is_err());
    }
}
