//! Pushing to a registry: blobs streamed from a caller's source, manifests as exact bytes;
//! `plan` builds [`Pusher::push_images`] on these to push whole images idempotently.
//!
//! A blob travels in one streamed PUT: a blocking thread reads the source in 256 KiB chunks
//! into a small channel, so memory stays bounded whatever the blob's size. That thread hashes
//! what it reads and holds each chunk back until the next one is read, so the last chunk
//! leaves only once size and digest are proven: a wrong source fails the request before the
//! registry has the whole body, and nothing is ever committed under a wrong digest (the
//! registry checks the digest on commit as well). A retry reopens the source and starts the
//! blob over; so does a token refused in the middle of an upload (the transport asks for a
//! fresh one, and the body cannot be replayed).

mod plan;

use std::future::Future;
use std::io::Read;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use sha2::Digest as _;

use super::error::{Failure, RequestContext};
use super::transport::{Credentials, MountOutcome, Repository, Transport};
use super::{
    DockerConfig, RegistryError, RegistryOptions, Retry, repository_of, retrying, transport_for,
};
use crate::oci::{Descriptor, Digest, MediaType};
use crate::reference::Reference;

pub use plan::{PushAction, PushEvent, PushImage, PushReport, PushedImage};

/// Bytes read from a blob source at a time.
const CHUNK: usize = 256 << 10;
/// Chunks queued between the reading thread and the upload: with the held-back chunk and
/// the one being sent, about 1.5 MiB per blob in flight (measured: ~2 MiB of RSS per job).
const QUEUED_CHUNKS: usize = 4;
/// How often upload progress is reported.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// A user name and password given explicitly (`--username` + `--password-stdin`); they take
/// precedence over the Docker config. `Debug` hides the password.
#[derive(Clone)]
pub struct BasicCredentials {
    pub username: String,
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
#[derive(Debug)]
pub struct Pusher {
    transport: Arc<Transport>,
    retries: u32,
}

impl Pusher {
    /// Reads the CA files and Docker config of `options` and sets up the client;
    /// `credentials`, when given, are sent to every registry instead of the Docker config's.
    pub fn new(
        options: RegistryOptions,
        credentials: Option<BasicCredentials>,
    ) -> Result<Pusher, RegistryError> {
        let transport = match credentials {
            Some(explicit) => transport_for(&options, move |_| {
                Ok(Credentials::Basic {
                    username: explicit.username.clone(),
                    password: explicit.password.clone(),
                })
            })?,
            None => {
                let docker_config = DockerConfig::load(options.docker_config.as_deref())?;
                transport_for(&options, move |host| Ok(docker_config.lookup(host)?))?
            }
        };
        Ok(Pusher {
            transport: Arc::new(transport),
            retries: options.retries,
        })
    }

