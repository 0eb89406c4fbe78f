//! Hostile tars built by hand from a good bundle's entries: every trick is refused and
//! reported under the entry's name, and the reader never hands out such an entry.

use std::io::Write;
use std::path::Path;

use crate::lab::bundles::*;
use crate::lab::{peak_rss_kib, read_entry};
use tar::{EntryType, Header};
use velero_airgap::bundle::{
    BundleReader, ProblemKind, ReadError, Refusal, VerifyReport, blob_entry_name, verify,
};
use velero_airgap::oci::Digest;

/// A header with any name at all (the `tar` crate's own setters refuse `..` and `/`).
fn raw_header(name: &[u8], size: u64, entry_type: EntryType) -> Header {
    let mut header = Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(entry_type);
    header.set_cksum();
    header
}

type Entries = Vec<(Header, Vec<u8>)>;

/// The entries of a good plain bundle, re-headed so they can be rearranged.
fn good_entries(directory: &tempfile::TempDir) -> Entries {
    let path = path_in(directory, "good.tar");
    write_bundle(&path, &standard_images(), None);
    entries_of(&path)
        .into_iter()
        .map(|ArchiveEntry { name, bytes, .. }| {
            (
                raw_header(name.as_bytes(), bytes.len() as u64, EntryType::Regular),
                bytes,
            )
        })
        .collect()
}

