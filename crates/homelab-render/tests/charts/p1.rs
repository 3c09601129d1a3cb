//! NFR5 over everything Prometheus loads in the lab: the tree's rules and every rule a chart
//! templates, with the scrape and evaluation intervals of the templated Prometheus resource
//! (and the slowest monitor endpoint), and the Alertmanager configuration as the chart writes
//! it into Alertmanager's Secret. A critical rule, the lab's own or a chart's, whose path to
//! a receiver exceeds the minute is a finding.

use base64::Engine;
use serde_json::Value;

use crate::alert_budget::{self, PrometheusTiming, RuleSource};
use crate::common::yaml_value;
use crate::lab::Obj;

pub fn findings(objects: &[Obj]) -> Vec<String> {
    let Some(prometheus) = objects.iter().find(|o| o.kind() == "Prometheus") else {
        return Vec::new();
    };
    let timing = PrometheusTiming::from_spec(&prometheus.value["spec"], &prometheus.id())
        .with_monitors(
            objects
                .iter()
                .filter(|o| matches!(o.kind(), "ServiceMonitor" | "PodMonitor"))
                .map(|o| &o.value),
        );
    let Some(secret) = objects.iter().find(|o| {
        o.kind() == "Secret"
            && o.name().starts_with("alertmanager-")
            && o.value["data"].get("alertmanager.yaml").is_some()
    }) else {
        return vec![format!(
            "{}: no Alertmanager configuration Secret (alertmanager-…, key alertmanager.yaml) in the lab",
            prometheus.id()
        )];
    };
    let text = base64::engine::general_purpose::STANDARD
        .decode(
            secret.value["data"]["alertmanager.yaml"]
                .as_str()
                .unwrap_or_default(),
        )
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| panic!("{}: alertmanager.yaml is not base64: {e}", secret.id()));
    let config: Value = yaml_value(&text);
    let rules: Vec<&Obj> = objects
        .iter()
        .filter(|o| o.kind() == "PrometheusRule")
        .collect();
    let sources: Vec<RuleSource> = rules
        .iter()
        .map(|o| RuleSource {
            name: o.id(),
            groups: &o.value["spec"]["groups"],
        })
        .collect();
    let paths = alert_budget::p1_paths(&sources, &timing, &config);
    alert_budget::over_budget(&paths, &timing)
}
