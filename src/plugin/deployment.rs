//! The plugin checks over a whole deployment: every plugin image and the AWS plugin
//! inspected on each of its platforms, the Velero image read for its Go programs and for
//! the libraries a dynamic plugin would need, then the checks across plugins. `build`,
//! `validate --online` and `verify --plugins` differ only in where the bytes come from
//! (a registry, a bundle); they all end here, so they judge the same way.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use super::InspectError;
use super::checks::{PluginEntry, check_plugin_set};
use super::filesystem::Filesystem;
use super::gobuild::GoBuildInfo;
use super::inspect::inspect_plugin;
use super::layer::LayerChanges;
use super::report::PluginReport;
use crate::oci::ImageConfig;
use crate::oci::{Descriptor, Digest, Manifest, ManifestError};
use crate::values::Role;

/// The AWS plugin's init container name, used to name it in findings.
pub const AWS_PLUGIN_NAME: &str = "velero-plugin-for-aws";

/// One image of the deployment.
#[derive(Debug, Clone)]
pub struct DeploymentImage {
    /// Canonical reference, to name the image in errors.
    pub reference: String,
    /// Every role it plays: an image the values name twice (a plugin configured with the
    /// AWS plugin's own reference) plays two.
    pub roles: Vec<Role>,
    /// Its image manifests, one per platform.
    pub manifests: Vec<PlatformManifest>,
}

/// An image manifest: one platform of an image.
#[derive(Debug, Clone)]
pub struct PlatformManifest {
    pub digest: Digest,
    pub config: Descriptor,
    /// Bottom first.
    pub layers: Vec<Descriptor>,
}

impl PlatformManifest {
    /// The image manifests among an image's manifest blobs (indexes are skipped).
    pub fn from_blobs<'a>(
        blobs: impl IntoIterator<Item = (Digest, &'a [u8])>,
    ) -> Result<Vec<PlatformManifest>, ManifestError> {
        let mut manifests = Vec::new();
        for (digest, bytes) in blobs {
            if let (_, Manifest::Image { config, layers }) = Manifest::parse(bytes)? {
                manifests.push(PlatformManifest {
                    digest,
                    config,
                    layers,
                });
            }
        }
        Ok(manifests)
    }
}

impl DeploymentImage {
    fn is_plugin(&self) -> bool {
        self.roles
            .iter()
            .any(|role| matches!(role, Role::AwsPlugin | Role::Plugin(_)))
    }

    fn is_velero(&self) -> bool {
        self.roles.contains(&Role::Velero)
    }

    /// Whether the checks read this image's layers: every plugin image always; the Velero
    /// image too when `with_velero` (for the SBOM, or for a dynamic plugin binary).
    pub fn is_read(&self, with_velero: bool) -> bool {
        self.is_plugin() || (with_velero && self.is_velero())
    }
}

/// What the checks found about one image.
#[derive(Debug, Clone, Default)]
pub struct ImageFacts {
    /// Per platform manifest of a plugin image, its report.
    pub reports: BTreeMap<Digest, PluginReport>,
    /// Per platform manifest of an image that was read, its Go programs.
    pub programs: Vec<ManifestPrograms>,
}

/// The Go programs of one platform manifest.
#[derive(Debug, Clone)]
pub struct ManifestPrograms {
    pub manifest: Digest,
    /// `os/architecture[/variant]`.
    pub platform: String,
    /// Absolute path and build information, in path order.
    pub programs: Vec<(String, GoBuildInfo)>,
}

/// Most bytes the layers read may leave behind together (paths, analysis results): far
/// above what real images need, and a bound for hostile ones.
pub const MAX_READ_BYTES: usize = 256 * 1024 * 1024;

/// What the checks read: config blobs and the layers scanned, by digest.
#[derive(Debug, Default)]
pub struct ReadBlobs {
    pub configs: HashMap<Digest, Bytes>,
    pub layers: HashMap<Digest, LayerChanges>,
}

impl ReadBlobs {
    /// Refuses layers that together left more than [`MAX_READ_BYTES`] behind.
    pub fn check_budget(&self) -> Result<(), InspectError> {
        let held: usize = self.layers.values().map(LayerChanges::weight).sum();
        if held > MAX_READ_BYTES {
            return Err(InspectError::TooManyFiles {
                limit: MAX_READ_BYTES,
            });
        }
        Ok(())
    }
}

/// How to judge.
#[derive(Debug, Clone, Copy)]
pub struct Judgement<'a> {
    /// The Velero release the plugins run with, e.g. `1.18.2`.
    pub velero_version: &'a str,
    /// Plugins (by config name) whose unrecognised entrypoint is a warning, not an error.
    pub allow_unrecognised: &'a BTreeSet<String>,
}

