//! Interoperability of `velero_airgap::sign` with openssl, which is what a security reviewer
//! has at hand: keys made by openssl load, fingerprints equal openssl's DER hash, bundle
//! signatures verify both ways, and cosign payloads signed by openssl verify with our code.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use velero_airgap::sign::{
    Expected, KeyError, KeySet, PublicKey, SignError, SignatureFailure, SigningKey, cosign_payload,
    sign_cosign_payload, sign_digest, sign_file, verify_cosign, verify_digest, verify_file,
};

const PASSPHRASE: &str = "s3cret passphrase";
const REPOSITORY: &str = "registry.example.com/acme/plugin";
/// The digest the test payloads sign.
fn digest() -> velero_airgap::oci::Digest {
    "sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f"
        .parse()
        .unwrap()
}

/// Runs openssl in `dir`; panics with its stderr when it fails.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (is it installed?)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Whether `openssl dgst -sha256 -verify` accepts `signature` over `file`.
fn openssl_verifies(dir: &Path, public: &str, signature: &Path, file: &Path) -> bool {
    let output = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify", public, "-signature"])
        .arg(signature)
        .arg(file)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    let verified = String::from_utf8_lossy(&output.stdout).contains("Verified OK");
    assert_eq!(verified, output.status.success());
    verified
}

/// One openssl-made P-256 key in every private form, and its public key.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    /// `sec1.pem` (with the `EC PARAMETERS` block `ecparam -genkey` writes), `pkcs8.pem`,
    /// `encrypted.pem` (PBES2 AES-256-CBC), `scrypt.pem` (PBES2 scrypt), `public.pem`.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        openssl(
            path,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-out",
                "sec1.pem",
            ],
        );
        let pass = format!("pass:{PASSPHRASE}");
        openssl(
            path,
            &[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                "sec1.pem",
                "-out",
                "pkcs8.pem",
            ],
        );
        openssl(
            path,
            &[
                "pkcs8",
                "-topk8",
                "-v2",
                "aes-256-cbc",
                "-passout",
                &pass,
                "-in",
                "sec1.pem",
                "-out",
                "encrypted.pem",
            ],
        );
        openssl(
            path,
            &[
                "pkcs8",
                "-topk8",
                "-scrypt",
                "-passout",
                &pass,
                "-in",
                "sec1.pem",
                "-out",
                "scrypt.pem",
            ],
        );
        openssl(
            path,
            &["pkey", "-in", "sec1.pem", "-pubout", "-out", "public.pem"],
        );
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Every private form, loaded.
    fn signing_keys(&self) -> Vec<(&'static str, SigningKey)> {
        [
            ("sec1.pem", None),
            ("pkcs8.pem", None),
            ("encrypted.pem", Some(PASSPHRASE)),
            ("scrypt.pem", Some(PASSPHRASE)),
        ]
        .into_iter()
        .map(|(name, passphrase)| {
            let key = SigningKey::load(&self.path(name), passphrase)
                .unwrap_or_else(|error| panic!("{name}: {error:?}"));
            (name, key)
        })
        .collect()
    }

    fn key_set(&self) -> KeySet {
        KeySet::load(&[self.path("public.pem")]).unwrap()
    }

    /// `openssl pkey -pubin -in FILE -outform DER | sha256sum`, as `sha256:<hex>`.
    fn openssl_fingerprint(&self, public: &str) -> String {
        let der = openssl(
            self.dir.path(),
            &["pkey", "-pubin", "-in", public, "-outform", "DER"],
        );
        format!("sha256:{}", hex::encode(Sha256::digest(der)))
    }
}

