//! `velero-airgap verify`: one streaming pass; every problem by entry name.

use super::{ExitStatus, Output};
use crate::cli::VerifyArgs;
use crate::commands::build::signature_policy;
use velero_airgap::bundle::{self, SidecarStatus};
use velero_airgap::sign::{KeySet, SignatureStatus};
use velero_airgap::unpack::signatures::{
    SignatureReport, check_bundle_images, check_bundle_signature,
};

/// The `--bundle-key` keys, loaded.
pub fn bundle_keys(paths: &[std::path::PathBuf]) -> anyhow::Result<Option<KeySet>> {
    Ok(if paths.is_empty() {
        None
    } else {
        Some(KeySet::load(paths)?)
    })
}

/// Runs `verify`.
pub fn run(args: VerifyArgs, output: Output) -> anyhow::Result<ExitStatus> {
    let keys = bundle_keys(&args.bundle_key)?;
    let policy = signature_policy(&args.signatures)?;
    let (report, verified) = bundle::verify_keeping(&args.bundle)?;
    let mut signatures = SignatureReport::default();
    if let Some(verified) = verified.filter(|_| report.is_ok()) {
        if let (Some(keys), Some(sha256)) = (&keys, &report.sha256) {
            signatures.bundle_key_fingerprint =
                Some(check_bundle_signature(&args.bundle, sha256, keys)?);
        }
        if policy.checks() || policy.require_all || !policy.require.is_empty() {
            signatures.images =
                check_bundle_images(&args.bundle, report.compression, &verified, &policy)?;
        }
    }
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        json["signatures"] = serde_json::to_value(&signatures)?;
        let json = serde_json::to_string_pretty(&json)?;
        super::write_output(None, format!("{json}\n").as_bytes())?;
    } else {
        let name = args.bundle.display();
        for problem in &report.problems {
            eprintln!("{name}: {problem}");
        }
        if !output.quiet && report.is_ok() {
            let sidecar = match report.sidecar {
                SidecarStatus::Matched => "sidecar checksum matched",
                SidecarStatus::Absent => "no sidecar checksum beside it",
                SidecarStatus::Mismatched | SidecarStatus::Unreadable => "sidecar problem",
            };
            eprintln!(
                "{name}: ok ({} images, {} blobs, {sidecar})",
                report.images, report.blobs
            );
            if let Some(sha256) = &report.sha256 {
                eprintln!("sha256 {}", sha256.hex());
            }
            if let Some(fingerprint) = &signatures.bundle_key_fingerprint {
                eprintln!("bundle signature verified with key {fingerprint}");
            }
            for (image, status) in &signatures.images {
                match status {
                    SignatureStatus::Verified { key_fingerprint } => {
                        eprintln!("signature of {image} verified with key {key_fingerprint}")
                    }
                    SignatureStatus::Unsigned => eprintln!("warning: {image} is unsigned"),
                }
            }
        } else if !report.is_ok() {
            eprintln!(
                "{name}: {} problem(s); do not use this bundle",
                report.problems.len()
            );
        }
    }
    Ok(if report.is_ok() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
