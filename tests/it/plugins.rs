//! The plugin checks on real plugin images: binaries compiled by `scripts/mkplugins.sh`
//! (static and dynamic C, Go with build information naming a Velero version, a foreign
//! architecture, whiteouts, collisions), served by a lab registry next to stand-ins for
//! the Velero and AWS plugin images of the default release (Velero 1.18.2). Each case of
//! issue 11 is one build here; `plugin_run` shows the good image really copies its binary
//! under the hardening the rendered values set.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::lab::sources::{self, AWS_PLUGIN, Sources, VELERO, path_of};
use crate::lab::{
    ImageSpec, Registry, RegistryKind, SeedFormat, make_images, pid_alive, read_entry, run_ok,
    script, seed, velero_airgap,
};

/// The layout `mkplugins.sh` writes, once per test process (in a directory of its own,
/// so that test runs at the same time do not share one; those of ended runs are removed);
/// its build cache is kept in the target directory, so that Go compiles the standard
/// library once per checkout.
pub(crate) fn plugin_layout() -> &'static Path {
    const PREFIX: &str = "plugins-layout-";
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        for entry in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ended = name
                .strip_prefix(PREFIX)
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !pid_alive(pid));
            if ended {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let layout = tmp.join(format!("{PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&layout);
        run_ok(
            std::process::Command::new("bash")
                .arg(script("mkplugins.sh"))
                .arg("--cache")
                .arg(tmp.join("mkplugins-cache"))
                .arg(&layout),
        );
        layout
    })
}

/// The canonical reference of a `mkplugins.sh` case, as the config names it.
pub(crate) fn case(name: &str) -> String {
    format!("registry.example.com/plugins/{name}:1.0")
}

/// A lab registry serving Velero, the AWS plugin and the given `mkplugins.sh` cases (plus
/// `extra` images made by `mkimages.py`), and a config naming the cases and extras as
/// plugins (each named after its repository).
pub(crate) fn lab(cases: &[&str], extra: &[ImageSpec]) -> Sources {
    lab_with_velero(cases, extra, ImageSpec::single(VELERO, &[16]))
}

/// [`lab`] with the Velero image made from `velero`.
fn lab_with_velero(cases: &[&str], extra: &[ImageSpec], velero: ImageSpec) -> Sources {
    let registry = Registry::start(RegistryKind::Plain);
    let dir = tempfile::tempdir().expect("temp dir");
    let layout = dir.path().join("layout");
    let mut specs = vec![
        velero,
        ImageSpec::multi_arch(AWS_PLUGIN, &["amd64", "arm64"], &[16]),
    ];
    specs.extend(extra.iter().cloned());
    make_images(&layout, &specs);
    for spec in &specs {
        let all = spec.platforms.len() > 1;
        seed(
            &registry,
            &layout,
            &spec.name,
            path_of(&spec.name),
            SeedFormat::Oci,
            all,
        );
    }
    let plugins = plugin_layout();
    for name in cases {
        let local = format!("lab.test/plugins/{name}:1.0");
        seed(
            &registry,
            plugins,
            &local,
            &format!("plugins/{name}:1.0"),
            SeedFormat::Oci,
            false,
        );
    }
    let mut references: Vec<String> = cases.iter().map(|name| case(name)).collect();
    references.extend(extra.iter().map(|spec| spec.name.clone()));
    let references: Vec<&str> = references.iter().map(String::as_str).collect();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, sources::config_text(&references)).expect("write config");
    Sources {
        registry,
        dir,
        config,
    }
}

/// `build`: exit code, stderr, and `bundle.json` when a bundle was written.
fn build(lab: &Sources, extra: &[&str]) -> (i32, String, Option<Value>) {
    let bundle = lab.path("bundle.tar");
    let (code, _, stderr) = sources::build(lab, &bundle, extra);
    let manifest = bundle
        .exists()
        .then(|| serde_json::from_slice(&read_entry(&bundle, "bundle.json")).unwrap());
    (code, stderr, manifest)
}

