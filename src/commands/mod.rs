//! One module per subcommand, plus the mapping from outcomes to exit codes.
//!
//! Exit codes (documented in README.md): 0 ok, 1 invalid input or failed
//! verification, 2 usage (clap), 3 registry/network/auth, 4 local I/O,
//! 130 interrupted.

/// `eprintln!` through [`stderr_line`], which survives a closed pipe.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::commands::stderr_line(&format!($($arg)*))
    };
}

mod build;
mod completions;
mod inspect;
mod output;
mod plugin_table;
mod progress;
mod render;
mod settings;
mod unpack;
mod validate;
mod verify;

pub use output::{is_broken_pipe, stderr_line, write_output, write_output_as};

use crate::cli::{Cli, Command};
use std::process::ExitCode;
use velero_airgap::ErrorKind;

/// How a command that ran to the end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything is fine.
    Success,
    /// The command ran, and what it checked is not fine (invalid config,
    /// failed verification).
    Failure,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        match status {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failure => ExitCode::from(1),
        }
    }
}

/// A user's Ctrl-C, carried as an error so that clean-up runs on the way out.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// Runs `work` on a multi-threaded runtime. Ctrl-C cancels `token`, which
/// blocking work inside checks, and ends the run with [`Interrupted`].
pub fn run_async<T>(
    token: tokio_util::sync::CancellationToken,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // A spawned task keeps listening even while `work` blocks its own thread.
    let on_signal = token.clone();
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let result = runtime.block_on(async {
        tokio::select! {
            _ = token.cancelled() => Err(Interrupted.into()),
            result = work => result,
        }
    });
    // Work that stopped because it noticed the cancellation fails with its own
    // error; the cause is the interruption.
    match result {
        Err(_) if token.is_cancelled() => Err(Interrupted.into()),
        other => other,
    }
}

/// Runs the chosen command.
pub fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let output = Output {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    init_tracing(output);
    match cli.command {
        Command::Validate(args) => validate::run(args, output),
        Command::Render(args) => render::run(args, output),
        Command::Build(args) => build::run(args, output),
        Command::Verify(args) => verify::run(args, output),
        Command::Inspect(args) => inspect::run(args, output),
        Command::Unpack(args) => unpack::run(args, output),
        Command::Completions(args) => completions::run(args),
    }
}

/// How chatty to be.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Nothing but errors.
    pub quiet: bool,
    /// More detail: 1 for decisions, 2 for HTTP-level events too.
    pub verbose: u8,
}

/// `-v` shows the library's decisions (`debug` events), `-vv` every request (`trace`);
/// by default only what the commands print themselves.
fn init_tracing(output: Output) {
    let level = match output.verbose {
        _ if output.quiet => tracing::Level::ERROR,
        0 => return,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .without_time()
        .init();
}

/// The exit code for an error: the class of the library error at the head of the chain
/// (each error type's `kind()` looks through what it wraps).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err
        .chain()
        .any(<dyn std::error::Error + 'static>::is::<Interrupted>)
    {
        return 130;
    }
    let kind = err.chain().find_map(kind_of);
    match kind {
        Some(ErrorKind::Input) | None => 1,
        Some(ErrorKind::Remote) => 3,
        Some(ErrorKind::Local) => 4,
    }
}

/// The class of one error of the library, if it is one.
fn kind_of(cause: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    use velero_airgap::{bundle, config, files, pack, registry, sign, unpack, verify};
    macro_rules! kind {
        ($($error:ty),*) => {
            $(if let Some(error) = cause.downcast_ref::<$error>() {
                return Some(error.kind());
            })*
        };
    }
    kind!(
        pack::PackError,
        unpack::UnpackError,
        verify::VerifyError,
        registry::RegistryError,
        bundle::ReadError,
        bundle::WriteError,
        files::FileError,
        config::ConfigError,
        sign::SignError
    );
    if let Some(error) = cause.downcast_ref::<crate::commands::unpack::TargetRegistryError>() {
        return Some(error.kind());
    }
    if let Some(error) = cause.downcast_ref::<std::io::Error>() {
        // Output written by the commands themselves (stdout, `render -o`).
        return Some(match error.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::Input,
            _ => ErrorKind::Local,
        });
    }
    None
}
