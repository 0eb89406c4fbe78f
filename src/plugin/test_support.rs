//! Test fixtures: tiny ELF files, Go build information blobs, in-memory tar layers and
//! image configs.

use std::io::Write;

use super::filesystem::{ApplyError, Filesystem};
use super::layer::{LayerChanges, LayerError, scan_layer};
use crate::oci::MediaType;

/// Go's module info framing (runtime/debug), written around the module text.
pub const SENTINEL_START: &[u8; 16] = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6";
pub const SENTINEL_END: &[u8; 16] = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2";

/// Builds a minimal ELF executable: header, program headers (one `PT_LOAD` covering the
/// file, optional `PT_INTERP` and `PT_DYNAMIC`), and their contents.
#[derive(Clone)]
pub struct ElfBuilder {
    machine: u16,
    class32: bool,
    big_endian: bool,
    interpreter: Option<String>,
    needed: Vec<String>,
    lead: usize,
    padding: usize,
    string_table_last: bool,
    trailer: Vec<u8>,
}

impl ElfBuilder {
    pub fn new(machine: u16) -> Self {
        ElfBuilder {
            machine,
            class32: false,
            big_endian: false,
            interpreter: None,
            needed: Vec::new(),
            lead: 0,
            padding: 0,
            string_table_last: false,
            trailer: Vec::new(),
        }
    }
    pub fn amd64() -> Self {
        Self::new(62)
    }
    pub fn arm64() -> Self {
        Self::new(183)
    }
    pub fn class32(mut self) -> Self {
        self.class32 = true;
        self
    }
    pub fn big_endian(mut self) -> Self {
        self.big_endian = true;
        self
    }
    pub fn interpreter(mut self, path: &str) -> Self {
        self.interpreter = Some(path.to_string());
        self
    }
    pub fn needed(mut self, libraries: &[&str]) -> Self {
        self.needed = libraries
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        self
    }
    /// Zero bytes before the string table and the dynamic section.
    pub fn lead(mut self, bytes: usize) -> Self {
        self.lead = bytes;
        self
    }
    /// Zero bytes between the string table and the dynamic section.
    pub fn padding(mut self, bytes: usize) -> Self {
        self.padding = bytes;
        self
    }
    /// Puts the string table after the dynamic section instead of before it.
    pub fn string_table_last(mut self) -> Self {
        self.string_table_last = true;
        self
    }
    /// Bytes appended at a 16-aligned offset, e.g. a Go build information blob.
    pub fn trailer(mut self, bytes: &[u8]) -> Self {
        self.trailer = bytes.to_vec();
        self
    }

    fn word_size(&self) -> usize {
        if self.class32 { 4 } else { 8 }
    }

    fn put(&self, out: &mut Vec<u8>, value: u64, size: usize) {
        let bytes = value.to_be_bytes();
        let bytes = &bytes[8 - size..];
        if self.big_endian {
            out.extend_from_slice(bytes);
        } else {
            out.extend(bytes.iter().rev());
        }
    }

