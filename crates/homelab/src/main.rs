//! The `homelab` binary: parses the command line, runs one subcommand, prints the error chain
//! once and maps it to an exit code (0 ok, 1 failure or unhealthy, 2 usage or invalid spec).

mod cli;
mod cmd;
mod exit;
mod output;

use clap::{CommandFactory, Parser};

fn main() -> std::process::ExitCode {
    // A shell asking for completions (the registration script sets the variable) is answered
    // here and the process exits; otherwise this does nothing.
    clap_complete::CompleteEnv::with_factory(cli::Cli::command)
        .var(cmd::COMPLETE_ENV)
        .complete();
    let cli = cli::Cli::parse();
    let out = output::Output::new(cli.global.output, cli.global.quiet, cli.global.verbose);
    let code = match cmd::run(&cli, &out) {
        Ok(code) => {
            out.finish(code);
            code
        }
        Err(err) => {
            let code = exit::code_of(&err);
            out.error(&err, code);
            code
        }
    };
    std::process::ExitCode::from(code)
}
