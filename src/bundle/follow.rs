//! The prefix follower: a thread that reads the laid-out archive as far as it is
//! complete and feeds it to the output — a SHA-256 for a plain `.tar`, a compressor
//! (whose output is hashed) otherwise. Blobs filled in file order let it keep pace with
//! the download, so `finish` has little left to do.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::thread::JoinHandle;

use sha2::{Digest as _, Sha256};

use super::layout::Compression;
use super::slots::{Shared, SlotState};
use crate::oci::Digest;

/// Bytes read and fed per step. The follower only feeds whole chunks at fixed offsets
/// (except the last), so a compressor sees the same calls on every run and the output
/// is byte-identical however the slots were filled.
const CHUNK: u64 = 1 << 20;

/// zstd level: layers are already compressed, so a fast level loses nothing.
const ZSTD_LEVEL: i32 = 3;

/// What the follower produced.
pub(crate) struct Followed {
    /// Digest of the bundle file.
    pub(crate) sha256: Digest,
    /// Size of the bundle file.
    pub(crate) size: u64,
    /// The compressed file, when the bundle is compressed.
    pub(crate) compressed: Option<File>,
}

/// A file that hashes what is written to it.
struct HashingFile {
    file: File,
    hasher: Sha256,
    written: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Where the archive's bytes go.
enum Sink {
    Plain(Sha256, u64),
    Zstd(zstd::stream::write::Encoder<'static, HashingFile>),
    Gzip(flate2::write::GzEncoder<HashingFile>),
}

impl Sink {
    fn new(compression: Compression, output: Option<File>, archive_size: u64) -> io::Result<Self> {
        let hashing = |file| HashingFile {
            file,
            hasher: Sha256::new(),
            written: 0,
        };
        Ok(match (compression, output) {
            (Compression::Zstd, Some(file)) => {
                let mut encoder = zstd::stream::write::Encoder::new(hashing(file), ZSTD_LEVEL)?;
                encoder.set_pledged_src_size(Some(archive_size))?;
                encoder.include_checksum(true)?;
                Self::Zstd(encoder)
            }
            (Compression::Gzip, Some(file)) => Self::Gzip(flate2::write::GzEncoder::new(
                hashing(file),
                flate2::Compression::fast(),
            )),
            _ => Self::Plain(Sha256::new(), 0),
        })
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(hasher, size) => {
                hasher.update(bytes);
                *size += bytes.len() as u64;
                Ok(())
            }
            Self::Zstd(encoder) => encoder.write_all(bytes),
            Self::Gzip(encoder) => encoder.write_all(bytes),
        }
    }

    fn finish(self) -> io::Result<Followed> {
        let hashed = |hashing: HashingFile| Followed {
            sha256: Digest::from_hasher(hashing.hasher),
            size: hashing.written,
            compressed: Some(hashing.file),
        };
        Ok(match self {
            Self::Plain(hasher, size) => Followed {
                sha256: Digest::from_hasher(hasher),
                size,
                compressed: None,
            },
            Self::Zstd(encoder) => hashed(encoder.finish()?),
            Self::Gzip(encoder) => hashed(encoder.finish()?),
        })
    }
}

/// Starts the follower. `output` is the compressed temp file for compressed bundles.
/// The thread ends with an `Interrupted` error when the writer is abandoned.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    compression: Compression,
    output: Option<File>,
) -> io::Result<JoinHandle<io::Result<Followed>>> {
    let sink = Sink::new(compression, output, shared.archive_size)?;
    std::thread::Builder::new()
        .name("bundle-follow".into())
        .spawn(move || follow(&shared, sink))
}

fn follow(shared: &Shared, mut sink: Sink) -> io::Result<Followed> {
    let total = shared.archive_size;
    let mut buffer = vec![0u8; CHUNK as usize];
    let mut fed = 0u64;
    let mut next_slot = 0usize;
    while fed < total {
        let ready = {
            let mut state = shared.lock();
            loop {
                if state.aborted {
                    return Err(io::Error::new(
                        io::ErrorKind::Interrupted,
                        "bundle writer abandoned",
                    ));
                }
                while next_slot < shared.slots.len() && state.slots[next_slot] == SlotState::Filled
                {
                    next_slot += 1;
                }
                let complete = shared
                    .slots
                    .get(next_slot)
                    .map_or(total, |slot| slot.data_offset);
                let feedable = if complete == total {
                    total
                } else {
                    complete / CHUNK * CHUNK
                };
                if feedable > fed {
                    break feedable;
                }
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        };
        while fed < ready {
            // Compression of a large bundle takes a while: notice an abort between chunks.
            if shared.lock().aborted {
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "bundle writer abandoned",
                ));
            }
            let length = CHUNK.min(ready - fed) as usize;
            shared.file.read_exact_at(&mut buffer[..length], fed)?;
            sink.write_all(&buffer[..length])?;
            fed += length as u64;
        }
    }
    sink.finish()
}
