//! The committed JSON Schema and example stay in sync with the code, and the schema accepts
//! the templates and rejects structurally wrong specs (it checks shape, not meaning).

use std::path::Path;

use crate::support::{Workdir, fixtures, workspace_root};

const REGENERATE_SCHEMA: &str = "cargo run -p homelab -- schema > schema/homelab.schema.json";
const REGENERATE_EXAMPLE: &str = "cargo run -p homelab -- init --force -f examples/homelab.yaml";

fn committed_schema() -> String {
    let path = workspace_root().join("schema/homelab.schema.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); create it with `{REGENERATE_SCHEMA}`",
            path.display()
        )
    })
}

fn generated_schema() -> String {
    serde_json::to_string_pretty(&homelab_spec::json_schema()).unwrap() + "\n"
}

#[test]
fn the_committed_schema_is_current() {
    assert!(
        committed_schema() == generated_schema(),
        "schema/homelab.schema.json is stale: the spec types changed. Regenerate it with `{REGENERATE_SCHEMA}` and commit it"
    );
}

#[test]
fn homelab_schema_prints_the_committed_schema() {
    let run = Workdir::new().run(&["schema"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout == committed_schema(),
        "`homelab schema` differs from schema/homelab.schema.json; regenerate it with `{REGENERATE_SCHEMA}`"
    );
    let quiet = Workdir::new().run(&["schema", "-q", "--output", "json"]);
    assert_eq!(
        quiet.stdout, run.stdout,
        "the schema is printed whatever the flags"
    );
}

#[test]
fn the_example_is_the_seed_template() {
    let path = workspace_root().join("examples/homelab.yaml");
    let example = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        example == homelab_spec::templates::SEED,
        "examples/homelab.yaml differs from the seed template; regenerate it with `{REGENERATE_EXAMPLE}` and commit it"
    );
}

#[test]
fn the_schema_url_in_the_templates_names_the_committed_schema() {
    let schema: serde_json::Value = serde_json::from_str(&committed_schema()).unwrap();
    assert_eq!(schema["$id"], homelab_spec::SCHEMA_URL);
    assert!(homelab_spec::SCHEMA_URL.ends_with("/schema/homelab.schema.json"));
    for template in [
        homelab_spec::templates::SEED,
        homelab_spec::templates::MINIMAL,
    ] {
        assert_eq!(
            template.lines().next().unwrap(),
            format!(
                "# yaml-language-server: $schema={}",
                homelab_spec::SCHEMA_URL
            )
        );
    }
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&committed_schema()).unwrap();
    jsonschema::validator_for(&schema).expect("the committed schema is a valid JSON Schema")
}

fn as_json(text: &str) -> serde_json::Value {
    homelab_spec::yaml::parse(text)
        .expect("the document parses")
        .to_json()
}

fn schema_errors(validator: &jsonschema::Validator, text: &str) -> Vec<String> {
    validator
        .iter_errors(&as_json(text))
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn the_templates_satisfy_the_schema() {
    let v = validator();
    for (name, text) in [
        ("seed", homelab_spec::templates::SEED),
        ("minimal", homelab_spec::templates::MINIMAL),
    ] {
        let errors = schema_errors(&v, text);
        assert!(
            errors.is_empty(),
            "the {name} template breaks the schema: {errors:#?}"
        );
    }
    use homelab_spec::templates;
    let answers = templates::Answers {
        name: "attic".into(),
        domain: "lab.sams-house.net".into(),
        email: "sam@sams-house.net".into(),
        subnet: templates::parse_subnet("10.44.0.0/24").unwrap(),
        gateway: None,
        pool: None,
        nodes: templates::parse_nodes("cp=10.44.0.10,w=10.44.0.11").unwrap(),
        nfs: templates::parse_nfs("nas.lan:/tank/k8s").unwrap(),
        ssh_user: Some("sam".into()),
        ssh_key: Some(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHs5m9a2000000000000000 sam@desk".into(),
        ),
        ntfy_topic: templates::random_ntfy_topic(&[9; 16]),
    };
    for preset in [templates::Preset::Seed, templates::Preset::Minimal] {
        let text = templates::user_lab(preset, &answers).unwrap();
        let errors = schema_errors(&v, &text);
        assert!(
            errors.is_empty(),
            "the lab init writes for {preset:?} breaks the schema: {errors:#?}"
        );
    }
}

#[test]
fn structurally_wrong_fixtures_break_the_schema() {
    let v = validator();
    for (fixture, expect) in [
        ("unknown-key-did-you-mean", "adress"),
        ("unknown-key-top-level", "servics"),
        ("unknown-choice", "sever"),
        ("wrong-type-number", "nine-thousand"),
        ("wrong-type-list", "k3s-master"),
        ("wrong-type-mapping", "192.168.2.0/24"),
        ("out-of-range", "70000"),
        ("missing-required", "tls"),
        ("secret-inline", "hunter2"),
    ] {
        let text =
            std::fs::read_to_string(fixtures().join(format!("invalid/{fixture}.yaml"))).unwrap();
        let errors = schema_errors(&v, &text);
        assert!(
            errors.iter().any(|e| e.contains(expect)),
            "{fixture}: expected a schema error about {expect:?}, got {errors:#?}"
        );
    }
}

#[test]
fn every_key_of_the_seed_spec_is_documented_in_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(&committed_schema()).unwrap();
    let mut undocumented = Vec::new();
    walk_properties(&schema, &schema, "", &mut undocumented);
    assert!(
        undocumented.is_empty(),
        "fields without a description (add a doc comment in raw.rs): {undocumented:#?}"
    );
}

/// Collects every property that has no description, following `$ref`s into `$defs`.
fn walk_properties(
    root: &serde_json::Value,
    node: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    if let Some(r) = node["$ref"].as_str() {
        let name = r.trim_start_matches("#/$defs/");
        return walk_properties(root, &root["$defs"][name], path, out);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = node[key].as_array() {
            for n in list {
                walk_properties(root, n, path, out);
            }
        }
    }
    if let Some(items) = node.get("items") {
        walk_properties(root, items, &format!("{path}[]"), out);
    }
    if let Some(extra) = node.get("additionalProperties").filter(|a| a.is_object()) {
        walk_properties(root, extra, &format!("{path}.*"), out);
    }
    if let Some(props) = node["properties"].as_object() {
        for (k, v) in props {
            let here = format!("{path}.{k}");
            if v["description"].as_str().is_none_or(str::is_empty) {
                out.push(here.clone());
            }
            if path.matches('.').count() < 8 {
                walk_properties(root, v, &here, out);
            }
        }
    }
}

#[test]
fn schema_is_valid_json_schema_2020_12() {
    let schema: serde_json::Value = serde_json::from_str(&committed_schema()).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(Path::new(&workspace_root()).join("schema").is_dir());
    jsonschema::meta::validate(&schema).expect("the schema validates against its meta-schema");
}
