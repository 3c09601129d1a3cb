//! Nothing is changed or lost on bad input: `validate` never writes, `init` never overwrites
//! without `--force`, and with it replaces the file in one step; what `init` writes is the
//! user's lab (never the example's values), valid and self-describing.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::support::{Spec, Workdir};

const SCHEMA_LINE: &str = "# yaml-language-server: $schema=";

#[test]
fn validate_never_writes_whatever_it_reads() {
    let work = Workdir::new();
    work.write("valid.yaml", Spec::seed().text());
    work.write(
        "invalid.yaml",
        Spec::seed()
            .replace("address: 192.168.2.21", "address: 192.168.3.21")
            .text(),
    );
    work.write(
        "warning.yaml",
        Spec::seed()
            .replace(
                "apps: []",
                "apps:\n  - {name: whoami, image: traefik/whoami, port: 80}",
            )
            .text(),
    );
    work.write("broken.yaml", "name: [unclosed\n");
    work.write("binary.yaml", [0x89u8, b'P', b'N', b'G', 0, 0, 0xff]);
    work.write("homelab.yaml", Spec::minimal().text());
    std::fs::set_permissions(
        work.join("valid.yaml"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    let before = work.state();
    for (args, code) in [
        (vec!["validate", "-f", "valid.yaml"], 0),
        (vec!["validate", "-f", "valid.yaml", "--output", "json"], 0),
        (vec!["validate", "-f", "warning.yaml"], 0),
        (vec!["validate", "-f", "invalid.yaml"], 2),
        (
            vec!["validate", "-f", "invalid.yaml", "--output", "json"],
            2,
        ),
        (vec!["validate", "-f", "broken.yaml", "-v"], 2),
        (vec!["validate", "-f", "binary.yaml", "-q"], 2),
        (vec!["validate", "-f", "missing.yaml"], 2),
        (vec!["validate"], 0),
    ] {
        let run = work.run(&args);
        assert_eq!(run.code, code, "{args:?}\n{}", run.transcript());
    }
    assert_eq!(
        work.state(),
        before,
        "validate changed, created or removed a file"
    );
}

/// The answers of a lab that is not the example's, as `homelab init` flags.
const MY_LAB: &[&str] = &[
    "--domain",
    "lab.sams-house.net",
    "--email",
    "sam@sams-house.net",
    "--subnet",
    "10.44.0.0/24",
    "--nodes",
    "cp-1=10.44.0.10,w-1=10.44.0.11,w-2=10.44.0.12",
    "--nfs",
    "10.44.0.3:/tank/k8s",
    "--ssh-user",
    "sam",
];

const SAMS_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHs5m9a2000000000000000000000000000000000000 sam@desk";

/// Runs `homelab init MY_LAB ARGS` (a flag in ARGS replacing MY_LAB's) in `work` with
/// `work/home` as HOME (holding `~/.ssh/id_ed25519.pub` when `with_key`), so the developer's
/// own keys never reach the test.
fn init_my_lab(work: &Workdir, args: &[&str], with_key: bool) -> crate::support::Run {
    if with_key {
        work.write("home/.ssh/id_ed25519.pub", format!("{SAMS_KEY}\n"));
    }
    std::fs::create_dir_all(work.join("home")).unwrap();
    let mut all = vec!["init"];
    for pair in MY_LAB.chunks(2) {
        if !args.contains(&pair[0]) {
            all.extend_from_slice(pair);
        }
    }
    all.extend_from_slice(args);
    crate::support::Run::of(
        crate::support::homelab()
            .current_dir(work.path())
            .env("HOME", work.join("home"))
            .args(&all),
    )
}

/// What the planning documents' lab holds that nobody else's should.
const SEED_VALUES: &[&str] = &[
    "jetzinger",
    "tom@",
    "AAAAC3NzaC1lZDI1NTE5AAAAIKq2X0Vb0p1Xh0Zrj7J8Qm6v2V8nK9rZ3Yt1w5sS4uPq",
    "192.168.2.",
    "example.com",
];

#[test]
fn init_writes_the_users_lab_and_none_of_the_seed_values() {
    let work = Workdir::new();
    let run = init_my_lab(&work, &[], true);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(
        run.stdout,
        "wrote homelab.yaml (seed preset: 3 nodes, domain lab.sams-house.net)\n"
    );
    let text = work.read("homelab.yaml");
    for seed in SEED_VALUES {
        assert!(
            !text.contains(seed),
            "init wrote the seed value `{seed}`:\n{text}"
        );
        assert!(!run.stderr.contains(seed), "{}", run.stderr);
    }
    assert!(
        text.lines().next().unwrap().starts_with(SCHEMA_LINE),
        "{text}"
    );
    assert!(text.contains(homelab_spec::SCHEMA_URL));
    let lab = homelab_spec::load_str("homelab.yaml", &text)
        .expect("the user's spec is valid")
        .lab;
    let nodes: Vec<(&str, String)> = lab
        .cluster
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.address.to_string()))
        .collect();
    assert_eq!(
        nodes,
        [
            ("cp-1", "10.44.0.10".to_string()),
            ("w-1", "10.44.0.11".to_string()),
            ("w-2", "10.44.0.12".to_string())
        ]
    );
    assert!(
        lab.cluster
            .nodes
            .iter()
            .all(|n| n.ssh.user.as_deref() == Some("sam"))
    );
    assert_eq!(
        lab.tls.acme().expect("an ACME lab").acme_email,
        "sam@sams-house.net"
    );
    assert_eq!(lab.services.dev_containers[0].authorized_keys, [SAMS_KEY]);
    assert!(
        run.stderr.contains("the dev container accepts the key in"),
        "{}",
        run.stderr
    );
    let topic = lab
        .alerting
        .receivers
        .iter()
        .find_map(|r| match &r.kind {
            homelab_spec::lab::ReceiverKind::Ntfy { topic, .. } => Some(topic.clone()),
            _ => None,
        })
        .expect("an ntfy receiver");
    assert!(
        run.stderr.contains(&topic),
        "the topic is shown: {}",
        run.stderr
    );

    let validate = work.run(&["validate"]);
    assert_eq!(validate.code, 0, "{}", validate.transcript());
    assert!(
        !validate.stderr.contains("warning[") && !validate.stderr.contains("error["),
        "the user's spec has no warnings: {}",
        validate.stderr
    );
    let names: Vec<_> = work.state().into_keys().collect();
    assert!(
        names.iter().all(|n| n.starts_with("home")
            || n == std::path::Path::new("homelab.yaml")
            || n == std::path::Path::new(".gitignore")),
        "init leaves only the spec and its .gitignore behind, no temporary file: {names:?}"
    );

    let again = Workdir::new();
    assert_eq!(init_my_lab(&again, &[], false).code, 0);
    let other = again.read("homelab.yaml");
    assert!(
        !other.contains(&topic),
        "every lab gets its own random topic"
    );
    assert!(
        other.contains("# devContainers:"),
        "without a key the dev container is left commented out"
    );
}

