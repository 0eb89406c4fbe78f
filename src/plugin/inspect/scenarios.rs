//! Whole plugin images, from config and layers to the report.

use super::*;
use crate::plugin::report::Severity;
use crate::plugin::test_support::{
    ElfBuilder, Item, Layer, TAR_ZSTD, apply_layers, busybox_layer, gzip_layer,
    image_config as config, layer, plugin_binary, static_tool, tar, zstd,
};

const AWS: &str = "velero-plugin-for-aws";

fn inspect(config: &[u8], layers: Vec<Layer>) -> PluginReport {
    inspect_with(config, layers, None, false)
}

fn inspect_with(
    config: &[u8],
    layers: Vec<Layer>,
    velero: Option<&Filesystem>,
    allow_unrecognised: bool,
) -> PluginReport {
    let config = ImageConfig::parse(config).unwrap();
    let filesystem = apply_layers(layers).unwrap();
    inspect_plugin(&config, &filesystem, velero, allow_unrecognised)
}

fn codes_of(report: &PluginReport) -> Vec<&str> {
    report
        .findings
        .iter()
        .map(|finding| finding.code.as_str())
        .collect()
}

/// Where each binary lands below `/target`, in copy order.
fn targets(report: &PluginReport) -> Vec<&str> {
    report
        .binaries
        .iter()
        .map(|binary| binary.target.as_str())
        .collect()
}

fn aws_config() -> Vec<u8> {
    config(
        &[
            "cp-plugin",
            "/plugins/velero-plugin-for-aws",
            "/target/velero-plugin-for-aws",
        ],
        Some("65532:65532"),
        "amd64",
    )
}

#[test]
fn the_aws_image_is_clean() {
    let tool = static_tool();
    let plugin = plugin_binary("github.com/vmware-tanzu/velero-plugin-for-aws", "v1.18.0");
    let report = inspect(
        &aws_config(),
        vec![
            gzip_layer(&[Item::File("usr/bin/cp-plugin", 0o755, &tool)]),
            gzip_layer(&[Item::File("plugins/velero-plugin-for-aws", 0o755, &plugin)]),
        ],
    );
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let binary = &report.binaries[0];
    assert_eq!(
        (binary.path.as_str(), binary.target.as_str()),
        ("/plugins/velero-plugin-for-aws", AWS)
    );
    assert_eq!(binary.architecture.as_deref(), Some("amd64"));
    assert_eq!(binary.is_static, Some(true));
    assert_eq!(binary.go_version.as_deref(), Some("go1.24.2"));
    assert_eq!(
        binary.main_module.as_deref(),
        Some("github.com/vmware-tanzu/velero-plugin-for-aws")
    );
    assert_eq!(binary.velero_version.as_deref(), Some("v1.18.0"));
    assert_eq!(report.platform, "linux/amd64");
}

#[test]
fn binary_whited_out_by_a_later_layer_is_missing() {
    let tool = static_tool();
    let plugin = plugin_binary("m", "v1.18.0");
    let report = inspect(
        &aws_config(),
        vec![
            gzip_layer(&[
                Item::File("usr/bin/cp-plugin", 0o755, &tool),
                Item::File("plugins/velero-plugin-for-aws", 0o755, &plugin),
            ]),
            gzip_layer(&[Item::File("plugins/.wh.velero-plugin-for-aws", 0o644, b"")]),
        ],
    );
    assert_eq!(codes_of(&report), ["missing-binary"]);
}

#[test]
fn busybox_cp_through_a_symlink_reaches_two_binaries() {
    let a = plugin_binary("example.com/a", "v1.17.0");
    let b = plugin_binary("example.com/b", "v1.17.0");
    let report = inspect(
        &config(
            &["/bin/cp", "-r", "/plugins/.", "/target/."],
            Some("1000"),
            "amd64",
        ),
        vec![busybox_layer(&[
            Item::File("plugins/velero-plugin-a", 0o755, &a),
            Item::File("plugins/sub/velero-plugin-b", 0o755, &b),
        ])],
    );
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(targets(&report), ["sub/velero-plugin-b", "velero-plugin-a"]);
}

