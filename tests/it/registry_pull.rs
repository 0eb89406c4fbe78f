//! Resolving and fetching against a real distribution registry (plain, basic auth, TLS).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::lab::layout::{Layout, docker_config, sha256};
use crate::lab::{Registry as LabRegistry, RegistryKind};
use velero_airgap::ErrorKind;
use velero_airgap::oci::{MediaType, PlatformSelection};
use velero_airgap::reference::Reference;
use velero_airgap::registry::{Mirror, Registry, RegistryError, RegistryOptions, ResolvedImage};

const OCI_MANIFEST: MediaType = MediaType::OCI_MANIFEST;
const OCI_INDEX: MediaType = MediaType::OCI_INDEX;
const DOCKER_MANIFEST: MediaType = MediaType::DOCKER_MANIFEST;
const DOCKER_LIST: MediaType = MediaType::DOCKER_MANIFEST_LIST;

fn reference(text: &str) -> Reference {
    Reference::parse(text).unwrap()
}

fn platforms(spec: &str) -> PlatformSelection {
    PlatformSelection::parse(spec).unwrap()
}

fn options_for(registry: &LabRegistry) -> RegistryOptions {
    let mut options = RegistryOptions {
        // An empty config dir: the tests never read the user's own Docker config.
        docker_config: Some(registry.empty_docker_config()),
        ..RegistryOptions::default()
    };
    match &registry.ca_cert {
        Some(ca) => options.ca_files.push(ca.clone()),
        None => options.insecure.push(registry.addr.clone()),
    }
    options
}

/// Fetches every blob of `image` and checks it against `layout` (OCI sources) or its digest.
async fn fetch_all(registry: &Registry, image: &ResolvedImage, layout: Option<&Layout>) -> u64 {
    let mut total = 0;
    for blob in &image.blobs {
        let mut bytes = Vec::new();
        registry.fetch_blob(image, blob, &mut bytes).await.unwrap();
        assert_eq!(sha256(&bytes), blob.digest);
        assert_eq!(bytes.len() as u64, blob.size);
        if let Some(layout) = layout {
            assert_eq!(bytes, layout.blob(&blob.digest));
        }
        total += bytes.len() as u64;
    }
    total
}

#[tokio::test]
async fn plain_single_image_resolves_and_fetches() {
    let lab = LabRegistry::start(RegistryKind::Plain);
    let mut layout = Layout::new();
    let written = layout.add_image("app", &["amd64"]);
    lab.seed_layout(&layout, "app", "acme/app:1.0", false);

    let registry = Registry::new(options_for(&lab)).unwrap();
    let canonical = format!("{}/acme/app:1.0", lab.addr);
    let image = registry
        .resolve(&reference(&canonical), &PlatformSelection::default())
        .await
        .unwrap();

    assert_eq!(image.canonical.to_string(), canonical);
    assert_eq!(image.source.to_string(), canonical);
    assert_eq!(image.top.digest, written.digest);
    assert_eq!(image.top.media_type, OCI_MANIFEST);
    assert_eq!(image.manifests.len(), 1);
    assert_eq!(image.manifests[0].bytes, layout.blob(&written.digest));
    assert!(image.source_index.is_none());
    let expected: Vec<_> = std::iter::once(&written.platforms[0].config)
        .chain(&written.platforms[0].layers)
        .collect();
    let actual: Vec<_> = image.blobs.iter().map(|b| &b.digest).collect();
    assert_eq!(actual, expected);
    // The config was read to check the platform, and is handed over.
    assert_eq!(image.configs.len(), 1);
    assert_eq!(
        image.configs[0].bytes,
        layout.blob(&written.platforms[0].config)
    );
    assert!(fetch_all(&registry, &image, Some(&layout)).await > 8000);
}