/// `git` in `dir`, which must succeed; its stdout.
fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The journal `homelab up` keeps beside the spec stays out of the lab's repository: `init`
/// writes a `.gitignore` that real git honours, adds the line to the user's own without
/// touching the rest, leaves one that already names it alone, and stops with nothing written
/// when the `.gitignore` cannot be read.
#[test]
fn init_keeps_the_up_journal_out_of_the_labs_repository() {
    let work = Workdir::new();
    git(work.path(), &["init", "-q"]);
    let run = init_my_lab(&work, &["--output", "json"], false);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(run.json()["gitignoreChanged"], true, "{}", run.transcript());
    std::fs::create_dir(work.join(".homelab")).unwrap();
    work.write(".homelab/up.json", "{}\n");
    git(work.path(), &["check-ignore", "-q", ".homelab/up.json"]);
    let status = git(
        work.path(),
        &["status", "--porcelain", "--untracked-files=all"],
    );
    assert!(
        status.contains(".gitignore") && status.contains("homelab.yaml"),
        "{status}"
    );
    assert!(!status.contains(".homelab/"), "{status}");

    // Again with --force: the line is there, nothing is added twice.
    let before = work.read(".gitignore");
    let again = init_my_lab(&work, &["--force"], false);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert_eq!(work.read(".gitignore"), before);
    assert!(!again.stderr.contains(".gitignore"), "{}", again.stderr);

    // The user's own .gitignore (no newline at its end) keeps every line; the entry follows.
    let own = Workdir::new();
    own.write(".gitignore", "*.swp\n!important.swp");
    let run = init_my_lab(&own, &[], false);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("added a line to .gitignore: it ignores .homelab/"),
        "{}",
        run.stderr
    );
    let text = own.read(".gitignore");
    assert!(text.starts_with("*.swp\n!important.swp\n"), "{text}");
    assert_eq!(
        text.lines().filter(|l| *l == ".homelab/").count(),
        1,
        "{text}"
    );

    // A .gitignore that is not a readable file: a clear error, and nothing is written.
    let bad = Workdir::new();
    std::fs::create_dir_all(bad.join(".gitignore/inside")).unwrap();
    std::fs::create_dir_all(bad.join("home")).unwrap();
    let before = bad.state();
    let run = init_my_lab(&bad, &[], false);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr.contains("cannot read .gitignore")
            && run.stderr.contains("nothing was written")
            && run.stderr.contains("help: "),
        "{}",
        run.stderr
    );
    assert_eq!(bad.state(), before, "a failed init changed the directory");
}

