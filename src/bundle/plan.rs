//! What a bundle will hold, known before any blob is fetched, and the archive layout
//! that follows from it: every entry's name, offset, size and checksum.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::closure::{BlobSource, image_closure};
use super::index_json::index_json;
use super::layout::{
    BUNDLE_JSON, CONFIG_YAML, INDEX_JSON, OCI_LAYOUT, OCI_LAYOUT_CONTENT, SBOM_JSON, SHA256SUMS,
    VALUES_YAML, archive_size, blob_entry_name, entry_span, format_sums,
};
use super::leading::SBOM_LIMIT;
use super::manifest::{
    BundleManifest, BundledImage, FORMAT_VERSION, FileRecord, ImageRecord, Tool, VeleroInfo,
    rfc3339_utc,
};
use super::problem::{Problem, ProblemKind};
use crate::oci::Digest;

/// Everything the writer needs to lay a bundle out.
#[derive(Debug, Clone)]
pub struct BundlePlan {
    /// The program writing the bundle.
    pub tool: Tool,
    pub velero: VeleroInfo,
    /// Platforms the images were pinned to.
    pub platforms: Vec<String>,
    /// Free-form record of the render inputs (mode, local registry, proxies set, …).
    pub render_inputs: crate::values::RenderInputs,
    /// The images, in the order `index.json` will list them.
    pub images: Vec<ImageRecord>,
    /// The input config, stored as `config.yaml`.
    pub config_yaml: Vec<u8>,
    /// The rendered values, stored as `values.yaml`.
    pub values_yaml: Vec<u8>,
    /// The software bill of materials, stored as `sbom.cdx.json`.
    pub sbom_json: Vec<u8>,
    /// Small blobs written when the bundle is created: every manifest and index (the
    /// writer reads them to check the closure), and any other blob already at hand.
    pub inline_blobs: Vec<Vec<u8>>,
    /// The other blobs, filled later through [`crate::bundle::BlobSlot`]s. Duplicates
    /// (a layer shared by images) are stored once.
    pub blobs: Vec<BlobRef>,
    /// `SOURCE_DATE_EPOCH`: entry mtime and `buildTime`; `None` gives mtime 0 and no build time.
    pub source_date_epoch: Option<u64>,
}

/// A blob by digest and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobRef {
    /// Content digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
}

/// A plan that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Two images with one canonical reference.
    #[error("image {reference} is listed twice")]
    DuplicateImage { reference: String },
    /// One digest planned with two sizes.
    #[error("blob {digest} is planned with sizes {first} and {second}")]
    BlobSizeConflict {
        digest: Digest,
        /// One size.
        first: u64,
        second: u64,
    },
    /// The images' manifests do not match the planned blobs.
    #[error(
        "the planned images and blobs disagree: {}",
        super::problem::join(problems)
    )]
    Inconsistent {
        /// Every disagreement found.
        problems: Vec<Problem>,
    },
    /// The SBOM is larger than readers accept.
    #[error("the SBOM is {size} bytes, more than the {limit} bundle readers accept")]
    SbomTooLarge { size: u64, limit: u64 },
    /// `SOURCE_DATE_EPOCH` is set but not a number.
    #[error("SOURCE_DATE_EPOCH `{value}` is not a whole number of seconds")]
    SourceDateEpoch { value: String },
}

/// Reads `SOURCE_DATE_EPOCH` from the environment: `None` when unset or empty.
pub fn source_date_epoch_from_env() -> Result<Option<u64>, PlanError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if value.is_empty() => Ok(None),
        Ok(value) => value
            .parse()
            .map(Some)
            .map_err(|_| PlanError::SourceDateEpoch { value }),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(value)) => Err(PlanError::SourceDateEpoch {
            value: value.to_string_lossy().into_owned(),
        }),
    }
}

/// Where an entry's bytes come from.
#[derive(Debug)]
pub(crate) enum Content {
    /// Written when the bundle is created.
    Inline(Vec<u8>),
    /// Filled later through a slot.
    Slot(Digest),
}

/// One archive entry at its place.
#[derive(Debug)]
pub(crate) struct PlannedEntry {
    pub(crate) name: String,
    /// Offset of the header; data follows one block later.
    pub(crate) offset: u64,
    pub(crate) size: u64,
    pub(crate) content: Content,
}

/// The archive, laid out.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) entries: Vec<PlannedEntry>,
    pub(crate) archive_size: u64,
    pub(crate) manifest: BundleManifest,
    pub(crate) mtime: u64,
}

/// A planned blob: its size, and its bytes if given inline.
struct PlannedBlob {
    size: u64,
    inline: Option<Vec<u8>>,
}

struct PlannedBlobs(BTreeMap<Digest, PlannedBlob>);

impl BlobSource for PlannedBlobs {
    fn size(&self, digest: &Digest) -> Option<u64> {
        self.0.get(digest).map(|blob| blob.size)
    }
    fn manifest(&self, digest: &Digest) -> Option<&[u8]> {
        self.0.get(digest).and_then(|blob| blob.inline.as_deref())
    }
}

