//! Reads the spec file from disk (the I/O edge of the spec crate) and reports a missing or
//! unreadable file with what to do next.

use std::path::Path;

use anyhow::Context;
use homelab_spec::{InvalidSpec, LoadedSpec};

use crate::exit;

/// Reads and validates the spec. An invalid spec comes back as `Err(Ok(invalid))` so callers
/// can print its diagnostics; I/O problems are `Err(Err(..))` with context.
pub fn read(path: &Path) -> anyhow::Result<Result<LoadedSpec, InvalidSpec>> {
    let bytes = match read_capped(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(exit::usage(format!(
                "{} does not exist; run `homelab init` to write a commented spec, or pass `-f FILE`",
                path.display()
            )));
        }
        Err(e) if e.raw_os_error() == Some(21) || path.is_dir() => {
            return Err(exit::usage(format!(
                "{} is a directory; pass the spec file with `-f FILE`",
                path.display()
            )));
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the spec {}", path.display()));
        }
    };
    Ok(
        homelab_spec::load_bytes(&path.display().to_string(), &bytes)
            .and_then(homelab_plan::chart_values::check_loaded),
    )
}

/// Reads at most one byte more than a spec may hold, so a huge file is refused without
/// loading it into memory.
fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(homelab_spec::yaml::MAX_SPEC_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads the spec for a command that needs a valid one: prints its warnings, or its
/// diagnostics and fails with exit code 2 when it is invalid.
pub fn load_valid(path: &Path, out: &crate::output::Output) -> anyhow::Result<LoadedSpec> {
    match read(path)? {
        Ok(loaded) => {
            out.diagnostics(&loaded.source.render(&loaded.warnings));
            Ok(loaded)
        }
        Err(invalid) => {
            out.diagnostics(&invalid.render());
            let summary = homelab_spec::summary(&invalid.diagnostics);
            Err(crate::exit::Exit {
                code: crate::exit::USAGE,
                message: format!(
                    "{} is not valid ({summary}); fix it first (`homelab validate` shows every problem)",
                    path.display()
                ),
            }
            .into())
        }
    }
}
