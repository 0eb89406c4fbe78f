//! The plugin checks of `build` and `validate --online`: the layers of every plugin
//! image and of the Velero image are fetched and read, and [`check_deployment`] judges.
//!
//! # Why these layers are fetched before the bundle is laid out
//!
//! The reports (in `bundle.json`) and the SBOM are leading entries, ahead of every blob,
//! yet they are derived from the layers. Two orders were possible: fill every slot first
//! and write the leading entries last into space reserved for them, or fetch the layers
//! that are read first and lay the bundle out once the leading entries are known. Both
//! read each layer once, streaming. Reserving space means guessing the size of
//! `bundle.json` and of the SBOM before their content is known, and a tar leaves no gap
//! to absorb a wrong guess (a reader takes zero blocks for the end of the archive), so
//! the guess would have to be padding inside the files or a re-layout. Either way the
//! bundle file's SHA-256 (its sidecar, its signature), a hash over the file in order,
//! cannot start before the leading entries are final. So the layers that are read go
//! first, into an unnamed [`Spool`] beside the bundle, each read by the checks as soon
//! as it is in; the bundle is then laid out with its final leading entries, the spooled
//! layers are copied into their slots (by the kernel, `copy_file_range`), and every
//! other blob is fetched while the bundle is hashed, as before. Bundles stay
//! byte-identical for identical inputs: reports and SBOM are functions of the bytes.
//!
//! Memory stays bounded: a layer passes through a fixed buffer, and what it leaves
//! behind (paths, analysis results) is capped per layer and in total.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use super::fill::{Fetching, cache_path};
use super::spool::Spool;
use super::{Event, PackError, Resolved};
use crate::oci::{ConfigError, Content, Descriptor, Digest, MAX_CONFIG_BYTES};
use crate::plugin::{
    DeploymentImage, InspectError, LayerChanges, LayerError, PlatformManifest, ReadBlobs,
    scan_layer,
};
use crate::registry::{Registry, RegistryError};
use crate::values::Rendered;

/// How blobs are fetched for the checks.
pub(super) struct Reader<'a> {
    pub(super) registry: &'a Registry,
    pub(super) jobs: usize,
    pub(super) cache: Option<&'a Path>,
    /// The spool goes in this file's directory: beside the bundle, so the kernel can
    /// copy from it cheaply. A spool that cannot be made is reported as this file not
    /// being writable, which is what the user can act on.
    pub(super) spool_beside: &'a Path,
    pub(super) cancel: &'a CancellationToken,
    pub(super) events: &'a (dyn Fn(Event) + Sync),
}

/// The images of `resolved` as the checks see them, each with every role the values
/// give it.
pub(super) fn deployment(
    resolved: &[Resolved],
    rendered: &Rendered,
) -> Result<Vec<DeploymentImage>, PackError> {
    resolved
        .iter()
        .map(|r| {
            let mut roles = vec![r.role.clone()];
            for use_ in &rendered.images {
                if use_.reference == r.image.canonical && !roles.contains(&use_.field.role) {
                    roles.push(use_.field.role.clone());
                }
            }
            let manifests = PlatformManifest::from_blobs(
                r.image
                    .manifests
                    .iter()
                    .map(|content| (content.descriptor.digest, &content.bytes[..])),
            )
            .map_err(|error| RegistryError::UnsupportedManifest {
                reference: r.image.canonical.to_string(),
                reason: error.to_string(),
            })?;
            Ok(DeploymentImage {
                reference: r.image.canonical.to_string(),
                roles,
                manifests,
            })
        })
        .collect()
}

/// Fetches what the checks need of the images read (`with_velero`: the Velero image
/// too) and `read` lacks: configs into memory (and into `resolved`, so the bundle has
/// them inline), layers into the returned spool, each read as soon as it is in.
pub(super) async fn read_blobs(
    reader: &Reader<'_>,
    resolved: &mut [Resolved],
    images: &[DeploymentImage],
    with_velero: bool,
    read: &mut ReadBlobs,
) -> Result<Arc<Spool>, PackError> {
    for r in resolved.iter() {
        for config in &r.image.configs {
            read.configs
                .insert(config.descriptor.digest, config.bytes.clone());
        }
    }
    // Per blob: the image to fetch it through and its descriptor, each once.
    let mut configs: Vec<(usize, Descriptor)> = Vec::new();
    let mut layers: Vec<(usize, Descriptor)> = Vec::new();
    for (index, image) in images.iter().enumerate() {
        if !image.is_read(with_velero) {
            continue;
        }
        for manifest in &image.manifests {
            if !read.configs.contains_key(&manifest.config.digest)
                && !configs
                    .iter()
                    .any(|(_, c)| c.digest == manifest.config.digest)
            {
                configs.push((index, manifest.config.clone()));
            }
            for layer in &manifest.layers {
                if !read.layers.contains_key(&layer.digest)
                    && !layers.iter().any(|(_, l)| l.digest == layer.digest)
                {
                    layers.push((index, layer.clone()));
                }
            }
        }
    }

    for (index, config) in configs {
        let bytes = fetch_config(reader.registry, &resolved[index], &config).await?;
        read.configs.insert(config.digest, bytes.clone());
        resolved[index].image.configs.push(Content {
            descriptor: config,
            bytes,
        });
    }

    (reader.events)(Event::Inspecting {
        images: images.iter().filter(|i| i.is_read(with_velero)).count(),
        layers: layers.len(),
        bytes: layers.iter().map(|(_, layer)| layer.size).sum(),
    });
    let spool = Spool::create(
        crate::files::parent_directory(reader.spool_beside),
        layers.iter().map(|(_, layer)| layer),
    )
    .map_err(|source| crate::files::FileError::Write {
        path: reader.spool_beside.to_path_buf(),
        source,
    })?;
    let spool = Arc::new(spool);
    let shared = Mutex::new(std::mem::take(read));
    let resolved = &*resolved;
    futures::stream::iter(layers)
        .map(|(index, layer)| {
            let spool = Arc::clone(&spool);
            let shared = &shared;
            async move {
                let reference = &images[index].reference;
                let changes =
                    read_layer(reader, &resolved[index], &layer, spool, reference).await?;
                let mut read = shared.lock().unwrap_or_else(PoisonError::into_inner);
                read.layers.insert(layer.digest, changes);
                Ok::<_, PackError>(read.check_budget()?)
            }
        })
        .buffer_unordered(reader.jobs)
        .try_collect::<Vec<()>>()
        .await?;
    *read = shared.into_inner().unwrap_or_else(PoisonError::into_inner);
    Ok(spool)
}

