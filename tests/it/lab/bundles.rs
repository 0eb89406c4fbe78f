//! Synthetic images and bundles for the bundle tests: small OCI and Docker images built
//! in memory (config + layers + manifest JSON), plans over them, and a filler that
//! writes every blob through its slot from several threads.

#![allow(dead_code)] // Each test crate uses a different part of this module.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use velero_airgap::bundle::{
    BundlePlan, BundleWriter, ImageRecord, SlotCheck, Tool, VeleroInfo, WrittenBundle,
};
use velero_airgap::oci::{Descriptor, Digest, MediaType};
use velero_airgap::sign::SignatureStatus as Signature;

/// The media types the synthetic images use.
pub const OCI_MANIFEST: MediaType = MediaType::OCI_MANIFEST;
/// An OCI index.
pub const OCI_INDEX: MediaType = MediaType::OCI_INDEX;
/// A Docker v2s2 manifest.
pub const DOCKER_MANIFEST: MediaType = MediaType::DOCKER_MANIFEST;
use velero_airgap::values::Role as ImageRole;

/// Deterministic filler bytes (xorshift), streamed: images differ by seed and rebuild
/// identically, and a large blob never has to sit in memory.
pub struct PseudoRandom(u64);

impl PseudoRandom {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// Fills `buffer`; callers use multiples of 8 bytes except at the very end.
    pub fn fill(&mut self, buffer: &mut [u8]) {
        for word in buffer.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            word.copy_from_slice(&self.0.to_le_bytes()[..word.len()]);
        }
    }
}

/// `len` pseudo-random bytes from `seed`.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    PseudoRandom::new(seed).fill(&mut bytes);
    bytes
}

/// An image: its record, the manifests written inline, the blobs filled through slots.
#[derive(Clone)]
pub struct TestImage {
    pub record: ImageRecord,
    pub manifests: Vec<Vec<u8>>,
    pub blobs: Vec<Vec<u8>>,
}

fn descriptor(media_type: &str, bytes: &[u8]) -> String {
    format!(
        r#"{{"mediaType":"{media_type}","digest":"{}","size":{}}}"#,
        Digest::of(bytes),
        bytes.len()
    )
}

fn record(reference: &str, role: ImageRole, media_type: MediaType, manifest: &[u8]) -> ImageRecord {
    ImageRecord {
        role,
        canonical_reference: reference.to_owned(),
        digest: Digest::of(manifest),
        media_type,
        size: manifest.len() as u64,
        source: reference.to_owned(),
        source_index: None,
        values_fields: vec![],
        signatures: vec![],
        signature: Signature::Unsigned,
        plugin: Default::default(),
    }
}

/// A single-platform image manifest (OCI or Docker media types) over these layers.
fn image_manifest(docker: bool, platform: &str, layers: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
    let (os, architecture) = platform.split_once('/').unwrap_or(("linux", "amd64"));
    let config = format!(
        r#"{{"architecture":"{architecture}","os":"{os}","rootfs":{{"type":"layers","diff_ids":[]}},"config":{{}}}}"#
    )
    .into_bytes();
    let (manifest_type, config_type, layer_type) = if docker {
        (
            DOCKER_MANIFEST,
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    } else {
        (
            OCI_MANIFEST,
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    };
    let layers: Vec<String> = layers
        .iter()
        .map(|layer| descriptor(layer_type, layer))
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{manifest_type}","config":{},"layers":[{}]}}"#,
        descriptor(config_type, &config),
        layers.join(",")
    );
    (manifest.into_bytes(), config)
}

/// A single-platform OCI image.
pub fn oci_image(reference: &str, role: ImageRole, layers: Vec<Vec<u8>>) -> TestImage {
    let (manifest, config) = image_manifest(false, "linux/amd64", &layers);
    let mut blobs = vec![config];
    blobs.extend(layers);
    TestImage {
        record: record(reference, role, OCI_MANIFEST, &manifest),
        manifests: vec![manifest],
        blobs,
    }
}

/// A single-platform Docker v2s2 image.
pub fn docker_image(reference: &str, role: ImageRole, layers: Vec<Vec<u8>>) -> TestImage {
    let (manifest, config) = image_manifest(true, "linux/amd64", &layers);
    let mut blobs = vec![config];
    blobs.extend(layers);
    TestImage {
        record: record(reference, role, DOCKER_MANIFEST, &manifest),
        manifests: vec![manifest],
        blobs,
    }
}

/// One platform's manifest and its blobs.
type PlatformImage = (Vec<u8>, Vec<Vec<u8>>);

/// An OCI index over one manifest per platform, each with one layer.
fn index_over(seed: u64, platforms: &[&str]) -> (Vec<u8>, Vec<PlatformImage>) {
    let mut children = Vec::new();
    let mut entries = Vec::new();
    for (offset, platform) in platforms.iter().enumerate() {
        let layer = pseudo_random(seed + offset as u64, 3000 + offset * 100);
        let (manifest, config) = image_manifest(false, platform, std::slice::from_ref(&layer));
        let (os, architecture) = platform.split_once('/').unwrap_or(("linux", "amd64"));
        entries.push(format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"{architecture}","os":"{os}"}}}}"#,
            Digest::of(&manifest),
            manifest.len()
        ));
        children.push((manifest, vec![config, layer]));
    }
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entries.join(",")
    );
    (index.into_bytes(), children)
}

