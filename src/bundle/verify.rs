//! `verify`: one streaming pass over a bundle that hashes the whole file (for the
//! sidecar) and every entry at the same time, and reports every problem by entry.

use std::collections::HashMap;
use std::path::Path;

use super::input::PassProgress;
use super::manifest::BundleManifest;
use super::reader::{BundleReader, Opened, ReadError};
use super::report::{VerifyReport, conclude};
use crate::oci::Digest;

/// Verifies a bundle in one pass. `Err` only when the file cannot be opened; every
/// problem of its content is in the report.
pub fn verify(path: &Path) -> Result<VerifyReport, ReadError> {
    Ok(verify_keeping(path, None)?.0)
}

/// What a verification pass read and found good, kept so that a caller acts on
/// exactly the bytes that were verified rather than reading the file again.
#[derive(Debug, Clone)]
pub struct VerifiedContent {
    /// `bundle.json`.
    pub manifest: BundleManifest,
    pub config_yaml: Vec<u8>,
    pub values_yaml: Vec<u8>,
    /// `sbom.cdx.json`; `None` for a format 1 bundle.
    pub sbom_json: Option<Vec<u8>>,
    /// Every manifest, index and signature manifest blob, by digest.
    pub manifests: HashMap<Digest, Vec<u8>>,
}

/// Like [`verify`], also returning the verified leading entries and manifests
/// when the bundle is good; `progress` hears how far the pass is.
pub fn verify_keeping(
    path: &Path,
    progress: Option<PassProgress>,
) -> Result<(VerifyReport, Option<VerifiedContent>), ReadError> {
    Ok(match BundleReader::start(path, progress)? {
        Opened::Ready(mut reader) => {
            while reader.next_blob().is_some() {}
            let content = VerifiedContent {
                manifest: reader.bundle().clone(),
                config_yaml: reader.config_yaml().to_vec(),
                values_yaml: reader.values_yaml().to_vec(),
                sbom_json: reader.sbom_json().map(<[u8]>::to_vec),
                manifests: reader.captured_manifests().clone(),
            };
            let report = reader.finish();
            let content = report.is_ok().then_some(content);
            (report, content)
        }
        Opened::Unusable(unusable) => (conclude(*unusable, false, 0, 0), None),
    })
}
