//! Problems found in a bundle, each naming the entry it concerns. Reading goes on past
//! most problems so a report lists all of them, not just the first.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::oci::Digest;

/// One thing wrong with a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The archive entry concerned (`blobs/sha256/ab12…`, `values.yaml`), or the bundle
    /// or sidecar file name for problems of the whole file.
    pub entry: String,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl Problem {
    pub(crate) fn new(entry: impl Into<String>, kind: ProblemKind) -> Self {
        Self {
            entry: entry.into(),
            kind,
        }
    }
}

/// Problems as one line, `; `-separated, for error messages.
pub fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.entry, self.kind)
    }
}

/// Serialised as `{"entry": …, "problem": "<message>"}` for `--json` output.
impl Serialize for Problem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut state = serializer.serialize_struct("Problem", 2)?;
        state.serialize_field("entry", &self.entry)?;
        state.serialize_field("problem", &self.kind.to_string())?;
        state.end()
    }
}

/// The kinds of problem a bundle can have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemKind {
    /// Content does not hash to what `SHA256SUMS` (or the blob's name) says.
    #[error("sha256 mismatch: expected {expected}, content is {actual}")]
    Sha256Mismatch {
        expected: Digest,
        /// The digest of the content.
        actual: Digest,
    },
    /// The archive's entry size differs from `bundle.json`.
    #[error("size mismatch: bundle.json says {declared} bytes, the archive holds {actual}")]
    SizeMismatch {
        /// Size in `bundle.json`.
        declared: u64,
        /// Size in the tar header.
        actual: u64,
    },
    /// Listed in `bundle.json` but absent from the archive.
    #[error("missing from the archive")]
    Missing,
    /// In the layout, but `bundle.json` does not list it.
    #[error("not listed in bundle.json")]
    NotListed,
    /// A name the layout does not allow.
    #[error("name outside the bundle layout")]
    OutsideLayout,
    #[error("duplicate entry")]
    Duplicate,
    /// Entries out of their fixed order.
    #[error("out of order: expected {expected}")]
    OutOfOrder {
        /// What should have come here.
        expected: String,
    },
    /// A hostile or foreign tar construct.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// Larger than the reader keeps in memory for this entry.
    #[error("larger than the {limit}-byte limit for this entry")]
    TooLarge { limit: u64 },
    /// The archive ends inside this entry.
    #[error("truncated: {read} of {expected} bytes present")]
    Truncated {
        /// Size the header promised.
        expected: u64,
        /// Bytes present.
        read: u64,
    },
    /// The archive ends without its closing zero blocks.
    #[error("the archive ends without an end-of-archive marker")]
    MissingEnd,
    /// Content that does not parse (JSON, `SHA256SUMS`, a tar header).
    #[error("{0}")]
    Malformed(String),
    /// Files that disagree with each other.
    #[error("{0}")]
    Inconsistent(String),
    /// The (decompressed) archive is longer than `bundle.json` accounts for.
    #[error("the archive expands past the {limit} bytes its listing accounts for")]
    ExpandsPastDeclared {
        /// The declared total in bytes.
        limit: u64,
    },
    /// Non-zero bytes after the end of the archive or the compressed stream.
    #[error("data after the end of the archive")]
    TrailingData,
    /// Reading or decompressing failed.
    #[error("read failed: {0}")]
    Read(String),
    /// The whole file does not match its sidecar checksum.
    #[error("sha256 of the bundle is {actual}, the sidecar says {expected}")]
    SidecarMismatch {
        /// Digest in the sidecar.
        expected: Digest,
        /// Digest of the bundle file.
        actual: Digest,
    },
    /// Entries never reached because reading stopped early.
    #[error("{count} listed entries after this point were not read")]
    NotRead {
        /// How many listed entries were not reached.
        count: usize,
    },
    /// A blob no image reaches.
    #[error("not referenced by any image")]
    Unreferenced,
    /// The file is not a bundle at all (not a tar, or a tar of something else).
    #[error("not a velero-airgap bundle: {reason}")]
    NotABundle {
        /// What the file is instead.
        reason: String,
    },
    /// An uncompressed bundle file shorter than the archive `bundle.json` describes.
    #[error(
        "the file holds {file_size} bytes, but bundle.json describes an archive of {declared} bytes: it was cut short; copy it again"
    )]
    ShorterThanDeclared {
        /// Size of the file.
        file_size: u64,
        /// Size of the archive `bundle.json` lists.
        declared: u64,
    },
}

/// Tar constructs a bundle never contains and a reader refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A path starting with `/`.
    AbsolutePath,
    /// A `..`, `.` or empty path component.
    DotComponent,
    Symlink,
    Hardlink,
    /// A character or block device.
    Device,
    Fifo,
    Directory,
    PaxHeader,
    /// A GNU long name or long link record.
    GnuLongName,
    /// Any other entry type, by its type byte.
    OtherType(u8),
    /// A header that is not POSIX ustar (GNU or v7 tar).
    NotUstar,
    /// A name split into the ustar prefix field.
    PrefixUsed,
    /// A name that is not UTF-8.
    NameNotUtf8,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AbsolutePath => f.write_str("absolute path"),
            Self::DotComponent => f.write_str("`..`, `.` or empty path component"),
            Self::Symlink => f.write_str("symbolic link"),
            Self::Hardlink => f.write_str("hard link"),
            Self::Device => f.write_str("device file"),
            Self::Fifo => f.write_str("FIFO"),
            Self::Directory => f.write_str("directory entry"),
            Self::PaxHeader => f.write_str("PAX extended header"),
            Self::GnuLongName => f.write_str("GNU long-name record"),
            Self::OtherType(byte) => write!(f, "entry type {:?}", char::from(*byte)),
            Self::NotUstar => f.write_str("not a POSIX ustar header"),
            Self::PrefixUsed => f.write_str("name uses the ustar prefix field"),
            Self::NameNotUtf8 => f.write_str("name is not UTF-8"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_entry() {
        let problem = Problem::new("values.yaml", ProblemKind::Refused(Refusal::Symlink));
        assert_eq!(problem.to_string(), "values.yaml: refused: symbolic link");
        assert_eq!(
            serde_json::to_value(&problem).unwrap(),
            serde_json::json!({"entry": "values.yaml", "problem": "refused: symbolic link"})
        );
    }
}
