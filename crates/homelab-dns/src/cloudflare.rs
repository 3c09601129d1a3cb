//! Cloudflare: a zone's DNS records through `/zones/<id>/dns_records` (v4 API, bearer token).
//! homelab's A records are DNS only (`proxied: false`: Cloudflare cannot proxy a private
//! address) and carry a `comment` naming the lab, which is how they are known as homelab's.

use serde_json::json;

use crate::api::{Base, DnsError};
use crate::http::{Answer, Method, segment};
use crate::records::{Existing, Record};

pub const NAME: &str = "Cloudflare";
const PER_PAGE: u32 = 100;
/// A zone with more pages than this is not a home lab's; stop rather than loop.
const MAX_PAGES: u32 = 200;

pub struct Cloudflare {
    base: Base,
    zone: String,
    authorization: String,
    mark: String,
}

/// The comment on every record homelab makes for the lab.
pub fn mark(lab: &str) -> String {
    format!("managed by homelab (lab {lab})")
}

impl Cloudflare {
    pub fn new(api: &str, zone: &str, token: String, lab: &str) -> Result<Cloudflare, DnsError> {
        Ok(Cloudflare {
            base: Base::new(
                NAME,
                api,
                "check the `network.dns.apiToken` secret: an API token with Zone > DNS > Edit on this zone, set with `homelab secrets set`".into(),
            )?,
            zone: zone.to_string(),
            authorization: format!("Bearer {token}"),
            mark: mark(lab),
        })
    }

    pub fn target(&self) -> String {
        format!("zone {}", self.zone)
    }

    async fn call(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, DnsError> {
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
        let v = a.json();
        let success = v
            .as_ref()
            .and_then(|v| v.get("success"))
            .and_then(|s| s.as_bool());
        // 9109 and 10000 are Cloudflare's "invalid token" and "authentication error".
        let auth_code = error_codes(v.as_ref())
            .iter()
            .any(|c| matches!(c, 9109 | 10000 | 10001));
        if matches!(a.status, 401 | 403) || auth_code {
            return Err(self.base.auth(errors(&a, v.as_ref())));
        }
        if !(200..300).contains(&a.status) || success == Some(false) {
            return Err(self.base.api(op, &a, errors(&a, v.as_ref())));
        }
        v.ok_or_else(|| self.base.bad(op, "the answer is not JSON"))
    }

    fn records_path(&self) -> String {
        format!("/zones/{}/dns_records", segment(&self.zone))
    }

    pub async fn list(&self) -> Result<Vec<Existing>, DnsError> {
        let op = "listing the zone's DNS records";
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let v = self
                .call(
                    op,
                    Method::Get,
                    &format!("{}?per_page={PER_PAGE}&page={page}", self.records_path()),
                    None,
                )
                .await?;
            let result = v
                .get("result")
                .and_then(|r| r.as_array())
                .ok_or_else(|| self.base.bad(op, "no `result` list in the answer"))?;
            for r in result {
                let (Some(id), Some(name), Some(kind), Some(content)) = (
                    r.get("id").and_then(|v| v.as_str()),
                    r.get("name").and_then(|v| v.as_str()),
                    r.get("type").and_then(|v| v.as_str()),
                    r.get("content").and_then(|v| v.as_str()),
                ) else {
                    continue;
                };
                let comment = r.get("comment").and_then(|c| c.as_str());
                out.push(Existing {
                    id: id.to_string(),
                    name: name.trim_end_matches('.').to_ascii_lowercase(),
                    kind: kind.to_string(),
                    answer: content.to_string(),
                    owned: kind == "A" && comment == Some(self.mark.as_str()),
                });
            }
            let total = v
                .pointer("/result_info/total_pages")
                .and_then(|t| t.as_u64())
                .unwrap_or(1);
            if u64::from(page) >= total || result.is_empty() {
                break;
            }
            page += 1;
            if page > MAX_PAGES {
                return Err(self
                    .base
                    .bad(op, format!("more than {MAX_PAGES} pages of records")));
            }
        }
        Ok(out)
    }

    fn body(&self, r: &Record) -> serde_json::Value {
        json!({
            "type": "A",
            "name": r.name,
            "content": r.address.to_string(),
            "ttl": 1,
            "proxied": false,
            "comment": self.mark,
        })
    }

    pub async fn create(&self, r: &Record) -> Result<(), DnsError> {
        self.call(
            &format!("creating {r}"),
            Method::Post,
            &self.records_path(),
            Some(&self.body(r)),
        )
        .await
        .map(drop)
    }

    pub async fn update(&self, e: &Existing, r: &Record) -> Result<(), DnsError> {
        self.call(
            &format!("pointing {} at {}", e.name, r.address),
            Method::Put,
            &format!("{}/{}", self.records_path(), segment(&e.id)),
            Some(&self.body(r)),
        )
        .await
        .map(drop)
    }

    pub async fn delete(&self, e: &Existing) -> Result<(), DnsError> {
        self.call(
            &format!("deleting {} A {}", e.name, e.answer),
            Method::Delete,
            &format!("{}/{}", self.records_path(), segment(&e.id)),
            None,
        )
        .await
        .map(drop)
    }
}

fn error_codes(v: Option<&serde_json::Value>) -> Vec<u64> {
    v.and_then(|v| v.get("errors"))
        .and_then(|e| e.as_array())
        .map(|e| {
            e.iter()
                .filter_map(|e| e.get("code").and_then(|c| c.as_u64()))
                .collect()
        })
        .unwrap_or_default()
}

fn errors(a: &Answer, v: Option<&serde_json::Value>) -> String {
    a.errors(v, |e| {
        let msg = e.get("message").and_then(|m| m.as_str()).unwrap_or("error");
        match e.get("code").and_then(|c| c.as_u64()) {
            Some(c) => format!("{msg} (code {c})"),
            None => msg.to_string(),
        }
    })
}
