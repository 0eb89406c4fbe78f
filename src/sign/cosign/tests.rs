use std::sync::LazyLock;

use super::*;
use crate::sign::PublicKey;

const REPOSITORY: &str = "registry.example.com/acme/plugin";
static DIGEST: LazyLock<Digest> = LazyLock::new(|| {
    "sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f"
        .parse()
        .unwrap()
});
static OTHER_DIGEST: LazyLock<Digest> = LazyLock::new(|| {
    "sha256:0000000000000000000000000000000000000000000000000000000000000000"
        .parse()
        .unwrap()
});

fn key() -> SigningKey {
    SigningKey::from_pem(include_bytes!("../testdata/pkcs8.pem"), None).unwrap()
}

fn keys() -> KeySet {
    KeySet::new(vec![key().public_key().clone()]).unwrap()
}

fn expected() -> Expected<'static> {
    Expected {
        signed_digest: &DIGEST,
        canonical_repository: REPOSITORY,
    }
}

/// A payload naming `reference` and `digest`, and its signature by the test key.
fn signed(reference: &str, digest: &Digest) -> (Vec<u8>, String) {
    let payload = cosign_payload(reference, digest);
    let signature = sign_cosign_payload(&key(), &payload).unwrap();
    (payload, signature)
}

fn check(payload: &[u8], signature: &str) -> Result<Verified, SignatureFailure> {
    verify_cosign(payload, signature, &keys(), &expected(), false)
}

#[test]
fn tag_replaces_the_colon() {
    assert_eq!(
        cosign_tag(&DIGEST),
        "sha256-d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f.sig"
    );
}

#[test]
fn payload_has_cosigns_exact_bytes() {
    // sigstore/sigstore pkg/signature/payload: TestMarshalCosign "no claims".
    let expected = r#"{"critical":{"identity":{"docker-reference":"example.com/test/image"},"image":{"docker-manifest-digest":"sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f"},"type":"cosign container image signature"},"optional":null}"#;
    assert_eq!(
        String::from_utf8(cosign_payload("example.com/test/image", &DIGEST)).unwrap(),
        expected
    );
}

#[test]
fn good_signature_verifies() {
    let (payload, signature) = signed(REPOSITORY, &DIGEST);
    let verified = check(&payload, &signature).unwrap();
    assert_eq!(verified.fingerprint, *key().public_key().fingerprint());
}

#[test]
fn identity_is_compared_as_docker_normalises_it() {
    // cosign writes Docker Hub as index.docker.io; tags and digests are ignored.
    let expected = Expected {
        signed_digest: &DIGEST,
        canonical_repository: "docker.io/library/nginx",
    };
    for reference in [
        "nginx",
        "index.docker.io/library/nginx",
        "docker.io/library/nginx:1.27",
        &format!("nginx@{}", *DIGEST),
    ] {
        let (payload, signature) = signed(reference, &DIGEST);
        verify_cosign(&payload, &signature, &keys(), &expected, false)
            .unwrap_or_else(|error| panic!("{reference}: {error}"));
    }
}

