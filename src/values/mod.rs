//! Velero's Helm values, rendered in Embedded Cluster's order of work.
//!
//! Each step is a small function over a YAML value so it can be tested alone:
//! base template → plugin initContainers (hardened, our addition) → proxy registry
//! domain → proxy environment → CA bundle → `builtInExtensions` overrides (RFC 7386) →
//! collect images → (airgap) rewrite to the local registry.

mod emit;
pub mod images;
mod inputs;
mod merge_patch;

pub use emit::to_yaml;
pub use images::{ImageField, Role};
pub use inputs::{
    ProxyCredentialsError, ProxySettings, RENDER_SCHEME, RenderInputs, redact_url, redacted_matches,
};
pub use merge_patch::merge_patch;

use crate::config::ClusterConfig;
use crate::oci::Digest;
use crate::reference::Reference;
use crate::release::Release;
use crate::yaml::{Mapping, Value};
use std::collections::BTreeMap;

const TEMPLATE_YAML: &str = include_str!("../../bundle-spec/values.tpl.yaml");

/// The registry host Embedded Cluster's images live under before any rewrite.
pub const REPLICATED_PROXY_HOST: &str = "proxy.replicated.com";

/// Where pods pull from in an airgap cluster by default: the service CIDR + 11.
pub const DEFAULT_LOCAL_REGISTRY: &str = "10.244.128.11:5000";

/// Limits for reading a `values.yaml`: it is rendered from a config of at most 1 MiB,
/// and its overrides can make it somewhat larger.
pub const VALUES_LIMITS: crate::yaml::Limits = crate::yaml::Limits {
    max_bytes: 4 << 20,
    max_depth: crate::yaml::Limits::DEFAULT.max_depth,
    max_nodes: crate::yaml::Limits::DEFAULT.max_nodes,
    max_expanded_bytes: 8 << 20,
};

/// Resources of a hardened plugin initContainer (see [`harden_plugins`]).
pub const PLUGIN_CPU_REQUEST: &str = "10m";
pub const PLUGIN_MEMORY_REQUEST: &str = "32Mi";
pub const PLUGIN_MEMORY_LIMIT: &str = "128Mi";

/// Where the host CA bundle is mounted inside Velero's pods.
const CA_MOUNT_PATH: &str = "/certs/ca-certificates.crt";

