//! Checks one HTTPS URL the way a browser would: TCP connect, TLS handshake (rustls, so 1.2 or
//! newer) verifying the certificate for the expected host, then one `GET` and its status line.
//! Must not follow redirects or send anything but that one request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How URL checks connect.
#[derive(Debug, Clone)]
pub struct TlsCheckOptions {
    /// PEM certificates to trust instead of the system's roots (e.g. a lab's private CA).
    pub ca_pem: Option<Vec<u8>>,
    /// Host name to address overrides, like `curl --resolve`, for names the local DNS does
    /// not know yet.
    pub resolve: BTreeMap<String, SocketAddr>,
    /// Limit for connect + handshake + response.
    pub timeout: Duration,
}

impl Default for TlsCheckOptions {
    fn default() -> Self {
        TlsCheckOptions {
            ca_pem: None,
            resolve: BTreeMap::new(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The outcome of one URL check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlProbe {
    pub tls_version: Option<String>,
    pub http_status: Option<u16>,
    pub error: Option<String>,
}

struct Target {
    host: String,
    port: u16,
    path: String,
}

fn parse_https(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url} is not an https:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("{url} has an invalid port"))?,
        ),
        None => (authority, 443),
    };
    if host.is_empty() {
        return Err(format!("{url} has no host"));
    }
    Ok(Target {
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

pub(crate) fn client_config(options: &TlsCheckOptions) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match &options.ca_pem {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("invalid CA certificate PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("unusable CA certificate: {e}"))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| format!("cannot load the system's trusted certificates: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// Checks `url`, verifying its certificate for `expected_host`.
pub(crate) async fn check_url(
    url: &str,
    expected_host: &str,
    config: Arc<ClientConfig>,
    options: &TlsCheckOptions,
) -> UrlProbe {
    match tokio::time::timeout(options.timeout, check(url, expected_host, config, options)).await {
        Ok(probe) => probe,
        Err(_) => UrlProbe {
            tls_version: None,
            http_status: None,
            error: Some(format!("no answer within {:?}", options.timeout)),
        },
    }
}

async fn check(
    url: &str,
    expected_host: &str,
    config: Arc<ClientConfig>,
    options: &TlsCheckOptions,
) -> UrlProbe {
    let fail = |tls: Option<String>, e: String| UrlProbe {
        tls_version: tls,
        http_status: None,
        error: Some(e),
    };
    let target = match parse_https(url) {
        Ok(t) => t,
        Err(e) => return fail(None, e),
    };
    let tcp = match options.resolve.get(&target.host) {
        Some(addr) => TcpStream::connect(addr).await,
        None => TcpStream::connect((target.host.as_str(), target.port)).await,
    };
    let tcp = match tcp {
        Ok(t) => t,
        Err(e) => {
            return fail(
                None,
                format!("cannot connect to {}:{}: {e}", target.host, target.port),
            );
        }
    };
    let server_name = match ServerName::try_from(expected_host.to_string()) {
        Ok(n) => n,
        Err(e) => {
            return fail(
                None,
                format!("{expected_host:?} is not a valid host name: {e}"),
            );
        }
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut tls = match connector.connect(server_name, tcp).await {
        Ok(t) => t,
        Err(e) => return fail(None, format!("TLS handshake failed: {e}")),
    };
    let version = tls
        .get_ref()
        .1
        .protocol_version()
        .and_then(|v| v.as_str())
        .map(|s| s.replace('_', "."))
        .map(|s| s.replace("TLSv1.", "TLS 1."));
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: homelab-status\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, expected_host
    );
    if let Err(e) = tls.write_all(request.as_bytes()).await {
        return fail(version, format!("sending the request failed: {e}"));
    }
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        match tls.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return fail(version, format!("reading the response failed: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let status = line
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(code) => UrlProbe {
            tls_version: version,
            http_status: Some(code),
            error: None,
        },
        None => fail(
            version,
            "the server did not answer with an HTTP status line".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_into_host_port_and_path() {
        let t = parse_https("https://grafana.lab.example/login?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("grafana.lab.example", 443, "/login?x=1")
        );
        let t = parse_https("https://n8n.lab.example:8443").unwrap();
        assert_eq!((t.port, t.path.as_str()), (8443, "/"));
        assert!(parse_https("http://plain.example").is_err());
        assert!(parse_https("https://:443/").is_err());
    }
}
