//! `--audit-log FILE`: one JSON line per image loaded (time, bundle sha256,
//! canonical and target references, digest, target, action, the run's warnings (the
//! bundled config's privilege and secret findings among them), result), appended,
//! so security reviewers have a record of what was loaded where. Nothing
//! secret is written: credentials never reach these records.

use super::UnpackSummary;
use crate::files::{self, FileError};
use std::path::Path;

fn now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::bundle::manifest::rfc3339_utc(seconds)
}

fn append(path: &Path, lines: &[serde_json::Value]) -> Result<(), FileError> {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.to_string());
        text.push('\n');
    }
    files::append_to_log(path, text.as_bytes())
}

/// Records every image of a successful run.
pub(crate) fn success(path: &Path, summary: &UnpackSummary) -> Result<(), FileError> {
    let time = now();
    let lines: Vec<_> = summary
        .images
        .iter()
        .map(|image| {
            serde_json::json!({
                "time": time,
                "bundleSha256": summary.bundle_sha256,
                "target": summary.target,
                "canonicalReference": image.canonical,
                "targetReferences": image.target_references,
                "digest": image.digest,
                "action": image.action,
                "signature": image.signature,
                "bundleKeyFingerprint": summary.bundle_key_fingerprint,
                "warnings": summary.warnings,
                "result": "ok",
            })
        })
        .collect();
    append(path, &lines)
}

/// Records a failed run. Best effort: the run's own error is what the user
/// needs to see.
pub(crate) fn failure(path: &Path, bundle_sha256: &str, target: &str, error: &str) {
    let line = serde_json::json!({
        "time": now(),
        "bundleSha256": (!bundle_sha256.is_empty()).then_some(bundle_sha256),
        "target": target,
        "result": "failed",
        "error": error,
    });
    let _ = append(path, &[line]);
}
