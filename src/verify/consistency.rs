//! What ties a bundle's files to each other beyond their checksums. Checksums prove the
//! files are the ones listed, not that they belong together: anyone who can rewrite the
//! bundle can recompute the sums. `values.yaml` is a function of `config.yaml`,
//! `velero.release`, `renderInputs` and the image digests, so it is re-derived and
//! compared byte for byte; every reference in `bundle.json` must be one; each plugin
//! image must be a plugin of `config.yaml`.

use std::collections::BTreeMap;

use crate::bundle::{BundleManifest, Problem, ProblemKind, VerifiedContent};
use crate::config::ClusterConfig;
use crate::oci::Digest;
use crate::reference::Reference;
use crate::values::{self, RENDER_SCHEME, Recipe, RenderInputs, Role};
use crate::yaml::{self, Value};

const BUNDLE_JSON: &str = "bundle.json";
const CONFIG_YAML: &str = "config.yaml";
const VALUES_YAML: &str = "values.yaml";

/// The problems and warnings of one bundle's content.
#[derive(Debug, Default)]
pub struct Findings {
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
}

/// Checks that the verified files of a bundle agree with each other.
pub fn check(content: &VerifiedContent) -> Findings {
    let mut findings = Findings::default();
    let manifest = &content.manifest;
    let Some(pins) = check_references(manifest, &mut findings) else {
        return findings;
    };
    let config = match std::str::from_utf8(&content.config_yaml)
        .ok()
        .map(|text| ClusterConfig::parse(text, CONFIG_YAML))
    {
        Some(Ok(config)) => config,
        Some(Err(error)) => {
            findings.problem(CONFIG_YAML, format!("cannot be read: {error}"));
            return findings;
        }
        None => {
            findings.problem(CONFIG_YAML, "is not UTF-8".into());
            return findings;
        }
    };
    check_plugins(manifest, &config, &mut findings);
    // Without a bundle key, whoever rewrote the sums could have rewritten the config too:
    // what it asks of the node is said again here, before anything is loaded.
    findings
        .warnings
        .extend(
            crate::validate::override_checks(&config)
                .into_iter()
                .map(|finding| {
                    let line = finding.line.map(|line| format!(":{line}"));
                    format!(
                        "{CONFIG_YAML}{}: {}: {}",
                        line.unwrap_or_default(),
                        finding.path,
                        finding.message
                    )
                }),
        );
    match re_derivable(manifest) {
        Ok(release) => re_derive(content, &config, release, &pins, &mut findings),
        Err(why) => {
            findings.warnings.push(format!(
                "{VALUES_YAML} could not be re-derived ({why}): checked only that its images are bundled ones"
            ));
            check_image_fields(content, &config, &mut findings);
        }
    }
    findings
}

impl Findings {
    fn problem(&mut self, entry: &str, message: String) {
        self.problems
            .push(Problem::new(entry, ProblemKind::Inconsistent(message)));
    }
}

/// Every reference of `bundle.json` must parse; returns the pins (canonical reference →
/// digest) when they all do.
fn check_references(
    manifest: &BundleManifest,
    findings: &mut Findings,
) -> Option<BTreeMap<Reference, Digest>> {
    let mut pins = BTreeMap::new();
    let mut good = true;
    let mut parse = |what: &str, text: &str| match Reference::parse(text) {
        Ok(reference) => Some(reference),
        Err(error) => {
            findings.problem(
                BUNDLE_JSON,
                format!("{what} {text:?} is not a reference: {error}"),
            );
            good = false;
            None
        }
    };
    parse("velero.image", &manifest.velero.image);
    parse("velero.awsPluginImage", &manifest.velero.aws_plugin_image);
    for image in &manifest.images {
        let record = &image.image;
        parse("images[].source", &record.source);
        if let Some(reference) = parse("images[].canonicalReference", &record.canonical_reference) {
            pins.insert(reference, record.digest);
        }
    }
    good.then_some(pins)
}

/// Each `plugin:<name>` image must be that plugin of `config.yaml`, and each plugin of
/// the config must be bundled.
fn check_plugins(manifest: &BundleManifest, config: &ClusterConfig, findings: &mut Findings) {
    let configured: BTreeMap<&str, &str> = config
        .plugins()
        .iter()
        .filter_map(|plugin| {
            Some((
                plugin.name.as_deref()?.trim(),
                plugin.image.as_deref()?.trim(),
            ))
        })
        .collect();
    let mut bundled = Vec::new();
    for image in &manifest.images {
        let Role::Plugin(name) = &image.image.role else {
            continue;
        };
        bundled.push(name.as_str());
        if !configured.contains_key(name.as_str()) {
            findings.problem(
                BUNDLE_JSON,
                format!(
                    "image {} has role plugin:{name}, but {CONFIG_YAML} has no plugin {name}",
                    image.image.canonical_reference
                ),
            );
        }
    }
    for name in configured.keys() {
        if !bundled.contains(name) {
            findings.problem(
                BUNDLE_JSON,
                format!("plugin {name} of {CONFIG_YAML} has no image in the bundle"),
            );
        }
    }
}

