//! `homelab completions SHELL`: prints a completion script generated from the CLI definition.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit;
use crate::output::Output;

pub fn run(shell: clap_complete::Shell, out: &Output) -> anyhow::Result<u8> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "homelab", &mut buf);
    out.raw(&String::from_utf8(buf)?);
    Ok(exit::OK)
}