/// Errors rendering values.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// An image field the chart reads is missing or not a string.
    #[error(transparent)]
    Field(#[from] images::FieldError),
    /// An image field holds something that is not an image reference.
    #[error("in {path}")]
    Reference {
        /// Path of the field in the values.
        path: String,
        /// Why the reference does not parse.
        #[source]
        source: crate::reference::ReferenceError,
    },
    /// A registry address to rewrite images to is not a valid host.
    #[error("registry address")]
    Domain(#[from] crate::reference::DomainError),
}

/// A plugin to inject as an initContainer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginImage {
    /// Container name (a DNS-1123 label).
    pub name: String,
    /// Image reference as written in the config.
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`.
    pub pull_policy: String,
}

/// Everything rendering depends on: the config's parts, the release, the other inputs.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The Velero release whose images fill the template.
    pub release: Release,
    /// Configured plugins, in config order.
    pub plugins: Vec<PluginImage>,
    /// `spec.domains.proxyRegistryDomain`, replacing `proxy.replicated.com`.
    pub proxy_registry_domain: Option<String>,
    /// `builtInExtensions` values for `velero`, in config order.
    pub overrides: Vec<Value>,
    pub inputs: RenderInputs,
}

impl Recipe {
    /// The recipe of a config. Plugins with unusable fields are left out (validate
    /// reports them), so rendering can still check the rest.
    pub fn from_config(config: &ClusterConfig, release: Release, inputs: RenderInputs) -> Recipe {
        let plugins = config
            .plugins()
            .iter()
            .filter_map(|p| {
                Some(PluginImage {
                    name: p.name.clone()?.trim().to_string(),
                    image: p.image.clone()?.trim().to_string(),
                    pull_policy: p.pull_policy().ok()?.as_str().to_string(),
                })
            })
            .filter(|p| !p.name.is_empty() && Reference::parse(&p.image).is_ok())
            .collect();
        Recipe {
            release,
            plugins,
            proxy_registry_domain: config
                .domains()
                .proxy_registry_domain
                .clone()
                .filter(|d| crate::reference::validate_domain(d).is_ok()),
            overrides: config
                .velero_overrides()
                .into_iter()
                .filter_map(|o| o.values.ok())
                .collect(),
            inputs,
        }
    }
}

/// An image the final values make the chart run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// Where it is named.
    pub field: ImageField,
    /// The reference as it stands in the values, before any airgap rewrite.
    pub reference: Reference,
}

/// Values after steps 1 to 7.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The values, ready for the online case.
    pub values: Value,
    /// Every image field, in [`images::image_fields`] order.
    pub images: Vec<ImageUse>,
}

impl Rendered {
    /// The distinct canonical references to pull, in first-use order, each with
    /// the role of its first use.
    pub fn distinct_images(&self) -> Vec<(Reference, Role)> {
        let mut seen = std::collections::BTreeSet::new();
        self.images
            .iter()
            .filter(|use_| seen.insert(use_.reference.to_string()))
            .map(|use_| (use_.reference.clone(), use_.field.role.clone()))
            .collect()
    }
}

/// Renders steps 1 to 7.
pub fn render(recipe: &Recipe) -> Result<Rendered, RenderError> {
    let inputs = &recipe.inputs;
    let mut values = base(&recipe.release)?;
    add_plugins(&mut values, &recipe.plugins);
    if inputs.plugin_hardening {
        harden_plugins(&mut values, &inputs.plugin_users);
    }
    let plugin_names: Vec<String> = recipe.plugins.iter().map(|p| p.name.clone()).collect();
    if let Some(domain) = &recipe.proxy_registry_domain {
        replace_proxy_domain(&mut values, domain, &plugin_names)?;
    }
    add_proxy_env(&mut values, &inputs.proxy);
    if let Some(path) = &inputs.host_ca_bundle {
        add_ca_bundle(&mut values, path);
    }
    for patch in &recipe.overrides {
        merge_patch(&mut values, patch);
    }
    let images = collect_images(&values, &plugin_names)?;
    Ok(Rendered { values, images })
}

/// A bundle's `values.yaml`: the recipe rendered, every image moved to the recipe's
/// local registry and pinned by the digests in `pins` (canonical reference → digest).
/// `build`, `render --lock` and `verify` all come here, so they cannot disagree.
pub fn airgap_values(
    recipe: &Recipe,
    pins: &BTreeMap<Reference, Digest>,
) -> Result<String, RenderError> {
    let rendered = render(recipe)?;
    let values = to_airgap(&rendered, &recipe.inputs.local_registry, pins)?;
    Ok(to_yaml(&values))
}

/// Step 1: the template from `bundle-spec/values.tpl.yaml` with the release's
/// images filled in.
pub fn base(release: &Release) -> Result<Value, RenderError> {
    let mut values: Value =
        crate::yaml::from_str(TEMPLATE_YAML).expect("bundle-spec/values.tpl.yaml is valid");
    let parse = |image: &str| {
        Reference::parse(image).map_err(|source| RenderError::Reference {
            path: "bundle-spec/releases.yaml".into(),
            source,
        })
    };
    let velero = parse(&release.velero)?;
    let aws = parse(&release.aws_plugin)?;
    for field in images::image_fields(&values, &[]) {
        let reference = match field.role {
            Role::AwsPlugin => &aws,
            _ => &velero,
        };
        images::write_field(&mut values, &field, reference);
    }
    Ok(values)
}

/// Step 2: one initContainer per plugin after the AWS plugin, in config order.
pub fn add_plugins(values: &mut Value, plugins: &[PluginImage]) {
    let containers = sequence_at(values, &["initContainers"]);
    for plugin in plugins {
        let mut mount = Mapping::new();
        mount.insert("mountPath".into(), "/target".into());
        mount.insert("name".into(), "plugins".into());
        let mut container = Mapping::new();
        container.insert("name".into(), plugin.name.clone().into());
        container.insert("image".into(), plugin.image.clone().into());
        container.insert("imagePullPolicy".into(), plugin.pull_policy.clone().into());
        container.insert(
            "volumeMounts".into(),
            Value::Sequence(vec![Value::Mapping(mount)]),
        );
        containers.push(Value::Mapping(container));
    }
}

/// Step 2, our addition to Embedded Cluster's: every plugin initContainer (the AWS
/// plugin's too) gets a restricted `securityContext` and small `resources`. It only copies
/// a binary into the shared volume, so it needs no privilege, no capability, no writable
/// root and little memory. `runAsNonRoot` is set only when the image's `User` (from
/// `users`, by container name) is a numeric non-root uid, the one case the kubelet can
/// check. Overrides, applied later, still win.
pub fn harden_plugins(values: &mut Value, users: &BTreeMap<String, String>) {
    for container in sequence_at(values, &["initContainers"]) {
        let Value::Mapping(container) = container else {
            continue;
        };
        let name = container
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut context = Mapping::new();
        context.insert("allowPrivilegeEscalation".into(), false.into());
        context.insert("readOnlyRootFilesystem".into(), true.into());
        let mut capabilities = Mapping::new();
        capabilities.insert("drop".into(), Value::Sequence(vec!["ALL".into()]));
        context.insert("capabilities".into(), Value::Mapping(capabilities));
        let mut seccomp = Mapping::new();
        seccomp.insert("type".into(), "RuntimeDefault".into());
        context.insert("seccompProfile".into(), Value::Mapping(seccomp));
        if crate::oci::numeric_non_root(users.get(&name).map(String::as_str)) {
            context.insert("runAsNonRoot".into(), true.into());
        }
        container.insert("securityContext".into(), Value::Mapping(context));
        container.insert("resources".into(), plugin_resources());
    }
}

/// Requests and limits of a plugin initContainer. A copy needs a few MiB of memory
/// (cp-plugin and busybox `cp` stream in small buffers); the limit leaves room for the
/// page cache of a large plugin binary, which the kernel reclaims under the limit.
fn plugin_resources() -> Value {
    let quantities = |pairs: &[(&str, &str)]| {
        let mut map = Mapping::new();
        for (key, value) in pairs {
            map.insert((*key).into(), (*value).into());
        }
        Value::Mapping(map)
    };
    let mut resources = Mapping::new();
    resources.insert(
        "requests".into(),
        quantities(&[
            ("cpu", PLUGIN_CPU_REQUEST),
            ("memory", PLUGIN_MEMORY_REQUEST),
        ]),
    );
    resources.insert(
        "limits".into(),
        quantities(&[("memory", PLUGIN_MEMORY_LIMIT)]),
    );
    Value::Mapping(resources)
}

/// Step 3: `proxy.replicated.com` → the custom proxy registry domain, in image
/// references only, on an exact host match.
pub fn replace_proxy_domain(
    values: &mut Value,
    domain: &str,
    plugins: &[String],
) -> Result<(), RenderError> {
    for use_ in collect_images(values, plugins)? {
        if use_.reference.registry() == REPLICATED_PROXY_HOST {
            images::write_field(values, &use_.field, &use_.reference.with_registry(domain)?);
        }
    }
    Ok(())
}

/// Step 4: proxy variables into `configuration.extraEnvVars` (a list of
/// `{name, value}`) and the node agent's `extraEnvVars`.
pub fn add_proxy_env(values: &mut Value, proxy: &ProxySettings) {
    let vars = [
        ("HTTP_PROXY", &proxy.http_proxy),
        ("HTTPS_PROXY", &proxy.https_proxy),
        ("NO_PROXY", &proxy.no_proxy),
    ];
    for (name, value) in vars {
        if let Some(value) = value {
            add_env(values, name, value);
        }
    }
}

/// Step 5: the host CA bundle as a hostPath volume mounted at
/// `/certs/ca-certificates.crt`, with `SSL_CERT_DIR=/certs`, for Velero and the
/// node agent.
pub fn add_ca_bundle(values: &mut Value, path: &str) {
    for prefix in [&[][..], &["nodeAgent"][..]] {
        let mut host_path = Mapping::new();
        host_path.insert("path".into(), path.into());
        host_path.insert("type".into(), "FileOrCreate".into());
        let mut volume = Mapping::new();
        volume.insert("name".into(), "host-ca-bundle".into());
        volume.insert("hostPath".into(), Value::Mapping(host_path));
        sequence_at(values, &[prefix, &["extraVolumes"]].concat()).push(Value::Mapping(volume));

        let mut mount = Mapping::new();
        mount.insert("mountPath".into(), CA_MOUNT_PATH.into());
        mount.insert("name".into(), "host-ca-bundle".into());
        mount.insert("readOnly".into(), true.into());
        sequence_at(values, &[prefix, &["extraVolumeMounts"]].concat()).push(Value::Mapping(mount));
    }
    add_env(values, "SSL_CERT_DIR", "/certs");
}

/// Step 7: every image the values make the chart run.
pub fn collect_images(values: &Value, plugins: &[String]) -> Result<Vec<ImageUse>, RenderError> {
    images::image_fields(values, plugins)
        .into_iter()
        .map(|field| {
            let text = images::read_field(values, &field)?;
            let reference = Reference::parse(&text).map_err(|source| RenderError::Reference {
                path: field.path.clone(),
                source,
            })?;
            Ok(ImageUse { field, reference })
        })
        .collect()
}

/// The reference an image gets in an airgap cluster: `LOCAL/<repository path
/// without the source host>`, keeping tag and digest.
pub fn airgap_reference(
    reference: &Reference,
    local_registry: &str,
) -> Result<Reference, RenderError> {
    Ok(reference.airgap(local_registry)?)
}

/// Step 8: rewrites every image to the local registry, pinned by the digests in
/// `pins` (canonical reference → digest) where given, and sets pull policies to
/// `IfNotPresent` (keeping `Never`).
pub fn to_airgap(
    rendered: &Rendered,
    local_registry: &str,
    pins: &BTreeMap<Reference, Digest>,
) -> Result<Value, RenderError> {
    let mut values = rendered.values.clone();
    for use_ in &rendered.images {
        let target = pinned(
            &airgap_reference(&use_.reference, local_registry)?,
            use_,
            pins,
        );
        images::write_field(&mut values, &use_.field, &target);
        if let Some(path) = &use_.field.pull_policy_path {
            let current = images::get_path(&values, path).and_then(Value::as_str);
            if current != Some("Never") {
                images::write_pull_policy(&mut values, path, "IfNotPresent");
            }
        }
    }
    Ok(values)
}

/// Pins the online values by the digests in `pins` (canonical reference →
/// digest), leaving images without a pin as they are.
pub fn pin(rendered: &Rendered, pins: &BTreeMap<Reference, Digest>) -> Result<Value, RenderError> {
    let mut values = rendered.values.clone();
    for use_ in &rendered.images {
        if pins.contains_key(&use_.reference) {
            let target = pinned(&use_.reference, use_, pins);
            images::write_field(&mut values, &use_.field, &target);
        }
    }
    Ok(values)
}

/// `target` pinned to the digest `pins` holds for `use_`'s canonical
/// reference. The pin wins over a digest the reference already names: a
/// reference pinned to a multi-arch index resolves to the platform manifest the
/// bundle carries, and the values must name what is loaded.
fn pinned(target: &Reference, use_: &ImageUse, pins: &BTreeMap<Reference, Digest>) -> Reference {
    match pins.get(&use_.reference) {
        Some(digest) => target.with_digest(*digest),
        None => target.clone(),
    }
}

/// Appends `{name, value}` to `configuration.extraEnvVars` and
/// `nodeAgent.extraEnvVars`.
fn add_env(values: &mut Value, name: &str, value: &str) {
    for path in [
        &["configuration", "extraEnvVars"][..],
        &["nodeAgent", "extraEnvVars"][..],
    ] {
        let mut var = Mapping::new();
        var.insert("name".into(), name.into());
        var.insert("value".into(), value.into());
        sequence_at(values, path).push(Value::Mapping(var));
    }
}

/// The list at `path`, created (replacing any non-list) when missing.
fn sequence_at<'a>(values: &'a mut Value, path: &[&str]) -> &'a mut Vec<Value> {
    let mut node = values;
    for key in path {
        if !node.is_mapping() {
            *node = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(map) = node else {
            unreachable!("made a mapping above")
        };
        node = map.entry((*key).into()).or_insert(Value::Null);
    }
    if !node.is_sequence() {
        *node = Value::Sequence(vec![]);
    }
    let Value::Sequence(list) = node else {
        unreachable!("made a sequence above")
    };
    list
}

#[cfg(test)]
mod tests;
