//! The values a node installs with: the bundle's `values.yaml` re-targeted to
//! the registry address pods pull from.
//!
//! Only the fields `bundle.json` lists for each image change, and only their
//! registry address; with the bundle's own address and no install-time settings
//! the bytes are the bundle's, unchanged.

use crate::bundle::BundleManifest;
use crate::reference::Reference;
use crate::values::{self, ImageField, ProxySettings};
use crate::yaml::Value;

/// Install-time settings applied through the same steps as `render`.
#[derive(Debug, Clone, Default)]
pub struct InstallSettings {
    /// Proxy variables.
    pub proxy: ProxySettings,
    /// Host CA bundle path.
    pub host_ca_bundle: Option<String>,
}

impl InstallSettings {
    fn is_empty(&self) -> bool {
        self.proxy == ProxySettings::default() && self.host_ca_bundle.is_none()
    }
}

/// Why values cannot be re-targeted.
#[derive(Debug, thiserror::Error)]
pub enum RetargetError {
    /// `values.yaml` is not YAML (the bundle verified, so it was built wrong).
    #[error("values.yaml in the bundle is not valid YAML")]
    Yaml(#[from] crate::yaml::YamlError),
    /// A listed field does not hold an image reference.
    #[error("values.yaml field {path}: {reason}")]
    Field {
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// `values.yaml` for pods pulling from `address`.
pub fn retarget(
    bundle: &BundleManifest,
    values_yaml: &[u8],
    address: &str,
    install: &InstallSettings,
) -> Result<Vec<u8>, RetargetError> {
    let from = &bundle.render_inputs.local_registry;
    if address == from && install.is_empty() {
        return Ok(values_yaml.to_vec());
    }
    let text = std::str::from_utf8(values_yaml).unwrap_or_default();
    let mut values = crate::yaml::parse_value(text, "values.yaml", &values::VALUES_LIMITS)?;
    for image in &bundle.images {
        for path in &image.image.values_fields {
            let field = ImageField {
                path: path.clone(),
                split: values::images::get_path(&values, path).is_some_and(Value::is_mapping),
                pull_policy_path: None,
                role: image.image.role.clone(),
            };
            let bad = |reason: String| RetargetError::Field {
                path: path.clone(),
                reason,
            };
            let text =
                values::images::read_field(&values, &field).map_err(|e| bad(e.to_string()))?;
            let reference = Reference::parse(&text).map_err(|e| bad(e.to_string()))?;
            if reference.registry() != from {
                continue;
            }
            let moved = reference
                .with_registry(address)
                .map_err(|e| bad(e.to_string()))?;
            values::images::write_field(&mut values, &field, &moved);
        }
    }
    values::add_proxy_env(&mut values, &install.proxy);
    if let Some(path) = &install.host_ca_bundle {
        values::add_ca_bundle(&mut values, path);
    }
    Ok(values::to_yaml(&values).into_bytes())
}