#[tokio::test]
async fn basic_auth_uses_the_docker_config_and_wrong_credentials_are_refused() {
    let lab = LabRegistry::start(RegistryKind::BasicAuth);
    let mut layout = Layout::new();
    layout.add_image("app", &["amd64"]);
    lab.seed_layout(&layout, "app", "acme/app:1.0", false);
    let canonical = format!("{}/acme/app:1.0", lab.addr);

    let good = docker_config(&lab.addr, LabRegistry::USERNAME, LabRegistry::PASSWORD);
    let options = RegistryOptions {
        docker_config: Some(good.path().join("config.json")),
        ..options_for(&lab)
    };
    let registry = Registry::new(options).unwrap();
    let image = registry
        .resolve(&reference(&canonical), &PlatformSelection::default())
        .await
        .unwrap();
    fetch_all(&registry, &image, Some(&layout)).await;

    let wrong_password = "not-the-Pa55word";
    let bad = docker_config(&lab.addr, LabRegistry::USERNAME, wrong_password);
    let options = RegistryOptions {
        docker_config: Some(bad.path().to_path_buf()),
        ..options_for(&lab)
    };
    let registry = Registry::new(options).unwrap();
    let error = registry
        .resolve(&reference(&canonical), &PlatformSelection::default())
        .await
        .unwrap_err();
    let shown = format!("{error} {error:?} {registry:?}");
    assert!(
        matches!(
            error,
            RegistryError::AuthRefused {
                had_credentials: true,
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!(error.kind(), ErrorKind::Remote);
    assert!(shown.contains(&lab.addr), "{shown}");
    assert!(!shown.contains(wrong_password), "secret printed: {shown}");

    // Anonymous: told that no credentials were found, not that they were rejected.
    let registry = Registry::new(options_for(&lab)).unwrap();
    let error = registry
        .resolve(&reference(&canonical), &PlatformSelection::default())
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
        "{error}"
    );
}

#[tokio::test]
async fn tls_registry_needs_its_ca() {
    let lab = LabRegistry::start(RegistryKind::Tls);
    let mut layout = Layout::new();
    layout.add_image("app", &["amd64"]);
    lab.seed_layout(&layout, "app", "acme/app:1.0", false);
    let canonical = format!("{}/acme/app:1.0", lab.addr);

    let registry = Registry::new(options_for(&lab)).unwrap();
    let image = registry
        .resolve(&reference(&canonical), &PlatformSelection::default())
        .await
        .unwrap();
    fetch_all(&registry, &image, Some(&layout)).await;

    let without_ca = RegistryOptions {
        ca_files: Vec::new(),
        ..options_for(&lab)
    };
    let error = Registry::new(without_ca)
        .unwrap()
        .resolve(&reference(&canonical), &PlatformSelection::default())
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::Tls { .. }), "{error:?}");
    assert!(error.to_string().contains(&lab.addr));
    assert_eq!(error.kind(), ErrorKind::Remote);

    // A CA file holding no certificate is refused before any connection.
    let bogus_ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bogus_ca.path(), "not a certificate").unwrap();
    let error = Registry::new(RegistryOptions {
        ca_files: vec![bogus_ca.path().to_path_buf()],
        ..options_for(&lab)
    })
    .unwrap_err();
    assert!(matches!(error, RegistryError::CaFile { .. }), "{error:?}");
}

#[tokio::test]
async fn multi_arch_pin_all_and_list() {
    let lab = LabRegistry::start(RegistryKind::Plain);
    let mut layout = Layout::new();
    let written = layout.add_image("multi", &["amd64", "arm64", "s390x"]);
    lab.seed_layout(&layout, "multi", "acme/multi:2", false);
    let registry = Registry::new(options_for(&lab)).unwrap();
    let canonical = format!("{}/acme/multi:2", lab.addr);
    let source_index = layout.blob(&written.digest);

    // One platform: the arm64 manifest is pinned, the index kept aside.
    let pinned = registry
        .resolve(&reference(&canonical), &platforms("linux/arm64/v8"))
        .await
        .unwrap();
    let arm64 = &written.platforms[1];
    assert_eq!(pinned.top.digest, arm64.manifest);
    assert_eq!(pinned.top.media_type, OCI_MANIFEST);
    assert_eq!(pinned.manifests.len(), 1);
    let kept = pinned.source_index.as_ref().expect("source index kept");
    assert_eq!(kept.descriptor.digest, written.digest);
    assert_eq!(kept.bytes, source_index);
    assert_eq!(pinned.blobs.len(), 3);
    fetch_all(&registry, &pinned, Some(&layout)).await;

    // All: the index as served with every child; the shared layer listed once.
    let all = registry
        .resolve(&reference(&canonical), &PlatformSelection::All)
        .await
        .unwrap();
    assert_eq!(all.top.digest, written.digest);
    assert_eq!(all.top.media_type, OCI_INDEX);
    assert_eq!(all.manifests.len(), 4);
    assert_eq!(all.manifests[0].bytes, source_index);
    assert!(all.source_index.is_none());
    assert_eq!(all.blobs.len(), 1 + 3 * 2);

    // A list: a filtered index with the chosen children in source order, reproducibly.
    let list = registry
        .resolve(
            &reference(&canonical),
            &platforms("linux/s390x,linux/amd64"),
        )
        .await
        .unwrap();
    assert_eq!(list.top.media_type, OCI_INDEX);
    assert_ne!(list.top.digest, written.digest);
    assert_eq!(list.top.digest, sha256(&list.manifests[0].bytes));
    let filtered: serde_json::Value = serde_json::from_slice(&list.manifests[0].bytes).unwrap();
    let children: Vec<String> = filtered["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        children,
        [
            written.platforms[0].manifest.to_string(),
            written.platforms[2].manifest.to_string()
        ]
    );
    assert_eq!(list.manifests.len(), 3);
    assert_eq!(list.source_index.as_ref().unwrap().bytes, source_index);
    assert_eq!(list.blobs.len(), 1 + 2 * 2);
    let again = registry
        .resolve(
            &reference(&canonical),
            &platforms("linux/amd64,linux/s390x"),
        )
        .await
        .unwrap();
    assert_eq!(again.top, list.top);
    fetch_all(&registry, &list, Some(&layout)).await;
}

