//! Go build information (what `go version -m` prints) found while a binary streams by.
//!
//! Go's linker writes a blob that starts with the 14-byte magic `\xff Go buildinf:`, a
//! pointer-size byte and a flags byte, in a 32-byte header aligned to 16 bytes in the
//! file. Since Go 1.18 (flag bit 2) the Go version and the module information follow the
//! header inline, as two varint-length-prefixed strings. Older binaries point at those
//! strings through pointers instead; following them needs the whole file, so their build
//! information is reported as absent. The layout follows Go's `debug/buildinfo` and
//! `runtime/debug.ParseBuildInfo`.

use memchr::memchr_iter;
use serde::{Deserialize, Serialize};

/// Bytes captured after the 32-byte header: the version and the module information of
/// even very large programs fit in far less.
pub const MAX_BUILDINFO_BYTES: usize = 1024 * 1024;
/// Longest Go version string accepted when checking that a magic is the real blob.
pub const MAX_GO_VERSION_BYTES: usize = 256;

/// The module of the Velero server, whose version a plugin was built against.
pub const VELERO_MODULE: &str = "github.com/vmware-tanzu/velero";

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_BYTES: usize = 32;
const ALIGNMENT: u64 = 16;
/// Enough to read the header, the version length and the version.
const VALIDATION_BYTES: usize = HEADER_BYTES + 10 + MAX_GO_VERSION_BYTES;
/// Flag bit: version and module information are inline (Go >= 1.18).
const FLAG_INLINE_STRINGS: u8 = 2;
/// Each end of the module information carries a 16-byte sentinel.
const SENTINEL_BYTES: usize = 16;

/// The build information of a Go binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoBuildInfo {
    /// The toolchain version, e.g. `go1.19.8`.
    pub go_version: String,
    /// The main package path (`path` line).
    pub path: Option<String>,
    /// The main module (`mod` line).
    pub main: Option<Module>,
    /// The dependencies (`dep` lines), in order.
    pub deps: Vec<Module>,
    /// The `build` settings, e.g. `CGO_ENABLED` = `0`.
    pub settings: Vec<BuildSetting>,
}

/// A module as a `mod`, `dep` or `=>` line records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Module {
    /// Module path, or a directory for a local replacement.
    pub path: String,
    /// Version; empty for a local-directory replacement (Go records `(devel)` there).
    pub version: String,
    /// What replaced it (`=>` line).
    pub replace: Option<Box<Module>>,
}

/// One `build KEY=VALUE` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSetting {
    /// e.g. `CGO_ENABLED`.
    pub key: String,
    /// e.g. `0`.
    pub value: String,
}

impl GoBuildInfo {
    /// The Velero version the program was built against: the Velero dependency's version
    /// (or the main module's, for Velero itself), or the version of the module that
    /// replaced it. A local-directory replacement keeps the required version.
    pub fn velero_version(&self) -> Option<String> {
        let module = self
            .deps
            .iter()
            .chain(&self.main)
            .find(|module| module.path == VELERO_MODULE)?;
        let version = match &module.replace {
            Some(replacement) if !replacement.version.is_empty() => &replacement.version,
            _ => &module.version,
        };
        (!version.is_empty() && version != "(devel)").then(|| version.clone())
    }

    /// Approximate bytes held, for the caps on what a layer may leave behind.
    pub(super) fn weight(&self) -> usize {
        let modules = self.main.iter().chain(&self.deps).map(|module| {
            module.path.len()
                + module.version.len()
                + module
                    .replace
                    .as_ref()
                    .map_or(0, |replace| replace.path.len() + replace.version.len())
        });
        let settings = self
            .settings
            .iter()
            .map(|setting| setting.key.len() + setting.value.len());
        self.go_version.len()
            + self.path.as_ref().map_or(0, String::len)
            + modules.sum::<usize>()
            + settings.sum::<usize>()
    }

    /// The value of a `build` setting.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|setting| setting.key == key)
            .map(|setting| setting.value.as_str())
    }
}

/// Where the scanner is in the file.
enum State {
    /// Looking for the magic at 16-byte-aligned offsets.
    Searching,
    /// Capturing from a possible magic at `start`; `validated` once the header and
    /// version proved it is the real blob rather than the magic bytes in some data.
    Capturing {
        start: u64,
        bytes: Vec<u8>,
        validated: bool,
    },
}

