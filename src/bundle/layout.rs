//! The documented layout of a bundle: entry names and their fixed order, tar sizes,
//! compression by file name, and the `sha256sum` text format used by `SHA256SUMS`
//! and the sidecar file.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::oci::Digest;

/// `oci-layout`: the OCI image layout marker.
pub const OCI_LAYOUT: &str = "oci-layout";
/// `SHA256SUMS`: `sha256sum -c` checksums of every other file.
pub const SHA256SUMS: &str = "SHA256SUMS";
/// `bundle.json`: the bundle's own description (see [`crate::bundle::BundleManifest`]).
pub const BUNDLE_JSON: &str = "bundle.json";
/// `index.json`: the OCI image index naming each image once.
pub const INDEX_JSON: &str = "index.json";
/// `config.yaml`: the Embedded Cluster config the bundle was built from.
pub const CONFIG_YAML: &str = "config.yaml";
/// `values.yaml`: Velero Helm values for the default airgap address.
pub const VALUES_YAML: &str = "values.yaml";
/// `sbom.cdx.json`: the CycloneDX software bill of materials (format 2 on).
pub const SBOM_JSON: &str = "sbom.cdx.json";

/// The entries that open every bundle this crate writes, in this order; blobs follow,
/// sorted by digest. A format 1 bundle has the first six.
pub const LEADING_ENTRIES: [&str; 7] = [
    OCI_LAYOUT,
    SHA256SUMS,
    BUNDLE_JSON,
    INDEX_JSON,
    CONFIG_YAML,
    VALUES_YAML,
    SBOM_JSON,
];

/// How many leading entries a bundle of `format_version` has.
pub(crate) fn leading_count(format_version: u32) -> usize {
    if format_version == 1 { 6 } else { 7 }
}

/// Directory of blobs inside the bundle.
pub(crate) const BLOB_DIR: &str = "blobs/sha256/";

/// The content of `oci-layout`.
pub(crate) const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Tar block size.
pub(crate) const BLOCK: u64 = 512;
/// Two zero blocks close a tar archive.
pub(crate) const END_OF_ARCHIVE: u64 = 2 * BLOCK;

/// The entry name of a blob: `blobs/sha256/<hex>`.
pub fn blob_entry_name(digest: &Digest) -> String {
    format!("{BLOB_DIR}{}", digest.hex())
}

/// A name that belongs to the documented layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// One of [`LEADING_ENTRIES`], by position.
    Leading(usize),
    /// `blobs/sha256/<hex>`.
    Blob(Digest),
}

/// Classifies an entry name; `None` for anything outside the layout.
pub(crate) fn classify(name: &str) -> Option<EntryKind> {
    if let Some(position) = LEADING_ENTRIES.iter().position(|leading| *leading == name) {
        return Some(EntryKind::Leading(position));
    }
    let hex_digits = name.strip_prefix(BLOB_DIR)?;
    Digest::from_hex(hex_digits).ok().map(EntryKind::Blob)
}

/// Bytes one entry occupies in the tar: header plus data padded to whole blocks.
/// Saturates: sizes come from untrusted headers and listings too.
pub(crate) fn entry_span(size: u64) -> u64 {
    size.div_ceil(BLOCK)
        .saturating_mul(BLOCK)
        .saturating_add(BLOCK)
}

/// Size of an uncompressed archive holding entries of these sizes (saturating).
pub(crate) fn archive_size(sizes: impl IntoIterator<Item = u64>) -> u64 {
    sizes
        .into_iter()
        .map(entry_span)
        .fold(END_OF_ARCHIVE, u64::saturating_add)
}

/// How the tar stream is stored in the bundle file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar (`.tar`): fastest to write, read and import.
    None,
    /// zstd (`.tar.zst`).
    Zstd,
    /// gzip (`.tar.gz`): slow, and gains nothing on already-compressed layers.
    Gzip,
}

impl Compression {
    /// The compression a bundle file name asks for: `.tar`, `.tar.zst` or `.tar.gz`.
    pub fn from_file_name(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        [
            (".tar", Self::None),
            (".tar.zst", Self::Zstd),
            (".tar.gz", Self::Gzip),
        ]
        .into_iter()
        .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix))
        .map(|(_, compression)| compression)
    }

    /// The compression of a stream, from its first bytes.
    pub(crate) fn from_magic(head: &[u8]) -> Self {
        if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else {
            Self::None
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
        })
    }
}

/// The sidecar checksum file of a bundle: `BUNDLE.sha256` beside `BUNDLE`.
pub fn sidecar_path(bundle: &Path) -> PathBuf {
    beside(bundle, ".sha256")
}

