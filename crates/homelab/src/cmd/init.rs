//! `homelab init`: writes a commented spec from a preset, never over an existing file
//! unless asked.

use std::io::Write;

use anyhow::Context;
use homelab_spec::templates::Preset as Template;
use serde_json::json;

use crate::cli::{Global, InitArgs, Preset};
use crate::exit;
use crate::output::Output;

pub fn run(global: &Global, args: &InitArgs, out: &Output) -> anyhow::Result<u8> {
    let path = &global.file;
    let template = match args.preset {
        Preset::Seed => Template::Seed,
        Preset::Minimal => Template::Minimal,
    };
    if path.is_dir() {
        return Err(exit::usage(format!(
            "{} is a directory; pass the file to write with `-f FILE`",
            path.display()
        )));
    }
    if path.exists() && !args.force {
        return Err(exit::usage(format!(
            "{} already exists; nothing was written. Use `--force` to overwrite it, or `-f FILE` to write another file",
            path.display()
        )));
    }
    if path.exists() {
        out.warn(format!("overwriting {} (--force)", path.display()));
    }
    let text = template.text();
    write_atomically(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let loaded = homelab_spec::load_str(&path.display().to_string(), text)
        .map_err(|e| anyhow::anyhow!("the {:?} preset does not validate: {e}", args.preset))?;
    let lab = &loaded.lab;
    out.result(
        || {
            format!(
                "wrote {} ({} nodes, domain {})",
                path.display(),
                lab.cluster.nodes.len(),
                lab.network.domain
            )
        },
        &json!({"ok": true, "file": path.display().to_string(), "preset": format!("{:?}", args.preset).to_lowercase()}),
    );
    out.status("next: review it, then run `homelab validate` and `homelab plan`");
    Ok(exit::OK)
}

/// Writes through a temporary file in the same directory and renames it into place, so an
/// interrupted write never leaves half a spec behind.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
