//! `verify --plugins` (and `unpack --plugins`): the plugin checks derived again, offline,
//! from the layers in the bundle, and compared with what the build recorded. Plain
//! `verify` trusts the reports and the SBOM through the checksums; this proves they
//! follow from the bytes that will run.
//!
//! It takes a second pass over the bundle: blobs are stored by digest, and which of them
//! are the configs and layers of the plugin and Velero images is known only from the
//! manifests, which the first pass may meet after those blobs. The pass reads only what
//! it needs into memory (configs, and what each layer leaves behind, capped) and hashes
//! everything again, so a bundle changed in between is caught too.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use bytes::Bytes;

use crate::bundle::{
    BUNDLE_JSON, BundleReader, BundledImage, Problem, ProblemKind, ReadError, SBOM_JSON,
    VerifiedContent,
};
use crate::oci::{ConfigError, Digest, MAX_CONFIG_BYTES, MediaType};
use crate::plugin::{
    DeploymentImage, ImageFacts, InspectError, Judgement, PlatformManifest, ReadBlobs, Severity,
    check_deployment, scan_layer,
};
use crate::reference::Reference;
use crate::sbom::{SbomImage, SbomInput, write_sbom};

/// Why the plugin checks could not be derived again.
#[derive(Debug, thiserror::Error)]
pub enum PluginCheckError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("the bundle's images cannot be inspected")]
    Inspect(#[from] InspectError),
    /// A format 1 bundle has nothing to compare.
    #[error(
        "the bundle is of format 1, which has no plugin reports or SBOM to check; rebuild it with this velero-airgap"
    )]
    NoReports,
    /// The bundle failed the second pass after passing the first.
    #[error("the bundle changed while it was verified: {0}")]
    Changed(Problem),
}

impl PluginCheckError {
    /// A bundle that cannot be inspected or changed is bad input; reading is local.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            PluginCheckError::Read(error) => error.kind(),
            _ => crate::ErrorKind::Input,
        }
    }
}

/// Derives the plugin reports and the SBOM of a verified bundle from its layers again;
/// returns every difference from `bundle.json` and `sbom.cdx.json`, and every error
/// finding, as problems.
pub fn check_plugins(
    path: &Path,
    verified: &VerifiedContent,
) -> Result<Vec<Problem>, PluginCheckError> {
    let manifest = &verified.manifest;
    let Some(sbom) = &verified.sbom_json else {
        return Err(PluginCheckError::NoReports);
    };
    let mut problems = Vec::new();
    let images: Vec<DeploymentImage> = manifest
        .images
        .iter()
        .map(|image| deployment_image(image, &verified.manifests))
        .collect::<Result<_, _>>()
        .map_err(|message| PluginCheckError::Changed(inconsistent(BUNDLE_JSON, message)))?;
    let read = read_blobs(path, &images)?;
    let allowed = &manifest.render_inputs.allow_unrecognised_plugins;
    let judgement = Judgement {
        velero_version: &manifest.velero.release,
        allow_unrecognised: allowed,
    };
    let facts = check_deployment(&images, &read, judgement)?;

    for (image, facts) in manifest.images.iter().zip(&facts) {
        let reference = &image.image.canonical_reference;
        if image.image.plugin != facts.reports {
            problems.push(inconsistent(
                BUNDLE_JSON,
                format!(
                    "the plugin report of {reference} differs from the one its layers give: {}",
                    difference(&image.image.plugin, &facts.reports)
                ),
            ));
        }
        for report in facts.reports.values() {
            for finding in report
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
            {
                problems.push(inconsistent(
                    BUNDLE_JSON,
                    format!("{reference} ({}): {}", report.platform, finding.message),
                ));
            }
        }
    }
    if derived_sbom(verified, &facts)? != *sbom {
        problems.push(inconsistent(
            SBOM_JSON,
            "differs from the SBOM the bundle's images give".into(),
        ));
    }
    Ok(problems)
}

fn inconsistent(entry: &str, message: String) -> Problem {
    Problem::new(entry, ProblemKind::Inconsistent(message))
}

/// The first platform whose report differs, and how.
fn difference<T: serde::Serialize + PartialEq>(
    recorded: &BTreeMap<Digest, T>,
    derived: &BTreeMap<Digest, T>,
) -> String {
    let keys: std::collections::BTreeSet<&Digest> = recorded.keys().chain(derived.keys()).collect();
    for key in keys {
        match (recorded.get(key), derived.get(key)) {
            (Some(a), Some(b)) if a != b => {
                let (a, b) = (json_lines(a), json_lines(b));
                let line = a.iter().zip(&b).find(|(a, b)| a != b).map_or_else(
                    || "its length".to_string(),
                    |(a, b)| {
                        format!(
                            "bundle.json has `{}`, the layers give `{}`",
                            a.trim(),
                            b.trim()
                        )
                    },
                );
                return format!("manifest {key}: {line}");
            }
            (None, Some(_)) => return format!("manifest {key} has no report in bundle.json"),
            (Some(_), None) => return format!("manifest {key} has a report no layer gives"),
            _ => {}
        }
    }
    String::new()
}

