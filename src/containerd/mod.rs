//! Importing OCI content into containerd over its gRPC API (`unpack --containerd SOCKET`).
//!
//! containerd 1.6 has no Transfer service, so an import is built from the content, leases and
//! images services, the way `ctr images import` does it inside containerd's client library:
//!
//! 1. [`Containerd::connect`] to the socket, in one namespace (`k8s.io` is the one kubelet's
//!    CRI plugin reads); check [`Containerd::platform`] against the bundle's platform.
//! 2. [`Containerd::begin`] an [`Import`]: a lease that keeps everything written in it from
//!    the garbage collector until [`Import::finish`], and that expires by itself if the
//!    process dies, so a killed import leaves nothing behind for long.
//! 3. For every blob, [`Import::has_blob`] (skip it) or [`Import::write_blob`] (stream it).
//!    Manifests and indexes carry [`gc_labels`] so that their children outlive the lease.
//! 4. Only when every blob of an image is committed, [`Import::set_image`] for each of its
//!    names. Names are the only thing that makes content visible, so an import that dies
//!    before this step never leaves a name pointing at incomplete content.
//! 5. [`Import::finish`] drops the lease; the images now keep their content alive.
//!
//! Every step is idempotent: a second import finds every blob present, writes nothing, and
//! leaves every image as it is.

mod error;
mod import;
mod labels;

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::PluginsRequest;
use containerd_client::services::v1::introspection_client::IntrospectionClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::tonic::metadata::AsciiMetadataValue;
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{self, Request};

pub use crate::oci::Platform;
pub use error::{ContainerdError, Result};
pub use import::{BlobOutcome, DEFAULT_LEASE_EXPIRY, ImageOutcome, Import};
pub use labels::gc_labels;

/// The namespace kubelet's CRI plugin uses, and so the default for `--namespace`.
pub const DEFAULT_NAMESPACE: &str = "k8s.io";

/// How long connecting and the first call may take before the socket is judged not to be
/// containerd's.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The gRPC metadata key that selects the namespace of every call.
const NAMESPACE_HEADER: &str = "containerd-namespace";

/// The plugin type whose platforms are those the node unpacks images for.
const SNAPSHOTTER_PLUGIN: &str = "io.containerd.snapshotter.v1";

/// The longest namespace containerd accepts.
const MAX_NAMESPACE_LEN: usize = 76;

/// A connection to one containerd daemon, working in one namespace. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Containerd {
    socket: PathBuf,
    namespace: String,
    namespace_header: AsciiMetadataValue,
    channel: Channel,
    version: String,
}

impl Containerd {
    /// Connects to containerd's gRPC socket and checks that containerd answers there.
    pub async fn connect(socket: &Path, namespace: &str) -> Result<Containerd> {
        let namespace_header = namespace_header(namespace)?;
        let connect = async {
            let channel = containerd_client::connect(socket).await.map_err(|error| {
                ContainerdError::Connect {
                    socket: socket.to_owned(),
                    hint: error::connect_hint(&error),
                    source: Box::new(error),
                }
            })?;
            let version = VersionClient::new(channel.clone())
                .version(Request::new(()))
                .await
                .map_err(|source| ContainerdError::Connect {
                    socket: socket.to_owned(),
                    hint: error::status_hint(&source),
                    source: Box::new(source),
                })?
                .into_inner()
                .version;
            Ok((channel, version))
        };
        let (channel, version) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| ContainerdError::Timeout {
                socket: socket.to_owned(),
                seconds: CONNECT_TIMEOUT.as_secs(),
            })??;
        Ok(Containerd {
            socket: socket.to_owned(),
            namespace: namespace.to_owned(),
            namespace_header,
            channel,
            version,
        })
    }

    /// The socket this connection uses.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The namespace every call works in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// containerd's version, e.g. `1.6.20`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The platform the daemon unpacks images for (that of its first working snapshotter),
    /// or `None` when it does not say; then [`Platform::host`] is the best guess.
    pub async fn platform(&self) -> Result<Option<Platform>> {
        let plugins = IntrospectionClient::new(self.channel.clone())
            .plugins(self.request(PluginsRequest::default()))
            .await
            .map_err(|source| self.daemon_error("list its plugins", source))?
            .into_inner()
            .plugins;
        let platform = plugins
            .iter()
            .filter(|plugin| plugin.r#type == SNAPSHOTTER_PLUGIN && plugin.init_err.is_none())
            .chain(plugins.iter())
            .find_map(|plugin| plugin.platforms.first())
            .map(|platform| {
                Platform::new(
                    &platform.os,
                    &platform.architecture,
                    Some(&platform.variant),
                )
            });
        Ok(platform)
    }

    /// Starts an import whose lease expires after [`DEFAULT_LEASE_EXPIRY`].
    pub async fn begin(&self) -> Result<Import> {
        Import::begin(self.clone(), DEFAULT_LEASE_EXPIRY).await
    }

    /// Starts an import whose lease expires after `expiry`. The whole import must finish
    /// within it: once the lease has expired the garbage collector may take blobs that no
    /// image names yet. Pick it from the bundle's size for slow disks.
    pub async fn begin_with_expiry(&self, expiry: Duration) -> Result<Import> {
        Import::begin(self.clone(), expiry).await
    }

    /// A request carrying the namespace.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert(NAMESPACE_HEADER, self.namespace_header.clone());
        request
    }

    /// A daemon-level error for a failed call.
    fn daemon_error(&self, operation: &'static str, source: tonic::Status) -> ContainerdError {
        ContainerdError::Daemon {
            socket: self.socket.clone(),
            operation,
            source,
        }
    }
}

/// Checks a namespace against containerd's identifier rules (letters and digits, joined by
/// single `.`, `_` or `-`) and makes the header value that carries it.
fn namespace_header(namespace: &str) -> Result<AsciiMetadataValue> {
    let invalid = || ContainerdError::InvalidNamespace {
        namespace: namespace.to_owned(),
    };
    let is_separator = |c: char| matches!(c, '.' | '_' | '-');
    let well_formed = !namespace.is_empty()
        && namespace.len() <= MAX_NAMESPACE_LEN
        && namespace
            .split(is_separator)
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()));
    if !well_formed {
        return Err(invalid());
    }
    AsciiMetadataValue::try_from(namespace).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_follow_containerd_identifiers() {
        for good in ["k8s.io", "default", "moby", "a-b_c.d", "X1"] {
            assert!(namespace_header(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(77);
        for bad in [
            "",
            "k8s..io",
            ".k8s",
            "k8s.",
            "name space",
            "ns/x",
            "ü",
            &too_long,
        ] {
            assert!(
                matches!(
                    namespace_header(bad),
                    Err(ContainerdError::InvalidNamespace { .. })
                ),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn missing_socket_names_it_and_says_what_to_check() {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("containerd.sock");
        let error = Containerd::connect(&socket, DEFAULT_NAMESPACE)
            .await
            .expect_err("no daemon");
        let message = error.to_string();
        assert!(message.contains(&socket.display().to_string()), "{message}");
        assert!(message.contains("--containerd SOCKET"), "{message}");
    }
}