#[test]
fn init_preset_minimal_writes_a_valid_one_node_lab_with_only_the_platform() {
    let work = Workdir::new();
    let run = init_my_lab(
        &work,
        &[
            "--preset",
            "minimal",
            "-f",
            "lab.yaml",
            "--nodes",
            "solo=10.44.0.10",
        ],
        true,
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.contains("minimal preset: 1 node,"),
        "{}",
        run.stdout
    );
    let text = work.read("lab.yaml");
    assert!(text.starts_with(SCHEMA_LINE));
    for seed in SEED_VALUES {
        assert!(
            !text.contains(seed),
            "init wrote the seed value `{seed}`:\n{text}"
        );
    }
    assert!(
        !text.contains(SAMS_KEY),
        "the minimal lab has no dev container"
    );
    let lab = homelab_spec::load_str("lab.yaml", &text).unwrap().lab;
    assert_eq!(lab.cluster.nodes.len(), 1);
    let s = &lab.services;
    assert!(
        s.monitoring.is_none()
            && s.logging.is_none()
            && s.postgres.is_none()
            && s.ollama.is_none()
            && s.n8n.is_none()
            && s.paperless.is_none()
            && s.dev_proxy.is_none()
            && s.dev_containers.is_empty(),
        "only the platform: {s:?}"
    );
    assert!(lab.apps.is_empty());
    assert!(lab.storage.is_some(), "the platform includes NFS storage");
    let validate = work.run(&["validate", "-f", "lab.yaml"]);
    assert_eq!(validate.code, 0, "{}", validate.transcript());
}

#[test]
fn init_without_a_terminal_names_the_missing_flags_and_writes_nothing() {
    let work = Workdir::new();
    let before = work.state();
    for (args, missing) in [
        (vec!["init"], "--domain, --email, --subnet, --nodes, --nfs"),
        (
            vec![
                "init",
                "--domain",
                "lab.sams-house.net",
                "--nfs",
                "nas:/k",
                "--output",
                "json",
            ],
            "--email, --subnet, --nodes",
        ),
    ] {
        let run = work.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.transcript());
        let said = if args.contains(&"json") {
            run.json()["error"].as_str().unwrap().to_string()
        } else {
            run.stderr.clone()
        };
        assert!(
            said.contains(&format!(
                "init needs {missing}: there is no terminal to ask on"
            )),
            "{}",
            run.transcript()
        );
        assert_eq!(work.state(), before, "{args:?} changed the directory");
    }
}

