//! Finds the parts of a spec that may be secret values, so that no snippet of any diagnostic
//! ever shows them; it only points at text, it never decides whether a spec is valid.
//!
//! A value counts as possibly secret when its key (or a key above it) looks like one
//! (`password`, `apiToken`, `secretEnv`, ...), except the name in a `{secret: NAME}`
//! reference, which is what belongs in the file. Two passes cover the cases: the parsed tree
//! (multi-line values, flow mappings) and a line scan that also works on text that did not
//! parse.

use crate::de::looks_secret;
use crate::diag::Span;
use crate::yaml::{Node, Resolved, Value};

/// The key whose value names a secret instead of holding it.
const REFERENCE_KEY: &str = "secret";

/// The top-level section that says how the secrets file is encrypted: its name looks like a
/// secret, its settings (a server address, a key name) are not, and the keys below it are
/// judged one by one like any other.
const SETTINGS_KEY: &str = "secrets";

/// Spans of every scalar under a secret-looking key in a parsed document.
pub fn in_tree(root: &Node) -> Vec<Span> {
    let mut out = Vec::new();
    if let Value::Map(entries) = &root.value {
        for (key, value) in entries {
            let name = key.scalar_text().unwrap_or_default();
            let settings = name == SETTINGS_KEY && matches!(value.value, Value::Map(_));
            walk(value, !settings && looks_secret(name), &mut out);
        }
    } else {
        walk(root, false, &mut out);
    }
    out
}

fn walk(node: &Node, secret: bool, out: &mut Vec<Span>) {
    match &node.value {
        Value::Scalar { .. } => {
            if secret && node.resolve() != Some(Resolved::Null) {
                out.push(node.span);
            }
        }
        Value::Seq(items) => {
            for item in items {
                walk(item, secret, out);
            }
        }
        Value::Map(entries) => {
            for (key, value) in entries {
                let name = key.scalar_text().unwrap_or_default();
                if name == REFERENCE_KEY && value.scalar_text().is_some() {
                    continue;
                }
                walk(value, secret || looks_secret(name), out);
            }
        }
    }
}

/// Spans of values written after a secret-looking key on the same line (`password: x`,
/// `{apiToken: x}`), found without parsing, so that even a file with a syntax error does not
/// show them.
pub fn in_lines(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        scan_line(line.trim_end_matches(['\n', '\r']), line_start, &mut out);
        line_start += line.len();
    }
    out
}

fn scan_line(line: &str, line_start: usize, out: &mut Vec<Span>) {
    let bytes = line.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' if i == 0 || bytes[i - 1] == b' ' => return,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b':' if bytes.get(i + 1).is_none_or(|b| *b == b' ') => {
                let key = key_before(&line[..i]);
                if looks_secret(key)
                    && key != REFERENCE_KEY
                    && let Some((start, end)) = value_after(line, i + 1, depth > 0)
                {
                    out.push(Span::new(line_start + start, line_start + end));
                    i = end;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// The key that ends right before a `:`, without quotes.
fn key_before(text: &str) -> &str {
    let trimmed = text.trim_end().trim_end_matches(['"', '\'']);
    let start = trimmed
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    &trimmed[start..]
}

/// The byte range of a plain or quoted value starting after `from`, if there is one on this
/// line and it is not a nested collection, a block scalar, an anchor, an alias or a tag.
fn value_after(line: &str, from: usize, in_flow: bool) -> Option<(usize, usize)> {
    let rest = &line[from..];
    let start = from + (rest.len() - rest.trim_start().len());
    let value = &line[start..];
    let first = value.chars().next()?;
    if matches!(first, '{' | '[' | '|' | '>' | '&' | '*' | '!' | '#') {
        return None;
    }
    let plain_end = |from: usize| {
        let value = &line[from..];
        let stop = value
            .char_indices()
            .find(|&(i, c)| {
                (in_flow && matches!(c, ',' | '}' | ']'))
                    || (c == '#' && (i == 0 || value[..i].ends_with(' ')))
            })
            .map_or(value.len(), |(i, _)| i);
        from + value[..stop].trim_end().len()
    };
    let end = if first == '"' || first == '\'' {
        match value[1..].find(first) {
            None => line.len(),
            Some(i) => {
                let closed = start + 1 + i + 1;
                let after = line[closed..].trim_start();
                let clean = after.is_empty()
                    || after.starts_with('#')
                    || (in_flow && after.starts_with([',', '}', ']']));
                // Text after the closing quote is a syntax error, and may well be the rest
                // of the secret (`'it's'`): hide it too.
                if clean {
                    closed
                } else {
                    plain_end(closed).max(closed)
                }
            }
        }
    } else {
        plain_end(start)
    };
    (end > start).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concealed(text: &str) -> Vec<&str> {
        in_lines(text)
            .into_iter()
            .map(|s| &text[s.start..s.end])
            .collect()
    }

    #[test]
    fn lines_hide_values_of_secret_keys_but_not_reference_names() {
        assert_eq!(concealed("password: hunter2\n"), ["hunter2"]);
        assert_eq!(concealed("  - apiToken: \"a b\" # note\n"), ["\"a b\""]);
        assert_eq!(
            concealed("challenge: {type: http01, apiToken: s3cr3t, x: 1}\n"),
            ["s3cr3t"]
        );
        assert!(concealed("apiToken: {secret: cloudflare-api-token}\n").is_empty());
        assert!(concealed("name: lab\nport: 22\n").is_empty());
        assert_eq!(concealed("token: 'unterminated\n"), ["'unterminated"]);
        assert_eq!(concealed("token: 'it's-secret' # c\n"), ["'it's-secret'"]);
    }

    #[test]
    fn tree_hides_nested_and_multi_line_values() {
        let text = "secretEnv:\n  DB: {secret: db-pass}\n  KEY: |\n    line one\nenv:\n  DB_PASSWORD: x1\n  TZ: Europe/Berlin\n";
        let root = crate::yaml::parse(text).unwrap();
        let spans: Vec<&str> = in_tree(&root)
            .into_iter()
            .map(|s| text[s.start..s.end].trim_end())
            .collect();
        assert_eq!(spans, ["line one", "x1"]);
    }

    #[test]
    fn the_secrets_settings_section_shows_its_settings_but_not_a_token_under_it() {
        let text = "secrets:\n  vault:\n    address: https://bao.lab:8200\n    key: homelab\n    token: hvs.x1\n";
        let root = crate::yaml::parse(text).unwrap();
        let spans: Vec<&str> = in_tree(&root)
            .into_iter()
            .map(|s| text[s.start..s.end].trim_end())
            .collect();
        assert_eq!(spans, ["hvs.x1"]);
        let text = "secrets: x1\n";
        let root = crate::yaml::parse(text).unwrap();
        assert_eq!(in_tree(&root).len(), 1);
    }
}
