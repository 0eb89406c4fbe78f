//! The bundle file: layout, writer, streaming reader and verification.
//!
//! A bundle is a tar archive whose root is an OCI image layout plus our own files, in a
//! fixed order (see `bundle-spec/README.md`). [`BundleWriter`] lays it out in advance
//! and fills blobs in place; [`BundleReader`] streams it back once, hashing everything,
//! and treats it as hostile input; [`verify()`] and [`inspect()`] are built on it.

mod closure;
mod follow;
mod index_json;
mod input;
mod inspect;
mod layout;
mod leading;
pub(crate) mod manifest;
mod plan;
mod problem;
mod reader;
mod report;
mod slots;
mod store;
mod ustar;
mod verify;
mod writer;

pub use input::{PassEvent, PassProgress};
pub use inspect::{BundleSummary, ImageSummary, Reader, inspect, read_command, skopeo_reads};
pub use layout::{
    BUNDLE_JSON, CONFIG_YAML, Compression, INDEX_JSON, LEADING_ENTRIES, OCI_LAYOUT, SBOM_JSON,
    SHA256SUMS, SumsError, VALUES_YAML, blob_entry_name, sidecar_path, signature_path,
};
pub use manifest::{
    BlobCount, BundleManifest, BundledImage, FORMAT_VERSION, FileRecord, ImageRecord,
    ManifestError, READABLE_VERSIONS, Tool, VeleroInfo,
};
pub use plan::{BlobRef, BundlePlan, PlanError, source_date_epoch_from_env};
pub use problem::{Problem, ProblemKind, Refusal, join};
pub use reader::{BlobEntry, BundleReader, ReadError};
pub use report::{SidecarStatus, VerifyReport};
pub use store::BlobStore;
pub use verify::{VerifiedContent, verify, verify_keeping};
pub use writer::{AbortHandle, BlobSlot, BundleWriter, SlotCheck, WriteError, WrittenBundle};
