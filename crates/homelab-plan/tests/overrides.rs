//! `helm:` on the catalog's charts: values merged over the generated ones, another version,
//! the plan's record of both, and the checks against the embedded chart files.

use homelab_plan::{Plan, chart_values, plan};
use serde_json::json;

fn lab(extra: &str) -> homelab_spec::LoadedSpec {
    let text = format!("{}\n{extra}", homelab_spec::templates::SEED);
    homelab_spec::load_str("homelab.yaml", &text)
        .unwrap_or_else(|e| panic!("valid spec:\n{}", e.render()))
}

fn release<'a>(p: &'a Plan, name: &str) -> &'a homelab_plan::HelmRelease {
    p.components
        .iter()
        .flat_map(|c| c.releases.iter())
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no release {name}"))
}

const OVERRIDES: &str = r#"
infrastructure:
  metallb:
    helm:
      values:
        controller:
          logLevel: debug
          resources: {limits: {memory: 256Mi}}
        speaker: {frr: null}
  certManager:
    helm:
      version: v1.21.2
  traefik:
    helm:
      values:
        logs: {access: {enabled: false}}
        tlsOptions: {default: {sniStrict: false}}
"#;

#[test]
fn values_merge_over_the_generated_ones_and_the_plan_records_the_difference() {
    let loaded = lab(OVERRIDES);
    let p = plan(&loaded.lab);
    let metallb = release(&p, "metallb");
    assert_eq!(
        metallb.values,
        json!({
            "speaker": {"frr": null},
            "frrk8s": {"enabled": false},
            "controller": {
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
                "logLevel": "debug",
            },
        })
    );
    let c = p.component("metallb").unwrap();
    let changes: Vec<String> = c.overrides[0]
        .changes
        .iter()
        .map(|ch| ch.describe())
        .collect();
    assert_eq!(
        changes,
        [
            "- speaker.frr (was {\"enabled\":false})",
            "~ controller.resources.limits.memory: \"128Mi\" -> \"256Mi\"",
            "+ controller.logLevel: \"debug\"",
        ]
    );
    assert_eq!(c.overrides[0].version, c.overrides[0].pinned_version);
}

#[test]
fn a_version_replaces_the_pin() {
    let p = plan(&lab(OVERRIDES).lab);
    let cm = release(&p, "cert-manager");
    assert_eq!(cm.chart.version, "v1.21.2");
    let o = &p.component("cert-manager").unwrap().overrides[0];
    assert_eq!(
        (o.pinned_version.as_str(), o.version.as_str()),
        ("v1.21.1", "v1.21.2")
    );
    assert!(o.changes.is_empty());
    // Untouched charts keep their pins and record nothing.
    let unchanged = plan(&lab("").lab);
    assert_eq!(release(&unchanged, "cert-manager").chart.version, "v1.21.1");
    assert!(unchanged.components.iter().all(|c| c.overrides.is_empty()));
}

#[test]
fn traefik_values_go_into_its_helm_chart_config() {
    let p = plan(&lab(OVERRIDES).lab);
    let t = p.component("traefik").unwrap();
    let config = t
        .objects
        .iter()
        .find(|o| o.kind() == "HelmChartConfig")
        .unwrap();
    let text = config.manifest["spec"]["valuesContent"].as_str().unwrap();
    let values = homelab_spec::yaml::parse(text).unwrap().to_json();
    assert_eq!(values["logs"], json!({"access": {"enabled": false}}));
    assert_eq!(
        values["tlsOptions"]["default"],
        json!({"minVersion": "VersionTLS12", "sniStrict": false})
    );
    let file = t
        .files
        .iter()
        .find(|f| f.path == "values-homelab.yaml")
        .unwrap();
    assert_eq!(
        file.content, text,
        "the values file and the HelmChartConfig agree"
    );
    assert_eq!(t.overrides[0].changes.len(), 2);
}