/// A multi-platform image kept whole: `index.json` lists the index.
pub fn multi_arch_image(
    reference: &str,
    role: ImageRole,
    seed: u64,
    platforms: &[&str],
) -> TestImage {
    let (index, children) = index_over(seed, platforms);
    let mut manifests = vec![index.clone()];
    let mut blobs = Vec::new();
    for (manifest, child_blobs) in children {
        manifests.push(manifest);
        blobs.extend(child_blobs);
    }
    TestImage {
        record: record(reference, role, OCI_INDEX, &index),
        manifests,
        blobs,
    }
}

/// A platform pinned out of a two-platform index: the first platform's manifest is the
/// image, the index is kept as its source index.
pub fn pinned_image(reference: &str, role: ImageRole, seed: u64) -> TestImage {
    let (index, mut children) = index_over(seed, &["linux/amd64", "linux/arm64"]);
    let (manifest, blobs) = children.swap_remove(0);
    let mut record = record(reference, role, OCI_MANIFEST, &manifest);
    record.source_index = Some(Descriptor::of(OCI_INDEX, &index));
    TestImage {
        record,
        manifests: vec![manifest, index],
        blobs,
    }
}

/// Velero, the AWS plugin, a plugin sharing a layer with it, a Docker-typed image, a
/// multi-arch image and a pinned one.
pub fn standard_images() -> Vec<TestImage> {
    let shared = pseudo_random(7, 5000);
    vec![
        oci_image(
            "docker.io/velero/velero:v1.18.1",
            ImageRole::Velero,
            vec![pseudo_random(1, 20_000), pseudo_random(2, 777)],
        ),
        oci_image(
            "docker.io/velero/velero-plugin-for-aws:v1.14.0",
            ImageRole::AwsPlugin,
            vec![shared.clone(), pseudo_random(3, 1234)],
        ),
        oci_image(
            "registry.example.com/acme/plugin:1.2.0",
            ImageRole::Plugin("acme".into()),
            vec![shared, pseudo_random(4, 100)],
        ),
        docker_image(
            "docker.io/library/busybox:1.36",
            ImageRole::Other,
            vec![pseudo_random(5, 4096)],
        ),
        multi_arch_image(
            "registry.example.com/acme/multi:2.0",
            ImageRole::Plugin("multi".into()),
            10,
            &["linux/amd64", "linux/arm64"],
        ),
        pinned_image(
            "registry.example.com/acme/pinned:3.0",
            ImageRole::Plugin("pinned".into()),
            20,
        ),
    ]
}

pub const VALUES_YAML: &[u8] =
    b"image:\n  repository: 10.244.128.11:5000/velero/velero\n  tag: \"v1.18.1\"\n";
pub const CONFIG_YAML: &[u8] =
    b"apiVersion: embeddedcluster.replicated.com/v1beta1\nkind: Config\n";

pub fn plan(images: &[TestImage], source_date_epoch: Option<u64>) -> BundlePlan {
    let render_inputs = velero_airgap::values::RenderInputs::default();
    BundlePlan {
        tool: Tool {
            name: "velero-airgap".into(),
            version: "0.1.0".into(),
        },
        velero: VeleroInfo {
            release: "1.18.1".into(),
            image: "docker.io/velero/velero:v1.18.1".into(),
            aws_plugin_image: "docker.io/velero/velero-plugin-for-aws:v1.14.0".into(),
        },
        platforms: vec!["linux/amd64".into()],
        render_inputs,
        images: images.iter().map(|image| image.record.clone()).collect(),
        config_yaml: CONFIG_YAML.to_vec(),
        values_yaml: VALUES_YAML.to_vec(),
        // Synthetic images carry no programs: the SBOM's content is not what these
        // bundles test.
        sbom_json: b"{}\n".to_vec(),
        inline_blobs: images
            .iter()
            .flat_map(|image| image.manifests.clone())
            .collect(),
        blobs: images
            .iter()
            .flat_map(|image| &image.blobs)
            .map(|blob| velero_airgap::bundle::BlobRef {
                digest: Digest::of(blob),
                size: blob.len() as u64,
            })
            .collect(),
        source_date_epoch,
    }
}

