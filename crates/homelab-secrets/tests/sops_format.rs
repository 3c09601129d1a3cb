//! The SOPS YAML format: files written by the reference sops decrypt to their plaintext with
//! types and MAC verified; tampering or a wrong key is a hard error naming file and reason;
//! files we write open with the `age` CLI and round-trip.

mod common;

use std::fs;
use std::process::Command;

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::U32;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use homelab_secrets::sops::{EncryptOptions, EncryptionRule, decrypt_text, encrypt_text};
use homelab_secrets::yaml::{Mapping, Value, emit_document, parse_documents};
use homelab_secrets::{Error, SopsError, decrypt_file, encrypt_file, encrypt_file_in_place};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha512};

const VECTORS: [(&str, &str); 3] = [
    ("example.enc.yaml", "example.key.txt"),
    ("flux-age-secret.enc.yaml", "flux-age-secret.key.txt"),
    ("flux-global-secret.enc.yaml", "flux-global-secret.key.txt"),
];

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<Mapping>(),
    )
}

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

fn expected_plaintext(file: &str) -> Value {
    match file {
        "example.enc.yaml" => parse_documents(&read_testdata("example.plain.yaml"))
            .unwrap()
            .remove(0),
        "flux-age-secret.enc.yaml" => map(&[
            ("apiVersion", s("v1")),
            ("kind", s("Secret")),
            ("metadata", map(&[("name", s("age"))])),
            ("stringData", map(&[("key", s("value"))])),
        ]),
        "flux-global-secret.enc.yaml" => map(&[
            ("apiVersion", s("v1")),
            ("kind", s("Secret")),
            (
                "metadata",
                map(&[
                    ("name", s("global-age-secret")),
                    ("namespace", s("default")),
                ]),
            ),
            ("type", s("Opaque")),
            ("stringData", map(&[("key", s("global-value"))])),
        ]),
        other => panic!("no expectation for {other}"),
    }
}

#[test]
fn reference_sops_files_decrypt_to_their_plaintext_with_types() {
    for (file, key) in VECTORS {
        let doc = decrypt_text(&read_testdata(file), &vector_identities(key))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(doc.documents(), [expected_plaintext(file)], "{file}");
    }
    // Types survive: the float stays a float, booleans stay booleans, order is kept.
    let doc = decrypt_text(
        &read_testdata("example.enc.yaml"),
        &vector_identities("example.key.txt"),
    )
    .unwrap();
    let m = doc.documents()[0].as_map().unwrap();
    assert_eq!(
        m.keys().collect::<Vec<_>>(),
        [
            "hello",
            "example_key",
            "example_array",
            "example_number",
            "example_booleans"
        ]
    );
    assert_eq!(m.get("example_number"), Some(&Value::Float(1234.56789)));
    assert_eq!(
        m.get("example_booleans"),
        Some(&Value::Seq(vec![Value::Bool(true), Value::Bool(false)]))
    );
    // The plaintext YAML reads back to the same tree.
    let plain = doc.to_plain_yaml();
    assert_eq!(
        parse_documents(plain.expose_secret()).unwrap(),
        [expected_plaintext("example.enc.yaml")]
    );
}

#[test]
fn reference_metadata_is_read() {
    let doc = decrypt_text(
        &read_testdata("flux-age-secret.enc.yaml"),
        &vector_identities("flux-age-secret.key.txt"),
    )
    .unwrap();
    let meta = doc.metadata();
    assert_eq!(
        meta.rule,
        EncryptionRule::EncryptedRegex("^(data|stringData)$".into())
    );
    assert_eq!(meta.version, "3.9.0");
    assert_eq!(meta.lastmodified, "2024-11-12T13:33:42Z");
    assert_eq!(
        doc.recipients(),
        ["age1l44xcng8dqj32nlv6d930qvvrny05hglzcv9qpc7kxjc6902ma4qufys29"]
    );
    assert!(
        !format!("{doc:?}").contains("value"),
        "Debug shows no value"
    );
}

/// Copies a vector into a temp dir with `edit` applied, and decrypts it there.
fn decrypt_modified(file: &str, key: &str, edit: impl Fn(&str) -> String) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    let original = read_testdata(file);
    let changed = edit(&original);
    assert_ne!(changed, original, "the edit must change the file");
    fs::write(&path, &changed).unwrap();
    let err = decrypt_file(&path, &vector_identities(key)).unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "error names the file: {err}"
    );
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        changed,
        "file untouched"
    );
    err
}

