//! `get`, `set`, `rotate` and `edit`: values go in through stdin or a hidden prompt and out
//! only through `get`'s stdout; every refusal and failure leaves every file as it was.

use std::process::Command;

use secrecy::SecretString;

use super::support::*;

fn initialised() -> Lab {
    let lab = Lab::seed();
    lab.init_secrets();
    lab
}

fn require_htpasswd_verifies(line: &str, user: &str, password: &str, dir: &std::path::Path) {
    require_tool("htpasswd");
    let file = dir.join("htpasswd-check");
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let out = Command::new("htpasswd")
        .arg("-vb")
        .arg(&file)
        .arg(user)
        .arg(password)
        .output()
        .expect("htpasswd runs");
    assert!(
        out.status.success(),
        "htpasswd does not accept the password: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn get_prints_the_value_to_a_pipe_and_refuses_a_terminal_without_reveal() {
    let lab = initialised();
    let run = lab.run(&["secrets", "get", "k3s-token"]).ok();
    assert_eq!(run.stdout.len(), 65, "64 hex digits and a newline");
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let token = run.stdout.trim_end().to_string();

    let tty = lab.run_tty(&["secrets", "get", "k3s-token"], &[]);
    assert_eq!(tty.code, 2, "{}", tty.transcript());
    assert!(
        tty.stdout
            .contains("refusing to print secret `k3s-token` to a terminal")
    );
    assert!(tty.stdout.contains("--reveal"));
    assert!(!tty.stdout.contains(&token));

    let shown = lab.run_tty(&["secrets", "get", "k3s-token", "--reveal"], &[]);
    assert_eq!(shown.code, 0, "{}", shown.transcript());
    assert!(shown.stdout.contains(&token));
}

#[test]
fn get_reports_unknown_and_unset_names_with_what_to_do() {
    let lab = initialised();
    let run = lab.run(&["secrets", "get", "k3s-tokn"]).expect(2);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("unknown secret `k3s-tokn`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("k3s-token"),
        "the names that exist are listed"
    );
    let run = lab
        .run(&["secrets", "get", "cloudflare-api-token"])
        .expect(1);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr
            .contains("homelab secrets set cloudflare-api-token"),
        "{}",
        run.stderr
    );
}

