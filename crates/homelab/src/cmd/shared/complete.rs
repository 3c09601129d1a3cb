//! What the shell completes from the spec: node, secret and database names, for the
//! arguments that take them. Called by clap's completion engine while the shell asks (the
//! `HOMELAB_COMPLETE` run of the binary); it only reads the spec and never prints or fails.

use std::ffi::OsString;
use std::path::PathBuf;

use clap_complete::CompletionCandidate;
use homelab_spec::LoadedSpec;

/// The variable the registration script sets to ask the binary for completions.
pub(crate) const ENV: &str = "HOMELAB_COMPLETE";

/// The spec named on the line being completed (`-f`/`--file`), else `HOMELAB_FILE`, else
/// `homelab.yaml`: the one the completed command would read.
fn spec_path(words: &[OsString]) -> PathBuf {
    let mut file = None;
    let mut words = words.iter().map(|w| w.to_string_lossy().into_owned());
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        if word == "-f" || word == "--file" {
            file = words.next();
        } else if let Some(v) = word.strip_prefix("--file=") {
            file = Some(v.to_string());
        } else if let Some(v) = word
            .strip_prefix("-f")
            .filter(|v| !v.is_empty() && !word.starts_with("--"))
        {
            file = Some(v.trim_start_matches('=').to_string());
        }
    }
    file.filter(|f| !f.is_empty())
        .or_else(|| std::env::var("HOMELAB_FILE").ok().filter(|f| !f.is_empty()))
        .unwrap_or_else(|| "homelab.yaml".into())
        .into()
}

/// The line being completed: what the registration script passes after `--`, less the
/// program name. The engine gives candidates no arguments, so they read it from here.
fn line() -> Vec<OsString> {
    let args: Vec<OsString> = std::env::args_os().collect();
    match args.iter().position(|a| a == "--") {
        Some(i) => args.into_iter().skip(i + 2).collect(),
        None => Vec::new(),
    }
}

/// The spec, when it can be read and is valid; a shell completing offers nothing rather
/// than an error for anything else.
fn spec() -> Option<LoadedSpec> {
    crate::cmd::shared::spec::read(&spec_path(&line()))
        .ok()?
        .ok()
}

/// The spec's node names, each with its role and address as the shell's description.
pub(crate) fn nodes() -> Vec<CompletionCandidate> {
    let Some(loaded) = spec() else {
        return Vec::new();
    };
    loaded
        .lab
        .cluster
        .nodes
        .iter()
        .map(|n| {
            CompletionCandidate::new(&n.name).help(Some(format!("{} {}", n.role, n.address).into()))
        })
        .collect()
}

/// The databases of `services.postgres`.
pub(crate) fn databases() -> Vec<CompletionCandidate> {
    let Some(loaded) = spec() else {
        return Vec::new();
    };
    let Some(postgres) = &loaded.lab.services.postgres else {
        return Vec::new();
    };
    postgres
        .databases
        .iter()
        .map(|d| CompletionCandidate::new(&d.name).help(Some(format!("owner {}", d.owner).into())))
        .collect()
}

/// Every secret the lab needs (the plan's and the ones only the spec references).
pub(crate) fn secrets() -> Vec<CompletionCandidate> {
    let Some(loaded) = spec() else {
        return Vec::new();
    };
    let plan = homelab_plan::plan(&loaded.lab);
    homelab_ops::secrets::requirements(&loaded, &plan)
        .into_iter()
        .map(|r| CompletionCandidate::new(r.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn the_spec_is_the_one_the_completed_command_would_read() {
        for (line, spec) in [
            ("nodes remove ", "homelab.yaml"),
            ("-f lab.yaml nodes remove ", "lab.yaml"),
            ("nodes remove --file other.yaml ", "other.yaml"),
            ("nodes remove --file=x/y.yaml ", "x/y.yaml"),
            ("-flab2.yaml nodes remove ", "lab2.yaml"),
            ("nodes remove --dry-run ", "homelab.yaml"),
        ] {
            // HOMELAB_FILE is not set in the test environment.
            if std::env::var_os("HOMELAB_FILE").is_none() {
                assert_eq!(spec_path(&words(line)), PathBuf::from(spec), "{line:?}");
            }
        }
    }
}
