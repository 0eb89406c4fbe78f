//! Choosing platforms and collecting the manifests and blobs of one image.
//!
//! Out of an index, one platform pins its manifest, several produce a filtered index, and
//! `all` keeps the index as served; the source index is kept beside a pin or a filter so
//! the choice can be proven later. A single manifest is checked against its config's
//! os/architecture, since nothing else says which platform it is for.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::{RegistryError, Session};
use crate::oci::{
    Content, Descriptor, Digest, ImageConfig, MAX_CONFIG_BYTES, Manifest, MediaType, Platform,
    PlatformError, PlatformSelection, filter_index,
};

/// What [`resolve`] found; the caller adds the references.
pub(crate) struct Resolved {
    pub top: Descriptor,
    pub manifests: Vec<Content>,
    pub source_index: Option<Content>,
    pub blobs: Vec<Descriptor>,
    pub configs: Vec<Content>,
}

/// Pulls the top manifest of the session's source and everything the selection needs.
pub(crate) async fn resolve(
    session: &Session<'_>,
    selection: &PlatformSelection,
) -> Result<Resolved, RegistryError> {
    if let PlatformSelection::Only(wanted) = selection
        && wanted.is_empty()
    {
        return Err(RegistryError::InvalidPlatform(PlatformError {
            spec: String::new(),
            reason: "no platform requested".into(),
        }));
    }
    let bytes = session.manifest(None).await?;
    let (media_type, parsed) = parse(session, &bytes)?;
    let top = Content::new(media_type, bytes);
    let mut collected = Collected::default();
    match (parsed, selection) {
        (Manifest::Image { config, layers }, PlatformSelection::All) => {
            collected.image(session, top.clone(), config, layers)?;
        }
        (Manifest::Image { config, layers }, PlatformSelection::Only(wanted)) => {
            let config_content = fetch_config(session, &config).await?;
            let found = ImageConfig::parse(&config_content.bytes)
                .ok()
                .map(|config| config.platform);
            let missing: Vec<&Platform> = wanted
                .iter()
                .filter(|p| !found.as_ref().is_some_and(|f| f.matches(p)))
                .collect();
            if !missing.is_empty() {
                return Err(missing_platform(session, &missing, found.iter()));
            }
            collected.configs.push(config_content);
            collected.image(session, top.clone(), config, layers)?;
        }
        (Manifest::Index(entries), PlatformSelection::All) => {
            collected.tree(session, top.clone(), &entries).await?;
        }
        (Manifest::Index(entries), PlatformSelection::Only(wanted)) => {
            let keep = choose(session, &entries, wanted)?;
            if keep.len() == entries.len() {
                // Every entry chosen: the source index is the filtered index, unchanged.
                collected.tree(session, top.clone(), &entries).await?;
            } else if let [only] = keep[..] {
                let child = fetch_child(session, &entries[only]).await?;
                let Manifest::Image { config, layers } = child.1 else {
                    return Err(unsupported(session, "a platform entry is itself an index"));
                };
                let descriptor = child.0.descriptor.clone();
                collected.image(session, child.0, config, layers)?;
                return Ok(collected.finish(descriptor, Some(top)));
            } else {
                let filtered = filter_index(&top.bytes, &keep)
                    .map_err(|error| unsupported(session, &error.to_string()))?;
                let filtered = Content::new(top.descriptor.media_type.clone(), filtered);
                let chosen: Vec<Descriptor> = keep.iter().map(|&i| entries[i].clone()).collect();
                let descriptor = filtered.descriptor.clone();
                collected.tree(session, filtered, &chosen).await?;
                return Ok(collected.finish(descriptor, Some(top)));
            }
        }
    }
    Ok(collected.finish(top.descriptor, None))
}

/// Indexes of the entries matching `wanted`, in source order, each once.
fn choose(
    session: &Session<'_>,
    entries: &[Descriptor],
    wanted: &[Platform],
) -> Result<Vec<usize>, RegistryError> {
    let mut keep = Vec::new();
    let mut missing = Vec::new();
    for platform in wanted {
        let position = entries
            .iter()
            .position(|entry| entry.platform.as_ref().is_some_and(|p| p.matches(platform)));
        match position {
            Some(i) if !keep.contains(&i) => keep.push(i),
            Some(_) => {}
            None => missing.push(platform),
        }
    }
    if !missing.is_empty() {
        let available = entries.iter().filter_map(|entry| entry.platform.as_ref());
        return Err(missing_platform(session, &missing, available));
    }
    keep.sort_unstable();
    Ok(keep)
}

fn missing_platform<'p>(
    session: &Session<'_>,
    missing: &[&Platform],
    available: impl Iterator<Item = &'p Platform>,
) -> RegistryError {
    RegistryError::MissingPlatform {
        reference: session.canonical.to_string(),
        missing: missing.iter().map(ToString::to_string).collect(),
        available: available.map(ToString::to_string).collect(),
    }
}

