//! The Docs pages: the Markdown files of the rendered tree's `docs/` (ADRs, runbooks,
//! diagrams, host preparation) rendered to HTML once at start, Mermaid blocks left for the
//! vendored script to draw in the browser, and a server-side search over titles and text.
//! Pure: the tree is rendered in memory and a request can only name one of its documents,
//! never a file; raw HTML in the Markdown is shown as text, never passed through.

use std::collections::BTreeMap;
use std::fmt::Write;

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd};
use serde::Serialize;

use crate::html::{esc, safe_href};

/// The version of the vendored `mermaid` npm package (assets/README.md).
pub const MERMAID_VERSION: &str = "11.17.2";
/// Its minified browser build, served from the binary so that no page needs the network.
pub const MERMAID_JS: &[u8] = include_bytes!("../assets/mermaid.min.js");

/// Where the pages load the script from; the version in the path lets browsers keep it.
pub fn mermaid_path() -> String {
    format!("/assets/mermaid-{MERMAID_VERSION}.min.js")
}

/// One document of the tree.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// Its address under `/docs/`: the path below `docs/` without `.md` (`runbooks/node-down`).
    pub key: String,
    /// `adrs`, `runbooks`, `diagrams` or `guides` (files directly under `docs/`).
    pub section: String,
    pub title: String,
    #[serde(skip)]
    pub markdown: String,
    #[serde(skip)]
    pub html: String,
    pub has_diagram: bool,
}

/// Every document, by key.
#[derive(Debug, Clone, Default)]
pub struct Docs {
    pub docs: BTreeMap<String, Doc>,
}

/// Why a docs path was refused before it was looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// The key a request path names, or why the path is refused: `..`, `.`, empty segments (an
/// absolute path after decoding), backslashes and control characters never name a document.
pub fn key_of(path: &str) -> Result<String, Refused> {
    if path.starts_with('/') || path.contains('\\') || path.chars().any(char::is_control) {
        return Err(Refused(format!(
            "{path:?} is not a document path: absolute paths, backslashes and control characters are refused"
        )));
    }
    for segment in path.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(Refused(format!(
                "{path:?} is not a document path: `.`, `..` and empty segments are refused"
            )));
        }
    }
    Ok(path.strip_suffix(".md").unwrap_or(path).to_string())
}

/// The first `# ` heading, else the file name.
fn title_of(key: &str, markdown: &str) -> String {
    markdown
        .lines()
        .find_map(|l| l.strip_prefix("# "))
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|| key.rsplit('/').next().unwrap_or(key).to_string())
}

/// `target` of a link in the document `key`, as a page of this server when it names another
/// document of the tree (`node-down.md`, `../runbooks/node-down.md#steps`).
fn resolve_link(key: &str, target: &str, keys: &dyn Fn(&str) -> bool) -> Option<String> {
    if target.contains("://") || target.starts_with('/') || target.starts_with('#') {
        return None;
    }
    let (path, fragment) = match target.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (target, None),
    };
    let path = path.strip_prefix("docs/").map_or_else(
        || {
            let mut parts: Vec<&str> = key.split('/').collect();
            parts.pop();
            for seg in path.split('/') {
                match seg {
                    "." | "" => {}
                    ".." => {
                        parts.pop()?;
                    }
                    s => parts.push(s),
                }
            }
            Some(parts.join("/"))
        },
        |p| Some(p.to_string()),
    )?;
    let candidate = path.strip_suffix(".md").unwrap_or(&path).to_string();
    keys(&candidate).then(|| match fragment {
        Some(f) => format!("/docs/{candidate}#{f}"),
        None => format!("/docs/{candidate}"),
    })
}

