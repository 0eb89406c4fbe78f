//! Our distribution client (`velero_airgap::registry::transport`) on its own, below the
//! registry module: TLS per host, pinned certificates, tokens, proxies, timeouts and bounded
//! answers. Against the lab's real registries wherever a real registry shows the behaviour
//! (`--ec` for Embedded Cluster's certificate), and against the in-process fakes of
//! `lab::fake` only for answers a real registry never gives.

mod bounded;
mod failures;
mod pinned;
mod proxy;
mod registry_lab;
mod token;

use std::path::Path;

use bytes::Bytes;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use velero_airgap::oci::Digest;
use velero_airgap::registry::transport::{
    Credentials, Policies, RegistryPolicy, Repository, Transport, TransportError, TransportOptions,
};

use crate::lab::Registry;

/// A transport with `policies` and the same credentials for every host.
pub fn transport(policies: Policies, credentials: Credentials) -> Transport {
    transport_with(TransportOptions::new(policies), credentials)
}

/// A transport with `options` and the same credentials for every host.
pub fn transport_with(options: TransportOptions, credentials: Credentials) -> Transport {
    Transport::new(options, move |_| Ok(credentials.clone())).expect("transport")
}

/// The system roots, with `hosts` insecure.
pub fn insecure(hosts: &[&str]) -> Policies {
    hosts
        .iter()
        .fold(Policies::new(RegistryPolicy::system()), |policies, host| {
            policies.with_host(host, RegistryPolicy::Insecure)
        })
}

/// The lab's Basic credentials.
pub fn basic() -> Credentials {
    Credentials::Basic {
        username: Registry::USERNAME.into(),
        password: Registry::PASSWORD.into(),
    }
}

/// A valid repository.
pub fn repository(host: &str, name: &str) -> Repository {
    Repository::new(host, name).expect("valid repository")
}

/// The one certificate in a PEM file.
pub fn read_certificate(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The certificate a TLS lab registry's clients should trust (the lab CA, or EC's own).
pub fn trusted_certificate(registry: &Registry) -> CertificateDer<'static> {
    read_certificate(registry.ca_cert.as_ref().expect("a TLS lab registry"))
}

/// A body stream of `bytes` in chunks of `chunk` bytes.
pub fn body_of(
    bytes: &[u8],
    chunk: usize,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks)
}

/// Uploads `bytes` as a blob and returns its digest.
pub async fn upload(
    transport: &Transport,
    repository: &Repository,
    bytes: &[u8],
) -> Result<Digest, TransportError> {
    let digest = Digest::of(bytes);
    transport
        .upload_blob(
            repository,
            &digest,
            bytes.len() as u64,
            body_of(bytes, 1000),
        )
        .await?;
    Ok(digest)
}

/// Whether a rustls error matching `matches` is in `error`'s chain (looking inside
/// `io::Error`s, whose `source()` skips what they wrap).
pub fn has_rustls_error(
    error: &(dyn std::error::Error + 'static),
    matches: &dyn Fn(&rustls::Error) -> bool,
) -> bool {
    let mut current = Some(error);
    while let Some(cause) = current {
        if let Some(found) = cause.downcast_ref::<rustls::Error>() {
            return matches(found);
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && has_rustls_error(inner, matches)
        {
            return true;
        }
        current = cause.source();
    }
    false
}
