//! Layers read on their own and applied in order: compression, whiteouts, opaque
//! directories, links, tar extensions, the caps, and which files get analysed.

use std::io::Read;

use super::*;
use crate::oci::MediaType;
use crate::plugin::filesystem::{ApplyError, Entry, EntryKind};
use crate::plugin::test_support::{
    DOCKER_GZIP, ElfBuilder, Failure, Item, TAR, TAR_GZIP, TAR_ZSTD, apply_layers, go_buildinfo,
    gzip, gzip_layer, layer, tar, zstd,
};

fn binary() -> Vec<u8> {
    ElfBuilder::amd64()
        .trailer(&go_buildinfo("go1.22.0", "mod\texample.com/p\tv1.0.0\t\n"))
        .build()
}

#[test]
fn every_compression_gives_the_same_tree() {
    let binary = binary();
    let bytes = tar(&[Item::File("plugins/p", 0o755, &binary)]);
    for layer in [
        layer(TAR, bytes.clone()),
        layer(TAR_GZIP, gzip(&bytes)),
        layer(DOCKER_GZIP, gzip(&bytes)),
        layer(TAR_ZSTD, zstd(&bytes)),
        layer(
            "application/vnd.docker.image.rootfs.diff.tar",
            bytes.clone(),
        ),
    ] {
        let filesystem = apply_layers([layer]).unwrap();
        let analysis = filesystem.analysis("/plugins/p").unwrap();
        assert_eq!(analysis.elf.as_ref().unwrap().architecture, Some("amd64"));
        assert_eq!(analysis.go.as_ref().unwrap().go_version, "go1.22.0");
    }
}

#[test]
fn unsupported_media_types_and_corrupt_streams_are_errors() {
    let bytes = tar(&[Item::File("x", 0o644, b"")]);
    for media_type in [
        "application/vnd.oci.image.layer.v1.tar+bzip2",
        "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
        "application/json",
    ] {
        let error = apply_layers([layer(media_type, bytes.clone())]).unwrap_err();
        let Failure::Layer(0, source) = error else {
            panic!("{error:?}")
        };
        assert!(
            matches!(source, LayerError::UnsupportedMediaType { .. }),
            "{source}"
        );
    }
    let error = apply_layers([layer(TAR_GZIP, b"not gzip".to_vec())]).unwrap_err();
    assert!(matches!(error, Failure::Layer(0, LayerError::Read(_))));
}

#[test]
fn whiteout_in_a_later_layer_removes_the_file_and_its_analysis() {
    let binary = binary();
    let filesystem = apply_layers([
        gzip_layer(&[
            Item::File("plugins/p", 0o755, &binary),
            Item::File("plugins/q", 0o755, &binary),
        ]),
        gzip_layer(&[Item::File("plugins/.wh.p", 0o644, b"")]),
    ])
    .unwrap();
    assert!(!filesystem.exists("/plugins/p"));
    assert!(filesystem.analysis("/plugins/p").is_none());
    assert!(filesystem.exists("/plugins/q"));
    assert!(!filesystem.exists("/plugins/.wh.p"));
}

#[test]
fn whiteout_removes_a_whole_directory_but_not_the_same_layer() {
    let filesystem = apply_layers([
        gzip_layer(&[
            Item::File("opt/a/x", 0o644, b""),
            Item::File("opt/b", 0o644, b""),
        ]),
        gzip_layer(&[
            Item::File("opt/.wh.a", 0o644, b""),
            Item::File("opt/c", 0o644, b""),
            Item::File("opt/.wh.c", 0o644, b""),
        ]),
    ])
    .unwrap();
    assert!(!filesystem.exists("/opt/a") && !filesystem.exists("/opt/a/x"));
    assert!(filesystem.exists("/opt/b") && filesystem.exists("/opt/c"));
}