fn json_lines(value: &impl serde::Serialize) -> Vec<String> {
    serde_json::to_string_pretty(value)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// One image of `bundle.json` as the checks see it.
fn deployment_image(
    image: &BundledImage,
    manifests: &HashMap<Digest, Vec<u8>>,
) -> Result<DeploymentImage, String> {
    let reference = &image.image.canonical_reference;
    let blobs = image
        .manifests
        .iter()
        .map(|descriptor| {
            manifests
                .get(&descriptor.digest)
                .map(|bytes| (descriptor.digest, &bytes[..]))
                .ok_or_else(|| {
                    format!(
                        "image {reference}: manifest {} was not read",
                        descriptor.digest
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let manifests = PlatformManifest::from_blobs(blobs)
        .map_err(|error| format!("image {reference}: {error}"))?;
    Ok(DeploymentImage {
        reference: reference.clone(),
        roles: vec![image.image.role.clone()],
        manifests,
    })
}

/// The second pass: the configs of the images read, and their layers scanned.
fn read_blobs(path: &Path, images: &[DeploymentImage]) -> Result<ReadBlobs, PluginCheckError> {
    let mut configs: HashMap<Digest, &str> = HashMap::new();
    let mut layers: HashMap<Digest, MediaType> = HashMap::new();
    for image in images.iter().filter(|image| image.is_read(true)) {
        for manifest in &image.manifests {
            if manifest.config.size > MAX_CONFIG_BYTES as u64 {
                return Err(InspectError::Config {
                    reference: image.reference.clone(),
                    digest: manifest.config.digest,
                    source: ConfigError::TooLarge {
                        size: manifest.config.size as usize,
                        limit: MAX_CONFIG_BYTES,
                    },
                }
                .into());
            }
            configs.insert(manifest.config.digest, &image.reference);
            for layer in &manifest.layers {
                layers
                    .entry(layer.digest)
                    .or_insert_with(|| layer.media_type.clone());
            }
        }
    }
    let owner = |digest: &Digest| {
        images
            .iter()
            .find(|image| {
                image
                    .manifests
                    .iter()
                    .any(|m| m.layers.iter().any(|l| l.digest == *digest))
            })
            .map_or_else(String::new, |image| image.reference.clone())
    };
    let mut read = ReadBlobs::default();
    let mut reader = BundleReader::open(path)?;
    while let Some(mut blob) = reader.next_blob() {
        let digest = blob.digest();
        if configs.contains_key(&digest) {
            let mut bytes = Vec::with_capacity(blob.size() as usize);
            if blob.read_to_end(&mut bytes).is_ok() {
                read.configs.insert(digest, Bytes::from(bytes));
            }
        } else if let Some(media_type) = layers.get(&digest) {
            let changes =
                scan_layer(media_type, &mut blob).map_err(|source| InspectError::Layer {
                    reference: owner(&digest),
                    digest,
                    source,
                })?;
            read.layers.insert(digest, changes);
            read.check_budget()?;
        }
    }
    let report = reader.finish();
    if let Some(problem) = report.problems.into_iter().next() {
        return Err(PluginCheckError::Changed(problem));
    }
    Ok(read)
}

/// The SBOM the bundle's images give, written as `build` writes it.
fn derived_sbom(
    verified: &VerifiedContent,
    facts: &[ImageFacts],
) -> Result<Vec<u8>, PluginCheckError> {
    let manifest = &verified.manifest;
    let references = manifest
        .images
        .iter()
        .map(|image| {
            Reference::parse(&image.image.canonical_reference).map_err(|error| {
                PluginCheckError::Changed(inconsistent(BUNDLE_JSON, error.to_string()))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(write_sbom(&SbomInput {
        tool: &manifest.tool,
        velero_release: &manifest.velero.release,
        timestamp: manifest.build_time.as_deref(),
        images: manifest
            .images
            .iter()
            .zip(&references)
            .zip(facts)
            .map(|((image, reference), facts)| SbomImage {
                role: &image.image.role,
                reference,
                digest: &image.image.digest,
                manifests: &facts.programs,
            })
            .collect(),
    }))
}
