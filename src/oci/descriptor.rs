//! The OCI content descriptor: what a piece of content is, its digest and its size, plus
//! the platform and annotations an index entry may carry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Digest, MediaType, Platform};

/// A content descriptor, as in manifests, indexes, `index.json` and `bundle.json`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the content is.
    pub media_type: MediaType,
    pub digest: Digest,
    pub size: u64,
    /// The platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations (in `index.json`: the image's reference name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor without platform or annotations.
    pub fn new(media_type: MediaType, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type,
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The descriptor of `bytes`.
    pub fn of(media_type: MediaType, bytes: &[u8]) -> Descriptor {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }
}