#[test]
fn opaque_directory_hides_lower_layers_only() {
    let binary = binary();
    let filesystem = apply_layers([
        gzip_layer(&[
            Item::File("plugins/old", 0o755, &binary),
            Item::File("plugins/sub/old", 0o755, &binary),
            Item::File("other/kept", 0o644, b""),
        ]),
        // The marker comes after one new entry and before another: both stay.
        gzip_layer(&[
            Item::File("plugins/sub/new", 0o755, &binary),
            Item::File("plugins/.wh..wh..opq", 0o644, b""),
            Item::File("plugins/new", 0o755, &binary),
        ]),
    ])
    .unwrap();
    assert!(!filesystem.exists("/plugins/old") && !filesystem.exists("/plugins/sub/old"));
    assert!(filesystem.exists("/plugins/new") && filesystem.exists("/plugins/sub/new"));
    assert!(filesystem.analysis("/plugins/sub/new").is_some());
    assert!(filesystem.exists("/other/kept"));
}

#[test]
fn later_layer_overwrites_file_and_analysis() {
    let amd64 = ElfBuilder::amd64().build();
    let arm64 = ElfBuilder::arm64().build();
    let filesystem = apply_layers([
        gzip_layer(&[Item::File("plugins/p", 0o755, &amd64)]),
        gzip_layer(&[Item::File("plugins/p", 0o755, &arm64)]),
    ])
    .unwrap();
    assert_eq!(filesystem.lookup("/plugins/p").unwrap().layer, 1);
    assert_eq!(
        filesystem
            .analysis("/plugins/p")
            .unwrap()
            .elf
            .as_ref()
            .unwrap()
            .architecture,
        Some("arm64")
    );
}

#[test]
fn hard_links_carry_the_file_and_its_analysis() {
    let binary = binary();
    let filesystem = apply_layers([
        gzip_layer(&[Item::File("usr/bin/plugin", 0o755, &binary)]),
        gzip_layer(&[
            Item::HardLink("plugins/p", "usr/bin/plugin"),
            Item::File("usr/bin/.wh.plugin", 0, b""),
        ]),
    ])
    .unwrap();
    // The link outlives the removal of the name it was made from, as an inode would.
    assert!(!filesystem.exists("/usr/bin/plugin"));
    let Some(Entry {
        kind: EntryKind::File {
            mode, hardlink_to, ..
        },
        layer: 1,
    }) = filesystem.lookup("/plugins/p")
    else {
        panic!("not a file");
    };
    assert_eq!(
        (*mode, hardlink_to.as_deref()),
        (0o755, Some("/usr/bin/plugin"))
    );
    assert!(filesystem.analysis("/plugins/p").unwrap().go.is_some());
    let error = apply_layers([gzip_layer(&[Item::HardLink("a", "missing")])]).unwrap_err();
    assert!(
        matches!(error, Failure::Apply(ApplyError::HardLinkTarget { .. })),
        "{error:?}"
    );
}

#[test]
fn traversal_names_stay_inside_the_root() {
    let filesystem = apply_layers([layer(
        TAR,
        tar(&[
            Item::RawName("../../x", b"1"),
            Item::RawName("/abs/y", b"2"),
            Item::RawName("./a/../../z", b"3"),
        ]),
    )])
    .unwrap();
    assert!(filesystem.exists("/x") && filesystem.exists("/abs/y") && filesystem.exists("/z"));
    assert_eq!(filesystem.len(), 4);
}

#[test]
fn entries_below_a_symlinked_directory_land_in_its_target() {
    let filesystem = apply_layers([
        gzip_layer(&[Item::Directory("usr/lib"), Item::Symlink("lib", "usr/lib")]),
        gzip_layer(&[Item::File("lib/libc.so.6", 0o755, b"")]),
    ])
    .unwrap();
    assert!(filesystem.lookup_no_follow("/usr/lib/libc.so.6").is_some());
    assert!(filesystem.exists("/lib/libc.so.6"));
}

#[test]
fn only_executable_files_are_analysed() {
    let binary = binary();
    let items = [
        Item::File("plugins/p", 0o644, &binary[..]),
        Item::File("usr/bin/tool", 0o755, &binary),
        Item::File("opt/velero-plugin-x", 0o100, &binary),
    ];
    let filesystem = apply_layers([gzip_layer(&items)]).unwrap();
    assert!(filesystem.analysis("/plugins/p").is_none());
    assert!(
        filesystem.analysis("/usr/bin/tool").is_some()
            && filesystem.analysis("/opt/velero-plugin-x").is_some()
    );
    let programs: Vec<&str> = filesystem.go_binaries().map(|(path, _)| path).collect();
    assert_eq!(programs, ["/opt/velero-plugin-x", "/usr/bin/tool"]);
    let not_elf = apply_layers([gzip_layer(&[Item::File(
        "plugins/s",
        0o755,
        b"#!/bin/sh\n",
    )])])
    .unwrap();
    assert_eq!(
        not_elf.analysis("/plugins/s"),
        Some(&FileAnalysis::default())
    );
}

