//! Pure helpers over JSON manifests: dropping server-written fields before comparing, hiding
//! Secret values, rendering YAML. Must not talk to a cluster.

use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Annotation with a digest of the manifest homelab last applied to an object (Secret values
/// left out). Together with the live object still holding every field of the manifest, it
/// proves a server-side apply would change nothing, so a re-apply can skip the request.
pub(crate) const ANNOTATION_APPLIED_DIGEST: &str = "homelab-rs.github.io/applied-digest";

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
            // Bookkeeping of ours that changes with every change; a diff shows the change itself.
            if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
                annotations.remove(ANNOTATION_APPLIED_DIGEST);
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

/// The digest of a manifest as planned: SHA-256 of its JSON with keys sorted and, for a
/// Secret, every value blanked (keys kept), so the annotation says nothing about the values.
pub(crate) fn applied_digest(manifest: &Value) -> String {
    let mut m = manifest.clone();
    if is_secret(&m) {
        for field in ["data", "stringData"] {
            if let Some(Value::Object(map)) = m.get_mut(field) {
                for v in map.values_mut() {
                    *v = Value::String(String::new());
                }
            }
        }
    }
    let bytes = serde_json::to_vec(&sorted(&m)).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&bytes))
}

/// The manifest as homelab applies it: the ApplySet member label and the digest annotation.
pub(crate) fn prepared(manifest: &Value, applyset_id: &str) -> Value {
    let digest = applied_digest(manifest);
    let mut object = crate::applyset::with_member_label(manifest, applyset_id);
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(ANNOTATION_APPLIED_DIGEST.to_string(), Value::String(digest));
        }
    }
    object
}

/// Whether server-side applying `prepared` (see [`prepared`]) to `live` would change nothing:
/// the live object carries the same digest (so no field was added to or dropped from the
/// manifest since the last apply) and still holds every field of the manifest with the same
/// value (so nobody changed one of ours since). Anything the server normalises differently
/// makes this false, and the object is simply applied.
pub(crate) fn already_applied(prepared: &Value, live: &Value) -> bool {
    let digest = |o: &Value| {
        o.pointer("/metadata/annotations")
            .and_then(|a| a.get(ANNOTATION_APPLIED_DIGEST))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    if digest(prepared).is_none() || digest(prepared) != digest(live) {
        return false;
    }
    let mut expected = prepared.clone();
    if is_secret(&expected)
        && let Some(map) = expected.as_object_mut()
        && let Some(Value::Object(string_data)) = map.remove("stringData")
    {
        // The API stores `stringData` base64-encoded in `data`.
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(data) = data.as_object_mut() {
            for (k, v) in string_data {
                let Some(text) = v.as_str() else { return false };
                data.insert(
                    k,
                    Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
    }
    contains(live, &expected)
}

/// Whether `have` holds everything `want` says: objects key by key, lists item by item with
/// the same length, other values equal. A `null` in `want` asks for nothing.
fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (_, Value::Null) => true,
        (Value::Object(h), Value::Object(w)) => w.iter().all(|(k, wv)| match h.get(k) {
            Some(hv) => contains(hv, wv),
            None => wv.is_null(),
        }),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(hv, wv)| contains(hv, wv))
        }
        (Value::Number(h), Value::Number(w)) => h.as_f64() == w.as_f64(),
        (h, w) => h == w,
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
    fn an_object_holding_the_manifest_with_its_digest_needs_no_apply() {
        let manifest = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "apps", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]}]}}}});
        let applied = prepared(&manifest, "applyset-x-v1");
        assert_eq!(
            applied["metadata"]["labels"]["applyset.kubernetes.io/part-of"],
            "applyset-x-v1"
        );
        // What the server keeps: our fields plus defaults and bookkeeping.
        let mut live = applied.clone();
        live["metadata"]["resourceVersion"] = json!("12");
        live["metadata"]["labels"]["added-by-someone"] = json!("x");
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        live["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = json!("TCP");
        live["status"] = json!({"replicas": 1});
        assert!(already_applied(&applied, &live));

        // Somebody changed one of our fields: apply again.
        let mut drifted = live.clone();
        drifted["spec"]["replicas"] = json!(3);
        assert!(!already_applied(&applied, &drifted));
        // A container added by someone else makes the list differ.
        let mut longer = live.clone();
        longer["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar"}));
        assert!(!already_applied(&applied, &longer));
        // The manifest dropped a field: the live object still holds all the new manifest's
        // fields, but the digest differs, so the apply runs and removes the field.
        let mut smaller = manifest.clone();
        smaller["metadata"]["labels"] = json!({});
        let smaller = prepared(&smaller, "applyset-x-v1");
        assert!(!already_applied(&smaller, &live));
        // Never applied by this version (no digest): apply.
        let mut old = live.clone();
        old["metadata"]["annotations"] = json!({});
        assert!(!already_applied(&applied, &old));
        // The digest is not part of what a diff compares.
        assert!(
            comparable(&live)["metadata"]["annotations"]
                .get(ANNOTATION_APPLIED_DIGEST)
                .is_none()
        );
    }

    #[test]
    fn secrets_compare_their_values_but_the_digest_does_not_depend_on_them() {
        let secret = |v: &str| {
            json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "data"}, "type": "Opaque",
            "stringData": {"password": v}})
        };
        assert_eq!(
            applied_digest(&secret("one")),
            applied_digest(&secret("two"))
        );
        let applied = prepared(&secret("hunter2-secret"), "applyset-x-v1");
        let mut live = applied.clone();
        live.as_object_mut().unwrap().remove("stringData");
        live["data"] = json!({"password": "aHVudGVyMi1zZWNyZXQ="});
        assert!(already_applied(&applied, &live));
        // A rotated value in the secrets file: same digest, different data, so apply.
        let rotated = prepared(&secret("rotated-value"), "applyset-x-v1");
        assert!(!already_applied(&rotated, &live));
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
