//! A source registry seeded with stand-ins for everything a default bundle needs:
//! the Velero and AWS plugin images of the default release (multi-arch OCI
//! indexes) and two vendor plugins (an OCI manifest and a Docker v2s2 manifest),
//! all sharing one base layer, plus a config naming them.

use super::{ImageSpec, Registry, RegistryKind, SeedFormat, make_images, seed, velero_airgap};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Canonical names of the images a default bundle carries.
pub const VELERO: &str = "proxy.replicated.com/library/velero:v1.18.2";
/// The AWS plugin of the default release.
pub const AWS_PLUGIN: &str = "proxy.replicated.com/library/velero-plugin-for-aws:v1.14.2";
/// A vendor plugin stored as an OCI manifest.
pub const POSTGRES: &str = "registry.example.com/acme/velero-plugin-postgres:1.2.0";
/// A vendor plugin stored as a Docker v2s2 manifest.
pub const MONGODB: &str = "registry.example.com/acme/velero-plugin-mongodb:0.9.1";

/// A seeded registry and a config whose images it serves through mirrors.
pub struct Sources {
    /// The registry.
    pub registry: Registry,
    /// Scratch space of the test (config, docker config, outputs).
    pub dir: tempfile::TempDir,
    /// The cluster config.
    pub config: PathBuf,
}

impl Sources {
    /// Starts a registry of `kind` and seeds it. `layer_kib` sizes each
    /// platform image's own layer.
    pub fn start(kind: RegistryKind, layer_kib: u64) -> Sources {
        let registry = Registry::start(kind);
        let dir = tempfile::tempdir().expect("temp dir");
        let layout = dir.path().join("layout");
        let base = 64;
        make_images(
            &layout,
            &[
                ImageSpec::multi_arch(VELERO, &["amd64", "arm64"], &[layer_kib])
                    .shared_layer(base, "base"),
                ImageSpec::multi_arch(AWS_PLUGIN, &["amd64", "arm64"], &[layer_kib])
                    .shared_layer(base, "base"),
                ImageSpec::single(POSTGRES, &[layer_kib]).shared_layer(base, "base"),
                ImageSpec::single(MONGODB, &[layer_kib]).shared_layer(base, "base"),
            ],
        );
        for (name, format, all) in [
            (VELERO, SeedFormat::Oci, true),
            (AWS_PLUGIN, SeedFormat::Oci, true),
            (POSTGRES, SeedFormat::Oci, false),
            (MONGODB, SeedFormat::Docker, false),
        ] {
            seed(&registry, &layout, name, path_of(name), format, all);
        }
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, config_text(&[POSTGRES, MONGODB])).expect("write config");
        Sources {
            registry,
            dir,
            config,
        }
    }

    /// `--mirror` and TLS/plain flags that make `build` pull from this registry,
    /// plus a Docker config with its credentials when it wants auth.
    pub fn registry_args(&self) -> Vec<String> {
        let addr = &self.registry.addr;
        let mut args = vec![
            format!("--mirror=proxy.replicated.com={addr}"),
            format!("--mirror=registry.example.com={addr}"),
        ];
        match &self.registry.ca_cert {
            Some(ca) => args.push(format!("--ca-file={}", ca.display())),
            None => args.push(format!("--insecure-registry={addr}")),
        }
        if let Some(credentials) = self.registry.credentials() {
            let docker = self.dir.path().join("docker");
            write_docker_config(&docker, addr, &credentials);
            args.push(format!(
                "--docker-config={}",
                docker.join("config.json").display()
            ));
        }
        args
    }

    /// A path in the scratch dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The repository path of a canonical name, as pushed to the lab registry.
pub fn path_of(name: &str) -> &str {
    name.split_once('/').map_or(name, |(_, path)| path)
}

/// A Docker `config.json` in `dir` with basic-auth credentials for `addr`.
pub fn write_docker_config(dir: &Path, addr: &str, credentials: &str) {
    use base64::Engine;
    std::fs::create_dir_all(dir).expect("docker config dir");
    let auth = base64::engine::general_purpose::STANDARD.encode(credentials);
    let json = serde_json::json!({ "auths": { addr: { "auth": auth } } });
    std::fs::write(dir.join("config.json"), json.to_string()).expect("write docker config");
}

/// A config with one plugin per image, named after the repository.
pub fn config_text(plugins: &[&str]) -> String {
    let mut text = String::from(
        "apiVersion: embeddedcluster.replicated.com/v1beta1\nkind: Config\nspec:\n  extensions:\n    velero:\n      plugins:\n",
    );
    for image in plugins {
        let name = image
            .rsplit('/')
            .next()
            .and_then(|last| last.split(':').next())
            .unwrap_or("plugin");
        text.push_str(&format!(
            "        - name: {name}\n          image: {image}\n"
        ));
    }
    text
}

/// Runs `build` and returns (exit code, stdout JSON or Null, stderr).
pub fn build(sources: &Sources, output: &Path, extra: &[&str]) -> (i32, Value, String) {
    let out = velero_airgap()
        .arg("build")
        .arg("--json")
        .arg("-c")
        .arg(&sources.config)
        .arg("-o")
        .arg(output)
        .args(sources.registry_args())
        .args(extra)
        .env("DOCKER_CONFIG", sources.path("no-docker-config"))
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
