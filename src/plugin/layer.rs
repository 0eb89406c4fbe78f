//! Reading one image layer in one streaming pass: decompress, walk the tar entries, and
//! record what the layer changes (files, directories, links, OCI whiteouts and opaque
//! directories) with the ELF and Go analysis of every executable file, keeping only
//! their small results. [`Filesystem::apply`](super::Filesystem::apply) replays the
//! changes of an image's layers in manifest order.
//!
//! A layer is read on its own, without the layers below it: layers arrive in any order
//! (downloads run in parallel, a bundle stores blobs by digest), and a layer shared by
//! several images is read once. So the files analysed are chosen by the layer alone:
//! every regular file with an execute bit, which covers plugin binaries, copy programs
//! and the Velero image's own programs.
//!
//! Memory stays bounded whatever the input: file contents pass through one
//! [`CHUNK_BYTES`] buffer, tar extension records (long names, PAX headers) are read up to
//! [`MAX_EXTENSION_BYTES`], and a layer's recorded changes are capped at
//! [`MAX_LAYER_ENTRIES`] entries and [`MAX_LAYER_BYTES`]. The tar crate's own extension
//! handling reads records whole, so entries are taken raw and the extensions applied
//! here. A PAX `size` record that disagrees with the header (files of 8 GiB and more) and
//! GNU sparse files are refused rather than misread.

use std::io::{self, BufReader, Read};
use std::sync::Arc;

use tar::EntryType;

use super::elf::{ElfInfo, ElfScanner};
use super::gobuild::{GoBuildInfo, GoBuildInfoScanner};
use crate::oci::MediaType;

/// Longest path (or link target) accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Size of the one buffer file contents are read through.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Largest GNU long name/link or PAX extended header record set read.
pub const MAX_EXTENSION_BYTES: usize = 64 * 1024;
/// Most entries one layer may hold.
pub const MAX_LAYER_ENTRIES: usize = 200_000;
/// Most bytes of paths, link targets and analysis results one layer may leave behind.
pub const MAX_LAYER_BYTES: usize = 32 * 1024 * 1024;
/// What one recorded change costs besides its strings, for [`LayerChanges::weight`].
const CHANGE_OVERHEAD: usize = 64;

/// What analysing a file's contents found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileAnalysis {
    /// The ELF headers; `None` when the file is not an ELF file.
    pub elf: Option<ElfInfo>,
    /// The Go build information; looked for in ELF files only.
    pub go: Option<GoBuildInfo>,
}

impl FileAnalysis {
    /// Approximate bytes held by the results (library names, module paths and versions).
    pub(super) fn weight(&self) -> usize {
        let elf = self.elf.as_ref().map_or(0, |elf| {
            elf.needed.iter().map(String::len).sum::<usize>()
                + elf.interpreter.as_ref().map_or(0, String::len)
        });
        std::mem::size_of::<FileAnalysis>() + elf + self.go.as_ref().map_or(0, GoBuildInfo::weight)
    }
}

/// Why a layer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("media type {media_type} is not a tar layer (plain, gzip or zstd)")]
    UnsupportedMediaType { media_type: String },
    #[error("the layer stream could not be read")]
    Read(#[source] io::Error),
    #[error("entry `{path}` could not be read")]
    Entry {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("a path of {length} bytes is longer than the {limit} accepted")]
    PathTooLong { length: usize, limit: usize },
    #[error("a {kind} record is larger than the {limit} bytes accepted")]
    ExtensionTooLarge { kind: &'static str, limit: usize },
    #[error("a PAX extended header is malformed")]
    MalformedPax(#[source] io::Error),
    #[error(
        "entry `{path}` has its size only in a PAX header (8 GiB or more), which is not supported"
    )]
    PaxSize { path: String },
    #[error("entry `{path}` is a GNU sparse file, which is not supported")]
    Sparse { path: String },
    #[error("the layer has more than {limit} entries")]
    TooManyEntries { limit: usize },
    #[error("the layer's paths and analysis results exceed {limit} bytes")]
    TooLarge { limit: usize },
}

/// What one layer does to the filesystem below it, in tar order.
#[derive(Debug, Clone, Default)]
pub struct LayerChanges {
    pub(super) changes: Vec<Change>,
    weight: usize,
}

impl LayerChanges {
    /// Approximate bytes held, to budget many layers kept at once.
    pub fn weight(&self) -> usize {
        self.weight
    }
}

/// One recorded change. Paths are components below the root, parents not yet resolved
/// (a parent may be a symbolic link made by a lower layer).
#[derive(Debug, Clone)]
pub(super) enum Change {
    /// `DIR/.wh.NAME`: removes `NAME` of lower layers.
    Whiteout { parent: Vec<String>, name: String },
    /// `DIR/.wh..wh..opq`: hides what lower layers put below `DIR`.
    Opaque { directory: Vec<String> },
    /// A file, directory, symbolic link, device or FIFO.
    Put { path: Vec<String>, node: NewNode },
    /// A hard link to an earlier path (normalised the same way).
    HardLink {
        path: Vec<String>,
        target: Vec<String>,
    },
}

