//! Pushing to a real distribution registry (plain, and TLS + basic auth): byte-exact
//! manifests under tag and digest, idempotent re-runs, cross-repository mounts, refusal of
//! wrong content; and, from an in-process server, the retry that reopens the source.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::lab::{ImageSpec, Registry, RegistryKind, make_images, sources};
use bytes::Bytes;
use velero_airgap::ErrorKind;
use velero_airgap::oci::{Content, Descriptor, Digest, Manifest, MediaType, REF_NAME_ANNOTATION};
use velero_airgap::registry::{
    BasicCredentials, PushAction, PushEvent, PushImage, PushReport, Pusher, RegistryError,
    RegistryOptions,
};

const MULTI: &str = "lab.example/acme/multi:1.0";
const SINGLE: &str = "lab.example/acme/single:2.0";
/// Made as an OCI image, pushed with a Docker v2s2 manifest over the same blobs.
const DOCKER: &str = "lab.example/acme/docker:3.0";

const OCI_MANIFEST: MediaType = MediaType::OCI_MANIFEST;
const OCI_INDEX: MediaType = MediaType::OCI_INDEX;
const DOCKER_MANIFEST: MediaType = MediaType::DOCKER_MANIFEST;

fn sha256(bytes: &[u8]) -> Digest {
    Digest::of(bytes)
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor::of(MediaType::new(media_type), bytes)
}

/// An OCI layout on disk, read the way unpack reads a bundle.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    fn content(&self, descriptor: &Descriptor) -> Content {
        let bytes = std::fs::read(self.blob_path(&descriptor.digest)).expect("read blob");
        Content::new(descriptor.media_type.clone(), bytes)
    }

    fn parse(bytes: &[u8]) -> Manifest {
        Manifest::parse(bytes).expect("a manifest").1
    }

    /// The image named `name` in `index.json`, to be pushed as `repository[:tag]`.
    fn image(&self, name: &str, repository: &str, tag: Option<&str>) -> PushImage {
        let Manifest::Index(entries) =
            Self::parse(&std::fs::read(self.dir.join("index.json")).unwrap())
        else {
            panic!("index.json is not an index");
        };
        let entry = entries
            .iter()
            .find(|m| m.annotations.get(REF_NAME_ANNOTATION).map(String::as_str) == Some(name))
            .unwrap_or_else(|| panic!("{name} not in the layout"));
        let top = self.content(entry);
        let children: Vec<Content> = match Self::parse(&top.bytes) {
            Manifest::Index(entries) => entries.iter().map(|e| self.content(e)).collect(),
            Manifest::Image { .. } => Vec::new(),
        };
        let mut blobs = Vec::new();
        for manifest in children.iter().chain(std::iter::once(&top)) {
            if let Manifest::Image { config, layers } = Self::parse(&manifest.bytes) {
                for blob in std::iter::once(config).chain(layers) {
                    if !blobs.contains(&blob) {
                        blobs.push(blob);
                    }
                }
            }
        }
        PushImage {
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            top,
            children,
            blobs,
        }
    }

    fn open(&self, blob: &Descriptor) -> std::io::Result<std::fs::File> {
        std::fs::File::open(self.blob_path(&blob.digest))
    }
}

