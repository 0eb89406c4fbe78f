//! `velero-airgap build`, `verify` and `inspect` through the binary, against real
//! registries from the lab.

use crate::lab::sources::{self, AWS_PLUGIN, MONGODB, POSTGRES, Sources, VELERO, build};
use crate::lab::{
    Containerd, RegistryKind, freeze_when, interrupt_at, read_entry, run_with_closed_pipe, signal,
    skopeo, velero_airgap,
};
use serde_json::Value;
use std::path::Path;

fn build_ok(sources: &Sources, output: &Path, extra: &[&str]) -> Value {
    let (code, json, stderr) = build(sources, output, extra);
    assert_eq!(code, 0, "build failed: {stderr}");
    json
}

fn verify(bundle: &Path) -> (i32, String) {
    let out = velero_airgap().arg("verify").arg(bundle).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn inspect_json(bundle: &Path) -> Value {
    let out = velero_airgap()
        .args(["inspect", "--json"])
        .arg(bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Files in `dir` other than the scratch subdirectories, to prove nothing was left.
fn leftovers(dir: &Path, stem: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(std::result::Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(stem))
        .collect()
}

/// Offset in the file of the middle of the largest blob's data.
fn largest_blob_offset(bundle: &Path) -> usize {
    let mut archive = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    let mut best = (0u64, 0u64);
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let size = entry.header().size().unwrap();
        if size > best.0 {
            best = (size, entry.raw_file_position());
        }
    }
    (best.1 + best.0 / 2) as usize
}

#[test]
fn builds_from_a_plain_registry_and_verifies() {
    let sources = Sources::start(RegistryKind::Plain, 256);
    let bundle = sources.path("bundle.tar");
    let summary = build_ok(&sources, &bundle, &[]);
    assert_eq!(summary["images"], 4, "{summary:#}");

    // The sidecar checks with coreutils alone.
    let check = std::process::Command::new("sha256sum")
        .arg("-c")
        .arg("bundle.tar.sha256")
        .current_dir(sources.dir.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let (code, text) = verify(&bundle);
    assert_eq!(code, 0, "{text}");

    let inspect = inspect_json(&bundle);
    let refs: Vec<&str> = inspect["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["canonicalReference"].as_str().unwrap())
        .collect();
    for name in [VELERO, AWS_PLUGIN, POSTGRES, MONGODB] {
        assert!(refs.contains(&name), "{name} missing from {refs:?}");
    }
    let roles: Vec<&str> = inspect["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "velero",
            "aws-plugin",
            "plugin:velero-plugin-postgres",
            "plugin:velero-plugin-mongodb"
        ]
    );
}

#[test]
fn bundle_values_point_at_the_local_registry_pinned_by_digest() {
    let sources = Sources::start(RegistryKind::Plain, 64);
    let bundle = sources.path("bundle.tar");
    let summary = build_ok(&sources, &bundle, &[]);
    let values = String::from_utf8(read_entry(&bundle, "values.yaml")).unwrap();
    let parsed: velero_airgap::yaml::Value = velero_airgap::yaml::from_str(&values).unwrap();
    assert!(parsed["initContainers"].is_sequence(), "{values}");
    assert!(
        parsed["configuration"].is_null() || parsed["configuration"]["extraEnvVars"].is_sequence()
    );
    let lock = summary["imageLock"].as_array().unwrap();
    let digest_of = |name: &str| {
        lock.iter().find(|i| i["reference"] == name).unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        parsed["image"]["repository"],
        "10.244.128.11:5000/library/velero"
    );
    assert_eq!(
        parsed["image"]["tag"].as_str().unwrap(),
        format!("v1.18.2@{}", digest_of(VELERO))
    );
    assert!(values.contains(&format!(
        "image: \"10.244.128.11:5000/acme/velero-plugin-mongodb:0.9.1@{}\"",
        digest_of(MONGODB)
    )));
    // Every tag is quoted.
    for line in values
        .lines()
        .filter(|l| l.trim_start().starts_with("tag:"))
    {
        assert!(line.contains("tag: \""), "{line}");
    }
}

#[test]
fn single_platform_pins_the_platform_manifest_and_keeps_the_source_index() {
    let sources = Sources::start(RegistryKind::Plain, 64);
    let bundle = sources.path("bundle.tar");
    build_ok(&sources, &bundle, &["--platform", "linux/amd64"]);
    let index: Value = serde_json::from_slice(&read_entry(&bundle, "index.json")).unwrap();
    let velero = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == VELERO)
        .unwrap();
    assert_eq!(
        velero["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let manifest: Value = serde_json::from_slice(&read_entry(&bundle, "bundle.json")).unwrap();
    let image = manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["canonicalReference"] == VELERO)
        .unwrap();
    let source_index = image["sourceIndex"]["digest"].as_str().unwrap();
    let hex = source_index.trim_start_matches("sha256:");
    let bytes = read_entry(&bundle, &format!("blobs/sha256/{hex}"));
    let index: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
}

#[test]
fn all_platforms_and_a_platform_list() {
    let sources = Sources::start(RegistryKind::Plain, 32);
    // The vendor plugins are amd64-only, which a platform list refuses: keep
    // only the multi-arch Velero images for this test.
    std::fs::write(&sources.config, sources::config_text(&[])).unwrap();
    let all = sources.path("all.tar");
    build_ok(&sources, &all, &["--platform", "all"]);
    let list = sources.path("list.tar");
    build_ok(&sources, &list, &["--platform", "linux/amd64,linux/arm64"]);
    for bundle in [&all, &list] {
        let index: Value = serde_json::from_slice(&read_entry(bundle, "index.json")).unwrap();
        let velero = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == VELERO)
            .unwrap()
            .clone();
        assert_eq!(
            velero["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        assert_eq!(verify(bundle).0, 0);
    }
}

#[test]
fn missing_platform_names_every_image() {
    let sources = Sources::start(RegistryKind::Plain, 16);
    let bundle = sources.path("bundle.tar");
    let (code, _, stderr) = build(&sources, &bundle, &["--platform", "linux/s390x"]);
    assert_eq!(code, 1, "{stderr}");
    for name in [VELERO, AWS_PLUGIN, POSTGRES, MONGODB] {
        assert!(stderr.contains(name), "{name} not named: {stderr}");
    }
    assert!(stderr.contains("linux/s390x"), "{stderr}");
    assert!(!bundle.exists());
    assert_eq!(
        leftovers(sources.dir.path(), "bundle.tar"),
        Vec::<String>::new()
    );
}

#[test]
fn builds_are_reproducible() {
    let sources = Sources::start(RegistryKind::Plain, 128);
    let first = sources.path("first.tar");
    let second = sources.path("second.tar");
    build_ok(&sources, &first, &[]);
    build_ok(&sources, &second, &["--jobs", "1"]);
    assert!(std::fs::read(&first).unwrap() == std::fs::read(&second).unwrap());
    let zst = sources.path("bundle.tar.zst");
    build_ok(&sources, &zst, &[]);
    assert_eq!(verify(&zst).0, 0);
}

#[test]
fn shared_layers_are_fetched_once() {
    let sources = Sources::start(RegistryKind::Plain, 32);
    let bundle = sources.path("bundle.tar");
    let summary = build_ok(&sources, &bundle, &[]);
    // The amd64 image of each of the 4: its config and its own layer, the base layer they
    // share, and the layer holding the binary of the three plugin images: 4 + 4 + 1 + 3.
    assert_eq!(summary["blobs"], 12, "{summary:#}");
    assert_eq!(summary["blobsFetched"], 12, "{summary:#}");
}

#[test]
fn cache_serves_a_rebuild() {
    let sources = Sources::start(RegistryKind::Plain, 32);
    let cache = sources.path("cache");
    let cache_arg = format!("--cache-dir={}", cache.display());
    build_ok(&sources, &sources.path("a.tar"), &[&cache_arg]);
    let again = build_ok(&sources, &sources.path("b.tar"), &[&cache_arg]);
    // Every layer comes from the cache; the four configs are read again from the
    // registry (while resolving, and by the plugin checks): they say the platform and
    // the user.
    assert_eq!(again["blobs"], 12, "{again:#}");
    assert_eq!(again["blobsCached"], 8, "{again:#}");
    assert_eq!(again["blobsFetched"], 4, "{again:#}");
}

#[test]
fn builds_from_basic_auth_and_tls_registries() {
    for kind in [RegistryKind::BasicAuth, RegistryKind::TlsBasicAuth] {
        let sources = Sources::start(kind, 16);
        let bundle = sources.path("bundle.tar");
        build_ok(&sources, &bundle, &[]);
        assert_eq!(verify(&bundle).0, 0);
    }
}

#[test]
fn wrong_credentials_fail_clearly_without_printing_the_secret() {
    let sources = Sources::start(RegistryKind::BasicAuth, 16);
    let docker = sources.path("bad-docker");
    sources::write_docker_config(&docker, &sources.registry.addr, "lab-user:wrong-Pa55word");
    let bundle = sources.path("bundle.tar");
    let out = velero_airgap()
        .arg("build")
        .arg("-c")
        .arg(&sources.config)
        .arg("-o")
        .arg(&bundle)
        .arg(format!(
            "--mirror=proxy.replicated.com={}",
            sources.registry.addr
        ))
        .arg(format!(
            "--mirror=registry.example.com={}",
            sources.registry.addr
        ))
        .arg(format!("--insecure-registry={}", sources.registry.addr))
        .arg(format!(
            "--docker-config={}",
            docker.join("config.json").display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&sources.registry.addr), "{stderr}");
    assert!(!stderr.contains("wrong-Pa55word"), "{stderr}");
    assert!(!bundle.exists());
}

#[test]
fn registry_gone_fails_with_no_output_file() {
    let sources = Sources::start(RegistryKind::Plain, 16);
    let args = sources.registry_args();
    let config = sources.config.clone();
    let dir = sources.dir;
    drop(sources.registry);
    let bundle = dir.path().join("bundle.tar");
    let out = velero_airgap()
        .arg("build")
        .arg("-c")
        .arg(&config)
        .arg("-o")
        .arg(&bundle)
        .args(args)
        .args(["--retries", "0"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(leftovers(dir.path(), "bundle.tar"), Vec::<String>::new());
}

/// Starts `build` with its stderr piped.
fn spawn_build(sources: &Sources, bundle: &Path, extra: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_velero-airgap"))
        .arg("build")
        .arg("-c")
        .arg(&sources.config)
        .arg("-o")
        .arg(bundle)
        .args(sources.registry_args())
        .args(extra)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts `build` (one job at a time) and returns once the laid-out temp file
/// beside the bundle exists: blobs are being filled.
fn build_until_laid_out(sources: &Sources, bundle: &Path, extra: &[&str]) -> std::process::Child {
    let mut child = spawn_build(sources, bundle, &[&["--jobs", "1"], extra].concat());
    // Stopped as soon as the layout exists: the caller acts, then resumes it.
    freeze_when(&mut child, || {
        !leftovers(sources.dir.path(), "bundle.tar").is_empty()
    });
    child
}

/// The registry goes away while the plugin checks fetch the layers of the plugin and
/// Velero images (every layer of this set: they are all read before the bundle is laid
/// out, see `pack::inspect`).
#[test]
fn registry_stopped_mid_build_leaves_nothing() {
    use std::io::BufRead;
    let sources = Sources::start(RegistryKind::Plain, 48 * 1024);
    let bundle = sources.path("bundle.tar");
    let mut child = spawn_build(&sources, &bundle, &["--jobs", "1", "--retries", "0"]);
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("for the plugin checks") {
            signal(&child, "STOP");
            break;
        }
    }
    assert!(seen.contains("for the plugin checks"), "{seen}");
    let Sources {
        registry,
        dir: keep,
        ..
    } = sources;
    drop(registry);
    signal(&child, "CONT");
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{seen}");
    assert_eq!(leftovers(keep.path(), "bundle.tar"), Vec::<String>::new());
    assert!(!bundle.exists());
}

/// Runs a command `inspect` printed, as a user would paste it into a shell.
fn run_printed(command: &str, containerd: &Containerd) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("CONTAINERD_ADDRESS", &containerd.socket)
        .output()
        .unwrap()
}

#[test]
fn inspect_prints_a_command_that_reads_each_image() {
    let sources = Sources::start(RegistryKind::Plain, 16);
    let containerd = Containerd::start();
    for (name, extra) in [
        ("bundle.tar", &[][..]),
        ("bundle.tar.zst", &[][..]),
        ("bundle.tar.gz", &[][..]),
        ("all.tar", &["--platform", "all"][..]),
    ] {
        let bundle = sources.path(name);
        build_ok(&sources, &bundle, extra);
        let summary = inspect_json(&bundle);
        let text = velero_airgap()
            .arg("inspect")
            .arg(&bundle)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout).into_owned();
        let images = summary["images"].as_array().unwrap();
        assert_eq!(images.len(), 4);
        for image in images {
            let reference = image["canonicalReference"].as_str().unwrap();
            let digest = image["digest"].as_str().unwrap();
            let command = image["readCommand"].as_str().unwrap();
            let docker = image["mediaType"].as_str().unwrap().contains("docker");
            assert_eq!(reference == MONGODB, docker, "{name}: {image}");
            assert!(text.contains(command), "{name}: {command} not in\n{text}");
            let out = run_printed(command, &containerd);
            let output = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "{name}: {command}: {output}");
            if docker {
                assert_eq!(image["readWith"], "ctr", "{name}");
                let listed = containerd.ctr(&["images", "ls", &format!("name=={reference}")]);
                let listed = String::from_utf8_lossy(&listed.stdout);
                assert!(
                    listed.contains(digest),
                    "{name}: {reference} not imported: {listed}"
                );
                let removed =
                    containerd.ctr(&["images", "rm", VELERO, AWS_PLUGIN, POSTGRES, MONGODB]);
                assert!(removed.status.success());
                // What the ctr command is for: skopeo 1.9 does not find Docker-typed entries.
                let skopeo_out = skopeo(&[
                    "inspect",
                    &format!("oci-archive:{}:{reference}", bundle.display()),
                ]);
                assert!(
                    !skopeo_out.status.success(),
                    "{name}: skopeo read {reference}"
                );
                assert!(
                    String::from_utf8_lossy(&skopeo_out.stderr)
                        .contains("no descriptor found for reference"),
                    "{name}: {}",
                    String::from_utf8_lossy(&skopeo_out.stderr)
                );
            } else {
                assert_eq!(image["readWith"], "skopeo", "{name}");
                let inspected: Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(inspected["Digest"], digest, "{name}: {command}");
            }
        }
    }
}

#[test]
fn verify_names_the_damaged_entry() {
    let sources = Sources::start(RegistryKind::Plain, 64);
    let bundle = sources.path("bundle.tar");
    build_ok(&sources, &bundle, &[]);
    let original = std::fs::read(&bundle).unwrap();
    let find = |needle: &[u8]| {
        original
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    };
    let cases: Vec<(&str, usize)> = vec![
        ("values.yaml", find(b"backupsEnabled")),
        ("bundle.json", find(b"\"formatVersion\"") + 3),
        ("blobs/sha256/", largest_blob_offset(&bundle)),
    ];
    for (entry, offset) in cases {
        let mut damaged = original.clone();
        damaged[offset] ^= 0x01;
        let path = sources.path("damaged.tar");
        std::fs::write(&path, &damaged).unwrap();
        let (code, text) = verify(&path);
        assert_eq!(code, 1, "{entry}: {text}");
        assert!(text.contains(entry), "{entry} not named: {text}");
    }
    let truncated = sources.path("truncated.tar");
    std::fs::write(&truncated, &original[..original.len() / 2]).unwrap();
    let (code, text) = verify(&truncated);
    assert_eq!(code, 1, "{text}");
}

#[test]
fn render_lock_reproduces_the_bundle_values() {
    let sources = Sources::start(RegistryKind::Plain, 16);
    let bundle = sources.path("bundle.tar");
    build_ok(&sources, &bundle, &[]);
    let out = velero_airgap()
        .args(["render", "--mode", "airgap", "-c"])
        .arg(&sources.config)
        .arg("--lock")
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(read_entry(&bundle, "values.yaml")).unwrap()
    );
}

#[test]
fn ctrl_c_mid_build_exits_130_and_leaves_nothing() {
    let sources = Sources::start(RegistryKind::Plain, 48 * 1024);
    let bundle = sources.path("bundle.tar");
    let child = build_until_laid_out(&sources, &bundle, &[]);
    let dir = sources.dir.path().to_path_buf();
    signal(&child, "INT");
    signal(&child, "CONT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(leftovers(&dir, "bundle.tar"), Vec::<String>::new());
}

#[test]
fn literal_secrets_are_refused_unless_allowed() {
    let sources = Sources::start(RegistryKind::Plain, 16);
    let mut config = std::fs::read_to_string(&sources.config).unwrap();
    config.push_str("  unsupportedOverrides:\n    builtInExtensions:\n      - name: velero\n        values: |\n          credentials:\n            secretContents:\n              cloud: \"aws_secret_access_key=abc\"\n");
    std::fs::write(&sources.config, config).unwrap();
    let bundle = sources.path("bundle.tar");
    let (code, _, stderr) = build(&sources, &bundle, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("credentials.secretContents"), "{stderr}");
    assert!(stderr.contains("--allow-secrets"), "{stderr}");
    assert!(!stderr.contains("aws_secret_access_key=abc"), "{stderr}");
    assert!(!bundle.exists());
    build_ok(&sources, &bundle, &["--allow-secrets"]);
}

#[test]
fn ctrl_c_while_compressing_leaves_no_bundle() {
    let sources = Sources::start(RegistryKind::Plain, 32 * 1024);
    let bundle = sources.path("bundle.tar.gz");
    let mut child = spawn_build(&sources, &bundle, &[]);
    let stderr = interrupt_at(&mut child, "writing bundle");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert_eq!(
        leftovers(sources.dir.path(), "bundle.tar"),
        Vec::<String>::new()
    );
}

#[test]
fn a_plugin_pinned_to_an_index_gets_values_naming_the_bundled_manifest() {
    use sha2::Digest;
    const MULTI: &str = "registry.example.com/acme/velero-plugin-multi:1.0.0";
    let sources = Sources::start(RegistryKind::Plain, 16);
    let layout = sources.path("multi-layout");
    crate::lab::make_images(
        &layout,
        &[crate::lab::ImageSpec::multi_arch(
            MULTI,
            &["amd64", "arm64"],
            &[16],
        )],
    );
    crate::lab::seed(
        &sources.registry,
        &layout,
        MULTI,
        sources::path_of(MULTI),
        crate::lab::SeedFormat::Oci,
        true,
    );
    let raw = crate::lab::skopeo_ok(&[
        "inspect".to_string(),
        "--raw".to_string(),
        "--tls-verify=false".to_string(),
        format!(
            "docker://{}",
            sources.registry.reference(sources::path_of(MULTI))
        ),
    ]);
    let index = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&raw.stdout)));
    let pinned = format!("{MULTI}@{index}");
    std::fs::write(&sources.config, sources::config_text(&[&pinned])).unwrap();
    let bundle = sources.path("bundle.tar");
    let summary = build_ok(&sources, &bundle, &[]);
    let bundled = summary["imageLock"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == pinned.as_str())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(
        bundled, index,
        "the amd64 manifest is bundled, not the index"
    );
    let values = String::from_utf8(read_entry(&bundle, "values.yaml")).unwrap();
    assert!(
        values.contains(&format!("acme/velero-plugin-multi:1.0.0@{bundled}\"")),
        "{values}"
    );
    assert!(!values.contains(&index), "{values}");
}