impl BundlePlan {
    /// Checks the plan and lays out every entry.
    pub(crate) fn lay_out(self) -> Result<Layout, PlanError> {
        if self.sbom_json.len() as u64 > SBOM_LIMIT {
            return Err(PlanError::SbomTooLarge {
                size: self.sbom_json.len() as u64,
                limit: SBOM_LIMIT,
            });
        }
        let blobs = self.planned_blobs()?;
        let images = self.bundled_images(&blobs)?;
        let index = index_json(&images);

        let inline = |name: &str, bytes: Vec<u8>| {
            (name.to_owned(), bytes.len() as u64, Content::Inline(bytes))
        };
        let mut entries = vec![
            inline(OCI_LAYOUT, OCI_LAYOUT_CONTENT.to_vec()),
            inline(INDEX_JSON, index),
            inline(CONFIG_YAML, self.config_yaml),
            inline(VALUES_YAML, self.values_yaml),
            inline(SBOM_JSON, self.sbom_json),
        ];
        let mut files: Vec<FileRecord> = entries
            .iter()
            .filter_map(|(name, size, content)| match content {
                Content::Inline(bytes) => Some(FileRecord {
                    name: name.clone(),
                    size: *size,
                    sha256: Digest::of(bytes),
                }),
                Content::Slot(_) => None,
            })
            .collect();
        for (digest, blob) in blobs.0 {
            let name = blob_entry_name(&digest);
            files.push(FileRecord {
                name: name.clone(),
                size: blob.size,
                sha256: digest,
            });
            let content = blob.inline.map_or(Content::Slot(digest), Content::Inline);
            entries.push((name, blob.size, content));
        }

        let manifest = BundleManifest {
            format_version: FORMAT_VERSION,
            tool: self.tool,
            velero: self.velero,
            platforms: self.platforms,
            render_inputs: self.render_inputs,
            build_time: self.source_date_epoch.map(rfc3339_utc),
            images,
            files,
        };
        let bundle_json = manifest.to_json();
        let bundle_json_digest = Digest::of(&bundle_json);
        // SHA256SUMS lists files in archive order, where bundle.json follows oci-layout.
        let mut listed: Vec<(&str, &Digest)> = vec![
            (OCI_LAYOUT, &manifest.files[0].sha256),
            (BUNDLE_JSON, &bundle_json_digest),
        ];
        listed.extend(
            manifest.files[1..]
                .iter()
                .map(|file| (file.name.as_str(), &file.sha256)),
        );
        let sums = format_sums(listed);
        entries.insert(1, inline(SHA256SUMS, sums));
        entries.insert(2, inline(BUNDLE_JSON, bundle_json));

        let mut offset = 0;
        let entries: Vec<PlannedEntry> = entries
            .into_iter()
            .map(|(name, size, content)| {
                let entry = PlannedEntry {
                    name,
                    offset,
                    size,
                    content,
                };
                offset += entry_span(size);
                entry
            })
            .collect();
        Ok(Layout {
            archive_size: archive_size(entries.iter().map(|entry| entry.size)),
            entries,
            manifest,
            mtime: self.source_date_epoch.unwrap_or(0),
        })
    }

    /// Merges inline and slot blobs by digest.
    fn planned_blobs(&self) -> Result<PlannedBlobs, PlanError> {
        let mut blobs: BTreeMap<Digest, PlannedBlob> = BTreeMap::new();
        let inline = self.inline_blobs.iter().map(|bytes| {
            (
                BlobRef {
                    digest: Digest::of(bytes),
                    size: bytes.len() as u64,
                },
                Some(bytes),
            )
        });
        let slots = self.blobs.iter().map(|blob| (*blob, None));
        for (blob, bytes) in inline.chain(slots) {
            match blobs.get_mut(&blob.digest) {
                Some(existing) if existing.size != blob.size => {
                    return Err(PlanError::BlobSizeConflict {
                        digest: blob.digest,
                        first: existing.size,
                        second: blob.size,
                    });
                }
                Some(_) => {}
                None => {
                    blobs.insert(
                        blob.digest,
                        PlannedBlob {
                            size: blob.size,
                            inline: bytes.cloned(),
                        },
                    );
                }
            }
        }
        Ok(PlannedBlobs(blobs))
    }

