//! The byte stream under the reader. The raw file is read in large chunks that are
//! shared with a second thread hashing the whole file (for the sidecar), so the outer
//! hash and the entry hashes run on two cores at once; the chunks then pass through the
//! decompressor the magic bytes call for, and the tar framing is cut strictly on top.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use sha2::{Digest as _, Sha256};

use super::layout::{BLOCK, Compression, END_OF_ARCHIVE, entry_span};
use super::problem::ProblemKind;
use super::ustar::{self, EntryHeader, HEADER_SIZE};
use crate::oci::Digest;

/// Raw read size; a multiple of the tar block so plain headers never straddle chunks.
const CHUNK: usize = 512 * 1024;
/// Chunks alive at once (being parsed, queued, or being hashed): bounds memory.
const IN_FLIGHT: usize = 4;
/// Buffer between a decompressor and the tar parser.
const DECODED_BUFFER: usize = 256 * 1024;
/// Largest zstd window accepted (2^24 = 16 MiB): enough for `zstd -19`, and a bound on
/// what a hostile frame can make the decoder allocate.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;
/// Zero bytes tolerated after the end-of-archive marker (one tar record of padding).
pub(crate) const TRAILING_SLACK: u64 = 10_240;

struct Chunk {
    bytes: Vec<u8>,
    len: usize,
}

/// Progress of a pass over a bundle file, for the caller to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassEvent {
    /// The pass starts over a file of this size.
    Started {
        /// Size of the bundle file in bytes.
        file_size: u64,
    },
    /// Bytes of the file read since the last event.
    Read {
        /// How many.
        bytes: u64,
    },
}

/// Receives [`PassEvent`]s; the pass may run on a thread of its own.
pub type PassProgress = std::sync::Arc<dyn Fn(PassEvent) + Send + Sync>;

/// Reads the file and hands every chunk to the hashing thread as well.
pub(crate) struct RawReader {
    file: File,
    progress: Option<PassProgress>,
    current: Option<Arc<Chunk>>,
    position: usize,
    to_hasher: Option<SyncSender<Arc<Chunk>>>,
    returned: Receiver<Arc<Chunk>>,
    hasher: Option<JoinHandle<Digest>>,
    allocated: usize,
    eof: bool,
}

impl RawReader {
    fn new(file: File, progress: Option<PassProgress>) -> io::Result<Self> {
        let (to_hasher, chunks) = mpsc::sync_channel::<Arc<Chunk>>(IN_FLIGHT);
        let (give_back, returned) = mpsc::channel();
        let hasher = std::thread::Builder::new()
            .name("bundle-hash".into())
            .spawn(move || {
                let mut hasher = Sha256::new();
                for chunk in chunks {
                    hasher.update(&chunk.bytes[..chunk.len]);
                    // The reader may be gone already; then the chunk is simply freed.
                    let _ = give_back.send(chunk);
                }
                Digest::from_hasher(hasher)
            })?;
        Ok(Self {
            file,
            progress,
            current: None,
            position: 0,
            to_hasher: Some(to_hasher),
            returned,
            hasher: Some(hasher),
            allocated: 0,
            eof: false,
        })
    }

