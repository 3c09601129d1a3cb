//! `homelab secrets init` and `list`: the identity, `.sops.yaml`, a value for every secret
//! the plan needs, re-runs that add only what is missing, and refusals that change nothing.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use super::support::*;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn age_public_key(identity: &std::path::Path) -> String {
    require_tool("age-keygen");
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(identity)
        .output()
        .expect("age-keygen runs");
    assert!(
        out.status.success(),
        "age-keygen -y cannot read {}: {}",
        identity.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The age-encrypted data key of a SOPS file (its first `enc` block), unindented.
fn data_key_block(sops_text: &str) -> String {
    let mut block = String::new();
    let mut inside = false;
    for line in sops_text.lines() {
        let line = line.trim();
        if line == "-----BEGIN AGE ENCRYPTED FILE-----" {
            inside = true;
        }
        if inside {
            block.push_str(line);
            block.push('\n');
        }
        if line == "-----END AGE ENCRYPTED FILE-----" && inside {
            return block;
        }
    }
    panic!("no age-encrypted data key in:\n{sops_text}");
}

fn plan_secrets(lab: &Lab) -> Vec<serde_json::Value> {
    lab.run(&["plan", "--output", "json"]).ok().json()["secrets"]
        .as_array()
        .expect("the plan lists its secrets")
        .clone()
}

fn listed(lab: &Lab) -> Vec<serde_json::Value> {
    lab.run(&["secrets", "list", "--output", "json"])
        .ok()
        .json()["secrets"]
        .as_array()
        .expect("list gives secrets")
        .clone()
}

#[test]
fn init_creates_the_identity_the_sops_rules_and_every_secret_the_plan_needs() {
    let lab = Lab::seed();
    let run = lab.run(&["secrets", "init"]).ok();
    assert!(
        run.stdout.contains("created age identity"),
        "{}",
        run.transcript()
    );

    assert_eq!(mode(&lab.identity()), 0o600, "the identity file is private");
    assert_eq!(mode(lab.identity().parent().unwrap()), 0o700);
    let public = age_public_key(&lab.identity());
    assert!(run.stdout.contains(&public), "init shows the public key");

    let rules = lab.read(".sops.yaml");
    assert!(
        rules.contains(r"path_regex: (^|/)secrets\.sops\.yaml$"),
        "{rules}"
    );
    assert!(
        rules.contains("encrypted_regex: ^(data|stringData)$"),
        "{rules}"
    );
    assert_eq!(
        rules.matches(&public).count(),
        2,
        "both rules go to the new key: {rules}"
    );

    assert_eq!(mode(&lab.store()), 0o600);
    let store = lab.read("secrets.sops.yaml");
    assert!(store.contains(&format!("recipient: {public}")), "{store}");

    // Every secret of the plan is there: generated, or a "set me" placeholder.
    let needs = plan_secrets(&lab);
    assert!(
        needs.len() >= 10,
        "the seed lab needs its secrets: {needs:?}"
    );
    let list = listed(&lab);
    for need in &needs {
        let name = need["name"].as_str().unwrap();
        let entry = list
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("`{name}` is not in the secrets file"));
        let user_provided = need["generator"]["kind"] == "userProvided";
        assert_eq!(entry["stored"], true, "{entry}");
        assert_eq!(entry["set"], !user_provided, "{entry}");
        assert_eq!(entry["state"], if user_provided { "set me" } else { "set" });
        if user_provided {
            assert!(
                run.stdout.contains(&format!("set me: {name}")),
                "{}",
                run.stdout
            );
        }
        assert_eq!(entry["usedBy"], need["usedBy"], "{name}");
    }

    // Generated values have the shape their generator promises, and differ.
    let values = lab.values();
    let token = &values["k3s-token"];
    assert_eq!(token.len(), 64);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    let grafana = &values["grafana-admin-password"];
    assert_eq!(grafana.len(), 24);
    assert!(grafana.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(values["postgres-superuser-password"].len(), 32);
    assert!(values["traefik-dashboard-htpasswd"].starts_with("admin:$2"));
    let distinct: BTreeSet<&String> = values.values().collect();
    assert_eq!(
        distinct.len(),
        values.len(),
        "no two generated values are equal"
    );
    for value in values.values() {
        assert!(!run.stdout.contains(value.as_str()) && !run.stderr.contains(value.as_str()));
    }

    // The data key opens with the age CLI and the identity init wrote.
    require_tool("age");
    let mut age = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(lab.identity())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("age runs");
    use std::io::Write;
    age.stdin
        .take()
        .unwrap()
        .write_all(data_key_block(&store).as_bytes())
        .unwrap();
    let out = age.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "age -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), 32, "a SOPS data key is 32 bytes");
}

#[test]
fn init_again_adds_only_what_is_missing_and_says_what() {
    let lab = Lab::with_spec(homelab_spec::templates::MINIMAL);
    lab.init_secrets();
    let before = lab.values();

    // Nothing missing: nothing written.
    let state = lab.state();
    let run = lab.run(&["secrets", "init"]).ok();
    assert!(run.stdout.contains("nothing added"), "{}", run.stdout);
    assert_unchanged(&state, &lab.state(), "init with nothing missing");

    // The seed lab needs more: only those are added, existing values are kept.
    lab.write("homelab.yaml", homelab_spec::templates::SEED);
    let report = lab.init_secrets();
    let added: Vec<String> = report["generated"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["placeholders"].as_array().unwrap())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(
        added.contains(&"n8n-encryption-key".to_string()),
        "{report}"
    );
    for name in &added {
        assert!(
            !before.contains_key(name),
            "`{name}` existed and was added again"
        );
    }
    let after = lab.values();
    for (name, value) in &before {
        assert_eq!(&after[name], value, "init changed the existing `{name}`");
    }
    let names: BTreeSet<String> = listed(&lab)
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    for need in plan_secrets(&lab) {
        assert!(names.contains(need["name"].as_str().unwrap()));
    }
    let text = lab.run(&["secrets", "init"]).ok();
    assert!(text.stdout.contains("nothing added"), "{}", text.stdout);
}

#[test]
fn init_honours_sops_age_key_file_and_sops_age_key() {
    // SOPS_AGE_KEY_FILE names where the new identity goes.
    let mut lab = Lab::seed();
    let custom = lab.root().join("keys/custom.key");
    lab.set_env("SOPS_AGE_KEY_FILE", custom.to_str().unwrap());
    let report = lab.init_secrets();
    assert_eq!(report["identity"]["created"], true);
    assert_eq!(report["identity"]["file"], custom.to_str().unwrap());
    assert_eq!(mode(&custom), 0o600);
    assert!(!lab.identity().exists(), "the default path is not used");
    assert_eq!(
        report["recipients"][0].as_str().unwrap(),
        age_public_key(&custom)
    );

    // SOPS_AGE_KEY: the identity comes from the environment and no file is written.
    let mut lab = Lab::seed();
    let (key_file, public) = age_keygen(&lab.root().join("env.key"));
    let key = std::fs::read_to_string(&key_file).unwrap();
    lab.set_env("SOPS_AGE_KEY", &key);
    let report = lab.init_secrets();
    assert_eq!(report["identity"]["created"], false);
    assert_eq!(report["identity"]["file"], serde_json::Value::Null);
    assert_eq!(report["recipients"], serde_json::json!([public]));
    assert!(!lab.identity().exists());
    assert!(lab.get("k3s-token").len() == 64);
}

#[test]
fn init_refuses_an_existing_secrets_file_it_cannot_open_and_changes_nothing() {
    let lab = Lab::seed();
    lab.init_secrets();

    // The key is gone (another machine): no new identity, no new rules.
    let moved = lab.root().join("elsewhere.key");
    std::fs::rename(lab.identity(), &moved).unwrap();
    let state = lab.state();
    let run = lab.run(&["secrets", "init"]).expect(1);
    assert!(run.stderr.contains("no age identity"), "{}", run.stderr);
    assert!(run.stderr.contains("SOPS_AGE_KEY_FILE"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert_unchanged(&state, &lab.state(), "init without the key");

    // Another key: refused as the wrong key.
    let (other, _) = age_keygen(&lab.root().join("other.key"));
    let state = lab.state();
    let run = lab.run_with(
        &["secrets", "init"],
        &[("SOPS_AGE_KEY_FILE", other.to_str().unwrap())],
        "",
    );
    let run = run.expect(1);
    assert!(run.stderr.contains("wrong key"), "{}", run.stderr);
    assert!(run.stderr.contains("rekey --add"), "{}", run.stderr);
    assert_unchanged(&state, &lab.state(), "init with the wrong key");
}

#[test]
fn init_with_an_invalid_spec_writes_nothing() {
    let lab = Lab::with_spec(&homelab_spec::templates::SEED.replace("domain: ", "domian: "));
    let state = lab.state();
    let run = lab.run(&["secrets", "init"]).expect(2);
    assert!(run.stderr.contains("homelab.yaml"), "{}", run.stderr);
    assert_unchanged(&state, &lab.state(), "init with an invalid spec");
    assert!(!lab.identity().exists());
}

#[test]
fn list_shows_names_users_and_state_without_the_key_and_never_values() {
    let lab = Lab::seed();
    lab.init_secrets();
    let values = lab.values();
    lab.run_stdin(
        &["secrets", "set", "unused-extra", "--force"],
        "extra-value-123\n",
    )
    .ok();

    // Without any identity: names are plaintext in the file.
    std::fs::remove_file(lab.identity()).unwrap();
    let text = lab.run(&["secrets", "list"]).ok();
    assert!(text.stdout.starts_with("NAME"), "{}", text.stdout);
    let line = |name: &str| {
        text.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{}", text.stdout))
            .to_string()
    };
    assert!(line("k3s-token").contains(" set "), "{}", line("k3s-token"));
    assert!(line("k3s-token").contains("k3s"));
    assert!(line("cloudflare-api-token").contains("set me"));
    assert!(line("cloudflare-api-token").contains("cert-manager"));
    assert!(line("postgres-n8n-password").contains("n8n, postgres"));
    assert!(line("unused-extra").contains("(not used by the lab)"));
    for value in values
        .values()
        .map(String::as_str)
        .chain(["extra-value-123"])
    {
        assert!(!text.stdout.contains(value) && !text.stderr.contains(value));
    }
    let json = lab.run(&["secrets", "list", "--output", "json"]).ok();
    assert!(!json.stdout.contains(values["k3s-token"].as_str()));
    let doc = json.json();
    assert_eq!(doc["exists"], true);
    let token = doc["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "k3s-token")
        .unwrap()
        .clone();
    assert_eq!(token["usedBy"], serde_json::json!(["k3s"]));
    assert_eq!(token["source"], "random hex key (32 bytes)");
}

#[test]
fn list_without_a_secrets_file_shows_what_is_missing() {
    let lab = Lab::seed();
    let run = lab.run(&["secrets", "list"]).ok();
    assert!(
        run.stderr.contains("homelab secrets init"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("missing"), "{}", run.stdout);
    let doc = lab
        .run(&["secrets", "list", "--output", "json"])
        .ok()
        .json();
    assert_eq!(doc["exists"], false);
    assert!(
        doc["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "missing")
    );
}

#[test]
fn a_damaged_secrets_file_is_reported_by_list_and_init_without_changes() {
    let lab = Lab::seed();
    lab.init_secrets();
    lab.write("secrets.sops.yaml", "k3s-token: [unterminated\n");
    let state = lab.state();
    for args in [&["secrets", "list"][..], &["secrets", "init"][..]] {
        let run = lab.run(args).expect(1);
        assert!(run.stderr.contains("secrets.sops.yaml"), "{}", run.stderr);
        assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    }
    assert_unchanged(&state, &lab.state(), "list/init of a damaged file");
}
