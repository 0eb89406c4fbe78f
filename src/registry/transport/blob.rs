//! Blob operations: download as a stream (never buffered; the caller checks size and digest
//! as it writes), existence, cross-repository mount, and upload in one streamed PUT.
//!
//! An upload's body cannot be replayed, so a 401 on its PUT (a token revoked early) is not
//! retried here: the fresh challenge is absorbed and [`TransportError::ReauthRequired`]
//! (transient) returned, and the caller's retry reopens its source. A token that merely
//! expired during a long upload is replaced before the next request anyway (tokens are
//! checked for expiry per request). Uploads have no overall deadline: a big layer on a slow
//! link may take hours. They fail when the body stops being taken, or the answer does not
//! come, for the idle timeout.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use url::Url;

use super::auth::Scopes;
use super::body::idle_limited;
use super::error::SourceFailure;
use super::manifest::check_announced;
use super::request::{Exchange, Outgoing};
use super::{Digest, Repository, Transport, TransportError};

/// A blob being downloaded.
pub struct BlobDownload {
    /// The Content-Length the registry announced, if any (the caller compares it with the
    /// descriptor before writing, and counts bytes while writing).
    pub length: Option<u64>,
    /// The body, chunk by chunk; a stall longer than the idle timeout ends it with
    /// [`TransportError::Timeout`].
    pub chunks: BoxStream<'static, Result<Bytes, TransportError>>,
}

impl std::fmt::Debug for BlobDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobDownload")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

/// What a mount did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountOutcome {
    /// The blob is now in the destination repository.
    Mounted,
    /// The registry would not (or could not) mount it: upload it instead.
    NotMounted,
}

impl Transport {
    /// Starts downloading blob `digest` of `repository` (following redirects, e.g. to object
    /// storage, with each hop's own TLS policy and no registry credentials off-origin).
    pub async fn get_blob(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<BlobDownload, TransportError> {
        let mut exchange = Exchange {
            host: &repository.host,
            what: format!("blob {digest} of {}", repository.name),
            scopes: Scopes::pull(&repository.name),
        };
        let mut outgoing = Outgoing::new(Method::GET, blob_path(repository, digest));
        outgoing.streamed_response = true;
        let response = self.send(&mut exchange, &outgoing).await?;
        if response.status() != StatusCode::OK {
            return Err(self.unexpected(&exchange, response).await);
        }
        let length = response.content_length();
        let (host, what) = (repository.host.clone(), exchange.what.clone());
        let chunks = response.bytes_stream().map(move |chunk| {
            chunk.map_err(|error| TransportError::from_reqwest(error, &host, &what))
        });
        Ok(BlobDownload {
            length,
            chunks: idle_limited(
                chunks,
                self.options.idle_timeout,
                repository.host.clone(),
                exchange.what,
            )
            .boxed(),
        })
    }

    /// Whether `repository` holds blob `digest`.
    pub async fn head_blob(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<bool, TransportError> {
        let mut exchange = Exchange {
            host: &repository.host,
            what: format!("blob {digest} of {}", repository.name),
            scopes: Scopes::pull(&repository.name),
        };
        let outgoing = Outgoing::new(Method::HEAD, blob_path(repository, digest));
        let response = self.send(&mut exchange, &outgoing).await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.unexpected(&exchange, response).await),
        }
    }