    /// A buffer the hasher is done with, or a new one while fewer than `IN_FLIGHT` exist.
    fn free_buffer(&mut self) -> Vec<u8> {
        let recycled = if self.allocated < IN_FLIGHT {
            self.returned.try_recv().ok()
        } else {
            self.returned.recv().ok()
        };
        // Our own reference to a returned chunk was dropped before reading the next one.
        match recycled.and_then(|chunk| Arc::try_unwrap(chunk).ok()) {
            Some(chunk) => chunk.bytes,
            None => {
                self.allocated += 1;
                vec![0; CHUNK]
            }
        }
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        self.current = None;
        let mut bytes = self.free_buffer();
        let mut len = 0;
        while len < CHUNK {
            match self.file.read(&mut bytes[len..]) {
                Ok(0) => break,
                Ok(read) => len += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        if len == 0 {
            self.eof = true;
            return Ok(());
        }
        if let Some(progress) = &self.progress {
            progress(PassEvent::Read { bytes: len as u64 });
        }
        let chunk = Arc::new(Chunk { bytes, len });
        if let Some(to_hasher) = &self.to_hasher {
            to_hasher
                .send(Arc::clone(&chunk))
                .map_err(|_| io::Error::other("the hashing thread stopped"))?;
        }
        self.current = Some(chunk);
        self.position = 0;
        Ok(())
    }

    /// Reads the rest of the file (so the whole file is hashed) and returns the file's
    /// digest and how many bytes were left unread before this call.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        let mut left = 0u64;
        loop {
            let available = self.fill_buf()?.len();
            if available == 0 {
                break;
            }
            left += available as u64;
            self.consume(available);
        }
        self.current = None;
        self.to_hasher = None;
        let digest = self
            .hasher
            .take()
            .map(JoinHandle::join)
            .and_then(Result::ok)
            .ok_or_else(|| io::Error::other("the hashing thread failed"))?;
        Ok((digest, left))
    }
}

impl Drop for RawReader {
    fn drop(&mut self) {
        self.to_hasher = None;
        if let Some(hasher) = self.hasher.take() {
            let _ = hasher.join();
        }
    }
}

impl Read for RawReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let read = available.len().min(buf.len());
        buf[..read].copy_from_slice(&available[..read]);
        self.consume(read);
        Ok(read)
    }
}

impl BufRead for RawReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let exhausted = self
            .current
            .as_ref()
            .is_none_or(|chunk| self.position >= chunk.len);
        if exhausted && !self.eof {
            self.next_chunk()?;
        }
        Ok(match &self.current {
            Some(chunk) => &chunk.bytes[self.position..chunk.len],
            None => &[],
        })
    }

    fn consume(&mut self, amount: usize) {
        self.position += amount;
    }
}

/// The decompressed tar stream.
pub(crate) enum Stream {
    Plain(RawReader),
    Zstd(BufReader<zstd::stream::read::Decoder<'static, RawReader>>),
    Gzip(BufReader<flate2::bufread::GzDecoder<RawReader>>),
}

impl Stream {
    /// Opens `file`, choosing the decompressor from its first bytes; `progress` hears of
    /// every chunk of the file read.
    pub(crate) fn new(
        file: File,
        progress: Option<PassProgress>,
    ) -> io::Result<(Self, Compression)> {
        let mut raw = RawReader::new(file, progress)?;
        let compression = Compression::from_magic(raw.fill_buf()?);
        let stream = match compression {
            Compression::None => Self::Plain(raw),
            Compression::Zstd => {
                // One frame: the format allows nothing after it, and a second frame would be data no
                // listing accounts for.
                let mut decoder = zstd::stream::read::Decoder::with_buffer(raw)?.single_frame();
                decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                Self::Zstd(BufReader::with_capacity(DECODED_BUFFER, decoder))
            }
            Compression::Gzip => Self::Gzip(BufReader::with_capacity(
                DECODED_BUFFER,
                flate2::bufread::GzDecoder::new(raw),
            )),
        };
        Ok((stream, compression))
    }

    /// The raw reader, for the outer hash.
    pub(crate) fn into_raw(self) -> RawReader {
        match self {
            Self::Plain(raw) => raw,
            Self::Zstd(reader) => reader.into_inner().finish(),
            Self::Gzip(reader) => reader.into_inner().into_inner(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(raw) => raw.read(buf),
            Self::Zstd(reader) => reader.read(buf),
            Self::Gzip(reader) => reader.read(buf),
        }
    }
}

impl BufRead for Stream {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Self::Plain(raw) => raw.fill_buf(),
            Self::Zstd(reader) => reader.fill_buf(),
            Self::Gzip(reader) => reader.fill_buf(),
        }
    }

    fn consume(&mut self, amount: usize) {
        match self {
            Self::Plain(raw) => raw.consume(amount),
            Self::Zstd(reader) => reader.consume(amount),
            Self::Gzip(reader) => reader.consume(amount),
        }
    }
}

/// Tar framing over the stream, never reading past `limit` bytes of archive.
pub(crate) struct TarCursor {
    pub(crate) stream: Stream,
    /// Archive bytes consumed.
    pub(crate) position: u64,
    /// Size of the archive as declared; nothing past it is read.
    pub(crate) limit: u64,
}