/// Markdown to HTML: raw HTML becomes text, `mermaid` code blocks become `<pre
/// class="mermaid">` for the script, links to other documents of the tree point at their
/// pages, and links that are neither web addresses nor such documents lose their target.
pub fn render_markdown(key: &str, markdown: &str, keys: &dyn Fn(&str) -> bool) -> (String, bool) {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    options.insert(Options::ENABLE_TASKLISTS);
    let mut in_mermaid = false;
    let mut has_diagram = false;
    let mut events = Vec::new();
    for event in Parser::new_ext(markdown, options) {
        let event = match event {
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(lang)))
                if lang.split_whitespace().next() == Some("mermaid") =>
            {
                in_mermaid = true;
                has_diagram = true;
                Event::Html(CowStr::Borrowed("<pre class=\"mermaid\">"))
            }
            Event::Text(text) if in_mermaid => Event::Html(CowStr::from(esc(&text))),
            Event::End(TagEnd::CodeBlock) if in_mermaid => {
                in_mermaid = false;
                Event::Html(CowStr::Borrowed("</pre>"))
            }
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let dest = resolve_link(key, &dest_url, keys)
                    .or_else(|| {
                        safe_href(&dest_url)
                            .filter(|_| dest_url.contains("://"))
                            .map(|_| dest_url.to_string())
                    })
                    .unwrap_or_default();
                Event::Start(Tag::Link {
                    link_type,
                    dest_url: CowStr::from(dest),
                    title,
                    id,
                })
            }
            // Images would be fetched from wherever they point; the docs have none of their own.
            Event::Start(Tag::Image { dest_url, .. }) => {
                Event::Text(CowStr::from(format!("[image: {dest_url}]")))
            }
            Event::End(TagEnd::Image) => Event::Text(CowStr::Borrowed("")),
            other => other,
        };
        events.push(event);
    }
    let mut out = String::with_capacity(markdown.len() * 2);
    pulldown_cmark::html::push_html(&mut out, events.into_iter());
    (out, has_diagram)
}

impl Docs {
    /// The documents among `files` (path below the tree's root, text): every `docs/**.md`.
    pub fn from_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Docs {
        let md: Vec<(String, &str)> = files
            .into_iter()
            .filter_map(|(path, text)| {
                let rest = path.strip_prefix("docs/")?;
                rest.ends_with(".md")
                    .then(|| (rest.trim_end_matches(".md").to_string(), text))
            })
            .collect();
        let keys: std::collections::BTreeSet<String> = md.iter().map(|(k, _)| k.clone()).collect();
        let is_key = |k: &str| keys.contains(k);
        let docs = md
            .iter()
            .map(|(key, text)| {
                let (html, has_diagram) = render_markdown(key, text, &is_key);
                let section = match key.split_once('/') {
                    Some((dir, _)) => dir.to_string(),
                    None => "guides".to_string(),
                };
                (
                    key.clone(),
                    Doc {
                        key: key.clone(),
                        section,
                        title: title_of(key, text),
                        markdown: text.to_string(),
                        html,
                        has_diagram,
                    },
                )
            })
            .collect();
        Docs { docs }
    }

    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&Doc> {
        self.docs.get(key)
    }

    /// The documents whose title or text holds every word of `query` (case-insensitive), best
    /// first: title hits weigh more than text hits.
    pub fn search(&self, query: &str) -> Vec<Hit> {
        let words: Vec<String> = query
            .split_whitespace()
            .map(str::to_lowercase)
            .filter(|w| !w.is_empty())
            .take(8)
            .collect();
        if words.is_empty() {
            return Vec::new();
        }
        let mut hits: Vec<Hit> = self
            .docs
            .values()
            .filter_map(|d| {
                let title = d.title.to_lowercase();
                let text = d.markdown.to_lowercase();
                let mut score = 0;
                for w in &words {
                    let in_title = title.matches(w.as_str()).count();
                    let in_text = text.matches(w.as_str()).count();
                    if in_title + in_text == 0 {
                        return None;
                    }
                    score += 10 * in_title + in_text;
                }
                Some(Hit {
                    key: d.key.clone(),
                    title: d.title.clone(),
                    section: d.section.clone(),
                    score,
                    snippet: snippet(&d.markdown, &words[0]),
                })
            })
            .collect();
        hits.sort_by(|a, b| b.score.cmp(&a.score).then(a.key.cmp(&b.key)));
        hits
    }
}

/// One search result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hit {
    pub key: String,
    pub title: String,
    pub section: String,
    pub score: usize,
    /// The text around the first match, plain.
    pub snippet: String,
}

