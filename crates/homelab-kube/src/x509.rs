//! What an X.509 certificate in PEM says about itself (subject CN, validity, SHA-256
//! fingerprint, whether it is a CA), read with a short DER walk: for the lab's root CA in
//! `status` and `homelab tls ca`. Parsing only; it verifies no signature.

use base64::Engine as _;
use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The subject's common name, when it has one.
    pub common_name: Option<String>,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// SHA-256 of the DER, as `AB:CD:...` (what browsers and `openssl x509 -fingerprint` show).
    pub sha256: String,
    /// Whether the basic constraints say CA.
    pub is_ca: bool,
}

/// The first `CERTIFICATE` block of a PEM text as DER.
pub fn pem_to_der(pem: &str) -> std::result::Result<Vec<u8>, String> {
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let start = pem
        .find(begin)
        .ok_or("no `-----BEGIN CERTIFICATE-----` line")?
        + begin.len();
    let stop = pem[start..]
        .find(end)
        .ok_or("no `-----END CERTIFICATE-----` line")?
        + start;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("the certificate is not base64: {e}"))
}

/// Reads subject, validity and fingerprint from a PEM certificate.
pub fn certificate_info(pem: &str) -> std::result::Result<CertificateInfo, String> {
    let der = pem_to_der(pem)?;
    let bad = |what: &str| format!("not an X.509 certificate ({what})");
    let (cert, _) = tlv(&der, 0x30).ok_or_else(|| bad("no outer SEQUENCE"))?;
    let (tbs, _) = tlv(cert, 0x30).ok_or_else(|| bad("no tbsCertificate"))?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest, 0xa0).ok_or_else(|| bad("version"))?.1;
    }
    let (_, rest) = tlv(rest, 0x02).ok_or_else(|| bad("serial number"))?;
    let (_, rest) = tlv(rest, 0x30).ok_or_else(|| bad("signature algorithm"))?;
    let (_, rest) = tlv(rest, 0x30).ok_or_else(|| bad("issuer"))?;
    let (validity, rest) = tlv(rest, 0x30).ok_or_else(|| bad("validity"))?;
    let (subject, rest) = tlv(rest, 0x30).ok_or_else(|| bad("subject"))?;
    let (not_before, after) = time(validity).ok_or_else(|| bad("notBefore"))?;
    let (not_after, _) = time(after).ok_or_else(|| bad("notAfter"))?;
    let (_, rest) = tlv(rest, 0x30).ok_or_else(|| bad("public key"))?;
    let sha256 = Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok(CertificateInfo {
        common_name: common_name(subject),
        not_before,
        not_after,
        sha256,
        is_ca: is_ca(rest),
    })
}

/// One DER element with tag `tag` at the start of `data`: its contents and what follows.
fn tlv(data: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = data.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Any DER element at the start of `data`: its tag, contents and what follows.
fn any_tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *data.first()?;
    tlv(data, tag).map(|(c, r)| (tag, c, r))
}

/// A UTCTime or GeneralizedTime (both `Z`, as RFC 5280 requires).
fn time(data: &[u8]) -> Option<(Timestamp, &[u8])> {
    let (tag, content, rest) = any_tlv(data)?;
    let text = std::str::from_utf8(content).ok()?;
    let digits = text.strip_suffix('Z')?;
    let (year, digits) = match tag {
        0x17 if digits.len() == 12 => {
            let yy: i16 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        0x18 if digits.len() == 14 => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let n = |i: usize| digits.get(i..i + 2)?.parse::<i8>().ok();
    let dt =
        k8s_openapi::jiff::civil::DateTime::new(year, n(0)?, n(2)?, n(4)?, n(6)?, n(8)?, 0).ok()?;
    let ts = dt
        .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp();
    Some((ts, rest))
}

/// The CN of a Name (SEQUENCE OF SET OF AttributeTypeAndValue).
fn common_name(mut name: &[u8]) -> Option<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    while let Some((set, rest)) = tlv(name, 0x31) {
        name = rest;
        let Some((atv, _)) = tlv(set, 0x30) else {
            continue;
        };
        if let Some((oid, value)) = tlv(atv, 0x06)
            && oid == CN
            && let Some((_, text, _)) = any_tlv(value)
        {
            return String::from_utf8(text.to_vec()).ok();
        }
    }
    None
}

/// Whether the extensions after the public key carry basicConstraints with cA true.
fn is_ca(mut rest: &[u8]) -> bool {
    const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
    while let Some((tag, content, after)) = any_tlv(rest) {
        rest = after;
        if tag != 0xa3 {
            continue;
        }
        let Some((mut exts, _)) = tlv(content, 0x30) else {
            return false;
        };
        while let Some((ext, after)) = tlv(exts, 0x30) {
            exts = after;
            let Some((oid, mut value)) = tlv(ext, 0x06) else {
                continue;
            };
            if oid != BASIC_CONSTRAINTS {
                continue;
            }
            if value.first() == Some(&0x01) {
                value = tlv(value, 0x01).map_or(&[][..], |(_, r)| r);
            }
            return tlv(value, 0x04)
                .and_then(|(octets, _)| tlv(octets, 0x30))
                .and_then(|(bc, _)| tlv(bc, 0x01))
                .is_some_and(|(flag, _)| flag.first().is_some_and(|b| *b != 0));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_certificates_say_what_is_wrong() {
        assert!(
            certificate_info("hello")
                .unwrap_err()
                .contains("BEGIN CERTIFICATE")
        );
        let e = certificate_info("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .unwrap_err();
        assert!(e.contains("not an X.509 certificate"), "{e}");
        assert!(
            certificate_info("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----")
                .unwrap_err()
                .contains("base64")
        );
    }

    #[test]
    fn der_lengths_that_run_past_the_data_are_refused() {
        assert!(tlv(&[0x30, 0x05, 0x01], 0x30).is_none());
        assert!(tlv(&[0x30, 0x82, 0xff], 0x30).is_none());
        assert!(tlv(&[0x30, 0x80], 0x30).is_none());
        assert_eq!(
            tlv(&[0x30, 0x01, 0x07, 0x09], 0x30),
            Some((&[0x07][..], &[0x09][..]))
        );
    }
}
