//! Tiny OCI layouts built in process, for the registry tests that need to know every
//! digest of what they seed (a shared layer, a config, a platform child).

use std::io::Write as _;

use tempfile::TempDir;
use velero_airgap::oci::Digest;

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
    /// Digest of the top manifest (index or image manifest).
    pub digest: Digest,
    /// Per architecture: manifest digest, config digest, layer digests.
    pub platforms: Vec<WrittenPlatform>,
}

#[derive(Debug, Clone)]
pub struct WrittenPlatform {
    pub manifest: Digest,
    pub config: Digest,
    pub layers: Vec<Digest>,
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
    pub fn blob(&self, digest: &Digest) -> Vec<u8> {
        std::fs::read(self.dir.path().join("blobs/sha256").join(digest.hex())).expect("blob")
    }

    fn write_blob(&self, bytes: &[u8]) -> (Digest, u64) {
        let digest = Digest::of(bytes);
        std::fs::write(
            self.dir.path().join("blobs/sha256").join(digest.hex()),
            bytes,
        )
        .unwrap();
        (digest, bytes.len() as u64)
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
                manifest: manifest.0,
                config: config.0,
                layers: vec![shared.0, own.0],
            });
        }
        let (media_type, digest, size) = if let [single] = &platforms[..] {
            let size = self.blob(&single.manifest).len() as u64;
            (
                "application/vnd.oci.image.manifest.v1+json",
                single.manifest,
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
        Written { digest, platforms }
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

/// The digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    Digest::of(bytes)
}
