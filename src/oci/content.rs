//! Content held in memory (manifests, indexes, configs, signature payloads) together with
//! its descriptor.

use bytes::Bytes;

use super::{Descriptor, MediaType};

/// A descriptor together with the content's exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// What the bytes are.
    pub descriptor: Descriptor,
    /// The bytes, exactly as served (or, for a filtered index, as written by this tool).
    pub bytes: Bytes,
}

impl Content {
    /// Content of type `media_type`, its digest and size computed from `bytes`.
    pub fn new(media_type: MediaType, bytes: impl Into<Bytes>) -> Content {
        let bytes = bytes.into();
        Content {
            descriptor: Descriptor::of(media_type, &bytes),
            bytes,
        }
    }
}
