//! Bundles written from synthetic images: they verify, rebuild byte for byte, read back
//! through the streaming reader, summarise, and catch tampering by entry name.

use std::io::{Read, Write};
use std::process::Command;

use crate::lab::bundles::*;
use velero_airgap::bundle::{
    BundleReader, BundleWriter, Compression, PassEvent, PassProgress, ProblemKind, SidecarStatus,
    SlotCheck, WriteError, inspect, verify, verify_keeping,
};
use velero_airgap::oci::Digest;
use velero_airgap::values::Role as ImageRole;

const NAMES: [&str; 3] = ["bundle.tar", "bundle.tar.zst", "bundle.tar.gz"];

#[test]
fn every_compression_round_trips_and_verifies() {
    let images = standard_images();
    let directory = temp_dir();
    for (name, compression) in
        NAMES
            .iter()
            .zip([Compression::None, Compression::Zstd, Compression::Gzip])
    {
        let path = path_in(&directory, name);
        let written = write_bundle(&path, &images, None);
        assert_eq!(written.compression, compression);
        assert_eq!(written.size, std::fs::metadata(&path).unwrap().len());
        assert_eq!(written.sha256, Digest::of(&std::fs::read(&path).unwrap()));

        let report = verify(&path).unwrap();
        assert!(report.is_ok(), "{name}: {:#?}", report.problems);
        assert_eq!(report.compression, compression);
        assert_eq!(report.sidecar, SidecarStatus::Matched);
        assert_eq!(report.sha256, Some(written.sha256));
        assert_eq!(report.images, images.len());
        assert_eq!(report.blobs, blob_count(&images));
        assert_eq!(inspect(&path).unwrap().blobs.blobs, blob_count(&images));

        // The pass reports every byte of the file it reads, from its own thread.
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = std::sync::Arc::clone(&seen);
        let progress: PassProgress = std::sync::Arc::new(move |event| {
            record.lock().unwrap().push(event);
        });
        let (report, _) = verify_keeping(&path, Some(progress)).unwrap();
        assert!(report.is_ok());
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.first(),
            Some(&PassEvent::Started {
                file_size: written.size
            })
        );
        let read: u64 = seen
            .iter()
            .map(|event| match event {
                PassEvent::Read { bytes } => *bytes,
                PassEvent::Started { .. } => 0,
            })
            .sum();
        assert_eq!(read, written.size, "{name}");
    }
    // The sidecar works with no tool installed, and nothing else was left behind.
    let status = Command::new("sha256sum")
        .args(["--check", "--strict"])
        .args(NAMES.map(|name| format!("{name}.sha256")))
        .current_dir(directory.path())
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let mut expected: Vec<String> = NAMES
        .iter()
        .flat_map(|name| [name.to_string(), format!("{name}.sha256")])
        .collect();
    expected.sort();
    assert_eq!(listing(directory.path()), expected);

    // Modes are those of any new file, not a temp file's private 0600.
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode();
    let plain = path_in(&directory, "plain");
    std::fs::File::create(&plain).unwrap();
    for name in expected {
        assert_eq!(mode(&path_in(&directory, &name)), mode(&plain), "{name}");
    }
}

/// Config and layer blobs, each once: what every command counts as blobs.
fn blob_count(images: &[TestImage]) -> usize {
    let mut digests: Vec<Digest> = images
        .iter()
        .flat_map(|image| &image.blobs)
        .map(|blob| Digest::of(blob))
        .collect();
    digests.sort();
    digests.dedup();
    digests.len()
}

