//! The Alerts page and `/api/alerts`: what Alertmanager has firing and silenced, and its
//! silences, from its v2 API (`GET /api/v2/alerts`, `GET /api/v2/silences`) as read through
//! the API server's service proxy, each alert with a link to its runbook. Pure: reads the JSON
//! as Alertmanager gave it; no I/O. Alertmanager not answering is a message, never an error
//! page.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;
use serde_json::Value;

use crate::html::{esc, page, safe_href};
use crate::model::Inventory;
use crate::reads::Read;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertView {
    pub name: String,
    pub severity: Option<String>,
    /// Alertmanager's state: `active`, `suppressed` (silenced or inhibited) or `unprocessed`.
    pub state: String,
    pub silenced_by: Vec<String>,
    pub inhibited_by: Vec<String>,
    pub starts_at: Option<String>,
    pub summary: Option<String>,
    pub description: Option<String>,
    /// Every label but `alertname`, sorted.
    pub labels: BTreeMap<String, String>,
    /// The dashboard's page of the runbook when the plan wrote it, else the alert's
    /// `runbook_url` when that is a web address.
    pub runbook: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceView {
    pub id: String,
    /// `active`, `pending` or `expired`.
    pub state: String,
    /// `name="value"`, `name=~"regex"`, `name!="value"`, ...
    pub matchers: Vec<String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub created_by: Option<String>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertsPage {
    pub lab: String,
    /// `namespace/service:port` of the Alertmanager read; `None` when the lab has none.
    pub alertmanager: Option<String>,
    pub read_at: Option<String>,
    /// Why the alerts could not be read (Alertmanager down, no ready pod, ...).
    pub error: Option<String>,
    pub firing: Vec<AlertView>,
    pub silenced: Vec<AlertView>,
    /// Silences that are active or pending (expired ones are history).
    pub silences: Vec<SilenceView>,
    /// Why the silences could not be read, when the alerts could.
    pub silences_error: Option<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// The link for an alert's `runbook_url`: `.../docs/runbooks/NAME.md` of a runbook the plan
/// wrote is that runbook's page here; another web address is kept; anything else is none.
fn runbook_link(inventory: &Inventory, url: &str) -> Option<String> {
    let name = url
        .rsplit_once("docs/runbooks/")
        .map(|(_, n)| n.trim_end_matches(".md"));
    if let Some(name) = name.filter(|n| inventory.runbooks.contains_key(*n)) {
        return Some(format!("/docs/runbooks/{name}"));
    }
    safe_href(url)
        .filter(|_| url.starts_with("http://") || url.starts_with("https://"))
        .map(|_| url.to_string())
}

fn alert_view(inventory: &Inventory, a: &Value) -> AlertView {
    let labels: BTreeMap<String, String> = a["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    AlertView {
        name: labels
            .get("alertname")
            .cloned()
            .unwrap_or_else(|| "(no alertname)".into()),
        severity: labels.get("severity").cloned(),
        state: a["status"]["state"]
            .as_str()
            .unwrap_or("unprocessed")
            .to_string(),
        silenced_by: strings(&a["status"]["silencedBy"]),
        inhibited_by: strings(&a["status"]["inhibitedBy"]),
        starts_at: text(&a["startsAt"]),
        summary: text(&a["annotations"]["summary"]),
        description: text(&a["annotations"]["description"]),
        runbook: a["annotations"]["runbook_url"]
            .as_str()
            .and_then(|u| runbook_link(inventory, u)),
        labels: labels
            .into_iter()
            .filter(|(k, _)| k != "alertname")
            .collect(),
    }
}

fn silence_view(s: &Value) -> SilenceView {
    let matchers = s["matchers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let equal = m["isEqual"].as_bool().unwrap_or(true);
            let op = match (m["isRegex"].as_bool().unwrap_or(false), equal) {
                (false, true) => "=",
                (false, false) => "!=",
                (true, true) => "=~",
                (true, false) => "!~",
            };
            format!(
                "{}{op}{:?}",
                m["name"].as_str().unwrap_or_default(),
                m["value"].as_str().unwrap_or_default()
            )
        })
        .collect();
    SilenceView {
        id: s["id"].as_str().unwrap_or_default().to_string(),
        state: s["status"]["state"]
            .as_str()
            .unwrap_or("unknown")
            .to_string(),
        matchers,
        starts_at: text(&s["startsAt"]),
        ends_at: text(&s["endsAt"]),
        created_by: text(&s["createdBy"]),
        comment: text(&s["comment"]),
    }
}

fn read_error(what: &str, am: &str, read: &Read<Value>) -> Option<String> {
    match read {
        Read::Got(v) if v.is_array() => None,
        Read::Got(_) => Some(format!(
            "Alertmanager {am} answered {what} with something that is not a list"
        )),
        Read::Absent => Some(format!(
            "Alertmanager {am} is not there (the API server found no such Service or path): is monitoring applied? `homelab status` says more"
        )),
        Read::Failed(why) => Some(format!(
            "Alertmanager {am} did not answer ({why}); its pods may be down: `kubectl -n {} get pods` and `homelab status` say more",
            am.split('/').next().unwrap_or("monitoring")
        )),
    }
}

impl AlertsPage {
    pub fn build(
        inventory: &Inventory,
        alertmanager: Option<&str>,
        read_at: Option<String>,
        alerts: Option<&Read<Value>>,
        silences: Option<&Read<Value>>,
    ) -> AlertsPage {
        let mut page = AlertsPage {
            lab: inventory.lab.clone(),
            alertmanager: alertmanager.map(str::to_string),
            read_at,
            error: None,
            firing: Vec::new(),
            silenced: Vec::new(),
            silences: Vec::new(),
            silences_error: None,
        };
        let Some(am) = alertmanager else {
            page.error =
                Some("the lab has no Alertmanager (monitoring is not part of the spec)".into());
            return page;
        };
        let Some(alerts) = alerts else {
            return page;
        };
        page.error = read_error("GET /api/v2/alerts", am, alerts);
        for a in alerts.got().and_then(Value::as_array).into_iter().flatten() {
            let view = alert_view(inventory, a);
            if view.state == "suppressed" {
                page.silenced.push(view);
            } else {
                page.firing.push(view);
            }
        }
        // Most severe first, then by name, so the page reads in the order to act.
        let rank = |s: &Option<String>| match s.as_deref() {
            Some("critical") => 0,
            Some("warning") => 1,
            Some("info") => 2,
            _ => 3,
        };
        for list in [&mut page.firing, &mut page.silenced] {
            list.sort_by(|a, b| {
                (rank(&a.severity), &a.name, &a.labels).cmp(&(
                    rank(&b.severity),
                    &b.name,
                    &b.labels,
                ))
            });
        }
        if let Some(s) = silences {
            page.silences_error = read_error("GET /api/v2/silences", am, s);
            page.silences = s
                .got()
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(silence_view)
                .filter(|s| s.state != "expired")
                .collect();
        }
        page
    }
}

fn alert_rows(body: &mut String, alerts: &[AlertView], id: &str) {
    let _ = write!(
        body,
        "<table id=\"{id}\"><thead><tr><th>Alert</th><th>Severity</th><th>Since</th><th>What</th><th>Labels</th></tr></thead><tbody>"
    );
    for a in alerts {
        let class = match a.severity.as_deref() {
            Some("critical") => "bad",
            Some("warning") => "bad",
            _ => "unknown",
        };
        let _ = write!(
            body,
            "<tr class=\"alert\" data-alert=\"{}\"><td><strong>{}</strong>",
            esc(&a.name),
            esc(&a.name)
        );
        if let Some(rb) = a.runbook.as_deref().and_then(safe_href) {
            let _ = write!(body, "<br><a class=\"runbook\" href=\"{rb}\">runbook</a>");
        }
        let _ = write!(
            body,
            "</td><td class=\"{class}\">{}</td><td>{}</td><td>{}",
            esc(a.severity.as_deref().unwrap_or("-")),
            esc(a.starts_at.as_deref().unwrap_or("?")),
            esc(a.summary.as_deref().unwrap_or(""))
        );
        if let Some(d) = &a.description {
            let _ = write!(body, "<br><small>{}</small>", esc(d));
        }
        if !a.silenced_by.is_empty() {
            let _ = write!(
                body,
                "<br><small>silenced by {}</small>",
                esc(&a.silenced_by.join(", "))
            );
        }
        if !a.inhibited_by.is_empty() {
            let _ = write!(
                body,
                "<br><small>inhibited by {}</small>",
                esc(&a.inhibited_by.join(", "))
            );
        }
        body.push_str("</td><td><small>");
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        body.push_str(&esc(&labels.join(" ")));
        body.push_str("</small></td></tr>");
    }
    body.push_str("</tbody></table>");
}

pub fn html(p: &AlertsPage) -> String {
    let mut body = String::from("<h1>Alerts</h1>");
    if let Some(e) = &p.error {
        let _ = write!(
            body,
            "<div class=\"banner bad\" id=\"alerts-error\">{}</div>",
            esc(e)
        );
    } else if p.read_at.is_some() {
        let (class, text) = if p.firing.is_empty() {
            ("ok", "nothing firing".to_string())
        } else {
            ("bad", format!("{} firing", p.firing.len()))
        };
        let _ = write!(
            body,
            "<div class=\"banner {class}\" id=\"alerts-summary\">{text}, {} silenced</div>",
            p.silenced.len()
        );
    }
    let _ = write!(body, "<h2>Firing ({})</h2>", p.firing.len());
    alert_rows(&mut body, &p.firing, "firing");
    let _ = write!(body, "<h2>Silenced ({})</h2>", p.silenced.len());
    alert_rows(&mut body, &p.silenced, "silenced");
    let _ = write!(body, "<h2>Silences ({})</h2>", p.silences.len());
    if let Some(e) = &p.silences_error {
        let _ = write!(body, "<p class=\"bad\">{}</p>", esc(e));
    }
    body.push_str("<table id=\"silences\"><thead><tr><th>Matchers</th><th>State</th><th>Until</th><th>By</th><th>Comment</th></tr></thead><tbody>");
    for s in &p.silences {
        let _ = write!(
            body,
            "<tr class=\"silence\" data-silence=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.id),
            esc(&s.matchers.join(", ")),
            esc(&s.state),
            esc(s.ends_at.as_deref().unwrap_or("?")),
            esc(s.created_by.as_deref().unwrap_or("")),
            esc(s.comment.as_deref().unwrap_or(""))
        );
    }
    let _ = write!(
        body,
        "</tbody></table><p><small>{} · read {} · the same data: <a href=\"/api/alerts\">/api/alerts</a></small></p>",
        esc(p.alertmanager.as_deref().unwrap_or("no Alertmanager")),
        esc(p.read_at.as_deref().unwrap_or("not yet"))
    );
    page(
        &p.lab,
        "Alerts",
        "/alerts",
        Some(crate::pages::REFRESH_SECONDS),
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inventory() -> Inventory {
        Inventory {
            lab: "lab".into(),
            domain: "example.org".into(),
            k3s_version: "v1".into(),
            components: vec![],
            nodes: vec![],
            runbooks: [(
                "node-down".to_string(),
                ("Node down".to_string(), String::new()),
            )]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn firing_and_silenced_are_split_and_runbooks_linked() {
        let alerts = json!([
            {"labels": {"alertname": "NodeDown", "severity": "critical", "node": "w1"},
             "annotations": {"summary": "w1 is down", "runbook_url": "docs/runbooks/node-down.md"},
             "startsAt": "2026-12-07T20:00:00Z", "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}},
            {"labels": {"alertname": "Other", "severity": "warning"},
             "annotations": {"runbook_url": "javascript:alert(1)"},
             "status": {"state": "suppressed", "silencedBy": ["s1"], "inhibitedBy": []}},
            {"labels": {"alertname": "Ext"}, "annotations": {"runbook_url": "https://wiki.example/x"},
             "status": {"state": "active"}},
        ]);
        let silences = json!([
            {"id": "s1", "status": {"state": "active"}, "matchers": [{"name": "alertname", "value": "Other", "isRegex": false, "isEqual": true}],
             "endsAt": "2026-12-08T00:00:00Z", "createdBy": "me", "comment": "<b>maintenance</b>"},
            {"id": "s0", "status": {"state": "expired"}, "matchers": []},
        ]);
        let p = AlertsPage::build(
            &inventory(),
            Some("monitoring/am:9093"),
            Some("now".into()),
            Some(&Read::Got(alerts)),
            Some(&Read::Got(silences)),
        );
        assert!(p.error.is_none());
        assert_eq!(p.firing.len(), 2);
        assert_eq!(p.firing[0].name, "NodeDown");
        assert_eq!(
            p.firing[0].runbook.as_deref(),
            Some("/docs/runbooks/node-down")
        );
        assert_eq!(
            p.firing[1].runbook.as_deref(),
            Some("https://wiki.example/x")
        );
        assert_eq!(p.silenced.len(), 1);
        assert_eq!(p.silenced[0].silenced_by, ["s1"]);
        assert_eq!(p.silenced[0].runbook, None);
        assert_eq!(p.silences.len(), 1);
        assert_eq!(p.silences[0].matchers, ["alertname=\"Other\""]);
        let page = html(&p);
        assert!(page.contains("href=\"/docs/runbooks/node-down\""));
        assert!(!page.contains("javascript:"));
        assert!(page.contains("&lt;b&gt;maintenance&lt;/b&gt;"));
    }

    #[test]
    fn alertmanager_down_is_a_message() {
        let p = AlertsPage::build(
            &inventory(),
            Some("monitoring/am:9093"),
            Some("now".into()),
            Some(&Read::Failed("HTTP 503: no endpoints available".into())),
            Some(&Read::Failed("HTTP 503: no endpoints available".into())),
        );
        let e = p.error.as_deref().unwrap();
        assert!(e.contains("did not answer") && e.contains("503"), "{e}");
        assert!(html(&p).contains("id=\"alerts-error\""));
        let none = AlertsPage::build(&inventory(), None, None, None, None);
        assert!(none.error.unwrap().contains("no Alertmanager"));
    }
}