/// The detached signature of a bundle: `BUNDLE.sig` beside `BUNDLE`, the DER ECDSA
/// signature over the file's bytes that `openssl dgst -sha256 -verify` checks.
pub fn signature_path(bundle: &Path) -> PathBuf {
    beside(bundle, ".sig")
}

fn beside(bundle: &Path, suffix: &str) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Formats `sha256sum` lines: `<hex>  <name>\n` (two spaces: text mode, what `sha256sum` prints).
pub(crate) fn format_sums<'a>(lines: impl IntoIterator<Item = (&'a str, &'a Digest)>) -> Vec<u8> {
    let mut text = String::new();
    for (name, digest) in lines {
        text.push_str(&digest.hex());
        text.push_str("  ");
        text.push_str(name);
        text.push('\n');
    }
    text.into_bytes()
}

/// A line of `sha256sum` text that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} is not `<64 hex digits>  <name>`")]
pub struct SumsError {
    /// 1-based line number.
    pub line: usize,
}

/// Parses `sha256sum` text as [`format_sums`] writes it.
pub(crate) fn parse_sums(text: &[u8]) -> Result<Vec<(String, Digest)>, SumsError> {
    let text = std::str::from_utf8(text).map_err(|error| SumsError {
        line: 1 + text[..error.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count(),
    })?;
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    body.split('\n')
        .enumerate()
        .map(|(index, line)| {
            let error = SumsError { line: index + 1 };
            let (hex_digits, name) = line.split_once("  ").ok_or(error.clone())?;
            let digest = Digest::from_hex(hex_digits).map_err(|_| error.clone())?;
            if name.is_empty() {
                return Err(error);
            }
            Ok((name.to_owned(), digest))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_names() {
        assert_eq!(classify("oci-layout"), Some(EntryKind::Leading(0)));
        assert_eq!(classify("values.yaml"), Some(EntryKind::Leading(5)));
        assert_eq!(classify("sbom.cdx.json"), Some(EntryKind::Leading(6)));
        let digest = Digest::of(b"blob");
        assert_eq!(
            classify(&blob_entry_name(&digest)),
            Some(EntryKind::Blob(digest))
        );
        for outside in [
            "blobs/sha256/",
            "blobs/sha256",
            "blobs/sha512/00",
            "./oci-layout",
            "/oci-layout",
            "blobs/sha256/../index.json",
            &format!("blobs/sha256/{}/x", digest.hex()),
            &format!("blobs/sha256/{}", digest.hex().to_uppercase()),
        ] {
            assert_eq!(classify(outside), None, "{outside}");
        }
    }

    #[test]
    fn tar_sizes() {
        assert_eq!(entry_span(0), 512);
        assert_eq!(entry_span(1), 1024);
        assert_eq!(entry_span(512), 1024);
        assert_eq!(entry_span(513), 1536);
        assert_eq!(archive_size([0, 1]), 512 + 1024 + 1024);
        assert_eq!(archive_size([u64::MAX, 1]), u64::MAX);
    }

    #[test]
    fn compression_from_name_and_magic() {
        let of = |name: &str| Compression::from_file_name(Path::new(name));
        assert_eq!(of("dir/b.tar"), Some(Compression::None));
        assert_eq!(of("b.tar.zst"), Some(Compression::Zstd));
        assert_eq!(of("b.tar.gz"), Some(Compression::Gzip));
        assert_eq!(of(".tar"), None);
        assert_eq!(of("b.tgz"), None);
        assert_eq!(of("b.zip"), None);
        assert_eq!(
            Compression::from_magic(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::from_magic(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::from_magic(b"oci-layout"), Compression::None);
    }

    #[test]
    fn sums_round_trip_and_errors() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let text = format_sums([("oci-layout", &a), ("blobs/sha256/x", &b)]);
        assert_eq!(
            String::from_utf8(text.clone()).unwrap(),
            format!("{}  oci-layout\n{}  blobs/sha256/x\n", a.hex(), b.hex())
        );
        assert_eq!(
            parse_sums(&text).unwrap(),
            vec![("oci-layout".into(), a), ("blobs/sha256/x".into(), b)]
        );
        assert_eq!(parse_sums(b"").unwrap(), vec![]);
        let bad = format!("{}  a\n{} b\n", a.hex(), b.hex());
        assert_eq!(parse_sums(bad.as_bytes()), Err(SumsError { line: 2 }));
        assert_eq!(parse_sums(b"\xff"), Err(SumsError { line: 1 }));
    }

    #[test]
    fn sidecar_is_beside_the_bundle() {
        assert_eq!(
            sidecar_path(Path::new("/x/b.tar.zst")),
            PathBuf::from("/x/b.tar.zst.sha256")
        );
    }
}
