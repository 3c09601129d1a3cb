//! `homelab secrets scan`: seeded leaks in a real git repository's history and working tree
//! are reported by place (exit 1) and never by value; a clean repository exits 0.

use std::process::Command;

use super::support::*;

fn git(lab: &Lab, args: &[&str]) {
    require_tool("git");
    let out = Command::new("git")
        .args(["-c", "user.name=Lab", "-c", "user.email=lab@example.org"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(lab.dir())
        .env("HOME", lab.home())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn head(lab: &Lab) -> String {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(lab.dir())
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn private_key_pem(lab: &Lab) -> String {
    require_tool("openssl");
    let path = lab.root().join("key.pem");
    let out = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&path)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{out:?}");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn scan_finds_seeded_leaks_in_history_and_the_tree_and_exits_0_when_clean() {
    let lab = Lab::seed();
    lab.init_secrets();
    let token = lab.get("k3s-token");
    git(&lab, &["init", "-q"]);
    git(
        &lab,
        &["add", "homelab.yaml", ".sops.yaml", "secrets.sops.yaml"],
    );
    git(&lab, &["commit", "-qm", "lab"]);

    let clean = lab.run(&["secrets", "scan"]).ok();
    assert!(
        clean.stdout.contains("no plaintext secrets found"),
        "{}",
        clean.stdout
    );
    assert!(clean.stdout.contains("1 commit"), "{}", clean.stdout);

    // A known value committed and then removed, an age key committed and removed, and a
    // private key in the working tree.
    lab.write("notes.env", format!("# join\nK3S_TOKEN={token}\n"));
    let (_, _) = age_keygen(&lab.path("old.key"));
    let age_key = lab.read("old.key");
    git(&lab, &["add", "notes.env", "old.key"]);
    git(&lab, &["commit", "-qm", "oops"]);
    let leak_commit = head(&lab);
    git(&lab, &["rm", "-q", "notes.env", "old.key"]);
    git(&lab, &["commit", "-qm", "remove"]);
    let pem = private_key_pem(&lab);
    lab.write("deploy/id_ed25519", &pem);

    let run = lab.run(&["secrets", "scan"]).expect(1);
    let short = &leak_commit[..12];
    assert!(
        run.stdout
            .contains(&format!("{short}:notes.env:2: value of secret `k3s-token`")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("{short}:old.key:3: age secret key")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("deploy/id_ed25519:1: PRIVATE KEY block"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("3 findings"), "{}", run.stderr);
    let secret_key_line = age_key
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    let pem_body = pem.lines().nth(1).unwrap();
    for output in [&run.stdout, &run.stderr] {
        assert!(!output.contains(&token), "the token is printed");
        assert!(!output.contains(secret_key_line), "the age key is printed");
        assert!(!output.contains(pem_body), "the private key is printed");
    }

    let json = lab
        .run(&["secrets", "scan", "--output", "json"])
        .expect(1)
        .json();
    assert_eq!(json["clean"], false);
    assert_eq!(json["knownValuesChecked"], true);
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 3, "{json}");
    let known = findings
        .iter()
        .find(|f| f["kind"] == "known-secret")
        .unwrap();
    assert_eq!(known["commit"], leak_commit);
    assert_eq!(known["file"], "notes.env");
    assert_eq!(known["line"], 2);
    assert!(!serde_json::to_string(&json).unwrap().contains(&token));

    // Only the working tree.
    let tree = lab.run(&["secrets", "scan", "--no-history"]).expect(1);
    assert!(!tree.stdout.contains("notes.env"), "{}", tree.stdout);
    assert!(tree.stdout.contains("deploy/id_ed25519"));
    // Ignored paths, on the command line and in .homelab-scan-ignore.
    let ignored = lab
        .run(&["secrets", "scan", "--no-history", "--ignore", "deploy/"])
        .ok();
    assert!(
        ignored.stdout.contains("no plaintext secrets found"),
        "{}",
        ignored.stdout
    );
    lab.write(
        ".homelab-scan-ignore",
        "# fixtures\ndeploy/\nnotes.env\nold.key\n",
    );
    let run = lab.run(&["secrets", "scan"]).ok();
    assert!(
        run.stdout.contains("no plaintext secrets found"),
        "{}",
        run.stdout
    );
}

#[test]
fn scan_without_the_key_still_finds_key_material_and_says_what_it_skipped() {
    let lab = Lab::seed();
    lab.init_secrets();
    std::fs::remove_file(lab.identity()).unwrap();
    lab.write("leak/id", private_key_pem(&lab));
    let run = lab
        .run(&["secrets", "scan", "--output", "json"])
        .expect(1)
        .json();
    assert_eq!(run["knownValuesChecked"], false);
    let text = lab.run(&["secrets", "scan"]).expect(1);
    assert!(
        text.stderr
            .contains("not looking for the values of secrets.sops.yaml"),
        "{}",
        text.stderr
    );
    assert!(
        text.stdout.contains("leak/id:1: PRIVATE KEY block"),
        "{}",
        text.stdout
    );

    let missing = lab.run(&["secrets", "scan", "no/such/dir"]).expect(2);
    assert!(
        missing.stderr.contains("no/such/dir does not exist"),
        "{}",
        missing.stderr
    );
}

/// `-q` hides progress, never results: the findings of a scan are its result. The hint under
/// them is progress, and the all-clear line of a clean scan only repeats exit code 0.
#[test]
fn quiet_scan_still_prints_its_findings_and_assignment_patterns_are_found() {
    let lab = Lab::seed();
    lab.write(
        "deploy/backup.sh",
        "#!/bin/sh\nPGPASSWORD=hunter2hunter2xyz pg_dump app\nPGPASSWORD=\"$(cat /run/pw)\" pg_dump app\n",
    );
    lab.write(
        "deploy/values.yaml",
        "password: \"hunter2hunter2xyz\"\npassword: {secret: db}\ntoken=ab12cd34ef56gh78\n",
    );
    let loud = lab.run(&["secrets", "scan", "deploy"]).expect(1);
    let quiet = lab.run(&["-q", "secrets", "scan", "deploy"]).expect(1);
    let findings = [
        "backup.sh:2: literal value assigned to `PGPASSWORD`",
        "values.yaml:1: literal value assigned to `password`",
        "values.yaml:3: literal value assigned to `token`",
    ];
    for run in [&loud, &quiet] {
        for f in findings {
            assert!(run.stdout.contains(f), "{f}:\n{}", run.transcript());
        }
        assert_eq!(run.stdout.lines().count(), 3, "{}", run.transcript());
        assert!(!run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"));
    }
    assert_eq!(quiet.stdout, loud.stdout);
    assert!(
        loud.stderr.contains("3 findings in deploy"),
        "{}",
        loud.stderr
    );
    assert!(!quiet.stderr.contains("findings in"), "{}", quiet.stderr);

    std::fs::remove_dir_all(lab.path("deploy")).unwrap();
    lab.write("deploy/values.yaml", "password: {secret: db}\n");
    let clean = lab.run(&["-q", "secrets", "scan", "deploy"]).ok();
    assert_eq!((clean.stdout.as_str(), clean.stderr.as_str()), ("", ""));
}

#[test]
fn this_repository_holds_no_plaintext_secrets() {
    require_tool("git");
    let lab = Lab::seed();
    let root = workspace_root();
    let run = lab.run(&["secrets", "scan", root.to_str().unwrap()]);
    assert_eq!(
        run.code,
        0,
        "`homelab secrets scan` finds secrets in this repository; remove them, or list test fixtures in .homelab-scan-ignore:\n{}",
        run.transcript()
    );
}