#[test]
fn long_names_and_pax_paths_are_honoured_within_the_cap() {
    let long = format!("plugins/{}", "d/".repeat(100) + "binary");
    let filesystem = apply_layers([gzip_layer(&[Item::File(&long, 0o755, &binary())])]).unwrap();
    assert!(filesystem.analysis(&format!("/{long}")).is_some());
    let too_long = "x/".repeat(MAX_PATH_BYTES);
    let error = apply_layers([gzip_layer(&[Item::File(&too_long, 0o644, b"")])]).unwrap_err();
    assert!(
        matches!(
            error,
            Failure::Layer(0, LayerError::ExtensionTooLarge { .. })
        ),
        "{error:?}"
    );

    // PAX headers written by hand: a path record, then a size record that disagrees.
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions([("path", &b"plugins/from-pax"[..])])
        .unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_path("ignored").unwrap();
    header.set_size(1);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append(&header, &b"x"[..]).unwrap();
    let filesystem = apply_layers([layer(TAR, builder.into_inner().unwrap())]).unwrap();
    assert!(filesystem.exists("/plugins/from-pax") && !filesystem.exists("/ignored"));
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions([("size", &b"9000000000"[..])])
        .unwrap();
    builder.append(&header, &b"x"[..]).unwrap();
    let error = apply_layers([layer(TAR, builder.into_inner().unwrap())]).unwrap_err();
    assert!(
        matches!(error, Failure::Layer(0, LayerError::PaxSize { .. })),
        "{error:?}"
    );
}

/// A tar stream of `count` empty files generated on the fly, so that the test itself
/// holds one header at a time.
struct ManyEntries {
    count: usize,
    next: usize,
    block: Vec<u8>,
    position: usize,
}

impl Read for ManyEntries {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.position == self.block.len() {
            self.position = 0;
            self.block = if self.next < self.count {
                let mut header = tar::Header::new_ustar();
                header
                    .set_path(format!("d{}/f{}", self.next / 1000, self.next % 1000))
                    .unwrap();
                header.set_size(0);
                header.set_mode(0o644);
                header.set_cksum();
                header.as_bytes().to_vec()
            } else if self.next == self.count {
                vec![0; 1024]
            } else {
                Vec::new()
            };
            self.next += 1;
        }
        let length = out.len().min(self.block.len() - self.position);
        out[..length].copy_from_slice(&self.block[self.position..self.position + length]);
        self.position += length;
        Ok(length)
    }
}

fn many_entries(count: usize) -> Result<LayerChanges, LayerError> {
    let stream = ManyEntries {
        count,
        next: 0,
        block: Vec::new(),
        position: 0,
    };
    scan_layer(&MediaType::new(TAR), stream)
}

#[test]
fn a_million_entries_hit_the_entry_cap() {
    let error = many_entries(1_000_000).unwrap_err();
    assert!(
        matches!(
            error,
            LayerError::TooManyEntries {
                limit: MAX_LAYER_ENTRIES
            }
        ),
        "{error}"
    );
    assert_eq!(error.to_string(), "the layer has more than 200000 entries");
    // Within the cap it works.
    let changes = many_entries(5_000).unwrap();
    assert!(changes.weight() < MAX_LAYER_BYTES);
    let filesystem = crate::plugin::filesystem::Filesystem::from_layers([&changes]).unwrap();
    assert_eq!(filesystem.len(), 5_005);
}

#[test]
fn path_normalisation() {
    assert_eq!(normalise(b"./a//b/./c/").unwrap(), ["a", "b", "c"]);
    assert_eq!(normalise(b"../../x").unwrap(), ["x"]);
    assert!(normalise(b"/").unwrap().is_empty());
}
