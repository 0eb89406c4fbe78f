//! Imports synthetic OCI images into the lab's real containerd through
//! `velero_airgap::containerd`, the way `unpack --containerd` streams a bundle: blobs in digest
//! order, each skipped when present or streamed, manifests with their GC labels, names last.
//! Then checks with `ctr` that every name is listed and complete, that content survives a
//! forced garbage collection once the lease is gone, that a re-run writes nothing, and that
//! a run killed with -9 (or dropped) mid-blob leaves no name and is completed by a re-run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::lab::{Containerd as Lab, ImageSpec, freeze_when, make_images, run_ok, signal};
use tokio::io::{AsyncRead, AsyncWriteExt};
use velero_airgap::containerd::{
    BlobOutcome, Containerd, ContainerdError, ImageOutcome, Platform, gc_labels,
};
use velero_airgap::oci::{Descriptor, Digest, Manifest, MediaType, REF_NAME_ANNOTATION};

const NAMESPACE: &str = "k8s.io";
/// Names under the airgap address; nothing ever connects to it.
const PLUGIN: &str = "10.244.128.11:5000/acme/plugin:1.0";
const SINGLE: &str = "10.244.128.11:5000/acme/single:2.0";

/// Environment of the child process that `child_import` runs as.
const CHILD_SOCKET: &str = "VA_CHILD_SOCKET";
const CHILD_LAYOUT: &str = "VA_CHILD_LAYOUT";
const CHILD_THROTTLE: &str = "VA_CHILD_THROTTLE";

/// One blob of the layout.
struct Blob {
    size: u64,
    media_type: MediaType,
    path: PathBuf,
}

/// What an import of a layout writes: every blob (sorted by digest, as in a bundle) and every
/// image with its target.
struct Plan {
    blobs: BTreeMap<Digest, Blob>,
    images: Vec<(String, Descriptor)>,
}

fn blob_path(layout: &Path, digest: &Digest) -> PathBuf {
    layout.join("blobs").join("sha256").join(digest.hex())
}

fn read_manifest(path: &Path) -> Manifest {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Manifest::parse(&bytes).expect("a manifest").1
}

impl Plan {
    /// Every image named in the layout's `index.json` and every blob they reach.
    fn read(layout: &Path) -> Plan {
        let Manifest::Index(entries) = read_manifest(&layout.join("index.json")) else {
            panic!("index.json is not an index");
        };
        let mut plan = Plan {
            blobs: BTreeMap::new(),
            images: Vec::new(),
        };
        for entry in entries {
            let name = entry.annotations[REF_NAME_ANNOTATION].clone();
            plan.add(layout, &entry);
            plan.images.push((
                name,
                Descriptor::new(entry.media_type, entry.digest, entry.size),
            ));
        }
        plan
    }

    fn add(&mut self, layout: &Path, descriptor: &Descriptor) {
        let path = blob_path(layout, &descriptor.digest);
        if descriptor.media_type.manifest_kind().is_some() {
            for child in read_manifest(&path).children() {
                self.add(layout, child);
            }
        }
        self.blobs.insert(
            descriptor.digest,
            Blob {
                size: descriptor.size,
                media_type: descriptor.media_type.clone(),
                path,
            },
        );
    }

    /// The three names of each image: `repo:tag`, `repo@digest`, `repo:tag@digest`.
    fn names(&self) -> Vec<(String, &Descriptor)> {
        let mut names = Vec::new();
        for (name, target) in &self.images {
            let (repository, _tag) = name.rsplit_once(':').expect("name has a tag");
            names.push((name.clone(), target));
            names.push((format!("{repository}@{}", target.digest), target));
            names.push((format!("{name}@{}", target.digest), target));
        }
        names
    }
}

/// What one import did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    written: usize,
    present: usize,
    created: usize,
    updated: usize,
    unchanged: usize,
}

