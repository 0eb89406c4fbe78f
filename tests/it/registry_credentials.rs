//! Docker config credential sources against a basic-auth registry: `auths` with plain
//! fields, `credHelpers`, `credsStore`, and helpers that find nothing or fail.
//!
//! The helpers are scripts put first on PATH, so this binary holds a single test: changing
//! the environment is only sound while no other thread reads it.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::lab::layout::Layout;
use crate::lab::{Registry as LabRegistry, RegistryKind};
use velero_airgap::oci::PlatformSelection;
use velero_airgap::registry::{Registry, RegistryError, RegistryOptions};

fn write_helper(dir: &Path, name: &str, script: &str) {
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

async fn resolve_with(lab: &LabRegistry, config: serde_json::Value) -> Result<(), RegistryError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let registry = Registry::new(RegistryOptions {
        insecure: vec![lab.addr.clone()],
        docker_config: Some(dir.path().to_path_buf()),
        retries: 0,
        ..RegistryOptions::default()
    })?;
    let image = registry
        .resolve(
            &format!("{}/acme/app:1", lab.addr).parse().unwrap(),
            &PlatformSelection::default(),
        )
        .await?;
    registry
        .fetch_blob(&image, &image.blobs[1], &mut Vec::new())
        .await
}

#[tokio::test]
async fn credentials_come_from_auths_helpers_and_stores() {
    // Every helper script is written before any process is started: a fork
    // while a script is still open for writing makes exec fail with ETXTBSY.
    let bin = tempfile::tempdir().unwrap();
    let host_file = bin.path().join("host");
    let host_file = host_file.display();
    write_helper(
        bin.path(),
        "lab",
        &format!(
            r#"[ "$1" = get ] || exit 2
read -r server
if [ "$server" = "$(cat "{host_file}")" ]; then
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
    let lab = LabRegistry::start(RegistryKind::BasicAuth);
    let mut layout = Layout::new();
    layout.add_image("app", &["amd64"]);
    lab.seed_layout(&layout, "app", "acme/app:1", false);

    let host = &lab.addr;
    std::fs::write(bin.path().join("host"), host).unwrap();

    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // SAFETY: the only test of this binary, and nothing else runs while PATH changes.
    unsafe { std::env::set_var("PATH", path) };

    resolve_with(
        &lab,
        serde_json::json!({"auths": {host: {"username": LabRegistry::USERNAME, "password": LabRegistry::PASSWORD}}}),
    )
    .await
    .expect("auths with username/password");
    resolve_with(&lab, serde_json::json!({"credHelpers": {host: "lab"}}))
        .await
        .expect("credHelpers");
    resolve_with(&lab, serde_json::json!({"credsStore": "lab"}))
        .await
        .expect("credsStore");

    let error = resolve_with(&lab, serde_json::json!({"credsStore": "empty"}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::AuthRefused {
                had_credentials: false,
                ..
            }
        ),
        "{error:?}"
    );

    let error = resolve_with(&lab, serde_json::json!({"credHelpers": {host: "broken"}}))
        .await
        .unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(
        matches!(error, RegistryError::Credentials { .. }),
        "{shown}"
    );
    assert!(shown.contains("docker-credential-broken"), "{shown}");
    assert!(
        !shown.contains("leaked-helper-secret"),
        "secret printed: {shown}"
    );
}
