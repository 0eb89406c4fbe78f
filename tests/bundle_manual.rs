//! Manual runs, not tests (all `#[ignore]`): write bundles to a chosen path for checks
//! with outside tools (`ctr images import`) and time `verify` on a large bundle.
//!
//! ```text
//! cargo test --release --test bundle_manual -- --ignored --nocapture write_large
//! BUNDLE_PATH=/tmp/big.tar BUNDLE_MIB=1024 <test binary> --ignored --exact write_large
//! BUNDLE_PATH=/tmp/big.tar <test binary> --ignored --exact verify_bundle
//! ```

mod bundle_support;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use bundle_support::*;
use velero_airgap::bundle::{BlobRef, BundleWriter, Sha256Digest, SlotCheck, verify};
use velero_airgap::values::Role as ImageRole;

fn target() -> PathBuf {
    std::env::var_os("BUNDLE_PATH")
        .map(PathBuf::from)
        .expect("set BUNDLE_PATH to the bundle file")
}

/// The standard synthetic images, for tools such as `ctr images import`.
#[test]
#[ignore]
fn write_standard() {
    let written = write_bundle(&target(), &standard_images(), None);
    println!("{written:#?}");
}

const PIECE: usize = 1 << 20;

/// Streams `size` bytes of seeded data to `sink` in 1 MiB pieces.
fn stream(seed: u64, size: u64, mut sink: impl FnMut(&[u8])) {
    let mut generator = PseudoRandom::new(seed);
    let mut buffer = vec![0u8; PIECE];
    let mut left = size;
    while left > 0 {
        let length = left.min(PIECE as u64) as usize;
        generator.fill(&mut buffer[..length]);
        sink(&buffer[..length]);
        left -= length as u64;
    }
}

/// Four large layers (`BUNDLE_MIB` in all, default 1024) in one image, filled from four
/// threads at once through their slots.
#[test]
#[ignore]
fn write_large() {
    let total: u64 = std::env::var("BUNDLE_MIB").map_or(1024, |mib| mib.parse().unwrap()) << 20;
    let sizes: Vec<u64> = (0..4).map(|index| total / 4 + index * 4099).collect();
    let digests: Vec<Sha256Digest> = sizes
        .iter()
        .enumerate()
        .map(|(seed, size)| {
            let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
            stream(seed as u64, *size, |bytes| {
                sha2::Digest::update(&mut hasher, bytes)
            });
            Sha256Digest::from_hasher(hasher)
        })
        .collect();
    // A tiny image whose plan is then given the large layers instead of its own.
    let mut image = oci_image("registry.example.com/big/image:1", ImageRole::Other, vec![]);
    let layers: Vec<String> = digests
        .iter()
        .zip(&sizes)
        .map(|(digest, size)| {
            format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{digest}","size":{size}}}"#)
        })
        .collect();
    let manifest = String::from_utf8(image.manifests[0].clone())
        .unwrap()
        .replace(
            r#""layers":[]"#,
            &format!(r#""layers":[{}]"#, layers.join(",")),
        );
    image.record.digest = Sha256Digest::of(manifest.as_bytes());
    image.record.size = manifest.len() as u64;
    image.manifests = vec![manifest.into_bytes()];
    let small_blobs = blob_map(std::slice::from_ref(&image));
    let mut plan = plan(&[image], None);
    plan.blobs
        .extend(digests.iter().zip(&sizes).map(|(digest, size)| BlobRef {
            digest: *digest,
            size: *size,
        }));

    let started = Instant::now();
    let writer = BundleWriter::create(&target(), plan).unwrap();
    std::thread::scope(|scope| {
        for blob in writer.pending() {
            let (writer, small_blobs) = (&writer, &small_blobs);
            let seed = digests.iter().position(|digest| *digest == blob.digest);
            scope.spawn(move || {
                let mut slot = writer.slot(&blob.digest, SlotCheck::SizeOnly).unwrap();
                match seed {
                    Some(seed) => stream(seed as u64, blob.size, |bytes| {
                        slot.write_all(bytes).unwrap()
                    }),
                    None => slot.write_all(&small_blobs[&blob.digest]).unwrap(),
                }
                slot.finish().unwrap();
            });
        }
    });
    let written = writer.finish().unwrap();
    println!(
        "wrote {} bytes in {:.2?}: {}",
        written.size,
        started.elapsed(),
        written.sha256
    );
}

#[test]
#[ignore]
fn verify_bundle() {
    let started = Instant::now();
    let report = verify(&target()).unwrap();
    let elapsed = started.elapsed();
    for problem in &report.problems {
        println!("{problem}");
    }
    println!(
        "verified {} blobs, {} bytes in {elapsed:.2?}: sidecar {:?}, {}",
        report.blobs,
        report.file_size,
        report.sidecar,
        if report.is_ok() { "ok" } else { "PROBLEMS" }
    );
    assert!(report.is_ok());
}
