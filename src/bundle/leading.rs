//! The leading entries of a bundle: reading them into memory under size limits, and
//! cross-checking `SHA256SUMS`, `bundle.json` and `index.json` against each other and
//! against the layout before any blob is read.

use std::collections::{BTreeMap, HashSet};

use super::index_json::index_entry;
use super::input::TarCursor;
use super::layout::{
    BUNDLE_JSON, CONFIG_YAML, EntryKind, INDEX_JSON, LEADING_ENTRIES, OCI_LAYOUT, SBOM_JSON,
    SHA256SUMS, VALUES_YAML, archive_size, classify, leading_count, parse_sums,
};
use super::manifest::{BundleManifest, probe_version};
use super::problem::{Problem, ProblemKind};
use crate::oci::{Digest, Manifest};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// Most bytes kept in memory for each leading entry, in [`LEADING_ENTRIES`] order
/// (`oci-layout`, `SHA256SUMS`, `bundle.json`, `index.json`, `config.yaml`,
/// `values.yaml`, `sbom.cdx.json`). A 100-image bundle needs well under 1 MiB for any of
/// the first six; the config has the cap of every config file, and the values are
/// rendered from it. The SBOM of a real bundle (a few Go programs, a few hundred modules
/// each) is far below its limit, which the writer enforces too.
pub(crate) const LEADING_LIMITS: [u64; 7] =
    [4 * KIB, 4 * MIB, 4 * MIB, 4 * MIB, MIB, 4 * MIB, SBOM_LIMIT];
/// Largest `sbom.cdx.json` written or read.
pub(crate) const SBOM_LIMIT: u64 = 8 * MIB;

/// A blob `bundle.json` promises, and whether the archive has shown it yet.
#[derive(Debug)]
pub(crate) struct ExpectedBlob {
    pub(crate) size: u64,
    pub(crate) seen: bool,
}

/// Reads the leading entries, in their fixed order, into memory: how many depends on the
/// format version `bundle.json` (the third) declares.
pub(crate) fn read_leading(cursor: &mut TarCursor) -> Result<Vec<Vec<u8>>, Problem> {
    let mut contents: Vec<Vec<u8>> = Vec::new();
    let mut count = LEADING_ENTRIES.len();
    for (position, (name, limit)) in LEADING_ENTRIES.iter().zip(LEADING_LIMITS).enumerate() {
        if position == count {
            break;
        }
        let first = *name == OCI_LAYOUT;
        let header = match cursor.header() {
            Ok(Some(header)) => header,
            Ok(None) if first => return Err(not_a_bundle("it is an empty tar archive")),
            Ok(None) => return Err(Problem::new(*name, ProblemKind::Missing)),
            // No tar header where the file starts: whatever it is, it is not ours.
            Err(ProblemKind::Malformed(_) | ProblemKind::MissingEnd) if first => {
                return Err(not_a_bundle(
                    "it is not a tar archive (plain, zstd or gzip)",
                ));
            }
            Err(kind) => return Err(Problem::new(*name, kind)),
        };
        if first && header.name != OCI_LAYOUT {
            return Err(not_a_bundle(&format!(
                "it is a tar archive whose first entry is {:?}, not {OCI_LAYOUT}",
                header.name
            )));
        }
        if let Some(refusal) = header.refusal {
            return Err(Problem::new(header.name, ProblemKind::Refused(refusal)));
        }
        if header.name != *name {
            return Err(Problem::new(
                header.name,
                ProblemKind::OutOfOrder {
                    expected: (*name).to_owned(),
                },
            ));
        }
        if header.size > limit {
            return Err(Problem::new(*name, ProblemKind::TooLarge { limit }));
        }
        cursor
            .check_room(header.size)
            .map_err(|kind| Problem::new(*name, kind))?;
        let mut content = Vec::with_capacity(header.size as usize);
        cursor
            .entry(header.size, |bytes| content.extend_from_slice(bytes))
            .map_err(|kind| Problem::new(*name, kind))?;
        if *name == BUNDLE_JSON {
            // A bundle.json that does not parse is reported by `check_leading`.
            count = probe_version(&content).map_or(count, leading_count);
        }
        contents.push(content);
    }
    Ok(contents)
}

/// A file that is not a bundle at all; the reader names the file as the entry.
fn not_a_bundle(reason: &str) -> Problem {
    Problem::new(
        OCI_LAYOUT,
        ProblemKind::NotABundle {
            reason: reason.to_owned(),
        },
    )
}

