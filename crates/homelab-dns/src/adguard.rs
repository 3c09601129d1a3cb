//! AdGuard Home: DNS rewrites (`{domain, answer}` pairs) through `/control/rewrite/list`, `add`
//! and `delete`, with the web interface's user and password as HTTP basic authentication.

use base64::Engine as _;
use serde_json::json;

use crate::api::{Base, DnsError};
use crate::http::{Answer, Method};
use crate::records::{Existing, Record};

pub const NAME: &str = "AdGuard Home";

pub struct Adguard {
    base: Base,
    authorization: String,
}

impl Adguard {
    pub fn new(url: &str, username: &str, password: &str) -> Result<Adguard, DnsError> {
        let pair =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        Ok(Adguard {
            base: Base::new(
                NAME,
                url,
                format!(
                    "check `network.dns.username` (`{username}`) and the `network.dns.password` secret with `homelab secrets set`"
                ),
            )?,
            authorization: format!("Basic {pair}"),
        })
    }

    pub fn target(&self) -> String {
        self.base.http.base().to_string()
    }

    async fn call(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, DnsError> {
        let a = self
            .base
            .http
            .send(
                method,
                path,
                &[("Authorization", &self.authorization)],
                body,
            )
            .await
            .map_err(|f| self.base.failure(op, f))?;
        match a.status {
            200..=299 => Ok(a),
            401 | 403 => Err(self.base.auth(format!("HTTP {}: {}", a.status, a.text()))),
            _ => Err(self.base.api(op, &a, a.text())),
        }
    }

    pub async fn list(&self) -> Result<Vec<Existing>, DnsError> {
        let op = "listing the DNS rewrites";
        let a = self
            .call(op, Method::Get, "/control/rewrite/list", None)
            .await?;
        let v = a
            .json()
            .ok_or_else(|| self.base.bad(op, "the answer is not JSON"))?;
        let list = v
            .as_array()
            .ok_or_else(|| self.base.bad(op, "the answer is not a list of rewrites"))?;
        Ok(list
            .iter()
            .filter(|r| r.get("enabled").and_then(|e| e.as_bool()) != Some(false))
            .filter_map(|r| {
                let domain = r.get("domain")?.as_str()?;
                let answer = r.get("answer")?.as_str()?;
                let kind = if answer.parse::<std::net::Ipv4Addr>().is_ok() {
                    "A"
                } else if answer.parse::<std::net::Ipv6Addr>().is_ok() {
                    "AAAA"
                } else if answer == "A" || answer == "AAAA" {
                    // AdGuard's "keep the upstream answer" values.
                    "upstream"
                } else {
                    "CNAME"
                };
                Some(Existing {
                    id: format!("{domain} -> {answer}"),
                    name: domain.trim_end_matches('.').to_ascii_lowercase(),
                    kind: kind.into(),
                    answer: answer.to_string(),
                    owned: false,
                })
            })
            .collect())
    }

    pub async fn create(&self, r: &Record) -> Result<(), DnsError> {
        let body = json!({"domain": r.name, "answer": r.address.to_string()});
        self.call(
            &format!("adding the rewrite {r}"),
            Method::Post,
            "/control/rewrite/add",
            Some(&body),
        )
        .await
        .map(drop)
    }

    pub async fn delete(&self, e: &Existing) -> Result<(), DnsError> {
        let body = json!({"domain": e.name, "answer": e.answer});
        self.call(
            &format!("removing the rewrite {}", e.id),
            Method::Post,
            "/control/rewrite/delete",
            Some(&body),
        )
        .await
        .map(drop)
    }
}
