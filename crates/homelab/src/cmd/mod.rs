//! One module per subcommand, each a thin wrapper over a library call; this file dispatches.

pub(crate) mod apply;
pub(crate) mod backup;
mod completions;
pub(crate) mod diff;
pub(crate) mod dns;
pub(crate) mod down;
pub(crate) mod etcd;
mod init;
pub(crate) mod kubeconfig;
mod man;
pub(crate) mod nodes;
mod plan;
mod render;
pub(crate) mod restore;
mod schema;
pub(crate) mod secrets;
pub(crate) mod serve;
mod shared;
pub(crate) mod status;
pub(crate) mod tls;
pub(crate) mod up;
mod validate;
mod version;
pub(crate) mod vms;

use crate::cli::{Cli, Command};

/// The variable that asks the binary for completions instead of running a command.
pub(crate) const COMPLETE_ENV: &str = shared::complete::ENV;
use crate::output::Output;

/// Runs the chosen subcommand and returns the exit code it ends with.
pub fn run(cli: &Cli, out: &Output) -> anyhow::Result<u8> {
    match &cli.command {
        Command::Init(args) => init::run(&cli.global, args, out),
        Command::Validate => validate::run(&cli.global, out),
        Command::Plan => plan::run(&cli.global, out),
        Command::Render(args) => render::run(&cli.global, args, out),
        Command::Secrets(args) => secrets::run(&cli.global, args, out),
        Command::Vms(args) => vms::run(&cli.global, args, out),
        Command::Nodes(args) => nodes::run(&cli.global, args, out),
        Command::Kubeconfig(args) => kubeconfig::run(&cli.global, args, out),
        Command::Apply(args) => apply::run(&cli.global, args, out),
        Command::Diff(args) => diff::run(&cli.global, args, out),
        Command::Status(args) => status::run(&cli.global, args, out),
        Command::Serve(args) => serve::run(&cli.global, args, out),
        Command::Tls(args) => tls::run(&cli.global, args, out),
        Command::Dns(args) => dns::run(&cli.global, args, out),
        Command::Up(args) => up::run(&cli.global, args, out),
        Command::Down(args) => down::run(&cli.global, args, out),
        Command::Etcd(args) => etcd::run(&cli.global, args, out),
        Command::Backup(args) => backup::run(&cli.global, args, out),
        Command::Restore(args) => restore::run(&cli.global, args, out),
        Command::Schema => schema::run(out),
        Command::Completions { shell } => completions::run(*shell, out),
        Command::Man { out: dir } => man::run(dir, out),
        Command::Version => version::run(&cli.global, out),
    }
}
