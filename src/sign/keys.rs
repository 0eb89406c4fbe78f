//! ECDSA P-256 keys read from PEM files, as openssl and cosign write them.
//!
//! Public keys are `PUBLIC KEY` (SubjectPublicKeyInfo) blocks. Private keys may be PKCS#8
//! (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or passphrase-encrypted PKCS#8
//! (`ENCRYPTED PRIVATE KEY`). A file may hold other blocks besides its key, because
//! `openssl ecparam -genkey` writes an `EC PARAMETERS` block before the key; so the blocks
//! are found first and each decoded on its own. Every refusal says what the file holds and,
//! where there is one, the openssl command that makes a usable key from it.

use std::fmt;
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::der::pem;
use p256::pkcs8::spki::EncodePublicKey;
use p256::pkcs8::{
    AlgorithmIdentifierRef, EncryptedPrivateKeyInfoRef, ObjectIdentifier, PrivateKeyInfoRef,
    SubjectPublicKeyInfoRef,
};

use super::{Fingerprint, SignError};

/// `id-ecPublicKey`: an elliptic-curve key; the curve is in the parameters.
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `prime256v1` (NIST P-256, secp256r1).
const PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// Algorithms people commonly try, so that a refusal can name them.
const KNOWN_ALGORITHMS: [(&str, &str); 7] = [
    ("1.2.840.113549.1.1.1", "RSA"),
    ("1.2.840.10040.4.1", "DSA"),
    ("1.3.101.112", "Ed25519"),
    ("1.3.101.113", "Ed448"),
    ("1.3.132.0.34", "ECDSA P-384"),
    ("1.3.132.0.35", "ECDSA P-521"),
    ("1.3.132.0.10", "ECDSA secp256k1"),
];

const PUBLIC_KEY: &str = "PUBLIC KEY";
const PKCS8: &str = "PRIVATE KEY";
const SEC1: &str = "EC PRIVATE KEY";
const ENCRYPTED_PKCS8: &str = "ENCRYPTED PRIVATE KEY";
/// What `cosign generate-key-pair` writes (scrypt + secretbox, not PKCS#8).
const COSIGN_PRIVATE_KEY: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// Written by `openssl ecparam -genkey` next to the key; carries nothing we need.
const EC_PARAMETERS: &str = "EC PARAMETERS";

/// Why PEM bytes are not a key this tool can use. The caller adds the file name
/// ([`SignError::Key`]).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The bytes hold no PEM block at all (a DER file, or not a key).
    #[error("is not a PEM file (expected a {expected} block)")]
    NotPem { expected: &'static str },
    /// A PEM block is broken (bad base64, missing end line, ...).
    #[error("has a malformed {label} PEM block")]
    Pem {
        /// The block's label.
        label: String,
        /// What the PEM decoder said.
        #[source]
        source: pem::Error,
    },
    /// The PEM blocks present are none of the kinds wanted.
    #[error("holds no {expected} block (found: {})", found.join(", "))]
    NoKey {
        /// The kind of key wanted.
        expected: &'static str,
        /// The labels of the blocks found.
        found: Vec<String>,
    },
    /// More than one key block; which one is meant would be a guess.
    #[error("holds {count} keys; give one key per file")]
    SeveralKeys {
        /// How many key blocks were found.
        count: usize,
    },
    /// A private key where a public key is expected.
    #[error(
        "holds a private key where a public key is expected; \
         derive the public key with `openssl pkey -in KEY -pubout -out key.pub`"
    )]
    PrivateKeyGiven,
    /// A public key where a private key is expected.
    #[error("holds a public key where a private key is expected")]
    PublicKeyGiven,
    /// A key of another algorithm or curve.
    #[error("holds a key of type {algorithm}; only ECDSA P-256 (prime256v1) keys are supported")]
    UnsupportedAlgorithm {
        /// The algorithm, by name when known, else by object identifier.
        algorithm: String,
    },
    /// A private key in cosign's own encrypted format.
    #[error(
        "holds a cosign-encrypted private key ({COSIGN_PRIVATE_KEY}), which is not supported; \
         use a PKCS#8 or SEC1 PEM key, e.g. `openssl ecparam -name prime256v1 -genkey -noout`"
    )]
    CosignPrivateKey,
    /// A key encrypted with OpenSSL's old PEM headers (`Proc-Type: 4,ENCRYPTED`).
    #[error(
        "is encrypted with OpenSSL's legacy PEM encryption; convert it with \
         `openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out key.p8.pem`"
    )]
    LegacyEncryption,
    /// An encrypted key and no passphrase.
    #[error("is encrypted and no passphrase was given")]
    PassphraseRequired,
    /// The passphrase does not decrypt the key.
    #[error("cannot be decrypted with the passphrase given (wrong passphrase?)")]
    WrongPassphrase,
    /// The key is encrypted with a scheme the PKCS#5 implementation lacks.
    #[error(
        "is encrypted with an unsupported scheme; re-encrypt it with \
         `openssl pkcs8 -topk8 -v2 aes-256-cbc`"
    )]
    UnsupportedEncryption {
        /// What the PKCS#5 implementation said.
        #[source]
        source: p256::pkcs8::pkcs5::Error,
    },
    /// The block decodes but its content is not a valid key of its kind.
    #[error("has a {label} block that is not a valid key")]
    Malformed {
        /// The block's label.
        label: &'static str,
        /// What the decoder said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// An ECDSA P-256 public key and its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    fingerprint: Fingerprint,
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) holding an ECDSA P-256 key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let (_, der) = key_block(pem, Role::Public)?;
        let malformed = |source: p256::pkcs8::spki::Error| KeyError::Malformed {
            label: PUBLIC_KEY,
            source: source.into(),
        };
        let info = SubjectPublicKeyInfoRef::try_from(der.as_slice()).map_err(malformed)?;
        check_p256(&info.algorithm)?;
        let key = VerifyingKey::try_from(info).map_err(malformed)?;
        // The fingerprint hashes the DER as written, which is what `openssl pkey -pubin
        // -outform DER` prints back (it keeps a compressed point compressed).
        Ok(Self {
            key,
            fingerprint: Fingerprint::of_spki_der(&der),
        })
    }

    /// Reads [`PublicKey::from_pem`] from a file; errors name the file.
    pub fn load(path: &Path) -> Result<Self, SignError> {
        let pem = read(path)?;
        Self::from_pem(&pem).map_err(|source| key_error(path, source))
    }

    /// `sha256:` + hex SHA-256 of the DER SubjectPublicKeyInfo.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    fn verifies(&self, prehash: &[u8; 32], signature: &Signature) -> bool {
        self.key.verify_prehash(prehash, signature).is_ok()
    }
}

