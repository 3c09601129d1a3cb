//! A typed client for the provider the spec names: list, create, update and delete A records,
//! each call's errors saying which API, which operation and what to do. The credential only
//! goes into a request header or the login body, never into an error. What to change is the
//! plan's business, not this module's.

use homelab_spec::lab::DnsApi;

use crate::http::{Answer, Failure, Http};
use crate::records::{Existing, Record};
use crate::{adguard, cloudflare, nextdns, pihole};

/// The API base URLs of the hosted providers.
pub const NEXTDNS_API: &str = "https://api.nextdns.io";
pub const CLOUDFLARE_API: &str = "https://api.cloudflare.com/client/v4";

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{provider}: cannot reach the API at {url}: {reason}")]
    Unreachable {
        provider: &'static str,
        url: String,
        reason: String,
    },
    #[error("{provider}: the API at {url} refused the credential ({message}); {help}")]
    Auth {
        provider: &'static str,
        url: String,
        message: String,
        help: String,
    },
    #[error(
        "{provider}: {op}: still rate limited after {attempts} attempts{}; wait a while and run it again",
        retry_after.map(|s| format!(" (the API asks to wait {s}s)")).unwrap_or_default()
    )]
    RateLimited {
        provider: &'static str,
        op: String,
        attempts: u32,
        retry_after: Option<u64>,
    },
    #[error("{provider}: {op}: the API answered {status}: {message}")]
    Api {
        provider: &'static str,
        op: String,
        status: u16,
        message: String,
    },
    #[error("{provider}: {op}: unexpected answer: {reason}")]
    BadAnswer {
        provider: &'static str,
        op: String,
        reason: String,
    },
}

/// What each client shares: the provider's name, its HTTP base and how a failure reads.
pub(crate) struct Base {
    pub provider: &'static str,
    pub http: Http,
    /// What to do when the credential is refused.
    pub auth_help: String,
}

impl Base {
    pub fn new(provider: &'static str, url: &str, auth_help: String) -> Result<Base, DnsError> {
        let http = Http::new(url).map_err(|reason| DnsError::Unreachable {
            provider,
            url: url.to_string(),
            reason,
        })?;
        Ok(Base {
            provider,
            http,
            auth_help,
        })
    }

    pub fn failure(&self, op: &str, f: Failure) -> DnsError {
        match f {
            Failure::Unreachable(reason) => DnsError::Unreachable {
                provider: self.provider,
                url: self.http.base().to_string(),
                reason,
            },
            Failure::RateLimited {
                attempts,
                retry_after,
            } => DnsError::RateLimited {
                provider: self.provider,
                op: op.to_string(),
                attempts,
                retry_after,
            },
        }
    }

    pub fn auth(&self, message: String) -> DnsError {
        DnsError::Auth {
            provider: self.provider,
            url: self.http.base().to_string(),
            message,
            help: self.auth_help.clone(),
        }
    }

    pub fn api(&self, op: &str, a: &Answer, message: String) -> DnsError {
        DnsError::Api {
            provider: self.provider,
            op: op.to_string(),
            status: a.status,
            message,
        }
    }

    pub fn bad(&self, op: &str, reason: impl Into<String>) -> DnsError {
        DnsError::BadAnswer {
            provider: self.provider,
            op: op.to_string(),
            reason: reason.into(),
        }
    }
}

/// A client for one provider's API.
pub enum Client {
    Pihole(pihole::Pihole),
    Adguard(adguard::Adguard),
    Nextdns(nextdns::Nextdns),
    Cloudflare(cloudflare::Cloudflare),
}

impl Client {
    /// A client for the spec's API with its credential; `lab` marks Cloudflare records as the
    /// lab's. `base` replaces a hosted provider's API address (a mirror or a stand-in).
    pub fn new(
        api: &DnsApi,
        credential: String,
        lab: &str,
        base: Option<&str>,
    ) -> Result<Client, DnsError> {
        Ok(match api {
            DnsApi::Pihole { url, .. } => Client::Pihole(pihole::Pihole::new(url, credential)?),
            DnsApi::Adguard { url, username, .. } => {
                Client::Adguard(adguard::Adguard::new(url, username, &credential)?)
            }
            DnsApi::Nextdns { profile, .. } => Client::Nextdns(nextdns::Nextdns::new(
                base.unwrap_or(NEXTDNS_API),
                profile,
                credential,
            )?),
            DnsApi::Cloudflare { zone_id, .. } => Client::Cloudflare(cloudflare::Cloudflare::new(
                base.unwrap_or(CLOUDFLARE_API),
                zone_id,
                credential,
                lab,
            )?),
        })
    }

    /// The provider's name as its users know it.
    pub fn provider(&self) -> &'static str {
        match self {
            Client::Pihole(_) => pihole::NAME,
            Client::Adguard(_) => adguard::NAME,
            Client::Nextdns(_) => nextdns::NAME,
            Client::Cloudflare(_) => cloudflare::NAME,
        }
    }

    /// Where the records live: the server's URL, the profile or the zone.
    pub fn target(&self) -> String {
        match self {
            Client::Pihole(c) => c.target(),
            Client::Adguard(c) => c.target(),
            Client::Nextdns(c) => c.target(),
            Client::Cloudflare(c) => c.target(),
        }
    }

    /// Whether the provider keeps homelab's mark on each record (else the lab's note does).
    pub fn marks_records(&self) -> bool {
        matches!(self, Client::Cloudflare(_))
    }

    /// The A (and CNAME) records; `owned` set where the provider keeps homelab's mark.
    pub async fn list(&self) -> Result<Vec<Existing>, DnsError> {
        match self {
            Client::Pihole(c) => c.list().await,
            Client::Adguard(c) => c.list().await,
            Client::Nextdns(c) => c.list().await,
            Client::Cloudflare(c) => c.list().await,
        }
    }

    pub async fn create(&self, r: &Record) -> Result<(), DnsError> {
        match self {
            Client::Pihole(c) => c.create(r).await,
            Client::Adguard(c) => c.create(r).await,
            Client::Nextdns(c) => c.create(r).await,
            Client::Cloudflare(c) => c.create(r).await,
        }
    }

    /// Points a record homelab made at the new address: in place where the API can, else a
    /// delete and a create.
    pub async fn update(&self, e: &Existing, r: &Record) -> Result<(), DnsError> {
        match self {
            Client::Cloudflare(c) => c.update(e, r).await,
            _ => {
                self.delete(e).await?;
                self.create(r).await
            }
        }
    }

    pub async fn delete(&self, e: &Existing) -> Result<(), DnsError> {
        match self {
            Client::Pihole(c) => c.delete(e).await,
            Client::Adguard(c) => c.delete(e).await,
            Client::Nextdns(c) => c.delete(e).await,
            Client::Cloudflare(c) => c.delete(e).await,
        }
    }

    /// Ends a login session where the API keeps one (Pi-hole limits their number).
    pub async fn close(&self) {
        if let Client::Pihole(c) = self {
            c.logout().await;
        }
    }
}
