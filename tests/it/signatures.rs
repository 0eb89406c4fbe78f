//! Supply chain: cosign image signatures checked at build and again offline at
//! unpack, and signed bundles that openssl checks too. Keys and signatures are
//! made here (openssl and the library) and pushed to the lab registry in
//! cosign's layout.

use crate::lab::sources::{MONGODB, POSTGRES, Sources, VELERO, build, path_of};
use crate::lab::{Registry, RegistryKind, keypair, velero_airgap};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use velero_airgap::oci::{Descriptor, Digest, MediaType};
use velero_airgap::registry::{Pusher, RegistryOptions};
use velero_airgap::sign::{self, SigningKey};

/// The digest the registry serves for `path` (the raw manifest's sha256).
fn served_digest(registry: &Registry, path: &str) -> String {
    let out = crate::lab::skopeo_ok(&[
        "inspect".to_string(),
        "--raw".to_string(),
        "--tls-verify=false".to_string(),
        format!("docker://{}", registry.reference(path)),
    ]);
    format!("sha256:{}", hex::encode(Sha256::digest(&out.stdout)))
}

/// Pushes a cosign signature for `digest` into `repository` of `registry`:
/// payload naming `identity`, signed by `key`, under tag `sha256-<hex>.sig`.
fn push_signature(registry: &Registry, repository: &str, digest: &str, identity: &str, key: &Path) {
    push_signature_of(registry, repository, digest, digest, identity, key);
}

/// Like `push_signature`, but the payload signs `payload_digest` while the tag
/// is that of `tag_digest` (a signature for another digest).
fn push_signature_of(
    registry: &Registry,
    repository: &str,
    tag_digest: &str,
    payload_digest: &str,
    identity: &str,
    key: &Path,
) {
    let key = SigningKey::load(key, None).unwrap();
    let digest: Digest = tag_digest.parse().unwrap();
    let payload = sign::cosign_payload(identity, &payload_digest.parse().unwrap());
    let signature = sign::sign_cosign_payload(&key, &payload).unwrap();
    let payload_descriptor = Descriptor::of(MediaType::COSIGN_SIMPLESIGNING, &payload);
    let config = sign::cosign_signature_config(&[payload_descriptor.digest]);
    let config_descriptor = Descriptor::of(MediaType::OCI_CONFIG, &config);
    let manifest = sign::cosign_signature_manifest(
        &[(payload_descriptor.clone(), signature)],
        &config_descriptor,
    );
    let repo = format!("{}/{repository}", registry.addr);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pusher = Pusher::new(
            RegistryOptions {
                insecure: vec![registry.addr.clone()],
                ..RegistryOptions::default()
            },
            None,
        )
        .unwrap();
        for (blob, bytes) in [(&payload_descriptor, payload), (&config_descriptor, config)] {
            pusher
                .push_blob(&repo, blob, || Ok(std::io::Cursor::new(bytes.clone())))
                .await
                .unwrap();
        }
        pusher
            .push_manifest(
                &format!("{repo}:{}", sign::cosign_tag(&digest)),
                manifest.into(),
                &MediaType::OCI_MANIFEST,
            )
            .await
            .unwrap();
    });
}

/// The canonical repository of a canonical reference (`registry/path`).
fn repository_of(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(repo, _)| repo)
}

struct Lab {
    sources: Sources,
    key: PathBuf,
    public: PathBuf,
    other_public: PathBuf,
}

fn lab() -> Lab {
    let sources = Sources::start(RegistryKind::Plain, 16);
    let (key, public) = keypair(sources.dir.path(), "vendor");
    let (_, other_public) = keypair(sources.dir.path(), "other");
    Lab {
        sources,
        key,
        public,
        other_public,
    }
}

