//! Helm values arithmetic: the user's values deep-merged over the generated ones, the
//! difference between the two for `homelab plan`, and Helm's own coalescing of a chart's
//! defaults with a values file (for checks against the chart). Pure functions on JSON.

use serde::Serialize;
use serde_json::{Map, Value};

/// Deep-merges `over` into `base`: mappings merge key by key, anything else (lists
/// included) replaces what was there. A `null` is kept as `null`, so the generated key is
/// gone and Helm, which reads `null` as "delete", drops the chart's default for it too.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// What Helm makes of a chart's defaults and one values file over them: mappings merge,
/// other values replace, and a `null` deletes the key (`helm template` sees no such key).
pub fn coalesce(defaults: &Value, over: &Value) -> Value {
    match (defaults, over) {
        (Value::Object(d), Value::Object(o)) => {
            let mut out = d.clone();
            for (k, v) in o {
                if v.is_null() {
                    out.remove(k);
                    continue;
                }
                let merged = match out.get(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        coalesce(existing, v)
                    }
                    _ => strip_nulls(v),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (_, o) => strip_nulls(o),
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// One difference between the generated values and the merged ones.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueChange {
    /// Where, as keys from the top: `controller.resources.limits`.
    pub path: String,
    /// The generated value; absent when the key is new.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    /// The merged value; `null` when the key is removed.
    pub to: Value,
}

impl ValueChange {
    /// `+ a.b: 2`, `~ a.b: 1 -> 2`, `- a.b (was 1)`, in one line each.
    /// Values under a secret-looking key are shown as `*****`.
    pub fn describe(&self) -> String {
        let hidden = self
            .path
            .split('.')
            .any(|k| homelab_spec::de::looks_secret(k.trim_matches('"')));
        let show = |v: &Value| {
            if hidden {
                "*****".to_string()
            } else {
                serde_json::to_string(v).unwrap_or_default()
            }
        };
        match (&self.from, &self.to) {
            (None, Value::Null) => format!("+ {}: null (removes the chart's default)", self.path),
            (None, to) => format!("+ {}: {}", self.path, show(to)),
            (Some(from), Value::Null) => format!("- {} (was {})", self.path, show(from)),
            (Some(from), to) => format!("~ {}: {} -> {}", self.path, show(from), show(to)),
        }
    }
}

/// The leaves where `merged` differs from `generated`, in the order of the keys.
pub fn changes(generated: &Value, merged: &Value) -> Vec<ValueChange> {
    let mut out = Vec::new();
    diff(generated, merged, &mut Vec::new(), &mut out);
    out
}

fn diff(generated: &Value, merged: &Value, path: &mut Vec<String>, out: &mut Vec<ValueChange>) {
    match (generated, merged) {
        (Value::Object(g), Value::Object(m)) => {
            for (k, mv) in m {
                path.push(k.clone());
                match g.get(k) {
                    Some(gv) => diff(gv, mv, path, out),
                    None => out.push(ValueChange {
                        path: dotted(path),
                        from: None,
                        to: mv.clone(),
                    }),
                }
                path.pop();
            }
        }
        (g, m) if g != m => out.push(ValueChange {
            path: dotted(path),
            from: Some(g.clone()),
            to: m.clone(),
        }),
        _ => {}
    }
}

/// Keys joined with `.`, quoting keys that hold a dot themselves (annotation names).
pub fn dotted(path: &[String]) -> String {
    path.iter()
        .map(|k| {
            if k.contains('.') || k.is_empty() {
                format!("\"{k}\"")
            } else {
                k.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_merge_lists_replace_null_removes() {
        let mut base = json!({
            "a": {"x": 1, "y": [1, 2]},
            "b": "keep",
            "c": {"gone": true},
        });
        let over = json!({"a": {"y": [3], "z": {"n": 1}}, "c": null, "d": null});
        let generated = base.clone();
        merge(&mut base, &over);
        assert_eq!(
            base,
            json!({"a": {"x": 1, "y": [3], "z": {"n": 1}}, "b": "keep", "c": null, "d": null})
        );
        let described: Vec<String> = changes(&generated, &base)
            .iter()
            .map(ValueChange::describe)
            .collect();
        assert_eq!(
            described,
            [
                "~ a.y: [1,2] -> [3]",
                "+ a.z: {\"n\":1}",
                "- c (was {\"gone\":true})",
                "+ d: null (removes the chart's default)",
            ]
        );
    }

    #[test]
    fn secret_looking_values_are_not_shown() {
        let c = ValueChange {
            path: "auth.adminPassword".into(),
            from: None,
            to: json!("hunter2"),
        };
        assert_eq!(c.describe(), "+ auth.adminPassword: *****");
    }

    #[test]
    fn a_map_replaces_a_scalar_and_back() {
        let mut base = json!({"a": 1, "b": {"c": 2}});
        merge(&mut base, &json!({"a": {"x": 1}, "b": 3}));
        assert_eq!(base, json!({"a": {"x": 1}, "b": 3}));
    }

    #[test]
    fn coalescing_deletes_nulls_like_helm() {
        let defaults = json!({"a": {"x": 1, "y": 2}, "b": [1], "c": 3});
        let values = json!({"a": {"x": null, "z": {"q": null, "r": 1}}, "c": null});
        assert_eq!(
            coalesce(&defaults, &values),
            json!({"a": {"y": 2, "z": {"r": 1}}, "b": [1]})
        );
    }

    #[test]
    fn paths_quote_keys_with_dots() {
        assert_eq!(
            dotted(&["service".into(), "metallb.io/ip".into()]),
            "service.\"metallb.io/ip\""
        );
    }
}