#[test]
fn layout_follows_the_spec() {
    let images = standard_images();
    let directory = temp_dir();
    let path = path_in(&directory, "b.tar");
    write_bundle(&path, &images, Some(1_700_000_000));
    let entries = entries_of(&path);
    let names: Vec<&str> = entries.iter().map(|entry| entry.name.as_str()).collect();
    assert_eq!(
        names[..7],
        [
            "oci-layout",
            "SHA256SUMS",
            "bundle.json",
            "index.json",
            "config.yaml",
            "values.yaml",
            "sbom.cdx.json"
        ]
    );
    let blobs = &names[7..];
    assert!(blobs.iter().all(|name| name.starts_with("blobs/sha256/")));
    assert!(blobs.is_sorted(), "blobs not sorted by digest");

    let mut archive = tar::Archive::new(std::fs::File::open(&path).unwrap());
    for entry in archive.entries().unwrap() {
        let header = entry.unwrap().header().clone();
        assert_eq!(header.mode().unwrap(), 0o644);
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        assert_eq!(header.mtime().unwrap(), 1_700_000_000);
        assert_eq!(header.username_bytes(), Some(&b""[..]));
        assert_eq!(header.entry_type(), tar::EntryType::Regular);
        assert!(header.as_ustar().is_some());
    }

    let sums = String::from_utf8(entries[1].bytes.clone()).unwrap();
    let summed: Vec<&str> = sums.lines().map(|line| &line[66..]).collect();
    let mut expected: Vec<&str> = names.clone();
    expected.remove(1);
    assert_eq!(
        summed, expected,
        "SHA256SUMS covers every other file in archive order"
    );

    let bundle: serde_json::Value = serde_json::from_slice(&entries[2].bytes).unwrap();
    assert_eq!(bundle["formatVersion"], 2);
    assert_eq!(bundle["buildTime"], "2023-11-14T22:13:20Z");
    let files: Vec<&str> = bundle["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["name"].as_str().unwrap())
        .collect();
    let mut expected = expected.clone();
    expected.remove(1);
    assert_eq!(
        files, expected,
        "bundle.json lists all but itself and SHA256SUMS"
    );
    let pinned = &bundle["images"][5];
    assert_eq!(pinned["sourceIndex"]["mediaType"], OCI_INDEX.as_str());
    assert_eq!(
        bundle["images"][4]["manifests"].as_array().unwrap().len(),
        3
    );

    let index: serde_json::Value = serde_json::from_slice(&entries[3].bytes).unwrap();
    let references: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            entry["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    let canonical: Vec<&str> = images
        .iter()
        .map(|image| image.record.canonical_reference.as_str())
        .collect();
    assert_eq!(
        references, canonical,
        "index.json names each image once, canonically"
    );
}

#[test]
fn rebuilds_are_byte_identical() {
    let images = standard_images();
    for name in NAMES {
        let first = temp_dir();
        let second = temp_dir();
        let a = write_bundle(&path_in(&first, name), &images, None);
        // Fill the second one in archive order, from one thread, in bigger pieces.
        let path = path_in(&second, name);
        let writer = BundleWriter::create(&path, plan(&images, None)).unwrap();
        let blobs = blob_map(&images);
        for blob in writer.pending() {
            let mut slot = writer.slot(&blob.digest, SlotCheck::SizeOnly).unwrap();
            slot.write_all(&blobs[&blob.digest]).unwrap();
            slot.finish().unwrap();
        }
        let b = writer.finish().unwrap();
        assert_eq!(a.sha256, b.sha256, "{name}");
        assert_eq!(
            std::fs::read(&a.path).unwrap(),
            std::fs::read(&b.path).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn reader_streams_blobs_by_digest() {
    let images = standard_images();
    let directory = temp_dir();
    let path = path_in(&directory, "b.tar.zst");
    write_bundle(&path, &images, None);
    let mut expected = blob_map(&images);
    for image in &images {
        for manifest in &image.manifests {
            expected.insert(Digest::of(manifest), manifest.clone());
        }
    }

    let mut reader = BundleReader::open(&path).unwrap();
    assert_eq!(reader.values_yaml(), VALUES_YAML);
    assert_eq!(reader.config_yaml(), CONFIG_YAML);
    assert_eq!(reader.bundle().images.len(), images.len());
    let mut seen = Vec::new();
    let mut manifests = Vec::new();
    while let Some(mut blob) = reader.next_blob() {
        let digest = blob.digest();
        if blob.is_manifest() {
            manifests.push(digest);
        }
        // Read some blobs fully, some partly, skip others: the reader hashes the rest.
        if seen.len() % 3 != 2 {
            let mut content = Vec::new();
            blob.read_to_end(&mut content).unwrap();
            assert_eq!(content, expected[&digest]);
        } else {
            let mut first = [0u8; 1];
            blob.read_exact(&mut first).ok();
        }
        seen.push(digest);
    }
    for digest in &manifests {
        assert_eq!(
            reader.manifest_blob(digest),
            Some(expected[digest].as_slice())
        );
    }
    assert_eq!(seen, expected.keys().copied().collect::<Vec<_>>());
    let report = reader.finish();
    assert!(report.is_ok(), "{:#?}", report.problems);
}

#[test]
fn inspect_summarises_from_the_leading_entries() {
    let images = standard_images();
    let directory = temp_dir();
    let path = path_in(&directory, "b.tar.gz");
    write_bundle(&path, &images, None);
    let summary = inspect(&path).unwrap();
    assert_eq!(summary.format_version, 2);
    assert_eq!(summary.velero.release, "1.18.1");
    assert_eq!(summary.compression, Compression::Gzip);
    assert_eq!(summary.images.len(), images.len());
    assert_eq!(summary.images[0].role, ImageRole::Velero);
    let velero_size: u64 = images[0]
        .manifests
        .iter()
        .chain(&images[0].blobs)
        .map(|b| b.len() as u64)
        .sum();
    assert_eq!(summary.images[0].size, velero_size);
    assert!(summary.problems.is_empty());
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["images"][2]["role"], "plugin:acme");
    assert_eq!(json["images"][0]["signature"]["status"], "unsigned");
}

/// Writes a plain bundle and returns its path and entries (name, data offset, bytes).
fn tamper_target() -> (tempfile::TempDir, std::path::PathBuf, Vec<ArchiveEntry>) {
    let directory = temp_dir();
    let path = path_in(&directory, "b.tar");
    write_bundle(&path, &standard_images(), None);
    let entries = entries_of(&path);
    (directory, path, entries)
}

fn problem_entries(path: &std::path::Path) -> Vec<String> {
    let report = verify(path).unwrap();
    assert!(!report.is_ok());
    report.problems.iter().map(ToString::to_string).collect()
}

#[test]
fn flipped_byte_in_a_blob_names_the_blob() {
    let (_directory, path, entries) = tamper_target();
    let ArchiveEntry {
        name,
        offset,
        bytes,
    } = entries
        .iter()
        .max_by_key(|entry| entry.bytes.len())
        .unwrap();
    flip_byte(&path, offset + bytes.len() as u64 / 2);
    let problems = problem_entries(&path);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("{name}: sha256 mismatch"))),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("b.tar.sha256: ")),
        "{problems:#?}"
    );
}

