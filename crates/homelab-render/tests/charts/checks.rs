//! Cross-checks of what objects point at, over everything the lab runs (the tree, the
//! templated charts and what the cluster provides): monitors must find a pod or Service with
//! the named port, Services must select pods that have their target ports, Ingresses and
//! IngressRoutes must reach an existing Service port, and the middlewares and ingress
//! classes they name must exist.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::lab::Obj;

pub fn all(objects: &[Obj]) -> Vec<String> {
    let pods = pods(objects);
    let mut findings = Vec::new();
    findings.extend(monitors(objects, &pods));
    findings.extend(services(objects, &pods));
    findings.extend(ingresses(objects));
    findings.extend(ingress_routes(objects));
    findings
}

/// A pod template (or pod) with its labels and container ports.
pub struct Pod<'a> {
    pub owner: &'a Obj,
    pub namespace: String,
    pub labels: Value,
    /// (name, number) of every container port.
    pub ports: Vec<(String, i64)>,
}

fn pods(objects: &[Obj]) -> Vec<Pod<'_>> {
    let mut out = Vec::new();
    for o in objects {
        let template = match o.kind() {
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
                &o.value["spec"]["template"]
            }
            "CronJob" => &o.value["spec"]["jobTemplate"]["spec"]["template"],
            "Pod" => &o.value,
            _ => continue,
        };
        let spec = &template["spec"];
        let ports = ["containers", "initContainers"]
            .iter()
            .flat_map(|k| spec[*k].as_array().into_iter().flatten())
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or_default().to_string(),
                    p["containerPort"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        out.push(Pod {
            owner: o,
            namespace: o.namespace().to_string(),
            labels: template["metadata"]["labels"].clone(),
            ports,
        });
    }
    out
}

/// Whether a label selector (`matchLabels`, `matchExpressions`) selects these labels. An
/// empty selector selects everything, as in the Kubernetes API.
pub fn selects(selector: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    for (k, v) in selector["matchLabels"].as_object().into_iter().flatten() {
        if label(k) != v.as_str() {
            return false;
        }
    }
    for e in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let ok = match e["operator"].as_str().unwrap_or_default() {
            "In" => label(key).is_some_and(|l| values.contains(&l)),
            "NotIn" => label(key).is_none_or(|l| !values.contains(&l)),
            "Exists" => label(key).is_some(),
            "DoesNotExist" => label(key).is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// The namespaces a monitor looks in (`None`: all).
fn monitor_namespaces(m: &Obj) -> Option<BTreeSet<String>> {
    let ns = &m.value["spec"]["namespaceSelector"];
    if ns["any"] == Value::Bool(true) {
        return None;
    }
    let names: BTreeSet<String> = ns["matchNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    Some(if names.is_empty() {
        BTreeSet::from([m.namespace().to_string()])
    } else {
        names
    })
}

fn in_namespaces(namespaces: &Option<BTreeSet<String>>, ns: &str) -> bool {
    namespaces.as_ref().is_none_or(|set| set.contains(ns))
}

fn show_ports(ports: &[(String, i64)]) -> String {
    let list: Vec<String> = ports
        .iter()
        .map(|(n, p)| {
            if n.is_empty() {
                p.to_string()
            } else {
                format!("{n} ({p})")
            }
        })
        .collect();
    if list.is_empty() {
        "no ports".into()
    } else {
        list.join(", ")
    }
}

/// A port given by name or number (`port: metrics`, `targetPort: 9120`) on these ports.
fn has_port(ports: &[(String, i64)], want: &Value) -> bool {
    match want {
        Value::String(s) => match s.parse::<i64>() {
            Ok(n) => ports.iter().any(|(_, p)| *p == n),
            Err(_) => ports.iter().any(|(n, _)| n == s),
        },
        Value::Number(n) => ports.iter().any(|(_, p)| Some(*p) == n.as_i64()),
        _ => false,
    }
}

fn monitors(objects: &[Obj], pods: &[Pod]) -> Vec<String> {
    let mut findings = Vec::new();
    for m in objects.iter().filter(|o| o.kind() == "PodMonitor") {
        let namespaces = monitor_namespaces(m);
        let selector = &m.value["spec"]["selector"];
        let matching: Vec<&Pod> = pods
            .iter()
            .filter(|p| in_namespaces(&namespaces, &p.namespace) && selects(selector, &p.labels))
            .collect();
        if matching.is_empty() {
            findings.push(format!(
                "{}: its selector {} matches no pod in {}",
                m.id(),
                selector,
                show_namespaces(&namespaces)
            ));
            continue;
        }
        for ep in m.value["spec"]["podMetricsEndpoints"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let want = ep
                .get("port")
                .or_else(|| ep.get("portNumber"))
                .or_else(|| ep.get("targetPort"));
            let Some(want) = want else {
                continue;
            };
            if !matching.iter().any(|p| has_port(&p.ports, want)) {
                let seen: Vec<String> = matching
                    .iter()
                    .map(|p| format!("{} has {}", p.owner.id(), show_ports(&p.ports)))
                    .collect();
                findings.push(format!(
                    "{}: scrapes port {want} but no pod it selects has it: {}",
                    m.id(),
                    seen.join("; ")
                ));
            }
        }
    }
    for m in objects.iter().filter(|o| o.kind() == "ServiceMonitor") {
        let namespaces = monitor_namespaces(m);
        let selector = &m.value["spec"]["selector"];
        let matching: Vec<(&Obj, Vec<(String, i64)>)> = objects
            .iter()
            .filter(|s| s.kind() == "Service")
            .filter(|s| {
                in_namespaces(&namespaces, s.namespace())
                    && selects(selector, &s.value["metadata"]["labels"])
            })
            .map(|s| (s, service_ports(s)))
            .collect();
        if matching.is_empty() {
            findings.push(format!(
                "{}: its selector {} matches no Service in {}",
                m.id(),
                selector,
                show_namespaces(&namespaces)
            ));
            continue;
        }
        for ep in m.value["spec"]["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(want) = ep.get("port").or_else(|| ep.get("targetPort")) else {
                continue;
            };
            if !matching.iter().any(|(_, ports)| has_port(ports, want)) {
                let seen: Vec<String> = matching
                    .iter()
                    .map(|(s, ports)| format!("{} has {}", s.id(), show_ports(ports)))
                    .collect();
                findings.push(format!(
                    "{}: scrapes port {want} but no Service it selects has it: {}",
                    m.id(),
                    seen.join("; ")
                ));
            }
        }
    }
    findings
}