/// What a [`Change::Put`] puts.
#[derive(Debug, Clone)]
pub(super) enum NewNode {
    File {
        mode: u32,
        size: u64,
        analysis: Option<Arc<FileAnalysis>>,
    },
    Directory {
        mode: u32,
    },
    Symlink {
        target: String,
    },
    Other,
}

/// Reads a layer blob compressed as `media_type` says; see the module documentation.
pub fn scan_layer(media_type: &MediaType, reader: impl Read) -> Result<LayerChanges, LayerError> {
    let media_type = media_type.as_str();
    let base = media_type.split(';').next().unwrap_or("").trim();
    let known = base.starts_with("application/vnd.oci.image.layer.")
        || base.starts_with("application/vnd.docker.image.rootfs.");
    let stream: Box<dyn Read + '_> = match base.rsplit_once("tar").map(|(_, suffix)| suffix) {
        Some("") if known => Box::new(BufReader::with_capacity(CHUNK_BYTES, reader)),
        Some("+gzip" | ".gzip") if known => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Some("+zstd") if known => Box::new(zstd::Decoder::new(reader).map_err(LayerError::Read)?),
        _ => {
            return Err(LayerError::UnsupportedMediaType {
                media_type: media_type.to_string(),
            });
        }
    };
    let mut scanner = Scanner {
        layer: LayerChanges::default(),
        buffer: vec![0; CHUNK_BYTES],
    };
    let mut archive = tar::Archive::new(stream);
    let mut pending = Extensions::default();
    for entry in archive.entries().map_err(LayerError::Read)?.raw(true) {
        let mut entry = entry.map_err(LayerError::Read)?;
        match entry.header().entry_type() {
            EntryType::GNULongName => {
                pending.path = Some(read_extension(
                    &mut entry,
                    "GNU long name",
                    MAX_PATH_BYTES + 1,
                )?);
            }
            EntryType::GNULongLink => {
                pending.link = Some(read_extension(
                    &mut entry,
                    "GNU long link",
                    MAX_PATH_BYTES + 1,
                )?);
            }
            EntryType::XHeader => {
                let records =
                    read_extension(&mut entry, "PAX extended header", MAX_EXTENSION_BYTES)?;
                read_pax(&records, &mut pending)?;
            }
            EntryType::XGlobalHeader => {}
            _ => scanner.entry(&mut entry, std::mem::take(&mut pending))?,
        }
    }
    Ok(scanner.layer)
}

/// GNU long name/link and PAX records that describe the next entry.
#[derive(Default)]
struct Extensions {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
}

struct Scanner {
    layer: LayerChanges,
    buffer: Vec<u8>,
}