/// A file over one hashing chunk long, so streaming is exercised.
fn write_bundle(dir: &Path) -> PathBuf {
    let path = dir.join("bundle.tar");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn fingerprints_equal_the_openssl_pipeline() {
    let keys = Keys::new();
    let expected = keys.openssl_fingerprint("public.pem");
    let public = PublicKey::load(&keys.path("public.pem")).unwrap();
    assert_eq!(public.fingerprint().as_str(), expected);
    for (name, key) in keys.signing_keys() {
        assert_eq!(key.public_key().fingerprint().as_str(), expected, "{name}");
    }

    // A compressed point stays compressed in openssl's DER, so its fingerprint differs, and
    // ours follows.
    openssl(
        keys.dir.path(),
        &[
            "ec",
            "-in",
            "sec1.pem",
            "-pubout",
            "-conv_form",
            "compressed",
            "-out",
            "compressed.pem",
        ],
    );
    let compressed = PublicKey::load(&keys.path("compressed.pem")).unwrap();
    assert_eq!(
        compressed.fingerprint().as_str(),
        keys.openssl_fingerprint("compressed.pem")
    );
    assert_ne!(compressed.fingerprint().as_str(), expected);
}

#[test]
fn openssl_signatures_verify_with_our_code() {
    let keys = Keys::new();
    let dir = keys.dir.path();
    let bundle = write_bundle(dir);
    let set = keys.key_set();
    let pass = format!("pass:{PASSPHRASE}");
    for (name, passin) in [
        ("sec1.pem", None),
        ("pkcs8.pem", None),
        ("encrypted.pem", Some(&pass)),
    ] {
        let mut args = vec!["dgst", "-sha256", "-sign", name, "-out", "bundle.sig"];
        args.extend(passin.iter().flat_map(|pass| ["-passin", pass.as_str()]));
        args.push("bundle.tar");
        openssl(dir, &args);
        let signature = std::fs::read(dir.join("bundle.sig")).unwrap();
        let fingerprint = verify_file(&bundle, &signature, &set)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(fingerprint, set.fingerprints()[0]);
        let digest: [u8; 32] = Sha256::digest(std::fs::read(&bundle).unwrap()).into();
        assert_eq!(
            verify_digest(&digest, &signature, &set).unwrap(),
            fingerprint
        );
    }
}

#[test]
fn our_signatures_verify_with_openssl() {
    let keys = Keys::new();
    let dir = keys.dir.path();
    let bundle = write_bundle(dir);
    let digest: [u8; 32] = Sha256::digest(std::fs::read(&bundle).unwrap()).into();
    let signature_path = dir.join("bundle.sig");
    for (name, key) in keys.signing_keys() {
        for signature in [
            sign_file(&bundle, &key).unwrap(),
            sign_digest(&digest, &key).unwrap(),
        ] {
            std::fs::write(&signature_path, &signature).unwrap();
            assert!(
                openssl_verifies(dir, "public.pem", &signature_path, &bundle),
                "{name}"
            );
        }
    }

    // And openssl rejects it once the bundle changes: the check is real.
    let (_, key) = &keys.signing_keys()[0];
    std::fs::write(&signature_path, sign_file(&bundle, key).unwrap()).unwrap();
    std::fs::write(&bundle, b"tampered").unwrap();
    assert!(!openssl_verifies(
        dir,
        "public.pem",
        &signature_path,
        &bundle
    ));
}

#[test]
fn another_openssl_key_is_refused_with_both_fingerprints_named() {
    let keys = Keys::new();
    let other = Keys::new();
    let bundle = write_bundle(keys.dir.path());
    let (_, key) = &other.signing_keys()[0];
    let signature = sign_file(&bundle, key).unwrap();
    let set = KeySet::load(&[keys.path("public.pem")]).unwrap();
    match verify_file(&bundle, &signature, &set) {
        Err(SignError::NotVerified { tried, .. }) => assert_eq!(tried, set.fingerprints()),
        other => panic!("{other:?}"),
    }
    // With both keys, the one that signed is reported.
    let both = KeySet::load(&[keys.path("public.pem"), other.path("public.pem")]).unwrap();
    assert_eq!(
        verify_file(&bundle, &signature, &both).unwrap(),
        *key.public_key().fingerprint()
    );
}

#[test]
fn encrypted_openssl_keys_need_the_right_passphrase() {
    let keys = Keys::new();
    for name in ["encrypted.pem", "scrypt.pem"] {
        let path = keys.path(name);
        match SigningKey::load(&path, None) {
            Err(SignError::Key {
                path: named,
                source: KeyError::PassphraseRequired,
            }) => {
                assert_eq!(named, path);
            }
            other => panic!("{name}: {other:?}"),
        }
        match SigningKey::load(&path, Some("wrong")) {
            Err(SignError::Key {
                source: KeyError::WrongPassphrase,
                ..
            }) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn other_openssl_key_types_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    openssl(
        path,
        &["genpkey", "-algorithm", "ed25519", "-out", "ed25519.pem"],
    );
    openssl(
        path,
        &[
            "pkey",
            "-in",
            "ed25519.pem",
            "-pubout",
            "-out",
            "ed25519.pub",
        ],
    );
    openssl(
        path,
        &[
            "ecparam",
            "-name",
            "secp384r1",
            "-genkey",
            "-noout",
            "-out",
            "p384.pem",
        ],
    );
    openssl(
        path,
        &["pkey", "-in", "p384.pem", "-pubout", "-out", "p384.pub"],
    );
    for (file, algorithm) in [("ed25519.pub", "Ed25519"), ("p384.pub", "ECDSA P-384")] {
        let error = KeySet::load(&[path.join(file)]).unwrap_err();
        let message = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(
            message.contains(file) && message.contains(algorithm),
            "{message}"
        );
    }
    for file in ["ed25519.pem", "p384.pem"] {
        let error = SigningKey::load(&path.join(file), None).unwrap_err();
        assert!(
            matches!(
                &error,
                SignError::Key {
                    source: KeyError::UnsupportedAlgorithm { .. },
                    ..
                }
            ),
            "{file}: {error:?}"
        );
    }
}

#[test]
fn cosign_payloads_signed_by_openssl_verify() {
    let keys = Keys::new();
    let dir = keys.dir.path();
    let set = keys.key_set();
    let expected = Expected {
        signed_digest: &digest(),
        canonical_repository: REPOSITORY,
    };
    // What cosign does: sign the exact payload bytes, base64 the DER signature.
    let sign_with_openssl = |payload: &[u8]| {
        std::fs::write(dir.join("payload.json"), payload).unwrap();
        openssl(
            dir,
            &[
                "dgst",
                "-sha256",
                "-sign",
                "sec1.pem",
                "-out",
                "payload.sig",
                "payload.json",
            ],
        );
        BASE64.encode(std::fs::read(dir.join("payload.sig")).unwrap())
    };

    let payload = cosign_payload(REPOSITORY, &digest());
    let signature = sign_with_openssl(&payload);
    let verified = verify_cosign(&payload, &signature, &set, &expected, false).unwrap();
    assert_eq!(verified.fingerprint, set.fingerprints()[0]);

    let other_digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
    let payload = cosign_payload(REPOSITORY, &other_digest);
    let signature = sign_with_openssl(&payload);
    assert!(matches!(
        verify_cosign(&payload, &signature, &set, &expected, false),
        Err(SignatureFailure::DigestMismatch { .. })
    ));

    let payload = cosign_payload("registry.example.com/other/plugin", &digest());
    let signature = sign_with_openssl(&payload);
    assert!(matches!(
        verify_cosign(&payload, &signature, &set, &expected, false),
        Err(SignatureFailure::IdentityMismatch { .. })
    ));
}

#[test]
fn our_cosign_signatures_verify_with_openssl() {
    let keys = Keys::new();
    let dir = keys.dir.path();
    let (_, key) = &keys.signing_keys()[2];
    let payload = cosign_payload(REPOSITORY, &digest());
    let signature = sign_cosign_payload(key, &payload).unwrap();
    std::fs::write(dir.join("payload.json"), &payload).unwrap();
    std::fs::write(dir.join("payload.sig"), BASE64.decode(signature).unwrap()).unwrap();
    assert!(openssl_verifies(
        dir,
        "public.pem",
        &dir.join("payload.sig"),
        &dir.join("payload.json")
    ));
}
