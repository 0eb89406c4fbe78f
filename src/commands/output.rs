//! Everything the commands print goes through here. `println!` and `eprintln!` panic when
//! the reader of a pipe is gone (`velero-airgap build … 2>&1 | head -1`), which would
//! abandon the work half-way; a closed pipe ends the output, never the work, and is not a
//! failure of ours.

use std::io::{self, Write};
use std::path::Path;

use velero_airgap::files::Privacy;

/// Writes `contents` to `path` atomically, or to stdout when `path` is `None`. A closed
/// stdout is ignored; any other failure to write is an error (exit 4).
pub fn write_output(path: Option<&Path>, contents: &[u8]) -> anyhow::Result<()> {
    write_output_as(path, contents, Privacy::Shared)
}

/// Like [`write_output`], a file getting the mode `privacy` asks for.
pub fn write_output_as(
    path: Option<&Path>,
    contents: &[u8],
    privacy: Privacy,
) -> anyhow::Result<()> {
    match path {
        Some(path) => Ok(velero_airgap::files::write_atomic(path, contents, privacy)?),
        None => {
            let mut stdout = io::stdout().lock();
            let written = stdout.write_all(contents).and_then(|()| stdout.flush());
            match written {
                Err(error) if error.kind() != io::ErrorKind::BrokenPipe => Err(error.into()),
                _ => Ok(()),
            }
        }
    }
}

/// Writes one line (a message, a warning, progress) to stderr. Nothing is reported when
/// that fails: stderr is where failures would be reported.
pub fn stderr_line(text: &str) {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

/// Whether the error is a write to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
