//! The lab secrets store: init, list/get/set/remove, generation that never overwrites,
//! rotation, rekey, `.sops.yaml`, edit, and the bad inputs of each.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use homelab_secrets::edit::{EditOptions, EditOutcome, edit_file, edit_store};
use homelab_secrets::generate::verify_htpasswd;
use homelab_secrets::sops_config::{
    FLUX_ENCRYPTED_REGEX, SopsConfig, encrypt_options_for, secrets_recipients,
};
use homelab_secrets::store::{listing, peek_names};
use homelab_secrets::{
    EncryptionRule, Error, Generator, Identities, IdentityEnv, Recipient, SECRETS_FILE,
    SecretRequirement, SecretsStore, decrypt_file, encrypt_kubernetes_secret,
    encrypt_kubernetes_secret_stable, init_lab, rekey_file, rekey_lab,
};
use secrecy::{ExposeSecret, SecretString};

/// The secrets the seed lab's plan asks for (issue 4).
fn lab_requirements() -> Vec<SecretRequirement> {
    vec![
        SecretRequirement::password("k3s-token", 48).used_by(["k3s"]),
        SecretRequirement::password("grafana-admin-password", 24)
            .used_by(["kube-prometheus-stack"]),
        SecretRequirement::password("postgres-superuser-password", 32).used_by(["postgres"]),
        SecretRequirement::password("postgres-n8n-password", 32).used_by(["postgres", "n8n"]),
        SecretRequirement::password("postgres-paperless-password", 32)
            .used_by(["postgres", "paperless"]),
        SecretRequirement::base64_key("n8n-encryption-key", 32).used_by(["n8n"]),
        SecretRequirement::hex_key("paperless-secret-key", 32).used_by(["paperless"]),
        SecretRequirement::password("traefik-dashboard-password", 24).used_by(["operator"]),
        SecretRequirement::htpasswd(
            "traefik-dashboard-htpasswd",
            "admin",
            "traefik-dashboard-password",
        )
        .used_by(["traefik"]),
        SecretRequirement::user_provided("git-username", "git user for dev containers")
            .used_by(["dev-containers"]),
        SecretRequirement::user_provided("git-token", "git access token for dev containers")
            .used_by(["dev-containers"]),
    ]
}

struct Lab {
    _home: tempfile::TempDir,
    root: tempfile::TempDir,
    env: IdentityEnv,
}

impl Lab {
    fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let env = env_with_home(home.path());
        Self {
            _home: home,
            root,
            env,
        }
    }

    fn store_path(&self) -> PathBuf {
        self.root.path().join(SECRETS_FILE)
    }

    fn ids(&self) -> Identities {
        Identities::from_env(&self.env).unwrap()
    }

    fn open(&self) -> SecretsStore {
        SecretsStore::open(&self.store_path(), &self.ids()).unwrap()
    }

    fn init(&self) -> homelab_secrets::LabInit {
        init_lab(self.root.path(), &self.env, &lab_requirements()).unwrap()
    }
}

fn value(store: &SecretsStore, name: &str) -> String {
    store.get(name).unwrap().expose_secret().to_owned()
}

fn secret(v: &str) -> SecretString {
    SecretString::from(v.to_owned())
}

