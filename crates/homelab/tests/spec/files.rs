//! Nothing is changed or lost on bad input: `validate` never writes, `init` never overwrites
//! without `--force`, and with it replaces the file in one step; what `init` writes is a
//! valid, self-describing spec.

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

#[test]
fn init_writes_the_commented_seed_lab_and_it_validates() {
    let work = Workdir::new();
    let run = work.run(&["init"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(
        run.stdout,
        "wrote homelab.yaml (seed preset: 3 nodes, domain home.jetzinger.com)\n"
    );
    let text = work.read("homelab.yaml");
    assert_eq!(text, homelab_spec::templates::SEED);
    assert!(
        text.lines().next().unwrap().starts_with(SCHEMA_LINE),
        "{text}"
    );
    assert!(text.contains(homelab_spec::SCHEMA_URL));
    let lab = homelab_spec::load_str("homelab.yaml", &text)
        .expect("the seed spec is valid")
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
            ("k3s-master", "192.168.2.20".to_string()),
            ("k3s-worker-01", "192.168.2.21".to_string()),
            ("k3s-worker-02", "192.168.2.22".to_string())
        ]
    );
    let validate = work.run(&["validate"]);
    assert_eq!(validate.code, 0, "{}", validate.transcript());
    assert!(
        !validate.stderr.contains("warning[") && !validate.stderr.contains("error["),
        "the seed spec has no warnings: {}",
        validate.stderr
    );
    assert_eq!(
        work.state().len(),
        1,
        "init leaves only the spec behind, no temporary file"
    );
}

#[test]
fn init_preset_minimal_writes_a_valid_one_node_lab_with_only_the_platform() {
    let work = Workdir::new();
    let run = work.run(&["init", "--preset", "minimal", "-f", "lab.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.contains("minimal preset: 1 node,"),
        "{}",
        run.stdout
    );
    let text = work.read("lab.yaml");
    assert_eq!(text, homelab_spec::templates::MINIMAL);
    assert!(text.starts_with(SCHEMA_LINE));
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

    let run = work.run(&["init", "--force", "--preset", "minimal"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr.contains("overwriting homelab.yaml (--force)"),
        "{}",
        run.stderr
    );
    assert_eq!(work.read("homelab.yaml"), homelab_spec::templates::MINIMAL);
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
        let run = work.run(&["init", "--preset", preset, "--output", "json"]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        let doc = run.json();
        assert_eq!(doc["ok"], true);
        assert_eq!(doc["preset"], preset);
        assert_eq!(doc["file"], "homelab.yaml");
        assert_eq!(doc["overwritten"], false);
        let check = work.run(&["validate", "--output", "json"]);
        assert_eq!(check.code, 0, "{}", check.transcript());
        assert_eq!(check.json()["valid"], true);
        assert_eq!(check.json()["warnings"], 0);
    }
}