/// `velero-airgap build … 2>&1 | head -1`: the reader goes away, the build does not.
#[test]
fn a_closed_pipe_neither_panics_nor_loses_the_bundle() {
    let sources = Sources::start(RegistryKind::Plain, 64);
    let bundle = sources.path("bundle.tar");
    let mut args: Vec<std::ffi::OsString> = vec!["build".into(), "-c".into()];
    args.push(sources.config.clone().into());
    args.extend(["-o".into(), bundle.clone().into()]);
    args.extend(sources.registry_args().into_iter().map(Into::into));
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsString::as_os_str).collect();
    let no_docker_config = sources.path("no-docker-config");
    let envs = [("DOCKER_CONFIG", no_docker_config.as_path())];
    assert_eq!(run_with_closed_pipe(&args, &envs), Some(0));
    let (code, text) = verify(&bundle);
    assert_eq!(code, 0, "{text}");

    // The same with --json on the closed stdout.
    std::fs::remove_file(&bundle).unwrap();
    let mut json = args.clone();
    json.push("--json".as_ref());
    assert_eq!(run_with_closed_pipe(&json, &envs), Some(0));
    assert_eq!(verify(&bundle).0, 0);

    // `inspect … | head -1`: a good bundle is described (to nobody) and exits 0; a file
    // that is not a bundle still exits 1, with its error lost in the closed pipe.
    let inspect = |path: &Path| run_with_closed_pipe(&["inspect".as_ref(), path.as_os_str()], &[]);
    assert_eq!(inspect(&bundle), Some(0));
    let garbage = sources.path("garbage.tar");
    std::fs::write(&garbage, vec![b'x'; 4096]).unwrap();
    assert_eq!(inspect(&garbage), Some(1));
}

/// Runs `velero-airgap ARGS` on a terminal (a pty from `script`) and returns everything it
/// drew there.
fn on_a_terminal(args: &[&str]) -> String {
    let command = std::iter::once(env!("CARGO_BIN_EXE_velero-airgap"))
        .chain(args.iter().copied())
        .map(|arg| format!("'{}'", arg.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// On a terminal, verify draws its pass as a bar, in the units of every other line.
#[test]
fn verify_draws_a_progress_bar_on_a_terminal() {
    let sources = Sources::start(RegistryKind::Plain, 1024);
    let bundle = sources.path("bundle.tar");
    build_ok(&sources, &bundle, &[]);
    let size = std::fs::metadata(&bundle).unwrap().len();
    let drawn = on_a_terminal(&["verify", bundle.to_str().unwrap()]);
    let total = format!("/{:.1} MB", size as f64 / 1e6);
    assert!(drawn.contains("verifying"), "{drawn:?}");
    assert!(drawn.contains(&total), "{total} not in {drawn:?}");
    assert!(drawn.contains(": ok (4 images, 12 blobs"), "{drawn:?}");
}