impl Scanner {
    /// Records one file, directory, link or whiteout.
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        extensions: Extensions,
    ) -> Result<(), LayerError> {
        // A copy, so that the entry can be read while its fields are in use.
        let header = entry.header().clone();
        let raw_path = extensions
            .path
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let mut path = normalise(&raw_path)?;
        let failed = |source| LayerError::Entry {
            path: format!("/{}", path.join("/")),
            source,
        };
        let kind = header.entry_type();
        let mode = header.mode().map_err(failed)?;
        let size = header.entry_size().map_err(failed)?;
        let shown = || format!("/{}", path.join("/"));
        if extensions.size.is_some_and(|pax_size| pax_size != size) {
            return Err(LayerError::PaxSize { path: shown() });
        }
        let Some(name) = path.last() else {
            // The root itself ("./"): nothing to record.
            return Ok(());
        };
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let hidden = hidden.to_string();
            path.pop();
            let change = if hidden == ".wh..opq" {
                Change::Opaque { directory: path }
            } else if hidden.starts_with(".wh.") {
                // Other `.wh..wh.` names are reserved; they change nothing.
                return Ok(());
            } else {
                Change::Whiteout {
                    parent: path,
                    name: hidden,
                }
            };
            return self.record(change, 0);
        }
        let link_target = |link: Option<Vec<u8>>| {
            link.or_else(|| header.link_name_bytes().map(std::borrow::Cow::into_owned))
                .unwrap_or_default()
        };
        let (node, extra) = match kind {
            EntryType::Regular | EntryType::Continuous => {
                let analysis = if mode & 0o111 != 0 {
                    let analysis = analyse(entry, &mut self.buffer).map_err(failed)?;
                    Some(Arc::new(analysis))
                } else {
                    None
                };
                let extra = analysis.as_deref().map_or(0, FileAnalysis::weight);
                let node = NewNode::File {
                    mode,
                    size,
                    analysis,
                };
                (node, extra)
            }
            EntryType::Directory => (NewNode::Directory { mode }, 0),
            EntryType::Symlink => {
                let target = link_target(extensions.link);
                if target.len() > MAX_PATH_BYTES {
                    return Err(LayerError::PathTooLong {
                        length: target.len(),
                        limit: MAX_PATH_BYTES,
                    });
                }
                let target = String::from_utf8_lossy(&target).into_owned();
                let length = target.len();
                (NewNode::Symlink { target }, length)
            }
            EntryType::Link => {
                let target = normalise(&link_target(extensions.link))?;
                let length = target.iter().map(String::len).sum();
                return self.record(Change::HardLink { path, target }, length);
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => (NewNode::Other, 0),
            EntryType::GNUSparse => return Err(LayerError::Sparse { path: shown() }),
            // Volume labels and unknown kinds put nothing in the filesystem.
            _ => return Ok(()),
        };
        self.record(Change::Put { path, node }, extra)
    }

    /// Keeps a change, within the layer's caps.
    fn record(&mut self, change: Change, extra: usize) -> Result<(), LayerError> {
        let path_bytes: usize = match &change {
            Change::Whiteout { parent, name } => {
                parent.iter().map(String::len).sum::<usize>() + name.len()
            }
            Change::Opaque { directory } => directory.iter().map(String::len).sum(),
            Change::Put { path, .. } | Change::HardLink { path, .. } => {
                path.iter().map(String::len).sum()
            }
        };
        let layer = &mut self.layer;
        if layer.changes.len() >= MAX_LAYER_ENTRIES {
            return Err(LayerError::TooManyEntries {
                limit: MAX_LAYER_ENTRIES,
            });
        }
        layer.weight += CHANGE_OVERHEAD + path_bytes + extra;
        if layer.weight > MAX_LAYER_BYTES {
            return Err(LayerError::TooLarge {
                limit: MAX_LAYER_BYTES,
            });
        }
        layer.changes.push(change);
        Ok(())
    }
}

/// Streams a file through the analysers. The Go scanner runs only on ELF files, and
/// reading stops early once nothing more can be learned.
fn analyse(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<FileAnalysis> {
    let mut elf = ElfScanner::new();
    let mut go: Option<GoBuildInfoScanner> = None;
    let mut first = true;
    loop {
        let read = match reader.read(buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let chunk = &buffer[..read];
        elf.feed(chunk);
        if first && !elf.is_not_elf() {
            go = Some(GoBuildInfoScanner::new());
        }
        first = false;
        if elf.is_not_elf() {
            go = None;
        }
        match &mut go {
            Some(scanner) => scanner.feed(chunk),
            None if !elf.wants_more() => break,
            None => {}
        }
    }
    Ok(FileAnalysis {
        elf: elf.finish(),
        go: go.and_then(GoBuildInfoScanner::finish),
    })
}

/// Reads an extension record, refusing one longer than `limit`.
fn read_extension<R: Read>(
    entry: &mut tar::Entry<R>,
    kind: &'static str,
    limit: usize,
) -> Result<Vec<u8>, LayerError> {
    let mut bytes = Vec::new();
    entry
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(LayerError::Read)?;
    if bytes.len() > limit {
        return Err(LayerError::ExtensionTooLarge { kind, limit });
    }
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    Ok(bytes)
}

/// Takes the `path`, `linkpath` and `size` records of a PAX extended header.
fn read_pax(records: &[u8], pending: &mut Extensions) -> Result<(), LayerError> {
    for record in tar::PaxExtensions::new(records) {
        let record = record.map_err(LayerError::MalformedPax)?;
        match record.key_bytes() {
            b"path" => pending.path = Some(record.value_bytes().to_vec()),
            b"linkpath" => pending.link = Some(record.value_bytes().to_vec()),
            b"size" => {
                let size = record.value().ok().and_then(|text| text.parse().ok());
                let invalid = || {
                    LayerError::MalformedPax(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "size record",
                    ))
                };
                pending.size = Some(size.ok_or_else(invalid)?);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The components of a tar path: leading `/` and `./` dropped, `.` skipped, and `..`
/// applied without ever leaving the root (`../../x` is `/x`).
fn normalise(raw: &[u8]) -> Result<Vec<String>, LayerError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(LayerError::PathTooLong {
            length: raw.len(),
            limit: MAX_PATH_BYTES,
        });
    }
    let mut components: Vec<String> = Vec::new();
    for component in String::from_utf8_lossy(raw).split('/') {
        match component {
            "" | "." => {}
            ".." => {
                components.pop();
            }
            other => components.push(other.to_string()),
        }
    }
    Ok(components)
}

#[cfg(test)]
mod tests;