/// Changes one base64 character inside the named field of the line starting with `prefix`.
fn flip_in_field(text: &str, line_prefix: &str, field: &str) -> String {
    let line_start = text.find(line_prefix).expect("line present");
    let field_at =
        line_start + text[line_start..].find(field).expect("field present") + field.len();
    let mut bytes = text.as_bytes().to_vec();
    bytes[field_at] = if bytes[field_at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

fn reason(err: &Error) -> &SopsError {
    match err {
        Error::Decrypt { reason, .. } => reason,
        other => panic!("expected a decrypt error, got {other}"),
    }
}

#[test]
fn one_changed_byte_in_a_value_is_rejected_naming_the_key() {
    for (file, key, line, path) in [
        ("example.enc.yaml", "example.key.txt", "hello:", "hello"),
        (
            "flux-age-secret.enc.yaml",
            "flux-age-secret.key.txt",
            "  key: ENC",
            "stringData:key",
        ),
        (
            "flux-global-secret.enc.yaml",
            "flux-global-secret.key.txt",
            "  key: ENC",
            "stringData:key",
        ),
    ] {
        for field in ["data:", "tag:", "iv:"] {
            let err = decrypt_modified(file, key, |t| flip_in_field(t, line, field));
            assert_eq!(
                reason(&err),
                &SopsError::ValueAuthentication { path: path.into() },
                "{file} {field}: {err}"
            );
        }
    }
}

#[test]
fn a_changed_mac_or_lastmodified_is_rejected() {
    for (file, key) in VECTORS {
        let err = decrypt_modified(file, key, |t| flip_in_field(t, "mac: ENC", "data:"));
        assert_eq!(reason(&err), &SopsError::MacAuthentication, "{file}");
        assert!(err.to_string().contains("MAC"), "{err}");
        let err = decrypt_modified(file, key, |t| {
            let at = t.find("lastmodified: ").unwrap();
            let line_end = at + t[at..].find('\n').unwrap();
            // Move the timestamp one second: still a valid time, but not the one in the MAC.
            let line = &t[at..line_end];
            let digit_at = at + line.rfind(|c: char| c.is_ascii_digit()).unwrap();
            let mut b = t.as_bytes().to_vec();
            b[digit_at] = if b[digit_at] == b'1' { b'2' } else { b'1' };
            String::from_utf8(b).unwrap()
        });
        assert_eq!(reason(&err), &SopsError::MacAuthentication, "{file}");
        assert!(err.to_string().contains("lastmodified"), "{err}");
    }
}

#[test]
fn reordered_removed_or_changed_plain_values_break_the_mac() {
    // Two list items share a key path, so each still decrypts; only the MAC notices.
    let err = decrypt_modified("example.enc.yaml", "example.key.txt", |t| {
        let lines: Vec<&str> = t.lines().collect();
        let i = lines
            .iter()
            .position(|l| l.starts_with("example_array:"))
            .unwrap();
        let mut out = lines.clone();
        out.swap(i + 1, i + 2);
        out.join("\n") + "\n"
    });
    assert_eq!(reason(&err), &SopsError::MacMismatch);
    let err = decrypt_modified("example.enc.yaml", "example.key.txt", |t| {
        t.lines()
            .filter(|l| !l.starts_with("example_key:"))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    });
    assert_eq!(reason(&err), &SopsError::MacMismatch);
    // Unencrypted values are covered by the MAC too.
    let err = decrypt_modified("flux-age-secret.enc.yaml", "flux-age-secret.key.txt", |t| {
        t.replace("  name: age\n", "  name: agf\n")
    });
    assert_eq!(reason(&err), &SopsError::MacMismatch);
}

#[test]
fn a_value_moved_to_another_key_fails_authentication() {
    let err = decrypt_modified("example.enc.yaml", "example.key.txt", |t| {
        let value_of = |k: &str| {
            let line = t.lines().find(|l| l.starts_with(k)).unwrap();
            line.split_once(": ").unwrap().1.to_owned()
        };
        let (hello, key) = (value_of("hello:"), value_of("example_key:"));
        t.replace(&format!("hello: {hello}"), &format!("hello: {key}"))
    });
    assert_eq!(
        reason(&err),
        &SopsError::ValueAuthentication {
            path: "hello".into()
        }
    );
}

#[test]
fn the_wrong_key_is_rejected_naming_the_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.enc.yaml");
    fs::copy(testdata("example.enc.yaml"), &path).unwrap();
    let err = decrypt_file(&path, &vector_identities("flux-age-secret.key.txt")).unwrap_err();
    match reason(&err) {
        SopsError::NoMatchingIdentity { recipients, .. } => assert_eq!(
            recipients,
            &["age1se5ghfycr4n8kcwc3qwf234ymvmr2lex2a99wh8gpfx97glwt9hqch4569"]
        ),
        other => panic!("unexpected {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("wrong key"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn a_damaged_data_key_is_reported_for_its_recipient() {
    let err = decrypt_modified("example.enc.yaml", "example.key.txt", |t| {
        t.replace(
            "      Ededl+gNtC1YBaNBMzEgQnmYvBRiTG/dZToIFHE4Dsru5+yQvh/s4g==",
            "      Ededl+gNtC1YBaNBMzEgQnmYvBRiTG/dZToIFHE4Dsru5+yQvh/s4A==",
        )
    });
    assert!(matches!(reason(&err), SopsError::DataKey { .. }), "{err}");
}

#[test]
fn missing_sops_block_and_non_yaml_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ids = vector_identities("example.key.txt");
    let plain = dir.path().join("plain.yaml");
    fs::write(&plain, "password: hunter2\n").unwrap();
    let err = decrypt_file(&plain, &ids).unwrap_err();
    assert_eq!(reason(&err), &SopsError::MissingMetadata);
    assert!(err.to_string().contains("not SOPS-encrypted"), "{err}");

    let broken = dir.path().join("broken.yaml");
    fs::write(&broken, "a: 1\nb: [unclosed\n").unwrap();
    let err = decrypt_file(&broken, &ids).unwrap_err();
    match reason(&err) {
        SopsError::Yaml(e) => assert!(e.line >= 2, "{e}"),
        other => panic!("unexpected {other}"),
    }
    let list = dir.path().join("list.yaml");
    fs::write(&list, "- a\n- b\n").unwrap();
    assert!(matches!(
        reason(&decrypt_file(&list, &ids).unwrap_err()),
        SopsError::NotAMapping { .. }
    ));
    let missing = dir.path().join("missing.yaml");
    assert!(matches!(
        decrypt_file(&missing, &ids).unwrap_err(),
        Error::Read { .. }
    ));
}

#[test]
fn encrypting_an_encrypted_or_empty_file_is_refused() {
    let opts = EncryptOptions::new(vector_identities("example.key.txt").recipients());
    assert_eq!(encrypt_text("", &opts).unwrap_err(), SopsError::EmptyInput);
    assert_eq!(
        encrypt_text("# only a comment\n", &opts).unwrap_err(),
        SopsError::EmptyInput
    );
    assert_eq!(
        encrypt_text("- a\n", &opts).unwrap_err(),
        SopsError::NotAMapping {
            index: 1,
            found: "list"
        }
    );
    assert_eq!(
        encrypt_text("a: b\n", &EncryptOptions::new(vec![])).unwrap_err(),
        SopsError::NoRecipients
    );
    assert_eq!(
        encrypt_text(&read_testdata("example.enc.yaml"), &opts).unwrap_err(),
        SopsError::AlreadyEncrypted
    );
}

const PLAIN: &str = "\
name: lab
port: 5432
ratio: 0.75
enabled: true
nothing: null
password: 'p@ss: w0rd # not a comment'
pin: '0042'
yes_string: 'yes'
multiline: |
    line one
    line two
nested:
    list:
        - a
        - 1
        - false
    deeper:
        key: value
empty: ''
";

#[test]
fn files_we_write_round_trip_with_types_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ids, recipient) = keygen(dir.path(), "key.txt");
    let encrypted = encrypt_text(PLAIN, &EncryptOptions::new(vec![recipient])).unwrap();
    // No plaintext value is visible.
    for needle in ["p@ss", "line one", "0042", "5432", "0.75"] {
        assert!(!encrypted.contains(needle), "{needle} leaked:\n{encrypted}");
    }
    assert!(encrypted.contains("port: ENC[AES256_GCM,data:"));
    assert!(encrypted.contains(",type:int]"));
    assert!(encrypted.contains(",type:float]"));
    assert!(encrypted.contains(",type:bool]"));
    assert!(encrypted.contains("nothing: null\n"), "null stays null");
    assert!(encrypted.contains("empty: \"\"\n"), "empty stays empty");
    let doc = decrypt_text(&encrypted, &ids).unwrap();
    assert_eq!(doc.documents(), parse_documents(PLAIN).unwrap().as_slice());
}

