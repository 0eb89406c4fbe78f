//! The k0s target: one uncompressed OCI-archive tar in k0s's images directory,
//! naming each image three ways under the airgap address, so k0s imports it
//! into containerd (namespace `k8s.io`) when it starts.
//!
//! k0s imports every file that appears in the directory, so the archive is
//! written beside the directory (same filesystem) and renamed into it when
//! complete; the record of what was written lives beside it too.

use super::images::LoadImage;
use super::store::BlobStore;
use super::{Event, ImageAction, Loaded, UnpackError};
use crate::bundle::{Sha256Digest, blob_entry_name};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;

/// The archive's file name in the images directory.
pub const ARCHIVE_NAME: &str = "velero-airgap-images.tar";

/// Writes the archive of `images` into `dir`.
pub(crate) async fn write(
    images: &[LoadImage],
    store: &BlobStore,
    dir: &Path,
    address: &str,
    bundle_sha256: &str,
    cancel: &tokio_util::sync::CancellationToken,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Loaded, UnpackError> {
    let io_error = |source| UnpackError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io_error)?;
    let target = dir.join(ARCHIVE_NAME);
    let outside = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let marker = outside.join(format!(".{dir_name}.{ARCHIVE_NAME}.bundle-sha256"));
    let mut actions = Vec::new();
    let mut index = Vec::new();
    for image in images {
        let names = image.names(address)?;
        for name in names.all() {
            index.push(serde_json::json!({
                "mediaType": image.top.media_type,
                "digest": image.top.digest,
                "size": image.top.size,
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name,
                },
            }));
        }
        actions.push(ImageAction {
            canonical: image.canonical.to_string(),
            target_references: names.all(),
            digest: image.top.digest.clone(),
            signature: None,
            action: "written".into(),
        });
    }
    // The same bundle to the same address makes the same archive: skip it.
    let unchanged = std::fs::read_to_string(&marker)
        .is_ok_and(|m| m.trim() == format!("{bundle_sha256} {address}"))
        && target.is_file();
    if unchanged {
        for action in &mut actions {
            action.action = "skipped".into();
            events(Event::Image(action.clone()));
        }
        return Ok(Loaded {
            images: actions,
            ..Loaded::default()
        });
    }

    let mut blobs: BTreeMap<String, u64> = BTreeMap::new();
    for image in images {
        for d in image
            .manifests
            .iter()
            .map(|m| &m.descriptor)
            .chain(&image.blobs)
        {
            blobs.insert(d.digest.clone(), d.size);
        }
    }
    let index_json = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": index,
    }))
    .map_err(|e| io_error(e.into()))?;

    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{ARCHIVE_NAME}."))
        .suffix(".partial")
        .tempfile_in(outside)
        .map_err(io_error)?;
    let mut bytes = 0;
    {
        let mut builder = tar::Builder::new(io::BufWriter::new(temp.as_file_mut()));
        append(
            &mut builder,
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#.as_slice(),
            30,
        )
        .map_err(io_error)?;
        append(
            &mut builder,
            "index.json",
            index_json.as_slice(),
            index_json.len() as u64,
        )
        .map_err(io_error)?;
        for (digest, size) in &blobs {
            let parsed = digest
                .strip_prefix("sha256:")
                .and_then(|hex| Sha256Digest::from_hex(hex).ok())
                .ok_or_else(|| UnpackError::Content {
                    bundle: digest.clone(),
                    reason: "not a sha256 digest".into(),
                })?;
            let mut reader = Hashing {
                inner: store.open_blob(&parsed).map_err(io_error)?,
                hasher: Sha256::new(),
                cancel,
                events,
            };
            append(&mut builder, &blob_entry_name(&parsed), &mut reader, *size)
                .map_err(io_error)?;
            // The bundle verified, but it is read again here: check it still holds.
            if reader.hasher.finalize().as_slice() != parsed.as_bytes() {
                return Err(UnpackError::Content {
                    bundle: blob_entry_name(&parsed),
                    reason: "changed since it was verified".into(),
                });
            }
            bytes += size;
        }
        builder
            .into_inner()
            .and_then(|mut w| w.flush())
            .map_err(io_error)?;
    }
    temp.as_file().sync_all().map_err(io_error)?;
    temp.persist(&target).map_err(|e| io_error(e.error))?;
    std::fs::write(&marker, format!("{bundle_sha256} {address}\n")).map_err(io_error)?;
    for action in &actions {
        events(Event::Image(action.clone()));
    }
    Ok(Loaded {
        images: actions,
        blobs_loaded: blobs.len(),
        bytes,
        ..Loaded::default()
    })
}

/// Appends a regular file with fixed metadata, so the archive depends only on
/// its content.
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
    /// This copy runs synchronously: the only way Ctrl-C reaches it.
    cancel: &'a tokio_util::sync::CancellationToken,
    events: &'a (dyn Fn(Event) + Sync),
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
            (self.events)(Event::Progress { bytes: n as u64 });
        }
        Ok(n)
    }
}
