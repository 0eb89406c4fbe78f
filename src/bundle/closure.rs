//! Manifest closure: from an image's root manifest, every blob it reaches must be in the
//! bundle with the size its parent declares. The writer runs this over the plan before
//! writing; the reader runs it over the manifests it kept in memory.

use std::collections::BTreeSet;

use super::layout::{BUNDLE_JSON, blob_entry_name};
use super::manifest::ImageRecord;
use super::problem::{Problem, ProblemKind};
use crate::oci::{Descriptor, Digest, Manifest, MediaType};

/// Where the walk looks blobs up.
pub(crate) trait BlobSource {
    /// Size of the blob, if the bundle holds it.
    fn size(&self, digest: &Digest) -> Option<u64>;
    /// Content of a manifest blob, if it is at hand.
    fn manifest(&self, digest: &Digest) -> Option<&[u8]>;
}

/// What one image reaches.
#[derive(Debug, Default)]
pub(crate) struct Closure {
    /// Manifest and index blobs in walk order (depth first, root first).
    pub(crate) manifests: Vec<Descriptor>,
    /// Every blob reached, the source index included.
    pub(crate) blobs: BTreeSet<Digest>,
    /// Sum of the sizes of `blobs`.
    pub(crate) total_size: u64,
}

/// One pending step of the walk: a descriptor and who referenced it.
struct Step {
    referrer: String,
    context: String,
    descriptor: Descriptor,
}

/// Walks one image, appending a problem for every broken reference.
pub(crate) fn image_closure(
    image: &ImageRecord,
    source: &impl BlobSource,
    problems: &mut Vec<Problem>,
) -> Closure {
    let mut closure = Closure::default();
    let image_context = format!("image {} ", image.canonical_reference);
    if image.media_type.manifest_kind().is_none() {
        problems.push(Problem::new(
            BUNDLE_JSON,
            ProblemKind::Inconsistent(format!(
                "{image_context}has media type {}, which is neither a manifest nor an index",
                image.media_type
            )),
        ));
    }
    // Blobs kept beside the image but not walked: the source index (its other
    // children are not in the bundle) and cosign signature manifests and payloads.
    let mut keep = |what: &str, blob: &Descriptor, at_hand: bool| {
        let context = format!("{image_context}{what} ");
        if check_present(
            BUNDLE_JSON,
            &context,
            &blob.digest,
            blob.size,
            source,
            problems,
        ) && closure.blobs.insert(blob.digest)
        {
            closure.total_size += blob.size;
            if at_hand && source.manifest(&blob.digest).is_none() {
                problems.push(not_at_hand(&blob.digest, &blob.media_type));
            }
        }
    };
    if let Some(index) = &image.source_index {
        keep("source index", index, true);
    }
    for signature in &image.signatures {
        keep("signature manifest", &signature.manifest, true);
        for payload in &signature.payloads {
            keep("signature payload", payload, false);
        }
    }
    let mut stack = vec![Step {
        referrer: BUNDLE_JSON.to_owned(),
        context: image_context,
        descriptor: Descriptor::new(image.media_type.clone(), image.digest, image.size),
    }];
    while let Some(step) = stack.pop() {
        let Step {
            referrer,
            context,
            descriptor,
        } = step;
        let digest = descriptor.digest;
        if !check_present(
            &referrer,
            &context,
            &digest,
            descriptor.size,
            source,
            problems,
        ) || !closure.blobs.insert(digest)
        {
            continue;
        }
        closure.total_size += descriptor.size;
        if descriptor.media_type.manifest_kind().is_none() {
            continue;
        }
        closure.manifests.push(Descriptor::new(
            descriptor.media_type.clone(),
            digest,
            descriptor.size,
        ));
        let Some(content) = source.manifest(&digest) else {
            problems.push(not_at_hand(&digest, &descriptor.media_type));
            continue;
        };
        let name = blob_entry_name(&digest);
        match children(content, &descriptor.media_type) {
            Ok(children) => {
                // Reversed so the walk visits children in manifest order.
                stack.extend(children.into_iter().rev().map(|child| Step {
                    referrer: name.clone(),
                    context: String::new(),
                    descriptor: Descriptor::new(child.media_type, child.digest, child.size),
                }));
            }
            Err(message) => problems.push(Problem::new(name, ProblemKind::Malformed(message))),
        }
    }
    closure
}

/// Checks that a referenced blob exists with the declared size.
fn check_present(
    referrer: &str,
    context: &str,
    digest: &Digest,
    declared: u64,
    source: &impl BlobSource,
    problems: &mut Vec<Problem>,
) -> bool {
    match source.size(digest) {
        None => {
            problems.push(Problem::new(
                referrer,
                ProblemKind::Inconsistent(format!(
                    "{context}references {digest}, which is not in the bundle"
                )),
            ));
            false
        }
        Some(actual) if actual != declared => {
            problems.push(Problem::new(
                referrer,
                ProblemKind::Inconsistent(format!(
                    "{context}declares {declared} bytes for {digest}, the bundle holds {actual}"
                )),
            ));
            false
        }
        Some(_) => true,
    }
}

fn not_at_hand(digest: &Digest, media_type: &MediaType) -> Problem {
    Problem::new(
        blob_entry_name(digest),
        ProblemKind::Inconsistent(format!(
            "is a manifest ({media_type}) that bundle.json does not list among the image's manifests"
        )),
    )
}

