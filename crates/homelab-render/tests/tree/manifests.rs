//! The spec's `manifests:` directory in the tree (examples/media-lab/): its objects under
//! applications/manifests/ with the namespaces they need, and its patches in the
//! kustomization of the component whose object they change, so that `kubectl kustomize`
//! builds exactly what `homelab apply` sends, in both flavors.

use serde_json::Value;

use crate::common::*;

fn media_lab() -> String {
    std::fs::read_to_string(examples_dir().join("media-lab.yaml")).unwrap()
}

fn same_object(a: &Value, b: &Value) -> bool {
    a["kind"] == b["kind"]
        && a["metadata"]["name"] == b["metadata"]["name"]
        && a["metadata"]["namespace"] == b["metadata"]["namespace"]
}

#[test]
fn kustomize_builds_exactly_the_applied_objects_with_the_patches_and_the_users_objects() {
    let plan = plan_of(&media_lab());
    let tmp = tempfile::tempdir().unwrap();
    write_k3s(&render_k3s(&plan), tmp.path(), false);
    let built = kustomize(tmp.path(), "applications");
    let mut patched = 0;
    for c in plan
        .components
        .iter()
        .filter(|c| c.layer == homelab_plan::Layer::Applications)
    {
        for o in c.applied_objects().unwrap() {
            let found = built
                .iter()
                .find(|b| same_object(b, &o.manifest))
                .unwrap_or_else(|| panic!("{} is not in the kustomize build", o.id()));
            assert_eq!(*found, o.manifest, "{} as kustomize builds it", o.id());
        }
        patched += c.patches.len();
    }
    assert_eq!(patched, 2, "the example's two patches are attached");

    let plex = built
        .iter()
        .find(|b| b["kind"] == "Deployment" && b["metadata"]["name"] == "plex")
        .unwrap();
    let pod = &plex["spec"]["template"]["spec"];
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "transcode" && v["emptyDir"]["medium"] == "Memory"),
        "{pod}"
    );
    assert_eq!(
        pod["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["mountPath"],
        "/transcode"
    );
    // The generated file itself is unchanged: the patch lives in the kustomization.
    let generated = yaml_docs(
        &std::fs::read_to_string(tmp.path().join("applications/plex/deployment.yaml")).unwrap(),
    );
    assert!(
        !serde_json::to_string(&generated)
            .unwrap()
            .contains("transcode")
    );

    for (kind, ns, name) in [
        ("Namespace", None, "tools"),
        ("Deployment", Some("tools"), "it-tools"),
        ("Service", Some("tools"), "it-tools"),
        ("Deployment", Some("media"), "unpackerr"),
    ] {
        assert!(
            built.iter().any(|b| b["kind"] == kind
                && b["metadata"]["name"] == name
                && b["metadata"]["namespace"].as_str() == ns),
            "{kind} {name} is built"
        );
    }
    // `media` comes from the apps: it is not created twice.
    let namespaces =
        std::fs::read_to_string(tmp.path().join("applications/manifests/namespaces.yaml")).unwrap();
    assert_eq!(yaml_docs(&namespaces).len(), 1, "{namespaces}");
    assert!(
        tmp.path()
            .join("applications/manifests/tools/it-tools.yaml")
            .exists()
    );
}

#[test]
fn the_manifests_come_last_and_their_workloads_are_checked() {
    let plan = plan_of(&media_lab());
    let last = plan.components.last().unwrap();
    assert_eq!(last.name, "manifests");
    for c in &plan.components[..plan.components.len() - 1] {
        if !c.objects.is_empty() || !c.releases.is_empty() {
            assert!(last.depends_on.contains(&c.name), "after {}", c.name);
        }
    }
    let workloads: Vec<String> = last
        .health
        .iter()
        .filter_map(|h| match h {
            homelab_plan::HealthCheck::Workload {
                namespace, name, ..
            } => Some(format!("{namespace}/{name}")),
            _ => None,
        })
        .collect();
    // Files in path order: tools/it-tools.yaml before unpackerr.yaml.
    assert_eq!(workloads, ["tools/it-tools", "media/unpackerr"]);
}

#[test]
fn flux_carries_the_patches_in_the_component_kustomization() {
    let plan = plan_of(&media_lab());
    let tree =
        homelab_render::render(&plan, homelab_render::Flavor::Flux, Some(&NoValues)).unwrap();
    let k = yaml_value(tree.text("applications/pihole/kustomization.yaml").unwrap());
    let patches = k["patches"].as_array().unwrap();
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0]["target"]["name"], "pihole");
    assert_eq!(patches[0]["target"]["group"], "apps");
    assert!(patches[0]["patch"].as_str().unwrap().contains("dnsConfig"));
}

struct NoValues;

impl homelab_render::SecretValues for NoValues {
    fn secret(&self, name: &str) -> Result<secrecy::SecretString, String> {
        Ok(secrecy::SecretString::from(format!("test-{name}-value")))
    }
}