/// Every `helm:` key of the spec changes a release the plan has (or Traefik's config), and
/// every chart the catalog pins is embedded for the checks.
#[test]
fn every_catalog_release_is_known_to_the_spec_and_embedded_for_the_checks() {
    // The seed lab has every catalog chart but OpenBao's and Open WebUI's.
    let monitoring = "  monitoring:                  # Prometheus, Grafana, Alertmanager\n";
    let text = homelab_spec::templates::SEED.replace(
        monitoring,
        &format!("  openbao: {{}}\n  openWebui: {{}}\n{monitoring}"),
    );
    assert_ne!(text, homelab_spec::templates::SEED);
    let p = plan(&homelab_spec::load_str("homelab.yaml", &text).unwrap().lab);
    let releases: Vec<&str> = p
        .components
        .iter()
        .flat_map(|c| c.releases.iter().map(|r| r.name.as_str()))
        .chain(["traefik"])
        .collect();
    let spec: Vec<&str> = homelab_spec::lab::CATALOG_RELEASES
        .iter()
        .map(|(_, r)| *r)
        .collect();
    let mut a = releases.clone();
    a.sort_unstable();
    let mut b = spec.clone();
    b.sort_unstable();
    assert_eq!(a, b);
    for r in p.components.iter().flat_map(|c| c.releases.iter()) {
        assert!(
            chart_values::embedded(&r.chart.name, &r.chart.version),
            "{} {} is not embedded in crates/homelab-plan/charts",
            r.chart.name,
            r.chart.version
        );
    }
    assert!(chart_values::embedded(
        "traefik",
        homelab_plan::versions::K3S_TRAEFIK_CHART
    ));
}

fn checked(extra: &str) -> Vec<homelab_spec::Diagnostic> {
    let loaded = lab(extra);
    let p = plan(&loaded.lab);
    chart_values::check(&loaded.lab, &p)
}

#[test]
fn the_charts_schema_rejects_values_and_the_error_points_at_them() {
    // The seed already has `services:`; the override goes into it.
    let text = homelab_spec::templates::SEED.replace(
        "  n8n:\n    database: n8n\n",
        "  n8n:\n    database: n8n\n    helm:\n      values:\n        main:\n          count: many\n",
    );
    assert_ne!(text, homelab_spec::templates::SEED);
    let loaded = homelab_spec::load_str("homelab.yaml", &text).unwrap();
    let p = plan(&loaded.lab);
    let found = chart_values::check(&loaded.lab, &p);
    let errors: Vec<_> = found.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{found:?}");
    let span = errors[0].span.unwrap();
    assert_eq!(&text[span.start..span.end], "many");
    assert!(
        errors[0].message.contains("n8n 1.24.32") && errors[0].message.contains("main.count"),
        "{}",
        errors[0].message
    );
    // The whole spec is then invalid, with the error in file order among the others.
    let invalid = chart_values::check_loaded(loaded).unwrap_err();
    assert!(invalid.errors().any(|d| d.code == "chart-values-schema"));
}

#[test]
fn keys_the_defaults_lack_are_warnings_except_free_form_maps_and_subcharts() {
    let found = checked(
        r#"
infrastructure:
  metallb:
    helm:
      values:
        controller:
          tolerations: [{key: a, operator: Exists}]
          podAnnotations: {anything: goes}
          resourcez: {}
        speakr: {}
        crds: {enabled: true, whatever: 1}
"#,
    );
    let keys: Vec<(&str, Option<&str>)> = found
        .iter()
        .map(|d| (d.message.as_str(), d.suggestion.as_deref()))
        .collect();
    assert_eq!(found.len(), 2, "{keys:?}");
    assert!(found.iter().all(|d| !d.is_error()));
    assert!(keys[0].0.contains("`controller.resourcez`"));
    assert_eq!(keys[0].1, Some("resources"));
    assert!(keys[1].0.contains("`speakr`"));
    assert_eq!(keys[1].1, Some("speaker"));
}

#[test]
fn traefik_values_are_checked_over_the_k3s_base_values() {
    let found = checked(
        "infrastructure:\n  traefik:\n    helm:\n      values:\n        deployment: {replicas: two}\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].is_error());
    assert!(found[0].message.contains("traefik 37.1.0"));
}

#[test]
fn another_version_is_not_checked_against_the_pinned_files() {
    let found = checked(
        "infrastructure:\n  metallb:\n    helm:\n      version: 0.17.0\n      values: {controller: {logLevel: chatty}}\n",
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn values_of_charts_without_a_schema_are_only_checked_for_keys() {
    let text = homelab_spec::templates::SEED.replace(
        "    gpu: false",
        "    gpu: false\n    helm:\n      values:\n        ollama: {gpu: {enabled: maybe}}\n        replicaCont: 2\n",
    );
    let loaded = homelab_spec::load_str("homelab.yaml", &text).unwrap();
    let p = plan(&loaded.lab);
    let found = chart_values::check(&loaded.lab, &p);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(!found[0].is_error());
    assert_eq!(found[0].suggestion.as_deref(), Some("replicaCount"));
}