#[test]
fn init_creates_identity_config_and_a_complete_store() {
    let lab = Lab::new();
    let init = lab.init();
    assert!(init.identity_created);
    assert!(init.store_created);
    assert!(init.sops_config_changed);
    assert_eq!(init.generated.placeholders, ["git-username", "git-token"]);
    assert_eq!(init.generated.generated.len(), 9);
    assert_eq!(mode_of(&lab.store_path()), 0o600);

    let store = lab.open();
    let statuses = store.list();
    let names: Vec<&str> = statuses.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names.len(), 11);
    assert!(!statuses.iter().find(|s| s.name == "git-token").unwrap().set);
    assert!(statuses.iter().find(|s| s.name == "k3s-token").unwrap().set);
    assert_eq!(value(&store, "k3s-token").len(), 48);
    assert!(
        value(&store, "k3s-token")
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
    );
    assert_eq!(value(&store, "paperless-secret-key").len(), 64);
    let line = store.get("traefik-dashboard-htpasswd").unwrap();
    assert!(line.expose_secret().starts_with("admin:$2y$10$"));
    assert!(verify_htpasswd(
        line,
        store.get("traefik-dashboard-password").unwrap()
    ));

    // The file on disk: every generated value encrypted, placeholders visible as unset.
    let text = fs::read_to_string(lab.store_path()).unwrap();
    for name in store.names() {
        if let Ok(v) = store.get(name) {
            assert!(!text.contains(v.expose_secret()), "{name} in plaintext");
        }
    }
    assert!(text.contains("git-token: \"\"\n"));
    let peeked = peek_names(&lab.store_path()).unwrap();
    assert_eq!(peeked, statuses);

    // `.sops.yaml` gives the store and rendered Flux secrets to this identity.
    let config_path = lab.root.path().join(".sops.yaml");
    let recipient = lab.ids().recipients().remove(0);
    assert_eq!(
        secrets_recipients(&config_path).unwrap(),
        std::slice::from_ref(&recipient)
    );
    let flux = encrypt_options_for(&lab.root.path().join("apps/n8n/n8n.sops.yaml")).unwrap();
    assert_eq!(
        flux.rule,
        EncryptionRule::EncryptedRegex(FLUX_ENCRYPTED_REGEX.into())
    );
    let store_opts = encrypt_options_for(&lab.store_path()).unwrap();
    assert_eq!(store_opts.rule, EncryptionRule::default());
    assert_eq!(store_opts.recipients, [recipient]);
    assert!(format!("{store:?}").contains("k3s-token"));
    assert!(!format!("{store:?}").contains(&value(&store, "k3s-token")));
}

#[test]
fn re_running_init_adds_only_what_is_missing() {
    let lab = Lab::new();
    lab.init();
    let before = lab.open();
    let old: Vec<(String, Option<String>)> = before
        .names()
        .iter()
        .map(|n| {
            (
                n.to_string(),
                before.get(n).ok().map(|v| v.expose_secret().to_owned()),
            )
        })
        .collect();
    let bytes_before = fs::read(lab.store_path()).unwrap();

    let again = lab.init();
    assert!(!again.identity_created && !again.store_created && !again.sops_config_changed);
    assert!(!again.generated.changed());
    assert_eq!(
        fs::read(lab.store_path()).unwrap(),
        bytes_before,
        "nothing rewritten"
    );

    let mut more = lab_requirements();
    more.push(SecretRequirement::password("mealie-db-password", 32).used_by(["mealie"]));
    let third = init_lab(lab.root.path(), &lab.env, &more).unwrap();
    assert_eq!(third.generated.generated, ["mealie-db-password"]);
    let after = lab.open();
    for (name, v) in old {
        assert_eq!(
            after.get(&name).ok().map(|v| v.expose_secret().to_owned()),
            v,
            "{name}"
        );
    }
    assert_eq!(after.names().last(), Some(&"mealie-db-password"));
}

#[test]
fn a_user_value_for_a_placeholder_is_kept_by_generation() {
    let lab = Lab::new();
    lab.init();
    let mut store = lab.open();
    assert!(matches!(
        store.get("git-token").unwrap_err(),
        Error::SecretUnset { .. }
    ));
    store
        .set("git-token", secret("ghp_example_token_value"))
        .unwrap();
    store.save().unwrap();
    lab.init();
    assert_eq!(value(&lab.open(), "git-token"), "ghp_example_token_value");
}

#[test]
fn get_set_remove_and_their_errors() {
    let lab = Lab::new();
    lab.init();
    let mut store = lab.open();
    let err = store.get("no-such-secret").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown secret `no-such-secret`"), "{msg}");
    assert!(
        msg.contains("k3s-token") && msg.contains("git-token"),
        "lists names: {msg}"
    );
    assert!(msg.contains("homelab secrets set"), "{msg}");

    let err = store.set("git-token", secret("")).unwrap_err();
    assert!(matches!(err, Error::EmptyValue { .. }), "{err}");
    for bad in ["", "has space", "-lead", "sops", "x_unencrypted", "a/b"] {
        assert!(
            matches!(
                store.set(bad, secret("v")).unwrap_err(),
                Error::InvalidSecretName { .. }
            ),
            "{bad:?}"
        );
    }
    assert!(!store.is_dirty(), "refused changes leave the store clean");

    store
        .set("custom-api-key", secret("multi\nline value: with # chars"))
        .unwrap();
    store.remove("git-username").unwrap();
    assert!(matches!(
        store.remove("git-username").unwrap_err(),
        Error::UnknownSecret { .. }
    ));
    store.save().unwrap();
    let reopened = lab.open();
    assert_eq!(
        value(&reopened, "custom-api-key"),
        "multi\nline value: with # chars"
    );
    assert!(!reopened.contains("git-username"));
    let leftovers: Vec<_> = fs::read_dir(lab.root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "only .sops.yaml and the store: {leftovers:?}"
    );
}