#[test]
fn the_sops_block_is_laid_out_as_sops_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, recipient) = keygen(dir.path(), "key.txt");
    let encrypted = encrypt_text("a: b\n", &EncryptOptions::new(vec![recipient.clone()])).unwrap();
    let lines: Vec<&str> = encrypted.lines().collect();
    assert!(lines[0].starts_with("a: ENC[AES256_GCM,data:"));
    assert_eq!(lines[1], "sops:");
    assert_eq!(lines[2], "    age:");
    assert_eq!(lines[3], format!("        - recipient: {recipient}"));
    assert_eq!(lines[4], "          enc: |");
    assert_eq!(lines[5], "            -----BEGIN AGE ENCRYPTED FILE-----");
    let after = lines.iter().position(|l| l.contains("END AGE")).unwrap();
    assert!(lines[after + 1].starts_with("    lastmodified: \""));
    assert!(lines[after + 2].starts_with("    mac: ENC[AES256_GCM,data:"));
    assert_eq!(lines[after + 3], "    unencrypted_suffix: _unencrypted");
    assert_eq!(lines[after + 4], "    version: 3.10.2");
    assert_eq!(lines.len(), after + 5);
}

/// Opens the data key of our file with the `age` CLI, then checks a value and the MAC with
/// nothing but that key, AES-GCM and SHA-512, independently of the library's decryption.
#[test]
fn the_age_cli_opens_our_data_key_and_the_values_follow_the_format() {
    require_tool("age");
    let dir = tempfile::tempdir().unwrap();
    let (key_path, _, recipient) = keygen(dir.path(), "key.txt");
    let encrypted = encrypt_text(
        "user: admin\ncount: 3\n",
        &EncryptOptions::new(vec![recipient]),
    )
    .unwrap();
    let tree = parse_documents(&encrypted).unwrap().remove(0);
    let m = tree.as_map().unwrap();
    let sops = m.get("sops").unwrap().as_map().unwrap();
    let enc = match sops.get("age").unwrap() {
        Value::Seq(items) => items[0]
            .as_map()
            .unwrap()
            .get("enc")
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned(),
        _ => panic!("age list"),
    };
    let enc_path = dir.path().join("datakey.age");
    fs::write(&enc_path, &enc).unwrap();
    let out = run(Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&key_path)
        .arg(&enc_path));
    assert_eq!(out.stdout.len(), 32, "the data key is 32 raw bytes");
    let key = out.stdout;

    let open = |enc_value: &str, aad: &str| -> (Vec<u8>, String) {
        let inner = enc_value
            .strip_prefix("ENC[AES256_GCM,")
            .unwrap()
            .strip_suffix(']')
            .unwrap();
        let field = |name: &str| {
            inner
                .split(',')
                .find_map(|f| f.strip_prefix(&format!("{name}:")))
                .unwrap()
                .to_owned()
        };
        let iv = B64.decode(field("iv")).unwrap();
        assert_eq!(iv.len(), 32, "sops uses a 32-byte IV");
        let mut sealed = B64.decode(field("data")).unwrap();
        sealed.extend(B64.decode(field("tag")).unwrap());
        let cipher = AesGcm::<Aes256, U32>::new(GenericArray::from_slice(&key));
        let plain = cipher
            .decrypt(
                GenericArray::from_slice(&iv),
                Payload {
                    msg: &sealed,
                    aad: aad.as_bytes(),
                },
            )
            .unwrap();
        (plain, field("type"))
    };
    let (user, ty) = open(m.get("user").unwrap().as_str().unwrap(), "user:");
    assert_eq!((user.as_slice(), ty.as_str()), (&b"admin"[..], "str"));
    let (count, ty) = open(m.get("count").unwrap().as_str().unwrap(), "count:");
    assert_eq!((count.as_slice(), ty.as_str()), (&b"3"[..], "int"));

    let lastmodified = sops.get("lastmodified").unwrap().as_str().unwrap();
    let (mac, _) = open(sops.get("mac").unwrap().as_str().unwrap(), lastmodified);
    let expected: String = Sha512::digest(b"admin3")
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(String::from_utf8(mac).unwrap(), expected);
}

