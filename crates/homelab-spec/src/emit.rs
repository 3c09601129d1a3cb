//! Writes JSON values as block-style YAML that every YAML 1.1 and 1.2 reader (kubectl, Helm,
//! K3s) reads back identically; deterministic (key order as given), no I/O.

use std::fmt::Write as _;

use serde_json::Value;

/// The value as a YAML document (without the `---` marker), ending with a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, a, 0),
        other => {
            write_inline(&mut out, other, 0);
            out.push('\n');
        }
    }
    out
}

/// Several documents separated by `---`, as `kubectl apply -f` reads them.
pub fn to_yaml_documents<'a>(values: impl IntoIterator<Item = &'a Value>) -> String {
    let mut out = String::new();
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml(v));
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    for _ in 0..indent {
        out.push(' ');
    }
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        write_scalar_str(out, k, true);
        out.push(':');
        write_value_after_key(out, v, indent);
    }
}

fn write_value_after_key(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            pad(out, indent + 2);
            write_map(out, m, indent + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            pad(out, indent + 2);
            write_seq(out, a, indent + 2);
        }
        Value::String(s) if is_block(s) => {
            out.push(' ');
            write_block(out, s, indent + 2);
        }
        other => {
            out.push(' ');
            write_inline(out, other, indent);
            out.push('\n');
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => write_map(out, m, indent + 2),
            Value::Array(a) if !a.is_empty() => write_seq(out, a, indent + 2),
            Value::String(s) if is_block(s) => write_block(out, s, indent + 2),
            other => {
                write_inline(out, other, indent);
                out.push('\n');
            }
        }
    }
}

fn write_inline(out: &mut String, v: &Value, _indent: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_scalar_str(out, s, false),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

/// Multi-line strings are written as literal blocks, which keep them readable in manifests.
fn is_block(s: &str) -> bool {
    s.contains('\n')
        && !s.trim().is_empty()
        && !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
        && !s.contains('\r')
}

fn write_block(out: &mut String, s: &str, indent: usize) {
    out.push('|');
    if s.starts_with(' ') || s.starts_with('\n') {
        out.push('2');
    }
    let trailing = s.len() - s.trim_end_matches('\n').len();
    match trailing {
        0 => out.push('-'),
        1 => {}
        _ => out.push('+'),
    }
    out.push('\n');
    let body = if trailing == 1 {
        &s[..s.len() - 1]
    } else {
        s.trim_end_matches('\n')
    };
    for line in body.split('\n') {
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
    if trailing > 1 {
        for _ in 0..trailing - 1 {
            out.push('\n');
        }
    }
}

fn write_scalar_str(out: &mut String, s: &str, is_key: bool) {
    if is_plain_safe(s, is_key) {
        out.push_str(s);
    } else if s.chars().any(|c| c.is_control()) {
        write_double_quoted(out, s);
    } else {
        out.push('\'');
        out.push_str(&s.replace('\'', "''"));
        out.push('\'');
    }
}

fn write_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Whether a string can be written without quotes and still read back as the same string by
/// YAML 1.1 readers (which take `yes`, `on`, `0755` and `1:20` for other types) and 1.2 ones.
fn is_plain_safe(s: &str, is_key: bool) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let second_ok = |s: &str| {
        s.len() > 1 && !s[1..].starts_with(|c: char| c.is_ascii_digit() || c == ' ' || c == '.')
    };
    if !(first.is_ascii_alphabetic()
        || first == '/'
        || first == '_'
        || first == '$'
        || ((first == '.' || first == '-') && second_ok(s)))
    {
        return false;
    }
    if s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    const RESERVED: &[&str] = &[
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", ".nan", ".inf",
        "-.inf", "+.inf", "~",
    ];
    if RESERVED.contains(&lower.as_str()) {
        return false;
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-./@+=$%()~^:;<>? ".contains(c);
    if !s.chars().all(allowed) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.contains("  ") {
        return false;
    }
    if is_key && s.contains(' ') {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_kubernetes_style_yaml() {
        let v = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "x"}},
            "data": {"script.sh": "#!/bin/sh\necho hi\n", "port": "8080", "flag": "yes", "empty": "", "list": []},
            "spec": {"ports": [{"port": 80, "name": "http"}], "args": ["--a", "b: c"]},
        });
        assert_eq!(
            to_yaml(&v),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels:\n    app.kubernetes.io/name: x\n\
             data:\n  script.sh: |\n    #!/bin/sh\n    echo hi\n  port: '8080'\n  flag: 'yes'\n  empty: ''\n  list: []\n\
             spec:\n  ports:\n    - port: 80\n      name: http\n  args:\n    - --a\n    - 'b: c'\n"
        );
    }

    #[test]
    fn quotes_what_yaml_1_1_would_misread() {
        for s in [
            "0755", "1:20", "on", "No", "~", "1e3", ".5", "-1", "@x", "a #b", "*x", "!x", "&x",
            "%x", "[x", "{x", "|", ">", "- x", "x:",
        ] {
            let out = to_yaml(&json!(s));
            assert!(
                out.starts_with('\'') || out.starts_with('"'),
                "{s} -> {out}"
            );
        }
        for s in [
            "v1.34.2+k3s1",
            "https://ntfy.sh",
            "nfs-client",
            "/volume1/k8s-data",
            "192.168.2.1",
        ] {
            let out = to_yaml(&json!(s));
            if s.starts_with(|c: char| c.is_ascii_digit()) {
                assert!(out.starts_with('\''), "{s}");
            } else {
                assert_eq!(out, format!("{s}\n"));
            }
        }
    }

    #[test]
    fn blocks_keep_trailing_newlines_and_leading_spaces() {
        assert_eq!(to_yaml(&json!({"a": "x\ny"})), "a: |-\n  x\n  y\n");
        assert_eq!(to_yaml(&json!({"a": "x\n\n"})), "a: |+\n  x\n\n");
        assert_eq!(to_yaml(&json!({"a": "  x\ny\n"})), "a: |2\n    x\n  y\n");
        assert_eq!(to_yaml(&json!({"a": "x\n\ny\n"})), "a: |\n  x\n\n  y\n");
    }
}

#[cfg(test)]
mod roundtrip {
    use proptest::prelude::*;
    use serde_json::Value;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[ -~\n\t]{0,12}".prop_map(Value::String),
            prop::sample::select(vec![
                "yes", "0755", "1:20", "null", "~", "- a", "a: b", "#x", " x", "x ", "\n", "x\n",
                "x\n\n", " \ny", "é", "1e5", ".inf"
            ])
            .prop_map(|s| Value::String(s.to_string())),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(("[a-zA-Z0-9 ._:/-]{0,8}", inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn emitted_yaml_reads_back_as_the_same_value(v in json_value()) {
            let text = super::to_yaml(&v);
            let node = crate::yaml::parse(&text).map_err(|d| TestCaseError::fail(format!("{text:?}: {d:?}")))?;
            prop_assert_eq!(node.to_json(), v, "{}", text);
        }
    }
}
