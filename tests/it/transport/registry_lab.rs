//! Against the lab's real distribution registries: plain HTTP, Basic auth, TLS from the lab
//! CA, and both. Each round trip pushes blobs, mounts one into another repository, puts a
//! manifest referencing them and reads everything back.

use bytes::Bytes;
use futures::StreamExt;
use velero_airgap::oci::Digest;
use velero_airgap::registry::transport::{
    Credentials, MountOutcome, Policies, RegistryPolicy, Transport, TransportError, Warning,
};

use super::{basic, repository, transport, trusted_certificate, upload};
use crate::lab::{Registry, RegistryKind};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Pushes a config and a layer, mounts the layer elsewhere, puts and reads a manifest.
async fn round_trip(transport: &Transport, host: &str) {
    let app = repository(host, "acme/app");
    let other = repository(host, "acme/other");
    // 3 MiB and a bit: the registry serves it in many chunks.
    let layer: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;

    let layer_digest = Digest::of(&layer);
    assert!(!transport.head_blob(&app, &layer_digest).await.unwrap());
    assert_eq!(upload(transport, &app, &layer).await.unwrap(), layer_digest);
    assert!(transport.head_blob(&app, &layer_digest).await.unwrap());
    let config_digest = upload(transport, &app, config).await.unwrap();

    assert!(!transport.head_blob(&other, &layer_digest).await.unwrap());
    let mounted = transport
        .mount_blob(&other, &app, &layer_digest)
        .await
        .unwrap();
    assert_eq!(mounted, MountOutcome::Mounted);
    assert!(transport.head_blob(&other, &layer_digest).await.unwrap());
    // A blob the source does not have: the registry opens an upload instead (202).
    let unknown = Digest::of(b"not in the source repository");
    let declined = transport.mount_blob(&other, &app, &unknown).await.unwrap();
    assert_eq!(declined, MountOutcome::NotMounted);

    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let manifest = Bytes::from(manifest);
    let digest = transport
        .put_manifest(&app, "v1", manifest.clone(), OCI_MANIFEST)
        .await
        .unwrap();
    assert_eq!(digest, Digest::of(&manifest));

    let by_digest = digest.to_string();
    for reference in ["v1", by_digest.as_str()] {
        let got = transport.get_manifest(&app, reference).await.unwrap();
        assert_eq!(got.bytes, manifest, "byte-exact for {reference}");
        assert_eq!(got.digest, digest);
        assert_eq!(got.media_type.as_deref(), Some(OCI_MANIFEST));
    }
    let head = transport
        .head_manifest(&app, "v1")
        .await
        .unwrap()
        .expect("manifest exists");
    assert_eq!((head.digest, head.size), (digest, manifest.len() as u64));
    assert_eq!(head.media_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(
        transport.head_manifest(&app, "missing").await.unwrap(),
        None
    );
    let missing = transport.get_manifest(&app, "missing").await.unwrap_err();
    assert!(
        matches!(missing, TransportError::NotFound { .. }),
        "{missing:?}"
    );

    let download = transport.get_blob(&other, &layer_digest).await.unwrap();
    assert_eq!(download.length, Some(layer.len() as u64));
    let mut received = Vec::new();
    let mut chunks = download.chunks;
    let mut count = 0;
    while let Some(chunk) = chunks.next().await {
        received.extend_from_slice(&chunk.unwrap());
        count += 1;
    }
    assert_eq!(received, layer);
    assert!(
        count > 1,
        "a 3 MiB blob arrives in several chunks, got {count}"
    );
}

#[tokio::test]
async fn plain_registry_as_insecure_falls_back_to_http_and_warns_once() {
    let registry = Registry::start(RegistryKind::Plain);
    let policies =
        Policies::new(RegistryPolicy::system()).with_host(&registry.addr, RegistryPolicy::Insecure);
    let transport = transport(policies, Credentials::Anonymous);
    round_trip(&transport, &registry.addr).await;
    assert_eq!(
        transport.warnings(),
        [Warning::PlainHttp {
            host: registry.addr.clone()
        }]
    );
}

#[tokio::test]
async fn verified_hosts_never_fall_back_to_http() {
    let registry = Registry::start(RegistryKind::Plain);
    let transport = transport(
        Policies::new(RegistryPolicy::system()),
        Credentials::Anonymous,
    );
    let error = transport
        .head_blob(&repository(&registry.addr, "a"), &Digest::of(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Tls { .. }), "{error:?}");
    assert!(!error.is_transient());
    assert!(transport.warnings().is_empty());
}

#[tokio::test]
async fn basic_auth_registry() {
    let registry = Registry::start(RegistryKind::BasicAuth);
    let insecure = || {
        Policies::new(RegistryPolicy::system()).with_host(&registry.addr, RegistryPolicy::Insecure)
    };
    round_trip(&transport(insecure(), basic()), &registry.addr).await;

    let app = repository(&registry.addr, "acme/app");
    let anonymous = transport(insecure(), Credentials::Anonymous);
    let error = anonymous.get_manifest(&app, "v1").await.unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::AuthRefused {
                had_credentials: false,
                ..
            }
        ),
        "{error:?}"
    );
    let wrong = Credentials::Basic {
        username: Registry::USERNAME.into(),
        password: "wrong".into(),
    };
    let error = transport(insecure(), wrong)
        .get_manifest(&app, "v1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::AuthRefused {
                had_credentials: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.to_string().contains("wrong"), "{error}");
}

