//! `velero-airgap render`: Velero's Helm values for a config.

use super::settings;
use super::{ExitStatus, Output};
use crate::cli::{Mode, RenderArgs};
use anyhow::Context;
use std::collections::BTreeMap;
use velero_airgap::config::ClusterConfig;
use velero_airgap::oci::Digest;
use velero_airgap::reference::Reference;
use velero_airgap::release;
use velero_airgap::validate::{self, Severity};
use velero_airgap::values::{self, RenderInput};

/// Runs `render`. A config with validation errors is refused: values rendered
/// from it would be wrong in ways the chart would not notice.
pub fn run(args: RenderArgs, output: Output) -> anyhow::Result<ExitStatus> {
    let release = release::select(args.config.velero_version.as_deref())?;
    let path = &args.config.config;
    let config = ClusterConfig::load(path)?;
    let options = validate::Options {
        release: release.clone(),
        local_registry: args.local_registry.clone(),
    };
    let findings = validate::validate(&config, &options);
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    if let Some(first) = errors.first() {
        anyhow::bail!(
            "{}: {first}{}; run `velero-airgap validate -c {}` for details",
            path.display(),
            match errors.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            },
            path.display()
        );
    }
    if output.verbose > 0 {
        for finding in &findings {
            note!("{}: {finding}", path.display());
        }
    }
    let input = RenderInput::from_config(
        &config,
        release,
        settings::proxy_settings(&args.install),
        args.install.host_ca_bundle.clone(),
    );
    let rendered =
        values::render(&input).with_context(|| format!("cannot render {}", path.display()))?;
    let pins = match &args.lock {
        Some(bundle) => lock_pins(bundle)?,
        None => BTreeMap::new(),
    };
    let values = match args.mode {
        Mode::Online => values::pin(&rendered, &pins)?,
        Mode::Airgap => values::to_airgap(&rendered, &args.local_registry, &pins)?,
    };
    super::write_output(args.output.as_deref(), values::to_yaml(&values).as_bytes())?;
    Ok(ExitStatus::Success)
}

/// Canonical reference → digest, from a bundle's image lock (its leading
/// entries only).
fn lock_pins(bundle: &std::path::Path) -> anyhow::Result<BTreeMap<Reference, Digest>> {
    let reader = velero_airgap::bundle::BundleReader::open(bundle)
        .with_context(|| format!("cannot read the image lock of {}", bundle.display()))?;
    reader
        .bundle()
        .images
        .iter()
        .map(|image| {
            Ok((
                Reference::parse(&image.image.canonical_reference)?,
                image.image.digest,
            ))
        })
        .collect()
}
