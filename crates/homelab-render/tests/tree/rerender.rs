//! Re-rendering: what the tool wrote is replaced or removed, everything else is kept, and
//! nothing outside `--out` is ever touched.

use std::fs;
use std::path::Path;

use homelab_render::{Flavor, MANIFEST_FILE, WriteError, WriteOptions, write_tree};

use crate::common::*;

fn try_write(
    dir: &Path,
    spec: &str,
    force: bool,
) -> Result<homelab_render::WriteReport, WriteError> {
    write_tree(
        &render_k3s(&plan_of(spec)),
        dir,
        &WriteOptions {
            flavor: Flavor::K3s,
            force,
            sops: None,
            pause_per_file: None,
        },
    )
}

#[test]
fn rerender_removes_stale_files_and_keeps_foreign_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lab");
    try_write(&out, SEED, false).unwrap();
    // The user's own files, inside and beside the rendered directories.
    fs::write(out.join("NOTES.md"), "mine\n").unwrap();
    fs::write(out.join("applications/ollama/extra.yaml"), "mine\n").unwrap();
    fs::create_dir_all(out.join("applications/mine")).unwrap();
    fs::write(out.join("applications/mine/app.yaml"), "mine\n").unwrap();

    let report = try_write(&out, &minimal_spec(), false).unwrap();
    assert!(
        report
            .removed
            .iter()
            .any(|p| p == "applications/postgres/statefulset.yaml")
    );
    assert!(
        report
            .removed
            .iter()
            .any(|p| p == "monitoring/prometheus/custom-rules.yaml")
    );
    for kept in [
        "NOTES.md",
        "applications/ollama/extra.yaml",
        "applications/mine/app.yaml",
    ] {
        assert_eq!(
            fs::read_to_string(out.join(kept)).unwrap(),
            "mine\n",
            "{kept}"
        );
    }
    // Directories emptied by the removal are gone; those holding the user's files stay.
    assert!(!out.join("monitoring").exists());
    assert!(!out.join("applications/postgres").exists());
    assert!(out.join("applications/ollama").is_dir());
    assert!(!out.join("applications/ollama/helmchart.yaml").exists());
    // The manifest lists exactly the new render.
    let listed: Vec<String> = fs::read_to_string(out.join(MANIFEST_FILE))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let tree = render_k3s(&plan_of(&minimal_spec()));
    assert_eq!(listed, tree.paths().map(str::to_string).collect::<Vec<_>>());
    let on_disk = read_dir_files(&out);
    for p in tree.paths() {
        assert!(on_disk.contains_key(p), "{p} not written");
    }
    assert!(
        !on_disk.keys().any(|p| p.contains("homelab-tmp")),
        "temporary files left behind"
    );
}

#[test]
fn refuses_a_non_empty_directory_it_did_not_write_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("homelab.yaml"), "name: x\n").unwrap();
    let err = try_write(tmp.path(), SEED, false).unwrap_err();
    assert!(matches!(err, WriteError::NotOurs { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("--force") && msg.contains("homelab.yaml"),
        "{msg}"
    );
    assert_eq!(read_dir_files(tmp.path()).len(), 1, "something was written");

    let report = try_write(tmp.path(), SEED, true).unwrap();
    assert!(!report.written.is_empty());
    assert_eq!(
        fs::read_to_string(tmp.path().join("homelab.yaml")).unwrap(),
        "name: x\n"
    );
    // From now on the directory is ours: no --force needed.
    try_write(tmp.path(), SEED, false).unwrap();
}

#[test]
fn a_fresh_git_repository_counts_as_empty() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join(".git")).unwrap();
    fs::write(tmp.path().join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    try_write(tmp.path(), SEED, false).unwrap();
    assert!(tmp.path().join("README.md").exists());
}

