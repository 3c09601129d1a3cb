//! One JSON-over-HTTP(S) exchange with a DNS provider's API, retried when the API says it is
//! rate limited (429 with `Retry-After`). It knows nothing of any provider's paths or shapes,
//! and credentials it carries are marked sensitive so they never reach a log or an error.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_RESPONSE_BYTES: usize = 8 << 20;
/// How many times a rate-limited call is sent again before giving up.
pub const RATE_LIMIT_RETRIES: u32 = 4;
/// The longest `Retry-After` honoured; a longer one ends the run with the limit reported.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The wait when a 429 carries no usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn hyper(self) -> hyper::Method {
        match self {
            Method::Get => hyper::Method::GET,
            Method::Post => hyper::Method::POST,
            Method::Put => hyper::Method::PUT,
            Method::Patch => hyper::Method::PATCH,
            Method::Delete => hyper::Method::DELETE,
        }
    }
}

/// An answer: its status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as text, cut short, for an error message.
    pub fn text(&self) -> String {
        let t = String::from_utf8_lossy(&self.body);
        let t = t.trim();
        if t.chars().count() > 300 {
            format!("{}…", t.chars().take(300).collect::<String>())
        } else {
            t.to_string()
        }
    }

    /// What an API that answers `{"errors": [...]}` said, each entry as `one` words it; the
    /// status and body when it listed none.
    pub fn errors(
        &self,
        body: Option<&serde_json::Value>,
        one: impl Fn(&serde_json::Value) -> String,
    ) -> String {
        let list: Vec<String> = body
            .and_then(|v| v.get("errors"))
            .and_then(|e| e.as_array())
            .map(|e| e.iter().map(&one).collect())
            .unwrap_or_default();
        if list.is_empty() {
            format!("HTTP {}: {}", self.status, self.text())
        } else {
            list.join("; ")
        }
    }
}

/// Why an exchange produced no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection or no answer in time.
    Unreachable(String),
    /// Still 429 after every retry, or a wait longer than the run should take.
    RateLimited {
        attempts: u32,
        retry_after: Option<u64>,
    },
}

/// A base URL and the TLS settings every call to it uses.
pub struct Http {
    base: String,
    tls: rustls::ClientConfig,
}

impl Http {
    pub fn new(base: &str) -> Result<Http, String> {
        Ok(Http {
            base: base.trim_end_matches('/').to_string(),
            tls: tls_config()?,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method base+path` with the headers and JSON body, again after `Retry-After` while
    /// the API answers 429.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, Failure> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (answer, retry_after) = self.once(method, path, headers, body).await?;
            if answer.status != 429 {
                return Ok(answer);
            }
            let wait = retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
            if attempt > RATE_LIMIT_RETRIES || wait > MAX_RETRY_AFTER {
                return Err(Failure::RateLimited {
                    attempts: attempt,
                    retry_after: retry_after.map(|d| d.as_secs()),
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn once(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<(Answer, Option<Duration>), Failure> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.tls.clone())
            .https_or_http()
            .enable_http1()
            .build();
        let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        let mut builder = hyper::Request::builder()
            .method(method.hyper())
            .uri(format!("{}{path}", self.base))
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::USER_AGENT, "homelab");
        for (k, v) in headers {
            let mut value = hyper::header::HeaderValue::from_str(v).map_err(|_| {
                Failure::Unreachable(format!(
                    "the value of header {k} holds characters a header cannot carry"
                ))
            })?;
            // Every header given here is a credential or a session.
            value.set_sensitive(true);
            builder = builder.header(*k, value);
        }
        let payload = match body {
            Some(b) => {
                builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(payload))
            .map_err(|e| Failure::Unreachable(format!("invalid request ({e})")))?;
        let exchange = async {
            let response = client.request(request).await.map_err(|e| {
                let mut reason = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    reason.push_str(": ");
                    reason.push_str(&s.to_string());
                    source = s.source();
                }
                reason
            })?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let collected = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the answer failed ({e})"))?;
            Ok::<_, String>((
                Answer {
                    status,
                    body: collected.to_bytes().to_vec(),
                },
                retry_after,
            ))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(r) => r.map_err(Failure::Unreachable),
            Err(_) => Err(Failure::Unreachable(format!(
                "no answer within {} seconds",
                REQUEST_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters stay).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| format!("cannot load the system's trusted certificates ({e})"))?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn a_hosts_line_is_one_path_segment() {
        assert_eq!(
            segment("192.168.2.100 grafana.home.arpa"),
            "192.168.2.100%20grafana.home.arpa"
        );
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
    }
}
