//! `homelab secrets doctor` through the binary: a healthy lab, each kind of problem reported
//! with its next step and exit 1, nothing written, the JSON form, and the Vault checks against
//! a real OpenBao server (a working, a revoked and an unreachable key, the spec's key missing).

use crate::support::*;
use crate::tools::Bao;

/// The minimal lab, initialised, with its one user-provided secret set.
fn healthy() -> Lab {
    let lab = Lab::with_spec(homelab_spec::templates::MINIMAL);
    lab.init_secrets();
    lab.run_stdin(&["secrets", "set", "cloudflare-api-token"], "cf-token-1\n")
        .ok();
    lab
}

fn checks(run: &Run) -> Vec<(String, String, String)> {
    run.json()["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_string(),
                c["subject"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn status_of(run: &Run, kind: &str, subject: &str) -> String {
    checks(run)
        .into_iter()
        .find(|(k, s, _)| k == kind && s.contains(subject))
        .map(|(_, _, st)| st)
        .unwrap_or_else(|| panic!("no {kind} check for {subject}: {}", run.stdout))
}

#[test]
fn a_healthy_lab_passes_every_check() {
    let lab = healthy();
    let before = lab.state();
    let run = lab.run(&["secrets", "doctor"]).ok();
    assert!(
        run.stdout.contains("secrets.sops.yaml is healthy"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("identity-file"), "{}", run.stdout);
    assert!(!run.stdout.contains("FAIL"), "{}", run.stdout);
    let json = lab.run(&["secrets", "doctor", "--output", "json"]).ok();
    let doc = json.json();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["healthy"], true);
    assert_eq!(doc["failed"], 0);
    assert_eq!(status_of(&json, "age-recipient", "age1"), "ok");
    assert_eq!(status_of(&json, "file", "secrets.sops.yaml"), "ok");
    assert_eq!(status_of(&json, "secret", "cloudflare-api-token"), "ok");
    assert_eq!(status_of(&json, "identity-file", "age.key"), "ok");
    assert_unchanged(&before, &lab.state(), "doctor");
    assert!(!run.stdout.contains("cf-token-1") && !json.stdout.contains("cf-token-1"));
}

#[test]
fn each_problem_is_a_check_with_its_next_step_and_nothing_is_written() {
    let lab = Lab::with_spec(homelab_spec::templates::MINIMAL);
    lab.init_secrets();
    // cloudflare-api-token stays unset; a value nothing uses; someone else's recipient.
    lab.run_stdin(
        &["secrets", "set", "old-api-key", "--force"],
        "x-unused-1\n",
    )
    .ok();
    let (_, friend) = age_keygen(&lab.root().join("friend.key"));
    lab.run(&["secrets", "rekey", "--add", &friend]).ok();
    // A spec that references a secret the file lacks.
    let spec = lab.read("homelab.yaml");
    lab.write(
        "homelab.yaml",
        spec.replacen(
            "{secret: cloudflare-api-token}",
            "{secret: cloudflare-token-new}",
            1,
        ),
    );
    let before = lab.state();
    let run = lab.run(&["secrets", "doctor"]).expect(1);
    for part in [
        "FAIL  secret          cloudflare-token-new: cert-manager DNS-01 solver needs the secret `cloudflare-token-new`, which secrets.sops.yaml does not hold",
        "next: set it with `homelab secrets set cloudflare-token-new`",
        "warn  unused-value    old-api-key: nothing in the lab uses this value",
        &format!("warn  age-recipient   {friend}: not checked"),
        "warn  unused-value    cloudflare-api-token",
        "is not healthy: 1 failed, 3 warnings",
    ] {
        assert!(run.stdout.contains(part), "{part}:\n{}", run.stdout);
    }
    assert!(!run.stdout.contains("x-unused-1"));
    let json = lab
        .run(&["secrets", "doctor", "--output", "json"])
        .expect(1);
    assert_eq!(json.json()["healthy"], false);
    assert_eq!(status_of(&json, "unused-value", "old-api-key"), "warning");
    assert_unchanged(&before, &lab.state(), "doctor of an unhealthy lab");

    // The original spec: the secret exists but has no value.
    lab.write("homelab.yaml", &spec);
    let run = lab.run(&["secrets", "doctor"]).expect(1);
    assert!(
        run.stdout
            .contains("cloudflare-api-token: in the file without a value"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_readable_key_file_a_damaged_file_and_no_file_fail() {
    use std::os::unix::fs::PermissionsExt;
    let lab = healthy();
    std::fs::set_permissions(lab.identity(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = lab.run(&["secrets", "doctor"]).expect(1);
    assert!(
        run.stdout
            .contains("mode 0644: others on this machine may read your age key"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("next: chmod 600"), "{}", run.stdout);
    std::fs::set_permissions(lab.identity(), std::fs::Permissions::from_mode(0o600)).unwrap();

    // One encrypted value changed by hand: the key still opens the data key, the file does
    // not verify with it.
    let store = lab.read("secrets.sops.yaml");
    let line = store
        .lines()
        .find(|l| l.starts_with("k3s-token: ENC["))
        .expect("an encrypted k3s-token");
    let at = line.find("data:").unwrap() + 5;
    let mut damaged = line.to_string();
    let c = damaged.as_bytes()[at];
    damaged.replace_range(at..at + 1, if c == b'A' { "B" } else { "A" });
    lab.write("secrets.sops.yaml", store.replace(line, &damaged));
    let run = lab
        .run(&["secrets", "doctor", "--output", "json"])
        .expect(1);
    assert_eq!(status_of(&run, "age-recipient", "age1"), "failed");
    assert_eq!(status_of(&run, "file", "secrets.sops.yaml"), "failed");
    assert!(run.stdout.contains("does not verify"), "{}", run.stdout);

    std::fs::remove_file(lab.store()).unwrap();
    let run = lab.run(&["secrets", "doctor"]).expect(1);
    assert!(
        run.stdout.contains("the secrets file does not exist"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("homelab secrets init"),
        "{}",
        run.stdout
    );

    lab.write("homelab.yaml", "name: [\n");
    lab.run(&["secrets", "doctor"]).expect(2);
}

#[test]
fn vault_keys_are_tried_through_their_server() {
    let mut bao = Bao::start();
    let token = bao.sops_token();
    let spec = format!(
        "{}\nsecrets:\n  vault:\n    address: {}\n    key: homelab\n",
        homelab_spec::templates::MINIMAL,
        bao.address
    );
    // The file first without the spec's key.
    let mut lab = Lab::with_spec(homelab_spec::templates::MINIMAL);
    lab.init_secrets();
    lab.run_stdin(&["secrets", "set", "cloudflare-api-token"], "cf\n")
        .ok();
    lab.write("homelab.yaml", &spec);
    lab.set_env("VAULT_TOKEN", &token);
    let run = lab
        .run(&["secrets", "doctor", "--output", "json"])
        .expect(1);
    assert_eq!(status_of(&run, "spec-vault-key", &bao.key_uri()), "failed");
    assert!(
        run.stdout.contains("homelab secrets rekey --add-vault"),
        "{}",
        run.stdout
    );

    lab.run(&["secrets", "rekey", "--add-vault"]).ok();
    let run = lab.run(&["secrets", "doctor", "--output", "json"]).ok();
    assert_eq!(status_of(&run, "vault-key", &bao.key_uri()), "ok");
    assert_eq!(status_of(&run, "spec-vault-key", &bao.key_uri()), "ok");
    // Through Vault alone (no age key here), the key still checks out.
    let keyless = lab.root().join("keyless");
    std::fs::create_dir(&keyless).unwrap();
    let keyless = keyless.display().to_string();
    let run = lab
        .run_with(
            &["secrets", "doctor", "--output", "json"],
            &[("HOME", &keyless)],
            "",
        )
        .ok();
    assert_eq!(status_of(&run, "vault-key", &bao.key_uri()), "ok");
    assert_eq!(status_of(&run, "identity-file", "age.key"), "warning");

    // A revoked token: the key fails, naming the refusal; the age key still opens the file.
    let revoked = bao.sops_token();
    bao.ok(&["token", "revoke", &revoked]);
    let run = lab
        .run_with(&["secrets", "doctor"], &[("VAULT_TOKEN", &revoked)], "")
        .expect(1);
    assert!(run.stdout.contains("FAIL  vault-key"), "{}", run.stdout);
    assert!(run.stdout.contains("revoked or expired"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("ok    file            secrets.sops.yaml: opens and verifies"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains(&revoked) && !run.stderr.contains(&revoked));
    // The server gone: unreachable.
    bao.stop();
    let run = lab.run(&["secrets", "doctor"]).expect(1);
    assert!(
        run.stdout.contains("cannot reach Vault at"),
        "{}",
        run.stdout
    );
}
