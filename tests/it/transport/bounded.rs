//! Bounded answers at the transport: an endless chunked manifest, a manifest announcing
//! 500 MB, an endless token answer and an endless error body each end with the right error
//! after reading at most the limit. (The memory this costs is measured on the CLI, in a
//! process of its own: `bounded_answers`; this binary runs many tests at once.)

use velero_airgap::registry::transport::{Credentials, TransportError};

use super::{insecure, repository, transport};
use crate::lab::fake::{FakeServer, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_endless_bodies_fail_at_their_limits() {
    let registry = FakeServer::start(|request| match request.path() {
        "/v2/" => Reply::status(200),
        "/v2/big/manifests/endless" => Reply::EndlessChunked {
            status: 200,
            headers: Vec::new(),
        },
        "/v2/big/manifests/declared" => Reply::Declared {
            status: 200,
            headers: vec![(
                "Content-Type".into(),
                "application/vnd.oci.image.manifest.v1+json".into(),
            )],
            length: 500_000_000,
        },
        _ => Reply::EndlessChunked {
            status: 500,
            headers: Vec::new(),
        },
    })
    .await;
    let token_registry = FakeServer::start(|request| {
        let host = request.header("host").unwrap_or_default().to_string();
        match request.path() {
            "/token" => Reply::EndlessChunked {
                status: 200,
                headers: Vec::new(),
            },
            _ => Reply::status(401).with_header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="http://{host}/token",service="endless""#),
            ),
        }
    })
    .await;
    let (host, token_host) = (registry.host(), token_registry.host());
    let transport = transport(insecure(&[&host, &token_host]), Credentials::Anonymous);
    let big = repository(&host, "big");

    for reference in ["endless", "declared"] {
        let error = transport.get_manifest(&big, reference).await.unwrap_err();
        match &error {
            TransportError::TooLarge {
                host: named,
                what,
                limit,
            } => {
                assert_eq!((named.as_str(), *limit), (host.as_str(), 4 << 20));
                assert!(what.contains(reference), "{what}");
            }
            other => panic!("{reference}: expected TooLarge, got {other:?}"),
        }
        assert!(!error.is_transient());
    }

    let error = transport
        .get_manifest(&repository(&token_host, "any"), "latest")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::TooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "token answer: {error:?}"
    );

    // An endless error body: the status decides, the body is read only up to 64 KiB.
    let error = transport.get_manifest(&big, "broken").await.unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::Server {
                status: 500,
                code: None,
                body_cut_at: Some(65_536),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_transient());
}