/// The public keys a signature may verify with (`--verify-key`, `--bundle-key`); never empty.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<PublicKey>,
}

impl KeySet {
    /// A set of the given keys; refuses an empty list, since it could verify nothing.
    pub fn new(keys: Vec<PublicKey>) -> Result<Self, SignError> {
        if keys.is_empty() {
            return Err(SignError::NoKeys);
        }
        Ok(Self { keys })
    }

    /// Reads every key file; the first bad file stops it, named in the error.
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Self, SignError> {
        let keys = paths
            .iter()
            .map(|path| PublicKey::load(path.as_ref()))
            .collect::<Result<_, _>>()?;
        Self::new(keys)
    }

    /// The keys, in the order given.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The fingerprints of the keys, in the order given.
    pub fn fingerprints(&self) -> Vec<Fingerprint> {
        self.keys
            .iter()
            .map(|key| key.fingerprint.clone())
            .collect()
    }

    /// The fingerprint of the first key that verifies `signature` over the SHA-256 digest
    /// `prehash`, or `None`.
    pub(crate) fn verify_prehash(
        &self,
        prehash: &[u8; 32],
        signature: &Signature,
    ) -> Option<&Fingerprint> {
        self.keys
            .iter()
            .find(|key| key.verifies(prehash, signature))
            .map(PublicKey::fingerprint)
    }
}

/// An ECDSA P-256 private key, for `build --sign-key` and for tests that sign images.
#[derive(Clone)]
pub struct SigningKey {
    key: p256::ecdsa::SigningKey,
    public: PublicKey,
}

impl SigningKey {
    /// Reads a PEM private key: PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY`, or
    /// `ENCRYPTED PRIVATE KEY` (PKCS#8 with PBES2), which needs `passphrase`. A passphrase
    /// given for an unencrypted key is ignored, as openssl does.
    pub fn from_pem(pem: &[u8], passphrase: Option<&str>) -> Result<Self, KeyError> {
        let (label, der) = key_block(pem, Role::Private)?;
        let key = match label {
            SEC1 => from_sec1(&der)?,
            ENCRYPTED_PKCS8 => {
                let passphrase = passphrase.ok_or(KeyError::PassphraseRequired)?;
                from_pkcs8(&decrypt(&der, passphrase)?)?
            }
            _ => from_pkcs8(&der)?,
        };
        Self::new(key)
    }

