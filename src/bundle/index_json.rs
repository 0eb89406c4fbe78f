//! The bundle's `index.json`: the OCI layout's index, naming each image by its canonical
//! reference so `skopeo` and `ctr images import` find them by name.

use std::collections::BTreeMap;

use serde::Serialize;

use super::manifest::BundledImage;
use crate::oci::{Descriptor, MediaType, REF_NAME_ANNOTATION};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: MediaType,
    manifests: Vec<Descriptor>,
}

/// The bytes of `index.json` for these images: each listed once, in `bundle.json` order,
/// named by its canonical reference. Compact JSON, so equal inputs give equal bytes.
pub(crate) fn index_json(images: &[BundledImage]) -> Vec<u8> {
    let index = Index {
        schema_version: 2,
        media_type: MediaType::OCI_INDEX,
        manifests: images.iter().map(index_entry).collect(),
    };
    // Serialising plain strings and numbers into a Vec cannot fail.
    serde_json::to_vec(&index).unwrap_or_default()
}

/// The `index.json` entry `bundle.json` implies for one image.
pub(crate) fn index_entry(bundled: &BundledImage) -> Descriptor {
    let image = &bundled.image;
    Descriptor {
        annotations: BTreeMap::from([(
            REF_NAME_ANNOTATION.to_owned(),
            image.canonical_reference.clone(),
        )]),
        ..Descriptor::new(image.media_type.clone(), image.digest, image.size)
    }
}
