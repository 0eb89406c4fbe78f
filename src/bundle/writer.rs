//! Writing a bundle. Every name, size and digest is known from the manifests before a
//! blob is fetched, so the archive is laid out in advance: headers and small files are
//! written at once, and each blob is written exactly once, straight into its place,
//! through a [`BlobSlot`] that any thread or task may fill. `finish` checks every slot,
//! completes the output and renames it into place.
//!
//! The output is an [`AtomicFile`] beside the target. A plain `.tar` is laid out in it
//! directly; a compressed bundle is laid out in an unnamed temp file (nothing to clean up,
//! nothing with a name that looks like a bundle) and the compressed stream goes to it.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use sha2::{Digest as _, Sha256};

use super::follow::{self, Followed};
use super::layout::{Compression, format_sums, sidecar_path};
use super::manifest::BundleManifest;
use super::plan::{BlobRef, BundlePlan, Content, PlanError};
use super::slots::{FillState, Shared, SlotInfo, SlotState};
use super::ustar;
use crate::files::{self, AtomicFile, FileError, Privacy};
use crate::oci::Digest;

/// Something that stopped a bundle from being written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The target name does not say how to store the archive.
    #[error("{path}: a bundle file name must end in .tar, .tar.zst or .tar.gz")]
    UnsupportedFileName { path: PathBuf },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    File(#[from] FileError),
    /// No slot waits for this blob.
    #[error("blob {digest} has no slot: it is not in the plan, or was given inline")]
    NoSlot { digest: Digest },
    /// The slot is held by another writer.
    #[error("blob {digest} is already being written")]
    SlotBusy { digest: Digest },
    /// The slot was filled already.
    #[error("blob {digest} is already written")]
    SlotFilled { digest: Digest },
    /// More bytes than the plan declared.
    #[error("blob {digest} is longer than its declared {size} bytes")]
    BlobTooLong {
        digest: Digest,
        /// Declared size.
        size: u64,
    },
    /// Fewer bytes than the plan declared.
    #[error("blob {digest} ended after {written} of its {size} bytes")]
    BlobTooShort {
        digest: Digest,
        /// Declared size.
        size: u64,
        /// Bytes written.
        written: u64,
    },
    /// The content does not hash to the blob's digest.
    #[error("blob {digest} received content with digest {actual}")]
    BlobDigestMismatch {
        digest: Digest,
        /// Digest of what was written.
        actual: Digest,
    },
    /// `finish` found blobs never written.
    #[error("{} blob(s) were never written: {}", digests.len(), list(digests))]
    Unfilled { digests: Vec<Digest> },
    /// The writer was dropped while a slot was still being filled.
    #[error("the bundle writer was abandoned")]
    Abandoned,
}

fn list(digests: &[Digest]) -> String {
    digests
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl WriteError {
    /// A bad file name is bad input; everything else stops a write that had started.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            WriteError::UnsupportedFileName { .. } => crate::ErrorKind::Input,
            WriteError::File(error) => error.kind(),
            _ => crate::ErrorKind::Local,
        }
    }
}

/// Any failure to write the bundle names the bundle, never a temp file.
fn io_error(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |source| {
        WriteError::File(FileError::Write {
            path: path.to_owned(),
            source,
        })
    }
}

/// How a [`BlobSlot`] checks what it receives, besides the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotCheck {
    /// Hash the content and refuse it unless it matches the digest.
    Sha256,
    /// Check only the size: the caller verified the digest already (as
    /// `oci_client::Client::pull_blob` does), so hashing twice would waste a core.
    SizeOnly,
}

/// A bundle file that was written.
#[derive(Debug, Clone)]
pub struct WrittenBundle {
    pub path: PathBuf,
    pub sidecar: PathBuf,
    /// SHA-256 of the bundle file.
    pub sha256: Digest,
    /// Size of the bundle file.
    pub size: u64,
    /// Size of the uncompressed archive.
    pub archive_size: u64,
    /// How the archive is stored.
    pub compression: Compression,
}

/// A bundle being written; see the module documentation.
///
/// Dropping it unfinished removes every temp file: nothing is left that looks like a bundle.
#[derive(Debug)]
pub struct BundleWriter {
    shared: Arc<Shared>,
    by_digest: HashMap<Digest, usize>,
    target: PathBuf,
    compression: Compression,
    manifest: BundleManifest,
    output: Option<AtomicFile>,
    follower: Option<JoinHandle<io::Result<Followed>>>,
}