fn show_namespaces(namespaces: &Option<BTreeSet<String>>) -> String {
    match namespaces {
        None => "any namespace".into(),
        Some(set) => format!(
            "namespace {}",
            set.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

fn service_ports(s: &Obj) -> Vec<(String, i64)> {
    s.value["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["port"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

/// Services with a selector must select a pod, and a named `targetPort` must be a port name
/// of the pods they select (a number is not checked: a container need not declare it).
fn services(objects: &[Obj], pods: &[Pod]) -> Vec<String> {
    let mut findings = Vec::new();
    for s in objects.iter().filter(|o| o.kind() == "Service") {
        let selector = &s.value["spec"]["selector"];
        let Some(labels) = selector.as_object().filter(|m| !m.is_empty()) else {
            continue;
        };
        let as_selector = serde_json::json!({"matchLabels": labels});
        let matching: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.namespace == s.namespace() && selects(&as_selector, &p.labels))
            .collect();
        if matching.is_empty() {
            findings.push(format!(
                "{}: its selector {} matches no pod in namespace {}",
                s.id(),
                selector,
                s.namespace()
            ));
            continue;
        }
        for p in s.value["spec"]["ports"].as_array().into_iter().flatten() {
            let Some(target) = p["targetPort"].as_str() else {
                continue;
            };
            if target.parse::<i64>().is_ok() {
                continue;
            }
            if !matching
                .iter()
                .any(|pod| pod.ports.iter().any(|(n, _)| n == target))
            {
                let seen: Vec<String> = matching
                    .iter()
                    .map(|p| format!("{} has {}", p.owner.id(), show_ports(&p.ports)))
                    .collect();
                findings.push(format!(
                    "{}: targetPort {target} is no port of the pods it selects: {}",
                    s.id(),
                    seen.join("; ")
                ));
            }
        }
    }
    findings
}

fn find<'a>(objects: &'a [Obj], kind: &str, namespace: &str, name: &str) -> Option<&'a Obj> {
    objects
        .iter()
        .find(|o| o.kind() == kind && o.namespace() == namespace && o.name() == name)
}

/// A Service port by number or name, or why it cannot be reached.
fn backend(objects: &[Obj], namespace: &str, service: &str, port: &Value) -> Result<(), String> {
    let Some(s) = find(objects, "Service", namespace, service) else {
        return Err(format!("Service {namespace}/{service} does not exist"));
    };
    let ports = service_ports(s);
    if has_port(&ports, port) {
        Ok(())
    } else {
        Err(format!(
            "{} has no port {port} (it has {})",
            s.id(),
            show_ports(&ports)
        ))
    }
}

/// Middlewares named in Traefik's Ingress annotation: `<namespace>-<name>@kubernetescrd`.
fn annotated_middlewares(objects: &[Obj], o: &Obj) -> Vec<String> {
    let mut findings = Vec::new();
    let Some(list) =
        o.value["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"]
            .as_str()
    else {
        return findings;
    };
    for m in list.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let Some(reference) = m.strip_suffix("@kubernetescrd") else {
            continue;
        };
        let exists = objects.iter().any(|x| {
            x.kind() == "Middleware" && format!("{}-{}", x.namespace(), x.name()) == reference
        });
        if !exists {
            findings.push(format!(
                "{}: the middleware {m} it names does not exist",
                o.id()
            ));
        }
    }
    findings
}

fn ingresses(objects: &[Obj]) -> Vec<String> {
    let classes: BTreeSet<&str> = objects
        .iter()
        .filter(|o| o.kind() == "IngressClass")
        .map(Obj::name)
        .collect();
    let mut findings = Vec::new();
    for o in objects.iter().filter(|o| o.kind() == "Ingress") {
        let spec = &o.value["spec"];
        if let Some(class) = spec["ingressClassName"].as_str()
            && !classes.contains(class)
        {
            findings.push(format!(
                "{}: IngressClass {class} does not exist (there are: {})",
                o.id(),
                classes.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let mut backends: Vec<&Value> = spec["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["http"]["paths"].as_array().into_iter().flatten())
            .map(|p| &p["backend"])
            .collect();
        if spec.get("defaultBackend").is_some() {
            backends.push(&spec["defaultBackend"]);
        }
        for b in backends {
            let svc = &b["service"];
            let Some(name) = svc["name"].as_str() else {
                continue;
            };
            let port = svc["port"]
                .get("number")
                .or_else(|| svc["port"].get("name"))
                .cloned()
                .unwrap_or(Value::Null);
            if let Err(e) = backend(objects, o.namespace(), name, &port) {
                findings.push(format!("{}: backend {name}:{port}: {e}", o.id()));
            }
        }
        findings.extend(annotated_middlewares(objects, o));
    }
    findings
}

fn ingress_routes(objects: &[Obj]) -> Vec<String> {
    let mut findings = Vec::new();
    for o in objects.iter().filter(|o| o.kind() == "IngressRoute") {
        for route in o.value["spec"]["routes"].as_array().into_iter().flatten() {
            for s in route["services"].as_array().into_iter().flatten() {
                let name = s["name"].as_str().unwrap_or_default();
                let ns = s["namespace"].as_str().unwrap_or(o.namespace());
                match s["kind"].as_str().unwrap_or("Service") {
                    "TraefikService" => {
                        if !name.ends_with("@internal")
                            && find(objects, "TraefikService", ns, name).is_none()
                        {
                            findings.push(format!(
                                "{}: TraefikService {ns}/{name} does not exist",
                                o.id()
                            ));
                        }
                    }
                    _ => {
                        if let Err(e) = backend(objects, ns, name, &s["port"]) {
                            findings.push(format!("{}: service {name}: {e}", o.id()));
                        }
                    }
                }
            }
            for m in route["middlewares"].as_array().into_iter().flatten() {
                let name = m["name"].as_str().unwrap_or_default();
                let ns = m["namespace"].as_str().unwrap_or(o.namespace());
                if find(objects, "Middleware", ns, name).is_none() {
                    findings.push(format!("{}: Middleware {ns}/{name} does not exist", o.id()));
                }
            }
        }
    }
    findings
}