/// Finds and captures the build information blob of a file fed front to back.
pub struct GoBuildInfoScanner {
    offset: u64,
    state: State,
    /// Set when a validated blob is fully captured.
    captured: Option<Vec<u8>>,
}

impl Default for GoBuildInfoScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl GoBuildInfoScanner {
    /// A scanner at the start of a file.
    pub fn new() -> GoBuildInfoScanner {
        GoBuildInfoScanner {
            offset: 0,
            state: State::Searching,
            captured: None,
        }
    }

    /// Takes the next bytes of the file.
    pub fn feed(&mut self, chunk: &[u8]) {
        let at = self.offset;
        self.consume(chunk, at);
        self.offset += chunk.len() as u64;
    }

    /// The build information, once the whole file went by.
    pub fn finish(mut self) -> Option<GoBuildInfo> {
        // A candidate cut short by the end of the file is judged on what it has; when it
        // fails, the search goes on through its bytes.
        while self.captured.is_none() {
            match std::mem::replace(&mut self.state, State::Searching) {
                State::Searching => break,
                State::Capturing {
                    bytes, validated, ..
                } if validated || is_blob(&bytes) => {
                    self.captured = Some(bytes);
                }
                State::Capturing { start, bytes, .. } => {
                    self.consume(bytes.get(1..).unwrap_or(&[]), start + 1);
                }
            }
        }
        parse_blob(&self.captured?)
    }

    /// Processes `data`, found at file offset `at`.
    fn consume(&mut self, data: &[u8], at: u64) {
        let mut position = 0;
        while position < data.len() && self.captured.is_none() {
            let (used, replay) = self.step(&data[position..], at + position as u64);
            position += used;
            if let Some((bytes, replay_at)) = replay {
                self.consume(&bytes, replay_at);
            }
        }
    }

    /// Processes a prefix of `data`; returns how much it used and, when a candidate turned
    /// out false, its bytes after the first to search again (at their file offset).
    fn step(&mut self, data: &[u8], at: u64) -> (usize, Option<(Vec<u8>, u64)>) {
        match &mut self.state {
            State::Searching => match find_candidate(data, at) {
                Some(index) => {
                    self.state = State::Capturing {
                        start: at + index as u64,
                        bytes: Vec::with_capacity(VALIDATION_BYTES),
                        validated: false,
                    };
                    (index, None)
                }
                None => (data.len(), None),
            },
            State::Capturing {
                start,
                bytes,
                validated,
            } => {
                let limit = if *validated {
                    HEADER_BYTES + MAX_BUILDINFO_BYTES
                } else {
                    VALIDATION_BYTES
                };
                let used = (limit - bytes.len()).min(data.len());
                bytes.extend_from_slice(&data[..used]);
                if bytes.len() < limit {
                    return (used, None);
                }
                if *validated {
                    self.captured = Some(std::mem::take(bytes));
                    return (data.len(), None);
                }
                if is_blob(bytes) {
                    *validated = true;
                    return (used, None);
                }
                let replay = (bytes[1..].to_vec(), *start + 1);
                self.state = State::Searching;
                (used, Some(replay))
            }
        }
    }
}

/// The first 16-byte-aligned index of `data` (at file offset `at`) where the magic starts,
/// or where a prefix of it ends the data.
fn find_candidate(data: &[u8], at: u64) -> Option<usize> {
    memchr_iter(MAGIC[0], data).find(|&index| {
        let available = &data[index..data.len().min(index + MAGIC.len())];
        (at + index as u64).is_multiple_of(ALIGNMENT) && MAGIC.starts_with(available)
    })
}

/// Whether `bytes` (a possibly short capture) start with a plausible build information
/// header: the magic, a pointer size of 4 or 8, and, for the inline format, a Go version.
fn is_blob(bytes: &[u8]) -> bool {
    if bytes.len() < HEADER_BYTES || !bytes.starts_with(MAGIC) || !matches!(bytes[14], 4 | 8) {
        return false;
    }
    if bytes[15] & FLAG_INLINE_STRINGS == 0 {
        // The pointer format cannot be checked further from a stream; it is reported absent.
        return true;
    }
    let mut rest = &bytes[HEADER_BYTES..];
    read_string(&mut rest).is_some_and(|version| {
        version.len() <= MAX_GO_VERSION_BYTES
            && (version.starts_with(b"go") || version.starts_with(b"devel"))
    })
}