async fn fetch_config(
    registry: &Registry,
    resolved: &Resolved,
    config: &Descriptor,
) -> Result<Bytes, PackError> {
    if config.size > MAX_CONFIG_BYTES as u64 {
        return Err(InspectError::Config {
            reference: resolved.image.canonical.to_string(),
            digest: config.digest,
            source: ConfigError::TooLarge {
                size: config.size as usize,
                limit: MAX_CONFIG_BYTES,
            },
        }
        .into());
    }
    let mut bytes = Vec::with_capacity(config.size as usize);
    registry
        .fetch_blob(&resolved.image, config, &mut bytes)
        .await?;
    Ok(Bytes::from(bytes))
}

/// Reads one layer: from the cache when it holds it (hashed while read, and fetched
/// again when damaged), else fetched into the spool (and the cache) and read from there.
async fn read_layer(
    reader: &Reader<'_>,
    resolved: &Resolved,
    layer: &Descriptor,
    spool: Arc<Spool>,
    reference: &str,
) -> Result<LayerChanges, PackError> {
    let failed = |source| InspectError::Layer {
        reference: reference.to_string(),
        digest: layer.digest,
        source,
    };
    if let Some(path) = reader
        .cache
        .map(|dir| cache_path(dir, &layer.digest))
        .filter(|path| path.is_file())
    {
        let (media_type, digest, cancel) = (
            layer.media_type.clone(),
            layer.digest,
            reader.cancel.clone(),
        );
        let read = crate::task::blocking({
            let path = path.clone();
            move || -> Result<Option<LayerChanges>, LayerError> {
                let Ok(file) = File::open(&path) else {
                    return Ok(None);
                };
                let mut watched = Watched::new(file, Some(Sha256::new()), cancel);
                let changes = scan_layer(&media_type, &mut watched);
                // A damaged entry is fetched again, whatever the scan made of it.
                if !watched.drain_and_check(&digest) {
                    return Ok(None);
                }
                changes.map(Some)
            }
        })
        .await
        .map_err(failed)?;
        if let Some(changes) = read {
            (reader.events)(Event::BlobProgress { bytes: layer.size });
            return Ok(changes);
        }
        let _ = std::fs::remove_file(&path);
    }
    let mut sink = Fetching::new(
        spool.sink(&layer.digest),
        &layer.digest,
        reader.cache,
        reader.events,
    )?;
    reader
        .registry
        .fetch_blob(&resolved.image, layer, &mut sink)
        .await?;
    sink.finish()?;
    spool.mark_filled(&layer.digest);
    let (media_type, digest, cancel) = (
        layer.media_type.clone(),
        layer.digest,
        reader.cancel.clone(),
    );
    crate::task::blocking(move || {
        scan_layer(
            &media_type,
            Watched::new(spool.reader(&digest), None, cancel),
        )
    })
    .await
    .map_err(|source| failed(source).into())
}

/// A reader that stops when the build is cancelled (a scan runs on a blocking thread the
/// runtime would otherwise wait for) and, given a hasher, hashes what passes.
struct Watched<R> {
    inner: R,
    hasher: Option<Sha256>,
    cancel: CancellationToken,
}

impl<R: Read> Watched<R> {
    fn new(inner: R, hasher: Option<Sha256>, cancel: CancellationToken) -> Self {
        Watched {
            inner,
            hasher,
            cancel,
        }
    }

    /// Reads whatever the scan left and tells whether everything hashed to `digest`.
    fn drain_and_check(&mut self, digest: &Digest) -> bool {
        if io::copy(self, &mut io::sink()).is_err() {
            return false;
        }
        self.hasher
            .take()
            .is_some_and(|hasher| Digest::from_hasher(hasher) == *digest)
    }
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            // Not `Interrupted`, which readers retry.
            return Err(io::Error::other("cancelled"));
        }
        let read = self.inner.read(buffer)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buffer[..read]);
        }
        Ok(read)
    }
}