#[tokio::test]
async fn missing_platforms_are_named() {
    let lab = LabRegistry::start(RegistryKind::Plain);
    let mut layout = Layout::new();
    layout.add_image("multi", &["amd64", "arm64"]);
    layout.add_image("single", &["amd64"]);
    lab.seed_layout(&layout, "multi", "acme/multi:1", false);
    lab.seed_layout(&layout, "single", "acme/single:1", false);
    let registry = Registry::new(options_for(&lab)).unwrap();

    let multi = format!("{}/acme/multi:1", lab.addr);
    let error = registry
        .resolve(
            &reference(&multi),
            &platforms("linux/amd64,linux/ppc64le,linux/arm/v7"),
        )
        .await
        .unwrap_err();
    let RegistryError::MissingPlatform {
        reference: named,
        missing,
        available,
    } = &error
    else {
        panic!("expected a missing platform, got {error:?}");
    };
    assert_eq!(named, &multi);
    assert_eq!(missing, &["linux/ppc64le", "linux/arm/v7"]);
    assert_eq!(available, &["linux/amd64", "linux/arm64"]);
    assert_eq!(error.kind(), ErrorKind::Input);

    let single = format!("{}/acme/single:1", lab.addr);
    let error = registry
        .resolve(&reference(&single), &platforms("linux/arm64"))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains(&single) && error.to_string().contains("linux/arm64"),
        "{error}"
    );
    // `all` takes a single-platform image as it is.
    registry
        .resolve(&reference(&single), &PlatformSelection::All)
        .await
        .unwrap();
}

#[tokio::test]
async fn docker_v2s2_manifests_stay_as_served() {
    let lab = LabRegistry::start(RegistryKind::Plain);
    let mut layout = Layout::new();
    layout.add_image("single", &["amd64"]);
    layout.add_image("multi", &["amd64", "arm64"]);
    lab.seed_layout(&layout, "single", "docker/single:1", true);
    lab.seed_layout(&layout, "multi", "docker/multi:1", true);
    let registry = Registry::new(options_for(&lab)).unwrap();

    let single = registry
        .resolve(
            &reference(&format!("{}/docker/single:1", lab.addr)),
            &PlatformSelection::default(),
        )
        .await
        .unwrap();
    assert_eq!(single.top.media_type, DOCKER_MANIFEST);
    assert_eq!(single.top.digest, sha256(&single.manifests[0].bytes));
    assert!(
        single.blobs[0]
            .media_type
            .as_str()
            .starts_with("application/vnd.docker.")
    );
    fetch_all(&registry, &single, None).await;

    let canonical = format!("{}/docker/multi:1", lab.addr);
    let all = registry
        .resolve(&reference(&canonical), &PlatformSelection::All)
        .await
        .unwrap();
    assert_eq!(all.top.media_type, DOCKER_LIST);
    assert_eq!(all.top.digest, sha256(&all.manifests[0].bytes));
    let pinned = registry
        .resolve(&reference(&canonical), &platforms("linux/arm64"))
        .await
        .unwrap();
    assert_eq!(pinned.top.media_type, DOCKER_MANIFEST);
    assert_eq!(
        pinned.source_index.as_ref().unwrap().bytes,
        all.manifests[0].bytes
    );
    // Pinning by digest gives the same bytes (and the platform is checked from its config).
    let by_digest = registry
        .resolve(
            &reference(&format!("{canonical}@{}", pinned.top.digest)),
            &platforms("linux/arm64"),
        )
        .await
        .unwrap();
    assert_eq!(by_digest.manifests[0].bytes, pinned.manifests[0].bytes);
    fetch_all(&registry, &pinned, None).await;
}