    pub fn build(&self) -> Vec<u8> {
        const BASE: u64 = 0x40_0000;
        let word = self.word_size();
        let header_size = if self.class32 { 52 } else { 64 };
        let entry_size = if self.class32 { 32 } else { 56 };
        let dynamic = !self.needed.is_empty();
        let count = 1 + usize::from(self.interpreter.is_some()) + usize::from(dynamic);
        // Contents in file order after the program headers.
        let interpreter: Vec<u8> = self
            .interpreter
            .iter()
            .flat_map(|path| path.bytes().chain([0]))
            .collect();
        let mut strings = vec![0u8];
        let mut name_offsets = Vec::new();
        for name in &self.needed {
            name_offsets.push(strings.len() as u64);
            strings.extend(name.bytes().chain([0]));
        }
        let dynamic_size = (self.needed.len() + 3) * 2 * word;
        let interpreter_offset = header_size + count * entry_size;
        let after_interpreter = interpreter_offset + interpreter.len() + self.lead;
        let (strings_offset, dynamic_offset) = if self.string_table_last {
            let dynamic_offset = after_interpreter + self.padding;
            (dynamic_offset + dynamic_size, dynamic_offset)
        } else {
            (
                after_interpreter,
                after_interpreter + strings.len() + self.padding,
            )
        };
        let contents_end = if dynamic {
            (strings_offset + strings.len()).max(dynamic_offset + dynamic_size)
        } else {
            after_interpreter
        };
        let trailer_offset = contents_end.next_multiple_of(16);
        let total = trailer_offset + self.trailer.len();

        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(b"\x7fELF");
        out.push(if self.class32 { 1 } else { 2 });
        out.push(if self.big_endian { 2 } else { 1 });
        out.push(1);
        out.resize(16, 0);
        self.put(&mut out, 2, 2); // e_type: executable
        self.put(&mut out, u64::from(self.machine), 2);
        self.put(&mut out, 1, 4);
        self.put(&mut out, BASE, word); // e_entry
        self.put(&mut out, header_size as u64, word); // e_phoff
        self.put(&mut out, 0, word); // e_shoff
        self.put(&mut out, 0, 4); // e_flags
        self.put(&mut out, header_size as u64, 2);
        self.put(&mut out, entry_size as u64, 2);
        self.put(&mut out, count as u64, 2);
        self.put(&mut out, 0, 2);
        self.put(&mut out, 0, 2);
        self.put(&mut out, 0, 2);
        assert_eq!(out.len(), header_size);
        let program_header = |out: &mut Vec<u8>, kind: u64, offset: usize, size: usize| {
            let (offset, size) = (offset as u64, size as u64);
            self.put(out, kind, 4);
            if !self.class32 {
                self.put(out, 5, 4); // p_flags
            }
            self.put(out, offset, word);
            self.put(out, BASE + offset, word);
            self.put(out, BASE + offset, word);
            self.put(out, size, word);
            self.put(out, size, word);
            if self.class32 {
                self.put(out, 5, 4);
            }
            self.put(out, 16, word);
        };
        program_header(&mut out, 1, 0, total);
        if self.interpreter.is_some() {
            program_header(&mut out, 3, interpreter_offset, interpreter.len());
        }
        if dynamic {
            program_header(&mut out, 2, dynamic_offset, dynamic_size);
        }
        out.extend_from_slice(&interpreter);
        let mut dynamic_section = Vec::new();
        for offset in &name_offsets {
            self.put(&mut dynamic_section, 1, word);
            self.put(&mut dynamic_section, *offset, word);
        }
        for (tag, value) in [
            (5, BASE + strings_offset as u64),
            (10, strings.len() as u64),
            (0, 0),
        ] {
            self.put(&mut dynamic_section, tag, word);
            self.put(&mut dynamic_section, value, word);
        }
        if dynamic {
            let mut place = |offset: usize, bytes: &[u8]| {
                if out.len() < offset {
                    out.resize(offset, 0);
                }
                out.extend_from_slice(bytes);
            };
            if self.string_table_last {
                place(dynamic_offset, &dynamic_section);
                place(strings_offset, &strings);
            } else {
                place(strings_offset, &strings);
                place(dynamic_offset, &dynamic_section);
            }
        }
        out.resize(trailer_offset, 0);
        out.extend_from_slice(&self.trailer);
        out
    }
}

/// Go's unsigned varint.
pub fn uvarint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

/// A Go >= 1.18 build information blob (32-byte header, then inline strings).
pub fn go_buildinfo(version: &str, module_info: &str) -> Vec<u8> {
    let mut blob = b"\xff Go buildinf:".to_vec();
    blob.extend_from_slice(&[8, 2]);
    blob.resize(32, 0);
    blob.extend(uvarint(version.len() as u64));
    blob.extend_from_slice(version.as_bytes());
    let mut framed = SENTINEL_START.to_vec();
    framed.extend_from_slice(module_info.as_bytes());
    framed.extend_from_slice(SENTINEL_END);
    blob.extend(uvarint(framed.len() as u64));
    blob.extend(framed);
    blob
}

/// One tar entry to write.
#[derive(Clone, Copy)]
pub enum Item<'a> {
    File(&'a str, u32, &'a [u8]),
    Directory(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    /// A regular file whose name is written into the header as is, unchecked.
    RawName(&'a str, &'a [u8]),
}