    /// Mounts blob `digest` from `source` into `destination` (same host), with one token
    /// for push on the destination and pull on the source. Anything but a mount (another
    /// host, a 202 upload session, which is cancelled, a refusal by the registry, or no such
    /// token from the token server) is [`MountOutcome::NotMounted`]: the caller uploads
    /// instead.
    pub async fn mount_blob(
        &self,
        destination: &Repository,
        source: &Repository,
        digest: &Digest,
    ) -> Result<MountOutcome, TransportError> {
        if destination.host != source.host {
            tracing::debug!(%destination, %source, "mount declined: different hosts");
            return Ok(MountOutcome::NotMounted);
        }
        let mut exchange = Exchange {
            host: &destination.host,
            what: format!(
                "mount of blob {digest} from {} into {}",
                source.name, destination.name
            ),
            scopes: Scopes::mount(&destination.name, &source.name),
        };
        let path = format!(
            "v2/{}/blobs/uploads/?mount={digest}&from={}",
            destination.name, source.name
        );
        let mut outgoing = Outgoing::new(Method::POST, path);
        outgoing.body = Some(Bytes::new());
        let response = match self.send(&mut exchange, &outgoing).await {
            Ok(response) => response,
            // The token server would not give one token for both repositories (a caller
            // without pull on the source): a mount is only a shortcut, so upload instead.
            // Credentials that are wrong altogether fail the upload, which says so.
            Err(
                TransportError::AuthRefused { .. } | TransportError::CredentialsWithheld { .. },
            ) => {
                tracing::debug!(host = exchange.host, %digest, "mount declined: no token for both repositories");
                return Ok(MountOutcome::NotMounted);
            }
            Err(error) => return Err(error),
        };
        match response.status() {
            StatusCode::CREATED => Ok(MountOutcome::Mounted),
            StatusCode::ACCEPTED => {
                // An upload session was opened instead: close it rather than leave it to
                // the registry's purge.
                if let Some(session) = location(&response) {
                    let mut cancel = Outgoing::new(Method::DELETE, String::new());
                    cancel.url = Some(session);
                    let _ = self.send(&mut exchange, &cancel).await;
                }
                tracing::debug!(host = exchange.host, %digest, "mount declined: the registry opened an upload");
                Ok(MountOutcome::NotMounted)
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                tracing::debug!(host = exchange.host, %digest, status = response.status().as_u16(), "mount declined");
                Ok(MountOutcome::NotMounted)
            }
            _ => Err(self.unexpected(&exchange, response).await),
        }
    }

    /// Uploads blob `digest` of `size` bytes from `body`: a POST opens a session, one
    /// streamed PUT with Content-Length completes it. To show progress, wrap `body`. An
    /// `Err` from `body` aborts the upload ([`TransportError::Source`]); nothing is committed
    /// unless all `size` bytes arrive and hash to `digest` (the registry checks).
    pub async fn upload_blob<S>(
        &self,
        repository: &Repository,
        digest: &Digest,
        size: u64,
        body: S,
    ) -> Result<(), TransportError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let mut exchange = Exchange {
            host: &repository.host,
            what: format!("blob {digest} of {}", repository.name),
            scopes: Scopes::push(&repository.name),
        };
        let session = self.open_upload(&mut exchange, repository).await?;
        let url = with_digest(session, digest);
        let mut put = Outgoing::new(Method::PUT, String::new());
        put.headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
        put.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let progress = Progress::new();
        let watched = {
            let progress = progress.clone();
            body.map(move |chunk| {
                progress.touch();
                chunk.map_err(SourceFailure)
            })
        };
        let idle = self.options.idle_timeout;
        let answered = {
            let upload = pin!(self.send_once(
                &mut exchange,
                &url,
                &put,
                reqwest::Body::wrap_stream(watched)
            ));
            let stalled = pin!(progress.stalled(idle));
            match futures::future::select(upload, stalled).await {
                futures::future::Either::Left((response, _)) => Some(response),
                futures::future::Either::Right(((), _)) => None,
            }
        };
        let response = answered.ok_or_else(|| TransportError::Timeout {
            host: repository.host.clone(),
            what: exchange.what.clone(),
        })??;
        if response.status() != StatusCode::CREATED {
            return Err(self.unexpected(&exchange, response).await);
        }
        check_announced(&response, &repository.host, exchange.what, digest)
    }
}

