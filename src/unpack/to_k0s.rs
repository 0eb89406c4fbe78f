//! The k0s target: one uncompressed OCI-archive tar in k0s's images directory, naming
//! each image three ways under the airgap address, so k0s imports it into containerd
//! (namespace `k8s.io`) when it starts.
//!
//! k0s imports every file that appears in its images directory, on create or write, with
//! no filter on names. So nothing partial may ever appear there: the archive is written in
//! the tool's own state directory (on the same filesystem, created 0700) and renamed into
//! the images directory when complete. The record of what was written (for a no-op
//! re-run) lives in the state directory too; nothing is ever written beside the images
//! directory. The images directory itself is created only when the archive is complete,
//! so an interrupted run leaves no empty directory behind.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::images::{self, LoadImage};
use super::{Event, ImageAction, LoadAction, Loaded, UnpackError};
use crate::bundle::{BlobStore, blob_entry_name};
use crate::files::{self, AtomicFile, FileError, Origin, Privacy};
use crate::oci::{Descriptor, Digest, MediaType, REF_NAME_ANNOTATION};

/// The archive's file name in the images directory. Embedded Cluster's upgrade deletes
/// `images-amd64-*` there: this name never matches that pattern.
pub const ARCHIVE_NAME: &str = "velero-airgap-images.tar";

/// The state directory used when none is given: on the root filesystem, like
/// `/var/lib/embedded-cluster`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/velero-airgap";

/// The annotation containerd's importer names images by.
const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// What a completed write recorded, so the same bundle to the same address is a no-op.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    images_dir: PathBuf,
    bundle_sha256: String,
    address: String,
    archive_size: u64,
}

/// Where the k0s target writes.
#[derive(Debug, Clone)]
pub struct K0sTarget {
    /// k0s's images directory.
    pub images_dir: PathBuf,
    /// The tool's state directory, on the same filesystem.
    pub state_dir: PathBuf,
}

/// Writes the archive of `images` into the images directory, unless the same bundle was
/// already written for the same address.
pub(crate) async fn write(
    images: &[LoadImage],
    store: Arc<BlobStore>,
    target: &K0sTarget,
    address: &str,
    bundle_sha256: &str,
    cancel: &tokio_util::sync::CancellationToken,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Loaded, UnpackError> {
    prepare_state_dir(target)?;
    let mut actions = Vec::new();
    for image in images {
        actions.push(ImageAction {
            canonical: image.canonical.to_string(),
            target_references: image.names(address)?.all(),
            digest: image.top.digest,
            signature: None,
            action: LoadAction::Written,
        });
    }
    let archive = target.images_dir.join(ARCHIVE_NAME);
    let record_path = record_path(target);
    let record = Record {
        images_dir: target.images_dir.clone(),
        bundle_sha256: bundle_sha256.to_owned(),
        address: address.to_owned(),
        archive_size: 0,
    };
    if is_unchanged(&record_path, &record, &archive) {
        for action in &mut actions {
            action.action = LoadAction::Skipped;
            events(Event::Image(action.clone()));
        }
        return Ok(Loaded {
            images: actions,
            blobs_skipped: images::content_blobs(images).len(),
            ..Loaded::default()
        });
    }

    let index_json = index_json(images, address)?;
    let blobs = distinct_blobs(images);
    let content = images::content_blobs(images);
    let (loaded_blobs, bytes) = (content.len(), content.values().sum());
    let writer = ArchiveWriter {
        archive: archive.clone(),
        state_dir: target.state_dir.clone(),
        images_dir: target.images_dir.clone(),
        index_json,
        blobs,
        store,
        cancel: cancel.clone(),
    };
    // The copy is blocking work: progress comes back through a channel.
    let (progress, mut received) = tokio::sync::mpsc::unbounded_channel();
    let mut writing = std::pin::pin!(crate::task::blocking(move || writer.write(&progress)));
    let archive_size = loop {
        tokio::select! {
            Some(bytes) = received.recv() => events(Event::Progress { bytes }),
            result = &mut writing => break result?,
        }
    };
    while let Ok(bytes) = received.try_recv() {
        events(Event::Progress { bytes });
    }
    let record = Record {
        archive_size,
        ..record
    };
    let record_json = serde_json::to_vec_pretty(&record).unwrap_or_default();
    files::write_atomic(&record_path, &record_json, Privacy::Shared)?;
    for action in &actions {
        events(Event::Image(action.clone()));
    }
    Ok(Loaded {
        images: actions,
        blobs_loaded: loaded_blobs,
        bytes,
        ..Loaded::default()
    })
}

/// Creates the state directory (0700), refuses one that is a symbolic link or that others
/// may write (its names are predictable: whoever can plant files there could redirect
/// ours), and checks it shares a filesystem with the images directory, or its nearest
/// existing ancestor: a rename cannot cross filesystems.
fn prepare_state_dir(target: &K0sTarget) -> Result<(), UnpackError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&target.state_dir)
        .map_err(|source| FileError::Write {
            path: target.state_dir.clone(),
            source,
        })?;
    let state = std::fs::symlink_metadata(&target.state_dir).map_err(|source| FileError::Read {
        path: target.state_dir.clone(),
        source,
    })?;
    if !state.is_dir() || state.mode() & 0o022 != 0 {
        return Err(UnpackError::UnsafeStateDir {
            state_dir: target.state_dir.clone(),
        });
    }
    let images_anchor = target
        .images_dir
        .ancestors()
        .find(|p| p.is_dir())
        .unwrap_or(Path::new("."));
    let device = |path: &Path| {
        std::fs::metadata(path)
            .map(|m| m.dev())
            .map_err(|source| FileError::Read {
                path: path.to_path_buf(),
                source,
            })
    };
    if device(images_anchor)? != device(&target.state_dir)? {
        return Err(UnpackError::StateDir {
            state_dir: target.state_dir.clone(),
            images_dir: target.images_dir.clone(),
        });
    }
    Ok(())
}

