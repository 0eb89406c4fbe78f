//! The classes of failure. Every error type of the library says which class it is in
//! (a `kind()` method that looks through the errors it wraps), and the binary maps the
//! class to its exit code in one place.

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Something the user gave is missing or invalid (a config, a flag's value, a key, a
    /// bundle), or what was checked failed (verification, signatures, platforms).
    Input,
    /// A registry, the network, authentication or containerd failed.
    Remote,
    /// A local file could not be written, or read after it was opened (disk full,
    /// permissions, a bundle file that changed while in use).
    Local,
}
