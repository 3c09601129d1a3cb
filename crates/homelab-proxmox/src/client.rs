//! The Proxmox VE API over HTTPS: login (API token or ticket + CSRF token), calls, and waiting
//! for tasks. Typed errors name the call that failed; secrets never reach an error or a log.
//! What to call and in which order belongs to the caller, not here.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::wire::{self, TaskState, Upid};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// How many log lines a failed task's error carries.
const LOG_TAIL: usize = 8;

/// How homelab proves who it is.
#[derive(Clone)]
pub enum Credentials {
    /// `USER@REALM!NAME` and the token's secret.
    Token { id: String, secret: String },
    /// A user's password, traded for a ticket at `/access/ticket`.
    Password { user: String, password: String },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Token { id, .. } => write!(f, "Token({id}, secret hidden)"),
            Credentials::Password { user, .. } => write!(f, "Password({user}, hidden)"),
        }
    }
}

/// How the API's certificate is checked.
#[derive(Debug, Clone)]
pub enum Tls {
    /// Against the system's trusted certificates.
    System,
    /// Against these PEM certificates only.
    Ca(Vec<u8>),
    /// Not at all (`verifyTls: false`, for a fresh host's self-signed certificate).
    Unverified,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxmoxError {
    #[error("{op}: cannot reach the Proxmox API at {endpoint}: {reason}")]
    Unreachable {
        op: String,
        endpoint: String,
        reason: String,
    },
    #[error("{op}: Proxmox answered {status}: {message}")]
    Api {
        op: String,
        status: u16,
        message: String,
    },
    #[error("logging in to {endpoint} as {who} failed: {message}")]
    Login {
        endpoint: String,
        who: String,
        message: String,
    },
    #[error("{op}: task {upid} failed: {exit}{}", tail(.log))]
    TaskFailed {
        op: String,
        upid: String,
        exit: String,
        log: Vec<String>,
    },
    #[error("{op}: task {upid} still running after {}s", .waited.as_secs())]
    TaskTimeout {
        op: String,
        upid: String,
        waited: Duration,
    },
    #[error("{op}: unexpected answer from Proxmox: {reason}")]
    BadAnswer { op: String, reason: String },
    #[error("the TLS settings for {endpoint} are unusable: {reason}")]
    Tls { endpoint: String, reason: String },
}

fn tail(log: &[String]) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!("\n  task log:\n    {}", log.join("\n    "))
    }
}

impl ProxmoxError {
    /// Whether waiting and trying again may help (a lock held past Proxmox's own wait).
    pub fn is_lock_timeout(&self) -> bool {
        match self {
            ProxmoxError::Api { message, .. } => wire::is_lock_timeout(message),
            ProxmoxError::TaskFailed { exit, log, .. } => {
                wire::is_lock_timeout(exit) || log.iter().any(|l| wire::is_lock_timeout(l))
            }
            _ => false,
        }
    }

    /// Whether a create or clone lost its VMID to another caller.
    pub fn is_vmid_taken(&self) -> bool {
        match self {
            ProxmoxError::Api { message, .. } => wire::is_vmid_taken(message),
            ProxmoxError::TaskFailed { exit, .. } => wire::is_vmid_taken(exit),
            _ => false,
        }
    }
}

struct Ticket {
    cookie: String,
    csrf: String,
}

/// A logged-in (or, with a token, ready) client for one Proxmox API endpoint.
pub struct Client {
    endpoint: String,
    credentials: Credentials,
    tls: rustls::ClientConfig,
    ticket: Mutex<Option<Arc<Ticket>>>,
    /// How often a task's status is read while it runs.
    pub poll_every: Duration,
}

enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Client {
    /// `endpoint` is `scheme://host[:port]`; calls go to `ENDPOINT/api2/json/PATH`.
    pub fn new(endpoint: &str, credentials: Credentials, tls: Tls) -> Result<Client, ProxmoxError> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let tls = tls_config(&tls).map_err(|reason| ProxmoxError::Tls {
            endpoint: endpoint.clone(),
            reason,
        })?;
        Ok(Client {
            endpoint,
            credentials,
            tls,
            ticket: Mutex::new(None),
            poll_every: Duration::from_secs(1),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub async fn get(&self, op: &str, path: &str) -> Result<serde_json::Value, ProxmoxError> {
        self.call(op, Method::Get, path, &[]).await
    }

    pub async fn post(
        &self,
        op: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<serde_json::Value, ProxmoxError> {
        self.call(op, Method::Post, path, form).await
    }

    pub async fn put(
        &self,
        op: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<serde_json::Value, ProxmoxError> {
        self.call(op, Method::Put, path, form).await
    }

    pub async fn delete(&self, op: &str, path: &str) -> Result<serde_json::Value, ProxmoxError> {
        self.call(op, Method::Delete, path, &[]).await
    }

    /// A call that starts a task: its UPID, waited for until it stops with `OK`.
    pub async fn run_task(
        &self,
        op: &str,
        method_post: bool,
        path: &str,
        form: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<(), ProxmoxError> {
        let answer = if method_post {
            self.post(op, path, form).await?
        } else {
            self.put(op, path, form).await?
        };
        let Some(text) = answer.as_str() else {
            return Err(ProxmoxError::BadAnswer {
                op: op.into(),
                reason: format!("expected a task id, got {answer}"),
            });
        };
        let upid = Upid::parse(text).map_err(|e| ProxmoxError::BadAnswer {
            op: op.into(),
            reason: e.to_string(),
        })?;
        self.wait_task(op, &upid, timeout).await
    }

    /// Polls a task until it stops; an exit status other than `OK` is an error with the log's
    /// last lines.
    pub async fn wait_task(
        &self,
        op: &str,
        upid: &Upid,
        timeout: Duration,
    ) -> Result<(), ProxmoxError> {
        let start = std::time::Instant::now();
        loop {
            let status = self.get(op, &upid.status_path()).await?;
            match wire::task_state(&status) {
                Some(TaskState::Succeeded) => return Ok(()),
                Some(TaskState::Failed(exit)) => {
                    let log = self
                        .get(op, &upid.log_path())
                        .await
                        .map(|l| wire::log_tail(&l, LOG_TAIL))
                        .unwrap_or_default();
                    return Err(ProxmoxError::TaskFailed {
                        op: op.into(),
                        upid: upid.text.clone(),
                        exit,
                        log,
                    });
                }
                Some(TaskState::Running) => {}
                None => {
                    return Err(ProxmoxError::BadAnswer {
                        op: op.into(),
                        reason: format!("task status without `status`: {status}"),
                    });
                }
            }
            if start.elapsed() >= timeout {
                return Err(ProxmoxError::TaskTimeout {
                    op: op.into(),
                    upid: upid.text.clone(),
                    waited: start.elapsed(),
                });
            }
            tokio::time::sleep(self.poll_every).await;
        }
    }

    async fn call(
        &self,
        op: &str,
        method: Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<serde_json::Value, ProxmoxError> {
        let mut retried_login = false;
        loop {
            let auth = self.auth(op).await?;
            let (status, body) = self.send(op, &method, path, form, &auth).await?;
            if status == 401
                && matches!(self.credentials, Credentials::Password { .. })
                && !retried_login
            {
                // An expired ticket: log in once more, then give up.
                *self.ticket.lock().expect("ticket lock") = None;
                retried_login = true;
                continue;
            }
            return self.answer(op, status, &body);
        }
    }

    fn answer(
        &self,
        op: &str,
        status: u16,
        body: &[u8],
    ) -> Result<serde_json::Value, ProxmoxError> {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        if !(200..300).contains(&status) {
            return Err(ProxmoxError::Api {
                op: op.into(),
                status,
                message: api_message(parsed.as_ref(), body),
            });
        }
        let Some(mut v) = parsed else {
            return Err(ProxmoxError::BadAnswer {
                op: op.into(),
                reason: "the answer is not JSON".into(),
            });
        };
        Ok(v.get_mut("data")
            .map(serde_json::Value::take)
            .unwrap_or_default())
    }

    async fn auth(&self, op: &str) -> Result<Auth, ProxmoxError> {
        match &self.credentials {
            Credentials::Token { id, secret } => Ok(Auth::Header(wire::token_header(id, secret))),
            Credentials::Password { user, password } => {
                if let Some(t) = self.ticket.lock().expect("ticket lock").clone() {
                    return Ok(Auth::Ticket(t));
                }
                let form = [("username", user.as_str()), ("password", password.as_str())];
                let (status, body) = self
                    .send(op, &Method::Post, "/access/ticket", &form, &Auth::None)
                    .await?;
                let data = self
                    .answer(op, status, &body)
                    .map_err(|e| ProxmoxError::Login {
                        endpoint: self.endpoint.clone(),
                        who: user.clone(),
                        message: match e {
                            ProxmoxError::Api {
                                status, message, ..
                            } => format!("{status}: {message}"),
                            other => other.to_string(),
                        },
                    })?;
                let field = |k: &str| data.get(k).and_then(|v| v.as_str()).map(str::to_string);
                let (Some(ticket), Some(csrf)) = (field("ticket"), field("CSRFPreventionToken"))
                else {
                    return Err(ProxmoxError::Login {
                        endpoint: self.endpoint.clone(),
                        who: user.clone(),
                        message: "the answer has no ticket".into(),
                    });
                };
                let t = Arc::new(Ticket {
                    cookie: wire::ticket_cookie(&ticket),
                    csrf,
                });
                *self.ticket.lock().expect("ticket lock") = Some(t.clone());
                Ok(Auth::Ticket(t))
            }
        }
    }

    async fn send(
        &self,
        op: &str,
        method: &Method,
        path: &str,
        form: &[(&str, &str)],
        auth: &Auth,
    ) -> Result<(u16, Vec<u8>), ProxmoxError> {
        let unreachable = |reason: String| ProxmoxError::Unreachable {
            op: op.into(),
            endpoint: self.endpoint.clone(),
            reason,
        };
        let body = wire::form_body(form);
        let url = match method {
            Method::Get | Method::Delete if !body.is_empty() => {
                format!("{}/api2/json{path}?{body}", self.endpoint)
            }
            _ => format!("{}/api2/json{path}", self.endpoint),
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.tls.clone())
            .https_or_http()
            .enable_http1()
            .build();
        let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        let (m, payload) = match method {
            Method::Get => (hyper::Method::GET, Bytes::new()),
            Method::Delete => (hyper::Method::DELETE, Bytes::new()),
            Method::Post => (hyper::Method::POST, Bytes::from(body)),
            Method::Put => (hyper::Method::PUT, Bytes::from(body)),
        };
        let writes = !matches!(method, Method::Get);
        let mut builder = hyper::Request::builder().method(m).uri(url);
        if !payload.is_empty() {
            builder = builder.header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        }
        let sensitive = |v: &str| {
            hyper::header::HeaderValue::from_str(v).map(|mut h| {
                h.set_sensitive(true);
                h
            })
        };
        match auth {
            Auth::None => {}
            Auth::Header(h) => {
                let v = sensitive(h).map_err(|_| {
                    unreachable("the token holds characters a header cannot carry".into())
                })?;
                builder = builder.header(hyper::header::AUTHORIZATION, v);
            }
            Auth::Ticket(t) => {
                let v = sensitive(&t.cookie).map_err(|_| {
                    unreachable("the ticket holds characters a header cannot carry".into())
                })?;
                builder = builder.header(hyper::header::COOKIE, v);
                if writes {
                    let v = sensitive(&t.csrf).map_err(|_| {
                        unreachable("the CSRF token holds characters a header cannot carry".into())
                    })?;
                    builder = builder.header("CSRFPreventionToken", v);
                }
            }
        }
        let request = builder
            .body(Full::new(payload))
            .map_err(|e| unreachable(format!("invalid request ({e})")))?;
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
            let collected = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the answer failed ({e})"))?;
            Ok::<_, String>((status, collected.to_bytes().to_vec()))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(r) => r.map_err(unreachable),
            Err(_) => Err(unreachable(format!(
                "no answer within {} seconds",
                REQUEST_TIMEOUT.as_secs()
            ))),
        }
    }
}

enum Auth {
    None,
    Header(String),
    Ticket(Arc<Ticket>),
}

/// Proxmox's words from an error answer: `message` plus per-field `errors`.
fn api_message(parsed: Option<&serde_json::Value>, body: &[u8]) -> String {
    let mut parts = Vec::new();
    if let Some(v) = parsed {
        if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
            parts.push(m.trim().to_string());
        }
        if let Some(errors) = v.get("errors").and_then(|e| e.as_object()) {
            for (k, e) in errors {
                parts.push(format!("{k}: {}", e.as_str().unwrap_or_default().trim()));
            }
        }
    }
    if parts.is_empty() {
        let text = String::from_utf8_lossy(body);
        parts.push(
            text.chars()
                .take(300)
                .collect::<String>()
                .trim()
                .to_string(),
        );
    }
    parts.join("; ")
}

fn tls_config(tls: &Tls) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    Ok(match tls {
        Tls::Ca(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("invalid CA certificate PEM ({e})"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("unusable CA certificate ({e})"))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Tls::System => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| format!("cannot load the system's trusted certificates ({e})"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
        Tls::Unverified => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    })
}

/// Accepts any certificate but still checks the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
