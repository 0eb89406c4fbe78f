//! One import session: a lease, the blobs written under it, then the image names.
//!
//! The caller streams a bundle once, blob by blob, and names images only after all their
//! blobs are committed (see the module documentation of [`crate::containerd`]).
//!
//! A blob is written through containerd's Write stream under a stable ingest ref per digest
//! (`velero-airgap-<digest>`): a run that was killed mid-blob leaves a partial ingest under
//! that ref, and the next run's first write at offset 0 makes containerd truncate it and start
//! over, so nothing needs cleaning up by hand. containerd hashes what it receives and refuses
//! the commit unless the digest and size match, so a damaged reader cannot store wrong bytes.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::{
    AddResourceRequest, CreateImageRequest, CreateRequest, DeleteRequest, GetImageRequest, Image,
    Info, InfoRequest, Resource, UpdateImageRequest, UpdateRequest, WriteAction,
    WriteContentRequest, WriteContentResponse,
};
use containerd_client::tonic::metadata::AsciiMetadataValue;
use containerd_client::tonic::{self, Code, Request, Streaming};
use containerd_client::types::Descriptor;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::Containerd;
use super::error::{self, ContainerdError, Result};

/// How long an import's lease lives when the process dies before [`Import::finish`].
pub const DEFAULT_LEASE_EXPIRY: Duration = Duration::from_secs(60 * 60);

/// The lease label that makes containerd drop the lease by itself.
const EXPIRE_LABEL: &str = "containerd.io/gc.expire";

/// The gRPC metadata key that puts everything a call writes under a lease.
const LEASE_HEADER: &str = "containerd-lease";

/// Prefix of lease ids and ingest refs, so `ctr leases ls` / `ctr content active` say whose
/// they are.
const ID_PREFIX: &str = "velero-airgap";

/// Bytes per Write message: far below containerd's 16 MiB message limit, and small enough
/// that the messages in flight stay a few MiB.
const CHUNK: usize = 1 << 20;

/// Write messages queued ahead of the socket, so reading the next chunk overlaps sending.
const IN_FLIGHT: usize = 4;

/// How often, and how far apart, to retry a blob whose ingest another writer holds: after a
/// `kill -9` containerd releases the dead stream's lock a moment later.
const LOCK_RETRIES: u32 = 20;
const LOCK_RETRY_DELAY: Duration = Duration::from_millis(250);

/// What [`Import::write_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The blob was streamed and committed.
    Written,
    /// containerd had it already; only missing labels were added.
    Present,
}

/// What [`Import::set_image`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageOutcome {
    /// The name did not exist and now points at the target.
    Created,
    /// The name pointed elsewhere (or lacked labels) and was updated in place.
    Updated,
    /// The name already pointed at the target with the labels.
    Unchanged,
}

/// An import in progress: everything written through it is held by its lease until
/// [`Import::finish`]. Methods take `&self`, so blobs may be written concurrently.
///
/// Dropped without `finish`, the lease stays until it expires (then the garbage collector
/// takes what no image names); a re-run starts a new lease and completes the work.
#[derive(Debug)]
pub struct Import {
    client: Containerd,
    lease: String,
    lease_header: AsciiMetadataValue,
}

impl Import {
    /// Creates the lease; see [`Containerd::begin_with_expiry`].
    pub(super) async fn begin(client: Containerd, expiry: Duration) -> Result<Import> {
        let now = SystemTime::now();
        let since_epoch = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        // Unique per process and instant; containerd allows only [A-Za-z0-9] joined by . _ -.
        let lease = format!(
            "{ID_PREFIX}-{}-{}-{}",
            since_epoch.as_secs(),
            since_epoch.subsec_nanos(),
            std::process::id()
        );
        let lease_header = AsciiMetadataValue::try_from(lease.as_str())
            .expect("a lease id made of ASCII letters, digits and dashes is a header value");
        let mut expires = prost_types::Timestamp::from(now + expiry);
        expires.nanos = 0;
        let request = CreateRequest {
            id: lease.clone(),
            labels: HashMap::from([(EXPIRE_LABEL.to_owned(), expires.to_string())]),
        };
        LeasesClient::new(client.channel.clone())
            .create(client.request(request))
            .await
            .map_err(|source| client.daemon_error("create the import lease", source))?;
        Ok(Import {
            client,
            lease,
            lease_header,
        })
    }

    /// The lease's id (shown by `ctr leases ls`).
    pub fn lease(&self) -> &str {
        &self.lease
    }

