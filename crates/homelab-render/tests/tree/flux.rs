//! The flux flavor with a real secrets store: Secrets SOPS-encrypted (only data/stringData),
//! no canary value anywhere in the tree, stable re-renders, every layer and every object
//! valid, and a dependency graph Flux can follow.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use homelab_plan::{Plan, SecretGenerator, SecretSource};
use homelab_render::{
    Flavor, RenderError, SecretValues, SopsKeys, WriteOptions, WriteReport, render, write_tree,
};
use homelab_secrets::canary::Canaries;
use homelab_secrets::{Identities, Recipient, SecretRequirement, SecretsStore};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::common::*;
use crate::validators::{build_layers, kubernetes_version, validate_objects};

/// The plan's secret needs as the secrets crate's requirements.
pub fn requirements(plan: &Plan) -> Vec<SecretRequirement> {
    plan.secrets
        .iter()
        .map(|s| match &s.generator {
            SecretGenerator::Password { length } => SecretRequirement::password(&s.name, *length),
            SecretGenerator::Hex { bytes } => SecretRequirement::hex_key(&s.name, *bytes),
            SecretGenerator::Htpasswd {
                user,
                password_secret,
            } => SecretRequirement::htpasswd(&s.name, user, password_secret),
            SecretGenerator::Argon2id { password_secret } => {
                SecretRequirement::argon2id(&s.name, password_secret)
            }
            SecretGenerator::UserProvided => {
                SecretRequirement::user_provided(&s.name, &s.description)
            }
            SecretGenerator::CaKey => SecretRequirement::ca_key(&s.name),
            SecretGenerator::CaCertificate {
                common_name,
                key_secret,
                days,
            } => SecretRequirement::ca_certificate(&s.name, common_name, key_secret, *days),
        })
        .collect()
}

/// A lab directory with an age identity and a secrets store holding a canary per secret.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub identities: Identities,
    pub recipient: Recipient,
    pub canaries: Canaries,
    pub plan: Plan,
}

impl Lab {
    pub fn new(spec: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_of(spec);
        let (identities, recipient) =
            homelab_secrets::identity::create_identity_file(&dir.path().join("age.key")).unwrap();
        let canaries = Canaries::for_requirements(&requirements(&plan)).unwrap();
        canaries
            .write_store(
                &dir.path().join("secrets.sops.yaml"),
                std::slice::from_ref(&recipient),
            )
            .unwrap();
        Lab {
            dir,
            identities,
            recipient,
            canaries,
            plan,
        }
    }

    pub fn store(&self) -> SecretsStore {
        SecretsStore::open(&self.dir.path().join("secrets.sops.yaml"), &self.identities).unwrap()
    }

    pub fn render_into(&self, out: &Path) -> WriteReport {
        let store = self.store();
        let tree = render(&self.plan, Flavor::Flux, Some(&store)).unwrap();
        let recipients = [self.recipient.clone()];
        write_tree(
            &tree,
            out,
            &WriteOptions {
                flavor: Flavor::Flux,
                force: false,
                sops: Some(SopsKeys {
                    recipients: &recipients,
                    identities: &self.identities,
                    vault: &[],
                }),
                pause_per_file: None,
            },
        )
        .unwrap()
    }
}

fn sops_files(root: &Path) -> Vec<String> {
    read_dir_files(root)
        .into_keys()
        .filter(|p| p.ends_with(".sops.yaml"))
        .collect()
}

#[test]
fn secrets_are_encrypted_and_no_canary_is_anywhere() {
    for spec in [SEED.to_string(), wide_spec()] {
        let lab = Lab::new(&spec);
        let out = lab.dir.path().join("tree");
        lab.render_into(&out);

        let leaks = lab.canaries.check_dir(&out).unwrap();
        assert!(
            leaks.is_empty(),
            "secret values in the flux tree: {}",
            leaks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );

        let expected: usize = lab
            .plan
            .components
            .iter()
            .map(|c| c.secret_objects.len())
            .sum();
        let files = sops_files(&out);
        assert_eq!(files.len(), expected, "{files:?}");
        for c in &lab.plan.components {
            for s in &c.secret_objects {
                let path = out
                    .join(c.dir())
                    .join(format!("secret-{}.sops.yaml", s.name));
                let text = fs::read_to_string(&path).unwrap();
                let raw = yaml_value(&text);
                // Only data/stringData is encrypted: Flux reads the rest.
                assert_eq!(raw["metadata"]["name"], s.name.as_str());
                assert_eq!(raw["sops"]["encrypted_regex"], "^(data|stringData)$");
                assert!(raw["sops"]["age"][0]["recipient"] == lab.recipient.to_string());
                for v in raw["stringData"].as_object().unwrap().values() {
                    assert!(
                        v.as_str().unwrap().starts_with("ENC[AES256_GCM,data:"),
                        "{v}"
                    );
                }
                // It decrypts (MAC verified) to the Secret with the store's values.
                let plain = homelab_secrets::decrypt_file(&path, &lab.identities).unwrap();
                let secret = yaml_value(plain.expose_secret());
                assert_eq!(secret["kind"], "Secret");
                assert_eq!(secret["metadata"]["namespace"], s.namespace.as_str());
                for (key, source) in &s.data {
                    let got = secret["stringData"][key].as_str().unwrap();
                    match source {
                        SecretSource::Secret(name) => assert!(
                            got == lab.canaries.value(name).unwrap().expose_secret(),
                            "{}/{key} is not the value of {name}",
                            s.name
                        ),
                        SecretSource::Literal(v) => assert_eq!(got, v),
                        SecretSource::Template(_) => assert!(!got.contains("${secret:")),
                    }
                }
            }
        }
    }
}

