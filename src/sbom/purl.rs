//! Package URLs (purl, ECMA-427) for the two kinds of package the SBOM names: OCI
//! images (`pkg:oci`) and Go modules (`pkg:golang`).
//!
//! Output is the canonical form of the purl specification's test suite: only
//! `A–Z a–z 0–9 . - _ ~` and `:` stay as they are, everything else in a component is
//! percent-encoded with upper-case hex. So an image digest is written `sha256:<hex>`
//! (the spec never encodes `:`; the older `sha256%3A` spelling in the `oci` type's
//! examples parses to the same purl) and the `/` of a `repository_url` value is `%2F`.

use crate::oci::Digest;
use crate::reference::Reference;

/// Go's version for a main module built from a checkout: not a version a purl can name.
const GO_DEVEL: &str = "(devel)";

/// `pkg:oci/<name>@<digest>?repository_url=<registry>/<repository>[&tag=<tag>]`.
///
/// The `oci` type has no namespace: the name is the last repository component,
/// lower-cased, and where the image lives goes in `repository_url` (no scheme).
/// The digest is the version, the only part that identifies the content.
pub(super) fn oci(image: &Reference, digest: &Digest) -> String {
    let repository = image.repository();
    let last = repository.rsplit('/').next().unwrap_or(repository);
    let mut purl = format!(
        "pkg:oci/{}@{}?repository_url={}",
        encode(&last.to_lowercase()),
        encode(&digest.to_string()),
        encode(&image.name())
    );
    // Qualifiers are sorted by key in the canonical form: `repository_url` < `tag`.
    if let Some(tag) = image.tag() {
        purl.push_str("&tag=");
        purl.push_str(&encode(tag));
    }
    purl
}

/// `pkg:golang/<module path>[@<version>]`.
///
/// The module path keeps its case. The `golang` type says both that namespace and name
/// are case-sensitive and that they "shall be lowercased", a contradiction its
/// maintainers acknowledge (purl-spec issue #308); Go module paths are case-sensitive
/// (`github.com/Azure/…` and `github.com/azure/…` are different modules), and Go
/// tooling, the Go vulnerability database and other SBOM generators keep the case.
/// An empty version or `(devel)` names no release, so the purl then has none.
pub(super) fn golang(path: &str, version: &str) -> String {
    let segments: Vec<String> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(encode)
        .collect();
    let mut purl = format!("pkg:golang/{}", segments.join("/"));
    if !version.is_empty() && version != GO_DEVEL {
        purl.push('@');
        purl.push_str(&encode(version));
    }
    purl
}

/// A file path as a purl subpath: relative, no empty, `.` or `..` segments, each
/// segment percent-encoded.
pub(super) fn subpath(path: &str) -> String {
    let segments: Vec<String> = path
        .split('/')
        .filter(|segment| !matches!(*segment, "" | "." | ".."))
        .map(encode)
        .collect();
    segments.join("/")
}

/// Percent-encodes one purl component (or one segment of one) as the spec's
/// "Character encoding" clause says: alphanumerics, `.-_~` and `:` stay, every other
/// byte of the UTF-8 form becomes `%XX`.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b".-_~:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
