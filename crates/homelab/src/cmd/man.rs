//! `homelab man --out DIR`: writes a man page per command and subcommand, made from the CLI
//! definition like the completion scripts; it writes only into DIR and reads no spec.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::CommandFactory;
use serde_json::json;

use crate::cli::Cli;
use crate::exit;
use crate::output::Output;

pub fn run(dir: &Path, out: &Output) -> anyhow::Result<u8> {
    let pages = pages();
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create the man page directory {}: choose a directory you can write to",
            dir.display()
        )
    })?;
    let mut written: Vec<PathBuf> = Vec::with_capacity(pages.len());
    for (name, roff) in &pages {
        let path = dir.join(name);
        std::fs::write(&path, roff)
            .with_context(|| format!("cannot write the man page {}", path.display()))?;
        written.push(path);
    }
    out.result(
        || {
            format!(
                "wrote {} man pages to {} (read one with `man -l {}`, or add the directory to MANPATH)\n",
                written.len(),
                dir.display(),
                dir.join("homelab.1").display()
            )
        },
        &json!({
            "dir": dir.display().to_string(),
            "pages": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        }),
    );
    Ok(exit::OK)
}

/// Every page as (file name, roff): `homelab.1`, then `homelab-nodes.1`,
/// `homelab-nodes-remove.1` and so on, parents before their subcommands. The `help`
/// subcommands clap adds are left out: every page already has the help text.
fn pages() -> Vec<(String, Vec<u8>)> {
    // Built, so that each subcommand knows its full name (`homelab-nodes-remove`) and the
    // global flags are on every page that accepts them.
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut pages = Vec::new();
    collect(root, &mut pages);
    pages
}

fn collect(cmd: clap::Command, pages: &mut Vec<(String, Vec<u8>)>) {
    let man = clap_mangen::Man::new(cmd.clone())
        .manual("homelab manual")
        .source(format!("homelab {}", env!("CARGO_PKG_VERSION")));
    let mut roff = Vec::new();
    // Rendering into memory cannot fail.
    man.render(&mut roff).expect("render into a Vec");
    pages.push((man.get_filename(), roff));
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        collect(sub.clone(), pages);
    }
}
