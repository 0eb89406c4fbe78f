//! `bundle.json`: what a bundle holds and where it came from. The types here are the
//! schema documented in `bundle-spec/README.md`; field names are camelCase in JSON.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::oci::{Descriptor, Digest, MediaType, bare_hex};
use crate::plugin::PluginReport;
use crate::sign::{SignatureRecord, SignatureStatus as Signature};
use crate::values::Role as ImageRole;

/// The bundle format version this crate writes. Version 2 added `sbom.cdx.json` and
/// `images[].plugin`.
pub const FORMAT_VERSION: u32 = 2;
/// The format versions this crate reads.
pub const READABLE_VERSIONS: [u32; 2] = [1, 2];
/// The content of `bundle.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleManifest {
    /// Bundle format version; [`FORMAT_VERSION`] for bundles this crate writes.
    pub format_version: u32,
    /// The program that wrote the bundle.
    pub tool: Tool,
    /// The Velero release and its two main images.
    pub velero: VeleroInfo,
    /// Platforms the images were pinned to (`linux/amd64`, …), or `["all"]`.
    pub platforms: Vec<String>,
    /// What the values were rendered from besides `config.yaml`, `velero.release` and the
    /// image digests.
    pub render_inputs: crate::values::RenderInputs,
    /// RFC 3339 UTC time taken from `SOURCE_DATE_EPOCH`; absent when that is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_time: Option<String>,
    /// The image lock: every image `index.json` names, in the same order.
    pub images: Vec<BundledImage>,
    /// Every file of the bundle in archive order, except `bundle.json` and `SHA256SUMS`.
    pub files: Vec<FileRecord>,
}

/// The program that wrote a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// Program name, `velero-airgap`.
    pub name: String,
    /// Program version.
    pub version: String,
}

/// The Velero release a bundle carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VeleroInfo {
    /// Release, such as `1.18.1`.
    pub release: String,
    /// Canonical reference of the Velero server image.
    pub image: String,
    /// Canonical reference of the AWS plugin image of that release.
    pub aws_plugin_image: String,
}

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRecord {
    /// Entry name in the archive.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, bare hex as in `SHA256SUMS`.
    #[serde(with = "bare_hex")]
    pub sha256: Digest,
}

/// What the builder knows about one image; the writer adds the rest ([`BundledImage`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// Why the bundle carries the image.
    pub role: ImageRole,
    /// The reference as it stands in the values before the airgap rewrite, Docker Hub
    /// names written out as `docker.io/…`. Never a mirror address.
    pub canonical_reference: String,
    /// Digest of the manifest (or index) `index.json` lists for this image.
    pub digest: Digest,
    /// Media type of that manifest.
    pub media_type: MediaType,
    /// Size of that manifest in bytes.
    pub size: u64,
    /// The reference actually contacted to pull it (a mirror, when one applied).
    pub source: String,
    /// The index the platform manifest was chosen from, kept as a blob when the bundle
    /// pins platforms; not listed in `index.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_index: Option<Descriptor>,
    /// Paths of the fields in `values.yaml` that name this image (e.g. `image`,
    /// `initContainers[1].image`): exactly what `unpack` re-targets.
    #[serde(default)]
    pub values_fields: Vec<String>,
    /// Cosign signatures found for the image, kept as blobs (not in `index.json`)
    /// so they can be checked again offline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<SignatureRecord>,
    /// Signature status.
    pub signature: Signature,
    /// For plugin images (the AWS plugin included), the plugin checks' report of each
    /// platform manifest, by its digest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plugin: BTreeMap<Digest, PluginReport>,
}

/// An image as `bundle.json` records it: the builder's record plus what the writer
/// derives from the manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundledImage {
    /// The builder's record.
    #[serde(flatten)]
    pub image: ImageRecord,
    /// Every manifest and index blob of the image (its own manifest first, then those it
    /// reaches), so a reader knows which blobs are manifests before meeting them.
    pub manifests: Vec<Descriptor>,
    /// Bytes of every blob stored for the image, each counted once (manifests, configs,
    /// layers, the source index).
    pub total_size: u64,
}

/// `bundle.json` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or not the documented schema.
    #[error("not a valid bundle.json")]
    Json(#[source] serde_json::Error),
    /// A format version this crate does not read.
    #[error(
        "format version {found} is not supported (this tool reads versions 1 and 2): use a newer velero-airgap"
    )]
    UnsupportedVersion { found: u64 },
}

/// A bundle's blobs as every command counts them: see [`BundleManifest::content_blobs`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BlobCount {
    /// How many.
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
}

impl BundleManifest {
    /// The blobs of the bundle's images: every config and layer blob, each counted once.
    /// Manifests, indexes, source indexes and stored signatures live under `blobs/` too,
    /// but are not counted: build, verify, inspect and unpack all count blobs this way.
    pub fn content_blobs(&self) -> BlobCount {
        let not_content: std::collections::HashSet<&Digest> = self
            .images
            .iter()
            .flat_map(|image| {
                let record = &image.image;
                image
                    .manifests
                    .iter()
                    .map(|m| &m.digest)
                    .chain(std::iter::once(&record.digest))
                    .chain(record.source_index.iter().map(|i| &i.digest))
                    .chain(record.signatures.iter().flat_map(|s| {
                        std::iter::once(&s.manifest.digest)
                            .chain(s.payloads.iter().map(|p| &p.digest))
                    }))
            })
            .collect();
        self.files
            .iter()
            .filter(|file| file.name.starts_with(super::layout::BLOB_DIR))
            .filter(|file| !not_content.contains(&file.sha256))
            .fold(BlobCount::default(), |count, file| BlobCount {
                blobs: count.blobs + 1,
                bytes: count.bytes + file.size,
            })
    }

