//! Local files, read and written safely: the one place that creates files and reads
//! small ones.
//!
//! Writing: every file the tool creates is first created new (`O_CREAT|O_EXCL`, which never
//! follows a symlink planted at its name) under a random hidden name, written, flushed to
//! disk, then renamed over the target (a rename replaces a symlink at the target instead of
//! following it) and the directory is flushed too. Where another program watches the target
//! directory (k0s imports every file that appears in its images directory), the temp file
//! lives in a separate staging directory on the same filesystem instead, so nothing partial
//! ever appears there. Files honour the umask unless they may hold credentials.
//!
//! Reading: every read has a cap, so a hostile or mistaken input (`/dev/zero`, a 20 GB
//! file) cannot exhaust memory. Files the tool finds by itself (the sidecar checksum,
//! `BUNDLE.sig`) must be regular files: opening a FIFO found beside a bundle would block
//! forever. Files the user names may be pipes (`--sign-key <(vault …)` keeps keys off disk).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Who chose a file the tool reads, which decides what kinds of file are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The user named it: a regular file or a pipe.
    Named,
    /// The tool found it by convention (beside a bundle): a regular file only.
    Found,
}

/// Who may read a file the tool writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privacy {
    /// Mode 0666 less the umask, like any file a program writes.
    Shared,
    /// Mode 0600: the file may hold credentials (proxy passwords in values).
    Private,
}

/// A local file that could not be read or written. The message names the file the user
/// knows, never a temp file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be opened or read.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The file is larger than anything it may legitimately hold.
    #[error("{} is larger than {limit} bytes, more than a {what} can be", path.display())]
    TooLarge {
        path: PathBuf,
        /// What the file should be, e.g. `signature`.
        what: &'static str,
        limit: u64,
    },
    /// A file found by convention is not a regular file.
    #[error("{} is not a regular file; remove or replace it", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
    },
    /// A file that was read once (a bundle that verified) could not be read again, or
    /// no longer holds what it held.
    #[error("cannot read {} again after verifying it", path.display())]
    ReadAgain {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// The file could not be written or put in place.
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

impl FileError {
    /// A file that is missing or unusable is bad input; a failure to write, or to read
    /// a file that opened, is a local failure.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            FileError::Read { source, .. } => read_failure_kind(source),
            FileError::TooLarge { .. } | FileError::NotRegular { .. } => crate::ErrorKind::Input,
            FileError::ReadAgain { .. } | FileError::Write { .. } => crate::ErrorKind::Local,
        }
    }
}

/// The class of a failure to read a file the user named: one that is missing, a directory,
/// unreadable to us or not what it should be is bad input; anything else (an I/O error
/// after it opened) is a local failure.
pub fn read_failure_kind(error: &io::Error) -> crate::ErrorKind {
    match error.kind() {
        io::ErrorKind::NotFound
        | io::ErrorKind::IsADirectory
        | io::ErrorKind::NotADirectory
        | io::ErrorKind::InvalidData
        | io::ErrorKind::PermissionDenied => crate::ErrorKind::Input,
        _ => crate::ErrorKind::Local,
    }
}

/// Reads `path` whole, refusing more than `limit` bytes (`what` names the file in the
/// message, e.g. `signature`). A [`Origin::Found`] file must be a regular file; it is
/// opened without blocking, so a FIFO planted at its name is refused, not waited on.
pub fn read_capped(
    path: &Path,
    limit: u64,
    what: &'static str,
    origin: Origin,
) -> Result<Vec<u8>, FileError> {
    let read_error = |source| FileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut options = OpenOptions::new();
    options.read(true);
    if origin == Origin::Found {
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = options.open(path).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    if metadata.is_dir() {
        return Err(read_error(io::Error::from(io::ErrorKind::IsADirectory)));
    }
    if origin == Origin::Found && !metadata.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    if metadata.is_file() && metadata.len() > limit {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            what,
            limit,
        });
    }
    let mut contents = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut contents)
        .map_err(read_error)?;
    if contents.len() as u64 > limit {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            what,
            limit,
        });
    }
    Ok(contents)
}

