//! Vault/OpenBao transit as a key of SOPS files, against a real OpenBao dev server and the
//! real sops: a file with age and transit written by either tool opens in the other through
//! Vault alone (no age key) and through age alone (Vault stopped); rekeys add and remove the
//! transit key; a revoked token, a stopped server or a credential for another address fail
//! with a clear message and nothing written.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use homelab_secrets::sops::{EncryptOptions, decrypt_text, encrypt_text_with};
use homelab_secrets::{
    Error, Identities, KeyChanges, KeyUsed, SecretsStore, SopsError, VaultCredential, VaultEnv,
    VaultError, VaultKey, open_file, rekey_file_keys,
};
use secrecy::{ExposeSecret, SecretString};

const PLAIN: &str = "db_password: s3cr3t\nnested:\n    token: abc # the API token\n";

fn token(bao: &Bao, token: &str) -> Identities {
    Identities::empty().with_vault(
        VaultCredential::token(
            &bao.address,
            SecretString::from(token.to_owned()),
            "VAULT_TOKEN",
        )
        .unwrap(),
    )
}

fn key(bao: &Bao) -> VaultKey {
    bao.key_uri().parse().unwrap()
}

fn sops_with_vault(dir: &Path, age_key: Option<&Path>, token: &str) -> Sops {
    Sops::new(dir, age_key).with_env("VAULT_TOKEN", token)
}

fn reason(err: Error) -> SopsError {
    match err {
        Error::Decrypt { reason, .. } | Error::Encrypt { reason, .. } => reason,
        other => panic!("expected a SOPS error, got {other}"),
    }
}

#[test]
fn a_file_homelab_writes_opens_in_sops_through_vault_alone_and_age_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (age_key, age_ids, me) = keygen(tmp.path(), "me.txt");
    let mut bao = Bao::start();
    let t = bao.sops_token();
    let options = EncryptOptions::new(vec![me]).with_vault(vec![key(&bao)]);
    let enc = encrypt_text_with(PLAIN, &options, &token(&bao, &t)).unwrap();
    assert!(
        enc.contains("    hc_vault:\n        - vault_address: "),
        "{enc}"
    );
    assert!(
        enc.contains(
            "          engine_path: transit\n          key_name: homelab\n          created_at: "
        ),
        "{enc}"
    );
    assert!(enc.contains("          enc: vault:v1:"), "{enc}");
    let hc = enc.find("hc_vault:").unwrap();
    assert!(
        hc < enc.find("    age:").unwrap(),
        "sops writes hc_vault before age"
    );
    fs::write(tmp.path().join("f.enc.yaml"), &enc).unwrap();

    let doc = decrypt_text(&enc, &age_ids).unwrap();
    assert!(matches!(doc.opened_with(), Some(KeyUsed::Age { .. })));
    let ours = doc.to_plain_yaml().expose_secret().to_owned();
    assert!(ours.contains("# the API token"), "{ours}");

    let by_vault = sops_with_vault(tmp.path(), None, &t).ok(&["decrypt", "f.enc.yaml"]);
    assert_eq!(by_vault, ours);
    bao.stop();
    let by_age = Sops::new(tmp.path(), Some(&age_key)).ok(&["decrypt", "f.enc.yaml"]);
    assert_eq!(by_age, ours);
}