/// The one report of the image whose canonical reference is `reference`.
fn report<'a>(manifest: &'a Value, reference: &str) -> &'a Value {
    let image = manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|image| image["canonicalReference"] == reference)
        .unwrap_or_else(|| panic!("{reference} not in {manifest:#}"));
    let reports = image["plugin"].as_object().expect("a plugin report");
    assert_eq!(reports.len(), 1, "{image:#}");
    reports.values().next().unwrap()
}

/// The codes of a report's findings.
fn codes(report: &Value) -> Vec<&str> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| finding["code"].as_str().unwrap())
        .collect()
}

/// A build that must fail on one plugin check: exit 1, the finding named on stderr as an
/// error, and no bundle.
fn refused(cases: &[&str], message: &str) -> String {
    let lab = lab(cases, &[]);
    let (exit, stderr, manifest) = build(&lab, &[]);
    assert_eq!(exit, 1, "{stderr}");
    assert!(manifest.is_none(), "a bundle was written: {stderr}");
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with("error:") && line.contains(message)),
        "{message:?} not in an error line of {stderr}"
    );
    stderr
}

#[test]
fn static_c_plugin_passes_and_is_reported() {
    let lab = lab(&["static-c"], &[]);
    let (exit, stderr, manifest) = build(&lab, &[]);
    assert_eq!(exit, 0, "{stderr}");
    let manifest = manifest.unwrap();
    let static_c = report(&manifest, &case("static-c"));
    assert_eq!(static_c["platform"], "linux/amd64");
    assert_eq!(
        static_c["entrypoint"],
        serde_json::json!([
            "cp-plugin",
            "/plugins/velero-plugin-static-c",
            "/target/velero-plugin-static-c"
        ])
    );
    assert_eq!(static_c["user"], "65532:65532");
    let binary = &static_c["binaries"][0];
    assert_eq!(binary["path"], "/plugins/velero-plugin-static-c");
    assert_eq!(binary["architecture"], "amd64");
    assert_eq!(binary["static"], true);
    // A C program: no Go build information, so compatibility is unknown.
    assert_eq!(codes(static_c), ["no-build-info"], "{static_c:#}");
    // The AWS plugin has a report per bundled platform manifest too; Velero has none.
    report(&manifest, AWS_PLUGIN);
    let velero = manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|image| image["canonicalReference"] == VELERO)
        .unwrap();
    assert!(velero.get("plugin").is_none(), "{velero:#}");
}

#[test]
fn go_plugin_records_the_velero_version_it_was_built_against() {
    let lab = lab(&["go-plugin", "go-plugin-fork"], &[]);
    let (exit, stderr, manifest) = build(&lab, &[]);
    assert_eq!(exit, 0, "{stderr}");
    let manifest = manifest.unwrap();
    let go = &report(&manifest, &case("go-plugin"))["binaries"][0];
    assert_eq!(go["static"], true, "{go:#}");
    assert!(
        go["goVersion"].as_str().unwrap().starts_with("go1."),
        "{go:#}"
    );
    assert!(go["mainModule"].as_str().is_some(), "{go:#}");
    // Replaced by a local stub directory: the required version stays.
    assert_eq!(go["veleroVersion"], "v1.16.1", "{go:#}");
    assert!(codes(report(&manifest, &case("go-plugin"))).is_empty());
    // Replaced by another module's version: that version is what was compiled in.
    let fork = &report(&manifest, &case("go-plugin-fork"))["binaries"][0];
    assert_eq!(fork["veleroVersion"], "v1.17.0", "{fork:#}");
}

#[test]
fn plugin_built_against_a_newer_velero_is_a_warning() {
    let lab = lab(&["go-plugin-new"], &[]);
    let (exit, stderr, manifest) = build(&lab, &[]);
    assert_eq!(exit, 0, "{stderr}");
    let report = report(manifest.as_ref().unwrap(), &case("go-plugin-new"));
    assert_eq!(codes(report), ["newer-plugin-api"], "{report:#}");
    assert!(
        stderr.lines().any(|line| line.starts_with("warning:")
            && line.contains("built against Velero v1.19.0, newer than the server's 1.18")),
        "{stderr}"
    );
}

#[test]
fn dynamic_binary_is_refused() {
    refused(&["dynamic"], "dynamically linked");
}

