//! Embedded Cluster's registry as the field has it (the lab's `--ec` registry: HTTPS with
//! EC's self-signed CA:FALSE certificate, htpasswd user `embedded-cluster`): `unpack` with
//! its certificate pinned or with `--insecure`, `build` and `validate --online` with
//! `--insecure-registry`, and the README's commands for it, run as written.

use std::path::Path;
use std::process::Command;

use crate::lab::sources::Sources;
use crate::lab::{Registry, RegistryKind, skopeo, velero_airgap};
use crate::unpack::{build_bundle, pullable, unpack, value_images};

/// The warning for an insecure registry reached over TLS without verification.
fn unverified_warning(addr: &str) -> String {
    format!("registry {addr} is insecure: its TLS certificate is not verified")
}

/// The warning for an insecure registry reached over plain HTTP.
fn plain_http_warning(addr: &str) -> String {
    format!("registry {addr} is insecure: it is reached over plain HTTP")
}

/// The `--ec` registry's files: its certificate (the registry-tls Secret's `tls.crt`) and
/// the directory holding the Docker config from the registry-creds Secret.
fn ec_files(registry: &Registry) -> (String, String) {
    let ec = registry.ec_dir.as_ref().expect("an --ec registry");
    (
        ec.join("tls.crt").display().to_string(),
        ec.join("docker").display().to_string(),
    )
}

/// Every image the values at `values` name pulls from `registry`, as containerd would:
/// skopeo (Go's TLS, which accepts EC's certificate) with the certificate and the password.
fn assert_values_pull(registry: &Registry, values: &Path) {
    let references = value_images(values);
    assert_eq!(references.len(), 5, "{references:?}");
    for reference in references {
        assert!(reference.starts_with(&registry.addr), "{reference}");
        let mut args = vec!["inspect".to_string(), "--raw".to_string()];
        args.extend(registry.skopeo_flags(""));
        args.push(format!("docker://{}", pullable(&reference)));
        let out = skopeo(&args);
        assert!(
            out.status.success(),
            "{reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// How many lines of `text` contain `needle`.
fn lines_with(text: &str, needle: &str) -> usize {
    text.lines().filter(|line| line.contains(needle)).count()
}

#[test]
fn unpack_into_the_ec_registry_with_its_certificate_pinned() {
    let built = build_bundle(16, &[]);
    let target = Registry::start(RegistryKind::EmbeddedCluster);
    let (certificate, docker) = ec_files(&target);
    let values = built.path("values.yaml");
    let values_arg = values.to_str().unwrap();

    // Without the certificate: refused, nothing written, and the error says what to do.
    let (code, _, stderr) = unpack(
        &built.bundle,
        &[
            "--registry",
            &target.addr,
            "--docker-config",
            &docker,
            "--values-out",
            values_arg,
        ],
        None,
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains(&target.addr), "{stderr}");
    assert!(
        stderr.contains("--ca-file") && stderr.contains("--insecure"),
        "{stderr}"
    );
    assert!(!values.exists());

    // With it: loaded, verified, no warning about the registry.
    let args = [
        "--registry",
        &target.addr,
        "--ca-file",
        &certificate,
        "--docker-config",
        &docker,
        "--values-out",
        values_arg,
    ];
    let (code, json, stderr) = unpack(&built.bundle, &args, None);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["images"].as_array().unwrap().len(), 4, "{json:#}");
    assert!(!stderr.contains("insecure"), "{stderr}");
    assert!(
        !json["warnings"].to_string().contains("insecure"),
        "{json:#}"
    );
    assert_values_pull(&target, &values);

    let (code, again, stderr) = unpack(&built.bundle, &args, None);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(again["nothingToDo"], true, "{again:#}");
}

#[test]
fn unpack_insecure_into_the_ec_registry_warns_once() {
    let built = build_bundle(16, &[]);
    let target = Registry::start(RegistryKind::EmbeddedCluster);
    let (_, docker) = ec_files(&target);
    let values = built.path("values.yaml");
    let (code, json, stderr) = unpack(
        &built.bundle,
        &[
            "--registry",
            &target.addr,
            "--insecure",
            "--docker-config",
            &docker,
            "--values-out",
            values.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    let warning = unverified_warning(&target.addr);
    let in_summary: Vec<_> = json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w.as_str().unwrap().contains(&warning))
        .collect();
    assert_eq!(in_summary.len(), 1, "{json:#}");
    assert_eq!(lines_with(&stderr, &warning), 1, "{stderr}");
    assert!(stderr.contains(&format!("warning: {warning}")), "{stderr}");
    assert_values_pull(&target, &values);
}

#[test]
fn build_and_validate_warn_once_per_insecure_registry() {
    // proxy.replicated.com's images from an --ec registry (HTTPS, unverified), the vendor
    // plugins from a plain-HTTP one: each is an --insecure-registry, each warns once.
    let ec = Sources::start(RegistryKind::EmbeddedCluster, 64);
    let plain = Sources::start(RegistryKind::Plain, 64);
    let (certificate, docker) = ec_files(&ec.registry);
    let (ec_addr, plain_addr) = (&ec.registry.addr, &plain.registry.addr);
    let mirrors = [
        format!("--mirror=proxy.replicated.com={ec_addr}"),
        format!("--mirror=registry.example.com={plain_addr}"),
        format!("--docker-config={docker}"),
        format!("--insecure-registry={plain_addr}"),
    ];
    let run = |command: &str, extra: &[String]| {
        let mut cmd = velero_airgap();
        cmd.arg(command).arg("-c").arg(&ec.config);
        if command == "build" {
            cmd.arg("-o").arg(ec.path("bundle.tar"));
        } else {
            cmd.arg("--online");
        }
        let out = cmd.args(&mirrors).args(extra).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{command} {extra:?}: {stderr}");
        stderr
    };
    let insecure_ec = [format!("--insecure-registry={ec_addr}")];
    for command in ["build", "validate"] {
        let stderr = run(command, &insecure_ec);
        for warning in [unverified_warning(ec_addr), plain_http_warning(plain_addr)] {
            assert_eq!(
                lines_with(&stderr, &format!("warning: {warning}")),
                1,
                "{command}: {stderr}"
            );
        }
        // With EC's certificate pinned instead, only the plain registry warns.
        let stderr = run(command, &[format!("--ca-file={certificate}")]);
        assert!(!stderr.contains(ec_addr.as_str()), "{command}: {stderr}");
        assert_eq!(
            lines_with(&stderr, &plain_http_warning(plain_addr)),
            1,
            "{command}: {stderr}"
        );
    }
}

/// The `sh` blocks of the README's "Into an Embedded Cluster" section.
fn readme_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(crate::lab::repo_root().join("README.md")).unwrap();
    let start = readme
        .find("\n### Into an Embedded Cluster\n")
        .expect("the README has an \"Into an Embedded Cluster\" section");
    let section = &readme[start + 1..];
    let end = section[1..]
        .find("\n#")
        .map_or(section.len(), |position| position + 1);
    let section = &section[..end];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + "```sh\n".len()..];
        let close = body.find("```").expect("a closed code block");
        blocks.push(body[..close].to_string());
        rest = &body[close + 3..];
    }
    blocks
}

