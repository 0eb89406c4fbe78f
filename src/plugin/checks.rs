//! Checks across every image of a Velero deployment: plugins that Velero already has
//! built in, the AWS plugin configured twice, plugins that overwrite each other in the
//! shared `/target` emptyDir, and plugins built against a newer Velero than the server.

use super::report::{Finding, PluginReport, codes};
use crate::oci::Digest;

/// The CSI plugin's module; Velero has CSI built in since 1.14.
pub const CSI_MODULE: &str = "github.com/vmware-tanzu/velero-plugin-for-csi";
/// The CSI plugin's binary name.
pub const CSI_BINARY: &str = "velero-plugin-for-csi";
/// The AWS plugin's module.
pub const AWS_MODULE: &str = "github.com/vmware-tanzu/velero-plugin-for-aws";
/// The AWS plugin's binary name.
pub const AWS_BINARY: &str = "velero-plugin-for-aws";
/// The first Velero release with CSI support built in.
const CSI_BUILT_IN_SINCE: (u64, u64) = (1, 14);

/// One plugin of the deployment, on one platform, with its report.
#[derive(Debug, Clone)]
pub struct PluginEntry<'a> {
    /// The name findings use: the plugin's name in the config, or the AWS plugin's
    /// init container name.
    pub name: &'a str,
    /// Whether this is the AWS plugin the deployment always carries.
    pub is_aws: bool,
    /// The platform manifest inspected.
    pub image_digest: Digest,
    pub report: &'a PluginReport,
}

/// Major and minor of a semantic version: `v` prefix, patch, pre-release and build
/// metadata ignored (`v1.16.1-rc.1` → `(1, 16)`).
pub fn major_minor(version: &str) -> Option<(u64, u64)> {
    let version = version.trim();
    let version = version.strip_prefix('v').unwrap_or(version);
    let core = version.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Findings about the plugins deployed together (all on one platform) with a Velero
/// server of `velero_version` (e.g. `1.18.2`), each with the index of the plugin it is
/// about. Version checks need a parsable server version.
pub fn check_plugin_set(velero_version: &str, plugins: &[PluginEntry]) -> Vec<(usize, Finding)> {
    let mut findings = Vec::new();
    let server = major_minor(velero_version);
    let aws = plugins.iter().find(|entry| entry.is_aws);
    for (index, entry) in plugins.iter().enumerate() {
        if let Some(server) = server {
            findings
                .extend(check_built_in_conflict(entry, server, velero_version).map(|f| (index, f)));
            findings.extend(
                check_newer_plugin_api(entry, server, velero_version)
                    .into_iter()
                    .map(|f| (index, f)),
            );
        }
        findings.extend(check_duplicate_aws(entry, aws).map(|f| (index, f)));
    }
    for (index, later) in plugins.iter().enumerate() {
        for earlier in &plugins[..index] {
            if is_aws_duplicate_pair(earlier, later) {
                // Already reported as duplicate-aws-plugin; collisions would say it again.
                continue;
            }
            findings.extend(check_collision(earlier, later).map(|f| (index, f)));
            findings.extend(check_duplicate_module(earlier, later).map(|f| (index, f)));
        }
    }
    findings
}

fn main_modules<'a>(entry: &PluginEntry<'a>) -> impl Iterator<Item = &'a str> {
    entry
        .report
        .binaries
        .iter()
        .filter_map(|binary| binary.main_module.as_deref())
}

fn file_names<'a>(entry: &PluginEntry<'a>) -> impl Iterator<Item = &'a str> {
    entry
        .report
        .binaries
        .iter()
        .map(super::report::BinaryReport::file_name)
}

/// The CSI plugin with a Velero that has it built in: Velero refuses to start with
/// "another plugin is already registered".
fn check_built_in_conflict(
    entry: &PluginEntry,
    server: (u64, u64),
    velero_version: &str,
) -> Option<Finding> {
    let is_csi = file_names(entry).any(|name| name == CSI_BINARY)
        || main_modules(entry).any(|module| module == CSI_MODULE);
    (is_csi && server >= CSI_BUILT_IN_SINCE).then(|| {
        let message = format!(
            "`{}` is the CSI plugin, which Velero has built in since 1.14; Velero {velero_version} would fail with \"another plugin is already registered\"",
            entry.name
        );
        Finding::error(codes::BUILT_IN_CONFLICT, message)
    })
}

/// Whether `entry` is the AWS plugin again, configured as a vendor plugin.
fn repeats_aws(entry: &PluginEntry, aws: &PluginEntry) -> bool {
    !entry.is_aws
        && (main_modules(entry).any(|module| module == AWS_MODULE)
            || file_names(entry).any(|name| name == AWS_BINARY)
            || entry.image_digest == aws.image_digest)
}

fn is_aws_duplicate_pair(first: &PluginEntry, second: &PluginEntry) -> bool {
    (first.is_aws && repeats_aws(second, first)) || (second.is_aws && repeats_aws(first, second))
}

fn check_duplicate_aws(entry: &PluginEntry, aws: Option<&PluginEntry>) -> Option<Finding> {
    let aws = aws?;
    repeats_aws(entry, aws).then(|| {
        let message = format!(
            "`{}` is the AWS plugin, which the deployment already carries as `{}`; Velero would fail with \"another plugin is already registered\"",
            entry.name, aws.name
        );
        Finding::error(codes::DUPLICATE_AWS_PLUGIN, message)
    })
}

/// Two plugins installing the same path into the shared `/target`: the later init
/// container overwrites the earlier one's binary.
fn check_collision(earlier: &PluginEntry, later: &PluginEntry) -> Option<Finding> {
    let mut shared: Vec<&str> = later
        .report
        .binaries
        .iter()
        .map(|binary| binary.target.as_str())
        .filter(|name| {
            earlier
                .report
                .binaries
                .iter()
                .any(|binary| binary.target == *name)
        })
        .collect();
    shared.sort_unstable();
    shared.dedup();
    (!shared.is_empty()).then(|| {
        let files: Vec<String> = shared
            .iter()
            .map(|name| format!("/target/{name}"))
            .collect();
        let message = format!(
            "`{}` and `{}` both install {}; one overwrites the other",
            later.name,
            earlier.name,
            files.join(", ")
        );
        Finding::error(codes::BINARY_NAME_COLLISION, message)
    })
}

fn check_duplicate_module(earlier: &PluginEntry, later: &PluginEntry) -> Option<Finding> {
    let module =
        main_modules(later).find(|module| main_modules(earlier).any(|other| other == *module))?;
    let message = format!(
        "`{}` and `{}` are both built from {module}",
        later.name, earlier.name
    );
    Some(Finding::error(codes::DUPLICATE_MODULE, message))
}

/// A plugin built against a newer Velero minor than the server may use plugin API the
/// server does not have.
fn check_newer_plugin_api(
    entry: &PluginEntry,
    server: (u64, u64),
    velero_version: &str,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for binary in &entry.report.binaries {
        let Some(version) = &binary.velero_version else {
            continue;
        };
        if major_minor(version).is_some_and(|plugin| plugin > server) {
            let message = format!(
                "`{}` ({}) was built against Velero {version}, newer than the server's {velero_version}",
                entry.name, binary.path
            );
            findings.push(Finding::warning(codes::NEWER_PLUGIN_API, message));
        }
    }
    findings
}

#[cfg(test)]
mod tests;
