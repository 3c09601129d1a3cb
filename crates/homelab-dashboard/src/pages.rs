//! The dashboard's pages as HTML, from the data of [`crate::model`]. Every value from the plan
//! or the cluster goes through [`esc`]. Builds strings only.

use std::fmt::Write;

use crate::html::{esc, health_mark, page, safe_href};
use crate::model::{Overview, layers};

/// How often the browser reloads a page that follows the lab.
pub const REFRESH_SECONDS: u64 = 10;

pub fn overview(o: &Overview) -> String {
    let mut body = String::new();
    let (class, word) = match o.health {
        "healthy" => ("ok", "healthy"),
        "unhealthy" | "unreachable" => ("bad", o.health),
        _ => ("unknown", "not checked yet"),
    };
    let _ = write!(
        body,
        "<div class=\"banner {class}\" id=\"lab-health\" data-health=\"{}\">Lab <strong>{}</strong>: {word}",
        o.health,
        esc(&o.lab)
    );
    if o.problems > 0 {
        let _ = write!(body, " ({} problems)", o.problems);
    }
    if let Some(why) = &o.unreachable {
        let _ = write!(body, ": {}", esc(why));
    }
    let _ = write!(
        body,
        "<br><small>nodes {}/{} ready · Kubernetes {} (K3s pinned {}) · checked {}{}</small></div>",
        o.nodes.ready,
        o.nodes.expected,
        esc(o.kubernetes_version.as_deref().unwrap_or("?")),
        esc(&o.k3s_pinned),
        esc(o.checked_at.as_deref().unwrap_or("not yet")),
        o.check_seconds
            .map(|s| format!(" in {s:.2} s"))
            .unwrap_or_default()
    );
    for layer in layers(o) {
        let _ = write!(
            body,
            "<h2>{}</h2><table><thead><tr><th>Component</th><th>Health</th><th>URL</th><th>Version (deployed / pinned)</th><th>Reason</th></tr></thead><tbody>",
            esc(layer)
        );
        for c in o.components.iter().filter(|c| c.layer == layer) {
            let (class, word) = health_mark(c.healthy);
            let _ = write!(
                body,
                "<tr class=\"component\" id=\"component-{}\" data-health=\"{word}\"><td><strong>{}</strong><br><small>{}{}</small></td><td class=\"{class}\">{word}<br><small>{}/{} checks</small></td><td>",
                esc(&c.name),
                esc(&c.name),
                esc(&c.title),
                c.namespace
                    .as_deref()
                    .map(|n| format!(" · {}", esc(n)))
                    .unwrap_or_default(),
                c.checks_passed,
                c.checks_total
            );
            for u in &c.urls {
                let (uclass, _) = health_mark(u.ok);
                match safe_href(&u.url) {
                    Some(href) => {
                        let _ = write!(
                            body,
                            "<a class=\"{uclass}\" href=\"{href}\">{}</a><br>",
                            esc(&u.url)
                        );
                    }
                    None => {
                        let _ = write!(body, "{}<br>", esc(&u.url));
                    }
                }
            }
            body.push_str("</td><td>");
            for v in &c.versions {
                let deployed = v.deployed.as_deref().unwrap_or("?");
                let vclass = if v.current { "ok" } else { "bad" };
                let _ = write!(
                    body,
                    "{} <span class=\"{vclass}\">{}</span> / {}<br>",
                    esc(&v.chart),
                    esc(deployed),
                    esc(&v.pinned)
                );
            }
            body.push_str("</td><td>");
            if let Some(reason) = &c.reason {
                let _ = write!(body, "<span class=\"reason\">{}</span>", esc(reason));
                if let Some(fix) = &c.fix {
                    let _ = write!(body, "<br><small>fix: {}</small>", esc(fix));
                }
                if let Some(rb) = c.runbook.as_deref().and_then(safe_href) {
                    let _ = write!(body, " <a class=\"runbook\" href=\"{rb}\">runbook</a>");
                }
            }
            body.push_str("</td></tr>");
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(
        "<p><small>Read-only. The same data: <a href=\"/api/overview\">/api/overview</a> · <a href=\"/metrics\">/metrics</a></small></p>",
    );
    page(&o.lab, "Overview", "/", Some(REFRESH_SECONDS), &body)
}

pub fn not_found(lab: &str, what: &str) -> String {
    page(
        lab,
        "Not found",
        "",
        None,
        &format!(
            "<h1>Not found</h1><p>{}</p><p><a href=\"/\">Overview</a></p>",
            esc(what)
        ),
    )
}

/// A page saying a request was refused, and why.
pub fn error_page(lab: &str, title: &str, why: &str) -> String {
    page(
        lab,
        title,
        "",
        None,
        &format!(
            "<h1>{}</h1><p>{}</p><p><a href=\"/docs\">Docs</a> · <a href=\"/\">Overview</a></p>",
            esc(title),
            esc(why)
        ),
    )
}