#[test]
fn a_file_sops_writes_opens_in_homelab_through_vault_alone_and_age_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (age_key, age_ids, me) = keygen(tmp.path(), "me.txt");
    let mut bao = Bao::start();
    let t = bao.sops_token();
    fs::write(tmp.path().join("plain.yaml"), PLAIN).unwrap();
    sops_with_vault(tmp.path(), Some(&age_key), &t).ok(&[
        "encrypt",
        "--hc-vault-transit",
        &bao.key_uri(),
        "--age",
        &me.to_string(),
        "--output",
        "f.enc.yaml",
        "plain.yaml",
    ]);
    let path = tmp.path().join("f.enc.yaml");
    let by_sops = Sops::new(tmp.path(), Some(&age_key)).ok(&["decrypt", "f.enc.yaml"]);

    let doc = open_file(&path, &token(&bao, &t)).unwrap();
    assert_eq!(doc.to_plain_yaml().expose_secret(), &by_sops);
    match doc.opened_with() {
        Some(KeyUsed::Vault { uri, credential }) => {
            assert_eq!(uri, &bao.key_uri());
            assert_eq!(credential, "token from VAULT_TOKEN");
        }
        other => panic!("opened with {other:?}"),
    }
    // With both, age is tried first: no Vault call needed.
    let mut both = Identities::parse(
        &fs::read_to_string(&age_key).unwrap(),
        homelab_secrets::IdentitySource::File(age_key.clone()),
    )
    .unwrap();
    both.extend(token(&bao, &t));
    assert!(matches!(
        open_file(&path, &both).unwrap().opened_with(),
        Some(KeyUsed::Age { .. })
    ));

    // An edit through Vault alone keeps the transit key; sops reads it back.
    let editor = tmp.path().join("edit.sh");
    fs::write(&editor, "#!/bin/sh\nsed -i 's/s3cr3t/changed/' \"$1\"\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&editor, fs::Permissions::from_mode(0o700)).unwrap();
    }
    homelab_secrets::edit::edit_file(
        &path,
        &token(&bao, &t),
        &homelab_secrets::edit::EditOptions::new(editor.display().to_string()),
    )
    .unwrap();
    assert_eq!(
        sops_with_vault(tmp.path(), None, &t).ok(&["decrypt", "f.enc.yaml"]),
        by_sops.replace("s3cr3t", "changed")
    );

    bao.stop();
    let doc = open_file(&path, &age_ids).unwrap();
    assert!(matches!(doc.opened_with(), Some(KeyUsed::Age { .. })));
}