#[test]
fn input_values_lose_one_trailing_line_break_only() {
    use homelab_secrets::store::secret_from_input;
    assert_eq!(secret_from_input("abc\n".into()).expose_secret(), "abc");
    assert_eq!(secret_from_input("abc\r\n".into()).expose_secret(), "abc");
    assert_eq!(secret_from_input("abc\n\n".into()).expose_secret(), "abc\n");
    assert_eq!(secret_from_input(" a b ".into()).expose_secret(), " a b ");
    let mut store = {
        let lab = Lab::new();
        lab.init();
        lab.open()
    };
    let err = store
        .set("git-token", secret_from_input("\n".into()))
        .unwrap_err();
    assert!(matches!(err, Error::EmptyValue { .. }), "{err}");
}

#[test]
fn opening_without_a_store_or_with_the_wrong_key_fails_clearly() {
    let lab = Lab::new();
    let err = SecretsStore::open(&lab.store_path(), &Identities::empty()).unwrap_err();
    assert!(err.to_string().contains("homelab secrets init"), "{err}");
    lab.init();
    let other = tempfile::tempdir().unwrap();
    let (_, wrong, _) = keygen(other.path(), "other.txt");
    let err = SecretsStore::open(&lab.store_path(), &wrong).unwrap_err();
    assert!(err.to_string().contains("wrong key"), "{err}");
    assert!(err.to_string().contains(SECRETS_FILE), "{err}");
}

#[test]
fn a_store_with_nested_values_is_rejected() {
    let lab = Lab::new();
    let ids = {
        lab.init();
        lab.ids()
    };
    let path = lab.root.path().join("nested.sops.yaml");
    let enc = homelab_secrets::sops::encrypt_text(
        "a:\n    b: c\n",
        &homelab_secrets::EncryptOptions::new(ids.recipients()),
    )
    .unwrap();
    fs::write(&path, enc).unwrap();
    let err = SecretsStore::open(&path, &ids).unwrap_err();
    assert!(err.to_string().contains("flat map"), "{err}");
}

#[test]
fn rotate_changes_the_value_and_names_what_to_reapply() {
    let lab = Lab::new();
    lab.init();
    let reqs = lab_requirements();
    let mut store = lab.open();
    let old = value(&store, "postgres-n8n-password");
    let report = store.rotate("postgres-n8n-password", &reqs).unwrap();
    assert_eq!(report.rotated, ["postgres-n8n-password"]);
    assert_eq!(report.reapply, ["n8n", "postgres"]);
    assert_ne!(value(&store, "postgres-n8n-password"), old);
    store.save().unwrap();
    assert_ne!(value(&lab.open(), "postgres-n8n-password"), old);

    // Rotating the htpasswd line rotates its password and re-derives the line.
    let old_pw = value(&store, "traefik-dashboard-password");
    let report = store.rotate("traefik-dashboard-htpasswd", &reqs).unwrap();
    assert_eq!(
        report.rotated,
        ["traefik-dashboard-password", "traefik-dashboard-htpasswd"]
    );
    assert_eq!(report.reapply, ["operator", "traefik"]);
    assert_ne!(value(&store, "traefik-dashboard-password"), old_pw);
    assert!(verify_htpasswd(
        store.get("traefik-dashboard-htpasswd").unwrap(),
        store.get("traefik-dashboard-password").unwrap()
    ));

    let err = store.rotate("git-token", &reqs).unwrap_err();
    assert!(
        err.to_string().contains("homelab secrets set git-token"),
        "{err}"
    );
    store.set("manual", secret("v1")).unwrap();
    let err = store.rotate("manual", &reqs).unwrap_err();
    assert!(err.to_string().contains("does not generate"), "{err}");
    let err = store.rotate("nope", &reqs).unwrap_err();
    assert!(matches!(err, Error::UnknownSecret { .. }), "{err}");
}

