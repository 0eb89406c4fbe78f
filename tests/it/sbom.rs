//! `sbom.cdx.json` of a real bundle: checked against the official CycloneDX 1.6 JSON
//! schema, offline (`tests/fixtures/cyclonedx/validate.py` under a Python with
//! `jsonschema` and `rfc3987`; without one the tests fail: a check that cannot run must
//! not pass), placed and listed as the format says, reproducible, and printed by
//! `inspect --sbom`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::lab::sources::{AWS_PLUGIN, Sources, VELERO};
use crate::lab::{read_entry, velero_airgap};
use crate::plugins::{case, lab};

/// `build` with `SOURCE_DATE_EPOCH` as given; fails the test unless it succeeds.
fn build(lab: &Sources, output: &Path, source_date_epoch: Option<&str>) {
    let mut command = velero_airgap();
    command
        .arg("build")
        .arg("-c")
        .arg(&lab.config)
        .arg("-o")
        .arg(output)
        .args(lab.registry_args())
        .env("DOCKER_CONFIG", lab.path("no-docker-config"))
        .env_remove("SOURCE_DATE_EPOCH");
    if let Some(epoch) = source_date_epoch {
        command.env("SOURCE_DATE_EPOCH", epoch);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cyclonedx")
}

/// A Python that can run `validate.py`: `$SBOM_SCHEMA_PYTHON` if set, else Debian's
/// `/usr/bin/python3` (where python3-jsonschema installs, whatever `python3` is first on
/// `PATH`), else `python3`.
fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let candidates: Vec<String> = match std::env::var("SBOM_SCHEMA_PYTHON") {
            Ok(python) => vec![python],
            Err(_) => vec!["/usr/bin/python3".into(), "python3".into()],
        };
        candidates
            .iter()
            .find(|candidate| {
                Command::new(candidate)
                    .args(["-c", "import jsonschema, rfc3987"])
                    .output()
                    .is_ok_and(|output| output.status.success())
            })
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no Python with the modules jsonschema and rfc3987 among {candidates:?}: \
                     the SBOM cannot be checked against the CycloneDX schema. On Debian: \
                     apt-get install python3-jsonschema python3-rfc3987"
                )
            })
    })
}

/// Runs `validate.py` on documents (written into `dir` as `<name>.cdx.json`); returns,
/// per document, whether it was accepted, and what the script printed.
fn validate(dir: &Path, documents: &[(&str, &[u8])]) -> (Vec<bool>, String) {
    let files: Vec<PathBuf> = documents
        .iter()
        .map(|(name, document)| {
            let file = dir.join(format!("{name}.cdx.json"));
            std::fs::write(&file, document).unwrap();
            file
        })
        .collect();
    let output = Command::new(python())
        .arg(fixtures().join("validate.py"))
        .args(&files)
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // 0 all valid, 1 some invalid; anything else means nothing was checked.
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "validate.py could not check ({}):\n{printed}",
        output.status
    );
    let verdicts = files
        .iter()
        .map(|file| {
            let file = file.display();
            let valid = printed.contains(&format!("{file}: valid\n"));
            let invalid = printed.contains(&format!("{file}: INVALID\n"));
            assert!(valid != invalid, "no verdict on {file}:\n{printed}");
            valid
        })
        .collect();
    (verdicts, printed)
}

