//! `homelab secrets openbao-init` through the binary against a real `bao server` (integrated
//! storage, not dev mode): a new server initialised with its keys in the secrets file and no
//! key or token on any output, a second run that writes nothing, a restart unsealed from the
//! stored keys, the address from BAO_ADDR, and every refusal with its exit code and the lab
//! unchanged.

use crate::support::*;
use crate::tools::BaoServer;

/// The minimal lab with `services.openbao` on, its secrets initialised.
fn openbao_lab() -> Lab {
    let lab = Lab::with_spec(&format!(
        "{}\nservices:\n  openbao: {{}}\n",
        homelab_spec::templates::MINIMAL
    ));
    lab.init_secrets();
    lab.run_stdin(&["secrets", "set", "cloudflare-api-token"], "cf-token-1\n")
        .ok();
    lab
}

fn sealed(server: &BaoServer) -> bool {
    // `bao status` exits 2 when sealed, 0 when unsealed.
    match server.cli(&["status"], None).status.code() {
        Some(0) => false,
        Some(2) => true,
        other => panic!("bao status: {other:?}"),
    }
}

/// Every stored OpenBao secret's value, read back through `secrets get`.
fn stored_values(lab: &Lab) -> Vec<String> {
    let mut names: Vec<String> = (1..=5).map(|n| format!("openbao-unseal-key-{n}")).collect();
    names.push("openbao-root-token".into());
    names.iter().map(|n| lab.get(n)).collect()
}

fn assert_no_value_shown(run: &Run, values: &[String], what: &str) {
    for v in values {
        assert!(
            !run.stdout.contains(v.as_str()) && !run.stderr.contains(v.as_str()),
            "{what} shows a stored OpenBao key or token:\n{}",
            run.transcript()
        );
    }
}

#[test]
fn a_new_server_is_initialised_into_the_secrets_file_and_a_second_run_writes_nothing() {
    let mut server = BaoServer::start();
    let lab = openbao_lab();
    let run = lab
        .run(&[
            "secrets",
            "openbao-init",
            "--address",
            &server.address,
            "--output",
            "json",
        ])
        .ok();
    let doc = run.json();
    assert_eq!(doc["initialized_now"], true, "{doc}");
    assert_eq!(doc["unsealed_now"], true, "{doc}");
    assert_eq!(doc["address"], server.address.as_str());
    assert_eq!(doc["stored"].as_array().unwrap().len(), 6, "{doc}");
    assert!(!sealed(&server));
    // The keys are in the file, encrypted, and the root token works.
    let values = stored_values(&lab);
    assert_no_value_shown(&run, &values, "the first run");
    let file = lab.read("secrets.sops.yaml");
    for v in &values {
        assert!(!file.contains(v.as_str()), "a key in plaintext in the file");
    }
    let lookup = server.cli_when_active(&["token", "lookup"], &values[5]);
    assert!(lookup.status.success(), "{lookup:?}");
    // `secrets doctor` counts them as used by services.openbao, not as unused values.
    let doctor = lab.run(&["secrets", "doctor", "--output", "json"]).ok();
    assert_no_value_shown(&doctor, &values, "doctor");
    let doc = doctor.json();
    assert_eq!(doc["warnings"], 0, "{doc}");
    let openbao_checks: Vec<&serde_json::Value> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["subject"].as_str().unwrap().starts_with("openbao-"))
        .collect();
    assert_eq!(openbao_checks.len(), 6, "{doc}");
    for c in openbao_checks {
        assert_eq!(
            (c["kind"].as_str(), c["status"].as_str()),
            (Some("secret"), Some("ok")),
            "{c}"
        );
    }

    // Again, in every output form: says so, writes nothing, shows nothing.
    let before = lab.state();
    for extra in [
        &[][..],
        &["--output", "json"][..],
        &["-v"][..],
        &["-vv"][..],
    ] {
        let mut args = vec!["secrets", "openbao-init", "--address", &server.address];
        args.extend_from_slice(extra);
        let run = lab.run(&args).ok();
        assert_no_value_shown(&run, &values, "a second run");
        if extra.is_empty() {
            assert!(
                run.stdout
                    .contains("is initialised and unsealed already; nothing was done"),
                "{}",
                run.transcript()
            );
        }
    }
    assert_unchanged(&before, &lab.state(), "a second run");

    // A restart seals it; the stored keys unseal it, the address from BAO_ADDR.
    server.restart();
    assert!(sealed(&server));
    let run = lab
        .run_with(
            &["-v", "secrets", "openbao-init"],
            &[("BAO_ADDR", &server.address)],
            "",
        )
        .ok();
    assert!(
        run.stdout
            .contains("was initialised already and sealed: unsealed it"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains("(from BAO_ADDR)"),
        "{}",
        run.transcript()
    );
    assert_no_value_shown(&run, &values, "the unseal after a restart");
    assert!(!sealed(&server));
    assert_unchanged(&before, &lab.state(), "unsealing");
}

