//! The plugin checks' reports as a table, for `inspect` (from `bundle.json`) and
//! `validate --online` (from the registry).

use std::collections::BTreeMap;

use velero_airgap::oci::Digest;
use velero_airgap::plugin::{PluginReport, Severity};
use velero_airgap::values::Role;

/// One row per binary a plugin image installs (per platform), its findings below it.
pub fn plugin_table<'a>(
    images: impl IntoIterator<Item = (&'a Role, &'a BTreeMap<Digest, PluginReport>)>,
) -> String {
    const HEADER: [&str; 9] = [
        "PLUGIN", "PLATFORM", "BINARY", "ARCH", "STATIC", "GO", "VELERO", "USER", "FINDINGS",
    ];
    let mut rows: Vec<[String; 9]> = Vec::new();
    let mut notes: Vec<Vec<String>> = Vec::new();
    for (role, reports) in images {
        let name = match role {
            Role::Plugin(name) => name.clone(),
            other => other.to_string(),
        };
        for report in reports.values() {
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
fn finding_counts(report: &PluginReport) -> String {
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
