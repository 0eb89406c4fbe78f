//! The one model of OCI data the crate uses: digests, media types, descriptors, content
//! with its exact bytes, the parsed view of manifests and indexes, image configs and
//! platforms.
//!
//! Why our own types rather than `oci-spec`'s: a manifest's bytes are its identity (its
//! digest, and the signatures over it), so they are kept exactly as served and parsed only
//! into a read-only view of what they point to; `oci-spec`'s manifest types are meant to be
//! serialised back, which would change those bytes. Our [`Digest`] accepts only the form we
//! can store (`sha256:` + 64 lowercase hex digits, because digests become file names), where
//! `oci-spec`'s accepts any algorithm. And the registry transport is our own (see
//! [`crate::registry`]), so `oci-spec` would be a dependency for five small types.

mod config;
mod content;
mod descriptor;
mod digest;
mod manifest;
mod media_type;
mod platform;

pub use config::{ConfigError, ImageConfig, MAX_CONFIG_BYTES, numeric_non_root, runs_as_root};
pub use content::Content;
pub use descriptor::Descriptor;
pub(crate) use digest::bare_hex;
pub use digest::{Digest, DigestError};
pub use manifest::{Manifest, ManifestError, filter_index};
pub use media_type::{ManifestKind, MediaType, REF_NAME_ANNOTATION};
pub use platform::{Platform, PlatformError, PlatformSelection};
