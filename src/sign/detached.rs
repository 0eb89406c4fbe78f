//! Detached signatures over whole files: the bundle's `BUNDLE.sig`.
//!
//! The signature is plain ASN.1 DER ECDSA P-256 over SHA-256 of the file's bytes, exactly
//! what `openssl dgst -sha256 -sign key.pem -out BUNDLE.sig BUNDLE` writes, so a reviewer
//! can check a bundle with openssl alone. Files are hashed in chunks and the digest is
//! signed ("prehash"), so a bundle of many gigabytes is never held in memory; callers that
//! already hashed the file (the build does) sign the digest directly and skip a second read.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use p256::ecdsa::Signature;
use sha2::{Digest as _, Sha256};

use super::{Fingerprint, KeySet, SignError, SigningKey};

/// Read size for hashing: large enough that system calls do not dominate.
const CHUNK: usize = 1 << 20;

/// Signs the file at `path`: DER ECDSA P-256/SHA-256, as `openssl dgst -sha256 -sign`.
pub fn sign_file(path: &Path, key: &SigningKey) -> Result<Vec<u8>, SignError> {
    sign(&sha256_file(path)?, key, || path.display().to_string())
}

/// Checks a DER signature over the file at `path` against every key of `keys`, returning
/// the fingerprint of the key that verifies it.
pub fn verify_file(
    path: &Path,
    signature_der: &[u8],
    keys: &KeySet,
) -> Result<Fingerprint, SignError> {
    verify(&sha256_file(path)?, signature_der, keys, || {
        path.display().to_string()
    })
}

/// Signs bytes known by their SHA-256 digest; the same signature as [`sign_file`] on them.
pub fn sign_digest(digest: &[u8; 32], key: &SigningKey) -> Result<Vec<u8>, SignError> {
    sign(digest, key, || digest_subject(digest))
}

/// Checks a DER signature over bytes known by their SHA-256 digest; see [`verify_file`].
pub fn verify_digest(
    digest: &[u8; 32],
    signature_der: &[u8],
    keys: &KeySet,
) -> Result<Fingerprint, SignError> {
    verify(digest, signature_der, keys, || digest_subject(digest))
}

/// The subject is built only on failure, so the happy path formats nothing.
fn sign(
    digest: &[u8; 32],
    key: &SigningKey,
    subject: impl Fn() -> String,
) -> Result<Vec<u8>, SignError> {
    let signature = key.sign_prehash(digest).map_err(|source| SignError::Sign {
        subject: subject(),
        source,
    })?;
    Ok(signature.to_der().as_bytes().to_vec())
}

fn verify(
    digest: &[u8; 32],
    signature_der: &[u8],
    keys: &KeySet,
    subject: impl Fn() -> String,
) -> Result<Fingerprint, SignError> {
    let signature = Signature::from_der(signature_der)
        .map_err(|_| SignError::MalformedSignature { subject: subject() })?;
    keys.verify_prehash(digest, &signature)
        .cloned()
        .ok_or_else(|| SignError::NotVerified {
            subject: subject(),
            tried: keys.fingerprints(),
        })
}

fn digest_subject(digest: &[u8; 32]) -> String {
    format!("the bytes of digest sha256:{}", hex::encode(digest))
}

fn sha256_file(path: &Path) -> Result<[u8; 32], SignError> {
    let read_error = |source| SignError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; CHUNK];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => hasher.update(&buffer[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(read_error(error)),
        }
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::PublicKey;

    fn key() -> SigningKey {
        SigningKey::from_pem(include_bytes!("testdata/pkcs8.pem"), None).unwrap()
    }

    fn keys(keys: &[&SigningKey]) -> KeySet {
        KeySet::new(keys.iter().map(|key| key.public_key().clone()).collect()).unwrap()
    }

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        file
    }

    #[test]
    fn file_and_digest_signatures_agree() {
        // Two chunks and a bit, so the chunk loop is exercised.
        let bytes: Vec<u8> = (0..CHUNK * 2 + 7).map(|i| (i % 251) as u8).collect();
        let file = file_with(&bytes);
        let key = key();
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let from_file = sign_file(file.path(), &key).unwrap();
        let from_digest = sign_digest(&digest, &key).unwrap();
        // RFC 6979 signatures are deterministic: same key, same digest, same bytes.
        assert_eq!(from_file, from_digest);
        let set = keys(&[&SigningKey::random(), &key]);
        assert_eq!(
            verify_file(file.path(), &from_digest, &set).unwrap(),
            *key.public_key().fingerprint()
        );
        assert_eq!(
            verify_digest(&digest, &from_file, &set).unwrap(),
            *key.public_key().fingerprint()
        );
    }

    #[test]
    fn wrong_key_lists_the_keys_tried() {
        let file = file_with(b"bundle");
        let signature = sign_file(file.path(), &SigningKey::random()).unwrap();
        let set = keys(&[&key()]);
        let error = verify_file(file.path(), &signature, &set).unwrap_err();
        let SignError::NotVerified { subject, tried } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(subject, &file.path().display().to_string());
        assert_eq!(tried, &set.fingerprints());
        assert!(error.to_string().contains(tried[0].as_str()), "{error}");
    }

    #[test]
    fn changed_file_does_not_verify() {
        let file = file_with(b"bundle");
        let key = key();
        let signature = sign_file(file.path(), &key).unwrap();
        std::fs::write(file.path(), b"bundlE").unwrap();
        let error = verify_file(file.path(), &signature, &keys(&[&key])).unwrap_err();
        assert!(matches!(error, SignError::NotVerified { .. }), "{error:?}");
    }

    #[test]
    fn malformed_signature_is_named() {
        let digest = [7; 32];
        let error = verify_digest(&digest, b"not DER", &keys(&[&key()])).unwrap_err();
        assert!(
            matches!(error, SignError::MalformedSignature { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(&hex::encode(digest)), "{error}");
    }

    #[test]
    fn missing_file_is_named() {
        let error = sign_file(Path::new("/nonexistent/bundle.tar"), &key()).unwrap_err();
        assert!(matches!(error, SignError::Read { .. }), "{error:?}");
        assert!(
            error.to_string().contains("/nonexistent/bundle.tar"),
            "{error}"
        );
    }

    #[test]
    fn public_key_from_file_matches_signing_key() {
        let public = PublicKey::from_pem(include_bytes!("testdata/public.pem")).unwrap();
        assert_eq!(public.fingerprint(), key().public_key().fingerprint());
    }
}
