//! Unit tests of the SBOM's parts: purls, serial numbers, bom-refs. Schema validation
//! is in the integration tests (`tests/it/sbom.rs`).

use super::purl;
use super::stamp::serial_number;
use super::*;
use crate::plugin::ManifestPrograms;

const DIGEST: &str = "sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1";

fn reference(text: &str) -> Reference {
    Reference::parse(text).unwrap()
}

fn digest() -> Digest {
    DIGEST.parse().unwrap()
}

#[test]
fn oci_purls_name_the_repository_and_tag() {
    assert_eq!(
        purl::oci(&reference("docker.io/library/debian:latest"), &digest()),
        format!("pkg:oci/debian@{DIGEST}?repository_url=docker.io%2Flibrary%2Fdebian&tag=latest")
    );
    assert_eq!(
        purl::oci(&reference("127.0.0.1:5000/acme/x:1"), &digest()),
        format!("pkg:oci/x@{DIGEST}?repository_url=127.0.0.1:5000%2Facme%2Fx&tag=1")
    );
    assert_eq!(
        purl::oci(
            &reference(&format!("registry.example.com/acme/pg-plugin@{DIGEST}")),
            &digest()
        ),
        format!(
            "pkg:oci/pg-plugin@{DIGEST}?repository_url=registry.example.com%2Facme%2Fpg-plugin"
        )
    );
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
    let module = |path: &str| Module {
        path: path.into(),
        version: "v0.1.0".into(),
        replace: None,
    };
    let programs = [ManifestPrograms {
        manifest: digest(),
        platform: "linux/amd64".into(),
        programs: vec![(
            "/bin/x".into(),
            GoBuildInfo {
                go_version: "go1.22.5".into(),
                path: None,
                main: None,
                deps: vec![module("golang.org/x/sys"), module("golang.org/x/sys")],
                settings: vec![],
            },
        )],
    }];
    let busybox = reference("docker.io/library/busybox:1");
    let image = SbomImage {
        role: &Role::Other,
        reference: &busybox,
        digest: &programs[0].manifest,
        manifests: &programs,
    };
    let tool = Tool {
        name: "velero-airgap".into(),
        version: "0.1.0".into(),
    };
    let input = SbomInput {
        tool: &tool,
        velero_release: "1.18.2",
        timestamp: None,
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
    assert!(doc["metadata"].get("timestamp").is_none());
}

fn collect_refs(component: &serde_json::Value, refs: &mut Vec<String>) {
    if let Some(bom_ref) = component["bom-ref"].as_str() {
        refs.push(bom_ref.to_owned());
    }
    for child in component["components"].as_array().into_iter().flatten() {
        collect_refs(child, refs);
    }
}
