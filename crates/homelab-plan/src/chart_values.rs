//! Checks the spec's `helm.values` against the catalog's charts at their pinned versions: the
//! chart's `values.schema.json` (what Helm itself enforces at install time) and the keys of its
//! `values.yaml` (a key the defaults do not have is probably misspelt). The charts' files are
//! embedded data (`charts/`, see its README); everything here is pure.

use homelab_spec::Diagnostic;
use homelab_spec::Lab;
use homelab_spec::yaml::{Node, Value as YamlNode};
use serde_json::Value;

use crate::{ChartOverride, Plan, values};

/// The files of a pinned chart that the checks read.
struct ChartFiles {
    name: &'static str,
    version: &'static str,
    values_yaml: &'static str,
    chart_yaml: &'static str,
    schema: Option<&'static str>,
    /// Values a platform installs the chart with before ours (K3s for its Traefik).
    base_values: Option<&'static str>,
}

macro_rules! chart {
    ($name:literal, $version:literal) => {
        chart!($name, $version, None, None)
    };
    ($name:literal, $version:literal, schema) => {
        chart!(
            $name,
            $version,
            Some(include_str!(concat!(
                "../charts/",
                $name,
                "-",
                $version,
                "/values.schema.json"
            ))),
            None
        )
    };
    ($name:literal, $version:literal, $schema:expr, $base:expr) => {
        ChartFiles {
            name: $name,
            version: $version,
            values_yaml: include_str!(concat!("../charts/", $name, "-", $version, "/values.yaml")),
            chart_yaml: include_str!(concat!("../charts/", $name, "-", $version, "/Chart.yaml")),
            schema: $schema,
            base_values: $base,
        }
    };
}

const CHARTS: &[ChartFiles] = &[
    chart!("nfs-subdir-external-provisioner", "4.0.18"),
    chart!("metallb", "0.16.1", schema),
    chart!("cert-manager", "v1.21.1", schema),
    chart!(
        "traefik",
        "37.1.0",
        Some(include_str!("../charts/traefik-37.1.0/values.schema.json")),
        Some(include_str!(
            "../charts/traefik-37.1.0/k3s-base-values.yaml"
        ))
    ),
    chart!("kube-prometheus-stack", "88.5.3"),
    chart!("loki", "18.11.0", schema),
    chart!("alloy", "1.11.1"),
    chart!("ollama", "1.77.0"),
    chart!("n8n", "1.24.32", schema),
    chart!("openbao", "0.29.2", schema),
    chart!("open-webui", "16.0.0"),
];

fn files_of(chart: &str, version: &str) -> Option<&'static ChartFiles> {
    CHARTS
        .iter()
        .find(|c| c.name == chart && c.version == version)
}

/// Whether the checks know the chart at this version (a test holds every pin to it).
pub fn embedded(chart: &str, version: &str) -> bool {
    files_of(chart, version).is_some()
}

/// A YAML file of a chart as JSON (the files are upstream's, parsed by the spec's reader).
fn yaml_json(text: &str) -> Value {
    homelab_spec::yaml::parse(text)
        .map(|n| n.to_json())
        .unwrap_or(Value::Null)
}

/// The names under which the chart's subcharts take their values.
fn subchart_keys(chart_yaml: &str) -> Vec<String> {
    let chart = yaml_json(chart_yaml);
    chart["dependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["alias"].as_str().or(d["name"].as_str()))
        .map(str::to_string)
        .collect()
}

/// A loaded spec with its chart values checked: the warnings added to it, or the spec turned
/// invalid when a chart's schema rejects its values. Specs without `helm.values` pass as they
/// are, without planning.
pub fn check_loaded(
    mut loaded: homelab_spec::LoadedSpec,
) -> Result<homelab_spec::LoadedSpec, homelab_spec::InvalidSpec> {
    if !loaded
        .lab
        .helm_overrides
        .values()
        .any(|h| h.values.is_some())
    {
        return Ok(loaded);
    }
    let plan = crate::plan(&loaded.lab);
    let mut found = check(&loaded.lab, &plan);
    if found.is_empty() {
        return Ok(loaded);
    }
    for d in &mut found {
        loaded.source.scrub(d);
    }
    let mut all = std::mem::take(&mut loaded.warnings);
    all.extend(found);
    all.sort_by_key(|d| (d.span.map_or(0, |s| s.start), d.severity));
    if all.iter().any(Diagnostic::is_error) {
        return Err(homelab_spec::InvalidSpec::new(loaded.source, all));
    }
    loaded.warnings = all;
    Ok(loaded)
}

/// Every problem of the spec's chart values: errors where the chart's schema rejects them,
/// warnings for keys its defaults do not have. Charts at a version other than the pin are not
/// checked (their files are not embedded).
pub fn check(lab: &Lab, plan: &Plan) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for c in &plan.components {
        for o in &c.overrides {
            let Some(user) = lab
                .helm_overrides
                .get(&o.release)
                .and_then(|h| h.values.as_ref())
            else {
                continue;
            };
            if o.version != o.pinned_version || !matches!(user.0.value, YamlNode::Map(_)) {
                continue;
            }
            let Some(files) = files_of(&o.chart, &o.version) else {
                continue;
            };
            check_one(files, o, &user.0, &mut out);
        }
    }
    out
}

