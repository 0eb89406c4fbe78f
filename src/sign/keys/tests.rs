//! Fixtures in `../testdata` were made with openssl for these tests only (see its README).

use super::*;

const SEC1_PEM: &[u8] = include_bytes!("../testdata/sec1.pem");
const PKCS8_PEM: &[u8] = include_bytes!("../testdata/pkcs8.pem");
const ENCRYPTED_PEM: &[u8] = include_bytes!("../testdata/encrypted-pkcs8.pem");
const LEGACY_PEM: &[u8] = include_bytes!("../testdata/legacy-encrypted.pem");
const PUBLIC_PEM: &[u8] = include_bytes!("../testdata/public.pem");
const PASSPHRASE: &str = "correct-horse";
/// `openssl pkey -pubin -in public.pem -outform DER | sha256sum`
const FINGERPRINT: &str = "sha256:12112ba1784d050ae75648917b914b7f6f60eb79c6d0e34f35ea240fc2ae354b";

fn public_error(pem: &[u8]) -> KeyError {
    PublicKey::from_pem(pem).unwrap_err()
}

fn private_error(pem: &[u8], passphrase: Option<&str>) -> KeyError {
    SigningKey::from_pem(pem, passphrase).unwrap_err()
}

#[test]
fn public_key_fingerprint_is_the_spki_der_hash() {
    let key = PublicKey::from_pem(PUBLIC_PEM).unwrap();
    assert_eq!(key.fingerprint().as_str(), FINGERPRINT);
}

#[test]
fn every_private_key_form_reads_to_the_same_key() {
    for (pem, passphrase) in [
        (SEC1_PEM, None),
        (PKCS8_PEM, None),
        (ENCRYPTED_PEM, Some(PASSPHRASE)),
        // A passphrase for an unencrypted key is ignored, as openssl does.
        (PKCS8_PEM, Some("unused")),
    ] {
        let key = SigningKey::from_pem(pem, passphrase).unwrap();
        assert_eq!(key.public_key().fingerprint().as_str(), FINGERPRINT);
    }
}

#[test]
fn debug_output_hides_the_private_key() {
    let key = SigningKey::from_pem(PKCS8_PEM, None).unwrap();
    let shown = format!("{key:?}");
    assert!(shown.contains(FINGERPRINT), "{shown}");
    assert!(!shown.contains("key:"), "{shown}");
}

#[test]
fn encrypted_key_without_passphrase() {
    assert!(matches!(
        private_error(ENCRYPTED_PEM, None),
        KeyError::PassphraseRequired
    ));
}

#[test]
fn encrypted_key_with_wrong_passphrase() {
    let error = private_error(ENCRYPTED_PEM, Some("wrong"));
    assert!(matches!(error, KeyError::WrongPassphrase), "{error:?}");
}

#[test]
fn legacy_encrypted_pem_says_how_to_convert() {
    let error = private_error(LEGACY_PEM, Some("x"));
    assert!(matches!(error, KeyError::LegacyEncryption), "{error:?}");
    assert!(
        error.to_string().contains("openssl pkcs8 -topk8"),
        "{error}"
    );
}

#[test]
fn other_algorithms_are_named() {
    for (pem, algorithm) in [
        (&include_bytes!("../testdata/rsa-public.pem")[..], "RSA"),
        (include_bytes!("../testdata/ed25519-public.pem"), "Ed25519"),
        (include_bytes!("../testdata/p384-public.pem"), "ECDSA P-384"),
    ] {
        match public_error(pem) {
            KeyError::UnsupportedAlgorithm { algorithm: found } => assert_eq!(found, algorithm),
            other => panic!("{algorithm}: {other:?}"),
        }
    }
    match private_error(include_bytes!("../testdata/p384-sec1.pem"), None) {
        KeyError::UnsupportedAlgorithm { algorithm } => assert_eq!(algorithm, "ECDSA P-384"),
        other => panic!("{other:?}"),
    }
    let rsa_private = b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    assert!(matches!(
        private_error(rsa_private, None),
        KeyError::UnsupportedAlgorithm { .. }
    ));
}

#[test]
fn keys_of_the_wrong_role_are_explained() {
    assert!(matches!(public_error(PKCS8_PEM), KeyError::PrivateKeyGiven));
    assert!(matches!(public_error(SEC1_PEM), KeyError::PrivateKeyGiven));
    assert!(matches!(
        public_error(ENCRYPTED_PEM),
        KeyError::PrivateKeyGiven
    ));
    assert!(matches!(
        private_error(PUBLIC_PEM, None),
        KeyError::PublicKeyGiven
    ));
    let cosign = b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJr\n\
                   -----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n";
    assert!(matches!(
        private_error(cosign, Some("p")),
        KeyError::CosignPrivateKey
    ));
}

#[test]
fn not_pem_and_no_key() {
    assert!(matches!(
        public_error(b"\x30\x59\x30\x13"),
        KeyError::NotPem { .. }
    ));
    assert!(matches!(
        public_error(b"just text"),
        KeyError::NotPem { .. }
    ));
    let certificate = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    match public_error(certificate) {
        KeyError::NoKey { found, .. } => assert_eq!(found, ["CERTIFICATE"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn several_keys_in_one_file_are_refused() {
    let twice = [PUBLIC_PEM, PUBLIC_PEM].concat();
    assert!(matches!(
        public_error(&twice),
        KeyError::SeveralKeys { count: 2 }
    ));
}

#[test]
fn broken_blocks_are_refused() {
    let truncated = &PUBLIC_PEM[..PUBLIC_PEM.len() - 20];
    assert!(matches!(public_error(truncated), KeyError::Pem { .. }));
    let not_a_key = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    assert!(matches!(
        public_error(not_a_key),
        KeyError::Malformed { .. }
    ));
}

#[test]
fn text_around_blocks_is_skipped() {
    let commented = [b"Key for release signing\n\n", PUBLIC_PEM, b"\ntrailer\n"].concat();
    let key = PublicKey::from_pem(&commented).unwrap();
    assert_eq!(key.fingerprint().as_str(), FINGERPRINT);
}

#[test]
fn key_set_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pub");
    let bad = dir.path().join("bad.pub");
    std::fs::write(&good, PUBLIC_PEM).unwrap();
    std::fs::write(&bad, PKCS8_PEM).unwrap();

    let set = KeySet::load(&[&good]).unwrap();
    assert_eq!(set.fingerprints()[0].as_str(), FINGERPRINT);

    let error = KeySet::load(&[&good, &bad]).unwrap_err();
    assert!(
        matches!(&error, SignError::Key { path, .. } if path == &bad),
        "{error:?}"
    );
    assert!(error.to_string().contains("bad.pub"), "{error}");

    let missing = dir.path().join("missing.pub");
    let error = KeySet::load(&[&missing]).unwrap_err();
    assert!(
        matches!(&error, SignError::Read { path, .. } if path == &missing),
        "{error:?}"
    );

    let none: [&Path; 0] = [];
    assert!(matches!(KeySet::load(&none), Err(SignError::NoKeys)));
}

#[test]
fn signing_key_load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("release.key");
    std::fs::write(&path, ENCRYPTED_PEM).unwrap();
    let error = SigningKey::load(&path, None).unwrap_err();
    assert!(
        matches!(
            &error,
            SignError::Key {
                source: KeyError::PassphraseRequired,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("release.key"), "{error}");
    assert!(SigningKey::load(&path, Some(PASSPHRASE)).is_ok());
}