#[test]
fn set_reads_stdin_strips_one_newline_and_changes_only_that_secret() {
    let lab = initialised();
    let before = lab.values();
    let run = lab
        .run_stdin(
            &["secrets", "set", "cloudflare-api-token"],
            "cf-token-value-1\n",
        )
        .ok();
    assert!(
        run.stdout.contains("cloudflare-api-token"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("homelab apply"), "{}", run.stdout);
    assert!(run.stdout.contains("cert-manager"), "{}", run.stdout);
    assert!(!run.stdout.contains("cf-token-value-1") && !run.stderr.contains("cf-token-value-1"));
    assert_eq!(lab.get("cloudflare-api-token"), "cf-token-value-1");
    let after = lab.values();
    for (name, value) in &before {
        assert_eq!(&after[name], value, "`{name}` changed");
    }
    // Only one newline goes; inner and other whitespace stays.
    lab.run_stdin(
        &["secrets", "set", "cloudflare-api-token"],
        " two words \n\n",
    )
    .ok();
    assert_eq!(lab.get("cloudflare-api-token"), " two words \n");
    // `get | set` round-trips.
    let json = lab
        .run_stdin(
            &[
                "secrets",
                "set",
                "grafana-admin-password",
                "--output",
                "json",
            ],
            &format!("{}\n", before["k3s-token"]),
        )
        .ok()
        .json();
    assert_eq!(json["outcome"], "replaced");
    assert_eq!(json["reapply"], serde_json::json!(["prometheus"]));
    assert_eq!(lab.get("grafana-admin-password"), before["k3s-token"]);
}

#[test]
fn set_refuses_bad_input_and_changes_nothing() {
    let lab = initialised();
    let state = lab.state();
    let cases: [(&[&str], &str, i32, &str); 6] = [
        (
            &["secrets", "set", "cloudflare-api-token"],
            "",
            2,
            "empty value",
        ),
        (
            &["secrets", "set", "cloudflare-api-token"],
            "\n",
            2,
            "empty value",
        ),
        (
            &["secrets", "set", "cloudflare-api-tokn"],
            "value-123",
            2,
            "the lab does not use a secret named `cloudflare-api-tokn`",
        ),
        (
            &["secrets", "set", "bad name", "--force"],
            "value-123",
            2,
            "invalid secret name",
        ),
        (
            &["secrets", "set", "sops", "--force"],
            "value-123",
            2,
            "reserved",
        ),
        // Values never come from the command line.
        (
            &["secrets", "set", "cloudflare-api-token", "value-on-argv"],
            "",
            2,
            "unexpected argument",
        ),
    ];
    for (args, stdin, code, message) in cases {
        let run = lab.run_stdin(args, stdin).expect(code);
        assert!(
            run.stderr.contains(message),
            "{args:?}: expected `{message}`:\n{}",
            run.stderr
        );
        assert_unchanged(&state, &lab.state(), &format!("{args:?}"));
    }
    let unknown = lab
        .run_stdin(&["secrets", "set", "cloudflare-api-tokn"], "value-123")
        .expect(2);
    assert!(unknown.stderr.contains("--force"), "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("cloudflare-api-token"),
        "the needed names are listed"
    );
    assert!(unknown.stderr.contains("nothing was changed"));
    let binary = lab
        .run_with(
            &["secrets", "set", "cloudflare-api-token"],
            &[],
            [0xff, 0xfe, b'x'],
        )
        .expect(2);
    assert!(binary.stderr.contains("not UTF-8"), "{}", binary.stderr);
    assert_unchanged(&state, &lab.state(), "set with binary input");
}

#[test]
fn set_with_force_stores_a_name_the_lab_does_not_use_and_warns() {
    let lab = initialised();
    let run = lab
        .run_stdin(&["secrets", "set", "my-extra", "--force"], "extra-123")
        .ok();
    assert!(
        run.stderr.contains("warning: storing `my-extra`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("k3s-token"),
        "the warning lists the needed names"
    );
    assert_eq!(lab.get("my-extra"), "extra-123");
}

#[test]
fn set_prompts_twice_without_echo_on_a_terminal() {
    let lab = initialised();
    let run = lab.run_tty(
        &["secrets", "set", "cloudflare-api-token"],
        &[
            ("Value for cloudflare-api-token", "typed-secret-42"),
            ("again", "typed-secret-42"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        !run.stdout.contains("typed-secret-42"),
        "the typed value was echoed:\n{}",
        run.stdout
    );
    assert_eq!(lab.get("cloudflare-api-token"), "typed-secret-42");

    let state = lab.state();
    let run = lab.run_tty(
        &["secrets", "set", "cloudflare-api-token"],
        &[("Value for", "first-value-1"), ("again", "second-value-2")],
    );
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stdout.contains("the two values differ"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("first-value-1") && !run.stdout.contains("second-value-2"));
    assert_unchanged(&state, &lab.state(), "set with two different values");
}

#[test]
fn setting_the_dashboard_password_rewrites_its_htpasswd_line() {
    let lab = initialised();
    let run = lab
        .run_stdin(
            &["secrets", "set", "traefik-dashboard-password"],
            "dashboard-pass-9\n",
        )
        .ok();
    assert!(
        run.stdout.contains("traefik-dashboard-htpasswd"),
        "{}",
        run.stdout
    );
    let line = lab.get("traefik-dashboard-htpasswd");
    require_htpasswd_verifies(&line, "admin", "dashboard-pass-9", lab.root());
}

#[test]
fn rotate_gives_new_values_to_the_secret_and_what_is_made_from_it() {
    let lab = initialised();
    let before = lab.values();
    let run = lab.run(&["secrets", "rotate", "paperless-secret-key"]).ok();
    assert!(
        run.stdout.contains("rotated paperless-secret-key"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("`homelab apply` (components: paperless)"),
        "{}",
        run.stdout
    );
    let after = lab.values();
    assert_ne!(
        after["paperless-secret-key"],
        before["paperless-secret-key"]
    );
    assert_eq!(after["paperless-secret-key"].len(), 64);
    for (name, value) in &before {
        if name != "paperless-secret-key" {
            assert_eq!(&after[name], value, "`{name}` changed");
        }
    }

    // Values that live on in etcd or a database are changed by hand, as the refusal says.
    let state = lab.state();
    for (name, how) in [
        ("k3s-token", "k3s token rotate"),
        ("n8n-encryption-key", "n8n export:credentials"),
        ("grafana-admin-password", "reset-admin-password"),
        ("postgres-superuser-password", "ALTER ROLE postgres"),
        ("postgres-n8n-password", "ALTER ROLE n8n"),
    ] {
        let refused = lab.run(&["secrets", "rotate", name]).expect(2);
        assert!(refused.stderr.contains(how), "{name}: {}", refused.stderr);
    }
    assert_unchanged(
        &state,
        &lab.state(),
        "refused rotations of stateful secrets",
    );

    let json = lab
        .run(&[
            "secrets",
            "rotate",
            "traefik-dashboard-htpasswd",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(
        json["rotated"],
        serde_json::json!(["traefik-dashboard-password", "traefik-dashboard-htpasswd"])
    );
    assert_eq!(
        json["reapply"],
        serde_json::json!(["prometheus", "traefik"])
    );
    let password = lab.get("traefik-dashboard-password");
    assert_ne!(password, before["traefik-dashboard-password"]);
    require_htpasswd_verifies(
        &lab.get("traefik-dashboard-htpasswd"),
        "admin",
        &password,
        lab.root(),
    );
    let everything = serde_json::to_string(&json).unwrap();
    assert!(!everything.contains(&password));

    let state = lab.state();
    let user = lab
        .run(&["secrets", "rotate", "cloudflare-api-token"])
        .expect(2);
    assert!(
        user.stderr
            .contains("homelab secrets set cloudflare-api-token"),
        "{}",
        user.stderr
    );
    let unknown = lab.run(&["secrets", "rotate", "nope"]).expect(2);
    assert!(
        unknown.stderr.contains("unknown secret `nope`"),
        "{}",
        unknown.stderr
    );
    assert_unchanged(&state, &lab.state(), "refused rotations");
}

/// An editor that records the mode of the file it is given, then runs `action` on it.
fn editor(lab: &Lab, action: &str) -> String {
    let script = lab.root().join("editor.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nstat -c %a \"$1\" > {0}/editor-saw-mode\necho \"$1\" > {0}/editor-saw-path\n{action}\n",
            lab.root().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.display().to_string()
}

fn runtime_is_empty(lab: &Lab) -> bool {
    std::fs::read_dir(lab.runtime()).unwrap().next().is_none()
}

#[test]
fn edit_saves_a_valid_change_through_a_private_temporary_file() {
    let lab = initialised();
    let before = lab.values();
    let ed = editor(
        &lab,
        r#"sed -i 's/^cloudflare-api-token: .*/cloudflare-api-token: edited-token-7/' "$1""#,
    );
    let run = lab
        .run_with(&["secrets", "edit"], &[("EDITOR", &ed)], "")
        .ok();
    assert!(run.stdout.contains("saved"), "{}", run.stdout);
    assert_eq!(lab.get("cloudflare-api-token"), "edited-token-7");
    assert_eq!(lab.get("k3s-token"), before["k3s-token"]);
    let saw_mode = std::fs::read_to_string(lab.root().join("editor-saw-mode")).unwrap();
    assert_eq!(saw_mode.trim(), "600");
    let saw_path = std::fs::read_to_string(lab.root().join("editor-saw-path")).unwrap();
    assert!(
        saw_path.starts_with(&lab.runtime().display().to_string()),
        "{saw_path}"
    );
    assert!(runtime_is_empty(&lab), "the plaintext copy is removed");
    assert!(!lab.read("secrets.sops.yaml").contains("edited-token-7"));

    let state = lab.state();
    let run = lab
        .run_with(&["secrets", "edit"], &[("EDITOR", "true")], "")
        .ok();
    assert!(run.stdout.contains("no changes"), "{}", run.stdout);
    assert_unchanged(&state, &lab.state(), "edit without changes");
}

#[test]
fn edit_leaves_the_file_unchanged_when_the_editor_fails_or_the_result_is_invalid() {
    let lab = initialised();
    let state = lab.state();
    let cases = [
        ("exit 3", "exited with status 3"),
        (r#"printf 'k3s-token: [broken\n' > "$1""#, "not valid"),
        (
            r#"printf 'k3s-token:\n  nested: map\n' > "$1""#,
            "single string value",
        ),
        (r#"printf 'sops: x\n' > "$1""#, "reserved"),
    ];
    for (action, message) in cases {
        let ed = editor(&lab, action);
        let run = lab
            .run_with(&["secrets", "edit"], &[("EDITOR", &ed)], "")
            .expect(1);
        assert!(run.stderr.contains(message), "{action}: {}", run.stderr);
        assert!(run.stderr.contains("unchanged"), "{}", run.stderr);
        assert!(
            runtime_is_empty(&lab),
            "{action}: the plaintext copy is removed"
        );
        let mut now = lab.state();
        for f in ["editor.sh", "editor-saw-mode", "editor-saw-path"] {
            now.remove(std::path::Path::new(f));
        }
        assert_unchanged(&state, &now, action);
    }
}

#[test]
fn commands_that_need_the_key_fail_clearly_without_it_or_with_the_wrong_one() {
    let lab = initialised();
    let (other, _) = age_keygen(&lab.root().join("other.key"));
    let moved = lab.root().join("moved.key");
    std::fs::rename(lab.identity(), &moved).unwrap();
    let state = lab.state();
    let commands: [(&[&str], &str); 5] = [
        (&["secrets", "get", "k3s-token"], ""),
        (&["secrets", "set", "cloudflare-api-token"], "v-123"),
        (&["secrets", "rotate", "paperless-secret-key"], ""),
        (&["secrets", "edit"], ""),
        (&["secrets", "decrypt", "secrets.sops.yaml"], ""),
    ];
    for (args, stdin) in commands {
        let run = lab.run_with(args, &[("EDITOR", "true")], stdin).expect(1);
        assert!(
            run.stderr.contains("no age identity"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("homelab secrets init"),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty());
        let run = lab
            .run_with(
                args,
                &[
                    ("EDITOR", "true"),
                    ("SOPS_AGE_KEY_FILE", other.to_str().unwrap()),
                ],
                stdin,
            )
            .expect(1);
        assert!(run.stderr.contains("wrong key"), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("secrets.sops.yaml"), "{}", run.stderr);
        assert!(run.stdout.is_empty());
    }
    let missing = lab.run_with(
        &["secrets", "get", "k3s-token"],
        &[("SOPS_AGE_KEY_FILE", "/nonexistent/key")],
        "",
    );
    let missing = missing.expect(1);
    assert!(
        missing.stderr.contains("SOPS_AGE_KEY_FILE points to"),
        "{}",
        missing.stderr
    );
    assert_unchanged(&state, &lab.state(), "commands without the right key");
}

#[test]
fn a_tampered_secrets_file_is_refused_by_every_command_and_left_as_it_is() {
    let lab = initialised();
    let text = lab.read("secrets.sops.yaml");
    // One byte of one value's ciphertext, and separately the MAC.
    let value_at = text.find("k3s-token: ENC[AES256_GCM,data:").unwrap() + 32;
    let mut bytes = text.clone().into_bytes();
    bytes[value_at] = if bytes[value_at] == b'A' { b'B' } else { b'A' };
    let tampered_value = String::from_utf8(bytes).unwrap();
    let mac_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("mac:"))
        .unwrap();
    let mac_at = text.find(mac_line).unwrap() + mac_line.find("data:").unwrap() + 5;
    let mut bytes = text.clone().into_bytes();
    bytes[mac_at] = if bytes[mac_at] == b'A' { b'B' } else { b'A' };
    let tampered_mac = String::from_utf8(bytes).unwrap();
    for (what, tampered, reason) in [
        ("value", tampered_value, "failed authentication"),
        ("mac", tampered_mac, "MAC could not be authenticated"),
    ] {
        lab.write("secrets.sops.yaml", &tampered);
        let state = lab.state();
        for (args, stdin) in [
            (&["secrets", "get", "grafana-admin-password"][..], ""),
            (&["secrets", "set", "cloudflare-api-token"][..], "v-123"),
            (&["secrets", "rotate", "paperless-secret-key"][..], ""),
            (&["secrets", "decrypt", "secrets.sops.yaml"][..], ""),
            (&["secrets", "init"][..], ""),
        ] {
            let run = lab.run_stdin(args, stdin).expect(1);
            assert!(
                run.stderr.contains("cannot decrypt secrets.sops.yaml"),
                "{what} {args:?}: {}",
                run.stderr
            );
            assert!(
                run.stderr.contains(reason),
                "{what} {args:?}: {}",
                run.stderr
            );
            assert!(run.stderr.contains("git checkout"), "{}", run.stderr);
            assert!(run.stdout.is_empty());
        }
        assert_unchanged(&state, &lab.state(), what);
    }
}

#[test]
fn commands_without_a_secrets_file_say_to_run_init_and_write_nothing() {
    let lab = Lab::seed();
    let state = lab.state();
    for (args, stdin) in [
        (&["secrets", "get", "k3s-token"][..], ""),
        (&["secrets", "set", "cloudflare-api-token"][..], "v-123"),
        (&["secrets", "rotate", "paperless-secret-key"][..], ""),
        (&["secrets", "edit"][..], ""),
    ] {
        let run = lab.run_with(args, &[("EDITOR", "true")], stdin).expect(1);
        assert!(
            run.stderr.contains("secrets.sops.yaml does not exist"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("homelab secrets init"),
            "{}",
            run.stderr
        );
    }
    let run = lab
        .run(&[
            "secrets",
            "rekey",
            "--add",
            "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
        ])
        .expect(1);
    assert!(
        run.stderr.contains("homelab secrets init"),
        "{}",
        run.stderr
    );
    assert_unchanged(&state, &lab.state(), "commands without a secrets file");
}

#[test]
fn a_dashboard_password_bcrypt_cannot_use_is_refused_before_anything_is_saved() {
    let lab = initialised();
    let state = lab.state();
    let long = "x".repeat(73);
    let run = lab
        .run_stdin(&["secrets", "set", "traefik-dashboard-password"], &long)
        .expect(2);
    assert!(run.stderr.contains("72 bytes"), "{}", run.stderr);
    assert!(!run.stderr.contains(&long));
    assert_unchanged(&state, &lab.state(), "a password too long for bcrypt");
}

/// The seed lab with single sign-on for one user.
fn sso_lab() -> Lab {
    let spec = format!(
        "{}\nauth:\n  sso:\n    provider: authelia\n    users: [{{name: alice}}]\n",
        homelab_spec::templates::SEED
    );
    let lab = Lab::with_spec(&spec);
    lab.init_secrets();
    lab
}

#[test]
fn init_makes_each_sso_users_hash_and_set_rewrites_it_with_the_password() {
    let lab = sso_lab();
    let password = SecretString::from(lab.get("sso-user-alice-password"));
    let hash = lab.get("sso-user-alice-hash");
    assert!(
        hash.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"),
        "{hash}"
    );
    assert!(homelab_secrets::generate::verify_argon2id(
        &SecretString::from(hash.clone()),
        &password
    ));
    for key in [
        "authelia-jwt-secret",
        "authelia-session-key",
        "authelia-storage-key",
    ] {
        assert_eq!(lab.get(key).len(), 64, "{key}");
    }

    let run = lab
        .run_stdin(
            &["secrets", "set", "sso-user-alice-password"],
            "a-new-sso-password-7\n",
        )
        .ok();
    assert!(run.stdout.contains("sso-user-alice-hash"), "{}", run.stdout);
    assert!(!run.stdout.contains("a-new-sso-password-7"));
    assert!(!run.stderr.contains("a-new-sso-password-7"));
    let new_hash = lab.get("sso-user-alice-hash");
    assert_ne!(new_hash, hash);
    let new_hash = SecretString::from(new_hash);
    assert!(homelab_secrets::generate::verify_argon2id(
        &new_hash,
        &SecretString::from("a-new-sso-password-7".to_string())
    ));
    assert!(!homelab_secrets::generate::verify_argon2id(
        &new_hash, &password
    ));

    // Rotating the password makes a new one and the hash with it.
    let run = lab
        .run(&["secrets", "rotate", "sso-user-alice-password"])
        .ok();
    assert!(run.stdout.contains("sso-user-alice-hash"), "{}", run.stdout);
    assert!(homelab_secrets::generate::verify_argon2id(
        &SecretString::from(lab.get("sso-user-alice-hash")),
        &SecretString::from(lab.get("sso-user-alice-password"))
    ));
}