/// An uncompressed tar stream of `items`.
pub fn tar(items: &[Item]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for item in items {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        match *item {
            Item::File(path, mode, data) => {
                header.set_mode(mode);
                header.set_size(data.len() as u64);
                header.set_entry_type(tar::EntryType::Regular);
                builder.append_data(&mut header, path, data).unwrap();
            }
            Item::Directory(path) => {
                header.set_mode(0o755);
                header.set_size(0);
                header.set_entry_type(tar::EntryType::Directory);
                builder.append_data(&mut header, path, &[][..]).unwrap();
            }
            Item::Symlink(path, target) | Item::HardLink(path, target) => {
                let kind = match item {
                    Item::Symlink(..) => tar::EntryType::Symlink,
                    _ => tar::EntryType::Link,
                };
                header.set_mode(0o777);
                header.set_size(0);
                header.set_entry_type(kind);
                builder.append_link(&mut header, path, target).unwrap();
            }
            Item::RawName(name, data) => {
                header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
                header.set_mode(0o755);
                header.set_size(data.len() as u64);
                header.set_entry_type(tar::EntryType::Regular);
                header.set_cksum();
                builder.append(&header, data).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 1).unwrap()
}

pub const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A layer blob and its media type.
pub struct Layer {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// A layer of `bytes` read as `media_type`.
pub fn layer(media_type: &str, bytes: Vec<u8>) -> Layer {
    Layer {
        media_type: media_type.to_string(),
        bytes,
    }
}

/// A gzip layer of `items`, the common case.
pub fn gzip_layer(items: &[Item]) -> Layer {
    layer(TAR_GZIP, gzip(&tar(items)))
}

/// Reads one layer.
pub fn scan(layer: &Layer) -> Result<LayerChanges, LayerError> {
    scan_layer(&MediaType::new(layer.media_type.clone()), &layer.bytes[..])
}

/// Why [`apply_layers`] failed: reading layer N, or applying.
#[derive(Debug)]
pub enum Failure {
    Layer(usize, LayerError),
    Apply(ApplyError),
}

/// Reads `layers` each on its own, as the checks do, then applies them in order.
pub fn apply_layers(layers: impl IntoIterator<Item = Layer>) -> Result<Filesystem, Failure> {
    let changes = layers
        .into_iter()
        .enumerate()
        .map(|(index, layer)| scan(&layer).map_err(|error| Failure::Layer(index, error)))
        .collect::<Result<Vec<_>, _>>()?;
    Filesystem::from_layers(&changes).map_err(Failure::Apply)
}

pub fn image_config(argv: &[&str], user: Option<&str>, architecture: &str) -> Vec<u8> {
    let mut runtime =
        serde_json::json!({ "Entrypoint": argv, "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"] });
    if let Some(user) = user {
        runtime["User"] = user.into();
    }
    serde_json::to_vec(
        &serde_json::json!({ "os": "linux", "architecture": architecture, "config": runtime }),
    )
    .unwrap()
}

/// A static amd64 ELF with Go build information: main module `module`, built
/// against Velero `velero`.
pub fn plugin_binary(module: &str, velero: &str) -> Vec<u8> {
    let info = format!(
        "path\t{module}\nmod\t{module}\tv1.0.0\th1:x=\ndep\tgithub.com/vmware-tanzu/velero\t{velero}\th1:y=\nbuild\tCGO_ENABLED=0\n"
    );
    ElfBuilder::amd64()
        .trailer(&go_buildinfo("go1.24.2", &info))
        .build()
}

/// A static amd64 ELF without Go build information (cp-plugin, busybox).
pub fn static_tool() -> Vec<u8> {
    ElfBuilder::amd64().build()
}

/// A layer with a static busybox at /bin/busybox, /bin/cp and /bin/sh linking to it,
/// and `extra`.
pub fn busybox_layer(extra: &[Item]) -> Layer {
    let busybox = static_tool();
    let mut items = vec![
        Item::File("bin/busybox", 0o755, &busybox),
        Item::Symlink("bin/cp", "busybox"),
        Item::Symlink("bin/sh", "/bin/busybox"),
    ];
    items.extend_from_slice(extra);
    gzip_layer(&items)
}