/// The other direction: a data key encrypted by the `age` CLI opens with our decryption.
#[test]
fn a_data_key_encrypted_by_the_age_cli_opens_with_our_decryption() {
    require_tool("age");
    let dir = tempfile::tempdir().unwrap();
    let (key_path, ids, recipient) = keygen(dir.path(), "key.txt");
    let encrypted = encrypt_text(
        "secret: s3cr3t\n",
        &EncryptOptions::new(vec![recipient.clone()]),
    )
    .unwrap();
    let tree = parse_documents(&encrypted).unwrap().remove(0);
    let enc = tree
        .as_map()
        .unwrap()
        .get("sops")
        .unwrap()
        .as_map()
        .unwrap()
        .get("age")
        .unwrap();
    let Value::Seq(items) = enc else { panic!() };
    let old_enc = items[0]
        .as_map()
        .unwrap()
        .get("enc")
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let enc_path = dir.path().join("datakey.age");
    fs::write(&enc_path, &old_enc).unwrap();
    let key = run(Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&key_path)
        .arg(&enc_path))
    .stdout;
    let raw_key = dir.path().join("datakey.bin");
    fs::write(&raw_key, &key).unwrap();
    let reencrypted = run(Command::new("age")
        .arg("-a")
        .arg("-r")
        .arg(recipient.to_string())
        .arg(&raw_key))
    .stdout;
    let new_enc = String::from_utf8(reencrypted).unwrap();
    assert_ne!(new_enc, old_enc);
    let indent = "            ";
    let indented = |t: &str| {
        t.lines()
            .map(|l| format!("{indent}{l}\n"))
            .collect::<String>()
    };
    let swapped = encrypted.replace(&indented(&old_enc), &indented(&new_enc));
    assert_ne!(swapped, encrypted);
    let doc = decrypt_text(&swapped, &ids).unwrap();
    assert_eq!(
        doc.documents()[0].as_map().unwrap().get("secret"),
        Some(&s("s3cr3t"))
    );
}