#[test]
fn init_refuses_each_bad_answer_naming_its_flag_and_writes_nothing() {
    let work = Workdir::new();
    std::fs::create_dir_all(work.join("home")).unwrap();
    // Built at run time: the repository's own leak scan would rightly flag the block.
    let private = "PRIVATE";
    work.write(
        "secret-key",
        format!("-----BEGIN OPENSSH {private} KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH {private} KEY-----\n"),
    );
    let before = work.state();
    for (flag, value, said) in [
        (
            "--domain",
            "localhost",
            "--domain: `localhost` is not a domain name",
        ),
        ("--email", "sam", "--email: `sam` is not an email address"),
        (
            "--subnet",
            "10.44.0.1/24",
            "--subnet: `10.44.0.1/24` has host bits set",
        ),
        (
            "--nodes",
            "cp-1=10.45.0.10",
            "--nodes: node `cp-1` has the address 10.45.0.10, which is not in 10.44.0.0/24",
        ),
        (
            "--nodes",
            "cp-1=10.44.0.10:boss",
            "--nodes: `boss` (node `cp-1`) is not a role",
        ),
        ("--nfs", "nas", "--nfs: `nas` has no `:/PATH`"),
        (
            "--pool",
            "10.44.0.5-10.44.0.15",
            "--pool: the pool 10.44.0.5-10.44.0.15 includes node `cp-1` (10.44.0.10)",
        ),
        (
            "--ssh-user",
            "Sam Smith",
            "--ssh-user: `Sam Smith` is not a login name",
        ),
        (
            "--ssh-key",
            "secret-key",
            "--ssh-key: this is a private key",
        ),
        (
            "--ntfy-topic",
            "my topic",
            "--ntfy-topic: `my topic` is not an ntfy topic",
        ),
    ] {
        let run = init_my_lab(&work, &[flag, value], false);
        assert_eq!(run.code, 2, "{flag} {value}: {}", run.transcript());
        assert!(
            run.stderr.contains(said) && run.stderr.contains("nothing was written"),
            "{flag} {value}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("help: "), "{}", run.stderr);
        assert!(
            !run.stderr.contains("b3BlbnNzaC1rZXktdjEAAAAA"),
            "{}",
            run.stderr
        );
        assert_eq!(work.state(), before, "{flag} {value} changed the directory");
    }
}

#[test]
fn init_on_a_terminal_asks_for_what_is_missing_and_again_after_a_bad_answer() {
    let work = Workdir::new();
    work.write("home/.ssh/id_ed25519.pub", format!("{SAMS_KEY}\n"));
    let (code, shown) = crate::terminal::run_on_terminal(
        &["init", "--subnet", "10.44.0.0/24"],
        "lab.sams-house.net\nsam\nsam@sams-house.net\ncp-1=10.44.0.10,w-1=10.44.0.11\n10.44.0.3:/tank/k8s\n\n\n",
        |cmd| {
            cmd.current_dir(work.path())
                .env("HOME", work.join("home"))
                .env("USER", "sam")
                .env_remove("HOMELAB_FILE");
        },
    );
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("Domain the services are served under"),
        "{shown}"
    );
    assert!(
        !shown.contains("Home LAN in CIDR"),
        "--subnet was given: {shown}"
    );
    assert!(shown.contains("`sam` is not an email address"), "{shown}");
    assert!(
        shown.contains("[sam]"),
        "the login name is offered: {shown}"
    );
    assert!(
        shown.contains("wrote homelab.yaml (seed preset: 2 nodes, domain lab.sams-house.net)"),
        "{shown}"
    );
    let text = work.read("homelab.yaml");
    let lab = homelab_spec::load_str("homelab.yaml", &text).unwrap().lab;
    assert_eq!(
        lab.tls.acme().expect("an ACME lab").acme_email,
        "sam@sams-house.net"
    );
    assert_eq!(lab.services.dev_containers[0].authorized_keys, [SAMS_KEY]);
    for seed in SEED_VALUES {
        assert!(
            !text.contains(seed),
            "init wrote the seed value `{seed}`:\n{text}"
        );
    }
}

