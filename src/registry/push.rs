//! Pushing to a registry: blobs streamed from a caller's source, manifests as exact bytes;
//! `plan` builds [`Pusher::push_images`] on these to push whole images idempotently.
//!
//! A blob travels in one streamed PUT (`use_monolithic_push`): a blocking thread reads the
//! source in 256 KiB chunks into a small channel, so memory stays bounded whatever the blob's
//! size. That thread hashes what it reads and holds each chunk back until the next one is
//! read, so the last chunk leaves only once size and digest are proven: a wrong source fails
//! the request before the registry has the whole body, and nothing is ever committed under a
//! wrong digest (the registry checks the digest on commit as well). A retry reopens the
//! source and starts the blob over.
//!
//! Manifests go up with `push_manifest_raw`: `push_manifest` would re-serialise them and
//! change their digest.

mod plan;

use std::future::Future;
use std::io::Read;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use oci_client::Reference;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use sha2::Digest as _;

use super::error::{Failure, RequestContext};
use super::{Registry, RegistryError, RegistryOptions, Retry, Session};
use crate::oci::{Descriptor, Digest, MediaType};

pub use plan::{PushAction, PushEvent, PushImage, PushReport, PushedImage};

/// Bytes read from a blob source at a time.
const CHUNK: usize = 256 << 10;
/// Chunks queued between the reading thread and the upload: with the held-back chunk and
/// the one being sent, about 1.5 MiB per blob in flight (measured: ~2 MiB of RSS per job).
const QUEUED_CHUNKS: usize = 4;
/// How often upload progress is reported (and a stall looked for).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// The longest wait for the answer to a request other than an upload.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest an upload may go without taking a byte, or without an answer once all
/// bytes are sent.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A user name and password given explicitly (`--username` + `--password-stdin`); they take
/// precedence over the Docker config. `Debug` hides the password.
#[derive(Clone)]
pub struct BasicCredentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Pushes to registries. `Send + Sync`: one `Pusher` serves concurrent tasks and reuses
/// connections and tokens. Mirrors in its options play no part.
pub struct Pusher {
    registry: Registry,
    /// Explicit credentials, used for every host instead of the Docker config's.
    credentials: Option<RegistryAuth>,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("registry", &self.registry)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl Pusher {
    /// Reads the CA files and Docker config of `options` and sets up the HTTP client;
    /// `credentials`, when given, are sent to every registry instead of the Docker config's.
    pub fn new(
        options: RegistryOptions,
        credentials: Option<BasicCredentials>,
    ) -> Result<Pusher, RegistryError> {
        Ok(Pusher {
            registry: Registry::with_client_config(options, |config| {
                config.use_monolithic_push = true;
                // reqwest's read timeout runs from the start of a request until its answer,
                // which for a streamed PUT includes the whole upload: a big layer on a slow
                // link would never make it. Requests are bounded here instead.
                config.read_timeout = None;
            })?,
            credentials: credentials.map(|c| RegistryAuth::Basic(c.username, c.password)),
        })
    }

    /// Whether `repository` (`HOST[:PORT]/PATH`) holds blob `digest` (a HEAD request).
    pub async fn blob_exists(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let reference = blob_reference(repository, digest)?;
        let session = self.session(repository, &reference).await?;
        let object = format!("blob {digest}");
        let context = session.context(&object);
        session
            .retrying(&context, || async {
                answered(
                    self.registry
                        .client
                        .blob_exists(&reference, &digest.to_string()),
                )
                .await?
                .map_err(|error| Failure::from_oci(error, &context))
            })
            .await
    }

    /// Uploads `blob` to `repository`, reading it from `open()` (called again for each
    /// attempt). Fails with [`RegistryError::DigestMismatch`] or
    /// [`RegistryError::SizeMismatch`] if the source's bytes do not match the descriptor; then
    /// nothing is committed.
    pub async fn push_blob<F, R>(
        &self,
        repository: &str,
        blob: &Descriptor,
        mut open: F,
    ) -> Result<(), RegistryError>
    where
        F: FnMut() -> std::io::Result<R>,
        R: Read + Send + 'static,
    {
        self.upload(repository, blob, &mut open, &|_| ()).await
    }

    /// Mounts blob `digest` into `repository` from `from_repository` (both
    /// `HOST[:PORT]/PATH`). `Ok(false)` when the registry declined (it answered 202, or the
    /// two are on different registries): then push the blob.
    pub async fn mount_blob(
        &self,
        repository: &str,
        from_repository: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let reference = blob_reference(repository, digest)?;
        let from = blob_reference(from_repository, digest)?;
        if from.resolve_registry() != reference.resolve_registry() {
            return Ok(false);
        }
        let session = self.session(repository, &reference).await?;
        let object = format!("mount of blob {digest} from {}", from.repository());
        let context = session.context(&object);
        session
            .retrying(&context, || async {
                let digest = digest.to_string();
                match answered(self.registry.client.mount_blob(&reference, &from, &digest)).await? {
                    Ok(()) | Err(OciDistributionError::RegistryNoLocationError) => Ok(true),
                    // oci-client wants 201; any other success (202: an upload was opened
                    // instead) means the registry would not mount.
                    Err(OciDistributionError::SpecViolationError(_)) => Ok(false),
                    Err(error) => Err(Failure::from_oci(error, &context)),
                }
            })
            .await
    }

    /// Whether `reference` (`HOST[:PORT]/PATH:TAG` or `…@DIGEST`) names manifest `digest`
    /// (a HEAD request; a tag naming another manifest is `false`).
    pub async fn manifest_exists(
        &self,
        reference: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let parsed = parse_reference(reference)?;
        let session = self.session(reference, &parsed).await?;
        let object = manifest_object(&parsed);
        let context = session.context(&object);
        session
            .retrying(&context, || async {
                match answered(
                    self.registry
                        .client
                        .fetch_manifest_digest(&parsed, &session.auth),
                )
                .await?
                {
                    Ok(found) => Ok(found == digest.to_string()),
                    Err(error) => match Failure::from_oci(error, &context) {
                        Failure::Final(RegistryError::NotFound { .. }) => Ok(false),
                        failure => Err(failure),
                    },
                }
            })
            .await
    }

    /// Pushes manifest `bytes` unchanged as `reference` (`HOST[:PORT]/PATH:TAG` or
    /// `…@DIGEST`). `media_type` must be an OCI or Docker v2 manifest or index type; for a
    /// digest reference the bytes must hash to that digest.
    pub async fn push_manifest(
        &self,
        reference: &str,
        bytes: Bytes,
        media_type: &MediaType,
    ) -> Result<(), RegistryError> {
        let parsed = parse_reference(reference)?;
        let object = manifest_object(&parsed);
        check_manifest_type(reference, media_type)?;
        if let Some(expected) = parsed.digest() {
            let actual = Digest::of(&bytes).to_string();
            if actual != expected {
                return Err(RegistryError::DigestMismatch {
                    reference: reference.to_string(),
                    object,
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
        let session = self.session(reference, &parsed).await?;
        let context = session.context(&object);
        session
            .retrying(&context, || async {
                // The media type is one of four constants, so it is a valid header value;
                // `parse` spares a direct dependency on `http` for its type.
                let content_type = media_type.as_str().parse().map_err(|_| {
                    Failure::Final(RegistryError::UnsupportedManifest {
                        reference: reference.to_string(),
                        reason: format!("media type {media_type:?} is not a header value"),
                    })
                })?;
                answered(self.registry.client.push_manifest_raw(
                    &parsed,
                    bytes.clone(),
                    content_type,
                ))
                .await?
                .map(drop)
                .map_err(|error| Failure::from_oci(error, &context))
            })
            .await
    }

    /// Uploads one blob, retrying transient failures with a freshly opened source.
    async fn upload<R: Read + Send + 'static>(
        &self,
        repository: &str,
        blob: &Descriptor,
        open: &mut dyn FnMut() -> std::io::Result<R>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), RegistryError> {
        let reference = blob_reference(repository, &blob.digest)?;
        let session = self.session(repository, &reference).await?;
        let object = format!("blob {}", blob.digest);
        let context = session.context(&object);
        let mut retry = Retry::new(self.registry.retries);
        loop {
            let reader = open().map_err(|source| RegistryError::Source {
                reference: repository.to_string(),
                digest: blob.digest.to_string(),
                source,
            })?;
            match self
                .upload_once(&reference, blob, reader, &context, progress)
                .await
            {
                Ok(()) => return Ok(()),
                Err(failure) => retry.after(failure, &context).await?,
            }
        }
    }

    async fn upload_once<R: Read + Send + 'static>(
        &self,
        reference: &Reference,
        blob: &Descriptor,
        reader: R,
        context: &RequestContext<'_>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), Failure> {
        let (sender, receiver) = tokio::sync::mpsc::channel(QUEUED_CHUNKS);
        let sent = Arc::new(AtomicU64::new(0));
        let pump = tokio::task::spawn_blocking({
            let (blob, sent) = (blob.clone(), sent.clone());
            move || pump(reader, &blob, &sender, &sent)
        });
        let body = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        let uploaded = watched(
            self.registry.client.push_blob_stream(
                reference,
                body,
                &blob.digest.to_string(),
                Some(blob.size),
            ),
            &sent,
            progress,
            STALL_TIMEOUT,
        )
        .await;
        // The source's verdict outranks the upload's: a failed check is what aborted it.
        let failure = match pump.await {
            Ok(Ok(()) | Err(PumpFailure::Cancelled)) => None,
            Ok(Err(PumpFailure::Size(actual))) => Some(RegistryError::SizeMismatch {
                reference: context.reference.to_string(),
                object: context.object.to_string(),
                expected: blob.size,
                actual,
            }),
            Ok(Err(PumpFailure::Digest(actual))) => Some(RegistryError::DigestMismatch {
                reference: context.reference.to_string(),
                object: context.object.to_string(),
                expected: blob.digest.to_string(),
                actual,
            }),
            Ok(Err(PumpFailure::Read(source))) => Some(RegistryError::Source {
                reference: context.reference.to_string(),
                digest: blob.digest.to_string(),
                source,
            }),
            Err(_) => Some(RegistryError::Source {
                reference: context.reference.to_string(),
                digest: blob.digest.to_string(),
                source: std::io::Error::other("the blob reader panicked"),
            }),
        };
        if let Some(error) = failure {
            return Err(Failure::Final(error));
        }
        uploaded
            .ok_or_else(|| timed_out(STALL_TIMEOUT))?
            .map(drop)
            .map_err(|error| Failure::from_oci(error, context))
    }

    async fn session<'a>(
        &'a self,
        target: &'a str,
        reference: &'a Reference,
    ) -> Result<Session<'a>, RegistryError> {
        let host = reference.resolve_registry();
        let auth = match &self.credentials {
            Some(explicit) => explicit.clone(),
            None => self.registry.credentials_for(host).await?,
        };
        // Requests without stored credentials go anonymous with no extra round trip;
        // with them, oci-client sends Basic or fetches a token per repository.
        if auth != RegistryAuth::Anonymous {
            self.registry.client.store_auth_if_needed(host, &auth).await;
        }
        Ok(Session {
            registry: &self.registry,
            canonical: target,
            source: reference,
            host,
            auth,
        })
    }
}

/// Why a blob source did not deliver the blob.
#[derive(Debug)]
enum PumpFailure {
    /// Reading failed.
    Read(std::io::Error),
    /// The source held this many bytes (or more), not the descriptor's size.
    Size(u64),
    /// The source's bytes hash to this digest.
    Digest(String),
    /// The upload stopped taking bytes (it failed on its own): not the source's fault.
    Cancelled,
}

type BodyChunk = Result<Bytes, OciDistributionError>;

/// Reads `reader` into `sender` chunk by chunk, checking size and digest before the last
/// chunk is sent; on a failed check it sends an error instead, which aborts the upload.
fn pump(
    mut reader: impl Read,
    blob: &Descriptor,
    sender: &tokio::sync::mpsc::Sender<BodyChunk>,
    sent: &AtomicU64,
) -> Result<(), PumpFailure> {
    let result = pump_checked(&mut reader, blob, sender, sent);
    if let Err(reason) = &result
        && !matches!(reason, PumpFailure::Cancelled)
    {
        // The receiver may be gone already; then the upload has failed anyway.
        let _ = sender.blocking_send(Err(OciDistributionError::IoError(std::io::Error::other(
            "blob source failed its check",
        ))));
    }
    result
}

fn pump_checked(
    reader: &mut impl Read,
    blob: &Descriptor,
    sender: &tokio::sync::mpsc::Sender<BodyChunk>,
    sent: &AtomicU64,
) -> Result<(), PumpFailure> {
    let send = |chunk: Bytes| {
        let length = chunk.len() as u64;
        sender
            .blocking_send(Ok(chunk))
            .map_err(|_| PumpFailure::Cancelled)?;
        sent.fetch_add(length, Ordering::Relaxed);
        Ok(())
    };
    let mut hasher = sha2::Sha256::new();
    let mut total: u64 = 0;
    let mut held: Option<Bytes> = None;
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        (&mut *reader)
            .take(CHUNK as u64)
            .read_to_end(&mut chunk)
            .map_err(PumpFailure::Read)?;
        if chunk.is_empty() {
            break;
        }
        total += chunk.len() as u64;
        // Stop a source longer than announced before it is all read.
        if total > blob.size {
            return Err(PumpFailure::Size(total));
        }
        hasher.update(&chunk);
        if let Some(previous) = held.replace(Bytes::from(chunk)) {
            send(previous)?;
        }
    }
    if total != blob.size {
        return Err(PumpFailure::Size(total));
    }
    let actual = Digest::from_hasher(hasher);
    if actual != blob.digest {
        return Err(PumpFailure::Digest(actual.to_string()));
    }
    match held {
        Some(last) => send(last),
        None => Ok(()),
    }
}

