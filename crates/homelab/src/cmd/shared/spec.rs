//! Reads the spec file and its manifests directory from disk (the I/O edge of the spec crate)
//! and reports a missing or unreadable file with what to do next.

use std::path::Path;

use homelab_spec::manifests::ManifestFile;
use homelab_spec::{InvalidSpec, LoadedSpec};

use crate::exit;

/// Reads and validates the spec. An invalid spec comes back as `Err(Ok(invalid))` so callers
/// can print its diagnostics; I/O problems are `Err(Err(..))` with context.
pub fn read(path: &Path) -> anyhow::Result<Result<LoadedSpec, InvalidSpec>> {
    let bytes = match read_capped(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(exit::usage_help(
                format!("{} does not exist", path.display()),
                "run `homelab init` to write a commented spec, or pass `-f FILE`",
            ));
        }
        Err(e) if e.raw_os_error() == Some(21) || path.is_dir() => {
            return Err(exit::usage_help(
                format!("{} is a directory", path.display()),
                "pass the spec file with `-f FILE`",
            ));
        }
        // Unreadable is as much the user's to fix as missing: the same exit code, with the
        // operating system's reason as the cause.
        Err(e) => {
            return Err(anyhow::Error::new(e).context(
                exit::Exit::new(
                    exit::USAGE,
                    format!("cannot read the spec {}", path.display()),
                )
                .help("check the path and its permissions, or pass another spec with `-f FILE`"),
            ));
        }
    };
    Ok(
        homelab_spec::load_bytes(&path.display().to_string(), &bytes)
            .and_then(homelab_plan::chart_values::check_loaded)
            .and_then(|loaded| {
                let files = match &loaded.lab.manifests {
                    Some(m) => {
                        read_manifests(&path.parent().unwrap_or(Path::new(".")).join(&m.dir))
                    }
                    None => Ok(Vec::new()),
                };
                homelab_plan::manifests::check_loaded(loaded, files)
            }),
    )
}

/// Every `*.yaml`/`*.yml` file under the manifests directory (hidden ones left out), with its
/// path relative to it; or why the directory cannot be read, for the spec's diagnostic.
fn read_manifests(dir: &Path) -> Result<Vec<ManifestFile>, String> {
    let meta = std::fs::metadata(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{} does not exist", dir.display()),
        _ => format!("{}: {e}", dir.display()),
    })?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let mut out = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((at, prefix)) = pending.pop() {
        let entries = std::fs::read_dir(&at).map_err(|e| format!("{}: {e}", at.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", at.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let rel = format!("{prefix}{name}");
            if path.is_dir() {
                pending.push((path, format!("{rel}/")));
                continue;
            }
            if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
                continue;
            }
            if out.len() == homelab_spec::manifests::MAX_FILES {
                return Err(format!(
                    "it holds more than {} YAML files",
                    homelab_spec::manifests::MAX_FILES
                ));
            }
            let bytes = read_capped(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let text = match homelab_spec::yaml::check_bytes(&bytes) {
                Ok(text) => text.to_string(),
                Err(d) => return Err(format!("{rel}: {}", d.message)),
            };
            out.push(ManifestFile { path: rel, text });
        }
    }
    Ok(out)
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
            let summary = invalid.summary();
            Err(exit::usage_help(
                format!("{} is not valid ({summary})", path.display()),
                "fix it first (`homelab validate` shows every problem)",
            ))
        }
    }
}

/// The flag of the commands that build the lab (`apply`, `nodes apply`, `up`) to go ahead
/// with values copied from an example.
#[derive(Debug, Clone, clap::Args)]
pub struct ExampleValuesArgs {
    /// Go ahead although the spec holds values copied from an example (the example lab's
    /// domain, ACME email, ntfy topic or SSH key; an example.com name with Let's Encrypt),
    /// which `homelab validate` warns of.
    /// The environment variable takes what scripts write for yes and no (`1`, `true`, `yes`,
    /// `on`; `0`, `false`, `no`, `off`).
    #[arg(
        long,
        env = "HOMELAB_ALLOW_EXAMPLE_VALUES",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_example_values: bool,
}

/// Refuses (exit 2) a spec with values copied from an example unless `--allow-example-values`:
/// they would fail only later, in the cluster or at Let's Encrypt, or send the lab's alerts
/// and logins to someone else. The warnings themselves were printed by [`load_valid`]; the
/// error names each value and its place once more, so a log with only the error says it too.
pub fn refuse_example_values(
    path: &Path,
    loaded: &LoadedSpec,
    args: &ExampleValuesArgs,
) -> anyhow::Result<()> {
    let found = loaded.example_values();
    if found.is_empty() || args.allow_example_values {
        return Ok(());
    }
    let places: Vec<String> = found
        .iter()
        .map(|d| {
            let at = d.span.map_or_else(String::new, |s| {
                let p = loaded.source.position(s.start);
                format!(" at {}:{}:{}", path.display(), p.line, p.column)
            });
            format!("{}{at}", d.message)
        })
        .collect();
    Err(exit::usage_help(
        format!(
            "{} holds {} copied from an example: {}",
            path.display(),
            if found.len() == 1 {
                "a value".to_string()
            } else {
                format!("{} values", found.len())
            },
            places.join("; ")
        ),
        "put your own values there (`homelab validate` shows each with what to use), or pass `--allow-example-values` to go ahead anyway",
    ))
}
