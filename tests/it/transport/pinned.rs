//! The pinned-certificate verifier against Embedded Cluster's kind of certificate:
//! self-signed RSA-2048, CA:FALSE, extendedKeyUsage=anyExtendedKeyUsage only. The registry is
//! the lab's `--ec` one; certificates the lab never serves (expired, or not naming
//! 127.0.0.1) are presented by `lab::fake::TlsFake`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::{CertificateError, Error as TlsError};
use velero_airgap::oci::Digest;
use velero_airgap::registry::transport::{
    Credentials, MountOutcome, Policies, RegistryPolicy, TransportError, Warning,
};

use super::{has_rustls_error, insecure, read_certificate, repository, transport, upload};
use crate::lab::fake::TlsFake;
use crate::lab::{Registry, RegistryKind, run_ok};

/// The TLS error of `error`, or a panic.
fn tls_source(error: &TransportError) -> &(dyn std::error::Error + 'static) {
    match error {
        TransportError::Tls { source, .. } => source.as_ref(),
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

/// The credentials the `--ec` registry wants.
fn ec_credentials(registry: &Registry) -> Credentials {
    Credentials::Basic {
        username: registry.username.clone().expect("EC user"),
        password: registry.password.clone().expect("EC password"),
    }
}

/// Makes a certificate like Embedded Cluster's in `dir` as `NAME.crt`/`NAME.key` (PKCS#8),
/// with `san` as its subjectAltName; `expired` makes it valid 2020-2021 only (OpenSSL 3.0's
/// `x509` cannot set dates, `ca -selfsign` can).
fn ec_like_certificate(dir: &Path, name: &str, san: &str, expired: bool) -> (PathBuf, PathBuf) {
    let (certificate, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let extensions = [
        "basicConstraints=critical,CA:FALSE".to_string(),
        "keyUsage=critical,digitalSignature,keyEncipherment".to_string(),
        "extendedKeyUsage=anyExtendedKeyUsage".to_string(),
        format!("subjectAltName={san}"),
    ];
    if !expired {
        let mut command = Command::new("openssl");
        command.args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
        ]);
        command.args(["-subj", "/O=replicated/CN=registry"]);
        for extension in &extensions {
            command.args(["-addext", extension]);
        }
        command
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&certificate);
        run_ok(&mut command);
        return (certificate, key);
    }
    let ca = dir.join(format!("{name}-ca"));
    std::fs::create_dir_all(&ca).expect("ca dir");
    std::fs::write(ca.join("index.txt"), "").expect("index");
    std::fs::write(ca.join("serial"), "01\n").expect("serial");
    let config = format!(
        "[ca]\ndefault_ca = pinned\n[pinned]\ndatabase = {dir}/index.txt\nnew_certs_dir = {dir}\nserial = {dir}/serial\ndefault_md = sha256\npolicy = anything\nx509_extensions = ext\nunique_subject = no\n[anything]\norganizationName = optional\ncommonName = supplied\n[ext]\n{extensions}\n",
        dir = ca.display(),
        extensions = extensions.join("\n"),
    );
    std::fs::write(ca.join("ca.cnf"), config).expect("ca config");
    let csr = ca.join("request.csr");
    run_ok(
        Command::new("openssl")
            .args(["req", "-new", "-newkey", "rsa:2048", "-nodes"])
            .args(["-subj", "/O=replicated/CN=registry"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    run_ok(
        Command::new("openssl")
            .args(["ca", "-batch", "-notext", "-selfsign", "-config"])
            .arg(ca.join("ca.cnf"))
            .arg("-keyfile")
            .arg(&key)
            .arg("-in")
            .arg(&csr)
            .args(["-startdate", "20200101000000Z"])
            .args(["-enddate", "20210101000000Z", "-out"])
            .arg(&certificate),
    );
    (certificate, key)
}

#[tokio::test]
async fn embedded_cluster_certificate_is_refused_by_webpki_and_accepted_pinned() {
    let registry = Registry::start(RegistryKind::EmbeddedCluster);
    let certificate = read_certificate(registry.ca_cert.as_ref().unwrap());
    let host = registry.addr.clone();

    // Plain webpki with the certificate as its trust anchor: refused for its EKU.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let plain = reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .no_proxy()
        .build()
        .unwrap();
    let error = plain
        .get(format!("https://{host}/v2/"))
        .send()
        .await
        .unwrap_err();
    assert!(
        has_rustls_error(&error, &|e| matches!(
            e,
            TlsError::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
            )
        )),
        "expected an EKU error: {error:?}"
    );

    // Our verifier with it pinned (what --ca-file gives): push, mount and read back work,
    // and nothing is reported as unverified.
    let pinned = transport(
        Policies::new(RegistryPolicy::trusting(vec![certificate.clone()])),
        ec_credentials(&registry),
    );
    let app = repository(&host, "embedded/app");
    let digest = upload(&pinned, &app, b"layer").await.unwrap();
    assert!(pinned.head_blob(&app, &digest).await.unwrap());
    let mounted = pinned
        .mount_blob(&repository(&host, "embedded/other"), &app, &digest)
        .await
        .unwrap();
    assert_eq!(mounted, MountOutcome::Mounted);
    assert!(pinned.warnings().is_empty());

    // Without it: refused as an unknown issuer.
    let system = transport(
        Policies::new(RegistryPolicy::system()),
        ec_credentials(&registry),
    );
    let error = system.head_blob(&app, &digest).await.unwrap_err();
    assert!(
        has_rustls_error(tls_source(&error), &|e| matches!(
            e,
            TlsError::InvalidCertificate(_)
        )),
        "{error:?}"
    );

    // Another certificate of the same kind pinned: refused by webpki (the two share their
    // subject, so webpki gets as far as the EKU check), never by a pin.
    let dir = tempfile::tempdir().unwrap();
    let (other, _) = ec_like_certificate(dir.path(), "other", "IP:127.0.0.1", false);
    let other = transport(
        Policies::new(RegistryPolicy::trusting(vec![read_certificate(&other)])),
        ec_credentials(&registry),
    );
    let error = other.head_blob(&app, &digest).await.unwrap_err();
    assert!(
        has_rustls_error(tls_source(&error), &|e| matches!(
            e,
            TlsError::InvalidCertificate(_)
        )),
        "{error:?}"
    );

    // Insecure: TLS without verification (no fallback to HTTP), one warning.
    let unverified = transport(insecure(&[&host]), ec_credentials(&registry));
    assert!(unverified.head_blob(&app, &digest).await.unwrap());
    assert!(
        unverified
            .head_blob(&repository(&host, "embedded/other"), &digest)
            .await
            .unwrap()
    );
    assert_eq!(
        unverified.warnings(),
        [Warning::UnverifiedTls { host: host.clone() }]
    );
}

#[tokio::test]
async fn a_pinned_certificate_that_does_not_name_the_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (certificate, key) = ec_like_certificate(
        dir.path(),
        "elsewhere",
        "IP:10.244.128.11,DNS:registry",
        false,
    );
    let server = TlsFake::start(&certificate, &key);
    let pinned = transport(
        Policies::new(RegistryPolicy::trusting(vec![read_certificate(
            &certificate,
        )])),
        Credentials::Anonymous,
    );
    let error = pinned
        .head_blob(&repository(&server.addr, "a"), &Digest::of(b"x"))
        .await
        .unwrap_err();
    assert!(
        has_rustls_error(tls_source(&error), &|e| matches!(
            e,
            TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        )),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_expired_pinned_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (certificate, key) = ec_like_certificate(dir.path(), "expired", "IP:127.0.0.1", true);
    let server = TlsFake::start(&certificate, &key);
    let pinned = transport(
        Policies::new(RegistryPolicy::trusting(vec![read_certificate(
            &certificate,
        )])),
        Credentials::Anonymous,
    );
    let error = pinned
        .head_blob(&repository(&server.addr, "a"), &Digest::of(b"x"))
        .await
        .unwrap_err();
    assert!(
        has_rustls_error(tls_source(&error), &|e| matches!(
            e,
            TlsError::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            )
        )),
        "{error:?}"
    );
}
