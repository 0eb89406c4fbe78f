//! Streaming ELF reader: from a file fed chunk by chunk, the architecture, the program
//! interpreter (its absence means statically linked) and the `DT_NEEDED` libraries.
//!
//! The file is read once, front to back, so every table is captured as it passes. The
//! first [`ELF_PREFIX_BYTES`] are kept as well, because the dynamic string table usually
//! comes before the dynamic section that locates it. When the string table is both past
//! the prefix and before the dynamic section (Go's internal linker does that in large
//! binaries), the library names cannot be read and [`ElfInfo::needed_known`] is false.

/// How much of the start of a file is kept to serve tables located after they passed.
pub const ELF_PREFIX_BYTES: usize = 1024 * 1024;
/// Largest program header table, dynamic section or string table captured.
pub const MAX_ELF_TABLE_BYTES: usize = 1024 * 1024;
/// Longest interpreter path read.
pub const MAX_INTERPRETER_BYTES: usize = 4096;
/// Most `DT_NEEDED` entries kept.
pub const MAX_NEEDED: usize = 1024;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
/// `e_phnum` value meaning "more than fit here, see section 0"; not followed.
const PN_XNUM: u64 = 0xffff;

/// What the ELF headers say about an executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// 32 or 64.
    pub class_bits: u8,
    /// Whether the data encoding is big-endian.
    pub big_endian: bool,
    /// `e_machine`.
    pub machine: u16,
    /// The OCI architecture name for `machine`, when it is one we know.
    pub architecture: Option<&'static str>,
    /// Whether the program headers were read; if not, linkage is unknown.
    pub program_headers_read: bool,
    /// The `PT_INTERP` path: present means dynamically linked. Empty when the
    /// header exists but its bytes could not be read.
    pub interpreter: Option<String>,
    /// `DT_NEEDED` library names; complete only when `needed_known`.
    pub needed: Vec<String>,
    /// Whether `needed` is the complete list.
    pub needed_known: bool,
}

impl ElfInfo {
    /// Whether statically linked: no interpreter. `None` when the program headers were not read.
    pub fn is_static(&self) -> Option<bool> {
        self.program_headers_read
            .then_some(self.interpreter.is_none())
    }
}

/// The OCI architecture for an ELF machine number.
pub fn architecture_name(machine: u16, class_bits: u8, big_endian: bool) -> Option<&'static str> {
    match (machine, class_bits, big_endian) {
        (62, 64, false) => Some("amd64"),
        (183, 64, false) => Some("arm64"),
        (21, 64, false) => Some("ppc64le"),
        (21, 64, true) => Some("ppc64"),
        (22, 64, true) => Some("s390x"),
        (40, 32, false) => Some("arm"),
        (3, 32, false) => Some("386"),
        (243, 64, false) => Some("riscv64"),
        (258, 64, false) => Some("loong64"),
        _ => None,
    }
}

/// Which table a capture is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Identification,
    Header,
    ProgramHeaders,
    Interpreter,
    Dynamic,
    StringTable,
}

/// A byte range to capture as the stream passes it.
struct Capture {
    purpose: Purpose,
    start: u64,
    length: usize,
    bytes: Vec<u8>,
}

/// Progress of one capture against the bytes seen so far.
enum Fill {
    Complete,
    Pending,
    /// Its next byte went by before it was asked for and is not in the prefix.
    Lost,
}

/// Field layout and byte order of one file.
#[derive(Debug, Clone, Copy)]
struct Layout {
    class_bits: u8,
    big_endian: bool,
}

