//! Every name the tool writes that someone else could guess: a symbolic link planted there
//! is replaced (the tool writes a new file and renames it into place) or refused, and what
//! it points at is never touched.

use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use crate::lab::RegistryKind;
use crate::lab::sources::{Sources, build};
use crate::lab::velero_airgap;

const VICTIM: &[u8] = b"victim: must stay as it is\n";

/// A victim file outside the private directory, and a link to it at `at`.
fn plant(outside: &Path, at: &Path) -> PathBuf {
    let victim = outside.join(format!(
        "victim-{}",
        at.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&victim, VICTIM).unwrap();
    symlink(&victim, at).unwrap();
    victim
}

fn assert_untouched(victims: &[PathBuf]) {
    for victim in victims {
        assert_eq!(
            std::fs::read(victim).unwrap(),
            VICTIM,
            "{}",
            victim.display()
        );
    }
}

fn is_regular(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

#[test]
fn planted_links_are_replaced_or_refused_never_followed() {
    let sources = Sources::start(RegistryKind::Plain, 4);
    let outside = tempfile::tempdir().unwrap();
    let private = tempfile::tempdir().unwrap();
    let dir = private.path();

    // build: the bundle itself and its sidecar.
    let bundle = dir.join("bundle.tar");
    let mut victims = vec![
        plant(outside.path(), &bundle),
        plant(outside.path(), &dir.join("bundle.tar.sha256")),
    ];
    let (code, _, stderr) = build(&sources, &bundle, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_untouched(&victims);
    assert!(is_regular(&bundle) && is_regular(&dir.join("bundle.tar.sha256")));

    // render -o.
    let rendered = dir.join("values.yaml");
    victims.push(plant(outside.path(), &rendered));
    let out = velero_airgap()
        .args(["render", "-c"])
        .arg(&sources.config)
        .arg("-o")
        .arg(&rendered)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_untouched(&victims);
    assert!(is_regular(&rendered));

    // unpack into k0s: the archive in the images directory, the record in the state
    // directory, the values; the audit log is refused as a link.
    let images = dir.join("images");
    let state = dir.join("state");
    std::fs::create_dir(&images).unwrap();
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key = hex::encode(sha2::Sha256::digest(images.as_os_str().as_encoded_bytes()));
    let record = state.join(format!("k0s-{}.json", &key[..16]));
    let archive = images.join("velero-airgap-images.tar");
    let values = dir.join("unpacked-values.yaml");
    let audit = dir.join("audit.log");
    for at in [&record, &archive, &values, &audit] {
        victims.push(plant(outside.path(), at));
    }
    let unpack = |audit_log: Option<&Path>| {
        let mut command = velero_airgap();
        command
            .args(["unpack", "--k0s-images-dir"])
            .arg(&images)
            .arg("--state-dir")
            .arg(&state)
            .arg("--values-out")
            .arg(&values);
        if let Some(log) = audit_log {
            command.arg("--audit-log").arg(log);
        }
        command.arg(&bundle).output().unwrap()
    };
    let out = unpack(Some(&audit));
    assert_ne!(
        out.status.code(),
        Some(0),
        "an audit log that is a link is refused"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("audit.log"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_untouched(&victims);
    let out = unpack(None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_untouched(&victims);
    for written in [&record, &archive, &values] {
        assert!(is_regular(written), "{}", written.display());
    }

    // A state directory that is itself a link is refused.
    let linked_state = dir.join("linked-state");
    symlink(outside.path(), &linked_state).unwrap();
    let out = velero_airgap()
        .args(["unpack", "--k0s-images-dir"])
        .arg(&images)
        .arg("--state-dir")
        .arg(&linked_state)
        .arg("--values-out")
        .arg(dir.join("more-values.yaml"))
        .arg(&bundle)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("symbolic link"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_untouched(&victims);
}