/// Runs `future`, reporting the growth of `sent` to `progress` every
/// [`PROGRESS_INTERVAL`] and at the end. `None` when `sent` did not grow for `stall` (a
/// registry that stopped reading, or that does not answer once it has every byte): the
/// future is dropped, which aborts the request.
async fn watched<F: Future>(
    future: F,
    sent: &AtomicU64,
    progress: &(dyn Fn(u64) + Sync),
    stall: Duration,
) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut reported = 0;
    let mut last_growth = tokio::time::Instant::now();
    loop {
        tokio::select! {
            output = &mut future => {
                let now = sent.load(Ordering::Relaxed);
                if now > reported {
                    progress(now - reported);
                }
                return Some(output);
            }
            _ = ticker.tick() => {
                let now = sent.load(Ordering::Relaxed);
                if now > reported {
                    progress(now - reported);
                    reported = now;
                    last_growth = tokio::time::Instant::now();
                } else if last_growth.elapsed() >= stall {
                    return None;
                }
            }
        }
    }
}

/// Runs one request other than an upload; no answer within [`REQUEST_TIMEOUT`] is a
/// connection failure (so it is retried).
async fn answered<T>(request: impl Future<Output = T>) -> Result<T, Failure> {
    tokio::time::timeout(REQUEST_TIMEOUT, request)
        .await
        .map_err(|_| timed_out(REQUEST_TIMEOUT))
}

