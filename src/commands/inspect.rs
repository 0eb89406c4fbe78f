//! `velero-airgap inspect`: what a bundle holds, from its leading entries.

use super::{ExitStatus, Output};
use crate::cli::InspectArgs;
use crate::commands::progress::human_bytes;
use velero_airgap::bundle::{self, ImageSummary};
use velero_airgap::sign::SignatureStatus;
use velero_airgap::values::Role;

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
    text.push_str(&plugin_table(&summary.images));
    super::write_output(None, text.as_bytes())?;
    Ok(ExitStatus::Success)
}

/// One row per binary a plugin image installs (per platform), its findings below it.
fn plugin_table(images: &[ImageSummary]) -> String {
    const HEADER: [&str; 9] = [
        "PLUGIN", "PLATFORM", "BINARY", "ARCH", "STATIC", "GO", "VELERO", "USER", "FINDINGS",
    ];
    let mut rows: Vec<[String; 9]> = Vec::new();
    let mut notes: Vec<Vec<String>> = Vec::new();
    for image in images {
        let name = match &image.role {
            Role::Plugin(name) => name.clone(),
            other => other.to_string(),
        };
        for report in image.plugin.values() {
            let dash = || "-".to_string();
            let user = report.user.clone().unwrap_or_else(|| "(root)".into());
            let counts = finding_counts(report);
            let findings: Vec<String> = report
                .findings
                .iter()
                .map(|f| format!("{}: {}", f.severity, f.message))
                .collect();
            if report.binaries.is_empty() {
                rows.push([
                    name.clone(),
                    report.platform.clone(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    user,
                    counts,
                ]);
                notes.push(findings);
                continue;
            }
            for (index, binary) in report.binaries.iter().enumerate() {
                let first = index == 0;
                rows.push([
                    name.clone(),
                    report.platform.clone(),
                    binary.target.clone(),
                    binary.architecture.clone().unwrap_or_else(dash),
                    binary
                        .is_static
                        .map_or_else(dash, |s| if s { "yes" } else { "no" }.into()),
                    binary.go_version.clone().unwrap_or_else(dash),
                    binary.velero_version.clone().unwrap_or_else(dash),
                    user.clone(),
                    if first { counts.clone() } else { String::new() },
                ]);
                notes.push(if first { findings.clone() } else { Vec::new() });
            }
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("  {}\n", padded.join("  ").trim_end())
    };
    let mut text = String::from("plugins:\n");
    text.push_str(&line(&HEADER.map(String::from)));
    for (row, findings) in rows.iter().zip(notes) {
        text.push_str(&line(row));
        for finding in findings {
            text.push_str(&format!("    {finding}\n"));
        }
    }
    text
}

/// `1 error, 2 notes`, or `-`.
fn finding_counts(report: &velero_airgap::plugin::PluginReport) -> String {
    use velero_airgap::plugin::Severity;
    let parts: Vec<String> = [
        (Severity::Error, "error"),
        (Severity::Warning, "warning"),
        (Severity::Note, "note"),
    ]
    .into_iter()
    .filter_map(|(severity, word)| {
        let count = report
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .count();
        (count > 0).then(|| format!("{count} {word}{}", if count == 1 { "" } else { "s" }))
    })
    .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}