/// A dynamic plugin whose loader and libraries the Velero image holds (the binary runs in
/// Velero's container) would work: a warning, not an error.
#[test]
fn dynamic_binary_is_a_warning_when_the_velero_image_has_its_libraries() {
    let velero = ImageSpec::single(VELERO, &[16]).options(&[
        "extra=/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2:/lib64/ld-linux-x86-64.so.2",
        "extra=/lib/x86_64-linux-gnu/libc.so.6:/lib/x86_64-linux-gnu/libc.so.6",
    ]);
    let lab = lab_with_velero(&["dynamic"], &[], velero);
    let (exit, stderr, manifest) = build(&lab, &[]);
    assert_eq!(exit, 0, "{stderr}");
    let report = report(manifest.as_ref().unwrap(), &case("dynamic"));
    let binary = &report["binaries"][0];
    assert_eq!(binary["static"], false, "{report:#}");
    assert_eq!(
        binary["interpreter"], "/lib64/ld-linux-x86-64.so.2",
        "{report:#}"
    );
    assert_eq!(
        binary["needed"],
        serde_json::json!(["libc.so.6"]),
        "{report:#}"
    );
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == "dynamic-binary")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(finding["severity"], "warning", "{report:#}");
}

#[test]
fn binary_for_another_architecture_is_refused() {
    refused(&["wrong-arch"], "is built for arm64");
}

#[test]
fn entrypoint_that_does_not_copy_is_refused_unless_allowed() {
    let stderr = refused(
        &["sleep"],
        "not a Velero plugin image: its entrypoint does not copy into /target",
    );
    assert!(
        stderr.contains("--allow-unrecognised-plugin sleep"),
        "{stderr}"
    );
    let lab = lab(&["sleep"], &[]);
    let (exit, stderr, manifest) = build(&lab, &["--allow-unrecognised-plugin", "sleep"]);
    assert_eq!(exit, 0, "{stderr}");
    let manifest = manifest.unwrap();
    let report = report(&manifest, &case("sleep"));
    assert_eq!(report["findings"][0]["code"], "not-a-plugin");
    assert_eq!(report["findings"][0]["severity"], "warning");
    // Recorded, so that an offline re-check judges the same way.
    assert_eq!(
        manifest["renderInputs"]["allowUnrecognisedPlugins"],
        serde_json::json!(["sleep"])
    );
    let verified = velero_airgap()
        .args(["verify", "--plugins"])
        .arg(lab.path("bundle.tar"))
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // A name that is no plugin of the config is a mistake.
    let (exit, stderr, _) = build(&lab, &["--allow-unrecognised-plugin", "slepe"]);
    assert_eq!(exit, 1, "{stderr}");
    assert!(stderr.contains("slepe"), "{stderr}");
}

#[test]
fn binary_removed_by_a_later_layer_is_refused() {
    refused(&["whiteout"], "velero-plugin-whiteout");
}

#[test]
fn csi_plugin_is_refused_with_velero_1_18() {
    refused(&["csi"], "another plugin is already registered");
}

#[test]
fn aws_plugin_configured_twice_is_refused() {
    refused(&["aws-again"], "which the deployment already carries");
}

#[test]
fn two_plugins_with_the_same_binary_name_are_refused() {
    refused(
        &["same-name-a", "same-name-b"],
        "both install /target/velero-plugin-dup",
    );
}

#[test]
fn shell_and_busybox_cp_entrypoints_are_recognised() {
    let lab = lab(&["busybox-style", "cp-r"], &[]);
    let (exit, stderr, manifest) = build(&lab, &[]);
    assert_eq!(exit, 0, "{stderr}");
    let manifest = manifest.unwrap();
    for name in ["busybox-style", "cp-r"] {
        let report = report(&manifest, &case(name));
        assert!(
            !report["binaries"].as_array().unwrap().is_empty(),
            "{name}: {report:#}"
        );
        assert!(
            !codes(report).contains(&"not-a-plugin"),
            "{name}: {report:#}"
        );
    }
}