#[test]
fn flipped_byte_in_values_names_values() {
    let (_directory, path, entries) = tamper_target();
    let ArchiveEntry { offset, .. } = entries
        .iter()
        .find(|entry| entry.name == "values.yaml")
        .unwrap();
    flip_byte(&path, offset + 3);
    let problems = problem_entries(&path);
    assert!(
        problems[0].starts_with("values.yaml: sha256 mismatch"),
        "{problems:#?}"
    );
}

#[test]
fn flipped_byte_in_bundle_json_names_bundle_json() {
    for position in [0.5, 0.0] {
        let (_directory, path, entries) = tamper_target();
        let ArchiveEntry { offset, bytes, .. } = entries
            .iter()
            .find(|entry| entry.name == "bundle.json")
            .unwrap();
        // In the middle (a value changes) and at the start (the JSON breaks).
        flip_byte(&path, offset + (bytes.len() as f64 * position) as u64);
        let problems = problem_entries(&path);
        assert!(
            problems[0].starts_with("bundle.json: sha256 mismatch"),
            "{problems:#?}"
        );
    }
}

#[test]
fn truncated_file_names_the_entry_cut() {
    let (_directory, path, entries) = tamper_target();
    let ArchiveEntry {
        name,
        offset,
        bytes,
    } = entries
        .iter()
        .max_by_key(|entry| entry.bytes.len())
        .unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(offset + bytes.len() as u64 / 2).unwrap();
    let report = verify(&path).unwrap();
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert!(
        report.problems.iter().any(|problem| problem.entry == *name
            && matches!(problem.kind, ProblemKind::Truncated { .. })),
        "{problems:#?}"
    );
}