/// The descriptors a manifest or index refers to, after checking that its own media type
/// is the one it is referenced as.
fn children(content: &[u8], media_type: &MediaType) -> Result<Vec<Descriptor>, String> {
    let (own_type, manifest) = Manifest::parse(content).map_err(|error| error.to_string())?;
    if own_type != *media_type {
        return Err(format!(
            "has media type {own_type}, but is referenced as {media_type}"
        ));
    }
    Ok(manifest.children().into_iter().cloned().collect())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::sign::SignatureStatus as Signature;
    const OCI_INDEX: MediaType = MediaType::OCI_INDEX;
    const OCI_MANIFEST: MediaType = MediaType::OCI_MANIFEST;
    use crate::values::Role as ImageRole;

    #[derive(Default)]
    struct Blobs(HashMap<Digest, (u64, Option<Vec<u8>>)>);

    impl Blobs {
        fn add(&mut self, content: &[u8], keep: bool) -> Digest {
            let digest = Digest::of(content);
            self.0.insert(
                digest,
                (content.len() as u64, keep.then(|| content.to_vec())),
            );
            digest
        }
    }

    impl BlobSource for Blobs {
        fn size(&self, digest: &Digest) -> Option<u64> {
            self.0.get(digest).map(|(size, _)| *size)
        }
        fn manifest(&self, digest: &Digest) -> Option<&[u8]> {
            self.0
                .get(digest)
                .and_then(|(_, content)| content.as_deref())
        }
    }

    fn descriptor(media_type: impl std::fmt::Display, digest: &Digest, size: usize) -> String {
        format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}"#)
    }

    fn image(digest: Digest, media_type: MediaType, size: usize) -> ImageRecord {
        ImageRecord {
            role: ImageRole::Other,
            canonical_reference: "registry.example.com/x:1".into(),
            digest,
            media_type,
            size: size as u64,
            source: "registry.example.com/x:1".into(),
            source_index: None,
            values_fields: vec![],
            signatures: vec![],
            signature: Signature::Unsigned,
            plugin: Default::default(),
        }
    }

    /// An index over one image manifest with a config and a layer.
    fn sample(blobs: &mut Blobs) -> (Digest, usize, Digest) {
        let config = blobs.add(b"{}", false);
        let layer = blobs.add(b"layer bytes", false);
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[{}]}}"#,
            descriptor("application/vnd.oci.image.config.v1+json", &config, 2),
            descriptor("application/vnd.oci.image.layer.v1.tar", &layer, 11),
        );
        let manifest_digest = blobs.add(manifest.as_bytes(), true);
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            descriptor(OCI_MANIFEST, &manifest_digest, manifest.len())
        );
        (blobs.add(index.as_bytes(), true), index.len(), layer)
    }

    #[test]
    fn walks_index_manifest_config_and_layers() {
        let mut blobs = Blobs::default();
        let (index, index_size, layer) = sample(&mut blobs);
        let mut problems = Vec::new();
        let closure = image_closure(&image(index, OCI_INDEX, index_size), &blobs, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(closure.blobs.len(), 4);
        assert_eq!(closure.manifests.len(), 2);
        assert_eq!(closure.manifests[0].digest, index);
        assert!(closure.blobs.contains(&layer));
        let sizes: u64 = blobs.0.values().map(|(size, _)| size).sum();
        assert_eq!(closure.total_size, sizes);
    }

    #[test]
    fn names_the_manifest_with_a_missing_blob() {
        let mut blobs = Blobs::default();
        let (index, index_size, layer) = sample(&mut blobs);
        blobs.0.remove(&layer);
        let mut problems = Vec::new();
        image_closure(&image(index, OCI_INDEX, index_size), &blobs, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].entry.starts_with("blobs/sha256/"));
        assert!(problems[0].to_string().contains(&layer.to_string()));
    }

    #[test]
    fn reports_wrong_sizes_types_and_unknown_algorithms() {
        let mut blobs = Blobs::default();
        let (index, index_size, _) = sample(&mut blobs);
        let mut problems = Vec::new();
        image_closure(
            &image(index, OCI_INDEX, index_size + 1),
            &blobs,
            &mut problems,
        );
        assert!(problems[0].to_string().contains("declares"), "{problems:?}");

        problems.clear();
        image_closure(
            &image(index, OCI_MANIFEST, index_size),
            &blobs,
            &mut problems,
        );
        assert!(
            problems[0].to_string().contains("referenced as"),
            "{problems:?}"
        );

        let odd = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"sha512:00","size":1}}]}}"#
        );
        let odd_digest = blobs.add(odd.as_bytes(), true);
        problems.clear();
        image_closure(
            &image(odd_digest, OCI_INDEX, odd.len()),
            &blobs,
            &mut problems,
        );
        assert!(
            problems[0]
                .to_string()
                .contains("\"sha512\" is not supported"),
            "{problems:?}"
        );
    }

    #[test]
    fn source_index_is_kept_not_walked() {
        let mut blobs = Blobs::default();
        let (index, index_size, _) = sample(&mut blobs);
        let missing_child = format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            descriptor(OCI_MANIFEST, &Digest::of(b"elsewhere"), 5)
        );
        let source_index = blobs.add(missing_child.as_bytes(), true);
        let mut record = image(index, OCI_INDEX, index_size);
        record.source_index = Some(Descriptor::new(
            OCI_INDEX,
            source_index,
            missing_child.len() as u64,
        ));
        let mut problems = Vec::new();
        let closure = image_closure(&record, &blobs, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(closure.blobs.contains(&source_index));
        assert!(!closure.manifests.iter().any(|m| m.digest == source_index));
    }

    #[test]
    fn manifest_without_content_is_reported() {
        let mut blobs = Blobs::default();
        let (index, index_size, _) = sample(&mut blobs);
        blobs.0.get_mut(&index).unwrap().1 = None;
        let mut problems = Vec::new();
        image_closure(&image(index, OCI_INDEX, index_size), &blobs, &mut problems);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].to_string().contains("does not list"));
    }
}