/// Like [`read_capped`], as UTF-8 text.
pub fn read_text_capped(
    path: &Path,
    limit: u64,
    what: &'static str,
    origin: Origin,
) -> Result<String, FileError> {
    let bytes = read_capped(path, limit, what, origin)?;
    String::from_utf8(bytes).map_err(|_| FileError::Read {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

/// A file being written: a temp file created new, renamed over `target` by [`commit`].
/// Dropped without a commit, it removes the temp file and leaves the target untouched.
///
/// [`commit`]: AtomicFile::commit
#[derive(Debug)]
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
}

impl AtomicFile {
    /// Starts writing `target`: the temp file goes beside it, or into `staging` (which
    /// must be on the same filesystem) when the target's directory is watched.
    pub fn create(
        target: &Path,
        privacy: Privacy,
        staging: Option<&Path>,
    ) -> Result<AtomicFile, FileError> {
        let directory = staging.unwrap_or_else(|| parent_directory(target));
        let mode = match privacy {
            Privacy::Shared => 0o666,
            Privacy::Private => 0o600,
        };
        // Named after the target, so a partial file left by a crash says what it was.
        let name = target
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = temp_file_in(directory, &name, mode).map_err(|source| FileError::Write {
            path: target.to_path_buf(),
            source,
        })?;
        Ok(AtomicFile {
            temp,
            target: target.to_path_buf(),
        })
    }

    /// The open temp file.
    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// The file that will be replaced.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes the data to disk, renames the temp file over the target and flushes the
    /// directories involved, so a crash leaves either the old file or the whole new one.
    pub fn commit(self) -> Result<(), FileError> {
        let write_error = |source| FileError::Write {
            path: self.target.clone(),
            source,
        };
        self.temp.as_file().sync_all().map_err(write_error)?;
        let temp_directory = self.temp.path().parent().map(Path::to_path_buf);
        self.temp
            .persist(&self.target)
            .map_err(|error| write_error(error.error))?;
        let target_directory = parent_directory(&self.target);
        sync_directory(target_directory).map_err(write_error)?;
        if let Some(staging) = temp_directory.filter(|dir| dir != target_directory) {
            sync_directory(&staging).map_err(write_error)?;
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// A new temp file `.NAME.XXXXXX.partial` in `directory` (created new with `mode` less the
/// umask), removed when dropped. Errors are the system's own: `tempfile`'s would name the
/// temp file, and messages name the file the user knows.
pub fn temp_file_in(
    directory: &Path,
    name: &str,
    mode: u32,
) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .make_in(directory, |path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(path)
        })
}

/// Writes `contents` to `target` through an [`AtomicFile`] beside it.
pub fn write_atomic(target: &Path, contents: &[u8], privacy: Privacy) -> Result<(), FileError> {
    let mut file = AtomicFile::create(target, privacy, None)?;
    file.write_all(contents)
        .map_err(|source| FileError::Write {
            path: target.to_path_buf(),
            source,
        })?;
    file.commit()
}

/// Appends `text` to the log file at `path` in one write, creating it if missing. The
/// log is opened without following a symlink at its name and must be a regular file, so
/// a planted link or FIFO can neither redirect nor block the record.
pub fn append_to_log(path: &Path, text: &[u8]) -> Result<(), FileError> {
    let write_error = |source| FileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o666)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .map_err(write_error)?;
    if !file.metadata().map_err(write_error)?.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    // One write call, so concurrent runs do not interleave within a line.
    (&file).write_all(text).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_directory(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn sync_directory(directory: &Path) -> io::Result<()> {
    File::open(directory)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn atomic_write_replaces_a_planted_symlink_without_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let target = dir.path().join("values.yaml");
        symlink(&victim, &target).unwrap();
        write_atomic(&target, b"new", Privacy::Shared).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert!(!target.symlink_metadata().unwrap().file_type().is_symlink());
    }

    #[test]
    fn modes_follow_privacy_and_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        let private = dir.path().join("private");
        write_atomic(&shared, b"x", Privacy::Shared).unwrap();
        write_atomic(&private, b"x", Privacy::Private).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        // A plain `File::create` honours the umask: shared files get the same mode.
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        assert_eq!(mode(&shared), mode(&plain));
        assert_eq!(mode(&private), 0o600);
    }

    #[test]
    fn dropped_files_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        let mut file = AtomicFile::create(&target, Privacy::Shared, None).unwrap();
        file.write_all(b"partial").unwrap();
        drop(file);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn staged_files_appear_only_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let watched = dir.path().join("images");
        let staging = dir.path().join("state");
        std::fs::create_dir(&watched).unwrap();
        std::fs::create_dir(&staging).unwrap();
        let target = watched.join("bundle.tar");
        let mut file = AtomicFile::create(&target, Privacy::Shared, Some(&staging)).unwrap();
        file.write_all(b"archive").unwrap();
        assert_eq!(std::fs::read_dir(&watched).unwrap().count(), 0);
        file.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"archive");
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
    }

    #[test]
    fn errors_name_the_target_not_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("missing").join("values.yaml");
        let error = write_atomic(&target, b"x", Privacy::Shared).unwrap_err();
        let FileError::Write { path, source } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(path, &target);
        assert_eq!(source.kind(), io::ErrorKind::NotFound);
        assert!(!source.to_string().contains(".partial"), "{source}");
        assert_eq!(error.kind(), crate::ErrorKind::Local);
    }

    #[test]
    fn reads_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sig");
        std::fs::write(&path, vec![0u8; 100]).unwrap();
        assert!(matches!(
            read_capped(&path, 99, "signature", Origin::Found),
            Err(FileError::TooLarge { limit: 99, .. })
        ));
        assert_eq!(
            read_capped(&path, 100, "signature", Origin::Found)
                .unwrap()
                .len(),
            100
        );
        // A device has no size to check first: the cap stops the read itself.
        assert!(matches!(
            read_capped(Path::new("/dev/zero"), 1024, "key", Origin::Named),
            Err(FileError::TooLarge { .. })
        ));
    }

    #[test]
    fn found_files_must_be_regular() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("bundle.tar.sha256");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(
            read_capped(&fifo, 4096, "checksum file", Origin::Found),
            Err(FileError::NotRegular { .. })
        ));
        let zero = dir.path().join("BUNDLE.sig");
        symlink("/dev/zero", &zero).unwrap();
        assert!(matches!(
            read_capped(&zero, 1024, "signature", Origin::Found),
            Err(FileError::NotRegular { .. })
        ));
    }
}
