//! `rekey`, `decrypt` and `encrypt`: recipients come and go without touching values, any
//! SOPS YAML file (the reference sops' included) decrypts, and encryption follows `.sops.yaml`.

use std::os::unix::fs::PermissionsExt;

use super::support::*;

fn initialised() -> Lab {
    let lab = Lab::seed();
    lab.init_secrets();
    lab
}

/// A copy of a reference key with the private mode an identity file must have.
fn private_copy(lab: &Lab, vector: &str) -> String {
    let to = lab.root().join(vector);
    std::fs::copy(sops_vector(vector), &to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    to.display().to_string()
}

#[test]
fn rekey_adds_and_removes_recipients_and_keeps_every_value() {
    let lab = initialised();
    let values = lab.values();
    let own = lab.init_secrets()["identity"]["publicKeys"][0]
        .as_str()
        .unwrap()
        .to_string();
    let (other_key, other) = age_keygen(&lab.root().join("other.key"));
    let other_env = [("SOPS_AGE_KEY_FILE", other_key.to_str().unwrap())];

    let before = lab
        .run_with(&["secrets", "decrypt", "secrets.sops.yaml"], &other_env, "")
        .expect(1);
    assert!(before.stderr.contains("wrong key"), "{}", before.stderr);

    let run = lab.run(&["secrets", "rekey", "--add", &other]).ok();
    assert!(
        run.stdout.contains(&format!("added:   {other}")),
        "{}",
        run.stdout
    );
    assert_eq!(lab.values(), values, "rekeying keeps every value");
    let rules = lab.read(".sops.yaml");
    assert_eq!(rules.matches(&other).count(), 2, "{rules}");
    let theirs = lab
        .run_with(&["secrets", "get", "k3s-token"], &other_env, "")
        .ok();
    assert_eq!(theirs.stdout.trim_end(), values["k3s-token"]);

    // Removing your own key would lock you out.
    let state = lab.state();
    let run = lab.run(&["secrets", "rekey", "--remove", &own]).expect(2);
    assert!(run.stderr.contains("lock you out"), "{}", run.stderr);
    assert_unchanged(&state, &lab.state(), "removing one's own key");

    let json = lab
        .run(&["secrets", "rekey", "--remove", &other, "--output", "json"])
        .ok()
        .json();
    assert_eq!(json["removed"], serde_json::json!([other]));
    assert_eq!(json["recipients"], serde_json::json!([own]));
    assert!(!lab.read(".sops.yaml").contains(&other));
    let after = lab
        .run_with(&["secrets", "get", "k3s-token"], &other_env, "")
        .expect(1);
    assert!(after.stderr.contains("wrong key"), "{}", after.stderr);
    assert_eq!(lab.values(), values);
}

#[test]
fn rekey_refuses_bad_recipients_and_changes_nothing() {
    let lab = initialised();
    let (_, stranger) = age_keygen(&lab.root().join("stranger.key"));
    let state = lab.state();
    for (args, message) in [
        (vec!["secrets", "rekey"], "--add"),
        (
            vec!["secrets", "rekey", "--add", "age1notakey"],
            "is not an age recipient",
        ),
        (
            vec!["secrets", "rekey", "--add", "AGE-SECRET-KEY-1XYZ"],
            "is not an age recipient",
        ),
        (
            vec!["secrets", "rekey", "--remove", &stranger],
            "is not a recipient",
        ),
    ] {
        let run = lab.run(&args).expect(2);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
        assert_unchanged(&state, &lab.state(), &format!("{args:?}"));
    }
}

#[test]
fn decrypt_reads_files_written_by_the_reference_sops() {
    let lab = Lab::seed();
    let key = private_copy(&lab, "example.key.txt");
    let run = lab
        .run_with(
            &[
                "secrets",
                "decrypt",
                sops_vector("example.enc.yaml").to_str().unwrap(),
            ],
            &[("SOPS_AGE_KEY_FILE", &key)],
            "",
        )
        .ok();
    let plain = std::fs::read_to_string(sops_vector("example.plain.yaml")).unwrap();
    assert_eq!(run.stdout, plain, "types and order survive");

    let key = private_copy(&lab, "flux-age-secret.key.txt");
    let run = lab
        .run_with(
            &[
                "secrets",
                "decrypt",
                sops_vector("flux-age-secret.enc.yaml").to_str().unwrap(),
            ],
            &[("SOPS_AGE_KEY_FILE", &key)],
            "",
        )
        .ok();
    assert!(run.stdout.contains("stringData:"), "{}", run.stdout);
    assert!(run.stdout.contains("key: value"), "{}", run.stdout);

    // With SOPS_AGE_KEY instead of a file.
    let inline = std::fs::read_to_string(sops_vector("example.key.txt")).unwrap();
    let run = lab
        .run_with(
            &[
                "secrets",
                "decrypt",
                sops_vector("example.enc.yaml").to_str().unwrap(),
            ],
            &[("SOPS_AGE_KEY", &inline)],
            "",
        )
        .ok();
    assert_eq!(run.stdout, plain);
}

#[test]
fn encrypt_follows_the_sops_yaml_rules_and_round_trips() {
    let lab = initialised();
    // A Flux Secret: only data/stringData are encrypted.
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n    name: demo\n    namespace: apps\nstringData:\n    password: hunter2-plain\n    port: \"5432\"\n";
    lab.write("apps/demo.sops.yaml", secret);
    let run = lab.run(&["secrets", "encrypt", "apps/demo.sops.yaml"]).ok();
    let encrypted = run.stdout;
    assert!(
        encrypted.contains("kind: Secret") && encrypted.contains("name: demo"),
        "{encrypted}"
    );
    assert!(
        encrypted.contains("password: ENC[AES256_GCM,"),
        "{encrypted}"
    );
    assert!(!encrypted.contains("hunter2-plain"));
    assert!(
        encrypted.contains("encrypted_regex: ^(data|stringData)$"),
        "{encrypted}"
    );
    assert_eq!(
        lab.read("apps/demo.sops.yaml"),
        secret,
        "without --in-place the file stays"
    );
    lab.write("apps/demo-enc.sops.yaml", &encrypted);
    let back = lab
        .run(&["secrets", "decrypt", "apps/demo-enc.sops.yaml"])
        .ok();
    assert_eq!(back.stdout, secret);

    // Under the secrets-store rule every value is encrypted; types survive.
    let typed = "name: \"007\"\ncount: 3\nratio: 1.5\nenabled: true\nlist:\n    - a\n    - 2\n";
    let path = lab.write("more/secrets.sops.yaml", typed);
    let run = lab
        .run(&["secrets", "encrypt", "--in-place", "more/secrets.sops.yaml"])
        .ok();
    assert!(
        run.stdout
            .contains("encrypted more/secrets.sops.yaml in place"),
        "{}",
        run.stdout
    );
    let on_disk = lab.read("more/secrets.sops.yaml");
    assert!(
        on_disk.contains("count: ENC[AES256_GCM,") && on_disk.contains("type:int]"),
        "{on_disk}"
    );
    assert!(on_disk.contains("type:float]") && on_disk.contains("type:bool]"));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let back = lab
        .run(&["secrets", "decrypt", "more/secrets.sops.yaml"])
        .ok();
    assert_eq!(back.stdout, typed);

    // Encrypting it again is refused and changes nothing.
    let state = lab.state();
    let again = lab
        .run(&["secrets", "encrypt", "-i", "more/secrets.sops.yaml"])
        .expect(1);
    assert!(
        again.stderr.contains("already SOPS-encrypted"),
        "{}",
        again.stderr
    );
    assert_unchanged(&state, &lab.state(), "encrypting twice");
}

#[test]
fn encrypt_without_a_matching_rule_says_what_to_do_and_age_overrides() {
    let lab = initialised();
    lab.write("notes.yaml", "token: abc-123-def\n");
    let state = lab.state();
    let run = lab
        .run(&["secrets", "encrypt", "-i", "notes.yaml"])
        .expect(1);
    assert!(
        run.stderr.contains("no creation rule matches `notes.yaml`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--age"), "{}", run.stderr);
    assert_unchanged(&state, &lab.state(), "encrypt without a rule");

    let (_, other) = age_keygen(&lab.root().join("other.key"));
    let run = lab
        .run(&["secrets", "encrypt", "notes.yaml", "--age", &other])
        .ok();
    assert!(
        run.stdout.contains(&format!("recipient: {other}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("token: ENC[AES256_GCM,"),
        "{}",
        run.stdout
    );

    // Outside any directory with a .sops.yaml.
    let elsewhere = tempfile::tempdir().unwrap();
    let file = elsewhere.path().join("x.yaml");
    std::fs::write(&file, "a: b\n").unwrap();
    let run = lab
        .run(&["secrets", "encrypt", file.to_str().unwrap()])
        .expect(1);
    assert!(run.stderr.contains("no .sops.yaml found"), "{}", run.stderr);
    assert!(
        run.stderr.contains("homelab secrets init"),
        "{}",
        run.stderr
    );
}

#[test]
fn decrypt_refuses_plaintext_missing_and_damaged_files() {
    let lab = initialised();
    lab.write("plain.yaml", "a: b\n");
    let run = lab.run(&["secrets", "decrypt", "plain.yaml"]).expect(1);
    assert!(run.stderr.contains("not SOPS-encrypted"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    let run = lab.run(&["secrets", "decrypt", "nope.yaml"]).expect(1);
    assert!(
        run.stderr.contains("cannot read nope.yaml"),
        "{}",
        run.stderr
    );
    // lastmodified is covered by the MAC.
    let text = lab.read("secrets.sops.yaml");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("lastmodified:"))
        .unwrap();
    let changed = line.replace("20", "19");
    assert_ne!(line, changed);
    lab.write("secrets.sops.yaml", text.replace(line, &changed));
    let run = lab
        .run(&["secrets", "decrypt", "secrets.sops.yaml"])
        .expect(1);
    assert!(run.stderr.contains("MAC"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}