    /// What the user should know about how registries were reached, each once.
    pub fn warnings(&self) -> Vec<String> {
        self.transport
            .warnings()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Proves `repository` (`HOST[:PORT]/PATH`) is reachable and takes pushes with these
    /// credentials, without writing anything: a check before long work.
    pub async fn check_push(&self, repository: &str) -> Result<(), RegistryError> {
        let target = repository_named(repository)?;
        let context = context(&target, repository, "an upload");
        retrying(self.retries, &context, || async {
            self.transport
                .check_push(&target)
                .await
                .map_err(|error| Failure::from_transport(error, &context))
        })
        .await
    }

    /// Whether `repository` (`HOST[:PORT]/PATH`) holds blob `digest` (a HEAD request).
    pub async fn blob_exists(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let target = repository_named(repository)?;
        let object = format!("blob {digest}");
        let context = context(&target, repository, &object);
        retrying(self.retries, &context, || async {
            self.transport
                .head_blob(&target, digest)
                .await
                .map_err(|error| Failure::from_transport(error, &context))
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
    /// `HOST[:PORT]/PATH`), with one token covering both repositories. `Ok(false)` when the
    /// registry declined (or the two are on different registries): then push the blob.
    pub async fn mount_blob(
        &self,
        repository: &str,
        from_repository: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let target = repository_named(repository)?;
        let source = repository_named(from_repository)?;
        let object = format!("mount of blob {digest} from {}", source.name);
        let context = context(&target, repository, &object);
        let outcome = retrying(self.retries, &context, || async {
            self.transport
                .mount_blob(&target, &source, digest)
                .await
                .map_err(|error| Failure::from_transport(error, &context))
        })
        .await?;
        if outcome == MountOutcome::NotMounted {
            tracing::debug!("{repository}: the registry did not mount {digest}; uploading it");
        }
        Ok(outcome == MountOutcome::Mounted)
    }

    /// Whether `reference` (`HOST[:PORT]/PATH:TAG` or `…@DIGEST`) names manifest `digest`
    /// (a HEAD request; a tag naming another manifest is `false`).
    pub async fn manifest_exists(
        &self,
        reference: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let (target, name) = manifest_target(reference)?;
        let object = format!("manifest {name}");
        let context = context(&target, reference, &object);
        let head = retrying(self.retries, &context, || async {
            self.transport
                .head_manifest(&target, &name)
                .await
                .map_err(|error| Failure::from_transport(error, &context))
        })
        .await?;
        Ok(head.is_some_and(|head| head.digest == *digest))
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
        check_manifest_type(reference, media_type)?;
        let (target, name) = manifest_target(reference)?;
        let object = format!("manifest {name}");
        if let Ok(expected) = name.parse::<Digest>() {
            let actual = Digest::of(&bytes);
            if actual != expected {
                return Err(RegistryError::DigestMismatch {
                    reference: reference.to_string(),
                    object,
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        let context = context(&target, reference, &object);
        retrying(self.retries, &context, || async {
            self.transport
                .put_manifest(&target, &name, bytes.clone(), media_type.as_str())
                .await
                .map(drop)
                .map_err(|error| Failure::from_transport(error, &context))
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
        let target = repository_named(repository)?;
        let object = format!("blob {}", blob.digest);
        let context = context(&target, repository, &object);
        let mut retry = Retry::new(self.retries);
        loop {
            let reader = open().map_err(|source| RegistryError::Source {
                reference: repository.to_string(),
                digest: blob.digest.to_string(),
                source,
            })?;
            match self
                .upload_once(&target, blob, reader, &context, progress)
                .await
            {
                Ok(()) => return Ok(()),
                Err(failure) => retry.after(failure, &context).await?,
            }
        }
    }

    async fn upload_once<R: Read + Send + 'static>(
        &self,
        target: &Repository,
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
        let uploaded = reporting(
            self.transport
                .upload_blob(target, &blob.digest, blob.size, body),
            &sent,
            progress,
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
                actual: actual.to_string(),
            }),
            Ok(Err(PumpFailure::Read(source))) => Some(RegistryError::Source {
                reference: context.reference.to_string(),
                digest: blob.digest.to_string(),
                source,
            }),
            Err(join) => match join.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_) => Some(RegistryError::Source {
                    reference: context.reference.to_string(),
                    digest: blob.digest.to_string(),
                    source: std::io::Error::other("the blob reader was cancelled"),
                }),
            },
        };
        if let Some(error) = failure {
            return Err(Failure::Final(error));
        }
        uploaded.map_err(|error| Failure::from_transport(error, context))
    }
}

fn context<'a>(target: &'a Repository, reference: &'a str, object: &'a str) -> RequestContext<'a> {
    RequestContext {
        host: &target.host,
        reference,
        object,
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
    Digest(Digest),
    /// The upload stopped taking bytes (it failed on its own): not the source's fault.
    Cancelled,
}

type BodyChunk = std::io::Result<Bytes>;

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
        let _ = sender.blocking_send(Err(std::io::Error::other("blob source failed its check")));
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
        return Err(PumpFailure::Digest(actual));
    }
    match held {
        Some(last) => send(last),
        None => Ok(()),
    }
}

/// Runs `future`, reporting the growth of `sent` to `progress` every
/// [`PROGRESS_INTERVAL`] and at the end. (Stalls are the transport's to detect: an upload
/// that takes no byte for its idle timeout fails there.)
async fn reporting<F: Future>(
    future: F,
    sent: &AtomicU64,
    progress: &(dyn Fn(u64) + Sync),
) -> F::Output {
    let mut future = pin!(future);
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut reported = 0;
    loop {
        tokio::select! {
            output = &mut future => {
                let now = sent.load(Ordering::Relaxed);
                if now > reported {
                    progress(now - reported);
                }
                return output;
            }
            _ = ticker.tick() => {
                let now = sent.load(Ordering::Relaxed);
                if now > reported {
                    progress(now - reported);
                    reported = now;
                }
            }
        }
    }
}

/// The repository named by `HOST[:PORT]/PATH`, refusing one that carries a tag or digest.
fn repository_named(repository: &str) -> Result<Repository, RegistryError> {
    let invalid = |reason: &str| RegistryError::InvalidReference {
        reference: repository.to_string(),
        reason: reason.to_string(),
    };
    // The reference parser reads a bare repository as one without a tag; look at the text
    // itself so `repo:tag` and `repo@digest` are refused.
    let last_component = repository.rsplit('/').next().unwrap_or(repository);
    if repository.contains('@') || last_component.contains(':') {
        return Err(invalid("a repository, without tag or digest, is expected"));
    }
    let parsed = Reference::parse(repository).map_err(|error| invalid(&error.to_string()))?;
    repository_of(&parsed)
}

/// The repository of `reference` (`…:TAG` or `…@DIGEST`) and the tag or digest.
fn manifest_target(reference: &str) -> Result<(Repository, String), RegistryError> {
    let parsed = Reference::parse(reference).map_err(|error| RegistryError::InvalidReference {
        reference: reference.to_string(),
        reason: error.to_string(),
    })?;
    let name = match (parsed.digest(), parsed.tag()) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.to_string(),
        (None, None) => "latest".to_string(),
    };
    Ok((repository_of(&parsed)?, name))
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
    async fn progress_is_reported_as_bytes_go_out() {
        let sent = AtomicU64::new(0);
        let moving = async {
            for _ in 0..8 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                sent.fetch_add(10, Ordering::Relaxed);
            }
        };
        let reported = AtomicU64::new(0);
        let progress = |bytes| {
            reported.fetch_add(bytes, Ordering::Relaxed);
        };
        reporting(moving, &sent, &progress).await;
        assert_eq!(reported.load(Ordering::Relaxed), 80);
    }

    #[test]
    fn repositories_reject_tags_and_digests() {
        let repository = repository_named("127.0.0.1:5000/acme/app").unwrap();
        assert_eq!(repository.host, "127.0.0.1:5000");
        assert_eq!(repository.name, "acme/app");
        assert!(repository_named("127.0.0.1:5000/acme/app:1.0").is_err());
        assert!(
            repository_named(&format!("127.0.0.1:5000/acme/app@{}", Digest::of(b"x"))).is_err()
        );
        let (repository, name) = manifest_target("docker.io/velero/velero:v1").unwrap();
        assert_eq!(
            (repository.host.as_str(), name.as_str()),
            ("registry-1.docker.io", "v1")
        );
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
