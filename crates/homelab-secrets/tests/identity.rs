//! age identities: the default file and the sops environment variables, file permissions,
//! several identities in one file, and interoperability with the `age` CLI.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;
use homelab_secrets::identity::{create_identity_file, init_identity};
use homelab_secrets::{Error, Identities, IdentityEnv, IdentitySource};
use secrecy::SecretString;

#[test]
fn init_creates_the_default_identity_with_private_permissions() {
    let home = tempfile::tempdir().unwrap();
    let env = env_with_home(home.path());
    let init = init_identity(&env).unwrap();
    let path = home.path().join(".config/homelab/age.key");
    assert!(init.created);
    assert_eq!(init.path.as_deref(), Some(path.as_path()));
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(mode_of(&home.path().join(".config/homelab")), 0o700);
    assert_eq!(mode_of(&home.path().join(".config")), 0o700);
    let text = fs::read_to_string(&path).unwrap();
    let recipient = init.identities.recipients()[0].to_string();
    assert!(text.contains(&format!("# public key: {recipient}\n")));
    assert!(text.lines().any(|l| l.starts_with("AGE-SECRET-KEY-1")));
    assert!(!format!("{:?}", init.identities).contains("AGE-SECRET-KEY"));

    // Running it again reuses the identity.
    let again = init_identity(&env).unwrap();
    assert!(!again.created);
    assert_eq!(again.identities.recipients()[0].to_string(), recipient);
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn the_age_cli_agrees_with_our_identity_file() {
    require_tool("age-keygen");
    require_tool("age");
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("id/age.key");
    let (ids, recipient) = create_identity_file(&path).unwrap();
    let public = run(Command::new("age-keygen").arg("-y").arg(&path)).stdout;
    assert_eq!(
        String::from_utf8(public).unwrap().trim(),
        recipient.to_string()
    );
    assert_eq!(ids.len(), 1);
    // A file encrypted by the CLI to our recipient opens with the CLI and our identity file.
    let msg = home.path().join("msg");
    fs::write(&msg, "hello").unwrap();
    let enc = run(Command::new("age")
        .arg("-r")
        .arg(recipient.to_string())
        .arg(&msg))
    .stdout;
    let enc_path = home.path().join("msg.age");
    fs::write(&enc_path, enc).unwrap();
    let out = run(Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&path)
        .arg(&enc_path))
    .stdout;
    assert_eq!(out, b"hello");
}

#[test]
fn creating_over_an_existing_identity_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("age.key");
    fs::write(&path, "keep me").unwrap();
    assert!(matches!(
        create_identity_file(&path).unwrap_err(),
        Error::IdentityExists { .. }
    ));
    assert_eq!(fs::read_to_string(&path).unwrap(), "keep me");
}

#[test]
fn sops_age_key_file_is_honoured_and_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, _, recipient) = keygen(dir.path(), "keys.txt");
    let env = IdentityEnv {
        sops_age_key_file: Some(key_path.clone()),
        ..env_with_home(dir.path())
    };
    let ids = Identities::from_env(&env).unwrap();
    assert_eq!(ids.recipients(), [recipient]);
    assert_eq!(
        ids.source_of(&ids.recipients()[0].to_string()),
        Some(&IdentitySource::File(key_path.clone()))
    );
    // init uses the configured file and does not create the default one.
    let init = init_identity(&env).unwrap();
    assert!(!init.created);
    assert!(!dir.path().join(".config/homelab/age.key").exists());

    let missing = IdentityEnv {
        sops_age_key_file: Some(dir.path().join("nope.txt")),
        ..env_with_home(dir.path())
    };
    let err = Identities::from_env(&missing).unwrap_err();
    assert!(matches!(err, Error::IdentityFileMissing { .. }));
    assert!(err.to_string().contains("SOPS_AGE_KEY_FILE"), "{err}");
}

