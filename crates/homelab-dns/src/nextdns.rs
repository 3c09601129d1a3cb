//! NextDNS: a profile's rewrites (`{id, name, content}`) through `/profiles/<id>/rewrites`, with
//! the account's API key in `X-Api-Key`. The API reports errors as `{"errors": [...]}`, with a
//! 400 or, for some, a 200, so every answer is checked for them.

use serde_json::json;

use crate::api::{Base, DnsError};
use crate::http::{Answer, Method, segment};
use crate::records::{Existing, Record};

pub const NAME: &str = "NextDNS";

pub struct Nextdns {
    base: Base,
    profile: String,
    key: String,
}

impl Nextdns {
    pub fn new(api: &str, profile: &str, key: String) -> Result<Nextdns, DnsError> {
        Ok(Nextdns {
            base: Base::new(
                NAME,
                api,
                "check the `network.dns.apiKey` secret (the key at the bottom of my.nextdns.io/account) with `homelab secrets set`".into(),
            )?,
            profile: profile.to_string(),
            key,
        })
    }

    pub fn target(&self) -> String {
        format!("profile {}", self.profile)
    }

    async fn call(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, DnsError> {
        let a = self
            .base
            .http
            .send(method, path, &[("X-Api-Key", &self.key)], body)
            .await
            .map_err(|f| self.base.failure(op, f))?;
        let v = a.json();
        if matches!(a.status, 401 | 403) {
            return Err(self.base.auth(errors(&a, v.as_ref())));
        }
        if a.status == 404 {
            return Err(self.base.api(
                op,
                &a,
                format!(
                    "no profile `{}` for this API key; check `network.dns.profile`",
                    self.profile
                ),
            ));
        }
        if !(200..300).contains(&a.status)
            || v.as_ref()
                .and_then(|v| v.get("errors"))
                .is_some_and(|e| e.as_array().is_some_and(|e| !e.is_empty()))
        {
            return Err(self.base.api(op, &a, errors(&a, v.as_ref())));
        }
        Ok(v)
    }

    pub async fn list(&self) -> Result<Vec<Existing>, DnsError> {
        let op = "listing the rewrites";
        let v = self
            .call(
                op,
                Method::Get,
                &format!("/profiles/{}/rewrites", segment(&self.profile)),
                None,
            )
            .await?
            .ok_or_else(|| self.base.bad(op, "the answer is not JSON"))?;
        let data = v
            .get("data")
            .and_then(|d| d.as_array())
            .ok_or_else(|| self.base.bad(op, "no `data` list in the answer"))?;
        Ok(data
            .iter()
            .filter_map(|r| {
                let id = r.get("id")?.as_str()?;
                let name = r.get("name")?.as_str()?;
                let content = r.get("content")?.as_str()?;
                let kind = r
                    .get("type")
                    .and_then(|t| t.as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        if content.parse::<std::net::Ipv4Addr>().is_ok() {
                            "A"
                        } else {
                            "CNAME"
                        }
                        .into()
                    });
                Some(Existing {
                    id: id.to_string(),
                    name: name.trim_end_matches('.').to_ascii_lowercase(),
                    kind,
                    answer: content.to_string(),
                    owned: false,
                })
            })
            .collect())
    }

    pub async fn create(&self, r: &Record) -> Result<(), DnsError> {
        let body = json!({"name": r.name, "content": r.address.to_string()});
        self.call(
            &format!("adding the rewrite {r}"),
            Method::Post,
            &format!("/profiles/{}/rewrites", segment(&self.profile)),
            Some(&body),
        )
        .await
        .map(drop)
    }

    pub async fn delete(&self, e: &Existing) -> Result<(), DnsError> {
        self.call(
            &format!("removing the rewrite {} -> {}", e.name, e.answer),
            Method::Delete,
            &format!(
                "/profiles/{}/rewrites/{}",
                segment(&self.profile),
                segment(&e.id)
            ),
            None,
        )
        .await
        .map(drop)
    }
}

fn errors(a: &Answer, v: Option<&serde_json::Value>) -> String {
    a.errors(v, |e| {
        let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("error");
        match e.get("detail").and_then(|d| d.as_str()) {
            Some(d) => format!("{code}: {d}"),
            None => code.to_string(),
        }
    })
}
