//! Reading a bundle as hostile input, in one streaming pass. [`BundleReader::open`]
//! reads and cross-checks the leading entries (`SHA256SUMS`, `bundle.json`,
//! `index.json`, …); [`BundleReader::next_blob`] then hands out blobs one at a time,
//! identified by digest only — nothing is ever extracted by a path taken from the tar —
//! while every byte is hashed; [`BundleReader::finish`] completes the pass with the
//! whole-bundle checks and returns the report.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::closure::{BlobSource, image_closure};
use super::input::{PassEvent, PassProgress, Stream, TarCursor};
use super::layout::{BUNDLE_JSON, Compression, EntryKind, archive_size, blob_entry_name, classify};
use super::leading::{ExpectedBlob, LEADING_LIMITS, Leading, check_leading, read_leading};
use super::manifest::BundleManifest;
use super::problem::{Problem, ProblemKind};
use super::report::{PassState, VerifyReport, conclude, file_label};
use super::ustar::EntryHeader;
use crate::oci::Digest;

const MIB: u64 = 1024 * 1024;
/// Registries refuse manifests over 4 MiB; so do we.
const MANIFEST_LIMIT: u64 = 4 * MIB;
/// Most manifest bytes kept in memory for the closure check, all images together.
const MANIFEST_BUDGET: u64 = 64 * MIB;

/// A bundle that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file cannot be opened or read.
    #[error("cannot read {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not a bundle at all.
    #[error("{path} is not a velero-airgap bundle: {reason}")]
    NotABundle {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },
    /// The leading entries are missing or unusable, so nothing else can be checked.
    #[error("{path} is not a usable bundle: {}", super::problem::join(problems))]
    Unusable {
        path: PathBuf,
        /// What is wrong with the leading entries.
        problems: Vec<Problem>,
    },
}

impl ReadError {
    /// A bundle that is missing or unusable is bad input; one that opened and then
    /// failed to read is a local failure.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            ReadError::Open { source, .. }
                if matches!(
                    source.kind(),
                    io::ErrorKind::NotFound
                        | io::ErrorKind::PermissionDenied
                        | io::ErrorKind::IsADirectory
                ) =>
            {
                crate::ErrorKind::Input
            }
            ReadError::Open { .. } => crate::ErrorKind::Local,
            ReadError::NotABundle { .. } | ReadError::Unusable { .. } => crate::ErrorKind::Input,
        }
    }
}

/// The blob being read.
struct Current {
    digest: Digest,
    size: u64,
    done: u64,
    hasher: Sha256,
    capture: Option<Vec<u8>>,
    /// Set once all data is read: whether the content matched its digest.
    matched: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Entries,
    /// The end-of-archive marker was read.
    Ended,
    /// Reading stopped at a problem that makes the rest unreadable.
    Broken,
}

/// The result of opening: a reader, or why there cannot be one.
pub(crate) enum Opened {
    Ready(Box<BundleReader>),
    Unusable(Box<PassState>),
}

/// A streaming, verifying reader; see the module documentation.
pub struct BundleReader {
    path: PathBuf,
    compression: Compression,
    file_size: u64,
    cursor: TarCursor,
    manifest: BundleManifest,
    config_yaml: Vec<u8>,
    values_yaml: Vec<u8>,
    sbom_json: Option<Vec<u8>>,
    blobs: BTreeMap<Digest, ExpectedBlob>,
    manifest_digests: HashSet<Digest>,
    captured: HashMap<Digest, Vec<u8>>,
    capture_budget: u64,
    last_blob: Option<Digest>,
    current: Option<Current>,
    problems: Vec<Problem>,
    phase: Phase,
    tail_clean: bool,
}

/// One blob of the bundle, read in archive order. Reading it to the end returns an
/// `InvalidData` error instead of end-of-file when the content does not match its
/// digest, so a consumer that reads to the end cannot accept a bad blob.
pub struct BlobEntry<'a> {
    reader: &'a mut BundleReader,
    digest: Digest,
    size: u64,
}

impl BlobEntry<'_> {
    /// The blob's digest.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The blob's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether `bundle.json` lists the blob as a manifest or index; its content is then
    /// also kept, see [`BundleReader::manifest_blob`].
    pub fn is_manifest(&self) -> bool {
        self.reader.manifest_digests.contains(&self.digest)
    }
}

impl Read for BlobEntry<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read_current(Some(buf))
    }
}