/// The names of a tar's entries, in order.
fn entry_names(bundle: &Path) -> Vec<String> {
    let mut archive = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|entry| entry.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
fn sbom_of_a_real_bundle_validates_and_is_placed_listed_and_printed() {
    let lab = lab(&["go-plugin", "static-c"], &[]);
    let bundle = lab.path("bundle.tar");
    build(&lab, &bundle, Some("1700000000"));
    let sbom = read_entry(&bundle, "sbom.cdx.json");

    // Right after values.yaml; in SHA256SUMS and bundle.json; format version 2.
    let names = entry_names(&bundle);
    let values = names.iter().position(|name| name == "values.yaml").unwrap();
    assert_eq!(names[values + 1], "sbom.cdx.json", "{names:?}");
    let sums = String::from_utf8(read_entry(&bundle, "SHA256SUMS")).unwrap();
    let hex = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&sbom));
    assert!(sums.contains(&format!("{hex}  sbom.cdx.json")), "{sums}");
    let manifest: Value = serde_json::from_slice(&read_entry(&bundle, "bundle.json")).unwrap();
    assert_eq!(manifest["formatVersion"], 2);
    assert!(
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|file| file["name"] == "sbom.cdx.json" && file["sha256"] == hex),
        "{manifest:#}"
    );

    // inspect --sbom prints exactly the bundled document.
    let printed = velero_airgap()
        .args(["inspect", "--sbom"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(printed.status.success());
    assert_eq!(printed.stdout, sbom);

    // Valid CycloneDX 1.6; and the validator does reject what the schema forbids.
    let mut broken: Value = serde_json::from_slice(&sbom).unwrap();
    broken["components"][0]["type"] = "docker-image".into();
    let broken = serde_json::to_vec(&broken).unwrap();
    let (verdicts, printed) = validate(lab.dir.path(), &[("bundle", &sbom), ("broken", &broken)]);
    assert_eq!(verdicts, [true, false], "{printed}");

    // What it describes.
    let doc: Value = serde_json::from_slice(&sbom).unwrap();
    assert_eq!(doc["specVersion"], "1.6");
    assert_eq!(doc["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
    let components = doc["components"].as_array().unwrap();
    let references: Vec<&str> = manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image["canonicalReference"].as_str().unwrap())
        .collect();
    assert_eq!(components.len(), references.len(), "{doc:#}");
    for (component, image) in components
        .iter()
        .zip(manifest["images"].as_array().unwrap())
    {
        assert_eq!(component["type"], "container");
        let purl = component["purl"].as_str().unwrap();
        assert!(
            purl.starts_with("pkg:oci/") && purl.contains(image["digest"].as_str().unwrap()),
            "{purl} for {image:#}"
        );
    }
    for reference in [VELERO, AWS_PLUGIN] {
        assert!(references.contains(&reference));
    }
    let go_plugin = components
        .iter()
        .zip(&references)
        .find(|(_, reference)| **reference == case("go-plugin"))
        .unwrap()
        .0;
    let program = &go_plugin["components"][0];
    assert_eq!(program["type"], "application", "{go_plugin:#}");
    let libraries = program["components"].as_array().unwrap();
    let velero = libraries
        .iter()
        .find(|library| library["name"] == "github.com/vmware-tanzu/velero")
        .unwrap_or_else(|| panic!("no Velero module in {program:#}"));
    assert_eq!(velero["type"], "library");
    // Replaced by a local stub directory: no release to name, the required one is the
    // pedigree.
    assert_eq!(
        velero["pedigree"]["ancestors"][0]["purl"],
        "pkg:golang/github.com/vmware-tanzu/velero@v1.16.1"
    );
    let program_ref = program["bom-ref"].as_str().unwrap();
    assert!(
        doc["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|dependency| dependency["ref"] == program_ref
                && dependency["dependsOn"].as_array().unwrap().len() == libraries.len()),
        "{doc:#}"
    );
}

#[test]
fn sbom_is_reproducible_and_dated_only_by_source_date_epoch() {
    let lab = lab(&["go-plugin"], &[]);
    let first = lab.path("first.tar");
    let second = lab.path("second.tar");
    build(&lab, &first, Some("1700000000"));
    build(&lab, &second, Some("1700000000"));
    assert_eq!(
        read_entry(&first, "sbom.cdx.json"),
        read_entry(&second, "sbom.cdx.json")
    );
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );
    let undated = lab.path("undated.tar");
    build(&lab, &undated, None);
    let doc: Value = serde_json::from_slice(&read_entry(&undated, "sbom.cdx.json")).unwrap();
    assert!(doc["metadata"].get("timestamp").is_none(), "{doc:#}");
    // The serial number follows the content.
    let dated: Value = serde_json::from_slice(&read_entry(&first, "sbom.cdx.json")).unwrap();
    assert_ne!(doc["serialNumber"], dated["serialNumber"]);
}