#[test]
fn init_refuses_to_overwrite_and_leaves_the_file_byte_identical() {
    let work = Workdir::new();
    let mine = "# my lab, edited by hand\nname: mine\n";
    work.write("homelab.yaml", mine);
    let before = work.state();
    for args in [
        vec!["init"],
        vec!["init", "--preset", "minimal"],
        vec!["init", "--output", "json"],
    ] {
        let run = work.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.transcript());
        let said = if args.contains(&"json") {
            run.json()["error"].as_str().unwrap().to_string()
        } else {
            run.stderr.clone()
        };
        assert!(
            said.contains("homelab.yaml already exists; nothing was written")
                && said.contains("--force"),
            "{}",
            run.transcript()
        );
        assert_eq!(work.state(), before, "{args:?} changed the directory");
    }
    assert_eq!(work.read("homelab.yaml"), mine);
}

#[test]
fn init_force_replaces_the_file_in_one_step_and_keeps_its_permissions() {
    let work = Workdir::new();
    let old = "name: old\n";
    let path = work.write("homelab.yaml", old);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A second name for the old file: a rename replaces the directory entry, so this link
    // keeps the old content; writing in place would change both.
    std::fs::hard_link(&path, work.join("old-link.yaml")).unwrap();
    let old_inode = std::fs::metadata(&path).unwrap().ino();

    let run = init_my_lab(&work, &["--force", "--preset", "minimal"], false);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr.contains("overwriting homelab.yaml (--force)"),
        "{}",
        run.stderr
    );
    assert!(
        work.read("homelab.yaml")
            .contains("domain: lab.sams-house.net")
    );
    let meta = std::fs::metadata(&path).unwrap();
    assert_ne!(
        meta.ino(),
        old_inode,
        "the file was replaced, not rewritten in place"
    );
    assert_eq!(
        meta.mode() & 0o777,
        0o600,
        "the replaced file's permissions are kept"
    );
    assert_eq!(work.read("old-link.yaml"), old);
    let names: Vec<_> = work.state().into_keys().collect();
    assert_eq!(
        names,
        [
            std::path::PathBuf::from(".gitignore"),
            std::path::PathBuf::from("home"),
            std::path::PathBuf::from("homelab.yaml"),
            std::path::PathBuf::from("old-link.yaml")
        ],
        "no temporary file is left behind"
    );
}

#[test]
fn init_refuses_a_directory_and_a_missing_parent_directory() {
    let work = Workdir::new();
    std::fs::create_dir(work.join("specs")).unwrap();
    let before = work.state();

    let run = work.run(&["init", "-f", "specs"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.contains("specs is a directory"),
        "{}",
        run.stderr
    );

    let run = work.run(&["init", "--force", "-f", "specs"]);
    assert_eq!(run.code, 2, "{}", run.transcript());

    let run = work.run(&["init", "-f", "nowhere/homelab.yaml"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("the directory nowhere does not exist; create it first"),
        "{}",
        run.stderr
    );
    assert_eq!(work.state(), before);
}

#[test]
fn init_output_validates_for_every_preset_and_output_format() {
    for preset in ["seed", "minimal"] {
        let work = Workdir::new();
        let run = init_my_lab(&work, &["--preset", preset, "--output", "json"], false);
        assert_eq!(run.code, 0, "{}", run.transcript());
        let doc = run.json();
        assert_eq!(doc["ok"], true);
        assert_eq!(doc["preset"], preset);
        assert_eq!(doc["file"], "homelab.yaml");
        assert_eq!(doc["overwritten"], false);
        assert_eq!(doc["domain"], "lab.sams-house.net");
        assert!(
            doc["ntfyTopic"]
                .as_str()
                .unwrap()
                .starts_with("homelab-alerts-")
        );
        let check = work.run(&["validate", "--output", "json"]);
        assert_eq!(check.code, 0, "{}", check.transcript());
        assert_eq!(check.json()["valid"], true);
        assert_eq!(check.json()["warnings"], 0);
    }
}