#[tokio::test]
async fn mirrors_change_where_bytes_come_from_not_the_name() {
    let lab = LabRegistry::start(RegistryKind::BasicAuth);
    let mut layout = Layout::new();
    let written = layout.add_image("velero", &["amd64"]);
    lab.seed_layout(&layout, "velero", "hub/velero/velero:v1.18.1", false);

    // Credentials are those of the mirror host, the one actually contacted.
    let config = docker_config(&lab.addr, LabRegistry::USERNAME, LabRegistry::PASSWORD);
    let options = RegistryOptions {
        mirrors: vec![Mirror::parse(&format!("docker.io={}/hub", lab.addr)).unwrap()],
        docker_config: Some(config.path().to_path_buf()),
        ..options_for(&lab)
    };
    let registry = Registry::new(options).unwrap();
    let canonical = "docker.io/velero/velero:v1.18.1";
    let image = registry
        .resolve(&reference(canonical), &PlatformSelection::default())
        .await
        .unwrap();
    assert_eq!(image.canonical.to_string(), canonical);
    assert_eq!(
        image.source.to_string(),
        format!("{}/hub/velero/velero:v1.18.1", lab.addr)
    );
    assert_eq!(image.top.digest, written.digest);
    fetch_all(&registry, &image, Some(&layout)).await;

    // A mirror without the image fails; nothing falls back to docker.io.
    let error = registry
        .resolve(
            &reference("docker.io/velero/absent:1"),
            &PlatformSelection::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::NotFound { ref host, .. } if host == &lab.addr),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("docker.io/velero/absent:1"),
        "{error}"
    );
}

#[tokio::test]
async fn stopped_registry_is_a_network_error_with_and_without_retries() {
    let mut lab = LabRegistry::start(RegistryKind::Plain);
    let mut layout = Layout::new();
    layout.add_image("app", &["amd64"]);
    lab.seed_layout(&layout, "app", "acme/app:1", false);
    let canonical = format!("{}/acme/app:1", lab.addr);
    let registry = Registry::new(RegistryOptions {
        retries: 0,
        ..options_for(&lab)
    })
    .unwrap();
    let image = registry
        .resolve(&reference(&canonical), &PlatformSelection::default())
        .await
        .unwrap();
    lab.stop();

    let mut sink = Vec::new();
    let error = registry
        .fetch_blob(&image, &image.blobs[1], &mut sink)
        .await
        .unwrap_err();
    // One attempt: no retry with --retries 0.
    assert!(
        matches!(error, RegistryError::Network { attempts: 1, ref host, .. } if host == &lab.addr),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Remote);

    let retrying = Registry::new(RegistryOptions {
        retries: 2,
        ..options_for(&lab)
    })
    .unwrap();
    let started = Instant::now();
    let error = retrying
        .resolve(&reference(&canonical), &PlatformSelection::default())
        .await
        .unwrap_err();
    // Backoff 0.5 s then 1 s.
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(
        matches!(error, RegistryError::Network { attempts: 3, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn blobs_fetch_concurrently_from_spawned_tasks() {
    let lab = LabRegistry::start(RegistryKind::Plain);
    let mut layout = Layout::new();
    layout.add_image("multi", &["amd64", "arm64"]);
    lab.seed_layout(&layout, "multi", "acme/multi:1", false);
    let registry = Arc::new(Registry::new(options_for(&lab)).unwrap());
    let canonical = format!("{}/acme/multi:1", lab.addr);
    let image = Arc::new(
        registry
            .resolve(&reference(&canonical), &PlatformSelection::All)
            .await
            .unwrap(),
    );
    let tasks: Vec<_> = image
        .blobs
        .iter()
        .cloned()
        .map(|blob| {
            let (registry, image) = (registry.clone(), image.clone());
            tokio::spawn(async move {
                let mut bytes = Vec::new();
                registry
                    .fetch_blob(&image, &blob, &mut bytes)
                    .await
                    .map(|()| (blob, bytes))
            })
        })
        .collect();
    for task in tasks {
        let (blob, bytes) = task.await.unwrap().unwrap();
        assert_eq!(bytes, layout.blob(&blob.digest));
    }
}
