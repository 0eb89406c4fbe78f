//! `velero-airgap verify`: one streaming pass; every problem by entry name.

use super::{ExitStatus, Output};
use crate::cli::VerifyArgs;
use velero_airgap::bundle::{self, SidecarStatus};

/// Runs `verify`.
pub fn run(args: VerifyArgs, output: Output) -> anyhow::Result<ExitStatus> {
    let report = bundle::verify(&args.bundle)?;
    if args.json {
        let json = serde_json::to_string_pretty(&report)?;
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
