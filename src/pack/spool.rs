//! The spool: an unnamed temp file that holds the layers the plugin checks read before
//! the bundle can be laid out (see [`super::inspect`]), each in a region of its own so
//! that many downloads fill it at once. Filling the bundle then copies each region into
//! its slot. Unnamed, it disappears with the process, however the process ends.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use crate::oci::{Descriptor, Digest};
use crate::registry::BlobSink;

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Spool {
    file: File,
    /// Offset and size of each blob's region.
    regions: HashMap<Digest, (u64, u64)>,
    /// Regions whose blob arrived whole (and was verified by the registry client).
    filled: Mutex<HashSet<Digest>>,
}

impl Spool {
    /// A spool in `dir` with a region for each of `blobs`.
    pub(super) fn create<'a>(
        dir: &Path,
        blobs: impl IntoIterator<Item = &'a Descriptor>,
    ) -> io::Result<Spool> {
        let file = tempfile::tempfile_in(dir)?;
        let mut regions = HashMap::new();
        let mut end = 0;
        for blob in blobs {
            regions.entry(blob.digest).or_insert_with(|| {
                let region = (end, blob.size);
                end += blob.size;
                region
            });
        }
        // Sparse: regions take room only as they are filled.
        file.set_len(end)?;
        Ok(Spool {
            file,
            regions,
            filled: Mutex::new(HashSet::new()),
        })
    }

    /// Where a blob's bytes go; a retry rewrites the region from its start.
    pub(super) fn sink(&self, digest: &Digest) -> RegionSink<'_> {
        let (start, size) = self.regions.get(digest).copied().unwrap_or((0, 0));
        RegionSink {
            file: &self.file,
            start,
            size,
            written: 0,
        }
    }

    /// Records that a blob's region holds the whole, verified blob.
    pub(super) fn mark_filled(&self, digest: &Digest) {
        self.lock().insert(*digest);
    }

    /// The file and offset of a blob that is in the spool.
    pub(super) fn filled(&self, digest: &Digest) -> Option<(&File, u64)> {
        let (start, _) = self.regions.get(digest)?;
        self.lock().contains(digest).then_some((&self.file, *start))
    }

    /// Reads a blob back from its region.
    pub(super) fn reader(&self, digest: &Digest) -> RegionReader<'_> {
        let (start, size) = self.regions.get(digest).copied().unwrap_or((0, 0));
        RegionReader {
            file: &self.file,
            position: start,
            end: start + size,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Digest>> {
        self.filled.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes one blob into its region with positioned writes, so regions fill concurrently.
pub(super) struct RegionSink<'a> {
    file: &'a File,
    start: u64,
    size: u64,
    written: u64,
}

impl BlobSink for RegionSink<'_> {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() as u64 > self.size - self.written {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the blob is longer than its descriptor says",
            ));
        }
        self.file.write_all_at(bytes, self.start + self.written)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn reset(&mut self) -> io::Result<()> {
        self.written = 0;
        Ok(())
    }
}

/// Reads one region with positioned reads.
pub(super) struct RegionReader<'a> {
    file: &'a File,
    position: u64,
    end: u64,
}

impl Read for RegionReader<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.position).unwrap_or(usize::MAX);
        let want = buffer.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let read = self.file.read_at(&mut buffer[..want], self.position)?;
        self.position += read as u64;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::MediaType;

    #[test]
    fn regions_fill_independently_and_read_back() {
        let a = Descriptor::of(MediaType::new("application/octet-stream"), b"first blob");
        let b = Descriptor::of(MediaType::new("application/octet-stream"), b"second");
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::create(dir.path(), [&a, &b, &a]).unwrap();
        let mut sink = spool.sink(&b.digest);
        sink.write_all(b"junk").unwrap();
        sink.reset().unwrap();
        sink.write_all(b"second").unwrap();
        assert!(sink.write_all(b"!").is_err(), "past the region");
        spool.sink(&a.digest).write_all(b"first blob").unwrap();
        assert!(spool.filled(&b.digest).is_none(), "not marked yet");
        spool.mark_filled(&b.digest);
        assert!(spool.filled(&b.digest).is_some());
        let mut text = String::new();
        spool.reader(&b.digest).read_to_string(&mut text).unwrap();
        assert_eq!(text, "second");
        text.clear();
        spool.reader(&a.digest).read_to_string(&mut text).unwrap();
        assert_eq!(text, "first blob");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "unnamed");
    }
}
