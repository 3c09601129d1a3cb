//! Pure helpers over JSON manifests: dropping server-written fields before comparing, hiding
//! Secret values, rendering YAML. Must not talk to a cluster.

use serde_json::{Map, Value};

/// Metadata the server writes on every change; comparing with them would always differ.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
];

/// The object as a person compares it: without server bookkeeping and without `status`.
pub(crate) fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
            for key in SERVER_METADATA {
                metadata.remove(*key);
            }
            if metadata
                .get("annotations")
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
            {
                metadata.remove("annotations");
            }
        }
    }
    object
}

pub(crate) fn is_secret(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// Replaces every Secret value in `before` and `after` with a marker that only says whether
/// it changed, as `kubectl diff` does.
pub(crate) fn redact_secret_pair(mut before: Option<&mut Value>, mut after: Option<&mut Value>) {
    let before_is = before.as_deref().is_some_and(is_secret);
    let after_is = after.as_deref().is_some_and(is_secret);
    if !before_is && !after_is {
        return;
    }
    for field in ["data", "stringData"] {
        let old = field_map(before.as_deref(), field);
        let new = field_map(after.as_deref(), field);
        if let Some(Value::Object(map)) = before.as_deref_mut().and_then(|b| b.get_mut(field)) {
            for (key, value) in map.iter_mut() {
                *value = marker(key, &old, &new, "before");
            }
        }
        if let Some(Value::Object(map)) = after.as_deref_mut().and_then(|a| a.get_mut(field)) {
            for (key, value) in map.iter_mut() {
                *value = marker(key, &new, &old, "after");
            }
        }
    }
}

fn field_map(object: Option<&Value>, field: &str) -> Map<String, Value> {
    object
        .and_then(|o| o.get(field))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn marker(key: &str, mine: &Map<String, Value>, theirs: &Map<String, Value>, tag: &str) -> Value {
    match theirs.get(key) {
        Some(v) if Some(v) != mine.get(key) => Value::String(format!("*** ({tag})")),
        _ => Value::String("***".into()),
    }
}

/// Hides every Secret value of one object.
#[cfg(test)]
pub(crate) fn redact_secret(object: &mut Value) {
    redact_secret_pair(Some(object), None);
}

/// YAML for a diff, keys in a stable order.
pub(crate) fn to_yaml(object: &Value) -> String {
    serde_saphyr::to_string(&sorted(object)).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// `metadata.resourceVersion` of a live object.
pub(crate) fn resource_version(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comparable_drops_server_fields_and_status() {
        let live = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "resourceVersion": "7", "uid": "u", "generation": 2,
                          "managedFields": [{}], "creationTimestamp": "t", "labels": {"a": "b"}},
            "data": {"k": "v"}, "status": {"x": 1}
        });
        assert_eq!(
            comparable(&live),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "x", "labels": {"a": "b"}}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn secret_values_are_replaced_by_markers_that_only_say_what_changed() {
        let mut before = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"same": "c2FtZQ==", "changed": "b2xk", "gone": "Z29uZQ=="}});
        let mut after = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"same": "c2FtZQ==", "changed": "bmV3", "added": "YWRk"}});
        redact_secret_pair(Some(&mut before), Some(&mut after));
        assert_eq!(
            before["data"],
            json!({"same": "***", "changed": "*** (before)", "gone": "***"})
        );
        assert_eq!(
            after["data"],
            json!({"same": "***", "changed": "*** (after)", "added": "***"})
        );
        let text = to_yaml(&before) + &to_yaml(&after);
        for plain in ["c2FtZQ==", "b2xk", "bmV3", "YWRk", "Z29uZQ=="] {
            assert!(!text.contains(plain), "{plain} leaked");
        }
    }

    #[test]
    fn non_secrets_are_left_alone() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}});
        redact_secret(&mut cm);
        assert_eq!(cm["data"]["k"], "v");
        let mut s =
            json!({"apiVersion": "v1", "kind": "Secret", "stringData": {"password": "hunter2"}});
        redact_secret(&mut s);
        assert_eq!(s["stringData"]["password"], "***");
    }
}