    /// Reads [`SigningKey::from_pem`] from a file; errors name the file.
    pub fn load(path: &Path, passphrase: Option<&str>) -> Result<Self, SignError> {
        let pem = Zeroizing::new(read(path)?);
        Self::from_pem(&pem, passphrase).map_err(|source| key_error(path, source))
    }

    /// The matching public key, e.g. to record which key signed a bundle.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs a SHA-256 digest; the result is what `openssl dgst -sha256 -sign` gives for the
    /// bytes behind the digest.
    pub(crate) fn sign_prehash(&self, prehash: &[u8; 32]) -> Result<Signature, p256::ecdsa::Error> {
        self.key.sign_prehash(prehash)
    }

    /// Pairs a private key with its public half and that half's fingerprint.
    fn new(key: p256::ecdsa::SigningKey) -> Result<Self, KeyError> {
        let verifying = *key.verifying_key();
        let der = verifying
            .to_public_key_der()
            .map_err(|source| KeyError::Malformed {
                label: PUBLIC_KEY,
                source: source.into(),
            })?;
        Ok(Self {
            key,
            public: PublicKey {
                key: verifying,
                fingerprint: Fingerprint::of_spki_der(der.as_bytes()),
            },
        })
    }
}

#[cfg(test)]
impl SigningKey {
    /// A fresh random key, for tests that need a key nobody trusts.
    pub(crate) fn random() -> Self {
        use p256::elliptic_curve::Generate;
        Self::new(p256::ecdsa::SigningKey::generate()).unwrap()
    }
}

/// Shows the public half only, so that a debug print never leaks the key.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.public.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Which kind of key a file should hold.
#[derive(Clone, Copy)]
enum Role {
    Public,
    Private,
}

impl Role {
    fn labels(self) -> &'static [&'static str] {
        match self {
            Self::Public => &[PUBLIC_KEY],
            Self::Private => &[PKCS8, SEC1, ENCRYPTED_PKCS8],
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Self::Public => PUBLIC_KEY,
            Self::Private => "PRIVATE KEY, EC PRIVATE KEY or ENCRYPTED PRIVATE KEY",
        }
    }

    /// The most helpful refusal for a file whose blocks are all of the wrong kinds.
    fn refusal(self, found: Vec<String>) -> KeyError {
        let has = |wanted: &str| found.iter().any(|label| label == wanted);
        let has_rsa = found.iter().any(|label| label.starts_with("RSA "));
        match self {
            _ if has_rsa => KeyError::UnsupportedAlgorithm {
                algorithm: "RSA".to_owned(),
            },
            Self::Public if found.iter().any(|label| label.ends_with(PKCS8)) => {
                KeyError::PrivateKeyGiven
            }
            Self::Private if has(PUBLIC_KEY) => KeyError::PublicKeyGiven,
            Self::Private if has(COSIGN_PRIVATE_KEY) => KeyError::CosignPrivateKey,
            _ => KeyError::NoKey {
                expected: self.expected(),
                found,
            },
        }
    }
}

/// Finds the one key block of the wanted role and decodes it, returning its label and DER.
/// The DER is wiped on drop since it may be a private key.
fn key_block(pem: &[u8], role: Role) -> Result<(&'static str, Zeroizing<Vec<u8>>), KeyError> {
    let not_pem = || KeyError::NotPem {
        expected: role.expected(),
    };
    let text = std::str::from_utf8(pem).map_err(|_| not_pem())?;
    let blocks: Vec<PemBlock<'_>> = pem_blocks(text)
        .filter(|block| block.label != EC_PARAMETERS)
        .collect();
    if blocks.is_empty() {
        return Err(not_pem());
    }
    let mut keys = blocks.iter().filter_map(|block| {
        let label = role.labels().iter().find(|label| **label == block.label)?;
        Some((*label, block))
    });
    match (keys.next(), keys.next()) {
        (Some((label, block)), None) => Ok((label, block.decode()?)),
        (Some(_), Some(_)) => Err(KeyError::SeveralKeys {
            count: 2 + keys.count(),
        }),
        (None, _) => Err(role.refusal(blocks.iter().map(|block| block.label.to_owned()).collect())),
    }
}

/// One `-----BEGIN label----- … -----END label-----` block, boundaries included.
struct PemBlock<'a> {
    label: &'a str,
    text: &'a str,
}

