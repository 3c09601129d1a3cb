//! `homelab init`: writes a commented spec from a preset, never over an existing file
//! unless asked, and never leaves half a file behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use homelab_spec::templates::Preset as Template;
use serde_json::json;

use crate::cli::{Global, InitArgs, Preset};
use crate::exit;
use crate::output::Output;

pub fn run(global: &Global, args: &InitArgs, out: &Output) -> anyhow::Result<u8> {
    let path = &global.file;
    let (template, preset) = match args.preset {
        Preset::Seed => (Template::Seed, "seed"),
        Preset::Minimal => (Template::Minimal, "minimal"),
    };
    if path.is_dir() {
        return Err(exit::usage(format!(
            "{} is a directory; pass the file to write with `-f FILE`",
            path.display()
        )));
    }
    let dir = parent_dir(path);
    if !dir.is_dir() {
        return Err(exit::usage(format!(
            "cannot write {}: the directory {} does not exist; create it first or pass another `-f FILE`",
            path.display(),
            dir.display()
        )));
    }
    let exists = path.symlink_metadata().is_ok();
    if exists && !args.force {
        return Err(exists_error(path));
    }
    let text = template.text();
    // The presets are tested to be valid; checking before writing keeps a broken one from
    // ever reaching a user's disk.
    let loaded = homelab_spec::load_str(&path.display().to_string(), text)
        .map_err(|e| anyhow::anyhow!("the {preset} preset does not validate: {e}"))?;
    if exists {
        out.warn(format!("overwriting {} (--force)", path.display()));
    }
    match write_atomically(path, text, args.force) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists_error(path)),
        Err(e) => return Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
    let lab = &loaded.lab;
    let nodes = lab.cluster.nodes.len();
    out.result(
        || {
            format!(
                "wrote {} ({preset} preset: {nodes} node{}, domain {})",
                path.display(),
                if nodes == 1 { "" } else { "s" },
                lab.network.domain
            )
        },
        &json!({
            "ok": true,
            "file": path.display().to_string(),
            "preset": preset,
            "overwritten": exists,
        }),
    );
    out.status("next: review it, then run `homelab validate` and `homelab plan`");
    Ok(exit::OK)
}

fn exists_error(path: &Path) -> anyhow::Error {
    exit::usage(format!(
        "{} already exists; nothing was written. Use `--force` to overwrite it, or `-f FILE` to write another file",
        path.display()
    ))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes through a temporary file in the same directory, then moves it into place in one
/// step: an interrupted write never leaves half a spec behind. Without `replace` the final
/// step is a hard link, which fails if the file appeared meanwhile, so an existing spec is
/// never overwritten; with it, a rename, which keeps the replaced file's permissions.
fn write_atomically(path: &Path, text: &str, replace: bool) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent_dir(path).join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        if replace && let Ok(old) = std::fs::metadata(path) {
            f.set_permissions(old.permissions())?;
        }
        f.sync_all()?;
        if replace {
            return std::fs::rename(&tmp, path);
        }
        match std::fs::hard_link(&tmp, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                // A filesystem without hard links: check, then rename (a narrow race, but
                // still never half a file).
                if path.symlink_metadata().is_ok() {
                    return Err(std::io::ErrorKind::AlreadyExists.into());
                }
                std::fs::rename(&tmp, path)
            }
            other => other,
        }
    })();
    // After a rename the temporary name is gone already; after a link or a failure it is
    // removed here.
    let _ = std::fs::remove_file(&tmp);
    result?;
    if let Ok(dir) = std::fs::File::open(parent_dir(path)) {
        // Make the new directory entry durable too; some filesystems cannot, which is fine.
        let _ = dir.sync_all();
    }
    Ok(())
}