impl Transport {
    /// Proves `repository` takes pushes, cheaply: opens an upload session (on a token
    /// registry that needs a push token, where `/v2/` alone proves nothing) and cancels it.
    pub async fn check_push(&self, repository: &Repository) -> Result<(), TransportError> {
        let mut exchange = Exchange {
            host: &repository.host,
            what: format!("an upload to {}", repository.name),
            scopes: Scopes::push(&repository.name),
        };
        let session = self.open_upload(&mut exchange, repository).await?;
        // Best effort: a session left open holds nothing and expires on the registry.
        let cancel = Outgoing::new(Method::DELETE, String::new());
        let cancelled = self
            .send_once(
                &mut exchange,
                &session,
                &cancel,
                reqwest::Body::from(Bytes::new()),
            )
            .await;
        if let Err(error) = cancelled {
            tracing::debug!(host = exchange.host, %error, "cancelling the upload session failed");
        }
        Ok(())
    }

    /// Opens an upload session (a POST), returning its URL.
    async fn open_upload(
        &self,
        exchange: &mut Exchange<'_>,
        repository: &Repository,
    ) -> Result<Url, TransportError> {
        let mut start = Outgoing::new(
            Method::POST,
            format!("v2/{}/blobs/uploads/", repository.name),
        );
        start.body = Some(Bytes::new());
        let response = self.send(exchange, &start).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.unexpected(exchange, response).await);
        }
        location(&response).ok_or_else(|| TransportError::Protocol {
            host: repository.host.clone(),
            what: exchange.what.clone(),
            reason: "upload session without a usable Location".into(),
        })
    }
}

fn blob_path(repository: &Repository, digest: &Digest) -> String {
    format!("v2/{}/blobs/{digest}", repository.name)
}

/// The response's Location, resolved against the URL it answered (relative or absolute).
fn location(response: &reqwest::Response) -> Option<Url> {
    let value = response.headers().get(LOCATION)?.to_str().ok()?;
    resolve_location(response.url(), value)
}

fn resolve_location(base: &Url, location: &str) -> Option<Url> {
    base.join(location)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
}

/// The session URL with `digest=` added to whatever query it already has (`_state`, ...).
fn with_digest(mut session: Url, digest: &Digest) -> Url {
    session
        .query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    session
}

/// When an upload's body last moved.
#[derive(Clone)]
struct Progress {
    start: Instant,
    last_millis: Arc<AtomicU64>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            start: Instant::now(),
            last_millis: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(elapsed, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `idle`.
    async fn stalled(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
            let quiet = last.elapsed();
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_relative_absolute_and_with_query() {
        let base = Url::parse("https://r.example:5000/v2/a/blobs/uploads/").unwrap();
        let digest = Digest::of(b"x");
        let cases = [
            (
                "/v2/a/blobs/uploads/u1?_state=abc%3D",
                "https://r.example:5000/v2/a/blobs/uploads/u1?_state=abc%3D&digest=",
            ),
            ("u2", "https://r.example:5000/v2/a/blobs/uploads/u2?digest="),
            (
                "http://other.example/upload/u3?x=1&y=2",
                "http://other.example/upload/u3?x=1&y=2&digest=",
            ),
        ];
        for (location, expected) in cases {
            let url = with_digest(resolve_location(&base, location).unwrap(), &digest);
            assert_eq!(
                url.as_str(),
                format!("{expected}{}", digest.to_string().replace(':', "%3A"))
            );
        }
        assert!(resolve_location(&base, "ftp://x/y").is_none());
    }

    #[tokio::test]
    async fn progress_stalls_only_when_quiet() {
        let progress = Progress::new();
        let idle = Duration::from_millis(200);
        let mover = {
            let progress = progress.clone();
            async move {
                for _ in 0..6 {
                    tokio::time::sleep(Duration::from_millis(80)).await;
                    progress.touch();
                }
            }
        };
        let started = Instant::now();
        let ((), ()) = tokio::join!(mover, progress.stalled(idle));
        // Moving for ~480 ms, then quiet for 200 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
    }
}
