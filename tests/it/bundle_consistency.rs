//! A bundle's files must agree with each other, not only with their checksums: whoever
//! can rewrite a bundle can recompute `SHA256SUMS`, `bundle.json` and the sidecar. So
//! `verify` re-derives `values.yaml` from `config.yaml` and the render inputs, checks every
//! reference of `bundle.json` and the plugins against the config; `render --lock` trusts
//! only a lock that matches its checksums and covers every image.

use std::path::{Path, PathBuf};

use crate::lab::bundles::rewrite_with_sums;
use crate::lab::sources::{MONGODB, POSTGRES, Sources, build, config_text};
use crate::lab::{RegistryKind, read_entry, velero_airgap};

fn built(extra: &[&str]) -> (Sources, PathBuf) {
    let sources = Sources::start(RegistryKind::Plain, 4);
    let bundle = sources.path("bundle.tar");
    let (code, _, stderr) = build(&sources, &bundle, extra);
    assert_eq!(code, 0, "{stderr}");
    (sources, bundle)
}

fn run(args: &[&str], bundle: &Path) -> (i32, String, String) {
    let out = velero_airgap().args(args).arg(bundle).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn edit_json(bundle: &Path, edit: impl Fn(&mut serde_json::Value)) {
    rewrite_with_sums(bundle, |name, bytes| {
        if name != "bundle.json" {
            return bytes;
        }
        let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        edit(&mut json);
        serde_json::to_vec_pretty(&json).unwrap()
    });
}

fn render_locked(
    sources: &Sources,
    config: &Path,
    bundle: &Path,
    extra: &[&str],
) -> (i32, String, String) {
    let out = velero_airgap()
        .args(["render", "--mode", "airgap", "-c"])
        .arg(config)
        .arg("--lock")
        .arg(bundle)
        .args(extra)
        .current_dir(sources.dir.path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn edited_values_fail_verify_and_unpack_even_with_recomputed_sums() {
    let (sources, bundle) = built(&[]);
    rewrite_with_sums(&bundle, |name, bytes| {
        if name != "values.yaml" {
            return bytes;
        }
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("10.244.128.11:5000/library/velero"), "{text}");
        let evil = text.replacen(
            "10.244.128.11:5000/library/velero",
            "evil.example/velero",
            1,
        ) + "extraVolumes:\n  - name: root\n    hostPath:\n      path: /\n";
        evil.into_bytes()
    });
    let (code, _, stderr) = run(&["verify"], &bundle);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("values.yaml: line"), "{stderr}");
    assert!(
        stderr.contains("evil.example/velero"),
        "names the line: {stderr}"
    );

    let values = sources.path("values-out.yaml");
    let out = velero_airgap()
        .args(["unpack", "--dry-run", "--insecure", "--registry"])
        .arg(&sources.registry.addr)
        .arg("--values-out")
        .arg(&values)
        .arg(&bundle)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!values.exists());

    // Not YAML at all.
    rewrite_with_sums(&bundle, |name, bytes| {
        if name == "values.yaml" {
            b"{{ not: [yaml".to_vec()
        } else {
            bytes
        }
    });
    let (code, _, stderr) = run(&["verify"], &bundle);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("values.yaml"), "{stderr}");
}

#[test]
fn references_and_plugins_in_bundle_json_are_checked() {
    let (_sources, bundle) = built(&[]);
    let pristine = std::fs::read(&bundle).unwrap();
    for bad in [
        "mirror.example/../velero:1",
        "Mirror.example/UPPER/x:1",
        "mirror.example//x:1",
        "mirror.example/x@sha256:abc",
    ] {
        std::fs::write(&bundle, &pristine).unwrap();
        edit_json(&bundle, |json| json["images"][0]["source"] = bad.into());
        let (code, _, stderr) = run(&["verify"], &bundle);
        assert_eq!(code, 1, "{bad}: {stderr}");
        assert!(stderr.contains("is not a reference"), "{bad}: {stderr}");
    }

    std::fs::write(&bundle, &pristine).unwrap();
    edit_json(&bundle, |json| {
        for image in json["images"].as_array_mut().unwrap() {
            if image["role"] == "plugin:velero-plugin-postgres" {
                image["role"] = "plugin:ghost".into();
            }
        }
    });
    let (code, _, stderr) = run(&["verify"], &bundle);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("config.yaml has no plugin ghost"),
        "{stderr}"
    );
    assert!(
        stderr.contains("plugin velero-plugin-postgres of config.yaml has no image"),
        "{stderr}"
    );
}

#[test]
fn values_of_another_render_scheme_are_checked_by_their_images() {
    let (_sources, bundle) = built(&[]);
    edit_json(&bundle, |json| json["renderInputs"]["scheme"] = 99.into());
    let (code, _, stderr) = run(&["verify"], &bundle);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("could not be re-derived (rendered by scheme 99"),
        "{stderr}"
    );

    let values = String::from_utf8(read_entry(&bundle, "values.yaml")).unwrap();
    let evil = values.replacen(
        "10.244.128.11:5000/library/velero-plugin-for-aws",
        "evil.example/aws",
        1,
    );
    assert_ne!(values, evil);
    rewrite_with_sums(&bundle, |name, bytes| {
        if name == "values.yaml" {
            evil.clone().into_bytes()
        } else {
            bytes
        }
    });
    let (code, _, stderr) = run(&["verify"], &bundle);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "initContainers[0].image does not name a bundled image in 10.244.128.11:5000 by digest"
        ),
        "{stderr}"
    );
}