#[test]
fn slots_refuse_wrong_content() {
    let images = standard_images();
    let directory = temp_dir();
    let path = path_in(&directory, "b.tar");
    let writer = BundleWriter::create(&path, plan(&images, None)).unwrap();
    let blobs = blob_map(&images);
    let (digest, content) = blobs.iter().next().unwrap();

    let mut slot = writer.slot(digest, SlotCheck::Sha256).unwrap();
    assert!(matches!(
        writer.slot(digest, SlotCheck::Sha256),
        Err(WriteError::SlotBusy { .. })
    ));
    let error = slot
        .write_all(&[content.as_slice(), b"x"].concat())
        .unwrap_err();
    assert!(error.to_string().contains("longer than"), "{error}");
    drop(slot);

    let mut slot = writer.slot(digest, SlotCheck::SizeOnly).unwrap();
    slot.write_all(&content[1..]).unwrap();
    assert!(matches!(
        slot.finish(),
        Err(WriteError::BlobTooShort { .. })
    ));

    let mut slot = writer.slot(digest, SlotCheck::Sha256).unwrap();
    let mut wrong = content.clone();
    wrong[0] ^= 1;
    slot.write_all(&wrong).unwrap();
    assert!(matches!(
        slot.finish(),
        Err(WriteError::BlobDigestMismatch { .. })
    ));

    let inline = Digest::of(&images[0].manifests[0]);
    assert!(matches!(
        writer.slot(&inline, SlotCheck::Sha256),
        Err(WriteError::NoSlot { .. })
    ));

    let mut slot = writer.slot(digest, SlotCheck::Sha256).unwrap();
    slot.write_all(content).unwrap();
    slot.finish().unwrap();
    assert!(matches!(
        writer.slot(digest, SlotCheck::Sha256),
        Err(WriteError::SlotFilled { .. })
    ));

    match writer.finish() {
        Err(WriteError::Unfilled { digests }) => assert_eq!(digests.len(), blobs.len() - 1),
        other => panic!("expected Unfilled, got {other:?}"),
    }
    assert!(
        listing(directory.path()).is_empty(),
        "{:?}",
        listing(directory.path())
    );
}

#[test]
fn abandoned_writer_leaves_nothing() {
    let images = standard_images();
    let directory = temp_dir();
    for name in NAMES {
        let writer = BundleWriter::create(&path_in(&directory, name), plan(&images, None)).unwrap();
        let blobs = blob_map(&images);
        let (digest, content) = blobs.iter().next().unwrap();
        let mut slot = writer.slot(digest, SlotCheck::Sha256).unwrap();
        slot.write_all(&content[..10]).unwrap();
        assert!(!listing(directory.path()).is_empty());
        drop(writer);
        // The slot outlives the writer; finishing it now is refused, harmlessly.
        slot.write_all(&content[10..]).unwrap();
        assert!(matches!(slot.finish(), Err(WriteError::Abandoned)));
        assert!(
            listing(directory.path()).is_empty(),
            "{:?}",
            listing(directory.path())
        );
    }
}

#[test]
fn plans_that_disagree_with_their_manifests_are_refused() {
    let mut images = standard_images();
    let directory = temp_dir();
    let path = path_in(&directory, "b.tar");
    images[0].blobs.pop();
    let error = BundleWriter::create(&path, plan(&images, None)).unwrap_err();
    assert!(
        error.to_string().contains("which is not in the bundle"),
        "{error}"
    );

    let mut images = standard_images();
    images.push(images[0].clone());
    let error = BundleWriter::create(&path, plan(&images, None)).unwrap_err();
    assert!(error.to_string().contains("listed twice"), "{error}");

    let error = BundleWriter::create(
        &path_in(&directory, "b.zip"),
        plan(&standard_images(), None),
    )
    .unwrap_err();
    assert!(matches!(error, WriteError::UnsupportedFileName { .. }));
    assert!(listing(directory.path()).is_empty());
}

