//! Proves the test lab works: every registry variant accepts and serves the three kinds of
//! image the project handles, auth and TLS are really enforced, containerd answers and can
//! pull from a lab registry, and every started process is gone after its handle is dropped.

use crate::lab::{
    Containerd, ImageSpec, Registry, RegistryKind, SeedFormat, TokenSetup, make_images,
    make_images_seeded, pid_alive, seed, skopeo,
};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

const MULTI: &str = "lab.example/multi:1";
const SINGLE: &str = "lab.example/single:1";

/// A layout with a multi-arch image (2 platforms, 2 layers) and a single-platform image.
fn sample_layout() -> tempfile::TempDir {
    let layout = tempfile::tempdir().expect("create layout dir");
    let made = make_images(
        layout.path(),
        &[
            ImageSpec::multi_arch(MULTI, &["amd64", "arm64"], &[64, 16]),
            ImageSpec::single(SINGLE, &[32]),
        ],
    );
    assert_eq!(made.len(), 2);
    assert_eq!(made[0].media_type, OCI_INDEX);
    assert_eq!(made[1].media_type, OCI_MANIFEST);
    layout
}

/// Seeds every kind of image into a registry of `kind` and checks what it serves back.
fn registry_serves_every_image_kind(kind: RegistryKind) {
    let layout = sample_layout();
    let registry = Registry::start(kind);
    let pid = registry.pid;
    assert!(pid_alive(pid));

    seed(
        &registry,
        layout.path(),
        MULTI,
        "lab/multi:oci",
        SeedFormat::Oci,
        true,
    );
    seed(
        &registry,
        layout.path(),
        SINGLE,
        "lab/single:oci",
        SeedFormat::Oci,
        false,
    );
    seed(
        &registry,
        layout.path(),
        SINGLE,
        "lab/single:docker",
        SeedFormat::Docker,
        false,
    );
    seed(
        &registry,
        layout.path(),
        MULTI,
        "lab/multi:docker",
        SeedFormat::Docker,
        true,
    );

    let index = registry.inspect_raw("lab/multi:oci");
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(2));
    assert_eq!(registry.media_type("lab/single:oci"), OCI_MANIFEST);
    assert_eq!(registry.media_type("lab/single:docker"), DOCKER_MANIFEST);
    let list = registry.inspect_raw("lab/multi:docker");
    assert_eq!(list["mediaType"], DOCKER_LIST);
    assert_eq!(list["manifests"][0]["mediaType"], DOCKER_MANIFEST);

    drop(registry);
    assert!(!pid_alive(pid), "registry {pid} still runs after drop");
}

#[test]
fn plain_registry_serves_every_image_kind() {
    registry_serves_every_image_kind(RegistryKind::Plain);
}

#[test]
fn basic_auth_registry_serves_every_image_kind() {
    registry_serves_every_image_kind(RegistryKind::BasicAuth);
}

#[test]
fn tls_registry_serves_every_image_kind() {
    registry_serves_every_image_kind(RegistryKind::Tls);
}

#[test]
fn tls_basic_auth_registry_serves_every_image_kind() {
    registry_serves_every_image_kind(RegistryKind::TlsBasicAuth);
}

