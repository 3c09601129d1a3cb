//! A small validator for custom resources: each object is checked against the
//! `openAPIV3Schema` of its CRD (test data from the upstream charts, see crds/README.md),
//! read as JSON Schema draft 4 with the Kubernetes extensions the API server applies:
//! unknown fields are errors (as with kubectl's strict field validation) unless
//! `x-kubernetes-preserve-unknown-fields`, `nullable` allows null, and
//! `x-kubernetes-int-or-string` takes an integer or a string. CEL rules
//! (`x-kubernetes-validations`) are not evaluated.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::common::yaml_docs;

pub struct Crds {
    /// (group, version, kind) -> JSON Schema.
    schemas: BTreeMap<(String, String, String), Value>,
    /// (group, kind) -> whether the CRD is namespaced.
    namespaced: BTreeMap<(String, String), bool>,
    /// Compiled schemas, by the same key as `schemas` (compiling a large CRD costs far more
    /// than validating one object against it).
    compiled:
        std::cell::RefCell<BTreeMap<(String, String, String), std::rc::Rc<jsonschema::Validator>>>,
}

impl Crds {
    /// The CRDs of `tests/crds`.
    pub fn load() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/crds");
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        entries.sort();
        let mut docs = Vec::new();
        for path in entries {
            for crd in yaml_docs(&std::fs::read_to_string(&path).unwrap()) {
                assert_eq!(
                    crd["kind"],
                    "CustomResourceDefinition",
                    "{}",
                    path.display()
                );
                docs.push(crd);
            }
        }
        let crds = Crds::from_definitions(&docs);
        assert!(!crds.schemas.is_empty(), "no CRD in {}", dir.display());
        crds
    }

    /// The CRDs among `objects` (every `CustomResourceDefinition`; other kinds are skipped).
    pub fn from_definitions(objects: &[Value]) -> Self {
        let mut crds = Crds {
            schemas: BTreeMap::new(),
            namespaced: BTreeMap::new(),
            compiled: Default::default(),
        };
        crds.add(objects);
        crds
    }

    /// Adds the CRDs among `objects`; a later definition of the same kind replaces an earlier one.
    pub fn add(&mut self, objects: &[Value]) {
        self.compiled.borrow_mut().clear();
        for crd in objects
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
        {
            let group = crd["spec"]["group"].as_str().unwrap().to_string();
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
            self.namespaced.insert(
                (group.clone(), kind.clone()),
                crd["spec"]["scope"] == "Namespaced",
            );
            for v in crd["spec"]["versions"].as_array().unwrap() {
                let schema = kubernetes_to_json_schema(&v["schema"]["openAPIV3Schema"], true);
                self.schemas.insert(
                    (
                        group.clone(),
                        v["name"].as_str().unwrap().to_string(),
                        kind.clone(),
                    ),
                    schema,
                );
            }
        }
    }

    /// Whether the CRD of this apiVersion and kind is namespaced (`None`: no such CRD).
    pub fn namespaced(&self, api_version: &str, kind: &str) -> Option<bool> {
        let (group, _) = api_version.split_once('/')?;
        self.namespaced
            .get(&(group.to_string(), kind.to_string()))
            .copied()
    }

    /// Panics with every schema violation of `object`.
    pub fn validate(&self, object: &Value) {
        if let Err(e) = self.check(object) {
            panic!("{e}");
        }
    }

    /// Every schema violation of `object`, in one message.
    pub fn check(&self, object: &Value) -> Result<(), String> {
        let api = object["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api.split_once('/').unwrap_or(("", api));
        let kind = object["kind"].as_str().unwrap_or_default();
        let id = format!(
            "{kind} {}/{}",
            object["metadata"]["namespace"].as_str().unwrap_or("-"),
            object["metadata"]["name"].as_str().unwrap_or("?")
        );
        let schema = self
            .schemas
            .get(&(group.into(), version.into(), kind.into()))
            .ok_or_else(|| format!("no CRD defines {api} {kind} ({id})"))?;
        let namespaced = self.namespaced[&(group.to_string(), kind.to_string())];
        if object["metadata"].get("namespace").is_some() != namespaced {
            return Err(format!(
                "{id}: a {} object {} a namespace",
                if namespaced {
                    "namespaced"
                } else {
                    "cluster-scoped"
                },
                if namespaced { "needs" } else { "must not have" }
            ));
        }
        let key = (group.to_string(), version.to_string(), kind.to_string());
        let cached = self.compiled.borrow().get(&key).cloned();
        let validator = match cached {
            Some(v) => v,
            None => {
                let v = std::rc::Rc::new(
                    jsonschema::options()
                        .with_draft(jsonschema::Draft::Draft4)
                        .should_validate_formats(false)
                        .build(schema)
                        .map_err(|e| {
                            format!("the CRD schema of {api} {kind} does not compile: {e}")
                        })?,
                );
                self.compiled.borrow_mut().insert(key, v.clone());
                v
            }
        };
        let errors: Vec<String> = validator
            .iter_errors(object)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{id} violates its CRD schema:\n{}",
                errors.join("\n")
            ))
        }
    }
}