/// Rewrites a single OCI image as a Docker v2s2 image over the same blobs.
fn as_docker(mut image: PushImage) -> PushImage {
    let mut json: serde_json::Value = serde_json::from_slice(&image.top.bytes).unwrap();
    json["mediaType"] = DOCKER_MANIFEST.as_str().into();
    json["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json".into();
    for layer in json["layers"].as_array_mut().unwrap() {
        layer["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip".into();
    }
    let bytes = serde_json::to_vec_pretty(&json).unwrap();
    image.top = Content::new(DOCKER_MANIFEST, bytes);
    image
}

/// A multi-arch index, a single manifest and a Docker v2s2 manifest in three repositories,
/// all sharing one base layer, pushed to `registry` under `prefix`.
fn sample(layout_dir: &Path, registry: &Registry, prefix: &str) -> (Layout, Vec<PushImage>) {
    make_images(
        layout_dir,
        &[
            ImageSpec::multi_arch(MULTI, &["amd64", "arm64"], &[96]).shared_layer(64, "base"),
            ImageSpec::single(SINGLE, &[48]).shared_layer(64, "base"),
            ImageSpec::single(DOCKER, &[40]).shared_layer(64, "base"),
        ],
    );
    let layout = Layout {
        dir: layout_dir.to_path_buf(),
    };
    let repo = |name: &str| registry.reference(&format!("{prefix}/{name}"));
    let images = vec![
        layout.image(MULTI, &repo("multi"), Some("1.0")),
        // Referred to by digest only: no tag.
        layout.image(SINGLE, &repo("single"), None),
        as_docker(layout.image(DOCKER, &repo("docker"), Some("3.0"))),
    ];
    assert_eq!(images[0].top.descriptor.media_type, OCI_INDEX);
    assert_eq!(images[1].top.descriptor.media_type, OCI_MANIFEST);
    (layout, images)
}

/// A Docker config dir with no credentials, so tests never read the user's own.
fn empty_docker_config(scratch: &Path) -> PathBuf {
    let dir = scratch.join("no-credentials");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    dir
}

fn options(registry: &Registry, docker_config: &Path) -> RegistryOptions {
    let mut options = RegistryOptions {
        docker_config: Some(docker_config.to_path_buf()),
        retries: 1,
        ..RegistryOptions::default()
    };
    match &registry.ca_cert {
        Some(ca) => options.ca_files.push(ca.clone()),
        None => options.insecure.push(registry.addr.clone()),
    }
    options
}

fn explicit_credentials() -> BasicCredentials {
    BasicCredentials {
        username: Registry::USERNAME.into(),
        password: Registry::PASSWORD.into(),
    }
}

async fn push(pusher: &Pusher, layout: &Layout, images: &[PushImage]) -> PushReport {
    pusher
        .push_images(images, &|blob| layout.open(blob), 4, &|_| ())
        .await
        .unwrap()
}

/// The raw bytes skopeo gets for `reference` (`PATH:TAG` or `PATH@DIGEST`).
fn raw(registry: &Registry, reference: &str) -> Vec<u8> {
    let mut args: Vec<String> = vec!["inspect".into(), "--raw".into()];
    args.extend(registry.skopeo_flags(""));
    args.push(format!("docker://{}", registry.reference(reference)));
    crate::lab::skopeo_ok(&args).stdout
}

/// Every manifest of `images` reads back byte for byte, by digest and (top) by tag.
fn assert_served_exactly(registry: &Registry, images: &[PushImage]) {
    let path = |image: &PushImage| {
        image
            .repository
            .strip_prefix(&format!("{}/", registry.addr))
            .unwrap()
            .to_string()
    };
    for image in images {
        let top = &image.top;
        let by_digest = raw(
            registry,
            &format!("{}@{}", path(image), top.descriptor.digest),
        );
        assert_eq!(by_digest, top.bytes, "{}", image.repository);
        if let Some(tag) = &image.tag {
            let by_tag = raw(registry, &format!("{}:{tag}", path(image)));
            assert_eq!(sha256(&by_tag), top.descriptor.digest);
        }
        for child in &image.children {
            let bytes = raw(
                registry,
                &format!("{}@{}", path(image), child.descriptor.digest),
            );
            assert_eq!(bytes, child.bytes);
        }
    }
}

/// Distinct blobs, and (repository, blob) pairs.
fn blob_counts(images: &[PushImage]) -> (usize, usize) {
    let digests: HashSet<Digest> = images
        .iter()
        .flat_map(|i| i.blobs.iter().map(|b| b.digest))
        .collect();
    let pairs: usize = images.iter().map(|i| i.blobs.len()).sum();
    (digests.len(), pairs)
}

fn manifest_count(images: &[PushImage]) -> usize {
    images.iter().map(|i| i.children.len() + 1).sum()
}

#[tokio::test]
async fn plain_push_is_byte_exact_mounts_shared_layers_and_reruns_as_a_no_op() {
    let registry = Registry::start(RegistryKind::Plain);
    let scratch = tempfile::tempdir().unwrap();
    let (layout, images) = sample(&scratch.path().join("layout"), &registry, "apps");
    let pusher = Pusher::new(
        options(&registry, &empty_docker_config(scratch.path())),
        None,
    )
    .unwrap();

    let progress = std::sync::atomic::AtomicU64::new(0);
    let events = |event| {
        if let PushEvent::BlobProgress { bytes } = event {
            progress.fetch_add(bytes, Ordering::Relaxed);
        }
    };
    let first = pusher
        .push_images(&images, &|blob| layout.open(blob), 4, &events)
        .await
        .unwrap();
    let (distinct, pairs) = blob_counts(&images);
    // Each blob is uploaded once; the shared base layer is mounted into the other two.
    assert_eq!(first.blobs_pushed, distinct);
    assert_eq!(first.blobs_mounted, pairs - distinct);
    assert_eq!(first.blobs_mounted, 2);
    assert_eq!(first.blobs_skipped, 0);
    let all_bytes: u64 = {
        let mut seen = HashSet::new();
        images
            .iter()
            .flat_map(|i| &i.blobs)
            .filter(|b| seen.insert(&b.digest))
            .map(|b| b.size)
            .sum()
    };
    assert_eq!(first.bytes_pushed, all_bytes);
    assert_eq!(progress.load(Ordering::Relaxed), all_bytes);
    assert_eq!(first.manifests_pushed, manifest_count(&images));
    assert!(first.images.iter().all(|i| i.action == PushAction::Pushed));
    assert_eq!(first.images[1].tag, None);
    assert_served_exactly(&registry, &images);
    // The untagged image got no tag (distribution keeps tags as directories in its storage).
    let tags = |repo: &str| {
        let dir = registry
            .dir
            .join("storage/docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests/tags");
        std::fs::read_dir(dir).map_or(0, Iterator::count)
    };
    assert_eq!(tags("apps/single"), 0);
    assert_eq!(tags("apps/multi"), 1);

    let second = push(&pusher, &layout, &images).await;
    assert!(second.nothing_pushed(), "{second:?}");
    assert_eq!(second.blobs_skipped, pairs);
    assert_eq!(second.manifests_skipped, manifest_count(&images));
    assert_eq!(second.bytes_pushed, 0);
    assert!(
        second
            .images
            .iter()
            .all(|i| i.action == PushAction::Skipped)
    );

    // A new Pusher (a new run) sees the same: HEAD decides, not memory.
    let fresh = Pusher::new(
        options(&registry, &empty_docker_config(scratch.path())),
        None,
    )
    .unwrap();
    assert!(push(&fresh, &layout, &images).await.nothing_pushed());
}

/// An image the registry holds whole, but whose tag was moved to another manifest, only
/// gets its tag put back; an image already there lends its blobs to the images still to
/// push, which mount them without a check of the image that is there.
#[tokio::test]
async fn images_already_there_are_decided_by_their_manifests() {
    let registry = Registry::start(RegistryKind::Plain);
    let scratch = tempfile::tempdir().unwrap();
    let (layout, images) = sample(&scratch.path().join("layout"), &registry, "held");
    let pusher = Pusher::new(
        options(&registry, &empty_docker_config(scratch.path())),
        None,
    )
    .unwrap();
    // Only the single image first: the Docker one shares its base layer.
    let first = push(&pusher, &layout, &images[1..2]).await;
    assert_eq!(first.manifests_pushed, 1);
    let second = push(&pusher, &layout, &images[1..]).await;
    assert_eq!(second.images[0].action, PushAction::Skipped);
    assert_eq!(second.images[1].action, PushAction::Pushed);
    // The Docker image: its config and own layer uploaded, the base layer mounted from the
    // single image's repository, which the registry vouches for by its manifest.
    assert_eq!(second.blobs_pushed, 2, "{second:?}");
    assert_eq!(second.blobs_mounted, 1, "{second:?}");
    assert_eq!(second.blobs_skipped, images[1].blobs.len());
    assert_served_exactly(&registry, &images[1..]);

    // The multi-arch image, then its tag moved to one of its platform manifests.
    push(&pusher, &layout, &images).await;
    let multi = &images[0];
    let child = &multi.children[0];
    pusher
        .push_manifest(
            &format!("{}:1.0", multi.repository),
            child.bytes.clone(),
            &child.descriptor.media_type,
        )
        .await
        .unwrap();
    let path = multi
        .repository
        .strip_prefix(&format!("{}/", registry.addr))
        .unwrap();
    assert_eq!(
        sha256(&raw(&registry, &format!("{path}:1.0"))),
        child.descriptor.digest
    );
    let report = push(&pusher, &layout, &images).await;
    assert_eq!(report.manifests_pushed, 1, "{report:?}");
    assert_eq!(report.blobs_pushed + report.blobs_mounted, 0, "{report:?}");
    assert_eq!(report.bytes_pushed, 0);
    assert_eq!(report.images[0].action, PushAction::Pushed);
    assert!(
        report.images[1..]
            .iter()
            .all(|i| i.action == PushAction::Skipped)
    );
    assert_served_exactly(&registry, &images);
    assert!(push(&pusher, &layout, &images).await.nothing_pushed());
}

#[tokio::test]
async fn tls_basic_auth_push_with_explicit_and_docker_config_credentials() {
    let registry = Registry::start(RegistryKind::TlsBasicAuth);
    let scratch = tempfile::tempdir().unwrap();
    let (layout, images) = sample(&scratch.path().join("layout"), &registry, "explicit");
    let credentials = registry.credentials().unwrap();

    // Explicit credentials win over a Docker config holding a wrong password.
    let wrong = scratch.path().join("wrong");
    sources::write_docker_config(
        &wrong,
        &registry.addr,
        &format!("{}:nope", Registry::USERNAME),
    );
    let pusher = Pusher::new(options(&registry, &wrong), Some(explicit_credentials())).unwrap();
    let report = push(&pusher, &layout, &images).await;
    assert_eq!(report.manifests_pushed, manifest_count(&images));
    assert_served_exactly(&registry, &images);

    // Docker config credentials, into other repositories.
    let good = scratch.path().join("good");
    sources::write_docker_config(&good, &registry.addr, &credentials);
    let (layout2, again) = sample(&scratch.path().join("layout2"), &registry, "config");
    let pusher = Pusher::new(options(&registry, &good), None).unwrap();
    let report = push(&pusher, &layout2, &again).await;
    assert_eq!(report.manifests_pushed, manifest_count(&again));
    assert_served_exactly(&registry, &again);
    assert!(push(&pusher, &layout2, &again).await.nothing_pushed());

    // A wrong explicit password is an auth error at once (no retries), and never shown.
    let bad = BasicCredentials {
        username: Registry::USERNAME.into(),
        password: "Wr0ng-s3cret".into(),
    };
    let pusher = Pusher::new(options(&registry, &good), Some(bad)).unwrap();
    let error = pusher
        .push_images(&images, &|blob| layout.open(blob), 4, &|_| ())
        .await
        .unwrap_err();
    // An auth error is final: it is not one of the retried failures.
    assert!(
        matches!(
            error,
            RegistryError::AuthRefused {
                had_credentials: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Remote);
    let shown = format!("{error} {error:?} {pusher:?}");
    assert!(!shown.contains("Wr0ng-s3cret"), "{shown}");
}

#[tokio::test]
async fn wrong_content_is_refused_and_nothing_is_committed() {
    let registry = Registry::start(RegistryKind::Plain);
    let scratch = tempfile::tempdir().unwrap();
    let pusher = Pusher::new(
        options(&registry, &empty_docker_config(scratch.path())),
        None,
    )
    .unwrap();
    let repository = registry.reference("acme/blobs");

    let good = vec![5u8; 3 << 20];
    let mut bad = good.clone();
    bad[(3 << 20) - 1] = 6;
    let blob = descriptor("application/octet-stream", &good);
    let error = pusher
        .push_blob(&repository, &blob, || Ok(std::io::Cursor::new(bad.clone())))
        .await
        .unwrap_err();
    match &error {
        RegistryError::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(*expected, blob.digest.to_string());
            assert_eq!(*actual, sha256(&bad).to_string());
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert_eq!(error.kind(), ErrorKind::Input);
    assert!(!pusher.blob_exists(&repository, &blob.digest).await.unwrap());
    assert!(
        !pusher
            .blob_exists(&repository, &sha256(&bad))
            .await
            .unwrap()
    );

    let error = pusher
        .push_blob(&repository, &blob, || {
            Ok(std::io::Cursor::new(good[1..].to_vec()))
        })
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::SizeMismatch { .. }),
        "{error:?}"
    );
    assert!(!pusher.blob_exists(&repository, &blob.digest).await.unwrap());

    let error = pusher
        .push_blob(&repository, &blob, || -> std::io::Result<std::fs::File> {
            Err(std::io::Error::other("bundle gone"))
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Local);

    // The right bytes go through; a mount of a blob the source repository lacks is declined.
    pusher
        .push_blob(&repository, &blob, || {
            Ok(std::io::Cursor::new(good.clone()))
        })
        .await
        .unwrap();
    assert!(pusher.blob_exists(&repository, &blob.digest).await.unwrap());
    let other = registry.reference("acme/other");
    assert!(
        pusher
            .mount_blob(&other, &repository, &blob.digest)
            .await
            .unwrap()
    );
    assert!(pusher.blob_exists(&other, &blob.digest).await.unwrap());
    let absent = sha256(b"never pushed");
    assert!(
        !pusher
            .mount_blob(&other, &repository, &absent)
            .await
            .unwrap()
    );

    // A manifest whose bytes do not hash to the digest reference is refused before sending.
    let manifest = Bytes::from_static(br#"{"schemaVersion":2}"#);
    let error = pusher
        .push_manifest(
            &format!("{repository}@{}", sha256(b"something else")),
            manifest,
            &OCI_MANIFEST,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::DigestMismatch { .. }),
        "{error:?}"
    );

    // An image that cannot be pushed is refused before any blob goes up.
    let layer = descriptor("application/vnd.oci.image.layer.v1.tar", b"layer");
    let odd_repository = registry.reference("acme/odd");
    let odd = PushImage {
        repository: odd_repository.clone(),
        tag: Some("1".into()),
        top: Content::new(
            MediaType::new("application/vnd.example.unknown+json"),
            Bytes::from_static(b"{}"),
        ),
        children: Vec::new(),
        blobs: vec![layer.clone()],
    };
    let error = pusher
        .push_images(
            &[odd],
            &|_| Ok(std::io::Cursor::new(b"layer".to_vec())),
            2,
            &|_| (),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Input, "{error:?}");
    assert!(
        !pusher
            .blob_exists(&odd_repository, &layer.digest)
            .await
            .unwrap()
    );
}

/// A registry stand-in that answers the upload PUT with 503 `failures` times, then 201.
async fn flaky_registry(failures: usize) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let puts = Arc::new(AtomicUsize::new(0));
    let counter = puts.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                if crate::lab::refuse_tls(&mut socket).await {
                    return;
                }
                let mut socket = BufReader::new(socket);
                loop {
                    let mut head = Vec::new();
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push(line.clone());
                    }
                    let length: usize = head
                        .iter()
                        .find_map(|h| {
                            let (name, value) = h.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    let method = head[0].split(' ').next().unwrap_or_default().to_string();
                    if method != "HEAD" && socket.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let response = match method.as_str() {
                        "POST" => "202 Accepted\r\nLocation: /v2/x/blobs/uploads/u1".to_string(),
                        "PUT" if counter.fetch_add(1, Ordering::SeqCst) < failures => {
                            "503 Service Unavailable".to_string()
                        }
                        "PUT" => "201 Created\r\nLocation: /v2/x/blobs/done".to_string(),
                        _ => "404 Not Found".to_string(),
                    };
                    let reply = format!("HTTP/1.1 {response}\r\nContent-Length: 0\r\n\r\n");
                    if socket.get_mut().write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (host, puts)
}

#[tokio::test]
async fn a_retried_upload_reopens_the_source() {
    let (host, puts) = flaky_registry(2).await;
    let scratch = tempfile::tempdir().unwrap();
    let options = RegistryOptions {
        docker_config: Some(empty_docker_config(scratch.path())),
        insecure: vec![host.clone()],
        retries: 3,
        ..RegistryOptions::default()
    };
    let pusher = Pusher::new(options, None).unwrap();
    let data = vec![9u8; (1 << 20) + 3];
    let blob = descriptor("application/octet-stream", &data);
    let opened = AtomicUsize::new(0);
    pusher
        .push_blob(&format!("{host}/x"), &blob, || {
            opened.fetch_add(1, Ordering::SeqCst);
            Ok(std::io::Cursor::new(data.clone()))
        })
        .await
        .unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 3);
    assert_eq!(puts.load(Ordering::SeqCst), 3);

    // With the retries spent, the last status is reported.
    let (host, _) = flaky_registry(usize::MAX).await;
    let options = RegistryOptions {
        docker_config: Some(empty_docker_config(scratch.path())),
        insecure: vec![host.clone()],
        retries: 1,
        ..RegistryOptions::default()
    };
    let pusher = Pusher::new(options, None).unwrap();
    let error = pusher
        .push_blob(&format!("{host}/x"), &blob, || {
            Ok(std::io::Cursor::new(data.clone()))
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::Server {
                status: 503,
                attempts: 2,
                ..
            }
        ),
        "{error:?}"
    );
}