impl PemBlock<'_> {
    fn decode(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        match pem::decode_vec(self.text.as_bytes()) {
            Ok((_, der)) => Ok(Zeroizing::new(der)),
            Err(pem::Error::HeaderDisallowed) => Err(KeyError::LegacyEncryption),
            Err(source) => Err(KeyError::Pem {
                label: self.label.to_owned(),
                source,
            }),
        }
    }
}

/// The PEM blocks of a text, in order. Text around them is skipped, as openssl does. A
/// block without its end line runs to the end of the text, for the decoder to refuse.
fn pem_blocks(text: &str) -> impl Iterator<Item = PemBlock<'_>> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find(BEGIN)?;
        let block = &rest[start..];
        let label_end = block[BEGIN.len()..].find(DASHES)? + BEGIN.len();
        let label = &block[BEGIN.len()..label_end];
        let end_line = format!("-----END {label}-----");
        let len = block
            .find(&end_line)
            .map_or(block.len(), |end| end + end_line.len());
        rest = &block[len..];
        Some(PemBlock {
            label,
            text: &block[..len],
        })
    })
}

/// Refuses anything but an `id-ecPublicKey` on `prime256v1`, naming what it is instead.
fn check_p256(algorithm: &AlgorithmIdentifierRef<'_>) -> Result<(), KeyError> {
    let curve = algorithm.parameters_oid().ok();
    if algorithm.oid == EC_PUBLIC_KEY && curve == Some(PRIME256V1) {
        return Ok(());
    }
    let named = if algorithm.oid == EC_PUBLIC_KEY {
        curve.map_or_else(|| "EC (unnamed curve)".to_owned(), algorithm_name)
    } else {
        algorithm_name(algorithm.oid)
    };
    Err(KeyError::UnsupportedAlgorithm { algorithm: named })
}

fn algorithm_name(oid: ObjectIdentifier) -> String {
    let dotted = oid.to_string();
    KNOWN_ALGORITHMS
        .iter()
        .find(|(known, _)| *known == dotted)
        .map_or_else(
            || format!("unknown algorithm {dotted}"),
            |(_, name)| (*name).to_owned(),
        )
}

fn from_pkcs8(der: &[u8]) -> Result<p256::ecdsa::SigningKey, KeyError> {
    let malformed = |source: p256::pkcs8::Error| KeyError::Malformed {
        label: PKCS8,
        source: source.into(),
    };
    let info = PrivateKeyInfoRef::try_from(der).map_err(malformed)?;
    check_p256(&info.algorithm)?;
    let secret = p256::SecretKey::try_from(info).map_err(malformed)?;
    Ok(secret.into())
}

fn from_sec1(der: &[u8]) -> Result<p256::ecdsa::SigningKey, KeyError> {
    let malformed = |source: sec1::Error| KeyError::Malformed {
        label: SEC1,
        source: source.into(),
    };
    let key = sec1::EcPrivateKey::try_from(der).map_err(malformed)?;
    // The curve is optional in SEC1; when named it must be P-256.
    match key.parameters.and_then(sec1::EcParameters::named_curve) {
        Some(curve) if curve != PRIME256V1 => {
            return Err(KeyError::UnsupportedAlgorithm {
                algorithm: algorithm_name(curve),
            });
        }
        _ => {}
    }
    let secret = p256::SecretKey::try_from(key).map_err(|error| malformed(error.into()))?;
    Ok(secret.into())
}

/// Decrypts an `EncryptedPrivateKeyInfo` to the DER of its `PrivateKeyInfo`.
fn decrypt(der: &[u8], passphrase: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    use p256::pkcs8::{Error, pkcs5};
    let info = EncryptedPrivateKeyInfoRef::try_from(der).map_err(|source| KeyError::Malformed {
        label: ENCRYPTED_PKCS8,
        source: source.into(),
    })?;
    match info.decrypt(passphrase) {
        Ok(document) => Ok(Zeroizing::new(document.as_bytes().to_vec())),
        Err(Error::EncryptedPrivateKey(pkcs5::Error::DecryptFailed)) => {
            Err(KeyError::WrongPassphrase)
        }
        Err(Error::EncryptedPrivateKey(source)) => Err(KeyError::UnsupportedEncryption { source }),
        // A wrong passphrase can by chance leave valid padding; the garbage then fails to
        // parse as DER.
        Err(_) => Err(KeyError::WrongPassphrase),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, SignError> {
    std::fs::read(path).map_err(|source| SignError::Read {
        path: path.to_owned(),
        source,
    })
}

fn key_error(path: &Path, source: KeyError) -> SignError {
    SignError::Key {
        path: PathBuf::from(path),
        source,
    }
}

#[cfg(test)]
mod tests;