/// Runs the checks over `images` (in bundle order) with what was read. The Velero image
/// counts as read when all its layers are in `read`.
pub fn check_deployment(
    images: &[DeploymentImage],
    read: &ReadBlobs,
    judgement: Judgement,
) -> Result<Vec<ImageFacts>, InspectError> {
    let mut facts = vec![ImageFacts::default(); images.len()];
    // Per image, per manifest: (config, filesystem); `None` when not read.
    let mut opened: Vec<Vec<Option<(ImageConfig, Filesystem)>>> = Vec::new();
    for image in images {
        let mut manifests = Vec::new();
        for manifest in &image.manifests {
            let complete = manifest
                .layers
                .iter()
                .all(|layer| read.layers.contains_key(&layer.digest));
            if !image.is_read(complete) {
                manifests.push(None);
                continue;
            }
            manifests.push(Some(open(image, manifest, read)?));
        }
        opened.push(manifests);
    }
    let velero: HashMap<String, &Filesystem> = images
        .iter()
        .zip(&opened)
        .filter(|(image, _)| image.is_velero())
        .flat_map(|(_, manifests)| manifests.iter().flatten())
        .map(|(config, filesystem)| (config.platform.to_string(), filesystem))
        .collect();

    for ((image, manifests), facts) in images.iter().zip(&opened).zip(&mut facts) {
        let allowed = image.roles.iter().any(|role| {
            matches!(role, Role::Plugin(name) if judgement.allow_unrecognised.contains(name))
        });
        for (manifest, opened) in image.manifests.iter().zip(manifests) {
            let Some((config, filesystem)) = opened else {
                continue;
            };
            let platform = config.platform.to_string();
            facts.programs.push(ManifestPrograms {
                manifest: manifest.digest,
                platform: platform.clone(),
                programs: filesystem
                    .go_binaries()
                    .map(|(path, info)| (path.to_string(), info.clone()))
                    .collect(),
            });
            if image.is_plugin() {
                let velero = velero.get(&platform).copied();
                let report = inspect_plugin(config, filesystem, velero, allowed);
                facts.reports.insert(manifest.digest, report);
            }
        }
    }
    check_sets(images, &mut facts, judgement.velero_version);
    Ok(facts)
}

/// The config and filesystem of one platform manifest.
fn open(
    image: &DeploymentImage,
    manifest: &PlatformManifest,
    read: &ReadBlobs,
) -> Result<(ImageConfig, Filesystem), InspectError> {
    let not_read = |digest: &Digest| InspectError::NotRead {
        reference: image.reference.clone(),
        digest: *digest,
    };
    let bytes = read
        .configs
        .get(&manifest.config.digest)
        .ok_or_else(|| not_read(&manifest.config.digest))?;
    let config = ImageConfig::parse(bytes).map_err(|source| InspectError::Config {
        reference: image.reference.clone(),
        digest: manifest.config.digest,
        source,
    })?;
    let layers = manifest
        .layers
        .iter()
        .map(|layer| {
            read.layers
                .get(&layer.digest)
                .ok_or_else(|| not_read(&layer.digest))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let filesystem = Filesystem::from_layers(layers).map_err(|source| InspectError::Apply {
        reference: image.reference.clone(),
        manifest: manifest.digest,
        source,
    })?;
    Ok((config, filesystem))
}

/// The checks across plugins, on each platform: findings join the report of the plugin
/// they are about.
fn check_sets(images: &[DeploymentImage], facts: &mut [ImageFacts], velero_version: &str) {
    let platforms: std::collections::BTreeSet<String> = facts
        .iter()
        .flat_map(|facts| facts.reports.values().map(|report| report.platform.clone()))
        .collect();
    for platform in platforms {
        // (image index, manifest digest) of each entry, to put findings back.
        let mut owners = Vec::new();
        let mut entries = Vec::new();
        for (index, (image, facts)) in images.iter().zip(facts.iter()).enumerate() {
            let Some((digest, report)) = facts
                .reports
                .iter()
                .find(|(_, report)| report.platform == platform)
            else {
                continue;
            };
            for role in &image.roles {
                let (name, is_aws) = match role {
                    Role::AwsPlugin => (AWS_PLUGIN_NAME, true),
                    Role::Plugin(name) => (name.as_str(), false),
                    _ => continue,
                };
                owners.push((index, *digest));
                entries.push(PluginEntry {
                    name,
                    is_aws,
                    image_digest: *digest,
                    report,
                });
            }
        }
        let findings = check_plugin_set(velero_version, &entries);
        for (entry, finding) in findings {
            let (index, digest) = owners[entry];
            if let Some(report) = facts[index].reports.get_mut(&digest) {
                report.findings.push(finding);
            }
        }
    }
}
