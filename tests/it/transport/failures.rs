//! Failures an operation must classify, and redirects, with in-process fakes (a real
//! registry neither stalls on cue nor redirects to object storage in the lab): a stalled download or upload times
//! out (transient), a failing upload body is the caller's (final), a blob redirected to
//! object storage is fetched there without the registry's credentials.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use velero_airgap::oci::Digest;
use velero_airgap::registry::transport::{TransportError, TransportOptions};

use super::{basic, insecure, repository, transport_with};
use crate::lab::fake::{FakeServer, Reply};

fn options(hosts: &[&str], idle: Duration) -> TransportOptions {
    let mut options = TransportOptions::new(insecure(hosts));
    options.idle_timeout = idle;
    options
}

/// A registry with Basic auth that opens upload sessions and stalls blob downloads.
async fn registry() -> FakeServer {
    FakeServer::start(|request| {
        if request.header("authorization").is_none() {
            return Reply::status(401).with_header("WWW-Authenticate", r#"Basic realm="fake""#);
        }
        match (request.method.as_str(), request.path()) {
            ("GET", "/v2/") => Reply::status(200),
            ("POST", _) => Reply::status(202).with_header("Location", "/v2/a/blobs/uploads/u1"),
            ("GET", path) if path.starts_with("/v2/a/blobs/") => Reply::Stalled {
                status: 200,
                length: 1000,
                prefix: vec![1; 10],
            },
            _ => Reply::status(201),
        }
    })
    .await
}

#[tokio::test]
async fn a_stalled_download_times_out_after_its_first_bytes() {
    let server = registry().await;
    let transport = transport_with(
        options(&[&server.host()], Duration::from_millis(300)),
        basic(),
    );
    let download = transport
        .get_blob(&repository(&server.host(), "a"), &Digest::of(b"x"))
        .await
        .unwrap();
    assert_eq!(download.length, Some(1000));
    let items: Vec<_> = download.chunks.collect().await;
    let (last, received) = items.split_last().unwrap();
    assert_eq!(
        received
            .iter()
            .map(|c| c.as_ref().unwrap().len())
            .sum::<usize>(),
        10
    );
    assert!(
        matches!(last, Err(TransportError::Timeout { .. })),
        "{last:?}"
    );
    assert!(last.as_ref().unwrap_err().is_transient());
}

#[tokio::test]
async fn a_stalled_upload_body_times_out() {
    let server = registry().await;
    let transport = transport_with(
        options(&[&server.host()], Duration::from_millis(300)),
        basic(),
    );
    let body =
        futures::stream::iter([Ok(Bytes::from_static(b"first"))]).chain(futures::stream::pending());
    let error = transport
        .upload_blob(
            &repository(&server.host(), "a"),
            &Digest::of(b"x"),
            100,
            body,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Timeout { .. }), "{error:?}");
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_failing_upload_body_is_reported_as_the_source() {
    let server = registry().await;
    let transport = transport_with(options(&[&server.host()], Duration::from_secs(10)), basic());
    let body = futures::stream::iter([
        Ok(Bytes::from_static(b"first")),
        Err(std::io::Error::other(
            "the source does not match its digest",
        )),
    ]);
    let error = transport
        .upload_blob(
            &repository(&server.host(), "a"),
            &Digest::of(b"x"),
            100,
            body,
        )
        .await
        .unwrap_err();
    match &error {
        TransportError::Source { source, .. } => {
            assert!(source.to_string().contains("does not match"), "{source}");
        }
        other => panic!("expected Source, got {other:?}"),
    }
    assert!(!error.is_transient());
}

#[tokio::test]
async fn redirected_blobs_are_fetched_without_registry_credentials() {
    let storage = FakeServer::start(|_| Reply::Full {
        status: 200,
        headers: Vec::new(),
        body: b"layer".to_vec(),
    })
    .await;
    let target = format!("http://{}/bucket/blob?signature=abc", storage.host());
    let registry = FakeServer::start(move |request| {
        if request.header("authorization").is_none() {
            return Reply::status(401).with_header("WWW-Authenticate", r#"Basic realm="fake""#);
        }
        match request.path() {
            "/v2/" => Reply::status(200),
            // A relative hop first, then off to object storage.
            "/v2/a/blobs/first" => Reply::status(307).with_header("Location", &target),
            _ => Reply::status(307).with_header("Location", "/v2/a/blobs/first"),
        }
    })
    .await;
    let transport = transport_with(
        options(&[&registry.host()], Duration::from_secs(10)),
        basic(),
    );
    let digest = Digest::of(b"layer");
    let download = transport
        .get_blob(&repository(&registry.host(), "a"), &digest)
        .await
        .unwrap();
    let bytes: Vec<u8> = download.chunks.map(|c| c.unwrap().to_vec()).concat().await;
    assert_eq!(bytes, b"layer");
    let at_storage = storage.recorded();
    assert_eq!(at_storage.len(), 1);
    assert_eq!(at_storage[0].target, "/bucket/blob?signature=abc");
    assert_eq!(at_storage[0].header("authorization"), None);
    let hops: Vec<_> = registry
        .recorded()
        .into_iter()
        .filter(|r| r.path().starts_with("/v2/a/"))
        .collect();
    assert!(
        hops.iter().all(|r| r.header("authorization").is_some()),
        "same-origin hops keep credentials"
    );
}
