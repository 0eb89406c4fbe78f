//! The `velero-airgap` binary: parses arguments, runs one command, maps the
//! outcome to an exit code. Everything else lives in the library.

// Output goes through `commands::write_output` and `commands::stderr_line`, which survive
// a closed pipe; the print macros panic on one.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod commands;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(status) => status.into(),
        Err(err) => {
            // A closed pipe (`| head`) is not a failure of ours.
            if commands::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            commands::stderr_line(&format!("error: {}", velero_airgap::chain(err.as_ref())));
            commands::exit_code(&err).into()
        }
    }
}
