//! `homelab completions SHELL`: prints the shell's registration script. The script asks the
//! binary itself at every TAB (clap's completion engine, through `HOMELAB_COMPLETE`), so
//! subcommands and flags come from the CLI definition and node, secret and database names
//! from the spec the line names.

use crate::cmd::shared::complete::ENV;
use crate::exit;
use crate::output::Output;

pub fn run(shell: clap_complete::Shell, out: &Output) -> anyhow::Result<u8> {
    let shells = clap_complete::env::Shells::builtins();
    let name = shell.to_string();
    let completer = shells
        .completer(&name)
        .ok_or_else(|| exit::usage(format!("no completion support for {name}")))?;
    let mut buf = Vec::new();
    // `homelab` as found on PATH when the shell completes, not this build's path: the script
    // is meant to be installed and outlive the binary that printed it.
    completer.write_registration(ENV, "homelab", "homelab", "homelab", &mut buf)?;
    out.raw(&String::from_utf8(buf)?);
    Ok(exit::OK)
}