fn check_one(files: &ChartFiles, o: &ChartOverride, user: &Node, out: &mut Vec<Diagnostic>) {
    let mut defaults = yaml_json(files.values_yaml);
    if let Some(base) = files.base_values {
        defaults = values::coalesce(&defaults, &yaml_json(base));
    }
    let chart = format!("{} {}", files.name, files.version);
    let mut known = defaults.clone();
    values::merge(&mut known, &o.generated);
    let subcharts = subchart_keys(files.chart_yaml);
    unknown_keys(user, &known, &mut Vec::new(), &subcharts, &chart, out);

    let Some(schema_text) = files.schema else {
        return;
    };
    let Ok(schema) = serde_json::from_str::<Value>(schema_text) else {
        return;
    };
    let Ok(validator) = jsonschema::validator_for(&schema) else {
        return;
    };
    let baseline = values::coalesce(&defaults, &o.generated);
    let ours: Vec<String> = validator
        .iter_errors(&baseline)
        .map(|e| format!("{}|{}", e.instance_path().as_str(), e.masked()))
        .collect();
    let instance = values::coalesce(&defaults, &o.values);
    for e in validator.iter_errors(&instance) {
        let key = format!("{}|{}", e.instance_path().as_str(), e.masked());
        if ours.contains(&key) {
            // Not the spec's doing: the generated values alone already meet it (the chart
            // tier of the tests keeps this empty).
            continue;
        }
        let path: Vec<Segment> = e
            .instance_path()
            .iter()
            .map(|s| match s {
                jsonschema::paths::LocationSegment::Property(p) => Segment::Key(p.to_string()),
                jsonschema::paths::LocationSegment::Index(i) => Segment::Index(i),
            })
            .collect();
        let keys: Vec<String> = path
            .iter()
            .map(|s| match s {
                Segment::Key(k) => k.clone(),
                Segment::Index(i) => i.to_string(),
            })
            .collect();
        let secretish = keys.iter().any(|k| homelab_spec::de::looks_secret(k));
        let reason = match e.kind() {
            // The validator's own wording names only two choices; the user needs them all.
            jsonschema::error::ValidationErrorKind::Enum { options } => {
                let choices: Vec<String> = options
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| {
                        format!(
                            "`{}`",
                            o.as_str().map_or_else(|| o.to_string(), str::to_string)
                        )
                    })
                    .collect();
                let value = if secretish {
                    "the value".to_string()
                } else {
                    e.instance().to_string()
                };
                format!("{value} is not one of {}", choices.join(", "))
            }
            _ if secretish => e.masked().to_string(),
            _ => e.to_string(),
        };
        let reason = shorten(&reason);
        let dotted = if keys.is_empty() {
            "the values".to_string()
        } else {
            format!("`{}`", values::dotted(&keys))
        };
        let (node, whole) = find(user, &path);
        let message = if whole {
            format!("the chart {chart} does not accept {dotted}: {reason}")
        } else {
            format!("with these values the chart {chart} rejects {dotted}: {reason}")
        };
        let mut d = Diagnostic::error("chart-values-schema", message)
            .at(node.span)
            .help(format!(
                "change the value to what the chart's values.schema.json allows (see `helm show values` of {chart}), or remove it to keep homelab's value"
            ));
        if whole {
            d = d.label("rejected by the chart's schema");
        }
        if secretish {
            d = d.conceal(node.span);
        }
        out.push(d);
    }
}

