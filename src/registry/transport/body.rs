//! Bounded reading of response bodies. Every body the transport reads whole goes through
//! [`read_capped`], with a limit per kind: a registry (or anything pretending to be one)
//! that sends an endless or huge body costs us at most the limit in memory, not gigabytes.
//! Content-Length is only used to fail early; the cap holds whatever the header says.
//! Blob bodies are never read whole: [`idle_limited`] streams them with a per-chunk timeout.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

use super::error::TransportError;

/// Manifests and indexes (distribution itself refuses manifests over 4 MiB).
pub(crate) const MANIFEST_LIMIT: u64 = 4 << 20;
/// Token server answers.
pub(crate) const TOKEN_LIMIT: u64 = 1 << 20;
/// Error bodies, read only to extract `errors[].code`.
pub(crate) const ERROR_LIMIT: u64 = 64 << 10;

/// Reads `chunks` to the end, failing with [`TransportError::TooLarge`] as soon as more than
/// `limit` bytes arrived (or `declared`, the Content-Length, already says so).
pub(crate) async fn read_capped<S>(
    chunks: S,
    declared: Option<u64>,
    limit: u64,
    host: &str,
    what: &str,
) -> Result<Bytes, TransportError>
where
    S: Stream<Item = Result<Bytes, TransportError>>,
{
    let too_large = || TransportError::TooLarge {
        host: host.to_string(),
        what: what.to_string(),
        limit,
    };
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    // Reserve what is announced (bounded by the limit): the usual manifest is one allocation.
    let reserve = declared.unwrap_or(0).min(limit);
    let mut collected = BytesMut::with_capacity(usize::try_from(reserve).unwrap_or(0));
    let mut chunks = std::pin::pin!(chunks);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        if collected.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(collected.freeze())
}

/// Reads a response body with [`read_capped`].
pub(crate) async fn read_response(
    response: reqwest::Response,
    limit: u64,
    host: &str,
    what: &str,
) -> Result<Bytes, TransportError> {
    let declared = response.content_length();
    let chunks = response
        .bytes_stream()
        .map(|chunk| chunk.map_err(|error| TransportError::from_reqwest(error, host, what)));
    read_capped(chunks, declared, limit, host, what).await
}

/// What an error response's body told: its distribution error code, if any, and whether it
/// went past [`ERROR_LIMIT`] (then it was not read further and has no code).
#[derive(Debug, Default)]
pub(crate) struct ErrorBody {
    /// `errors[0].code`.
    pub code: Option<String>,
    /// `Some(ERROR_LIMIT)` when the body was larger than that.
    pub cut_at: Option<u64>,
}

/// Reads an error response's body within [`ERROR_LIMIT`]; a body that is not JSON simply has
/// no code (the status says enough).
pub(crate) async fn read_error_body(response: reqwest::Response, host: &str) -> ErrorBody {
    match read_response(response, ERROR_LIMIT, host, "error body").await {
        Ok(body) => ErrorBody {
            code: super::error::error_code(&body),
            cut_at: None,
        },
        Err(TransportError::TooLarge { limit, .. }) => ErrorBody {
            code: None,
            cut_at: Some(limit),
        },
        Err(_) => ErrorBody::default(),
    }
}

/// The distribution error code of an error response (see [`read_error_body`]).
pub(crate) async fn read_error_code(response: reqwest::Response, host: &str) -> Option<String> {
    read_error_body(response, host).await.code
}

/// Streams `chunks`, failing with [`TransportError::Timeout`] when no chunk arrives for
/// `idle`: a stalled download is noticed without bounding the whole transfer.
pub(crate) fn idle_limited<S>(
    chunks: S,
    idle: Duration,
    host: String,
    what: String,
) -> impl Stream<Item = Result<Bytes, TransportError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, TransportError>> + Send + 'static,
{
    futures::stream::unfold(
        (Box::pin(chunks), host, what, false),
        move |(mut chunks, host, what, done)| async move {
            if done {
                return None;
            }
            match tokio::time::timeout(idle, chunks.next()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), (chunks, host, what, false))),
                Ok(Some(Err(error))) => Some((Err(error), (chunks, host, what, true))),
                Ok(None) => None,
                Err(_) => {
                    let error = TransportError::Timeout {
                        host: host.clone(),
                        what: what.clone(),
                    };
                    Some((Err(error), (chunks, host, what, true)))
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(
        sizes: &[usize],
    ) -> impl Stream<Item = Result<Bytes, TransportError>> + Send + 'static {
        let items: Vec<_> = sizes
            .iter()
            .map(|&n| Ok(Bytes::from(vec![7u8; n])))
            .collect();
        futures::stream::iter(items)
    }

    #[tokio::test]
    async fn reads_up_to_the_limit_exactly() {
        let body = read_capped(chunks(&[3, 4, 3]), None, 10, "h", "w")
            .await
            .unwrap();
        assert_eq!(body.len(), 10);
        let empty = read_capped(chunks(&[]), Some(0), 10, "h", "w")
            .await
            .unwrap();
        assert!(empty.is_empty());
    }

    #[tokio::test]
    async fn one_byte_over_the_limit_fails() {
        let error = read_capped(chunks(&[3, 4, 4]), None, 10, "reg:5000", "manifest x")
            .await
            .unwrap_err();
        match error {
            TransportError::TooLarge { host, what, limit } => {
                assert_eq!(
                    (host.as_str(), what.as_str(), limit),
                    ("reg:5000", "manifest x", 10)
                );
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_endless_stream_stops_at_the_limit() {
        let endless = futures::stream::repeat_with(|| Ok(Bytes::from_static(&[1u8; 1024])));
        let error = read_capped(endless, None, 1 << 20, "h", "w")
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            TransportError::TooLarge { limit: 1048576, .. }
        ));
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_fails_before_reading() {
        // The stream would panic if polled: the header alone decides.
        let never = futures::stream::poll_fn(
            |_| -> std::task::Poll<Option<Result<Bytes, TransportError>>> { panic!("polled") },
        );
        let error = read_capped(never, Some(500 << 20), 4 << 20, "h", "w")
            .await
            .unwrap_err();
        assert!(matches!(error, TransportError::TooLarge { .. }));
    }

    #[tokio::test]
    async fn a_lying_small_length_does_not_lift_the_cap() {
        let error = read_capped(chunks(&[8, 8]), Some(1), 10, "h", "w")
            .await
            .unwrap_err();
        assert!(matches!(error, TransportError::TooLarge { .. }));
    }

    #[tokio::test]
    async fn a_stalled_stream_times_out_and_a_moving_one_does_not() {
        let stalled = futures::stream::pending::<Result<Bytes, TransportError>>();
        let mut limited = Box::pin(idle_limited(
            stalled,
            Duration::from_millis(50),
            "h".into(),
            "w".into(),
        ));
        assert!(matches!(
            limited.next().await,
            Some(Err(TransportError::Timeout { .. }))
        ));
        assert!(limited.next().await.is_none());
        let moving = chunks(&[1, 2]);
        let collected: Vec<_> =
            idle_limited(moving, Duration::from_millis(50), "h".into(), "w".into())
                .collect()
                .await;
        assert_eq!(collected.len(), 2);
    }
}