#[test]
fn plugin_running_as_root_is_a_warning() {
    let root = ImageSpec::single("registry.example.com/acme/velero-plugin-root:1.0", &[4])
        .options(&["user=0:0"]);
    let lab = lab(&[], &[root]);
    let (exit, stderr, manifest) = build(&lab, &[]);
    assert_eq!(exit, 0, "{stderr}");
    let report = report(
        manifest.as_ref().unwrap(),
        "registry.example.com/acme/velero-plugin-root:1.0",
    );
    assert!(codes(report).contains(&"runs-as-root"), "{report:#}");
    assert!(stderr.contains("runs as root"), "{stderr}");
}

#[test]
fn inspect_shows_the_plugin_table() {
    let lab = lab(&["go-plugin"], &[]);
    let (exit, stderr, _) = build(&lab, &[]);
    assert_eq!(exit, 0, "{stderr}");
    let out = velero_airgap()
        .arg("inspect")
        .arg(lab.path("bundle.tar"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("plugins:"), "{text}");
    let row = text
        .lines()
        .find(|line| line.contains("go-plugin") && line.contains("linux/amd64"))
        .unwrap_or_else(|| panic!("no go-plugin row in {text}"));
    for cell in ["velero-plugin-go", "amd64", "yes", "v1.16.1", "65532:65532"] {
        assert!(row.contains(cell), "{cell} not in {row:?}");
    }
    let json = velero_airgap()
        .args(["inspect", "--json"])
        .arg(lab.path("bundle.tar"))
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    let image = json["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|image| image["canonicalReference"] == case("go-plugin"))
        .unwrap();
    assert!(
        image["plugin"]
            .as_object()
            .is_some_and(|reports| reports.len() == 1)
    );
}

#[test]
fn validate_online_shows_the_plugin_report() {
    let lab = lab(&["static-c", "dynamic"], &[]);
    let out = velero_airgap()
        .args(["validate", "--online", "--json", "-c"])
        .arg(&lab.config)
        .args(lab.registry_args())
        .env("DOCKER_CONFIG", lab.path("no-docker-config"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let online = json["online"].as_array().unwrap();
    let find = |reference: &str| {
        online
            .iter()
            .find(|result| result["reference"] == reference)
            .unwrap_or_else(|| panic!("{reference} not in {json:#}"))
    };
    let dynamic = find(&case("dynamic"));
    assert_eq!(dynamic["ok"], false, "{dynamic:#}");
    let reports = dynamic["plugin"].as_object().unwrap();
    let findings = &reports.values().next().unwrap()["findings"];
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .any(|finding| finding["code"] == "dynamic-binary"),
        "{dynamic:#}"
    );
    assert_eq!(find(&case("static-c"))["ok"], true);
    // The text form prints the findings as they come.
    let text = velero_airgap()
        .args(["validate", "--online", "-c"])
        .arg(&lab.config)
        .args(lab.registry_args())
        .env("DOCKER_CONFIG", lab.path("no-docker-config"))
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&text.stdout),
        String::from_utf8_lossy(&text.stderr)
    );
    assert!(all.contains("dynamically linked"), "{all}");
    // And the report as the table inspect prints.
    let table = String::from_utf8_lossy(&text.stdout);
    let row = table
        .lines()
        .find(|line| line.contains("dynamic") && line.contains("linux/amd64"))
        .unwrap_or_else(|| panic!("no row for the dynamic plugin in {table}"));
    for cell in ["velero-plugin-dynamic", "amd64", " no ", "1 error"] {
        assert!(row.contains(cell), "{cell:?} not in {row:?}");
    }
}

/// Runs `NAME` of the OCI layout `layout` with `scripts/run-plugin.sh` (`ctr run`, runc,
/// the restrictions of the rendered securityContext) into a fresh `/target`: exit code,
/// the target directory, and the script's output.
fn run_plugin(layout: &Path, name: &str, scratch: &Path) -> (i32, PathBuf, String) {
    use std::os::unix::fs::PermissionsExt;
    let target = scratch.join(format!("target-{}", name.replace(['/', ':'], "_")));
    std::fs::create_dir_all(&target).unwrap();
    // The plugin runs as 65532, like the emptyDir a pod mounts writable for any user.
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = std::process::Command::new("bash")
        .arg(script("run-plugin.sh"))
        .arg(layout)
        .arg(name)
        .arg(&target)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), target, text)
}