#[test]
fn any_of_several_recipients_or_identities_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ids_a, a) = keygen(dir.path(), "a.txt");
    let (_, ids_b, b) = keygen(dir.path(), "b.txt");
    let (_, ids_c, _) = keygen(dir.path(), "c.txt");
    let encrypted = encrypt_text("k: v\n", &EncryptOptions::new(vec![a, b])).unwrap();
    decrypt_text(&encrypted, &ids_a).unwrap();
    decrypt_text(&encrypted, &ids_b).unwrap();
    assert!(matches!(
        decrypt_text(&encrypted, &ids_c),
        Err(SopsError::NoMatchingIdentity { .. })
    ));
    // A key file with several identities: the one that matches is used.
    let mut both = ids_c;
    both.extend(ids_b);
    decrypt_text(&encrypted, &both).unwrap();
}

#[test]
fn encrypted_regex_leaves_other_values_readable_and_still_macs_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ids, r) = keygen(dir.path(), "key.txt");
    let opts = EncryptOptions::new(vec![r]).with_encrypted_regex("^(data|stringData)$");
    let manifest = "apiVersion: v1\nkind: Secret\nmetadata:\n    name: db\nstringData:\n    password: hunter2hunter2\ndata:\n    token: aHVudGVyMg==\n";
    let encrypted = encrypt_text(manifest, &opts).unwrap();
    assert!(encrypted.contains("    name: db\n"));
    assert!(!encrypted.contains("hunter2hunter2"));
    assert!(!encrypted.contains("aHVudGVyMg=="));
    assert!(encrypted.contains("    encrypted_regex: ^(data|stringData)$\n"));
    let doc = decrypt_text(&encrypted, &ids).unwrap();
    assert_eq!(
        doc.documents(),
        parse_documents(manifest).unwrap().as_slice()
    );
    let tampered = encrypted.replace("    name: db\n", "    name: dc\n");
    assert_eq!(
        decrypt_text(&tampered, &ids).unwrap_err(),
        SopsError::MacMismatch
    );
}

#[test]
fn unencrypted_suffix_and_mac_only_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ids, r) = keygen(dir.path(), "key.txt");
    let mut opts = EncryptOptions::new(vec![r]);
    opts.mac_only_encrypted = true;
    let encrypted = encrypt_text("host_unencrypted: db.local\npassword: x1\n", &opts).unwrap();
    assert!(encrypted.contains("host_unencrypted: db.local\n"));
    assert!(encrypted.contains("mac_only_encrypted: true\n"));
    // With mac_only_encrypted, plaintext values are outside the MAC (sops semantics).
    let edited = encrypted.replace("db.local", "db.other");
    let doc = decrypt_text(&edited, &ids).unwrap();
    assert_eq!(
        doc.documents()[0].as_map().unwrap().get("host_unencrypted"),
        Some(&s("db.other"))
    );
}

