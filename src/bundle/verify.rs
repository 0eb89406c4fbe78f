//! `verify`: one streaming pass over a bundle that hashes the whole file (for the
//! sidecar) and every entry at the same time, and reports every problem by entry.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::digest::Sha256Digest;
use super::layout::{Compression, parse_sums, sidecar_path};
use super::manifest::BundleManifest;
use super::problem::{Problem, ProblemKind};
use super::reader::{BundleReader, Opened, PassState, ReadError, file_label};
use std::collections::HashMap;

/// A sidecar holds one line; anything much larger is not one.
const SIDECAR_LIMIT: u64 = 64 * 1024;

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
    /// The bundle file.
    pub path: PathBuf,
    /// How the archive is stored.
    pub compression: Compression,
    /// Size of the bundle file.
    pub file_size: u64,
    /// SHA-256 of the bundle file, when it could be read to the end.
    pub sha256: Option<Sha256Digest>,
    /// What the sidecar said.
    pub sidecar: SidecarStatus,
    /// Images listed in `bundle.json`.
    pub images: usize,
    /// Blobs read and hashed.
    pub blobs: u64,
    /// Every problem found; empty for a good bundle.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies a bundle in one pass. `Err` only when the file cannot be opened; every
/// problem of its content is in the report.
pub fn verify(path: &Path) -> Result<VerifyReport, ReadError> {
    Ok(verify_keeping(path)?.0)
}

/// What a verification pass read and found good, kept so that a caller acts on
/// exactly the bytes that were verified rather than reading the file again.
#[derive(Debug, Clone)]
pub struct VerifiedContent {
    /// `bundle.json`.
    pub manifest: BundleManifest,
    /// `values.yaml`.
    pub values_yaml: Vec<u8>,
    /// Every manifest, index and signature manifest blob, by digest.
    pub manifests: HashMap<Sha256Digest, Vec<u8>>,
}

/// Like [`verify`], also returning the verified leading entries and manifests
/// when the bundle is good.
pub fn verify_keeping(path: &Path) -> Result<(VerifyReport, Option<VerifiedContent>), ReadError> {
    Ok(match BundleReader::start(path)? {
        Opened::Ready(mut reader) => {
            while reader.next_blob().is_some() {}
            let content = VerifiedContent {
                manifest: reader.bundle().clone(),
                values_yaml: reader.values_yaml().to_vec(),
                manifests: reader.captured_manifests().clone(),
            };
            let report = reader.finish();
            let content = report.is_ok().then_some(content);
            (report, content)
        }
        Opened::Unusable(unusable) => (conclude(*unusable, false, 0, 0), None),
    })
}

/// Finishes the outer hash, checks the sidecar and assembles the report. `clean_end`
/// says the archive ended properly, so any raw byte left over is trailing data.
pub(crate) fn conclude(
    pass: PassState,
    clean_end: bool,
    images: usize,
    blobs: u64,
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
    }
}

/// Compares the bundle's digest with `BUNDLE.sha256`, if that exists. The line naming
/// the bundle's file name is used; a single line naming another file is used too (a
/// renamed bundle keeps its sidecar's content).
fn check_sidecar(
    bundle: &Path,
    actual: Option<&Sha256Digest>,
    problems: &mut Vec<Problem>,
) -> SidecarStatus {
    let path = sidecar_path(bundle);
    let label = file_label(&path);
    let mut text = Vec::new();
    let read =
        File::open(&path).and_then(|file| file.take(SIDECAR_LIMIT + 1).read_to_end(&mut text));
    match read {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return SidecarStatus::Absent,
        Err(error) => {
            problems.push(Problem::new(label, ProblemKind::Read(error.to_string())));
            return SidecarStatus::Unreadable;
        }
        Ok(_) if text.len() as u64 > SIDECAR_LIMIT => {
            problems.push(Problem::new(
                label,
                ProblemKind::TooLarge {
                    limit: SIDECAR_LIMIT,
                },
            ));
            return SidecarStatus::Unreadable;
        }
        Ok(_) => {}
    }
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