/// Every slot blob by digest.
pub fn blob_map(images: &[TestImage]) -> BTreeMap<Digest, Vec<u8>> {
    images
        .iter()
        .flat_map(|image| &image.blobs)
        .map(|blob| (Digest::of(blob), blob.clone()))
        .collect()
}

/// Fills every pending slot from three threads, in reverse archive order (the hardest
/// order for the follower), writing in small pieces.
pub fn fill(writer: &BundleWriter, blobs: &BTreeMap<Digest, Vec<u8>>) {
    let mut pending = writer.pending();
    pending.reverse();
    let pending = std::sync::Mutex::new(pending);
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                loop {
                    let Some(blob) = pending.lock().unwrap().pop() else {
                        break;
                    };
                    let mut slot = writer.slot(&blob.digest, SlotCheck::Sha256).unwrap();
                    for piece in blobs[&blob.digest].chunks(1000) {
                        slot.write_all(piece).unwrap();
                    }
                    slot.finish().unwrap();
                }
            });
        }
    });
}

pub fn write_bundle(
    path: &Path,
    images: &[TestImage],
    source_date_epoch: Option<u64>,
) -> WrittenBundle {
    let writer = BundleWriter::create(path, plan(images, source_date_epoch)).unwrap();
    fill(&writer, &blob_map(images));
    writer.finish().unwrap()
}

/// The names in a directory, sorted.
pub fn listing(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// One entry of a trusted tar: name, offset of its data in the file, and content.
pub struct ArchiveEntry {
    pub name: String,
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// Entries of a trusted tar (one we just wrote).
pub fn entries_of(path: &Path) -> Vec<ArchiveEntry> {
    use std::io::Read;
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let offset = entry.raw_file_position();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            ArchiveEntry {
                name,
                offset,
                bytes,
            }
        })
        .collect()
}

/// Flips one bit of a file at `offset`.
pub fn flip_byte(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= 0x01;
    file.write_all_at(&byte, offset).unwrap();
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn path_in(directory: &tempfile::TempDir, name: &str) -> PathBuf {
    directory.path().join(name)
}

/// Rewrites an uncompressed bundle the way an attacker who can write it would: `edit`
/// changes entries by name (`bundle.json` last, after its `files` list was brought up to
/// date), then `SHA256SUMS` and the sidecar are recomputed, so only checks beyond the
/// checksums can notice.
pub fn rewrite_with_sums(path: &Path, edit: impl Fn(&str, Vec<u8>) -> Vec<u8>) {
    use std::io::Read;
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut entries: Vec<(tar::Header, String, Vec<u8>)> = archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (entry.header().clone(), name, bytes)
        })
        .collect();
    for (_, name, bytes) in &mut entries {
        if name != "bundle.json" && name != "SHA256SUMS" {
            *bytes = edit(name, std::mem::take(bytes));
        }
    }
    let sizes: BTreeMap<String, (usize, String)> = entries
        .iter()
        .map(|(_, name, bytes)| (name.clone(), (bytes.len(), Digest::of(bytes).hex())))
        .collect();
    for (_, name, bytes) in &mut entries {
        if name == "bundle.json" {
            let mut json: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            for file in json["files"].as_array_mut().unwrap() {
                let (size, sha256) = &sizes[file["name"].as_str().unwrap()];
                file["size"] = (*size).into();
                file["sha256"] = sha256.clone().into();
            }
            *bytes = edit(name, serde_json::to_vec_pretty(&json).unwrap());
        }
    }
    let sums: String = {
        let current: BTreeMap<&str, &Vec<u8>> = entries
            .iter()
            .map(|(_, name, bytes)| (name.as_str(), bytes))
            .collect();
        let old = String::from_utf8(current["SHA256SUMS"].clone()).unwrap();
        old.lines()
            .map(|line| {
                let (_, name) = line.split_once("  ").unwrap();
                format!("{}  {name}\n", Digest::of(current[name]).hex())
            })
            .collect()
    };
    let mut out = tar::Builder::new(Vec::new());
    for (mut header, name, bytes) in entries {
        let bytes = if name == "SHA256SUMS" {
            sums.clone().into_bytes()
        } else {
            bytes
        };
        header.set_size(bytes.len() as u64);
        header.set_cksum();
        out.append(&header, bytes.as_slice()).unwrap();
    }
    let tar = out.into_inner().unwrap();
    std::fs::write(path, &tar).unwrap();
    let name = path.file_name().unwrap().to_string_lossy();
    std::fs::write(
        velero_airgap::bundle::sidecar_path(path),
        format!("{}  {name}\n", Digest::of(&tar).hex()),
    )
    .unwrap();
}
