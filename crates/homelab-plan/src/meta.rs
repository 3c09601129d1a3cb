//! Names, labels and small manifest builders shared by the components; pure functions.

use serde_json::{Map, Value, json};

/// `app.kubernetes.io/part-of` on everything the lab owns.
pub const PART_OF: &str = "homelab";
/// `app.kubernetes.io/managed-by` on everything the lab owns.
pub const MANAGED_BY: &str = "homelab";

/// Marks an object `homelab apply --prune` never deletes, even when the plan no longer has it
/// (the static volumes of existing NFS data). homelab-kube's prune reads the same pair.
pub const KEEP_ANNOTATION: &str = "homelab-rs.github.io/prune";
pub const KEEP_VALUE: &str = "never";

/// The recommended labels (seeds' architecture: name, instance, component, part-of, managed-by).
pub fn labels(name: &str, instance: &str, component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    })
}

/// The labels that select an app's pods (a stable subset of `labels`).
pub fn selector(name: &str, instance: &str) -> Value {
    json!({
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
    })
}

/// `metadata` with name, optional namespace and labels.
pub fn metadata(name: &str, namespace: Option<&str>, labels: Value) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    if let Some(ns) = namespace {
        m.insert("namespace".into(), json!(ns));
    }
    m.insert("labels".into(), labels);
    Value::Object(m)
}

/// A Namespace, optionally with Pod Security Admission labels.
pub fn namespace(name: &str, pod_security: Option<&str>) -> Value {
    let mut l = labels(name, name, "namespace");
    if let Some(level) = pod_security {
        for mode in ["enforce", "audit", "warn"] {
            l[format!("pod-security.kubernetes.io/{mode}")] = json!(level);
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": l},
    })
}

/// A PersistentVolumeClaim on the given storage class.
pub fn pvc(
    name: &str,
    namespace: &str,
    labels: Value,
    size: &str,
    class: &str,
    mode: &str,
) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(name, Some(namespace), labels),
        "spec": {
            "accessModes": [mode],
            "storageClassName": class,
            "resources": {"requests": {"storage": size}},
        },
    })
}

/// A ClusterIP Service.
pub fn service(name: &str, namespace: &str, labels: Value, selector: Value, ports: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, Some(namespace), labels),
        "spec": {"type": "ClusterIP", "selector": selector, "ports": ports},
    })
}

/// The cert-manager ClusterIssuer every Ingress uses.
pub fn cluster_issuer(production: bool) -> &'static str {
    if production {
        "letsencrypt-production"
    } else {
        "letsencrypt-staging"
    }
}

/// An HTTPS Ingress through Traefik with a certificate from cert-manager (ADR-0001).
pub fn ingress(
    name: &str,
    namespace: &str,
    labels: Value,
    host: &str,
    service: &str,
    port: u16,
    issuer: &str,
) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": ingress_annotations(issuer),
        },
        "spec": {
            "ingressClassName": "traefik",
            "tls": [{"hosts": [host], "secretName": format!("{name}-tls")}],
            "rules": [{
                "host": host,
                "http": {"paths": [{
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": service, "port": {"number": port}}},
                }]},
            }],
        },
    })
}

/// What every Ingress of the lab carries: a certificate from `issuer`, HTTPS only, through
/// Traefik (ADR-0001).
pub fn ingress_annotations(issuer: &str) -> Value {
    json!({
        "cert-manager.io/cluster-issuer": issuer,
        "traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
        "traefik.ingress.kubernetes.io/router.tls": "true",
    })
}

/// The `ingress:` values of the charts that take the common layout (`className`, `hosts` with
/// paths, `tls`), for one host served at `/`.
pub fn chart_ingress(host: &str, tls_secret: &str, issuer: &str) -> Value {
    json!({
        "enabled": true,
        "className": "traefik",
        "annotations": ingress_annotations(issuer),
        "hosts": [{"host": host, "paths": [{"path": "/", "pathType": "Prefix"}]}],
        "tls": [{"secretName": tls_secret, "hosts": [host]}],
    })
}

/// A hardened container security context for images that can run as a non-root user.
pub fn restricted_security_context(user: u32) -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": user,
        "runAsGroup": user,
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// `labels` as a map, for objects built outside `json!`.
pub fn labels_map(
    name: &str,
    instance: &str,
    component: &str,
) -> std::collections::BTreeMap<String, String> {
    labels(name, instance, component)
        .as_object()
        .expect("labels are an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// A short, stable hash of a text (FNV-1a, 8 hex digits) for names that must change when
/// the content does; not for security.
pub fn short_hash(text: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}
