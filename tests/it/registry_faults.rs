//! Faults a real registry does not produce, from an in-process HTTP server: wrong bytes,
//! cut connections, 5xx and 429, oversized bodies. They prove the digest and size checks,
//! the retries and the sink reset.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use velero_airgap::ErrorKind;
use velero_airgap::oci::{Descriptor, PlatformSelection};
use velero_airgap::registry::{BlobSink, Registry, RegistryError, RegistryOptions, ResolvedImage};

const LAYER: &[u8] = &[7u8; 100_000];

fn digest(bytes: &[u8]) -> String {
    velero_airgap::oci::Digest::of(bytes).to_string()
}

/// What the server does with the n-th request (counting from 0) for the layer.
#[derive(Clone, Copy)]
enum Fault {
    /// Serve the right bytes.
    None,
    /// Serve as many bytes, but different ones.
    WrongBytes,
    /// Announce the full length, send half, close.
    CutAfterHalf,
    /// Answer with this status.
    Status(u16),
    /// Announce and send more bytes than the descriptor says.
    TooLong,
}

struct Server {
    host: String,
    layer_requests: Arc<AtomicUsize>,
}

/// Serves one image (`x:1`, one layer) and applies `faults[n]` to the n-th layer request
/// (the last entry applies to every later request).
async fn serve(faults: Vec<Fault>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(LAYER), "size": LAYER.len()}],
    })
    .to_string();
    let layer_requests = Arc::new(AtomicUsize::new(0));
    let counter = layer_requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let manifest = manifest.clone();
            let counter = counter.clone();
            let faults = faults.clone();
            tokio::spawn(async move {
                if crate::lab::refuse_tls(&mut socket).await {
                    return;
                }
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request);
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let (status, body, announced): (u16, Vec<u8>, usize) = if path == "/v2/" {
                    (200, b"{}".to_vec(), 0)
                } else if path.contains("/manifests/") {
                    (200, manifest.into_bytes(), 0)
                } else if path.ends_with(&digest(LAYER)) {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    match faults[n.min(faults.len() - 1)] {
                        Fault::None => (200, LAYER.to_vec(), 0),
                        Fault::WrongBytes => (200, vec![8u8; LAYER.len()], 0),
                        Fault::CutAfterHalf => {
                            (200, LAYER[..LAYER.len() / 2].to_vec(), LAYER.len())
                        }
                        Fault::Status(code) => (code, b"{}".to_vec(), 0),
                        Fault::TooLong => (200, [LAYER, b"extra"].concat(), 0),
                    }
                } else {
                    (404, b"{}".to_vec(), 0)
                };
                let length = if announced == 0 {
                    body.len()
                } else {
                    announced
                };
                let mut response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {length}\r\nConnection: close\r\n"
                );
                if path.contains("/manifests/") {
                    response
                        .push_str("Content-Type: application/vnd.oci.image.manifest.v1+json\r\n");
                }
                response.push_str("\r\n");
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.write_all(&body).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Server {
        host,
        layer_requests,
    }
}

async fn resolve(server: &Server, retries: u32) -> (Registry, ResolvedImage, Descriptor) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    let registry = Registry::new(RegistryOptions {
        insecure: vec![server.host.clone()],
        docker_config: Some(dir.path().to_path_buf()),
        retries,
        ..RegistryOptions::default()
    })
    .unwrap();
    let image = registry
        .resolve(
            &format!("{}/x:1", server.host).parse().unwrap(),
            &PlatformSelection::All,
        )
        .await
        .unwrap();
    let layer = image
        .blobs
        .iter()
        .find(|b| b.digest.to_string() == digest(LAYER))
        .unwrap()
        .clone();
    (registry, image, layer)
}

/// A sink that counts resets.
#[derive(Default)]
struct CountingSink {
    bytes: Vec<u8>,
    resets: usize,
}

impl BlobSink for CountingSink {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn reset(&mut self) -> std::io::Result<()> {
        self.bytes.clear();
        self.resets += 1;
        Ok(())
    }
}

#[tokio::test]
async fn wrong_bytes_are_a_digest_mismatch_and_not_retried() {
    let server = serve(vec![Fault::WrongBytes]).await;
    let (registry, image, layer) = resolve(&server, 3).await;
    let error = registry
        .fetch_blob(&image, &layer, &mut Vec::new())
        .await
        .unwrap_err();
    match &error {
        RegistryError::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(*expected, digest(LAYER));
            assert_eq!(*actual, digest(&vec![8u8; LAYER.len()]));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert_eq!(error.kind(), ErrorKind::Input);
    assert_eq!(server.layer_requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cut_connection_and_5xx_are_retried_from_a_reset_sink() {
    let server = serve(vec![Fault::CutAfterHalf, Fault::Status(503), Fault::None]).await;
    let (registry, image, layer) = resolve(&server, 2).await;
    let mut sink = CountingSink::default();
    registry
        .fetch_blob(&image, &layer, &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.bytes, LAYER);
    assert_eq!(sink.resets, 3, "one reset per attempt");
    assert_eq!(server.layer_requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn throttling_gives_up_after_the_retries() {
    let server = serve(vec![Fault::Status(429)]).await;
    let (registry, image, layer) = resolve(&server, 1).await;
    let error = registry
        .fetch_blob(&image, &layer, &mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::Server {
                status: 429,
                attempts: 2,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains(&digest(LAYER)), "{error}");
    assert_eq!(error.kind(), ErrorKind::Remote);
}

#[tokio::test]
async fn oversized_blob_is_refused() {
    let server = serve(vec![Fault::TooLong]).await;
    let (registry, image, layer) = resolve(&server, 0).await;
    let error = registry
        .fetch_blob(&image, &layer, &mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::SizeMismatch { expected, actual, .. }
            if expected == LAYER.len() as u64 && actual == LAYER.len() as u64 + 5),
        "{error:?}"
    );
}