/// `block` with only the field's address, the bundle and the binary replaced.
fn for_the_lab(block: &str, registry: &Registry, bundle: &Path) -> String {
    let binary = env!("CARGO_BIN_EXE_velero-airgap");
    let script = block
        .replace("10.244.128.11:5000", &registry.addr)
        .replace("velero-bundle.tar", &bundle.display().to_string())
        .lines()
        .map(|line| match line.strip_prefix("velero-airgap ") {
            Some(rest) => format!("{binary} {rest}"),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!script.contains("10.244.128.11"), "{script}");
    script
}

/// Runs `script` with bash (errors and failed pipes stop it) in `dir`, with the `--ec`
/// registry's fake kubectl first on PATH; returns stderr.
fn run_script(script: &str, dir: &Path, registry: &Registry) -> String {
    let kubectl_dir = registry.ec_dir.as_ref().unwrap().join("bin");
    let path = format!(
        "{}:{}",
        kubectl_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{script}\n{stderr}");
    stderr
}

#[test]
fn readme_embedded_cluster_commands_work_as_written() {
    let blocks = readme_blocks();
    assert_eq!(blocks.len(), 2, "{blocks:#?}");
    let built = build_bundle(16, &[]);

    // The first block on a fresh registry: credentials and certificate from the Secrets,
    // then unpack with the certificate pinned.
    let target = Registry::start(RegistryKind::EmbeddedCluster);
    let work = tempfile::tempdir().unwrap();
    let stderr = run_script(
        &for_the_lab(&blocks[0], &target, &built.bundle),
        work.path(),
        &target,
    );
    assert!(!stderr.contains("insecure"), "{stderr}");
    assert_eq!(
        std::fs::read(work.path().join("registry.crt")).unwrap(),
        std::fs::read(target.ca_cert.as_ref().unwrap()).unwrap()
    );
    assert_values_pull(&target, &work.path().join("values.yaml"));

    // The `--insecure` block on another fresh registry, with the credentials the first
    // block's kubectl lines fetch there.
    let target = Registry::start(RegistryKind::EmbeddedCluster);
    let work = tempfile::tempdir().unwrap();
    let credentials: Vec<&str> = blocks[0]
        .lines()
        .filter(|line| !line.starts_with("velero-airgap "))
        .collect();
    let script = format!("{}\n{}", credentials.join("\n"), blocks[1]);
    let stderr = run_script(
        &for_the_lab(&script, &target, &built.bundle),
        work.path(),
        &target,
    );
    assert_eq!(
        lines_with(&stderr, &unverified_warning(&target.addr)),
        1,
        "{stderr}"
    );
    assert_values_pull(&target, &work.path().join("values.yaml"));
}