/// One record per images directory, named by a digest of its path.
fn record_path(target: &K0sTarget) -> PathBuf {
    let key = Digest::of(target.images_dir.as_os_str().as_encoded_bytes()).hex();
    target.state_dir.join(format!("k0s-{}.json", &key[..16]))
}

fn is_unchanged(record_path: &Path, expected: &Record, archive: &Path) -> bool {
    let Ok(bytes) = files::read_capped(record_path, 64 << 10, "state record", Origin::Found) else {
        return false;
    };
    let Ok(found) = serde_json::from_slice::<Record>(&bytes) else {
        return false;
    };
    let size = std::fs::symlink_metadata(archive)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len());
    found.images_dir == expected.images_dir
        && found.bundle_sha256 == expected.bundle_sha256
        && found.address == expected.address
        && size == Some(found.archive_size)
}

/// The archive's `index.json`: every image under each of its names.
fn index_json(images: &[LoadImage], address: &str) -> Result<Vec<u8>, UnpackError> {
    let mut manifests = Vec::new();
    for image in images {
        for name in image.names(address)?.all() {
            manifests.push(Descriptor {
                annotations: BTreeMap::from([
                    (CONTAINERD_NAME_ANNOTATION.to_owned(), name.clone()),
                    (REF_NAME_ANNOTATION.to_owned(), name),
                ]),
                ..Descriptor::new(
                    image.top.media_type.clone(),
                    image.top.digest,
                    image.top.size,
                )
            });
        }
    }
    Ok(serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap_or_default())
}

/// Every manifest and blob of the images, each once, in digest order.
fn distinct_blobs(images: &[LoadImage]) -> BTreeMap<Digest, u64> {
    images
        .iter()
        .flat_map(|image| {
            image
                .manifests
                .iter()
                .map(|m| &m.descriptor)
                .chain(&image.blobs)
        })
        .map(|d| (d.digest, d.size))
        .collect()
}

/// The archive being written, with everything it needs on the blocking thread.
struct ArchiveWriter {
    archive: PathBuf,
    state_dir: PathBuf,
    images_dir: PathBuf,
    index_json: Vec<u8>,
    blobs: BTreeMap<Digest, u64>,
    store: Arc<BlobStore>,
    cancel: tokio_util::sync::CancellationToken,
}

impl ArchiveWriter {
    /// Writes the archive in the state directory and renames it into the images
    /// directory; returns its size.
    fn write(self, progress: &tokio::sync::mpsc::UnboundedSender<u64>) -> Result<u64, UnpackError> {
        let write_error = |source| FileError::Write {
            path: self.archive.clone(),
            source,
        };
        let mut file = AtomicFile::create(&self.archive, Privacy::Shared, Some(&self.state_dir))?;
        let mut builder = tar::Builder::new(io::BufWriter::new(file.file()));
        append(
            &mut builder,
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#.as_slice(),
            30,
        )
        .map_err(write_error)?;
        append(
            &mut builder,
            "index.json",
            self.index_json.as_slice(),
            self.index_json.len() as u64,
        )
        .map_err(write_error)?;
        for (digest, size) in &self.blobs {
            self.append_blob(&mut builder, digest, *size, progress)?;
        }
        builder
            .into_inner()
            .and_then(|mut writer| writer.flush())
            .map_err(write_error)?;
        let size = file.file().metadata().map_err(write_error)?.len();
        // Only now, with the archive complete, may the images directory come to be.
        std::fs::create_dir_all(&self.images_dir).map_err(write_error)?;
        file.commit()?;
        Ok(size)
    }

    /// Copies one blob, hashing it again: the bundle verified, but it is read a second
    /// time here, and a changed file must not reach k0s.
    fn append_blob<W: Write>(
        &self,
        builder: &mut tar::Builder<W>,
        digest: &Digest,
        size: u64,
        progress: &tokio::sync::mpsc::UnboundedSender<u64>,
    ) -> Result<(), UnpackError> {
        let name = blob_entry_name(digest);
        let mut reader = Hashing {
            inner: self
                .store
                .open_blob(digest)
                .map_err(|source| FileError::Read {
                    path: name.clone().into(),
                    source,
                })?,
            hasher: Sha256::new(),
            cancel: &self.cancel,
            progress,
        };
        append(builder, &name, &mut reader, size).map_err(|source| FileError::Write {
            path: self.archive.clone(),
            source,
        })?;
        if Digest::from_hasher(reader.hasher) != *digest {
            return Err(UnpackError::Content {
                bundle: name,
                reason: "changed since it was verified".into(),
            });
        }
        Ok(())
    }
}

/// Appends a regular file with fixed metadata, so the archive depends only on its content.
fn append<W: Write, R: Read>(
    builder: &mut tar::Builder<W>,
    name: &str,
    data: R,
    size: u64,
) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder.append(&header, data)
}

/// Hashes what is read, reports progress, and stops on Ctrl-C.
struct Hashing<'a, R> {
    inner: R,
    hasher: Sha256,
    /// This copy runs on a blocking thread: the only way Ctrl-C reaches it.
    cancel: &'a tokio_util::sync::CancellationToken,
    progress: &'a tokio::sync::mpsc::UnboundedSender<u64>,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            // Not ErrorKind::Interrupted: io::copy would retry that forever.
            return Err(io::Error::other("interrupted"));
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if n > 0 {
            // The receiver is gone only when the run is over.
            let _ = self.progress.send(n as u64);
        }
        Ok(n)
    }
}