    /// Walks every image, deriving its manifests and total size.
    fn bundled_images(&self, blobs: &PlannedBlobs) -> Result<Vec<BundledImage>, PlanError> {
        let mut references = HashSet::new();
        let mut problems = Vec::new();
        let mut reached = BTreeSet::new();
        let mut images = Vec::with_capacity(self.images.len());
        for image in &self.images {
            if !references.insert(image.canonical_reference.as_str()) {
                return Err(PlanError::DuplicateImage {
                    reference: image.canonical_reference.clone(),
                });
            }
            let closure = image_closure(image, blobs, &mut problems);
            reached.extend(closure.blobs);
            images.push(BundledImage {
                image: image.clone(),
                manifests: closure.manifests,
                total_size: closure.total_size,
            });
        }
        problems.extend(
            blobs
                .0
                .keys()
                .filter(|digest| !reached.contains(*digest))
                .map(|digest| Problem::new(blob_entry_name(digest), ProblemKind::Unreferenced)),
        );
        if problems.is_empty() {
            Ok(images)
        } else {
            Err(PlanError::Inconsistent { problems })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::layout::LEADING_ENTRIES;
    use crate::oci::MediaType;
    const OCI_MANIFEST: MediaType = MediaType::OCI_MANIFEST;
    use crate::sign::SignatureStatus as Signature;
    use crate::values::Role as ImageRole;

    const CONFIG: &[u8] = b"{}";
    const LAYER: &[u8] = b"layer";

    fn manifest() -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":5}}]}}"#,
            Digest::of(CONFIG),
            Digest::of(LAYER)
        )
        .into_bytes()
    }

    fn blob(bytes: &[u8]) -> BlobRef {
        BlobRef {
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
        }
    }

    fn plan() -> BundlePlan {
        let manifest = manifest();
        BundlePlan {
            tool: Tool {
                name: "velero-airgap".into(),
                version: "0".into(),
            },
            velero: VeleroInfo {
                release: "1.18.1".into(),
                image: "docker.io/velero/velero:v1.18.1".into(),
                aws_plugin_image: "docker.io/velero/velero-plugin-for-aws:v1.14.0".into(),
            },
            platforms: vec!["linux/amd64".into()],
            render_inputs: crate::values::RenderInputs::default(),
            images: vec![ImageRecord {
                role: ImageRole::Velero,
                canonical_reference: "docker.io/velero/velero:v1.18.1".into(),
                digest: Digest::of(&manifest),
                media_type: OCI_MANIFEST,
                size: manifest.len() as u64,
                source: "docker.io/velero/velero:v1.18.1".into(),
                source_index: None,
                values_fields: vec![],
                signatures: vec![],
                signature: Signature::Unsigned,
                plugin: Default::default(),
            }],
            config_yaml: b"config".to_vec(),
            values_yaml: b"values".to_vec(),
            sbom_json: b"{}".to_vec(),
            inline_blobs: vec![manifest],
            // The layer twice, as two images sharing it would list it.
            blobs: vec![blob(LAYER), blob(CONFIG), blob(LAYER)],
            source_date_epoch: None,
        }
    }

    #[test]
    fn lays_entries_out_back_to_back_in_order() {
        let layout = plan().lay_out().unwrap();
        let names: Vec<&str> = layout.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names[..7], LEADING_ENTRIES);
        assert_eq!(names.len(), 10, "three distinct blobs");
        assert!(names[7..].is_sorted());
        let mut offset = 0;
        for entry in &layout.entries {
            assert_eq!(entry.offset, offset);
            offset += entry_span(entry.size);
            let inline = matches!(entry.content, Content::Inline(_));
            assert_eq!(
                inline,
                entry.name != blob_entry_name(&blob(LAYER).digest)
                    && entry.name != blob_entry_name(&blob(CONFIG).digest)
            );
        }
        assert_eq!(layout.archive_size, offset + 1024);
        assert_eq!(layout.mtime, 0);
        assert!(layout.manifest.build_time.is_none());
        let image = &layout.manifest.images[0];
        assert_eq!(image.manifests.len(), 1);
        assert_eq!(image.total_size, image.image.size + 2 + 5);
    }

    #[test]
    fn sums_cover_everything_but_themselves() {
        let layout = plan().lay_out().unwrap();
        let Content::Inline(sums) = &layout.entries[1].content else {
            panic!("SHA256SUMS is inline");
        };
        let listed: Vec<String> = crate::bundle::layout::parse_sums(sums)
            .unwrap()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let others: Vec<String> = layout
            .entries
            .iter()
            .filter(|e| e.name != SHA256SUMS)
            .map(|e| e.name.clone())
            .collect();
        assert_eq!(listed, others);
    }

    #[test]
    fn source_date_epoch_sets_mtime_and_build_time() {
        let mut plan = plan();
        plan.source_date_epoch = Some(86_400);
        let layout = plan.lay_out().unwrap();
        assert_eq!(layout.mtime, 86_400);
        assert_eq!(
            layout.manifest.build_time.as_deref(),
            Some("1970-01-02T00:00:00Z")
        );
    }

    #[test]
    fn refuses_conflicting_sizes_and_unreferenced_blobs() {
        let mut conflicting = plan();
        conflicting.blobs.push(BlobRef {
            size: 6,
            ..blob(LAYER)
        });
        assert!(matches!(
            conflicting.lay_out(),
            Err(PlanError::BlobSizeConflict { .. })
        ));

        let mut extra = plan();
        extra.blobs.push(blob(b"nobody's"));
        match extra.lay_out() {
            Err(PlanError::Inconsistent { problems }) => {
                assert_eq!(problems.len(), 1);
                assert_eq!(problems[0].kind, ProblemKind::Unreferenced);
            }
            other => panic!("expected Inconsistent, got {other:?}"),
        }
    }
}