fn timed_out(after: Duration) -> Failure {
    Failure::Connection(Box::new(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no progress for {} s", after.as_secs()),
    )))
}

fn parse_reference(reference: &str) -> Result<Reference, RegistryError> {
    Reference::try_from(reference).map_err(|source| RegistryError::InvalidReference {
        reference: reference.to_string(),
        source,
    })
}

/// `repository@digest`, refusing a repository that carries a tag or digest of its own and
/// a digest of the wrong form.
fn blob_reference(repository: &str, digest: &Digest) -> Result<Reference, RegistryError> {
    let parsed = parse_reference(repository)?;
    // The parser adds `latest` to a bare repository, so look at the text itself.
    let last_component = repository.rsplit('/').next().unwrap_or(repository);
    if repository.contains('@') || last_component.contains(':') {
        return Err(RegistryError::InvalidReference {
            reference: repository.to_string(),
            source: oci_client::ParseError::ReferenceInvalidFormat,
        });
    }
    Ok(Reference::with_digest(
        parsed.registry().to_string(),
        parsed.repository().to_string(),
        digest.to_string(),
    ))
}

/// Refuses media types other than OCI and Docker v2 manifests and indexes.
fn check_manifest_type(reference: &str, media_type: &MediaType) -> Result<(), RegistryError> {
    if media_type.manifest_kind().is_some() {
        Ok(())
    } else {
        Err(RegistryError::UnsupportedManifest {
            reference: reference.to_string(),
            reason: format!("cannot push media type {media_type:?}"),
        })
    }
}

