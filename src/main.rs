//! The `velero-airgap` binary: parses arguments, runs one command, maps the
//! outcome to an exit code. Everything else lives in the library.

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
            eprintln!("error: {err:#}");
            commands::exit_code(&err).into()
        }
    }
}
