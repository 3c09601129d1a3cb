//! `homelab secrets` with the spec's `secrets.vault`, against a real OpenBao dev server and
//! the real `sops`: new files wrapped by the transit key, `rekey --add-vault/--remove-vault`,
//! files written by either tool opened by the other through Vault alone and through age alone,
//! `-v` naming the key that opened a file, AppRole logins, and a revoked token failing clearly
//! with nothing written.

use crate::support::*;
use crate::tools::{Bao, Sops};

/// The minimal lab with `secrets.vault` for this server (`auth` as given).
fn vault_spec(bao: &Bao, auth: &str) -> String {
    format!(
        "{}\nsecrets:\n  vault:\n    address: {}\n    key: homelab\n    auth: {auth}\n",
        homelab_spec::templates::MINIMAL,
        bao.address
    )
}

/// A HOME without an age identity, for runs that must get through Vault alone.
fn keyless_home(lab: &Lab) -> String {
    let dir = lab.root().join("keyless-home");
    std::fs::create_dir_all(&dir).unwrap();
    dir.display().to_string()
}

fn sops(lab: &Lab) -> Sops {
    Sops::new(&lab.dir(), Some(&lab.identity()))
}

fn sops_vault_only(lab: &Lab, bao: &Bao, token: &str) -> Sops {
    Sops::new(&lab.dir(), None)
        .with_env("VAULT_ADDR", &bao.address)
        .with_env("VAULT_TOKEN", token)
}

#[test]
fn init_wraps_a_new_file_with_the_specs_key_and_each_tool_opens_it_through_either_key() {
    let mut bao = Bao::start();
    let token = bao.sops_token();
    let mut lab = Lab::with_spec(&vault_spec(&bao, "token"));
    // Only the token: its address is the spec's (VAULT_ADDR is unset).
    lab.set_env("VAULT_TOKEN", &token);
    let init = lab.init_secrets();
    assert_eq!(init["vaultKeys"][0], bao.key_uri(), "{init}");
    let store = lab.read("secrets.sops.yaml");
    assert!(store.contains("hc_vault:"), "{store}");
    assert!(
        lab.read(".sops.yaml")
            .contains(&format!("hc_vault_transit_uri: {}", bao.key_uri())),
        "{}",
        lab.read(".sops.yaml")
    );
    let value = lab.get("k3s-token");

    // homelab through Vault alone, saying so with -v.
    let home = keyless_home(&lab);
    let run = lab
        .run_with(
            &["-v", "secrets", "get", "k3s-token"],
            &[("HOME", &home)],
            "",
        )
        .ok();
    assert_eq!(run.stdout.trim_end(), value);
    assert!(
        run.stderr.contains(&format!(
            "using the Vault transit key {} with the token from VAULT_TOKEN",
            bao.key_uri()
        )),
        "{}",
        run.stderr
    );
    // sops through Vault alone and through age alone.
    let plain = sops_vault_only(&lab, &bao, &token).ok(&["-d", "secrets.sops.yaml"]);
    assert!(plain.contains(&format!("k3s-token: {value}")), "{plain}");
    let plain = sops(&lab).ok(&["-d", "secrets.sops.yaml"]);
    assert!(plain.contains(&format!("k3s-token: {value}")), "{plain}");

    // With OpenBao gone, the age key still opens it, and -v says it was age.
    bao.stop();
    let run = lab.run(&["-v", "secrets", "get", "k3s-token"]).ok();
    assert_eq!(run.stdout.trim_end(), value);
    assert!(
        run.stderr.contains("using the age identity age1"),
        "{}",
        run.stderr
    );
    let plain = sops(&lab).ok(&["-d", "secrets.sops.yaml"]);
    assert!(plain.contains(&format!("k3s-token: {value}")), "{plain}");
}

