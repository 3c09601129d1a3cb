//! HTML building blocks: the one escaping helper every interpolated value goes through, and
//! the page frame (navigation, inline CSS, auto-refresh without JavaScript). Builds strings
//! only.

use std::fmt::Write;

/// `text` safe inside an element or a double-quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A link target only when it is http(s) or a path of this server; anything else (a
/// `javascript:` URL from a spec, say) is not made a link.
pub fn safe_href(url: &str) -> Option<String> {
    let lower = url.to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://") || url.starts_with('/'))
        .then(|| esc(url))
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#f6f7f9}\
header{background:#1f2937;color:#fff;padding:.6em 1em;display:flex;gap:1.5em;align-items:center}\
header a{color:#cbd5e1;text-decoration:none}header a.on{color:#fff;font-weight:600}\
main{padding:1em}table{border-collapse:collapse;width:100%;background:#fff}\
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e5e7eb;vertical-align:top}\
.ok{color:#15803d}.bad{color:#b91c1c;font-weight:600}.unknown{color:#6b7280}\
.banner{padding:.6em 1em;margin-bottom:1em;border-radius:4px}\
.banner.bad{background:#fee2e2}.banner.ok{background:#dcfce7}.banner.unknown{background:#e5e7eb}\
small{color:#6b7280}code{background:#eef;padding:0 .2em}";

/// The pages in the navigation: path and label.
pub const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/nodes", "Nodes"),
    ("/backups", "Backups"),
    ("/alerts", "Alerts"),
    ("/docs", "Docs"),
];

/// A whole page: `title`, the navigation with `current` marked, and `body` (already HTML).
/// `refresh_seconds` makes the browser reload it, so the page follows the lab without script.
pub fn page(
    lab: &str,
    title: &str,
    current: &str,
    refresh_seconds: Option<u64>,
    body: &str,
) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    out.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    if let Some(s) = refresh_seconds {
        let _ = write!(out, "<meta http-equiv=\"refresh\" content=\"{s}\">");
    }
    let _ = write!(
        out,
        "<title>{} · {}</title><style>{CSS}</style></head><body><header><strong>{}</strong>",
        esc(title),
        esc(lab),
        esc(lab)
    );
    for (path, label) in NAV {
        let class = if *path == current {
            " class=\"on\""
        } else {
            ""
        };
        let _ = write!(out, "<a href=\"{path}\"{class}>{label}</a>");
    }
    let _ = writeln!(out, "</header><main>{body}</main></body></html>");
    out
}

/// `ok`/`bad`/`unknown` class and word for a health.
pub fn health_mark(health: Option<bool>) -> (&'static str, &'static str) {
    match health {
        Some(true) => ("ok", "healthy"),
        Some(false) => ("bad", "unhealthy"),
        None => ("unknown", "unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped_and_odd_links_are_not_links() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(safe_href("javascript:alert(1)"), None);
        assert_eq!(
            safe_href("https://a.example/?q=\"x\"").as_deref(),
            Some("https://a.example/?q=&quot;x&quot;")
        );
        assert_eq!(
            safe_href("/docs/runbooks/x").as_deref(),
            Some("/docs/runbooks/x")
        );
    }
}