    /// Pretty JSON with a final newline, as stored in the bundle.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, numbers and a string-keyed map serialise without error.
        let mut json = serde_json::to_vec_pretty(self).unwrap_or_default();
        json.push(b'\n');
        json
    }

    /// Parses `bundle.json`, refusing other format versions before reading their fields.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let found = raw_version(bytes).map_err(ManifestError::Json)?;
        if probe_version(bytes).is_none() {
            return Err(ManifestError::UnsupportedVersion { found });
        }
        serde_json::from_slice(bytes).map_err(ManifestError::Json)
    }

    /// Sum of the sizes of every file listed.
    pub fn content_size(&self) -> u64 {
        self.files.iter().map(|file| file.size).sum()
    }
}

fn raw_version(bytes: &[u8]) -> Result<u64, serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct VersionProbe {
        format_version: u64,
    }
    serde_json::from_slice::<VersionProbe>(bytes).map(|probe| probe.format_version)
}

/// The format version `bundle.json` declares, when it is one this crate reads.
pub(crate) fn probe_version(bytes: &[u8]) -> Option<u32> {
    let found = raw_version(bytes).ok()?;
    READABLE_VERSIONS
        .into_iter()
        .find(|version| u64::from(*version) == found)
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
pub(crate) fn rfc3339_utc(epoch_seconds: u64) -> String {
    let days = epoch_seconds / 86_400;
    let seconds_of_day = epoch_seconds % 86_400;
    // Civil-from-days (H. Hinnant), shifted so eras start on 0000-03-01.
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds_of_day / 3_600,
        seconds_of_day % 3_600 / 60,
        seconds_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BundleManifest {
        let digest = Digest::of(b"manifest");
        BundleManifest {
            format_version: FORMAT_VERSION,
            tool: Tool {
                name: "velero-airgap".into(),
                version: "0.1.0".into(),
            },
            velero: VeleroInfo {
                release: "1.18.1".into(),
                image: "docker.io/velero/velero:v1.18.1".into(),
                aws_plugin_image: "docker.io/velero/velero-plugin-for-aws:v1.14.0".into(),
            },
            platforms: vec!["linux/amd64".into()],
            render_inputs: crate::values::RenderInputs::default(),
            build_time: None,
            images: vec![BundledImage {
                image: ImageRecord {
                    role: ImageRole::Plugin("acme".into()),
                    canonical_reference: "registry.example.com/acme/plugin:1.2.0".into(),
                    digest,
                    media_type: MediaType::OCI_MANIFEST,
                    size: 8,
                    source: "mirror.local/acme/plugin:1.2.0".into(),
                    source_index: None,
                    values_fields: vec![],
                    signatures: vec![],
                    plugin: BTreeMap::new(),
                    signature: Signature::Verified {
                        key_fingerprint: crate::sign::Fingerprint::try_from(format!(
                            "sha256:{}",
                            "0".repeat(64)
                        ))
                        .unwrap(),
                    },
                },
                manifests: vec![],
                total_size: 8,
            }],
            files: vec![FileRecord {
                name: "oci-layout".into(),
                size: 30,
                sha256: digest,
            }],
        }
    }

    #[test]
    fn json_round_trip_uses_documented_names() {
        let manifest = sample();
        let json = manifest.to_json();
        let text = std::str::from_utf8(&json).unwrap();
        for key in [
            "\"formatVersion\": 2",
            "\"awsPluginImage\"",
            "\"renderInputs\"",
            "\"canonicalReference\"",
            "\"role\": \"plugin:acme\"",
            "\"status\": \"verified\"",
            "\"keyFingerprint\"",
            "\"totalSize\"",
            &format!("\"sha256\": \"{}\"", Digest::of(b"manifest").hex()),
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        assert!(!text.contains("buildTime") && !text.contains("sourceIndex"));
        assert!(text.ends_with("}\n"));
        assert_eq!(BundleManifest::from_json(&json).unwrap(), manifest);
    }

    #[test]
    fn other_versions_are_refused_by_number() {
        let error = BundleManifest::from_json(br#"{"formatVersion": 3, "whatever": []}"#);
        assert!(matches!(
            error,
            Err(ManifestError::UnsupportedVersion { found: 3 })
        ));
        let mut version_1 = sample();
        version_1.format_version = 1;
        let json = version_1.to_json();
        assert_eq!(probe_version(&json), Some(1));
        assert_eq!(BundleManifest::from_json(&json).unwrap(), version_1);
    }

    #[test]
    fn roles_parse_and_print() {
        for text in ["velero", "aws-plugin", "plugin:csi", "other"] {
            assert_eq!(text.parse::<ImageRole>().unwrap().to_string(), text);
        }
        assert!("plugin:".parse::<ImageRole>().is_err());
        assert!("helper".parse::<ImageRole>().is_err());
    }

    #[test]
    fn unsigned_has_no_fingerprint() {
        assert_eq!(
            serde_json::to_string(&Signature::Unsigned).unwrap(),
            r#"{"status":"unsigned"}"#
        );
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_utc(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
