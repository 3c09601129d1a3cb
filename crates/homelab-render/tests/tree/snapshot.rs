//! The reviewed snapshot of the seed lab's whole tree, and determinism: the same plan gives
//! the same bytes, in memory and on disk.

use homelab_render::Content;

use crate::common::*;

/// Files whose text the backup crate writes (runbooks, backup scripts and the ConfigMap
/// carrying them): that crate snapshots and tests them itself, and `contents.rs` checks they
/// reach the tree unchanged, so this snapshot shows only that they are there.
fn written_by_the_backup_crate(path: &str) -> bool {
    path.starts_with("applications/postgres/backup/")
        || path == "applications/postgres/backup-cronjob.yaml"
        || [
            "cluster-backup",
            "cluster-restore",
            "nfs-restore",
            "postgres-backup",
            "postgres-restore",
            "postgres-connectivity",
        ]
        .iter()
        .any(|r| path == format!("docs/runbooks/{r}.md"))
}

/// The tree as one text: each file's path and mode, then its content.
fn tree_text(tree: &homelab_render::Tree) -> String {
    let mut out = String::new();
    for (path, file) in tree.iter() {
        out.push_str(&format!("=== {path} (mode {:o})\n", file.mode));
        match &file.content {
            Content::Text(_) if written_by_the_backup_crate(path) => {
                out.push_str("<written by homelab-backup; checked in contents.rs>\n")
            }
            Content::Text(t) => out.push_str(t),
            Content::Sops(s) => out.push_str(&format!("<encrypted {}>\n", s.object)),
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[test]
fn seed_tree_snapshot() {
    let tree = render_k3s(&seed_plan());
    insta::assert_snapshot!("seed-k3s-tree", tree_text(&tree));
}

#[test]
fn seed_file_list_snapshot() {
    let tree = render_k3s(&seed_plan());
    let list: Vec<&str> = tree.paths().collect();
    insta::assert_snapshot!("seed-k3s-files", list.join("\n"));
}

#[test]
fn same_plan_gives_the_same_bytes() {
    let a = tree_text(&render_k3s(&seed_plan()));
    let b = tree_text(&render_k3s(&seed_plan()));
    assert_eq!(a, b);

    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    write_k3s(&render_k3s(&seed_plan()), &one, false);
    write_k3s(&render_k3s(&seed_plan()), &two, false);
    let (one_files, two_files) = (read_dir_files(&one), read_dir_files(&two));
    assert_eq!(
        one_files.keys().collect::<Vec<_>>(),
        two_files.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &one_files {
        assert!(
            two_files[path] == *bytes,
            "{path} differs between two renders"
        );
    }

    // Rendering the same lab again into the same directory touches nothing.
    let again = write_k3s(&render_k3s(&seed_plan()), &one, false);
    assert!(again.written.is_empty(), "rewrote {:?}", again.written);
    assert!(again.removed.is_empty());
    assert_eq!(again.unchanged.len(), one_files.len() - 1);
}

#[test]
fn a_changed_spec_changes_only_what_it_touches() {
    let tmp = tempfile::tempdir().unwrap();
    write_k3s(&render_k3s(&seed_plan()), tmp.path(), false);
    let spec = SEED.replace("models: [llama3.2:3b]", "models: [llama3.2:3b, qwen2.5:7b]");
    let report = write_k3s(&render_k3s(&plan_of(&spec)), tmp.path(), false);
    for must in [
        "applications/ollama/helmchart.yaml",
        "applications/ollama/values-homelab.yaml",
        "applications/ollama/README.md",
    ] {
        assert!(
            report.written.iter().any(|w| w == must),
            "{must} not rewritten: {:?}",
            report.written
        );
    }
    for w in &report.written {
        let text = std::fs::read_to_string(tmp.path().join(w)).unwrap();
        assert!(
            text.contains("qwen2.5:7b"),
            "{w} was rewritten but does not mention the change"
        );
    }
    assert!(report.removed.is_empty());
}
