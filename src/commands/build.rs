//! `velero-airgap build`: resolve, pull and write the bundle, drawing the library's
//! progress events as indicatif bars on a terminal and as plain lines elsewhere.

use std::time::Instant;

use velero_airgap::pack::{self, Event};

use super::progress::{Progress, human_bytes};
use super::settings;
use super::{ExitStatus, Output};
use crate::cli::BuildArgs;

/// Runs `build`.
pub fn run(args: BuildArgs, output: Output) -> anyhow::Result<ExitStatus> {
    let request = settings::pack_request(&args)?;
    let progress = Progress::new(output, args.json, "resolving");
    let started = Instant::now();
    let on_event = |event| draw(&progress, event);
    let token = request.cancel.clone();
    let summary = super::run_async(token, async { Ok(pack::pack(request, &on_event).await?) });
    progress.finish();
    let summary = summary?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let mut report = serde_json::to_value(&summary)?;
        report["seconds"] = serde_json::json!((seconds * 1000.0).round() / 1000.0);
        super::write_output(None, format!("{report:#}\n").as_bytes())?;
    } else if !output.quiet {
        if let (Some(path), Some(fingerprint)) =
            (&summary.bundle_signature, &summary.bundle_key_fingerprint)
        {
            note!("signed {} with key {fingerprint}", path.display());
        }
        note!(
            "wrote {}: {} images, {} blobs ({} fetched, {} from cache), {} in {:.1} s\nsha256 {}",
            summary.bundle.display(),
            summary.images,
            summary.blobs,
            summary.blobs_fetched,
            summary.blobs_cached,
            human_bytes(summary.bytes),
            seconds,
            summary.sha256,
        );
    }
    Ok(ExitStatus::Success)
}

/// Draws pack events.
fn draw(progress: &Progress, event: Event) {
    match &event {
        Event::Warning(text) => return progress.warn(text),
        Event::PluginFinding { subject, finding } => {
            return progress.notice(
                &finding.severity.to_string(),
                &format!("{subject}: {}", finding.message),
            );
        }
        _ => {}
    }
    if progress.silent() {
        return;
    }
    match event {
        Event::Resolved {
            reference,
            digest,
            blobs,
            bytes,
        } => progress.line(format!(
            "resolved {reference} ({digest}, {blobs} blobs, {})",
            human_bytes(bytes)
        )),
        Event::Inspecting {
            images,
            layers,
            bytes,
        } => {
            progress.start(bytes, "inspecting");
            progress.line(format!(
                "reading {images} plugin and Velero images for the plugin checks: {layers} layers, {}",
                human_bytes(bytes)
            ));
        }
        Event::Planned {
            images,
            blobs,
            bytes,
            written,
            cached,
        } => {
            progress.start(bytes, "pulling");
            progress.advance(written);
            progress.line(format!(
                "pulling {images} images: {blobs} blobs, {} ({cached} cached)",
                human_bytes(bytes)
            ));
        }
        Event::BlobProgress { bytes } => progress.advance(bytes),
        Event::ImagePulled { reference } => progress.line(format!("pulled {reference}")),
        Event::Warning(_) | Event::PluginFinding { .. } => {}
        Event::Finishing => {
            progress.message("writing");
            progress.line("writing bundle".to_string());
        }
    }
}