#[test]
fn multi_document_files_round_trip_with_metadata_in_each_document() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ids, r) = keygen(dir.path(), "key.txt");
    let plain = "a: 1\n---\nb: two\n";
    let encrypted = encrypt_text(plain, &EncryptOptions::new(vec![r])).unwrap();
    assert_eq!(encrypted.matches("\nsops:\n").count(), 2);
    assert_eq!(encrypted.matches("\n---\n").count(), 1);
    let doc = decrypt_text(&encrypted, &ids).unwrap();
    assert_eq!(doc.documents(), parse_documents(plain).unwrap().as_slice());
}

#[test]
fn re_encrypting_changes_ivs_and_mac_but_not_the_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ids, r) = keygen(dir.path(), "key.txt");
    let first = encrypt_text("k: v\n", &EncryptOptions::new(vec![r])).unwrap();
    let mut doc = decrypt_text(&first, &ids).unwrap();
    let second = doc.encrypt().unwrap();
    assert_ne!(first, second, "fresh IVs");
    let reopened = decrypt_text(&second, &ids).unwrap();
    assert_eq!(reopened.documents(), doc.documents());
    assert_eq!(reopened.recipients(), doc.recipients());
}

#[test]
fn encrypt_file_and_in_place_keep_the_original_until_done() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ids, r) = keygen(dir.path(), "key.txt");
    let path = dir.path().join("values.yaml");
    fs::write(&path, "token: abc123\n").unwrap();
    let opts = EncryptOptions::new(vec![r]);
    let out = encrypt_file(&path, &opts).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "token: abc123\n");
    assert!(!out.contains("abc123"));
    encrypt_file_in_place(&path, &opts).unwrap();
    assert_eq!(mode_of(&path), 0o600);
    let plain = decrypt_file(&path, &ids).unwrap();
    assert_eq!(plain.expose_secret(), "token: abc123\n");
    // A second in-place encryption is refused and changes nothing.
    let before = fs::read(&path).unwrap();
    let err = encrypt_file_in_place(&path, &opts).unwrap_err();
    assert!(err.to_string().contains("already SOPS-encrypted"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), before);
    // Invalid YAML is refused with its position.
    let bad = dir.path().join("bad.yaml");
    fs::write(&bad, "a: [\n").unwrap();
    let err = encrypt_file_in_place(&bad, &opts).unwrap_err();
    assert!(err.to_string().contains("line "), "{err}");
    assert_eq!(fs::read_to_string(&bad).unwrap(), "a: [\n");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        3,
        "no temp files left"
    );
}

#[test]
fn timestamps_are_encrypted_as_time_values() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ids, r) = keygen(dir.path(), "key.txt");
    let encrypted = encrypt_text(
        "expires: 2031-01-01T00:00:00Z\n",
        &EncryptOptions::new(vec![r]),
    )
    .unwrap();
    assert!(encrypted.contains(",type:time]"));
    let doc = decrypt_text(&encrypted, &ids).unwrap();
    assert_eq!(
        emit_document(&doc.documents()[0], 4),
        "expires: 2031-01-01T00:00:00Z\n"
    );
}

#[test]
fn files_with_unsupported_features_are_refused_clearly() {
    let ids = vector_identities("example.key.txt");
    let text = read_testdata("example.enc.yaml").replace(
        "  lastmodified:",
        "  encrypted_comment_regex: sops:enc\n  lastmodified:",
    );
    match decrypt_text(&text, &ids) {
        Err(SopsError::Unsupported(what)) => assert!(what.contains("encrypted_comment_regex")),
        other => panic!("unexpected {other:?}"),
    }
    let text = read_testdata("flux-age-secret.enc.yaml").replace(
        "  encrypted_regex: ^(data|stringData)$\n",
        "  encrypted_regex: ^(data|stringData)$\n  unencrypted_suffix: _x\n",
    );
    assert!(matches!(
        decrypt_text(&text, &vector_identities("flux-age-secret.key.txt")),
        Err(SopsError::InvalidMetadata { .. })
    ));
}

#[test]
fn a_file_without_age_recipients_says_so() {
    let text = "a: ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]\nsops:\n    pgp:\n        - fp: ABC\n          enc: x\n    lastmodified: \"2024-01-01T00:00:00Z\"\n    mac: ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]\n    version: 3.9.0\n";
    assert_eq!(
        decrypt_text(text, &vector_identities("example.key.txt")).unwrap_err(),
        SopsError::NoAgeRecipients
    );
}