#[test]
fn the_htpasswd_line_is_accepted_by_apache_htpasswd() {
    require_tool("htpasswd");
    let lab = Lab::new();
    lab.init();
    let store = lab.open();
    let file = lab.root.path().join("users.htpasswd");
    fs::write(
        &file,
        format!("{}\n", value(&store, "traefik-dashboard-htpasswd")),
    )
    .unwrap();
    let ok = Command::new("htpasswd")
        .arg("-vb")
        .arg(&file)
        .arg("admin")
        .arg(value(&store, "traefik-dashboard-password"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let wrong = Command::new("htpasswd")
        .arg("-vb")
        .arg(&file)
        .arg("admin")
        .arg("not-the-password")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
}

#[test]
fn listing_joins_the_store_with_requirements() {
    let lab = Lab::new();
    lab.init();
    let store = lab.open();
    let mut reqs = lab_requirements();
    reqs.push(SecretRequirement::password("new-app-password", 20).used_by(["new-app"]));
    let rows = listing(&store.list(), &reqs);
    let k3s = rows.iter().find(|r| r.name == "k3s-token").unwrap();
    assert!(k3s.set && k3s.stored);
    assert_eq!(k3s.used_by, ["k3s"]);
    let git = rows.iter().find(|r| r.name == "git-token").unwrap();
    assert!(!git.set);
    assert!(git.source.as_deref().unwrap().contains("set by you"));
    let new = rows.iter().find(|r| r.name == "new-app-password").unwrap();
    assert!(!new.stored && !new.set);
    assert_eq!(
        store.missing(&["k3s-token", "new-app-password"]),
        ["new-app-password"]
    );
}

#[test]
fn the_store_data_key_opens_with_the_age_cli() {
    require_tool("age");
    let lab = Lab::new();
    lab.init();
    let text = fs::read_to_string(lab.store_path()).unwrap();
    let begin = text.find("-----BEGIN AGE ENCRYPTED FILE-----").unwrap();
    let end = text.find("-----END AGE ENCRYPTED FILE-----").unwrap() + 32;
    let armored: String = text[begin..end]
        .lines()
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    let enc = lab.root.path().join("key.age");
    fs::write(&enc, armored).unwrap();
    let key_file = lab.env.default_identity_path().unwrap();
    let out = run(Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&key_file)
        .arg(&enc));
    assert_eq!(out.stdout.len(), 32);
}

#[test]
fn rekey_adds_and_removes_recipients_without_touching_values() {
    require_tool("age");
    let lab = Lab::new();
    lab.init();
    let me = lab.ids();
    let keys = tempfile::tempdir().unwrap();
    let (friend_key, friend_ids, friend) = keygen(keys.path(), "friend.txt");
    let before = fs::read_to_string(lab.store_path()).unwrap();

    let report = rekey_lab(lab.root.path(), &me, std::slice::from_ref(&friend), &[]).unwrap();
    assert_eq!(report.added, [friend.to_string()]);
    let after = fs::read_to_string(lab.store_path()).unwrap();
    // Values, MAC and lastmodified are byte-for-byte the same; only the age block changed.
    let strip_age = |t: &str| -> String {
        t.lines()
            .filter(|l| !l.starts_with("        ") && !l.starts_with("    age:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip_age(&before), strip_age(&after));
    assert_eq!(mode_of(&lab.store_path()), 0o600);
    // The friend can now read the store, with our library and with the age CLI.
    assert_eq!(
        value(
            &SecretsStore::open(&lab.store_path(), &friend_ids).unwrap(),
            "k3s-token"
        ),
        value(&lab.open(), "k3s-token")
    );
    let config = lab.root.path().join(".sops.yaml");
    assert_eq!(
        secrets_recipients(&config).unwrap().len(),
        2,
        ".sops.yaml follows"
    );
    let friend_stanza_start = after.find(&format!("recipient: {friend}")).unwrap();
    let tail = &after[friend_stanza_start..];
    let armored: String = tail
        [tail.find("-----BEGIN").unwrap()..tail.find("-----END").unwrap() + 32]
        .lines()
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    let enc = keys.path().join("friend.age");
    fs::write(&enc, armored).unwrap();
    let out = run(Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&friend_key)
        .arg(&enc));
    assert_eq!(out.stdout.len(), 32);

    // Removing the friend again works; removing ourselves is refused.
    let report = rekey_file(&lab.store_path(), &me, &[], std::slice::from_ref(&friend)).unwrap();
    assert_eq!(report.removed, [friend.to_string()]);
    assert!(matches!(
        SecretsStore::open(&lab.store_path(), &friend_ids).unwrap_err(),
        Error::Decrypt { .. }
    ));
    let bytes = fs::read(lab.store_path()).unwrap();
    let own = me.recipients().remove(0);
    let err = rekey_file(&lab.store_path(), &me, &[], std::slice::from_ref(&own)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("your own identity") && msg.contains("lock you out"),
        "{msg}"
    );
    assert_eq!(
        fs::read(lab.store_path()).unwrap(),
        bytes,
        "unchanged after refusal"
    );
    let err = rekey_file(&lab.store_path(), &me, &[], std::slice::from_ref(&friend)).unwrap_err();
    assert!(err.to_string().contains("is not a recipient"), "{err}");
    // A no-op rekey writes nothing.
    let report = rekey_file(&lab.store_path(), &me, std::slice::from_ref(&own), &[]).unwrap();
    assert!(!report.changed());
    assert_eq!(fs::read(lab.store_path()).unwrap(), bytes);
}

#[test]
fn rekey_refuses_to_leave_no_recipient_and_outsiders_cannot_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ids, me) = keygen(dir.path(), "me.txt");
    let (_, _, other) = keygen(dir.path(), "other.txt");
    let (_, outsider, _) = keygen(dir.path(), "outsider.txt");
    let path = dir.path().join("f.sops.yaml");
    let enc = homelab_secrets::sops::encrypt_text(
        "a: b\n",
        &homelab_secrets::EncryptOptions::new(vec![me.clone()]),
    )
    .unwrap();
    // A stanza whose `recipient` label is not the key it was encrypted to: we can still
    // decrypt it, and removing that label would leave the file with no recipient at all.
    let mislabelled = enc.replace(&format!("recipient: {me}"), &format!("recipient: {other}"));
    fs::write(&path, &mislabelled).unwrap();
    let err = rekey_file(&path, &ids, &[], std::slice::from_ref(&other)).unwrap_err();
    assert!(err.to_string().contains("last recipient"), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), mislabelled);
    // Someone who holds no recipient's key cannot rekey at all.
    fs::write(&path, &enc).unwrap();
    let err = rekey_file(&path, &outsider, std::slice::from_ref(&other), &[]).unwrap_err();
    assert!(matches!(err, Error::Decrypt { .. }), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), enc);
}

