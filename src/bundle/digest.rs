//! `sha256:<hex>` digests: the one algorithm a bundle stores blobs under.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A SHA-256 content digest, written `sha256:<64 lowercase hex digits>`.
///
/// Ordering follows the hex text, which is the order blobs take in the bundle.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

/// A string that is not a `sha256:<hex>` digest (or, for [`Sha256Digest::from_hex`], not 64 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a sha256 digest (expected sha256:<64 lowercase hex digits>)")]
pub struct DigestParseError {
    /// The rejected text.
    pub input: String,
}

impl Sha256Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// Finishes `hasher` into a digest.
    pub fn from_hasher(hasher: Sha256) -> Self {
        Self(hasher.finalize().into())
    }

    /// Parses 64 lowercase hex digits (no `sha256:` prefix), as in `SHA256SUMS` and blob file names.
    pub fn from_hex(hex_digits: &str) -> Result<Self, DigestParseError> {
        let error = || DigestParseError {
            input: hex_digits.to_owned(),
        };
        // Uppercase would decode too, but then one blob could have two names.
        if hex_digits.len() != 64
            || !hex_digits
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(error());
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut bytes).map_err(|_| error())?;
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

impl FromStr for Sha256Digest {
    type Err = DigestParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.strip_prefix("sha256:")
            .ok_or_else(|| DigestParseError {
                input: text.to_owned(),
            })
            .and_then(|hex_digits| {
                Self::from_hex(hex_digits).map_err(|_| DigestParseError {
                    input: text.to_owned(),
                })
            })
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde helper for fields that hold bare hex digits (`"sha256": "<hex>"` in `bundle.json`).
pub(crate) mod bare_hex {
    use super::Sha256Digest;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        digest: &Sha256Digest,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&digest.hex())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Sha256Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        Sha256Digest::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_empty_input() {
        assert_eq!(Sha256Digest::of(b"").hex(), EMPTY);
        assert_eq!(Sha256Digest::of(b"").to_string(), format!("sha256:{EMPTY}"));
    }

    #[test]
    fn parses_only_canonical_text() {
        let digest: Sha256Digest = format!("sha256:{EMPTY}").parse().unwrap();
        assert_eq!(digest, Sha256Digest::of(b""));
        assert!(EMPTY.parse::<Sha256Digest>().is_err());
        assert!(format!("sha512:{EMPTY}").parse::<Sha256Digest>().is_err());
        assert!(Sha256Digest::from_hex(&EMPTY.to_uppercase()).is_err());
        assert!(Sha256Digest::from_hex(&EMPTY[1..]).is_err());
        assert!(Sha256Digest::from_hex(&format!("{}g", &EMPTY[1..])).is_err());
    }

    #[test]
    fn order_follows_hex_text() {
        let a = Sha256Digest::from_hex(&format!("0{}", &EMPTY[1..])).unwrap();
        let b = Sha256Digest::from_hex(&format!("f{}", &EMPTY[1..])).unwrap();
        assert!(a < b && a.hex() < b.hex());
    }

    #[test]
    fn serde_round_trip() {
        let digest = Sha256Digest::of(b"x");
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{digest}\""));
        assert_eq!(serde_json::from_str::<Sha256Digest>(&json).unwrap(), digest);
    }
}