impl Layout {
    fn bytes<const N: usize>(self, data: &[u8], offset: usize) -> Option<[u8; N]> {
        data.get(offset..offset.checked_add(N)?)?.try_into().ok()
    }
    fn u16(self, data: &[u8], offset: usize) -> Option<u64> {
        let bytes = self.bytes::<2>(data, offset)?;
        Some(u64::from(if self.big_endian {
            u16::from_be_bytes(bytes)
        } else {
            u16::from_le_bytes(bytes)
        }))
    }
    fn u32(self, data: &[u8], offset: usize) -> Option<u64> {
        let bytes = self.bytes::<4>(data, offset)?;
        Some(u64::from(if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        }))
    }
    fn u64(self, data: &[u8], offset: usize) -> Option<u64> {
        let bytes = self.bytes::<8>(data, offset)?;
        Some(if self.big_endian {
            u64::from_be_bytes(bytes)
        } else {
            u64::from_le_bytes(bytes)
        })
    }
    /// An address-sized field (`Elf32_Addr`/`Elf64_Addr`, `Off`, `Xword`).
    fn word(self, data: &[u8], offset: usize) -> Option<u64> {
        if self.class_bits == 64 {
            self.u64(data, offset)
        } else {
            self.u32(data, offset)
        }
    }
    fn is_64(self) -> bool {
        self.class_bits == 64
    }
}

/// A `PT_LOAD` segment, to turn the string table's address into a file offset.
struct Load {
    offset: u64,
    address: u64,
    file_size: u64,
}

/// Reads an ELF file fed front to back; see the module documentation.
pub struct ElfScanner {
    consumed: u64,
    prefix: Vec<u8>,
    not_elf: bool,
    captures: Vec<Capture>,
    layout: Option<Layout>,
    machine: u16,
    program_headers_read: bool,
    /// `e_phentsize`, at least the size of the fields read.
    program_header_size: usize,
    loads: Vec<Load>,
    interpreter: Option<String>,
    needed_offsets: Vec<u64>,
    needed: Vec<String>,
    needed_known: bool,
}

impl Default for ElfScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ElfScanner {
    /// A scanner at the start of a file.
    pub fn new() -> ElfScanner {
        ElfScanner {
            consumed: 0,
            prefix: Vec::new(),
            not_elf: false,
            captures: vec![Capture::new(Purpose::Identification, 0, 16)],
            layout: None,
            machine: 0,
            program_headers_read: false,
            program_header_size: 0,
            loads: Vec::new(),
            interpreter: None,
            needed_offsets: Vec::new(),
            needed: Vec::new(),
            needed_known: false,
        }
    }

    /// Whether more bytes can change the outcome.
    pub fn wants_more(&self) -> bool {
        !self.captures.is_empty()
    }

    /// Whether the bytes so far rule out an ELF file.
    pub fn is_not_elf(&self) -> bool {
        self.not_elf
    }

