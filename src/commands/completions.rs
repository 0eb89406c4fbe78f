//! `velero-airgap completions SHELL`: shell completion scripts.

use super::ExitStatus;
use crate::cli::{Cli, CompletionsArgs, Shell};
use clap::CommandFactory;

/// Prints the completion script for the chosen shell.
pub fn run(args: CompletionsArgs) -> anyhow::Result<ExitStatus> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "velero-airgap", &mut out);
    super::write_output(None, &out)?;
    Ok(ExitStatus::Success)
}