#[test]
fn render_lock_reproduces_the_bundle_values_and_refuses_what_it_cannot_pin() {
    let (sources, bundle) = built(&[]);
    let bundled = String::from_utf8(read_entry(&bundle, "values.yaml")).unwrap();
    // Hardened, with runAsNonRoot from the plugin images' numeric user.
    assert!(
        bundled.contains("readOnlyRootFilesystem: true"),
        "{bundled}"
    );
    assert!(bundled.contains("runAsNonRoot: true"), "{bundled}");
    let (code, rendered, stderr) = render_locked(&sources, &sources.config, &bundle, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rendered, bundled);

    // A plugin the bundle does not carry.
    let extra = sources.path("extra.yaml");
    std::fs::write(
        &extra,
        config_text(&[POSTGRES, MONGODB, "registry.example.com/acme/other:1"]),
    )
    .unwrap();
    let (code, _, stderr) = render_locked(&sources, &extra, &bundle, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("registry.example.com/acme/other:1") && stderr.contains("not in"),
        "{stderr}"
    );

    // bundle.json no longer matching its SHA256SUMS line.
    let json = read_entry(&bundle, "bundle.json");
    let text = String::from_utf8(json.clone()).unwrap();
    let changed = text.replacen("\"velero-airgap\"", "\"velero-airgaq\"", 1);
    assert_ne!(text, changed);
    let tar = std::fs::read(&bundle).unwrap();
    let at = tar
        .windows(json.len())
        .position(|w| w == json.as_slice())
        .unwrap();
    let mut tampered = tar.clone();
    tampered[at..at + json.len()].copy_from_slice(changed.as_bytes());
    std::fs::write(&bundle, tampered).unwrap();
    let (code, _, stderr) = render_locked(&sources, &sources.config, &bundle, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("bundle.json: sha256 mismatch"), "{stderr}");
}

#[test]
fn plugin_hardening_off_is_recorded_and_reproduced() {
    let (sources, bundle) = built(&["--plugin-hardening", "off"]);
    let bundled = String::from_utf8(read_entry(&bundle, "values.yaml")).unwrap();
    assert!(!bundled.contains("securityContext"), "{bundled}");
    let json: serde_json::Value =
        serde_json::from_slice(&read_entry(&bundle, "bundle.json")).unwrap();
    assert_eq!(json["renderInputs"]["pluginHardening"], false);
    assert_eq!(json["renderInputs"]["scheme"], 1);
    let (code, rendered, stderr) = render_locked(
        &sources,
        &sources.config,
        &bundle,
        &["--plugin-hardening", "off"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rendered, bundled);
    let (code, _, stderr) = run(&["verify"], &bundle);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn proxy_credentials_stay_out_of_the_record_and_the_values_still_re_derive() {
    let (_sources, bundle) = built(&[
        "--http-proxy",
        "http://user:s3cret@proxy.example:3128",
        "--no-proxy",
        "localhost,.svc",
        "--allow-secrets",
    ]);
    let json = String::from_utf8(read_entry(&bundle, "bundle.json")).unwrap();
    assert!(!json.contains("s3cret"), "{json}");
    assert!(json.contains("http://***@proxy.example:3128"), "{json}");
    let values = String::from_utf8(read_entry(&bundle, "values.yaml")).unwrap();
    assert!(
        values.contains("http://user:s3cret@proxy.example:3128"),
        "{values}"
    );
    let (code, _, stderr) = run(&["verify"], &bundle);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");

    // Another proxy in the values than the one recorded: the values no longer re-derive.
    rewrite_with_sums(&bundle, |name, bytes| {
        if name != "values.yaml" {
            return bytes;
        }
        String::from_utf8(bytes)
            .unwrap()
            .replace("proxy.example:3128", "evil.example:3128")
            .into_bytes()
    });
    let (code, _, stderr) = run(&["verify"], &bundle);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("values.yaml: line"), "{stderr}");
}

/// Checksums prove a bundle's files belong together, not where they came from: so what
/// the bundled config asks of the node is said again by `verify` and `unpack`, in their
/// `--json` and in the audit log, before anything is loaded.
#[test]
fn privilege_in_the_bundled_config_is_reported_by_verify_and_unpack() {
    let sources = Sources::start(RegistryKind::Plain, 4);
    let mut config = config_text(&[POSTGRES, MONGODB]);
    config.push_str(
        "  unsupportedOverrides:\n    builtInExtensions:\n      - name: velero\n        values: |\n          nodeAgent:\n            hostNetwork: true\n",
    );
    std::fs::write(&sources.config, config).unwrap();
    let bundle = sources.path("bundle.tar");
    let (code, _, stderr) = build(&sources, &bundle, &[]);
    assert_eq!(code, 0, "{stderr}");

    let (code, _, stderr) = run(&["verify"], &bundle);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning: config.yaml:")
            && stderr.contains(
                "(nodeAgent.hostNetwork): hostNetwork: true shares the node's network namespace"
            ),
        "{stderr}"
    );
    let (code, stdout, _) = run(&["verify", "--json"], &bundle);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let said = |warnings: &serde_json::Value| {
        warnings
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("nodeAgent.hostNetwork"))
    };
    assert!(said(&json["warnings"]), "{json:#}");

    // Into a registry (the source one serves as well as any), with an audit log.
    let audit = sources.path("audit.log");
    let values = sources.path("values.yaml");
    let out = velero_airgap()
        .args([
            "unpack",
            "--json",
            "--insecure",
            "--registry",
            &sources.registry.addr,
        ])
        .arg("--values-out")
        .arg(&values)
        .arg("--audit-log")
        .arg(&audit)
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(said(&summary["warnings"]), "{summary:#}");
    let log = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{log}");
    assert!(lines.iter().all(|line| said(&line["warnings"])), "{log}");
}
