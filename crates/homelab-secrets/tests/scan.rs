//! Leak scan against real git repositories made by the test: seeded leaks in the working tree
//! and in history are found with their place and kind; a clean repository gives nothing.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use homelab_secrets::scan::{FindingKind, Location, ScanOptions, scan, scan_text, scan_with};
use homelab_secrets::{KnownSecrets, SecretsStore};
use secrecy::{ExposeSecret, SecretString};

const DB_PASSWORD: &str = "Zq7vN2pX9kL4mR8tW3yB";
const AGE_KEY: &str = include_str!("testdata/leaks/age-identity.txt");

fn git(repo: &Path, args: &[&str]) -> String {
    require_tool("git");
    let out = run(Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn commit_file(repo: &Path, path: &str, content: &str, message: &str) -> String {
    let full = repo.join(path);
    fs::create_dir_all(full.parent().unwrap()).unwrap();
    fs::write(&full, content).unwrap();
    git(repo, &["add", path]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

fn known() -> KnownSecrets {
    let mut k = KnownSecrets::new();
    k.insert(
        "postgres-superuser-password",
        SecretString::from(DB_PASSWORD.to_owned()),
    );
    k
}

fn new_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q"]);
    dir
}

#[test]
fn seeded_leaks_in_history_are_found_with_commit_file_and_line() {
    let repo = new_repo();
    let r = repo.path();
    commit_file(r, "README.md", "# lab\n", "start");
    let leak = commit_file(
        r,
        "apps/db/values.yaml",
        &format!("image: postgres\nauth:\n  password: {DB_PASSWORD}\n"),
        "oops",
    );
    commit_file(
        r,
        "apps/db/values.yaml",
        "image: postgres\nauth: {}\n",
        "remove it",
    );
    // A private key and an age identity on a side branch, deleted before merging nowhere.
    git(r, &["checkout", "-q", "-b", "side"]);
    let key_commit = commit_file(
        r,
        "keys/id_ed25519",
        include_str!("testdata/leaks/openssh-private-key.txt"),
        "key",
    );
    let age_commit = commit_file(r, "age.txt", &format!("# key\n{AGE_KEY}\n"), "age");
    git(r, &["rm", "-q", "keys/id_ed25519", "age.txt"]);
    git(r, &["commit", "-q", "-m", "clean up"]);
    git(r, &["checkout", "-q", "main"]);
    let env_commit = commit_file(
        r,
        ".env",
        "PORT=8080\nAPI_TOKEN=sk_4eC39HqLyjWDarjtT1zdp7dc9Xq\n",
        "env",
    );
    fs::remove_file(r.join(".env")).unwrap();
    git(r, &["commit", "-q", "-am", "drop env"]);

    let report = scan(r, &known()).unwrap();
    assert_eq!(report.files_scanned, 2, "README.md and values.yaml");
    assert_eq!(report.commits_scanned, 8);
    assert!(
        report
            .findings
            .iter()
            .all(|f| matches!(f.location, Location::History { .. })),
        "the working tree is clean: {:#?}",
        report.findings
    );
    let at = |commit: &str, path: &str, line: usize| Location::History {
        commit: commit.to_owned(),
        path: path.to_owned(),
        line,
    };
    let find = |loc: Location| {
        report
            .findings
            .iter()
            .find(|f| f.location == loc)
            .unwrap_or_else(|| panic!("nothing at {loc}: {:#?}", report.findings))
            .clone()
    };
    let f = find(at(&leak, "apps/db/values.yaml", 3));
    assert_eq!(
        f.kind,
        FindingKind::KnownSecret {
            name: "postgres-superuser-password".into(),
            encoding: homelab_secrets::redact::Encoding::Plain
        }
    );
    let f = find(at(&key_commit, "keys/id_ed25519", 1));
    assert_eq!(f.kind.code(), "private-key");
    let f = find(at(&age_commit, "age.txt", 2));
    assert_eq!(f.kind, FindingKind::AgeSecretKey);
    let f = find(at(&env_commit, ".env", 2));
    assert_eq!(
        f.kind,
        FindingKind::HighEntropy {
            key: "API_TOKEN".into()
        }
    );
    assert_eq!(report.findings.len(), 4, "{:#?}", report.findings);
    // No finding shows a secret.
    for f in &report.findings {
        let shown = f.to_string();
        for secret in [DB_PASSWORD, AGE_KEY, "sk_4eC39HqLyjWDarjtT1zdp7dc9Xq"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
    assert!(
        find(at(&leak, "apps/db/values.yaml", 3))
            .to_string()
            .starts_with(&leak[..12])
    );
}

#[test]
fn working_tree_leaks_are_found_with_file_and_line_including_untracked_files() {
    let repo = new_repo();
    let r = repo.path();
    commit_file(r, "README.md", "# lab\n", "start");
    fs::create_dir_all(r.join("rendered")).unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, DB_PASSWORD);
    fs::write(
        r.join("rendered/secret.yaml"),
        format!("kind: Secret\ndata:\n  password: {b64}\n"),
    )
    .unwrap();
    fs::write(r.join(".gitignore"), "ignored/\n").unwrap();
    fs::create_dir_all(r.join("ignored")).unwrap();
    fs::write(r.join("ignored/local.env"), format!("P={DB_PASSWORD}\n")).unwrap();
    let report = scan_with(
        r,
        &known(),
        &ScanOptions {
            history: false,
            ..ScanOptions::default()
        },
    )
    .unwrap();
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let f = &report.findings[0];
    assert_eq!(
        f.location,
        Location::WorkingTree {
            path: "rendered/secret.yaml".into(),
            line: 3
        }
    );
    assert_eq!(
        f.kind,
        FindingKind::KnownSecret {
            name: "postgres-superuser-password".into(),
            encoding: homelab_secrets::redact::Encoding::Base64
        }
    );
    assert_eq!(
        f.to_string(),
        format!(
            "rendered/secret.yaml:3: base64 of secret `postgres-superuser-password` [{}]",
            f.fingerprint
        )
    );
}

#[test]
fn a_clean_repository_with_an_encrypted_store_gives_nothing() {
    let repo = new_repo();
    let r = repo.path();
    let keys = tempfile::tempdir().unwrap();
    let (_, ids, me) = keygen(keys.path(), "k.txt");
    // The real secrets store, committed, holding the known value encrypted.
    let store_path = r.join("secrets.sops.yaml");
    let mut store = SecretsStore::create(&store_path, std::slice::from_ref(&me)).unwrap();
    store
        .set(
            "postgres-superuser-password",
            SecretString::from(DB_PASSWORD.to_owned()),
        )
        .unwrap();
    store
        .set(
            "api-token",
            SecretString::from("sk_4eC39HqLyjWDarjtT1zdp7dc9Xq".to_owned()),
        )
        .unwrap();
    store.save().unwrap();
    let known = SecretsStore::open(&store_path, &ids)
        .unwrap()
        .known_secrets();
    assert_eq!(known.len(), 2);
    git(r, &["add", "secrets.sops.yaml"]);
    git(r, &["commit", "-q", "-m", "secrets"]);
    commit_file(
        r,
        "apps/n8n/values.yaml",
        "env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:\n        name: n8n-db\n        key: password\ntolerations:\n  - key: node-role.kubernetes.io/control-plane\n",
        "values",
    );
    commit_file(
        r,
        "apps/n8n/secret.sops.yaml",
        &homelab_secrets::encrypt_kubernetes_secret(
            "apiVersion: v1\nkind: Secret\nmetadata:\n    name: n8n\nstringData:\n    token: sk_4eC39HqLyjWDarjtT1zdp7dc9Xq\n",
            std::slice::from_ref(&me),
        )
        .unwrap(),
        "flux secret",
    );
    commit_file(
        r,
        ".sops.yaml",
        &homelab_secrets::sops_config::SopsConfig::homelab(&[me]).to_yaml(),
        "rules",
    );
    let report = scan(r, &known).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.commits_scanned, 4);
    assert_eq!(report.files_scanned, 4);
    // Sanity: the same scan does see the value once it leaks.
    fs::write(
        r.join("notes.txt"),
        format!("pw {}\n", known.get("api-token").unwrap().expose_secret()),
    )
    .unwrap();
    assert_eq!(scan(r, &known).unwrap().findings.len(), 1);
}

#[test]
fn directories_outside_git_and_single_files_are_scanned() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("a/.git")).unwrap();
    fs::write(dir.path().join("a/.git/config"), format!("{AGE_KEY}\n")).unwrap();
    fs::write(
        dir.path().join("a/id_rsa"),
        include_str!("testdata/leaks/rsa-private-key-header.txt"),
    )
    .unwrap();
    fs::write(dir.path().join("binary.bin"), [0u8, 1, 2, b'A']).unwrap();
    let report = scan(dir.path(), &KnownSecrets::new()).unwrap();
    assert!(report.repository.is_none());
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    assert_eq!(
        report.findings[0].location,
        Location::WorkingTree {
            path: "a/id_rsa".into(),
            line: 1
        }
    );
    let single = scan(&dir.path().join("a/id_rsa"), &KnownSecrets::new()).unwrap();
    assert_eq!(single.findings.len(), 1);
    let err = scan(&dir.path().join("missing"), &KnownSecrets::new()).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn an_empty_repository_has_no_history_to_scan() {
    let repo = new_repo();
    fs::write(repo.path().join("x.yaml"), "a: b\n").unwrap();
    let report = scan(repo.path(), &known()).unwrap();
    assert!(report.is_clean());
    assert_eq!(report.commits_scanned, 0);
    assert_eq!(report.files_scanned, 1);
}

#[test]
fn paths_in_the_ignore_file_are_skipped_in_the_tree_and_in_history() {
    let repo = new_repo();
    let r = repo.path();
    let fixture = commit_file(
        r,
        "tests/fixtures/key.txt",
        &format!("{AGE_KEY}\n"),
        "fixture",
    );
    commit_file(r, "real/leak.txt", &format!("{AGE_KEY}\n"), "leak");
    let before = scan(r, &known()).unwrap();
    assert_eq!(before.findings.len(), 4, "{:#?}", before.findings);
    assert!(
        before
            .findings
            .iter()
            .any(|f| matches!(&f.location, Location::History { commit, .. } if *commit == fixture))
    );
    fs::write(
        r.join(homelab_secrets::scan::IGNORE_FILE),
        "# fixtures hold test keys\ntests/fixtures/\n",
    )
    .unwrap();
    let after = scan(r, &known()).unwrap();
    assert_eq!(after.findings.len(), 2, "{:#?}", after.findings);
    assert!(
        after
            .findings
            .iter()
            .all(|f| f.to_string().contains("real/leak.txt"))
    );
    // Scanning a subdirectory still applies root-relative patterns.
    let sub = scan(&r.join("tests"), &known()).unwrap();
    assert!(
        sub.findings
            .iter()
            .all(|f| matches!(f.location, Location::History { .. })),
        "{:#?}",
        sub.findings
    );
    let extra = ScanOptions {
        history: true,
        ignore: vec!["leak.txt".into()],
    };
    assert!(scan_with(r, &known(), &extra).unwrap().is_clean());
}

#[test]
fn an_ignore_line_pinned_to_a_commit_skips_that_commit_only_and_the_file_stays_scanned() {
    let repo = new_repo();
    let r = repo.path();
    let once = commit_file(r, "src/init.rs", &format!("{AGE_KEY}\n"), "fixture inline");
    commit_file(r, "src/init.rs", "built at run time\n", "fixture built");
    let before = scan(r, &known()).unwrap();
    assert_eq!(before.findings.len(), 1, "{:#?}", before.findings);
    fs::write(
        r.join(homelab_secrets::scan::IGNORE_FILE),
        format!("src/init.rs @{}\n", &once[..12]),
    )
    .unwrap();
    assert!(scan(r, &known()).unwrap().is_clean());
    // A new key in the same file, committed or not, is still found.
    fs::write(r.join("src/init.rs"), format!("{AGE_KEY}\n")).unwrap();
    let tree = scan(r, &known()).unwrap();
    assert_eq!(tree.findings.len(), 1, "{:#?}", tree.findings);
    assert!(matches!(
        tree.findings[0].location,
        Location::WorkingTree { .. }
    ));
    git(r, &["add", "src/init.rs"]);
    git(r, &["commit", "-q", "-m", "again"]);
    let again = scan(r, &known()).unwrap();
    assert_eq!(again.findings.len(), 2, "{:#?}", again.findings);
    assert!(
        again
            .findings
            .iter()
            .all(|f| !matches!(&f.location, Location::History { commit, .. } if *commit == once))
    );
}

/// The corpus in testdata/scan-corpus: every line of `leaks/` that is not empty or a comment is
/// reported as a literal assignment or a high-entropy value (and nothing else is), nothing in `clean/` is reported, and
/// no fingerprint holds the value.
#[test]
fn assignment_corpus_true_and_false_positives() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/scan-corpus");
    let known = KnownSecrets::new();
    let mut leaks_seen = 0;
    for (dir, leaky) in [("leaks", true), ("clean", false)] {
        let mut files: Vec<_> = std::fs::read_dir(corpus.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{dir} has files");
        for file in files {
            let name = file.file_name().unwrap().to_str().unwrap().to_owned();
            let text = std::fs::read_to_string(&file).unwrap();
            let found = scan_text(&name, &text, &known);
            let lines: Vec<usize> = found.iter().map(|(l, _, _)| *l).collect();
            let expected: Vec<usize> = if leaky {
                text.lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                    .map(|(i, _)| i + 1)
                    .collect()
            } else {
                Vec::new()
            };
            assert_eq!(lines, expected, "{dir}/{name}: {found:?}");
            for (line, kind, fp) in &found {
                assert!(
                    matches!(kind.code(), "assignment" | "high-entropy"),
                    "{dir}/{name}:{line}: {kind}"
                );
                let source = text.lines().nth(line - 1).unwrap();
                let value_len: usize = fp
                    .rsplit('(')
                    .next()
                    .and_then(|t| t.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("fingerprint {fp} gives a length"));
                assert!(value_len >= 8, "{dir}/{name}:{line}: {fp}");
                assert!(
                    !source
                        .split(['"', '\'', ' ', '='])
                        .any(|word| word.len() >= 8 && fp.contains(word)),
                    "{dir}/{name}:{line}: the fingerprint {fp} shows the value"
                );
            }
            leaks_seen += found.len();
        }
    }
    assert!(
        leaks_seen >= 15,
        "the corpus has at least 15 leaks: {leaks_seen}"
    );
}
