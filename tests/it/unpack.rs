//! `velero-airgap unpack` through the binary, against a real registry and a real
//! containerd from the lab.

use crate::lab::proxy::{LoggingProxy, ProxyRecord};
use crate::lab::sources::{AWS_PLUGIN, MONGODB, POSTGRES, Sources, VELERO};
use crate::lab::{
    Containerd, Registry, RegistryKind, freeze_when, keypair, read_entry, signal, skopeo,
    velero_airgap,
};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A bundle built from a fresh source registry; the registry is gone afterwards.
pub(crate) struct Built {
    pub(crate) sources: Sources,
    pub(crate) bundle: PathBuf,
}

pub(crate) fn build_bundle(layer_kib: u64, extra: &[&str]) -> Built {
    build_bundle_with(layer_kib, extra, None)
}

/// Like `build_bundle`, with another config text.
fn build_bundle_with(layer_kib: u64, extra: &[&str], config: Option<String>) -> Built {
    let sources = Sources::start(RegistryKind::Plain, layer_kib);
    if let Some(text) = config {
        std::fs::write(&sources.config, text).unwrap();
    }
    let bundle = sources.path("bundle.tar");
    let out = velero_airgap()
        .arg("build")
        .arg("-q")
        .arg("-c")
        .arg(&sources.config)
        .arg("-o")
        .arg(&bundle)
        .args(sources.registry_args())
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Built { sources, bundle }
}

impl Built {
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.sources.path(name)
    }
}

