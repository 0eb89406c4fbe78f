//! `velero-airgap unpack`: verify, load into one target, write the values.

use super::progress::{Progress, human_bytes};
use super::settings;
use super::{ExitStatus, Output};
use crate::cli::UnpackArgs;
use velero_airgap::ErrorKind;
use velero_airgap::bundle::PassEvent;
use velero_airgap::registry::RegistryError;
use velero_airgap::unpack::{self, Event, UnpackError};

/// Runs `unpack`.
pub fn run(args: UnpackArgs, output: Output) -> anyhow::Result<ExitStatus> {
    let request = settings::unpack_request(&args)?;
    let progress = Progress::new(output, args.json, "verifying");
    let on_event = |event| draw(&progress, event);
    let started = std::time::Instant::now();
    let token = request.cancel.clone();
    let result = super::run_async(token, async {
        unpack::unpack(request, &on_event)
            .await
            .map_err(with_unpack_hints)
    });
    progress.finish();
    let summary = result?;
    let seconds = started.elapsed().as_secs_f64();
    for warning in &summary.warnings {
        progress.warn(warning);
    }
    if args.json {
        let mut report = serde_json::to_value(&summary)?;
        report["seconds"] = serde_json::json!((seconds * 1000.0).round() / 1000.0);
        super::write_output(None, format!("{report:#}\n").as_bytes())?;
    } else if summary.dry_run {
        // A dry run's whole point is its output: print it even with -q.
        let mut text = format!(
            "dry run: nothing was written\nwould load into {}:\n",
            summary.target
        );
        for image in &summary.images {
            text.push_str(&format!("  {}\n", image.canonical));
            for name in &image.target_references {
                text.push_str(&format!("    -> {name}\n"));
            }
        }
        text.push_str(&format!(
            "would write values for {} to {}\n",
            summary.values_address,
            args.values_out.display()
        ));
        for (name, value) in &summary.proxy_env {
            text.push_str(&format!(
                "  with {name}={value}
"
            ));
        }
        super::write_output(None, text.as_bytes())?;
    } else if !output.quiet && summary.nothing_to_do {
        note!(
            "{} already has every image: nothing to load",
            summary.target
        );
    } else if !output.quiet {
        note!(
            "loaded {} images into {}: {} blobs ({} loaded, {} already there, {} mounted), {} in {:.1} s",
            summary.images.len(),
            summary.target,
            summary.blobs,
            summary.blobs_loaded,
            summary.blobs_skipped,
            summary.blobs_mounted,
            human_bytes(summary.bytes),
            seconds,
        );
        if let Some(fingerprint) = &summary.bundle_key_fingerprint {
            note!("bundle signature verified with key {fingerprint}");
        }
        for image in &summary.images {
            if let Some(velero_airgap::sign::SignatureStatus::Verified { key_fingerprint }) =
                &image.signature
            {
                note!(
                    "signature of {} verified with key {key_fingerprint}",
                    image.canonical
                );
            }
        }
        note!(
            "wrote {} (images at {}){}",
            args.values_out.display(),
            summary.values_address,
            if settings::proxy_settings(&args.install).has_credentials() {
                "; it holds proxy credentials, so only its owner can read it (mode 0600)"
            } else {
                ""
            }
        );
    }
    Ok(ExitStatus::Success)
}

fn draw(progress: &Progress, event: Event) {
    if progress.silent() {
        return;
    }
    match event {
        Event::Verifying => progress.line("verifying the bundle".into()),
        Event::Pass(PassEvent::Started { file_size }) => progress.start(file_size, "verifying"),
        Event::Pass(PassEvent::Read { bytes }) => progress.advance(bytes),
        Event::Verified { sha256 } => progress.line(format!("verified (sha256 {sha256})")),
        Event::Loading {
            images,
            blobs,
            bytes,
        } => {
            progress.start(bytes, "loading");
            progress.line(format!(
                "loading {images} images: {blobs} blobs, {}",
                human_bytes(bytes)
            ));
        }
        Event::Progress { bytes } => progress.advance(bytes),
        Event::Image(image) => progress.line(format!("{} {}", image.action, image.canonical)),
    }
}

/// A failure of the registry target, worded with unpack's flags: the registry module's
/// own hints name build's (`--mirror`, `--insecure-registry`).
#[derive(Debug, thiserror::Error)]
pub enum TargetRegistryError {
    /// The registry could not be reached.
    #[error(
        "cannot reach registry {host} (for {reference}, {attempts} attempt(s)); check that it runs and that --registry is right"
    )]
    Unreachable {
        /// The registry host.
        host: String,
        /// The target reference.
        reference: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last connection failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The TLS handshake failed.
    #[error(
        "TLS handshake with registry {host} failed (add its CA with --ca-file, or pass --insecure for a plain-HTTP registry)"
    )]
    Tls {
        /// The registry host.
        host: String,
        /// The TLS failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl TargetRegistryError {
    /// Both are failures of the registry or the network.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Remote
    }
}

/// Rewords the registry errors whose hints name flags unpack does not have.
fn with_unpack_hints(error: UnpackError) -> anyhow::Error {
    match error {
        UnpackError::Registry(RegistryError::Network {
            host,
            reference,
            attempts,
            source,
        }) => TargetRegistryError::Unreachable {
            host,
            reference,
            attempts,
            source,
        }
        .into(),
        UnpackError::Registry(RegistryError::Tls { host, source }) => {
            TargetRegistryError::Tls { host, source }.into()
        }
        other => other.into(),
    }
}