#[test]
fn sops_config_keeps_user_rules_and_reads_list_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join(".sops.yaml");
    fs::write(
        &config,
        "creation_rules:\n  - path_regex: ^clusters/.*\\.yaml$\n    encrypted_regex: ^data$\n    age:\n      - age1se5ghfycr4n8kcwc3qwf234ymvmr2lex2a99wh8gpfx97glwt9hqch4569\n    pgp: ABCDEF\nstores:\n  yaml:\n    indent: 2\n",
    )
    .unwrap();
    let (_, _, me) = keygen(dir.path(), "k.txt");
    assert!(
        homelab_secrets::sops_config::write_homelab_rules(&config, std::slice::from_ref(&me))
            .unwrap()
    );
    let parsed = SopsConfig::load(&config).unwrap();
    assert_eq!(parsed.creation_rules.len(), 3);
    let user = parsed.rule_for("clusters/a.yaml").unwrap().unwrap();
    assert_eq!(
        user.age,
        ["age1se5ghfycr4n8kcwc3qwf234ymvmr2lex2a99wh8gpfx97glwt9hqch4569"]
    );
    assert_eq!(
        user.rule,
        Some(EncryptionRule::EncryptedRegex("^data$".into()))
    );
    assert!(fs::read_to_string(&config).unwrap().contains("pgp: ABCDEF"));
    assert!(fs::read_to_string(&config).unwrap().contains("indent: 2"));
    assert_eq!(
        secrets_recipients(&config).unwrap(),
        std::slice::from_ref(&me)
    );
    let order: Vec<_> = parsed
        .creation_rules
        .iter()
        .map(|r| r.path_regex.clone().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            homelab_secrets::sops_config::SECRETS_PATH_REGEX,
            homelab_secrets::sops_config::FLUX_SECRETS_PATH_REGEX,
            "^clusters/.*\\.yaml$"
        ]
    );
    // Idempotent.
    assert!(!homelab_secrets::sops_config::write_homelab_rules(&config, &[me]).unwrap());
    // Malformed configs are errors naming the file.
    fs::write(&config, "creation_rules: 3\n").unwrap();
    let err = SopsConfig::load(&config).unwrap_err();
    assert!(err.to_string().contains(".sops.yaml"), "{err}");
    let nowhere = tempfile::tempdir().unwrap();
    let err = encrypt_options_for(&nowhere.path().join("x.yaml")).unwrap_err();
    assert!(err.to_string().contains("no .sops.yaml"), "{err}");
}