#[test]
fn rekey_adds_and_removes_the_transit_key_and_sops_follows() {
    let tmp = tempfile::tempdir().unwrap();
    let (age_key, age_ids, me) = keygen(tmp.path(), "me.txt");
    let bao = Bao::start();
    let t = bao.sops_token();
    let path = tmp.path().join("secrets.sops.yaml");
    let mut store = SecretsStore::create(&path, &[me]).unwrap();
    store
        .set("k3s-token", SecretString::from("K10xyz"))
        .unwrap();
    store.save().unwrap();
    sops_with_vault(tmp.path(), None, &t).fails(&["decrypt", "secrets.sops.yaml"]);

    let mut ids = Identities::load_file(&age_key).unwrap();
    ids.extend(token(&bao, &t));
    let before = fs::read_to_string(&path).unwrap();
    let report = rekey_file_keys(
        &path,
        &ids,
        &KeyChanges {
            add_vault: vec![key(&bao)],
            ..KeyChanges::default()
        },
    )
    .unwrap();
    assert_eq!(report.added_vault, [bao.key_uri()]);
    let after = fs::read_to_string(&path).unwrap();
    let body = |s: &str| s.split("sops:\n").next().unwrap().to_owned();
    assert_eq!(body(&after), body(&before), "only the keys change");
    assert_eq!(
        sops_with_vault(tmp.path(), None, &t).ok(&[
            "decrypt",
            "--extract",
            "[\"k3s-token\"]",
            "secrets.sops.yaml"
        ]),
        "K10xyz"
    );
    // The store opens and saves through Vault alone, and keeps both keys.
    let mut store = SecretsStore::open(&path, &token(&bao, &t)).unwrap();
    store
        .set("k3s-token", SecretString::from("K10new"))
        .unwrap();
    store.save().unwrap();
    assert_eq!(
        SecretsStore::open(&path, &age_ids)
            .unwrap()
            .get("k3s-token")
            .unwrap()
            .expose_secret(),
        "K10new"
    );

    // Removing the transit key with only Vault at hand would lock the user out.
    let err = rekey_file_keys(
        &path,
        &token(&bao, &t),
        &KeyChanges {
            remove_vault: vec![key(&bao)],
            ..KeyChanges::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("lock you out"), "{err}");
    let report = rekey_file_keys(
        &path,
        &age_ids,
        &KeyChanges {
            remove_vault: vec![key(&bao)],
            ..KeyChanges::default()
        },
    )
    .unwrap();
    assert_eq!(report.removed_vault, [bao.key_uri()]);
    assert!(!fs::read_to_string(&path).unwrap().contains("hc_vault"));
    sops_with_vault(tmp.path(), None, &t).fails(&["decrypt", "secrets.sops.yaml"]);
}

#[test]
fn a_revoked_token_fails_clearly_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (_age_key, age_ids, me) = keygen(tmp.path(), "me.txt");
    let bao = Bao::start();
    let t = bao.sops_token();
    let path = tmp.path().join("f.enc.yaml");
    let enc = encrypt_text_with(
        PLAIN,
        &EncryptOptions::new(vec![me.clone()]).with_vault(vec![key(&bao)]),
        &token(&bao, &t),
    )
    .unwrap();
    fs::write(&path, &enc).unwrap();
    bao.ok(&["token", "revoke", &t]);

    let err = open_file(&path, &token(&bao, &t)).unwrap_err();
    let message = err.to_string();
    assert!(!message.contains(&t), "the token is never shown: {message}");
    match reason(err) {
        SopsError::NoKeyOpened { vault, .. } => match &vault[..] {
            [(uri, VaultError::Denied { credential, .. })] => {
                assert_eq!(uri, &bao.key_uri());
                assert_eq!(credential, "token from VAULT_TOKEN");
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other}"),
    }
    assert!(message.contains("revoked or expired"), "{message}");
    assert!(message.contains("permission denied"), "{message}");

    // Adding the transit key to an age-only file with the revoked token writes nothing.
    let age_only = tmp.path().join("age-only.enc.yaml");
    fs::write(
        &age_only,
        homelab_secrets::sops::encrypt_text(PLAIN, &EncryptOptions::new(vec![me])).unwrap(),
    )
    .unwrap();
    let before = fs::read(&age_only).unwrap();
    let mut ids = age_ids;
    ids.extend(token(&bao, &t));
    let err = rekey_file_keys(
        &age_only,
        &ids,
        &KeyChanges {
            add_vault: vec![key(&bao)],
            ..KeyChanges::default()
        },
    )
    .unwrap_err();
    assert!(matches!(
        reason(err),
        SopsError::Vault { source, .. } if matches!(*source, VaultError::Denied { .. })
    ));
    assert_eq!(fs::read(&age_only).unwrap(), before);
}

#[test]
fn approle_from_the_environment_opens_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, me) = keygen(tmp.path(), "me.txt");
    let bao = Bao::start();
    let (role_id, secret_id) = bao.approle();
    let env = VaultEnv {
        vault_addr: Some(bao.address.clone()),
        role_id: Some(role_id),
        secret_id: Some(SecretString::from(secret_id)),
        ..VaultEnv::default()
    };
    let creds = env.credentials().unwrap();
    let mut ids = Identities::empty();
    for c in creds {
        ids.extend(
            Identities::empty().with_vault(
                VaultCredential::approle(
                    c.address(),
                    "approle",
                    &env.role_id.clone().unwrap(),
                    env.secret_id.clone().unwrap(),
                    "VAULT_ROLE_ID/VAULT_SECRET_ID",
                )
                .unwrap(),
            ),
        );
    }
    let enc = encrypt_text_with(
        PLAIN,
        &EncryptOptions::new(vec![me]).with_vault(vec![key(&bao)]),
        &ids,
    )
    .unwrap();
    let doc = decrypt_text(&enc, &ids).unwrap();
    assert_eq!(
        doc.opened_with().unwrap().to_string(),
        format!(
            "the Vault transit key {} with the AppRole login from VAULT_ROLE_ID/VAULT_SECRET_ID",
            bao.key_uri()
        )
    );
}

#[test]
fn a_stopped_server_or_a_credential_for_another_address_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, me) = keygen(tmp.path(), "me.txt");
    let mut bao = Bao::start();
    let t = bao.sops_token();
    let enc = encrypt_text_with(
        PLAIN,
        &EncryptOptions::new(vec![me]).with_vault(vec![key(&bao)]),
        &token(&bao, &t),
    )
    .unwrap();
    // A token for another server is never sent to the file's address.
    let elsewhere = Identities::empty().with_vault(
        VaultCredential::token(
            "https://vault.example.org:8200",
            SecretString::from(t.clone()),
            "BAO_TOKEN",
        )
        .unwrap(),
    );
    let err = decrypt_text(&enc, &elsewhere).unwrap_err().to_string();
    assert!(
        err.contains(&format!("no Vault credential for {}", bao.address)),
        "{err}"
    );
    assert!(
        err.contains("only to the address it was given for"),
        "{err}"
    );

    bao.stop();
    let err = decrypt_text(&enc, &token(&bao, &t))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("cannot reach Vault at {}", bao.address)),
        "{err}"
    );
    assert!(err.contains("age:"), "the age side is reported too: {err}");
}