/// About 160 characters of `text` around the first `word` (lower-case), on char boundaries.
fn snippet(text: &str, word: &str) -> String {
    let lower = text.to_lowercase();
    // Lower-casing can change byte lengths; find the match in the original by char index.
    let at_char = lower
        .find(word)
        .map(|b| lower[..b].chars().count())
        .unwrap_or(0);
    let chars: Vec<char> = text.chars().collect();
    let start = at_char.saturating_sub(60);
    let end = (at_char + 100).min(chars.len());
    let body: String = chars[start..end].iter().collect();
    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    format!(
        "{}{body}{}",
        if start > 0 { "…" } else { "" },
        if end < chars.len() { "…" } else { "" }
    )
}

const SECTIONS: &[(&str, &str)] = &[
    ("adrs", "Decisions (ADRs)"),
    ("runbooks", "Runbooks"),
    ("diagrams", "Diagrams"),
    ("guides", "Guides"),
];

fn search_form(query: &str) -> String {
    format!(
        "<form action=\"/docs\" method=\"get\" role=\"search\"><input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"Search the docs\" aria-label=\"Search the docs\"> <button type=\"submit\">Search</button></form>",
        esc(query)
    )
}

/// The index of every document by section, or the results of `query`.
pub fn index_html(lab: &str, docs: &Docs, query: Option<&str>) -> String {
    let mut body = String::from("<h1>Docs</h1>");
    body.push_str(&search_form(query.unwrap_or("")));
    if let Some(q) = query.filter(|q| !q.trim().is_empty()) {
        let hits = docs.search(q);
        let _ = write!(
            body,
            "<h2 id=\"results\" data-count=\"{}\">{} result{} for “{}”</h2><ol class=\"hits\">",
            hits.len(),
            hits.len(),
            if hits.len() == 1 { "" } else { "s" },
            esc(q)
        );
        for h in &hits {
            let _ = write!(
                body,
                "<li><a href=\"/docs/{}\">{}</a> <small>{}</small><br><small>{}</small></li>",
                esc(&h.key),
                esc(&h.title),
                esc(&h.section),
                esc(&h.snippet)
            );
        }
        body.push_str("</ol>");
        return crate::html::page(lab, "Docs search", "/docs", None, &body);
    }
    let known: Vec<&str> = SECTIONS.iter().map(|(s, _)| *s).collect();
    let mut sections: Vec<(String, String)> = SECTIONS
        .iter()
        .map(|(s, l)| (s.to_string(), l.to_string()))
        .collect();
    for d in docs.docs.values() {
        if !known.contains(&d.section.as_str()) && !sections.iter().any(|(s, _)| *s == d.section) {
            sections.push((d.section.clone(), d.section.clone()));
        }
    }
    for (section, label) in &sections {
        let in_section: Vec<&Doc> = docs
            .docs
            .values()
            .filter(|d| d.section == *section)
            .collect();
        if in_section.is_empty() {
            continue;
        }
        let _ = write!(
            body,
            "<h2>{}</h2><ul class=\"docs\" id=\"section-{}\">",
            esc(label),
            esc(section)
        );
        for d in in_section {
            let _ = write!(
                body,
                "<li><a href=\"/docs/{}\">{}</a> <small>{}</small></li>",
                esc(&d.key),
                esc(&d.title),
                esc(&d.key)
            );
        }
        body.push_str("</ul>");
    }
    crate::html::page(lab, "Docs", "/docs", None, &body)
}

