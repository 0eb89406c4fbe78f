//! Answers are bounded: a registry (or anything answering in its place) that sends an
//! endless manifest, a manifest announcing 500 MB, an endless token answer or an endless
//! error body makes `validate --online` and `build` fail with an error naming the registry
//! and the limit, in little memory. The CLI runs as a child process under GNU time, whose
//! `%M` is the child's own peak RSS; the registry is an in-process fake (a real one never
//! answers like this).

use std::path::Path;
use std::process::Command;

use crate::lab::fake::{FakeServer, Recorded, Reply};
use crate::lab::sources::{MONGODB, POSTGRES, config_text};

/// The most memory the CLI may use for any of these answers.
const PEAK_RSS_LIMIT_KIB: u64 = 100 * 1024;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// What the fake registry does wrong.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// Every manifest is an endless chunked body.
    EndlessManifest,
    /// Every manifest announces 500 MB (and sends spaces while the client reads).
    HugeManifest,
    /// Bearer auth, and the token server's answer never ends.
    EndlessToken,
    /// Every manifest request fails with HTTP 500 and an endless body.
    EndlessErrorBody,
}

fn answer(misbehaviour: Misbehaviour, request: &Recorded) -> Reply {
    let manifest = request.path().contains("/manifests/");
    match misbehaviour {
        Misbehaviour::EndlessManifest if manifest => Reply::EndlessChunked {
            status: 200,
            headers: vec![("Content-Type".into(), OCI_MANIFEST.into())],
        },
        Misbehaviour::HugeManifest if manifest => Reply::Declared {
            status: 200,
            headers: vec![("Content-Type".into(), OCI_MANIFEST.into())],
            length: 500_000_000,
        },
        Misbehaviour::EndlessErrorBody if manifest => Reply::EndlessChunked {
            status: 500,
            headers: vec![("Content-Type".into(), "application/json".into())],
        },
        Misbehaviour::EndlessToken if request.path() == "/token" => Reply::EndlessChunked {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
        },
        Misbehaviour::EndlessToken => {
            let host = request.header("host").unwrap_or_default().to_string();
            Reply::status(401).with_header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="http://{host}/token",service="fake""#),
            )
        }
        _ => Reply::status(200),
    }
}

/// What the error must say besides the registry's address.
fn expected(misbehaviour: Misbehaviour) -> &'static str {
    match misbehaviour {
        Misbehaviour::EndlessManifest | Misbehaviour::HugeManifest => {
            "sent more than 4 MiB (4194304 bytes) for manifest"
        }
        Misbehaviour::EndlessToken => "sent more than 1 MiB (1048576 bytes) for a token",
        Misbehaviour::EndlessErrorBody => "HTTP 500 for manifest for tag",
    }
}

/// One run of the CLI under GNU time: exit code, stderr, peak RSS in KiB.
struct Run {
    code: i32,
    stderr: String,
    peak_rss_kib: u64,
}

fn run_cli(dir: &Path, registry: &str, command: &str) -> Run {
    let config = dir.join("config.yaml");
    let rss = dir.join(format!("{command}.rss"));
    let mut cli = Command::new("/usr/bin/time");
    cli.args(["-f", "%M", "-o"])
        .arg(&rss)
        .arg(env!("CARGO_BIN_EXE_velero-airgap"))
        .arg(command)
        .arg("-c")
        .arg(&config);
    if command == "build" {
        cli.arg("-o").arg(dir.join("bundle.tar"));
    } else {
        cli.arg("--online");
    }
    let out = cli
        .arg(format!("--mirror=proxy.replicated.com={registry}"))
        .arg(format!("--mirror=registry.example.com={registry}"))
        .arg(format!("--insecure-registry={registry}"))
        .env("DOCKER_CONFIG", dir.join("no-docker-config"))
        .output()
        .expect("run the CLI under /usr/bin/time");
    // GNU time writes "Command exited with non-zero status N" first when it did.
    let report = std::fs::read_to_string(&rss).expect("GNU time's report");
    let peak_rss_kib = report
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {report:?}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        peak_rss_kib,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_answers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        config_text(&[POSTGRES, MONGODB]),
    )
    .unwrap();
    let mut figures = Vec::new();
    for misbehaviour in [
        Misbehaviour::EndlessManifest,
        Misbehaviour::HugeManifest,
        Misbehaviour::EndlessToken,
        Misbehaviour::EndlessErrorBody,
    ] {
        let fake = FakeServer::start(move |request| answer(misbehaviour, request)).await;
        let registry = fake.host();
        for (command, failure_code) in [("validate", 1), ("build", 3)] {
            let (path, host) = (dir.path().to_path_buf(), registry.clone());
            let run = tokio::task::spawn_blocking(move || run_cli(&path, &host, command))
                .await
                .unwrap();
            let context = format!("{command} against {misbehaviour:?}:\n{}", run.stderr);
            assert_eq!(run.code, failure_code, "{context}");
            let error = run
                .stderr
                .lines()
                .find(|line| line.contains("error:") && line.contains(expected(misbehaviour)))
                .unwrap_or_else(|| {
                    panic!("no error saying {:?}; {context}", expected(misbehaviour))
                });
            assert!(error.contains(&format!("registry {registry}")), "{context}");
            if let Misbehaviour::EndlessErrorBody = misbehaviour {
                assert!(error.contains("65536-byte limit"), "{context}");
            }
            assert!(
                run.peak_rss_kib < PEAK_RSS_LIMIT_KIB,
                "{command} against {misbehaviour:?} peaked at {} KiB",
                run.peak_rss_kib
            );
            figures.push(format!(
                "{command} / {misbehaviour:?}: peak RSS {} KiB; {}",
                run.peak_rss_kib,
                error.trim()
            ));
        }
        assert!(!dir.path().join("bundle.tar").exists());
    }
    println!("{}", figures.join("\n"));
}