fn tar_bytes(entries: &Entries) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (header, data) in entries {
        builder.append(header, data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap()
}

fn write_file(directory: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = path_in(directory, name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Verifies, checks the reader only ever yields listed blobs, and returns the report.
fn check(path: &Path) -> VerifyReport {
    if let Ok(mut reader) = BundleReader::open(path) {
        let listed: Vec<String> = reader
            .bundle()
            .files
            .iter()
            .map(|file| file.name.clone())
            .collect();
        while let Some(blob) = reader.next_blob() {
            assert!(listed.contains(&blob_entry_name(&blob.digest())));
        }
    }
    let report = verify(path).unwrap();
    assert!(!report.is_ok(), "{path:?} verified");
    report
}

fn assert_problem(report: &VerifyReport, entry: &str, matches: impl Fn(&ProblemKind) -> bool) {
    assert!(
        report
            .problems
            .iter()
            .any(|problem| problem.entry == entry && matches(&problem.kind)),
        "no expected problem for {entry}: {:#?}",
        report.problems
    );
}

/// Inserts `hostile` among the blobs, writes the tar and verifies it.
fn with_entry(hostile: (Header, Vec<u8>)) -> VerifyReport {
    let directory = temp_dir();
    let mut entries = good_entries(&directory);
    entries.insert(8, hostile);
    check(&write_file(&directory, "hostile.tar", &tar_bytes(&entries)))
}

#[test]
fn refuses_absolute_paths() {
    let report = with_entry((
        raw_header(b"/etc/passwd", 1, EntryType::Regular),
        b"x".to_vec(),
    ));
    assert_problem(&report, "/etc/passwd", |kind| {
        *kind == ProblemKind::Refused(Refusal::AbsolutePath)
    });
}

#[test]
fn refuses_dot_dot() {
    let name = "blobs/sha256/../../../tmp/evil";
    let report = with_entry((
        raw_header(name.as_bytes(), 1, EntryType::Regular),
        b"x".to_vec(),
    ));
    assert_problem(&report, name, |kind| {
        *kind == ProblemKind::Refused(Refusal::DotComponent)
    });
}

#[test]
fn refuses_links_devices_fifos_and_directories() {
    let name = format!("blobs/sha256/{}", "a".repeat(64));
    for (entry_type, refusal) in [
        (EntryType::Symlink, Refusal::Symlink),
        (EntryType::Link, Refusal::Hardlink),
        (EntryType::Char, Refusal::Device),
        (EntryType::Block, Refusal::Device),
        (EntryType::Fifo, Refusal::Fifo),
        (EntryType::Directory, Refusal::Directory),
    ] {
        let mut header = raw_header(name.as_bytes(), 0, entry_type);
        header.set_link_name("/etc/passwd").unwrap();
        header.set_cksum();
        let report = with_entry((header, Vec::new()));
        assert_problem(&report, &name, |kind| {
            *kind == ProblemKind::Refused(refusal)
        });
    }
}

#[test]
fn refuses_pax_and_gnu_long_names() {
    let pax = b"30 path=blobs/sha256/evil/name\n".to_vec();
    let report = with_entry((
        raw_header(b"PaxHeaders/x", pax.len() as u64, EntryType::XHeader),
        pax,
    ));
    assert_problem(&report, "PaxHeaders/x", |kind| {
        *kind == ProblemKind::Refused(Refusal::PaxHeader)
    });

    let long = b"blobs/sha256/very/long/name\0".to_vec();
    let report = with_entry((
        raw_header(b"././@LongLink", long.len() as u64, EntryType::GNULongName),
        long,
    ));
    assert_problem(&report, "././@LongLink", |kind| {
        *kind == ProblemKind::Refused(Refusal::GnuLongName)
    });
}

#[test]
fn refuses_unknown_and_unlisted_names() {
    let report = with_entry((
        raw_header(b"extra.txt", 2, EntryType::Regular),
        b"hi".to_vec(),
    ));
    assert_problem(&report, "extra.txt", |kind| {
        *kind == ProblemKind::OutsideLayout
    });

    let content = b"an unlisted blob".to_vec();
    let name = blob_entry_name(&Digest::of(&content));
    let report = with_entry((
        raw_header(name.as_bytes(), content.len() as u64, EntryType::Regular),
        content,
    ));
    assert_problem(&report, &name, |kind| *kind == ProblemKind::NotListed);
}

#[test]
fn refuses_duplicates_and_reports_order() {
    let directory = temp_dir();
    let mut entries = good_entries(&directory);
    let duplicate = entries[9].clone();
    let duplicate_name = String::from_utf8_lossy(&duplicate.0.path_bytes()).into_owned();
    entries.push(duplicate);
    let report = check(&write_file(
        &directory,
        "duplicate.tar",
        &tar_bytes(&entries),
    ));
    assert_problem(&report, &duplicate_name, |kind| {
        *kind == ProblemKind::Duplicate
    });

    let mut entries = good_entries(&directory);
    entries.swap(7, 8);
    let later = String::from_utf8_lossy(&entries[8].0.path_bytes()).into_owned();
    let report = check(&write_file(&directory, "order.tar", &tar_bytes(&entries)));
    assert_problem(&report, &later, |kind| {
        matches!(kind, ProblemKind::OutOfOrder { .. })
    });
}

#[test]
fn refuses_sizes_that_disagree_with_bundle_json() {
    let directory = temp_dir();
    let mut entries = good_entries(&directory);
    let (header, data) = &mut entries[10];
    let name = String::from_utf8_lossy(&header.path_bytes()).into_owned();
    data.extend_from_slice(b"more");
    header.set_size(data.len() as u64);
    header.set_cksum();
    let report = check(&write_file(&directory, "size.tar", &tar_bytes(&entries)));
    assert_problem(&report, &name, |kind| {
        matches!(kind, ProblemKind::SizeMismatch { .. })
    });
}

#[test]
fn leading_entries_out_of_place_make_the_bundle_unusable() {
    let directory = temp_dir();
    let mut entries = good_entries(&directory);
    entries.swap(1, 2);
    let path = write_file(&directory, "swapped.tar", &tar_bytes(&entries));
    assert!(matches!(
        BundleReader::open(&path),
        Err(ReadError::Unusable { .. })
    ));
    let report = check(&path);
    assert_problem(&report, "bundle.json", |kind| {
        matches!(kind, ProblemKind::OutOfOrder { .. })
    });

    let mut entries = good_entries(&directory);
    let mut link = raw_header(b"oci-layout", 0, EntryType::Symlink);
    link.set_link_name("/etc/passwd").unwrap();
    link.set_cksum();
    entries[0] = (link, Vec::new());
    let report = check(&write_file(
        &directory,
        "link-first.tar",
        &tar_bytes(&entries),
    ));
    assert_problem(&report, "oci-layout", |kind| {
        *kind == ProblemKind::Refused(Refusal::Symlink)
    });
}

/// `tar` followed by `zeros` zero bytes, zstd-compressed: one frame of 1 MiB of zeros
/// repeated (concatenated frames decode as one stream), so building it is cheap too.
fn zstd_with_zeros(tar: &[u8], zeros: u64) -> Vec<u8> {
    let mut bomb = zstd::encode_all(tar, 1).unwrap();
    let block = zstd::encode_all(&vec![0u8; 1 << 20][..], 1).unwrap();
    for _ in 0..zeros >> 20 {
        bomb.extend_from_slice(&block);
    }
    bomb
}

#[test]
fn compressed_bombs_stop_at_the_declared_total() {
    let directory = temp_dir();
    let mut entries = good_entries(&directory);
    let tar = tar_bytes(&entries);

    // Zeros after the archive: the reader stops within the slack.
    let bomb = zstd_with_zeros(&tar, 8 << 30);
    assert!(bomb.len() < 1 << 20, "the bomb is small on disk");
    let report = check(&write_file(&directory, "tail-bomb.tar.zst", &bomb));
    assert_problem(&report, "tail-bomb.tar.zst", |kind| {
        *kind == ProblemKind::TrailingData
    });

    // An extra entry claiming 8 GiB is refused from its header, before its data.
    let mut with_header = tar[..tar.len() - 1024].to_vec();
    with_header.extend_from_slice(raw_header(b"zeros.bin", 8 << 30, EntryType::Regular).as_bytes());
    let bomb = zstd_with_zeros(&with_header, 8 << 30);
    let report = check(&write_file(&directory, "entry-bomb.tar.zst", &bomb));
    assert_problem(&report, "zeros.bin", |kind| {
        matches!(kind, ProblemKind::ExpandsPastDeclared { .. })
    });

    // A leading file far over its limit.
    entries[5].0.set_size(3 << 30);
    entries[5].0.set_cksum();
    entries[5].1 = Vec::new();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar_bytes(&entries[..6].to_vec())).unwrap();
    let report = check(&write_file(
        &directory,
        "values-bomb.tar.gz",
        &gz.finish().unwrap(),
    ));
    assert_problem(&report, "values.yaml", |kind| {
        matches!(kind, ProblemKind::TooLarge { .. })
    });
}

#[test]
fn a_second_zstd_frame_is_trailing_data() {
    let directory = temp_dir();
    let tar = tar_bytes(&good_entries(&directory));
    let mut two_frames = zstd::encode_all(&tar[..], 1).unwrap();
    // Zeros, which a reader tolerates after the end marker within one tar record: as a
    // frame of their own they are still data after the stream.
    two_frames.extend(zstd::encode_all(&[0u8; 512][..], 1).unwrap());
    let report = check(&write_file(&directory, "two-frames.tar.zst", &two_frames));
    assert_problem(&report, "two-frames.tar.zst", |kind| {
        *kind == ProblemKind::TrailingData
    });
    let one_frame = zstd::encode_all(&tar[..], 1).unwrap();
    let report = verify(&write_file(&directory, "one-frame.tar.zst", &one_frame)).unwrap();
    assert!(report.is_ok(), "{:#?}", report.problems);
}

/// `bundle.json` is parsed into typed records: a document of millions of numbers costs
/// what its text does, in every command that reads it, and one past the limit is refused
/// from its header.
#[test]
fn a_bundle_json_full_of_numbers_stays_within_the_memory_bound() {
    let directory = temp_dir();
    let path = path_in(&directory, "padded.tar");
    write_bundle(&path, &standard_images(), None);
    let numbers = format!("[{}0]", "0,".repeat(1_950_000));
    let pad = |bytes: Vec<u8>, key: &str, numbers: &str| {
        let text = String::from_utf8(bytes).unwrap();
        text.replacen(key, &format!("{key}\"padding\": {numbers},"), 1)
            .into_bytes()
    };
    rewrite_with_sums(&path, |name, bytes| {
        if name == "bundle.json" {
            pad(bytes, "\"renderInputs\": {", &numbers)
        } else {
            bytes
        }
    });
    let size = read_entry(&path, "bundle.json").len();
    assert!((3 << 20..4 << 20).contains(&size), "{size}");
    let config = path_in(&directory, "config.yaml");
    std::fs::write(&config, CONFIG_YAML).unwrap();
    let commands: [&[&std::ffi::OsStr]; 3] = [
        &["verify".as_ref(), path.as_os_str()],
        &["inspect".as_ref(), path.as_os_str()],
        &[
            "render".as_ref(),
            "-c".as_ref(),
            config.as_os_str(),
            "--lock".as_ref(),
            path.as_os_str(),
        ],
    ];
    for args in commands {
        let (code, stderr, rss) = peak_rss_kib(args);
        assert!(rss < 256 << 10, "{args:?}: {rss} KiB\n{stderr}");
        assert_ne!(code, 101, "{args:?} panicked: {stderr}");
    }

    // Past the limit: refused before it is read.
    write_bundle(&path, &standard_images(), None);
    let more = format!("[{}0]", "0,".repeat(2_200_000));
    rewrite_with_sums(&path, |name, bytes| {
        if name == "bundle.json" {
            pad(bytes, "\"renderInputs\": {", &more)
        } else {
            bytes
        }
    });
    let (code, stderr, _) = peak_rss_kib(&["verify".as_ref(), path.as_os_str()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("bundle.json"), "{stderr}");
}