/// Runs `skopeo inspect --raw` on `path` with exactly `flags` and returns (success, stderr).
fn inspect_with(registry: &Registry, path: &str, flags: &[&str]) -> (bool, String) {
    let mut args = vec!["inspect".to_owned(), "--raw".to_owned()];
    args.extend(flags.iter().map(|f| (*f).to_owned()));
    args.push(format!("docker://{}", registry.reference(path)));
    let output = skopeo(&args);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn basic_auth_refuses_wrong_or_missing_credentials() {
    let layout = sample_layout();
    let registry = Registry::start(RegistryKind::TlsBasicAuth);
    seed(
        &registry,
        layout.path(),
        SINGLE,
        "lab/single:1",
        SeedFormat::Oci,
        false,
    );
    let cert_dir = format!(
        "--cert-dir={}",
        registry.ca_dir.as_ref().expect("TLS registry").display()
    );
    let right = format!("--creds={}", registry.credentials().expect("auth registry"));
    let wrong = format!("--creds={}:not-the-password", Registry::USERNAME);

    let (ok, stderr) = inspect_with(&registry, "lab/single:1", &[&cert_dir, &right]);
    assert!(ok, "right credentials refused: {stderr}");
    for flags in [vec![cert_dir.as_str(), wrong.as_str()], vec![&cert_dir]] {
        let (ok, stderr) = inspect_with(&registry, "lab/single:1", &flags);
        assert!(!ok, "accepted with {flags:?}");
        assert!(
            stderr.contains("unauthorized") || stderr.contains("authentication required"),
            "unexpected error with {flags:?}: {stderr}"
        );
    }
}

#[test]
fn tls_registry_is_trusted_only_with_the_lab_ca() {
    let layout = sample_layout();
    let registry = Registry::start(RegistryKind::Tls);
    seed(
        &registry,
        layout.path(),
        SINGLE,
        "lab/single:1",
        SeedFormat::Oci,
        false,
    );
    let ca_dir = registry.ca_dir.as_ref().expect("TLS registry");
    let only_ca: Vec<_> = std::fs::read_dir(ca_dir)
        .expect("read CA dir")
        .map(|entry| entry.expect("CA dir entry").file_name())
        .collect();
    assert_eq!(only_ca, ["ca.crt"], "the CA dir must hold only ca.crt");

    let cert_dir = format!("--cert-dir={}", ca_dir.display());
    let (ok, stderr) = inspect_with(&registry, "lab/single:1", &[&cert_dir]);
    assert!(ok, "refused with the lab CA: {stderr}");
    let (ok, stderr) = inspect_with(&registry, "lab/single:1", &["--tls-verify=true"]);
    assert!(!ok, "trusted without the lab CA");
    assert!(
        stderr.contains("x509") || stderr.contains("certificate"),
        "unexpected error without the CA: {stderr}"
    );
}

#[test]
fn mkimages_is_reproducible_with_a_seed() {
    let specs =
        [ImageSpec::multi_arch(MULTI, &["amd64", "linux/arm/v7"], &[8]).shared_layer(16, "base")];
    let first = tempfile::tempdir().expect("temp dir");
    let second = tempfile::tempdir().expect("temp dir");
    let a = make_images_seeded(first.path(), &specs, "lab");
    let b = make_images_seeded(second.path(), &specs, "lab");
    assert_eq!(a, b);
    let c = make_images_seeded(first.path(), &specs, "other");
    assert_ne!(a[0].digest, c[0].digest);
}

#[test]
fn containerd_answers_and_pulls_from_a_lab_registry() {
    let layout = sample_layout();
    let registry = Registry::start(RegistryKind::Plain);
    seed(
        &registry,
        layout.path(),
        MULTI,
        "lab/multi:1",
        SeedFormat::Oci,
        true,
    );
    let containerd = Containerd::start();
    let pid = containerd.pid;

    let list = containerd.ctr(&["-n", "k8s.io", "images", "ls", "-q"]);
    assert!(
        list.status.success(),
        "ctr images ls: {}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(list.stdout.is_empty(), "a fresh containerd has no images");

    let reference = registry.reference("lab/multi:1");
    let pull = containerd.ctr(&[
        "-n",
        "k8s.io",
        "content",
        "fetch",
        "--plain-http",
        "--platform",
        "linux/arm64",
        &reference,
    ]);
    assert!(
        pull.status.success(),
        "ctr content fetch: {}",
        String::from_utf8_lossy(&pull.stderr)
    );

    drop(containerd);
    assert!(!pid_alive(pid), "containerd {pid} still runs after drop");
}

#[test]
fn ec_registry_is_shaped_like_embedded_clusters() {
    let layout = sample_layout();
    let registry = Registry::start(RegistryKind::EmbeddedCluster);
    let ec = registry.ec_dir.clone().expect("EC dir");

    // The certificate: self-signed, not a CA, anyExtendedKeyUsage only, naming 127.0.0.1.
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(ec.join("tls.crt"))
        .output()
        .expect("run openssl");
    let text = String::from_utf8_lossy(&text.stdout);
    for expected in [
        "Subject: O = replicated, CN = registry",
        "CA:FALSE",
        "Any Extended Key Usage",
        "IP Address:127.0.0.1",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    assert!(!text.contains("TLS Web Server Authentication"), "{text}");

    // The fake kubectl serves the Secrets as EC's installer writes them.
    let kubectl = |namespace: &str, name: &str, key: &str| {
        let output = std::process::Command::new(ec.join("bin/kubectl"))
            .args(["-n", namespace, "get", "secret", name, "-o"])
            .arg(format!("jsonpath={{.data.{key}}}"))
            .output()
            .expect("run the fake kubectl");
        assert!(output.status.success(), "{output:?}");
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(output.stdout)
            .expect("base64 data")
    };
    let docker_config = kubectl("kotsadm", "registry-creds", r"\.dockerconfigjson");
    assert_eq!(
        docker_config,
        std::fs::read(ec.join("docker/config.json")).unwrap()
    );
    let config: serde_json::Value = serde_json::from_slice(&docker_config).unwrap();
    assert_eq!(
        config["auths"][&registry.addr]["username"],
        "embedded-cluster"
    );
    assert_eq!(
        kubectl("registry", "registry-tls", r"tls\.crt"),
        std::fs::read(ec.join("tls.crt")).unwrap()
    );

    // Go's client trusts the certificate as given; the password is enforced.
    seed(
        &registry,
        layout.path(),
        SINGLE,
        "lab/single:1",
        SeedFormat::Oci,
        false,
    );
    let cert_dir = format!("--cert-dir={}", registry.ca_dir.as_ref().unwrap().display());
    let creds = format!("--creds={}", registry.credentials().unwrap());
    let (ok, stderr) = inspect_with(&registry, "lab/single:1", &[&cert_dir, &creds]);
    assert!(ok, "{stderr}");
    let (ok, _) = inspect_with(&registry, "lab/single:1", &[&cert_dir]);
    assert!(!ok, "accepted without credentials");
}

#[test]
fn token_registry_gives_anyone_pull_and_the_user_push() {
    let layout = sample_layout();
    let registry = Registry::start(RegistryKind::Token(TokenSetup {
        auth: true,
        ..TokenSetup::default()
    }));
    let token = registry.token.clone().expect("token server");
    assert_eq!(token.realm, format!("http://{}/token", token.addr));
    // skopeo sends the user's credentials to the token server and pushes.
    seed(
        &registry,
        layout.path(),
        SINGLE,
        "lab/single:1",
        SeedFormat::Oci,
        false,
    );
    let pushes: Vec<_> = token
        .token_requests()
        .into_iter()
        .filter(|r| r["granted"].to_string().contains("push"))
        .collect();
    assert!(!pushes.is_empty(), "{:#?}", token.token_requests());
    assert!(
        pushes
            .iter()
            .all(|r| r["basic_auth"] == true && r["user"] == Registry::USERNAME)
    );
    // Anyone pulls.
    let before = token.token_requests().len();
    let (ok, stderr) = inspect_with(&registry, "lab/single:1", &["--tls-verify=false"]);
    assert!(ok, "{stderr}");
    let anonymous = &token.token_requests()[before..];
    assert!(!anonymous.is_empty());
    assert!(
        anonymous
            .iter()
            .all(|r| r["basic_auth"] == false && r["scheme"] == "http")
    );
}