/// What the leading entries say, once cross-checked.
pub(crate) struct Leading {
    pub(crate) manifest: BundleManifest,
    pub(crate) config_yaml: Vec<u8>,
    pub(crate) values_yaml: Vec<u8>,
    /// `sbom.cdx.json`; absent in format 1.
    pub(crate) sbom_json: Option<Vec<u8>>,
    /// The blobs `bundle.json` promises.
    pub(crate) blobs: BTreeMap<Digest, ExpectedBlob>,
    /// Size of the archive the listing accounts for: nothing may be read past it.
    pub(crate) archive_size: u64,
    /// Problems that still leave the rest of the bundle checkable.
    pub(crate) problems: Vec<Problem>,
}

/// Cross-checks the leading entries; `Err` with every problem found when `SHA256SUMS` or
/// `bundle.json` cannot be used, since nothing else can then be checked.
pub(crate) fn check_leading(contents: Vec<Vec<u8>>) -> Result<Leading, Vec<Problem>> {
    let mut contents = contents.into_iter();
    let mut next = || contents.next().unwrap_or_default();
    let (oci_layout, sums_text, bundle_json, index_json, config_yaml, values_yaml) =
        (next(), next(), next(), next(), next(), next());
    let sbom_json = contents.next();
    let mut problems = Vec::new();
    let sums = match parse_sums(&sums_text) {
        Ok(lines) => sums_map(lines, &mut problems),
        Err(error) => {
            problems.push(Problem::new(
                SHA256SUMS,
                ProblemKind::Malformed(error.to_string()),
            ));
            return Err(problems);
        }
    };
    // Checked before parsing, so a damaged bundle.json reports its checksum too.
    check_hash(BUNDLE_JSON, &bundle_json, &sums, &mut problems);
    let manifest = match BundleManifest::from_json(&bundle_json) {
        Ok(manifest) => manifest,
        Err(error) => {
            problems.push(Problem::new(
                BUNDLE_JSON,
                ProblemKind::Malformed(crate::chain(&error)),
            ));
            return Err(problems);
        }
    };
    let mut leading = vec![
        (OCI_LAYOUT, &oci_layout),
        (INDEX_JSON, &index_json),
        (CONFIG_YAML, &config_yaml),
        (VALUES_YAML, &values_yaml),
    ];
    leading.extend(sbom_json.as_ref().map(|sbom| (SBOM_JSON, sbom)));
    for (name, content) in leading.iter().copied() {
        check_hash(name, content, &sums, &mut problems);
    }
    if serde_json::from_slice::<serde_json::Value>(&oci_layout).ok()
        != Some(serde_json::json!({"imageLayoutVersion": "1.0.0"}))
    {
        problems.push(Problem::new(
            OCI_LAYOUT,
            ProblemKind::Malformed("not {\"imageLayoutVersion\":\"1.0.0\"}".into()),
        ));
    }
    let blobs = check_listing(&manifest, &sums, &leading, &mut problems);
    check_index(&manifest, &index_json, &mut problems);
    // Leading entries count with the sizes read; blobs with the sizes promised.
    let archive_size = archive_size(
        [sums_text.len(), bundle_json.len()]
            .into_iter()
            .chain(leading.iter().map(|(_, content)| content.len()))
            .map(|size| size as u64)
            .chain(blobs.values().map(|blob| blob.size)),
    );
    Ok(Leading {
        manifest,
        config_yaml,
        values_yaml,
        sbom_json,
        blobs,
        archive_size,
        problems,
    })
}

fn inconsistent(entry: &str, message: String) -> Problem {
    Problem::new(entry, ProblemKind::Inconsistent(message))
}

fn sums_map(lines: Vec<(String, Digest)>, problems: &mut Vec<Problem>) -> BTreeMap<String, Digest> {
    let mut sums = BTreeMap::new();
    for (name, digest) in lines {
        if sums.insert(name.clone(), digest).is_some() {
            problems.push(inconsistent(SHA256SUMS, format!("lists {name} twice")));
        }
    }
    sums
}

/// Compares content with its `SHA256SUMS` line, when there is one.
fn check_hash(
    name: &str,
    content: &[u8],
    sums: &BTreeMap<String, Digest>,
    problems: &mut Vec<Problem>,
) {
    let actual = Digest::of(content);
    if let Some(expected) = sums.get(name).filter(|expected| **expected != actual) {
        problems.push(Problem::new(
            name,
            ProblemKind::Sha256Mismatch {
                expected: *expected,
                actual,
            },
        ));
    }
}