/// A long message (an enum of fifty choices) cut to a readable length.
fn shorten(text: &str) -> String {
    const MAX: usize = 300;
    if text.chars().count() <= MAX {
        return text.to_string();
    }
    let cut: String = text.chars().take(MAX).collect();
    format!("{cut}…")
}

enum Segment {
    Key(String),
    Index(usize),
}

/// The deepest node of `root` along `path`, and whether it is the whole path.
fn find<'a>(root: &'a Node, path: &[Segment]) -> (&'a Node, bool) {
    let mut node = root;
    for seg in path {
        let next = match (seg, &node.value) {
            (Segment::Key(k), YamlNode::Map(entries)) => entries
                .iter()
                .find(|(key, _)| key.scalar_text() == Some(k))
                .map(|(_, v)| v),
            (Segment::Index(i), YamlNode::Seq(items)) => items.get(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return (node, false),
        }
    }
    (node, true)
}

fn unknown_keys(
    user: &Node,
    known: &Value,
    path: &mut Vec<String>,
    subcharts: &[String],
    chart: &str,
    out: &mut Vec<Diagnostic>,
) {
    let (YamlNode::Map(entries), Some(known_map)) = (&user.value, known.as_object()) else {
        return;
    };
    // An empty mapping in the defaults (`podAnnotations: {}`) takes any key.
    if known_map.is_empty() {
        return;
    }
    for (k, v) in entries {
        let Some(name) = k.scalar_text() else {
            continue;
        };
        if path.is_empty() && (name == "global" || subcharts.iter().any(|s| s == name)) {
            // Helm's own `global`, and subcharts' values, which their own charts define.
            continue;
        }
        path.push(name.to_string());
        match known_map.get(name) {
            Some(inner) => unknown_keys(v, inner, path, subcharts, chart, out),
            None => {
                let here: Vec<&str> = known_map.keys().map(String::as_str).collect();
                let mut d = Diagnostic::warning(
                    "chart-values-unknown-key",
                    format!(
                        "the chart {chart} has no value `{}` in its defaults",
                        values::dotted(path)
                    ),
                )
                .at(k.span);
                d = match homelab_spec::de::did_you_mean(name, &here) {
                    Some(s) => d.label(format!("did you mean `{s}`?")).suggest(s).help(format!(
                        "rename it to `{s}`; if the chart reads `{name}` although its values.yaml does not list it, ignore this warning"
                    )),
                    None => d.help(format!(
                        "check the key against the chart's values.yaml (`helm show values` of {chart}); the keys at this level are {}",
                        list(&here)
                    )),
                };
                out.push(d);
            }
        }
        path.pop();
    }
}

/// At most twelve names, as `a`, `b`, ... and N more.
fn list(names: &[&str]) -> String {
    let shown: Vec<String> = names.iter().take(12).map(|n| format!("`{n}`")).collect();
    match names.len().saturating_sub(12) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_chart_file_reads() {
        for c in CHARTS {
            let values = homelab_spec::yaml::parse(c.values_yaml);
            assert!(
                values.is_ok(),
                "{} {}: {:?}",
                c.name,
                c.version,
                values.err()
            );
            assert!(yaml_json(c.values_yaml).is_object(), "{}", c.name);
            let chart = yaml_json(c.chart_yaml);
            assert_eq!(chart["name"], c.name);
            assert_eq!(
                chart["version"].as_str().map(|v| v.trim_start_matches('v')),
                Some(c.version.trim_start_matches('v'))
            );
            if let Some(schema) = c.schema {
                let schema: Value = serde_json::from_str(schema).expect("schema JSON");
                let validator = jsonschema::validator_for(&schema).expect("a usable schema");
                let mut defaults = yaml_json(c.values_yaml);
                if let Some(base) = c.base_values {
                    defaults = values::coalesce(&defaults, &yaml_json(base));
                }
                let errors: Vec<String> = validator
                    .iter_errors(&defaults)
                    .map(|e| e.to_string())
                    .collect();
                assert!(errors.is_empty(), "{}: {errors:?}", c.name);
            }
        }
    }

    #[test]
    fn subcharts_by_alias_or_name() {
        let chart = "name: x\ndependencies:\n  - name: minio\n    alias: minio\n  - name: rollout-operator\n    alias: rollout_operator\n  - name: redis\n";
        assert_eq!(subchart_keys(chart), ["minio", "rollout_operator", "redis"]);
    }
}
