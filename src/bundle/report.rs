//! The report of a verification pass: what was checked, what the sidecar said, and
//! every problem found, by entry.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::input::Stream;
use super::layout::{Compression, parse_sums, sidecar_path};
use super::problem::{Problem, ProblemKind};
use crate::files::{self, FileError, Origin};
use crate::oci::Digest;

/// The pass over a whole file, whether or not its entries could be read: what a report
/// can still say about a bundle whose leading entries are unusable.
pub(crate) struct PassState {
    pub(crate) path: PathBuf,
    pub(crate) compression: Compression,
    pub(crate) file_size: u64,
    pub(crate) stream: Stream,
    pub(crate) problems: Vec<Problem>,
}

/// The file name used to report problems of the whole file.
pub(crate) fn file_label(path: &Path) -> String {
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// A sidecar holds one line; anything much larger is not one.
const SIDECAR_LIMIT: u64 = 4 * 1024;

/// What the sidecar `BUNDLE.sha256` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SidecarStatus {
    /// It matches the bundle file.
    Matched,
    /// It names another digest.
    Mismatched,
    /// There is no sidecar beside the bundle.
    Absent,
    /// It exists but could not be read or parsed, or the bundle could not be hashed.
    Unreadable,
}

/// The outcome of a verification pass.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub path: PathBuf,
    /// How the archive is stored.
    pub compression: Compression,
    /// Size of the bundle file.
    pub file_size: u64,
    /// SHA-256 of the bundle file, when it could be read to the end.
    pub sha256: Option<Digest>,
    /// What the sidecar said.
    pub sidecar: SidecarStatus,
    /// Images listed in `bundle.json`.
    pub images: usize,
    /// The images' config and layer blobs ([`BundleManifest::content_blobs`]); every blob
    /// of the bundle, manifests and signatures included, is read and hashed.
    ///
    /// [`BundleManifest::content_blobs`]: super::BundleManifest::content_blobs
    pub blobs: usize,
    /// Every problem found; empty for a good bundle.
    pub problems: Vec<Problem>,
    /// What could not be proven, or deserves a look, without making the bundle bad.
    pub warnings: Vec<String>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Finishes the outer hash, checks the sidecar and assembles the report. `clean_end`
/// says the archive ended properly, so any raw byte left over is trailing data.
pub(crate) fn conclude(
    pass: PassState,
    clean_end: bool,
    images: usize,
    blobs: usize,
) -> VerifyReport {
    let PassState {
        path,
        compression,
        file_size,
        stream,
        mut problems,
    } = pass;
    let sha256 = match stream.into_raw().finish() {
        Ok((digest, left)) => {
            if clean_end && left > 0 {
                problems.push(Problem::new(file_label(&path), ProblemKind::TrailingData));
            }
            Some(digest)
        }
        Err(error) => {
            problems.push(Problem::new(
                file_label(&path),
                ProblemKind::Read(error.to_string()),
            ));
            None
        }
    };
    let sidecar = check_sidecar(&path, sha256.as_ref(), &mut problems);
    VerifyReport {
        path,
        compression,
        file_size,
        sha256,
        sidecar,
        images,
        blobs,
        problems,
        warnings: Vec::new(),
    }
}

/// Compares the bundle's digest with `BUNDLE.sha256`, if that exists. The line naming
/// the bundle's file name is used; a single line naming another file is used too (a
/// renamed bundle keeps its sidecar's content).
fn check_sidecar(
    bundle: &Path,
    actual: Option<&Digest>,
    problems: &mut Vec<Problem>,
) -> SidecarStatus {
    let path = sidecar_path(bundle);
    let label = file_label(&path);
    // Found beside the bundle, not named by the user: a regular file or nothing (a FIFO
    // planted there must not hang the run).
    let text = match files::read_capped(&path, SIDECAR_LIMIT, "checksum file", Origin::Found) {
        Ok(text) => text,
        Err(FileError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return SidecarStatus::Absent;
        }
        Err(FileError::TooLarge { .. }) => {
            problems.push(Problem::new(
                label,
                ProblemKind::TooLarge {
                    limit: SIDECAR_LIMIT,
                },
            ));
            return SidecarStatus::Unreadable;
        }
        Err(error) => {
            problems.push(Problem::new(label, ProblemKind::Read(error.to_string())));
            return SidecarStatus::Unreadable;
        }
    };
    let lines = match parse_sums(&text) {
        Ok(lines) => lines,
        Err(error) => {
            problems.push(Problem::new(
                label,
                ProblemKind::Malformed(error.to_string()),
            ));
            return SidecarStatus::Unreadable;
        }
    };
    let name = file_label(bundle);
    let expected = lines
        .iter()
        .find(|(listed, _)| *listed == name)
        .or(match lines.as_slice() {
            [only] => Some(only),
            _ => None,
        });
    let Some((_, expected)) = expected else {
        problems.push(Problem::new(
            label,
            ProblemKind::Inconsistent(format!("has no checksum for {name}")),
        ));
        return SidecarStatus::Unreadable;
    };
    match actual {
        None => SidecarStatus::Unreadable,
        Some(actual) if actual == expected => SidecarStatus::Matched,
        Some(actual) => {
            problems.push(Problem::new(
                label,
                ProblemKind::SidecarMismatch {
                    expected: *expected,
                    actual: *actual,
                },
            ));
            SidecarStatus::Mismatched
        }
    }
}