#[test]
fn rendering_again_keeps_unchanged_secrets_byte_for_byte() {
    let lab = Lab::new(SEED);
    let out = lab.dir.path().join("tree");
    lab.render_into(&out);
    let before = read_dir_files(&out);
    let again = lab.render_into(&out);
    assert!(again.written.is_empty(), "rewrote {:?}", again.written);
    assert_eq!(read_dir_files(&out), before);

    // A changed value re-encrypts that Secret's file and no other.
    let mut store = lab.store();
    store
        .set(
            "grafana-admin-password",
            SecretString::from("another-value-123".to_string()),
        )
        .unwrap();
    store.save().unwrap();
    let report = lab.render_into(&out);
    assert_eq!(
        report.written,
        ["monitoring/prometheus/secret-grafana-admin.sops.yaml"]
    );
}

#[test]
fn every_flux_layer_builds_and_every_object_is_valid() {
    for spec in [SEED.to_string(), wide_spec(), minimal_spec()] {
        let lab = Lab::new(&spec);
        let out = lab.dir.path().join("tree");
        lab.render_into(&out);
        let mut objects: Vec<Value> = build_layers(&out)
            .into_iter()
            .map(|mut o| {
                // kustomize passes the SOPS metadata through; Flux strips it after decrypting.
                if o["kind"] == "Secret" {
                    o.as_object_mut().unwrap().remove("sops");
                }
                o
            })
            .collect();
        let clusters = out.join(format!("clusters/{}/components.yaml", lab.plan.lab_name));
        objects.extend(yaml_docs(&fs::read_to_string(clusters).unwrap()));
        // Each release is a HelmRelease carrying exactly the plan's values, from a
        // HelmRepository at the plan's chart source, or for an OCI chart from an
        // OCIRepository pinned to the chart's tag.
        for c in &lab.plan.components {
            for r in &c.releases {
                let hr = objects
                    .iter()
                    .find(|o| {
                        o["kind"] == "HelmRelease" && o["metadata"]["name"] == r.name.as_str()
                    })
                    .unwrap_or_else(|| panic!("no HelmRelease {}", r.name));
                assert_eq!(hr["spec"]["values"], r.values, "{}", r.name);
                let source = |kind: &str| {
                    objects
                        .iter()
                        .find(|o| o["kind"] == kind && o["metadata"]["name"] == r.name.as_str())
                        .unwrap_or_else(|| panic!("no {kind} {}", r.name))
                };
                if r.chart.is_oci() {
                    assert_eq!(
                        hr["spec"]["chartRef"],
                        json!({"kind": "OCIRepository", "name": r.name, "namespace": "flux-system"})
                    );
                    assert!(hr["spec"].get("chart").is_none());
                    let repo = source("OCIRepository");
                    assert_eq!(
                        repo["spec"]["url"],
                        format!("{}/{}", r.chart.repo, r.chart.name).as_str()
                    );
                    assert_eq!(repo["spec"]["ref"]["tag"], r.chart.version.as_str());
                } else {
                    assert_eq!(
                        hr["spec"]["chart"]["spec"]["version"],
                        r.chart.version.as_str()
                    );
                    let repo = source("HelmRepository");
                    assert_eq!(repo["spec"]["url"], r.chart.repo.as_str());
                    assert!(repo["spec"].get("type").is_none());
                }
            }
        }
        assert!(!objects.iter().any(|o| o["kind"] == "HelmChart"));
        validate_objects(&objects, &kubernetes_version(&spec));
    }
}