    /// Whether containerd has the blob. If it has, the blob is put under this import's lease
    /// (so the garbage collector cannot take it before its image is named) and is given any of
    /// `labels` it lacks: pass a manifest's [`gc_labels`](super::gc_labels), which an earlier
    /// import by another tool may not have set.
    pub async fn has_blob(
        &self,
        digest: &crate::oci::Digest,
        labels: &BTreeMap<String, String>,
    ) -> Result<bool> {
        let digest = &digest.to_string();
        match self.info(digest).await? {
            Some(info) => {
                self.hold(digest).await?;
                self.ensure_labels(&info, labels).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Streams a blob of `size` bytes from `reader` into containerd and commits it with
    /// `labels`, under this import's lease. A blob that containerd already has is not read at
    /// all (the reader is left as it is) and only gets the labels it lacks. The reader must
    /// give exactly `size` bytes, and they must hash to `digest`.
    pub async fn write_blob<R>(
        &self,
        digest: &crate::oci::Digest,
        size: u64,
        labels: &BTreeMap<String, String>,
        mut reader: R,
    ) -> Result<BlobOutcome>
    where
        R: AsyncRead + Unpin,
    {
        let digest = &digest.to_string();
        let total = wire_size(size);
        let Some((sender, responses)) = self.open_write(digest, total).await? else {
            return self.already_present(digest, labels).await;
        };
        let send = send_chunks(digest, size, labels, &mut reader, sender);
        let receive = last_response(responses);
        tokio::pin!(send, receive);
        let mut sent = false;
        let last = loop {
            tokio::select! {
                result = &mut send, if !sent => {
                    result?;
                    sent = true;
                }
                result = &mut receive => break result,
            }
        };
        match last {
            Ok(last) => self.confirm_commit(digest, total, sent, last),
            Err(status) if status.code() == Code::AlreadyExists => {
                // Another writer committed the same blob while we streamed it.
                self.already_present(digest, labels).await
            }
            Err(status) if status.code() == Code::FailedPrecondition => {
                Err(ContainerdError::DigestMismatch {
                    digest: digest.to_owned(),
                    source: status,
                })
            }
            Err(status) => Err(self.blob_error(digest, "write", status)),
        }
    }

    /// Points image `name` at `target` with `labels`, creating the name or updating it in
    /// place. Call it only after every blob the target reaches is committed: a name is what
    /// makes content visible to kubelet, and it must never point at incomplete content.
    /// Labels the image has beyond `labels` (e.g. set by the CRI plugin) are kept.
    pub async fn set_image(
        &self,
        name: &str,
        target: &crate::oci::Descriptor,
        labels: &BTreeMap<String, String>,
    ) -> Result<ImageOutcome> {
        let image_error = |operation, source: tonic::Status| ContainerdError::Image {
            socket: self.client.socket.clone(),
            name: name.to_owned(),
            operation,
            hint: error::status_hint(&source),
            source,
        };
        let image = Image {
            name: name.to_owned(),
            labels: labels.clone().into_iter().collect(),
            target: Some(Descriptor {
                media_type: target.media_type.to_string(),
                digest: target.digest.to_string(),
                size: wire_size(target.size),
                annotations: HashMap::new(),
            }),
            created_at: None,
            updated_at: None,
        };
        let mut images = ImagesClient::new(self.client.channel.clone());
        let create = CreateImageRequest {
            image: Some(image.clone()),
            source_date_epoch: None,
        };
        match images.create(self.client.request(create)).await {
            Ok(_) => return Ok(ImageOutcome::Created),
            Err(status) if status.code() == Code::AlreadyExists => {}
            Err(status) => return Err(image_error("create", status)),
        }
        let get = GetImageRequest {
            name: name.to_owned(),
        };
        let existing = images
            .get(self.client.request(get))
            .await
            .map_err(|status| image_error("look up", status))?
            .into_inner()
            .image;
        if existing.is_some_and(|existing| same_image(&existing, &image)) {
            return Ok(ImageOutcome::Unchanged);
        }
        // Only the target and our own labels: a plain replace would drop labels others set.
        let paths = std::iter::once("target".to_owned())
            .chain(labels.keys().map(|key| format!("labels.{key}")))
            .collect();
        let update = UpdateImageRequest {
            image: Some(image),
            update_mask: Some(prost_types::FieldMask { paths }),
            source_date_epoch: None,
        };
        images
            .update(self.client.request(update))
            .await
            .map_err(|status| image_error("update", status))?;
        Ok(ImageOutcome::Updated)
    }

    /// Ends the import by deleting its lease; from then on only image names keep content
    /// alive. Call it after the last [`Import::set_image`].
    pub async fn finish(self) -> Result<()> {
        let request = DeleteRequest {
            id: self.lease.clone(),
            sync: false,
        };
        LeasesClient::new(self.client.channel.clone())
            .delete(self.client.request(request))
            .await
            .map_err(|source| self.client.daemon_error("delete the import lease", source))?;
        Ok(())
    }

    /// A request carrying the namespace and this import's lease.
    fn leased<T>(&self, message: T) -> Request<T> {
        let mut request = self.client.request(message);
        request
            .metadata_mut()
            .insert(LEASE_HEADER, self.lease_header.clone());
        request
    }

    /// Starts a Write stream for the blob and reads containerd's answer to the opening Stat.
    /// `None` when containerd already has the blob.
    async fn open_write(
        &self,
        digest: &str,
        total: i64,
    ) -> Result<
        Option<(
            mpsc::Sender<WriteContentRequest>,
            Streaming<WriteContentResponse>,
        )>,
    > {
        let mut content = ContentClient::new(self.client.channel.clone());
        for attempt in 0..=LOCK_RETRIES {
            let (sender, receiver) = mpsc::channel(IN_FLIGHT);
            let stat = WriteContentRequest {
                action: WriteAction::Stat.into(),
                r#ref: format!("{ID_PREFIX}-{digest}"),
                total,
                expected: digest.to_owned(),
                ..Default::default()
            };
            let messages = futures::stream::once(std::future::ready(stat)).chain(receiver);
            match content.write(self.leased(messages)).await {
                Ok(response) => {
                    let mut responses = response.into_inner();
                    // The answer to Stat; its offset is that of a stale partial ingest, which
                    // the first write at offset 0 truncates.
                    responses
                        .message()
                        .await
                        .map_err(|status| self.blob_error(digest, "start writing", status))?;
                    return Ok(Some((sender, responses)));
                }
                // containerd answers before reading any data when it has the blob.
                Err(status) if status.code() == Code::AlreadyExists => return Ok(None),
                Err(status) if is_locked(&status) => {
                    if attempt < LOCK_RETRIES {
                        tokio::time::sleep(LOCK_RETRY_DELAY).await;
                    }
                }
                Err(status) => return Err(self.blob_error(digest, "start writing", status)),
            }
        }
        Err(ContainerdError::BlobLocked {
            socket: self.client.socket.clone(),
            digest: digest.to_owned(),
        })
    }

    /// Checks the last answer of a Write stream: containerd answers the commit twice (once
    /// for the message, once as the stream closes), so the last answer is the commit's.
    fn confirm_commit(
        &self,
        digest: &str,
        total: i64,
        sent: bool,
        last: Option<WriteContentResponse>,
    ) -> Result<BlobOutcome> {
        let unconfirmed = |detail: String| ContainerdError::Unconfirmed {
            socket: self.client.socket.clone(),
            digest: digest.to_owned(),
            detail,
        };
        let Some(last) = last.filter(|_| sent) else {
            return Err(unconfirmed("the stream closed early".to_owned()));
        };
        if last.action != i32::from(WriteAction::Commit) {
            return Err(unconfirmed(format!("last action was {}", last.action)));
        }
        if last.digest != digest || last.offset != total {
            return Err(unconfirmed(format!(
                "committed {} bytes as {}",
                last.offset, last.digest
            )));
        }
        Ok(BlobOutcome::Written)
    }

    /// The outcome for a blob containerd already has: held by the lease, labels completed.
    async fn already_present(
        &self,
        digest: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<BlobOutcome> {
        self.hold(digest).await?;
        if !labels.is_empty()
            && let Some(info) = self.info(digest).await?
        {
            self.ensure_labels(&info, labels).await?;
        }
        Ok(BlobOutcome::Present)
    }

    /// The blob's info, or `None` when containerd does not have it.
    async fn info(&self, digest: &str) -> Result<Option<Info>> {
        let request = InfoRequest {
            digest: digest.to_owned(),
        };
        match ContentClient::new(self.client.channel.clone())
            .info(self.client.request(request))
            .await
        {
            Ok(response) => Ok(response.into_inner().info),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(self.blob_error(digest, "look up", status)),
        }
    }

    /// Adds an existing blob to the lease, so it survives until its image is named even if
    /// nothing else references it yet (e.g. left by an earlier, killed import).
    async fn hold(&self, digest: &str) -> Result<()> {
        let request = AddResourceRequest {
            id: self.lease.clone(),
            resource: Some(Resource {
                id: digest.to_owned(),
                r#type: "content".to_owned(),
            }),
        };
        LeasesClient::new(self.client.channel.clone())
            .add_resource(self.client.request(request))
            .await
            .map_err(|status| self.blob_error(digest, "hold", status))?;
        Ok(())
    }

    /// Sets those of `labels` that `info` lacks or holds with another value, leaving the
    /// blob's other labels alone.
    async fn ensure_labels(&self, info: &Info, labels: &BTreeMap<String, String>) -> Result<()> {
        let missing: HashMap<String, String> = labels
            .iter()
            .filter(|(key, value)| info.labels.get(*key) != Some(*value))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let paths = missing.keys().map(|key| format!("labels.{key}")).collect();
        let request = UpdateRequest {
            info: Some(Info {
                digest: info.digest.clone(),
                labels: missing,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths }),
        };
        ContentClient::new(self.client.channel.clone())
            .update(self.client.request(request))
            .await
            .map_err(|status| self.blob_error(&info.digest, "label", status))?;
        Ok(())
    }

    fn blob_error(
        &self,
        digest: &str,
        operation: &'static str,
        source: tonic::Status,
    ) -> ContainerdError {
        ContainerdError::Blob {
            socket: self.client.socket.clone(),
            digest: digest.to_owned(),
            operation,
            hint: error::status_hint(&source),
            source,
        }
    }
}

/// Reads the blob in chunks and sends them, then the commit. Stops quietly when containerd
/// closed the stream: the answer stream then says why.
async fn send_chunks<R>(
    digest: &str,
    size: u64,
    labels: &BTreeMap<String, String>,
    reader: &mut R,
    mut sender: mpsc::Sender<WriteContentRequest>,
) -> Result<()>
where
    R: AsyncRead + Unpin,
{
    let mut offset: u64 = 0;
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        while chunk.len() < CHUNK {
            let read =
                reader
                    .read_buf(&mut chunk)
                    .await
                    .map_err(|source| ContainerdError::Read {
                        digest: digest.to_owned(),
                        source,
                    })?;
            if read == 0 {
                break;
            }
        }
        if chunk.is_empty() {
            break;
        }
        let start = offset;
        offset += chunk.len() as u64;
        if offset > size {
            return Err(ContainerdError::Size {
                digest: digest.to_owned(),
                expected: size,
                actual: offset,
            });
        }
        // Offset 0 on the first chunk makes containerd truncate a stale partial ingest; later
        // offsets are checked against what it holds.
        let write = WriteContentRequest {
            action: WriteAction::Write.into(),
            offset: wire_size(start),
            data: chunk,
            ..Default::default()
        };
        if sender.send(write).await.is_err() {
            return Ok(());
        }
    }
    if offset != size {
        return Err(ContainerdError::Size {
            digest: digest.to_owned(),
            expected: size,
            actual: offset,
        });
    }
    let commit = WriteContentRequest {
        action: WriteAction::Commit.into(),
        total: wire_size(size),
        offset: wire_size(size),
        expected: digest.to_owned(),
        labels: labels.clone().into_iter().collect(),
        ..Default::default()
    };
    // Dropping the sender afterwards closes our side of the stream.
    let _ = sender.send(commit).await;
    Ok(())
}

/// Drains the answers of a Write stream (one per message, which containerd blocks on when
/// they are not read) and returns the last.
async fn last_response(
    mut responses: Streaming<WriteContentResponse>,
) -> Result<Option<WriteContentResponse>, tonic::Status> {
    let mut last = None;
    while let Some(response) = responses.message().await? {
        last = Some(response);
    }
    Ok(last)
}

/// Whether two images have the same target and `wanted`'s labels are all on `existing`.
fn same_image(existing: &Image, wanted: &Image) -> bool {
    let same_target = match (&existing.target, &wanted.target) {
        (Some(a), Some(b)) => {
            a.media_type == b.media_type && a.digest == b.digest && a.size == b.size
        }
        _ => false,
    };
    same_target
        && wanted
            .labels
            .iter()
            .all(|(key, value)| existing.labels.get(key) == Some(value))
}

/// Whether a Write was refused because another stream holds the same ingest ref.
fn is_locked(status: &tonic::Status) -> bool {
    status.code() == Code::Unavailable && status.message().contains("locked")
}

/// A size as the protocol carries it. Sizes past 8 EiB do not occur; saturating leaves
/// containerd's own size check to refuse one.
fn wire_size(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(digest: &str, labels: &[(&str, &str)]) -> Image {
        Image {
            name: "example.com/app:1".to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            target: Some(Descriptor {
                media_type: "application/vnd.oci.image.index.v1+json".to_owned(),
                digest: digest.to_owned(),
                size: 10,
                annotations: HashMap::new(),
            }),
            created_at: None,
            updated_at: None,
        }
    }

    #[test]
    fn same_image_ignores_labels_others_added() {
        let existing = image(
            "sha256:a",
            &[("mine", "1"), ("io.cri-containerd.image", "managed")],
        );
        assert!(same_image(&existing, &image("sha256:a", &[("mine", "1")])));
        assert!(!same_image(&existing, &image("sha256:a", &[("mine", "2")])));
        assert!(!same_image(&existing, &image("sha256:b", &[("mine", "1")])));
    }

    #[test]
    fn only_a_locked_ref_is_retried() {
        assert!(is_locked(&tonic::Status::unavailable(
            "ref velero-airgap-sha256:ab locked for 1.2s: unavailable"
        )));
        assert!(!is_locked(&tonic::Status::unavailable(
            "connection refused"
        )));
        assert!(!is_locked(&tonic::Status::internal("locked")));
    }
}