/// The checks and the hardening agree with reality: the plugin image as bundled, run the
/// way Kubernetes runs the init container under the rendered securityContext (read-only
/// root, no capabilities, no privilege escalation, the image's non-root user), leaves its
/// binary in `/target`; the image whose binary a later layer whites out, which the checks
/// refuse, leaves nothing.
#[test]
fn plugin_run_the_bundled_plugin_lands_in_target_under_the_hardening() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let lab = lab(&["static-c"], &[]);
    let (exit, stderr, _) = build(&lab, &[]);
    assert_eq!(exit, 0, "{stderr}");
    let values = String::from_utf8(read_entry(&lab.path("bundle.tar"), "values.yaml")).unwrap();
    let container = values
        .split("- name: ")
        .find(|block| block.starts_with("\"static-c\"\n"))
        .unwrap_or_else(|| panic!("no static-c init container in {values}"));
    for setting in [
        "allowPrivilegeEscalation: false",
        "readOnlyRootFilesystem: true",
        "- \"ALL\"",
        "runAsNonRoot: true",
        "type: \"RuntimeDefault\"",
    ] {
        assert!(container.contains(setting), "{setting} not in {container}");
    }

    // The bundle is an OCI layout: unpacked, run-plugin.sh runs the bundled bytes.
    let layout = lab.path("unpacked");
    std::fs::create_dir_all(&layout).unwrap();
    run_ok(
        std::process::Command::new("tar")
            .arg("-xf")
            .arg(lab.path("bundle.tar"))
            .arg("-C")
            .arg(&layout),
    );
    let (code, target, text) = run_plugin(&layout, &case("static-c"), lab.dir.path());
    assert_eq!(code, 0, "{text}");
    let binary = target.join("velero-plugin-static-c");
    let metadata = std::fs::metadata(&binary).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(metadata.permissions().mode() & 0o777, 0o755, "{text}");
    assert_eq!((metadata.uid(), metadata.gid()), (65532, 65532), "{text}");
    assert!(std::fs::read(&binary).unwrap().starts_with(b"\x7fELF"));

    let (code, target, text) = run_plugin(
        plugin_layout(),
        "lab.test/plugins/whiteout:1.0",
        lab.dir.path(),
    );
    assert_ne!(code, 0, "{text}");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "{text}");
}

/// A copy of the tar `bundle` at `output` with each entry as `edit` makes it (`None`
/// drops it), and `SHA256SUMS` and `bundle.json`'s file list updated to match: every
/// checksum agrees, as after a deliberate edit.
fn rewrite_bundle(bundle: &Path, output: &Path, edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>) {
    use sha2::Digest as _;
    let sha = |bytes: &[u8]| hex::encode(sha2::Sha256::digest(bytes));
    let mut archive = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    let mut entries: Vec<(tar::Header, String, Vec<u8>)> = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        if let Some(edited) = edit(&name, bytes) {
            entries.push((entry.header().clone(), name, edited));
        }
    }
    let hash_of = |entries: &[(tar::Header, String, Vec<u8>)], name: &str| {
        let (_, _, bytes) = entries.iter().find(|(_, n, _)| n == name)?;
        Some((sha(bytes), bytes.len()))
    };
    let manifest_at = entries
        .iter()
        .position(|(_, n, _)| n == "bundle.json")
        .unwrap();
    let mut manifest: Value = serde_json::from_slice(&entries[manifest_at].2).unwrap();
    let files = manifest["files"].as_array_mut().unwrap();
    files.retain(|file| hash_of(&entries, file["name"].as_str().unwrap()).is_some());
    for file in files {
        let (hash, size) = hash_of(&entries, file["name"].as_str().unwrap()).unwrap();
        file["sha256"] = hash.into();
        file["size"] = size.into();
    }
    let mut json = serde_json::to_vec_pretty(&manifest).unwrap();
    json.push(b'\n');
    entries[manifest_at].2 = json;
    let sums_at = entries
        .iter()
        .position(|(_, n, _)| n == "SHA256SUMS")
        .unwrap();
    let sums: String = entries
        .iter()
        .filter(|(_, name, _)| name != "SHA256SUMS")
        .map(|(_, name, bytes)| format!("{}  {name}\n", sha(bytes)))
        .collect();
    entries[sums_at].2 = sums.into_bytes();
    let mut builder = tar::Builder::new(std::fs::File::create(output).unwrap());
    for (mut header, _, bytes) in entries {
        header.set_size(bytes.len() as u64);
        header.set_cksum();
        builder.append(&header, bytes.as_slice()).unwrap();
    }
    builder.finish().unwrap();
}