impl BundleWriter {
    /// Lays the bundle out beside `target` (whose name picks the compression), writes
    /// every header and every inline file, and opens a slot for each remaining blob.
    pub fn create(target: &Path, plan: BundlePlan) -> Result<Self, WriteError> {
        let compression =
            Compression::from_file_name(target).ok_or_else(|| WriteError::UnsupportedFileName {
                path: target.to_owned(),
            })?;
        let layout = plan.lay_out()?;
        let mut output = AtomicFile::create(target, Privacy::Shared, None)?;
        let fail = io_error(target);
        let file = match compression {
            Compression::None => output.file().try_clone(),
            _ => tempfile::tempfile_in(files::parent_directory(target)),
        }
        .map_err(io_error(target))?;
        // A sparse file of the final size; blobs land in their places later.
        file.set_len(layout.archive_size).map_err(fail)?;

        let mut slots = Vec::new();
        for entry in &layout.entries {
            let mut block = ustar::encode(&entry.name, entry.size, layout.mtime).to_vec();
            match &entry.content {
                Content::Inline(bytes) => block.extend_from_slice(bytes),
                Content::Slot(digest) => slots.push(SlotInfo {
                    digest: *digest,
                    data_offset: entry.offset + ustar::HEADER_SIZE as u64,
                    size: entry.size,
                }),
            }
            file.write_all_at(&block, entry.offset)
                .map_err(io_error(target))?;
        }

        let compressed = match compression {
            Compression::None => None,
            _ => Some(output.file().try_clone().map_err(io_error(target))?),
        };
        let by_digest = slots
            .iter()
            .enumerate()
            .map(|(index, slot)| (slot.digest, index))
            .collect();
        let shared = Arc::new(Shared {
            file,
            archive_size: layout.archive_size,
            state: Mutex::new(FillState {
                slots: vec![SlotState::Free; slots.len()],
                aborted: false,
            }),
            slots,
            changed: Condvar::new(),
        });
        let follower = follow::spawn(Arc::clone(&shared), compression, compressed)
            .map_err(io_error(target))?;
        Ok(Self {
            shared,
            by_digest,
            target: target.to_owned(),
            compression,
            manifest: layout.manifest,
            output: Some(output),
            follower: Some(follower),
        })
    }

    /// The bundle file being written.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The `bundle.json` being written.
    pub fn manifest(&self) -> &BundleManifest {
        &self.manifest
    }

    /// Size of the uncompressed archive.
    pub fn archive_size(&self) -> u64 {
        self.shared.archive_size
    }

    /// Blobs still waiting for content, in archive order: filling them in this order lets
    /// the output be hashed (or compressed) while the rest arrive.
    pub fn pending(&self) -> Vec<BlobRef> {
        let state = self.shared.lock();
        self.shared
            .slots
            .iter()
            .zip(&state.slots)
            .filter(|(_, state)| **state != SlotState::Filled)
            .map(|(slot, _)| BlobRef {
                digest: slot.digest,
                size: slot.size,
            })
            .collect()
    }

    /// Takes the slot of one blob. A slot dropped before [`BlobSlot::finish`] succeeds
    /// can be taken again (to retry a failed download from the start).
    pub fn slot(&self, digest: &Digest, check: SlotCheck) -> Result<BlobSlot, WriteError> {
        let index = *self
            .by_digest
            .get(digest)
            .ok_or(WriteError::NoSlot { digest: *digest })?;
        let mut state = self.shared.lock();
        match state.slots[index] {
            SlotState::Taken => return Err(WriteError::SlotBusy { digest: *digest }),
            SlotState::Filled => return Err(WriteError::SlotFilled { digest: *digest }),
            SlotState::Free => state.slots[index] = SlotState::Taken,
        }
        Ok(BlobSlot {
            shared: Arc::clone(&self.shared),
            index,
            written: 0,
            hasher: (check == SlotCheck::Sha256).then(Sha256::new),
            finished: false,
        })
    }

    /// Checks that every slot was filled, completes the output, renames it into place
    /// and writes the sidecar `BUNDLE.sha256`.
    pub fn finish(mut self) -> Result<WrittenBundle, WriteError> {
        let unfilled: Vec<Digest> = self.pending().iter().map(|b| b.digest).collect();
        if !unfilled.is_empty() {
            return Err(WriteError::Unfilled { digests: unfilled });
        }
        let followed = match self.follower.take().map(JoinHandle::join) {
            Some(Ok(result)) => result.map_err(io_error(&self.target))?,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => return Err(WriteError::Abandoned),
        };
        // Aborted (Ctrl-C) after the last byte: still nothing goes in place.
        if self.shared.lock().aborted {
            return Err(WriteError::Abandoned);
        }

        drop(followed.compressed);
        self.output.take().ok_or(WriteError::Abandoned)?.commit()?;

        let sidecar = sidecar_path(&self.target);
        let file_name = self
            .target
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        files::write_atomic(
            &sidecar,
            &format_sums([(file_name.as_str(), &followed.sha256)]),
            Privacy::Shared,
        )?;

        Ok(WrittenBundle {
            path: self.target.clone(),
            sidecar,
            sha256: followed.sha256,
            size: followed.size,
            archive_size: self.shared.archive_size,
            compression: self.compression,
        })
    }
}