    /// Takes the next bytes of the file.
    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.wants_more() {
            return;
        }
        let chunk_start = self.consumed;
        self.consumed += chunk.len() as u64;
        let room = ELF_PREFIX_BYTES.saturating_sub(self.prefix.len());
        self.prefix
            .extend_from_slice(&chunk[..room.min(chunk.len())]);
        let mut index = 0;
        while index < self.captures.len() {
            match self.captures[index].fill(&self.prefix, chunk, chunk_start) {
                Fill::Pending => index += 1,
                Fill::Complete => {
                    let capture = self.captures.swap_remove(index);
                    self.handle(capture, true);
                }
                Fill::Lost => {
                    let capture = self.captures.swap_remove(index);
                    self.handle(capture, false);
                }
            }
        }
    }

    /// The result once the whole file went by; `None` when it is not an ELF file.
    pub fn finish(mut self) -> Option<ElfInfo> {
        // Whatever is still pending was cut short by the end of the file.
        while let Some(capture) = self.captures.pop() {
            self.handle(capture, false);
        }
        let layout = self.layout.filter(|_| !self.not_elf)?;
        Some(ElfInfo {
            class_bits: layout.class_bits,
            big_endian: layout.big_endian,
            machine: self.machine,
            architecture: architecture_name(self.machine, layout.class_bits, layout.big_endian),
            program_headers_read: self.program_headers_read,
            interpreter: self.interpreter,
            needed: self.needed,
            needed_known: self.needed_known,
        })
    }

    /// Acts on a finished capture; `complete` is false when it ended short.
    fn handle(&mut self, capture: Capture, complete: bool) {
        match capture.purpose {
            Purpose::Identification if complete => self.identify(&capture.bytes),
            Purpose::Header if complete => self.read_header(&capture.bytes),
            Purpose::ProgramHeaders if complete => self.read_program_headers(&capture.bytes),
            Purpose::Interpreter => {
                let text = capture.bytes.split(|&byte| byte == 0).next().unwrap_or(&[]);
                self.interpreter = Some(String::from_utf8_lossy(text).into_owned());
            }
            Purpose::Dynamic if complete => self.read_dynamic(&capture.bytes),
            Purpose::StringTable => self.read_needed_names(&capture.bytes),
            Purpose::Identification | Purpose::Header => self.not_elf = true,
            Purpose::ProgramHeaders | Purpose::Dynamic => {}
        }
        if self.not_elf {
            self.captures.clear();
        }
    }

    fn identify(&mut self, identification: &[u8]) {
        let class_bits = match identification.get(4) {
            Some(1) => 32,
            Some(2) => 64,
            _ => 0,
        };
        let big_endian = match identification.get(5) {
            Some(1) => Some(false),
            Some(2) => Some(true),
            _ => None,
        };
        match (
            identification.starts_with(b"\x7fELF"),
            class_bits,
            big_endian,
        ) {
            (true, 32 | 64, Some(big_endian)) => {
                let layout = Layout {
                    class_bits,
                    big_endian,
                };
                self.layout = Some(layout);
                let length = if layout.is_64() { 64 } else { 52 };
                self.captures.push(Capture::new(Purpose::Header, 0, length));
            }
            _ => self.not_elf = true,
        }
    }

    fn read_header(&mut self, header: &[u8]) {
        let Some(layout) = self.layout else { return };
        let fields = if layout.is_64() {
            (
                layout.u16(header, 18),
                layout.u64(header, 32),
                layout.u16(header, 54),
                layout.u16(header, 56),
            )
        } else {
            (
                layout.u16(header, 18),
                layout.u32(header, 28),
                layout.u16(header, 42),
                layout.u16(header, 44),
            )
        };
        let (Some(machine), Some(offset), Some(entry_size), Some(count)) = fields else {
            self.not_elf = true;
            return;
        };
        self.machine = u16::try_from(machine).unwrap_or(u16::MAX);
        let minimum_entry = if layout.is_64() { 56 } else { 32 };
        let length = entry_size.saturating_mul(count);
        if count == 0 {
            // No program headers: nothing is loaded through an interpreter.
            self.program_headers_read = true;
            self.needed_known = true;
        } else if count != PN_XNUM
            && entry_size >= minimum_entry
            && length <= MAX_ELF_TABLE_BYTES as u64
        {
            self.program_header_size = entry_size as usize;
            self.captures.push(Capture::new(
                Purpose::ProgramHeaders,
                offset,
                length as usize,
            ));
        }
    }

    fn read_program_headers(&mut self, table: &[u8]) {
        let Some(layout) = self.layout else { return };
        self.program_headers_read = true;
        let mut dynamic = None;
        for entry in table.chunks_exact(self.program_header_size) {
            let fields = if layout.is_64() {
                (
                    layout.u32(entry, 0),
                    layout.u64(entry, 8),
                    layout.u64(entry, 16),
                    layout.u64(entry, 32),
                )
            } else {
                (
                    layout.u32(entry, 0),
                    layout.u32(entry, 4),
                    layout.u32(entry, 8),
                    layout.u32(entry, 16),
                )
            };
            let (Some(kind), Some(offset), Some(address), Some(file_size)) = fields else {
                continue;
            };
            match kind as u32 {
                PT_LOAD => self.loads.push(Load {
                    offset,
                    address,
                    file_size,
                }),
                PT_INTERP => {
                    let length = file_size.min(MAX_INTERPRETER_BYTES as u64) as usize;
                    self.captures
                        .push(Capture::new(Purpose::Interpreter, offset, length));
                }
                PT_DYNAMIC => dynamic = Some((offset, file_size)),
                _ => {}
            }
        }
        match dynamic {
            None => self.needed_known = true,
            Some((offset, size)) if size <= MAX_ELF_TABLE_BYTES as u64 => {
                self.captures
                    .push(Capture::new(Purpose::Dynamic, offset, size as usize));
            }
            Some(_) => {}
        }
    }

    fn read_dynamic(&mut self, section: &[u8]) {
        let Some(layout) = self.layout else { return };
        let entry_size = if layout.is_64() { 16 } else { 8 };
        let half = entry_size / 2;
        let (mut table_address, mut table_size) = (None, None);
        for entry in section.chunks_exact(entry_size) {
            let (Some(tag), Some(value)) = (layout.word(entry, 0), layout.word(entry, half)) else {
                break;
            };
            match tag {
                DT_NULL => break,
                DT_NEEDED if self.needed_offsets.len() < MAX_NEEDED => {
                    self.needed_offsets.push(value);
                }
                DT_STRTAB => table_address = Some(value),
                DT_STRSZ => table_size = Some(value),
                _ => {}
            }
        }
        if self.needed_offsets.is_empty() {
            self.needed_known = true;
            return;
        }
        let located = table_address.and_then(|address| {
            self.loads.iter().find_map(|load| {
                let within = address.checked_sub(load.address)?;
                (within < load.file_size).then(|| load.offset + within)
            })
        });
        if let Some(offset) = located {
            let size = table_size.unwrap_or(MAX_ELF_TABLE_BYTES as u64);
            let length = size.min(MAX_ELF_TABLE_BYTES as u64) as usize;
            self.captures
                .push(Capture::new(Purpose::StringTable, offset, length));
        }
    }

    /// Names at the `DT_NEEDED` offsets of a (possibly partial) string table.
    fn read_needed_names(&mut self, table: &[u8]) {
        let mut all = true;
        for &offset in &self.needed_offsets {
            let name = usize::try_from(offset)
                .ok()
                .and_then(|offset| table.get(offset..))
                .and_then(|rest| rest.split(|&byte| byte == 0).next().zip(Some(rest)))
                .filter(|(name, rest)| name.len() < rest.len());
            match name {
                Some((name, _)) => self.needed.push(String::from_utf8_lossy(name).into_owned()),
                None => all = false,
            }
        }
        self.needed_known = all;
    }
}

