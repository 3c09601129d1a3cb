//! An app with several replicas: its PodDisruptionBudget and topology spread pass the strict
//! schemas in both flavors, and the budget selects the Deployment's pods.

use serde_json::Value;

use crate::common::*;
use crate::flux::Lab;
use crate::validators::{build_layers, kubernetes_version, layers_of, validate_objects};

fn spec() -> String {
    assert!(SEED.contains("apps: []"), "the seed lab changed");
    SEED.replace(
        "apps: []",
        "apps:\n  - name: whoami\n    image: docker.io/traefik/whoami:v1.10.3\n    port: 80\n    replicas: 3\n",
    )
}

fn check(objects: &[Value]) {
    let pdb = objects
        .iter()
        .find(|o| o["kind"] == "PodDisruptionBudget" && o["metadata"]["name"] == "whoami")
        .expect("a budget for whoami");
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "whoami")
        .unwrap();
    assert_eq!(
        pdb["metadata"]["namespace"],
        deployment["metadata"]["namespace"]
    );
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "{k}");
    }
    assert_eq!(
        deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
}

#[test]
fn a_replicated_app_has_a_budget_and_spreads_in_both_flavors() {
    let spec = spec();
    let (_tmp, objects) = layers_of(&spec);
    check(&objects);
    validate_objects(&objects, &kubernetes_version(&spec));
    let lab = Lab::new(&spec);
    let out = lab.dir.path().join("tree");
    lab.render_into(&out);
    let objects: Vec<Value> = build_layers(&out)
        .into_iter()
        .filter(|o| o["kind"] != "Secret")
        .collect();
    check(&objects);
    validate_objects(&objects, &kubernetes_version(&spec));
}