/// The release to re-derive with, or why the values cannot be re-derived here.
fn re_derivable(manifest: &BundleManifest) -> Result<crate::release::Release, String> {
    let inputs = &manifest.render_inputs;
    match inputs.scheme {
        Some(RENDER_SCHEME) => {}
        Some(other) => {
            return Err(format!(
                "rendered by scheme {other}, this tool renders scheme {RENDER_SCHEME}"
            ));
        }
        None => return Err("the bundle does not record its render inputs".into()),
    }
    crate::release::select(Some(&manifest.velero.release)).map_err(|_| {
        format!(
            "Velero {} is not a release this tool knows",
            manifest.velero.release
        )
    })
}

/// Renders the values again and compares them with `values.yaml`.
fn re_derive(
    content: &VerifiedContent,
    config: &ClusterConfig,
    release: crate::release::Release,
    pins: &BTreeMap<Reference, Digest>,
    findings: &mut Findings,
) {
    let inputs = with_actual_proxies(&content.manifest.render_inputs, &content.values_yaml);
    let recipe = Recipe::from_config(config, release, inputs);
    let derived = match values::airgap_values(&recipe, pins) {
        Ok(derived) => derived,
        Err(error) => {
            findings.problem(
                VALUES_YAML,
                format!("cannot be re-derived from {CONFIG_YAML}: {error}"),
            );
            return;
        }
    };
    if derived.as_bytes() == content.values_yaml.as_slice() {
        return;
    }
    let found = String::from_utf8_lossy(&content.values_yaml);
    let (line, expected, actual) = first_difference(&derived, &found);
    findings.problem(
        VALUES_YAML,
        format!(
            "line {line} differs from the values {CONFIG_YAML} and renderInputs give: expected {expected:?}, found {actual:?}"
        ),
    );
}

/// The render inputs with each redacted proxy URL replaced by the one in `values.yaml`,
/// when that one redacts to the recorded text: the record never holds credentials, the
/// values must.
fn with_actual_proxies(recorded: &RenderInputs, values_yaml: &[u8]) -> RenderInputs {
    let mut inputs = recorded.clone();
    let values = std::str::from_utf8(values_yaml)
        .ok()
        .and_then(|text| yaml::parse_value(text, VALUES_YAML, &values::VALUES_LIMITS).ok());
    let env = |name: &str| -> Option<String> {
        let vars = values.as_ref()?.get("configuration")?.get("extraEnvVars")?;
        let Value::Sequence(vars) = vars else {
            return None;
        };
        vars.iter()
            .find(|var| var.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|var| var.get("value")?.as_str().map(str::to_string))
    };
    for (slot, name) in [
        (&mut inputs.proxy.http_proxy, "HTTP_PROXY"),
        (&mut inputs.proxy.https_proxy, "HTTPS_PROXY"),
    ] {
        if let (Some(recorded), Some(actual)) = (slot.as_ref(), env(name))
            && *recorded != actual
            && values::redacted_matches(recorded, &actual)
        {
            *slot = Some(actual);
        }
    }
    inputs
}

/// For values that cannot be re-derived: every image field must name a bundled image by
/// its digest.
fn check_image_fields(content: &VerifiedContent, config: &ClusterConfig, findings: &mut Findings) {
    let text = String::from_utf8_lossy(&content.values_yaml);
    let values = match yaml::parse_value(&text, VALUES_YAML, &values::VALUES_LIMITS) {
        Ok(values) => values,
        Err(error) => {
            findings.problem(VALUES_YAML, format!("is not YAML: {error}"));
            return;
        }
    };
    let plugins: Vec<String> = config
        .plugins()
        .iter()
        .filter_map(|plugin| Some(plugin.name.as_deref()?.trim().to_string()))
        .collect();
    let local = &content.manifest.render_inputs.local_registry;
    let bundled: Vec<(String, String, Digest)> = content
        .manifest
        .images
        .iter()
        .filter_map(|image| {
            let airgap = Reference::parse(&image.image.canonical_reference)
                .ok()?
                .airgap(local)
                .ok()?;
            Some((
                airgap.registry().to_string(),
                airgap.repository().to_string(),
                image.image.digest,
            ))
        })
        .collect();
    for field in values::images::image_fields(&values, &plugins) {
        let named = values::images::read_field(&values, &field)
            .ok()
            .and_then(|text| Reference::parse(&text).ok());
        let bundled = named.as_ref().is_some_and(|named| {
            bundled.iter().any(|(registry, repository, digest)| {
                named.registry() == registry
                    && named.repository() == repository
                    && named.digest() == Some(digest)
            })
        });
        if !bundled {
            findings.problem(
                VALUES_YAML,
                format!(
                    "{} does not name a bundled image in {local} by digest",
                    field.path
                ),
            );
        }
    }
}

/// The 1-based number of the first line that differs, with that line of each text.
fn first_difference<'a>(expected: &'a str, actual: &'a str) -> (usize, &'a str, &'a str) {
    let mut expected_lines = expected.lines();
    let mut actual_lines = actual.lines();
    let mut number = 1;
    loop {
        match (expected_lines.next(), actual_lines.next()) {
            (Some(e), Some(a)) if e == a => number += 1,
            (e, a) => return (number, e.unwrap_or("<end>"), a.unwrap_or("<end>")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_names_the_line() {
        assert_eq!(first_difference("a\nb\nc\n", "a\nB\nc\n"), (2, "b", "B"));
        assert_eq!(first_difference("a\nb\n", "a\n"), (2, "b", "<end>"));
        assert_eq!(first_difference("a\n", "a\nb\n"), (2, "<end>", "b"));
    }
}
