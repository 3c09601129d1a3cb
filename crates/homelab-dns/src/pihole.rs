//! Pi-hole v6: a session from `POST /api/auth`, then the local DNS records, which are the
//! `dns.hosts` entries of its config (`IP NAME` lines), listed with `GET /api/config/dns/hosts`
//! and added or removed one line at a time with `PUT`/`DELETE /api/config/dns/hosts/<line>`.

use std::sync::Mutex;

use serde_json::json;

use crate::api::{Base, DnsError};
use crate::http::{Answer, Method, segment};
use crate::records::{Existing, Record};

pub const NAME: &str = "Pi-hole";

pub struct Pihole {
    base: Base,
    password: String,
    sid: Mutex<Option<Option<String>>>,
}

impl Pihole {
    pub fn new(url: &str, password: String) -> Result<Pihole, DnsError> {
        Ok(Pihole {
            base: Base::new(
                NAME,
                url,
                "check the `network.dns.password` secret (the web interface password, or an app password from Settings > Web interface / API) with `homelab secrets set`".into(),
            )?,
            password,
            sid: Mutex::new(None),
        })
    }

    pub fn target(&self) -> String {
        self.base.http.base().to_string()
    }

    /// The session ID; `None` inside when the Pi-hole has no password.
    async fn sid(&self) -> Result<Option<String>, DnsError> {
        if let Some(s) = self.sid.lock().expect("sid lock").clone() {
            return Ok(s);
        }
        let op = "logging in";
        let a = self
            .base
            .http
            .send(
                Method::Post,
                "/api/auth",
                &[],
                Some(&json!({ "password": self.password })),
            )
            .await
            .map_err(|f| self.base.failure(op, f))?;
        let v = a.json();
        let session = v.as_ref().and_then(|v| v.get("session"));
        let valid = session
            .and_then(|s| s.get("valid"))
            .and_then(|s| s.as_bool())
            .unwrap_or(false);
        if a.status == 401 || (a.status == 200 && !valid) {
            return Err(self.base.auth(message(&a)));
        }
        if a.status != 200 {
            return Err(self.base.api(op, &a, message(&a)));
        }
        let sid = session
            .and_then(|s| s.get("sid"))
            .and_then(|s| s.as_str())
            .map(str::to_string);
        *self.sid.lock().expect("sid lock") = Some(sid.clone());
        Ok(sid)
    }

    async fn call(&self, op: &str, method: Method, path: &str) -> Result<Answer, DnsError> {
        let sid = self.sid().await?;
        let headers: Vec<(&str, &str)> = sid
            .as_deref()
            .map(|s| ("X-FTL-SID", s))
            .into_iter()
            .collect();
        let a = self
            .base
            .http
            .send(method, path, &headers, None)
            .await
            .map_err(|f| self.base.failure(op, f))?;
        match a.status {
            200..=299 => Ok(a),
            401 | 403 => Err(self.base.auth(message(&a))),
            _ => Err(self.base.api(op, &a, message(&a))),
        }
    }

    pub async fn list(&self) -> Result<Vec<Existing>, DnsError> {
        let op = "listing the local DNS records";
        let a = self.call(op, Method::Get, "/api/config/dns/hosts").await?;
        let v = a
            .json()
            .ok_or_else(|| self.base.bad(op, "the answer is not JSON"))?;
        let hosts = v
            .pointer("/config/dns/hosts")
            .and_then(|h| h.as_array())
            .ok_or_else(|| {
                self.base
                    .bad(op, "no `config.dns.hosts` list in the answer")
            })?;
        let mut out = Vec::new();
        for line in hosts.iter().filter_map(|h| h.as_str()) {
            let mut words = line.split_whitespace();
            let Some(ip) = words.next() else { continue };
            let kind = if ip.parse::<std::net::Ipv4Addr>().is_ok() {
                "A"
            } else {
                "AAAA"
            };
            for name in words {
                out.push(Existing {
                    id: line.to_string(),
                    name: name.trim_end_matches('.').to_ascii_lowercase(),
                    kind: kind.into(),
                    answer: ip.to_string(),
                    owned: false,
                });
            }
        }
        Ok(out)
    }

    pub async fn create(&self, r: &Record) -> Result<(), DnsError> {
        let line = line(r);
        self.call(
            &format!("adding `{line}`"),
            Method::Put,
            &format!("/api/config/dns/hosts/{}", segment(&line)),
        )
        .await
        .map(drop)
    }

    pub async fn delete(&self, e: &Existing) -> Result<(), DnsError> {
        self.call(
            &format!("removing `{}`", e.id),
            Method::Delete,
            &format!("/api/config/dns/hosts/{}", segment(&e.id)),
        )
        .await
        .map(drop)
    }

    pub async fn logout(&self) {
        let sid = self.sid.lock().expect("sid lock").take().flatten();
        if let Some(sid) = sid {
            // Best effort: a session left behind expires on its own.
            let _ = self
                .base
                .http
                .send(Method::Delete, "/api/auth", &[("X-FTL-SID", &sid)], None)
                .await;
        }
    }
}

/// The hosts line homelab writes for a record: one name per line, so that removing it never
/// takes a name homelab did not write.
pub fn line(r: &Record) -> String {
    format!("{} {}", r.address, r.name)
}

fn message(a: &Answer) -> String {
    let v = a.json();
    let err = v.as_ref().and_then(|v| v.get("error"));
    let text = |k: &str| {
        err.and_then(|e| e.get(k))
            .and_then(|m| m.as_str())
            .map(str::to_string)
    };
    match (text("message"), text("hint")) {
        (Some(m), Some(h)) if !h.is_empty() => format!("{m} ({h})"),
        (Some(m), _) => m,
        _ => v
            .as_ref()
            .and_then(|v| v.pointer("/session/message"))
            .and_then(|m| m.as_str())
            .map_or_else(
                || format!("HTTP {}: {}", a.status, a.text()),
                str::to_string,
            ),
    }
}