/// Checks `bundle.json`'s file list against the layout, `SHA256SUMS` and the leading
/// files read; returns the blobs it promises.
fn check_listing(
    manifest: &BundleManifest,
    sums: &BTreeMap<String, Digest>,
    leading: &[(&str, &Vec<u8>)],
    problems: &mut Vec<Problem>,
) -> BTreeMap<Digest, ExpectedBlob> {
    let mut blobs = BTreeMap::new();
    let mut listed = HashSet::new();
    let mut order = Vec::new();
    for file in &manifest.files {
        let name = file.name.as_str();
        if !listed.insert(name) {
            problems.push(inconsistent(BUNDLE_JSON, format!("lists {name} twice")));
            continue;
        }
        match sums.get(name) {
            None => problems.push(inconsistent(SHA256SUMS, format!("does not list {name}"))),
            Some(sum) if *sum != file.sha256 => problems.push(inconsistent(
                SHA256SUMS,
                format!("the checksum of {name} differs from bundle.json's"),
            )),
            Some(_) => {}
        }
        match classify(name) {
            Some(EntryKind::Leading(position)) => {
                order.push((position, None));
                match leading
                    .iter()
                    .find(|(leading_name, _)| *leading_name == name)
                {
                    None => problems.push(inconsistent(
                        BUNDLE_JSON,
                        format!("lists {name}, which it cannot cover"),
                    )),
                    Some((_, content)) if content.len() as u64 != file.size => {
                        problems.push(Problem::new(
                            name,
                            ProblemKind::SizeMismatch {
                                declared: file.size,
                                actual: content.len() as u64,
                            },
                        ));
                    }
                    Some(_) => {}
                }
            }
            Some(EntryKind::Blob(digest)) => {
                order.push((LEADING_ENTRIES.len(), Some(digest)));
                if file.sha256 != digest {
                    problems.push(inconsistent(
                        BUNDLE_JSON,
                        format!("gives {name} a sha256 other than its name"),
                    ));
                }
                blobs.insert(
                    digest,
                    ExpectedBlob {
                        size: file.size,
                        seen: false,
                    },
                );
            }
            None => problems.push(inconsistent(
                BUNDLE_JSON,
                format!("lists {name}, which is outside the bundle layout"),
            )),
        }
    }
    for (name, _) in leading {
        if !listed.contains(name) {
            problems.push(inconsistent(BUNDLE_JSON, format!("does not list {name}")));
        }
    }
    if !order.is_sorted() {
        problems.push(inconsistent(
            BUNDLE_JSON,
            "lists its files out of archive order".into(),
        ));
    }
    for name in sums.keys() {
        if name != BUNDLE_JSON && !listed.contains(name.as_str()) {
            problems.push(inconsistent(
                SHA256SUMS,
                format!("lists {name}, which bundle.json does not"),
            ));
        }
    }
    if !sums.contains_key(BUNDLE_JSON) {
        problems.push(inconsistent(
            SHA256SUMS,
            format!("does not list {BUNDLE_JSON}"),
        ));
    }
    blobs
}

/// `index.json` must list exactly the images of `bundle.json`, in order, each by its
/// canonical reference.
fn check_index(manifest: &BundleManifest, index_json: &[u8], problems: &mut Vec<Problem>) {
    let entries = match Manifest::parse(index_json) {
        Ok((_, Manifest::Index(entries))) => entries,
        Ok((media_type, _)) => {
            problems.push(Problem::new(
                INDEX_JSON,
                ProblemKind::Malformed(format!("is a {media_type}, not an image index")),
            ));
            return;
        }
        Err(error) => {
            problems.push(Problem::new(
                INDEX_JSON,
                ProblemKind::Malformed(format!("not a valid image index: {error}")),
            ));
            return;
        }
    };
    let mut references = HashSet::new();
    for image in &manifest.images {
        if !references.insert(image.image.canonical_reference.as_str()) {
            problems.push(inconsistent(
                BUNDLE_JSON,
                format!("lists image {} twice", image.image.canonical_reference),
            ));
        }
    }
    if entries.len() != manifest.images.len() {
        problems.push(inconsistent(
            INDEX_JSON,
            format!(
                "lists {} images, bundle.json {}",
                entries.len(),
                manifest.images.len()
            ),
        ));
    }
    for (position, (found, image)) in entries.iter().zip(&manifest.images).enumerate() {
        if *found != index_entry(image) {
            problems.push(inconsistent(
                INDEX_JSON,
                format!(
                    "entry {position} does not match bundle.json's image {}",
                    image.image.canonical_reference
                ),
            ));
        }
    }
}