#[test]
fn opaque_directory_hides_the_old_binaries() {
    let plugin = plugin_binary("example.com/a", "v1.17.0");
    let report = inspect(
        &config(
            &["/bin/cp", "-r", "/plugins/.", "/target/."],
            Some("1000"),
            "amd64",
        ),
        vec![
            busybox_layer(&[
                Item::File("plugins/old", 0o755, &plugin),
                Item::File("plugins/new", 0o755, &plugin),
            ]),
            layer(
                TAR_ZSTD,
                zstd(&tar(&[
                    Item::File("plugins/.wh..wh..opq", 0, b""),
                    Item::File("plugins/new", 0o755, &plugin),
                ])),
            ),
        ],
    );
    let paths: Vec<&str> = report
        .binaries
        .iter()
        .map(|binary| binary.path.as_str())
        .collect();
    assert_eq!(paths, ["/plugins/new"]);
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn hard_linked_binary_is_analysed() {
    let tool = static_tool();
    let plugin = plugin_binary("example.com/a", "v1.17.0");
    let report = inspect(
        &config(
            &["cp-plugin", "/plugins/p", "/target/p"],
            Some("1000"),
            "amd64",
        ),
        vec![gzip_layer(&[
            Item::File("usr/bin/cp-plugin", 0o755, &tool),
            Item::File("opt/p", 0o755, &plugin),
            Item::HardLink("plugins/p", "opt/p"),
        ])],
    );
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(
        report.binaries[0].velero_version.as_deref(),
        Some("v1.17.0")
    );
}

#[test]
fn shell_list_with_a_glob() {
    let a = plugin_binary("example.com/a", "v1.17.0");
    let report = inspect(
        &config(
            &[
                "/bin/sh",
                "-c",
                "cp /plugins/* /target/ && cp /extra/x /target/renamed",
            ],
            Some("1000"),
            "amd64",
        ),
        vec![busybox_layer(&[
            Item::File("plugins/velero-a", 0o755, &a),
            Item::File("plugins/velero-b", 0o755, &a),
            Item::File("extra/x", 0o755, &a),
        ])],
    );
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(targets(&report), ["velero-a", "velero-b", "renamed"]);
}

#[test]
fn sleep_is_not_a_plugin() {
    let image = config(&["sleep", "infinity"], Some("1000"), "amd64");
    let report = inspect(&image, vec![busybox_layer(&[])]);
    assert_eq!(
        report.findings,
        [Finding::error(
            codes::NOT_A_PLUGIN,
            "not a Velero plugin image: its entrypoint does not copy into /target"
        )]
    );
    assert!(report.binaries.is_empty());
    let report = inspect_with(&image, vec![busybox_layer(&[])], None, true);
    assert_eq!(report.findings[0].severity, Severity::Warning);
}

#[test]
fn dynamic_binary_is_an_error_naming_its_libraries() {
    let tool = static_tool();
    let dynamic = ElfBuilder::amd64()
        .interpreter("/lib64/ld-linux-x86-64.so.2")
        .needed(&["libc.so.6"])
        .build();
    let image = config(
        &["cp-plugin", "/plugins/p", "/target/p"],
        Some("1000"),
        "amd64",
    );
    let layers = || {
        vec![gzip_layer(&[
            Item::File("usr/bin/cp-plugin", 0o755, &tool),
            Item::File("plugins/p", 0o755, &dynamic),
        ])]
    };
    let report = inspect(&image, layers());
    assert_eq!(codes_of(&report), ["dynamic-binary", "no-build-info"]);
    assert_eq!(report.findings[0].severity, Severity::Error);
    assert!(
        report.findings[0]
            .message
            .contains("/lib64/ld-linux-x86-64.so.2; needs libc.so.6")
    );
    let binary = &report.binaries[0];
    assert_eq!(binary.is_static, Some(false));
    assert_eq!(binary.needed, ["libc.so.6"]);
    // It runs in Velero's container: a Velero image without the libraries names them...
    let bare = apply_layers([gzip_layer(&[Item::File("velero", 0o755, b"")])]).unwrap();
    let report = inspect_with(&image, layers(), Some(&bare), false);
    assert!(
        report.findings[0].message.ends_with(
            "lacks /lib64/ld-linux-x86-64.so.2, libc.so.6; build it static (CGO_ENABLED=0)"
        ),
        "{}",
        report.findings[0].message
    );
    // ...and one that has them makes it a warning.
    let velero = apply_layers([gzip_layer(&[
        Item::File("lib/x86_64-linux-gnu/libc.so.6", 0o755, b""),
        Item::Symlink("lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld.so"),
        Item::File("lib/x86_64-linux-gnu/ld.so", 0o755, b""),
    ])])
    .unwrap();
    let report = inspect_with(&image, layers(), Some(&velero), false);
    assert_eq!(report.findings[0].code, codes::DYNAMIC_BINARY);
    assert_eq!(report.findings[0].severity, Severity::Warning);
}

#[test]
fn arm64_binary_in_an_amd64_image() {
    let tool = static_tool();
    let arm = ElfBuilder::arm64().build();
    let report = inspect(
        &config(
            &["cp-plugin", "/plugins/p", "/target/p"],
            Some("1000"),
            "amd64",
        ),
        vec![gzip_layer(&[
            Item::File("usr/bin/cp-plugin", 0o755, &tool),
            Item::File("plugins/p", 0o755, &arm),
        ])],
    );
    assert_eq!(codes_of(&report), ["wrong-architecture", "no-build-info"]);
    assert_eq!(
        report.findings[0].message,
        "`/plugins/p` is built for arm64 but the image is for linux/amd64"
    );
}

#[test]
fn root_user_and_missing_programs() {
    let report = inspect(
        &config(&["cp-plugin", "/plugins/p", "/target/p"], None, "amd64"),
        vec![gzip_layer(&[])],
    );
    assert_eq!(
        codes_of(&report),
        ["missing-copy-program", "missing-binary", "runs-as-root"]
    );
    let report = inspect(
        &config(&["/bin/sh", "-c", "cp /p /target/"], Some("0:0"), "amd64"),
        vec![gzip_layer(&[])],
    );
    assert_eq!(
        codes_of(&report),
        [
            "missing-shell",
            "missing-copy-program",
            "missing-binary",
            "runs-as-root"
        ]
    );
}

#[test]
fn scripts_links_directories_and_modes() {
    let plugin = plugin_binary("example.com/a", "v1.17.0");
    let report = inspect(
        &config(
            &[
                "/bin/sh",
                "-c",
                "cp /plugins/* /target/; cp -r /linked/. /target/",
            ],
            Some("1000"),
            "amd64",
        ),
        vec![busybox_layer(&[
            Item::File("plugins/script", 0o755, b"#!/bin/sh\n"),
            Item::File("plugins/readme", 0o644, b"text"),
            Item::Directory("plugins/dir"),
            Item::File("opt/real", 0o755, &plugin),
            Item::Symlink("linked/p", "/opt/real"),
        ])],
    );
    assert_eq!(
        codes_of(&report),
        [
            "directory-not-copied",
            "not-executable",
            "not-elf",
            "copies-symlink"
        ],
        "{:?}",
        report.findings
    );
    // The link is analysed through its target all the same.
    assert_eq!(
        report.binaries[2].velero_version.as_deref(),
        Some("v1.17.0")
    );
}

#[test]
fn hostile_plugin_contents_yield_findings_not_failures() {
    let tool = static_tool();
    let mut blob = b"\xff Go buildinf:\x08\x02".to_vec();
    blob.resize(32, 0);
    blob.extend(crate::plugin::test_support::uvarint(8));
    blob.extend_from_slice(b"go1.22.0");
    blob.extend(crate::plugin::test_support::uvarint(1 << 60));
    let plugin = ElfBuilder::amd64().trailer(&blob).build();
    let report = inspect(
        &config(
            &["cp-plugin", "/plugins/p", "/target/p"],
            Some("1000"),
            "amd64",
        ),
        vec![gzip_layer(&[
            Item::File("usr/bin/cp-plugin", 0o755, &tool),
            Item::RawName("../../../plugins/p", &plugin),
        ])],
    );
    assert_eq!(codes_of(&report), ["no-build-info"]);
}