/// A reader that gives the file's bytes slowly, through a pipe, so a test can kill the import
/// in the middle of a blob. Also how a caller bridges a tar entry into `write_blob`.
fn throttled(path: PathBuf) -> impl AsyncRead + Unpin {
    let (mut writer, reader) = tokio::io::duplex(64 << 10);
    tokio::spawn(async move {
        let bytes = tokio::fs::read(&path).await.expect("read blob");
        for chunk in bytes.chunks(64 << 10) {
            if writer.write_all(chunk).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    reader
}

/// Imports every image of the layout under its three names, as `unpack --containerd` would.
async fn import_layout(socket: &Path, layout: &Path, throttle: bool) -> Counts {
    let client = Containerd::connect(socket, NAMESPACE)
        .await
        .expect("connect");
    let plan = Plan::read(layout);
    let import = client.begin().await.expect("begin");
    let mut counts = Counts::default();
    for (digest, blob) in &plan.blobs {
        let labels = if blob.media_type.manifest_kind().is_some() {
            let bytes = std::fs::read(&blob.path).expect("read manifest");
            gc_labels(digest, &blob.media_type, &bytes).expect("gc labels")
        } else {
            BTreeMap::new()
        };
        if import.has_blob(digest, &labels).await.expect("has_blob") {
            counts.present += 1;
            continue;
        }
        let outcome = if throttle {
            let reader = throttled(blob.path.clone());
            import.write_blob(digest, blob.size, &labels, reader).await
        } else {
            let file = tokio::fs::File::open(&blob.path).await.expect("open blob");
            import.write_blob(digest, blob.size, &labels, file).await
        };
        match outcome.expect("write_blob") {
            BlobOutcome::Written => counts.written += 1,
            BlobOutcome::Present => counts.present += 1,
        }
    }
    for (name, target) in plan.names() {
        let outcome = import
            .set_image(&name, target, &BTreeMap::new())
            .await
            .expect("set_image");
        match outcome {
            ImageOutcome::Created => counts.created += 1,
            ImageOutcome::Updated => counts.updated += 1,
            ImageOutcome::Unchanged => counts.unchanged += 1,
        }
    }
    import.finish().await.expect("finish");
    counts
}

/// A multi-arch OCI index (2 platforms × 2 layers) and a single OCI manifest (1 layer).
fn sample_layout(dir: &Path) -> Plan {
    make_images(
        dir,
        &[
            ImageSpec::multi_arch(PLUGIN, &["amd64", "arm64"], &[256, 64]),
            ImageSpec::single(SINGLE, &[128]),
        ],
    );
    Plan::read(dir)
}

fn ctr_ok(lab: &Lab, args: &[&str]) -> String {
    let output = lab.ctr(args);
    assert!(
        output.status.success(),
        "ctr {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// Asserts that `ctr images ls` lists exactly the plan's names and `ctr images check` says
/// each is complete.
fn assert_images_complete(lab: &Lab, plan: &Plan) {
    let mut listed = lines(&ctr_ok(lab, &["-n", NAMESPACE, "images", "ls", "-q"]));
    listed.sort();
    let mut expected: Vec<String> = plan.names().into_iter().map(|(name, _)| name).collect();
    expected.sort();
    assert_eq!(listed, expected);
    let check = ctr_ok(lab, &["-n", NAMESPACE, "images", "check"]);
    for name in &expected {
        let line = check
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{name} missing from ctr images check:\n{check}"));
        assert!(line.contains("complete ("), "{line}");
    }
}

/// Deletes a fresh lease with `--sync`, which runs the garbage collector before returning.
fn force_gc(lab: &Lab) {
    let id = ctr_ok(lab, &["-n", NAMESPACE, "leases", "create"]);
    ctr_ok(
        lab,
        &["-n", NAMESPACE, "leases", "delete", "--sync", id.trim()],
    );
}

#[tokio::test]
async fn imports_index_and_manifest_under_three_names_and_reimport_writes_nothing() {
    let lab = Lab::start();
    let layout = tempfile::tempdir().expect("layout dir");
    let plan = sample_layout(layout.path());
    // index + 2 manifests + 2 configs + 4 layers; manifest + config + layer.
    assert_eq!(plan.blobs.len(), 12);

    let first = import_layout(&lab.socket, layout.path(), false).await;
    assert_eq!(
        first,
        Counts {
            written: 12,
            created: 6,
            ..Counts::default()
        }
    );
    assert_images_complete(&lab, &plan);
    assert_eq!(ctr_ok(&lab, &["-n", NAMESPACE, "leases", "ls", "-q"]), "");

    // With the lease gone, only the images and the GC labels keep the content alive.
    force_gc(&lab);
    let content = ctr_ok(&lab, &["-n", NAMESPACE, "content", "ls", "-q"]);
    for digest in plan.blobs.keys() {
        assert!(
            content.contains(&digest.to_string()),
            "{digest} was collected"
        );
    }
    assert_images_complete(&lab, &plan);

    let second = import_layout(&lab.socket, layout.path(), false).await;
    assert_eq!(
        second,
        Counts {
            present: 12,
            unchanged: 6,
            ..Counts::default()
        }
    );
    assert_images_complete(&lab, &plan);
    assert_eq!(ctr_ok(&lab, &["-n", NAMESPACE, "leases", "ls", "-q"]), "");
}

#[tokio::test]
async fn names_are_moved_to_a_new_image_in_place() {
    let lab = Lab::start();
    let layout = tempfile::tempdir().expect("layout dir");
    make_images(layout.path(), &[ImageSpec::single(SINGLE, &[16])]);
    import_layout(&lab.socket, layout.path(), false).await;

    // Same tag, new content: the tag name moves, the digest names are new.
    make_images(layout.path(), &[ImageSpec::single(SINGLE, &[16])]);
    let plan = Plan::read(layout.path());
    let counts = import_layout(&lab.socket, layout.path(), false).await;
    assert_eq!((counts.created, counts.updated), (2, 1));
    let listed = ctr_ok(&lab, &["-n", NAMESPACE, "images", "ls"]);
    let tag_line = listed
        .lines()
        .find(|line| line.split_whitespace().next() == Some(SINGLE))
        .expect("tag listed");
    assert!(
        tag_line.contains(&plan.images[0].1.digest.to_string()),
        "{tag_line}"
    );
}

#[tokio::test]
async fn labels_missing_on_present_content_are_added() {
    let lab = Lab::start();
    let layout = tempfile::tempdir().expect("layout dir");
    let plan = sample_layout(layout.path());
    // Another tool wrote the blobs without GC labels (ctr content ingest sets none).
    for (digest, blob) in &plan.blobs {
        let file = std::fs::File::open(&blob.path).expect("open blob");
        let mut command = Command::new("ctr");
        command
            .arg("--address")
            .arg(&lab.socket)
            .args(["-n", NAMESPACE, "content", "ingest", "--expected-digest"])
            .arg(digest.to_string())
            .arg(format!("other-{digest}"))
            .stdin(file);
        run_ok(&mut command);
    }
    let counts = import_layout(&lab.socket, layout.path(), false).await;
    assert_eq!((counts.written, counts.present), (0, 12));
    force_gc(&lab);
    assert_images_complete(&lab, &plan);
}

/// Not a test on its own: the import that `killed_import_*` runs as a child process and kills.
#[tokio::test]
#[ignore = "run as a child process by other tests"]
async fn child_import() {
    // Run without the parent's environment, this child could check nothing: it fails.
    let socket = std::env::var(CHILD_SOCKET).expect("run by killed_import_* with its socket");
    let layout = std::env::var(CHILD_LAYOUT).expect("run by killed_import_* with its layout");
    let throttle = std::env::var_os(CHILD_THROTTLE).is_some();
    let started = Instant::now();
    let counts = import_layout(Path::new(&socket), Path::new(&layout), throttle).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    let peak = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: ?");
    println!("CHILD {counts:?} seconds={seconds:.2} {peak}");
}

fn child_command(socket: &Path, layout: &Path, throttle: bool) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "--exact",
            "containerd_import::child_import",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_SOCKET, socket)
        .env(CHILD_LAYOUT, layout)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if throttle {
        command.env(CHILD_THROTTLE, "1");
    }
    command
}

#[tokio::test]
async fn killed_import_leaves_no_name_and_a_rerun_completes() {
    let lab = Lab::start();
    let layout = tempfile::tempdir().expect("layout dir");
    make_images(
        layout.path(),
        &[ImageSpec::multi_arch(
            PLUGIN,
            &["amd64", "arm64"],
            &[16 << 10, 64],
        )],
    );
    let plan = Plan::read(layout.path());

    let mut child = child_command(&lab.socket, layout.path(), true)
        .spawn()
        .expect("start child import");
    // Kill while a 16 MiB layer is partly written (the reader gives ~6 MiB/s).
    freeze_when(&mut child, || {
        ctr_ok(&lab, &["-n", NAMESPACE, "content", "active"]).contains("velero-airgap-sha256:")
    });
    signal(&child, "KILL");
    child.wait().expect("reap child");

    assert_eq!(ctr_ok(&lab, &["-n", NAMESPACE, "images", "ls", "-q"]), "");
    let leases = ctr_ok(&lab, &["-n", NAMESPACE, "leases", "ls"]);
    assert!(leases.contains("containerd.io/gc.expire="), "{leases}");

    let counts = import_layout(&lab.socket, layout.path(), false).await;
    assert_eq!(counts.written + counts.present, plan.blobs.len());
    assert!(counts.written > 0, "{counts:?}");
    assert_eq!(counts.created, 3);
    assert_images_complete(&lab, &plan);
    // The partial ingest was restarted under the same ref and committed.
    let active = ctr_ok(&lab, &["-n", NAMESPACE, "content", "active"]);
    assert!(!active.contains("velero-airgap-"), "{active}");
}

/// A reader that gives the first `limit` bytes of a file and then fails, like a bundle
/// read cut short.
fn failing_after(path: &Path, limit: usize) -> impl AsyncRead + Unpin {
    let mut bytes = std::fs::read(path).expect("read blob");
    bytes.truncate(limit);
    let chunks: Vec<std::io::Result<bytes::Bytes>> = vec![
        Ok(bytes::Bytes::from(bytes)),
        Err(std::io::Error::other("cut")),
    ];
    tokio_util::io::StreamReader::new(futures::stream::iter(chunks))
}

#[tokio::test]
async fn failed_or_damaged_writes_name_the_blob_and_leave_no_trace_for_the_rerun() {
    let lab = Lab::start();
    let layout = tempfile::tempdir().expect("layout dir");
    let plan = sample_layout(layout.path());
    let client = Containerd::connect(&lab.socket, NAMESPACE)
        .await
        .expect("connect");
    let (digest, blob) = plan
        .blobs
        .iter()
        .max_by_key(|(_, blob)| blob.size)
        .expect("a blob");

    let import = client.begin().await.expect("begin");
    let open = || async { tokio::fs::File::open(&blob.path).await.expect("open") };
    let none = BTreeMap::new();

    // The reader fails mid-blob (the future is dropped with the stream half written).
    let failing = failing_after(&blob.path, (blob.size / 2) as usize);
    let error = import
        .write_blob(digest, blob.size, &none, failing)
        .await
        .expect_err("reader failed");
    assert!(matches!(error, ContainerdError::Read { .. }), "{error}");
    assert!(error.to_string().contains(&digest.to_string()), "{error}");

    // Too short and too long.
    let error = import
        .write_blob(digest, blob.size + 1, &none, open().await)
        .await
        .expect_err("short");
    assert!(matches!(error, ContainerdError::Size { .. }), "{error}");
    let error = import
        .write_blob(digest, blob.size - 1, &none, open().await)
        .await
        .expect_err("long");
    assert!(matches!(error, ContainerdError::Size { .. }), "{error}");

    // The right size but other bytes: containerd refuses the commit.
    let wrong: Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
    let error = import
        .write_blob(&wrong, blob.size, &none, open().await)
        .await
        .expect_err("wrong digest");
    assert!(
        matches!(error, ContainerdError::DigestMismatch { .. }),
        "{error}"
    );
    assert!(error.to_string().contains(&wrong.to_string()), "{error}");

    // A session dropped without finish: its lease stays (and expires), no name exists.
    drop(import);
    assert_eq!(ctr_ok(&lab, &["-n", NAMESPACE, "images", "ls", "-q"]), "");

    let counts = import_layout(&lab.socket, layout.path(), false).await;
    assert_eq!(counts.written, plan.blobs.len());
    assert_images_complete(&lab, &plan);
}

#[tokio::test]
async fn daemon_platform_is_the_hosts() {
    let lab = Lab::start();
    let client = Containerd::connect(&lab.socket, NAMESPACE)
        .await
        .expect("connect");
    assert!(client.version().starts_with("1."), "{}", client.version());
    assert_eq!(
        client.platform().await.expect("platform"),
        Some(Platform::host())
    );
}

#[tokio::test]
async fn a_socket_that_is_not_containerd_says_what_to_check() {
    let dir = tempfile::tempdir().expect("dir");
    let socket = dir.path().join("not-containerd.sock");
    // Accepts and hangs up at once, as a socket of some other service might.
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            drop(connection);
        }
    });
    let error = Containerd::connect(&socket, NAMESPACE)
        .await
        .expect_err("not containerd");
    let message = error.to_string();
    assert!(message.contains(&socket.display().to_string()), "{message}");
    assert!(message.contains("--containerd SOCKET"), "{message}");
}