/// `verify --plugins` and `unpack --plugins` derive the reports and the SBOM from the
/// bundled layers again: an edited report or SBOM, which every checksum agrees with (so
/// plain `verify` passes), is caught, and unpack refuses the bundle before loading it.
#[test]
fn verify_and_unpack_plugins_rederive_reports_and_sbom() {
    let lab = lab(&["go-plugin"], &[]);
    let (exit, stderr, _) = build(&lab, &[]);
    assert_eq!(exit, 0, "{stderr}");
    let bundle = lab.path("bundle.tar");
    let verify = |bundle: &Path, plugins: bool| {
        let mut command = velero_airgap();
        command.arg("verify");
        if plugins {
            command.arg("--plugins");
        }
        let out = command.arg(bundle).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    };
    let (code, text) = verify(&bundle, true);
    assert_eq!(code, 0, "{text}");

    let edited_report = lab.path("report.tar");
    rewrite_bundle(&bundle, &edited_report, |name, bytes| {
        if name != "bundle.json" {
            return Some(bytes);
        }
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("\"v1.16.1\""));
        Some(text.replace("\"v1.16.1\"", "\"v1.18.0\"").into_bytes())
    });
    let (code, text) = verify(&edited_report, false);
    assert_eq!(code, 0, "plain verify trusts the checksums: {text}");
    let (code, text) = verify(&edited_report, true);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("the plugin report of {}", case("go-plugin"))),
        "{text}"
    );

    let edited_sbom = lab.path("sbom.tar");
    rewrite_bundle(&bundle, &edited_sbom, |name, bytes| {
        if name != "sbom.cdx.json" {
            return Some(bytes);
        }
        let text = String::from_utf8(bytes).unwrap();
        Some(
            text.replacen("\"application\"", "\"library\"", 1)
                .into_bytes(),
        )
    });
    let (code, text) = verify(&edited_sbom, false);
    assert_eq!(code, 0, "{text}");
    let (code, text) = verify(&edited_sbom, true);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("sbom.cdx.json"), "{text}");

    let values = lab.path("values-out.yaml");
    let out = velero_airgap()
        .args([
            "unpack",
            "--plugins",
            "--dry-run",
            "--registry",
            "127.0.0.1:1",
        ])
        .arg("--values-out")
        .arg(&values)
        .arg(&edited_report)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the plugin report of"), "{stderr}");
    assert!(!values.exists());
}

/// Readers accept format 1 (no `sbom.cdx.json`, no plugin reports): `verify` and
/// `inspect` read it; `inspect --sbom` and `verify --plugins` say there is nothing to
/// show or compare.
#[test]
fn format_1_bundles_are_still_read() {
    let lab = lab(&["static-c"], &[]);
    let (exit, stderr, _) = build(&lab, &[]);
    assert_eq!(exit, 0, "{stderr}");
    let old = lab.path("format-1.tar");
    rewrite_bundle(&lab.path("bundle.tar"), &old, |name, bytes| match name {
        "sbom.cdx.json" => None,
        "bundle.json" => {
            let mut manifest: Value = serde_json::from_slice(&bytes).unwrap();
            manifest["formatVersion"] = 1.into();
            for image in manifest["images"].as_array_mut().unwrap() {
                image.as_object_mut().unwrap().remove("plugin");
            }
            Some(serde_json::to_vec_pretty(&manifest).unwrap())
        }
        _ => Some(bytes),
    });
    let run = |args: &[&str]| {
        let out = velero_airgap().args(args).arg(&old).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    };
    let (code, text) = run(&["verify"]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = run(&["inspect", "--json"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("\"formatVersion\": 1"), "{text}");
    let (code, text) = run(&["inspect", "--sbom"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("has no SBOM"), "{text}");
    let (code, text) = run(&["verify", "--plugins"]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("format 1"), "{text}");
}
