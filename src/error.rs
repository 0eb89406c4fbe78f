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

/// An error and its causes as one line, `outer: cause: root cause`, the way the binary
/// prints them. A cause whose text the line already ends with is left out: some errors of
/// other crates (tonic's transport errors) both print their source and return it.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut current = Some(error);
    while let Some(cause) = current {
        let message = cause.to_string();
        if !message.is_empty() && !text.ends_with(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
        current = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Repeats);

    /// Prints its source and returns it, as some errors of other crates do.
    #[derive(Debug, thiserror::Error)]
    #[error("transport error: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn each_cause_once() {
        let error = Outer(Repeats(std::io::Error::other("refused")));
        assert_eq!(chain(&error), "outer: transport error: refused");
        assert_eq!(chain(&std::io::Error::other("alone")), "alone");
    }
}
