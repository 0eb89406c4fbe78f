//! Tests of the Go build information scanner: hand-built blobs, chunk boundaries, false
//! magics, hostile lengths, and a real binary built by `go` when it is installed.

use super::*;
use crate::plugin::test_support::{ElfBuilder, SENTINEL_END, go_buildinfo, uvarint};

const MODULE_INFO: &str = "path\texample.com/velero-plugin-for-test\n\
    mod\texample.com/velero-plugin-for-test\t(devel)\t\n\
    dep\tgithub.com/sirupsen/logrus\tv1.9.3\th1:abc=\n\
    dep\tgithub.com/vmware-tanzu/velero\tv1.16.1\th1:def=\n\
    =>\tgithub.com/example/velero-fork\tv1.16.2-fork.1\th1:ghi=\n\
    build\t-compiler=gc\n\
    build\tCGO_ENABLED=0\n";

fn scan(bytes: &[u8], chunk: usize) -> Option<GoBuildInfo> {
    let mut scanner = GoBuildInfoScanner::new();
    for piece in bytes.chunks(chunk) {
        scanner.feed(piece);
    }
    scanner.finish()
}

fn binary_with(blob: &[u8]) -> Vec<u8> {
    ElfBuilder::amd64().trailer(blob).build()
}

#[test]
fn parses_a_hand_built_blob_at_any_chunk_size() {
    let binary = binary_with(&go_buildinfo("go1.22.4", MODULE_INFO));
    for chunk in [1, 3, 15, 16, 17, 100, 1 << 20] {
        let info = scan(&binary, chunk).unwrap();
        assert_eq!(info.go_version, "go1.22.4");
        assert_eq!(
            info.path.as_deref(),
            Some("example.com/velero-plugin-for-test")
        );
        let main = info.main.as_ref().unwrap();
        assert_eq!(
            (main.path.as_str(), main.version.as_str()),
            ("example.com/velero-plugin-for-test", "(devel)")
        );
        assert_eq!(info.deps.len(), 2);
        assert_eq!(
            info.deps[1].replace.as_ref().unwrap().path,
            "github.com/example/velero-fork"
        );
        // A replacement by another module version wins.
        assert_eq!(info.velero_version().as_deref(), Some("v1.16.2-fork.1"));
        assert_eq!(info.setting("CGO_ENABLED"), Some("0"));
    }
}

#[test]
fn local_directory_replacement_keeps_the_required_version() {
    let text = "dep\tgithub.com/vmware-tanzu/velero\tv1.16.1\n=>\t./velero-stub\t(devel)\t\n";
    let info = scan(&binary_with(&go_buildinfo("go1.19.8", text)), 4096).unwrap();
    let replacement = info.deps[0].replace.as_ref().unwrap();
    assert_eq!(
        (replacement.path.as_str(), replacement.version.as_str()),
        ("./velero-stub", "")
    );
    assert_eq!(info.velero_version().as_deref(), Some("v1.16.1"));
}

#[test]
fn velero_itself_and_programs_without_velero() {
    let text = "mod\tgithub.com/vmware-tanzu/velero\tv1.18.2\th1:x=\n";
    let info = scan(&go_buildinfo("go1.24.1", text), 64).unwrap();
    assert_eq!(info.velero_version().as_deref(), Some("v1.18.2"));
    let text = "mod\texample.com/tool\tv0.1.0\t\n";
    let info = scan(&go_buildinfo("go1.24.1", text), 64).unwrap();
    assert_eq!(info.velero_version(), None);
}

#[test]
fn unframed_module_info_is_dropped_as_go_does() {
    let mut blob = b"\xff Go buildinf:\x08\x02".to_vec();
    blob.resize(32, 0);
    blob.extend(uvarint(8));
    blob.extend_from_slice(b"go1.21.0");
    blob.extend(uvarint(20));
    blob.extend_from_slice(b"mod\tx\tv1\t\nno framing");
    let info = scan(&blob, 7).unwrap();
    assert_eq!(info.go_version, "go1.21.0");
    assert_eq!(info.main, None);
}

#[test]
fn false_and_unaligned_magics_are_skipped() {
    let real = go_buildinfo("go1.23.0", MODULE_INFO);
    let mut file = vec![0u8; 48];
    // Unaligned magic, then an aligned one whose version is not a Go version, then the blob.
    file[3..17].copy_from_slice(b"\xff Go buildinf:");
    file.extend_from_slice(b"\xff Go buildinf:\x08\x02");
    file.resize(file.len() + 16, 0);
    file.extend(uvarint(4));
    file.extend_from_slice(b"nope");
    file.resize(file.len().next_multiple_of(16) + 32, 0xff);
    file.extend_from_slice(&real);
    for chunk in [1, 5, 16, 29, 4096] {
        let info = scan(&file, chunk).unwrap();
        assert_eq!(info.go_version, "go1.23.0", "chunk {chunk}");
    }
    // The false magic alone, cut short at the end of the file, is no blob.
    assert_eq!(scan(&file[..60], 8), None);
}

#[test]
fn pointer_format_is_reported_absent() {
    let mut blob = b"\xff Go buildinf:\x08\x00".to_vec();
    blob.resize(64, 0x11);
    assert_eq!(scan(&binary_with(&blob), 4096), None);
}

#[test]
fn hostile_lengths_are_not_trusted() {
    let mut blob = b"\xff Go buildinf:\x08\x02".to_vec();
    blob.resize(32, 0);
    blob.extend(uvarint(8));
    blob.extend_from_slice(b"go1.22.0");
    blob.extend(uvarint(1 << 60));
    blob.extend_from_slice(b"mod\tx\tv1\n");
    blob.extend_from_slice(SENTINEL_END);
    assert_eq!(scan(&binary_with(&blob), 4096), None);
    // A version length of 2^60 fails validation, and an overlong varint does too.
    let mut blob = b"\xff Go buildinf:\x08\x02".to_vec();
    blob.resize(32, 0);
    blob.extend(uvarint(1 << 60));
    assert_eq!(scan(&blob, 3), None);
    assert_eq!(read_uvarint(&[0xff; 11]), None);
    assert_eq!(read_uvarint(&uvarint(u64::MAX)), Some((u64::MAX, 10)));
}

#[test]
fn capture_is_capped() {
    let huge = format!("mod\tx\tv1\t\n{}", "dep\ty\tv1\n".repeat(200_000));
    let info = scan(&binary_with(&go_buildinfo("go1.22.0", &huge)), 1 << 16);
    // Larger than the cap: the module strings are cut short, so nothing is claimed.
    assert_eq!(info, None);
}