#[test]
fn flux_secrets_encrypt_only_data_and_stay_stable_when_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ids, me) = keygen(dir.path(), "k.txt");
    let manifest = "apiVersion: v1\nkind: Secret\nmetadata:\n    name: n8n\n    namespace: apps\nstringData:\n    N8N_ENCRYPTION_KEY: c2VjcmV0LWtleQ==\n";
    let enc = encrypt_kubernetes_secret(manifest, std::slice::from_ref(&me)).unwrap();
    assert!(enc.contains("kind: Secret\n") && enc.contains("    namespace: apps\n"));
    assert!(!enc.contains("c2VjcmV0LWtleQ=="));
    assert!(enc.contains("encrypted_regex: ^(data|stringData)$"));
    let same =
        encrypt_kubernetes_secret_stable(manifest, std::slice::from_ref(&me), Some(&enc), &ids)
            .unwrap();
    assert_eq!(same, enc, "unchanged input keeps the same bytes");
    let changed = manifest.replace("c2VjcmV0LWtleQ==", "bmV3");
    let fresh =
        encrypt_kubernetes_secret_stable(&changed, std::slice::from_ref(&me), Some(&enc), &ids)
            .unwrap();
    assert_ne!(fresh, enc);
    let err = encrypt_kubernetes_secret("kind: ConfigMap\n", &[me]).unwrap_err();
    assert!(err.to_string().contains("kind: Secret"), "{err}");
}