pub(crate) fn unpack(bundle: &Path, args: &[&str], stdin: Option<&str>) -> (i32, Value, String) {
    let mut command = velero_airgap();
    command.arg("unpack").arg("--json").arg(bundle).args(args);
    // The k0s target's state lives in the test's own directory, never in the machine's.
    if args.contains(&"--k0s-images-dir") && !args.contains(&"--state-dir") {
        command
            .arg("--state-dir")
            .arg(bundle.parent().unwrap().join("state"));
    }
    if let Some(input) = stdin {
        command.write_stdin(input);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn unpack_ok(bundle: &Path, args: &[&str]) -> Value {
    let (code, json, stderr) = unpack(bundle, args, None);
    assert_eq!(code, 0, "unpack failed: {stderr}");
    json
}

/// Every image reference the values make the chart run.
pub(crate) fn value_images(values: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(values).unwrap();
    let yaml: velero_airgap::yaml::Value = velero_airgap::yaml::from_str(&text).unwrap();
    let mut refs = vec![format!(
        "{}:{}",
        yaml["image"]["repository"].as_str().unwrap(),
        yaml["image"]["tag"].as_str().unwrap()
    )];
    for container in yaml["initContainers"].as_sequence().unwrap() {
        refs.push(container["image"].as_str().unwrap().to_string());
    }
    refs.push(
        yaml["configMaps"]["fs-restore-action-config"]["data"]["image"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    refs
}

/// skopeo 1.9 refuses `repo:tag@digest`: ask for `repo@digest` (what CRI asks
/// for too).
pub(crate) fn pullable(reference: &str) -> String {
    match reference.split_once('@') {
        Some((name, digest)) => {
            let repo =
                name.rsplit_once(':').map_or(
                    name,
                    |(repo, tag)| {
                        if tag.contains('/') { name } else { repo }
                    },
                );
            format!("{repo}@{digest}")
        }
        None => reference.to_string(),
    }
}

/// Repositories stored by a lab registry (nothing pushed → empty).
fn stored_repositories(registry: &Registry) -> Vec<String> {
    let root = registry.dir.join("storage/docker/registry/v2/repositories");
    let mut found = Vec::new();
    for org in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for repo in std::fs::read_dir(org.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            // An upload session cancelled by unpack's early push check leaves an empty
            // repository directory: only one holding manifests stores anything.
            if !repo.path().join("_manifests").exists() {
                continue;
            }
            found.push(format!(
                "{}/{}",
                org.file_name().to_string_lossy(),
                repo.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[test]
fn unpack_to_a_plain_registry_then_rerun_is_a_no_op() {
    let built = build_bundle(64, &[]);
    let target = Registry::start(RegistryKind::Plain);
    let values = built.path("values.yaml");
    let audit = built.path("audit.log");
    let args = [
        "--registry",
        &target.addr,
        "--insecure",
        "--values-out",
        values.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ];
    let first = unpack_ok(&built.bundle, &args);
    assert_eq!(first["images"].as_array().unwrap().len(), 4, "{first:#}");
    assert_eq!(first["nothingToDo"], false);
    assert!(
        first["warnings"][0].as_str().unwrap().contains("loopback"),
        "{first:#}"
    );

    // Every image reference in the written values pulls from the target.
    let refs = value_images(&values);
    assert_eq!(refs.len(), 5);
    for reference in &refs {
        assert!(reference.starts_with(&target.addr), "{reference}");
        let out = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}", pullable(reference)),
        ]);
        assert!(
            out.status.success(),
            "{reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let second = unpack_ok(&built.bundle, &args);
    assert_eq!(second["nothingToDo"], true, "{second:#}");
    assert_eq!(second["blobsLoaded"], 0);
    assert_eq!(second["bytes"], 0);

    let log = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[0]["action"], "pushed");
    assert_eq!(lines[7]["action"], "skipped");
    for line in &lines {
        assert_eq!(line["result"], "ok");
        assert!(line["bundleSha256"].as_str().unwrap().len() == 64);
        assert!(line["time"].as_str().unwrap().ends_with('Z'));
    }
}

/// The requests a re-run makes, seen by the lab's logging proxy: the manifests of each image
/// (the top one through its tag, each child of an index by digest) and not one blob.
#[test]
fn rerun_into_a_registry_checks_manifests_not_blobs() {
    let built = build_bundle(16, &["--platform", "all"]);
    let target = Registry::start(RegistryKind::Plain);
    let proxy = LoggingProxy::start();
    let values = built.path("values.yaml");
    let run = || {
        let out = velero_airgap()
            .arg("unpack")
            .arg("--json")
            .arg(&built.bundle)
            .args(["--registry", &target.addr, "--insecure", "--values-out"])
            .arg(&values)
            .env("HTTP_PROXY", proxy.url())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let base = format!("http://{}/v2/", target.addr);
    let is_blob_head = |r: &&ProxyRecord| r.method == "HEAD" && r.target.contains("/blobs/");

    let first = run();
    assert_eq!(first["nothingToDo"], false);
    let records = proxy.records();
    // The proxy sees the blob checks of a first run: their absence below means something.
    assert!(records.iter().any(|r| is_blob_head(&r)), "{records:#?}");

    proxy.clear();
    let second = run();
    assert_eq!(second["nothingToDo"], true, "{second:#}");
    let records = proxy.records();
    assert_eq!(
        records.iter().filter(is_blob_head).count(),
        0,
        "{records:#?}"
    );
    let manifests: Vec<&ProxyRecord> = records
        .iter()
        .filter(|r| r.target.contains("/manifests/"))
        .collect();
    // Before verifying, one upload session is opened and cancelled: the check that the
    // credentials can push.
    let uploads = format!("{base}library/velero/blobs/uploads/");
    let is_upload_check = |r: &ProxyRecord| {
        (r.method == "POST" && r.target == uploads)
            || (r.method == "DELETE" && r.target.starts_with(&uploads))
    };
    assert_eq!(
        records.iter().filter(|r| is_upload_check(r)).count(),
        2,
        "{records:#?}"
    );
    for record in &records {
        assert!(
            record.target == base
                || is_upload_check(record)
                || (record.method == "HEAD" && manifests.contains(&record)),
            "unexpected {record:?}"
        );
    }
    // One per image and one per child of each index, nothing more.
    let bundle: Value = serde_json::from_slice(&read_entry(&built.bundle, "bundle.json")).unwrap();
    let expected: usize = bundle["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image["manifests"].as_array().unwrap().len())
        .sum();
    assert!(expected > 4, "no index in the bundle");
    assert_eq!(manifests.len(), expected, "{manifests:#?}");
}

#[test]
fn unpack_to_a_tls_basic_auth_registry() {
    let built = build_bundle(16, &[]);
    let target = Registry::start(RegistryKind::TlsBasicAuth);
    let values = built.path("values.yaml");
    let ca = target.ca_cert.clone().unwrap();
    let (code, json, stderr) = unpack(
        &built.bundle,
        &[
            "--registry",
            &target.addr,
            "--ca-file",
            ca.to_str().unwrap(),
            "--username",
            Registry::USERNAME,
            "--password-stdin",
            "--local-registry",
            "10.96.0.11:5000",
            "--values-out",
            values.to_str().unwrap(),
        ],
        Some(&format!("{}\n", Registry::PASSWORD)),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains(Registry::PASSWORD));
    assert_eq!(json["valuesAddress"], "10.96.0.11:5000");
    for reference in value_images(&values) {
        assert!(reference.starts_with("10.96.0.11:5000/"), "{reference}");
    }
    let mut flags = target.skopeo_flags("");
    flags.insert(0, "inspect".into());
    flags.push(format!(
        "docker://{}/acme/velero-plugin-postgres:1.2.0",
        target.addr
    ));
    let out = skopeo(&flags);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A wrong password fails clearly, names the registry, prints no secret.
    let (code, _, stderr) = unpack(
        &built.bundle,
        &[
            "--registry",
            &target.addr,
            "--ca-file",
            ca.to_str().unwrap(),
            "--username",
            Registry::USERNAME,
            "--password-stdin",
            "--values-out",
            built.path("other.yaml").to_str().unwrap(),
        ],
        Some("Wr0ng-secret\n"),
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains(&target.addr), "{stderr}");
    assert!(!stderr.contains("Wr0ng-secret"), "{stderr}");
    assert!(!built.path("other.yaml").exists());
}

#[test]
fn values_for_the_default_address_equal_the_bundle_values() {
    let built = build_bundle(16, &[]);
    let dir = built.path("k0s-images");
    let values = built.path("values.yaml");
    unpack_ok(
        &built.bundle,
        &[
            "--k0s-images-dir",
            dir.to_str().unwrap(),
            "--values-out",
            values.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read(&values).unwrap(),
        read_entry(&built.bundle, "values.yaml")
    );
}

#[test]
fn unpack_into_containerd_names_every_reference_of_the_values() {
    let built = build_bundle(64, &[]);
    let containerd = Containerd::start();
    let values = built.path("values.yaml");
    let socket = containerd.socket.to_str().unwrap().to_string();
    let args = [
        "--containerd",
        &socket,
        "--values-out",
        values.to_str().unwrap(),
    ];
    let first = unpack_ok(&built.bundle, &args);
    assert_eq!(first["images"][0]["action"], "imported", "{first:#}");

    let listed = String::from_utf8(
        containerd
            .ctr(&["-n", "k8s.io", "images", "ls", "-q"])
            .stdout,
    )
    .unwrap();
    for reference in value_images(&values) {
        // CRI looks `repo:tag@digest` up as `repo@digest`; both must exist.
        let by_digest = match reference.split_once('@') {
            Some((name, digest)) => {
                let repo = name.rsplit_once(':').map_or(name, |(repo, _)| repo);
                format!("{repo}@{digest}")
            }
            None => reference.clone(),
        };
        assert!(
            listed.lines().any(|l| l == reference),
            "{reference} not in:\n{listed}"
        );
        assert!(
            listed.lines().any(|l| l == by_digest),
            "{by_digest} not in:\n{listed}"
        );
    }
    let check =
        String::from_utf8(containerd.ctr(&["-n", "k8s.io", "images", "check"]).stdout).unwrap();
    let complete = check.lines().filter(|l| l.contains("complete")).count();
    assert_eq!(complete, listed.lines().count(), "{check}");

    let second = unpack_ok(&built.bundle, &args);
    assert_eq!(second["nothingToDo"], true, "{second:#}");
}

#[test]
fn k0s_archive_imports_with_ctr() {
    let built = build_bundle(16, &[]);
    let containerd = Containerd::start();
    let dir = built.path("images");
    let values = built.path("values.yaml");
    let args = [
        "--k0s-images-dir",
        dir.to_str().unwrap(),
        "--values-out",
        values.to_str().unwrap(),
    ];
    unpack_ok(&built.bundle, &args);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar"))
        .collect();
    assert_eq!(files, ["velero-airgap-images.tar"]);
    let archive = dir.join(&files[0]);
    let out = containerd.ctr(&[
        "-n",
        "k8s.io",
        "images",
        "import",
        "--no-unpack",
        archive.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(
        containerd
            .ctr(&["-n", "k8s.io", "images", "ls", "-q"])
            .stdout,
    )
    .unwrap();
    for reference in value_images(&values) {
        assert!(
            listed.lines().any(|l| l == reference),
            "{reference} not in:\n{listed}"
        );
    }
    let again = unpack_ok(&built.bundle, &args);
    assert_eq!(again["nothingToDo"], true, "{again:#}");
}

#[test]
fn tampered_bundle_leaves_the_target_empty() {
    let built = build_bundle(64, &[]);
    let mut bytes = std::fs::read(&built.bundle).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    let tampered = built.path("tampered.tar");
    std::fs::write(&tampered, &bytes).unwrap();
    let target = Registry::start(RegistryKind::Plain);
    let values = built.path("values.yaml");
    let (code, _, stderr) = unpack(
        &tampered,
        &[
            "--registry",
            &target.addr,
            "--insecure",
            "--values-out",
            values.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("verification failed"), "{stderr}");
    assert!(stderr.contains("blobs/sha256/"), "{stderr}");
    assert_eq!(stored_repositories(&target), Vec::<String>::new());
    assert!(!values.exists());
}

/// Appends one hostile entry to a tar being built.
type AddEntry = Box<dyn FnOnce(&mut tar::Builder<std::fs::File>)>;

/// A hand-made tar: the good bundle's entries plus one hostile entry.
fn hostile_bundle(good: &Path, out: &Path, add: impl FnOnce(&mut tar::Builder<std::fs::File>)) {
    let mut builder = tar::Builder::new(std::fs::File::create(out).unwrap());
    let mut archive = tar::Archive::new(std::fs::File::open(good).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut header = entry.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        builder
            .append_data(&mut header, entry.path().unwrap(), data.as_slice())
            .unwrap();
    }
    add(&mut builder);
    builder.finish().unwrap();
}

#[test]
fn hostile_tars_are_refused_and_nothing_lands() {
    let built = build_bundle(16, &[]);
    let dir = built.path("images");
    let outside = built.path("escaped");
    let cases: Vec<(&str, AddEntry)> = vec![
        (
            "symlink",
            Box::new(|b| {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, "blobs/sha256/link", "/etc/passwd")
                    .unwrap();
            }),
        ),
        (
            "parent",
            Box::new(|b| {
                let mut h = tar::Header::new_gnu();
                h.set_size(3);
                let name = b"../escaped";
                h.as_old_mut().name[..name.len()].copy_from_slice(name);
                h.set_cksum();
                b.append(&h, b"bad".as_slice()).unwrap();
            }),
        ),
        (
            "absolute",
            Box::new(|b| {
                let mut h = tar::Header::new_gnu();
                h.set_size(3);
                let name = b"/tmp/velero-airgap-escaped";
                h.as_old_mut().name[..name.len()].copy_from_slice(name);
                h.set_cksum();
                b.append(&h, b"bad".as_slice()).unwrap();
            }),
        ),
        (
            "hardlink",
            Box::new(|b| {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, "blobs/sha256/hard", "values.yaml")
                    .unwrap();
            }),
        ),
        (
            "device",
            Box::new(|b| {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Char);
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
                h.set_size(0);
                b.append_data(&mut h, "blobs/sha256/null", std::io::empty())
                    .unwrap();
            }),
        ),
        (
            "unknown name",
            Box::new(|b| {
                let mut h = tar::Header::new_ustar();
                h.set_size(3);
                b.append_data(&mut h, "notes.txt", b"hi!".as_slice())
                    .unwrap();
            }),
        ),
        (
            "duplicate",
            Box::new(|b| {
                let mut h = tar::Header::new_ustar();
                h.set_size(3);
                b.append_data(&mut h, "values.yaml", b"a: 1".as_slice())
                    .unwrap();
            }),
        ),
    ];
    for (name, add) in cases {
        let hostile = built.path(&format!("{name}.tar"));
        hostile_bundle(&built.bundle, &hostile, add);
        let values = built.path("values.yaml");
        let (code, _, stderr) = unpack(
            &hostile,
            &[
                "--k0s-images-dir",
                dir.to_str().unwrap(),
                "--values-out",
                values.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(code, 1, "{name}: {stderr}");
        assert!(!dir.exists(), "{name}: target touched");
        assert!(!values.exists(), "{name}: values written");
        assert!(!outside.exists(), "{name}: escaped");
        assert!(
            !Path::new("/tmp/velero-airgap-escaped").exists(),
            "{name}: escaped"
        );
    }
}

#[test]
fn platform_mismatch_is_refused() {
    // Only the multi-arch Velero images have an arm64 variant.
    let built = build_bundle_with(
        16,
        &["--platform", "linux/arm64"],
        Some(crate::lab::sources::config_text(&[])),
    );
    let dir = built.path("images");
    let (code, _, stderr) = unpack(
        &built.bundle,
        &[
            "--k0s-images-dir",
            dir.to_str().unwrap(),
            "--values-out",
            built.path("values.yaml").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("linux/arm64"), "{stderr}");
    assert!(!dir.exists());
}

#[test]
fn dry_run_writes_nothing() {
    let built = build_bundle(16, &[]);
    let target = Registry::start(RegistryKind::Plain);
    let values = built.path("values.yaml");
    let audit = built.path("audit.log");
    let json = unpack_ok(
        &built.bundle,
        &[
            "--registry",
            &target.addr,
            "--insecure",
            "--dry-run",
            "--values-out",
            values.to_str().unwrap(),
            "--audit-log",
            audit.to_str().unwrap(),
        ],
    );
    assert_eq!(json["dryRun"], true);
    let names: Vec<&str> = json["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["canonical"].as_str().unwrap())
        .collect();
    for name in [VELERO, AWS_PLUGIN, POSTGRES, MONGODB] {
        assert!(names.contains(&name), "{name}");
    }
    assert!(!values.exists());
    assert!(!audit.exists());
    assert_eq!(stored_repositories(&target), Vec::<String>::new());
}

#[test]
fn push_killed_midway_completes_on_rerun() {
    let built = build_bundle(32 * 1024, &[]);
    let target = Registry::start(RegistryKind::Plain);
    let values = built.path("values.yaml");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_velero-airgap"))
        .arg("unpack")
        .arg(&built.bundle)
        .args(["--registry", &target.addr, "--insecure", "--jobs", "1"])
        .arg("--values-out")
        .arg(&values)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let uploads = target.dir.join("storage/docker/registry/v2/repositories");
    freeze_when(&mut child, || uploads.exists());
    signal(&child, "KILL");
    child.wait().unwrap();
    let json = unpack_ok(
        &built.bundle,
        &[
            "--registry",
            &target.addr,
            "--insecure",
            "--values-out",
            values.to_str().unwrap(),
        ],
    );
    assert_eq!(json["images"].as_array().unwrap().len(), 4);
    for reference in value_images(&values) {
        let out = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}", pullable(&reference)),
        ]);
        assert!(out.status.success(), "{reference}");
    }
}

#[test]
fn import_killed_midway_completes_on_rerun() {
    let built = build_bundle(32 * 1024, &[]);
    let containerd = Containerd::start();
    let values = built.path("values.yaml");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_velero-airgap"))
        .arg("unpack")
        .arg(&built.bundle)
        .arg("--containerd")
        .arg(&containerd.socket)
        .args(["--jobs", "1", "--values-out"])
        .arg(&values)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once an ingest is under way.
    freeze_when(&mut child, || {
        let active = containerd.ctr(&["-n", "k8s.io", "content", "active"]);
        String::from_utf8_lossy(&active.stdout).contains("velero-airgap-")
    });
    signal(&child, "KILL");
    child.wait().unwrap();
    // No name points at incomplete content.
    let listed = String::from_utf8(
        containerd
            .ctr(&["-n", "k8s.io", "images", "ls", "-q"])
            .stdout,
    )
    .unwrap();
    let check =
        String::from_utf8(containerd.ctr(&["-n", "k8s.io", "images", "check"]).stdout).unwrap();
    assert_eq!(
        check.lines().filter(|l| l.contains("complete")).count(),
        listed.lines().count(),
        "{check}"
    );
    unpack_ok(
        &built.bundle,
        &[
            "--containerd",
            containerd.socket.to_str().unwrap(),
            "--values-out",
            values.to_str().unwrap(),
        ],
    );
    let listed = String::from_utf8(
        containerd
            .ctr(&["-n", "k8s.io", "images", "ls", "-q"])
            .stdout,
    )
    .unwrap();
    for reference in value_images(&values) {
        assert!(listed.lines().any(|l| l == reference), "{reference}");
    }
}

#[test]
fn ctrl_c_while_writing_the_k0s_archive_leaves_nothing() {
    let built = build_bundle(48 * 1024, &[]);
    let parent = built.path("k0s");
    std::fs::create_dir(&parent).unwrap();
    let dir = parent.join("images");
    let state = built.path("state");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_velero-airgap"))
        .arg("unpack")
        .arg(&built.bundle)
        .arg("--k0s-images-dir")
        .arg(&dir)
        .arg("--state-dir")
        .arg(&state)
        .arg("--values-out")
        .arg(built.path("values.yaml"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted while the archive is being written in the state directory.
    let partial = || {
        std::fs::read_dir(&state).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        })
    };
    freeze_when(&mut child, partial);
    signal(&child, "INT");
    signal(&child, "CONT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        !partial(),
        "a partial archive was left in the state directory"
    );
    let beside: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(beside, Vec::<String>::new(), "files beside the images dir");
    assert!(!dir.exists(), "the images dir was created for nothing");
    assert!(!built.path("values.yaml").exists());
}

#[test]
fn an_unwritable_values_file_stops_before_loading() {
    let built = build_bundle(16, &[]);
    let dir = built.path("images");
    let audit = built.path("audit.log");
    let (code, _, stderr) = unpack(
        &built.bundle,
        &[
            "--k0s-images-dir",
            dir.to_str().unwrap(),
            "--values-out",
            built.path("no-such-dir/values.yaml").to_str().unwrap(),
            "--audit-log",
            audit.to_str().unwrap(),
        ],
        None,
    );
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("no-such-dir"), "{stderr}");
    assert!(!dir.exists(), "images were loaded");
}

#[test]
fn require_signature_for_an_unknown_plugin_is_refused() {
    let built = build_bundle(16, &[]);
    let (_, public) = keypair(built.sources.dir.path(), "k");
    let dir = built.path("images");
    let (code, _, stderr) = unpack(
        &built.bundle,
        &[
            "--k0s-images-dir",
            dir.to_str().unwrap(),
            "--values-out",
            built.path("values.yaml").to_str().unwrap(),
            "--verify-key",
            public.to_str().unwrap(),
            "--require-signature",
            "velero-plugin-postgress",
        ],
        None,
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("velero-plugin-postgress"), "{stderr}");
    assert!(!dir.exists());
}

/// A containerd socket that is not there: the hint and the system's error, each once.
#[test]
fn a_missing_containerd_socket_is_named_once() {
    let built = build_bundle(16, &[]);
    let socket = built.path("no-such.sock");
    let values = built.path("values.yaml");
    let (code, _, stderr) = unpack(
        &built.bundle,
        &[
            "--containerd",
            socket.to_str().unwrap(),
            "--values-out",
            values.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some(
            format!(
                "error: cannot connect to containerd at {}: no socket there: is containerd running? check --containerd SOCKET: transport error: No such file or directory (os error 2)",
                socket.display()
            )
            .as_str()
        ),
        "{stderr}"
    );
}

/// unpack's registry hints name unpack's flags (`--registry`, `--insecure`), never build's
/// (`--mirror`, `--insecure-registry`).
#[test]
fn registry_hints_name_unpack_flags() {
    let built = build_bundle(16, &[]);
    let values = built.path("values.yaml");
    let values = values.to_str().unwrap();
    let stderr_of = |args: &[&str]| {
        let (code, _, stderr) = unpack(&built.bundle, args, None);
        assert_eq!(code, 3, "{stderr}");
        assert!(!stderr.contains("--mirror"), "{stderr}");
        assert!(!stderr.contains("--insecure-registry"), "{stderr}");
        stderr.lines().last().unwrap_or_default().to_string()
    };

    // Nothing listens there.
    let nowhere = format!("127.0.0.1:{}", crate::lab::free_port());
    let line = stderr_of(&[
        "--registry",
        &nowhere,
        "--insecure",
        "--retries",
        "0",
        "--values-out",
        values,
    ]);
    // Images are pushed in parallel: any of them may be the one that fails.
    assert!(
        line.starts_with(&format!(
            "error: cannot reach registry {nowhere} (for {nowhere}/library/"
        )),
        "{line}"
    );
    assert!(
        line.contains(", 1 attempt(s)); check that it runs and that --registry is right: "),
        "{line}"
    );

    // A plain-HTTP registry spoken to with TLS.
    let registry = Registry::start(RegistryKind::Plain);
    let line = stderr_of(&["--registry", &registry.addr, "--values-out", values]);
    let expected = format!(
        "error: TLS handshake with registry {} failed (add its CA with --ca-file, or pass --insecure for a plain-HTTP registry): ",
        registry.addr
    );
    assert!(line.starts_with(&expected), "{line}");
}

/// One definition of "blobs" (the images' config and layer blobs, each once) and one unit
/// family (kB, MB) in build, verify, inspect and unpack; a no-op re-run says so and
/// nothing else.
#[test]
fn every_command_counts_the_same_blobs() {
    let sources = Sources::start(RegistryKind::Plain, 64);
    let bundle = sources.path("bundle.tar");
    let (code, built, stderr) = crate::lab::sources::build(&sources, &bundle, &[]);
    assert_eq!(code, 0, "{stderr}");
    // 4 configs, 4 layers of their own, one base layer they share and the binary layers
    // of the three plugin images.
    assert_eq!(built["blobs"], 12, "{built:#}");
    let bytes = built["bytes"].as_u64().unwrap();

    let json = |args: &[&std::ffi::OsStr]| -> Value {
        let out = velero_airgap().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let verified = json(&["verify".as_ref(), "--json".as_ref(), bundle.as_os_str()]);
    assert_eq!(verified["blobs"], 12, "{verified:#}");
    let inspected = json(&["inspect".as_ref(), "--json".as_ref(), bundle.as_os_str()]);
    assert_eq!(inspected["blobs"]["blobs"], 12, "{inspected:#}");
    assert_eq!(inspected["blobs"]["bytes"], bytes, "{inspected:#}");
    let inspect_text = velero_airgap()
        .arg("inspect")
        .arg(&bundle)
        .output()
        .unwrap();
    let inspect_text = String::from_utf8_lossy(&inspect_text.stdout).into_owned();
    assert!(inspect_text.contains("\nblobs:     12 ("), "{inspect_text}");
    assert!(!inspect_text.contains("iB"), "{inspect_text}");

    let target = Registry::start(RegistryKind::Plain);
    let values = sources.path("values.yaml");
    let to_registry = [
        "--registry",
        &target.addr,
        "--insecure",
        "--values-out",
        values.to_str().unwrap(),
    ];
    let first = unpack_ok(&bundle, &to_registry);
    assert_eq!(
        (
            &first["blobs"],
            &first["blobsLoaded"],
            &first["blobsMounted"],
            &first["blobsSkipped"]
        ),
        (&12.into(), &12.into(), &0.into(), &0.into()),
        "{first:#}"
    );
    assert_eq!(first["bytes"], bytes, "{first:#}");
    let again = unpack_ok(&bundle, &to_registry);
    assert_eq!(
        (
            &again["blobs"],
            &again["blobsLoaded"],
            &again["blobsSkipped"]
        ),
        (&12.into(), &0.into(), &12.into()),
        "{again:#}"
    );

    let images = sources.path("images");
    let to_k0s = [
        "--k0s-images-dir",
        images.to_str().unwrap(),
        "--values-out",
        values.to_str().unwrap(),
    ];
    let first = unpack_ok(&bundle, &to_k0s);
    assert_eq!(
        (&first["blobs"], &first["blobsLoaded"]),
        (&12.into(), &12.into()),
        "{first:#}"
    );
    assert_eq!(first["bytes"], bytes, "{first:#}");
    let again = unpack_ok(&bundle, &to_k0s);
    assert_eq!(
        (&again["blobsLoaded"], &again["blobsSkipped"]),
        (&0.into(), &12.into()),
        "{again:#}"
    );

    // The no-op run in words: one line after the progress, and nothing else.
    let out = velero_airgap()
        .arg("unpack")
        .arg(&bundle)
        .args(to_k0s)
        .arg("--state-dir")
        .arg(bundle.parent().unwrap().join("state"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: Vec<&str> = stderr
        .lines()
        .skip_while(|line| !line.starts_with("skipped "))
        .skip_while(|line| line.starts_with("skipped "))
        .collect();
    assert_eq!(
        summary,
        [format!(
            "k0s images directory {} already has every image: nothing to load",
            images.display()
        )],
        "{stderr}"
    );
}

/// `-q` prints only errors: every warning of build, verify, validate and unpack is
/// silenced (each shows without `-q`).
#[test]
fn quiet_prints_nothing_but_errors() {
    let sources = Sources::start(RegistryKind::Plain, 16);
    let (_, public) = keypair(sources.dir.path(), "k");
    let bundle = sources.path("bundle.tar");
    let target = Registry::start(RegistryKind::Plain);
    let values = sources.path("values.yaml");
    let registry_args = sources.registry_args();
    let mut build: Vec<&str> = vec!["build", "-c", sources.config.to_str().unwrap()];
    build.extend(["-o", bundle.to_str().unwrap()]);
    build.extend(registry_args.iter().map(String::as_str));
    let verify_key = format!("--verify-key={}", public.display());
    let commands: [(Vec<&str>, &str); 4] = [
        (build, "image signatures were not checked"),
        (
            vec!["verify", bundle.to_str().unwrap(), &verify_key],
            "is unsigned",
        ),
        (
            vec!["validate", "-c", sources.config.to_str().unwrap()],
            "is not pinned by digest",
        ),
        (
            vec![
                "unpack",
                bundle.to_str().unwrap(),
                "--registry",
                &target.addr,
                "--insecure",
                "--values-out",
                values.to_str().unwrap(),
            ],
            "a loopback address",
        ),
    ];
    for (args, warning) in commands {
        let loud = velero_airgap()
            .args(&args)
            .env("DOCKER_CONFIG", sources.path("no-docker-config"))
            .output()
            .unwrap();
        let loud_stderr = String::from_utf8_lossy(&loud.stderr);
        assert_eq!(loud.status.code(), Some(0), "{args:?}: {loud_stderr}");
        assert!(loud_stderr.contains(warning), "{args:?}: {loud_stderr}");
        let quiet = velero_airgap()
            .arg("-q")
            .args(&args)
            .env("DOCKER_CONFIG", sources.path("no-docker-config"))
            .output()
            .unwrap();
        assert_eq!(quiet.status.code(), Some(0), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&quiet.stderr), "", "{args:?}");
    }
}

/// What can be checked in seconds is checked before the verification pass, which reads the
/// whole bundle: here the blob section is damaged, so a run that verified first would fail
/// on that instead, and name the bundle rather than the flag.
#[test]
fn cheap_checks_fail_before_the_long_verification() {
    let built = build_bundle(64, &[]);
    let damaged = built.path("damaged.tar");
    std::fs::copy(&built.bundle, &damaged).unwrap();
    let size = std::fs::metadata(&damaged).unwrap().len();
    crate::lab::bundles::flip_byte(&damaged, size / 2);
    let values = built.path("values.yaml");
    let values = values.to_str().unwrap();
    let plain = Registry::start(RegistryKind::Plain);
    let guarded = Registry::start(RegistryKind::BasicAuth);
    let missing = built.path("missing/dir");
    let missing = missing.to_str().unwrap();
    let values_in_missing = format!("{missing}/values.yaml");
    let log_in_missing = format!("{missing}/audit.log");
    let socket = built.path("no-containerd.sock");
    let socket = socket.to_str().unwrap();
    let log = built.path("audit.log").to_str().unwrap().to_string();

    let cases: Vec<(&str, Vec<&str>, Option<&str>, &str)> = vec![
        (
            "values file",
            vec![
                "--registry",
                &plain.addr,
                "--insecure",
                "--values-out",
                &values_in_missing,
            ],
            None,
            "missing/dir/values.yaml",
        ),
        (
            "audit log",
            vec![
                "--registry",
                &plain.addr,
                "--insecure",
                "--values-out",
                values,
                "--audit-log",
                &log_in_missing,
            ],
            None,
            "missing/dir/audit.log",
        ),
        (
            "registry credentials",
            vec![
                "--registry",
                &guarded.addr,
                "--insecure",
                "--values-out",
                values,
                "--username",
                "intruder",
                "--password-stdin",
                "--audit-log",
                &log,
            ],
            Some("wrong-password\n"),
            &guarded.addr,
        ),
        (
            "containerd socket",
            vec!["--containerd", socket, "--values-out", values],
            None,
            "no-containerd.sock",
        ),
    ];
    for (what, args, stdin, named) in cases {
        let (code, _, stderr) = unpack(&damaged, &args, stdin);
        assert_ne!(code, 0, "{what}: {stderr}");
        assert!(!stderr.contains("verification failed"), "{what}: {stderr}");
        assert!(stderr.contains(named), "{what}: {stderr}");
        assert!(!std::path::Path::new(values).exists(), "{what}");
    }
    // A run refused early is in the audit log like any other failed run.
    let logged = std::fs::read_to_string(&log).unwrap();
    let line: Value = serde_json::from_str(logged.lines().last().unwrap()).unwrap();
    assert_eq!(line["result"], "failed", "{logged}");
    assert!(
        line["error"].as_str().unwrap().contains(&guarded.addr),
        "{logged}"
    );
    // With every flag right, the damage is what stops the run.
    let (code, _, stderr) = unpack(
        &damaged,
        &[
            "--registry",
            &plain.addr,
            "--insecure",
            "--values-out",
            values,
        ],
        None,
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("verification failed"), "{stderr}");
    assert_eq!(stored_repositories(&plain), Vec::<String>::new());
}