impl Lab {
    /// Signs `name` (by the digest its tag resolves to) with the vendor key.
    fn sign(&self, name: &str) -> String {
        let registry = &self.sources.registry;
        let path = path_of(name);
        let digest = served_digest(registry, path);
        push_signature(
            registry,
            repository_of(path),
            &digest,
            repository_of(name),
            &self.key,
        );
        digest
    }

    fn path(&self, name: &str) -> PathBuf {
        self.sources.path(name)
    }
}

/// `unpack BUNDLE --k0s-images-dir DIR --values-out VALUES` in the lab's dir,
/// for more arguments to be added.
fn unpack_k0s(lab: &Lab, bundle: &Path, dir: &str, values: &str) -> assert_cmd::Command {
    let mut command = velero_airgap();
    command
        .arg("unpack")
        .arg(bundle)
        .arg("--k0s-images-dir")
        .arg(lab.path(dir))
        .arg("--values-out")
        .arg(lab.path(values));
    command
}

fn verify_key(path: &Path) -> String {
    format!("--verify-key={}", path.display())
}

#[test]
fn good_signatures_on_a_manifest_and_an_index_verify_at_build_and_unpack() {
    let lab = lab();
    lab.sign(POSTGRES); // a single OCI manifest
    lab.sign(VELERO); // a multi-arch index: the bundle pins amd64 out of it
    let bundle = lab.path("bundle.tar");
    let (code, json, stderr) = build(
        &lab.sources,
        &bundle,
        &[
            &verify_key(&lab.public),
            "--require-signature",
            "velero-plugin-postgres",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let fingerprint = {
        let der = Command::new("openssl")
            .args([
                "pkey",
                "-pubin",
                "-in",
                lab.public.to_str().unwrap(),
                "-outform",
                "DER",
            ])
            .output()
            .unwrap()
            .stdout;
        format!("sha256:{}", hex::encode(Sha256::digest(der)))
    };
    let lock = json["imageLock"].as_array().unwrap();
    let status =
        |name: &str| lock.iter().find(|i| i["reference"] == name).unwrap()["signature"].clone();
    assert_eq!(status(POSTGRES)["status"], "verified", "{json:#}");
    assert_eq!(status(POSTGRES)["keyFingerprint"], fingerprint.as_str());
    assert_eq!(status(VELERO)["status"], "verified");
    assert_eq!(status(MONGODB)["status"], "unsigned");
    assert!(
        stderr.contains("velero-plugin-mongodb") && stderr.contains("unsigned"),
        "{stderr}"
    );

    // verify re-checks the stored signatures offline.
    let out = velero_airgap()
        .args(["verify", "--json"])
        .arg(&bundle)
        .arg(verify_key(&lab.public))
        .args(["--require-signature", "velero-plugin-postgres"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checked = report["signatures"]["images"].to_string();
    assert!(
        checked.contains(POSTGRES) && checked.contains(&fingerprint),
        "{report:#}"
    );

    // inspect shows it; unpack re-checks the stored signatures offline.
    let inspect = velero_airgap()
        .args(["inspect", "--json"])
        .arg(&bundle)
        .output()
        .unwrap();
    let inspect: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let postgres = inspect["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["canonicalReference"] == POSTGRES)
        .unwrap();
    assert_eq!(
        postgres["signature"]["keyFingerprint"],
        fingerprint.as_str()
    );

    let audit = lab.path("audit.log");
    let out = unpack_k0s(&lab, &bundle, "images", "values.yaml")
        .arg(verify_key(&lab.public))
        .args(["--require-signature", "velero-plugin-postgres"])
        .arg("--audit-log")
        .arg(&audit)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(log.contains(&fingerprint), "{log}");

    // With the wrong key, unpack refuses before loading anything.
    let out = unpack_k0s(&lab, &bundle, "images2", "values2.yaml")
        .arg(verify_key(&lab.other_public))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!lab.path("images2").exists());
}

#[test]
fn wrong_key_fails_the_build_naming_image_and_keys() {
    let lab = lab();
    let digest = lab.sign(POSTGRES);
    let bundle = lab.path("bundle.tar");
    let (code, _, stderr) = build(&lab.sources, &bundle, &[&verify_key(&lab.other_public)]);
    assert_eq!(code, 1, "{stderr}");
    // The keys tried are named once.
    let other = sign::PublicKey::load(&lab.other_public).unwrap();
    assert_eq!(
        stderr.lines().last(),
        Some(
            format!(
                "error: {POSTGRES}: signature {digest} does not verify: no key verifies the signature (keys tried: {})",
                other.fingerprint()
            )
            .as_str()
        ),
        "{stderr}"
    );
    assert!(!bundle.exists());
}

#[test]
fn signature_for_another_digest_fails() {
    let lab = lab();
    let registry = &lab.sources.registry;
    let postgres = path_of(POSTGRES);
    let digest = served_digest(registry, postgres);
    let other = served_digest(registry, path_of(MONGODB));
    // Under the postgres digest's tag, a payload that signs the mongodb digest.
    push_signature_of(
        registry,
        repository_of(postgres),
        &digest,
        &other,
        repository_of(POSTGRES),
        &lab.key,
    );
    let (code, _, stderr) = build(
        &lab.sources,
        &lab.path("bundle.tar"),
        &[&verify_key(&lab.public)],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&other) && stderr.contains("expected"),
        "{stderr}"
    );
}

#[test]
fn payload_naming_another_repository_fails_unless_identity_is_ignored() {
    let lab = lab();
    let registry = &lab.sources.registry;
    let path = path_of(POSTGRES);
    let digest = served_digest(registry, path);
    push_signature(
        registry,
        repository_of(path),
        &digest,
        "registry.example.com/evil/plugin",
        &lab.key,
    );
    let (code, _, stderr) = build(
        &lab.sources,
        &lab.path("a.tar"),
        &[&verify_key(&lab.public)],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("registry.example.com/evil/plugin"),
        "{stderr}"
    );
    let (code, json, stderr) = build(
        &lab.sources,
        &lab.path("b.tar"),
        &[&verify_key(&lab.public), "--ignore-signature-identity"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(json.to_string().contains("verified"));
}

#[test]
fn missing_signature_with_and_without_policy() {
    let lab = lab();
    let (code, _, stderr) = build(
        &lab.sources,
        &lab.path("a.tar"),
        &[
            &verify_key(&lab.public),
            "--require-signature",
            "velero-plugin-mongodb",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(MONGODB) && stderr.contains("must be signed"),
        "{stderr}"
    );
    assert!(stderr.contains(".sig"), "tags looked for: {stderr}");

    let (code, _, stderr) = build(
        &lab.sources,
        &lab.path("b.tar"),
        &[&verify_key(&lab.public), "--require-signatures"],
    );
    assert_eq!(code, 1, "{stderr}");

    let (code, json, stderr) = build(
        &lab.sources,
        &lab.path("c.tar"),
        &[&verify_key(&lab.public)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("unsigned"), "{stderr}");
    assert!(
        json["imageLock"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["signature"]["status"] == "unsigned")
    );

    let (code, _, stderr) = build(
        &lab.sources,
        &lab.path("d.tar"),
        &[
            "--require-signature",
            "no-such-plugin",
            &verify_key(&lab.public),
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no-such-plugin"), "{stderr}");
}

#[test]
fn tampered_signature_blob_is_caught_at_unpack() {
    let lab = lab();
    lab.sign(POSTGRES);
    let bundle = lab.path("bundle.tar");
    let (code, _, stderr) = build(&lab.sources, &bundle, &[&verify_key(&lab.public)]);
    assert_eq!(code, 0, "{stderr}");
    // Find the payload blob (it names the docker-reference) and flip a byte in it.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let needle = b"\"docker-reference\"";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[at + 3] ^= 0x01;
    let tampered = lab.path("tampered.tar");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = unpack_k0s(&lab, &tampered, "images", "values.yaml")
        .arg(verify_key(&lab.public))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("blobs/sha256/"), "{stderr}");
    assert!(!lab.path("images").exists());
}

#[test]
fn signed_bundles_check_with_the_tool_and_with_openssl() {
    let lab = lab();
    let dir = lab.sources.dir.path();
    // An encrypted PKCS#8 key with its passphrase in an environment variable.
    let encrypted = dir.join("encrypted.key");
    let status = Command::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:s3cret-phrase",
            "-in",
        ])
        .arg(&lab.key)
        .arg("-out")
        .arg(&encrypted)
        .status()
        .unwrap();
    assert!(status.success());
    let bundle = lab.path("bundle.tar");
    let out = velero_airgap()
        .arg("build")
        .arg("-c")
        .arg(&lab.sources.config)
        .arg("-o")
        .arg(&bundle)
        .args(lab.sources.registry_args())
        .arg(format!("--sign-key={}", encrypted.display()))
        .args(["--sign-key-pass-env", "BUNDLE_KEY_PASS"])
        .env("BUNDLE_KEY_PASS", "s3cret-phrase")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("s3cret-phrase"));
    let signature = lab.path("bundle.tar.sig");
    let openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&lab.public)
        .arg("-signature")
        .arg(&signature)
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        openssl.status.success(),
        "{}",
        String::from_utf8_lossy(&openssl.stdout)
    );

    let verify = |key: &Path, bundle: &Path| {
        velero_airgap()
            .arg("verify")
            .arg(bundle)
            .arg(format!("--bundle-key={}", key.display()))
            .output()
            .unwrap()
    };
    let good = verify(&lab.public, &bundle);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let wrong = verify(&lab.other_public, &bundle);
    assert_eq!(wrong.status.code(), Some(1));

    // Without a signature beside it, --bundle-key is an error.
    let copy = lab.path("copy.tar");
    std::fs::copy(&bundle, &copy).unwrap();
    std::fs::copy(lab.path("bundle.tar.sha256"), lab.path("copy.tar.sha256")).unwrap();
    let missing = verify(&lab.public, &copy);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no bundle signature"));

    // unpack checks it first.
    let out = unpack_k0s(&lab, &bundle, "images", "values.yaml")
        .arg(format!("--bundle-key={}", lab.other_public.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!lab.path("images").exists());
}

/// The files the tool finds beside a bundle by itself (the sidecar, `BUNDLE.sig`) must be
/// regular files and small: a link to `/dev/zero` or a FIFO is refused, never read without
/// end or waited on; and a missing signature fails before the long pass.
#[test]
fn files_found_beside_the_bundle_are_regular_small_and_checked_first() {
    let lab = lab();
    let bundle = lab.path("bundle.tar");
    let out = velero_airgap()
        .args(["build", "-q", "-c"])
        .arg(&lab.sources.config)
        .arg("-o")
        .arg(&bundle)
        .args(lab.sources.registry_args())
        .arg(format!("--sign-key={}", lab.key.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verify = |bundle: &Path, key: Option<&Path>| {
        let mut command = velero_airgap();
        command.arg("verify").arg(bundle);
        if let Some(key) = key {
            command.arg(format!("--bundle-key={}", key.display()));
        }
        let out = command.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let copy = |name: &str| {
        let path = lab.path(name);
        std::fs::copy(&bundle, &path).unwrap();
        path
    };

    // BUNDLE.sig -> /dev/zero.
    let zero = copy("zero.tar");
    std::os::unix::fs::symlink("/dev/zero", lab.path("zero.tar.sig")).unwrap();
    let (code, stderr) = verify(&zero, Some(&lab.public));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("zero.tar.sig is not a regular file"),
        "{stderr}"
    );

    // A BUNDLE.sig far larger than any signature.
    let large = copy("large.tar");
    std::fs::write(lab.path("large.tar.sig"), vec![0x30; 1 << 20]).unwrap();
    let (code, stderr) = verify(&large, Some(&lab.public));
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("large.tar.sig"), "{stderr}");

    // A FIFO as the sidecar: nobody writes to it, so reading it would wait for ever.
    let piped = copy("piped.tar");
    let fifo = lab.path("piped.tar.sha256");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let (code, stderr) = verify(&piped, None);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("piped.tar.sha256 is not a regular file"),
        "{stderr}"
    );

    // No BUNDLE.sig, and a damaged blob section: the missing signature is what is said.
    let damaged = copy("damaged.tar");
    let size = std::fs::metadata(&damaged).unwrap().len();
    crate::lab::bundles::flip_byte(&damaged, size / 2);
    let (code, stderr) = verify(&damaged, Some(&lab.public));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no bundle signature"), "{stderr}");
    assert!(!stderr.contains("blobs/sha256/"), "{stderr}");
}

#[test]
fn validate_online_resolves_every_image_and_checks_signatures() {
    let lab = lab();
    lab.sign(POSTGRES);
    let run = |extra: &[&str]| {
        let out = velero_airgap()
            .args(["validate", "--online", "--json", "-c"])
            .arg(&lab.sources.config)
            .args(lab.sources.registry_args())
            .args(extra)
            .output()
            .unwrap();
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (
            out.status.code().unwrap_or(-1),
            json,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, json, stderr) = run(&[&verify_key(&lab.public)]);
    assert_eq!(code, 0, "{stderr}");
    let online = json["online"].as_array().unwrap();
    assert_eq!(online.len(), 4, "{json:#}");
    let postgres = online.iter().find(|r| r["reference"] == POSTGRES).unwrap();
    assert_eq!(postgres["signature"]["status"], "verified");
    assert!(online.iter().all(|r| r["ok"] == true));

    let (code, json, _) = run(&["--platform", "linux/s390x"]);
    assert_eq!(code, 1);
    assert!(
        json["online"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ok"] == false)
    );

    let (code, json, _) = run(&[&verify_key(&lab.other_public)]);
    assert_eq!(code, 1);
    let postgres = json["online"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["reference"] == POSTGRES)
        .unwrap()
        .clone();
    assert_eq!(postgres["ok"], false);
    assert!(
        postgres["error"]
            .as_str()
            .unwrap()
            .contains("does not verify"),
        "{postgres}"
    );
}

#[test]
fn a_signed_index_covers_a_filtered_platform_list() {
    let lab = lab();
    // A three-platform plugin: asking for two of them writes a filtered index.
    const MULTI: &str = "registry.example.com/acme/velero-plugin-multi:1.0.0";
    let layout = lab.path("multi-layout");
    crate::lab::make_images(
        &layout,
        &[crate::lab::ImageSpec::multi_arch(
            MULTI,
            &["amd64", "arm64", "ppc64le"],
            &[16],
        )],
    );
    crate::lab::seed(
        &lab.sources.registry,
        &layout,
        MULTI,
        path_of(MULTI),
        crate::lab::SeedFormat::Oci,
        true,
    );
    lab.sign(MULTI);
    std::fs::write(
        &lab.sources.config,
        crate::lab::sources::config_text(&[MULTI]),
    )
    .unwrap();
    let (code, json, stderr) = build(
        &lab.sources,
        &lab.path("bundle.tar"),
        &[
            &verify_key(&lab.public),
            "--require-signature",
            "velero-plugin-multi",
            "--platform",
            "linux/amd64,linux/arm64",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let multi = json["imageLock"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == MULTI)
        .unwrap()
        .clone();
    assert_eq!(multi["signature"]["status"], "verified", "{json:#}");
    // The bundle carries a filtered index, not the signed one.
    assert_ne!(
        multi["digest"].as_str().unwrap(),
        served_digest(&lab.sources.registry, path_of(MULTI))
    );
}