/// A shell editor script for tests; it records the path and permissions it was given.
fn editor(dir: &Path, body: &str) -> String {
    let script = dir.join("editor.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\nf=\"$1\"\necho \"$f\" > \"{log}\"\nstat -c %a \"$f\" >> \"{log}\"\nstat -c %a \"$(dirname \"$f\")\" >> \"{log}\"\n{body}\n",
            log = dir.join("editor.log").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    script.display().to_string()
}

fn editor_log(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("editor.log"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn edit_options(editor: String, temp: &Path) -> EditOptions {
    EditOptions {
        editor,
        temp_parent: Some(temp.to_owned()),
    }
}

#[test]
fn edit_saves_changes_and_removes_the_private_copy() {
    let lab = Lab::new();
    lab.init();
    let tools = tempfile::tempdir().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let ed = editor(
        tools.path(),
        "sed -i 's/^git-token: .*/git-token: typed-in-editor/' \"$f\"",
    );
    let outcome = edit_store(
        &lab.store_path(),
        &lab.ids(),
        &edit_options(ed, temp.path()),
    )
    .unwrap();
    assert_eq!(outcome, EditOutcome::Saved);
    assert_eq!(value(&lab.open(), "git-token"), "typed-in-editor");
    let log = editor_log(tools.path());
    assert_eq!(log[1], "600", "the plaintext copy is private");
    assert_eq!(log[2], "700", "its directory is private");
    assert!(!Path::new(&log[0]).exists(), "the plaintext copy is gone");
    assert_eq!(fs::read_dir(temp.path()).unwrap().count(), 0);
    assert_eq!(mode_of(&lab.store_path()), 0o600);
}

#[test]
fn edit_without_changes_does_not_rewrite() {
    let lab = Lab::new();
    lab.init();
    let tools = tempfile::tempdir().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let before = fs::read(lab.store_path()).unwrap();
    let ed = editor(tools.path(), "true");
    let outcome = edit_store(
        &lab.store_path(),
        &lab.ids(),
        &edit_options(ed, temp.path()),
    )
    .unwrap();
    assert_eq!(outcome, EditOutcome::Unchanged);
    assert_eq!(fs::read(lab.store_path()).unwrap(), before);
}

#[test]
fn a_failing_editor_or_invalid_yaml_leaves_the_file_untouched() {
    let lab = Lab::new();
    lab.init();
    let tools = tempfile::tempdir().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let before = fs::read(lab.store_path()).unwrap();

    let ed = editor(tools.path(), "echo 'k3s-token: changed' > \"$f\"; exit 3");
    let err = edit_store(
        &lab.store_path(),
        &lab.ids(),
        &edit_options(ed, temp.path()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("exited with status 3"), "{err}");
    assert_eq!(fs::read(lab.store_path()).unwrap(), before);
    assert!(!Path::new(&editor_log(tools.path())[0]).exists());

    let ed = editor(
        tools.path(),
        "printf 'k3s-token: x\\nbroken: a: b\\n' > \"$f\"",
    );
    let err = edit_store(
        &lab.store_path(),
        &lab.ids(),
        &edit_options(ed, temp.path()),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("YAML syntax error at line 2, column"), "{msg}");
    assert!(msg.contains("unchanged"), "{msg}");
    assert_eq!(fs::read(lab.store_path()).unwrap(), before);

    let ed = editor(tools.path(), "printf 'a:\\n  nested: map\\n' > \"$f\"");
    let err = edit_store(
        &lab.store_path(),
        &lab.ids(),
        &edit_options(ed, temp.path()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("single string value"), "{err}");
    assert_eq!(fs::read(lab.store_path()).unwrap(), before);

    let ed = editor(tools.path(), "printf 'sops: x\\n' > \"$f\"");
    assert!(
        edit_store(
            &lab.store_path(),
            &lab.ids(),
            &edit_options(ed, temp.path())
        )
        .is_err()
    );
    assert_eq!(fs::read(lab.store_path()).unwrap(), before);

    let err = edit_store(
        &lab.store_path(),
        &lab.ids(),
        &edit_options("/nonexistent/editor".into(), temp.path()),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Editor { .. }), "{err}");
    assert_eq!(
        fs::read_dir(temp.path()).unwrap().count(),
        0,
        "no plaintext left behind"
    );
}

#[test]
fn the_private_copy_is_removed_even_when_a_check_panics() {
    let lab = Lab::new();
    lab.init();
    let tools = tempfile::tempdir().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let before = fs::read(lab.store_path()).unwrap();
    let ed = editor(tools.path(), "echo 'k3s-token: new' > \"$f\"");
    let path = lab.store_path();
    let ids = lab.ids();
    let options = edit_options(ed, temp.path());
    let result = std::panic::catch_unwind(|| {
        homelab_secrets::edit::edit_file_checked(&path, &ids, &options, &|_| {
            panic!("validator bug")
        })
    });
    assert!(result.is_err(), "the panic propagates");
    assert_eq!(fs::read_dir(temp.path()).unwrap().count(), 0);
    assert!(!Path::new(&editor_log(tools.path())[0]).exists());
    assert_eq!(fs::read(lab.store_path()).unwrap(), before);
}

#[test]
fn edit_works_on_any_sops_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ids, me) = keygen(dir.path(), "k.txt");
    let path = dir.path().join("app.sops.yaml");
    fs::write(
        &path,
        homelab_secrets::sops::encrypt_text(
            "db:\n    port: 5432\n",
            &homelab_secrets::EncryptOptions::new(vec![me]),
        )
        .unwrap(),
    )
    .unwrap();
    let tools = tempfile::tempdir().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let ed = editor(tools.path(), "sed -i 's/5432/5433/' \"$f\"");
    assert_eq!(
        edit_file(&path, &ids, &edit_options(ed, temp.path())).unwrap(),
        EditOutcome::Saved
    );
    assert_eq!(
        decrypt_file(&path, &ids).unwrap().expose_secret(),
        "db:\n    port: 5433\n"
    );
}

#[test]
fn recipients_from_sops_config_are_used_for_new_stores() {
    let lab = Lab::new();
    let keys = tempfile::tempdir().unwrap();
    let (_, friend_ids, friend) = keygen(keys.path(), "friend.txt");
    // A team config that already lists a friend: the new store is encrypted to both.
    fs::write(
        lab.root.path().join(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: (^|/)secrets\\.sops\\.yaml$\n    age: {friend}\n"
        ),
    )
    .unwrap();
    let init = lab.init();
    assert_eq!(init.recipients.len(), 2, "{init:?}");
    assert!(init.recipients.contains(&friend.to_string()));
    SecretsStore::open(&lab.store_path(), &friend_ids).unwrap();
    let _: Vec<Recipient> = secrets_recipients(&lab.root.path().join(".sops.yaml")).unwrap();
}

fn ca_requirements() -> Vec<SecretRequirement> {
    vec![
        SecretRequirement::new("internal-ca-key", Generator::CaKey).used_by(["cert-manager"]),
        SecretRequirement::new(
            "internal-ca-cert",
            Generator::CaCertificate {
                common_name: "lab homelab root CA".into(),
                key_from: "internal-ca-key".into(),
                days: 3650,
            },
        )
        .used_by(["cert-manager"]),
    ]
}

/// Writes `value` to `dir/name` and returns its path.
fn write_value(dir: &Path, name: &str, store: &SecretsStore, secret: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, value(store, secret)).unwrap();
    path
}

#[test]
fn the_root_ca_is_generated_once_and_openssl_accepts_it() {
    require_tool("openssl");
    let lab = Lab::new();
    lab.init();
    let reqs = ca_requirements();
    let mut store = lab.open();
    // The certificate comes after its key whatever order the plan lists them in.
    let reversed: Vec<_> = reqs.iter().rev().cloned().collect();
    let report = store.generate_missing(&reversed).unwrap();
    assert_eq!(report.generated, ["internal-ca-key", "internal-ca-cert"]);
    store.save().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let key = write_value(tmp.path(), "ca.key", &store, "internal-ca-key");
    let cert = write_value(tmp.path(), "ca.pem", &store, "internal-ca-cert");
    let verify = run(Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&cert)
        .arg(&cert));
    assert!(String::from_utf8_lossy(&verify.stdout).contains(": OK"));
    let text = run(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert));
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    for part in [
        "Subject: CN = lab homelab root CA",
        "CA:TRUE, pathlen:0",
        "Certificate Sign, CRL Sign",
        "ASN1 OID: prime256v1",
    ] {
        assert!(text.contains(part), "{part}\n{text}");
    }
    // The key is the certificate's: the same public key from both.
    let from_key = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key));
    let from_cert = run(Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(&cert));
    assert_eq!(from_key.stdout, from_cert.stdout);
    let end = run(Command::new("openssl")
        .args(["x509", "-noout", "-checkend", "311040000", "-in"])
        .arg(&cert));
    assert!(
        String::from_utf8_lossy(&end.stdout).contains("will not expire"),
        "valid for more than 3600 days"
    );

    // A second run keeps the CA: a rebuilt cluster gets the root every device trusts.
    let before = value(&store, "internal-ca-cert");
    let mut again = lab.open();
    let report = again.generate_missing(&reqs).unwrap();
    assert!(report.generated.is_empty(), "{report:?}");
    assert_eq!(value(&again, "internal-ca-cert"), before);

    // Rotating the certificate makes a new key and a root for it.
    let old_key = value(&again, "internal-ca-key");
    let report = again.rotate("internal-ca-cert", &reqs).unwrap();
    assert_eq!(report.rotated, ["internal-ca-key", "internal-ca-cert"]);
    assert_eq!(report.reapply, ["cert-manager"]);
    assert_ne!(value(&again, "internal-ca-key"), old_key);
    let cert = write_value(tmp.path(), "new.pem", &again, "internal-ca-cert");
    let key = write_value(tmp.path(), "new.key", &again, "internal-ca-key");
    let from_key = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key));
    let from_cert = run(Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(&cert));
    assert_eq!(from_key.stdout, from_cert.stdout);
}