#[test]
fn sops_age_key_is_honoured_alone_and_with_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, inline_recipient) = keygen(dir.path(), "inline.txt");
    let inline = fs::read_to_string(dir.path().join("inline.txt")).unwrap();
    let env = IdentityEnv {
        sops_age_key: Some(SecretString::from(inline.clone())),
        ..env_with_home(dir.path())
    };
    let ids = Identities::from_env(&env).unwrap();
    assert_eq!(ids.recipients(), std::slice::from_ref(&inline_recipient));
    assert_eq!(
        ids.source_of(&inline_recipient.to_string()),
        Some(&IdentitySource::EnvVar)
    );
    // No file is created when the key comes from the environment.
    let init = init_identity(&env).unwrap();
    assert!(!init.created);
    assert!(init.path.is_none());

    let (file_path, _, file_recipient) = keygen(dir.path(), "file.txt");
    let both = IdentityEnv {
        sops_age_key: Some(SecretString::from(inline)),
        sops_age_key_file: Some(file_path),
        ..env_with_home(dir.path())
    };
    let ids = Identities::from_env(&both).unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids.recipients().contains(&file_recipient));
}

#[test]
fn a_missing_identity_says_how_to_create_one() {
    let home = tempfile::tempdir().unwrap();
    let err = Identities::from_env(&env_with_home(home.path())).unwrap_err();
    assert!(matches!(err, Error::NoIdentity { .. }));
    let msg = err.to_string();
    assert!(msg.contains("homelab secrets init"), "{msg}");
    assert!(msg.contains(".config/homelab/age.key"), "{msg}");
    let nohome = IdentityEnv::default();
    assert!(matches!(
        Identities::from_env(&nohome).unwrap_err(),
        Error::NoHome
    ));
}

#[test]
fn identity_files_readable_by_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = keygen(dir.path(), "keys.txt");
    for mode in [0o644, 0o640, 0o604, 0o660] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let err = Identities::load_file(&path).unwrap_err();
        match &err {
            Error::IdentityPermissions { mode: m, .. } => assert_eq!(*m, mode),
            other => panic!("unexpected {other}"),
        }
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    Identities::load_file(&path).unwrap();
}

#[test]
fn several_identities_in_one_file_and_invalid_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, a) = keygen(dir.path(), "a.txt");
    let (_, _, b) = keygen(dir.path(), "b.txt");
    let both = format!(
        "{}\n\n{}",
        fs::read_to_string(dir.path().join("a.txt")).unwrap(),
        fs::read_to_string(dir.path().join("b.txt")).unwrap()
    );
    let ids = Identities::parse(&both, IdentitySource::EnvVar).unwrap();
    assert_eq!(ids.recipients(), [a, b]);

    let err = Identities::parse("# comment\nnot a key\n", IdentitySource::EnvVar).unwrap_err();
    match &err {
        Error::IdentityParse { line, .. } => assert_eq!(*line, 2),
        other => panic!("unexpected {other}"),
    }
    assert!(
        !err.to_string().contains("not a key"),
        "the line is not echoed: {err}"
    );
    assert!(Identities::parse("# only comments\n", IdentitySource::EnvVar).is_err());
    assert!(
        Identities::parse(
            include_str!("testdata/leaks/age-identity-bad-checksum.txt"),
            IdentitySource::EnvVar
        )
        .is_err()
    );
}

#[test]
fn recipients_parse_and_reject_garbage() {
    let r: homelab_secrets::Recipient =
        "age1se5ghfycr4n8kcwc3qwf234ymvmr2lex2a99wh8gpfx97glwt9hqch4569"
            .parse()
            .unwrap();
    assert_eq!(
        r.to_string(),
        "age1se5ghfycr4n8kcwc3qwf234ymvmr2lex2a99wh8gpfx97glwt9hqch4569"
    );
    let err = "age1nope"
        .parse::<homelab_secrets::Recipient>()
        .unwrap_err();
    assert!(err.to_string().contains("age1nope"), "{err}");
}

#[test]
fn xdg_config_home_moves_the_default_file() {
    let dir = tempfile::tempdir().unwrap();
    let env = IdentityEnv {
        xdg_config_home: Some(dir.path().join("xdg")),
        ..env_with_home(dir.path())
    };
    assert_eq!(
        env.default_identity_path().unwrap(),
        dir.path().join("xdg/homelab/age.key")
    );
}