/// A structural schema as the API server applies it, written as JSON Schema.
fn kubernetes_to_json_schema(s: &Value, root: bool) -> Value {
    let Some(m) = s.as_object() else {
        return s.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        match k.as_str() {
            "properties" => {
                let props: Map<String, Value> = v
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(name, p)| {
                        let schema = if root && name == "metadata" {
                            metadata_schema()
                        } else {
                            kubernetes_to_json_schema(p, false)
                        };
                        (name.clone(), schema)
                    })
                    .collect();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" | "not" if v.is_object() => {
                out.insert(k.clone(), kubernetes_to_json_schema(v, false));
            }
            "allOf" | "anyOf" | "oneOf" => {
                let list = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| kubernetes_to_json_schema(x, false))
                    .collect();
                out.insert(k.clone(), Value::Array(list));
            }
            "pattern" => {
                out.insert(k.clone(), json!(ecma_pattern(v.as_str().unwrap())));
            }
            // Annotations and keywords JSON Schema draft 4 does not have.
            "description"
            | "format"
            | "nullable"
            | "x-kubernetes-int-or-string"
            | "x-kubernetes-preserve-unknown-fields"
            | "x-kubernetes-validations"
            | "x-kubernetes-list-type"
            | "x-kubernetes-list-map-keys"
            | "x-kubernetes-map-type"
            | "x-kubernetes-embedded-resource"
            | "default"
            | "example" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let preserve = m.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    if m.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        out.remove("type");
        out.insert(
            "anyOf".into(),
            json!([{"type": "integer"}, {"type": "string"}]),
        );
    }
    let is_object = m.get("type") == Some(&json!("object"));
    if is_object && !preserve && !out.contains_key("additionalProperties") {
        out.insert("additionalProperties".into(), json!(false));
        out.entry("properties").or_insert_with(|| json!({}));
    }
    if m.get("nullable") == Some(&json!(true))
        && let Some(Value::String(t)) = out.get("type").cloned()
    {
        out.insert("type".into(), json!([t, "null"]));
    }
    Value::Object(out)
}

/// What the API server checks of `metadata` (a subset of ObjectMeta).
fn metadata_schema() -> Value {
    json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
            "namespace": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "additionalProperties": false,
    })
}

/// Go's RE2 patterns as ECMA 262 ones, which JSON Schema requires: the only RE2-only syntax
/// in the test CRDs is a leading `(?i)`, written out as `[aA]` classes.
fn ecma_pattern(p: &str) -> String {
    let Some((head, rest)) = p.split_once("(?i)") else {
        return p.to_string();
    };
    let mut out = String::from(head);
    let mut chars = rest.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '[' => {
                in_class = true;
                out.push(c);
            }
            ']' => {
                in_class = false;
                out.push(c);
            }
            c if c.is_ascii_alphabetic() && !in_class => {
                out.push('[');
                out.push(c.to_ascii_lowercase());
                out.push(c.to_ascii_uppercase());
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}