#[test]
fn a_ca_certificate_without_its_key_is_refused_and_nothing_is_written() {
    let lab = Lab::new();
    lab.init();
    let mut store = lab.open();
    let only_cert = vec![ca_requirements().remove(1)];
    let err = store.generate_missing(&only_cert).unwrap_err();
    assert!(
        err.to_string()
            .contains("`internal-ca-key` must be a listed CA key"),
        "{err}"
    );
    let mut bad_days = ca_requirements();
    bad_days[1] = SecretRequirement::new(
        "internal-ca-cert",
        Generator::CaCertificate {
            common_name: "x".into(),
            key_from: "internal-ca-key".into(),
            days: 0,
        },
    );
    let err = store.generate_missing(&bad_days).unwrap_err();
    assert!(
        err.to_string().contains("between 1 and 36500 days"),
        "{err}"
    );
    // A key that is not a key (set by hand) makes no certificate, and says so without it.
    store
        .set("internal-ca-key", secret("typed-by-hand-not-a-pem"))
        .unwrap();
    let err = store.generate_missing(&ca_requirements()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("internal-ca-cert") && text.contains("PKCS#8"),
        "{text}"
    );
    assert!(!text.contains("typed-by-hand"), "{text}");
    assert!(!store.contains("internal-ca-cert"));
}
