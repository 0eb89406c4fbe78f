//! Knowing what breaks Velero before it is shipped: the plugin images are inspected so
//! that a build refuses images that would break the Velero pod on the offline site. The
//! entrypoint must copy static binaries for the image's architecture into `/target`,
//! which Velero's server container runs from `/plugins`; the binaries' Go build
//! information says which Velero they were built for; plugins must not collide.
//!
//! Everything works on streams: a layer's tar stream is read once ([`scan_layer`]),
//! on its own and in any order; the layers of an image are then applied in manifest
//! order ([`Filesystem`]) and checked ([`check_deployment`]). Memory is bounded for any
//! input; the caps are the `MAX_*` constants of the submodules.

mod checks;
mod deployment;
mod elf;
mod entrypoint;
mod filesystem;
mod glob;
mod gobuild;
mod inspect;
mod layer;
mod report;

#[cfg(test)]
mod test_support;

pub use deployment::{
    DeploymentImage, ImageFacts, Judgement, ManifestPrograms, PlatformManifest, ReadBlobs,
    check_deployment,
};
pub use filesystem::ApplyError;
pub use gobuild::{GoBuildInfo, Module};
pub use inspect::NOT_A_PLUGIN_MESSAGE;
pub use layer::{LayerChanges, LayerError, scan_layer};
pub use report::{BinaryReport, Finding, PluginReport, Severity, codes};

use crate::oci::ConfigError;

use crate::oci::Digest;

/// Why an image could not be inspected at all (as opposed to a [`Finding`] about it).
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{reference}: config {digest} cannot be used")]
    Config {
        reference: String,
        digest: Digest,
        #[source]
        source: ConfigError,
    },
    #[error("{reference}: layer {digest} cannot be read")]
    Layer {
        reference: String,
        digest: Digest,
        #[source]
        source: LayerError,
    },
    #[error("{reference}: the layers of manifest {manifest} cannot be applied")]
    Apply {
        reference: String,
        manifest: Digest,
        #[source]
        source: ApplyError,
    },
    #[error("{reference}: blob {digest} was not read")]
    NotRead { reference: String, digest: Digest },
    #[error(
        "the image layers hold more files than the checks keep track of ({limit} bytes of paths and analysis results)"
    )]
    TooManyFiles { limit: usize },
}
