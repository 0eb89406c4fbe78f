//! TLS per registry: which certificates a host's server may present ([`RegistryPolicy`]),
//! resolved per `host[:port]` ([`Policies`]), and the rustls configurations that enforce it.
//!
//! `Verified` is ordinary webpki verification against the system roots plus extra CAs, with
//! one addition: an end-entity certificate that is byte-for-byte a pinned one is accepted
//! when it is within its validity period and names the host, whatever its basicConstraints
//! and key usages say. Embedded Cluster's registry serves a self-signed RSA certificate with
//! CA:FALSE and only anyExtendedKeyUsage; webpki refuses it even as a trust anchor (no
//! serverAuth EKU), yet the user handed us exactly that certificate with `--ca-file`, so
//! every `--ca-file` certificate is both an extra root and a pin. The handshake signature is
//! still checked with the pinned certificate's key.
//!
//! `Insecure` is what Docker and containerd call an insecure registry: TLS without any
//! certificate verification (the signature over the handshake is still checked against the
//! presented key), and plain HTTP where the server does not speak TLS (see `request.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::certificate::{self, CertificateFacts};
use super::error::TransportError;

/// How to secure connections to one registry host.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum RegistryPolicy {
    /// Verify the server: system roots plus `extra_roots`, and accept a `pinned` end-entity
    /// certificate as described in the module documentation.
    Verified {
        /// Extra trust anchors.
        extra_roots: Vec<CertificateDer<'static>>,
        /// End-entity certificates accepted as they are.
        pinned: Vec<CertificateDer<'static>>,
    },
    /// Do not verify certificates; fall back to plain HTTP when the server does not speak TLS.
    Insecure,
}

impl std::fmt::Debug for RegistryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryPolicy::Verified {
                extra_roots,
                pinned,
            } => write!(
                f,
                "Verified {{ extra_roots: {} certificate(s), pinned: {} certificate(s) }}",
                extra_roots.len(),
                pinned.len()
            ),
            RegistryPolicy::Insecure => f.write_str("Insecure"),
        }
    }
}

impl RegistryPolicy {
    /// The system roots only.
    pub fn system() -> RegistryPolicy {
        RegistryPolicy::Verified {
            extra_roots: Vec::new(),
            pinned: Vec::new(),
        }
    }

    /// What `--ca-file` means: each certificate is an extra root and a pin.
    pub fn trusting(certificates: Vec<CertificateDer<'static>>) -> RegistryPolicy {
        RegistryPolicy::Verified {
            extra_roots: certificates.clone(),
            pinned: certificates,
        }
    }
}

/// The policy of every host: a default, and overrides per `host[:port]`. Equal policies
/// share an index, and so one HTTP client.
#[derive(Debug, Clone)]
pub struct Policies {
    distinct: Vec<RegistryPolicy>,
    default: usize,
    hosts: HashMap<String, usize>,
}

impl Policies {
    /// Every host gets `default` unless overridden.
    pub fn new(default: RegistryPolicy) -> Policies {
        Policies {
            distinct: vec![default],
            default: 0,
            hosts: HashMap::new(),
        }
    }

    /// Overrides the policy of `host` (`name`, `name:port`, `[v6]:port`; a key without a
    /// port covers every port of that host not listed with its port).
    pub fn with_host(mut self, host: &str, policy: RegistryPolicy) -> Policies {
        let index = match self.distinct.iter().position(|known| *known == policy) {
            Some(index) => index,
            None => {
                self.distinct.push(policy);
                self.distinct.len() - 1
            }
        };
        self.hosts.insert(host.trim().to_ascii_lowercase(), index);
        self
    }

    /// The index of `host`'s policy: exact `host:port`, then the host without port, then
    /// the default.
    pub(crate) fn index_for(&self, host: &str) -> usize {
        let host = host.to_ascii_lowercase();
        if let Some(&index) = self.hosts.get(&host) {
            return index;
        }
        let without_port = match host.rsplit_once(':') {
            Some((name, port))
                if port.bytes().all(|b| b.is_ascii_digit())
                    && (!name.contains(':') || name.ends_with(']')) =>
            {
                name
            }
            _ => host.as_str(),
        };
        self.hosts
            .get(without_port)
            .copied()
            .unwrap_or(self.default)
    }

