//! Random access to the blobs of a verified bundle.
//!
//! Targets want blobs in their own order (per image, many at once), while a
//! bundle is one tar stream. An uncompressed bundle is read in place: the tar
//! headers are scanned once (seeking over the data) and each blob is a window of
//! the file. A compressed bundle is decompressed once into a content-addressed
//! staging directory. Either way nothing is extracted by a name taken from the
//! tar: names are checked against the layout and blobs are found by digest.

use super::layout::{Compression, blob_entry_name};
use super::reader::BundleReader;
use crate::files::FileError;
use crate::oci::Digest;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Where each blob's bytes are.
#[derive(Debug)]
pub enum BlobStore {
    /// Windows of an uncompressed bundle file.
    InPlace {
        path: PathBuf,
        /// Digest → (offset of the data, size).
        entries: HashMap<Digest, (u64, u64)>,
    },
    /// Files named by digest in a temporary directory.
    Staged {
        /// The staging directory, removed on drop.
        dir: tempfile::TempDir,
        /// Digest → size.
        sizes: HashMap<Digest, u64>,
    },
}

impl BlobStore {
    /// Indexes (or stages, in a new directory under `staging`) the blobs of `path`, a
    /// bundle that verified. Failing to read it now is a local failure, as is failing to
    /// write the staged copy.
    pub fn open(
        path: &Path,
        compression: Compression,
        staging: &Path,
    ) -> Result<BlobStore, FileError> {
        let read_again = |source| FileError::ReadAgain {
            path: path.to_path_buf(),
            source,
        };
        match compression {
            Compression::None => Self::scan(path).map_err(read_again),
            _ => Self::stage(path, staging),
        }
    }

    fn scan(path: &Path) -> io::Result<BlobStore> {
        let mut archive = tar::Archive::new(File::open(path)?);
        let mut entries = HashMap::new();
        for entry in archive.entries_with_seek()? {
            let entry = entry?;
            let name = entry.path_bytes().into_owned();
            let name = String::from_utf8_lossy(&name);
            let Some(hex) = name.strip_prefix("blobs/sha256/") else {
                continue;
            };
            let digest = Digest::from_hex(hex)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            if blob_entry_name(&digest) != name {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected entry {name}"),
                ));
            }
            entries.insert(digest, (entry.raw_file_position(), entry.size()));
        }
        Ok(BlobStore::InPlace {
            path: path.to_path_buf(),
            entries,
        })
    }

    fn stage(path: &Path, staging: &Path) -> Result<BlobStore, FileError> {
        let read_again = |source| FileError::ReadAgain {
            path: path.to_path_buf(),
            source,
        };
        let write = |source| FileError::Write {
            path: staging.to_path_buf(),
            source,
        };
        // `tempdir_in` names its random directory in its errors; the directory the user
        // chose (or $TMPDIR) is checked first, so its own error names only that.
        if !std::fs::metadata(staging).map_err(write)?.is_dir() {
            return Err(write(io::Error::from(io::ErrorKind::NotADirectory)));
        }
        let dir = tempfile::Builder::new()
            .prefix("velero-airgap-unpack-")
            .tempdir_in(staging)
            .map_err(|error| write(io::Error::from(error.kind())))?;
        let mut reader = BundleReader::open(path).map_err(|e| read_again(io::Error::other(e)))?;
        let mut sizes = HashMap::new();
        let mut buffer = vec![0u8; 1 << 20];
        while let Some(mut blob) = reader.next_blob() {
            let digest = blob.digest();
            let mut file = File::create(dir.path().join(digest.hex())).map_err(write)?;
            // The reader hashes as it goes and fails a blob whose digest is wrong.
            loop {
                let n = blob.read(&mut buffer).map_err(read_again)?;
                if n == 0 {
                    break;
                }
                file.write_all(&buffer[..n]).map_err(write)?;
            }
            sizes.insert(digest, blob.size());
        }
        let report = reader.finish();
        if let Some(problem) = report.problems.first() {
            return Err(read_again(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the bundle changed since it was verified: {problem}"),
            )));
        }
        Ok(BlobStore::Staged { dir, sizes })
    }

    /// The size of a blob, if the bundle has it.
    pub fn size(&self, digest: &Digest) -> Option<u64> {
        match self {
            BlobStore::InPlace { entries, .. } => entries.get(digest).map(|(_, size)| *size),
            BlobStore::Staged { sizes, .. } => sizes.get(digest).copied(),
        }
    }

    /// A reader of exactly the blob's bytes.
    pub fn open_blob(&self, digest: &Digest) -> io::Result<io::Take<File>> {
        let missing = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not in the bundle", blob_entry_name(digest)),
            )
        };
        match self {
            BlobStore::InPlace { path, entries } => {
                let (offset, size) = entries.get(digest).ok_or_else(missing)?;
                let mut file = File::open(path)?;
                file.seek(SeekFrom::Start(*offset))?;
                Ok(file.take(*size))
            }
            BlobStore::Staged { dir, sizes } => {
                let size = sizes.get(digest).ok_or_else(missing)?;
                Ok(File::open(dir.path().join(digest.hex()))?.take(*size))
            }
        }
    }

    /// A small blob (a manifest) in memory.
    pub fn read_small(&self, digest: &Digest, limit: u64) -> io::Result<Vec<u8>> {
        let size = self.size(digest).unwrap_or(0);
        if size > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is {size} bytes, too large for a manifest",
                    blob_entry_name(digest)
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        self.open_blob(digest)?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}