/// A problem that ends reading.
pub(crate) type Fatal = ProblemKind;

fn read_failure(error: &io::Error) -> Fatal {
    ProblemKind::Read(error.to_string())
}

impl TarCursor {
    /// The next header, or `None` at the end-of-archive marker.
    pub(crate) fn header(&mut self) -> Result<Option<EntryHeader>, Fatal> {
        let mut block = [0u8; HEADER_SIZE];
        if self.position + BLOCK > self.limit {
            return Err(ProblemKind::ExpandsPastDeclared { limit: self.limit });
        }
        self.read_block(&mut block)?;
        if ustar::is_zero_block(&block) {
            self.read_block(&mut block)?;
            return if ustar::is_zero_block(&block) {
                Ok(None)
            } else {
                Err(ProblemKind::Malformed(
                    "a lone zero block inside the archive".into(),
                ))
            };
        }
        ustar::decode(&block)
            .map(Some)
            .map_err(|error| ProblemKind::Malformed(error.to_string()))
    }

    /// Checks, before any data is read, that an entry of `size` bytes whose header was
    /// just read still leaves room for the end marker within the declared archive.
    pub(crate) fn check_room(&self, size: u64) -> Result<(), Fatal> {
        let end = (self.position - BLOCK)
            .saturating_add(entry_span(size))
            .saturating_add(END_OF_ARCHIVE);
        if end > self.limit {
            return Err(ProblemKind::ExpandsPastDeclared { limit: self.limit });
        }
        Ok(())
    }

    fn read_block(&mut self, block: &mut [u8; HEADER_SIZE]) -> Result<(), Fatal> {
        let mut filled = 0;
        while filled < HEADER_SIZE {
            match self.stream.read(&mut block[filled..]) {
                Ok(0) => return Err(ProblemKind::MissingEnd),
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(read_failure(&error)),
            }
        }
        self.position += BLOCK;
        Ok(())
    }

    /// Hands up to `max` bytes of entry data to `visit`; `Ok(0)` only when `max` is 0.
    pub(crate) fn data(
        &mut self,
        max: u64,
        entry_size: u64,
        done: u64,
        visit: impl FnOnce(&[u8]),
    ) -> Result<usize, Fatal> {
        if max == 0 {
            return Ok(0);
        }
        let available = loop {
            match self.stream.fill_buf() {
                Ok(available) => break available,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(read_failure(&error)),
            }
        };
        if available.is_empty() {
            return Err(ProblemKind::Truncated {
                expected: entry_size,
                read: done,
            });
        }
        let taken = available
            .len()
            .min(usize::try_from(max).unwrap_or(usize::MAX));
        visit(&available[..taken]);
        self.stream.consume(taken);
        self.position += taken as u64;
        Ok(taken)
    }

    /// Reads a whole entry's data through `visit`, then its padding.
    pub(crate) fn entry(&mut self, size: u64, mut visit: impl FnMut(&[u8])) -> Result<(), Fatal> {
        let mut done = 0;
        while done < size {
            done += self.data(size - done, size, done, &mut visit)? as u64;
        }
        self.padding(size)
    }

    /// Skips the zero padding after `size` bytes of data.
    pub(crate) fn padding(&mut self, size: u64) -> Result<(), Fatal> {
        let mut left = size.next_multiple_of(BLOCK) - size;
        while left > 0 {
            left -= self.data(left, size, size, |_| {})? as u64;
        }
        Ok(())
    }

    /// After the end marker: `Ok(true)` if at most [`TRAILING_SLACK`] zero bytes follow.
    pub(crate) fn clean_tail(&mut self) -> Result<bool, Fatal> {
        let mut seen = 0u64;
        loop {
            let available = self
                .stream
                .fill_buf()
                .map_err(|error| read_failure(&error))?;
            if available.is_empty() {
                return Ok(true);
            }
            let length = available.len();
            if available.iter().any(|byte| *byte != 0) || seen + length as u64 > TRAILING_SLACK {
                return Ok(false);
            }
            seen += length as u64;
            self.stream.consume(length);
        }
    }
}
