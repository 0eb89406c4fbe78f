//! `velero-airgap inspect`: what a bundle holds, from its leading entries.

use super::plugin_table::plugin_table;
use super::{ExitStatus, Output};
use crate::cli::InspectArgs;
use crate::commands::progress::human_bytes;
use velero_airgap::bundle;
use velero_airgap::sign::SignatureStatus;

/// Runs `inspect`.
pub fn run(args: InspectArgs, output: Output) -> anyhow::Result<ExitStatus> {
    let summary = bundle::inspect(&args.bundle)?;
    if args.sbom {
        let Some(sbom) = &summary.sbom_json else {
            anyhow::bail!(
                "{}: a bundle of format {} has no SBOM; rebuild it with this velero-airgap",
                args.bundle.display(),
                summary.format_version
            );
        };
        super::write_output(None, sbom)?;
        return Ok(ExitStatus::Success);
    }
    // What the leading entries already show is wrong (a file cut short): `verify` tells
    // the rest.
    if !output.quiet {
        for problem in &summary.problems {
            note!("warning: {problem}");
        }
    }
    if args.json {
        let json = serde_json::to_string_pretty(&summary)?;
        super::write_output(None, format!("{json}\n").as_bytes())?;
        return Ok(ExitStatus::Success);
    }
    let mut text = format!(
        "bundle:    {} ({}, compression: {})\nformat:    {} (written by {} {})\nvelero:    {} ({})\nplatforms: {}\n",
        summary.path.display(),
        human_bytes(summary.file_size),
        summary.compression,
        summary.format_version,
        summary.tool.name,
        summary.tool.version,
        summary.velero.release,
        summary.velero.image,
        summary.platforms.join(", "),
    );
    if let Some(time) = &summary.build_time {
        text.push_str(&format!("built:     {time}\n"));
    }
    text.push_str("images:\n");
    for image in &summary.images {
        let signature = match &image.signature {
            SignatureStatus::Unsigned => "unsigned".to_string(),
            SignatureStatus::Verified { key_fingerprint } => {
                format!("verified by {key_fingerprint}")
            }
        };
        let kind = match image.media_type.as_str() {
            "application/vnd.oci.image.manifest.v1+json" => "OCI manifest",
            "application/vnd.oci.image.index.v1+json" => "OCI index",
            "application/vnd.docker.distribution.manifest.v2+json" => "Docker v2s2 manifest",
            "application/vnd.docker.distribution.manifest.list.v2+json" => "Docker manifest list",
            other => other,
        };
        let note = match image.read_with {
            bundle::Reader::Skopeo => "",
            bundle::Reader::Ctr => " (skopeo cannot look it up; ctr loads every image)",
        };
        text.push_str(&format!(
            "  {:<32} {}\n    {}  {}  {}\n    {kind}{note}: {}\n",
            image.role.to_string(),
            image.canonical_reference,
            image.digest,
            human_bytes(image.size),
            signature,
            image.read_command,
        ));
    }
    text.push_str(&format!(
        "blobs:     {} ({})\ntotal:     {}\n",
        summary.blobs.blobs,
        human_bytes(summary.blobs.bytes),
        human_bytes(summary.content_size)
    ));
    text.push_str(&plugin_table(
        summary
            .images
            .iter()
            .map(|image| (&image.role, &image.plugin)),
    ));
    super::write_output(None, text.as_bytes())?;
    Ok(ExitStatus::Success)
}
