//! The lab's root CA as users see it (`tls.mode: internal-ca`): the certificate from the
//! secrets file, re-encoded so only the public part can ever leave, with what it says about
//! itself. Reads the store it is given; never touches a key or prints anything.

use homelab_kube::x509::{CertificateInfo, certificate_info, pem_to_der};
use homelab_plan::trust::CA_CERT;
use homelab_secrets::SecretsStore;
use homelab_spec::Lab;
use homelab_spec::lab::Tls;
use secrecy::ExposeSecret;

/// Why the root certificate cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The lab takes its certificates from Let's Encrypt.
    #[error(
        "lab `{lab}` has no certificate authority of its own: `tls.mode` is `acme`, and Let's Encrypt's roots are trusted by devices already"
    )]
    NotInternalCa { lab: String },
    /// The secrets file has no root yet.
    #[error(
        "the secrets file has no `{CA_CERT}`: run `homelab secrets init` to generate the lab's root CA"
    )]
    Missing,
    /// The entry is not a certificate.
    #[error("`{CA_CERT}` in the secrets file is not a certificate: {reason}")]
    Unreadable { reason: String },
}

/// The root certificate: PEM of exactly one CERTIFICATE block, and its facts.
#[derive(Debug, Clone)]
pub struct RootCa {
    pub pem: String,
    pub info: CertificateInfo,
}

impl RootCa {
    /// Whole days from now until it expires (negative once it has).
    pub fn days_left(&self) -> i64 {
        (self.info.not_after.as_second() - jiff::Timestamp::now().as_second()).div_euclid(86_400)
    }
}

/// The lab's root certificate from `store`.
pub fn root_ca(lab: &Lab, store: &SecretsStore) -> Result<RootCa, TlsError> {
    if !matches!(lab.tls, Tls::InternalCa) {
        return Err(TlsError::NotInternalCa {
            lab: lab.name.clone(),
        });
    }
    let value = match store.get(CA_CERT) {
        Ok(v) => v,
        Err(_) => return Err(TlsError::Missing),
    };
    public_certificate(value.expose_secret())
}

/// The first certificate of `text`, re-encoded from its DER: whatever else the text holds (a
/// key pasted by mistake) stays behind.
pub fn public_certificate(text: &str) -> Result<RootCa, TlsError> {
    let unreadable = |reason: String| TlsError::Unreadable { reason };
    let der = pem_to_der(text).map_err(unreadable)?;
    let info = certificate_info(text).map_err(unreadable)?;
    if !info.is_ca {
        return Err(unreadable(
            "it is not a CA certificate (no basicConstraints CA:TRUE); remove it and the key, then run `homelab secrets init` for a new root".into(),
        ));
    }
    Ok(RootCa {
        pem: pem_of(&der),
        info,
    })
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn root() -> (String, String) {
        let key = homelab_secrets::ca::generate_key("k").unwrap();
        let cert = homelab_secrets::ca::self_signed_root(
            "c",
            &key,
            "lab homelab root CA",
            30,
            jiff::civil::date(2026, 12, 7),
        )
        .unwrap();
        (
            key.expose_secret().to_string(),
            cert.expose_secret().to_string(),
        )
    }

    #[test]
    fn only_the_certificate_leaves_even_with_a_key_beside_it() {
        let (key, cert) = root();
        let mixed = format!("{key}{cert}");
        let ca = public_certificate(&mixed).unwrap();
        assert_eq!(ca.pem, cert);
        assert!(!ca.pem.contains("PRIVATE"));
        assert_eq!(ca.info.common_name.as_deref(), Some("lab homelab root CA"));
    }

    #[test]
    fn a_key_is_not_a_certificate_and_the_error_does_not_show_it() {
        let (key, _) = root();
        let e = public_certificate(&key).unwrap_err().to_string();
        assert!(e.contains("not a certificate"), "{e}");
        assert!(!e.contains("PRIVATE"), "{e}");
    }
}
