//! Where fetched blob bytes go.
//!
//! A retry restarts a blob from its first byte, so a sink must be able to forget what it
//! received. Writes are synchronous: the intended sink is a positioned write into the bundle
//! file (page cache, microseconds), and an async trait would cost a poll per chunk for nothing.

use std::io::{Seek, SeekFrom, Write};

/// Receives one blob's bytes, in order, possibly several times over (after [`reset`]).
///
/// [`reset`]: BlobSink::reset
pub trait BlobSink: Send {
    /// Appends `bytes` to what was received since the last reset.
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Forgets everything written so far; the blob will be sent again from its start.
    fn reset(&mut self) -> std::io::Result<()>;
}

impl BlobSink for Vec<u8> {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }

    fn reset(&mut self) -> std::io::Result<()> {
        self.clear();
        Ok(())
    }
}

/// A sink writing into any seekable writer from a fixed offset (a slot inside a file):
/// a reset seeks back to that offset, and the retry overwrites the partial bytes.
#[derive(Debug)]
pub struct OffsetSink<W> {
    inner: W,
    start: u64,
}

impl<W: Write + Seek> OffsetSink<W> {
    /// Positions `inner` at `start` and writes from there.
    pub fn new(mut inner: W, start: u64) -> std::io::Result<OffsetSink<W>> {
        inner.seek(SeekFrom::Start(start))?;
        Ok(OffsetSink { inner, start })
    }

    /// Flushes and returns the writer.
    pub fn into_inner(mut self) -> std::io::Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write + Seek + Send> BlobSink for OffsetSink<W> {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(bytes)
    }

    fn reset(&mut self) -> std::io::Result<()> {
        self.inner.seek(SeekFrom::Start(self.start)).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn offset_sink_rewrites_its_slot_after_reset() {
        let mut sink = OffsetSink::new(Cursor::new(vec![b'.'; 8]), 2).unwrap();
        sink.write_all(b"xxx").unwrap();
        sink.reset().unwrap();
        sink.write_all(b"abcd").unwrap();
        assert_eq!(sink.into_inner().unwrap().into_inner(), b"..abcd..");
    }
}