#[test]
fn async_slots_fill_from_tokio_tasks() {
    use tokio::io::AsyncWriteExt;
    let images = standard_images();
    let directory = temp_dir();
    let path = path_in(&directory, "b.tar");
    let writer = BundleWriter::create(&path, plan(&images, None)).unwrap();
    let blobs = blob_map(&images);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = writer
            .pending()
            .into_iter()
            .map(|blob| {
                let mut slot = writer.slot(&blob.digest, SlotCheck::Sha256).unwrap();
                let content = blobs[&blob.digest].clone();
                tokio::spawn(async move {
                    AsyncWriteExt::write_all(&mut slot, &content).await.unwrap();
                    slot.finish().unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    writer.finish().unwrap();
    assert!(verify(&path).unwrap().is_ok());
}

#[test]
fn skopeo_reads_oci_images_from_a_bundle() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("skopeo not installed; skipped");
        return;
    }
    let images = standard_images();
    let directory = temp_dir();
    let path = path_in(&directory, "b.tar");
    write_bundle(&path, &images, None);
    let scratch = temp_dir();
    for image in images
        .iter()
        .filter(|image| image.record.media_type != DOCKER_MANIFEST)
    {
        let reference = &image.record.canonical_reference;
        let output = Command::new("skopeo")
            .args(["--tmpdir", &scratch.path().to_string_lossy()])
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}:{reference}", path.display()))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{reference}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            Digest::of(&output.stdout),
            image.record.digest,
            "{reference}: skopeo returns the manifest byte for byte"
        );
    }
    // And it resolves a whole image through the layout (config and layer list).
    let output = Command::new("skopeo")
        .args(["--tmpdir", &scratch.path().to_string_lossy()])
        .arg("inspect")
        .arg(format!(
            "oci-archive:{}:registry.example.com/acme/plugin:1.2.0",
            path.display()
        ))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let inspected: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2);
}

/// `inspect` reads only the leading entries, and still tells a file cut short.
#[test]
fn inspect_warns_of_a_file_shorter_than_declared() {
    let directory = temp_dir();
    let path = path_in(&directory, "bundle.tar");
    let written = write_bundle(&path, &standard_images(), None);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(written.size / 2).unwrap();
    let out = crate::lab::velero_airgap()
        .arg("inspect")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [format!(
            "warning: bundle.tar: the file holds {} bytes, but bundle.json describes an archive of {} bytes: it was cut short; copy it again",
            written.size / 2,
            written.size
        )],
    );
}

/// A file that is not a bundle is called so, whatever its first bytes are.
#[test]
fn a_file_that_is_not_a_bundle_is_called_so() {
    let directory = temp_dir();
    let junk = path_in(&directory, "junk.tar");
    std::fs::write(&junk, pseudo_random(7, 10_000)).unwrap();
    let other = path_in(&directory, "other.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&other).unwrap());
    let mut header = tar::Header::new_ustar();
    header.set_size(5);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder
        .append_data(&mut header, "hello.txt", &b"hello"[..])
        .unwrap();
    builder.finish().unwrap();
    drop(builder);
    for (path, reason) in [
        (&junk, "it is not a tar archive (plain, zstd or gzip)"),
        (
            &other,
            "it is a tar archive whose first entry is \"hello.txt\", not oci-layout",
        ),
    ] {
        let out = crate::lab::velero_airgap()
            .arg("inspect")
            .arg(path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "error: {} is not a velero-airgap bundle: {reason}\n",
                path.display()
            )
        );
        let out = crate::lab::velero_airgap()
            .arg("verify")
            .arg(path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).lines().next(),
            Some(
                format!(
                    "{}: {name}: not a velero-airgap bundle: {reason}",
                    path.display()
                )
                .as_str()
            )
        );
    }
}
