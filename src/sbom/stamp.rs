//! The serial number of the SBOM, which other generators take from a random source,
//! derived here from the content so that equal input gives equal bytes.

use sha2::{Digest, Sha256};

/// `urn:uuid:…` from the document's bytes: the first 16 bytes of their SHA-256, with
/// the version nibble set to 5 and the variant bits to RFC 4122's `10`.
///
/// This is the construction of a version-5 (name-based) UUID with SHA-256 over the
/// whole content instead of SHA-1 over a namespace and a name, so it is "version-5
/// style", not an RFC 4122 v5 anyone could recompute from a name. RFC 9562 would call a
/// SHA-256 name-based UUID version 8; 5 is kept because CycloneDX asks for an RFC 4122
/// serial and older CycloneDX schemas only accept versions 1–5.
pub(super) fn serial_number(content: &[u8]) -> String {
    let digest = Sha256::digest(content);
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x50;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    let hex = hex::encode(uuid);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