    /// The policy at `index`.
    pub(crate) fn get(&self, index: usize) -> &RegistryPolicy {
        &self.distinct[index]
    }

    /// How many distinct policies there are.
    pub(crate) fn len(&self) -> usize {
        self.distinct.len()
    }

    /// Checks every pinned certificate can be read, so a bad `--ca-file` fails at start,
    /// not at the first connection to some host.
    pub(crate) fn check_pins(&self) -> Result<(), TransportError> {
        for policy in &self.distinct {
            if let RegistryPolicy::Verified { pinned, .. } = policy {
                for (index, certificate) in pinned.iter().enumerate() {
                    read_pin(index, certificate)?;
                }
            }
        }
        Ok(())
    }
}

/// The facts of pinned certificate number `index` (from 0), or why it cannot be a pin.
fn read_pin(
    index: usize,
    certificate: &CertificateDer<'_>,
) -> Result<CertificateFacts, TransportError> {
    certificate::facts(certificate).map_err(|reason| TransportError::Setup {
        reason: format!("pinned certificate #{} cannot be read: {reason}", index + 1),
    })
}

/// The rustls configuration for `policy` (ring provider, HTTP/1.1). `system_roots` is asked
/// for only by verified policies.
pub(crate) fn client_config(
    policy: &RegistryPolicy,
    system_roots: &[CertificateDer<'static>],
) -> Result<rustls::ClientConfig, TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let setup = |reason: String| TransportError::Setup { reason };
    let trust = match policy {
        RegistryPolicy::Insecure => Trust::Anything,
        RegistryPolicy::Verified {
            extra_roots,
            pinned,
        } => Trust::verified(system_roots, extra_roots, pinned, &provider)?,
    };
    let verifier = Arc::new(Verifier {
        trust,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| setup(format!("TLS protocol versions: {error}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The certificates of the system's trust store (the platform's bundle, `SSL_CERT_FILE`,
/// `SSL_CERT_DIR`): field machines install private CAs there.
pub(crate) fn system_roots() -> Vec<CertificateDer<'static>> {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::debug!(%error, "could not read some system CA certificates");
    }
    loaded.certs
}

/// Checks a server's certificate as its registry's policy says; always checks that the
/// server holds the presented key.
#[derive(Debug)]
struct Verifier {
    trust: Trust,
    algorithms: WebPkiSupportedAlgorithms,
}

/// Which certificates a registry may present.
#[derive(Debug)]
enum Trust {
    /// Any (`--insecure-registry` on an HTTPS registry).
    Anything,
    /// What webpki accepts, then the pins for what webpki refused.
    Verified {
        /// `None` when there is no root at all (a scratch container): only pins can match.
        webpki: Option<Arc<WebPkiServerVerifier>>,
        pins: Vec<Pin>,
    },
}

#[derive(Debug)]
struct Pin {
    certificate: CertificateDer<'static>,
    facts: CertificateFacts,
}

impl Trust {
    fn verified(
        system_roots: &[CertificateDer<'static>],
        extra_roots: &[CertificateDer<'static>],
        pinned: &[CertificateDer<'static>],
        provider: &Arc<CryptoProvider>,
    ) -> Result<Trust, TransportError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(system_roots.iter().cloned());
        let (_, unusable) = roots.add_parsable_certificates(extra_roots.iter().cloned());
        if unusable > 0 {
            // Not fatal: such a certificate may still work as a pin.
            tracing::debug!(
                unusable,
                "some extra CA certificates cannot be trust anchors"
            );
        }
        let webpki = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|error| TransportError::Setup {
                        reason: format!("certificate verifier: {error}"),
                    })?,
            )
        };
        let pins = pinned
            .iter()
            .enumerate()
            .map(|(index, certificate)| {
                let facts =
                    certificate::facts(certificate).map_err(|reason| TransportError::Setup {
                        reason: format!(
                            "pinned certificate #{} cannot be read: {reason}",
                            index + 1
                        ),
                    })?;
                Ok(Pin {
                    certificate: certificate.clone(),
                    facts,
                })
            })
            .collect::<Result<_, TransportError>>()?;
        Ok(Trust::Verified { webpki, pins })
    }
}

impl Pin {
    /// Whether this pin accepts the connection: in its validity period, naming the host.
    fn accepts(&self, server_name: &ServerName<'_>, now: UnixTime) -> Result<(), rustls::Error> {
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now < self.facts.not_before {
            return Err(CertificateError::NotValidYet.into());
        }
        if now > self.facts.not_after {
            return Err(CertificateError::Expired.into());
        }
        if self.facts.has_subject_alt_name {
            let parsed = rustls::server::ParsedCertificate::try_from(&self.certificate)?;
            return rustls::client::verify_server_name(&parsed, server_name);
        }
        let named = self
            .facts
            .common_names
            .iter()
            .any(|name| match server_name {
                ServerName::DnsName(dns) => name.eq_ignore_ascii_case(dns.as_ref()),
                ServerName::IpAddress(ip) => {
                    name.parse::<std::net::IpAddr>().ok() == Some(std::net::IpAddr::from(*ip))
                }
                _ => false,
            });
        if named {
            Ok(())
        } else {
            Err(CertificateError::NotValidForName.into())
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Trust::Verified { webpki, pins } = &self.trust else {
            return Ok(ServerCertVerified::assertion());
        };
        let verified = match webpki {
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Err(CertificateError::UnknownIssuer.into()),
        };
        let refusal = match verified {
            Ok(verified) => return Ok(verified),
            Err(refusal) => refusal,
        };
        let Some(pin) = pins
            .iter()
            .find(|pin| pin.certificate.as_ref() == end_entity.as_ref())
        else {
            return Err(refusal);
        };
        pin.accepts(server_name, now)?;
        tracing::debug!(server = ?server_name, %refusal, "accepted a pinned certificate that webpki refused");
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(byte: u8) -> CertificateDer<'static> {
        CertificateDer::from(vec![byte; 4])
    }

    #[test]
    fn policies_resolve_exact_then_host_then_default() {
        let policies = Policies::new(RegistryPolicy::system())
            .with_host("Registry.Example:5000", RegistryPolicy::Insecure)
            .with_host("other.example", RegistryPolicy::trusting(vec![cert(1)]))
            .with_host("[::1]", RegistryPolicy::Insecure)
            .with_host("third.example", RegistryPolicy::trusting(vec![cert(1)]));
        let kind = |host: &str| policies.get(policies.index_for(host)).clone();
        assert_eq!(kind("registry.example:5000"), RegistryPolicy::Insecure);
        assert_eq!(kind("registry.example:5001"), RegistryPolicy::system());
        assert_eq!(
            kind("other.example:443"),
            RegistryPolicy::trusting(vec![cert(1)])
        );
        assert_eq!(kind("[::1]:5000"), RegistryPolicy::Insecure);
        assert_eq!(kind("unknown.example"), RegistryPolicy::system());
        // Equal policies share one index (one client): system, insecure, trusting.
        assert_eq!(policies.len(), 3);
        assert_eq!(
            policies.index_for("other.example"),
            policies.index_for("third.example")
        );
    }

    #[test]
    fn debug_shows_counts_not_bytes() {
        let shown = format!("{:?}", RegistryPolicy::trusting(vec![cert(0xAB)]));
        assert_eq!(
            shown,
            "Verified { extra_roots: 1 certificate(s), pinned: 1 certificate(s) }"
        );
    }

    #[test]
    fn unreadable_pins_fail_at_setup() {
        let policies = Policies::new(RegistryPolicy::system())
            .with_host("a", RegistryPolicy::trusting(vec![cert(1)]));
        let error = policies.check_pins().unwrap_err();
        assert!(
            error.to_string().contains("pinned certificate #1"),
            "{error}"
        );
        let error = client_config(&RegistryPolicy::trusting(vec![cert(1)]), &[]).unwrap_err();
        assert!(
            error.to_string().contains("pinned certificate #1"),
            "{error}"
        );
        assert!(client_config(&RegistryPolicy::Insecure, &[]).is_ok());
    }
}
