//! Unit tests of the SBOM's parts: purls, reference splitting, timestamps, serial
//! numbers, bom-refs. Schema validation is in `tests/sbom_schema.rs`.

use super::purl::{self, ImageName};
use super::stamp::{rfc3339_utc, serial_number};
use super::*;

const DIGEST: &str = "sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1";

#[test]
fn oci_purls_match_the_purl_spec_test_suite() {
    // purl-spec tests/types/oci-test.json, "build" cases (without `arch`, which this
    // SBOM does not write).
    assert_eq!(
        purl::oci(
            &ImageName::parse("docker.io/library/debian:latest"),
            "sha256:244fd47e07d10"
        ),
        "pkg:oci/debian@sha256:244fd47e07d10?repository_url=docker.io%2Flibrary%2Fdebian&tag=latest"
    );
    assert_eq!(
        purl::oci(
            &ImageName::parse("ghcr.io/debian:bullseye"),
            "sha256:244fd47e07d10"
        ),
        "pkg:oci/debian@sha256:244fd47e07d10?repository_url=ghcr.io%2Fdebian&tag=bullseye"
    );
}

#[test]
fn oci_purl_of_port_registry_and_digest_only_reference() {
    assert_eq!(
        purl::oci(&ImageName::parse("127.0.0.1:5000/acme/x:1"), DIGEST),
        format!("pkg:oci/x@{DIGEST}?repository_url=127.0.0.1:5000%2Facme%2Fx&tag=1")
    );
    let tagless = format!("registry.example.com/acme/Pg-Plugin@{DIGEST}");
    assert_eq!(
        purl::oci(&ImageName::parse(&tagless), DIGEST),
        format!(
            "pkg:oci/pg-plugin@{DIGEST}?repository_url=registry.example.com%2Facme%2FPg-Plugin"
        )
    );
}

#[test]
fn references_split_as_docker_does() {
    let cases = [
        (
            "docker.io/velero/velero:v1.18.2",
            "docker.io",
            "velero/velero",
            Some("v1.18.2"),
        ),
        (
            "127.0.0.1:5000/acme/x:1",
            "127.0.0.1:5000",
            "acme/x",
            Some("1"),
        ),
        ("127.0.0.1:5000/acme/x", "127.0.0.1:5000", "acme/x", None),
        ("localhost/x@sha256:ab", "localhost", "x", None),
        (
            "r.example/a/b:1.0@sha256:ab",
            "r.example",
            "a/b",
            Some("1.0"),
        ),
        ("velero/velero:v1", "docker.io", "velero/velero", Some("v1")),
        ("nginx", "docker.io", "library/nginx", None),
    ];
    for (reference, registry, repository, tag) in cases {
        let expected = ImageName {
            registry,
            repository: repository.to_owned(),
            tag,
        };
        assert_eq!(ImageName::parse(reference), expected, "{reference}");
    }
}

#[test]
fn golang_purls_keep_case_and_encode_what_the_spec_says() {
    // purl-spec tests/types/golang-test.json.
    assert_eq!(
        purl::golang("github.com/gorilla/context", "234fd47e07d1004f0aed9c"),
        "pkg:golang/github.com/gorilla/context@234fd47e07d1004f0aed9c"
    );
    assert_eq!(
        purl::golang("github.com/Azure/go-autorest", "v14.2.0+incompatible"),
        "pkg:golang/github.com/Azure/go-autorest@v14.2.0%2Bincompatible"
    );
    assert_eq!(
        purl::golang("github.com/vmware-tanzu/velero", "(devel)"),
        "pkg:golang/github.com/vmware-tanzu/velero"
    );
    assert_eq!(purl::golang("example", ""), "pkg:golang/example");
}

#[test]
fn subpaths_drop_empty_and_dot_segments_and_encode() {
    assert_eq!(
        purl::subpath("/plugins/velero-plugin-for-aws"),
        "plugins/velero-plugin-for-aws"
    );
    assert_eq!(purl::subpath("/usr/./bin/../a b"), "usr/bin/a%20b");
}

#[test]
fn timestamps_are_rfc3339_utc() {
    assert_eq!(rfc3339_utc(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    assert_eq!(
        rfc3339_utc(1_700_000_000).as_deref(),
        Some("2023-11-14T22:13:20Z")
    );
    assert_eq!(
        rfc3339_utc(951_782_400).as_deref(),
        Some("2000-02-29T00:00:00Z")
    );
    assert_eq!(
        rfc3339_utc(4_107_542_399).as_deref(),
        Some("2100-02-28T23:59:59Z")
    );
    assert_eq!(rfc3339_utc(-1).as_deref(), Some("1969-12-31T23:59:59Z"));
    assert_eq!(
        rfc3339_utc(-62_167_219_200).as_deref(),
        Some("0000-01-01T00:00:00Z")
    );
    assert_eq!(
        rfc3339_utc(253_402_300_799).as_deref(),
        Some("9999-12-31T23:59:59Z")
    );
    assert_eq!(rfc3339_utc(253_402_300_800), None);
    assert_eq!(rfc3339_utc(-62_167_219_201), None);
    assert_eq!(rfc3339_utc(i64::MIN), None);
}

#[test]
fn serial_numbers_are_version_5_style_uuids() {
    let serial = serial_number(b"");
    // SHA-256("") starts e3b0c442 98fc1c14 9afbf4c8 996fb924.
    assert_eq!(serial, "urn:uuid:e3b0c442-98fc-5c14-9afb-f4c8996fb924");
    let uuid = serial.strip_prefix("urn:uuid:").unwrap();
    assert_eq!(&uuid[14..15], "5");
    assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"));
}

#[test]
fn bom_refs_stay_unique_for_repeated_input() {
    let image = SbomImage {
        role: "other",
        plugin_name: None,
        canonical_reference: "docker.io/library/busybox:1",
        digest: DIGEST,
        platform: None,
        binaries: vec![SbomBinary {
            path: "/bin/x",
            go_version: "go1.22.5",
            main_module: None,
            deps: vec![
                GoModule {
                    path: "golang.org/x/sys",
                    version: "v0.1.0",
                    replace: None,
                };
                2
            ],
        }],
    };
    let input = SbomInput {
        tool_name: "velero-airgap",
        tool_version: "0.1.0",
        bundle_name: "velero-bundle",
        velero_release: "1.18.2",
        source_date_epoch: None,
        images: vec![image.clone(), image],
    };
    let doc: serde_json::Value = serde_json::from_slice(&write_sbom(&input)).unwrap();
    let mut refs = Vec::new();
    collect_refs(&doc["metadata"]["component"], &mut refs);
    for component in doc["components"].as_array().unwrap() {
        collect_refs(component, &mut refs);
    }
    let unique: BTreeSet<&String> = refs.iter().collect();
    assert_eq!(unique.len(), refs.len(), "{refs:#?}");
    assert_eq!(refs.len(), 1 + 2 * (1 + 1 + 2));
    assert!(refs.contains(&format!(
        "pkg:oci/busybox@{DIGEST}?repository_url=docker.io%2Flibrary%2Fbusybox&tag=1~2"
    )));
}

fn collect_refs(component: &serde_json::Value, refs: &mut Vec<String>) {
    if let Some(bom_ref) = component["bom-ref"].as_str() {
        refs.push(bom_ref.to_owned());
    }
    for child in component["components"].as_array().into_iter().flatten() {
        collect_refs(child, refs);
    }
}
