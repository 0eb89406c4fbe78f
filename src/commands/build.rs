//! `velero-airgap build`: resolve, pull and write the bundle, drawing the
//! library's progress events as indicatif bars on a terminal and as plain lines
//! elsewhere.

use super::{ExitStatus, Output};
use crate::cli::{BuildArgs, RegistryArgs, SignatureArgs};
use crate::commands::progress::{Progress, human_bytes};
use crate::commands::render::proxy_settings;
use std::time::Instant;
use velero_airgap::build::{self, BuildRequest, Event};
use velero_airgap::registry::{Mirror, PlatformSelection, RegistryOptions};
use velero_airgap::release;
use velero_airgap::sign::{KeySet, SignaturePolicy, SigningKey};

/// The signature flags as a policy (keys loaded now, so a bad key fails first).
pub fn signature_policy(args: &SignatureArgs) -> anyhow::Result<SignaturePolicy> {
    Ok(SignaturePolicy {
        keys: if args.verify_key.is_empty() {
            None
        } else {
            Some(KeySet::load(&args.verify_key)?)
        },
        require_all: args.require_signatures,
        require: args.require_signature.clone(),
        ignore_identity: args.ignore_signature_identity,
    })
}

/// The registry flags as library options.
pub fn registry_options(args: &RegistryArgs) -> anyhow::Result<RegistryOptions> {
    Ok(RegistryOptions {
        mirrors: args
            .mirror
            .iter()
            .map(|m| Mirror::parse(m))
            .collect::<Result<_, _>>()?,
        insecure: args.insecure_registry.clone(),
        ca_files: args.ca_file.clone(),
        docker_config: args.docker_config.clone(),
        retries: args.retries,
    })
}

/// Runs `build`.
pub fn run(args: BuildArgs, output: Output) -> anyhow::Result<ExitStatus> {
    let request = BuildRequest {
        config: args.config.config.clone(),
        release: release::select(args.config.velero_version.as_deref())?,
        proxy: proxy_settings(&args.install),
        host_ca_bundle: args.install.host_ca_bundle.clone(),
        platforms: PlatformSelection::parse(&args.platform)?,
        registry: registry_options(&args.registry)?,
        jobs: args.registry.jobs.max(1),
        cache_dir: args.cache_dir.clone(),
        allow_secrets: args.allow_secrets,
        output: args.output.clone(),
        cancel: Default::default(),
        signatures: signature_policy(&args.signatures)?,
        sign_key: match &args.sign_key {
            Some(path) => {
                let passphrase = match &args.sign_key_pass_env {
                    Some(var) => Some(std::env::var(var).map_err(|_| {
                        anyhow::anyhow!("--sign-key-pass-env {var}: the variable is not set")
                    })?),
                    None => None,
                };
                Some(SigningKey::load(path, passphrase.as_deref())?)
            }
            None => None,
        },
    };
    let progress = Progress::new(output, args.json, "resolving");
    let started = Instant::now();
    let on_event = |event| draw(&progress, event);
    let token = request.cancel.clone();
    let summary = super::run_async(token, async { Ok(build::build(request, &on_event).await?) });
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
            eprintln!("signed {} with key {fingerprint}", path.display());
        }
        eprintln!(
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

/// Draws build events.
fn draw(progress: &Progress, event: Event) {
    if let Event::Warning(text) = &event {
        progress.warn(text);
        return;
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
        Event::Planned {
            images,
            blobs,
            bytes,
            cached,
        } => {
            progress.start(bytes, "pulling");
            progress.line(format!(
                "pulling {images} images: {blobs} blobs, {} ({cached} cached)",
                human_bytes(bytes)
            ));
        }
        Event::BlobProgress { bytes } => progress.advance(bytes),
        Event::ImagePulled { reference } => progress.line(format!("pulled {reference}")),
        Event::Warning(_) => {}
        Event::Finishing => {
            progress.message("writing");
            progress.line("writing bundle".to_string());
        }
    }
}
