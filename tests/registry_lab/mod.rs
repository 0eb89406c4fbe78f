//! A throwaway distribution registry and tiny OCI layouts for the registry tests.
//!
//! Kept apart from the tests so they can move to the shared lab (`tests/common/`) by
//! swapping this module: tests only use `TestRegistry`, `Layout` and `docker_config`.

#![allow(dead_code)]

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest as _;
use tempfile::TempDir;

pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret-Pa55";

/// How the registry is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain HTTP, no authentication.
    Plain,
    /// Plain HTTP with htpasswd basic auth ([`USER`]/[`PASSWORD`]).
    Basic,
    /// HTTPS with a certificate from a throwaway CA, no authentication.
    Tls,
}

/// A `docker-registry` process with its own storage, killed on drop.
pub struct TestRegistry {
    child: Option<Child>,
    dir: TempDir,
    /// `127.0.0.1:PORT`.
    pub host: String,
    pub mode: Mode,
}

impl TestRegistry {
    pub fn start(mode: Mode) -> TestRegistry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        match mode {
            Mode::Plain => {}
            Mode::Basic => {
                let output = Command::new("htpasswd")
                    .args(["-Bbn", USER, PASSWORD])
                    .output()
                    .expect("run htpasswd");
                assert!(output.status.success(), "htpasswd failed");
                std::fs::write(dir.path().join("htpasswd"), output.stdout).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: lab\n    path: {}\n",
                    dir.path().join("htpasswd").display()
                ));
            }
            Mode::Tls => {
                make_certificates(dir.path());
                config.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    dir.path().join("server.crt").display(),
                    dir.path().join("server.key").display()
                ));
            }
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = TestRegistry {
            child: Some(child),
            dir,
            host,
            mode,
        };
        registry.wait_until_listening();
        registry
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(&self.host).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// A Docker config with no entries, so tests never read the user's own.
    pub fn empty_docker_config(&self) -> PathBuf {
        let path = self.dir.path().join("empty-docker-config.json");
        std::fs::write(&path, "{}").unwrap();
        path
    }

    /// The CA certificate of a [`Mode::Tls`] registry.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Copies `name` from `layout` to `repository_and_tag` on this registry with skopeo.
    /// `all` copies a whole index; `docker` converts to Docker v2s2.
    pub fn seed(&self, layout: &Layout, name: &str, repository_and_tag: &str, docker: bool) {
        let mut command = Command::new("skopeo");
        command.args(["copy", "--quiet", "--all", "--dest-tls-verify=false"]);
        if self.mode == Mode::Basic {
            command.arg(format!("--dest-creds={USER}:{PASSWORD}"));
        }
        if docker {
            command.args(["--format", "v2s2"]);
        }
        command
            .arg(format!("oci:{}:{name}", layout.dir.path().display()))
            .arg(format!("docker://{}/{repository_and_tag}", self.host));
        let output = command.stdin(Stdio::null()).output().expect("run skopeo");
        assert!(
            output.status.success(),
            "skopeo copy failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Stops the registry process (by its own PID) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA and a server certificate for IP 127.0.0.1 signed by it.
fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=velero-airgap test CA",
    ];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
}

/// Writes a Docker config holding `user:password` for `host` in a temp dir.
pub fn docker_config(host: &str, user: &str, password: &str) -> TempDir {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = serde_json::json!({ "auths": { host: { "auth": auth } } });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

/// One image written into a [`Layout`].
#[derive(Debug, Clone)]
pub struct Written {
    /// Media type, digest and size of the top manifest (index or image manifest).
    pub digest: String,
    pub size: u64,
    /// Per architecture: manifest digest, config digest, layer digests.
    pub platforms: Vec<WrittenPlatform>,
}

#[derive(Debug, Clone)]
pub struct WrittenPlatform {
    pub architecture: String,
    pub manifest: String,
    pub config: String,
    pub layers: Vec<String>,
}

/// A tiny OCI image layout built in a temp dir.
pub struct Layout {
    pub dir: TempDir,
    refs: Vec<serde_json::Value>,
}

impl Layout {
    pub fn new() -> Layout {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        Layout {
            dir,
            refs: Vec::new(),
        }
    }

    /// The bytes of a blob of this layout.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        std::fs::read(self.dir.path().join("blobs/sha256").join(hex)).expect("blob")
    }

    fn write_blob(&self, bytes: &[u8]) -> (String, u64) {
        let hex = hex::encode(sha2::Sha256::digest(bytes));
        std::fs::write(self.dir.path().join("blobs/sha256").join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len() as u64)
    }

    /// Adds image `name` for `architectures` (linux): an index when there are several.
    /// Every platform has its own layer plus one layer shared by all platforms.
    pub fn add_image(&mut self, name: &str, architectures: &[&str]) -> Written {
        let shared = self.write_blob(&gzip_tar(&format!("shared-{name}"), 3000));
        let mut platforms = Vec::new();
        let mut entries = Vec::new();
        for architecture in architectures {
            let own = self.write_blob(&gzip_tar(&format!("{name}-{architecture}"), 5000));
            let config = serde_json::json!({
                "architecture": architecture, "os": "linux",
                "config": {"Entrypoint": ["/velero"]},
                "rootfs": {"type": "layers", "diff_ids": []},
            });
            let config = self.write_blob(config.to_string().as_bytes());
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": shared.0, "size": shared.1},
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": own.0, "size": own.1},
                ],
            });
            let manifest = self.write_blob(manifest.to_string().as_bytes());
            entries.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest.0, "size": manifest.1,
                "platform": {"architecture": architecture, "os": "linux"},
            }));
            platforms.push(WrittenPlatform {
                architecture: architecture.to_string(),
                manifest: manifest.0,
                config: config.0,
                layers: vec![shared.0.clone(), own.0],
            });
        }
        let (media_type, digest, size) = if let [single] = &platforms[..] {
            let size = self.blob(&single.manifest).len() as u64;
            (
                "application/vnd.oci.image.manifest.v1+json",
                single.manifest.clone(),
                size,
            )
        } else {
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": entries,
            });
            let (digest, size) = self.write_blob(index.to_string().as_bytes());
            ("application/vnd.oci.image.index.v1+json", digest, size)
        };
        self.refs.push(serde_json::json!({
            "mediaType": media_type, "digest": digest, "size": size,
            "annotations": {"org.opencontainers.image.ref.name": name},
        }));
        let index = serde_json::json!({"schemaVersion": 2, "manifests": self.refs});
        std::fs::write(self.dir.path().join("index.json"), index.to_string()).unwrap();
        Written {
            digest,
            size,
            platforms,
        }
    }
}

/// A gzipped tar holding one file of pseudo-random (incompressible) bytes.
fn gzip_tar(seed: &str, len: usize) -> Vec<u8> {
    let mut state = seed.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |s, b| {
        (s ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let data: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    builder
        .append_data(&mut header, format!("data/{seed}.bin"), &data[..])
        .unwrap();
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// The sha256 digest of `bytes` in `sha256:<hex>` form.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}