impl BundleReader {
    /// Opens a bundle and reads its leading entries. Problems that leave the rest
    /// checkable are recorded (see [`BundleReader::problems`]); problems that do not
    /// give [`ReadError::Unusable`].
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        match Self::start(path, None)? {
            Opened::Ready(reader) => Ok(*reader),
            Opened::Unusable(unusable) => match unusable.problems.as_slice() {
                [
                    Problem {
                        kind: ProblemKind::NotABundle { reason },
                        ..
                    },
                ] => Err(ReadError::NotABundle {
                    path: unusable.path,
                    reason: reason.clone(),
                }),
                _ => Err(ReadError::Unusable {
                    path: unusable.path,
                    problems: unusable.problems,
                }),
            },
        }
    }

    /// Opens for a full pass: like [`BundleReader::open`], but an unusable bundle keeps
    /// its stream so the report can still check the sidecar.
    pub(crate) fn start(path: &Path, progress: Option<PassProgress>) -> Result<Opened, ReadError> {
        let open_error = |source| ReadError::Open {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(open_error)?;
        let file_size = file.metadata().map_err(open_error)?.len();
        if let Some(progress) = &progress {
            progress(PassEvent::Started { file_size });
        }
        let (stream, compression) = Stream::new(file, progress).map_err(open_error)?;
        let mut cursor = TarCursor {
            stream,
            position: 0,
            limit: archive_size(LEADING_LIMITS),
        };
        let leading = read_leading(&mut cursor)
            .map_err(|problem| vec![problem])
            .and_then(check_leading);
        let Leading {
            manifest,
            config_yaml,
            values_yaml,
            sbom_json,
            blobs,
            archive_size,
            mut problems,
        } = match leading {
            Ok(leading) => leading,
            Err(mut problems) => {
                // A file that is not a bundle is named by its own name, not an entry's.
                for problem in &mut problems {
                    if matches!(problem.kind, ProblemKind::NotABundle { .. }) {
                        problem.entry = file_label(path);
                    }
                }
                return Ok(Opened::Unusable(Box::new(PassState {
                    path: path.to_owned(),
                    compression,
                    file_size,
                    stream: cursor.stream,
                    problems,
                })));
            }
        };
        cursor.limit = archive_size;
        // Known before reading on: `inspect` reads no further, and can still tell.
        if compression == Compression::None && file_size < archive_size {
            problems.push(Problem::new(
                file_label(path),
                ProblemKind::ShorterThanDeclared {
                    file_size,
                    declared: archive_size,
                },
            ));
        }
        let manifest_digests = manifest
            .images
            .iter()
            .flat_map(|image| {
                let source_index = image.image.source_index.iter().map(|index| index.digest);
                let signatures = image.image.signatures.iter().map(|s| s.manifest.digest);
                image
                    .manifests
                    .iter()
                    .map(|manifest| manifest.digest)
                    .chain(source_index)
                    .chain(signatures)
            })
            .collect();
        Ok(Opened::Ready(Box::new(Self {
            path: path.to_owned(),
            compression,
            file_size,
            cursor,
            manifest,
            config_yaml,
            values_yaml,
            sbom_json,
            blobs,
            manifest_digests,
            captured: HashMap::new(),
            capture_budget: MANIFEST_BUDGET,
            last_blob: None,
            current: None,
            problems,
            phase: Phase::Entries,
            tail_clean: true,
        })))
    }

    /// The bundle file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the file is compressed (from its magic bytes).
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Size of the bundle file.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// The parsed `bundle.json`.
    pub fn bundle(&self) -> &BundleManifest {
        &self.manifest
    }

    /// The bytes of `config.yaml`.
    pub fn config_yaml(&self) -> &[u8] {
        &self.config_yaml
    }

    /// The bytes of `values.yaml`.
    pub fn values_yaml(&self) -> &[u8] {
        &self.values_yaml
    }

    /// The bytes of `sbom.cdx.json`; `None` for a format 1 bundle, which has none.
    pub fn sbom_json(&self) -> Option<&[u8]> {
        self.sbom_json.as_deref()
    }

    /// Problems found so far. Any problem means the bundle must not be used.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// A manifest or index blob's content, once the blob has been read.
    pub fn manifest_blob(&self, digest: &Digest) -> Option<&[u8]> {
        self.captured.get(digest).map(Vec::as_slice)
    }

    /// Every manifest blob captured so far, by digest.
    pub(crate) fn captured_manifests(&self) -> &HashMap<Digest, Vec<u8>> {
        &self.captured
    }

    /// The next blob in archive order, after finishing (hashing) the previous one.
    /// Entries that are refused, unknown, duplicated or of the wrong size are recorded
    /// as problems and skipped; `None` at the end or when the archive is unreadable.
    pub fn next_blob(&mut self) -> Option<BlobEntry<'_>> {
        while self.current.is_some() {
            if self.read_current(None).is_err()
                || self.current.as_ref().is_some_and(|c| c.matched.is_some())
            {
                self.current = None;
            }
        }
        while self.phase == Phase::Entries {
            let header = match self.cursor.header() {
                Ok(Some(header)) => header,
                Ok(None) => {
                    self.end_of_archive();
                    break;
                }
                Err(kind) => {
                    let entry = format!(
                        "{} at byte {}",
                        file_label(&self.path),
                        self.cursor.position
                    );
                    self.break_off(entry, kind);
                    break;
                }
            };
            if let Some((digest, size)) = self.accept(header) {
                return Some(BlobEntry {
                    reader: self,
                    digest,
                    size,
                });
            }
        }
        None
    }

    /// Reads every remaining entry and completes the whole-bundle checks: missing
    /// entries, manifest closure, trailing data and the sidecar checksum.
    pub fn finish(mut self) -> VerifyReport {
        while self.next_blob().is_some() {}
        let label = file_label(&self.path);
        let unseen: Vec<Digest> = self
            .blobs
            .iter()
            .filter(|(_, blob)| !blob.seen)
            .map(|(digest, _)| *digest)
            .collect();
        match self.phase {
            Phase::Ended => {
                self.problems.extend(
                    unseen
                        .iter()
                        .map(|digest| Problem::new(blob_entry_name(digest), ProblemKind::Missing)),
                );
                self.check_closure();
            }
            Phase::Broken if !unseen.is_empty() => self.problems.push(Problem::new(
                label,
                ProblemKind::NotRead {
                    count: unseen.len(),
                },
            )),
            _ => {}
        }
        conclude(
            PassState {
                path: self.path,
                compression: self.compression,
                file_size: self.file_size,
                stream: self.cursor.stream,
                problems: self.problems,
            },
            self.phase == Phase::Ended && self.tail_clean,
            self.manifest.images.len(),
            self.manifest.content_blobs().blobs,
        )
    }

    fn break_off(&mut self, entry: String, kind: ProblemKind) {
        self.problems.push(Problem::new(entry, kind));
        self.phase = Phase::Broken;
    }

    fn end_of_archive(&mut self) {
        match self.cursor.clean_tail() {
            Ok(true) => {}
            Ok(false) => {
                self.tail_clean = false;
                self.problems.push(Problem::new(
                    file_label(&self.path),
                    ProblemKind::TrailingData,
                ));
            }
            Err(kind) => {
                self.tail_clean = false;
                self.problems
                    .push(Problem::new(file_label(&self.path), kind));
            }
        }
        self.phase = Phase::Ended;
    }

    /// Decides what to do with an entry: its digest and size if it is the next blob to
    /// hand out. Anything else is reported under its own name and its data skipped, as
    /// long as it fits in the declared archive.
    fn accept(&mut self, header: EntryHeader) -> Option<(Digest, u64)> {
        let verdict = match (header.refusal, classify(&header.name)) {
            (Some(refusal), _) => Err(ProblemKind::Refused(refusal)),
            (None, None) => Err(ProblemKind::OutsideLayout),
            (None, Some(EntryKind::Leading(_))) => Err(ProblemKind::Duplicate),
            (None, Some(EntryKind::Blob(digest))) => match self.blobs.get_mut(&digest) {
                None => Err(ProblemKind::NotListed),
                Some(expected) if expected.seen => Err(ProblemKind::Duplicate),
                Some(expected) => {
                    expected.seen = true;
                    if expected.size == header.size {
                        Ok(digest)
                    } else {
                        Err(ProblemKind::SizeMismatch {
                            declared: expected.size,
                            actual: header.size,
                        })
                    }
                }
            },
        };
        if let Err(rejection) = &verdict {
            self.problems
                .push(Problem::new(&header.name, rejection.clone()));
        }
        if let Err(kind) = self.cursor.check_room(header.size) {
            self.break_off(header.name, kind);
            return None;
        }
        match verdict {
            Ok(digest) => {
                self.start_blob(digest, header.size);
                Some((digest, header.size))
            }
            Err(_) => {
                if let Err(kind) = self.cursor.entry(header.size, |_| {}) {
                    self.break_off(header.name, kind);
                }
                None
            }
        }
    }

    fn start_blob(&mut self, digest: Digest, size: u64) {
        let name = blob_entry_name(&digest);
        if self.last_blob.is_some_and(|last| last > digest) {
            self.problems.push(Problem::new(
                &name,
                ProblemKind::OutOfOrder {
                    expected: "blobs sorted by digest".into(),
                },
            ));
        }
        self.last_blob = Some(digest);
        let mut capture = None;
        if self.manifest_digests.contains(&digest) {
            let limit = MANIFEST_LIMIT.min(self.capture_budget);
            if size > limit {
                self.problems
                    .push(Problem::new(&name, ProblemKind::TooLarge { limit }));
            } else {
                self.capture_budget -= size;
                capture = Some(Vec::with_capacity(size as usize));
            }
        }
        self.current = Some(Current {
            digest,
            size,
            done: 0,
            hasher: Sha256::new(),
            capture,
            matched: None,
        });
        if size == 0 {
            self.settle_current();
        }
    }

    /// Reads the current blob's data into `out`, or (with `None`) hashes all of it.
    fn read_current(&mut self, out: Option<&mut [u8]>) -> io::Result<usize> {
        let Some(current) = self.current.as_mut() else {
            return match self.phase {
                Phase::Broken => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the bundle could not be read to the end of this blob",
                )),
                _ => Ok(0),
            };
        };
        let left = current.size - current.done;
        if left == 0 {
            return match current.matched {
                Some(false) => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: sha256 mismatch", blob_entry_name(&current.digest)),
                )),
                _ => Ok(0),
            };
        }
        let max = out.as_ref().map_or(left, |buf| left.min(buf.len() as u64));
        let result = self.cursor.data(max, current.size, current.done, |bytes| {
            if let Some(buf) = out {
                buf[..bytes.len()].copy_from_slice(bytes);
            }
            current.hasher.update(bytes);
            if let Some(capture) = &mut current.capture {
                capture.extend_from_slice(bytes);
            }
        });
        match result {
            Ok(read) => {
                current.done += read as u64;
                if current.done == current.size {
                    self.settle_current();
                }
                Ok(read)
            }
            Err(kind) => {
                let name = blob_entry_name(&current.digest);
                self.current = None;
                self.break_off(name.clone(), kind);
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{name}: the bundle could not be read to the end of this blob"),
                ))
            }
        }
    }

    /// Checks a fully read blob and skips its padding.
    fn settle_current(&mut self) {
        let Some(current) = self.current.as_mut() else {
            return;
        };
        let actual = Digest::from_hasher(std::mem::take(&mut current.hasher));
        let name = blob_entry_name(&current.digest);
        current.matched = Some(actual == current.digest);
        if actual != current.digest {
            self.problems.push(Problem::new(
                &name,
                ProblemKind::Sha256Mismatch {
                    expected: current.digest,
                    actual,
                },
            ));
        }
        if let Some(capture) = current.capture.take() {
            self.captured.insert(current.digest, capture);
        }
        if let Err(kind) = self.cursor.padding(current.size) {
            self.break_off(name, kind);
        }
    }

    /// Every image's manifests reach only blobs that are present, and reach all of them.
    fn check_closure(&mut self) {
        struct Present<'a>(&'a BundleReader);
        impl BlobSource for Present<'_> {
            fn size(&self, digest: &Digest) -> Option<u64> {
                self.0
                    .blobs
                    .get(digest)
                    .filter(|blob| blob.seen)
                    .map(|blob| blob.size)
            }
            fn manifest(&self, digest: &Digest) -> Option<&[u8]> {
                self.0.manifest_blob(digest)
            }
        }
        let mut problems = Vec::new();
        let mut reached = BTreeSet::new();
        for image in &self.manifest.images {
            let before = problems.len();
            let closure = image_closure(&image.image, &Present(self), &mut problems);
            let reference = &image.image.canonical_reference;
            if problems.len() == before && closure.manifests != image.manifests {
                problems.push(Problem::new(
                    BUNDLE_JSON,
                    ProblemKind::Inconsistent(format!(
                        "image {reference}: the manifests listed differ from those its manifest reaches"
                    )),
                ));
            }
            if problems.len() == before && closure.total_size != image.total_size {
                problems.push(Problem::new(
                    BUNDLE_JSON,
                    ProblemKind::Inconsistent(format!(
                        "image {reference}: totalSize is {}, its blobs add up to {}",
                        image.total_size, closure.total_size
                    )),
                ));
            }
            reached.extend(closure.blobs);
        }
        problems.extend(
            self.blobs
                .keys()
                .filter(|digest| !reached.contains(*digest))
                .map(|digest| Problem::new(blob_entry_name(digest), ProblemKind::Unreferenced)),
        );
        self.problems.extend(problems);
    }
}