/// One document's page; the Mermaid script only where there is a diagram to draw.
pub fn doc_html(lab: &str, doc: &Doc) -> String {
    let mut body = search_form("");
    let _ = write!(
        body,
        "<article class=\"doc\" data-doc=\"{}\">{}</article>",
        esc(&doc.key),
        doc.html
    );
    if doc.has_diagram {
        let _ = write!(
            body,
            "<noscript><p><small>The diagrams are drawn by a script; without it their source is shown.</small></p></noscript><script src=\"{}\"></script>",
            mermaid_path()
        );
    }
    crate::html::page(lab, &doc.title, "/docs", None, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs() -> Docs {
        Docs::from_files([
            (
                "docs/runbooks/node-down.md",
                "# Node down\n\nWhen a node is down, see [the diagram](../diagrams/architecture.md#top) and [ADR](../adrs/0001-k3s.md).\n\n<script>alert(1)</script>\n\n[evil](javascript:alert(1)) [web](https://k3s.io/)\n",
            ),
            (
                "docs/diagrams/architecture.md",
                "# Architecture\n\n```mermaid\nflowchart LR\n  a[\"<b>x</b>\"] --> b\n```\n",
            ),
            (
                "docs/adrs/0001-k3s.md",
                "# 1. K3s as the distribution\n\nK3s is small; etcd is embedded.\n",
            ),
            (
                "docs/host-preparation.md",
                "# Preparing the hosts\n\nInstall Debian and open ssh. Nodes need swap off.\n",
            ),
            ("infrastructure/k3s/README.md", "# not a doc page\n"),
        ])
    }

    #[test]
    fn markdown_renders_with_raw_html_escaped_and_links_resolved() {
        let d = docs();
        let rb = d.get("runbooks/node-down").unwrap();
        assert_eq!(rb.title, "Node down");
        assert!(rb.html.contains("<h1>Node down</h1>"), "{}", rb.html);
        assert!(
            rb.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{}",
            rb.html
        );
        assert!(!rb.html.contains("<script>"));
        assert!(
            rb.html.contains("href=\"/docs/diagrams/architecture#top\""),
            "{}",
            rb.html
        );
        assert!(rb.html.contains("href=\"/docs/adrs/0001-k3s\""));
        assert!(rb.html.contains("href=\"https://k3s.io/\""));
        assert!(!rb.html.contains("javascript:"), "{}", rb.html);
        assert!(!rb.has_diagram);
        let arch = d.get("diagrams/architecture").unwrap();
        assert!(arch.has_diagram);
        assert!(
            arch.html.contains("<pre class=\"mermaid\">flowchart LR\n  a[&quot;&lt;b&gt;x&lt;/b&gt;&quot;] --&gt; b\n</pre>"),
            "{}",
            arch.html
        );
        let page = doc_html("lab", arch);
        assert!(page.contains(&format!("<script src=\"{}\"></script>", mermaid_path())));
        assert!(!doc_html("lab", rb).contains("<script"));
        assert_eq!(d.get("guides/host-preparation").map(|_| ()), None);
        assert_eq!(d.get("host-preparation").unwrap().section, "guides");
        assert!(d.get("../infrastructure/k3s/README").is_none());
        assert_eq!(d.docs.len(), 4);
    }

    #[test]
    fn traversal_and_odd_paths_are_refused_before_lookup() {
        for bad in [
            "../etc/passwd",
            "runbooks/../../etc/passwd",
            "/etc/passwd",
            "runbooks//x",
            "runbooks/.",
            "a\\b",
            "a\u{0}b",
            "",
        ] {
            assert!(key_of(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            key_of("runbooks/node-down.md").unwrap(),
            "runbooks/node-down"
        );
        assert_eq!(key_of("adrs/0001-k3s").unwrap(), "adrs/0001-k3s");
    }

    #[test]
    fn search_finds_every_word_in_titles_first() {
        let d = docs();
        let hits = d.search("K3S");
        assert_eq!(hits[0].key, "adrs/0001-k3s", "{hits:?}");
        assert!(hits.iter().any(|h| h.key == "runbooks/node-down") || hits.len() == 1);
        let both = d.search("swap nodes");
        assert_eq!(both.len(), 1);
        assert_eq!(both[0].key, "host-preparation");
        assert!(both[0].snippet.contains("swap off"), "{}", both[0].snippet);
        assert!(d.search("nothing-like-this").is_empty());
        assert!(d.search("   ").is_empty());
        let page = index_html("lab", &d, Some("<b>k3s</b>"));
        assert!(page.contains("&lt;b&gt;k3s&lt;/b&gt;"));
        assert!(page.contains("data-count=\"0\""));
        let index = index_html("lab", &d, None);
        assert!(index.contains("id=\"section-runbooks\""));
        assert!(index.contains("href=\"/docs/adrs/0001-k3s\""));
    }
}