#[test]
fn a_file_sops_writes_with_age_and_transit_opens_in_homelab_through_either_key() {
    let mut bao = Bao::start();
    let token = bao.sops_token();
    let lab = Lab::with_spec(&vault_spec(&bao, "token"));
    let (key_file, public) = age_keygen(&lab.root().join("sops.key"));
    lab.write(
        "plain.yaml",
        "k3s-token: from-sops-4b1d\nnote: \"ünïcode\"\n",
    );
    let encrypted = Sops::new(&lab.dir(), Some(&key_file))
        .with_env("VAULT_ADDR", &bao.address)
        .with_env("VAULT_TOKEN", &token)
        .ok(&[
            "-e",
            "--age",
            &public,
            "--hc-vault-transit",
            &bao.key_uri(),
            "plain.yaml",
        ]);
    lab.write("from-sops.sops.yaml", &encrypted);

    let home = keyless_home(&lab);
    let run = lab
        .run_with(
            &["-v", "secrets", "decrypt", "from-sops.sops.yaml"],
            &[("HOME", &home), ("VAULT_TOKEN", &token)],
            "",
        )
        .ok();
    assert!(
        run.stdout.contains("k3s-token: from-sops-4b1d"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("ünïcode"), "{}", run.stdout);
    assert!(
        run.stderr.contains("using the Vault transit key"),
        "{}",
        run.stderr
    );

    bao.stop();
    let key = key_file.display().to_string();
    let run = lab
        .run_with(
            &["-v", "secrets", "decrypt", "from-sops.sops.yaml"],
            &[("HOME", &home), ("SOPS_AGE_KEY_FILE", &key)],
            "",
        )
        .ok();
    assert!(
        run.stdout.contains("k3s-token: from-sops-4b1d"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains(&format!("using the age identity {public}")),
        "{}",
        run.stderr
    );
    // Vault stopped and no age key: both failures named, nothing shown.
    let run = lab
        .run_with(
            &["secrets", "decrypt", "from-sops.sops.yaml"],
            &[("HOME", &home), ("VAULT_TOKEN", &token)],
            "",
        )
        .expect(1);
    assert!(
        run.stderr.contains("cannot reach Vault at"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("from-sops-4b1d"));
}

#[test]
fn rekey_adds_and_removes_the_specs_transit_key_and_sops_follows() {
    let bao = Bao::start();
    let token = bao.sops_token();
    // The lab starts with age only; the Vault section comes later.
    let mut lab = Lab::with_spec(homelab_spec::templates::MINIMAL);
    lab.init_secrets();
    let value = lab.get("k3s-token");
    // Without the section, `--add-vault` has no key to add.
    let before = lab.state();
    let run = lab.run(&["secrets", "rekey", "--add-vault"]).expect(2);
    assert!(run.stderr.contains("`secrets.vault`"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    let run = lab
        .run(&["secrets", "rekey", "--add-vault", "bao.lab/transit/homelab"])
        .expect(2);
    assert!(
        run.stderr.contains("invalid Vault transit key"),
        "{}",
        run.stderr
    );
    assert_unchanged(&before, &lab.state(), "rekey without a usable key");

    lab.write("homelab.yaml", vault_spec(&bao, "token"));
    lab.set_env("VAULT_TOKEN", &token);
    let init = lab.init_secrets();
    assert_eq!(init["vaultMissing"], bao.key_uri(), "{init}");
    let run = lab
        .run(&["secrets", "rekey", "--add-vault", "--output", "json"])
        .ok()
        .json();
    assert_eq!(run["addedVault"][0], bao.key_uri(), "{run}");
    assert_eq!(run["vaultKeys"][0], bao.key_uri(), "{run}");
    assert!(
        lab.read(".sops.yaml").contains("hc_vault_transit_uri"),
        "{}",
        lab.read(".sops.yaml")
    );
    // sops opens it through Vault alone now, and homelab too.
    let plain = sops_vault_only(&lab, &bao, &token).ok(&["-d", "secrets.sops.yaml"]);
    assert!(plain.contains(&format!("k3s-token: {value}")), "{plain}");
    let home = keyless_home(&lab);
    let run = lab
        .run_with(&["secrets", "get", "k3s-token"], &[("HOME", &home)], "")
        .ok();
    assert_eq!(run.stdout.trim_end(), value);
    // Adding it again changes nothing.
    let again = lab.run(&["secrets", "rekey", "--add-vault"]).ok();
    assert!(
        again.stdout.contains("nothing to change"),
        "{}",
        again.stdout
    );

    // A sops edit through Vault alone keeps both keys.
    sops_vault_only(&lab, &bao, &token).ok(&[
        "set",
        "secrets.sops.yaml",
        "[\"cloudflare-api-token\"]",
        "\"cf-from-sops\"",
    ]);
    assert_eq!(lab.get("cloudflare-api-token"), "cf-from-sops");

    let run = lab
        .run(&[
            "secrets",
            "rekey",
            "--remove-vault",
            &bao.key_uri(),
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(run["removedVault"][0], bao.key_uri(), "{run}");
    assert!(!lab.read("secrets.sops.yaml").contains("hc_vault"));
    assert!(!lab.read(".sops.yaml").contains("hc_vault_transit_uri"));
    let stderr = sops_vault_only(&lab, &bao, &token).fails(&["-d", "secrets.sops.yaml"]);
    assert!(!stderr.contains(&value), "{stderr}");
    assert_eq!(lab.get("k3s-token"), value);
}

#[test]
fn a_revoked_token_fails_naming_server_path_and_source_and_writes_nothing() {
    let bao = Bao::start();
    let token = bao.sops_token();
    let mut lab = Lab::with_spec(&vault_spec(&bao, "token"));
    lab.set_env("VAULT_TOKEN", &token);
    lab.init_secrets();
    bao.ok(&["token", "revoke", &token]);

    let home = keyless_home(&lab);
    let (_, other) = age_keygen(&lab.root().join("other.key"));
    let before = lab.state();
    let run = lab
        .run_with(&["secrets", "get", "k3s-token"], &[("HOME", &home)], "")
        .expect(1);
    for part in [
        bao.address.as_str(),
        "transit/decrypt/homelab",
        "token from VAULT_TOKEN",
        "revoked or expired",
        "nothing was changed",
    ] {
        assert!(run.stderr.contains(part), "{part}: {}", run.stderr);
    }
    assert!(!run.stderr.contains(&token), "{}", run.stderr);
    // A rekey through Vault fails the same way and changes no file.
    let run = lab
        .run_with(
            &["secrets", "rekey", "--add", &other],
            &[("HOME", &home)],
            "",
        )
        .expect(1);
    assert!(
        run.stderr.contains("transit/decrypt/homelab"),
        "{}",
        run.stderr
    );
    assert_unchanged(&before, &lab.state(), "get and rekey with a revoked token");
    // A new file's data key is wrapped through Vault: with the revoked token no secrets
    // file is written.
    std::fs::remove_file(lab.store()).unwrap();
    let before_init = lab.state();
    let run = lab.run(&["secrets", "init"]).expect(1);
    assert!(
        run.stderr.contains("transit/encrypt/homelab"),
        "{}",
        run.stderr
    );
    assert!(!lab.store().exists());
    let mut after = lab.state();
    // The rules file names the key already (the next init completes the rest).
    after.remove(std::path::Path::new("lab/.sops.yaml"));
    let mut expected = before_init.clone();
    expected.remove(std::path::Path::new("lab/.sops.yaml"));
    assert_unchanged(&expected, &after, "init with a revoked token");
}

#[test]
fn an_approle_login_from_the_environment_opens_the_file_when_the_spec_says_approle() {
    let bao = Bao::start();
    let token = bao.sops_token();
    let (role_id, secret_id) = bao.approle();
    let mut lab = Lab::with_spec(&vault_spec(&bao, "approle"));
    lab.set_env("VAULT_TOKEN", &token);
    lab.init_secrets();
    let value = lab.get("k3s-token");
    let home = keyless_home(&lab);
    // The AppRole login comes first even with a token at hand.
    let run = lab
        .run_with(
            &["-v", "secrets", "get", "k3s-token"],
            &[
                ("HOME", &home),
                ("VAULT_ROLE_ID", &role_id),
                ("VAULT_SECRET_ID", &secret_id),
            ],
            "",
        )
        .ok();
    assert_eq!(run.stdout.trim_end(), value);
    assert!(
        run.stderr
            .contains("with the AppRole login from VAULT_ROLE_ID/VAULT_SECRET_ID"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(&secret_id), "{}", run.stderr);
    // A wrong secret id: the login is refused, named as such.
    let run = lab
        .run_with(
            &["secrets", "get", "k3s-token"],
            &[
                ("HOME", &home),
                ("VAULT_TOKEN", ""),
                ("VAULT_ROLE_ID", &role_id),
                ("VAULT_SECRET_ID", "00000000-0000-0000-0000-000000000000"),
            ],
            "",
        )
        .expect(1);
    assert!(run.stderr.contains("auth/approle/login"), "{}", run.stderr);
}
