//! Cross-image checks on hand-made reports.

use super::*;
use crate::plugin::report::{BinaryReport, Severity};

fn binary(name: &str, module: Option<&str>, velero: Option<&str>) -> BinaryReport {
    BinaryReport {
        path: format!("/plugins/{name}"),
        target: name.to_string(),
        architecture: Some("amd64".into()),
        is_static: Some(true),
        interpreter: None,
        needed: vec![],
        go_version: Some("go1.24.2".into()),
        main_module: module.map(str::to_string),
        velero_version: velero.map(str::to_string),
    }
}

/// One plugin as the tests write it: name, whether it is the AWS plugin, the digest
/// character its platform manifest digest repeats, its binaries.
struct Plugin(&'static str, bool, char, Vec<BinaryReport>);

fn report(binaries: Vec<BinaryReport>) -> PluginReport {
    PluginReport {
        platform: "linux/amd64".into(),
        entrypoint: vec![],
        cmd: vec![],
        user: None,
        binaries,
        findings: vec![],
    }
}

fn digest(hex_digit: char) -> Digest {
    format!("sha256:{}", hex_digit.to_string().repeat(64))
        .parse()
        .unwrap()
}

/// Runs the checks; the findings as (plugin name, code), and the findings themselves.
fn check(velero: &str, plugins: &[Plugin]) -> (Vec<(&'static str, String)>, Vec<Finding>) {
    let reports: Vec<PluginReport> = plugins.iter().map(|p| report(p.3.clone())).collect();
    let entries: Vec<PluginEntry> = plugins
        .iter()
        .zip(&reports)
        .map(|(plugin, report)| PluginEntry {
            name: plugin.0,
            is_aws: plugin.1,
            image_digest: digest(plugin.2),
            report,
        })
        .collect();
    let findings = check_plugin_set(velero, &entries);
    let codes = findings
        .iter()
        .map(|(index, finding)| (plugins[*index].0, finding.code.clone()))
        .collect();
    (codes, findings.into_iter().map(|(_, f)| f).collect())
}

fn aws() -> Plugin {
    Plugin(
        "velero-plugin-for-aws",
        true,
        'a',
        vec![binary(AWS_BINARY, Some(AWS_MODULE), Some("v1.18.0"))],
    )
}

fn pairs(codes: &[(&'static str, &'static str)]) -> Vec<(&'static str, String)> {
    codes
        .iter()
        .map(|(name, code)| (*name, code.to_string()))
        .collect()
}

#[test]
fn a_clean_set() {
    let vendor = Plugin(
        "gcp",
        false,
        'b',
        vec![binary(
            "velero-plugin-for-gcp",
            Some("github.com/vmware-tanzu/velero-plugin-for-gcp"),
            Some("v1.18.0"),
        )],
    );
    assert!(check("1.18.2", &[aws(), vendor]).0.is_empty());
}

#[test]
fn csi_plugin_conflicts_from_velero_1_14() {
    let by_name = || Plugin("csi", false, 'c', vec![binary(CSI_BINARY, None, None)]);
    let by_module = Plugin(
        "csi2",
        false,
        'd',
        vec![binary("renamed", Some(CSI_MODULE), None)],
    );
    let (codes, findings) = check("v1.14.0", &[by_name(), by_module]);
    assert_eq!(
        codes,
        pairs(&[
            ("csi", codes::BUILT_IN_CONFLICT),
            ("csi2", codes::BUILT_IN_CONFLICT)
        ])
    );
    assert!(
        findings[0]
            .message
            .contains("another plugin is already registered")
    );
    assert!(check("1.13.2", &[by_name()]).0.is_empty());
}

#[test]
fn aws_plugin_configured_again() {
    let by_module = Plugin(
        "s3",
        false,
        'b',
        vec![binary("renamed", Some(AWS_MODULE), None)],
    );
    let by_name = Plugin(
        "s3-copy",
        false,
        'c',
        vec![binary(AWS_BINARY, Some("example.com/fork"), None)],
    );
    let by_digest = Plugin("same", false, 'a', vec![binary("x", None, None)]);
    let (codes, _) = check("1.18.2", &[aws(), by_module, by_name, by_digest]);
    assert_eq!(
        codes,
        pairs(&[
            ("s3", codes::DUPLICATE_AWS_PLUGIN),
            ("s3-copy", codes::DUPLICATE_AWS_PLUGIN),
            ("same", codes::DUPLICATE_AWS_PLUGIN),
        ])
    );
    // Collisions with the AWS plugin itself are not repeated; among the duplicates they are.
    let (codes, _) = check(
        "1.18.2",
        &[
            aws(),
            Plugin("s3", false, 'd', vec![binary("a", Some(AWS_MODULE), None)]),
            Plugin("s4", false, 'e', vec![binary("b", Some(AWS_MODULE), None)]),
        ],
    );
    assert!(codes.contains(&("s4", codes::DUPLICATE_MODULE.to_string())));
}

#[test]
fn collisions_and_duplicate_modules() {
    let first = Plugin(
        "one",
        false,
        '1',
        vec![
            binary("velero-plugin-x", Some("example.com/x"), None),
            binary("shared", Some("example.com/x"), None),
        ],
    );
    let second = Plugin(
        "two",
        false,
        '2',
        vec![binary("shared", Some("example.com/x"), None)],
    );
    let (codes, findings) = check("1.18.2", &[first, second]);
    assert_eq!(
        codes,
        pairs(&[
            ("two", codes::BINARY_NAME_COLLISION),
            ("two", codes::DUPLICATE_MODULE)
        ])
    );
    assert_eq!(
        findings[0].message,
        "`two` and `one` both install /target/shared; one overwrites the other"
    );
    assert!(findings.iter().all(|f| f.severity == Severity::Error));
}

#[test]
fn newer_plugin_api_compares_major_minor() {
    let newer = Plugin(
        "new",
        false,
        '3',
        vec![binary("a", Some("example.com/a"), Some("v1.19.0-rc.1"))],
    );
    let patch = Plugin(
        "patch",
        false,
        '4',
        vec![binary("b", Some("example.com/b"), Some("v1.18.9"))],
    );
    let (codes, findings) = check("1.18.2", &[newer, patch]);
    assert_eq!(codes, pairs(&[("new", codes::NEWER_PLUGIN_API)]));
    assert_eq!(findings[0].severity, Severity::Warning);
    assert!(findings[0].message.contains("v1.19.0-rc.1") && findings[0].message.contains("1.18.2"));
}

#[test]
fn versions() {
    assert_eq!(major_minor("v1.16.1"), Some((1, 16)));
    assert_eq!(major_minor("1.18.2"), Some((1, 18)));
    assert_eq!(major_minor("v1.19.0-rc.1+build"), Some((1, 19)));
    assert_eq!(major_minor("v2"), None);
    assert_eq!(major_minor("(devel)"), None);
}
