//! Docker config credential sources against a basic-auth registry: `auths` with plain
//! fields, `credHelpers`, `credsStore`, and helpers that find nothing or fail. Each
//! case runs `validate --online`, which must authenticate to resolve the manifests.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::lab::sources::Sources;
use crate::lab::{Registry as LabRegistry, RegistryKind, velero_airgap};

fn write_helper(dir: &Path, name: &str, script: &str) {
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `validate --online` with `config` as the Docker config and the helpers
/// in `bin` first on PATH; returns (exit code, stdout and stderr).
fn validate_with(sources: &Sources, bin: &Path, config: serde_json::Value) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let addr = &sources.registry.addr;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = velero_airgap()
        .args(["validate", "--online", "--retries", "0", "-c"])
        .arg(&sources.config)
        .arg(format!("--mirror=proxy.replicated.com={addr}"))
        .arg(format!("--mirror=registry.example.com={addr}"))
        .arg(format!("--insecure-registry={addr}"))
        .arg(format!("--docker-config={}", dir.path().display()))
        .env("PATH", path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn credentials_come_from_auths_helpers_and_stores() {
    let sources = Sources::start(RegistryKind::BasicAuth, 16);
    let host = sources.registry.addr.clone();
    let bin = tempfile::tempdir().unwrap();
    write_helper(
        bin.path(),
        "lab",
        &format!(
            r#"[ "$1" = get ] || exit 2
read -r server
if [ "$server" = "{host}" ]; then
  printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{password}"}}' "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi"#,
            user = LabRegistry::USERNAME,
            password = LabRegistry::PASSWORD,
        ),
    );
    write_helper(
        bin.path(),
        "empty",
        "echo 'credentials not found in native keychain'; exit 1",
    );
    write_helper(
        bin.path(),
        "broken",
        "echo 'token=leaked-helper-secret'; exit 1",
    );

    for config in [
        serde_json::json!({"auths": {&host: {"username": LabRegistry::USERNAME, "password": LabRegistry::PASSWORD}}}),
        serde_json::json!({"credHelpers": {&host: "lab"}}),
        serde_json::json!({"credsStore": "lab"}),
    ] {
        let (code, output) = validate_with(&sources, bin.path(), config.clone());
        assert_eq!(code, 0, "{config}: {output}");
    }

    // A store that knows nothing: the registry refuses us, and we say we had no credentials.
    let (code, output) = validate_with(
        &sources,
        bin.path(),
        serde_json::json!({"credsStore": "empty"}),
    );
    assert_ne!(code, 0, "{output}");
    assert!(output.contains(&host), "{output}");
    assert!(output.contains("no credentials"), "{output}");

    let (code, output) = validate_with(
        &sources,
        bin.path(),
        serde_json::json!({"credHelpers": {&host: "broken"}}),
    );
    assert_ne!(code, 0, "{output}");
    assert!(output.contains("docker-credential-broken"), "{output}");
    assert!(
        !output.contains("leaked-helper-secret"),
        "secret printed: {output}"
    );
}