#[test]
fn refuses_to_overwrite_a_file_it_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    try_write(tmp.path(), &minimal_spec(), false).unwrap();
    // The user created a file where a later render (with more services) writes one.
    fs::create_dir_all(tmp.path().join("applications/postgres")).unwrap();
    fs::write(
        tmp.path().join("applications/postgres/README.md"),
        "my notes\n",
    )
    .unwrap();
    let before = read_dir_files(tmp.path());
    let err = try_write(tmp.path(), SEED, false).unwrap_err();
    assert!(matches!(err, WriteError::WouldOverwrite { .. }), "{err}");
    assert!(err.to_string().contains("applications/postgres/README.md"));
    assert_eq!(
        read_dir_files(tmp.path()),
        before,
        "the refused render changed files"
    );
    try_write(tmp.path(), SEED, true).unwrap();
    assert_ne!(
        fs::read_to_string(tmp.path().join("applications/postgres/README.md")).unwrap(),
        "my notes\n"
    );
}

#[test]
fn never_deletes_outside_the_output_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lab");
    let outside = tmp.path().join("precious.txt");
    fs::write(&outside, "keep\n").unwrap();
    try_write(&out, SEED, false).unwrap();

    // A manifest edited to point outside: refused before anything is written or deleted.
    let manifest = out.join(MANIFEST_FILE);
    let original = fs::read_to_string(&manifest).unwrap();
    fs::write(&manifest, format!("{original}../precious.txt\n")).unwrap();
    let before = read_dir_files(&out);
    let err = try_write(&out, &minimal_spec(), false).unwrap_err();
    assert!(matches!(err, WriteError::BadManifest { .. }), "{err}");
    assert!(err.to_string().contains("../precious.txt"));
    assert!(outside.exists());
    assert_eq!(read_dir_files(&out), before);
    for bad in ["/etc/hostname", "a/../../precious.txt", "./x"] {
        fs::write(&manifest, format!("{original}{bad}\n")).unwrap();
        assert!(matches!(
            try_write(&out, &minimal_spec(), false),
            Err(WriteError::BadManifest { .. })
        ));
    }
    fs::write(&manifest, &original).unwrap();

    // A rendered directory replaced by a symlink to a directory outside: not followed.
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("statefulset.yaml"), "outside\n").unwrap();
    fs::remove_dir_all(out.join("applications/postgres")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("applications/postgres")).unwrap();
    let err = try_write(&out, &minimal_spec(), false).unwrap_err();
    assert!(matches!(err, WriteError::Unsafe { .. }), "{err}");
    assert!(err.to_string().contains("symbolic link"));
    assert_eq!(
        fs::read_to_string(elsewhere.join("statefulset.yaml")).unwrap(),
        "outside\n"
    );
    let err = try_write(&out, SEED, false).unwrap_err();
    assert!(matches!(err, WriteError::Unsafe { .. }), "{err}");
    assert_eq!(
        fs::read_to_string(elsewhere.join("statefulset.yaml")).unwrap(),
        "outside\n"
    );
}

#[test]
fn out_must_be_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("lab");
    fs::write(&file, "x").unwrap();
    let err = try_write(&file, SEED, false).unwrap_err();
    assert!(matches!(err, WriteError::NotADirectory { .. }), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "x");
}

#[test]
fn a_stale_path_the_user_turned_into_a_directory_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    try_write(tmp.path(), SEED, false).unwrap();
    let p = tmp.path().join("applications/postgres/statefulset.yaml");
    fs::remove_file(&p).unwrap();
    fs::create_dir(&p).unwrap();
    fs::write(p.join("keep"), "k").unwrap();
    let report = try_write(tmp.path(), &minimal_spec(), false).unwrap();
    assert!(
        !report
            .removed
            .iter()
            .any(|r| r == "applications/postgres/statefulset.yaml")
    );
    assert!(p.join("keep").exists());
}

#[test]
fn file_modes_come_from_the_plan() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    try_write(tmp.path(), SEED, false).unwrap();
    let mode = |p: &str| {
        fs::metadata(tmp.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("infrastructure/k3s/nodes/k3s-master.yaml"), 0o600);
    assert_eq!(mode("applications/postgres/backup/backup.sh"), 0o755);
    assert_eq!(
        mode("applications/dev-containers/base-image/entrypoint.sh"),
        0o755
    );
    assert_eq!(mode("README.md"), 0o644);
    // A mode changed by hand is restored by the next render.
    fs::set_permissions(
        tmp.path().join("README.md"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let report = try_write(tmp.path(), SEED, false).unwrap();
    assert_eq!(report.written, ["README.md"]);
    assert_eq!(mode("README.md"), 0o644);
}
