//! `sha256:<hex>` digests: the one digest type of the crate.
//!
//! Registries, bundles, containerd and signatures all name content by digest, and digests
//! become file names (`blobs/sha256/<hex>`), so only one form is accepted anywhere:
//! `sha256:` and 64 lowercase hex digits. Uppercase would decode too, but then one blob
//! could have two names; other algorithms are refused rather than half supported.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A SHA-256 content digest, written `sha256:<64 lowercase hex digits>`.
///
/// Ordering follows the hex text, which is the order blobs take in the bundle.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// Why a text is not a digest this crate accepts, phrased so a user can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `:` between algorithm and hex.
    #[error("digest {digest:?} must be algorithm:hex, e.g. sha256:<64 hex characters>")]
    Format { digest: String },
    /// An algorithm other than sha256 (or not an algorithm name at all).
    #[error("digest algorithm {algorithm:?} is not supported (only sha256 is)")]
    UnsupportedAlgorithm { algorithm: String },
    /// The hex part is not 64 characters long.
    #[error("digest sha256 needs 64 hex characters, got {actual}")]
    Length { actual: usize },
    /// The hex part holds characters other than `0-9a-f`.
    #[error("digest sha256 must be lowercase hex (0-9, a-f)")]
    NotLowercaseHex,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// Finishes `hasher` into a digest.
    pub fn from_hasher(hasher: Sha256) -> Self {
        Self(hasher.finalize().into())
    }

    /// Parses 64 lowercase hex digits (no `sha256:` prefix), as in `SHA256SUMS` and blob file names.
    pub fn from_hex(hex_digits: &str) -> Result<Self, DigestError> {
        let length = hex_digits.chars().count();
        if length != 64 {
            return Err(DigestError::Length { actual: length });
        }
        // Uppercase would decode too, but then one blob could have two names.
        if !hex_digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::NotLowercaseHex);
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut bytes).map_err(|_| DigestError::NotLowercaseHex)?;
        Ok(Self(bytes))
    }

    /// The 64 hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, hex_digits)) = text.split_once(':') else {
            return Err(DigestError::Format {
                digest: text.to_owned(),
            });
        };
        if algorithm != "sha256" {
            return Err(DigestError::UnsupportedAlgorithm {
                algorithm: algorithm.to_owned(),
            });
        }
        Self::from_hex(hex_digits)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde helper for fields that hold bare hex digits (`"sha256": "<hex>"` in `bundle.json`).
pub(crate) mod bare_hex {
    use super::Digest;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        digest: &Digest,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&digest.hex())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_empty_input() {
        assert_eq!(Digest::of(b"").hex(), EMPTY);
        assert_eq!(Digest::of(b"").to_string(), format!("sha256:{EMPTY}"));
    }

    #[test]
    fn parses_only_canonical_text() {
        let digest: Digest = format!("sha256:{EMPTY}").parse().unwrap();
        assert_eq!(digest, Digest::of(b""));
        assert!(EMPTY.parse::<Digest>().is_err());
        assert!(format!("sha512:{EMPTY}").parse::<Digest>().is_err());
        assert!(Digest::from_hex(&EMPTY.to_uppercase()).is_err());
        assert!(Digest::from_hex(&EMPTY[1..]).is_err());
        assert!(Digest::from_hex(&format!("{}g", &EMPTY[1..])).is_err());
    }

    #[test]
    fn order_follows_hex_text() {
        let a = Digest::from_hex(&format!("0{}", &EMPTY[1..])).unwrap();
        let b = Digest::from_hex(&format!("f{}", &EMPTY[1..])).unwrap();
        assert!(a < b && a.hex() < b.hex());
    }

    #[test]
    fn serde_round_trip() {
        let digest = Digest::of(b"x");
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{digest}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
    }
}