#[test]
fn wrong_key_lists_fingerprints_tried() {
    let other = SigningKey::random();
    let payload = cosign_payload(REPOSITORY, &DIGEST);
    let signature = sign_cosign_payload(&other, &payload).unwrap();
    match check(&payload, &signature) {
        Err(SignatureFailure::NoKeyVerified { tried }) => assert_eq!(tried, keys().fingerprints()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tampered_payload_does_not_verify() {
    let (mut payload, signature) = signed(REPOSITORY, &DIGEST);
    payload.push(b'\n');
    assert!(matches!(
        check(&payload, &signature),
        Err(SignatureFailure::NoKeyVerified { .. })
    ));
}

#[test]
fn signature_for_another_digest() {
    let (payload, signature) = signed(REPOSITORY, &OTHER_DIGEST);
    match check(&payload, &signature) {
        Err(SignatureFailure::DigestMismatch { expected, found }) => {
            assert_eq!((expected, found), (*DIGEST, OTHER_DIGEST.to_string()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn signature_for_another_repository() {
    let (payload, signature) = signed("registry.example.com/evil/plugin", &DIGEST);
    match check(&payload, &signature) {
        Err(SignatureFailure::IdentityMismatch { expected, found }) => {
            assert_eq!(expected, REPOSITORY);
            assert_eq!(found, "registry.example.com/evil/plugin");
        }
        other => panic!("{other:?}"),
    }
    // The opt-out accepts it; the digest is still checked.
    verify_cosign(&payload, &signature, &keys(), &expected(), true).unwrap();
}

#[test]
fn malformed_identity() {
    let (payload, signature) = signed("Not A Reference", &DIGEST);
    assert!(matches!(
        check(&payload, &signature),
        Err(SignatureFailure::MalformedIdentity(_))
    ));
}

#[test]
fn signed_payload_of_another_kind() {
    let payload = br#"{"critical":{"identity":{"docker-reference":"registry.example.com/acme/plugin"},"image":{"docker-manifest-digest":"sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f"},"type":"atomic container signature"},"optional":{}}"#;
    let signature = sign_cosign_payload(&key(), payload).unwrap();
    match check(payload, &signature) {
        Err(SignatureFailure::PayloadType { found }) => {
            assert_eq!(found, "atomic container signature");
        }
        other => panic!("{other:?}"),
    }
    let signature = sign_cosign_payload(&key(), b"[]").unwrap();
    assert!(matches!(
        check(b"[]", &signature),
        Err(SignatureFailure::MalformedPayload(_))
    ));
}

#[test]
fn payload_with_claims_still_verifies() {
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{REPOSITORY}"}},"image":{{"docker-manifest-digest":"{}"}},"type":"{PAYLOAD_TYPE}"}},"optional":{{"creator":"ci"}}}}"#,
        *DIGEST
    );
    let signature = sign_cosign_payload(&key(), payload.as_bytes()).unwrap();
    check(payload.as_bytes(), &signature).unwrap();
}

#[test]
fn malformed_signatures() {
    let payload = cosign_payload(REPOSITORY, &DIGEST);
    assert!(matches!(
        check(&payload, "not base64!"),
        Err(SignatureFailure::SignatureNotBase64(_))
    ));
    assert!(matches!(
        check(&payload, "AAAA"),
        Err(SignatureFailure::MalformedSignature)
    ));
}

#[test]
fn manifest_round_trips() {
    let (payload, signature) = signed(REPOSITORY, &DIGEST);
    let payload_descriptor = Descriptor::of(MediaType::COSIGN_SIMPLESIGNING, &payload);
    let config = cosign_signature_config(&[payload_descriptor.digest]);
    let config_descriptor = Descriptor::of(MediaType::OCI_CONFIG, &config);
    let manifest = cosign_signature_manifest(
        &[(payload_descriptor.clone(), signature.clone())],
        &config_descriptor,
    );

    let json: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(json["mediaType"], MediaType::OCI_MANIFEST.as_str());
    assert_eq!(json["config"]["mediaType"], MediaType::OCI_CONFIG.as_str());
    assert_eq!(
        json["layers"][0]["annotations"][SIGNATURE_ANNOTATION],
        signature.as_str()
    );
    let text = String::from_utf8(manifest.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"#),
        "{text}"
    );
    let config_text = String::from_utf8(config).unwrap();
    assert_eq!(
        config_text,
        format!(
            r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":["{}"]}},"config":{{}}}}"#,
            payload_descriptor.digest
        )
    );

    let layers = parse_signature_manifest(&manifest).unwrap();
    assert_eq!(
        layers,
        [CosignLayer {
            digest: payload_descriptor.digest,
            size: payload.len() as u64,
            signature,
        }]
    );
}

#[test]
fn manifest_skips_foreign_layers_and_refuses_broken_ones() {
    let config = Descriptor::of(MediaType::OCI_CONFIG, b"{}");
    let foreign = Descriptor::of(
        MediaType::new("application/vnd.oci.image.layer.v1.tar"),
        b"x",
    );
    let only_foreign = cosign_signature_manifest(&[(foreign.clone(), String::new())], &config);
    assert!(matches!(
        parse_signature_manifest(&only_foreign),
        Err(ManifestError::NoSignatureLayers)
    ));

    let payload = Descriptor::of(MediaType::COSIGN_SIMPLESIGNING, b"{}");
    let mut manifest: serde_json::Value = serde_json::from_slice(&cosign_signature_manifest(
        &[
            (foreign, String::new()),
            (payload.clone(), "c2ln".to_owned()),
        ],
        &config,
    ))
    .unwrap();
    assert_eq!(
        parse_signature_manifest(manifest.to_string().as_bytes())
            .unwrap()
            .len(),
        1
    );

    manifest["layers"][1]["annotations"] = serde_json::json!({});
    match parse_signature_manifest(manifest.to_string().as_bytes()) {
        Err(ManifestError::MissingSignature { digest }) => assert_eq!(digest, payload.digest),
        other => panic!("{other:?}"),
    }
    manifest["layers"][1]["digest"] = "sha256:short".into();
    assert!(matches!(
        parse_signature_manifest(manifest.to_string().as_bytes()),
        Err(ManifestError::Manifest(_))
    ));
    assert!(matches!(
        parse_signature_manifest(br#"{"manifests":[]}"#),
        Err(ManifestError::Manifest(_))
    ));
}

#[test]
fn index_child_proof() {
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"{}"}}]}}"#,
        *DIGEST
    );
    let index_digest = Digest::of(index.as_bytes());
    verify_index_child(index.as_bytes(), &index_digest, &DIGEST).unwrap();
    assert!(matches!(
        verify_index_child(index.as_bytes(), &index_digest, &OTHER_DIGEST),
        Err(SignatureFailure::NotAChild { .. })
    ));
    assert!(matches!(
        verify_index_child(index.as_bytes(), &OTHER_DIGEST, &DIGEST),
        Err(SignatureFailure::IndexDigestMismatch { .. })
    ));
    let not_index = b"{}";
    let digest = Digest::of(not_index);
    assert!(matches!(
        verify_index_child(not_index, &digest, &DIGEST),
        Err(SignatureFailure::MalformedIndex { .. })
    ));
}

#[test]
fn public_key_fixture_verifies_our_signatures() {
    let public = PublicKey::from_pem(include_bytes!("../testdata/public.pem")).unwrap();
    let (payload, signature) = signed(REPOSITORY, &DIGEST);
    let keys = KeySet::new(vec![public]).unwrap();
    verify_cosign(&payload, &signature, &keys, &expected(), false).unwrap();
}
