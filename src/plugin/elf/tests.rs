//! The streaming ELF reader on built files: layouts, chunkings, tables that come late
//! or went by, and hostile headers.

use super::*;
use crate::plugin::test_support::ElfBuilder;

/// Feeds `bytes` in chunks of `chunk` bytes.
fn scan(bytes: &[u8], chunk: usize) -> Option<ElfInfo> {
    let mut scanner = ElfScanner::new();
    for piece in bytes.chunks(chunk) {
        scanner.feed(piece);
    }
    scanner.finish()
}

#[test]
fn static_amd64() {
    let binary = ElfBuilder::amd64().build();
    for chunk in [1, 7, 64, 4096] {
        let info = scan(&binary, chunk).unwrap();
        assert_eq!((info.class_bits, info.machine), (64, 62));
        assert_eq!(info.architecture, Some("amd64"));
        assert_eq!(info.is_static(), Some(true));
        assert!(info.needed_known && info.needed.is_empty());
    }
}

#[test]
fn dynamic_arm64_with_needed_libraries() {
    let binary = ElfBuilder::arm64()
        .interpreter("/lib/ld-linux-aarch64.so.1")
        .needed(&["libc.so.6", "libpthread.so.0"])
        .build();
    for chunk in [1, 13, 100_000] {
        let info = scan(&binary, chunk).unwrap();
        assert_eq!(info.architecture, Some("arm64"));
        assert_eq!(info.is_static(), Some(false));
        assert_eq!(
            info.interpreter.as_deref(),
            Some("/lib/ld-linux-aarch64.so.1")
        );
        assert_eq!(info.needed, ["libc.so.6", "libpthread.so.0"]);
        assert!(info.needed_known);
    }
}

#[test]
fn big_endian_and_32_bit_layouts() {
    let s390x = ElfBuilder::new(22)
        .big_endian()
        .needed(&["libc.so.6"])
        .build();
    let info = scan(&s390x, 5).unwrap();
    assert_eq!((info.architecture, info.big_endian), (Some("s390x"), true));
    assert_eq!(info.needed, ["libc.so.6"]);
    let arm = ElfBuilder::new(40)
        .class32()
        .interpreter("/lib/ld-linux-armhf.so.3")
        .build();
    let info = scan(&arm, 3).unwrap();
    assert_eq!((info.class_bits, info.architecture), (32, Some("arm")));
    assert_eq!(
        info.interpreter.as_deref(),
        Some("/lib/ld-linux-armhf.so.3")
    );
    assert_eq!(architecture_name(21, 64, false), Some("ppc64le"));
}

#[test]
fn string_table_after_the_dynamic_section_is_captured_later() {
    let binary = ElfBuilder::amd64()
        .interpreter("/lib64/ld-linux-x86-64.so.2")
        .needed(&["libc.so.6"])
        .padding(3 * ELF_PREFIX_BYTES)
        .string_table_last()
        .build();
    let info = scan(&binary, 65536).unwrap();
    assert_eq!(info.needed, ["libc.so.6"]);
    assert!(info.needed_known);
}

#[test]
fn string_table_gone_by_is_reported_unknown() {
    let binary = ElfBuilder::amd64()
        .interpreter("/lib64/ld-linux-x86-64.so.2")
        .needed(&["libc.so.6"])
        .lead(2 * ELF_PREFIX_BYTES)
        .padding(ELF_PREFIX_BYTES)
        .build();
    let info = scan(&binary, 65536).unwrap();
    assert_eq!(info.is_static(), Some(false));
    assert!(info.needed.is_empty());
    assert!(!info.needed_known);
}

#[test]
fn not_elf_and_truncated() {
    assert_eq!(scan(b"#!/bin/sh\necho hi\n", 4), None);
    assert_eq!(scan(b"\x7fELF", 4), None);
    let binary = ElfBuilder::amd64().build();
    let info = scan(&binary[..64], 64).unwrap();
    assert_eq!(info.is_static(), None);
    let mut scanner = ElfScanner::new();
    scanner.feed(b"MZ\x90\x00 not an ELF file at all");
    assert!(scanner.is_not_elf() && !scanner.wants_more());
}

#[test]
fn hostile_headers_do_not_allocate_their_claims() {
    let mut binary = ElfBuilder::amd64().interpreter("/x").needed(&["a"]).build();
    // e_phnum = 0xfffe, e_phentsize = 0xffff: ~4 GiB of program headers claimed.
    binary[54..56].copy_from_slice(&0xffffu16.to_le_bytes());
    binary[56..58].copy_from_slice(&0xfffeu16.to_le_bytes());
    let info = scan(&binary, 4096).unwrap();
    assert_eq!(info.is_static(), None);
}