/// Stops a [`BundleWriter`] from another thread (on Ctrl-C): its follower
/// ends and [`BundleWriter::finish`] fails instead of putting a bundle in place.
#[derive(Debug, Clone)]
pub struct AbortHandle(Arc<Shared>);

impl AbortHandle {
    /// Aborts the writer.
    pub fn abort(&self) {
        self.0.lock().aborted = true;
        self.0.changed.notify_all();
    }
}

impl BundleWriter {
    /// A handle that aborts this writer from elsewhere.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle(Arc::clone(&self.shared))
    }
}

impl Drop for BundleWriter {
    fn drop(&mut self) {
        if let Some(follower) = self.follower.take() {
            self.shared.lock().aborted = true;
            self.shared.changed.notify_all();
            // The follower only ever ends with an error here; the temp files go with us.
            let _ = follower.join();
        }
    }
}

/// The place of one blob in the bundle, filled with positioned writes so many slots can
/// be filled at once. Implements [`std::io::Write`] and [`tokio::io::AsyncWrite`]; the
/// latter writes inline too (a positioned write into the page cache, like any small
/// file write), so it suits `oci_client::Client::pull_blob` directly.
///
/// Call [`BlobSlot::finish`] when the blob is complete; a slot dropped without a
/// successful `finish` goes back to waiting.
#[derive(Debug)]
pub struct BlobSlot {
    shared: Arc<Shared>,
    index: usize,
    written: u64,
    hasher: Option<Sha256>,
    finished: bool,
}

impl BlobSlot {
    fn info(&self) -> &SlotInfo {
        &self.shared.slots[self.index]
    }

    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.info().digest
    }

    /// The blob's declared size.
    pub fn size(&self) -> u64 {
        self.info().size
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Fills the rest of the slot with the bytes of `file` from `offset` on. Without a
    /// hash to update, the kernel copies them (`copy_file_range`: a reflink where the
    /// filesystem shares extents, an in-kernel copy elsewhere), so they never pass
    /// through this process.
    pub fn copy_from(&mut self, file: &std::fs::File, offset: u64) -> io::Result<()> {
        let data_offset = self.info().data_offset;
        let (mut from, mut to) = (offset, data_offset + self.written);
        while self.written < self.size() && self.hasher.is_none() {
            let left = usize::try_from(self.size() - self.written).unwrap_or(usize::MAX);
            match rustix::fs::copy_file_range(
                file,
                Some(&mut from),
                &self.shared.file,
                Some(&mut to),
                left,
            ) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(copied) => self.written += copied as u64,
                // Another filesystem, or a kernel without it: copy through a buffer.
                Err(_) => break,
            }
        }
        let mut buffer = vec![0u8; (1 << 20).min(self.size() - self.written) as usize];
        while self.written < self.size() {
            let want = buffer.len().min((self.size() - self.written) as usize);
            let read = file.read_at(&mut buffer[..want], from)?;
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.write_all(&buffer[..read])?;
            from += read as u64;
        }
        Ok(())
    }

    /// Accepts the blob: refuses it if it is short or (with [`SlotCheck::Sha256`]) has
    /// the wrong digest.
    pub fn finish(mut self) -> Result<(), WriteError> {
        let (digest, size) = (self.info().digest, self.info().size);
        if self.written != size {
            return Err(WriteError::BlobTooShort {
                digest,
                size,
                written: self.written,
            });
        }
        if let Some(hasher) = self.hasher.take() {
            let actual = Digest::from_hasher(hasher);
            if actual != digest {
                return Err(WriteError::BlobDigestMismatch { digest, actual });
            }
        }
        let mut state = self.shared.lock();
        if state.aborted {
            return Err(WriteError::Abandoned);
        }
        state.slots[self.index] = SlotState::Filled;
        drop(state);
        self.finished = true;
        self.shared.changed.notify_all();
        Ok(())
    }
}

impl Write for BlobSlot {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (digest, size, data_offset) = {
            let info = self.info();
            (info.digest, info.size, info.data_offset)
        };
        if buf.len() as u64 > size - self.written {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                WriteError::BlobTooLong { digest, size },
            ));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let written = self.shared.file.write_at(buf, data_offset + self.written)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..written]);
        }
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncWrite for BlobSlot {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Write::write(self.get_mut(), buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for BlobSlot {
    fn drop(&mut self) {
        if !self.finished {
            let mut state = self.shared.lock();
            if state.slots[self.index] == SlotState::Taken {
                state.slots[self.index] = SlotState::Free;
            }
        }
    }
}
