//! `velero-airgap render`: Velero's Helm values for a config.

use super::settings;
use super::{ExitStatus, Output};
use crate::cli::{Mode, RenderArgs};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::Path;
use velero_airgap::config::ClusterConfig;
use velero_airgap::files::Privacy;
use velero_airgap::oci::Digest;
use velero_airgap::reference::Reference;
use velero_airgap::release;
use velero_airgap::validate::{self, Severity};
use velero_airgap::values::{self, Recipe};

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
    let mut inputs = settings::render_inputs(&args.install, &args.hardening, &args.local_registry);
    inputs.proxy.check_secrets(args.allow_secrets)?;
    let privacy = if inputs.proxy.has_credentials() {
        Privacy::Private
    } else {
        Privacy::Shared
    };
    let lock = match &args.lock {
        Some(bundle) => Some(read_lock(bundle)?),
        None => None,
    };
    if let Some(lock) = &lock {
        // The images' users are facts of the bundle: with them the values come out as
        // the bundle's own.
        inputs.plugin_users = lock.plugin_users.clone();
    }
    let recipe = Recipe::from_config(&config, release, inputs);
    let rendered =
        values::render(&recipe).with_context(|| format!("cannot render {}", path.display()))?;
    let pins = match (&lock, &args.lock) {
        (Some(lock), Some(bundle)) => {
            check_locked(&rendered, &lock.pins, bundle)?;
            lock.pins.clone()
        }
        _ => BTreeMap::new(),
    };
    let values = match args.mode {
        Mode::Online => values::to_yaml(&values::pin(&rendered, &pins)?),
        Mode::Airgap => values::airgap_values(&recipe, &pins)?,
    };
    super::write_output_as(args.output.as_deref(), values.as_bytes(), privacy)?;
    Ok(ExitStatus::Success)
}

/// What `--lock` takes from a bundle.
struct Lock {
    /// Canonical reference → digest.
    pins: BTreeMap<Reference, Digest>,
    plugin_users: BTreeMap<String, String>,
}

/// The image lock of a bundle, from its leading entries only, which must agree with
/// their checksums.
fn read_lock(bundle: &Path) -> anyhow::Result<Lock> {
    let reader = velero_airgap::bundle::BundleReader::open(bundle)
        .with_context(|| format!("cannot read the image lock of {}", bundle.display()))?;
    if let Some(problem) = reader.problems().first() {
        anyhow::bail!(
            "{}: {problem}; the image lock cannot be trusted (run `velero-airgap verify {}`)",
            bundle.display(),
            bundle.display()
        );
    }
    let manifest = reader.bundle();
    let pins = manifest
        .images
        .iter()
        .map(|image| {
            Ok((
                Reference::parse(&image.image.canonical_reference)?,
                image.image.digest,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Lock {
        pins,
        plugin_users: manifest.render_inputs.plugin_users.clone(),
    })
}

/// Refuses values that need an image the bundle does not carry: pinning only the others
/// would give values that fail on the offline cluster.
fn check_locked(
    rendered: &values::Rendered,
    pins: &BTreeMap<Reference, Digest>,
    bundle: &Path,
) -> anyhow::Result<()> {
    let missing: Vec<String> = rendered
        .distinct_images()
        .into_iter()
        .filter(|(reference, _)| !pins.contains_key(reference))
        .map(|(reference, _)| reference.to_string())
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "{}: not in {}: build the bundle from this config, or render without --lock",
            missing.join(", "),
            bundle.display()
        );
    }
    Ok(())
}
