//! README's exit codes, case by case: an input the user named that is missing or invalid
//! is 1, a failure to write an output (or to read a file again after it opened) is 4, and
//! every message names the file the user gave, never a temp file.

use crate::lab::sources::{Sources, build};
use crate::lab::{RegistryKind, keypair, velero_airgap};
use std::path::Path;

/// (exit code, last line of stderr) of `velero-airgap ARGS`, with `TMPDIR` when given.
fn run(args: &[&std::ffi::OsStr], tmpdir: Option<&Path>) -> (i32, String) {
    let mut command = velero_airgap();
    command.args(args);
    if let Some(dir) = tmpdir {
        command.env("TMPDIR", dir);
    }
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let last = stderr.lines().last().unwrap_or_default().to_string();
    (out.status.code().unwrap_or(-1), last)
}

fn cannot_write(path: &Path, why: &str) -> String {
    format!("error: cannot write {}: {why}", path.display())
}

const ENOENT: &str = "No such file or directory (os error 2)";

#[test]
fn render_into_a_missing_directory_is_a_local_failure() {
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("no-such-dir/values.yaml");
    let (code, line) = run(
        &[
            "render".as_ref(),
            "-c".as_ref(),
            "examples/config.yaml".as_ref(),
            "-o".as_ref(),
            values.as_os_str(),
        ],
        None,
    );
    assert_eq!(line, cannot_write(&values, ENOENT));
    assert_eq!(code, 4);
}

#[test]
fn build_into_a_missing_directory_is_a_local_failure() {
    let sources = Sources::start(RegistryKind::Plain, 16);
    let bundle = sources.path("no-such-dir/bundle.tar");
    let (code, _, stderr) = build(&sources, &bundle, &[]);
    assert_eq!(
        stderr.lines().last(),
        Some(cannot_write(&bundle, ENOENT).as_str()),
        "{stderr}"
    );
    assert_eq!(code, 4, "{stderr}");
}

#[test]
fn a_directory_given_as_a_key_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let is_a_directory = format!(
        "error: cannot read {}: Is a directory (os error 21)",
        dir.path().display()
    );
    let bundle = dir.path().join("bundle.tar");
    std::fs::write(&bundle, b"").unwrap();
    for flag in ["--sign-key", "--verify-key"] {
        let (code, line) = run(
            &[
                "build".as_ref(),
                "-c".as_ref(),
                "examples/config.yaml".as_ref(),
                "-o".as_ref(),
                bundle.as_os_str(),
                flag.as_ref(),
                dir.path().as_os_str(),
            ],
            None,
        );
        assert_eq!(
            (code, line.as_str()),
            (1, is_a_directory.as_str()),
            "{flag}"
        );
    }
    let (code, line) = run(
        &[
            "verify".as_ref(),
            bundle.as_os_str(),
            "--bundle-key".as_ref(),
            dir.path().as_os_str(),
        ],
        None,
    );
    assert_eq!((code, line.as_str()), (1, is_a_directory.as_str()));
}

/// A compressed bundle is staged before loading: the staging directory is an output.
#[test]
fn a_missing_staging_directory_is_a_local_failure() {
    let sources = Sources::start(RegistryKind::Plain, 16);
    let bundle = sources.path("bundle.tar.zst");
    let (code, _, stderr) = build(&sources, &bundle, &[]);
    assert_eq!(code, 0, "{stderr}");
    let staging = sources.path("no-such-dir");
    let images = sources.path("images");
    let values = sources.path("values.yaml");
    let state = sources.path("state");
    let (code, line) = run(
        &[
            "unpack".as_ref(),
            bundle.as_os_str(),
            "--k0s-images-dir".as_ref(),
            images.as_os_str(),
            "--state-dir".as_ref(),
            state.as_os_str(),
            "--values-out".as_ref(),
            values.as_os_str(),
            "--staging-dir".as_ref(),
            staging.as_os_str(),
        ],
        None,
    );
    assert_eq!(line, cannot_write(&staging, ENOENT));
    assert_eq!(code, 4);
    assert!(!images.exists() && !values.exists());

    // verify stages too, to re-check image signatures, in $TMPDIR.
    let (_, public) = keypair(sources.dir.path(), "k");
    let (code, line) = run(
        &[
            "verify".as_ref(),
            bundle.as_os_str(),
            "--verify-key".as_ref(),
            public.as_os_str(),
        ],
        Some(&staging),
    );
    assert_eq!(line, cannot_write(&staging, ENOENT));
    assert_eq!(code, 4);
}