impl Capture {
    fn new(purpose: Purpose, start: u64, length: usize) -> Capture {
        Capture {
            purpose,
            start,
            length,
            bytes: Vec::with_capacity(length.min(64 * 1024)),
        }
    }

    /// Copies what the prefix and `chunk` (at file offset `chunk_start`) hold of the range.
    fn fill(&mut self, prefix: &[u8], chunk: &[u8], chunk_start: u64) -> Fill {
        let chunk_end = chunk_start + chunk.len() as u64;
        loop {
            let Some(position) = self.start.checked_add(self.bytes.len() as u64) else {
                return Fill::Lost;
            };
            let Some(end) = self.start.checked_add(self.length as u64) else {
                return Fill::Lost;
            };
            if position >= end {
                return Fill::Complete;
            }
            let (source, source_start) = if position < prefix.len() as u64 {
                (prefix, 0)
            } else if position >= chunk_start && position < chunk_end {
                (chunk, chunk_start)
            } else if position >= chunk_end {
                return Fill::Pending;
            } else {
                return Fill::Lost;
            };
            let from = (position - source_start) as usize;
            let to = (end - source_start).min(source.len() as u64) as usize;
            self.bytes.extend_from_slice(&source[from..to]);
        }
    }
}

#[cfg(test)]
mod tests;
