//! Why talking to containerd failed, naming the socket, blob or image involved.
//!
//! Each message ends with what the user can do about it; the gRPC status or I/O error is kept
//! as the source so the binary can print the whole chain once.

use std::path::PathBuf;

use containerd_client::tonic;

/// Shorthand for results of this module.
pub type Result<T, E = ContainerdError> = std::result::Result<T, E>;

/// A failed containerd operation.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// No gRPC connection could be made to the socket.
    #[error("cannot connect to containerd at {socket}: {hint}")]
    Connect {
        socket: PathBuf,
        /// What to check, chosen from the kind of failure.
        hint: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The socket did not answer containerd's Version call in time.
    #[error(
        "containerd at {socket} did not answer within {seconds} s: is it containerd's gRPC \
         socket? check --containerd SOCKET"
    )]
    Timeout {
        socket: PathBuf,
        /// How long we waited.
        seconds: u64,
    },
    /// The namespace is not a containerd namespace name.
    #[error(
        "containerd namespace {namespace:?} is not valid: use letters and digits, \
         optionally joined by '.', '_' or '-' (at most 76 characters), e.g. k8s.io"
    )]
    InvalidNamespace { namespace: String },
    /// A call that is not about one blob or image failed (version, introspection, lease).
    #[error(
        "containerd at {socket} refused to {operation}: is containerd running? check --containerd SOCKET"
    )]
    Daemon {
        socket: PathBuf,
        /// What was attempted, e.g. "create the import lease".
        operation: &'static str,
        #[source]
        source: tonic::Status,
    },
    /// A content call about one blob failed.
    #[error("containerd at {socket} failed to {operation} blob {digest}: {hint}")]
    Blob {
        socket: PathBuf,
        /// The blob's digest.
        digest: String,
        /// What was attempted, e.g. "write".
        operation: &'static str,
        /// What to check, chosen from the status code.
        hint: &'static str,
        #[source]
        source: tonic::Status,
    },
    /// Another writer holds the blob's ingest for longer than we wait.
    #[error(
        "blob {digest} is being written to containerd at {socket} by another process: \
         wait for the other import to finish (or stop it) and run again"
    )]
    BlobLocked {
        socket: PathBuf,
        /// The blob's digest.
        digest: String,
    },
    /// containerd computed another digest over the bytes we sent.
    #[error(
        "the bytes given for blob {digest} do not match its digest (containerd refused the \
         commit): the bundle is damaged; run `velero-airgap verify` on it"
    )]
    DigestMismatch {
        /// The blob's digest.
        digest: String,
        #[source]
        source: tonic::Status,
    },
    /// Reading the blob's bytes from the caller's reader failed.
    #[error("cannot read blob {digest} to import it")]
    Read {
        /// The blob's digest.
        digest: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The reader gave more or fewer bytes than the blob's declared size.
    #[error(
        "blob {digest} should be {expected} bytes but {actual} were read: the bundle is \
         damaged; run `velero-airgap verify` on it"
    )]
    Size {
        /// The blob's digest.
        digest: String,
        expected: u64,
        /// Bytes read (more than `expected` stops reading at the first excess chunk).
        actual: u64,
    },
    /// containerd's write stream ended without confirming the commit of the blob.
    #[error(
        "containerd at {socket} ended the write of blob {digest} without committing it \
         ({detail}): run the import again"
    )]
    Unconfirmed {
        socket: PathBuf,
        /// The blob's digest.
        digest: String,
        /// What was missing or wrong in the last answer.
        detail: String,
    },
    /// A manifest or index could not be read to compute its garbage-collection labels.
    #[error("manifest {digest} ({media_type}) is not valid JSON of its media type")]
    Manifest {
        /// The manifest's digest.
        digest: crate::oci::Digest,
        /// The media type it was given as.
        media_type: crate::oci::MediaType,
        /// Why it is not a manifest.
        #[source]
        source: crate::oci::ManifestError,
    },
    /// Creating or updating an image name failed.
    #[error("containerd at {socket} failed to {operation} image {name}: {hint}")]
    Image {
        socket: PathBuf,
        name: String,
        /// What was attempted, e.g. "create".
        operation: &'static str,
        /// What to check, chosen from the status code.
        hint: &'static str,
        #[source]
        source: tonic::Status,
    },
}

/// The advice for a failed gRPC call, by status code.
pub(crate) fn status_hint(status: &tonic::Status) -> &'static str {
    use tonic::Code;
    match status.code() {
        Code::Unavailable | Code::Cancelled | Code::Unknown => {
            "is containerd running? check --containerd SOCKET"
        }
        Code::PermissionDenied | Code::Unauthenticated => {
            "permission denied: run as root (or a user allowed to use the socket)"
        }
        Code::ResourceExhausted => {
            "containerd is out of space or memory: free disk space under its root and run again"
        }
        Code::NotFound => "containerd lost content it had accepted: run the import again",
        Code::InvalidArgument => "containerd refused the request as invalid",
        _ => "see containerd's log for details",
    }
}

/// The advice for a failed connection, from the I/O error under the transport error.
pub(crate) fn connect_hint(error: &(dyn std::error::Error + 'static)) -> &'static str {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::NotFound => {
                    "no socket there: is containerd running? check --containerd SOCKET"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "permission denied: run as root (or a user allowed to use the socket)"
                }
                std::io::ErrorKind::ConnectionRefused => {
                    "nothing listens there: is containerd running? check --containerd SOCKET"
                }
                _ => "is containerd running? check --containerd SOCKET",
            };
        }
        cause = current.source();
    }
    "is containerd running? check --containerd SOCKET"
}