#[test]
fn refusals_exit_with_their_code_and_leave_the_lab_unchanged() {
    let mut server = BaoServer::start();
    let lab = openbao_lab();

    // More keys to unseal than there are: a usage error, nothing initialised.
    let before = lab.state();
    let run = lab
        .run(&[
            "secrets",
            "openbao-init",
            "--address",
            &server.address,
            "--shares",
            "2",
            "--threshold",
            "3",
        ])
        .expect(2);
    assert!(run.stderr.contains("3 of 2 unseal keys"), "{}", run.stderr);
    assert_unchanged(&before, &lab.state(), "bad options");
    let status = server.cli(&["status", "-format=json"], None);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("\"initialized\": false"),
        "{status:?}"
    );

    // No server anywhere: the minimal lab has no services.openbao.
    let plain = Lab::with_spec(homelab_spec::templates::MINIMAL);
    plain.init_secrets();
    let before_plain = plain.state();
    let run = plain.run(&["secrets", "openbao-init"]).expect(2);
    assert!(
        run.stderr.contains("no OpenBao server to initialise"),
        "{}",
        run.stderr
    );
    assert_unchanged(&before_plain, &plain.state(), "no server");

    // The in-cluster address does not resolve here: a failure naming it.
    let run = lab.run(&["secrets", "openbao-init"]).expect(1);
    assert!(
        run.stderr.contains("https://bao.home.example.com"),
        "{}",
        run.stderr
    );
    assert_unchanged(&before, &lab.state(), "an unreachable server");

    // A sealed server whose keys this lab does not hold.
    let other = openbao_lab();
    other
        .run(&["secrets", "openbao-init", "--address", &server.address])
        .ok();
    server.restart();
    let run = lab
        .run(&["secrets", "openbao-init", "--address", &server.address])
        .expect(1);
    assert!(
        run.stderr.contains("needs 3 unseal keys") && run.stderr.contains("holds 0"),
        "{}",
        run.stderr
    );
    assert_unchanged(&before, &lab.state(), "keys missing");
    assert!(sealed(&server));

    // A lab without a secrets file yet.
    let bare = Lab::with_spec(&format!(
        "{}\nservices:\n  openbao: {{}}\n",
        homelab_spec::templates::MINIMAL
    ));
    let before_bare = bare.state();
    let run = bare
        .run(&["secrets", "openbao-init", "--address", &server.address])
        .expect(1);
    assert!(run.stderr.contains("secrets.sops.yaml"), "{}", run.stderr);
    assert_unchanged(&before_bare, &bare.state(), "no secrets file");

    // A server address that is not one.
    let run = lab
        .run(&["secrets", "openbao-init", "--address", "bao.lan/v1"])
        .expect(2);
    assert!(run.stderr.contains("--address"), "{}", run.stderr);
    assert_unchanged(&before, &lab.state(), "a bad address");
}

