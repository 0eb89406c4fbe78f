//! One module per subcommand, plus the mapping from outcomes to exit codes.
//!
//! Exit codes (documented in README.md): 0 ok, 1 invalid input or failed
//! verification, 2 usage (clap), 3 registry/network/auth, 4 local I/O,
//! 130 interrupted.

mod build;
mod completions;
mod inspect;
mod progress;
mod render;
mod unpack;
mod validate;
mod verify;

use crate::cli::{Cli, Command};
use std::process::ExitCode;
use velero_airgap::build::BuildError;
use velero_airgap::registry::RegistryError;
use velero_airgap::unpack::UnpackError;

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
    /// More detail.
    pub verbose: bool,
}

/// The exit code for an error, from the most specific cause in its chain.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<Interrupted>() {
            return 130;
        }
        // Transparent wrappers hand their inner error's source to the chain, so
        // the registry error itself is found through them.
        let registry = match (
            cause.downcast_ref::<BuildError>(),
            cause.downcast_ref::<UnpackError>(),
        ) {
            (Some(BuildError::Registry(err)), _) | (_, Some(UnpackError::Registry(err))) => {
                Some(err)
            }
            _ => cause.downcast_ref::<RegistryError>(),
        };
        if let Some(err) = registry {
            return if err.is_network_or_auth() { 3 } else { 1 };
        }
        match cause.downcast_ref::<UnpackError>() {
            Some(UnpackError::Containerd(_)) => return 3,
            Some(UnpackError::Space { .. }) => return 4,
            _ => {}
        }
        if let Some(err) = cause.downcast_ref::<std::io::Error>() {
            // A file the user named that is not there is bad input, not a local
            // I/O failure like a full disk.
            return if err.kind() == std::io::ErrorKind::NotFound {
                1
            } else {
                4
            };
        }
    }
    1
}

/// Whether the error is a write to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes `contents` to `path` atomically (temp file beside it, then rename),
/// or to stdout when `path` is `None`.
pub fn write_output(path: Option<&std::path::Path>, contents: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let Some(path) = path else {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(contents)?;
        return Ok(stdout.flush()?);
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".velero-airgap-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
