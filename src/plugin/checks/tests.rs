//! Cross-image checks on hand-made reports.

use super::*;
use crate::plugin::report::{BinaryReport, Severity};

fn binary(name: &str, module: Option<&str>, velero: Option<&str>) -> BinaryReport {
    BinaryReport {
        path: format!("/plugins/{name}"),
        target_name: name.to_string(),
        architecture: Some("amd64".into()),
        executable: true,
        is_static: Some(true),
        interpreter: None,
        needed: vec![],
        needed_known: true,
        go_version: Some("go1.24.2".into()),
        main_module: module.map(str::to_string),
        velero_version: velero.map(str::to_string),
    }
}

fn entry(name: &str, role: PluginRole, digest: &str, binaries: Vec<BinaryReport>) -> PluginEntry {
    PluginEntry {
        name: name.to_string(),
        role,
        image_digest: digest.to_string(),
        report: PluginImageReport {
            os: "linux".into(),
            architecture: "amd64".into(),
            entrypoint: vec![],
            cmd: vec![],
            user: None,
            copy: None,
            binaries,
            findings: vec![],
        },
    }
}

fn aws() -> PluginEntry {
    entry(
        "aws",
        PluginRole::AwsPlugin,
        "sha256:aws",
        vec![binary(AWS_BINARY, Some(AWS_MODULE), Some("v1.18.0"))],
    )
}

fn velero() -> PluginEntry {
    entry(
        "velero",
        PluginRole::Velero,
        "sha256:velero",
        vec![binary(
            "velero",
            Some("github.com/vmware-tanzu/velero"),
            Some("v1.18.2"),
        )],
    )
}

fn codes_of(findings: &[(String, Finding)]) -> Vec<(&str, &str)> {
    findings
        .iter()
        .map(|(name, finding)| (name.as_str(), finding.code.as_str()))
        .collect()
}

#[test]
fn a_clean_set() {
    let vendor = entry(
        "gcp",
        PluginRole::Plugin,
        "sha256:gcp",
        vec![binary(
            "velero-plugin-for-gcp",
            Some("github.com/vmware-tanzu/velero-plugin-for-gcp"),
            Some("v1.18.0"),
        )],
    );
    assert!(check_plugin_set("1.18.2", &[velero(), aws(), vendor]).is_empty());
}

#[test]
fn csi_plugin_conflicts_from_velero_1_14() {
    let by_name = entry(
        "csi",
        PluginRole::Plugin,
        "sha256:csi",
        vec![binary(CSI_BINARY, None, None)],
    );
    let by_module = entry(
        "csi2",
        PluginRole::Plugin,
        "sha256:csi2",
        vec![binary("renamed", Some(CSI_MODULE), None)],
    );
    let findings = check_plugin_set("v1.14.0", &[by_name.clone(), by_module]);
    assert_eq!(
        codes_of(&findings),
        [("csi", "built-in-conflict"), ("csi2", "built-in-conflict")]
    );
    assert!(
        findings[0]
            .1
            .message
            .contains("another plugin is already registered")
    );
    assert!(check_plugin_set("1.13.2", &[by_name]).is_empty());
}

#[test]
fn aws_plugin_configured_again() {
    let by_module = entry(
        "s3",
        PluginRole::Plugin,
        "sha256:other",
        vec![binary("renamed", Some(AWS_MODULE), None)],
    );
    let by_name = entry(
        "s3-copy",
        PluginRole::Plugin,
        "sha256:copy",
        vec![binary(AWS_BINARY, Some("example.com/fork"), None)],
    );
    let by_digest = entry(
        "same",
        PluginRole::Plugin,
        "sha256:aws",
        vec![binary("x", None, None)],
    );
    let findings = check_plugin_set("1.18.2", &[aws(), by_module, by_name, by_digest]);
    assert_eq!(
        codes_of(&findings),
        [
            ("s3", "duplicate-aws-plugin"),
            ("s3-copy", "duplicate-aws-plugin"),
            ("same", "duplicate-aws-plugin"),
        ]
    );
    // Collisions with the AWS plugin itself are not repeated; among the duplicates they are.
    let only_module_twice = check_plugin_set(
        "1.18.2",
        &[
            aws(),
            entry(
                "s3",
                PluginRole::Plugin,
                "d",
                vec![binary("a", Some(AWS_MODULE), None)],
            ),
            entry(
                "s4",
                PluginRole::Plugin,
                "e",
                vec![binary("b", Some(AWS_MODULE), None)],
            ),
        ],
    );
    assert!(codes_of(&only_module_twice).contains(&("s4", "duplicate-module")));
}

#[test]
fn collisions_and_duplicate_modules() {
    let first = entry(
        "one",
        PluginRole::Plugin,
        "sha256:1",
        vec![
            binary("velero-plugin-x", Some("example.com/x"), None),
            binary("shared", Some("example.com/x"), None),
        ],
    );
    let second = entry(
        "two",
        PluginRole::Plugin,
        "sha256:2",
        vec![binary("shared", Some("example.com/x"), None)],
    );
    let findings = check_plugin_set("1.18.2", &[first, second]);
    assert_eq!(
        codes_of(&findings),
        [
            ("two", "binary-name-collision"),
            ("two", "duplicate-module")
        ]
    );
    assert_eq!(
        findings[0].1.message,
        "`two` and `one` both install /target/shared; one overwrites the other"
    );
    assert!(
        findings
            .iter()
            .all(|(_, finding)| finding.severity == Severity::Error)
    );
}

#[test]
fn newer_plugin_api_compares_major_minor() {
    let newer = entry(
        "new",
        PluginRole::Plugin,
        "sha256:n",
        vec![binary("a", Some("example.com/a"), Some("v1.19.0-rc.1"))],
    );
    let patch = entry(
        "patch",
        PluginRole::Plugin,
        "sha256:p",
        vec![binary("b", Some("example.com/b"), Some("v1.18.9"))],
    );
    let findings = check_plugin_set("1.18.2", &[newer, patch]);
    assert_eq!(codes_of(&findings), [("new", "newer-plugin-api")]);
    assert_eq!(findings[0].1.severity, Severity::Warning);
    assert!(
        findings[0].1.message.contains("v1.19.0-rc.1") && findings[0].1.message.contains("1.18.2")
    );
}

#[test]
fn unparsable_server_version() {
    let findings = check_plugin_set("main", &[velero()]);
    assert_eq!(codes_of(&findings), [("velero", "unknown-velero-version")]);
}

#[test]
fn versions() {
    assert_eq!(major_minor("v1.16.1"), Some((1, 16)));
    assert_eq!(major_minor("1.18.2"), Some((1, 18)));
    assert_eq!(major_minor("v1.19.0-rc.1+build"), Some((1, 19)));
    assert_eq!(major_minor("v2"), None);
    assert_eq!(major_minor("(devel)"), None);
}