#[test]
fn flux_kustomizations_form_the_plan_order() {
    let lab = Lab::new(SEED);
    let out = lab.dir.path().join("tree");
    lab.render_into(&out);
    let ks = yaml_docs(
        &fs::read_to_string(out.join(format!("clusters/{}/components.yaml", lab.plan.lab_name)))
            .unwrap(),
    );
    let names: BTreeSet<&str> = ks
        .iter()
        .map(|k| k["metadata"]["name"].as_str().unwrap())
        .collect();
    let mut deps: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for k in &ks {
        let name = k["metadata"]["name"].as_str().unwrap();
        let path = k["spec"]["path"].as_str().unwrap().trim_start_matches("./");
        assert!(
            out.join(path).join("kustomization.yaml").exists(),
            "{name}: {path}"
        );
        for d in k["spec"]["dependsOn"].as_array().into_iter().flatten() {
            let d = d["name"].as_str().unwrap();
            assert!(names.contains(d), "{name} depends on unknown {d}");
            deps.entry(name).or_default().push(d);
        }
    }
    // Custom resources of a chart wait for that chart.
    for (stage, chart) in [
        ("metallb-config", "metallb"),
        ("cert-manager-config", "cert-manager"),
        ("prometheus-config", "prometheus"),
    ] {
        assert_eq!(deps[stage], [chart], "{stage}");
    }
    assert!(
        out.join("infrastructure/metallb/config/ip-pool.yaml")
            .exists()
    );
    assert!(!out.join("infrastructure/metallb/ip-pool.yaml").exists());
    // MetalLB's namespace comes from the NFS component, so it waits for it.
    assert!(deps["metallb"].contains(&"nfs"), "{:?}", deps["metallb"]);
    // Acyclic: repeatedly remove nodes whose dependencies are gone.
    let mut left: BTreeSet<&str> = names.clone();
    while !left.is_empty() {
        let ready: Vec<&str> = left
            .iter()
            .copied()
            .filter(|n| {
                deps.get(n)
                    .is_none_or(|ds| ds.iter().all(|d| !left.contains(d)))
            })
            .collect();
        assert!(!ready.is_empty(), "dependency cycle among {left:?}");
        for r in ready {
            left.remove(r);
        }
    }
    // Secrets are decrypted where they are.
    let prom = ks
        .iter()
        .find(|k| k["metadata"]["name"] == "prometheus")
        .unwrap();
    assert_eq!(prom["spec"]["decryption"]["provider"], "sops");
}

#[test]
fn switching_flavor_replaces_the_other_flavors_files() {
    let lab = Lab::new(SEED);
    let out = lab.dir.path().join("tree");
    write_k3s(&render_k3s(&lab.plan), &out, false);
    assert!(out.join("infrastructure/metallb/helmchart.yaml").exists());
    let report = lab.render_into(&out);
    assert!(
        report
            .removed
            .iter()
            .any(|p| p == "infrastructure/metallb/helmchart.yaml")
    );
    assert!(!out.join("infrastructure/metallb/helmchart.yaml").exists());
    assert!(out.join("infrastructure/metallb/helmrelease.yaml").exists());
    write_k3s(&render_k3s(&lab.plan), &out, false);
    assert!(
        sops_files(&out).is_empty(),
        "k3s flavor left encrypted Secrets behind"
    );
}

#[test]
fn flux_needs_secret_values_and_says_which_one_is_missing() {
    let plan = seed_plan();
    assert!(matches!(
        render(&plan, Flavor::Flux, None),
        Err(RenderError::FluxNeedsSecrets)
    ));

    struct Missing;
    impl SecretValues for Missing {
        fn secret(&self, name: &str) -> Result<SecretString, String> {
            Err(format!(
                "secret `{name}` is not set yet; set it with `homelab secrets set {name}`"
            ))
        }
    }
    let err = render(&plan, Flavor::Flux, Some(&Missing)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("Secret/") && msg.contains("homelab secrets set"),
        "{msg}"
    );

    // No keys, no write: nothing reaches the disk.
    let lab = Lab::new(SEED);
    let store = lab.store();
    let tree = render(&lab.plan, Flavor::Flux, Some(&store)).unwrap();
    let out = lab.dir.path().join("tree");
    let err = write_tree(
        &tree,
        &out,
        &WriteOptions {
            flavor: Flavor::Flux,
            force: false,
            sops: None,
            pause_per_file: None,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("no age recipients"), "{err}");
    assert!(!out.exists());
    // Debug output of the tree names Secrets, never their values.
    let debug = format!("{tree:?}");
    lab.canaries.assert_absent("Debug of the tree", &debug);
}

/// Renovate reads every chart version of the flux tree: a HelmRelease's `version` for a Helm
/// repository, the OCIRepository's `tag` for an OCI chart.
#[test]
fn renovate_reads_every_flux_chart_version() {
    let lab = Lab::new(SEED);
    let tree = render(&lab.plan, Flavor::Flux, Some(&lab.store())).unwrap();
    let patterns: Vec<regex::Regex> = homelab_render::RENOVATE_MATCH_STRINGS
        .iter()
        .map(|p| regex::Regex::new(p).unwrap())
        .collect();
    let mut oci = 0;
    for c in &lab.plan.components {
        for r in &c.releases {
            let (file, dep) = if r.chart.is_oci() {
                oci += 1;
                (
                    "ocirepository.yaml",
                    format!(
                        "{}/{}",
                        r.chart.repo.trim_start_matches("oci://"),
                        r.chart.name
                    ),
                )
            } else {
                ("helmrelease.yaml", r.chart.name.clone())
            };
            let text = tree
                .text(&format!("{}/{file}", c.dir()))
                .unwrap_or_else(|| panic!("{}/{file}", c.dir()));
            let found = patterns.iter().any(|p| {
                p.captures_iter(text)
                    .any(|cap| cap["depName"] == *dep && cap["currentValue"] == *r.chart.version)
            });
            assert!(
                found,
                "{dep} {} is not read by Renovate in {file}:\n{text}",
                r.chart.version
            );
        }
    }
    assert!(
        oci >= 1,
        "the seed lab installs cert-manager from an OCI registry"
    );
}