/// `bao ARGS` with `token`; (exit code, stdout, stderr).
fn bao_as(server: &BaoServer, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = server.cli_when_active(&["token", "lookup"], token);
    assert!(out.status.success(), "{out:?}");
    let out = server.cli(args, Some(token));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn with_secrets_vault_the_server_gets_the_labs_policies_and_transit_key_once() {
    let server = BaoServer::start();
    let lab = openbao_lab();
    let address = server.address.clone();
    lab.run(&["secrets", "openbao-init", "--address", &address])
        .ok();
    // The lab now uses this server's transit key for its secrets files.
    let spec = format!(
        "{}\nservices:\n  openbao: {{}}\nsecrets:\n  vault:\n    address: {address}\n    key: homelab\n",
        homelab_spec::templates::MINIMAL
    );
    lab.write("homelab.yaml", &spec);
    let doc = lab
        .run(&[
            "secrets",
            "openbao-init",
            "--output",
            "json",
            "--address",
            &address,
        ])
        .ok()
        .json();
    assert_eq!(
        doc["policies_written"],
        serde_json::json!(["homelab-sops", "flux-sops-decrypt"]),
        "{doc}"
    );
    assert_eq!(doc["transit_mounted"], true, "{doc}");
    assert_eq!(doc["transit_key_created"], true, "{doc}");
    let values = stored_values(&lab);
    let root = values[5].clone();

    // Read back as written.
    let (code, text, _) = bao_as(&server, &root, &["policy", "read", "flux-sops-decrypt"]);
    assert_eq!(code, 0);
    assert_eq!(
        text,
        "# Decrypt the rendered Secrets; nothing else.\npath \"transit/decrypt/homelab\" {\n  capabilities = [\"update\"]\n}"
    );
    // A token with a policy reaches its paths and nothing else.
    let token_for = |policy: &str| {
        let (code, token, err) = bao_as(
            &server,
            &root,
            &[
                "token",
                "create",
                &format!("-policy={policy}"),
                "-field=token",
            ],
        );
        assert_eq!(code, 0, "{err}");
        token
    };
    let homelab = token_for("homelab-sops");
    let flux = token_for("flux-sops-decrypt");
    let (code, ciphertext, err) = bao_as(
        &server,
        &homelab,
        &[
            "write",
            "-field=ciphertext",
            "transit/encrypt/homelab",
            "plaintext=aGVsbG8=",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, plain, err) = bao_as(
        &server,
        &flux,
        &[
            "write",
            "-field=plaintext",
            "transit/decrypt/homelab",
            &format!("ciphertext={ciphertext}"),
        ],
    );
    assert_eq!((code, plain.as_str()), (0, "aGVsbG8="), "{err}");
    for (token, args) in [
        (
            &flux,
            vec!["write", "transit/encrypt/homelab", "plaintext=aGVsbG8="],
        ),
        (&flux, vec!["read", "sys/policies/acl/homelab-sops"]),
        (&flux, vec!["write", "-f", "transit/keys/other"]),
        (&homelab, vec!["read", "transit/keys/homelab"]),
        (&homelab, vec!["policy", "list"]),
    ] {
        let (code, _, err) = bao_as(&server, token, &args);
        assert_eq!(code, 2, "{args:?} must be denied");
        assert!(err.contains("permission denied"), "{args:?}: {err}");
    }

    // Again: nothing written, on the server or in the lab.
    let before = lab.state();
    let doc = lab
        .run(&[
            "secrets",
            "openbao-init",
            "--output",
            "json",
            "--address",
            &address,
        ])
        .ok()
        .json();
    assert_eq!(doc["policies_written"], serde_json::json!([]), "{doc}");
    assert_eq!(
        doc["policies_unchanged"],
        serde_json::json!(["homelab-sops", "flux-sops-decrypt"])
    );
    assert_eq!(doc["transit_mounted"], false);
    assert_eq!(doc["transit_key_created"], false);
    assert_unchanged(&before, &lab.state(), "configuring again");

    // A policy changed on the server is put back as rendered.
    let (code, _, err) = bao_as(
        &server,
        &root,
        &[
            "write",
            "sys/policies/acl/flux-sops-decrypt",
            "policy=path \"*\" { capabilities = [\"read\"] }",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let run = lab
        .run(&["secrets", "openbao-init", "--address", &address])
        .ok();
    assert!(
        run.stdout.contains("wrote policies flux-sops-decrypt")
            && run
                .stdout
                .contains("policies homelab-sops were as rendered"),
        "{}",
        run.transcript()
    );
    assert_no_value_shown(&run, &values, "configuring");
}
