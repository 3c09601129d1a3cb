//! The flux flavor of a lab whose SOPS data keys are also wrapped by a Vault/OpenBao transit
//! key (`secrets.vault`): every Kustomization that carries Secrets decrypts with the token
//! Secret `sops-hcvault` (key `sops.vault-token`, as kustomize-controller reads it), the docs
//! say how to create it, and the written Secrets are wrapped by the key through a real OpenBao
//! server, so the real sops opens them with a token alone; an age-only lab keeps `sops-age`.

use std::fs;

use homelab_render::{Flavor, SopsKeys, WriteOptions, render, write_tree};
use homelab_secrets::{Identities, VaultCredential, VaultKey};
use secrecy::SecretString;
use serde_json::Value;

use crate::common::*;
use crate::flux::Lab;
use crate::sops_tools::{Bao, Sops};

fn vault_spec(address: &str) -> String {
    format!("{SEED}\nsecrets:\n  vault:\n    address: {address}\n    key: homelab\n")
}

/// The decryption Secret of every Kustomization that has one, by Kustomization.
fn decryption_secrets(components_yaml: &str) -> Vec<(String, String)> {
    yaml_docs(components_yaml)
        .iter()
        .filter(|d| !d["spec"]["decryption"].is_null())
        .map(|d| {
            assert_eq!(d["spec"]["decryption"]["provider"], "sops", "{d}");
            (
                d["metadata"]["name"].as_str().unwrap().to_string(),
                d["spec"]["decryption"]["secretRef"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn kustomizations_decrypt_with_the_vault_token_secret_and_the_docs_say_how_to_make_it() {
    let age = Lab::new(SEED);
    let vault = Lab::new(&vault_spec("https://bao.home.example.com:8200"));
    let components = |lab: &Lab| {
        let tree = render(&lab.plan, Flavor::Flux, Some(&lab.store())).unwrap();
        let path = format!("clusters/{}/components.yaml", lab.plan.lab_name);
        (tree.text(&path).unwrap().to_string(), tree)
    };
    let (age_yaml, _) = components(&age);
    let (vault_yaml, tree) = components(&vault);
    let with_age = decryption_secrets(&age_yaml);
    let with_vault = decryption_secrets(&vault_yaml);
    assert!(!with_age.is_empty());
    // The same Kustomizations decrypt; only the Secret they name differs.
    assert_eq!(
        with_age.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        with_vault.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    assert!(
        with_age.iter().all(|(_, s)| s == "sops-age"),
        "{with_age:?}"
    );
    assert!(
        with_vault.iter().all(|(_, s)| s == "sops-hcvault"),
        "{with_vault:?}"
    );
    insta::assert_snapshot!(
        "seed-flux-vault-decryption",
        with_vault
            .iter()
            .map(|(k, s)| format!("{k}: {s}"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    let readme = tree.text("README.md").unwrap();
    assert!(
        readme
            .contains("create secret generic sops-hcvault --from-file=sops.vault-token=/dev/stdin"),
        "{readme}"
    );
    assert!(readme.contains("`transit/decrypt/homelab` on https://bao.home.example.com:8200"));
    assert!(!readme.contains("age.agekey"), "{readme}");
    let all_docs: String = tree
        .paths()
        .filter(|p| p.ends_with(".md"))
        .map(|p| tree.text(p).unwrap_or_default())
        .collect();
    assert!(
        !all_docs.contains("flux-system/sops-age"),
        "the age Secret is not named"
    );
    assert!(all_docs.contains("https://bao.home.example.com:8200/v1/transit/keys/homelab"));
}

#[test]
fn written_secrets_are_wrapped_by_the_transit_key_and_sops_opens_them_with_a_token_alone() {
    let mut bao = Bao::start();
    let token = bao.sops_token();
    let lab = Lab::new(&vault_spec(&bao.address));
    let key = VaultKey::new(&bao.address, "transit", "homelab").unwrap();
    let identities = Identities::load_file(&lab.dir.path().join("age.key"))
        .unwrap()
        .with_vault(
            VaultCredential::token(
                &bao.address,
                SecretString::from(token.clone()),
                "a test token",
            )
            .unwrap(),
        );
    let store = lab.store();
    let tree = render(&lab.plan, Flavor::Flux, Some(&store)).unwrap();
    let out = lab.dir.path().join("tree");
    let recipients = [lab.recipient.clone()];
    let write = |identities: &Identities| {
        write_tree(
            &tree,
            &out,
            &WriteOptions {
                flavor: Flavor::Flux,
                force: false,
                sops: Some(SopsKeys {
                    recipients: &recipients,
                    identities,
                    vault: std::slice::from_ref(&key),
                }),
                pause_per_file: None,
            },
        )
    };
    write(&identities).unwrap();
    let files: Vec<String> = read_dir_files(&out)
        .into_keys()
        .filter(|p| p.ends_with(".sops.yaml"))
        .collect();
    assert!(!files.is_empty());
    for f in &files {
        let text = fs::read_to_string(out.join(f)).unwrap();
        assert!(text.contains("hc_vault:"), "{f}");
        assert!(
            text.contains(&format!("vault_address: {}", bao.address)),
            "{f}"
        );
    }
    // The real sops, as kustomize-controller would: a token and no age key.
    let sops = Sops::new(&out, None)
        .with_env("VAULT_ADDR", &bao.address)
        .with_env("VAULT_TOKEN", &token);
    let plain = sops.ok(&["-d", &files[0]]);
    let secret: Value = yaml_value(&plain);
    assert_eq!(secret["kind"], "Secret", "{plain}");
    assert!(
        !lab.canaries
            .check_text("the decrypted Secret", &plain)
            .is_empty(),
        "the decrypted Secret holds a canary, so the check below would see a leak"
    );
    assert!(
        lab.canaries.check_dir(&out).unwrap().is_empty(),
        "no canary in the tree"
    );

    // Rendering again with OpenBao gone: unchanged Secrets keep their files byte for byte
    // (nothing needs Vault), so an outage does not churn the repository.
    let before = read_dir_files(&out);
    bao.stop();
    let report = write(&identities).unwrap();
    assert!(report.written.is_empty(), "{:?}", report.written);
    assert_eq!(before, read_dir_files(&out));
}