/// Decodes a captured blob; `None` for the pointer format or anything malformed.
fn parse_blob(bytes: &[u8]) -> Option<GoBuildInfo> {
    if bytes.get(15)? & FLAG_INLINE_STRINGS == 0 {
        return None;
    }
    let mut rest = bytes.get(HEADER_BYTES..)?;
    let version = read_string(&mut rest)?;
    let module_info = read_string(&mut rest)?;
    // As in Go: the framing is there only when the text ends in a newline before it.
    let module_info = if module_info.len() > 2 * SENTINEL_BYTES
        && module_info[module_info.len() - SENTINEL_BYTES - 1] == b'\n'
    {
        &module_info[SENTINEL_BYTES..module_info.len() - SENTINEL_BYTES]
    } else {
        &[]
    };
    Some(parse_module_info(
        String::from_utf8_lossy(version).into_owned(),
        &String::from_utf8_lossy(module_info),
    ))
}

/// Reads a varint-length-prefixed string, never trusting the length beyond the bytes at hand.
fn read_string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (length, used) = read_uvarint(rest)?;
    let body = rest.get(used..)?;
    if length > body.len() as u64 {
        return None;
    }
    let (text, remainder) = body.split_at(length as usize);
    *rest = remainder;
    Some(text)
}

/// Go's `binary.Uvarint`: the value and the bytes it took, `None` when cut short or overflowing.
fn read_uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (index, &byte) in bytes.iter().enumerate().take(10) {
        if index == 9 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte < 0x80 {
            return Some((value, index + 1));
        }
    }
    None
}

/// Parses the tab-separated module lines; malformed lines are skipped rather than
/// failing the whole, so that a partial answer survives.
fn parse_module_info(go_version: String, text: &str) -> GoBuildInfo {
    enum Last {
        Nothing,
        Main,
        Dependency,
    }
    let mut info = GoBuildInfo {
        go_version,
        path: None,
        main: None,
        deps: Vec::new(),
        settings: Vec::new(),
    };
    let mut last = Last::Nothing;
    for line in text.lines() {
        let Some((kind, rest)) = line.split_once('\t') else {
            continue;
        };
        let fields: Vec<&str> = rest.split('\t').collect();
        match kind {
            "path" => info.path = Some(rest.to_string()),
            "mod" | "dep" => {
                let Some(module) = module_line(&fields) else {
                    last = Last::Nothing;
                    continue;
                };
                if kind == "mod" {
                    info.main = Some(module);
                    last = Last::Main;
                } else {
                    info.deps.push(module);
                    last = Last::Dependency;
                }
            }
            "=>" => {
                let target = match last {
                    Last::Main => info.main.as_mut(),
                    Last::Dependency => info.deps.last_mut(),
                    Last::Nothing => None,
                };
                if let (Some(target), Some(&path)) = (target, fields.first()) {
                    let version = if is_local_directory(path) {
                        String::new()
                    } else {
                        fields.get(1).copied().unwrap_or("").to_string()
                    };
                    target.replace = Some(Box::new(Module {
                        path: path.to_string(),
                        version,
                        replace: None,
                    }));
                }
                last = Last::Nothing;
            }
            "build" => {
                if let Some((key, value)) = rest.split_once('=') {
                    info.settings.push(BuildSetting {
                        key: key.to_string(),
                        value: value.to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    info
}

/// A `mod`/`dep` line's fields: path, version and an optional checksum.
fn module_line(fields: &[&str]) -> Option<Module> {
    match fields {
        [path, version] | [path, version, _] if !path.is_empty() => Some(Module {
            path: path.to_string(),
            version: version.to_string(),
            replace: None,
        }),
        _ => None,
    }
}

/// Whether a replacement names a directory rather than a module (Go's
/// `modfile.IsDirectoryPath`).
fn is_local_directory(path: &str) -> bool {
    path == "."
        || path == ".."
        || ["./", "../", "/", ".\\", "..\\"]
            .iter()
            .any(|prefix| path.starts_with(prefix))
        || path.as_bytes().get(1..3) == Some(b":\\")
}

#[cfg(test)]
mod tests;