fn manifest_object(reference: &Reference) -> String {
    match reference.digest() {
        Some(digest) => format!("manifest {digest}"),
        None => format!("manifest for tag {}", reference.tag().unwrap_or("latest")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(bytes: &[u8]) -> Descriptor {
        Descriptor::of(MediaType::new("application/octet-stream"), bytes)
    }

    /// Runs the pump on `source` for `blob` and returns what it sent and its verdict.
    fn run_pump(source: &[u8], blob: &Descriptor) -> (Vec<BodyChunk>, Result<(), PumpFailure>) {
        let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
        let sent = AtomicU64::new(0);
        let result = pump(source, blob, &sender, &sent);
        drop(sender);
        let mut chunks = Vec::new();
        while let Ok(chunk) = receiver.try_recv() {
            chunks.push(chunk);
        }
        (chunks, result)
    }

    #[test]
    fn pump_sends_everything_when_the_source_matches() {
        let data: Vec<u8> = (0..CHUNK * 2 + 17).map(|i| i as u8).collect();
        let (chunks, result) = run_pump(&data, &descriptor(&data));
        result.unwrap();
        let sent: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect();
        assert_eq!(sent, data);
    }

    #[test]
    fn pump_withholds_the_last_chunk_of_a_wrong_source() {
        let data = vec![1u8; CHUNK + 10];
        let mut other = data.clone();
        other[CHUNK + 5] = 2;
        let (chunks, result) = run_pump(&other, &descriptor(&data));
        assert!(matches!(result, Err(PumpFailure::Digest(_))));
        // The first chunk went out; the last never did, an error took its place.
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].as_ref().unwrap().len(), CHUNK);
        assert!(chunks[1].is_err());
    }

    #[test]
    fn pump_refuses_sources_of_the_wrong_size() {
        let data = vec![3u8; 100];
        let (chunks, result) = run_pump(&data[..99], &descriptor(&data));
        assert!(matches!(result, Err(PumpFailure::Size(99))));
        assert!(chunks.iter().all(Result::is_err));
        let (_, result) = run_pump(&[3u8; 101], &descriptor(&data));
        assert!(matches!(result, Err(PumpFailure::Size(101))));
    }

    #[test]
    fn pump_handles_an_empty_blob() {
        let (chunks, result) = run_pump(b"", &descriptor(b""));
        result.unwrap();
        assert!(chunks.is_empty());
    }

    #[tokio::test]
    async fn a_stalled_upload_is_given_up_and_a_moving_one_is_not() {
        let sent = AtomicU64::new(0);
        let stall = Duration::from_millis(300);
        let stuck = watched(std::future::pending::<()>(), &sent, &|_| (), stall).await;
        assert!(stuck.is_none());
        // Bytes keep flowing for longer than `stall`: the upload is left alone.
        let moving = async {
            for _ in 0..8 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                sent.fetch_add(10, Ordering::Relaxed);
            }
        };
        let reported = AtomicU64::new(0);
        let progress = |bytes| {
            reported.fetch_add(bytes, Ordering::Relaxed);
        };
        assert!(watched(moving, &sent, &progress, stall).await.is_some());
        assert_eq!(reported.load(Ordering::Relaxed), 80);
    }

    #[test]
    fn blob_references_reject_tags_and_bad_digests() {
        let digest = Digest::of(b"x");
        let reference = blob_reference("127.0.0.1:5000/acme/app", &digest).unwrap();
        assert_eq!(reference.registry(), "127.0.0.1:5000");
        assert_eq!(reference.repository(), "acme/app");
        assert!(blob_reference("127.0.0.1:5000/acme/app:1.0", &digest).is_err());
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let credentials = BasicCredentials {
            username: "alice".into(),
            password: "s3cret".into(),
        };
        let shown = format!("{credentials:?}");
        assert!(
            shown.contains("alice") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
