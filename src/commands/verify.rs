//! `velero-airgap verify`: one streaming pass, the bundle signature and the stored image
//! signatures; every problem by entry name.

use velero_airgap::bundle::{BlobStore, SidecarStatus};
use velero_airgap::sign::SignatureStatus;
use velero_airgap::verify;

use super::progress::Progress;
use super::settings;
use super::{ExitStatus, Output};
use crate::cli::VerifyArgs;

/// Runs `verify`.
pub fn run(args: VerifyArgs, output: Output) -> anyhow::Result<ExitStatus> {
    let options = settings::verify_options(&args)?;
    let progress = Progress::new(output, args.json, "verifying");
    let verification = verify::verify(&args.bundle, &options, progress.pass());
    progress.finish();
    let verification = verification?;
    let report = &verification.report;
    let mut signatures = verification.signatures.clone();
    if let Some(content) = verification.content.as_ref().filter(|_| report.is_ok())
        && verify::checks_images(&options.signatures)
    {
        let store = BlobStore::open(&args.bundle, report.compression, &std::env::temp_dir())?;
        signatures.images = verify::check_image_signatures(content, &store, &options.signatures)?;
    }
    if args.json {
        let mut json = serde_json::to_value(report)?;
        json["signatures"] = serde_json::to_value(&signatures)?;
        let json = serde_json::to_string_pretty(&json)?;
        super::write_output(None, format!("{json}\n").as_bytes())?;
    } else {
        let name = args.bundle.display();
        for problem in &report.problems {
            note!("{name}: {problem}");
        }
        if !output.quiet {
            for warning in &report.warnings {
                note!("{name}: warning: {warning}");
            }
        }
        if !output.quiet && report.is_ok() {
            let sidecar = match report.sidecar {
                SidecarStatus::Matched => "sidecar checksum matched",
                SidecarStatus::Absent => "no sidecar checksum beside it",
                SidecarStatus::Mismatched | SidecarStatus::Unreadable => "sidecar problem",
            };
            note!(
                "{name}: ok ({} images, {} blobs, {sidecar})",
                report.images,
                report.blobs
            );
            if let Some(sha256) = &report.sha256 {
                note!("sha256 {}", sha256.hex());
            }
            if options.plugins {
                note!("plugin reports and SBOM derived again from the bundled layers: identical");
            }
            if let Some(fingerprint) = &signatures.bundle_key_fingerprint {
                note!("bundle signature verified with key {fingerprint}");
            }
            for (image, status) in &signatures.images {
                match status {
                    SignatureStatus::Verified { key_fingerprint } => {
                        note!("signature of {image} verified with key {key_fingerprint}");
                    }
                    SignatureStatus::Unsigned => note!("warning: {image} is unsigned"),
                }
            }
        } else if !report.is_ok() {
            note!(
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