fn unsupported(session: &Session<'_>, reason: &str) -> RegistryError {
    RegistryError::UnsupportedManifest {
        reference: session.canonical.to_string(),
        reason: reason.to_string(),
    }
}

fn parse(session: &Session<'_>, bytes: &[u8]) -> Result<(MediaType, Manifest), RegistryError> {
    Manifest::parse(bytes).map_err(|error| unsupported(session, &error.to_string()))
}

/// Pulls a child manifest by digest and checks it against its descriptor.
async fn fetch_child(
    session: &Session<'_>,
    descriptor: &Descriptor,
) -> Result<(Content, Manifest), RegistryError> {
    let bytes = session.manifest(Some(&descriptor.digest)).await?;
    if bytes.len() as u64 != descriptor.size {
        return Err(RegistryError::SizeMismatch {
            reference: session.canonical.to_string(),
            object: format!("manifest {}", descriptor.digest),
            expected: descriptor.size,
            actual: bytes.len() as u64,
        });
    }
    let (_, parsed) = parse(session, &bytes)?;
    // The child is stored under the index's descriptor, without the entry's platform
    // and annotations: those belong to the index.
    let content = Content {
        descriptor: Descriptor::new(
            descriptor.media_type.clone(),
            descriptor.digest,
            descriptor.size,
        ),
        bytes,
    };
    Ok((content, parsed))
}

async fn fetch_config(
    session: &Session<'_>,
    config: &Descriptor,
) -> Result<Content, RegistryError> {
    if config.size > MAX_CONFIG_BYTES as u64 {
        return Err(unsupported(
            session,
            &format!(
                "config {} is {} bytes, too large for an image config",
                config.digest, config.size
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(config.size as usize);
    session.fetch_blob(config, &mut bytes).await?;
    Ok(Content {
        descriptor: config.clone(),
        bytes: Bytes::from(bytes),
    })
}

/// Manifests and blobs gathered so far, each once.
#[derive(Default)]
struct Collected {
    manifests: Vec<Content>,
    blobs: Vec<Descriptor>,
    /// Size by digest of every manifest and blob already listed.
    sizes: HashMap<Digest, u64>,
    configs: Vec<Content>,
}

impl Collected {
    /// Records `descriptor` unless already listed; false if it was. The same digest with two
    /// sizes means a manifest lies, and the bundle could not hold both.
    fn first_sighting(
        &mut self,
        session: &Session<'_>,
        descriptor: &Descriptor,
    ) -> Result<bool, RegistryError> {
        match self.sizes.get(&descriptor.digest) {
            Some(&size) if size == descriptor.size => Ok(false),
            Some(&size) => Err(unsupported(
                session,
                &format!(
                    "{} is listed with sizes {size} and {}",
                    descriptor.digest, descriptor.size
                ),
            )),
            None => {
                self.sizes.insert(descriptor.digest, descriptor.size);
                Ok(true)
            }
        }
    }

    fn image(
        &mut self,
        session: &Session<'_>,
        manifest: Content,
        config: Descriptor,
        layers: Vec<Descriptor>,
    ) -> Result<(), RegistryError> {
        if self.first_sighting(session, &manifest.descriptor)? {
            self.manifests.push(manifest);
        }
        for blob in std::iter::once(config).chain(layers) {
            if self.first_sighting(session, &blob)? {
                self.blobs.push(blob);
            }
        }
        Ok(())
    }

    /// Records `index` and, breadth first, every manifest below it.
    async fn tree(
        &mut self,
        session: &Session<'_>,
        index: Content,
        entries: &[Descriptor],
    ) -> Result<(), RegistryError> {
        if self.first_sighting(session, &index.descriptor)? {
            self.manifests.push(index);
        }
        let mut queue: VecDeque<Descriptor> = entries.iter().cloned().collect();
        while let Some(descriptor) = queue.pop_front() {
            if self.sizes.contains_key(&descriptor.digest) {
                continue;
            }
            let (content, parsed) = fetch_child(session, &descriptor).await?;
            match parsed {
                Manifest::Image { config, layers } => {
                    self.image(session, content, config, layers)?;
                }
                Manifest::Index(children) => {
                    self.first_sighting(session, &content.descriptor)?;
                    self.manifests.push(content);
                    queue.extend(children);
                }
            }
        }
        Ok(())
    }

    fn finish(self, top: Descriptor, source_index: Option<Content>) -> Resolved {
        Resolved {
            top,
            manifests: self.manifests,
            source_index,
            blobs: self.blobs,
            configs: self.configs,
        }
    }
}