#[tokio::test]
async fn tls_registry_with_extra_ca() {
    let registry = Registry::start(RegistryKind::Tls);
    let ca = trusted_certificate(&registry);
    let transport = transport(
        Policies::new(RegistryPolicy::trusting(vec![ca])),
        Credentials::Anonymous,
    );
    round_trip(&transport, &registry.addr).await;
    assert!(transport.warnings().is_empty());
}

#[tokio::test]
async fn tls_registry_with_unknown_ca() {
    let registry = Registry::start(RegistryKind::Tls);
    let verified = transport(
        Policies::new(RegistryPolicy::system()),
        Credentials::Anonymous,
    );
    let error = verified
        .head_blob(&repository(&registry.addr, "a"), &Digest::of(b"x"))
        .await
        .unwrap_err();
    let TransportError::Tls { source, .. } = &error else {
        panic!("expected a TLS error, got {error:?}");
    };
    assert!(super::has_rustls_error(source.as_ref(), &|e| matches!(
        e,
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    )));

    // Insecure: accepted without verification, over TLS (no fallback), one warning.
    let policies =
        Policies::new(RegistryPolicy::system()).with_host(&registry.addr, RegistryPolicy::Insecure);
    let insecure = transport(policies, Credentials::Anonymous);
    round_trip(&insecure, &registry.addr).await;
    assert_eq!(
        insecure.warnings(),
        [Warning::UnverifiedTls {
            host: registry.addr.clone()
        }]
    );
}

#[tokio::test]
async fn tls_registry_with_basic_auth() {
    let registry = Registry::start(RegistryKind::TlsBasicAuth);
    let ca = trusted_certificate(&registry);
    let transport = transport(Policies::new(RegistryPolicy::trusting(vec![ca])), basic());
    round_trip(&transport, &registry.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_share_one_transport() {
    let registry = Registry::start(RegistryKind::TlsBasicAuth);
    let ca = trusted_certificate(&registry);
    let transport = std::sync::Arc::new(transport(
        Policies::new(RegistryPolicy::trusting(vec![ca])),
        basic(),
    ));
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let (transport, host) = (transport.clone(), registry.addr.clone());
            tokio::spawn(async move {
                let app = repository(&host, &format!("parallel/app{}", i % 2));
                let blob = vec![i; 200_000 + usize::from(i)];
                let digest = upload(&transport, &app, &blob).await.unwrap();
                assert!(transport.head_blob(&app, &digest).await.unwrap());
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}
